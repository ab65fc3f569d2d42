//! The resumable executor. An operation advances one step per pass: it reads what it has done from its
//! record (the operation's result) and from the cluster, starts the next stage when the previous one is
//! applied, its hooks finished and its resources healthy, and says whether it is still running. A pass can
//! stop anywhere (a restart, a new leader): the next one picks up from the record and the live hooks, which
//! carry the id of the operation that created them, so a finished hook never runs twice.

use kube::api::PropagationPolicy;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use super::hooks::{DeletePolicy, HOOK_RUN_ANNOTATION, Phase};
use super::plan::{self, Action, HookName, Task};
use super::{
    HookPhase, OutcomeStatus, Record, SyncOptions, api_message, describe, has_sync_option, version_of,
};
use crate::apply::{self, ApplyMode};
use crate::cache::{CacheError, ClusterCache, KindInfo};
use crate::health::{Health, HealthStatus};
use crate::resource::{GroupKind, ResourceKey};

/// Everything the executor reads from and writes to the cluster, and tells the controller. The
/// controller's world reads its cache and writes through [`ClusterWrites`]; unit tests script one in memory.
pub trait World: Sync {
    /// The live object, including what this controller wrote a moment ago and the watch has not delivered.
    fn live(&self, key: &ResourceKey) -> Option<Arc<serde_json::Value>>;
    /// The live hook this operation created for a task (by the value of its `berth.dev/hook-run`).
    fn hook_instance(&self, run: &str) -> Option<Arc<serde_json::Value>>;
    /// Health as the controller assesses it (built-in and Lua customizations).
    fn health(&self, obj: &serde_json::Value) -> Option<Health>;
    /// An object the operation just wrote (read-your-writes until the watch has it).
    fn stored(&self, key: &ResourceKey, obj: Arc<serde_json::Value>);
    /// How the cluster serves a kind, as discovery last said.
    fn kind(&self, gk: &GroupKind) -> impl Future<Output = Result<KindInfo, CacheError>> + Send;
    /// Asks discovery again: a CRD of this sync has just been established.
    fn rediscover(&self) -> impl Future<Output = ()> + Send;
    /// Whether the object is in the cluster (its kind is watched from then on).
    fn exists(&self, key: &ResourceKey) -> impl Future<Output = bool> + Send;
    /// Writes `obj` as `mode` says; returns what the server stored (or would store, in a dry run).
    fn apply(
        &self,
        info: &KindInfo,
        obj: &serde_json::Value,
        mode: ApplyMode,
    ) -> impl Future<Output = Result<serde_json::Value, kube::Error>> + Send;
    /// Creates a hook (`generateName` honoured) and returns the stored object.
    fn create(
        &self,
        info: &KindInfo,
        obj: &serde_json::Value,
    ) -> impl Future<Output = Result<serde_json::Value, kube::Error>> + Send;
    /// Deletes an object; a missing one counts as deleted.
    fn delete(
        &self,
        info: &KindInfo,
        key: &ResourceKey,
        propagation: PropagationPolicy,
        dry_run: bool,
    ) -> impl Future<Output = Result<(), kube::Error>> + Send;
}

/// The cluster half of a [`World`]: kinds from the cache's discovery, writes through the API server. A
/// controller's world delegates its [`World::kind`] … [`World::delete`] here.
#[derive(Clone, Copy)]
pub struct ClusterWrites<'a> {
    pub client: &'a kube::Client,
    pub cache: &'a ClusterCache,
}

impl ClusterWrites<'_> {
    /// See [`World::kind`].
    pub async fn kind(&self, gk: &GroupKind) -> Result<KindInfo, CacheError> {
        self.cache.kind(gk).await
    }

    /// See [`World::rediscover`]; a failed discovery leaves the kind unknown, which the caller reports.
    pub async fn rediscover(&self) {
        let _ = self.cache.discover().await;
    }

    /// See [`World::exists`].
    pub async fn exists(&self, key: &ResourceKey) -> bool {
        self.cache.ensure_watched(&key.group_kind()).await.is_ok() && self.cache.get(key).is_some()
    }

    /// See [`World::apply`].
    pub async fn apply(
        &self,
        info: &KindInfo,
        obj: &serde_json::Value,
        mode: ApplyMode,
    ) -> Result<serde_json::Value, kube::Error> {
        apply::apply_with(self.client, info, obj, mode).await
    }

    /// See [`World::create`].
    pub async fn create(
        &self,
        info: &KindInfo,
        obj: &serde_json::Value,
    ) -> Result<serde_json::Value, kube::Error> {
        apply::create(self.client, info, obj, false).await
    }

    /// See [`World::delete`].
    pub async fn delete(
        &self,
        info: &KindInfo,
        key: &ResourceKey,
        propagation: PropagationPolicy,
        dry_run: bool,
    ) -> Result<(), kube::Error> {
        apply::delete(self.client, info, key, propagation, dry_run).await
    }
}

/// Where the operation stands after a pass.
#[derive(Clone, Debug, PartialEq)]
pub enum Progress {
    Running(String),
    Succeeded(String),
    Failed(String),
}

enum TaskState {
    Unstarted,
    Running(String),
    Done,
    Failed,
}

enum Started {
    All,
    Waiting(String),
}

/// One pass of an operation over its plan: built from the operation's record, advanced, and its
/// `records` written back.
pub struct Operation<'a, W: World> {
    pub world: &'a W,
    pub tasks: &'a [Task],
    pub opts: &'a SyncOptions,
    /// Unique to this operation attempt; written on every hook it creates.
    pub run_id: &'a str,
    /// The operation's record so far; the pass adds to it.
    pub records: Vec<Record>,
    /// Objects the server's dry run (at the operation's start) found it would leave exactly as they are,
    /// with the resourceVersion both the dry run and the cache saw: not written again. An operation resumed
    /// after its writer stopped between an apply and its record re-applies nothing. Forgotten once a
    /// stage has written anything (it may change how later objects are admitted).
    unchanged: HashMap<ResourceKey, String>,
}

