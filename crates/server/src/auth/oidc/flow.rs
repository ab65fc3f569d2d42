//! The pieces of the browser's login flow that need no network: the authorization URL with PKCE, state and
//! nonce; the signed state cookie that carries them to the callback (signed with a key derived from
//! argocd-secret's `server.secretkey`, so any replica can finish a login another began); `return_url`
//! checks; and the provider logout URL.

use super::config::SsoConfig;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use rand::RngExt;
use sha2::{Digest, Sha256};

/// The cookie that carries a login's state to the callback.
pub const STATE_COOKIE: &str = "berth.oauthstate";
/// How long a started login may take.
pub const STATE_TTL_SECS: i64 = 300;

/// What the callback needs to finish a login, as the state cookie carries it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LoginState {
    pub state: String,
    pub nonce: String,
    /// The PKCE code verifier (RFC 7636).
    pub verifier: String,
    /// Where the browser goes after the login (a path on this server).
    pub return_to: String,
    /// Seconds since the Unix epoch after which the state is refused.
    pub expires: i64,
}

impl LoginState {
    /// Fresh random state, nonce and verifier.
    pub fn new(return_to: String, now: i64) -> LoginState {
        LoginState {
            state: random(24),
            nonce: random(24),
            verifier: random(32),
            return_to,
            expires: now + STATE_TTL_SECS,
        }
    }
}

fn random(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill(&mut buf[..]);
    URL_SAFE_NO_PAD.encode(buf)
}

/// The PKCE S256 challenge of a verifier: base64url(SHA-256(verifier)).
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// The key state cookies are signed with, derived from `server.secretkey` (never the key itself).
pub fn state_key(server_secret_key: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(server_secret_key).expect("HMAC takes any key");
    mac.update(b"berth oidc login state");
    mac.finalize().into_bytes().to_vec()
}

/// The cookie value: the state as JSON, base64url, a dot, and its HMAC.
pub fn seal(state: &LoginState, key: &[u8]) -> String {
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(state).expect("plain fields serialize"));
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(body.as_bytes());
    format!("{body}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
}

/// Why a callback's state was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("the login's state cookie is missing: start the login again")]
    Missing,
    #[error("the login's state cookie is not valid")]
    Forged,
    #[error("the login took too long: start it again")]
    Expired,
    #[error("the state does not match the login this browser started")]
    Mismatch,
}

/// The state in a cookie value, if it was sealed with `key`, has not expired, and matches the callback's
/// `state` parameter.
pub fn open(cookie: Option<&str>, key: &[u8], state: &str, now: i64) -> Result<LoginState, StateError> {
    let cookie = cookie.ok_or(StateError::Missing)?;
    let (body, tag) = cookie.split_once('.').ok_or(StateError::Forged)?;
    let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| StateError::Forged)?;
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(body.as_bytes());
    mac.verify_slice(&tag).map_err(|_| StateError::Forged)?;
    let bytes = URL_SAFE_NO_PAD.decode(body).map_err(|_| StateError::Forged)?;
    let sealed: LoginState = serde_json::from_slice(&bytes).map_err(|_| StateError::Forged)?;
    if now >= sealed.expires {
        return Err(StateError::Expired);
    }
    let same: bool = sealed.state.len() == state.len()
        && sealed.state.bytes().zip(state.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
    if !same {
        return Err(StateError::Mismatch);
    }
    Ok(sealed)
}

/// The provider's authorization URL for a login.
pub fn authorization_url(config: &SsoConfig, authorization_endpoint: &str, login: &LoginState) -> String {
    let mut url = url::Url::parse(authorization_endpoint)
        .unwrap_or_else(|_| url::Url::parse("http://invalid.invalid/").expect("a valid URL"));
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", &config.client_id)
            .append_pair("redirect_uri", &config.callback_url())
            .append_pair("scope", &scopes(config))
            .append_pair("state", &login.state)
            .append_pair("nonce", &login.nonce)
            .append_pair("code_challenge", &pkce_challenge(&login.verifier))
            .append_pair("code_challenge_method", "S256");
        if let Some(claims) = &config.id_token_claims {
            q.append_pair("claims", &serde_json::json!({ "id_token": claims }).to_string());
        }
    }
    url.to_string()
}

/// The scopes asked for: the configured ones, always with `openid`.
fn scopes(config: &SsoConfig) -> String {
    let mut scopes: Vec<&str> = config.scopes.iter().map(String::as_str).collect();
    if !scopes.contains(&"openid") {
        scopes.insert(0, "openid");
    }
    scopes.join(" ")
}

