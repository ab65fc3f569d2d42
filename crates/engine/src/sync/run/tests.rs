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
    /// Objects (by name) that have no health at all, as a ConfigMap.
    without_health: HashSet<String>,
    /// Applies (not dry runs) the API server refuses, by object name.
    refused: HashMap<String, String>,
    /// Dry runs (and applies) the API server refuses, by object name: (code, message).
    refused_always: HashMap<String, (u16, String)>,
    unknown_kinds: HashSet<String>,
    /// Refuse as the API server's admission does: an object whose Namespace is missing (404), a Pod whose
    /// ServiceAccount is missing (403).
    admission: bool,
    /// The last resourceVersion handed out.
    version: Mutex<u64>,
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

    /// What the API server's admission would refuse `obj` for, with `admission` on.
    fn admission_refusal(&self, obj: &Value) -> Option<kube::Error> {
        if !self.admission {
            return None;
        }
        let objects = self.objects.lock().unwrap();
        let ns = obj["metadata"]["namespace"].as_str().unwrap_or_default();
        if !ns.is_empty() && !objects.contains_key(&ResourceKey::new("", "Namespace", "", ns)) {
            return Some(api_error(404, "NotFound", &format!("namespaces \"{ns}\" not found")));
        }
        let sa = obj["spec"]["serviceAccountName"].as_str()?;
        if obj["kind"] == "Pod" && !objects.contains_key(&ResourceKey::new("", "ServiceAccount", ns, sa)) {
            let pod = obj["metadata"]["name"].as_str().unwrap_or_default();
            let message = format!(
                "pods \"{pod}\" is forbidden: error looking up service account {ns}/{sa}: serviceaccount \"{sa}\" not found"
            );
            return Some(api_error(403, "Forbidden", &message));
        }
        None
    }

    /// `obj` as the server stores it: a new resourceVersion when its content changed.
    fn versioned(&self, key: &ResourceKey, obj: &Value) -> Value {
        let mut stored = obj.clone();
        let existing = self.objects.lock().unwrap().get(key).cloned();
        let unchanged = existing.as_ref().is_some_and(|e| {
            let mut e = e.clone();
            e["metadata"].as_object_mut().unwrap().remove("resourceVersion");
            e == *obj
        });
        stored["metadata"]["resourceVersion"] = match existing {
            Some(e) if unchanged => e["metadata"]["resourceVersion"].clone(),
            _ => {
                let mut version = self.version.lock().unwrap();
                *version += 1;
                version.to_string().into()
            }
        };
        stored
    }
}

