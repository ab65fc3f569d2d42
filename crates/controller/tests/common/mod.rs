//! A test bench for the Application controller against the real local cluster: a control namespace of
//! its own, the controller running in-process, and git repositories made on disk.
#![allow(dead_code)] // each test binary uses a different part of this module

use berth_api::Application;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use std::time::{Duration, Instant};

pub use berth_testkit::*;

pub const TIMEOUT: Duration = Duration::from_secs(45);

/// The controller in-process, with its own control namespace, and everything it needs.
pub struct Bench {
    pub client: kube::Client,
    pub namespace: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    pub cache_dir: tempfile::TempDir,
    pub namespaces: Vec<String>,
    /// `--application-namespaces` of the next [`Bench::start_controller`].
    pub application_namespaces: Vec<String>,
    /// The running controller, as the API server of the same process would see it.
    pub view: berth_controller::ControllerView,
    /// The self-heal backoff of the next [`Bench::start_controller`] (Argo CD's defaults: 2 s, ×3, 300 s).
    pub self_heal_backoff: berth_controller::SelfHealBackoff,
}

impl Bench {
    pub async fn start(prefix: &str) -> Bench {
        Bench::start_on(prefix, client().await).await
    }

    /// A bench on the cluster `client` reaches (another local cluster than KUBECONFIG's).
    pub async fn start_on(prefix: &str, client: kube::Client) -> Bench {
        // BERTH_TEST_LOG=berth_controller=debug shows the controller's log for a failing test.
        if let Ok(filter) = std::env::var("BERTH_TEST_LOG") {
            let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
        }
        install_crds(&client).await;
        let namespace = unique(prefix);
        ensure_namespace(&client, &namespace).await;
        // Fast polling so tests that rely on it finish quickly; jitter off.
        apply_json(
            &client,
            &namespace,
            serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "argocd-cm", "namespace": namespace},
                "data": {"timeout.reconciliation": "2s", "timeout.reconciliation.jitter": "0s",
                    // The test repositories are file:// URLs, which berth refuses unless enabled.
                    "berth.repositories.allowFileURLs": "true"}}),
        )
        .await;
        let mut bench = Bench {
            client,
            namespace: namespace.clone(),
            shutdown: None,
            task: None,
            cache_dir: tempfile::tempdir().unwrap(),
            namespaces: vec![namespace],
            application_namespaces: Vec::new(),
            view: Default::default(),
            self_heal_backoff: Default::default(),
        };
        bench.start_controller();
        bench
    }

    pub fn start_controller(&mut self) {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let config = berth_controller::ControllerConfig {
            namespace: self.namespace.clone(),
            cache_dir: self.cache_dir.path().to_path_buf(),
            repo_cache_max_bytes: berth_repo::git::DEFAULT_MAX_TREE_BYTES,
            workers: 4,
            self_heal_timeout: Duration::ZERO,
            self_heal_backoff: self.self_heal_backoff.clone(),
            namespaces: Vec::new(),
            application_namespaces: self.application_namespaces.clone(),
            view: self.view.clone(),
            settings: None,
            replica: Default::default(),
        };
        let client = self.client.clone();
        self.task = Some(tokio::spawn(async move {
            berth_controller::Controller::run(client, config, async {
                let _ = rx.await;
            })
            .await
            .expect("the controller runs");
        }));
        self.shutdown = Some(tx);
    }

    /// Stops the controller gracefully (as on SIGTERM) and waits for it.
    pub async fn stop_controller(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(30), task).await.expect("the controller stops").unwrap();
        }
    }

    /// Kills the controller mid-flight: its task is aborted wherever it is, as a crash or an OOM kill would
    /// stop it (no graceful shutdown, reconciles in flight are cut).
    pub async fn kill_controller(&mut self) {
        self.shutdown.take();
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    pub fn apps(&self) -> Api<Application> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// A destination namespace that is deleted with the bench.
    pub fn dest_namespace(&mut self, prefix: &str) -> String {
        let ns = unique(prefix);
        self.namespaces.push(ns.clone());
        ns
    }

    pub async fn create_app(&self, app: serde_json::Value) {
        let name = app["metadata"]["name"].as_str().unwrap().to_string();
        let mut app = app;
        app["metadata"]["namespace"] = self.namespace.clone().into();
        self.apps().patch(&name, &PatchParams::apply("berth-test"), &Patch::Apply(&app)).await.unwrap();
    }

    pub async fn app(&self, name: &str) -> serde_json::Value {
        serde_json::to_value(self.apps().get(name).await.unwrap()).unwrap()
    }

    /// Waits until the Application's JSON satisfies `check`; panics with the last status otherwise.
    pub async fn wait_app(
        &self,
        name: &str,
        what: &str,
        check: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let app = self.app(name).await;
            if check(&app) {
                return app;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out waiting for {name}: {what}; status:\n{}",
                    serde_json::to_string_pretty(&app["status"]).unwrap()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Requests a refresh and waits until the controller has handled it (removed the annotation).
    pub async fn refreshed(&self, name: &str) -> serde_json::Value {
        self.refresh(name).await;
        self.wait_app(name, "the refresh handled", |a| {
            a["metadata"]["annotations"]["argocd.argoproj.io/refresh"].is_null()
        })
        .await
    }

    pub async fn refresh(&self, name: &str) {
        let patch =
            serde_json::json!({"metadata": {"annotations": {"argocd.argoproj.io/refresh": "normal"}}});
        self.apps().patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    }

    /// Writes `op` as the Application's operation (as `argocd app sync` does).
    pub async fn set_operation(&self, name: &str, op: serde_json::Value) {
        let patch = serde_json::json!({"operation": op});
        self.apps().patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    }

    /// Runs an operation to its end: writes it (marked, so an earlier one is never mistaken for it) and
    /// waits until it has finished and been removed. Returns the Application.
    pub async fn operate(&self, name: &str, op: serde_json::Value) -> serde_json::Value {
        let marker = unique("op");
        let mut op = op;
        op["info"] = serde_json::json!([{"name": "test-run", "value": marker}]);
        self.set_operation(name, op).await;
        self.wait_app(name, "the operation finished", |a| {
            a["operation"].is_null()
                && a["status"]["operationState"]["operation"]["info"][0]["value"] == marker.as_str()
                && matches!(phase(a), "Succeeded" | "Failed" | "Error")
        })
        .await
    }

    pub async fn cleanup(mut self) {
        self.stop_controller().await;
        let ns: Api<Namespace> = Api::all(self.client.clone());
        // Applications first: without the controller their finalizers would hold the namespace.
        for app in self.apps().list(&Default::default()).await.map(|l| l.items).unwrap_or_default() {
            let name = app.metadata.name.clone().unwrap();
            let patch = serde_json::json!({"metadata": {"finalizers": null}});
            let _ = self.apps().patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await;
        }
        for n in &self.namespaces {
            let _ = ns.delete(n, &DeleteParams::background()).await;
        }
    }
}

pub async fn apply_json(client: &kube::Client, namespace: &str, obj: serde_json::Value) {
    let ar = kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
        "",
        "v1",
        obj["kind"].as_str().unwrap(),
    ));
    let api: Api<kube::api::DynamicObject> = Api::namespaced_with(client.clone(), namespace, &ar);
    api.patch(
        obj["metadata"]["name"].as_str().unwrap(),
        &PatchParams::apply("berth-test").force(),
        &Patch::Apply(&obj),
    )
    .await
    .unwrap();
}

