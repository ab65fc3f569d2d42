//! The built `berth` binary against a real API server (in-process, on the local cluster, each test in its
//! own namespace): login and contexts, creating the seed's Application, listing and reading it, versions,
//! and, with the controller running too, sync, wait, history, rollback, the resource tree and delete.

use berth_testkit::*;
use kube::api::{Api, Patch, PatchParams};
use std::path::{Path, PathBuf};
use std::time::Duration;

mod common;
use common::*;

async fn namespace(prefix: &str) -> (kube::Client, String) {
    let client = client().await;
    install_crds(&client).await;
    let ns = unique(prefix);
    ensure_namespace(&client, &ns).await;
    (client, ns)
}

/// The seed's Application (`application-web.yaml`), moved into the test's namespace.
fn seed_application(ns: &str, dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(seed_dir().join("application-web.yaml")).unwrap();
    let mut app: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
    app["metadata"]["namespace"] = ns.into();
    let path = dir.join("application-web.yaml");
    std::fs::write(&path, serde_saphyr::to_string(&app).unwrap()).unwrap();
    path
}

#[tokio::test]
async fn without_a_session_every_remote_command_says_to_log_in() {
    let cli = Cli::new();
    for args in [&["app", "list"][..], &["app", "get", "web"], &["proj", "list"], &["logout"]] {
        let run = cli.run(args).await;
        assert_eq!(run.code, 1, "{args:?}: {run:?}");
        assert_eq!(run.stderr, "error: not logged in: run `berth login HOST`\n", "{args:?}");
    }
    // diff keeps exit code 1 for "there are differences": an error is 2.
    let run = cli.run(&["app", "diff", "web"]).await;
    assert_eq!((run.code, run.stderr.as_str()), (2, "error: not logged in: run `berth login HOST`\n"));
    let run = cli.run_with(&["app", "list"], &[("BERTH_SERVER", "127.0.0.1:9")]).await;
    assert_eq!(run.stderr, "error: not logged in to 127.0.0.1:9: run `berth login 127.0.0.1:9`\n");
    let run = cli.run(&["login", "127.0.0.1:9", "--plaintext", "--username", "admin"]).await;
    assert_eq!(run.stderr, "error: --password is required when stdin is not a terminal\n");
    let run = cli.run(&["version", "--client"]).await.ok();
    assert!(run.stdout.starts_with(&format!("berth: v{}\n", env!("CARGO_PKG_VERSION"))), "{}", run.stdout);
}

