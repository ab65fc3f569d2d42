//! The REST API over real HTTP against the real local cluster: health, version, application list (with
//! project, search and label filters) and get, and Argo CD's error shape.

use berth_testkit::*;
use kube::api::{Api, Patch, PatchParams};
use std::time::Duration;

mod common;
use common::*;

async fn get_as(url: &str, token: &str) -> (u16, serde_json::Value) {
    let response = reqwest::Client::new().get(url).bearer_auth(token).send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
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
    // A local account that may only read dev-team's applications.
    let maps: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client.clone(), &ns);
    for (name, data) in [
        ("argocd-cm", serde_json::json!({"accounts.alice": "login"})),
        (
            "argocd-rbac-cm",
            serde_json::json!({"policy.csv": "p, alice, applications, get, dev-team/*, allow\n"}),
        ),
    ] {
        let body = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": ns}, "data": data});
        maps.patch(name, &PatchParams::apply("berth-test"), &Patch::Apply(&body)).await.unwrap();
    }
    berth_server::auth::bootstrap(&client, &ns).await.unwrap();
    berth_server::auth::set_password(&client, &ns, "alice", "alice-pass-123").await.unwrap();
    let server = start(&client, &ns).await;

    let (status, body) = get(&format!("{}/healthz", server.base)).await;
    assert_eq!((status, body), (200, serde_json::Value::String("ok".into())));
    // The metrics are on their own listener, not on the API port (they name every app, project and repo).
    let (status, on_api_port) = get(&format!("{}/metrics", server.base)).await;
    assert_eq!(status, 404, "{on_api_port}");
    let metrics_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics_base = format!("http://{}", metrics_listener.local_addr().unwrap());
    tokio::spawn(berth_server::api::serve_metrics_on(metrics_listener, std::future::pending()));
    let (status, metrics) = get(&format!("{metrics_base}/metrics")).await;
    assert_eq!(status, 200);
    let metrics = metrics.as_str().unwrap().to_string();
    for name in ["argocd_app_reconcile_bucket", "argocd_app_sync_total", "workqueue_depth"] {
        assert!(metrics.contains(name), "{name} in {metrics}");
    }
    let (status, version) = get(&format!("{}/api/version", server.base)).await;
    assert_eq!(status, 200);
    assert!(version["Version"].as_str().unwrap().starts_with('v'));

    // No token, a forged one, a wrong password: 401 with Argo CD's code 16.
    let list = format!("{}/api/v1/applications", server.base);
    let (status, error) = get(&list).await;
    assert_eq!((status, error["code"].as_i64()), (401, Some(16)), "{error}");
    assert_eq!(get_as(&list, "eyJhbGciOiJIUzI1NiJ9.e30.forged").await.0, 401);
    assert_eq!(login(&server.base, "admin", "wrong-password").await.status().as_u16(), 401);

    let admin = token(&server.base, "admin", &admin_password(&client, &ns).await).await;
    let (status, info) = get_as(&format!("{}/api/v1/session/userinfo", server.base), &admin).await;
    assert_eq!((status, &info["username"]), (200, &serde_json::json!("admin")));

    let names = |body: &serde_json::Value| -> Vec<String> {
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    poll("the server's watch to list all three", Duration::from_secs(30), || async {
        get_as(&list, &admin).await.1["items"].as_array().is_some_and(|i| i.len() == 3)
    })
    .await;
    assert_eq!(names(&get_as(&list, &admin).await.1), ["billing", "web", "web-api"]);
    assert_eq!(names(&get_as(&format!("{list}?projects=dev-team"), &admin).await.1), ["web-api"]);
    assert_eq!(names(&get_as(&format!("{list}?search=web"), &admin).await.1), ["web", "web-api"]);
    assert_eq!(names(&get_as(&format!("{list}?selector=team%3Dmoney"), &admin).await.1), ["billing"]);
    let (status, error) = get_as(&format!("{list}?selector=team%20in%20(a)"), &admin).await;
    assert_eq!((status, error["code"].as_i64()), (400, Some(3)), "{error}");

    let (status, app) = get_as(&format!("{list}/web"), &admin).await;
    assert_eq!(status, 200);
    assert_eq!(app["spec"]["source"]["path"], "web");
    // An unknown app is refused as a forbidden one is, so names cannot be probed (Argo CD's answer).
    let (status, error) = get_as(&format!("{list}/nothing"), &admin).await;
    assert_eq!(status, 403);
    assert_eq!(error["code"], 7);
    assert_eq!(error["error"], error["message"]);
    assert_eq!(error["message"], "permission denied");

    // alice sees only what policy.csv lets her get.
    let alice = token(&server.base, "alice", "alice-pass-123").await;
    assert_eq!(names(&get_as(&list, &alice).await.1), ["web-api"]);
    let (status, error) = get_as(&format!("{list}/web"), &alice).await;
    assert_eq!((status, error["code"].as_i64()), (403, Some(7)), "{error}");
}