const RUNNING_PHASES: &[Phase] = &[Phase::PreSync, Phase::Sync, Phase::PostSync];

impl<'a, W: World> Operation<'a, W> {
    /// One pass over `tasks` from the operation's `records` so far.
    pub fn new(
        world: &'a W,
        tasks: &'a [Task],
        opts: &'a SyncOptions,
        run_id: &'a str,
        records: Vec<Record>,
    ) -> Self {
        Operation { world, tasks, opts, run_id, records, unchanged: HashMap::new() }
    }

    /// Takes the operation one step further.
    pub async fn advance(&mut self) -> Progress {
        self.refresh_hooks();
        if self.opts.dry_run {
            return self.dry_run_all().await;
        }
        let dry_run_refused = self.nothing_run();
        if let Some(message) = self.failure(dry_run_refused) {
            // A refused dry run ends the operation at once: no SyncFail hook runs, as in Argo CD.
            if dry_run_refused {
                return Progress::Failed(message);
            }
            return self.fail(message).await;
        }
        if self.records.is_empty() {
            if let Some(ns) = &self.opts.create_namespace
                && !self.applies_namespace(&ns.name)
                && let Some(record) = super::ensure_namespace(self.world, ns, false).await
            {
                self.records.push(record);
                if let Some(message) = self.failure(false) {
                    return self.fail(message).await;
                }
            }
            // Every object is checked before the first is written, as Argo CD does (by the server here,
            // which sees more than Argo CD's client-side dry run: see `created_before`).
            self.dry_run_first().await;
            if let Some(message) = self.failure(true) {
                return Progress::Failed(message);
            }
        }
        let stages = plan::stages(self.tasks, RUNNING_PHASES);
        for (n, ((phase, wave), items)) in stages.iter().enumerate() {
            let last = n + 1 == stages.len();
            let unstarted: Vec<usize> =
                items.iter().copied().filter(|i| matches!(self.state(*i), TaskState::Unstarted)).collect();
            if !unstarted.is_empty() {
                tracing::debug!(phase = %phase, wave, tasks = unstarted.len(), "starting stage");
                if let Started::Waiting(message) = self.start(&unstarted).await {
                    return Progress::Running(message);
                }
                self.refresh_hooks();
            }
            for i in items {
                match self.state(*i) {
                    TaskState::Failed => {
                        let message = self.failure(false).unwrap_or_default();
                        return self.fail(message).await;
                    }
                    TaskState::Running(message) => return Progress::Running(message),
                    TaskState::Unstarted => {
                        return Progress::Running(format!(
                            "waiting to start {}",
                            task_ref(&self.tasks[*i].key)
                        ));
                    }
                    TaskState::Done => {}
                }
            }
            // The next stage starts when this one's resources are healthy (the last one need not wait).
            if !last && let Some(wait) = self.settle(items) {
                return match wait {
                    Settled::Degraded => {
                        let message = self.failure(false).unwrap_or_default();
                        self.fail(message).await
                    }
                    Settled::Waiting(waiting) => Progress::Running(waiting),
                };
            }
        }
        self.delete_finished_hooks().await;
        Progress::Succeeded("successfully synced (all tasks run)".into())
    }

    /// Runs the hooks of one phase that is not part of a sync (PreDelete, PostDelete), stage by stage.
    pub async fn run_hooks(&mut self, phase: Phase) -> Progress {
        self.refresh_hooks();
        for (_, items) in plan::stages(self.tasks, &[phase]) {
            let unstarted: Vec<usize> =
                items.iter().copied().filter(|i| matches!(self.state(*i), TaskState::Unstarted)).collect();
            if !unstarted.is_empty() {
                if let Started::Waiting(w) = self.start(&unstarted).await {
                    return Progress::Running(w);
                }
                self.refresh_hooks();
            }
            for i in &items {
                match self.state(*i) {
                    TaskState::Running(w) => return Progress::Running(w),
                    TaskState::Failed => {
                        let message = self.failure(false).unwrap_or_default();
                        self.delete_finished_hooks().await;
                        return Progress::Failed(message);
                    }
                    _ => {}
                }
            }
        }
        self.delete_finished_hooks().await;
        Progress::Succeeded(format!("{phase} hooks completed"))
    }

    /// The record of a task: a resource's by key and phase; a hook's by phase and (prefix of) name.
    fn record_of(&self, task: &Task) -> Option<usize> {
        let generated = matches!(task.action, Action::Hook { name: HookName::Generated, .. });
        self.records.iter().rposition(|r| {
            r.phase == task.phase
                && r.hook == task.is_hook()
                && r.key.group == task.key.group
                && r.key.kind == task.key.kind
                && r.key.namespace == task.key.namespace
                && (r.key.name == task.key.name || (generated && r.key.name.starts_with(&task.key.name)))
        })
    }

    fn run_key(&self, task: &Task) -> String {
        format!("{}.{}", self.run_id, short_hash(&task.id()))
    }

    /// Whether a desired Namespace of this sync is `name` (then CreateNamespace has nothing to add).
    fn applies_namespace(&self, name: &str) -> bool {
        self.tasks.iter().any(|t| {
            matches!(t.action, Action::Apply(_))
                && t.key.group.is_empty()
                && t.key.kind == "Namespace"
                && t.key.name == name
        })
    }

