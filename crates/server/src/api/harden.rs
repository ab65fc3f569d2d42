//! What every request passes through before its handler, and how connections are served: the headers that
//! keep the UI out of other sites' frames (argocd-cm `server.x.frame.options`, default `sameorigin`, and
//! `server.content.security.policy`, default `frame-ancestors 'self';`), the JSON-only rule for requests a
//! browser could forge with the session cookie (CVE-2024-22424; argocd-cm `server.api.content.types`), body
//! limits by route, and the header-read timeout that drops slow and idle clients.

use super::{ApiError, Shared};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Argo CD's default `X-Frame-Options`.
pub const DEFAULT_FRAME_OPTIONS: &str = "sameorigin";
/// Argo CD's default `Content-Security-Policy`.
pub const DEFAULT_CONTENT_SECURITY_POLICY: &str = "frame-ancestors 'self';";
/// Argo CD's default list of content types a state-changing API request may carry.
pub const DEFAULT_API_CONTENT_TYPES: &str = "application/json";

/// The body limit of most JSON routes.
pub const JSON_BODY_LIMIT: usize = 1024 * 1024;
/// The body limit of a login (a username and a password).
pub const LOGIN_BODY_LIMIT: usize = 64 * 1024;
/// The body limit of an Application created or updated whole.
pub const APPLICATION_BODY_LIMIT: usize = 8 * 1024 * 1024;

/// How long a client may take to send a request's headers, and how long an idle keep-alive connection
/// stays open (hyper's header-read timer also runs while it waits for the next request).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(20);
/// HTTP/2 pings: a peer that answers none within the timeout is dropped.
const HTTP2_KEEPALIVE: Duration = Duration::from_secs(30);
const HTTP2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// The HTTP settings of argocd-cm, replaced when it changes.
#[derive(Clone, Debug)]
pub struct HttpSettings {
    frame_options: Option<HeaderValue>,
    content_security_policy: Option<HeaderValue>,
    /// Lower-case media types; empty means any.
    content_types: Vec<String>,
    /// How objects name their application (argocd-cm tracking method, instance label, `installationID`).
    pub(crate) tracking: berth_engine::tracking::Tracking,
    /// argocd-cm `webhook.maxPayloadSizeMB`, in bytes.
    pub(crate) webhook_max_payload: usize,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings::from_config_map(&BTreeMap::new())
    }
}

impl HttpSettings {
    /// Reads argocd-cm: a key that is absent takes Argo CD's default, a key set to `""` turns the header
    /// (or the content-type check) off. A value that is not a valid header value is logged and the default
    /// kept.
    pub fn from_config_map(data: &BTreeMap<String, String>) -> HttpSettings {
        let header = |key: &str, default: &'static str| -> Option<HeaderValue> {
            match data.get(key).map(|v| v.trim()) {
                None => Some(HeaderValue::from_static(default)),
                Some("") => None,
                Some(value) => HeaderValue::from_str(value).map(Some).unwrap_or_else(|_| {
                    tracing::warn!(key, "argocd-cm: not a valid header value; the default stays");
                    Some(HeaderValue::from_static(default))
                }),
            }
        };
        let content_types = data
            .get("server.api.content.types")
            .map_or(DEFAULT_API_CONTENT_TYPES, String::as_str)
            .split(';')
            .map(|t| t.trim().to_ascii_lowercase())
            .filter(|t| !t.is_empty())
            .collect();
        HttpSettings {
            frame_options: header("server.x.frame.options", DEFAULT_FRAME_OPTIONS),
            content_security_policy: header(
                "server.content.security.policy",
                DEFAULT_CONTENT_SECURITY_POLICY,
            ),
            content_types,
            tracking: berth_engine::tracking::Tracking::from_argocd_cm(data, &mut Vec::new()),
            webhook_max_payload: crate::webhook::max_payload_bytes(data),
        }
    }

    /// Is `request` one a browser could send with the session cookie from another site, without the
    /// content type an API client sends? Bearer requests (the CLI) cannot be forged that way, a webhook is
    /// authenticated by its signature, and the login carries no session.
    fn refuses(&self, request: &Request) -> bool {
        let method = request.method();
        if self.content_types.is_empty()
            || matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
            || !request.uri().path().starts_with("/api/")
        {
            return false;
        }
        let path = request.uri().path().trim_end_matches('/');
        if path == "/api/webhook" || (method == Method::POST && path == "/api/v1/session") || is_dex(path) {
            return false;
        }
        let headers = request.headers();
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("Bearer "));
        if bearer {
            return false;
        }
        let essence = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or_default().trim().to_ascii_lowercase());
        !essence.is_some_and(|t| self.content_types.contains(&t))
    }
}

