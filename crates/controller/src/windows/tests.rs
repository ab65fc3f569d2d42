use super::*;

fn ts(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn window(json: serde_json::Value) -> SyncWindow {
    serde_json::from_value(json).unwrap()
}

/// A window of `kind` on every application.
fn on_all(kind: &str, schedule: &str, duration: &str) -> SyncWindow {
    window(
        serde_json::json!({"kind": kind, "schedule": schedule, "duration": duration, "applications": ["*"]}),
    )
}

fn parsed(spec: &SyncWindow) -> Window {
    Window::parse(0, spec).unwrap_or_else(|e| panic!("{e}"))
}

fn active(spec: &SyncWindow, at: &str) -> bool {
    parsed(spec).is_active(ts(at))
}

fn app(name: &str, namespace: &str, server: Option<&str>, cluster: Option<&str>) -> Application {
    let mut destination = serde_json::json!({"namespace": namespace});
    if let Some(server) = server {
        destination["server"] = server.into();
    }
    if let Some(cluster) = cluster {
        destination["name"] = cluster.into();
    }
    serde_json::from_value(serde_json::json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application", "metadata": {"name": name},
        "spec": {"project": "default", "destination": destination,
                 "source": {"repoURL": "https://example.com/r.git", "path": "web"}}
    }))
    .unwrap()
}

fn web() -> Application {
    app("web", "web-prod", Some("https://kubernetes.default.svc"), None)
}

const NOON: &str = "2025-06-02T12:00:00Z";

#[test]
fn a_window_is_open_from_its_start_for_its_duration() {
    let w = on_all("deny", "0 22 * * *", "1h");
    assert!(!active(&w, "2025-06-02T21:59:59Z"));
    assert!(active(&w, "2025-06-02T22:00:00Z"), "its start is in it");
    assert!(active(&w, "2025-06-02T22:59:59Z"));
    assert!(!active(&w, "2025-06-02T23:00:00Z"), "its end is not");
    assert!(active(&on_all("deny", "* * * * *", "1h"), NOON), "every minute for an hour: always");
    assert!(!active(&on_all("deny", "* * * * *", "0s"), NOON), "no duration: never open");
    let half = on_all("deny", "0 9 * * *", "1h30m");
    assert!(active(&half, "2025-06-02T10:29:00Z"));
    assert!(!active(&half, "2025-06-02T10:30:00Z"));
}

#[test]
fn a_window_spanning_midnight_stays_open_into_the_next_day() {
    let w = on_all("deny", "0 23 * * *", "2h");
    assert!(active(&w, "2025-06-02T23:30:00Z"));
    assert!(active(&w, "2025-06-03T00:59:00Z"), "yesterday's start still counts");
    assert!(!active(&w, "2025-06-03T01:00:00Z"));
    // Friday 22:00 to Monday 06:00 (56h): open all Sunday.
    let weekend = on_all("deny", "0 22 * * fri", "56h");
    assert!(active(&weekend, "2025-06-08T12:00:00Z"), "Sunday");
    assert!(active(&weekend, "2025-06-09T05:59:00Z"), "Monday before six");
    assert!(!active(&weekend, "2025-06-09T06:00:00Z"));
    assert!(!active(&weekend, "2025-06-06T21:00:00Z"), "Friday before ten");
}

#[test]
fn a_duration_longer_than_the_period_keeps_the_window_open() {
    assert!(active(&on_all("deny", "0 * * * *", "3h"), "2025-06-02T12:30:00Z"));
    let weekly = on_all("deny", "0 0 * * mon", "192h");
    for day in 1..=14 {
        assert!(active(&weekly, &format!("2025-06-{day:02}T12:00:00Z")), "June {day}");
    }
    // A yearly window of 400 days is open even a year after its start.
    assert!(active(&on_all("deny", "0 0 1 1 *", "9600h"), "2026-01-20T00:00:00Z"));
}

