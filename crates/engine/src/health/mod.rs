//! Health assessment with Argo CD's statuses, messages and order; one module a kind, and in `known` one a
//! family of well-known custom kinds (cert-manager, Argo Rollouts, Crossplane, Flux ...), checked after the
//! core kinds as Argo CD checks the ones it ships. Kinds without an assessment have no health and do not count
//! towards the application's. [`HealthOverrides`] adds the Lua scripts of argocd-cm in front of all of them.
//!
//! ```
//! use berth_engine::health::{self, HealthStatus};
//! let pvc = serde_json::json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "status": {"phase": "Bound"}});
//! assert_eq!(health::assess(&pvc).map(|h| h.status), Some(HealthStatus::Healthy));
//! ```

mod apiservice;
mod crd;
mod daemonset;
mod deployment;
mod hpa;
mod ingress;
mod job;
mod known;
pub mod lua;
mod pod;
mod pvc;
mod replicaset;
mod service;
mod statefulset;

pub use lua::{HealthOverrides, HealthScriptError};

use serde::{Deserialize, Serialize};
use std::fmt;

/// `argocd.argoproj.io/ignore-healthcheck: "true"`: the object's health is not assessed and does not count.
pub const IGNORE_HEALTHCHECK_ANNOTATION: &str = "argocd.argoproj.io/ignore-healthcheck";

/// A hook being cleaned up keeps this finalizer; its health stays that of its last state.
const HOOK_FINALIZER: &str = "argocd.argoproj.io/hook-finalizer";

/// Argo CD's health codes, ordered from best to worst: the worst child decides an application's health.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum HealthStatus {
    Healthy,
    Suspended,
    Progressing,
    Missing,
    Degraded,
    Unknown,
}

impl HealthStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Healthy => "Healthy",
            HealthStatus::Suspended => "Suspended",
            HealthStatus::Progressing => "Progressing",
            HealthStatus::Missing => "Missing",
            HealthStatus::Degraded => "Degraded",
            HealthStatus::Unknown => "Unknown",
        }
    }

    /// The status named `name` exactly as Argo CD writes it.
    pub fn parse(name: &str) -> Option<Self> {
        [
            HealthStatus::Healthy,
            HealthStatus::Suspended,
            HealthStatus::Progressing,
            HealthStatus::Missing,
            HealthStatus::Degraded,
            HealthStatus::Unknown,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
    }
}

impl fmt::Display for HealthStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A health status and the reason for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Health {
    pub status: HealthStatus,
    pub message: String,
}

impl Health {
    pub fn new(status: HealthStatus, message: impl Into<String>) -> Self {
        Health { status, message: message.into() }
    }
    pub fn healthy() -> Self {
        Health::new(HealthStatus::Healthy, "")
    }
}

/// The health of a live object from the built-in checks, or `None` for kinds berth does not assess and for
/// objects annotated `argocd.argoproj.io/ignore-healthcheck: "true"`.
pub fn assess(obj: &serde_json::Value) -> Option<Health> {
    if ignores_healthcheck(obj) {
        return None;
    }
    pending_deletion(obj).or_else(|| built_in(obj))
}

/// Whether the object opted out of health assessment.
pub fn ignores_healthcheck(obj: &serde_json::Value) -> bool {
    obj["metadata"]["annotations"][IGNORE_HEALTHCHECK_ANNOTATION].as_str() == Some("true")
}

/// Progressing "Pending deletion" while the object is being deleted (hooks being cleaned up excepted), as
/// Argo CD decides before any check, custom or built-in.
fn pending_deletion(obj: &serde_json::Value) -> Option<Health> {
    let meta = &obj["metadata"];
    let hook_finalizer = meta["finalizers"].as_array().is_some_and(|f| f.iter().any(|f| f == HOOK_FINALIZER));
    (meta["deletionTimestamp"].is_string() && !hook_finalizer)
        .then(|| Health::new(HealthStatus::Progressing, "Pending deletion"))
}

/// The built-in check for the object's group and kind: a core kind's, else a well-known custom kind's.
fn built_in(obj: &serde_json::Value) -> Option<Health> {
    let (group, version) =
        obj["apiVersion"].as_str().map(crate::resource::split_api_version).unwrap_or_default();
    let kind = obj["kind"].as_str().unwrap_or_default();
    Some(match (group, kind) {
        ("apps", "Deployment") => deployment::assess(obj),
        ("apps", "StatefulSet") => statefulset::assess(obj),
        ("apps", "DaemonSet") => daemonset::assess(obj),
        ("apps", "ReplicaSet") => replicaset::assess(obj),
        ("", "Pod") => pod::assess(obj),
        ("", "Service") => service::assess(obj),
        ("", "PersistentVolumeClaim") => pvc::assess(obj),
        ("networking.k8s.io" | "extensions", "Ingress") => ingress::assess(obj),
        ("batch", "Job") => job::assess(obj),
        ("autoscaling", "HorizontalPodAutoscaler") => hpa::assess(obj, version),
        ("apiregistration.k8s.io", "APIService") => apiservice::assess(obj),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => crd::assess(obj),
        _ => return known::assess(group, kind, obj),
    })
}

