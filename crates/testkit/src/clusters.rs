//! The other local API servers of the multi-cluster tests and benchmarks (each from
//! `hack/cluster up --name …`, with its own etcd, controller-manager and kwok): a client, the URL and the
//! `config` of an Argo CD cluster Secret that reaches it, and stopping and starting it by name.

use std::path::Path;

/// One local API server, read from the kubeconfig `hack/cluster` wrote for it.
pub struct LocalCluster {
    /// Its `hack/cluster --name` (also its kubeconfig's cluster and context name).
    pub name: String,
    /// The API server's URL (`https://127.0.0.1:<port>`).
    pub server: String,
    pub client: kube::Client,
    /// The `config` of a cluster Secret for it: its CA and the admin's client certificate, as JSON text.
    pub config: String,
    /// The kubeconfig file.
    pub kubeconfig: String,
}

impl LocalCluster {
    /// The cluster whose kubeconfig is at `path`; panics with the path when it cannot be read.
    pub async fn open(path: &str) -> LocalCluster {
        let kubeconfig = kube::config::Kubeconfig::read_from(path)
            .unwrap_or_else(|e| panic!("the kubeconfig {path} cannot be read: {e}"));
        let name = kubeconfig.clusters[0].name.clone();
        let cluster = kubeconfig.clusters[0].cluster.clone().expect("a cluster in the kubeconfig");
        let user = kubeconfig.auth_infos[0].auth_info.clone().expect("a user in the kubeconfig");
        let read = |file: Option<String>| std::fs::read(file.expect("a file in the kubeconfig")).unwrap();
        let base64 = |bytes: Vec<u8>| serde_json::to_value(k8s_openapi::ByteString(bytes)).unwrap();
        let config = serde_json::json!({"tlsClientConfig": {
            "caData": base64(read(cluster.certificate_authority.clone())),
            "certData": base64(read(user.client_certificate.clone())),
            "keyData": base64(read(user.client_key.clone())),
        }});
        let options = kube::config::KubeConfigOptions::default();
        let client_config = kube::Config::from_custom_kubeconfig(kubeconfig, &options).await.unwrap();
        LocalCluster {
            name,
            server: cluster.server.expect("a server in the kubeconfig"),
            client: kube::Client::try_from(client_config).unwrap(),
            config: config.to_string(),
            kubeconfig: path.to_string(),
        }
    }

    /// The clusters named, colon-separated, by the environment variable `var` (the tests' and
    /// benchmarks' scripts set it); panics naming the variable when it is unset.
    pub async fn from_env_list(var: &str) -> Vec<LocalCluster> {
        let paths = std::env::var(var).unwrap_or_else(|_| {
            panic!("{var} names the kubeconfigs of the other local API servers, colon-separated: run through hack/test or hack/bench")
        });
        let mut out = Vec::new();
        for path in paths.split(':').filter(|p| !p.is_empty()) {
            out.push(LocalCluster::open(path).await);
        }
        out
    }

    /// The data of an Argo CD cluster Secret (`name`, `server`, `config`) that reaches it.
    pub fn secret_data(&self) -> serde_json::Value {
        serde_json::json!({"name": self.name, "server": self.server, "config": self.config})
    }
}

/// Runs `hack/cluster <command> --name <name>` from the repository root and waits for it (`up` returns
/// once the cluster is ready); panics when it fails.
pub fn hack_cluster(command: &str, name: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let status = std::process::Command::new(root.join("hack/cluster"))
        .args([command, "--name", name])
        .current_dir(&root)
        .status()
        .expect("hack/cluster runs");
    assert!(status.success(), "hack/cluster {command} --name {name} failed: {status}");
}

/// A local cluster stopped by [`Stopped::stop`]: started again by [`Stopped::start`], or when dropped (a
/// test that failed meanwhile), so it is never left down.
pub struct Stopped {
    name: Option<String>,
}

impl Stopped {
    /// Stops the cluster `name` (off the async runtime: the controller under test goes on meanwhile).
    pub async fn stop(name: &str) -> Stopped {
        let owned = name.to_string();
        tokio::task::spawn_blocking(move || hack_cluster("down", &owned)).await.unwrap();
        Stopped { name: Some(name.to_string()) }
    }

    /// Starts it again and waits until it is ready.
    pub async fn start(mut self) {
        let name = self.name.take().unwrap();
        tokio::task::spawn_blocking(move || hack_cluster("up", &name)).await.unwrap();
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        if let Some(name) = self.name.take() {
            hack_cluster("up", &name);
        }
    }
}
