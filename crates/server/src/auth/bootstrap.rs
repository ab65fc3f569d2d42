//! The first start: argocd-secret gets `server.secretkey`, and the admin a generated password, when missing.
//!
//! Nothing that exists is ever replaced, so a password the user changed survives every restart. As in Argo CD,
//! the initial password's clear text goes to `argocd-initial-admin-secret` before its hash goes to
//! argocd-secret: a crash in between leaves no hash, and the next start generates a new password.

use super::accounts::{Accounts, password_key, password_mtime_key};
use super::argocd_secret::{blocking, config_data, patch};
use super::clock::rfc3339;
use super::session::SecretKey;
use super::{ADMIN, ARGOCD_SECRET, AuthError, INITIAL_ADMIN_SECRET, password};
use base64::Engine;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, Patch, PatchParams, PostParams};
use std::collections::BTreeMap;
use std::time::SystemTime;

const FIELD_MANAGER: &str = "berth-server";
const SECRET_KEY_KEY: &str = "server.secretkey";
/// Read-write rounds before giving up on an argocd-secret that keeps changing.
const ATTEMPTS: usize = 5;

/// What [`bootstrap`] found and did.
#[derive(Debug)]
pub struct Bootstrap {
    /// The token signing key now in argocd-secret.
    pub secret_key: SecretKey,
    /// The accounts as argocd-cm and argocd-secret now declare them.
    pub accounts: Accounts,
    /// The argocd-secret keys this call wrote; empty when everything was already there.
    pub written: Vec<String>,
    /// Whether a new admin password was generated (its clear text is in `argocd-initial-admin-secret`).
    pub generated_admin_password: bool,
}

/// Makes sure argocd-secret has `server.secretkey` (32 random bytes, base64) and, unless argocd-cm says
/// `admin.enabled: "false"`, `admin.password` and `admin.passwordMtime`. A missing admin password is
/// generated (16 letters and digits), its bcrypt hash stored in argocd-secret and its clear text in Secret
/// `argocd-initial-admin-secret`, key `password`. Idempotent: a second call writes nothing.
pub async fn bootstrap(client: &kube::Client, namespace: &str) -> Result<Bootstrap, AuthError> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    for _ in 0..ATTEMPTS {
        let config = config_data(client, namespace).await?;
        let existing = secrets
            .get_opt(ARGOCD_SECRET)
            .await
            .map_err(|e| AuthError::kube(format!("reading Secret {namespace}/{ARGOCD_SECRET}"), e))?;
        let mut data = existing.as_ref().and_then(|s| s.data.clone()).unwrap_or_default();
        let admin_enabled = Accounts::from_data(&config, &data).get(ADMIN).is_some_and(|a| a.enabled);
        let plan = {
            let data = data.clone();
            blocking(move || plan(&data, admin_enabled, SystemTime::now(), password::PASSWORD_HASH_COST))
                .await?
        };
        if plan.writes.is_empty() {
            return finish(&config, data, Vec::new(), false);
        }
        if let Some(initial) = &plan.initial_password {
            write_initial_password(&secrets, namespace, initial).await?;
        }
        let written = match &existing {
            Some(secret) => patch(client, namespace, secret, &plan.writes).await?,
            None => create(&secrets, namespace, &plan.writes).await?,
        };
        if !written {
            continue;
        }
        let keys: Vec<String> = plan.writes.keys().cloned().collect();
        tracing::info!(namespace, secret = ARGOCD_SECRET, keys = ?keys, "initialized auth settings");
        if plan.initial_password.is_some() {
            tracing::info!(namespace, secret = INITIAL_ADMIN_SECRET, "generated the initial admin password");
        }
        data.extend(plan.writes.into_iter().map(|(k, v)| (k, ByteString(v.into_bytes()))));
        return finish(&config, data, keys, plan.initial_password.is_some());
    }
    Err(AuthError::Contended(format!("Secret {namespace}/{ARGOCD_SECRET}")))
}

fn finish(
    config: &BTreeMap<String, String>,
    data: BTreeMap<String, ByteString>,
    written: Vec<String>,
    generated_admin_password: bool,
) -> Result<Bootstrap, AuthError> {
    Ok(Bootstrap {
        secret_key: SecretKey::from_data(&data)?,
        accounts: Accounts::from_data(config, &data),
        written,
        generated_admin_password,
    })
}

/// The keys argocd-secret lacks, and the clear text of a generated admin password.
#[derive(Debug, Default)]
struct Plan {
    writes: BTreeMap<String, String>,
    initial_password: Option<String>,
}

