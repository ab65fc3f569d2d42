//! Prometheus operator: Prometheus, PrometheusAgent, Alertmanager and ThanosRuler follow their Available
//! condition: True is Healthy, some pods not yet ready is Progressing, anything else Degraded.
//!
//! Matches Argo CD's `monitoring.coreos.com/{Prometheus,PrometheusAgent,Alertmanager,ThanosRuler}/health.lua`.

use super::{conditions, text_or};
use crate::health::{Health, HealthStatus, text};
use serde_json::Value;

pub fn assess(kind: &str, obj: &Value) -> Option<Health> {
    matches!(kind, "Prometheus" | "PrometheusAgent" | "Alertmanager" | "ThanosRuler").then(|| available(obj))
}

/// The last Available condition decides.
fn available(obj: &Value) -> Health {
    let Some(c) = conditions(obj).iter().rfind(|c| c["type"] == "Available") else {
        return Health::new(HealthStatus::Progressing, "Waiting for initialization");
    };
    if c["status"] == "True" {
        return Health::new(HealthStatus::Healthy, "All instances are available");
    }
    let status =
        if c["reason"] == "SomePodsNotReady" { HealthStatus::Progressing } else { HealthStatus::Degraded };
    Health::new(status, text_or(&c["message"], text(&c["reason"])))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const KINDS: [&str; 4] = ["Prometheus", "PrometheusAgent", "Alertmanager", "ThanosRuler"];

    fn health(kind: &str, conditions: Value) -> Health {
        let obj = json!({"apiVersion": "monitoring.coreos.com/v1", "kind": kind, "metadata": {"name": "p"},
            "status": {"conditions": conditions}});
        assess(kind, &obj).expect("a known kind")
    }

    #[test]
    fn available_instances_are_healthy() {
        for kind in KINDS {
            let conditions = json!([{"type": "Available", "status": "True", "reason": ""},
                                    {"type": "Reconciled", "status": "True", "reason": ""}]);
            assert_eq!(
                health(kind, conditions),
                Health::new(HealthStatus::Healthy, "All instances are available")
            );
        }
    }

    #[test]
    fn some_pods_not_ready_is_progressing_with_the_reason() {
        for kind in KINDS {
            let conditions =
                json!([{"type": "Available", "status": "Degraded", "reason": "SomePodsNotReady"}]);
            assert_eq!(health(kind, conditions), Health::new(HealthStatus::Progressing, "SomePodsNotReady"));
        }
    }

    #[test]
    fn unavailable_instances_are_degraded_with_the_message() {
        let message = "pod alertmanager-main-0: 0/5 nodes are available: 2 node(s) didn't match Pod's node affinity/selector, 3 node(s) were unschedulable.";
        for kind in KINDS {
            let conditions =
                json!([{"type": "Available", "status": "False", "reason": "NoPodReady", "message": message}]);
            assert_eq!(health(kind, conditions), Health::new(HealthStatus::Degraded, message));
        }
    }

    #[test]
    fn instances_without_conditions_wait_for_initialization() {
        assert_eq!(
            health("Prometheus", Value::Null),
            Health::new(HealthStatus::Progressing, "Waiting for initialization")
        );
    }

    #[test]
    fn service_monitors_have_no_health() {
        assert_eq!(assess("ServiceMonitor", &json!({})), None);
    }
}
