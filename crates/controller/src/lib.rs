//! The Application controller: watches Applications, keeps each one's desired state (git, rendered),
//! compares it with the cluster cache, syncs on request or automatically, and writes status as Argo CD does.
//!
//! Reading order: `Controller::run` wires watches, the poll ticker and the workers; `pass/` is one
//! application's pass (target state → compare → operation or auto-sync → status).

pub mod appset;
pub mod clusters;
mod credentials;
pub mod events;
pub mod exclusions;
pub mod instance;
pub mod metrics;
mod pass;
pub mod project;
mod queue;
pub mod replicas;
mod retry;
pub use view::{
    CacheInfo, ClusterInfo, ConnectionState, ConnectionStatus, InfoItem, ManagedResource, NodeHealth,
    ParentRef, TreeNode, ViewError, resource_tree,
};
pub mod rollback;
pub mod settings;
pub mod settings_keys;
pub mod settings_source;
mod view;
pub mod windows;

use berth_api::{AppProject, Application};
use berth_engine::cache::{ClusterCache, ObjectEvent};
use berth_repo::git::GitCache;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often [`Controller::watch_clusters`] asks each cluster whether it answers (passes reuse that answer
/// for a while rather than asking again).
const CLUSTER_CHECK_EVERY: Duration = Duration::from_secs(5);

pub use queue::Level;
pub use settings::Settings;
pub use settings_source::SettingsSource;

/// How `berth run` configures the controller.
#[derive(Clone, Debug)]
pub struct ControllerConfig {
    /// Namespace of the Applications, AppProjects, argocd-cm and repository secrets.
    pub namespace: String,
    /// Where git clones and extracted trees are kept.
    pub cache_dir: PathBuf,
    /// The cap on the bytes of extracted trees in `cache_dir` (least recently used ones are deleted past it;
    /// the bare clones are not counted).
    pub repo_cache_max_bytes: u64,
    /// Reconciles that run at once (each application is only ever in one).
    pub workers: usize,
    /// Delay between a drift and its revert (Argo CD's legacy self-heal timeout); zero: the backoff
    /// [`ControllerConfig::self_heal_backoff`] paces self-heal instead.
    pub self_heal_timeout: Duration,
    /// How self-heal of the same revision slows down when the drift keeps coming back (Argo CD 3.x).
    pub self_heal_backoff: SelfHealBackoff,
    /// The only namespaces berth manages (a namespaced install, with Roles there and no ClusterRole);
    /// empty: the whole cluster.
    pub namespaces: Vec<String>,
    /// Namespaces besides `namespace` whose Applications are reconciled (`--application-namespaces`,
    /// shell globs); empty: argocd-cmd-params-cm `application.namespaces` decides, read once at start.
    pub application_namespaces: Vec<String>,
    /// Filled with this controller when it starts, for the API server of the same process.
    pub view: ControllerView,
    /// argocd-cm and argocd-ssh-known-hosts-cm as the process watches them (shared with the API server);
    /// `None`: the controller starts a source of its own.
    pub settings: Option<SettingsSource>,
    /// How this replica shares the Applications with the others ([`replicas`]).
    pub replica: replicas::ReplicaConfig,
}

/// Argo CD 3.x's self-heal backoff: the n-th self-heal of one revision (n > 1) waits
/// `timeout × factor^(n-2)`, at most `cap`, after the last sync finished; the count starts again with a
/// new revision, or once the app stayed synced for `cooldown`.
#[derive(Clone, Debug, PartialEq)]
pub struct SelfHealBackoff {
    /// The wait before the second self-heal; zero: no wait at all.
    pub timeout: Duration,
    /// Each further self-heal waits this many times longer.
    pub factor: u32,
    /// The longest wait.
    pub cap: Duration,
    /// A last sync this long ago means the app stayed synced: the count starts again.
    pub cooldown: Duration,
}

impl Default for SelfHealBackoff {
    /// Argo CD's defaults: 2 s, ×3, at most 5 min, counted afresh after 5.5 min.
    fn default() -> Self {
        SelfHealBackoff {
            timeout: Duration::from_secs(2),
            factor: 3,
            cap: Duration::from_secs(300),
            cooldown: Duration::from_secs(330),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Cache(#[from] berth_engine::cache::CacheError),
    #[error("the Application watch did not start: {0}")]
    NotReady(String),
    /// The Application changed since it was read (or the watch is behind berth's own last write).
    #[error("the Application is being updated; retrying with a fresh copy")]
    Stale,
    /// This replica may not write for the Application (any more): another one owns it.
    #[error(transparent)]
    Fenced(#[from] replicas::Fenced),
}

/// The controller as the API server sees it: what it reads (resource tree, managed resources, revision
/// metadata) and asks (a refresh). Whoever runs both makes one, puts it in [`ControllerConfig::view`] and
/// hands a clone to the server; the controller fills it when it starts. Never filled: no controller runs
/// in this process, and the server answers what needs one with 503.
#[derive(Clone, Default)]
pub struct ControllerView(Arc<RwLock<Filled>>);

/// What [`ControllerView`] holds once the controller started: the controller and the runtime it runs on.
#[derive(Default)]
struct Filled {
    controller: std::sync::Weak<Controller>,
    runtime: Option<tokio::runtime::Handle>,
}

impl ControllerView {
    /// The running controller, if any.
    pub fn get(&self) -> Option<Arc<Controller>> {
        self.0.read().controller.upgrade()
    }

    /// Runs `work` with the running controller on the controller's own runtime, whichever runtime awaits
    /// it (`berth run` serves the API on a runtime of its own): what the work starts (a cluster's client
    /// and watches, a git fetch) lives with the controller, and API load never starves it. `None`: no
    /// controller runs, or it is stopping.
    pub async fn run<T, F, Fut>(&self, work: F) -> Option<T>
    where
        F: FnOnce(Arc<Controller>) -> Fut,
        Fut: std::future::Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let (controller, runtime) = {
            let filled = self.0.read();
            (filled.controller.upgrade()?, filled.runtime.clone())
        };
        let work = work(controller);
        match runtime {
            Some(runtime) => match runtime.spawn(work).await {
                Ok(done) => Some(done),
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(_) => None,
            },
            None => Some(work.await),
        }
    }

    fn fill(&self, controller: &Arc<Controller>) {
        *self.0.write() = Filled {
            controller: Arc::downgrade(controller),
            runtime: tokio::runtime::Handle::try_current().ok(),
        };
    }
}

impl std::fmt::Debug for ControllerView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.get().is_some() { "ControllerView(running)" } else { "ControllerView(empty)" })
    }
}

/// What of the configuration objects the controller last took (`None`: nothing yet).
#[derive(Default)]
struct TakenSettings {
    argocd_cm: Option<settings_source::Data>,
    known_hosts: Option<Option<String>>,
}

pub struct Controller {
    client: kube::Client,
    config: ControllerConfig,
    /// The Applications of the control namespace and of [`Self::app_namespaces`].
    apps: reflector::Store<Application>,
    app_namespaces: instance::ApplicationNamespaces,
    projects: reflector::Store<AppProject>,
    secrets: reflector::Store<Secret>,
    settings: RwLock<Arc<Settings>>,
    /// The destination clusters, each with its client and cache.
    clusters: clusters::Registry,
    git: GitCache,
    queue: Arc<queue::Queue>,
    memo: Mutex<HashMap<String, pass::Memo>>,
    renders: berth_repo::render::RenderCache,
    tool_versions: pass::target::ToolVersions,
    seen: Mutex<HashMap<String, u64>>,
    recorder: kube::runtime::events::Recorder,
    /// The ApplicationSets and their own queue.
    appsets: appset::AppSets,
    /// This replica's share of the Applications, and whether it runs the ApplicationSet controller.
    pub(crate) replicas: Arc<replicas::Replicas>,
    /// The reconciles failing now, and why ([`Controller::reconcile_logged`]).
    failing: Arc<Mutex<Failing>>,
    /// Set once this replica, acting for the first time, has made sure the `default` AppProject exists and
    /// its watch delivered it: no pass runs before, so no app reads "project default does not exist" in the
    /// moment between the Lease and the project.
    prepared: std::sync::atomic::AtomicBool,
}

impl Controller {
    /// Runs until `shutdown` resolves; then finishes the reconciles in flight (a sync in progress ends and
    /// is recorded) and returns.
    pub async fn run(
        client: kube::Client,
        config: ControllerConfig,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), Error> {
        let ns = config.namespace.clone();
        let (events_tx, mut events_rx) = tokio::sync::mpsc::unbounded_channel::<ObjectEvent>();
        let cache =
            ClusterCache::new(client.clone(), events_tx.clone()).with_namespaces(config.namespaces.clone());
        let managed_namespaces = config.namespaces.clone();
        cache.discover().await?;

        // Application changes reach the queue from the same stream that fills the store, so a reconcile
        // never looks for an Application the store has not seen yet.
        let app_namespaces = application_namespaces(&client, &config).await;
        let (app_tx, mut app_rx) = tokio::sync::mpsc::unbounded_channel::<Application>();
        // Applications outside the control namespace need a cluster-wide watch (the patterns are globs);
        // those of namespaces not allowed never reach the store.
        let (app_api, admitted) = if app_namespaces.is_empty() {
            (Api::<Application>::namespaced(client.clone(), &ns), None)
        } else {
            let (control, allowed) = (ns.clone(), app_namespaces.clone());
            let admit = move |app: &Application| {
                let namespace = app.metadata.namespace.as_deref().unwrap_or_default();
                namespace == control || allowed.allows(namespace)
            };
            (Api::<Application>::all(client.clone()), Some(admit))
        };
        let apps =
            spawn_reflector(app_api, watcher::Config::default(), admitted, move |app: &Application| {
                let _ = app_tx.send(app.clone());
            });
        // A project or repository secret that changes may change every application's verdict.
        let (config_tx, mut config_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let projects_tx = config_tx.clone();
        let projects = spawn_reflector(
            Api::<AppProject>::namespaced(client.clone(), &ns),
            watcher::Config::default(),
            None::<fn(&AppProject) -> bool>,
            move |_| {
                let _ = projects_tx.send(());
            },
        );
        let secrets = spawn_reflector(
            Api::<Secret>::namespaced(client.clone(), &ns),
            watcher::Config::default()
                .labels(&format!("{} in (repository,repo-creds,cluster)", berth_api::secret_type::LABEL)),
            None::<fn(&Secret) -> bool>,
            move |_| {
                let _ = config_tx.send(());
            },
        );
        // ApplicationSets of the control namespace; a change generates the set again.
        let appset_queue: Arc<queue::Queue> = Arc::default();
        let set_queue = appset_queue.clone();
        let (appset_store, _appsets_ready) = spawn_reflector(
            Api::<berth_api::ApplicationSet>::namespaced(client.clone(), &ns),
            watcher::Config::default(),
            None::<fn(&berth_api::ApplicationSet) -> bool>,
            {
                // Only what the set says, not the status berth writes, asks for a generation.
                let seen = Mutex::new(HashMap::<String, u64>::new());
                move |set: &berth_api::ApplicationSet| {
                    let key = appset::key_of(set);
                    let fingerprint = appset::fingerprint(set);
                    let changed = seen.lock().insert(key.clone(), fingerprint) != Some(fingerprint);
                    if changed || appset::asks_for_refresh(set) {
                        set_queue.push(&key, Level::Refresh);
                    }
                }
            },
        );
        let cmd_params = read_cmd_params(&client, &ns).await;
        if let Some(algorithm) = cmd_params.get("controller.sharding.algorithm") {
            // Argo CD shards clusters among its controllers; berth shards Applications (rendezvous hashing).
            tracing::info!(%algorithm, "argocd-cmd-params-cm controller.sharding.algorithm is not used: berth shares Applications among the live replicas by rendezvous hashing");
        }
        let config_replica = config.replica.clone();
        let registry_gate = config.replica.fenced.then(|| config.replica.gate.clone());
        let controller = Arc::new(Controller {
            git: GitCache::new(&config.cache_dir)
                .with_max_tree_bytes(config.repo_cache_max_bytes)
                .with_observer(metrics::git_observer()),
            client: client.clone(),
            config,
            apps: apps.0,
            app_namespaces,
            projects: projects.0,
            secrets: secrets.0,
            settings: RwLock::new(Arc::new(Settings::default())),
            clusters: clusters::Registry::new(
                clusters::in_cluster(client.clone(), cache, managed_namespaces),
                events_tx,
            )
            .with_gate(registry_gate),
            queue: Arc::default(),
            memo: Mutex::default(),
            renders: berth_repo::render::RenderCache::default(),
            tool_versions: pass::target::ToolVersions::default(),
            seen: Mutex::default(),
            recorder: kube::runtime::events::Recorder::new(client.clone(), events::reporter()),
            appsets: appset::AppSets::new(appset_store, appset_queue, cmd_params),
            replicas: Arc::new(replicas::Replicas::new(&config_replica)),
            failing: Arc::default(),
            prepared: std::sync::atomic::AtomicBool::new(false),
        });
        controller.config.view.fill(&controller);
        let ready = async { tokio::try_join!(apps.1, projects.1, secrets.1) };
        tokio::time::timeout(Duration::from_secs(60), ready)
            .await
            .map_err(|_| Error::NotReady("no initial list within 60s".into()))?
            .map_err(|e| Error::NotReady(e.to_string()))?;

        let source = match controller.config.settings.clone() {
            Some(source) => source,
            None => SettingsSource::start(client.clone(), &ns).await.map_err(Error::NotReady)?,
        };
        // Settings as they are now, before the first reconcile; then every change.
        let updates = source.subscribe();
        let mut taken = TakenSettings::default();
        controller.take_settings(&source.current(), &mut taken);

        // This replica's Lease and the others': the share of the Applications it acts on.
        let (stop_replicas, replicas_stopped) = tokio::sync::oneshot::channel::<()>();
        let contested = vec![replicas::APPLICATIONSET_LEASE];
        let replicas_stopped = async move {
            let _ = replicas_stopped.await;
        };
        let replicas_task = match controller.config.replica.kube_config.clone() {
            Some(config) => tokio::spawn(controller.replicas.clone().run_apart(
                config,
                ns.clone(),
                contested,
                replicas_stopped,
            )),
            None => tokio::spawn(controller.replicas.clone().run(
                client.clone(),
                ns.clone(),
                contested,
                replicas_stopped,
            )),
        };
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(controller.clone().follow_share());
        tasks.spawn(controller.clone().follow_settings(updates, taken));
        let c = controller.clone();
        tasks.spawn(async move {
            while config_rx.recv().await.is_some() {
                while config_rx.try_recv().is_ok() {}
                c.requeue_all(Level::Refresh);
                c.appsets_inputs_changed();
            }
        });
        // Application changes (not our own status writes) queue a refresh.
        let c = controller.clone();
        tasks.spawn(async move {
            while let Some(app) = app_rx.recv().await {
                c.application_changed(&app);
                let deleted = c.application(&c.instance_of(&app)).is_none();
                c.appset_application_changed(&app, deleted);
            }
        });
        // A tracked object changed: compare its application again (self-heal reacts here).
        let c = controller.clone();
        tasks.spawn(async move {
            while let Some(event) = events_rx.recv().await {
                for app in event.apps {
                    c.queue.push(&app, Level::Compare);
                }
            }
        });
        tasks.spawn(controller.clone().poll());
        tasks.spawn(controller.clone().watch_clusters());
        tasks.spawn(controller.clone().poll_appsets());
        tasks.spawn(controller.clone().report_appsets());
        // Two ApplicationSet workers: a set whose generators wait on a slow server holds up no other
        // (the queue never gives one set to both).
        for _ in 0..2 {
            tasks.spawn(controller.clone().run_appsets());
        }
        // A pass that panics is contained: its worker goes on, the application is retried with backoff
        // ([`queue::Queue::work`], [`Controller::pass_panicked`]); `/healthz` reports workers that stop.
        metrics::global().watch_queue(&controller.queue);
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..controller.config.workers.max(1) {
            let c = controller.clone();
            workers.spawn(async move {
                let alive = metrics::global().worker_started();
                let passes = c.clone();
                let panics = c.clone();
                c.queue
                    .work(
                        move |name, level| {
                            let c = passes.clone();
                            async move { c.reconcile_logged(&name, level).await }
                        },
                        move |name, level, message| {
                            let c = panics.clone();
                            async move { c.pass_panicked(&name, level, &message).await }
                        },
                    )
                    .await;
                alive.finished();
            });
        }
        tracing::info!(namespace = %controller.config.namespace, application_namespaces = ?controller.app_namespaces.patterns(), workers = controller.config.workers, "controller started");
        shutdown.await;
        tracing::info!("shutting down: finishing reconciles in flight");
        controller.queue.close();
        while workers.join_next().await.is_some() {}
        tasks.abort_all();
        // Nothing is written from here on; the Leases go, so the other replicas take over at once.
        let _ = stop_replicas.send(());
        let _ = replicas_task.await;
        Ok(())
    }

    /// Argo CD creates the `default` AppProject (any repo, any destination) at start; so does berth.
    /// Waits (a few seconds at most) until the projects' watch holds it, so the first passes see it.
    async fn ensure_default_project(&self) {
        let api: Api<AppProject> = Api::namespaced(self.client.clone(), &self.config.namespace);
        if !matches!(api.get_opt("default").await, Ok(Some(_))) {
            self.create_default_project(&api).await;
        }
        let key = reflector::ObjectRef::new("default").within(&self.config.namespace);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while self.projects.get(&key).is_none() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn create_default_project(&self, api: &Api<AppProject>) {
        let body = serde_json::json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject",
            "metadata": {"name": "default", "namespace": self.config.namespace},
            "spec": {"sourceRepos": ["*"], "destinations": [{"namespace": "*", "server": "*"}],
                     "clusterResourceWhitelist": [{"group": "*", "kind": "*"}]}
        });
        if let Err(e) = api.patch("default", &PatchParams::apply("berth"), &Patch::Apply(&body)).await {
            tracing::warn!(error = %e, "could not create the default AppProject");
        }
    }

    /// The name `app` goes by in the queue, the memo and its objects' tracking ([`instance::instance_name`]).
    pub(crate) fn instance_of(&self, app: &Application) -> String {
        let name = app.metadata.name.as_deref().unwrap_or_default();
        let namespace = app.metadata.namespace.as_deref().unwrap_or_default();
        instance::instance_name(namespace, name, &self.config.namespace)
    }

    /// The Application an instance name stands for, as the watch last delivered it.
    pub(crate) fn application(&self, instance: &str) -> Option<Arc<Application>> {
        let (namespace, name) = instance::split_instance(instance);
        let namespace = namespace.unwrap_or(&self.config.namespace);
        self.apps.get(&reflector::ObjectRef::new(name).within(namespace))
    }

    /// The Applications API of the namespace `instance` lives in, and its name there.
    pub(crate) fn application_api<'a>(&self, instance: &'a str) -> (Api<Application>, &'a str) {
        let (namespace, name) = instance::split_instance(instance);
        (Api::namespaced(self.client.clone(), namespace.unwrap_or(&self.config.namespace)), name)
    }

    fn settings(&self) -> Arc<Settings> {
        self.settings.read().clone()
    }

    /// Takes what changed of argocd-cm (the settings) and argocd-ssh-known-hosts-cm (the SSH hosts git
    /// trusts without `insecure`; a change refreshes every application).
    fn take_settings(&self, objects: &settings_source::ConfigObjects, taken: &mut TakenSettings) {
        let argocd_cm = objects.config_map(settings_source::ARGOCD_CM);
        if taken.argocd_cm.as_ref() != Some(argocd_cm) {
            self.set_settings(Settings::from_config_map(argocd_cm));
            taken.argocd_cm = Some(argocd_cm.clone());
        }
        let known_hosts =
            objects.config_map(settings_source::SSH_KNOWN_HOSTS_CM).get("ssh_known_hosts").cloned();
        if taken.known_hosts.as_ref() != Some(&known_hosts) {
            match self.git.set_known_hosts(known_hosts.as_deref()) {
                Ok(()) => {
                    if taken.known_hosts.replace(known_hosts).is_some() {
                        self.requeue_all(Level::Refresh);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "argocd-ssh-known-hosts-cm: cannot write the known hosts file")
                }
            }
        }
    }

    async fn follow_settings(
        self: Arc<Self>,
        mut updates: tokio::sync::watch::Receiver<Arc<settings_source::ConfigObjects>>,
        mut taken: TakenSettings,
    ) {
        while updates.changed().await.is_ok() {
            let objects = updates.borrow_and_update().clone();
            self.take_settings(&objects, &mut taken);
        }
    }

    fn set_settings(&self, settings: Settings) {
        for w in &settings.warnings {
            tracing::warn!(warning = %w, "argocd-cm");
        }
        self.clusters.set_tracking(&settings.tracking);
        self.git.set_allow_file_urls(settings.allow_file_urls);
        let changed = **self.settings.read() != settings;
        *self.settings.write() = Arc::new(settings);
        if changed {
            self.appsets_inputs_changed();
            // A new polling period or new ignore rules apply from the next pass of every application.
            for m in self.memo.lock().values_mut() {
                m.next_refresh = None;
            }
            self.requeue_all(Level::Compare);
        }
    }

    /// Follows this replica's share: the Applications that became its own are reconciled at once; those
    /// that moved to another replica are forgotten here (their memo and render). The ApplicationSets are
    /// generated at once by the replica that starts to run their controller.
    async fn follow_share(self: Arc<Self>) {
        let mut changes = self.replicas.subscribe();
        let mut leading = false;
        let mut acted = false;
        // Also every few seconds, so the share's gauge follows Applications created and deleted.
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                changed = changes.changed() => if changed.is_err() { return },
                _ = tick.tick() => {}
            }
            changes.borrow_and_update();
            if !acted && self.replicas.is_acting() {
                // Argo CD creates the default AppProject at start; a replica does once it may write, before
                // its first pass.
                acted = true;
                self.ensure_default_project().await;
                self.prepared.store(true, std::sync::atomic::Ordering::Release);
            }
            let mut owned = 0;
            for app in self.apps.state() {
                let name = self.instance_of(&app);
                if self.replicas.owns(&name) {
                    owned += 1;
                    if !self.memo.lock().contains_key(&name) {
                        self.queue.push(&name, Level::Refresh);
                    }
                } else {
                    self.memo.lock().remove(&name);
                }
            }
            let members = self.replicas.members();
            tracing::debug!(owned, members = members.len(), "this replica's share");
            metrics::global().set_shard(owned, members.len());
            // Ready (readiness probe): its caches are synced (the initial lists came before this task) and it
            // has taken its share once; a later loss of the Lease does not take the API out of service.
            if self.replicas.is_acting() {
                metrics::global().set_ready(true);
            }
            let leads = self.replicas.leads(replicas::APPLICATIONSET_LEASE);
            if leads && !leading {
                self.appsets_inputs_changed();
            }
            leading = leads;
        }
    }

    /// The Applications this replica owns now.
    pub fn owned_applications(&self) -> usize {
        self.apps.state().iter().filter(|a| self.replicas.owns(&self.instance_of(a))).count()
    }

    /// Whether this replica acts on the Application `instance` (the API server refreshes the others through
    /// the refresh annotation, which their owner sees).
    pub fn owns(&self, instance: &str) -> bool {
        self.replicas.owns(instance)
    }

    fn requeue_all(&self, level: Level) {
        for app in self.apps.state() {
            self.queue.push(&self.instance_of(&app), level);
        }
    }

    /// Asks every cluster with an entry whether its API server answers, every [`CLUSTER_CHECK_EVERY`], and
    /// compares the applications on a cluster again as soon as the answer changes: they turn `Unknown`
    /// within seconds of their cluster going away, without waiting for their next poll, and come back as
    /// soon as it answers again.
    async fn watch_clusters(self: Arc<Self>) {
        let mut tick = tokio::time::interval(CLUSTER_CHECK_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut answered: HashMap<String, bool> = HashMap::new();
        loop {
            tick.tick().await;
            let clusters = self.clusters.all();
            // Asked now, whatever passes asked meanwhile; the answer serves them too.
            let answers =
                futures::future::join_all(clusters.iter().map(|c| async { c.probe().await.is_ok() })).await;
            let mut changed = Vec::new();
            for (cluster, ok) in clusters.iter().zip(answers) {
                if answered.insert(cluster.server.clone(), ok).is_some_and(|was| was != ok) {
                    tracing::info!(server = %cluster.server, name = %cluster.name, reachable = ok, "cluster reachability changed");
                    changed.push(cluster.server.clone());
                }
            }
            answered.retain(|server, _| clusters.iter().any(|c| &c.server == server));
            if changed.is_empty() {
                continue;
            }
            for app in self.apps.state() {
                if self.cluster_of(&app).is_ok_and(|c| changed.contains(&c.server)) {
                    self.queue.push(&self.instance_of(&app), Level::Compare);
                }
            }
        }
    }

    fn application_changed(&self, app: &Application) {
        let name = self.instance_of(app);
        let fingerprint = pass::fingerprint(app);
        let changed = self.seen.lock().insert(name.clone(), fingerprint) != Some(fingerprint);
        if changed {
            let hard = pass::refresh_annotation(app) == Some("hard");
            self.queue.push(&name, if hard { Level::HardRefresh } else { Level::Refresh });
        }
    }

    /// Every second, queues a refresh for each application whose polling period has passed.
    async fn poll(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let now = Instant::now();
            let due: Vec<String> = {
                let memo = self.memo.lock();
                memo.iter()
                    .filter(|(_, m)| m.next_refresh.is_some_and(|t| t <= now))
                    .map(|(n, _)| n.clone())
                    .collect()
            };
            for name in due {
                self.queue.push(&name, Level::Refresh);
            }
            self.sweep_clusters();
        }
    }

    /// Lets the registry forget the clusters whose Secret is gone and those no Application names any more
    /// ([`crate::clusters::Registry::retain`]); asked every second by
    /// the poll ticker, the registry is swept every few seconds.
    fn sweep_clusters(&self) {
        if !self.clusters.sweep_due() {
            return;
        }
        let secrets = self.secrets.state();
        let apps = self.apps.state();
        self.clusters.retain(
            secrets.iter().map(|s| &**s),
            |cluster| apps.iter().any(|app| crate::clusters::names(&app.spec.destination, cluster)),
            Instant::now(),
        );
    }

    async fn reconcile_logged(&self, name: &str, level: Level) {
        let failing = self.failing.clone();
        // An application whose pass panicked waits for its retry; what is asked meanwhile is kept for it.
        if failing.lock().panicked.holds(name, level, Instant::now()) {
            return;
        }
        let started = Instant::now();
        let result = self.reconcile(name, level).await;
        failing.lock().panicked.passed(name);
        metrics::global().reconciled(started.elapsed());
        metrics::global().set_queue_depth(self.queue.len());
        match result {
            Ok(()) => tracing::debug!(
                app = name,
                ?level,
                elapsed_ms = started.elapsed().as_millis() as u64,
                queued = self.queue.len(),
                "reconciled"
            ),
            // The share moved away mid-pass: its new owner carries on from the record. Or this replica's
            // Lease lapsed for a moment (a slow renewal): it looks again in a second, from a fresh start.
            Err(Error::Fenced(e)) => {
                tracing::info!(app = name, reason = %e, "pass stopped: not this replica's any more");
                self.memo.lock().remove(name);
                let (queue, name) = (self.queue.clone(), name.to_string());
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    queue.push(&name, level);
                });
            }
            Err(e) => {
                // A stale copy is retried as soon as the watch can have caught up; other errors back off.
                let delay = if matches!(e, Error::Stale) {
                    Duration::from_millis(50)
                } else {
                    let mut f = failing.lock();
                    let unreachable = api_server_unreachable(&e);
                    if unreachable {
                        if f.outage.failed(tokio::time::Instant::now()) {
                            tracing::warn!(error = %e, "reconciles failing: the API server does not answer; one application at a time retries every second, all when it answers (warned again each minute while it lasts)");
                        }
                        // One retry asks for all: the others wait for its answer instead of each asking.
                        if f.probe.as_deref().is_some_and(|p| p != name) {
                            let parked = f.parked.entry(name.to_string()).or_insert(level);
                            *parked = (*parked).max(level);
                            return;
                        }
                        f.probe = Some(name.to_string());
                    } else {
                        tracing::warn!(app = name, error = %e, "reconcile failed; retrying in 5s");
                    }
                    // One retry waiting per application: the failures of several passes do not pile up.
                    if !f.retrying.insert(name.to_string()) {
                        return;
                    }
                    // The one retry of an outage asks often: all applications resume within a second of it.
                    if unreachable { Duration::from_secs(1) } else { Duration::from_secs(5) }
                };
                let (queue, failing, name) = (self.queue.clone(), failing.clone(), name.to_string());
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let mut f = failing.lock();
                    f.retrying.remove(&name);
                    if f.probe.as_deref() == Some(name.as_str()) {
                        f.probe = None;
                    }
                    drop(f);
                    queue.push(&name, level);
                });
                return;
            }
        }
        // The API server answers again: compare every application now instead of at its next retry or poll
        // (the caches listed again, and self-heal must see drift made meanwhile).
        let mut f = failing.lock();
        if let Some(r) = f.outage.succeeded(tokio::time::Instant::now()) {
            let parked = std::mem::take(&mut f.parked);
            drop(f);
            tracing::info!(down_for = ?r.down_for, failures = r.failures, "reconciles work again; comparing every application");
            self.requeue_all(Level::Compare);
            for (app, level) in parked {
                self.queue.push(&app, level);
            }
        }
    }

    /// A pass of `name` panicked (the worker caught it, and still holds the application): logged, counted,
    /// retried after its backoff ([`queue::PanicBackoff`]), and said in the application's conditions so
    /// its users see it; the next pass that returns writes its own conditions over it.
    async fn pass_panicked(&self, name: &str, level: Level, message: &str) {
        let delay = self.failing.lock().panicked.panicked(name, Instant::now());
        metrics::global().reconcile_panicked();
        // The message may quote an object the pass read (a rendered Secret, say): the log gets it bounded and
        // without URL credentials, the Application's readers only that it happened.
        let shown = berth_repo::validate::shown(message);
        tracing::error!(app = name, ?level, panic = %shown, retry_in_s = delay.as_secs(), "reconcile panicked; the worker goes on, the application is retried later");
        let condition = panic_condition(delay);
        match self.record_panic(name, condition).await {
            Ok(()) => {}
            Err(Error::Fenced(e)) => {
                tracing::info!(app = name, reason = %e, "panic not recorded: not this replica's any more")
            }
            Err(e) => {
                tracing::warn!(app = name, error = %e, "could not record the panic in the application's conditions")
            }
        }
        let (queue, failing, name) = (self.queue.clone(), self.failing.clone(), name.to_string());
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let level = failing.lock().panicked.retry(&name, level);
            queue.push(&name, level);
        });
    }

    /// Writes `condition` (an `UnknownError`, replacing an earlier panic's) onto the Application's stored
    /// status, as every status write goes: fenced, onto the copy read.
    async fn record_panic(&self, name: &str, condition: String) -> Result<(), Error> {
        let (api, app_name) = self.application_api(name);
        // Read afresh: the store's copy may be behind writes the pass made before it panicked.
        let Some(app) = api.get_opt(app_name).await? else { return Ok(()) };
        let mut rv = app.metadata.resource_version.clone().unwrap_or_default();
        let mut status = app.status.unwrap_or_default();
        status.conditions = with_panic_condition(&status.conditions, condition);
        self.write_status(name, &mut rv, &status).await
    }
}

