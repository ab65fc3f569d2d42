//! Finalize: deletion behind Argo CD's finalizers (PreDelete hooks, the tracked objects, PostDelete hooks).

use berth_api::Application;
use berth_engine::resource::GroupKind;
use berth_engine::sync::{self, SyncOptions};
use kube::api::{Patch, PatchParams, PropagationPolicy};
use std::collections::BTreeSet;
use std::time::Duration;

use super::operate::{OperationWorld, short_id};
use super::target::Target;
use crate::{Controller, Error, Level};
use berth_api::finalizers;

impl Controller {
    /// Deletion behind Argo CD's finalizers: PreDelete hooks first (pre-delete-finalizer), then every
    /// tracked object (resources-finalizer, foreground or background), then PostDelete hooks
    /// (post-delete-finalizer); each finalizer is removed when its step is done.
    pub(crate) async fn finalize(&self, app: &Application) -> Result<(), Error> {
        let name = self.instance_of(app);
        // An application its project does not accept from its namespace deletes nothing (Argo CD leaves it
        // waiting on its finalizers until the project lists the namespace).
        if let Err(refusal) = self.check_source_namespace(app) {
            tracing::warn!(app = %name, %refusal, "deletion waits: the project does not accept this namespace");
            return Ok(());
        }
        // A destination berth cannot resolve now (its cluster Secret is gone) deletes nothing anywhere: the
        // app waits on its finalizers until the cluster is back or someone removes them.
        let cluster = match self.cluster_of(app) {
            Ok(cluster) => cluster,
            Err(refusal) => {
                tracing::warn!(app = %name, %refusal, "deletion waits: the destination cluster is not known");
                self.requeue_after(&name, Duration::from_secs(30));
                return Ok(());
            }
        };
        // Nor does one whose cluster does not answer: its cache may be empty or stale, and a deletion that
        // found nothing tracked there would remove the finalizer and leave every object behind.
        if let Err(unreachable) = cluster.reachable().await {
            tracing::warn!(app = %name, %unreachable, "deletion waits for the destination cluster");
            self.requeue_after(&name, super::UNREACHABLE_RECHECK);
            return Ok(());
        }
        let finalizers = app.metadata.finalizers.clone().unwrap_or_default();
        let has = |f: &str| finalizers.iter().any(|x| x == f);
        if has(finalizers::PRE_DELETE) {
            return self.deletion_step(app, sync::hooks::Phase::PreDelete, finalizers::PRE_DELETE).await;
        }
        let resources = finalizers.iter().find(|f| finalizers::is_resources(f));
        if let Some(finalizer) = resources {
            for r in app.status.iter().flat_map(|s| &s.resources) {
                if let Some(kind) = &r.kind {
                    let _ = cluster
                        .cache
                        .ensure_watched(&GroupKind {
                            group: r.group.clone().unwrap_or_default(),
                            kind: kind.clone(),
                        })
                        .await;
                }
            }
            // PostDelete hooks run after this step: they are not deleted by it.
            let post_delete = |live: &serde_json::Value| matches!(sync::hooks::hook_kind(live), sync::hooks::HookKind::Hook(p) if p.contains(&sync::hooks::Phase::PostDelete));
            // Only what the project permits is deleted (Argo CD's getPermittedAppLiveObjects).
            let (permitted, refused) = self.permitted_tracked(app, &cluster);
            for refusal in &refused {
                tracing::warn!(app = %name, %refusal, "not deleted");
            }
            let tracked: Vec<_> = permitted
                .into_iter()
                .filter(|(_, live)| !sync::has_sync_option(live, "Delete=false") && !post_delete(live))
                .collect();
            if !tracked.is_empty() {
                let policy = if finalizer == finalizers::RESOURCES_BACKGROUND {
                    PropagationPolicy::Background
                } else {
                    PropagationPolicy::Foreground
                };
                for (key, live) in &tracked {
                    if live["metadata"]["deletionTimestamp"].is_string() {
                        continue;
                    }
                    let info = cluster.cache.kind(&key.group_kind()).await?;
                    berth_engine::apply::delete(&cluster.client, &info, key, policy.clone(), false).await?;
                }
                self.requeue_after(&name, Duration::from_secs(1));
                return Ok(());
            }
            let finalizer = finalizer.clone();
            return self.remove_finalizer(&name, &finalizer).await;
        }
        if has(finalizers::POST_DELETE) {
            return self.deletion_step(app, sync::hooks::Phase::PostDelete, finalizers::POST_DELETE).await;
        }
        Ok(())
    }

