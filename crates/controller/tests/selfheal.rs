//! Self-heal that cannot race, on the real local cluster: a commit that prunes is synced once and each
//! object deleted once; a comparison error is a condition, not a sync loop; and two Applications fighting
//! over one object are warned and slowed down by the self-heal backoff (Argo CD 3.x's defaults).

mod common;

use berth_api::Application;
use common::*;
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

fn config_map(name: &str, value: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata: {{v: \"{value}\"}}\n")
}

/// An auto-sync (prune, selfHeal) Application of `path` in `repo`, deploying to `ns`.
fn auto_app(name: &str, repo: &GitRepo, path: &str, ns: &str) -> serde_json::Value {
    let mut app = seed_web_app(name, &repo.url(), ns);
    app["spec"]["source"]["path"] = path.into();
    app
}

fn history_of(app: &serde_json::Value, revision: &str) -> usize {
    app["status"]["history"].as_array().into_iter().flatten().filter(|h| h["revision"] == revision).count()
}

fn started_at(app: &serde_json::Value) -> String {
    app["status"]["operationState"]["startedAt"].as_str().unwrap_or_default().to_string()
}

fn self_heal_attempts(app: &serde_json::Value) -> i64 {
    app["status"]["operationState"]["operation"]["sync"]["selfHealAttemptsCount"].as_i64().unwrap_or(0)
}

/// The sync operations that start on the named Applications during `window`, read from a watch of the
/// Applications: each distinct (name, status.operationState.startedAt) not already there when it began.
async fn syncs_started(apps: Api<Application>, names: &[String], window: Duration) -> Vec<(String, String)> {
    let mut before = BTreeSet::new();
    for name in names {
        let app = serde_json::to_value(apps.get(name).await.unwrap()).unwrap();
        before.insert((name.clone(), started_at(&app)));
    }
    let mut seen = BTreeSet::new();
    let mut stream = watcher(apps, watcher::Config::default()).applied_objects().boxed();
    let end = Instant::now() + window;
    while let Ok(Some(event)) = tokio::time::timeout_at(end.into(), stream.next()).await {
        let app = event.expect("the Application watch");
        let name = app.metadata.name.clone().unwrap_or_default();
        if !names.contains(&name) {
            continue;
        }
        let started = started_at(&serde_json::to_value(&app).unwrap());
        if !started.is_empty() && !before.contains(&(name.clone(), started.clone())) {
            seen.insert((name, started));
        }
    }
    seen.into_iter().collect()
}

#[tokio::test]
async fn a_commit_that_prunes_is_synced_once_and_each_object_deleted_once() {
    const APPS: usize = 30;
    let mut bench = Bench::start("prune-once").await;
    let repo = GitRepo::new();
    for i in 0..APPS {
        repo.write(&format!("app-{i}/keep.yaml"), &config_map(&format!("keep-{i}"), "1"));
        repo.write(&format!("app-{i}/gone.yaml"), &config_map(&format!("gone-{i}"), "1"));
    }
    let first = repo.commit("two ConfigMaps an app");
    let ns = bench.dest_namespace("prune-once");
    let names: Vec<String> = (0..APPS).map(|i| format!("{}-{i}", unique("p"))).collect();
    for (i, name) in names.iter().enumerate() {
        bench.create_app(auto_app(name, &repo, &format!("app-{i}"), &ns)).await;
    }
    let all_synced_to = |revision: String| {
        let names = names.clone();
        let apps = bench.apps();
        move || {
            let (names, apps, revision) = (names.clone(), apps.clone(), revision.clone());
            async move {
                for name in &names {
                    let app = serde_json::to_value(apps.get(name).await.unwrap()).unwrap();
                    if sync_status(&app) != "Synced" || history_of(&app, &revision) == 0 {
                        return false;
                    }
                }
                true
            }
        }
    };
    poll("every app synced the first commit", Duration::from_secs(120), all_synced_to(first.clone())).await;

    for i in 0..APPS {
        repo.remove(&format!("app-{i}/gone.yaml"));
    }
    let second = repo.commit("one ConfigMap less an app");
    let cms: Api<ConfigMap> = Api::namespaced(bench.client.clone(), &ns);
    poll("every app synced the pruning commit", Duration::from_secs(120), all_synced_to(second.clone()))
        .await;
    poll("every pruned ConfigMap gone", Duration::from_secs(60), || {
        let cms = cms.clone();
        async move {
            for i in 0..APPS {
                if cms.get_opt(&format!("gone-{i}")).await.unwrap().is_some() {
                    return false;
                }
            }
            true
        }
    })
    .await;
    let mut after = Vec::new();
    let view = bench.view.clone();
    let passes: Vec<u64> = names.iter().map(|n| view.get().unwrap().passes(n)).collect();
    for name in &names {
        after.push(bench.app(name).await);
    }
    // Then at least one more pass over each (a poll: it writes nothing when nothing changed), and nothing
    // more happened.
    poll("one more pass over every app", Duration::from_secs(60), || {
        let (view, names, passes) = (view.clone(), names.clone(), passes.clone());
        async move {
            let c = view.get().unwrap();
            names.iter().zip(&passes).all(|(n, before)| c.passes(n) > *before)
        }
    })
    .await;
    for (name, before) in names.iter().zip(&after) {
        let app = bench.app(name).await;
        assert_eq!(history_of(&app, &second), 1, "{name}: one sync of the pruning commit: {}", app["status"]);
        assert_eq!(started_at(&app), started_at(before), "{name}: no second sync of the commit");
        assert_eq!(self_heal_attempts(&app), 0, "{name}: no self-heal of the commit");
        assert_eq!(sync_status(&app), "Synced", "{name}");
    }
    for i in 0..APPS {
        assert!(cms.get_opt(&format!("keep-{i}")).await.unwrap().is_some(), "keep-{i} stays");
    }
    bench.cleanup().await;
}

#[tokio::test]
async fn an_invalid_jq_rule_is_a_condition_not_a_sync_loop() {
    let mut bench = Bench::start("badjq").await;
    let repo = GitRepo::new();
    repo.write("app/cm.yaml", &config_map("web", "1"));
    repo.commit("one ConfigMap");
    let ns = bench.dest_namespace("badjq");
    let name = unique("badjq");
    let mut app = auto_app(&name, &repo, "app", &ns);
    app["spec"]["ignoreDifferences"] =
        json!([{"kind": "ConfigMap", "jqPathExpressions": [".data.v", ".data["]}]);
    bench.create_app(app).await;
    let app = bench
        .wait_app(&name, "the comparison error reported", |a| {
            conditions(a).contains("spec.ignoreDifferences[0].jqPathExpressions[1]")
        })
        .await;
    assert!(conditions(&app).contains("ComparisonError"), "{}", conditions(&app));
    assert_eq!(sync_status(&app), "Unknown", "a comparison error is not drift");
    let syncs = syncs_started(bench.apps(), std::slice::from_ref(&name), Duration::from_secs(10)).await;
    assert!(syncs.len() <= 1, "no sync loop: {syncs:?}");
    let app = bench.app(&name).await;
    assert_eq!(sync_status(&app), "Unknown");
    bench.cleanup().await;
}

#[tokio::test]
async fn two_apps_sharing_an_object_warn_and_slow_down() {
    let mut bench = Bench::start("fight").await;
    let repo = GitRepo::new();
    repo.write("a/cm.yaml", &config_map("shared", "a"));
    repo.write("b/cm.yaml", &config_map("shared", "b"));
    repo.commit("two apps, one ConfigMap, two contents");
    let ns = bench.dest_namespace("fight");
    let first = unique("first");
    bench.create_app(auto_app(&first, &repo, "a", &ns)).await;
    bench
        .wait_app(&first, "the first app synced", |a| phase(a) == "Succeeded" && sync_status(a) == "Synced")
        .await;
    let second = unique("second");
    bench.create_app(auto_app(&second, &repo, "b", &ns)).await;
    bench.wait_app(&second, "the second app synced once", |a| phase(a) == "Succeeded").await;
    // From here each app's drift is the other's sync: without a backoff they would sync back and forth
    // every pass; with Argo CD's (at once, then 2 s, 6 s, 18 s …) three self-heals each fit in 20 s.
    let names = [first.clone(), second.clone()];
    let syncs = syncs_started(bench.apps(), &names, Duration::from_secs(20)).await;
    assert!(syncs.len() <= 6, "the fight slows to a trickle: {} syncs: {syncs:?}", syncs.len());
    let mut warned = Vec::new();
    for name in &names {
        let app = bench.app(name).await;
        if conditions(&app).contains("SharedResourceWarning") {
            warned.push(conditions(&app));
        }
    }
    assert!(!warned.is_empty(), "a SharedResourceWarning on at least one app");
    assert!(warned.iter().any(|c| c.contains("ConfigMap/shared is part of applications")), "{warned:?}");
    bench.cleanup().await;
}
