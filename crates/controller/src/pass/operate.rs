//! Operate: a sync operation (requested, or automatic) carried out one step a pass over the engine's
//! plan and executor, with retries and history; and the decision whether to sync automatically.

use berth_api::Application;
use berth_api::annotations;
use berth_api::application::{
    ApplicationSource, ApplicationStatus, Operation, OperationState, ResourceResult, RevisionHistory,
    RevisionMetadata, SyncOperation, SyncOperationResult,
};
use berth_api::codes::{OperationPhase, SyncCode};
use berth_engine::health::{self};
use berth_engine::normalize::{self};
use berth_engine::resource::ResourceKey;
use berth_engine::sync::{self, ManagedNamespace, OutcomeStatus, SyncOptions};
use kube::api::PropagationPolicy;
use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::status::{now, push_history, same_source_copies, same_source_copy};
use super::target::{Desired, Target, TargetError};
use super::{client_side_managers, has_option, hash_of, option_value, single_source, sync_options};
use crate::clusters::Cluster;
use crate::windows::WindowState;
use crate::{Controller, Error, Level, SelfHealBackoff};

/// Whether an Application in need of a sync gets one without being asked.
#[derive(Debug, PartialEq)]
pub(crate) enum AutoSync {
    No,
    /// Not now, and the reason is a condition on the Application.
    Blocked(String),
    /// Self-heal waits out its timeout (or backoff) since the last sync.
    Later(Duration),
    /// Sync now; a self-heal carries its attempt count (`selfHealAttemptsCount`), a new target 0.
    Now {
        self_heal: bool,
        attempts: i64,
    },
}

/// Argo CD's auto-sync rules as a plain function of the app, its target and compare result, its
/// status, its project's sync windows, the self-heal settings and the time: a new target syncs at once;
/// the same target again only to heal drift, never after it failed, and not before [`self_heal_pace`]
/// allows; never while the sync status is Unknown (a comparison error is not drift); and neither while a
/// sync window blocks automatic syncs.
#[allow(clippy::too_many_arguments)]
pub(crate) fn auto_sync_decision(
    app: &Application,
    target: &Target,
    sync_status: SyncCode,
    status: &ApplicationStatus,
    windows: &WindowState,
    self_heal_paused: bool,
    self_heal_timeout: Duration,
    backoff: &SelfHealBackoff,
    now: k8s_openapi::jiff::Timestamp,
) -> AutoSync {
    let pacing = (self_heal_timeout, backoff);
    match wanted_auto_sync(app, target, sync_status, status, self_heal_paused, pacing, now) {
        AutoSync::Now { .. } | AutoSync::Later(_) if !windows.can_sync_auto => AutoSync::Blocked(format!(
            "Skipping auto-sync: {}: {}",
            crate::windows::BLOCKED.trim_start_matches("cannot sync: "),
            windows.reason.as_deref().unwrap_or("no window allows it now")
        )),
        decision => decision,
    }
}

/// The auto-sync rules before the sync windows have their say.
fn wanted_auto_sync(
    app: &Application,
    target: &Target,
    sync_status: SyncCode,
    status: &ApplicationStatus,
    self_heal_paused: bool,
    (self_heal_timeout, backoff): (Duration, &SelfHealBackoff),
    now: k8s_openapi::jiff::Timestamp,
) -> AutoSync {
    let Some(automated) = app.spec.sync_policy.as_ref().and_then(|p| p.automated.as_ref()) else {
        return AutoSync::No;
    };
    if automated.enabled == Some(false) || sync_status != SyncCode::OutOfSync || !target.errors.is_empty() {
        return AutoSync::No;
    }
    if target.objects.is_empty() && !automated.allow_empty.unwrap_or(false) {
        return AutoSync::Blocked("Skipping sync attempt: auto-sync would delete every resource (the source rendered no objects) and allowEmpty is false".into());
    }
    let last = status.operation_state.as_ref();
    let same_target = last.and_then(|s| s.sync_result.as_ref()).is_some_and(|r| {
        r.revision == target.revision
            && r.revisions == target.revisions
            // Recorded as the sync recorded it (`sources` for an app with `spec.sources`, else `source`), so a
            // change of the spec's source (a Helm parameter, an image) is a new target, as in Argo CD. Status
            // keeps large sources summarised (status::source_copy): compared as kept.
            && if app.spec.sources.is_empty() {
                r.sources.is_empty() && same_source_copy(r.source.as_ref(), single_source(app))
            } else {
                r.source.is_none() && same_source_copies(&r.sources, &app.spec.sources)
            }
    });
    let Some(last) = last.filter(|_| same_target) else {
        return AutoSync::Now { self_heal: false, attempts: 0 };
    };
    if OperationPhase::of(last).is_failure() || !automated.self_heal.unwrap_or(false) {
        return AutoSync::No;
    }
    if self_heal_paused {
        return AutoSync::Blocked(
            "Self-heal is paused (argocd-cm berth.selfHeal.paused): drift is reported, not reverted".into(),
        );
    }
    match self_heal_pace(last, now, self_heal_timeout, backoff) {
        SelfHealPace { wait, .. } if !wait.is_zero() => AutoSync::Later(wait),
        SelfHealPace { attempts, .. } => AutoSync::Now { self_heal: true, attempts },
    }
}

