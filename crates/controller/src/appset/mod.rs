//! The ApplicationSet controller: watches ApplicationSets, generates their Applications (berth-appset,
//! with the repositories and cluster Secrets read here, [`inputs`]) and creates, updates and deletes the
//! Applications each set owns ([`plan`]), one set at a time.
//!
//! Two depths of work, as the queue's levels say:
//! - **generate** (`Refresh`): the set changed, its cluster Secrets or settings changed, a push reached
//!   one of its repositories, its `requeueAfterSeconds` passed, or someone changed an Application it
//!   owns. The generators run; their error leaves every Application as it is (a condition says why).
//! - **status** (`Compare`): an owned Application's sync or health changed. Only `status.resources`, the
//!   rollout ([`rollout`], progressive sync) and the conditions are written.
//!
//! Writes go to the API server and come back through the Application watch, which is also where the
//! status stage reads them: berth never trusts its own record of what it wrote.

pub mod decisions;
pub mod inputs;
pub mod plan;
pub mod rollout;
pub mod scm;
pub mod status;

use berth_api::application::{HealthStatus, ResourceStatus};
use berth_api::applicationset::ApplicationSetStatus;
use berth_api::{Application, ApplicationSet};
use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::Controller;
use crate::pass::hash_of;
use crate::queue::{Level, Queue};
use inputs::{LiveInputs, Tree};
use status::Outcome;

/// How long after a generation the git generators look again when they set no `requeueAfterSeconds`
/// (Argo CD's default, three minutes).
pub const DEFAULT_REQUEUE: Duration = Duration::from_secs(180);
/// How soon a set whose generators failed is tried again.
const ERROR_REQUEUE: Duration = Duration::from_secs(20);
/// How old a shared `ls-remote` may be for a generation that no push asked for.
const LS_REMOTE_MAX_AGE: Duration = Duration::from_secs(3);
/// Application writes of one set in flight at once (a thousand creates take a few seconds; the client's
/// QPS budget still paces them).
const WRITES_AT_ONCE: usize = 64;
/// How often the sets whose Applications changed sync or health report again: every change within it is
/// one status write (a thousand apps syncing would otherwise rewrite a thousand-entry status each time).
const REPORT_EVERY: Duration = Duration::from_millis(500);
/// How often a set with a RollingSync reports (and so advances its rollout) even when nothing announced a change.
const ROLLOUT_REPORT_EVERY: Duration = Duration::from_secs(10);
/// Repository listings kept (one per repository and commit).
const LISTINGS_KEPT: usize = 64;

/// argocd-cmd-params-cm keys this controller reads (at start: Argo CD's are process flags too).
pub const POLICY_OVERRIDE_KEY: &str = "applicationsetcontroller.enable.policy.override";
/// Argo CD's annotation asking a set to generate now (its webhook sets it; so may anyone): the revisions
/// are resolved afresh, and the annotation removed once done.
pub const REFRESH_ANNOTATION: &str = "argocd.argoproj.io/application-set-refresh";

/// Why a set's Applications could not be generated.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// A generator or the template is wrong (the message names the field).
    #[error(transparent)]
    Generate(#[from] berth_appset::Error),
    /// An input could not be read (a repository, the cluster Secrets).
    #[error("{0}")]
    Input(String),
}

/// The ApplicationSet side of the controller.
pub(crate) struct AppSets {
    pub(crate) store: Store<ApplicationSet>,
    pub(crate) queue: Arc<Queue>,
    cmd_params: Arc<BTreeMap<String, String>>,
    /// Repository listings per (repository, commit).
    listings: Mutex<HashMap<(String, String), Arc<Tree>>>,
    /// Sets a push asked for: their next generation resolves revisions afresh.
    fresh: Mutex<HashSet<String>>,
    /// When each set generates next, by its `requeueAfterSeconds`.
    due: Mutex<HashMap<String, Instant>>,
    /// What of each owned Application last asked its set for work (see [`owned_fingerprint`]).
    seen: Mutex<HashMap<String, (u64, u64)>>,
    /// Sets to report at the next [`REPORT_EVERY`] tick.
    reports: Mutex<HashSet<String>>,
}

impl AppSets {
    pub(crate) fn new(
        store: Store<ApplicationSet>,
        queue: Arc<Queue>,
        cmd_params: BTreeMap<String, String>,
    ) -> AppSets {
        AppSets {
            store,
            queue,
            cmd_params: Arc::new(cmd_params),
            listings: Mutex::default(),
            fresh: Mutex::default(),
            due: Mutex::default(),
            seen: Mutex::default(),
            reports: Mutex::default(),
        }
    }

    pub(crate) fn listing(&self, url: &str, sha: &str) -> Option<Arc<Tree>> {
        self.listings.lock().get(&(url.to_string(), sha.to_string())).cloned()
    }

