//! The clusters applications deploy to: one entry per destination with its client, its cache (watches per
//! kind on demand), and its version and API list for Helm. A pass asks the registry for its application's
//! destination and uses only that entry, so what one cluster does never reaches another's objects.
//!
//! The cluster berth runs in is `in-cluster` (`https://kubernetes.default.svc`); every other cluster comes
//! from an Argo CD cluster Secret ([`secret`]) in the control namespace. A Secret for the in-cluster's
//! server renames it (and may scope it to a project), as in Argo CD; argocd-cm
//! `cluster.inClusterEnabled: "false"` takes it off the destinations.
//!
//! Each cluster Secret is read once per resourceVersion (every pass of every application resolves its
//! destination against all of them), and [`Registry::retain`] forgets the clusters no one needs any more.

pub mod limits;
pub mod secret;

use berth_api::application::ApplicationDestination;
use berth_api::destination::{IN_CLUSTER_NAME, IN_CLUSTER_SERVER};
use berth_api::secret_type;
use berth_engine::cache::{ClusterCache, ObjectEvent};
use berth_engine::tracking::Tracking;
use k8s_openapi::api::core::v1::Secret;
use parking_lot::Mutex;
use secret::ClusterSecret;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;

/// How long a remote cluster's client waits to connect, for an answer (between two reads of a response) and
/// to send a request: a cluster that went away fails a request within these instead of holding a worker.
/// A quiet watch would outlive the read timeout, so remote watches end on the server's side sooner
/// ([`REMOTE_WATCH_TIMEOUT`]).
const REMOTE_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REMOTE_READ_TIMEOUT: Duration = Duration::from_secs(30);
const REMOTE_WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// A remote watch asks the API server to end it after this long (it resumes from where it was), so a quiet
/// watch is never cut by [`REMOTE_READ_TIMEOUT`] (kube-runtime's idle check adds 5 s to it).
const REMOTE_WATCH_TIMEOUT: Duration = Duration::from_secs(20);

/// How long the answer to "does the API server answer?" is trusted, and how long asking may take.
const PROBE_TTL: Duration = Duration::from_secs(5);
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a remote cluster no Application names is kept after a pass last resolved to it (an
/// Application deleted and made again finds its cluster, and its cache, still there).
pub(crate) const UNUSED_AFTER: Duration = Duration::from_secs(300);
/// How often [`Registry::sweep_due`] says the registry should be swept.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// One destination cluster.
pub(crate) struct Cluster {
    /// The API server's URL as applications name it (`spec.destination.server`).
    pub(crate) server: String,
    /// Its name (`spec.destination.name`).
    pub(crate) name: String,
    /// The AppProject its cluster Secret scopes it to (the Secret's `project`): a project with
    /// `permitOnlyProjectScopedClusters` deploys only to the clusters scoped to it.
    pub(crate) project: Option<String>,
    /// The only namespaces berth manages there (its cluster Secret's `namespaces`); empty: all. The
    /// in-cluster's are the install's ([`crate::ControllerConfig::namespaces`]).
    pub(crate) namespaces: Vec<String>,
    /// With `namespaces`: berth manages the cluster-scoped objects too (the Secret's `clusterResources`).
    pub(crate) cluster_resources: bool,
    pub(crate) client: kube::Client,
    pub(crate) cache: ClusterCache,
    versions: Mutex<Option<Versions>>,
    /// The last request to the cluster's API server and how it ended, for its connection state.
    connection: Mutex<Option<Connection>>,
    /// The last answer of [`Cluster::reachable`].
    reachability: Mutex<Reachability>,
}

/// Whether the API server answered when last asked, and whether a question is out now.
struct Reachability {
    checked_at: Option<Instant>,
    /// Why it did not answer.
    outcome: Result<(), String>,
    /// When the question now out was asked: meanwhile other passes use the last answer instead of asking
    /// (and waiting) too.
    asking_since: Option<Instant>,
}

/// How berth's last request to a cluster's API server ended, and when it was made.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Connection {
    pub(crate) attempted_at: jiff::Timestamp,
    /// The cluster's version (`1.36.3`) when it answered; why not when it did not.
    pub(crate) result: Result<String, String>,
}

/// The cluster's version (`1.36.3`) and the API versions it serves, as Helm's `.Capabilities` reads them;
/// `hash` stands for both in render-cache keys, so a pass does not hash the list again.
struct Versions {
    read_at: Instant,
    generation: u64,
    versions: Arc<(String, Vec<String>)>,
    hash: u64,
}

impl Cluster {
    pub(crate) fn new(server: &str, name: &str, client: kube::Client, cache: ClusterCache) -> Cluster {
        Cluster {
            server: server.into(),
            name: name.into(),
            project: None,
            namespaces: Vec::new(),
            cluster_resources: false,
            client,
            cache,
            versions: Mutex::new(None),
            connection: Mutex::new(None),
            reachability: Mutex::new(Reachability { checked_at: None, outcome: Ok(()), asking_since: None }),
        }
    }

    /// The cluster scoped to `project` (a cluster Secret's `project`).
    fn with_project(mut self, project: Option<String>) -> Cluster {
        self.project = project;
        self
    }

