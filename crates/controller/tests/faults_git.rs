//! The fault suite's git scenarios (issue 18, scenarios 5 and 6), against the real local cluster with
//! prune and selfHeal on: the git remote gone for a minute and then force-pushed, and a render that breaks
//! or empties in one of ten files. Every "nothing changed" is read from the API server (a watch from a
//! resourceVersion, closed by the test's own sentinel write), never from berth's record.

mod common;

use berth_testkit::git_servers::GitHttpServer;
use common::*;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams};
use serde_json::json;
use std::collections::BTreeMap;
use std::io::Read;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long the remote stays away: the "gone for a minute".
const OUTAGE: Duration = Duration::from_secs(60);

/// A TCP gate on a loopback port in front of a real git server: berth clones through it; closing it
/// refuses new connections and cuts those in flight, as a remote host going away does, and opening it
/// again listens on the same port, so the repository URL and its credentials stay the same.
struct Gate {
    port: u16,
    backend: u16,
    open: Option<Opened>,
}

/// The gate while open: its accept thread and every connection through it.
struct Opened {
    stop: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<TcpStream>>>,
    accept: std::thread::JoinHandle<()>,
}

impl Gate {
    fn new(backend: u16) -> Gate {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        Gate { port, backend, open: Some(Self::serve(listener, backend)) }
    }

    /// `http://127.0.0.1:<gate>/…` for the server's `url`.
    fn url(&self, server_url: &str) -> String {
        server_url.replace(&format!("127.0.0.1:{}", self.backend), &format!("127.0.0.1:{}", self.port))
    }

    fn serve(listener: TcpListener, backend: u16) -> Opened {
        let stop = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(Mutex::new(Vec::new()));
        let (stopped, conns) = (stop.clone(), connections.clone());
        let accept = std::thread::spawn(move || {
            for client in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    return; // the listener is dropped: the port refuses connections
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", backend)) else { continue };
                conns.lock().unwrap().extend([client.try_clone().unwrap(), server.try_clone().unwrap()]);
                let (back, forth) = (server.try_clone().unwrap(), client.try_clone().unwrap());
                std::thread::spawn(move || pipe(client, server));
                std::thread::spawn(move || pipe(back, forth));
            }
        });
        Opened { stop, connections, accept }
    }

    /// Refuses connections and cuts the open ones.
    fn close(&mut self) {
        let Some(open) = self.open.take() else { return };
        open.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port)); // wakes the accept loop
        open.accept.join().unwrap();
        for c in open.connections.lock().unwrap().iter() {
            let _ = c.shutdown(Shutdown::Both);
        }
    }

    /// Listens again on the same port.
    fn reopen(&mut self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .unwrap_or_else(|e| panic!("the gate's port {} again: {e}", self.port));
        self.open = Some(Self::serve(listener, self.backend));
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.close();
    }
}

/// Copies `from` to `to` until `from` ends, then ends `to`'s writing side.
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if std::io::Write::write_all(&mut to, &buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// An Argo CD `repository` secret with the server's password for `url`.
async fn repository_secret(bench: &Bench, url: &str, server: &GitHttpServer) {
    apply_json(
        &bench.client,
        &bench.namespace,
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "manifests-repo", "namespace": bench.namespace,
                            "labels": {"argocd.argoproj.io/secret-type": "repository"}},
               "type": "Opaque",
               "stringData": {"url": url, "username": server.username(), "password": server.password()}}),
    )
    .await;
}

fn config_map(name: &str, value: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  value: \"{value}\"\n")
}

/// The managed ConfigMaps as the API server has them: name -> (resourceVersion, `value`), and the list's
/// resourceVersion to watch from. The test's sentinels and the namespace's own CA bundle are left out.
async fn snapshot(client: &kube::Client, ns: &str) -> (BTreeMap<String, (String, String)>, String) {
    let list = Api::<ConfigMap>::namespaced(client.clone(), ns).list(&ListParams::default()).await.unwrap();
    let maps = list
        .items
        .into_iter()
        .filter(|m| {
            let annotations = m.metadata.annotations.clone().unwrap_or_default();
            !annotations.contains_key(SENTINEL) && m.metadata.name.as_deref() != Some("kube-root-ca.crt")
        })
        .map(|m| {
            let value = m.data.unwrap_or_default().get("value").cloned().unwrap_or_default();
            (m.metadata.name.unwrap(), (m.metadata.resource_version.unwrap(), value))
        })
        .collect();
    (maps, list.metadata.resource_version.unwrap())
}

