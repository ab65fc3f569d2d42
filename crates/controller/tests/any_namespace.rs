//! Applications outside the control namespace on the real local cluster (Argo CD's "applications in any
//! namespace"): taken only from the namespaces `--application-namespaces` allows, only with a project
//! whose `sourceNamespaces` lists theirs, and tracked as `<namespace>_<name>`.

mod common;

use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use std::time::Duration;

/// A bench whose controller also takes Applications from a namespace of its own (returned).
async fn bench_with_app_namespace(prefix: &str) -> (Bench, String) {
    let mut bench = Bench::start(prefix).await;
    let app_ns = bench.dest_namespace(&format!("{prefix}-apps"));
    ensure_namespace(&bench.client, &app_ns).await;
    bench.stop_controller().await;
    // A glob, as an administrator would allow a family of team namespaces.
    bench.application_namespaces = vec!["no-such-team".into(), format!("{app_ns}*")];
    bench.start_controller();
    (bench, app_ns)
}

/// An AppProject in the control namespace that lets anything deploy, from Applications in `source_namespaces`.
async fn create_project(bench: &Bench, name: &str, source_namespaces: &[&str]) {
    let project = json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject",
        "metadata": {"name": name, "namespace": bench.namespace},
        "spec": {"sourceRepos": ["*"], "destinations": [{"namespace": "*", "server": "*"}],
                 "sourceNamespaces": source_namespaces}
    });
    Api::<berth_api::AppProject>::namespaced(bench.client.clone(), &bench.namespace)
        .patch(name, &PatchParams::apply("berth-test"), &Patch::Apply(&project))
        .await
        .unwrap();
}

/// The seed's web Application (auto-sync) in `namespace`, using `project`.
async fn create_app_in(
    bench: &Bench,
    namespace: &str,
    name: &str,
    project: &str,
    repo_url: &str,
    dest: &str,
) {
    let mut app = seed_web_app(name, repo_url, dest);
    app["metadata"]["namespace"] = namespace.into();
    app["spec"]["project"] = project.into();
    Api::<berth_api::Application>::namespaced(bench.client.clone(), namespace)
        .patch(name, &PatchParams::apply("berth-test"), &Patch::Apply(&app))
        .await
        .unwrap();
}

async fn app_in(bench: &Bench, namespace: &str, name: &str) -> serde_json::Value {
    let api = Api::<berth_api::Application>::namespaced(bench.client.clone(), namespace);
    serde_json::to_value(api.get(name).await.unwrap()).unwrap()
}

