//! Clusters through the API with the controller in the same process, on the real local cluster: each one's
//! connection state, version and application count come from what the controller recorded of it.

use berth_testkit::*;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;

mod common;
use common::*;

const IN_CLUSTER: &str = "https://kubernetes.default.svc";
/// Nothing listens there: the controller's requests to it fail at once.
const UNREACHABLE: &str = "https://127.0.0.1:1";
const UNUSED: &str = "https://unused.example.com:6443";

async fn apply(client: &kube::Client, ns: &str, body: Value) {
    let (kind, name) = (body["kind"].as_str().unwrap(), body["metadata"]["name"].as_str().unwrap());
    let (group, version) = match body["apiVersion"].as_str().unwrap().split_once('/') {
        Some((group, version)) => (group.to_string(), version.to_string()),
        None => (String::new(), body["apiVersion"].as_str().unwrap().to_string()),
    };
    let ar = kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(&group, &version, kind));
    let api: Api<kube::api::DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
    api.patch(name, &PatchParams::apply("berth-test").force(), &Patch::Apply(&body)).await.unwrap();
}

fn cluster_secret(ns: &str, name: &str, server: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": ns, "labels": {"argocd.argoproj.io/secret-type": "cluster"}},
        "stringData": {"name": name, "server": server,
                       "config": r#"{"bearerToken": "never-shown-token", "tlsClientConfig": {"insecure": true}}"#}})
}

fn application(ns: &str, name: &str, repo: &str, server: &str, dest: &str) -> Value {
    json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"project": "default", "source": {"repoURL": repo, "path": "app", "targetRevision": "HEAD"},
                 "destination": {"server": server, "namespace": dest},
                 "syncPolicy": {"automated": {}, "syncOptions": ["CreateNamespace=true"]}}})
}

fn by_server<'a>(list: &'a Value, server: &str) -> &'a Value {
    list["items"].as_array().unwrap().iter().find(|c| c["server"] == server).unwrap_or(&Value::Null)
}

#[tokio::test]
async fn clusters_show_the_controllers_connection_state_version_and_application_count() {
    let client = client().await;
    install_crds(&client).await;
    let ns = unique("clusters");
    ensure_namespace(&client, &ns).await;
    let dest = unique("clusters-dest");
    apply(
        &client,
        &ns,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "argocd-cm", "namespace": ns},
            "data": {"berth.repositories.allowFileURLs": "true"}}),
    )
    .await;
    apply(&client, &ns, cluster_secret(&ns, "down", UNREACHABLE)).await;
    apply(&client, &ns, cluster_secret(&ns, "unused", UNUSED)).await;
    let repo = GitRepo::new();
    repo.write(
        "app/config.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  a: b\n",
    );
    repo.commit("one ConfigMap");

    let server = InProcess::start(&client, &ns, Options { controller: true, ..Default::default() }).await;
    let admin = server.admin(&client, &ns).await;
    // Unique app names: a tracking id names the app, and objects of an earlier run's `web` would be this one's.
    let (web, far) = (unique("web"), unique("far"));
    apply(&client, &ns, application(&ns, &web, &repo.url(), IN_CLUSTER, &dest)).await;
    apply(&client, &ns, application(&ns, &far, &repo.url(), UNREACHABLE, &dest)).await;
    let apps: Api<berth_api::Application> = Api::namespaced(client.clone(), &ns);
    poll("web synced", Duration::from_secs(60), || async {
        let app = apps.get(&web).await.unwrap();
        app.status.and_then(|s| s.sync).is_some_and(|s| s.status == "Synced")
    })
    .await;

    poll("the unreachable cluster's failure", Duration::from_secs(30), || async {
        let list = admin.call(Method::GET, "/api/v1/clusters", None).await.1;
        by_server(&list, UNREACHABLE)["connectionState"]["status"] == "Failed"
    })
    .await;
    let (status, list) = admin.call(Method::GET, "/api/v1/clusters", None).await;
    assert_eq!(status, 200, "{list}");
    let text = list.to_string();
    assert!(!text.contains("never-shown-token"), "{text}");

    let in_cluster = by_server(&list, IN_CLUSTER);
    assert_eq!(in_cluster["connectionState"]["status"], "Successful", "{in_cluster}");
    assert_eq!(in_cluster["info"]["connectionState"], in_cluster["connectionState"]);
    assert!(in_cluster["info"]["connectionState"]["attemptedAt"].is_string(), "{in_cluster}");
    let version = in_cluster["serverVersion"].as_str().unwrap_or_default();
    assert_eq!(version.split('.').count(), 2, "major.minor, as Argo CD shows it: {in_cluster}");
    assert_eq!(in_cluster["info"]["serverVersion"], version);
    assert_eq!(in_cluster["info"]["applicationsCount"], 1, "{in_cluster}");
    let cache_info = &in_cluster["info"]["cacheInfo"];
    assert!(cache_info["apisCount"].as_i64().unwrap_or_default() > 0, "{in_cluster}");
    assert!(
        cache_info["resourcesCount"].as_i64().unwrap_or_default() > 0,
        "the synced app's kinds: {in_cluster}"
    );
    let synced_at = serde_json::from_value::<Time>(cache_info["lastCacheSyncTime"].clone());
    assert!(synced_at.is_ok(), "a metav1.Time, as Argo CD's: {in_cluster}");

    let down = by_server(&list, UNREACHABLE);
    assert_eq!(down["info"]["applicationsCount"], 1, "{down}");
    assert!(!down["connectionState"]["message"].as_str().unwrap_or_default().is_empty(), "{down}");
    assert!(down.get("serverVersion").is_none(), "{down}");

    let unused = by_server(&list, UNUSED);
    assert_eq!(unused["connectionState"]["status"], "Unknown", "{unused}");
    assert_eq!(unused["info"]["applicationsCount"], 0, "{unused}");

    // One cluster alone answers the same.
    let path = format!("/api/v1/clusters/{}", urlencoding(IN_CLUSTER));
    let (status, one) = admin.call(Method::GET, path, None).await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(
        (&one["connectionState"]["status"], &one["info"]["applicationsCount"]),
        (&json!("Successful"), &json!(1))
    );
    server.stop().await;
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    for n in [&ns, &dest] {
        let _ = namespaces.delete(n, &Default::default()).await;
    }
}

