//! The writes berth makes to the API server for an application's life: at most two Application writes for
//! a first automatic sync, none for a poll that finds nothing new, and, restarted over Synced applications,
//! nothing at all (no apply, no status write, no Event), whether it was stopped cleanly or killed. The
//! writes are counted from the API server's watches, from a resourceVersion recorded before.

mod common;

use common::*;
use k8s_openapi::api::core::v1::{ConfigMap, Event};
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const APPS: usize = 30;

/// Restarts the controller (`kill`: aborted mid-flight, else a graceful stop) and returns the writes the
/// new one made to the Applications, the managed ConfigMaps and the Events until it had passed over every
/// application once with its queue drained, and the time that took.
async fn restart(bench: &mut Bench, dest: &str, names: &[String], kill: bool) -> (Vec<String>, Duration) {
    if kill {
        bench.kill_controller().await;
    } else {
        bench.stop_controller().await;
    }
    let apps = bench.apps();
    let maps: Api<ConfigMap> = Api::namespaced(bench.client.clone(), dest);
    let events: Api<Event> = Api::namespaced(bench.client.clone(), &bench.namespace);
    // A list's resourceVersion is the store's at that moment: every write after it is a watch event.
    let rv = maps.list_metadata(&ListParams::default()).await.unwrap().metadata.resource_version.unwrap();
    let watches = [
        writes_until_sentinel(apps.clone(), rv.clone()),
        writes_until_sentinel(maps.clone(), rv.clone()),
        writes_until_sentinel(events.clone(), rv.clone()),
    ];

    // A fresh view: the old controller may linger in the old one until its last task ends.
    bench.view = Default::default();
    let started = Instant::now();
    bench.start_controller();
    let view = bench.view.clone();
    let names = names.to_vec();
    poll("every application passed over once, the queue drained", TIMEOUT, || {
        let (view, names) = (view.clone(), names.clone());
        async move {
            view.get().is_some_and(|c| names.iter().all(|n| c.passes(n) > 0))
                && berth_controller::metrics::global()
                    .render()
                    .contains("workqueue_depth{name=\"app_reconciliation_queue\"} 0")
        }
    })
    .await;
    let took = started.elapsed();

    // Sentinels close the watches: each arrives after every write made before it.
    let sentinel = |kind: &str, name: &str, ns: &str| {
        json!({"apiVersion": "v1", "kind": kind, "metadata": {"name": name, "namespace": ns,
            "annotations": {SENTINEL: "true", "argocd.argoproj.io/skip-reconcile": "true"}}})
    };
    let mark = app_sentinel(bench).await;
    apply_json(&bench.client, dest, sentinel("ConfigMap", &mark, dest)).await;
    let mut event = sentinel("Event", &mark, &bench.namespace);
    event["involvedObject"] = json!({"kind": "ConfigMap", "name": mark, "namespace": bench.namespace});
    event["reason"] = "Sentinel".into();
    events.patch(&mark, &PatchParams::apply("berth-test"), &Patch::Apply(&event)).await.unwrap();
    let mut writes = Vec::new();
    for watch in watches {
        writes.extend(tokio::time::timeout(TIMEOUT, watch).await.expect("the sentinel arrives").unwrap());
    }
    apps.delete(&mark, &Default::default()).await.unwrap();
    (writes, took)
}

/// Writes an Application the controller skips (`skip-reconcile`) that closes the watches of Applications
/// ([`writes_until_sentinel`]), and returns its name.
async fn app_sentinel(bench: &Bench) -> String {
    let mark = unique("sentinel");
    let app = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": mark, "namespace": bench.namespace,
            "annotations": {SENTINEL: "true", "argocd.argoproj.io/skip-reconcile": "true"}},
        "spec": {"project": "default", "destination": {"server": "https://kubernetes.default.svc"},
            "source": {"repoURL": "file:///nowhere", "path": "."}}});
    bench.apps().patch(&mark, &PatchParams::apply("berth-test"), &Patch::Apply(&app)).await.unwrap();
    mark
}

/// Waits until the controller's queue is empty, then returns the Application writes the watch `from`
/// saw (closed by a sentinel), as a count per application, creations left out.
async fn app_writes(bench: &Bench, watch: tokio::task::JoinHandle<Vec<String>>) -> BTreeMap<String, usize> {
    poll("the queue drained", TIMEOUT, || async {
        berth_controller::metrics::global()
            .render()
            .contains("workqueue_depth{name=\"app_reconciliation_queue\"} 0")
    })
    .await;
    let mark = app_sentinel(bench).await;
    let writes = tokio::time::timeout(TIMEOUT, watch).await.expect("the sentinel arrives").unwrap();
    bench.apps().delete(&mark, &Default::default()).await.unwrap();
    let mut counts = BTreeMap::new();
    for write in writes.iter().filter(|w| !w.starts_with("ADDED ")) {
        let name = write.rsplit('/').next().unwrap_or_default().to_string();
        *counts.entry(name).or_default() += 1;
    }
    counts
}

async fn reconciliation_period(bench: &Bench, period: &str) {
    reconciliation_period_with_jitter(bench, period, "0s").await;
}

async fn reconciliation_period_with_jitter(bench: &Bench, period: &str, jitter: &str) {
    apply_json(
        &bench.client,
        &bench.namespace.clone(),
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "argocd-cm", "namespace": bench.namespace},
            "data": {"timeout.reconciliation": period, "timeout.reconciliation.jitter": jitter,
                "berth.repositories.allowFileURLs": "true"}}),
    )
    .await;
}

