//! Accounts against the real local cluster: bootstrap of argocd-secret and the initial admin password,
//! password changes and API tokens. Each test has its own namespace.

use base64::Engine;
use berth_server::auth::{self, AuthError, Capability, ManualClock, SessionManager};
use berth_testkit::{client, ensure_namespace, unique};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, Patch, PatchParams};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

mod common;

async fn namespace(prefix: &str) -> (kube::Client, String) {
    let client = client().await;
    let ns = unique(prefix);
    ensure_namespace(&client, &ns).await;
    (client, ns)
}

async fn secret_data(client: &kube::Client, ns: &str, name: &str) -> Option<Secret> {
    Api::<Secret>::namespaced(client.clone(), ns).get_opt(name).await.unwrap()
}

fn text(secret: &Secret, key: &str) -> Option<String> {
    secret.data.as_ref()?.get(key).map(|v| String::from_utf8(v.0.clone()).unwrap())
}

async fn initial_password(client: &kube::Client, ns: &str) -> String {
    let secret = secret_data(client, ns, auth::INITIAL_ADMIN_SECRET)
        .await
        .expect("argocd-initial-admin-secret exists");
    text(&secret, "password").expect("key password")
}

async fn apply_config(client: &kube::Client, ns: &str, data: serde_json::Value) {
    let body = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": auth::ARGOCD_CM, "namespace": ns}, "data": data});
    Api::<ConfigMap>::namespaced(client.clone(), ns)
        .patch(auth::ARGOCD_CM, &PatchParams::apply("berth-test").force(), &Patch::Apply(&body))
        .await
        .unwrap();
}

/// A session manager over the cluster's current argocd-secret and argocd-cm.
async fn sessions(client: &kube::Client, ns: &str) -> SessionManager {
    let (key, accounts) = auth::load(client, ns).await.unwrap();
    SessionManager::new(key, accounts)
}

async fn reload(sessions: &SessionManager, client: &kube::Client, ns: &str) {
    let (key, accounts) = auth::load(client, ns).await.unwrap();
    sessions.replace(key, accounts);
}

#[tokio::test]
async fn bootstrap_writes_the_initial_admin_password_the_seed_command_prints() {
    let (client, ns) = namespace("auth-boot").await;
    let boot = auth::bootstrap(&client, &ns).await.unwrap();
    assert!(boot.generated_admin_password);
    assert_eq!(boot.written, ["admin.password", "admin.passwordMtime", "server.secretkey"]);

    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "kubectl -n {ns} get secret argocd-initial-admin-secret -o jsonpath=\"{{.data.password}}\" | base64 -d"
        ))
        .output()
        .expect("sh runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed = String::from_utf8(out.stdout).unwrap();
    assert_eq!(printed.len(), 16);
    assert!(printed.chars().all(|c| c.is_ascii_alphanumeric()), "{printed}");
    assert_eq!(printed, initial_password(&client, &ns).await);

    let secret = secret_data(&client, &ns, auth::ARGOCD_SECRET).await.unwrap();
    assert!(text(&secret, "admin.password").unwrap().starts_with("$2a$10$"));
    let mtime = text(&secret, "admin.passwordMtime").unwrap();
    assert!(mtime.parse::<k8s_openapi::jiff::Timestamp>().is_ok(), "{mtime}");
    let key = text(&secret, "server.secretkey").unwrap();
    assert_eq!(base64::engine::general_purpose::STANDARD.decode(key).unwrap().len(), 32);

    let sessions = SessionManager::new(boot.secret_key, boot.accounts);
    let token = sessions.login("admin", &printed).unwrap();
    assert_eq!(sessions.verify(&token).unwrap().account, "admin");
}

#[tokio::test]
async fn bootstrap_a_second_time_changes_nothing() {
    let (client, ns) = namespace("auth-idem").await;
    auth::bootstrap(&client, &ns).await.unwrap();
    let before = secret_data(&client, &ns, auth::ARGOCD_SECRET).await.unwrap();
    let initial_before = secret_data(&client, &ns, auth::INITIAL_ADMIN_SECRET).await.unwrap();

    let again = auth::bootstrap(&client, &ns).await.unwrap();
    assert!(again.written.is_empty(), "{:?}", again.written);
    assert!(!again.generated_admin_password);
    let after = secret_data(&client, &ns, auth::ARGOCD_SECRET).await.unwrap();
    let initial_after = secret_data(&client, &ns, auth::INITIAL_ADMIN_SECRET).await.unwrap();
    assert_eq!(before.metadata.resource_version, after.metadata.resource_version);
    assert_eq!(initial_before.metadata.resource_version, initial_after.metadata.resource_version);
}