#[test]
fn a_window_is_read_on_its_time_zones_clock() {
    let mut w = on_all("deny", "0 22 * * *", "1h");
    w.time_zone = Some("Europe/Amsterdam".into());
    assert!(active(&w, "2025-07-01T20:30:00Z"), "22:30 CEST");
    assert!(!active(&w, "2025-07-01T22:30:00Z"), "00:30 CEST");
    assert!(active(&w, "2025-01-15T21:30:00Z"), "22:30 CET");
    assert!(!active(&w, "2025-01-15T20:30:00Z"), "21:30 CET");
    w.time_zone = Some("America/Los_Angeles".into());
    assert!(active(&w, "2025-07-02T05:30:00Z"), "22:30 PDT");
    w.time_zone = None;
    assert!(active(&w, "2025-07-01T22:30:00Z"), "UTC by default");
    w.time_zone = Some("UTC".into());
    assert!(active(&w, "2025-07-01T22:30:00Z"));
    // A CRON_TZ prefix wins over timeZone.
    let mut w = on_all("deny", "CRON_TZ=Asia/Tokyo 0 9 * * *", "1h");
    w.time_zone = Some("Europe/Amsterdam".into());
    assert!(active(&w, "2025-07-01T00:30:00Z"), "09:30 JST");
}

#[test]
fn a_window_keeps_its_wall_clock_hours_across_dst_changes() {
    // 09:00 to 17:00 on Berlin's clock, the week of each change.
    let mut w = on_all("allow", "0 9 * * *", "8h");
    w.time_zone = Some("Europe/Berlin".into());
    assert!(active(&w, "2025-03-29T08:30:00Z"), "09:30 CET, the day before");
    assert!(!active(&w, "2025-03-31T15:30:00Z"), "17:30 CEST, the day after");
    assert!(active(&w, "2025-03-31T07:30:00Z"), "09:30 CEST");
    assert!(!active(&w, "2025-03-31T06:30:00Z"), "08:30 CEST");
    assert!(active(&w, "2025-10-27T15:30:00Z"), "16:30 CET");
    assert!(!active(&w, "2025-10-27T07:30:00Z"), "08:30 CET");
}

#[test]
fn a_start_the_clock_skips_opens_the_window_when_it_would_have_been() {
    // Berlin skips 02:00-03:00 on 2025-03-30: the 02:30 start is at 01:30 UTC (03:30 CEST).
    let mut w = on_all("deny", "30 2 * * *", "1h");
    w.time_zone = Some("Europe/Berlin".into());
    assert!(!active(&w, "2025-03-30T01:29:00Z"));
    assert!(active(&w, "2025-03-30T01:30:00Z"));
    assert!(active(&w, "2025-03-30T02:29:00Z"));
    assert!(!active(&w, "2025-03-30T02:30:00Z"));
}

#[test]
fn a_start_the_clock_passes_twice_opens_the_window_both_times() {
    // Berlin passes 02:00-03:00 twice on 2025-10-26 (00:00-01:00 UTC on CEST, 01:00-02:00 on CET).
    let mut w = on_all("deny", "30 2 * * *", "15m");
    w.time_zone = Some("Europe/Berlin".into());
    assert!(active(&w, "2025-10-26T00:40:00Z"), "02:40 CEST");
    assert!(!active(&w, "2025-10-26T01:00:00Z"), "02:00 CET");
    assert!(active(&w, "2025-10-26T01:40:00Z"), "02:40 CET");
    assert!(!active(&w, "2025-10-26T01:50:00Z"));
}

#[test]
fn day_of_month_and_day_of_week_either_open_the_window() {
    // The 13th or a Friday, all day.
    let w = on_all("deny", "0 0 13 * 5", "24h");
    assert!(active(&w, "2025-06-06T12:00:00Z"), "Friday the 6th");
    assert!(active(&w, "2025-08-13T12:00:00Z"), "Wednesday the 13th");
    assert!(!active(&w, "2025-06-05T12:00:00Z"), "Thursday the 5th");
}

