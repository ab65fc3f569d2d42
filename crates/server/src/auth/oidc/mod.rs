//! Single sign-on as Argo CD does it: an external OIDC provider (argocd-cm `oidc.config`) or Dex beside the
//! server (`dex.config`, proxied under `<url>/api/dex`). The browser logs in through the server's
//! authorization code flow with PKCE (`/auth/login`, `/auth/callback`); the CLI logs in itself and sends the
//! provider's ID token. Every request's ID token is verified against the provider's published keys, and its
//! claims become the RBAC subject ([`crate::rbac::Subject::from_claims`]).
//!
//! - [`config`]: the settings, pure; [`flow`]: state, PKCE and redirects, pure; [`dex`]: Dex's generated
//!   configuration, pure; [`provider`]: discovery, keys, verification and the code exchange (HTTP).
//! - [`SsoState`] holds the provider in force, replaced when argocd-cm or argocd-secret changes, and the
//!   ID tokens logged out before they expire.

pub mod config;
pub mod dex;
pub mod dex_process;
pub mod flow;
pub mod provider;

pub use config::{ConfigError, SsoConfig};
pub use provider::{OidcError, Provider};

use k8s_openapi::api::core::v1::Secret;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

/// The label a Secret needs for a `$name:key` reference to read it, as in Argo CD.
const PART_OF_LABEL: (&str, &str) = ("app.kubernetes.io/part-of", "argocd");
/// Logged-out ID tokens remembered at most (each until it would have expired anyway).
const MAX_REVOKED: usize = 100_000;

/// The provider in force (if SSO is configured) and the logged-out ID tokens.
#[derive(Default)]
pub struct SsoState {
    current: RwLock<Option<Arc<Sso>>>,
    /// SHA-256 of logged-out ID tokens → their `exp`.
    revoked: Mutex<HashMap<[u8; 32], i64>>,
    /// Where Dex runs when it is not under `url` (`berth run --dex-server`, or the Dex berth started).
    dex_server: RwLock<Option<String>>,
    /// Login states already finished → when they expire: a callback is good once.
    used_states: Mutex<HashMap<String, i64>>,
    /// `enableUserInfoGroups`: the userinfo claims read at login, by subject, until the session would end.
    userinfo: Mutex<HashMap<(String, String), (serde_json::Value, i64)>>,
    /// The client the Dex proxy forwards with (no redirects followed).
    dex_http: std::sync::OnceLock<reqwest::Client>,
}

/// One SSO configuration with its provider.
pub struct Sso {
    pub provider: Provider,
    /// Signs the login state cookie; derived from `server.secretkey`.
    pub state_key: Vec<u8>,
}

impl Sso {
    pub fn config(&self) -> &SsoConfig {
        self.provider.config()
    }
}

impl SsoState {
    /// The provider in force, if SSO is configured.
    pub fn current(&self) -> Option<Arc<Sso>> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Sets where Dex runs; a Dex provider in force is rebuilt to reach it there.
    pub fn set_dex_server(&self, base: Option<String>) {
        *self.dex_server.write().unwrap_or_else(|e| e.into_inner()) = base.clone();
        let Some(sso) = self.current().filter(|s| s.config().is_dex()) else { return };
        if let Ok(provider) = Provider::new(Arc::new(sso.config().clone()), base.as_deref()) {
            self.set(Some(Arc::new(Sso { provider, state_key: sso.state_key.clone() })));
        }
    }

