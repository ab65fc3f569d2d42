//! The sync plan: every object of a sync becomes a task with a phase and a wave; tasks of one (phase,
//! wave) form a stage, and stages run in order. Pure: no cluster access, so the ordering is unit-tested.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use super::hooks::{self, DeletePolicy, HookKind, Phase};
use super::{SyncOptions, has_sync_option, kind_rank, sync_wave};
use crate::resource::{ResourceKey, TRACKING_ANNOTATION, TrackingId};

/// One unit of work.
#[derive(Clone, Debug, PartialEq)]
pub struct Task {
    pub phase: Phase,
    pub wave: i64,
    /// For a `generateName` hook, `name` is the generateName prefix; a hook with neither name nor
    /// generateName carries the name the sync gives it.
    pub key: ResourceKey,
    pub action: Action,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    Apply(serde_json::Value),
    Prune(Arc<serde_json::Value>),
    Hook { object: serde_json::Value, delete_policies: Vec<DeletePolicy>, name: HookName },
}

/// Where a hook's name comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookName {
    /// `metadata.name`, as written.
    Given,
    /// `metadata.generateName`: the API server completes it when the hook is created.
    Generated,
    /// Neither: the sync names it, as Argo CD does (see [`name_hooks`]).
    Assigned,
}

impl HookName {
    fn of(obj: &serde_json::Value) -> HookName {
        if ResourceKey::of(obj).is_some() {
            HookName::Given
        } else if obj["metadata"]["generateName"].as_str().is_some_and(|n| !n.is_empty()) {
            HookName::Generated
        } else {
            HookName::Assigned
        }
    }
}

impl Task {
    pub fn is_hook(&self) -> bool {
        matches!(self.action, Action::Hook { .. })
    }

    pub fn object(&self) -> &serde_json::Value {
        match &self.action {
            Action::Apply(o) | Action::Hook { object: o, .. } => o,
            Action::Prune(live) => live,
        }
    }

    /// Stable within an operation: identifies the task across controller restarts.
    pub fn id(&self) -> String {
        format!(
            "{}/{}/{}/{}/{}",
            self.phase, self.key.group, self.key.kind, self.key.namespace, self.key.name
        )
    }

    fn order(&self) -> (Phase, i64, usize, String, String) {
        (self.phase, self.wave, kind_rank(&self.key.kind), self.key.namespace.clone(), self.key.name.clone())
    }

    /// Whether this task runs before `other` in the sync (an earlier phase, wave, kind or name).
    pub fn runs_before(&self, other: &Task) -> bool {
        self.order() < other.order()
    }

    /// Gives an assigned-name hook its name, in its key, its object and the tracking id on the object.
    fn rename(&mut self, name: &str) {
        let Action::Hook { object, .. } = &mut self.action else { return };
        self.key.name = name.to_string();
        object["metadata"]["name"] = name.into();
        let tracking =
            object.pointer_mut(&format!("/metadata/annotations/{}", TRACKING_ANNOTATION.replace('/', "~1")));
        if let Some(tracking) = tracking
            && let Some(id) = tracking.as_str().and_then(TrackingId::parse)
        {
            *tracking = self.key.tracking_id(&id.app).into();
        }
    }
}

/// The key of a desired object. A `generateName` hook is keyed by its prefix; a hook with neither name nor
/// generateName by its phases (`presync-postsync`), until the sync names it (see [`name_hooks`]).
pub fn desired_key(obj: &serde_json::Value) -> Option<ResourceKey> {
    let name = match (HookName::of(obj), hooks::hook_kind(obj)) {
        (HookName::Given, _) => return ResourceKey::of(obj),
        (HookName::Generated, _) => obj["metadata"]["generateName"].as_str()?.to_string(),
        (HookName::Assigned, HookKind::Hook(phases)) => {
            phases.iter().map(|p| p.as_str().to_lowercase()).collect::<Vec<_>>().join("-")
        }
        (HookName::Assigned, _) => return None,
    };
    let mut named = obj.clone();
    named["metadata"]["name"] = name.into();
    ResourceKey::of(&named)
}

