//! One AppProject through the API, as Argo CD serves it: `GET /api/v1/projects/{name}` and
//! `PUT /api/v1/projects/{name}` (Argo CD's ProjectUpdateRequest, `{project}`), which `berth proj windows`
//! and `argocd proj windows` edit sync windows with. RBAC: `projects, get|update, NAME`; a project the
//! caller may not see is refused as one that does not exist. The project travels as stored, fields berth
//! does not know included, so an update never drops them.

use super::{ApiError, Caller, Shared, kube_error};
use axum::Json;
use axum::extract::{Path, State};
use berth_api::AppProject;
use berth_api::project::AppProjectSpec;
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use serde_json::Value;
use std::sync::Arc;

fn projects(shared: &Shared) -> Api<DynamicObject> {
    Api::namespaced_with(shared.client.clone(), &shared.namespace, &ApiResource::erase::<AppProject>(&()))
}

/// The project `name` if the caller may do `action` on it; a missing one is refused the same way.
async fn authorized_project(
    shared: &Shared,
    caller: &Caller,
    name: &str,
    action: &str,
) -> Result<DynamicObject, ApiError> {
    let denied = || ApiError::forbidden("permission denied");
    if !shared.rbac.enforce(caller, "projects", action, name) {
        return Err(denied());
    }
    projects(shared).get_opt(name).await.map_err(kube_error)?.ok_or_else(denied)
}

fn json(object: &DynamicObject) -> Result<Json<Value>, ApiError> {
    serde_json::to_value(object).map(Json).map_err(|e| ApiError::internal(e.to_string()))
}

/// `GET /api/v1/projects/{name}`.
pub(super) async fn get_project(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    json(&authorized_project(&shared, &caller, &name, "get").await?)
}

/// `PUT /api/v1/projects/{name}` with `{project}`: the stored project's spec replaced by the request's,
/// its sync windows checked first as Argo CD checks them. A `resourceVersion` in the request makes the
/// write conditional on it (a concurrent change is refused, not overwritten); metadata and status stay
/// the stored ones.
pub(super) async fn update_project(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    Path(name): Path<String>,
    Json(request): Json<Value>,
) -> Result<Json<Value>, ApiError> {
    let mut stored = authorized_project(&shared, &caller, &name, "update").await?;
    let update = &request["project"];
    if !update.is_object() {
        return Err(ApiError::bad_request("the request has no project"));
    }
    if update["metadata"]["name"].as_str().is_some_and(|n| n != name) {
        return Err(ApiError::bad_request(format!("the project's name must be '{name}'")));
    }
    let spec = update.get("spec").cloned().unwrap_or_else(|| serde_json::json!({}));
    let typed: AppProjectSpec = serde_json::from_value(spec.clone())
        .map_err(|e| ApiError::bad_request(format!("the project's spec: {e}")))?;
    berth_controller::windows::validate(&typed.sync_windows)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    if let Some(version) = update["metadata"]["resourceVersion"].as_str().filter(|v| !v.is_empty()) {
        stored.metadata.resource_version = Some(version.to_string());
    }
    stored.data["spec"] = spec;
    let written =
        projects(&shared).replace(&name, &PostParams::default(), &stored).await.map_err(kube_error)?;
    tracing::info!(project = %name, user = %caller.name, "project updated");
    json(&written)
}