/// How the condition of a panicked pass begins (an earlier one is replaced by the next).
const PANIC_CONDITION: &str = "berth's reconcile of this application panicked";

/// The condition message of a pass that panicked and is retried after `delay`. The panic's own message
/// stays in berth's log: it may quote what the pass read, which the Application's readers may not see.
fn panic_condition(delay: Duration) -> String {
    format!("{PANIC_CONDITION} (its message is in berth's log); retrying in {}s", delay.as_secs())
}

/// `conditions` with an `UnknownError` saying `condition` in place of any earlier panic's.
fn with_panic_condition(
    conditions: &[berth_api::application::ApplicationCondition],
    condition: String,
) -> Vec<berth_api::application::ApplicationCondition> {
    let mut out: Vec<_> =
        conditions.iter().filter(|c| !c.message.starts_with(PANIC_CONDITION)).cloned().collect();
    out.push(berth_api::application::ApplicationCondition {
        type_: berth_api::codes::ConditionType::UnknownError.to_string(),
        message: condition,
        last_transition_time: Some(pass::status::now()),
    });
    out
}

/// The reconcile failures of one controller ([`Controller::reconcile_logged`]).
#[derive(Default)]
struct Failing {
    /// The API server's outage as the reconciles see it: one warning for all applications while it lasts.
    outage: berth_engine::outage::Outage,
    /// The one application whose retry asks whether the API server answers again during an outage.
    probe: Option<String>,
    /// The applications that failed meanwhile and their level: queued again when it answers.
    parked: HashMap<String, Level>,
    /// The applications with a retry waiting (one each).
    retrying: std::collections::HashSet<String>,
    /// The applications whose pass panicked, waiting for their retry ([`Controller::pass_panicked`]).
    panicked: queue::PanicBackoff,
}

