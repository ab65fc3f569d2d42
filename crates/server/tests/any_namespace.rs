//! Applications outside the control namespace through the API, on the real local cluster (Argo CD's
//! "applications in any namespace"): listed with their namespace, read and synced with `?appNamespace=`;
//! those of a namespace not allowed are never served.

use berth_controller::instance::ApplicationNamespaces;
use berth_testkit::*;
use kube::api::{Api, Patch, PatchParams};
use std::sync::Arc;
use std::time::Duration;

mod common;

fn deployment(name: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  replicas: 0\n  selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n      containers:\n      - name: {name}\n        image: myorg/{name}:v1\n"
    )
}

/// An Application of `project` in `namespace` (no auto-sync) deploying `path` of `repo` to `dest`.
async fn create_app(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    project: &str,
    repo: &str,
    dest: &str,
) {
    let app = serde_json::json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"project": project, "source": {"repoURL": repo, "path": name, "targetRevision": "HEAD"},
                 "destination": {"server": "https://kubernetes.default.svc", "namespace": dest},
                 "syncPolicy": {"syncOptions": ["CreateNamespace=true"]}}});
    Api::<berth_api::Application>::namespaced(client.clone(), namespace)
        .patch(name, &PatchParams::apply("berth-test"), &Patch::Apply(&app))
        .await
        .unwrap();
}

async fn deployed(client: &kube::Client, namespace: &str, name: &str) -> bool {
    let api: Api<k8s_openapi::api::apps::v1::Deployment> = Api::namespaced(client.clone(), namespace);
    api.get_opt(name).await.unwrap().is_some()
}

#[tokio::test]
async fn apps_of_allowed_namespaces_are_listed_read_and_synced_with_app_namespace_and_others_stay_hidden() {
    let client = client().await;
    install_crds(&client).await;
    let ns = unique("anyns");
    let team = unique("anyns-team");
    let other = unique("anyns-other");
    let dest = unique("anyns-dest");
    for n in [&ns, &team, &other] {
        ensure_namespace(&client, n).await;
    }
    allow_file_urls(&client, &ns).await;
    let project = serde_json::json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject",
        "metadata": {"name": "team", "namespace": ns},
        "spec": {"sourceRepos": ["*"], "destinations": [{"namespace": "*", "server": "*"}],
                 "sourceNamespaces": [team, other]}});
    Api::<berth_api::AppProject>::namespaced(client.clone(), &ns)
        .patch("team", &PatchParams::apply("berth-test"), &Patch::Apply(&project))
        .await
        .unwrap();
    let repo = GitRepo::new();
    for name in ["web", "home", "hidden"] {
        repo.write(&format!("{name}/deployment.yaml"), &deployment(name));
    }
    repo.commit("apps");
    let url = repo.url();
    create_app(&client, &team, "web", "team", &url, &dest).await;
    create_app(&client, &ns, "home", "default", &url, &dest).await;
    create_app(&client, &other, "hidden", "team", &url, &dest).await;

    // The controller and the API server of one process, both told the same namespaces, as `berth run`.
    let cache = tempfile::tempdir().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let view = berth_controller::ControllerView::default();
    let config = berth_controller::ControllerConfig {
        namespace: ns.clone(),
        cache_dir: cache.path().to_path_buf(),
        workers: 2,
        self_heal_timeout: Duration::ZERO,
        namespaces: Vec::new(),
        application_namespaces: vec![team.clone()],
        view: view.clone(),
        settings: None,
    };
    let mut rx = stop_rx.clone();
    let controller = tokio::spawn(berth_controller::Controller::run(client.clone(), config, async move {
        let _ = rx.wait_for(|s| *s).await;
    }));
    let settings = berth_controller::SettingsSource::start(client.clone(), &ns).await.unwrap();
    let shared = berth_server::api::Shared::start_for(
        client.clone(),
        &ns,
        settings,
        ApplicationNamespaces::of([team.as_str()]),
    )
    .await
    .unwrap();
    let shared = Arc::new(shared.with_controller(view));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let mut rx = stop_rx.clone();
    tokio::spawn(berth_server::api::serve_on(listener, shared, async move {
        let _ = rx.wait_for(|s| *s).await;
    }));
    let admin = common::token(&base, "admin", &common::admin_password(&client, &ns).await).await;
    let call = |method: reqwest::Method, path: String| {
        let (admin, base) = (admin.clone(), base.clone());
        async move {
            let r = reqwest::Client::new().request(method, format!("{base}{path}")).bearer_auth(admin).send();
            let r = r.await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<serde_json::Value>().await.unwrap_or_default())
        }
    };

    // The list holds the apps of the control namespace and of the allowed one, each with its namespace.
    let listed = || async {
        let (status, list) = call(reqwest::Method::GET, "/api/v1/applications".into()).await;
        assert_eq!(status, 200, "{list}");
        let mut items: Vec<(String, String)> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                let meta = &a["metadata"];
                (meta["namespace"].as_str().unwrap().to_string(), meta["name"].as_str().unwrap().to_string())
            })
            .collect();
        items.sort();
        items
    };
    poll("both apps listed", Duration::from_secs(30), || async { listed().await.len() == 2 }).await;
    let mut wanted = vec![(ns.clone(), "home".to_string()), (team.clone(), "web".to_string())];
    wanted.sort();
    assert_eq!(listed().await, wanted);
    let (status, only) =
        call(reqwest::Method::GET, format!("/api/v1/applications?appNamespace={team}")).await;
    assert_eq!(status, 200);
    assert_eq!(only["items"].as_array().unwrap().len(), 1, "{only}");

    // Read with ?appNamespace=; without it the name is looked up in the control namespace, where it is not.
    let (status, web) =
        call(reqwest::Method::GET, format!("/api/v1/applications/web?appNamespace={team}")).await;
    assert_eq!(status, 200, "{web}");
    assert_eq!(web["metadata"]["namespace"], team.as_str());
    let (status, _) = call(reqwest::Method::GET, "/api/v1/applications/web".into()).await;
    assert_eq!(status, 403);
    // A namespace not allowed is refused exactly as a missing app, even for the admin.
    let (status, body) =
        call(reqwest::Method::GET, format!("/api/v1/applications/hidden?appNamespace={other}")).await;
    assert_eq!(status, 403, "{body}");
    let (status, _) =
        call(reqwest::Method::POST, format!("/api/v1/applications/hidden/sync?appNamespace={other}")).await;
    assert_eq!(status, 403);

    // Synced through the API: the controller deploys it; its tree and managed resources are served.
    let (status, synced) =
        call(reqwest::Method::POST, format!("/api/v1/applications/web/sync?appNamespace={team}")).await;
    assert_eq!(status, 200, "{synced}");
    assert_eq!(synced["metadata"]["namespace"], team.as_str());
    poll("web deployed", Duration::from_secs(60), || deployed(&client, &dest, "web")).await;
    poll("web's tree", Duration::from_secs(30), || async {
        let (status, tree) =
            call(reqwest::Method::GET, format!("/api/v1/applications/web/resource-tree?appNamespace={team}"))
                .await;
        status == 200 && tree["nodes"].as_array().is_some_and(|n| n.iter().any(|n| n["kind"] == "Deployment"))
    })
    .await;
    let (status, managed) =
        call(reqwest::Method::GET, format!("/api/v1/applications/web/managed-resources?appNamespace={team}"))
            .await;
    assert_eq!(status, 200, "{managed}");
    assert_eq!(managed["items"][0]["kind"], "Deployment", "{managed}");

    // The control namespace's app still works without the parameter.
    let (status, home) = call(reqwest::Method::GET, "/api/v1/applications/home".into()).await;
    assert_eq!(status, 200, "{home}");
    let (status, synced) = call(reqwest::Method::POST, "/api/v1/applications/home/sync".into()).await;
    assert_eq!(status, 200, "{synced}");
    poll("home deployed", Duration::from_secs(60), || deployed(&client, &dest, "home")).await;
    assert!(!deployed(&client, &dest, "hidden").await, "an app of a namespace not allowed was deployed");

    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(30), controller).await;
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    for n in [&ns, &team, &other, &dest] {
        let _ = namespaces.delete(n, &Default::default()).await;
    }
}

