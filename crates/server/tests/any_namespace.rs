//! Applications outside the control namespace through the API, on the real local cluster (Argo CD's
//! "applications in any namespace"): listed with their namespace, read and synced with `?appNamespace=`;
//! those of a namespace not allowed are never served.

use berth_testkit::*;
use kube::api::{Api, Patch, PatchParams};
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

/// AppProject `name` in the control namespace `ns`, admitting Applications of `namespaces`.
async fn admitting_project(client: &kube::Client, ns: &str, name: &str, namespaces: &[&str]) {
    let project = serde_json::json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"sourceRepos": ["*"], "destinations": [{"namespace": "*", "server": "*"}],
                 "sourceNamespaces": namespaces}});
    Api::<berth_api::AppProject>::namespaced(client.clone(), ns)
        .patch(name, &PatchParams::apply("berth-test"), &Patch::Apply(&project))
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
    let options = common::Options {
        controller: true,
        application_namespaces: vec![team.clone()],
        ..Default::default()
    };
    let server = common::InProcess::start(&client, &ns, options).await;
    let base = server.base.clone();
    let admin = server.admin(&client, &ns).await;
    let call = |method: reqwest::Method, path: String| admin.call(method, path, None);

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
    let (status, manifests) =
        call(reqwest::Method::GET, format!("/api/v1/applications/web/manifests?appNamespace={team}")).await;
    assert_eq!(status, 200, "{manifests}");
    assert!(manifests["manifests"][0].as_str().is_some_and(|m| m.contains("myorg/web:v1")), "{manifests}");
    let (_, web) = call(reqwest::Method::GET, format!("/api/v1/applications/web?appNamespace={team}")).await;
    let revision = web["status"]["sync"]["revision"].as_str().unwrap_or_default().to_string();
    assert!(!revision.is_empty(), "{web}");
    let (status, commit) = call(
        reqwest::Method::GET,
        format!("/api/v1/applications/web/revisions/{revision}/metadata?appNamespace={team}"),
    )
    .await;
    assert_eq!(status, 200, "{commit}");
    assert!(commit["message"].as_str().is_some_and(|m| m.contains("apps")), "{commit}");

    let (_, settings) = call(reqwest::Method::GET, "/api/v1/settings".into()).await;
    assert_eq!(settings["appsInAnyNamespaceEnabled"], true, "{settings}");

    // A push refreshes it at once (the reconciliation poll is minutes away): the webhook finds apps of
    // every served namespace and names them as `argocd app list` does.
    repo.write("web/deployment.yaml", &deployment("web").replace(":v1", ":v2"));
    let pushed = repo.commit("web v2");
    let branch = repo.git(&["rev-parse", "--abbrev-ref", "HEAD"]);
    let push = serde_json::json!({"ref": format!("refs/heads/{branch}"), "before": revision, "after": pushed,
        "repository": {"clone_url": url, "default_branch": branch},
        "commits": [{"added": [], "modified": ["web/deployment.yaml"], "removed": []}]});
    let response = reqwest::Client::new()
        .post(format!("{base}/api/webhook"))
        .header("X-GitHub-Event", "push")
        .json(&push)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let refreshed: serde_json::Value = response.json().await.unwrap();
    assert_eq!(refreshed["refreshed"], serde_json::json!([format!("{team}/web")]), "{refreshed}");
    poll("web refreshed to the pushed commit", Duration::from_secs(20), || async {
        let (_, web) =
            call(reqwest::Method::GET, format!("/api/v1/applications/web?appNamespace={team}")).await;
        web["status"]["sync"]["revision"] == pushed.as_str()
    })
    .await;

    // The control namespace's app still works without the parameter.
    let (status, home) = call(reqwest::Method::GET, "/api/v1/applications/home".into()).await;
    assert_eq!(status, 200, "{home}");
    let (status, synced) = call(reqwest::Method::POST, "/api/v1/applications/home/sync".into()).await;
    assert_eq!(status, 200, "{synced}");
    poll("home deployed", Duration::from_secs(60), || deployed(&client, &dest, "home")).await;
    assert!(!deployed(&client, &dest, "hidden").await, "an app of a namespace not allowed was deployed");

    server.stop().await;
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
    set_application_namespaces(&client, &ns, &format!("no-such-ns, {team}")).await;
    // Its project admits the namespace: else every route refuses it.
    admitting_project(&client, &ns, "team", &[team.as_str()]).await;
    create_app(&client, &team, "web", "team", "https://example.com/repo.git", &team).await;
    let server = common::start(&client, &ns).await;
    let admin = server.admin(&client, &ns).await;
    let call = |method: reqwest::Method, path: String| {
        let admin = admin.clone();
        async move { admin.call(method, path, None).await.0 }
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

/// A Deployment in `namespace` the app of instance name `instance` tracks (annotation tracking).
async fn tracked_deployment(client: &kube::Client, namespace: &str, name: &str, instance: &str) {
    let body = serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "annotations": {
            "argocd.argoproj.io/tracking-id": format!("{instance}:apps/Deployment:{namespace}/{name}")}},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "main", "image": "registry.k8s.io/pause:3.10"}]}}}});
    Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(client.clone(), namespace)
        .patch(name, &PatchParams::apply("berth-test"), &Patch::Apply(&body))
        .await
        .unwrap();
}