fn sign(secret: &str, body: &[u8]) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    format!("sha256={}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

#[tokio::test]
async fn a_signed_github_push_refreshes_exactly_the_apps_it_touches_and_a_forged_one_nothing() {
    let client = client().await;
    install_crds(&client).await;
    let ns = unique("webhook");
    ensure_namespace(&client, &ns).await;
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), &ns);
    let secret = serde_json::json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "argocd-secret", "namespace": ns},
        "stringData": {"webhook.github.secret": "s3cret-hook"}});
    secrets.patch("argocd-secret", &PatchParams::apply("berth-test"), &Patch::Apply(&secret)).await.unwrap();
    let apps: Api<berth_api::Application> = Api::namespaced(client.clone(), &ns);
    for (name, url, path) in [
        ("touched", "git@github.com:org/manifests.git", "apps/web"),
        ("other-path", "https://github.com/org/manifests", "apps/api"),
        ("other-repo", "https://github.com/org/elsewhere.git", "apps/web"),
    ] {
        let body = serde_json::json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"project": "default",
                     "source": {"repoURL": url, "path": path, "targetRevision": "main"},
                     "destination": {"server": "https://kubernetes.default.svc", "namespace": name}}
        });
        apps.patch(name, &PatchParams::apply("berth-test"), &Patch::Apply(&body)).await.unwrap();
    }
    let server = start(&client, &ns).await;
    let list = format!("{}/api/v1/applications", server.base);
    let admin = token(&server.base, "admin", &admin_password(&client, &ns).await).await;
    poll("the server to see the three apps", Duration::from_secs(30), || async {
        get_as(&list, &admin).await.1["items"].as_array().is_some_and(|i| i.len() == 3)
    })
    .await;
    let push = serde_json::to_vec(&serde_json::json!({
        "ref": "refs/heads/main", "before": "1".repeat(40), "after": "2".repeat(40),
        "repository": {"html_url": "https://github.com/org/manifests", "clone_url": "https://github.com/org/manifests.git",
                       "ssh_url": "git@github.com:org/manifests.git", "default_branch": "main"},
        "commits": [{"added": [], "modified": ["apps/web/deployment.yaml"], "removed": []}]
    }))
    .unwrap();
    let http = reqwest::Client::new();
    let post = |signature: String| {
        http.post(format!("{}/api/webhook", server.base))
            .header("X-GitHub-Event", "push")
            .header("X-Hub-Signature-256", signature)
            .header("Content-Type", "application/json")
            .body(push.clone())
            .send()
    };
    let refreshed = |app: berth_api::Application| {
        app.metadata.annotations.is_some_and(|a| a.contains_key("argocd.argoproj.io/refresh"))
    };

    let forged = post(sign("not-the-secret", &push)).await.unwrap();
    assert_eq!(forged.status().as_u16(), 401);
    let text = forged.text().await.unwrap();
    assert!(!text.contains("s3cret-hook"), "{text}");
    for name in ["touched", "other-path", "other-repo"] {
        assert!(!refreshed(apps.get(name).await.unwrap()), "{name} refreshed by a forged push");
    }

    let signed = post(sign("s3cret-hook", &push)).await.unwrap();
    assert_eq!(signed.status().as_u16(), 200);
    let body: serde_json::Value = signed.json().await.unwrap();
    assert_eq!(body["refreshed"], serde_json::json!(["touched"]));
    assert!(refreshed(apps.get("touched").await.unwrap()));
    assert!(!refreshed(apps.get("other-path").await.unwrap()));
    assert!(!refreshed(apps.get("other-repo").await.unwrap()));

    // A rotated secret is taken from argocd-secret's watch, without a restart: the old one stops working.
    let rotated = serde_json::json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "argocd-secret", "namespace": ns},
        "stringData": {"webhook.github.secret": "rotated-hook"}});
    secrets.patch("argocd-secret", &PatchParams::apply("berth-test"), &Patch::Apply(&rotated)).await.unwrap();
    poll("the rotated webhook secret taken", Duration::from_secs(30), || async {
        post(sign("rotated-hook", &push)).await.unwrap().status().as_u16() == 200
    })
    .await;
    assert_eq!(post(sign("s3cret-hook", &push)).await.unwrap().status().as_u16(), 401);
}

