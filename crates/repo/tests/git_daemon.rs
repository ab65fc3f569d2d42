//! The git cache against a real git server: `git daemon` on loopback (git:// protocol), which refuses
//! to serve commits by SHA unless they are a branch tip, so both fetch paths are exercised.

use berth_repo::git::{Credentials, GitCache};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=Dev", "-c", "user.email=dev@example.com"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(base: &Path) -> (Daemon, u16) {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    // The daemon binary itself, not the `git` wrapper: killing a wrapper would leave the daemon running
    // (holding the test's output pipe open).
    let exec_path = Command::new("git").arg("--exec-path").output().expect("git runs");
    let exec_path = String::from_utf8(exec_path.stdout).unwrap().trim().to_string();
    let child = Command::new(Path::new(&exec_path).join("git-daemon"))
        .args(["--reuseaddr", "--export-all", "--listen=127.0.0.1"])
        .arg(format!("--port={port}"))
        .arg(format!("--base-path={}", base.display()))
        .arg(base)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("git daemon starts");
    let daemon = Daemon(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "git daemon did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    (daemon, port)
}

#[tokio::test]
async fn resolves_fetches_and_extracts_over_the_git_protocol() {
    let base = tempfile::tempdir().unwrap();
    let repo = base.path().join("manifests.git");
    std::fs::create_dir_all(repo.join("apps/web")).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    std::fs::write(repo.join("apps/web/a.yaml"), "a: 1\n").unwrap();
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "first\n\nwith a body"]);
    let first = git(&repo, &["rev-parse", "HEAD"]);
    git(&repo, &["tag", "v1"]);
    std::fs::write(repo.join("apps/web/b.yaml"), "b: 2\n").unwrap();
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "second"]);
    let second = git(&repo, &["rev-parse", "HEAD"]);
    let (_daemon, port) = serve(base.path());
    let url = format!("git://127.0.0.1:{port}/manifests.git");

    let cache_dir = tempfile::tempdir().unwrap();
    let cache = GitCache::new(cache_dir.path());
    let none = Credentials::default();
    let fresh = Duration::ZERO;
    assert_eq!(cache.resolve(&url, "main", &none, fresh).await.unwrap(), second);
    assert_eq!(cache.resolve(&url, "HEAD", &none, fresh).await.unwrap(), second);
    assert_eq!(cache.resolve(&url, "", &none, fresh).await.unwrap(), second);
    assert_eq!(cache.resolve(&url, "v1", &none, fresh).await.unwrap(), first, "a tag resolves to its commit");
    assert_eq!(cache.resolve(&url, &first, &none, fresh).await.unwrap(), first);
    let missing = cache.resolve(&url, "nope", &none, fresh).await.unwrap_err().to_string();
    assert!(missing.contains("nope"), "{missing}");

    cache.fetch(&url, &second, &none).await.unwrap();
    // `first` is no branch tip: git daemon refuses it by SHA, so the cache falls back to fetching refs.
    cache.fetch(&url, &first, &none).await.unwrap();
    let tree = cache.tree(&url, &first).await.unwrap();
    assert!(tree.join("apps/web/a.yaml").exists() && !tree.join("apps/web/b.yaml").exists());
    assert_eq!(*cache.changed_files(&url, &first, &second).await.unwrap(), ["apps/web/b.yaml"]);
    let info = cache.commit_info(&url, &first).await.unwrap();
    assert_eq!(
        (info.author.as_str(), info.message.as_str()),
        ("Dev <dev@example.com>", "first\n\nwith a body")
    );
    assert!(info.date.starts_with("20"), "{}", info.date);
}

#[tokio::test]
async fn an_unreachable_server_is_a_clear_error() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = GitCache::new(cache_dir.path());
    let url = format!("git://127.0.0.1:{port}/nothing.git");
    let err =
        cache.resolve(&url, "main", &Credentials::default(), Duration::ZERO).await.unwrap_err().to_string();
    assert!(err.contains("ls-remote") && err.contains(&url), "{err}");
}
