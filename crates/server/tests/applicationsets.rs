//! ApplicationSets through the API over real HTTP on the real local cluster, as Argo CD's
//! ApplicationSetService serves them: create (the same set again, a different one, upsert), list with its
//! filters, get, delete, the resource tree, the RBAC checks (`applicationsets`, `<project>/<name>`) and the
//! refusals of what Argo CD refuses; generate's checks and its 503 without a controller in the process.

use berth_testkit::*;
use kube::api::{Api, Patch, PatchParams};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;

mod common;
use common::*;

async fn put_config_map(client: &kube::Client, ns: &str, name: &str, data: Value) {
    let maps: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client.clone(), ns);
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns},
        "data": data});
    maps.patch(name, &PatchParams::apply("berth-test").force(), &Patch::Apply(&body)).await.unwrap();
}

async fn create_project(client: &kube::Client, ns: &str, name: &str) {
    let api: Api<berth_api::AppProject> = Api::namespaced(client.clone(), ns);
    let body = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"sourceRepos": ["*"], "destinations": [{"server": "*", "namespace": "*"}]}});
    api.patch(name, &PatchParams::apply("berth-test"), &Patch::Apply(&body)).await.unwrap();
}

/// Requests to the server as one signed-in user (an empty token: none).
#[derive(Clone)]
struct User {
    base: String,
    token: String,
}

impl User {
    fn new(base: &str, token: &str) -> User {
        User { base: base.to_string(), token: token.to_string() }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        call(method, &format!("{}{path}", self.base), &self.token, body).await
    }
}

/// A set with a list generator of two clusters, in `project`.
fn appset(name: &str, project: &str) -> Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "ApplicationSet",
        "metadata": {"name": name, "labels": {"team": project}},
        "spec": {
            "generators": [{"list": {"elements": [{"cluster": "dev"}, {"cluster": "prod"}]}}],
            "template": {
                "metadata": {"name": format!("{name}-{{{{cluster}}}}")},
                "spec": {"project": project,
                         "source": {"repoURL": "https://example.com/repo.git", "path": "apps/{{cluster}}"},
                         "destination": {"server": "https://kubernetes.default.svc", "namespace": "{{cluster}}"}}
            }
        }
    })
}

fn names(list: &Value) -> Vec<&str> {
    list["items"].as_array().unwrap().iter().map(|s| s["metadata"]["name"].as_str().unwrap()).collect()
}

/// The namespace with projects `default` and `team-a`, the accounts `dev` (every applicationsets action in
/// team-a) and `viewer` (applications only), and the server started on it.
async fn setup(prefix: &str) -> (kube::Client, String, InProcess) {
    let client = client().await;
    install_crds(&client).await;
    let ns = unique(prefix);
    ensure_namespace(&client, &ns).await;
    create_project(&client, &ns, "default").await;
    create_project(&client, &ns, "team-a").await;
    put_config_map(&client, &ns, "argocd-cm", json!({"accounts.dev": "login", "accounts.viewer": "login"}))
        .await;
    put_config_map(
        &client,
        &ns,
        "argocd-rbac-cm",
        json!({"policy.csv": "p, dev, applicationsets, *, team-a/*, allow\n\
                              p, viewer, applications, *, */*, allow\n"}),
    )
    .await;
    berth_server::auth::bootstrap(&client, &ns).await.unwrap();
    berth_server::auth::set_password(&client, &ns, "dev", "dev-pass-1234").await.unwrap();
    berth_server::auth::set_password(&client, &ns, "viewer", "viewer-pass-1234").await.unwrap();
    let server = start(&client, &ns).await;
    (client, ns, server)
}

