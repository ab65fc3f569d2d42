//! Reads and writes of argocd-secret: passwords and API token lists.
//!
//! Every write is a JSON merge patch of only the keys it changes, carrying the `resourceVersion` it read:
//! if the Secret changed in between (someone else changed a password), the write is refused by the API server
//! and done again from a fresh read, so nothing another writer set is overwritten unseen.

use super::accounts::{
    Accounts, ApiToken, Capability, check_account_name, password_key, password_mtime_key, tokens_key,
};
use super::clock::rfc3339;
use super::session::SecretKey;
use super::{ARGOCD_CM, ARGOCD_SECRET, AuthError, password};
use base64::Engine;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, Patch, PatchParams};
use std::collections::BTreeMap;
use std::time::SystemTime;

const FIELD_MANAGER: &str = "berth-server";
/// Read-modify-write rounds before giving up on a Secret that keeps changing.
const ATTEMPTS: usize = 5;

/// Reads argocd-cm and argocd-secret once: the signing key and the accounts, for
/// [`SessionManager::replace`](super::SessionManager::replace).
pub async fn load(client: &kube::Client, namespace: &str) -> Result<(SecretKey, Accounts), AuthError> {
    let (_, data, accounts) = read(client, namespace).await?;
    Ok((SecretKey::from_data(&data)?, accounts))
}

/// Changes `account`'s own password after checking `current` against its stored hash; the new one must be 8
/// to 32 characters. `admin` writes `admin.password`, others `accounts.<name>.password`, each with its
/// `passwordMtime`, which makes every token issued before the change invalid.
///
/// The check here is not rate limited: a route first passes the caller's password through
/// [`SessionManager::check_password`](super::SessionManager::check_password), which is. When one account
/// changes another's password, Argo CD checks the *caller's* password: do that, then call [`set_password`].
pub async fn update_password(
    client: &kube::Client,
    namespace: &str,
    account: &str,
    current: &str,
    new: &str,
) -> Result<(), AuthError> {
    write_password(client, namespace, account, Some(current), new).await
}

/// Sets `account`'s password without checking the old one (the caller has authenticated and authorised the
/// change); same policy and effects as [`update_password`].
pub async fn set_password(
    client: &kube::Client,
    namespace: &str,
    account: &str,
    new: &str,
) -> Result<(), AuthError> {
    write_password(client, namespace, account, None, new).await
}

/// Lists a token made by [`SessionManager::generate_token`](super::SessionManager::generate_token) in
/// `accounts.<name>.tokens` (`admin.tokens` for admin), which makes it valid.
pub async fn add_api_token(
    client: &kube::Client,
    namespace: &str,
    account: &str,
    token: &ApiToken,
) -> Result<(), AuthError> {
    check_account_name(account)?;
    modify(client, namespace, |accounts| {
        let acc = accounts.get(account).ok_or_else(|| AuthError::AccountNotFound(account.to_string()))?;
        if !acc.has_capability(Capability::ApiKey) {
            return Err(AuthError::MissingCapability {
                account: account.to_string(),
                capability: Capability::ApiKey,
            });
        }
        if acc.token(&token.id).is_some() {
            return Err(AuthError::TokenIdExists(token.id.clone()));
        }
        let mut tokens = acc.tokens.clone();
        tokens.push(token.clone());
        Ok(Some(BTreeMap::from([(tokens_key(account), token_list(&tokens))])))
    })
    .await
    .map(|_| ())
}

/// Removes token `id` from `account`'s list, so it no longer verifies; `false` when there was no such token.
pub async fn delete_api_token(
    client: &kube::Client,
    namespace: &str,
    account: &str,
    id: &str,
) -> Result<bool, AuthError> {
    check_account_name(account)?;
    modify(client, namespace, |accounts| {
        let acc = accounts.get(account).ok_or_else(|| AuthError::AccountNotFound(account.to_string()))?;
        if acc.token(id).is_none() {
            return Ok(None);
        }
        let tokens: Vec<ApiToken> = acc.tokens.iter().filter(|t| t.id != id).cloned().collect();
        Ok(Some(BTreeMap::from([(tokens_key(account), token_list(&tokens))])))
    })
    .await
}