/// Whether a reconcile failed because the API server did not answer (see [`berth_engine::outage::unreachable`]).
fn api_server_unreachable(e: &Error) -> bool {
    match e {
        Error::Kube(e) | Error::Cache(berth_engine::cache::CacheError::Discovery(e)) => {
            berth_engine::outage::unreachable(e)
        }
        _ => false,
    }
}

/// The namespaces besides the control namespace to take Applications from: the flag's, else
/// argocd-cmd-params-cm's (read once: Argo CD too needs a restart to take a change).
async fn application_namespaces(
    client: &kube::Client,
    config: &ControllerConfig,
) -> instance::ApplicationNamespaces {
    let from_flag = instance::ApplicationNamespaces::of(&config.application_namespaces);
    let allowed = if from_flag.is_empty() {
        let api: Api<k8s_openapi::api::core::v1::ConfigMap> =
            Api::namespaced(client.clone(), &config.namespace);
        match api.get_opt(instance::CMD_PARAMS_CM).await {
            Ok(cm) => cm
                .and_then(|cm| cm.data?.get(instance::APPLICATION_NAMESPACES_KEY).cloned())
                .map(|list| instance::ApplicationNamespaces::parse(&list))
                .unwrap_or_default(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read {}: Applications only in {}", instance::CMD_PARAMS_CM, config.namespace);
                Default::default()
            }
        }
    } else {
        from_flag
    };
    for pattern in allowed.unsupported() {
        tracing::warn!(%pattern, "application namespaces: regular expressions are not supported; the entry matches nothing");
    }
    allowed
}

