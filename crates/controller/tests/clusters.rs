//! Destinations on another cluster: a second, independent API server (with its own etcd, controller-manager
//! and kwok; `hack/test` starts it with `hack/cluster up --name <name>-remote` and names its kubeconfig in
//! `BERTH_TEST_REMOTE_KUBECONFIG`), registered with berth through an Argo CD cluster Secret.

mod common;

use berth_api::AppProject;
use berth_testkit::clusters::{LocalCluster, Stopped};
use berth_testkit::*;
use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::json;
use std::time::Duration;

/// The second API server is one for the whole test binary: the test that stops it holds this, and so does
/// every test that deploys there, so none sees it go away under its feet (they run one after the other).
static REMOTE_CLUSTER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The second API server: a client for it, its URL, and the `config` of a cluster Secret that reaches it
/// with its admin's client certificate.
type Remote = LocalCluster;

async fn remote() -> Remote {
    let path = std::env::var("BERTH_TEST_REMOTE_KUBECONFIG").expect(
        "BERTH_TEST_REMOTE_KUBECONFIG names the second API server's kubeconfig: run the tests through hack/test, \
         or `hack/cluster up --name berth-remote` and export it from `hack/cluster env --name berth-remote`",
    );
    LocalCluster::open(&path).await
}

/// An Argo CD cluster Secret in berth's namespace.
async fn cluster_secret(bench: &Bench, secret: &str, data: serde_json::Value) {
    let body = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": secret, "namespace": bench.namespace,
                     "labels": {"argocd.argoproj.io/secret-type": "cluster"}},
        "stringData": data});
    Api::<Secret>::namespaced(bench.client.clone(), &bench.namespace)
        .patch(secret, &PatchParams::apply("berth-test"), &Patch::Apply(&body))
        .await
        .unwrap();
}

/// The second API server registered as `remote` by a cluster Secret, and a repository with the seed's web
/// app at v1.2.3.
async fn registered_remote(bench: &Bench) -> (Remote, GitRepo) {
    registered_remote_with(bench, json!({})).await
}

/// [`registered_remote`] with more keys in the cluster Secret (`namespaces`, `project`).
async fn registered_remote_with(bench: &Bench, extra: serde_json::Value) -> (Remote, GitRepo) {
    let remote = remote().await;
    let mut data = json!({"name": "remote", "server": remote.server, "config": remote.config});
    data.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    cluster_secret(bench, "remote", data).await;
    let repo = GitRepo::new();
    repo.write("apps/web/web.yaml", &web_manifests("myorg/web:v1.2.3"));
    repo.commit("web");
    (remote, repo)
}

/// Deletes what the test made: its control and destination namespaces here, and `ns` on the remote.
async fn cleanup(bench: Bench, remote: &Remote, ns: &str) {
    bench.cleanup().await;
    let _ = Api::<Namespace>::all(remote.client.clone()).delete(ns, &DeleteParams::background()).await;
}

/// The seed's web Application `name` to namespace `ns` of the `remote` cluster, once Synced and Healthy.
async fn deploy_web_to_remote(bench: &Bench, name: &str, repo: &GitRepo, ns: &str) -> serde_json::Value {
    let mut app = seed_web_app(name, &repo.url(), ns);
    app["spec"]["destination"] = json!({"name": "remote", "namespace": ns});
    bench.create_app(app).await;
    bench
        .wait_app(name, "Synced and Healthy on the remote cluster", |a| {
            sync_status(a) == "Synced" && health(a) == "Healthy"
        })
        .await
}

