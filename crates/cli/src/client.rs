//! The HTTP client of the `berth` CLI: Argo CD's REST paths and JSON shapes, a bearer token from the
//! current context (or `--server` / `--auth-token` / `BERTH_SERVER` / `BERTH_AUTH_TOKEN`), and errors a
//! person can act on.

use crate::context::{Config, config_path};
use clap::Args;
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::Mutex;

/// How to reach the server; every flag overrides the current context.
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Connection")]
pub struct ConnectionArgs {
    /// The berth server, HOST:PORT (default: the current context's).
    #[arg(long, global = true, env = "BERTH_SERVER", value_name = "HOST:PORT")]
    pub server: Option<String>,
    /// A session or API token (default: the current context's).
    #[arg(long, global = true, env = "BERTH_AUTH_TOKEN", hide_env_values = true)]
    pub auth_token: Option<String>,
    /// Speak plain HTTP (a server started with `berth run --insecure`).
    #[arg(long, global = true)]
    pub plaintext: bool,
    /// Accept any TLS certificate (the server's self-signed default).
    #[arg(long, global = true)]
    pub insecure: bool,
    /// The config file (default: $XDG_CONFIG_HOME/berth/config or ~/.config/berth/config).
    #[arg(long, global = true, env = "BERTH_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
}

/// What went wrong talking to the server, worded for the person at the terminal.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("not logged in: run `berth login HOST`")]
    NotLoggedIn,
    #[error("not logged in to {0}: run `berth login {0}`")]
    NotLoggedInTo(String),
    #[error("cannot reach the berth server at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("login failed: {0}")]
    LoginFailed(String),
    #[error("the session for {server} is not valid ({message}): run `berth login {server}`")]
    Unauthenticated { server: String, message: String },
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    #[error("application {0} not found")]
    ApplicationNotFound(String),
    #[error("application {0} not found, or permission denied")]
    ApplicationDenied(String),
    #[error("the server does not support {method} {path} (is it an older berth?)")]
    Unsupported { method: Method, path: String },
    /// Any other error the server answered, with its own message.
    #[error("{message}")]
    Api { status: u16, code: Option<i64>, message: String },
    #[error("reading the server's answer to {method} {path}: {reason}")]
    Decode { method: Method, path: String, reason: String },
    #[error("{0}")]
    Setup(String),
}

/// The server, token and transport a command ends up with.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub server: String,
    pub token: Option<String>,
    pub plaintext: bool,
    pub insecure: bool,
    /// How the token renews itself: an SSO session's context with a refresh token.
    pub renewal: Option<Renewal>,
}

/// The context an SSO login saved and its refresh token: where a renewed ID token goes.
#[derive(Clone, PartialEq)]
pub struct Renewal {
    pub config: PathBuf,
    pub context: String,
    pub refresh_token: String,
}

impl std::fmt::Debug for Renewal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Renewal").field("config", &self.config).field("context", &self.context).finish()
    }
}

impl ConnectionArgs {
    /// Flags and environment first, then the context for that server (the current one by default).
    pub fn target(&self) -> anyhow::Result<Target> {
        let path = config_path(self.config.as_deref())?;
        let config = Config::load(&path)?;
        let mut target = self.target_in(&config)?;
        let own_token = self.auth_token.as_deref().is_none_or(str::is_empty);
        target.renewal = config
            .for_server(&target.server)
            .filter(|_| own_token)
            .and_then(|c| Some((c.name.clone(), c.refresh_token.clone()?)))
            .map(|(context, refresh_token)| Renewal { config: path, context, refresh_token });
        Ok(target)
    }

    pub fn target_in(&self, config: &Config) -> Result<Target, ClientError> {
        let server = match (self.server.as_ref().filter(|s| !s.is_empty()), config.current()) {
            (Some(server), _) => server.clone(),
            (None, Some(current)) => current.server.clone(),
            (None, None) => return Err(ClientError::NotLoggedIn),
        };
        let context = config.for_server(&server);
        Ok(Target {
            token: self
                .auth_token
                .clone()
                .filter(|t| !t.is_empty())
                .or_else(|| context.and_then(|c| c.token.clone())),
            plaintext: self.plaintext || context.is_some_and(|c| c.plaintext),
            insecure: self.insecure || context.is_some_and(|c| c.insecure),
            server,
            renewal: None,
        })
    }