    pub(crate) fn remember_listing(&self, url: &str, sha: &str, tree: Arc<Tree>) {
        let mut listings = self.listings.lock();
        if listings.len() >= LISTINGS_KEPT {
            listings.clear();
        }
        listings.insert((url.to_string(), sha.to_string()), tree);
    }

    fn push_all(&self, level: Level) {
        for set in self.store.state() {
            self.queue.push(&key_of(&set), level);
        }
    }
}

/// `namespace/name`: a set's name in the queue.
pub fn key_of(set: &ApplicationSet) -> String {
    format!(
        "{}/{}",
        set.metadata.namespace.as_deref().unwrap_or_default(),
        set.metadata.name.as_deref().unwrap_or_default()
    )
}

/// What of a set asks for a generation when it changes: its spec, labels and annotations (the refresh
/// annotation among them) and its deletion; not the status this controller writes.
pub fn fingerprint(set: &ApplicationSet) -> u64 {
    // The refresh annotation asks by being there (see [`asks_for_refresh`]); its removal asks nothing.
    let annotations: Option<BTreeMap<&String, &String>> = set
        .metadata
        .annotations
        .as_ref()
        .map(|a| a.iter().filter(|(k, _)| k.as_str() != REFRESH_ANNOTATION).collect());
    hash_of(&(&set.spec, &set.metadata.labels, &annotations, &set.metadata.deletion_timestamp))
}

/// Whether the set carries Argo CD's refresh annotation.
pub fn asks_for_refresh(set: &ApplicationSet) -> bool {
    set.metadata.annotations.as_ref().is_some_and(|a| a.contains_key(REFRESH_ANNOTATION))
}

/// The set that owns `app` (its controller owner reference of kind ApplicationSet), as a queue key.
pub fn owner_key(app: &Application) -> Option<String> {
    let owner = app.metadata.owner_references.as_ref()?.iter().find(|o| {
        o.controller == Some(true) && o.kind == "ApplicationSet" && o.api_version.starts_with("argoproj.io/")
    })?;
    Some(format!("{}/{}", app.metadata.namespace.as_deref().unwrap_or_default(), owner.name))
}

/// Why `app` may not manage the object (`group`, `kind`, `name`, `namespace`) on the cluster berth runs
/// in: it is the ApplicationSet that generated `app` (an app that synced or pruned its own set would
/// rewrite, or delete, itself and its siblings). `None` for any other object.
pub fn own_set_refusal(
    app: &Application,
    group: &str,
    kind: &str,
    name: &str,
    namespace: Option<&str>,
) -> Option<String> {
    if group != "argoproj.io" || kind != "ApplicationSet" {
        return None;
    }
    let key = owner_key(app)?;
    let (set_namespace, set_name) = key.split_once('/')?;
    (set_name == name && namespace == Some(set_namespace)).then(|| {
        format!("ApplicationSet {set_namespace}/{set_name} generated this Application: an Application may not manage the set that owns it")
    })
}

/// Two hashes of an owned Application: what its set generates (a change asks for a generation, which
/// puts it back) and what its set reports (sync, health, operation: a change asks for the status stage).
fn owned_fingerprint(app: &Application) -> (u64, u64) {
    // The annotations a set never writes (a refresh request, notification state) are not what it generates.
    let annotations: Option<BTreeMap<&String, &String>> = app.metadata.annotations.as_ref().map(|a| {
        a.iter().filter(|(k, _)| !plan::ALWAYS_PRESERVED_ANNOTATIONS.contains(&k.as_str())).collect()
    });
    let generated = hash_of(&(
        &app.spec,
        &app.metadata.labels,
        &annotations,
        &app.metadata.finalizers,
        &app.metadata.deletion_timestamp,
    ));
    let status = app.status.as_ref();
    let reported = hash_of(&(
        status.and_then(|s| s.sync.as_ref()).map(|s| (&s.status, &s.revision)),
        status.and_then(|s| s.health.as_ref()).map(|h| &h.status),
        status.and_then(|s| s.operation_state.as_ref()).map(|o| &o.phase),
        app.operation.is_some(),
        // A compare done (RollingSync waits for one after each change it sees before a step advances).
        status.and_then(|s| s.reconciled_at.as_ref()),
    ));
    (generated, reported)
}

impl Controller {
    /// An Application changed (or went away): its owning set, if any, generates again when what it
    /// generates changed (someone edited or deleted it), and reports again when its sync or health did.
    pub(crate) fn appset_application_changed(&self, app: &Application, deleted: bool) {
        let Some(key) = owner_key(app) else { return };
        let name = self.instance_of(app);
        if deleted {
            self.appsets.seen.lock().remove(&name);
            self.appsets.queue.push(&key, Level::Refresh);
            return;
        }
        let now = owned_fingerprint(app);
        let before = self.appsets.seen.lock().insert(name, now);
        match before {
            Some(before) if before.0 != now.0 => self.appsets.queue.push(&key, Level::Refresh),
            // Its sync or health changed, or first sight (start, or just created): the set reports it, with
            // the others that change meanwhile, at the next tick.
            Some(before) if before.1 == now.1 => {}
            _ => {
                self.appsets.reports.lock().insert(key);
            }
        }
    }

