//! The takeover benchmark (`hack/bench takeover`): what berth writes when it takes over a live Argo CD
//! estate. The objects are written as Argo CD's client-side apply leaves them (created by field manager
//! `argocd-controller`, operation `Update`, with the last-applied annotation and a tracking id), then the
//! real `berth run` binary starts on Applications with automated sync.
//!
//! 1. Every object equal to git: seconds until every app is Synced, and how many objects berth wrote
//!    (resourceVersion changed) by then, and after a requested sync of every app.
//! 2. Every app's git drops one data key that Argo CD had applied: how many objects change, and whether
//!    the key is gone from each.
//!
//! Sizes: `BENCH_TAKEOVER_APPS` (100) × `BENCH_TAKEOVER_OBJECTS` (10 ConfigMaps each).

mod common;

use common::*;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

fn write(repo: &Path, rel: &str, text: &str) {
    let path = repo.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn config_map_yaml(name: &str, dropped: bool) -> String {
    let extra = if dropped { "" } else { "  old: \"x\"\n" };
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  value: \"1\"\n{extra}")
}

/// The object as Argo CD's client-side apply creates it.
fn argo_cd_object(app: &str, ns: &str, name: &str) -> ConfigMap {
    let applied = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns,
            "annotations": {"argocd.argoproj.io/tracking-id": format!("{app}:/ConfigMap:{ns}/{name}")}},
        "data": {"value": "1", "old": "x"}});
    let mut obj = applied.clone();
    obj["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] =
        applied.to_string().into();
    serde_json::from_value(obj).unwrap()
}

async fn versions(maps: &Api<ConfigMap>) -> HashMap<String, String> {
    maps.list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|c| (c.metadata.name.unwrap(), c.metadata.resource_version.unwrap()))
        .collect()
}

fn written(before: &HashMap<String, String>, after: &HashMap<String, String>) -> usize {
    before.iter().filter(|(name, rv)| after.get(*name) != Some(*rv)).count()
}

