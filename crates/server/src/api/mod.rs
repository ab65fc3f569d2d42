//! The HTTP server of `berth run`: Argo CD's REST paths and JSON shapes, `/healthz`, and errors as
//! `{error, code, message}` with gRPC-style codes, as Argo CD's gateway writes them.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use berth_api::Application;
use futures::StreamExt;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use std::net::SocketAddr;
use std::sync::Arc;

mod apps;
pub mod harden;
mod members;
mod settings;
mod stream;

/// Where and how the server listens.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The control namespace (Applications, AppProjects, argocd-cm, argocd-secret).
    pub namespace: String,
    pub addr: SocketAddr,
    /// Plain HTTP (`--insecure`); otherwise TLS with argocd-server-tls or a generated certificate.
    pub insecure: bool,
    /// Also serve `/metrics` on the API port. Off by default: the metrics list every app, project and repo
    /// to anyone, so they go on a separate listener ([`serve_metrics`]), as Argo CD's metrics port.
    pub metrics_on_api_port: bool,
}

/// What every handler reads.
pub struct Shared {
    pub client: kube::Client,
    pub apps: reflector::Store<Application>,
    pub namespace: String,
    pub sessions: Arc<crate::auth::SessionManager>,
    /// argocd-rbac-cm's policy, replaced when the ConfigMap changes.
    pub rbac: Arc<crate::rbac::LiveEnforcer>,
    /// Every change to an Application, from the same watch that fills `apps` (the stream's fan-out).
    pub(crate) events: tokio::sync::broadcast::Sender<Arc<stream::AppEvent>>,
    /// argocd-cm's HTTP settings (framing headers, API content types), replaced when it changes.
    http: Arc<std::sync::RwLock<Arc<harden::HttpSettings>>>,
}

impl Shared {
    /// Bootstraps the admin account (generating its initial password on the first start), reads
    /// argocd-rbac-cm, and starts watching the Applications.
    pub async fn start(client: kube::Client, namespace: &str) -> Result<Shared, String> {
        let boot = crate::auth::bootstrap(&client, namespace).await.map_err(|e| format!("accounts: {e}"))?;
        if boot.generated_admin_password {
            tracing::info!(
                "generated the admin password: kubectl -n {namespace} get secret argocd-initial-admin-secret -o jsonpath='{{.data.password}}' | base64 -d"
            );
        }
        let maps: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client.clone(), namespace);
        let rbac_cm =
            maps.get_opt("argocd-rbac-cm").await.ok().flatten().and_then(|c| c.data).unwrap_or_default();
        let rbac =
            crate::rbac::Enforcer::from_config_map(&rbac_cm).map_err(|e| format!("argocd-rbac-cm: {e}"))?;
        let argocd_cm = maps
            .get_opt(crate::auth::ARGOCD_CM)
            .await
            .ok()
            .flatten()
            .and_then(|c| c.data)
            .unwrap_or_default();
        let http =
            Arc::new(std::sync::RwLock::new(Arc::new(harden::HttpSettings::from_config_map(&argocd_cm))));
        let (apps, events) = watch_applications(client.clone(), namespace);
        let sessions = Arc::new(crate::auth::SessionManager::new(boot.secret_key, boot.accounts));
        let rbac = Arc::new(crate::rbac::LiveEnforcer::new(rbac));
        tokio::spawn(watch_settings(
            client.clone(),
            namespace.to_string(),
            sessions.clone(),
            rbac.clone(),
            http.clone(),
        ));
        Ok(Shared { apps, events, client, namespace: namespace.into(), sessions, rbac, http })
    }

    /// argocd-cm's HTTP settings now.
    pub(crate) fn http_settings(&self) -> Arc<harden::HttpSettings> {
        self.http.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The caller of a request: a token in `Authorization: Bearer …` or Argo CD's `argocd.token` cookie.
    pub(crate) fn caller(&self, headers: &axum::http::HeaderMap) -> Result<crate::rbac::Subject, ApiError> {
        let token =
            session_token(headers).ok_or_else(|| ApiError::unauthenticated("no session information"))?;
        let claims = self.sessions.verify(token).map_err(|_| ApiError::unauthenticated("invalid session"))?;
        Ok(crate::rbac::Subject::user(claims.account))
    }
}

/// The token of a request: `Authorization: Bearer …` or Argo CD's `argocd.token` cookie.
fn session_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    bearer.or_else(|| {
        headers
            .get_all(axum::http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|c| c.split(';').map(str::trim).find_map(|kv| kv.strip_prefix("argocd.token=")))
    })
}

/// Follows argocd-rbac-cm (the policy), argocd-cm and argocd-secret (accounts, passwords, tokens, the
/// signing key): a change applies to the next request without a restart. A policy that does not load is
/// logged with its error and the last good one stays.
async fn watch_settings(
    client: kube::Client,
    namespace: String,
    sessions: Arc<crate::auth::SessionManager>,
    rbac: Arc<crate::rbac::LiveEnforcer>,
    http: Arc<std::sync::RwLock<Arc<harden::HttpSettings>>>,
) {
    use k8s_openapi::api::core::v1::{ConfigMap, Secret};
    let maps = watcher(Api::<ConfigMap>::namespaced(client.clone(), &namespace), watcher::Config::default())
        .default_backoff()
        .filter_map(|e| async move {
            match e.ok()? {
                watcher::Event::Apply(cm) | watcher::Event::InitApply(cm) => {
                    Some((cm.metadata.name.unwrap_or_default(), cm.data.unwrap_or_default()))
                }
                watcher::Event::Delete(cm) => {
                    Some((cm.metadata.name.unwrap_or_default(), Default::default()))
                }
                _ => None,
            }
        })
        .boxed();
    let secrets = watcher(
        Api::<Secret>::namespaced(client.clone(), &namespace),
        watcher::Config::default().fields("metadata.name=argocd-secret"),
    )
    .default_backoff()
    .filter_map(|e| async move {
        match e.ok()? {
            watcher::Event::Apply(_) | watcher::Event::InitApply(_) | watcher::Event::Delete(_) => {
                Some(("argocd-secret".to_string(), Default::default()))
            }
            _ => None,
        }
    })
    .boxed();
    let mut changes = futures::stream::select(maps, secrets);
    let mut seen: std::collections::HashMap<String, std::collections::BTreeMap<String, String>> =
        Default::default();
    while let Some((name, data)) = changes.next().await {
        match name.as_str() {
            "argocd-rbac-cm" => {
                if seen.get(&name) == Some(&data) {
                    continue;
                }
                match rbac.reload(&data) {
                    Ok(()) => tracing::info!("argocd-rbac-cm: policy reloaded"),
                    Err(e) => tracing::warn!("argocd-rbac-cm: {e}; the previous policy stays in force"),
                }
                seen.insert(name, data);
            }
            "argocd-cm" | "argocd-secret" => {
                if name == "argocd-cm" {
                    if seen.get(&name) == Some(&data) {
                        continue;
                    }
                    *http.write().unwrap_or_else(|e| e.into_inner()) =
                        Arc::new(harden::HttpSettings::from_config_map(&data));
                    seen.insert(name, data);
                }
                match crate::auth::load(&client, &namespace).await {
                    Ok((key, accounts)) => sessions.replace(key, accounts),
                    Err(e) => tracing::warn!("accounts: {e}; the previous accounts stay in force"),
                }
            }
            _ => {}
        }
    }
}

