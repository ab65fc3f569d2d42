//! The sync executor: applies the desired objects in Argo CD's order (sync wave, then kind, then name),
//! creates the destination namespace when asked, and prunes what left git. Waiting on health between
//! waves and hooks come with the sync-phase work; this is the ordered apply and prune.

use kube::api::PropagationPolicy;
use std::collections::HashSet;
use std::sync::Arc;

use crate::apply;
use crate::cache::ClusterCache;
use crate::resource::{GroupKind, ResourceKey};

/// Argo CD's kind order within a wave; other kinds (and custom resources) come after these.
pub const KIND_ORDER: &[&str] = &[
    "Namespace",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodSecurityPolicy",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "SecretList",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleList",
    "ClusterRoleBinding",
    "ClusterRoleBindingList",
    "Role",
    "RoleList",
    "RoleBinding",
    "RoleBindingList",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
    "APIService",
];

/// The annotations that set an object's wave: Argo CD's key, and the seed document's spelling.
pub const SYNC_WAVE_ANNOTATIONS: &[&str] = &["argocd.argoproj.io/sync-wave", "argoproj.io/sync-wave"];
pub const SYNC_OPTIONS_ANNOTATION: &str = "argocd.argoproj.io/sync-options";

/// An object's sync wave (0 unless annotated).
pub fn sync_wave(obj: &serde_json::Value) -> i64 {
    let annotations = &obj["metadata"]["annotations"];
    SYNC_WAVE_ANNOTATIONS
        .iter()
        .find_map(|a| annotations[*a].as_str())
        .and_then(|w| w.trim().parse().ok())
        .unwrap_or(0)
}

fn kind_rank(kind: &str) -> usize {
    KIND_ORDER.iter().position(|k| *k == kind).unwrap_or(KIND_ORDER.len())
}

/// Whether an object's `argocd.argoproj.io/sync-options` annotation holds `option` (e.g. `Prune=false`).
pub fn has_sync_option(obj: &serde_json::Value, option: &str) -> bool {
    obj["metadata"]["annotations"][SYNC_OPTIONS_ANNOTATION]
        .as_str()
        .is_some_and(|v| v.split(',').any(|o| o.trim().eq_ignore_ascii_case(option)))
}

/// The namespace to create before applying (CreateNamespace=true), with managedNamespaceMetadata.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ManagedNamespace {
    pub name: String,
    pub labels: serde_json::Map<String, serde_json::Value>,
    pub annotations: serde_json::Map<String, serde_json::Value>,
}

#[derive(Clone, Debug, Default)]
pub struct SyncOptions {
    pub prune: bool,
    pub dry_run: bool,
    /// Prune after every apply has succeeded (PruneLast=true); otherwise prune in the wave order too.
    pub prune_last: bool,
    pub create_namespace: Option<ManagedNamespace>,
    /// Sync only these objects (a resource subset); `None` syncs all.
    pub only: Option<HashSet<ResourceKey>>,
    pub prune_propagation: Option<PropagationPolicy>,
}

/// What happened to one object.
#[derive(Clone, Debug, PartialEq)]
pub struct ResourceOutcome {
    pub key: ResourceKey,
    pub version: String,
    pub status: OutcomeStatus,
    pub message: String,
    /// The object the server stored (applies only), for reading one's own writes before the watch has it.
    pub stored: Option<Arc<serde_json::Value>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutcomeStatus {
    Synced,
    SyncFailed,
    Pruned,
    PruneSkipped,
}

impl OutcomeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeStatus::Synced => "Synced",
            OutcomeStatus::SyncFailed => "SyncFailed",
            OutcomeStatus::Pruned => "Pruned",
            OutcomeStatus::PruneSkipped => "PruneSkipped",
        }
    }
}

/// One planned step.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    Apply { key: ResourceKey, object: serde_json::Value },
    Prune { key: ResourceKey, live: Arc<serde_json::Value> },
}

impl Step {
    fn key(&self) -> &ResourceKey {
        match self {
            Step::Apply { key, .. } | Step::Prune { key, .. } => key,
        }
    }
    fn object(&self) -> &serde_json::Value {
        match self {
            Step::Apply { object, .. } => object,
            Step::Prune { live, .. } => live,
        }
    }
}

/// The ordered steps: applies by (wave, kind, name); prunes in reverse wave order after them when
/// `prune_last`, else interleaved by wave, as Argo CD does.
pub fn plan(
    desired: &[serde_json::Value],
    tracked: &[(ResourceKey, Arc<serde_json::Value>)],
    opts: &SyncOptions,
) -> Vec<Step> {
    let wanted: HashSet<ResourceKey> = desired.iter().filter_map(ResourceKey::of).collect();
    let selected = |k: &ResourceKey| opts.only.as_ref().is_none_or(|only| only.contains(k));
    let mut applies: Vec<Step> = desired
        .iter()
        .filter_map(|o| Some(Step::Apply { key: ResourceKey::of(o)?, object: o.clone() }))
        .filter(|s| selected(s.key()))
        .collect();
    applies.sort_by_key(order_key);
    let mut prunes: Vec<Step> = tracked
        .iter()
        .filter(|(k, _)| !wanted.contains(k) && selected(k))
        .map(|(k, live)| Step::Prune { key: k.clone(), live: live.clone() })
        .collect();
    // Prune in reverse order: dependants (higher waves, later kinds) go first.
    prunes.sort_by_key(|s| std::cmp::Reverse(order_key(s)));
    if opts.prune_last {
        applies.extend(prunes);
        return applies;
    }
    let mut steps = applies;
    steps.extend(prunes);
    steps.sort_by_key(|s| sync_wave(s.object()));
    steps
}

