//! Properties of the plan for any set of objects: the run order, namespaces first, prunes mirrored or last.

use proptest::prelude::*;
use serde_json::{Value, json};
use std::sync::Arc;

use super::*;
use crate::sync::KIND_ORDER;

const KINDS: &[(&str, &str)] = &[
    ("v1", "Namespace"),
    ("v1", "ConfigMap"),
    ("v1", "Service"),
    ("apps/v1", "Deployment"),
    ("batch/v1", "Job"),
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
    ("example.com/v1", "Widget"),
];
const NAMES: &[&str] = &["a", "b", "web"];
const HOOKS: &[Option<&str>] =
    &[None, None, None, Some("PreSync"), Some("PostSync"), Some("SyncFail"), Some("Skip")];

/// An object of a random kind, name, namespace, wave and (maybe) hook.
fn object() -> impl Strategy<Value = Value> {
    (0..KINDS.len(), 0..NAMES.len(), 0..NAMES.len(), -3i64..4, 0..HOOKS.len(), any::<bool>()).prop_map(
        |(kind, name, namespace, wave, hook, prune_last)| {
            let (api_version, kind) = KINDS[kind];
            let mut annotations = json!({"argocd.argoproj.io/sync-wave": wave.to_string()});
            if let Some(hook) = HOOKS[hook] {
                annotations["argocd.argoproj.io/hook"] = hook.into();
            }
            if prune_last {
                annotations["argocd.argoproj.io/sync-options"] = "PruneLast=true".into();
            }
            let namespace = if kind == "Namespace" { "" } else { NAMES[namespace] };
            json!({"apiVersion": api_version, "kind": kind,
                   "metadata": {"name": NAMES[name], "namespace": namespace, "annotations": annotations}})
        },
    )
}

fn plan(desired: &[Value], live: &[Value], prune_last: bool) -> Vec<Task> {
    // Live objects get a name of their own, so some are left out of git and pruned.
    let tracked: Vec<(ResourceKey, Arc<Value>)> = live
        .iter()
        .map(|o| {
            let mut o = o.clone();
            o["metadata"]["name"] = format!("live-{}", o["metadata"]["name"].as_str().unwrap()).into();
            (ResourceKey::of(&o).unwrap(), Arc::new(o))
        })
        .collect();
    tasks(desired, &tracked, &SyncOptions { prune: true, prune_last, ..Default::default() })
}

/// The run order the plan promises, stated from Argo CD's kind list (unlisted kinds after every listed one).
fn promised_order(t: &Task) -> (Phase, i64, usize, String, String) {
    let kind = KIND_ORDER.iter().position(|k| *k == t.key.kind).unwrap_or(KIND_ORDER.len());
    (t.phase, t.wave, kind, t.key.namespace.clone(), t.key.name.clone())
}

fn is_prune(t: &Task) -> bool {
    matches!(t.action, Action::Prune(_))
}

proptest! {
    #[test]
    fn tasks_run_by_phase_then_wave_then_kind_then_name(
        desired in prop::collection::vec(object(), 0..12),
        live in prop::collection::vec(object(), 0..6),
        prune_last in any::<bool>(),
    ) {
        let tasks = plan(&desired, &live, prune_last);
        for pair in tasks.windows(2) {
            prop_assert!(promised_order(&pair[0]) <= promised_order(&pair[1]), "{:?} before {:?}", pair[0].key, pair[1].key);
        }
    }

    #[test]
    fn a_namespace_is_applied_before_what_lives_in_it_within_a_wave(
        desired in prop::collection::vec(object(), 0..12),
    ) {
        let tasks = plan(&desired, &[], false);
        for (i, ns) in tasks.iter().enumerate().filter(|(_, t)| t.key.kind == "Namespace" && !t.is_hook()) {
            for (j, inside) in tasks.iter().enumerate() {
                let same_stage = (inside.phase, inside.wave) == (ns.phase, ns.wave);
                if same_stage && inside.key.namespace == ns.key.name && inside.key.kind != "Namespace" {
                    prop_assert!(i < j, "{:?} before its namespace {:?}", inside.key, ns.key);
                }
            }
        }
    }

    #[test]
    fn with_prune_last_every_prune_follows_every_apply(
        desired in prop::collection::vec(object(), 0..12),
        live in prop::collection::vec(object(), 0..6),
    ) {
        let tasks = plan(&desired, &live, true);
        let last_apply = tasks.iter().rposition(|t| t.phase == Phase::Sync && !is_prune(t));
        let first_prune = tasks.iter().position(is_prune);
        if let (Some(apply), Some(prune)) = (last_apply, first_prune) {
            prop_assert!(apply < prune);
        }
    }

    #[test]
    fn prunes_run_in_reverse_order_of_their_waves(
        live in prop::collection::vec(object(), 0..8),
    ) {
        let live: Vec<Value> = live
            .into_iter()
            .map(|mut o| {
                o["metadata"]["annotations"].as_object_mut().unwrap().remove("argocd.argoproj.io/sync-options");
                o
            })
            .collect();
        let tasks = plan(&[], &live, false);
        let prunes: Vec<&Task> = tasks.iter().filter(|t| is_prune(t)).collect();
        for a in &prunes {
            for b in &prunes {
                if sync_wave(a.object()) < sync_wave(b.object()) {
                    prop_assert!(a.wave > b.wave, "{:?} (wave {}) should run after {:?}", a.key, a.wave, b.key);
                }
            }
        }
    }

    #[test]
    fn hooks_are_never_pruned_and_skipped_objects_never_run(
        desired in prop::collection::vec(object(), 0..12),
        live in prop::collection::vec(object(), 0..6),
    ) {
        let tasks = plan(&desired, &live, false);
        for t in &tasks {
            if is_prune(t) {
                prop_assert!(!hooks::is_hook(t.object()), "hook {:?} pruned", t.key);
            }
            prop_assert!(
                t.object()["metadata"]["annotations"]["argocd.argoproj.io/hook"] != "Skip",
                "{:?} is Skip", t.key
            );
        }
    }

    #[test]
    fn stages_partition_the_tasks_of_their_phases_in_run_order(
        desired in prop::collection::vec(object(), 0..12),
        live in prop::collection::vec(object(), 0..6),
        prune_last in any::<bool>(),
    ) {
        let tasks = plan(&desired, &live, prune_last);
        let phases = [Phase::PreSync, Phase::Sync, Phase::PostSync];
        let stages = stages(&tasks, &phases);
        for pair in stages.windows(2) {
            prop_assert!(pair[0].0 < pair[1].0, "stages out of order: {:?} then {:?}", pair[0].0, pair[1].0);
        }
        let mut covered: Vec<usize> = Vec::new();
        for ((phase, wave), items) in &stages {
            for i in items {
                prop_assert_eq!((tasks[*i].phase, tasks[*i].wave), (*phase, *wave));
            }
            covered.extend(items);
        }
        covered.sort_unstable();
        let expected: Vec<usize> = (0..tasks.len()).filter(|i| phases.contains(&tasks[*i].phase)).collect();
        prop_assert_eq!(covered, expected);
    }
}
