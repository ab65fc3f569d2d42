//! Applications from real git servers that want credentials, given in Argo CD's secret formats: a
//! `repository` secret for one URL, a `repo-creds` secret for a URL prefix, a password over smart HTTP
//! (lighttpd + git http-backend) and a private key over SSH (sshd). Wrong credentials are a condition that
//! names the repository and never carries the secret.

mod common;

use berth_testkit::git_servers::{GitHttpServer, GitSshServer};
use common::*;
use serde_json::json;

/// A repository holding the seed's `web` manifests at apps/web; returns it with its commit.
fn web_repo() -> (GitRepo, String) {
    let repo = GitRepo::new();
    repo.write("apps/web/web.yaml", &web_manifests("myorg/web:v1.2.3"));
    let sha = repo.commit("web");
    (repo, sha)
}

/// An Argo CD repository credentials secret (`secret_type` is `repository` or `repo-creds`) in the
/// bench's namespace, written as people write them: `stringData`.
async fn credentials_secret(bench: &Bench, name: &str, secret_type: &str, data: serde_json::Value) {
    apply_json(
        &bench.client,
        &bench.namespace,
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": name, "namespace": bench.namespace,
                            "labels": {"argocd.argoproj.io/secret-type": secret_type}},
               "type": "Opaque",
               "stringData": data}),
    )
    .await;
}

async fn wait_synced_at(bench: &Bench, name: &str, sha: &str) -> serde_json::Value {
    bench
        .wait_app(name, &format!("Synced at {sha}"), |a| {
            sync_status(a) == "Synced" && a["status"]["sync"]["revision"] == sha
        })
        .await
}

/// The Application as `kubectl get application -o yaml` prints it, and that YAML read back as JSON
/// (long strings are folded across lines in the YAML).
fn kubectl_yaml(bench: &Bench, name: &str) -> (String, serde_json::Value) {
    let out = std::process::Command::new("kubectl")
        .args(["get", "applications.argoproj.io", name, "-n", &bench.namespace, "-o", "yaml"])
        .output()
        .expect("kubectl runs (eval \"$(hack/cluster env)\")");
    assert!(out.status.success(), "kubectl get: {}", String::from_utf8_lossy(&out.stderr));
    let yaml = String::from_utf8(out.stdout).unwrap();
    let value = serde_saphyr::from_str(&yaml).unwrap_or_else(|e| panic!("kubectl's YAML: {e}\n{yaml}"));
    (yaml, value)
}

#[tokio::test]
async fn a_repository_secret_with_a_password_syncs_an_app_from_the_http_server() {
    let mut bench = Bench::start("repo-http").await;
    let server = GitHttpServer::start();
    let (repo, sha) = web_repo();
    let url = server.host("manifests", &repo);
    credentials_secret(
        &bench,
        "manifests-repo",
        "repository",
        json!({"url": url, "username": server.username(), "password": server.password()}),
    )
    .await;
    let ns = bench.dest_namespace("repo-http");
    let name = unique("web");
    bench.create_app(seed_web_app(&name, &url, &ns)).await;

    let app = wait_synced_at(&bench, &name, &sha).await;
    assert_eq!(app["status"]["operationState"]["phase"], "Succeeded", "{}", conditions(&app));
    bench.cleanup().await;
}

#[tokio::test]
async fn a_repo_creds_secret_for_a_url_prefix_syncs_every_app_under_it() {
    let mut bench = Bench::start("repo-creds").await;
    let server = GitHttpServer::start();
    let (repo, sha) = web_repo();
    let url = server.host("team/web", &repo);
    // The secret names the server's prefix, not the repository.
    credentials_secret(
        &bench,
        "team-creds",
        "repo-creds",
        json!({"url": server.base_url(), "username": server.username(), "password": server.password()}),
    )
    .await;
    let ns = bench.dest_namespace("repo-creds");
    let name = unique("web");
    bench.create_app(seed_web_app(&name, &url, &ns)).await;

    wait_synced_at(&bench, &name, &sha).await;
    bench.cleanup().await;
}

#[tokio::test]
async fn a_wrong_password_is_a_condition_naming_the_repository_and_never_the_password() {
    let mut bench = Bench::start("repo-wrong").await;
    let server = GitHttpServer::start();
    let (repo, sha) = web_repo();
    let url = server.host("manifests", &repo);
    let wrong = format!("wr0ng-{}", unique("pw"));
    credentials_secret(
        &bench,
        "manifests-repo",
        "repository",
        json!({"url": url, "username": server.username(), "password": wrong}),
    )
    .await;
    let ns = bench.dest_namespace("repo-wrong");
    let name = unique("web");
    bench.create_app(seed_web_app(&name, &url, &ns)).await;

    let app = bench.wait_app(&name, "a ComparisonError", |a| conditions(a).contains("ComparisonError")).await;
    let text = conditions(&app);
    assert!(text.contains(&url) && text.contains("Authentication failed"), "{text}");
    assert_eq!(sync_status(&app), "Unknown");
    let (yaml, shown) = kubectl_yaml(&bench, &name);
    assert!(conditions(&shown).contains("Authentication failed"), "kubectl shows the condition: {yaml}");
    let json = shown.to_string();
    for secret in [wrong.as_str(), server.password()] {
        assert!(
            !yaml.contains(secret) && !json.contains(secret),
            "a password leaked into the Application: {yaml}"
        );
    }

    // Correcting the secret is enough: the application syncs without a restart or a refresh.
    credentials_secret(
        &bench,
        "manifests-repo",
        "repository",
        json!({"url": url, "username": server.username(), "password": server.password()}),
    )
    .await;
    let app = wait_synced_at(&bench, &name, &sha).await;
    assert!(!conditions(&app).contains("ComparisonError"), "{}", conditions(&app));
    bench.cleanup().await;
}

#[tokio::test]
async fn an_ssh_private_key_secret_syncs_once_the_host_key_is_in_argocd_ssh_known_hosts_cm() {
    let mut bench = Bench::start("repo-ssh").await;
    let server = GitSshServer::start();
    let (repo, sha) = web_repo();
    let url = server.host("manifests", &repo);
    let key = server.private_key();
    credentials_secret(&bench, "manifests-repo", "repository", json!({"url": url, "sshPrivateKey": key}))
        .await;
    let ns = bench.dest_namespace("repo-ssh");
    let name = unique("web");
    bench.create_app(seed_web_app(&name, &url, &ns)).await;

    // No known_hosts entry for the server and no `insecure`: ssh refuses the host.
    let app = bench.wait_app(&name, "a ComparisonError", |a| conditions(a).contains("ComparisonError")).await;
    let text = conditions(&app);
    assert!(text.contains("Host key verification failed"), "{text}");
    assert!(text.contains(&format!("127.0.0.1:{}", server.port())), "{text}");

    // Argo CD's argocd-ssh-known-hosts-cm with the server's host key: trusted without `insecure`.
    apply_json(
        &bench.client,
        &bench.namespace,
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "argocd-ssh-known-hosts-cm", "namespace": bench.namespace},
               "data": {"ssh_known_hosts": server.known_hosts()}}),
    )
    .await;
    wait_synced_at(&bench, &name, &sha).await;
    let (yaml, shown) = kubectl_yaml(&bench, &name);
    let json = shown.to_string();
    for line in key.lines().filter(|l| !l.starts_with("-----")) {
        assert!(!yaml.contains(line) && !json.contains(line), "the key leaked into the Application: {yaml}");
    }
    bench.cleanup().await;
}
