//! The browser's SSO routes, as Argo CD serves them: `/auth/login` sends the browser to the provider,
//! `/auth/callback` finishes the login (state, PKCE, nonce and the ID token checked) and sets the
//! `argocd.token` cookie to the ID token, `/auth/logout` ends the session (and the provider's, when
//! `logoutURL` is set). `/api/dex/…` is Dex, proxied when argocd-cm has `dex.config`.

use super::{Shared, harden, session};
use crate::auth::oidc::flow::{self, LoginState, STATE_COOKIE};
use crate::auth::revocations::{self, Revoked};
use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::SystemTime;

/// How much of a request body the Dex proxy forwards (Dex's forms are small).
const DEX_BODY_LIMIT: usize = 64 * 1024;

fn now() -> i64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or_default()
}

/// A short plain-text refusal (never HTML: nothing the provider or the URL says can become markup).
fn refuse(status: StatusCode, message: &str) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], format!("{message}\n")).into_response()
}

fn redirect(to: &str, cookies: &[String]) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(c) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    response
}

/// The state cookie: sent back only to the callback, and on the provider's cross-site redirect (Lax).
fn state_cookie(value: &str, over_tls: bool) -> String {
    let secure = if over_tls { "; Secure" } else { "" };
    let age = if value.is_empty() { 0 } else { flow::STATE_TTL_SECS };
    format!("{STATE_COOKIE}={value}; Path=/auth/callback; Max-Age={age}; HttpOnly; SameSite=Lax{secure}")
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|c| c.split(';'))
        .find_map(|kv| kv.trim().strip_prefix(name).and_then(|rest| rest.strip_prefix('=')))
}

#[derive(serde::Deserialize)]
pub(super) struct LoginQuery {
    return_url: Option<String>,
}

/// `GET /auth/login?return_url=…`: to the provider, with a fresh state, nonce and PKCE verifier sealed in
/// a cookie for the callback.
pub(super) async fn login(
    State(shared): State<Arc<Shared>>,
    tls: Option<axum::Extension<harden::ServedOverTls>>,
    Query(query): Query<LoginQuery>,
) -> Response {
    let Some(sso) = shared.sso.current() else {
        return refuse(
            StatusCode::NOT_FOUND,
            "SSO is not configured (argocd-cm url and oidc.config or dex.config)",
        );
    };
    let over_tls = tls.is_some() || sso.config().url.starts_with("https://");
    let return_to = match flow::return_path(sso.config(), query.return_url.as_deref()) {
        Ok(path) => path,
        Err(reason) => return refuse(StatusCode::BAD_REQUEST, reason),
    };
    let discovery = match sso.provider.discovery().await {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!("SSO login: {e}");
            return refuse(
                StatusCode::BAD_GATEWAY,
                "the identity provider cannot be reached; try again later",
            );
        }
    };
    let login = LoginState::new(return_to, now());
    let to = flow::authorization_url(sso.config(), &discovery.authorization_endpoint, &login);
    redirect(&to, &[state_cookie(&flow::seal(&login, &sso.state_key), over_tls)])
}

#[derive(serde::Deserialize)]
pub(super) struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// `GET /auth/callback`: the provider's answer. The state must be the one this browser's cookie carries
/// (and is good once), the code is exchanged with the PKCE verifier, and the ID token must verify and carry
/// the login's nonce; then the token becomes the session cookie.
pub(super) async fn callback(
    State(shared): State<Arc<Shared>>,
    tls: Option<axum::Extension<harden::ServedOverTls>>,
    headers: HeaderMap,
    Query(query): Query<CallbackQuery>,
) -> Response {
    let Some(sso) = shared.sso.current() else {
        return refuse(StatusCode::NOT_FOUND, "SSO is not configured");
    };
    // Behind a proxy that ends TLS, the external URL says the browser speaks HTTPS.
    let over_tls = tls.is_some() || sso.config().url.starts_with("https://");
    let clear_state = state_cookie("", over_tls);
    let fail = |status: StatusCode, message: &str| {
        let mut r = refuse(status, &format!("login failed: {message}"));
        if let Ok(v) = HeaderValue::from_str(&clear_state) {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
        r
    };
    if let Some(error) = &query.error {
        // The provider's own words are not repeated: only a recognisable error code.
        let code: String =
            error.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').take(64).collect();
        return fail(StatusCode::UNAUTHORIZED, &format!("the identity provider answered {code}"));
    }
    let (Some(code), Some(state)) = (query.code.as_deref(), query.state.as_deref()) else {
        return fail(StatusCode::BAD_REQUEST, "the callback has no code or state");
    };
    let login = match flow::open(cookie(&headers, STATE_COOKIE), &sso.state_key, state, now()) {
        Ok(login) => login,
        Err(e) => return fail(StatusCode::UNAUTHORIZED, &e.to_string()),
    };
    if !shared.sso.use_state_once(&login.state, login.expires) {
        return fail(StatusCode::UNAUTHORIZED, "this login was already finished");
    }
    let tokens = match sso.provider.exchange(code, &login.verifier).await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!("SSO callback: {e}");
            return fail(StatusCode::UNAUTHORIZED, "the identity provider did not accept the login");
        }
    };
    let Some(id_token) = tokens.id_token.filter(|t| !t.is_empty()) else {
        return fail(StatusCode::UNAUTHORIZED, "the identity provider sent no ID token");
    };
    let claims = match shared.sso.verify(&id_token).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("SSO callback: {e}");
            return fail(StatusCode::UNAUTHORIZED, "the ID token did not verify");
        }
    };
    if claims.get("nonce").and_then(serde_json::Value::as_str) != Some(login.nonce.as_str()) {
        return fail(StatusCode::UNAUTHORIZED, "the ID token is not for this login (nonce)");
    }
    if sso.config().userinfo_groups.is_some()
        && let Some(access) = tokens.access_token.as_deref()
    {
        match sso.provider.userinfo(access).await {
            Ok(info) => shared.sso.remember_userinfo(&claims, info),
            Err(e) => tracing::warn!("SSO userinfo: {e}"),
        }
    }
    tracing::info!(user = %crate::rbac::Subject::from_claims(&claims, &[]).name, "SSO login");
    redirect(&login.return_to, &[session::session_cookie(&id_token, over_tls), clear_state])
}

