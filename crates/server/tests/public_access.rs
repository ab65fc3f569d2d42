//! What argocd-cm lets a caller without a session see and do, over real HTTP against the real local cluster,
//! each test in its own namespace: anonymous access (`users.anonymous.enabled`, `policy.default` only), the
//! status badge (`statusbadge.enabled`, `GET /api/badge`), and `GET /api/v1/settings` with the keys berth
//! does not support.

use berth_testkit::*;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};
use std::time::Duration;

mod common;
use common::*;

const WAIT: Duration = Duration::from_secs(30);

/// A namespace with the CRDs, argocd-cm and argocd-rbac-cm as given, and the accounts bootstrapped.
async fn namespace_with(prefix: &str, cm: Value, rbac: Value) -> (kube::Client, String) {
    let client = client().await;
    install_crds(&client).await;
    let ns = unique(prefix);
    ensure_namespace(&client, &ns).await;
    put_config_map(&client, &ns, "argocd-cm", cm).await;
    put_config_map(&client, &ns, "argocd-rbac-cm", rbac).await;
    berth_server::auth::bootstrap(&client, &ns).await.unwrap();
    (client, ns)
}

async fn put_config_map(client: &kube::Client, ns: &str, name: &str, data: Value) {
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns}, "data": data});
    maps.patch(name, &PatchParams::apply("berth-test").force(), &Patch::Apply(&body)).await.unwrap();
}

/// An Application of project `default` with the status berth's controller would have written.
async fn create_app(client: &kube::Client, ns: &str, name: &str, health: &str, sync: &str) {
    let api: Api<berth_api::Application> = Api::namespaced(client.clone(), ns);
    let body = json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"project": "default",
                 "source": {"repoURL": "https://example.com/repo.git", "path": name},
                 "destination": {"server": "https://kubernetes.default.svc", "namespace": name}},
        "status": {"health": {"status": health}, "sync": {"status": sync},
                   "operationState": {"phase": "Succeeded", "startedAt": "2026-01-01T00:00:00Z",
                                      "operation": {"sync": {}},
                                      "syncResult": {"revision": "abc1234def5678abc1234def5678abc1234def56"}}}
    });
    api.patch(name, &PatchParams::apply("berth-test").force(), &Patch::Apply(&body)).await.unwrap();
}

