//! What the benchmarks share: git, process measurements from /proc, percentiles, and waiting for apps.
#![allow(dead_code)] // each benchmark uses a different part

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, ListParams, Patch, PatchParams};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `berth run` (the release binary) on a control namespace; killed however the benchmark ends.
pub struct Berth {
    child: std::process::Child,
    pub pid: u32,
    /// `perf record` attached to the process when `BENCH_PERF` names an output file.
    perf: Option<std::process::Child>,
}

impl Berth {
    /// Owns a `berth` process started by the benchmark itself.
    pub fn new(child: std::process::Child) -> Berth {
        let pid = child.id();
        Berth { pid, child, perf: profile(pid) }
    }
}

/// With `BENCH_PERF=<file>`, samples the berth process with call graphs (`perf report -i <file>`), to find
/// where a slower run spends its time rather than guess it from a diff.
fn profile(pid: u32) -> Option<std::process::Child> {
    let out = std::env::var("BENCH_PERF").ok().filter(|f| !f.is_empty())?;
    let perf = Command::new("perf")
        .args(["record", "-F", "199", "--call-graph", "dwarf,8192", "-o", &out, "-p", &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("BENCH_PERF is set but perf does not start");
    Some(perf)
}

impl Drop for Berth {
    fn drop(&mut self) {
        if let Some(mut perf) = self.perf.take() {
            // perf writes its file on SIGINT, not on SIGKILL.
            let _ = Command::new("kill").args(["-INT", &perf.id().to_string()]).status();
            let _ = perf.wait();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `berth run` with its log in `work/berth.log` and waits until it has created the default
/// AppProject (its first act).
pub async fn start_berth(client: &kube::Client, control: &str, work: &std::path::Path) -> Berth {
    start_berth_with(client, control, work, "warn,berth_controller=info").await
}

/// [`start_berth`] with a log filter of its own.
pub async fn start_berth_with(
    client: &kube::Client,
    control: &str,
    work: &std::path::Path,
    log_filter: &str,
) -> Berth {
    start_berth_with_args(client, control, work, log_filter, 0, &[]).await
}

/// [`start_berth_with`] with its metrics on `metrics_port` (0: any) and more arguments for `berth run`.
pub async fn start_berth_with_args(
    client: &kube::Client,
    control: &str,
    work: &std::path::Path,
    log_filter: &str,
    metrics_port: u16,
    args: &[&str],
) -> Berth {
    allow_file_urls(client, control).await;
    let log = std::fs::File::create(work.join("berth.log")).unwrap();
    let mut command = match std::env::var("BENCH_HEAPTRACK").ok().filter(|f| !f.is_empty()) {
        // heaptrack's own bookkeeping counts in the process tree's RSS: a run for where memory goes, not how much.
        Some(out) => {
            let mut c = Command::new("heaptrack");
            c.args(["-o", &out, env!("CARGO_BIN_EXE_berth")]);
            c
        }
        None => Command::new(env!("CARGO_BIN_EXE_berth")),
    };
    let child = command
        .args(["run", "--port", "0", "--metrics-port", &metrics_port.to_string(), "--namespace", control])
        .args(args)
        .arg("--cache-dir")
        .arg(work.join("cache"))
        .env("RUST_LOG", log_filter)
        .stderr(Stdio::from(log))
        .spawn()
        .expect("berth run");
    let berth = Berth::new(child);
    wait_started(client, control).await;
    berth
}

/// The benches' repositories are file:// URLs, which berth refuses unless argocd-cm enables them.
pub async fn allow_file_urls(client: &kube::Client, control: &str) {
    let maps: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client.clone(), control);
    let cm = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "argocd-cm"},
        "data": {"berth.repositories.allowFileURLs": "true"}});
    maps.patch("argocd-cm", &PatchParams::apply("berth-bench-file-urls"), &Patch::Apply(&cm)).await.unwrap();
}

/// Waits until `berth run` on `control` has created the default AppProject (its first act).
pub async fn wait_started(client: &kube::Client, control: &str) {
    let projects: Api<berth_api::AppProject> = Api::namespaced(client.clone(), control);
    let deadline = Instant::now() + Duration::from_secs(60);
    while projects.get_opt("default").await.unwrap().is_none() {
        assert!(Instant::now() < deadline, "berth run did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A loopback port free now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub async fn make_namespaces(client: &kube::Client, names: &[&str]) -> Api<Namespace> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for ns in names {
        let body = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        namespaces.patch(ns, &PatchParams::apply("berth-bench"), &Patch::Apply(&body)).await.unwrap();
    }
    namespaces
}

/// Peak resident memory of a process so far (VmHWM).
pub fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

pub fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

pub fn git(dir: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=Bench", "-c", "user.email=bench@example.com"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A git repository at `work/repo` with `n` apps (`apps/app-NNNN`, one ConfigMap each), committed with
/// `message`: its path, `file://` URL and commit.
pub fn repo_of_apps(work: &std::path::Path, n: usize, message: &str) -> (std::path::PathBuf, String, String) {
    let repo = work.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    for i in 0..n {
        write_app(&repo, i, 1, "1");
    }
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", message]);
    let first = git(&repo, &["rev-parse", "HEAD"]);
    let url = format!("file://{}", repo.display());
    (repo, url, first)
}

/// Creates the Applications `app-0000` … of [`repo_of_apps`] in `control`, 32 at a time: automated sync
/// with prune and selfHeal, into `dest`.
pub async fn create_apps(apps: &Api<berth_api::Application>, n: usize, url: &str, control: &str, dest: &str) {
    use futures::{StreamExt, TryStreamExt};
    futures::stream::iter(0..n)
        .map(|i| async move {
            let name = format!("app-{i:04}");
            let body = serde_json::json!({
                "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
                "metadata": {"name": name, "namespace": control},
                "spec": {"project": "default",
                         "source": {"repoURL": url, "path": format!("apps/{name}"), "targetRevision": "main"},
                         "destination": {"server": "https://kubernetes.default.svc", "namespace": dest},
                         "syncPolicy": {"automated": {"prune": true, "selfHeal": true}}}
            });
            apps.patch(&name, &PatchParams::apply("berth-bench"), &Patch::Apply(&body)).await.map(|_| ())
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await
        .expect("creating apps");
}

pub fn write_app(repo: &std::path::Path, i: usize, objects: usize, value: &str) {
    let dir = repo.join(format!("apps/app-{i:04}"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut text = String::new();
    for j in 0..objects {
        text.push_str(&format!(
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-{i:04}-{j}\ndata:\n  value: \"{value}\"\n"
        ));
    }
    std::fs::write(dir.join("config.yaml"), text).unwrap();
}

pub fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

/// CPU seconds (user + system) used by a process so far.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    ticks / 100.0
}

pub fn percentile(samples: &mut [f64], p: f64) -> f64 {
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    samples[((samples.len() as f64 - 1.0) * p).round() as usize]
}

pub async fn count_synced(apps: &Api<berth_api::Application>, revision: &str) -> usize {
    count_at(apps, revision, true).await
}

/// Applications whose compared revision is `revision` (and that are Synced, with `synced`).
pub async fn count_at(apps: &Api<berth_api::Application>, revision: &str, synced: bool) -> usize {
    let list = apps.list(&ListParams::default()).await.expect("listing apps");
    list.items
        .iter()
        .filter(|a| {
            a.status
                .as_ref()
                .and_then(|s| s.sync.as_ref())
                .is_some_and(|s| (!synced || s.status == "Synced") && s.revision.as_deref() == Some(revision))
        })
        .count()
}

pub async fn wait_all_synced(
    apps: &Api<berth_api::Application>,
    n: usize,
    revision: &str,
    started: Instant,
) -> f64 {
    let deadline = started + Duration::from_secs(900);
    loop {
        let synced = count_synced(apps, revision).await;
        if synced >= n {
            return started.elapsed().as_secs_f64();
        }
        assert!(Instant::now() < deadline, "only {synced}/{n} apps Synced after 900 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Asks berth to refresh `name` now (Argo CD's refresh annotation).
pub async fn request_refresh(apps: &Api<berth_api::Application>, name: &str) {
    let patch = serde_json::json!({"metadata": {"annotations": {"argocd.argoproj.io/refresh": "normal"}}});
    apps.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
}

/// Waits until berth has taken the refresh request off `name`: the next request must be a change.
pub async fn wait_refresh_taken(apps: &Api<berth_api::Application>, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while apps
        .get(name)
        .await
        .unwrap()
        .metadata
        .annotations
        .is_some_and(|a| a.contains_key("argocd.argoproj.io/refresh"))
    {
        assert!(Instant::now() < deadline, "the refresh annotation was never removed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the ConfigMap `name` holds `value` in `data.value` (polled every 5 ms, for latencies).
pub async fn wait_value(cms: &Api<ConfigMap>, name: &str, value: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let cm = cms.get_opt(name).await.unwrap();
        if cm.and_then(|c| c.data).is_some_and(|d| d.get("value").map(String::as_str) == Some(value)) {
            return;
        }
        assert!(Instant::now() < deadline, "{name} never reached {value}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