fn order_key(step: &Step) -> (i64, usize, String, String) {
    let key = step.key();
    (sync_wave(step.object()), kind_rank(&key.kind), key.namespace.clone(), key.name.clone())
}

/// Runs a plan against the cluster. Every step is attempted; a failed apply fails the sync but does not
/// stop independent objects in later steps from being applied (as Argo CD's apply phase does), and
/// nothing is pruned once an apply has failed.
pub async fn execute(
    client: &kube::Client,
    cache: &ClusterCache,
    steps: &[Step],
    opts: &SyncOptions,
) -> Vec<ResourceOutcome> {
    let mut outcomes = Vec::new();
    if let Some(ns) = &opts.create_namespace
        && let Some(outcome) = ensure_namespace(client, cache, ns, opts.dry_run).await
    {
        outcomes.push(outcome);
    }
    let mut apply_failed = outcomes.iter().any(|o| o.status == OutcomeStatus::SyncFailed);
    // In a dry run nothing is created, so objects in a namespace this sync creates cannot be checked by
    // the server; like Argo CD, they pass with a note instead of failing.
    let created_namespaces: HashSet<String> = opts
        .create_namespace
        .iter()
        .map(|n| n.name.clone())
        .chain(steps.iter().filter_map(|s| match s {
            Step::Apply { key, .. } if key.kind == "Namespace" && key.group.is_empty() => {
                Some(key.name.clone())
            }
            _ => None,
        }))
        .collect();
    for step in steps {
        let key = step.key().clone();
        let version = version_of(step.object());
        let outcome = match step {
            Step::Apply { object, .. } => match cache.kind(&key.group_kind()).await {
                Err(e) => failed(&key, version, e.to_string()),
                Ok(info) => match apply::apply(client, &info, object, opts.dry_run).await {
                    Ok(stored) => {
                        let verb =
                            if opts.dry_run { "serverside-applied (dry run)" } else { "serverside-applied" };
                        ResourceOutcome {
                            message: format!("{} {verb}", describe(&key)),
                            key,
                            version,
                            status: OutcomeStatus::Synced,
                            stored: Some(Arc::new(stored)),
                        }
                    }
                    Err(e)
                        if opts.dry_run
                            && is_not_found(&e)
                            && created_namespaces.contains(&key.namespace) =>
                    {
                        ResourceOutcome {
                            message: format!(
                                "{} would be applied (dry run; namespace {} is created by this sync)",
                                describe(&key),
                                key.namespace
                            ),
                            key,
                            version,
                            status: OutcomeStatus::Synced,
                            stored: None,
                        }
                    }
                    Err(e) => failed(&key, version, api_message(&e)),
                },
            },
            Step::Prune { live, .. } => {
                if !opts.prune || has_sync_option(live, "Prune=false") {
                    let why = if opts.prune { "Prune=false annotation" } else { "prune is disabled" };
                    ResourceOutcome {
                        key,
                        version,
                        status: OutcomeStatus::PruneSkipped,
                        message: format!("ignored (requires pruning; {why})"),
                        stored: None,
                    }
                } else if apply_failed {
                    ResourceOutcome {
                        key,
                        version,
                        status: OutcomeStatus::PruneSkipped,
                        message: "not pruned: an earlier apply failed".into(),
                        stored: None,
                    }
                } else {
                    let policy = opts.prune_propagation.clone().unwrap_or(PropagationPolicy::Foreground);
                    match cache.kind(&key.group_kind()).await {
                        Err(e) => failed(&key, version, e.to_string()),
                        Ok(info) => match apply::delete(client, &info, &key, policy, opts.dry_run).await {
                            Ok(()) => ResourceOutcome {
                                message: format!(
                                    "{} pruned{}",
                                    describe(&key),
                                    if opts.dry_run { " (dry run)" } else { "" }
                                ),
                                key,
                                version,
                                status: OutcomeStatus::Pruned,
                                stored: None,
                            },
                            Err(e) => failed(&key, version, api_message(&e)),
                        },
                    }
                }
            }
        };
        if outcome.status == OutcomeStatus::SyncFailed {
            apply_failed = true;
        }
        outcomes.push(outcome);
    }
    outcomes
}