    /// A client with a token; "not logged in" without one.
    pub fn client(&self) -> anyhow::Result<Client> {
        let target = self.target()?;
        if target.token.is_none() {
            return Err(ClientError::NotLoggedInTo(target.server).into());
        }
        Ok(Client::new(&target)?)
    }
}

/// `https://HOST:PORT` (or `http://` with `--plaintext`); a URL given whole is kept.
pub fn base_url(server: &str, plaintext: bool) -> String {
    let server = server.trim_end_matches('/');
    if server.starts_with("http://") || server.starts_with("https://") {
        server.to_string()
    } else {
        format!("{}://{server}", if plaintext { "http" } else { "https" })
    }
}

/// The CLI's HTTP client: rustls with ring, the usual timeouts, any certificate accepted with `insecure`.
pub(crate) fn http_client(insecure: bool) -> Result<reqwest::Client, ClientError> {
    // reqwest is built without a bundled provider: use ring, as kube does (a second install is a no-op).
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(120))
        .tls_danger_accept_invalid_certs(insecure)
        .build()
        .map_err(|e| ClientError::Setup(format!("building the HTTP client: {}", chain(&e))))
}

/// A connection to one server.
pub struct Client {
    http: reqwest::Client,
    base: String,
    server: String,
    insecure: bool,
    /// Locked while an SSO session renews, so concurrent requests renew once.
    session: Mutex<Session>,
}

struct Session {
    token: Option<String>,
    renewal: Option<Renewal>,
}

