//! Repositories, clusters and accounts over real HTTP against the real local cluster, each test in its own
//! namespace: Argo CD's Secrets are written with Argo CD's keys, RBAC filters and refuses, and no password,
//! key or token ever comes back.

use berth_testkit::*;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, ListParams, Patch, PatchParams};
use reqwest::Method;
use serde_json::{Value, json};

mod common;
use common::*;

/// Status, body as text (to search it for secrets) and body as JSON.
async fn send(method: Method, url: &str, token: &str, body: Option<Value>) -> (u16, String, Value) {
    let mut request = reqwest::Client::new().request(method, url).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or(Value::String(text.clone()));
    (status, text, json)
}

/// A path segment as Argo CD's clients encode a URL into it.
fn encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A namespace with the CRDs, argocd-cm and argocd-rbac-cm as given, the accounts bootstrapped and each
/// `(account, password)` set.
async fn namespace_with(
    prefix: &str,
    cm: Value,
    rbac: Value,
    passwords: &[(&str, &str)],
) -> (kube::Client, String) {
    let client = client().await;
    install_crds(&client).await;
    let ns = unique(prefix);
    ensure_namespace(&client, &ns).await;
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    for (name, data) in [("argocd-cm", cm), ("argocd-rbac-cm", rbac)] {
        let body = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": ns}, "data": data});
        maps.patch(name, &PatchParams::apply("berth-test"), &Patch::Apply(&body)).await.unwrap();
    }
    berth_server::auth::bootstrap(&client, &ns).await.unwrap();
    for (account, password) in passwords {
        berth_server::auth::set_password(&client, &ns, account, password).await.unwrap();
    }
    (client, ns)
}

async fn typed_secrets(client: &kube::Client, ns: &str, kind: &str) -> Vec<Secret> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let params = ListParams::default().labels(&format!("argocd.argoproj.io/secret-type={kind}"));
    secrets.list(&params).await.unwrap().items
}

fn data_of(secret: &Secret, key: &str) -> Option<String> {
    secret.data.as_ref()?.get(key).map(|v| String::from_utf8(v.0.clone()).unwrap())
}

