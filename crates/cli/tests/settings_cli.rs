//! The built `berth` binary's `repo`, `cluster` and `account` verbs against a real API server (in-process, on
//! the local cluster, each test in its own namespace), with a temporary HOME for its config.

use berth_testkit::*;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, Patch, PatchParams};

mod common;
use common::*;

async fn namespace(prefix: &str, cm: serde_json::Value) -> (kube::Client, String) {
    let client = client().await;
    install_crds(&client).await;
    let ns = unique(prefix);
    ensure_namespace(&client, &ns).await;
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let body = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "argocd-cm", "namespace": ns}, "data": cm});
    maps.patch("argocd-cm", &PatchParams::apply("berth-test"), &Patch::Apply(&body)).await.unwrap();
    berth_server::auth::bootstrap(&client, &ns).await.unwrap();
    (client, ns)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repo_add_list_and_rm_never_print_the_password() {
    const PASSWORD: &str = "cli-repo-Passw0rd";
    let (client, ns) = namespace("cli-repo", serde_json::json!({})).await;
    let server = start_server(&client, &ns).await;
    let cli = Cli::new();
    cli.login(&server.address, "admin", &admin_password(&client, &ns).await).await;
    let app = "https://git.example.com/org/app.git";
    let other = "git@git.example.com:org/other.git";

    let run = cli
        .run(&["repo", "add", app, "--username", "bot", "--password", PASSWORD, "--project", "default"])
        .await;
    assert_eq!(run.ok().stdout, format!("Repository '{app}' added\n"));
    let key_dir = tempfile::tempdir().unwrap();
    let key = key_dir.path().join("id_ed25519");
    std::fs::write(
        &key,
        "-----BEGIN OPENSSH PRIVATE KEY-----\nc2VjcmV0LWtleQ==\n-----END OPENSSH PRIVATE KEY-----\n",
    )
    .unwrap();
    let key = key.to_str().unwrap();
    cli.run(&[
        "repo",
        "add",
        other,
        "--ssh-private-key-path",
        key,
        "--name",
        "other",
        "--insecure-skip-server-verification",
    ])
    .await
    .ok();
    let changed =
        ["repo", "add", app, "--username", "bot", "--password", "changed-Passw0rd", "--project", "default"];
    let run = cli.run(&changed).await.failed();
    assert_eq!(
        run.stderr,
        format!(
            "error: repository '{app}' already exists with a different spec: pass --upsert to replace it\n"
        )
    );
    cli.run(&[&changed[..], &["--upsert"]].concat()).await.ok();
    let run = cli.run(&["repo", "add", "https://charts.example.com", "--type", "helm"]).await.failed();
    assert_eq!(run.stderr, "error: --name is required for repositories of type 'helm'\n");

    let run = cli.run(&["repo", "list"]).await.ok();
    let lines: Vec<Vec<&str>> = run.stdout.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(
        lines,
        [
            vec!["TYPE", "NAME", "REPO", "INSECURE", "OCI", "LFS", "CREDS", "STATUS", "MESSAGE", "PROJECT"],
            vec!["git", "other", other, "true", "false", "false", "false"],
            vec!["git", app, "false", "false", "false", "true", "default"],
        ]
    );
    let json = cli.run(&["repo", "list", "-o", "json"]).await.ok().stdout;
    let items: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(items.as_array().unwrap().len(), 2);
    assert_eq!(cli.run(&["repo", "list", "-o", "name"]).await.ok().stdout, format!("{other}\n{app}\n"));
    let yaml = cli.run(&["repo", "list", "-o", "yaml"]).await.ok().stdout;
    for text in [&run.stdout, &json, &yaml] {
        for secret in [PASSWORD, "changed-Passw0rd", "c2VjcmV0LWtleQ==", "password", "sshPrivateKey"] {
            assert!(!text.contains(secret), "{secret:?} printed in {text}");
        }
    }

    assert_eq!(cli.run(&["repo", "rm", other]).await.ok().stdout, format!("Repository '{other}' removed\n"));
    assert_eq!(cli.run(&["repo", "list", "-o", "name"]).await.ok().stdout, format!("{app}\n"));
    let run = cli.run(&["repo", "rm", other]).await.failed();
    assert_eq!(run.stderr, format!("error: repo '{other}' not found\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_list_get_and_rm_with_in_cluster_always_there() {
    let (client, ns) = namespace("cli-cluster", serde_json::json!({})).await;
    // A cluster declared as Argo CD's docs write it, straight into the cluster.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let declared = serde_json::json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "prod-cluster", "namespace": ns,
                     "labels": {"argocd.argoproj.io/secret-type": "cluster"}},
        "stringData": {"name": "prod", "server": "https://prod.example.com:6443", "project": "default",
                       "config": "{\"bearerToken\": \"cli-cluster-bearer\", \"tlsClientConfig\": {\"insecure\": true}}"}});
    secrets.patch("prod-cluster", &PatchParams::apply("berth-test"), &Patch::Apply(&declared)).await.unwrap();
    let server = start_server(&client, &ns).await;
    let cli = Cli::new();
    cli.login(&server.address, "admin", &admin_password(&client, &ns).await).await;

    let run = cli.run(&["cluster", "list"]).await.ok();
    let lines: Vec<Vec<&str>> = run.stdout.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(lines[0], ["SERVER", "NAME", "VERSION", "STATUS", "MESSAGE", "PROJECT"]);
    assert_eq!(lines[1][..2], ["https://kubernetes.default.svc", "in-cluster"]);
    assert_eq!(lines[1][3], "Successful", "{}", run.stdout);
    assert_eq!(lines[2], ["https://prod.example.com:6443", "prod", "Unknown", "default"]);
    assert_eq!(lines.len(), 3);
    let run = cli.run(&["cluster", "get", "prod"]).await.ok();
    assert!(run.stdout.contains("server: https://prod.example.com:6443"), "{}", run.stdout);
    let json = cli.run(&["cluster", "get", "https://prod.example.com:6443", "-o", "json"]).await.ok().stdout;
    let prod: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(prod["config"], serde_json::json!({"tlsClientConfig": {"insecure": true}}));
    let all = cli.run(&["cluster", "list", "-o", "yaml"]).await.ok().stdout;
    for text in [&run.stdout, &json, &all] {
        assert!(!text.contains("cli-cluster-bearer") && !text.contains("bearerToken"), "{text}");
    }

    let run = cli.run(&["cluster", "rm", "in-cluster", "-y"]).await.failed();
    assert!(
        run.stderr.starts_with("error: cluster 'https://kubernetes.default.svc' (in-cluster)"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("cannot be removed"), "{}", run.stderr);
    let run = cli.run(&["cluster", "rm", "prod"]).await.failed();
    assert!(run.stderr.contains("pass -y"), "{}", run.stderr);
    let run = cli.run(&["cluster", "rm", "prod", "-y"]).await.ok();
    assert_eq!(run.stdout, "Cluster 'https://prod.example.com:6443' removed\n");
    assert_eq!(
        cli.run(&["cluster", "list", "-o", "name"]).await.ok().stdout,
        "https://kubernetes.default.svc\n"
    );
    assert!(secrets.get_opt("prod-cluster").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_update_password_logs_in_again_and_generate_token_prints_a_working_token() {
    let (client, ns) =
        namespace("cli-account", serde_json::json!({"accounts.alice": "login", "accounts.ci": "apiKey"}))
            .await;
    berth_server::auth::set_password(&client, &ns, "alice", "alice-pass-1").await.unwrap();
    let server = start_server(&client, &ns).await;
    let host = server.address.as_str();

    let alice = Cli::new();
    alice.login(host, "alice", "alice-pass-1").await;
    let run = alice
        .run(&[
            "account",
            "update-password",
            "--current-password",
            "wrong-password",
            "--new-password",
            "alice-pass-2",
        ])
        .await
        .failed();
    assert_eq!(run.stderr, "error: current password does not match\n");
    let run = alice
        .run(&[
            "account",
            "update-password",
            "--current-password",
            "alice-pass-1",
            "--new-password",
            "alice-pass-2",
        ])
        .await
        .ok();
    assert_eq!(run.stdout, format!("Password updated\nContext '{host}' updated\n"));
    // The saved session is the new one; the old password no longer logs in.
    let run = alice.run(&["account", "get"]).await.ok();
    assert!(run.stdout.starts_with("Name:                    alice\n"), "{}", run.stdout);
    let run =
        alice.run(&["login", host, "--plaintext", "--username", "alice", "--password", "alice-pass-1"]).await;
    assert_eq!(run.failed().stderr, "error: login failed: Invalid username or password\n");
    alice.login(host, "alice", "alice-pass-2").await;
    let run = alice.run(&["account", "update-password"]).await.failed();
    assert_eq!(run.stderr, "error: --current-password is required when stdin is not a terminal\n");

    let admin = Cli::new();
    admin.login(host, "admin", &admin_password(&client, &ns).await).await;
    let run = admin.run(&["account", "list"]).await.ok();
    assert_eq!(
        run.stdout,
        "NAME   ENABLED  CAPABILITIES\nadmin  true     login\nalice  true     login\nci     true     apiKey\n"
    );
    let run = admin
        .run(&["account", "generate-token", "--account", "ci", "--expires-in", "1h", "--id", "deploy"])
        .await
        .ok();
    let token = run.stdout.trim().to_string();
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
    let as_ci = Cli::new();
    let with_token = ["--server", host, "--plaintext", "--auth-token", token.as_str()];
    let run = as_ci.run(&[&["account", "get"][..], &with_token].concat()).await.ok();
    assert!(run.stdout.starts_with("Name:                    ci\n"), "{}", run.stdout);
    assert!(run.stdout.lines().any(|l| l.starts_with("deploy ")), "{}", run.stdout);
    assert!(!run.stdout.contains(&token));

    let run = admin.run(&["account", "generate-token", "--account", "alice"]).await.failed();
    assert_eq!(
        run.stderr,
        "error: account alice does not have 'apiKey' capability: give it the capability in argocd-cm \
         (`accounts.alice: apiKey`) first\n"
    );
    let run = admin.run(&["account", "delete-token", "deploy", "--account", "ci"]).await.ok();
    assert_eq!(run.stdout, "Token 'deploy' of account 'ci' deleted\n");
    let run = as_ci.run(&[&["account", "get"][..], &with_token].concat()).await.failed();
    assert!(run.stderr.contains("run `berth login"), "{}", run.stderr);
}