/// When the next self-heal of the last operation's revision may run, and the attempt count it carries.
#[derive(Debug, PartialEq)]
pub(crate) struct SelfHealPace {
    /// How much longer to wait (zero: now).
    pub(crate) wait: Duration,
    /// `selfHealAttemptsCount` of the self-heal operation.
    pub(crate) attempts: i64,
}

/// Argo CD 3.x's self-heal pacing (its `shouldSelfHeal`) as a plain function of the last operation (a sync
/// of the same revision), the time and the settings. The count lives in the last operation: a sync of a new
/// revision carries none, so it starts again at 0; so it does once the last sync is `cooldown` older than the
/// wait it had (the app stayed synced that long). With `count` self-heals done, the next waits 0 for the first, then
/// `timeout × factor^(count-1)`, at most `cap`, from the last sync's end. A backoff `timeout` of zero turns
/// the backoff off: then the fixed `self_heal_timeout` (Argo CD's `--self-heal-timeout-seconds`) applies.
pub(crate) fn self_heal_pace(
    last: &OperationState,
    now: k8s_openapi::jiff::Timestamp,
    self_heal_timeout: Duration,
    backoff: &SelfHealBackoff,
) -> SelfHealPace {
    let elapsed = last
        .finished_at
        .as_ref()
        .map(|t| Duration::from_secs((now.as_second() - t.0.as_second()).max(0) as u64));
    let mut count = last.operation.sync.as_ref().and_then(|s| s.self_heal_attempts_count).unwrap_or(0).max(0);
    // The app stayed synced for the cooldown: the last self-heal's own wait is not counted as synced time,
    // so a fight paced at the cap (a pass a little late) never starts again from zero.
    let waited = if count > 0 { backoff_delay(backoff, count) } else { Duration::ZERO };
    if elapsed.is_some_and(|e| e > backoff.cooldown.saturating_add(waited)) {
        count = 0;
    }
    // As Argo CD: the backoff rules unless its initial timeout is zero; then the fixed timeout does.
    let delay = if backoff.timeout.is_zero() {
        self_heal_timeout
    } else if count == 0 {
        Duration::ZERO
    } else {
        backoff_delay(backoff, count)
    };
    SelfHealPace {
        wait: delay.saturating_sub(elapsed.unwrap_or_default()),
        attempts: count.saturating_add(1),
    }
}

/// `timeout × factor^(count-1)`, at most `cap` (and never more than the cap, whatever the count).
fn backoff_delay(backoff: &SelfHealBackoff, count: i64) -> Duration {
    let mut delay = backoff.timeout;
    // Past 128 steps of a factor of 2 or more any wait is beyond every cap: the loop stays short.
    if backoff.factor > 1 {
        for _ in 1..count.min(128) {
            if delay >= backoff.cap || delay.is_zero() {
                break;
            }
            delay = delay.saturating_mul(backoff.factor);
        }
    }
    delay.min(backoff.cap)
}

