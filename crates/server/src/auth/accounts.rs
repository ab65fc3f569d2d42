//! The accounts argocd-cm declares and the credentials argocd-secret holds for them.
//!
//! argocd-cm: `admin.enabled`, `accounts.<name>: apiKey, login`, `accounts.<name>.enabled`.
//! argocd-secret: `admin.password`, `admin.passwordMtime`, `admin.tokens`, and
//! `accounts.<name>.password`, `.passwordMtime`, `.tokens` (a JSON list of `{id, iat, exp}`).

use super::clock::parse_rfc3339;
use super::{ADMIN, AuthError};
use k8s_openapi::ByteString;
use std::collections::BTreeMap;
use std::fmt;
use std::time::SystemTime;

const ACCOUNTS_PREFIX: &str = "accounts.";

/// What an account may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Capability {
    /// Log in with a password (UI and `berth login`).
    Login,
    /// Hold API tokens (`berth account generate-token`).
    ApiKey,
}

impl Capability {
    /// The spelling argocd-cm and token subjects use.
    pub fn as_str(self) -> &'static str {
        match self {
            Capability::Login => "login",
            Capability::ApiKey => "apiKey",
        }
    }

    fn parse(text: &str) -> Option<Capability> {
        match text {
            "login" => Some(Capability::Login),
            "apiKey" => Some(Capability::ApiKey),
            _ => None,
        }
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One API token as argocd-secret lists it: `{"id": …, "iat": …, "exp": …}` (no `exp`: never expires).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ApiToken {
    pub id: String,
    /// Issued at, in seconds since the Unix epoch.
    #[serde(rename = "iat")]
    pub issued_at: i64,
    /// Expires at, in seconds since the Unix epoch.
    #[serde(rename = "exp", default, skip_serializing_if = "Option::is_none", with = "zero_is_none")]
    pub expires_at: Option<i64>,
}

/// Argo CD writes `exp` with Go's `omitempty`, so a stored `0` also means "never".
mod zero_is_none {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(v.unwrap_or(0))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        Ok(Option::<i64>::deserialize(d)?.filter(|&v| v != 0))
    }
}

/// One local account.
#[derive(Clone, PartialEq)]
pub struct Account {
    pub name: String,
    pub enabled: bool,
    /// In the order argocd-cm lists them, without repeats.
    pub capabilities: Vec<Capability>,
    /// When the password last changed; tokens issued before are refused.
    pub password_mtime: Option<SystemTime>,
    pub tokens: Vec<ApiToken>,
    pub(crate) password_hash: Option<String>,
}

impl Account {
    fn new(name: &str) -> Self {
        Account {
            name: name.to_string(),
            enabled: true,
            capabilities: Vec::new(),
            password_mtime: None,
            tokens: Vec::new(),
            password_hash: None,
        }
    }

    pub fn has_capability(&self, capability: Capability) -> bool {
        self.capabilities.contains(&capability)
    }

    /// Whether a password is set (apiKey-only accounts usually have none).
    pub fn has_password(&self) -> bool {
        self.password_hash.is_some()
    }

    pub fn token(&self, id: &str) -> Option<&ApiToken> {
        self.tokens.iter().find(|t| t.id == id)
    }

    fn add_capability(&mut self, capability: Capability) {
        if !self.has_capability(capability) {
            self.capabilities.push(capability);
        }
    }
}

impl fmt::Debug for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Account")
            .field("name", &self.name)
            .field("enabled", &self.enabled)
            .field("capabilities", &self.capabilities)
            .field("password_hash", &self.password_hash.as_ref().map(|_| "<redacted>"))
            .field("password_mtime", &self.password_mtime)
            .field("tokens", &self.tokens)
            .finish()
    }
}

/// The argocd-secret key of an account's bcrypt hash (`admin.password`, `accounts.<name>.password`).
pub(crate) fn password_key(account: &str) -> String {
    secret_key(account, "password")
}

pub(crate) fn password_mtime_key(account: &str) -> String {
    secret_key(account, "passwordMtime")
}

pub(crate) fn tokens_key(account: &str) -> String {
    secret_key(account, "tokens")
}

fn secret_key(account: &str, field: &str) -> String {
    if account == ADMIN { format!("{ADMIN}.{field}") } else { format!("{ACCOUNTS_PREFIX}{account}.{field}") }
}

/// Every account, read from argocd-cm's and argocd-secret's `data` at one moment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Accounts {
    accounts: BTreeMap<String, Account>,
    /// The rest of argocd-cm the server reads (anonymous access, status badge), from the same snapshot.
    pub server: super::ServerSettings,
    /// Values that could not be read (the key is named, a secret value never is); their defaults are kept.
    pub warnings: Vec<String>,
}

