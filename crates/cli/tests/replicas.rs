//! The fault suite of several replicas (issue 18): real `berth run` processes sharing one control namespace
//! of the fault cluster (`hack/cluster up --name berth-fault --audit`), killed, frozen and restarted.
//! Every assertion comes from the API server: the objects and their resourceVersions, the Jobs, and its
//! audit log, which names the replica behind each write (berth's User-Agent says it).

use berth_testkit::*;
use common::replicas::*;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, Patch, PatchParams};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

mod common;

/// Lease duration of the replicas under test (short, to keep the suite quick; the default is 10 s).
const LEASE: u64 = 4;

struct Estate {
    cluster: FaultCluster,
    control: String,
    dest: String,
    repo: GitRepo,
    apps: Api<berth_api::Application>,
}

impl Estate {
    async fn new(prefix: &str) -> Estate {
        let cluster = FaultCluster::open().await;
        install_crds(&cluster.client).await;
        let control = unique(prefix);
        let dest = format!("{control}-dest");
        ensure_namespace(&cluster.client, &control).await;
        ensure_namespace(&cluster.client, &dest).await;
        // Other tests' apps of the same names on this cluster are another installation's.
        let maps: Api<ConfigMap> = Api::namespaced(cluster.client.clone(), &control);
        let cm = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "argocd-cm"},
            "data": {"berth.repositories.allowFileURLs": "true", "installationID": control}});
        maps.patch("argocd-cm", &PatchParams::apply("berth-test"), &Patch::Apply(&cm)).await.unwrap();
        let apps = Api::namespaced(cluster.client.clone(), &control);
        Estate { cluster, control, dest, repo: GitRepo::new(), apps }
    }

    fn start(&self, id: &str) -> Replica {
        Replica::start(&self.cluster.kubeconfig, &self.control, id, LEASE)
    }

    /// `n` apps of one ConfigMap each (`app-NNNN`, data.value = `value`), committed.
    fn write_apps(&self, n: usize, value: &str) -> String {
        for i in 0..n {
            self.repo.write(
                &format!("apps/app-{i:04}/config.yaml"),
                &format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-{i:04}\ndata:\n  value: \"{value}\"\n"),
            );
        }
        self.repo.commit(&format!("apps at {value}"))
    }

    async fn create_app(&self, name: &str, path: &str) {
        let body = serde_json::json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": {"name": name, "namespace": self.control},
            "spec": {"project": "default",
                     "source": {"repoURL": self.repo.url(), "path": path, "targetRevision": "main"},
                     "destination": {"server": "https://kubernetes.default.svc", "namespace": self.dest},
                     "syncPolicy": {"automated": {"prune": true, "selfHeal": true}}}
        });
        self.apps.patch(name, &PatchParams::apply("berth-test"), &Patch::Apply(&body)).await.unwrap();
    }

    async fn create_apps(&self, n: usize) {
        futures::stream::iter(0..n)
            .map(|i| async move {
                let name = format!("app-{i:04}");
                self.create_app(&name, &format!("apps/{name}")).await;
                Ok::<_, ()>(())
            })
            .buffer_unordered(32)
            .try_collect::<Vec<_>>()
            .await
            .unwrap();
    }

    /// Waits until `n` apps named `app-*` are Synced to `revision` and Healthy.
    async fn wait_synced(&self, n: usize, revision: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let list = self.apps.list(&ListParams::default()).await.unwrap();
            let apps: Vec<_> = list
                .items
                .iter()
                .filter(|a| a.metadata.name.as_deref().is_some_and(|n| n.starts_with("app-")))
                .collect();
            if apps.iter().filter(|a| synced_at(a, revision)).count() == n {
                return;
            }
            if Instant::now() > deadline {
                // Say where the others are: their sync, health and revision.
                let mut states: BTreeMap<String, usize> = BTreeMap::new();
                for a in &apps {
                    let s = a.status.as_ref();
                    let state = format!(
                        "{:?}/{:?}/{}",
                        s.and_then(|s| s.sync.as_ref()).map(|s| s.status.clone()),
                        s.and_then(|s| s.health.as_ref()).and_then(|h| h.status.clone()),
                        s.and_then(|s| s.sync.as_ref()).and_then(|s| s.revision.as_deref()) == Some(revision),
                    );
                    *states.entry(state).or_default() += 1;
                }
                panic!("timed out after {timeout:?}: {n} apps Synced at {revision}? {states:?}");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Argo CD's refresh annotation on apps `app-0000` … (as a webhook's push would ask).
    async fn refresh_all(&self, n: usize) {
        let body = serde_json::json!({"metadata": {"annotations": {"argocd.argoproj.io/refresh": "normal"}}});
        futures::stream::iter(0..n)
            .map(|i| {
                let body = &body;
                async move {
                    let patch = Patch::Merge(body);
                    self.apps.patch(&format!("app-{i:04}"), &PatchParams::default(), &patch).await.map(drop)
                }
            })
            .buffer_unordered(32)
            .try_collect::<Vec<_>>()
            .await
            .unwrap();
    }

    async fn app(&self, name: &str) -> berth_api::Application {
        self.apps.get(name).await.unwrap()
    }

    fn writes(&self) -> Vec<Write> {
        self.cluster.writes(&[&self.control, &self.dest])
    }
}

