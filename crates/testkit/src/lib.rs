//! What berth's integration tests share: a client for the real local cluster that fails loudly when it
//! is missing, polling with a deadline (never a sleep as synchronisation), the CRDs, namespaces, unique
//! names and git repositories made on disk, real git servers to serve them ([`git_servers`]) and a real
//! Gitea for the pull request and SCM provider generators ([`gitea`]) and a real Dex for SSO ([`dex`]).

pub mod clusters;
pub mod dex;
pub mod git_servers;
pub mod gitea;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The seed's examples (../shared/seed/examples beside the repository, or `BERTH_SEED_EXAMPLES`).
/// A missing folder fails the test: it is the project's specification.
pub fn seed_dir() -> PathBuf {
    let dir = std::env::var_os("BERTH_SEED_EXAMPLES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/seed/examples"));
    assert!(dir.is_dir(), "the seed examples are missing at {} (set BERTH_SEED_EXAMPLES)", dir.display());
    dir
}

pub async fn client() -> kube::Client {
    assert!(
        std::env::var_os("KUBECONFIG").is_some(),
        "KUBECONFIG is not set: start the local cluster with `hack/cluster up` and `eval \"$(hack/cluster env)\"`, or run `hack/test`"
    );
    let client = kube::Client::try_default().await.expect("a client from KUBECONFIG");
    client.apiserver_version().await.expect("the local API server answers (is `hack/cluster up` running?)");
    client
}

pub async fn install_crds(client: &kube::Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in berth_api::crd::all() {
        let name = crd.metadata.name.clone().unwrap();
        let mut body = serde_json::to_value(&crd).unwrap();
        body["apiVersion"] = "apiextensions.k8s.io/v1".into();
        body["kind"] = "CustomResourceDefinition".into();
        crds.patch(&name, &PatchParams::apply("berth-test").force(), &Patch::Apply(&body)).await.unwrap();
    }
    for crd in berth_api::crd::all() {
        let name = crd.metadata.name.unwrap();
        poll(&format!("CRD {name} Established"), Duration::from_secs(60), || {
            let crds = crds.clone();
            let name = name.clone();
            async move {
                crds.get(&name)
                    .await
                    .ok()
                    .and_then(|c| c.status)
                    .and_then(|s| s.conditions)
                    .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Established" && c.status == "True"))
            }
        })
        .await;
    }
}

/// Polls `check` every 50 ms until it holds; panics after `timeout` naming `what`.
pub async fn poll<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A unique, DNS-safe name for this test run.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}-{}", std::process::id() % 100000, COUNTER.fetch_add(1, Ordering::Relaxed))
}

pub async fn ensure_namespace(client: &kube::Client, name: &str) {
    let ns: Api<Namespace> = Api::all(client.clone());
    let body = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
    ns.patch(name, &PatchParams::apply("berth-test"), &Patch::Apply(&body)).await.unwrap();
}

/// Lets the berth watching `namespace` use `file://` repositories ([`GitRepo::url`]), which it refuses
/// unless argocd-cm sets `berth.repositories.allowFileURLs`. Applied by a field manager of its own, so the
/// test's other argocd-cm keys stay as they are.
pub async fn allow_file_urls(client: &kube::Client, namespace: &str) {
    let maps: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client.clone(), namespace);
    let body = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "argocd-cm", "namespace": namespace},
        "data": {"berth.repositories.allowFileURLs": "true"}});
    maps.patch("argocd-cm", &PatchParams::apply("berth-test-file-urls"), &Patch::Apply(&body)).await.unwrap();
}

/// argocd-cmd-params-cm in `namespace` with `application.namespaces` set to `list` (Argo CD's
/// "applications in any namespace"), as an operator would write it before starting berth.
pub async fn set_application_namespaces(client: &kube::Client, namespace: &str, list: &str) {
    let maps: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client.clone(), namespace);
    let body = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "argocd-cmd-params-cm", "namespace": namespace},
        "data": {"application.namespaces": list}});
    maps.patch("argocd-cmd-params-cm", &PatchParams::apply("berth-test"), &Patch::Apply(&body))
        .await
        .unwrap();
}

/// A git repository on disk, committed to by the test.
pub struct GitRepo {
    pub dir: tempfile::TempDir,
}

impl Default for GitRepo {
    fn default() -> Self {
        Self::new()
    }
}

impl GitRepo {
    /// A new repository with branch `main` in a temporary directory.
    pub fn new() -> GitRepo {
        let repo = GitRepo { dir: tempfile::tempdir().unwrap() };
        repo.git(&["init", "-q", "-b", "main"]);
        repo
    }

    pub fn url(&self) -> String {
        format!("file://{}", self.dir.path().display())
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .args(["-c", "user.name=Dev", "-c", "user.email=dev@example.com", "-c", "commit.gpgsign=false"])
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("git runs");
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    pub fn write(&self, path: &str, text: &str) -> &Self {
        let p: PathBuf = self.dir.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
        self
    }

    /// Removes a file, or a folder with everything in it.
    pub fn remove(&self, path: &str) -> &Self {
        let full = self.dir.path().join(path);
        if full.is_dir() {
            std::fs::remove_dir_all(full).unwrap()
        } else {
            std::fs::remove_file(full).unwrap()
        }
        self
    }

    /// Commits everything and returns the commit SHA.
    pub fn commit(&self, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", message]);
        self.git(&["rev-parse", "HEAD"])
    }
}

/// A reqwest client builder that works however the workspace's features unify: when another crate turns on
/// reqwest's rustls without a crypto provider (berth's crates do), ring's is installed first, as kube uses.
pub fn http_builder() -> reqwest::ClientBuilder {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
}

/// A session token of berth's `admin` on the API at `base`, logged in with the password `berth run` put in
/// Secret `argocd-initial-admin-secret` of `namespace` (as `argocd admin initial-password` reads it).
pub async fn admin_token(
    http: &reqwest::Client,
    base: &str,
    client: &kube::Client,
    namespace: &str,
) -> String {
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), namespace);
    let secret = secrets.get("argocd-initial-admin-secret").await.expect("berth made the admin's password");
    let password = String::from_utf8(secret.data.unwrap()["password"].0.clone()).unwrap();
    let login: serde_json::Value = http
        .post(format!("{base}/api/v1/session"))
        .json(&serde_json::json!({"username": "admin", "password": password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    login["token"].as_str().expect("a session token").to_string()
}