fn api_error(code: u16, reason: &str, message: &str) -> kube::Error {
    kube::Error::Api(Status::failure(message, reason).with_code(code).boxed())
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
        if self.without_health.contains(name) {
            return None;
        }
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
        if let Some((code, message)) = self.refused_always.get(&key.name) {
            return Err(api_error(*code, "Invalid", message));
        }
        if let Some(refusal) = self.admission_refusal(obj) {
            return Err(refusal);
        }
        if !mode.dry_run
            && let Some(message) = self.refused.get(&key.name)
        {
            return Err(api_error(422, "Invalid", message));
        }
        let stored = self.versioned(&key, obj);
        if !mode.dry_run {
            self.objects.lock().unwrap().insert(key, stored.clone());
        }
        Ok(stored)
    }

    async fn create(&self, _: &KindInfo, obj: &Value) -> Result<Value, kube::Error> {
        let mut stored = obj.clone();
        if let Some(prefix) = obj["metadata"]["generateName"].as_str() {
            stored["metadata"]["name"] = format!("{prefix}x7k2p").into();
        }
        let key = ResourceKey::of(&stored).unwrap();
        self.write("create", &key);
        let stored = self.versioned(&key, &stored);
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
        let mut operation =
            Operation::new(self.world, &self.tasks, &self.opts, "run1", std::mem::take(&mut self.records));
        let progress = block_on(operation.advance());
        self.records = operation.records;
        progress
    }

    /// Names the unnamed hooks as an operation of `revision` started at `started_at` does.
    fn named(mut self, revision: &str, started_at: i64) -> Self {
        crate::sync::plan::name_hooks(&mut self.tasks, revision, started_at);
        self
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

    assert_eq!(op.pass(), Progress::Running("waiting for healthy state of apps/Deployment/db".into()));
    assert_eq!(world.changes(), ["apply deployment.apps/db"]);
    assert_eq!(op.pass(), Progress::Running("waiting for healthy state of apps/Deployment/db".into()));
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
    assert_eq!(
        op.pass(),
        Progress::Failed(
            "one or more synchronization tasks completed unsuccessfully, reason: deployment.apps/db is Degraded: CrashLoopBackOff"
                .into()
        )
    );
    assert_eq!(op.record("db").hook_phase, Some(HookPhase::Failed));
    assert_eq!(op.record("db").message, "CrashLoopBackOff", "the health message, as Argo CD records it");
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
    assert_eq!(op.pass(), Progress::Running("waiting for completion of hook batch/Job/migrate".into()));
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
    assert_eq!(op.record("old").message, "ignored (requires pruning)");
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
    assert_eq!(op.record("old").message, "pruned (dry run)");
    assert_eq!(op.record("web").message, "configmap/web created (dry run)");
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
fn an_apply_whose_record_was_lost_is_not_written_again_when_the_server_would_change_nothing() {
    let world = ScriptedWorld::with_live(&[]);
    let desired = [object("ConfigMap", "web", json!({})), object("ConfigMap", "other", json!({}))];
    let mut op = Driver::new(&world, &desired, SyncOptions::default());
    assert!(matches!(op.pass(), Progress::Succeeded(_)));
    assert_eq!(world.changes(), ["apply configmap/other", "apply configmap/web"]);

    // Its writer stopped between the applies and the record (a replica whose share moved): the next
    // owner's dry run finds both as they would be written, and writes neither again.
    let mut resumed = Driver::new(&world, &desired, SyncOptions::default());
    assert!(matches!(resumed.pass(), Progress::Succeeded(_)));
    assert_eq!(world.changes(), ["apply configmap/other", "apply configmap/web"]);
    assert!(resumed.record("web").message.contains("unchanged"), "{}", resumed.record("web").message);

    // A change in git is written.
    let changed =
        [object("ConfigMap", "web", json!({"note": "v2"})), object("ConfigMap", "other", json!({}))];
    let mut next = Driver::new(&world, &changed, SyncOptions::default());
    assert!(matches!(next.pass(), Progress::Succeeded(_)));
    assert_eq!(world.changes(), ["apply configmap/other", "apply configmap/web", "apply configmap/web"]);
}

#[test]
fn a_left_as_is_dry_run_must_keep_field_ownership_too() {
    let live = json!({"metadata": {"name": "a", "resourceVersion": "7",
        "managedFields": [{"manager": "kubectl-client-side-apply", "operation": "Update", "time": "t1"}]},
        "data": {"k": "v"}});
    let mut predicted = live.clone();
    predicted["metadata"]["managedFields"][0]["time"] = "t2".into();
    assert!(super::left_as_is(&live, &predicted), "only the time moved");
    predicted["metadata"]["managedFields"] = json!([{"manager": "argocd-controller", "operation": "Apply"}]);
    assert!(!super::left_as_is(&live, &predicted), "a takeover of the fields is a change");
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
    assert_eq!(op.pass(), Progress::Running("waiting for deletion of hook batch/Job/migrate".into()));
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
    let mut operation = Operation::new(&world, &tasks, &opts, "del", vec![]);
    let Progress::Failed(message) = block_on(operation.run_hooks(Phase::PreDelete)) else {
        panic!("a failed PreDelete hook fails the deletion step")
    };
    assert!(message.contains("job.batch/cleanup"), "{message}");
    assert_eq!(world.changes(), ["create job.batch/cleanup"], "the later wave waits for the failed one");
}

fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

#[test]
fn apply_results_say_created_configured_or_unchanged_as_kubectl_does() {
    let world = ScriptedWorld::default();
    let desired = [object("Deployment", "web", json!({})), object("ConfigMap", "settings", json!({}))];
    let mut op = Driver::new(&world, &desired, SyncOptions::default());
    assert!(matches!(op.pass(), Progress::Succeeded(_)));
    assert_eq!(op.record("web").message, "deployment.apps/web created");
    assert_eq!(op.record("settings").message, "configmap/settings created");

    let mut changed = desired.clone();
    changed[1]["data"] = json!({"level": "debug"});
    let mut op = Driver::new(&world, &changed, SyncOptions::default());
    assert!(matches!(op.pass(), Progress::Succeeded(_)));
    assert_eq!(op.record("web").message, "deployment.apps/web unchanged");
    assert_eq!(op.record("settings").message, "configmap/settings configured");
}

#[test]
fn server_side_apply_and_replace_are_named_as_argo_cd_names_them() {
    let existing =
        object("ConfigMap", "replaced", json!({"argocd.argoproj.io/sync-options": "Replace=true"}));
    let world = ScriptedWorld::with_live(std::slice::from_ref(&existing));
    let desired = [
        object("ConfigMap", "ssa", json!({"argocd.argoproj.io/sync-options": "ServerSideApply=true"})),
        existing,
        object("ConfigMap", "new", json!({"argocd.argoproj.io/sync-options": "Replace=true"})),
    ];
    let mut op = Driver::new(&world, &desired, SyncOptions::default());
    assert!(matches!(op.pass(), Progress::Succeeded(_)));
    assert_eq!(op.record("ssa").message, "configmap/ssa serverside-applied");
    assert_eq!(op.record("replaced").message, "configmap/replaced replaced");
    assert_eq!(op.record("new").message, "configmap/new created", "Replace creates what is missing");
}

#[test]
fn prunes_are_worded_as_argo_cd_words_them() {
    let old = object("ConfigMap", "old", json!({}));
    let kept = object("ConfigMap", "kept", json!({"argocd.argoproj.io/sync-options": "Prune=false"}));
    let world = ScriptedWorld::with_live(&[old.clone(), kept.clone()]);
    let opts = SyncOptions { prune: true, ..Default::default() };
    let mut op = Driver::with_tracked(&world, &[], &[old, kept], opts);
    assert!(matches!(op.pass(), Progress::Succeeded(_)));
    assert_eq!(
        (op.record("old").status, op.record("old").message.as_str()),
        (OutcomeStatus::Pruned, "pruned")
    );
    assert_eq!(
        (op.record("kept").status, op.record("kept").message.as_str()),
        (OutcomeStatus::PruneSkipped, "ignored (no prune)")
    );
    assert_eq!(world.changes(), ["delete configmap/old"]);
}

#[test]
fn prune_confirm_holds_its_stage_until_the_application_approves() {
    let confirm = object("ConfigMap", "confirm", json!({"argocd.argoproj.io/sync-options": "Prune=confirm"}));
    let world = ScriptedWorld::with_live(std::slice::from_ref(&confirm));
    let desired = [object("ConfigMap", "web", json!({}))];
    let opts = SyncOptions { prune: true, ..Default::default() };
    let mut op = Driver::with_tracked(&world, &desired, std::slice::from_ref(&confirm), opts);
    let waiting = Progress::Running("Waiting for pruning confirmation of v1/ConfigMap/confirm".into());
    assert_eq!(op.pass(), waiting);
    assert_eq!(op.pass(), waiting, "it waits as long as the Application does not approve");
    assert!(world.changes().is_empty(), "nothing of the stage ran: {:?}", world.changes());

    op.opts.prune_confirmed = true;
    assert!(matches!(op.pass(), Progress::Succeeded(_)));
    assert_eq!(world.changes(), ["delete configmap/confirm", "apply configmap/web"]);
    assert_eq!(op.record("confirm").message, "pruned");
}

#[test]
fn a_hook_result_keeps_created_until_its_health_says_more() {
    let mut world = ScriptedWorld::where_health(
        "broken",
        HealthStatus::Degraded,
        "container \"main\" failed with exit code 1",
    );
    world.without_health.insert("marker".into());
    let pod = |name: &str, phase: &str| {
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "namespace": "web", "annotations": {"argocd.argoproj.io/hook": phase}},
               "spec": {"containers": [{"name": "main", "image": "alpine:3"}]}})
    };
    let marker = object("ConfigMap", "marker", json!({"argocd.argoproj.io/hook": "PreSync"}));
    let desired =
        [pod("hook", "PreSync"), marker, pod("broken", "SyncFail"), object("ConfigMap", "web", json!({}))];
    let mut op = Driver::new(&world, &desired, SyncOptions::default());
    assert!(matches!(op.pass(), Progress::Succeeded(_)));
    let hook = op.record("hook");
    assert_eq!((hook.hook_phase, hook.message.as_str()), (Some(HookPhase::Succeeded), "pod/hook created"));
    assert_eq!(op.record("marker").message, "marker created", "no health: the name and created");

    world.refused.insert("web".into(), "spec: Invalid value".into());
    world.objects.lock().unwrap().clear();
    let mut op = Driver::new(&world, &desired, SyncOptions::default());
    assert!(matches!(op.pass(), Progress::Failed(_)));
    let broken = op.record("broken");
    assert_eq!(broken.hook_phase, Some(HookPhase::Failed));
    assert_eq!(broken.message, "container \"main\" failed with exit code 1");
}

