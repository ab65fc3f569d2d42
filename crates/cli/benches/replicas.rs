//! Several replicas (`hack/bench replicas`): the release `berth run` as 1, 2 and 3 replicas of one control
//! namespace on the local cluster, each run on 1,000 fresh Applications of one ConfigMap each.
//!
//! 1. Apps created at once → all Synced: seconds and apps/s.
//! 2. Failover (2 and 3 replicas): `kill -9` of one replica, then a refresh asked of an app it owned →
//!    the refresh taken by another replica (the Lease's duration is the floor).
//! 3. Restart with nothing changed: one replica stopped (SIGTERM) and started again; the writes the API
//!    server then sees to the Applications and their objects until the replica has reconciled its share.
//!
//! `BENCH_APPS` (default 1000), `BENCH_LEASE_SECONDS` (default 10, berth's default).

mod common;
#[allow(dead_code)]
#[path = "../tests/common/replicas.rs"]
mod replicas;

use common::*;
use futures::StreamExt;
use kube::api::WatchEvent;
use kube::api::{Api, Patch, PatchParams};
use replicas::Replica;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() {
    let n = env_num("BENCH_APPS", 1000) as usize;
    let lease = env_num("BENCH_LEASE_SECONDS", 10);
    let kubeconfig = std::env::var("KUBECONFIG").expect("KUBECONFIG: run through hack/bench");
    let client = kube::Client::try_default().await.expect("KUBECONFIG: run through hack/bench");
    let mut rows = Vec::new();
    for k in 1..=3usize {
        let suffix = format!("{}-{k}", std::process::id());
        let control = format!("bench-ha-{suffix}");
        let dest = format!("bench-ha-dest-{suffix}");
        make_namespaces(&client, &[&control, &dest]).await;
        let maps: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client.clone(), &control);
        let cm = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "argocd-cm"},
            "data": {"berth.repositories.allowFileURLs": "true", "installationID": control}});
        maps.patch("argocd-cm", &PatchParams::apply("berth-bench"), &Patch::Apply(&cm)).await.unwrap();
        let work = tempfile::tempdir().unwrap();
        let (_repo, url, first) = repo_of_apps(work.path(), n, "apps");

        let ids: Vec<String> = (0..k).map(|i| format!("r{i}")).collect();
        let mut replicas: Vec<Replica> =
            ids.iter().map(|id| Replica::start(&kubeconfig, &control, id, lease)).collect();
        wait_until("every replica acting", Duration::from_secs(120), || replicas.iter().all(|r| r.acting()))
            .await;
        let apps: Api<berth_api::Application> = Api::namespaced(client.clone(), &control);
        let started = Instant::now();
        create_apps(&apps, n, &url, &control, &dest).await;
        let synced = wait_all_synced(&apps, n, &first, started).await;
        let cpu: f64 = replicas.iter().map(|r| cpu_seconds(r.pid())).sum();

        // Restart with nothing changed: the last replica stops and starts again under the same id.
        let rv = apps.list_metadata(&Default::default()).await.unwrap().metadata.resource_version.unwrap();
        let (app_writes, app_watch) = count_events(apps.clone(), rv.clone());
        let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client.clone(), &dest);
        let cm_rv = cms.list_metadata(&Default::default()).await.unwrap().metadata.resource_version.unwrap();
        let (object_writes, object_watch) = count_events(cms.clone(), cm_rv);
        let mut last = replicas.pop().unwrap();
        last.terminate(Duration::from_secs(60)).await;
        let restarted = Replica::start(&kubeconfig, &control, &ids[k - 1], lease);
        let restart_at = Instant::now();
        wait_until("the restarted replica acting", Duration::from_secs(120), || restarted.acting()).await;
        let acting_after = restart_at.elapsed().as_secs_f64();
        // Its share is reconciled well within this (1,000 apps take a few seconds to compare).
        tokio::time::sleep(Duration::from_secs(20)).await; // the window in which writes are counted
        app_watch.abort();
        object_watch.abort();
        let (app_writes, object_writes) =
            (app_writes.load(Ordering::Relaxed), object_writes.load(Ordering::Relaxed));
        replicas.push(restarted);

        // Failover: the replica owning app-0000 is killed; a refresh of that app is then asked.
        let failover = if k > 1 {
            let victim =
                berth_controller::replicas::rendezvous::owner("app-0000", ids.iter().map(String::as_str))
                    .unwrap()
                    .to_string();
            let killed = Instant::now();
            replicas.iter_mut().find(|r| r.id == victim).unwrap().kill();
            request_refresh(&apps, "app-0000").await;
            wait_refresh_taken(&apps, "app-0000").await;
            format!("{:.1} s", killed.elapsed().as_secs_f64())
        } else {
            "–".into()
        };
        rows.push(format!(
            "| {k} | {synced:.1} s | {:.0} | {cpu:.1} s | {failover} | {acting_after:.1} s | {app_writes} / {object_writes} |",
            n as f64 / synced
        ));
        drop(replicas);
        let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
        for ns in [&control, &dest] {
            let _ = namespaces.delete(ns, &Default::default()).await;
        }
    }
    println!("\n{n} apps, Lease {lease} s, release build, 2 cores shared with the cluster\n");
    println!(
        "| replicas | created → all Synced | apps/s | CPU of the replicas | failover after kill -9 | restarted replica acting after | writes after a restart (apps / objects) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for row in rows {
        println!("{row}");
    }
}

async fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Counts the writes the API server reports on `api` from `rv` on (a watch), until the task is aborted.
fn count_events<K>(api: Api<K>, rv: String) -> (Arc<AtomicUsize>, tokio::task::JoinHandle<()>)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let handle = tokio::spawn(async move {
        let mut stream = api.watch(&kube::api::WatchParams::default(), &rv).await.unwrap().boxed();
        while let Some(Ok(event)) = stream.next().await {
            if matches!(event, WatchEvent::Added(_) | WatchEvent::Modified(_) | WatchEvent::Deleted(_)) {
                seen.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    (count, handle)
}
