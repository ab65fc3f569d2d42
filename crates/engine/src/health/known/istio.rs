//! Istio: an IstioOperator follows its overall component status, written as a name or as its number.
//!
//! Matches Argo CD's `install.istio.io/IstioOperator/health.lua`.

use crate::health::{Health, HealthStatus};
use serde_json::Value;

pub fn assess(kind: &str, obj: &Value) -> Option<Health> {
    (kind == "IstioOperator").then(|| istio_operator(obj))
}

fn istio_operator(obj: &Value) -> Health {
    let status = &obj["status"]["status"];
    let code = status.as_i64().or_else(|| {
        ["NONE", "UPDATING", "RECONCILING", "HEALTHY", "ERROR"]
            .iter()
            .position(|s| status.as_str() == Some(*s))
            .map(|i| i as i64)
    });
    let (health, message) = match code {
        Some(0) => (HealthStatus::Unknown, "Component is not present."),
        Some(1) => (HealthStatus::Progressing, "Component is being updated to a different version."),
        Some(2) => (
            HealthStatus::Progressing,
            "Controller has started but not yet completed reconciliation loop for the component.",
        ),
        Some(3) => (HealthStatus::Healthy, "Component is healthy."),
        Some(4) => (HealthStatus::Degraded, "Component is in an error state."),
        _ => (HealthStatus::Progressing, "Waiting for Istio Control Plane"),
    };
    Health::new(health, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn health(status: Value) -> Health {
        let obj = json!({"apiVersion": "install.istio.io/v1alpha1", "kind": "IstioOperator",
            "metadata": {"name": "istio-control-plane", "namespace": "istio-system"}, "status": status});
        assess("IstioOperator", &obj).expect("a known kind")
    }

    #[test]
    fn istio_operator_follows_its_component_status() {
        let cases = [
            ("UPDATING", HealthStatus::Progressing, "Component is being updated to a different version."),
            (
                "RECONCILING",
                HealthStatus::Progressing,
                "Controller has started but not yet completed reconciliation loop for the component.",
            ),
            ("ERROR", HealthStatus::Degraded, "Component is in an error state."),
            ("HEALTHY", HealthStatus::Healthy, "Component is healthy."),
            ("NONE", HealthStatus::Unknown, "Component is not present."),
        ];
        for (status, health_status, message) in cases {
            let components = json!({"status": status, "componentStatus": {"Pilot": {"status": status}}});
            assert_eq!(health(components), Health::new(health_status, message), "{status}");
        }
    }

    #[test]
    fn istio_operator_status_may_be_numeric() {
        assert_eq!(health(json!({"status": 3})), Health::new(HealthStatus::Healthy, "Component is healthy."));
        assert_eq!(
            health(json!({"status": 4})),
            Health::new(HealthStatus::Degraded, "Component is in an error state.")
        );
    }

    #[test]
    fn istio_operator_without_status_waits() {
        assert_eq!(
            health(Value::Null),
            Health::new(HealthStatus::Progressing, "Waiting for Istio Control Plane")
        );
    }
}
