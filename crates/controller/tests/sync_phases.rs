//! Sync in depth on the real local cluster: the seed's PreSync migration, PostSync after health, SyncFail
//! on a failed hook, CRD → operator → custom resource waves, a controller restart in the middle of a sync,
//! and retries. The order of events is taken from watches of the API server, not from berth's own record.

mod common;

use common::*;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::watcher;
use serde_json::json;
use std::sync::{Arc, Mutex};

/// Facts about Jobs and Deployments of a namespace in the order the API server reported them.
#[derive(Clone, Default)]
struct Timeline(Arc<Mutex<Vec<String>>>);

impl Timeline {
    fn start(client: &kube::Client, ns: &str) -> Timeline {
        let t = Timeline::default();
        let jobs: Api<Job> = Api::namespaced(client.clone(), ns);
        let recorder = t.clone();
        tokio::spawn(async move {
            let mut events = watcher(jobs, watcher::Config::default()).boxed();
            while let Some(Ok(event)) = events.next().await {
                if let watcher::Event::Apply(job) | watcher::Event::InitApply(job) = event {
                    let name = job.metadata.name.clone().unwrap_or_default();
                    recorder.note(format!("job {name} created"));
                    for c in job.status.iter().flat_map(|s| s.conditions.iter().flatten()) {
                        if c.status == "True" && (c.type_ == "Complete" || c.type_ == "Failed") {
                            recorder.note(format!("job {name} {}", c.type_.to_lowercase()));
                        }
                    }
                }
            }
        });
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
        let recorder = t.clone();
        tokio::spawn(async move {
            let mut events = watcher(deployments, watcher::Config::default()).boxed();
            while let Some(Ok(event)) = events.next().await {
                if let watcher::Event::Apply(d) | watcher::Event::InitApply(d) = event {
                    let name = d.metadata.name.clone().unwrap_or_default();
                    let spec = d.spec.clone().unwrap_or_default();
                    let image = spec.template.spec.as_ref().and_then(|p| p.containers[0].image.clone());
                    recorder.note(format!("deployment {name} image {}", image.unwrap_or_default()));
                    let status = d.status.clone().unwrap_or_default();
                    let rolled_out = status.observed_generation == d.metadata.generation
                        && status.updated_replicas.unwrap_or(0) == spec.replicas.unwrap_or(1)
                        && status.available_replicas.unwrap_or(0) == spec.replicas.unwrap_or(1);
                    if rolled_out {
                        let image = spec.template.spec.and_then(|p| p.containers[0].image.clone());
                        recorder.note(format!("deployment {name} available {}", image.unwrap_or_default()));
                    }
                }
            }
        });
        t
    }

    fn note(&self, fact: String) {
        let mut facts = self.0.lock().unwrap();
        if !facts.contains(&fact) {
            facts.push(fact);
        }
    }

    /// Position of the first fact that starts with `prefix` and contains `part`.
    fn find(&self, prefix: &str, part: &str) -> Option<usize> {
        self.0.lock().unwrap().iter().position(|f| f.starts_with(prefix) && f.contains(part))
    }

    fn at(&self, prefix: &str, part: &str) -> usize {
        self.find(prefix, part)
            .unwrap_or_else(|| panic!("no {prefix:?} … {part:?} in {:#?}", self.0.lock().unwrap()))
    }

    fn dump(&self) -> String {
        format!("{:#?}", self.0.lock().unwrap())
    }
}

async fn jobs(client: &kube::Client, ns: &str) -> Vec<Job> {
    Api::<Job>::namespaced(client.clone(), ns).list(&Default::default()).await.unwrap().items
}

fn web(image: &str, replicas: u32) -> String {
    web_manifests(image).replace("replicas: 3", &format!("replicas: {replicas}"))
}

fn job(name: &str, annotations: &str, spec_extra: &str) -> String {
    format!(
        "apiVersion: batch/v1
kind: Job
metadata:
  name: {name}
  annotations:
{annotations}
spec:
  backoffLimit: 0
{spec_extra}
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: run
        image: busybox
"
    )
}