#[tokio::test]
async fn applications_are_created_synced_rolled_back_and_deleted_through_the_api_with_rbac() {
    let client = client().await;
    install_crds(&client).await;
    let ns = unique("api-write");
    ensure_namespace(&client, &ns).await;
    let maps: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client.clone(), &ns);
    for (name, data) in [
        ("argocd-cm", serde_json::json!({"accounts.viewer": "login"})),
        ("argocd-rbac-cm", serde_json::json!({"policy.default": "role:readonly"})),
    ] {
        let body = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": ns}, "data": data});
        maps.patch(name, &PatchParams::apply("berth-test"), &Patch::Apply(&body)).await.unwrap();
    }
    let projects: Api<berth_api::AppProject> = Api::namespaced(client.clone(), &ns);
    let project = serde_json::json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject",
        "metadata": {"name": "default", "namespace": ns},
        "spec": {"sourceRepos": ["*"], "destinations": [{"server": "*", "namespace": "*"}]}});
    projects.patch("default", &PatchParams::apply("berth-test"), &Patch::Apply(&project)).await.unwrap();
    berth_server::auth::bootstrap(&client, &ns).await.unwrap();
    berth_server::auth::set_password(&client, &ns, "viewer", "viewer-pass-1").await.unwrap();
    let server = start(&client, &ns).await;
    let admin = token(&server.base, "admin", &admin_password(&client, &ns).await).await;
    let viewer = token(&server.base, "viewer", "viewer-pass-1").await;
    let apps_url = format!("{}/api/v1/applications", server.base);

    // The seed's Application, created through the API (its namespace becomes berth's).
    let text = std::fs::read_to_string(seed_dir().join("application-web.yaml")).unwrap();
    let mut seed: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
    seed["spec"].as_object_mut().unwrap().remove("syncPolicy");
    let (status, created) = call(reqwest::Method::POST, &apps_url, &admin, Some(seed.clone())).await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["metadata"]["namespace"], ns.as_str());
    let (status, again) = call(reqwest::Method::POST, &apps_url, &admin, Some(seed.clone())).await;
    assert_eq!((status, again["code"].as_i64()), (409, Some(6)), "{again}");
    let (status, _) =
        call(reqwest::Method::POST, &format!("{apps_url}?upsert=true"), &admin, Some(seed.clone())).await;
    assert_eq!(status, 200);
    let (status, denied) = call(reqwest::Method::POST, &apps_url, &viewer, Some(seed)).await;
    assert_eq!((status, denied["code"].as_i64()), (403, Some(7)));

    poll("the server to see web", Duration::from_secs(30), || async {
        get_as(&format!("{apps_url}/web"), &admin).await.0 == 200
    })
    .await;
    let (status, _) =
        call(reqwest::Method::POST, &format!("{apps_url}/web/sync"), &viewer, Some(serde_json::json!({})))
            .await;
    assert_eq!(status, 403, "readonly may not sync");
    let (status, synced) = call(
        reqwest::Method::POST,
        &format!("{apps_url}/web/sync"),
        &admin,
        Some(serde_json::json!({"prune": true, "revision": "main", "syncOptions": {"items": ["CreateNamespace=true"]}})),
    )
    .await;
    assert_eq!(status, 200, "{synced}");
    assert_eq!(synced["operation"]["sync"]["prune"], true);
    assert_eq!(synced["operation"]["sync"]["revision"], "main");
    assert_eq!(synced["operation"]["sync"]["syncOptions"], serde_json::json!(["CreateNamespace=true"]));
    assert_eq!(synced["operation"]["initiatedBy"]["username"], "admin");
    poll("the server to see the operation", Duration::from_secs(30), || async {
        !get_as(&format!("{apps_url}/web"), &admin).await.1["operation"].is_null()
    })
    .await;
    let (status, busy) = call(reqwest::Method::POST, &format!("{apps_url}/web/sync"), &admin, None).await;
    assert_eq!((status, busy["code"].as_i64()), (400, Some(9)), "{busy}");

    let (status, error) = call(
        reqwest::Method::POST,
        &format!("{apps_url}/web/rollback"),
        &admin,
        Some(serde_json::json!({"id": 3})),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        error["message"].as_str().unwrap().contains("in progress")
            || error["message"].as_str().unwrap().contains("no history entry 3"),
        "{error}"
    );
    let (status, _) = call(reqwest::Method::DELETE, &format!("{apps_url}/web/operation"), &admin, None).await;
    assert_eq!(status, 400, "no operation is running (nothing has started it)");

    let (status, projects) = get_as(&format!("{}/api/v1/projects", server.base), &viewer).await;
    assert_eq!(status, 200);
    assert_eq!(projects["items"][0]["metadata"]["name"], "default");

    let (status, _) =
        call(reqwest::Method::DELETE, &format!("{apps_url}/web?cascade=false"), &viewer, None).await;
    assert_eq!(status, 403);
    let (status, _) =
        call(reqwest::Method::DELETE, &format!("{apps_url}/web?cascade=false"), &admin, None).await;
    assert_eq!(status, 200);
    let apps: Api<berth_api::Application> = Api::namespaced(client.clone(), &ns);
    poll("web to be gone (no finalizer without cascade)", Duration::from_secs(30), || async {
        apps.get_opt("web").await.unwrap().is_none()
    })
    .await;
}