/// What a project's sync windows make of an operation this pass would run or go on with.
#[derive(Debug, PartialEq)]
pub(crate) enum WindowGate {
    /// It may start, or take its next step.
    Open,
    /// A new operation is refused before anything is applied: it ends with this state (Failed).
    Refused(OperationState),
    /// One already under way stays Running as it is, with this state, until the windows let it go on.
    Held(OperationState),
}

/// The sync windows' say on `op` (`running`: its state when it is already under way). As Argo CD checks
/// the windows before each step of a sync: one already running is held, Running, its message saying why,
/// and goes on once they allow it (its retries wait too); a new one is refused, as the API refuses it, so
/// an operation written with kubectl cannot slip through. A requested termination always goes through.
/// An operation auto-sync did not start is manual.
pub(crate) fn window_gate(
    op: &Operation,
    running: Option<&OperationState>,
    windows: &WindowState,
) -> WindowGate {
    let manual = op.initiated_by.as_ref().and_then(|i| i.automated) != Some(true);
    let Some(refusal) = windows.refusal(manual) else { return WindowGate::Open };
    match running {
        Some(state) if OperationPhase::of(state) == OperationPhase::Terminating => WindowGate::Open,
        // syncOverrun: the windows let this sync start, and every window that blocks it now allows it to go on.
        Some(state) if windows.runs_on(state) => WindowGate::Open,
        Some(state) => {
            let mut held = state.clone();
            let reason = windows.reason.as_deref().unwrap_or("no window allows it now");
            held.message = Some(format!("Sync operation blocked by sync window: {reason}"));
            WindowGate::Held(held)
        }
        None => WindowGate::Refused(finish(started(op), OperationPhase::Failed, refusal, None)),
    }
}

/// An operation that starts now: Running, nothing done yet.
fn started(op: &Operation) -> OperationState {
    OperationState {
        operation: op.clone(),
        phase: OperationPhase::Running.to_string(),
        message: None,
        sync_result: None,
        started_at: now(),
        finished_at: None,
        retry_count: None,
    }
}

pub(crate) fn finish(
    mut state: OperationState,
    phase: OperationPhase,
    message: String,
    result: Option<SyncOperationResult>,
) -> OperationState {
    state.phase = phase.to_string();
    state.message = Some(message);
    state.sync_result = result.or(state.sync_result);
    state.finished_at = Some(now());
    state
}

/// Unique to one attempt of one operation: its start time and retry count.
pub(crate) fn run_id(state: &OperationState) -> String {
    short_id(&(&state.started_at, state.retry_count.unwrap_or(0)))
}

/// Ten hex digits identifying `value` (hook runs are annotated with it).
pub(crate) fn short_id(value: &impl serde::Serialize) -> String {
    format!("{:010x}", hash_of(value) & 0xff_ffff_ffff)
}

pub(crate) fn record_from(r: &ResourceResult) -> Option<sync::Record> {
    let phase = sync::hooks::Phase::parse(r.sync_phase.as_deref().unwrap_or("Sync"))?;
    Some(sync::Record {
        key: ResourceKey::new(&r.group, &r.kind, &r.namespace, &r.name),
        version: r.version.clone(),
        phase,
        hook: r.hook_type.is_some(),
        status: OutcomeStatus::parse(r.status.as_deref().unwrap_or_default())?,
        hook_phase: r.hook_phase.as_deref().and_then(sync::HookPhase::parse),
        message: r.message.clone().unwrap_or_default(),
        images: r.images.clone(),
    })
}

pub(crate) fn result_from(r: &sync::Record) -> ResourceResult {
    ResourceResult {
        group: r.key.group.clone(),
        version: r.version.clone(),
        kind: r.key.kind.clone(),
        namespace: r.key.namespace.clone(),
        name: r.key.name.clone(),
        status: Some(r.status.as_str().into()),
        message: Some(r.message.clone()),
        hook_type: r.hook.then(|| r.phase.as_str().to_string()),
        hook_phase: r.hook_phase.map(|p| p.as_str().to_string()),
        sync_phase: Some(r.phase.as_str().into()),
        images: r.images.clone(),
    }
}