    /// A push reached the sets `keys` (`namespace/name`): each generates at once, resolving its
    /// revisions afresh.
    /// Generates the sets `keys` again now, as their refresh annotation would. False when another replica
    /// runs the ApplicationSet controller: the caller sets Argo CD's annotation instead, which it sees.
    pub fn refresh_applicationsets(&self, keys: &[String]) -> bool {
        if !self.replicas.leads(crate::replicas::APPLICATIONSET_LEASE) {
            return false;
        }
        let mut fresh = self.appsets.fresh.lock();
        for key in keys {
            fresh.insert(key.clone());
            self.appsets.queue.push(key, Level::Refresh);
        }
        true
    }

    /// The ApplicationSets as the watch last delivered them.
    pub fn applicationsets(&self) -> Vec<Arc<ApplicationSet>> {
        self.appsets.store.state()
    }

    /// The Applications `set` generates now, exactly as the controller would create them (namespace,
    /// owner reference, finalizers); nothing is written. Serves `POST /api/v1/applicationsets/generate`.
    pub async fn generate_applicationset(
        self: &Arc<Self>,
        set: &ApplicationSet,
    ) -> Result<Vec<Application>, GenerateError> {
        let mut set = set.clone();
        if set.metadata.namespace.as_deref().unwrap_or_default().is_empty() {
            set.metadata.namespace = Some(self.config.namespace.clone());
        }
        let (generated, _) = self.generate(&set, LS_REMOTE_MAX_AGE).await;
        let generated = generated?;
        let policy = self.policy_of(&set).map_err(GenerateError::Input)?;
        let planned =
            plan::plan(&set, generated, &[], policy).map_err(|e| GenerateError::Input(e.to_string()))?;
        Ok(planned.create)
    }