    /// Brings hooks' records up to date with the cluster (also hooks created just before a restart).
    fn refresh_hooks(&mut self) {
        for task in self.tasks.iter().filter(|t| t.is_hook()) {
            let previous = self.record_of(task);
            let Some(live) = self.world.hook_instance(&self.run_key(task)) else {
                // Recorded as running, but no longer in the cluster: someone deleted it.
                if let Some(i) = previous
                    && self.records[i].hook_phase == Some(HookPhase::Running)
                    && self.records[i].status != OutcomeStatus::SyncFailed
                {
                    let r = &mut self.records[i];
                    r.status = OutcomeStatus::SyncFailed;
                    r.hook_phase = Some(HookPhase::Failed);
                    r.message =
                        format!("Resource {} is missing, it might have been deleted", task_ref(&r.key));
                }
                continue;
            };
            let (hook_phase, message) = hook_outcome(self.world, &live);
            let key = ResourceKey::of(&live).unwrap_or_else(|| task.key.clone());
            // An empty health message keeps what the record said (the hook's "created"), as Argo CD does.
            let message = message
                .or_else(|| previous.map(|i| self.records[i].message.clone()))
                .unwrap_or_else(|| format!("{} created", describe(&key)));
            let record = Record {
                key,
                version: version_of(&live),
                phase: task.phase,
                hook: true,
                status: OutcomeStatus::Synced,
                hook_phase: Some(hook_phase),
                message,
                images: images_of(task.object()),
            };
            match previous {
                Some(i) => self.records[i] = record,
                None => self.records.push(record),
            }
        }
    }

    fn state(&self, i: usize) -> TaskState {
        let task = &self.tasks[i];
        let record = self.record_of(task).map(|r| &self.records[r]);
        match (&task.action, record) {
            (_, None) => TaskState::Unstarted,
            (Action::Hook { .. }, Some(r)) => match r.hook_phase {
                _ if r.status == OutcomeStatus::SyncFailed => TaskState::Failed,
                Some(HookPhase::Succeeded) => TaskState::Done,
                Some(HookPhase::Failed) => TaskState::Failed,
                _ => TaskState::Running(format!("waiting for completion of hook {}", task_ref(&r.key))),
            },
            (_, Some(r)) if r.status == OutcomeStatus::SyncFailed => TaskState::Failed,
            (_, Some(_)) => TaskState::Done,
        }
    }

    /// Whether no task has been applied or run yet: a failure then is the dry run's, before any write.
    fn nothing_run(&self) -> bool {
        self.records
            .iter()
            .all(|r| !r.hook && (r.status == OutcomeStatus::SyncFailed || r.phase == Phase::PreSync))
    }

    /// The first failure of the running phases, as the operation's message: Argo CD's words, and the
    /// object and reason. `dry_run` when it is the dry run before the first write that failed.
    fn failure(&self, dry_run: bool) -> Option<String> {
        let r = self.records.iter().find(|r| r.failed() && r.phase != Phase::SyncFail)?;
        Some(if r.hook {
            format!(
                "one or more synchronization tasks completed unsuccessfully, reason: {} {}: {}",
                r.phase,
                describe(&r.key),
                r.message
            )
        } else if r.status != OutcomeStatus::SyncFailed {
            // Applied, then Degraded before the next wave.
            format!(
                "one or more synchronization tasks completed unsuccessfully, reason: {} is Degraded: {}",
                describe(&r.key),
                r.message
            )
        } else if r.phase == Phase::PreSync {
            format!("the namespace failed to apply, reason: {}", r.message)
        } else if dry_run {
            format!(
                "one or more objects failed to apply (dry run), reason: {}: {}",
                describe(&r.key),
                r.message
            )
        } else {
            format!("one or more objects failed to apply, reason: {}: {}", describe(&r.key), r.message)
        })
    }

    /// The sync failed: run the SyncFail hooks, then delete hooks as their policies say.
    async fn fail(&mut self, message: String) -> Progress {
        for (_, items) in plan::stages(self.tasks, &[Phase::SyncFail]) {
            let unstarted: Vec<usize> =
                items.iter().copied().filter(|i| matches!(self.state(*i), TaskState::Unstarted)).collect();
            if !unstarted.is_empty() {
                if let Started::Waiting(w) = self.start(&unstarted).await {
                    return Progress::Running(format!("{message}; {w}"));
                }
                self.refresh_hooks();
            }
            for i in &items {
                if let TaskState::Running(w) = self.state(*i) {
                    return Progress::Running(format!("{message}; {w}"));
                }
            }
        }
        self.delete_finished_hooks().await;
        Progress::Failed(message)
    }

    /// Follows the health of a finished stage's resources into their records, as Argo CD does for a sync
    /// of several stages: Healthy (or no health at all) is Succeeded, Degraded Failed. `None` when the
    /// stage has settled; else what it waits for, or that a resource is Degraded.
    fn settle(&mut self, items: &[usize]) -> Option<Settled> {
        let mut waiting = Vec::new();
        let mut deleting = Vec::new();
        for &i in items {
            let task = &self.tasks[i];
            let record = self.record_of(task);
            match &task.action {
                Action::Apply(_) => {
                    let Some(live) = self.world.live(&task.key) else {
                        waiting.push(task_ref(&task.key));
                        continue;
                    };
                    let health = self.world.health(&live);
                    let phase = match &health {
                        Some(h) if h.status == HealthStatus::Degraded => HookPhase::Failed,
                        None => HookPhase::Succeeded,
                        Some(h) if matches!(h.status, HealthStatus::Healthy | HealthStatus::Suspended) => {
                            HookPhase::Succeeded
                        }
                        Some(_) => {
                            waiting.push(task_ref(&task.key));
                            continue;
                        }
                    };
                    if let Some(r) = record.map(|r| &mut self.records[r]) {
                        r.hook_phase = Some(phase);
                        if let Some(h) = health.filter(|h| !h.message.is_empty()) {
                            r.message = h.message;
                        }
                    }
                    if phase == HookPhase::Failed {
                        return Some(Settled::Degraded);
                    }
                }
                Action::Prune(_) => {
                    let pruned = record.is_some_and(|r| self.records[r].status == OutcomeStatus::Pruned);
                    if pruned && self.world.live(&task.key).is_some() {
                        deleting.push(task_ref(&task.key));
                    }
                }
                Action::Hook { .. } => {}
            }
        }
        let (what, pending) =
            if waiting.is_empty() { ("deletion of", deleting) } else { ("healthy state of", waiting) };
        let first = pending.first()?;
        Some(Settled::Waiting(match pending.len() {
            1 => format!("waiting for {what} {first}"),
            n => format!("waiting for {what} {first} and {} more resources", n - 1),
        }))
    }

