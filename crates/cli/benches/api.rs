//! The API benchmark against the local cluster (`hack/bench api`): the release `berth run --controller=false`
//! serving 10,000 Applications, each with a realistic spec and a status of five resources and a history entry.
//!
//! 1. `GET /api/v1/applications`, all apps and one page of 100: p50 and p90 over `BENCH_TRIALS`.
//! 2. 50 watchers of `/api/v1/stream/applications` connect (each first gets every app as ADDED); then one
//!    app is patched, and the time until all 50 have its MODIFIED line is taken, p50 and p90.
//! 3. The server's RSS with the apps loaded, idle, and with the 50 watchers connected.
//!
//! Sizes: `BENCH_API_APPS` (10000), `BENCH_TRIALS` (20), `BENCH_WATCHERS` (50).

mod common;

use common::*;
use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// An Application as a cluster that has synced it holds it.
fn application(name: &str, namespace: &str, i: usize) -> serde_json::Value {
    let revision = format!("{:040x}", i as u128 * 0x9e37_79b9_7f4a_7c15);
    let source = serde_json::json!({"repoURL": "https://git.example.com/platform/manifests.git",
        "path": format!("apps/{name}/overlays/prod"), "targetRevision": "main"});
    let destination = serde_json::json!({"server": "https://kubernetes.default.svc", "namespace": name});
    let kinds = [
        ("apps", "Deployment", "Healthy"),
        ("", "Service", "Healthy"),
        ("", "ConfigMap", ""),
        ("", "ServiceAccount", ""),
        ("networking.k8s.io", "Ingress", "Healthy"),
    ];
    let resources: Vec<serde_json::Value> = kinds
        .iter()
        .map(|(group, kind, health)| {
            let mut r = serde_json::json!({"group": group, "version": "v1", "kind": kind, "namespace": name,
                "name": name, "status": "Synced"});
            if !health.is_empty() {
                r["health"] = serde_json::json!({"status": health});
            }
            r
        })
        .collect();
    let results: Vec<serde_json::Value> = kinds
        .iter()
        .map(|(group, kind, _)| {
            serde_json::json!({"group": group, "version": "v1", "kind": kind, "namespace": name, "name": name,
                "status": "Synced", "message": format!("{} {name} created", kind.to_lowercase()),
                "hookPhase": "Running", "syncPhase": "Sync"})
        })
        .collect();
    let at = "2026-01-01T00:00:00Z";
    serde_json::json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {"team": format!("team-{}", i % 20), "env": "prod", "tier": "web"},
                     "annotations": {"notifications.argoproj.io/subscribe.on-sync-failed.slack": "deploys"},
                     "finalizers": ["resources-finalizer.argocd.argoproj.io"]},
        "spec": {"project": "default", "source": source, "destination": destination,
                 "syncPolicy": {"automated": {"prune": true, "selfHeal": true},
                                "syncOptions": ["CreateNamespace=true", "ServerSideApply=true"],
                                "retry": {"limit": 5, "backoff": {"duration": "5s", "factor": 2, "maxDuration": "3m"}}},
                 "revisionHistoryLimit": 10},
        "status": {
            "resources": resources,
            "sync": {"status": "Synced", "revision": revision,
                     "comparedTo": {"source": source, "destination": destination}},
            "health": {"status": "Healthy", "lastTransitionTime": at},
            "history": [{"id": 1, "revision": revision, "deployedAt": at, "deployStartedAt": at,
                         "source": source, "initiatedBy": {"automated": true}}],
            "reconciledAt": at,
            "operationState": {
                "operation": {"sync": {"revision": revision, "prune": true}, "initiatedBy": {"automated": true},
                              "retry": {"limit": 5}},
                "phase": "Succeeded", "message": "successfully synced (all tasks run)",
                "startedAt": at, "finishedAt": at,
                "syncResult": {"revision": revision, "source": source, "resources": results}},
            "sourceType": "Kustomize",
            "summary": {"images": [format!("registry.example.com/{name}:1.{i}.0")]}
        }
    })
}