/// What the sync executor sees of the cluster: the cache, plus this controller's own recent writes.
pub(crate) struct OperationWorld<'a> {
    controller: &'a Controller,
    app: &'a str,
    settings: Arc<crate::Settings>,
    /// The application's destination: every read and write of the operation goes there.
    destination: &'a Cluster,
    cluster: sync::run::ClusterWrites<'a>,
}

impl<'a> OperationWorld<'a> {
    pub(crate) fn new(controller: &'a Controller, app: &'a str, destination: &'a Cluster) -> Self {
        let cluster = sync::run::ClusterWrites { client: &destination.client, cache: &destination.cache };
        OperationWorld { controller, app, settings: controller.settings(), destination, cluster }
    }
}

impl sync::run::World for OperationWorld<'_> {
    fn live(&self, key: &ResourceKey) -> Option<Arc<serde_json::Value>> {
        self.controller.live_view(self.app, key, self.destination)
    }

    fn hook_instance(&self, run: &str) -> Option<Arc<serde_json::Value>> {
        let is_run = |o: &serde_json::Value| {
            o["metadata"]["annotations"][sync::hooks::HOOK_RUN_ANNOTATION].as_str() == Some(run)
        };
        let found = self.destination.cache.tracked_by(self.app).into_iter().find(|(_, o)| is_run(o));
        if let Some((key, _)) = found {
            return self.controller.live_view(self.app, &key, self.destination);
        }
        // Created a moment ago, not in the watch yet.
        let memo = self.controller.memo.lock();
        let recent = memo
            .get(self.app)?
            .applied
            .iter()
            .find(|(_, (o, at))| is_run(o) && at.elapsed() < Duration::from_secs(10));
        let (key, (obj, _)) = recent?;
        // Gone from the cluster although the watch has caught up with it: deleted.
        let rv = |o: &serde_json::Value| o["metadata"]["resourceVersion"].as_str().map(str::to_string);
        match self.destination.cache.get(key) {
            Some(c) if rv(&c) != rv(obj) => Some(c),
            _ => Some(obj.clone()),
        }
    }

    fn health(&self, obj: &serde_json::Value) -> Option<health::Health> {
        self.settings.health(obj)
    }

    fn stored(&self, key: &ResourceKey, obj: Arc<serde_json::Value>) {
        let mut memo = self.controller.memo.lock();
        let m = memo.entry(self.app.to_string()).or_default();
        m.applied.retain(|_, (_, at)| at.elapsed() < Duration::from_secs(10));
        m.applied.insert(key.clone(), (obj, Instant::now()));
    }

    async fn kind(
        &self,
        gk: &berth_engine::resource::GroupKind,
    ) -> Result<berth_engine::cache::KindInfo, berth_engine::cache::CacheError> {
        self.cluster.kind(gk).await
    }

    async fn rediscover(&self) {
        self.cluster.rediscover().await
    }

    async fn exists(&self, key: &ResourceKey) -> bool {
        self.cluster.exists(key).await
    }

    async fn apply(
        &self,
        info: &berth_engine::cache::KindInfo,
        obj: &serde_json::Value,
        mode: berth_engine::apply::ApplyMode,
    ) -> Result<serde_json::Value, kube::Error> {
        if !mode.dry_run {
            self.controller.replicas.check(self.app)?;
        }
        self.cluster.apply(info, obj, mode).await
    }

    async fn create(
        &self,
        info: &berth_engine::cache::KindInfo,
        obj: &serde_json::Value,
    ) -> Result<serde_json::Value, kube::Error> {
        self.controller.replicas.check(self.app)?;
        self.cluster.create(info, obj).await
    }

    async fn delete(
        &self,
        info: &berth_engine::cache::KindInfo,
        key: &ResourceKey,
        propagation: PropagationPolicy,
        dry_run: bool,
    ) -> Result<(), kube::Error> {
        if !dry_run {
            self.controller.replicas.check(self.app)?;
        }
        self.cluster.delete(info, key, propagation, dry_run).await
    }
}

