//! The many-clusters benchmark (`hack/bench clusters`): the real `berth run` binary on the local control
//! cluster, deploying to three other independent local API servers (`hack/bench` starts them with
//! `hack/cluster up --name bench-1|bench-2|bench-3` and names their kubeconfigs, colon-separated, in
//! `BENCH_CLUSTER_KUBECONFIGS`), each registered by an Argo CD cluster Secret.
//!
//! 1. `BENCH_CLUSTER_APPS` (900) Applications, one ConfigMap each, created at once → all Synced: all on one
//!    cluster, then (a new berth) a third on each of the three. Apps per second, both ways.
//! 2. Commit → applied on a healthy cluster (p50 / p90 over `BENCH_TRIALS`), with every cluster up, then
//!    while another cluster (with its third of the apps, auto-synced) is stopped.
//! 3. berth's RSS as clusters are added: an app of `BENCH_CLUSTER_OBJECTS` (1,000) ConfigMaps on each
//!    cluster in turn, and a second such app on the last one (what the objects alone cost).

mod common;

use berth_testkit::clusters::{LocalCluster, Stopped};
use common::*;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

async fn register(client: &kube::Client, control: &str, remote: &LocalCluster) {
    let body = serde_json::json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": format!("cluster-{}", remote.name), "namespace": control,
                     "labels": {"argocd.argoproj.io/secret-type": "cluster"}},
        "stringData": remote.secret_data()});
    let secrets: Api<Secret> = Api::namespaced(client.clone(), control);
    let name = format!("cluster-{}", remote.name);
    secrets.patch(&name, &PatchParams::apply("berth-bench"), &Patch::Apply(&body)).await.unwrap();
}