#[tokio::test]
async fn the_seeds_presync_migration_runs_before_the_deployment_changes_and_is_deleted_after() {
    let mut bench = Bench::start("presync").await;
    let repo = GitRepo::new();
    let hook = std::fs::read_to_string(seed_dir().join("hook-presync-migrate.yaml")).unwrap();
    repo.write("apps/web/web.yaml", &web_manifests("myorg/web:v1.2.3"));
    repo.write("apps/web/migrate.yaml", &hook);
    repo.commit("web with a migration");
    let ns = bench.dest_namespace("presync");
    ensure_namespace(&bench.client, &ns).await;
    let timeline = Timeline::start(&bench.client, &ns);
    let name = unique("presync");
    bench.create_app(seed_web_app(&name, &repo.url(), &ns)).await;

    let app = bench
        .wait_app(&name, "synced with the hook run", |a| {
            phase(a) == "Succeeded" && sync_status(a) == "Synced"
        })
        .await;
    let results = app["status"]["operationState"]["syncResult"]["resources"].as_array().unwrap();
    let hook = results.iter().find(|r| r["hookType"] == "PreSync").expect("the hook is in the result");
    assert_eq!(hook["kind"], "Job");
    assert_eq!(hook["hookPhase"], "Succeeded");
    assert_eq!(hook["syncPhase"], "PreSync");
    let job_name = hook["name"].as_str().unwrap().to_string();
    assert!(job_name.starts_with("migrate-"), "generateName: {job_name}");
    poll("the Deployment to roll out", TIMEOUT, || async {
        timeline.find("deployment web available", "v1.2.3").is_some()
    })
    .await;
    assert!(
        timeline.at(&format!("job {job_name} complete"), "") < timeline.at("deployment web image", "v1.2.3"),
        "the migration completed before the Deployment was written: {}",
        timeline.dump()
    );
    // HookSucceeded: the Job is deleted once the sync is done; the hook never makes the app OutOfSync.
    poll("the migration Job to be deleted", TIMEOUT, || async {
        jobs(&bench.client, &ns).await.iter().all(|j| j.metadata.deletion_timestamp.is_some())
    })
    .await;
    assert!(app["status"]["resources"].as_array().unwrap().iter().all(|r| r["kind"] != "Job"));

    // A new image: the migration runs again, and again before the Deployment changes.
    repo.write("apps/web/web.yaml", &web_manifests("myorg/web:v1.2.4"));
    repo.commit("web v1.2.4");
    bench.refresh(&name).await;
    let app = bench
        .wait_app(&name, "v1.2.4 synced", |a| {
            phase(a) == "Succeeded" && a["status"]["history"].as_array().is_some_and(|h| h.len() == 2)
        })
        .await;
    let second = app["status"]["operationState"]["syncResult"]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["hookType"] == "PreSync")
        .unwrap()["name"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(second, job_name, "a new Job for the new sync");
    poll("v1.2.4 to be written", TIMEOUT, || async {
        timeline.find("deployment web image", "v1.2.4").is_some()
    })
    .await;
    assert!(
        timeline.at(&format!("job {second} complete"), "") < timeline.at("deployment web image", "v1.2.4"),
        "{}",
        timeline.dump()
    );
    bench.cleanup().await;
}

#[tokio::test]
async fn postsync_runs_after_the_deployment_is_healthy_and_a_failed_hook_runs_syncfail() {
    let mut bench = Bench::start("postsync").await;
    let repo = GitRepo::new();
    repo.write("app/web.yaml", &web("myorg/web:v1", 2));
    repo.write("app/smoke.yaml", &job("smoke", "    argocd.argoproj.io/hook: PostSync", ""));
    repo.write(
        "app/alert.yaml",
        &job("alert", "    argocd.argoproj.io/hook: SyncFail\n    argocd.argoproj.io/hook-delete-policy: BeforeHookCreation", ""),
    );
    repo.commit("web with smoke test and alert");
    let ns = bench.dest_namespace("postsync");
    ensure_namespace(&bench.client, &ns).await;
    let timeline = Timeline::start(&bench.client, &ns);
    let name = unique("postsync");
    let mut app = seed_web_app(&name, &repo.url(), &ns);
    app["spec"]["source"]["path"] = "app".into();
    app["spec"]["syncPolicy"] = json!({});
    bench.create_app(app).await;
    bench.wait_app(&name, "OutOfSync", |a| sync_status(a) == "OutOfSync").await;
    bench.set_operation(&name, json!({"sync": {"prune": true}, "initiatedBy": {"username": "admin"}})).await;
    bench.wait_app(&name, "the sync finished", |a| phase(a) == "Succeeded" && a["operation"].is_null()).await;
    assert!(
        timeline.at("deployment web available", "v1") < timeline.at("job smoke created", ""),
        "the smoke test started after the Deployment was healthy: {}",
        timeline.dump()
    );
    assert!(timeline.find("job alert", "").is_none(), "no SyncFail hook on success");

    // A PreSync hook that fails (it can never be scheduled and has a 1 s deadline): the new image is
    // not applied, SyncFail runs, and the operation is Failed with the hook named.
    repo.write(
        "app/gate.yaml",
        &job("gate", "    argocd.argoproj.io/hook: PreSync", "  activeDeadlineSeconds: 1").replace(
            "      restartPolicy: Never",
            "      restartPolicy: Never\n      nodeSelector: {berth.dev/no-such-node: \"true\"}",
        ),
    );
    repo.write("app/web.yaml", &web("myorg/web:v2", 2));
    repo.commit("a failing gate");
    bench.refreshed(&name).await;
    bench.set_operation(&name, json!({"sync": {}, "initiatedBy": {"username": "admin"}})).await;
    let app = bench.wait_app(&name, "the sync failed", |a| phase(a) == "Failed").await;
    let message = app["status"]["operationState"]["message"].as_str().unwrap();
    assert!(message.contains("PreSync") && message.contains("job.batch/gate"), "{message}");
    assert!(timeline.find("job alert created", "").is_some(), "SyncFail ran: {}", timeline.dump());
    assert!(
        timeline.find("deployment web image", "v2").is_none(),
        "v2 was never applied: {}",
        timeline.dump()
    );
    assert!(conditions(&app).contains("SyncError"), "{}", conditions(&app));
    bench.cleanup().await;
}

