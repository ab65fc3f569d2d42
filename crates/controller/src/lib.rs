//! The Application controller: watches Applications, keeps each one's desired state (git, rendered),
//! compares it with the cluster cache, syncs on request or automatically, and writes status as Argo CD does.
//!
//! Reading order: `Controller::run` wires watches, the poll ticker and the workers; `pass/` is one
//! application's pass (target state → compare → operation or auto-sync → status).

mod credentials;
pub mod events;
pub mod exclusions;
pub mod metrics;
mod pass;
pub mod project;
mod queue;
mod retry;
pub use view::{InfoItem, ManagedResource, NodeHealth, ParentRef, TreeNode, ViewError, resource_tree};
pub mod rollback;
pub mod settings;
pub mod settings_keys;
pub mod settings_source;
mod view;
pub mod windows;

use berth_api::{AppProject, Application};
use berth_engine::cache::{ClusterCache, ObjectEvent};
use berth_repo::git::GitCache;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

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
    /// Reconciles that run at once (each application is only ever in one).
    pub workers: usize,
    /// Delay between a drift and its revert (Argo CD's self-heal timeout).
    pub self_heal_timeout: Duration,
    /// The only namespaces berth manages (a namespaced install, with Roles there and no ClusterRole);
    /// empty: the whole cluster.
    pub namespaces: Vec<String>,
    /// Filled with this controller when it starts, for the API server of the same process.
    pub view: ControllerView,
    /// argocd-cm and argocd-ssh-known-hosts-cm as the process watches them (shared with the API server);
    /// `None`: the controller starts a source of its own.
    pub settings: Option<SettingsSource>,
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
}

/// The controller as the API server sees it: what it reads (resource tree, managed resources, revision
/// metadata) and asks (a refresh). Whoever runs both makes one, puts it in [`ControllerConfig::view`] and
/// hands a clone to the server; the controller fills it when it starts. Never filled: no controller runs
/// in this process, and the server answers what needs one with 503.
#[derive(Clone, Default)]
pub struct ControllerView(Arc<RwLock<std::sync::Weak<Controller>>>);

