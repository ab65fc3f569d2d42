//! Issue 12's attacks on the API server, run against the real local cluster, each asserting that it fails
//! and that no secret reaches an answer: client-written `status` and `operation`, upsert over another
//! project's app, cookie-only bodyless requests (CSRF), the session cookie over HTTPS, large bodies, framing
//! headers, 403 for unknown and forbidden apps alike, `/metrics` off the API port, streams after logout and
//! slow clients.

use base64::Engine;
use berth_testkit::*;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, Patch, PatchParams};
use reqwest::Method;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod common;
use common::*;

/// What a tenant may do: get, create and update team-b's applications; never sync, nothing in team-a.
const TENANT_POLICY: &str = "p, tenant, applications, get, team-b/*, allow\n\
                             p, tenant, applications, create, team-b/*, allow\n\
                             p, tenant, applications, update, team-b/*, allow\n";

struct Fixture {
    client: kube::Client,
    ns: String,
    server: Server,
    admin: String,
    tenant: String,
    /// Secret values that must never appear in an answer (raw and base64).
    secrets: Vec<String>,
}

impl Fixture {
    async fn new(prefix: &str) -> Fixture {
        let client = client().await;
        install_crds(&client).await;
        let ns = unique(prefix);
        ensure_namespace(&client, &ns).await;
        let maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
        for (name, data) in [
            ("argocd-cm", serde_json::json!({"accounts.tenant": "login"})),
            ("argocd-rbac-cm", serde_json::json!({"policy.csv": TENANT_POLICY})),
        ] {
            let body = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": ns}, "data": data});
            maps.patch(name, &PatchParams::apply("berth-test"), &Patch::Apply(&body)).await.unwrap();
        }
        berth_server::auth::bootstrap(&client, &ns).await.unwrap();
        berth_server::auth::set_password(&client, &ns, "tenant", "tenant-pass-123").await.unwrap();
        // A canary among argocd-secret's keys, beside the signing key the attack was after.
        let canary = format!("canary-{}", unique("value"));
        let secrets_api: Api<Secret> = Api::namespaced(client.clone(), &ns);
        let patch = serde_json::json!({"stringData": {"canary.key": canary}});
        secrets_api.patch("argocd-secret", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
        let stored = secrets_api.get("argocd-secret").await.unwrap().data.unwrap();
        let mut secrets = Vec::new();
        for key in ["server.secretkey", "canary.key"] {
            let bytes = &stored[key].0;
            secrets.push(String::from_utf8_lossy(bytes).into_owned());
            secrets.push(base64::engine::general_purpose::STANDARD.encode(bytes));
        }
        let server = start(&client, &ns).await;
        let admin = token(&server.base, "admin", &admin_password(&client, &ns).await).await;
        let tenant = token(&server.base, "tenant", "tenant-pass-123").await;
        Fixture { client, ns, server, admin, tenant, secrets }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.base)
    }

    /// A request with a bearer token; the answer's status and body, checked for secrets.
    async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, String) {
        let mut request = reqwest::Client::new().request(method, self.url(path)).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        self.assert_no_secret(&text);
        (status, text)
    }

    fn assert_no_secret(&self, text: &str) {
        for secret in &self.secrets {
            assert!(!text.contains(secret.as_str()), "a secret value leaked into an answer: {text}");
        }
    }

    async fn stored_app(&self, name: &str) -> serde_json::Value {
        let apps: Api<berth_api::Application> = Api::namespaced(self.client.clone(), &self.ns);
        serde_json::to_value(apps.get(name).await.unwrap()).unwrap()
    }

    /// Waits until the server's watch has `name` (its routes read the watch).
    async fn seen(&self, name: &str) {
        poll(&format!("the server to see {name}"), Duration::from_secs(30), || async {
            self.call(Method::GET, &format!("/api/v1/applications/{name}"), &self.admin, None).await.0 == 200
        })
        .await;
    }
}

fn app(name: &str, project: &str, destination: &str) -> serde_json::Value {
    serde_json::json!({
        "metadata": {"name": name},
        "spec": {"project": project,
                 "source": {"repoURL": "https://example.com/repo.git", "path": name, "targetRevision": "main"},
                 "destination": {"server": "https://kubernetes.default.svc", "namespace": destination}}
    })
}