impl Accounts {
    /// Reads the accounts the way Argo CD does: `admin` always exists (login only, enabled unless
    /// `admin.enabled` says otherwise); `accounts.<name>` declares or extends an account (`accounts.admin:
    /// apiKey` adds API tokens to admin); `accounts.<name>.enabled` is true only when it says `"true"`.
    pub fn from_data(config: &BTreeMap<String, String>, secret: &BTreeMap<String, ByteString>) -> Self {
        let mut warnings = Vec::new();
        let mut admin = Account::new(ADMIN);
        admin.add_capability(Capability::Login);
        if let Some(v) = config.get("admin.enabled") {
            match parse_go_bool(v) {
                Some(b) => admin.enabled = b,
                None => warnings.push(format!("argocd-cm admin.enabled: {v:?} is not a boolean")),
            }
        }
        let mut accounts = BTreeMap::from([(ADMIN.to_string(), admin)]);
        for (key, value) in config {
            let Some(rest) = key.strip_prefix(ACCOUNTS_PREFIX) else { continue };
            let (name, field) = match rest.split('.').collect::<Vec<_>>()[..] {
                [name] => (name, None),
                [name, field] => (name, Some(field)),
                _ => {
                    warnings.push(format!("argocd-cm {key}: not an account setting"));
                    continue;
                }
            };
            if name.is_empty() {
                warnings.push(format!("argocd-cm {key}: the account name is empty"));
                continue;
            }
            let account = accounts.entry(name.to_string()).or_insert_with(|| Account::new(name));
            match field {
                None => {
                    for word in value.split(',').map(str::trim).filter(|w| !w.is_empty()) {
                        match Capability::parse(word) {
                            Some(c) => account.add_capability(c),
                            None => warnings.push(format!("argocd-cm {key}: unknown capability {word:?}")),
                        }
                    }
                }
                Some("enabled") => account.enabled = value == "true",
                Some(_) => warnings.push(format!("argocd-cm {key}: not an account setting")),
            }
        }
        for account in accounts.values_mut() {
            read_credentials(account, secret, &mut warnings);
        }
        Accounts { accounts, server: super::ServerSettings::from_config_map(config), warnings }
    }

    pub fn get(&self, name: &str) -> Option<&Account> {
        self.accounts.get(name)
    }

    /// The accounts by name.
    pub fn iter(&self) -> impl Iterator<Item = &Account> {
        self.accounts.values()
    }

    /// The highest bcrypt cost among the stored hashes, so a dummy comparison costs what a real one does.
    pub(crate) fn hash_cost(&self) -> Option<u32> {
        self.iter().filter_map(|a| a.password_hash.as_deref()).filter_map(super::password::cost_of).max()
    }
}

