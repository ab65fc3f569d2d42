//! Argo CD's sync options on the real local cluster: how objects are written (Replace, Force,
//! Validate=false, ApplyOutOfSyncOnly, RespectIgnoreDifferences), what is pruned (Prune=false,
//! Prune=confirm), shared resources (FailOnSharedResource) and kinds the cluster does not serve yet
//! (SkipDryRunOnMissingResource).

mod common;

use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

fn results(app: &serde_json::Value) -> Vec<String> {
    app["status"]["operationState"]["syncResult"]["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            format!(
                "{} {} {}",
                r["kind"].as_str().unwrap(),
                r["name"].as_str().unwrap(),
                r["status"].as_str().unwrap()
            )
        })
        .collect()
}

/// Each result as `Kind name Status message`.
fn messages(app: &serde_json::Value) -> Vec<String> {
    app["status"]["operationState"]["syncResult"]["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            format!(
                "{} {} {} {}",
                r["kind"].as_str().unwrap(),
                r["name"].as_str().unwrap(),
                r["status"].as_str().unwrap(),
                r["message"].as_str().unwrap_or_default()
            )
        })
        .collect()
}

fn config_map(name: &str, options: &str, extra: &str) -> String {
    let annotations = if options.is_empty() {
        String::new()
    } else {
        format!("  annotations: {{argocd.argoproj.io/sync-options: \"{options}\"}}\n")
    };
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n{annotations}data: {{v: \"1\"}}\n{extra}"
    )
}

fn job(image: &str) -> String {
    format!(
        "apiVersion: batch/v1
kind: Job
metadata:
  name: task
  annotations: {{argocd.argoproj.io/sync-options: Force=true}}
spec:
  suspend: true
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: run
        image: {image}
"
    )
}

#[tokio::test]
async fn sync_options_change_how_objects_are_written_and_pruned() {
    let mut bench = Bench::start("options").await;
    let repo = GitRepo::new();
    repo.write("app/replace.yaml", &config_map("replaced", "Replace=true", ""));
    repo.write("app/keep.yaml", &config_map("keep", "Prune=false", ""));
    repo.write("app/confirm.yaml", &config_map("confirm", "Prune=confirm", ""));
    repo.write("app/plain.yaml", &config_map("plain", "", ""));
    repo.write("app/strict.yaml", &config_map("strict", "", "spec: {unknown: 1}\n"));
    repo.write("app/job.yaml", &job("busybox:1"));
    repo.commit("first");
    let ns = bench.dest_namespace("options");
    let name = unique("options");
    let mut app = seed_web_app(&name, &repo.url(), &ns);
    app["spec"]["source"]["path"] = "app".into();
    app["spec"]["syncPolicy"] = json!({"syncOptions": ["CreateNamespace=true", "ApplyOutOfSyncOnly=true"]});
    bench.create_app(app).await;
    bench.wait_app(&name, "compared", |a| sync_status(a) == "OutOfSync").await;
    let cms: Api<ConfigMap> = Api::namespaced(bench.client.clone(), &ns);

    // Strict validation (as kubectl's): an unknown field fails the sync before anything is written, in
    // the words Argo CD shows for it.
    let app = bench.operate(&name, json!({"sync": {"prune": true}})).await;
    assert_eq!(phase(&app), "Failed");
    let message = app["status"]["operationState"]["message"].as_str().unwrap();
    assert!(message.starts_with("one or more objects failed to apply (dry run)"), "{message}");
    assert!(
        message.contains("configmap/strict: ConfigMap in version \"v1\" cannot be handled as a ConfigMap: strict decoding error: unknown field \"spec\""),
        "{message}"
    );
    assert!(cms.get_opt("plain").await.unwrap().is_none(), "nothing was written");

    // Validate=false on the object lets the server drop the field.
    repo.write("app/strict.yaml", &config_map("strict", "Validate=false", "spec: {unknown: 1}\n"));
    repo.commit("Validate=false");
    bench.refreshed(&name).await;
    let app = bench.operate(&name, json!({"sync": {"prune": true}})).await;
    assert_eq!(phase(&app), "Succeeded", "{}", app["status"]["operationState"]["message"]);
    let created = messages(&app);
    for written in
        ["ConfigMap plain Synced configmap/plain created", "Job task Synced job.batch/task created"]
    {
        assert!(created.contains(&written.to_string()), "{created:?}");
    }
    let replaced = cms.get("replaced").await.unwrap();
    let managers: Vec<(String, String)> = replaced
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .map(|m| (m.manager.unwrap_or_default(), m.operation.unwrap_or_default()))
        .collect();
    assert!(
        managers.contains(&("argocd-controller".into(), "Update".into())),
        "Replace writes with PUT: {managers:?}"
    );
    let plain = cms.get("plain").await.unwrap();
    assert!(
        plain.metadata.managed_fields.unwrap().iter().any(|m| m.operation.as_deref() == Some("Apply")),
        "the others are server-side applied"
    );

    // ApplyOutOfSyncOnly: only the changed object is written. Force: the Job's template is immutable, so
    // it is deleted and created again.
    let jobs: Api<Job> = Api::namespaced(bench.client.clone(), &ns);
    let old_uid = jobs.get("task").await.unwrap().metadata.uid;
    repo.write("app/job.yaml", &job("busybox:2"));
    repo.remove("app/keep.yaml");
    repo.remove("app/confirm.yaml");
    repo.commit("new job image; keep and confirm leave git");
    bench.refreshed(&name).await;
    // Prune=confirm holds the stage of its prune, as Argo CD does, until the Application approves.
    bench.set_operation(&name, json!({"sync": {"prune": true}})).await;
    bench
        .wait_app(&name, "the confirmation asked for", |a| {
            phase(a) == "Running"
                && a["status"]["operationState"]["message"]
                    == "Waiting for pruning confirmation of v1/ConfigMap/confirm"
        })
        .await;
    assert_eq!(jobs.get("task").await.unwrap().metadata.uid, old_uid, "nothing of the stage ran");
    assert!(cms.get_opt("confirm").await.unwrap().is_some());
    let approve = json!({"metadata": {"annotations": {"argocd.argoproj.io/deletion-approved": "2026-11-26T00:00:00Z"}}});
    bench.apps().patch(&name, &PatchParams::default(), &Patch::Merge(&approve)).await.unwrap();
    let app = bench
        .wait_app(&name, "the sync finished", |a| phase(a) == "Succeeded" && a["operation"].is_null())
        .await;
    let written = results(&app);
    assert!(written.contains(&"Job task Synced".to_string()), "{written:?}");
    assert!(!written.iter().any(|r| r.starts_with("ConfigMap plain")), "in sync, not written: {written:?}");
    let job = jobs.get("task").await.unwrap();
    assert_ne!(job.metadata.uid, old_uid, "Force re-created the Job");
    assert_eq!(job.spec.unwrap().template.spec.unwrap().containers[0].image.as_deref(), Some("busybox:2"));
    // Prune=false is never pruned, in Argo CD's words; the approved one is.
    let messages = messages(&app);
    assert!(messages.contains(&"ConfigMap keep PruneSkipped ignored (no prune)".to_string()), "{messages:?}");
    assert!(messages.contains(&"ConfigMap confirm Pruned pruned".to_string()), "{messages:?}");
    poll("confirm to be pruned", TIMEOUT, || async { cms.get_opt("confirm").await.unwrap().is_none() }).await;
    assert!(cms.get_opt("keep").await.unwrap().is_some());
    bench.cleanup().await;
}

#[tokio::test]
async fn respect_ignore_differences_keeps_a_scaled_deployment_at_its_live_replicas() {
    let mut bench = Bench::start("respect").await;
    let repo = GitRepo::new();
    repo.write("app/web.yaml", &web_manifests("myorg/web:v1"));
    repo.commit("v1");
    let ns = bench.dest_namespace("respect");
    let name = unique("respect");
    let mut app = seed_web_app(&name, &repo.url(), &ns);
    app["spec"]["source"]["path"] = "app".into();
    app["spec"]["syncPolicy"] =
        json!({"syncOptions": ["CreateNamespace=true", "RespectIgnoreDifferences=true"]});
    app["spec"]["ignoreDifferences"] =
        json!([{"group": "apps", "kind": "Deployment", "jsonPointers": ["/spec/replicas"]}]);
    bench.create_app(app).await;
    let app = bench.operate(&name, json!({"sync": {}})).await;
    assert_eq!(phase(&app), "Succeeded", "{}", app["status"]["operationState"]["message"]);
    let deployments: Api<Deployment> = Api::namespaced(bench.client.clone(), &ns);
    // Another manager (an autoscaler) scales to 5; a new image from git keeps the 5 replicas.
    deployments
        .patch(
            "web",
            &PatchParams::apply("autoscaler").force(),
            &Patch::Apply(&json!({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"replicas": 5}})),
        )
        .await
        .unwrap();
    repo.write("app/web.yaml", &web_manifests("myorg/web:v2"));
    repo.commit("v2");
    bench.refreshed(&name).await;
    let app = bench.operate(&name, json!({"sync": {}})).await;
    assert_eq!(phase(&app), "Succeeded", "{}", app["status"]["operationState"]["message"]);
    let spec = deployments.get("web").await.unwrap().spec.unwrap();
    assert_eq!(spec.replicas, Some(5), "the ignored field kept its live value");
    assert_eq!(spec.template.spec.unwrap().containers[0].image.as_deref(), Some("myorg/web:v2"));
    bench.cleanup().await;
}