impl Client {
    pub fn new(target: &Target) -> Result<Client, ClientError> {
        Ok(Client {
            http: http_client(target.insecure)?,
            base: base_url(&target.server, target.plaintext),
            server: target.server.clone(),
            insecure: target.insecure,
            session: Mutex::new(Session { token: target.token.clone(), renewal: target.renewal.clone() }),
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<T, ClientError> {
        let (status, text) = self.send(method.clone(), path, query, body).await?;
        if !(200..300).contains(&status) {
            return Err(api_error(status, &text, &method, path, &self.server));
        }
        let text = if text.trim().is_empty() { "null" } else { &text };
        serde_json::from_str(text).map_err(|e| ClientError::Decode {
            method,
            path: path.to_string(),
            reason: e.to_string(),
        })
    }

    /// One request; an SSO session whose ID token expired (or is refused with 401) renews and retries once.
    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<(u16, String), ClientError> {
        let mut token = self.session.lock().await.token.clone();
        if let Some(old) = token.as_deref().filter(|t| crate::sso::expired(t, unix_now())) {
            token = self.renew(Some(old)).await?.or(token);
        }
        let (status, text) = self.send_as(token.as_deref(), method.clone(), path, query, body).await?;
        if status != 401 {
            return Ok((status, text));
        }
        match self.renew(token.as_deref()).await? {
            Some(renewed) => self.send_as(Some(&renewed), method, path, query, body).await,
            None => Ok((status, text)),
        }
    }

    /// A new ID token for the SSO session that sent `failed`, saved in its context; `None` when the
    /// session cannot renew (no refresh token). A session another request renewed meanwhile is reused.
    async fn renew(&self, failed: Option<&str>) -> Result<Option<String>, ClientError> {
        let mut session = self.session.lock().await;
        if session.token.as_deref() != failed {
            return Ok(session.token.clone());
        }
        // The refresh token goes only to the provider that issued the session's token.
        let issuer = session.token.as_deref().and_then(crate::sso::issuer_of);
        let Some(renewal) = session.renewal.as_mut() else {
            return Ok(None);
        };
        let unauthenticated = |e: anyhow::Error| ClientError::Unauthenticated {
            server: self.server.clone(),
            message: format!("the SSO session could not be renewed: {e:#}"),
        };
        let tokens = crate::sso::refresh(
            &self.http,
            &self.base,
            self.insecure,
            &renewal.refresh_token,
            issuer.as_deref(),
        )
        .await
        .map_err(unauthenticated)?;
        if let Some(refresh_token) = tokens.refresh_token.clone() {
            renewal.refresh_token = refresh_token;
        }
        let save = || -> anyhow::Result<()> {
            let mut config = Config::load(&renewal.config)?;
            config.renew(&renewal.context, &tokens.id_token, &renewal.refresh_token)?;
            config.save(&renewal.config)
        };
        save().map_err(|e| ClientError::Setup(format!("saving the renewed SSO session: {e:#}")))?;
        session.token = Some(tokens.id_token.clone());
        Ok(Some(tokens.id_token))
    }

    async fn send_as(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<(u16, String), ClientError> {
        let mut url = reqwest::Url::parse(&format!("{}{path}", self.base))
            .map_err(|e| ClientError::Setup(format!("the server address {:?}: {e}", self.server)))?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        let mut request = self.http.request(method, url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let unreachable = |e: reqwest::Error| ClientError::Unreachable {
            url: self.base.clone(),
            reason: with_transport_hint(chain(&e)),
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(unreachable)?;
        Ok((status, text))
    }

    /// `POST /api/v1/session`: a session token for a local account.
    pub async fn login(&self, username: &str, password: &str) -> Result<String, ClientError> {
        let path = "/api/v1/session";
        let body = serde_json::json!({"username": username, "password": password});
        let (status, text) = self.send(Method::POST, path, &[], Some(&body)).await?;
        if status == 401 || status == 403 {
            return Err(ClientError::LoginFailed(error_message(&text, status)));
        }
        if !(200..300).contains(&status) {
            return Err(api_error(status, &text, &Method::POST, path, &self.server));
        }
        #[derive(Deserialize)]
        struct Session {
            token: String,
        }
        serde_json::from_str::<Session>(&text).map(|s| s.token).map_err(|e| ClientError::Decode {
            method: Method::POST,
            path: path.into(),
            reason: e.to_string(),
        })
    }

    /// `GET /api/version` (no token needed).
    pub async fn version(&self) -> Result<Value, ClientError> {
        self.call(Method::GET, "/api/version", &[], None).await
    }

    /// `GET /api/v1/applications`: the `{items}` list, filtered by projects and a label selector.
    pub async fn list_applications(
        &self,
        projects: &[String],
        selector: Option<&str>,
    ) -> Result<Vec<Value>, ClientError> {
        let mut query = Vec::new();
        if !projects.is_empty() {
            // berth's server reads a comma-separated list (Argo CD repeats the parameter; one project reads alike).
            query.push(("projects", projects.join(",")));
        }
        if let Some(selector) = selector.filter(|s| !s.is_empty()) {
            query.push(("selector", selector.to_string()));
        }
        let list: ItemList = self.call(Method::GET, "/api/v1/applications", &query, None).await?;
        Ok(list.items)
    }

    /// `GET /api/v1/applications/{name}`, with `refresh=normal|hard` to have the controller look again.
    pub async fn get_application(&self, name: &str, refresh: Option<Refresh>) -> Result<Value, ClientError> {
        let query: Vec<(&str, String)> =
            refresh.map(|r| ("refresh", r.as_str().to_string())).into_iter().collect();
        self.app_call(name, Method::GET, "", &query, None).await
    }

    /// `POST /api/v1/applications` (the body is the Application); `upsert` replaces an existing one.
    pub async fn create_application(&self, app: &Value, upsert: bool) -> Result<Value, ClientError> {
        self.call(Method::POST, "/api/v1/applications", &[("upsert", upsert.to_string())], Some(app)).await
    }

    /// `DELETE /api/v1/applications/{name}?cascade=…`.
    pub async fn delete_application(&self, name: &str, cascade: bool) -> Result<(), ClientError> {
        let _: Value =
            self.app_call(name, Method::DELETE, "", &[("cascade", cascade.to_string())], None).await?;
        Ok(())
    }

    /// `POST /api/v1/applications/{name}/sync`: the Application with its new `operation`.
    pub async fn sync(&self, name: &str, request: &SyncRequest) -> Result<Value, ClientError> {
        let body = serde_json::to_value(request).map_err(|e| ClientError::Setup(e.to_string()))?;
        self.app_call(name, Method::POST, "/sync", &[], Some(&body)).await
    }

    /// `POST /api/v1/applications/{name}/rollback` to history entry `id`.
    pub async fn rollback(
        &self,
        name: &str,
        id: i64,
        prune: bool,
        dry_run: bool,
    ) -> Result<Value, ClientError> {
        let (_, plain) = split_app_name(name);
        let body = serde_json::json!({"name": plain, "id": id, "prune": prune, "dryRun": dry_run});
        self.app_call(name, Method::POST, "/rollback", &[], Some(&body)).await
    }

    /// `DELETE /api/v1/applications/{name}/operation`: stop the running operation.
    pub async fn terminate_operation(&self, name: &str) -> Result<(), ClientError> {
        let _: Value = self.app_call(name, Method::DELETE, "/operation", &[], None).await?;
        Ok(())
    }

    /// `GET /api/v1/applications/{name}/resource-tree`.
    pub async fn resource_tree(&self, name: &str) -> Result<ApplicationTree, ClientError> {
        self.app_call(name, Method::GET, "/resource-tree", &[], None).await
    }

    /// `GET /api/v1/applications/{name}/managed-resources`.
    pub async fn managed_resources(&self, name: &str) -> Result<ManagedResources, ClientError> {
        self.app_call(name, Method::GET, "/managed-resources", &[], None).await
    }

    /// `GET /api/v1/applications/{name}/manifests[?revision=…]`.
    pub async fn manifests(&self, name: &str, revision: Option<&str>) -> Result<Manifests, ClientError> {
        let query: Vec<(&str, String)> = revision.map(|r| ("revision", r.to_string())).into_iter().collect();
        self.app_call(name, Method::GET, "/manifests", &query, None).await
    }

    /// `GET /api/v1/projects`: the `{items}` list.
    pub async fn list_projects(&self) -> Result<Vec<Value>, ClientError> {
        let list: ItemList = self.call(Method::GET, "/api/v1/projects", &[], None).await?;
        Ok(list.items)
    }

    /// `GET /api/v1/projects/{name}`.
    pub async fn get_project(&self, name: &str) -> Result<Value, ClientError> {
        let path = format!("/api/v1/projects/{}", Self::path_segment(name));
        self.call(Method::GET, &path, &[], None).await
    }

    /// `PUT /api/v1/projects/{name}` (Argo CD's `{project}`): replaces the spec, refused when the project
    /// changed since `project` was read; answers the stored project.
    pub async fn update_project(&self, name: &str, project: &Value) -> Result<Value, ClientError> {
        let path = format!("/api/v1/projects/{}", Self::path_segment(name));
        self.call(Method::PUT, &path, &[], Some(&serde_json::json!({"project": project}))).await
    }

    /// A call under `/api/v1/applications/{name}`, where a 404 means the application does not exist and a 403
    /// that it does not exist or the caller may not do this. `name` may be `<namespace>/<name>`, Argo CD's
    /// form for an application outside the control namespace: the namespace goes as `appNamespace`.
    async fn app_call<T: DeserializeOwned>(
        &self,
        name: &str,
        method: Method,
        suffix: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<T, ClientError> {
        let (namespace, plain) = split_app_name(name);
        let path = format!("/api/v1/applications/{}{suffix}", Self::path_segment(plain));
        let mut query = query.to_vec();
        if let Some(namespace) = namespace {
            query.push(("appNamespace", namespace.to_string()));
        }
        match self.call(method, &path, &query, body).await {
            Err(ClientError::Api { status: 404, .. }) => {
                Err(ClientError::ApplicationNotFound(name.to_string()))
            }
            // The server answers a missing application as a forbidden one, so names cannot be probed; a
            // refusal with its own reason (a sync window) keeps it.
            Err(ClientError::PermissionDenied(message)) if message == "permission denied" => {
                Err(ClientError::ApplicationDenied(name.to_string()))
            }
            other => other,
        }
    }

    /// `GET /api/v1/session/userinfo`: `{loggedIn, username, ...}` of this client's token.
    pub async fn userinfo(&self) -> Result<Value, ClientError> {
        self.call(Method::GET, "/api/v1/session/userinfo", &[], None).await
    }

    /// `GET /api/v1/repositories`: the `{items}` list (no credentials).
    pub async fn list_repositories(&self) -> Result<Vec<Value>, ClientError> {
        let list: ItemList = self.call(Method::GET, "/api/v1/repositories", &[], None).await?;
        Ok(list.items)
    }

    /// `POST /api/v1/repositories` (the body is Argo CD's Repository); `upsert` replaces a different spec.
    pub async fn create_repository(&self, repo: &Value, upsert: bool) -> Result<Value, ClientError> {
        self.call(Method::POST, "/api/v1/repositories", &[("upsert", upsert.to_string())], Some(repo)).await
    }

    /// `DELETE /api/v1/repositories/{url}`.
    pub async fn delete_repository(&self, url: &str) -> Result<(), ClientError> {
        let path = format!("/api/v1/repositories/{}", Self::path_segment(url));
        let _: Value = self.call(Method::DELETE, &path, &[], None).await?;
        Ok(())
    }

    /// `GET /api/v1/clusters`: the `{items}` list, in-cluster first.
    pub async fn list_clusters(&self) -> Result<Vec<Value>, ClientError> {
        let list: ItemList = self.call(Method::GET, "/api/v1/clusters", &[], None).await?;
        Ok(list.items)
    }

    /// `GET /api/v1/clusters/{server}`.
    pub async fn get_cluster(&self, server: &str) -> Result<Value, ClientError> {
        let path = format!("/api/v1/clusters/{}", Self::path_segment(server));
        self.call(Method::GET, &path, &[], None).await
    }

    /// `DELETE /api/v1/clusters/{server}`.
    pub async fn delete_cluster(&self, server: &str) -> Result<(), ClientError> {
        let path = format!("/api/v1/clusters/{}", Self::path_segment(server));
        let _: Value = self.call(Method::DELETE, &path, &[], None).await?;
        Ok(())
    }

    /// `GET /api/v1/account`: the `{items}` list.
    pub async fn list_accounts(&self) -> Result<Vec<Value>, ClientError> {
        let list: ItemList = self.call(Method::GET, "/api/v1/account", &[], None).await?;
        Ok(list.items)
    }

    /// `GET /api/v1/account/{name}`.
    pub async fn get_account(&self, name: &str) -> Result<Value, ClientError> {
        let path = format!("/api/v1/account/{}", Self::path_segment(name));
        self.call(Method::GET, &path, &[], None).await
    }

    /// `PUT /api/v1/account/password`: `current` is the caller's own password; `account` `None` is the caller.
    pub async fn update_password(
        &self,
        account: Option<&str>,
        current: &str,
        new: &str,
    ) -> Result<(), ClientError> {
        let body = serde_json::json!({
            "name": account.unwrap_or_default(), "currentPassword": current, "newPassword": new,
        });
        let _: Value = self.call(Method::PUT, "/api/v1/account/password", &[], Some(&body)).await?;
        Ok(())
    }

    /// `POST /api/v1/account/{name}/token`: a new API token (`expires_in` `None`: never expires).
    pub async fn create_token(
        &self,
        account: &str,
        expires_in: Option<Duration>,
        id: Option<&str>,
    ) -> Result<String, ClientError> {
        let path = format!("/api/v1/account/{}/token", Self::path_segment(account));
        let body = serde_json::json!({
            "name": account,
            "expiresIn": expires_in.map_or(0, |d| d.as_secs()),
            "id": id.unwrap_or_default(),
        });
        let answer: Value = self.call(Method::POST, &path, &[], Some(&body)).await?;
        answer["token"].as_str().map(str::to_string).ok_or_else(|| ClientError::Decode {
            method: Method::POST,
            path,
            reason: "no token in the answer".into(),
        })
    }

    /// `DELETE /api/v1/account/{name}/token/{id}`.
    pub async fn delete_token(&self, account: &str, id: &str) -> Result<(), ClientError> {
        let path =
            format!("/api/v1/account/{}/token/{}", Self::path_segment(account), Self::path_segment(id));
        let _: Value = self.call(Method::DELETE, &path, &[], None).await?;
        Ok(())
    }

    /// `PUT /api/v1/applications/{name}/spec`: replaces the spec; answers the stored one.
    pub async fn update_application_spec(&self, name: &str, spec: &Value) -> Result<Value, ClientError> {
        self.app_call(name, Method::PUT, "/spec", &[], Some(spec)).await
    }

    /// The server's control namespace (`controllerNamespace` of `GET /api/v1/settings`, given to a
    /// logged-in caller); `None` when the server does not say, as an older berth.
    pub async fn control_namespace(&self) -> Result<Option<String>, ClientError> {
        let settings: Value = self.call(Method::GET, "/api/v1/settings", &[], None).await?;
        Ok(settings["controllerNamespace"].as_str().filter(|ns| !ns.is_empty()).map(str::to_string))
    }

    /// One path segment, percent-encoded as Argo CD's clients encode a repository or server URL into it.
    pub(crate) fn path_segment(text: &str) -> String {
        text.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    }
}

/// An application's name as the CLI takes it, `[<namespace>/]<name>`: the namespace (none: the server's
/// control namespace) and the name.
pub(crate) fn split_app_name(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((namespace, plain)) if !namespace.is_empty() => (Some(namespace), plain),
        Some((_, plain)) => (None, plain),
        None => (None, name),
    }
}

/// `refresh=normal|hard` on a get.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Refresh {
    Normal,
    Hard,
}

impl Refresh {
    fn as_str(self) -> &'static str {
        match self {
            Refresh::Normal => "normal",
            Refresh::Hard => "hard",
        }
    }
}

#[derive(Deserialize)]
struct ItemList {
    #[serde(default, deserialize_with = "nullable")]
    items: Vec<Value>,
}

/// Argo CD's ApplicationSyncRequest.
#[derive(Serialize, Debug, Default, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SyncRequest {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    pub prune: bool,
    pub dry_run: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<SyncResource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync_options: Option<SyncOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strategy: Option<Value>,
}

/// One object to sync when not all are (`--resource GROUP:KIND:[NAMESPACE/]NAME`).
#[derive(Serialize, Debug, Default, Clone, PartialEq)]
pub struct SyncResource {
    pub group: String,
    pub kind: String,
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
}

impl std::str::FromStr for SyncResource {
    type Err = String;

    /// `GROUP:KIND:NAME` or `GROUP:KIND:NAMESPACE/NAME`, the group empty for the core API (`:Service:web`).
    fn from_str(text: &str) -> Result<Self, String> {
        let parts: Vec<&str> = text.split(':').collect();
        let [group, kind, name] = parts.as_slice() else {
            return Err(format!("expected GROUP:KIND:NAME or GROUP:KIND:NAMESPACE/NAME, got {text:?}"));
        };
        let (namespace, name) = name.split_once('/').unwrap_or(("", name));
        if kind.is_empty() || name.is_empty() {
            return Err(format!("expected GROUP:KIND:NAME with a kind and a name, got {text:?}"));
        }
        Ok(SyncResource {
            group: group.to_string(),
            kind: kind.to_string(),
            name: name.to_string(),
            namespace: namespace.to_string(),
        })
    }
}

#[derive(Serialize, Debug, Default, Clone, PartialEq)]
pub struct SyncOptions {
    pub items: Vec<String>,
}

/// Argo CD's ApplicationTree.
#[derive(Deserialize, Debug, Default, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationTree {
    #[serde(default, deserialize_with = "nullable")]
    pub nodes: Vec<ResourceNode>,
    #[serde(default, deserialize_with = "nullable")]
    pub orphaned_nodes: Vec<ResourceNode>,
}

/// One object of the tree: a managed resource or something it owns (a ReplicaSet, a Pod…).
#[derive(Deserialize, Debug, Default, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ResourceNode {
    #[serde(default, deserialize_with = "nullable")]
    pub group: String,
    #[serde(default, deserialize_with = "nullable")]
    pub version: String,
    #[serde(default, deserialize_with = "nullable")]
    pub kind: String,
    #[serde(default, deserialize_with = "nullable")]
    pub namespace: String,
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    #[serde(default, deserialize_with = "nullable")]
    pub uid: String,
    #[serde(default, deserialize_with = "nullable")]
    pub parent_refs: Vec<ResourceRef>,
    #[serde(default)]
    pub health: Option<NodeHealth>,
    #[serde(default, deserialize_with = "nullable")]
    pub info: Vec<InfoItem>,
    #[serde(default, deserialize_with = "nullable")]
    pub images: Vec<String>,
}

#[derive(Deserialize, Debug, Default, Clone, PartialEq)]
pub struct ResourceRef {
    #[serde(default, deserialize_with = "nullable")]
    pub group: String,
    #[serde(default, deserialize_with = "nullable")]
    pub kind: String,
    #[serde(default, deserialize_with = "nullable")]
    pub namespace: String,
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    #[serde(default, deserialize_with = "nullable")]
    pub uid: String,
}

#[derive(Deserialize, Debug, Default, Clone, PartialEq)]
pub struct NodeHealth {
    #[serde(default, deserialize_with = "nullable")]
    pub status: String,
    #[serde(default, deserialize_with = "nullable")]
    pub message: String,
}

#[derive(Deserialize, Debug, Default, Clone, PartialEq)]
pub struct InfoItem {
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    #[serde(default, deserialize_with = "nullable")]
    pub value: String,
}

/// Argo CD's ManagedResourcesResponse.
#[derive(Deserialize, Debug, Default, Clone, PartialEq)]
pub struct ManagedResources {
    #[serde(default, deserialize_with = "nullable")]
    pub items: Vec<ResourceDiff>,
}

/// One managed object; the states are JSON documents in strings (`"null"` when absent), as Argo CD sends them.
#[derive(Deserialize, Debug, Default, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ResourceDiff {
    #[serde(default, deserialize_with = "nullable")]
    pub group: String,
    #[serde(default, deserialize_with = "nullable")]
    pub kind: String,
    #[serde(default, deserialize_with = "nullable")]
    pub namespace: String,
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    #[serde(default, deserialize_with = "nullable")]
    pub live_state: String,
    #[serde(default, deserialize_with = "nullable")]
    pub target_state: String,
    #[serde(default, deserialize_with = "nullable")]
    pub normalized_live_state: String,
    #[serde(default, deserialize_with = "nullable")]
    pub predicted_live_state: String,
    #[serde(default, deserialize_with = "nullable")]
    pub hook: bool,
    #[serde(default, deserialize_with = "nullable")]
    pub modified: bool,
}