/// An error as Argo CD's API returns it.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    /// The gRPC code Argo CD puts in `code` (5 not found, 7 permission denied, 16 unauthenticated...).
    pub code: u16,
    pub message: String,
}

impl ApiError {
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError { status: StatusCode::NOT_FOUND, code: 5, message: message.into() }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError { status: StatusCode::BAD_REQUEST, code: 3, message: message.into() }
    }
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        ApiError { status: StatusCode::UNAUTHORIZED, code: 16, message: message.into() }
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError { status: StatusCode::FORBIDDEN, code: 7, message: message.into() }
    }
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError { status: StatusCode::INTERNAL_SERVER_ERROR, code: 13, message: message.into() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": self.message, "code": self.code, "message": self.message});
        (self.status, Json(body)).into_response()
    }
}

/// The routes (state included), for `serve` and for tests that drive the router directly.
pub fn router(shared: Arc<Shared>) -> Router {
    use axum::extract::DefaultBodyLimit;
    let whole_app = DefaultBodyLimit::max(harden::APPLICATION_BODY_LIMIT);
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/api/version", get(version))
        .route(
            "/api/v1/session",
            axum::routing::post(login).layer(DefaultBodyLimit::max(harden::LOGIN_BODY_LIMIT)).delete(logout),
        )
        .route("/api/v1/session/userinfo", get(userinfo))
        .route("/api/v1/applications", get(list_applications).post(create_application).layer(whole_app))
        .route(
            "/api/v1/applications/{name}",
            get(apps::get_application)
                .put(apps::update_application)
                .patch(apps::patch_application)
                .delete(delete_application)
                .layer(whole_app),
        )
        .route("/api/v1/applications/{name}/spec", axum::routing::put(apps::update_spec).layer(whole_app))
        .route("/api/v1/applications/{name}/revisions/{revision}/metadata", get(apps::revision_metadata))
        .route("/api/v1/applications/{name}/events", get(apps::events))
        .route("/api/v1/applications/{name}/resource", get(apps::resource))
        .route("/api/v1/applications/{name}/sync", axum::routing::post(sync_application))
        .route("/api/v1/applications/{name}/resource-tree", get(resource_tree))
        .route("/api/v1/applications/{name}/managed-resources", get(managed_resources))
        .route("/api/v1/applications/{name}/manifests", get(manifests))
        .route("/api/v1/applications/{name}/rollback", axum::routing::post(rollback_application))
        .route("/api/v1/applications/{name}/operation", axum::routing::delete(terminate_operation))
        .route("/api/v1/projects", get(list_projects))
        .route("/api/webhook", axum::routing::post(webhook))
        .merge(settings::routes())
        .merge(stream::routes())
        .fallback(crate::ui::serve)
        // Bodies are read through the limit, so a large one is refused after that many bytes, never buffered.
        .layer(DefaultBodyLimit::max(harden::JSON_BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(shared.clone(), harden::guard))
        .with_state(shared)
}

/// `GET /metrics` alone, for the metrics listener.
pub fn metrics_router() -> Router {
    Router::new().route("/metrics", get(metrics)).route("/healthz", get(|| async { "ok" }))
}

/// Serves [`metrics_router`] over plain HTTP on `addr` (Argo CD's server metrics port is 8083) until
/// `shutdown` resolves.
pub async fn serve_metrics(
    addr: SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    serve_metrics_on(listener, shutdown).await
}

/// [`serve_metrics`] on a listener bound by the caller.
pub async fn serve_metrics_on(
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    tracing::info!(addr = %listener.local_addr()?, "metrics listening (plain HTTP)");
    serve_plain(listener, metrics_router(), shutdown).await
}

/// Watches the Applications and serves until `shutdown` resolves: TLS unless `insecure`.
pub async fn serve(
    client: kube::Client,
    config: ServerConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.addr).await?;
    serve_listener(client, config, listener, shutdown).await
}

/// `serve` on a listener bound by the caller (`config.addr` is not used).
pub async fn serve_listener(
    client: kube::Client,
    config: ServerConfig,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let shared =
        Arc::new(Shared::start(client.clone(), &config.namespace).await.map_err(std::io::Error::other)?);
    let mut app = router(shared);
    if config.metrics_on_api_port {
        app = app.merge(Router::new().route("/metrics", get(metrics)));
    }
    if config.insecure {
        tracing::info!(addr = %listener.local_addr()?, "API server listening (plain HTTP)");
        return serve_plain(listener, app, shutdown).await;
    }
    let (pem, kept) = crate::tls::initial(&client, &config.namespace).await.map_err(std::io::Error::other)?;
    let key = crate::tls::certified_key(&pem).map_err(std::io::Error::other)?;
    tracing::info!(certificate = %pem.source, "TLS");
    let resolver = Arc::new(crate::tls::Resolver::new(key));
    tokio::spawn(crate::tls::watch(client, config.namespace.clone(), resolver.clone(), kept));
    serve_tls(listener, app, resolver, shutdown).await
}

/// Serves on a listener bound by the caller (tests bind port 0 and read the port back), plain HTTP.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    tracing::info!(addr = %listener.local_addr()?, "API server listening (plain HTTP)");
    serve_plain(listener, router(shared), shutdown).await
}