#[tokio::test]
async fn crd_then_operator_then_custom_resource_follow_their_waves() {
    let mut bench = Bench::start("waves").await;
    let group = format!("{}.example.com", unique("w"));
    let crd = format!(
        "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.{group}
  annotations: {{argocd.argoproj.io/sync-wave: \"1\"}}
spec:
  group: {group}
  scope: Namespaced
  names: {{plural: widgets, singular: widget, kind: Widget}}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
"
    );
    let operator = web("myorg/operator:v1", 1)
        .replace("name: web\nspec:\n  replicas", "name: web\n  annotations: {argocd.argoproj.io/sync-wave: \"2\"}\nspec:\n  minReadySeconds: 2\n  replicas");
    let widget = format!(
        "apiVersion: {group}/v1\nkind: Widget\nmetadata:\n  name: w\n  annotations: {{argocd.argoproj.io/sync-wave: \"3\"}}\nspec: {{size: 1}}\n"
    );
    let repo = GitRepo::new();
    repo.write("app/crd.yaml", &crd);
    repo.write("app/operator.yaml", operator.split("---").next().unwrap());
    repo.write("app/widget.yaml", &widget);
    repo.commit("crd, operator, widget");
    let ns = bench.dest_namespace("waves");
    let name = unique("waves");
    let mut app = seed_web_app(&name, &repo.url(), &ns);
    app["spec"]["source"]["path"] = "app".into();
    bench.create_app(app).await;
    let app = bench
        .wait_app(&name, "all three waves synced", |a| phase(a) == "Succeeded" && sync_status(a) == "Synced")
        .await;
    let order: Vec<String> = app["status"]["operationState"]["syncResult"]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] != "Namespace")
        .map(|r| r["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(order, ["CustomResourceDefinition", "Deployment", "Widget"]);

    // Timestamps from the API server: the operator was created after the CRD was established, and the
    // widget after the operator was available (minReadySeconds 2 keeps that apart from its creation).
    let crds: Api<kube::api::DynamicObject> = Api::all_with(
        bench.client.clone(),
        &kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
        )),
    );
    let crd = serde_json::to_value(crds.get(&format!("widgets.{group}")).await.unwrap()).unwrap();
    let established =
        crd["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Established").unwrap()
            ["lastTransitionTime"]
            .as_str()
            .unwrap()
            .to_string();
    let deployment = Api::<Deployment>::namespaced(bench.client.clone(), &ns).get("web").await.unwrap();
    let deployment = serde_json::to_value(deployment).unwrap();
    let created = deployment["metadata"]["creationTimestamp"].as_str().unwrap().to_string();
    let available = deployment["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Available" && c["status"] == "True")
        .unwrap()["lastTransitionTime"]
        .as_str()
        .unwrap()
        .to_string();
    let widgets: Api<kube::api::DynamicObject> = Api::namespaced_with(
        bench.client.clone(),
        &ns,
        &kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(&group, "v1", "Widget")),
    );
    let widget = serde_json::to_value(widgets.get("w").await.unwrap()).unwrap();
    let widget_created = widget["metadata"]["creationTimestamp"].as_str().unwrap().to_string();
    // RFC 3339 in UTC with whole seconds: string order is time order.
    assert!(established <= created, "CRD established {established}, operator created {created}");
    assert!(available <= widget_created, "operator available {available}, widget created {widget_created}");
    assert!(created < widget_created, "operator created {created}, widget created {widget_created}");
    let _ = crds.delete(&format!("widgets.{group}"), &Default::default()).await;
    bench.cleanup().await;
}