#[tokio::test]
async fn an_application_deploys_to_the_cluster_its_secret_names_heals_there_and_touches_nothing_here() {
    let _remote_cluster = REMOTE_CLUSTER.lock().await;
    let mut bench = Bench::start("clusters").await;
    let (remote, repo) = registered_remote(&bench).await;
    let ns = bench.dest_namespace("remote-web");
    let name = unique("remote-web");
    deploy_web_to_remote(&bench, &name, &repo, &ns).await;
    let there: Api<Deployment> = Api::namespaced(remote.client.clone(), &ns);
    let here: Api<Deployment> = Api::namespaced(bench.client.clone(), &ns);
    let web = there.get("web").await.expect("the Deployment is on the remote cluster");
    assert_eq!(web.spec.unwrap().replicas, Some(3));
    assert!(here.get_opt("web").await.unwrap().is_none(), "nothing is written to the cluster berth runs in");

    // selfHeal works from the remote cluster's own watch.
    let scale = json!({"spec": {"replicas": 1}});
    there.patch("web", &PatchParams::default(), &Patch::Merge(&scale)).await.unwrap();
    poll("the remote Deployment healed to 3 replicas", TIMEOUT, || async {
        there.get("web").await.unwrap().spec.and_then(|s| s.replicas) == Some(3)
    })
    .await;

    // A commit rolls out there.
    repo.write("apps/web/web.yaml", &web_manifests("myorg/web:v1.2.4"));
    repo.commit("web v1.2.4");
    bench.refresh(&name).await;
    poll("v1.2.4 on the remote cluster", TIMEOUT, || async {
        let web = there.get("web").await.unwrap();
        let image = web.spec.and_then(|s| s.template.spec).map(|p| p.containers[0].image.clone());
        image == Some(Some("myorg/web:v1.2.4".into()))
    })
    .await;

    cleanup(bench, &remote, &ns).await;
}

