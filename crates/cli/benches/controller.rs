//! The controller benchmark against the local cluster (`hack/bench`): the real `berth run` binary, 1,000
//! Applications in one git repository.
//!
//! 1. 1,000 Applications, one ConfigMap each, created at once: seconds until all are Synced.
//! 2. A commit giving every app 10 ConfigMaps (10,000 objects): seconds until all are Synced, and RSS.
//! 3. Commit to applied once a refresh is requested, and drift to reverted by selfHeal: p50 and p90.
//! 4. CPU used by the unchanged apps while idle (`BENCH_IDLE_SECONDS`, default 300).
//!
//! Sizes can be lowered for a quick look: `BENCH_APPS=100 hack/bench`.

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn git(dir: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=Bench", "-c", "user.email=bench@example.com"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn write_app(repo: &std::path::Path, i: usize, objects: usize, value: &str) {
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

fn rss_mib(pid: u32) -> f64 {
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
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    ticks / 100.0
}

fn percentile(samples: &mut [f64], p: f64) -> f64 {
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    samples[((samples.len() as f64 - 1.0) * p).round() as usize]
}

async fn count_synced(apps: &Api<berth_api::Application>, revision: &str) -> usize {
    let list = apps.list(&ListParams::default()).await.expect("listing apps");
    list.items
        .iter()
        .filter(|a| {
            a.status
                .as_ref()
                .and_then(|s| s.sync.as_ref())
                .is_some_and(|s| s.status == "Synced" && s.revision.as_deref() == Some(revision))
        })
        .count()
}

async fn wait_all_synced(
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

async fn wait_value(cms: &Api<ConfigMap>, name: &str, value: &str) {
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

#[tokio::main]
async fn main() {
    let n = env_num("BENCH_APPS", 1000) as usize;
    let idle_seconds = env_num("BENCH_IDLE_SECONDS", 300);
    let trials = env_num("BENCH_TRIALS", 20) as usize;
    let client = kube::Client::try_default().await.expect("KUBECONFIG: run through hack/bench");
    let suffix = std::process::id();
    let control = format!("bench-{suffix}");
    let dest = format!("bench-dest-{suffix}");
    let pp = PatchParams::apply("berth-bench");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for ns in [&control, &dest] {
        let body = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        namespaces.patch(ns, &pp, &Patch::Apply(&body)).await.unwrap();
    }

    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    for i in 0..n {
        write_app(&repo, i, 1, "1");
    }
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "apps"]);
    let first = git(&repo, &["rev-parse", "HEAD"]);
    let url = format!("file://{}", repo.display());

    let log = std::fs::File::create(work.path().join("berth.log")).unwrap();
    let berth = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["run", "--namespace", &control, "--cache-dir"])
        .arg(work.path().join("cache"))
        .env("RUST_LOG", "warn,berth_controller=info")
        .stderr(Stdio::from(log))
        .spawn()
        .expect("berth run");
    let pid = berth.id();
    // Stop berth however the bench ends (a failed assertion included).
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let berth = KillOnDrop(berth);
    let apps: Api<berth_api::Application> = Api::namespaced(client.clone(), &control);
    // Wait for the controller: it creates the default AppProject at start.
    let projects: Api<berth_api::AppProject> = Api::namespaced(client.clone(), &control);
    let deadline = Instant::now() + Duration::from_secs(60);
    while projects.get_opt("default").await.unwrap().is_none() {
        assert!(Instant::now() < deadline, "berth run did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rss_start = rss_mib(pid);

    // 1. n apps at once.
    let started = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let apps = apps.clone();
            let (url, dest, control) = (url.clone(), dest.clone(), control.clone());
            async move {
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
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await
        .expect("creating apps");
    let created = started.elapsed().as_secs_f64();
    let all_synced = wait_all_synced(&apps, n, &first, started).await;
    let rss_one = rss_mib(pid);

    // 2. Ten objects per app in one commit.
    for i in 0..n {
        write_app(&repo, i, 10, "1");
    }
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "ten objects per app"]);
    let second = git(&repo, &["rev-parse", "HEAD"]);
    let started_ten = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let apps = apps.clone();
            async move {
                let patch = serde_json::json!({"metadata": {"annotations": {"argocd.argoproj.io/refresh": "normal"}}});
                apps.patch(&format!("app-{i:04}"), &PatchParams::default(), &Patch::Merge(&patch)).await.map(|_| ())
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await
        .expect("refreshing apps");
    let ten_synced = wait_all_synced(&apps, n, &second, started_ten).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let rss_ten = rss_mib(pid);

    // 3. Commit to applied, and drift to reverted.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &dest);
    let mut commit_latency = Vec::new();
    for t in 0..trials {
        let value = format!("commit-{t}");
        write_app(&repo, 0, 10, &value);
        git(&repo, &["commit", "-q", "-am", &value]);
        let patch =
            serde_json::json!({"metadata": {"annotations": {"argocd.argoproj.io/refresh": "normal"}}});
        let t0 = Instant::now();
        apps.patch("app-0000", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
        wait_value(&cms, "app-0000-0", &value).await;
        commit_latency.push(t0.elapsed().as_secs_f64() * 1000.0);
        // The next refresh request must be a change: wait until berth has removed this one.
        let deadline = Instant::now() + Duration::from_secs(30);
        while apps
            .get("app-0000")
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
    let mut drift_latency = Vec::new();
    for t in 0..trials {
        let t0 = Instant::now();
        let patch = serde_json::json!({"data": {"value": format!("drift-{t}")}});
        cms.patch("app-0001-0", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
        wait_value(&cms, "app-0001-0", "1").await;
        drift_latency.push(t0.elapsed().as_secs_f64() * 1000.0);
    }

    // 4. Idle.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let cpu0 = cpu_seconds(pid);
    tokio::time::sleep(Duration::from_secs(idle_seconds)).await;
    let idle_cpu = (cpu_seconds(pid) - cpu0) / idle_seconds as f64 * 100.0;
    let rss_idle = rss_mib(pid);

    drop(berth);
    for ns in [&control, &dest] {
        let _ = namespaces.delete(ns, &DeleteParams::background()).await;
    }

    let mut out = std::io::stdout().lock();
    writeln!(out, "\n| measure | result |\n|---|---|").unwrap();
    writeln!(out, "| {n} apps created (API calls from the bench) | {created:.1} s |").unwrap();
    writeln!(
        out,
        "| {n} apps, one ConfigMap each, created at once → all Synced | {all_synced:.1} s ({:.0} apps/s) |",
        n as f64 / all_synced
    )
    .unwrap();
    writeln!(
        out,
        "| commit giving each app 10 objects ({} objects) → all Synced | {ten_synced:.1} s |",
        n * 10
    )
    .unwrap();
    writeln!(out, "| RSS at start / {n} apps / {n} apps + {} objects / after idle | {rss_start:.0} / {rss_one:.0} / {rss_ten:.0} / {rss_idle:.0} MiB |", n * 10).unwrap();
    writeln!(
        out,
        "| commit → applied, refresh requested (p50 / p90, {trials} trials) | {:.0} / {:.0} ms |",
        percentile(&mut commit_latency.clone(), 0.5),
        percentile(&mut commit_latency, 0.9)
    )
    .unwrap();
    writeln!(
        out,
        "| drift → reverted by selfHeal (p50 / p90, {trials} trials) | {:.0} / {:.0} ms |",
        percentile(&mut drift_latency.clone(), 0.5),
        percentile(&mut drift_latency, 0.9)
    )
    .unwrap();
    writeln!(out, "| CPU while idle over {idle_seconds} s ({n} unchanged apps, polling every 120 s + jitter) | {idle_cpu:.2} % of a core |").unwrap();
}