/// How long open connections (streams, long requests) may finish after a shutdown signal.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Accepts connections until `shutdown`, each served by `serve` under the graceful-shutdown watcher;
/// connections still open [`SHUTDOWN_GRACE`] after the signal are cut (a stream never ends by itself).
async fn accept_loop<F, Fut>(
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    serve: F,
) -> std::io::Result<()>
where
    F: Fn(tokio::net::TcpStream, hyper_util::server::graceful::Watcher) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a connection");
                    // Out of file descriptors, say: give the others a moment instead of spinning.
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        tokio::spawn(serve(stream, graceful.watcher()));
    }
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await;
    Ok(())
}

/// Serves `app` over plain HTTP with [`harden::connection_builder`]'s timeouts.
async fn serve_plain(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::TokioIo;
    use hyper_util::service::TowerToHyperService;
    accept_loop(listener, shutdown, move |stream, watcher| {
        let app = app.clone();
        async move {
            let builder = harden::connection_builder();
            let conn =
                builder.serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(app));
            let _ = watcher.watch(conn.into_owned()).await;
        }
    })
    .await
}

/// Serves TLS on a listener bound by the caller. The same port answers plain HTTP with a redirect to
/// `https://` (and `/healthz` directly, for probes), as argocd-server does.
pub async fn serve_tls_on(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    resolver: Arc<crate::tls::Resolver>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_tls(listener, router(shared), resolver, shutdown).await
}

async fn serve_tls(
    listener: tokio::net::TcpListener,
    app: Router,
    resolver: Arc<crate::tls::Resolver>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::TokioIo;
    use hyper_util::service::TowerToHyperService;
    let acceptor =
        tokio_rustls::TlsAcceptor::from(crate::tls::server_config(resolver).map_err(std::io::Error::other)?);
    tracing::info!(addr = %listener.local_addr()?, "API server listening (HTTPS)");
    let app = app.layer(axum::Extension(harden::ServedOverTls));
    let redirect = Router::new().route("/healthz", get(|| async { "ok" })).fallback(redirect_to_https);
    accept_loop(listener, shutdown, move |stream, watcher| {
        let (acceptor, app, redirect) = (acceptor.clone(), app.clone(), redirect.clone());
        async move {
            // A TLS connection opens with a handshake record (0x16); anything else is plain HTTP.
            let mut first = [0u8; 1];
            let peeked = tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.peek(&mut first)).await;
            if !matches!(peeked, Ok(Ok(1))) {
                return;
            }
            let builder = harden::connection_builder();
            if first[0] == 0x16 {
                let Ok(Ok(tls)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                else {
                    return;
                };
                let conn =
                    builder.serve_connection_with_upgrades(TokioIo::new(tls), TowerToHyperService::new(app));
                let _ = watcher.watch(conn.into_owned()).await;
            } else {
                let conn = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(redirect));
                let _ = watcher.watch(conn.into_owned()).await;
            }
        }
    })
    .await
}

/// How long a connection may take to send its first byte and finish the TLS handshake.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

async fn redirect_to_https(headers: axum::http::HeaderMap, uri: axum::http::Uri) -> Response {
    let Some(host) = headers.get(axum::http::header::HOST).and_then(|h| h.to_str().ok()) else {
        return ApiError::bad_request("this server speaks HTTPS; plain HTTP requests need a Host header")
            .into_response();
    };
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    axum::response::Redirect::temporary(&format!("https://{host}{path}")).into_response()
}

/// The Applications of `namespace`, kept by a watch (the store fills in the background), and each change
/// that watch sees, broadcast to the streams.
pub(crate) fn watch_applications(
    client: kube::Client,
    namespace: &str,
) -> (reflector::Store<Application>, tokio::sync::broadcast::Sender<Arc<stream::AppEvent>>) {
    let api: Api<Application> = Api::namespaced(client, namespace);
    let (store, writer) = reflector::store();
    let (events, _) = tokio::sync::broadcast::channel(stream::EVENT_BUFFER);
    let mut feed = stream::ChangeFeed::new(store.clone(), events.clone());
    // managedFields are server-side apply's bookkeeping, often a third of an app; the API never serves them.
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(|app| app.metadata.managed_fields = None)
        .reflect(writer);
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            if let Ok(event) = event {
                feed.observe(event);
            }
        }
    });
    (store, events)
}

/// Prometheus's text format: the controller's metrics (Argo CD's names where it has them).
async fn metrics() -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        berth_controller::metrics::global().render(),
    )
}

/// `POST /api/webhook`: a git host's push; refreshes exactly the Applications it affects (in the controller's
/// queue when it runs in this process, else with Argo CD's refresh annotation, as Argo CD's server does).
/// A bad signature is 401 and refreshes nothing.
async fn webhook(
    State(shared): State<Arc<Shared>>,
    headers: axum::http::HeaderMap,
    body: axum::body::Body,
) -> Result<Json<serde_json::Value>, ApiError> {
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(shared.client.clone(), &shared.namespace);
    let data: std::collections::BTreeMap<String, String> = match secrets.get_opt("argocd-secret").await {
        Ok(Some(secret)) => secret
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
            .collect(),
        Ok(None) => Default::default(),
        Err(e) => return Err(ApiError::internal(format!("reading argocd-secret: {e}"))),
    };
    let maps: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(shared.client.clone(), &shared.namespace);
    let cm = maps.get_opt("argocd-cm").await.ok().flatten().and_then(|c| c.data).unwrap_or_default();
    let limit = crate::webhook::max_payload_bytes(&cm);
    // Read through argocd-cm's limit: a larger payload is refused after that many bytes, not buffered whole.
    let body = axum::body::to_bytes(body, limit.saturating_add(1)).await.map_err(|_| ApiError {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        code: 3,
        message: format!("webhook payload is larger than {limit} bytes (argocd-cm webhook.maxPayloadSizeMB)"),
    })?;
    let event = match crate::webhook::parse(
        &headers,
        &body,
        &crate::webhook::WebhookSecrets::from_secret_data(&data),
        limit,
    ) {
        Ok(event) => event,
        Err(crate::webhook::WebhookError::Ignored(what)) => {
            return Ok(Json(serde_json::json!({"ignored": what})));
        }
        Err(e) => {
            let status = e.status();
            let code = if status == StatusCode::UNAUTHORIZED { 16 } else { 3 };
            return Err(ApiError { status, code, message: e.to_string() });
        }
    };
    let apps = shared.apps.state();
    let names = crate::webhook::affected_apps(&event, apps.iter().map(|a| &**a));
    tracing::info!(provider = %event.provider, revision = %event.revision, apps = names.len(), "webhook: refreshing");
    for name in &names {
        request_refresh(&shared, name, false).await;
    }
    Ok(Json(serde_json::json!({"refreshed": names})))
}

