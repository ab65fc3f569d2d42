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
mod target;

pub use target::{RenderCache, Rendered};

use berth_api::Application;
use berth_api::application::{
    ApplicationSource, ApplicationStatus, Operation, OperationInitiator, SyncOperation, SyncStatus,
};
use berth_engine::resource::ResourceKey;
use kube::api::{Api, Patch, PatchParams};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::{Controller, Error, Level, credentials, project};
use operate::AutoSync;
use status::same_ignoring_time;
use status::{merge_conditions, now};

pub(crate) const IN_CLUSTER: &str = "https://kubernetes.default.svc";
pub(crate) const REFRESH_ANNOTATION: &str = "argocd.argoproj.io/refresh";
pub(crate) const FINALIZER: &str = "resources-finalizer.argocd.argoproj.io";
pub(crate) const FINALIZER_BACKGROUND: &str = "resources-finalizer.argocd.argoproj.io/background";
pub(crate) const PRE_DELETE_FINALIZER: &str = "pre-delete-finalizer.argocd.argoproj.io";
pub(crate) const POST_DELETE_FINALIZER: &str = "post-delete-finalizer.argocd.argoproj.io";

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
    app.metadata.annotations.as_ref()?.get(REFRESH_ANNOTATION).map(String::as_str)
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

pub(crate) fn option_value<'a>(options: &'a [String], key: &str) -> Option<&'a str> {
    options.iter().rev().find_map(|o| o.trim().strip_prefix(key)?.strip_prefix('='))
}

