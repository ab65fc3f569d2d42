//! The test git servers themselves: they serve what they host, and are gone once dropped.

use berth_testkit::GitRepo;
use berth_testkit::git_servers::{GitHttpServer, GitSshServer};
use std::net::TcpStream;
use std::process::Command;

#[test]
fn the_http_server_serves_its_user_only_and_stops_listening_when_dropped() {
    let repo = GitRepo::new();
    let sha = repo.commit("first");
    let server = GitHttpServer::start();
    let url = server.host("manifests", &repo);
    let with_password = url.replacen("://", &format!("://{}:{}@", server.username(), server.password()), 1);
    let ls_remote = |url: &str| {
        Command::new("git").args(["ls-remote", url]).env("GIT_TERMINAL_PROMPT", "0").output().unwrap()
    };
    let out = ls_remote(&with_password);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("{sha}\trefs/heads/main")));
    assert!(!ls_remote(&url).status.success(), "anonymous access is refused");
    let port = server.port();
    drop(server);
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err(), "lighttpd still listens on {port}");
}

#[test]
fn the_ssh_server_gives_its_host_key_line_and_stops_listening_when_dropped() {
    let server = GitSshServer::start();
    let line = server.known_hosts();
    assert!(line.starts_with(&format!("[127.0.0.1]:{} ssh-ed25519 ", server.port())), "{line}");
    assert!(server.private_key().starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
    assert!(server.url("team/app").starts_with(&format!(
        "ssh://{}@127.0.0.1:{}/",
        server.user(),
        server.port()
    )));
    let port = server.port();
    drop(server);
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err(), "sshd still listens on {port}");
}
