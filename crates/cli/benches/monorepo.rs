//! The monorepo benchmark (`hack/bench monorepo`): the real `berth run` binary with one git repository
//! holding 1,000 directory apps of 5 manifests each, 100 Kustomize overlays and 100 Helm releases.
//!
//! 1. Cold: every Application created at once → all Synced; berth's peak memory meanwhile.
//! 2. A commit that touches one app, then a refresh of every app (what a webhook for the repository
//!    does): seconds until every app reports the new revision, and how many were rendered again.
//! 3. Renders per second of one Helm and one Kustomize app with the real tools (no cache), and the
//!    same app refreshed on an unchanged commit (the render cache answers).
//!
//! Sizes: `BENCH_DIR_APPS`, `BENCH_KUSTOMIZE_APPS`, `BENCH_HELM_APPS`, `BENCH_RENDERS`.

mod common;

use common::*;
use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

fn write(repo: &Path, rel: &str, text: &str) {
    let path = repo.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn config_map(name: &str, value: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  value: \"{value}\"\n")
}

fn write_repo(repo: &Path, dirs: usize, kustomize: usize, helm: usize) {
    for i in 0..dirs {
        for j in 0..5 {
            write(
                repo,
                &format!("apps/dir-{i:04}/cm-{j}.yaml"),
                &config_map(&format!("dir-{i:04}-{j}"), "1"),
            );
        }
    }
    for i in 0..kustomize {
        let root = format!("apps/kust-{i:03}");
        write(repo, &format!("{root}/base/cm.yaml"), &config_map("settings", "1"));
        write(repo, &format!("{root}/base/kustomization.yaml"), "resources: [cm.yaml]\n");
        write(
            repo,
            &format!("{root}/overlays/prod/kustomization.yaml"),
            &format!("resources: [../../base]\nnamePrefix: kust-{i:03}-\nlabels:\n- pairs: {{env: prod}}\n"),
        );
    }
    write(repo, "charts/web/Chart.yaml", "apiVersion: v2\nname: web\nversion: 0.1.0\n");
    write(repo, "charts/web/values.yaml", "value: \"1\"\n");
    write(
        repo,
        "charts/web/templates/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-settings\ndata:\n  value: {{ .Values.value | quote }}\n",
    );
    let _ = helm;
}

fn app(control: &str, dest: &str, url: &str, name: &str, source: serde_json::Value) -> serde_json::Value {
    let mut source = source;
    source["repoURL"] = url.into();
    source["targetRevision"] = "main".into();
    serde_json::json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": name, "namespace": control},
        "spec": {"project": "default", "source": source,
                 "destination": {"server": "https://kubernetes.default.svc", "namespace": dest},
                 "syncPolicy": {"automated": {"prune": true}}}
    })
}

/// Renders the controller has made so far (its `berth::render` debug lines).
fn renders_in_log(work: &Path) -> usize {
    std::fs::read_to_string(work.join("berth.log")).unwrap_or_default().matches(" rendered").count()
}

