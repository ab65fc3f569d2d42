//! The executor against a scripted in-memory cluster: every write is recorded in order, health is what
//! the test says, and an operation is driven pass by pass as the controller drives it.

use futures::executor::block_on;
use kube::core::{ApiResource, GroupVersionKind, Status};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

use super::*;
use crate::sync::SyncOptions;
use crate::sync::plan::tasks;

/// A cluster in memory. Objects are healthy unless the test says otherwise.
#[derive(Default)]
struct ScriptedWorld {
    objects: Mutex<BTreeMap<ResourceKey, Value>>,
    /// Every call that writes (or would write, in a dry run), in order: `"apply configmap/web"`.
    writes: Mutex<Vec<String>>,
    /// Health by object name; objects not named here are Healthy.
    health: Mutex<HashMap<String, Health>>,
    /// Applies (not dry runs) the API server refuses, by object name.
    refused: HashMap<String, String>,
    unknown_kinds: HashSet<String>,
}

impl ScriptedWorld {
    fn with_live(objects: &[Value]) -> ScriptedWorld {
        let world = ScriptedWorld::default();
        for o in objects {
            world.objects.lock().unwrap().insert(ResourceKey::of(o).unwrap(), o.clone());
        }
        world
    }

    /// An empty cluster where `name` has this health.
    fn where_health(name: &str, status: HealthStatus, message: &str) -> ScriptedWorld {
        let world = ScriptedWorld::default();
        world.set_health(name, status, message);
        world
    }

    fn set_health(&self, name: &str, status: HealthStatus, message: &str) {
        self.health.lock().unwrap().insert(name.into(), Health::new(status, message));
    }

    fn writes(&self) -> Vec<String> {
        self.writes.lock().unwrap().clone()
    }

    /// The writes that change the cluster (dry runs left out).
    fn changes(&self) -> Vec<String> {
        self.writes().into_iter().filter(|w| !w.starts_with("dry-run")).collect()
    }

    fn write(&self, verb: &str, key: &ResourceKey) {
        self.writes.lock().unwrap().push(format!("{verb} {}", describe(key)));
    }
}

impl World for ScriptedWorld {
    fn live(&self, key: &ResourceKey) -> Option<Arc<Value>> {
        self.objects.lock().unwrap().get(key).cloned().map(Arc::new)
    }

    fn hook_instance(&self, run: &str) -> Option<Arc<Value>> {
        let objects = self.objects.lock().unwrap();
        let found = objects.values().find(|o| o["metadata"]["annotations"][HOOK_RUN_ANNOTATION] == run);
        found.cloned().map(Arc::new)
    }

    fn health(&self, obj: &Value) -> Option<Health> {
        let name = obj["metadata"]["name"].as_str().unwrap_or_default();
        let scripted = self.health.lock().unwrap().get(name).cloned();
        Some(scripted.unwrap_or(Health::new(HealthStatus::Healthy, "")))
    }

    fn stored(&self, key: &ResourceKey, obj: Arc<Value>) {
        self.objects.lock().unwrap().insert(key.clone(), (*obj).clone());
    }