    /// The set's generators run on a blocking thread (they are pure and may be long for a big monorepo),
    /// with this controller's inputs.
    async fn generate(
        self: &Arc<Self>,
        set: &ApplicationSet,
        max_age: Duration,
    ) -> (Result<Vec<Application>, GenerateError>, Vec<String>) {
        let project = Some(set.spec.template.spec.project.clone()).filter(|p| !p.contains("{{"));
        let namespace = set.metadata.namespace.clone().unwrap_or_default();
        let inputs =
            LiveInputs::new(self.clone(), project, namespace, max_age, self.appsets.cmd_params.clone());
        let set = set.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let result = berth_appset::set::generate(&set, &inputs);
            (result, inputs.revisions())
        })
        .await;
        match joined {
            Ok((result, revisions)) => (result.map_err(GenerateError::from), revisions),
            Err(e) => (Err(GenerateError::Input(format!("the generators stopped: {e}"))), Vec::new()),
        }
    }

    fn policy_of(&self, set: &ApplicationSet) -> Result<plan::Policy, String> {
        let params = &self.appsets.cmd_params;
        let controller_policy =
            params.get(plan::CONTROLLER_POLICY_KEY).map(String::as_str).filter(|p| !p.trim().is_empty());
        let allow_override = match params.get(POLICY_OVERRIDE_KEY).map(|v| v.trim()) {
            Some("true") => true,
            Some("false") => false,
            _ => plan::override_allowed_by_default(controller_policy),
        };
        plan::effective_policy(set, controller_policy, allow_override)
    }

    /// The ApplicationSet workers' loop: one set at a time per worker, never two passes of one set at once.
    pub(crate) async fn run_appsets(self: Arc<Self>) {
        // Without the ApplicationSet CRD the watch never lists: Applications are served all the same.
        if self.appsets.store.wait_until_ready().await.is_err() {
            return;
        }
        while let Some((key, level)) = self.appsets.queue.pop().await {
            let started = Instant::now();
            let result = self.reconcile_appset(&key, level).await;
            self.appsets.queue.done(&key);
            match result {
                Ok(()) => {
                    tracing::debug!(appset = %key, ?level, elapsed_ms = started.elapsed().as_millis() as u64, "applicationset reconciled")
                }
                Err(e) => {
                    tracing::warn!(appset = %key, error = %e, "applicationset reconcile failed; retrying in 5s");
                    self.appsets.due.lock().insert(key, Instant::now() + Duration::from_secs(5));
                }
            }
        }
    }

    /// Every second, queues a generation of each set whose requeue time has passed.
    pub(crate) async fn poll_appsets(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let now = Instant::now();
            let due: Vec<String> = {
                let mut due = self.appsets.due.lock();
                let ready: Vec<String> =
                    due.iter().filter(|(_, t)| **t <= now).map(|(k, _)| k.clone()).collect();
                for key in &ready {
                    due.remove(key);
                }
                ready
            };
            for key in due {
                self.appsets.queue.push(&key, Level::Refresh);
            }
        }
    }

    /// Every [`REPORT_EVERY`], queues the status stage of each set an owned Application's change named.
    /// Rolling sets also every [`ROLLOUT_REPORT_EVERY`], whatever changed: a rollout never stalls on a
    /// change no event announced.
    pub(crate) async fn report_appsets(self: Arc<Self>) {
        let mut tick = tokio::time::interval(REPORT_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_rollouts = Instant::now();
        loop {
            tick.tick().await;
            if last_rollouts.elapsed() >= ROLLOUT_REPORT_EVERY {
                last_rollouts = Instant::now();
                let rolling = self.appsets.store.state().into_iter().filter(|s| rollout::is_rolling(s));
                let mut reports = self.appsets.reports.lock();
                reports.extend(rolling.map(|s| key_of(&s)));
            }
            let keys = std::mem::take(&mut *self.appsets.reports.lock());
            for key in keys {
                self.appsets.queue.push(&key, Level::Compare);
            }
        }
    }

    /// Cluster Secrets, projects or settings changed: every set generates again.
    pub(crate) fn appsets_inputs_changed(&self) {
        self.appsets.push_all(Level::Refresh);
    }

    async fn reconcile_appset(self: &Arc<Self>, key: &str, level: Level) -> Result<(), crate::Error> {
        let (namespace, name) = key.split_once('/').unwrap_or((self.config.namespace.as_str(), key));
        // Only the replica holding the ApplicationSet controller's Lease generates (it takes every set
        // again when it gets the Lease).
        if !self.replicas.leads(crate::replicas::APPLICATIONSET_LEASE) {
            return Ok(());
        }
        let Some(set) = self.appsets.store.get(&ObjectRef::new(name).within(namespace)) else {
            self.appsets.due.lock().remove(key);
            return Ok(());
        };
        if set.metadata.deletion_timestamp.is_some() {
            // The API server's garbage collector deletes the owned Applications (their finalizers decide
            // whether resources go with them).
            return Ok(());
        }
        let mut outcome = None;
        if level >= Level::Refresh {
            outcome = Some(self.generate_and_write(&set, key).await?);
        }
        self.report_appset(&set, outcome).await
    }

    /// Generates the set's Applications and writes what its policy allows; what went wrong is the outcome.
    async fn generate_and_write(
        self: &Arc<Self>,
        set: &ApplicationSet,
        key: &str,
    ) -> Result<Outcome, crate::Error> {
        let annotated = asks_for_refresh(set);
        let fresh = self.appsets.fresh.lock().remove(key) || annotated;
        let max_age = if fresh { Duration::ZERO } else { LS_REMOTE_MAX_AGE };
        let (generated, _revisions) = self.generate(set, max_age).await;
        if annotated && self.replicas.leads(crate::replicas::APPLICATIONSET_LEASE) {
            let api: Api<ApplicationSet> =
                Api::namespaced(self.client.clone(), set.metadata.namespace.as_deref().unwrap_or_default());
            let body = serde_json::json!({ "metadata": { "annotations": { REFRESH_ANNOTATION: null } } });
            let name = set.metadata.name.as_deref().unwrap_or_default();
            api.patch(name, &PatchParams::default(), &Patch::Merge(&body)).await?;
        }
        let generated = match generated {
            Ok(apps) => apps,
            Err(e) => {
                tracing::info!(appset = %key, error = %e, "applicationset: generation failed; existing Applications left as they are");
                self.schedule_appset(key, ERROR_REQUEUE.min(requeue_of(set)));
                return Ok(Outcome::GenerationFailed(e.to_string()));
            }
        };
        self.schedule_appset(key, requeue_of(set));
        let policy = match self.policy_of(set) {
            Ok(p) => p,
            Err(message) => return Ok(Outcome::GenerationFailed(message)),
        };
        // A generated Application whose project does not exist is not written (nor deleted).
        let mut problems = Vec::new();
        let mut kept_names = HashSet::new();
        let mut valid = Vec::with_capacity(generated.len());
        let declared = declared_projects(set);
        for app in generated {
            let app_name = app.metadata.name.clone().unwrap_or_default();
            let project = if app.spec.project.is_empty() { "default" } else { app.spec.project.as_str() };
            if let Some(declared) = &declared
                && !declared.contains(project)
            {
                kept_names.insert(app_name.clone());
                problems.push(format!(
                    "application {app_name} uses project {project}, which the set's templates do not name \
                     ({}); a templatePatch may not move an application to another project",
                    declared.iter().cloned().collect::<Vec<_>>().join(", ")
                ));
                continue;
            }
            let exists = self.projects.get(&ObjectRef::new(project).within(&self.config.namespace)).is_some();
            kept_names.insert(app_name.clone());
            if !exists {
                problems.push(format!(
                    "application {app_name} references project {project} which does not exist"
                ));
                continue;
            }
            valid.push(app);
        }
        let disabled = rollout::disable_automated_sync(set, &mut valid);
        if !disabled.is_empty() {
            tracing::info!(appset = %key, apps = ?disabled, "RollingSync: automated sync is off on these Applications; the set starts their syncs");
        }
        let set_namespace = set.metadata.namespace.as_deref().unwrap_or_default();
        // Only the Applications the plan looks at: those the set owns and those with a name it generates.
        let generated_names: HashSet<&str> =
            valid.iter().filter_map(|a| a.metadata.name.as_deref()).collect();
        let existing: Vec<Application> = self
            .apps
            .state()
            .iter()
            .filter(|a| a.metadata.namespace.as_deref() == Some(set_namespace))
            .filter(|a| {
                plan::is_owned_by(a, set)
                    || a.metadata.name.as_deref().is_some_and(|n| generated_names.contains(n))
            })
            .map(|a| (**a).clone())
            .collect();
        let mut planned = match plan::plan(set, valid, &existing, policy) {
            Ok(planned) => planned,
            Err(e) => return Ok(Outcome::GenerationFailed(e.to_string())),
        };
        planned.delete.retain(|n| !kept_names.contains(n));
        problems.extend(planned.conflicts.iter().map(|c| c.message.clone()));

        let api: Api<Application> = Api::namespaced(self.client.clone(), set_namespace);
        let writes: Vec<Write> = planned
            .create
            .iter()
            .cloned()
            .map(Write::Create)
            .chain(planned.update.iter().cloned().map(Write::Update))
            .chain(planned.delete.iter().map(|name| {
                let uid = existing
                    .iter()
                    .find(|a| a.metadata.name.as_ref() == Some(name))
                    .and_then(|a| a.metadata.uid.clone());
                Write::Delete(name.clone(), uid)
            }))
            .collect();
        let failures: Vec<(&'static str, String)> = futures::stream::iter(writes)
            .map(|w| {
                let api = api.clone();
                async move {
                    // A replica that lost the ApplicationSet controller's Lease meanwhile writes nothing more.
                    if !self.replicas.leads(crate::replicas::APPLICATIONSET_LEASE) {
                        return Ok(());
                    }
                    w.run(&api).await
                }
            })
            .buffer_unordered(WRITES_AT_ONCE)
            .filter_map(|r| async move { r.err() })
            .collect()
            .await;
        if !planned.create.is_empty() || !planned.update.is_empty() || !planned.delete.is_empty() {
            tracing::info!(appset = %key, created = planned.create.len(), updated = planned.update.len(),
                deleted = planned.delete.len(), failed = failures.len(), "applicationset: applications written");
        }
        for (_, message) in &failures {
            tracing::warn!(appset = %key, error = %message, "applicationset: a write failed");
        }
        if let Some((reason, message)) = failures.into_iter().next() {
            self.schedule_appset(key, Duration::from_secs(5));
            return Ok(Outcome::WriteFailed { reason, message });
        }
        if !problems.is_empty() {
            return Ok(Outcome::Invalid(problems.join("; ")));
        }
        Ok(Outcome::UpToDate)
    }

    fn schedule_appset(&self, key: &str, after: Duration) {
        // A `requeueAfterSeconds` past what the clock counts is never.
        let Some(at) = Instant::now().checked_add(after) else { return };
        let mut due = self.appsets.due.lock();
        let entry = due.entry(key.to_string()).or_insert(at);
        if at < *entry {
            *entry = at;
        }
    }

    /// Writes the set's status: the generation conditions (`outcome`; `None` keeps the last ones), the
    /// owned Applications as `status.resources`, and the rollout when the set has one (starting the syncs
    /// it allows now). Nothing is written when nothing changed.
    async fn report_appset(
        self: &Arc<Self>,
        set: &ApplicationSet,
        outcome: Option<Outcome>,
    ) -> Result<(), crate::Error> {
        let namespace = set.metadata.namespace.as_deref().unwrap_or_default();
        let name = set.metadata.name.as_deref().unwrap_or_default();
        let mut owned: Vec<Arc<Application>> = self
            .apps
            .state()
            .into_iter()
            .filter(|a| a.metadata.namespace.as_deref() == Some(namespace) && plan::is_owned_by(a, set))
            .collect();
        owned.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        let previous = set.status.clone().unwrap_or_default();
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        let mut conditions = match &outcome {
            Some(outcome) => status::with_transitions(
                &previous.conditions,
                status::conditions(outcome),
                &[status::ROLLOUT_PROGRESSING],
                &now,
            ),
            None => previous.conditions.clone(),
        };
        let mut application_status = Vec::new();
        if rollout::is_rolling(set) {
            if let Err(message) = rollout::validate(set) {
                conditions.retain(|c| c.type_ != status::ROLLOUT_PROGRESSING);
                let invalid = status::conditions(&Outcome::Invalid(message));
                conditions = status::with_transitions(&previous.conditions, invalid, &[], &now);
            } else {
                let apps: Vec<Application> = owned.iter().map(|a| (**a).clone()).collect();
                let progress = rollout::progress(set, &apps, &previous.application_status, now.clone());
                let api: Api<Application> = Api::namespaced(self.client.clone(), namespace);
                // Checked again here: generation may have taken long, and a former leader must not start
                // syncs out of the rollout's order.
                let leads = || self.replicas.leads(crate::replicas::APPLICATIONSET_LEASE);
                for app in &apps {
                    let Some(operation) = progress.operation_for(app) else { continue };
                    if !leads() {
                        return Ok(());
                    }
                    let app_name = app.metadata.name.as_deref().unwrap_or_default();
                    let body = serde_json::json!({ "operation": operation });
                    if let Err(e) = api.patch(app_name, &PatchParams::default(), &Patch::Merge(&body)).await {
                        tracing::warn!(appset = name, app = app_name, error = %e, "RollingSync: could not start a sync");
                    }
                }
                for app_name in &progress.refresh {
                    if !leads() {
                        return Ok(());
                    }
                    let body = serde_json::json!({ "metadata": { "annotations": { berth_api::annotations::REFRESH: "normal" } } });
                    if let Err(e) = api.patch(app_name, &PatchParams::default(), &Patch::Merge(&body)).await {
                        tracing::warn!(appset = name, app = %app_name, error = %e, "RollingSync: could not ask for a refresh");
                    }
                }
                application_status = progress.application_status;
                if let Some(condition) = progress.condition {
                    conditions.retain(|c| c.type_ != status::ROLLOUT_PROGRESSING);
                    conditions.extend(status::with_transitions(
                        &previous.conditions,
                        vec![condition],
                        &[],
                        &now,
                    ));
                }
            }
        }
        let resources: Vec<ResourceStatus> = owned
            .iter()
            .map(|app| {
                let s = app.status.as_ref();
                ResourceStatus {
                    group: Some("argoproj.io".to_string()),
                    version: Some("v1alpha1".to_string()),
                    kind: Some("Application".to_string()),
                    namespace: app.metadata.namespace.clone(),
                    name: app.metadata.name.clone(),
                    status: Some(
                        s.and_then(|s| s.sync.as_ref()).map_or("Unknown", |s| s.status.as_str()).to_string(),
                    ),
                    health: Some(HealthStatus {
                        status: Some(
                            s.and_then(|s| s.health.as_ref())
                                .and_then(|h| h.status.clone())
                                .unwrap_or_else(|| "Unknown".to_string()),
                        ),
                        ..HealthStatus::default()
                    }),
                    ..ResourceStatus::default()
                }
            })
            .collect();
        let next = ApplicationSetStatus {
            conditions,
            application_status,
            resources_count: Some(resources.len() as i64),
            resources,
        };
        let unchanged = status::same(&previous.conditions, &next.conditions)
            && previous.resources == next.resources
            && previous.resources_count == next.resources_count
            && same_rollout(&previous, &next);
        if unchanged {
            return Ok(());
        }
        if !self.replicas.leads(crate::replicas::APPLICATIONSET_LEASE) {
            return Ok(());
        }
        let api: Api<ApplicationSet> = Api::namespaced(self.client.clone(), namespace);
        let body = serde_json::json!({ "status": next });
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(&body)).await?;
        Ok(())
    }
}