fn read_credentials(
    account: &mut Account,
    secret: &BTreeMap<String, ByteString>,
    warnings: &mut Vec<String>,
) {
    let text = |key: &str| secret.get(key).map(|b| String::from_utf8_lossy(&b.0).trim().to_string());
    account.password_hash = text(&password_key(&account.name)).filter(|h| !h.is_empty());
    let mtime_key = password_mtime_key(&account.name);
    if let Some(v) = text(&mtime_key).filter(|v| !v.is_empty()) {
        match parse_rfc3339(&v) {
            Some(t) => account.password_mtime = Some(t),
            None => warnings.push(format!("argocd-secret {mtime_key}: {v:?} is not an RFC 3339 time")),
        }
    }
    let tokens_key = tokens_key(&account.name);
    if let Some(v) = text(&tokens_key).filter(|v| !v.is_empty()) {
        match serde_json::from_str(&v) {
            Ok(tokens) => account.tokens = tokens,
            // No API token of this account verifies until the list is repaired.
            Err(_) => {
                warnings.push(format!("argocd-secret {tokens_key}: not a JSON list of {{id, iat, exp}}"))
            }
        }
    }
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// Refuses names that cannot be an argocd-cm account (so no key of argocd-secret is ever built from them).
pub(crate) fn check_account_name(name: &str) -> Result<(), AuthError> {
    if name.is_empty() || name.contains(['.', ':', '/']) || name.len() > super::MAX_USERNAME_LEN {
        return Err(AuthError::AccountNotFound(name.chars().take(64).collect()));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::auth::clock::from_unix_seconds;

    pub(crate) fn cm(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    pub(crate) fn secret(pairs: &[(&str, &str)]) -> BTreeMap<String, ByteString> {
        pairs.iter().map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec()))).collect()
    }

    #[test]
    fn admin_exists_with_login_by_default() {
        let accounts = Accounts::from_data(&cm(&[]), &secret(&[("admin.password", "$2a$10$x")]));
        let admin = accounts.get("admin").unwrap();
        assert!(admin.enabled);
        assert_eq!(admin.capabilities, vec![Capability::Login]);
        assert!(admin.has_password());
        assert_eq!(accounts.iter().count(), 1);
        assert!(accounts.warnings.is_empty());
    }

    #[test]
    fn admin_enabled_false_disables_admin_and_a_bad_value_is_a_warning() {
        let off = Accounts::from_data(&cm(&[("admin.enabled", "false")]), &secret(&[]));
        assert!(!off.get("admin").unwrap().enabled);
        let bad = Accounts::from_data(&cm(&[("admin.enabled", "nope")]), &secret(&[]));
        assert!(bad.get("admin").unwrap().enabled);
        assert_eq!(bad.warnings, vec![r#"argocd-cm admin.enabled: "nope" is not a boolean"#]);
    }

    #[test]
    fn local_accounts_read_capabilities_and_enabled() {
        let accounts = Accounts::from_data(
            &cm(&[
                ("accounts.alice", "apiKey, login"),
                ("accounts.alice.enabled", "false"),
                ("accounts.ci", "apiKey"),
                ("accounts.bob", "login,login, teleport"),
                ("accounts.admin", "apiKey"),
                ("url", "https://berth.example.com"),
            ]),
            &secret(&[]),
        );
        let alice = accounts.get("alice").unwrap();
        assert_eq!(alice.capabilities, vec![Capability::ApiKey, Capability::Login]);
        assert!(!alice.enabled);
        let ci = accounts.get("ci").unwrap();
        assert!(ci.enabled && ci.has_capability(Capability::ApiKey) && !ci.has_capability(Capability::Login));
        assert_eq!(accounts.get("bob").unwrap().capabilities, vec![Capability::Login]);
        assert_eq!(accounts.get("admin").unwrap().capabilities, vec![Capability::Login, Capability::ApiKey]);
        assert_eq!(accounts.warnings, vec![r#"argocd-cm accounts.bob: unknown capability "teleport""#]);
    }

    #[test]
    fn credentials_come_from_argocd_secret() {
        let accounts = Accounts::from_data(
            &cm(&[("accounts.alice", "apiKey")]),
            &secret(&[
                ("accounts.alice.password", "$2a$10$hash"),
                ("accounts.alice.passwordMtime", "2024-05-01T12:00:00Z"),
                ("accounts.alice.tokens", r#"[{"id":"ci","iat":1714564800},{"id":"x","iat":1,"exp":2}]"#),
                ("admin.tokens", r#"[{"id":"a","iat":5,"exp":0}]"#),
            ]),
        );
        let alice = accounts.get("alice").unwrap();
        assert!(alice.has_password());
        assert_eq!(alice.password_mtime, Some(from_unix_seconds(1_714_564_800)));
        assert_eq!(
            alice.token("ci"),
            Some(&ApiToken { id: "ci".into(), issued_at: 1_714_564_800, expires_at: None })
        );
        assert_eq!(alice.token("x").unwrap().expires_at, Some(2));
        assert_eq!(accounts.get("admin").unwrap().token("a").unwrap().expires_at, None);
    }

    #[test]
    fn unreadable_credentials_are_warnings_that_never_echo_secret_values() {
        let accounts = Accounts::from_data(
            &cm(&[("accounts.alice", "apiKey")]),
            &secret(&[
                ("accounts.alice.tokens", "s3cr3t-not-json"),
                ("accounts.alice.passwordMtime", "soon"),
            ]),
        );
        assert!(accounts.get("alice").unwrap().tokens.is_empty());
        assert_eq!(accounts.warnings.len(), 2);
        assert!(accounts.warnings.iter().all(|w| !w.contains("s3cr3t")), "{:?}", accounts.warnings);
    }

    #[test]
    fn api_token_list_serializes_as_argo_cd_stores_it() {
        let tokens = vec![
            ApiToken { id: "a".into(), issued_at: 10, expires_at: None },
            ApiToken { id: "b".into(), issued_at: 10, expires_at: Some(20) },
        ];
        assert_eq!(
            serde_json::to_string(&tokens).unwrap(),
            r#"[{"id":"a","iat":10},{"id":"b","iat":10,"exp":20}]"#
        );
    }

    #[test]
    fn debug_never_shows_the_password_hash() {
        let accounts = Accounts::from_data(&cm(&[]), &secret(&[("admin.password", "$2a$10$secrethash")]));
        let shown = format!("{accounts:?}");
        assert!(!shown.contains("secrethash"), "{shown}");
        assert!(shown.contains("<redacted>"));
    }

    #[test]
    fn secret_keys_follow_argo_cd_names() {
        assert_eq!(password_key("admin"), "admin.password");
        assert_eq!(password_mtime_key("admin"), "admin.passwordMtime");
        assert_eq!(tokens_key("alice"), "accounts.alice.tokens");
        assert_eq!(password_key("alice"), "accounts.alice.password");
    }

    #[test]
    fn account_names_that_could_forge_keys_are_refused() {
        assert!(check_account_name("alice").is_ok());
        for bad in ["", "alice.password", "a:b", &"x".repeat(33)] {
            assert!(check_account_name(bad).is_err(), "{bad}");
        }
    }
}