/// argocd-cmd-params-cm's data, read once at start (its keys are process flags in Argo CD: a change
/// needs a restart there too); empty when it is missing or unreadable.
async fn read_cmd_params(
    client: &kube::Client,
    namespace: &str,
) -> std::collections::BTreeMap<String, String> {
    let api: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client.clone(), namespace);
    match api.get_opt(instance::CMD_PARAMS_CM).await {
        Ok(cm) => cm.and_then(|cm| cm.data).unwrap_or_default(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read {}: ApplicationSets use the defaults", instance::CMD_PARAMS_CM);
            Default::default()
        }
    }
}

/// Starts a reflector and returns its store and a future that resolves once the initial list is in;
/// only objects `admit` lets through (all, for `None`) reach the store, and `on_change` sees every one
/// added, changed or deleted, after the store has it.
fn spawn_reflector<K>(
    api: Api<K>,
    config: watcher::Config,
    admit: Option<impl Fn(&K) -> bool + Send + 'static>,
    on_change: impl Fn(&K) + Send + 'static,
) -> (reflector::Store<K>, impl std::future::Future<Output = Result<(), reflector::store::WriterDropped>>)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone + Default,
{
    let (reader, writer) = reflector::store();
    let events = watcher(api, config).try_filter(move |event| {
        let admitted = match (&admit, event) {
            (
                Some(admit),
                watcher::Event::Apply(obj) | watcher::Event::InitApply(obj) | watcher::Event::Delete(obj),
            ) => admit(obj),
            _ => true,
        };
        futures::future::ready(admitted)
    });
    // Errors are retried with backoff and logged once per outage ([`berth_engine::outage`]), not per retry.
    let source = format!("{}s", K::kind(&Default::default()));
    let events = berth_engine::outage::retried(events, berth_engine::outage::WatchRetry::new(source))
        .map(Ok::<_, watcher::Error>);
    let stream = reflector(writer, events).touched_objects();
    tokio::spawn(async move {
        stream
            .for_each(move |obj| {
                if let Ok(obj) = obj {
                    on_change(&obj);
                }
                futures::future::ready(())
            })
            .await;
    });
    let ready_reader = reader.clone();
    (reader, async move { ready_reader.wait_until_ready().await })
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::application::ApplicationCondition;

    #[test]
    fn a_panic_condition_says_that_it_panicked_and_when_it_is_retried_but_not_the_message() {
        assert_eq!(
            panic_condition(Duration::from_secs(20)),
            "berth's reconcile of this application panicked (its message is in berth's log); retrying in 20s"
        );
    }

    #[test]
    fn a_new_panic_condition_replaces_the_last_one_and_keeps_the_others() {
        let condition = |type_: &str, message: &str| ApplicationCondition {
            type_: type_.into(),
            message: message.into(),
            last_transition_time: None,
        };
        let old = [
            condition("ComparisonError", "git said no"),
            condition("UnknownError", &panic_condition(Duration::from_secs(10))),
        ];
        let new = with_panic_condition(&old, panic_condition(Duration::from_secs(20)));
        let kept: Vec<_> = new.iter().map(|c| (c.type_.as_str(), c.message.as_str())).collect();
        assert_eq!(
            kept,
            [
                ("ComparisonError", "git said no"),
                (
                    "UnknownError",
                    "berth's reconcile of this application panicked (its message is in berth's log); retrying in 20s"
                )
            ]
        );
        assert!(new[1].last_transition_time.is_some());
    }
}
