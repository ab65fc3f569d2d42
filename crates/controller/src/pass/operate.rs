//! Operate: a sync operation (requested, or automatic) carried out one step a pass over the engine's
//! plan and executor, with retries and history; and the decision whether to sync automatically.

use berth_api::Application;
use berth_api::application::{
    ApplicationStatus, Operation, OperationState, ResourceResult, RevisionHistory, RevisionMetadata,
    SyncOperation, SyncOperationResult,
};
use berth_engine::health::{self};
use berth_engine::normalize::{self};
use berth_engine::resource::ResourceKey;
use berth_engine::sync::{self, ManagedNamespace, OutcomeStatus, SyncOptions};
use kube::api::PropagationPolicy;
use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::compare::Comparison;
use super::status::{now, push_history};
use super::target::Target;
use super::{has_option, hash_of, option_value, single_source, sync_options};
use crate::{Controller, Error, Level};

pub(crate) enum AutoSync {
    No,
    Blocked(String),
    Later(Duration),
    Now { self_heal: bool },
}

pub(crate) fn finish(
    mut state: OperationState,
    phase: &str,
    message: String,
    result: Option<SyncOperationResult>,
) -> OperationState {
    state.phase = phase.into();
    state.message = Some(message);
    state.sync_result = result.or(state.sync_result);
    state.finished_at = Some(now());
    state
}

/// Unique to one attempt of one operation: its start time and retry count.
pub(crate) fn run_id(state: &OperationState) -> String {
    short_id(&(&state.started_at, state.retry_count.unwrap_or(0)))
}

/// Ten hex digits identifying `value` (hook runs are annotated with it).
pub(crate) fn short_id(value: &impl serde::Serialize) -> String {
    format!("{:010x}", hash_of(value) & 0xff_ffff_ffff)
}

pub(crate) fn record_from(r: &ResourceResult) -> Option<sync::Record> {
    let phase = sync::hooks::Phase::parse(r.sync_phase.as_deref().unwrap_or("Sync"))?;
    Some(sync::Record {
        key: ResourceKey::new(&r.group, &r.kind, &r.namespace, &r.name),
        version: r.version.clone(),
        phase,
        hook: r.hook_type.is_some(),
        status: OutcomeStatus::parse(r.status.as_deref().unwrap_or_default())?,
        hook_phase: r.hook_phase.as_deref().and_then(sync::HookPhase::parse),
        message: r.message.clone().unwrap_or_default(),
    })
}

pub(crate) fn result_from(r: &sync::Record) -> ResourceResult {
    ResourceResult {
        group: r.key.group.clone(),
        version: r.version.clone(),
        kind: r.key.kind.clone(),
        namespace: r.key.namespace.clone(),
        name: r.key.name.clone(),
        status: Some(r.status.as_str().into()),
        message: Some(r.message.clone()),
        hook_type: r.hook.then(|| r.phase.as_str().to_string()),
        hook_phase: r.hook_phase.map(|p| p.as_str().to_string()),
        sync_phase: Some(r.phase.as_str().into()),
        ..Default::default()
    }
}

/// What the sync executor sees of the cluster: the cache, plus this controller's own recent writes.
pub(crate) struct OperationWorld<'a> {
    controller: &'a Controller,
    app: &'a str,
    settings: Arc<crate::Settings>,
}

impl<'a> OperationWorld<'a> {
    pub(crate) fn new(controller: &'a Controller, app: &'a str) -> Self {
        OperationWorld { controller, app, settings: controller.settings() }
    }
}

