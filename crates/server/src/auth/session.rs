//! Logins and tokens, checked against a snapshot of the accounts; no cluster access here.

use super::accounts::{Accounts, ApiToken, Capability};
use super::clock::{Clock, SystemClock, from_unix_seconds, unix_seconds};
use super::limiter::{Limiter, LoginLimits};
use super::{ARGOCD_SECRET, AuthError, ISSUER, MAX_USERNAME_LEN, password};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use k8s_openapi::ByteString;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

const SECRET_KEY_KEY: &str = "server.secretkey";
/// Argo CD's `users.session.duration` default.
const DEFAULT_SESSION_DURATION: Duration = Duration::from_secs(24 * 3600);
pub(super) use crate::rbac::PROJECT_SUBJECT_PREFIX;

/// The HMAC key tokens are signed with: argocd-secret's `server.secretkey`, its bytes as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey(Vec<u8>);

impl SecretKey {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        SecretKey(bytes.into())
    }

    /// The key in argocd-secret's `data`.
    pub fn from_data(secret: &BTreeMap<String, ByteString>) -> Result<Self, AuthError> {
        match secret.get(SECRET_KEY_KEY) {
            Some(b) if !b.0.is_empty() => Ok(SecretKey(b.0.clone())),
            _ => Err(AuthError::MissingSecretKey),
        }
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey(<redacted {} bytes from {ARGOCD_SECRET}>)", self.0.len())
    }
}

/// What a verified token says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claims {
    /// `iss`: always `argocd`.
    pub issuer: String,
    /// `sub` as signed: `admin:login`, `ci:apiKey`.
    pub subject: String,
    /// The account the subject names (`admin`, `ci`).
    pub account: String,
    /// What the token was issued for: a login session or an API token.
    pub capability: Capability,
    /// `iat`, `nbf` and `exp` in seconds since the Unix epoch; API tokens may have no `exp`.
    pub issued_at: i64,
    pub not_before: Option<i64>,
    pub expires_at: Option<i64>,
    /// `jti`: the token id (an API token's id in argocd-secret).
    pub id: String,
}

/// A new API token and the record argocd-secret keeps of it (store it with [`super::add_api_token`]).
#[derive(Clone)]
pub struct IssuedToken {
    pub token: String,
    pub record: ApiToken,
}

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedToken").field("token", &"<redacted>").field("record", &self.record).finish()
    }
}

/// The claims as signed, in the order Go's `jwt.RegisteredClaims` writes them.
#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct Wire {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) sub: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "numeric_date")]
    pub(super) exp: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "numeric_date")]
    pub(super) nbf: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "numeric_date")]
    pub(super) iat: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) jti: Option<String>,
}

/// JWT numeric dates: whole seconds written, fractional ones accepted.
mod numeric_date {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(v.unwrap_or_default())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.map(|v| v.floor() as i64))
    }
}

struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    accounts: Arc<Accounts>,
    /// The bcrypt cost of the stored hashes, for the comparison an unknown user gets.
    hash_cost: u32,
}

/// Logins, token issue and verification, revocation and failed-login limits; `Send + Sync`, share it in an
/// `Arc`. Methods that compare passwords run bcrypt (tens of milliseconds): call them from a blocking task.
pub struct SessionManager {
    keys: RwLock<Arc<Keys>>,
    clock: Arc<dyn Clock>,
    limiter: Limiter,
    session_duration: Duration,
    /// Logged-out token ids and when each token would have expired anyway.
    revoked: Mutex<HashMap<String, Option<i64>>>,
    dummy_hashes: Mutex<HashMap<u32, Arc<str>>>,
    /// Bumped whenever a token may have stopped being valid (logout, new accounts or key), so open
    /// streams check theirs again.
    changes: tokio::sync::watch::Sender<u64>,
}

impl fmt::Debug for SessionManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionManager")
            .field("session_duration", &self.session_duration)
            .field("limits", &self.limiter.limits())
            .finish_non_exhaustive()
    }
}