fn same_rollout(a: &ApplicationSetStatus, b: &ApplicationSetStatus) -> bool {
    let strip = |s: &ApplicationSetStatus| -> Vec<(String, String, String, String)> {
        s.application_status
            .iter()
            .map(|x| (x.application.clone(), x.status.clone(), x.step.clone(), x.message.clone()))
            .collect()
    };
    strip(a) == strip(b)
}

/// The projects a set's templates name: its template's and every generator's own (at any depth), empty
/// meaning `default`. A generated Application must use one of them, so a `templatePatch` (whose output
/// no one can check before it runs) cannot move an Application into a project whoever wrote the set may
/// not use; the API checks the named ones when the set is created. `None` when one of them is itself a
/// template expression: such a set can only come from someone who may write ApplicationSets in the
/// cluster directly (the API refuses it), and Argo CD lets it choose.
fn declared_projects(set: &ApplicationSet) -> Option<std::collections::BTreeSet<String>> {
    let mut projects = std::collections::BTreeSet::new();
    let mut templated = false;
    let mut add = |project: &str| {
        templated |= project.contains("{{");
        projects.insert(if project.is_empty() { "default".to_string() } else { project.to_string() });
    };
    add(&set.spec.template.spec.project);
    let generators = serde_json::to_value(&set.spec.generators).unwrap_or_default();
    walk_templates(&generators, &mut |template| {
        if let Some(project) = template.pointer("/spec/project").and_then(serde_json::Value::as_str) {
            add(project);
        }
    });
    (!templated).then_some(projects)
}

