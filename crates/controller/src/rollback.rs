//! Rollback to an entry of the Application's history, as Argo CD does it: a sync operation to that
//! entry's revision and source, with the apply strategy and the Application's sync options. Refused while
//! automated sync is on (it would move the app straight back). The operation carries no mark of its own;
//! [`rolled_back_to`] recognises it, so the start is reported as Argo CD reports it: an
//! `OperationStarted` event, `<user> initiated rollback to <id>`. Its history entry, when it succeeds, is
//! any sync's.

use berth_api::Application;
use berth_api::application::{
    Operation, OperationInitiator, RevisionHistory, SyncOperation, SyncStrategy, SyncStrategyApply,
};

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
        return Err(format!(
            "application {name} does not have deployment with id {id} (known: {})",
            ids.join(", ")
        ));
    };
    if entry.source.is_none() && entry.sources.is_empty() {
        return Err(
            "cannot rollback to revision deployed with Argo CD v0.11 or lower. sync to revision instead."
                .into(),
        );
    }
    if entry.source.iter().chain(&entry.sources).any(crate::pass::status::is_summarised) {
        return Err(format!(
            "cannot rollback to deployment {id} of {name}: its Helm values were too large to keep in history (only their size and sha256 are). sync to revision instead."
        ));
    }
    Ok(Operation {
        sync: Some(SyncOperation {
            revision: entry.revision.clone(),
            revisions: entry.revisions.clone(),
            source: entry.source.clone(),
            sources: entry.sources.clone(),
            prune: Some(prune),
            dry_run: Some(dry_run),
            sync_options: app.spec.sync_policy.as_ref().map(|p| p.sync_options.clone()).unwrap_or_default(),
            sync_strategy: Some(SyncStrategy { apply: Some(SyncStrategyApply::default()), hook: None }),
            ..Default::default()
        }),
        initiated_by: Some(OperationInitiator { username: Some(username.into()), automated: None }),
        ..Default::default()
    })
}

/// The history entry `op` rolls back to, if it is a rollback: an apply-strategy sync that names its
/// source(s), as only a rollback writes it, to the revision(s) and source(s) of an entry. Entries that
/// deployed the same thing cannot be told apart; the newest of them is named.
pub fn rolled_back_to(op: &Operation, history: &[RevisionHistory]) -> Option<i64> {
    let sync = op.sync.as_ref()?;
    let apply = sync.sync_strategy.as_ref().is_some_and(|s| s.apply.is_some());
    if !apply || (sync.source.is_none() && sync.sources.is_empty()) {
        return None;
    }
    history
        .iter()
        .filter(|h| {
            h.revision == sync.revision
                && h.revisions == sync.revisions
                && h.source == sync.source
                && h.sources == sync.sources
        })
        .map(|h| h.id)
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
    fn rollback_syncs_to_the_entry_revision_and_source_with_the_apply_strategy() {
        let mut app = app(false);
        app.spec.sync_policy =
            Some(serde_json::from_value(json!({"syncOptions": ["CreateNamespace=true"]})).unwrap());
        let op = rollback_operation(&app, 0, true, false, "admin").unwrap();
        let sync = op.sync.clone().unwrap();
        assert_eq!(sync.revision.as_deref(), Some("aaa"));
        assert_eq!(sync.source.unwrap().path.as_deref(), Some("apps/web"));
        assert_eq!(sync.prune, Some(true));
        assert_eq!(sync.sync_options, ["CreateNamespace=true"], "the Application's sync options, as Argo CD");
        assert!(sync.sync_strategy.unwrap().apply.is_some(), "a rollback applies, as Argo CD's");
        assert_eq!(op.initiated_by.as_ref().unwrap().username.as_deref(), Some("admin"));
        let history = &app.status.as_ref().unwrap().history;
        assert_eq!(rolled_back_to(&op, history), Some(0));
    }

    #[test]
    fn only_a_rollback_is_recognised_as_one() {
        let app = app(false);
        let history = &app.status.as_ref().unwrap().history;
        let plain = Operation {
            sync: Some(SyncOperation { revision: Some("aaa".into()), ..Default::default() }),
            ..Default::default()
        };
        assert_eq!(rolled_back_to(&plain, history), None, "a sync to a revision is no rollback");
        let mut other = rollback_operation(&app, 0, false, false, "admin").unwrap();
        other.sync.as_mut().unwrap().revision = Some("ccc".into());
        assert_eq!(rolled_back_to(&other, history), None, "no entry deployed that");
    }

    #[test]
    fn rollback_is_refused_with_auto_sync_an_unknown_id_or_an_entry_without_source() {
        let err = rollback_operation(&app(true), 0, false, false, "admin").unwrap_err();
        assert!(err.starts_with("rollback cannot be initiated when auto-sync is enabled"), "{err}");
        let err = rollback_operation(&app(false), 7, false, false, "admin").unwrap_err();
        assert!(err.contains("does not have deployment with id 7") && err.contains("0, 1"), "{err}");
        let err = rollback_operation(&app(false), 1, false, false, "admin").unwrap_err();
        assert!(err.starts_with("cannot rollback to revision deployed with Argo CD v0.11 or lower"), "{err}");
    }

    #[test]
    fn rollback_is_refused_to_an_entry_whose_helm_values_history_kept_only_as_a_digest() {
        let mut app = app(false);
        let entry = &mut app.status.as_mut().unwrap().history[0];
        let mut source = entry.source.clone().unwrap();
        source.helm = Some(berth_api::application::ApplicationSourceHelm {
            values: Some("v".repeat(64 * 1024)),
            ..Default::default()
        });
        entry.source = Some(crate::pass::status::source_copy(&source));
        let err = rollback_operation(&app, 0, false, false, "admin").unwrap_err();
        assert!(err.contains("too large to keep in history"), "{err}");
    }
}