#[tokio::test]
async fn an_unknown_cluster_or_a_broken_secret_is_an_invalid_spec_that_names_it_and_deploys_nothing() {
    let mut bench = Bench::start("clusters-bad").await;
    let repo = GitRepo::new();
    repo.write("apps/web/web.yaml", &web_manifests("myorg/web:v1.2.3"));
    repo.commit("web");
    let ns = bench.dest_namespace("nowhere");

    let unknown = unique("unknown-cluster");
    let mut app = seed_web_app(&unknown, &repo.url(), &ns);
    app["spec"]["destination"] = json!({"name": "prod", "namespace": ns});
    bench.create_app(app).await;
    let app =
        bench.wait_app(&unknown, "an InvalidSpecError", |a| conditions(a).contains("InvalidSpecError")).await;
    let messages: Vec<&str> = app["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["message"].as_str())
        .collect();
    assert!(
        messages.iter().any(|m| m.contains("there are no clusters with this name: prod")),
        "{messages:?}"
    );

    // A Secret with a token and malformed config JSON: the condition names the Secret, never the token.
    cluster_secret(
        &bench,
        "staging-secret",
        json!({"name": "staging", "server": "https://127.0.0.1:1", "config": "{\"bearerToken\": \"tok-s3cret"}),
    )
    .await;
    let broken = unique("broken-cluster");
    let mut app = seed_web_app(&broken, &repo.url(), &ns);
    app["spec"]["destination"] = json!({"name": "staging", "namespace": ns});
    bench.create_app(app).await;
    let app = bench
        .wait_app(&broken, "a condition naming the Secret", |a| conditions(a).contains("staging-secret"))
        .await;
    assert!(!serde_json::to_string(&app).unwrap().contains("tok-s3cret"), "the token leaked: {app}");
    let here: Api<Deployment> = Api::namespaced(bench.client.clone(), &ns);
    assert!(here.get_opt("web").await.unwrap().is_none());
    bench.cleanup().await;
}

#[tokio::test]
async fn a_cluster_that_refuses_connections_holds_up_no_other_app_and_its_apps_say_why() {
    let mut bench = Bench::start("clusters-closed").await;
    let repo = GitRepo::new();
    repo.write("apps/web/web.yaml", &web_manifests("myorg/web:v1.2.3"));
    repo.commit("web");
    // A port nothing listens on, with a token that must never be shown.
    let config = json!({"bearerToken": "tok-closed-s3cret", "tlsClientConfig": {"insecure": true}});
    cluster_secret(
        &bench,
        "closed",
        json!({"name": "closed", "server": "https://127.0.0.1:1", "config": config.to_string()}),
    )
    .await;
    // More apps on the closed cluster than the controller has workers, and an in-cluster one at once.
    let closed_ns = bench.dest_namespace("closed-web");
    let mut closed = Vec::new();
    for _ in 0..6 {
        let name = unique("closed-web");
        let mut app = seed_web_app(&name, &repo.url(), &closed_ns);
        app["spec"]["destination"] = json!({"name": "closed", "namespace": closed_ns});
        bench.create_app(app).await;
        closed.push(name);
    }
    let local_ns = bench.dest_namespace("local-web");
    let local = unique("local-web");
    bench.create_app(seed_web_app(&local, &repo.url(), &local_ns)).await;

    bench.wait_app(&local, "Synced and Healthy in-cluster", |a| sync_status(a) == "Synced").await;
    for name in &closed {
        let app = bench
            .wait_app(name, "Unknown, with a condition naming the cluster", |a| {
                sync_status(a) == "Unknown" && conditions(a).contains("https://127.0.0.1:1")
            })
            .await;
        let conditions = conditions(&app);
        assert!(conditions.contains("ComparisonError"), "{conditions}");
        assert!(
            conditions.contains("cluster \\\"closed\\\" (https://127.0.0.1:1) is unreachable"),
            "{conditions}"
        );
        assert!(
            !serde_json::to_string(&app).unwrap().contains("tok-closed-s3cret"),
            "the token leaked: {app}"
        );
        assert!(app["status"]["operationState"].is_null(), "no sync started: {}", app["status"]);
    }
    let here: Api<Deployment> = Api::namespaced(bench.client.clone(), &closed_ns);
    assert!(here.get_opt("web").await.unwrap().is_none(), "nothing of theirs is written here");
    bench.cleanup().await;
}

#[tokio::test]
async fn a_remote_cluster_that_goes_away_loses_nothing_anywhere_and_its_app_recovers_by_itself() {
    let _remote_cluster = REMOTE_CLUSTER.lock().await;
    let mut bench = Bench::start("clusters-down").await;
    let (remote, repo) = registered_remote(&bench).await;
    let ns = bench.dest_namespace("remote-down");
    let name = unique("remote-down");
    // Here, an object that carries the app's tracking id: were anything of the app pruned or deleted on
    // the cluster berth runs in, it would be this.
    ensure_namespace(&bench.client, &ns).await;
    let decoy = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "decoy", "namespace": ns,
                     "annotations": {"argocd.argoproj.io/tracking-id": format!("{name}:/ConfigMap:{ns}/decoy")}}});
    apply_json(&bench.client, &ns, decoy).await;
    let synced = deploy_web_to_remote(&bench, &name, &repo, &ns).await;
    let there: Api<Deployment> = Api::namespaced(remote.client.clone(), &ns);
    let uid = there.get("web").await.unwrap().metadata.uid;
    let last_sync = synced["status"]["operationState"]["startedAt"].clone();

    let stopped = Stopped::stop(&remote.name).await;
    let app = bench
        .wait_app(&name, "Unknown, with a condition naming the cluster", |a| {
            sync_status(a) == "Unknown" && conditions(a).contains(&remote.server)
        })
        .await;
    assert!(conditions(&app).contains("cluster \\\"remote\\\""), "{}", conditions(&app));
    // A while down: no sync starts, nothing goes here.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let app = bench.app(&name).await;
    assert_eq!(sync_status(&app), "Unknown", "{}", app["status"]);
    assert_eq!(app["status"]["operationState"]["startedAt"], last_sync, "no sync ran: {}", app["status"]);
    let here: Api<ConfigMap> = Api::namespaced(bench.client.clone(), &ns);
    assert!(here.get_opt("decoy").await.unwrap().is_some(), "nothing is deleted here");

    stopped.start().await;
    bench
        .wait_app(&name, "Synced and Healthy again, by itself", |a| {
            sync_status(a) == "Synced" && health(a) == "Healthy" && !conditions(a).contains("unreachable")
        })
        .await;
    assert_eq!(there.get("web").await.unwrap().metadata.uid, uid, "the remote Deployment was never deleted");
    assert!(here.get_opt("decoy").await.unwrap().is_some(), "nothing is deleted here");

    cleanup(bench, &remote, &ns).await;
}