#[test]
fn lists_ranges_and_steps_open_the_window_at_each_time_they_name() {
    let w = on_all("deny", "0,30 9-17/4 * * mon-fri", "10m");
    assert!(active(&w, "2025-06-02T09:05:00Z"), "Monday 09:00");
    assert!(active(&w, "2025-06-02T13:35:00Z"), "Monday 13:30");
    assert!(active(&w, "2025-06-06T17:31:00Z"), "Friday 17:30");
    assert!(!active(&w, "2025-06-02T11:05:00Z"), "11 is not in 9-17/4");
    assert!(!active(&w, "2025-06-07T09:05:00Z"), "Saturday");
}

#[test]
fn without_windows_every_sync_may_run() {
    let state = state(&[], &web(), ts(NOON));
    assert_eq!(state, WindowState { can_sync_auto: true, can_sync_manual: true, ..Default::default() });
    assert_eq!(state.refusal(true), None);
}

#[test]
fn an_active_deny_window_blocks_every_sync_and_is_named() {
    let windows = [on_all("deny", "0 23 * * *", "1h"), on_all("deny", "* * * * *", "1h")];
    let state = state(&windows, &web(), ts(NOON));
    assert_eq!((state.assigned.clone(), state.active.clone()), (vec![0, 1], vec![1]));
    assert!(!state.can_sync_auto && !state.can_sync_manual);
    assert_eq!(state.reason.as_deref(), Some("deny window 1 ('* * * * *' for 1h, UTC) is active"));
    assert_eq!(
        state.refusal(true).as_deref(),
        Some("cannot sync: blocked by sync window: deny window 1 ('* * * * *' for 1h, UTC) is active")
    );
}

#[test]
fn manual_sync_passes_a_deny_window_only_when_every_active_one_allows_it() {
    let mut lenient = on_all("deny", "* * * * *", "1h");
    lenient.manual_sync = Some(true);
    let state1 = state(std::slice::from_ref(&lenient), &web(), ts(NOON));
    assert!(!state1.can_sync_auto && state1.can_sync_manual);
    assert!(
        state1.reason.as_deref().is_some_and(|r| r.ends_with("; manual syncs are allowed")),
        "{state1:?}"
    );
    assert_eq!(state1.refusal(true), None);
    assert!(state1.refusal(false).is_some_and(|r| r.starts_with(BLOCKED)));
    let strict = on_all("deny", "*/1 * * * *", "2h");
    let both = state(&[lenient.clone(), strict], &web(), ts(NOON));
    assert!(!both.can_sync_manual, "one active deny window without manualSync holds");
    assert_eq!(
        both.reason.as_deref(),
        Some("deny windows 0 ('* * * * *' for 1h, UTC), 1 ('*/1 * * * *' for 2h, UTC) are active")
    );
    // An inactive strict one does not matter.
    let later = on_all("deny", "0 23 * * *", "1h");
    assert!(state(&[lenient, later], &web(), ts(NOON)).can_sync_manual);
}

#[test]
fn allow_windows_let_syncs_run_only_while_one_is_open() {
    let morning = on_all("allow", "0 8 * * *", "2h");
    let state1 = state(std::slice::from_ref(&morning), &web(), ts(NOON));
    assert!(!state1.can_sync_auto && !state1.can_sync_manual);
    assert_eq!(state1.reason.as_deref(), Some("outside allow window 0 ('0 8 * * *' for 2h, UTC)"));
    let now = state(std::slice::from_ref(&morning), &web(), ts("2025-06-02T09:00:00Z"));
    assert!(now.can_sync_auto && now.can_sync_manual);
    assert_eq!(now.active, [0]);
    // Another allow window open now is enough.
    let noon = on_all("allow", "0 12 * * *", "1h");
    assert!(state(&[morning, noon], &web(), ts(NOON)).can_sync_auto);
}

#[test]
fn manual_sync_passes_outside_allow_windows_only_when_every_one_allows_it() {
    let mut morning = on_all("allow", "0 8 * * *", "2h");
    morning.manual_sync = Some(true);
    let lenient = state(std::slice::from_ref(&morning), &web(), ts(NOON));
    assert!(!lenient.can_sync_auto && lenient.can_sync_manual);
    let evening = on_all("allow", "0 20 * * *", "2h");
    let mixed = state(&[morning, evening], &web(), ts(NOON));
    assert!(!mixed.can_sync_manual, "an allow window without manualSync holds manual syncs too");
}

