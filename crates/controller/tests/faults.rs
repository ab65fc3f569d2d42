//! Faults of the control plane under a running controller: kube-apiserver restarted, then etcd, in the
//! middle of a sync, on a cluster of the tests' own (`hack/cluster up --name berth-fault`, its kubeconfig in
//! `BERTH_TEST_FAULT_KUBECONFIG`), so the other tests never see their API server go away. The controller
//! must recover by itself: the operation completes and self-heal reverts drift made after recovery.

mod common;

use berth_testkit::clusters::LocalCluster;
use common::*;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use std::time::{Duration, Instant};

/// The fault cluster's kubeconfig; panics naming the variable when it is unset.
fn fault_kubeconfig() -> String {
    std::env::var("BERTH_TEST_FAULT_KUBECONFIG").expect(
        "BERTH_TEST_FAULT_KUBECONFIG names the kubeconfig of the cluster the fault tests restart \
         (hack/cluster up --name berth-fault): run the tests through hack/test",
    )
}

/// `hack/cluster restart <component> --name <cluster>`, off the runtime (the controller goes on meanwhile);
/// returns once the component is healthy again.
async fn restart(component: &'static str, cluster: &str) {
    let cluster = cluster.to_string();
    tokio::task::spawn_blocking(move || {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let status = std::process::Command::new(root.join("hack/cluster"))
            .args(["restart", component, "--name", &cluster])
            .status()
            .expect("hack/cluster runs");
        assert!(status.success(), "hack/cluster restart {component} --name {cluster} failed: {status}");
    })
    .await
    .unwrap();
}

/// Changes the managed ConfigMap by hand and returns how long self-heal took to put git's value back.
async fn drift_reverted_in(cms: &Api<ConfigMap>) -> Duration {
    let started = Instant::now();
    let drift = json!({"data": {"value": "drift"}});
    cms.patch("settings", &PatchParams::default(), &Patch::Merge(&drift))
        .await
        .expect("the drift is written");
    loop {
        let live = cms.get("settings").await.unwrap();
        if live.data.unwrap_or_default().get("value").map(String::as_str) == Some("from-git") {
            return started.elapsed();
        }
        assert!(started.elapsed() < TIMEOUT, "self-heal did not revert the drift within {TIMEOUT:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How long the sync may take after a restart: its Deployment is Available only once kube-controller-manager
/// has watched again, which its own backoff (up to half a minute) decides, not berth.
const SYNC_AFTER_RESTART: Duration = Duration::from_secs(120);

/// Waits until the operation succeeded and the app is Synced (to `revision`, when one is given).
async fn completed(bench: &Bench, name: &str, revision: &str) -> serde_json::Value {
    let deadline = Instant::now() + SYNC_AFTER_RESTART;
    loop {
        let app = bench.app(name).await;
        let at_revision = revision.is_empty() || app["status"]["sync"]["revision"] == revision;
        if phase(&app) == "Succeeded" && sync_status(&app) == "Synced" && at_revision {
            return app;
        }
        assert!(
            Instant::now() < deadline,
            "the sync did not complete within {SYNC_AFTER_RESTART:?} of the restart; status:\n{}",
            serde_json::to_string_pretty(&app["status"]).unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_controller_recovers_by_itself_from_an_api_server_and_an_etcd_restart_mid_sync() {
    let cluster = LocalCluster::open(&fault_kubeconfig()).await;
    let mut bench = Bench::start_on("faults", cluster.client.clone()).await;
    let repo = GitRepo::new();
    // A Deployment (kwok makes it Available after a few seconds) holds the sync at wave 0; the ConfigMap
    // comes in wave 1, so the sync is in flight when the API server goes.
    repo.write("app/web.yaml", &web_manifests("nginx:1.27"));
    repo.write(
        "app/settings.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  annotations:\n    argocd.argoproj.io/sync-wave: \"1\"\ndata:\n  value: from-git\n",
    );
    repo.commit("first");
    let ns = bench.dest_namespace("faults");
    let cms: Api<ConfigMap> = Api::namespaced(bench.client.clone(), &ns);

    let name = unique("faults");
    let mut app = seed_web_app(&name, &repo.url(), &ns);
    app["spec"]["source"]["path"] = "app".into();
    bench.create_app(app).await;
    bench.wait_app(&name, "the first sync started", |a| !phase(a).is_empty()).await;
    let mut revision = String::new();
    for component in ["kube-apiserver", "etcd"] {
        if component == "etcd" {
            // A second commit: auto-sync starts the next sync, and etcd goes away under it.
            repo.write("app/web.yaml", &web_manifests("nginx:1.28"));
            revision = repo.commit("second");
            bench.refresh(&name).await;
            bench
                .wait_app(&name, "the second sync started", |a| {
                    a["status"]["operationState"]["operation"]["sync"]["revision"] == revision.as_str()
                })
                .await;
        }
        let down = Instant::now();
        restart(component, &cluster.name).await;
        let back = Instant::now();
        let app = completed(&bench, &name, &revision).await;
        assert_eq!(health(&app), "Healthy", "{}", conditions(&app));
        let synced_after = back.elapsed();
        let reverted = drift_reverted_in(&cms).await;
        println!(
            "{component} restart: down for {:.1?}; sync finished {synced_after:.1?} after it was healthy again; \
             a drift made then was reverted in {reverted:.1?}",
            back - down
        );
        assert!(
            reverted < Duration::from_secs(10),
            "self-heal took {reverted:?} after the {component} restart"
        );
    }
    bench.cleanup().await;
}
