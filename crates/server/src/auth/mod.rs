//! Local accounts and sessions, as Argo CD keeps them: the `admin` account and the local accounts of
//! argocd-cm (`accounts.<name>: apiKey, login`), bcrypt password hashes in argocd-secret, and HS256 JSON Web
//! Tokens signed with argocd-secret's `server.secretkey`.
//!
//! The parts, each in its own module:
//! - [`bootstrap`] runs once at start: it writes `server.secretkey` and the admin's initial password
//!   (plain text in Secret `argocd-initial-admin-secret`, key `password`) when they are missing.
//! - [`Accounts`] is the snapshot of argocd-cm and argocd-secret that logins and tokens are checked against;
//!   it carries [`ServerSettings`], the rest of argocd-cm the server reads (anonymous access, status badge).
//! - [`SessionManager`] is pure (no cluster): login with rate limiting, token issue and verification,
//!   revocation. Feed it fresh [`Accounts`] with [`SessionManager::replace`] when either object changes.
//! - [`update_password`], [`set_password`], [`add_api_token`] and [`delete_api_token`] write argocd-secret.
//! - [`revocations`] shares logouts between replicas through Secret `berth-revoked-sessions`.
//!
//! ```no_run
//! # async fn run(client: kube::Client) -> Result<(), berth_server::auth::AuthError> {
//! use berth_server::auth::{self, SessionManager};
//! let boot = auth::bootstrap(&client, "argocd").await?;
//! let sessions = SessionManager::new(boot.secret_key, boot.accounts);
//! // bcrypt is slow on purpose: call login from a blocking task in a server.
//! let token = sessions.login("admin", "the password")?;
//! let claims = sessions.verify(&token)?;
//! assert_eq!(claims.account, "admin");
//! # Ok(()) }
//! ```
//!
//! Token subjects follow Argo CD: a login token has `sub: "<account>:login"`, an API token
//! `sub: "<account>:apiKey"`; a subject without a capability is read as an API token. A project role token
//! (`sub: "proj:<project>:<role>"`, [`SessionManager::issue_project_token`]) is checked against the
//! AppProjects instead ([`SessionManager::verify_project_token`]). Both carry
//! `iss: "argocd"`, `iat`, `nbf` and a `jti`; login tokens expire after the session duration (24 h by
//! default), API tokens only when asked to.

mod accounts;
mod argocd_secret;
mod bootstrap;
mod clock;
mod limiter;
pub mod oidc;
mod password;
mod project_token;
pub mod revocations;
mod server_settings;
mod session;

pub use accounts::{Account, Accounts, ApiToken, Capability};
pub use argocd_secret::{add_api_token, delete_api_token, load, set_password, update_password};
pub use bootstrap::{Bootstrap, bootstrap};
pub use clock::{Clock, ManualClock, SystemClock};
pub use limiter::LoginLimits;
pub use password::PASSWORD_HASH_COST;

/// A bcrypt hash (`$2a$10$…`) of `password`, as Argo CD writes them (`argocd account bcrypt`; Dex's
/// `staticPasswords` take the same).
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    if password.is_empty() {
        return Err(AuthError::BlankPassword);
    }
    password::hash(password, PASSWORD_HASH_COST)
}
pub use project_token::{IssuedProjectToken, ProjectClaims, is_project_token};
pub use server_settings::{
    ANONYMOUS_ENABLED_KEY, STATUS_BADGE_ENABLED_KEY, STATUS_BADGE_URL_KEY, ServerSettings,
};
pub use session::{Claims, IssuedToken, SecretKey, SessionManager};

use std::time::Duration;

/// The Secret holding password hashes, API token lists and the token signing key; the ConfigMap declaring
/// the local accounts.
pub use berth_controller::settings_source::{ARGOCD_CM, ARGOCD_SECRET};
/// The Secret holding the admin's generated initial password in clear, key `password`.
pub const INITIAL_ADMIN_SECRET: &str = "argocd-initial-admin-secret";
/// The built-in account.
pub const ADMIN: &str = "admin";
/// Argo CD's limit on local usernames; it also bounds the failed-login cache.
pub const MAX_USERNAME_LEN: usize = 32;
/// The issuer of every token berth signs.
pub const ISSUER: &str = "argocd";

