//! Sync windows on the real local cluster: a change freeze (an AppProject deny window open now) holds an
//! auto-sync application still through a push and a hand-made drift, refuses a requested sync before
//! anything is applied, and lets everything through once it is lifted. Every check reads the Kubernetes
//! API server.

mod common;

use berth_api::AppProject;
use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use std::time::Duration;

/// The image and replicas of the `web` Deployment in `ns`.
async fn web(client: &kube::Client, ns: &str) -> (String, Option<i32>) {
    let d = Api::<Deployment>::namespaced(client.clone(), ns).get("web").await.unwrap();
    let spec = d.spec.unwrap();
    let image = spec.template.spec.unwrap().containers[0].image.clone().unwrap_or_default();
    (image, spec.replicas)
}

/// The `freeze` project: anything, anywhere, within `windows`.
async fn freeze_project(bench: &Bench, windows: serde_json::Value) {
    let project = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject",
        "metadata": {"name": "freeze", "namespace": bench.namespace},
        "spec": {"sourceRepos": ["*"], "destinations": [{"server": "*", "namespace": "*"}],
                 "clusterResourceWhitelist": [{"group": "*", "kind": "*"}], "syncWindows": windows}});
    Api::<AppProject>::namespaced(bench.client.clone(), &bench.namespace)
        .patch("freeze", &PatchParams::apply("berth-test").force(), &Patch::Apply(&project))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_deny_window_freezes_auto_sync_self_heal_and_requested_syncs_until_it_is_removed() {
    let mut bench = Bench::start("windows").await;
    let repo = GitRepo::new();
    repo.write("apps/web/web.yaml", &web_manifests("myorg/web:v1"));
    let first = repo.commit("web v1");
    freeze_project(&bench, json!([])).await;
    let ns = bench.dest_namespace("frozen");
    let name = unique("frozen");
    let mut app = seed_web_app(&name, &repo.url(), &ns);
    app["spec"]["project"] = "freeze".into();
    bench.create_app(app).await;
    bench.wait_app(&name, "synced before the freeze", |a| sync_status(a) == "Synced").await;
    assert_eq!(web(&bench.client, &ns).await, ("myorg/web:v1".to_string(), Some(3)));

    // The freeze: a deny window open every minute for an hour, on every application of the project.
    freeze_project(
        &bench,
        json!([{"kind": "deny", "schedule": "* * * * *", "duration": "1h", "applications": ["*"]}]),
    )
    .await;
    repo.write("apps/web/web.yaml", &web_manifests("myorg/web:v2"));
    let second = repo.commit("web v2");
    bench.refresh(&name).await;
    let held = bench
        .wait_app(&name, "v2 seen, held back by the window", |a| {
            a["status"]["sync"]["revision"] == second.as_str()
                && sync_status(a) == "OutOfSync"
                && conditions(a).contains("blocked by sync window")
        })
        .await;
    assert!(
        conditions(&held).contains("deny window 0 ('* * * * *' for 1h, UTC) is active"),
        "{}",
        conditions(&held)
    );
    // A hand-made drift is not healed either.
    Api::<Deployment>::namespaced(bench.client.clone(), &ns)
        .patch("web", &PatchParams::default(), &Patch::Merge(&json!({"spec": {"replicas": 1}})))
        .await
        .unwrap();
    // Several polling periods (2s here) pass with the app out of sync.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let still = bench.app(&name).await;
    assert_eq!(sync_status(&still), "OutOfSync");
    assert_eq!(still["status"]["operationState"]["syncResult"]["revision"], first.as_str(), "no sync ran");
    assert_eq!(web(&bench.client, &ns).await, ("myorg/web:v1".to_string(), Some(1)), "neither v2 nor healed");

    // A sync written onto the Application (as kubectl could) is refused before anything is applied.
    let refused = bench
        .operate(&name, json!({"sync": {"revision": second.as_str()}, "initiatedBy": {"username": "admin"}}))
        .await;
    assert_eq!(phase(&refused), "Failed");
    let message = refused["status"]["operationState"]["message"].as_str().unwrap_or_default();
    assert!(message.starts_with("cannot sync: blocked by sync window: deny window 0"), "{message}");
    assert_eq!(web(&bench.client, &ns).await, ("myorg/web:v1".to_string(), Some(1)));
    assert_eq!(
        refused["status"]["history"].as_array().map(Vec::len),
        Some(1),
        "the refused sync is not in the history"
    );

    // Lifted: the push is synced and the drift healed, without being asked.
    freeze_project(&bench, json!([])).await;
    bench
        .wait_app(&name, "synced to v2 once the window is gone", |a| {
            sync_status(a) == "Synced"
                && phase(a) == "Succeeded"
                && a["status"]["operationState"]["syncResult"]["revision"] == second.as_str()
        })
        .await;
    let client = bench.client.clone();
    let dest = ns.clone();
    poll("v2 with 3 replicas", TIMEOUT, || {
        let (client, dest) = (client.clone(), dest.clone());
        async move { web(&client, &dest).await == ("myorg/web:v2".to_string(), Some(3)) }
    })
    .await;
    let lifted = bench.app(&name).await;
    assert!(!conditions(&lifted).contains("sync window"), "{}", conditions(&lifted));
    bench.cleanup().await;
}

#[tokio::test]
async fn manual_sync_lets_a_person_through_a_deny_window_that_allows_it() {
    let mut bench = Bench::start("windows-manual").await;
    let repo = GitRepo::new();
    repo.write("apps/web/web.yaml", &web_manifests("myorg/web:v1"));
    let commit = repo.commit("web v1");
    freeze_project(
        &bench,
        json!([{"kind": "deny", "schedule": "* * * * *", "duration": "1h", "namespaces": ["*"],
                "manualSync": true}]),
    )
    .await;
    let ns = bench.dest_namespace("manual");
    let name = unique("manual");
    let mut app = seed_web_app(&name, &repo.url(), &ns);
    app["spec"]["project"] = "freeze".into();
    bench.create_app(app).await;
    let held =
        bench.wait_app(&name, "auto-sync held", |a| conditions(a).contains("blocked by sync window")).await;
    assert!(conditions(&held).contains("manual syncs are allowed"), "{}", conditions(&held));
    assert_eq!(sync_status(&held), "OutOfSync");
    let synced = bench
        .operate(&name, json!({"sync": {"revision": commit.as_str()}, "initiatedBy": {"username": "admin"}}))
        .await;
    assert_eq!(phase(&synced), "Succeeded", "{}", synced["status"]["operationState"]["message"]);
    assert_eq!(web(&bench.client, &ns).await.0, "myorg/web:v1");
    bench.cleanup().await;
}
