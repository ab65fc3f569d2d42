//! argocd-cm's SSO settings as Argo CD reads them: `url` (the callback base), `oidc.config` (an external
//! OIDC provider) and `dex.config` (Dex beside the server, proxied under `<url>/api/dex`). Pure: the
//! Secrets that `$…` references name are fetched by the caller and handed in.
//!
//! A string value that starts with `$` is a reference, as in Argo CD: `$key` reads `key` of argocd-secret,
//! `$name:key` reads `key` of Secret `name` in the control namespace, which must carry the label
//! `app.kubernetes.io/part-of: argocd` (the caller fetches only such Secrets). A reference that names
//! nothing is an error naming the reference, never its neighbours' values.

use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;

/// argocd-cm keys.
pub const URL_KEY: &str = "url";
pub const OIDC_CONFIG_KEY: &str = "oidc.config";
pub const DEX_CONFIG_KEY: &str = "dex.config";

/// Dex's clients, as Argo CD names them: the server's (confidential) and the CLI's (public).
pub const DEX_SERVER_CLIENT_ID: &str = "argo-cd";
pub const DEX_CLI_CLIENT_ID: &str = "argo-cd-cli";
/// Where Dex is served under the server's `url`.
pub const DEX_PATH: &str = "/api/dex";
/// The callback path of the server's login flow.
pub const CALLBACK_PATH: &str = "/auth/callback";
/// The scopes asked for when `requestedScopes` is not set (Argo CD's default).
pub const DEFAULT_SCOPES: &[&str] = &["openid", "profile", "email", "groups"];

/// A value that must not be printed: client secrets.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Hidden(pub String);

impl fmt::Debug for Hidden {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "<empty>" } else { "<redacted>" })
    }
}

/// Where the provider is: an external OIDC issuer, or the Dex berth configures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProviderKind {
    Oidc,
    /// Dex with these connectors (name, type), for the login page and `/api/v1/settings`.
    Dex {
        connectors: Vec<(String, String)>,
    },
}

/// The SSO settings in force.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SsoConfig {
    pub kind: ProviderKind,
    /// argocd-cm `url` without a trailing `/`.
    pub url: String,
    /// The provider's display name ("Log in via <name>").
    pub name: String,
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Hidden,
    /// The client the CLI logs in with (`cliClientID`, `argo-cd-cli` for Dex); `None`: `client_id`.
    pub cli_client_id: Option<String>,
    pub scopes: Vec<String>,
    /// `requestedIDTokenClaims`, sent as the `claims` request parameter.
    pub id_token_claims: Option<Value>,
    /// `rootCA`: PEM certificates the provider's TLS is checked against (besides the system's).
    pub root_ca: Option<String>,
    /// `logoutURL`, with `{{token}}` and `{{logoutRedirectURL}}` placeholders.
    pub logout_url: Option<String>,
    /// `enablePKCEAuthentication` (berth's server-side flow always uses PKCE; shown to clients).
    pub pkce: bool,
    /// The audiences a token may carry: `allowedAudiences`, else the client ids.
    pub audiences: Vec<String>,
    /// `skipAudienceCheckWhenTokenHasNoAudience`.
    pub skip_audience_when_none: bool,
    /// `enableUserInfoGroups` with `userInfoPath`: groups read from the provider's userinfo endpoint.
    pub userinfo_groups: Option<String>,
}

impl SsoConfig {
    /// The redirect URI of the server's flow.
    pub fn callback_url(&self) -> String {
        format!("{}{CALLBACK_PATH}", self.url)
    }

    /// The client the CLI uses.
    pub fn cli_client(&self) -> &str {
        self.cli_client_id.as_deref().unwrap_or(&self.client_id)
    }

    /// Whether the provider is the Dex berth configures (its HTTP goes to the Dex server, not `url`).
    pub fn is_dex(&self) -> bool {
        matches!(self.kind, ProviderKind::Dex { .. })
    }
}

/// Why the SSO settings were refused; names the key and field, never a secret value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{key}: {reason}")]
    Invalid { key: &'static str, reason: String },
}

