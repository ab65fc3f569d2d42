//! Real git servers on loopback, from Debian's packages (`hack/packages` installs them): git's smart
//! HTTP behind lighttpd with basic auth, and git over Debian's sshd with a generated key. Each server
//! runs in the foreground on a free port with its configuration in a temporary directory, and is killed
//! when dropped.
//!
//! ```no_run
//! use berth_testkit::{GitRepo, git_servers::GitHttpServer};
//! let repo = GitRepo::new();
//! repo.write("apps/web/web.yaml", "kind: ConfigMap\n");
//! repo.commit("first");
//! let server = GitHttpServer::start();
//! let url = server.host("manifests", &repo); // http://127.0.0.1:<port>/git/manifests.git
//! // clone `url` as server.username() with server.password()
//! ```

use crate::GitRepo;
use std::hash::{BuildHasher, Hasher};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const LIGHTTPD: &str = "/usr/sbin/lighttpd";
const LIGHTTPD_MODULES: &str = "/usr/lib/lighttpd";
const SSHD: &str = "/usr/sbin/sshd";
const SSH_KEYGEN: &str = "/usr/bin/ssh-keygen";
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// git's smart HTTP (`git http-backend` as a CGI program) behind lighttpd on `127.0.0.1:<port>`, every
/// path behind HTTP basic auth for one user whose name and password are chosen per server.
pub struct GitHttpServer {
    process: ServerProcess,
    username: String,
    password: String,
}

impl GitHttpServer {
    /// Starts lighttpd and waits until it accepts connections; panics naming the missing package or with
    /// lighttpd's log when it cannot start.
    pub fn start() -> GitHttpServer {
        require(LIGHTTPD, "lighttpd");
        for module in ["mod_cgi", "mod_auth", "mod_authn_file"] {
            require(&format!("{LIGHTTPD_MODULES}/{module}.so"), "lighttpd");
        }
        let backend = git_exec_path().join("git-http-backend");
        require(&backend.display().to_string(), "git");
        let dir = tempfile::tempdir().expect("a temporary directory for lighttpd");
        let (username, password) = (format!("berth-{}", random_hex(4)), format!("s3cret-{}", random_hex(8)));
        let repos = dir.path().join("repos");
        let www = dir.path().join("www");
        std::fs::create_dir_all(&repos).unwrap();
        std::fs::create_dir_all(&www).unwrap();
        let users = dir.path().join("users");
        std::fs::write(&users, format!("{username}:{password}\n")).unwrap();
        let config = dir.path().join("lighttpd.conf");
        let log = dir.path().join("lighttpd.log");
        let process = ServerProcess::spawn("lighttpd", dir, &repos, &log, |port| {
            std::fs::write(
                &config,
                format!(
                    r#"server.bind = "127.0.0.1"
server.port = {port}
server.document-root = "{www}"
server.errorlog = "{log}"
# mod_auth before mod_cgi: authentication must run before the CGI program.
server.modules = ("mod_alias", "mod_setenv", "mod_auth", "mod_authn_file", "mod_cgi")
alias.url = ("/git/" => "{backend}/")
cgi.assign = ("" => "")
setenv.set-environment = ("GIT_PROJECT_ROOT" => "{repos}", "GIT_HTTP_EXPORT_ALL" => "")
auth.backend = "plain"
auth.backend.plain.userfile = "{users}"
auth.require = ("/" => ("method" => "basic", "realm" => "git", "require" => "valid-user"))
"#,
                    www = www.display(),
                    log = log.display(),
                    backend = backend.display(),
                    repos = repos.display(),
                    users = users.display(),
                ),
            )
            .unwrap();
            let mut cmd = Command::new(LIGHTTPD);
            cmd.arg("-D").arg("-f").arg(&config);
            cmd
        });
        GitHttpServer { process, username, password }
    }

    /// The one user allowed in.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// That user's password.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The loopback port lighttpd listens on.
    pub fn port(&self) -> u16 {
        self.process.port
    }

    /// The prefix every repository URL starts with (`http://127.0.0.1:<port>/git/`), as a `repo-creds`
    /// secret would hold it.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/git/", self.process.port)
    }

    /// `http://127.0.0.1:<port>/git/<repo>.git`; `repo` may contain slashes (`team/app`).
    pub fn url(&self, repo: &str) -> String {
        format!("{}{repo}.git", self.base_url())
    }

    /// Serves `source`'s branches and tags as the bare repository `<repo>.git` and returns its URL.
    /// Calling it again publishes the commits made since.
    pub fn host(&self, repo: &str, source: &GitRepo) -> String {
        publish(&self.process.repos, repo, source);
        self.url(repo)
    }
}