/// The engine's options for an operation: the spec's sync options with the operation's after them
/// (`options`), its prune and dry-run flags, the resources it is limited to, and what the last compare
/// verified (`verdict`: whether an object, as desired now, was found in sync; `None`: not compared).
pub(crate) fn engine_options(
    app: &Application,
    sync_op: &SyncOperation,
    options: &[String],
    target: &Target,
    verdict: impl Fn(&Desired) -> Option<(bool, String)>,
) -> SyncOptions {
    let dest_ns = app.spec.destination.namespace.clone().filter(|n| !n.is_empty());
    let create_namespace = has_option(options, "CreateNamespace=true").then(|| {
        let meta = app
            .spec
            .sync_policy
            .as_ref()
            .and_then(|p| p.managed_namespace_metadata.clone())
            .unwrap_or_default();
        ManagedNamespace {
            name: dest_ns.clone().unwrap_or_else(|| "default".into()),
            labels: meta.labels.into_iter().map(|(k, v)| (k, v.into())).collect(),
            annotations: meta.annotations.into_iter().map(|(k, v)| (k, v.into())).collect(),
        }
    });
    let only = (!sync_op.resources.is_empty()).then(|| {
        sync_op
            .resources
            .iter()
            .map(|r| {
                let group = r.group.clone().unwrap_or_default();
                let ns = r.namespace.clone().filter(|n| !n.is_empty());
                let found = target.objects.iter().find(|d| {
                    d.key.kind == r.kind
                        && d.key.name == r.name
                        && d.key.group == group
                        && ns.as_ref().is_none_or(|n| *n == d.key.namespace)
                });
                found
                    .map(|d| d.key.clone())
                    .unwrap_or_else(|| ResourceKey::new(&group, &r.kind, &ns.unwrap_or_default(), &r.name))
            })
            .collect()
    });
    let out_of_sync_only = has_option(options, "ApplyOutOfSyncOnly=true");
    let mut skip = HashSet::new();
    let mut verified = HashSet::new();
    let mut in_sync_at = HashMap::new();
    for d in &target.objects {
        if let Some((in_sync, rv)) = verdict(d) {
            verified.insert(d.key.clone());
            if in_sync && out_of_sync_only {
                skip.insert(d.key.clone());
            } else if in_sync {
                in_sync_at.insert(d.key.clone(), rv);
            }
        }
    }
    SyncOptions {
        prune: sync_op.prune.unwrap_or(false),
        dry_run: sync_op.dry_run.unwrap_or(false),
        prune_last: has_option(options, "PruneLast=true"),
        create_namespace,
        only,
        skip,
        prune_propagation: match option_value(options, "PrunePropagationPolicy") {
            Some("background") => Some(PropagationPolicy::Background),
            Some("orphan") => Some(PropagationPolicy::Orphan),
            _ => Some(PropagationPolicy::Foreground),
        },
        replace: has_option(options, "Replace=true"),
        force: has_option(options, "Force=true")
            || sync_op.sync_strategy.as_ref().is_some_and(|s| {
                s.apply
                    .as_ref()
                    .and_then(|a| a.force)
                    .or(s.hook.as_ref().and_then(|h| h.force))
                    .unwrap_or(false)
            }),
        no_validate: has_option(options, "Validate=false"),
        skip_dry_run_on_missing: has_option(options, "SkipDryRunOnMissingResource=true"),
        verified,
        prune_confirmed: app
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(annotations::DELETION_APPROVED)),
        client_side: client_side_managers(app, options),
        server_side: has_option(options, "ServerSideApply=true"),
        // Argo CD's `apply` strategy (rollbacks use it): kubectl apply of the objects, no hooks.
        no_hooks: sync_op.sync_strategy.as_ref().is_some_and(|s| s.apply.is_some() && s.hook.is_none()),
        in_sync: in_sync_at,
    }
}

