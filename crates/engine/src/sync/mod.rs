//! Sync: the plan (phases, waves, kind order; hooks; prunes) and the resumable executor that advances an
//! operation one step per pass, from what the cluster and the operation's record say.
//!
//! `plan` orders the work, `hooks` reads hook annotations, `run` executes: each pass starts the next
//! stage when the previous one is applied, its hooks finished and its resources healthy.

pub mod hooks;
pub mod plan;
pub mod run;

use kube::api::PropagationPolicy;
use std::collections::HashSet;

use crate::apply;
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

pub(crate) fn kind_rank(kind: &str) -> usize {
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
    /// Prune after every other wave of the Sync phase (PruneLast=true); otherwise in reverse wave order.
    pub prune_last: bool,
    pub create_namespace: Option<ManagedNamespace>,
    /// Sync only these objects (a resource subset, which runs no hooks); `None` syncs all.
    pub only: Option<HashSet<ResourceKey>>,
    /// Objects left out (ApplyOutOfSyncOnly=true leaves out those already in sync).
    pub skip: HashSet<ResourceKey>,
    pub prune_propagation: Option<PropagationPolicy>,
    /// Replace=true, Force=true, Validate=false for every object (each can also ask by annotation).
    pub replace: bool,
    pub force: bool,
    pub no_validate: bool,
    /// SkipDryRunOnMissingResource=true: objects of kinds the cluster does not know yet are not dry-run.
    pub skip_dry_run_on_missing: bool,
    /// Objects already dry-run against the cluster with their current content (by the compare).
    pub verified: HashSet<ResourceKey>,
    /// Prune=confirm objects may be pruned (the Application carries argocd.argoproj.io/deletion-approved).
    pub prune_confirmed: bool,
    /// The client-side-apply managers whose fields berth's apply takes over (ClientSideApplyMigration).
    pub client_side: crate::managed_fields::ClientSideManagers,
    /// `ServerSideApply=true` for the whole app: results say `serverside-applied`, as Argo CD's.
    pub server_side: bool,
    /// The `apply` sync strategy (a rollback's): the objects are applied and no hook runs.
    pub no_hooks: bool,
    /// Objects the compare found already equal to git, with the resourceVersion it saw: while the live
    /// object still has it, the sync does not write it (`unchanged`), so taking over an estate or syncing
    /// an app in sync writes nothing.
    pub in_sync: std::collections::HashMap<ResourceKey, String>,
}

