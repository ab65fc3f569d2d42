//! The test Dex itself: a headless login through each identity source ends in a code that the token
//! endpoint exchanges for an ID token with the user's claims.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use berth_testkit::dex::{self, Connector, Dex, DexOptions, StaticClient, StaticPassword};
use reqwest::Url;
use serde_json::Value;
use sha2::{Digest, Sha256};

const CLI: &str = "argo-cd-cli";
const CALLBACK: &str = "http://localhost:8085/auth/callback";
const VERIFIER: &str = "berth-test-verifier-0123456789abcdef0123456789abcdef0123456789";

/// `<issuer>/auth?…` for `client_id` with `scope`, state `state-1`, nonce `nonce-1` and, when given, a
/// PKCE S256 challenge of `verifier`.
fn authorize_url(dex: &Dex, client_id: &str, scope: &str, verifier: Option<&str>) -> String {
    let mut url = Url::parse(&dex.authorization_endpoint()).unwrap();
    url.query_pairs_mut()
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", CALLBACK)
        .append_pair("response_type", "code")
        .append_pair("scope", scope)
        .append_pair("state", "state-1")
        .append_pair("nonce", "nonce-1");
    if let Some(verifier) = verifier {
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        url.query_pairs_mut()
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
    }
    url.to_string()
}

/// The `code` of a redirect to [`CALLBACK`] carrying `state-1`.
fn code_of(callback: &Url) -> String {
    assert!(callback.as_str().starts_with(CALLBACK), "not the client's redirect: {}", callback.path());
    let param = |name: &str| callback.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned());
    assert_eq!(param("state").as_deref(), Some("state-1"));
    param("code").expect("the redirect carries a code")
}

