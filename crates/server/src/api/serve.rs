//! Serving the router: listeners, plain HTTP and TLS on one port (plain requests are redirected to
//! `https://`), graceful shutdown, and the metrics listener.

use super::{ApiError, Shared, harden, router};
use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use berth_controller::instance::ApplicationNamespaces;
use std::net::SocketAddr;
use std::sync::Arc;

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
    /// The controller of this process (`berth run` hands the one it gives the controller); left empty, the
    /// routes that need a controller answer 503.
    pub controller: berth_controller::ControllerView,
    /// The configuration objects as the process watches them (shared with the controller); `None`: the
    /// server starts a source of its own.
    pub settings: Option<berth_controller::SettingsSource>,
    /// Where Dex serves when argocd-cm has `dex.config` (`http://127.0.0.1:5556`): `/api/dex` is proxied
    /// there and the server reaches Dex's issuer through it. `None`: Dex is not run with this server.
    pub dex_server: Option<String>,
}

/// The metrics listener's routes: `GET /metrics`, `/healthz` (the controller makes progress: liveness) and
/// `/readyz` (this replica's shard has its caches synced: readiness).
pub fn metrics_router() -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

/// 200 while the controller's workers make progress (or no controller runs here); 503 with the one-line
/// reason when they are stuck or dead, so the liveness probe restarts the process rather than leave
/// applications unreconciled behind an "ok".
async fn healthz() -> Response {
    match berth_controller::metrics::global().healthy() {
        Ok(()) => "ok".into_response(),
        Err(reason) => (axum::http::StatusCode::SERVICE_UNAVAILABLE, reason).into_response(),
    }
}

/// 200 once this replica's caches are synced; 503 before, so a rollout waits for it and a Service skips it.
async fn readyz() -> Response {
    if berth_controller::metrics::global().ready() {
        "ok".into_response()
    } else {
        (axum::http::StatusCode::SERVICE_UNAVAILABLE, "not ready: the shard's caches are not synced")
            .into_response()
    }
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
    serve_for(client, config, ApplicationNamespaces::default(), shutdown).await
}

/// [`serve`], serving also the Applications of the namespaces `application_namespaces` allows (`berth run
/// --application-namespaces`; empty: argocd-cmd-params-cm decides, see [`Shared::start_for`]).
pub async fn serve_for(
    client: kube::Client,
    config: ServerConfig,
    application_namespaces: ApplicationNamespaces,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.addr).await?;
    serve_listener_for(client, config, application_namespaces, listener, shutdown).await
}

/// `serve` on a listener bound by the caller (`config.addr` is not used).
pub async fn serve_listener(
    client: kube::Client,
    config: ServerConfig,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_listener_for(client, config, ApplicationNamespaces::default(), listener, shutdown).await
}

/// [`serve_for`] on a listener bound by the caller (`config.addr` is not used): `berth run` binds its ports
/// before anything else starts, so a port taken fails at once, naming it.
pub async fn serve_listener_for(
    client: kube::Client,
    config: ServerConfig,
    application_namespaces: ApplicationNamespaces,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let settings = match config.settings.clone() {
        Some(settings) => settings,
        None => berth_controller::SettingsSource::start(client.clone(), &config.namespace)
            .await
            .map_err(std::io::Error::other)?,
    };
    let shared = Shared::start_for(client.clone(), &config.namespace, settings, application_namespaces)
        .await
        .map_err(std::io::Error::other)?;
    shared.sso.set_dex_server(config.dex_server.clone());
    let shared = Arc::new(shared.with_controller(config.controller.clone()));
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

/// Prometheus's text format: the controller's metrics (Argo CD's names where it has them).
async fn metrics() -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        berth_controller::metrics::global().render(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A plain HTTP/1.1 GET on the metrics listener: (status, body).
    async fn get_plain(addr: SocketAddr, path: &str) -> (u16, String) {
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        tcp.read_to_end(&mut response).await.unwrap();
        let text = String::from_utf8_lossy(&response).into_owned();
        let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
        (status, body)
    }

    #[tokio::test]
    async fn readyz_answers_503_until_the_shard_is_ready_and_healthz_answers_while_no_controller_is_stuck() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve_metrics_on(listener, std::future::pending()));
        let metrics = berth_controller::metrics::global();

        metrics.set_ready(false);
        assert_eq!(
            get_plain(addr, "/readyz").await,
            (503, "not ready: the shard's caches are not synced".into())
        );
        assert_eq!(get_plain(addr, "/healthz").await, (200, "ok".into()));
        metrics.set_ready(true);
        assert_eq!(get_plain(addr, "/readyz").await, (200, "ok".into()));
        metrics.set_shard(7, 2);
        let (status, text) = get_plain(addr, "/metrics").await;
        assert_eq!(status, 200);
        assert!(
            text.contains("berth_shard_applications 7\n") && text.contains("berth_shard_replicas 2\n"),
            "{text}"
        );
        metrics.set_ready(false);
    }
}