#[tokio::test]
async fn client_written_status_never_reveals_a_secret_through_the_resource_routes() {
    let fx = Fixture::new("sec-status").await;
    let dest = unique("sec-status-dest");
    ensure_namespace(&fx.client, &dest).await;
    // The attack: an app whose status claims argocd-secret (lower-case kind to dodge masking).
    let mut evil = app("evil", "team-b", &dest);
    evil["status"] = serde_json::json!({"resources": [
        {"version": "v1", "kind": "secret", "namespace": fx.ns, "name": "argocd-secret"},
        {"version": "v1", "kind": "Secret", "namespace": fx.ns, "name": "argocd-secret"}]});
    let (status, text) = fx.call(Method::POST, "/api/v1/applications", &fx.tenant, Some(evil)).await;
    assert_eq!(status, 200, "{text}");
    let stored = fx.stored_app("evil").await;
    assert!(stored["status"]["resources"].as_array().is_none_or(|r| r.is_empty()), "{stored}");
    fx.seen("evil").await;
    let query = |kind: &str, ns: &str, name: &str| {
        format!(
            "/api/v1/applications/evil/resource?namespace={ns}&resourceName={name}&version=v1&kind={kind}"
        )
    };
    for kind in ["secret", "Secret", "SECRET"] {
        let (status, _) = fx.call(Method::GET, &query(kind, &fx.ns, "argocd-secret"), &fx.tenant, None).await;
        assert!(status == 404 || status == 403, "kind {kind}: {status}");
        let (status, _) = fx.call(Method::GET, &query(kind, &fx.ns, "argocd-secret"), &fx.admin, None).await;
        assert!(status == 404 || status == 403, "kind {kind} as admin: {status}");
    }
    // Even with status written straight to the cluster (bypassing the API), the live object decides.
    let apps: Api<berth_api::Application> = Api::namespaced(fx.client.clone(), &fx.ns);
    let claim = serde_json::json!({"status": {"resources": [
        {"version": "v1", "kind": "Secret", "namespace": fx.ns, "name": "argocd-secret"}]}});
    apps.patch("evil", &PatchParams::default(), &Patch::Merge(&claim)).await.unwrap();
    let (status, tree) =
        fx.call(Method::GET, "/api/v1/applications/evil/resource-tree", &fx.tenant, None).await;
    assert_eq!(status, 200, "{tree}");
    assert!(!tree.contains("argocd-secret"), "{tree}");
    let events =
        format!("/api/v1/applications/evil/events?resourceNamespace={}&resourceName=argocd-secret", fx.ns);
    assert_eq!(fx.call(Method::GET, &events, &fx.tenant, None).await.0, 404);
    let (status, _) = fx.call(Method::GET, &query("Secret", &fx.ns, "argocd-secret"), &fx.tenant, None).await;
    assert_eq!(status, 404);

    // A Secret the app really manages is shown masked, found only by its real kind; a copy of its
    // tracking id on another Secret claims nothing.
    let canary = fx.secrets[2].clone();
    let secrets: Api<Secret> = Api::namespaced(fx.client.clone(), &dest);
    let tracked = |name: &str, id: &str| {
        serde_json::json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": dest, "annotations": {
                "argocd.argoproj.io/tracking-id": id,
                "kubectl.kubernetes.io/last-applied-configuration": format!("{{\"stringData\":{{\"k\":\"{canary}\"}}}}")}},
            "stringData": {"k": canary}})
    };
    let id = format!("evil:/Secret:{dest}/app-creds");
    secrets
        .patch("app-creds", &PatchParams::apply("berth-test"), &Patch::Apply(&tracked("app-creds", &id)))
        .await
        .unwrap();
    secrets
        .patch("copied", &PatchParams::apply("berth-test"), &Patch::Apply(&tracked("copied", &id)))
        .await
        .unwrap();
    let (status, body) = fx.call(Method::GET, &query("Secret", &dest, "app-creds"), &fx.tenant, None).await;
    assert_eq!(status, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    let manifest: serde_json::Value = serde_json::from_str(answer["manifest"].as_str().unwrap()).unwrap();
    assert_eq!(manifest["data"]["k"], "++++++++", "{manifest}");
    assert!(
        manifest["metadata"]["annotations"].get("kubectl.kubernetes.io/last-applied-configuration").is_none()
    );
    assert_eq!(fx.call(Method::GET, &query("secret", &dest, "app-creds"), &fx.tenant, None).await.0, 404);
    assert_eq!(fx.call(Method::GET, &query("Secret", &dest, "copied"), &fx.tenant, None).await.0, 404);
}