#[tokio::test]
async fn a_resource_of_another_app_is_reported_and_refused_with_fail_on_shared_resource() {
    let mut bench = Bench::start("shared").await;
    let repo = GitRepo::new();
    repo.write("a/cm.yaml", &config_map("shared", "", ""));
    repo.write("b/cm.yaml", &config_map("shared", "", ""));
    repo.write("b/own.yaml", &config_map("own", "", ""));
    repo.commit("two apps, one ConfigMap");
    let ns = bench.dest_namespace("shared");
    let first = unique("owner");
    let mut app = seed_web_app(&first, &repo.url(), &ns);
    app["spec"]["source"]["path"] = "a".into();
    bench.create_app(app).await;
    bench
        .wait_app(&first, "the owner synced", |a| phase(a) == "Succeeded" && sync_status(a) == "Synced")
        .await;

    let second = unique("intruder");
    let mut app = seed_web_app(&second, &repo.url(), &ns);
    app["spec"]["source"]["path"] = "b".into();
    app["spec"]["syncPolicy"] = json!({"syncOptions": ["FailOnSharedResource=true"]});
    bench.create_app(app).await;
    let app = bench
        .wait_app(&second, "the shared object reported", |a| conditions(a).contains("SharedResourceWarning"))
        .await;
    assert!(conditions(&app).contains(&first), "{}", conditions(&app));
    let app = bench.operate(&second, json!({"sync": {}})).await;
    assert_eq!(phase(&app), "Failed");
    assert!(app["status"]["operationState"]["message"].as_str().unwrap().contains("FailOnSharedResource"));
    let cms: Api<ConfigMap> = Api::namespaced(bench.client.clone(), &ns);
    assert!(cms.get_opt("own").await.unwrap().is_none(), "nothing of the refused sync was applied");
    bench.cleanup().await;
}

