//! What berth costs the API server, git and disk (`hack/bench lean`, issue 20), with the real `berth run`
//! release binary, once with the repository served over git's smart HTTP (lighttpd and `git http-backend`,
//! with basic auth from a repository Secret) and once as a `file://` URL:
//!
//! 1. The raw server-side-apply rate of this cluster: `BENCH_APPS` ConfigMaps applied by the benchmark itself,
//!    16 at a time (berth's workers), objects/s.
//! 2. `BENCH_APPS` Applications of one ConfigMap each created at once → all Synced: apps/s, and its share of (1).
//! 3. Application writes by berth for those first syncs, per app: the API server's own count
//!    (`apiserver_request_total` of PATCH and UPDATE on applications, dry runs left out; the benchmark creates
//!    them with server-side apply, counted apart).
//! 4. The peak RSS of berth's process tree (berth and the git, helm and kustomize it runs) from its start until
//!    every app is Synced, sampled every 20 ms; and the CPU time of every kube-apiserver and etcd on this
//!    machine next to berth's (with the children it ran) from created to all Synced.
//!
//! Over smart HTTP also:
//! 5. Idle: `BENCH_IDLE_SECONDS` (360: three polling periods of 120 s) with nothing changed: real git requests
//!    (`argocd_git_request_total`, per hour), answers shared (`berth_git_ls_remote_cache_hits_total`), and
//!    Application writes.
//! 6. `BENCH_COMMITS` commits (1,000), each changing one app and announced by a refresh annotation, the app
//!    waited for at each: the git cache's bytes after them (`berth_repo_cache_bytes`, and `du` of the cache
//!    directory) against `--repo-cache-max-bytes` (`BENCH_CACHE_CAP`, 64Mi).

mod common;

use berth_testkit::GitRepo;
use berth_testkit::git_servers::GitHttpServer;
use common::*;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Objects applied at once in (1), as many as berth's default workers.
const CONCURRENCY: usize = 16;

struct Run {
    raw_rate: f64,
    synced: f64,
    writes_per_app: f64,
    peak_tree_rss: f64,
    /// berth's own peak (VmHWM), without the git, helm and kustomize it runs.
    peak_own_rss: f64,
    /// CPU seconds from created to all Synced: every kube-apiserver and etcd on this machine, and berth with
    /// the children it waited for.
    cpu_control_plane: f64,
    cpu_berth: f64,
    idle: Option<Idle>,
    cache: Option<CacheAfterCommits>,
}

struct Idle {
    seconds: u64,
    ls_remotes: f64,
    fetches: f64,
    shared: f64,
    app_writes: f64,
}

struct CacheAfterCommits {
    commits: usize,
    cap: String,
    trees: f64,
    clones: f64,
    du: f64,
    evictions: f64,
    took: f64,
}

#[tokio::main]
async fn main() {
    let n = env_num("BENCH_APPS", 1000) as usize;
    let idle_seconds = env_num("BENCH_IDLE_SECONDS", 360);
    let commits = env_num("BENCH_COMMITS", 1000) as usize;
    let cap = std::env::var("BENCH_CACHE_CAP").unwrap_or_else(|_| "64Mi".into());
    let client = kube::Client::try_default().await.expect("KUBECONFIG: run through hack/bench");
    let http = run(&client, n, true, idle_seconds, commits, &cap).await;
    let file = run(&client, n, false, 0, 0, &cap).await;

    let mut out = std::io::stdout().lock();
    writeln!(out, "\n| measure ({n} one-ConfigMap apps) | smart HTTP | file:// |\n|---|---|---|").unwrap();
    let row = |out: &mut std::io::StdoutLock, what: &str, f: &dyn Fn(&Run) -> String| {
        writeln!(out, "| {what} | {} | {} |", f(&http), f(&file)).unwrap();
    };
    row(&mut out, "raw server-side apply by the bench, 16 at a time", &|r| {
        format!("{:.0} objects/s", r.raw_rate)
    });
    row(&mut out, "created at once → all Synced", &|r| {
        format!(
            "{:.1} s ({:.0} apps/s, {:.0} % of raw)",
            r.synced,
            n as f64 / r.synced,
            n as f64 / r.synced / r.raw_rate * 100.0
        )
    });
    row(&mut out, "Application writes per app for the first sync", &|r| format!("{:.2}", r.writes_per_app));
    row(&mut out, "peak RSS, start → all Synced: berth's process tree / berth alone", &|r| {
        format!("{:.0} / {:.0} MiB", r.peak_tree_rss, r.peak_own_rss)
    });
    row(&mut out, "CPU created → all Synced: kube-apiserver + etcd / berth and its children", &|r| {
        format!(
            "{:.1} / {:.1} s ({:.2} / {:.2} cores)",
            r.cpu_control_plane,
            r.cpu_berth,
            r.cpu_control_plane / r.synced,
            r.cpu_berth / r.synced
        )
    });
    if let Some(idle) = &http.idle {
        let hour = 3600.0 / idle.seconds as f64;
        writeln!(
            out,
            "| idle {} s: git requests per hour (ls-remote / fetch), answers shared, Application writes | {:.0} / {:.0} per hour, {:.0} shared, {:.0} writes | |",
            idle.seconds,
            idle.ls_remotes * hour,
            idle.fetches * hour,
            idle.shared,
            idle.app_writes
        )
        .unwrap();
    }
    if let Some(c) = &http.cache {
        writeln!(
            out,
            "| git cache after {} commits (cap {}): trees / clones (berth's metric), `du` of the cache, trees evicted | {:.1} / {:.1} MiB, {:.1} MiB, {:.0} ({:.0} s) | |",
            c.commits, c.cap, c.trees, c.clones, c.du, c.evictions, c.took
        )
        .unwrap();
    }
}