    /// Whether berth manages `namespace` on this cluster, or with `None` its cluster-scoped objects: all of
    /// them, unless its cluster Secret (or, for the in-cluster, a namespaced install) lists `namespaces`;
    /// then only those, and cluster-scoped objects only with `clusterResources: "true"`. The refusal as
    /// Argo CD words it (`Namespace "x" for Deployment "web" is not managed`, `Cluster level ClusterRole
    /// "r" can not be managed when in namespaced mode`), with the cluster and its list.
    pub(crate) fn manages(&self, kind: &str, name: &str, namespace: Option<&str>) -> Result<(), String> {
        if self.namespaces.is_empty() {
            return Ok(());
        }
        let (cluster, listed) = (&self.name, &self.namespaces);
        match namespace {
            Some(ns) if !listed.iter().any(|n| n == ns) => Err(format!(
                "Namespace {ns:?} for {kind} {name:?} is not managed: berth manages only the namespaces \
                 {listed:?} of cluster {cluster:?}"
            )),
            None if !self.cluster_resources => Err(format!(
                "Cluster level {kind} {name:?} can not be managed when in namespaced mode: berth manages only \
                 the namespaces {listed:?} of cluster {cluster:?} (clusterResources is not \"true\")"
            )),
            _ => Ok(()),
        }
    }

    /// Whether the cluster's API server answers, asked at most every [`PROBE_TTL`] (every pass of every
    /// application on the cluster asks). The refusal names the cluster and the error, never a credential.
    /// A pass reads and writes nothing on a cluster that does not answer: a cache that cannot be refreshed
    /// would make it compare, prune and delete from what was there before.
    pub(crate) async fn reachable(&self) -> Result<(), String> {
        {
            let mut state = self.reachability.lock();
            let fresh = state.checked_at.is_some_and(|t| t.elapsed() < PROBE_TTL);
            let asked = state.checked_at.is_some()
                && state.asking_since.is_some_and(|t| t.elapsed() < PROBE_TIMEOUT * 2);
            if fresh || asked {
                return state.outcome.clone();
            }
            state.asking_since = Some(Instant::now());
        }
        self.probe().await
    }

    /// Asks the API server for its version now (a pass whose compare failed asks again, as the cluster may
    /// have gone away since the last answer), and records the answer.
    pub(crate) async fn probe(&self) -> Result<(), String> {
        let answer = match tokio::time::timeout(PROBE_TIMEOUT, self.client.apiserver_version()).await {
            Ok(Ok(info)) => Ok(info.git_version.trim_start_matches('v').to_string()),
            Ok(Err(e)) => Err(error_chain(&e)),
            Err(_) => Err(format!("no answer within {PROBE_TIMEOUT:?}")),
        };
        self.record_connection(answer.clone());
        let outcome = answer.map(drop).map_err(|e| self.unreachable(&e));
        let mut state = self.reachability.lock();
        *state =
            Reachability { checked_at: Some(Instant::now()), outcome: outcome.clone(), asking_since: None };
        outcome
    }

    /// Why a pass does nothing on this cluster.
    fn unreachable(&self, error: &str) -> String {
        format!("cluster {:?} ({}) is unreachable: {error}", self.name, self.server)
    }

    /// How the last request to the cluster ended (`None`: berth has not reached for it yet).
    pub(crate) fn connection(&self) -> Option<Connection> {
        self.connection.lock().clone()
    }

    /// Records how a request to the cluster ended: its version, or why it failed.
    pub(crate) fn record_connection(&self, result: Result<String, String>) {
        *self.connection.lock() = Some(Connection { attempted_at: jiff::Timestamp::now(), result });
    }

    /// The version and API versions, for Helm's Capabilities, and a hash of both. Read again after a
    /// discovery, and every five minutes for the version; otherwise answered from memory (every pass of
    /// every app that may be a chart asks).
    pub(crate) async fn versions(&self) -> (Arc<(String, Vec<String>)>, u64) {
        let generation = self.cache.discovery_generation();
        if let Some(info) = self.versions.lock().as_ref()
            && info.generation == generation
            && info.read_at.elapsed() < Duration::from_secs(300)
        {
            return (info.versions.clone(), info.hash);
        }
        let version = match self.client.apiserver_version().await {
            Ok(info) => info.git_version.trim_start_matches('v').to_string(),
            Err(e) => {
                self.record_connection(Err(e.to_string()));
                String::new()
            }
        };
        if !version.is_empty() {
            self.record_connection(Ok(version.clone()));
        }
        let versions = Arc::new((version, self.cache.api_versions()));
        let hash = crate::pass::hash_of(&*versions);
        // Without an answer the version is asked again next time, not left empty for five minutes.
        if !versions.0.is_empty() {
            *self.versions.lock() =
                Some(Versions { read_at: Instant::now(), generation, versions: versions.clone(), hash });
        }
        (versions, hash)
    }
}

