//! One application's pass, stage by stage: **target** (resolve the revision, render or reuse a render,
//! prepare the objects) → **compare** (desired against live) → **operate** (the requested sync, or an
//! automatic one) → **status** (the one writer of the Application's status). `finalize` runs instead when
//! the Application is being deleted.
//!
//! Safety rules: when git or rendering fails, or an object cannot be prepared, nothing is applied or
//! pruned; the last good state stays in the cluster and a condition names the file and object.

mod compare;
mod finalize;
mod operate;
pub(crate) mod status;
pub(crate) mod target;

use berth_repo::render::Rendered;

use berth_api::Application;
use berth_api::annotations;
use berth_api::application::{
    ApplicationSource, ApplicationStatus, Operation, OperationInitiator, OperationState, SyncOperation,
    SyncStatus,
};
use berth_api::codes::{ConditionType, OperationPhase, SyncCode};
use berth_engine::managed_fields::ClientSideManagers;
use berth_engine::resource::ResourceKey;
use kube::api::{Patch, PatchParams};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::clusters::Cluster;
use crate::{Controller, Error, Level, credentials, project};
use operate::{AutoSync, WindowGate};
use status::same_ignoring_time;
use status::{merge_conditions, now};

/// How soon an application a sync window holds back is looked at again.
const WINDOW_RECHECK: Duration = Duration::from_secs(30);
/// How soon an application whose cluster does not answer is looked at again (its cluster's watches may
/// resume without any object changing, so no watch event brings it back).
pub(crate) const UNREACHABLE_RECHECK: Duration = Duration::from_secs(10);

/// What the controller remembers of an application between passes (never the source of truth: status is).
#[derive(Default)]
pub struct Memo {
    /// Resolved commit by source fingerprint.
    pub(crate) resolved: HashMap<u64, String>,
    pub next_refresh: Option<Instant>,
    /// Compare verdicts by object: (desired hash, live resourceVersion, ignore-rules hash) → in sync. Only
    /// the verdict is kept, not the predicted object, so memory stays flat with thousands of objects.
    pub(crate) verdicts: HashMap<ResourceKey, (u64, String, u64, bool)>,
    /// The render this application's current target uses (keeps it alive in the shared render cache),
    /// and the source and commit it was made for.
    pub(crate) rendered: Option<Arc<Rendered>>,
    pub(crate) rendered_from: Option<(u64, String)>,
    /// What the last sync stored, used until the watch delivers it (read-your-writes).
    pub(crate) applied: HashMap<ResourceKey, (Arc<serde_json::Value>, Instant)>,
    /// resourceVersion of berth's last write to the Application: an older copy from the watch is stale.
    pub(crate) written: Option<u64>,
    /// When the pass in progress started.
    pub(crate) pass_started: Option<Instant>,
    /// A refresh was asked for in this process (a webhook, the API's `?refresh`), as the refresh
    /// annotation asks for one: the next pass must see every commit pushed before it.
    pub(crate) refresh_requested: bool,
    /// The pass in progress is such an explicit refresh.
    pub(crate) pass_explicit: bool,
    /// What events were last reported from (sync and health status, operation): see `events::between`.
    pub(crate) reported: Option<ApplicationStatus>,
    /// Passes this process finished (successfully or not) for the application.
    pub(crate) passes: u64,
    /// When a delayed requeue ([`Controller::requeue_after`]) is due: one timer per application, so
    /// passes that each ask for a wake-up (a long backoff, a window) do not pile up sleeping tasks.
    pub(crate) wake_at: Option<Instant>,
}

/// How long a pass waits for the cluster's watch to show what its sync applied ([`Controller::compare_after_sync`]).
const AFTER_SYNC_WAIT: Duration = Duration::from_millis(500);

/// Jitter derived from the name: spreads applications' polls evenly and stays stable across passes.
fn jitter(name: &str, settings: &crate::Settings) -> Duration {
    let spread = settings.jitter.as_millis() as u64;
    Duration::from_millis(if spread == 0 { 0 } else { hash_of(&name) % spread })
}

