//! The controller benchmark against the local cluster (`hack/bench`): the real `berth run` binary, 1,000
//! Applications in one git repository.
//!
//! 1. 1,000 Applications, one ConfigMap each, created at once: seconds until all are Synced.
//! 2. A commit giving every app 10 ConfigMaps (10,000 objects): seconds until all are Synced, and RSS.
//! 3. Commit to applied once a refresh is requested, and drift to reverted by selfHeal: p50 and p90.
//! 4. CPU used by the unchanged apps while idle (`BENCH_IDLE_SECONDS`, default 300).
//!
//! Sizes can be lowered for a quick look: `BENCH_APPS=100 hack/bench`.

mod common;

use common::*;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use std::io::Write;
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() {
    let n = env_num("BENCH_APPS", 1000) as usize;
    let idle_seconds = env_num("BENCH_IDLE_SECONDS", 300);
    let trials = env_num("BENCH_TRIALS", 20) as usize;
    let client = kube::Client::try_default().await.expect("KUBECONFIG: run through hack/bench");
    let suffix = std::process::id();
    let control = format!("bench-{suffix}");
    let dest = format!("bench-dest-{suffix}");
    let namespaces = make_namespaces(&client, &[&control, &dest]).await;

    let work = tempfile::tempdir().unwrap();
    let (repo, url, first) = repo_of_apps(work.path(), n, "apps");

    let berth = start_berth(&client, &control, work.path()).await;
    let pid = berth.pid;
    let apps: Api<berth_api::Application> = Api::namespaced(client.clone(), &control);
    let rss_start = rss_mib(pid);

    // 1. n apps at once.
    let started = Instant::now();
    create_apps(&apps, n, &url, &control, &dest).await;
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
        let t0 = Instant::now();
        request_refresh(&apps, "app-0000").await;
        wait_value(&cms, "app-0000-0", &value).await;
        commit_latency.push(t0.elapsed().as_secs_f64() * 1000.0);
        wait_refresh_taken(&apps, "app-0000").await;
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
