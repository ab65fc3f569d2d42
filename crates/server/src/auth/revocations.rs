//! Logouts shared between replicas. Each replica refuses the tokens logged out on it from memory
//! ([`SessionManager::revoke`], [`SsoState::revoke`]); behind one Service the next request may reach
//! another replica, so each logout is also written to Secret `berth-revoked-sessions` in the control
//! namespace, which every replica watches (`api::watch::follow_revocations`) and merges into its own maps.
//! Argo CD keeps these in Redis; berth coordinates through the Kubernetes API only.
//!
//! One data key a revoked token, never the token itself: the token's id (`jti`) for tokens berth signed,
//! `sso-<hex SHA-256 of the token>` for SSO ID tokens; the value is when the token expires anyway, in seconds
//! since the Unix epoch (`0`: never). Entries already lapsed are dropped at the next write.

use super::clock::unix_seconds;
use super::oidc::SsoState;
use super::{Claims, SessionManager};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams, PostParams};
use std::collections::BTreeMap;
use std::time::SystemTime;

/// The Secret the replicas share their logouts through, in the control namespace.
pub const REVOKED_SESSIONS_SECRET: &str = "berth-revoked-sessions";
const SSO_PREFIX: &str = "sso-";
const FIELD_MANAGER: &str = "berth-server";
/// Argo CD's label on the Secrets it owns.
const PART_OF_LABEL: (&str, &str) = ("app.kubernetes.io/part-of", "argocd");
/// Longest Secret data key the API server takes.
const MAX_KEY_LEN: usize = 253;

/// One logged-out token, as the replicas share it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Revoked {
    /// A token berth signed (login or API token), by its id.
    Local { id: String, expires_at: Option<i64> },
    /// An SSO ID token, by the SHA-256 of its text; `expires_at` is its `exp`.
    Sso { digest: [u8; 32], expires_at: i64 },
}

impl Revoked {
    /// The token `claims` were read from.
    pub fn local(claims: &Claims) -> Self {
        Revoked::Local { id: claims.id.clone(), expires_at: claims.expires_at }
    }

    /// The SSO ID token `token`, expiring at `expires_at`.
    pub fn sso(token: &str, expires_at: i64) -> Self {
        Revoked::Sso { digest: super::oidc::digest(token), expires_at }
    }

    /// Its data key; `None` for a token id that cannot be one (a Secret key is up to 253 of
    /// `[-._a-zA-Z0-9]`) or that would read as an SSO entry.
    pub fn key(&self) -> Option<String> {
        match self {
            Revoked::Local { id, .. } => {
                let valid = !id.is_empty()
                    && id.len() <= MAX_KEY_LEN
                    && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
                    && !id.starts_with(SSO_PREFIX);
                valid.then(|| id.clone())
            }
            Revoked::Sso { digest, .. } => {
                Some(format!("{SSO_PREFIX}{}", digest.iter().map(|b| format!("{b:02x}")).collect::<String>()))
            }
        }
    }

    /// Its data value: the expiry in seconds since the epoch, `0` for none.
    pub fn value(&self) -> String {
        match self {
            Revoked::Local { expires_at, .. } => expires_at.unwrap_or(0).to_string(),
            Revoked::Sso { expires_at, .. } => expires_at.to_string(),
        }
    }

    /// The entry a data key and value say; `None` when either does not parse.
    pub fn decode(key: &str, value: &[u8]) -> Option<Revoked> {
        let expires: i64 = std::str::from_utf8(value).ok()?.trim().parse().ok()?;
        if let Some(hex) = key.strip_prefix(SSO_PREFIX) {
            return Some(Revoked::Sso { digest: digest_from_hex(hex)?, expires_at: expires });
        }
        let entry = Revoked::Local { id: key.to_string(), expires_at: (expires != 0).then_some(expires) };
        entry.key().is_some().then_some(entry)
    }

    /// Whether the token has expired by `now`, so refusing it no longer needs remembering.
    pub fn lapsed(&self, now: i64) -> bool {
        match self {
            Revoked::Local { expires_at, .. } => expires_at.is_some_and(|exp| exp <= now),
            Revoked::Sso { expires_at, .. } => *expires_at <= now,
        }
    }
}

fn digest_from_hex(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut digest = [0u8; 32];
    for (i, byte) in digest.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(digest)
}

/// The entries of the Secret's data; keys or values that do not parse are skipped.
pub fn entries(data: &BTreeMap<String, ByteString>) -> Vec<Revoked> {
    data.iter().filter_map(|(key, value)| Revoked::decode(key, &value.0)).collect()
}