    /// One step of a deletion phase's hooks; its finalizer is removed once they are done.
    pub(crate) async fn deletion_step(
        &self,
        app: &Application,
        phase: sync::hooks::Phase,
        finalizer: &str,
    ) -> Result<(), Error> {
        let name = self.instance_of(app);
        match self.deletion_hooks(app, phase).await {
            sync::run::Progress::Succeeded(_) => self.remove_finalizer(&name, finalizer).await,
            sync::run::Progress::Running(message) | sync::run::Progress::Failed(message) => {
                tracing::info!(app = %name, %message, "waiting for {phase} hooks");
                self.requeue_after(&name, Duration::from_secs(1));
                Ok(())
            }
        }
    }

    /// Runs one step of the application's PreDelete or PostDelete hooks, rendered from its current target.
    /// A source that cannot be rendered any more has no hooks to run.
    pub(crate) async fn deletion_hooks(
        &self,
        app: &Application,
        phase: sync::hooks::Phase,
    ) -> sync::run::Progress {
        let name = self.instance_of(app);
        let target = match self.validate(app) {
            Ok(sources) => self.target(app, &sources, None, Level::Compare, false).await,
            Err(e) => Err(e),
        };
        let desired: Vec<serde_json::Value> = match target {
            Ok(t) => t.objects.into_iter().map(|d| d.object).collect(),
            Err(message) => {
                tracing::warn!(app = %name, %message, "no {phase} hooks: the source cannot be rendered");
                return sync::run::Progress::Succeeded(String::new());
            }
        };
        let cluster = match self.cluster_of(app) {
            Ok(cluster) => cluster,
            Err(e) => return sync::run::Progress::Running(e.to_string()),
        };
        if let Err(unreachable) = cluster.reachable().await {
            return sync::run::Progress::Running(unreachable);
        }
        let tasks = sync::plan::deletion_hooks(&desired, phase);
        for kind in tasks.iter().map(|t| t.key.group_kind()).collect::<BTreeSet<_>>() {
            let _ = cluster.cache.ensure_watched(&kind).await;
        }
        let run_id = short_id(&(&app.metadata.deletion_timestamp, phase.as_str()));
        let world = OperationWorld::new(self, &name, &cluster);
        let opts = SyncOptions::default();
        let mut execution = sync::run::Operation::new(&world, &tasks, &opts, &run_id, vec![]);
        execution.run_hooks(phase).await
    }

    pub(crate) async fn remove_finalizer(&self, name: &str, finalizer: &str) -> Result<(), Error> {
        let (api, app_name) = self.application_api(name);
        let current = api.get(app_name).await?;
        let remaining: Vec<String> =
            current.metadata.finalizers.unwrap_or_default().into_iter().filter(|f| f != finalizer).collect();
        let patch = serde_json::json!([
            { "op": "test", "path": "/metadata/resourceVersion", "value": current.metadata.resource_version },
            { "op": "replace", "path": "/metadata/finalizers", "value": remaining }
        ]);
        let patch: json_patch::Patch = serde_json::from_value(patch).expect("a JSON patch");
        self.replicas.check(name)?;
        match api.patch(app_name, &PatchParams::default(), &Patch::<()>::Json(patch)).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 422 || e.code == 409 => {
                self.requeue_after(name, Duration::from_millis(100));
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Argo CD adds the pre-/post-delete finalizers to an application whose source has such hooks, so
    /// they run when it is deleted.
    pub(crate) async fn ensure_deletion_finalizers(
        &self,
        app: &Application,
        target: &Target,
    ) -> Result<Option<String>, Error> {
        let mut wanted = Vec::new();
        for (phase, finalizer) in [
            (sync::hooks::Phase::PreDelete, finalizers::PRE_DELETE),
            (sync::hooks::Phase::PostDelete, finalizers::POST_DELETE),
        ] {
            let has_hooks = target.objects.iter().any(|d| {
                matches!(sync::hooks::hook_kind(&d.object), sync::hooks::HookKind::Hook(p) if p.contains(&phase))
            });
            let present = app.metadata.finalizers.iter().flatten().any(|f| f == finalizer);
            if has_hooks && !present {
                wanted.push(finalizer);
            }
        }
        if wanted.is_empty() {
            return Ok(None);
        }
        let name = self.instance_of(app);
        let (api, app_name) = self.application_api(&name);
        let mut finalizers = app.metadata.finalizers.clone().unwrap_or_default();
        finalizers.extend(wanted.iter().map(|f| f.to_string()));
        let patch = serde_json::json!({"metadata": {"finalizers": finalizers}});
        self.replicas.check(&name)?;
        let stored = api.patch(app_name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
        self.remember_write(&name, &stored);
        Ok(stored.metadata.resource_version)
    }
}