#[tokio::test]
async fn applicationsets_are_created_listed_read_and_deleted_as_argo_cd_serves_them() {
    let (client, ns, server) = setup("appsets").await;
    let admin =
        User::new(&server.base, &token(&server.base, "admin", &admin_password(&client, &ns).await).await);
    let stored: Api<berth_api::ApplicationSet> = Api::namespaced(client.clone(), &ns);

    // Created in the control namespace whatever the manifest names, as the API server stores it.
    let mut web = appset("web", "team-a");
    web["metadata"]["namespace"] = "argocd".into();
    let (status, body) = admin.call(Method::POST, "/api/v1/applicationsets", Some(web.clone())).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["metadata"]["name"].as_str(), body["metadata"]["namespace"].as_str()),
        (Some("web"), Some(ns.as_str()))
    );
    let written = stored.get("web").await.unwrap();
    assert_eq!(written.spec.template.spec.project, "team-a");
    // The same set again answers the stored one; a different one needs upsert.
    let (status, again) = admin.call(Method::POST, "/api/v1/applicationsets", Some(web.clone())).await;
    assert_eq!((status, &again["metadata"]["uid"]), (200, &body["metadata"]["uid"]), "{again}");
    let mut changed = web.clone();
    changed["spec"]["template"]["spec"]["source"]["path"] = "other/{{cluster}}".into();
    changed["metadata"]["labels"]["tier"] = "front".into();
    let (status, body) = admin.call(Method::POST, "/api/v1/applicationsets", Some(changed.clone())).await;
    assert_eq!((status, body["code"].as_u64()), (400, Some(3)), "{body}");
    assert_eq!(body["message"], "existing ApplicationSet spec is different, use upsert flag to force update");
    let (status, body) =
        admin.call(Method::POST, "/api/v1/applicationsets?upsert=true", Some(changed.clone())).await;
    assert_eq!(status, 200, "{body}");
    let written = stored.get("web").await.unwrap();
    let source = written.spec.template.spec.source.unwrap();
    assert_eq!(source.path.as_deref(), Some("other/{{cluster}}"));
    assert_eq!(
        written.metadata.labels.unwrap(),
        [("team".to_string(), "team-a".to_string()), ("tier".to_string(), "front".to_string())].into()
    );
    let (status, body) =
        admin.call(Method::POST, "/api/v1/applicationsets", Some(appset("api", "default"))).await;
    assert_eq!(status, 200, "{body}");

    // Lists: by name, filtered by project and label selector.
    let (status, list) = admin.call(Method::GET, "/api/v1/applicationsets", None).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(names(&list), ["api", "web"]);
    assert!(list["metadata"].is_object(), "{list}");
    let (_, list) = admin.call(Method::GET, "/api/v1/applicationsets?projects=team-a", None).await;
    assert_eq!(names(&list), ["web"]);
    let (_, list) = admin.call(Method::GET, "/api/v1/applicationsets?selector=team%3Ddefault", None).await;
    assert_eq!(names(&list), ["api"]);
    let (status, list) = admin.call(Method::GET, "/api/v1/applicationsets?selector=a%20in%20(b)", None).await;
    assert_eq!(status, 400, "{list}");

    // Get: one set; a missing one is refused as a forbidden one.
    let (status, body) = admin.call(Method::GET, "/api/v1/applicationsets/web", None).await;
    assert_eq!(
        (status, body["spec"]["template"]["spec"]["project"].as_str()),
        (200, Some("team-a")),
        "{body}"
    );
    let (status, body) =
        admin.call(Method::GET, &format!("/api/v1/applicationsets/web?appsetNamespace={ns}"), None).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = admin.call(Method::GET, "/api/v1/applicationsets/nothing", None).await;
    assert_eq!((status, body["code"].as_u64()), (403, Some(7)), "{body}");

    // The resource tree: the Applications the set owns, with the set as their parent.
    let uid = stored.get("web").await.unwrap().metadata.uid.unwrap();
    let apps: Api<berth_api::Application> = Api::namespaced(client.clone(), &ns);
    let owned = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": "web-dev", "namespace": ns, "ownerReferences": [{"apiVersion": "argoproj.io/v1alpha1",
            "kind": "ApplicationSet", "name": "web", "uid": uid, "controller": true, "blockOwnerDeletion": true}]},
        "spec": {"project": "team-a", "source": {"repoURL": "https://example.com/repo.git", "path": "apps/dev"},
                 "destination": {"server": "https://kubernetes.default.svc", "namespace": "dev"}}});
    apps.patch("web-dev", &PatchParams::apply("berth-test"), &Patch::Apply(&owned)).await.unwrap();
    poll("the tree to show web-dev", Duration::from_secs(30), || async {
        let (_, tree) = admin.call(Method::GET, "/api/v1/applicationsets/web/resource-tree", None).await;
        tree["nodes"].as_array().is_some_and(|n| n.len() == 1)
    })
    .await;
    let (_, tree) = admin.call(Method::GET, "/api/v1/applicationsets/web/resource-tree", None).await;
    let node = &tree["nodes"][0];
    assert_eq!(
        (node["kind"].as_str(), node["name"].as_str()),
        (Some("Application"), Some("web-dev")),
        "{tree}"
    );
    assert_eq!(node["parentRefs"][0]["kind"], "ApplicationSet");
    assert_eq!(node["parentRefs"][0]["name"], "web");

    // Delete: gone from the API server.
    let (status, body) = admin.call(Method::DELETE, "/api/v1/applicationsets/api", None).await;
    assert_eq!((status, &body), (200, &json!({})));
    poll("api to be deleted", Duration::from_secs(30), || async {
        stored.get_opt("api").await.unwrap().is_none()
    })
    .await;
    let (status, body) = admin.call(Method::DELETE, "/api/v1/applicationsets/api", None).await;
    assert_eq!(status, 403, "{body}");
}