#[tokio::main]
async fn main() {
    let dirs = env_num("BENCH_DIR_APPS", 1000) as usize;
    let kustomize = env_num("BENCH_KUSTOMIZE_APPS", 100) as usize;
    let helm = env_num("BENCH_HELM_APPS", 100) as usize;
    let renders = env_num("BENCH_RENDERS", 20) as usize;
    let total = dirs + kustomize + helm;
    let client = kube::Client::try_default().await.expect("KUBECONFIG: run through hack/bench");
    let suffix = std::process::id();
    let control = format!("mono-{suffix}");
    let dest = format!("mono-dest-{suffix}");
    let namespaces = make_namespaces(&client, &[&control, &dest]).await;

    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    write_repo(&repo, dirs, kustomize, helm);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "monorepo"]);
    let first = git(&repo, &["rev-parse", "HEAD"]);
    let url = format!("file://{}", repo.display());

    // 3 first, before the cluster is busy: the tools alone.
    let tree = repo.clone();
    let ctx = berth_repo::render::ToolContext::new("web", &dest, work.path().join("renders"));
    let t0 = Instant::now();
    for _ in 0..renders {
        berth_repo::render::helm::render_helm_path(&tree, "charts/web", None, &ctx).expect("helm renders");
    }
    let helm_per_s = renders as f64 / t0.elapsed().as_secs_f64();
    let t0 = Instant::now();
    for _ in 0..renders {
        berth_repo::render::kustomize::render_kustomize(&tree, "apps/kust-000/overlays/prod", None, &ctx)
            .expect("kustomize renders");
    }
    let kustomize_per_s = renders as f64 / t0.elapsed().as_secs_f64();

    let berth =
        start_berth_with(&client, &control, work.path(), "warn,berth_controller=info,berth::render=debug")
            .await;
    let pid = berth.pid;
    let apps: Api<berth_api::Application> = Api::namespaced(client.clone(), &control);

    // 1. Cold.
    let mut bodies = Vec::new();
    for i in 0..dirs {
        let name = format!("dir-{i:04}");
        bodies.push(app(&control, &dest, &url, &name, serde_json::json!({"path": format!("apps/{name}")})));
    }
    for i in 0..kustomize {
        let name = format!("kust-{i:03}");
        bodies.push(app(
            &control,
            &dest,
            &url,
            &name,
            serde_json::json!({"path": format!("apps/{name}/overlays/prod")}),
        ));
    }
    for i in 0..helm {
        let name = format!("helm-{i:03}");
        bodies.push(app(
            &control,
            &dest,
            &url,
            &name,
            serde_json::json!({"path": "charts/web", "helm": {"valuesObject": {"value": format!("{i}")}}}),
        ));
    }
    let started = Instant::now();
    futures::stream::iter(bodies)
        .map(|body| {
            let apps = apps.clone();
            async move {
                let name = body["metadata"]["name"].as_str().unwrap().to_string();
                apps.patch(&name, &PatchParams::apply("berth-bench"), &Patch::Apply(&body)).await.map(|_| ())
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await
        .expect("creating apps");
    let cold = wait_all_synced(&apps, total, &first, started).await;
    let peak_cold = peak_rss_mib(pid);
    let rss_after = rss_mib(pid);

    // 2. One app changes; every app is asked to refresh.
    write(&repo, "apps/dir-0000/cm-0.yaml", &config_map("dir-0000-0", "2"));
    git(&repo, &["commit", "-q", "-am", "one app changes"]);
    let second = git(&repo, &["rev-parse", "HEAD"]);
    let renders_before = renders_in_log(work.path());
    let started = Instant::now();
    let names: Vec<String> = apps
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|a| a.metadata.name)
        .collect();
    futures::stream::iter(names)
        .map(|name| {
            let apps = apps.clone();
            async move {
                let patch = serde_json::json!({"metadata": {"annotations": {"argocd.argoproj.io/refresh": "normal"}}});
                apps.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await.map(|_| ())
            }
        })
        .buffer_unordered(64)
        .try_collect::<Vec<_>>()
        .await
        .expect("refreshing apps");
    let requested = started.elapsed().as_secs_f64();
    let deadline = started + Duration::from_secs(600);
    loop {
        let at = count_at(&apps, &second, false).await;
        if at >= total {
            break;
        }
        assert!(Instant::now() < deadline, "only {at}/{total} apps at the new revision after 600 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let moved = started.elapsed().as_secs_f64();
    let rendered = renders_in_log(work.path()) - renders_before;

    drop(berth);
    for ns in [&control, &dest] {
        let _ = namespaces.delete(ns, &DeleteParams::background()).await;
    }

    let mut out = std::io::stdout().lock();
    writeln!(out, "\n| measure | result |\n|---|---|").unwrap();
    writeln!(out, "| {total} apps ({dirs} directories × 5 manifests, {kustomize} Kustomize overlays, {helm} Helm releases) created → all Synced | {cold:.1} s |").unwrap();
    writeln!(
        out,
        "| berth's peak RSS during that cold start / RSS after it | {peak_cold:.0} / {rss_after:.0} MiB |"
    )
    .unwrap();
    writeln!(out, "| a commit touching one app, refresh of every app requested → all {total} at the new revision | {moved:.1} s (requests sent in {requested:.1} s) |").unwrap();
    writeln!(out, "| apps rendered again for that commit | {rendered} of {total} |").unwrap();
    writeln!(out, "| `helm template` of one chart, no cache | {helm_per_s:.1} renders/s |").unwrap();
    writeln!(out, "| `kustomize build` of one overlay, no cache | {kustomize_per_s:.1} renders/s |").unwrap();
}