fn repos(body: &Value) -> Vec<&str> {
    body["items"].as_array().unwrap().iter().map(|r| r["repo"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn repositories_are_created_listed_read_and_deleted_without_ever_returning_credentials() {
    const PASSWORD: &str = "s3cret-repo-Passw0rd";
    const NEW_PASSWORD: &str = "an0ther-repo-Passw0rd";
    const SSH_KEY: &str =
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----";
    let (client, ns) = namespace_with(
        "settings-repo",
        json!({"accounts.dev": "login", "accounts.viewer": "login"}),
        json!({"policy.csv": "p, dev, repositories, get, team-a/*, allow\ng, viewer, role:readonly\n"}),
        &[("dev", "dev-pass-123"), ("viewer", "viewer-pass-1")],
    )
    .await;
    let server = start(&client, &ns).await;
    let admin = token(&server.base, "admin", &admin_password(&client, &ns).await).await;
    let repos_url = format!("{}/api/v1/repositories", server.base);
    let app_repo = "https://git.example.com/org/app.git";
    let other_repo = "git@git.example.com:org/other.git";

    let app = json!({"repo": app_repo, "username": "bot", "password": PASSWORD, "project": "team-a",
        "insecure": true});
    let (status, text, created) = send(Method::POST, &repos_url, &admin, Some(app.clone())).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        created,
        json!({"repo": app_repo, "type": "git", "username": "bot", "project": "team-a",
        "insecure": true})
    );
    let other = json!({"repo": other_repo, "sshPrivateKey": SSH_KEY, "name": "other"});
    let (status, text, _) = send(Method::POST, &repos_url, &admin, Some(other)).await;
    assert_eq!(status, 200, "{text}");

    // Argo CD's Secret: labelled, named repo-<hash>, Argo CD's keys.
    let stored = typed_secrets(&client, &ns, "repository").await;
    assert_eq!(stored.len(), 2);
    let secret = stored.iter().find(|s| data_of(s, "url").as_deref() == Some(app_repo)).unwrap();
    assert!(secret.metadata.name.as_deref().unwrap().starts_with("repo-"));
    assert_eq!(data_of(secret, "password").as_deref(), Some(PASSWORD));
    assert_eq!(data_of(secret, "username").as_deref(), Some("bot"));
    assert_eq!(data_of(secret, "type").as_deref(), Some("git"));
    assert_eq!(data_of(secret, "insecure").as_deref(), Some("true"));
    assert_eq!(data_of(secret, "project").as_deref(), Some("team-a"));

    // The same spec again is a no-op; a different one is 409 until upsert.
    assert_eq!(send(Method::POST, &repos_url, &admin, Some(app.clone())).await.0, 200);
    let mut changed = app.clone();
    changed["password"] = NEW_PASSWORD.into();
    let (status, text, error) = send(Method::POST, &repos_url, &admin, Some(changed.clone())).await;
    assert_eq!((status, error["code"].as_i64()), (409, Some(6)), "{text}");
    assert!(error["message"].as_str().unwrap().contains("upsert"), "{text}");
    assert!(!text.contains(NEW_PASSWORD) && !text.contains(PASSWORD), "{text}");
    let (status, text, _) =
        send(Method::POST, &format!("{repos_url}?upsert=true"), &admin, Some(changed)).await;
    assert_eq!(status, 200, "{text}");
    let stored = typed_secrets(&client, &ns, "repository").await;
    let secret = stored.iter().find(|s| data_of(s, "url").as_deref() == Some(app_repo)).unwrap();
    assert_eq!(data_of(secret, "password").as_deref(), Some(NEW_PASSWORD));

    // Listed and read: the usernames, never a password or key.
    let (status, text, list) = send(Method::GET, &repos_url, &admin, None).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(repos(&list), [other_repo, app_repo]);
    let (status, text, one) =
        send(Method::GET, &format!("{repos_url}/{}", encode(app_repo)), &admin, None).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        (&one["repo"], &one["username"], &one["project"]),
        (&json!(app_repo), &json!("bot"), &json!("team-a"))
    );
    let (_, other_text, other_one) =
        send(Method::GET, &format!("{repos_url}/{}", encode(other_repo)), &admin, None).await;
    assert_eq!(other_one["name"], "other");
    for body in [&text, &other_text, &send(Method::GET, &repos_url, &admin, None).await.1] {
        for secret in
            [PASSWORD, NEW_PASSWORD, SSH_KEY, "b3BlbnNzaC1rZXktdjEAAAAA", "password", "sshPrivateKey"]
        {
            assert!(!body.contains(secret), "{secret:?} leaked in {body}");
        }
    }

    // role:readonly sees everything and changes nothing; dev sees only team-a's repositories.
    let viewer = token(&server.base, "viewer", "viewer-pass-1").await;
    assert_eq!(repos(&send(Method::GET, &repos_url, &viewer, None).await.2).len(), 2);
    let (status, _, denied) =
        send(Method::POST, &repos_url, &viewer, Some(json!({"repo": "https://git.example.com/x"}))).await;
    assert_eq!((status, denied["code"].as_i64()), (403, Some(7)));
    assert_eq!(
        send(Method::DELETE, &format!("{repos_url}/{}", encode(app_repo)), &viewer, None).await.0,
        403
    );
    let dev = token(&server.base, "dev", "dev-pass-123").await;
    assert_eq!(repos(&send(Method::GET, &repos_url, &dev, None).await.2), [app_repo]);
    assert_eq!(send(Method::GET, &format!("{repos_url}/{}", encode(app_repo)), &dev, None).await.0, 200);
    assert_eq!(send(Method::GET, &format!("{repos_url}/{}", encode(other_repo)), &dev, None).await.0, 403);
    let team_repo = json!({"repo": "https://git.example.com/team-a/new", "project": "team-a"});
    assert_eq!(send(Method::POST, &repos_url, &dev, Some(team_repo)).await.0, 403);
    assert_eq!(typed_secrets(&client, &ns, "repository").await.len(), 2, "nothing was written for them");

    // Deleted: gone from the API and the cluster.
    let other_url = format!("{repos_url}/{}", encode(other_repo));
    let (status, text, _) = send(Method::DELETE, &other_url, &admin, None).await;
    assert_eq!(status, 200, "{text}");
    let (status, _, missing) = send(Method::GET, &other_url, &admin, None).await;
    assert_eq!((status, missing["code"].as_i64()), (404, Some(5)));
    assert_eq!(send(Method::DELETE, &other_url, &admin, None).await.0, 404);
    assert_eq!(repos(&send(Method::GET, &repos_url, &admin, None).await.2), [app_repo]);
    assert_eq!(typed_secrets(&client, &ns, "repository").await.len(), 1);
    let (status, _, bad) =
        send(Method::POST, &repos_url, &admin, Some(json!({"repo": "x", "type": "svn"}))).await;
    assert_eq!((status, bad["code"].as_i64()), (400, Some(3)));
}

#[tokio::test]
async fn clusters_list_in_cluster_first_and_declared_clusters_never_show_their_credentials() {
    const BEARER: &str = "eyJhbGciOiJSUzI1NiJ9.cluster-bearer-token";
    const KEY_DATA: &str = "LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0t";
    let (client, ns) = namespace_with(
        "settings-cluster",
        json!({"accounts.viewer": "login"}),
        json!({"policy.csv": "g, viewer, role:readonly\n"}),
        &[("viewer", "viewer-pass-1")],
    )
    .await;
    let server = start(&client, &ns).await;
    let admin = token(&server.base, "admin", &admin_password(&client, &ns).await).await;
    let clusters_url = format!("{}/api/v1/clusters", server.base);
    let in_cluster = "https://kubernetes.default.svc";
    let prod = "https://prod.example.com:6443";

    let (status, text, list) = send(Method::GET, &clusters_url, &admin, None).await;
    assert_eq!(status, 200, "{text}");
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{text}");
    assert_eq!((&items[0]["server"], &items[0]["name"]), (&json!(in_cluster), &json!("in-cluster")));
    assert_eq!(items[0]["connectionState"]["status"], "Successful", "{text}");

    let cluster = json!({"server": prod, "name": "prod", "namespaces": ["web", "api"], "project": "team-a",
        "config": {"bearerToken": BEARER, "tlsClientConfig": {"insecure": false, "caData": "Q0E=", "keyData": KEY_DATA}}});
    let (status, text, created) = send(Method::POST, &clusters_url, &admin, Some(cluster.clone())).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(created["name"], "prod");
    let stored = typed_secrets(&client, &ns, "cluster").await;
    assert_eq!(stored.len(), 1);
    let secret = &stored[0];
    assert!(secret.metadata.name.as_deref().unwrap().starts_with("cluster-prod.example.com-"), "{secret:?}");
    assert_eq!(data_of(secret, "server").as_deref(), Some(prod));
    assert_eq!(data_of(secret, "name").as_deref(), Some("prod"));
    assert_eq!(data_of(secret, "namespaces").as_deref(), Some("web,api"));
    assert_eq!(data_of(secret, "project").as_deref(), Some("team-a"));
    let config: Value = serde_json::from_str(&data_of(secret, "config").unwrap()).unwrap();
    assert_eq!(config["bearerToken"], BEARER, "the credentials are stored for the controller");

    let prod_url = format!("{clusters_url}/{}", encode(prod));
    let (status, one_text, one) = send(Method::GET, &prod_url, &admin, None).await;
    assert_eq!(status, 200, "{one_text}");
    assert_eq!(one["namespaces"], json!(["web", "api"]));
    assert_eq!(one["config"]["tlsClientConfig"], json!({"insecure": false, "caData": "Q0E="}));
    let (_, list_text, list) = send(Method::GET, &clusters_url, &admin, None).await;
    let servers: Vec<&str> =
        list["items"].as_array().unwrap().iter().map(|c| c["server"].as_str().unwrap()).collect();
    assert_eq!(servers, [in_cluster, prod]);
    for body in [&text, &one_text, &list_text] {
        for secret in [BEARER, KEY_DATA, "bearerToken", "keyData"] {
            assert!(!body.contains(secret), "{secret:?} leaked in {body}");
        }
    }

    // A different spec needs upsert; the readonly role may read but not write.
    let mut renamed = cluster.clone();
    renamed["name"] = "production".into();
    let (status, _, error) = send(Method::POST, &clusters_url, &admin, Some(renamed.clone())).await;
    assert_eq!((status, error["code"].as_i64()), (409, Some(6)));
    let (status, text, _) =
        send(Method::POST, &format!("{clusters_url}?upsert=true"), &admin, Some(renamed)).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(send(Method::GET, &prod_url, &admin, None).await.2["name"], "production");
    let viewer = token(&server.base, "viewer", "viewer-pass-1").await;
    assert_eq!(send(Method::GET, &clusters_url, &viewer, None).await.2["items"].as_array().unwrap().len(), 2);
    assert_eq!(send(Method::DELETE, &prod_url, &viewer, None).await.0, 403);

    // The in-cluster destination stays; a declared cluster goes.
    let (status, text, refused) =
        send(Method::DELETE, &format!("{clusters_url}/{}", encode(in_cluster)), &admin, None).await;
    assert_eq!((status, refused["code"].as_i64()), (400, Some(9)), "{text}");
    assert!(refused["message"].as_str().unwrap().contains("cannot be removed"), "{text}");
    let (status, _, got) =
        send(Method::GET, &format!("{clusters_url}/{}", encode(in_cluster)), &admin, None).await;
    assert_eq!((status, &got["name"]), (200, &json!("in-cluster")));
    let (status, text, _) = send(Method::DELETE, &prod_url, &admin, None).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(send(Method::GET, &prod_url, &admin, None).await.0, 404);
    assert!(typed_secrets(&client, &ns, "cluster").await.is_empty());
}

#[tokio::test]
async fn accounts_change_passwords_and_issue_api_tokens_only_to_api_key_accounts() {
    let (client, ns) = namespace_with(
        "settings-account",
        json!({"accounts.alice": "login", "accounts.bob": "login", "accounts.ci": "apiKey"}),
        json!({}),
        &[("alice", "alice-pass-1"), ("bob", "bob-pass-12")],
    )
    .await;
    let server = start(&client, &ns).await;
    let base = &server.base;
    let admin = token(base, "admin", &admin_password(&client, &ns).await).await;

    let (status, text, list) = send(Method::GET, &format!("{base}/api/v1/account"), &admin, None).await;
    assert_eq!(status, 200, "{text}");
    let names: Vec<&str> =
        list["items"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["admin", "alice", "bob", "ci"]);
    let ci = list["items"].as_array().unwrap().iter().find(|a| a["name"] == "ci").unwrap();
    assert_eq!((&ci["enabled"], &ci["capabilities"]), (&json!(true), &json!(["apiKey"])));
    assert!(!text.contains("$2a$") && !text.contains("password"), "{text}");
    // Without an RBAC grant an account sees itself only.
    let alice = token(base, "alice", "alice-pass-1").await;
    let (_, _, own) = send(Method::GET, &format!("{base}/api/v1/account"), &alice, None).await;
    assert_eq!(own["items"].as_array().unwrap().len(), 1);
    assert_eq!(own["items"][0]["name"], "alice");
    assert_eq!(send(Method::GET, &format!("{base}/api/v1/account/bob"), &alice, None).await.0, 403);
    assert_eq!(send(Method::GET, &format!("{base}/api/v1/account/nobody"), &admin, None).await.0, 404);

    // A password change needs the caller's current password; then the old one fails and the new one works.
    let password_url = format!("{base}/api/v1/account/password");
    let wrong = json!({"currentPassword": "not-it-at-all", "newPassword": "alice-new-pass"});
    let (status, text, error) = send(Method::PUT, &password_url, &alice, Some(wrong)).await;
    assert_eq!((status, error["code"].as_i64()), (400, Some(3)), "{text}");
    assert!(!text.contains("alice-new-pass"), "{text}");
    assert_eq!(login(base, "alice", "alice-new-pass").await.status().as_u16(), 401);
    let change = json!({"currentPassword": "alice-pass-1", "newPassword": "alice-new-pass"});
    let (status, text, _) = send(Method::PUT, &password_url, &alice, Some(change)).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(login(base, "alice", "alice-pass-1").await.status().as_u16(), 401);
    let alice = token(base, "alice", "alice-new-pass").await;
    // Another account's password needs RBAC `accounts, update`: admin has it, alice not.
    let for_bob = json!({"name": "bob", "currentPassword": "alice-new-pass", "newPassword": "bob-by-alice"});
    assert_eq!(send(Method::PUT, &password_url, &alice, Some(for_bob)).await.0, 403);
    let admin_password = admin_password(&client, &ns).await;
    let for_bob = json!({"name": "bob", "currentPassword": admin_password, "newPassword": "bob-by-admin"});
    assert_eq!(send(Method::PUT, &password_url, &admin, Some(for_bob)).await.0, 200);
    assert_eq!(login(base, "bob", "bob-by-admin").await.status().as_u16(), 200);

    // An API token for ci works as a Bearer token until it is deleted.
    let token_url = format!("{base}/api/v1/account/ci/token");
    let (status, text, issued) =
        send(Method::POST, &token_url, &admin, Some(json!({"expiresIn": 3600, "id": "deploy"}))).await;
    assert_eq!(status, 200, "{text}");
    let ci_token = issued["token"].as_str().unwrap().to_string();
    let userinfo = format!("{base}/api/v1/session/userinfo");
    let (_, _, info) = send(Method::GET, &userinfo, &ci_token, None).await;
    assert_eq!((&info["loggedIn"], &info["username"]), (&json!(true), &json!("ci")), "{info}");
    let (_, text, ci) = send(Method::GET, &format!("{base}/api/v1/account/ci"), &admin, None).await;
    let tokens = ci["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 1, "{text}");
    assert_eq!(tokens[0]["id"], "deploy");
    let (iat, exp) = (tokens[0]["issuedAt"].as_i64().unwrap(), tokens[0]["expiresAt"].as_i64().unwrap());
    assert_eq!(exp - iat, 3600);
    assert!(!text.contains(&ci_token), "the token is shown once, at creation");
    let (status, _, again) = send(Method::POST, &token_url, &admin, Some(json!({"id": "deploy"}))).await;
    assert_eq!((status, again["code"].as_i64()), (400, Some(3)), "{again}");

    // Refused for an account without apiKey, and for a caller who may not update ci.
    let (status, text, refused) =
        send(Method::POST, &format!("{base}/api/v1/account/alice/token"), &admin, Some(json!({}))).await;
    assert_eq!((status, refused["code"].as_i64()), (400, Some(9)), "{text}");
    assert!(refused["message"].as_str().unwrap().contains("apiKey"), "{text}");
    assert_eq!(send(Method::POST, &token_url, &alice, Some(json!({}))).await.0, 403);

    let (status, text, _) = send(Method::DELETE, &format!("{token_url}/deploy"), &admin, None).await;
    assert_eq!(status, 200, "{text}");
    let (_, _, info) = send(Method::GET, &userinfo, &ci_token, None).await;
    assert_eq!(info["loggedIn"], false, "a deleted token no longer works");
    assert_eq!(send(Method::DELETE, &format!("{token_url}/deploy"), &admin, None).await.0, 404);
    let (_, _, ci) = send(Method::GET, &format!("{base}/api/v1/account/ci"), &admin, None).await;
    assert_eq!(ci["tokens"], json!([]));
}