#[tokio::test]
async fn create_update_and_patch_never_start_an_operation() {
    let fx = Fixture::new("sec-op").await;
    let mut sneaky = app("sneaky", "team-b", "team-b");
    sneaky["operation"] = serde_json::json!({"sync": {"revision": "main",
        "source": {"repoURL": "https://attacker.example/other.git", "path": "."}},
        "initiatedBy": {"username": "admin"}});
    let (status, text) =
        fx.call(Method::POST, "/api/v1/applications", &fx.tenant, Some(sneaky.clone())).await;
    assert_eq!(status, 200, "{text}");
    assert!(fx.stored_app("sneaky").await["operation"].is_null());
    fx.seen("sneaky").await;

    // PUT keeps the stored operation (none); PATCH touching /operation or /status is refused.
    let (status, text) = fx.call(Method::PUT, "/api/v1/applications/sneaky", &fx.tenant, Some(sneaky)).await;
    assert_eq!(status, 200, "{text}");
    assert!(fx.stored_app("sneaky").await["operation"].is_null());
    for (patch, patch_type) in [
        (serde_json::json!([{"op": "add", "path": "/operation", "value": {"sync": {}}}]), "json"),
        (serde_json::json!([{"op": "add", "path": "/status", "value": {"resources": []}}]), "json"),
        (serde_json::json!({"operation": {"sync": {}}}), "merge"),
    ] {
        let body = serde_json::json!({"patch": patch.to_string(), "patchType": patch_type});
        let (status, text) =
            fx.call(Method::PATCH, "/api/v1/applications/sneaky", &fx.tenant, Some(body)).await;
        assert_eq!(status, 400, "{patch}: {text}");
    }
    assert!(fx.stored_app("sneaky").await["operation"].is_null());
    // Operations come only from /sync, which needs `sync`.
    let (status, _) = fx
        .call(Method::POST, "/api/v1/applications/sneaky/sync", &fx.tenant, Some(serde_json::json!({})))
        .await;
    assert_eq!(status, 403);
    assert!(fx.stored_app("sneaky").await["operation"].is_null());
}

#[tokio::test]
async fn upsert_cannot_take_over_or_move_an_app_without_update_on_both_projects() {
    let fx = Fixture::new("sec-upsert").await;
    let (status, text) = fx
        .call(Method::POST, "/api/v1/applications", &fx.admin, Some(app("target", "team-a", "team-a")))
        .await;
    assert_eq!(status, 200, "{text}");
    let mut takeover = app("target", "team-b", "team-a");
    takeover["spec"]["source"]["repoURL"] = "https://attacker.example/x.git".into();
    let (status, _) =
        fx.call(Method::POST, "/api/v1/applications?upsert=true", &fx.tenant, Some(takeover)).await;
    assert_eq!(status, 403);
    let stored = fx.stored_app("target").await;
    assert_eq!(stored["spec"]["project"], "team-a");
    assert_eq!(stored["spec"]["source"]["repoURL"], "https://example.com/repo.git");

    // Upsert of the tenant's own app works, but cannot move it into a project the tenant may not update.
    let (status, text) =
        fx.call(Method::POST, "/api/v1/applications", &fx.tenant, Some(app("own", "team-b", "team-b"))).await;
    assert_eq!(status, 200, "{text}");
    let mut changed = app("own", "team-b", "team-b");
    changed["spec"]["source"]["path"] = "changed".into();
    changed["status"] = serde_json::json!({"resources": [{"kind": "Secret", "name": "argocd-secret"}]});
    let (status, text) =
        fx.call(Method::POST, "/api/v1/applications?upsert=true", &fx.tenant, Some(changed)).await;
    assert_eq!(status, 200, "{text}");
    let stored = fx.stored_app("own").await;
    assert_eq!(stored["spec"]["source"]["path"], "changed");
    assert!(stored["status"]["resources"].as_array().is_none_or(|r| r.is_empty()), "{stored}");
    let (status, _) = fx
        .call(
            Method::POST,
            "/api/v1/applications?upsert=true",
            &fx.tenant,
            Some(app("own", "team-a", "team-a")),
        )
        .await;
    assert_eq!(status, 403);
    assert_eq!(fx.stored_app("own").await["spec"]["project"], "team-b");
}

