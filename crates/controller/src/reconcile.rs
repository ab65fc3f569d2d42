//! One application's pass: target state (git → render → prepared objects), compare with the cluster
//! cache, then the requested operation or an automatic sync, then status.
//!
//! Safety rules: when git or rendering fails, or an object cannot be prepared, nothing is applied or
//! pruned; the last good state stays in the cluster and a condition names the file and object.

use berth_api::Application;
use berth_api::application::{
    ApplicationSource, ApplicationStatus, ComparedTo, HealthStatus as AppHealth, Operation,
    OperationInitiator, OperationState, ResourceResult, ResourceStatus, RevisionHistory, RevisionMetadata,
    SyncOperation, SyncOperationResult, SyncStatus,
};
use berth_engine::health::{self, HealthStatus};
use berth_engine::normalize::{self, IgnoreRule};
use berth_engine::resource::{GroupKind, INSTALLATION_ANNOTATION, ResourceKey, TRACKING_ANNOTATION};
use berth_engine::sync::{self, ManagedNamespace, OutcomeStatus, SyncOptions};
use berth_repo::git::CommitInfo;
use berth_repo::render::{self, Manifest};
use kube::api::{Api, Patch, PatchParams, PropagationPolicy};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::status::{merge_conditions, now, push_history, summary};
use crate::{Controller, Error, Level, credentials, project};

const IN_CLUSTER: &str = "https://kubernetes.default.svc";
const REFRESH_ANNOTATION: &str = "argocd.argoproj.io/refresh";
const FINALIZER: &str = "resources-finalizer.argocd.argoproj.io";
const FINALIZER_BACKGROUND: &str = "resources-finalizer.argocd.argoproj.io/background";
const PRE_DELETE_FINALIZER: &str = "pre-delete-finalizer.argocd.argoproj.io";
const POST_DELETE_FINALIZER: &str = "post-delete-finalizer.argocd.argoproj.io";

/// What the controller remembers of an application between passes (never the source of truth: status is).
#[derive(Default)]
pub struct Memo {
    /// Resolved commit by source fingerprint.
    resolved: HashMap<u64, String>,
    pub next_refresh: Option<Instant>,
    /// Compare verdicts by object: (desired hash, live resourceVersion, ignore-rules hash) → in sync. Only
    /// the verdict is kept, not the predicted object, so memory stays flat with thousands of objects.
    verdicts: HashMap<ResourceKey, (u64, String, u64, bool)>,
    /// The render this application's current target uses (keeps it alive in the shared render cache),
    /// and the source and commit it was made for.
    rendered: Option<Arc<Rendered>>,
    rendered_from: Option<(u64, String)>,
    /// What the last sync stored, used until the watch delivers it (read-your-writes).
    applied: HashMap<ResourceKey, (Arc<serde_json::Value>, Instant)>,
    /// resourceVersion of berth's last write to the Application: an older copy from the watch is stale.
    written: Option<u64>,
    /// When the pass in progress started.
    pass_started: Option<Instant>,
    /// A refresh was asked for in this process (a webhook, the API's `?refresh`), as the refresh
    /// annotation asks for one: the next pass must see every commit pushed before it.
    refresh_requested: bool,
    /// The pass in progress is such an explicit refresh.
    pass_explicit: bool,
    /// What events were last reported from (sync and health status, operation): see `events::between`.
    reported: Option<ApplicationStatus>,
}

/// Rendered sources by (repository, commit, path, options): an unchanged app is never rendered again.
/// Entries live as long as an application's current target uses them.
#[derive(Default)]
pub struct RenderCache {
    entries: Mutex<HashMap<u64, std::sync::Weak<Rendered>>>,
}

impl RenderCache {
    fn get(&self, key: u64) -> Option<Arc<Rendered>> {
        self.entries.lock().expect("render lock").get(&key).and_then(std::sync::Weak::upgrade)
    }

    fn insert(&self, key: u64, rendered: &Arc<Rendered>) {
        let mut entries = self.entries.lock().expect("render lock");
        if entries.len() % 256 == 255 {
            entries.retain(|_, w| w.strong_count() > 0);
        }
        entries.insert(key, Arc::downgrade(rendered));
    }

    fn remove(&self, key: u64) {
        self.entries.lock().expect("render lock").remove(&key);
    }
}

pub struct Rendered {
    pub manifests: Result<Vec<Manifest>, String>,
    pub commit: Option<CommitInfo>,
    /// Argo CD's source type: Directory, Kustomize or Helm.
    pub source_type: &'static str,
    /// The repository paths the render read (a commit that touches none of them is not rendered again).
    pub inputs: Vec<String>,
}