#[tokio::test]
async fn apps_outside_the_control_namespace_are_created_updated_and_refused_as_argo_cd_refuses_them() {
    let client = client().await;
    install_crds(&client).await;
    let ns = unique("anyns-crud");
    let team = unique("anyns-crud-team");
    let unserved = unique("anyns-crud-unserved");
    let dest = unique("anyns-crud-dest");
    for n in [&ns, &team, &unserved, &dest] {
        ensure_namespace(&client, n).await;
    }
    let cm = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "argocd-cm", "namespace": ns}, "data": {"statusbadge.enabled": "true"}});
    Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(client.clone(), &ns)
        .patch("argocd-cm", &PatchParams::apply("berth-test"), &Patch::Apply(&cm))
        .await
        .unwrap();
    // The project admits both namespaces; the server serves only `team`.
    admitting_project(&client, &ns, "team", &[team.as_str(), unserved.as_str()]).await;
    // An app of `team` whose project does not admit the namespace (written past the API).
    create_app(&client, &team, "refused", "default", "https://example.com/repo.git", &dest).await;
    tracked_deployment(&client, &dest, "web", &format!("{team}_web")).await;
    // Tracked by a control-namespace app named web: not the team app's.
    tracked_deployment(&client, &dest, "plain", "web").await;

    let options = common::Options { application_namespaces: vec![team.clone()], ..Default::default() };
    let server = common::InProcess::start(&client, &ns, options).await;
    let base = server.base.clone();
    let admin = server.admin(&client, &ns).await;
    let call = |method: reqwest::Method, path: String, body: Option<serde_json::Value>| {
        admin.call(method, path, body)
    };
    let app_body = |namespace: &str, name: &str, project: &str| {
        serde_json::json!({"metadata": {"name": name, "namespace": namespace},
            "spec": {"project": project,
                     "source": {"repoURL": "https://example.com/repo.git", "path": name, "targetRevision": "HEAD"},
                     "destination": {"server": "https://kubernetes.default.svc", "namespace": dest}}})
    };
    let stored = |namespace: String, name: &'static str| {
        let apps: Api<berth_api::Application> = Api::namespaced(client.clone(), &namespace);
        async move { apps.get_opt(name).await.unwrap() }
    };

    // Created where its metadata.namespace says.
    let (status, created) =
        call(reqwest::Method::POST, "/api/v1/applications".into(), Some(app_body(&team, "web", "team")))
            .await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["metadata"]["namespace"], team.as_str());
    assert!(stored(team.clone(), "web").await.is_some());
    // A project that does not admit the namespace: Argo CD's vague InvalidArgument, nothing created.
    let (status, refused) =
        call(reqwest::Method::POST, "/api/v1/applications".into(), Some(app_body(&team, "other", "default")))
            .await;
    assert_eq!((status, refused["code"].as_i64()), (400, Some(3)), "{refused}");
    assert_eq!(
        refused["message"],
        "app is not allowed in project \"default\", or the project does not exist"
    );
    assert!(stored(team.clone(), "other").await.is_none());
    // A namespace the project admits but the server does not serve: Argo CD's "not permitted".
    let (status, refused) =
        call(reqwest::Method::POST, "/api/v1/applications".into(), Some(app_body(&unserved, "web", "team")))
            .await;
    assert_eq!((status, refused["code"].as_i64()), (500, Some(2)), "{refused}");
    assert_eq!(refused["message"], format!("namespace '{unserved}' is not permitted"));
    assert!(stored(unserved.clone(), "web").await.is_none());
    // Without a namespace it lands in the control namespace, as before.
    let (status, created) =
        call(reqwest::Method::POST, "/api/v1/applications".into(), Some(app_body("", "web", "default")))
            .await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["metadata"]["namespace"], ns.as_str());

    let web = format!("/api/v1/applications/web?appNamespace={team}");
    poll("the team's web served", Duration::from_secs(30), || async {
        call(reqwest::Method::GET, web.clone(), None).await.0 == 200
    })
    .await;

    // Updated in its namespace: the whole app with appNamespace, or with only its metadata.namespace.
    let (_, mut current) = call(reqwest::Method::GET, web.clone(), None).await;
    current["spec"]["source"]["targetRevision"] = "v1".into();
    let (status, updated) = call(reqwest::Method::PUT, web.clone(), Some(current.clone())).await;
    assert_eq!(status, 200, "{updated}");
    let revision = |app: Option<berth_api::Application>| {
        app.and_then(|a| a.spec.source).and_then(|s| s.target_revision).unwrap_or_default()
    };
    assert_eq!(revision(stored(team.clone(), "web").await), "v1");
    let mut by_body = updated.clone();
    by_body["spec"]["source"]["targetRevision"] = "v2".into();
    let (status, answer) =
        call(reqwest::Method::PUT, "/api/v1/applications/web".into(), Some(by_body.clone())).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(revision(stored(team.clone(), "web").await), "v2");
    assert_eq!(revision(stored(ns.clone(), "web").await), "HEAD", "the control namespace's web changed");
    let (status, answer) = call(
        reqwest::Method::PUT,
        format!("/api/v1/applications/web?appNamespace={unserved}"),
        Some(by_body),
    )
    .await;
    assert_eq!(status, 400, "a body naming another namespace than appNamespace: {answer}");
    // The spec alone, with appNamespace.
    let mut spec = call(reqwest::Method::GET, web.clone(), None).await.1["spec"].clone();
    spec["source"]["targetRevision"] = "v3".into();
    let spec_path = format!("/api/v1/applications/web/spec?appNamespace={team}");
    let (status, answer) = call(reqwest::Method::PUT, spec_path.clone(), Some(spec.clone())).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(revision(stored(team.clone(), "web").await), "v3");
    // Moving it to a project that does not admit the namespace is refused.
    spec["project"] = "default".into();
    let (status, answer) = call(reqwest::Method::PUT, spec_path, Some(spec)).await;
    assert_eq!((status, answer["code"].as_i64()), (400, Some(3)), "{answer}");
    assert_eq!(stored(team.clone(), "web").await.unwrap().spec.project, "team");

    // An app whose project does not admit its namespace is refused on every route, even for the admin.
    let refused_app = |suffix: &str| format!("/api/v1/applications/refused{suffix}");
    poll("the refused app in the store", Duration::from_secs(30), || async {
        call(reqwest::Method::GET, refused_app(&format!("?appNamespace={team}")), None).await.0 == 400
    })
    .await;
    let resource = format!("namespace={dest}&resourceName=web&group=apps&version=v1&kind=Deployment");
    for (method, suffix) in [
        (reqwest::Method::GET, format!("?appNamespace={team}")),
        (reqwest::Method::POST, format!("/sync?appNamespace={team}")),
        (reqwest::Method::GET, format!("/syncwindows?appNamespace={team}")),
        (reqwest::Method::GET, format!("/resource-tree?appNamespace={team}")),
        (reqwest::Method::GET, format!("/resource/actions?appNamespace={team}&{resource}")),
        (reqwest::Method::GET, format!("/resource?appNamespace={team}&{resource}")),
        (reqwest::Method::DELETE, format!("?appNamespace={team}&cascade=false")),
    ] {
        let (status, answer) = call(method.clone(), refused_app(&suffix), None).await;
        assert_eq!(status, 400, "{method} {suffix}: {answer}");
        assert_eq!(
            answer["message"], "app is not allowed in project \"default\", or the project does not exist",
            "{method} {suffix}"
        );
    }
    assert!(stored(team.clone(), "refused").await.is_some());

    // Sync windows, the live resource and its actions with appNamespace, found by the instance name.
    let (status, windows) =
        call(reqwest::Method::GET, format!("/api/v1/applications/web/syncwindows?appNamespace={team}"), None)
            .await;
    assert_eq!((status, &windows["canSync"]), (200, &serde_json::json!(true)), "{windows}");
    let (status, manifest) = call(
        reqwest::Method::GET,
        format!("/api/v1/applications/web/resource?appNamespace={team}&{resource}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{manifest}");
    let actions = format!("/api/v1/applications/web/resource/actions?appNamespace={team}&{resource}");
    let (status, offered) = call(reqwest::Method::GET, actions.clone(), None).await;
    assert_eq!(status, 200, "{offered}");
    assert!(offered["actions"].as_array().unwrap().iter().any(|a| a["name"] == "restart"), "{offered}");
    let (status, answer) =
        call(reqwest::Method::GET, actions.replace("resourceName=web", "resourceName=plain"), None).await;
    assert_eq!(status, 404, "the control namespace's web's object is not the team app's: {answer}");
    let run = serde_json::json!({"name": "web", "appNamespace": team, "namespace": dest, "resourceName": "web",
        "group": "apps", "version": "v1", "kind": "Deployment", "action": "restart"});
    let (status, answer) =
        call(reqwest::Method::POST, "/api/v1/applications/web/resource/actions/v2".into(), Some(run)).await;
    assert_eq!(status, 200, "{answer}");
    let live = Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(client.clone(), &dest)
        .get("web")
        .await
        .unwrap();
    let stamped = live.spec.unwrap().template.metadata.unwrap().annotations.unwrap_or_default();
    assert!(stamped.contains_key("kubectl.kubernetes.io/restartedAt"), "{stamped:?}");

    // The badge takes the namespace; an app its project refuses, or a namespace not served, is not found.
    let badge = |query: String| {
        let base = base.clone();
        async move { reqwest::get(format!("{base}/api/badge?{query}")).await.unwrap().text().await.unwrap() }
    };
    assert!(!badge(format!("name=web&namespace={team}")).await.contains("Not Found"));
    assert!(badge(format!("name=refused&namespace={team}")).await.contains("Not Found"));
    assert!(badge(format!("name=web&namespace={unserved}")).await.contains("Not Found"));
    assert!(badge("name=refused".into()).await.contains("Not Found"));

    // Pages of one app each go through the apps of every namespace, the two named web included.
    let mut paged = Vec::new();
    let mut token = String::new();
    for _ in 0..10 {
        let (status, page) =
            call(reqwest::Method::GET, format!("/api/v1/applications?limit=1&continue={token}"), None).await;
        assert_eq!(status, 200, "{page}");
        for item in page["items"].as_array().unwrap() {
            let meta = &item["metadata"];
            paged.push(format!("{}/{}", meta["namespace"].as_str().unwrap(), meta["name"].as_str().unwrap()));
        }
        match page["metadata"]["continue"].as_str() {
            Some(next) => token = next.to_string(),
            None => break,
        }
    }
    let mut wanted = vec![format!("{ns}/web"), format!("{team}/refused"), format!("{team}/web")];
    wanted.sort();
    paged.sort();
    assert_eq!(paged, wanted);

    drop(server);
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    for n in [&ns, &team, &unserved, &dest] {
        let _ = namespaces.delete(n, &Default::default()).await;
    }
}