    /// Starts these tasks (one stage) in order. A custom resource whose CRD this sync creates waits
    /// until the CRD is established; a named hook waits until the last run's object is gone; prunes that
    /// need confirmation hold the whole stage until the Application says they may go.
    async fn start(&mut self, items: &[usize]) -> Started {
        if let Some(waiting) = self.unconfirmed_prunes(items) {
            return Started::Waiting(waiting);
        }
        let mut waiting: Option<String> = None;
        for &i in items {
            let task = &self.tasks[i];
            let info = match self.kind_info(&task.key.group_kind()).await {
                Ok(info) => info,
                Err(KindWait::Crd(crd)) => {
                    waiting.get_or_insert(format!("waiting for CRD {crd} to be established"));
                    continue;
                }
                Err(KindWait::Unknown(e)) => {
                    self.record(task, &task.key, OutcomeStatus::SyncFailed, e);
                    continue;
                }
            };
            match &task.action {
                Action::Apply(object) => {
                    let mode = self.opts.mode_for(object);
                    let before = self.world.live(&task.key);
                    // Being deleted (a prune, or someone's delete): applying would only touch what is about
                    // to go; it is created afresh once gone, as Argo CD does, and never deleted again.
                    if before.as_deref().is_some_and(being_deleted) {
                        waiting.get_or_insert(format!(
                            "waiting for deletion of {} before it is created again",
                            task_ref(&task.key)
                        ));
                        continue;
                    }
                    let server_side = (self.opts.server_side
                        && !has_sync_option(object, "ServerSideApply=false"))
                        || server_side_apply(object);
                    let verified_rv =
                        self.opts.in_sync.get(&task.key).or_else(|| self.unchanged.get(&task.key));
                    if let Some(live) = before.as_deref()
                        && verified_rv
                            .is_some_and(|rv| live["metadata"]["resourceVersion"].as_str() == Some(rv))
                    {
                        // Equal to git as the compare saw this very version: nothing to write.
                        let message = applied_message(&task.key, Some(live), live, &mode, server_side);
                        self.record(task, &task.key, OutcomeStatus::Synced, message);
                        continue;
                    }
                    match self.world.apply(&info, object, mode.clone()).await {
                        Ok(stored) => {
                            let message =
                                applied_message(&task.key, before.as_deref(), &stored, &mode, server_side);
                            self.world.stored(&task.key, Arc::new(stored));
                            self.record(task, &task.key, OutcomeStatus::Synced, message);
                        }
                        Err(e) => self.record(
                            task,
                            &task.key,
                            OutcomeStatus::SyncFailed,
                            refusal_message(&e, object),
                        ),
                    }
                }
                Action::Prune(live) => {
                    let (status, message) = self.prune(&info, &task.key, live).await;
                    self.record(task, &task.key, status, message);
                }
                Action::Hook { object, delete_policies, name } => {
                    if *name != HookName::Generated
                        && let Some(existing) = self.world.live(&task.key)
                    {
                        // A hook of the same name from an earlier sync.
                        if delete_policies.contains(&DeletePolicy::BeforeHookCreation) {
                            if existing["metadata"]["deletionTimestamp"].is_null()
                                && let Err(e) = self
                                    .world
                                    .delete(&info, &task.key, PropagationPolicy::Background, false)
                                    .await
                            {
                                self.record(task, &task.key, OutcomeStatus::SyncFailed, api_message(&e));
                                continue;
                            }
                            waiting.get_or_insert(format!(
                                "waiting for deletion of hook {}",
                                task_ref(&task.key)
                            ));
                        } else {
                            let message = format!(
                                "{} already exists from an earlier sync; add BeforeHookCreation to its hook-delete-policy",
                                describe(&task.key)
                            );
                            self.record(task, &task.key, OutcomeStatus::SyncFailed, message);
                        }
                        continue;
                    }
                    let mut body = object.clone();
                    body["metadata"]["annotations"][HOOK_RUN_ANNOTATION] = self.run_key(task).into();
                    match self.world.create(&info, &body).await {
                        Ok(stored) => {
                            let key = ResourceKey::of(&stored).unwrap_or_else(|| task.key.clone());
                            self.world.stored(&key, Arc::new(stored));
                            self.records.push(Record {
                                message: format!("{} created", describe(&key)),
                                key,
                                version: version_of(object),
                                phase: task.phase,
                                hook: true,
                                status: OutcomeStatus::Synced,
                                hook_phase: Some(HookPhase::Running),
                                images: images_of(object),
                            });
                        }
                        Err(e) => self.record(
                            task,
                            &task.key,
                            OutcomeStatus::SyncFailed,
                            refusal_message(&e, object),
                        ),
                    }
                }
            }
        }
        // A stage that may have written (anything not found unchanged) can change how later stages'
        // objects are admitted: their dry run no longer tells.
        if items.iter().any(|i| !self.unchanged.contains_key(&self.tasks[*i].key)) {
            self.unchanged.clear();
        }
        match waiting {
            Some(w) => Started::Waiting(w),
            None => Started::All,
        }
    }