#[test]
fn deny_wins_over_allow_when_both_are_open() {
    let mut allow = on_all("allow", "* * * * *", "1h");
    allow.manual_sync = Some(true);
    let deny = on_all("deny", "0 12 * * *", "1h");
    let state = state(&[allow, deny], &web(), ts(NOON));
    assert_eq!(state.active, [0, 1]);
    assert!(!state.can_sync_auto && !state.can_sync_manual);
    assert!(state.reason.as_deref().is_some_and(|r| r.starts_with("deny window 1")), "{state:?}");
}

#[test]
fn an_inactive_deny_window_alone_blocks_nothing() {
    let state = state(&[on_all("deny", "0 23 * * *", "1h")], &web(), ts(NOON));
    assert!(state.can_sync_auto && state.can_sync_manual);
    assert_eq!((state.assigned, state.active), (vec![0], vec![]));
}

#[test]
fn a_window_that_does_not_parse_blocks_the_apps_it_selects_and_names_its_field() {
    let mut broken = on_all("deny", "61 * * * *", "1h");
    broken.manual_sync = Some(true);
    let windows = [on_all("allow", "* * * * *", "1h"), broken];
    let state = state(&windows, &web(), ts(NOON));
    assert!(!state.can_sync_auto && !state.can_sync_manual, "fails closed, manualSync or not");
    let reason = state.reason.unwrap();
    assert!(
        reason.starts_with("sync window 1: schedule: minute field '61': 61 is above the maximum 59"),
        "{reason}"
    );
    // It blocks only the apps it selects.
    let mut elsewhere = on_all("deny", "61 * * * *", "1h");
    elsewhere.applications = vec!["other".into()];
    assert!(super::state(&[elsewhere], &web(), ts(NOON)).can_sync_auto);
}

#[test]
fn each_field_that_does_not_parse_is_named() {
    let error = |json: serde_json::Value| Window::parse(3, &window(json)).unwrap_err();
    let base =
        serde_json::json!({"kind": "deny", "schedule": "* * * * *", "duration": "1h", "applications": ["*"]});
    let with = |key: &str, value: serde_json::Value| {
        let mut w = base.clone();
        w[key] = value;
        w
    };
    let e = error(with("kind", "block".into()));
    assert_eq!((e.index, e.field), (3, "kind"));
    assert_eq!(e.to_string(), "sync window 3: kind: 'block' is neither allow nor deny");
    assert_eq!(error(with("kind", serde_json::Value::Null)).field, "kind");
    assert_eq!(error(with("schedule", "@daily".into())).field, "schedule");
    assert_eq!(error(with("schedule", serde_json::Value::Null)).field, "schedule");
    assert_eq!(error(with("schedule", "CRON_TZ=Mars/Olympus 0 0 * * *".into())).field, "schedule");
    let e = error(with("duration", "1d".into()));
    assert_eq!(e.field, "duration");
    assert!(e.message.contains("unknown unit 'd'"), "{e}");
    assert!(error(with("duration", "-1h".into())).message.contains("negative"));
    let e = error(with("timeZone", "Europe/Atlantis".into()));
    assert_eq!(
        e.to_string(),
        "sync window 3: timeZone: unknown time zone 'Europe/Atlantis' (use an IANA name)"
    );
}

