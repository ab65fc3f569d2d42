//! A controller restarted over Synced applications: it reaches every one again and writes nothing to the
//! cluster (no apply, no status write, no Event) when nothing changed, whether it was stopped cleanly or
//! killed. The writes are counted from the API server's watches, from the resourceVersion recorded after
//! the stop.

mod common;

use common::*;
use k8s_openapi::api::core::v1::{ConfigMap, Event};
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;
use std::time::{Duration, Instant};

const APPS: usize = 30;

/// Restarts the controller (`kill`: aborted mid-flight, else a graceful stop) and returns the writes the
/// new one made to the Applications, the managed ConfigMaps and the Events until it had passed over every
/// application once with its queue drained, and the time that took.
async fn restart(bench: &mut Bench, dest: &str, names: &[String], kill: bool) -> (Vec<String>, Duration) {
    if kill {
        bench.kill_controller().await;
    } else {
        bench.stop_controller().await;
    }
    let apps = bench.apps();
    let maps: Api<ConfigMap> = Api::namespaced(bench.client.clone(), dest);
    let events: Api<Event> = Api::namespaced(bench.client.clone(), &bench.namespace);
    // A list's resourceVersion is the store's at that moment: every write after it is a watch event.
    let rv = maps.list_metadata(&ListParams::default()).await.unwrap().metadata.resource_version.unwrap();
    let watches = [
        writes_until_sentinel(apps.clone(), rv.clone()),
        writes_until_sentinel(maps.clone(), rv.clone()),
        writes_until_sentinel(events.clone(), rv.clone()),
    ];

    // A fresh view: the old controller may linger in the old one until its last task ends.
    bench.view = Default::default();
    let started = Instant::now();
    bench.start_controller();
    let view = bench.view.clone();
    let names = names.to_vec();
    poll("every application passed over once, the queue drained", TIMEOUT, || {
        let (view, names) = (view.clone(), names.clone());
        async move {
            view.get().is_some_and(|c| names.iter().all(|n| c.passes(n) > 0))
                && berth_controller::metrics::global()
                    .render()
                    .contains("workqueue_depth{name=\"app_reconciliation_queue\"} 0")
        }
    })
    .await;
    let took = started.elapsed();

    // Sentinels close the watches: each arrives after every write made before it.
    let sentinel = |kind: &str, name: &str, ns: &str| {
        json!({"apiVersion": "v1", "kind": kind, "metadata": {"name": name, "namespace": ns,
            "annotations": {SENTINEL: "true", "argocd.argoproj.io/skip-reconcile": "true"}}})
    };
    let mark = unique("sentinel");
    let mut app = sentinel("Application", &mark, &bench.namespace);
    app["apiVersion"] = "argoproj.io/v1alpha1".into();
    app["spec"] = json!({"project": "default", "destination": {"server": "https://kubernetes.default.svc"},
        "source": {"repoURL": "file:///nowhere", "path": "."}});
    apps.patch(&mark, &PatchParams::apply("berth-test"), &Patch::Apply(&app)).await.unwrap();
    apply_json(&bench.client, dest, sentinel("ConfigMap", &mark, dest)).await;
    let mut event = sentinel("Event", &mark, &bench.namespace);
    event["involvedObject"] = json!({"kind": "ConfigMap", "name": mark, "namespace": bench.namespace});
    event["reason"] = "Sentinel".into();
    events.patch(&mark, &PatchParams::apply("berth-test"), &Patch::Apply(&event)).await.unwrap();
    let mut writes = Vec::new();
    for watch in watches {
        writes.extend(tokio::time::timeout(TIMEOUT, watch).await.expect("the sentinel arrives").unwrap());
    }
    apps.delete(&mark, &Default::default()).await.unwrap();
    (writes, took)
}

#[tokio::test]
async fn a_restarted_controller_reconciles_synced_apps_without_writing_anything() {
    let mut bench = Bench::start("restart").await;
    // A polling period far longer than the test: a write could only come from the restart itself.
    apply_json(
        &bench.client,
        &bench.namespace.clone(),
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "argocd-cm", "namespace": bench.namespace},
            "data": {"timeout.reconciliation": "180s", "timeout.reconciliation.jitter": "0s",
                "berth.repositories.allowFileURLs": "true"}}),
    )
    .await;
    let repo = GitRepo::new();
    let dest = bench.dest_namespace("restart-dest");
    let names: Vec<String> = (0..APPS).map(|i| format!("app-{i}")).collect();
    for name in &names {
        repo.write(
            &format!("apps/{name}/config.yaml"),
            &format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  app: {name}\n"),
        );
    }
    repo.commit("thirty apps");
    for name in &names {
        bench
            .create_app(json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
                "metadata": {"name": name},
                "spec": {"project": "default",
                    "source": {"repoURL": repo.url(), "path": format!("apps/{name}"), "targetRevision": "main"},
                    "destination": {"server": "https://kubernetes.default.svc", "namespace": dest},
                    "syncPolicy": {"automated": {"prune": true, "selfHeal": true},
                        "syncOptions": ["CreateNamespace=true"]}}}))
            .await;
    }
    for name in &names {
        bench
            .wait_app(name, "Synced and Healthy", |a| {
                sync_status(a) == "Synced" && health(a) == "Healthy" && phase(a) == "Succeeded"
            })
            .await;
    }

    let (writes, took) = restart(&mut bench, &dest, &names, false).await;
    println!("restart after a clean stop: {APPS} apps reconciled in {took:?}, {} writes", writes.len());
    assert!(writes.is_empty(), "a restart with nothing changed wrote: {writes:#?}");

    let (writes, took) = restart(&mut bench, &dest, &names, true).await;
    println!("restart after a kill: {APPS} apps reconciled in {took:?}, {} writes", writes.len());
    assert!(writes.is_empty(), "a restart after a kill with nothing changed wrote: {writes:#?}");

    bench.cleanup().await;
}
