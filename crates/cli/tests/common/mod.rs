//! What the CLI's integration tests share: the built binary with a config directory of its own, and the API
//! server (and the controller) in-process on a free port (plain HTTP or HTTPS), stopped when dropped.
#![allow(dead_code)] // each test binary uses its own part

// The server's tests start berth in-process the same way; one file serves both crates.
#[path = "../../../server/tests/common/in_process.rs"]
mod in_process;
pub mod replicas;
pub use in_process::*;

use std::path::PathBuf;
use std::process::Stdio;

/// What one run of the binary did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    #[track_caller]
    pub fn ok(self) -> Run {
        assert_eq!(self.code, 0, "berth failed\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }

    #[track_caller]
    pub fn failed(self) -> Run {
        assert_eq!(
            self.code, 1,
            "berth should have failed\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

/// The binary with its own config directory and none of the caller's `BERTH_*` settings.
pub struct Cli {
    home: tempfile::TempDir,
}

impl Cli {
    pub fn new() -> Cli {
        Cli { home: tempfile::tempdir().unwrap() }
    }

    pub fn config_file(&self) -> PathBuf {
        self.home.path().join("berth").join("config")
    }

    pub async fn run(&self, args: &[&str]) -> Run {
        self.run_with(args, &[]).await
    }

    pub async fn run_with(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut command = tokio::process::Command::from(self.command(args, env));
        // A test that gives up waiting (a timeout) leaves no berth behind.
        let out = command.kill_on_drop(true).output().await.expect("berth runs");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8(out.stdout).expect("UTF-8 stdout"),
            stderr: String::from_utf8(out.stderr).expect("UTF-8 stderr"),
        }
    }

    /// `berth ARGS | head -n LINES`: the reader closes berth's stdout after `lines` lines (`0`: before reading
    /// anything); `stdout` holds the lines read.
    pub async fn run_into_closed_pipe(&self, args: &[&str], lines: usize) -> Run {
        let mut command = self.command(args, &[]);
        tokio::task::spawn_blocking(move || {
            use std::io::BufRead;
            let mut child =
                command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("berth runs");
            let mut reader = std::io::BufReader::new(child.stdout.take().unwrap());
            let mut stdout = String::new();
            for _ in 0..lines {
                reader.read_line(&mut stdout).unwrap();
            }
            drop(reader);
            let out = child.wait_with_output().expect("berth ends");
            Run {
                code: out.status.code().unwrap_or(-1),
                stdout,
                stderr: String::from_utf8(out.stderr).expect("UTF-8 stderr"),
            }
        })
        .await
        .unwrap()
    }

    /// The binary with this config directory, `env` set, and none of the caller's `BERTH_*` session.
    fn command(&self, args: &[&str], env: &[(&str, &str)]) -> std::process::Command {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_berth"));
        command
            .args(args)
            .env("XDG_CONFIG_HOME", self.home.path())
            .env("HOME", self.home.path())
            .env("NO_COLOR", "1")
            .env_remove("BERTH_SERVER")
            .env_remove("BERTH_AUTH_TOKEN")
            .env_remove("BERTH_CONFIG")
            .envs(env.iter().copied())
            .stdin(Stdio::null());
        command
    }

    /// `berth login HOST --plaintext` as `username`; it must succeed.
    pub async fn login(&self, host: &str, username: &str, password: &str) {
        self.run(&["login", host, "--plaintext", "--username", username, "--password", password]).await.ok();
    }

    /// `berth app create NAME` of `path` at branch main of `repo`, deployed to `dest` (created by the sync);
    /// it must succeed.
    pub async fn create_app(&self, name: &str, repo: &str, path: &str, dest: &str) -> Run {
        let args = [
            "app",
            "create",
            name,
            "--repo",
            repo,
            "--path",
            path,
            "--revision",
            "main",
            "--dest-namespace",
            dest,
            "--sync-option",
            "CreateNamespace=true",
        ];
        self.run(&args).await.ok()
    }

    /// The token `berth login` saved.
    pub fn saved_token(&self) -> String {
        let config: serde_json::Value =
            serde_saphyr::from_str(&std::fs::read_to_string(self.config_file()).unwrap()).unwrap();
        config["contexts"][0]["token"].as_str().expect("a token in the config").to_string()
    }
}

/// The API server alone on 127.0.0.1:PORT, stopped when dropped.
pub async fn start_server(client: &kube::Client, namespace: &str) -> InProcess {
    InProcess::start(client, namespace, Options::default()).await
}

/// The HTTPS server of [`start_tls_server`], stopped when dropped.
pub struct Server {
    pub address: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The API server as `berth run` starts it without `--insecure`: HTTPS with a self-signed certificate.
pub async fn start_tls_server(client: &kube::Client, namespace: &str) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = berth_server::api::ServerConfig {
        dex_server: None,
        namespace: namespace.into(),
        addr,
        insecure: false,
        metrics_on_api_port: false,
        controller: Default::default(),
        settings: None,
    };
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(berth_server::api::serve_listener(client.clone(), config, listener, async {
        let _ = rx.await;
    }));
    Server { address: addr.to_string(), stop: Some(tx) }
}