    pub fn dex_server(&self) -> Option<String> {
        self.dex_server.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Reads the SSO settings from argocd-cm and argocd-secret (and the labelled Secrets references name),
    /// and puts a new provider in force when they changed. A configuration that does not load leaves SSO
    /// off and is logged, naming the key and field.
    pub async fn reload(
        &self,
        client: &kube::Client,
        namespace: &str,
        argocd_cm: &BTreeMap<String, String>,
        argocd_secret: &BTreeMap<String, String>,
    ) {
        let texts: Vec<&str> = [config::OIDC_CONFIG_KEY, config::DEX_CONFIG_KEY]
            .iter()
            .filter_map(|k| argocd_cm.get(*k).map(String::as_str))
            .collect();
        let others = referenced_secrets(client, namespace, &texts).await;
        let secrets = config::SecretValues { argocd_secret: Some(argocd_secret), others };
        let key = argocd_secret.get("server.secretkey").map(String::as_bytes).unwrap_or_default();
        if key.iter().all(u8::is_ascii_whitespace) {
            // The login state's key and Dex's client secret derive from it: without one they would be
            // public constants.
            if argocd_cm.contains_key(config::OIDC_CONFIG_KEY)
                || argocd_cm.contains_key(config::DEX_CONFIG_KEY)
            {
                tracing::warn!("SSO is off: argocd-secret has no server.secretkey");
            }
            self.set(None);
            return;
        }
        let mut warnings = Vec::new();
        let loaded = SsoConfig::from_config_map(argocd_cm, &secrets, key, &mut warnings);
        for w in warnings {
            tracing::warn!("argocd-cm: {w}");
        }
        let next = match loaded {
            Ok(Some(config)) => {
                if self.current().is_some_and(|s| *s.config() == config) {
                    return;
                }
                match Provider::new(Arc::new(config), self.dex_server().as_deref()) {
                    Ok(provider) => {
                        tracing::info!(issuer = %provider.config().issuer, "SSO configured");
                        Some(Arc::new(Sso { provider, state_key: flow::state_key(key) }))
                    }
                    Err(e) => {
                        tracing::warn!("SSO is off: {e}");
                        None
                    }
                }
            }
            Ok(None) => None,
            Err(e) => {
                tracing::warn!("SSO is off: argocd-cm {e}");
                None
            }
        };
        self.set(next);
    }

    /// Puts `sso` in force directly (tests and embedders). Userinfo kept for the previous provider is
    /// forgotten.
    pub fn set(&self, sso: Option<Arc<Sso>>) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = sso;
        self.userinfo.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// Verifies an ID token with the provider in force; logged-out tokens are refused.
    pub async fn verify(&self, token: &str) -> Result<serde_json::Value, OidcError> {
        let sso = self.current().ok_or(OidcError::TokenInvalid("SSO is not configured"))?;
        let claims = sso.provider.verify(token, SystemTime::now()).await?;
        self.check_revoked(token)?;
        Ok(self.with_userinfo(&sso, claims))
    }

    /// [`verify`](Self::verify) with the keys already known (no I/O).
    pub fn verify_now(&self, token: &str) -> Result<serde_json::Value, OidcError> {
        let sso = self.current().ok_or(OidcError::TokenInvalid("SSO is not configured"))?;
        let claims = sso.provider.verify_with_known_keys(token, SystemTime::now())?;
        self.check_revoked(token)?;
        Ok(self.with_userinfo(&sso, claims))
    }

    /// Marks a login's state as used; false when it was used before (a replayed callback).
    pub fn use_state_once(&self, state: &str, expires: i64) -> bool {
        let now = unix_now();
        let mut used = self.used_states.lock().unwrap_or_else(|e| e.into_inner());
        used.retain(|_, exp| *exp > now);
        if used.contains_key(state) {
            return false;
        }
        insert_bounded(&mut used, state.to_string(), expires, |exp| *exp);
        true
    }

    /// Keeps the userinfo claims of a login (`enableUserInfoGroups`), by the ID token's subject.
    /// Keeps the userinfo claims of a login (`enableUserInfoGroups`), by the ID token's issuer and subject;
    /// an answer about another subject (OIDC Core 5.3.2) is not kept.
    pub fn remember_userinfo(&self, claims: &serde_json::Value, info: serde_json::Value) {
        let text =
            |v: &serde_json::Value, k: &str| v.get(k).and_then(serde_json::Value::as_str).map(str::to_string);
        let (Some(iss), Some(sub), Some(exp)) =
            (text(claims, "iss"), text(claims, "sub"), claims.get("exp").and_then(serde_json::Value::as_f64))
        else {
            return;
        };
        if text(&info, "sub").as_deref() != Some(sub.as_str()) {
            tracing::warn!("SSO userinfo: the answer is about another subject than the ID token; not used");
            return;
        }
        let now = unix_now();
        let mut cache = self.userinfo.lock().unwrap_or_else(|e| e.into_inner());
        cache.retain(|_, (_, until)| *until > now);
        insert_bounded(&mut cache, (iss, sub), (info, exp as i64), |(_, until)| *until);
    }

    /// The claims with the userinfo groups of their subject merged in, when `enableUserInfoGroups` is on.
    fn with_userinfo(&self, sso: &Sso, mut claims: serde_json::Value) -> serde_json::Value {
        if sso.config().userinfo_groups.is_none() {
            return claims;
        }
        let text =
            |k: &str| claims.get(k).and_then(serde_json::Value::as_str).unwrap_or_default().to_string();
        let key = (text("iss"), text("sub"));
        let cache = self.userinfo.lock().unwrap_or_else(|e| e.into_inner());
        if let (Some((info, _)), Some(map)) = (cache.get(&key), claims.as_object_mut())
            && let Some(groups) = info.get("groups")
        {
            map.insert("groups".into(), groups.clone());
        }
        claims
    }

    /// The HTTP client of the Dex proxy.
    pub fn dex_client(&self) -> &reqwest::Client {
        self.dex_http.get_or_init(|| {
            let _ = rustls::crypto::ring::default_provider().install_default();
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(std::time::Duration::from_secs(5))
                .timeout(std::time::Duration::from_secs(30))
                .build()
                .unwrap_or_default()
        })
    }

    pub(crate) fn check_revoked(&self, token: &str) -> Result<(), OidcError> {
        let revoked = self.revoked.lock().unwrap_or_else(|e| e.into_inner());
        if revoked.contains_key(&digest(token)) { Err(OidcError::TokenRevoked) } else { Ok(()) }
    }

    /// Logs an ID token out: it is refused from now until it expires.
    pub fn revoke(&self, token: &str, expires: i64) {
        let now = unix_now();
        let mut revoked = self.revoked.lock().unwrap_or_else(|e| e.into_inner());
        revoked.retain(|_, exp| *exp > now);
        insert_bounded(&mut revoked, digest(token), expires, |exp| *exp);
    }

    /// Takes the ID tokens other replicas logged out, by digest ([`crate::auth::revocations`]): each is
    /// refused until its `exp`; entries already lapsed are not taken.
    pub fn merge_revoked(&self, digests: impl IntoIterator<Item = ([u8; 32], i64)>) {
        let now = unix_now();
        let mut revoked = self.revoked.lock().unwrap_or_else(|e| e.into_inner());
        revoked.retain(|_, exp| *exp > now);
        for (digest, expires) in digests {
            if expires > now && !revoked.contains_key(&digest) {
                insert_bounded(&mut revoked, digest, expires, |exp| *exp);
            }
        }
    }
}

/// Inserts into a map of entries that lapse at a time (`lapses`, seconds since the epoch), at most
/// [`MAX_REVOKED`] of them: when full, the entry that lapses first makes room (a flood of entries can shorten
/// how long the oldest is remembered, never refuse a new one).
fn insert_bounded<K: std::hash::Hash + Eq + Clone, V>(
    map: &mut HashMap<K, V>,
    key: K,
    value: V,
    lapses: impl Fn(&V) -> i64,
) {
    if map.len() >= MAX_REVOKED
        && !map.contains_key(&key)
        && let Some(first) = map.iter().min_by_key(|(_, v)| lapses(v)).map(|(k, _)| k.clone())
    {
        map.remove(&first);
        tracing::warn!("SSO: {MAX_REVOKED} entries remembered; the one lapsing first was dropped");
    }
    map.insert(key, value);
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or_default()
}

/// What a logged-out ID token is remembered by, here and in the Secret the replicas share.
pub(crate) fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Whether an unverified token claims to come from berth itself (`iss: argocd`): such tokens are checked
/// with the server's key, all others as ID tokens of the provider. Only chooses the check; each check
/// verifies everything itself.
pub fn is_berth_token(token: &str) -> bool {
    jsonwebtoken::dangerous::insecure_decode::<serde_json::Value>(token)
        .ok()
        .and_then(|data| {
            data.claims.get("iss").and_then(serde_json::Value::as_str).map(|i| i == crate::auth::ISSUER)
        })
        .unwrap_or(true)
}

/// The labelled Secrets the `$name:key` references of `texts` name, by name (argocd-secret's own keys are
/// read from the settings already watched).
async fn referenced_secrets(
    client: &kube::Client,
    namespace: &str,
    texts: &[&str],
) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut others = BTreeMap::new();
    for (name, _) in texts.iter().flat_map(|t| config::references(t)) {
        if let Some(name) = name.filter(|n| !others.contains_key(n))
            && let Some(data) = labelled_secret(client, namespace, &name).await
        {
            others.insert(name, data);
        }
    }
    others
}