/// Refreshes an application: straight into the queue of the controller running in this process (no write
/// to the Application), else through Argo CD's refresh annotation, which any controller acts on.
async fn request_refresh(shared: &Shared, name: &str, hard: bool) {
    if let Some(controller) = berth_controller::in_process(&shared.namespace) {
        controller.request_refresh(name, hard);
        return;
    }
    let api: Api<Application> = Api::namespaced(shared.client.clone(), &shared.namespace);
    let level = if hard { "hard" } else { "normal" };
    let patch = serde_json::json!({"metadata": {"annotations": {REFRESH_ANNOTATION: level}}});
    if let Err(e) =
        api.patch(name, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch)).await
    {
        tracing::warn!(app = %name, error = %e, "refresh request failed");
    }
}

async fn version() -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "Version": format!("v{}", env!("CARGO_PKG_VERSION")),
        "Platform": format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
        "KustomizeVersion": "",
        "HelmVersion": "",
    }))
}

/// Argo CD's ApplicationQuery, as the list and the stream read it, with Kubernetes' `limit` and `continue`.
/// Keys may repeat (`projects=a&projects=b`, Argo CD's form), so it is read from the pairs, not derived.
#[derive(Default, Debug)]
pub struct ListQuery {
    pub(crate) name: Option<String>,
    /// From `projects` (or the legacy `project`), repeated or comma-separated.
    projects: Vec<String>,
    search: Option<String>,
    selector: Vec<(String, Option<String>, bool)>,
    /// Apps with an older resourceVersion are not streamed; as in Argo CD, a non-number counts as 0.
    pub(crate) resource_version: Option<u64>,
    /// Items a page; none (or 0) is all.
    limit: Option<usize>,
    /// From `continue`: the last name of the previous page.
    after: Option<String>,
}

impl ListQuery {
    pub(crate) fn from_pairs(pairs: Vec<(String, String)>) -> Result<ListQuery, ApiError> {
        use base64::Engine;
        let mut query = ListQuery::default();
        for (key, value) in pairs {
            match key.as_str() {
                "name" if !value.is_empty() => query.name = Some(value),
                "projects" | "project" => query
                    .projects
                    .extend(value.split(',').map(str::trim).filter(|p| !p.is_empty()).map(str::to_string)),
                "search" if !value.is_empty() => query.search = Some(value),
                "selector" => query.selector.extend(parse_selector(&value)?),
                "resourceVersion" if !value.is_empty() => {
                    query.resource_version = Some(value.parse().unwrap_or(0));
                }
                "limit" if !value.is_empty() => {
                    let limit: usize = value
                        .parse()
                        .map_err(|_| ApiError::bad_request(format!("limit {value:?} is not a number")))?;
                    query.limit = Some(limit).filter(|l| *l > 0);
                }
                "continue" if !value.is_empty() => {
                    let name = base64::engine::general_purpose::URL_SAFE_NO_PAD
                        .decode(value.as_bytes())
                        .ok()
                        .and_then(|bytes| String::from_utf8(bytes).ok())
                        .filter(|name| !name.is_empty())
                        .ok_or_else(|| {
                            ApiError::bad_request(format!("continue token {value:?} is not valid"))
                        })?;
                    query.after = Some(name);
                }
                _ => {}
            }
        }
        Ok(query)
    }

    /// Does the query select `app` (name, projects, search, selector)? RBAC is checked apart.
    pub(crate) fn matches(&self, app: &Application) -> bool {
        let name = app.metadata.name.as_deref().unwrap_or_default();
        let project = if app.spec.project.is_empty() { "default" } else { &app.spec.project };
        self.name.as_deref().is_none_or(|n| n == name)
            && (self.projects.is_empty() || self.projects.iter().any(|p| p == project))
            && self.search.as_deref().is_none_or(|s| name.contains(s))
            && matches_selector(&self.selector, app.metadata.labels.as_ref())
    }

    /// Is `app` older than the query's `resourceVersion`?
    pub(crate) fn is_older(&self, app: &Application) -> bool {
        let version = app.metadata.resource_version.as_deref().and_then(|v| v.parse::<u64>().ok());
        matches!((self.resource_version, version), (Some(min), Some(v)) if v < min)
    }

    fn continue_token(name: &str) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(name)
    }
}

#[derive(serde::Deserialize)]
struct LoginRequest {
    username: String,
    password: String,
}

/// `POST /api/v1/session`: a token for a local account (the admin's initial password is in
/// argocd-initial-admin-secret). Also set as Argo CD's `argocd.token` cookie.
async fn login(
    State(shared): State<Arc<Shared>>,
    tls: Option<axum::Extension<harden::ServedOverTls>>,
    Json(request): Json<LoginRequest>,
) -> Response {
    let outcome =
        tokio::task::spawn_blocking(move || shared.sessions.login(&request.username, &request.password))
            .await;
    match outcome {
        Ok(Ok(token)) => (
            [(axum::http::header::SET_COOKIE, session_cookie(&token, tls.is_some()))],
            Json(serde_json::json!({"token": token})),
        )
            .into_response(),
        Ok(Err(e)) => {
            ApiError { status: e.http_status(), code: e.grpc_code(), message: e.to_string() }.into_response()
        }
        Err(e) => ApiError::internal(e.to_string()).into_response(),
    }
}

/// Argo CD's `argocd.token` cookie: never readable by scripts, never sent from another site's page, and
/// `Secure` when served over HTTPS so it never travels in clear. An empty token clears it.
fn session_cookie(token: &str, over_tls: bool) -> String {
    let expiry = if token.is_empty() { "; Max-Age=0" } else { "" };
    let secure = if over_tls { "; Secure" } else { "" };
    format!("argocd.token={token}; Path=/{expiry}; HttpOnly; SameSite=Strict{secure}")
}