/// The destinations berth can reach: the cluster it runs in, and one entry per cluster Secret an
/// application names, made when the first application asks for it and made again when its Secret changes.
pub(crate) struct Registry {
    /// The in-cluster as callers see it: named `in-cluster`, or as a cluster Secret for its server names it
    /// (and scoped to that Secret's project). A renamed entry shares the client and cache of the first.
    in_cluster: Mutex<Arc<Cluster>>,
    /// By server URL.
    remote: Mutex<HashMap<String, Remote>>,
    /// Every cluster Secret as last read, by uid: read again only when its resourceVersion changes.
    reads: Mutex<HashMap<String, (String, Arc<Read>)>>,
    /// How many times a cluster Secret was read (its `config` JSON parsed), for tests.
    parses: AtomicUsize,
    /// When [`Self::sweep_due`] last said yes.
    swept_at: Mutex<Option<Instant>>,
    /// Where every cluster's cache reports a tracked object's change.
    events: UnboundedSender<ObjectEvent>,
    /// How objects name their application (argocd-cm), given to every cache, including those made later.
    tracking: Mutex<Tracking>,
    /// When the controller's in-cluster client is fenced (`berth run`), the remote clusters' are too.
    gate: Option<crate::replicas::fence::Gate>,
}

/// A remote cluster's entry.
struct Remote {
    /// The resourceVersion of the Secret it was made from.
    made_from: String,
    cluster: Arc<Cluster>,
    /// When a pass last resolved to it.
    used_at: Instant,
}

/// A cluster Secret as the registry read it.
#[allow(clippy::large_enum_variant)] // one per Secret version, always behind an Arc
enum Read {
    Usable(ClusterSecret),
    /// A Secret berth cannot use: its raw `server` and `name` (it answers only for a destination it seems to
    /// name) and why (the Secret and key, never a credential).
    Broken {
        server: String,
        name: String,
        error: String,
    },
}

impl Read {
    fn of(secret: &Secret) -> Read {
        match ClusterSecret::from_secret(secret) {
            Ok(parsed) => Read::Usable(parsed),
            Err(e) => {
                let text = |key: &str| {
                    let data = secret
                        .data
                        .as_ref()
                        .and_then(|d| d.get(key))
                        .map(|b| String::from_utf8_lossy(&b.0).into_owned());
                    let string_data = secret.string_data.as_ref().and_then(|d| d.get(key)).cloned();
                    string_data.or(data).unwrap_or_default()
                };
                Read::Broken { server: text("server"), name: text("name"), error: e.to_string() }
            }
        }
    }
}

impl Registry {
    pub(crate) fn new(in_cluster: Cluster, events: UnboundedSender<ObjectEvent>) -> Registry {
        Registry {
            in_cluster: Mutex::new(Arc::new(in_cluster)),
            remote: Mutex::default(),
            reads: Mutex::default(),
            parses: AtomicUsize::new(0),
            swept_at: Mutex::default(),
            events,
            tracking: Mutex::default(),
            gate: None,
        }
    }

    /// Fences the remote clusters' clients with `gate` ([`crate::replicas::fence`]).
    pub(crate) fn with_gate(mut self, gate: Option<crate::replicas::fence::Gate>) -> Registry {
        self.gate = gate;
        self
    }

