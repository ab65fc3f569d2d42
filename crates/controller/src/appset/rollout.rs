//! Progressive sync (`strategy.type: RollingSync`): which generated Applications may sync now.
//!
//! Pure: the caller reads the set and its Applications, calls [`progress`], then writes what it returns
//! (the set's `status.applicationStatus`, its `RolloutProgressing` condition, an `operation` on each
//! Application in [`Rollout::to_sync`], a refresh on each in [`Rollout::refresh`]).
//!
//! Argo CD's model, kept here: each generated Application falls in the first step whose
//! `matchExpressions` all match its labels. Its entry in `status.applicationStatus` walks
//! `Waiting` (has changes to roll out) → `Pending` (the set asked for a sync) → `Progressing` (the sync
//! started) → `Healthy`. A step's Waiting Applications go Pending only once every Application of every
//! earlier step is Healthy, at most `maxUpdate` of the step in flight (Pending or Progressing) at once.
//! Automated sync is switched off on every generated Application ([`disable_automated_sync`]) so that
//! only the set starts syncs.
//!
//! ```
//! # use berth_controller::appset::rollout::step_of;
//! # use berth_api::applicationset::{ApplicationMatchExpression, ApplicationSetRolloutStep};
//! let step = |env: &str| ApplicationSetRolloutStep {
//!     match_expressions: vec![ApplicationMatchExpression {
//!         key: "env".into(), operator: "In".into(), values: vec![env.into()],
//!     }],
//!     max_update: None,
//! };
//! let labels = [("env".to_string(), "prod".to_string())].into();
//! assert_eq!(step_of(&labels, &[step("staging"), step("prod")]), Some(1));
//! ```

use std::collections::BTreeMap;

use berth_api::application::{Info, Operation, OperationInitiator, RetryStrategy, SyncOperation};
use berth_api::applicationset::{
    ApplicationSetApplicationStatus, ApplicationSetCondition, ApplicationSetRolloutStep,
};
use berth_api::codes::{ConditionType, OperationPhase, SyncCode};
use berth_api::{Application, ApplicationSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// `spec.strategy.type` that turns progressive sync on.
const ROLLING_SYNC: &str = "RollingSync";
/// The condition this stage owns on the set.
pub use super::status::ROLLOUT_PROGRESSING;
/// Reason while a step is rolling out (Argo CD's name, though nothing needs to have been modified).
const REASON_MODIFIED: &str = "ApplicationSetModified";
const REASON_COMPLETE: &str = "ApplicationSetRolloutComplete";
/// The username a RollingSync operation is initiated by, as Argo CD writes it.
pub const INITIATOR: &str = "applicationset-controller";
/// Retries of a RollingSync operation when the Application names none (the auto-sync default).
const DEFAULT_RETRY_LIMIT: i64 = 5;
/// `step` of an Application no step selects.
const NO_STEP: &str = "-1";

const MSG_NEW: &str = "No Application status found, defaulting status to Waiting";
/// Every "pending changes" message starts so; the reconcile gate looks for it (as Argo CD's does).
const PENDING_CHANGES: &str = "Application has pending changes";
const MSG_REVISION_CHANGED: &str = "Application has pending changes, setting status to Waiting";
const MSG_DRIFTED: &str = "Application has pending changes (OutOfSync), setting status to Waiting";

/// Where one generated Application is in the rollout: `status.applicationStatus[].status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RolloutPhase {
    /// Has changes to roll out; waits for its step and for room under `maxUpdate`.
    Waiting,
    /// The set asked for a sync; waits for the sync to start.
    Pending,
    /// A sync started; waits for the Application to be Synced and Healthy.
    Progressing,
    /// Synced and Healthy at the revision rolled out.
    Healthy,
}

impl RolloutPhase {
    /// The string Argo CD writes.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Waiting => "Waiting",
            Self::Pending => "Pending",
            Self::Progressing => "Progressing",
            Self::Healthy => "Healthy",
        }
    }

    /// The phase a status string names; `None` outside the four.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Waiting, Self::Pending, Self::Progressing, Self::Healthy]
            .into_iter()
            .find(|p| p.as_str() == text)
    }

    /// Counts against the step's `maxUpdate`.
    fn in_flight(self) -> bool {
        matches!(self, Self::Pending | Self::Progressing)
    }
}

/// What one pass of the rollout decided; the caller writes it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rollout {
    /// The set's new `status.applicationStatus`: one entry per Application, in the order given.
    pub application_status: Vec<ApplicationSetApplicationStatus>,
    /// Applications to start a sync on now: write [`Rollout::operation_for`] as their `operation`.
    pub to_sync: Vec<String>,
    /// Applications to refresh (`argocd.argoproj.io/refresh: normal`) because they have not been
    /// compared since the last change was seen; no step advances until they have.
    pub refresh: Vec<String>,
    /// The set's `RolloutProgressing` condition; `None` when the set does not roll out (leave it be).
    pub condition: Option<ApplicationSetCondition>,
}

impl Rollout {
    /// The `operation` to write on `app` when it is in [`Rollout::to_sync`], pinned to the revisions
    /// its rollout entry recorded.
    pub fn operation_for(&self, app: &Application) -> Option<serde_json::Value> {
        let name = app.metadata.name.as_deref()?;
        if !self.to_sync.iter().any(|n| n == name) {
            return None;
        }
        let entry = self.application_status.iter().find(|s| s.application == name)?;
        Some(sync_operation(app, &entry.target_revisions))
    }
}

/// The set rolls its Applications out step by step: `type: RollingSync` with at least one step.
/// (Argo CD treats RollingSync without steps, or without `rollingSync`, as all at once.)
pub fn is_rolling(set: &ApplicationSet) -> bool {
    rolling_steps(set).is_some()
}

/// The steps of a set that rolls out.
fn rolling_steps(set: &ApplicationSet) -> Option<&[ApplicationSetRolloutStep]> {
    let strategy = set.spec.strategy.as_ref().filter(|s| s.type_.as_deref() == Some(ROLLING_SYNC))?;
    strategy.rolling_sync.as_ref().map(|r| &r.steps[..]).filter(|steps| !steps.is_empty())
}