/// `DELETE /api/v1/session`: the token stops working and the cookie is cleared (logout).
async fn logout(
    State(shared): State<Arc<Shared>>,
    tls: Option<axum::Extension<harden::ServedOverTls>>,
    headers: axum::http::HeaderMap,
) -> Response {
    if let Some(claims) = session_token(&headers).and_then(|t| shared.sessions.verify(t).ok()) {
        shared.sessions.revoke(&claims);
    }
    ([(axum::http::header::SET_COOKIE, session_cookie("", tls.is_some()))], Json(serde_json::json!({})))
        .into_response()
}

async fn userinfo(
    State(shared): State<Arc<Shared>>,
    headers: axum::http::HeaderMap,
) -> Json<serde_json::Value> {
    match shared.caller(&headers) {
        Ok(subject) => Json(
            serde_json::json!({"loggedIn": true, "username": subject.name, "iss": "argocd", "groups": subject.groups}),
        ),
        Err(_) => Json(serde_json::json!({"loggedIn": false})),
    }
}

pub(crate) fn app_object(app: &Application) -> String {
    let project = if app.spec.project.is_empty() { "default" } else { &app.spec.project };
    format!("{project}/{}", app.metadata.name.as_deref().unwrap_or_default())
}

/// `GET /api/v1/applications`: the apps the query selects and the caller may `get`, by name; with `limit`, a
/// page of them, and `metadata.continue` (the next page's token) and `remainingItemCount` while more remain.
async fn list_applications(
    State(shared): State<Arc<Shared>>,
    headers: axum::http::HeaderMap,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    #[derive(serde::Serialize)]
    struct Page<'a> {
        metadata: PageMetadata,
        items: &'a [&'a Application],
    }
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct PageMetadata {
        #[serde(rename = "continue", skip_serializing_if = "Option::is_none")]
        next: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        remaining_item_count: Option<usize>,
    }
    let caller = shared.caller(&headers)?;
    let query = ListQuery::from_pairs(pairs)?;
    let policy = shared.rbac.current();
    let resolved = policy.resolve(&caller);
    let apps = shared.apps.state();
    let mut items: Vec<&Application> = apps
        .iter()
        .map(|a| &**a)
        .filter(|a| query.after.as_ref().is_none_or(|after| a.metadata.name.as_ref() > Some(after)))
        .filter(|a| query.matches(a))
        .filter(|a| resolved.enforce("applications", "get", &app_object(a)))
        .collect();
    items.sort_unstable_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let shown = query.limit.unwrap_or(items.len()).min(items.len());
    let remaining = items.len() - shown;
    let metadata = PageMetadata {
        next: (remaining > 0).then(|| {
            ListQuery::continue_token(items[shown - 1].metadata.name.as_deref().unwrap_or_default())
        }),
        remaining_item_count: (remaining > 0).then_some(remaining),
    };
    let body = serde_json::to_vec(&Page { metadata, items: &items[..shown] })
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(([(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// A label selector as kubectl writes it: `a=b,c!=d,e` (equality, inequality, existence).
pub(crate) fn parse_selector(text: &str) -> Result<Vec<(String, Option<String>, bool)>, ApiError> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|term| {
            if let Some((k, v)) = term.split_once("!=") {
                Ok((k.trim().to_string(), Some(v.trim().to_string()), false))
            } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                Ok((k.trim().to_string(), Some(v.trim().to_string()), true))
            } else if term.chars().all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c)) {
                Ok((term.to_string(), None, true))
            } else {
                Err(ApiError::bad_request(format!("selector: cannot read {term:?}")))
            }
        })
        .collect()
}

pub(crate) fn matches_selector(
    selector: &[(String, Option<String>, bool)],
    labels: Option<&std::collections::BTreeMap<String, String>>,
) -> bool {
    selector.iter().all(|(key, value, equal)| {
        let have = labels.and_then(|l| l.get(key));
        match (value, equal) {
            (None, _) => have.is_some(),
            (Some(v), true) => have == Some(v),
            (Some(v), false) => have != Some(v),
        }
    })
}

/// The application `name` if the caller may do `action` on it. An app that does not exist is refused
/// exactly as one the caller may not see (403 `permission denied`), so names in other projects cannot be
/// probed (Argo CD, GHSA-2q5c-qw9c-fmvq).
pub(crate) fn authorized_app(
    shared: &Shared,
    caller: &crate::rbac::Subject,
    name: &str,
    action: &str,
) -> Result<Arc<Application>, ApiError> {
    let key = reflector::ObjectRef::new(name).within(&shared.namespace);
    shared
        .apps
        .get(&key)
        .filter(|app| shared.rbac.enforce(caller, "applications", action, &app_object(app)))
        .ok_or_else(|| ApiError::forbidden("permission denied"))
}

pub(crate) fn kube_error(e: kube::Error) -> ApiError {
    match e {
        kube::Error::Api(s) if s.code == 404 => ApiError::not_found(s.message.clone()),
        kube::Error::Api(s) if s.code == 409 => {
            ApiError { status: StatusCode::CONFLICT, code: 6, message: s.message.clone() }
        }
        kube::Error::Api(s) if s.code == 422 || s.code == 400 => ApiError::bad_request(s.message.clone()),
        other => ApiError::internal(other.to_string()),
    }
}

/// Writes an operation onto the Application, refusing while another one runs (as Argo CD does).
async fn start_operation(
    shared: &Shared,
    app: &Application,
    operation: serde_json::Value,
) -> Result<Json<Application>, ApiError> {
    let running =
        app.status.as_ref().and_then(|s| s.operation_state.as_ref()).is_some_and(|s| s.phase == "Running");
    if app.operation.is_some() || running {
        return Err(ApiError {
            status: StatusCode::BAD_REQUEST,
            code: 9,
            message: "another operation is already in progress".into(),
        });
    }
    let name = app.metadata.name.clone().unwrap_or_default();
    let api: Api<Application> = Api::namespaced(shared.client.clone(), &shared.namespace);
    let patch = serde_json::json!({"operation": operation});
    let stored = api
        .patch(&name, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch))
        .await
        .map_err(kube_error)?;
    Ok(Json(stored))
}

/// Argo CD's ApplicationSyncRequest (the fields berth acts on).
#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct SyncRequest {
    revision: Option<String>,
    revisions: Vec<String>,
    prune: Option<bool>,
    dry_run: Option<bool>,
    resources: Vec<serde_json::Value>,
    sync_options: Option<SyncOptionsItems>,
    strategy: Option<serde_json::Value>,
    retry_strategy: Option<serde_json::Value>,
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct SyncOptionsItems {
    items: Vec<String>,
}

