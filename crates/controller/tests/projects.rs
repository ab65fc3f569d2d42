//! AppProjects on the real local cluster: the `default` project made at start, and the seed's `dev-team`
//! project refusing what lies outside it before a single object is applied.

mod common;

use berth_api::AppProject;
use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::json;

fn projects(bench: &Bench) -> Api<AppProject> {
    Api::namespaced(bench.client.clone(), &bench.namespace)
}

/// The seed's dev-team AppProject (../shared/seed/examples/appproject-dev-team.yaml) in the bench's
/// namespace, its repository swapped for the test's; destinations and kinds as written.
async fn create_dev_team(bench: &Bench, repo_url: &str) {
    let path = seed_dir().join("appproject-dev-team.yaml");
    let mut project: serde_json::Value =
        serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(project["spec"]["destinations"], json!([{"namespace": "dev-*", "server": "*"}]));
    project["metadata"]["namespace"] = bench.namespace.clone().into();
    project["spec"]["sourceRepos"] = json!([repo_url]);
    projects(bench)
        .patch("dev-team", &PatchParams::apply("berth-test"), &Patch::Apply(&project))
        .await
        .unwrap();
}

/// The seed's web Application in project dev-team.
fn dev_team_app(name: &str, repo_url: &str, dest_ns: &str) -> serde_json::Value {
    let mut app = seed_web_app(name, repo_url, dest_ns);
    app["spec"]["project"] = "dev-team".into();
    app
}

/// The seed's `web` Deployment alone: dev-team's only namespaced kind.
fn web_deployment() -> String {
    web_manifests("myorg/web:v1.2.3").split("\n---\n").next().unwrap().to_string() + "\n"
}

async fn deployment(client: &kube::Client, ns: &str) -> Option<Deployment> {
    Api::<Deployment>::namespaced(client.clone(), ns).get_opt("web").await.unwrap()
}

async fn namespace_exists(client: &kube::Client, ns: &str) -> bool {
    Api::<Namespace>::all(client.clone()).get_opt(ns).await.unwrap().is_some()
}

#[tokio::test]
async fn the_default_project_is_created_at_start_and_a_changed_one_is_kept() {
    let mut bench = Bench::start("defproj").await;
    let api = projects(&bench);
    poll("the default AppProject", TIMEOUT, || {
        let api = api.clone();
        async move { api.get_opt("default").await.unwrap().is_some() }
    })
    .await;
    let default = serde_json::to_value(api.get("default").await.unwrap()).unwrap();
    // As Argo CD documents it: any repository, any destination, every kind.
    assert_eq!(default["spec"]["sourceRepos"], json!(["*"]));
    assert_eq!(default["spec"]["destinations"], json!([{"namespace": "*", "server": "*"}]));
    assert_eq!(default["spec"]["clusterResourceWhitelist"], json!([{"group": "*", "kind": "*"}]));

    // Locked down as Argo CD's documentation shows, then the controller restarts: it keeps the change.
    bench.stop_controller().await;
    let locked = json!({"spec": {"sourceRepos": [], "destinations": [], "clusterResourceWhitelist": [],
                                 "namespaceResourceBlacklist": [{"group": "*", "kind": "*"}]}});
    api.patch("default", &PatchParams::default(), &Patch::Merge(&locked)).await.unwrap();
    bench.start_controller();
    let repo = GitRepo::new();
    repo.write("apps/web/web.yaml", &web_manifests("myorg/web:v1.2.3"));
    repo.commit("web");
    let ns = bench.dest_namespace("defproj");
    let name = unique("locked-out");
    bench.create_app(seed_web_app(&name, &repo.url(), &ns)).await;
    let app = bench
        .wait_app(&name, "the locked-down default refusing it", |a| {
            conditions(a).contains("InvalidSpecError")
        })
        .await;
    assert!(conditions(&app).contains("is not permitted in project 'default'"), "{}", conditions(&app));
    let kept = serde_json::to_value(api.get("default").await.unwrap()).unwrap();
    assert_eq!(kept["spec"]["namespaceResourceBlacklist"], json!([{"group": "*", "kind": "*"}]));
    assert!(!namespace_exists(&bench.client, &ns).await, "nothing is applied");

    // Deleted while the controller is down: made again at the next start.
    bench.stop_controller().await;
    api.delete("default", &DeleteParams::default()).await.unwrap();
    bench.start_controller();
    poll("the default AppProject made again", TIMEOUT, || {
        let api = api.clone();
        async move { api.get_opt("default").await.unwrap().is_some_and(|p| p.spec.source_repos == ["*"]) }
    })
    .await;
    bench.cleanup().await;
}