#[tokio::test]
async fn argocd_cmd_params_cm_names_the_namespaces_when_the_server_is_given_none() {
    let client = client().await;
    install_crds(&client).await;
    let ns = unique("anyns-cm");
    let team = unique("anyns-cm-team");
    for n in [&ns, &team] {
        ensure_namespace(&client, n).await;
    }
    let params = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "argocd-cmd-params-cm", "namespace": ns},
        "data": {"application.namespaces": format!("no-such-ns, {team}")}});
    Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(client.clone(), &ns)
        .patch("argocd-cmd-params-cm", &PatchParams::apply("berth-test"), &Patch::Apply(&params))
        .await
        .unwrap();
    create_app(&client, &team, "web", "default", "https://example.com/repo.git", &team).await;
    let server = common::start(&client, &ns).await;
    let base = server.base.clone();
    let admin = common::token(&base, "admin", &common::admin_password(&client, &ns).await).await;
    let call = |method: reqwest::Method, path: String| {
        let (admin, base) = (admin.clone(), base.clone());
        async move {
            let r = reqwest::Client::new().request(method, format!("{base}{path}")).bearer_auth(admin).send();
            r.await.unwrap().status().as_u16()
        }
    };
    let fetched = format!("/api/v1/applications/web?appNamespace={team}");
    poll("web served", Duration::from_secs(30), || async {
        call(reqwest::Method::GET, fetched.clone()).await == 200
    })
    .await;
    // Deleted where it lives (without cascade: no controller runs here to finalize it).
    let status =
        call(reqwest::Method::DELETE, format!("/api/v1/applications/web?appNamespace={team}&cascade=false"))
            .await;
    assert_eq!(status, 200);
    let apps: Api<berth_api::Application> = Api::namespaced(client.clone(), &team);
    poll("web deleted", Duration::from_secs(30), || async { apps.get_opt("web").await.unwrap().is_none() })
        .await;

    drop(server);
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    for n in [&ns, &team] {
        let _ = namespaces.delete(n, &Default::default()).await;
    }
}