#[tokio::test]
async fn a_controller_killed_mid_sync_finishes_it_after_a_restart_with_every_hook_run_once() {
    let mut bench = Bench::start("resume").await;
    let repo = GitRepo::new();
    // A PreSync hook that waits (a suspended Job) until the test lets it go.
    let gate = job("gate", "    argocd.argoproj.io/hook: PreSync", "  suspend: true")
        .replace("  name: gate\n", "  generateName: gate-\n");
    repo.write("app/gate.yaml", &gate);
    repo.write("app/web.yaml", &web("myorg/web:v1", 1));
    repo.write("app/after.yaml", &job("after", "    argocd.argoproj.io/hook: PostSync", ""));
    repo.commit("gated");
    let ns = bench.dest_namespace("resume");
    ensure_namespace(&bench.client, &ns).await;
    let name = unique("resume");
    let mut app = seed_web_app(&name, &repo.url(), &ns);
    app["spec"]["source"]["path"] = "app".into();
    app["spec"]["syncPolicy"] = json!({});
    bench.create_app(app).await;
    bench.wait_app(&name, "OutOfSync", |a| sync_status(a) == "OutOfSync").await;
    bench.set_operation(&name, json!({"sync": {}, "initiatedBy": {"username": "admin"}})).await;
    bench
        .wait_app(&name, "waiting on the gate", |a| {
            phase(a) == "Running"
                && a["status"]["operationState"]["message"].as_str().unwrap_or_default().contains("gate-")
        })
        .await;

    bench.kill_controller().await;
    assert!(Api::<Deployment>::namespaced(bench.client.clone(), &ns).get_opt("web").await.unwrap().is_none());
    bench.start_controller();
    // The new controller has looked at the app (and its running operation) before the gate opens.
    bench.refreshed(&name).await;
    let app = bench.app(&name).await;
    assert_eq!(phase(&app), "Running", "{}", app["status"]["operationState"]);
    let gates: Vec<Job> = jobs(&bench.client, &ns).await;
    assert_eq!(gates.len(), 1, "the restarted controller did not run the hook again");
    let gate_name = gates[0].metadata.name.clone().unwrap();
    Api::<Job>::namespaced(bench.client.clone(), &ns)
        .patch(&gate_name, &PatchParams::default(), &Patch::Merge(&json!({"spec": {"suspend": false}})))
        .await
        .unwrap();
    bench.wait_app(&name, "the sync finished", |a| phase(a) == "Succeeded" && a["operation"].is_null()).await;
    let names: Vec<String> =
        jobs(&bench.client, &ns).await.iter().map(|j| j.metadata.name.clone().unwrap()).collect();
    assert_eq!(names.iter().filter(|n| n.starts_with("gate-")).count(), 1, "{names:?}");
    assert_eq!(names.iter().filter(|n| *n == "after").count(), 1, "{names:?}");
    assert!(Api::<Deployment>::namespaced(bench.client.clone(), &ns).get_opt("web").await.unwrap().is_some());
    bench.cleanup().await;
}