/// Names the hooks that have neither name nor generateName as Argo CD does: the first 7 characters of the
/// revision (all of it when shorter than 8), the phase and the operation's start in Unix seconds, joined by
/// `-` and lower-cased (`4f9e2b1-presync-1733000000`). Until this runs a plan calls them by their phase.
pub fn name_hooks(tasks: &mut [Task], revision: &str, started_at: i64) {
    let revision = if revision.len() >= 8 { revision.get(..7).unwrap_or(revision) } else { revision };
    for task in tasks {
        if matches!(task.action, Action::Hook { name: HookName::Assigned, .. }) {
            let name = [revision, task.phase.as_str(), &started_at.to_string()]
                .into_iter()
                .filter(|part| !part.is_empty())
                .collect::<Vec<_>>()
                .join("-")
                .to_lowercase();
            task.rename(&name);
        }
    }
}

/// A hook's task for one phase; an assigned-name hook is called by the phase until [`name_hooks`] runs.
fn hook_task(obj: &serde_json::Value, key: &ResourceKey, phase: Phase) -> Task {
    let name = HookName::of(obj);
    let mut task = Task {
        phase,
        wave: hook_wave(obj),
        key: key.clone(),
        action: Action::Hook { object: obj.clone(), delete_policies: hooks::delete_policies(obj), name },
    };
    if name == HookName::Assigned {
        task.rename(&phase.as_str().to_lowercase());
    }
    task
}

fn hook_wave(obj: &serde_json::Value) -> i64 {
    let annotations = &obj["metadata"]["annotations"];
    if super::SYNC_WAVE_ANNOTATIONS.iter().any(|a| annotations[*a].is_string()) {
        sync_wave(obj)
    } else {
        hooks::helm_weight(obj).unwrap_or(0)
    }
}

/// Every task of a sync (PreSync, Sync, PostSync and SyncFail), in run order.
///
/// Resources apply in the Sync phase by wave, then Argo CD's kind order, then name. Objects that left git
/// are pruned in the Sync phase in reverse wave order (the prune waves are mirrored), or after the last
/// wave with PruneLast. A resource subset runs no hooks, as in Argo CD.
pub fn tasks(
    desired: &[serde_json::Value],
    tracked: &[(ResourceKey, Arc<serde_json::Value>)],
    opts: &SyncOptions,
) -> Vec<Task> {
    let selected = |k: &ResourceKey| opts.only.as_ref().is_none_or(|only| only.contains(k));
    let mut out = Vec::new();
    let mut wanted: HashSet<ResourceKey> = HashSet::new();
    for obj in desired {
        let Some(key) = desired_key(obj) else { continue };
        match hooks::hook_kind(obj) {
            HookKind::Resource => {
                wanted.insert(key.clone());
                if selected(&key) && !opts.skip.contains(&key) {
                    out.push(Task {
                        phase: Phase::Sync,
                        wave: sync_wave(obj),
                        key,
                        action: Action::Apply(obj.clone()),
                    });
                }
            }
            HookKind::Skip => {}
            HookKind::Hook(phases) => {
                if opts.only.is_some() || opts.no_hooks {
                    continue;
                }
                for phase in phases.into_iter().filter(|p| *p <= Phase::SyncFail) {
                    out.push(hook_task(obj, &key, phase));
                }
            }
        }
    }
    let mut prunes: Vec<Task> = tracked
        .iter()
        .filter(|(k, live)| !wanted.contains(k) && !hooks::is_hook(live) && selected(k))
        .map(|(k, live)| Task {
            phase: Phase::Sync,
            wave: sync_wave(live),
            key: k.clone(),
            action: Action::Prune(live.clone()),
        })
        .collect();
    // Reverse wave order: the lowest prune wave swaps with the highest, and so on inwards.
    let waves: Vec<i64> = prunes.iter().map(|t| t.wave).collect::<BTreeSet<_>>().into_iter().collect();
    for t in &mut prunes {
        let i = waves.iter().position(|w| *w == t.wave).expect("collected above");
        t.wave = waves[waves.len() - 1 - i];
    }
    let last_wave = out.iter().filter(|t| t.phase == Phase::Sync).map(|t| t.wave).max().unwrap_or(0);
    for t in &mut prunes {
        if opts.prune_last || has_sync_option(t.object(), "PruneLast=true") {
            // An implicit wave after every other of the Sync phase.
            t.wave = last_wave.max(t.wave).saturating_add(1).max(i64::MAX / 2);
        }
    }
    out.extend(prunes);
    out.sort_by_key(|t| (t.order(), matches!(t.action, Action::Prune(_))));
    out
}

