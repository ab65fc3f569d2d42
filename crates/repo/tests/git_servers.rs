//! The git cache against real git servers with credentials: git's smart HTTP behind lighttpd with basic
//! auth, and Debian's sshd with a generated key. Right credentials resolve, fetch and extract; wrong or
//! missing ones fail with a clear message that never contains the secret.

use berth_repo::git::{Credentials, GitCache, GitError};
use berth_testkit::GitRepo;
use berth_testkit::git_servers::{GitHttpServer, GitSshServer};
use std::time::Duration;

const FRESH: Duration = Duration::ZERO;

/// A repository with two commits on `main`; returns it with (first, second).
fn manifests() -> (GitRepo, String, String) {
    let repo = GitRepo::new();
    repo.write("apps/web/a.yaml", "a: 1\n");
    let first = repo.commit("first");
    repo.write("apps/web/b.yaml", "b: 2\n");
    let second = repo.commit("second");
    (repo, first, second)
}

fn password(username: &str, password: &str) -> Credentials {
    Credentials { username: Some(username.into()), password: Some(password.into()), ..Default::default() }
}

fn ssh_key(key: String, insecure: bool) -> Credentials {
    Credentials { ssh_private_key: Some(key), insecure, ..Default::default() }
}

/// Asserts that neither the error's message nor its Debug form carries any of `secrets`, and returns the
/// message.
fn without_secrets(err: GitError, secrets: &[&str]) -> String {
    let (shown, debug) = (err.to_string(), format!("{err:?}"));
    for secret in secrets {
        assert!(!shown.contains(secret) && !debug.contains(secret), "a secret leaked: {shown}\n{debug}");
    }
    shown
}

/// The key's base64 body lines: any one of them in a message is a leak.
fn key_lines(key: &str) -> Vec<&str> {
    key.lines().filter(|l| !l.starts_with("-----") && l.len() > 20).collect()
}

async fn resolve_fetch_and_read(url: &str, creds: &Credentials, first: &str, second: &str) {
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = GitCache::new(cache_dir.path());
    assert_eq!(cache.resolve(url, "main", creds, FRESH).await.unwrap(), second);
    assert_eq!(cache.resolve(url, "HEAD", creds, FRESH).await.unwrap(), second);
    cache.fetch(url, second, creds).await.unwrap();
    let tree = cache.tree(url, second).await.unwrap();
    assert_eq!(std::fs::read_to_string(tree.join("apps/web/b.yaml")).unwrap(), "b: 2\n");
    // An older commit that is no branch tip: fetched by SHA or through the refs.
    cache.fetch(url, first, creds).await.unwrap();
    let tree = cache.tree(url, first).await.unwrap();
    assert!(tree.join("apps/web/a.yaml").exists() && !tree.join("apps/web/b.yaml").exists());
}

#[tokio::test]
async fn http_basic_auth_with_the_right_password_resolves_fetches_and_reads_a_tree() {
    let (repo, first, second) = manifests();
    let server = GitHttpServer::start();
    let url = server.host("manifests", &repo);
    let creds = password(server.username(), server.password());
    resolve_fetch_and_read(&url, &creds, &first, &second).await;
}

#[tokio::test]
async fn http_with_a_wrong_password_fails_with_authentication_failed_and_no_password() {
    let (repo, _, second) = manifests();
    let server = GitHttpServer::start();
    let url = server.host("manifests", &repo);
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = GitCache::new(cache_dir.path());
    let wrong = "wr0ng-Pa55word";
    let creds = password(server.username(), wrong);

    let err = cache.resolve(&url, "main", &creds, FRESH).await.unwrap_err();
    let shown = without_secrets(err, &[wrong]);
    assert!(shown.contains("Authentication failed") && shown.contains(&url), "{shown}");
    assert!(shown.starts_with("git ls-remote"), "{shown}");

    // Fetching a known commit with the wrong password fails the same way.
    let err = cache.fetch(&url, &second, &creds).await.unwrap_err();
    let shown = without_secrets(err, &[wrong]);
    assert!(shown.contains("Authentication failed") && shown.contains(&url), "{shown}");
}

#[tokio::test]
async fn http_without_credentials_fails_clearly_without_prompting() {
    let (repo, _, _) = manifests();
    let server = GitHttpServer::start();
    let url = server.host("manifests", &repo);
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = GitCache::new(cache_dir.path());

    let err = cache.resolve(&url, "main", &Credentials::default(), FRESH).await.unwrap_err();
    let shown = without_secrets(err, &[server.password()]);
    // git asks for a username and, with prompts disabled, says it could not read one.
    assert!(shown.contains(&url) && shown.contains("could not read Username"), "{shown}");
}