/// `POST /api/v1/applications/{name}/sync`.
async fn sync_application(
    State(shared): State<Arc<Shared>>,
    headers: axum::http::HeaderMap,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Application>, ApiError> {
    let caller = shared.caller(&headers)?;
    let app = authorized_app(&shared, &caller, &name, "sync")?;
    // Bodyless is a plain sync (the CLI, and the UI with only the JSON content type).
    let request: SyncRequest = if body.iter().all(u8::is_ascii_whitespace) {
        SyncRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("the sync request: {e}")))?
    };
    let mut sync = serde_json::json!({
        "prune": request.prune.unwrap_or(false),
        "dryRun": request.dry_run.unwrap_or(false),
    });
    if let Some(revision) = request.revision.filter(|r| !r.is_empty()) {
        sync["revision"] = revision.into();
    }
    if !request.revisions.is_empty() {
        sync["revisions"] = request.revisions.into();
    }
    if !request.resources.is_empty() {
        sync["resources"] = request.resources.into();
    }
    if let Some(options) = request.sync_options.filter(|o| !o.items.is_empty()) {
        sync["syncOptions"] = options.items.into();
    }
    if let Some(strategy) = request.strategy {
        sync["syncStrategy"] = strategy;
    }
    let mut operation = serde_json::json!({"sync": sync, "initiatedBy": {"username": caller.name}});
    if let Some(retry) = request.retry_strategy {
        operation["retry"] = retry;
    }
    start_operation(&shared, &app, operation).await
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct RollbackRequest {
    id: i64,
    prune: Option<bool>,
    dry_run: Option<bool>,
}

/// `POST /api/v1/applications/{name}/rollback`: a sync to a history entry; refused with auto-sync on.
async fn rollback_application(
    State(shared): State<Arc<Shared>>,
    headers: axum::http::HeaderMap,
    Path(name): Path<String>,
    Json(request): Json<RollbackRequest>,
) -> Result<Json<Application>, ApiError> {
    let caller = shared.caller(&headers)?;
    let app = authorized_app(&shared, &caller, &name, "sync")?;
    let operation = berth_controller::rollback::rollback_operation(
        &app,
        request.id,
        request.prune.unwrap_or(false),
        request.dry_run.unwrap_or(false),
        &caller.name,
    )
    .map_err(|m| ApiError { status: StatusCode::BAD_REQUEST, code: 9, message: m })?;
    let operation = serde_json::to_value(operation).map_err(|e| ApiError::internal(e.to_string()))?;
    start_operation(&shared, &app, operation).await
}

/// `DELETE /api/v1/applications/{name}/operation`: the operation in progress stops; it is recorded as
/// Failed with "Operation terminated", as Argo CD records it.
async fn terminate_operation(
    State(shared): State<Arc<Shared>>,
    headers: axum::http::HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let caller = shared.caller(&headers)?;
    let app = authorized_app(&shared, &caller, &name, "sync")?;
    let running =
        app.status.as_ref().and_then(|s| s.operation_state.as_ref()).filter(|s| s.phase == "Running");
    let Some(state) = running else {
        return Err(ApiError {
            status: StatusCode::BAD_REQUEST,
            code: 9,
            message: "no operation is in progress".into(),
        });
    };
    let mut state = serde_json::to_value(state).map_err(|e| ApiError::internal(e.to_string()))?;
    state["phase"] = "Failed".into();
    state["message"] = "Operation terminated".into();
    state["finishedAt"] =
        k8s_openapi::jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string().into();
    let api: Api<Application> = Api::namespaced(shared.client.clone(), &shared.namespace);
    let patch = serde_json::json!({"operation": null, "status": {"operationState": state}});
    api.patch(&name, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch))
        .await
        .map_err(kube_error)?;
    Ok(Json(serde_json::json!({})))
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct CreateQuery {
    upsert: Option<bool>,
}

/// `POST /api/v1/applications`: creates the Application in berth's namespace. `status` and `operation`
/// from the request are dropped (operations start only through `/sync` and `/rollback`), as Argo CD does.
/// `?upsert=true` over an existing app is an update: `update` on it as stored and on the app as sent, and
/// `create` on the latter.
async fn create_application(
    State(shared): State<Arc<Shared>>,
    headers: axum::http::HeaderMap,
    Query(query): Query<CreateQuery>,
    Json(mut app): Json<serde_json::Value>,
) -> Result<Json<Application>, ApiError> {
    let caller = shared.caller(&headers)?;
    let Some(fields) = app.as_object_mut() else {
        return Err(ApiError::bad_request("the Application: not a JSON object"));
    };
    fields.remove("status");
    fields.remove("operation");
    let name = app["metadata"]["name"].as_str().filter(|n| !n.is_empty()).map(str::to_string);
    let Some(name) = name else { return Err(ApiError::bad_request("metadata.name is required")) };
    let project = app["spec"]["project"].as_str().filter(|p| !p.is_empty()).unwrap_or("default").to_string();
    if !shared.rbac.enforce(&caller, "applications", "create", &format!("{project}/{name}")) {
        return Err(ApiError::forbidden("permission denied"));
    }
    app["apiVersion"] = "argoproj.io/v1alpha1".into();
    app["kind"] = "Application".into();
    app["metadata"]["namespace"] = shared.namespace.clone().into();
    // The typed form checks the shape (an error names the field); the JSON goes to the API server as sent.
    serde_json::from_value::<Application>(app.clone())
        .map_err(|e| ApiError::bad_request(format!("the Application: {e}")))?;
    if query.upsert == Some(true) {
        let typed: Api<Application> = Api::namespaced(shared.client.clone(), &shared.namespace);
        if let Some(existing) = typed.get_opt(&name).await.map_err(kube_error)? {
            let existing = Arc::new(existing);
            if !shared.rbac.enforce(&caller, "applications", "update", &app_object(&existing))
                || !shared.rbac.enforce(&caller, "applications", "update", &format!("{project}/{name}"))
            {
                return Err(ApiError::forbidden("permission denied"));
            }
            return apps::replace_stored(&shared, &caller, existing, app, false).await.map(Json);
        }
    }
    let resource = kube::api::ApiResource::erase::<Application>(&());
    let api: Api<kube::api::DynamicObject> =
        Api::namespaced_with(shared.client.clone(), &shared.namespace, &resource);
    let object: kube::api::DynamicObject =
        serde_json::from_value(app).map_err(|e| ApiError::bad_request(format!("the Application: {e}")))?;
    let stored = api.create(&kube::api::PostParams::default(), &object).await.map_err(kube_error)?;
    let stored = serde_json::to_value(stored).map_err(|e| ApiError::internal(e.to_string()))?;
    serde_json::from_value(stored).map(Json).map_err(|e| ApiError::internal(e.to_string()))
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct DeleteQuery {
    cascade: Option<bool>,
}

/// `DELETE /api/v1/applications/{name}?cascade=true|false`: with cascade (the default) the app's
/// resources go too (Argo CD's resources finalizer); without, they stay.
async fn delete_application(
    State(shared): State<Arc<Shared>>,
    headers: axum::http::HeaderMap,
    Path(name): Path<String>,
    Query(query): Query<DeleteQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let caller = shared.caller(&headers)?;
    let app = authorized_app(&shared, &caller, &name, "delete")?;
    let api: Api<Application> = Api::namespaced(shared.client.clone(), &shared.namespace);
    let cascade = query.cascade.unwrap_or(true);
    const FINALIZER: &str = "resources-finalizer.argocd.argoproj.io";
    let mut finalizers: Vec<String> = app.metadata.finalizers.clone().unwrap_or_default();
    let has = finalizers.iter().any(|f| f.starts_with(FINALIZER));
    if cascade && !has {
        finalizers.push(FINALIZER.into());
    } else if !cascade {
        finalizers.retain(|f| !f.starts_with(FINALIZER));
    }
    if finalizers != app.metadata.finalizers.clone().unwrap_or_default() {
        let patch = serde_json::json!({"metadata": {"finalizers": finalizers}});
        api.patch(&name, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch))
            .await
            .map_err(kube_error)?;
    }
    api.delete(&name, &Default::default()).await.map_err(kube_error)?;
    Ok(Json(serde_json::json!({})))
}