pub(crate) fn hash_of(value: &impl serde::Serialize) -> u64 {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    let digest = Sha256::digest(&bytes);
    u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// What, in an Application, asks for a new pass when it changes (not status, which berth writes itself).
pub fn fingerprint(app: &Application) -> u64 {
    hash_of(&(
        &app.spec,
        &app.operation,
        &app.metadata.annotations,
        &app.metadata.deletion_timestamp,
        &app.metadata.finalizers,
    ))
}

pub fn refresh_annotation(app: &Application) -> Option<&str> {
    app.metadata.annotations.as_ref()?.get(annotations::REFRESH).map(String::as_str)
}

pub(crate) fn single_source(app: &Application) -> Option<&ApplicationSource> {
    app.spec.source.as_ref().or_else(|| (app.spec.sources.len() == 1).then(|| &app.spec.sources[0]))
}

/// The application's sources: `spec.sources`, or `spec.source` alone.
pub(crate) fn app_sources(app: &Application) -> Vec<ApplicationSource> {
    if app.spec.sources.is_empty() {
        app.spec.source.iter().cloned().collect()
    } else {
        app.spec.sources.clone()
    }
}

pub(crate) fn sync_options(app: &Application, op: Option<&SyncOperation>) -> Vec<String> {
    let mut options: Vec<String> =
        app.spec.sync_policy.as_ref().map(|p| p.sync_options.clone()).unwrap_or_default();
    if let Some(op) = op {
        options.extend(op.sync_options.iter().cloned());
    }
    options
}

pub(crate) fn has_option(options: &[String], wanted: &str) -> bool {
    options.iter().any(|o| o.trim().eq_ignore_ascii_case(wanted))
}

/// The client-side-apply managers whose fields berth's apply takes over for `app`: Argo CD's
/// `ClientSideApplyMigration=false` sync option and migration-manager annotation decide.
pub(crate) fn client_side_managers(app: &Application, options: &[String]) -> ClientSideManagers {
    let custom = app
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(annotations::CLIENT_SIDE_APPLY_MIGRATION_MANAGER));
    ClientSideManagers::for_app(
        !has_option(options, "ClientSideApplyMigration=false"),
        custom.map(String::as_str),
    )
}

pub(crate) fn option_value<'a>(options: &'a [String], key: &str) -> Option<&'a str> {
    options.iter().rev().find_map(|o| o.trim().strip_prefix(key)?.strip_prefix('='))
}

/// What one pass carries from stage to stage until the status stage writes it.
struct PassState {
    /// The status being built, starting from the stored one.
    status: ApplicationStatus,
    old_status: ApplicationStatus,
    /// resourceVersion of the copy this pass acts on (moved on by each of its own writes).
    rv: String,
    conditions: Vec<(ConditionType, String)>,
    /// Where in `conditions` the compare's are, for a compare after a sync to replace them.
    compare_conditions: std::ops::Range<usize>,
    ran_operation: bool,
    /// A requested operation that finished: removed from the Application in the status write.
    clear_operation: Option<Operation>,
}

impl PassState {
    fn new(app: &Application, settings: &crate::Settings, rv: String) -> Self {
        let status = app.status.clone().unwrap_or_default();
        PassState {
            old_status: status.clone(),
            status,
            rv,
            conditions: settings.warnings.iter().map(|w| (ConditionType::UnknownError, w.clone())).collect(),
            compare_conditions: 0..0,
            ran_operation: false,
            clear_operation: None,
        }
    }

    /// Records an operation's step; `requested` is the Application's own operation, removed once done.
    fn operation_ran(&mut self, state: OperationState, requested: Option<Operation>) {
        let phase = OperationPhase::of(&state);
        if phase.is_failure()
            && let Some(message) = &state.message
        {
            self.conditions.push((ConditionType::SyncError, message.clone()));
        }
        if phase.is_completed() {
            self.clear_operation = requested;
        }
        self.status.operation_state = Some(state);
        self.ran_operation = true;
    }
}

impl Controller {
    pub(crate) async fn reconcile(&self, name: &str, level: Level) -> Result<(), Error> {
        let result = self.reconcile_once(name, level).await;
        if let Some(memo) = self.memo.lock().get_mut(name) {
            memo.passes += 1;
        }
        result
    }