    async fn kind(&self, gk: &GroupKind) -> Result<KindInfo, CacheError> {
        if self.unknown_kinds.contains(&gk.kind) {
            return Err(CacheError::UnknownKind(gk.clone()));
        }
        let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(&gk.group, "v1", &gk.kind));
        Ok(KindInfo { resource, namespaced: gk.kind != "Namespace" })
    }

    async fn rediscover(&self) {}

    async fn exists(&self, key: &ResourceKey) -> bool {
        self.objects.lock().unwrap().contains_key(key)
    }

    async fn apply(&self, _: &KindInfo, obj: &Value, mode: ApplyMode) -> Result<Value, kube::Error> {
        let key = ResourceKey::of(obj).unwrap();
        self.write(if mode.dry_run { "dry-run" } else { "apply" }, &key);
        if !mode.dry_run
            && let Some(message) = self.refused.get(&key.name)
        {
            return Err(kube::Error::Api(Status::failure(message, "Invalid").with_code(422).boxed()));
        }
        if !mode.dry_run {
            self.objects.lock().unwrap().insert(key, obj.clone());
        }
        Ok(obj.clone())
    }

    async fn create(&self, _: &KindInfo, obj: &Value) -> Result<Value, kube::Error> {
        let mut stored = obj.clone();
        if let Some(prefix) = obj["metadata"]["generateName"].as_str() {
            stored["metadata"]["name"] = format!("{prefix}x7k2p").into();
        }
        let key = ResourceKey::of(&stored).unwrap();
        self.write("create", &key);
        self.objects.lock().unwrap().insert(key, stored.clone());
        Ok(stored)
    }

    async fn delete(
        &self,
        _: &KindInfo,
        key: &ResourceKey,
        _: PropagationPolicy,
        dry_run: bool,
    ) -> Result<(), kube::Error> {
        self.write(if dry_run { "dry-run delete" } else { "delete" }, key);
        if !dry_run {
            self.objects.lock().unwrap().remove(key);
        }
        Ok(())
    }
}

fn object(kind: &str, name: &str, annotations: Value) -> Value {
    let api = match kind {
        "Deployment" => "apps/v1",
        "Job" => "batch/v1",
        _ => "v1",
    };
    json!({"apiVersion": api, "kind": kind,
           "metadata": {"name": name, "namespace": "web", "annotations": annotations}})
}

fn wave(n: i64) -> Value {
    json!({"argocd.argoproj.io/sync-wave": n.to_string()})
}

fn hook(phase: &str, name: &str) -> Value {
    object("Job", name, json!({"argocd.argoproj.io/hook": phase}))
}

/// An operation driven as the controller drives it: one pass at a time, its record carried between passes.
struct Driver<'a> {
    world: &'a ScriptedWorld,
    tasks: Vec<Task>,
    opts: SyncOptions,
    records: Vec<Record>,
}

impl<'a> Driver<'a> {
    fn new(world: &'a ScriptedWorld, desired: &[Value], opts: SyncOptions) -> Driver<'a> {
        Driver::with_tracked(world, desired, &[], opts)
    }

    fn with_tracked(
        world: &'a ScriptedWorld,
        desired: &[Value],
        tracked: &[Value],
        opts: SyncOptions,
    ) -> Driver<'a> {
        let tracked: Vec<(ResourceKey, Arc<Value>)> =
            tracked.iter().map(|o| (ResourceKey::of(o).unwrap(), Arc::new(o.clone()))).collect();
        Driver { world, tasks: tasks(desired, &tracked, &opts), opts, records: vec![] }
    }

    fn pass(&mut self) -> Progress {
        let mut operation = Operation {
            world: self.world,
            tasks: &self.tasks,
            opts: &self.opts,
            run_id: "run1",
            records: std::mem::take(&mut self.records),
        };
        let progress = block_on(operation.advance());
        self.records = operation.records;
        progress
    }

    fn record(&self, name: &str) -> &Record {
        self.records.iter().find(|r| r.key.name == name).unwrap_or_else(|| panic!("no record of {name}"))
    }
}

#[test]
fn waves_apply_in_order_and_a_later_wave_waits_until_the_earlier_is_healthy() {
    let world = ScriptedWorld::where_health("db", HealthStatus::Progressing, "rolling out");
    let desired = [object("ConfigMap", "web", wave(1)), object("Deployment", "db", wave(0))];
    let mut op = Driver::new(&world, &desired, SyncOptions::default());

    assert_eq!(op.pass(), Progress::Running("waiting for healthy state of deployment.apps/db".into()));
    assert_eq!(world.changes(), ["apply deployment.apps/db"]);
    assert_eq!(op.pass(), Progress::Running("waiting for healthy state of deployment.apps/db".into()));
    assert_eq!(world.changes(), ["apply deployment.apps/db"], "nothing of wave 1 while wave 0 is unhealthy");

    world.set_health("db", HealthStatus::Healthy, "");
    assert!(matches!(op.pass(), Progress::Succeeded(_)));
    assert_eq!(world.changes(), ["apply deployment.apps/db", "apply configmap/web"]);
}

