//! Kubernetes Events on Applications, as Argo CD records them: an operation started (which Argo CD's API
//! server reports) and completed, and the sync and health status moving. `kubectl describe application`, the API's
//! `.../events` and the UI read them.

use berth_api::Application;
use berth_api::application::ApplicationStatus;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

/// One event on an Application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppEvent {
    pub warning: bool,
    /// Argo CD's reason (`OperationStarted`, `OperationCompleted`, `ResourceUpdated`).
    pub reason: &'static str,
    /// What the event is about. Events of one reason and action on one copy of the Application are folded
    /// into a series that keeps the first note (the recorder's aggregation), so a sync and a health change
    /// reported by one write need actions of their own.
    pub action: &'static str,
    pub note: String,
}

impl AppEvent {
    fn new(warning: bool, reason: &'static str, action: &'static str, note: String) -> AppEvent {
        AppEvent { warning, reason, action, note }
    }
}

/// What changed between two statuses of one application, in Argo CD's words:
/// `<user> initiated sync to <revision>` (`partial sync` for a resource subset, `rollback to <id>` for a
/// rollback) when an operation starts, `Sync operation to <revision> succeeded` or `… failed: <message>`
/// when it ends.
pub fn between(old: Option<&ApplicationStatus>, new: &ApplicationStatus) -> Vec<AppEvent> {
    let mut out = Vec::new();
    let old_op = old.and_then(|s| s.operation_state.as_ref());
    if let Some(op) = &new.operation_state {
        let same = old_op.is_some_and(|o| o.started_at == op.started_at && o.operation == op.operation);
        let sync = op.operation.sync.as_ref();
        let partial = sync.is_some_and(|s| !s.resources.is_empty());
        let who = op.operation.initiated_by.as_ref();
        if op.phase == "Running" && !same {
            let revision = op
                .sync_result
                .as_ref()
                .map(|r| r.revision.clone())
                .filter(|r| !r.is_empty())
                .or_else(|| sync.and_then(|s| s.revision.clone()))
                .unwrap_or_else(|| "HEAD".into());
            let what = match crate::rollback::rolled_back_to(&op.operation, &new.history) {
                Some(id) => format!("rollback to {id}"),
                None if partial => format!("partial sync to {revision}"),
                None => format!("sync to {revision}"),
            };
            let note = match who {
                Some(i) if i.automated == Some(true) => format!("Initiated automated sync to '{revision}'"),
                Some(i) => {
                    let user = i.username.as_deref().filter(|u| !u.is_empty()).unwrap_or("Unknown user");
                    format!("{user} initiated {what}")
                }
                None => format!("Initiated {what}"),
            };
            out.push(AppEvent::new(false, "OperationStarted", "OperationStarted", note));
        }
        let was_running = !same || old_op.is_some_and(|o| o.phase == "Running");
        if op.phase != "Running" && was_running {
            let mut note = if partial { "Partial sync operation" } else { "Sync operation" }.to_string();
            if let Some(result) = &op.sync_result {
                note.push_str(&format!(" to {}", result.revision));
            }
            if op.phase == "Succeeded" {
                out.push(AppEvent::new(
                    false,
                    "OperationCompleted",
                    "OperationCompleted",
                    format!("{note} succeeded"),
                ));
            } else {
                let message = op.message.as_deref().unwrap_or_default();
                out.push(AppEvent::new(
                    true,
                    "OperationCompleted",
                    "OperationCompleted",
                    format!("{note} failed: {message}"),
                ));
            }
        }
    }
    let sync = |s: Option<&ApplicationStatus>| s.and_then(|s| s.sync.as_ref()).map(|s| s.status.clone());
    let (from, to) = (sync(old), sync(Some(new)));
    if let Some(to) = to.filter(|t| Some(t) != from.as_ref()) {
        let from = from.unwrap_or_else(|| "Unknown".into());
        let note = format!("Updated sync status: {from} -> {to}");
        out.push(AppEvent::new(false, "ResourceUpdated", "UpdateSyncStatus", note));
    }
    let health =
        |s: Option<&ApplicationStatus>| s.and_then(|s| s.health.as_ref()).and_then(|h| h.status.clone());
    let (from, to) = (health(old), health(Some(new)));
    if let Some(to) = to.filter(|t| Some(t) != from.as_ref()) {
        let from = from.unwrap_or_else(|| "Unknown".into());
        let note = format!("Updated health status: {from} -> {to}");
        out.push(AppEvent::new(false, "ResourceUpdated", "UpdateHealthStatus", note));
    }
    out
}

/// Publishes events without holding up the pass that caused them (a failure is only logged).
pub fn publish(recorder: &Recorder, app: &Application, events: Vec<AppEvent>) {
    if events.is_empty() {
        return;
    }
    let reference = ObjectReference {
        api_version: Some("argoproj.io/v1alpha1".into()),
        kind: Some("Application".into()),
        name: app.metadata.name.clone(),
        namespace: app.metadata.namespace.clone(),
        uid: app.metadata.uid.clone(),
        resource_version: app.metadata.resource_version.clone(),
        ..Default::default()
    };
    let recorder = recorder.clone();
    tokio::spawn(async move {
        for AppEvent { warning, reason, action, note } in events {
            let event = Event {
                type_: if warning { EventType::Warning } else { EventType::Normal },
                reason: reason.into(),
                note: Some(note),
                action: action.into(),
                secondary: None,
            };
            if let Err(e) = recorder.publish(&event, &reference).await {
                tracing::debug!(error = %e, "recording an event");
            }
        }
    });
}