#[tokio::test]
async fn a_reader_closing_stdout_early_ends_the_command_quietly() {
    let cli = Cli::new();
    // `berth crds | head -1`: the CRDs (close to a megabyte) outgrow the pipe, so berth writes into a closed one.
    let run = cli.run_into_closed_pipe(&["crds"], 1).await;
    assert_eq!((run.code, run.stdout.as_str(), run.stderr.as_str()), (0, "---\n", ""), "{run:?}");
    // Closed before berth writes at all.
    for args in [&["crds"][..], &["version", "--client"], &["version", "--client", "-o", "yaml"]] {
        let run = cli.run_into_closed_pipe(args, 0).await;
        assert_eq!((run.code, run.stderr.as_str()), (0, ""), "{args:?}: {run:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_on_a_port_already_taken_fails_at_once_naming_it() {
    let (_client, ns) = namespace("cli-port").await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let cli = Cli::new();
    // The API's port, then the metrics' (the API on a free one): each stops berth before the controller starts.
    for (args, serves) in [
        (["--port", &port, "--metrics-port", "0"], "the API and UI"),
        (["--port", "0", "--metrics-port", &port], "the metrics"),
    ] {
        let mut run_args = vec!["run", "--namespace", &ns, "--address", "127.0.0.1", "--insecure"];
        run_args.extend(args);
        let run = tokio::time::timeout(Duration::from_secs(30), cli.run(&run_args))
            .await
            .unwrap_or_else(|_| panic!("{run_args:?} still runs after 30 s"))
            .failed();
        assert_eq!(
            run.stderr,
            format!("error: cannot listen on 127.0.0.1:{port} ({serves}): Address already in use\n"),
            "{run_args:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_over_https_needs_insecure_for_the_self_signed_certificate() {
    let (client, ns) = namespace("cli-tls").await;
    let server = start_tls_server(&client, &ns).await;
    let host = server.address.clone();
    let cli = Cli::new();
    // The password appears once the server has bootstrapped its accounts.
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), &ns);
    poll("the initial admin password", Duration::from_secs(30), || async {
        secrets.get_opt("argocd-initial-admin-secret").await.unwrap().is_some()
    })
    .await;
    let password = admin_password(&client, &ns).await;
    let login = ["login", &host, "--username", "admin", "--password", &password];
    let mut run = cli.run(&login).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !run.stderr.contains("certificate") && std::time::Instant::now() < deadline {
        run = cli.run(&login).await;
    }
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("pass --insecure"), "{}", run.stderr);
    assert!(!run.stderr.contains(&password), "{}", run.stderr);
    cli.run(&["login", &host, "--insecure", "--username", "admin", "--password", &password]).await.ok();
    let run = cli.run(&["app", "list", "-o", "name"]).await.ok();
    assert_eq!(run.stdout, "");
    // Plain HTTP to the HTTPS port is only redirected: the CLI fails rather than sending the token in clear
    // again.
    let token = cli.saved_token();
    let run = cli.run(&["app", "list", "--plaintext", "--server", &host, "--auth-token", &token]).await;
    assert_ne!(run.code, 0, "{run:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_then_create_the_seed_application_list_get_and_delete_it() {
    let (client, ns) = namespace("cli").await;
    let server = start_server(&client, &ns).await;
    let host = server.address.clone();
    let password = admin_password(&client, &ns).await;
    let cli = Cli::new();

    let run = cli
        .run(&["login", &host, "--plaintext", "--username", "admin", "--password", "not-the-password"])
        .await;
    assert_ne!(run.code, 0);
    assert_eq!(run.stderr, "error: login failed: Invalid username or password\n");
    assert!(!cli.config_file().exists(), "a failed login saves nothing");

    let run =
        cli.run(&["login", &host, "--plaintext", "--username", "admin", "--password", &password]).await.ok();
    assert_eq!(run.stdout, format!("'admin:login' logged in successfully\nContext '{host}' updated\n"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(cli.config_file()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the config holds a token");
    }
    let run = cli.run(&["context"]).await.ok();
    assert_eq!(
        run.stdout.lines().nth(1).unwrap().split_whitespace().collect::<Vec<_>>(),
        ["*", &host, &host]
    );

    let files = tempfile::tempdir().unwrap();
    let seed = seed_application(&ns, files.path());
    let seed = seed.to_str().unwrap();
    let run = cli.run(&["app", "create", "-f", seed]).await.ok();
    assert_eq!(run.stdout, "application 'web' created\n");
    let run = cli.run(&["app", "create", "-f", seed]).await;
    assert_eq!(run.code, 1);
    assert!(run.stderr.starts_with("error: application 'web' already exists ("), "{}", run.stderr);
    assert!(run.stderr.ends_with("): pass --upsert to replace it\n"), "{}", run.stderr);
    cli.run(&["app", "create", "-f", seed, "--upsert"]).await.ok();

    poll("the server to list web", Duration::from_secs(30), || async {
        cli.run(&["app", "list", "-o", "name"]).await.stdout == "web\n"
    })
    .await;
    let run = cli.run(&["app", "list"]).await.ok();
    let lines: Vec<Vec<&str>> = run.stdout.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(
        lines,
        [
            vec![
                "NAME",
                "CLUSTER",
                "NAMESPACE",
                "PROJECT",
                "STATUS",
                "HEALTH",
                "SYNCPOLICY",
                "CONDITIONS",
                "REPO",
                "PATH",
                "TARGET"
            ],
            vec![
                "web",
                "https://kubernetes.default.svc",
                "web",
                "default",
                "Unknown",
                "Unknown",
                "Auto-Prune",
                "<none>",
                "https://github.com/myorg/k8s-manifests",
                "apps/web",
                "main"
            ],
        ]
    );
    let run = cli.run(&["app", "list", "-o", "json"]).await.ok();
    let apps: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(apps.as_array().map(Vec::len), Some(1));
    assert_eq!(apps[0]["metadata"]["name"], "web");
    assert_eq!(apps[0]["metadata"]["namespace"], ns.as_str());
    assert_eq!(apps[0]["spec"]["syncPolicy"]["syncOptions"][0], "CreateNamespace=true");
    let run = cli.run(&["app", "list", "-o", "yaml"]).await.ok();
    assert!(run.stdout.contains("name: web"), "{}", run.stdout);
    assert_eq!(cli.run(&["app", "list", "-p", "dev-team"]).await.ok().stdout.lines().count(), 1);
    assert_eq!(cli.run(&["app", "list", "-l", "team=none"]).await.ok().stdout.lines().count(), 1);

    let run = cli.run(&["app", "get", "web"]).await.ok();
    for line in [
        "Name:               web",
        "Project:            default",
        "Server:             https://kubernetes.default.svc",
        "Namespace:          web",
        &format!("URL:                http://{host}/applications/web"),
        "- Repo:             https://github.com/myorg/k8s-manifests",
        "  Target:           main",
        "  Path:             apps/web",
        "Sync Policy:        Automated (Prune, Self Heal)",
        "Sync Status:        Unknown",
        "Health Status:      Unknown",
    ] {
        assert!(run.stdout.lines().any(|l| l == line), "{line:?} in\n{}", run.stdout);
    }
    let run = cli.run(&["app", "get", "web", "-o", "json"]).await.ok();
    let app: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(app["spec"]["source"]["path"], "apps/web");
    let run = cli.run(&["app", "get", "nothing"]).await;
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (1, "error: application nothing not found, or permission denied\n")
    );

    // `app set` changes what it names through PUT .../spec; the rest of the spec stays.
    let run = cli
        .run(&[
            "app",
            "set",
            "web",
            "--revision",
            "v2",
            "--sync-option",
            "CreateNamespace=false",
            "--self-heal=false",
        ])
        .await
        .ok();
    assert_eq!(run.stdout, "application 'web' updated\n");
    poll("the server to see the new spec", Duration::from_secs(30), || async {
        let run = cli.run(&["app", "get", "web", "-o", "json"]).await.ok();
        let app: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        app["spec"]["source"]["targetRevision"] == "v2"
    })
    .await;
    let run = cli.run(&["app", "get", "web", "-o", "json"]).await.ok();
    let app: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(app["spec"]["source"]["path"], "apps/web");
    assert_eq!(app["spec"]["syncPolicy"]["syncOptions"], serde_json::json!(["CreateNamespace=false"]));
    assert_eq!(app["spec"]["syncPolicy"]["automated"]["selfHeal"], false);
    assert_eq!(app["spec"]["syncPolicy"]["automated"]["prune"], true);
    let run = cli.run(&["app", "set", "web", "--sync-policy", "sometimes"]).await;
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("use automated or none"), "{}", run.stderr);
    cli.run(&["app", "set", "web", "--revision", "main", "--self-heal"]).await.ok();

    let run = cli.run(&["proj", "list"]).await.ok();
    assert!(run.stdout.starts_with("NAME  DESCRIPTION  DESTINATIONS"), "{}", run.stdout);
    let run = cli.run(&["version"]).await.ok();
    let version = format!("v{}", env!("CARGO_PKG_VERSION"));
    assert!(run.stdout.starts_with(&format!("berth: {version}\n")), "{}", run.stdout);
    assert!(run.stdout.contains(&format!("\nberth-server: {version}\n")), "{}", run.stdout);

    // The server and token from the environment, no config at all.
    let other = Cli::new();
    let token = cli.saved_token();
    let env = [("BERTH_SERVER", host.as_str()), ("BERTH_AUTH_TOKEN", token.as_str())];
    assert_eq!(
        other.run_with(&["app", "list", "-o", "name", "--plaintext"], &env).await.ok().stdout,
        "web\n"
    );
    let run =
        other.run_with(&["app", "list", "--plaintext", "--auth-token", "forged.token.here"], &env[..1]).await;
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stderr,
        format!("error: the session for {host} is not valid (invalid session): run `berth login {host}`\n")
    );

    let run = cli.run(&["app", "delete", "web"]).await;
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stderr,
        "error: refusing to delete without confirmation: stdin is not a terminal, pass -y\n"
    );
    let run = cli.run(&["app", "delete", "web", "--cascade=false", "-y"]).await.ok();
    assert_eq!(run.stdout, "application 'web' deleted\n");
    poll("web to be gone", Duration::from_secs(30), || async {
        cli.run(&["app", "get", "web"]).await.stderr
            == "error: application web not found, or permission denied\n"
    })
    .await;

    let run = cli.run(&["logout"]).await.ok();
    assert_eq!(run.stdout, format!("Logged out from '{host}'\n"));
    let run = cli.run(&["app", "list"]).await;
    assert_eq!(run.stderr, format!("error: not logged in to {host}: run `berth login {host}`\n"));
}