async fn run(
    client: &kube::Client,
    n: usize,
    over_http: bool,
    idle_seconds: u64,
    commits: usize,
    cap: &str,
) -> Run {
    let transport = if over_http { "http" } else { "file" };
    let suffix = format!("{}-{transport}", std::process::id());
    let (control, dest, raw) =
        (format!("lean-{suffix}"), format!("lean-dest-{suffix}"), format!("lean-raw-{suffix}"));
    let namespaces = make_namespaces(client, &[&control, &dest, &raw]).await;
    let work = tempfile::tempdir().unwrap();
    let source = GitRepo::new();
    for i in 0..n {
        write_app(source.path(), i, 1, "1");
    }
    let first = source.commit("apps");
    let server = over_http.then(GitHttpServer::start);
    let url = match &server {
        Some(server) => {
            let url = server.host("manifests", &source);
            let secrets: Api<Secret> = Api::namespaced(client.clone(), &control);
            let secret = serde_json::json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "manifests", "labels": {"argocd.argoproj.io/secret-type": "repository"}},
                "stringData": {"url": url, "username": server.username(), "password": server.password()}});
            secrets
                .patch("manifests", &PatchParams::apply("berth-bench"), &Patch::Apply(&secret))
                .await
                .unwrap();
            url
        }
        None => source.url(),
    };

    // 1. The cluster's own pace.
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), &raw);
    let started = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let maps = maps.clone();
            async move {
                let name = format!("raw-{i:04}");
                let body = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": name}, "data": {"value": "1"}});
                maps.patch(&name, &PatchParams::apply("berth-bench").force(), &Patch::Apply(&body))
                    .await
                    .map(|_| ())
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await
        .expect("applying ConfigMaps");
    let raw_rate = n as f64 / started.elapsed().as_secs_f64();

    // 2-4. berth from its start until every app is Synced.
    let metrics_port = free_port();
    let args = ["--repo-cache-max-bytes", cap];
    let berth = start_berth_with_args(client, &control, work.path(), "warn", metrics_port, &args).await;
    let peak = Arc::new(AtomicU64::new(0));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, sampling, pid) = (peak.clone(), sampling.clone(), berth.pid);
        std::thread::spawn(move || {
            while sampling.load(Ordering::Relaxed) {
                peak.fetch_max(tree_rss_kib(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let writes_before = application_writes(client).await;
    let apps: Api<berth_api::Application> = Api::namespaced(client.clone(), &control);
    let cpu_before = (control_plane_cpu(), process_cpu(berth.pid));
    let started = Instant::now();
    create_apps(&apps, n, &url, &control, &dest).await;
    let synced = wait_all_synced(&apps, n, &first, started).await;
    let (cpu_control_plane, cpu_berth) =
        (control_plane_cpu() - cpu_before.0, process_cpu(berth.pid) - cpu_before.1);
    // The compare after each sync (the second write) may come just after the list says Synced.
    wait_quiet(client).await;
    let writes_per_app = (application_writes(client).await - writes_before) / n as f64;
    sampling.store(false, Ordering::Relaxed);
    sampler.join().unwrap();
    let peak_tree_rss = peak.load(Ordering::Relaxed) as f64 / 1024.0;
    let peak_own_rss = peak_rss_mib(berth.pid);

    // 5. Idle.
    let idle = if idle_seconds > 0 {
        let before = (berth_metrics(metrics_port).await, application_writes(client).await);
        tokio::time::sleep(Duration::from_secs(idle_seconds)).await;
        let after = (berth_metrics(metrics_port).await, application_writes(client).await);
        let delta = |name: &str, label: &str| sum(&after.0, name, label) - sum(&before.0, name, label);
        Some(Idle {
            seconds: idle_seconds,
            ls_remotes: delta("argocd_git_request_total{", "request_type=\"ls-remote\""),
            fetches: delta("argocd_git_request_total{", "request_type=\"fetch\""),
            shared: delta("berth_git_ls_remote_cache_hits_total{", ""),
            app_writes: after.1 - before.1,
        })
    } else {
        None
    };

    // 6. Commits, each deployed before the next.
    let cache = if commits > 0 {
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &dest);
        let started = Instant::now();
        for c in 0..commits {
            let value = format!("commit-{c}");
            write_app(source.path(), c % n, 1, &value);
            source.commit(&value);
            if let Some(server) = &server {
                server.host("manifests", &source);
            }
            let name = format!("app-{:04}", c % n);
            request_refresh(&apps, &name).await;
            wait_value(&cms, &format!("{name}-0"), &value).await;
            wait_refresh_taken(&apps, &name).await;
            if c % 100 == 99 {
                eprintln!("{} commits deployed in {:.0} s", c + 1, started.elapsed().as_secs_f64());
            }
        }
        let took = started.elapsed().as_secs_f64();
        let metrics = berth_metrics(metrics_port).await;
        let du =
            Command::new("du").args(["-sk"]).arg(work.path().join("cache")).stderr(Stdio::null()).output();
        let du_kib: f64 = du
            .ok()
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout).split_whitespace().next().and_then(|v| v.parse().ok())
            })
            .unwrap_or(0.0);
        Some(CacheAfterCommits {
            commits,
            cap: cap.to_string(),
            trees: sum(&metrics, "berth_repo_cache_bytes{", "kind=\"trees\"") / 1048576.0,
            clones: sum(&metrics, "berth_repo_cache_bytes{", "kind=\"clones\"") / 1048576.0,
            du: du_kib / 1024.0,
            evictions: sum(&metrics, "berth_repo_cache_evictions_total", ""),
            took,
        })
    } else {
        None
    };

    drop(berth);
    drop(server);
    for ns in [&control, &dest, &raw] {
        let _ = namespaces.delete(ns, &DeleteParams::background()).await;
    }
    // Gone before the next run starts: its apps have the same names, and would see this run's objects as
    // theirs to prune (one more status write each when they vanish).
    let deadline = Instant::now() + Duration::from_secs(300);
    for ns in [&control, &dest, &raw] {
        while namespaces.get_opt(ns).await.unwrap().is_some() {
            assert!(Instant::now() < deadline, "namespace {ns} was not deleted");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    Run {
        raw_rate,
        synced,
        writes_per_app,
        peak_tree_rss,
        peak_own_rss,
        cpu_control_plane,
        cpu_berth,
        idle,
        cache,
    }
}

/// The resident memory of `pid` and every process under it, in KiB.
///
/// A child caught between its spawn and its exec is still berth: `posix_spawn` clones berth's address space
/// (`CLONE_VM`) and its VmRSS is berth's own, so counting it counted berth twice (it made 242 MiB of a
/// 125 MiB berth, the first time this bench measured both). Such a child has berth's command line and is
/// counted as nothing; what it runs once it has exec'd counts.
fn tree_rss_kib(pid: u32) -> u64 {
    let cmdline = |p: u32| std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
    let berth = cmdline(pid);
    let mut total = 0;
    let mut stack = vec![pid];
    while let Some(p) = stack.pop() {
        if p != pid && cmdline(p) == berth {
            continue;
        }
        let status = std::fs::read_to_string(format!("/proc/{p}/status")).unwrap_or_default();
        total += status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        for task in std::fs::read_dir(format!("/proc/{p}/task")).into_iter().flatten().flatten() {
            let children = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            stack.extend(children.split_whitespace().filter_map(|c| c.parse::<u32>().ok()));
        }
    }
    total
}

/// CPU seconds (user and system) of `pid`, and of the children it has waited for, from `/proc/<pid>/stat`.
fn process_cpu(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command's closing parenthesis: utime, stime, cutime and cstime are 14-17 of the
    // whole line, 12-15 after it (in clock ticks of 1/100 s).
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("").split_whitespace().collect();
    fields.get(11..15).map_or(0.0, |f| f.iter().filter_map(|v| v.parse::<f64>().ok()).sum::<f64>() / 100.0)
}

/// CPU seconds of every kube-apiserver and etcd process on this machine.
fn control_plane_cpu() -> f64 {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            matches!(comm.trim(), "kube-apiserver" | "etcd")
        })
        .map(process_cpu)
        .sum()
}

/// PATCH and UPDATE requests on Applications the API server has answered since it started (dry runs left out).
async fn application_writes(client: &kube::Client) -> f64 {
    let request = http::Request::get("/metrics").body(Vec::new()).unwrap();
    let text = client.request_text(request).await.expect("the API server's /metrics");
    text.lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
        .filter(|l| l.contains("resource=\"applications\"") && l.contains("dry_run=\"\""))
        .filter(|l| l.contains("verb=\"PATCH\"") || l.contains("verb=\"UPDATE\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Waits until the API server has answered no Application write for a second.
async fn wait_quiet(client: &kube::Client) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last = application_writes(client).await;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = application_writes(client).await;
        if now == last || Instant::now() > deadline {
            return;
        }
        last = now;
    }
}

async fn berth_metrics(port: u16) -> String {
    reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await.unwrap().text().await.unwrap()
}

/// The sum of the samples whose line starts with `prefix` and holds `label`.
fn sum(metrics: &str, prefix: &str, label: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(prefix) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