/// An AppProject `name` in berth's namespace with `spec`.
async fn app_project(bench: &Bench, name: &str, spec: serde_json::Value) {
    let body = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject",
        "metadata": {"name": name, "namespace": bench.namespace}, "spec": spec});
    Api::<AppProject>::namespaced(bench.client.clone(), &bench.namespace)
        .patch(name, &PatchParams::apply("berth-test"), &Patch::Apply(&body))
        .await
        .unwrap();
}

/// The seed's web Application `name` of `project` to namespace `ns` of the cluster `destination` names.
fn web_app_to(
    name: &str,
    repo: &GitRepo,
    project: &str,
    destination: serde_json::Value,
) -> serde_json::Value {
    let ns = destination["namespace"].as_str().unwrap().to_string();
    let mut app = seed_web_app(name, &repo.url(), &ns);
    app["spec"]["project"] = project.into();
    app["spec"]["destination"] = destination;
    app
}

/// Waits for the Application's InvalidSpecError and returns its conditions.
async fn refusal(bench: &Bench, name: &str) -> String {
    let app =
        bench.wait_app(name, "an InvalidSpecError", |a| conditions(a).contains("InvalidSpecError")).await;
    conditions(&app)
}

#[tokio::test]
async fn a_namespaced_cluster_gets_its_namespaces_refuses_cluster_scoped_objects_unless_cluster_resources_and_is_listed_nowhere_else()
 {
    let _remote_cluster = REMOTE_CLUSTER.lock().await;
    let mut bench = Bench::start("clusters-ns").await;
    let (a, b, outside) =
        (bench.dest_namespace("ns-a"), bench.dest_namespace("ns-b"), bench.dest_namespace("ns-out"));
    let (remote, repo) = registered_remote_with(&bench, json!({"namespaces": format!("{a},{b}")})).await;
    for ns in [&a, &b, &outside] {
        ensure_namespace(&remote.client, ns).await;
    }
    let name = unique("ns-web");
    // Outside the listed namespaces, an object that carries the app's tracking id: were berth to list that
    // namespace, the app would track it and prune it.
    let decoy = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "decoy", "namespace": outside,
                     "annotations": {"argocd.argoproj.io/tracking-id": format!("{name}:/ConfigMap:{outside}/decoy")}}});
    apply_json(&remote.client, &outside, decoy).await;
    let decoys: Api<ConfigMap> = Api::namespaced(remote.client.clone(), &outside);
    let decoy_uid = decoys.get("decoy").await.unwrap().metadata.uid;

    // The namespaces exist: creating them would be a cluster-scoped write.
    let mut app = web_app_to(&name, &repo, "default", json!({"name": "remote", "namespace": a}));
    app["spec"]["syncPolicy"]["syncOptions"] = json!([]);
    bench.create_app(app).await;
    let synced = bench
        .wait_app(&name, "Synced and Healthy in a listed namespace", |a| {
            sync_status(a) == "Synced" && health(a) == "Healthy"
        })
        .await;
    let there: Api<Deployment> = Api::namespaced(remote.client.clone(), &a);
    assert!(there.get_opt("web").await.unwrap().is_some(), "the Deployment is in {a} on the remote cluster");
    let resources = synced["status"]["resources"].to_string();
    assert!(!resources.contains("decoy"), "nothing outside {a},{b} is tracked: {resources}");
    bench.refreshed(&name).await;
    assert_eq!(decoys.get("decoy").await.unwrap().metadata.uid, decoy_uid, "the decoy was never pruned");

    // A cluster-scoped object among the manifests: the app says which, and nothing of it is applied.
    let role = unique("ns-role");
    let cluster_role = format!(
        "---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: {role}\nrules: []\n"
    );
    repo.write("apps/rbac/web.yaml", &(web_manifests("myorg/web:v1.2.3") + &cluster_role));
    repo.commit("web and a ClusterRole");
    let scoped = unique("ns-rbac");
    let mut app = web_app_to(&scoped, &repo, "default", json!({"name": "remote", "namespace": b}));
    app["spec"]["source"]["path"] = "apps/rbac".into();
    app["spec"]["syncPolicy"]["syncOptions"] = json!([]);
    bench.create_app(app).await;
    let app = bench
        .wait_app(&scoped, "a condition naming the ClusterRole", |a| conditions(a).contains(&role))
        .await;
    let conditions = conditions(&app);
    assert!(conditions.contains("ComparisonError"), "{conditions}");
    assert!(
        conditions.contains(&format!(
            "Cluster level ClusterRole \\\"{role}\\\" can not be managed when in namespaced mode"
        )),
        "{conditions}"
    );
    assert!(app["status"]["operationState"].is_null(), "no sync started: {}", app["status"]);
    let in_b: Api<Deployment> = Api::namespaced(remote.client.clone(), &b);
    assert!(in_b.get_opt("web").await.unwrap().is_none(), "nothing of the app is applied");
    let roles: Api<ClusterRole> = Api::all(remote.client.clone());
    assert!(roles.get_opt(&role).await.unwrap().is_none(), "the ClusterRole is not applied");

    // A destination namespace outside the list: refused by name, nothing applied there.
    let elsewhere = unique("ns-out");
    bench
        .create_app(web_app_to(&elsewhere, &repo, "default", json!({"name": "remote", "namespace": outside})))
        .await;
    let refused = refusal(&bench, &elsewhere).await;
    assert!(
        refused.contains(&format!(
            "Namespace \\\"{outside}\\\" for Application \\\"{elsewhere}\\\" is not managed"
        )),
        "{refused}"
    );
    let out: Api<Deployment> = Api::namespaced(remote.client.clone(), &outside);
    assert!(out.get_opt("web").await.unwrap().is_none(), "nothing is applied outside {a},{b}");

    // `clusterResources: "true"`: the same cluster now takes cluster-scoped objects, still only its namespaces'.
    let data = json!({"name": "remote", "server": remote.server, "config": remote.config,
                      "namespaces": format!("{a},{b}"), "clusterResources": "true"});
    cluster_secret(&bench, "remote", data).await;
    bench
        .wait_app(&scoped, "Synced with its ClusterRole", |a| {
            sync_status(a) == "Synced" && health(a) == "Healthy"
        })
        .await;
    assert!(roles.get_opt(&role).await.unwrap().is_some(), "the ClusterRole is applied");
    assert!(in_b.get_opt("web").await.unwrap().is_some(), "and the Deployment in {b}");
    bench.refreshed(&name).await;
    assert_eq!(decoys.get("decoy").await.unwrap().metadata.uid, decoy_uid, "the decoy is still not pruned");
    let _ = roles.delete(&role, &DeleteParams::background()).await;

    bench.cleanup().await;
    for ns in [&a, &b, &outside] {
        let _ = Api::<Namespace>::all(remote.client.clone()).delete(ns, &DeleteParams::background()).await;
    }
}