#[test]
fn every_object_is_dry_run_before_the_first_is_applied() {
    let world = ScriptedWorld::default();
    let desired = [object("ConfigMap", "a", wave(0)), object("ConfigMap", "b", wave(1))];
    let mut op = Driver::new(&world, &desired, SyncOptions::default());
    assert!(matches!(op.pass(), Progress::Succeeded(_)));
    assert_eq!(
        world.writes(),
        ["dry-run configmap/a", "dry-run configmap/b", "apply configmap/a", "apply configmap/b"]
    );
}

#[test]
fn a_degraded_resource_fails_the_operation_before_the_next_wave() {
    let world = ScriptedWorld::where_health("db", HealthStatus::Degraded, "CrashLoopBackOff");
    let desired = [object("Deployment", "db", wave(0)), object("ConfigMap", "web", wave(1))];
    let mut op = Driver::new(&world, &desired, SyncOptions::default());
    assert_eq!(op.pass(), Progress::Failed("deployment.apps/db is Degraded: CrashLoopBackOff".into()));
    assert_eq!(world.changes(), ["apply deployment.apps/db"]);
}

#[test]
fn a_presync_hook_runs_before_the_sync_phase() {
    let world = ScriptedWorld::default();
    let desired = [object("ConfigMap", "web", json!({})), hook("PreSync", "migrate")];
    let mut op = Driver::new(&world, &desired, SyncOptions::default());
    assert!(matches!(op.pass(), Progress::Succeeded(_)));
    assert_eq!(world.changes(), ["create job.batch/migrate", "apply configmap/web"]);
    let created = world.live(&ResourceKey::new("batch", "Job", "web", "migrate")).unwrap();
    assert!(
        created["metadata"]["annotations"][HOOK_RUN_ANNOTATION].as_str().unwrap().starts_with("run1."),
        "the hook carries the run that created it"
    );
}

#[test]
fn a_running_presync_hook_holds_back_the_sync_phase() {
    let world = ScriptedWorld::where_health("migrate", HealthStatus::Progressing, "job running");
    let desired = [object("ConfigMap", "web", json!({})), hook("PreSync", "migrate")];
    let mut op = Driver::new(&world, &desired, SyncOptions::default());
    assert_eq!(op.pass(), Progress::Running("waiting for completion of hook job.batch/migrate".into()));
    assert_eq!(world.changes(), ["create job.batch/migrate"]);
}

#[test]
fn a_failed_presync_hook_fails_the_operation_and_applies_nothing_of_sync() {
    let world = ScriptedWorld::where_health("migrate", HealthStatus::Degraded, "BackoffLimitExceeded");
    let desired = [object("ConfigMap", "web", json!({})), hook("PreSync", "migrate")];
    let mut op = Driver::new(&world, &desired, SyncOptions::default());
    assert_eq!(
        op.pass(),
        Progress::Failed(
            "one or more synchronization tasks completed unsuccessfully, reason: PreSync job.batch/migrate: BackoffLimitExceeded"
                .into()
        )
    );
    assert_eq!(world.changes(), ["create job.batch/migrate"]);
    assert_eq!(op.pass(), op.pass(), "a failed operation stays failed");
    assert_eq!(world.changes(), ["create job.batch/migrate"]);
}