#[tokio::test]
async fn bootstrap_keeps_a_password_the_user_set() {
    let (client, ns) = namespace("auth-keep").await;
    let hash = bcrypt::hash("user-chosen-1", 4).unwrap();
    let body = serde_json::json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": auth::ARGOCD_SECRET, "namespace": &ns},
        "stringData": {"admin.password": &hash, "webhook.github.secret": "other"}});
    Api::<Secret>::namespaced(client.clone(), &ns)
        .patch(auth::ARGOCD_SECRET, &PatchParams::apply("berth-test"), &Patch::Apply(&body))
        .await
        .unwrap();

    let boot = auth::bootstrap(&client, &ns).await.unwrap();
    assert_eq!(boot.written, ["admin.passwordMtime", "server.secretkey"]);
    assert!(!boot.generated_admin_password);
    let secret = secret_data(&client, &ns, auth::ARGOCD_SECRET).await.unwrap();
    assert_eq!(text(&secret, "admin.password").unwrap(), hash);
    assert_eq!(text(&secret, "webhook.github.secret").unwrap(), "other");
    assert!(secret_data(&client, &ns, auth::INITIAL_ADMIN_SECRET).await.is_none());
    let sessions = SessionManager::new(boot.secret_key, boot.accounts);
    assert!(sessions.login("admin", "user-chosen-1").is_ok());
}

#[tokio::test]
async fn bootstrap_generates_no_password_for_a_disabled_admin() {
    let (client, ns) = namespace("auth-noadmin").await;
    apply_config(&client, &ns, serde_json::json!({"admin.enabled": "false"})).await;
    let boot = auth::bootstrap(&client, &ns).await.unwrap();
    assert_eq!(boot.written, ["server.secretkey"]);
    assert!(secret_data(&client, &ns, auth::INITIAL_ADMIN_SECRET).await.is_none());
    assert!(!boot.accounts.get("admin").unwrap().enabled);
}

#[tokio::test]
async fn update_password_checks_the_current_one_and_invalidates_older_tokens() {
    let (client, ns) = namespace("auth-passwd").await;
    auth::bootstrap(&client, &ns).await.unwrap();
    let initial = initial_password(&client, &ns).await;
    let (key, accounts) = auth::load(&client, &ns).await.unwrap();
    // Issued a minute ago, so the password change is strictly later than the token.
    let earlier = Arc::new(ManualClock::new(SystemTime::now() - Duration::from_secs(60)));
    let old_sessions = SessionManager::new(key, accounts).with_clock(earlier);
    let old = old_sessions.login("admin", &initial).unwrap();

    let wrong = auth::update_password(&client, &ns, "admin", "not-it", "brand-new-pass").await.unwrap_err();
    assert!(matches!(wrong, AuthError::WrongCurrentPassword), "{wrong}");
    let weak = auth::update_password(&client, &ns, "admin", &initial, "short").await.unwrap_err();
    assert!(matches!(weak, AuthError::WeakPassword(_)), "{weak}");
    assert!(!weak.to_string().contains("short"), "{weak}");

    let before = secret_data(&client, &ns, auth::ARGOCD_SECRET).await.unwrap();
    auth::update_password(&client, &ns, "admin", &initial, "brand-new-pass").await.unwrap();
    let after = secret_data(&client, &ns, auth::ARGOCD_SECRET).await.unwrap();
    assert_ne!(text(&before, "admin.password"), text(&after, "admin.password"));
    assert_eq!(text(&before, "server.secretkey"), text(&after, "server.secretkey"));

    let sessions = sessions(&client, &ns).await;
    let err = sessions.verify(&old).unwrap_err();
    assert!(matches!(err, AuthError::PasswordChangedSinceIssued), "{err}");
    assert!(matches!(sessions.login("admin", &initial), Err(AuthError::InvalidLogin)));
    let fresh = sessions.login("admin", "brand-new-pass").unwrap();
    assert!(sessions.verify(&fresh).is_ok());

    // A restart must not bring the initial password back.
    assert!(auth::bootstrap(&client, &ns).await.unwrap().written.is_empty());
}