fn config_map(value: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web-config\ndata:\n  value: \"{value}\"\n")
}

/// No replicas: healthy without pulling an image, and still a ReplicaSet under it in the tree.
const DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 0\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - name: web\n        image: myorg/web:v1\n";

async fn live_value(client: &kube::Client, ns: &str) -> Option<String> {
    let api: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client.clone(), ns);
    api.get_opt("web-config").await.ok()??.data?.get("value").cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_wait_history_rollback_and_delete_with_the_controller_running() {
    let (client, ns) = namespace("cli-sync").await;
    allow_file_urls(&client, &ns).await;
    let dest = unique("cli-sync-dest");
    // Resources are tracked by application name, so leftovers of an earlier run must not share it.
    let app = unique("web");
    let app = app.as_str();
    let repo = GitRepo::new();
    repo.write("apps/web/configmap.yaml", &config_map("one"));
    repo.write("apps/web/deployment.yaml", DEPLOYMENT);
    let first = repo.commit("one");

    let server = InProcess::start(&client, &ns, Options { controller: true, ..Default::default() }).await;
    let cli = Cli::new();
    cli.login(&server.address, "admin", &admin_password(&client, &ns).await).await;

    let url = repo.url();
    let run = cli.create_app(app, &url, "apps/web", &dest).await;
    assert_eq!(run.stdout, format!("application '{app}' created\n"));
    poll("the controller to compare web", Duration::from_secs(60), || async {
        cli.run(&["app", "get", app]).await.stdout.contains("Sync Status:        OutOfSync")
    })
    .await;

    // Manual policy: nothing syncs by itself, so a short wait times out naming what is missing.
    let run = cli.run(&["app", "wait", app, "--sync", "--timeout", "1"]).await;
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stderr,
        format!(
            "error: timed out after 1s waiting for application {app}: sync status is OutOfSync (want Synced)\n"
        )
    );

    let run = cli.run(&["app", "sync", app, "--timeout", "120"]).await.ok();
    assert!(run.stdout.lines().any(|l| l.starts_with("Sync ") && l.contains("ConfigMap/")), "{}", run.stdout);
    assert!(run.stdout.contains("Phase:              Succeeded"), "{}", run.stdout);
    assert_eq!(live_value(&client, &dest).await.as_deref(), Some("one"));
    let run = cli.run(&["app", "wait", app, "--timeout", "120"]).await;
    if run.code != 0 {
        let detail = cli.run(&["app", "get", app, "-o", "yaml"]).await;
        panic!("wait failed: {run:?}\n{}", detail.stdout);
    }
    assert!(run.stdout.contains("Health Status:      Healthy"), "{}", run.stdout);

    repo.write("apps/web/configmap.yaml", &config_map("two"));
    let second = repo.commit("two");
    cli.run(&["app", "sync", app, "--revision", &second, "--timeout", "120"]).await.ok();
    assert_eq!(live_value(&client, &dest).await.as_deref(), Some("two"));

    let run = cli.run(&["app", "history", app]).await.ok();
    let rows: Vec<Vec<&str>> = run.stdout.lines().skip(1).map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows.len(), 2, "{}", run.stdout);
    assert_eq!((rows[0][0], rows[0][5]), ("0", first.as_str()), "{}", run.stdout);
    assert_eq!((rows[1][0], rows[1][5]), ("1", second.as_str()), "{}", run.stdout);

    // No ID: the deployment before the last.
    let run = cli.run(&["app", "rollback", app, "--timeout", "120"]).await.ok();
    assert!(run.stdout.starts_with(&format!("rolling back {app} to history ID 0\n")), "{}", run.stdout);
    assert_eq!(live_value(&client, &dest).await.as_deref(), Some("one"));

    // The tree: the Deployment's ReplicaSet under it, with health.
    poll("the tree to show the ReplicaSet", Duration::from_secs(60), || async {
        cli.run(&["app", "get", app]).await.stdout.lines().any(|l| l.starts_with("└─ReplicaSet/web-"))
    })
    .await;
    let run = cli.run(&["app", "get", app]).await.ok();
    assert!(
        run.stdout
            .lines()
            .any(|l| l.starts_with("Deployment/web") && l.contains("Synced") && l.contains("Healthy")),
        "{}",
        run.stdout
    );
    let run = cli.run(&["app", "resources", app]).await.ok();
    for kind in ["ConfigMap", "Deployment", "ReplicaSet"] {
        assert!(
            run.stdout.lines().any(|l| l.split_whitespace().any(|w| w == kind)),
            "{kind} in {}",
            run.stdout
        );
    }

    // A refresh compares with main again: the rollback left the cluster at the first commit.
    let run = cli.run(&["app", "get", app, "--hard-refresh"]).await.ok();
    let wanted = format!("Sync Status:        OutOfSync to main ({})", &second[..7]);
    assert!(run.stdout.contains(&wanted), "{wanted} in {}", run.stdout);
    let run = cli.run(&["app", "manifests", app]).await.ok();
    assert!(run.stdout.starts_with("---\n"), "{}", run.stdout);
    for line in ["name: web-config", "kind: Deployment"] {
        assert!(run.stdout.lines().any(|l| l.trim() == line), "{line} in {}", run.stdout);
    }

    let run = cli.run(&["app", "terminate-op", app]).await;
    assert_eq!((run.code, run.stderr.as_str()), (1, "error: no operation is in progress\n"));

    // In sync: diff exits 0. The live object drifts from git: diff exits 1 and shows the change.
    cli.run(&["app", "sync", app, "--timeout", "120"]).await.ok();
    assert_eq!(live_value(&client, &dest).await.as_deref(), Some("two"));
    let run = cli.run(&["app", "diff", app]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let maps: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client.clone(), &dest);
    let drift = serde_json::json!({"data": {"value": "drifted"}});
    maps.patch("web-config", &PatchParams::default(), &Patch::Merge(&drift)).await.unwrap();
    let mut run = cli.run(&["app", "diff", app]).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    // The controller's cache sees the drift through its watch: poll until it does.
    while run.code == 0 && std::time::Instant::now() < deadline {
        run = cli.run(&["app", "diff", app]).await;
    }
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stdout.contains("-  value: drifted\n+  value: two\n"), "{}", run.stdout);

    // A manifest the API server refuses: the sync fails and so does the command.
    repo.write("apps/web/bad.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Not_A_Valid_Name\n");
    repo.commit("bad");
    let run = cli.run(&["app", "sync", app, "--revision", "main", "--timeout", "120"]).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.starts_with(&format!("error: the operation on {app} ended ")), "{}", run.stderr);

    let run = cli.run(&["app", "delete", app, "-y"]).await.ok();
    assert_eq!(run.stdout, format!("application '{app}' deleted\n"));
    let gone = format!("error: application {app} not found, or permission denied\n");
    poll("the cascade to delete the ConfigMap and the app to be gone", Duration::from_secs(60), || async {
        live_value(&client, &dest).await.is_none() && cli.run(&["app", "get", app]).await.stderr == gone
    })
    .await;

    server.stop().await;
}
