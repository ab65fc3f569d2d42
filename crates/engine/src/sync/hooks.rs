//! Hooks: objects that run at a point of a sync instead of being kept equal to git. Argo CD's annotations
//! (and the seed document's `argoproj.io/…` spelling of them) and Helm's hook annotations, which Argo CD maps
//! onto its own.

use std::fmt;

pub const HOOK_ANNOTATIONS: &[&str] = &["argocd.argoproj.io/hook", "argoproj.io/hook"];
pub const DELETE_POLICY_ANNOTATIONS: &[&str] =
    &["argocd.argoproj.io/hook-delete-policy", "argoproj.io/hook-delete-policy"];
pub const HELM_HOOK: &str = "helm.sh/hook";
pub const HELM_HOOK_WEIGHT: &str = "helm.sh/hook-weight";
pub const HELM_DELETE_POLICY: &str = "helm.sh/hook-delete-policy";
/// Written by berth on every hook it creates: which operation and task created it, so a sync resumed after
/// a restart finds the hooks it already ran instead of running them again.
pub const HOOK_RUN_ANNOTATION: &str = "berth.dev/hook-run";

/// The phases of a sync, in the order they run (SyncFail only when an earlier one failed; PreDelete and
/// PostDelete only when the Application is deleted).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    PreSync,
    Sync,
    PostSync,
    SyncFail,
    PreDelete,
    PostDelete,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::PreSync => "PreSync",
            Phase::Sync => "Sync",
            Phase::PostSync => "PostSync",
            Phase::SyncFail => "SyncFail",
            Phase::PreDelete => "PreDelete",
            Phase::PostDelete => "PostDelete",
        }
    }

    pub fn parse(s: &str) -> Option<Phase> {
        [Phase::PreSync, Phase::Sync, Phase::PostSync, Phase::SyncFail, Phase::PreDelete, Phase::PostDelete]
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s.trim()))
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an object's hook annotations say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HookKind {
    /// Not a hook: a resource kept equal to git.
    Resource,
    /// A hook for these phases.
    Hook(Vec<Phase>),
    /// `Skip` (or a Helm hook Argo CD does not run, such as `test`): never applied.
    Skip,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeletePolicy {
    HookSucceeded,
    HookFailed,
    BeforeHookCreation,
}

fn annotation<'a>(obj: &'a serde_json::Value, keys: &[&str]) -> Option<&'a str> {
    let annotations = &obj["metadata"]["annotations"];
    keys.iter().find_map(|k| annotations[*k].as_str())
}

