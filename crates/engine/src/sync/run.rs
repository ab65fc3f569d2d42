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
use super::plan::{self, Action, Task};
use super::{
    HookPhase, OutcomeStatus, Record, SyncOptions, api_message, describe, has_sync_option, is_not_found,
    version_of,
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
}

const RUNNING_PHASES: &[Phase] = &[Phase::PreSync, Phase::Sync, Phase::PostSync];

impl<W: World> Operation<'_, W> {
    /// Takes the operation one step further.
    pub async fn advance(&mut self) -> Progress {
        self.refresh_hooks();
        if self.opts.dry_run {
            return self.dry_run_all().await;
        }
        if let Some(message) = self.failure() {
            return self.fail(message).await;
        }
        if self.records.is_empty() {
            if let Some(ns) = &self.opts.create_namespace
                && let Some(record) = super::ensure_namespace(self.world, ns, false).await
            {
                self.records.push(record);
            }
            // Every object is checked by the server before the first is written, as Argo CD does.
            self.dry_run_first().await;
            if let Some(message) = self.failure() {
                return self.fail(message).await;
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
                        let message = self.failure().unwrap_or_default();
                        return self.fail(message).await;
                    }
                    TaskState::Running(message) => return Progress::Running(message),
                    TaskState::Unstarted => {
                        return Progress::Running(format!(
                            "waiting to start {}",
                            describe(&self.tasks[*i].key)
                        ));
                    }
                    TaskState::Done => {}
                }
            }
            // The next stage starts when this one's resources are healthy (the last one need not wait).
            if !last && let Some(wait) = self.unsettled(items) {
                return match wait {
                    Err(degraded) => self.fail(degraded).await,
                    Ok(waiting) => Progress::Running(waiting),
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
                        let message = self.failure().unwrap_or_default();
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
        let generate = matches!(task.action, Action::Hook { generate_name: true, .. });
        self.records.iter().rposition(|r| {
            r.phase == task.phase
                && r.hook == task.is_hook()
                && r.key.group == task.key.group
                && r.key.kind == task.key.kind
                && r.key.namespace == task.key.namespace
                && (r.key.name == task.key.name || (generate && r.key.name.starts_with(&task.key.name)))
        })
    }

    fn run_key(&self, task: &Task) -> String {
        format!("{}.{}", self.run_id, short_hash(&task.id()))
    }

    /// Brings hooks' records up to date with the cluster (also hooks created just before a restart).
    fn refresh_hooks(&mut self) {
        for task in self.tasks.iter().filter(|t| t.is_hook()) {
            let Some(live) = self.world.hook_instance(&self.run_key(task)) else {
                // Recorded as running, but no longer in the cluster: someone deleted it.
                if let Some(i) = self.record_of(task)
                    && self.records[i].hook_phase == Some(HookPhase::Running)
                    && self.records[i].status != OutcomeStatus::SyncFailed
                {
                    let r = &mut self.records[i];
                    r.hook_phase = Some(HookPhase::Failed);
                    r.message = format!("{} was deleted before it completed", describe(&r.key));
                }
                continue;
            };
            let (hook_phase, message) = hook_outcome(self.world, &live);
            let key = ResourceKey::of(&live).unwrap_or_else(|| task.key.clone());
            let record = Record {
                key,
                version: version_of(&live),
                phase: task.phase,
                hook: true,
                status: OutcomeStatus::Synced,
                hook_phase: Some(hook_phase),
                message,
            };
            match self.record_of(task) {
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
                _ => TaskState::Running(format!("waiting for completion of hook {}", describe(&r.key))),
            },
            (_, Some(r)) if r.status == OutcomeStatus::SyncFailed => TaskState::Failed,
            (_, Some(_)) => TaskState::Done,
        }
    }

    /// The first failure of the running phases, as the operation's message.
    fn failure(&self) -> Option<String> {
        let r = self.records.iter().find(|r| r.failed() && r.phase != Phase::SyncFail)?;
        Some(if r.hook {
            format!(
                "one or more synchronization tasks completed unsuccessfully, reason: {} {}: {}",
                r.phase,
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

    /// Resources of a finished stage that are not healthy yet: `Ok(waiting)`, or `Err` when one is Degraded.
    fn unsettled(&self, items: &[usize]) -> Option<Result<String, String>> {
        let mut waiting = Vec::new();
        for i in items {
            let task = &self.tasks[*i];
            match &task.action {
                Action::Apply(_) => match self.world.live(&task.key) {
                    None => waiting.push(describe(&task.key)),
                    Some(live) => match self.world.health(&live) {
                        Some(h) if h.status == HealthStatus::Degraded => {
                            return Some(Err(format!("{} is Degraded: {}", describe(&task.key), h.message)));
                        }
                        Some(h) if !matches!(h.status, HealthStatus::Healthy | HealthStatus::Suspended) => {
                            waiting.push(describe(&task.key))
                        }
                        _ => {}
                    },
                },
                Action::Prune(_) => {
                    let pruned =
                        self.record_of(task).is_some_and(|r| self.records[r].status == OutcomeStatus::Pruned);
                    if pruned && self.world.live(&task.key).is_some() {
                        waiting.push(format!("deletion of {}", describe(&task.key)));
                    }
                }
                Action::Hook { .. } => {}
            }
        }
        let first = waiting.first()?;
        Some(Ok(match waiting.len() {
            1 => format!("waiting for healthy state of {first}"),
            n => format!("waiting for healthy state of {first} and {} more resources", n - 1),
        }))
    }

    /// Starts these tasks (one stage) in order. A custom resource whose CRD this sync creates waits
    /// until the CRD is established; a named hook waits until the last run's object is gone.
    async fn start(&mut self, items: &[usize]) -> Started {
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
                    match self.world.apply(&info, object, mode).await {
                        Ok(stored) => {
                            let verb = if mode.replace || !mode.validate {
                                "replaced"
                            } else {
                                "serverside-applied"
                            };
                            self.world.stored(&task.key, Arc::new(stored));
                            let message = format!("{} {verb}", describe(&task.key));
                            self.record(task, &task.key, OutcomeStatus::Synced, message);
                        }
                        Err(e) => self.record(task, &task.key, OutcomeStatus::SyncFailed, api_message(&e)),
                    }
                }
                Action::Prune(live) => {
                    let (status, message) = self.prune(&info, &task.key, live).await;
                    self.record(task, &task.key, status, message);
                }
                Action::Hook { object, delete_policies, generate_name } => {
                    if !generate_name && let Some(existing) = self.world.live(&task.key) {
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
                                "waiting for the earlier {} to be deleted (BeforeHookCreation)",
                                describe(&task.key)
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
                            });
                        }
                        Err(e) => self.record(task, &task.key, OutcomeStatus::SyncFailed, api_message(&e)),
                    }
                }
            }
        }
        match waiting {
            Some(w) => Started::Waiting(w),
            None => Started::All,
        }
    }

    async fn prune(
        &self,
        info: &KindInfo,
        key: &ResourceKey,
        live: &serde_json::Value,
    ) -> (OutcomeStatus, String) {
        if !self.opts.prune || has_sync_option(live, "Prune=false") {
            let why = if self.opts.prune { "Prune=false annotation" } else { "prune is disabled" };
            return (OutcomeStatus::PruneSkipped, format!("ignored (requires pruning; {why})"));
        }
        if has_sync_option(live, "Prune=confirm") && !self.opts.prune_confirmed {
            return (
                OutcomeStatus::PruneSkipped,
                "ignored (Prune=confirm: waiting for the argocd.argoproj.io/deletion-approved annotation on the Application)".into(),
            );
        }
        let policy = self.opts.prune_propagation.clone().unwrap_or(PropagationPolicy::Foreground);
        match self.world.delete(info, key, policy, self.opts.dry_run).await {
            Ok(()) => (
                OutcomeStatus::Pruned,
                format!("{} pruned{}", describe(key), if self.opts.dry_run { " (dry run)" } else { "" }),
            ),
            Err(e) => (OutcomeStatus::SyncFailed, api_message(&e)),
        }
    }

    fn record(&mut self, task: &Task, key: &ResourceKey, status: OutcomeStatus, message: String) {
        let record = Record {
            key: key.clone(),
            version: version_of(task.object()),
            phase: task.phase,
            hook: task.is_hook(),
            status,
            hook_phase: task.is_hook().then_some(if status == OutcomeStatus::SyncFailed {
                HookPhase::Failed
            } else {
                HookPhase::Running
            }),
            message,
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
    /// same content are not asked again). A failure is recorded and nothing is applied.
    async fn dry_run_first(&mut self) {
        let created_ns = self.created_namespaces();
        for task in self.tasks {
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
            match self.world.apply(&info, object, mode).await {
                Ok(_) => {}
                Err(e) if is_not_found(&e) && created_ns.contains(&task.key.namespace) => {}
                // Force=true deletes and creates an object the server refuses to change in place.
                Err(kube::Error::Api(e)) if mode.force && (e.code == 422 || e.code == 409) => {}
                Err(e) => self.record(task, &task.key, OutcomeStatus::SyncFailed, api_message(&e)),
            }
        }
    }

    fn created_namespaces(&self) -> Vec<String> {
        self.opts
            .create_namespace
            .iter()
            .map(|n| n.name.clone())
            .chain(self.tasks.iter().filter_map(|t| match &t.action {
                Action::Apply(_) if t.key.kind == "Namespace" && t.key.group.is_empty() => {
                    Some(t.key.name.clone())
                }
                _ => None,
            }))
            .collect()
    }

    /// A dry-run operation: every object is checked by the server, nothing is written, no hook runs.
    async fn dry_run_all(&mut self) -> Progress {
        if let Some(ns) = &self.opts.create_namespace
            && let Some(record) = super::ensure_namespace(self.world, ns, true).await
        {
            self.records.push(record);
        }
        let created_ns = self.created_namespaces();
        for task in self.tasks.iter().filter(|t| !t.is_hook()) {
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
                    let (status, message) = match self.world.apply(&info, object, mode).await {
                        Ok(_) => (
                            OutcomeStatus::Synced,
                            format!("{} serverside-applied (dry run)", describe(&task.key)),
                        ),
                        Err(e) if is_not_found(&e) && created_ns.contains(&task.key.namespace) => (
                            OutcomeStatus::Synced,
                            format!(
                                "{} would be applied (dry run; namespace {} is created by this sync)",
                                describe(&task.key),
                                task.key.namespace
                            ),
                        ),
                        Err(e) => (OutcomeStatus::SyncFailed, api_message(&e)),
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
        match self.failure() {
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

/// A hook's outcome from its live object: a Job or Pod by its completion, anything else by its health.
pub fn hook_outcome(world: &impl World, live: &serde_json::Value) -> (HookPhase, String) {
    if live["kind"] == "Pod" {
        return match live["status"]["phase"].as_str() {
            Some("Succeeded") => (HookPhase::Succeeded, "pod completed".into()),
            Some("Failed") => {
                (HookPhase::Failed, live["status"]["message"].as_str().unwrap_or("pod failed").to_string())
            }
            _ => (HookPhase::Running, "pod running".into()),
        };
    }
    match world.health(live) {
        None => (HookPhase::Succeeded, "created".into()),
        Some(h) => match h.status {
            HealthStatus::Healthy => {
                (HookPhase::Succeeded, if h.message.is_empty() { "completed".into() } else { h.message })
            }
            HealthStatus::Degraded => (HookPhase::Failed, h.message),
            _ => (HookPhase::Running, h.message),
        },
    }
}

fn short_hash(s: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(s.as_bytes());
    digest[..5].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
