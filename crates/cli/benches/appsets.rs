//! The ApplicationSet benchmark (`hack/bench appsets`): the release `berth run` (controller and API server in
//! one process) and one ApplicationSet whose git directories generator (`apps/*`) reads a monorepo of
//! `BENCH_APPSET_DIRS` (1,000) directories of one ConfigMap each, every app deployed into one namespace it may
//! create (`CreateNamespace=true`).
//!
//! 1. The set created → its Applications listed by the API server (the first, and all 1,000) → all Synced and
//!    Healthy.
//! 2. A commit adding one directory, announced by a GitHub push to `POST /api/webhook` → its Application
//!    listed → Synced and Healthy: p50 / p90 over `BENCH_TRIALS` (10).
//! 3. berth's RSS before the set and once the 1,000 are Synced; the set's generation alone, as
//!    `POST /api/v1/applicationsets/generate` answers it (p50 / p90), and each generation pass of the set's
//!    worker (generate and write), from berth's log.

mod common;

use common::*;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The set's name in its namespace.
const SET: &str = "monorepo";

/// `berth run` with the controller and a plain-HTTP API server on `port`, on the control namespace `control`;
/// returns once it answers `/healthz` and has created the default AppProject (its first act).
async fn start_server(client: &kube::Client, control: &str, port: u16, work: &Path) -> Berth {
    // The repository is a file:// URL, which berth refuses unless argocd-cm enables them.
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), control);
    let cm = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "argocd-cm"},
        "data": {"berth.repositories.allowFileURLs": "true"}});
    maps.patch("argocd-cm", &PatchParams::apply("berth-bench-file-urls"), &Patch::Apply(&cm)).await.unwrap();
    let log = std::fs::File::create(work.join("berth.log")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["run", "--insecure", "--address", "127.0.0.1", "--metrics-port", "0", "--namespace", control])
        .args(["--port", &port.to_string(), "--cache-dir"])
        .arg(work.join("cache"))
        // The set's worker logs each pass with its duration at debug.
        .env("RUST_LOG", "warn,berth_controller=info,berth_controller::appset=debug")
        .stderr(Stdio::from(log))
        .spawn()
        .expect("berth run");
    let berth = Berth::new(child);
    let http = reqwest::Client::new();
    let projects: Api<berth_api::AppProject> = Api::namespaced(client.clone(), control);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let healthy = http
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if healthy && projects.get_opt("default").await.unwrap().is_some() {
            return berth;
        }
        assert!(
            Instant::now() < deadline,
            "berth run did not start; see {}",
            work.join("berth.log").display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One Application per folder under `apps/`, named by the folder, auto-synced into `dest`.
fn application_set(control: &str, url: &str, dest: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "ApplicationSet",
        "metadata": {"name": SET, "namespace": control},
        "spec": {
            "generators": [{"git": {"repoURL": url, "revision": "main", "directories": [{"path": "apps/*"}]}}],
            "template": {
                "metadata": {"name": "{{path.basename}}"},
                "spec": {
                    "project": "default",
                    "source": {"repoURL": url, "targetRevision": "main", "path": "{{path}}"},
                    "destination": {"server": "https://kubernetes.default.svc", "namespace": dest},
                    "syncPolicy": {"automated": {"prune": true}, "syncOptions": ["CreateNamespace=true"]}
                }
            }
        }
    })
}

/// Synced and Healthy at `revision`.
fn deployed(app: &berth_api::Application, revision: &str) -> bool {
    let Some(status) = app.status.as_ref() else { return false };
    status.sync.as_ref().is_some_and(|s| s.status == "Synced" && s.revision.as_deref() == Some(revision))
        && status.health.as_ref().and_then(|h| h.status.as_deref()) == Some("Healthy")
}

/// A GitHub push of `after` on main adding `added`, as a git host sends it; berth's answer.
async fn push(
    http: &reqwest::Client,
    base: &str,
    url: &str,
    before: &str,
    after: &str,
    added: &str,
) -> serde_json::Value {
    let body = serde_json::json!({"ref": "refs/heads/main", "before": before, "after": after,
        "repository": {"html_url": url, "clone_url": url, "default_branch": "main"},
        "commits": [{"id": after, "added": [added], "modified": [], "removed": []}]});
    let response = http
        .post(format!("{base}/api/webhook"))
        .header("X-GitHub-Event", "push")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200, "the webhook");
    response.json().await.unwrap()
}