impl Controller {
    /// The target an operation syncs, and its sources: a resumed operation keeps the commits it started
    /// with, a rollback brings its own source(s), a requested revision is resolved afresh. The pass's own
    /// target serves when it is that same one (an automatic sync always; no second render or prepare).
    async fn operation_target<'t>(
        &self,
        app: &Application,
        sync_op: &SyncOperation,
        state: &OperationState,
        level: Level,
        pass_target: Option<&'t Target>,
    ) -> Result<(Cow<'t, Target>, Vec<ApplicationSource>), TargetError> {
        let pinned: Option<Vec<String>> = state.sync_result.as_ref().and_then(|r| {
            if !r.revisions.is_empty() {
                Some(r.revisions.clone())
            } else {
                (!r.revision.is_empty()).then(|| vec![r.revision.clone()])
            }
        });
        let requested: Option<Vec<String>> = if !sync_op.revisions.is_empty() {
            Some(sync_op.revisions.clone())
        } else {
            sync_op.revision.clone().filter(|r| !r.is_empty()).map(|r| vec![r])
        };
        let spec_sources = self.validate(app)?;
        let own_sources = sync_op.sources.is_empty() && sync_op.source.is_none();
        let sources = if !sync_op.sources.is_empty() {
            sync_op.sources.clone()
        } else if let Some(source) = &sync_op.source {
            vec![source.clone()]
        } else {
            spec_sources
        };
        let revisions = pinned.or(requested);
        if own_sources
            && let (Some(target), Some(wanted)) = (pass_target, revisions.as_deref())
            && target.commits() == wanted
        {
            return Ok((Cow::Borrowed(target), sources));
        }
        let target =
            self.target(app, &sources, revisions.as_deref(), level.max(Level::Refresh), true).await?;
        Ok((Cow::Owned(target), sources))
    }

    /// Advances a sync operation by one step and returns its state: Running (recorded, and continued on
    /// the next pass: after a restart too), or finished. The first step records Running before anything
    /// is applied; every step records what it did before the next one starts.
    pub(crate) async fn run_operation(
        &self,
        app: &Application,
        op: &Operation,
        status: &mut ApplicationStatus,
        rv: &mut String,
        level: Level,
        pass_target: Option<&Target>,
    ) -> Result<OperationState, Error> {
        let name = self.instance_of(app);
        let sync_op = op.sync.clone().unwrap_or_default();
        let resumed = status
            .operation_state
            .clone()
            .filter(|s| !OperationPhase::of(s).is_completed() && s.operation == *op);
        let mut state = match resumed {
            // The API server asked for it to stop (Argo CD's terminate): it ends here, as Failed.
            Some(state) if OperationPhase::of(&state) == OperationPhase::Terminating => {
                tracing::info!(app = %name, "sync terminated");
                self.count_sync(app, OperationPhase::Failed.as_str());
                return Ok(finish(state, OperationPhase::Failed, "Operation terminated".into(), None));
            }
            Some(state) => state,
            None => {
                let state = started(op);
                status.operation_state = Some(state.clone());
                // Recorded before anything is applied; if the copy was stale, nothing has happened yet.
                self.write_status(&name, rv, status).await?;
                state
            }
        };
        let retry = op.retry.clone().or_else(|| app.spec.sync_policy.as_ref().and_then(|p| p.retry.clone()));
        // A failed attempt waits out its backoff before the next one starts afresh.
        if let (Some(count), Some(failed_at)) = (state.retry_count.filter(|c| *c > 0), &state.finished_at) {
            let wait = crate::retry::backoff(retry.as_ref(), count);
            let elapsed = k8s_openapi::jiff::Timestamp::now().as_second() - failed_at.0.as_second();
            if elapsed < wait.as_secs() as i64 {
                self.requeue_after(&name, wait - Duration::from_secs(elapsed.max(0) as u64));
                return Ok(state);
            }
            state.finished_at = None;
            state.sync_result = state.sync_result.map(|r| SyncOperationResult { resources: vec![], ..r });
        }
        let (target, sources) = match self.operation_target(app, &sync_op, &state, level, pass_target).await {
            Ok((t, sources)) if t.errors.is_empty() => (t, sources),
            Ok((t, _)) => {
                let message = format!("ComparisonError: {}", t.errors.join("; "));
                return Ok(finish(state, OperationPhase::Error, message, None));
            }
            Err(e) => return Ok(finish(state, OperationPhase::Error, format!("ComparisonError: {e}"), None)),
        };
        let target: &Target = &target;
        let cluster = match self.cluster_of(app) {
            Ok(cluster) => cluster,
            Err(e) => return Ok(finish(state, OperationPhase::Error, format!("ComparisonError: {e}"), None)),
        };
        // Nothing is applied to, or pruned from, a cluster that does not answer (its cache holds what was
        // there before): the operation stays Running, saying why, until the cluster is back; a termination
        // still ends it.
        if let Err(unreachable) = cluster.reachable().await {
            tracing::info!(app = %name, %unreachable, "sync waits for its cluster");
            state.message = Some(format!("waiting for the destination: {unreachable}"));
            self.requeue_after(&name, super::UNREACHABLE_RECHECK);
            return Ok(state);
        }
        let options = sync_options(app, Some(&sync_op));
        let automated = app.spec.sync_policy.as_ref().and_then(|p| p.automated.as_ref());
        if target.objects.iter().all(|d| berth_engine::sync::hooks::is_hook(&d.object))
            && !automated.and_then(|a| a.allow_empty).unwrap_or(false)
            && op.initiated_by.as_ref().and_then(|i| i.automated) == Some(true)
        {
            return Ok(finish(
                state,
                OperationPhase::Failed,
                "Skipping sync: the source rendered no objects and allowEmpty is false".into(),
                None,
            ));
        }
        if has_option(&options, "FailOnSharedResource=true")
            && let Some(shared) = self.shared_resources(&name, target, &cluster).first()
        {
            return Ok(finish(
                state,
                OperationPhase::Failed,
                format!("FailOnSharedResource: {shared}; nothing was applied"),
                None,
            ));
        }
        let opts = self.sync_options_for(app, &sync_op, &options, target);
        let mut desired: Vec<serde_json::Value> = target.objects.iter().map(|d| d.object.clone()).collect();
        if has_option(&options, "RespectIgnoreDifferences=true") {
            let rules = self.settings().ignore_rules_for(app);
            for (d, object) in target.objects.iter().zip(desired.iter_mut()) {
                let Some(live) = self.live_view(&name, &d.key, &cluster) else { continue };
                if !rules.iter().any(|r| r.matches(&d.key)) {
                    continue;
                }
                // Rules by field manager need the managedFields the cache does not keep.
                let live = if rules.iter().any(|r| r.matches(&d.key) && !r.managed_fields_managers.is_empty())
                    && let Ok(info) = cluster.cache.kind(&d.key.group_kind()).await
                    && let Ok(Some(full)) = berth_engine::apply::get(&cluster.client, &info, &d.key).await
                {
                    Arc::new(full)
                } else {
                    live
                };
                if let Err(e) = normalize::respect_ignored(object, &live, &d.key, &rules) {
                    return Ok(finish(
                        state,
                        OperationPhase::Error,
                        format!("{}: {}: {e}", d.file, d.key),
                        None,
                    ));
                }
            }
        }
        // The prune set: only objects the project permits, whoever else carries this app's tracking id.
        let (tracked, refused) = self.permitted_tracked(app, &cluster);
        for kind in target.objects.iter().map(|d| d.key.group_kind()).collect::<BTreeSet<_>>() {
            let _ = cluster.cache.ensure_watched(&kind).await;
        }
        let mut tasks = sync::plan::tasks(&desired, &tracked, &opts);
        // Hooks with neither name nor generateName get Argo CD's name, the same on every pass of this run.
        sync::plan::name_hooks(&mut tasks, &target.revision, state.started_at.0.as_second());
        let run_id = run_id(&state);
        let records: Vec<sync::Record> =
            state.sync_result.iter().flat_map(|r| &r.resources).filter_map(record_from).collect();
        let world = OperationWorld::new(self, &name, &cluster);
        let mut execution = sync::run::Operation::new(&world, &tasks, &opts, &run_id, records);
        let progress = execution.advance().await;
        let multi = !app.spec.sources.is_empty() || sources.len() > 1;
        let source = if multi { None } else { sources.first().cloned() };
        let multi_sources = if multi { sources.clone() } else { vec![] };
        let result = SyncOperationResult {
            resources: execution.records.iter().map(result_from).collect(),
            revision: target.revision.clone(),
            revisions: target.revisions.clone(),
            source: source.clone(),
            sources: multi_sources.clone(),
            ..Default::default()
        };
        let commit = target.commit.as_ref();
        match progress {
            sync::run::Progress::Running(message) => {
                tracing::debug!(app = %name, %message, "sync running");
                state.message = Some(message);
                state.sync_result = Some(result);
                // Watch events of the objects move it on; this is the fallback.
                self.requeue_after(&name, Duration::from_secs(2));
                Ok(state)
            }
            sync::run::Progress::Failed(message) => {
                let count = state.retry_count.unwrap_or(0);
                if crate::retry::allowed(retry.as_ref(), count) && !opts.dry_run {
                    let next = count.saturating_add(1);
                    let wait = crate::retry::backoff(retry.as_ref(), next);
                    tracing::info!(app = %name, attempt = next, ?wait, %message, "sync failed, retrying");
                    state.message =
                        Some(format!("{message}. Retrying attempt #{next} in {}s", wait.as_secs()));
                    state.retry_count = Some(next);
                    state.finished_at = Some(now());
                    state.sync_result = Some(result);
                    self.requeue_after(&name, wait);
                    return Ok(state);
                }
                tracing::info!(app = %name, revision = %target.revision, %message, "sync failed");
                self.count_sync(app, OperationPhase::Failed.as_str());
                Ok(finish(state, OperationPhase::Failed, message, Some(result)))
            }
            sync::run::Progress::Succeeded(mut message) => {
                if opts.prune && !refused.is_empty() {
                    let project = if app.spec.project.is_empty() { "default" } else { &app.spec.project };
                    message.push_str(&format!(
                        "; {} tracked resource(s) not permitted in project '{project}' were not pruned",
                        refused.len()
                    ));
                }
                tracing::info!(
                    app = %name,
                    revision = %target.revision,
                    author = commit.map(|c| c.author.as_str()).unwrap_or_default(),
                    message = commit.map(|c| c.message.lines().next().unwrap_or_default()).unwrap_or_default(),
                    resources = result.resources.len(),
                    "sync finished"
                );
                self.count_sync(
                    app,
                    if opts.dry_run { "DryRun" } else { OperationPhase::Succeeded.as_str() },
                );
                let state = finish(state, OperationPhase::Succeeded, message, Some(result));
                if !opts.dry_run {
                    push_history(
                        &mut status.history,
                        RevisionHistory {
                            revision: Some(target.revision.clone()),
                            revisions: target.revisions.clone(),
                            deployed_at: state.finished_at.clone().unwrap_or_else(now),
                            id: 0,
                            source,
                            sources: multi_sources,
                            deploy_started_at: Some(state.started_at.clone()),
                            initiated_by: op.initiated_by.clone(),
                            revision_metadata: target.commit.as_ref().map(|c| RevisionMetadata {
                                author: Some(c.author.clone()),
                                date: Some(c.date.clone()),
                                message: Some(c.message.clone()),
                                tags: vec![],
                            }),
                        },
                        app.spec.revision_history_limit,
                    );
                }
                Ok(state)
            }
        }
    }

    /// The engine's options for this operation ([`engine_options`]), with the verdicts of the last compare.
    pub(crate) fn sync_options_for(
        &self,
        app: &Application,
        sync_op: &SyncOperation,
        options: &[String],
        target: &Target,
    ) -> SyncOptions {
        let name = self.instance_of(app);
        let memo = self.memo.lock();
        let verdicts = memo.get(&name).map(|m| &m.verdicts);
        engine_options(app, sync_op, options, target, |d| {
            let (h, rv, _, in_sync) = verdicts?.get(&d.key)?;
            (*h == hash_of(&d.object)).then(|| (*in_sync, rv.clone()))
        })
    }

    pub(crate) fn count_sync(&self, app: &Application, phase: &str) {
        let project = if app.spec.project.is_empty() { "default" } else { &app.spec.project };
        crate::metrics::global().synced(
            app.metadata.name.as_deref().unwrap_or_default(),
            app.metadata.namespace.as_deref().unwrap_or(&self.config.namespace),
            project,
            phase,
        );
    }
}

#[cfg(test)]
mod tests;
