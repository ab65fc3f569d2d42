//! `berth login --sso` end to end: the built binary against the real berth server (in-process, its argocd-cm
//! naming a real Dex in `oidc.config`) and that Dex, the browser's part driven headlessly through Dex's login
//! form. Then the saved session: `berth account get-user-info`, and its renewal with the refresh token.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use berth_testkit::dex::{self, Connector, Dex, DexOptions, StaticClient, StaticPassword};
use berth_testkit::*;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt as _, BufReader};

mod common;
use common::*;

const EMAIL: &str = "alice@example.com";
const PASSWORD: &str = "alice-Passw0rd";

/// A port that was free a moment ago: the CLI's callback port, which Dex must know beforehand.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The claims of a JWT (the test reads what the CLI saved; the server checks signatures).
fn claims(token: &str) -> serde_json::Value {
    let payload = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url")).expect("JSON claims")
}

fn saved_context(cli: &Cli) -> serde_json::Value {
    let config: serde_json::Value =
        serde_saphyr::from_str(&std::fs::read_to_string(cli.config_file()).unwrap()).unwrap();
    config["contexts"][0].clone()
}

/// A namespace whose argocd-cm names `dex` as the OIDC provider, with `argo-cd-cli` as the CLI's client.
async fn namespace_with_sso(dex: &Dex) -> (kube::Client, String) {
    let client = client().await;
    install_crds(&client).await;
    let ns = unique("cli-sso");
    ensure_namespace(&client, &ns).await;
    let oidc = format!(
        "name: Dex\nissuer: {}\nclientID: argo-cd\nclientSecret: not-used-by-the-cli\ncliClientID: argo-cd-cli\n\
         requestedScopes: [openid, profile, email, groups, offline_access]\n",
        dex.issuer()
    );
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let body = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "argocd-cm", "namespace": ns},
        "data": {"url": "https://berth.example.com", "oidc.config": oidc}});
    maps.patch("argocd-cm", &PatchParams::apply("berth-test"), &Patch::Apply(&body)).await.unwrap();
    berth_server::auth::bootstrap(&client, &ns).await.unwrap();
    (client, ns)
}

/// `berth login ADDRESS --sso` running, its stderr read line by line.
struct SsoLogin {
    child: tokio::process::Child,
    stderr: tokio::io::Lines<BufReader<tokio::process::ChildStderr>>,
    seen: String,
}

impl SsoLogin {
    fn start(cli: &Cli, address: &str, port: u16) -> SsoLogin {
        let port = port.to_string();
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_berth"))
            .args([
                "login",
                address,
                "--plaintext",
                "--sso",
                "--sso-launch-browser=false",
                "--sso-port",
                &port,
            ])
            .arg("--config")
            .arg(cli.config_file())
            .env_remove("BERTH_SERVER")
            .env_remove("BERTH_AUTH_TOKEN")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("berth runs");
        let stderr = BufReader::new(child.stderr.take().unwrap()).lines();
        SsoLogin { child, stderr, seen: String::new() }
    }

    /// The authorization URL the CLI prints for the browser.
    async fn authorization_url(&mut self) -> String {
        let prefix = "Performing authorization_code flow login: ";
        let read = async {
            while let Some(line) = self.stderr.next_line().await.unwrap() {
                self.seen.push_str(&line);
                self.seen.push('\n');
                if let Some(url) = line.strip_prefix(prefix) {
                    return url.to_string();
                }
            }
            panic!("berth login ended without printing the URL; stderr:\n{}", self.seen);
        };
        tokio::time::timeout(Duration::from_secs(60), read).await.expect("the URL within 60 s")
    }

