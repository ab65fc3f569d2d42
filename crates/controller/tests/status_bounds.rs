//! An Application's status stays bounded whatever its spec holds, and a manual sync ends in one write,
//! on the real local cluster.

mod common;

use berth_api::Application;
use common::*;
use futures::StreamExt;
use kube::api::{WatchEvent, WatchParams};
use serde_json::json;
use std::time::Duration;

/// A chart of one ConfigMap that reads the values' `blob`.
fn chart_repo() -> GitRepo {
    let repo = GitRepo::new();
    repo.write("chart/Chart.yaml", "apiVersion: v2\nname: blob\nversion: 0.1.0\n");
    repo.write("chart/values.yaml", "blob: none\n");
    repo.write(
        "chart/templates/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: blob\ndata:\n  size: {{ len .Values.blob | quote }}\n",
    );
    repo.commit("a chart");
    repo
}

fn app(name: &str, source: serde_json::Value, ns: &str) -> serde_json::Value {
    json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": name},
        "spec": {"project": "default", "source": source,
            "destination": {"server": "https://kubernetes.default.svc", "namespace": ns},
            "syncPolicy": {"syncOptions": ["CreateNamespace=true"]}}})
}

fn has_condition(app: &serde_json::Value, kind: &str) -> bool {
    app["status"]["conditions"].as_array().into_iter().flatten().any(|c| c["type"] == kind)
}

/// The serialised size of the Application's status as the API server stores it.
fn status_size(app: &serde_json::Value) -> usize {
    serde_json::to_vec(&app["status"]).unwrap().len()
}

#[tokio::test]
async fn one_mebibyte_of_helm_values_gives_a_condition_and_a_status() {
    let mut bench = Bench::start("bounds").await;
    let repo = chart_repo();
    let ns = bench.dest_namespace("bounds");
    let name = unique("bounds");
    let values = format!("blob: {}\n", "x".repeat(1024 * 1024));
    let source = json!({"repoURL": repo.url(), "path": "chart", "targetRevision": "HEAD",
        "helm": {"values": values}});
    bench.create_app(app(&name, source, &ns)).await;
    let compared = bench
        .wait_app(&name, "compared, with the condition", |a| {
            !sync_status(a).is_empty() && has_condition(a, "StatusTooLargeWarning")
        })
        .await;
    assert_eq!(sync_status(&compared), "OutOfSync", "{}", conditions(&compared));
    let kept = compared["status"]["sync"]["comparedTo"]["source"]["helm"]["values"].as_str().unwrap();
    assert!(kept.contains("sha256:"), "comparedTo keeps the values' digest: {kept}");
    assert!(status_size(&compared) < 64 * 1024, "status of {} bytes", status_size(&compared));

    let synced = bench.operate(&name, json!({"sync": {}})).await;
    assert_eq!(phase(&synced), "Succeeded", "{}", synced["status"]["operationState"]["message"]);
    let synced = bench.wait_app(&name, "Synced", |a| sync_status(a) == "Synced").await;
    assert!(has_condition(&synced, "StatusTooLargeWarning"));
    let history = &synced["status"]["history"][0]["source"]["helm"]["values"];
    assert!(history.as_str().unwrap().contains("sha256:"), "history keeps the digest: {history}");
    assert!(status_size(&synced) < 64 * 1024, "status of {} bytes", status_size(&synced));
    let cm: k8s_openapi::api::core::v1::ConfigMap =
        kube::Api::namespaced(bench.client.clone(), &ns).get("blob").await.unwrap();
    assert_eq!(cm.data.unwrap()["size"], (1024 * 1024).to_string(), "the values were deployed whole");

    // The summarised copy compares equal to the spec while the values stay: a refresh keeps it Synced.
    let refreshed = bench.refreshed(&name).await;
    assert_eq!(sync_status(&refreshed), "Synced", "{}", conditions(&refreshed));
    bench.cleanup().await;
}