/// `GET /api/v1/projects`: the AppProjects the caller may get.
async fn list_projects(
    State(shared): State<Arc<Shared>>,
    headers: axum::http::HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    let caller = shared.caller(&headers)?;
    let api: Api<berth_api::AppProject> = Api::namespaced(shared.client.clone(), &shared.namespace);
    let list = api.list(&Default::default()).await.map_err(kube_error)?;
    let items: Vec<&berth_api::AppProject> = list
        .items
        .iter()
        .filter(|p| {
            shared.rbac.enforce(&caller, "projects", "get", p.metadata.name.as_deref().unwrap_or_default())
        })
        .collect();
    Ok(Json(serde_json::json!({"metadata": {}, "items": items})))
}

/// Kinds whose objects own the Pods and ReplicaSets of an application's tree.
const CHILD_KINDS: &[(&str, &str, &str)] =
    &[("apps", "v1", "ReplicaSet"), ("", "v1", "Pod"), ("batch", "v1", "Job")];

pub(crate) fn api_for(
    client: &kube::Client,
    group: &str,
    version: &str,
    kind: &str,
    namespace: &str,
) -> Api<kube::api::DynamicObject> {
    let gvk = kube::api::GroupVersionKind::gvk(group, version, kind);
    let resource = kube::api::ApiResource::from_gvk(&gvk);
    if namespace.is_empty() {
        Api::all_with(client.clone(), &resource)
    } else {
        Api::namespaced_with(client.clone(), namespace, &resource)
    }
}

fn tree_node(
    group: &str,
    version: &str,
    kind: &str,
    obj: &serde_json::Value,
    parents: Vec<serde_json::Value>,
) -> serde_json::Value {
    let mut value = obj.clone();
    value["kind"] = kind.into();
    value["apiVersion"] =
        if group.is_empty() { version.to_string() } else { format!("{group}/{version}") }.into();
    let health = berth_engine::health::assess(&value)
        .map(|h| serde_json::json!({"status": h.status.as_str(), "message": h.message}));
    let pod_spec = if kind == "Pod" { &value["spec"] } else { &value["spec"]["template"]["spec"] };
    let images: Vec<&str> =
        pod_spec["containers"].as_array().into_iter().flatten().filter_map(|c| c["image"].as_str()).collect();
    let mut info = Vec::new();
    if kind == "Deployment" || kind == "StatefulSet" || kind == "ReplicaSet" {
        let ready = value["status"]["readyReplicas"].as_i64().unwrap_or(0);
        let wanted = value["spec"]["replicas"].as_i64().unwrap_or(1);
        info.push(serde_json::json!({"name": "Ready", "value": format!("{ready}/{wanted}")}));
    }
    if kind == "Pod" {
        info.push(serde_json::json!({"name": "Status Reason", "value": value["status"]["phase"].as_str().unwrap_or("Unknown")}));
    }
    serde_json::json!({
        "group": group, "version": version, "kind": kind,
        "namespace": value["metadata"]["namespace"], "name": value["metadata"]["name"],
        "uid": value["metadata"]["uid"], "resourceVersion": value["metadata"]["resourceVersion"],
        "createdAt": value["metadata"]["creationTimestamp"],
        "parentRefs": parents, "health": health, "info": info, "images": images,
    })
}

/// The live objects the app tracks: of the resources its status lists, those whose live object carries
/// the app's tracking id (status is only a hint of where to look), each with its kind as discovered.
pub(crate) async fn tracked_objects(
    shared: &Shared,
    app: &Application,
) -> Result<Vec<(members::Kind, serde_json::Value)>, ApiError> {
    let name = app.metadata.name.as_deref().unwrap_or_default();
    let installation_id = shared.http_settings().installation_id.clone();
    let mut kinds: std::collections::HashMap<(String, String, String), Option<members::Kind>> =
        Default::default();
    let mut found = Vec::new();
    for r in app.status.iter().flat_map(|s| &s.resources) {
        let (Some(kind), Some(object)) = (r.kind.as_deref(), r.name.as_deref()) else { continue };
        let group = r.group.as_deref().unwrap_or_default();
        let version = r.version.as_deref().unwrap_or_default();
        let key = (group.to_string(), version.to_string(), kind.to_string());
        let resolved = match kinds.get(&key) {
            Some(k) => k.clone(),
            None => {
                let k = members::resolve(&shared.client, group, version, kind).await?;
                kinds.insert(key, k.clone());
                k
            }
        };
        let Some(resolved) = resolved else { continue };
        let namespace = if resolved.namespaced { r.namespace.as_deref().unwrap_or_default() } else { "" };
        let Some(live) = members::get(&shared.client, &resolved, namespace, object).await? else { continue };
        if members::tracked_by(&live, name, &installation_id) {
            found.push((resolved, live));
        }
    }
    Ok(found)
}

