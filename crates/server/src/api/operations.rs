//! Operations on an Application: sync, rollback and terminate. The server only requests them (it writes
//! `operation`, or asks a running one to stop); the controller runs them and writes their state.

use super::{ApiError, AppNamespaceQuery, Caller, Shared, authorized_app_in, kube_error};
use axum::Json;
use axum::extract::{Path, Query, State};
use berth_api::Application;
use berth_api::codes::OperationPhase;
use kube::api::Api;
use std::sync::Arc;

/// Writes an operation onto the Application, refusing while another one runs (as Argo CD does).
async fn start_operation(
    shared: &Shared,
    app: &Application,
    operation: serde_json::Value,
) -> Result<Json<Application>, ApiError> {
    // A terminating operation is still in progress until the controller has stopped it.
    let running = matches!(operation_phase(app), Some(OperationPhase::Running | OperationPhase::Terminating));
    if app.operation.is_some() || running {
        return Err(ApiError::failed_precondition("another operation is already in progress"));
    }
    let name = app.metadata.name.clone().unwrap_or_default();
    let api: Api<Application> = application_api(shared, app);
    let patch = serde_json::json!({"operation": operation});
    let stored = api
        .patch(&name, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch))
        .await
        .map_err(kube_error)?;
    Ok(Json(stored))
}

/// The Applications API of the namespace `app` lives in.
fn application_api(shared: &Shared, app: &Application) -> Api<Application> {
    Api::namespaced(shared.client.clone(), app.metadata.namespace.as_deref().unwrap_or(&shared.namespace))
}

/// Argo CD's ApplicationSyncRequest (the fields berth acts on).
#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct SyncRequest {
    revision: Option<String>,
    revisions: Vec<String>,
    prune: Option<bool>,
    dry_run: Option<bool>,
    resources: Vec<serde_json::Value>,
    sync_options: Option<SyncOptionsItems>,
    strategy: Option<serde_json::Value>,
    retry_strategy: Option<serde_json::Value>,
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub(super) struct SyncOptionsItems {
    items: Vec<String>,
}

/// `POST /api/v1/applications/{name}/sync[?appNamespace=]`.
pub(super) async fn sync_application(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    Path(name): Path<String>,
    Query(at): Query<AppNamespaceQuery>,
    body: axum::body::Bytes,
) -> Result<Json<Application>, ApiError> {
    let app = authorized_app_in(&shared, &caller, at.app_namespace.as_deref(), &name, "sync").await?;
    super::windows::refuse_if_blocked(&shared, &app).await?;
    // Bodyless is a plain sync (the CLI, and the UI with only the JSON content type).
    let request: SyncRequest = if body.iter().all(u8::is_ascii_whitespace) {
        SyncRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("the sync request: {e}")))?
    };
    let mut sync = serde_json::json!({
        "prune": request.prune.unwrap_or(false),
        "dryRun": request.dry_run.unwrap_or(false),
    });
    if let Some(revision) = request.revision.filter(|r| !r.is_empty()) {
        sync["revision"] = revision.into();
    }
    if !request.revisions.is_empty() {
        sync["revisions"] = request.revisions.into();
    }
    if !request.resources.is_empty() {
        sync["resources"] = request.resources.into();
    }
    if let Some(options) = request.sync_options.filter(|o| !o.items.is_empty()) {
        sync["syncOptions"] = options.items.into();
    }
    if let Some(strategy) = request.strategy {
        sync["syncStrategy"] = strategy;
    }
    let mut operation = serde_json::json!({"sync": sync, "initiatedBy": {"username": caller.name}});
    if let Some(retry) = request.retry_strategy {
        operation["retry"] = retry;
    }
    start_operation(&shared, &app, operation).await
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct RollbackRequest {
    id: i64,
    prune: Option<bool>,
    dry_run: Option<bool>,
}

/// `POST /api/v1/applications/{name}/rollback[?appNamespace=]`: a sync to a history entry; refused with
/// auto-sync on.
pub(super) async fn rollback_application(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    Path(name): Path<String>,
    Query(at): Query<AppNamespaceQuery>,
    Json(request): Json<RollbackRequest>,
) -> Result<Json<Application>, ApiError> {
    let app = authorized_app_in(&shared, &caller, at.app_namespace.as_deref(), &name, "sync").await?;
    // A rollback is a sync: the controller would refuse it in a blocking window, so the API does first.
    super::windows::refuse_if_blocked(&shared, &app).await?;
    let operation = berth_controller::rollback::rollback_operation(
        &app,
        request.id,
        request.prune.unwrap_or(false),
        request.dry_run.unwrap_or(false),
        &caller.name,
    )
    .map_err(ApiError::failed_precondition)?;
    let operation = serde_json::to_value(operation).map_err(|e| ApiError::internal(e.to_string()))?;
    start_operation(&shared, &app, operation).await
}

/// The phase of `app`'s operation state, if it has one.
fn operation_phase(app: &Application) -> Option<OperationPhase> {
    app.status.as_ref().and_then(|s| s.operation_state.as_ref()).and_then(|s| OperationPhase::parse(&s.phase))
}

/// `DELETE /api/v1/applications/{name}/operation[?appNamespace=]`: asks the running operation to stop. As Argo CD's server,
/// this only sets `status.operationState.phase` to `Terminating`: the controller, the one writer of an
/// operation's state, stops the operation and records it Failed ("Operation terminated"). The write is
/// guarded by the phase still being `Running`, so a pass that finished meanwhile is never reopened. Without
/// an operation in progress the answer is 400 with InvalidArgument, as Argo CD's.
pub(super) async fn terminate_operation(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    Path(name): Path<String>,
    Query(at): Query<AppNamespaceQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let app = authorized_app_in(&shared, &caller, at.app_namespace.as_deref(), &name, "sync").await?;
    let no_operation = || ApiError::bad_request("no operation is in progress");
    match operation_phase(&app) {
        Some(OperationPhase::Running) => {}
        // Already asked: the controller has not acted yet.
        Some(OperationPhase::Terminating) => return Ok(Json(serde_json::json!({}))),
        _ => return Err(no_operation()),
    }
    let api: Api<Application> = application_api(&shared, &app);
    let patch: json_patch::Patch = serde_json::from_value(serde_json::json!([
        {"op": "test", "path": "/status/operationState/phase", "value": OperationPhase::Running.as_str()},
        {"op": "replace", "path": "/status/operationState/phase", "value": OperationPhase::Terminating.as_str()},
    ]))
    .map_err(|e| ApiError::internal(e.to_string()))?;
    match api.patch(&name, &kube::api::PatchParams::default(), &kube::api::Patch::Json::<()>(patch)).await {
        Ok(_) => {
            tracing::info!(app = %name, user = %caller.name, "operation termination requested");
            Ok(Json(serde_json::json!({})))
        }
        // The test failed: the operation ended between the read and the write (the cache was behind).
        Err(kube::Error::Api(e)) if e.code == 422 => {
            let current = api.get(&name).await.map_err(kube_error)?;
            match operation_phase(&current) {
                Some(OperationPhase::Terminating) => Ok(Json(serde_json::json!({}))),
                Some(OperationPhase::Running) => Err(kube_error(kube::Error::Api(e))),
                _ => Err(no_operation()),
            }
        }
        Err(e) => Err(kube_error(e)),
    }
}
