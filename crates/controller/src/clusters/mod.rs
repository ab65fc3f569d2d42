//! The clusters applications deploy to: one entry per destination with its client, its cache (watches per
//! kind on demand), and its version and API list for Helm. A pass asks the registry for its application's
//! destination and uses only that entry, so what one cluster does never reaches another's objects.
//!
//! The cluster berth runs in is `in-cluster` (`https://kubernetes.default.svc`); every other cluster comes
//! from an Argo CD cluster Secret ([`secret`]) in the control namespace.

pub mod secret;

use berth_api::application::ApplicationDestination;
use berth_api::destination::{IN_CLUSTER_NAME, IN_CLUSTER_SERVER};
use berth_api::secret_type;
use berth_engine::cache::{ClusterCache, ObjectEvent};
use k8s_openapi::api::core::v1::Secret;
use secret::ClusterSecret;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
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

/// One destination cluster.
pub(crate) struct Cluster {
    /// The API server's URL as applications name it (`spec.destination.server`).
    pub(crate) server: String,
    /// Its name (`spec.destination.name`).
    pub(crate) name: String,
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
            client,
            cache,
            versions: Mutex::new(None),
            connection: Mutex::new(None),
            reachability: Mutex::new(Reachability { checked_at: None, outcome: Ok(()), asking_since: None }),
        }
    }

    /// Whether the cluster's API server answers, asked at most every [`PROBE_TTL`] (every pass of every
    /// application on the cluster asks). The refusal names the cluster and the error, never a credential.
    /// A pass reads and writes nothing on a cluster that does not answer: a cache that cannot be refreshed
    /// would make it compare, prune and delete from what was there before.
    pub(crate) async fn reachable(&self) -> Result<(), String> {
        {
            let mut state = self.reachability.lock().expect("reachability lock");
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
        let mut state = self.reachability.lock().expect("reachability lock");
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
        self.connection.lock().expect("connection lock").clone()
    }

    /// Records how a request to the cluster ended: its version, or why it failed.
    pub(crate) fn record_connection(&self, result: Result<String, String>) {
        *self.connection.lock().expect("connection lock") =
            Some(Connection { attempted_at: jiff::Timestamp::now(), result });
    }

    /// The version and API versions, for Helm's Capabilities, and a hash of both. Read again after a
    /// discovery, and every five minutes for the version; otherwise answered from memory (every pass of
    /// every app that may be a chart asks).
    pub(crate) async fn versions(&self) -> (Arc<(String, Vec<String>)>, u64) {
        let generation = self.cache.discovery_generation();
        if let Some(info) = self.versions.lock().expect("versions lock").as_ref()
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
            *self.versions.lock().expect("versions lock") =
                Some(Versions { read_at: Instant::now(), generation, versions: versions.clone(), hash });
        }
        (versions, hash)
    }
}

/// The destinations berth can reach: the cluster it runs in, and one entry per cluster Secret an
/// application names, made when the first application asks for it and made again when its Secret changes.
pub(crate) struct Registry {
    in_cluster: Arc<Cluster>,
    /// By server URL: the entry and the resourceVersion of the Secret it was made from.
    remote: Mutex<HashMap<String, (String, Arc<Cluster>)>>,
    /// Where every cluster's cache reports a tracked object's change.
    events: UnboundedSender<ObjectEvent>,
}

impl Registry {
    pub(crate) fn new(in_cluster: Cluster, events: UnboundedSender<ObjectEvent>) -> Registry {
        Registry { in_cluster: Arc::new(in_cluster), remote: Mutex::default(), events }
    }