/// The worst of several health statuses (Healthy when there are none).
pub fn worst<'a>(items: impl IntoIterator<Item = &'a HealthStatus>) -> HealthStatus {
    items.into_iter().copied().max().unwrap_or(HealthStatus::Healthy)
}

/// An integer field, 0 when absent.
fn int(v: &serde_json::Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

/// A string field, empty when absent.
fn text(v: &serde_json::Value) -> &str {
    v.as_str().unwrap_or_default()
}

/// The first entry of `status.conditions` of type `kind`.
fn condition<'a>(obj: &'a serde_json::Value, kind: &str) -> Option<&'a serde_json::Value> {
    obj["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn statuses_order_from_healthy_to_unknown() {
        assert_eq!(
            worst(&[HealthStatus::Healthy, HealthStatus::Degraded, HealthStatus::Progressing]),
            HealthStatus::Degraded
        );
        assert_eq!(worst(&[HealthStatus::Missing, HealthStatus::Suspended]), HealthStatus::Missing);
        assert_eq!(worst(&[]), HealthStatus::Healthy);
        assert!(HealthStatus::Degraded < HealthStatus::Unknown);
    }

    #[test]
    fn status_names_parse_back() {
        for s in [HealthStatus::Healthy, HealthStatus::Missing, HealthStatus::Unknown] {
            assert_eq!(HealthStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(HealthStatus::parse("healthy"), None);
    }

    #[test]
    fn kinds_without_an_assessment_have_no_health() {
        assert_eq!(
            assess(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}})),
            None
        );
    }

    #[test]
    fn ignore_healthcheck_annotation_removes_the_health() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "annotations": {"argocd.argoproj.io/ignore-healthcheck": "true"}},
            "status": {"phase": "Failed"}});
        assert_eq!(assess(&pod), None);
        let mut counted = pod.clone();
        counted["metadata"]["annotations"][IGNORE_HEALTHCHECK_ANNOTATION] = json!("false");
        assert_eq!(assess(&counted).map(|h| h.status), Some(HealthStatus::Degraded));
    }

    #[test]
    fn an_object_being_deleted_is_progressing_unless_a_hook_finalizer_holds_it() {
        let deleting = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "deletionTimestamp": "2026-01-01T00:00:00Z"}, "status": {"phase": "Running"}});
        assert_eq!(assess(&deleting), Some(Health::new(HealthStatus::Progressing, "Pending deletion")));
        let mut hook = deleting.clone();
        hook["metadata"]["finalizers"] = json!([HOOK_FINALIZER]);
        hook["status"]["phase"] = json!("Succeeded");
        assert_eq!(assess(&hook).map(|h| h.status), Some(HealthStatus::Healthy));
    }

    #[test]
    fn well_known_custom_kinds_are_assessed_after_the_core_kinds() {
        let certificate =
            json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate", "metadata": {"name": "c"}});
        assert_eq!(
            assess(&certificate),
            Some(Health::new(HealthStatus::Progressing, "Waiting for certificate"))
        );
        let mut deleting = certificate.clone();
        deleting["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        assert_eq!(assess(&deleting), Some(Health::new(HealthStatus::Progressing, "Pending deletion")));
        let mut ignored = certificate;
        ignored["metadata"]["annotations"] = json!({IGNORE_HEALTHCHECK_ANNOTATION: "true"});
        assert_eq!(assess(&ignored), None);
    }

    #[test]
    fn argocd_cm_scripts_win_over_well_known_checks() {
        let mut overrides = HealthOverrides::default();
        overrides
            .insert(
                "cert-manager.io/Certificate",
                r#"return {status = "Healthy", message = "custom"}"#,
                false,
            )
            .unwrap();
        let certificate =
            json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate", "metadata": {"name": "c"}});
        assert_eq!(overrides.assess(&certificate), Some(Health::new(HealthStatus::Healthy, "custom")));
        let issuer = json!({"apiVersion": "cert-manager.io/v1", "kind": "Issuer", "metadata": {"name": "i"}});
        assert_eq!(
            overrides.assess(&issuer),
            Some(Health::new(HealthStatus::Progressing, "Initializing issuer"))
        );
    }

    #[test]
    fn ingress_is_assessed_in_both_of_its_groups() {
        for api_version in ["networking.k8s.io/v1", "extensions/v1beta1"] {
            let ingress = json!({"apiVersion": api_version, "kind": "Ingress", "metadata": {"name": "i"}});
            assert_eq!(assess(&ingress).map(|h| h.status), Some(HealthStatus::Progressing));
        }
    }
}