#[tokio::test]
async fn a_password_written_into_the_url_is_scrubbed_from_errors() {
    let (repo, _, _) = manifests();
    let server = GitHttpServer::start();
    server.host("manifests", &repo);
    let wrong = "in-the-url-s3cret";
    let url = format!("http://{}:{wrong}@127.0.0.1:{}/git/manifests.git", server.username(), server.port());
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = GitCache::new(cache_dir.path());

    let err = cache.resolve(&url, "main", &Credentials::default(), FRESH).await.unwrap_err();
    let shown = without_secrets(err, &[wrong]);
    assert!(shown.contains("Authentication failed"), "{shown}");
}

#[tokio::test]
async fn http_repositories_update_when_published_again() {
    let (repo, _, second) = manifests();
    let server = GitHttpServer::start();
    let url = server.host("team/app", &repo);
    assert_eq!(url, format!("{}team/app.git", server.base_url()));
    let creds = password(server.username(), server.password());
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = GitCache::new(cache_dir.path());
    assert_eq!(cache.resolve(&url, "main", &creds, FRESH).await.unwrap(), second);
    repo.write("apps/web/c.yaml", "c: 3\n");
    let third = repo.commit("third");
    server.host("team/app", &repo);
    assert_eq!(cache.resolve(&url, "main", &creds, FRESH).await.unwrap(), third);
}

#[tokio::test]
async fn ssh_with_the_right_key_resolves_fetches_and_reads_a_tree() {
    let (repo, first, second) = manifests();
    let server = GitSshServer::start();
    let url = server.host("manifests", &repo);
    // Host key checking is off (Argo CD's `insecure: "true"`): the cache has no way yet to be given
    // known_hosts (see the test below).
    let creds = ssh_key(server.private_key(), true);
    resolve_fetch_and_read(&url, &creds, &first, &second).await;
}

#[tokio::test]
async fn ssh_with_a_wrong_key_fails_with_permission_denied_and_no_key() {
    let (repo, _, _) = manifests();
    let server = GitSshServer::start();
    let url = server.host("manifests", &repo);
    // A valid key the server does not know: another server's client key.
    let stranger = GitSshServer::start().private_key();
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = GitCache::new(cache_dir.path());

    let err = cache.resolve(&url, "main", &ssh_key(stranger.clone(), true), FRESH).await.unwrap_err();
    let shown = without_secrets(err, &key_lines(&stranger));
    assert!(!shown.contains("PRIVATE KEY"), "{shown}");
    assert!(shown.contains("Permission denied (publickey)"), "{shown}");
    // The URL is named, with its user scrubbed.
    assert!(shown.contains(&format!("127.0.0.1:{}", server.port())), "{shown}");
}

#[tokio::test]
async fn ssh_without_a_key_fails_with_permission_denied() {
    let (repo, _, _) = manifests();
    let server = GitSshServer::start();
    let url = server.host("manifests", &repo);
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = GitCache::new(cache_dir.path());
    let creds = Credentials { insecure: true, ..Default::default() };

    let err = cache.resolve(&url, "main", &creds, FRESH).await.unwrap_err().to_string();
    assert!(err.contains("Permission denied"), "{err}");
}

#[tokio::test]
async fn ssh_to_an_unknown_host_key_without_insecure_fails_host_key_verification() {
    let (repo, _, _) = manifests();
    let server = GitSshServer::start();
    let url = server.host("manifests", &repo);
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = GitCache::new(cache_dir.path());
    let key = server.private_key();

    let err = cache.resolve(&url, "main", &ssh_key(key.clone(), false), FRESH).await.unwrap_err();
    let shown = without_secrets(err, &key_lines(&key));
    assert!(shown.contains("Host key verification failed") && shown.contains("ls-remote"), "{shown}");
    // With the server's line in known_hosts (Argo CD's argocd-ssh-known-hosts-cm) the same call succeeds
    // without `insecure`; another host's line alone is not enough.
    assert!(server.known_hosts().starts_with(&format!("[127.0.0.1]:{} ssh-ed25519 ", server.port())));
    let other = GitSshServer::start();
    cache.set_known_hosts(Some(&other.known_hosts())).unwrap();
    assert!(cache.resolve(&url, "main", &ssh_key(key.clone(), false), FRESH).await.is_err());
    cache.set_known_hosts(Some(&server.known_hosts())).unwrap();
    let sha = cache.resolve(&url, "main", &ssh_key(key, false), FRESH).await.unwrap();
    assert_eq!(sha.len(), 40);
}

#[tokio::test]
async fn over_protocol_v0_a_commit_older_than_the_fetched_tip_is_still_reached() {
    let (repo, first, second) = manifests();
    let server = GitSshServer::start_protocol_v0();
    let url = server.host("manifests", &repo);
    let creds = ssh_key(server.private_key(), true);
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = GitCache::new(cache_dir.path());
    // The tip first (a shallow fetch), then its parent, which a v0 server refuses to serve by SHA.
    cache.fetch(&url, &second, &creds).await.unwrap();
    cache.fetch(&url, &first, &creds).await.unwrap();
    assert!(cache.tree(&url, &first).await.unwrap().join("apps/web/a.yaml").exists());
}