impl Controller {
    pub(crate) async fn reconcile(&self, name: &str, level: Level) -> Result<(), Error> {
        let key = kube::runtime::reflector::ObjectRef::new(name).within(&self.config.namespace);
        let Some(app) = self.apps.get(&key) else {
            // Deleted: forget it, so a new Application of the same name starts fresh.
            self.memo.lock().expect("memo lock").remove(name);
            self.seen.lock().expect("seen lock").remove(name);
            return Ok(());
        };
        let app: Application = (*app).clone();
        let mut rv = app.metadata.resource_version.clone().unwrap_or_default();
        let written = self.memo.lock().expect("memo lock").get(name).and_then(|m| m.written);
        if written.is_some_and(|w| rv.parse::<u64>().is_ok_and(|r| r < w)) {
            // Acting on a copy older than our own last write could repeat a sync: wait for the watch. A refresh
            // requested meanwhile stays requested for the pass that runs then.
            return Err(Error::Stale);
        }
        let explicit = {
            let mut memo = self.memo.lock().expect("memo lock");
            let memo = memo.entry(name.to_string()).or_default();
            memo.pass_started = Some(Instant::now());
            memo.pass_explicit = std::mem::take(&mut memo.refresh_requested);
            memo.pass_explicit
        };
        // A refresh requested while this app was queued for something lesser (a watch event) is this pass's.
        let level = if explicit { level.max(Level::Refresh) } else { level };
        if app.metadata.deletion_timestamp.is_some() {
            return self.finalize(&app).await;
        }
        let settings = self.settings();
        let annotation = refresh_annotation(&app).map(str::to_string);
        let level = match annotation.as_deref() {
            Some("hard") => Level::HardRefresh,
            Some(_) => level.max(Level::Refresh),
            None => level,
        };
        let mut conditions: Vec<(&str, String)> =
            settings.warnings.iter().map(|w| ("UnknownError", w.clone())).collect();

        let mut status = app.status.clone().unwrap_or_default();
        let old_status = status.clone();
        let target = match self.validate(&app) {
            Err(message) => Err(("InvalidSpecError", message)),
            Ok(source) => {
                self.target(&app, &source, None, level, false).await.map_err(|m| ("ComparisonError", m))
            }
        };
        self.schedule_poll(name, level, &settings);

        let mut comparison = None;
        match &target {
            Err((kind, message)) => {
                conditions.push((kind, message.clone()));
                status.sync = Some(SyncStatus {
                    status: "Unknown".into(),
                    compared_to: Some(self.compared_to(&app)),
                    revision: status.sync.as_ref().and_then(|s| s.revision.clone()),
                    revisions: vec![],
                });
            }
            Ok(target) => {
                if let Some(new_rv) = self.ensure_deletion_finalizers(&app, target).await? {
                    rv = new_rv;
                }
                conditions.extend(target.errors.iter().map(|e| ("ComparisonError", e.clone())));
                conditions.extend(target.warnings.iter().cloned());
                let cmp = self.compare(&app, target, &settings).await;
                conditions.extend(cmp.errors.iter().map(|e| ("ComparisonError", e.clone())));
                conditions.extend(cmp.warnings.iter().map(|w| ("SharedResourceWarning", w.clone())));
                conditions.extend(cmp.refused.iter().map(|w| ("ExcludedResourceWarning", w.clone())));
                self.apply_comparison(&app, &mut status, target, &cmp);
                comparison = Some(cmp);
            }
        }

        // An operation (manual sync) or an automatic sync.
        let mut clear_operation: Option<Operation> = None;
        let mut ran_operation = false;
        // An automatic sync still running (its operation lives only in status) continues first.
        let running_auto = status
            .operation_state
            .as_ref()
            .filter(|s| s.phase == "Running" && app.operation.is_none())
            .map(|s| s.operation.clone());
        if let Some(op) = app.operation.clone().or(running_auto) {
            let state = self.run_operation(&app, &op, &mut status, &mut rv, level).await?;
            if matches!(state.phase.as_str(), "Failed" | "Error")
                && let Some(msg) = &state.message
            {
                conditions.push(("SyncError", msg.clone()));
            }
            let finished = state.phase != "Running";
            status.operation_state = Some(state);
            if finished && app.operation.is_some() {
                clear_operation = Some(op);
            }
            ran_operation = true;
        } else if let (Ok(target), Some(cmp)) = (&target, &comparison) {
            match self.auto_sync_decision(&app, target, cmp, &status, &settings) {
                AutoSync::No => {}
                AutoSync::Blocked(message) => conditions.push(("SyncError", message)),
                AutoSync::Later(after) => {
                    let queue = self.queue.clone();
                    let name = name.to_string();
                    tokio::spawn(async move {
                        tokio::time::sleep(after).await;
                        queue.push(&name, Level::Compare);
                    });
                }
                AutoSync::Now { self_heal } => {
                    let automated =
                        app.spec.sync_policy.as_ref().and_then(|p| p.automated.clone()).unwrap_or_default();
                    let op = Operation {
                        sync: Some(SyncOperation {
                            revision: Some(target.revision.clone()),
                            prune: automated.prune,
                            ..Default::default()
                        }),
                        initiated_by: Some(OperationInitiator { username: None, automated: Some(true) }),
                        ..Default::default()
                    };
                    tracing::info!(app = name, revision = %target.revision, self_heal, "auto-sync");
                    let state = self.run_operation(&app, &op, &mut status, &mut rv, level).await?;
                    ran_operation = true;
                    if matches!(state.phase.as_str(), "Failed" | "Error")
                        && let Some(msg) = &state.message
                    {
                        conditions.push(("SyncError", msg.clone()));
                    }
                    status.operation_state = Some(state);
                }
            }
        }

        // The last operation's failure stays a condition until an operation succeeds.
        if !ran_operation
            && let Some(state) = &status.operation_state
            && matches!(state.phase.as_str(), "Failed" | "Error")
            && let Some(message) = &state.message
            && !conditions.iter().any(|(kind, _)| *kind == "SyncError")
        {
            conditions.push(("SyncError", message.clone()));
        }
        status.conditions = merge_conditions(&old_status.conditions, conditions);
        status.controller_namespace = Some(self.config.namespace.clone());
        let wrote =
            level >= Level::Refresh || !same_ignoring_time(&old_status, &status) || app.status.is_none();
        let mut refresh_cleared = false;
        if wrote {
            status.reconciled_at = Some(now());
            // The refresh annotation goes in the same write as the status it asked for.
            match self.write_status_clearing(name, &mut rv, &status, annotation.is_some()).await {
                Ok(()) => refresh_cleared = annotation.is_some(),
                // After a sync, its result must be recorded even if the spec was edited meanwhile:
                // berth is the only writer of status, so write it onto the fresh copy.
                Err(Error::Stale) if ran_operation => {
                    let api: Api<Application> = Api::namespaced(self.client.clone(), &self.config.namespace);
                    rv = api.get(name).await?.metadata.resource_version.unwrap_or_default();
                    self.write_status(name, &mut rv, &status).await?;
                }
                other => other?,
            }
        }
        if let Some(op) = clear_operation {
            self.clear_operation(name, &op).await?;
        }
        if annotation.is_some() && !refresh_cleared {
            let api: Api<Application> = Api::namespaced(self.client.clone(), &self.config.namespace);
            let patch = serde_json::json!({"metadata": {"annotations": {REFRESH_ANNOTATION: null}}});
            let stored = api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
            self.remember_write(name, &stored);
        }
        Ok(())
    }