#[tokio::test]
async fn a_project_that_permits_only_its_scoped_clusters_deploys_to_them_and_is_refused_elsewhere() {
    let _remote_cluster = REMOTE_CLUSTER.lock().await;
    let mut bench = Bench::start("clusters-scoped").await;
    let project = unique("team-a");
    let (remote, repo) = registered_remote_with(&bench, json!({"project": project})).await;
    app_project(
        &bench,
        &project,
        json!({"sourceRepos": ["*"], "destinations": [{"server": "*", "namespace": "*"}],
               "clusterResourceWhitelist": [{"group": "*", "kind": "*"}],
               "permitOnlyProjectScopedClusters": true}),
    )
    .await;
    let ns = bench.dest_namespace("scoped-web");
    let name = unique("scoped-web");
    bench.create_app(web_app_to(&name, &repo, &project, json!({"name": "remote", "namespace": ns}))).await;
    bench
        .wait_app(&name, "Synced and Healthy on its project's cluster", |a| {
            sync_status(a) == "Synced" && health(a) == "Healthy"
        })
        .await;
    let there: Api<Deployment> = Api::namespaced(remote.client.clone(), &ns);
    assert!(there.get_opt("web").await.unwrap().is_some());

    // The in-cluster is not scoped to the project: refused, though `*` matches it.
    let local = unique("scoped-local");
    let local_ns = bench.dest_namespace("scoped-local");
    let destination = json!({"server": "https://kubernetes.default.svc", "namespace": local_ns});
    bench.create_app(web_app_to(&local, &repo, &project, destination)).await;
    let refused = refusal(&bench, &local).await;
    assert!(
        refused.contains(&format!(
            "permitOnlyProjectScopedClusters is set and cluster 'in-cluster' (https://kubernetes.default.svc) \
             is not scoped to project '{project}'"
        )),
        "{refused}"
    );
    let here: Api<Deployment> = Api::namespaced(bench.client.clone(), &local_ns);
    assert!(here.get_opt("web").await.unwrap().is_none(), "nothing is deployed in-cluster");
    cleanup(bench, &remote, &ns).await;
}