/// The hooks of a deletion phase (PreDelete or PostDelete), which run only when the Application is deleted.
pub fn deletion_hooks(desired: &[serde_json::Value], phase: Phase) -> Vec<Task> {
    let mut out: Vec<Task> = desired
        .iter()
        .filter_map(|obj| {
            let HookKind::Hook(phases) = hooks::hook_kind(obj) else { return None };
            if !phases.contains(&phase) {
                return None;
            }
            Some(hook_task(obj, &desired_key(obj)?, phase))
        })
        .collect();
    out.sort_by_key(Task::order);
    out
}

/// The stages of the tasks in `phases`, in run order: (phase, wave) and the indexes of their tasks.
pub fn stages(tasks: &[Task], phases: &[Phase]) -> Vec<((Phase, i64), Vec<usize>)> {
    let mut out: Vec<((Phase, i64), Vec<usize>)> = Vec::new();
    let mut order: Vec<usize> = (0..tasks.len()).filter(|i| phases.contains(&tasks[*i].phase)).collect();
    order.sort_by_key(|i| tasks[*i].order());
    for i in order {
        let stage = (tasks[i].phase, tasks[i].wave);
        match out.last_mut() {
            Some((s, items)) if *s == stage => items.push(i),
            _ => out.push((stage, vec![i])),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(kind: &str, name: &str, annotations: serde_json::Value) -> serde_json::Value {
        let api = match kind {
            "Deployment" => "apps/v1",
            "Job" => "batch/v1",
            "CustomResourceDefinition" => "apiextensions.k8s.io/v1",
            "Widget" => "example.com/v1",
            _ => "v1",
        };
        json!({"apiVersion": api, "kind": kind,
               "metadata": {"name": name, "namespace": "web", "annotations": annotations}})
    }

    fn names(tasks: &[Task]) -> Vec<String> {
        tasks
            .iter()
            .map(|t| {
                let verb = match t.action {
                    Action::Apply(_) => "apply",
                    Action::Prune(_) => "prune",
                    Action::Hook { .. } => "hook",
                };
                format!("{} {} {verb} {}/{}", t.phase, t.wave, t.key.kind, t.key.name)
            })
            .collect()
    }

    #[test]
    fn phases_then_waves_then_kinds_then_names() {
        let desired = vec![
            obj("Deployment", "web", json!({})),
            obj("Service", "web", json!({})),
            obj("ConfigMap", "b", json!({"argocd.argoproj.io/sync-wave": "-1"})),
            obj("Job", "smoke", json!({"argocd.argoproj.io/hook": "PostSync"})),
            obj("Job", "migrate", json!({"argoproj.io/hook": "PreSync"})),
            obj("Job", "alert", json!({"argocd.argoproj.io/hook": "SyncFail"})),
            obj("Namespace", "a", json!({"argoproj.io/sync-wave": "1"})),
            obj("ConfigMap", "skipped", json!({"argocd.argoproj.io/hook": "Skip"})),
        ];
        let tasks = tasks(&desired, &[], &SyncOptions::default());
        assert_eq!(
            names(&tasks),
            [
                "PreSync 0 hook Job/migrate",
                "Sync -1 apply ConfigMap/b",
                "Sync 0 apply Service/web",
                "Sync 0 apply Deployment/web",
                "Sync 1 apply Namespace/a",
                "PostSync 0 hook Job/smoke",
                "SyncFail 0 hook Job/alert",
            ]
        );
        let stages = stages(&tasks, &[Phase::PreSync, Phase::Sync, Phase::PostSync]);
        let keys: Vec<(Phase, i64)> = stages.iter().map(|(s, _)| *s).collect();
        assert_eq!(
            keys,
            [
                (Phase::PreSync, 0),
                (Phase::Sync, -1),
                (Phase::Sync, 0),
                (Phase::Sync, 1),
                (Phase::PostSync, 0)
            ]
        );
    }

    #[test]
    fn crd_operator_and_custom_resource_follow_their_waves() {
        let desired = vec![
            obj("Widget", "w", json!({"argocd.argoproj.io/sync-wave": "3"})),
            obj("Deployment", "operator", json!({"argocd.argoproj.io/sync-wave": "2"})),
            obj(
                "CustomResourceDefinition",
                "widgets.example.com",
                json!({"argocd.argoproj.io/sync-wave": "1"}),
            ),
        ];
        assert_eq!(
            names(&tasks(&desired, &[], &SyncOptions::default())),
            [
                "Sync 1 apply CustomResourceDefinition/widgets.example.com",
                "Sync 2 apply Deployment/operator",
                "Sync 3 apply Widget/w",
            ]
        );
    }

    #[test]
    fn prunes_run_in_reverse_wave_order_or_last() {
        let live = |kind: &str, name: &str, wave: &str| {
            let o = obj(kind, name, json!({"argocd.argoproj.io/sync-wave": wave}));
            (ResourceKey::of(&o).unwrap(), Arc::new(o))
        };
        let desired = vec![obj("Service", "web", json!({}))];
        let tracked = vec![
            live("ConfigMap", "first", "1"),
            live("ConfigMap", "second", "2"),
            live("Secret", "third", "3"),
        ];
        assert_eq!(
            names(&tasks(&desired, &tracked, &SyncOptions::default())),
            [
                "Sync 0 apply Service/web",
                "Sync 1 prune Secret/third",
                "Sync 2 prune ConfigMap/second",
                "Sync 3 prune ConfigMap/first"
            ]
        );
        let last = tasks(&desired, &tracked, &SyncOptions { prune_last: true, ..Default::default() });
        assert!(last[1..].iter().all(|t| t.wave > 3 && matches!(t.action, Action::Prune(_))));
        assert_eq!(stages(&last, &[Phase::Sync]).len(), 2, "prunes form one final stage");
    }

    #[test]
    fn generate_name_hooks_are_keyed_by_their_prefix_and_hooks_are_never_pruned() {
        let mut hook = obj(
            "Job",
            "",
            json!({"argoproj.io/hook": "PreSync", "argoproj.io/hook-delete-policy": "HookSucceeded"}),
        );
        hook["metadata"].as_object_mut().unwrap().remove("name");
        hook["metadata"]["generateName"] = json!("migrate-");
        let old_run = obj("Job", "migrate-x1y2z", json!({"argoproj.io/hook": "PreSync"}));
        let tracked = vec![(ResourceKey::of(&old_run).unwrap(), Arc::new(old_run))];
        let tasks = tasks(&[hook], &tracked, &SyncOptions { prune: true, ..Default::default() });
        assert_eq!(names(&tasks), ["PreSync 0 hook Job/migrate-"]);
        match &tasks[0].action {
            Action::Hook { name, delete_policies, .. } => {
                assert_eq!(*name, HookName::Generated);
                assert_eq!(delete_policies, &[DeletePolicy::HookSucceeded]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_unnamed_hook_is_keyed_by_its_phases_and_named_per_phase_as_argo_cd_names_it() {
        let mut hook = obj("Pod", "", json!({"argocd.argoproj.io/hook": "PreSync,PostSync"}));
        hook["metadata"].as_object_mut().unwrap().remove("name");
        assert_eq!(desired_key(&hook).unwrap().name, "presync-postsync");
        assert_eq!(desired_key(&obj("Pod", "", json!({}))), None, "only a hook may go without a name");

        let mut tasks = tasks(&[hook], &[], &SyncOptions::default());
        assert_eq!(names(&tasks), ["PreSync 0 hook Pod/presync", "PostSync 0 hook Pod/postsync"]);
        name_hooks(&mut tasks, "0123456789abcdef", 1_733_000_000);
        assert_eq!(
            names(&tasks),
            [
                "PreSync 0 hook Pod/0123456-presync-1733000000",
                "PostSync 0 hook Pod/0123456-postsync-1733000000"
            ]
        );
        assert_eq!(tasks[0].object()["metadata"]["name"], "0123456-presync-1733000000");
        let annotations = tasks[0].object()["metadata"]["annotations"].as_object().unwrap();
        assert!(!annotations.contains_key(TRACKING_ANNOTATION), "an untracked hook stays untracked");
        // A revision shorter than 8 characters is kept whole (a chart version, say).
        let mut hook = obj("Job", "", json!({"argocd.argoproj.io/hook": "Sync"}));
        hook["metadata"].as_object_mut().unwrap().remove("name");
        let mut tasks = tasks_of(&[hook]);
        name_hooks(&mut tasks, "V1.2.0", 5);
        assert_eq!(tasks[0].key.name, "v1.2.0-sync-5");
    }

    #[test]
    fn named_and_generate_name_hooks_keep_their_names() {
        let named = obj("Job", "migrate", json!({"argocd.argoproj.io/hook": "PreSync"}));
        let mut generated = obj("Job", "", json!({"argocd.argoproj.io/hook": "PreSync"}));
        generated["metadata"].as_object_mut().unwrap().remove("name");
        generated["metadata"]["generateName"] = json!("seed-");
        let mut tasks = tasks_of(&[named, generated]);
        name_hooks(&mut tasks, "0123456789abcdef", 1);
        assert_eq!(names(&tasks), ["PreSync 0 hook Job/migrate", "PreSync 0 hook Job/seed-"]);
    }

    fn tasks_of(desired: &[serde_json::Value]) -> Vec<Task> {
        tasks(desired, &[], &SyncOptions::default())
    }

    #[test]
    fn a_resource_subset_runs_no_hooks() {
        let desired = vec![
            obj("Service", "web", json!({})),
            obj("Job", "m", json!({"argocd.argoproj.io/hook": "PreSync"})),
        ];
        let only = Some([ResourceKey::new("", "Service", "web", "web")].into_iter().collect());
        assert_eq!(
            names(&tasks(&desired, &[], &SyncOptions { only, ..Default::default() })),
            ["Sync 0 apply Service/web"]
        );
    }

    #[test]
    fn the_apply_strategy_runs_no_hooks() {
        let desired = vec![
            obj("Service", "web", json!({})),
            obj("Job", "m", json!({"argocd.argoproj.io/hook": "PreSync"})),
        ];
        assert_eq!(
            names(&tasks(&desired, &[], &SyncOptions { no_hooks: true, ..Default::default() })),
            ["Sync 0 apply Service/web"]
        );
        assert_eq!(tasks_of(&desired).len(), 2, "the hook strategy (the default) runs it");
    }

    #[test]
    fn helm_hook_weight_is_the_wave() {
        let desired = vec![
            obj("Job", "b", json!({"helm.sh/hook": "pre-upgrade", "helm.sh/hook-weight": "-2"})),
            obj("Job", "a", json!({"helm.sh/hook": "pre-install", "helm.sh/hook-weight": "5"})),
        ];
        assert_eq!(
            names(&tasks(&desired, &[], &SyncOptions::default())),
            ["PreSync -2 hook Job/b", "PreSync 5 hook Job/a"]
        );
    }
}

#[cfg(test)]
mod properties;