/// `oidc.config` as written.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct OidcYaml {
    #[serde(default)]
    name: String,
    #[serde(default)]
    issuer: String,
    #[serde(default, rename = "clientID")]
    client_id: String,
    #[serde(default)]
    client_secret: String,
    #[serde(default, rename = "cliClientID")]
    cli_client_id: String,
    #[serde(default)]
    requested_scopes: Vec<String>,
    #[serde(default, rename = "requestedIDTokenClaims")]
    requested_id_token_claims: Option<Value>,
    #[serde(default, rename = "rootCA")]
    root_ca: String,
    #[serde(default, rename = "logoutURL")]
    logout_url: String,
    #[serde(default, rename = "enablePKCEAuthentication")]
    enable_pkce: bool,
    #[serde(default)]
    allowed_audiences: Vec<String>,
    #[serde(default)]
    skip_audience_check_when_token_has_no_audience: Option<bool>,
    #[serde(default)]
    enable_user_info_groups: bool,
    #[serde(default)]
    user_info_path: String,
}

/// The `$…` references in `text` (parsed as YAML), each as (secret name or `None` for argocd-secret, key):
/// the caller fetches those Secrets before [`SsoConfig::from_config_map`].
pub fn references(text: &str) -> Vec<(Option<String>, String)> {
    let mut out = Vec::new();
    if let Ok(value) = serde_saphyr::from_str::<Value>(text) {
        walk_strings(&value, &mut |s| {
            if let Some(r) = parse_reference(s) {
                out.push(r);
            }
        });
    }
    out
}

fn walk_strings(value: &Value, f: &mut impl FnMut(&str)) {
    match value {
        Value::String(s) => f(s),
        Value::Array(items) => items.iter().for_each(|v| walk_strings(v, f)),
        Value::Object(map) => map.values().for_each(|v| walk_strings(v, f)),
        _ => {}
    }
}

fn parse_reference(s: &str) -> Option<(Option<String>, String)> {
    let rest = s.strip_prefix('$')?;
    if rest.is_empty() {
        return None;
    }
    Some(match rest.split_once(':') {
        Some((name, key)) => (Some(name.to_string()), key.to_string()),
        None => (None, rest.to_string()),
    })
}

/// The Secrets references read: argocd-secret's data, and the labelled Secrets fetched by name.
#[derive(Default)]
pub struct SecretValues<'a> {
    pub argocd_secret: Option<&'a BTreeMap<String, String>>,
    pub others: BTreeMap<String, BTreeMap<String, String>>,
}

impl SecretValues<'_> {
    fn lookup(&self, name: Option<&str>, key: &str) -> Option<&str> {
        match name {
            None => self.argocd_secret?.get(key).map(String::as_str),
            Some(name) => self.others.get(name)?.get(key).map(String::as_str),
        }
    }
}

