//! A real Gitea on loopback, for the ApplicationSet `pullRequest` and `scmProvider` generators: the
//! binary `hack/deps` builds (found on `PATH`, as `eval "$(hack/cluster env)"` sets it), with SQLite, no
//! SSH, no mailer, no registration, offline, in a temporary directory, killed when dropped. An admin user
//! and an API token are made at start; the helpers create organisations, repositories, branches (pushed
//! with the system `git` over HTTP), pull requests and labels through Gitea's REST API.
//!
//! ```no_run
//! # async fn example() {
//! use berth_testkit::gitea::Gitea;
//! let gitea = Gitea::start().await;
//! gitea.create_org("acme").await;
//! gitea.create_repo("acme", "web").await;
//! gitea.push_branch("acme", "web", "main", None, &[("apps/web.yaml", "kind: ConfigMap\n")]).await;
//! gitea.push_branch("acme", "web", "feature", Some("main"), &[("README.md", "hi\n")]).await;
//! let number = gitea.open_pull_request("acme", "web", "feature", "main", "Add a README").await;
//! gitea.add_label("acme", "web", number, "preview").await;
//! // point a generator at gitea.url() with gitea.token()
//! # }
//! ```

use crate::GitRepo;
use crate::git_servers::{free_port, random_hex};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a pushed branch may take to appear in the API (Gitea records pushes from a queue).
const PUSH_TIMEOUT: Duration = Duration::from_secs(30);
const ADMIN: &str = "berth-admin";

/// A running Gitea with one admin user and that user's API token (all scopes).
pub struct Gitea {
    child: Child,
    port: u16,
    binary: PathBuf,
    config: PathBuf,
    dir: tempfile::TempDir,
    token: String,
    http: reqwest::Client,
}