/// `berth run --controller=false` (the API server only) on `port`.
fn start_api_server(namespace: &str, port: u16, work: &std::path::Path) -> Berth {
    let log = std::fs::File::create(work.join("berth.log")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args([
            "run",
            "--controller=false",
            "--insecure",
            "--metrics-port",
            "0",
            "--address",
            "127.0.0.1",
            "--namespace",
            namespace,
        ])
        .args(["--port", &port.to_string()])
        .env("RUST_LOG", "warn")
        .stderr(Stdio::from(log))
        .spawn()
        .expect("berth run");
    Berth::new(child)
}

/// Seconds of one GET whose whole body is read, and the body's size.
async fn timed_get(http: &reqwest::Client, url: &str, token: &str) -> (f64, usize) {
    let t0 = Instant::now();
    let response = http.get(url).bearer_auth(token).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200, "{url}");
    let body = response.bytes().await.unwrap();
    (t0.elapsed().as_secs_f64(), body.len())
}

/// One watcher: reads the ADDED lines of every app, says so, then reports each MODIFIED line of the
/// benchmark's label as (trial, when).
async fn watch(
    http: reqwest::Client,
    url: String,
    token: String,
    apps: usize,
    ready: tokio::sync::mpsc::UnboundedSender<()>,
    seen: tokio::sync::mpsc::UnboundedSender<(u64, Instant)>,
) {
    let mut response = http.get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let mut buffer: Vec<u8> = Vec::new();
    let mut added = 0;
    let marker = b"\"bench-trial\":\"";
    // The stream ends when the benchmark stops the server.
    while let Ok(Some(chunk)) = response.chunk().await {
        let now = Instant::now();
        buffer.extend_from_slice(&chunk);
        let mut start = 0;
        while let Some(end) = buffer[start..].iter().position(|b| *b == b'\n') {
            let line = &buffer[start..start + end];
            start += end + 1;
            if line.starts_with(b"{\"result\":{\"type\":\"ADDED\"") {
                added += 1;
                if added == apps {
                    let _ = ready.send(());
                }
            } else if line.starts_with(b"{\"result\":{\"type\":\"MODIFIED\"")
                && let Some(at) = line.windows(marker.len()).position(|w| w == marker)
            {
                let digits = &line[at + marker.len()..];
                let trial = digits
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
                let _ = seen.send((trial, now));
            }
        }
        buffer.drain(..start);
    }
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let n = env_num("BENCH_API_APPS", 10_000) as usize;
    let trials = env_num("BENCH_TRIALS", 20) as usize;
    let watchers = env_num("BENCH_WATCHERS", 50) as usize;
    let client = kube::Client::try_default().await.expect("KUBECONFIG: run through hack/bench");
    let control = format!("bench-api-{}", std::process::id());
    let namespaces = make_namespaces(&client, &[&control]).await;
    let apps: Api<berth_api::Application> = Api::namespaced(client.clone(), &control);

    let started = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let apps = apps.clone();
            let control = control.clone();
            async move {
                let name = format!("app-{i:05}");
                let body = application(&name, &control, i);
                apps.patch(&name, &PatchParams::apply("berth-bench"), &Patch::Apply(&body)).await.map(|_| ())
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await
        .expect("creating apps");
    let created = started.elapsed().as_secs_f64();
    let size = serde_json::to_vec(&application("app-00000", &control, 0)).unwrap().len();

    let work = tempfile::tempdir().unwrap();
    let port = free_port();
    let berth = start_api_server(&control, port, work.path());
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !http.get(format!("{base}/healthz")).send().await.is_ok_and(|r| r.status().is_success()) {
        assert!(Instant::now() < deadline, "berth run did not answer; see {}", work.path().display());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let token = berth_testkit::admin_token(&http, &base, &client, &control).await;
    let list = format!("{base}/api/v1/applications");
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let page: serde_json::Value = http
            .get(format!("{list}?limit=1"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if page["metadata"]["remainingItemCount"].as_u64() == Some(n as u64 - 1) {
            break;
        }
        assert!(Instant::now() < deadline, "the server never listed {n} apps");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let loaded = started.elapsed().as_secs_f64() - created;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_idle = rss_mib(berth.pid);

    // 1. The list, whole and one page.
    let mut full = Vec::new();
    let mut full_bytes = 0;
    for _ in 0..trials {
        let (seconds, bytes) = timed_get(&http, &list, &token).await;
        full.push(seconds * 1000.0);
        full_bytes = bytes;
    }
    let rss_after_lists = rss_mib(berth.pid);
    let mut page = Vec::new();
    for _ in 0..trials {
        page.push(timed_get(&http, &format!("{list}?limit=100"), &token).await.0 * 1000.0);
    }
    // A page from the middle (its continue token is the last name before it).
    let mut middle = Vec::new();
    let first_half: serde_json::Value = http
        .get(format!("{list}?limit={}", n / 2))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token_after = first_half["metadata"]["continue"].as_str().expect("a continue token").to_string();
    for _ in 0..trials {
        middle.push(
            timed_get(&http, &format!("{list}?limit=100&continue={token_after}"), &token).await.0 * 1000.0,
        );
    }

    // 2. Fan-out to the stream's watchers.
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel();
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
    let connect = Instant::now();
    for _ in 0..watchers {
        tokio::spawn(watch(
            http.clone(),
            format!("{base}/api/v1/stream/applications"),
            token.clone(),
            n,
            ready_tx.clone(),
            seen_tx.clone(),
        ));
    }
    for _ in 0..watchers {
        tokio::time::timeout(Duration::from_secs(600), ready_rx.recv())
            .await
            .expect("watchers' initial lists");
    }
    let connected = connect.elapsed().as_secs_f64();
    let rss_watchers = rss_mib(berth.pid);
    let target = format!("app-{:05}", n / 3);
    let mut fan_out = Vec::new();
    for t in 0..trials as u64 {
        let patch = serde_json::json!({"metadata": {"labels": {"bench-trial": t.to_string()}}});
        let t0 = Instant::now();
        apps.patch(&target, &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
        let mut got = 0;
        let mut last = t0;
        while got < watchers {
            let (trial, at) = tokio::time::timeout(Duration::from_secs(60), seen_rx.recv())
                .await
                .expect("every watcher sees the change")
                .unwrap();
            if trial == t {
                got += 1;
                last = last.max(at);
            }
        }
        fan_out.push((last - t0).as_secs_f64() * 1000.0);
    }
    let rss_end = rss_mib(berth.pid);
    let peak = peak_rss_mib(berth.pid);

    drop(berth);
    let _ = namespaces.delete(&control, &DeleteParams::background()).await;

    let p = |samples: &Vec<f64>| {
        format!(
            "{:.1} / {:.1} ms",
            percentile(&mut samples.clone(), 0.5),
            percentile(&mut samples.clone(), 0.9)
        )
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "\n| measure | result |\n|---|---|").unwrap();
    writeln!(out, "| {n} Applications created (32 at once; {size} bytes of JSON each) | {created:.1} s |")
        .unwrap();
    writeln!(out, "| server started → all {n} listed | {loaded:.1} s |").unwrap();
    writeln!(
        out,
        "| `GET /api/v1/applications`, all {n} ({:.1} MiB), p50 / p90 of {trials} | {} |",
        full_bytes as f64 / 1048576.0,
        p(&full)
    )
    .unwrap();
    writeln!(out, "| `GET /api/v1/applications?limit=100`, first page, p50 / p90 | {} |", p(&page)).unwrap();
    writeln!(out, "| `?limit=100&continue=…`, a page from the middle, p50 / p90 | {} |", p(&middle)).unwrap();
    writeln!(
        out,
        "| {watchers} stream watchers connect and each receives all {n} apps as ADDED | {connected:.1} s |"
    )
    .unwrap();
    writeln!(
        out,
        "| one app patched → its MODIFIED line at all {watchers} watchers, p50 / p90 | {} |",
        p(&fan_out)
    )
    .unwrap();
    writeln!(
        out,
        "| server RSS: {n} apps idle / after the list trials / {watchers} watchers connected / at the end / peak | {rss_idle:.0} / {rss_after_lists:.0} / {rss_watchers:.0} / {rss_end:.0} / {peak:.0} MiB |"
    )
    .unwrap();
}