/// Exchanges `code` at the token endpoint (with `secret` as HTTP basic auth when given) and returns the
/// ID token's claims, decoded (the signature is the server's to check, not this test's).
async fn id_token_claims(
    dex: &Dex,
    client_id: &str,
    secret: Option<&str>,
    code: &str,
    verifier: Option<&str>,
) -> Value {
    let mut form = vec![("grant_type", "authorization_code"), ("code", code), ("redirect_uri", CALLBACK)];
    if let Some(verifier) = verifier {
        form.push(("code_verifier", verifier));
    }
    let mut request = dex::http_client().post(dex.token_endpoint());
    request = match secret {
        Some(secret) => request.basic_auth(client_id, Some(secret)),
        None => {
            form.push(("client_id", client_id));
            request
        }
    };
    let response = request.form(&form).send().await.unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert!(status.is_success(), "the token endpoint answered {status}: {}", body["error"]);
    let id_token = body["id_token"].as_str().expect("an id_token");
    let payload = id_token.split('.').nth(1).expect("a JWT's payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

#[tokio::test]
async fn a_static_password_user_logs_in_with_pkce_and_gets_its_email_and_groups() {
    let dex = Dex::start(DexOptions {
        static_passwords: vec![
            StaticPassword::new("alice@example.com", "alice-pw").groups(&["admins", "devs"]),
        ],
        static_clients: vec![StaticClient::public(CLI, CALLBACK)],
        // A second connector: Dex shows its choice, where the login takes the password database.
        connectors: vec![Connector::MockCallback { id: "mock".into(), name: "Mock".into() }],
        ..DexOptions::default()
    })
    .await;
    let url = authorize_url(&dex, CLI, "openid profile email groups", Some(VERIFIER));
    let callback = dex::login(&dex::http_client(), &url, "alice@example.com", "alice-pw").await.unwrap();
    let claims = id_token_claims(&dex, CLI, None, &code_of(&callback), Some(VERIFIER)).await;
    assert_eq!(claims["iss"], dex.issuer());
    assert!(claims["aud"] == CLI || claims["aud"] == serde_json::json!([CLI]), "aud: {}", claims["aud"]);
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(claims["name"], "alice");
    assert_eq!(claims["nonce"], "nonce-1");
    assert_eq!(claims["groups"], serde_json::json!(["admins", "devs"]));
}

#[tokio::test]
async fn the_code_is_refused_without_the_pkce_verifier() {
    let dex = Dex::start(DexOptions {
        static_passwords: vec![StaticPassword::new("alice@example.com", "alice-pw")],
        static_clients: vec![StaticClient::public(CLI, CALLBACK)],
        ..DexOptions::default()
    })
    .await;
    let url = authorize_url(&dex, CLI, "openid email", Some(VERIFIER));
    let callback = dex::login(&dex::http_client(), &url, "alice@example.com", "alice-pw").await.unwrap();
    let form = [
        ("grant_type", "authorization_code"),
        ("code", &code_of(&callback)),
        ("redirect_uri", CALLBACK),
        ("client_id", CLI),
    ];
    let response = dex::http_client().post(dex.token_endpoint()).form(&form).send().await.unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_mock_callback_connector_logs_in_kilgore_trout_in_group_authors() {
    let dex = Dex::start(DexOptions {
        static_clients: vec![StaticClient::confidential("argo-cd", "client-secret", CALLBACK)],
        connectors: vec![Connector::MockCallback { id: "mock".into(), name: "Mock".into() }],
        ..DexOptions::default()
    })
    .await;
    let url = authorize_url(&dex, "argo-cd", "openid email groups", None);
    let callback = dex::login_without_password(&dex::http_client(), &url).await.unwrap();
    let claims = id_token_claims(&dex, "argo-cd", Some("client-secret"), &code_of(&callback), None).await;
    assert_eq!(claims["iss"], dex.issuer());
    assert_eq!(claims["email"], "kilgore@kilgore.trout");
    assert_eq!(claims["groups"], serde_json::json!(["authors"]));
}

#[tokio::test]
async fn the_mock_password_connector_is_chosen_by_connector_id_and_gives_no_groups() {
    let dex = Dex::start(DexOptions {
        static_clients: vec![StaticClient::public(CLI, CALLBACK)],
        connectors: vec![Connector::MockPassword {
            id: "mockpw".into(),
            name: "Mock password".into(),
            username: "kilgore".into(),
            password: "kilgore-pw".into(),
        }],
        ..DexOptions::default()
    })
    .await;
    let url =
        format!("{}&connector_id=mockpw", authorize_url(&dex, CLI, "openid email groups", Some(VERIFIER)));
    let callback = dex::login(&dex::http_client(), &url, "kilgore", "kilgore-pw").await.unwrap();
    let claims = id_token_claims(&dex, CLI, None, &code_of(&callback), Some(VERIFIER)).await;
    assert_eq!(claims["email"], "kilgore@kilgore.trout");
    assert!(
        claims.get("groups").is_none_or(|g| g.as_array().is_some_and(Vec::is_empty)),
        "groups: {}",
        claims["groups"]
    );
}

#[tokio::test]
async fn a_wrong_password_is_an_error_that_does_not_show_the_password() {
    let dex = Dex::start(DexOptions {
        static_passwords: vec![StaticPassword::new("alice@example.com", "alice-pw")],
        static_clients: vec![StaticClient::public(CLI, CALLBACK)],
        ..DexOptions::default()
    })
    .await;
    let url = authorize_url(&dex, CLI, "openid email", Some(VERIFIER));
    let error = dex::login(&dex::http_client(), &url, "alice@example.com", "not-alices").await.unwrap_err();
    let message = error.to_string();
    assert!(message.contains("refused the login of alice@example.com"), "{message}");
    assert!(!message.contains("not-alices"), "{message}");
}

#[tokio::test]
async fn a_complete_configuration_serves_its_own_issuer() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let issuer = format!("http://127.0.0.1:{port}/api/dex");
    let config = format!(
        "issuer: {issuer}\nstorage:\n  type: memory\nweb:\n  http: 127.0.0.1:{port}\n\
         oauth2:\n  skipApprovalScreen: true\nstaticClients:\n- id: {CLI}\n  public: true\n  name: CLI\n  \
         redirectURIs: ['{CALLBACK}']\nconnectors:\n- type: mockCallback\n  id: mock\n  name: Mock\n"
    );
    let dex = Dex::start_with_config(&config).await;
    assert_eq!(dex.issuer(), issuer);
    let url = authorize_url(&dex, CLI, "openid email groups", Some(VERIFIER));
    let callback = dex::login_without_password(&dex::http_client(), &url).await.unwrap();
    let claims = id_token_claims(&dex, CLI, None, &code_of(&callback), Some(VERIFIER)).await;
    assert_eq!(claims["iss"], issuer);
}

#[tokio::test]
async fn an_issuer_given_with_a_listen_address_is_served_there_under_its_path() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let issuer = format!("http://localhost:{port}/api/dex");
    let dex = Dex::start(DexOptions {
        issuer: Some(issuer.clone()),
        listen: Some(([127, 0, 0, 1], port).into()),
        ..DexOptions::default()
    })
    .await;
    assert_eq!(dex.issuer(), issuer);
    let discovery = format!("http://127.0.0.1:{port}/api/dex/.well-known/openid-configuration");
    let document: Value = dex::http_client().get(discovery).send().await.unwrap().json().await.unwrap();
    assert_eq!(document["issuer"], issuer);
    assert_eq!(document["token_endpoint"], dex.token_endpoint());
}

/// hack/deps patches this Dex's refresh grant: unpatched, with memory storage, it deadlocks refreshing a
/// password-database login (the offline session is read under the refresh token's own lock).
#[tokio::test]
async fn a_password_login_refreshes_twice_without_hanging() {
    let dex = Dex::start(DexOptions {
        static_passwords: vec![StaticPassword::new("alice@example.com", "alice-pw").groups(&["devs"])],
        static_clients: vec![StaticClient::public(CLI, CALLBACK)],
        ..DexOptions::default()
    })
    .await;
    let url = authorize_url(&dex, CLI, "openid email groups offline_access", Some(VERIFIER));
    let callback = dex::login(&dex::http_client(), &url, "alice@example.com", "alice-pw").await.unwrap();
    let code = code_of(&callback);
    let http = dex::http_client();
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", CALLBACK),
        ("code_verifier", VERIFIER),
        ("client_id", CLI),
    ];
    let tokens: Value =
        http.post(dex.token_endpoint()).form(&form).send().await.unwrap().json().await.unwrap();
    let mut refresh = tokens["refresh_token"].as_str().expect("a refresh token (offline_access)").to_string();
    for round in 0..2 {
        let form = [("grant_type", "refresh_token"), ("refresh_token", refresh.as_str()), ("client_id", CLI)];
        let answer = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            http.post(dex.token_endpoint()).form(&form).send(),
        )
        .await
        .unwrap_or_else(|_| panic!("refresh {round} hung: Dex's refresh grant is unpatched"))
        .unwrap();
        assert!(answer.status().is_success(), "refresh {round}: {}", answer.status());
        let tokens: Value = answer.json().await.unwrap();
        assert!(tokens["id_token"].as_str().is_some_and(|t| !t.is_empty()));
        refresh = tokens["refresh_token"].as_str().unwrap().to_string();
    }
}
