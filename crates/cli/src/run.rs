//! `berth run`: every part of berth in one process: the Application controller and the API server, each on
//! a runtime of its own so that load on one never starves the other.

use anyhow::{Context, Result};
use berth_controller::clusters::limits::{ClientLimits, limited_client};
use clap::Args;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{Api, Client};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Namespace of the Applications, AppProjects, argocd-cm and repository secrets.
    #[arg(long, short = 'n', env = "BERTH_NAMESPACE", default_value = "argocd")]
    pub namespace: String,
    /// Kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or the in-cluster config).
    #[arg(long, env = "BERTH_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Where git clones and extracted trees are kept (default: ~/.cache/berth/repo-cache, or
    /// /tmp/berth/repo-cache without a home directory).
    #[arg(long, env = "BERTH_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// The cap on the bytes the extracted trees take in the cache (bytes, or `512Mi`, `2Gi`, `1G` …): past
    /// it the least recently used trees no render is reading are deleted (extracted again when needed). The
    /// bare clones are kept and not counted. Keep it below the cache volume's `sizeLimit`.
    #[arg(long, env = "BERTH_REPO_CACHE_MAX_BYTES", default_value = "1Gi", value_parser = parse_bytes)]
    pub repo_cache_max_bytes: u64,
    /// Applications reconciled at once (one application is never reconciled twice at once).
    #[arg(long, env = "BERTH_WORKERS", default_value_t = 16)]
    pub workers: usize,
    /// Seconds between the last sync and a self-heal (Argo CD's fixed self-heal timeout), used only when
    /// `--self-heal-backoff-timeout-seconds` is 0 (which turns the backoff off), as in Argo CD.
    #[arg(long, env = "BERTH_SELF_HEAL_TIMEOUT_SECONDS", default_value_t = 0)]
    pub self_heal_timeout_seconds: u64,
    /// Seconds the second self-heal of one revision waits after the last sync (Argo CD's
    /// `--self-heal-backoff-timeout-seconds`; its env ARGOCD_APPLICATION_CONTROLLER_SELF_HEAL_BACKOFF_* names
    /// are not read: one env name a flag); 0: no backoff, `--self-heal-timeout-seconds` paces self-heal.
    #[arg(long, env = "BERTH_SELF_HEAL_BACKOFF_TIMEOUT_SECONDS", default_value_t = 2)]
    pub self_heal_backoff_timeout_seconds: u64,
    /// Each further self-heal of the same revision waits this many times longer.
    #[arg(long, env = "BERTH_SELF_HEAL_BACKOFF_FACTOR", default_value_t = 3)]
    pub self_heal_backoff_factor: u32,
    /// The longest wait between two self-heals, in seconds.
    #[arg(long, env = "BERTH_SELF_HEAL_BACKOFF_CAP_SECONDS", default_value_t = 300)]
    pub self_heal_backoff_cap_seconds: u64,
    /// Seconds after the last sync from which the self-heal count starts again.
    #[arg(long, env = "BERTH_SELF_HEAL_BACKOFF_COOLDOWN_SECONDS", default_value_t = 330)]
    pub self_heal_backoff_cooldown_seconds: u64,
    /// Port of the API server (and UI).
    #[arg(long, env = "BERTH_PORT", default_value_t = 8080)]
    pub port: u16,
    /// Address the API server listens on.
    #[arg(long, env = "BERTH_ADDRESS", default_value = "0.0.0.0")]
    pub address: std::net::IpAddr,
    /// Serve plain HTTP (as argocd-server --insecure). Without it the server speaks HTTPS with the
    /// certificate of Secret argocd-server-tls, or a self-signed one kept in argocd-secret.
    #[arg(long, env = "BERTH_INSECURE", default_value_t = false)]
    pub insecure: bool,
    /// Port of the Prometheus metrics (plain HTTP, `/metrics` and `/healthz`), apart from the API as Argo CD
    /// serves them; `0` turns the listener off.
    #[arg(long, env = "BERTH_METRICS_PORT", default_value_t = 8083)]
    pub metrics_port: u16,
    /// Address the metrics listener binds (default: the API server's).
    #[arg(long, env = "BERTH_METRICS_ADDRESS")]
    pub metrics_address: Option<std::net::IpAddr>,
    /// A namespaced install: manage only these namespaces (comma-separated) with Roles there and no
    /// ClusterRole, as Argo CD's namespace-install; cluster-scoped kinds and other namespaces are refused.
    #[arg(long, env = "BERTH_MANAGED_NAMESPACES", value_delimiter = ',')]
    pub managed_namespaces: Vec<String>,
    /// Namespaces besides `--namespace` whose Applications are reconciled (comma-separated shell globs,
    /// `*` for all), as Argo CD's `--application-namespaces`; unset: argocd-cmd-params-cm
    /// `application.namespaces`. Their AppProject must list the namespace in `sourceNamespaces`.
    #[arg(long, env = "BERTH_APPLICATION_NAMESPACES", value_delimiter = ',')]
    pub application_namespaces: Vec<String>,
    /// Run the Application controller in this process (`--controller=false` serves only the API, as a
    /// separate argocd-server would; the benchmark of the API uses it).
    #[arg(long, env = "BERTH_CONTROLLER", default_value_t = true, action = clap::ArgAction::Set)]
    pub controller: bool,
    /// Where Dex serves when argocd-cm has `dex.config` (Argo CD's `--dex-server`; e.g.
    /// `http://berth-dex-server:5556`): `/api/dex` is proxied there. Without it, `berth run` starts Dex
    /// itself on 127.0.0.1 when argocd-cm has `dex.config` and `--dex-binary` is found.
    #[arg(long, env = "BERTH_DEX_SERVER")]
    pub dex_server: Option<String>,
    /// The `dex` binary `berth run` starts for `dex.config` (looked up on PATH).
    #[arg(long, env = "BERTH_DEX_BINARY", default_value = "dex")]
    pub dex_binary: PathBuf,
    /// The local port of the Dex `berth run` starts.
    #[arg(long, env = "BERTH_DEX_PORT", default_value_t = 5556)]
    pub dex_port: u16,
    /// This replica's name among several (its Lease is `berth-controller-<id>`); unique per process.
    /// Default: $POD_NAME, else the host name.
    #[arg(long, env = "BERTH_REPLICA_ID")]
    pub replica_id: Option<String>,
    /// Seconds a replica's Lease holds without renewal: a replica that stops (or is cut off) has its
    /// Applications taken over this long after its last renewal; it renews every fifth of it.
    #[arg(long, env = "BERTH_LEASE_DURATION_SECONDS", default_value_t = 10)]
    pub lease_duration_seconds: u64,
}

