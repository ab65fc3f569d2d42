//! berth's parts together, in-process, on the real cluster: the controller with polling turned off and the
//! API server; a signed GitHub push to the webhook is what deploys a new commit.

use berth_testkit::*;
use kube::api::{Api, Patch, PatchParams};
use std::time::Duration;

mod common;
use common::*;

fn sign(secret: &str, body: &[u8]) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect::<String>())
}

fn deployment(image: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n      containers:\n      - name: web\n        image: {image}\n"
    )
}

async fn image(client: &kube::Client, ns: &str) -> Option<String> {
    let api: Api<k8s_openapi::api::apps::v1::Deployment> = Api::namespaced(client.clone(), ns);
    api.get_opt("web").await.unwrap()?.spec?.template.spec?.containers[0].image.clone()
}

#[tokio::test]
async fn a_signed_push_to_the_webhook_deploys_the_pushed_commit_with_polling_off() {
    let client = client().await;
    install_crds(&client).await;
    let ns = unique("deploy");
    ensure_namespace(&client, &ns).await;
    let dest = unique("deploy-dest");
    let apply = |name: &str, body: serde_json::Value| {
        let client = client.clone();
        let (ns, name) = (ns.clone(), name.to_string());
        async move {
            let kind = body["kind"].as_str().unwrap().to_string();
            let ar = kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk("", "v1", &kind));
            let api: Api<kube::api::DynamicObject> = Api::namespaced_with(client, &ns, &ar);
            api.patch(&name, &PatchParams::apply("berth-test"), &Patch::Apply(&body)).await.unwrap();
        }
    };
    // Polling off: only the webhook can bring a new commit in.
    apply(
        "argocd-cm",
        serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "argocd-cm", "namespace": ns},
        "data": {"timeout.reconciliation": "0", "berth.repositories.allowFileURLs": "true"}}),
    )
    .await;
    apply("argocd-secret", serde_json::json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "argocd-secret", "namespace": ns}, "stringData": {"webhook.github.secret": "hook-secret"}})).await;

    let repo = GitRepo::new();
    repo.write("apps/web/deployment.yaml", &deployment("myorg/web:v1"));
    repo.commit("v1");
    let url = repo.url();

    // The server reads the controller of this process through the view they share, as in `berth run`.
    let options = Options { controller: true, workers: 4, ..Default::default() };
    let server = InProcess::start(&client, &ns, options).await;
    let base = server.base.clone();

    let apps: Api<berth_api::Application> = Api::namespaced(client.clone(), &ns);
    let app = serde_json::json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": "web", "namespace": ns},
        "spec": {"project": "default", "source": {"repoURL": url, "path": "apps/web", "targetRevision": "HEAD"},
                 "destination": {"server": "https://kubernetes.default.svc", "namespace": dest},
                 "syncPolicy": {"automated": {"prune": true}, "syncOptions": ["CreateNamespace=true"]}}});
    apps.patch("web", &PatchParams::apply("berth-test"), &Patch::Apply(&app)).await.unwrap();
    poll("v1 deployed", Duration::from_secs(45), || async {
        image(&client, &dest).await.as_deref() == Some("myorg/web:v1")
    })
    .await;

    repo.write("apps/web/deployment.yaml", &deployment("myorg/web:v2"));
    let after = repo.commit("v2");
    let push = serde_json::to_vec(&serde_json::json!({
        "ref": "refs/heads/main", "before": "0".repeat(40), "after": after,
        "repository": {"html_url": url, "clone_url": url, "default_branch": "main"},
        "commits": [{"added": [], "modified": ["apps/web/deployment.yaml"], "removed": []}]
    }))
    .unwrap();
    let response = reqwest::Client::new()
        .post(format!("{base}/api/webhook"))
        .header("X-GitHub-Event", "push")
        .header("X-Hub-Signature-256", sign("hook-secret", &push))
        .header("Content-Type", "application/json")
        .body(push)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["refreshed"], serde_json::json!(["web"]));
    poll("v2 deployed by the webhook", Duration::from_secs(45), || async {
        image(&client, &dest).await.as_deref() == Some("myorg/web:v2")
    })
    .await;
    let app = apps.get("web").await.unwrap();
    assert_eq!(app.status.unwrap().sync.unwrap().revision.as_deref(), Some(after.as_str()));

    // What the controller compares, through the API: the target and live states, and the manifests.
    let admin = {
        let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), &ns);
        let password =
            secrets.get("argocd-initial-admin-secret").await.unwrap().data.unwrap()["password"].0.clone();
        let response = reqwest::Client::new()
            .post(format!("{base}/api/v1/session"))
            .json(&serde_json::json!({"username": "admin", "password": String::from_utf8(password).unwrap()}))
            .send()
            .await
            .unwrap();
        response.json::<serde_json::Value>().await.unwrap()["token"].as_str().unwrap().to_string()
    };
    let get = |path: String| {
        let admin = admin.clone();
        async move {
            let r = reqwest::Client::new().get(path).bearer_auth(admin).send().await.unwrap();
            (r.status().as_u16(), r.json::<serde_json::Value>().await.unwrap())
        }
    };
    let (status, managed) = get(format!("{base}/api/v1/applications/web/managed-resources")).await;
    assert_eq!(status, 200, "{managed}");
    let item = &managed["items"][0];
    assert_eq!(item["kind"], "Deployment");
    for state in ["targetState", "liveState", "normalizedLiveState", "predictedLiveState"] {
        let text = item[state].as_str().unwrap();
        assert!(text.contains("myorg/web:v2"), "{state}: {text}");
    }
    assert!(!item["normalizedLiveState"].as_str().unwrap().contains("managedFields"));
    let (status, manifests) = get(format!("{base}/api/v1/applications/web/manifests")).await;
    assert_eq!(status, 200);
    assert_eq!(manifests["revision"], after.as_str());
    assert_eq!(manifests["manifests"].as_array().unwrap().len(), 1);

    // The commit's author, date and message; an unknown revision is a 404 naming it.
    let (status, meta) = get(format!("{base}/api/v1/applications/web/revisions/{after}/metadata")).await;
    assert_eq!(status, 200, "{meta}");
    assert_eq!(meta["message"], "v2");
    assert!(meta["author"].as_str().unwrap().contains('@'), "{meta}");
    assert!(meta["date"].as_str().unwrap().starts_with("20"), "{meta}");
    let (status, meta) =
        get(format!("{base}/api/v1/applications/web/revisions/no-such-branch/metadata")).await;
    assert_eq!(status, 404, "{meta}");
    assert!(meta["message"].as_str().unwrap().contains("no-such-branch"), "{meta}");

    // The controller's events on the Application, as Argo CD records them.
    poll("the sync's events", Duration::from_secs(30), || async {
        let (status, events) = get(format!("{base}/api/v1/applications/web/events")).await;
        assert_eq!(status, 200, "{events}");
        let notes: Vec<String> = events["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                format!(
                    "{} {}",
                    e["reason"].as_str().unwrap_or_default(),
                    e["message"].as_str().unwrap_or_default()
                )
            })
            .collect();
        let has = |s: &str| notes.iter().any(|n| n.contains(s));
        has("OperationStarted Initiated automated sync to")
            && has(&format!("OperationCompleted Sync operation to {after} succeeded"))
            && has("ResourceUpdated Updated sync status: OutOfSync -> Synced")
            && has("ResourceUpdated Updated health status:")
    })
    .await;

    // `?refresh` answers once the controller has looked again: a commit pushed without a webhook is seen.
    repo.write("apps/web/deployment.yaml", &deployment("myorg/web:v3"));
    let third = repo.commit("v3");
    let (status, refreshed) = get(format!("{base}/api/v1/applications/web?refresh=normal")).await;
    assert_eq!(status, 200, "{refreshed}");
    assert_eq!(refreshed["status"]["sync"]["revision"], third.as_str(), "{}", refreshed["status"]);
    assert!(refreshed["metadata"]["annotations"].get("argocd.argoproj.io/refresh").is_none());
    poll("v3 deployed after the refresh", Duration::from_secs(45), || async {
        image(&client, &dest).await.as_deref() == Some("myorg/web:v3")
    })
    .await;
    let (status, body) = get(format!("{base}/api/v1/applications/web?refresh=sideways")).await;
    assert_eq!(status, 400, "{body}");

    server.stop().await;
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    for n in [&ns, &dest] {
        let _ = namespaces.delete(n, &Default::default()).await;
    }
}