/// The reporter Argo CD's events name.
pub fn reporter() -> Reporter {
    Reporter {
        controller: "argocd-application-controller".into(),
        instance: std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::application::{
        HealthStatus, Operation, OperationInitiator, OperationState, SyncOperation, SyncOperationResource,
        SyncOperationResult, SyncStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn status(sync: &str, health: &str, phase: Option<&str>) -> ApplicationStatus {
        ApplicationStatus {
            sync: Some(SyncStatus { status: sync.into(), ..Default::default() }),
            health: Some(HealthStatus { status: Some(health.into()), ..Default::default() }),
            operation_state: phase.map(|p| OperationState {
                operation: Operation {
                    initiated_by: Some(OperationInitiator {
                        username: Some("admin".into()),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                phase: p.into(),
                message: Some("one or more objects failed to apply".into()),
                sync_result: None,
                started_at: Time("2026-11-26T19:00:00Z".parse().unwrap()),
                finished_at: None,
                retry_count: None,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_sync_start_and_end_and_status_moves_are_reported_once() {
        let idle = status("OutOfSync", "Missing", None);
        let running = status("OutOfSync", "Missing", Some("Running"));
        let events = between(Some(&idle), &running);
        let started = AppEvent::new(
            false,
            "OperationStarted",
            "OperationStarted",
            "admin initiated sync to HEAD".into(),
        );
        assert_eq!(events, vec![started]);
        let done = status("Synced", "Healthy", Some("Succeeded"));
        let events = between(Some(&running), &done);
        let reasons: Vec<&str> = events.iter().map(|e| e.note.as_str()).collect();
        assert_eq!(
            reasons,
            [
                "Sync operation succeeded",
                "Updated sync status: OutOfSync -> Synced",
                "Updated health status: Missing -> Healthy"
            ]
        );
        // The sync and the health moves share a reason: their actions keep them apart, or the recorder would
        // fold the second into the first's series and its note would be lost.
        let keys: std::collections::HashSet<_> = events.iter().map(|e| (e.reason, e.action)).collect();
        assert_eq!(keys.len(), events.len(), "{events:?}");
        // Nothing moved: nothing reported (a finished operation is not reported again).
        assert!(between(Some(&done), &done).is_empty());
        let failed = status("OutOfSync", "Missing", Some("Failed"));
        let events = between(Some(&running), &failed);
        assert!(events[0].warning, "a failure is a Warning");
        assert_eq!(events[0].note, "Sync operation failed: one or more objects failed to apply");
        let mut errored = status("OutOfSync", "Missing", Some("Error"));
        errored.operation_state.as_mut().unwrap().sync_result =
            Some(SyncOperationResult { revision: "abc".into(), ..Default::default() });
        let events = between(Some(&running), &errored);
        assert_eq!(events[0].note, "Sync operation to abc failed: one or more objects failed to apply");
    }

    #[test]
    fn a_rollback_start_is_reported_as_a_rollback_and_a_subset_as_a_partial_sync() {
        let idle = status("Synced", "Healthy", None);
        let mut app: berth_api::Application = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web"},
            "spec": {"destination": {}, "project": "default",
                     "source": {"repoURL": "https://example.com/r.git", "path": "web"}},
            "status": {"history": [
                {"id": 3, "revision": "aaa", "deployedAt": "2026-01-01T00:00:00Z",
                 "source": {"repoURL": "https://example.com/r.git", "path": "web"}},
                {"id": 4, "revision": "bbb", "deployedAt": "2026-01-02T00:00:00Z",
                 "source": {"repoURL": "https://example.com/r.git", "path": "web"}}]}
        }))
        .unwrap();
        let operation = crate::rollback::rollback_operation(&app, 3, false, false, "alice").unwrap();
        let mut rolling = status("Synced", "Healthy", Some("Running"));
        rolling.history = app.status.take().unwrap().history;
        rolling.operation_state.as_mut().unwrap().operation = operation;
        let events = between(Some(&idle), &rolling);
        assert_eq!(events[0].note, "alice initiated rollback to 3");
        assert_eq!(events.len(), 1);

        let mut partial = status("Synced", "Healthy", Some("Running"));
        partial.operation_state.as_mut().unwrap().operation.sync = Some(SyncOperation {
            resources: vec![SyncOperationResource {
                kind: "ConfigMap".into(),
                name: "a".into(),
                ..Default::default()
            }],
            ..Default::default()
        });
        assert_eq!(between(Some(&idle), &partial)[0].note, "admin initiated partial sync to HEAD");
        let mut done = partial.clone();
        done.operation_state.as_mut().unwrap().phase = "Succeeded".into();
        assert_eq!(between(Some(&partial), &done)[0].note, "Partial sync operation succeeded");
    }
}