#[tokio::test]
async fn creating_refuses_what_argo_cd_refuses_with_a_clear_400_and_never_echoes_values() {
    let (client, ns, server) = setup("appsets-bad").await;
    let admin =
        User::new(&server.base, &token(&server.base, "admin", &admin_password(&client, &ns).await).await);
    let create = |body: Value| {
        let admin = admin.clone();
        async move { admin.call(Method::POST, "/api/v1/applicationsets", Some(body)).await }
    };

    let (status, body) = create(appset("web", "missing")).await;
    assert_eq!((status, body["code"].as_u64()), (400, Some(3)), "{body}");
    assert_eq!(body["message"], "ApplicationSet references project missing which does not exist");
    let (status, body) = create(appset("web", "{{cluster}}")).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains("templated `project`"), "{body}");
    let mut unknown = appset("web", "default");
    unknown["spec"]["generators"] = json!([{"bogus": {}}]);
    let (status, body) = create(unknown).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (400, Some("ApplicationSet web contains unrecognized generators: bogus"))
    );
    let (status, body) = create(appset("Not_A_Name", "default")).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap().starts_with("metadata.name"), "{body}");
    let mut nameless = appset("web", "default");
    nameless["metadata"] = json!({});
    let (status, body) = create(nameless).await;
    assert_eq!((status, body["message"].as_str()), (400, Some("metadata.name is required")));
    let (status, body) = create(json!(["not", "an", "object"])).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = create(json!({"metadata": {"name": "web"}, "spec": {"template": {}}})).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains("generators"), "{body}");
    // A value of the wrong type is named by its type, never shown.
    let mut typed = appset("web", "default");
    typed["spec"]["goTemplate"] = "s3cr3t-value".into();
    let (status, body) = create(typed).await;
    assert_eq!(status, 400, "{body}");
    assert!(!body.to_string().contains("s3cr3t-value"), "{body}");
    // Nothing of it was written.
    let stored: Api<berth_api::ApplicationSet> = Api::namespaced(client.clone(), &ns);
    assert!(stored.list(&Default::default()).await.unwrap().items.is_empty());
}

