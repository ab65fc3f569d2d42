use super::*;
use crate::pass::target::Desired;
use berth_api::application::SyncOperationResult;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

const TIMEOUT: Duration = Duration::from_secs(5);

fn app(automated: serde_json::Value) -> Application {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application", "metadata": {"name": "web"},
        "spec": {"destination": {"namespace": "web"}, "project": "default",
                 "source": {"repoURL": "https://example.com/r.git", "path": "web"},
                 "syncPolicy": {"automated": automated}}
    }))
    .unwrap()
}

fn target(revision: &str, objects: usize) -> Target {
    let objects = (0..objects)
        .map(|i| Desired {
            key: ResourceKey::new("", "ConfigMap", "web", &format!("cm-{i}")),
            file: "cm.yaml".into(),
            object: serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap"}),
        })
        .collect();
    Target::of(revision, objects)
}

/// A status whose last sync was of `revision` from the app's source, finished `ago` seconds before `now`.
fn synced(
    app: &Application,
    revision: &str,
    phase: OperationPhase,
    now: Timestamp,
    ago: i64,
) -> ApplicationStatus {
    let finished = Timestamp::from_second(now.as_second() - ago).unwrap();
    ApplicationStatus {
        operation_state: Some(OperationState {
            operation: Operation::default(),
            phase: phase.to_string(),
            message: None,
            sync_result: Some(SyncOperationResult {
                revision: revision.into(),
                source: app.spec.source.clone(),
                ..Default::default()
            }),
            started_at: Time(finished),
            finished_at: Some(Time(finished)),
            retry_count: None,
        }),
        ..Default::default()
    }
}

fn decide(
    app: &Application,
    target: &Target,
    code: SyncCode,
    status: &ApplicationStatus,
    now: Timestamp,
) -> AutoSync {
    auto_sync_decision(app, target, code, status, false, TIMEOUT, now)
}

#[test]
fn a_new_revision_that_is_out_of_sync_syncs_at_once() {
    let app = app(serde_json::json!({}));
    let now = Timestamp::now();
    let status = synced(&app, "old", OperationPhase::Succeeded, now, 1);
    assert_eq!(
        decide(&app, &target("new", 1), SyncCode::OutOfSync, &status, now),
        AutoSync::Now { self_heal: false }
    );
    assert_eq!(
        decide(&app, &target("new", 1), SyncCode::OutOfSync, &ApplicationStatus::default(), now),
        AutoSync::Now { self_heal: false },
        "never synced before"
    );
}

#[test]
fn nothing_happens_when_synced_unknown_disabled_or_not_automated() {
    let now = Timestamp::now();
    let none = ApplicationStatus::default();
    let automated = app(serde_json::json!({}));
    assert_eq!(decide(&automated, &target("a", 1), SyncCode::Synced, &none, now), AutoSync::No);
    assert_eq!(decide(&automated, &target("a", 1), SyncCode::Unknown, &none, now), AutoSync::No);
    let disabled = app(serde_json::json!({"enabled": false}));
    assert_eq!(decide(&disabled, &target("a", 1), SyncCode::OutOfSync, &none, now), AutoSync::No);
    let mut manual = automated.clone();
    manual.spec.sync_policy = None;
    assert_eq!(decide(&manual, &target("a", 1), SyncCode::OutOfSync, &none, now), AutoSync::No);
    let mut broken = target("a", 1);
    broken.errors.push("a.yaml: Widget \"w\": unknown kind".into());
    assert_eq!(
        decide(&automated, &broken, SyncCode::OutOfSync, &none, now),
        AutoSync::No,
        "a target with errors"
    );
}

#[test]
fn an_empty_render_is_not_synced_unless_allow_empty() {
    let now = Timestamp::now();
    let none = ApplicationStatus::default();
    let strict = app(serde_json::json!({"prune": true}));
    assert!(
        matches!(decide(&strict, &target("a", 0), SyncCode::OutOfSync, &none, now), AutoSync::Blocked(m) if m.contains("allowEmpty"))
    );
    let allowed = app(serde_json::json!({"prune": true, "allowEmpty": true}));
    assert_eq!(
        decide(&allowed, &target("a", 0), SyncCode::OutOfSync, &none, now),
        AutoSync::Now { self_heal: false }
    );
}

#[test]
fn the_same_revision_again_is_only_synced_to_heal_drift() {
    let now = Timestamp::now();
    let no_heal = app(serde_json::json!({}));
    let status = synced(&no_heal, "a", OperationPhase::Succeeded, now, 60);
    assert_eq!(decide(&no_heal, &target("a", 1), SyncCode::OutOfSync, &status, now), AutoSync::No);
    let heal = app(serde_json::json!({"selfHeal": true}));
    let status = synced(&heal, "a", OperationPhase::Succeeded, now, 60);
    assert_eq!(
        decide(&heal, &target("a", 1), SyncCode::OutOfSync, &status, now),
        AutoSync::Now { self_heal: true }
    );
}

#[test]
fn a_failed_sync_of_the_same_revision_is_not_retried_by_auto_sync() {
    let now = Timestamp::now();
    let heal = app(serde_json::json!({"selfHeal": true}));
    for phase in [OperationPhase::Failed, OperationPhase::Error] {
        let status = synced(&heal, "a", phase, now, 600);
        assert_eq!(
            decide(&heal, &target("a", 1), SyncCode::OutOfSync, &status, now),
            AutoSync::No,
            "{phase}"
        );
        assert_eq!(
            decide(&heal, &target("b", 1), SyncCode::OutOfSync, &status, now),
            AutoSync::Now { self_heal: false },
            "a new revision is tried after a failure ({phase})"
        );
    }
}