    /// Argo CD's wait for `Prune=confirm` objects of this stage, while pruning is on and the Application
    /// does not carry argocd.argoproj.io/deletion-approved: nothing of the stage runs meanwhile.
    fn unconfirmed_prunes(&self, items: &[usize]) -> Option<String> {
        if !self.opts.prune || self.opts.prune_confirmed {
            return None;
        }
        let unconfirmed: Vec<String> = items
            .iter()
            .filter_map(|&i| match &self.tasks[i].action {
                Action::Prune(live) if has_sync_option(live, "Prune=confirm") => Some(format!(
                    "{}/{}/{}",
                    live["apiVersion"].as_str().unwrap_or_default(),
                    self.tasks[i].key.kind,
                    self.tasks[i].key.name
                )),
                _ => None,
            })
            .collect();
        let first = unconfirmed.first()?;
        Some(match unconfirmed.len() {
            1 => format!("Waiting for pruning confirmation of {first}"),
            n => format!("Waiting for pruning confirmation of {first} and {} more resources", n - 1),
        })
    }

    /// Prunes one object, or says why not, in Argo CD's words. An object already being deleted is never
    /// sent a second DELETE.
    async fn prune(
        &self,
        info: &KindInfo,
        key: &ResourceKey,
        live: &serde_json::Value,
    ) -> (OutcomeStatus, String) {
        if !self.opts.prune {
            return (OutcomeStatus::PruneSkipped, "ignored (requires pruning)".into());
        }
        if has_sync_option(live, "Prune=false") {
            return (OutcomeStatus::PruneSkipped, "ignored (no prune)".into());
        }
        if has_sync_option(live, "Prune=confirm") && !self.opts.prune_confirmed {
            // Only a dry run gets here: a sync waits for the confirmation (see `unconfirmed_prunes`).
            return (OutcomeStatus::PruneSkipped, "ignored (waiting for pruning confirmation)".into());
        }
        // Already being deleted (as planned, or as the cluster has it now): a second DELETE would only touch
        // it; and already gone is pruned too.
        if !self.opts.dry_run {
            let now = self.world.live(key);
            if being_deleted(live) || now.as_deref().is_some_and(being_deleted) {
                return (OutcomeStatus::Pruned, "pruned".into());
            }
        }
        let policy = self.opts.prune_propagation.clone().unwrap_or(PropagationPolicy::Foreground);
        match self.world.delete(info, key, policy, self.opts.dry_run).await {
            Ok(()) if self.opts.dry_run => (OutcomeStatus::Pruned, "pruned (dry run)".into()),
            Ok(()) => (OutcomeStatus::Pruned, "pruned".into()),
            Err(e) => (OutcomeStatus::SyncFailed, api_message(&e)),
        }
    }

    fn record(&mut self, task: &Task, key: &ResourceKey, status: OutcomeStatus, message: String) {
        let hook_phase = if task.is_hook() {
            if status == OutcomeStatus::SyncFailed { HookPhase::Failed } else { HookPhase::Running }
        } else {
            resource_phase(status, self.opts.dry_run)
        };
        let record = Record {
            key: key.clone(),
            version: version_of(task.object()),
            phase: task.phase,
            hook: task.is_hook(),
            status,
            hook_phase: Some(hook_phase),
            message,
            images: images_of(task.object()),
        };
        match self.record_of(task) {
            Some(i) => self.records[i] = record,
            None => self.records.push(record),
        }
    }

    /// How the cluster serves a kind; a kind defined by a CRD of this sync is waited for.
    async fn kind_info(&self, gk: &GroupKind) -> Result<KindInfo, KindWait> {
        match self.world.kind(gk).await {
            Ok(info) => Ok(info),
            Err(e) => {
                let Some(crd) = self.crd_in_sync(gk) else {
                    return Err(KindWait::Unknown(e.to_string()));
                };
                let established = self
                    .world
                    .live(&crd)
                    .and_then(|live| self.world.health(&live))
                    .is_some_and(|h| h.status == HealthStatus::Healthy);
                if !established {
                    return Err(KindWait::Crd(crd.name));
                }
                // Established: discovery now serves it.
                self.world.rediscover().await;
                self.world.kind(gk).await.map_err(|e| match e {
                    CacheError::UnknownKind(_) => KindWait::Crd(crd.name.clone()),
                    other => KindWait::Unknown(other.to_string()),
                })
            }
        }
    }

    /// The CRD of this sync that defines `gk`, if any.
    fn crd_in_sync(&self, gk: &GroupKind) -> Option<ResourceKey> {
        self.tasks.iter().find_map(|t| match &t.action {
            Action::Apply(o)
                if t.key.kind == "CustomResourceDefinition"
                    && t.key.group == "apiextensions.k8s.io"
                    && o["spec"]["group"] == gk.group.as_str()
                    && o["spec"]["names"]["kind"] == gk.kind.as_str() =>
            {
                Some(t.key.clone())
            }
            _ => None,
        })
    }