/// Creates `apps` (name, cluster name, path) at once, auto-synced into `dest` on their cluster.
async fn create_apps(
    apps: &Api<berth_api::Application>,
    url: &str,
    dest: &str,
    list: Vec<(String, String, String)>,
) {
    futures::stream::iter(list)
        .map(|(name, cluster, path)| {
            let apps = apps.clone();
            let body = serde_json::json!({
                "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
                "metadata": {"name": name},
                "spec": {"project": "default",
                         "source": {"repoURL": url, "path": path, "targetRevision": "main"},
                         "destination": {"name": cluster, "namespace": dest},
                         "syncPolicy": {"automated": {"prune": true, "selfHeal": true}}}
            });
            async move {
                apps.patch(&name, &PatchParams::apply("berth-bench"), &Patch::Apply(&body)).await.map(drop)
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await
        .expect("creating apps");
}

fn commit(repo: &Path, message: &str) -> String {
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "-m", message]);
    git(repo, &["rev-parse", "HEAD"])
}

/// Commit → the ConfigMap on the cluster holds the new value, with a refresh requested: milliseconds.
async fn commit_latencies(
    apps: &Api<berth_api::Application>,
    repo: &Path,
    app: usize,
    cms: &Api<ConfigMap>,
    trials: usize,
    tag: &str,
) -> Vec<f64> {
    let name = format!("app-{app:04}");
    let mut out = Vec::new();
    for t in 0..trials {
        let value = format!("{tag}-{t}");
        write_app(repo, app, 1, &value);
        commit(repo, &value);
        let t0 = Instant::now();
        request_refresh(apps, &name).await;
        wait_value(cms, &format!("{name}-0"), &value).await;
        out.push(t0.elapsed().as_secs_f64() * 1000.0);
        wait_refresh_taken(apps, &name).await;
    }
    out
}

/// `ns` made on every remote cluster.
async fn fresh_namespace(remotes: &[LocalCluster], ns: &str) -> String {
    for r in remotes {
        make_namespaces(&r.client, &[ns]).await;
    }
    ns.to_string()
}

/// `ns` deleted on every remote cluster, and gone (its objects with it) before this returns.
async fn drop_namespace(remotes: &[LocalCluster], ns: &str) {
    for r in remotes {
        let namespaces = Api::<Namespace>::all(r.client.clone());
        let _ = namespaces.delete(ns, &DeleteParams::background()).await;
        let deadline = Instant::now() + Duration::from_secs(300);
        while namespaces.get_opt(ns).await.unwrap().is_some() {
            assert!(Instant::now() < deadline, "the namespace {ns} on {} was not deleted in 300 s", r.name);
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// A fresh control namespace with berth running on it and every remote registered.
async fn fresh_berth(
    client: &kube::Client,
    remotes: &[LocalCluster],
    run: &str,
    work: &Path,
) -> (Berth, Api<berth_api::Application>, String) {
    let control = format!("bench-clusters-{}-{run}", std::process::id());
    make_namespaces(client, &[&control]).await;
    for r in remotes {
        register(client, &control, r).await;
    }
    let dir = work.join(run);
    std::fs::create_dir_all(&dir).unwrap();
    let berth = start_berth(client, &control, &dir).await;
    (berth, Api::namespaced(client.clone(), &control), control)
}

/// RSS once it has settled: the lowest of a few readings a second apart (freed memory is returned lazily).
async fn settled_rss(pid: u32) -> f64 {
    let mut low = f64::MAX;
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        low = low.min(rss_mib(pid));
    }
    low
}

#[tokio::main]
async fn main() {
    let n = env_num("BENCH_CLUSTER_APPS", 900) as usize;
    let objects = env_num("BENCH_CLUSTER_OBJECTS", 1000) as usize;
    let trials = env_num("BENCH_TRIALS", 20) as usize;
    let remotes = LocalCluster::from_env_list("BENCH_CLUSTER_KUBECONFIGS").await;
    assert_eq!(remotes.len(), 3, "BENCH_CLUSTER_KUBECONFIGS names three clusters");
    let client = kube::Client::try_default().await.expect("KUBECONFIG: run through hack/bench");
    // Each phase deploys into a namespace of its own, deleted (and waited for) before the next, so no phase
    // watches another's objects.
    let dest_of = |phase: &str| format!("bench-clusters-{phase}-{}", std::process::id());

    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    for i in 0..n {
        write_app(&repo, i, 1, "1");
    }
    let big = |repo: &Path, app: &str| {
        let dir = repo.join(format!("big/{app}"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut text = String::new();
        for j in 0..objects {
            text.push_str(&format!(
                "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {app}-{j}\ndata:\n  value: \"1\"\n"
            ));
        }
        std::fs::write(dir.join("config.yaml"), text).unwrap();
    };
    for r in &remotes {
        big(&repo, &format!("big-{}", r.name));
    }
    big(&repo, "big-extra");
    let first = commit(&repo, "apps");
    let url = format!("file://{}", repo.display());
    let mut controls = Vec::new();

    // 1a. All apps on one cluster.
    let dest = fresh_namespace(&remotes, &dest_of("one")).await;
    let (berth, apps, control) = fresh_berth(&client, &remotes, "one", work.path()).await;
    let started = Instant::now();
    let list = (0..n)
        .map(|i| (format!("app-{i:04}"), remotes[0].name.clone(), format!("apps/app-{i:04}")))
        .collect();
    create_apps(&apps, &url, &dest, list).await;
    let one_cluster = wait_all_synced(&apps, n, &first, started).await;
    drop(berth);
    controls.push(control);

    drop_namespace(&remotes, &dest).await;

    // 1b. A third on each cluster.
    let dest = fresh_namespace(&remotes, &dest_of("three")).await;
    let (berth, apps, control) = fresh_berth(&client, &remotes, "three", work.path()).await;
    let started = Instant::now();
    let list = (0..n)
        .map(|i| (format!("app-{i:04}"), remotes[i % 3].name.clone(), format!("apps/app-{i:04}")))
        .collect();
    create_apps(&apps, &url, &dest, list).await;
    let three_clusters = wait_all_synced(&apps, n, &first, started).await;

    // 2. Commit → applied on bench-1 (app 0), all up, then with bench-3 (app 2, 5, … ) stopped.
    let cms: Api<ConfigMap> = Api::namespaced(remotes[0].client.clone(), &dest);
    let healthy = commit_latencies(&apps, &repo, 0, &cms, trials, "up").await;
    let stopped = Stopped::stop(&remotes[2].name).await;
    // Every app of the stopped cluster is reconciled at once: none may hold the workers healthy clusters need.
    futures::stream::iter((2..n).step_by(3))
        .for_each_concurrent(32, |i| {
            let apps = apps.clone();
            async move { request_refresh(&apps, &format!("app-{i:04}")).await }
        })
        .await;
    let outage = commit_latencies(&apps, &repo, 0, &cms, trials, "down").await;
    stopped.start().await;
    drop(berth);
    controls.push(control);

    drop_namespace(&remotes, &dest).await;

    // 3. RSS per added cluster with `objects` objects on it.
    let dest = fresh_namespace(&remotes, &dest_of("rss")).await;
    let (berth, apps, control) = fresh_berth(&client, &remotes, "rss", work.path()).await;
    let pid = berth.pid;
    let head = git(&repo, &["rev-parse", "HEAD"]);
    let mut rss = vec![settled_rss(pid).await];
    let mut steps = Vec::new();
    for r in remotes
        .iter()
        .map(|r| (format!("big-{}", r.name), r.name.clone()))
        .chain([("big-extra".to_string(), remotes[2].name.clone())])
    {
        let (app, cluster) = r;
        let path = format!("big/{app}");
        create_apps(&apps, &url, &dest, vec![(app.clone(), cluster, path)]).await;
        steps.push(app);
        wait_all_synced(&apps, steps.len(), &head, Instant::now()).await;
        rss.push(settled_rss(pid).await);
    }
    drop(berth);
    controls.push(control);
    for control in &controls {
        let _ = Api::<Namespace>::all(client.clone()).delete(control, &DeleteParams::background()).await;
    }
    drop_namespace(&remotes, &dest).await;

    let p = |v: &[f64], q: f64| percentile(&mut v.to_vec(), q);
    let mut out = std::io::stdout().lock();
    writeln!(out, "\n| measure | result |\n|---|---|").unwrap();
    writeln!(
        out,
        "| {n} apps, one ConfigMap each, created at once → all Synced, all on one remote cluster | {one_cluster:.1} s ({:.0} apps/s) |",
        n as f64 / one_cluster
    )
    .unwrap();
    writeln!(
        out,
        "| {n} apps, a third on each of three remote clusters → all Synced | {three_clusters:.1} s ({:.0} apps/s) |",
        n as f64 / three_clusters
    )
    .unwrap();
    let (up50, down50) = (p(&healthy, 0.5), p(&outage, 0.5));
    writeln!(
        out,
        "| commit → applied on a healthy cluster, all up (p50 / p90, {trials} trials) | {up50:.0} / {:.0} ms |",
        p(&healthy, 0.9)
    )
    .unwrap();
    writeln!(
        out,
        "| the same while another cluster is down, its {} apps refreshed at once (p50 / p90) | {down50:.0} / {:.0} ms ({:+.0} % p50) |",
        n / 3,
        p(&outage, 0.9),
        (down50 - up50) / up50 * 100.0
    )
    .unwrap();
    let added: Vec<String> = rss.windows(2).map(|w| format!("{:+.1}", w[1] - w[0])).collect();
    writeln!(
        out,
        "| RSS: start, then an app of {objects} ConfigMaps on cluster 1, 2, 3, and a second on cluster 3 | {} MiB (steps {} MiB) |",
        rss.iter().map(|r| format!("{r:.0}")).collect::<Vec<_>>().join(" / "),
        added.join(" / ")
    )
    .unwrap();
    let per_cluster = (rss[3] - rss[0]) / 3.0;
    let objects_alone = rss[4] - rss[3];
    writeln!(
        out,
        "| an added cluster with {objects} objects / the {objects} objects alone / the cluster alone | {per_cluster:.1} / {objects_alone:.1} / {:.1} MiB |",
        per_cluster - objects_alone
    )
    .unwrap();
}