fn synced_at(app: &berth_api::Application, revision: &str) -> bool {
    let status = app.status.as_ref();
    let sync = status.and_then(|s| s.sync.as_ref());
    sync.is_some_and(|s| s.status == "Synced" && s.revision.as_deref() == Some(revision))
        && status.and_then(|s| s.health.as_ref()).is_some_and(|h| h.status.as_deref() == Some("Healthy"))
}

fn operation_phase(app: &berth_api::Application) -> Option<String> {
    Some(app.status.as_ref()?.operation_state.as_ref()?.phase.clone())
}

/// The replica that owns `app` (an Application of the control namespace) among `replicas`.
fn owner_of<'a>(app: &str, replicas: &'a [&'a str]) -> &'a str {
    berth_controller::replicas::rendezvous::owner(app, replicas.iter().copied()).unwrap()
}

async fn wait_acting(replicas: &[&Replica]) {
    poll("every replica acting", Duration::from_secs(60), || async { replicas.iter().all(|r| r.acting()) })
        .await;
}

/// A PreSync hook Job and three waves of Deployments that each take `min_ready` seconds to become
/// Available (`minReadySeconds`): an operation that runs long enough to be interrupted in the middle.
fn write_waves(repo: &GitRepo, min_ready: u32) -> String {
    repo.write(
        "waves/hook.yaml",
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  generateName: migrate-\n  annotations:\n    argocd.argoproj.io/hook: PreSync\nspec:\n  backoffLimit: 0\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n      - name: run\n        image: busybox\n",
    );
    for wave in 1..=3 {
        repo.write(
            &format!("waves/wave-{wave}.yaml"),
            &format!(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: wave-{wave}\n  annotations:\n    argocd.argoproj.io/sync-wave: \"{wave}\"\nspec:\n  minReadySeconds: {min_ready}\n  replicas: 1\n  selector:\n    matchLabels: {{app: wave-{wave}}}\n  template:\n    metadata:\n      labels: {{app: wave-{wave}}}\n    spec:\n      containers:\n      - name: app\n        image: nginx:1\n"
            ),
        );
    }
    repo.commit("waves")
}

/// The number of successful writes (not dry runs) of `verb` to `resource`/`name`.
fn count(writes: &[Write], verb: &str, resource: &str, name: &str) -> usize {
    writes
        .iter()
        .filter(|w| w.succeeded && !w.dry_run && w.verb == verb && w.resource == resource && w.name == name)
        .count()
}

/// Scenario 1 and 2: three replicas share 300 apps, each reconciled by exactly one replica; one replica is
/// killed in the middle of a sync with a PreSync hook and three waves, and another finishes it; then a
/// rolling restart of every replica while commits arrive loses nothing and syncs nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_share_the_apps_fail_over_mid_sync_and_survive_a_rolling_restart() {
    let estate = Estate::new("ha").await;
    let n = 300;
    let first = estate.write_apps(n, "1");
    let ids = ["r0", "r1", "r2"];
    let mut replicas: Vec<Replica> = ids.iter().map(|id| estate.start(id)).collect();
    wait_acting(&replicas.iter().collect::<Vec<_>>()).await;
    let started = Instant::now();
    estate.create_apps(n).await;
    estate.wait_synced(n, &first, Duration::from_secs(240)).await;
    println!("3 replicas: {n} apps Synced in {:.1} s", started.elapsed().as_secs_f64());

    // Every app was written by exactly one replica: its owner by rendezvous hashing.
    let writes = estate.writes();
    let mut writers: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for w in writes.iter().filter(|w| w.resource == "applications" && w.succeeded) {
        if let Some(replica) = &w.replica {
            writers.entry(w.name.clone()).or_default().insert(replica.clone());
        }
    }
    let mut share: BTreeMap<&str, usize> = BTreeMap::new();
    for i in 0..n {
        let name = format!("app-{i:04}");
        let owner = owner_of(&name, &ids);
        *share.entry(owner).or_default() += 1;
        let by = writers.get(&name).cloned().unwrap_or_default();
        assert_eq!(by, BTreeSet::from([owner.to_string()]), "{name} was written by {by:?}");
    }
    println!("shares: {share:?}");
    assert!(share.values().all(|s| *s > n / 6), "an uneven share: {share:?}");

    // A sync with a PreSync hook and three waves; its owner is killed in the second wave.
    let waves = write_waves(&estate.repo, 3);
    estate.create_app("waves", "waves").await;
    let victim = owner_of("waves", &ids);
    poll("the waves sync in its second wave", Duration::from_secs(60), || async {
        let app = estate.app("waves").await;
        let applied = app
            .status
            .as_ref()
            .and_then(|s| s.operation_state.as_ref())
            .and_then(|o| o.sync_result.as_ref())
            .is_some_and(|r| r.resources.iter().any(|r| r.name == "wave-2"));
        operation_phase(&app).as_deref() == Some("Running") && applied
    })
    .await;
    let kill_time = k8s_openapi::jiff::Timestamp::now();
    let killed_at = audit_time(kill_time);
    // A request the victim had already sent may reach the server and complete after its death; it was on
    // the wire at the kill, so the server has it within this margin (the SIGKILL lets it send nothing new).
    let in_flight_by = audit_time(kill_time + Duration::from_secs(1));
    let killed = Instant::now();
    replicas.iter_mut().find(|r| r.id == victim).unwrap().kill();
    poll("the waves sync finished by another replica", Duration::from_secs(60), || async {
        let app = estate.app("waves").await;
        operation_phase(&app).as_deref() == Some("Succeeded") && synced_at(&app, &waves)
    })
    .await;
    let writes = estate.writes();
    let after_kill: Vec<&Write> = writes
        .iter()
        .filter(|w| {
            w.at > killed_at && w.name == "waves" && w.resource == "applications" && w.replica.is_some()
        })
        .collect();
    for late in after_kill.iter().filter(|w| w.replica.as_deref() == Some(victim)) {
        assert!(late.received < in_flight_by, "the killed replica wrote after its death: {late:?}");
    }
    assert!(
        after_kill.iter().any(|w| w.replica.as_deref() != Some(victim)),
        "another replica wrote the app after the kill: {after_kill:#?}"
    );
    println!(
        "failover: sync finished {:.1} s after kill -9 (Lease {LEASE} s)",
        killed.elapsed().as_secs_f64()
    );
    // The hook ran once; no wave was applied twice; one history entry for the commit.
    let jobs = Api::<Job>::namespaced(estate.cluster.client.clone(), &estate.dest)
        .list(&Default::default())
        .await
        .unwrap();
    let hooks: Vec<_> =
        jobs.items.iter().filter(|j| j.metadata.name.as_deref().unwrap().starts_with("migrate-")).collect();
    assert_eq!(hooks.len(), 1, "the PreSync hook ran {} times", hooks.len());
    let job_creates = writes
        .iter()
        .filter(|w| w.resource == "jobs" && w.verb == "create" && !w.dry_run && w.succeeded)
        .count();
    assert_eq!(job_creates, 1);
    for wave in 1..=3 {
        let applies = count(&writes, "patch", "deployments", &format!("wave-{wave}"));
        assert_eq!(applies, 1, "wave-{wave} was applied {applies} times");
    }
    let history = estate.app("waves").await.status.unwrap().history;
    assert_eq!(history.len(), 1, "{history:?}");

    // Scenario 2: a rolling restart (new replicas replace the old, one at a time, as a Deployment rolls)
    // while every app receives commits.
    let live: Vec<String> = ids.iter().filter(|id| **id != victim).map(|s| s.to_string()).collect();
    let mut rolling = vec![estate.start(&format!("{victim}-b"))];
    // Each commit is announced as a webhook would: Argo CD's refresh annotation on every app.
    let committer = async {
        let mut last = String::new();
        for value in 2..=5 {
            last = estate.write_apps(n, &value.to_string());
            estate.refresh_all(n).await;
            tokio::time::sleep(Duration::from_secs(3)).await; // the pace of the pushes, not a synchronisation
        }
        last
    };
    let roller = async {
        for old in &live {
            let new = estate.start(&format!("{old}-b"));
            wait_acting(&[&new]).await;
            let old = replicas.iter_mut().find(|r| &r.id == old).unwrap();
            let status = old.terminate(Duration::from_secs(30)).await;
            assert!(status.success(), "replica {} exited with {status}:\n{}", old.id, old.log_text());
            rolling.push(new);
        }
    };
    let (last, ()) = futures::join!(committer, roller);
    estate.wait_synced(n, &last, Duration::from_secs(240)).await;
    let cms: Api<ConfigMap> = Api::namespaced(estate.cluster.client.clone(), &estate.dest);
    let writes = estate.writes();
    for i in 0..n {
        let name = format!("app-{i:04}");
        let cm = cms.get(&name).await.unwrap();
        assert_eq!(cm.data.unwrap()["value"], "5", "{name}");
        let app = estate.app(&name).await;
        let history = app.status.unwrap().history;
        let revisions: BTreeSet<_> = history.iter().filter_map(|h| h.revision.clone()).collect();
        assert_eq!(revisions.len(), history.len(), "{name} synced a revision twice: {history:?}");
        let applies = count(&writes, "patch", "configmaps", &name);
        assert!(applies <= history.len(), "{name}: {applies} applies for {} syncs", history.len());
    }
}