/// `value` with every `$…` string replaced by what it names. A reference that names nothing stays as
/// written, as in Argo CD (a bcrypt hash in Dex's `staticPasswords` starts with `$` too), and `warnings`
/// names it (never a value).
fn resolve(value: &mut Value, secrets: &SecretValues<'_>, key: &'static str, warnings: &mut Vec<String>) {
    match value {
        Value::String(s) => {
            if let Some((name, k)) = parse_reference(s) {
                match secrets.lookup(name.as_deref(), &k) {
                    Some(found) => *s = found.to_string(),
                    // Keys of Secrets never hold `$`: a hash is not a reference, and is not worth a warning.
                    None if k.contains('$') => {}
                    None => warnings.push(match &name {
                        None => format!("{key}: {s} names no key of {}; the value is used as written", super::super::ARGOCD_SECRET),
                        Some(n) => format!(
                            "{key}: {s} names no key of a Secret {n} labelled app.kubernetes.io/part-of=argocd in the control namespace; the value is used as written"
                        ),
                    }),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| resolve(v, secrets, key, warnings)),
        Value::Object(map) => map.values_mut().for_each(|v| resolve(v, secrets, key, warnings)),
        _ => {}
    }
}

fn parse_yaml(key: &'static str, text: &str) -> Result<Value, ConfigError> {
    let value: Value = serde_saphyr::from_str(text)
        .map_err(|e| ConfigError::Invalid { key, reason: format!("not valid YAML: {e}") })?;
    match value {
        Value::Object(_) => Ok(value),
        Value::Null => Ok(Value::Object(Default::default())),
        _ => Err(ConfigError::Invalid { key, reason: "must be a YAML mapping".into() }),
    }
}

fn non_empty(s: String) -> Option<String> {
    Some(s).filter(|s| !s.trim().is_empty())
}

/// Dex's connectors in `dex.config` (name and type of each), for the login page; Dex's password database
/// (`enablePasswordDB: true`) is one too, as Dex lists it (`local`, "Email").
fn dex_connectors(value: &Value) -> Result<Vec<(String, String)>, ConfigError> {
    let mut connectors = listed_connectors(value)?;
    if value.get("enablePasswordDB").and_then(Value::as_bool) == Some(true) {
        connectors.push(("Email".into(), "local".into()));
    }
    Ok(connectors)
}

fn listed_connectors(value: &Value) -> Result<Vec<(String, String)>, ConfigError> {
    let Some(list) = value.get("connectors") else { return Ok(Vec::new()) };
    let items = list.as_array().ok_or_else(|| ConfigError::Invalid {
        key: DEX_CONFIG_KEY,
        reason: "connectors must be a list".into(),
    })?;
    items
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let field = |f: &str| c.get(f).and_then(Value::as_str).unwrap_or_default().to_string();
            let (kind, id) = (field("type"), field("id"));
            if kind.is_empty() || id.is_empty() {
                return Err(ConfigError::Invalid {
                    key: DEX_CONFIG_KEY,
                    reason: format!("connectors[{i}] needs a type and an id"),
                });
            }
            let name = field("name");
            Ok((if name.is_empty() { id } else { name }, kind))
        })
        .collect()
}

/// The Dex client secret of the server's client `argo-cd`, derived from argocd-secret's `server.secretkey`
/// as Argo CD derives it (the first 40 characters of the URL-safe base64 of its SHA-256), so Dex and the
/// server agree without another stored secret.
pub fn dex_client_secret(server_secret_key: &[u8]) -> String {
    use base64::Engine;
    use sha2::Digest;
    let digest = sha2::Sha256::digest(server_secret_key);
    let mut encoded = base64::engine::general_purpose::URL_SAFE.encode(digest);
    encoded.truncate(40);
    encoded
}