impl SyncOptions {
    /// The apply mode for one object: the operation's options and the object's own annotation.
    pub fn mode_for(&self, obj: &serde_json::Value) -> apply::ApplyMode {
        apply::ApplyMode {
            dry_run: self.dry_run,
            validate: !(self.no_validate || has_sync_option(obj, "Validate=false")),
            replace: self.replace || has_sync_option(obj, "Replace=true"),
            force: self.force || has_sync_option(obj, "Force=true"),
            client_side: self.client_side.clone(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutcomeStatus {
    Synced,
    SyncFailed,
    Pruned,
    PruneSkipped,
}

impl OutcomeStatus {
    pub fn parse(s: &str) -> Option<OutcomeStatus> {
        [OutcomeStatus::Synced, OutcomeStatus::SyncFailed, OutcomeStatus::Pruned, OutcomeStatus::PruneSkipped]
            .into_iter()
            .find(|o| o.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeStatus::Synced => "Synced",
            OutcomeStatus::SyncFailed => "SyncFailed",
            OutcomeStatus::Pruned => "Pruned",
            OutcomeStatus::PruneSkipped => "PruneSkipped",
        }
    }
}

/// Creates (or labels) the destination namespace for CreateNamespace=true; `None` when nothing was needed.
/// As in Argo CD, its result belongs to the PreSync phase and says what the write did to it.
pub(crate) async fn ensure_namespace(
    world: &impl run::World,
    ns: &ManagedNamespace,
    dry_run: bool,
) -> Option<Record> {
    let key = ResourceKey::new("", "Namespace", "", &ns.name);
    let gk = GroupKind { group: String::new(), kind: "Namespace".into() };
    let record = |status, message| Record {
        hook_phase: Some(run::resource_phase(status, dry_run)),
        ..Record::resource(&key, "v1", hooks::Phase::PreSync, status, message)
    };
    let info = match world.kind(&gk).await {
        Ok(info) => info,
        Err(e) => return Some(record(OutcomeStatus::SyncFailed, e.to_string())),
    };
    let before = if world.exists(&key).await { world.live(&key) } else { None };
    if before.is_some() && ns.labels.is_empty() && ns.annotations.is_empty() {
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
    let mode = apply::ApplyMode { dry_run, ..Default::default() };
    Some(match world.apply(&info, &body, mode.clone()).await {
        Ok(stored) => {
            let message = run::applied_message(&key, before.as_deref(), &stored, &mode, false);
            record(OutcomeStatus::Synced, message)
        }
        Err(e) => record(OutcomeStatus::SyncFailed, api_message(&e)),
    })
}

/// What the operation has done to one task, as recorded in its result (Argo CD's ResourceResult).
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// The object's key (a generateName hook's actual name once created).
    pub key: ResourceKey,
    pub version: String,
    pub phase: hooks::Phase,
    pub hook: bool,
    pub status: OutcomeStatus,
    pub hook_phase: Option<HookPhase>,
    pub message: String,
    /// The container images of the object (Argo CD's `images` of a ResourceResult).
    pub images: Vec<String>,
}

impl Record {
    pub fn resource(
        key: &ResourceKey,
        version: &str,
        phase: hooks::Phase,
        status: OutcomeStatus,
        message: String,
    ) -> Record {
        Record {
            key: key.clone(),
            version: version.into(),
            phase,
            hook: false,
            status,
            hook_phase: None,
            message,
            images: Vec::new(),
        }
    }

    pub fn failed(&self) -> bool {
        self.status == OutcomeStatus::SyncFailed || self.hook_phase == Some(HookPhase::Failed)
    }
}

/// A hook's own progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookPhase {
    Running,
    Succeeded,
    Failed,
}

impl HookPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            HookPhase::Running => "Running",
            HookPhase::Succeeded => "Succeeded",
            HookPhase::Failed => "Failed",
        }
    }
    pub fn parse(s: &str) -> Option<HookPhase> {
        match s {
            "Running" | "Pending" => Some(HookPhase::Running),
            "Succeeded" => Some(HookPhase::Succeeded),
            "Failed" | "Error" => Some(HookPhase::Failed),
            _ => None,
        }
    }
}

pub(crate) fn version_of(obj: &serde_json::Value) -> String {
    crate::resource::split_api_version(obj["apiVersion"].as_str().unwrap_or_default()).1.to_string()
}

pub fn describe(key: &ResourceKey) -> String {
    let kind = key.kind.to_lowercase();
    if key.group.is_empty() {
        format!("{kind}/{}", key.name)
    } else {
        format!("{kind}.{}/{}", key.group, key.name)
    }
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

    #[test]
    fn the_seeds_wave_spelling_is_read() {
        let seed = json!({"metadata": {"annotations": {"argoproj.io/sync-wave": "2"}}});
        assert_eq!(sync_wave(&seed), 2);
        let argo = json!({"metadata": {"annotations": {"argocd.argoproj.io/sync-wave": "-3"}}});
        assert_eq!(sync_wave(&argo), -3);
        assert_eq!(sync_wave(&json!({})), 0);
    }

    #[test]
    fn sync_options_are_read_from_the_annotation() {
        let o = json!({"metadata": {"annotations": {"argocd.argoproj.io/sync-options": "ServerSideApply=true, Prune=false,Replace=true"}}});
        assert!(has_sync_option(&o, "Prune=false"));
        assert!(!has_sync_option(&o, "Delete=false"));
        let mode = SyncOptions::default().mode_for(&o);
        assert!(mode.replace && mode.validate && !mode.force);
        let strict_off = SyncOptions { no_validate: true, ..Default::default() }.mode_for(&json!({}));
        assert!(!strict_off.validate);
    }
}
