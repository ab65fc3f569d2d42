//! Writing to the cluster: server-side apply (and its dry run, which predicts the live object), and delete.

use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams, PropagationPolicy};
use std::time::Duration;

use crate::cache::KindInfo;
use crate::managed_fields::{self, ClientSideManagers};
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
    apply_with(client, info, obj, ApplyMode { dry_run, ..Default::default() }).await
}

/// How an object is written: Argo CD's sync options that change the apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApplyMode {
    pub dry_run: bool,
    /// `Validate=false` turns the server's strict field validation off (the write is then an update).
    pub validate: bool,
    /// `Replace=true`: replace (PUT) or create instead of server-side apply.
    pub replace: bool,
    /// `Force=true`: when the write is refused (an immutable field changed), delete and create again.
    pub force: bool,
    /// The client-side-apply managers whose fields a server-side apply takes over (see
    /// [`managed_fields`]): a dry run predicts their leftovers gone, a write moves them to berth.
    pub client_side: ClientSideManagers,
}

impl Default for ApplyMode {
    fn default() -> Self {
        ApplyMode {
            dry_run: false,
            validate: true,
            replace: false,
            force: false,
            client_side: ClientSideManagers::default(),
        }
    }
}

/// Writes `obj` as `mode` says and returns what the server stored (or would store, in a dry run).
pub async fn apply_with(
    client: &kube::Client,
    info: &KindInfo,
    obj: &serde_json::Value,
    mode: ApplyMode,
) -> Result<serde_json::Value, kube::Error> {
    let key = ResourceKey::of(obj).unwrap_or_else(|| ResourceKey::new("", "", "", ""));
    // Server-side apply cannot carry a field outside the schema, even with validation off: without
    // validation the object is written with update (as `kubectl apply --validate=false` would), and the
    // server drops what it does not know.
    let first = if mode.replace || !mode.validate {
        replace(client, info, &key, obj, mode.dry_run).await
    } else {
        server_side_apply(client, info, &key, obj, &mode).await
    };
    match first {
        Err(kube::Error::Api(e)) if mode.force && !mode.dry_run && (e.code == 422 || e.code == 409) => {
            recreate(client, info, &key, obj).await
        }
        other => other,
    }
}

/// Server-side apply. When the stored object has fields that only a client-side-apply entry owns (an
/// object Argo CD or kubectl wrote client-side, and git dropped them since), their ownership moves to
/// berth's entry and the apply runs again, which removes them; a dry run predicts them gone instead.
/// An object without such fields costs one request.
async fn server_side_apply(
    client: &kube::Client,
    info: &KindInfo,
    key: &ResourceKey,
    obj: &serde_json::Value,
    mode: &ApplyMode,
) -> Result<serde_json::Value, kube::Error> {
    let api = api(client, info, &key.namespace);
    let mut params = PatchParams::apply(FIELD_MANAGER).force().validation_strict();
    params.dry_run = mode.dry_run;
    let mut stored = with_kind(api.patch(&key.name, &params, &Patch::Apply(obj)).await?, info);
    let left = managed_fields::leftovers(&stored, &mode.client_side);
    if !managed_fields::is_empty(&left) {
        if mode.dry_run {
            managed_fields::remove_fields(&mut stored, &left);
        } else if let Some(fields) = managed_fields::migrate(&stored, &mode.client_side, FIELD_MANAGER) {
            // The resourceVersion makes the move conditional: a concurrent write fails it (409) rather
            // than being overwritten with stale ownership.
            let moved = serde_json::json!({"metadata": {
                "resourceVersion": stored["metadata"]["resourceVersion"],
                "managedFields": fields,
            }});
            let params_move = PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
            api.patch(&key.name, &params_move, &Patch::Merge(&moved)).await?;
            stored = with_kind(api.patch(&key.name, &params, &Patch::Apply(obj)).await?, info);
        }
    }
    if let Some(meta) = stored["metadata"].as_object_mut() {
        meta.remove("managedFields");
    }
    Ok(stored)
}

async fn replace(
    client: &kube::Client,
    info: &KindInfo,
    key: &ResourceKey,
    obj: &serde_json::Value,
    dry_run: bool,
) -> Result<serde_json::Value, kube::Error> {
    let api = api(client, info, &key.namespace);
    let params = PostParams { dry_run, field_manager: Some(FIELD_MANAGER.into()) };
    let data: DynamicObject = serde_json::from_value(obj.clone()).map_err(kube::Error::SerdeError)?;
    match api.get_opt(&key.name).await? {
        Some(live) => {
            let mut data = data;
            data.metadata.resource_version = live.metadata.resource_version;
            api.replace(&key.name, &params, &data).await.map(|o| to_value(o, info))
        }
        None => api.create(&params, &data).await.map(|o| to_value(o, info)),
    }
}

/// Deletes the object, waits until it is gone (30 s at most), and creates it from `obj`.
async fn recreate(
    client: &kube::Client,
    info: &KindInfo,
    key: &ResourceKey,
    obj: &serde_json::Value,
) -> Result<serde_json::Value, kube::Error> {
    let api = api(client, info, &key.namespace);
    delete(client, info, key, PropagationPolicy::Background, false).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while api.get_opt(&key.name).await?.is_some() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let data: DynamicObject = serde_json::from_value(obj.clone()).map_err(kube::Error::SerdeError)?;
    let params = PostParams { dry_run: false, field_manager: Some(FIELD_MANAGER.into()) };
    api.create(&params, &data).await.map(|o| to_value(o, info))
}

/// Creates `obj` (a hook: `generateName` is honoured) and returns the stored object.
pub async fn create(
    client: &kube::Client,
    info: &KindInfo,
    obj: &serde_json::Value,
    dry_run: bool,
) -> Result<serde_json::Value, kube::Error> {
    let namespace = obj["metadata"]["namespace"].as_str().unwrap_or_default();
    let data: DynamicObject = serde_json::from_value(obj.clone()).map_err(kube::Error::SerdeError)?;
    let params = PostParams { dry_run, field_manager: Some(FIELD_MANAGER.into()) };
    api(client, info, namespace).create(&params, &data).await.map(|o| to_value(o, info))
}

fn to_value(obj: DynamicObject, info: &KindInfo) -> serde_json::Value {
    let mut value = with_kind(obj, info);
    if let Some(meta) = value["metadata"].as_object_mut() {
        meta.remove("managedFields");
    }
    value
}

/// The object as JSON with its apiVersion and kind (a DynamicObject may lack them), managedFields kept.
fn with_kind(obj: DynamicObject, info: &KindInfo) -> serde_json::Value {
    let mut value = serde_json::to_value(obj).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        map.insert("apiVersion".into(), info.resource.api_version.clone().into());
        map.insert("kind".into(), info.resource.kind.clone().into());
    }
    value
}

/// Reads one object from the API server (with its managedFields, which the cache does not keep).
pub async fn get(
    client: &kube::Client,
    info: &KindInfo,
    key: &ResourceKey,
) -> Result<Option<serde_json::Value>, kube::Error> {
    let found = api(client, info, &key.namespace).get_opt(&key.name).await?;
    Ok(found.map(|obj| with_kind(obj, info)))
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
