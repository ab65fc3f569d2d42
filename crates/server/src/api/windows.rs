//! Sync windows through the API, as Argo CD serves them: an application's windows
//! (`GET /api/v1/applications/{name}/syncwindows[?appNamespace=]`, Argo CD's
//! ApplicationSyncWindowsResponse), and the refusal of a sync a window blocks (PermissionDenied
//! `cannot sync: blocked by sync window`). The verdict itself is [`berth_controller::windows`]'s, the one
//! the controller acts on.

use super::{ApiError, AppNamespaceQuery, Caller, Shared, authorized_app_in, kube_error};
use axum::Json;
use axum::extract::{Path, Query, State};
use berth_api::project::SyncWindow;
use berth_api::{AppProject, Application};
use berth_controller::windows::{self, WindowState};
use kube::api::Api;
use serde::Serialize;
use std::sync::Arc;

/// Argo CD's ApplicationSyncWindow: a window as an application sees it (its selectors left out).
#[derive(Serialize, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
struct ApplicationSyncWindow {
    kind: String,
    schedule: String,
    duration: String,
    manual_sync: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    time_zone: Option<String>,
    /// Argo CD 3.x's `syncOverrun`; written only when set, as a client that predates it never sees it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    sync_overrun: bool,
}

/// Argo CD's ApplicationSyncWindowsResponse: the windows that apply to the app, those open now, and
/// whether a manual sync may start (empty lists are left out, as Argo CD's gateway leaves them out).
#[derive(Serialize, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
struct SyncWindowsResponse {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    active_windows: Vec<ApplicationSyncWindow>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    assigned_windows: Vec<ApplicationSyncWindow>,
    can_sync: bool,
}

fn response(windows: &[SyncWindow], state: &WindowState) -> SyncWindowsResponse {
    let shown = |indexes: &[usize]| {
        indexes
            .iter()
            .filter_map(|i| windows.get(*i))
            .map(|w| ApplicationSyncWindow {
                kind: w.kind.clone().unwrap_or_default(),
                schedule: w.schedule.clone().unwrap_or_default(),
                duration: w.duration.clone().unwrap_or_default(),
                manual_sync: w.manual_sync.unwrap_or(false),
                time_zone: w.time_zone.clone().filter(|z| !z.is_empty()),
                sync_overrun: w.sync_overrun.unwrap_or(false),
            })
            .collect()
    };
    SyncWindowsResponse {
        active_windows: shown(&state.active),
        assigned_windows: shown(&state.assigned),
        can_sync: state.can_sync_manual,
    }
}

/// The sync windows of `app`'s project; refused as Argo CD refuses an app whose project is missing.
async fn project_windows(shared: &Shared, app: &Application) -> Result<Vec<SyncWindow>, ApiError> {
    let project = if app.spec.project.is_empty() { "default" } else { &app.spec.project };
    let api: Api<AppProject> = Api::namespaced(shared.client.clone(), &shared.namespace);
    match api.get_opt(project).await.map_err(kube_error)? {
        Some(p) => Ok(p.spec.sync_windows),
        None => Err(ApiError::bad_request(format!(
            "application references project {project} which does not exist"
        ))),
    }
}

/// What the windows of `app`'s project say now.
async fn window_state(
    shared: &Shared,
    app: &Application,
) -> Result<(Vec<SyncWindow>, WindowState), ApiError> {
    let windows = project_windows(shared, app).await?;
    let state = windows::state(&windows, app, k8s_openapi::jiff::Timestamp::now());
    Ok((windows, state))
}

/// Refuses a manual sync of `app` (a sync or a rollback) while a window blocks it, with Argo CD's message
/// and code; the reason is logged (the controller refuses such an operation too, should one be written
/// past the API).
pub(super) async fn refuse_if_blocked(shared: &Shared, app: &Application) -> Result<(), ApiError> {
    // A missing project has no windows; the controller reports it (InvalidSpecError) and syncs nothing.
    // Any other failure to read the project refuses the sync: a freeze fails closed.
    let project = if app.spec.project.is_empty() { "default" } else { &app.spec.project };
    let api: Api<AppProject> = Api::namespaced(shared.client.clone(), &shared.namespace);
    if api.get_opt(project).await.map_err(kube_error)?.is_none() {
        return Ok(());
    }
    let (_, state) = window_state(shared, app).await?;
    if state.can_sync_manual {
        return Ok(());
    }
    tracing::info!(app = app.metadata.name.as_deref().unwrap_or_default(), reason = ?state.reason, "sync refused by a sync window");
    Err(ApiError::forbidden(windows::BLOCKED))
}

/// `GET /api/v1/applications/{name}/syncwindows[?appNamespace=]`.
pub(super) async fn application_sync_windows(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    Path(name): Path<String>,
    Query(at): Query<AppNamespaceQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let app = authorized_app_in(&shared, &caller, at.app_namespace.as_deref(), &name, "get").await?;
    let (windows, state) = window_state(&shared, &app).await?;
    let body =
        serde_json::to_value(response(&windows, &state)).map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(Json(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(json: serde_json::Value) -> SyncWindow {
        serde_json::from_value(json).unwrap()
    }

    fn app() -> Application {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Application", "metadata": {"name": "web"},
            "spec": {"project": "default", "destination": {"namespace": "web"},
                     "source": {"repoURL": "https://example.com/r.git", "path": "web"}}
        }))
        .unwrap()
    }

    #[test]
    fn the_answer_has_argo_cds_shape_with_assigned_and_active_windows() {
        let windows = [
            window(serde_json::json!({"kind": "deny", "schedule": "* * * * *", "duration": "1h",
                "applications": ["web"], "manualSync": true, "timeZone": "Europe/Amsterdam"})),
            window(serde_json::json!({"kind": "deny", "schedule": "0 0 1 1 *", "duration": "1m",
                "applications": ["web"]})),
            window(serde_json::json!({"kind": "deny", "schedule": "* * * * *", "duration": "1h",
                "applications": ["api"]})),
        ];
        let state = windows::state(&windows, &app(), "2025-06-02T12:00:00Z".parse().unwrap());
        let body = serde_json::to_value(response(&windows, &state)).unwrap();
        let active = serde_json::json!({"kind": "deny", "schedule": "* * * * *", "duration": "1h",
            "manualSync": true, "timeZone": "Europe/Amsterdam"});
        assert_eq!(
            body,
            serde_json::json!({
                "activeWindows": [active],
                "assignedWindows": [active, {"kind": "deny", "schedule": "0 0 1 1 *", "duration": "1m",
                    "manualSync": false}],
                "canSync": true,
            })
        );
    }

    #[test]
    fn without_windows_the_answer_is_only_that_it_may_sync() {
        let state = windows::state(&[], &app(), "2025-06-02T12:00:00Z".parse().unwrap());
        assert_eq!(
            serde_json::to_value(response(&[], &state)).unwrap(),
            serde_json::json!({"canSync": true})
        );
        let frozen = [window(serde_json::json!({"kind": "deny", "schedule": "* * * * *", "duration": "1h",
            "namespaces": ["*"]}))];
        let state = windows::state(&frozen, &app(), "2025-06-02T12:00:00Z".parse().unwrap());
        assert_eq!(serde_json::to_value(response(&frozen, &state)).unwrap()["canSync"], false);
    }
}