#[tokio::test]
async fn a_failing_sync_is_retried_with_backoff_and_counts_its_attempts() {
    let mut bench = Bench::start("retry").await;
    let repo = GitRepo::new();
    repo.write("app/web.yaml", &web("myorg/web:v1", 1));
    repo.commit("web");
    // The destination namespace does not exist and is not created: every attempt fails.
    let ns = bench.dest_namespace("retry-missing");
    let name = unique("retry");
    let mut app = seed_web_app(&name, &repo.url(), &ns);
    app["spec"]["source"]["path"] = "app".into();
    app["spec"]["syncPolicy"] = json!({});
    bench.create_app(app).await;
    bench.wait_app(&name, "OutOfSync", |a| sync_status(a) == "OutOfSync").await;
    bench
        .set_operation(
            &name,
            json!({"sync": {}, "initiatedBy": {"username": "admin"},
               "retry": {"limit": 2, "backoff": {"duration": "1s", "factor": 2, "maxDuration": "2s"}}}),
        )
        .await;
    let app = bench
        .wait_app(&name, "a retry scheduled", |a| {
            a["status"]["operationState"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("Retrying attempt #1")
        })
        .await;
    assert_eq!(phase(&app), "Running");
    let app = bench.wait_app(&name, "the last attempt failed", |a| phase(a) == "Failed").await;
    assert_eq!(app["status"]["operationState"]["retryCount"], 2);
    assert!(
        app["status"]["operationState"]["message"].as_str().unwrap().contains(&ns),
        "{}",
        app["status"]["operationState"]["message"]
    );
    // The next attempt succeeds once the namespace exists.
    ensure_namespace(&bench.client, &ns).await;
    bench
        .set_operation(
            &name,
            json!({"sync": {}, "initiatedBy": {"username": "admin"}, "retry": {"limit": 3}}),
        )
        .await;
    let app = bench.wait_app(&name, "synced", |a| phase(a) == "Succeeded" && a["operation"].is_null()).await;
    assert!(
        app["status"]["operationState"]["retryCount"].is_null()
            || app["status"]["operationState"]["retryCount"] == 0
    );
    bench.cleanup().await;
}

#[tokio::test]
async fn rollback_restores_an_earlier_revision_and_is_refused_with_auto_sync() {
    let mut bench = Bench::start("rollback").await;
    let repo = GitRepo::new();
    repo.write("app/web.yaml", &web("myorg/web:v1", 1));
    repo.commit("v1");
    let ns = bench.dest_namespace("rollback");
    let name = unique("rollback");
    let mut app = seed_web_app(&name, &repo.url(), &ns);
    app["spec"]["source"]["path"] = "app".into();
    app["spec"]["revisionHistoryLimit"] = json!(2);
    bench.create_app(app).await;
    let history_len = |a: &serde_json::Value| a["status"]["history"].as_array().map_or(0, |h| h.len());
    bench.wait_app(&name, "v1 synced", |a| phase(a) == "Succeeded" && history_len(a) == 1).await;
    for v in ["v2", "v3"] {
        repo.write("app/web.yaml", &web(&format!("myorg/web:{v}"), 1));
        repo.commit(v);
        bench.refresh(&name).await;
        bench
            .wait_app(&name, &format!("{v} synced"), |a| {
                phase(a) == "Succeeded"
                    && a["status"]["history"].as_array().is_some_and(|h| {
                        h.last().unwrap()["revisionMetadata"]["message"]
                            .as_str()
                            .unwrap_or_default()
                            .contains(v)
                    })
            })
            .await;
    }
    let app = bench.app(&name).await;
    assert_eq!(history_len(&app), 2, "revisionHistoryLimit keeps two entries");
    let typed: berth_api::Application = serde_json::from_value(app.clone()).unwrap();
    let v2 = app["status"]["history"][0]["id"].as_i64().unwrap();
    let v2_revision = app["status"]["history"][0]["revision"].clone();
    let refused =
        berth_controller::rollback::rollback_operation(&typed, v2, false, false, "admin").unwrap_err();
    assert!(refused.contains("auto-sync is enabled"), "{refused}");

    // Without automation, the rollback syncs the v2 commit: the app is then OutOfSync with git (v3).
    bench
        .apps()
        .patch(&name, &PatchParams::default(), &Patch::Merge(&json!({"spec": {"syncPolicy": null}})))
        .await
        .unwrap();
    let app = bench.wait_app(&name, "automation off", |a| a["spec"]["syncPolicy"].is_null()).await;
    let typed: berth_api::Application = serde_json::from_value(app).unwrap();
    let op = berth_controller::rollback::rollback_operation(&typed, v2, false, false, "admin").unwrap();
    bench.set_operation(&name, serde_json::to_value(op).unwrap()).await;
    let app = bench
        .wait_app(&name, "rolled back", |a| {
            phase(a) == "Succeeded" && a["operation"].is_null() && sync_status(a) == "OutOfSync"
        })
        .await;
    let image = Api::<Deployment>::namespaced(bench.client.clone(), &ns)
        .get("web")
        .await
        .unwrap()
        .spec
        .unwrap()
        .template
        .spec
        .unwrap()
        .containers[0]
        .image
        .clone();
    assert_eq!(image.as_deref(), Some("myorg/web:v2"));
    let last = app["status"]["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        last["revision"], v2_revision,
        "the new entry records v2's commit: {:#}",
        app["status"]["history"]
    );
    assert_eq!(history_len(&app), 2);
    bench.cleanup().await;
}

#[tokio::test]
async fn deleting_an_application_runs_predelete_then_deletes_then_runs_postdelete() {
    let mut bench = Bench::start("delete-hooks").await;
    let repo = GitRepo::new();
    repo.write("app/web.yaml", &web("myorg/web:v1", 1));
    repo.write("app/pre.yaml", &job("backup", "    argocd.argoproj.io/hook: PreDelete", ""));
    repo.write(
        "app/post.yaml",
        &job("goodbye", "    argocd.argoproj.io/hook: PostDelete\n    argocd.argoproj.io/hook-delete-policy: HookSucceeded", ""),
    );
    repo.commit("web with deletion hooks");
    let ns = bench.dest_namespace("delete-hooks");
    ensure_namespace(&bench.client, &ns).await;
    let timeline = Timeline::start(&bench.client, &ns);
    let name = unique("delete-hooks");
    let mut app = seed_web_app(&name, &repo.url(), &ns);
    app["spec"]["source"]["path"] = "app".into();
    app["metadata"]["finalizers"] = json!(["resources-finalizer.argocd.argoproj.io"]);
    bench.create_app(app).await;
    let app = bench
        .wait_app(&name, "synced, with the deletion finalizers added", |a| {
            phase(a) == "Succeeded" && a["metadata"]["finalizers"].as_array().is_some_and(|f| f.len() == 3)
        })
        .await;
    assert!(jobs(&bench.client, &ns).await.is_empty(), "deletion hooks do not run on sync");
    assert!(app["metadata"]["finalizers"].to_string().contains("pre-delete-finalizer.argocd.argoproj.io"));

    bench.apps().delete(&name, &Default::default()).await.unwrap();
    poll("the Application to be gone", TIMEOUT, || async {
        bench.apps().get_opt(&name).await.unwrap().is_none()
    })
    .await;
    assert!(Api::<Deployment>::namespaced(bench.client.clone(), &ns).get_opt("web").await.unwrap().is_none());
    assert!(
        timeline.at("job backup complete", "") < timeline.at("job goodbye created", ""),
        "{}",
        timeline.dump()
    );
    // The Deployment was gone before PostDelete ran: its deletion was requested after PreDelete finished,
    // and the PostDelete Job (HookSucceeded) is deleted when it is done.
    poll("the PostDelete Job to go", TIMEOUT, || async {
        jobs(&bench.client, &ns)
            .await
            .iter()
            .all(|j| j.metadata.name.as_deref() != Some("goodbye") || j.metadata.deletion_timestamp.is_some())
    })
    .await;
    bench.cleanup().await;
}

#[tokio::test]
async fn a_lua_health_check_from_argocd_cm_decides_health_and_gates_the_next_wave() {
    let mut bench = Bench::start("lua").await;
    let script = "hs = {}\nif obj.data ~= nil and obj.data.state == 'ok' then\n  hs.status = 'Healthy'\n  hs.message = 'state is ok'\nelse\n  hs.status = 'Degraded'\n  hs.message = 'state is ' .. tostring(obj.data and obj.data.state)\nend\nreturn hs\n";
    apply_json(
        &bench.client,
        &bench.namespace,
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "argocd-cm", "namespace": bench.namespace},
            "data": {"timeout.reconciliation": "2s", "timeout.reconciliation.jitter": "0s",
                     "berth.repositories.allowFileURLs": "true",
                     "resource.customizations.health.ConfigMap": script}}),
    )
    .await;
    let repo = GitRepo::new();
    let gate = |state: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: gate\n  annotations: {{argocd.argoproj.io/sync-wave: \"1\"}}\ndata: {{state: {state}}}\n"
        )
    };
    repo.write("app/gate.yaml", &gate("broken"));
    repo.write(
        "app/web.yaml",
        &web("myorg/web:v1", 1).replace(
            "name: web\nspec:\n  replicas",
            "name: web\n  annotations: {argocd.argoproj.io/sync-wave: \"2\"}\nspec:\n  replicas",
        ),
    );
    repo.commit("a broken gate");
    let ns = bench.dest_namespace("lua");
    let name = unique("lua");
    let mut app = seed_web_app(&name, &repo.url(), &ns);
    app["spec"]["source"]["path"] = "app".into();
    app["spec"]["syncPolicy"] = json!({"syncOptions": ["CreateNamespace=true"]});
    bench.create_app(app).await;
    bench.wait_app(&name, "compared", |a| sync_status(a) == "OutOfSync").await;
    bench.set_operation(&name, json!({"sync": {}})).await;
    let app = bench.wait_app(&name, "the gate failed the sync", |a| phase(a) == "Failed").await;
    let message = app["status"]["operationState"]["message"].as_str().unwrap();
    assert!(message.contains("configmap/gate") && message.contains("state is broken"), "{message}");
    assert!(
        Api::<Deployment>::namespaced(bench.client.clone(), &ns).get_opt("web").await.unwrap().is_none(),
        "wave 2 never ran"
    );
    let app = bench.wait_app(&name, "Degraded by the script", |a| health(a) == "Degraded").await;
    let gate_status =
        app["status"]["resources"].as_array().unwrap().iter().find(|r| r["name"] == "gate").unwrap().clone();
    assert_eq!(gate_status["health"]["message"], "state is broken");

    repo.write("app/gate.yaml", &gate("ok"));
    repo.commit("gate ok");
    bench.refreshed(&name).await;
    bench.set_operation(&name, json!({"sync": {}})).await;
    bench.wait_app(&name, "both waves synced", |a| phase(a) == "Succeeded" && a["operation"].is_null()).await;
    assert!(Api::<Deployment>::namespaced(bench.client.clone(), &ns).get_opt("web").await.unwrap().is_some());
    bench.cleanup().await;
}