/// Scenario 3: a replica frozen (SIGSTOP) past its Lease, then resumed, writes nothing until it has
/// joined again; meanwhile the other replica took its share and deployed a commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_frozen_replica_writes_nothing_after_losing_its_share() {
    let estate = Estate::new("frozen").await;
    let n = 40;
    let first = estate.write_apps(n, "1");
    let ids = ["a", "b"];
    let frozen = estate.start("a");
    let other = estate.start("b");
    wait_acting(&[&frozen, &other]).await;
    estate.create_apps(n).await;
    estate.wait_synced(n, &first, Duration::from_secs(120)).await;
    let theirs = (0..n).filter(|i| owner_of(&format!("app-{i:04}"), &ids) == "a").count();
    assert!(theirs > 0, "a owns nothing");

    frozen.freeze();
    let second = estate.write_apps(n, "2");
    // Argo CD's refresh annotation, as a webhook would set it, so the commit is seen at once.
    estate.refresh_all(n).await;
    estate.wait_synced(n, &second, Duration::from_secs(60)).await;
    let lost_by = audit_now();
    // It may act again one Lease duration after it renews, which it does after this.
    let joined_by = audit_time(k8s_openapi::jiff::Timestamp::now() + Duration::from_secs(LEASE));
    frozen.thaw();
    // Changes for it to be tempted by, while it may not act.
    let third = estate.write_apps(n, "3");
    estate.refresh_all(n).await;
    estate.wait_synced(n, &third, Duration::from_secs(60)).await;
    // Until it has joined again (one Lease duration after it renewed, as it is not alone), nothing but its
    // own Lease.
    let late: Vec<Write> = estate
        .writes()
        .into_iter()
        .filter(|w| w.replica.as_deref() == Some("a") && w.at > lost_by && w.at < joined_by)
        .filter(|w| w.resource != "leases" && !w.dry_run)
        .collect();
    assert!(
        late.is_empty(),
        "the frozen replica wrote after losing its share: {late:#?}\n{}",
        frozen.log_text()
    );
}

