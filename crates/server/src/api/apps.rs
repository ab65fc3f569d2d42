//! Reading and changing one Application: get (with `?refresh`), update, update of the spec, patch,
//! revision metadata and events, with Argo CD's paths, shapes and RBAC checks.

use super::{ApiError, Shared, app_object, authorized_app, kube_error};
use axum::Json;
use axum::extract::{Path, Query, State};
use berth_api::Application;
use kube::api::Api;
use std::sync::Arc;
use std::time::Duration;

/// How long `?refresh` waits for the controller to have looked again.
const REFRESH_WAIT: Duration = Duration::from_secs(60);

#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub(super) struct GetQuery {
    refresh: Option<String>,
}

/// `GET /api/v1/applications/{name}[?refresh=normal|hard]`: with `refresh`, the controller compares again
/// (a hard refresh renders again too) and the answer is the Application after that, as Argo CD's.
pub(super) async fn get_application(
    State(shared): State<Arc<Shared>>,
    headers: axum::http::HeaderMap,
    Path(name): Path<String>,
    Query(query): Query<GetQuery>,
) -> Result<Json<Application>, ApiError> {
    let caller = shared.caller(&headers)?;
    let app = authorized_app(&shared, &caller, &name, "get")?;
    let hard = match query.refresh.as_deref() {
        None | Some("") => return Ok(Json((*app).clone())),
        Some("normal") | Some("true") => false,
        Some("hard") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!("refresh: {other:?} is neither normal nor hard")));
        }
    };
    // Through the annotation even with the controller in process: its removal, in the controller's status
    // write, says the refresh is done.
    let api: Api<Application> = Api::namespaced(shared.client.clone(), &shared.namespace);
    let level = if hard { "hard" } else { "normal" };
    let patch = serde_json::json!({"metadata": {"annotations": {super::REFRESH_ANNOTATION: level}}});
    let patched = api
        .patch(&name, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch))
        .await
        .map_err(kube_error)?;
    let written: u64 = patched.metadata.resource_version.as_deref().and_then(|v| v.parse().ok()).unwrap_or(0);
    let deadline = tokio::time::Instant::now() + REFRESH_WAIT;
    let key = kube::runtime::reflector::ObjectRef::new(&name).within(&shared.namespace);
    let mut changes = shared.events.subscribe();
    loop {
        if let Some(app) = shared.apps.get(&key) {
            let rv: u64 = app.metadata.resource_version.as_deref().and_then(|v| v.parse().ok()).unwrap_or(0);
            let pending =
                app.metadata.annotations.as_ref().is_some_and(|a| a.contains_key(super::REFRESH_ANNOTATION));
            if rv > written && !pending {
                return Ok(Json((*app).clone()));
            }
        } else {
            return Err(ApiError::not_found(format!("applications.argoproj.io \"{name}\" not found")));
        }
        match tokio::time::timeout_at(deadline, changes.recv()).await {
            Ok(Ok(_)) | Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) | Err(_) => {
                return Err(ApiError {
                    status: axum::http::StatusCode::GATEWAY_TIMEOUT,
                    code: 4,
                    message: format!(
                        "application {name}: the controller did not finish the refresh within {}s",
                        REFRESH_WAIT.as_secs()
                    ),
                });
            }
        }
    }
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub(super) struct UpdateQuery {
    /// Argo CD's `validate`; berth validates on every write, so it is accepted and ignored.
    #[allow(dead_code)]
    validate: Option<bool>,
}

/// Replaces the spec (and labels, annotations, finalizers) of the stored Application with `wanted`'s, keeping
/// its status and operation; `update` on the stored project and, when it moves, on the new one.
async fn replace(
    shared: &Shared,
    caller: &crate::rbac::Subject,
    name: &str,
    wanted: serde_json::Value,
    only_spec: bool,
) -> Result<Application, ApiError> {
    let stored = authorized_app(shared, caller, name, "update")?;
    replace_stored(shared, caller, stored, wanted, only_spec).await
}