#[tokio::test]
async fn the_resource_tree_goes_from_the_deployment_through_its_replicaset_to_its_pods() {
    let client = client().await;
    install_crds(&client).await;
    let ns = unique("tree");
    ensure_namespace(&client, &ns).await;
    let dest = unique("tree-dest");
    ensure_namespace(&client, &dest).await;
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> = Api::namespaced(client.clone(), &dest);
    // The tracking ids berth writes when it applies them: what makes them the app's.
    let tracking = "argocd.argoproj.io/tracking-id";
    let deployment = serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": dest,
                     "annotations": {tracking: format!("web:apps/Deployment:{dest}/web")}},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "web", "image": "myorg/web:v1.2.3"}]}}}});
    deployments.patch("web", &PatchParams::apply("berth-test"), &Patch::Apply(&deployment)).await.unwrap();
    let services: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(client.clone(), &dest);
    let service = serde_json::json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": dest, "annotations": {tracking: format!("web:/Service:{dest}/web")}},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}});
    services.patch("web", &PatchParams::apply("berth-test"), &Patch::Apply(&service)).await.unwrap();
    let apps: Api<berth_api::Application> = Api::namespaced(client.clone(), &ns);
    let app = serde_json::json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": "web", "namespace": ns},
        "spec": {"project": "default", "source": {"repoURL": "https://example.com/r.git", "path": "web"},
                 "destination": {"server": "https://kubernetes.default.svc", "namespace": dest}},
        "status": {"resources": [
            {"group": "apps", "version": "v1", "kind": "Deployment", "namespace": dest, "name": "web", "status": "Synced"},
            {"version": "v1", "kind": "Service", "namespace": dest, "name": "web", "status": "Synced"}]}});
    apps.patch("web", &PatchParams::apply("berth-test"), &Patch::Apply(&app)).await.unwrap();
    let server = start(&client, &ns).await;
    let admin = token(&server.base, "admin", &admin_password(&client, &ns).await).await;
    let url = format!("{}/api/v1/applications/web/resource-tree", server.base);
    let kinds = |tree: &serde_json::Value| -> Vec<String> {
        tree["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|n| n["kind"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    poll("Deployment, Service, ReplicaSet and two ready Pods", Duration::from_secs(60), || async {
        let (status, tree) = get_as(&url, &admin).await;
        let k = kinds(&tree);
        status == 200
            && k.iter().filter(|k| *k == "Pod").count() == 2
            && k.contains(&"ReplicaSet".to_string())
            && tree["nodes"][0]["info"][0]["value"] == "2/2"
    })
    .await;
    let (_, tree) = get_as(&url, &admin).await;
    let nodes = tree["nodes"].as_array().unwrap();
    let rs = nodes.iter().find(|n| n["kind"] == "ReplicaSet").unwrap();
    assert_eq!(rs["parentRefs"][0]["kind"], "Deployment");
    for pod in nodes.iter().filter(|n| n["kind"] == "Pod") {
        assert_eq!(pod["parentRefs"][0]["uid"], rs["uid"]);
        assert_eq!(pod["health"]["status"], "Healthy");
        assert_eq!(pod["images"][0], "myorg/web:v1.2.3");
    }
    assert_eq!(nodes[0]["kind"], "Deployment");
    assert_eq!(nodes[0]["health"]["status"], "Healthy");

    // A Pod's live manifest (what the UI's panel shows for a node berth does not manage itself); an object
    // outside the app's tree is 404 even though it exists.
    let pod = nodes.iter().find(|n| n["kind"] == "Pod").unwrap();
    let pod_name = pod["name"].as_str().unwrap();
    let resource = |kind: &str, group: &str, name: &str| {
        format!(
            "{}/api/v1/applications/web/resource?namespace={dest}&resourceName={name}&group={group}&version=v1&kind={kind}",
            server.base
        )
    };
    let (status, body) = get_as(&resource("Pod", "", pod_name), &admin).await;
    assert_eq!(status, 200, "{body}");
    let manifest: serde_json::Value = serde_json::from_str(body["manifest"].as_str().unwrap()).unwrap();
    assert_eq!(
        (manifest["kind"].as_str(), manifest["metadata"]["name"].as_str()),
        (Some("Pod"), Some(pod_name))
    );
    assert!(manifest["metadata"].get("managedFields").is_none());
    let maps: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client.clone(), &dest);
    let stray = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "stray", "namespace": dest}});
    maps.patch("stray", &PatchParams::apply("berth-test"), &Patch::Apply(&stray)).await.unwrap();
    let (status, _) = get_as(&resource("ConfigMap", "", "stray"), &admin).await;
    assert_eq!(status, 404);
}