#[tokio::test]
async fn the_dev_team_project_refuses_a_cluster_role_and_applies_nothing_of_that_commit() {
    let mut bench = Bench::start("clusterrole").await;
    let role = unique("dev-reader");
    let repo = GitRepo::new();
    repo.write("apps/web/web.yaml", &web_deployment());
    repo.write(
        "apps/web/role.yaml",
        &format!(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: {role}\nrules:\n\
             - apiGroups: [\"\"]\n  resources: [\"pods\"]\n  verbs: [\"get\"]\n"
        ),
    );
    repo.commit("web and a ClusterRole");
    create_dev_team(&bench, &repo.url()).await;
    let ns = bench.dest_namespace("dev");
    let name = unique("clusterrole");
    bench.create_app(dev_team_app(&name, &repo.url(), &ns)).await;

    let app =
        bench.wait_app(&name, "the ClusterRole refused", |a| conditions(a).contains("ClusterRole")).await;
    let text = conditions(&app);
    assert!(
        text.contains("ComparisonError")
            && text.contains("apps/web/role.yaml")
            && text.contains("resource rbac.authorization.k8s.io:ClusterRole")
            && text.contains(&role)
            && text.contains("is not permitted in project 'dev-team'")
            && text.contains("clusterResourceWhitelist"),
        "the condition names the object and the rule: {text}"
    );
    assert!(!text.contains("Deployment"), "the Deployment is allowed: {text}");

    // A sync asked for by hand fails the same way.
    let app =
        bench.operate(&name, json!({"initiatedBy": {"username": "admin"}, "sync": {"prune": true}})).await;
    let state = &app["status"]["operationState"];
    assert!(state["phase"] == "Error" || state["phase"] == "Failed", "{state}");
    assert!(state["message"].as_str().unwrap().contains(&role), "{state}");

    // Nothing of that commit reached the cluster: not the Deployment beside the ClusterRole, not the
    // namespace CreateNamespace=true would make, not the ClusterRole.
    let roles: Api<ClusterRole> = Api::all(bench.client.clone());
    let role_applied = roles.get_opt(&role).await.unwrap().is_some();
    if role_applied {
        let _ = roles.delete(&role, &DeleteParams::default()).await;
    }
    assert!(!role_applied, "the ClusterRole was applied");
    assert!(deployment(&bench.client, &ns).await.is_none(), "the Deployment was applied");
    assert!(!namespace_exists(&bench.client, &ns).await, "the destination namespace was created");
    assert!(app["status"]["history"].as_array().is_none_or(Vec::is_empty), "no sync is recorded");
    bench.cleanup().await;
}

#[tokio::test]
async fn the_dev_team_project_refuses_a_destination_outside_dev_namespaces() {
    let mut bench = Bench::start("prodns").await;
    let repo = GitRepo::new();
    repo.write("apps/web/web.yaml", &web_deployment());
    repo.commit("web");
    create_dev_team(&bench, &repo.url()).await;
    let ns = bench.dest_namespace("prod-x");
    let name = unique("prodns");
    bench.create_app(dev_team_app(&name, &repo.url(), &ns)).await;

    let app = bench
        .wait_app(&name, "the destination refused", |a| conditions(a).contains("InvalidSpecError"))
        .await;
    let text = conditions(&app);
    assert!(
        text.contains(&format!("namespace '{ns}'"))
            && text.contains("allowed destinations in project 'dev-team'"),
        "the condition names the destination and the project: {text}"
    );
    assert_eq!(sync_status(&app), "Unknown");

    let app =
        bench.operate(&name, json!({"initiatedBy": {"username": "admin"}, "sync": {"prune": true}})).await;
    let state = &app["status"]["operationState"];
    assert!(state["phase"] == "Error" || state["phase"] == "Failed", "{state}");
    assert!(state["message"].as_str().unwrap().contains(&ns), "{state}");
    assert!(!namespace_exists(&bench.client, &ns).await, "the destination namespace was created");
    assert!(deployment(&bench.client, &ns).await.is_none(), "the Deployment was applied");
    bench.cleanup().await;
}

#[tokio::test]
async fn the_dev_team_project_syncs_a_deployment_to_a_dev_namespace() {
    let mut bench = Bench::start("devns").await;
    let repo = GitRepo::new();
    repo.write("apps/web/web.yaml", &web_deployment());
    let sha = repo.commit("web");
    create_dev_team(&bench, &repo.url()).await;
    let ns = bench.dest_namespace("dev");
    let name = unique("devns");
    bench.create_app(dev_team_app(&name, &repo.url(), &ns)).await;

    let app = bench.wait_app(&name, "Synced", |a| sync_status(a) == "Synced").await;
    assert_eq!(app["status"]["sync"]["revision"], sha.as_str());
    assert_eq!(app["status"]["operationState"]["phase"], "Succeeded");
    assert!(!conditions(&app).contains("Error"), "{}", conditions(&app));
    // CreateNamespace=true made the namespace: Namespace is dev-team's one cluster-scoped kind.
    assert!(namespace_exists(&bench.client, &ns).await);
    assert!(deployment(&bench.client, &ns).await.is_some());
    bench.cleanup().await;
}