#[test]
fn sync_fail_hooks_run_when_the_sync_fails_and_only_then() {
    let mut world = ScriptedWorld::default();
    world.refused.insert("web".into(), "spec.replicas: Invalid value".into());
    let desired = [object("ConfigMap", "web", json!({})), hook("SyncFail", "alert")];
    let mut op = Driver::new(&world, &desired, SyncOptions::default());
    assert!(matches!(op.pass(), Progress::Failed(_)));
    assert_eq!(world.changes(), ["apply configmap/web", "create job.batch/alert"]);

    let healthy = ScriptedWorld::default();
    let mut op = Driver::new(&healthy, &desired, SyncOptions::default());
    assert!(matches!(op.pass(), Progress::Succeeded(_)));
    assert_eq!(healthy.changes(), ["apply configmap/web"], "no SyncFail hook after a successful sync");
}

#[test]
fn an_apply_error_fails_the_operation_naming_the_object_and_stops_later_waves() {
    let mut world = ScriptedWorld::default();
    world.refused.insert("web".into(), "spec.replicas: Invalid value: -1".into());
    let desired = [object("ConfigMap", "web", wave(0)), object("ConfigMap", "later", wave(1))];
    let mut op = Driver::new(&world, &desired, SyncOptions::default());
    assert_eq!(
        op.pass(),
        Progress::Failed(
            "one or more objects failed to apply, reason: configmap/web: spec.replicas: Invalid value: -1"
                .into()
        )
    );
    assert_eq!(op.record("web").status, OutcomeStatus::SyncFailed);
    assert_eq!(world.changes(), ["apply configmap/web"]);
}

#[test]
fn an_unknown_kind_fails_the_dry_run_and_nothing_is_applied() {
    let mut world = ScriptedWorld::default();
    world.unknown_kinds.insert("Widget".into());
    let widget = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "web"}});
    let desired = [object("ConfigMap", "web", json!({})), widget];
    let mut op = Driver::new(&world, &desired, SyncOptions::default());
    let Progress::Failed(message) = op.pass() else { panic!("the operation should fail") };
    assert!(message.contains("widget.example.com/w"), "{message}");
    assert!(message.contains("is its CRD installed?"), "{message}");
    assert!(world.changes().is_empty(), "{:?}", world.changes());
}

#[test]
fn prunes_delete_what_left_git_and_prune_last_waits_for_every_wave() {
    let old = object("ConfigMap", "old", json!({}));
    let world = ScriptedWorld::with_live(std::slice::from_ref(&old));
    let desired = [object("ConfigMap", "web", wave(0)), object("Deployment", "db", wave(1))];
    let opts = SyncOptions { prune: true, prune_last: true, ..Default::default() };
    let mut op = Driver::with_tracked(&world, &desired, &[old], opts);
    assert!(matches!(op.pass(), Progress::Succeeded(_)));
    assert_eq!(world.changes(), ["apply configmap/web", "apply deployment.apps/db", "delete configmap/old"]);
    assert_eq!(op.record("old").status, OutcomeStatus::Pruned);
    assert!(world.live(&ResourceKey::new("", "ConfigMap", "web", "old")).is_none());
}

#[test]
fn prunes_of_a_later_wave_run_first_in_reverse_wave_order() {
    let late = object("ConfigMap", "late", wave(2));
    let early = object("ConfigMap", "early", wave(1));
    let world = ScriptedWorld::with_live(&[late.clone(), early.clone()]);
    let opts = SyncOptions { prune: true, ..Default::default() };
    let mut op = Driver::with_tracked(&world, &[], &[early, late], opts);
    assert!(matches!(op.pass(), Progress::Succeeded(_)));
    assert_eq!(world.changes(), ["delete configmap/late", "delete configmap/early"]);
}

#[test]
fn without_prune_an_object_that_left_git_is_kept() {
    let old = object("ConfigMap", "old", json!({}));
    let world = ScriptedWorld::with_live(std::slice::from_ref(&old));
    let mut op = Driver::with_tracked(&world, &[], &[old], SyncOptions::default());
    assert!(matches!(op.pass(), Progress::Succeeded(_)));
    assert!(world.changes().is_empty(), "{:?}", world.changes());
    assert_eq!(op.record("old").status, OutcomeStatus::PruneSkipped);
    assert_eq!(op.record("old").message, "ignored (requires pruning; prune is disabled)");
}