#[tokio::test]
async fn applicationsets_rbac_is_by_the_templates_project_and_the_list_hides_what_the_caller_may_not_get() {
    let (client, ns, server) = setup("appsets-rbac").await;
    let admin =
        User::new(&server.base, &token(&server.base, "admin", &admin_password(&client, &ns).await).await);
    let dev = User::new(&server.base, &token(&server.base, "dev", "dev-pass-1234").await);
    let viewer = User::new(&server.base, &token(&server.base, "viewer", "viewer-pass-1234").await);

    // dev may create in team-a only, and may not move a set into another project by upsert.
    let (status, body) =
        dev.call(Method::POST, "/api/v1/applicationsets", Some(appset("web", "team-a"))).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) =
        dev.call(Method::POST, "/api/v1/applicationsets", Some(appset("api", "default"))).await;
    assert_eq!((status, body["code"].as_u64()), (403, Some(7)), "{body}");
    // A project dev may not create in is refused before its existence is checked.
    let (status, _) = dev.call(Method::POST, "/api/v1/applicationsets", Some(appset("api", "missing"))).await;
    assert_eq!(status, 403);
    // So is a generator's own template naming such a project, under a set in dev's own.
    let mut sneaky = appset("sneaky", "team-a");
    sneaky["spec"]["generators"][0]["list"]["template"] =
        json!({"metadata": {}, "spec": {"project": "default", "destination": {}}});
    let (status, body) = dev.call(Method::POST, "/api/v1/applicationsets", Some(sneaky)).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) =
        dev.call(Method::POST, "/api/v1/applicationsets?upsert=true", Some(appset("web", "default"))).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) =
        admin.call(Method::POST, "/api/v1/applicationsets", Some(appset("api", "default"))).await;
    assert_eq!(status, 200, "{body}");

    let (_, list) = dev.call(Method::GET, "/api/v1/applicationsets", None).await;
    assert_eq!(names(&list), ["web"]);
    let (status, _) = dev.call(Method::GET, "/api/v1/applicationsets/api", None).await;
    assert_eq!(status, 403);
    let (status, _) = dev.call(Method::DELETE, "/api/v1/applicationsets/api", None).await;
    assert_eq!(status, 403);

    // A role without applicationsets sees none and may do nothing with them.
    let (status, list) = viewer.call(Method::GET, "/api/v1/applicationsets", None).await;
    assert_eq!((status, names(&list)), (200, Vec::<&str>::new()));
    for (method, path) in [
        (Method::GET, "/api/v1/applicationsets/web"),
        (Method::DELETE, "/api/v1/applicationsets/web"),
        (Method::GET, "/api/v1/applicationsets/web/resource-tree"),
    ] {
        let (status, body) = viewer.call(method.clone(), path, None).await;
        assert_eq!((status, body["code"].as_u64()), (403, Some(7)), "{method} {path}: {body}");
    }
    let (status, _) = viewer.call(Method::POST, "/api/v1/applicationsets", Some(appset("x", "team-a"))).await;
    assert_eq!(status, 403);
    let (status, _) = viewer
        .call(
            Method::POST,
            "/api/v1/applicationsets/generate",
            Some(json!({"applicationSet": appset("x", "team-a")})),
        )
        .await;
    assert_eq!(status, 403);
    // Without a session nothing is answered.
    let anonymous = User::new(&server.base, "");
    let (status, _) = anonymous.call(Method::GET, "/api/v1/applicationsets", None).await;
    assert_eq!(status, 401);

    let stored: Api<berth_api::ApplicationSet> = Api::namespaced(client.clone(), &ns);
    assert!(stored.get_opt("web").await.unwrap().is_some(), "refused deletes delete nothing");
    let (status, _) = dev.call(Method::DELETE, "/api/v1/applicationsets/web", None).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn generate_is_checked_as_a_create_and_needs_the_controller_in_the_process() {
    let (client, ns, server) = setup("appsets-gen").await;
    let admin =
        User::new(&server.base, &token(&server.base, "admin", &admin_password(&client, &ns).await).await);
    let generate = |set: Value| {
        let admin = admin.clone();
        async move {
            admin
                .call(Method::POST, "/api/v1/applicationsets/generate", Some(json!({"applicationSet": set})))
                .await
        }
    };
    let (status, body) = generate(appset("web", "missing")).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (400, Some("ApplicationSet references project missing which does not exist"))
    );
    let (status, body) =
        admin.call(Method::POST, "/api/v1/applicationsets/generate", Some(json!({"other": 1}))).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = generate(appset("web", "team-a")).await;
    assert_eq!((status, body["code"].as_u64()), (503, Some(14)), "{body}");
    // A dry-run create generates too.
    let (status, body) =
        admin.call(Method::POST, "/api/v1/applicationsets?dryRun=true", Some(appset("web", "team-a"))).await;
    assert_eq!(status, 503, "{body}");
    let stored: Api<berth_api::ApplicationSet> = Api::namespaced(client.clone(), &ns);
    assert!(stored.get_opt("web").await.unwrap().is_none(), "generate writes nothing");
}