#[test]
fn windows_select_by_name_namespace_or_cluster_with_globs() {
    let select = |json: serde_json::Value, app: &Application| {
        let mut json = json;
        json["kind"] = "deny".into();
        selects(&window(json), app)
    };
    let web = web();
    assert!(select(serde_json::json!({"applications": ["we?"]}), &web));
    assert!(select(serde_json::json!({"applications": ["api", "w*"]}), &web));
    assert!(!select(serde_json::json!({"applications": ["api"]}), &web));
    assert!(select(serde_json::json!({"namespaces": ["*-prod"]}), &web));
    assert!(select(serde_json::json!({"namespaces": ["web-{dev,prod}"]}), &web));
    assert!(!select(serde_json::json!({"namespaces": ["web-dev"]}), &web));
    assert!(select(serde_json::json!({"clusters": ["https://kubernetes.default.svc"]}), &web));
    assert!(select(serde_json::json!({"clusters": ["https://*"]}), &web), "* crosses slashes");
    assert!(!select(serde_json::json!({"clusters": ["in-cluster"]}), &web));
    let by_name = app("web", "web-prod", None, Some("in-cluster"));
    assert!(select(serde_json::json!({"clusters": ["in-cluster"]}), &by_name), "by destination name");
    assert!(!select(serde_json::json!({"clusters": [""]}), &by_name), "an empty server never matches");
    // Any list is enough by default.
    assert!(select(serde_json::json!({"applications": ["api"], "namespaces": ["web-prod"]}), &web));
    assert!(!select(serde_json::json!({}), &web), "a window without lists selects nothing");
}

#[test]
fn with_the_and_operator_every_list_given_must_select() {
    let select = |json: serde_json::Value| {
        let mut json = json;
        json["kind"] = "deny".into();
        json["andOperator"] = true.into();
        selects(&window(json), &web())
    };
    assert!(select(serde_json::json!({"applications": ["web"], "namespaces": ["*-prod"]})));
    assert!(!select(serde_json::json!({"applications": ["web"], "namespaces": ["*-dev"]})));
    assert!(select(serde_json::json!({"applications": ["web"]})), "a list not given does not count");
    assert!(!select(
        serde_json::json!({"applications": ["web"], "namespaces": ["*-prod"], "clusters": ["other"]})
    ));
    assert!(!select(serde_json::json!({})));
}

#[test]
fn a_window_that_does_not_select_the_app_is_not_assigned() {
    let mut other = on_all("deny", "* * * * *", "1h");
    other.applications = vec!["api".into()];
    let state = state(&[other], &web(), ts(NOON));
    assert!(state.assigned.is_empty() && state.can_sync_auto);
}

#[test]
fn a_project_is_validated_as_argo_cd_validates_it() {
    assert_eq!(validate(&[on_all("deny", "0 22 * * *", "1h"), on_all("allow", "0 22 * * *", "1h")]), Ok(()));
    let e = validate(&[on_all("deny", "0 22 * * *", "1h"), on_all("deny", "0 22 * * *", "1h")]).unwrap_err();
    assert_eq!(e.index, 1);
    assert!(e.message.contains("already exists"), "{e}");
    let mut unselective = on_all("deny", "0 22 * * *", "1h");
    unselective.applications.clear();
    let e = validate(&[unselective]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "sync window 0: applications: one of applications, namespaces or clusters is required"
    );
    let mut long = on_all("deny", "0 22 * * *", "1h");
    long.description = Some("x".repeat(256));
    assert_eq!(validate(&[long]).unwrap_err().field, "description");
    let e = validate(&[on_all("deny", "0 22 * * *", "1h"), on_all("deny", "0 25 * * *", "1h")]).unwrap_err();
    assert_eq!((e.index, e.field), (1, "schedule"));
}

// syncOverrun

/// A window of `kind` on every application, with `syncOverrun` as given.
fn overrun(kind: &str, schedule: &str, duration: &str, sync_overrun: bool) -> SyncWindow {
    SyncWindow { sync_overrun: Some(sync_overrun), ..on_all(kind, schedule, duration) }
}

/// 09:00–17:00 and 16:00–18:00 UTC each day.
fn allow_day(sync_overrun: bool) -> SyncWindow {
    overrun("allow", "0 9 * * *", "8h", sync_overrun)
}

fn deny_evening(sync_overrun: bool) -> SyncWindow {
    overrun("deny", "0 16 * * *", "2h", sync_overrun)
}

/// An automatic sync that started at 15:00, asked at `now` whether it may take its next step.
fn goes_on(windows: &[SyncWindow], now: &str) -> bool {
    may_run_on(windows, &web(), false, ts("2025-06-02T15:00:00Z"), ts(now))
}

const IN_BOTH: &str = "2025-06-02T16:30:00Z";
const AFTER_ALLOW: &str = "2025-06-02T17:30:00Z";