/// A size as a count of bytes, or a Kubernetes quantity without a fraction: `1073741824`, `512Mi`, `2Gi`,
/// `1G` (binary suffixes `Ki` `Mi` `Gi` `Ti`, decimal `k` `M` `G` `T`).
fn parse_bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let digits = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, suffix) = text.split_at(digits);
    let unit: u64 = match suffix {
        "" => 1,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        _ => return Err(format!("{text:?}: a size is bytes, or a number with Ki, Mi, Gi, Ti, k, M, G or T")),
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .ok_or_else(|| format!("{text:?} is not a size in bytes"))
}

/// Threads of the API server's runtime (the controller keeps the process's main runtime to itself).
const API_THREADS: usize = 2;

/// The client of the cluster berth runs in, its requests limited as Argo CD's application controller limits
/// them (`ARGOCD_K8S_CLIENT_QPS`, `ARGOCD_K8S_CLIENT_BURST`); each remote cluster has a budget of its own.
/// Every request says which replica sent it (`User-Agent: berth/<version> (replica <id>)`), so the API
/// server's audit log tells the replicas apart.
async fn client(kubeconfig: Option<&PathBuf>, limits: ClientLimits, replica: &str) -> Result<Client> {
    Ok(limited_client(kube_config(kubeconfig, replica).await?, limits)?)
}

/// The configuration of [`client`], before its request budget.
async fn kube_config(kubeconfig: Option<&PathBuf>, replica: &str) -> Result<kube::Config> {
    let mut config = match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?
        }
        None => kube::Config::infer()
            .await
            .context("no Kubernetes configuration found (set KUBECONFIG, or run in a Pod)")?,
    };
    let agent = format!("berth/{} (replica {replica})", env!("CARGO_PKG_VERSION"));
    if let Ok(agent) = reqwest::header::HeaderValue::from_str(&agent) {
        config.headers.push((reqwest::header::USER_AGENT, agent));
    }
    Ok(config)
}