impl SsoConfig {
    /// The SSO settings of argocd-cm's `data`; `Ok(None)` when SSO is not configured (no `oidc.config`, no
    /// `dex.config` connectors). `server_secret_key` is argocd-secret's `server.secretkey` (Dex's client
    /// secret derives from it). With both set, `oidc.config` wins and `warnings` says so, as it does when
    /// `url` is missing (SSO needs it for the callback).
    pub fn from_config_map(
        data: &BTreeMap<String, String>,
        secrets: &SecretValues<'_>,
        server_secret_key: &[u8],
        warnings: &mut Vec<String>,
    ) -> Result<Option<SsoConfig>, ConfigError> {
        let oidc = data.get(OIDC_CONFIG_KEY).filter(|t| !t.trim().is_empty());
        let dex = data.get(DEX_CONFIG_KEY).filter(|t| !t.trim().is_empty());
        if oidc.is_none() && dex.is_none() {
            return Ok(None);
        }
        let url = data.get(URL_KEY).map(|u| u.trim().trim_end_matches('/').to_string()).unwrap_or_default();
        if url.is_empty() {
            warnings.push(format!(
                "{URL_KEY} is not set: SSO needs the server's external URL for its callback; SSO is off"
            ));
            return Ok(None);
        }
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(ConfigError::Invalid { key: URL_KEY, reason: "must be an http(s) URL".into() });
        }
        if let Some(text) = oidc {
            if dex.is_some() {
                warnings.push(format!(
                    "both {OIDC_CONFIG_KEY} and {DEX_CONFIG_KEY} are set: {OIDC_CONFIG_KEY} is used"
                ));
            }
            let mut value = parse_yaml(OIDC_CONFIG_KEY, text)?;
            // Only the client's id and secret are read from Secrets, as in Argo CD: the other fields are
            // published (`/api/v1/settings`), so a reference there must never show a Secret's value.
            for field in ["clientSecret", "clientID"] {
                if let Some(v) = value.get_mut(field) {
                    resolve(v, secrets, OIDC_CONFIG_KEY, warnings);
                }
            }
            let o: OidcYaml = serde_json::from_value(value)
                .map_err(|e| ConfigError::Invalid { key: OIDC_CONFIG_KEY, reason: e.to_string() })?;
            let need = |field: &str, v: &str| {
                if v.trim().is_empty() {
                    Err(ConfigError::Invalid { key: OIDC_CONFIG_KEY, reason: format!("{field} is required") })
                } else {
                    Ok(())
                }
            };
            need("issuer", &o.issuer)?;
            need("clientID", &o.client_id)?;
            let issuer = o.issuer.trim().to_string();
            if !(issuer.starts_with("https://") || issuer.starts_with("http://")) {
                return Err(ConfigError::Invalid {
                    key: OIDC_CONFIG_KEY,
                    reason: "issuer must be an http(s) URL".into(),
                });
            }
            let cli_client_id = non_empty(o.cli_client_id);
            let audiences = if o.allowed_audiences.is_empty() {
                std::iter::once(o.client_id.clone()).chain(cli_client_id.clone()).collect()
            } else {
                o.allowed_audiences
            };
            return Ok(Some(SsoConfig {
                kind: ProviderKind::Oidc,
                url,
                name: non_empty(o.name).unwrap_or_else(|| "SSO".into()),
                issuer,
                client_id: o.client_id,
                client_secret: Hidden(o.client_secret),
                cli_client_id,
                scopes: if o.requested_scopes.is_empty() {
                    DEFAULT_SCOPES.iter().map(|s| s.to_string()).collect()
                } else {
                    o.requested_scopes
                },
                id_token_claims: o.requested_id_token_claims.filter(|v| !v.is_null()),
                root_ca: non_empty(o.root_ca),
                logout_url: non_empty(o.logout_url),
                pkce: o.enable_pkce,
                audiences,
                skip_audience_when_none: o.skip_audience_check_when_token_has_no_audience.unwrap_or(false),
                userinfo_groups: o
                    .enable_user_info_groups
                    .then(|| non_empty(o.user_info_path).unwrap_or_else(|| "/userinfo".into())),
            }));
        }
        let text = dex.expect("one of the two is set");
        // The connectors' names as written (they are published): references resolve only in Dex's copy.
        let connectors = dex_connectors(&parse_yaml(DEX_CONFIG_KEY, text)?)?;
        resolved_dex_config(text, secrets, warnings)?;
        if connectors.is_empty() {
            warnings.push(format!("{DEX_CONFIG_KEY} has no connectors: SSO through Dex is off"));
            return Ok(None);
        }
        Ok(Some(SsoConfig {
            kind: ProviderKind::Dex { connectors },
            issuer: format!("{url}{DEX_PATH}"),
            url,
            name: "SSO".into(),
            client_id: DEX_SERVER_CLIENT_ID.into(),
            client_secret: Hidden(dex_client_secret(server_secret_key)),
            cli_client_id: Some(DEX_CLI_CLIENT_ID.into()),
            // `federated:id` makes Dex add the connector's own user id (`federated_claims`), the RBAC name.
            scopes: DEFAULT_SCOPES
                .iter()
                .map(|s| s.to_string())
                .chain(["offline_access".into(), "federated:id".into()])
                .collect(),
            id_token_claims: None,
            root_ca: None,
            logout_url: None,
            pkce: true,
            audiences: vec![DEX_SERVER_CLIENT_ID.into(), DEX_CLI_CLIENT_ID.into()],
            skip_audience_when_none: false,
            userinfo_groups: None,
        }))
    }
}

/// `dex.config` with its references resolved, as Dex's own configuration takes it (the caller adds
/// issuer, storage, web and the clients; see [`super::dex`]).
pub fn resolved_dex_config(
    text: &str,
    secrets: &SecretValues<'_>,
    warnings: &mut Vec<String>,
) -> Result<Value, ConfigError> {
    let mut value = parse_yaml(DEX_CONFIG_KEY, text)?;
    resolve(&mut value, secrets, DEX_CONFIG_KEY, warnings);
    Ok(value)
}