/// Scenario 7: the same controller killed 20 times in a row in the middle of one app's sync; the app
/// ends Synced and its hook ran once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_twenty_times_mid_sync_the_app_ends_synced_with_its_hook_run_once() {
    let estate = Estate::new("kill20").await;
    // Slow waves (30 s each): twenty kills at up to 1.5 s apart land inside one sync.
    let revision = write_waves(&estate.repo, 30);
    estate.create_app("waves", "waves").await;
    let mut kills = 0;
    let mut seed = 7u64;
    while kills < 20 {
        let mut replica = estate.start("only");
        poll("the sync running", Duration::from_secs(60), || async {
            let app = estate.app("waves").await;
            operation_phase(&app).as_deref() == Some("Running") || synced_at(&app, &revision)
        })
        .await;
        if synced_at(&estate.app("waves").await, &revision) {
            panic!("the sync finished before the 20th kill ({kills} kills): the waves are too quick");
        }
        // Somewhere in the next 0–1.5 s of the sync (a fixed pseudo-random sequence).
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        tokio::time::sleep(Duration::from_millis((seed >> 33) % 1500)).await; // where the kill lands, not a synchronisation
        replica.kill();
        kills += 1;
    }
    let _last = estate.start("only");
    poll("the waves sync finished", Duration::from_secs(120), || async {
        let app = estate.app("waves").await;
        operation_phase(&app).as_deref() == Some("Succeeded") && synced_at(&app, &revision)
    })
    .await;
    let writes = estate.writes();
    let job_creates = writes
        .iter()
        .filter(|w| w.resource == "jobs" && w.verb == "create" && !w.dry_run && w.succeeded)
        .count();
    assert_eq!(job_creates, 1, "the hook was created {job_creates} times");
    let history = estate.app("waves").await.status.unwrap().history;
    assert_eq!(history.len(), 1, "{history:?}");
}