/// git over SSH: Debian's sshd on `127.0.0.1:<port>`, for the current user, with public-key
/// authentication only (a client key generated per server) and a host key generated per server.
pub struct GitSshServer {
    process: ServerProcess,
    user: String,
    private_key: String,
    host_public_key: String,
}

impl GitSshServer {
    /// Starts sshd and waits until it accepts connections; panics naming the missing package or with
    /// sshd's log when it cannot start. It accepts the client's `GIT_PROTOCOL` variable, as git hosts
    /// configure sshd (GitLab, Gitea), so git speaks protocol v2.
    pub fn start() -> GitSshServer {
        Self::start_with(true)
    }

    /// A server as Debian's default sshd configuration has it: `GIT_PROTOCOL` is not accepted, so git
    /// falls back to protocol v0, where a commit that is no branch or tag tip cannot be fetched by SHA.
    pub fn start_protocol_v0() -> GitSshServer {
        Self::start_with(false)
    }

    fn start_with(protocol_v2: bool) -> GitSshServer {
        require(SSHD, "openssh-server");
        require(SSH_KEYGEN, "openssh-client");
        let user = current_user();
        if user == "root" {
            // sshd started as root insists on its privilege separation directory, which Debian's service
            // creates at boot; a container that never ran the service has none.
            std::fs::create_dir_all("/run/sshd").expect("create /run/sshd for sshd");
        }
        let dir = tempfile::tempdir().expect("a temporary directory for sshd");
        let host_key = dir.path().join("host_key");
        let client_key = dir.path().join("client_key");
        keygen(&host_key, "berth-test-host");
        keygen(&client_key, "berth-test-client");
        let authorized_keys = dir.path().join("authorized_keys");
        std::fs::copy(client_key.with_extension("pub"), &authorized_keys).unwrap();
        let private_key = std::fs::read_to_string(&client_key).unwrap();
        let host_public_key = std::fs::read_to_string(host_key.with_extension("pub")).unwrap();
        // The key type and the key, without the comment.
        let host_public_key = host_public_key.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
        let repos = dir.path().join("repos");
        std::fs::create_dir_all(&repos).unwrap();
        let config = dir.path().join("sshd_config");
        let log = dir.path().join("sshd.log");
        let process = ServerProcess::spawn("sshd", dir, &repos, &log, |port| {
            std::fs::write(
                &config,
                format!(
                    "ListenAddress 127.0.0.1
Port {port}
HostKey {host_key}
PidFile none
AuthorizedKeysFile {authorized_keys}
AllowUsers {user}
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
AllowTcpForwarding no
X11Forwarding no
PrintMotd no
LogLevel VERBOSE
{accept_env}",
                    accept_env = if protocol_v2 { "AcceptEnv GIT_PROTOCOL\n" } else { "" },
                    host_key = host_key.display(),
                    authorized_keys = authorized_keys.display(),
                ),
            )
            .unwrap();
            let mut cmd = Command::new(SSHD);
            cmd.arg("-D").arg("-e").arg("-f").arg(&config);
            cmd
        });
        GitSshServer { process, user, private_key, host_public_key }
    }

    /// The account git logs in as: the current user (sshd runs as it).
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The loopback port sshd listens on.
    pub fn port(&self) -> u16 {
        self.process.port
    }

    /// `ssh://<user>@127.0.0.1:<port>/<absolute path>/<repo>.git`.
    pub fn url(&self, repo: &str) -> String {
        format!(
            "ssh://{}@127.0.0.1:{}{}/{repo}.git",
            self.user,
            self.process.port,
            self.process.repos.display()
        )
    }

    /// Serves `source`'s branches and tags as the bare repository `<repo>.git` and returns its URL.
    /// Calling it again publishes the commits made since.
    pub fn host(&self, repo: &str, source: &GitRepo) -> String {
        publish(&self.process.repos, repo, source);
        self.url(repo)
    }

    /// The client's private key, the only one the server accepts (OpenSSH format, as `sshPrivateKey`
    /// holds it).
    pub fn private_key(&self) -> String {
        self.private_key.clone()
    }