/// `GET /api/v1/applications/{name}/resource-tree`: the app's resources and what they own (ReplicaSets,
/// Pods, Jobs), each with its health, as Argo CD's ApplicationTree. Only objects that carry the app's
/// tracking id, and what they own, are shown.
async fn resource_tree(
    State(shared): State<Arc<Shared>>,
    headers: axum::http::HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let caller = shared.caller(&headers)?;
    let app = authorized_app(&shared, &caller, &name, "get")?;
    let mut nodes = Vec::new();
    // uid → the parent reference children name
    let mut owners: std::collections::HashMap<String, serde_json::Value> = std::collections::HashMap::new();
    let mut namespaces = std::collections::BTreeSet::new();
    for (kind, obj) in tracked_objects(&shared, &app).await? {
        let (group, version, kind) = (&kind.resource.group, &kind.resource.version, &kind.resource.kind);
        let namespace = obj["metadata"]["namespace"].as_str().unwrap_or_default().to_string();
        let object_name = obj["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let node = tree_node(group, version, kind, &obj, vec![]);
        if let Some(uid) = node["uid"].as_str() {
            owners.insert(uid.to_string(), serde_json::json!({"group": group, "kind": kind, "namespace": namespace, "name": object_name, "uid": uid}));
        }
        if !namespace.is_empty() {
            namespaces.insert(namespace);
        }
        nodes.push(node);
    }
    // Children, generation by generation: a Deployment's ReplicaSets, then their Pods.
    let mut children: Vec<(String, String, String, serde_json::Value)> = Vec::new();
    for ns in &namespaces {
        for (group, version, kind) in CHILD_KINDS {
            let api = api_for(&shared.client, group, version, kind, ns);
            if let Ok(list) = api.list(&Default::default()).await {
                for obj in list.items {
                    let value = serde_json::to_value(obj).map_err(|e| ApiError::internal(e.to_string()))?;
                    children.push((group.to_string(), version.to_string(), kind.to_string(), value));
                }
            }
        }
    }
    loop {
        let mut added = false;
        children.retain(|(group, version, kind, obj)| {
            let uid = obj["metadata"]["uid"].as_str().unwrap_or_default().to_string();
            if owners.contains_key(&uid) {
                return false;
            }
            let parents: Vec<serde_json::Value> = obj["metadata"]["ownerReferences"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|o| owners.get(o["uid"].as_str().unwrap_or_default()).cloned())
                .collect();
            if parents.is_empty() {
                return true;
            }
            let node = tree_node(group, version, kind, obj, parents);
            owners.insert(uid.clone(), serde_json::json!({"group": group, "kind": kind, "namespace": obj["metadata"]["namespace"], "name": obj["metadata"]["name"], "uid": uid}));
            nodes.push(node);
            added = true;
            false
        });
        if !added {
            break;
        }
    }
    Ok(Json(serde_json::json!({"nodes": nodes})))
}

/// Argo CD's refresh annotation.
pub(crate) const REFRESH_ANNOTATION: &str = "argocd.argoproj.io/refresh";

/// The controller of this process, for what only it knows (targets, git): 503 when it does not run here.
pub(crate) fn in_process_controller(shared: &Shared) -> Result<Arc<berth_controller::Controller>, ApiError> {
    berth_controller::in_process(&shared.namespace).ok_or_else(|| ApiError {
        status: StatusCode::SERVICE_UNAVAILABLE,
        code: 14,
        message: "the application controller does not run in this process".into(),
    })
}

async fn controller_view(
    shared: &Shared,
    name: &str,
) -> Result<(String, Vec<berth_controller::ManagedResource>), ApiError> {
    let controller = in_process_controller(shared)?;
    controller.managed_resources(name).await.map_err(|m| ApiError {
        status: StatusCode::BAD_REQUEST,
        code: 9,
        message: m,
    })
}

/// `GET /api/v1/applications/{name}/managed-resources`: each object's target, live, normalised live and
/// predicted states (JSON strings, Secrets masked), as Argo CD returns them; what `berth app diff` reads.
async fn managed_resources(
    State(shared): State<Arc<Shared>>,
    headers: axum::http::HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let caller = shared.caller(&headers)?;
    authorized_app(&shared, &caller, &name, "get")?;
    let (_, items) = controller_view(&shared, &name).await?;
    Ok(Json(serde_json::json!({"items": items})))
}

/// `GET /api/v1/applications/{name}/manifests`: the rendered manifests of the app's target revision.
async fn manifests(
    State(shared): State<Arc<Shared>>,
    headers: axum::http::HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let caller = shared.caller(&headers)?;
    authorized_app(&shared, &caller, &name, "get")?;
    let (revision, items) = controller_view(&shared, &name).await?;
    let manifests: Vec<&String> =
        items.iter().filter(|m| m.target_state != "null").map(|m| &m.target_state).collect();
    Ok(Json(serde_json::json!({"manifests": manifests, "revision": revision})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_match_as_kubectl_reads_them() {
        let sel = parse_selector("team=web,env!=prod,tier").unwrap();
        let labels = |pairs: &[(&str, &str)]| -> std::collections::BTreeMap<String, String> {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        assert!(matches_selector(&sel, Some(&labels(&[("team", "web"), ("env", "dev"), ("tier", "1")]))));
        assert!(!matches_selector(&sel, Some(&labels(&[("team", "web"), ("env", "prod"), ("tier", "1")]))));
        assert!(!matches_selector(&sel, Some(&labels(&[("team", "web")]))));
        assert!(parse_selector("a in (b)").is_err());
    }

    #[test]
    fn errors_carry_argo_cds_shape() {
        let e = ApiError::not_found("applications.argoproj.io \"x\" not found");
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        assert_eq!(e.code, 5);
    }
}