/// The `ls-remote`s git made so far in this process (berth's `argocd_git_request_total`, counted where git
/// runs).
fn ls_remotes() -> u64 {
    berth_controller::metrics::global()
        .render()
        .lines()
        .filter(|l| l.starts_with("argocd_git_request_total{") && l.contains("request_type=\"ls-remote\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test]
async fn a_restarted_controller_reconciles_synced_apps_without_writing_anything() {
    let mut bench = Bench::start("restart").await;
    // A polling period far longer than the test: a write could only come from the sync or the restart.
    reconciliation_period(&bench, "180s").await;
    let repo = GitRepo::new();
    let dest = bench.dest_namespace("restart-dest");
    let names: Vec<String> = (0..APPS).map(|i| format!("app-{i}")).collect();
    for name in &names {
        repo.write(
            &format!("apps/{name}/config.yaml"),
            &format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  app: {name}\n"),
        );
    }
    repo.commit("thirty apps");
    let apps = bench.apps();
    let rv = apps.list_metadata(&ListParams::default()).await.unwrap().metadata.resource_version.unwrap();
    let watch = writes_until_sentinel(apps.clone(), rv);
    for name in &names {
        bench
            .create_app(json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
                "metadata": {"name": name},
                "spec": {"project": "default",
                    "source": {"repoURL": repo.url(), "path": format!("apps/{name}"), "targetRevision": "main"},
                    "destination": {"server": "https://kubernetes.default.svc", "namespace": dest},
                    "syncPolicy": {"automated": {"prune": true, "selfHeal": true},
                        "syncOptions": ["CreateNamespace=true"]}}}))
            .await;
    }
    for name in &names {
        bench
            .wait_app(name, "Synced and Healthy", |a| {
                sync_status(a) == "Synced" && health(a) == "Healthy" && phase(a) == "Succeeded"
            })
            .await;
    }

    // A first automatic sync: the operation's start and end and the compare after it fit in two writes.
    let writes = app_writes(&bench, watch).await;
    let total: usize = writes.values().sum();
    println!(
        "first sync: {total} Application writes for {APPS} apps ({:.2} per app)",
        total as f64 / APPS as f64
    );
    assert!(
        names.iter().all(|n| writes.get(n).copied().unwrap_or(0) <= 2),
        "more than two writes: {writes:?}"
    );

    // Each app's events, as Argo CD records them, one per change: the first write's (read against the copy it
    // replaced, not the watch's copy of the write itself) and a sync and a health move of one write apart.
    let events: Api<Event> = Api::namespaced(bench.client.clone(), &bench.namespace);
    poll("every app's sync events", TIMEOUT, || {
        let (events, names) = (events.clone(), names.clone());
        async move {
            let list = events.list(&ListParams::default()).await.unwrap();
            names.iter().all(|name| {
                let notes: Vec<&str> = list
                    .items
                    .iter()
                    .filter(|e| e.involved_object.name.as_deref() == Some(name.as_str()))
                    .filter_map(|e| e.message.as_deref())
                    .collect();
                let has = |s: &str| notes.iter().any(|n| n.starts_with(s));
                has("Initiated automated sync to")
                    && has("Sync operation to ")
                    && has("Updated sync status: OutOfSync -> Synced")
                    && has("Updated health status: Missing -> Healthy")
            })
        }
    })
    .await;

    // Polls (every 3 s plus each app's jitter of up to 3 s) that find nothing new write nothing, and ask git
    // about once a polling period for all the apps together, not once a second.
    let view = bench.view.clone();
    let passes: Vec<u64> = names.iter().map(|n| view.get().unwrap().passes(n)).collect();
    let rv = apps.list_metadata(&ListParams::default()).await.unwrap().metadata.resource_version.unwrap();
    let watch = writes_until_sentinel(apps.clone(), rv);
    let ls_remotes_before = ls_remotes();
    let polling = Instant::now();
    reconciliation_period_with_jitter(&bench, "3s", "3s").await;
    poll("two polls of every application", TIMEOUT, || {
        let (view, names, passes) = (view.clone(), names.clone(), passes.clone());
        async move {
            let c = view.get().unwrap();
            names.iter().zip(&passes).all(|(n, before)| c.passes(n) >= before + 2)
        }
    })
    .await;
    reconciliation_period(&bench, "180s").await;
    let (window, asked) = (polling.elapsed(), ls_remotes() - ls_remotes_before);
    let writes = app_writes(&bench, watch).await;
    println!(
        "polls over {window:?}: {asked} ls-remotes, {} Application writes",
        writes.values().sum::<usize>()
    );
    assert!(writes.is_empty(), "polls that found nothing new wrote: {writes:?}");
    // One a period at most, and one for the settings' change; a second-long sharing would make one a second.
    let bound = (window.as_secs_f64() / 3.0).floor() as u64 + 2;
    assert!(asked <= bound, "{asked} ls-remotes in {window:?} of polling every 3 s (at most {bound})");

    let (writes, took) = restart(&mut bench, &dest, &names, false).await;
    println!("restart after a clean stop: {APPS} apps reconciled in {took:?}, {} writes", writes.len());
    assert!(writes.is_empty(), "a restart with nothing changed wrote: {writes:#?}");

    let (writes, took) = restart(&mut bench, &dest, &names, true).await;
    println!("restart after a kill: {APPS} apps reconciled in {took:?}, {} writes", writes.len());
    assert!(writes.is_empty(), "a restart after a kill with nothing changed wrote: {writes:#?}");

    bench.cleanup().await;
}
