//! Who is calling: sessions (login, logout, userinfo) and the [`Caller`] every authenticated handler takes.

use super::{ApiError, Shared, harden};
use crate::auth::revocations::{self, Revoked};
use crate::rbac::Subject;
use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// The authenticated caller of a request, as a handler takes it: the account behind the session token
/// (`Authorization: Bearer …` or Argo CD's `argocd.token` cookie). A request without a valid one is
/// refused with 401 before the handler runs, unless argocd-cm `users.anonymous.enabled` is `"true"`: then
/// it is the anonymous caller, whom RBAC gives `policy.default` only. RBAC is asked with it as a
/// [`Subject`] (`&caller` derefs).
pub(crate) struct Caller {
    pub subject: Subject,
    /// The token the request carried: a stream checks it again while it lasts. Empty for the anonymous
    /// caller.
    pub token: String,
}

impl Caller {
    /// The caller without a session (a name and groups no policy line can match).
    fn anonymous() -> Caller {
        Caller { subject: Subject::anonymous(), token: String::new() }
    }

    /// Whether this is the anonymous caller rather than a session's.
    pub fn is_anonymous(&self) -> bool {
        self.token.is_empty()
    }

    /// Whether the session is a local account's (a token berth signed for an account), not an SSO user's or
    /// a project role's: only then is the caller the account of its name (an SSO user whose provider calls
    /// it `ci` is not the local account `ci`, as in Argo CD).
    pub fn is_local_account(&self) -> bool {
        !self.token.is_empty()
            && !crate::auth::is_project_token(&self.token)
            && crate::auth::oidc::is_berth_token(&self.token)
    }
}

impl std::ops::Deref for Caller {
    type Target = Subject;
    fn deref(&self) -> &Subject {
        &self.subject
    }
}

impl FromRequestParts<Arc<Shared>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, shared: &Arc<Shared>) -> Result<Self, ApiError> {
        authenticate(shared, &parts.headers).await
    }
}

/// The caller of a request with these headers, or 401 (`no session information`, `invalid session`). With
/// anonymous access on, a request whose session is missing or does not verify is the anonymous caller, as
/// in Argo CD; nothing of a token that failed to verify is ever used (GHSA-r642-gv9p-2wjj).
///
/// A token berth signed (`iss: argocd`) is a local account's or a project role's; any other is an ID token
/// of the SSO provider, whose claims give the caller's name and groups (argocd-rbac-cm `scopes`).
pub(crate) async fn authenticate(
    shared: &Shared,
    headers: &axum::http::HeaderMap,
) -> Result<Caller, ApiError> {
    let verified = match session_token(headers) {
        None => Err(ApiError::unauthenticated("no session information")),
        Some(token) => {
            verify_token(shared, token).await.map(|subject| Caller { subject, token: token.to_string() })
        }
    };
    match verified {
        Err(_) if shared.sessions.accounts().server.anonymous_enabled => Ok(Caller::anonymous()),
        other => other,
    }
}

/// The RBAC subject of a session token, or 401.
async fn verify_token(shared: &Shared, token: &str) -> Result<Subject, ApiError> {
    let invalid = |_| ApiError::unauthenticated("invalid session");
    if crate::auth::is_project_token(token) {
        return shared
            .sessions
            .verify_project_token(token, &shared.rbac.current())
            .map(|claims| claims.subject())
            .map_err(invalid);
    }
    if crate::auth::oidc::is_berth_token(token) {
        return shared.sessions.verify(token).map(|claims| Subject::user(claims.account)).map_err(invalid);
    }
    match shared.sso.verify(token).await {
        Ok(claims) => Ok(Subject::from_claims(&claims, shared.rbac.current().scopes())),
        Err(e) => {
            tracing::debug!("SSO token refused: {e}");
            Err(ApiError::unauthenticated("invalid session"))
        }
    }
}

/// Whether a session token still verifies now, without waiting on the network (streams check theirs
/// again whenever a session may have ended).
pub(crate) fn still_valid(shared: &Shared, token: &str) -> bool {
    if crate::auth::is_project_token(token) {
        shared.sessions.verify_project_token(token, &shared.rbac.current()).is_ok()
    } else if crate::auth::oidc::is_berth_token(token) {
        shared.sessions.verify(token).is_ok()
    } else {
        shared.sso.verify_now(token).is_ok()
    }
}

/// The token of a request: `Authorization: Bearer …` or Argo CD's `argocd.token` cookie.
pub(crate) fn session_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    bearer.or_else(|| {
        headers
            .get_all(axum::http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|c| c.split(';').map(str::trim).find_map(|kv| kv.strip_prefix("argocd.token=")))
    })
}