async fn ensure_namespace(
    client: &kube::Client,
    cache: &ClusterCache,
    ns: &ManagedNamespace,
    dry_run: bool,
) -> Option<ResourceOutcome> {
    let key = ResourceKey::new("", "Namespace", "", &ns.name);
    let gk = GroupKind { group: String::new(), kind: "Namespace".into() };
    let info = match cache.kind(&gk).await {
        Ok(info) => info,
        Err(e) => return Some(failed(&key, "v1".into(), e.to_string())),
    };
    let exists = cache.ensure_watched(&gk).await.is_ok() && cache.get(&key).is_some();
    if exists && ns.labels.is_empty() && ns.annotations.is_empty() {
        return None;
    }
    let mut metadata = serde_json::json!({"name": ns.name});
    if !ns.labels.is_empty() {
        metadata["labels"] = ns.labels.clone().into();
    }
    if !ns.annotations.is_empty() {
        metadata["annotations"] = ns.annotations.clone().into();
    }
    let body = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": metadata});
    Some(match apply::apply(client, &info, &body, dry_run).await {
        Ok(_) => ResourceOutcome {
            message: format!("namespace/{} serverside-applied", ns.name),
            key,
            version: "v1".into(),
            status: OutcomeStatus::Synced,
            stored: None,
        },
        Err(e) => failed(&key, "v1".into(), api_message(&e)),
    })
}

fn failed(key: &ResourceKey, version: String, message: String) -> ResourceOutcome {
    ResourceOutcome { key: key.clone(), version, status: OutcomeStatus::SyncFailed, message, stored: None }
}

fn version_of(obj: &serde_json::Value) -> String {
    crate::resource::split_api_version(obj["apiVersion"].as_str().unwrap_or_default()).1.to_string()
}

fn describe(key: &ResourceKey) -> String {
    let kind = key.kind.to_lowercase();
    if key.group.is_empty() {
        format!("{kind}/{}", key.name)
    } else {
        format!("{kind}.{}/{}", key.group, key.name)
    }
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// The API server's own message (it names the field), without the HTTP wrapping.
pub fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(kind: &str, name: &str, wave: Option<&str>) -> serde_json::Value {
        let api = if kind == "Deployment" { "apps/v1" } else { "v1" };
        let mut o = json!({"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": "web"}});
        if let Some(w) = wave {
            o["metadata"]["annotations"] = json!({"argoproj.io/sync-wave": w});
        }
        o
    }

    fn keys(steps: &[Step]) -> Vec<String> {
        steps
            .iter()
            .map(|s| match s {
                Step::Apply { key, .. } => format!("apply {}/{}", key.kind, key.name),
                Step::Prune { key, .. } => format!("prune {}/{}", key.kind, key.name),
            })
            .collect()
    }

    #[test]
    fn applies_go_by_wave_then_kind_then_name() {
        let desired = vec![
            obj("Deployment", "web", None),
            obj("Service", "web", None),
            obj("ConfigMap", "b", Some("-1")),
            obj("Namespace", "a", Some("1")),
        ];
        let steps = plan(&desired, &[], &SyncOptions::default());
        assert_eq!(
            keys(&steps),
            ["apply ConfigMap/b", "apply Service/web", "apply Deployment/web", "apply Namespace/a"]
        );
    }

    #[test]
    fn objects_that_left_git_are_pruned_last_with_prune_last() {
        let desired = vec![obj("Service", "web", None)];
        let gone = obj("ConfigMap", "old", None);
        let tracked = vec![
            (ResourceKey::of(&gone).unwrap(), Arc::new(gone)),
            (ResourceKey::of(&desired[0]).unwrap(), Arc::new(desired[0].clone())),
        ];
        let steps = plan(&desired, &tracked, &SyncOptions { prune_last: true, ..Default::default() });
        assert_eq!(keys(&steps), ["apply Service/web", "prune ConfigMap/old"]);
    }

    #[test]
    fn a_resource_subset_limits_the_plan() {
        let desired = vec![obj("Service", "web", None), obj("ConfigMap", "cfg", None)];
        let only = Some([ResourceKey::new("", "ConfigMap", "web", "cfg")].into_iter().collect());
        assert_eq!(
            keys(&plan(&desired, &[], &SyncOptions { only, ..Default::default() })),
            ["apply ConfigMap/cfg"]
        );
    }

    #[test]
    fn the_seeds_wave_spelling_is_read() {
        assert_eq!(sync_wave(&obj("Namespace", "a", Some("2"))), 2);
        let argo = json!({"metadata": {"annotations": {"argocd.argoproj.io/sync-wave": "-3"}}});
        assert_eq!(sync_wave(&argo), -3);
    }

    #[test]
    fn prune_false_sync_option_is_read() {
        let o = json!({"metadata": {"annotations": {"argocd.argoproj.io/sync-options": "ServerSideApply=true, Prune=false"}}});
        assert!(has_sync_option(&o, "Prune=false"));
        assert!(!has_sync_option(&o, "Delete=false"));
    }
}