#[tokio::test]
async fn skip_dry_run_on_missing_resource_waits_for_a_crd_made_elsewhere() {
    let mut bench = Bench::start("skipdry").await;
    let group = format!("{}.example.com", unique("s"));
    let repo = GitRepo::new();
    repo.write(
        "app/gadget.yaml",
        &format!("apiVersion: {group}/v1\nkind: Gadget\nmetadata:\n  name: g\nspec: {{size: 1}}\n"),
    );
    repo.write("app/cm.yaml", &config_map("cm", "", ""));
    repo.commit("a gadget whose CRD is not there yet");
    let ns = bench.dest_namespace("skipdry");
    let name = unique("skipdry");
    let mut app = seed_web_app(&name, &repo.url(), &ns);
    app["spec"]["source"]["path"] = "app".into();
    app["spec"]["syncPolicy"] =
        json!({"syncOptions": ["CreateNamespace=true", "SkipDryRunOnMissingResource=true"]});
    bench.create_app(app).await;
    bench.wait_app(&name, "compared", |a| sync_status(a) == "OutOfSync").await;
    let app = bench.operate(&name, json!({"sync": {}})).await;
    assert_eq!(phase(&app), "Failed", "the kind is still unknown when its turn comes");
    let message = app["status"]["operationState"]["message"].as_str().unwrap();
    assert!(message.contains("Gadget"), "{message}");
    assert!(results(&app).contains(&"ConfigMap cm Synced".to_string()), "the dry run did not stop the rest");

    // Something else creates the CRD: the next sync applies the gadget.
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("gadgets.{group}")},
        "spec": {"group": group, "scope": "Namespaced",
                 "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
                 "versions": [{"name": "v1", "served": true, "storage": true,
                               "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}});
    let crds: Api<kube::api::DynamicObject> = Api::all_with(
        bench.client.clone(),
        &kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
        )),
    );
    crds.patch(&format!("gadgets.{group}"), &PatchParams::apply("berth-test"), &Patch::Apply(&crd))
        .await
        .unwrap();
    // berth rediscovers the API at most every 5 s; each attempt is a new operation.
    let deadline = std::time::Instant::now() + TIMEOUT;
    let mut app = bench.operate(&name, json!({"sync": {}})).await;
    while phase(&app) != "Succeeded" && std::time::Instant::now() < deadline {
        app = bench.operate(&name, json!({"sync": {}})).await;
    }
    assert_eq!(phase(&app), "Succeeded", "{}", app["status"]["operationState"]["message"]);
    let _ = crds.delete(&format!("gadgets.{group}"), &Default::default()).await;
    bench.cleanup().await;
}