#[tokio::main]
async fn main() {
    let apps_n = env_num("BENCH_TAKEOVER_APPS", 100) as usize;
    let per_app = env_num("BENCH_TAKEOVER_OBJECTS", 10) as usize;
    let total = apps_n * per_app;
    let client = kube::Client::try_default().await.expect("KUBECONFIG: run through hack/bench");
    let suffix = std::process::id();
    let control = format!("takeover-{suffix}");
    let dest = format!("takeover-dest-{suffix}");
    let namespaces = make_namespaces(&client, &[&control, &dest]).await;
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), &dest);

    // Git at the commit Argo CD synced: every object has `old`.
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    let mut objects = Vec::new();
    for a in 0..apps_n {
        for o in 0..per_app {
            let name = format!("app-{a:03}-{o:02}");
            write(&repo, &format!("apps/app-{a:03}/{name}.yaml"), &config_map_yaml(&name, false));
            objects.push(argo_cd_object(&format!("app-{a:03}"), &dest, &name));
        }
    }
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "as Argo CD synced it"]);
    let first = git(&repo, &["rev-parse", "HEAD"]);
    let url = format!("file://{}", repo.display());
    let params = PostParams { field_manager: Some("argocd-controller".into()), ..Default::default() };
    futures::stream::iter(objects)
        .map(|obj| {
            let (maps, params) = (maps.clone(), params.clone());
            async move { maps.create(&params, &obj).await.map(|_| ()) }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await
        .expect("creating Argo CD's objects");
    let before = versions(&maps).await;

    let berth = start_berth(&client, &control, work.path()).await;
    let apps: Api<berth_api::Application> = Api::namespaced(client.clone(), &control);
    let started = Instant::now();
    futures::stream::iter(0..apps_n)
        .map(|a| {
            let apps = apps.clone();
            let name = format!("app-{a:03}");
            let body = serde_json::json!({
                "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
                "metadata": {"name": name, "namespace": control},
                "spec": {"project": "default",
                    "source": {"repoURL": url, "targetRevision": "main", "path": format!("apps/{name}")},
                    "destination": {"server": "https://kubernetes.default.svc", "namespace": dest},
                    "syncPolicy": {"automated": {"prune": true, "selfHeal": true}}}});
            async move {
                apps.patch(&name, &PatchParams::apply("berth-bench"), &Patch::Apply(&body)).await.map(|_| ())
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await
        .expect("creating apps");
    let synced_after = wait_all_synced(&apps, apps_n, &first, started).await;
    let writes_taking_over = written(&before, &versions(&maps).await);

    // A requested sync of every app: objects equal to git are still not written.
    let synced = Instant::now();
    futures::stream::iter(0..apps_n)
        .map(|a| {
            let apps = apps.clone();
            let patch = serde_json::json!({"operation": {"sync": {"revision": first}, "info": [{"name": "bench", "value": "sync-all"}]}});
            async move {
                apps.patch(&format!("app-{a:03}"), &PatchParams::default(), &Patch::Merge(&patch)).await.map(|_| ())
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await
        .expect("requesting syncs");
    let deadline = synced + Duration::from_secs(600);
    loop {
        let list = apps.list(&ListParams::default()).await.unwrap();
        let done = list
            .items
            .iter()
            .filter(|a| {
                a.operation.is_none()
                    && a.status.as_ref().and_then(|s| s.operation_state.as_ref()).is_some_and(|s| {
                        s.phase == "Succeeded" && s.operation.info.iter().any(|i| i.value == "sync-all")
                    })
            })
            .count();
        if done >= apps_n {
            break;
        }
        assert!(Instant::now() < deadline, "only {done}/{apps_n} syncs finished after 600 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let writes_after_sync = written(&before, &versions(&maps).await);

    // 2. Git drops `old` from every object.
    for a in 0..apps_n {
        for o in 0..per_app {
            let name = format!("app-{a:03}-{o:02}");
            write(&repo, &format!("apps/app-{a:03}/{name}.yaml"), &config_map_yaml(&name, true));
        }
    }
    git(&repo, &["commit", "-q", "-am", "drop old"]);
    let second = git(&repo, &["rev-parse", "HEAD"]);
    let before_drop = versions(&maps).await;
    let dropped = Instant::now();
    for a in 0..apps_n {
        let patch =
            serde_json::json!({"metadata": {"annotations": {"argocd.argoproj.io/refresh": "normal"}}});
        apps.patch(&format!("app-{a:03}"), &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    }
    let drop_synced = wait_all_synced(&apps, apps_n, &second, dropped).await;
    let list = maps.list(&ListParams::default()).await.unwrap().items;
    let still_old = list.iter().filter(|c| c.data.as_ref().is_some_and(|d| d.contains_key("old"))).count();
    let writes_drop = written(&before_drop, &versions(&maps).await);
    drop(berth);

    let mut out = std::io::stdout().lock();
    writeln!(out, "| takeover of {total} objects in {apps_n} apps, applied by Argo CD client-side | berth |")
        .unwrap();
    writeln!(out, "|---|---|").unwrap();
    writeln!(out, "| objects equal to git: all apps Synced after | {synced_after:.1} s |").unwrap();
    writeln!(out, "| objects written by then | {writes_taking_over} of {total} |").unwrap();
    writeln!(out, "| objects written after a requested sync of every app | {writes_after_sync} of {total} |")
        .unwrap();
    writeln!(
        out,
        "| git drops a key Argo CD applied on every object: all Synced after | {drop_synced:.1} s |"
    )
    .unwrap();
    writeln!(
        out,
        "| objects written for that / still holding the dropped key | {writes_drop} / {still_old} |"
    )
    .unwrap();
    for ns in [&control, &dest] {
        let _ = namespaces.delete(ns, &Default::default()).await;
    }
}
