//! bcrypt hashes as Argo CD writes them, the password policy, and the generated secrets.

use super::AuthError;
use rand::RngExt;
use rand::distr::Alphanumeric;

/// Go's `bcrypt.DefaultCost`, which Argo CD hashes with: hashes stay interchangeable with Argo CD's.
pub const PASSWORD_HASH_COST: u32 = 10;
/// Argo CD's initial admin password: 16 letters and digits.
const INITIAL_PASSWORD_LEN: usize = 16;
/// Argo CD's default `passwordPattern` is `^.{8,32}$`.
const MIN_PASSWORD_CHARS: usize = 8;
const MAX_PASSWORD_CHARS: usize = 32;

/// A bcrypt hash (`$2a$10$…`) of `password`. Passwords over 72 bytes are refused, not silently truncated.
pub(crate) fn hash(password: &str, cost: u32) -> Result<String, AuthError> {
    Ok(bcrypt::non_truncating_hash_with_result(password, cost)?.format_for_version(bcrypt::Version::TwoA))
}

/// Whether `password` matches `hash`; the comparison is constant-time and a malformed hash never matches.
pub(crate) fn matches(password: &str, hash: &str) -> bool {
    bcrypt::verify(password, hash).unwrap_or(false)
}

/// The cost recorded in a bcrypt hash (`$2a$10$…` → 10).
pub(crate) fn cost_of(hash: &str) -> Option<u32> {
    let mut parts = hash.split('$');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(""), Some(version), Some(cost)) if version.starts_with('2') => cost.parse().ok(),
        _ => None,
    }
}

/// Argo CD's default password rule: 8 to 32 characters.
pub(crate) fn check_policy(password: &str) -> Result<(), AuthError> {
    let chars = password.chars().count();
    if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&chars) {
        return Err(AuthError::WeakPassword(format!(
            "new password must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters long (it has {chars})"
        )));
    }
    Ok(())
}

/// A fresh initial admin password from the thread's cryptographic generator.
pub(crate) fn generate_initial_password() -> String {
    rand::rng().sample_iter(Alphanumeric).take(INITIAL_PASSWORD_LEN).map(char::from).collect()
}

/// A fresh token signing key: 32 random bytes, base64-encoded, as Argo CD's `server.secretkey`.
pub(crate) fn generate_secret_key() -> String {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A random token id (`jti`) in the UUID v4 text form Argo CD uses.
pub(crate) fn generate_token_id() -> String {
    let mut b = [0u8; 16];
    rand::fill(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_bcrypt_2a_and_matches_only_its_password() {
        let h = hash("correct horse", 4).unwrap();
        assert!(h.starts_with("$2a$04$"), "{h}");
        assert_eq!(cost_of(&h), Some(4));
        assert!(matches("correct horse", &h));
        assert!(!matches("correct horsf", &h));
        assert!(!matches("correct horse", "not a hash"));
    }

    #[test]
    fn hash_refuses_passwords_bcrypt_would_truncate() {
        assert!(matches!(hash(&"x".repeat(80), 4), Err(AuthError::Hash(_))));
    }

    #[test]
    fn hashes_written_by_other_bcrypt_implementations_verify() {
        // The OpenBSD test vector for "U*U": the `$2a$` form Go, and so Argo CD, writes.
        let vector = "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW";
        assert!(matches("U*U", vector));
        assert!(!matches("U*V", vector));
        assert_eq!(cost_of("$2y$12$abc"), Some(12));
        assert_eq!(cost_of("plain"), None);
    }

    #[test]
    fn policy_allows_8_to_32_characters() {
        assert!(check_policy("12345678").is_ok());
        assert!(check_policy(&"é".repeat(32)).is_ok());
        let short = check_policy("hunter2").unwrap_err().to_string();
        assert_eq!(short, "new password must be 8 to 32 characters long (it has 7)");
        assert!(!short.contains("hunter2"));
        assert!(check_policy(&"x".repeat(33)).is_err());
    }

    #[test]
    fn initial_password_is_16_alphanumerics_and_fresh_each_time() {
        let a = generate_initial_password();
        assert_eq!(a.len(), 16);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()), "{a}");
        assert_ne!(a, generate_initial_password());
    }

    #[test]
    fn secret_key_is_32_random_bytes_in_base64() {
        use base64::Engine;
        let k = generate_secret_key();
        assert_eq!(base64::engine::general_purpose::STANDARD.decode(&k).unwrap().len(), 32);
        assert_ne!(k, generate_secret_key());
    }

    #[test]
    fn token_id_looks_like_a_uuid_v4() {
        let id = generate_token_id();
        assert_eq!(id.len(), 36);
        assert_eq!(id.as_bytes()[14], b'4');
        assert_eq!(id.matches('-').count(), 4);
    }
}