#[tokio::test]
async fn a_manual_sync_ends_in_one_write() {
    let mut bench = Bench::start("onewrite").await;
    let repo = GitRepo::new();
    repo.write("app/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: one\ndata:\n  a: b\n");
    repo.commit("one ConfigMap");
    let ns = bench.dest_namespace("onewrite");
    let name = unique("onewrite");
    let source = json!({"repoURL": repo.url(), "path": "app", "targetRevision": "HEAD"});
    bench.create_app(app(&name, source, &ns)).await;
    let compared = bench.wait_app(&name, "compared", |a| sync_status(a) == "OutOfSync").await;
    let rv = compared["metadata"]["resourceVersion"].as_str().unwrap().to_string();

    // Every write of the Application from here, until one that has the operation removed and finished.
    let api = bench.apps();
    let watch = tokio::spawn(async move {
        let mut stream = api.watch(&WatchParams::default().timeout(120), &rv).await.unwrap().boxed();
        let mut writes = Vec::new();
        while let Some(event) = stream.next().await {
            let app: Application = match event.unwrap() {
                WatchEvent::Modified(a) => a,
                WatchEvent::Bookmark(_) => continue,
                other => panic!("unexpected watch event {other:?}"),
            };
            let phase = app.status.as_ref().and_then(|s| s.operation_state.as_ref()).map(|s| s.phase.clone());
            let operation = app.operation.is_some();
            writes.push((operation, phase.clone().unwrap_or_default()));
            if !operation && matches!(phase.as_deref(), Some("Succeeded" | "Failed" | "Error")) {
                return writes;
            }
        }
        panic!("the watch ended before the sync did; writes so far: {writes:?}");
    });
    let synced = bench.operate(&name, json!({"sync": {}})).await;
    assert_eq!(phase(&synced), "Succeeded", "{}", synced["status"]["operationState"]["message"]);
    let writes = tokio::time::timeout(Duration::from_secs(30), watch).await.unwrap().unwrap();
    assert!(
        !writes.iter().any(|(operation, phase)| *operation && phase == "Succeeded"),
        "the end was recorded while the operation was still requested: {writes:?}"
    );
    assert_eq!(writes.last().unwrap(), &(false, "Succeeded".to_string()));
    assert_eq!(synced["status"]["history"].as_array().map(Vec::len), Some(1), "one sync, one entry");
    bench.cleanup().await;
}

#[tokio::test]
async fn an_automated_app_with_large_helm_values_takes_drift_for_drift_not_a_new_target() {
    let mut bench = Bench::start("boundsauto").await;
    let repo = chart_repo();
    let ns = bench.dest_namespace("boundsauto");
    let name = unique("boundsauto");
    let values = format!("blob: {}\n", "y".repeat(256 * 1024));
    let source = json!({"repoURL": repo.url(), "path": "chart", "targetRevision": "HEAD",
        "helm": {"values": values}});
    // A multi-source app (of one source): its sync result keeps `sources`.
    let mut automated = app(&name, json!(null), &ns);
    automated["spec"]["sources"] = json!([source]);
    automated["spec"].as_object_mut().unwrap().remove("source");
    automated["spec"]["syncPolicy"]["automated"] = json!({"prune": true});
    bench.create_app(automated).await;
    bench
        .wait_app(&name, "synced automatically", |a| sync_status(a) == "Synced" && phase(a) == "Succeeded")
        .await;
    // Drift without self-heal is reported, not synced: the last sync's summarised source is the spec's,
    // so its target is not taken for a new one.
    let cms: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(bench.client.clone(), &ns);
    let drift = json!({"data": {"size": "0"}});
    cms.patch("blob", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&drift)).await.unwrap();
    bench.refreshed(&name).await;
    bench.wait_app(&name, "OutOfSync after the drift", |a| sync_status(a) == "OutOfSync").await;
    let app = bench.refreshed(&name).await;
    assert_eq!(sync_status(&app), "OutOfSync", "{}", conditions(&app));
    assert_eq!(app["status"]["history"].as_array().map(Vec::len), Some(1), "one sync, one entry");
    bench.cleanup().await;
}
