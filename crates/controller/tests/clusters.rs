//! Destinations on another cluster: a second, independent API server (with its own etcd, controller-manager
//! and kwok; `hack/test` starts it with `hack/cluster up --name <name>-remote` and names its kubeconfig in
//! `BERTH_TEST_REMOTE_KUBECONFIG`), registered with berth through an Argo CD cluster Secret.

mod common;

use berth_testkit::*;
use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::json;
use std::time::Duration;

/// The second API server is one for the whole test binary: the test that stops it holds this, and so does
/// every test that deploys there, so none sees it go away under its feet (they run one after the other).
static REMOTE_CLUSTER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The second API server: a client for it, its URL, and the `config` of a cluster Secret that reaches it
/// with its admin's client certificate.
struct Remote {
    client: kube::Client,
    server: String,
    config: String,
    /// Its name for `hack/cluster --name`.
    name: String,
}

async fn remote() -> Remote {
    let path = std::env::var("BERTH_TEST_REMOTE_KUBECONFIG").expect(
        "BERTH_TEST_REMOTE_KUBECONFIG names the second API server's kubeconfig: run the tests through hack/test, \
         or `hack/cluster up --name berth-remote` and export it from `hack/cluster env --name berth-remote`",
    );
    let kubeconfig = kube::config::Kubeconfig::read_from(&path).unwrap();
    let name = kubeconfig.clusters[0].name.clone();
    let cluster = kubeconfig.clusters[0].cluster.clone().unwrap();
    let user = kubeconfig.auth_infos[0].auth_info.clone().unwrap();
    let read = |file: Option<String>| std::fs::read(file.expect("a file in the kubeconfig")).unwrap();
    let base64 = |bytes: Vec<u8>| serde_json::to_value(k8s_openapi::ByteString(bytes)).unwrap();
    let config = json!({"tlsClientConfig": {
        "caData": base64(read(cluster.certificate_authority.clone())),
        "certData": base64(read(user.client_certificate.clone())),
        "keyData": base64(read(user.client_key.clone())),
    }});
    let options = kube::config::KubeConfigOptions::default();
    let client_config = kube::Config::from_custom_kubeconfig(kubeconfig, &options).await.unwrap();
    Remote {
        client: kube::Client::try_from(client_config).unwrap(),
        server: cluster.server.unwrap(),
        config: config.to_string(),
        name,
    }
}

/// Runs `hack/cluster <command> --name <name>` from the repository root, off the test's runtime (the
/// controller under test goes on meanwhile).
async fn hack_cluster(command: &'static str, name: &str) {
    let name = name.to_string();
    let status = tokio::task::spawn_blocking(move || hack_cluster_blocking(command, &name)).await.unwrap();
    assert!(status.success(), "hack/cluster {command} failed: {status}");
}

fn hack_cluster_blocking(command: &str, name: &str) -> std::process::ExitStatus {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::process::Command::new(root.join("hack/cluster"))
        .args([command, "--name", name])
        .current_dir(&root)
        .status()
        .expect("hack/cluster runs")
}

/// The remote cluster, stopped: started again by [`Stopped::start`], or when dropped (a test that failed
/// meanwhile), so it is never left down.
struct Stopped {
    name: Option<String>,
}

impl Stopped {
    async fn stop(remote: &Remote) -> Stopped {
        hack_cluster("down", &remote.name).await;
        Stopped { name: Some(remote.name.clone()) }
    }

    async fn start(mut self) {
        let name = self.name.take().unwrap();
        hack_cluster("up", &name).await;
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        if let Some(name) = self.name.take() {
            hack_cluster_blocking("up", &name);
        }
    }
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
    let remote = remote().await;
    cluster_secret(
        bench,
        "remote",
        json!({"name": "remote", "server": remote.server, "config": remote.config}),
    )
    .await;
    let repo = GitRepo::new();
    repo.write("apps/web/web.yaml", &web_manifests("myorg/web:v1.2.3"));
    repo.commit("web");
    (remote, repo)
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

    bench.cleanup().await;
    let _ = Api::<Namespace>::all(remote.client.clone()).delete(&ns, &DeleteParams::background()).await;
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
    assert!(messages.iter().any(|m| m.contains("cluster \"prod\" is not configured")), "{messages:?}");

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

    let stopped = Stopped::stop(&remote).await;
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

    bench.cleanup().await;
    let _ = Api::<Namespace>::all(remote.client.clone()).delete(&ns, &DeleteParams::background()).await;
}