/// Argo CD's ManifestResponse.
#[derive(Deserialize, Debug, Default, Clone, PartialEq)]
pub struct Manifests {
    #[serde(default, deserialize_with = "nullable")]
    pub manifests: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub revision: String,
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A field that may be absent or `null` reads as its default.
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// The message of an Argo CD error body `{error, code, message}`, else the text, else the status.
fn error_message(text: &str, status: u16) -> String {
    let body: Option<Value> = serde_json::from_str(text).ok();
    let field = |key: &str| {
        body.as_ref()
            .and_then(|b| b.get(key))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(String::from)
    };
    field("message").or_else(|| field("error")).unwrap_or_else(|| match text.trim() {
        "" => reqwest::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .map_or_else(|| format!("HTTP {status}"), |r| format!("HTTP {status} {r}")),
        text => text.to_string(),
    })
}

fn api_error(status: u16, text: &str, method: &Method, path: &str, server: &str) -> ClientError {
    let message = error_message(text, status);
    let code = serde_json::from_str::<Value>(text).ok().and_then(|b| b.get("code").and_then(Value::as_i64));
    match status {
        401 => ClientError::Unauthenticated { server: server.to_string(), message },
        403 => ClientError::PermissionDenied(message),
        // berth's fallback route, or a method the path does not have, or gRPC's Unimplemented.
        404 if message == "no such API path" => {
            ClientError::Unsupported { method: method.clone(), path: path.to_string() }
        }
        405 | 501 => ClientError::Unsupported { method: method.clone(), path: path.to_string() },
        _ => ClientError::Api { status, code, message },
    }
}

/// Names the flag that fixes the two usual TLS mismatches.
fn with_transport_hint(reason: String) -> String {
    if reason.contains("InvalidContentType") {
        format!("{reason} (is it a plain HTTP server? pass --plaintext)")
    } else if reason.contains("certificate") {
        format!("{reason} (for a self-signed certificate pass --insecure)")
    } else {
        reason
    }
}

/// An error and its causes on one line (reqwest's own text omits the cause, e.g. "connection refused").
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::ServerContext;