#[test]
fn a_dry_run_changes_nothing_and_runs_no_hook() {
    let old = object("ConfigMap", "old", json!({}));
    let world = ScriptedWorld::with_live(std::slice::from_ref(&old));
    let desired = [object("ConfigMap", "web", json!({})), hook("PreSync", "migrate")];
    let opts = SyncOptions { dry_run: true, prune: true, ..Default::default() };
    let mut op = Driver::with_tracked(&world, &desired, &[old], opts);
    assert_eq!(op.pass(), Progress::Succeeded("successfully synced (dry run)".into()));
    assert_eq!(world.writes(), ["dry-run delete configmap/old", "dry-run configmap/web"]);
    assert!(world.changes().iter().all(|w| w.starts_with("dry-run")));
    assert_eq!(op.record("old").message, "configmap/old pruned (dry run)");
    assert!(world.live(&ResourceKey::new("", "ConfigMap", "web", "old")).is_some());
}

#[test]
fn a_resumed_operation_does_not_run_a_finished_hook_again() {
    let world = ScriptedWorld::where_health("db", HealthStatus::Progressing, "rolling out");
    let desired = [
        hook("PreSync", "migrate"),
        object("Deployment", "db", wave(0)),
        object("ConfigMap", "web", wave(1)),
    ];
    let mut op = Driver::new(&world, &desired, SyncOptions::default());
    assert!(matches!(op.pass(), Progress::Running(_)));
    assert_eq!(world.changes(), ["create job.batch/migrate", "apply deployment.apps/db"]);

    // A restart: a new executor from the recorded result.
    let mut resumed = Driver::new(&world, &desired, SyncOptions::default());
    resumed.records = op.records.clone();
    world.set_health("db", HealthStatus::Healthy, "");
    assert!(matches!(resumed.pass(), Progress::Succeeded(_)));
    assert_eq!(
        world.changes(),
        ["create job.batch/migrate", "apply deployment.apps/db", "apply configmap/web"]
    );
}

#[test]
fn a_hook_created_just_before_a_restart_is_found_by_its_run_and_not_created_again() {
    let world = ScriptedWorld::where_health("migrate", HealthStatus::Progressing, "job running");
    let desired = [hook("PreSync", "migrate"), object("ConfigMap", "web", json!({}))];
    let mut op = Driver::new(&world, &desired, SyncOptions::default());
    assert!(matches!(op.pass(), Progress::Running(_)));

    // The record of the pass was lost: only the live hook tells what was done.
    let mut resumed = Driver::new(&world, &desired, SyncOptions::default());
    world.set_health("migrate", HealthStatus::Healthy, "");
    assert!(matches!(resumed.pass(), Progress::Succeeded(_)));
    assert_eq!(world.changes(), ["create job.batch/migrate", "apply configmap/web"]);
    assert_eq!(resumed.record("migrate").hook_phase, Some(HookPhase::Succeeded));
}

#[test]
fn a_generate_name_hook_is_recorded_under_the_name_the_server_gave_it() {
    let world = ScriptedWorld::default();
    let mut job = hook("PreSync", "");
    job["metadata"].as_object_mut().unwrap().remove("name");
    job["metadata"]["generateName"] = json!("migrate-");
    let mut op = Driver::new(&world, &[job], SyncOptions::default());
    assert!(matches!(op.pass(), Progress::Succeeded(_)));
    assert_eq!(world.changes(), ["create job.batch/migrate-x7k2p"]);
    assert_eq!(op.record("migrate-x7k2p").hook_phase, Some(HookPhase::Succeeded));
    assert_eq!(op.pass(), Progress::Succeeded("successfully synced (all tasks run)".into()));
    assert_eq!(world.changes(), ["create job.batch/migrate-x7k2p"], "a later pass creates no second run");
}

