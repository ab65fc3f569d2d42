//! berth's API server, and the controller when asked, in the test's process as `berth run` starts them:
//! one stop signal for both, stopped when dropped. The server's and the CLI's integration tests both
//! include this file, so the two start berth the same way.

use berth_controller::instance::ApplicationNamespaces;
use kube::api::Api;
use std::sync::Arc;
use std::time::Duration;

/// What runs besides the API server.
#[derive(Debug, Default)]
pub struct Options {
    /// Run the controller too; the server reads its trees and comparisons.
    pub controller: bool,
    /// The namespaces besides the control one whose Applications both serve (`--application-namespaces`);
    /// empty: argocd-cmd-params-cm decides.
    pub application_namespaces: Vec<String>,
    /// The controller's workers; 0 takes the usual 2.
    pub workers: usize,
    /// Where Dex serves (`berth run --dex-server`), for argocd-cm `dex.config`.
    pub dex_server: Option<String>,
}

/// The API server on a free port of 127.0.0.1 (plain HTTP), and the controller when asked.
pub struct InProcess {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// `127.0.0.1:PORT`, as `berth login` takes it.
    pub address: String,
    stop: tokio::sync::watch::Sender<bool>,
    controller: Option<tokio::task::JoinHandle<Result<(), berth_controller::Error>>>,
    /// The controller's repository cache, removed with it.
    _cache: Option<tempfile::TempDir>,
}

impl InProcess {
    /// Starts the controller first (when asked), then the server sharing its view, for `namespace`.
    pub async fn start(client: &kube::Client, namespace: &str, options: Options) -> InProcess {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let until_stopped = || {
            let mut stopped = stopped.clone();
            async move {
                let _ = stopped.wait_for(|s| *s).await;
            }
        };
        let view = berth_controller::ControllerView::default();
        let (controller, cache) = if options.controller {
            let cache = tempfile::tempdir().unwrap();
            let config = berth_controller::ControllerConfig {
                namespace: namespace.to_string(),
                cache_dir: cache.path().to_path_buf(),
                repo_cache_max_bytes: berth_repo::git::DEFAULT_MAX_TREE_BYTES,
                workers: if options.workers == 0 { 2 } else { options.workers },
                self_heal_timeout: Duration::ZERO,
                self_heal_backoff: Default::default(),
                namespaces: Vec::new(),
                application_namespaces: options.application_namespaces.clone(),
                view: view.clone(),
                settings: None,
                replica: Default::default(),
            };
            let run = berth_controller::Controller::run(client.clone(), config, until_stopped());
            (Some(tokio::spawn(run)), Some(cache))
        } else {
            (None, None)
        };
        let settings = berth_controller::SettingsSource::start(client.clone(), namespace).await.unwrap();
        let served = ApplicationNamespaces::of(&options.application_namespaces);
        let shared =
            berth_server::api::Shared::start_for(client.clone(), namespace, settings, served).await.unwrap();
        shared.sso.set_dex_server(options.dex_server.clone());
        let shared = Arc::new(shared.with_controller(view));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        tokio::spawn(berth_server::api::serve_on(listener, shared, until_stopped()));
        InProcess { base: format!("http://{address}"), address, stop, controller, _cache: cache }
    }

    /// Stops both and waits up to 30 s for the controller to return.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(controller) = self.controller.take() {
            let _ = tokio::time::timeout(Duration::from_secs(30), controller).await;
        }
    }

    /// Requests as the admin, signed in with the initial password.
    pub async fn admin(&self, client: &kube::Client, namespace: &str) -> Caller {
        let password = admin_password(client, namespace).await;
        Caller { base: self.base.clone(), token: token(&self.base, "admin", &password).await }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Requests to one server as one signed-in user.
#[derive(Clone)]
pub struct Caller {
    base: String,
    token: String,
}

impl Caller {
    /// `method` on `path` (from `/api/…`), with a JSON body or none: status and answer.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: impl AsRef<str>,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        call(method, &format!("{}{}", self.base, path.as_ref()), &self.token, body).await
    }
}

/// A request with a JSON body (or none): status and answer, as JSON or else as a JSON string.
pub async fn call(
    method: reqwest::Method,
    url: &str,
    token: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let mut request = reqwest::Client::new().request(method, url).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
}

/// The admin's initial password, as the seed's kubectl command reads it.
pub async fn admin_password(client: &kube::Client, ns: &str) -> String {
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), ns);
    let secret = secrets.get("argocd-initial-admin-secret").await.unwrap();
    String::from_utf8(secret.data.unwrap()["password"].0.clone()).unwrap()
}

/// `POST /api/v1/session` as sent.
pub async fn login(base: &str, username: &str, password: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{base}/api/v1/session"))
        .json(&serde_json::json!({"username": username, "password": password}))
        .send()
        .await
        .unwrap()
}

/// A session token; the login must succeed.
pub async fn token(base: &str, username: &str, password: &str) -> String {
    try_token(base, username, password).await.unwrap_or_else(|| panic!("login as {username} failed"))
}

/// A session token, or None when the login is refused.
pub async fn try_token(base: &str, username: &str, password: &str) -> Option<String> {
    let response = login(base, username, password).await;
    if response.status().as_u16() != 200 {
        return None;
    }
    Some(response.json::<serde_json::Value>().await.unwrap()["token"].as_str().unwrap().to_string())
}