#[tokio::test]
async fn generate_answers_the_applications_the_set_would_create_and_writes_nothing() {
    let client = client().await;
    install_crds(&client).await;
    let ns = unique("appsets-gen-ctl");
    ensure_namespace(&client, &ns).await;
    create_project(&client, &ns, "team-a").await;
    let server = InProcess::start(&client, &ns, Options { controller: true, ..Default::default() }).await;
    let admin =
        User::new(&server.base, &token(&server.base, "admin", &admin_password(&client, &ns).await).await);
    let (status, body) = admin
        .call(
            Method::POST,
            "/api/v1/applicationsets/generate",
            Some(json!({"applicationSet": appset("web", "team-a")})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let mut generated: Vec<(&str, &str)> = body["applications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["metadata"]["name"].as_str().unwrap(), a["spec"]["source"]["path"].as_str().unwrap()))
        .collect();
    generated.sort();
    assert_eq!(generated, [("web-dev", "apps/dev"), ("web-prod", "apps/prod")]);
    let (status, body) =
        admin.call(Method::POST, "/api/v1/applicationsets?dryRun=true", Some(appset("web", "team-a"))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"]["resources"].as_array().map(Vec::len), Some(2), "{body}");
    let apps: Api<berth_api::Application> = Api::namespaced(client.clone(), &ns);
    assert!(apps.list(&Default::default()).await.unwrap().items.is_empty(), "generate writes nothing");
    let stored: Api<berth_api::ApplicationSet> = Api::namespaced(client.clone(), &ns);
    assert!(stored.get_opt("web").await.unwrap().is_none());
    server.stop().await;
}

/// A push for the repository and branch a set's git generator reads generates the set again at once: the
/// set polls only hourly here, so only the push can make the new folder's Application appear in time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_git_push_on_the_webhook_generates_the_sets_reading_that_branch() {
    let client = client().await;
    install_crds(&client).await;
    let ns = unique("appsets-push");
    ensure_namespace(&client, &ns).await;
    allow_file_urls(&client, &ns).await;
    let server = InProcess::start(&client, &ns, Options { controller: true, ..Default::default() }).await;
    let repo = GitRepo::new();
    repo.write("apps/web/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\n");
    repo.commit("web");
    let sets: Api<berth_api::ApplicationSet> = Api::namespaced(client.clone(), &ns);
    let set = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "ApplicationSet",
        "metadata": {"name": "apps", "namespace": ns},
        "spec": {
            "generators": [{"git": {"repoURL": repo.url(), "revision": "main", "requeueAfterSeconds": 3600,
                                    "directories": [{"path": "apps/*"}]}}],
            "template": {"metadata": {"name": "{{path.basename}}"},
                         "spec": {"project": "default",
                                  "source": {"repoURL": repo.url(), "targetRevision": "main", "path": "{{path}}"},
                                  "destination": {"server": "https://kubernetes.default.svc", "namespace": ns}}}}});
    sets.patch("apps", &PatchParams::apply("berth-test"), &Patch::Apply(&set)).await.unwrap();
    let apps: Api<berth_api::Application> = Api::namespaced(client.clone(), &ns);
    poll("the set's first Application", Duration::from_secs(30), || async {
        apps.get_opt("web").await.unwrap().is_some()
    })
    .await;

    repo.write("apps/api/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: api\n");
    let after = repo.commit("api");
    let url = repo.url();
    let push = json!({"ref": "refs/heads/main", "before": "0".repeat(40), "after": after,
        "repository": {"html_url": url, "clone_url": url, "default_branch": "main"},
        "commits": [{"added": ["apps/api/cm.yaml"], "modified": [], "removed": []}]});
    let answer = reqwest::Client::new()
        .post(format!("{}/api/webhook", server.base))
        .header("X-GitHub-Event", "push")
        .json(&push)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 200);
    poll("the new folder's Application, after the push", Duration::from_secs(10), || async {
        apps.get_opt("api").await.unwrap().is_some()
    })
    .await;
    server.stop().await;
}