    /// How many passes this process finished for the application `name` (an instance name: `name` in the
    /// control namespace, `namespace_name` elsewhere); what a test or a probe waits on to know a restarted
    /// controller reached every application, without asking it to write anything.
    pub fn passes(&self, name: &str) -> u64 {
        self.memo.lock().get(name).map_or(0, |m| m.passes)
    }

    async fn reconcile_once(&self, name: &str, level: Level) -> Result<(), Error> {
        let Some(app) = self.application(name) else {
            // Deleted: forget it, so a new Application of the same name starts fresh.
            self.memo.lock().remove(name);
            self.seen.lock().remove(name);
            return Ok(());
        };
        if !self.replicas.owns(name) || !self.prepared.load(std::sync::atomic::Ordering::Acquire) {
            // Another replica's (or nobody's yet): what this one knew of it would be stale when it comes back.
            // Before the replica is prepared the share's follower queues it again (it has no memo).
            self.memo.lock().remove(name);
            return Ok(());
        }
        let app: Application = (*app).clone();
        let rv = app.metadata.resource_version.clone().unwrap_or_default();
        let written = self.memo.lock().get(name).and_then(|m| m.written);
        if written.is_some_and(|w| rv.parse::<u64>().is_ok_and(|r| r < w)) {
            // Acting on a copy older than our own last write could repeat a sync: wait for the watch. A refresh
            // requested meanwhile stays requested for the pass that runs then.
            return Err(Error::Stale);
        }
        let explicit = {
            let mut memo = self.memo.lock();
            let memo = memo.entry(name.to_string()).or_default();
            memo.pass_started = Some(Instant::now());
            memo.pass_explicit = std::mem::take(&mut memo.refresh_requested);
            memo.pass_explicit
        };
        // A refresh requested while this app was queued for something lesser (a watch event) is this pass's.
        let level = if explicit { level.max(Level::Refresh) } else { level };
        // An operation under way when the Application is deleted ends (or is terminated) first, as in
        // Argo CD; the passes meanwhile carry it on, and start nothing new.
        let operating = app
            .status
            .as_ref()
            .and_then(|s| s.operation_state.as_ref())
            .is_some_and(|s| !OperationPhase::of(s).is_completed());
        if app.metadata.deletion_timestamp.is_some() && !operating {
            return self.finalize(&app).await;
        }
        if annotations::skips_reconcile(app.metadata.annotations.as_ref()) {
            tracing::debug!(app = name, "skip-reconcile is set: not reconciled");
            return Ok(());
        }
        let settings = self.settings();
        let annotation = refresh_annotation(&app).map(str::to_string);
        let level = match annotation.as_deref() {
            Some("hard") => Level::HardRefresh,
            Some(_) => level.max(Level::Refresh),
            None => level,
        };
        let mut pass = PassState::new(&app, &settings, rv);
        // Target: the desired state at the revision git names now.
        let target = match self.validate(&app) {
            Ok(sources) => self.target(&app, &sources, None, level, false).await,
            Err(e) => Err(e),
        };
        self.schedule_poll(name, level);
        // Compare: desired against live, into status.
        let comparison = match &target {
            Err(e) => {
                pass.conditions.push((e.condition(), e.to_string()));
                // Health does not depend on git: it is still assessed from the live objects (of a cluster
                // the destination still names).
                if let Ok(cluster) = self.cluster_of(&app) {
                    let tracked = self.permitted_tracked(&app, &cluster).0;
                    let health = compare::health_without_target(&mut pass.status.resources, &tracked, |l| {
                        settings.health(l)
                    });
                    pass.status.health = Some(compare::app_health(pass.status.health.as_ref(), health));
                }
                pass.status.sync = Some(SyncStatus {
                    status: SyncCode::Unknown.to_string(),
                    compared_to: Some(self.compared_to(&app)),
                    revision: pass.status.sync.as_ref().and_then(|s| s.revision.clone()),
                    revisions: vec![],
                });
                None
            }
            Ok(target) => match self.cluster_of(&app) {
                // The validated destination went away since (its cluster Secret was deleted).
                Err(e) => {
                    pass.conditions.push((e.condition(), e.to_string()));
                    None
                }
                Ok(cluster) => {
                    if let Some(new_rv) = self.ensure_deletion_finalizers(&app, target).await? {
                        pass.rv = new_rv;
                    }
                    match self.compare_reachable(&app, target, &cluster, &settings).await {
                        Ok(cmp) => {
                            let start = pass.conditions.len();
                            pass.conditions.extend(cmp.conditions(target));
                            pass.compare_conditions = start..pass.conditions.len();
                            self.apply_comparison(&app, &mut pass.status, target, &cmp);
                            Some(cmp)
                        }
                        // Nothing is known of the live state: Unknown, and no automatic sync.
                        Err(unreachable) => {
                            pass.conditions.push((ConditionType::ComparisonError, unreachable));
                            pass.status.sync = Some(SyncStatus {
                                status: SyncCode::Unknown.to_string(),
                                compared_to: Some(self.compared_to(&app)),
                                revision: Some(target.revision.clone()),
                                revisions: target.revisions.clone(),
                            });
                            self.requeue_after(name, UNREACHABLE_RECHECK);
                            None
                        }
                    }
                }
            },
        };
        // Operate: the requested operation, one still running, or an automatic sync.
        self.operate(&app, target.as_ref().ok(), comparison.as_ref(), &settings, &mut pass, level).await?;
        if let (Ok(target), Some(_)) = (&target, &comparison) {
            self.compare_after_sync(&app, target, &settings, &mut pass).await;
        }
        // Status: one write of everything this pass found and did.
        self.record(name, &app, pass, annotation.is_some()).await
    }

