//! Tenants confined by their AppProject on the real local cluster (issue 12, items 7 and 8): an app that
//! inherits another project's objects through its name neither prunes nor cascade-deletes them, and a
//! project-scoped repository secret lends its password to its own project's applications only.

mod common;

use berth_api::AppProject;
use berth_testkit::git_servers::GitHttpServer;
use common::*;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::json;

const IN_CLUSTER: &str = "https://kubernetes.default.svc";

/// An AppProject allowing any repository and only `namespace` (a glob) on any cluster; no
/// cluster-scoped kinds.
async fn create_project(bench: &Bench, name: &str, namespace: &str) {
    let project = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject",
        "metadata": {"name": name, "namespace": bench.namespace},
        "spec": {"sourceRepos": ["*"], "destinations": [{"server": "*", "namespace": namespace}]}});
    Api::<AppProject>::namespaced(bench.client.clone(), &bench.namespace)
        .patch(name, &PatchParams::apply("berth-test"), &Patch::Apply(&project))
        .await
        .unwrap();
}

/// An auto-syncing, auto-pruning Application of `project` rendering `path` of `repo_url` into `namespace`;
/// with the resources finalizer when `cascade`.
fn app(
    name: &str,
    project: &str,
    repo_url: &str,
    path: &str,
    namespace: &str,
    cascade: bool,
) -> serde_json::Value {
    let finalizers: Vec<&str> = if cascade { vec!["resources-finalizer.argocd.argoproj.io"] } else { vec![] };
    json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": name, "finalizers": finalizers},
        "spec": {"project": project,
                 "source": {"repoURL": repo_url, "targetRevision": "main", "path": path},
                 "destination": {"server": IN_CLUSTER, "namespace": namespace},
                 "syncPolicy": {"automated": {"prune": true}}}})
}

fn config_map(name: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  owner: {name}\n")
}

async fn config_map_uid(client: &kube::Client, namespace: &str, name: &str) -> Option<String> {
    let found = Api::<ConfigMap>::namespaced(client.clone(), namespace).get_opt(name).await.unwrap();
    found.and_then(|c| c.metadata.uid)
}

async fn delete_and_wait_gone(bench: &Bench, name: &str) {
    bench.apps().delete(name, &DeleteParams::default()).await.unwrap();
    let apps = bench.apps();
    poll(&format!("application {name} deleted"), TIMEOUT, || {
        let apps = apps.clone();
        async move { apps.get_opt(name).await.unwrap().is_none() }
    })
    .await;
}