/// [`replace`] of an Application already read and authorized for `update` by the caller. Whatever `wanted`
/// says of `status` and `operation` is not taken: only the spec, labels, annotations and finalizers are.
pub(super) async fn replace_stored(
    shared: &Shared,
    caller: &crate::rbac::Subject,
    stored: Arc<Application>,
    wanted: serde_json::Value,
    only_spec: bool,
) -> Result<Application, ApiError> {
    let name = stored.metadata.name.clone().unwrap_or_default();
    let name = name.as_str();
    let mut next = serde_json::to_value(&*stored).map_err(|e| ApiError::internal(e.to_string()))?;
    next["apiVersion"] = "argoproj.io/v1alpha1".into();
    next["kind"] = "Application".into();
    if only_spec {
        next["spec"] = wanted;
    } else {
        if wanted["metadata"]["name"].as_str().is_some_and(|n| n != name) {
            return Err(ApiError::bad_request(format!(
                "metadata.name {:?} does not match the path's {name:?}",
                wanted["metadata"]["name"].as_str().unwrap_or_default()
            )));
        }
        next["spec"] = wanted["spec"].clone();
        for field in ["labels", "annotations", "finalizers"] {
            next["metadata"][field] = wanted["metadata"][field].clone();
        }
        // A resourceVersion sent along must still be current (optimistic concurrency).
        if let Some(rv) = wanted["metadata"]["resourceVersion"].as_str().filter(|v| !v.is_empty()) {
            next["metadata"]["resourceVersion"] = rv.into();
        }
    }
    let typed: Application = serde_json::from_value(next.clone())
        .map_err(|e| ApiError::bad_request(format!("the Application: {e}")))?;
    if typed.spec.project != stored.spec.project
        && !shared.rbac.enforce(caller, "applications", "update", &app_object(&typed))
    {
        return Err(ApiError::forbidden("permission denied"));
    }
    let resource = kube::api::ApiResource::erase::<Application>(&());
    let api: Api<kube::api::DynamicObject> =
        Api::namespaced_with(shared.client.clone(), &shared.namespace, &resource);
    let object: kube::api::DynamicObject =
        serde_json::from_value(next).map_err(|e| ApiError::bad_request(format!("the Application: {e}")))?;
    let written = api.replace(name, &kube::api::PostParams::default(), &object).await.map_err(kube_error)?;
    let written = serde_json::to_value(written).map_err(|e| ApiError::internal(e.to_string()))?;
    serde_json::from_value(written).map_err(|e| ApiError::internal(e.to_string()))
}

/// `PUT /api/v1/applications/{name}`: the Application as sent (spec, labels, annotations, finalizers).
pub(super) async fn update_application(
    State(shared): State<Arc<Shared>>,
    headers: axum::http::HeaderMap,
    Path(name): Path<String>,
    Query(_): Query<UpdateQuery>,
    Json(app): Json<serde_json::Value>,
) -> Result<Json<Application>, ApiError> {
    let caller = shared.caller(&headers)?;
    replace(&shared, &caller, &name, app, false).await.map(Json)
}

/// `PUT /api/v1/applications/{name}/spec`: only the spec (what `berth app set` sends); answers the spec.
pub(super) async fn update_spec(
    State(shared): State<Arc<Shared>>,
    headers: axum::http::HeaderMap,
    Path(name): Path<String>,
    Query(_): Query<UpdateQuery>,
    Json(spec): Json<serde_json::Value>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let caller = shared.caller(&headers)?;
    let app = replace(&shared, &caller, &name, spec, true).await?;
    serde_json::to_value(app.spec).map(Json).map_err(|e| ApiError::internal(e.to_string()))
}

/// Argo CD's ApplicationPatchRequest.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PatchRequest {
    patch: String,
    #[serde(default)]
    patch_type: Option<String>,
}