    /// The comparison of `target` with `cluster`, or why the cluster cannot be read: it is asked first
    /// whether it answers, and again when the compare found errors (it may have gone away meanwhile, and
    /// then its cache holds only what was there before).
    async fn compare_reachable(
        &self,
        app: &Application,
        target: &target::Target,
        cluster: &Cluster,
        settings: &crate::Settings,
    ) -> Result<compare::Comparison, String> {
        cluster.reachable().await?;
        let cmp = self.compare(app, target, cluster, settings).await;
        if !cmp.errors.is_empty() {
            cluster.probe().await?;
        }
        Ok(cmp)
    }

    /// After a sync of the pass's target that succeeded in this pass, compares again, so that the status
    /// write recording the sync also says Synced: the next pass finds nothing to write, and a first sync
    /// costs two Application writes (Running, then this one) instead of three. The cluster's watch brings
    /// the applied objects within milliseconds; the compare is tried again until it is Synced, for at most
    /// [`AFTER_SYNC_WAIT`], and otherwise left to the next pass (a sync that leaves the app OutOfSync, a
    /// dry run or a partial sync keep the compare made before it).
    async fn compare_after_sync(
        &self,
        app: &Application,
        target: &target::Target,
        settings: &crate::Settings,
        pass: &mut PassState,
    ) {
        let synced_whole_target = pass.ran_operation
            && pass.status.operation_state.as_ref().is_some_and(|s| {
                OperationPhase::of(s) == OperationPhase::Succeeded
                    && s.sync_result
                        .as_ref()
                        .is_some_and(|r| r.revision == target.revision && r.revisions == target.revisions)
                    && s.operation
                        .sync
                        .as_ref()
                        .is_some_and(|o| o.dry_run != Some(true) && o.resources.is_empty())
            });
        if !synced_whole_target {
            return;
        }
        let Ok(cluster) = self.cluster_of(app) else { return };
        let deadline = Instant::now() + AFTER_SYNC_WAIT;
        loop {
            let Ok(cmp) = self.compare_reachable(app, target, &cluster, settings).await else { return };
            if cmp.sync_status == SyncCode::Synced {
                self.apply_comparison(app, &mut pass.status, target, &cmp);
                let range = std::mem::replace(&mut pass.compare_conditions, 0..0);
                pass.conditions.splice(range, cmp.conditions(target));
                return;
            }
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Runs the operation the Application asks for (or one of berth's still running), else decides
    /// whether to sync automatically.
    async fn operate(
        &self,
        app: &Application,
        target: Option<&target::Target>,
        comparison: Option<&compare::Comparison>,
        settings: &crate::Settings,
        pass: &mut PassState,
        level: Level,
    ) -> Result<(), Error> {
        let name = &self.instance_of(app);
        if app.metadata.deletion_timestamp.is_some() {
            // Being deleted: only the operation under way goes on, to its end or its termination.
            let Some(op) = pass
                .status
                .operation_state
                .as_ref()
                .filter(|s| !OperationPhase::of(s).is_completed())
                .map(|s| s.operation.clone())
            else {
                return Ok(());
            };
            let state = self.run_operation(app, &op, &mut pass.status, &mut pass.rv, level, target).await?;
            pass.operation_ran(state, app.operation.clone().filter(|o| *o == op));
            return Ok(());
        }
        // An automatic sync still running (its operation lives only in status) continues first.
        let running_auto = pass
            .status
            .operation_state
            .as_ref()
            .filter(|s| !OperationPhase::of(s).is_completed() && app.operation.is_none())
            .map(|s| s.operation.clone());
        let windows = self.window_state(app);
        if let Some(op) = app.operation.clone().or(running_auto) {
            let running = pass
                .status
                .operation_state
                .as_ref()
                .filter(|s| !OperationPhase::of(s).is_completed() && s.operation == op);
            let state = match operate::window_gate(&op, running, &windows) {
                WindowGate::Open => {
                    self.run_operation(app, &op, &mut pass.status, &mut pass.rv, level, target).await?
                }
                WindowGate::Refused(state) => {
                    tracing::info!(app = name, reason = ?windows.reason, "sync refused by a sync window");
                    self.count_sync(app, OperationPhase::Failed.as_str());
                    state
                }
                WindowGate::Held(state) => {
                    self.requeue_after(name, WINDOW_RECHECK);
                    state
                }
            };
            pass.operation_ran(state, app.operation.is_some().then_some(op));
            return Ok(());
        }
        let (Some(target), Some(cmp)) = (target, comparison) else { return Ok(()) };
        let decision = operate::auto_sync_decision(
            app,
            target,
            cmp.sync_status,
            &pass.status,
            &windows,
            settings.self_heal_paused,
            self.config.self_heal_timeout,
            &self.config.self_heal_backoff,
            k8s_openapi::jiff::Timestamp::now(),
        );
        match decision {
            AutoSync::No => {}
            AutoSync::Blocked(message) => {
                // Nothing else brings the app back when a window closes: look again a little later.
                if !windows.can_sync_auto {
                    self.requeue_after(name, WINDOW_RECHECK);
                }
                pass.conditions.push((ConditionType::SyncError, message))
            }
            AutoSync::Later(after) => self.requeue_after(name, after),
            AutoSync::Now { self_heal, attempts } => {
                let automated =
                    app.spec.sync_policy.as_ref().and_then(|p| p.automated.clone()).unwrap_or_default();
                let op = Operation {
                    sync: Some(SyncOperation {
                        revision: Some(target.revision.clone()),
                        prune: automated.prune,
                        // The self-heal backoff reads it back from the last operation.
                        self_heal_attempts_count: (attempts > 0).then_some(attempts),
                        ..Default::default()
                    }),
                    initiated_by: Some(OperationInitiator { username: None, automated: Some(true) }),
                    ..Default::default()
                };
                tracing::info!(app = name, revision = %target.revision, self_heal, attempts, "auto-sync");
                let state =
                    self.run_operation(app, &op, &mut pass.status, &mut pass.rv, level, Some(target)).await?;
                pass.operation_ran(state, None);
            }
        }
        Ok(())
    }

    /// Writes the pass's status (when something changed, or a refresh asked for it), removes a finished
    /// operation and the refresh annotation.
    async fn record(
        &self,
        name: &str,
        app: &Application,
        mut pass: PassState,
        refresh_asked: bool,
    ) -> Result<(), Error> {
        // The last operation's failure stays a condition until an operation succeeds.
        if !pass.ran_operation
            && let Some(state) = &pass.status.operation_state
            && OperationPhase::of(state).is_failure()
            && let Some(message) = &state.message
            && !pass.conditions.iter().any(|(kind, _)| *kind == ConditionType::SyncError)
        {
            pass.conditions.push((ConditionType::SyncError, message.clone()));
        }
        let PassState {
            mut status, old_status, mut rv, mut conditions, ran_operation, clear_operation, ..
        } = pass;
        if status::bound_sources(&mut status) {
            conditions.push((ConditionType::StatusTooLargeWarning, status::SUMMARISED_MESSAGE.into()));
        }
        status.conditions = merge_conditions(&old_status.conditions, conditions);
        status.controller_namespace = Some(self.config.namespace.clone());
        // A finished operation is removed in the write that records its end (see `write_status_clearing`).
        // A poll or a compare that found nothing new writes nothing (`reconciledAt` moves when the status
        // changes or a refresh annotation asked for it; a webhook's refresh does not): 1,000 settled apps polled every 3 minutes would otherwise
        // write 5.5 statuses a second for nothing (issue 20).
        let wrote = refresh_asked
            || !same_ignoring_time(&old_status, &status)
            || app.status.is_none()
            || clear_operation.is_some();
        let mut refresh_cleared = false;
        if wrote {
            status.reconciled_at = Some(now());
            // The refresh annotation goes in the same write as the status it asked for.
            let clear = status::Clearing { refresh: refresh_asked, operation: clear_operation.is_some() };
            match self.write_status_clearing(name, &mut rv, &status, clear).await {
                Ok(()) => refresh_cleared = refresh_asked,
                // After a sync, its result must be recorded even if the Application changed meanwhile:
                // berth is the only writer of status, so write it onto the fresh copy, keeping a
                // termination the API server requested meanwhile for the next pass to carry out, and an
                // operation requested meanwhile in place of the one that ran.
                Err(Error::Stale) if ran_operation => {
                    let (api, app_name) = self.application_api(name);
                    let fresh = api.get(app_name).await?;
                    rv = fresh.metadata.resource_version.clone().unwrap_or_default();
                    let terminating = fresh
                        .status
                        .as_ref()
                        .and_then(|s| s.operation_state.as_ref())
                        .is_some_and(|s| OperationPhase::of(s) == OperationPhase::Terminating);
                    if terminating
                        && let Some(state) = status.operation_state.as_mut()
                        && OperationPhase::of(state) == OperationPhase::Running
                    {
                        state.phase = OperationPhase::Terminating.to_string();
                        self.requeue_after(name, Duration::ZERO);
                    }
                    let operation = clear_operation.is_some() && fresh.operation == clear_operation;
                    let clear = status::Clearing { refresh: false, operation };
                    self.write_status_clearing(name, &mut rv, &status, clear).await?;
                }
                other => other?,
            }
        }
        if refresh_asked && !refresh_cleared {
            self.replicas.check(name)?;
            let (api, app_name) = self.application_api(name);
            let patch = serde_json::json!({"metadata": {"annotations": {(annotations::REFRESH): null}}});
            let stored = api.patch(app_name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
            self.remember_write(name, &stored);
        }
        if refresh_asked {
            self.recheck_after_clearing(name);
        }
        Ok(())
    }

    /// Asks git once more for an application whose refresh annotation this pass just removed. A second
    /// refresh annotation set while the first was still there (a push during the pass, announced the same
    /// way) changed nothing a watch sees, and this pass's `ls-remote` may have started before that push: the
    /// follow-up pass takes refs from an `ls-remote` started after the removal, so no announced commit
    /// waits for a poll. It writes nothing when nothing moved, and its `ls-remote` is shared with the
    /// others' ([`berth_repo::git::GitCache::resolve_since`]).
    fn recheck_after_clearing(&self, name: &str) {
        self.memo.lock().entry(name.to_string()).or_default().refresh_requested = true;
        self.queue.push(name, Level::Refresh);
    }

    /// Sets when `name` is polled next. The period is read here, under the memo's lock, never from the
    /// pass's snapshot: a pass that took the settings before argocd-cm changed would otherwise schedule its
    /// next poll by the old period after the change had cleared every schedule (`set_settings`), and a
    /// period of years, once replaced by one of seconds, would still hold that application for years.
    pub(crate) fn schedule_poll(&self, name: &str, level: Level) {
        let mut memo = self.memo.lock();
        let settings = self.settings();
        let m = memo.entry(name.to_string()).or_default();
        if level >= Level::Refresh || m.next_refresh.is_none() {
            // A period past what the clock counts (argocd-cm allows about 292 years) is never.
            m.next_refresh = settings.reconciliation.and_then(|period| {
                Instant::now().checked_add(period.saturating_add(jitter(name, &settings)))
            });
        }
    }

    pub(crate) fn pass_explicit(&self, name: &str) -> bool {
        self.memo.lock().get(name).is_some_and(|m| m.pass_explicit)
    }

    /// Queues a refresh of `name` as the refresh annotation would, without writing the Application: the
    /// pass resolves the revision with an `ls-remote` started after this call. False when another replica
    /// owns it: the caller sets Argo CD's refresh annotation instead, which its owner sees.
    pub fn request_refresh(&self, name: &str, hard: bool) -> bool {
        if !self.replicas.owns(name) {
            return false;
        }
        self.memo.lock().entry(name.to_string()).or_default().refresh_requested = true;
        self.queue.push(name, if hard { Level::HardRefresh } else { Level::Refresh });
        true
    }

    pub(crate) fn pass_started(&self, name: &str) -> Instant {
        self.memo.lock().get(name).and_then(|m| m.pass_started).unwrap_or_else(Instant::now)
    }

    /// The credentials `app` may use for `url`: another project's repository secrets are not its own.
    pub(crate) fn creds_for(&self, app: &Application, url: &str) -> berth_repo::git::Credentials {
        credentials::for_url(url, &app.spec.project, self.secrets.state().iter().map(|s| &**s))
    }

    /// What `app`'s project's sync windows allow now ([`crate::windows::state`]); none when the project
    /// does not exist (the spec check refuses such an app).
    pub(crate) fn window_state(&self, app: &Application) -> crate::windows::WindowState {
        let project = if app.spec.project.is_empty() { "default" } else { &app.spec.project };
        let proj = self
            .projects
            .get(&kube::runtime::reflector::ObjectRef::new(project).within(&self.config.namespace));
        let windows = proj.as_ref().map(|p| p.spec.sync_windows.as_slice()).unwrap_or_default();
        crate::windows::state(windows, app, k8s_openapi::jiff::Timestamp::now())
    }

    /// The live objects `app` tracks that its project permits, and why each other one is refused
    /// ([`project::permitted_live`]): the one filter before comparing, pruning and cascade deleting.
    pub(crate) fn permitted_tracked(
        &self,
        app: &Application,
        cluster: &Cluster,
    ) -> (Vec<(ResourceKey, Arc<serde_json::Value>)>, Vec<String>) {
        let name = self.instance_of(app);
        let project = if app.spec.project.is_empty() { "default" } else { &app.spec.project };
        let proj = self
            .projects
            .get(&kube::runtime::reflector::ObjectRef::new(project).within(&self.config.namespace));
        let filter = self.settings().resource_filter.clone();
        let mut tracked = cluster.cache.tracked_by(&name);
        // An excluded kind is left alone: never compared, never pruned.
        tracked.retain(|(key, _)| !filter.excludes(&key.group, &key.kind, &cluster.server));
        let spec = proj.as_ref().map(|p| &p.spec);
        project::permitted_live(
            project,
            spec,
            tracked,
            &cluster.server,
            &cluster.name,
            cluster.project.as_deref(),
        )
    }

    /// Queues `name` again after `after`, unless a wake-up at or before then is already waiting. A wait
    /// past every clock (a user's absurd backoff) is no timer at all: the next poll or event comes first.
    pub(crate) fn requeue_after(&self, name: &str, after: Duration) {
        let Some(due) = Instant::now().checked_add(after) else { return };
        {
            let mut memo = self.memo.lock();
            let memo = memo.entry(name.to_string()).or_default();
            if memo.wake_at.is_some_and(|at| at <= due && at > Instant::now()) {
                return;
            }
            memo.wake_at = Some(due);
        }
        let queue = self.queue.clone();
        let name = name.to_string();
        tokio::spawn(async move {
            tokio::time::sleep_until(due.into()).await;
            queue.push(&name, Level::Compare);
        });
    }
}