#[test]
fn argo_cds_documented_overrun_transitions_hold() {
    let (yes, no) = (true, false);
    // No window, then a deny window opens.
    assert!(goes_on(&[deny_evening(yes)], IN_BOTH), "deny with overrun: it goes on");
    assert!(!goes_on(&[deny_evening(no)], IN_BOTH), "deny without overrun: held");
    // In an allow window, then a deny window opens.
    assert!(goes_on(&[allow_day(yes), deny_evening(yes)], IN_BOTH));
    assert!(!goes_on(&[allow_day(yes), deny_evening(no)], IN_BOTH), "the deny window decides");
    assert!(goes_on(&[allow_day(no), deny_evening(yes)], IN_BOTH), "it was allowed when it started");
    assert!(!goes_on(&[allow_day(no), deny_evening(no)], IN_BOTH));
    // The allow window ends.
    assert!(goes_on(&[allow_day(yes)], AFTER_ALLOW));
    assert!(!goes_on(&[allow_day(no)], AFTER_ALLOW));
    let also_allow = |sync_overrun| overrun("allow", "0 10 * * *", "6h", sync_overrun);
    assert!(goes_on(&[allow_day(yes), also_allow(yes)], AFTER_ALLOW), "every allow window has it");
    assert!(!goes_on(&[allow_day(yes), also_allow(no)], AFTER_ALLOW), "one allow window lacks it");
}

#[test]
fn overrun_never_lets_a_new_sync_start() {
    for (windows, now) in [
        (vec![deny_evening(true)], IN_BOTH),
        (vec![allow_day(true), deny_evening(true)], IN_BOTH),
        (vec![allow_day(true)], AFTER_ALLOW),
    ] {
        let state = state(&windows, &web(), ts(now));
        assert!(!state.can_sync_auto && !state.can_sync_manual, "{windows:?} at {now}");
        assert_eq!(state.overrunning, None, "no sync is under way");
    }
}

#[test]
fn only_a_sync_the_windows_let_start_overruns() {
    let (allow, deny) = (allow_day(true), deny_evening(true));
    let before_allow = ts("2025-06-02T08:00:00Z");
    assert!(!may_run_on(&[allow], &web(), false, before_allow, ts(AFTER_ALLOW)));
    let in_deny = ts("2025-06-02T16:10:00Z");
    let deny = std::slice::from_ref(&deny);
    assert!(!may_run_on(deny, &web(), false, in_deny, ts(IN_BOTH)), "it started in the freeze");
    let before_deny = ts("2025-06-02T15:00:00Z");
    assert!(may_run_on(deny, &web(), true, before_deny, ts(IN_BOTH)), "a person's sync overruns too");
    // A window that does not parse fails closed for a sync under way too.
    let broken = overrun("deny", "0 25 * * *", "1h", true);
    assert!(!may_run_on(&[deny[0].clone(), broken], &web(), false, before_deny, ts(IN_BOTH)));
}

/// `web` with an operation in its status: `phase`, started at `started`, by auto-sync when `automated`.
fn web_syncing(phase: &str, started: &str, automated: bool) -> Application {
    let mut app = serde_json::to_value(web()).unwrap();
    app["status"] = serde_json::json!({"operationState": {
        "operation": {"sync": {}, "initiatedBy": {"automated": automated}},
        "phase": phase, "startedAt": started}});
    serde_json::from_value(app).unwrap()
}

fn running_of(app: &Application) -> &OperationState {
    app.status.as_ref().and_then(|s| s.operation_state.as_ref()).unwrap()
}