/// Why a login, a token or an account change was refused. Messages never contain a password, a hash or a
/// token.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Wrong password, unknown user, or a user without a password: the three look the same on purpose.
    #[error("Invalid username or password")]
    InvalidLogin,
    /// The username is locked out after repeated failures; the right password is refused too until then.
    #[error("too many failed login attempts, {}", wait(*retry_after))]
    TooManyAttempts { retry_after: Duration },
    #[error("Blank passwords are not allowed")]
    BlankPassword,
    #[error("username is longer than {MAX_USERNAME_LEN} characters")]
    UsernameTooLong,
    #[error("account {0} is disabled")]
    AccountDisabled(String),
    #[error("account {account} does not have '{capability}' capability")]
    MissingCapability { account: String, capability: Capability },
    #[error("account '{0}' does not exist")]
    AccountNotFound(String),
    #[error("token has expired")]
    TokenExpired,
    /// Forged, malformed, signed with another key or algorithm, not yet valid, or not issued by berth.
    #[error("invalid token: {0}")]
    TokenInvalid(&'static str),
    #[error("token is revoked, please re-login")]
    TokenRevoked,
    #[error("account {account} does not have token with id {id}")]
    TokenNotFound { account: String, id: String },
    #[error("account password has changed since token issued")]
    PasswordChangedSinceIssued,
    #[error("account already has token with id '{0}'")]
    TokenIdExists(String),
    #[error("current password does not match")]
    WrongCurrentPassword,
    /// The new password breaks the password policy (the message says which rule, never the password).
    #[error("{0}")]
    WeakPassword(String),
    #[error("argocd-secret has no server.secretkey (bootstrap writes one)")]
    MissingSecretKey,
    #[error("{what}: {source}")]
    Kube {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("hashing the password failed: {0}")]
    Hash(#[from] bcrypt::BcryptError),
    /// Token signing or a background task failed.
    #[error("{0}")]
    Internal(String),
    /// argocd-secret kept changing under a read-modify-write.
    #[error("{0} changed while it was being updated; gave up after several attempts")]
    Contended(String),
}

impl AuthError {
    /// The gRPC code Argo CD answers with (3 invalid argument, 5 not found, 13 internal, 16 unauthenticated).
    pub fn grpc_code(&self) -> u16 {
        use AuthError::*;
        match self {
            InvalidLogin | TooManyAttempts { .. } | AccountDisabled(_) | MissingCapability { .. } => 16,
            TokenExpired | TokenInvalid(_) | TokenRevoked | TokenNotFound { .. } => 16,
            PasswordChangedSinceIssued => 16,
            BlankPassword | UsernameTooLong | TokenIdExists(_) | WrongCurrentPassword | WeakPassword(_) => 3,
            AccountNotFound(_) => 5,
            MissingSecretKey | Kube { .. } | Hash(_) | Internal(_) | Contended(_) => 13,
        }
    }

    /// The HTTP status Argo CD's gateway maps [`grpc_code`](Self::grpc_code) to.
    pub fn http_status(&self) -> axum::http::StatusCode {
        use axum::http::StatusCode;
        match self.grpc_code() {
            3 => StatusCode::BAD_REQUEST,
            5 => StatusCode::NOT_FOUND,
            16 => StatusCode::UNAUTHORIZED,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub(crate) fn kube(what: impl Into<String>, source: kube::Error) -> Self {
        AuthError::Kube { what: what.into(), source }
    }
}

/// `try again in 4m 10s`: how long to wait, as a person reads it (rounded up to whole seconds).
fn wait(d: Duration) -> String {
    if d == Duration::MAX {
        return "try again after the server restarts (ARGOCD_SESSION_FAILURE_WINDOW_SECONDS is 0)".into();
    }
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    match (secs / 3600, secs % 3600 / 60, secs % 60) {
        (0, 0, s) => format!("try again in {s}s"),
        (0, m, s) => format!("try again in {m}m {s}s"),
        (h, m, _) => format!("try again in {h}h {m}m"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_many_attempts_says_how_long_to_wait() {
        let e = AuthError::TooManyAttempts { retry_after: Duration::from_millis(250_500) };
        assert_eq!(e.to_string(), "too many failed login attempts, try again in 4m 11s");
        assert_eq!(wait(Duration::from_secs(45)), "try again in 45s");
        assert_eq!(wait(Duration::from_secs(3600)), "try again in 1h 0m");
        assert_eq!(e.http_status(), axum::http::StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn errors_map_to_argo_cd_codes() {
        assert_eq!(AuthError::InvalidLogin.grpc_code(), 16);
        assert_eq!(AuthError::WrongCurrentPassword.grpc_code(), 3);
        assert_eq!(AuthError::AccountNotFound("x".into()).http_status(), axum::http::StatusCode::NOT_FOUND);
        assert_eq!(AuthError::MissingSecretKey.grpc_code(), 13);
    }
}
