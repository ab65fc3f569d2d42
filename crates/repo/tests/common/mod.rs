//! Real chart servers for the Helm tests, from Debian's packages (`hack/packages` installs them): a Helm
//! chart repository served by lighttpd (optionally behind basic auth) and an OCI registry (the CNCF
//! distribution registry, `docker-registry`, optionally behind htpasswd auth). Each runs in the
//! foreground on a free port with its configuration in a temporary directory and is killed when dropped;
//! `stop` ends it gracefully and returns its request log.

#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const LIGHTTPD: &str = "/usr/sbin/lighttpd";
const LIGHTTPD_MODULES: &str = "/usr/lib/lighttpd";
const REGISTRY: &str = "/usr/bin/docker-registry";
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// The user of an [`OciRegistry`] started with auth.
pub const OCI_USER: &str = "berth";
pub const OCI_PASSWORD: &str = "oci-s3cret";
/// bcrypt (cost 4) of [`OCI_PASSWORD`]: the registry's htpasswd accepts bcrypt only.
const OCI_PASSWORD_BCRYPT: &str = "$2b$04$QIbjp66oEU/IlifNYOwe/OGXVlqvodjpELBKEDS.77C0qSB5Yg4FG";

/// The `helm` binary from `PATH`; panics with how to get it when it is missing.
pub fn helm() -> PathBuf {
    let found = Command::new("helm").arg("version").stdout(Stdio::null()).stderr(Stdio::null()).status();
    assert!(
        found.is_ok_and(|s| s.success()),
        "the Helm tests need the real `helm` on PATH: run `eval \"$(./hack/cluster env)\"` first \
         (hack/test does), or `hack/deps` to build it"
    );
    PathBuf::from("helm")
}