/// `PATCH /api/v1/applications/{name}`: `{patch, patchType: json|merge}` applied to the stored Application,
/// then written as an update (so the same RBAC checks hold, a project change included).
pub(super) async fn patch_application(
    State(shared): State<Arc<Shared>>,
    headers: axum::http::HeaderMap,
    Path(name): Path<String>,
    Json(request): Json<PatchRequest>,
) -> Result<Json<Application>, ApiError> {
    let caller = shared.caller(&headers)?;
    let stored = authorized_app(&shared, &caller, &name, "update")?;
    let mut doc = serde_json::to_value(&*stored).map_err(|e| ApiError::internal(e.to_string()))?;
    let patch: serde_json::Value = serde_json::from_str(&request.patch)
        .map_err(|e| ApiError::bad_request(format!("patch: not JSON: {e}")))?;
    if touches_operation_or_status(&patch) {
        return Err(ApiError::bad_request(
            "patch: operation and status cannot be patched; start an operation with /sync or /rollback",
        ));
    }
    match request.patch_type.as_deref().unwrap_or("json") {
        "json" => {
            let patch: json_patch::Patch = serde_json::from_value(patch)
                .map_err(|e| ApiError::bad_request(format!("patch: not a JSON patch: {e}")))?;
            json_patch::patch(&mut doc, &patch).map_err(|e| ApiError::bad_request(format!("patch: {e}")))?;
        }
        "merge" => json_patch::merge(&mut doc, &patch),
        other => {
            return Err(ApiError::bad_request(format!(
                "patchType {other:?} is not supported: use json or merge (strategic merge patch does not apply to custom resources)"
            )));
        }
    }
    // The resourceVersion read is the one written against: a concurrent change is a conflict, not lost.
    doc["metadata"]["resourceVersion"] = stored.metadata.resource_version.clone().unwrap_or_default().into();
    replace(&shared, &caller, &name, doc, false).await.map(Json)
}