    pub(crate) fn schedule_poll(&self, name: &str, level: Level, settings: &crate::Settings) {
        let mut memo = self.memo.lock().expect("memo lock");
        let m = memo.entry(name.to_string()).or_default();
        if level >= Level::Refresh || m.next_refresh.is_none() {
            m.next_refresh = settings.reconciliation.map(|period| {
                // Jitter derived from the name spreads applications evenly and stays stable across passes.
                let spread = settings.jitter.as_millis() as u64;
                let jitter = if spread == 0 { 0 } else { hash_of(&name) % spread };
                Instant::now() + period + Duration::from_millis(jitter)
            });
        }
    }

    pub(crate) fn pass_explicit(&self, name: &str) -> bool {
        self.memo.lock().expect("memo lock").get(name).is_some_and(|m| m.pass_explicit)
    }

    /// Queues a refresh of `name` as the refresh annotation would, without writing the Application: the
    /// pass resolves the revision with an `ls-remote` started after this call.
    pub fn request_refresh(&self, name: &str, hard: bool) {
        self.memo.lock().expect("memo lock").entry(name.to_string()).or_default().refresh_requested = true;
        self.queue.push(name, if hard { Level::HardRefresh } else { Level::Refresh });
    }

    pub(crate) fn pass_started(&self, name: &str) -> Instant {
        self.memo
            .lock()
            .expect("memo lock")
            .get(name)
            .and_then(|m| m.pass_started)
            .unwrap_or_else(Instant::now)
    }

    /// The credentials `app` may use for `url`: another project's repository secrets are not its own.
    pub(crate) fn creds_for(&self, app: &Application, url: &str) -> berth_repo::git::Credentials {
        credentials::for_url(url, &app.spec.project, self.secrets.state().iter().map(|s| &**s))
    }

    /// The live objects `app` tracks that its project permits, and why each other one is refused
    /// ([`project::permitted_live`]): the one filter before comparing, pruning and cascade deleting.
    pub(crate) fn permitted_tracked(
        &self,
        app: &Application,
    ) -> (Vec<(ResourceKey, Arc<serde_json::Value>)>, Vec<String>) {
        let name = app.metadata.name.clone().unwrap_or_default();
        let project = if app.spec.project.is_empty() { "default" } else { &app.spec.project };
        let proj = self
            .projects
            .get(&kube::runtime::reflector::ObjectRef::new(project).within(&self.config.namespace));
        let tracked = self.cache.tracked_by(&name);
        project::permitted_live(project, proj.as_ref().map(|p| &p.spec), tracked, IN_CLUSTER, "in-cluster")
    }

    pub(crate) fn requeue_after(&self, name: &str, after: Duration) {
        let queue = self.queue.clone();
        let name = name.to_string();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            queue.push(&name, Level::Compare);
        });
    }
}