    /// Waits for the CLI to exit: its code, stdout and the rest of its stderr.
    async fn finish(mut self) -> Run {
        let mut stdout = String::new();
        let mut out = self.child.stdout.take().unwrap();
        let wait = async {
            tokio::io::AsyncReadExt::read_to_string(&mut out, &mut stdout).await.unwrap();
            while let Some(line) = self.stderr.next_line().await.unwrap() {
                self.seen.push_str(&line);
                self.seen.push('\n');
            }
            self.child.wait().await.unwrap()
        };
        let status = tokio::time::timeout(Duration::from_secs(60), wait).await.expect("berth login ends");
        Run { code: status.code().unwrap_or(-1), stdout, stderr: self.seen }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sso_login_through_dex_saves_the_id_token_and_renews_it_with_the_refresh_token() {
    // reqwest is built without a bundled TLS provider (as the CLI is): ring, as the CLI installs it.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let port = free_port();
    let dex = Dex::start(DexOptions {
        static_passwords: vec![StaticPassword::new(EMAIL, PASSWORD).groups(&["admins", "dev"])],
        static_clients: vec![StaticClient::public(
            "argo-cd-cli",
            &format!("http://localhost:{port}/auth/callback"),
        )],
        connectors: vec![Connector::MockCallback { id: "mock".into(), name: "Mock".into() }],
        ..DexOptions::default()
    })
    .await;
    let (client, ns) = namespace_with_sso(&dex).await;
    let server = start_server(&client, &ns).await;
    let cli = Cli::new();

    let mut login = SsoLogin::start(&cli, &server.address, port);
    let url = login.authorization_url().await;
    let http = dex::http_client();

    // A callback of another login is refused with a page saying so; the CLI keeps waiting for its own.
    let forged = http
        .get(format!("http://127.0.0.1:{port}/auth/callback?code=forged&state=not-this-login"))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status().as_u16(), 400);
    assert!(forged.text().await.unwrap().contains("state does not match"));
    let elsewhere = http.get(format!("http://127.0.0.1:{port}/")).send().await.unwrap();
    assert_eq!(elsewhere.status().as_u16(), 404, "the loopback server serves only /auth/callback");

    let callback = match dex::login(&http, &url, EMAIL, PASSWORD).await {
        Ok(callback) => callback,
        Err(e) => panic!("{e}; Dex's log:\n{}", dex.log()),
    };
    assert_eq!(callback.path(), "/auth/callback");
    let page = http.get(callback).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.text().await.unwrap().contains("Authentication successful, you may close this window"));

    let run = login.finish().await.ok();
    assert_eq!(
        run.stdout,
        format!("'{EMAIL}' logged in successfully\nContext '{}' updated\n", server.address)
    );
    assert!(run.stderr.contains("refused a callback whose state does not match"), "{}", run.stderr);
    let context = saved_context(&cli);
    let token = context["token"].as_str().expect("the ID token is saved").to_string();
    let refresh = context["refresh-token"].as_str().expect("the refresh token is saved").to_string();
    assert!(!run.stdout.contains(&token) && !run.stderr.contains(&token), "the token is never printed");
    assert!(!run.stderr.contains(&refresh), "the refresh token is never printed");
    let id = claims(&token);
    assert_eq!(id["iss"], dex.issuer());
    assert_eq!(id["aud"], "argo-cd-cli");
    assert_eq!(id["email"], EMAIL);

    // The server takes the ID token as the session.
    let run = cli.run(&["account", "get-user-info"]).await.ok();
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines[0], "Logged In: true", "{}", run.stdout);
    assert!(lines[1].starts_with("Username: ") && lines[1].len() > "Username: ".len(), "{}", run.stdout);
    assert_eq!(lines[2], format!("Issuer: {}", dex.issuer()));
    assert_eq!(lines[3], "Groups: admins,dev");
    let run = cli.run(&["account", "get-user-info", "-o", "json"]).await.ok();
    let info: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!((info["loggedIn"].as_bool(), info["iss"].as_str()), (Some(true), Some(dex.issuer())));

    // A token the server refuses (401) is renewed at Dex with the refresh token, saved, and the call retried.
    // Renewals log in through the mockCallback connector, once a login: this Dex (memory storage) deadlocks
    // on a refresh whose connector data is empty (the password database's, or any second refresh), as it
    // reads the offline session inside its refresh-token transaction.
    login_through_mock(&cli, &server.address, port, &dex).await;
    let before = saved_context(&cli)["token"].as_str().unwrap().to_string();
    let (head, _) = before.rsplit_once('.').unwrap();
    save_token(&cli, &format!("{head}.{}", URL_SAFE_NO_PAD.encode(b"not the signature")), true);
    let run = cli.run(&["app", "list"]).await;
    assert_eq!(run.code, 0, "{run:?}\nDex's log:\n{}", dex.log());
    assert!(run.stdout.starts_with("NAME"), "{}", run.stdout);
    let renewed = saved_context(&cli);
    let renewed_token = renewed["token"].as_str().unwrap();
    assert!(!renewed_token.starts_with(head), "a new ID token is saved");
    assert_eq!(claims(renewed_token)["iss"], dex.issuer());
    assert!(renewed["refresh-token"].as_str().is_some(), "the refresh token Dex answered is kept");

    // An ID token past its `exp` is renewed before it is sent.
    login_through_mock(&cli, &server.address, port, &dex).await;
    let expired = format!(
        "{}.{}.c2ln",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256"}"#),
        URL_SAFE_NO_PAD.encode(serde_json::json!({"iss": dex.issuer(), "exp": 1}).to_string())
    );
    save_token(&cli, &expired, true);
    let run = cli.run(&["account", "get-user-info"]).await;
    assert_eq!(run.code, 0, "{run:?}\nDex's log:\n{}", dex.log());
    assert!(run.stdout.starts_with("Logged In: true\nUsername: "), "{}", run.stdout);
    let renewed = saved_context(&cli)["token"].as_str().unwrap().to_string();
    assert!(claims(&renewed)["exp"].as_i64().unwrap() > 1, "a new ID token is saved");

    // Without a refresh token the session cannot renew: the usual "log in again".
    save_token(&cli, &expired, false);
    let run = cli.run(&["app", "list"]).await.failed();
    assert!(run.stderr.contains(&format!("run `berth login {}`", server.address)), "{}", run.stderr);
}