/// Status and body (JSON when it is JSON) of a request, with a bearer token when one is given.
async fn send(method: reqwest::Method, url: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
    let mut request = reqwest::Client::new().request(method, url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

async fn get(url: &str, token: Option<&str>) -> (u16, Value) {
    send(reqwest::Method::GET, url, token, None).await
}

fn names(list: &Value) -> Vec<&str> {
    list["items"].as_array().into_iter().flatten().filter_map(|a| a["metadata"]["name"].as_str()).collect()
}

/// A token with a valid shape but a signature berth never made, claiming to be the admin.
fn forged_admin_token() -> String {
    use base64::Engine;
    let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let header = b64(json!({"alg": "HS256", "typ": "JWT"}));
    let claims = b64(json!({"iss": "argocd", "sub": "admin:login", "iat": 1, "nbf": 1, "jti": "x"}));
    format!("{header}.{claims}.c2lnbmF0dXJlLW9mLW5vYm9keQ")
}

#[tokio::test]
async fn anonymous_access_gives_a_caller_without_a_session_the_default_role_only() {
    let (client, ns) = namespace_with(
        "anon",
        json!({"users.anonymous.enabled": "true"}),
        json!({"policy.default": "role:readonly"}),
    )
    .await;
    create_app(&client, &ns, "web", "Healthy", "Synced").await;
    let server = start(&client, &ns).await;
    let apps = format!("{}/api/v1/applications", server.base);
    poll("the anonymous caller to list web", WAIT, || async {
        let (status, body) = get(&apps, None).await;
        status == 200 && names(&body) == ["web"]
    })
    .await;
    // role:readonly reads but never syncs; a forged admin token is no more than anonymous.
    let sync = format!("{}/api/v1/applications/web/sync", server.base);
    for token in [None, Some(forged_admin_token())] {
        let (status, body) = send(reqwest::Method::POST, &sync, token.as_deref(), Some(json!({}))).await;
        assert_eq!(status, 403, "{token:?}: {body}");
        assert_eq!(get(&apps, token.as_deref()).await.0, 200, "{token:?}");
    }
    // Argo CD's userinfo: the anonymous caller is not logged in.
    let (status, info) = get(&format!("{}/api/v1/session/userinfo", server.base), None).await;
    assert_eq!((status, info), (200, json!({"loggedIn": false})));
    let admin = token(&server.base, "admin", &admin_password(&client, &ns).await).await;
    let (_, info) = get(&format!("{}/api/v1/session/userinfo", server.base), Some(&admin)).await;
    assert_eq!(info["loggedIn"], true);

    put_config_map(&client, &ns, "argocd-cm", json!({"users.anonymous.enabled": "false"})).await;
    poll("anonymous access to end", WAIT, || async { get(&apps, None).await.0 == 401 }).await;
    assert_eq!(get(&apps, Some(&forged_admin_token())).await.0, 401);
    assert_eq!(get(&apps, Some(&admin)).await.0, 200);
}

#[tokio::test]
async fn anonymous_access_without_a_default_role_sees_nothing() {
    let (client, ns) =
        namespace_with("anon-closed", json!({"users.anonymous.enabled": "true"}), json!({})).await;
    create_app(&client, &ns, "web", "Healthy", "Synced").await;
    let server = start(&client, &ns).await;
    let admin = token(&server.base, "admin", &admin_password(&client, &ns).await).await;
    let apps = format!("{}/api/v1/applications", server.base);
    poll("the server to see web", WAIT, || async { names(&get(&apps, Some(&admin)).await.1) == ["web"] })
        .await;
    let (status, body) = get(&apps, None).await;
    assert_eq!(status, 200, "{body}");
    assert!(names(&body).is_empty(), "{body}");
    let (status, _) = get(&format!("{apps}/web"), None).await;
    assert_eq!(status, 403);
}

/// A badge's text and fill by element id (the SVG berth writes).
fn part<'a>(svg: &'a str, id: &str) -> (Option<&'a str>, Option<&'a str>) {
    let Some(start) = svg.find(&format!("id=\"{id}\"")) else { return (None, None) };
    let rest = &svg[start..];
    let text =
        rest.find('>').and_then(|open| rest[open + 1..].find('<').map(|end| &rest[open + 1..open + 1 + end]));
    let fill = rest.find("fill=\"").map(|f| &rest[f + 6..f + 6 + rest[f + 6..].find('"').unwrap_or(0)]);
    (text, fill)
}

async fn badge(base: &str, query: &str) -> (u16, reqwest::header::HeaderMap, String) {
    let response = reqwest::get(format!("{base}/api/badge?{query}")).await.unwrap();
    let (status, headers) = (response.status().as_u16(), response.headers().clone());
    (status, headers, response.text().await.unwrap())
}

#[tokio::test]
async fn the_status_badge_shows_sync_and_health_only_when_argocd_cm_enables_it() {
    let (client, ns) = namespace_with("badge", json!({}), json!({})).await;
    create_app(&client, &ns, "web", "Healthy", "Synced").await;
    create_app(&client, &ns, "api", "Progressing", "OutOfSync").await;
    let server = start(&client, &ns).await;
    let admin = token(&server.base, "admin", &admin_password(&client, &ns).await).await;
    let apps = format!("{}/api/v1/applications", server.base);
    poll("the server to see both apps", WAIT, || async {
        names(&get(&apps, Some(&admin)).await.1).len() == 2
    })
    .await;

    // Off: Unknown / Unknown whatever is asked, and no session is needed either way.
    for query in ["name=web", "name=nope", "project=default", "name=web&revision=true&showAppName=true"] {
        let (status, headers, svg) = badge(&server.base, query).await;
        assert_eq!(status, 200, "{query}");
        assert_eq!(headers["content-type"], "image/svg+xml");
        assert_eq!(
            (part(&svg, "healthText").0, part(&svg, "syncText").0),
            (Some("Unknown"), Some("Unknown"))
        );
        assert!(!svg.contains("web") && !svg.contains("abc1234"), "{query}: {svg}");
    }

    put_config_map(&client, &ns, "argocd-cm", json!({"statusbadge.enabled": "true"})).await;
    poll("the badge to turn on", WAIT, || async {
        part(&badge(&server.base, "name=web").await.2, "healthText").0 == Some("Healthy")
    })
    .await;
    let (_, headers, svg) = badge(&server.base, "name=web").await;
    assert_eq!(headers["cache-control"], "private, no-store");
    assert_eq!(headers["access-control-allow-origin"], "*");
    assert_eq!(part(&svg, "healthText").0, Some("Healthy"));
    assert_eq!(part(&svg, "healthRect").1, Some("rgb(24, 190, 82)"));
    assert_eq!(part(&svg, "syncText").0, Some("Synced"));
    assert_eq!(part(&svg, "revisionText").0, None);
    assert!(!svg.contains("web"), "the name shows only when asked: {svg}");

    let (_, _, svg) = badge(&server.base, "name=api&revision=true&showAppName=true").await;
    assert_eq!(part(&svg, "healthText").0, Some("Progressing"));
    assert_eq!(part(&svg, "syncText").0, Some("OutOfSync"));
    assert_eq!(part(&svg, "revisionText").0, Some("(abc1234)"));
    assert_eq!(part(&svg, "nameText").0, Some("api"));
    let (_, _, svg) = badge(&server.base, "name=api&revision=true&keepFullRevision=true").await;
    assert_eq!(part(&svg, "revisionText").0, Some("(abc1234def5678abc1234def5678abc1234def56)"));

    // Projects combine: one app out of sync and not healthy makes the project so.
    let (_, _, svg) = badge(&server.base, "project=default").await;
    assert_eq!((part(&svg, "healthText").0, part(&svg, "syncText").0), (Some("Degraded"), Some("OutOfSync")));
    let (_, _, svg) = badge(&server.base, "project=other").await;
    assert_eq!(part(&svg, "healthText").0, Some("Unknown"));

    // What is not there says so (as Argo CD's badge does), and nothing else.
    for query in ["name=nope&showAppName=true&revision=true", &format!("name=web&namespace=not-{ns}")] {
        let (status, _, svg) = badge(&server.base, query).await;
        assert_eq!(status, 200);
        assert_eq!((part(&svg, "healthText").0, part(&svg, "syncText").0), (Some("Not Found"), Some("")));
        assert!(!svg.contains("nope") && !svg.contains("abc1234"), "{query}: {svg}");
    }
    // Names that cannot be an Application's are refused without a badge.
    for query in ["name=%3Cscript%3E", "name=Web", "namespace=a_b&name=web", "project=a%2Fb"] {
        let (status, _, body) = badge(&server.base, query).await;
        assert_eq!((status, body.as_str()), (400, ""), "{query}");
    }
}

#[tokio::test]
async fn the_settings_endpoint_lists_argocd_cm_keys_berth_does_not_support_to_logged_in_callers() {
    let (client, ns) = namespace_with(
        "unsupported",
        json!({"ga.trackingid": "UA-1", "timeout.reconciliation": "3m", "statusbadge.enabled": "true",
               "kustomize.buildOptions": "--load-restrictor LoadRestrictionsNone",
               "kustomize.path.v5.4.3": "/usr/local/bin/kustomize-5"}),
        json!({}),
    )
    .await;
    let server = start(&client, &ns).await;
    let admin = token(&server.base, "admin", &admin_password(&client, &ns).await).await;
    let url = format!("{}/api/v1/settings", server.base);
    let (status, settings) = get(&url, Some(&admin)).await;
    assert_eq!(status, 200, "{settings}");
    assert_eq!(settings["unsupportedSettings"], json!(["ga.trackingid"]));
    assert_eq!(settings["statusBadgeEnabled"], true);
    assert_eq!(settings["kustomizeOptions"]["buildOptions"], "--load-restrictor LoadRestrictionsNone");
    assert_eq!(settings["kustomizeVersions"], json!(["v5.4.3"]));
    assert_eq!(settings["controllerNamespace"], ns.as_str());
    assert_eq!(settings["userLoginsDisabled"], false);

    // The login page reads the settings without a session; it is not told argocd-cm's keys.
    let (status, public) = get(&url, None).await;
    assert_eq!(status, 200);
    assert_eq!(public["statusBadgeEnabled"], true);
    assert!(
        public.get("unsupportedSettings").is_none() && public.get("controllerNamespace").is_none(),
        "{public}"
    );

    put_config_map(&client, &ns, "argocd-cm", json!({"users.session.duration": "1h", "ui.cssurl": "x.css"}))
        .await;
    poll("the new keys to be listed", WAIT, || async {
        get(&url, Some(&admin)).await.1["unsupportedSettings"]
            == json!(["ui.cssurl", "users.session.duration"])
    })
    .await;
}