/// Calls `visit` with every generator's own `template` in `generators` (a JSON list), matrix and merge
/// children and the matrix or merge itself included.
pub fn walk_templates(generators: &serde_json::Value, visit: &mut dyn FnMut(&serde_json::Value)) {
    let Some(list) = generators.as_array() else { return };
    for generator in list {
        let Some(object) = generator.as_object() else { continue };
        for (kind, spec) in object {
            if kind == "selector" {
                continue;
            }
            if let Some(template) = spec.get("template") {
                visit(template);
            }
            if matches!(kind.as_str(), "matrix" | "merge") {
                walk_templates(&spec["generators"], visit);
            }
        }
    }
}

/// How long until the set's generators look again: the least `requeueAfterSeconds` of its git generators
/// (default three minutes); sets of only list and clusters generators wait for events alone (an hour).
fn requeue_of(set: &ApplicationSet) -> Duration {
    let value = serde_json::to_value(&set.spec.generators).unwrap_or_default();
    let mut least: Option<Duration> = None;
    let mut any_polled = false;
    walk_generators(&value, &mut |kind, spec| {
        if matches!(kind, "git" | "pullRequest" | "scmProvider" | "clusterDecisionResource" | "plugin") {
            any_polled = true;
            let seconds = spec.get("requeueAfterSeconds").and_then(serde_json::Value::as_u64);
            let default = if kind == "git" { DEFAULT_REQUEUE } else { Duration::from_secs(1800) };
            let d = seconds.map(Duration::from_secs).unwrap_or(default).max(Duration::from_secs(1));
            least = Some(least.map_or(d, |l| l.min(d)));
        }
    });
    if any_polled { least.unwrap_or(DEFAULT_REQUEUE) } else { Duration::from_secs(3600) }
}