/// What a write merges into the Secret's `data` (as read) to add `entry`: its key with its value, and a
/// removal (`None`) for each entry lapsed by `now`. `None` when the entry has no key.
pub fn changes(
    data: &BTreeMap<String, ByteString>,
    entry: &Revoked,
    now: i64,
) -> Option<BTreeMap<String, Option<String>>> {
    let key = entry.key()?;
    let mut changes: BTreeMap<String, Option<String>> = data
        .iter()
        .filter(|(k, value)| Revoked::decode(k, &value.0).is_some_and(|e| e.lapsed(now)))
        .map(|(k, _)| (k.clone(), None))
        .collect();
    changes.insert(key, Some(entry.value()));
    Some(changes)
}

/// Takes the Secret's entries into this replica's maps: token ids into `sessions`, SSO digests into `sso`.
pub fn merge(data: &BTreeMap<String, ByteString>, sessions: &SessionManager, sso: &SsoState) {
    let (mut local, mut digests) = (Vec::new(), Vec::new());
    for entry in entries(data) {
        match entry {
            Revoked::Local { id, expires_at } => local.push((id, expires_at)),
            Revoked::Sso { digest, expires_at } => digests.push((digest, expires_at)),
        }
    }
    sessions.merge_revoked(local);
    sso.merge_revoked(digests);
}

/// Shares `entry` with the other replicas: adds it to the Secret (created when missing) and drops the
/// entries already lapsed. Call it after revoking on this replica: a failure is logged (the key, never the
/// token) and the local revocation stands.
pub async fn share(client: &kube::Client, namespace: &str, entry: &Revoked) {
    let Some(key) = entry.key() else {
        tracing::warn!(
            "a token whose id cannot be a Secret key was logged out: refused on this replica only"
        );
        return;
    };
    let now = unix_seconds(SystemTime::now());
    // Pruning carries the resourceVersion, so a write another replica made in between is never lost:
    // read again once on a conflict; after a second one, add the entry alone, which cannot conflict.
    for prune in [true, true, false] {
        match write(client, namespace, entry, now, prune).await {
            Ok(true) => return,
            Ok(false) => continue,
            Err(e) => {
                tracing::warn!(key, error = %e, "cannot share a logout through Secret {REVOKED_SESSIONS_SECRET}: refused on this replica only");
                return;
            }
        }
    }
    tracing::warn!(key, "cannot share a logout through Secret {REVOKED_SESSIONS_SECRET}: it kept changing");
}