/// Is `path` Dex's, proxied (its login forms are Dex's own, posted before any session exists)?
fn is_dex(path: &str) -> bool {
    path == crate::auth::oidc::config::DEX_PATH
        || path.strip_prefix(crate::auth::oidc::config::DEX_PATH).is_some_and(|rest| rest.starts_with('/'))
}

/// Is `request` one that changes state and needs a session (every `/api/` one but the login, the logout
/// and the webhook)? Those are refused before their body is read when the session does not verify, so
/// an anonymous client cannot make the server read a body at all.
fn needs_session(request: &Request) -> bool {
    let method = request.method();
    let path = request.uri().path().trim_end_matches('/');
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
        && path.starts_with("/api/")
        && path != "/api/webhook"
        && path != "/api/v1/session"
        && !is_dex(path)
}

/// The middleware of every route: refuses forgeable state-changing requests (415, as Argo CD) and
/// anonymous ones (401, before reading their body), and adds the framing headers to every answer.
pub(crate) async fn guard(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let settings = shared.http_settings();
    let mut response = if needs_session(&request)
        && super::session::authenticate(&shared, request.headers()).await.is_err()
    {
        ApiError::unauthenticated("no session information").into_response()
    } else if settings.refuses(&request) {
        ApiError::bad_request(
            "Invalid content type: state-changing requests must send Content-Type: application/json",
        )
        .with_status(StatusCode::UNSUPPORTED_MEDIA_TYPE)
        .into_response()
    } else {
        next.run(request).await
    };
    let headers = response.headers_mut();
    if let Some(value) = &settings.frame_options {
        headers.insert(header::X_FRAME_OPTIONS, value.clone());
    }
    if let Some(value) = &settings.content_security_policy {
        headers.insert(header::CONTENT_SECURITY_POLICY, value.clone());
    }
    response
}

/// Marks requests that came over TLS, so the session cookie is `Secure` there.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ServedOverTls;

/// The connection settings of every listener: a header-read timeout (with a timer, without which hyper
/// has none) that also closes idle keep-alive connections, and HTTP/2 keep-alive pings.
pub(crate) fn connection_builder() -> hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor> {
    use hyper_util::rt::{TokioExecutor, TokioTimer};
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(HTTP2_KEEPALIVE)
        .keep_alive_timeout(HTTP2_KEEPALIVE_TIMEOUT);
    builder
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, path: &str, headers: &[(&str, &str)]) -> Request {
        let mut builder = axum::http::Request::builder().method(method).uri(path);
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        builder.body(axum::body::Body::empty()).unwrap()
    }

    #[test]
    fn cookie_requests_that_change_state_need_the_json_content_type() {
        let s = HttpSettings::default();
        let cookie = ("cookie", "argocd.token=x");
        assert!(s.refuses(&request("POST", "/api/v1/applications/web/sync", &[cookie])));
        assert!(s.refuses(&request("DELETE", "/api/v1/applications/web", &[cookie])));
        assert!(s.refuses(&request(
            "POST",
            "/api/v1/applications/web/sync",
            &[cookie, ("content-type", "text/plain")]
        )));
        assert!(!s.refuses(&request(
            "POST",
            "/api/v1/applications/web/sync",
            &[cookie, ("content-type", "application/json; charset=utf-8")]
        )));
        assert!(!s.refuses(&request(
            "POST",
            "/api/v1/applications/web/sync",
            &[("authorization", "Bearer t")]
        )));
        assert!(!s.refuses(&request("GET", "/api/v1/applications", &[cookie])));
        assert!(!s.refuses(&request(
            "POST",
            "/api/webhook",
            &[("content-type", "application/x-www-form-urlencoded")]
        )));
        assert!(!s.refuses(&request("POST", "/api/v1/session", &[])));
    }

    #[test]
    fn argocd_cm_sets_or_turns_off_the_framing_headers() {
        let s = HttpSettings::default();
        assert_eq!(s.frame_options.as_ref().unwrap(), "sameorigin");
        assert_eq!(s.content_security_policy.as_ref().unwrap(), "frame-ancestors 'self';");
        let data: BTreeMap<String, String> = [
            ("server.x.frame.options".to_string(), "".to_string()),
            ("server.content.security.policy".to_string(), "frame-ancestors 'none';".to_string()),
            ("server.api.content.types".to_string(), "".to_string()),
        ]
        .into();
        let s = HttpSettings::from_config_map(&data);
        assert!(s.frame_options.is_none());
        assert_eq!(s.content_security_policy.as_ref().unwrap(), "frame-ancestors 'none';");
        assert!(!s.refuses(&request(
            "POST",
            "/api/v1/applications/web/sync",
            &[("cookie", "argocd.token=x")]
        )));
    }
}