    /// The cluster `destination` names, by `server` (compared without a trailing slash) or by `name`, among
    /// the in-cluster (unless `in_cluster_enabled` is false: argocd-cm `cluster.inClusterEnabled`) and the
    /// cluster Secrets in `secrets` (other Secrets are skipped). The refusal names the field, the value and,
    /// for a Secret berth cannot use, the Secret and its key, never a credential.
    pub(crate) fn resolve<'s>(
        &self,
        destination: &ApplicationDestination,
        secrets: impl IntoIterator<Item = &'s Secret>,
        in_cluster_enabled: bool,
    ) -> Result<Arc<Cluster>, String> {
        let (by_server, wanted) = match (destination.server.as_deref(), destination.name.as_deref()) {
            (Some(server), Some(name)) if !server.is_empty() && !name.is_empty() => {
                return Err(format!(
                    "spec.destination: application destination can't have both name and server defined: \
                     {name} {server}"
                ));
            }
            (Some(server), _) if !server.is_empty() => (true, server),
            (_, Some(name)) if !name.is_empty() => (false, name),
            _ => return Err("spec.destination: either server or name must be set".into()),
        };
        let names = |server: &str, name: &str| {
            if by_server { same_server(wanted, server) } else { wanted == name }
        };
        let reads = self.read_all(secrets);
        let mut in_cluster_secret = None;
        let mut named = None;
        for (version, read) in &reads {
            match &**read {
                // A Secret for the in-cluster server names it (Argo CD's way to rename `in-cluster`).
                Read::Usable(parsed) if parsed.is_in_cluster() => {
                    in_cluster_secret = in_cluster_secret.or(Some(parsed));
                }
                Read::Usable(parsed) if named.is_none() && names(&parsed.server, &parsed.name) => {
                    named = Some(Ok((version, parsed)));
                }
                // A Secret berth cannot read answers only for the destination it seems to name.
                Read::Broken { server, name, error } if named.is_none() && names(server, name) => {
                    named = Some(Err(format!("spec.destination: {error}")));
                }
                _ => {}
            }
        }
        let in_cluster = self.in_cluster_named(in_cluster_secret);
        if !by_server {
            // A name two clusters answer to names neither, as in Argo CD.
            let mut servers: Vec<&str> = reads
                .iter()
                .filter_map(|(_, read)| match &**read {
                    Read::Usable(p) if !p.is_in_cluster() && p.name == wanted => Some(p.server.as_str()),
                    _ => None,
                })
                .collect();
            if in_cluster.name == wanted {
                servers.push(IN_CLUSTER_SERVER);
            }
            if servers.len() > 1 {
                servers.sort_unstable();
                return Err(format!(
                    "spec.destination.name: there are {} clusters with the same name: [{}]",
                    servers.len(),
                    servers.join(" ")
                ));
            }
        }
        match named {
            Some(Ok((version, parsed))) => return self.remote_entry(version, parsed),
            Some(Err(refusal)) => return Err(refusal),
            None => {}
        }
        if names(&in_cluster.server, &in_cluster.name) {
            if in_cluster_enabled {
                return Ok(in_cluster);
            }
            // As Argo CD answers for a disabled in-cluster: by server, the cluster is disabled; by name,
            // there is no such cluster.
            let key = secret::IN_CLUSTER_ENABLED_KEY;
            return Err(if by_server {
                format!(
                    "spec.destination.server: cluster {wanted:?} is disabled (argocd-cm {key} is \"false\")"
                )
            } else {
                format!(
                    "spec.destination.name: there are no clusters with this name: {wanted} (the in-cluster \
                     destination is disabled: argocd-cm {key} is \"false\")"
                )
            });
        }
        // Argo CD's words for a destination no cluster answers to.
        Err(if by_server {
            format!("spec.destination.server: cluster '{wanted}' has not been configured")
        } else {
            format!("spec.destination.name: there are no clusters with this name: {wanted}")
        })
    }

    /// Each cluster Secret of `secrets` with its resourceVersion, read from memory unless it changed since
    /// it was last read (a Secret without a resourceVersion is read every time).
    fn read_all<'s>(&self, secrets: impl IntoIterator<Item = &'s Secret>) -> Vec<(String, Arc<Read>)> {
        let mut reads = self.reads.lock();
        secrets
            .into_iter()
            .filter(|s| is_cluster_secret(s))
            .map(|secret| {
                let version = secret.metadata.resource_version.clone().unwrap_or_default();
                let key = secret_key(secret);
                if let Some((read_at, read)) = reads.get(&key)
                    && !version.is_empty()
                    && *read_at == version
                {
                    return (version, read.clone());
                }
                self.parses.fetch_add(1, Ordering::Relaxed);
                let read = Arc::new(Read::of(secret));
                reads.insert(key, (version.clone(), read.clone()));
                (version, read)
            })
            .collect()
    }

    /// The in-cluster entry, named as `secret` (a cluster Secret for its server) names it, or `in-cluster`
    /// without one; made again, with the same client and cache, when its name or project changed.
    fn in_cluster_named(&self, secret: Option<&ClusterSecret>) -> Arc<Cluster> {
        let name = secret.map(|s| s.name.as_str()).filter(|n| !n.is_empty()).unwrap_or(IN_CLUSTER_NAME);
        let project = secret.and_then(|s| s.project.clone());
        let mut entry = self.in_cluster.lock();
        if entry.name != name || entry.project != project {
            tracing::info!(name, ?project, "in-cluster named");
            let mut renamed =
                Cluster::new(IN_CLUSTER_SERVER, name, entry.client.clone(), entry.cache.clone())
                    .with_project(project);
            renamed.namespaces = entry.namespaces.clone();
            *entry = Arc::new(renamed);
        }
        entry.clone()
    }

    /// The entry of a cluster Secret: the one made before if the Secret has not changed since, else a new
    /// client and cache (nothing is read from the cluster until a pass asks).
    fn remote_entry(&self, version: &str, parsed: &ClusterSecret) -> Result<Arc<Cluster>, String> {
        let mut remote = self.remote.lock();
        if let Some(entry) = remote.get_mut(&parsed.server)
            && entry.made_from == version
        {
            entry.used_at = Instant::now();
            return Ok(entry.cluster.clone());
        }
        // Commands from a cluster Secret would run inside berth: not allowed (see SECURITY.md).
        let mut config = parsed.kube_config(false).map_err(|e| format!("spec.destination: {e}"))?;
        config.connect_timeout = Some(REMOTE_CONNECT_TIMEOUT);
        config.read_timeout = Some(REMOTE_READ_TIMEOUT);
        config.write_timeout = Some(REMOTE_WRITE_TIMEOUT);
        // The read timeout counts from the request, not from when its pooled connection went idle.
        config.reset_reader_on_write = true;
        let client = match &self.gate {
            Some(gate) => limits::fenced_client(config, limits::ClientLimits::of_process(), gate),
            None => limits::limited_client(config, limits::ClientLimits::of_process()),
        }
        .map_err(|e| format!("spec.destination: cluster Secret {}: {e}", parsed.secret_name))?;
        let cache = ClusterCache::new(client.clone(), self.events.clone())
            .with_namespaces(parsed.namespaces.clone())
            .with_cluster_resources(parsed.cluster_resources)
            .with_watch_timeout(REMOTE_WATCH_TIMEOUT);
        cache.set_tracking(&self.tracking.lock());
        let mut cluster =
            Cluster::new(&parsed.server, &parsed.name, client, cache).with_project(parsed.project.clone());
        cluster.namespaces = parsed.namespaces.clone();
        cluster.cluster_resources = parsed.cluster_resources;
        let cluster = Arc::new(cluster);
        tracing::info!(server = %parsed.server, name = %parsed.name, secret = %parsed.secret_name, "cluster added");
        let entry =
            Remote { made_from: version.to_string(), cluster: cluster.clone(), used_at: Instant::now() };
        remote.insert(parsed.server.clone(), entry);
        Ok(cluster)
    }

    /// Sets how objects name their application on every cluster's cache, and on those made from now on.
    /// Under the lock that makes entries: an entry made meanwhile is not missed.
    pub(crate) fn set_tracking(&self, tracking: &Tracking) {
        let remote = self.remote.lock();
        *self.tracking.lock() = tracking.clone();
        self.in_cluster.lock().cache.set_tracking(tracking);
        for entry in remote.values() {
            entry.cluster.cache.set_tracking(tracking);
        }
    }

    /// Every cluster with an entry.
    pub(crate) fn all(&self) -> Vec<Arc<Cluster>> {
        let in_cluster = self.in_cluster.lock().clone();
        let remote = self.remote.lock();
        std::iter::once(in_cluster).chain(remote.values().map(|r| r.cluster.clone())).collect()
    }

    /// Forgets what berth no longer needs: a remote cluster whose cluster Secret is gone from `secrets` (or
    /// no longer names its server), and one that no Application names (`in_use`) and no pass resolved to
    /// for [`UNUSED_AFTER`] before `now`; the reads of Secrets that are gone; the in-cluster's name from a
    /// Secret that is gone. A forgotten entry's client and cache are dropped with the last pass that holds
    /// them (nothing on the cluster is touched); a pass that names the cluster again makes it anew.
    pub(crate) fn retain<'s>(
        &self,
        secrets: impl IntoIterator<Item = &'s Secret>,
        in_use: impl Fn(&Cluster) -> bool,
        now: Instant,
    ) {
        let secrets: Vec<&Secret> = secrets.into_iter().filter(|s| is_cluster_secret(s)).collect();
        let reads = self.read_all(secrets.iter().copied());
        let present: HashSet<String> = secrets.iter().map(|s| secret_key(s)).collect();
        self.reads.lock().retain(|key, _| present.contains(key));
        let usable = || {
            reads.iter().filter_map(|(_, read)| match &**read {
                Read::Usable(parsed) => Some(parsed),
                Read::Broken { .. } => None,
            })
        };
        self.in_cluster_named(usable().find(|p| p.is_in_cluster()));
        let servers: HashSet<&str> =
            usable().filter(|p| !p.is_in_cluster()).map(|p| p.server.as_str()).collect();
        self.remote.lock().retain(|server, entry| {
            let why = if !servers.contains(server.as_str()) {
                "its cluster Secret is gone"
            } else if !in_use(&entry.cluster) && now.saturating_duration_since(entry.used_at) >= UNUSED_AFTER
            {
                "no application uses it"
            } else {
                return true;
            };
            tracing::info!(server = %server, name = %entry.cluster.name, why, "cluster forgotten");
            false
        });
    }

    /// Whether [`Self::retain`] is due: yes at most every [`SWEEP_EVERY`], so the passes that ask stay cheap.
    pub(crate) fn sweep_due(&self) -> bool {
        let mut swept_at = self.swept_at.lock();
        if swept_at.is_some_and(|t| t.elapsed() < SWEEP_EVERY) {
            return false;
        }
        *swept_at = Some(Instant::now());
        true
    }

    /// How many times a cluster Secret has been read (its `config` JSON parsed).
    #[cfg(test)]
    fn parses(&self) -> usize {
        self.parses.load(Ordering::Relaxed)
    }
}

