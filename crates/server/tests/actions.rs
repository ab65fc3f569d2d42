//! Resource actions over real HTTP on the real local cluster: listing a Deployment's actions, running the
//! built-in restart (the annotation is seen on the API server), a custom Lua action from argocd-cm, and the
//! refusals: a caller without the action's RBAC permission, an object the app does not track, a disabled
//! action, and a Lua action that answers another object.

use berth_testkit::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use reqwest::Method;
use std::time::Duration;

mod common;
use common::*;

const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

/// oncall may restart the team's Deployments and run the custom `label` and `evil` actions; viewer may only
/// look.
const POLICY: &str = "p, oncall, applications, get, default/*, allow\n\
                      p, oncall, applications, action/apps/Deployment/restart, default/*, allow\n\
                      p, oncall, applications, action/apps/Deployment/label, default/*, allow\n\
                      p, oncall, applications, action/apps/Deployment/evil, default/*, allow\n\
                      p, oncall, applications, action/apps/Deployment/pause, default/*, allow\n\
                      p, viewer, applications, get, default/*, allow\n";

/// A custom `label` action (Lua, with a parameter) and an `evil` one that answers another Deployment, merged
/// with the built-in actions.
const CUSTOM_ACTIONS: &str = r#"
mergeBuiltinActions: true
discovery.lua: |
  local actions = {}
  actions["label"] = {params = {{name = "value"}}}
  actions["evil"] = {}
  return actions
definitions:
- name: label
  action.lua: |
    if obj.metadata.labels == nil then obj.metadata.labels = {} end
    obj.metadata.labels["touched-by"] = actionParams["value"]
    return obj
- name: evil
  action.lua: |
    obj.metadata.name = "bystander"
    obj.spec.replicas = 0
    return obj
"#;

async fn put_config_map(client: &kube::Client, ns: &str, name: &str, data: serde_json::Value) {
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let body = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns}, "data": data});
    maps.patch(name, &PatchParams::apply("berth-test").force(), &Patch::Apply(&body)).await.unwrap();
}

/// A Deployment in `ns`, tracked by app `app` when given.
async fn deployment(client: &kube::Client, ns: &str, name: &str, app: Option<&str>) {
    let mut body = serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "main", "image": "registry.k8s.io/pause:3.10"}]}}}});
    if let Some(app) = app {
        body["metadata"]["annotations"] = serde_json::json!({"argocd.argoproj.io/tracking-id": format!("{app}:apps/Deployment:{ns}/{name}")});
    }
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    api.patch(name, &PatchParams::apply("berth-test"), &Patch::Apply(&body)).await.unwrap();
}

async fn live(client: &kube::Client, ns: &str, name: &str) -> serde_json::Value {
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    serde_json::to_value(api.get(name).await.unwrap()).unwrap()
}

