//! What an Application manages, as the UI and `berth app diff` read it: the resource tree, the managed
//! resources and the rendered manifests.

use super::{ApiError, AppNamespaceQuery, Caller, GrpcCode, Shared, authorized_app_in, members};
use axum::Json;
use axum::extract::{Path, Query, State};
use berth_api::Application;
use berth_engine::resource::ResourceKey;
use kube::api::Api;
use std::sync::Arc;

/// Kinds whose objects own the Pods and ReplicaSets of an application's tree.
const CHILD_KINDS: &[(&str, &str, &str)] =
    &[("apps", "v1", "ReplicaSet"), ("", "v1", "Pod"), ("batch", "v1", "Job")];

pub(crate) fn api_for(
    client: &kube::Client,
    group: &str,
    version: &str,
    kind: &str,
    namespace: &str,
) -> Api<kube::api::DynamicObject> {
    let gvk = kube::api::GroupVersionKind::gvk(group, version, kind);
    let resource = kube::api::ApiResource::from_gvk(&gvk);
    if namespace.is_empty() {
        Api::all_with(client.clone(), &resource)
    } else {
        Api::namespaced_with(client.clone(), namespace, &resource)
    }
}

/// The live objects the app tracks: of the resources its status lists, those whose live object carries
/// the app's tracking id (status is only a hint of where to look), each with its kind as discovered.
pub(crate) async fn tracked_objects(
    shared: &Shared,
    app: &Application,
) -> Result<Vec<(members::Kind, serde_json::Value)>, ApiError> {
    // Objects carry the instance name, `<namespace>_<name>` outside the control namespace.
    let instance = shared.instance_of(app);
    let name = instance.as_str();
    let tracking = shared.http_settings().tracking.clone();
    let mut kinds: std::collections::HashMap<(String, String, String), Option<members::Kind>> =
        Default::default();
    let mut found = Vec::new();
    for r in app.status.iter().flat_map(|s| &s.resources) {
        let (Some(kind), Some(object)) = (r.kind.as_deref(), r.name.as_deref()) else { continue };
        let group = r.group.as_deref().unwrap_or_default();
        let version = r.version.as_deref().unwrap_or_default();
        let key = (group.to_string(), version.to_string(), kind.to_string());
        let resolved = match kinds.get(&key) {
            Some(k) => k.clone(),
            None => {
                let k = members::resolve(&shared.client, group, version, kind).await?;
                kinds.insert(key, k.clone());
                k
            }
        };
        let Some(resolved) = resolved else { continue };
        let namespace = if resolved.namespaced { r.namespace.as_deref().unwrap_or_default() } else { "" };
        let Some(live) = members::get(&shared.client, &resolved, namespace, object).await? else { continue };
        if members::tracked_by(&live, name, &tracking) {
            found.push((resolved, live));
        }
    }
    Ok(found)
}

/// `GET /api/v1/applications/{name}/resource-tree[?appNamespace=]`: the app's resources and what they own (ReplicaSets,
/// Pods, Jobs), each with its health, as Argo CD's ApplicationTree. Only objects that carry the app's
/// tracking id, and what they own, are shown. Read from the controller's cache (and its health, Lua
/// included) when a controller runs in this process; an API server without one (`--controller=false`)
/// reads the cluster instead.
pub(super) async fn resource_tree(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    Path(name): Path<String>,
    Query(at): Query<AppNamespaceQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let app = authorized_app_in(&shared, &caller, at.app_namespace.as_deref(), &name, "get").await?;
    let nodes = match shared.controller.get() {
        // On the controller's runtime: finding the app's cluster may make that cluster's client, whose
        // I/O must not live on the API's threads.
        Some(_) => {
            let instance = shared.instance_of(&app);
            on_controller(&shared, move |c| async move { c.resource_tree(&instance) })
                .await?
                .map_err(view_error)?
        }
        None => tree_from_the_cluster(&shared, &app).await?,
    };
    Ok(Json(serde_json::json!({"nodes": nodes})))
}