    /// Before anything is written: the server checks every object (those the compare checked with the
    /// same content are not asked again). A failure is recorded and nothing is applied; an object the
    /// server refuses only because something this sync creates before it is not there yet is left to
    /// its apply (see [`Self::created_before`]).
    async fn dry_run_first(&mut self) {
        let tasks = self.tasks;
        for (i, task) in tasks.iter().enumerate() {
            let Action::Apply(object) = &task.action else { continue };
            if self.opts.verified.contains(&task.key) {
                continue;
            }
            let info = match self.world.kind(&task.key.group_kind()).await {
                Ok(info) => info,
                Err(e) => {
                    let skip = self.crd_in_sync(&task.key.group_kind()).is_some()
                        || self.opts.skip_dry_run_on_missing
                        || has_sync_option(object, "SkipDryRunOnMissingResource=true");
                    if !skip {
                        self.record(task, &task.key, OutcomeStatus::SyncFailed, e.to_string());
                    }
                    continue;
                }
            };
            let mode = ApplyMode { dry_run: true, ..self.opts.mode_for(object) };
            let force = mode.force;
            match self.world.apply(&info, object, mode).await {
                Ok(predicted) => {
                    // The dry run's resourceVersion is the server's current one: the cached copy must be
                    // that very version, or a change made since (a drift) could hide behind it.
                    if let Some(live) = self.world.live(&task.key)
                        && let Some(rv) = live["metadata"]["resourceVersion"].as_str()
                        && predicted["metadata"]["resourceVersion"].as_str() == Some(rv)
                        && left_as_is(&live, &predicted)
                    {
                        self.unchanged.insert(task.key.clone(), rv.to_string());
                    }
                }
                Err(e) if self.created_before(i, &e) => {}
                // Force=true deletes and creates an object the server refuses to change in place.
                Err(kube::Error::Api(e)) if force && (e.code == 422 || e.code == 409) => {}
                Err(e) => {
                    self.record(task, &task.key, OutcomeStatus::SyncFailed, refusal_message(&e, object))
                }
            }
        }
    }

    /// Whether the server refused task `i` only because an object that this sync creates before it does
    /// not exist yet: its Namespace (`namespaces "web" not found`, 404), or a Pod's ServiceAccount
    /// (`serviceaccount "sa" not found`, 403). The creator must come earlier in the run order (an earlier
    /// wave, or an earlier kind of the same wave) and not be live yet: a server-side dry run sees only
    /// what exists, where Argo CD's client-side dry run does not ask the server at all. Anything else the
    /// server says still fails the dry run.
    fn created_before(&self, i: usize, e: &kube::Error) -> bool {
        let kube::Error::Api(status) = e else { return false };
        if status.code != 404 && status.code != 403 {
            return false;
        }
        let Some((resource, name)) = missing_object(&status.message) else { return false };
        let task = &self.tasks[i];
        let managed = self.opts.create_namespace.as_ref().is_some_and(|ns| ns.name == name)
            && names_kind(resource, "Namespace");
        managed
            || self.tasks.iter().any(|t| {
                !matches!(t.action, Action::Prune(_))
                    && t.runs_before(task)
                    && t.key.name == name
                    && names_kind(resource, &t.key.kind)
                    && (t.key.namespace.is_empty() || t.key.namespace == task.key.namespace)
                    && self.world.live(&t.key).is_none()
            })
    }

    /// A dry-run operation: every object is checked by the server, nothing is written, no hook runs.
    async fn dry_run_all(&mut self) -> Progress {
        if let Some(ns) = &self.opts.create_namespace
            && !self.applies_namespace(&ns.name)
            && let Some(record) = super::ensure_namespace(self.world, ns, true).await
        {
            self.records.push(record);
        }
        let tasks = self.tasks;
        for (i, task) in tasks.iter().enumerate().filter(|(_, t)| !t.is_hook()) {
            let info = match self.world.kind(&task.key.group_kind()).await {
                Ok(info) => info,
                Err(e) => {
                    self.record(task, &task.key, OutcomeStatus::SyncFailed, e.to_string());
                    continue;
                }
            };
            match &task.action {
                Action::Apply(object) => {
                    let mode = ApplyMode { dry_run: true, ..self.opts.mode_for(object) };
                    let before = self.world.live(&task.key);
                    let (status, message) = match self.world.apply(&info, object, mode.clone()).await {
                        Ok(stored) => (
                            OutcomeStatus::Synced,
                            applied_message(&task.key, before.as_deref(), &stored, &mode, false),
                        ),
                        Err(e) if self.created_before(i, &e) => {
                            (OutcomeStatus::Synced, format!("{} created (dry run)", describe(&task.key)))
                        }
                        Err(e) => (OutcomeStatus::SyncFailed, refusal_message(&e, object)),
                    };
                    self.record(task, &task.key, status, message);
                }
                Action::Prune(live) => {
                    let (status, message) = self.prune(&info, &task.key, live).await;
                    self.record(task, &task.key, status, message);
                }
                Action::Hook { .. } => {}
            }
        }
        match self.failure(true) {
            Some(message) => Progress::Failed(message),
            None => Progress::Succeeded("successfully synced (dry run)".into()),
        }
    }

    /// At the end of the operation: hooks that succeeded go if HookSucceeded, failed ones if HookFailed.
    async fn delete_finished_hooks(&mut self) {
        let mut seen: HashMap<String, ()> = HashMap::new();
        for task in self.tasks {
            let Action::Hook { delete_policies, .. } = &task.action else { continue };
            let run = self.run_key(task);
            if seen.insert(run.clone(), ()).is_some() {
                continue;
            }
            let Some(live) = self.world.hook_instance(&run) else { continue };
            let (phase, _) = hook_outcome(self.world, &live);
            let wanted = match phase {
                HookPhase::Succeeded => DeletePolicy::HookSucceeded,
                HookPhase::Failed => DeletePolicy::HookFailed,
                HookPhase::Running => continue,
            };
            if !delete_policies.contains(&wanted) {
                continue;
            }
            let Some(key) = ResourceKey::of(&live) else { continue };
            if let Ok(info) = self.world.kind(&key.group_kind()).await
                && let Err(e) = self.world.delete(&info, &key, PropagationPolicy::Background, false).await
            {
                tracing::warn!(hook = %key, error = %api_message(&e), "could not delete a finished hook");
            }
        }
    }
}