/// A Secret's identity across versions: its uid, or its namespace and name when it has none.
fn secret_key(secret: &Secret) -> String {
    let meta = &secret.metadata;
    match meta.uid.as_deref().filter(|u| !u.is_empty()) {
        Some(uid) => uid.to_string(),
        None => format!(
            "{}/{}",
            meta.namespace.as_deref().unwrap_or_default(),
            meta.name.as_deref().unwrap_or_default()
        ),
    }
}

/// Whether `secret` is labelled as Argo CD's cluster Secret.
pub(crate) fn is_cluster_secret(secret: &Secret) -> bool {
    secret.metadata.labels.as_ref().and_then(|l| l.get(secret_type::LABEL)).map(String::as_str)
        == Some(secret_type::CLUSTER)
}

/// The in-cluster entry for the client berth runs with; `namespaces`: a namespaced install's (empty: all).
pub(crate) fn in_cluster(client: kube::Client, cache: ClusterCache, namespaces: Vec<String>) -> Cluster {
    let mut cluster = Cluster::new(IN_CLUSTER_SERVER, IN_CLUSTER_NAME, client, cache);
    cluster.namespaces = namespaces;
    cluster
}

/// An error and its causes (`client error (Connect): tcp connect error: Connection refused`): a
/// transport error's own text rarely says what went wrong.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let said = cause.to_string();
        // Some errors repeat their cause in their own text.
        if !text.ends_with(&said) {
            text = format!("{text}: {said}");
        }
        source = cause.source();
    }
    text
}