#[test]
fn a_hook_deleted_while_it_runs_fails_in_argo_cds_words() {
    let world = ScriptedWorld::where_health("migrate", HealthStatus::Progressing, "job running");
    let mut op = Driver::new(&world, &[hook("PreSync", "migrate")], SyncOptions::default());
    assert!(matches!(op.pass(), Progress::Running(_)));
    world.objects.lock().unwrap().clear();
    assert!(matches!(op.pass(), Progress::Failed(_)));
    let record = op.record("migrate");
    assert_eq!(record.status, OutcomeStatus::SyncFailed);
    assert_eq!(record.message, "Resource batch/Job/migrate is missing, it might have been deleted");
}

#[test]
fn images_are_the_containers_of_a_pod_a_template_or_a_cron_jobs_template() {
    let containers = json!([{"name": "web", "image": "nginx:1"}, {"name": "side", "image": "envoy:2"}]);
    let init = json!([{"name": "init", "image": "busybox"}]);
    let pod = json!({"kind": "Pod", "spec": {"containers": containers, "initContainers": init}});
    let deployment =
        json!({"kind": "Deployment", "spec": {"template": {"spec": {"containers": containers}}}});
    let cron = json!({"kind": "CronJob",
                      "spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": containers}}}}}});
    for obj in [pod, deployment, cron] {
        assert_eq!(images_of(&obj), ["nginx:1", "envoy:2"], "{obj}");
    }
    assert!(images_of(&json!({"kind": "ConfigMap", "data": {}})).is_empty());
}