/// An OIDC configuration for unit tests: issuer `https://idp.example.com`, client `berth`, url
/// `https://cd.example.com`.
#[cfg(test)]
pub(crate) fn example() -> SsoConfig {
    SsoConfig {
        kind: ProviderKind::Oidc,
        url: "https://cd.example.com".into(),
        name: "Okta".into(),
        issuer: "https://idp.example.com".into(),
        client_id: "berth".into(),
        client_secret: Hidden("s".into()),
        cli_client_id: None,
        scopes: vec!["profile".into(), "groups".into()],
        id_token_claims: None,
        root_ca: None,
        logout_url: None,
        pkce: false,
        audiences: vec!["berth".into()],
        skip_audience_when_none: false,
        userinfo_groups: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn load(cm: &[(&str, &str)], secret: &[(&str, &str)]) -> Result<Option<SsoConfig>, ConfigError> {
        let secret = data(secret);
        let secrets = SecretValues { argocd_secret: Some(&secret), others: Default::default() };
        SsoConfig::from_config_map(&data(cm), &secrets, b"server-key", &mut Vec::new())
    }

    const OKTA: &str = "name: Okta\nissuer: https://dev-1.okta.com\nclientID: abc\nclientSecret: $oidc.okta.clientSecret\nrequestedScopes: [openid, profile, email, groups]\nrequestedIDTokenClaims: {groups: {essential: true}}\nlogoutURL: https://dev-1.okta.com/logout?id_token_hint={{token}}\n";

    #[test]
    fn oidc_config_reads_argo_cds_keys_and_resolves_the_secret_reference() {
        let sso = load(
            &[("url", "https://berth.example.com/"), ("oidc.config", OKTA)],
            &[("oidc.okta.clientSecret", "s3cret")],
        )
        .unwrap()
        .unwrap();
        assert_eq!(sso.url, "https://berth.example.com");
        assert_eq!(sso.name, "Okta");
        assert_eq!(sso.issuer, "https://dev-1.okta.com");
        assert_eq!(sso.client_secret.0, "s3cret");
        assert_eq!(sso.callback_url(), "https://berth.example.com/auth/callback");
        assert_eq!(sso.audiences, ["abc"]);
        assert_eq!(sso.cli_client(), "abc");
        assert_eq!(sso.id_token_claims.unwrap()["groups"]["essential"], true);
        assert!(!format!("{:?}", sso.client_secret).contains("s3cret"));
    }

    #[test]
    fn a_reference_to_another_secret_reads_that_secret() {
        let cm = data(&[
            ("url", "https://b"),
            (
                "oidc.config",
                "issuer: https://idp\nclientID: abc\nclientSecret: $sso-creds:client-secret\ncliClientID: cli\n",
            ),
        ]);
        let mut others = BTreeMap::new();
        others.insert("sso-creds".to_string(), data(&[("client-secret", "xyz")]));
        let secrets = SecretValues { argocd_secret: None, others };
        let sso = SsoConfig::from_config_map(&cm, &secrets, b"k", &mut Vec::new()).unwrap().unwrap();
        assert_eq!(sso.client_secret.0, "xyz");
        assert_eq!(sso.audiences, ["abc", "cli"]);
        assert_eq!(
            references(cm.get("oidc.config").unwrap()),
            [(Some("sso-creds".to_string()), "client-secret".to_string())]
        );
    }

    #[test]
    fn a_missing_reference_stays_as_written_with_a_warning_naming_it_only() {
        let secret = data(&[("other", "do-not-print")]);
        let secrets = SecretValues { argocd_secret: Some(&secret), others: Default::default() };
        let mut warnings = Vec::new();
        let cm = data(&[
            ("url", "https://b"),
            ("oidc.config", "issuer: https://idp\nclientID: a\nclientSecret: $nope\n"),
        ]);
        let sso = SsoConfig::from_config_map(&cm, &secrets, b"k", &mut warnings).unwrap().unwrap();
        assert_eq!(sso.client_secret.0, "$nope");
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("$nope") && warnings[0].contains("argocd-secret"), "{warnings:?}");
        assert!(!warnings[0].contains("do-not-print"));
        // A bcrypt hash is no reference and no warning.
        let mut warnings = Vec::new();
        let dex =
            "enablePasswordDB: true\nstaticPasswords:\n- email: a@b\n  hash: $2a$10$abcdefghijklmnopqrstuv\n";
        let value = resolved_dex_config(dex, &secrets, &mut warnings).unwrap();
        assert_eq!(value["staticPasswords"][0]["hash"], "$2a$10$abcdefghijklmnopqrstuv");
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn references_resolve_only_where_nothing_is_published() {
        let oidc = "name: $server.secretkey\nissuer: https://idp\nclientID: $oidc.id\nclientSecret: $oidc.secret\nrequestedScopes: [$server.secretkey]\n";
        let sso = load(
            &[("url", "https://b"), ("oidc.config", oidc)],
            &[("server.secretkey", "KEY"), ("oidc.id", "the-id"), ("oidc.secret", "the-secret")],
        )
        .unwrap()
        .unwrap();
        assert_eq!((sso.client_id.as_str(), sso.client_secret.0.as_str()), ("the-id", "the-secret"));
        assert_eq!(sso.name, "$server.secretkey");
        assert_eq!(sso.scopes, ["$server.secretkey"]);
        let dex = "connectors:\n- type: github\n  id: gh\n  name: $server.secretkey\n";
        let sso = load(&[("url", "https://b"), ("dex.config", dex)], &[("server.secretkey", "KEY")])
            .unwrap()
            .unwrap();
        assert_eq!(
            sso.kind,
            ProviderKind::Dex { connectors: vec![("$server.secretkey".into(), "github".into())] }
        );
    }

    #[test]
    fn sso_needs_url_issuer_and_client() {
        let mut warnings = Vec::new();
        let none = SsoConfig::from_config_map(
            &data(&[("oidc.config", OKTA)]),
            &SecretValues::default(),
            b"k",
            &mut warnings,
        );
        assert_eq!(none, Ok(None));
        assert!(warnings[0].contains("url is not set"));
        let err = load(&[("url", "https://b"), ("oidc.config", "issuer: https://idp\n")], &[]).unwrap_err();
        assert_eq!(err.to_string(), "oidc.config: clientID is required");
        let err = load(&[("url", "https://b"), ("oidc.config", "- a\n")], &[]).unwrap_err();
        assert!(err.to_string().contains("mapping"));
        assert_eq!(load(&[("url", "https://b")], &[]), Ok(None));
    }

    #[test]
    fn dex_config_uses_argo_cds_clients_and_issuer_under_api_dex() {
        let dex = "connectors:\n- type: github\n  id: github\n  name: GitHub\n  config:\n    clientID: a\n    clientSecret: $dex.github.clientSecret\n";
        let sso = load(
            &[("url", "https://cd.example.com"), ("dex.config", dex)],
            &[("dex.github.clientSecret", "gh")],
        )
        .unwrap()
        .unwrap();
        assert_eq!(sso.issuer, "https://cd.example.com/api/dex");
        assert_eq!(sso.client_id, "argo-cd");
        assert_eq!(sso.cli_client(), "argo-cd-cli");
        assert_eq!(sso.kind, ProviderKind::Dex { connectors: vec![("GitHub".into(), "github".into())] });
        assert_eq!(sso.client_secret.0, dex_client_secret(b"server-key"));
        assert_eq!(sso.client_secret.0.len(), 40);
        let no_connectors = load(&[("url", "https://b"), ("dex.config", "staticClients: []\n")], &[]);
        assert_eq!(no_connectors, Ok(None));
        let password_db =
            load(&[("url", "https://b"), ("dex.config", "enablePasswordDB: true\n")], &[]).unwrap();
        assert_eq!(
            password_db.unwrap().kind,
            ProviderKind::Dex { connectors: vec![("Email".into(), "local".into())] }
        );
        let secret = data(&[("dex.github.clientSecret", "gh")]);
        let resolved = resolved_dex_config(
            dex,
            &SecretValues { argocd_secret: Some(&secret), others: Default::default() },
            &mut Vec::new(),
        )
        .unwrap();
        assert_eq!(resolved["connectors"][0]["config"]["clientSecret"], "gh");
    }
}