/// `berth login --sso` completed through Dex's `mockCallback` connector (no prompt); it must succeed.
async fn login_through_mock(cli: &Cli, address: &str, port: u16, dex: &Dex) {
    let mut login = SsoLogin::start(cli, address, port);
    let url = login.authorization_url().await;
    let http = dex::http_client();
    let callback = match dex::login_without_password(&http, &url).await {
        Ok(callback) => callback,
        Err(e) => panic!("{e}; Dex's log:\n{}", dex.log()),
    };
    assert_eq!(http.get(callback).send().await.unwrap().status().as_u16(), 200);
    let run = login.finish().await.ok();
    assert_eq!(run.stdout.lines().next(), Some("'kilgore@kilgore.trout' logged in successfully"));
}

/// Replaces the saved ID token (as if it had expired or been revoked), keeping the refresh token or not.
fn save_token(cli: &Cli, token: &str, keep_refresh_token: bool) {
    let mut config: serde_json::Value =
        serde_saphyr::from_str(&std::fs::read_to_string(cli.config_file()).unwrap()).unwrap();
    config["contexts"][0]["token"] = token.into();
    if !keep_refresh_token {
        config["contexts"][0].as_object_mut().unwrap().remove("refresh-token");
    }
    std::fs::write(cli.config_file(), serde_saphyr::to_string(&config).unwrap()).unwrap();
}

#[tokio::test]
async fn berth_dex_gendexcfg_writes_dexs_configuration_from_dex_config_for_its_owner_only() {
    let client = client().await;
    let ns = unique("cli-dexcfg");
    ensure_namespace(&client, &ns).await;
    berth_server::auth::bootstrap(&client, &ns).await.unwrap();
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), &ns);
    secrets
        .patch(
            "argocd-secret",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"stringData": {"dex.github.clientSecret": "gh-secret-value"}})),
        )
        .await
        .unwrap();
    let dex_config = "connectors:\n- type: github\n  id: github\n  name: GitHub\n  config:\n    clientID: abc\n    clientSecret: $dex.github.clientSecret\n    orgs: [{name: my-org}]\n";
    let body = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "argocd-cm", "namespace": ns},
        "data": {"url": "https://berth.example.com", "dex.config": dex_config}});
    Api::<ConfigMap>::namespaced(client.clone(), &ns)
        .patch("argocd-cm", &PatchParams::apply("berth-test"), &Patch::Apply(&body))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("dex.yaml");
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["dex", "gendexcfg", "-n", &ns, "--listen", "127.0.0.1:5556", "--out"])
        .arg(&out)
        .output()
        .await
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert!(!String::from_utf8_lossy(&run.stdout).contains("gh-secret-value"), "written to the file only");
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(std::fs::metadata(&out).unwrap().permissions().mode() & 0o777, 0o600);
    let config: serde_json::Value = serde_saphyr::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(config["issuer"], "https://berth.example.com/api/dex");
    assert_eq!(config["web"]["http"], "127.0.0.1:5556");
    assert_eq!(config["staticClients"][0]["id"], "argo-cd");
    assert_eq!(config["staticClients"][0]["redirectURIs"][0], "https://berth.example.com/auth/callback");
    assert_eq!(config["staticClients"][1]["id"], "argo-cd-cli");
    assert_eq!(config["connectors"][0]["config"]["clientSecret"], "gh-secret-value");
    assert_eq!(config["connectors"][0]["config"]["orgs"][0]["name"], "my-org");
    // A reference that names nothing stays as written (as in Argo CD), with a warning naming it; a dex.config
    // that is not a mapping is an error naming the key.
    let set = |data: serde_json::Value| {
        let body = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "argocd-cm", "namespace": ns}, "data": data});
        let maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
        async move {
            maps.patch("argocd-cm", &PatchParams::apply("berth-test"), &Patch::Apply(&body)).await.unwrap()
        }
    };
    let gendexcfg = || {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(["dex", "gendexcfg", "-n", &ns])
            .output()
    };
    let missing = dex_config.replace("$dex.github.clientSecret", "$dex.gitlab.clientSecret");
    set(serde_json::json!({"url": "https://berth.example.com", "dex.config": missing})).await;
    let run = gendexcfg().await.unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("$dex.gitlab.clientSecret") && !stderr.contains("gh-secret-value"), "{stderr}");
    set(serde_json::json!({"url": "https://berth.example.com", "dex.config": "- not a mapping"})).await;
    let run = gendexcfg().await.unwrap();
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("dex.config") && stderr.contains("mapping"), "{stderr}");
}
