//! SSO against a real Dex: the browser's login flow through `/auth/login` and `/auth/callback` (Dex's login
//! form driven headlessly), groups from the ID token into argocd-rbac-cm's `g` lines, logout, and every
//! forged or misused token and state refused with 401/400 without a word of the token in the answer.

mod common;

use berth_testkit::dex::{self, Dex, DexOptions, StaticClient, StaticPassword};
use berth_testkit::{client, ensure_namespace, unique};
use common::Server;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, Patch, PatchParams};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const CLIENT_SECRET: &str = "berth-client-secret-1234";
const ALICE: (&str, &str) = ("alice@example.com", "alice-password");
const BOB: (&str, &str) = ("bob@example.com", "bob-password");
/// A provider user whose id is the name of a local account (`ci`).
const CI_NAMESAKE: (&str, &str) = ("ci@example.com", "ci-password");

struct Fixture {
    client: kube::Client,
    ns: String,
    server: Server,
    dex: Dex,
    http: reqwest::Client,
}

async fn apply_cm(client: &kube::Client, ns: &str, name: &str, data: Value) {
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns}, "data": data});
    Api::<ConfigMap>::namespaced(client.clone(), ns)
        .patch(name, &PatchParams::apply("berth-test").force(), &Patch::Apply(&body))
        .await
        .unwrap();
}

/// berth with argocd-cm `url` and `oidc.config` naming a fresh Dex (its client secret referenced from
/// argocd-secret), and an RBAC policy that gives group `team-a` the apps of project `team-a` only.
async fn fixture(prefix: &str) -> Fixture {
    let client = client().await;
    let ns = unique(prefix);
    ensure_namespace(&client, &ns).await;
    let server = common::start(&client, &ns).await;
    let dex = Dex::start(DexOptions {
        static_passwords: vec![
            StaticPassword::new(ALICE.0, ALICE.1).groups(&["team-a"]),
            // A group whose name holds a comma is one group, never split into `team-a` and `admins`.
            StaticPassword::new(BOB.0, BOB.1).groups(&["team-b,admins"]),
            StaticPassword { user_id: "ci".into(), ..StaticPassword::new(CI_NAMESAKE.0, CI_NAMESAKE.1) },
        ],
        static_clients: vec![
            StaticClient::confidential("berth", CLIENT_SECRET, &format!("{}/auth/callback", server.base)),
            StaticClient::confidential("other-app", "other-secret", "http://localhost:9/cb"),
        ],
        ..DexOptions::default()
    })
    .await;
    Api::<Secret>::namespaced(client.clone(), &ns)
        .patch(
            "argocd-secret",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"oidc.dex.clientSecret": CLIENT_SECRET}})),
        )
        .await
        .unwrap();
    apply_cm(
        &client,
        &ns,
        "argocd-rbac-cm",
        json!({"policy.csv": "p, role:team-a, applications, get, team-a/*, allow\np, role:admin-ish, applications, get, */*, allow\ng, team-a, role:team-a\ng, admins, role:admin-ish\n"}),
    )
    .await;
    let oidc = format!(
        "name: Dex\nissuer: {}\nclientID: berth\nclientSecret: $oidc.dex.clientSecret\nrequestedScopes: [openid, profile, email, groups]\n",
        dex.issuer()
    );
    apply_cm(&client, &ns, "argocd-cm", json!({"url": server.base, "oidc.config": oidc})).await;
    let http = dex::http_client();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let settings: Value =
            http.get(format!("{}/api/v1/settings", server.base)).send().await.unwrap().json().await.unwrap();
        if settings["oidcConfig"]["issuer"] == dex.issuer() {
            assert_eq!(settings["oidcConfig"]["name"], "Dex");
            assert_eq!(settings["url"], server.base.as_str());
            assert!(!settings.to_string().contains(CLIENT_SECRET), "the client secret is never shown");
            break;
        }
        assert!(Instant::now() < deadline, "oidc.config never showed in /api/v1/settings: {settings}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Fixture { client, ns, server, dex, http }
}

fn location(r: &reqwest::Response) -> String {
    r.headers().get("location").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default()
}

/// The `name=value` of each Set-Cookie of `r`.
fn set_cookies(r: &reqwest::Response) -> Vec<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
        .collect()
}