    /// The cluster `destination` names, by `server` (compared without a trailing slash) or by `name`, among
    /// the in-cluster and the cluster Secrets in `secrets` (other Secrets are skipped). The refusal names
    /// the field, the value and, for a Secret berth cannot use, the Secret and its key, never a credential.
    pub(crate) fn resolve<'s>(
        &self,
        destination: &ApplicationDestination,
        secrets: impl IntoIterator<Item = &'s Secret>,
    ) -> Result<Arc<Cluster>, String> {
        let (by_server, wanted) = match (destination.server.as_deref(), destination.name.as_deref()) {
            (Some(server), _) if !server.is_empty() => (true, server),
            (_, Some(name)) if !name.is_empty() => (false, name),
            _ => return Err("spec.destination: either server or name must be set".into()),
        };
        let names = |server: &str, name: &str| {
            if by_server { same_server(wanted, server) } else { wanted == name }
        };
        let mut in_cluster_name = self.in_cluster.name.clone();
        for secret in secrets.into_iter().filter(|s| is_cluster_secret(s)) {
            let parsed = match ClusterSecret::from_secret(secret) {
                Ok(parsed) => parsed,
                // A Secret berth cannot read answers only for the destination it seems to name.
                Err(e) if raw_names(secret, names) => return Err(format!("spec.destination: {e}")),
                Err(_) => continue,
            };
            if parsed.is_in_cluster() {
                // A Secret for the in-cluster server names it (Argo CD's way to rename `in-cluster`).
                if !parsed.name.is_empty() {
                    in_cluster_name = parsed.name.clone();
                }
                continue;
            }
            if names(&parsed.server, &parsed.name) {
                return self.remote_entry(secret, &parsed);
            }
        }
        if names(&self.in_cluster.server, &in_cluster_name) {
            return Ok(self.in_cluster.clone());
        }
        let field = if by_server { "server" } else { "name" };
        Err(format!(
            "spec.destination.{field}: cluster {wanted:?} is not configured (no cluster Secret names it)"
        ))
    }

    /// The entry of a cluster Secret: the one made before if the Secret has not changed since, else a new
    /// client and cache (nothing is read from the cluster until a pass asks).
    fn remote_entry(&self, secret: &Secret, parsed: &ClusterSecret) -> Result<Arc<Cluster>, String> {
        let version = secret.metadata.resource_version.clone().unwrap_or_default();
        let mut remote = self.remote.lock().expect("clusters lock");
        if let Some((made_from, cluster)) = remote.get(&parsed.server)
            && *made_from == version
        {
            return Ok(cluster.clone());
        }
        // Commands from a cluster Secret would run inside berth: not allowed (see SECURITY.md).
        let mut config = parsed.kube_config(false).map_err(|e| format!("spec.destination: {e}"))?;
        config.connect_timeout = Some(REMOTE_CONNECT_TIMEOUT);
        config.read_timeout = Some(REMOTE_READ_TIMEOUT);
        config.write_timeout = Some(REMOTE_WRITE_TIMEOUT);
        // The read timeout counts from the request, not from when its pooled connection went idle.
        config.reset_reader_on_write = true;
        let client = kube::Client::try_from(config)
            .map_err(|e| format!("spec.destination: cluster Secret {}: {e}", parsed.secret_name))?;
        let cache = ClusterCache::new(client.clone(), self.events.clone())
            .with_namespaces(parsed.namespaces.clone())
            .with_watch_timeout(REMOTE_WATCH_TIMEOUT);
        let cluster = Arc::new(Cluster::new(&parsed.server, &parsed.name, client, cache));
        tracing::info!(server = %parsed.server, name = %parsed.name, secret = %parsed.secret_name, "cluster added");
        remote.insert(parsed.server.clone(), (version, cluster.clone()));
        Ok(cluster)
    }

    /// Every cluster with an entry, for settings that reach all of them (tracking).
    pub(crate) fn all(&self) -> Vec<Arc<Cluster>> {
        let remote = self.remote.lock().expect("clusters lock");
        std::iter::once(self.in_cluster.clone()).chain(remote.values().map(|(_, c)| c.clone())).collect()
    }
}

/// Whether `secret` is labelled as Argo CD's cluster Secret.
pub(crate) fn is_cluster_secret(secret: &Secret) -> bool {
    secret.metadata.labels.as_ref().and_then(|l| l.get(secret_type::LABEL)).map(String::as_str)
        == Some(secret_type::CLUSTER)
}

/// Whether a Secret that does not parse still names the destination by its raw `server` or `name`.
fn raw_names(secret: &Secret, names: impl Fn(&str, &str) -> bool) -> bool {
    let text = |key: &str| {
        let data =
            secret.data.as_ref().and_then(|d| d.get(key)).map(|b| String::from_utf8_lossy(&b.0).into_owned());
        let string_data = secret.string_data.as_ref().and_then(|d| d.get(key)).cloned();
        string_data.or(data).unwrap_or_default()
    };
    names(&text("server"), &text("name"))
}