#[test]
fn results_carry_the_images_of_their_objects() {
    let world = ScriptedWorld::default();
    let mut web = object("Deployment", "web", json!({}));
    web["spec"] = json!({"template": {"spec": {"containers": [{"name": "web", "image": "myorg/web:v2"}]}}});
    let mut op =
        Driver::new(&world, &[web, object("ConfigMap", "settings", json!({}))], SyncOptions::default());
    assert!(matches!(op.pass(), Progress::Succeeded(_)));
    assert_eq!(op.record("web").images, ["myorg/web:v2"]);
    assert!(op.record("settings").images.is_empty());
}

#[test]
fn a_resource_is_running_until_its_stage_settles_then_succeeded() {
    let world = ScriptedWorld::where_health("db", HealthStatus::Progressing, "rolling out");
    let desired = [object("Deployment", "db", wave(0)), object("ConfigMap", "web", wave(1))];
    let mut op = Driver::new(&world, &desired, SyncOptions::default());
    assert!(matches!(op.pass(), Progress::Running(_)));
    assert_eq!(op.record("db").hook_phase, Some(HookPhase::Running));
    world.set_health("db", HealthStatus::Healthy, "");
    assert!(matches!(op.pass(), Progress::Succeeded(_)));
    assert_eq!(op.record("db").hook_phase, Some(HookPhase::Succeeded));
    assert_eq!(op.record("db").message, "deployment.apps/db created", "an empty health message keeps it");
    assert_eq!(op.record("web").hook_phase, Some(HookPhase::Running), "the last stage is not waited for");
}

#[test]
fn an_unnamed_hook_is_named_as_argo_cd_names_it() {
    let world = ScriptedWorld::default();
    let mut job = hook("PreSync,PostSync", "");
    job["metadata"].as_object_mut().unwrap().remove("name");
    job["metadata"]["annotations"]["argocd.argoproj.io/tracking-id"] =
        json!("web:batch/Job:web/presync-postsync");
    let mut op = Driver::new(&world, &[job], SyncOptions::default()).named("4F9E2B1C0FFEE", 1733000000);
    assert!(matches!(op.pass(), Progress::Succeeded(_)));
    assert_eq!(
        world.changes(),
        ["create job.batch/4f9e2b1-presync-1733000000", "create job.batch/4f9e2b1-postsync-1733000000"]
    );
    let created = world.live(&ResourceKey::new("batch", "Job", "web", "4f9e2b1-presync-1733000000")).unwrap();
    assert_eq!(
        created["metadata"]["annotations"]["argocd.argoproj.io/tracking-id"],
        "web:batch/Job:web/4f9e2b1-presync-1733000000",
        "tracked under the name it has"
    );
    assert_eq!(op.record("4f9e2b1-postsync-1733000000").phase, Phase::PostSync);
    assert_eq!(op.pass(), Progress::Succeeded("successfully synced (all tasks run)".into()));
    assert_eq!(world.changes().len(), 2, "a later pass creates no second run");
}