fn split(v: &str) -> impl Iterator<Item = &str> {
    v.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// Reads an object's hook annotations: Argo CD's (and the seed's alias) win over Helm's.
pub fn hook_kind(obj: &serde_json::Value) -> HookKind {
    if let Some(v) = annotation(obj, HOOK_ANNOTATIONS) {
        let mut phases = Vec::new();
        for item in split(v) {
            if item.eq_ignore_ascii_case("Skip") {
                return HookKind::Skip;
            }
            if let Some(p) = Phase::parse(item)
                && !phases.contains(&p)
            {
                phases.push(p);
            }
        }
        return if phases.is_empty() { HookKind::Resource } else { HookKind::Hook(phases) };
    }
    if let Some(v) = annotation(obj, &[HELM_HOOK]) {
        let mut phases = Vec::new();
        let mut any = false;
        for item in split(v) {
            any = true;
            let phase = match item {
                "pre-install" | "pre-upgrade" => Some(Phase::PreSync),
                "post-install" | "post-upgrade" => Some(Phase::PostSync),
                "pre-delete" => Some(Phase::PreDelete),
                "post-delete" => Some(Phase::PostDelete),
                // Helm 2's crd-install: an ordinary resource, as in Argo CD.
                "crd-install" => return HookKind::Resource,
                _ => None, // test, pre-rollback, post-rollback: Argo CD does not run them
            };
            if let Some(p) = phase
                && !phases.contains(&p)
            {
                phases.push(p);
            }
        }
        return match (any, phases.is_empty()) {
            (false, _) => HookKind::Resource,
            (true, true) => HookKind::Skip,
            (true, false) => HookKind::Hook(phases),
        };
    }
    HookKind::Resource
}

/// Whether the object is a hook of any phase (or a skipped one): hooks are never compared or pruned.
pub fn is_hook(obj: &serde_json::Value) -> bool {
    hook_kind(obj) != HookKind::Resource
}

/// The hook's delete policies; BeforeHookCreation when none is given, as in Argo CD.
pub fn delete_policies(obj: &serde_json::Value) -> Vec<DeletePolicy> {
    let mut out = Vec::new();
    if let Some(v) = annotation(obj, DELETE_POLICY_ANNOTATIONS) {
        for item in split(v) {
            match item {
                "HookSucceeded" => out.push(DeletePolicy::HookSucceeded),
                "HookFailed" => out.push(DeletePolicy::HookFailed),
                "BeforeHookCreation" => out.push(DeletePolicy::BeforeHookCreation),
                _ => {}
            }
        }
    } else if let Some(v) = annotation(obj, &[HELM_DELETE_POLICY]) {
        for item in split(v) {
            match item {
                "hook-succeeded" => out.push(DeletePolicy::HookSucceeded),
                "hook-failed" => out.push(DeletePolicy::HookFailed),
                "before-hook-creation" => out.push(DeletePolicy::BeforeHookCreation),
                _ => {}
            }
        }
    }
    if out.is_empty() {
        out.push(DeletePolicy::BeforeHookCreation);
    }
    out
}

/// Helm's hook weight, which Argo CD reads as the hook's wave when no sync-wave is set.
pub fn helm_weight(obj: &serde_json::Value) -> Option<i64> {
    annotation(obj, &[HELM_HOOK_WEIGHT]).and_then(|w| w.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn annotated(pairs: &[(&str, &str)]) -> serde_json::Value {
        let map: serde_json::Map<String, serde_json::Value> =
            pairs.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
        json!({"metadata": {"annotations": map}})
    }

    #[test]
    fn argo_cd_and_seed_spellings_name_the_phases() {
        assert_eq!(
            hook_kind(&annotated(&[("argoproj.io/hook", "PreSync")])),
            HookKind::Hook(vec![Phase::PreSync])
        );
        assert_eq!(
            hook_kind(&annotated(&[("argocd.argoproj.io/hook", "PostSync, SyncFail")])),
            HookKind::Hook(vec![Phase::PostSync, Phase::SyncFail])
        );
        assert_eq!(hook_kind(&annotated(&[("argocd.argoproj.io/hook", "Skip")])), HookKind::Skip);
        assert_eq!(hook_kind(&json!({"metadata": {}})), HookKind::Resource);
    }

    #[test]
    fn helm_hooks_map_onto_argo_cd_phases() {
        assert_eq!(
            hook_kind(&annotated(&[("helm.sh/hook", "pre-install,pre-upgrade")])),
            HookKind::Hook(vec![Phase::PreSync])
        );
        assert_eq!(
            hook_kind(&annotated(&[("helm.sh/hook", "post-upgrade")])),
            HookKind::Hook(vec![Phase::PostSync])
        );
        assert_eq!(hook_kind(&annotated(&[("helm.sh/hook", "test")])), HookKind::Skip);
        assert_eq!(hook_kind(&annotated(&[("helm.sh/hook", "crd-install")])), HookKind::Resource);
        // Argo CD's own annotation wins.
        assert_eq!(
            hook_kind(&annotated(&[("helm.sh/hook", "pre-install"), ("argocd.argoproj.io/hook", "Sync")])),
            HookKind::Hook(vec![Phase::Sync])
        );
        assert_eq!(helm_weight(&annotated(&[("helm.sh/hook-weight", "-5")])), Some(-5));
    }

    #[test]
    fn delete_policies_default_to_before_hook_creation() {
        assert_eq!(delete_policies(&json!({})), [DeletePolicy::BeforeHookCreation]);
        assert_eq!(
            delete_policies(&annotated(&[("argoproj.io/hook-delete-policy", "HookSucceeded")])),
            [DeletePolicy::HookSucceeded]
        );
        assert_eq!(
            delete_policies(&annotated(&[(
                "helm.sh/hook-delete-policy",
                "hook-failed,before-hook-creation"
            )])),
            [DeletePolicy::HookFailed, DeletePolicy::BeforeHookCreation]
        );
    }
}