fn revisions(app: &serde_json::Value) -> Vec<String> {
    app["status"]["history"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| h["revision"].as_str().unwrap_or_default().to_string())
        .collect()
}

async fn wait_synced_at(bench: &Bench, name: &str, sha: &str) -> serde_json::Value {
    bench
        .wait_app(name, &format!("Synced at {sha} without conditions"), |a| {
            sync_status(a) == "Synced" && a["status"]["sync"]["revision"] == sha && conditions(a).is_empty()
        })
        .await
}

/// Scenario 5. The remote (lighttpd + git http-backend with a password, behind a TCP gate) is gone for a
/// full minute under an app with prune and selfHeal: the API server sees no write to any managed object in
/// that minute, the Application carries a ComparisonError naming the repository and no password, and once
/// the remote is back the app is Synced again within the bench's deadline with the condition cleared and
/// no second sync of the same commit. Then the branch is rewritten (`reset --hard HEAD~1`, other content,
/// and the server's branch moved to it as `push --force` would): the new commit is deployed and
/// `status.history` keeps the entries of the commits the rewrite dropped.
#[tokio::test]
async fn a_remote_gone_for_a_minute_prunes_nothing_and_a_force_push_afterwards_is_deployed_with_history_kept()
{
    let mut bench = Bench::start("fault-remote").await;
    let server = GitHttpServer::start();
    let repo = GitRepo::new();
    repo.write("apps/web/settings.yaml", &config_map("settings", "one"));
    repo.write("apps/web/static.yaml", &config_map("static", "same"));
    let first = repo.commit("first");
    let mut gate = Gate::new(server.port());
    let url = gate.url(&server.host("manifests", &repo));
    repository_secret(&bench, &url, &server).await;
    let ns = bench.dest_namespace("fault-remote");
    let name = unique("remote");
    bench.create_app(seed_web_app(&name, &url, &ns)).await;
    wait_synced_at(&bench, &name, &first).await;
    repo.write("apps/web/settings.yaml", &config_map("settings", "two"));
    let second = repo.commit("second");
    server.host("manifests", &repo);
    let before = wait_synced_at(&bench, &name, &second).await;
    assert_eq!(revisions(&before), [first.clone(), second.clone()]);
    let (maps, rv) = snapshot(&bench.client, &ns).await;
    assert_eq!(maps.keys().collect::<Vec<_>>(), ["settings", "static"]);
    assert_eq!(maps["settings"].1, "two");

    // The outage: every write to a ConfigMap there from now until the sentinel is seen by the watch.
    let writes = writes_until_sentinel(Api::<ConfigMap>::namespaced(bench.client.clone(), &ns), rv);
    let gone = Instant::now();
    gate.close();
    assert!(TcpStream::connect(("127.0.0.1", gate.port)).is_err(), "the remote refuses connections");
    let mut condition = None;
    // The minute is the assertion window: the Application is read throughout it.
    while gone.elapsed() < OUTAGE {
        let app = bench.app(&name).await;
        assert_eq!(revisions(&app), revisions(&before), "no sync while the remote is gone");
        if condition.is_none() && conditions(&app).contains("ComparisonError") {
            condition = Some((gone.elapsed(), app));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (after, app) = condition.expect("a ComparisonError within the minute the remote was gone");
    let text = conditions(&app);
    assert!(text.contains(&url), "the condition names the repository: {text}");
    let whole = serde_json::to_string(&app).unwrap();
    assert!(!whole.contains(server.password()), "the password leaked into the Application");
    eprintln!("the ComparisonError appeared {after:?} after the remote went away");

    let back = Instant::now();
    gate.reopen();
    let recovered = wait_synced_at(&bench, &name, &second).await;
    eprintln!("Synced without conditions {:?} after the remote came back", back.elapsed());
    assert_eq!(revisions(&recovered), revisions(&before), "the same commit is not synced again");
    write_sentinel(&bench.client, &ns).await;
    let writes = writes.await.unwrap();
    assert!(writes.is_empty(), "writes to managed objects while the remote was gone: {writes:?}");
    let (now, _) = snapshot(&bench.client, &ns).await;
    assert_eq!(now, maps, "every managed ConfigMap as it was, same resourceVersion");

    // The branch rewritten: `second` is no longer on it.
    repo.git(&["reset", "--hard", "HEAD~1"]);
    repo.write("apps/web/settings.yaml", &config_map("settings", "rewritten"));
    let rewritten = repo.commit("rewritten");
    server.host("manifests", &repo);
    let app = wait_synced_at(&bench, &name, &rewritten).await;
    assert_eq!(revisions(&app), [first, second, rewritten], "the rewrite keeps the earlier history");
    let (now, _) = snapshot(&bench.client, &ns).await;
    assert_eq!(now["settings"].1, "rewritten", "the API server has the rewritten commit's content");
    assert_eq!(now["static"], maps["static"], "the unchanged object is not written");
    drop(gate);
    bench.cleanup().await;
}

/// An app of ten files, one ConfigMap each (`cm-0` … `cm-9` in `apps/web/cm-<n>.yaml`), synced with prune
/// and selfHeal; returns the bench, the repo, the destination namespace and the app's name.
async fn ten_files(prefix: &str) -> (Bench, GitRepo, String, String) {
    let mut bench = Bench::start(prefix).await;
    let repo = GitRepo::new();
    for n in 0..10 {
        repo.write(&format!("apps/web/cm-{n}.yaml"), &config_map(&format!("cm-{n}"), "v1"));
    }
    let sha = repo.commit("ten ConfigMaps");
    let ns = bench.dest_namespace(prefix);
    let name = unique(prefix);
    bench.create_app(seed_web_app(&name, &repo.url(), &ns)).await;
    wait_synced_at(&bench, &name, &sha).await;
    (bench, repo, ns, name)
}

/// Scenario 6 (a). One of ten files becomes invalid YAML in the same commit that changes another: the
/// render fails as a whole, so nothing of that commit is applied (the changed file's ConfigMap keeps its
/// data and resourceVersion) and nothing is pruned, with a ComparisonError naming the broken file. Fixing
/// the file deploys the change.
#[tokio::test]
async fn one_broken_file_of_ten_applies_nothing_of_its_commit_and_prunes_nothing() {
    let (bench, repo, ns, name) = ten_files("fault-broken").await;
    let (maps, rv) = snapshot(&bench.client, &ns).await;
    assert_eq!(maps.len(), 10);
    let writes = writes_until_sentinel(Api::<ConfigMap>::namespaced(bench.client.clone(), &ns), rv);

    repo.write("apps/web/cm-3.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [cm-3\n");
    repo.write("apps/web/cm-5.yaml", &config_map("cm-5", "v2"));
    let broken = repo.commit("break cm-3, change cm-5");
    bench.refresh(&name).await;
    let app = bench.wait_app(&name, "a ComparisonError", |a| conditions(a).contains("ComparisonError")).await;
    assert!(conditions(&app).contains("apps/web/cm-3.yaml"), "{}", conditions(&app));
    // One more full pass over the broken commit, then the API server is asked what was written.
    let app = bench.refreshed(&name).await;
    assert!(conditions(&app).contains("apps/web/cm-3.yaml"), "{}", conditions(&app));
    assert_ne!(app["status"]["sync"]["revision"], broken.as_str());
    assert_eq!(revisions(&app).len(), 1, "no sync of the broken commit");
    write_sentinel(&bench.client, &ns).await;
    let writes = writes.await.unwrap();
    assert!(writes.is_empty(), "writes from a commit that does not render: {writes:?}");
    let (now, _) = snapshot(&bench.client, &ns).await;
    assert_eq!(now, maps, "cm-5 not updated, nothing deleted, every resourceVersion the same");

    repo.write("apps/web/cm-3.yaml", &config_map("cm-3", "v1"));
    let fixed = repo.commit("fix cm-3");
    bench.refresh(&name).await;
    wait_synced_at(&bench, &name, &fixed).await;
    let (now, _) = snapshot(&bench.client, &ns).await;
    assert_eq!(now["cm-5"].1, "v2");
    assert_eq!(now.len(), 10);
    bench.cleanup().await;
}

/// Scenario 6 (b). An emptied file is a file with no objects, not a failed render: as Argo CD reads a
/// directory source (every file split into documents, empty ones skipped), its ConfigMap is no longer in
/// git, so with prune on it is pruned, alone, while the same commit's change to another file is applied
/// and the seven other ConfigMaps are not written at all (the prune is Argo CD's default foreground
/// deletion: the API server sees the object marked, then deleted). berth's guard is for the whole path: when it
/// renders no object at all, automated sync refuses to run unless `allowEmpty` (Argo CD's rule, "auto-sync
/// would delete every resource"), so emptying every file prunes nothing.
#[tokio::test]
async fn an_emptied_file_of_ten_is_pruned_alone_but_a_whole_empty_render_prunes_nothing() {
    let (bench, repo, ns, name) = ten_files("fault-empty").await;
    let (maps, rv) = snapshot(&bench.client, &ns).await;
    let writes = writes_until_sentinel(Api::<ConfigMap>::namespaced(bench.client.clone(), &ns), rv);

    // Zero bytes in one file, a lone document separator in another.
    repo.write("apps/web/cm-7.yaml", "");
    repo.write("apps/web/cm-8.yaml", "---\n");
    repo.write("apps/web/cm-5.yaml", &config_map("cm-5", "v2"));
    let emptied = repo.commit("empty cm-7 and cm-8, change cm-5");
    bench.refresh(&name).await;
    wait_synced_at(&bench, &name, &emptied).await;
    let (client, namespace) = (bench.client.clone(), ns.clone());
    poll("cm-7 and cm-8 pruned", TIMEOUT, || {
        let (client, namespace) = (client.clone(), namespace.clone());
        async move {
            let (now, _) = snapshot(&client, &namespace).await;
            !now.contains_key("cm-7") && !now.contains_key("cm-8")
        }
    })
    .await;
    // Every sync of that commit finished before the next one is made.
    bench
        .wait_app(&name, "no operation running", |a| {
            a["operation"].is_null() && phase(a) == "Succeeded" && sync_status(a) == "Synced"
        })
        .await;
    // One sync for the commit: an object already being deleted asks for no second prune.
    let app = bench.app(&name).await;
    assert_eq!(revisions(&app).iter().filter(|r| **r == emptied).count(), 1, "{:?}", revisions(&app));
    write_sentinel(&bench.client, &ns).await;
    let mut writes = writes.await.unwrap();
    // The garbage collector may write a marked object again before deleting it: the kinds of write count.
    writes.sort();
    writes.dedup();
    assert_eq!(
        writes,
        [
            "DELETED ConfigMap/cm-7",
            "DELETED ConfigMap/cm-8",
            "DELETING ConfigMap/cm-7",
            "DELETING ConfigMap/cm-8",
            "MODIFIED ConfigMap/cm-5"
        ],
        "only the emptied files' objects pruned and the changed one updated"
    );
    let (now, rv) = snapshot(&bench.client, &ns).await;
    assert_eq!(now["cm-5"].1, "v2");
    for (cm, before) in maps.iter().filter(|(cm, _)| !["cm-5", "cm-7", "cm-8"].contains(&cm.as_str())) {
        assert_eq!(&now[cm], before, "{cm} untouched");
    }

    // Every file emptied: the path renders nothing, and nothing is pruned.
    let writes = writes_until_sentinel(Api::<ConfigMap>::namespaced(bench.client.clone(), &ns), rv);
    for n in 0..10 {
        repo.write(&format!("apps/web/cm-{n}.yaml"), if n % 2 == 0 { "" } else { "---\n" });
    }
    let empty = repo.commit("everything emptied");
    bench.refresh(&name).await;
    bench.wait_app(&name, "the empty render refused", |a| conditions(a).contains("allowEmpty")).await;
    let app = bench.refreshed(&name).await;
    assert!(conditions(&app).contains("allowEmpty"), "{}", conditions(&app));
    assert_eq!(sync_status(&app), "OutOfSync");
    assert!(!revisions(&app).contains(&empty), "no sync of the empty render: {:?}", revisions(&app));
    write_sentinel(&bench.client, &ns).await;
    let writes = writes.await.unwrap();
    assert!(writes.is_empty(), "an empty render wrote to the cluster: {writes:?}");
    let (after, _) = snapshot(&bench.client, &ns).await;
    assert_eq!(after, now, "an empty render prunes nothing");
    bench.cleanup().await;
}
