//! Destinations on another cluster: a second, independent API server (with its own etcd, controller-manager
//! and kwok; `hack/test` starts it with `hack/cluster up --name <name>-remote` and names its kubeconfig in
//! `BERTH_TEST_REMOTE_KUBECONFIG`), registered with berth through an Argo CD cluster Secret.

mod common;

use berth_testkit::*;
use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::json;

/// The second API server: a client for it, its URL, and the `config` of a cluster Secret that reaches it
/// with its admin's client certificate.
struct Remote {
    client: kube::Client,
    server: String,
    config: String,
}

async fn remote() -> Remote {
    let path = std::env::var("BERTH_TEST_REMOTE_KUBECONFIG").expect(
        "BERTH_TEST_REMOTE_KUBECONFIG names the second API server's kubeconfig: run the tests through hack/test, \
         or `hack/cluster up --name berth-remote` and export it from `hack/cluster env --name berth-remote`",
    );
    let kubeconfig = kube::config::Kubeconfig::read_from(&path).unwrap();
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

#[tokio::test]
async fn an_application_deploys_to_the_cluster_its_secret_names_heals_there_and_touches_nothing_here() {
    let mut bench = Bench::start("clusters").await;
    let remote = remote().await;
    cluster_secret(
        &bench,
        "remote",
        json!({"name": "remote", "server": remote.server, "config": remote.config}),
    )
    .await;
    let repo = GitRepo::new();
    repo.write("apps/web/web.yaml", &web_manifests("myorg/web:v1.2.3"));
    repo.commit("web");
    let ns = bench.dest_namespace("remote-web");
    let name = unique("remote-web");
    let mut app = seed_web_app(&name, &repo.url(), &ns);
    app["spec"]["destination"] = json!({"name": "remote", "namespace": ns});
    bench.create_app(app).await;

    bench
        .wait_app(&name, "Synced and Healthy on the remote cluster", |a| {
            sync_status(a) == "Synced" && health(a) == "Healthy"
        })
        .await;
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
