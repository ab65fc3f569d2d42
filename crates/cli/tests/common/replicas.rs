//! Several `berth run` processes on one control namespace (the fault suite, `crates/cli/tests/replicas.rs`),
//! and the API server's audit log, which says which replica made each write (every replica sends
//! `User-Agent: berth/<version> (replica <id>)`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The local cluster of the fault suite (`hack/cluster up --name berth-fault --audit`).
pub struct FaultCluster {
    pub kubeconfig: String,
    pub client: kube::Client,
    /// Its API server's audit log folder.
    logs: PathBuf,
}

impl FaultCluster {
    /// The cluster named by `BERTH_TEST_FAULT_KUBECONFIG` (hack/test sets it); panics naming the variable
    /// when unset, or when that cluster keeps no audit log.
    pub async fn open() -> FaultCluster {
        let kubeconfig = std::env::var("BERTH_TEST_FAULT_KUBECONFIG").expect(
            "BERTH_TEST_FAULT_KUBECONFIG names the fault suite's cluster: `hack/cluster up --name berth-fault --audit`, or run hack/test",
        );
        let logs = Path::new(&kubeconfig).parent().expect("the cluster's folder").join("logs");
        assert!(
            logs.join("audit.log").exists(),
            "{} keeps no audit log: start it with `hack/cluster up --name berth-fault --audit`",
            kubeconfig
        );
        let config = kube::config::Kubeconfig::read_from(&kubeconfig).unwrap();
        let config = kube::Config::from_custom_kubeconfig(config, &Default::default()).await.unwrap();
        let client = kube::Client::try_from(config).unwrap();
        client.apiserver_version().await.expect("the fault cluster answers");
        FaultCluster { kubeconfig, client, logs }
    }

    /// Every write (create, update, patch, delete) the API server recorded in `namespaces`, in order.
    pub fn writes(&self, namespaces: &[&str]) -> Vec<Write> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.logs)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("audit")))
            .collect();
        files.sort();
        let mut out = Vec::new();
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            for line in text.lines() {
                let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else { continue };
                if event["stage"] != "ResponseComplete" {
                    continue;
                }
                let verb = event["verb"].as_str().unwrap_or_default();
                if !matches!(verb, "create" | "update" | "patch" | "delete") {
                    continue;
                }
                let object = &event["objectRef"];
                let namespace = object["namespace"].as_str().unwrap_or_default();
                if !namespaces.contains(&namespace) {
                    continue;
                }
                let code = event["responseStatus"]["code"].as_u64().unwrap_or(0);
                out.push(Write {
                    at: event["stageTimestamp"].as_str().unwrap_or_default().to_string(),
                    received: event["requestReceivedTimestamp"].as_str().unwrap_or_default().to_string(),
                    verb: verb.to_string(),
                    resource: object["resource"].as_str().unwrap_or_default().to_string(),
                    subresource: object["subresource"].as_str().unwrap_or_default().to_string(),
                    namespace: namespace.to_string(),
                    name: object["name"].as_str().unwrap_or_default().to_string(),
                    replica: replica_of(event["userAgent"].as_str().unwrap_or_default()),
                    dry_run: event["requestURI"].as_str().unwrap_or_default().contains("dryRun="),
                    succeeded: (200..300).contains(&code),
                });
            }
        }
        out.sort_by(|a, b| a.at.cmp(&b.at));
        out
    }
}

/// The replica named in a berth User-Agent; `None` for anything else (the test's own requests).
fn replica_of(agent: &str) -> Option<String> {
    let rest = agent.strip_prefix("berth/")?;
    let id = rest.split_once("(replica ")?.1.strip_suffix(')')?;
    Some(id.to_string())
}

/// One write as the API server's audit log recorded it.
#[derive(Clone, Debug)]
pub struct Write {
    /// When the API server completed it: RFC 3339 with microseconds (sorts as text).
    pub at: String,
    /// When the API server received it, in the same form.
    pub received: String,
    pub verb: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
    /// The berth replica that made it.
    pub replica: Option<String>,
    pub dry_run: bool,
    pub succeeded: bool,
}

/// Now, as the audit log writes times.
pub fn audit_now() -> String {
    audit_time(k8s_openapi::jiff::Timestamp::now())
}

/// A moment as the audit log writes times (RFC 3339, microseconds, UTC).
pub fn audit_time(at: k8s_openapi::jiff::Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// One `berth run` process: a replica with its own id, cache and log; killed when dropped.
pub struct Replica {
    pub id: String,
    child: Option<std::process::Child>,
    pub log: PathBuf,
    _work: tempfile::TempDir,
}

impl Replica {
    /// Starts `berth run --replica-id id` on `namespace` of the cluster at `kubeconfig`, with Leases of
    /// `lease_seconds`.
    pub fn start(kubeconfig: &str, namespace: &str, id: &str, lease_seconds: u64) -> Replica {
        let work = tempfile::tempdir().unwrap();
        let log = work.path().join("berth.log");
        let child = Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(["run", "--insecure", "--address", "127.0.0.1", "--port", "0", "--metrics-port", "0"])
            .args(["--namespace", namespace, "--kubeconfig", kubeconfig, "--replica-id", id])
            .args(["--lease-duration-seconds", &lease_seconds.to_string(), "--cache-dir"])
            .arg(work.path().join("cache"))
            .env("RUST_LOG", "warn,berth_controller=info")
            .env_remove("BERTH_REPLICA_ID")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
            .spawn()
            .expect("berth run starts");
        Replica { id: id.to_string(), child: Some(child), log, _work: work }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// `kill -9`.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM (what Kubernetes sends a Pod), then waits up to `within` for a clean exit.
    pub async fn terminate(&mut self, within: Duration) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        signal(child.id(), "TERM");
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "replica {} still runs {within:?} after SIGTERM:\n{}",
                self.id,
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGSTOP: the process is frozen, its Lease no longer renewed.
    pub fn freeze(&self) {
        signal(self.pid(), "STOP");
    }

    /// SIGCONT.
    pub fn thaw(&self) {
        signal(self.pid(), "CONT");
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the replica has said it acts (holds its Lease and its wait after joining is over).
    pub fn acting(&self) -> bool {
        self.log_text().lines().any(|l| l.contains("share changed") && l.contains("acting=true"))
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            // A frozen process would not die of SIGKILL before SIGCONT on every kernel; both are sent.
            signal(child.id(), "CONT");
        }
        self.kill();
    }
}

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill").args([&format!("-{name}"), &pid.to_string()]).status().unwrap();
    assert!(status.success(), "kill -{name} {pid}");
}