/// Where a login may return to: a path on this server. An absolute URL counts only when it is under
/// argocd-cm's `url`; anything else (another host, `//host`, `/\host`, a scheme) is refused, so the login
/// can never become an open redirect.
pub fn return_path(config: &SsoConfig, return_url: Option<&str>) -> Result<String, &'static str> {
    let Some(raw) = return_url.map(str::trim).filter(|r| !r.is_empty()) else { return Ok("/".into()) };
    let path = if let Some(rest) = raw.strip_prefix(&config.url) {
        if !(rest.is_empty() || rest.starts_with('/') || rest.starts_with('?')) {
            return Err("return_url is not on this server");
        }
        if rest.is_empty() { "/".to_string() } else { rest.to_string() }
    } else {
        raw.to_string()
    };
    let safe = path.starts_with('/')
        && !path.starts_with("//")
        && !path.contains('\\')
        && !path.chars().any(|c| c.is_control());
    if safe { Ok(path) } else { Err("return_url is not on this server") }
}

/// The provider's logout URL with Argo CD's placeholders filled: `{{token}}` (the ID token, as a hint) and
/// `{{logoutRedirectURL}}` (this server's `url`).
pub fn logout_url(template: &str, id_token: &str, url: &str) -> String {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    template.replace("{{token}}", &enc(id_token)).replace("{{logoutRedirectURL}}", &enc(url))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> SsoConfig {
        SsoConfig {
            id_token_claims: Some(serde_json::json!({"groups": {"essential": true}})),
            ..crate::auth::oidc::config::example()
        }
    }

    #[test]
    fn the_pkce_challenge_is_rfc_7636s() {
        // RFC 7636 appendix B.
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn the_authorization_url_carries_pkce_state_nonce_and_claims() {
        let login = LoginState::new("/applications".into(), 0);
        let url =
            url::Url::parse(&authorization_url(&config(), "https://idp.example.com/authorize?x=1", &login))
                .unwrap();
        let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(q["x"], "1");
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["redirect_uri"], "https://cd.example.com/auth/callback");
        assert_eq!(q["scope"], "openid profile groups");
        assert_eq!(q["state"], login.state);
        assert_eq!(q["nonce"], login.nonce);
        assert_eq!(q["code_challenge"], pkce_challenge(&login.verifier));
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["claims"], r#"{"id_token":{"groups":{"essential":true}}}"#);
        assert!(login.verifier.len() >= 43, "RFC 7636 wants 43 to 128 characters");
    }

    #[test]
    fn the_state_cookie_opens_only_with_its_key_its_state_and_in_time() {
        let key = state_key(b"server-key");
        let login = LoginState::new("/".into(), 1000);
        let cookie = seal(&login, &key);
        assert_eq!(open(Some(&cookie), &key, &login.state, 1000), Ok(login.clone()));
        assert_eq!(open(None, &key, &login.state, 1000), Err(StateError::Missing));
        assert_eq!(open(Some(&cookie), &state_key(b"other"), &login.state, 1000), Err(StateError::Forged));
        assert_eq!(open(Some(&cookie), &key, "another-state", 1000), Err(StateError::Mismatch));
        assert_eq!(open(Some(&cookie), &key, &login.state, 1000 + STATE_TTL_SECS), Err(StateError::Expired));
        let (body, tag) = cookie.split_once('.').unwrap();
        let mut forged: LoginState = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).unwrap()).unwrap();
        forged.return_to = "https://evil.example".into();
        let tampered = format!("{}.{tag}", URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap()));
        assert_eq!(open(Some(&tampered), &key, &login.state, 1000), Err(StateError::Forged));
        assert_eq!(open(Some("garbage"), &key, &login.state, 1000), Err(StateError::Forged));
    }

    #[test]
    fn return_urls_stay_on_this_server() {
        let c = config();
        assert_eq!(return_path(&c, None).unwrap(), "/");
        assert_eq!(return_path(&c, Some("/applications?proj=a")).unwrap(), "/applications?proj=a");
        assert_eq!(return_path(&c, Some("https://cd.example.com/applications")).unwrap(), "/applications");
        assert_eq!(return_path(&c, Some("https://cd.example.com")).unwrap(), "/");
        for evil in [
            "https://evil.example.com/",
            "https://cd.example.com.evil.com/",
            "https://cd.example.com@evil.com/",
            "//evil.example.com/",
            "/\\evil.example.com",
            "javascript:alert(1)",
            "evil.example.com",
            "/ok\r\nSet-Cookie: x",
        ] {
            assert!(return_path(&c, Some(evil)).is_err(), "{evil} must be refused");
        }
    }

    #[test]
    fn the_logout_url_fills_argo_cds_placeholders() {
        assert_eq!(
            logout_url(
                "https://idp/logout?id_token_hint={{token}}&post_logout_redirect_uri={{logoutRedirectURL}}",
                "a.b.c",
                "https://cd.example.com"
            ),
            "https://idp/logout?id_token_hint=a.b.c&post_logout_redirect_uri=https%3A%2F%2Fcd.example.com"
        );
    }
}