/// The seed's `web` Deployment (3 replicas) and Service, as plain manifests.
pub fn web_manifests(image: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
      - name: web
        image: {image}
        ports:
        - containerPort: 80
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {{app: web}}
  ports:
  - port: 80
    targetPort: 80
"
    )
}

/// The seed's `web` Application (../shared/seed/examples/application-web.yaml), pointed at a test repo.
pub fn seed_web_app(name: &str, repo_url: &str, dest_ns: &str) -> serde_json::Value {
    let path = seed_dir().join("application-web.yaml");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("the seed example {}: {e}", path.display()));
    let mut app: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
    app["metadata"]["name"] = name.into();
    app["spec"]["source"]["repoURL"] = repo_url.into();
    app["spec"]["destination"]["namespace"] = dest_ns.into();
    app
}

/// The last operation's phase.
pub fn phase(app: &serde_json::Value) -> &str {
    app["status"]["operationState"]["phase"].as_str().unwrap_or_default()
}

pub fn sync_status(app: &serde_json::Value) -> &str {
    app["status"]["sync"]["status"].as_str().unwrap_or_default()
}

pub fn health(app: &serde_json::Value) -> &str {
    app["status"]["health"]["status"].as_str().unwrap_or_default()
}

pub fn conditions(app: &serde_json::Value) -> String {
    app["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| format!("{}: {}\n", c["type"], c["message"]))
        .collect()
}

/// The annotation that marks the object a test writes itself to close a watch ([`writes_until_sentinel`]).
pub const SENTINEL: &str = "berth-test/sentinel";

/// The writes a watch of `api` delivers from `rv` until the test's own sentinel object arrives (see
/// [`write_sentinel`]): what anyone else wrote meanwhile, as "TYPE kind/name" (TYPE is the watch event's,
/// or DELETING for the marking write of a foreground deletion), read from the API server.
pub fn writes_until_sentinel<K>(api: Api<K>, rv: String) -> tokio::task::JoinHandle<Vec<String>>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + 'static,
{
    use futures::StreamExt;
    use kube::api::{WatchEvent, WatchParams};
    tokio::spawn(async move {
        let mut stream = api.watch(&WatchParams::default().timeout(290), &rv).await.unwrap().boxed();
        let mut writes = Vec::new();
        while let Some(event) = stream.next().await {
            let (what, object) = match event.unwrap() {
                WatchEvent::Added(o) => ("ADDED", o),
                WatchEvent::Modified(o) => ("MODIFIED", o),
                WatchEvent::Deleted(o) => ("DELETED", o),
                WatchEvent::Bookmark(_) => continue,
                WatchEvent::Error(e) => panic!("the watch from {rv} failed: {e:?}"),
            };
            let meta = object.meta();
            if meta.annotations.as_ref().is_some_and(|a| a.contains_key(SENTINEL)) {
                return writes;
            }
            // A foreground deletion first marks the object (deletionTimestamp, a finalizer), then deletes it.
            let what =
                if what == "MODIFIED" && meta.deletion_timestamp.is_some() { "DELETING" } else { what };
            writes.push(format!("{what} {}/{}", K::kind(&()), meta.name.as_deref().unwrap_or_default()));
        }
        panic!("the watch from {rv} ended before the sentinel arrived; writes so far: {writes:?}");
    })
}

/// Writes a new sentinel ConfigMap in `namespace`, which ends the [`writes_until_sentinel`] watches of
/// ConfigMaps there. It carries no tracking annotation, so no Application takes or prunes it.
pub async fn write_sentinel(client: &kube::Client, namespace: &str) {
    let name = unique("sentinel");
    apply_json(
        client,
        namespace,
        serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace, "annotations": {SENTINEL: "true"}}}),
    )
    .await;
}