    fn config_with(server: &str, token: Option<&str>) -> Config {
        let mut config = Config::default();
        config.upsert(ServerContext {
            name: server.into(),
            server: server.into(),
            token: token.map(Into::into),
            plaintext: true,
            ..Default::default()
        });
        config
    }

    #[test]
    fn flags_override_the_context_and_the_context_fills_the_rest() {
        let config = config_with("127.0.0.1:8080", Some("ctx-token"));
        let target = ConnectionArgs::default().target_in(&config).unwrap();
        assert_eq!(
            target,
            Target {
                server: "127.0.0.1:8080".into(),
                token: Some("ctx-token".into()),
                plaintext: true,
                insecure: false,
                renewal: None,
            }
        );
        let args = ConnectionArgs { auth_token: Some("flag".into()), insecure: true, ..Default::default() };
        let target = args.target_in(&config).unwrap();
        assert_eq!((target.token.as_deref(), target.insecure), (Some("flag"), true));
        // Another server: the context's token is not sent there.
        let args = ConnectionArgs { server: Some("elsewhere:443".into()), ..Default::default() };
        let target = args.target_in(&config).unwrap();
        assert_eq!((target.token, target.plaintext), (None, false));
        assert!(matches!(
            ConnectionArgs::default().target_in(&Config::default()),
            Err(ClientError::NotLoggedIn)
        ));
    }