/// The phase of `name`'s operation as the API server answers it now.
async fn operation_phase(url: &str, token: &str) -> Option<String> {
    get_as(url, token).await.1["status"]["operationState"]["phase"].as_str().map(str::to_string)
}

#[tokio::test]
async fn terminate_only_asks_the_controller_to_stop_a_running_operation() {
    let client = client().await;
    install_crds(&client).await;
    let ns = unique("api-terminate");
    ensure_namespace(&client, &ns).await;
    berth_server::auth::bootstrap(&client, &ns).await.unwrap();
    let server = start(&client, &ns).await;
    let admin = token(&server.base, "admin", &admin_password(&client, &ns).await).await;
    create_app(&client, &ns, "web", "default", "a").await;
    let app_url = format!("{}/api/v1/applications/web", server.base);
    let terminate_url = format!("{app_url}/operation");
    let apps: Api<berth_api::Application> = Api::namespaced(client.clone(), &ns);
    // A controller's pass in progress, written as the controller writes it (no controller runs here).
    let set_phase = |phase: &'static str| {
        let apps = apps.clone();
        async move {
            let status = serde_json::json!({"status": {"operationState": {
                "operation": {"sync": {"revision": "main"}}, "phase": phase,
                "startedAt": "2026-01-01T00:00:00Z"}}});
            apps.patch("web", &PatchParams::default(), &Patch::Merge(&status)).await.unwrap();
        }
    };
    set_phase("Running").await;
    poll("the server to see the running operation", Duration::from_secs(30), || async {
        operation_phase(&app_url, &admin).await.as_deref() == Some("Running")
    })
    .await;

    let (status, body) = call(reqwest::Method::DELETE, &terminate_url, &admin, None).await;
    assert_eq!(status, 200, "{body}");
    // The server only asks: the phase is Terminating, and nothing of the result is written by it.
    let stored = apps.get("web").await.unwrap();
    let state = stored.status.unwrap().operation_state.unwrap();
    assert_eq!(state.phase, "Terminating");
    assert_eq!(state.finished_at, None);
    assert_eq!(state.message, None);
    poll("the API server to answer Terminating", Duration::from_secs(30), || async {
        operation_phase(&app_url, &admin).await.as_deref() == Some("Terminating")
    })
    .await;
    // Asking again before the controller acts is not an error.
    let (status, body) = call(reqwest::Method::DELETE, &terminate_url, &admin, None).await;
    assert_eq!(status, 200, "{body}");

    // Finished operations are not in progress: 400 with InvalidArgument, as Argo CD answers.
    set_phase("Succeeded").await;
    poll("the server to see the finished operation", Duration::from_secs(30), || async {
        operation_phase(&app_url, &admin).await.as_deref() == Some("Succeeded")
    })
    .await;
    let (status, body) = call(reqwest::Method::DELETE, &terminate_url, &admin, None).await;
    assert_eq!((status, body["code"].as_i64()), (400, Some(3)), "{body}");
    assert_eq!(apps.get("web").await.unwrap().status.unwrap().operation_state.unwrap().phase, "Succeeded");
}
