//! Accounts: list, read, password changes and API tokens, and `can-i`, as Argo CD's account endpoints.

use super::permission_denied;
use crate::api::{ApiError, Caller, GrpcCode, Shared};
use crate::auth::{Account, AuthError};
use crate::rbac::resources::ACCOUNTS;
use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// `GET /api/v1/account/can-i/{resource}/{action}/{object}`: whether the caller may, as `argocd account
/// can-i` asks (the UI hides what it may not do). `{"value": "yes"|"no"}`.
pub(super) async fn can_i(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    Path((resource, action, object)): Path<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    let allowed = shared.rbac.enforce(&caller, &resource, &action, &object);
    Ok(Json(json!({"value": if allowed { "yes" } else { "no" }})))
}

/// An account error as the API answers it. A missing capability is the request's fault here, not the
/// session's: 400, so a client does not read it as "log in again".
fn account_error(e: AuthError) -> ApiError {
    match e {
        AuthError::MissingCapability { .. } | AuthError::AccountDisabled(_) => {
            ApiError::failed_precondition(e.to_string())
        }
        AuthError::TooManyAttempts { .. } => ApiError::new(GrpcCode::ResourceExhausted, e.to_string()),
        e => ApiError::from_auth(&e),
    }
}

/// Re-reads argocd-cm and argocd-secret into the session manager (logins and tokens then see the change)
/// and returns the accounts.
async fn fresh_accounts(shared: &Shared) -> Result<Arc<crate::auth::Accounts>, ApiError> {
    let (key, accounts) =
        crate::auth::load(&shared.client, &shared.namespace).await.map_err(account_error)?;
    shared.sessions.replace(key, accounts);
    Ok(shared.sessions.accounts())
}

/// A local account may always read and update itself; others (SSO users and project roles too, whatever
/// their name) need RBAC `accounts` on its name.
fn may_touch_account(shared: &Shared, caller: &Caller, action: &str, account: &str) -> bool {
    (caller.is_local_account() && caller.name == account)
        || shared.rbac.enforce(caller, ACCOUNTS, action, account)
}

/// Argo CD's Account: name, enabled, capabilities and the API tokens' `{id, issuedAt, expiresAt}`, newest
/// first. Nothing else of argocd-secret.
fn account_view(account: &Account) -> Value {
    let mut tokens = account.tokens.clone();
    tokens.sort_by_key(|t| std::cmp::Reverse(t.issued_at));
    let tokens: Vec<Value> = tokens
        .iter()
        .map(|t| {
            let mut token = json!({"id": t.id, "issuedAt": t.issued_at});
            if let Some(exp) = t.expires_at {
                token["expiresAt"] = exp.into();
            }
            token
        })
        .collect();
    json!({
        "name": account.name,
        "enabled": account.enabled,
        "capabilities": account.capabilities.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
        "tokens": tokens,
    })
}

/// `GET /api/v1/account`: the accounts the caller may get (always itself).
pub(super) async fn list_accounts(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let accounts = fresh_accounts(&shared).await?;
    let items: Vec<Value> = accounts
        .iter()
        .filter(|a| may_touch_account(&shared, &caller, "get", &a.name))
        .map(account_view)
        .collect();
    Ok(Json(json!({"items": items})))
}

/// `GET /api/v1/account/{name}`.
pub(super) async fn get_account(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if !may_touch_account(&shared, &caller, "get", &name) {
        return Err(permission_denied());
    }
    let accounts = fresh_accounts(&shared).await?;
    let account =
        accounts.get(&name).ok_or_else(|| account_error(AuthError::AccountNotFound(name.clone())))?;
    Ok(Json(account_view(account)))
}

/// Argo CD's UpdatePasswordRequest. No `Debug`: it holds passwords.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PasswordChange {
    #[serde(default)]
    name: String,
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
}