/// Whether two server URLs are one (Argo CD compares them without a trailing slash; blanks around them, as
/// typed into a form, do not count either). The one rule for the controller and the API server.
pub fn same_server(a: &str, b: &str) -> bool {
    a.trim().trim_end_matches('/') == b.trim().trim_end_matches('/')
}

/// Whether `destination` names `cluster`, by server or by name (as [`Registry::resolve`] finds it).
pub(crate) fn names(destination: &ApplicationDestination, cluster: &Cluster) -> bool {
    match (destination.server.as_deref(), destination.name.as_deref()) {
        (Some(server), _) if !server.is_empty() => same_server(server, &cluster.server),
        (_, Some(name)) if !name.is_empty() => name == cluster.name,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn destination(server: Option<&str>, name: Option<&str>) -> ApplicationDestination {
        ApplicationDestination {
            server: server.map(str::to_string),
            name: name.map(str::to_string),
            ..Default::default()
        }
    }

    fn cluster_secret(name: &str, data: serde_json::Value) -> Secret {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "resourceVersion": "1",
                         "labels": {"argocd.argoproj.io/secret-type": "cluster"}},
            "stringData": data,
        }))
        .unwrap()
    }

    /// A registry whose clients never connect: resolving reads no cluster.
    fn registry() -> Registry {
        let client =
            kube::Client::try_from(kube::Config::new("https://127.0.0.1:1".parse().unwrap())).unwrap();
        let (events, _) = tokio::sync::mpsc::unbounded_channel();
        Registry::new(in_cluster(client.clone(), ClusterCache::new(client, events.clone()), vec![]), events)
    }

    #[tokio::test]
    async fn a_destination_names_the_in_cluster_by_server_or_name() {
        let registry = registry();
        for dest in [
            destination(Some(IN_CLUSTER_SERVER), None),
            destination(Some("https://kubernetes.default.svc/"), None),
            destination(None, Some("in-cluster")),
            destination(Some(""), Some("in-cluster")),
        ] {
            let resolved = registry.resolve(&dest, [], true).map(|c| c.name.clone());
            assert_eq!(resolved, Ok("in-cluster".into()), "{dest:?}");
        }
        let unknown =
            registry.resolve(&destination(Some("https://prod.example:6443"), None), [], true).err().unwrap();
        assert_eq!(
            unknown,
            "spec.destination.server: cluster 'https://prod.example:6443' has not been configured"
        );
        let unknown = registry.resolve(&destination(None, Some("prod")), [], true).err().unwrap();
        assert_eq!(unknown, "spec.destination.name: there are no clusters with this name: prod");
        let both = registry.resolve(&destination(Some(IN_CLUSTER_SERVER), Some("in-cluster")), [], true);
        assert_eq!(
            both.err().unwrap(),
            "spec.destination: application destination can't have both name and server defined: in-cluster \
             https://kubernetes.default.svc"
        );
        assert_eq!(
            registry.resolve(&destination(None, None), [], true).err().unwrap(),
            "spec.destination: either server or name must be set"
        );
    }

    #[tokio::test]
    async fn a_cluster_secret_adds_a_destination_by_server_and_name_made_once_per_secret_version() {
        let registry = registry();
        let prod = cluster_secret(
            "prod",
            serde_json::json!({"name": "prod", "server": "https://prod.example:6443",
                               "config": r#"{"bearerToken": "s3cret-token", "tlsClientConfig": {"insecure": true}}"#}),
        );
        let by_server =
            registry.resolve(&destination(Some("https://prod.example:6443/"), None), [&prod], true).unwrap();
        assert_eq!(
            (by_server.server.as_str(), by_server.name.as_str()),
            ("https://prod.example:6443", "prod")
        );
        let by_name = registry.resolve(&destination(None, Some("prod")), [&prod], true).unwrap();
        assert!(Arc::ptr_eq(&by_server, &by_name), "one entry per cluster");
        assert_eq!(registry.all().len(), 2);
        let mut changed = prod.clone();
        changed.metadata.resource_version = Some("2".into());
        let remade = registry.resolve(&destination(None, Some("prod")), [&changed], true).unwrap();
        assert!(!Arc::ptr_eq(&by_server, &remade), "a changed Secret makes a new client");
        // Without its Secret the cluster is not a destination any more.
        assert!(registry.resolve(&destination(None, Some("prod")), [], true).is_err());
    }

    #[tokio::test]
    async fn a_secret_berth_cannot_use_is_named_in_the_refusal_without_its_credentials() {
        let registry = registry();
        let broken = cluster_secret(
            "staging-secret",
            serde_json::json!({"name": "staging", "server": "https://staging.example", "config": "{\"bearerToken\": \"tok-123"}),
        );
        let refusal = registry.resolve(&destination(None, Some("staging")), [&broken], true).err().unwrap();
        assert!(refusal.contains("staging-secret"), "{refusal}");
        assert!(!refusal.contains("tok-123"), "{refusal}");
        let exec = cluster_secret(
            "exec",
            serde_json::json!({"name": "exec", "server": "https://exec.example",
                               "config": r#"{"execProviderConfig": {"command": "/bin/sh", "args": ["-c", "id"]}}"#}),
        );
        let refusal = registry.resolve(&destination(None, Some("exec")), [&exec], true).err().unwrap();
        assert!(refusal.contains("execProviderConfig"), "{refusal}");
        // A broken Secret for another cluster does not stand in the way.
        assert!(registry.resolve(&destination(None, Some("in-cluster")), [&broken], true).is_ok());
    }

    #[tokio::test]
    async fn a_cluster_that_refuses_connections_is_unreachable_at_once_naming_it_without_its_token() {
        let registry = registry();
        let closed = cluster_secret(
            "closed",
            serde_json::json!({"name": "closed", "server": "https://127.0.0.1:1",
                               "config": r#"{"bearerToken": "s3cret-token", "tlsClientConfig": {"insecure": true}}"#}),
        );
        let cluster = registry.resolve(&destination(None, Some("closed")), [&closed], true).unwrap();
        let started = Instant::now();
        let refusal = cluster.reachable().await.unwrap_err();
        assert!(started.elapsed() < REMOTE_CONNECT_TIMEOUT, "a refused connection fails at once");
        assert!(
            refusal.starts_with("cluster \"closed\" (https://127.0.0.1:1) is unreachable: "),
            "{refusal}"
        );
        assert!(refusal.to_lowercase().contains("connection refused"), "the cause is named: {refusal}");
        assert!(!refusal.contains("s3cret-token"), "{refusal}");
        // The answer is remembered (and recorded as the connection state) for the passes that follow.
        assert_eq!(cluster.reachable().await, Err(refusal.clone()));
        assert!(cluster.connection().is_some_and(|c| c.result.is_err()));
    }

    #[tokio::test]
    async fn a_name_two_cluster_secrets_answer_to_names_neither() {
        let registry = registry();
        let secret = |name: &str, server: &str| {
            let mut s = cluster_secret(name, serde_json::json!({"name": "prod", "server": server}));
            s.metadata.uid = Some(name.into());
            s
        };
        let (a, b) = (secret("a", "https://b.example"), secret("b", "https://a.example"));
        let refusal = registry.resolve(&destination(None, Some("prod")), [&a, &b], true).err().unwrap();
        assert_eq!(
            refusal,
            "spec.destination.name: there are 2 clusters with the same name: [https://a.example https://b.example]"
        );
        // By server each is still its own.
        let by_server = registry.resolve(&destination(Some("https://a.example"), None), [&a, &b], true);
        assert_eq!(by_server.unwrap().server, "https://a.example");
    }

    #[tokio::test]
    async fn a_secret_for_the_in_cluster_server_renames_it_for_every_caller_until_it_is_gone() {
        let registry = registry();
        let renamed = cluster_secret(
            "local",
            serde_json::json!({"name": "local", "server": IN_CLUSTER_SERVER, "project": "platform"}),
        );
        let cluster = registry.resolve(&destination(None, Some("local")), [&renamed], true).unwrap();
        assert_eq!(cluster.server, IN_CLUSTER_SERVER);
        assert_eq!((cluster.name.as_str(), cluster.project.as_deref()), ("local", Some("platform")));
        assert!(registry.resolve(&destination(None, Some("in-cluster")), [&renamed], true).is_err());
        // By server it is the same entry, under its new name, and so is what the registry lists.
        let by_server =
            registry.resolve(&destination(Some(IN_CLUSTER_SERVER), None), [&renamed], true).unwrap();
        assert!(Arc::ptr_eq(&cluster, &by_server));
        let listed: Vec<String> = registry.all().iter().map(|c| c.name.clone()).collect();
        assert_eq!(listed, ["local"]);
        // Without the Secret it is `in-cluster` again.
        registry.retain([], |_| true, Instant::now());
        let listed: Vec<String> = registry.all().iter().map(|c| c.name.clone()).collect();
        assert_eq!(listed, ["in-cluster"]);
        assert!(registry.resolve(&destination(None, Some("in-cluster")), [], true).is_ok());
    }

    #[tokio::test]
    async fn a_disabled_in_cluster_is_no_destination_by_server_or_by_name_but_other_clusters_are() {
        let registry = registry();
        let by_server =
            registry.resolve(&destination(Some(IN_CLUSTER_SERVER), None), [], false).err().unwrap();
        assert_eq!(
            by_server,
            "spec.destination.server: cluster \"https://kubernetes.default.svc\" is disabled (argocd-cm \
             cluster.inClusterEnabled is \"false\")"
        );
        let by_name = registry.resolve(&destination(None, Some("in-cluster")), [], false).err().unwrap();
        assert!(
            by_name.starts_with("spec.destination.name: there are no clusters with this name: in-cluster"),
            "{by_name}"
        );
        // Renamed, it is disabled under its new name.
        let renamed =
            cluster_secret("local", serde_json::json!({"name": "local", "server": IN_CLUSTER_SERVER}));
        let by_name = registry.resolve(&destination(None, Some("local")), [&renamed], false).err().unwrap();
        assert!(by_name.contains("there are no clusters with this name: local"), "{by_name}");
        let prod = cluster_secret(
            "prod",
            serde_json::json!({"name": "prod", "server": "https://prod.example:6443",
                               "config": r#"{"bearerToken": "t", "tlsClientConfig": {"insecure": true}}"#}),
        );
        assert!(registry.resolve(&destination(None, Some("prod")), [&prod], false).is_ok());
    }

    #[tokio::test]
    async fn a_cluster_secrets_project_is_carried_on_its_entry() {
        let registry = registry();
        let scoped = cluster_secret(
            "team-a",
            serde_json::json!({"name": "team-a", "server": "https://a.example", "project": "a"}),
        );
        let plain =
            cluster_secret("team-b", serde_json::json!({"name": "team-b", "server": "https://b.example"}));
        let a = registry.resolve(&destination(None, Some("team-a")), [&scoped, &plain], true).unwrap();
        let b = registry.resolve(&destination(None, Some("team-b")), [&scoped, &plain], true).unwrap();
        assert_eq!((a.project.as_deref(), b.project.as_deref()), (Some("a"), None));
    }

    #[tokio::test]
    async fn each_cluster_secret_is_parsed_once_per_resource_version_with_the_same_answers() {
        let registry = registry();
        let prod = cluster_secret(
            "prod",
            serde_json::json!({"name": "prod", "server": "https://prod.example:6443",
                               "config": r#"{"bearerToken": "t", "tlsClientConfig": {"insecure": true}}"#}),
        );
        let broken = cluster_secret(
            "staging-secret",
            serde_json::json!({"name": "staging", "server": "https://staging.example", "config": "{"}),
        );
        let secrets = [&prod, &broken];
        let first = registry.resolve(&destination(None, Some("prod")), secrets, true).unwrap();
        let refusal = registry.resolve(&destination(None, Some("staging")), secrets, true).err().unwrap();
        assert_eq!(registry.parses(), 2, "each Secret read once");
        for _ in 0..10 {
            let again = registry.resolve(&destination(None, Some("prod")), secrets, true).unwrap();
            assert!(Arc::ptr_eq(&first, &again));
            assert_eq!(
                registry.resolve(&destination(None, Some("staging")), secrets, true).err().unwrap(),
                refusal
            );
            assert!(registry.resolve(&destination(None, Some("in-cluster")), secrets, true).is_ok());
        }
        assert_eq!(registry.parses(), 2, "an unchanged Secret is not parsed again");
        // A new version is read again, and answers from what it says now.
        let mut moved = prod.clone();
        moved.metadata.resource_version = Some("2".into());
        moved.string_data.as_mut().unwrap().insert("name".into(), "production".into());
        assert!(registry.resolve(&destination(None, Some("prod")), [&moved, &broken], true).is_err());
        let renamed =
            registry.resolve(&destination(None, Some("production")), [&moved, &broken], true).unwrap();
        assert_eq!(renamed.name, "production");
        assert_eq!(registry.parses(), 3, "only the changed Secret is read again");
    }

    #[tokio::test]
    async fn a_cluster_whose_secret_is_gone_or_that_no_application_uses_is_forgotten() {
        let registry = registry();
        let secret = |name: &str| {
            cluster_secret(
                name,
                serde_json::json!({"name": name, "server": format!("https://{name}.example"),
                                   "config": r#"{"bearerToken": "t", "tlsClientConfig": {"insecure": true}}"#}),
            )
        };
        let (prod, staging) = (secret("prod"), secret("staging"));
        for name in ["prod", "staging"] {
            registry.resolve(&destination(None, Some(name)), [&prod, &staging], true).unwrap();
        }
        let names = |registry: &Registry| {
            let mut names: Vec<String> = registry.all().iter().map(|c| c.name.clone()).collect();
            names.sort();
            names
        };
        assert_eq!(names(&registry), ["in-cluster", "prod", "staging"]);
        // Used, or resolved to lately: kept.
        registry.retain([&prod, &staging], |c| c.name == "prod", Instant::now());
        assert_eq!(names(&registry), ["in-cluster", "prod", "staging"]);
        // Its Secret gone: forgotten at once, even though an Application still names it.
        registry.retain([&staging], |_| true, Instant::now());
        assert_eq!(names(&registry), ["in-cluster", "staging"]);
        // Named by no Application and not resolved to for a while: forgotten.
        let later = Instant::now() + UNUSED_AFTER;
        registry.retain([&staging], |c| c.name == "staging", later);
        assert_eq!(names(&registry), ["in-cluster", "staging"], "an Application still names it");
        registry.retain([&staging], |_| false, later);
        assert_eq!(names(&registry), ["in-cluster"]);
        // A pass that names it again makes it anew.
        registry.resolve(&destination(None, Some("staging")), [&staging], true).unwrap();
        assert_eq!(names(&registry), ["in-cluster", "staging"]);
    }

    #[tokio::test]
    async fn a_destination_names_a_cluster_by_server_or_by_name() {
        let client =
            || kube::Client::try_from(kube::Config::new("https://127.0.0.1:1".parse().unwrap())).unwrap();
        let (events, _) = tokio::sync::mpsc::unbounded_channel();
        let cluster =
            Cluster::new("https://prod.example/", "prod", client(), ClusterCache::new(client(), events));
        assert!(names(&destination(Some("https://prod.example"), None), &cluster));
        assert!(names(&destination(Some(""), Some("prod")), &cluster));
        assert!(!names(&destination(Some("https://other.example"), Some("prod")), &cluster), "server first");
        assert!(!names(&destination(None, None), &cluster));
    }
}
