//! Durations past what Go (and so Argo CD) reads, on the real local cluster: an absurd retry backoff is an
//! InvalidSpecError and never a panic that stops the workers, and an absurd `timeout.reconciliation` is a
//! warning that keeps the controller working until a good one takes effect, without a restart.

mod common;

use common::*;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

/// Past Go's longest duration (2562047h, about 292 years).
const ABSURD: &str = "99999999999999999999s";

fn config_map(value: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: canary\ndata: {{v: {value:?}}}\n")
}

fn app(name: &str, repo: &GitRepo, ns: &str, sync_policy: serde_json::Value) -> serde_json::Value {
    let mut app = seed_web_app(name, &repo.url(), ns);
    app["spec"]["source"]["path"] = "app".into();
    app["spec"]["syncPolicy"] = sync_policy;
    app
}

/// The canary ConfigMap's `v`, read from the API server.
async fn canary_value(cms: &Api<ConfigMap>) -> Option<String> {
    cms.get_opt("canary").await.ok().flatten()?.data?.get("v").cloned()
}

fn operation_message(app: &serde_json::Value) -> &str {
    app["status"]["operationState"]["message"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn sixteen_apps_with_an_absurd_retry_backoff_do_not_stop_a_canary_from_deploying() {
    let mut bench = Bench::start("absurd-retry").await;
    // Every sync of these fails: the destination namespace does not exist and is not created.
    let failing = GitRepo::new();
    failing.write("app/cm.yaml", &config_map("never"));
    failing.commit("failing");
    let missing = bench.dest_namespace("absurd-missing");
    let mut refused = Vec::new();
    for i in 0..16 {
        let (duration, max, field) = if i % 4 == 3 {
            ("5s", ABSURD, "spec.syncPolicy.retry.backoff.maxDuration")
        } else {
            (ABSURD, "3m", "spec.syncPolicy.retry.backoff.duration")
        };
        let factor = if i % 2 == 1 { i64::MAX } else { 2 };
        let name = unique("absurd");
        let policy = json!({"automated": {}, "retry": {"limit": -1,
            "backoff": {"duration": duration, "factor": factor, "maxDuration": max}}});
        bench.create_app(app(&name, &failing, &missing, policy)).await;
        refused.push((name, field));
    }
    // Backoffs Go reads but at its very bounds: these fail, retry, and wait (up to) about 292 years.
    let mut retrying = Vec::new();
    for (duration, attempt) in [("9223372036s", "#1 in 9223372036s"), ("1s", "#2 in 4294967295s")] {
        let name = unique("extreme");
        let policy = json!({"automated": {}, "retry": {"limit": -1,
            "backoff": {"duration": duration, "factor": i64::MAX, "maxDuration": "0"}}});
        bench.create_app(app(&name, &failing, &missing, policy)).await;
        retrying.push((name, attempt));
    }
    let canary_repo = GitRepo::new();
    canary_repo.write("app/cm.yaml", &config_map("v1"));
    canary_repo.commit("v1");
    let canary_ns = bench.dest_namespace("canary");
    let canary = unique("canary");
    let policy =
        json!({"automated": {"prune": true, "selfHeal": true}, "syncOptions": ["CreateNamespace=true"]});
    bench.create_app(app(&canary, &canary_repo, &canary_ns, policy)).await;
    let cms: Api<ConfigMap> = Api::namespaced(bench.client.clone(), &canary_ns);
    poll("the canary's v1 deployed", TIMEOUT, || async { canary_value(&cms).await.as_deref() == Some("v1") })
        .await;

    for (name, field) in &refused {
        let app = bench
            .wait_app(name, "an InvalidSpecError naming the field", |a| {
                conditions(a).contains("InvalidSpecError") && conditions(a).contains(field)
            })
            .await;
        let text = conditions(&app);
        assert!(text.contains(&format!("{field}: \\\"{ABSURD}\\\" is not a duration")), "{text}");
        assert!(app["status"]["operationState"].is_null(), "an invalid spec is never synced: {app}");
    }
    for (name, attempt) in &retrying {
        let app = bench
            .wait_app(name, "a retry scheduled", |a| {
                operation_message(a).contains(&format!("Retrying attempt {attempt}"))
            })
            .await;
        assert_eq!(phase(&app), "Running", "{}", operation_message(&app));
    }

    // Polling (2 s on this bench) finds the canary's new commit; nothing asked for a refresh.
    canary_repo.write("app/cm.yaml", &config_map("v2"));
    canary_repo.commit("v2");
    poll("the canary's v2 deployed", TIMEOUT, || async { canary_value(&cms).await.as_deref() == Some("v2") })
        .await;
    bench.cleanup().await;
}

#[tokio::test]
async fn a_bad_timeout_reconciliation_then_a_good_one_takes_effect_without_a_restart() {
    let mut bench = Bench::start("bad-timeout").await;
    let argocd_cm: Api<ConfigMap> = Api::namespaced(bench.client.clone(), &bench.namespace);
    let set_reconciliation = |value: &'static str| {
        let argocd_cm = argocd_cm.clone();
        async move {
            let patch = json!({"data": {"timeout.reconciliation": value}});
            argocd_cm.patch("argocd-cm", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
        }
    };
    let repo = GitRepo::new();
    repo.write("app/cm.yaml", &config_map("v1"));
    repo.commit("v1");
    let ns = bench.dest_namespace("bad-timeout");
    let name = unique("bad-timeout");
    let policy = json!({"automated": {"prune": true}, "syncOptions": ["CreateNamespace=true"]});
    bench.create_app(app(&name, &repo, &ns, policy)).await;
    let cms: Api<ConfigMap> = Api::namespaced(bench.client.clone(), &ns);
    poll("v1 deployed", TIMEOUT, || async { canary_value(&cms).await.as_deref() == Some("v1") }).await;

    // Past Go's longest: a warning on the application, the default period kept, the controller working.
    set_reconciliation(ABSURD).await;
    let app = bench
        .wait_app(&name, "the warning naming the key", |a| {
            conditions(a).contains("argocd-cm timeout.reconciliation: ")
        })
        .await;
    assert!(
        conditions(&app).contains(&format!("\\\"{ABSURD}\\\" is not a duration")),
        "{}",
        conditions(&app)
    );
    repo.write("app/cm.yaml", &config_map("v2"));
    repo.commit("v2");
    bench.refresh(&name).await;
    poll("v2 deployed after a refresh", TIMEOUT, || async {
        canary_value(&cms).await.as_deref() == Some("v2")
    })
    .await;

    // Just under Go's longest: read, no warning, and a poll about 292 years away does not overflow.
    set_reconciliation("9223372036s").await;
    bench.wait_app(&name, "the warning gone", |a| !conditions(a).contains("timeout.reconciliation")).await;
    repo.write("app/cm.yaml", &config_map("v3"));
    repo.commit("v3");
    bench.refresh(&name).await;
    poll("v3 deployed after a refresh", TIMEOUT, || async {
        canary_value(&cms).await.as_deref() == Some("v3")
    })
    .await;

    // A good period takes effect at once: polling finds the next commit, nothing asks for a refresh.
    set_reconciliation("2s").await;
    repo.write("app/cm.yaml", &config_map("v4"));
    let sha = repo.commit("v4");
    bench
        .wait_app(&name, "the new commit found by polling", |a| {
            a["status"]["sync"]["revision"] == sha.as_str()
        })
        .await;
    poll("v4 deployed", TIMEOUT, || async { canary_value(&cms).await.as_deref() == Some("v4") }).await;
    bench.cleanup().await;
}