#[tokio::test]
async fn project_destinations_by_cluster_name_allow_the_remote_and_a_negated_server_refuses_the_in_cluster() {
    let _remote_cluster = REMOTE_CLUSTER.lock().await;
    let mut bench = Bench::start("clusters-dest").await;
    let (remote, repo) = registered_remote(&bench).await;
    let project = unique("remote-only");
    app_project(
        &bench,
        &project,
        json!({"sourceRepos": ["*"],
               "destinations": [{"name": "rem*", "namespace": "*"},
                                {"server": "!https://kubernetes.default.svc", "namespace": "*"}],
               "clusterResourceWhitelist": [{"group": "*", "kind": "*"}]}),
    )
    .await;
    let ns = bench.dest_namespace("by-name");
    let name = unique("by-name");
    bench.create_app(web_app_to(&name, &repo, &project, json!({"name": "remote", "namespace": ns}))).await;
    bench
        .wait_app(&name, "Synced and Healthy on the remote", |a| {
            sync_status(a) == "Synced" && health(a) == "Healthy"
        })
        .await;
    assert!(
        Api::<Deployment>::namespaced(remote.client.clone(), &ns).get_opt("web").await.unwrap().is_some()
    );

    let local = unique("by-name-local");
    let local_ns = bench.dest_namespace("by-name-local");
    bench
        .create_app(web_app_to(&local, &repo, &project, json!({"name": "in-cluster", "namespace": local_ns})))
        .await;
    let refused = refusal(&bench, &local).await;
    assert!(
        refused.contains(&format!(
            "application destination server 'https://kubernetes.default.svc' and namespace '{local_ns}' do not \
             match any of the allowed destinations in project '{project}': destinations entry {{server: \
             '!https://kubernetes.default.svc', namespace: '*'}} denies it"
        )),
        "{refused}"
    );
    let here: Api<Deployment> = Api::namespaced(bench.client.clone(), &local_ns);
    assert!(here.get_opt("web").await.unwrap().is_none(), "nothing is deployed in-cluster");
    cleanup(bench, &remote, &ns).await;
}

#[tokio::test]
async fn removing_a_cluster_secret_leaves_its_workloads_running_and_its_app_says_why() {
    let _remote_cluster = REMOTE_CLUSTER.lock().await;
    let mut bench = Bench::start("clusters-gone").await;
    let (remote, repo) = registered_remote(&bench).await;
    let ns = bench.dest_namespace("secret-gone");
    let name = unique("secret-gone");
    deploy_web_to_remote(&bench, &name, &repo, &ns).await;
    let there: Api<Deployment> = Api::namespaced(remote.client.clone(), &ns);
    let uid = there.get("web").await.unwrap().metadata.uid;

    Api::<Secret>::namespaced(bench.client.clone(), &bench.namespace)
        .delete("remote", &DeleteParams::default())
        .await
        .unwrap();
    let refused = refusal(&bench, &name).await;
    assert!(
        refused.contains("spec.destination.name: there are no clusters with this name: remote"),
        "{refused}"
    );
    // Another pass after the controller noticed: still nothing deleted there.
    bench.refreshed(&name).await;
    let web = there.get("web").await.expect("the remote Deployment is still there");
    assert_eq!(web.metadata.uid, uid, "the remote Deployment was never deleted");
    assert!(web.metadata.deletion_timestamp.is_none());

    cleanup(bench, &remote, &ns).await;
}