/// Checks `spec.strategy`; the error names each wrong field (`spec.strategy.rollingSync.steps[1].maxUpdate`).
///
/// Steps are checked only under `type: RollingSync`, since Argo CD ignores them otherwise. A step without
/// `matchExpressions` is valid: it selects every Application no earlier step took, as in Argo CD.
pub fn validate(set: &ApplicationSet) -> Result<(), String> {
    let Some(strategy) = &set.spec.strategy else { return Ok(()) };
    let mut errors = Vec::new();
    match strategy.type_.as_deref() {
        None | Some("" | "AllAtOnce" | ROLLING_SYNC) => {}
        Some(other) => errors.push(format!("spec.strategy.type: {other:?} is not AllAtOnce or RollingSync")),
    }
    if strategy.type_.as_deref() == Some(ROLLING_SYNC) {
        let steps = strategy.rolling_sync.iter().flat_map(|r| &r.steps);
        for (i, step) in steps.enumerate() {
            let field = format!("spec.strategy.rollingSync.steps[{i}]");
            for (j, expression) in step.match_expressions.iter().enumerate() {
                if expression.key.is_empty() {
                    errors.push(format!("{field}.matchExpressions[{j}].key: must not be empty"));
                }
                if !matches!(expression.operator.as_str(), "In" | "NotIn") {
                    errors.push(format!(
                        "{field}.matchExpressions[{j}].operator: {:?} is not supported (In or NotIn)",
                        expression.operator
                    ));
                }
            }
            if let Some(Err(e)) = step.max_update.as_ref().map(MaxUpdate::check) {
                errors.push(format!("{field}.maxUpdate: {e}"));
            }
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(errors.join("; ")) }
}

/// The first step (0-based) whose `matchExpressions` all match `labels`; `None` when no step does.
///
/// Argo CD's rules: `In` needs the label with one of the values; `NotIn` matches a missing label or a
/// value outside the list; any other operator never matches; a step without expressions matches all.
pub fn step_of(labels: &BTreeMap<String, String>, steps: &[ApplicationSetRolloutStep]) -> Option<usize> {
    steps.iter().position(|step| {
        step.match_expressions.iter().all(|e| {
            let value = labels.get(&e.key);
            let listed = value.is_some_and(|v| e.values.contains(v));
            match e.operator.as_str() {
                "In" => listed,
                "NotIn" => !listed,
                _ => false,
            }
        })
    })
}

/// Switches automated sync off on the generated `apps` when `set` rolls out ([`is_rolling`]), so only
/// the set starts their syncs (Argo CD does the same, and warns). Keeps `automated` with
/// `enabled: false`, as Argo CD writes it, so [`sync_operation`] still reads its `prune`. Returns the
/// names of the Applications that had automated sync on, for the caller's warning.
pub fn disable_automated_sync(set: &ApplicationSet, apps: &mut [Application]) -> Vec<String> {
    if !is_rolling(set) {
        return Vec::new();
    }
    let mut disabled = Vec::new();
    for app in apps {
        let Some(automated) = app.spec.sync_policy.as_mut().and_then(|p| p.automated.as_mut()) else {
            continue;
        };
        if automated.enabled != Some(false) {
            disabled.push(app.metadata.name.clone().unwrap_or_default());
        }
        automated.enabled = Some(false);
    }
    disabled
}

/// The `operation` that starts a RollingSync sync of `app`, as Argo CD's ApplicationSet controller
/// writes it: initiated by `applicationset-controller` (automated), a `Reason` info, the sync pinned to
/// `revisions` (the rollout entry's `targetRevisions`, so a commit landing mid-rollout is not the one
/// synced), the Application's `syncOptions`, `prune` from its `automated.prune`, and its `retry` (five
/// retries when it names none). [`Rollout::operation_for`] calls it with the entry's revisions.
///
/// `prune` is read whether or not automated sync is enabled, so an Application already passed through
/// [`disable_automated_sync`] keeps it.
pub fn sync_operation(app: &Application, revisions: &[String]) -> serde_json::Value {
    let policy = app.spec.sync_policy.as_ref();
    let multi_source = !app.spec.sources.is_empty();
    let operation = Operation {
        sync: Some(SyncOperation {
            revision: if multi_source { None } else { revisions.first().cloned() },
            revisions: if multi_source { revisions.to_vec() } else { Vec::new() },
            prune: policy.and_then(|p| p.automated.as_ref()).and_then(|a| a.prune).filter(|prune| *prune),
            sync_options: policy.map(|p| p.sync_options.clone()).unwrap_or_default(),
            ..Default::default()
        }),
        initiated_by: Some(OperationInitiator { username: Some(INITIATOR.into()), automated: Some(true) }),
        info: vec![Info {
            name: "Reason".into(),
            value: "ApplicationSet RollingSync triggered a sync of this Application resource".into(),
        }],
        retry: Some(
            policy
                .and_then(|p| p.retry.clone())
                .unwrap_or(RetryStrategy { limit: Some(DEFAULT_RETRY_LIMIT), ..Default::default() }),
        ),
    };
    serde_json::to_value(operation).unwrap_or_default()
}

/// One pass of the rollout of `set` over `apps`, at `now`.
///
/// `apps` are the set's Applications with their status as read from the cluster (one not created yet
/// has no status: it holds its step back until the application controller has compared it).
/// `previous` is the set's current `status.applicationStatus`. A set that does not roll out gets an
/// empty rollout: Argo CD clears `applicationStatus` then.
pub fn progress(
    set: &ApplicationSet,
    apps: &[Application],
    previous: &[ApplicationSetApplicationStatus],
    now: Time,
) -> Rollout {
    let Some(steps) = rolling_steps(set) else { return Rollout::default() };

    let placed: Vec<Option<usize>> = apps
        .iter()
        .map(|app| step_of(app.metadata.labels.as_ref().unwrap_or(&BTreeMap::new()), steps))
        .collect();
    let mut statuses: Vec<ApplicationSetApplicationStatus> = apps
        .iter()
        .zip(&placed)
        .map(|(app, step)| {
            let name = app.metadata.name.as_deref().unwrap_or_default();
            let before = previous.iter().find(|s| s.application == name);
            advance(app, before, *step, &now)
        })
        .collect();

    let refresh = unreconciled(apps, previous, &statuses);
    let gated = refresh.is_some();
    let refresh = refresh.unwrap_or_default();

    // The first step not done yet; every step up to it may sync. Empty steps are done.
    let done = |s: usize| {
        apps.iter().zip(&placed).zip(&statuses).filter(|((_, step), _)| **step == Some(s)).all(
            |((app, _), status)| {
                status.status == RolloutPhase::Healthy.as_str() && live_healthy_and_synced(app)
            },
        )
    };
    let current = (0..steps.len()).find(|s| !done(*s)).unwrap_or(steps.len());

    let mut to_sync = Vec::new();
    if !gated {
        let mut in_flight = vec![0usize; steps.len()];
        let mut total = vec![0usize; steps.len()];
        for (step, status) in placed.iter().zip(&statuses) {
            if let Some(s) = step {
                total[*s] += 1;
                in_flight[*s] +=
                    usize::from(RolloutPhase::parse(&status.status).is_some_and(|p| p.in_flight()));
            }
        }
        for ((app, step), status) in apps.iter().zip(&placed).zip(statuses.iter_mut()) {
            let Some(s) = *step else { continue };
            if s > current {
                continue;
            }
            if status.status == RolloutPhase::Waiting.as_str()
                && sync_code(app) == Some(SyncCode::OutOfSync)
                && in_flight[s] < allowed_in_flight(&steps[s], total[s])
            {
                in_flight[s] += 1;
                set_phase(
                    status,
                    RolloutPhase::Pending,
                    "Application moved to Pending status, watching for the Application resource to start \
                     Progressing",
                    &now,
                );
            }
            if status.status == RolloutPhase::Pending.as_str()
                && app.operation.is_none()
                && !started_since(app, status.last_transition_time.as_ref())
            {
                to_sync.push(status.application.clone());
            }
        }
    }

    let condition = Some(progressing_condition(set, steps.len(), &statuses, &now));
    Rollout { application_status: statuses, to_sync, refresh, condition }
}

/// The entry of `app` after what its status shows now, before any step is advanced.
fn advance(
    app: &Application,
    before: Option<&ApplicationSetApplicationStatus>,
    step: Option<usize>,
    now: &Time,
) -> ApplicationSetApplicationStatus {
    let revisions = revisions_of(app);
    let step = step.map_or(NO_STEP.to_string(), |s| (s + 1).to_string());
    let name = app.metadata.name.clone().unwrap_or_default();
    let (mut entry, phase) = match before.and_then(|b| RolloutPhase::parse(&b.status).map(|p| (b, p))) {
        Some((before, phase)) => (before.clone(), phase),
        None => {
            let fresh = ApplicationSetApplicationStatus {
                application: name,
                message: MSG_NEW.into(),
                status: RolloutPhase::Waiting.as_str().into(),
                step: step.clone(),
                target_revisions: revisions.clone(),
                last_transition_time: Some(now.clone()),
            };
            (fresh, RolloutPhase::Waiting)
        }
    };
    entry.step = step;
    // An entry written before revisions were recorded (or before the app was compared) adopts them.
    if entry.target_revisions.is_empty() {
        entry.target_revisions = revisions.clone();
    }
    let sync = sync_code(app);
    let revision_changed = !revisions.is_empty() && entry.target_revisions != revisions;
    let drifted = phase == RolloutPhase::Healthy && sync == Some(SyncCode::OutOfSync);
    if revision_changed || drifted {
        entry.target_revisions = revisions;
        let message = if revision_changed { MSG_REVISION_CHANGED } else { MSG_DRIFTED };
        set_phase(&mut entry, RolloutPhase::Waiting, message, now);
    }

    let healthy = health_of(app) == Some("Healthy");
    match RolloutPhase::parse(&entry.status) {
        // Nothing to roll out: someone (or nothing) already synced it.
        Some(RolloutPhase::Waiting) if sync == Some(SyncCode::Synced) => {
            let (phase, message) = if healthy {
                (RolloutPhase::Healthy, "Application resource has synced, updating status to Healthy")
            } else {
                (RolloutPhase::Progressing, "Application resource has synced, updating status to Progressing")
            };
            set_phase(&mut entry, phase, message, now);
        }
        Some(RolloutPhase::Pending) if compared_since(app, entry.last_transition_time.as_ref()) => {
            let state = app.status.as_ref().and_then(|s| s.operation_state.as_ref());
            if let Some(state) = state.filter(|_| started_since(app, entry.last_transition_time.as_ref())) {
                let message = match OperationPhase::of(state) {
                    OperationPhase::Succeeded => {
                        "Application resource completed a sync successfully, updating status from Pending to \
                         Progressing"
                    }
                    p if p.is_completed() => {
                        "Application resource completed a sync, updating status from Pending to Progressing"
                    }
                    _ => {
                        "Application resource became Progressing, updating status from Pending to Progressing"
                    }
                };
                set_phase(&mut entry, RolloutPhase::Progressing, message, now);
            } else if cannot_sync(app) {
                let message =
                    "Application resource has error and cannot sync, updating status to Progressing";
                set_phase(&mut entry, RolloutPhase::Progressing, message, now);
            }
        }
        Some(RolloutPhase::Progressing) if healthy && sync == Some(SyncCode::Synced) => {
            let message = "Application resource became Healthy, updating status from Progressing to Healthy";
            set_phase(&mut entry, RolloutPhase::Healthy, message, now);
        }
        _ => {}
    }
    entry
}

/// Moves `entry` to `phase`, stamping the transition.
fn set_phase(entry: &mut ApplicationSetApplicationStatus, phase: RolloutPhase, message: &str, now: &Time) {
    entry.status = phase.as_str().into();
    entry.message = message.into();
    entry.last_transition_time = Some(now.clone());
}

/// Before a step advances on a change, every Application must have been compared since the change was
/// seen, or a stale `Synced` would let a later step through. `None` when none is behind; otherwise the
/// Applications to refresh (those with a status and no refresh asked yet).
fn unreconciled(
    apps: &[Application],
    previous: &[ApplicationSetApplicationStatus],
    statuses: &[ApplicationSetApplicationStatus],
) -> Option<Vec<String>> {
    let latest_change = |entries: &[ApplicationSetApplicationStatus]| {
        entries
            .iter()
            .filter(|s| s.status == RolloutPhase::Waiting.as_str() && s.message.starts_with(PENDING_CHANGES))
            .filter_map(|s| s.last_transition_time.clone())
            .max()
    };
    let since = latest_change(previous).or_else(|| latest_change(statuses))?;
    let behind: Vec<&Application> = apps
        .iter()
        .filter(|app| app.status.as_ref().and_then(|s| s.reconciled_at.as_ref()).is_none_or(|at| *at < since))
        .collect();
    if behind.is_empty() {
        return None;
    }
    let refresh = behind
        .into_iter()
        .filter(|app| app.status.is_some())
        .filter(|app| {
            app.metadata.annotations.as_ref().is_none_or(|a| !a.contains_key(berth_api::annotations::REFRESH))
        })
        .filter_map(|app| app.metadata.name.clone())
        .collect();
    Some(refresh)
}

/// `RolloutProgressing`: True naming the first step with an Application not yet Healthy, False once
/// every step is; the transition time moves only when the status does.
fn progressing_condition(
    set: &ApplicationSet,
    steps: usize,
    statuses: &[ApplicationSetApplicationStatus],
    now: &Time,
) -> ApplicationSetCondition {
    let rolling = (1..=steps)
        .map(|s| s.to_string())
        .find(|step| statuses.iter().any(|e| e.step == *step && e.status != RolloutPhase::Healthy.as_str()));
    let (status, reason, message) = match rolling {
        Some(step) => {
            ("True", REASON_MODIFIED, format!("ApplicationSet is performing rollout of step {step}"))
        }
        None => ("False", REASON_COMPLETE, "ApplicationSet Rollout has completed".to_string()),
    };
    let before = set
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == ROLLOUT_PROGRESSING && c.status == status));
    ApplicationSetCondition {
        type_: ROLLOUT_PROGRESSING.into(),
        message,
        status: status.into(),
        reason: reason.into(),
        last_transition_time: before
            .and_then(|c| c.last_transition_time.clone())
            .or_else(|| Some(now.clone())),
    }
}