#[tokio::test]
async fn restart_reaches_the_api_server_and_only_callers_with_the_action_may_run_it() {
    let client = client().await;
    install_crds(&client).await;
    let ns = unique("actions");
    let dest = unique("actions-dest");
    ensure_namespace(&client, &ns).await;
    ensure_namespace(&client, &dest).await;
    put_config_map(
        &client,
        &ns,
        "argocd-cm",
        serde_json::json!({"accounts.oncall": "login", "accounts.viewer": "login",
                           "resource.customizations.actions.apps_Deployment": CUSTOM_ACTIONS}),
    )
    .await;
    put_config_map(&client, &ns, "argocd-rbac-cm", serde_json::json!({"policy.csv": POLICY})).await;
    berth_server::auth::bootstrap(&client, &ns).await.unwrap();
    berth_server::auth::set_password(&client, &ns, "oncall", "oncall-pass-123").await.unwrap();
    berth_server::auth::set_password(&client, &ns, "viewer", "viewer-pass-123").await.unwrap();
    let apps: Api<berth_api::Application> = Api::namespaced(client.clone(), &ns);
    let app = serde_json::json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": "web", "namespace": ns},
        "spec": {"project": "default",
                 "source": {"repoURL": "https://example.com/repo.git", "path": "web"},
                 "destination": {"server": "https://kubernetes.default.svc", "namespace": dest}}});
    apps.patch("web", &PatchParams::apply("berth-test"), &Patch::Apply(&app)).await.unwrap();
    deployment(&client, &dest, "web", Some("web")).await;
    deployment(&client, &dest, "bystander", None).await;

    let server = start(&client, &ns).await;
    let oncall = token(&server.base, "oncall", "oncall-pass-123").await;
    let viewer = token(&server.base, "viewer", "viewer-pass-123").await;
    let app_url = format!("{}/api/v1/applications/web", server.base);
    poll("the server to see web", Duration::from_secs(30), || async {
        call(Method::GET, &app_url, &viewer, None).await.0 == 200
    })
    .await;
    let query =
        |name: &str| format!("namespace={dest}&resourceName={name}&group=apps&version=v1&kind=Deployment");
    let list_url = |name: &str| format!("{app_url}/resource/actions?{}", query(name));
    let run_url = format!("{app_url}/resource/actions/v2");
    let run_body = |action: &str, name: &str| {
        serde_json::json!({"name": "web", "namespace": dest, "resourceName": name, "group": "apps",
                           "version": "v1", "kind": "Deployment", "action": action})
    };

    // Listing needs only get: built-ins and the custom actions, each with its state.
    let (status, listed) = call(Method::GET, &list_url("web"), &viewer, None).await;
    assert_eq!(status, 200, "{listed}");
    let offered: Vec<(&str, bool)> = listed["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["name"].as_str().unwrap(), a["disabled"].as_bool().unwrap_or(false)))
        .collect();
    assert_eq!(
        offered,
        [
            ("evil", false),
            ("label", false),
            ("pause", false),
            ("restart", false),
            ("resume", true),
            ("scale", false)
        ]
    );

    // Without the action's permission: refused, and nothing changes.
    let (status, answer) = call(Method::POST, &run_url, &viewer, Some(run_body("restart", "web"))).await;
    assert_eq!(status, 403, "{answer}");
    let (status, answer) = call(Method::POST, &run_url, &oncall, Some(run_body("scale", "web"))).await;
    assert_eq!(status, 403, "oncall may not scale: {answer}");
    assert!(
        live(&client, &dest, "web").await["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT]
            .is_null()
    );

    // With it: the restart is on the live Deployment.
    let (status, answer) = call(Method::POST, &run_url, &oncall, Some(run_body("restart", "web"))).await;
    assert_eq!(status, 200, "{answer}");
    let stamped = live(&client, &dest, "web").await;
    let stamp =
        stamped["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT].as_str().unwrap_or_default();
    assert!(stamp.len() == 20 && stamp.ends_with('Z'), "{stamped}");

    // The older form: the action as the body, the object in the query.
    let v1_url = format!("{app_url}/resource/actions?{}", query("web"));
    let (status, answer) = call(Method::POST, &v1_url, &oncall, Some(serde_json::json!("pause"))).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(live(&client, &dest, "web").await["spec"]["paused"], true);
    let (status, answer) = call(Method::POST, &v1_url, &oncall, Some(serde_json::json!("pause"))).await;
    assert_eq!(status, 400, "pause is disabled on a paused Deployment: {answer}");

    // A custom Lua action with a parameter.
    let mut body = run_body("label", "web");
    body["resourceActionParameters"] = serde_json::json!([{"name": "value", "value": "oncall"}]);
    let (status, answer) = call(Method::POST, &run_url, &oncall, Some(body)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(live(&client, &dest, "web").await["metadata"]["labels"]["touched-by"], "oncall");

    // A Lua action that answers another object is refused, and neither object changes.
    let (status, answer) = call(Method::POST, &run_url, &oncall, Some(run_body("evil", "web"))).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(live(&client, &dest, "bystander").await["spec"]["replicas"], 1);
    assert_eq!(live(&client, &dest, "web").await["spec"]["replicas"], 1);

    // An object the app does not track is not found, even with the permission.
    let (status, answer) =
        call(Method::POST, &run_url, &oncall, Some(run_body("restart", "bystander"))).await;
    assert_eq!(status, 404, "{answer}");
    assert!(
        live(&client, &dest, "bystander").await["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT]
            .is_null()
    );
    let (status, _) = call(Method::GET, &list_url("bystander"), &viewer, None).await;
    assert_eq!(status, 404);

    // A kind spelled otherwise than the API server spells it names nothing.
    let mut body = run_body("restart", "web");
    body["kind"] = "deployment".into();
    let (status, answer) = call(Method::POST, &run_url, &oncall, Some(body)).await;
    assert!(status == 403 || status == 404, "{status}: {answer}");
}