#[test]
fn the_dry_run_leaves_to_the_apply_what_an_earlier_wave_creates() {
    let world = ScriptedWorld { admission: true, ..Default::default() };
    world.stored(&ResourceKey::new("", "Namespace", "", "web"), Arc::new(namespace("web")));
    let mut pod = object("Pod", "job", wave(1));
    pod["spec"] =
        json!({"serviceAccountName": "runner", "containers": [{"name": "main", "image": "alpine"}]});
    let mut in_fresh = object("ConfigMap", "settings", json!({}));
    in_fresh["metadata"]["namespace"] = json!("fresh");
    let desired = [object("ServiceAccount", "runner", wave(0)), pod, namespace("fresh"), in_fresh];
    let mut op = Driver::new(&world, &desired, SyncOptions::default());
    assert_eq!(op.pass(), Progress::Succeeded("successfully synced (all tasks run)".into()));
    assert_eq!(
        world.changes(),
        ["apply namespace/fresh", "apply serviceaccount/runner", "apply configmap/settings", "apply pod/job"]
    );
}

#[test]
fn a_dry_run_refusal_no_earlier_task_explains_fails_before_anything_is_written() {
    // The ServiceAccount comes a wave later than its Pod: the Pod would fail at its apply too.
    let world = ScriptedWorld { admission: true, ..Default::default() };
    world.stored(&ResourceKey::new("", "Namespace", "", "web"), Arc::new(namespace("web")));
    let mut pod = object("Pod", "job", wave(0));
    pod["spec"] =
        json!({"serviceAccountName": "runner", "containers": [{"name": "main", "image": "alpine"}]});
    let desired = [pod, object("ServiceAccount", "runner", wave(1)), hook("SyncFail", "alert")];
    let mut op = Driver::new(&world, &desired, SyncOptions::default());
    let Progress::Failed(message) = op.pass() else { panic!("the dry run refuses the Pod") };
    assert!(
        message.starts_with("one or more objects failed to apply (dry run), reason: pod/job: "),
        "{message}"
    );
    assert!(message.ends_with("serviceaccount \"runner\" not found"), "{message}");
    assert!(world.changes().is_empty(), "nothing written, no SyncFail hook: {:?}", world.changes());

    // An invalid field is refused by the dry run whatever comes before it.
    let mut world = ScriptedWorld::default();
    world.refused_always.insert("web".into(), (422, "spec.replicas: Invalid value: -1".into()));
    let desired = [object("Namespace", "fresh", wave(0)), object("Deployment", "web", wave(1))];
    let mut op = Driver::new(&world, &desired, SyncOptions::default());
    assert_eq!(
        op.pass(),
        Progress::Failed(
            "one or more objects failed to apply (dry run), reason: deployment.apps/web: spec.replicas: Invalid value: -1"
                .into()
        )
    );
    assert!(world.changes().is_empty(), "{:?}", world.changes());
    assert_eq!(op.pass(), op.pass(), "a failed dry run stays failed");
    assert!(world.changes().is_empty(), "{:?}", world.changes());
}

#[test]
fn an_unknown_field_is_refused_in_argo_cds_words() {
    let mut world = ScriptedWorld::default();
    let refusal = "failed to create typed patch object (web/web; apps/v1, Kind=Deployment): \
        .spec.template.spec.containers[name=\"web\"].imagePullPolicyy: field not declared in schema";
    world.refused_always.insert("web".into(), (500, refusal.into()));
    let mut web = object("Deployment", "web", json!({}));
    web["spec"] = json!({"template": {"spec": {"containers": [
        {"name": "side", "image": "envoy"}, {"name": "web", "image": "nginx", "imagePullPolicyy": "Always"}]}}});
    let mut op = Driver::new(&world, &[web], SyncOptions::default());
    assert!(matches!(op.pass(), Progress::Failed(_)));
    assert_eq!(
        op.record("web").message,
        "Deployment in version \"v1\" cannot be handled as a Deployment: strict decoding error: \
         unknown field \"spec.template.spec.containers[1].imagePullPolicyy\""
    );
}