    #[test]
    fn tls_mismatches_name_the_flag_that_fixes_them() {
        let hint = with_transport_hint("received corrupt message of type InvalidContentType".into());
        assert!(hint.ends_with("pass --plaintext)"), "{hint}");
        let hint = with_transport_hint("invalid peer certificate: UnknownIssuer".into());
        assert!(hint.ends_with("pass --insecure)"), "{hint}");
        assert_eq!(with_transport_hint("Connection refused".into()), "Connection refused");
    }

    #[test]
    fn base_urls_follow_plaintext_unless_a_scheme_is_given() {
        assert_eq!(base_url("h:8080", true), "http://h:8080");
        assert_eq!(base_url("h:8080/", false), "https://h:8080");
        assert_eq!(base_url("http://h", false), "http://h");
    }

    #[test]
    fn server_errors_become_human_errors() {
        let body = r#"{"error":"applications.argoproj.io \"x\" not found","code":5,"message":"applications.argoproj.io \"x\" not found"}"#;
        match api_error(404, body, &Method::GET, "/api/v1/applications/x", "s") {
            ClientError::Api { status: 404, code: Some(5), message } => {
                assert!(message.contains("\"x\" not found"))
            }
            other => panic!("{other:?}"),
        }
        let missing_route = r#"{"error":"no such API path","code":5,"message":"no such API path"}"#;
        let error = api_error(404, missing_route, &Method::POST, "/api/v1/applications/x/sync", "s");
        assert_eq!(
            error.to_string(),
            "the server does not support POST /api/v1/applications/x/sync (is it an older berth?)"
        );
        let error = api_error(401, r#"{"code":16,"message":"invalid session"}"#, &Method::GET, "/", "h:1");
        assert_eq!(
            error.to_string(),
            "the session for h:1 is not valid (invalid session): run `berth login h:1`"
        );
        assert_eq!(api_error(500, "", &Method::GET, "/", "s").to_string(), "HTTP 500 Internal Server Error");
        assert_eq!(
            api_error(502, "bad gateway text", &Method::GET, "/", "s").to_string(),
            "bad gateway text"
        );
    }

    #[test]
    fn resources_read_as_argocd_writes_them() {
        let r: SyncResource = "apps:Deployment:web/api".parse().unwrap();
        assert_eq!(
            (r.group.as_str(), r.kind.as_str(), r.namespace.as_str(), r.name.as_str()),
            ("apps", "Deployment", "web", "api")
        );
        let r: SyncResource = ":Service:web".parse().unwrap();
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            serde_json::json!({"group": "", "kind": "Service", "name": "web"})
        );
        assert!("Deployment:web".parse::<SyncResource>().is_err());
        assert!("apps::web".parse::<SyncResource>().is_err());
    }