pub async fn run(args: RunArgs) -> Result<()> {
    // The ports first: one taken stops berth here, named, before the controller could run without its API.
    let api_listener = listen(std::net::SocketAddr::new(args.address, args.port), "the API and UI").await?;
    let metrics_listener = match args.metrics_port {
        0 => None,
        port => {
            let addr = std::net::SocketAddr::new(args.metrics_address.unwrap_or(args.address), port);
            Some(listen(addr, "the metrics").await?)
        }
    };
    // Before any client: a limit berth cannot read stops it, where a default would hide the mistake.
    let limits = ClientLimits::from_env()?;
    let replica = args.replica_id.clone().unwrap_or_else(berth_controller::replicas::default_identity);
    let client = client(args.kubeconfig.as_ref(), limits, &replica).await?;
    // Open while this replica may write (its Lease held): the controller's clients check it last.
    let gate = berth_controller::replicas::fence::Gate::default();
    let version = client.apiserver_version().await.context("the API server did not answer")?;
    tracing::info!(
        server = %version.git_version,
        namespace = %args.namespace,
        qps = limits.qps,
        burst = limits.burst,
        "connected to the cluster"
    );

    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in berth_api::crd::all() {
        let name = crd.metadata.name.unwrap_or_default();
        match crds.get_opt(&name).await {
            Ok(found) => {
                found.with_context(|| {
                    format!("CustomResourceDefinition {name} is missing: run `berth crds | kubectl apply --server-side -f -`")
                })?;
            }
            // A namespaced install may not read cluster-scoped objects: its first list of Applications tells.
            Err(kube::Error::Api(e)) if e.code == 403 && !args.managed_namespaces.is_empty() => {
                tracing::info!(crd = %name, "namespaced install: CRDs cannot be read, assumed installed");
            }
            Err(e) => return Err(e).with_context(|| format!("reading CustomResourceDefinition {name}")),
        }
    }
    tracing::info!("the Application, AppProject and ApplicationSet CRDs are installed");
    // Say which confinement renders get here: a layer the kernel or runtime lacks is reported, not skipped.
    let confinement = berth_repo::render::tool::confinement();
    tracing::info!(%confinement, "helm and kustomize run confined");
    for missing in confinement.missing() {
        tracing::warn!(layer = %missing, "render confinement incomplete");
    }

    let cache_dir = args.cache_dir.unwrap_or_else(|| match std::env::var_os("HOME") {
        Some(home) if !home.is_empty() => PathBuf::from(home).join(".cache/berth/repo-cache"),
        _ => PathBuf::from("/tmp/berth/repo-cache"),
    });
    // The controller fills it when it starts; the API server reads trees and diffs through it.
    let view = berth_controller::ControllerView::default();
    // argocd-cm, argocd-rbac-cm, argocd-ssh-known-hosts-cm and argocd-secret: one watch each, for both.
    let settings = berth_controller::SettingsSource::start(client.clone(), &args.namespace)
        .await
        .map_err(|e| anyhow::anyhow!(e))
        .context("the configuration objects")?;
    let config = berth_controller::ControllerConfig {
        namespace: args.namespace,
        cache_dir,
        repo_cache_max_bytes: args.repo_cache_max_bytes,
        workers: args.workers,
        self_heal_timeout: Duration::from_secs(args.self_heal_timeout_seconds),
        self_heal_backoff: berth_controller::SelfHealBackoff {
            timeout: Duration::from_secs(args.self_heal_backoff_timeout_seconds),
            factor: args.self_heal_backoff_factor,
            cap: Duration::from_secs(args.self_heal_backoff_cap_seconds),
            cooldown: Duration::from_secs(args.self_heal_backoff_cooldown_seconds),
        },
        namespaces: args
            .managed_namespaces
            .iter()
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty())
            .collect(),
        application_namespaces: args.application_namespaces.clone(),
        view: view.clone(),
        settings: Some(settings.clone()),
        replica: berth_controller::replicas::ReplicaConfig {
            identity: replica.clone(),
            lease_duration: Duration::from_secs(args.lease_duration_seconds),
            // Apart from the controller's request budget and workers: a busy sync never delays a renewal.
            kube_config: Some(kube_config(args.kubeconfig.as_ref(), &replica).await?),
            gate: gate.clone(),
            fenced: true,
        },
    };
    // The controller's own client: the API server's writes (a user's) are not the replica's to fence.
    let controller_client = berth_controller::clusters::limits::fenced_client(
        kube_config(args.kubeconfig.as_ref(), &replica).await?,
        limits,
        &gate,
    )?;
    if let Ok(replicas) = std::env::var("ARGOCD_CONTROLLER_REPLICAS") {
        tracing::info!(%replicas, "ARGOCD_CONTROLLER_REPLICAS is not needed: berth counts the live replicas by their Leases");
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    // Dex: elsewhere (--dex-server), or run here when a binary is at hand (it starts once dex.config is set).
    let dex_server = match (&args.dex_server, which(&args.dex_binary)) {
        (Some(server), _) => Some(server.clone()),
        (None, Some(binary)) => {
            let listen = format!("127.0.0.1:{}", args.dex_port);
            let dir = berth_server::auth::oidc::dex_process::private_dir()
                .context("Dex's configuration directory")?;
            let run = berth_server::auth::oidc::dex_process::DexRun { binary, listen: listen.clone(), dir };
            tokio::spawn(berth_server::auth::oidc::dex_process::supervise(
                client.clone(),
                config.namespace.clone(),
                settings.clone(),
                run,
                stopped(stop_rx.clone()),
            ));
            Some(format!("http://{listen}"))
        }
        (None, None) => None,
    };
    let server_config = berth_server::api::ServerConfig {
        dex_server,
        namespace: config.namespace.clone(),
        addr: std::net::SocketAddr::new(args.address, args.port),
        insecure: args.insecure,
        metrics_on_api_port: false,
        controller: view,
        settings: Some(settings),
    };
    // The API serves the Applications the controller reconciles: the same flag, the same fallback.
    let app_namespaces = berth_controller::instance::ApplicationNamespaces::of(&args.application_namespaces);
    // The API server on a runtime of its own, on threads of its own, with a client of its own (a kube client
    // does its I/O on the runtime that made it): clients listing thousands of applications never delay the
    // controller's passes, which keep this runtime (issue 19: self-heal took a minute under API load).
    let api_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(API_THREADS)
        .thread_name("berth-api")
        .enable_all()
        .build()
        .context("the API server's runtime")?;
    let api_listener = api_listener.into_std().context("the API listener")?;
    let (kubeconfig, api_replica, api_stopped) =
        (args.kubeconfig.clone(), replica.clone(), stopped(stop_rx.clone()));
    let serving = async move {
        let client = self::client(kubeconfig.as_ref(), limits, &api_replica)
            .await
            .map_err(|e| std::io::Error::other(format!("the API server's client: {e:#}")))?;
        let listener = tokio::net::TcpListener::from_std(api_listener)?;
        berth_server::api::serve_listener_for(client, server_config, app_namespaces, listener, api_stopped)
            .await
    };
    let (served_tx, served_rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("berth-api".into())
        .spawn(move || {
            let served = api_runtime.block_on(serving);
            // Connections still open past the server's grace are cut with it.
            api_runtime.shutdown_timeout(Duration::from_secs(1));
            let _ = served_tx.send(served);
        })
        .context("the API server's thread")?;
    // The API failing stops the whole process, rather than a controller left running without it; its cause
    // ends `run`'s error.
    let server_stop = stop_tx.clone();
    let server = tokio::spawn(async move {
        let served = served_rx
            .await
            .unwrap_or_else(|_| Err(std::io::Error::other("the API server's thread panicked")));
        if served.is_err() {
            tracing::error!("the API server failed: stopping");
            let _ = server_stop.send(true);
        }
        served
    });
    if let Some(listener) = metrics_listener {
        let metrics = berth_server::api::serve_metrics_on(listener, stopped(stop_rx.clone()));
        tokio::spawn(async move {
            if let Err(e) = metrics.await {
                tracing::error!(error = %e, "the metrics listener stopped");
            }
        });
    }
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    if args.controller {
        berth_controller::Controller::run(controller_client, config, stopped(stop_rx)).await?;
    } else {
        tracing::info!("the Application controller is off (--controller=false)");
    }
    server.await.context("the API server task")?.context("the API server")?;
    tracing::info!("stopped");
    Ok(())
}

/// A listener on `addr` for what `serves`; failing, one line names the address and the system's reason
/// (`cannot listen on 0.0.0.0:8080 (the API and UI): Address already in use`).
async fn listen(addr: std::net::SocketAddr, serves: &str) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        let reason = e.to_string();
        // The OS's words alone: "(os error 98)" tells a reader nothing more.
        let reason = match e.raw_os_error() {
            Some(code) => reason.strip_suffix(&format!(" (os error {code})")).unwrap_or(&reason).to_string(),
            None => reason,
        };
        anyhow::anyhow!("cannot listen on {addr} ({serves}): {reason}")
    })
}

/// Ctrl-C or SIGTERM (what Kubernetes sends a Pod).
async fn shutdown_signal() {
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// `binary` if it names an executable file, or the first such file of that name on PATH.
fn which(binary: &std::path::Path) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable =
        |p: &std::path::Path| p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    if binary.components().count() > 1 {
        return executable(binary).then(|| binary.to_path_buf());
    }
    std::env::split_paths(&std::env::var_os("PATH")?).map(|d| d.join(binary)).find(|p| executable(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_bytes_or_kubernetes_quantities() {
        assert_eq!(parse_bytes("1048576"), Ok(1 << 20));
        assert_eq!(parse_bytes("512Mi"), Ok(512 << 20));
        assert_eq!(parse_bytes("2Gi"), Ok(2 << 30));
        assert_eq!(parse_bytes("1G"), Ok(1_000_000_000));
        assert_eq!(parse_bytes("64k"), Ok(64_000));
        for wrong in ["", "Gi", "1.5Gi", "-1", "2GB", "99999999999Ti"] {
            assert!(parse_bytes(wrong).is_err(), "{wrong:?}");
        }
    }
}