/// The durations (ms) of the set's generation passes (`level=Refresh`: generate, then write), from berth's log.
fn refresh_passes(work: &Path) -> Vec<f64> {
    std::fs::read_to_string(work.join("berth.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("applicationset reconciled") && l.contains("level=Refresh"))
        .filter_map(|l| l.split("elapsed_ms=").nth(1)?.split_whitespace().next()?.parse().ok())
        .collect()
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let n = env_num("BENCH_APPSET_DIRS", 1000) as usize;
    let trials = env_num("BENCH_TRIALS", 10) as usize;
    let client = kube::Client::try_default().await.expect("KUBECONFIG: run through hack/bench");
    let suffix = std::process::id();
    let control = format!("bench-appsets-{suffix}");
    // Made by the apps themselves (CreateNamespace=true).
    let dest = format!("bench-appsets-dest-{suffix}");
    let namespaces = make_namespaces(&client, &[&control]).await;

    let work = tempfile::tempdir().unwrap();
    let (repo, url, first) = repo_of_apps(work.path(), n, "monorepo");

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let berth = start_server(&client, &control, port, work.path()).await;
    let pid = berth.pid;
    let http = reqwest::Client::new();
    let token = berth_testkit::admin_token(&http, &base, &client, &control).await;
    let apps: Api<berth_api::Application> = Api::namespaced(client.clone(), &control);
    let sets: Api<berth_api::ApplicationSet> = Api::namespaced(client.clone(), &control);
    let rss_before = rss_mib(pid);

    // 1. The set created → its apps listed → all deployed.
    let set = application_set(&control, &url, &dest);
    let started = Instant::now();
    sets.patch(SET, &PatchParams::apply("berth-bench"), &Patch::Apply(&set)).await.expect("creating the set");
    let deadline = started + Duration::from_secs(900);
    let mut first_listed = None;
    let all_listed = loop {
        let listed = apps.list_metadata(&ListParams::default()).await.expect("listing apps").items.len();
        if listed > 0 && first_listed.is_none() {
            first_listed = Some(started.elapsed().as_secs_f64());
        }
        if listed >= n {
            break started.elapsed().as_secs_f64();
        }
        assert!(Instant::now() < deadline, "only {listed}/{n} apps listed after 900 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let first_listed = first_listed.unwrap_or(all_listed);
    let all_deployed = loop {
        let list = apps.list(&ListParams::default()).await.expect("listing apps");
        let ready = list.items.iter().filter(|a| deployed(a, &first)).count();
        if ready >= n {
            break started.elapsed().as_secs_f64();
        }
        assert!(Instant::now() < deadline, "only {ready}/{n} apps Synced and Healthy after 900 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let rss_deployed = rss_mib(pid);
    let peak_deployed = peak_rss_mib(pid);
    let first_pass = refresh_passes(work.path()).first().copied().unwrap_or(f64::NAN);
    eprintln!(
        "part 1: first app listed {first_listed:.2} s, all {n} listed {all_listed:.2} s, all Synced and Healthy {all_deployed:.2} s, first generation pass {first_pass:.0} ms"
    );

    // 2. A commit adds one folder; its push → its app listed → deployed.
    let passes_before = refresh_passes(work.path()).len();
    let mut before = first.clone();
    let (mut to_listed, mut to_deployed) = (Vec::new(), Vec::new());
    for t in 0..trials {
        let i = n + t;
        write_app(&repo, i, 1, "1");
        git(&repo, &["add", "-A"]);
        git(&repo, &["commit", "-q", "-m", &format!("app-{i:04}")]);
        let after = git(&repo, &["rev-parse", "HEAD"]);
        let name = format!("app-{i:04}");
        let t0 = Instant::now();
        push(&http, &base, &url, &before, &after, &format!("apps/{name}/config.yaml")).await;
        let deadline = t0 + Duration::from_secs(120);
        loop {
            if apps.get_opt(&name).await.unwrap().is_some() {
                break;
            }
            assert!(Instant::now() < deadline, "{name} not created 120 s after the push");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        to_listed.push(t0.elapsed().as_secs_f64() * 1000.0);
        loop {
            if apps.get_opt(&name).await.unwrap().is_some_and(|a| deployed(&a, &after)) {
                break;
            }
            assert!(Instant::now() < deadline, "{name} not Synced and Healthy 120 s after the push");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        to_deployed.push(t0.elapsed().as_secs_f64() * 1000.0);
        before = after;
    }
    let webhook_passes: Vec<f64> = refresh_passes(work.path()).into_iter().skip(passes_before).collect();

    // 3. The generation alone: the endpoint runs the set's generators as its worker does (the listing of the
    // repository at this commit is cached by now) and plans the creates; nothing is written.
    let total = n + trials;
    let stored = serde_json::to_value(sets.get(SET).await.unwrap()).unwrap();
    let request = serde_json::json!({"applicationSet": {"metadata": {"name": SET, "namespace": control},
        "spec": stored["spec"].clone()}});
    let mut generation = Vec::new();
    let mut answer_bytes = 0;
    for _ in 0..trials {
        let t0 = Instant::now();
        let response = http
            .post(format!("{base}/api/v1/applicationsets/generate"))
            .bearer_auth(&token)
            .json(&request)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "generate");
        let body = response.bytes().await.unwrap();
        generation.push(t0.elapsed().as_secs_f64() * 1000.0);
        answer_bytes = body.len();
        let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(answer["applications"].as_array().map(Vec::len), Some(total), "every folder generated");
    }
    let rss_end = rss_mib(pid);
    let peak_end = peak_rss_mib(pid);

    drop(berth);
    let _ = sets.delete(SET, &DeleteParams::background()).await;
    let all = Api::<Namespace>::all(client.clone());
    let _ = all.delete(&dest, &DeleteParams::background()).await;
    let _ = namespaces.delete(&control, &DeleteParams::background()).await;

    let p = |v: &[f64], q: f64| percentile(&mut v.to_vec(), q);
    let mut out = std::io::stdout().lock();
    writeln!(out, "\n| measure | result |\n|---|---|").unwrap();
    writeln!(
        out,
        "| one set, git directories `apps/*` over {n} folders (one ConfigMap each): created → first app listed / all {n} listed | {first_listed:.1} / {all_listed:.1} s |"
    )
    .unwrap();
    writeln!(out, "| the set created → all {n} apps Synced and Healthy | {all_deployed:.1} s |").unwrap();
    writeln!(
        out,
        "| the set worker's first pass (generate, then {n} creates 64 at a time), from its log | {:.0} ms |",
        first_pass
    )
    .unwrap();
    writeln!(
        out,
        "| a commit adding one folder, its push to `/api/webhook` → the app listed (p50 / p90, {trials} trials) | {:.0} / {:.0} ms |",
        p(&to_listed, 0.5),
        p(&to_listed, 0.9)
    )
    .unwrap();
    writeln!(
        out,
        "| the same push → that app Synced and Healthy (p50 / p90) | {:.0} / {:.0} ms |",
        p(&to_deployed, 0.5),
        p(&to_deployed, 0.9)
    )
    .unwrap();
    if !webhook_passes.is_empty() {
        writeln!(
            out,
            "| the set worker's generation passes after the pushes ({} passes; p50 / p90 / max) | {:.0} / {:.0} / {:.0} ms |",
            webhook_passes.len(),
            p(&webhook_passes, 0.5),
            p(&webhook_passes, 0.9),
            p(&webhook_passes, 1.0)
        )
        .unwrap();
    }
    writeln!(
        out,
        "| `POST /api/v1/applicationsets/generate` of the set, {total} apps ({:.1} MiB of JSON; p50 / p90) | {:.0} / {:.0} ms |",
        answer_bytes as f64 / 1048576.0,
        p(&generation, 0.5),
        p(&generation, 0.9)
    )
    .unwrap();
    writeln!(
        out,
        "| berth's RSS: before the set / {n} apps Synced (peak) / at the end (peak) | {rss_before:.0} / {rss_deployed:.0} ({peak_deployed:.0}) / {rss_end:.0} ({peak_end:.0}) MiB |"
    )
    .unwrap();
}
