//! Changing Applications through the API over real HTTP on the real local cluster: update (PUT), update of
//! the spec, patch (json and merge), their RBAC checks and conflicts; and argocd-rbac-cm, argocd-cm and
//! argocd-secret changes taking effect without a restart.

use berth_testkit::*;
use kube::api::{Api, Patch, PatchParams};
use std::time::Duration;

mod common;
use common::*;

async fn put_config_map(client: &kube::Client, ns: &str, name: &str, data: serde_json::Value) {
    let maps: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client.clone(), ns);
    let body = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns}, "data": data});
    maps.patch(name, &PatchParams::apply("berth-test").force(), &Patch::Apply(&body)).await.unwrap();
}

async fn create_app(client: &kube::Client, ns: &str, name: &str, project: &str) {
    let api: Api<berth_api::Application> = Api::namespaced(client.clone(), ns);
    let body = serde_json::json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": name, "namespace": ns, "labels": {"team": "web"}},
        "spec": {"project": project,
                 "source": {"repoURL": "https://example.com/repo.git", "path": name},
                 "destination": {"server": "https://kubernetes.default.svc", "namespace": name}}
    });
    api.patch(name, &PatchParams::apply("berth-test"), &Patch::Apply(&body)).await.unwrap();
}

#[tokio::test]
async fn applications_are_updated_and_patched_under_rbac_without_losing_concurrent_changes() {
    let client = client().await;
    install_crds(&client).await;
    let ns = unique("apps");
    ensure_namespace(&client, &ns).await;
    create_app(&client, &ns, "web", "dev-team").await;
    put_config_map(&client, &ns, "argocd-cm", serde_json::json!({"accounts.dev": "login"})).await;
    put_config_map(
        &client,
        &ns,
        "argocd-rbac-cm",
        serde_json::json!({"policy.csv": "p, dev, applications, *, dev-team/*, allow\n"}),
    )
    .await;
    berth_server::auth::bootstrap(&client, &ns).await.unwrap();
    berth_server::auth::set_password(&client, &ns, "dev", "dev-pass-1234").await.unwrap();
    let server = start(&client, &ns).await;
    let admin = token(&server.base, "admin", &admin_password(&client, &ns).await).await;
    let dev = token(&server.base, "dev", "dev-pass-1234").await;
    let url = format!("{}/api/v1/applications/web", server.base);
    poll("the server to see web", Duration::from_secs(30), || async {
        call(reqwest::Method::GET, &url, &admin, None).await.0 == 200
    })
    .await;

    // PUT: the spec and labels as sent; status and the name stay.
    let (_, mut app) = call(reqwest::Method::GET, &url, &dev, None).await;
    app["spec"]["source"]["path"] = "apps/web".into();
    app["metadata"]["labels"]["tier"] = "frontend".into();
    let (status, updated) = call(reqwest::Method::PUT, &url, &dev, Some(app.clone())).await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["spec"]["source"]["path"], "apps/web");
    assert_eq!(updated["metadata"]["labels"], serde_json::json!({"team": "web", "tier": "frontend"}));
    // The copy it was read from is now stale: writing it again is a conflict, not a silent overwrite.
    app["spec"]["source"]["path"] = "elsewhere".into();
    let (status, body) = call(reqwest::Method::PUT, &url, &dev, Some(app.clone())).await;
    assert_eq!((status, body["code"].as_u64()), (409, Some(6)), "{body}");
    // Moving the app to a project dev may not update is refused; so is a name that is not the path's.
    let mut moved = updated.clone();
    moved["spec"]["project"] = "default".into();
    let (status, body) = call(reqwest::Method::PUT, &url, &dev, Some(moved.clone())).await;
    assert_eq!((status, body["code"].as_u64()), (403, Some(7)), "{body}");
    let mut renamed = updated.clone();
    renamed["metadata"]["name"] = "other".into();
    let (status, body) = call(reqwest::Method::PUT, &url, &admin, Some(renamed)).await;
    assert_eq!(status, 400, "{body}");

    // PUT .../spec answers the spec.
    let mut spec = updated["spec"].clone();
    spec["source"]["targetRevision"] = "v1.2.0".into();
    let (status, body) = call(reqwest::Method::PUT, &format!("{url}/spec"), &dev, Some(spec)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["source"]["targetRevision"], "v1.2.0");

    // PATCH, as `argocd app patch` sends it: a JSON patch (the default) and a merge patch.
    let patch = r#"[{"op": "replace", "path": "/spec/source/path", "value": "apps/web-v2"}]"#;
    let (status, body) = call(
        reqwest::Method::PATCH,
        &url,
        &dev,
        Some(serde_json::json!({"patch": patch, "patchType": "json"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["spec"]["source"]["path"], "apps/web-v2");
    let merge = r#"{"spec": {"source": {"targetRevision": "main"}}}"#;
    let (status, body) = call(
        reqwest::Method::PATCH,
        &url,
        &dev,
        Some(serde_json::json!({"patch": merge, "patchType": "merge"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["spec"]["source"]["targetRevision"], "main");
    assert_eq!(body["spec"]["source"]["path"], "apps/web-v2", "a merge patch keeps what it does not name");
    let (status, body) = call(
        reqwest::Method::PATCH,
        &url,
        &dev,
        Some(serde_json::json!({"patch": r#"{"spec": {"project": "default"}}"#, "patchType": "merge"})),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = call(
        reqwest::Method::PATCH,
        &url,
        &dev,
        Some(serde_json::json!({"patch": r#"[{"op": "remove", "path": "/spec/nothing"}]"#})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = call(
        reqwest::Method::PATCH,
        &url,
        &dev,
        Some(serde_json::json!({"patch": "{}", "patchType": "strategic"})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains("json or merge"), "{body}");
    // What the API server stores is what the answers said.
    let stored: Api<berth_api::Application> = Api::namespaced(client.clone(), &ns);
    let stored = stored.get("web").await.unwrap();
    let source = stored.spec.source.unwrap();
    assert_eq!(
        (source.path.as_deref(), source.target_revision.as_deref()),
        (Some("apps/web-v2"), Some("main"))
    );

    // Unknown apps are 403, as forbidden ones (names cannot be probed); no token is 401.
    let (status, _) = call(
        reqwest::Method::PUT,
        &format!("{}/api/v1/applications/nope", server.base),
        &admin,
        Some(updated),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) =
        call(reqwest::Method::PATCH, &url, "forged", Some(serde_json::json!({"patch": "{}"}))).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn rbac_and_account_changes_apply_without_a_restart() {
    let client = client().await;
    install_crds(&client).await;
    let ns = unique("reload");
    ensure_namespace(&client, &ns).await;
    create_app(&client, &ns, "web", "default").await;
    put_config_map(&client, &ns, "argocd-cm", serde_json::json!({"accounts.alice": "login"})).await;
    berth_server::auth::bootstrap(&client, &ns).await.unwrap();
    berth_server::auth::set_password(&client, &ns, "alice", "alice-pass-123").await.unwrap();
    let server = start(&client, &ns).await;
    let alice = token(&server.base, "alice", "alice-pass-123").await;
    let url = format!("{}/api/v1/applications/web", server.base);
    let admin = token(&server.base, "admin", &admin_password(&client, &ns).await).await;
    poll("the server to see web", Duration::from_secs(30), || async {
        call(reqwest::Method::GET, &url, &admin, None).await.0 == 200
    })
    .await;
    assert_eq!(call(reqwest::Method::GET, &url, &alice, None).await.0, 403);

    // A policy granting alice reads applies to her existing token.
    put_config_map(
        &client,
        &ns,
        "argocd-rbac-cm",
        serde_json::json!({"policy.csv": "p, alice, applications, get, default/*, allow\n"}),
    )
    .await;
    poll("alice allowed by the new policy", Duration::from_secs(30), || async {
        call(reqwest::Method::GET, &url, &alice, None).await.0 == 200
    })
    .await;
    // A broken policy is refused; the last good one stays in force.
    put_config_map(&client, &ns, "argocd-rbac-cm", serde_json::json!({"policy.csv": "p, alice\n"})).await;
    put_config_map(
        &client,
        &ns,
        "argocd-rbac-cm",
        serde_json::json!({"policy.csv": "p, alice, applications, get, default/*, allow\np, alice, applications, sync, default/*, deny\n", "policy.default": ""}),
    )
    .await;
    assert_eq!(call(reqwest::Method::GET, &url, &alice, None).await.0, 200);
    // Taking the grant away applies too.
    put_config_map(&client, &ns, "argocd-rbac-cm", serde_json::json!({"policy.csv": ""})).await;
    poll("alice refused again", Duration::from_secs(30), || async {
        call(reqwest::Method::GET, &url, &alice, None).await.0 == 403
    })
    .await;

    // A new account in argocd-cm, with its password in argocd-secret, can log in without a restart.
    put_config_map(
        &client,
        &ns,
        "argocd-cm",
        serde_json::json!({"accounts.alice": "login", "accounts.bob": "login"}),
    )
    .await;
    berth_server::auth::set_password(&client, &ns, "bob", "bob-pass-1234").await.unwrap();
    poll("bob can log in", Duration::from_secs(30), || async {
        try_token(&server.base, "bob", "bob-pass-1234").await.is_some()
    })
    .await;
    // Disabling alice ends her session.
    put_config_map(
        &client,
        &ns,
        "argocd-cm",
        serde_json::json!({"accounts.alice": "login", "accounts.alice.enabled": "false", "accounts.bob": "login"}),
    )
    .await;
    poll("alice's token refused once she is disabled", Duration::from_secs(30), || async {
        call(reqwest::Method::GET, &format!("{}/api/v1/applications", server.base), &alice, None).await.0
            == 401
    })
    .await;
}

#[tokio::test]
async fn can_i_answers_per_policy_and_logout_ends_the_session() {
    let client = client().await;
    install_crds(&client).await;
    let ns = unique("can-i");
    ensure_namespace(&client, &ns).await;
    put_config_map(&client, &ns, "argocd-cm", serde_json::json!({"accounts.viewer": "login"})).await;
    put_config_map(
        &client,
        &ns,
        "argocd-rbac-cm",
        serde_json::json!({"policy.csv": "g, viewer, role:readonly\n"}),
    )
    .await;
    berth_server::auth::bootstrap(&client, &ns).await.unwrap();
    berth_server::auth::set_password(&client, &ns, "viewer", "viewer-pass-1").await.unwrap();
    let server = start(&client, &ns).await;
    let admin = token(&server.base, "admin", &admin_password(&client, &ns).await).await;
    let viewer = token(&server.base, "viewer", "viewer-pass-1").await;
    let can = |who: &str, path: &str| {
        let url = format!("{}/api/v1/account/can-i/{path}", server.base);
        let who = who.to_string();
        async move { call(reqwest::Method::GET, &url, &who, None).await }
    };
    assert_eq!(can(&admin, "applications/sync/default/web").await.1, serde_json::json!({"value": "yes"}));
    assert_eq!(can(&viewer, "applications/get/default/web").await.1, serde_json::json!({"value": "yes"}));
    assert_eq!(can(&viewer, "applications/sync/default/web").await.1, serde_json::json!({"value": "no"}));
    assert_eq!(can("forged", "applications/get/default/web").await.0, 401);

    // Logout: the token stops working and the cookie is cleared.
    let response = reqwest::Client::new()
        .delete(format!("{}/api/v1/session", server.base))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let cookie = response.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.starts_with("argocd.token=;") && cookie.contains("Max-Age=0"), "{cookie}");
    assert_eq!(can(&viewer, "applications/get/default/web").await.0, 401);
    // The UI's pages come from the same server; unknown API paths stay JSON 404s.
    let page = reqwest::get(format!("{}/applications/web", server.base)).await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let (status, body) =
        call(reqwest::Method::GET, &format!("{}/api/v1/nothing", server.base), &admin, None).await;
    assert_eq!((status, body["code"].as_u64()), (404, Some(5)), "{body}");
}