fn plan(
    data: &BTreeMap<String, ByteString>,
    admin_enabled: bool,
    now: SystemTime,
    cost: u32,
) -> Result<Plan, AuthError> {
    let present = |key: &str| data.get(key).is_some_and(|v| !String::from_utf8_lossy(&v.0).trim().is_empty());
    let mut plan = Plan::default();
    if !present(SECRET_KEY_KEY) {
        plan.writes.insert(SECRET_KEY_KEY.into(), password::generate_secret_key());
    }
    if !admin_enabled {
        return Ok(plan);
    }
    if !present(&password_key(ADMIN)) {
        let initial = password::generate_initial_password();
        plan.writes.insert(password_key(ADMIN), password::hash(&initial, cost)?);
        plan.writes.insert(password_mtime_key(ADMIN), rfc3339(now));
        plan.initial_password = Some(initial);
    } else if !present(&password_mtime_key(ADMIN)) {
        plan.writes.insert(password_mtime_key(ADMIN), rfc3339(now));
    }
    Ok(plan)
}

/// Applies `argocd-initial-admin-secret` with the clear-text password (its other keys are left alone).
async fn write_initial_password(
    secrets: &Api<Secret>,
    namespace: &str,
    initial: &str,
) -> Result<(), AuthError> {
    let body = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": INITIAL_ADMIN_SECRET,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/part-of": "argocd"},
        },
        "data": {"password": base64::engine::general_purpose::STANDARD.encode(initial)},
    });
    secrets
        .patch(INITIAL_ADMIN_SECRET, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&body))
        .await
        .map_err(|e| AuthError::kube(format!("writing Secret {namespace}/{INITIAL_ADMIN_SECRET}"), e))?;
    Ok(())
}

/// Creates argocd-secret with `data`; `false` when another writer created it first.
async fn create(
    secrets: &Api<Secret>,
    namespace: &str,
    data: &BTreeMap<String, String>,
) -> Result<bool, AuthError> {
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(ARGOCD_SECRET.into()),
            namespace: Some(namespace.into()),
            labels: Some(BTreeMap::from([
                ("app.kubernetes.io/name".into(), ARGOCD_SECRET.into()),
                ("app.kubernetes.io/part-of".into(), "argocd".into()),
            ])),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        data: Some(data.iter().map(|(k, v)| (k.clone(), ByteString(v.clone().into_bytes()))).collect()),
        ..Default::default()
    };
    let params = PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
    match secrets.create(&params, &secret).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.is_already_exists() => Ok(false),
        Err(e) => Err(AuthError::kube(format!("creating Secret {namespace}/{ARGOCD_SECRET}"), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::accounts::tests::secret;
    use std::time::Duration;

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_714_564_800)
    }

    #[test]
    fn an_empty_secret_gets_a_key_and_a_generated_admin_password() {
        let plan = plan(&secret(&[]), true, now(), 4).unwrap();
        let keys: Vec<&str> = plan.writes.keys().map(String::as_str).collect();
        assert_eq!(keys, ["admin.password", "admin.passwordMtime", "server.secretkey"]);
        let initial = plan.initial_password.as_deref().unwrap();
        assert!(password::matches(initial, &plan.writes["admin.password"]));
        assert_eq!(plan.writes["admin.passwordMtime"], "2024-05-01T12:00:00Z");
        assert_eq!(plan.writes["server.secretkey"].len(), 44);
    }

    #[test]
    fn a_complete_secret_needs_nothing() {
        let data = secret(&[
            ("server.secretkey", "k"),
            ("admin.password", "$2a$10$h"),
            ("admin.passwordMtime", "2024-01-01T00:00:00Z"),
        ]);
        let plan = plan(&data, true, now(), 4).unwrap();
        assert!(plan.writes.is_empty() && plan.initial_password.is_none());
    }

    #[test]
    fn an_existing_password_is_kept_and_only_its_missing_mtime_added() {
        let data = secret(&[("server.secretkey", "k"), ("admin.password", "$2a$10$h")]);
        let plan = plan(&data, true, now(), 4).unwrap();
        assert_eq!(
            plan.writes,
            BTreeMap::from([("admin.passwordMtime".into(), "2024-05-01T12:00:00Z".into())])
        );
        assert!(plan.initial_password.is_none());
    }

    #[test]
    fn a_disabled_admin_gets_no_password() {
        let plan = plan(&secret(&[]), false, now(), 4).unwrap();
        assert_eq!(plan.writes.keys().collect::<Vec<_>>(), ["server.secretkey"]);
        assert!(plan.initial_password.is_none());
    }

    #[test]
    fn blank_values_count_as_missing() {
        let data = secret(&[("server.secretkey", " "), ("admin.password", ""), ("admin.passwordMtime", "x")]);
        let plan = plan(&data, true, now(), 4).unwrap();
        assert_eq!(plan.writes.len(), 3);
    }
}