/// Waits until the Application `namespace/name` satisfies `check`; panics with its status otherwise.
async fn wait_app_in(
    bench: &Bench,
    namespace: &str,
    name: &str,
    what: &str,
    check: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        let app = app_in(bench, namespace, name).await;
        if check(&app) {
            return app;
        }
        if std::time::Instant::now() > deadline {
            panic!("timed out waiting for {namespace}/{name}: {what}; status:\n{:#}", app["status"]);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn namespace_exists(client: &kube::Client, ns: &str) -> bool {
    Api::<Namespace>::all(client.clone()).get_opt(ns).await.unwrap().is_some()
}

fn web_repo() -> GitRepo {
    let repo = GitRepo::new();
    repo.write("apps/web/web.yaml", &web_manifests("myorg/web:v1.2.3"));
    repo.commit("web");
    repo
}

#[tokio::test]
async fn an_app_in_an_allowed_namespace_syncs_and_tracks_its_objects_as_namespace_underscore_name() {
    let (mut bench, app_ns) = bench_with_app_namespace("anyns-ok").await;
    let repo = web_repo();
    create_project(&bench, "team", &["anyns-ok-apps-*"]).await;
    let dest = bench.dest_namespace("anyns-ok-dest");
    let name = unique("web");
    create_app_in(&bench, &app_ns, &name, "team", &repo.url(), &dest).await;

    let app = wait_app_in(&bench, &app_ns, &name, "synced", |a| {
        sync_status(a) == "Synced" && phase(a) == "Succeeded"
    })
    .await;
    assert_eq!(app["status"]["controllerNamespace"], bench.namespace.as_str());
    let deployment = Api::<Deployment>::namespaced(bench.client.clone(), &dest).get("web").await.unwrap();
    let tracking =
        deployment.metadata.annotations.unwrap_or_default()["argocd.argoproj.io/tracking-id"].clone();
    assert_eq!(tracking, format!("{app_ns}_{name}:apps/Deployment:{dest}/web"));

    // Tracked under that instance name, the live objects come back into the app's status and self-heal.
    let api = Api::<Deployment>::namespaced(bench.client.clone(), &dest);
    api.patch("web", &PatchParams::default(), &Patch::Merge(&json!({"spec": {"replicas": 1}})))
        .await
        .unwrap();
    poll("the drift reverted by self-heal", TIMEOUT, || {
        let api = api.clone();
        async move { api.get("web").await.unwrap().spec.and_then(|s| s.replicas) == Some(3) }
    })
    .await;
    let app = app_in(&bench, &app_ns, &name).await;
    let kinds: Vec<&str> =
        app["status"]["resources"].as_array().unwrap().iter().filter_map(|r| r["kind"].as_str()).collect();
    assert!(kinds.contains(&"Deployment") && kinds.contains(&"Service"), "{kinds:?}");
    bench.cleanup().await;
}

#[tokio::test]
async fn an_app_whose_project_does_not_list_its_namespace_is_refused_and_creates_nothing() {
    let (mut bench, app_ns) = bench_with_app_namespace("anyns-deny").await;
    let repo = web_repo();
    create_project(&bench, "other-team", &["someone-else"]).await;
    let dest = bench.dest_namespace("anyns-deny-dest");
    let name = unique("web");
    create_app_in(&bench, &app_ns, &name, "other-team", &repo.url(), &dest).await;

    let app = wait_app_in(&bench, &app_ns, &name, "the project refusing it", |a| {
        conditions(a).contains("not permitted to use project")
    })
    .await;
    let expected = format!(
        "\"UnknownError\": \"application '{name}' in namespace '{app_ns}' is not permitted to use project 'other-team'\""
    );
    assert!(conditions(&app).contains(&expected), "{}", conditions(&app));
    assert_eq!(sync_status(&app), "Unknown");
    assert!(!namespace_exists(&bench.client, &dest).await, "nothing is applied");

    // The control namespace may use any project, whatever its sourceNamespaces say.
    let control_app = unique("web");
    let control_dest = bench.dest_namespace("anyns-deny-ctl");
    create_app_in(&bench, &bench.namespace.clone(), &control_app, "other-team", &repo.url(), &control_dest)
        .await;
    bench.wait_app(&control_app, "synced", |a| sync_status(a) == "Synced" && phase(a) == "Succeeded").await;
    bench.cleanup().await;
}

#[tokio::test]
async fn an_app_in_a_namespace_not_allowed_is_ignored() {
    let (mut bench, _) = bench_with_app_namespace("anyns-ign").await;
    let repo = web_repo();
    create_project(&bench, "anyone", &["*"]).await;
    let outside = bench.dest_namespace("anyns-elsewhere");
    ensure_namespace(&bench.client, &outside).await;
    let dest = bench.dest_namespace("anyns-ign-dest");
    let name = unique("web");
    create_app_in(&bench, &outside, &name, "anyone", &repo.url(), &dest).await;
    // An app in the control namespace created after it is handled: the ignored one had its chance.
    let witness = unique("web");
    let witness_dest = bench.dest_namespace("anyns-ign-ctl");
    create_app_in(&bench, &bench.namespace.clone(), &witness, "anyone", &repo.url(), &witness_dest).await;
    bench.wait_app(&witness, "synced", |a| sync_status(a) == "Synced" && phase(a) == "Succeeded").await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let app = app_in(&bench, &outside, &name).await;
    assert!(app["status"].is_null(), "no status is written: {:#}", app["status"]);
    assert!(!namespace_exists(&bench.client, &dest).await, "nothing is applied");
    bench.cleanup().await;
}

#[tokio::test]
async fn deleting_an_app_its_project_no_longer_accepts_deletes_none_of_its_objects() {
    let (mut bench, app_ns) = bench_with_app_namespace("anyns-del").await;
    let repo = web_repo();
    create_project(&bench, "team", &[app_ns.as_str()]).await;
    let dest = bench.dest_namespace("anyns-del-dest");
    let name = unique("web");
    create_app_in(&bench, &app_ns, &name, "team", &repo.url(), &dest).await;
    wait_app_in(&bench, &app_ns, &name, "synced", |a| sync_status(a) == "Synced" && phase(a) == "Succeeded")
        .await;

    // The project stops accepting the namespace; then the app is deleted with Argo CD's cascade finalizer.
    create_project(&bench, "team", &[]).await;
    wait_app_in(&bench, &app_ns, &name, "the project refusing it", |a| {
        conditions(a).contains("not permitted to use project")
    })
    .await;
    let apps = Api::<berth_api::Application>::namespaced(bench.client.clone(), &app_ns);
    let finalizer = json!({"metadata": {"finalizers": ["resources-finalizer.argocd.argoproj.io"]}});
    apps.patch(&name, &PatchParams::default(), &Patch::Merge(&finalizer)).await.unwrap();
    apps.delete(&name, &Default::default()).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;

    let deployments = Api::<Deployment>::namespaced(bench.client.clone(), &dest);
    assert!(deployments.get_opt("web").await.unwrap().is_some(), "the Deployment is left alone");
    let app = app_in(&bench, &app_ns, &name).await;
    assert!(!app["metadata"]["deletionTimestamp"].is_null(), "the app waits on its finalizer");
    let patch = json!({"metadata": {"finalizers": null}});
    apps.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    bench.cleanup().await;
}