/// The server URL as one path segment.
fn urlencoding(server: &str) -> String {
    server.replace(':', "%3A").replace('/', "%2F")
}

/// Waits until the conditions of `app-<cluster>` hold every one of `wanted` (lowercase), and checks they
/// show no token.
async fn condition(apps: &Api<berth_api::Application>, cluster: &str, wanted: &[&str]) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let app = apps.get(&format!("app-{cluster}")).await.unwrap();
        let said = serde_json::to_string(&app.status.map(|s| s.conditions).unwrap_or_default()).unwrap();
        assert!(!said.contains("s3cret"), "{said}");
        if wanted.iter().all(|w| said.to_lowercase().contains(w)) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "app-{cluster}'s conditions never said {wanted:?}: {said}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A cluster Secret with a wrong CA, one with a wrong token (both for the second, real API server) and one
/// without `server`: each app says what is wrong with its cluster, the wrong ones are `Failed` with a
/// message, and neither the API nor a condition ever shows the token.
#[tokio::test]
async fn a_wrong_ca_a_wrong_token_and_a_missing_server_each_fail_clearly_without_the_token() {
    let client = client().await;
    install_crds(&client).await;
    let path = std::env::var("BERTH_TEST_REMOTE_KUBECONFIG").expect(
        "BERTH_TEST_REMOTE_KUBECONFIG names the second API server's kubeconfig: run through hack/test",
    );
    let remote = berth_testkit::clusters::LocalCluster::open(&path).await;
    let remote_ca: Value =
        serde_json::from_str::<Value>(&remote.config).unwrap()["tlsClientConfig"]["caData"].clone();
    // The control cluster's CA signed none of the remote's certificates.
    let control = kube::config::Kubeconfig::read().unwrap();
    let control_ca_file =
        control.clusters[0].cluster.as_ref().unwrap().certificate_authority.clone().unwrap();
    let wrong_ca =
        serde_json::to_value(k8s_openapi::ByteString(std::fs::read(control_ca_file).unwrap())).unwrap();
    let ns = unique("clusters-bad");
    ensure_namespace(&client, &ns).await;
    let dest = unique("clusters-bad-dest");
    apply(
        &client,
        &ns,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "argocd-cm", "namespace": ns},
            "data": {"berth.repositories.allowFileURLs": "true"}}),
    )
    .await;
    let secret = |name: &str, data: Value| {
        json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": ns, "labels": {"argocd.argoproj.io/secret-type": "cluster"}},
            "stringData": data})
    };
    let config = |ca: &Value, token: &str| {
        json!({"bearerToken": token, "tlsClientConfig": {"caData": ca}}).to_string()
    };
    // The same API server under three names, the wrong-CA one through `localhost` (a server URL is the key).
    let by_localhost = remote.server.replace("127.0.0.1", "localhost");
    apply(
        &client,
        &ns,
        secret(
            "wrong-ca",
            json!({"name": "wrong-ca", "server": by_localhost, "config": config(&wrong_ca, "tok-ca-s3cret")}),
        ),
    )
    .await;
    apply(&client, &ns, secret("wrong-token", json!({"name": "wrong-token", "server": remote.server, "config": config(&remote_ca, "tok-wrong-s3cret")}))).await;
    apply(
        &client,
        &ns,
        secret("no-server", json!({"name": "no-server", "config": config(&remote_ca, "tok-none-s3cret")})),
    )
    .await;
    let repo = GitRepo::new();
    repo.write(
        "app/config.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  a: b\n",
    );
    repo.commit("one ConfigMap");

    let server = InProcess::start(&client, &ns, Options { controller: true, ..Default::default() }).await;
    let admin = server.admin(&client, &ns).await;
    let apps: Api<berth_api::Application> = Api::namespaced(client.clone(), &ns);
    for cluster in ["wrong-ca", "wrong-token", "no-server"] {
        let mut app = application(&ns, &format!("app-{cluster}"), &repo.url(), IN_CLUSTER, &dest);
        app["spec"]["destination"] = json!({"name": cluster, "namespace": dest});
        apply(&client, &ns, app).await;
    }
    condition(
        &apps,
        "wrong-ca",
        &["comparisonerror", "cluster \\\"wrong-ca\\\"", "unreachable", "certificate"],
    )
    .await;
    condition(
        &apps,
        "wrong-token",
        &["comparisonerror", "cluster \\\"wrong-token\\\"", "unreachable", "unauthorized"],
    )
    .await;
    condition(&apps, "no-server", &["invalidspecerror", "no-server", "server"]).await;

    let list = admin.call(Method::GET, "/api/v1/clusters", None).await.1;
    assert!(!list.to_string().contains("s3cret"), "{list}");
    for (server, wanted) in [(&by_localhost, "certificate"), (&remote.server, "unauthorized")] {
        let state = &by_server(&list, server)["connectionState"];
        assert_eq!(state["status"], "Failed", "{list}");
        let message = state["message"].as_str().unwrap_or_default().to_lowercase();
        assert!(message.contains(wanted), "{message}");
    }
    server.stop().await;
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    for n in [&ns, &dest] {
        let _ = namespaces.delete(n, &Default::default()).await;
    }
}