enum KindWait {
    Crd(String),
    Unknown(String),
}

/// What a finished stage still waits for.
enum Settled {
    Waiting(String),
    Degraded,
}

/// A hook's outcome from its live object's health, as Argo CD reads it: Healthy is Succeeded, Progressing
/// or Suspended Running, Degraded or Unknown Failed; an object without health has succeeded once created.
/// The message is the health's; `None` when it has none, so the record keeps the one it has.
pub fn hook_outcome(world: &impl World, live: &serde_json::Value) -> (HookPhase, Option<String>) {
    let Some(health) = world.health(live) else {
        let name = live["metadata"]["name"].as_str().unwrap_or_default();
        return (HookPhase::Succeeded, Some(format!("{name} created")));
    };
    let phase = match health.status {
        HealthStatus::Progressing | HealthStatus::Suspended => HookPhase::Running,
        HealthStatus::Degraded | HealthStatus::Unknown => HookPhase::Failed,
        HealthStatus::Healthy | HealthStatus::Missing => HookPhase::Succeeded,
    };
    (phase, Some(health.message).filter(|m| !m.is_empty()))
}

/// A resource result's phase in Argo CD (its `hookPhase`, which every result carries): applied is Running
/// until the stage settles (Succeeded at once in a dry run), refused Failed, a prune or its skip Succeeded.
pub fn resource_phase(status: OutcomeStatus, dry_run: bool) -> HookPhase {
    match status {
        OutcomeStatus::Synced if dry_run => HookPhase::Succeeded,
        OutcomeStatus::Synced => HookPhase::Running,
        OutcomeStatus::SyncFailed => HookPhase::Failed,
        OutcomeStatus::Pruned | OutcomeStatus::PruneSkipped => HookPhase::Succeeded,
    }
}

/// What an apply did, in the words kubectl prints and Argo CD records: `deployment.apps/web created` when
/// it did not exist, `configured` when the write changed it, `unchanged` when not; `serverside-applied`
/// with ServerSideApply=true, `replaced` with Replace=true (a CRD or Namespace is `Kind/name updated`, as
/// Argo CD updates them instead); a dry run adds ` (dry run)`, where server-side apply is not asked for.
pub fn applied_message(
    key: &ResourceKey,
    before: Option<&serde_json::Value>,
    stored: &serde_json::Value,
    mode: &ApplyMode,
    server_side: bool,
) -> String {
    let verb = if server_side && !mode.dry_run {
        "serverside-applied"
    } else if mode.replace && before.is_some() {
        let updated = (key.group.is_empty() && key.kind == "Namespace")
            || (key.group == "apiextensions.k8s.io" && key.kind == "CustomResourceDefinition");
        if updated {
            return format!("{}/{} updated", key.kind, key.name);
        }
        "replaced"
    } else {
        match before {
            None => "created",
            Some(before) if same_object(before, stored) => "unchanged",
            Some(_) => "configured",
        }
    };
    let dry_run = if mode.dry_run { " (dry run)" } else { "" };
    format!("{} {verb}{dry_run}", describe(key))
}

/// Whether the write left the object as it was: the same resourceVersion, or (when the cached copy is
/// older than the write, or in a dry run) the same content apart from what the cluster keeps moving.
fn same_object(before: &serde_json::Value, after: &serde_json::Value) -> bool {
    let rv = |o: &serde_json::Value| o["metadata"]["resourceVersion"].as_str().map(str::to_string);
    if rv(before).is_some() && rv(before) == rv(after) {
        return true;
    }
    let content = |o: &serde_json::Value| {
        let mut o = o.clone();
        if let Some(map) = o.as_object_mut() {
            map.remove("status");
        }
        if let Some(meta) = o["metadata"].as_object_mut() {
            for volatile in ["resourceVersion", "managedFields", "generation"] {
                meta.remove(volatile);
            }
        }
        o
    };
    content(before) == content(after)
}

/// Whether a dry run's result leaves the live object as it is: the same content and, where both copies
/// carry them (the cache drops them), the same field ownership (managers, operations and fields; only the
/// entries' times may differ), so the write would change nothing.
fn left_as_is(live: &serde_json::Value, predicted: &serde_json::Value) -> bool {
    let both_own =
        !live["metadata"]["managedFields"].is_null() && !predicted["metadata"]["managedFields"].is_null();
    let strip = |o: &serde_json::Value| {
        let mut o = o.clone();
        if let Some(meta) = o["metadata"].as_object_mut() {
            meta.remove("resourceVersion");
            if !both_own {
                meta.remove("managedFields");
            }
            if let Some(entries) = meta.get_mut("managedFields").and_then(|m| m.as_array_mut()) {
                for entry in entries.iter_mut().filter_map(|e| e.as_object_mut()) {
                    entry.remove("time");
                }
            }
        }
        o
    };
    strip(live) == strip(predicted)
}

/// Whether an object asks for server-side apply by its own annotation (ServerSideApply=false wins).
fn server_side_apply(obj: &serde_json::Value) -> bool {
    has_sync_option(obj, "ServerSideApply=true") && !has_sync_option(obj, "ServerSideApply=false")
}

