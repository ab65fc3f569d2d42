//! Settings kept in Secrets: one path for list, get, create/update and delete of a labelled Secret of the
//! control namespace, each kind ([`SecretBacked`]) saying only what differs.

use super::{rbac_object, require};
use crate::api::{ApiError, Shared, kube_error};
use crate::rbac::Subject;
use axum::Json;
use base64::Engine as _;
use berth_api::secret_type;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// The annotation Argo CD puts on the Secrets it writes.
pub(super) const MANAGED_BY: (&str, &str) = ("managed-by", "argocd.argoproj.io");
const FIELD_MANAGER: &str = "argocd-server";

/// Go's FNV-1a, 32 bits: Argo CD names the Secrets it creates with it.
pub(super) fn fnv32a(parts: &[&str]) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in parts.iter().flat_map(|p| p.bytes()) {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

pub(super) fn secrets(shared: &Shared) -> Api<Secret> {
    Api::namespaced(shared.client.clone(), &shared.namespace)
}

/// The Secrets of one Argo CD type (`repository`, `cluster`) in the control namespace.
pub(super) async fn typed_secrets(shared: &Shared, kind: &str) -> Result<Vec<Secret>, ApiError> {
    let params = ListParams::default().labels(&format!("{}={kind}", secret_type::LABEL));
    Ok(secrets(shared).list(&params).await.map_err(kube_error)?.items)
}

/// A Secret's data as text (Argo CD's keys are all text).
pub(in crate::api) use berth_controller::settings_source::secret_text as string_data;

pub(super) fn secret_name(secret: &Secret) -> &str {
    secret.metadata.name.as_deref().unwrap_or_default()
}

/// A new Secret of Argo CD type `kind` holding `data`.
pub(super) fn new_secret(
    shared: &Shared,
    name: String,
    kind: &str,
    data: &BTreeMap<String, String>,
) -> Secret {
    let mut secret = Secret::default();
    secret.metadata.name = Some(name);
    secret.metadata.namespace = Some(shared.namespace.clone());
    secret.metadata.labels = Some(BTreeMap::from([(secret_type::LABEL.to_string(), kind.to_string())]));
    secret.metadata.annotations =
        Some(BTreeMap::from([(MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string())]));
    secret.type_ = Some("Opaque".into());
    secret.data = Some(data.iter().map(|(k, v)| (k.clone(), ByteString(v.as_bytes().to_vec()))).collect());
    secret
}

/// Rewrites the `keys` Argo CD owns in `secret` to `data` (a key absent from `data` is removed), leaving any
/// other key alone; refused by the API server if the Secret changed since it was read.
pub(super) async fn rewrite_secret(
    shared: &Shared,
    secret: &Secret,
    keys: impl Iterator<Item = &'static str>,
    data: &BTreeMap<String, String>,
) -> Result<(), ApiError> {
    let current = secret.data.clone().unwrap_or_default();
    let mut changes = Map::new();
    for key in keys {
        match data.get(key) {
            Some(v) => {
                changes.insert(key.into(), base64::engine::general_purpose::STANDARD.encode(v).into());
            }
            None if current.contains_key(key) => {
                changes.insert(key.into(), Value::Null);
            }
            None => {}
        }
    }
    let body = json!({
        "metadata": {"resourceVersion": secret.metadata.resource_version},
        "data": changes,
    });
    let params = PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
    secrets(shared).patch(secret_name(secret), &params, &Patch::Merge(&body)).await.map_err(kube_error)?;
    Ok(())
}

/// A kind of settings object Argo CD keeps in a labelled Secret of the control namespace, one Secret an
/// object, identified by one of its keys. Credentials are written, never read back: the views are the
/// kind's own (`repository_view`, `cluster_view`).
pub(super) trait SecretBacked {
    /// The value of the `argocd.argoproj.io/secret-type` label.
    const SECRET_TYPE: &'static str;
    /// The RBAC resource (`repositories`, `clusters`).
    const RBAC_RESOURCE: &'static str;
    /// How messages and logs name one.
    const NOUN: &'static str;
    /// The Secret key that identifies one (`url`, `server`).
    const ID_KEY: &'static str;
    /// The Secret keys Argo CD owns; others are left alone on update.
    fn keys() -> impl Iterator<Item = &'static str>;
    /// The comparable form of a stored object: the owned keys that are set.
    fn stored(secret: &Secret) -> BTreeMap<String, String>;
    /// Do two identifiers name the same object?
    fn same_id(a: &str, b: &str) -> bool;
    /// The object that exists without a Secret (the in-cluster destination), if the kind has one.
    fn built_in() -> Option<BTreeMap<String, String>> {
        None
    }
    /// How a "not found" answer names the kind (Argo CD says `repo` there).
    const NOT_FOUND_NOUN: &'static str = Self::NOUN;
    /// An identifier as a log line may show it.
    fn logged(id: &str) -> String {
        id.to_string()
    }
}

fn id_of(data: &BTreeMap<String, String>, key: &str) -> String {
    data.get(key).cloned().unwrap_or_default()
}

/// Argo CD's RBAC object of a stored object: `<project>/<id>`.
fn object_of<K: SecretBacked>(data: &BTreeMap<String, String>) -> String {
    rbac_object(data.get("project").map(String::as_str), &id_of(data, K::ID_KEY))
}

/// The Secret of the object `id`: the identifier as written wins over one that only matches alike.
async fn find<K: SecretBacked>(shared: &Shared, id: &str) -> Result<Option<Secret>, ApiError> {
    let all = typed_secrets(shared, K::SECRET_TYPE).await?;
    let id_in = |s: &Secret| id_of(&string_data(s), K::ID_KEY);
    let exact = all.iter().position(|s| id_in(s) == id);
    let index = exact.or_else(|| all.iter().position(|s| K::same_id(&id_in(s), id)));
    Ok(index.map(|i| all[i].clone()))
}

/// The object `id` (the built-in one when no Secret declares it) if the caller may do `action` on it: 404
/// when absent (403 if they could not have seen it anyway), 403 when not allowed.
pub(super) async fn authorized<K: SecretBacked>(
    shared: &Shared,
    caller: &Subject,
    id: &str,
    action: &str,
) -> Result<(Option<Secret>, BTreeMap<String, String>), ApiError> {
    let found = find::<K>(shared, id).await?;
    let built_in = K::built_in().filter(|b| K::same_id(&id_of(b, K::ID_KEY), id));
    let data = match (&found, built_in) {
        (Some(secret), _) => K::stored(secret),
        (None, Some(built_in)) => built_in,
        (None, None) => {
            require(shared, caller, K::RBAC_RESOURCE, action, id)?;
            return Err(ApiError::not_found(format!("{} '{}' not found", K::NOT_FOUND_NOUN, K::logged(id))));
        }
    };
    require(shared, caller, K::RBAC_RESOURCE, action, &object_of::<K>(&data))?;
    Ok((found, data))
}

/// Every object the caller may get, by identifier; the built-in one first (its Secret when one declares it).
pub(super) async fn list_allowed<K: SecretBacked>(
    shared: &Shared,
    caller: &Subject,
) -> Result<Vec<(BTreeMap<String, String>, Option<Secret>)>, ApiError> {
    let policy = shared.rbac.current();
    let resolved = policy.resolve(caller);
    let stored = typed_secrets(shared, K::SECRET_TYPE).await?;
    Ok(listed::<K>(stored, |object| resolved.enforce(K::RBAC_RESOURCE, "get", object)))
}

/// The list of `stored` objects as the API shows it: by identifier, the built-in one first (its Secret when
/// one declares it), only those whose RBAC object `may_get` allows.
fn listed<K: SecretBacked>(
    stored: Vec<Secret>,
    may_get: impl Fn(&str) -> bool,
) -> Vec<(BTreeMap<String, String>, Option<Secret>)> {
    let mut declared: Vec<(BTreeMap<String, String>, Option<Secret>)> = stored
        .into_iter()
        .map(|s| (K::stored(&s), Some(s)))
        .filter(|(d, _)| d.get(K::ID_KEY).is_some_and(|id| !id.is_empty()))
        .collect();
    declared.sort_by(|a, b| a.0[K::ID_KEY].cmp(&b.0[K::ID_KEY]));
    if let Some(built_in) = K::built_in() {
        let is_built_in = |d: &BTreeMap<String, String>| K::same_id(&d[K::ID_KEY], &built_in[K::ID_KEY]);
        let first = match declared.iter().position(|(d, _)| is_built_in(d)) {
            Some(i) => declared.remove(i),
            None => (built_in, None),
        };
        declared.insert(0, first);
    }
    declared.retain(|(d, _)| may_get(&object_of::<K>(d)));
    declared
}

/// Creates the object (`secret`, built by the kind) or, when one with its identifier exists: nothing if
/// the spec is the same, 409 if not unless `upsert`, else its owned keys rewritten (RBAC `update` on the
/// old and the new project). Returns the stored Secret.
pub(super) async fn upsert<K: SecretBacked>(
    shared: &Shared,
    caller: &Subject,
    id: &str,
    data: &BTreeMap<String, String>,
    secret: Secret,
    upsert: bool,
) -> Result<Secret, ApiError> {
    let object = object_of::<K>(data);
    require(shared, caller, K::RBAC_RESOURCE, "create", &object)?;
    let logged = K::logged(id);
    let Some(existing) = find::<K>(shared, id).await? else {
        let created = secrets(shared).create(&PostParams::default(), &secret).await.map_err(kube_error)?;
        tracing::info!(kind = K::NOUN, id = %logged, user = %caller.name, "settings object created");
        return Ok(created);
    };
    let current = K::stored(&existing);
    // Labels and annotations the request gives (a cluster's `env=prod`) are part of what it asks for.
    let missing = |want: &Option<BTreeMap<String, String>>, have: &Option<BTreeMap<String, String>>| {
        want.iter().flatten().any(|(k, v)| have.as_ref().and_then(|h| h.get(k)) != Some(v))
    };
    let metadata_differs = missing(&secret.metadata.labels, &existing.metadata.labels)
        || missing(&secret.metadata.annotations, &existing.metadata.annotations);
    if current == *data && !metadata_differs {
        return Ok(existing);
    }
    if !upsert {
        return Err(ApiError::already_exists(format!(
            "{} '{logged}' already exists with a different spec; use upsert to replace it",
            K::NOUN
        )));
    }
    require(shared, caller, K::RBAC_RESOURCE, "update", &object_of::<K>(&current))?;
    require(shared, caller, K::RBAC_RESOURCE, "update", &object)?;
    if current != *data {
        rewrite_secret(shared, &existing, K::keys(), data).await?;
    }
    if metadata_differs {
        let patch = json!({"metadata": {"labels": secret.metadata.labels, "annotations": secret.metadata.annotations}});
        secrets(shared)
            .patch(secret_name(&existing), &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(kube_error)?;
    }
    tracing::info!(kind = K::NOUN, id = %logged, user = %caller.name, "settings object updated");
    secrets(shared).get(secret_name(&existing)).await.map_err(kube_error)
}

/// Deletes the object's Secret; a built-in object without one cannot be deleted.
pub(super) async fn delete<K: SecretBacked>(
    shared: &Shared,
    caller: &Subject,
    id: &str,
) -> Result<Json<Value>, ApiError> {
    let (secret, data) = authorized::<K>(shared, caller, id, "delete").await?;
    let Some(secret) = secret else {
        return Err(ApiError::failed_precondition(format!(
            "{} '{}' ({}) is built in: it cannot be removed",
            K::NOUN,
            id_of(&data, K::ID_KEY),
            data.get("name").map_or("", String::as_str),
        )));
    };
    secrets(shared).delete(secret_name(&secret), &Default::default()).await.map_err(kube_error)?;
    tracing::info!(kind = K::NOUN, id = %K::logged(id), user = %caller.name, "settings object deleted");
    Ok(Json(json!({})))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A kind with a built-in object, as clusters have the in-cluster destination.
    struct Places;

    impl SecretBacked for Places {
        const SECRET_TYPE: &'static str = "place";
        const RBAC_RESOURCE: &'static str = "places";
        const NOUN: &'static str = "place";
        const ID_KEY: &'static str = "id";
        fn keys() -> impl Iterator<Item = &'static str> {
            ["id", "project", "note"].into_iter()
        }
        fn stored(secret: &Secret) -> BTreeMap<String, String> {
            string_data(secret)
        }
        fn same_id(a: &str, b: &str) -> bool {
            a.trim_end_matches('/') == b.trim_end_matches('/')
        }
        fn built_in() -> Option<BTreeMap<String, String>> {
            Some(BTreeMap::from([("id".to_string(), "home".to_string())]))
        }
    }

    fn place(id: &str, project: &str) -> Secret {
        Secret {
            data: Some(BTreeMap::from([
                ("id".to_string(), ByteString(id.as_bytes().to_vec())),
                ("project".to_string(), ByteString(project.as_bytes().to_vec())),
            ])),
            ..Default::default()
        }
    }

    fn ids(list: &[(BTreeMap<String, String>, Option<Secret>)]) -> Vec<(&str, bool)> {
        list.iter().map(|(d, s)| (d["id"].as_str(), s.is_some())).collect()
    }

    #[test]
    fn lists_put_the_built_in_object_first_then_the_others_by_identifier() {
        let list = listed::<Places>(vec![place("b", ""), place("a", "")], |_| true);
        assert_eq!(ids(&list), [("home", false), ("a", true), ("b", true)]);
        // A Secret declaring the built-in object stands in for the default, still first.
        let list = listed::<Places>(vec![place("z", ""), place("home/", "")], |_| true);
        assert_eq!(ids(&list), [("home/", true), ("z", true)]);
    }

    #[test]
    fn lists_show_only_what_the_caller_may_get_by_project_and_identifier() {
        let list = listed::<Places>(
            vec![place("a", "team-a"), place("b", "team-b"), place("", "team-a")],
            |object| object == "team-a/a",
        );
        assert_eq!(ids(&list), [("a", true)]);
    }

    #[test]
    fn fnv32a_matches_go_hash_fnv() {
        assert_eq!(fnv32a(&[""]), 0x811c_9dc5);
        assert_eq!(fnv32a(&["a"]), 0xe40c_292c);
        assert_eq!(fnv32a(&["foo", "bar"]), fnv32a(&["foobar"]));
    }
}