/// `maxUpdate`: a count, or a percentage of the step's Applications.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MaxUpdate {
    Count(i64),
    Percent(i64),
}

impl MaxUpdate {
    /// Reads the value as Argo CD does (any integer, any integer percentage); [`MaxUpdate::check`]
    /// then keeps what makes sense.
    fn parse(value: &serde_json::Value) -> Result<Self, String> {
        let wrong = || format!("must be a non-negative integer or a percentage such as \"25%\", got {value}");
        match value {
            serde_json::Value::Number(n) => n.as_i64().map(Self::Count).ok_or_else(wrong),
            serde_json::Value::String(s) => {
                s.strip_suffix('%').and_then(|p| p.parse().ok()).map(Self::Percent).ok_or_else(wrong)
            }
            _ => Err(wrong()),
        }
    }

    /// Refuses what Argo CD reads without complaint but cannot be meant: below zero, above 100%.
    fn check(value: &serde_json::Value) -> Result<Self, String> {
        match Self::parse(value)? {
            Self::Count(n) if n < 0 => Err(format!("must not be negative, got {n}")),
            Self::Percent(p) if !(0..=100).contains(&p) => Err(format!("{value} is not between 0% and 100%")),
            ok => Ok(ok),
        }
    }
}

/// How many of a step's `total` Applications may be in flight at once, as Argo CD computes it: unset is
/// all of them; a count is itself (nothing when negative); a percentage rounds down but is at least one
/// unless it is 0%; a value it cannot read allows one (its parse error leaves zero, then floored at one).
fn allowed_in_flight(step: &ApplicationSetRolloutStep, total: usize) -> usize {
    let Some(value) = &step.max_update else { return total };
    let total = i64::try_from(total).unwrap_or(i64::MAX);
    let allowed = match MaxUpdate::parse(value) {
        Ok(MaxUpdate::Count(n)) => n,
        Ok(MaxUpdate::Percent(0)) => 0,
        Ok(MaxUpdate::Percent(p)) => (total.saturating_mul(p) / 100).max(1),
        Err(_) => 1,
    };
    usize::try_from(allowed).unwrap_or(0)
}