#[tokio::test]
async fn a_terminated_sync_stops_before_its_next_wave_and_is_recorded_as_failed() {
    let mut bench = Bench::start("terminate").await;
    let repo = GitRepo::new();
    // Wave 0 never becomes healthy (its Pod fits no node), so the sync waits there until terminated.
    repo.write(
        "apps/stuck/deployment.yaml",
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: stuck
  annotations: {argocd.argoproj.io/sync-wave: \"0\"}
spec:
  replicas: 1
  selector: {matchLabels: {app: stuck}}
  template:
    metadata: {labels: {app: stuck}}
    spec:
      nodeSelector: {berth.dev/no-such-node: \"true\"}
      containers: [{name: app, image: busybox}]
",
    );
    repo.write(
        "apps/stuck/after.yaml",
        "apiVersion: v1
kind: ConfigMap
metadata:
  name: after
  annotations: {argocd.argoproj.io/sync-wave: \"1\"}
data: {a: b}
",
    );
    repo.commit("a wave that never gets healthy");
    let ns = bench.dest_namespace("terminate");
    ensure_namespace(&bench.client, &ns).await;
    let name = unique("terminate");
    let mut app = seed_web_app(&name, &repo.url(), &ns);
    app["spec"]["source"]["path"] = "apps/stuck".into();
    app["spec"]["syncPolicy"] = json!({});
    bench.create_app(app).await;
    bench.set_operation(&name, json!({"sync": {"revision": "HEAD"}})).await;
    let deployments: Api<Deployment> = Api::namespaced(bench.client.clone(), &ns);
    poll("wave 0 applied", TIMEOUT, || async { deployments.get_opt("stuck").await.unwrap().is_some() }).await;
    // On a timeout this prints the operation state, which tells a slow pass from a sync that ended early.
    bench.wait_app(&name, "the sync waiting on wave 0", |a| phase(a) == "Running").await;

    // What the API server does on DELETE .../operation: only the phase, and only while Running.
    let patch: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/status/operationState/phase", "value": "Running"},
        {"op": "replace", "path": "/status/operationState/phase", "value": "Terminating"}
    ]))
    .unwrap();
    bench.apps().patch(&name, &PatchParams::default(), &Patch::<()>::Json(patch)).await.unwrap();

    let app = bench
        .wait_app(&name, "the sync terminated", |a| phase(a) == "Failed" && a["operation"].is_null())
        .await;
    assert_eq!(app["status"]["operationState"]["message"], "Operation terminated");
    assert!(app["status"]["operationState"]["finishedAt"].is_string());
    let maps: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(bench.client.clone(), &ns);
    assert!(maps.get_opt("after").await.unwrap().is_none(), "wave 1 was applied after the terminate");
    // It stays terminated: later passes neither resume the sync nor apply wave 1.
    bench.refresh(&name).await;
    let app = bench.app(&name).await;
    assert_eq!(phase(&app), "Failed");
    assert!(maps.get_opt("after").await.unwrap().is_none());
    bench.cleanup().await;
}