impl ControllerView {
    /// The running controller, if any.
    pub fn get(&self) -> Option<Arc<Controller>> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).upgrade()
    }

    fn fill(&self, controller: &Arc<Controller>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::downgrade(controller);
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

/// A cluster's version (`1.36.3`) and the API versions it serves, as Helm's `.Capabilities` reads them;
/// `hash` stands for both in render-cache keys, so a pass does not hash the list again.
struct ClusterInfo {
    read_at: Instant,
    generation: u64,
    versions: Arc<(String, Vec<String>)>,
    hash: u64,
}

pub struct Controller {
    client: kube::Client,
    config: ControllerConfig,
    apps: reflector::Store<Application>,
    projects: reflector::Store<AppProject>,
    secrets: reflector::Store<Secret>,
    settings: RwLock<Arc<Settings>>,
    cache: ClusterCache,
    git: GitCache,
    queue: Arc<queue::Queue>,
    memo: Mutex<HashMap<String, pass::Memo>>,
    renders: berth_repo::render::RenderCache,
    tool_versions: std::sync::OnceLock<Arc<(String, String)>>,
    /// The destination's version and API versions, and when they were read.
    cluster_versions: Mutex<Option<ClusterInfo>>,
    seen: Mutex<HashMap<String, u64>>,
    recorder: kube::runtime::events::Recorder,
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
        let cache = ClusterCache::new(client.clone(), events_tx).with_namespaces(config.namespaces.clone());
        cache.discover().await?;

        // Application changes reach the queue from the same stream that fills the store, so a reconcile
        // never looks for an Application the store has not seen yet.
        let (app_tx, mut app_rx) = tokio::sync::mpsc::unbounded_channel::<Application>();
        let apps = spawn_reflector(
            Api::<Application>::namespaced(client.clone(), &ns),
            watcher::Config::default(),
            move |app: &Application| {
                let _ = app_tx.send(app.clone());
            },
        );
        // A project or repository secret that changes may change every application's verdict.
        let (config_tx, mut config_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let projects_tx = config_tx.clone();
        let projects = spawn_reflector(
            Api::<AppProject>::namespaced(client.clone(), &ns),
            watcher::Config::default(),
            move |_| {
                let _ = projects_tx.send(());
            },
        );
        let secrets = spawn_reflector(
            Api::<Secret>::namespaced(client.clone(), &ns),
            watcher::Config::default()
                .labels(&format!("{} in (repository,repo-creds)", berth_api::secret_type::LABEL)),
            move |_| {
                let _ = config_tx.send(());
            },
        );
        let controller = Arc::new(Controller {
            git: GitCache::new(&config.cache_dir),
            client: client.clone(),
            config,
            apps: apps.0,
            projects: projects.0,
            secrets: secrets.0,
            settings: RwLock::new(Arc::new(Settings::default())),
            cache,
            queue: Arc::default(),
            memo: Mutex::default(),
            renders: berth_repo::render::RenderCache::default(),
            tool_versions: std::sync::OnceLock::new(),
            cluster_versions: Mutex::new(None),
            seen: Mutex::default(),
            recorder: kube::runtime::events::Recorder::new(client.clone(), events::reporter()),
        });
        controller.config.view.fill(&controller);
        controller.ensure_default_project().await;
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

        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(controller.clone().follow_settings(updates, taken));
        let c = controller.clone();
        tasks.spawn(async move {
            while config_rx.recv().await.is_some() {
                while config_rx.try_recv().is_ok() {}
                c.requeue_all(Level::Refresh);
            }
        });
        // Application changes (not our own status writes) queue a refresh.
        let c = controller.clone();
        tasks.spawn(async move {
            while let Some(app) = app_rx.recv().await {
                c.application_changed(&app);
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
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..controller.config.workers.max(1) {
            let c = controller.clone();
            workers.spawn(async move {
                while let Some((name, level)) = c.queue.pop().await {
                    c.reconcile_logged(&name, level).await;
                    c.queue.done(&name);
                }
            });
        }
        tracing::info!(namespace = %controller.config.namespace, workers = controller.config.workers, "controller started");
        shutdown.await;
        tracing::info!("shutting down: finishing reconciles in flight");
        controller.queue.close();
        while workers.join_next().await.is_some() {}
        tasks.abort_all();
        Ok(())
    }

    /// Argo CD creates the `default` AppProject (any repo, any destination) at start; so does berth.
    async fn ensure_default_project(&self) {
        let api: Api<AppProject> = Api::namespaced(self.client.clone(), &self.config.namespace);
        if matches!(api.get_opt("default").await, Ok(Some(_))) {
            return;
        }
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

    fn settings(&self) -> Arc<Settings> {
        self.settings.read().expect("settings lock").clone()
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
        self.cache.set_tracking(&settings.tracking);
        self.git.set_allow_file_urls(settings.allow_file_urls);
        let changed = **self.settings.read().expect("settings lock") != settings;
        *self.settings.write().expect("settings lock") = Arc::new(settings);
        if changed {
            // A new polling period or new ignore rules apply from the next pass of every application.
            for m in self.memo.lock().expect("memo lock").values_mut() {
                m.next_refresh = None;
            }
            self.requeue_all(Level::Compare);
        }
    }

    fn requeue_all(&self, level: Level) {
        for app in self.apps.state() {
            if let Some(name) = &app.metadata.name {
                self.queue.push(name, level);
            }
        }
    }

    fn application_changed(&self, app: &Application) {
        let name = app.metadata.name.clone().unwrap_or_default();
        let fingerprint = pass::fingerprint(app);
        let changed =
            self.seen.lock().expect("seen lock").insert(name.clone(), fingerprint) != Some(fingerprint);
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
                let memo = self.memo.lock().expect("memo lock");
                memo.iter()
                    .filter(|(_, m)| m.next_refresh.is_some_and(|t| t <= now))
                    .map(|(n, _)| n.clone())
                    .collect()
            };
            for name in due {
                self.queue.push(&name, Level::Refresh);
            }
        }
    }

    async fn reconcile_logged(&self, name: &str, level: Level) {
        let started = Instant::now();
        let result = self.reconcile(name, level).await;
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
            Err(e) => {
                // A stale copy is retried as soon as the watch can have caught up; other errors back off.
                let delay = if matches!(e, Error::Stale) {
                    Duration::from_millis(50)
                } else {
                    tracing::warn!(app = name, error = %e, "reconcile failed; retrying in 5s");
                    Duration::from_secs(5)
                };
                let queue = self.queue.clone();
                let name = name.to_string();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    queue.push(&name, level);
                });
            }
        }
    }
}

/// Starts a reflector and returns its store and a future that resolves once the initial list is in;
/// `on_change` sees every object added, changed or deleted, after the store has it.
fn spawn_reflector<K>(
    api: Api<K>,
    config: watcher::Config,
    on_change: impl Fn(&K) + Send + 'static,
) -> (reflector::Store<K>, impl std::future::Future<Output = Result<(), reflector::store::WriterDropped>>)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone + Default,
{
    let (reader, writer) = reflector::store();
    let stream = reflector(writer, watcher(api, config)).default_backoff().touched_objects();
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