#[tokio::test]
async fn local_accounts_get_passwords_and_api_tokens_in_argocd_secret() {
    let (client, ns) = namespace("auth-local").await;
    apply_config(
        &client,
        &ns,
        serde_json::json!({"accounts.alice": "apiKey, login", "accounts.ci": "apiKey"}),
    )
    .await;
    auth::bootstrap(&client, &ns).await.unwrap();

    auth::set_password(&client, &ns, "alice", "alice-pass-1").await.unwrap();
    let secret = secret_data(&client, &ns, auth::ARGOCD_SECRET).await.unwrap();
    assert!(text(&secret, "accounts.alice.password").unwrap().starts_with("$2a$10$"));
    assert!(text(&secret, "accounts.alice.passwordMtime").is_some());
    let sessions = sessions(&client, &ns).await;
    let login = sessions.login("alice", "alice-pass-1").unwrap();
    assert_eq!(sessions.verify(&login).unwrap().capability, Capability::Login);

    let issued = sessions.generate_token("ci", Some(Duration::from_secs(3600)), Some("deploy")).unwrap();
    assert!(matches!(sessions.verify(&issued.token), Err(AuthError::TokenNotFound { .. })));
    auth::add_api_token(&client, &ns, "ci", &issued.record).await.unwrap();
    let stored =
        text(&secret_data(&client, &ns, auth::ARGOCD_SECRET).await.unwrap(), "accounts.ci.tokens").unwrap();
    let listed: serde_json::Value = serde_json::from_str(&stored).unwrap();
    assert_eq!(listed[0]["id"], "deploy");
    assert_eq!(listed[0]["exp"].as_i64().unwrap() - listed[0]["iat"].as_i64().unwrap(), 3600);
    let again = auth::add_api_token(&client, &ns, "ci", &issued.record).await.unwrap_err();
    assert!(matches!(again, AuthError::TokenIdExists(_)), "{again}");

    reload(&sessions, &client, &ns).await;
    let claims = sessions.verify(&issued.token).unwrap();
    assert_eq!((claims.account.as_str(), claims.subject.as_str()), ("ci", "ci:apiKey"));

    assert!(auth::delete_api_token(&client, &ns, "ci", "deploy").await.unwrap());
    assert!(!auth::delete_api_token(&client, &ns, "ci", "deploy").await.unwrap());
    reload(&sessions, &client, &ns).await;
    assert!(matches!(sessions.verify(&issued.token), Err(AuthError::TokenNotFound { .. })));
}

#[tokio::test]
async fn writes_to_undeclared_accounts_are_refused() {
    let (client, ns) = namespace("auth-ghost").await;
    auth::bootstrap(&client, &ns).await.unwrap();
    let err = auth::set_password(&client, &ns, "ghost", "whatever-123").await.unwrap_err();
    assert!(matches!(err, AuthError::AccountNotFound(_)), "{err}");
    let record = auth::ApiToken { id: "x".into(), issued_at: 1, expires_at: None };
    let err = auth::add_api_token(&client, &ns, "admin", &record).await.unwrap_err();
    assert_eq!(err.to_string(), "account admin does not have 'apiKey' capability");
    let err = auth::set_password(&client, &ns, "admin.password", "whatever-123").await.unwrap_err();
    assert!(matches!(err, AuthError::AccountNotFound(_)), "{err}");
}

#[tokio::test]
async fn a_logout_on_one_replica_is_refused_by_the_other() {
    let (client, ns) = namespace("auth-replicas").await;
    let a = common::start(&client, &ns).await;
    let b = common::start(&client, &ns).await;
    let token = common::token(&a.base, "admin", &common::admin_password(&client, &ns).await).await;
    let on = |server: &common::Server| format!("{}/api/v1/applications", server.base);
    let get = reqwest::Method::GET;
    assert_eq!(common::call(get.clone(), &on(&b), &token, None).await.0, 200, "valid on both before");

    let (status, _) =
        common::call(reqwest::Method::DELETE, &format!("{}/api/v1/session", a.base), &token, None).await;
    assert_eq!(status, 200);
    assert_eq!(common::call(get.clone(), &on(&a), &token, None).await.0, 401);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (status, _) = common::call(get.clone(), &on(&b), &token, None).await;
        if status == 401 {
            break;
        }
        assert_eq!(status, 200);
        assert!(tokio::time::Instant::now() < deadline, "replica B still takes the logged-out token");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The Secret names the token by its id only.
    let shared = secret_data(&client, &ns, auth::revocations::REVOKED_SESSIONS_SECRET).await.unwrap();
    let labels = shared.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get("app.kubernetes.io/part-of").map(String::as_str), Some("argocd"));
    let payload = token.split('.').nth(1).unwrap();
    let claims: serde_json::Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap())
            .unwrap();
    let id = claims["jti"].as_str().unwrap();
    let data = shared.data.clone().unwrap_or_default();
    assert_eq!(data.keys().collect::<Vec<_>>(), [id]);
    assert_eq!(text(&shared, id).unwrap(), claims["exp"].to_string());
    let stored = serde_json::to_string(&shared).unwrap();
    assert!(!stored.contains(&token) && !stored.contains(payload), "the Secret holds no token");
}