/// The sync result of `name`, by kind and name.
fn result<'a>(app: &'a serde_json::Value, kind: &str, name: &str) -> &'a serde_json::Value {
    app["status"]["operationState"]["syncResult"]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == kind && r["name"] == name)
        .unwrap_or_else(|| panic!("no result for {kind} {name}: {}", app["status"]["operationState"]))
}

#[tokio::test]
async fn what_an_earlier_wave_creates_passes_the_dry_run_and_results_read_as_argo_cds() {
    let mut bench = Bench::start("earlier").await;
    let ns = bench.dest_namespace("earlier");
    let fresh = bench.dest_namespace("fresh");
    ensure_namespace(&bench.client, &ns).await;
    let repo = GitRepo::new();
    // The API server refuses the Pod's dry run (its ServiceAccount is missing) and the ConfigMap's (its
    // Namespace is missing); both come from an earlier wave or kind of this sync.
    repo.write(
        "app/runner.yaml",
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: runner\n  annotations: {argocd.argoproj.io/sync-wave: \"0\"}\n",
    );
    repo.write(
        "app/pod.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: task\n  annotations: {argocd.argoproj.io/sync-wave: \"1\"}\n\
         spec:\n  serviceAccountName: runner\n  restartPolicy: Never\n  containers:\n  - name: run\n    image: busybox:1.36\n",
    );
    repo.write("app/fresh.yaml", &format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {fresh}\n"));
    repo.write(
        "app/settings.yaml",
        &format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: {fresh}\ndata: {{a: b}}\n"),
    );
    repo.commit("a pod, its service account, a namespace and what lives in it");
    let name = unique("earlier");
    let mut app = seed_web_app(&name, &repo.url(), &ns);
    app["spec"]["source"]["path"] = "app".into();
    app["spec"]["syncPolicy"] = json!({});
    bench.create_app(app).await;
    bench.wait_app(&name, "compared", |a| sync_status(a) == "OutOfSync").await;

    let app = bench.operate(&name, json!({"sync": {}})).await;
    assert_eq!(phase(&app), "Succeeded", "{}", app["status"]["operationState"]["message"]);
    let pod = result(&app, "Pod", "task");
    assert_eq!(pod["message"], "pod/task created");
    assert_eq!(pod["images"], json!(["busybox:1.36"]));
    assert_eq!(result(&app, "ServiceAccount", "runner")["message"], "serviceaccount/runner created");
    assert_eq!(result(&app, "Namespace", &fresh)["message"], format!("namespace/{fresh} created"));
    assert_eq!(result(&app, "ConfigMap", "settings")["message"], "configmap/settings created");
    // Again, with nothing changed in git: unchanged.
    let app = bench.operate(&name, json!({"sync": {}})).await;
    assert_eq!(phase(&app), "Succeeded", "{}", app["status"]["operationState"]["message"]);
    assert_eq!(result(&app, "ServiceAccount", "runner")["message"], "serviceaccount/runner unchanged");
    assert_eq!(result(&app, "ConfigMap", "settings")["message"], "configmap/settings unchanged");
    bench.cleanup().await;
}

#[tokio::test]
async fn an_application_deleted_while_its_sync_runs_deletes_nothing_until_the_sync_is_terminated() {
    let mut bench = Bench::start("delrun").await;
    let repo = GitRepo::new();
    repo.write("app/kept.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kept\ndata: {a: b}\n");
    repo.commit("first");
    let ns = bench.dest_namespace("delrun");
    ensure_namespace(&bench.client, &ns).await;
    let name = unique("delrun");
    let mut app = seed_web_app(&name, &repo.url(), &ns);
    app["spec"]["source"]["path"] = "app".into();
    app["spec"]["syncPolicy"] = json!({});
    app["metadata"]["finalizers"] = json!(["resources-finalizer.argocd.argoproj.io"]);
    bench.create_app(app).await;
    let app = bench.operate(&name, json!({"sync": {"revision": "HEAD"}})).await;
    assert_eq!(phase(&app), "Succeeded");
    // The next sync waits on a PreSync hook that never finishes (a suspended Job).
    repo.write("app/gate.yaml", &job("gate", "    argocd.argoproj.io/hook: PreSync", "  suspend: true"));
    repo.commit("gated");
    bench.set_operation(&name, json!({"sync": {"revision": "HEAD"}})).await;
    bench
        .wait_app(&name, "waiting on the gate", |a| {
            phase(a) == "Running"
                && a["status"]["operationState"]["message"].as_str().unwrap_or_default().contains("gate")
        })
        .await;
    bench.apps().delete(&name, &Default::default()).await.unwrap();
    // A pass has run on the deleted Application (it handled this refresh) and deleted nothing.
    bench.refreshed(&name).await;
    let app = bench.app(&name).await;
    assert_eq!(phase(&app), "Running", "{}", app["status"]["operationState"]);
    let maps: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(bench.client.clone(), &ns);
    assert!(maps.get_opt("kept").await.unwrap().is_some(), "deleted while the sync was running");
    // Terminated (what DELETE .../operation does): the sync ends, then the deletion goes on.
    let patch: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/status/operationState/phase", "value": "Running"},
        {"op": "replace", "path": "/status/operationState/phase", "value": "Terminating"}
    ]))
    .unwrap();
    bench.apps().patch(&name, &PatchParams::default(), &Patch::<()>::Json(patch)).await.unwrap();
    poll("the app and its objects gone", TIMEOUT, || async {
        bench.apps().get_opt(&name).await.unwrap().is_none() && maps.get_opt("kept").await.unwrap().is_none()
    })
    .await;
    bench.cleanup().await;
}
