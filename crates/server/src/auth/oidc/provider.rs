//! The OIDC provider as the server talks to it: discovery, the signing keys (JWKS, fetched again when a
//! token names a key not seen yet, so a provider's key rotation needs no restart), ID token verification,
//! the code exchange and the userinfo endpoint.
//!
//! For Dex, the issuer is `<url>/api/dex`, which may not be reachable from the server itself (behind an
//! ingress): requests under the issuer go to the Dex server's address instead, as Argo CD does.

use super::config::SsoConfig;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, jwk::JwkSet};
use serde::Deserialize;
use serde_json::Value;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// The signing keys are fetched again at most this often when tokens name unknown keys (a flood of forged
/// key ids must not become a flood of requests to the provider).
const KEY_REFETCH_INTERVAL: Duration = Duration::from_secs(10);
/// Answers larger than this from the provider are refused.
const MAX_ANSWER_BYTES: usize = 1 << 20;
/// The algorithms an ID token may be signed with: public-key ones only, so a provider's public key can
/// never be used as an HMAC secret.
const ALGORITHMS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Why a provider call or a token was refused. Messages name no token and no secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OidcError {
    #[error("invalid token: {0}")]
    TokenInvalid(&'static str),
    #[error("token has expired")]
    TokenExpired,
    #[error("token is revoked, please re-login")]
    TokenRevoked,
    #[error("the identity provider: {0}")]
    Provider(String),
}

/// The provider's discovery document (the fields berth uses).
#[derive(Clone, Debug, Deserialize)]
pub struct Discovery {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    #[serde(default)]
    pub userinfo_endpoint: Option<String>,
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Vec<String>,
}

/// The token endpoint's answer.
#[derive(Deserialize)]
pub struct Tokens {
    pub id_token: Option<String>,
    #[serde(default)]
    pub access_token: Option<String>,
}

struct Keys {
    set: JwkSet,
    fetched: Option<Instant>,
}

/// One provider: shared by every request while its settings stay the same.
pub struct Provider {
    config: Arc<SsoConfig>,
    http: reqwest::Client,
    /// For Dex: the Dex server's address that replaces the issuer's for the server's own calls.
    internal_base: Option<String>,
    discovery: RwLock<Option<Arc<Discovery>>>,
    keys: RwLock<Arc<Keys>>,
    refetch: tokio::sync::Mutex<()>,
    /// When the keys were last asked for because of an unknown key id.
    last_refetch: Mutex<Option<Instant>>,
}

impl Provider {
    /// A provider for `config`; `dex_server` is the Dex server's base URL (`http://127.0.0.1:5556`) when
    /// Dex runs elsewhere than under `url`. Nothing is fetched yet.
    pub fn new(config: Arc<SsoConfig>, dex_server: Option<&str>) -> Result<Provider, OidcError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none());
        if let Some(pem) = &config.root_ca {
            let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                .map_err(|e| OidcError::Provider(format!("oidc.config rootCA: {e}")))?;
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http =
            builder.build().map_err(|e| OidcError::Provider(format!("building the HTTP client: {e}")))?;
        let internal_base = match (config.is_dex(), dex_server) {
            (true, Some(base)) => Some(format!("{}{}", base.trim_end_matches('/'), super::config::DEX_PATH)),
            _ => None,
        };
        Ok(Provider {
            config,
            http,
            internal_base,
            discovery: RwLock::new(None),
            keys: RwLock::new(Arc::new(Keys { set: JwkSet { keys: Vec::new() }, fetched: None })),
            refetch: tokio::sync::Mutex::new(()),
            last_refetch: Mutex::new(None),
        })
    }

    pub fn config(&self) -> &SsoConfig {
        &self.config
    }

    /// Where the server itself sends a request for `url` (a URL the provider published).
    fn internal(&self, url: &str) -> String {
        match &self.internal_base {
            Some(base) => match url.strip_prefix(&self.config.issuer) {
                Some(rest) => format!("{base}{rest}"),
                None => url.to_string(),
            },
            None => url.to_string(),
        }
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str, what: &str) -> Result<T, OidcError> {
        let response = self
            .http
            .get(self.internal(url))
            .send()
            .await
            .map_err(|e| OidcError::Provider(format!("{what}: {}", without_query(&e))))?;
        read_json(response, what).await
    }

    /// The discovery document, fetched once and kept.
    pub async fn discovery(&self) -> Result<Arc<Discovery>, OidcError> {
        if let Some(d) = self.discovery.read().unwrap_or_else(|e| e.into_inner()).clone() {
            return Ok(d);
        }
        let url = format!("{}/.well-known/openid-configuration", self.config.issuer);
        let d: Discovery = self.get_json(&url, "discovery").await?;
        if d.issuer.trim_end_matches('/') != self.config.issuer.trim_end_matches('/') {
            return Err(OidcError::Provider(format!(
                "discovery: the provider says its issuer is {}, not {}",
                d.issuer, self.config.issuer
            )));
        }
        let d = Arc::new(d);
        *self.discovery.write().unwrap_or_else(|e| e.into_inner()) = Some(d.clone());
        Ok(d)
    }

    /// Fetches the signing keys, at most once per [`KEY_REFETCH_INTERVAL`] unless none were fetched yet.
    async fn refetch_keys(&self) -> Result<(), OidcError> {
        let _one = self.refetch.lock().await;
        {
            let mut last = self.last_refetch.lock().unwrap_or_else(|e| e.into_inner());
            let fetched_before = self.keys.read().unwrap_or_else(|e| e.into_inner()).fetched.is_some();
            if fetched_before && last.is_some_and(|t| t.elapsed() < KEY_REFETCH_INTERVAL) {
                return Ok(());
            }
            *last = Some(Instant::now());
        }
        let jwks_uri = self.discovery().await?.jwks_uri.clone();
        let set: JwkSet = self.get_json(&jwks_uri, "signing keys").await?;
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) =
            Arc::new(Keys { set, fetched: Some(Instant::now()) });
        Ok(())
    }

    /// Verifies an ID token (signature by a key of the provider, issuer, audience, expiry) and returns its
    /// claims; fetches the provider's keys when the token names one not seen yet.
    pub async fn verify(&self, token: &str, now: SystemTime) -> Result<Value, OidcError> {
        match self.verify_with_known_keys(token, now) {
            Err(OidcError::TokenInvalid(UNKNOWN_KEY)) => {
                self.refetch_keys().await?;
                self.verify_with_known_keys(token, now)
            }
            other => other,
        }
    }

    /// [`verify`](Self::verify) with the keys already fetched (no I/O): for checks that must not wait.
    pub fn verify_with_known_keys(&self, token: &str, now: SystemTime) -> Result<Value, OidcError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| OidcError::TokenInvalid("malformed token"))?;
        if !ALGORITHMS.contains(&header.alg) {
            return Err(OidcError::TokenInvalid("unexpected signing algorithm"));
        }
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner()).clone();
        let candidates: Vec<&jsonwebtoken::jwk::Jwk> = match &header.kid {
            Some(kid) => keys.set.find(kid).into_iter().collect(),
            None => keys.set.keys.iter().collect(),
        };
        if candidates.is_empty() {
            return Err(OidcError::TokenInvalid(UNKNOWN_KEY));
        }
        let mut validation = Validation::new(header.alg);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.leeway = 0;
        let mut last = OidcError::TokenInvalid("signature is invalid");
        for jwk in candidates {
            let Ok(key) = DecodingKey::from_jwk(jwk) else { continue };
            match jsonwebtoken::decode::<Value>(token, &key, &validation) {
                Ok(data) => return self.check_claims(data.claims, now),
                Err(e) => {
                    last = OidcError::TokenInvalid(match e.kind() {
                        jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => "unexpected signing algorithm",
                        jsonwebtoken::errors::ErrorKind::InvalidSignature => "signature is invalid",
                        _ => "malformed token",
                    })
                }
            }
        }
        Err(last)
    }

    fn check_claims(&self, claims: Value, now: SystemTime) -> Result<Value, OidcError> {
        if claims.get("iss").and_then(Value::as_str) != Some(self.config.issuer.as_str()) {
            return Err(OidcError::TokenInvalid("not issued by the configured issuer"));
        }
        let audiences: Vec<&str> = match claims.get("aud") {
            Some(Value::String(a)) => vec![a.as_str()],
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if audiences.is_empty() {
            if !self.config.skip_audience_when_none {
                return Err(OidcError::TokenInvalid("the token has no audience"));
            }
        } else if !audiences.iter().any(|a| self.config.audiences.iter().any(|allowed| allowed == a)) {
            return Err(OidcError::TokenInvalid("the token is for another audience"));
        }
        let now = now.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or_default();
        let exp = claims.get("exp").and_then(Value::as_f64).ok_or(OidcError::TokenInvalid("no exp claim"))?;
        if now >= exp {
            return Err(OidcError::TokenExpired);
        }
        if claims.get("nbf").and_then(Value::as_f64).is_some_and(|nbf| now < nbf) {
            return Err(OidcError::TokenInvalid("not valid yet"));
        }
        Ok(claims)
    }

    /// Exchanges an authorization code (with the PKCE verifier) for tokens at the token endpoint.
    pub async fn exchange(&self, code: &str, verifier: &str) -> Result<Tokens, OidcError> {
        let d = self.discovery().await?;
        let redirect = self.config.callback_url();
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect.as_str()),
            ("code_verifier", verifier),
        ];
        let mut request = self.http.post(self.internal(&d.token_endpoint));
        let secret = self.config.client_secret.0.as_str();
        let post_only = !d.token_endpoint_auth_methods_supported.is_empty()
            && !d.token_endpoint_auth_methods_supported.iter().any(|m| m == "client_secret_basic");
        if secret.is_empty() || post_only {
            form.push(("client_id", &self.config.client_id));
            if !secret.is_empty() {
                form.push(("client_secret", secret));
            }
        } else {
            // RFC 6749 2.3.1: the id and secret are form-encoded before they go into Basic.
            request = request.basic_auth(form_encode(&self.config.client_id), Some(form_encode(secret)));
        }
        let response = request
            .form(&form)
            .send()
            .await
            .map_err(|e| OidcError::Provider(format!("token endpoint: {}", without_query(&e))))?;
        read_json(response, "token endpoint").await
    }

    /// The userinfo endpoint's claims for an access token.
    pub async fn userinfo(&self, access_token: &str) -> Result<Value, OidcError> {
        let d = self.discovery().await?;
        let url = match (&self.config.userinfo_groups, &d.userinfo_endpoint) {
            (Some(path), _) if path.starts_with('/') => format!("{}{path}", self.config.issuer),
            (_, Some(endpoint)) => endpoint.clone(),
            _ => return Err(OidcError::Provider("no userinfo endpoint".into())),
        };
        let response = self
            .http
            .get(self.internal(&url))
            .bearer_auth(access_token)
            .send()
            .await
            .map_err(|e| OidcError::Provider(format!("userinfo: {}", without_query(&e))))?;
        read_json(response, "userinfo").await
    }
}