/// The tree without a controller: the tracked objects GET one by one, their children listed.
async fn tree_from_the_cluster(
    shared: &Shared,
    app: &Application,
) -> Result<Vec<berth_controller::TreeNode>, ApiError> {
    let typed = |group: &str, version: &str, kind: &str, mut obj: serde_json::Value| {
        obj["apiVersion"] =
            if group.is_empty() { version.to_string() } else { format!("{group}/{version}") }.into();
        obj["kind"] = kind.into();
        let meta = &obj["metadata"];
        let key = ResourceKey::new(
            group,
            kind,
            meta["namespace"].as_str().unwrap_or_default(),
            meta["name"].as_str().unwrap_or_default(),
        );
        (key, Arc::new(obj))
    };
    let mut roots = Vec::new();
    let mut namespaces = std::collections::BTreeSet::new();
    for (kind, obj) in tracked_objects(shared, app).await? {
        let r = &kind.resource;
        let root = typed(&r.group, &r.version, &r.kind, obj);
        if !root.0.namespace.is_empty() {
            namespaces.insert(root.0.namespace.clone());
        }
        roots.push(root);
    }
    let mut owned: std::collections::HashMap<String, Vec<(ResourceKey, Arc<serde_json::Value>)>> =
        Default::default();
    for ns in &namespaces {
        for (group, version, kind) in CHILD_KINDS {
            let Ok(list) = api_for(&shared.client, group, version, kind, ns).list(&Default::default()).await
            else {
                continue;
            };
            for obj in list.items {
                let value = serde_json::to_value(obj).map_err(|e| ApiError::internal(e.to_string()))?;
                let child = typed(group, version, kind, value);
                for owner in child.1["metadata"]["ownerReferences"].as_array().into_iter().flatten() {
                    let uid = owner["uid"].as_str().unwrap_or_default().to_string();
                    owned.entry(uid).or_default().push(child.clone());
                }
            }
        }
    }
    Ok(berth_controller::resource_tree(
        roots,
        |uid| owned.get(uid).cloned().unwrap_or_default(),
        berth_engine::health::assess,
    ))
}

/// What the controller could not show, as the API answers it: an app it does not know is 404, a target
/// it cannot load 400 FailedPrecondition.
fn view_error(e: berth_controller::ViewError) -> ApiError {
    use berth_controller::ViewError;
    match e {
        ViewError::NotFound(_) | ViewError::Revision(_) => ApiError::not_found(e.to_string()),
        ViewError::Target(_) => ApiError::failed_precondition(e.to_string()),
    }
}

/// Runs `work` with the controller of this process, for what only it knows (targets, git), on the
/// controller's own runtime (what it starts lives there, not on the API server's; see
/// [`berth_controller::ControllerView::run`]): 503 when it does not run here.
pub(crate) async fn on_controller<T, F, Fut>(shared: &Shared, work: F) -> Result<T, ApiError>
where
    F: FnOnce(Arc<berth_controller::Controller>) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    shared.controller.run(work).await.ok_or_else(|| {
        ApiError::new(GrpcCode::Unavailable, "the application controller does not run in this process")
    })
}

/// What the controller compared for `app` (it knows the app by its instance name).
async fn controller_view(
    shared: &Shared,
    app: &Application,
) -> Result<(String, Vec<berth_controller::ManagedResource>), ApiError> {
    let instance = shared.instance_of(app);
    on_controller(shared, move |c| async move { c.managed_resources(&instance).await })
        .await?
        .map_err(view_error)
}

/// `GET /api/v1/applications/{name}/managed-resources[?appNamespace=]`: each object's target, live, normalised live and
/// predicted states (JSON strings, Secrets masked), as Argo CD returns them; what `berth app diff` reads.
pub(super) async fn managed_resources(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    Path(name): Path<String>,
    Query(at): Query<AppNamespaceQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let app = authorized_app_in(&shared, &caller, at.app_namespace.as_deref(), &name, "get").await?;
    let (_, items) = controller_view(&shared, &app).await?;
    Ok(Json(serde_json::json!({"items": items})))
}

/// `GET /api/v1/applications/{name}/manifests[?appNamespace=]`: the rendered manifests of the app's target revision.
pub(super) async fn manifests(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    Path(name): Path<String>,
    Query(at): Query<AppNamespaceQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let app = authorized_app_in(&shared, &caller, at.app_namespace.as_deref(), &name, "get").await?;
    let (revision, items) = controller_view(&shared, &app).await?;
    let manifests: Vec<&String> =
        items.iter().filter(|m| m.target_state != "null").map(|m| &m.target_state).collect();
    Ok(Json(serde_json::json!({"manifests": manifests, "revision": revision})))
}
