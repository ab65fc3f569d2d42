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

/// No sync window applies.
fn open() -> WindowState {
    WindowState { can_sync_auto: true, can_sync_manual: true, ..Default::default() }
}

/// A deny window (index 0, every minute for an hour) is active; with `manual_sync`, manual syncs pass.
fn frozen(manual_sync: bool) -> WindowState {
    let window: berth_api::project::SyncWindow = serde_json::from_value(serde_json::json!({
        "kind": "deny", "schedule": "* * * * *", "duration": "1h", "applications": ["*"], "manualSync": manual_sync
    }))
    .unwrap();
    crate::windows::state(&[window], &app(serde_json::json!({})), Timestamp::now())
}

fn decide(
    app: &Application,
    target: &Target,
    code: SyncCode,
    status: &ApplicationStatus,
    now: Timestamp,
) -> AutoSync {
    // The fixed self-heal timeout (the backoff turned off) paces these; the backoff has tests of its own.
    let fixed = SelfHealBackoff { timeout: Duration::ZERO, ..SelfHealBackoff::default() };
    auto_sync_decision(app, target, code, status, &open(), false, TIMEOUT, &fixed, now)
}

#[test]
fn a_new_revision_that_is_out_of_sync_syncs_at_once() {
    let app = app(serde_json::json!({}));
    let now = Timestamp::now();
    let status = synced(&app, "old", OperationPhase::Succeeded, now, 1);
    assert_eq!(
        decide(&app, &target("new", 1), SyncCode::OutOfSync, &status, now),
        AutoSync::Now { self_heal: false, attempts: 0 }
    );
    assert_eq!(
        decide(&app, &target("new", 1), SyncCode::OutOfSync, &ApplicationStatus::default(), now),
        AutoSync::Now { self_heal: false, attempts: 0 },
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
        AutoSync::Now { self_heal: false, attempts: 0 }
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
        AutoSync::Now { self_heal: true, attempts: 1 }
    );
}