/// The container images of an object, as Argo CD lists them on a result: the containers of a Pod, of a
/// pod template, or of a CronJob's job template (the first of these the object has; not init containers).
pub fn images_of(obj: &serde_json::Value) -> Vec<String> {
    let spec = &obj["spec"];
    let containers = [
        &spec["containers"],
        &spec["template"]["spec"]["containers"],
        &spec["jobTemplate"]["spec"]["template"]["spec"]["containers"],
    ]
    .into_iter()
    .find_map(|c| c.as_array());
    containers.into_iter().flatten().filter_map(|c| c["image"].as_str().map(str::to_string)).collect()
}

/// An object as Argo CD's operation messages name it: `apps/Deployment/web`, `/ConfigMap/web`.
/// Whether the API server is deleting the object (it has a deletionTimestamp: finalizers or dependents
/// hold it).
pub fn being_deleted(obj: &serde_json::Value) -> bool {
    !obj["metadata"]["deletionTimestamp"].is_null()
}

fn task_ref(key: &ResourceKey) -> String {
    format!("{}/{}/{}", key.group, key.kind, key.name)
}

/// The object a refusal says is missing: the resource and name of its last `<resource> "<name>" not found`.
fn missing_object(message: &str) -> Option<(&str, &str)> {
    let end = message.rfind("\" not found")?;
    let quoted = &message[..end];
    let open = quoted.rfind('"')?;
    let name = &quoted[open + 1..];
    let resource = quoted[..open].strip_suffix(' ')?.rsplit([' ', ':']).next()?;
    (!resource.is_empty() && !name.is_empty()).then_some((resource, name))
}

/// Whether an API resource name (`namespaces`, `serviceaccount`, `ingresses`, `networkpolicies`) is `kind`.
fn names_kind(resource: &str, kind: &str) -> bool {
    let kind = kind.to_lowercase();
    let plural = match kind.strip_suffix('y') {
        Some(stem) => format!("{stem}ies"),
        None if kind.ends_with('s') || kind.ends_with("ch") || kind.ends_with('x') => format!("{kind}es"),
        None => format!("{kind}s"),
    };
    resource == kind || resource == plural
}

/// The server's refusal; an unknown field in the words Argo CD shows for it. berth applies server-side
/// with strict validation, which names the field by its schema path (`.spec.template.spec.containers
/// [name="web"].imagePullPolicyy: field not declared in schema`); Argo CD's client-side apply gets the
/// decoder's `Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: unknown
/// field "spec.template.spec.containers[0].imagePullPolicyy"`, which this rewrites it to.
pub fn refusal_message(e: &kube::Error, obj: &serde_json::Value) -> String {
    let message = api_message(e);
    unknown_fields_message(&message, obj).unwrap_or(message)
}

fn unknown_fields_message(message: &str, obj: &serde_json::Value) -> Option<String> {
    const NOT_DECLARED: &str = ": field not declared in schema";
    let mut fields = Vec::new();
    let mut rest = message;
    while let Some(at) = rest.find(NOT_DECLARED) {
        let path = rest[..at].rsplit(char::is_whitespace).next().unwrap_or_default();
        if path.starts_with('.') {
            // Quoted as Go's %q quotes it.
            let quoted = serde_json::Value::from(manifest_path(path, obj)).to_string();
            fields.push(format!("unknown field {quoted}"));
        }
        rest = &rest[at + NOT_DECLARED.len()..];
    }
    if fields.is_empty() {
        return None;
    }
    let kind = obj["kind"].as_str().unwrap_or_default();
    let version = version_of(obj);
    Some(format!(
        "{kind} in version \"{version}\" cannot be handled as a {kind}: strict decoding error: {}",
        fields.join(", ")
    ))
}

/// A server-side-apply field path (`.spec.containers[name="web"].image`) as the manifest's own path
/// (`spec.containers[0].image`): list entries chosen by key or value become their index in `obj`.
fn manifest_path(path: &str, obj: &serde_json::Value) -> String {
    let mut out = String::new();
    let mut at = Some(obj);
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            let field = &after[..end];
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(field);
            at = at.and_then(|v| v.get(field));
            rest = &after[end..];
        } else if rest.starts_with('[') {
            let end = selector_end(rest);
            let selector = &rest[1..end];
            let index = at.and_then(|v| v.as_array()).and_then(|items| list_index(items, selector));
            match index {
                Some(i) => {
                    out.push_str(&format!("[{i}]"));
                    at = at.and_then(|v| v.get(i));
                }
                None => {
                    out.push_str(&rest[..=end.min(rest.len() - 1)]);
                    at = None;
                }
            }
            rest = rest.get(end + 1..).unwrap_or_default();
        } else {
            out.push_str(rest);
            break;
        }
    }
    out
}

/// The position of the `]` that closes the selector `rest` starts with (quoted values may hold `]`).
fn selector_end(rest: &str) -> usize {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in rest.char_indices().skip(1) {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ']' if !quoted => return i,
            _ => {}
        }
    }
    rest.len() - 1
}

/// Which list item a selector picks: `name="web"` and `containerPort=80,protocol="TCP"` by keys, `="a"` by
/// value, `3` by index.
fn list_index(items: &[serde_json::Value], selector: &str) -> Option<usize> {
    if let Ok(i) = selector.parse::<usize>() {
        return (i < items.len()).then_some(i);
    }
    let mut wanted: Vec<(&str, serde_json::Value)> = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in selector.char_indices().chain([(selector.len(), ',')]) {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                let (key, value) = selector[start..i].split_once('=')?;
                wanted.push((key, serde_json::from_str(value).ok()?));
                start = i + 1;
            }
            _ => {}
        }
    }
    items.iter().position(|item| {
        wanted.iter().all(|(key, value)| if key.is_empty() { item == value } else { &item[*key] == value })
    })
}

fn short_hash(s: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(s.as_bytes());
    digest[..5].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