/// The in-cluster entry for the client berth runs with.
pub(crate) fn in_cluster(client: kube::Client, cache: ClusterCache) -> Cluster {
    Cluster::new(IN_CLUSTER_SERVER, IN_CLUSTER_NAME, client, cache)
}

/// An error and its causes (`client error (Connect): tcp connect error: Connection refused`): a
/// transport error's own text rarely says what went wrong.
fn error_chain(error: &dyn std::error::Error) -> String {
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

/// Whether two server URLs are one (Argo CD compares them without a trailing slash).
pub(crate) fn same_server(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
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
        Registry::new(in_cluster(client.clone(), ClusterCache::new(client, events.clone())), events)
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
            let resolved = registry.resolve(&dest, []).map(|c| c.name.clone());
            assert_eq!(resolved, Ok("in-cluster".into()), "{dest:?}");
        }
        let unknown =
            registry.resolve(&destination(Some("https://prod.example:6443"), None), []).err().unwrap();
        assert!(
            unknown.contains("server: cluster \"https://prod.example:6443\" is not configured"),
            "{unknown}"
        );
        let unknown = registry.resolve(&destination(None, Some("prod")), []).err().unwrap();
        assert!(unknown.contains("name: cluster \"prod\" is not configured"), "{unknown}");
        assert_eq!(
            registry.resolve(&destination(None, None), []).err().unwrap(),
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
            registry.resolve(&destination(Some("https://prod.example:6443/"), None), [&prod]).unwrap();
        assert_eq!(
            (by_server.server.as_str(), by_server.name.as_str()),
            ("https://prod.example:6443", "prod")
        );
        let by_name = registry.resolve(&destination(None, Some("prod")), [&prod]).unwrap();
        assert!(Arc::ptr_eq(&by_server, &by_name), "one entry per cluster");
        assert_eq!(registry.all().len(), 2);
        let mut changed = prod.clone();
        changed.metadata.resource_version = Some("2".into());
        let remade = registry.resolve(&destination(None, Some("prod")), [&changed]).unwrap();
        assert!(!Arc::ptr_eq(&by_server, &remade), "a changed Secret makes a new client");
        // Without its Secret the cluster is not a destination any more.
        assert!(registry.resolve(&destination(None, Some("prod")), []).is_err());
    }

    #[tokio::test]
    async fn a_secret_berth_cannot_use_is_named_in_the_refusal_without_its_credentials() {
        let registry = registry();
        let broken = cluster_secret(
            "staging-secret",
            serde_json::json!({"name": "staging", "server": "https://staging.example", "config": "{\"bearerToken\": \"tok-123"}),
        );
        let refusal = registry.resolve(&destination(None, Some("staging")), [&broken]).err().unwrap();
        assert!(refusal.contains("staging-secret"), "{refusal}");
        assert!(!refusal.contains("tok-123"), "{refusal}");
        let exec = cluster_secret(
            "exec",
            serde_json::json!({"name": "exec", "server": "https://exec.example",
                               "config": r#"{"execProviderConfig": {"command": "/bin/sh", "args": ["-c", "id"]}}"#}),
        );
        let refusal = registry.resolve(&destination(None, Some("exec")), [&exec]).err().unwrap();
        assert!(refusal.contains("execProviderConfig"), "{refusal}");
        // A broken Secret for another cluster does not stand in the way.
        assert!(registry.resolve(&destination(None, Some("in-cluster")), [&broken]).is_ok());
    }

    #[tokio::test]
    async fn a_cluster_that_refuses_connections_is_unreachable_at_once_naming_it_without_its_token() {
        let registry = registry();
        let closed = cluster_secret(
            "closed",
            serde_json::json!({"name": "closed", "server": "https://127.0.0.1:1",
                               "config": r#"{"bearerToken": "s3cret-token", "tlsClientConfig": {"insecure": true}}"#}),
        );
        let cluster = registry.resolve(&destination(None, Some("closed")), [&closed]).unwrap();
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
    async fn a_secret_for_the_in_cluster_server_renames_it() {
        let registry = registry();
        let renamed =
            cluster_secret("local", serde_json::json!({"name": "local", "server": IN_CLUSTER_SERVER}));
        let cluster = registry.resolve(&destination(None, Some("local")), [&renamed]).unwrap();
        assert_eq!(cluster.server, IN_CLUSTER_SERVER);
        assert!(registry.resolve(&destination(None, Some("in-cluster")), [&renamed]).is_err());
    }
}