impl sync::run::World for OperationWorld<'_> {
    fn live(&self, key: &ResourceKey) -> Option<Arc<serde_json::Value>> {
        self.controller.live_view(self.app, key)
    }

    fn hook_instance(&self, run: &str) -> Option<Arc<serde_json::Value>> {
        let is_run = |o: &serde_json::Value| {
            o["metadata"]["annotations"][sync::hooks::HOOK_RUN_ANNOTATION].as_str() == Some(run)
        };
        let found = self.controller.cache.tracked_by(self.app).into_iter().find(|(_, o)| is_run(o));
        if let Some((key, _)) = found {
            return self.controller.live_view(self.app, &key);
        }
        // Created a moment ago, not in the watch yet.
        let memo = self.controller.memo.lock().expect("memo lock");
        let recent = memo
            .get(self.app)?
            .applied
            .iter()
            .find(|(_, (o, at))| is_run(o) && at.elapsed() < Duration::from_secs(10));
        let (key, (obj, _)) = recent?;
        // Gone from the cluster although the watch has caught up with it: deleted.
        let rv = |o: &serde_json::Value| o["metadata"]["resourceVersion"].as_str().map(str::to_string);
        match self.controller.cache.get(key) {
            Some(c) if rv(&c) != rv(obj) => Some(c),
            _ => Some(obj.clone()),
        }
    }

    fn health(&self, obj: &serde_json::Value) -> Option<health::Health> {
        self.settings.health(obj)
    }

    fn stored(&self, key: &ResourceKey, obj: Arc<serde_json::Value>) {
        let mut memo = self.controller.memo.lock().expect("memo lock");
        let m = memo.entry(self.app.to_string()).or_default();
        m.applied.retain(|_, (_, at)| at.elapsed() < Duration::from_secs(10));
        m.applied.insert(key.clone(), (obj, Instant::now()));
    }
}