#[test]
fn schema_paths_become_manifest_paths_for_every_kind_of_list_selector() {
    let obj = json!({"apiVersion": "v1", "kind": "Service", "spec": {
        "ports": [{"port": 80, "protocol": "UDP"}, {"port": 80, "protocol": "TCP", "nam": "http"}],
        "finalizers": ["a", "b"]}});
    let message = "errors:\n  .spec.ports[port=80,protocol=\"TCP\"].nam: field not declared in schema\n  \
        .spec.finalizers[=\"b\"].x: field not declared in schema\n  .spec.extra[name=\"gone\"].y: field not declared in schema";
    assert_eq!(
        unknown_fields_message(message, &obj).unwrap(),
        "Service in version \"v1\" cannot be handled as a Service: strict decoding error: \
         unknown field \"spec.ports[1].nam\", unknown field \"spec.finalizers[1].x\", \
         unknown field \"spec.extra[name=\\\"gone\\\"].y\""
    );
    assert_eq!(unknown_fields_message("spec.replicas: Invalid value: -1", &obj), None);
}

#[test]
fn the_managed_namespace_is_a_presync_result_unless_the_sync_applies_it_itself() {
    let world = ScriptedWorld::default();
    let ns = crate::sync::ManagedNamespace { name: "web".into(), ..Default::default() };
    let opts = SyncOptions { create_namespace: Some(ns.clone()), ..Default::default() };
    let mut op = Driver::new(&world, &[object("ConfigMap", "settings", json!({}))], opts);
    assert!(matches!(op.pass(), Progress::Succeeded(_)));
    let record = op.record("web");
    assert_eq!((record.phase, record.message.as_str()), (Phase::PreSync, "namespace/web created"));

    let world = ScriptedWorld::default();
    let opts = SyncOptions { create_namespace: Some(ns), ..Default::default() };
    let mut op = Driver::new(&world, &[namespace("web")], opts);
    assert!(matches!(op.pass(), Progress::Succeeded(_)));
    assert_eq!(world.changes(), ["apply namespace/web"], "applied once, as the sync's own Namespace");
    assert_eq!(op.record("web").phase, Phase::Sync);
}

fn deleting(obj: &Value) -> Value {
    let mut obj = obj.clone();
    obj["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    obj["metadata"]["finalizers"] = json!(["example.com/hold"]);
    obj
}

#[test]
fn an_object_already_being_deleted_is_pruned_without_a_second_delete() {
    // Planned from a snapshot that shows the deletion, and from one that does not yet (the cache is behind).
    let old = object("ConfigMap", "old", json!({}));
    let stale = object("ConfigMap", "stale", json!({}));
    let world = ScriptedWorld::with_live(&[deleting(&old), deleting(&stale)]);
    let opts = SyncOptions { prune: true, ..Default::default() };
    let mut op = Driver::with_tracked(&world, &[], &[deleting(&old), stale], opts);
    assert!(matches!(op.pass(), Progress::Succeeded(_)));
    assert!(world.changes().is_empty(), "no DELETE is sent again: {:?}", world.changes());
    assert_eq!(op.record("old").status, OutcomeStatus::Pruned);
    assert_eq!(op.record("stale").status, OutcomeStatus::Pruned);
}

#[test]
fn a_desired_object_being_deleted_is_created_again_once_it_is_gone_and_never_deleted() {
    let web = object("ConfigMap", "web", json!({}));
    let world = ScriptedWorld::with_live(&[deleting(&web)]);
    let mut op =
        Driver::new(&world, std::slice::from_ref(&web), SyncOptions { prune: true, ..Default::default() });
    let Progress::Running(message) = op.pass() else { panic!("the sync waits for the deletion") };
    assert_eq!(message, "waiting for deletion of /ConfigMap/web before it is created again");
    assert!(world.changes().is_empty(), "{:?}", world.changes());
    // The finalizer let go: now it is created.
    world.objects.lock().unwrap().clear();
    assert!(matches!(op.pass(), Progress::Succeeded(_)));
    assert_eq!(world.changes(), ["apply configmap/web"]);
}