const UNKNOWN_KEY: &str = "signed by a key the provider does not publish";

fn form_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A reqwest error without the URL's query (which may hold a code or a token).
fn without_query(e: &reqwest::Error) -> String {
    let mut e = e.to_string();
    if let Some(i) = e.find('?') {
        e.truncate(i);
    }
    e
}

async fn read_json<T: serde::de::DeserializeOwned>(
    mut response: reqwest::Response,
    what: &str,
) -> Result<T, OidcError> {
    let status = response.status();
    let mut body = Vec::new();
    while let Some(chunk) =
        response.chunk().await.map_err(|e| OidcError::Provider(format!("{what}: {}", without_query(&e))))?
    {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(OidcError::Provider(format!(
                "{what}: the answer is larger than {MAX_ANSWER_BYTES} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    if !status.is_success() {
        // An OAuth error answer names the error; nothing else of the body is repeated.
        let error = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
            .filter(|e| e.len() < 64 && e.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
        return Err(OidcError::Provider(match error {
            Some(e) => format!("{what} answered {status}: {e}"),
            None => format!("{what} answered {status}"),
        }));
    }
    serde_json::from_slice(&body)
        .map_err(|e| OidcError::Provider(format!("{what}: not the expected JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn provider(skip_audience_when_none: bool) -> Provider {
        let config = SsoConfig {
            cli_client_id: Some("berth-cli".into()),
            audiences: vec!["berth".into(), "berth-cli".into()],
            skip_audience_when_none,
            ..crate::auth::oidc::config::example()
        };
        Provider::new(Arc::new(config), None).unwrap()
    }

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn claims(extra: Value) -> Value {
        let mut c =
            json!({"iss": "https://idp.example.com", "aud": "berth", "sub": "u1", "exp": 2000, "iat": 1000});
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c
    }

    #[test]
    fn claims_must_name_the_issuer_an_allowed_audience_and_a_future_expiry() {
        let p = provider(false);
        assert!(p.check_claims(claims(json!({})), at(1500)).is_ok());
        assert!(p.check_claims(claims(json!({"aud": ["other", "berth-cli"]})), at(1500)).is_ok());
        let refused = |extra: Value, now: u64| p.check_claims(claims(extra), at(now)).unwrap_err();
        assert_eq!(
            refused(json!({"iss": "https://idp.example.com.evil"}), 1500),
            OidcError::TokenInvalid("not issued by the configured issuer")
        );
        assert_eq!(
            refused(json!({"aud": "other"}), 1500),
            OidcError::TokenInvalid("the token is for another audience")
        );
        assert_eq!(refused(json!({"aud": null}), 1500), OidcError::TokenInvalid("the token has no audience"));
        assert_eq!(refused(json!({}), 2000), OidcError::TokenExpired);
        assert_eq!(refused(json!({"exp": null}), 1500), OidcError::TokenInvalid("no exp claim"));
        assert_eq!(refused(json!({"nbf": 1600}), 1500), OidcError::TokenInvalid("not valid yet"));
        assert!(provider(true).check_claims(claims(json!({"aud": null})), at(1500)).is_ok());
    }

    #[test]
    fn unsigned_hmac_and_malformed_tokens_are_refused_before_any_key_is_looked_up() {
        use base64::Engine;
        let p = provider(false);
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let body = b64(&claims(json!({})).to_string());
        let none = format!("{}.{body}.", b64(r#"{"alg":"none","typ":"JWT"}"#));
        assert!(p.verify_with_known_keys(&none, at(1500)).is_err());
        let hs = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::HS256),
            &claims(json!({})),
            &jsonwebtoken::EncodingKey::from_secret(b"a public key used as a secret"),
        )
        .unwrap();
        assert_eq!(
            p.verify_with_known_keys(&hs, at(1500)),
            Err(OidcError::TokenInvalid("unexpected signing algorithm"))
        );
        assert_eq!(
            p.verify_with_known_keys("x.y", at(1500)),
            Err(OidcError::TokenInvalid("malformed token"))
        );
        let rs = format!("{}.{body}.c2ln", b64(r#"{"alg":"RS256","kid":"k1"}"#));
        assert_eq!(p.verify_with_known_keys(&rs, at(1500)), Err(OidcError::TokenInvalid(UNKNOWN_KEY)));
    }
}