impl Controller {
    /// Advances a sync operation by one step and returns its state: Running (recorded, and continued on
    /// the next pass: after a restart too), or finished. The first step records Running before anything
    /// is applied; every step records what it did before the next one starts.
    pub(crate) async fn run_operation(
        &self,
        app: &Application,
        op: &Operation,
        status: &mut ApplicationStatus,
        rv: &mut String,
        level: Level,
    ) -> Result<OperationState, Error> {
        let name = app.metadata.name.clone().unwrap_or_default();
        let sync_op = op.sync.clone().unwrap_or_default();
        let resumed = status.operation_state.clone().filter(|s| s.phase == "Running" && s.operation == *op);
        let mut state = match resumed {
            Some(state) => state,
            None => {
                let state = OperationState {
                    operation: op.clone(),
                    phase: "Running".into(),
                    message: None,
                    sync_result: None,
                    started_at: now(),
                    finished_at: None,
                    retry_count: None,
                };
                status.operation_state = Some(state.clone());
                // Recorded before anything is applied; if the copy was stale, nothing has happened yet.
                self.write_status(&name, rv, status).await?;
                state
            }
        };
        let retry = op.retry.clone().or_else(|| app.spec.sync_policy.as_ref().and_then(|p| p.retry.clone()));
        // A failed attempt waits out its backoff before the next one starts afresh.
        if let (Some(count), Some(failed_at)) = (state.retry_count.filter(|c| *c > 0), &state.finished_at) {
            let wait = crate::retry::backoff(retry.as_ref(), count);
            let elapsed = k8s_openapi::jiff::Timestamp::now().as_second() - failed_at.0.as_second();
            if elapsed < wait.as_secs() as i64 {
                self.requeue_after(&name, wait - Duration::from_secs(elapsed.max(0) as u64));
                return Ok(state);
            }
            state.finished_at = None;
            state.sync_result = state.sync_result.map(|r| SyncOperationResult { resources: vec![], ..r });
        }
        // A resumed operation keeps the commits it started with; a rollback brings its own source(s).
        let pinned: Option<Vec<String>> = state.sync_result.as_ref().and_then(|r| {
            if !r.revisions.is_empty() {
                Some(r.revisions.clone())
            } else {
                (!r.revision.is_empty()).then(|| vec![r.revision.clone()])
            }
        });
        let requested: Option<Vec<String>> = if !sync_op.revisions.is_empty() {
            Some(sync_op.revisions.clone())
        } else {
            sync_op.revision.clone().filter(|r| !r.is_empty()).map(|r| vec![r])
        };
        let target = match self.validate(app) {
            Err(message) => Err(message),
            Ok(sources) => {
                let sources = if !sync_op.sources.is_empty() {
                    sync_op.sources.clone()
                } else if let Some(source) = &sync_op.source {
                    vec![source.clone()]
                } else {
                    sources
                };
                let revisions = pinned.clone().or(requested);
                self.target(app, &sources, revisions.as_deref(), level.max(Level::Refresh), true)
                    .await
                    .map(|t| (t, sources))
            }
        };
        let (target, sources) = match target {
            Ok((t, sources)) => (Ok(t), sources),
            Err(e) => (Err(e), vec![]),
        };
        let target = match target {
            Ok(t) if t.errors.is_empty() => t,
            Ok(t) => {
                return Ok(finish(state, "Error", format!("ComparisonError: {}", t.errors.join("; ")), None));
            }
            Err(message) => return Ok(finish(state, "Error", format!("ComparisonError: {message}"), None)),
        };
        let options = sync_options(app, Some(&sync_op));
        let automated = app.spec.sync_policy.as_ref().and_then(|p| p.automated.as_ref());
        if target.objects.iter().all(|d| berth_engine::sync::hooks::is_hook(&d.object))
            && !automated.and_then(|a| a.allow_empty).unwrap_or(false)
            && op.initiated_by.as_ref().and_then(|i| i.automated) == Some(true)
        {
            return Ok(finish(
                state,
                "Failed",
                "Skipping sync: the source rendered no objects and allowEmpty is false".into(),
                None,
            ));
        }
        if has_option(&options, "FailOnSharedResource=true")
            && let Some(shared) = self.shared_resources(&name, &target).first()
        {
            return Ok(finish(
                state,
                "Failed",
                format!("FailOnSharedResource: {shared}; nothing was applied"),
                None,
            ));
        }
        let opts = self.sync_options_for(app, &sync_op, &options, &target);
        let mut desired: Vec<serde_json::Value> = target.objects.iter().map(|d| d.object.clone()).collect();
        if has_option(&options, "RespectIgnoreDifferences=true") {
            let rules = self.settings().ignore_rules_for(app);
            for (d, object) in target.objects.iter().zip(desired.iter_mut()) {
                let Some(live) = self.live_view(&name, &d.key) else { continue };
                if !rules.iter().any(|r| r.matches(&d.key)) {
                    continue;
                }
                // Rules by field manager need the managedFields the cache does not keep.
                let live = if rules.iter().any(|r| r.matches(&d.key) && !r.managed_fields_managers.is_empty())
                    && let Ok(info) = self.cache.kind(&d.key.group_kind()).await
                    && let Ok(Some(full)) = berth_engine::apply::get(&self.client, &info, &d.key).await
                {
                    Arc::new(full)
                } else {
                    live
                };
                if let Err(e) = normalize::respect_ignored(object, &live, &d.key, &rules) {
                    return Ok(finish(state, "Error", format!("{}: {}: {e}", d.file, d.key), None));
                }
            }
        }
        // The prune set: only objects the project permits, whoever else carries this app's tracking id.
        let (tracked, refused) = self.permitted_tracked(app);
        for kind in target.objects.iter().map(|d| d.key.group_kind()).collect::<BTreeSet<_>>() {
            let _ = self.cache.ensure_watched(&kind).await;
        }
        let tasks = sync::plan::tasks(&desired, &tracked, &opts);
        let run_id = run_id(&state);
        let records: Vec<sync::Record> =
            state.sync_result.iter().flat_map(|r| &r.resources).filter_map(record_from).collect();
        let world = OperationWorld::new(self, &name);
        let mut execution = sync::run::Operation {
            client: &self.client,
            cache: &self.cache,
            world: &world,
            tasks: &tasks,
            opts: &opts,
            run_id: &run_id,
            records,
        };
        let progress = execution.advance().await;
        let multi = !app.spec.sources.is_empty() || sources.len() > 1;
        let source = if multi { None } else { sources.first().cloned() };
        let multi_sources = if multi { sources.clone() } else { vec![] };
        let result = SyncOperationResult {
            resources: execution.records.iter().map(result_from).collect(),
            revision: target.revision.clone(),
            revisions: target.revisions.clone(),
            source: source.clone(),
            sources: multi_sources.clone(),
            ..Default::default()
        };
        let commit = target.commit.as_ref();
        match progress {
            sync::run::Progress::Running(message) => {
                tracing::debug!(app = %name, %message, "sync running");
                state.message = Some(message);
                state.sync_result = Some(result);
                // Watch events of the objects move it on; this is the fallback.
                self.requeue_after(&name, Duration::from_secs(2));
                Ok(state)
            }
            sync::run::Progress::Failed(message) => {
                let count = state.retry_count.unwrap_or(0);
                if crate::retry::allowed(retry.as_ref(), count) && !opts.dry_run {
                    let next = count + 1;
                    let wait = crate::retry::backoff(retry.as_ref(), next);
                    tracing::info!(app = %name, attempt = next, ?wait, %message, "sync failed, retrying");
                    state.message =
                        Some(format!("{message}. Retrying attempt #{next} in {}s", wait.as_secs()));
                    state.retry_count = Some(next);
                    state.finished_at = Some(now());
                    state.sync_result = Some(result);
                    self.requeue_after(&name, wait);
                    return Ok(state);
                }
                tracing::info!(app = %name, revision = %target.revision, %message, "sync failed");
                self.count_sync(app, "Failed");
                Ok(finish(state, "Failed", message, Some(result)))
            }
            sync::run::Progress::Succeeded(mut message) => {
                if opts.prune && !refused.is_empty() {
                    let project = if app.spec.project.is_empty() { "default" } else { &app.spec.project };
                    message.push_str(&format!(
                        "; {} tracked resource(s) not permitted in project '{project}' were not pruned",
                        refused.len()
                    ));
                }
                tracing::info!(
                    app = %name,
                    revision = %target.revision,
                    author = commit.map(|c| c.author.as_str()).unwrap_or_default(),
                    message = commit.map(|c| c.message.lines().next().unwrap_or_default()).unwrap_or_default(),
                    resources = result.resources.len(),
                    "sync finished"
                );
                self.count_sync(app, if opts.dry_run { "DryRun" } else { "Succeeded" });
                let state = finish(state, "Succeeded", message, Some(result));
                if !opts.dry_run {
                    push_history(
                        &mut status.history,
                        RevisionHistory {
                            revision: Some(target.revision.clone()),
                            revisions: target.revisions.clone(),
                            deployed_at: state.finished_at.clone().unwrap_or_else(now),
                            id: 0,
                            source,
                            sources: multi_sources,
                            deploy_started_at: Some(state.started_at.clone()),
                            initiated_by: op.initiated_by.clone(),
                            revision_metadata: target.commit.as_ref().map(|c| RevisionMetadata {
                                author: Some(c.author.clone()),
                                date: Some(c.date.clone()),
                                message: Some(c.message.clone()),
                                tags: vec![],
                            }),
                        },
                        app.spec.revision_history_limit,
                    );
                }
                Ok(state)
            }
        }
    }