/// Does a JSON patch (a list of operations) or a merge patch (an object) reach `/operation` or `/status`?
fn touches_operation_or_status(patch: &serde_json::Value) -> bool {
    let guarded = |path: &str| {
        ["/operation", "/status"].iter().any(|p| path == *p || path.starts_with(&format!("{p}/")))
    };
    match patch {
        serde_json::Value::Array(operations) => operations.iter().any(|op| {
            ["path", "from"].iter().any(|k| op[*k].as_str().is_some_and(guarded))
                // `/` replaces the whole document, status and operation included.
                || op["path"].as_str() == Some("")
        }),
        serde_json::Value::Object(fields) => {
            fields.contains_key("operation") || fields.contains_key("status")
        }
        _ => false,
    }
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct MetadataQuery {
    source_index: Option<usize>,
}

/// `GET /api/v1/applications/{name}/revisions/{revision}/metadata`: author, date, message of a commit of the
/// app's git source.
pub(super) async fn revision_metadata(
    State(shared): State<Arc<Shared>>,
    headers: axum::http::HeaderMap,
    Path((name, revision)): Path<(String, String)>,
    Query(query): Query<MetadataQuery>,
) -> Result<Json<berth_api::application::RevisionMetadata>, ApiError> {
    let caller = shared.caller(&headers)?;
    authorized_app(&shared, &caller, &name, "get")?;
    let controller = super::in_process_controller(&shared)?;
    controller
        .revision_metadata(&name, &revision, query.source_index.unwrap_or(0))
        .await
        .map(Json)
        .map_err(|m| ApiError::not_found(format!("revision {revision}: {m}")))
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct EventsQuery {
    resource_namespace: Option<String>,
    resource_name: Option<String>,
    resource_uid: Option<String>,
}

/// `GET /api/v1/applications/{name}/events`: the Kubernetes Events of the Application (or, with
/// `resourceNamespace`, `resourceName`, `resourceUID`, of one of its resources), newest last.
pub(super) async fn events(
    State(shared): State<Arc<Shared>>,
    headers: axum::http::HeaderMap,
    Path(name): Path<String>,
    Query(query): Query<EventsQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    use k8s_openapi::api::core::v1::Event;
    let caller = shared.caller(&headers)?;
    let app = authorized_app(&shared, &caller, &name, "get")?;
    let (namespace, fields) = match (&query.resource_name, &query.resource_uid) {
        (Some(resource), uid) => {
            let namespace = query.resource_namespace.clone().unwrap_or_default();
            // The live object the app tracks under that name; its uid selects the Events (so another
            // object of the same name, or one the app only claims in status, shows nothing).
            let wanted_uid = uid.as_deref().filter(|u| !u.is_empty());
            let tracked = super::tracked_objects(&shared, &app).await?.into_iter().find_map(|(_, live)| {
                let meta = &live["metadata"];
                let uid = meta["uid"].as_str()?;
                (meta["name"].as_str() == Some(resource.as_str())
                    && meta["namespace"].as_str().unwrap_or_default() == namespace
                    && wanted_uid.is_none_or(|w| w == uid))
                .then(|| uid.to_string())
            });
            let Some(uid) = tracked else {
                return Err(ApiError::not_found(format!(
                    "{namespace}/{resource} is not a resource of application {name}"
                )));
            };
            (namespace, format!("involvedObject.name={resource},involvedObject.uid={uid}"))
        }
        (None, _) => {
            let mut fields = format!("involvedObject.name={name},involvedObject.kind=Application");
            if let Some(uid) = app.metadata.uid.as_deref() {
                fields.push_str(&format!(",involvedObject.uid={uid}"));
            }
            (shared.namespace.clone(), fields)
        }
    };
    let api: Api<Event> = if namespace.is_empty() {
        Api::all(shared.client.clone())
    } else {
        Api::namespaced(shared.client.clone(), &namespace)
    };
    let mut list = api.list(&kube::api::ListParams::default().fields(&fields)).await.map_err(kube_error)?;
    let at = |e: &Event| {
        e.last_timestamp
            .as_ref()
            .map(|t| t.0)
            .or_else(|| e.event_time.as_ref().map(|t| t.0))
            .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0))
    };
    list.items.sort_by_key(|e| at(e));
    Ok(Json(serde_json::json!({"metadata": {}, "items": list.items})))
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct ResourceQuery {
    namespace: String,
    resource_name: String,
    group: String,
    version: String,
    kind: String,
}

/// `GET /api/v1/applications/{name}/resource?namespace=&resourceName=&group=&version=&kind=`: the live
/// manifest of one of the app's resources or of an object they own (a ReplicaSet, a Pod), as Argo CD's
/// `{"manifest": "<JSON>"}`. The kind must be one the API server serves, spelled as it does; the object must
/// carry the app's tracking id or be owned by one that does; a Secret's values are masked by its real kind.
/// Anything else is 404, whatever exists in the cluster.
pub(super) async fn resource(
    State(shared): State<Arc<Shared>>,
    headers: axum::http::HeaderMap,
    Path(name): Path<String>,
    Query(query): Query<ResourceQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let caller = shared.caller(&headers)?;
    authorized_app(&shared, &caller, &name, "get")?;
    if query.kind.is_empty() || query.resource_name.is_empty() {
        return Err(ApiError::bad_request("kind and resourceName are required"));
    }
    let not_found = || {
        ApiError::not_found(format!(
            "{} {} is not a resource of application {name}",
            query.kind, query.resource_name
        ))
    };
    let kind = super::members::resolve(&shared.client, &query.group, &query.version, &query.kind)
        .await?
        .ok_or_else(not_found)?;
    let namespace = if kind.namespaced { query.namespace.as_str() } else { "" };
    let mut value = super::members::get(&shared.client, &kind, namespace, &query.resource_name)
        .await?
        .ok_or_else(not_found)?;
    let installation_id = shared.http_settings().installation_id.clone();
    if !super::members::belongs(&shared.client, &name, &installation_id, &value).await? {
        return Err(not_found());
    }
    super::members::mask(&mut value);
    Ok(Json(serde_json::json!({"manifest": value.to_string()})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patches_that_reach_operation_or_status_are_recognised() {
        let json = |v: serde_json::Value| touches_operation_or_status(&v);
        assert!(json(serde_json::json!([{"op": "add", "path": "/operation", "value": {}}])));
        assert!(json(
            serde_json::json!([{"op": "replace", "path": "/status/resources/0/kind", "value": "x"}])
        ));
        assert!(json(serde_json::json!([{"op": "copy", "from": "/status", "path": "/spec/x"}])));
        assert!(json(serde_json::json!([{"op": "replace", "path": "", "value": {}}])));
        assert!(json(serde_json::json!({"operation": {"sync": {}}})));
        assert!(json(serde_json::json!({"status": null})));
        assert!(!json(serde_json::json!([{"op": "replace", "path": "/spec/operationx", "value": 1}])));
        assert!(!json(serde_json::json!({"spec": {"project": "default"}})));
    }
}