/// `status.sync.revisions` of a multi-source Application, else `[status.sync.revision]`.
fn revisions_of(app: &Application) -> Vec<String> {
    let Some(sync) = app.status.as_ref().and_then(|s| s.sync.as_ref()) else { return Vec::new() };
    if !sync.revisions.is_empty() {
        return sync.revisions.clone();
    }
    sync.revision.iter().filter(|r| !r.is_empty()).cloned().collect()
}

fn sync_code(app: &Application) -> Option<SyncCode> {
    app.status.as_ref().and_then(|s| s.sync.as_ref()).and_then(|s| SyncCode::parse(&s.status))
}

fn health_of(app: &Application) -> Option<&str> {
    app.status.as_ref().and_then(|s| s.health.as_ref()).and_then(|h| h.status.as_deref())
}

fn live_healthy_and_synced(app: &Application) -> bool {
    health_of(app) == Some("Healthy") && sync_code(app) == Some(SyncCode::Synced)
}

/// An operation started after `since` (any operation when `since` is unknown).
fn started_since(app: &Application, since: Option<&Time>) -> bool {
    let state = app.status.as_ref().and_then(|s| s.operation_state.as_ref());
    state.is_some_and(|state| since.is_none_or(|since| state.started_at > *since))
}

/// The application controller has looked at `app` since `since` (or never says when it did).
fn compared_since(app: &Application, since: Option<&Time>) -> bool {
    let at = app.status.as_ref().and_then(|s| s.reconciled_at.as_ref());
    match (at, since) {
        (Some(at), Some(since)) => at > since,
        _ => true,
    }
}