#[test]
fn self_heal_waits_out_its_timeout_and_honours_the_pause() {
    let now = Timestamp::now();
    let heal = app(serde_json::json!({"selfHeal": true}));
    let recent = synced(&heal, "a", OperationPhase::Succeeded, now, 2);
    assert_eq!(
        decide(&heal, &target("a", 1), SyncCode::OutOfSync, &recent, now),
        AutoSync::Later(Duration::from_secs(3))
    );
    let old = synced(&heal, "a", OperationPhase::Succeeded, now, 600);
    let paused = auto_sync_decision(&heal, &target("a", 1), SyncCode::OutOfSync, &old, true, TIMEOUT, now);
    assert!(matches!(paused, AutoSync::Blocked(m) if m.contains("berth.selfHeal.paused")));
    let moved = auto_sync_decision(&heal, &target("b", 1), SyncCode::OutOfSync, &old, true, TIMEOUT, now);
    assert_eq!(moved, AutoSync::Now { self_heal: false }, "the pause holds drift, not new commits");
}

#[test]
fn finishing_an_operation_records_its_phase_message_and_time() {
    let state = OperationState {
        operation: Operation::default(),
        phase: OperationPhase::Running.to_string(),
        message: Some("waiting for wave 1".into()),
        sync_result: Some(SyncOperationResult { revision: "a".into(), ..Default::default() }),
        started_at: now(),
        finished_at: None,
        retry_count: None,
    };
    let done = finish(state, OperationPhase::Failed, "Operation terminated".into(), None);
    assert_eq!(done.phase, "Failed");
    assert_eq!(done.message.as_deref(), Some("Operation terminated"));
    assert!(done.finished_at.is_some());
    assert_eq!(done.sync_result.map(|r| r.revision).as_deref(), Some("a"), "the result so far is kept");
}

fn sync_op(json: serde_json::Value) -> SyncOperation {
    serde_json::from_value(json).unwrap()
}

fn opts(list: &[&str]) -> Vec<String> {
    list.iter().map(|o| o.to_string()).collect()
}

#[test]
fn sync_options_read_as_argo_cd_reads_them() {
    let mut app = app(serde_json::json!({}));
    app.spec.sync_policy.as_mut().unwrap().managed_namespace_metadata =
        Some(serde_json::from_value(serde_json::json!({"labels": {"team": "web"}})).unwrap());
    let t = target("a", 1);
    let options =
        opts(&["CreateNamespace=true", "PruneLast=true", "PrunePropagationPolicy=orphan", " Replace=true "]);
    let o = engine_options(&app, &sync_op(serde_json::json!({"prune": true})), &options, &t, |_| None);
    assert!(o.prune && o.prune_last && o.replace && !o.force && !o.dry_run);
    assert_eq!(o.prune_propagation, Some(PropagationPolicy::Orphan));
    let ns = o.create_namespace.expect("CreateNamespace=true");
    assert_eq!(ns.name, "web");
    assert_eq!(ns.labels.get("team").and_then(|v| v.as_str()), Some("web"));
    let plain = engine_options(&app, &sync_op(serde_json::json!({})), &[], &t, |_| None);
    assert!(!plain.prune && plain.create_namespace.is_none() && plain.only.is_none());
    assert_eq!(plain.prune_propagation, Some(PropagationPolicy::Foreground), "Argo CD's default");
    assert!(!plain.prune_confirmed);
}

#[test]
fn a_later_option_wins_and_the_deletion_approval_is_an_annotation() {
    let mut app = app(serde_json::json!({}));
    let t = target("a", 0);
    let options = opts(&["PrunePropagationPolicy=orphan", "PrunePropagationPolicy=background"]);
    let o = engine_options(&app, &sync_op(serde_json::json!({})), &options, &t, |_| None);
    assert_eq!(o.prune_propagation, Some(PropagationPolicy::Background), "the operation's option comes last");
    app.metadata.annotations = Some([(annotations::DELETION_APPROVED.to_string(), String::new())].into());
    assert!(engine_options(&app, &sync_op(serde_json::json!({})), &[], &t, |_| None).prune_confirmed);
}

#[test]
fn a_partial_sync_names_the_rendered_object_and_apply_out_of_sync_only_skips_verified_ones() {
    let app = app(serde_json::json!({}));
    let t = target("a", 2);
    let op = sync_op(serde_json::json!({"resources": [{"kind": "ConfigMap", "name": "cm-1"},
        {"group": "apps", "kind": "Deployment", "name": "gone", "namespace": "x"}]}));
    let o = engine_options(&app, &op, &opts(&["ApplyOutOfSyncOnly=true"]), &t, |d| {
        (d.key.name == "cm-0").then_some(true)
    });
    let only = o.only.expect("a resource subset");
    assert!(
        only.contains(&ResourceKey::new("", "ConfigMap", "web", "cm-1")),
        "the namespace comes from the render"
    );
    assert!(only.contains(&ResourceKey::new("apps", "Deployment", "x", "gone")));
    assert_eq!(only.len(), 2);
    assert_eq!(o.skip.iter().map(|k| k.name.as_str()).collect::<Vec<_>>(), ["cm-0"]);
    assert!(o.verified.contains(&ResourceKey::new("", "ConfigMap", "web", "cm-0")));
    assert!(!o.verified.contains(&ResourceKey::new("", "ConfigMap", "web", "cm-1")), "never compared");
    let all = engine_options(&app, &op, &[], &t, |_| Some(true));
    assert!(all.skip.is_empty(), "without ApplyOutOfSyncOnly nothing is skipped");
}
