//! Kubernetes Events on Applications, as Argo CD's controller records them: an operation started and
//! completed, and the sync and health status moving. `kubectl describe application`, the API's
//! `.../events` and the UI read them.

use berth_api::Application;
use berth_api::application::ApplicationStatus;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

/// What changed between two statuses of one application, as (warning?, reason, note).
pub fn between(
    old: Option<&ApplicationStatus>,
    new: &ApplicationStatus,
) -> Vec<(bool, &'static str, String)> {
    let mut out = Vec::new();
    let old_op = old.and_then(|s| s.operation_state.as_ref());
    if let Some(op) = &new.operation_state {
        let same = old_op.is_some_and(|o| o.started_at == op.started_at && o.operation == op.operation);
        let revision = op
            .sync_result
            .as_ref()
            .map(|r| r.revision.clone())
            .filter(|r| !r.is_empty())
            .or_else(|| op.operation.sync.as_ref().and_then(|s| s.revision.clone()))
            .unwrap_or_else(|| "HEAD".into());
        let who = op.operation.initiated_by.as_ref();
        if op.phase == "Running" && !same {
            let note = match who {
                Some(i) if i.automated == Some(true) => format!("Initiated automated sync to '{revision}'"),
                Some(i) if i.username.is_some() => {
                    format!("{} initiated sync to {revision}", i.username.as_deref().unwrap_or_default())
                }
                _ => format!("Initiated sync to {revision}"),
            };
            out.push((false, "OperationStarted", note));
        }
        let was_running = !same || old_op.is_some_and(|o| o.phase == "Running");
        if op.phase != "Running" && was_running {
            let message = op.message.as_deref().unwrap_or_default();
            match op.phase.as_str() {
                "Succeeded" => {
                    out.push((false, "OperationCompleted", format!("Sync operation to {revision} succeeded")))
                }
                phase => out.push((
                    true,
                    "OperationCompleted",
                    format!("Sync operation to {revision} {}: {message}", phase.to_lowercase()),
                )),
            }
        }
    }
    let sync = |s: Option<&ApplicationStatus>| s.and_then(|s| s.sync.as_ref()).map(|s| s.status.clone());
    let (from, to) = (sync(old), sync(Some(new)));
    if let Some(to) = to.filter(|t| Some(t) != from.as_ref()) {
        let from = from.unwrap_or_else(|| "Unknown".into());
        out.push((false, "ResourceUpdated", format!("Updated sync status: {from} -> {to}")));
    }
    let health =
        |s: Option<&ApplicationStatus>| s.and_then(|s| s.health.as_ref()).and_then(|h| h.status.clone());
    let (from, to) = (health(old), health(Some(new)));
    if let Some(to) = to.filter(|t| Some(t) != from.as_ref()) {
        let from = from.unwrap_or_else(|| "Unknown".into());
        out.push((false, "ResourceUpdated", format!("Updated health status: {from} -> {to}")));
    }
    out
}

/// Publishes events without holding up the pass that caused them (a failure is only logged).
pub fn publish(recorder: &Recorder, app: &Application, events: Vec<(bool, &'static str, String)>) {
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
        for (warning, reason, note) in events {
            let event = Event {
                type_: if warning { EventType::Warning } else { EventType::Normal },
                reason: reason.into(),
                note: Some(note),
                action: reason.into(),
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
    use berth_api::application::{HealthStatus, Operation, OperationInitiator, OperationState, SyncStatus};
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
        assert_eq!(events, vec![(false, "OperationStarted", "admin initiated sync to HEAD".to_string())]);
        let done = status("Synced", "Healthy", Some("Succeeded"));
        let reasons: Vec<String> = between(Some(&running), &done).into_iter().map(|e| e.2).collect();
        assert_eq!(
            reasons,
            [
                "Sync operation to HEAD succeeded",
                "Updated sync status: OutOfSync -> Synced",
                "Updated health status: Missing -> Healthy"
            ]
        );
        // Nothing moved: nothing reported (a finished operation is not reported again).
        assert!(between(Some(&done), &done).is_empty());
        let failed = status("OutOfSync", "Missing", Some("Failed"));
        let events = between(Some(&running), &failed);
        assert!(events[0].0, "a failure is a Warning");
        assert!(events[0].2.ends_with("failed: one or more objects failed to apply"), "{:?}", events[0]);
    }
}
