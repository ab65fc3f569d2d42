//! Writing to the cluster: server-side apply (and its dry run, which predicts the live object), and delete.

use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PropagationPolicy};

use crate::cache::KindInfo;
use crate::resource::ResourceKey;

/// The field manager berth applies with. It is Argo CD's, so a cluster moving from Argo CD (with
/// server-side apply) keeps one owner for every field and sees no conflicts.
pub const FIELD_MANAGER: &str = "argocd-controller";

fn api(client: &kube::Client, info: &KindInfo, namespace: &str) -> Api<DynamicObject> {
    if info.namespaced {
        Api::namespaced_with(client.clone(), namespace, &info.resource)
    } else {
        Api::all_with(client.clone(), &info.resource)
    }
}

/// Server-side applies `obj` (forcing ownership of conflicting fields, as Argo CD does) and returns the
/// object the server stored, or with `dry_run` the object it would store.
pub async fn apply(
    client: &kube::Client,
    info: &KindInfo,
    obj: &serde_json::Value,
    dry_run: bool,
) -> Result<serde_json::Value, kube::Error> {
    let key = ResourceKey::of(obj).unwrap_or_else(|| ResourceKey::new("", "", "", ""));
    let mut params = PatchParams::apply(FIELD_MANAGER).force();
    params.dry_run = dry_run;
    let stored = api(client, info, &key.namespace).patch(&key.name, &params, &Patch::Apply(obj)).await?;
    let mut value = serde_json::to_value(stored).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        map.insert("apiVersion".into(), info.resource.api_version.clone().into());
        map.insert("kind".into(), info.resource.kind.clone().into());
    }
    if let Some(meta) = value["metadata"].as_object_mut() {
        meta.remove("managedFields");
    }
    Ok(value)
}

/// Reads one object from the API server (with its managedFields, which the cache does not keep).
pub async fn get(
    client: &kube::Client,
    info: &KindInfo,
    key: &ResourceKey,
) -> Result<Option<serde_json::Value>, kube::Error> {
    let found = api(client, info, &key.namespace).get_opt(&key.name).await?;
    Ok(found.map(|obj| {
        let mut value = serde_json::to_value(obj).unwrap_or_default();
        if let Some(map) = value.as_object_mut() {
            map.insert("apiVersion".into(), info.resource.api_version.clone().into());
            map.insert("kind".into(), info.resource.kind.clone().into());
        }
        value
    }))
}

/// Deletes an object; a missing object counts as deleted.
pub async fn delete(
    client: &kube::Client,
    info: &KindInfo,
    key: &ResourceKey,
    propagation: PropagationPolicy,
    dry_run: bool,
) -> Result<(), kube::Error> {
    let params = DeleteParams { propagation_policy: Some(propagation), dry_run, ..Default::default() };
    match api(client, info, &key.namespace).delete(&key.name, &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}