/// `/auth/login`: the provider's authorization URL and the state cookie.
async fn start_login(f: &Fixture, return_url: &str) -> (String, String) {
    let r = f
        .http
        .get(format!("{}/auth/login", f.server.base))
        .query(&[("return_url", return_url)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{}", r.text().await.unwrap());
    let state =
        set_cookies(&r).into_iter().find(|c| c.starts_with("berth.oauthstate=")).expect("a state cookie");
    (location(&r), state)
}

async fn finish_login(f: &Fixture, callback: &str, state_cookie: &str) -> reqwest::Response {
    f.http.get(callback).header("cookie", state_cookie).send().await.unwrap()
}

/// A whole browser login as `user`: the session token the callback sets.
async fn browser_login(f: &Fixture, user: (&str, &str)) -> String {
    let (authorize, state) = start_login(f, "/applications?proj=team-a").await;
    assert!(authorize.starts_with(&f.dex.authorization_endpoint()), "{authorize}");
    let callback = dex::login(&f.http, &authorize, user.0, user.1).await.unwrap();
    assert!(callback.as_str().starts_with(&format!("{}/auth/callback", f.server.base)));
    let r = finish_login(f, callback.as_str(), &state).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{}", r.text().await.unwrap());
    assert_eq!(location(&r), "/applications?proj=team-a");
    let cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("argocd.token="))
        .expect("the session cookie");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    cookie.split(';').next().unwrap().trim_start_matches("argocd.token=").to_string()
}

async fn create_app(f: &Fixture, name: &str, project: &str) {
    let body = json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": name, "namespace": f.ns},
        "spec": {"project": project, "destination": {"server": "https://kubernetes.default.svc", "namespace": "x"},
                 "source": {"repoURL": "https://example.com/r.git", "path": "p"}}
    });
    Api::<berth_api::Application>::namespaced(f.client.clone(), &f.ns)
        .patch(name, &PatchParams::apply("berth-test"), &Patch::Apply(&body))
        .await
        .unwrap();
}