#[derive(serde::Deserialize)]
pub(super) struct LoginRequest {
    username: String,
    password: String,
}

/// `POST /api/v1/session`: a token for a local account (the admin's initial password is in
/// argocd-initial-admin-secret). Also set as Argo CD's `argocd.token` cookie.
pub(super) async fn login(
    State(shared): State<Arc<Shared>>,
    tls: Option<axum::Extension<harden::ServedOverTls>>,
    Json(request): Json<LoginRequest>,
) -> Response {
    let outcome =
        tokio::task::spawn_blocking(move || shared.sessions.login(&request.username, &request.password))
            .await;
    match outcome {
        Ok(Ok(token)) => (
            [(axum::http::header::SET_COOKIE, session_cookie(&token, tls.is_some()))],
            Json(serde_json::json!({"token": token})),
        )
            .into_response(),
        Ok(Err(e)) => ApiError::from_auth(&e).into_response(),
        Err(e) => ApiError::internal(e.to_string()).into_response(),
    }
}

/// Argo CD's `argocd.token` cookie: never readable by scripts, never sent from another site's page, and
/// `Secure` when served over HTTPS so it never travels in clear. An empty token clears it.
pub(crate) fn session_cookie(token: &str, over_tls: bool) -> String {
    let expiry = if token.is_empty() { "; Max-Age=0" } else { "" };
    let secure = if over_tls { "; Secure" } else { "" };
    format!("argocd.token={token}; Path=/{expiry}; HttpOnly; SameSite=Strict{secure}")
}

/// `DELETE /api/v1/session`: the token stops working and the cookie is cleared (logout).
pub(super) async fn logout(
    State(shared): State<Arc<Shared>>,
    tls: Option<axum::Extension<harden::ServedOverTls>>,
    headers: axum::http::HeaderMap,
) -> Response {
    if let Some(claims) = session_token(&headers).and_then(|t| shared.sessions.verify(t).ok()) {
        shared.sessions.revoke(&claims);
        revocations::share(&shared.client, &shared.namespace, &Revoked::local(&claims)).await;
    }
    ([(axum::http::header::SET_COOKIE, session_cookie("", tls.is_some()))], Json(serde_json::json!({})))
        .into_response()
}

/// `GET /api/v1/session/userinfo`: who the session is. The anonymous caller is not logged in (Argo CD
/// answers the same), whatever RBAC lets it read.
pub(super) async fn userinfo(
    State(shared): State<Arc<Shared>>,
    headers: axum::http::HeaderMap,
) -> Json<serde_json::Value> {
    match authenticate(&shared, &headers).await {
        Ok(caller) if caller.is_anonymous() => Json(serde_json::json!({"loggedIn": false})),
        Ok(Caller { subject, token }) => {
            let iss = if crate::auth::oidc::is_berth_token(&token) {
                crate::auth::ISSUER.to_string()
            } else {
                shared.sso.current().map(|s| s.config().issuer.clone()).unwrap_or_default()
            };
            Json(
                serde_json::json!({"loggedIn": true, "username": subject.name, "iss": iss, "groups": subject.groups}),
            )
        }
        Err(_) => Json(serde_json::json!({"loggedIn": false})),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> axum::http::HeaderMap {
        pairs.iter().map(|(k, v)| (axum::http::HeaderName::from_static(k), v.parse().unwrap())).collect()
    }

    #[test]
    fn the_token_comes_from_the_bearer_header_or_argo_cds_cookie() {
        assert_eq!(session_token(&headers(&[("authorization", "Bearer abc ")])), Some("abc"));
        assert_eq!(
            session_token(&headers(&[("cookie", "theme=dark; argocd.token=xyz; other=1")])),
            Some("xyz")
        );
        assert_eq!(
            session_token(&headers(&[("authorization", "Bearer abc"), ("cookie", "argocd.token=xyz")])),
            Some("abc")
        );
        assert_eq!(session_token(&headers(&[("authorization", "Basic abc")])), None);
        assert_eq!(session_token(&headers(&[])), None);
    }

    #[test]
    fn the_session_cookie_is_http_only_strict_and_secure_over_tls() {
        assert_eq!(session_cookie("t", false), "argocd.token=t; Path=/; HttpOnly; SameSite=Strict");
        assert_eq!(session_cookie("t", true), "argocd.token=t; Path=/; HttpOnly; SameSite=Strict; Secure");
        assert!(session_cookie("", false).contains("Max-Age=0"));
    }
}