    /// The known_hosts line for this server's host key: `[127.0.0.1]:<port> ssh-ed25519 AAAA…`.
    pub fn known_hosts(&self) -> String {
        format!("[127.0.0.1]:{} {}\n", self.process.port, self.host_public_key)
    }
}

/// A server process in the foreground on a free loopback port, killed on drop with its directory.
struct ServerProcess {
    child: Child,
    port: u16,
    repos: PathBuf,
    _dir: tempfile::TempDir,
}

impl ServerProcess {
    /// Spawns the command `configure` writes for a free port, and waits until the port accepts
    /// connections. A server that exits early (the port taken meanwhile) is tried again on another port.
    fn spawn(
        name: &str,
        dir: tempfile::TempDir,
        repos: &Path,
        log: &Path,
        mut configure: impl FnMut(u16) -> Command,
    ) -> ServerProcess {
        let mut failures = Vec::new();
        for _ in 0..3 {
            let port = free_port();
            let log_file = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
            let mut child = configure(port)
                .stdin(Stdio::null())
                .stdout(log_file.try_clone().unwrap())
                .stderr(log_file)
                .spawn()
                .unwrap_or_else(|e| panic!("{name} does not start: {e} (run hack/packages)"));
            let deadline = Instant::now() + START_TIMEOUT;
            let failure = loop {
                if let Some(status) = child.try_wait().unwrap() {
                    break format!("port {port}: {name} exited with {status}");
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return ServerProcess { child, port, repos: repos.to_path_buf(), _dir: dir };
                }
                if Instant::now() > deadline {
                    break format!("port {port}: {name} did not listen within {START_TIMEOUT:?}");
                }
                std::thread::sleep(Duration::from_millis(20));
            };
            let _ = child.kill();
            let _ = child.wait();
            failures.push(failure);
        }
        panic!(
            "{name} could not be started:\n{}\n{name}'s log:\n{}",
            failures.join("\n"),
            std::fs::read_to_string(log).unwrap_or_default()
        );
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn require(path: &str, package: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} is missing: run hack/packages (it installs Debian's {package})"
    );
}

fn git_exec_path() -> PathBuf {
    let out = Command::new("git").arg("--exec-path").output().expect("git runs (run hack/packages)");
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

fn current_user() -> String {
    let out = Command::new("id").arg("-un").output().expect("id runs");
    assert!(out.status.success(), "id -un: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn keygen(path: &Path, comment: &str) {
    let out = Command::new(SSH_KEYGEN)
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path)
        .output()
        .expect("ssh-keygen runs");
    assert!(out.status.success(), "ssh-keygen: {}", String::from_utf8_lossy(&out.stderr));
}

/// A port that was free a moment ago.
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Random hex digits, `bytes` of them in pairs (the standard library's per-process random keys).
pub(crate) fn random_hex(bytes: usize) -> String {
    let mut out = String::new();
    while out.len() < bytes * 2 {
        let n = std::collections::hash_map::RandomState::new().build_hasher().finish();
        out.push_str(&format!("{n:016x}"));
    }
    out.truncate(bytes * 2);
    out
}

/// Makes `<root>/<repo>.git` a bare repository holding `source`'s branches and tags, with the same HEAD.
fn publish(root: &Path, repo: &str, source: &GitRepo) {
    assert!(
        !repo.is_empty() && !repo.split('/').any(|part| part.is_empty() || part == "." || part == ".."),
        "a repository name without empty, `.` or `..` parts: {repo:?}"
    );
    let bare = root.join(format!("{repo}.git"));
    let git = |dir: &Path, args: &[&str]| {
        let out = Command::new("git").arg("--git-dir").arg(dir).args(args).output().expect("git runs");
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    if !bare.join("HEAD").exists() {
        std::fs::create_dir_all(&bare).unwrap();
        git(&bare, &["init", "--quiet", "--bare"]);
    }
    let source_git = source.path().join(".git");
    let source_url = source.path().display().to_string();
    git(
        &bare,
        &[
            "fetch",
            "--quiet",
            "--force",
            "--prune",
            &source_url,
            "+refs/heads/*:refs/heads/*",
            "+refs/tags/*:refs/tags/*",
        ],
    );
    let head = git(&source_git, &["symbolic-ref", "HEAD"]);
    git(&bare, &["symbolic-ref", "HEAD", &head]);
}