    #[test]
    fn a_namespace_before_a_slash_is_the_apps_namespace() {
        assert_eq!(split_app_name("web"), (None, "web"));
        assert_eq!(split_app_name("team-a/web"), (Some("team-a"), "web"));
        assert_eq!(split_app_name("/web"), (None, "web"));
    }

    #[test]
    fn a_sync_request_has_argo_cds_field_names() {
        let request = SyncRequest {
            name: "web".into(),
            revision: Some("main".into()),
            prune: true,
            dry_run: false,
            resources: vec![":Service:web".parse().unwrap()],
            sync_options: Some(SyncOptions { items: vec!["CreateNamespace=true".into()] }),
            strategy: None,
        };
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            serde_json::json!({"name": "web", "revision": "main", "prune": true, "dryRun": false,
                "resources": [{"group": "", "kind": "Service", "name": "web"}],
                "syncOptions": {"items": ["CreateNamespace=true"]}})
        );
    }

    #[test]
    fn trees_and_managed_resources_tolerate_nulls_and_missing_fields() {
        let tree: ApplicationTree = serde_json::from_value(serde_json::json!({
            "nodes": [{"kind": "Pod", "name": "p", "parentRefs": null, "health": {"status": "Healthy"}, "images": null}],
            "orphanedNodes": null
        }))
        .unwrap();
        assert_eq!(tree.nodes[0].kind, "Pod");
        assert_eq!(tree.nodes[0].health.as_ref().unwrap().status, "Healthy");
        let resources: ManagedResources = serde_json::from_value(serde_json::json!({
            "items": [{"kind": "Service", "name": "web", "liveState": "null", "targetState": null}]
        }))
        .unwrap();
        assert_eq!(resources.items[0].live_state, "null");
        assert_eq!(resources.items[0].target_state, "");
    }
}