impl Gitea {
    /// Starts Gitea on a free loopback port and waits (with a deadline) until its API answers, then
    /// creates the admin user and its token. Panics naming `hack/deps` when the binary is missing, or with
    /// Gitea's log when it does not start.
    pub async fn start() -> Gitea {
        let binary = binary();
        let dir = tempfile::tempdir().expect("a temporary directory for Gitea");
        let config = dir.path().join("app.ini");
        let log = dir.path().join("gitea.log");
        let http = crate::http_builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("an HTTP client for Gitea's API");
        let mut failures = Vec::new();
        for _ in 0..3 {
            let port = free_port();
            std::fs::write(&config, app_ini(dir.path(), &binary, port)).unwrap();
            let log_file = std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap();
            let mut child = Command::new(&binary)
                .arg("--config")
                .arg(&config)
                .arg("--work-path")
                .arg(dir.path())
                .arg("web")
                .current_dir(dir.path())
                .env("HOME", dir.path())
                .stdin(Stdio::null())
                .stdout(log_file.try_clone().unwrap())
                .stderr(log_file)
                .spawn()
                .unwrap_or_else(|e| panic!("{} does not start: {e} (run hack/deps)", binary.display()));
            let version = format!("http://127.0.0.1:{port}/api/v1/version");
            let deadline = Instant::now() + START_TIMEOUT;
            let failure = loop {
                if let Some(status) = child.try_wait().unwrap() {
                    break format!("port {port}: gitea exited with {status}");
                }
                if let Ok(response) = http.get(&version).send().await
                    && response.status().is_success()
                {
                    let mut gitea = Gitea {
                        child,
                        port,
                        binary: binary.clone(),
                        config: config.clone(),
                        dir,
                        token: String::new(),
                        http,
                    };
                    gitea.create_admin();
                    return gitea;
                }
                if Instant::now() > deadline {
                    break format!("port {port}: gitea's API did not answer within {START_TIMEOUT:?}");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            let _ = child.kill();
            let _ = child.wait();
            failures.push(failure);
        }
        panic!(
            "Gitea could not be started:\n{}\nGitea's log:\n{}",
            failures.join("\n"),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// `http://127.0.0.1:<port>/`: the instance URL, what a generator's `api` holds.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// The loopback port Gitea listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The admin user's name.
    pub fn admin(&self) -> &str {
        ADMIN
    }

    /// The admin user's API token (every scope).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// `http://127.0.0.1:<port>/<owner>/<repo>.git`, the repository's clone URL over HTTP.
    pub fn clone_url(&self, owner: &str, repo: &str) -> String {
        format!("{}{owner}/{repo}.git", self.url())
    }

    /// Creates the public organisation `name`.
    pub async fn create_org(&self, name: &str) {
        self.api(reqwest::Method::POST, "/orgs", Some(json!({ "username": name, "visibility": "public" })))
            .await;
    }

    /// Creates the empty repository `owner/name` (an organisation, or the admin user itself), with
    /// `main` as its default branch; push to it with [`Gitea::push_branch`].
    pub async fn create_repo(&self, owner: &str, name: &str) {
        let body = json!({ "name": name, "default_branch": "main", "auto_init": false, "private": false });
        let path = if owner == ADMIN { "/user/repos".to_string() } else { format!("/orgs/{owner}/repos") };
        self.api(reqwest::Method::POST, &path, Some(body)).await;
    }

    /// Pushes a commit holding `files` (path, content) to `branch` of `owner/repo` with the system `git`
    /// over HTTP, on top of `from` (a branch already there) or as a first commit; returns its SHA once
    /// the API shows the branch at it.
    pub async fn push_branch(
        &self,
        owner: &str,
        repo: &str,
        branch: &str,
        from: Option<&str>,
        files: &[(&str, &str)],
    ) -> String {
        let work = GitRepo::new();
        let url = self.clone_url(owner, repo);
        if let Some(from) = from {
            self.git(&work, &["fetch", "--quiet", &url, &format!("refs/heads/{from}")]);
            work.git(&["reset", "--quiet", "--hard", "FETCH_HEAD"]);
        }
        for (path, content) in files {
            work.write(path, content);
        }
        let sha = work.commit(&format!("{branch}: {} file(s)", files.len()));
        self.git(&work, &["push", "--quiet", "--force", &url, &format!("HEAD:refs/heads/{branch}")]);
        let path = format!("/repos/{owner}/{repo}/branches/{branch}");
        let deadline = Instant::now() + PUSH_TIMEOUT;
        loop {
            let (status, body) = self.request(reqwest::Method::GET, &path, None).await;
            if status.is_success() && body["commit"]["id"] == sha.as_str() {
                return sha;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {PUSH_TIMEOUT:?} waiting for Gitea to show {owner}/{repo} branch {branch} at {sha}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Opens a pull request from `head` into `base` of `owner/repo`; returns its number.
    pub async fn open_pull_request(
        &self,
        owner: &str,
        repo: &str,
        head: &str,
        base: &str,
        title: &str,
    ) -> u64 {
        let body = json!({ "head": head, "base": base, "title": title });
        let pull = self.api(reqwest::Method::POST, &format!("/repos/{owner}/{repo}/pulls"), Some(body)).await;
        pull["number"].as_u64().unwrap_or_else(|| panic!("Gitea's pull request has no number: {pull}"))
    }

    /// Closes pull request `number` of `owner/repo` (without merging).
    pub async fn close_pull_request(&self, owner: &str, repo: &str, number: u64) {
        let path = format!("/repos/{owner}/{repo}/pulls/{number}");
        self.api(reqwest::Method::PATCH, &path, Some(json!({ "state": "closed" }))).await;
    }

    /// Adds the label `label` to issue or pull request `number` of `owner/repo`, creating the repository's
    /// label first when it has none of that name.
    pub async fn add_label(&self, owner: &str, repo: &str, number: u64, label: &str) {
        let id = self.label_id(owner, repo, label).await;
        let path = format!("/repos/{owner}/{repo}/issues/{number}/labels");
        self.api(reqwest::Method::POST, &path, Some(json!({ "labels": [id] }))).await;
    }

    /// The id of the label `name` of `owner/repo`, created when missing.
    pub async fn label_id(&self, owner: &str, repo: &str, name: &str) -> u64 {
        let labels =
            self.api(reqwest::Method::GET, &format!("/repos/{owner}/{repo}/labels?limit=50"), None).await;
        let existing = labels.as_array().into_iter().flatten().find(|label| label["name"] == name);
        let label = match existing {
            Some(label) => label.clone(),
            None => {
                let body = json!({ "name": name, "color": "#0e8a16" });
                self.api(reqwest::Method::POST, &format!("/repos/{owner}/{repo}/labels"), Some(body)).await
            }
        };
        label["id"].as_u64().unwrap_or_else(|| panic!("Gitea's label has no id: {label}"))
    }

    /// Calls `/api/v1<path>` as the admin; panics with Gitea's answer unless it is a success.
    pub async fn api(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let (status, answer) = self.request(method.clone(), path, body).await;
        assert!(status.is_success(), "Gitea {method} {path}: {status}: {answer}");
        answer
    }

    async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (reqwest::StatusCode, Value) {
        let url = format!("http://127.0.0.1:{}/api/v1{path}", self.port);
        let mut request =
            self.http.request(method.clone(), &url).header("Authorization", format!("token {}", self.token));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response =
            request.send().await.unwrap_or_else(|e| panic!("Gitea {method} {path}: no answer: {e}"));
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// Runs `git args` in `work` with the token sent as a header from the environment (never in the
    /// command line or a URL, so never in a process listing or an error).
    fn git(&self, work: &GitRepo, args: &[&str]) {
        let out = Command::new("git")
            .args(args)
            .current_dir(work.path())
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_CONFIG_COUNT", "1")
            .env("GIT_CONFIG_KEY_0", "http.extraHeader")
            .env("GIT_CONFIG_VALUE_0", format!("Authorization: token {}", self.token))
            .output()
            .expect("git runs");
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// The admin user and its token, with Gitea's own CLI against the same configuration.
    fn create_admin(&mut self) {
        let password = format!("Berth-{}", random_hex(12));
        self.cli(&[
            "admin",
            "user",
            "create",
            "--username",
            ADMIN,
            "--email",
            "admin@example.com",
            &format!("--password={password}"),
            "--admin",
            "--must-change-password=false",
        ]);
        let token = self.cli(&[
            "admin",
            "user",
            "generate-access-token",
            "--username",
            ADMIN,
            "--token-name",
            "berth-test",
            "--scopes",
            "all",
            "--raw",
        ]);
        // Gitea's own log (the warning about root) shares stdout: the token is the line of hex digits.
        let token = token
            .lines()
            .map(str::trim)
            .find(|line| line.len() >= 20 && line.bytes().all(|b| b.is_ascii_hexdigit()))
            .expect("gitea admin user generate-access-token printed no token");
        self.token = token.to_string();
    }

    /// Runs `gitea --config … <args>`; panics with its output on failure.
    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(&self.binary)
            .arg("--config")
            .arg(&self.config)
            .arg("--work-path")
            .arg(self.dir.path())
            .args(args)
            .current_dir(self.dir.path())
            .env("HOME", self.dir.path())
            .output()
            .expect("gitea runs");
        assert!(
            out.status.success(),
            "gitea {}: {}",
            args.first().copied().unwrap_or_default(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// Stops Gitea now (dropping it does the same).
    pub fn stop(self) {}
}

impl Drop for Gitea {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `gitea` on `PATH` (hack/deps links it into the directory `hack/cluster env` puts there).
fn binary() -> PathBuf {
    let found = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("gitea"))
        .find(|path| path.is_file());
    let Some(path) = found else {
        panic!(
            "the Gitea tests need the real `gitea` on PATH: run `hack/deps` (it builds it), then \
             `eval \"$(hack/cluster env)\"` (hack/test does both)"
        );
    };
    path
}

/// Where Gitea reads its templates and options: beside the binary hack/deps built (it has no `bindata`).
fn static_root(binary: &Path) -> Option<PathBuf> {
    let dir = std::fs::canonicalize(binary).ok()?.parent()?.to_path_buf();
    dir.join("templates").is_dir().then_some(dir)
}

fn app_ini(dir: &Path, binary: &Path, port: u16) -> String {
    let static_root = static_root(binary)
        .map(|root| format!("STATIC_ROOT_PATH = {}\n", root.display()))
        .unwrap_or_default();
    format!(
        "APP_NAME = berth-test
RUN_MODE = prod
WORK_PATH = {dir}
I_AM_BEING_UNSAFE_RUNNING_AS_ROOT = true

[server]
PROTOCOL = http
HTTP_ADDR = 127.0.0.1
HTTP_PORT = {port}
ROOT_URL = http://127.0.0.1:{port}/
DOMAIN = 127.0.0.1
DISABLE_SSH = true
START_SSH_SERVER = false
OFFLINE_MODE = true
LFS_START_SERVER = false
APP_DATA_PATH = {dir}/data
{static_root}
[database]
DB_TYPE = sqlite3
PATH = {dir}/data/gitea.db

[repository]
ROOT = {dir}/repositories
DEFAULT_BRANCH = main

[security]
INSTALL_LOCK = true
SECRET_KEY = {secret}
INTERNAL_TOKEN = {internal}
PASSWORD_COMPLEXITY = off

[service]
DISABLE_REGISTRATION = true

[mailer]
ENABLED = false

[cron]
ENABLED = false

[actions]
ENABLED = false

[oauth2]
ENABLED = false

[indexer]
ISSUE_INDEXER_TYPE = db

[log]
MODE = console
LEVEL = warn
ROOT_PATH = {dir}/log
",
        dir = dir.display(),
        secret = random_hex(24),
        internal = random_hex(32),
    )
}