/// The desired state at one commit, ready to compare and apply.
struct Target {
    revision: String,
    /// Every source's commit (multiple sources only).
    revisions: Vec<String>,
    source_type: &'static str,
    commit: Option<CommitInfo>,
    objects: Vec<Desired>,
    /// Errors that make this target unsafe to sync (render failed, unknown kind...).
    errors: Vec<String>,
    warnings: Vec<(&'static str, String)>,
}

struct Desired {
    key: ResourceKey,
    file: String,
    object: serde_json::Value,
}

struct Comparison {
    resources: Vec<ResourceStatus>,
    sync_status: &'static str,
    health: HealthStatus,
    errors: Vec<String>,
    /// Objects another Application tracks too (SharedResourceWarning).
    warnings: Vec<String>,
    /// Tracked objects the project does not permit: left alone, never pruned (ExcludedResourceWarning).
    refused: Vec<String>,
    live: Vec<Arc<serde_json::Value>>,
}

fn hash_of(value: &impl serde::Serialize) -> u64 {
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

fn single_source(app: &Application) -> Option<&ApplicationSource> {
    app.spec.source.as_ref().or_else(|| (app.spec.sources.len() == 1).then(|| &app.spec.sources[0]))
}

/// The application's sources: `spec.sources`, or `spec.source` alone.
fn app_sources(app: &Application) -> Vec<ApplicationSource> {
    if app.spec.sources.is_empty() {
        app.spec.source.iter().cloned().collect()
    } else {
        app.spec.sources.clone()
    }
}

/// Argo CD's tool detection: an explicit `helm` / `kustomize` / `directory` wins, then Chart.yaml,
/// then a kustomization file, else a directory of manifests.
fn source_kind(source: &ApplicationSource, tree: &std::path::Path, path: &str) -> &'static str {
    if source.chart.is_some() || source.helm.is_some() {
        return "Helm";
    }
    if source.kustomize.is_some() {
        return "Kustomize";
    }
    if source.directory.is_some() {
        return "Directory";
    }
    let Ok(dir) = render::contained_path(tree, path) else { return "Directory" };
    if render::helm::is_chart_dir(&dir) {
        "Helm"
    } else if render::kustomize::is_kustomization_dir(&dir) {
        "Kustomize"
    } else {
        "Directory"
    }
}

fn sync_options(app: &Application, op: Option<&SyncOperation>) -> Vec<String> {
    let mut options: Vec<String> =
        app.spec.sync_policy.as_ref().map(|p| p.sync_options.clone()).unwrap_or_default();
    if let Some(op) = op {
        options.extend(op.sync_options.iter().cloned());
    }
    options
}

fn has_option(options: &[String], wanted: &str) -> bool {
    options.iter().any(|o| o.trim().eq_ignore_ascii_case(wanted))
}

fn option_value<'a>(options: &'a [String], key: &str) -> Option<&'a str> {
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

    /// The source to render, or why the spec cannot be acted on.
    /// The sources to render (one, or `spec.sources`), or why the spec cannot be acted on.
    fn validate(&self, app: &Application) -> Result<Vec<ApplicationSource>, String> {
        let project = if app.spec.project.is_empty() { "default" } else { &app.spec.project };
        let project_key = kube::runtime::reflector::ObjectRef::new(project).within(&self.config.namespace);
        let Some(proj) = self.projects.get(&project_key) else {
            return Err(format!("Application referencing project {project} which does not exist"));
        };
        let dest = &app.spec.destination;
        let in_cluster = match (dest.server.as_deref(), dest.name.as_deref()) {
            (Some(server), _) if !server.is_empty() => server.trim_end_matches('/') == IN_CLUSTER,
            (_, Some(name)) if !name.is_empty() => name == "in-cluster",
            _ => return Err("spec.destination: either server or name must be set".into()),
        };
        if !in_cluster {
            let which =
                dest.server.clone().filter(|s| !s.is_empty()).or(dest.name.clone()).unwrap_or_default();
            return Err(format!(
                "spec.destination: cluster {which:?} is not configured (only in-cluster ({IN_CLUSTER}) for now)"
            ));
        }
        let sources = app_sources(app);
        if sources.is_empty() {
            return Err("spec.source: no source is set".into());
        }
        let field = |i: usize| {
            if app.spec.sources.is_empty() { "spec.source".to_string() } else { format!("spec.sources[{i}]") }
        };
        for (i, source) in sources.iter().enumerate() {
            if source.repo_url.is_empty() {
                return Err(format!("{}.repoURL is empty", field(i)));
            }
            if source.plugin.is_some() {
                return Err(format!("{}.plugin: config management plugins are not supported", field(i)));
            }
            if source.chart.is_some() && source.path.is_some() {
                return Err(format!(
                    "{}: set either chart (a Helm repository) or path (a git repository), not both",
                    field(i)
                ));
            }
            project::source_check(project, &proj.spec, &source.repo_url)?;
        }
        let namespace = dest.namespace.as_deref().unwrap_or_default();
        project::destination_check(project, &proj.spec, IN_CLUSTER, "in-cluster", namespace)?;
        let managed = &self.config.namespaces;
        if !managed.is_empty() && !managed.iter().any(|n| n == namespace) {
            return Err(format!(
                "spec.destination.namespace: {namespace:?} is not managed by this namespaced installation \
                 (it manages {managed:?})"
            ));
        }
        Ok(sources)
    }

    fn compared_to(&self, app: &Application) -> ComparedTo {
        ComparedTo {
            source: app.spec.source.clone(),
            sources: app.spec.sources.clone(),
            destination: app.spec.destination.clone(),
            ignore_differences: app.spec.ignore_differences.clone(),
        }
    }

    fn schedule_poll(&self, name: &str, level: Level, settings: &crate::Settings) {
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

    /// Resolves each source's revision (git ls-remote; reused within the polling period unless refreshed),
    /// renders the sources (cached by commit and source; `ref` sources only lend their files to `$ref/…`
    /// value files), and prepares the objects.
    async fn target(
        &self,
        app: &Application,
        sources: &[ApplicationSource],
        revisions: Option<&[String]>,
        level: Level,
        sync: bool,
    ) -> Result<Target, String> {
        let name = app.metadata.name.clone().unwrap_or_default();
        let mut shas = Vec::new();
        for (i, source) in sources.iter().enumerate() {
            let explicit = revisions.and_then(|r| r.get(i)).filter(|r| !r.is_empty());
            shas.push(self.resolve(app, source, explicit.map(String::as_str), level, sync).await?);
        }
        let mut refs = BTreeMap::new();
        for (source, sha) in sources.iter().zip(&shas) {
            if let Some(r) = source.reference.as_deref().filter(|r| !r.is_empty()) {
                let creds = self.creds_for(app, &source.repo_url);
                self.git
                    .fetch(&source.repo_url, sha, &creds)
                    .await
                    .map_err(|e| format!("Failed to load target state: failed to fetch {sha}: {e}"))?;
                let tree =
                    self.git.tree(&source.repo_url, sha).await.map_err(|e| {
                        format!("Failed to load target state: failed to check out {sha}: {e}")
                    })?;
                refs.insert(r.to_string(), (sha.clone(), tree));
            }
        }
        let mut manifests = Vec::new();
        let mut commit = None;
        let mut source_type = None;
        let single = sources.len() == 1;
        for (source, sha) in sources.iter().zip(&shas) {
            let ref_only = source.reference.is_some() && source.path.is_none() && source.chart.is_none();
            if ref_only {
                continue;
            }
            let rendered = self.render(app, source, sha, level, &refs, single && revisions.is_none()).await?;
            manifests.extend(rendered.manifests.clone()?);
            commit = commit.or(rendered.commit.clone());
            source_type = source_type.or(Some(rendered.source_type));
        }
        let revision = shas.first().cloned().unwrap_or_default();
        let mut target = self.prepare(app, revision, commit, manifests).await;
        target.revisions = if app.spec.sources.is_empty() { vec![] } else { shas };
        target.source_type = source_type.unwrap_or("Directory");
        let _ = name;
        Ok(target)
    }

    fn pass_explicit(&self, name: &str) -> bool {
        self.memo.lock().expect("memo lock").get(name).is_some_and(|m| m.pass_explicit)
    }

    /// Queues a refresh of `name` as the refresh annotation would, without writing the Application: the
    /// pass resolves the revision with an `ls-remote` started after this call.
    pub fn request_refresh(&self, name: &str, hard: bool) {
        self.memo.lock().expect("memo lock").entry(name.to_string()).or_default().refresh_requested = true;
        self.queue.push(name, if hard { Level::HardRefresh } else { Level::Refresh });
    }

    fn pass_started(&self, name: &str) -> Instant {
        self.memo
            .lock()
            .expect("memo lock")
            .get(name)
            .and_then(|m| m.pass_started)
            .unwrap_or_else(Instant::now)
    }

    /// The credentials `app` may use for `url`: another project's repository secrets are not its own.
    fn creds_for(&self, app: &Application, url: &str) -> berth_repo::git::Credentials {
        credentials::for_url(url, &app.spec.project, self.secrets.state().iter().map(|s| &**s))
    }

    /// The live objects `app` tracks that its project permits, and why each other one is refused
    /// ([`project::permitted_live`]): the one filter before comparing, pruning and cascade deleting.
    fn permitted_tracked(
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

    /// The commit a source's revision points at (the chart version for a Helm repository source).
    async fn resolve(
        &self,
        app: &Application,
        source: &ApplicationSource,
        revision: Option<&str>,
        level: Level,
        sync: bool,
    ) -> Result<String, String> {
        let name = app.metadata.name.clone().unwrap_or_default();
        let wanted = revision
            .map(str::to_string)
            .unwrap_or_else(|| source.target_revision.clone().unwrap_or_default());
        if source.chart.is_some() {
            // A Helm repository: the revision is the chart version, resolved by helm itself.
            return Ok(wanted);
        }
        let wanted = if wanted.is_empty() { "HEAD".to_string() } else { wanted };
        let source_hash = hash_of(&(source, &wanted));
        let cached = self
            .memo
            .lock()
            .expect("memo lock")
            .get(&name)
            .and_then(|m| m.resolved.get(&source_hash).cloned());
        match cached {
            Some(sha) if level < Level::Refresh && revision.is_none() => Ok(sha),
            _ => {
                // A poll may share an ls-remote taken a second ago; an explicit refresh or a sync shares only
                // one that started after this pass did (so it sees every commit pushed before the request).
                let explicit = refresh_annotation(app).is_some() || self.pass_explicit(&name);
                let max_age = if level == Level::Refresh && !explicit && !sync {
                    Duration::from_secs(1)
                } else {
                    self.pass_started(&name).elapsed()
                };
                let creds = self.creds_for(app, &source.repo_url);
                let asked = Instant::now();
                let resolved = self.git.resolve(&source.repo_url, &wanted, &creds, max_age).await;
                crate::metrics::global().git_request(
                    &berth_repo::git::scrub_url(&source.repo_url),
                    "ls-remote",
                    asked.elapsed(),
                );
                let sha = resolved.map_err(|e| {
                    format!("Failed to load target state: failed to resolve revision {wanted:?}: {e}")
                })?;
                tracing::debug!(app = %name, wanted = %wanted, sha = %sha, ?max_age, "resolved");
                if revision.is_none() {
                    let mut memo = self.memo.lock().expect("memo lock");
                    memo.entry(name.clone()).or_default().resolved.insert(source_hash, sha.clone());
                }
                Ok(sha)
            }
        }
    }

    /// The rendered source at `sha`: from the render cache; or, for a new commit that changes no file the
    /// application depends on, the render of its previous commit (a monorepo commit re-renders only the
    /// apps it touches); or rendered now with the source's tool. `remember` keeps the render as the app's
    /// current one (single-source targets of the app's own revision).
    async fn render(
        &self,
        app: &Application,
        source: &ApplicationSource,
        sha: &str,
        level: Level,
        refs: &BTreeMap<String, (String, PathBuf)>,
        remember: bool,
    ) -> Result<Arc<Rendered>, String> {
        let name = app.metadata.name.clone().unwrap_or_default();
        let source_key = render_source_key(source);
        let ref_shas: Vec<(&String, &String)> = refs.iter().map(|(k, (sha, _))| (k, sha)).collect();
        let tools = self.tool_versions().await;
        // Helm reads the release name, namespace and cluster versions: sources that may be charts key on them.
        let maybe_helm = source.directory.is_none() && source.kustomize.is_none();
        let cluster = if maybe_helm { Some(self.cluster_versions().await) } else { None };
        let app_bound = maybe_helm.then_some((&app.metadata.name, &app.spec.destination.namespace));
        let cluster_hash = cluster.as_ref().map(|(_, hash)| *hash);
        // A render made with one project's credentials is not another's: the key holds which were used.
        let creds = self.creds_for(app, &source.repo_url);
        let creds_key = hash_of(&(&creds.username, &creds.password, &creds.ssh_private_key, creds.insecure));
        let render_key = hash_of(&(source_key, sha, &ref_shas, &*tools, cluster_hash, app_bound, creds_key));
        let cluster = cluster.map(|(versions, _)| versions);
        if level == Level::HardRefresh {
            self.renders.remove(render_key);
        }
        let rendered = match self.renders.get(render_key) {
            Some(r) => r,
            None => {
                let rendered =
                    self.render_now(app, source, sha, level, refs, remember, source_key, cluster).await?;
                self.renders.insert(render_key, &rendered);
                rendered
            }
        };
        if remember {
            let mut memo = self.memo.lock().expect("memo lock");
            let m = memo.entry(name).or_default();
            m.rendered = Some(rendered.clone());
            m.rendered_from = Some((source_key, sha.to_string()));
        }
        Ok(rendered)
    }

    #[allow(clippy::too_many_arguments)]
    async fn render_now(
        &self,
        app: &Application,
        source: &ApplicationSource,
        sha: &str,
        level: Level,
        refs: &BTreeMap<String, (String, PathBuf)>,
        single: bool,
        source_key: u64,
        cluster: Option<Arc<(String, Vec<String>)>>,
    ) -> Result<Arc<Rendered>, String> {
        let name = app.metadata.name.clone().unwrap_or_default();
        let creds = self.creds_for(app, &source.repo_url);
        let mut ctx = render::ToolContext::new(
            &name,
            app.spec.destination.namespace.as_deref().unwrap_or_default(),
            self.config.cache_dir.join("render"),
        );
        if let Some(versions) = cluster {
            ctx.kube_version = versions.0.clone();
            ctx.api_versions = versions.1.clone();
        }
        ctx.refs = refs.iter().map(|(k, (_, tree))| (k.clone(), tree.clone())).collect();
        if let Some(chart) = source.chart.clone() {
            // A chart from a Helm repository (HTTP or OCI).
            ctx.network = true;
            let helm_creds = render::helm::HelmCredentials {
                username: creds.username.clone(),
                password: creds.password.clone(),
                insecure: creds.insecure,
                ..Default::default()
            };
            let (url, helm, version) = (source.repo_url.clone(), source.helm.clone(), sha.to_string());
            let manifests = tokio::task::spawn_blocking(move || {
                render::helm::render_helm_chart(&url, &chart, &version, helm.as_ref(), &ctx, &helm_creds)
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("Failed to load target state: {e}"));
            return Ok(Arc::new(Rendered { manifests, commit: None, source_type: "Helm", inputs: vec![] }));
        }
        self.git
            .fetch(&source.repo_url, sha, &creds)
            .await
            .map_err(|e| format!("Failed to load target state: failed to fetch {sha}: {e}"))?;
        let commit = self.git.commit_info(&source.repo_url, sha).await.ok();
        let previous = {
            let memo = self.memo.lock().expect("memo lock");
            memo.get(&name).and_then(|m| Some((m.rendered.clone()?, m.rendered_from.clone()?)))
        };
        if single
            && refs.is_empty()
            && level < Level::HardRefresh
            && let Some((prev, (prev_key, prev_sha))) = previous
            && prev_key == source_key
            && prev_sha != sha
            && prev.manifests.is_ok()
            && let Ok(changed) = self.git.changed_files(&source.repo_url, &prev_sha, sha).await
        {
            let watched = watched_paths(app, source, &prev.inputs);
            if !changed.iter().any(|f| covers(&watched, f)) {
                tracing::debug!(target: "berth::render", app = %name, from = %prev_sha, to = %sha, "reused: no input changed");
                return Ok(Arc::new(Rendered {
                    manifests: prev.manifests.clone(),
                    commit,
                    source_type: prev.source_type,
                    inputs: prev.inputs.clone(),
                }));
            }
        }
        let tree = self
            .git
            .tree(&source.repo_url, sha)
            .await
            .map_err(|e| format!("Failed to load target state: failed to check out {sha}: {e}"))?;
        let path = source.path.clone().unwrap_or_default();
        let source = source.clone();
        let render_started = Instant::now();
        let (source_type, manifests, inputs) = tokio::task::spawn_blocking(move || {
            let kind = source_kind(&source, &tree, &path);
            let out = match kind {
                "Helm" => render::helm::render_helm_path(&tree, &path, source.helm.as_ref(), &ctx),
                "Kustomize" => {
                    render::kustomize::render_kustomize(&tree, &path, source.kustomize.as_ref(), &ctx)
                }
                _ => render::render_directory(&tree, &path, source.directory.as_ref()),
            };
            let value_files: Vec<String> = source
                .helm
                .iter()
                .flat_map(|h| &h.value_files)
                .filter(|f| !f.starts_with('$'))
                .cloned()
                .collect();
            let inputs =
                if kind == "Directory" { vec![] } else { render::render_inputs(&tree, &path, &value_files) };
            (kind, out, inputs)
        })
        .await
        .map_err(|e| e.to_string())?;
        tracing::debug!(target: "berth::render", app = %name, sha, source_type, "rendered");
        crate::metrics::global().rendered(source_type, render_started.elapsed());
        let manifests = manifests.map_err(|e| format!("Failed to load target state: {e}"));
        Ok(Arc::new(Rendered { manifests, commit, source_type, inputs }))
    }

    /// `helm` and `kustomize` versions, part of every render's cache key (a new tool renders again).
    async fn tool_versions(&self) -> Arc<(String, String)> {
        if let Some(v) = self.tool_versions.get() {
            return v.clone();
        }
        let version = |program: &'static str, args: &'static [&'static str]| async move {
            tokio::process::Command::new(program)
                .args(args)
                .output()
                .await
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .unwrap_or_default()
        };
        let v = Arc::new((
            version("helm", &["version", "--short"]).await,
            version("kustomize", &["version"]).await,
        ));
        let _ = self.tool_versions.set(v.clone());
        v
    }

    /// The destination cluster's version and API versions, for Helm's Capabilities, and a hash of both. Read
    /// again after a discovery, and every five minutes for the version; otherwise answered from memory
    /// (every pass of every app that may be a chart asks).
    async fn cluster_versions(&self) -> (Arc<(String, Vec<String>)>, u64) {
        let generation = self.cache.discovery_generation();
        if let Some(info) = self.cluster_versions.lock().expect("versions lock").as_ref()
            && info.generation == generation
            && info.read_at.elapsed() < Duration::from_secs(300)
        {
            return (info.versions.clone(), info.hash);
        }
        let version = match self.client.apiserver_version().await {
            Ok(info) => info.git_version.trim_start_matches('v').to_string(),
            Err(_) => String::new(),
        };
        let versions = Arc::new((version, self.cache.api_versions()));
        let hash = hash_of(&*versions);
        *self.cluster_versions.lock().expect("versions lock") = Some(crate::ClusterInfo {
            read_at: Instant::now(),
            generation,
            versions: versions.clone(),
            hash,
        });
        (versions, hash)
    }

    /// Namespaces set on namespaced objects that have none, the tracking annotation added, unknown kinds
    /// and duplicates reported.
    async fn prepare(
        &self,
        app: &Application,
        revision: String,
        commit: Option<CommitInfo>,
        manifests: Vec<Manifest>,
    ) -> Target {
        let app_name = app.metadata.name.clone().unwrap_or_default();
        let installation_id = self.settings().installation_id.clone();
        let dest_ns = app
            .spec
            .destination
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".into());
        let mut objects: Vec<Desired> = Vec::new();
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        let mut seen: HashMap<ResourceKey, String> = HashMap::new();
        let project = if app.spec.project.is_empty() { "default" } else { &app.spec.project };
        let proj = self
            .projects
            .get(&kube::runtime::reflector::ObjectRef::new(project).within(&self.config.namespace));
        let skip_dry_run = has_option(&sync_options(app, None), "SkipDryRunOnMissingResource=true");
        // Kinds defined by CRDs of this same source: known before the cluster serves them.
        let crd_kinds: HashMap<GroupKind, bool> = manifests
            .iter()
            .filter(|m| m.object["kind"] == "CustomResourceDefinition")
            .filter_map(|m| {
                let spec = &m.object["spec"];
                let gk = GroupKind {
                    group: spec["group"].as_str()?.to_string(),
                    kind: spec["names"]["kind"].as_str()?.to_string(),
                };
                Some((gk, spec["scope"] != "Cluster"))
            })
            .collect();
        for m in manifests {
            let mut object = m.object;
            let api_version = object["apiVersion"].as_str().unwrap_or_default().to_string();
            let kind = object["kind"].as_str().unwrap_or_default().to_string();
            let gk = GroupKind {
                group: berth_engine::resource::split_api_version(&api_version).0.into(),
                kind: kind.clone(),
            };
            let namespaced = match self.cache.kind(&gk).await {
                Ok(info) => info.namespaced,
                Err(_) if crd_kinds.contains_key(&gk) => crd_kinds[&gk],
                // Its CRD will be made by something else (an operator this sync installs): like Argo CD,
                // the object is neither dry-run nor refused before its turn comes.
                Err(_)
                    if skip_dry_run || sync::has_sync_option(&object, "SkipDryRunOnMissingResource=true") =>
                {
                    true
                }
                Err(e) => {
                    let name = object["metadata"]["name"].as_str().unwrap_or_default();
                    errors.push(format!("{}: {kind} {name:?}: {e}", m.file));
                    continue;
                }
            };
            let name = object["metadata"]["name"].as_str().unwrap_or_default().to_string();
            let meta = object["metadata"].as_object_mut().expect("rendered objects have metadata");
            if namespaced {
                if meta.get("namespace").and_then(|n| n.as_str()).unwrap_or_default().is_empty() {
                    meta.insert("namespace".into(), dest_ns.clone().into());
                }
            } else {
                meta.remove("namespace");
            }
            if let Some(proj) = &proj {
                let proj_name = proj.metadata.name.as_deref().unwrap_or_default();
                let ns = namespaced.then(|| object["metadata"]["namespace"].as_str().unwrap_or_default());
                if let Err(e) = project::object_check(
                    proj_name,
                    &proj.spec,
                    &gk.group,
                    &kind,
                    &name,
                    ns,
                    IN_CLUSTER,
                    "in-cluster",
                ) {
                    errors.push(format!("{}: {e}", m.file));
                    continue;
                }
            }
            let is_hook = sync::hooks::is_hook(&object);
            let key = if is_hook { sync::plan::desired_key(&object) } else { ResourceKey::of(&object) };
            let Some(key) = key else {
                errors.push(format!(
                    "{}: {kind}: metadata.name is missing (generateName is only for hooks)",
                    m.file
                ));
                continue;
            };
            let annotations = object["metadata"]
                .as_object_mut()
                .expect("metadata")
                .entry("annotations")
                .or_insert_with(|| serde_json::json!({}));
            if let Some(a) = annotations.as_object_mut() {
                a.insert(TRACKING_ANNOTATION.into(), key.tracking_id(&app_name).into());
                if !installation_id.is_empty() {
                    a.insert(INSTALLATION_ANNOTATION.into(), installation_id.clone().into());
                }
            }
            if let Some(first) = seen.insert(key.clone(), m.file.clone()) {
                warnings.push((
                    "RepeatedResourceWarning",
                    format!(
                        "Resource {key} appeared 2 times among application resources ({first}, {})",
                        m.file
                    ),
                ));
                objects.retain(|d| d.key != key);
            }
            objects.push(Desired { key, file: m.file, object });
        }
        Target { revision, revisions: vec![], source_type: "Directory", commit, objects, errors, warnings }
    }

    /// Desired against live: each object's sync status and health, and which tracked objects left git.
    async fn compare(&self, app: &Application, target: &Target, settings: &crate::Settings) -> Comparison {
        let ignore = &settings.ignore_rules_for(app);
        let app_name = app.metadata.name.clone().unwrap_or_default();
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        let validate = !has_option(&sync_options(app, None), "Validate=false");
        // Watch the desired kinds and every kind in the last inventory (status.resources), so objects that
        // left git are still seen after a restart.
        let mut kinds: BTreeSet<GroupKind> = target.objects.iter().map(|d| d.key.group_kind()).collect();
        for r in app.status.iter().flat_map(|s| &s.resources) {
            if let Some(kind) = &r.kind {
                kinds.insert(GroupKind { group: r.group.clone().unwrap_or_default(), kind: kind.clone() });
            }
        }
        for gk in &kinds {
            if let Err(e) = self.cache.ensure_watched(gk).await
                && target.objects.iter().any(|d| &d.key.group_kind() == gk)
            {
                errors.push(e.to_string());
            }
        }
        // Workloads' children (ReplicaSets, Pods) are cached too, for the resource tree.
        let workloads = ["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"];
        if kinds.iter().any(|gk| workloads.contains(&gk.kind.as_str())) {
            for (group, kind) in [("apps", "ReplicaSet"), ("", "Pod"), ("batch", "Job")] {
                let _ =
                    self.cache.ensure_watched(&GroupKind { group: group.into(), kind: kind.into() }).await;
            }
        }
        let (tracked, refused) = self.permitted_tracked(app);
        let desired_keys: HashSet<&ResourceKey> = target.objects.iter().map(|d| &d.key).collect();
        let mut resources = Vec::new();
        let mut healths = Vec::new();
        let mut out_of_sync = 0;
        let mut live_objects = Vec::new();
        for d in target.objects.iter().filter(|d| !sync::hooks::is_hook(&d.object)) {
            let live = self.live_view(&app_name, &d.key);
            let version = berth_engine::resource::split_api_version(
                d.object["apiVersion"].as_str().unwrap_or_default(),
            )
            .1
            .to_string();
            let (sync_status, health) = match &live {
                None => ("OutOfSync", Some(health::Health::new(HealthStatus::Missing, ""))),
                Some(live) => {
                    live_objects.push(live.clone());
                    let equal =
                        self.in_sync(&app_name, d, live, ignore, validate).await.unwrap_or_else(|message| {
                            errors.push(format!("{}: {}: {message}", d.file, d.key));
                            false
                        });
                    (if equal { "Synced" } else { "OutOfSync" }, settings.health(live))
                }
            };
            if sync_status == "OutOfSync" {
                out_of_sync += 1;
            }
            if let Some(h) = &health {
                healths.push(h.status);
            }
            resources.push(resource_status(
                &d.key,
                &version,
                sync_status,
                health,
                None,
                Some(sync::sync_wave(&d.object)),
            ));
        }
        for (key, live) in &tracked {
            if desired_keys.contains(key) || sync::hooks::is_hook(live) {
                continue;
            }
            out_of_sync += 1;
            let version =
                berth_engine::resource::split_api_version(live["apiVersion"].as_str().unwrap_or_default())
                    .1
                    .to_string();
            resources.push(resource_status(
                key,
                &version,
                "OutOfSync",
                settings.health(live),
                Some(true),
                None,
            ));
        }
        resources.sort_by(|a, b| {
            (&a.group, &a.kind, &a.namespace, &a.name).cmp(&(&b.group, &b.kind, &b.namespace, &b.name))
        });
        let sync_status = if !target.errors.is_empty() {
            "Unknown"
        } else if out_of_sync > 0 {
            "OutOfSync"
        } else {
            "Synced"
        };
        for shared in self.shared_resources(&app_name, target) {
            warnings.push(shared);
        }
        Comparison {
            resources,
            sync_status,
            health: health::worst(&healths),
            errors,
            warnings,
            refused,
            live: live_objects,
        }
    }

    /// The live object as the cache has it, or what the last sync stored if the watch is behind.
    fn live_view(&self, app: &str, key: &ResourceKey) -> Option<Arc<serde_json::Value>> {
        let cached = self.cache.get(key);
        let memo = self.memo.lock().expect("memo lock");
        let Some((applied, at)) = memo.get(app).and_then(|m| m.applied.get(key)) else { return cached };
        if at.elapsed() > Duration::from_secs(10) {
            return cached;
        }
        let rv = |o: &serde_json::Value| {
            o["metadata"]["resourceVersion"].as_str().and_then(|v| v.parse::<u64>().ok())
        };
        match &cached {
            Some(c) if rv(c) >= rv(applied) => cached,
            _ => Some(applied.clone()),
        }
    }

    /// Whether the live object already is what applying the desired one would make it: a server-side-apply
    /// dry run predicts the result (with every server default), and the two are compared without server
    /// fields and ignored differences. The verdict is kept until the object in git, in the cluster, or
    /// the rules change.
    async fn in_sync(
        &self,
        app: &str,
        d: &Desired,
        live: &serde_json::Value,
        ignore: &[IgnoreRule],
        validate: bool,
    ) -> Result<bool, String> {
        let desired_hash = hash_of(&d.object);
        let rules: Vec<&IgnoreRule> = ignore.iter().filter(|r| r.matches(&d.key)).collect();
        let rules_hash = hash_of(&format!("{rules:?} validate={validate}"));
        let rv = live["metadata"]["resourceVersion"].as_str().unwrap_or_default().to_string();
        if let Some((h, r, rh, verdict)) =
            self.memo.lock().expect("memo lock").get(app).and_then(|m| m.verdicts.get(&d.key))
            && *h == desired_hash
            && *r == rv
            && *rh == rules_hash
        {
            return Ok(*verdict);
        }
        let info = self.cache.kind(&d.key.group_kind()).await.map_err(|e| e.to_string())?;
        let mode = berth_engine::apply::ApplyMode {
            dry_run: true,
            validate: validate && !sync::has_sync_option(&d.object, "Validate=false"),
            ..Default::default()
        };
        let predicted = berth_engine::apply::apply_with(&self.client, &info, &d.object, mode)
            .await
            .map_err(|e| sync::api_message(&e))?;
        // The cache keeps no managedFields; rules that ignore fields by manager read them from the server.
        let with_managers;
        let live = if rules.iter().any(|r| !r.managed_fields_managers.is_empty()) {
            with_managers = berth_engine::apply::get(&self.client, &info, &d.key)
                .await
                .map_err(|e| sync::api_message(&e))?
                .unwrap_or_else(|| live.clone());
            &with_managers
        } else {
            live
        };
        let mut a = predicted;
        let mut b = live.clone();
        let owned: Vec<IgnoreRule> = rules.into_iter().cloned().collect();
        normalize::apply_ignore_rules(&mut a, live, &d.key, &owned).map_err(|e| e.to_string())?;
        normalize::apply_ignore_rules(&mut b, live, &d.key, &owned).map_err(|e| e.to_string())?;
        normalize::strip_server_fields(&mut a);
        normalize::strip_server_fields(&mut b);
        let verdict = normalize::differing_paths(&a, &b).is_empty();
        let mut memo = self.memo.lock().expect("memo lock");
        memo.entry(app.to_string())
            .or_default()
            .verdicts
            .insert(d.key.clone(), (desired_hash, rv, rules_hash, verdict));
        Ok(verdict)
    }

    fn apply_comparison(
        &self,
        app: &Application,
        status: &mut ApplicationStatus,
        target: &Target,
        cmp: &Comparison,
    ) {
        status.resources = cmp.resources.clone();
        status.sync = Some(SyncStatus {
            status: cmp.sync_status.into(),
            compared_to: Some(self.compared_to(app)),
            revision: Some(target.revision.clone()),
            revisions: target.revisions.clone(),
        });
        status.health = Some(AppHealth {
            status: Some(cmp.health.as_str().into()),
            message: None,
            last_transition_time: status
                .health
                .as_ref()
                .filter(|h| h.status.as_deref() == Some(cmp.health.as_str()))
                .and_then(|h| h.last_transition_time.clone())
                .or_else(|| Some(now())),
        });
        status.source_type = Some(target.source_type.into());
        let desired: Vec<&serde_json::Value> = target.objects.iter().map(|d| &d.object).collect();
        status.summary = summary(desired.into_iter().chain(cmp.live.iter().map(|l| &**l)));
    }

    /// Advances a sync operation by one step and returns its state: Running (recorded, and continued on
    /// the next pass: after a restart too), or finished. The first step records Running before anything
    /// is applied; every step records what it did before the next one starts.
    async fn run_operation(
        &self,
        app: &Application,
        op: &Operation,
        status: &mut ApplicationStatus,
        rv: &mut String,
        level: Level,
    ) -> Result<OperationState, Error> {
        let name = app.metadata.name.clone().unwrap_or_default();
        let sync_op = op.sync.clone().unwrap_or_default();
        let resumed = status.operation_state.clone().filter(|s| s.phase == "Running" && s.operation == *op);
        let mut state = match resumed {
            Some(state) => state,
            None => {
                let state = OperationState {
                    operation: op.clone(),
                    phase: "Running".into(),
                    message: None,
                    sync_result: None,
                    started_at: now(),
                    finished_at: None,
                    retry_count: None,
                };
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
        // A resumed operation keeps the commits it started with; a rollback brings its own source(s).
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
        let target = match self.validate(app) {
            Err(message) => Err(message),
            Ok(sources) => {
                let sources = if !sync_op.sources.is_empty() {
                    sync_op.sources.clone()
                } else if let Some(source) = &sync_op.source {
                    vec![source.clone()]
                } else {
                    sources
                };
                let revisions = pinned.clone().or(requested);
                self.target(app, &sources, revisions.as_deref(), level.max(Level::Refresh), true)
                    .await
                    .map(|t| (t, sources))
            }
        };
        let (target, sources) = match target {
            Ok((t, sources)) => (Ok(t), sources),
            Err(e) => (Err(e), vec![]),
        };
        let target = match target {
            Ok(t) if t.errors.is_empty() => t,
            Ok(t) => {
                return Ok(finish(state, "Error", format!("ComparisonError: {}", t.errors.join("; ")), None));
            }
            Err(message) => return Ok(finish(state, "Error", format!("ComparisonError: {message}"), None)),
        };
        let options = sync_options(app, Some(&sync_op));
        let automated = app.spec.sync_policy.as_ref().and_then(|p| p.automated.as_ref());
        if target.objects.iter().all(|d| berth_engine::sync::hooks::is_hook(&d.object))
            && !automated.and_then(|a| a.allow_empty).unwrap_or(false)
            && op.initiated_by.as_ref().and_then(|i| i.automated) == Some(true)
        {
            return Ok(finish(
                state,
                "Failed",
                "Skipping sync: the source rendered no objects and allowEmpty is false".into(),
                None,
            ));
        }
        if has_option(&options, "FailOnSharedResource=true")
            && let Some(shared) = self.shared_resources(&name, &target).first()
        {
            return Ok(finish(
                state,
                "Failed",
                format!("FailOnSharedResource: {shared}; nothing was applied"),
                None,
            ));
        }
        let opts = self.sync_options_for(app, &sync_op, &options, &target);
        let mut desired: Vec<serde_json::Value> = target.objects.iter().map(|d| d.object.clone()).collect();
        if has_option(&options, "RespectIgnoreDifferences=true") {
            let rules = self.settings().ignore_rules_for(app);
            for (d, object) in target.objects.iter().zip(desired.iter_mut()) {
                let Some(live) = self.live_view(&name, &d.key) else { continue };
                if !rules.iter().any(|r| r.matches(&d.key)) {
                    continue;
                }
                // Rules by field manager need the managedFields the cache does not keep.
                let live = if rules.iter().any(|r| r.matches(&d.key) && !r.managed_fields_managers.is_empty())
                    && let Ok(info) = self.cache.kind(&d.key.group_kind()).await
                    && let Ok(Some(full)) = berth_engine::apply::get(&self.client, &info, &d.key).await
                {
                    Arc::new(full)
                } else {
                    live
                };
                if let Err(e) = normalize::respect_ignored(object, &live, &d.key, &rules) {
                    return Ok(finish(state, "Error", format!("{}: {}: {e}", d.file, d.key), None));
                }
            }
        }
        // The prune set: only objects the project permits, whoever else carries this app's tracking id.
        let (tracked, refused) = self.permitted_tracked(app);
        for kind in target.objects.iter().map(|d| d.key.group_kind()).collect::<BTreeSet<_>>() {
            let _ = self.cache.ensure_watched(&kind).await;
        }
        let tasks = sync::plan::tasks(&desired, &tracked, &opts);
        let run_id = run_id(&state);
        let records: Vec<sync::Record> =
            state.sync_result.iter().flat_map(|r| &r.resources).filter_map(record_from).collect();
        let world = OperationWorld { controller: self, app: &name, settings: self.settings() };
        let mut execution = sync::run::Operation {
            client: &self.client,
            cache: &self.cache,
            world: &world,
            tasks: &tasks,
            opts: &opts,
            run_id: &run_id,
            records,
        };
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
                    let next = count + 1;
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
                self.count_sync(app, "Failed");
                Ok(finish(state, "Failed", message, Some(result)))
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
                self.count_sync(app, if opts.dry_run { "DryRun" } else { "Succeeded" });
                let state = finish(state, "Succeeded", message, Some(result));
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

    /// The engine's options for this operation, from the spec's and the operation's sync options.
    fn sync_options_for(
        &self,
        app: &Application,
        sync_op: &SyncOperation,
        options: &[String],
        target: &Target,
    ) -> SyncOptions {
        let name = app.metadata.name.clone().unwrap_or_default();
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
                    let ns = r.namespace.clone().filter(|n| !n.is_empty());
                    let found = target.objects.iter().find(|d| {
                        d.key.kind == r.kind
                            && d.key.name == r.name
                            && d.key.group == r.group.clone().unwrap_or_default()
                            && ns.as_ref().is_none_or(|n| *n == d.key.namespace)
                    });
                    found.map(|d| d.key.clone()).unwrap_or_else(|| {
                        ResourceKey::new(
                            &r.group.clone().unwrap_or_default(),
                            &r.kind,
                            &ns.unwrap_or_default(),
                            &r.name,
                        )
                    })
                })
                .collect()
        });
        let (skip, verified) = {
            let memo = self.memo.lock().expect("memo lock");
            let verdicts = memo.get(&name).map(|m| &m.verdicts);
            let mut skip = HashSet::new();
            let mut verified = HashSet::new();
            for d in &target.objects {
                if let Some((h, _, _, in_sync)) = verdicts.and_then(|v| v.get(&d.key))
                    && *h == hash_of(&d.object)
                {
                    verified.insert(d.key.clone());
                    if *in_sync && has_option(options, "ApplyOutOfSyncOnly=true") {
                        skip.insert(d.key.clone());
                    }
                }
            }
            (skip, verified)
        };
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
            force: has_option(options, "Force=true"),
            no_validate: has_option(options, "Validate=false"),
            skip_dry_run_on_missing: has_option(options, "SkipDryRunOnMissingResource=true"),
            verified,
            prune_confirmed: app
                .metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key("argocd.argoproj.io/deletion-approved")),
        }
    }

    /// Desired objects that another Application tracks (Argo CD's SharedResourceWarning).
    fn shared_resources(&self, app: &str, target: &Target) -> Vec<String> {
        target
            .objects
            .iter()
            .filter_map(|d| {
                let live = self.cache.get(&d.key)?;
                let owner = berth_engine::resource::TrackingId::of(&live)?.app;
                (owner != app).then(|| format!("{} is part of application {owner}", d.key))
            })
            .collect()
    }

    fn count_sync(&self, app: &Application, phase: &str) {
        let project = if app.spec.project.is_empty() { "default" } else { &app.spec.project };
        crate::metrics::global().synced(
            app.metadata.name.as_deref().unwrap_or_default(),
            &self.config.namespace,
            project,
            phase,
        );
    }

    fn requeue_after(&self, name: &str, after: Duration) {
        let queue = self.queue.clone();
        let name = name.to_string();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            queue.push(&name, Level::Compare);
        });
    }

    fn auto_sync_decision(
        &self,
        app: &Application,
        target: &Target,
        cmp: &Comparison,
        status: &ApplicationStatus,
        settings: &crate::Settings,
    ) -> AutoSync {
        let Some(automated) = app.spec.sync_policy.as_ref().and_then(|p| p.automated.as_ref()) else {
            return AutoSync::No;
        };
        if automated.enabled == Some(false) || cmp.sync_status != "OutOfSync" || !target.errors.is_empty() {
            return AutoSync::No;
        }
        if target.objects.is_empty() && !automated.allow_empty.unwrap_or(false) {
            return AutoSync::Blocked("Skipping sync attempt: auto-sync would delete every resource (the source rendered no objects) and allowEmpty is false".into());
        }
        let last = status.operation_state.as_ref();
        let same_target = last.and_then(|s| s.sync_result.as_ref()).is_some_and(|r| {
            r.revision == target.revision
                && r.revisions == target.revisions
                && (r.source.as_ref() == single_source(app) || r.sources == app.spec.sources)
        });
        if !same_target {
            return AutoSync::Now { self_heal: false };
        }
        let last = last.expect("same_target implies a last operation");
        if last.phase == "Failed" || last.phase == "Error" {
            return AutoSync::No;
        }
        if !automated.self_heal.unwrap_or(false) {
            return AutoSync::No;
        }
        if settings.self_heal_paused {
            return AutoSync::Blocked(
                "Self-heal is paused (argocd-cm berth.selfHeal.paused): drift is reported, not reverted"
                    .into(),
            );
        }
        let since_last = last.finished_at.as_ref().map(|t| {
            let secs = k8s_openapi::jiff::Timestamp::now().as_second() - t.0.as_second();
            Duration::from_secs(secs.max(0) as u64)
        });
        match since_last {
            Some(elapsed) if elapsed < self.config.self_heal_timeout => {
                AutoSync::Later(self.config.self_heal_timeout - elapsed)
            }
            _ => AutoSync::Now { self_heal: true },
        }
    }

    /// Writes status only onto the copy it was computed from (resourceVersion `rv`), and moves `rv` on.
    async fn write_status(
        &self,
        name: &str,
        rv: &mut String,
        status: &ApplicationStatus,
    ) -> Result<(), Error> {
        self.write_status_clearing(name, rv, status, false).await
    }

    /// [`Self::write_status`], removing the refresh annotation (present on that copy) in the same write.
    async fn write_status_clearing(
        &self,
        name: &str,
        rv: &mut String,
        status: &ApplicationStatus,
        clear_refresh: bool,
    ) -> Result<(), Error> {
        let api: Api<Application> = Api::namespaced(self.client.clone(), &self.config.namespace);
        let mut patch = serde_json::json!([
            { "op": "test", "path": "/metadata/resourceVersion", "value": rv },
            { "op": "add", "path": "/status", "value": status }
        ]);
        if clear_refresh {
            let path =
                format!("/metadata/annotations/{}", REFRESH_ANNOTATION.replace('~', "~0").replace('/', "~1"));
            patch.as_array_mut().expect("an array").push(serde_json::json!({"op": "remove", "path": path}));
        }
        let patch: json_patch::Patch = serde_json::from_value(patch).expect("a JSON patch");
        match api.patch(name, &PatchParams::default(), &Patch::<()>::Json(patch)).await {
            Ok(stored) => {
                self.remember_write(name, &stored);
                self.report(name, &stored, status);
                *rv = stored.metadata.resource_version.unwrap_or_default();
                Ok(())
            }
            Err(kube::Error::Api(e)) if e.code == 422 || e.code == 409 => Err(Error::Stale),
            Err(e) => Err(e.into()),
        }
    }

    /// Records Kubernetes Events for what moved since the last reported status (the stored copy's at the
    /// first write after a start).
    fn report(&self, name: &str, stored: &Application, status: &ApplicationStatus) {
        let summary = ApplicationStatus {
            sync: status.sync.as_ref().map(|s| berth_api::application::SyncStatus {
                status: s.status.clone(),
                ..Default::default()
            }),
            health: status.health.as_ref().map(|h| berth_api::application::HealthStatus {
                status: h.status.clone(),
                ..Default::default()
            }),
            operation_state: status.operation_state.clone().map(|mut op| {
                if let Some(result) = op.sync_result.as_mut() {
                    result.resources.clear();
                }
                op
            }),
            ..Default::default()
        };
        let previous = {
            let mut memo = self.memo.lock().expect("memo lock");
            memo.entry(name.to_string()).or_default().reported.replace(summary)
        };
        let previous = previous.or_else(|| {
            let key = kube::runtime::reflector::ObjectRef::new(name).within(&self.config.namespace);
            self.apps.get(&key).and_then(|a| a.status.clone())
        });
        crate::events::publish(&self.recorder, stored, crate::events::between(previous.as_ref(), status));
    }

    /// Copies of the Application older than berth's own last write are stale: acting on one could run an
    /// operation twice or undo a status.
    fn remember_write(&self, name: &str, stored: &Application) {
        let rv = stored.metadata.resource_version.as_deref().and_then(|v| v.parse().ok());
        self.memo.lock().expect("memo lock").entry(name.to_string()).or_default().written = rv;
    }

    /// Removes the operation that was run, unless someone replaced it meanwhile.
    async fn clear_operation(&self, name: &str, op: &Operation) -> Result<(), Error> {
        let api: Api<Application> = Api::namespaced(self.client.clone(), &self.config.namespace);
        let patch = serde_json::json!([
            { "op": "test", "path": "/operation", "value": op },
            { "op": "remove", "path": "/operation" }
        ]);
        let patch: json_patch::Patch = serde_json::from_value(patch).expect("a JSON patch");
        match api.patch(name, &PatchParams::default(), &Patch::<()>::Json(patch)).await {
            Ok(stored) => {
                self.remember_write(name, &stored);
                Ok(())
            }
            // 422: the test failed (a new operation was written) — it will run on the next pass.
            Err(kube::Error::Api(e)) if e.code == 422 || e.code == 404 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletion behind Argo CD's finalizers: PreDelete hooks first (pre-delete-finalizer), then every
    /// tracked object (resources-finalizer, foreground or background), then PostDelete hooks
    /// (post-delete-finalizer); each finalizer is removed when its step is done.
    async fn finalize(&self, app: &Application) -> Result<(), Error> {
        let name = app.metadata.name.clone().unwrap_or_default();
        let finalizers = app.metadata.finalizers.clone().unwrap_or_default();
        let has = |f: &str| finalizers.iter().any(|x| x == f);
        if has(PRE_DELETE_FINALIZER) {
            return self.deletion_step(app, sync::hooks::Phase::PreDelete, PRE_DELETE_FINALIZER).await;
        }
        let resources = finalizers.iter().find(|f| *f == FINALIZER || *f == FINALIZER_BACKGROUND);
        if let Some(finalizer) = resources {
            for r in app.status.iter().flat_map(|s| &s.resources) {
                if let Some(kind) = &r.kind {
                    let _ = self
                        .cache
                        .ensure_watched(&GroupKind {
                            group: r.group.clone().unwrap_or_default(),
                            kind: kind.clone(),
                        })
                        .await;
                }
            }
            // PostDelete hooks run after this step: they are not deleted by it.
            let post_delete = |live: &serde_json::Value| matches!(sync::hooks::hook_kind(live), sync::hooks::HookKind::Hook(p) if p.contains(&sync::hooks::Phase::PostDelete));
            // Only what the project permits is deleted (Argo CD's getPermittedAppLiveObjects).
            let (permitted, refused) = self.permitted_tracked(app);
            for refusal in &refused {
                tracing::warn!(app = %name, %refusal, "not deleted");
            }
            let tracked: Vec<_> = permitted
                .into_iter()
                .filter(|(_, live)| !sync::has_sync_option(live, "Delete=false") && !post_delete(live))
                .collect();
            if !tracked.is_empty() {
                let policy = if finalizer == FINALIZER_BACKGROUND {
                    PropagationPolicy::Background
                } else {
                    PropagationPolicy::Foreground
                };
                for (key, live) in &tracked {
                    if live["metadata"]["deletionTimestamp"].is_string() {
                        continue;
                    }
                    let info = self.cache.kind(&key.group_kind()).await?;
                    berth_engine::apply::delete(&self.client, &info, key, policy.clone(), false).await?;
                }
                self.requeue_after(&name, Duration::from_secs(1));
                return Ok(());
            }
            let finalizer = finalizer.clone();
            return self.remove_finalizer(&name, &finalizer).await;
        }
        if has(POST_DELETE_FINALIZER) {
            return self.deletion_step(app, sync::hooks::Phase::PostDelete, POST_DELETE_FINALIZER).await;
        }
        Ok(())
    }

    /// One step of a deletion phase's hooks; its finalizer is removed once they are done.
    async fn deletion_step(
        &self,
        app: &Application,
        phase: sync::hooks::Phase,
        finalizer: &str,
    ) -> Result<(), Error> {
        let name = app.metadata.name.clone().unwrap_or_default();
        match self.deletion_hooks(app, phase).await {
            sync::run::Progress::Succeeded(_) => self.remove_finalizer(&name, finalizer).await,
            sync::run::Progress::Running(message) | sync::run::Progress::Failed(message) => {
                tracing::info!(app = %name, %message, "waiting for {phase} hooks");
                self.requeue_after(&name, Duration::from_secs(1));
                Ok(())
            }
        }
    }

    /// Runs one step of the application's PreDelete or PostDelete hooks, rendered from its current target.
    /// A source that cannot be rendered any more has no hooks to run.
    async fn deletion_hooks(&self, app: &Application, phase: sync::hooks::Phase) -> sync::run::Progress {
        let name = app.metadata.name.clone().unwrap_or_default();
        let target = match self.validate(app) {
            Ok(sources) => self.target(app, &sources, None, Level::Compare, false).await,
            Err(e) => Err(e),
        };
        let desired: Vec<serde_json::Value> = match target {
            Ok(t) => t.objects.into_iter().map(|d| d.object).collect(),
            Err(message) => {
                tracing::warn!(app = %name, %message, "no {phase} hooks: the source cannot be rendered");
                return sync::run::Progress::Succeeded(String::new());
            }
        };
        let tasks = sync::plan::deletion_hooks(&desired, phase);
        for kind in tasks.iter().map(|t| t.key.group_kind()).collect::<BTreeSet<_>>() {
            let _ = self.cache.ensure_watched(&kind).await;
        }
        let run_id = short_id(&(&app.metadata.deletion_timestamp, phase.as_str()));
        let world = OperationWorld { controller: self, app: &name, settings: self.settings() };
        let opts = SyncOptions::default();
        let mut execution = sync::run::Operation {
            client: &self.client,
            cache: &self.cache,
            world: &world,
            tasks: &tasks,
            opts: &opts,
            run_id: &run_id,
            records: vec![],
        };
        execution.run_hooks(phase).await
    }

    async fn remove_finalizer(&self, name: &str, finalizer: &str) -> Result<(), Error> {
        let api: Api<Application> = Api::namespaced(self.client.clone(), &self.config.namespace);
        let current = api.get(name).await?;
        let remaining: Vec<String> =
            current.metadata.finalizers.unwrap_or_default().into_iter().filter(|f| f != finalizer).collect();
        let patch = serde_json::json!([
            { "op": "test", "path": "/metadata/resourceVersion", "value": current.metadata.resource_version },
            { "op": "replace", "path": "/metadata/finalizers", "value": remaining }
        ]);
        let patch: json_patch::Patch = serde_json::from_value(patch).expect("a JSON patch");
        match api.patch(name, &PatchParams::default(), &Patch::<()>::Json(patch)).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 422 || e.code == 409 => {
                self.requeue_after(name, Duration::from_millis(100));
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Argo CD adds the pre-/post-delete finalizers to an application whose source has such hooks, so
    /// they run when it is deleted.
    async fn ensure_deletion_finalizers(
        &self,
        app: &Application,
        target: &Target,
    ) -> Result<Option<String>, Error> {
        let mut wanted = Vec::new();
        for (phase, finalizer) in [
            (sync::hooks::Phase::PreDelete, PRE_DELETE_FINALIZER),
            (sync::hooks::Phase::PostDelete, POST_DELETE_FINALIZER),
        ] {
            let has_hooks = target.objects.iter().any(|d| {
                matches!(sync::hooks::hook_kind(&d.object), sync::hooks::HookKind::Hook(p) if p.contains(&phase))
            });
            let present = app.metadata.finalizers.iter().flatten().any(|f| f == finalizer);
            if has_hooks && !present {
                wanted.push(finalizer);
            }
        }
        if wanted.is_empty() {
            return Ok(None);
        }
        let name = app.metadata.name.clone().unwrap_or_default();
        let api: Api<Application> = Api::namespaced(self.client.clone(), &self.config.namespace);
        let mut finalizers = app.metadata.finalizers.clone().unwrap_or_default();
        finalizers.extend(wanted.iter().map(|f| f.to_string()));
        let patch = serde_json::json!({"metadata": {"finalizers": finalizers}});
        let stored = api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
        self.remember_write(&name, &stored);
        Ok(stored.metadata.resource_version)
    }
}

enum AutoSync {
    No,
    Blocked(String),
    Later(Duration),
    Now { self_heal: bool },
}

fn finish(
    mut state: OperationState,
    phase: &str,
    message: String,
    result: Option<SyncOperationResult>,
) -> OperationState {
    state.phase = phase.into();
    state.message = Some(message);
    state.sync_result = result.or(state.sync_result);
    state.finished_at = Some(now());
    state
}

fn resource_status(
    key: &ResourceKey,
    version: &str,
    sync_status: &str,
    health: Option<health::Health>,
    requires_pruning: Option<bool>,
    wave: Option<i64>,
) -> ResourceStatus {
    ResourceStatus {
        group: (!key.group.is_empty()).then(|| key.group.clone()),
        version: Some(version.into()),
        kind: Some(key.kind.clone()),
        namespace: (!key.namespace.is_empty()).then(|| key.namespace.clone()),
        name: Some(key.name.clone()),
        status: Some(sync_status.into()),
        health: health.map(|h| AppHealth {
            status: Some(h.status.as_str().into()),
            message: (!h.message.is_empty()).then_some(h.message),
            last_transition_time: None,
        }),
        hook: None,
        requires_pruning,
        sync_wave: wave,
        requires_deletion_confirmation: None,
    }
}

/// Status equality that ignores timestamps berth refreshes on every pass.
fn same_ignoring_time(a: &ApplicationStatus, b: &ApplicationStatus) -> bool {
    let strip = |s: &ApplicationStatus| {
        let mut s = s.clone();
        s.reconciled_at = None;
        s.observed_at = None;
        s
    };
    strip(a) == strip(b)
}

impl crate::Settings {
    /// The system-wide rules plus the application's own.
    pub fn ignore_rules_for(&self, app: &Application) -> Vec<IgnoreRule> {
        let mut rules = self.ignore_rules.clone();
        rules.extend(app.spec.ignore_differences.iter().map(|r| IgnoreRule {
            group: Some(r.group.clone().unwrap_or_default()),
            kind: r.kind.clone(),
            name: r.name.clone(),
            namespace: r.namespace.clone(),
            json_pointers: r.json_pointers.clone(),
            jq_path_expressions: r.jq_path_expressions.clone(),
            managed_fields_managers: r.managed_fields_managers.clone(),
        }));
        rules
    }
}

/// One object of an application as Argo CD's managed-resources call shows it: the desired state, the live
/// state, and both normalised the way the compare sees them (Secrets masked).
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ManagedResource {
    pub group: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub target_state: String,
    pub live_state: String,
    pub normalized_live_state: String,
    pub predicted_live_state: String,
    pub hook: bool,
}

impl Controller {
    /// The application's desired objects (its current target, from the render cache) and their live
    /// counterparts, for the API's managed-resources and manifests.
    /// Author, date and message of a revision of the application's git source (`source_index` of
    /// `spec.sources`), for the API's `revisions/{revision}/metadata`. A branch or tag is resolved first.
    pub async fn revision_metadata(
        &self,
        name: &str,
        revision: &str,
        source_index: usize,
    ) -> Result<berth_api::application::RevisionMetadata, String> {
        let key = kube::runtime::reflector::ObjectRef::new(name).within(&self.config.namespace);
        let app = self.apps.get(&key).ok_or_else(|| format!("application {name} not found"))?;
        let sources = self.validate(&app)?;
        let source = sources.get(source_index).ok_or_else(|| {
            format!("source index {source_index} is out of range ({} sources)", sources.len())
        })?;
        if source.chart.is_some() {
            return Err(format!(
                "revision {revision} is a chart version: only git sources have revision metadata"
            ));
        }
        let creds = self.creds_for(&app, &source.repo_url);
        let full_sha = revision.len() == 40 && revision.bytes().all(|b| b.is_ascii_hexdigit());
        let sha = if full_sha {
            revision.to_string()
        } else {
            self.git
                .resolve(&source.repo_url, revision, &creds, Duration::from_secs(5))
                .await
                .map_err(|e| format!("cannot resolve revision {revision:?}: {e}"))?
        };
        self.git
            .fetch(&source.repo_url, &sha, &creds)
            .await
            .map_err(|e| format!("cannot fetch {sha}: {e}"))?;
        let info = self.git.commit_info(&source.repo_url, &sha).await.map_err(|e| format!("{sha}: {e}"))?;
        Ok(berth_api::application::RevisionMetadata {
            author: Some(info.author),
            date: Some(info.date),
            message: Some(info.message),
            tags: vec![],
        })
    }

    pub async fn managed_resources(&self, name: &str) -> Result<(String, Vec<ManagedResource>), String> {
        let key = kube::runtime::reflector::ObjectRef::new(name).within(&self.config.namespace);
        let app = self.apps.get(&key).ok_or_else(|| format!("application {name} not found"))?;
        let sources = self.validate(&app)?;
        let target = self.target(&app, &sources, None, Level::Compare, false).await?;
        let settings = self.settings();
        let rules = settings.ignore_rules_for(&app);
        let mut out = Vec::new();
        let mut keys: HashSet<ResourceKey> = HashSet::new();
        for d in &target.objects {
            keys.insert(d.key.clone());
            let hook = sync::hooks::is_hook(&d.object);
            let live = if hook { None } else { self.live_view(name, &d.key) };
            let predicted = match (&live, hook) {
                (Some(_), false) => match self.cache.kind(&d.key.group_kind()).await {
                    Ok(info) => berth_engine::apply::apply(&self.client, &info, &d.object, true).await.ok(),
                    Err(_) => None,
                },
                _ => None,
            };
            out.push(self.managed(&d.key, Some(&d.object), live.as_deref(), predicted, &rules, hook));
        }
        for (key, live) in self.permitted_tracked(&app).0 {
            if !keys.contains(&key) && !sync::hooks::is_hook(&live) {
                out.push(self.managed(&key, None, Some(&live), None, &rules, false));
            }
        }
        Ok((target.revision, out))
    }

    fn managed(
        &self,
        key: &ResourceKey,
        target: Option<&serde_json::Value>,
        live: Option<&serde_json::Value>,
        predicted: Option<serde_json::Value>,
        rules: &[IgnoreRule],
        hook: bool,
    ) -> ManagedResource {
        let mut normalized_live = live.cloned();
        let mut predicted = predicted.or_else(|| target.cloned());
        if let (Some(live_obj), Some(n)) = (live, normalized_live.as_mut()) {
            let _ = normalize::apply_ignore_rules(n, live_obj, key, rules);
            normalize::strip_server_fields(n);
        }
        if let Some(p) = predicted.as_mut() {
            if let Some(live_obj) = live {
                let _ = normalize::apply_ignore_rules(p, live_obj, key, rules);
            }
            normalize::strip_server_fields(p);
        }
        let mut target = target.cloned();
        let mut live = live.cloned();
        if let (Some(a), Some(b)) = (normalized_live.as_mut(), predicted.as_mut()) {
            normalize::mask_secret_pair(a, b);
        }
        if let (Some(a), Some(b)) = (live.as_mut(), target.as_mut()) {
            normalize::mask_secret_pair(a, b);
        }
        // A Secret that is only on one side is masked against itself.
        for v in [&mut target, &mut live, &mut normalized_live, &mut predicted].into_iter().flatten() {
            if v["kind"] == "Secret" {
                let mut copy = v.clone();
                normalize::mask_secret_pair(v, &mut copy);
            }
        }
        let text = |v: &Option<serde_json::Value>| {
            v.as_ref().map(|v| v.to_string()).unwrap_or_else(|| "null".into())
        };
        ManagedResource {
            group: key.group.clone(),
            kind: key.kind.clone(),
            namespace: key.namespace.clone(),
            name: key.name.clone(),
            target_state: text(&target),
            live_state: text(&live),
            normalized_live_state: text(&normalized_live),
            predicted_live_state: text(&predicted),
            hook,
        }
    }
}

/// Everything of a source that a render depends on, except the commit.
fn render_source_key(source: &ApplicationSource) -> u64 {
    let mut s = source.clone();
    s.target_revision = None;
    s.repo_url = berth_repo::url::normalize(&source.repo_url);
    hash_of(&s)
}

const MANIFEST_GENERATE_PATHS: &str = "argocd.argoproj.io/manifest-generate-paths";

/// The repository paths whose changes make the application render again: Argo CD's
/// `manifest-generate-paths` annotation (`;`-separated; relative to the source path, or from the repository
/// root with a leading `/`), else the source path and what its last render read.
fn watched_paths(app: &Application, source: &ApplicationSource, inputs: &[String]) -> Vec<String> {
    let base = source.path.clone().unwrap_or_default();
    let annotation = app.metadata.annotations.as_ref().and_then(|a| a.get(MANIFEST_GENERATE_PATHS));
    let Some(annotation) = annotation else {
        // What the last render read (a Kustomize overlay's bases, a chart's value files), or the path.
        let mut watched: Vec<String> = inputs.iter().map(|p| normalize_repo_path(p)).collect();
        watched.push(normalize_repo_path(&base));
        return watched;
    };
    annotation
        .split(';')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| match p.strip_prefix('/') {
            Some(root) => normalize_repo_path(root),
            None => normalize_repo_path(&format!("{base}/{p}")),
        })
        .collect()
}

/// `a/./b/../c/` → `a/c`; the repository root is ``.
fn normalize_repo_path(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

/// Whether a changed file lies under one of the watched paths.
fn covers(watched: &[String], file: &str) -> bool {
    watched.iter().any(|p| {
        p.is_empty() || file == p || file.strip_prefix(p.as_str()).is_some_and(|r| r.starts_with('/'))
    })
}

/// Unique to one attempt of one operation: its start time and retry count.
fn run_id(state: &OperationState) -> String {
    short_id(&(&state.started_at, state.retry_count.unwrap_or(0)))
}

/// Ten hex digits identifying `value` (hook runs are annotated with it).
fn short_id(value: &impl serde::Serialize) -> String {
    format!("{:010x}", hash_of(value) & 0xff_ffff_ffff)
}

fn record_from(r: &ResourceResult) -> Option<sync::Record> {
    let phase = sync::hooks::Phase::parse(r.sync_phase.as_deref().unwrap_or("Sync"))?;
    Some(sync::Record {
        key: ResourceKey::new(&r.group, &r.kind, &r.namespace, &r.name),
        version: r.version.clone(),
        phase,
        hook: r.hook_type.is_some(),
        status: OutcomeStatus::parse(r.status.as_deref().unwrap_or_default())?,
        hook_phase: r.hook_phase.as_deref().and_then(sync::HookPhase::parse),
        message: r.message.clone().unwrap_or_default(),
    })
}

fn result_from(r: &sync::Record) -> ResourceResult {
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
        ..Default::default()
    }
}

/// What the sync executor sees of the cluster: the cache, plus this controller's own recent writes.
struct OperationWorld<'a> {
    controller: &'a Controller,
    app: &'a str,
    settings: Arc<crate::Settings>,
}

impl sync::run::World for OperationWorld<'_> {
    fn live(&self, key: &ResourceKey) -> Option<Arc<serde_json::Value>> {
        self.controller.live_view(self.app, key)
    }

    fn hook_instance(&self, run: &str) -> Option<Arc<serde_json::Value>> {
        let is_run = |o: &serde_json::Value| {
            o["metadata"]["annotations"][sync::hooks::HOOK_RUN_ANNOTATION].as_str() == Some(run)
        };
        let found = self.controller.cache.tracked_by(self.app).into_iter().find(|(_, o)| is_run(o));
        if let Some((key, _)) = found {
            return self.controller.live_view(self.app, &key);
        }
        // Created a moment ago, not in the watch yet.
        let memo = self.controller.memo.lock().expect("memo lock");
        let recent = memo
            .get(self.app)?
            .applied
            .iter()
            .find(|(_, (o, at))| is_run(o) && at.elapsed() < Duration::from_secs(10));
        let (key, (obj, _)) = recent?;
        // Gone from the cluster although the watch has caught up with it: deleted.
        let rv = |o: &serde_json::Value| o["metadata"]["resourceVersion"].as_str().map(str::to_string);
        match self.controller.cache.get(key) {
            Some(c) if rv(&c) != rv(obj) => Some(c),
            _ => Some(obj.clone()),
        }
    }

    fn health(&self, obj: &serde_json::Value) -> Option<health::Health> {
        self.settings.health(obj)
    }

    fn stored(&self, key: &ResourceKey, obj: Arc<serde_json::Value>) {
        let mut memo = self.controller.memo.lock().expect("memo lock");
        let m = memo.entry(self.app.to_string()).or_default();
        m.applied.retain(|_, (_, at)| at.elapsed() < Duration::from_secs(10));
        m.applied.insert(key.clone(), (obj, Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(annotation: Option<&str>) -> (Application, ApplicationSource) {
        let mut app: Application = serde_json::from_value(serde_json::json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Application", "metadata": {"name": "web"},
            "spec": {"destination": {"namespace": "web"}, "project": "default",
                     "source": {"repoURL": "https://example.com/r.git", "path": "apps/web/overlays/prod"}}
        }))
        .unwrap();
        if let Some(a) = annotation {
            app.metadata.annotations = Some([(MANIFEST_GENERATE_PATHS.to_string(), a.to_string())].into());
        }
        let source = app.spec.source.clone().unwrap();
        (app, source)
    }

    #[test]
    fn the_source_path_is_watched_by_default() {
        let (app, source) = app(None);
        let watched = watched_paths(&app, &source, &[]);
        assert_eq!(watched, ["apps/web/overlays/prod"]);
        let with_base = watched_paths(&app, &source, &["apps/web/base".into()]);
        assert!(covers(&with_base, "apps/web/base/deployment.yaml"), "a base the overlay read");
        assert!(covers(&watched, "apps/web/overlays/prod/kustomization.yaml"));
        assert!(
            !covers(&watched, "apps/web/overlays/prod-eu/kustomization.yaml"),
            "a sibling with a longer name"
        );
        assert!(!covers(&watched, "apps/api/deployment.yaml"));
    }

    #[test]
    fn manifest_generate_paths_are_relative_to_the_source_or_absolute() {
        let (annotated, source) = app(Some(".; ../../base ;/shared/values"));
        let watched = watched_paths(&annotated, &source, &["ignored/when/annotated".into()]);
        assert_eq!(watched, ["apps/web/overlays/prod", "apps/web/base", "shared/values"]);
        assert!(covers(&watched, "apps/web/base/deployment.yaml"));
        assert!(covers(&watched, "shared/values/common.yaml"));
        assert!(!covers(&watched, "apps/web/overlays/staging/kustomization.yaml"));
        let (root, source) = app(Some("/"));
        assert!(covers(&watched_paths(&root, &source, &[]), "anything/at/all.yaml"));
    }

    #[test]
    fn the_render_key_ignores_the_revision_but_not_the_options() {
        let (_, source) = app(None);
        let mut moved = source.clone();
        moved.target_revision = Some("v2".into());
        assert_eq!(render_source_key(&source), render_source_key(&moved));
        let mut other = source.clone();
        other.path = Some("apps/web/overlays/staging".into());
        assert_ne!(render_source_key(&source), render_source_key(&other));
    }
}