async fn write_password(
    client: &kube::Client,
    namespace: &str,
    account: &str,
    current: Option<&str>,
    new: &str,
) -> Result<(), AuthError> {
    check_account_name(account)?;
    password::check_policy(new)?;
    let new = new.to_string();
    let hash = blocking(move || password::hash(&new, password::PASSWORD_HASH_COST)).await?;
    for _ in 0..ATTEMPTS {
        let (secret, _, accounts) = read(client, namespace).await?;
        let acc = accounts.get(account).ok_or_else(|| AuthError::AccountNotFound(account.to_string()))?;
        if let Some(current) = current {
            let stored = acc.password_hash.clone();
            let current = current.to_string();
            let matched =
                blocking(move || Ok(stored.is_some_and(|h| password::matches(&current, &h)))).await?;
            if !matched {
                return Err(AuthError::WrongCurrentPassword);
            }
        }
        let changes = BTreeMap::from([
            (password_key(account), hash.clone()),
            (password_mtime_key(account), rfc3339(SystemTime::now())),
        ]);
        if patch(client, namespace, &secret, &changes).await? {
            tracing::info!(account, namespace, "password changed");
            return Ok(());
        }
    }
    Err(AuthError::Contended(format!("Secret {namespace}/{ARGOCD_SECRET}")))
}

/// Reads, asks `change` for the keys to write (`None`: nothing to do), and writes them; again on a conflict.
async fn modify(
    client: &kube::Client,
    namespace: &str,
    mut change: impl FnMut(&Accounts) -> Result<Option<BTreeMap<String, String>>, AuthError>,
) -> Result<bool, AuthError> {
    for _ in 0..ATTEMPTS {
        let (secret, _, accounts) = read(client, namespace).await?;
        let Some(changes) = change(&accounts)? else { return Ok(false) };
        if patch(client, namespace, &secret, &changes).await? {
            return Ok(true);
        }
    }
    Err(AuthError::Contended(format!("Secret {namespace}/{ARGOCD_SECRET}")))
}

/// argocd-secret (which must exist: [`super::bootstrap`] makes it), its data, and the accounts.
async fn read(
    client: &kube::Client,
    namespace: &str,
) -> Result<(Secret, BTreeMap<String, ByteString>, Accounts), AuthError> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = secrets
        .get(ARGOCD_SECRET)
        .await
        .map_err(|e| AuthError::kube(format!("reading Secret {namespace}/{ARGOCD_SECRET}"), e))?;
    let config = config_data(client, namespace).await?;
    let data = secret.data.clone().unwrap_or_default();
    let accounts = Accounts::from_data(&config, &data);
    Ok((secret, data, accounts))
}

/// argocd-cm's data; a missing ConfigMap declares no local accounts.
pub(crate) async fn config_data(
    client: &kube::Client,
    namespace: &str,
) -> Result<BTreeMap<String, String>, AuthError> {
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let cm = maps
        .get_opt(ARGOCD_CM)
        .await
        .map_err(|e| AuthError::kube(format!("reading ConfigMap {namespace}/{ARGOCD_CM}"), e))?;
    Ok(cm.and_then(|cm| cm.data).unwrap_or_default())
}

/// Merge-patches `changes` into argocd-secret as read; `false` when it changed since (409 Conflict).
pub(crate) async fn patch(
    client: &kube::Client,
    namespace: &str,
    read: &Secret,
    changes: &BTreeMap<String, String>,
) -> Result<bool, AuthError> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let data: serde_json::Map<String, serde_json::Value> = changes
        .iter()
        .map(|(k, v)| (k.clone(), base64::engine::general_purpose::STANDARD.encode(v).into()))
        .collect();
    let body = serde_json::json!({
        "metadata": {"resourceVersion": read.metadata.resource_version},
        "data": data,
    });
    let params = PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
    match secrets.patch(ARGOCD_SECRET, &params, &Patch::Merge(&body)).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.is_conflict() => Ok(false),
        Err(e) => Err(AuthError::kube(format!("writing Secret {namespace}/{ARGOCD_SECRET}"), e)),
    }
}

fn token_list(tokens: &[ApiToken]) -> String {
    serde_json::to_string(tokens).unwrap_or_else(|_| "[]".into())
}

/// Runs bcrypt off the async workers.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, AuthError> + Send + 'static,
) -> Result<T, AuthError> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(AuthError::Internal(format!("the password hashing task stopped: {e}"))))
}