/// `GET|POST /auth/logout`: the session ends (its token refused from now on) and the cookie is cleared; the
/// browser goes to the provider's `logoutURL` when one is set, else to the login page.
pub(super) async fn logout(
    State(shared): State<Arc<Shared>>,
    tls: Option<axum::Extension<harden::ServedOverTls>>,
    headers: HeaderMap,
) -> Response {
    let mut to = "/login".to_string();
    if let Some(token) = session::session_token(&headers) {
        if crate::auth::oidc::is_berth_token(token) {
            if let Ok(claims) = shared.sessions.verify(token) {
                shared.sessions.revoke(&claims);
                revocations::share(&shared.client, &shared.namespace, &Revoked::local(&claims)).await;
            }
        } else if let Ok(claims) = shared.sso.verify(token).await {
            let exp = claims.get("exp").and_then(serde_json::Value::as_f64).unwrap_or_default() as i64;
            shared.sso.revoke(token, exp);
            revocations::share(&shared.client, &shared.namespace, &Revoked::sso(token, exp)).await;
            if let Some(sso) = shared.sso.current()
                && let Some(template) = &sso.config().logout_url
            {
                to = flow::logout_url(template, token, &sso.config().url);
            }
        }
    }
    redirect(&to, &[session::session_cookie("", tls.is_some())])
}

/// `/api/dex/…`: Dex, proxied to the Dex server (`berth run --dex-server`, or the Dex `berth run` started),
/// path and query unchanged; redirects are passed back to the browser, never followed.
pub(super) async fn dex_proxy(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let Some(base) = shared.sso.dex_server() else {
        return refuse(StatusCode::NOT_FOUND, "Dex is not running here (argocd-cm dex.config)");
    };
    let path_and_query = request.uri().path_and_query().map(|p| p.as_str().to_string()).unwrap_or_default();
    let url = format!("{}{path_and_query}", base.trim_end_matches('/'));
    let method = request.method().clone();
    let mut forwarded = reqwest::header::HeaderMap::new();
    for name in [header::CONTENT_TYPE, header::ACCEPT, header::AUTHORIZATION, header::ACCEPT_LANGUAGE] {
        if let Some(v) = request.headers().get(&name) {
            forwarded.insert(name, v.clone());
        }
    }
    // Dex's own cookies go through; berth's session and login state never leave berth.
    let cookies: Vec<&str> = request
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|c| c.split(';'))
        .map(str::trim)
        .filter(|kv| !kv.is_empty() && !kv.starts_with("argocd.token") && !kv.starts_with(STATE_COOKIE))
        .collect();
    if !cookies.is_empty()
        && let Ok(v) = HeaderValue::from_str(&cookies.join("; "))
    {
        forwarded.insert(header::COOKIE, v);
    }
    let body = match axum::body::to_bytes(request.into_body(), DEX_BODY_LIMIT).await {
        Ok(b) => b,
        Err(_) => return refuse(StatusCode::PAYLOAD_TOO_LARGE, "request too large"),
    };
    let answer =
        match shared.sso.dex_client().request(method, &url).headers(forwarded).body(body).send().await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!("Dex proxy: {}", e.without_url());
                return refuse(StatusCode::BAD_GATEWAY, "Dex cannot be reached");
            }
        };
    let mut response = Response::builder().status(answer.status().as_u16());
    for (name, value) in answer.headers() {
        if !matches!(name.as_str(), "connection" | "transfer-encoding" | "keep-alive" | "content-length") {
            response = response.header(name.as_str(), value.as_bytes());
        }
    }
    response
        .body(Body::from_stream(answer.bytes_stream()))
        .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_cookie_goes_only_to_the_callback_and_is_lax_for_the_providers_redirect() {
        assert_eq!(
            state_cookie("v", true),
            "berth.oauthstate=v; Path=/auth/callback; Max-Age=300; HttpOnly; SameSite=Lax; Secure"
        );
        assert!(state_cookie("", false).contains("Max-Age=0"));
    }

    #[test]
    fn cookies_are_found_by_exact_name() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, "berth.oauthstatex=no; berth.oauthstate=yes".parse().unwrap());
        assert_eq!(cookie(&h, STATE_COOKIE), Some("yes"));
    }
}
