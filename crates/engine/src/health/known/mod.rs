//! Health of the custom kinds users meet most (cert-manager, External Secrets, Sealed Secrets, Argo Rollouts,
//! Gateway API, Crossplane, KEDA, Flux, the Prometheus operator, Knative, Strimzi, Istio), with the statuses
//! and messages of the checks Argo CD ships for them in `resource_customizations/`. One module a family; each
//! names the Argo CD checks it matches. A kind's exact check comes before a family's wildcard groups, as in
//! Argo CD.
//!
//! ```
//! use berth_engine::health::{self, HealthStatus};
//! let certificate = serde_json::json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
//!     "status": {"conditions": [{"type": "Ready", "status": "True", "message": "Certificate is up to date"}]}});
//! assert_eq!(health::assess(&certificate).map(|h| h.status), Some(HealthStatus::Healthy));
//! ```

mod argo_rollouts;
mod cert_manager;
mod crossplane;
mod external_secrets;
mod flux;
mod gateway;
mod istio;
mod keda;
mod knative;
mod prometheus;
mod sealed_secrets;
mod strimzi;

use super::{Health, HealthStatus, text};
use serde_json::Value;

/// The health of a well-known custom object of `group` and `kind`, or `None` when berth has no check for it.
pub fn assess(group: &str, kind: &str, obj: &Value) -> Option<Health> {
    match group {
        "cert-manager.io" | "acme.cert-manager.io" => cert_manager::assess(group, kind, obj),
        "external-secrets.io" => external_secrets::assess(kind, obj),
        "bitnami.com" => sealed_secrets::assess(kind, obj),
        "argoproj.io" => argo_rollouts::assess(kind, obj),
        "gateway.networking.k8s.io" => gateway::assess(kind, obj),
        "install.istio.io" => istio::assess(kind, obj),
        "keda.sh" => keda::assess(kind, obj),
        "monitoring.coreos.com" => prometheus::assess(kind, obj),
        "serving.knative.dev" => knative::assess(kind, obj),
        "kafka.strimzi.io" => strimzi::assess(kind, obj),
        "source.toolkit.fluxcd.io" | "kustomize.toolkit.fluxcd.io" | "helm.toolkit.fluxcd.io" => {
            flux::assess(group, kind, obj)
        }
        _ => crossplane::assess(group, kind, obj),
    }
}

/// The object's `status.conditions`, empty when absent.
fn conditions(obj: &Value) -> &[Value] {
    obj["status"]["conditions"].as_array().map(Vec::as_slice).unwrap_or_default()
}

/// The first condition of type `kind` that is True or False decides, with its message: True is Healthy,
/// False Degraded. Without one the object is still Progressing with `waiting`.
fn by_condition(obj: &Value, kind: &str, waiting: &str) -> Health {
    conditions(obj)
        .iter()
        .filter(|c| c["type"] == kind)
        .find_map(|c| match text(&c["status"]) {
            "True" => Some(Health::new(HealthStatus::Healthy, text(&c["message"]))),
            "False" => Some(Health::new(HealthStatus::Degraded, text(&c["message"]))),
            _ => None,
        })
        .unwrap_or_else(|| Health::new(HealthStatus::Progressing, waiting))
}

/// A field's text, or `fallback` when the field is absent; an empty string is kept, as the checks do.
fn text_or(v: &Value, fallback: impl Into<String>) -> String {
    v.as_str().map_or_else(|| fallback.into(), str::to_string)
}

/// A number that may be written as a number or as a numeric string, as the checks read generations.
fn number(v: &Value) -> Option<f64> {
    v.as_f64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kinds_of_other_groups_have_no_known_check() {
        let widget = json!({"apiVersion": "example.com/v1", "kind": "Widget", "status": {}});
        assert_eq!(assess("example.com", "Widget", &widget), None);
        assert_eq!(assess("cert-manager.io", "Widget", &widget), None);
    }

    #[test]
    fn the_first_decided_condition_wins_and_unknown_ones_wait() {
        let obj = json!({"status": {"conditions": [
            {"type": "Ready", "status": "Unknown", "message": "checking"},
            {"type": "Ready", "status": "False", "message": "broken"}]}});
        assert_eq!(by_condition(&obj, "Ready", "waiting"), Health::new(HealthStatus::Degraded, "broken"));
        let undecided = json!({"status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}});
        assert_eq!(
            by_condition(&undecided, "Ready", "waiting"),
            Health::new(HealthStatus::Progressing, "waiting")
        );
    }

    #[test]
    fn numeric_strings_read_as_numbers() {
        assert_eq!(number(&json!("5")), Some(5.0));
        assert_eq!(number(&json!(5)), Some(5.0));
        assert_eq!(number(&json!("6b8cf6f7db")), None);
        assert_eq!(number(&Value::Null), None);
    }
}