/// Calls `visit(kind, spec)` for every leaf generator of `generators` (a JSON list), matrix and merge
/// children included.
pub fn walk_generators(generators: &serde_json::Value, visit: &mut dyn FnMut(&str, &serde_json::Value)) {
    let Some(list) = generators.as_array() else { return };
    for generator in list {
        let Some(object) = generator.as_object() else { continue };
        for (kind, spec) in object {
            match kind.as_str() {
                "matrix" | "merge" => walk_generators(&spec["generators"], visit),
                "selector" => {}
                _ => visit(kind, spec),
            }
        }
    }
}

/// One write of a set's plan.
enum Write {
    Create(Application),
    Update(Application),
    /// The name, and the uid of the object the plan saw (another of the same name is never deleted).
    Delete(String, Option<String>),
}

impl Write {
    /// Runs the write; a failure is Argo CD's reason and a message naming the Application.
    async fn run(self, api: &Api<Application>) -> Result<(), (&'static str, String)> {
        match self {
            Write::Create(app) => {
                let name = app.metadata.name.as_deref().unwrap_or_default();
                // The typed Application carries no apiVersion and kind; the API server needs them.
                let mut body = serde_json::to_value(&app).unwrap_or_default();
                body["apiVersion"] = "argoproj.io/v1alpha1".into();
                body["kind"] = "Application".into();
                let object: kube::api::DynamicObject = match serde_json::from_value(body) {
                    Ok(object) => object,
                    Err(e) => return Err((status::reason::CREATE_ERROR, format!("application {name}: {e}"))),
                };
                let resource = kube::api::ApiResource::erase::<Application>(&());
                let dynamic: Api<kube::api::DynamicObject> = Api::namespaced_with(
                    api.clone().into_client(),
                    app.metadata.namespace.as_deref().unwrap_or_default(),
                    &resource,
                );
                match dynamic.create(&PostParams::default(), &object).await {
                    Ok(_) => Ok(()),
                    // The watch had not shown it: the next generation, soon, updates it or reports whose it is.
                    Err(kube::Error::Api(e)) if e.code == 409 => Err((
                        status::reason::CREATE_ERROR,
                        format!("application {name} already exists; looking again"),
                    )),
                    Err(e) => {
                        Err((status::reason::CREATE_ERROR, format!("creating application {name}: {e}")))
                    }
                }
            }
            Write::Update(app) => {
                let name = app.metadata.name.as_deref().unwrap_or_default();
                // Only what the set owns is replaced: status and operation stay the controller's.
                // The object read, not another of the same name made since: its uid is tested first.
                let uid = serde_json::to_value(&app.metadata.uid).unwrap_or_default();
                let patch = json_patch::Patch(vec![
                    json_patch::PatchOperation::Test(json_patch::TestOperation {
                        path: json_patch::jsonptr::PointerBuf::parse("/metadata/uid")
                            .expect("a constant pointer"),
                        value: uid,
                    }),
                    replace("/spec", &app.spec, serde_json::json!({})),
                    replace("/metadata/labels", &app.metadata.labels, serde_json::json!({})),
                    replace("/metadata/annotations", &app.metadata.annotations, serde_json::json!({})),
                    replace("/metadata/finalizers", &app.metadata.finalizers, serde_json::json!([])),
                    replace(
                        "/metadata/ownerReferences",
                        &app.metadata.owner_references,
                        serde_json::json!([]),
                    ),
                ]);
                api.patch(name, &PatchParams::default(), &Patch::<()>::Json(patch))
                    .await
                    .map(drop)
                    .map_err(|e| (status::reason::UPDATE_ERROR, format!("updating application {name}: {e}")))
            }
            Write::Delete(name, uid) => {
                let params = DeleteParams {
                    preconditions: Some(kube::api::Preconditions { uid, resource_version: None }),
                    ..DeleteParams::default()
                };
                match api.delete(&name, &params).await {
                    Ok(_) => Ok(()),
                    Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
                    Err(e) => {
                        Err((status::reason::DELETE_ERROR, format!("deleting application {name}: {e}")))
                    }
                }
            }
        }
    }
}

