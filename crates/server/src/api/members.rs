//! Which live objects belong to an application, decided from the objects themselves as the API server returns
//! them: an object is the app's when its tracking id names the app and the object, or when an object that is
//! owns it. What the Application's `status` claims never decides it (a tenant can write `status`), and the
//! kind is resolved case-exactly through discovery, so `secret` is not a way around masking `Secret`.

use super::ApiError;
use berth_engine::resource::ResourceKey;
use berth_engine::tracking::Tracking;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::discovery::{ApiCapabilities, Scope};

/// How many owners up a resource may be from one the app tracks (Deployment → ReplicaSet → Pod is two).
pub(crate) const OWNER_DEPTH: usize = 4;

/// A kind as the API server serves it.
#[derive(Clone, Debug)]
pub(crate) struct Kind {
    pub resource: ApiResource,
    pub namespaced: bool,
}

/// The kind `group`/`version`/`kind` exactly as discovery lists it (`version` empty: the group's preferred
/// one); `None` when the API server serves no such kind, `secret` for `Secret` included.
pub(crate) async fn resolve(
    client: &kube::Client,
    group: &str,
    version: &str,
    kind: &str,
) -> Result<Option<Kind>, ApiError> {
    if kind.is_empty() {
        return Ok(None);
    }
    let found: Option<(ApiResource, ApiCapabilities)> = if version.is_empty() {
        match kube::discovery::group(client, group).await {
            Ok(g) => g.recommended_kind(kind),
            Err(e) if is_missing(&e) => None,
            Err(e) => return Err(ApiError::internal(format!("discovery: {e}"))),
        }
    } else {
        let gvk = kube::api::GroupVersionKind::gvk(group, version, kind);
        match kube::discovery::pinned_kind(client, &gvk).await {
            Ok(found) => Some(found),
            Err(e) if is_missing(&e) => None,
            Err(e) => return Err(ApiError::internal(format!("discovery: {e}"))),
        }
    };
    // Discovery matches the kind as given; checked again so a looser match never slips through.
    Ok(found
        .filter(|(r, _)| r.kind == kind && r.group == group)
        .map(|(resource, caps)| Kind { resource, namespaced: caps.scope == Scope::Namespaced }))
}

fn is_missing(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404) || matches!(e, kube::Error::Discovery(_))
}

/// The live object `name` of `kind` (in `namespace` when the kind is namespaced), with `apiVersion` and
/// `kind` from discovery, not from anything the caller sent.
pub(crate) async fn get(
    client: &kube::Client,
    kind: &Kind,
    namespace: &str,
    name: &str,
) -> Result<Option<serde_json::Value>, ApiError> {
    if name.is_empty() || (kind.namespaced && namespace.is_empty()) {
        return Ok(None);
    }
    let api: Api<DynamicObject> = if kind.namespaced {
        Api::namespaced_with(client.clone(), namespace, &kind.resource)
    } else {
        Api::all_with(client.clone(), &kind.resource)
    };
    let Some(object) = api.get_opt(name).await.map_err(super::kube_error)? else { return Ok(None) };
    let mut value = serde_json::to_value(object).map_err(|e| ApiError::internal(e.to_string()))?;
    value["apiVersion"] = kind.resource.api_version.clone().into();
    value["kind"] = kind.resource.kind.clone().into();
    Ok(Some(value))
}

/// Does `object` belong to application `app` by this installation's tracking (see
/// `berth_engine::tracking::Tracking::app_of`: a copied tracking id does not count, a hook made from
/// `generateName` is tracked under its prefix)?
pub(crate) fn tracked_by(object: &serde_json::Value, app: &str, tracking: &Tracking) -> bool {
    ResourceKey::of(object).and_then(|key| tracking.app_of(object, &key)).is_some_and(|a| a == app)
}

/// Does `object` belong to `app`: tracked by it, or owned (through at most [`OWNER_DEPTH`] owners, each
/// looked up live) by an object that is?
pub(crate) async fn belongs(
    client: &kube::Client,
    app: &str,
    tracking: &Tracking,
    object: &serde_json::Value,
) -> Result<bool, ApiError> {
    let namespace = object["metadata"]["namespace"].as_str().unwrap_or_default().to_string();
    let mut current = object.clone();
    for _ in 0..=OWNER_DEPTH {
        if tracked_by(&current, app, tracking) {
            return Ok(true);
        }
        let Some(owner) = current["metadata"]["ownerReferences"]
            .as_array()
            .and_then(|o| o.iter().find(|o| o["controller"] == true).or_else(|| o.first()))
            .cloned()
        else {
            return Ok(false);
        };
        let (group, version) =
            berth_engine::resource::split_api_version(owner["apiVersion"].as_str().unwrap_or_default());
        let Some(kind) = resolve(client, group, version, owner["kind"].as_str().unwrap_or_default()).await?
        else {
            return Ok(false);
        };
        let owner_namespace = if kind.namespaced { namespace.as_str() } else { "" };
        match get(client, &kind, owner_namespace, owner["name"].as_str().unwrap_or_default()).await? {
            // The reference names an object by uid: a new object under the old name is not the owner.
            Some(o) if o["metadata"]["uid"] == owner["uid"] => current = o,
            _ => return Ok(false),
        }
    }
    Ok(false)
}

/// Hides what an object must never show through the API: a core Secret's values (each replaced by
/// `++++++++`, as Argo CD masks them) and its last-applied configuration. Decided by the object's own
/// `apiVersion` and `kind`.
pub(crate) fn mask(object: &mut serde_json::Value) {
    if let Some(meta) = object["metadata"].as_object_mut() {
        meta.remove("managedFields");
    }
    if !is_secret(object) {
        return;
    }
    for field in ["data", "stringData"] {
        if let Some(values) = object[field].as_object_mut() {
            for v in values.values_mut() {
                *v = "++++++++".into();
            }
        }
    }
    if let Some(annotations) = object["metadata"]["annotations"].as_object_mut() {
        annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}

/// Is `object` a core `v1` Secret, by its own `apiVersion` and `kind`?
pub(crate) fn is_secret(object: &serde_json::Value) -> bool {
    object["apiVersion"] == "v1" && object["kind"] == "Secret"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(tracking: &str) -> serde_json::Value {
        serde_json::json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "creds", "namespace": "team-a", "annotations": {
                berth_engine::resource::TRACKING_ANNOTATION: tracking,
                "kubectl.kubernetes.io/last-applied-configuration": "{\"data\":{\"k\":\"c2VjcmV0\"}}",
            }},
            "data": {"k": "c2VjcmV0"}, "stringData": {"s": "secret"},
        })
    }

    #[test]
    fn masking_hides_every_secret_value_and_the_last_applied_configuration() {
        let mut object = secret("web:/Secret:team-a/creds");
        mask(&mut object);
        let text = object.to_string();
        assert!(!text.contains("c2VjcmV0") && !text.contains("\"secret\""), "{text}");
        assert_eq!(object["data"]["k"], "++++++++");
        assert_eq!(object["stringData"]["s"], "++++++++");
    }

    #[test]
    fn objects_that_are_not_core_secrets_keep_their_data() {
        let mut map = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"k": "v"}});
        mask(&mut map);
        assert_eq!(map["data"]["k"], "v");
        assert!(!is_secret(&serde_json::json!({"apiVersion": "example.com/v1", "kind": "Secret"})));
    }
}
