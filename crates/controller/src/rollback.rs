//! Rollback to an entry of the Application's history, as Argo CD does it: a sync operation to that
//! entry's revision and source. Refused while automated sync is on (it would move the app straight back).

use berth_api::Application;
use berth_api::application::{Operation, OperationInitiator, SyncOperation};

/// The operation that rolls `app` back to history entry `id`, or why it cannot.
pub fn rollback_operation(
    app: &Application,
    id: i64,
    prune: bool,
    dry_run: bool,
    username: &str,
) -> Result<Operation, String> {
    let name = app.metadata.name.as_deref().unwrap_or_default();
    let automated = app.spec.sync_policy.as_ref().and_then(|p| p.automated.as_ref());
    if automated.is_some_and(|a| a.enabled != Some(false)) {
        return Err(format!(
            "rollback cannot be initiated when auto-sync is enabled: turn off spec.syncPolicy.automated of {name} first"
        ));
    }
    if app.operation.is_some()
        || app.status.as_ref().and_then(|s| s.operation_state.as_ref()).is_some_and(|s| s.phase == "Running")
    {
        return Err(format!("another operation is already in progress on {name}"));
    }
    let history = app.status.as_ref().map(|s| s.history.as_slice()).unwrap_or_default();
    let Some(entry) = history.iter().find(|h| h.id == id) else {
        let ids: Vec<String> = history.iter().map(|h| h.id.to_string()).collect();
        return Err(format!("application {name} has no history entry {id} (known: {})", ids.join(", ")));
    };
    Ok(Operation {
        sync: Some(SyncOperation {
            revision: entry.revision.clone(),
            source: entry.source.clone(),
            prune: Some(prune),
            dry_run: Some(dry_run),
            ..Default::default()
        }),
        initiated_by: Some(OperationInitiator { username: Some(username.into()), automated: None }),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(automated: bool) -> Application {
        let mut value = serde_json::json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": {"name": "web"},
            "spec": {"destination": {"namespace": "web"}, "project": "default",
                     "source": {"repoURL": "https://example.com/r.git", "path": "apps/web"}},
            "status": {"history": [
                {"id": 0, "revision": "aaa", "deployedAt": "2026-01-01T00:00:00Z",
                 "source": {"repoURL": "https://example.com/r.git", "path": "apps/web"}},
                {"id": 1, "revision": "bbb", "deployedAt": "2026-01-02T00:00:00Z"}]}
        });
        if automated {
            value["spec"]["syncPolicy"] = serde_json::json!({"automated": {"prune": true}});
        }
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn rollback_syncs_to_the_entry_revision_and_source() {
        let op = rollback_operation(&app(false), 0, true, false, "admin").unwrap();
        let sync = op.sync.unwrap();
        assert_eq!(sync.revision.as_deref(), Some("aaa"));
        assert_eq!(sync.source.unwrap().path.as_deref(), Some("apps/web"));
        assert_eq!(sync.prune, Some(true));
        assert_eq!(op.initiated_by.unwrap().username.as_deref(), Some("admin"));
    }

    #[test]
    fn rollback_is_refused_with_auto_sync_or_an_unknown_id() {
        let err = rollback_operation(&app(true), 0, false, false, "admin").unwrap_err();
        assert!(err.contains("auto-sync is enabled"), "{err}");
        let err = rollback_operation(&app(false), 7, false, false, "admin").unwrap_err();
        assert!(err.contains("no history entry 7") && err.contains("0, 1"), "{err}");
    }
}