#[test]
fn a_change_of_the_spec_source_at_the_same_revision_is_a_new_target() {
    let now = Timestamp::now();
    // No self-heal: only a new target syncs (an image updater writing a parameter, `argocd app set -p`).
    let plain = app(serde_json::json!({}));
    let status = synced(&plain, "a", OperationPhase::Succeeded, now, 60);
    assert_eq!(decide(&plain, &target("a", 1), SyncCode::OutOfSync, &status, now), AutoSync::No);
    let mut changed = plain.clone();
    changed.spec.source.as_mut().unwrap().path = Some("web-v2".into());
    assert_eq!(
        decide(&changed, &target("a", 1), SyncCode::OutOfSync, &status, now),
        AutoSync::Now { self_heal: false, attempts: 0 }
    );
    // The same for an app of several sources, recorded as `sources`.
    let mut multi = plain.clone();
    let source = multi.spec.source.take().unwrap();
    multi.spec.sources = vec![source.clone(), ApplicationSource { path: Some("db".into()), ..source }];
    let mut status = synced(&multi, "a", OperationPhase::Succeeded, now, 60);
    let result = status.operation_state.as_mut().unwrap().sync_result.as_mut().unwrap();
    result.sources = multi.spec.sources.clone();
    assert_eq!(decide(&multi, &target("a", 1), SyncCode::OutOfSync, &status, now), AutoSync::No);
    let mut changed = multi.clone();
    changed.spec.sources[1].path = Some("db-v2".into());
    assert_eq!(
        decide(&changed, &target("a", 1), SyncCode::OutOfSync, &status, now),
        AutoSync::Now { self_heal: false, attempts: 0 }
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
            AutoSync::Now { self_heal: false, attempts: 0 },
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
    let paused = auto_sync_decision(
        &heal,
        &target("a", 1),
        SyncCode::OutOfSync,
        &old,
        &open(),
        true,
        TIMEOUT,
        &SelfHealBackoff::default(),
        now,
    );
    assert!(matches!(paused, AutoSync::Blocked(m) if m.contains("berth.selfHeal.paused")));
    let moved = auto_sync_decision(
        &heal,
        &target("b", 1),
        SyncCode::OutOfSync,
        &old,
        &open(),
        true,
        TIMEOUT,
        &SelfHealBackoff::default(),
        now,
    );
    assert_eq!(
        moved,
        AutoSync::Now { self_heal: false, attempts: 0 },
        "the pause holds drift, not new commits"
    );
}

/// The last operation: a self-heal (`attempts` done) of revision "a", finished `ago` seconds before `now`.
fn healed(app: &Application, attempts: Option<i64>, now: Timestamp, ago: i64) -> ApplicationStatus {
    let mut status = synced(app, "a", OperationPhase::Succeeded, now, ago);
    let state = status.operation_state.as_mut().unwrap();
    state.operation.sync = Some(SyncOperation { self_heal_attempts_count: attempts, ..Default::default() });
    status
}

fn decide_backoff(app: &Application, status: &ApplicationStatus, now: Timestamp) -> AutoSync {
    let backoff = SelfHealBackoff::default();
    let target = target("a", 1);
    auto_sync_decision(
        app,
        &target,
        SyncCode::OutOfSync,
        status,
        &open(),
        false,
        Duration::ZERO,
        &backoff,
        now,
    )
}

#[test]
fn the_first_self_heal_of_a_revision_runs_at_once_and_later_ones_back_off() {
    let now = Timestamp::now();
    let heal = app(serde_json::json!({"selfHeal": true}));
    // Right after the sync of a new revision (no count): at once, as attempt 1.
    assert_eq!(
        decide_backoff(&heal, &healed(&heal, None, now, 0), now),
        AutoSync::Now { self_heal: true, attempts: 1 }
    );
    // After one self-heal: 2 s; after two: 6 s; after three: 18 s, from the last sync's end.
    assert_eq!(
        decide_backoff(&heal, &healed(&heal, Some(1), now, 0), now),
        AutoSync::Later(Duration::from_secs(2))
    );
    assert_eq!(
        decide_backoff(&heal, &healed(&heal, Some(2), now, 1), now),
        AutoSync::Later(Duration::from_secs(5))
    );
    assert_eq!(
        decide_backoff(&heal, &healed(&heal, Some(3), now, 0), now),
        AutoSync::Later(Duration::from_secs(18))
    );
    assert_eq!(
        decide_backoff(&heal, &healed(&heal, Some(2), now, 6), now),
        AutoSync::Now { self_heal: true, attempts: 3 }
    );
    // Never more than the cap.
    assert_eq!(
        decide_backoff(&heal, &healed(&heal, Some(40), now, 0), now),
        AutoSync::Later(Duration::from_secs(300))
    );
}

#[test]
fn the_self_heal_count_starts_again_after_the_cooldown_and_with_a_new_revision() {
    let now = Timestamp::now();
    let heal = app(serde_json::json!({"selfHeal": true}));
    // Synced for the cooldown (330 s) past the last self-heal's own wait (the cap, 300 s): from zero again.
    assert_eq!(
        decide_backoff(&heal, &healed(&heal, Some(9), now, 631), now),
        AutoSync::Now { self_heal: true, attempts: 1 }
    );
    // A fight paced at the cap whose pass runs a little late goes on counting.
    assert_eq!(
        decide_backoff(&heal, &healed(&heal, Some(9), now, 331), now),
        AutoSync::Now { self_heal: true, attempts: 10 }
    );
    assert_eq!(
        decide_backoff(&heal, &healed(&heal, Some(1), now, 333), now),
        AutoSync::Now { self_heal: true, attempts: 1 },
        "after one self-heal (2 s wait), 332 s synced start again"
    );
    let status = healed(&heal, Some(9), now, 0);
    let backoff = SelfHealBackoff::default();
    let moved = auto_sync_decision(
        &heal,
        &target("b", 1),
        SyncCode::OutOfSync,
        &status,
        &open(),
        false,
        Duration::ZERO,
        &backoff,
        now,
    );
    assert_eq!(moved, AutoSync::Now { self_heal: false, attempts: 0 });
}

#[test]
fn a_zero_backoff_timeout_leaves_the_fixed_self_heal_timeout_in_charge() {
    let now = Timestamp::now();
    let heal = app(serde_json::json!({"selfHeal": true}));
    let state = healed(&heal, Some(5), now, 1);
    let last = state.operation_state.as_ref().unwrap();
    let off = SelfHealBackoff { timeout: Duration::ZERO, ..SelfHealBackoff::default() };
    assert_eq!(
        self_heal_pace(last, now, TIMEOUT, &off),
        SelfHealPace { wait: Duration::from_secs(4), attempts: 6 }
    );
    // With the backoff on (Argo CD's default), the fixed timeout is not used: 2 s × 3^4, at most 300 s.
    assert_eq!(
        self_heal_pace(last, now, TIMEOUT, &SelfHealBackoff::default()),
        SelfHealPace { wait: Duration::from_secs(161), attempts: 6 }
    );
}

proptest::proptest! {
    #[test]
    fn the_self_heal_wait_never_exceeds_the_cap_whatever_the_count(
        count in proptest::option::of(proptest::num::i64::ANY),
        ago in -1_000_000i64..1_000_000,
        timeout in 0u64..1_000,
        factor in 0u32..100,
        cap in 0u64..100_000,
    ) {
        let now = Timestamp::now();
        let heal = app(serde_json::json!({"selfHeal": true}));
        let status = healed(&heal, count, now, ago);
        let backoff = SelfHealBackoff {
            timeout: Duration::from_secs(timeout),
            factor,
            cap: Duration::from_secs(cap),
            cooldown: Duration::from_secs(330),
        };
        let pace = self_heal_pace(status.operation_state.as_ref().unwrap(), now, Duration::ZERO, &backoff);
        proptest::prop_assert!(pace.wait <= backoff.cap);
        proptest::prop_assert!(pace.attempts >= 1);
    }
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
        (d.key.name == "cm-0").then(|| (true, "7".to_string()))
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
    let all = engine_options(&app, &op, &[], &t, |_| Some((true, "7".to_string())));
    assert!(all.skip.is_empty(), "without ApplyOutOfSyncOnly nothing is skipped");
    assert_eq!(all.in_sync.len(), t.objects.len(), "but what is in sync at its version is not written");
    assert!(all.in_sync.values().all(|rv| rv == "7"));
}

#[test]
fn an_active_deny_window_blocks_auto_sync_and_self_heal_naming_the_window() {
    let now = Timestamp::now();
    let auto = app(serde_json::json!({}));
    let none = ApplicationStatus::default();
    let blocked = auto_sync_decision(
        &auto,
        &target("a", 1),
        SyncCode::OutOfSync,
        &none,
        &frozen(true),
        false,
        TIMEOUT,
        &SelfHealBackoff::default(),
        now,
    );
    let AutoSync::Blocked(message) = blocked else { panic!("{blocked:?}") };
    assert_eq!(
        message,
        "Skipping auto-sync: blocked by sync window: deny window 0 ('* * * * *' for 1h, UTC) is active; \
         manual syncs are allowed"
    );
    let heal = app(serde_json::json!({"selfHeal": true}));
    let drifted = synced(&heal, "a", OperationPhase::Succeeded, now, 600);
    let healing = auto_sync_decision(
        &heal,
        &target("a", 1),
        SyncCode::OutOfSync,
        &drifted,
        &frozen(false),
        false,
        TIMEOUT,
        &SelfHealBackoff::default(),
        now,
    );
    assert!(
        matches!(healing, AutoSync::Blocked(m) if m.contains("deny window 0")),
        "self-heal is an auto-sync"
    );
    let waiting = synced(&heal, "a", OperationPhase::Succeeded, now, 2);
    let later = auto_sync_decision(
        &heal,
        &target("a", 1),
        SyncCode::OutOfSync,
        &waiting,
        &frozen(false),
        false,
        TIMEOUT,
        &SelfHealBackoff::default(),
        now,
    );
    assert!(matches!(later, AutoSync::Blocked(_)), "{later:?}");
}

#[test]
fn a_window_says_nothing_when_no_sync_is_due() {
    let now = Timestamp::now();
    let auto = app(serde_json::json!({}));
    let none = ApplicationStatus::default();
    let decide = |code| {
        auto_sync_decision(
            &auto,
            &target("a", 1),
            code,
            &none,
            &frozen(false),
            false,
            TIMEOUT,
            &SelfHealBackoff::default(),
            now,
        )
    };
    assert_eq!(decide(SyncCode::Synced), AutoSync::No, "no condition while in sync");
    let mut manual = auto.clone();
    manual.spec.sync_policy = None;
    let decision = auto_sync_decision(
        &manual,
        &target("a", 1),
        SyncCode::OutOfSync,
        &none,
        &frozen(false),
        false,
        TIMEOUT,
        &SelfHealBackoff::default(),
        now,
    );
    assert_eq!(decision, AutoSync::No);
}

fn requested(automated: bool) -> Operation {
    Operation {
        sync: Some(SyncOperation::default()),
        initiated_by: Some(berth_api::application::OperationInitiator {
            username: (!automated).then(|| "admin".into()),
            automated: automated.then_some(true),
        }),
        ..Default::default()
    }
}

fn running(op: &Operation, phase: OperationPhase) -> OperationState {
    OperationState {
        operation: op.clone(),
        phase: phase.to_string(),
        message: Some("waiting for wave 1".into()),
        sync_result: Some(SyncOperationResult { revision: "a".into(), ..Default::default() }),
        started_at: now(),
        finished_at: None,
        retry_count: None,
    }
}

#[test]
fn a_new_sync_in_a_deny_window_is_refused_before_anything_is_applied() {
    let op = requested(false);
    let WindowGate::Refused(state) = window_gate(&op, None, &frozen(false)) else { panic!("not refused") };
    assert_eq!(state.phase, "Failed");
    assert_eq!(
        state.message.as_deref(),
        Some("cannot sync: blocked by sync window: deny window 0 ('* * * * *' for 1h, UTC) is active")
    );
    assert!(state.sync_result.is_none() && state.finished_at.is_some());
    assert_eq!(state.operation, op, "the refused operation is recorded");
    assert_eq!(window_gate(&op, None, &open()), WindowGate::Open);
}

#[test]
fn manual_sync_lets_a_person_through_a_deny_window_but_not_auto_sync() {
    assert_eq!(window_gate(&requested(false), None, &frozen(true)), WindowGate::Open);
    let auto = requested(true);
    assert!(matches!(window_gate(&auto, None, &frozen(true)), WindowGate::Refused(_)));
    let untold = Operation { sync: Some(SyncOperation::default()), ..Default::default() };
    assert_eq!(
        window_gate(&untold, None, &frozen(true)),
        WindowGate::Open,
        "no initiator: manual, as in Argo CD"
    );
}

#[test]
fn a_sync_under_way_when_a_window_opens_is_held_running_and_terminate_goes_through() {
    let op = requested(true);
    let under_way = running(&op, OperationPhase::Running);
    let WindowGate::Held(held) = window_gate(&op, Some(&under_way), &frozen(true)) else {
        panic!("not held")
    };
    assert_eq!(held.phase, "Running", "it goes on once the window allows it");
    assert!(
        held.message
            .as_deref()
            .is_some_and(|m| m.starts_with("Sync operation blocked by sync window: deny window 0"))
    );
    assert_eq!(held.sync_result, under_way.sync_result, "what it did so far is kept");
    let mut retrying = under_way.clone();
    retrying.retry_count = Some(2);
    retrying.finished_at = Some(now());
    let WindowGate::Held(held) = window_gate(&op, Some(&retrying), &frozen(false)) else {
        panic!("retry not held")
    };
    assert_eq!(held.retry_count, Some(2), "a retry waits for the window too");
    let stopping = running(&op, OperationPhase::Terminating);
    assert_eq!(window_gate(&op, Some(&stopping), &frozen(false)), WindowGate::Open);
    assert_eq!(window_gate(&op, Some(&under_way), &open()), WindowGate::Open);
}

#[test]
fn a_sync_the_windows_let_start_goes_on_through_a_deny_window_with_sync_overrun_only() {
    let op = requested(true);
    let under_way = running(&op, OperationPhase::Running);
    let mut overrun = frozen(false);
    overrun.overrunning = Some(under_way.started_at.0);
    assert_eq!(window_gate(&op, Some(&under_way), &overrun), WindowGate::Open);
    let mut other = under_way.clone();
    other.started_at = Time(under_way.started_at.0 - std::time::Duration::from_secs(60));
    assert!(
        matches!(window_gate(&op, Some(&other), &overrun), WindowGate::Held(_)),
        "overrun covers only the sync the windows let start, matched by startedAt"
    );
    assert!(matches!(window_gate(&op, None, &overrun), WindowGate::Refused(_)), "a new sync is refused");
    assert!(matches!(window_gate(&op, Some(&under_way), &frozen(false)), WindowGate::Held(_)));
}

#[test]
fn the_apply_strategy_runs_no_hooks_and_its_force_forces() {
    let (app, t) = (app(serde_json::json!({})), target("a", 1));
    let apply = sync_op(serde_json::json!({"syncStrategy": {"apply": {"force": true}}}));
    let o = engine_options(&app, &apply, &[], &t, |_| None);
    assert!(o.no_hooks && o.force);
    let hook = sync_op(serde_json::json!({"syncStrategy": {"hook": {}}}));
    let o = engine_options(&app, &hook, &[], &t, |_| None);
    assert!(!o.no_hooks && !o.force, "the hook strategy (Argo CD's default) runs hooks");
}