/// One write of `entry`: `false` on a conflict (the Secret changed since it was read, or was created in
/// between).
async fn write(
    client: &kube::Client,
    namespace: &str,
    entry: &Revoked,
    now: i64,
    prune: bool,
) -> Result<bool, kube::Error> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let read = secrets.get_opt(REVOKED_SESSIONS_SECRET).await?;
    let labels = serde_json::json!({PART_OF_LABEL.0: PART_OF_LABEL.1});
    let Some(read) = read else {
        let data =
            BTreeMap::from([(entry.key().unwrap_or_default(), ByteString(entry.value().into_bytes()))]);
        let secret = Secret {
            metadata: kube::api::ObjectMeta {
                name: Some(REVOKED_SESSIONS_SECRET.into()),
                namespace: Some(namespace.into()),
                labels: Some(BTreeMap::from([(PART_OF_LABEL.0.into(), PART_OF_LABEL.1.into())])),
                ..Default::default()
            },
            data: Some(data),
            ..Default::default()
        };
        let params = PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
        return match secrets.create(&params, &secret).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.is_already_exists() => Ok(false),
            Err(e) => Err(e),
        };
    };
    let data = read.data.unwrap_or_default();
    let changes = if prune {
        changes(&data, entry, now).unwrap_or_default()
    } else {
        entry.key().map(|key| BTreeMap::from([(key, Some(entry.value()))])).unwrap_or_default()
    };
    let encoded: serde_json::Map<String, serde_json::Value> = changes
        .into_iter()
        .map(|(k, v)| {
            use base64::Engine;
            (
                k,
                v.map_or(serde_json::Value::Null, |v| {
                    base64::engine::general_purpose::STANDARD.encode(v).into()
                }),
            )
        })
        .collect();
    let mut metadata = serde_json::json!({"labels": labels});
    if prune {
        metadata["resourceVersion"] = read.metadata.resource_version.into();
    }
    let body = serde_json::json!({"metadata": metadata, "data": encoded});
    let params = PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
    match secrets.patch(REVOKED_SESSIONS_SECRET, &params, &Patch::Merge(&body)).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.is_conflict() => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(entries: &[(&str, &str)]) -> BTreeMap<String, ByteString> {
        entries.iter().map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec()))).collect()
    }

    #[test]
    fn a_local_token_is_kept_by_its_id_and_expiry_zero_meaning_none() {
        let login = Revoked::Local { id: "3f2a-uuid".into(), expires_at: Some(1_700_000_000) };
        assert_eq!((login.key().unwrap().as_str(), login.value().as_str()), ("3f2a-uuid", "1700000000"));
        let api = Revoked::Local { id: "deploy".into(), expires_at: None };
        assert_eq!(api.value(), "0");
        for entry in [login, api] {
            assert_eq!(Revoked::decode(&entry.key().unwrap(), entry.value().as_bytes()), Some(entry));
        }
    }

    #[test]
    fn an_sso_token_is_kept_by_the_hex_sha256_of_its_text_never_the_text() {
        let token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln";
        let entry = Revoked::sso(token, 1_700_000_000);
        let key = entry.key().unwrap();
        assert_eq!(key.len(), "sso-".len() + 64);
        assert!(key.starts_with("sso-") && !key.contains(token), "{key}");
        assert_eq!(Revoked::decode(&key, b"1700000000"), Some(entry));
    }

    #[test]
    fn ids_that_cannot_be_secret_keys_or_read_as_sso_entries_have_no_key() {
        for id in ["", "a/b", "with space", &"x".repeat(254), "sso-deploy"] {
            assert_eq!(Revoked::Local { id: id.into(), expires_at: None }.key(), None, "{id:?}");
        }
    }

    #[test]
    fn entries_that_do_not_parse_are_skipped() {
        let valid = format!("sso-{}", "ab".repeat(32));
        let d = data(&[
            ("ok", "10"),
            ("not-a-number", "soon"),
            ("sso-short", "10"),
            (&valid, "20"),
            (&format!("sso-{}", "zz".repeat(32)), "10"),
        ]);
        assert_eq!(
            entries(&d),
            [
                Revoked::Local { id: "ok".into(), expires_at: Some(10) },
                Revoked::Sso { digest: [0xab; 32], expires_at: 20 },
            ]
        );
    }

    #[test]
    fn a_write_adds_the_entry_and_removes_only_the_lapsed_ones() {
        let d = data(&[("old", "99"), ("at-now", "100"), ("later", "101"), ("forever", "0"), ("junk", "x")]);
        let entry = Revoked::Local { id: "new".into(), expires_at: Some(200) };
        let changes = changes(&d, &entry, 100).unwrap();
        assert_eq!(
            changes,
            BTreeMap::from([
                ("at-now".to_string(), None),
                ("new".to_string(), Some("200".to_string())),
                ("old".to_string(), None),
            ])
        );
        let keyless = Revoked::Local { id: "a/b".into(), expires_at: None };
        assert_eq!(super::changes(&d, &keyless, 100), None);
    }

    #[test]
    fn merging_refuses_the_shared_ids_and_digests_on_this_replica() {
        use crate::auth::AuthError;
        use crate::auth::accounts::tests::{cm, secret};
        let accounts = crate::auth::Accounts::from_data(&cm(&[]), &secret(&[]));
        let sessions = SessionManager::new(super::super::SecretKey::new(b"k".to_vec()), accounts);
        let sso = SsoState::default();
        let now = unix_seconds(SystemTime::now());
        let login = |id: &str| sessions.sign("admin:login", now, Some(now + 3600), id).unwrap();
        let (logged_out, lapsed) = (login("logged-out"), login("lapsed"));
        let token = "an.sso.token";
        let shared = Revoked::sso(token, now + 3600);
        let d = data(&[
            ("logged-out", &(now + 3600).to_string()),
            ("lapsed", &(now - 1).to_string()),
            (&shared.key().unwrap(), &shared.value()),
        ]);
        let mut changed = sessions.revocations();
        merge(&d, &sessions, &sso);
        assert!(matches!(sessions.verify(&logged_out), Err(AuthError::TokenRevoked)));
        assert!(sessions.verify(&lapsed).is_ok(), "an entry already lapsed is not taken");
        assert!(changed.has_changed().unwrap(), "open streams check their token again");
        assert!(sso.check_revoked(token).is_err());
        assert!(sso.check_revoked("another.sso.token").is_ok());
        changed.mark_unchanged();
        merge(&d, &sessions, &sso);
        assert!(!changed.has_changed().unwrap(), "nothing new, nothing to check again");
    }
}