/// The data of Secret `name` if it carries the `app.kubernetes.io/part-of: argocd` label.
async fn labelled_secret(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Option<BTreeMap<String, String>> {
    let api: kube::Api<Secret> = kube::Api::namespaced(client.clone(), namespace);
    let secret = match api.get_opt(name).await {
        Ok(Some(s)) => s,
        Ok(None) => return None,
        Err(e) => {
            tracing::warn!(secret = name, "reading the Secret an SSO reference names: {e}");
            return None;
        }
    };
    let labelled = secret.metadata.labels.as_ref().and_then(|l| l.get(PART_OF_LABEL.0)).map(String::as_str)
        == Some(PART_OF_LABEL.1);
    if !labelled {
        tracing::warn!(
            secret = name,
            "an SSO reference names a Secret without the label app.kubernetes.io/part-of=argocd: not read"
        );
        return None;
    }
    Some(
        secret
            .data
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(k, v)| String::from_utf8(v.0).ok().map(|v| (k, v)))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn state(userinfo_groups: Option<&str>) -> (SsoState, Arc<Sso>) {
        let config = SsoConfig { userinfo_groups: userinfo_groups.map(str::to_string), ..config::example() };
        let sso =
            Arc::new(Sso { provider: Provider::new(Arc::new(config), None).unwrap(), state_key: vec![1] });
        let state = SsoState::default();
        state.set(Some(sso.clone()));
        (state, sso)
    }

    #[test]
    fn userinfo_groups_replace_the_tokens_groups_only_when_enabled() {
        let claims =
            json!({"iss": "https://idp", "sub": "u1", "exp": unix_now() + 60, "groups": ["from-token"]});
        let (on, sso) = state(Some("/userinfo"));
        on.remember_userinfo(&claims, json!({"sub": "u1", "groups": ["from-userinfo"]}));
        assert_eq!(on.with_userinfo(&sso, claims.clone())["groups"], json!(["from-userinfo"]));
        let other = json!({"iss": "https://idp", "sub": "u2", "exp": unix_now() + 60, "groups": ["own"]});
        assert_eq!(
            on.with_userinfo(&sso, other.clone())["groups"],
            json!(["own"]),
            "another subject keeps its own"
        );
        on.remember_userinfo(&other, json!({"sub": "u1", "groups": ["admins"]}));
        assert_eq!(
            on.with_userinfo(&sso, other)["groups"],
            json!(["own"]),
            "an answer about another subject is not kept"
        );
        let same_sub_other_issuer = json!({"iss": "https://other", "sub": "u1", "exp": unix_now() + 60});
        assert!(on.with_userinfo(&sso, same_sub_other_issuer).get("groups").is_none());
        let (off, sso) = state(None);
        off.remember_userinfo(&claims, json!({"sub": "u1", "groups": ["from-userinfo"]}));
        assert_eq!(off.with_userinfo(&sso, claims)["groups"], json!(["from-token"]));
    }

    #[test]
    fn a_full_map_drops_the_entry_lapsing_first_never_the_new_one() {
        let mut map: HashMap<u32, i64> = (0..MAX_REVOKED as u32).map(|i| (i, 1_000 + i64::from(i))).collect();
        insert_bounded(&mut map, u32::MAX, 5, |exp| *exp);
        assert_eq!(map.len(), MAX_REVOKED);
        assert!(!map.contains_key(&0) && map.contains_key(&u32::MAX));
    }

    #[test]
    fn a_login_state_is_good_once() {
        let (s, _) = state(None);
        assert!(s.use_state_once("abc", unix_now() + 60));
        assert!(!s.use_state_once("abc", unix_now() + 60));
        assert!(s.use_state_once("def", unix_now() + 60));
    }

    #[test]
    fn only_tokens_claiming_argo_cds_issuer_go_to_the_local_check() {
        use base64::Engine;
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let token = |claims: &str| format!("{}.{}.sig", b64(r#"{"alg":"RS256"}"#), b64(claims));
        assert!(is_berth_token(&token(r#"{"iss":"argocd"}"#)));
        assert!(!is_berth_token(&token(r#"{"iss":"https://idp"}"#)));
        assert!(is_berth_token("garbage"), "what cannot be read goes to the strict local check");
    }
}