#[test]
fn the_sync_under_way_in_the_status_runs_on_and_no_other() {
    let windows = [allow_day(true), deny_evening(true)];
    let app = web_syncing("Running", "2025-06-02T15:00:00Z", true);
    let state = state(&windows, &app, ts(IN_BOTH));
    assert!(!state.can_sync_auto, "a new sync is still refused");
    assert_eq!(state.overrunning, Some(ts("2025-06-02T15:00:00Z")));
    assert!(state.runs_on(running_of(&app)));
    let other = web_syncing("Running", "2025-06-02T15:05:00Z", true);
    assert!(!state.runs_on(running_of(&other)), "another operation is not the one judged");

    let held = state_of(&[allow_day(true), deny_evening(false)], &app, IN_BOTH);
    assert!(!held.runs_on(running_of(&app)), "a deny window without overrun holds it");
    let done = web_syncing("Succeeded", "2025-06-02T15:00:00Z", true);
    assert_eq!(state_of(&windows, &done, IN_BOTH).overrunning, None, "nothing is under way");
    let unblocked = state_of(&windows, &app, "2025-06-02T15:30:00Z");
    assert_eq!(unblocked.overrunning, None, "nothing blocks it: no overrun is needed");
}

#[test]
fn a_manual_sync_let_through_by_manual_sync_needs_no_overrun() {
    let deny = SyncWindow { manual_sync: Some(true), ..deny_evening(false) };
    let app = web_syncing("Running", "2025-06-02T15:00:00Z", false);
    let state = state(&[deny], &app, ts(IN_BOTH));
    assert_eq!(state.refusal(true), None);
    assert_eq!(state.overrunning, None);
}

fn state_of(windows: &[SyncWindow], app: &Application, now: &str) -> WindowState {
    state(windows, app, ts(now))
}

mod overrun_properties {
    use super::*;
    use proptest::prelude::*;

    /// A window on every application from a small set of schedules, kinds and flags.
    fn any_window() -> impl Strategy<Value = SyncWindow> {
        let schedules = vec!["0 9 * * *", "0 16 * * *", "30 * * * *", "0 0 * * 1", "*/20 * * * *"];
        let durations = vec!["10m", "1h", "2h", "8h"];
        (
            prop::sample::select(vec!["allow", "deny"]),
            prop::sample::select(schedules),
            prop::sample::select(durations),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(kind, schedule, duration, manual_sync, sync_overrun)| SyncWindow {
                manual_sync: Some(manual_sync),
                ..overrun(kind, schedule, duration, sync_overrun)
            })
    }

    /// A minute in the week from Monday 2025-06-02.
    fn any_time() -> impl Strategy<Value = Timestamp> {
        (0i64..7 * 24 * 60).prop_map(|minute| ts("2025-06-02T00:00:00Z") + SignedDuration::from_mins(minute))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn without_sync_overrun_a_sync_under_way_goes_on_exactly_when_a_new_one_could_start(
            windows in prop::collection::vec(any_window(), 0..4),
            manual in any::<bool>(), started in any_time(), later in 0i64..600,
        ) {
            let windows: Vec<SyncWindow> =
                windows.into_iter().map(|w| SyncWindow { sync_overrun: Some(false), ..w }).collect();
            let now = started + SignedDuration::from_mins(later);
            prop_assert_eq!(
                may_run_on(&windows, &web(), manual, started, now),
                state(&windows, &web(), now).can_sync(manual)
            );
        }

        #[test]
        fn overrun_only_widens_what_may_go_on_and_only_for_a_sync_allowed_at_its_start(
            windows in prop::collection::vec(any_window(), 0..4),
            manual in any::<bool>(), started in any_time(), later in 0i64..600,
        ) {
            let now = started + SignedDuration::from_mins(later);
            let goes_on = may_run_on(&windows, &web(), manual, started, now);
            let may_start_now = state(&windows, &web(), now).can_sync(manual);
            let might_start_then = state(&windows, &web(), started).can_sync(manual);
            prop_assert!(!may_start_now || goes_on, "what may start may go on");
            prop_assert!(goes_on == may_start_now || might_start_then, "overrun carries only an allowed start");
            let every_window_overruns: Vec<SyncWindow> =
                windows.iter().cloned().map(|w| SyncWindow { sync_overrun: Some(true), ..w }).collect();
            prop_assert_eq!(
                may_run_on(&every_window_overruns, &web(), manual, started, now),
                may_start_now || might_start_then,
                "with overrun everywhere, every sync allowed to start finishes"
            );
        }
    }
}