/// The app names `token` may list, once all `expected` apps are in the server's store.
async fn visible_apps(f: &Fixture, token: &str, total: usize, admin: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let names = |v: &Value| -> Vec<String> {
        let mut n: Vec<String> = v["items"]
            .as_array()
            .map(|items| items.iter().map(|i| i["metadata"]["name"].as_str().unwrap().to_string()).collect())
            .unwrap_or_default();
        n.sort();
        n
    };
    loop {
        let all: Value = f
            .http
            .get(format!("{}/api/v1/applications", f.server.base))
            .bearer_auth(admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if names(&all).len() == total {
            break;
        }
        assert!(Instant::now() < deadline, "the server never listed {total} apps");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = f
        .http
        .get(format!("{}/api/v1/applications", f.server.base))
        .header("cookie", format!("argocd.token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    names(&r.json().await.unwrap())
}

#[tokio::test]
async fn a_dex_login_gives_a_session_whose_groups_decide_what_it_sees_until_logout() {
    let f = fixture("sso-login").await;
    create_app(&f, "a-web", "team-a").await;
    create_app(&f, "b-web", "team-b").await;
    let admin = common::token(&f.server.base, "admin", &common::admin_password(&f.client, &f.ns).await).await;
    let alice = browser_login(&f, ALICE).await;
    assert_eq!(visible_apps(&f, &alice, 2, &admin).await, ["a-web"]);
    let info: Value = f
        .http
        .get(format!("{}/api/v1/session/userinfo", f.server.base))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["loggedIn"], true);
    assert_eq!(info["iss"], f.dex.issuer());
    assert_eq!(info["groups"], json!(["team-a"]));
    // Alice may read, not sync.
    let sync = f
        .http
        .post(format!("{}/api/v1/applications/a-web/sync", f.server.base))
        .bearer_auth(&alice)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(sync.status(), StatusCode::FORBIDDEN);
    // Bob's one group `team-b,admins` is neither `team-b` nor `admins`.
    let bob = browser_login(&f, BOB).await;
    assert!(visible_apps(&f, &bob, 2, &admin).await.is_empty());
    // Logout ends the session: the same ID token is refused from then on.
    let out = f
        .http
        .get(format!("{}/auth/logout", f.server.base))
        .header("cookie", format!("argocd.token={alice}"))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&out), "/login");
    assert!(set_cookies(&out).contains(&"argocd.token=".to_string()));
    let after = f
        .http
        .get(format!("{}/api/v1/applications", f.server.base))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
}

/// An ID token of Dex for `client` (code flow at Dex directly).
async fn dex_token(
    f: &Fixture,
    dex: &Dex,
    client: &str,
    secret: &str,
    redirect: &str,
    user: (&str, &str),
) -> String {
    let authorize = format!(
        "{}?client_id={client}&response_type=code&scope=openid+email+groups&state=s1&redirect_uri={}",
        dex.authorization_endpoint(),
        url_encode(redirect)
    );
    let callback = dex::login(&f.http, &authorize, user.0, user.1).await.unwrap();
    let code = callback.query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned();
    let tokens: Value = f
        .http
        .post(dex.token_endpoint())
        .basic_auth(client, Some(secret))
        .form(&[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", redirect)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    tokens["id_token"].as_str().unwrap().to_string()
}

fn url_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

async fn refused(f: &Fixture, token: &str, what: &str) {
    let r =
        f.http.get(format!("{}/api/v1/applications", f.server.base)).bearer_auth(token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{what}");
    let body = r.text().await.unwrap();
    assert!(!body.contains(token) && !body.contains(&token[..20.min(token.len())]), "{what}: {body}");
}

#[tokio::test]
async fn forged_and_foreign_id_tokens_are_refused() {
    let f = fixture("sso-forged").await;
    // A real token of the same Dex, for another client: the wrong audience.
    let other = dex_token(&f, &f.dex, "other-app", "other-secret", "http://localhost:9/cb", ALICE).await;
    refused(&f, &other, "another client's token").await;
    // A real token of another Dex (issuer and keys not the configured ones).
    let stranger = Dex::start(DexOptions {
        static_passwords: vec![StaticPassword::new(ALICE.0, ALICE.1).groups(&["team-a"])],
        static_clients: vec![StaticClient::confidential("berth", CLIENT_SECRET, "http://localhost:9/cb")],
        ..DexOptions::default()
    })
    .await;
    let foreign = dex_token(&f, &stranger, "berth", CLIENT_SECRET, "http://localhost:9/cb", ALICE).await;
    refused(&f, &foreign, "another issuer's token").await;
    // The right claims, signed by a key Dex does not publish (with Dex's own key id).
    let jwks: Value =
        f.http.get(format!("{}/keys", f.dex.issuer())).send().await.unwrap().json().await.unwrap();
    let kid = jwks["keys"][0]["kid"].as_str().unwrap().to_string();
    let claims = json!({"iss": f.dex.issuer(), "aud": "berth", "sub": "x", "groups": ["admins"],
        "exp": 4_000_000_000u64, "iat": 1_700_000_000u64});
    let key = rcgen::KeyPair::generate().unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some(kid.clone());
    let forged = jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_ec_pem(key.serialize_pem().as_bytes()).unwrap(),
    )
    .unwrap();
    refused(&f, &forged, "a key not in the JWKS").await;
    header.kid = Some("no-such-key".into());
    let unknown_kid = jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_ec_pem(key.serialize_pem().as_bytes()).unwrap(),
    )
    .unwrap();
    refused(&f, &unknown_kid, "an unknown key id").await;
    // `alg: none`, and HS256 keyed with the provider's public key material.
    let none = format!("{}.{}.", b64(br#"{"alg":"none","typ":"JWT"}"#), b64(claims.to_string().as_bytes()));
    refused(&f, &none, "alg none").await;
    let hs = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(jwks["keys"][0]["n"].as_str().unwrap_or("n").as_bytes()),
    )
    .unwrap();
    refused(&f, &hs, "HS256 with the public key").await;
    // A real token for berth's client, its payload changed (groups added): the signature no longer holds.
    let (authorize, state) = start_login(&f, "/").await;
    let callback = dex::login(&f.http, &authorize, ALICE.0, ALICE.1).await.unwrap();
    let r = finish_login(&f, callback.as_str(), &state).await;
    let good = set_cookies(&r)
        .into_iter()
        .find_map(|c| c.strip_prefix("argocd.token=").map(str::to_string))
        .unwrap();
    let parts: Vec<&str> = good.split('.').collect();
    use base64::Engine;
    let mut payload: Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(parts[1]).unwrap())
            .unwrap();
    payload["groups"] = json!(["admins"]);
    let tampered = format!("{}.{}.{}", parts[0], b64(payload.to_string().as_bytes()), parts[2]);
    refused(&f, &tampered, "a tampered payload").await;
    let ok =
        f.http.get(format!("{}/api/v1/applications", f.server.base)).bearer_auth(&good).send().await.unwrap();
    assert_eq!(ok.status(), StatusCode::OK, "the untouched token works");
}

#[tokio::test]
async fn the_callback_refuses_missing_replayed_and_foreign_state_a_wrong_nonce_and_open_redirects() {
    let f = fixture("sso-state").await;
    for evil in ["https://evil.example.com/", "//evil.example.com/x", "/\\evil.example.com"] {
        let r = f
            .http
            .get(format!("{}/auth/login", f.server.base))
            .query(&[("return_url", evil)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{evil}");
        assert!(location(&r).is_empty());
    }
    // No state cookie at all.
    let (authorize, state) = start_login(&f, "/").await;
    let callback = dex::login(&f.http, &authorize, ALICE.0, ALICE.1).await.unwrap();
    let r = finish_login(&f, callback.as_str(), "").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(!set_cookies(&r).iter().any(|c| c.starts_with("argocd.token=") && c.len() > 14));
    // The state cookie of another login.
    let (_, other_state) = start_login(&f, "/").await;
    let r = finish_login(&f, callback.as_str(), &other_state).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // The right one works once; a replay of the same callback is refused.
    let r = finish_login(&f, callback.as_str(), &state).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let replay = finish_login(&f, callback.as_str(), &state).await;
    assert_eq!(replay.status(), StatusCode::UNAUTHORIZED);
    // A code whose ID token carries another nonce than the login's.
    let (authorize, state) = start_login(&f, "/").await;
    let mut url = url::Url::parse(&authorize).unwrap();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "nonce" { "attacker-nonce".to_string() } else { v.into_owned() };
            (k.into_owned(), v)
        })
        .collect();
    url.query_pairs_mut().clear().extend_pairs(pairs);
    let callback = dex::login(&f.http, url.as_str(), ALICE.0, ALICE.1).await.unwrap();
    let r = finish_login(&f, callback.as_str(), &state).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.text().await.unwrap().contains("nonce"));
    // The provider's error is named by its code only.
    let r = f
        .http
        .get(format!("{}/auth/callback?error=access_denied&error_description=%3Cscript%3Ealert(1)%3C%2Fscript%3E&state=x", f.server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let body = r.text().await.unwrap();
    assert!(body.contains("access_denied") && !body.contains("script"), "{body}");
}

#[tokio::test]
async fn dex_config_runs_dex_behind_api_dex_with_argo_cds_clients_and_groups_from_the_connector() {
    let client = client().await;
    let ns = unique("sso-dex");
    ensure_namespace(&client, &ns).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let listen = format!("127.0.0.1:{port}");
    let server = common::InProcess::start(
        &client,
        &ns,
        common::Options { dex_server: Some(format!("http://{listen}")), ..Default::default() },
    )
    .await;
    // As an Argo CD team writes it (`$` references resolve in Dex's copy only: crates/cli/tests/sso.rs).
    let dex_config = "connectors:\n- type: mockCallback\n  id: mock\n  name: Mock SSO\n";
    apply_cm(&client, &ns, "argocd-cm", json!({"url": server.base, "dex.config": dex_config})).await;
    apply_cm(&client, &ns, "argocd-rbac-cm", json!({"policy.csv": "g, authors, role:readonly\n"})).await;
    let cm = Api::<ConfigMap>::namespaced(client.clone(), &ns).get("argocd-cm").await.unwrap().data.unwrap();
    let secret: std::collections::BTreeMap<String, String> = Api::<Secret>::namespaced(client.clone(), &ns)
        .get("argocd-secret")
        .await
        .unwrap()
        .data
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8(v.0).unwrap()))
        .collect();
    let config = berth_server::auth::oidc::dex_process::generate_config(&client, &ns, &cm, &secret, &listen)
        .await
        .unwrap();
    let dex = Dex::start_with_config(&config).await;
    assert_eq!(dex.issuer(), format!("{}/api/dex", server.base), "Dex's issuer is <url>/api/dex");
    let http = dex::http_client();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let settings: Value =
            http.get(format!("{}/api/v1/settings", server.base)).send().await.unwrap().json().await.unwrap();
        if settings["dexConfig"]["connectors"] == json!([{"name": "Mock SSO", "type": "mockCallback"}]) {
            assert!(settings.get("oidcConfig").is_none());
            break;
        }
        assert!(Instant::now() < deadline, "dex.config never showed in /api/v1/settings: {settings}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = http.get(format!("{}/auth/login", server.base)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let authorize = location(&r);
    assert!(authorize.starts_with(&format!("{}/api/dex/auth?", server.base)), "{authorize}");
    assert!(authorize.contains("client_id=argo-cd&"), "{authorize}");
    let state = set_cookies(&r).into_iter().find(|c| c.starts_with("berth.oauthstate=")).unwrap();
    let callback = dex::login_without_password(&http, &authorize).await.unwrap();
    let r = http.get(callback.as_str()).header("cookie", &state).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{}", r.text().await.unwrap());
    let token = set_cookies(&r)
        .into_iter()
        .find_map(|c| c.strip_prefix("argocd.token=").map(str::to_string))
        .unwrap();
    let info: Value = http
        .get(format!("{}/api/v1/session/userinfo", server.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["iss"], dex.issuer());
    assert_eq!(info["groups"], json!(["authors"]));
    let projects =
        http.get(format!("{}/api/v1/projects", server.base)).bearer_auth(&token).send().await.unwrap();
    assert_eq!(projects.status(), StatusCode::OK, "group authors has role:readonly");
}

#[tokio::test]
async fn the_seeds_argocd_cm_oidc_applies_unchanged_and_shows_its_provider() {
    let client = client().await;
    let ns = unique("sso-seed");
    ensure_namespace(&client, &ns).await;
    let server = common::start(&client, &ns).await;
    // The seed's file as written, but for its namespace; `url` by another field manager, as an install has it.
    let text = std::fs::read_to_string(berth_testkit::seed_dir().join("argocd-cm-oidc.yaml")).unwrap();
    let mut seed: Value = serde_saphyr::from_str(&text).unwrap();
    seed["metadata"]["namespace"] = json!(ns);
    Api::<ConfigMap>::namespaced(client.clone(), &ns)
        .patch("argocd-cm", &PatchParams::apply("seed").force(), &Patch::Apply(&seed))
        .await
        .unwrap();
    Api::<Secret>::namespaced(client.clone(), &ns)
        .patch(
            "argocd-secret",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"oidc.github.clientSecret": "seed-secret-value"}})),
        )
        .await
        .unwrap();
    apply_cm(&client, &ns, "argocd-cm", json!({"url": server.base})).await;
    let http = dex::http_client();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let settings: Value =
            http.get(format!("{}/api/v1/settings", server.base)).send().await.unwrap().json().await.unwrap();
        if settings.get("oidcConfig").is_some() {
            assert_eq!(settings["oidcConfig"]["name"], "GitHub");
            assert_eq!(settings["oidcConfig"]["issuer"], "https://github.com/login/oauth");
            assert_eq!(settings["oidcConfig"]["clientID"], "example-client-id");
            assert!(!settings.to_string().contains("seed-secret-value"));
            break;
        }
        assert!(Instant::now() < deadline, "the seed's oidc.config never showed: {settings}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The provider cannot be reached from here: the login says so, and names no secret.
    let r = http.get(format!("{}/auth/login", server.base)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    let body = r.text().await.unwrap();
    assert!(body.contains("cannot be reached") && !body.contains("seed-secret-value"), "{body}");
}

#[tokio::test]
async fn an_sso_user_named_like_a_local_account_is_not_that_account() {
    let f = fixture("sso-namesake").await;
    // Dex names users by their own id with `federated:id`: this one is `ci`, as the local account below.
    let oidc = format!(
        "name: Dex\nissuer: {}\nclientID: berth\nclientSecret: $oidc.dex.clientSecret\nrequestedScopes: [openid, profile, email, groups, federated:id]\n",
        f.dex.issuer()
    );
    apply_cm(
        &f.client,
        &f.ns,
        "argocd-cm",
        json!({"url": f.server.base, "oidc.config": oidc, "accounts.ci": "apiKey"}),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let settings: Value = f
            .http
            .get(format!("{}/api/v1/settings", f.server.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if settings["oidcConfig"]["scopes"].as_array().is_some_and(|s| s.iter().any(|s| s == "federated:id"))
        {
            break;
        }
        assert!(Instant::now() < deadline, "the new oidc.config never applied");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let token = browser_login(&f, CI_NAMESAKE).await;
    let info: Value = f
        .http
        .get(format!("{}/api/v1/session/userinfo", f.server.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["username"], "ci");
    let mint = f
        .http
        .post(format!("{}/api/v1/account/ci/token", f.server.base))
        .bearer_auth(&token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(mint.status(), StatusCode::FORBIDDEN, "an SSO user may not mint the local account's tokens");
    let read =
        f.http.get(format!("{}/api/v1/account/ci", f.server.base)).bearer_auth(&token).send().await.unwrap();
    assert_eq!(read.status(), StatusCode::FORBIDDEN);
    let password = f
        .http
        .put(format!("{}/api/v1/account/password", f.server.base))
        .bearer_auth(&token)
        .json(&json!({"currentPassword": "x", "newPassword": "something-new-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(password.status(), StatusCode::BAD_REQUEST);
}