/// `PUT /api/v1/account/password`: `{name?, currentPassword, newPassword}`. As in Argo CD the caller proves
/// who they are with *their own* current password, whichever account changes; changing another account's
/// password also needs RBAC `accounts, update, <name>`. Tokens issued before the change stop working.
pub(super) async fn update_password(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    Json(change): Json<PasswordChange>,
) -> Result<Json<Value>, ApiError> {
    if !caller.is_local_account() {
        // The caller proves who it is with its own password, which only a local account has.
        return Err(ApiError::bad_request("password can only be changed by a local account's session"));
    }
    let target = if change.name.is_empty() { caller.name.clone() } else { change.name.clone() };
    if target != caller.name && !shared.rbac.enforce(&caller, ACCOUNTS, "update", &target) {
        return Err(permission_denied());
    }
    if change.current_password.is_empty() {
        return Err(ApiError::bad_request("currentPassword is required: the caller's current password"));
    }
    if change.new_password.is_empty() {
        return Err(ApiError::bad_request("newPassword is required"));
    }
    let checker = shared.clone();
    let (user, current) = (caller.name.clone(), change.current_password);
    let checked = tokio::task::spawn_blocking(move || checker.sessions.check_password(&user, &current))
        .await
        .map_err(|e| ApiError::internal(format!("checking the current password: {e}")))?;
    match checked {
        Ok(()) => {}
        Err(e @ AuthError::TooManyAttempts { .. }) => return Err(account_error(e)),
        Err(_) => return Err(account_error(AuthError::WrongCurrentPassword)),
    }
    crate::auth::set_password(&shared.client, &shared.namespace, &target, &change.new_password)
        .await
        .map_err(account_error)?;
    fresh_accounts(&shared).await?;
    if target == caller.name {
        tracing::info!(account = %target, "user updated their password");
    } else {
        tracing::info!(account = %target, user = %caller.name, "user updated another account's password");
    }
    Ok(Json(json!({})))
}

/// Argo CD's CreateTokenRequest: `expiresIn` in seconds (a number, or a string as gRPC-gateway writes
/// int64), `id` optional.
#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct TokenRequest {
    expires_in: Option<Value>,
    id: Option<String>,
}

fn expires_in(value: Option<&Value>) -> Result<Option<Duration>, ApiError> {
    let seconds = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) if s.is_empty() => return Ok(None),
        Some(Value::String(s)) => s.parse::<i64>().ok(),
        Some(_) => None,
    };
    match seconds {
        Some(s) if s >= 0 => Ok((s > 0).then(|| Duration::from_secs(s.unsigned_abs()))),
        _ => Err(ApiError::bad_request("expiresIn must be a whole number of seconds (0: never expires)")),
    }
}

/// `POST /api/v1/account/{name}/token`: a new API token (only for accounts with the apiKey capability),
/// listed in argocd-secret; the token itself is in this answer only.
pub(super) async fn create_token(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    Path(name): Path<String>,
    body: Option<Json<TokenRequest>>,
) -> Result<Json<Value>, ApiError> {
    if !may_touch_account(&shared, &caller, "update", &name) {
        return Err(permission_denied());
    }
    let request = body.map(|Json(b)| b).unwrap_or_default();
    let expires = expires_in(request.expires_in.as_ref())?;
    fresh_accounts(&shared).await?;
    let issued = shared
        .sessions
        .generate_token(&name, expires, request.id.as_deref().filter(|id| !id.is_empty()))
        .map_err(account_error)?;
    crate::auth::add_api_token(&shared.client, &shared.namespace, &name, &issued.record)
        .await
        .map_err(account_error)?;
    fresh_accounts(&shared).await?;
    tracing::info!(account = %name, id = %issued.record.id, user = %caller.name, "API token created");
    Ok(Json(json!({"token": issued.token})))
}

/// `DELETE /api/v1/account/{name}/token/{id}`: the token stops working.
pub(super) async fn delete_token(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    Path((name, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    if !may_touch_account(&shared, &caller, "update", &name) {
        return Err(permission_denied());
    }
    let deleted = crate::auth::delete_api_token(&shared.client, &shared.namespace, &name, &id)
        .await
        .map_err(account_error)?;
    if !deleted {
        return Err(ApiError::not_found(format!("token with id '{id}' does not exist")));
    }
    fresh_accounts(&shared).await?;
    tracing::info!(account = %name, id = %id, user = %caller.name, "API token deleted");
    Ok(Json(json!({})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_lifetimes_read_numbers_and_strings() {
        assert_eq!(expires_in(Some(&json!(3600))).unwrap(), Some(Duration::from_secs(3600)));
        assert_eq!(expires_in(Some(&json!("60"))).unwrap(), Some(Duration::from_secs(60)));
        assert_eq!(expires_in(Some(&json!(0))).unwrap(), None);
        assert_eq!(expires_in(None).unwrap(), None);
        assert!(expires_in(Some(&json!(-1))).is_err());
        assert!(expires_in(Some(&json!("1h"))).is_err());
    }
}