#[tokio::test]
async fn an_app_recreated_in_another_project_neither_prunes_nor_deletes_the_first_projects_objects() {
    let mut bench = Bench::start("tenancy-prune").await;
    let ns_a = bench.dest_namespace("team-a");
    let b_prefix = unique("team-b");
    let ns_b = format!("{b_prefix}-1");
    bench.namespaces.push(ns_b.clone());
    for ns in [&ns_a, &ns_b] {
        ensure_namespace(&bench.client, ns).await;
    }
    let (team_a, team_b) = (unique("team-a"), unique("team-b"));
    create_project(&bench, &team_a, &ns_a).await;
    create_project(&bench, &team_b, &format!("{b_prefix}-*")).await;
    let repo_a = GitRepo::new();
    repo_a.write("config/cm.yaml", &config_map("team-a-config"));
    repo_a.commit("team-a");
    let repo_b = GitRepo::new();
    repo_b.write("config/cm.yaml", &config_map("team-b-config"));
    repo_b.commit("team-b");

    // `x` of team-a deploys team-a-config, then is deleted without cascade: the object keeps x's tracking id.
    let name = unique("x");
    bench.create_app(app(&name, &team_a, &repo_a.url(), "config", &ns_a, false)).await;
    bench
        .wait_app(&name, "Synced by team-a", |a| sync_status(a) == "Synced" && phase(a) == "Succeeded")
        .await;
    let uid = config_map_uid(&bench.client, &ns_a, "team-a-config").await.expect("team-a-config deployed");
    delete_and_wait_gone(&bench, &name).await;

    // `x` again, now in team-b (team-b-* only), with another source and auto-sync with prune.
    bench.create_app(app(&name, &team_b, &repo_b.url(), "config", &ns_b, true)).await;
    let synced = bench
        .wait_app(&name, "Synced by team-b", |a| sync_status(a) == "Synced" && phase(a) == "Succeeded")
        .await;
    assert!(config_map_uid(&bench.client, &ns_b, "team-b-config").await.is_some(), "team-b's own object");
    assert_eq!(
        config_map_uid(&bench.client, &ns_a, "team-a-config").await.as_deref(),
        Some(uid.as_str()),
        "team-b's app pruned team-a's object"
    );
    let text = conditions(&synced);
    assert!(
        text.contains("ExcludedResourceWarning")
            && text.contains("team-a-config")
            && text.contains(&format!("is not permitted in project '{team_b}'")),
        "the refusal is a condition: {text}"
    );
    let message = synced["status"]["operationState"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("were not pruned"), "the sync says what it left: {message}");
    let listed = synced["status"]["resources"].to_string();
    assert!(!listed.contains("team-a-config"), "not shown as team-b's resource: {listed}");

    // Cascade delete of team-b's app: its own object goes, team-a's stays.
    delete_and_wait_gone(&bench, &name).await;
    let client = bench.client.clone();
    let ns = ns_b.clone();
    poll("team-b-config deleted by the cascade", TIMEOUT, || {
        let (client, ns) = (client.clone(), ns.clone());
        async move { config_map_uid(&client, &ns, "team-b-config").await.is_none() }
    })
    .await;
    assert_eq!(
        config_map_uid(&bench.client, &ns_a, "team-a-config").await.as_deref(),
        Some(uid.as_str()),
        "team-b's cascade delete deleted team-a's object"
    );
    bench.cleanup().await;
}

#[tokio::test]
async fn a_project_scoped_repository_secret_is_not_used_by_another_projects_app() {
    let mut bench = Bench::start("tenancy-creds").await;
    let server = GitHttpServer::start();
    let repo = GitRepo::new();
    repo.write("config/cm.yaml", &config_map("private-config"));
    let sha = repo.commit("private");
    let url = server.host("team-a/private", &repo);
    let (ns_a, ns_b) = (bench.dest_namespace("team-a"), bench.dest_namespace("team-b"));
    for ns in [&ns_a, &ns_b] {
        ensure_namespace(&bench.client, ns).await;
    }
    let (team_a, team_b) = (unique("team-a"), unique("team-b"));
    create_project(&bench, &team_a, &ns_a).await;
    create_project(&bench, &team_b, &ns_b).await;
    apply_json(
        &bench.client,
        &bench.namespace,
        json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "team-a-private", "namespace": bench.namespace,
                         "labels": {"argocd.argoproj.io/secret-type": "repository"}},
            "type": "Opaque",
            "stringData": {"url": url, "username": server.username(), "password": server.password(),
                           "project": team_a}}),
    )
    .await;

    // team-b's app on the same private repository gets no credentials: the server refuses it.
    let b = unique("b");
    bench.create_app(app(&b, &team_b, &url, "config", &ns_b, false)).await;
    let refused =
        bench.wait_app(&b, "a ComparisonError", |a| conditions(a).contains("ComparisonError")).await;
    let text = conditions(&refused);
    assert!(text.contains(&url), "the condition names the repository: {text}");
    assert_eq!(sync_status(&refused), "Unknown", "{text}");
    let shown = refused.to_string();
    assert!(!shown.contains(server.password()), "the password leaked into team-b's app: {shown}");
    assert!(config_map_uid(&bench.client, &ns_b, "private-config").await.is_none(), "nothing deployed");

    // team-a's app uses the secret.
    let a = unique("a");
    bench.create_app(app(&a, &team_a, &url, "config", &ns_a, false)).await;
    bench
        .wait_app(&a, "Synced by team-a", |app| {
            sync_status(app) == "Synced" && app["status"]["sync"]["revision"] == sha.as_str()
        })
        .await;
    let b_now = bench.app(&b).await.to_string();
    assert!(!b_now.contains(server.password()), "the password leaked into team-b's app: {b_now}");
    bench.cleanup().await;
}
