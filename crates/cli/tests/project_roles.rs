//! `berth proj role` through the built binary against the API server on the local cluster (its own
//! namespace): a role made and granted `applications, get, <project>/*` by the CLI, a token for it that lists
//! only its project's applications and may not sync, then revoked by `delete-token`.

use berth_testkit::*;
use kube::api::{Api, Patch, PatchParams};
use std::time::Duration;

mod common;
use common::*;

async fn apply(client: &kube::Client, ns: &str, object: serde_json::Value) {
    let kind = object["kind"].as_str().unwrap();
    let plural = if kind == "AppProject" { "appprojects" } else { "applications" };
    let resource = kube::api::ApiResource::from_gvk_with_plural(
        &kube::api::GroupVersionKind::gvk("argoproj.io", "v1alpha1", kind),
        plural,
    );
    let api: Api<kube::api::DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource);
    let name = object["metadata"]["name"].as_str().unwrap();
    api.patch(name, &PatchParams::apply("berth-test").force(), &Patch::Apply(&object)).await.unwrap();
}

async fn project(client: &kube::Client, ns: &str, name: &str) {
    let object = serde_json::json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"sourceRepos": ["*"], "destinations": [{"server": "*", "namespace": "*"}]}});
    apply(client, ns, object).await;
}

async fn app(client: &kube::Client, ns: &str, name: &str, project: &str) {
    let object = serde_json::json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"project": project, "source": {"repoURL": "https://example.com/r.git", "path": name},
                 "destination": {"server": "https://kubernetes.default.svc", "namespace": name}}});
    apply(client, ns, object).await;
}

async fn status_of(url: &str, token: &str) -> (u16, serde_json::Value) {
    let response = reqwest::Client::new().get(url).bearer_auth(token).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_token_reaches_only_its_project_and_stops_when_deleted() {
    let client = client().await;
    install_crds(&client).await;
    let ns = unique("cli-proj-role");
    ensure_namespace(&client, &ns).await;
    project(&client, &ns, "shop").await;
    project(&client, &ns, "blog").await;
    app(&client, &ns, "web", "shop").await;
    app(&client, &ns, "post", "blog").await;
    let server = start_server(&client, &ns).await;
    let host = server.address.clone();
    let admin = Cli::new();
    admin.login(&host, "admin", &admin_password(&client, &ns).await).await;

    let run = admin.run(&["proj", "role", "create", "shop", "ci", "--description", "deploys"]).await.ok();
    assert_eq!(run.stdout, "Role 'ci' created\n");
    admin
        .run(&["proj", "role", "add-policy", "shop", "ci", "-a", "get", "-o", "*", "-p", "allow"])
        .await
        .ok();
    let projects: Api<berth_api::AppProject> = Api::namespaced(client.clone(), &ns);
    let stored = projects.get("shop").await.unwrap();
    assert_eq!(stored.spec.roles[0].policies, ["p, proj:shop:ci, applications, get, shop/*, allow"]);
    let run = admin
        .run(&["proj", "role", "add-policy", "shop", "ci", "-a", "update", "-o", "*", "-r", "projects"])
        .await;
    assert!(run.failed().stderr.contains("not project-scoped"), "the server checks role policies");

    let token =
        admin.run(&["proj", "role", "create-token", "shop", "ci", "-t", "-i", "deploy"]).await.ok().stdout;
    let token = token.trim().to_string();
    let stored = projects.get("shop").await.unwrap();
    let items = &stored.status.unwrap().jwt_tokens_by_role["ci"].items;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].id.as_deref(), Some("deploy"));
    let used = admin.run(&["proj", "role", "create-token", "shop", "ci", "-i", "deploy"]).await.failed();
    assert!(used.stderr.contains("has been used"), "{}", used.stderr);

    let holder = Cli::new();
    let env = [("BERTH_SERVER", host.as_str()), ("BERTH_AUTH_TOKEN", token.as_str())];
    poll("the project token to list its project's applications", Duration::from_secs(30), || async {
        holder.run_with(&["app", "list", "-o", "name", "--plaintext"], &env).await.stdout == "web\n"
    })
    .await;
    let (status, info) = status_of(&format!("http://{host}/api/v1/session/userinfo"), &token).await;
    assert_eq!((status, info["loggedIn"].as_bool()), (200, Some(true)));
    assert_eq!(info["username"], "proj:shop:ci");
    let (status, _) = status_of(&format!("http://{host}/api/v1/applications/post"), &token).await;
    assert_eq!(status, 403, "another project's application");
    let refused = holder.run_with(&["app", "sync", "web", "--async", "--plaintext"], &env).await.failed();
    assert!(refused.stderr.contains("denied"), "{}", refused.stderr);
    assert!(!refused.stderr.contains(&token), "messages never show the token");
    let sync = reqwest::Client::new()
        .post(format!("http://{host}/api/v1/applications/web/sync"))
        .bearer_auth(&token)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(sync.status().as_u16(), 403);

    let listed = admin.run(&["proj", "role", "list-tokens", "shop", "ci", "-u"]).await.ok().stdout;
    let row: Vec<&str> = listed.lines().nth(1).expect("one token").split_whitespace().collect();
    assert_eq!(row[0], "deploy");
    admin.run(&["proj", "role", "delete-token", "shop", "ci", row[1]]).await.ok();
    poll("the deleted token to be refused", Duration::from_secs(30), || async {
        status_of(&format!("http://{host}/api/v1/applications"), &token).await.0 == 401
    })
    .await;
    let refused = holder.run_with(&["app", "list", "--plaintext"], &env).await.failed();
    assert!(!refused.stderr.contains(&token), "{}", refused.stderr);
    let stored = projects.get("shop").await.unwrap();
    assert!(stored.status.unwrap().jwt_tokens_by_role["ci"].items.is_empty());
    assert!(stored.spec.roles[0].jwt_tokens.is_empty());
}
