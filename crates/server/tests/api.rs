//! The REST API over real HTTP against the real local cluster: health, version, application list (with
//! project, search and label filters) and get, and Argo CD's error shape.

use berth_testkit::*;
use kube::api::{Api, Patch, PatchParams};
use std::sync::Arc;
use std::time::Duration;

struct Server {
    base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn start(client: &kube::Client, namespace: &str) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let apps = berth_server::api::watch_applications(client.clone(), namespace);
    let shared = Arc::new(berth_server::api::Shared { apps, namespace: namespace.into() });
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(berth_server::api::serve_on(listener, shared, async {
        let _ = rx.await;
    }));
    Server { base, stop: Some(tx) }
}

async fn get(url: &str) -> (u16, serde_json::Value) {
    let response = reqwest::get(url).await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
}

async fn create_app(client: &kube::Client, ns: &str, name: &str, project: &str, team: &str) {
    let api: Api<berth_api::Application> = Api::namespaced(client.clone(), ns);
    let body = serde_json::json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": name, "namespace": ns, "labels": {"team": team}},
        "spec": {"project": project,
                 "source": {"repoURL": "https://example.com/repo.git", "path": name},
                 "destination": {"server": "https://kubernetes.default.svc", "namespace": name}}
    });
    api.patch(name, &PatchParams::apply("berth-test"), &Patch::Apply(&body)).await.unwrap();
}

#[tokio::test]
async fn applications_are_listed_filtered_and_read_with_argo_cds_shapes() {
    let client = client().await;
    install_crds(&client).await;
    let ns = unique("api");
    ensure_namespace(&client, &ns).await;
    create_app(&client, &ns, "web", "default", "web").await;
    create_app(&client, &ns, "web-api", "dev-team", "web").await;
    create_app(&client, &ns, "billing", "default", "money").await;
    let server = start(&client, &ns).await;

    let (status, body) = get(&format!("{}/healthz", server.base)).await;
    assert_eq!((status, body), (200, serde_json::Value::String("ok".into())));
    let (status, metrics) = get(&format!("{}/metrics", server.base)).await;
    assert_eq!(status, 200);
    let metrics = metrics.as_str().unwrap().to_string();
    for name in ["argocd_app_reconcile_bucket", "argocd_app_sync_total", "workqueue_depth"] {
        assert!(metrics.contains(name), "{name} in {metrics}");
    }
    let (status, version) = get(&format!("{}/api/version", server.base)).await;
    assert_eq!(status, 200);
    assert!(version["Version"].as_str().unwrap().starts_with('v'));

    let names = |body: &serde_json::Value| -> Vec<String> {
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    let list = format!("{}/api/v1/applications", server.base);
    poll("the server's watch to list all three", Duration::from_secs(30), || async {
        get(&list).await.1["items"].as_array().is_some_and(|i| i.len() == 3)
    })
    .await;
    assert_eq!(names(&get(&list).await.1), ["billing", "web", "web-api"]);
    assert_eq!(names(&get(&format!("{list}?projects=dev-team")).await.1), ["web-api"]);
    assert_eq!(names(&get(&format!("{list}?search=web")).await.1), ["web", "web-api"]);
    assert_eq!(names(&get(&format!("{list}?selector=team%3Dmoney")).await.1), ["billing"]);
    let (status, error) = get(&format!("{list}?selector=team%20in%20(a)")).await;
    assert_eq!((status, error["code"].as_i64()), (400, Some(3)), "{error}");

    let (status, app) = get(&format!("{list}/web")).await;
    assert_eq!(status, 200);
    assert_eq!(app["spec"]["source"]["path"], "web");
    let (status, error) = get(&format!("{list}/nothing")).await;
    assert_eq!(status, 404);
    assert_eq!(error["code"], 5);
    assert_eq!(error["error"], error["message"]);
    assert!(error["message"].as_str().unwrap().contains("\"nothing\" not found"));
}