#[tokio::test]
async fn cookie_only_requests_that_change_state_must_be_json() {
    let fx = Fixture::new("sec-csrf").await;
    let (status, text) =
        fx.call(Method::POST, "/api/v1/applications", &fx.admin, Some(app("web", "default", "web"))).await;
    assert_eq!(status, 200, "{text}");
    fx.seen("web").await;
    let login = login(&fx.server.base, "admin", &admin_password(&fx.client, &fx.ns).await).await;
    let set_cookie = login.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"), "{set_cookie}");
    assert!(!set_cookie.contains("Secure"), "plain HTTP: {set_cookie}");
    let cookie = set_cookie.split(';').next().unwrap().to_string();
    let http = reqwest::Client::new();
    let sync = fx.url("/api/v1/applications/web/sync");

    // What a form or an image on another site can send: no body, or a non-JSON one.
    let bodyless = http.post(&sync).header("Cookie", &cookie).send().await.unwrap();
    assert_eq!(bodyless.status().as_u16(), 415);
    let form = http
        .post(&sync)
        .header("Cookie", &cookie)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("prune=true")
        .send()
        .await
        .unwrap();
    assert_eq!(form.status().as_u16(), 415);
    let delete =
        http.delete(fx.url("/api/v1/applications/web")).header("Cookie", &cookie).send().await.unwrap();
    assert_eq!(delete.status().as_u16(), 415);
    assert!(fx.stored_app("web").await["operation"].is_null());

    // The UI's requests (JSON content type) and the CLI's (bearer, bodyless) pass.
    let json = http
        .post(&sync)
        .header("Cookie", &cookie)
        .header("Content-Type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(json.status().as_u16(), 200);
    assert!(!fx.stored_app("web").await["operation"].is_null());
    let terminate = fx.url("/api/v1/applications/web/operation");
    let bearer = http.delete(&terminate).bearer_auth(&fx.admin).send().await.unwrap();
    assert_ne!(bearer.status().as_u16(), 415);
}

#[tokio::test]
async fn the_session_cookie_is_secure_over_https() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = client().await;
    install_crds(&client).await;
    let ns = unique("sec-tls");
    ensure_namespace(&client, &ns).await;
    berth_server::auth::bootstrap(&client, &ns).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = berth_server::api::ServerConfig {
        dex_server: None,
        namespace: ns.clone(),
        addr,
        insecure: false,
        metrics_on_api_port: false,
        controller: Default::default(),
        settings: None,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(berth_server::api::serve_listener(client.clone(), config, listener, async {
        let _ = stopped.await;
    }));
    let password = admin_password(&client, &ns).await;
    let body = serde_json::json!({"username": "admin", "password": password}).to_string();
    let request = format!(
        "POST /api/v1/session HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    // The server generates its certificate first: the login is retried until TLS answers.
    let deadline = Instant::now() + Duration::from_secs(30);
    let response = loop {
        if let Ok(text) = https_exchange(addr, request.as_bytes()).await {
            break text;
        }
        assert!(Instant::now() < deadline, "no HTTPS answer within 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let head = response.to_ascii_lowercase();
    let cookie = head.lines().find(|l| l.starts_with("set-cookie:")).unwrap_or_else(|| panic!("{response}"));
    assert!(cookie.contains("; secure") && cookie.contains("httponly"), "{cookie}");
    assert!(head.contains("x-frame-options: sameorigin"), "{response}");
    let _ = stop.send(());
}

/// One request over TLS, trusting any certificate (the test checks headers, not the certificate).
async fn https_exchange(addr: std::net::SocketAddr, request: &[u8]) -> Result<String, String> {
    #[derive(Debug)]
    struct AnyCertificate;
    impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
        fn verify_server_cert(
            &self,
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &[rustls::pki_types::CertificateDer<'_>],
            _: &rustls::pki_types::ServerName<'_>,
            _: &[u8],
            _: rustls::pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            _: &[u8],
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
        }
        fn verify_tls13_signature(
            &self,
            _: &[u8],
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            rustls::crypto::ring::default_provider().signature_verification_algorithms.supported_schemes()
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .dangerous()
    .with_custom_certificate_verifier(std::sync::Arc::new(AnyCertificate))
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.map_err(|e| e.to_string())?;
    tls.write_all(request).await.map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    let _ = tls.read_to_end(&mut response).await;
    Ok(String::from_utf8_lossy(&response).into_owned())
}

/// The resident memory of this process (the server runs in it), in bytes.
fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

/// POSTs a `size`-byte body to `path` over raw TCP (with `token`, if any), writing it while reading the
/// answer; the status.
async fn post_huge(addr: &str, path: &str, size: usize, token: Option<&str>) -> u16 {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Content-Type: application/json\r\nContent-Length: {size}\r\n\r\n"
    );
    let writer = tokio::spawn(async move {
        static CHUNK: [u8; 64 * 1024] = [b' '; 64 * 1024];
        write.write_all(head.as_bytes()).await?;
        let mut left = size;
        while left > 0 {
            let n = left.min(CHUNK.len());
            write.write_all(&CHUNK[..n]).await?;
            left -= n;
        }
        std::io::Result::Ok(())
    });
    let mut response = Vec::new();
    let mut buffer = [0u8; 4096];
    while !response.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = read.read(&mut buffer).await.unwrap();
        assert!(n > 0, "the connection closed without an answer");
        response.extend_from_slice(&buffer[..n]);
    }
    writer.abort();
    let text = String::from_utf8_lossy(&response);
    text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

#[tokio::test]
async fn large_bodies_are_refused_early_without_growing_memory() {
    let fx = Fixture::new("sec-body").await;
    let addr = fx.server.base.trim_start_matches("http://").to_string();
    let before = resident_bytes();
    let started = Instant::now();
    let logins: Vec<_> = (0..12)
        .map(|_| {
            let addr = addr.clone();
            tokio::spawn(async move { post_huge(&addr, "/api/v1/session", 48 * 1024 * 1024, None).await })
        })
        .collect();
    for login in logins {
        assert_eq!(login.await.unwrap(), 413);
    }
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
    let grown = resident_bytes().saturating_sub(before);
    assert!(grown < 96 * 1024 * 1024, "resident memory grew by {} MiB", grown / 1024 / 1024);

    // An application is larger than a login but still bounded; an anonymous client is refused before
    // its body is read; the webhook keeps argocd-cm's limit.
    assert_eq!(post_huge(&addr, "/api/v1/applications", 48 * 1024 * 1024, Some(&fx.admin)).await, 413);
    assert_eq!(post_huge(&addr, "/api/v1/applications", 48 * 1024 * 1024, None).await, 401);
    let maps: Api<ConfigMap> = Api::namespaced(fx.client.clone(), &fx.ns);
    let patch = serde_json::json!({"data": {"webhook.maxPayloadSizeMB": "1"}});
    maps.patch("argocd-cm", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    poll("argocd-cm's webhook limit taken", Duration::from_secs(30), || async {
        post_huge(&addr, "/api/webhook", 3 * 1024 * 1024, None).await == 413
    })
    .await;
}

#[tokio::test]
async fn every_answer_carries_frame_options_and_a_content_security_policy_from_argocd_cm() {
    let fx = Fixture::new("sec-frame").await;
    for path in ["/healthz", "/api/version", "/", "/applications/web", "/api/v1/applications", "/api/nothing"]
    {
        let response = reqwest::get(fx.url(path)).await.unwrap();
        let headers = response.headers();
        assert_eq!(headers["x-frame-options"], "sameorigin", "{path}");
        assert_eq!(headers["content-security-policy"], "frame-ancestors 'self';", "{path}");
    }
    let maps: Api<ConfigMap> = Api::namespaced(fx.client.clone(), &fx.ns);
    let patch = serde_json::json!({"data": {"server.x.frame.options": "deny",
        "server.content.security.policy": "frame-ancestors 'none';"}});
    maps.patch("argocd-cm", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    poll("argocd-cm's framing headers served", Duration::from_secs(30), || async {
        let response = reqwest::get(fx.url("/healthz")).await.unwrap();
        let headers = response.headers();
        headers.get("x-frame-options").is_some_and(|v| v == "deny")
            && headers.get("content-security-policy").is_some_and(|v| v == "frame-ancestors 'none';")
    })
    .await;
}

#[tokio::test]
async fn unknown_and_forbidden_apps_are_refused_alike_on_every_route() {
    let fx = Fixture::new("sec-enum").await;
    let (status, text) = fx
        .call(Method::POST, "/api/v1/applications", &fx.admin, Some(app("hidden", "team-a", "team-a")))
        .await;
    assert_eq!(status, 200, "{text}");
    fx.seen("hidden").await;
    let routes: Vec<(Method, &str, Option<serde_json::Value>)> = vec![
        (Method::GET, "", None),
        (Method::GET, "?refresh=normal", None),
        (Method::PUT, "", Some(app("x", "team-b", "team-b"))),
        (Method::PATCH, "", Some(serde_json::json!({"patch": "{}", "patchType": "merge"}))),
        (Method::DELETE, "", None),
        (Method::PUT, "/spec", Some(app("x", "team-b", "team-b")["spec"].clone())),
        (Method::GET, "/resource-tree", None),
        (Method::GET, "/managed-resources", None),
        (Method::GET, "/manifests", None),
        (Method::GET, "/events", None),
        (Method::GET, "/resource?namespace=team-a&resourceName=x&version=v1&kind=ConfigMap", None),
        (Method::GET, "/revisions/main/metadata", None),
        (Method::POST, "/sync", Some(serde_json::json!({}))),
        (Method::POST, "/rollback", Some(serde_json::json!({"id": 1}))),
        (Method::DELETE, "/operation", None),
    ];
    for (method, suffix, body) in routes {
        let hidden = fx
            .call(method.clone(), &format!("/api/v1/applications/hidden{suffix}"), &fx.tenant, body.clone())
            .await;
        let missing =
            fx.call(method.clone(), &format!("/api/v1/applications/missing{suffix}"), &fx.tenant, body).await;
        assert_eq!(hidden.0, 403, "{method} hidden{suffix}: {}", hidden.1);
        assert_eq!(hidden, missing, "{method} {suffix}");
    }
    assert_eq!(fx.stored_app("hidden").await["spec"]["project"], "team-a");
}

#[tokio::test]
async fn metrics_are_not_on_the_api_port_by_default() {
    let fx = Fixture::new("sec-metrics").await;
    let response = reqwest::get(fx.url("/metrics")).await.unwrap();
    assert_eq!(response.status().as_u16(), 404);
    let text = response.text().await.unwrap();
    assert!(!text.contains("argocd_app"), "{text}");
}

#[tokio::test]
async fn a_stream_ends_when_its_session_is_logged_out() {
    let fx = Fixture::new("sec-stream").await;
    let (status, text) =
        fx.call(Method::POST, "/api/v1/applications", &fx.admin, Some(app("web", "default", "web"))).await;
    assert_eq!(status, 200, "{text}");
    let password = admin_password(&fx.client, &fx.ns).await;
    let session = token(&fx.server.base, "admin", &password).await;
    let mut stream = reqwest::Client::new()
        .get(fx.url("/api/v1/stream/applications"))
        .bearer_auth(&session)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status().as_u16(), 200);
    let first = tokio::time::timeout(Duration::from_secs(30), stream.chunk()).await.unwrap().unwrap();
    assert!(first.is_some_and(|c| String::from_utf8_lossy(&c).contains("ADDED")));
    let (status, _) = fx.call(Method::DELETE, "/api/v1/session", &session, None).await;
    assert_eq!(status, 200);
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(Some(_)) = stream.chunk().await {}
    })
    .await;
    assert!(ended.is_ok(), "the stream still runs after logout");
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    let fx = Fixture::new("sec-slow").await;
    let addr = fx.server.base.trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    stream.write_all(b"GET /api/version HTTP/1.1\r\nHost: localhost\r\nX-Slow: 1").await.unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(
        berth_server::api::harden::HEADER_READ_TIMEOUT + Duration::from_secs(15),
        stream.read_to_end(&mut rest),
    )
    .await;
    assert!(closed.is_ok(), "still open after {:?}", started.elapsed());
    assert!(started.elapsed() >= berth_server::api::harden::HEADER_READ_TIMEOUT - Duration::from_secs(1));
}