/// Runs `helm args` in `dir` with a private home under `dir`; panics with helm's output on failure.
pub fn run_helm(dir: &Path, args: &[&str]) -> String {
    let home = dir.join(".helm-home");
    let out = Command::new(helm())
        .args(args)
        .current_dir(dir)
        .env("HOME", &home)
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .output()
        .expect("helm runs");
    assert!(
        out.status.success(),
        "helm {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// How many lines of `log` contain `needle`.
pub fn count(log: &str, needle: &str) -> usize {
    log.lines().filter(|line| line.contains(needle)).count()
}

/// A Helm chart repository: packaged charts and their `index.yaml`, served by lighttpd over HTTP.
pub struct ChartServer {
    process: ServerProcess,
    port: u16,
    _dir: tempfile::TempDir,
}

impl ChartServer {
    /// Packages each chart folder, indexes them and serves the repository, behind basic auth for
    /// `(user, password)` when given.
    pub fn start(charts: &[&Path], auth: Option<(&str, &str)>) -> ChartServer {
        require(LIGHTTPD, "lighttpd");
        for module in ["mod_auth", "mod_authn_file", "mod_accesslog"] {
            require(&format!("{LIGHTTPD_MODULES}/{module}.so"), "lighttpd");
        }
        let dir = tempfile::tempdir().expect("a temporary directory for lighttpd");
        let www = dir.path().join("www");
        std::fs::create_dir_all(&www).unwrap();
        for chart in charts {
            run_helm(
                dir.path(),
                &["package", &chart.display().to_string(), "-d", &www.display().to_string()],
            );
        }
        // Relative chart URLs: the index does not need the port.
        run_helm(dir.path(), &["repo", "index", &www.display().to_string()]);
        let auth_config = match auth {
            Some((user, password)) => {
                let users = dir.path().join("users");
                std::fs::write(&users, format!("{user}:{password}\n")).unwrap();
                format!(
                    "auth.backend = \"plain\"\nauth.backend.plain.userfile = \"{}\"\n\
                     auth.require = (\"/\" => (\"method\" => \"basic\", \"realm\" => \"charts\", \"require\" => \"valid-user\"))\n",
                    users.display()
                )
            }
            None => String::new(),
        };
        let config = dir.path().join("lighttpd.conf");
        let errors = dir.path().join("error.log");
        let access = dir.path().join("access.log");
        let (process, port) = ServerProcess::spawn("lighttpd", access, |port| {
            std::fs::write(
                &config,
                format!(
                    "server.bind = \"127.0.0.1\"\nserver.port = {port}\nserver.document-root = \"{www}\"\n\
                     server.errorlog = \"{errors}\"\naccesslog.filename = \"{access}\"\n\
                     server.modules = (\"mod_auth\", \"mod_authn_file\", \"mod_accesslog\")\n\
                     mimetype.assign = (\".yaml\" => \"text/yaml\", \".tgz\" => \"application/gzip\")\n{auth_config}",
                    www = www.display(),
                    errors = errors.display(),
                    access = dir.path().join("access.log").display(),
                ),
            )
            .unwrap();
            let mut cmd = Command::new(LIGHTTPD);
            cmd.arg("-D").arg("-f").arg(&config).stdout(Stdio::null()).stderr(Stdio::null());
            (cmd, errors.clone())
        });
        ChartServer { process, port, _dir: dir }
    }

    /// `http://127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops lighttpd (which writes out its buffered access log) and returns the access log.
    pub fn stop(self) -> String {
        self.process.stop()
    }
}

/// An OCI registry (the CNCF distribution registry) on `127.0.0.1:<port>`, plain HTTP.
pub struct OciRegistry {
    process: ServerProcess,
    port: u16,
    auth: bool,
    dir: tempfile::TempDir,
}

impl OciRegistry {
    /// Starts the registry, behind htpasswd auth for [`OCI_USER`] / [`OCI_PASSWORD`] when `auth`.
    pub fn start(auth: bool) -> OciRegistry {
        require(REGISTRY, "docker-registry");
        let dir = tempfile::tempdir().expect("a temporary directory for the registry");
        let storage = dir.path().join("storage");
        std::fs::create_dir_all(&storage).unwrap();
        let auth_config = if auth {
            let htpasswd = dir.path().join("htpasswd");
            std::fs::write(&htpasswd, format!("{OCI_USER}:{OCI_PASSWORD_BCRYPT}\n")).unwrap();
            format!("auth:\n  htpasswd:\n    realm: charts\n    path: {}\n", htpasswd.display())
        } else {
            String::new()
        };
        let config = dir.path().join("config.yml");
        let log = dir.path().join("registry.log");
        let (process, port) = ServerProcess::spawn("docker-registry", log.clone(), |port| {
            std::fs::write(
                &config,
                format!(
                    "version: 0.1\nlog:\n  level: warn\n\
                     storage:\n  filesystem:\n    rootdirectory: {}\n\
                     http:\n  addr: 127.0.0.1:{port}\n{auth_config}",
                    storage.display()
                ),
            )
            .unwrap();
            // The access log (one combined-format line per request) goes to stdout, the rest to stderr.
            let file = std::fs::File::create(&log).unwrap();
            let mut cmd = Command::new(REGISTRY);
            cmd.arg("serve")
                .arg(&config)
                .stdout(Stdio::from(file.try_clone().unwrap()))
                .stderr(Stdio::from(file));
            (cmd, log.clone())
        });
        OciRegistry { process, port, auth, dir }
    }

    /// `127.0.0.1:<port>`, how Argo CD writes an OCI repository URL (no scheme).
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Packages the chart folder and pushes it to `oci://<host>/<namespace>`.
    pub fn push(&self, chart: &Path, namespace: &str) {
        let work = self.dir.path().join(format!("push-{}", std::process::id()));
        std::fs::create_dir_all(&work).unwrap();
        let out =
            run_helm(&work, &["package", &chart.display().to_string(), "-d", &work.display().to_string()]);
        let archive = out.trim().rsplit(": ").next().expect("helm package names the archive").to_string();
        let target = format!("oci://{}/{namespace}", self.host());
        let mut args = vec!["push", archive.as_str(), target.as_str(), "--plain-http"];
        if self.auth {
            args.extend(["--username", OCI_USER, "--password", OCI_PASSWORD]);
        }
        run_helm(&work, &args);
    }

    /// Stops the registry and returns its log (one line per request).
    pub fn stop(self) -> String {
        self.process.stop()
    }
}

/// A server process killed when dropped.
struct ServerProcess {
    child: Option<Child>,
    name: &'static str,
    log: PathBuf,
}

impl ServerProcess {
    /// Starts the command `make(port)` returns (with the file its errors go to) on a free port, until one
    /// listens; `log` is what [`ServerProcess::stop`] returns.
    fn spawn(
        name: &'static str,
        log: PathBuf,
        mut make: impl FnMut(u16) -> (Command, PathBuf),
    ) -> (ServerProcess, u16) {
        let mut last_errors = String::new();
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let (mut cmd, errors) = make(port);
            let child = cmd.stdin(Stdio::null()).spawn().unwrap_or_else(|e| panic!("{name} starts: {e}"));
            let mut process = ServerProcess { child: Some(child), name, log: log.clone() };
            let deadline = Instant::now() + START_TIMEOUT;
            loop {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return (process, port);
                }
                let child = process.child.as_mut().unwrap();
                if child.try_wait().unwrap().is_some() {
                    // Most likely the port was taken between picking and binding: try another.
                    last_errors = std::fs::read_to_string(&errors).unwrap_or_default();
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{name} did not listen on port {port} within {START_TIMEOUT:?}"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("{name} did not start: {last_errors}");
    }

    /// Asks the server to shut down (SIGTERM), waits for it, and returns its log.
    fn stop(mut self) -> String {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().unwrap().is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                    panic!("{} did not stop within 10 s of SIGTERM", self.name);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn require(path: &str, package: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} is missing: install Debian's {package} package (hack/packages does)"
    );
}

/// `Kind/name` of each rendered object, in order.
pub fn names(manifests: &[berth_repo::render::Manifest]) -> Vec<String> {
    manifests
        .iter()
        .map(|m| {
            format!(
                "{}/{}",
                m.object["kind"].as_str().unwrap(),
                m.object["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect()
}