/// A JSON Patch `add` (which replaces a member that exists) of the whole field, `empty` when it is unset.
fn replace(
    path: &str,
    value: &impl serde::Serialize,
    empty: serde_json::Value,
) -> json_patch::PatchOperation {
    let path = json_patch::jsonptr::PointerBuf::parse(path).expect("a constant pointer");
    let value = serde_json::to_value(value).ok().filter(|v| !v.is_null()).unwrap_or(empty);
    json_patch::PatchOperation::Add(json_patch::AddOperation { path, value })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set(value: serde_json::Value) -> ApplicationSet {
        serde_json::from_value(value).expect("an ApplicationSet")
    }

    #[test]
    fn a_set_declares_its_templates_projects_at_any_depth_and_none_when_one_is_templated() {
        let s = set(json!({"metadata": {"name": "s"}, "spec": {
            "generators": [
                {"list": {"elements": [], "template": {"metadata": {}, "spec": {"project": "team-b", "destination": {}}}}},
                {"matrix": {"generators": [
                    {"clusters": {"template": {"metadata": {}, "spec": {"project": "team-c", "destination": {}}}}},
                    {"list": {"elements": []}}
                ]}}
            ],
            "template": {"metadata": {}, "spec": {"project": "", "destination": {}}}}}));
        let declared: Vec<String> = declared_projects(&s).unwrap().into_iter().collect();
        assert_eq!(declared, ["default", "team-b", "team-c"]);
        let mut templated = s.clone();
        templated.spec.template.spec.project = "{{project}}".into();
        assert!(declared_projects(&templated).is_none());
    }

    #[test]
    fn requeue_follows_the_least_requeue_after_seconds_and_sets_without_git_wait_for_events() {
        let git = |secs: Option<u64>| {
            let mut g = json!({"git": {"repoURL": "https://g/r", "directories": [{"path": "*"}]}});
            if let Some(secs) = secs {
                g["git"]["requeueAfterSeconds"] = secs.into();
            }
            g
        };
        let of = |generators: serde_json::Value| {
            requeue_of(&set(json!({"metadata": {"name": "s"}, "spec": {"generators": generators,
                "template": {"metadata": {}, "spec": {"destination": {}}}}})))
        };
        assert_eq!(of(json!([git(None)])), DEFAULT_REQUEUE);
        assert_eq!(
            of(json!([{"matrix": {"generators": [git(Some(30)), git(Some(90))]}}])),
            Duration::from_secs(30)
        );
        assert_eq!(of(json!([{"list": {"elements": []}}])), Duration::from_secs(3600));
    }

    #[test]
    fn an_application_may_not_manage_the_set_that_generated_it() {
        let app: Application = serde_json::from_value(json!({
            "metadata": {"name": "web-prod", "namespace": "argocd", "ownerReferences": [
                {"apiVersion": "argoproj.io/v1alpha1", "kind": "ApplicationSet", "name": "web", "uid": "u", "controller": true}]},
            "spec": {"destination": {}}})).unwrap();
        let refusal = own_set_refusal(&app, "argoproj.io", "ApplicationSet", "web", Some("argocd")).unwrap();
        assert!(refusal.contains("argocd/web"), "{refusal}");
        assert!(own_set_refusal(&app, "argoproj.io", "ApplicationSet", "other", Some("argocd")).is_none());
        assert!(own_set_refusal(&app, "argoproj.io", "ApplicationSet", "web", Some("team-a")).is_none());
        assert!(own_set_refusal(&app, "", "ConfigMap", "web", Some("argocd")).is_none());
        let mut hand_made = app.clone();
        hand_made.metadata.owner_references = None;
        assert!(
            own_set_refusal(&hand_made, "argoproj.io", "ApplicationSet", "web", Some("argocd")).is_none()
        );
    }
}
