//! Argo CD settings and annotations that used to be ignored in silence, on the real local cluster:
//! `resource.exclusions` (an excluded kind is never created), `argocd.argoproj.io/skip-reconcile`,
//! `compare-options: IgnoreExtraneous`, and health assessed through a comparison error.

mod common;

use common::*;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

fn config_map(name: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata: {{v: \"1\"}}\n")
}

fn app(name: &str, repo: &GitRepo, ns: &str, automated: bool) -> serde_json::Value {
    let mut app = seed_web_app(name, &repo.url(), ns);
    app["spec"]["source"]["path"] = "app".into();
    app["spec"]["syncPolicy"] = if automated {
        json!({"automated": {"prune": true, "selfHeal": true}, "syncOptions": ["CreateNamespace=true"]})
    } else {
        json!({"syncOptions": ["CreateNamespace=true"]})
    };
    app
}

/// Merges `data` into the bench's argocd-cm with the controller stopped, so it starts with them.
async fn restart_with_argocd_cm(bench: &mut Bench, data: serde_json::Value) {
    bench.stop_controller().await;
    let cm: Api<ConfigMap> = Api::namespaced(bench.client.clone(), &bench.namespace);
    cm.patch("argocd-cm", &PatchParams::default(), &Patch::Merge(&json!({"data": data}))).await.unwrap();
    bench.start_controller();
}

#[tokio::test]
async fn an_excluded_kind_is_never_created_and_the_app_says_why() {
    let mut bench = Bench::start("exclusions").await;
    restart_with_argocd_cm(
        &mut bench,
        json!({"resource.exclusions": "- apiGroups: [\"\"]\n  kinds: [Secret]\n"}),
    )
    .await;
    let repo = GitRepo::new();
    repo.write("app/cm.yaml", &config_map("plain"));
    repo.write(
        "app/secret.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: excluded\nstringData: {k: v}\n",
    );
    repo.commit("first");
    let ns = bench.dest_namespace("exclusions");
    let name = unique("exclusions");
    bench.create_app(app(&name, &repo, &ns, true)).await;
    let cms: Api<ConfigMap> = Api::namespaced(bench.client.clone(), &ns);
    poll("the ConfigMap applied", TIMEOUT, || async { cms.get_opt("plain").await.ok().flatten().is_some() })
        .await;
    let app = bench.wait_app(&name, "synced", |a| sync_status(a) == "Synced").await;
    let secrets: Api<Secret> = Api::namespaced(bench.client.clone(), &ns);
    assert!(secrets.get_opt("excluded").await.unwrap().is_none(), "an excluded kind was created");
    let conditions = conditions(&app);
    assert!(
        conditions.contains("ExcludedResourceWarning") && conditions.contains("app/secret.yaml"),
        "{conditions}"
    );
    bench.cleanup().await;
}

#[tokio::test]
async fn skip_reconcile_leaves_an_app_alone_until_the_annotation_goes() {
    let mut bench = Bench::start("skip").await;
    let repo = GitRepo::new();
    repo.write("app/cm.yaml", &config_map("first"));
    repo.commit("first");
    let ns = bench.dest_namespace("skip");
    let name = unique("skip");
    let mut skipped = app(&name, &repo, &ns, true);
    skipped["metadata"]["annotations"] = json!({"argocd.argoproj.io/skip-reconcile": "true"});
    bench.create_app(skipped).await;
    // Another app in the same controller is reconciled meanwhile: proof the controller is working.
    let other = unique("other");
    let other_ns = bench.dest_namespace("other");
    bench.create_app(app(&other, &repo, &other_ns, false)).await;
    bench.wait_app(&other, "compared", |a| !sync_status(a).is_empty()).await;
    let app = bench.app(&name).await;
    assert!(
        app["status"].is_null() || app["status"]["sync"].is_null(),
        "skipped app got a status: {}",
        app["status"]
    );
    let cms: Api<ConfigMap> = Api::namespaced(bench.client.clone(), &ns);
    assert!(cms.get_opt("first").await.unwrap_or(None).is_none(), "a skipped app was synced");
    let patch = json!({"metadata": {"annotations": {"argocd.argoproj.io/skip-reconcile": null}}});
    bench.apps().patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    bench.wait_app(&name, "synced once reconciled", |a| sync_status(a) == "Synced").await;
    assert!(cms.get_opt("first").await.unwrap().is_some());
    bench.cleanup().await;
}

#[tokio::test]
async fn an_extraneous_object_marked_ignore_extraneous_leaves_the_app_synced() {
    let mut bench = Bench::start("extraneous").await;
    let repo = GitRepo::new();
    repo.write("app/cm.yaml", &config_map("kept"));
    let generated = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: generated\n  annotations: {argocd.argoproj.io/compare-options: IgnoreExtraneous}\ndata: {v: \"1\"}\n";
    repo.write("app/generated.yaml", generated);
    repo.commit("first");
    let ns = bench.dest_namespace("extraneous");
    let name = unique("extraneous");
    bench.create_app(app(&name, &repo, &ns, false)).await;
    bench.wait_app(&name, "compared", |a| sync_status(a) == "OutOfSync").await;
    let app = bench.operate(&name, json!({"sync": {"revision": "HEAD"}})).await;
    assert_eq!(phase(&app), "Succeeded", "{}", serde_json::to_string_pretty(&app["status"]).unwrap());
    // The generated object leaves git but stays in the cluster (no prune): shown, not counted.
    repo.remove("app/generated.yaml");
    repo.commit("generated outside git from now on");
    let app = bench
        .wait_app(&name, "the extraneous object listed", |a| {
            a["status"]["resources"]
                .as_array()
                .is_some_and(|r| r.iter().any(|r| r["name"] == "generated" && r["requiresPruning"] == true))
        })
        .await;
    let app = if sync_status(&app) == "Synced" { app } else { bench.refreshed(&name).await };
    assert_eq!(sync_status(&app), "Synced", "{}", serde_json::to_string_pretty(&app["status"]).unwrap());
    bench.cleanup().await;
}

#[tokio::test]
async fn health_is_still_assessed_when_the_source_cannot_be_rendered() {
    let mut bench = Bench::start("cmperr").await;
    let repo = GitRepo::new();
    repo.write("app/cm.yaml", &config_map("kept"));
    repo.commit("first");
    let ns = bench.dest_namespace("cmperr");
    let name = unique("cmperr");
    bench.create_app(app(&name, &repo, &ns, true)).await;
    bench
        .wait_app(&name, "synced and healthy", |a| sync_status(a) == "Synced" && health(a) == "Healthy")
        .await;
    repo.write("app/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: [broken\n");
    repo.commit("broken");
    bench.wait_app(&name, "the broken commit seen", |a| sync_status(a) == "Unknown").await;
    // Then the object is deleted by hand: its health must say so although git cannot be read.
    let cms: Api<ConfigMap> = Api::namespaced(bench.client.clone(), &ns);
    cms.delete("kept", &Default::default()).await.unwrap();
    let app = bench
        .wait_app(&name, "Unknown with a ComparisonError and Missing health", |a| {
            sync_status(a) == "Unknown" && health(a) == "Missing"
        })
        .await;
    assert!(conditions(&app).contains("ComparisonError"), "{}", conditions(&app));
    bench.cleanup().await;
}