/// An error condition that keeps any sync from running; the rollout stops waiting for one.
fn cannot_sync(app: &Application) -> bool {
    let conditions = app.status.as_ref().map(|s| &s.conditions[..]).unwrap_or_default();
    conditions.iter().any(|c| {
        matches!(
            ConditionType::parse(&c.type_),
            Some(ConditionType::InvalidSpecError | ConditionType::UnknownError)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;
    use serde_json::json;

    /// 2026-01-01T00:00:00Z: every test time is seconds after it.
    const BASE: i64 = 1_767_225_600;

    fn t(seconds: i64) -> Time {
        Time(Timestamp::from_second(BASE + seconds).unwrap())
    }

    fn step(env: &str, max_update: serde_json::Value) -> serde_json::Value {
        let mut step = json!({"matchExpressions": [{"key": "env", "operator": "In", "values": [env]}]});
        if !max_update.is_null() {
            step["maxUpdate"] = max_update;
        }
        step
    }

    fn set(steps: serde_json::Value) -> ApplicationSet {
        serde_json::from_value(json!({
            "metadata": {"name": "guestbook"},
            "spec": {"generators": [], "template": {},
                     "strategy": {"type": "RollingSync", "rollingSync": {"steps": steps}}}
        }))
        .unwrap()
    }

    /// The seed's set: staging first, then prod.
    fn staging_then_prod() -> ApplicationSet {
        set(json!([step("staging", json!(null)), step("prod", json!(null))]))
    }

    /// An Application labelled `env`, compared at time 0: OutOfSync at revision `a`, Healthy.
    fn app(name: &str, env: Option<&str>) -> Application {
        let labels = env.map_or(json!({}), |e| json!({"env": e}));
        let mut app: Application = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": labels},
            "spec": {"destination": {"server": "https://kubernetes.default.svc", "namespace": "web"},
                     "project": "default",
                     "source": {"repoURL": "https://example.com/r.git", "path": name}},
            "status": {"sync": {"status": "OutOfSync", "revision": "a"}, "health": {"status": "Healthy"}}
        }))
        .unwrap();
        reconciled(&mut app, 0);
        app
    }

    fn live(app: &mut Application, sync: &str, health: &str) {
        let status = app.status.as_mut().unwrap();
        status.sync.as_mut().unwrap().status = sync.into();
        status.health.as_mut().unwrap().status = Some(health.into());
    }

    fn reconciled(app: &mut Application, at: i64) {
        app.status.as_mut().unwrap().reconciled_at = Some(t(at));
    }

    /// An operation in `phase` started at `at`; the controller has compared the app just after.
    fn started(app: &mut Application, phase: &str, at: i64) {
        app.operation = None;
        app.status.as_mut().unwrap().operation_state = Some(berth_api::application::OperationState {
            operation: Operation::default(),
            phase: phase.into(),
            message: None,
            sync_result: None,
            started_at: t(at),
            finished_at: None,
            retry_count: None,
        });
        reconciled(app, at + 1);
    }

    fn named<'a>(rollout: &'a Rollout, name: &str) -> &'a ApplicationSetApplicationStatus {
        rollout.application_status.iter().find(|s| s.application == name).unwrap()
    }

    fn phases(rollout: &Rollout) -> Vec<(&str, &str)> {
        rollout.application_status.iter().map(|s| (s.application.as_str(), s.status.as_str())).collect()
    }

    /// The caller's side of a pass: write the operations asked for.
    fn write(rollout: &Rollout, apps: &mut [Application]) {
        for app in apps {
            if let Some(op) = rollout.operation_for(app) {
                app.operation = Some(serde_json::from_value(op).unwrap());
            }
        }
    }

    #[test]
    fn staging_syncs_first_and_prod_waits_until_staging_is_healthy_then_syncs() {
        let set = staging_then_prod();
        let mut apps = vec![app("staging", Some("staging")), app("prod", Some("prod"))];

        let first = progress(&set, &apps, &[], t(10));
        assert_eq!(phases(&first), [("staging", "Pending"), ("prod", "Waiting")]);
        assert_eq!(first.to_sync, ["staging"]);
        assert_eq!((named(&first, "staging").step.as_str(), named(&first, "prod").step.as_str()), ("1", "2"));
        let condition = first.condition.clone().unwrap();
        assert_eq!(
            (condition.type_.as_str(), condition.status.as_str(), condition.reason.as_str()),
            ("RolloutProgressing", "True", "ApplicationSetModified")
        );
        assert_eq!(condition.message, "ApplicationSet is performing rollout of step 1");
        write(&first, &mut apps);

        started(&mut apps[0], "Running", 15);
        live(&mut apps[0], "OutOfSync", "Progressing");
        let second = progress(&set, &apps, &first.application_status, t(20));
        assert_eq!(phases(&second), [("staging", "Progressing"), ("prod", "Waiting")]);
        assert!(second.to_sync.is_empty());

        started(&mut apps[0], "Succeeded", 15);
        live(&mut apps[0], "Synced", "Healthy");
        let third = progress(&set, &apps, &second.application_status, t(30));
        assert_eq!(phases(&third), [("staging", "Healthy"), ("prod", "Pending")]);
        assert_eq!(third.to_sync, ["prod"]);
        assert_eq!(
            third.condition.as_ref().unwrap().message,
            "ApplicationSet is performing rollout of step 2"
        );
        write(&third, &mut apps);

        started(&mut apps[1], "Succeeded", 35);
        live(&mut apps[1], "Synced", "Healthy");
        let fourth = progress(&set, &apps, &third.application_status, t(40));
        assert_eq!(phases(&fourth), [("staging", "Healthy"), ("prod", "Progressing")]);
        assert_eq!(
            named(&fourth, "prod").message,
            "Application resource completed a sync successfully, updating status from Pending to Progressing"
        );
        let fifth = progress(&set, &apps, &fourth.application_status, t(50));
        assert_eq!(phases(&fifth), [("staging", "Healthy"), ("prod", "Healthy")]);
        let done = fifth.condition.unwrap();
        assert_eq!(
            (done.status.as_str(), done.reason.as_str(), done.message.as_str()),
            ("False", "ApplicationSetRolloutComplete", "ApplicationSet Rollout has completed")
        );
        assert_eq!(done.last_transition_time, Some(t(50)));
    }

    #[test]
    fn prod_does_not_sync_while_a_healthy_staging_entry_is_degraded_live() {
        let set = staging_then_prod();
        let mut apps = vec![app("staging", Some("staging")), app("prod", Some("prod"))];
        let previous = vec![ApplicationSetApplicationStatus {
            application: "staging".into(),
            status: "Healthy".into(),
            step: "1".into(),
            target_revisions: vec!["a".into()],
            last_transition_time: Some(t(1)),
            ..Default::default()
        }];
        live(&mut apps[0], "Synced", "Degraded");
        let rollout = progress(&set, &apps, &previous, t(10));
        assert_eq!(phases(&rollout), [("staging", "Healthy"), ("prod", "Waiting")]);
        assert!(rollout.to_sync.is_empty());
    }

    fn prod_fleet(max_update: serde_json::Value, count: usize) -> (ApplicationSet, Vec<Application>) {
        let set = set(json!([step("prod", max_update)]));
        let apps = (1..=count).map(|i| app(&format!("prod-{i}"), Some("prod"))).collect();
        (set, apps)
    }

    #[test]
    fn max_update_one_syncs_one_app_of_the_step_at_a_time() {
        let (set, mut apps) = prod_fleet(json!(1), 3);
        let first = progress(&set, &apps, &[], t(10));
        assert_eq!(first.to_sync, ["prod-1"]);
        write(&first, &mut apps);

        let again = progress(&set, &apps, &first.application_status, t(20));
        assert!(again.to_sync.is_empty(), "prod-1 is still in flight and its operation is written");
        assert_eq!(named(&again, "prod-2").status, "Waiting");

        started(&mut apps[0], "Succeeded", 25);
        live(&mut apps[0], "Synced", "Healthy");
        let progressing = progress(&set, &apps, &again.application_status, t(30));
        assert!(progressing.to_sync.is_empty(), "Progressing still counts against maxUpdate");
        let healthy = progress(&set, &apps, &progressing.application_status, t(40));
        assert_eq!(named(&healthy, "prod-1").status, "Healthy");
        assert_eq!(healthy.to_sync, ["prod-2"]);
    }

    #[test]
    fn a_percentage_of_the_step_rounds_down_but_allows_at_least_one_unless_it_is_zero() {
        for (max_update, count, expected) in [
            (json!("50%"), 4, 2),
            (json!("50%"), 3, 1),
            (json!("10%"), 3, 1),
            (json!("100%"), 3, 3),
            (json!("0%"), 3, 0),
            (json!(null), 5, 5),
            (json!(2), 5, 2),
            // What Argo CD makes of values validate refuses.
            (json!("150%"), 3, 3),
            (json!(-1), 3, 0),
            (json!("abc"), 3, 1),
        ] {
            let (set, apps) = prod_fleet(max_update.clone(), count);
            let rollout = progress(&set, &apps, &[], t(10));
            assert_eq!(rollout.to_sync.len(), expected, "maxUpdate {max_update} of {count}");
        }
    }

    #[test]
    fn max_update_counts_the_apps_already_pending_or_progressing() {
        let (set, apps) = prod_fleet(json!("50%"), 4);
        let previous = vec![ApplicationSetApplicationStatus {
            application: "prod-3".into(),
            status: "Progressing".into(),
            step: "1".into(),
            target_revisions: vec!["a".into()],
            last_transition_time: Some(t(5)),
            ..Default::default()
        }];
        let rollout = progress(&set, &apps, &previous, t(10));
        assert_eq!(rollout.to_sync, ["prod-1"]);
    }

    #[test]
    fn max_update_zero_waits_for_a_manual_sync_and_holds_later_steps_back() {
        let set = set(json!([step("qa", json!(0)), step("prod", json!(null))]));
        let mut apps = vec![app("qa", Some("qa")), app("prod", Some("prod"))];
        let first = progress(&set, &apps, &[], t(10));
        assert_eq!(phases(&first), [("qa", "Waiting"), ("prod", "Waiting")]);
        assert!(first.to_sync.is_empty());

        // Someone syncs qa by hand.
        started(&mut apps[0], "Succeeded", 12);
        live(&mut apps[0], "Synced", "Healthy");
        let second = progress(&set, &apps, &first.application_status, t(20));
        assert_eq!(phases(&second), [("qa", "Healthy"), ("prod", "Pending")]);
        assert_eq!(
            named(&second, "qa").message,
            "Application resource has synced, updating status to Healthy"
        );
        assert_eq!(second.to_sync, ["prod"]);
    }

    #[test]
    fn an_app_matching_no_step_is_never_synced_and_does_not_hold_the_rollout() {
        let set = staging_then_prod();
        let mut apps = vec![app("dev", Some("dev")), app("staging", Some("staging"))];
        live(&mut apps[1], "Synced", "Healthy");
        let rollout = progress(&set, &apps, &[], t(10));
        assert_eq!(phases(&rollout), [("dev", "Waiting"), ("staging", "Healthy")]);
        assert_eq!(named(&rollout, "dev").step, "-1");
        assert!(rollout.to_sync.is_empty());
        assert_eq!(rollout.condition.unwrap().status, "False");
    }

    #[test]
    fn pending_waits_for_an_operation_started_after_it_and_asks_again_if_none_was_written() {
        let (set, mut apps) = prod_fleet(json!(null), 1);
        let first = progress(&set, &apps, &[], t(10));
        assert_eq!(first.to_sync, ["prod-1"]);

        // An older operation does not count, and the lost write is asked for again.
        started(&mut apps[0], "Succeeded", 5);
        reconciled(&mut apps[0], 15);
        let lost = progress(&set, &apps, &first.application_status, t(20));
        assert_eq!(named(&lost, "prod-1").status, "Pending");
        assert_eq!(named(&lost, "prod-1").last_transition_time, Some(t(10)));
        assert_eq!(lost.to_sync, ["prod-1"]);

        started(&mut apps[0], "Running", 25);
        let running = progress(&set, &apps, &lost.application_status, t(30));
        assert_eq!(named(&running, "prod-1").status, "Progressing");
        assert_eq!(
            named(&running, "prod-1").message,
            "Application resource became Progressing, updating status from Pending to Progressing"
        );
        assert_eq!(named(&running, "prod-1").last_transition_time, Some(t(30)));
    }

    #[test]
    fn a_pending_app_with_an_invalid_spec_stops_being_waited_for_a_sync() {
        let (set, mut apps) = prod_fleet(json!(null), 1);
        let first = progress(&set, &apps, &[], t(10));
        let status = apps[0].status.as_mut().unwrap();
        status.conditions.push(berth_api::application::ApplicationCondition {
            type_: "InvalidSpecError".into(),
            message: "project missing".into(),
            last_transition_time: None,
        });
        reconciled(&mut apps[0], 15);
        let next = progress(&set, &apps, &first.application_status, t(20));
        assert_eq!(named(&next, "prod-1").status, "Progressing");
        assert_eq!(
            named(&next, "prod-1").message,
            "Application resource has error and cannot sync, updating status to Progressing"
        );
    }

    #[test]
    fn transition_time_and_message_are_kept_while_the_status_is_unchanged() {
        let set = staging_then_prod();
        let apps = vec![app("staging", Some("staging")), app("prod", Some("prod"))];
        let first = progress(&set, &apps, &[], t(10));
        let second = progress(&set, &apps, &first.application_status, t(20));
        assert_eq!(named(&second, "prod"), named(&first, "prod"));
        assert_eq!(named(&second, "prod").last_transition_time, Some(t(10)));
        assert_eq!(
            named(&second, "prod").message,
            "No Application status found, defaulting status to Waiting"
        );
        let mut set = set;
        set.status = Some(berth_api::applicationset::ApplicationSetStatus {
            conditions: vec![first.condition.clone().unwrap()],
            ..Default::default()
        });
        let third = progress(&set, &apps, &second.application_status, t(30));
        assert_eq!(third.condition.unwrap().last_transition_time, Some(t(10)));
    }

    #[test]
    fn a_healthy_app_that_drifts_waits_again_and_nothing_advances_until_every_app_is_compared() {
        let set = staging_then_prod();
        let mut apps = vec![app("staging", Some("staging")), app("prod", Some("prod"))];
        for app in &mut apps {
            live(app, "Synced", "Healthy");
        }
        let calm = progress(&set, &apps, &[], t(10));
        assert_eq!(phases(&calm), [("staging", "Healthy"), ("prod", "Healthy")]);

        live(&mut apps[0], "OutOfSync", "Healthy");
        reconciled(&mut apps[0], 15);
        let drifted = progress(&set, &apps, &calm.application_status, t(20));
        assert_eq!(phases(&drifted), [("staging", "Waiting"), ("prod", "Healthy")]);
        assert!(named(&drifted, "staging").message.starts_with("Application has pending changes"));
        assert!(drifted.to_sync.is_empty(), "a change was just seen: the others may not be compared yet");
        assert_eq!(drifted.refresh, ["staging", "prod"]);

        for app in &mut apps {
            reconciled(app, 25);
        }
        let compared = progress(&set, &apps, &drifted.application_status, t(30));
        assert!(compared.refresh.is_empty());
        assert_eq!(compared.to_sync, ["staging"]);
    }

    #[test]
    fn a_new_revision_puts_a_synced_app_back_through_the_rollout() {
        let set = staging_then_prod();
        let mut apps = vec![app("staging", Some("staging"))];
        live(&mut apps[0], "Synced", "Progressing");
        let previous = vec![ApplicationSetApplicationStatus {
            application: "staging".into(),
            status: "Healthy".into(),
            step: "1".into(),
            target_revisions: vec!["old".into()],
            last_transition_time: Some(t(1)),
            ..Default::default()
        }];
        let rollout = progress(&set, &apps, &previous, t(10));
        let entry = named(&rollout, "staging");
        assert_eq!(
            (entry.status.as_str(), entry.target_revisions.as_slice()),
            ("Progressing", &["a".to_string()][..])
        );
        assert_eq!(entry.message, "Application resource has synced, updating status to Progressing");
    }

    #[test]
    fn a_set_that_does_not_roll_out_gets_an_empty_rollout() {
        let mut all_at_once = staging_then_prod();
        all_at_once.spec.strategy.as_mut().unwrap().type_ = Some("AllAtOnce".into());
        let no_steps = set(json!([]));
        let apps = vec![app("staging", Some("staging"))];
        for set in [all_at_once, no_steps] {
            assert!(!is_rolling(&set));
            assert_eq!(progress(&set, &apps, &[], t(10)), Rollout::default());
        }
        assert!(is_rolling(&staging_then_prod()));
    }

    #[test]
    fn steps_select_by_in_and_not_in_and_the_first_matching_step_wins() {
        let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        let steps: Vec<ApplicationSetRolloutStep> = serde_json::from_value(json!([
            {"matchExpressions": [{"key": "env", "operator": "In", "values": ["dev", "qa"]},
                                  {"key": "region", "operator": "NotIn", "values": ["eu"]}]},
            {"matchExpressions": [{"key": "env", "operator": "Exists"}]},
            {"matchExpressions": [{"key": "env", "operator": "In", "values": ["qa", "prod"]}]},
            {}
        ]))
        .unwrap();
        assert_eq!(step_of(&labels(&[("env", "qa")]), &steps), Some(0), "NotIn matches a missing label");
        assert_eq!(step_of(&labels(&[("env", "qa"), ("region", "us")]), &steps), Some(0));
        assert_eq!(
            step_of(&labels(&[("env", "qa"), ("region", "eu")]), &steps),
            Some(2),
            "NotIn wins over In"
        );
        assert_eq!(step_of(&labels(&[("env", "prod")]), &steps), Some(2), "Exists is not an operator");
        assert_eq!(step_of(&labels(&[("team", "a")]), &steps), Some(3), "no expressions select all");
        assert_eq!(step_of(&labels(&[("team", "a")]), &steps[..3]), None);
    }

    #[test]
    fn validation_names_each_wrong_field() {
        let bad = set(json!([
            {"matchExpressions": [{"key": "env", "operator": "Exists"}]},
            {"matchExpressions": [{"key": "", "operator": "In", "values": ["a"]}], "maxUpdate": "abc"},
            step("prod", json!("150%")),
            step("prod", json!(-1)),
            step("prod", json!(1.5)),
            step("prod", json!("5")),
        ]));
        let error = validate(&bad).unwrap_err();
        for field in [
            "spec.strategy.rollingSync.steps[0].matchExpressions[0].operator: \"Exists\" is not supported",
            "spec.strategy.rollingSync.steps[1].matchExpressions[0].key: must not be empty",
            "spec.strategy.rollingSync.steps[1].maxUpdate: must be a non-negative integer or a percentage",
            "spec.strategy.rollingSync.steps[2].maxUpdate: \"150%\" is not between 0% and 100%",
            "spec.strategy.rollingSync.steps[3].maxUpdate:",
            "spec.strategy.rollingSync.steps[4].maxUpdate:",
            "spec.strategy.rollingSync.steps[5].maxUpdate:",
        ] {
            assert!(error.contains(field), "{field} missing from {error}");
        }

        let mut typo = staging_then_prod();
        typo.spec.strategy.as_mut().unwrap().type_ = Some("Rolling".into());
        assert_eq!(
            validate(&typo).unwrap_err(),
            "spec.strategy.type: \"Rolling\" is not AllAtOnce or RollingSync"
        );
    }

    #[test]
    fn the_documented_example_and_a_catch_all_step_are_valid() {
        let documented = set(json!([
            step("env-dev", json!(null)),
            step("env-qa", json!(0)),
            step("env-prod", json!("10%")),
            {"maxUpdate": 1}
        ]));
        assert_eq!(validate(&documented), Ok(()));
        let mut ignored = set(json!([{"maxUpdate": "abc"}]));
        ignored.spec.strategy.as_mut().unwrap().type_ = None;
        assert_eq!(validate(&ignored), Ok(()), "steps are not read unless RollingSync");
    }

    #[test]
    fn rolling_sync_switches_automated_sync_off_and_keeps_prune_for_the_operation() {
        let set = staging_then_prod();
        let mut apps = vec![app("staging", Some("staging")), app("prod", Some("prod"))];
        apps[0].spec.sync_policy = Some(
            serde_json::from_value(json!({"automated": {"prune": true, "selfHeal": true},
                                          "syncOptions": ["CreateNamespace=true"],
                                          "retry": {"limit": 2}}))
            .unwrap(),
        );
        assert_eq!(disable_automated_sync(&set, &mut apps), ["staging"]);
        let automated = apps[0].spec.sync_policy.as_ref().unwrap().automated.as_ref().unwrap();
        assert_eq!((automated.enabled, automated.prune), (Some(false), Some(true)));
        assert_eq!(disable_automated_sync(&set, &mut apps), Vec::<String>::new(), "already off");

        let rollout = progress(&set, &apps, &[], t(10));
        assert_eq!(
            rollout.operation_for(&apps[0]),
            Some(json!({
                "sync": {"revision": "a", "prune": true, "syncOptions": ["CreateNamespace=true"]},
                "initiatedBy": {"username": "applicationset-controller", "automated": true},
                "info": [{"name": "Reason",
                          "value": "ApplicationSet RollingSync triggered a sync of this Application resource"}],
                "retry": {"limit": 2}
            }))
        );
        assert_eq!(rollout.operation_for(&apps[1]), None, "prod waits for staging");

        let mut all_at_once = set.clone();
        all_at_once.spec.strategy = None;
        let mut untouched = vec![app("x", None)];
        untouched[0].spec.sync_policy = apps[0].spec.sync_policy.clone();
        untouched[0].spec.sync_policy.as_mut().unwrap().automated.as_mut().unwrap().enabled = None;
        assert!(disable_automated_sync(&all_at_once, &mut untouched).is_empty());
        assert_eq!(untouched[0].spec.sync_policy.as_ref().unwrap().automated.as_ref().unwrap().enabled, None);
    }

    #[test]
    fn a_multi_source_operation_pins_every_revision_and_retries_five_times_by_default() {
        let mut multi = app("multi", None);
        multi.spec.source = None;
        multi.spec.sources = serde_json::from_value(json!([
            {"repoURL": "https://example.com/a.git", "path": "a"},
            {"repoURL": "https://example.com/b.git", "path": "b"}
        ]))
        .unwrap();
        assert_eq!(
            sync_operation(&multi, &["a1".into(), "b1".into()]),
            json!({
                "sync": {"revisions": ["a1", "b1"]},
                "initiatedBy": {"username": "applicationset-controller", "automated": true},
                "info": [{"name": "Reason",
                          "value": "ApplicationSet RollingSync triggered a sync of this Application resource"}],
                "retry": {"limit": 5}
            })
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Steps `e0`, `e1`, … with these `maxUpdate` values.
        fn any_steps() -> impl Strategy<Value = Vec<serde_json::Value>> {
            let max_updates =
                vec![json!(null), json!(0), json!(1), json!(2), json!("34%"), json!("50%"), json!("100%")];
            prop::collection::vec(prop::sample::select(max_updates), 1..4)
        }

        /// The application controller between two passes, driven by `dice`: starts written operations,
        /// settles health, now and then drifts a Healthy app; compares every app at `at + 6`.
        fn application_controller(apps: &mut [Application], at: i64, dice: &mut impl Iterator<Item = u8>) {
            for app in apps.iter_mut() {
                let roll = dice.next().unwrap_or(0);
                let health = health_of(app).unwrap_or_default().to_string();
                if app.operation.is_some() {
                    if roll.is_multiple_of(2) {
                        started(app, "Succeeded", at + 5);
                        live(app, "Synced", "Progressing");
                    }
                } else if health == "Progressing" {
                    match roll % 8 {
                        0..=4 => live(app, "Synced", "Healthy"),
                        5 => live(app, "Synced", "Degraded"),
                        _ => {}
                    }
                } else if health == "Healthy"
                    && sync_code(app) == Some(SyncCode::Synced)
                    && roll.is_multiple_of(16)
                {
                    live(app, "OutOfSync", "Healthy");
                }
                reconciled(app, at + 6);
            }
        }

        fn step_index(status: &ApplicationSetApplicationStatus) -> Option<usize> {
            status.step.parse::<usize>().ok().map(|s| s - 1)
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(200))]

            #[test]
            fn never_more_in_flight_than_max_update_and_never_a_later_step_before_an_earlier_is_healthy(
                max_updates in any_steps(),
                envs in prop::collection::vec((0usize..4, any::<bool>()), 1..10),
                dice in prop::collection::vec(any::<u8>(), 400),
            ) {
                let steps: Vec<_> =
                    max_updates.iter().enumerate().map(|(i, m)| step(&format!("e{i}"), m.clone())).collect();
                let set = set(serde_json::Value::Array(steps));
                let rolling = rolling_steps(&set).unwrap().to_vec();
                let mut apps: Vec<Application> = envs
                    .iter()
                    .enumerate()
                    .map(|(i, (env, synced))| {
                        let mut app = app(&format!("app-{i}"), Some(&format!("e{env}")));
                        if *synced {
                            live(&mut app, "Synced", "Healthy");
                        }
                        app
                    })
                    .collect();
                let mut dice = dice.into_iter().cycle();
                let mut previous = Vec::new();
                for pass in 0..30i64 {
                    let at = 10 * (pass + 1);
                    let rollout = progress(&set, &apps, &previous, t(at));
                    for (s, step) in rolling.iter().enumerate() {
                        let members = rollout.application_status.iter().filter(|e| step_index(e) == Some(s));
                        let total = members.clone().count();
                        let in_flight = members.filter(|e| e.status == "Pending" || e.status == "Progressing").count();
                        prop_assert!(
                            in_flight <= allowed_in_flight(step, total),
                            "pass {pass}: step {s} has {in_flight} of {total} in flight"
                        );
                    }
                    for name in &rollout.to_sync {
                        let entry = named(&rollout, name);
                        let s = step_index(entry).expect("only apps in a step sync");
                        for (app, earlier) in apps.iter().zip(&rollout.application_status) {
                            if step_index(earlier).is_some_and(|e| e < s) {
                                prop_assert_eq!(earlier.status.as_str(), "Healthy");
                                prop_assert!(live_healthy_and_synced(app));
                            }
                        }
                    }
                    write(&rollout, &mut apps);
                    previous = rollout.application_status;
                    application_controller(&mut apps, at, &mut dice);
                }
            }
        }
    }
}
