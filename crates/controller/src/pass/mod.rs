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
    ApplicationSource, ApplicationStatus, ComparedTo, Operation, OperationInitiator, OperationState,
    SyncOperation, SyncStatus,
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
    /// This process has refreshed the application (asked git for its revisions); until then a refresh
    /// nobody asked for may resume from the stored status ([`Controller::resume`]).
    pub(crate) refreshed: bool,
    /// When a delayed requeue ([`Controller::requeue_after`]) is due: one timer per application, so
    /// passes that each ask for a wake-up (a long backoff, a window) do not pile up sleeping tasks.
    pub(crate) wake_at: Option<Instant>,
}

/// The commit the stored status names for each of `app`'s sources, when a restarted controller may take
/// them as resolved: the status was compared to this very spec (`compared_to`, the spec's), found Synced or
/// OutOfSync, and no operation is asked for or under way.
pub(crate) fn stored_commits(app: &Application, compared_to: &ComparedTo) -> Option<Vec<String>> {
    let status = app.status.as_ref()?;
    let sync = status.sync.as_ref()?;
    let compared = sync.status == SyncCode::Synced.as_str() || sync.status == SyncCode::OutOfSync.as_str();
    let operating = app.operation.is_some()
        || status.operation_state.as_ref().is_some_and(|s| !OperationPhase::of(s).is_completed());
    if !compared || operating || sync.compared_to.as_ref() != Some(compared_to) {
        return None;
    }
    let commits =
        if app.spec.sources.is_empty() { vec![sync.revision.clone()?] } else { sync.revisions.clone() };
    (commits.len() == app_sources(app).len() && commits.iter().all(|c| !c.is_empty())).then_some(commits)
}

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
        let level = self.resume(&app, name, level, explicit || annotation.is_some(), &settings);
        let mut pass = PassState::new(&app, &settings, rv);
        // Target: the desired state at the revision git names now.
        let target = match self.validate(&app) {
            Ok(sources) => self.target(&app, &sources, None, level, false).await,
            Err(e) => Err(e),
        };
        self.schedule_poll(name, level, &settings);
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
                            pass.conditions.extend(cmp.conditions(target));
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
        let PassState { mut status, old_status, mut rv, mut conditions, ran_operation, clear_operation } =
            pass;
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

    pub(crate) fn schedule_poll(&self, name: &str, level: Level, settings: &crate::Settings) {
        let mut memo = self.memo.lock();
        let m = memo.entry(name.to_string()).or_default();
        if level >= Level::Refresh || m.next_refresh.is_none() {
            // A period past what the clock counts (argocd-cm allows about 292 years) is never.
            m.next_refresh = settings
                .reconciliation
                .and_then(|period| Instant::now().checked_add(period.saturating_add(jitter(name, settings))));
        }
    }

    /// The level a pass runs at. A refresh nobody asked for (the first sight of each application after a
    /// start, a project or secret that changed), before this process refreshed the application once, runs
    /// as a compare when the stored status names the commits of this very spec ([`stored_commits`]): those
    /// commits are taken as resolved (no `ls-remote`), the stored `reconciledAt` stays, and the first poll
    /// is due a polling period after it ([`status::reconciled_age`]; at once, plus the jitter, when past). Argo CD too leaves such an
    /// application alone at start (its `needRefreshAppStatus`); berth still compares it, to know its state.
    fn resume(
        &self,
        app: &Application,
        name: &str,
        level: Level,
        asked: bool,
        settings: &crate::Settings,
    ) -> Level {
        let mut memo = self.memo.lock();
        let m = memo.entry(name.to_string()).or_default();
        if level != Level::Refresh || asked || m.refreshed {
            m.refreshed |= level >= Level::Refresh;
            return level;
        }
        let now = k8s_openapi::jiff::Timestamp::now();
        let fresh = app.status.as_ref().and_then(|s| status::reconciled_age(s, now));
        let (Some(age), Some(commits)) = (fresh, stored_commits(app, &self.compared_to(app))) else {
            m.refreshed = true;
            return level;
        };
        for (source, commit) in app_sources(app).iter().zip(commits) {
            if source.chart.is_none() {
                m.resolved.insert(target::resolution_key(source, &target::wanted_revision(source)), commit);
            }
        }
        if m.next_refresh.is_none() {
            m.next_refresh = settings.reconciliation.and_then(|period| {
                Instant::now().checked_add(period.saturating_sub(age).saturating_add(jitter(name, settings)))
            });
        }
        tracing::debug!(app = name, ?age, "resumed from the stored status: compared, not refreshed");
        Level::Compare
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

#[cfg(test)]
mod tests {
    use super::*;

    fn synced_app() -> Application {
        let spec = serde_json::json!({"project": "default", "destination": {"namespace": "web"},
            "source": {"repoURL": "https://example.com/r.git", "path": "web", "targetRevision": "main"}});
        serde_json::from_value(serde_json::json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Application", "metadata": {"name": "web"},
            "spec": spec,
            "status": {"sync": {"status": "Synced", "revision": "abc",
                "comparedTo": {"source": spec["source"], "destination": spec["destination"]}},
                "operationState": {"phase": "Succeeded", "operation": {"sync": {}}, "startedAt": "2025-01-01T00:00:00Z"}}
        }))
        .unwrap()
    }

    fn compared_to(app: &Application) -> ComparedTo {
        ComparedTo {
            source: app.spec.source.clone(),
            sources: app.spec.sources.clone(),
            destination: app.spec.destination.clone(),
            ignore_differences: app.spec.ignore_differences.clone(),
        }
    }

    #[test]
    fn a_restart_takes_the_commit_the_stored_status_names_for_the_same_spec() {
        let app = synced_app();
        assert_eq!(stored_commits(&app, &compared_to(&app)), Some(vec!["abc".to_string()]));
    }

    #[test]
    fn a_restart_asks_git_again_when_the_spec_moved_or_an_operation_is_under_way() {
        let app = synced_app();
        let mut moved = app.clone();
        moved.spec.source.as_mut().unwrap().target_revision = Some("v2".into());
        assert_eq!(stored_commits(&moved, &compared_to(&moved)), None, "compared to another revision");

        let mut running = app.clone();
        running.status.as_mut().unwrap().operation_state.as_mut().unwrap().phase = "Running".into();
        assert_eq!(stored_commits(&running, &compared_to(&running)), None);

        let mut requested = app.clone();
        requested.operation = Some(Operation::default());
        assert_eq!(stored_commits(&requested, &compared_to(&requested)), None);

        let mut unknown = app.clone();
        unknown.status.as_mut().unwrap().sync.as_mut().unwrap().status = "Unknown".into();
        assert_eq!(stored_commits(&unknown, &compared_to(&unknown)), None, "the last compare failed");
    }
}