    /// The engine's options for this operation, from the spec's and the operation's sync options.
    pub(crate) fn sync_options_for(
        &self,
        app: &Application,
        sync_op: &SyncOperation,
        options: &[String],
        target: &Target,
    ) -> SyncOptions {
        let name = app.metadata.name.clone().unwrap_or_default();
        let dest_ns = app.spec.destination.namespace.clone().filter(|n| !n.is_empty());
        let create_namespace = has_option(options, "CreateNamespace=true").then(|| {
            let meta = app
                .spec
                .sync_policy
                .as_ref()
                .and_then(|p| p.managed_namespace_metadata.clone())
                .unwrap_or_default();
            ManagedNamespace {
                name: dest_ns.clone().unwrap_or_else(|| "default".into()),
                labels: meta.labels.into_iter().map(|(k, v)| (k, v.into())).collect(),
                annotations: meta.annotations.into_iter().map(|(k, v)| (k, v.into())).collect(),
            }
        });
        let only = (!sync_op.resources.is_empty()).then(|| {
            sync_op
                .resources
                .iter()
                .map(|r| {
                    let ns = r.namespace.clone().filter(|n| !n.is_empty());
                    let found = target.objects.iter().find(|d| {
                        d.key.kind == r.kind
                            && d.key.name == r.name
                            && d.key.group == r.group.clone().unwrap_or_default()
                            && ns.as_ref().is_none_or(|n| *n == d.key.namespace)
                    });
                    found.map(|d| d.key.clone()).unwrap_or_else(|| {
                        ResourceKey::new(
                            &r.group.clone().unwrap_or_default(),
                            &r.kind,
                            &ns.unwrap_or_default(),
                            &r.name,
                        )
                    })
                })
                .collect()
        });
        let (skip, verified) = {
            let memo = self.memo.lock().expect("memo lock");
            let verdicts = memo.get(&name).map(|m| &m.verdicts);
            let mut skip = HashSet::new();
            let mut verified = HashSet::new();
            for d in &target.objects {
                if let Some((h, _, _, in_sync)) = verdicts.and_then(|v| v.get(&d.key))
                    && *h == hash_of(&d.object)
                {
                    verified.insert(d.key.clone());
                    if *in_sync && has_option(options, "ApplyOutOfSyncOnly=true") {
                        skip.insert(d.key.clone());
                    }
                }
            }
            (skip, verified)
        };
        SyncOptions {
            prune: sync_op.prune.unwrap_or(false),
            dry_run: sync_op.dry_run.unwrap_or(false),
            prune_last: has_option(options, "PruneLast=true"),
            create_namespace,
            only,
            skip,
            prune_propagation: match option_value(options, "PrunePropagationPolicy") {
                Some("background") => Some(PropagationPolicy::Background),
                Some("orphan") => Some(PropagationPolicy::Orphan),
                _ => Some(PropagationPolicy::Foreground),
            },
            replace: has_option(options, "Replace=true"),
            force: has_option(options, "Force=true"),
            no_validate: has_option(options, "Validate=false"),
            skip_dry_run_on_missing: has_option(options, "SkipDryRunOnMissingResource=true"),
            verified,
            prune_confirmed: app
                .metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key("argocd.argoproj.io/deletion-approved")),
        }
    }

    pub(crate) fn count_sync(&self, app: &Application, phase: &str) {
        let project = if app.spec.project.is_empty() { "default" } else { &app.spec.project };
        crate::metrics::global().synced(
            app.metadata.name.as_deref().unwrap_or_default(),
            &self.config.namespace,
            project,
            phase,
        );
    }

    pub(crate) fn auto_sync_decision(
        &self,
        app: &Application,
        target: &Target,
        cmp: &Comparison,
        status: &ApplicationStatus,
        settings: &crate::Settings,
    ) -> AutoSync {
        let Some(automated) = app.spec.sync_policy.as_ref().and_then(|p| p.automated.as_ref()) else {
            return AutoSync::No;
        };
        if automated.enabled == Some(false) || cmp.sync_status != "OutOfSync" || !target.errors.is_empty() {
            return AutoSync::No;
        }
        if target.objects.is_empty() && !automated.allow_empty.unwrap_or(false) {
            return AutoSync::Blocked("Skipping sync attempt: auto-sync would delete every resource (the source rendered no objects) and allowEmpty is false".into());
        }
        let last = status.operation_state.as_ref();
        let same_target = last.and_then(|s| s.sync_result.as_ref()).is_some_and(|r| {
            r.revision == target.revision
                && r.revisions == target.revisions
                && (r.source.as_ref() == single_source(app) || r.sources == app.spec.sources)
        });
        if !same_target {
            return AutoSync::Now { self_heal: false };
        }
        let last = last.expect("same_target implies a last operation");
        if last.phase == "Failed" || last.phase == "Error" {
            return AutoSync::No;
        }
        if !automated.self_heal.unwrap_or(false) {
            return AutoSync::No;
        }
        if settings.self_heal_paused {
            return AutoSync::Blocked(
                "Self-heal is paused (argocd-cm berth.selfHeal.paused): drift is reported, not reverted"
                    .into(),
            );
        }
        let since_last = last.finished_at.as_ref().map(|t| {
            let secs = k8s_openapi::jiff::Timestamp::now().as_second() - t.0.as_second();
            Duration::from_secs(secs.max(0) as u64)
        });
        match since_last {
            Some(elapsed) if elapsed < self.config.self_heal_timeout => {
                AutoSync::Later(self.config.self_heal_timeout - elapsed)
            }
            _ => AutoSync::Now { self_heal: true },
        }
    }
}