impl SessionManager {
    /// Signs with `key`, checks against `accounts`; the system clock, Argo CD's login limits
    /// ([`LoginLimits::default`]) and a 24 h session.
    pub fn new(key: SecretKey, accounts: Accounts) -> Self {
        SessionManager {
            keys: RwLock::new(Arc::new(Keys::new(key, accounts))),
            clock: Arc::new(SystemClock),
            limiter: Limiter::new(LoginLimits::default()),
            session_duration: DEFAULT_SESSION_DURATION,
            revoked: Mutex::new(HashMap::new()),
            dummy_hashes: Mutex::new(HashMap::new()),
            changes: tokio::sync::watch::Sender::new(0),
        }
    }

    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Replaces the limits (and forgets the failures counted so far).
    pub fn with_limits(mut self, limits: LoginLimits) -> Self {
        self.limiter = Limiter::new(limits);
        self
    }

    /// How long a login token lasts (argocd-cm `users.session.duration`).
    pub fn with_session_duration(mut self, duration: Duration) -> Self {
        self.session_duration = duration;
        self
    }

    /// Takes a newer snapshot of argocd-cm and argocd-secret: call it whenever either changes (a password
    /// change, a new API token, a rotated `server.secretkey`).
    pub fn replace(&self, key: SecretKey, accounts: Accounts) {
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(Keys::new(key, accounts));
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Changes whenever a token that verified before may no longer (a logout, a password change, a deleted
    /// API token, a new signing key): holders of long-lived requests verify their token again.
    pub fn revocations(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// The accounts currently checked against.
    pub fn accounts(&self) -> Arc<Accounts> {
        self.keys().accounts.clone()
    }

    /// Checks a username and password as a login does, failed-login limits included: the account must exist,
    /// have a password that matches, be enabled and have the `login` capability. Unknown users and users
    /// without a password cost one bcrypt comparison too, so timing does not tell them apart.
    pub fn check_password(&self, username: &str, password: &str) -> Result<(), AuthError> {
        if password.is_empty() {
            return Err(AuthError::BlankPassword);
        }
        if username.len() > MAX_USERNAME_LEN {
            return Err(AuthError::UsernameTooLong);
        }
        let _turn = self.limiter.turn(username);
        let keys = self.keys();
        let account = keys.accounts.get(username);
        // Only a known account is named in logs: a mistyped username may be a password.
        let logged = account.map_or("<unknown>", |a| a.name.as_str());
        if let Err(e) = self.limiter.check(username, self.clock.now()) {
            tracing::warn!(account = logged, "login refused: too many failed attempts");
            return Err(e);
        }
        let matched = match account.and_then(|a| a.password_hash.as_deref()) {
            Some(hash) => password::matches(password, hash),
            None => {
                let _ = password::matches(password, &self.dummy_hash(keys.hash_cost));
                false
            }
        };
        let account = match account {
            Some(a) if matched => a,
            _ => {
                let failures = self.limiter.record_failure(username, self.clock.now());
                tracing::warn!(account = logged, failures, "failed login");
                return Err(AuthError::InvalidLogin);
            }
        };
        if !account.enabled {
            return Err(AuthError::AccountDisabled(username.to_string()));
        }
        if !account.has_capability(Capability::Login) {
            return Err(AuthError::MissingCapability {
                account: username.to_string(),
                capability: Capability::Login,
            });
        }
        self.limiter.forget(username);
        Ok(())
    }

    /// Checks the password ([`check_password`](Self::check_password)) and issues a session token
    /// (`sub: "<username>:login"`, expiring after the session duration).
    pub fn login(&self, username: &str, password: &str) -> Result<String, AuthError> {
        self.check_password(username, password)?;
        let now = unix_seconds(self.clock.now());
        let expires = now.saturating_add(i64::try_from(self.session_duration.as_secs()).unwrap_or(i64::MAX));
        let token = self.sign(
            &format!("{username}:{}", Capability::Login),
            now,
            Some(expires),
            &password::generate_token_id(),
        )?;
        tracing::info!(account = username, "login");
        Ok(token)
    }

    /// Issues an API token for `account` (`sub: "<account>:apiKey"`): the account must have the `apiKey`
    /// capability and no token with this id. `expires_in` of `None` or zero never expires; `id` of `None`
    /// gets a random UUID. The token is valid only once its record is in argocd-secret.
    pub fn generate_token(
        &self,
        account: &str,
        expires_in: Option<Duration>,
        id: Option<&str>,
    ) -> Result<IssuedToken, AuthError> {
        let keys = self.keys();
        let acc =
            keys.accounts.get(account).ok_or_else(|| AuthError::AccountNotFound(account.to_string()))?;
        if !acc.has_capability(Capability::ApiKey) {
            return Err(AuthError::MissingCapability {
                account: account.to_string(),
                capability: Capability::ApiKey,
            });
        }
        let id = match id {
            Some(id) if !id.is_empty() => id.to_string(),
            _ => password::generate_token_id(),
        };
        if acc.token(&id).is_some() {
            return Err(AuthError::TokenIdExists(id));
        }
        let now = unix_seconds(self.clock.now());
        let expires_at = expires_in
            .filter(|d| !d.is_zero())
            .map(|d| now.saturating_add(i64::try_from(d.as_secs().max(1)).unwrap_or(i64::MAX)));
        let token = self.sign(&format!("{account}:{}", Capability::ApiKey), now, expires_at, &id)?;
        Ok(IssuedToken { token, record: ApiToken { id, issued_at: now, expires_at } })
    }

    /// Checks a token as Argo CD does: HS256 with the current key, issuer `argocd`, not expired and already
    /// valid, the account still exists, is enabled and has the capability the token was issued for, the token
    /// is not revoked (an API token must still be listed in argocd-secret), and it was issued no earlier than
    /// the account's last password change.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let keys = self.keys();
        let (wire, issued_at) = self.decode(token)?;
        let subject = wire.sub.unwrap_or_default();
        if subject.starts_with(PROJECT_SUBJECT_PREFIX) {
            // Checked against its project by `verify_project_token`, never as an account's.
            return Err(AuthError::TokenInvalid("a project role token is not an account's"));
        }
        let (name, capability) = match subject.split_once(':') {
            Some((name, "login")) => (name, Capability::Login),
            Some((name, _)) => (name, Capability::ApiKey),
            None => (subject.as_str(), Capability::ApiKey),
        };
        let account =
            keys.accounts.get(name).ok_or(AuthError::TokenInvalid("the account no longer exists"))?;
        if !account.enabled {
            return Err(AuthError::AccountDisabled(name.to_string()));
        }
        if !account.has_capability(capability) {
            return Err(AuthError::MissingCapability { account: name.to_string(), capability });
        }
        let id = wire.jti.unwrap_or_default();
        if id.is_empty() || self.lock_revoked().contains_key(&id) {
            return Err(AuthError::TokenRevoked);
        }
        if capability == Capability::ApiKey && account.token(&id).is_none() {
            return Err(AuthError::TokenNotFound { account: name.to_string(), id });
        }
        if account.password_mtime.is_some_and(|mtime| from_unix_seconds(issued_at) < mtime) {
            return Err(AuthError::PasswordChangedSinceIssued);
        }
        Ok(Claims {
            issuer: ISSUER.to_string(),
            account: name.to_string(),
            subject,
            capability,
            issued_at,
            not_before: wire.nbf,
            expires_at: wire.exp,
            id,
        })
    }

    /// The claims of a token signed with the current key (HS256 only) by `argocd`, already valid and not
    /// expired by this manager's clock; with its `iat`, which every token berth accepts carries.
    pub(super) fn decode(&self, token: &str) -> Result<(Wire, i64), AuthError> {
        let mut validation = Validation::new(Algorithm::HS256);
        // Times are checked below against this manager's clock.
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.leeway = 0;
        let wire = jsonwebtoken::decode::<Wire>(token, &self.keys().decoding, &validation)
            .map_err(token_error)?
            .claims;
        let now = self.now();
        if wire.iss.as_deref() != Some(ISSUER) {
            return Err(AuthError::TokenInvalid("not issued by argocd"));
        }
        let issued_at = wire.iat.ok_or(AuthError::TokenInvalid("no iat claim"))?;
        if wire.exp.is_some_and(|exp| now >= exp) {
            return Err(AuthError::TokenExpired);
        }
        if wire.nbf.is_some_and(|nbf| now < nbf) {
            return Err(AuthError::TokenInvalid("not valid yet"));
        }
        Ok((wire, issued_at))
    }

    /// Seconds since the Unix epoch by this manager's clock.
    pub(super) fn now(&self) -> i64 {
        unix_seconds(self.clock.now())
    }

    /// Refuses the token from now on (logout). Kept in memory until the token would have expired; to
    /// revoke an API token, delete it from argocd-secret with [`super::delete_api_token`].
    pub fn revoke(&self, claims: &Claims) {
        let now = unix_seconds(self.clock.now());
        let mut revoked = self.lock_revoked();
        revoked.retain(|_, exp| exp.is_none_or(|exp| exp > now));
        revoked.insert(claims.id.clone(), claims.expires_at);
        drop(revoked);
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Takes the tokens other replicas logged out ([`super::revocations`]): each id is refused until its
    /// token would have expired; entries already lapsed are not taken. Open streams check their token again
    /// only when an id is new.
    pub fn merge_revoked(&self, ids: impl IntoIterator<Item = (String, Option<i64>)>) {
        let now = self.now();
        let mut revoked = self.lock_revoked();
        revoked.retain(|_, exp| exp.is_none_or(|exp| exp > now));
        let mut added = false;
        for (id, expires_at) in ids {
            if !id.is_empty() && expires_at.is_none_or(|exp| exp > now) && !revoked.contains_key(&id) {
                revoked.insert(id, expires_at);
                added = true;
            }
        }
        drop(revoked);
        if added {
            self.changes.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    pub(super) fn sign(
        &self,
        subject: &str,
        now: i64,
        expires_at: Option<i64>,
        id: &str,
    ) -> Result<String, AuthError> {
        let wire = Wire {
            iss: Some(ISSUER.to_string()),
            sub: Some(subject.to_string()),
            exp: expires_at,
            nbf: Some(now),
            iat: Some(now),
            jti: Some(id.to_string()),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &wire, &self.keys().encoding)
            .map_err(|e| AuthError::Internal(format!("signing the token failed: {e}")))
    }

    fn keys(&self) -> Arc<Keys> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn lock_revoked(&self) -> std::sync::MutexGuard<'_, HashMap<String, Option<i64>>> {
        self.revoked.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A hash of a password nobody has, at `cost`, made once.
    fn dummy_hash(&self, cost: u32) -> Arc<str> {
        let mut hashes = self.dummy_hashes.lock().unwrap_or_else(|e| e.into_inner());
        hashes
            .entry(cost)
            .or_insert_with(|| {
                let random = password::generate_initial_password();
                password::hash(&random, cost).unwrap_or_default().into()
            })
            .clone()
    }
}

impl Keys {
    fn new(key: SecretKey, accounts: Accounts) -> Self {
        Keys {
            encoding: EncodingKey::from_secret(&key.0),
            decoding: DecodingKey::from_secret(&key.0),
            hash_cost: accounts.hash_cost().unwrap_or(password::PASSWORD_HASH_COST),
            accounts: Arc::new(accounts),
        }
    }
}

fn token_error(e: jsonwebtoken::errors::Error) -> AuthError {
    use jsonwebtoken::errors::ErrorKind;
    AuthError::TokenInvalid(match e.kind() {
        ErrorKind::InvalidSignature => "signature is invalid",
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => "unexpected signing algorithm",
        _ => "malformed token",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::ManualClock;
    use crate::auth::accounts::tests::{cm, secret};
    use crate::auth::clock::rfc3339;
    use base64::Engine;
    use std::sync::OnceLock;
    use std::time::SystemTime;

    const START: u64 = 1_700_000_000;

    /// Cost-4 hashes of the test passwords, made once (bcrypt is slow in debug builds).
    fn hash_of(password: &str) -> String {
        static HASHES: OnceLock<Mutex<HashMap<String, String>>> = OnceLock::new();
        let mut map = HASHES.get_or_init(Default::default).lock().unwrap();
        map.entry(password.to_string()).or_insert_with(|| password::hash(password, 4).unwrap()).clone()
    }

    struct Fixture {
        clock: Arc<ManualClock>,
        sessions: SessionManager,
    }

    fn accounts(extra_cm: &[(&str, &str)], extra_secret: &[(&str, String)]) -> Accounts {
        let mut c =
            vec![("accounts.alice", "login, apiKey"), ("accounts.ci", "apiKey"), ("accounts.bob", "apiKey")];
        c.extend_from_slice(extra_cm);
        let admin = hash_of("admin-password");
        let alice = hash_of("alice-password");
        let bob = hash_of("bob-password");
        let mut s: Vec<(&str, &str)> = vec![
            ("admin.password", &admin),
            ("accounts.alice.password", &alice),
            ("accounts.bob.password", &bob),
        ];
        s.extend(extra_secret.iter().map(|(k, v)| (*k, v.as_str())));
        Accounts::from_data(&cm(&c), &secret(&s))
    }

    fn fixture(accounts: Accounts) -> Fixture {
        let clock = Arc::new(ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(START)));
        let sessions = SessionManager::new(SecretKey::new(b"test-key".to_vec()), accounts)
            .with_clock(clock.clone())
            .with_limits(LoginLimits {
                max_failures: 3,
                window: Duration::from_secs(300),
                max_cache_size: 100,
            });
        Fixture { clock, sessions }
    }

    fn payload(token: &str) -> serde_json::Value {
        let part = token.split('.').nth(1).unwrap();
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap())
            .unwrap()
    }

    /// Signs arbitrary claims with `key`, as a forger or another server would.
    fn forge(key: &[u8], alg: Algorithm, claims: serde_json::Value) -> String {
        jsonwebtoken::encode(&Header::new(alg), &claims, &EncodingKey::from_secret(key)).unwrap()
    }

    #[test]
    fn login_issues_an_hs256_token_with_argo_cd_claims() {
        let f = fixture(accounts(&[], &[]));
        let token = f.sessions.login("admin", "admin-password").unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, Algorithm::HS256);
        let p = payload(&token);
        assert_eq!(p["iss"], "argocd");
        assert_eq!(p["sub"], "admin:login");
        assert_eq!(p["iat"], START);
        assert_eq!(p["nbf"], START);
        assert_eq!(p["exp"], START + 24 * 3600);
        assert_eq!(p["jti"].as_str().unwrap().len(), 36);
        let claims = f.sessions.verify(&token).unwrap();
        assert_eq!(claims.account, "admin");
        assert_eq!(claims.subject, "admin:login");
        assert_eq!(claims.capability, Capability::Login);
        assert_eq!(claims.expires_at, Some((START + 24 * 3600) as i64));
    }

    #[test]
    fn session_duration_sets_exp() {
        let f = fixture(accounts(&[], &[]));
        let sessions = f.sessions.with_session_duration(Duration::from_secs(3600));
        let token = sessions.login("alice", "alice-password").unwrap();
        assert_eq!(payload(&token)["exp"], START + 3600);
    }

    #[test]
    fn wrong_password_unknown_user_and_passwordless_user_get_the_same_error() {
        let f = fixture(accounts(&[], &[]));
        for (user, pass) in [("admin", "nope"), ("mallory", "admin-password"), ("ci", "anything")] {
            let err = f.sessions.login(user, pass).unwrap_err();
            assert!(matches!(err, AuthError::InvalidLogin), "{user}: {err}");
            assert_eq!(err.to_string(), "Invalid username or password");
        }
    }

    #[test]
    fn blank_password_and_long_username_are_refused_before_comparing() {
        let f = fixture(accounts(&[], &[]));
        assert!(matches!(f.sessions.login("admin", ""), Err(AuthError::BlankPassword)));
        assert!(matches!(f.sessions.login(&"a".repeat(33), "x"), Err(AuthError::UsernameTooLong)));
    }

    #[test]
    fn disabled_accounts_and_accounts_without_login_cannot_log_in() {
        let f = fixture(accounts(&[("accounts.alice.enabled", "false")], &[]));
        assert!(
            matches!(f.sessions.login("alice", "alice-password"), Err(AuthError::AccountDisabled(a)) if a == "alice")
        );
        let err = f.sessions.login("bob", "bob-password").unwrap_err();
        assert_eq!(err.to_string(), "account bob does not have 'login' capability");
        let off = fixture(accounts(&[("admin.enabled", "false")], &[]));
        assert!(matches!(off.sessions.login("admin", "admin-password"), Err(AuthError::AccountDisabled(_))));
    }

    #[test]
    fn repeated_failures_lock_out_even_the_right_password_until_the_window_passes() {
        let f = fixture(accounts(&[], &[]));
        for _ in 0..3 {
            assert!(matches!(f.sessions.login("admin", "guess"), Err(AuthError::InvalidLogin)));
        }
        f.clock.advance(Duration::from_secs(60));
        let err = f.sessions.login("admin", "admin-password").unwrap_err();
        assert_eq!(err.to_string(), "too many failed login attempts, try again in 4m 0s");
        assert!(f.sessions.login("alice", "alice-password").is_ok(), "other users are not locked out");
        f.clock.advance(Duration::from_secs(241));
        assert!(f.sessions.login("admin", "admin-password").is_ok());
    }

    #[test]
    fn unknown_users_are_rate_limited_too() {
        let f = fixture(accounts(&[], &[]));
        for _ in 0..3 {
            let _ = f.sessions.login("mallory", "x");
        }
        assert!(matches!(f.sessions.login("mallory", "x"), Err(AuthError::TooManyAttempts { .. })));
    }

    #[test]
    fn a_successful_login_resets_the_failure_count() {
        let f = fixture(accounts(&[], &[]));
        let _ = f.sessions.login("admin", "guess");
        let _ = f.sessions.login("admin", "guess");
        f.sessions.login("admin", "admin-password").unwrap();
        let _ = f.sessions.login("admin", "guess");
        let _ = f.sessions.login("admin", "guess");
        assert!(f.sessions.login("admin", "admin-password").is_ok());
    }

    #[test]
    fn expired_tokens_are_refused() {
        let f = fixture(accounts(&[], &[]));
        let token = f.sessions.login("admin", "admin-password").unwrap();
        f.clock.advance(Duration::from_secs(24 * 3600 - 1));
        assert!(f.sessions.verify(&token).is_ok());
        f.clock.advance(Duration::from_secs(1));
        assert!(matches!(f.sessions.verify(&token), Err(AuthError::TokenExpired)));
    }

    #[test]
    fn tokens_signed_with_another_key_or_algorithm_or_tampered_are_refused() {
        let f = fixture(accounts(&[], &[]));
        let claims = serde_json::json!({"iss": "argocd", "sub": "admin:login", "iat": START, "nbf": START,
            "exp": START + 60, "jti": "x"});
        let other_key = forge(b"another-key", Algorithm::HS256, claims.clone());
        assert_eq!(
            f.sessions.verify(&other_key).unwrap_err().to_string(),
            "invalid token: signature is invalid"
        );
        let hs512 = forge(b"test-key", Algorithm::HS512, claims.clone());
        assert!(matches!(
            f.sessions.verify(&hs512),
            Err(AuthError::TokenInvalid("unexpected signing algorithm"))
        ));
        let unsigned = format!(
            "{}.{}.",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        assert!(f.sessions.verify(&unsigned).is_err());
        let good = f.sessions.login("admin", "admin-password").unwrap();
        let mut parts: Vec<String> = good.split('.').map(String::from).collect();
        let mut p = payload(&good);
        p["sub"] = "alice:login".into();
        parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(p.to_string());
        assert!(matches!(
            f.sessions.verify(&parts.join(".")),
            Err(AuthError::TokenInvalid("signature is invalid"))
        ));
        assert!(matches!(f.sessions.verify("not a token"), Err(AuthError::TokenInvalid("malformed token"))));
    }

    #[test]
    fn a_rotated_secret_key_invalidates_every_token() {
        let f = fixture(accounts(&[], &[]));
        let token = f.sessions.login("admin", "admin-password").unwrap();
        f.sessions.replace(SecretKey::new(b"rotated".to_vec()), accounts(&[], &[]));
        assert!(matches!(f.sessions.verify(&token), Err(AuthError::TokenInvalid("signature is invalid"))));
    }

    #[test]
    fn claims_are_checked_issuer_iat_nbf_and_jti() {
        let f = fixture(accounts(&[], &[]));
        let sign = |c: serde_json::Value| forge(b"test-key", Algorithm::HS256, c);
        let base = serde_json::json!({"iss": "argocd", "sub": "admin:login", "iat": START, "nbf": START, "jti": "j"});
        assert!(f.sessions.verify(&sign(base.clone())).is_ok(), "no exp: never expires");
        let mut c = base.clone();
        c["iss"] = "dex".into();
        assert!(matches!(f.sessions.verify(&sign(c)), Err(AuthError::TokenInvalid("not issued by argocd"))));
        let mut c = base.clone();
        c.as_object_mut().unwrap().remove("iat");
        assert!(matches!(f.sessions.verify(&sign(c)), Err(AuthError::TokenInvalid("no iat claim"))));
        let mut c = base.clone();
        c["nbf"] = (START + 10).into();
        assert!(matches!(f.sessions.verify(&sign(c)), Err(AuthError::TokenInvalid("not valid yet"))));
        let mut c = base.clone();
        c.as_object_mut().unwrap().remove("jti");
        assert!(matches!(f.sessions.verify(&sign(c)), Err(AuthError::TokenRevoked)));
        let mut c = base.clone();
        c["sub"] = "nobody:login".into();
        assert!(matches!(f.sessions.verify(&sign(c)), Err(AuthError::TokenInvalid(_))));
        let mut c = base;
        c["sub"] = "proj:default:ci".into();
        assert!(f.sessions.verify(&sign(c)).is_err());
    }

    #[test]
    fn a_token_issued_before_the_password_changed_is_refused() {
        let f = fixture(accounts(&[], &[]));
        let old = f.sessions.login("admin", "admin-password").unwrap();
        f.clock.advance(Duration::from_secs(10));
        let changed = rfc3339(f.clock.now());
        f.sessions.replace(
            SecretKey::new(b"test-key".to_vec()),
            accounts(&[], &[("admin.passwordMtime", changed)]),
        );
        assert_eq!(
            f.sessions.verify(&old).unwrap_err().to_string(),
            "account password has changed since token issued"
        );
        let new = f.sessions.login("admin", "admin-password").unwrap();
        assert!(f.sessions.verify(&new).is_ok(), "issued in the same second as the change");
    }

    #[test]
    fn disabling_an_account_invalidates_its_tokens() {
        let f = fixture(accounts(&[], &[]));
        let token = f.sessions.login("alice", "alice-password").unwrap();
        f.sessions.replace(
            SecretKey::new(b"test-key".to_vec()),
            accounts(&[("accounts.alice.enabled", "false")], &[]),
        );
        assert!(matches!(f.sessions.verify(&token), Err(AuthError::AccountDisabled(_))));
    }

    #[test]
    fn revoked_tokens_are_refused_and_others_are_not() {
        let f = fixture(accounts(&[], &[]));
        let a = f.sessions.login("admin", "admin-password").unwrap();
        let b = f.sessions.login("admin", "admin-password").unwrap();
        let claims = f.sessions.verify(&a).unwrap();
        f.sessions.revoke(&claims);
        assert!(matches!(f.sessions.verify(&a), Err(AuthError::TokenRevoked)));
        assert!(f.sessions.verify(&b).is_ok());
    }

    #[test]
    fn api_tokens_carry_the_apikey_subject_and_need_their_record() {
        let f = fixture(accounts(&[], &[]));
        let issued = f.sessions.generate_token("ci", Some(Duration::from_secs(600)), Some("deploy")).unwrap();
        assert_eq!(
            issued.record,
            ApiToken { id: "deploy".into(), issued_at: START as i64, expires_at: Some(START as i64 + 600) }
        );
        let p = payload(&issued.token);
        assert_eq!(p["sub"], "ci:apiKey");
        assert_eq!(p["jti"], "deploy");
        assert_eq!(
            f.sessions.verify(&issued.token).unwrap_err().to_string(),
            "account ci does not have token with id deploy",
            "not stored in argocd-secret yet"
        );
        let tokens = serde_json::to_string(&[&issued.record]).unwrap();
        f.sessions
            .replace(SecretKey::new(b"test-key".to_vec()), accounts(&[], &[("accounts.ci.tokens", tokens)]));
        let claims = f.sessions.verify(&issued.token).unwrap();
        assert_eq!((claims.account.as_str(), claims.capability), ("ci", Capability::ApiKey));
        f.clock.advance(Duration::from_secs(600));
        assert!(matches!(f.sessions.verify(&issued.token), Err(AuthError::TokenExpired)));
    }

    #[test]
    fn api_tokens_without_expiry_have_no_exp_and_a_random_id() {
        let f = fixture(accounts(&[], &[]));
        let issued = f.sessions.generate_token("ci", None, None).unwrap();
        assert!(payload(&issued.token).get("exp").is_none());
        assert_eq!(issued.record.expires_at, None);
        assert_eq!(issued.record.id.len(), 36);
        let zero = f.sessions.generate_token("ci", Some(Duration::ZERO), None).unwrap();
        assert_eq!(zero.record.expires_at, None);
    }

    #[test]
    fn api_tokens_need_the_apikey_capability_and_a_fresh_id() {
        let tokens = r#"[{"id":"taken","iat":1}]"#.to_string();
        let f = fixture(accounts(&[], &[("accounts.ci.tokens", tokens)]));
        let err = f.sessions.generate_token("admin", None, None).unwrap_err();
        assert_eq!(err.to_string(), "account admin does not have 'apiKey' capability");
        assert!(matches!(f.sessions.generate_token("ghost", None, None), Err(AuthError::AccountNotFound(_))));
        assert!(matches!(
            f.sessions.generate_token("ci", None, Some("taken")),
            Err(AuthError::TokenIdExists(_))
        ));
    }

    #[test]
    fn a_login_token_does_not_pass_as_an_api_token_of_an_account_without_login() {
        let f = fixture(accounts(&[], &[]));
        let sign = |sub: &str| {
            forge(
                b"test-key",
                Algorithm::HS256,
                serde_json::json!({"iss": "argocd", "sub": sub, "iat": START, "jti": "j"}),
            )
        };
        let err = f.sessions.verify(&sign("ci:login")).unwrap_err();
        assert_eq!(err.to_string(), "account ci does not have 'login' capability");
        // A subject without a capability is an API token, as in Argo CD.
        assert!(matches!(f.sessions.verify(&sign("admin")), Err(AuthError::MissingCapability { .. })));
    }

    #[test]
    fn debug_output_and_errors_hide_tokens_keys_and_passwords() {
        let f = fixture(accounts(&[], &[]));
        let issued = f.sessions.generate_token("ci", None, None).unwrap();
        let shown = format!("{issued:?} {:?} {:?}", f.sessions, SecretKey::new(b"test-key".to_vec()));
        assert!(!shown.contains(&issued.token) && !shown.contains("test-key"), "{shown}");
        for err in [
            f.sessions.login("admin", "Sup3r-Secret").unwrap_err(),
            f.sessions.verify(&format!("{}x", issued.token)).unwrap_err(),
        ] {
            let text = format!("{err} {err:?}");
            assert!(!text.contains("Sup3r-Secret") && !text.contains(&issued.token), "{text}");
        }
    }

    #[test]
    fn a_session_manager_can_be_shared_across_threads() {
        fn shared<T: Send + Sync + 'static>() {}
        shared::<SessionManager>();
    }

    #[test]
    fn the_secret_key_comes_from_server_secretkey() {
        assert_eq!(
            SecretKey::from_data(&secret(&[("server.secretkey", "abc")])).unwrap(),
            SecretKey::new(b"abc".to_vec())
        );
        assert!(matches!(SecretKey::from_data(&secret(&[])), Err(AuthError::MissingSecretKey)));
    }
}