#[test]
fn hooks_are_deleted_at_the_end_as_their_delete_policy_says() {
    let world = ScriptedWorld::default();
    let kept = hook("PreSync", "kept"); // the default policy, BeforeHookCreation, keeps a finished run
    let mut removed = hook("PreSync", "removed");
    removed["metadata"]["annotations"]["argocd.argoproj.io/hook-delete-policy"] = json!("HookSucceeded");
    let mut op = Driver::new(&world, &[kept, removed], SyncOptions::default());
    assert!(matches!(op.pass(), Progress::Succeeded(_)));
    assert_eq!(
        world.changes(),
        ["create job.batch/kept", "create job.batch/removed", "delete job.batch/removed"]
    );
}

#[test]
fn a_named_hook_left_from_an_earlier_sync_is_replaced_only_with_before_hook_creation() {
    let mut earlier = hook("PreSync", "migrate");
    earlier["metadata"]["annotations"]["argocd.argoproj.io/hook-delete-policy"] = json!("BeforeHookCreation");
    let world = ScriptedWorld::with_live(std::slice::from_ref(&earlier));
    let mut op = Driver::new(&world, std::slice::from_ref(&earlier), SyncOptions::default());
    assert_eq!(
        op.pass(),
        Progress::Running(
            "waiting for the earlier job.batch/migrate to be deleted (BeforeHookCreation)".into()
        )
    );
    assert!(matches!(op.pass(), Progress::Succeeded(_)));
    assert_eq!(world.changes(), ["delete job.batch/migrate", "create job.batch/migrate"]);

    // Without a delete policy BeforeHookCreation is the default; any other policy keeps the old run.
    let mut kept = hook("PreSync", "migrate");
    kept["metadata"]["annotations"]["argocd.argoproj.io/hook-delete-policy"] = json!("HookFailed");
    let world = ScriptedWorld::with_live(std::slice::from_ref(&kept));
    let mut op = Driver::new(&world, &[kept], SyncOptions::default());
    let Progress::Failed(message) = op.pass() else { panic!("a leftover hook without the policy fails") };
    assert!(message.contains("add BeforeHookCreation to its hook-delete-policy"), "{message}");
    assert!(world.changes().is_empty());
}

#[test]
fn create_namespace_applies_the_namespace_before_anything_else() {
    let world = ScriptedWorld::default();
    let ns = crate::sync::ManagedNamespace { name: "web".into(), ..Default::default() };
    let opts = SyncOptions { create_namespace: Some(ns), ..Default::default() };
    let mut op = Driver::new(&world, &[object("ConfigMap", "web", json!({}))], opts);
    assert!(matches!(op.pass(), Progress::Succeeded(_)));
    assert_eq!(world.changes(), ["apply namespace/web", "apply configmap/web"]);
}

#[test]
fn deletion_hooks_run_stage_by_stage_and_report_a_failure() {
    let world = ScriptedWorld::where_health("cleanup", HealthStatus::Degraded, "BackoffLimitExceeded");
    let desired = [
        object(
            "Job",
            "notify",
            json!({"argocd.argoproj.io/hook": "PreDelete", "argocd.argoproj.io/sync-wave": "1"}),
        ),
        object("Job", "cleanup", json!({"argocd.argoproj.io/hook": "PreDelete"})),
    ];
    let tasks = crate::sync::plan::deletion_hooks(&desired, Phase::PreDelete);
    let opts = SyncOptions::default();
    let mut operation =
        Operation { world: &world, tasks: &tasks, opts: &opts, run_id: "del", records: vec![] };
    let Progress::Failed(message) = block_on(operation.run_hooks(Phase::PreDelete)) else {
        panic!("a failed PreDelete hook fails the deletion step")
    };
    assert!(message.contains("job.batch/cleanup"), "{message}");
    assert_eq!(world.changes(), ["create job.batch/cleanup"], "the later wave waits for the failed one");
}
