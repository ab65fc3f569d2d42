//! APIService: Healthy when the Available condition is true, Progressing otherwise, with the condition's
//! "reason: message"; "Waiting to be processed" before it has one.

use super::{Health, HealthStatus, condition, text};

pub fn assess(obj: &serde_json::Value) -> Health {
    let Some(available) = condition(obj, "Available") else {
        return Health::new(HealthStatus::Progressing, "Waiting to be processed");
    };
    let status =
        if available["status"] == "True" { HealthStatus::Healthy } else { HealthStatus::Progressing };
    Health::new(status, format!("{}: {}", text(&available["reason"]), text(&available["message"])))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn api_service(conditions: Value) -> Value {
        json!({"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService", "metadata": {"name": "v1beta1.metrics.k8s.io"},
               "spec": {"group": "metrics.k8s.io", "version": "v1beta1", "service": {"namespace": "kube-system", "name": "metrics-server"}},
               "status": {"conditions": conditions}})
    }

    #[test]
    fn available_is_healthy() {
        let svc = api_service(
            json!([{"type": "Available", "status": "True", "reason": "Passed", "message": "all checks passed"}]),
        );
        assert_eq!(assess(&svc), Health::new(HealthStatus::Healthy, "Passed: all checks passed"));
    }

    #[test]
    fn unavailable_is_progressing_with_the_reason() {
        let svc = api_service(json!([{"type": "Available", "status": "False", "reason": "MissingEndpoints",
            "message": "endpoints for service/metrics-server in \"kube-system\" have no addresses"}]));
        assert_eq!(
            assess(&svc),
            Health::new(
                HealthStatus::Progressing,
                "MissingEndpoints: endpoints for service/metrics-server in \"kube-system\" have no addresses"
            )
        );
    }

    #[test]
    fn no_condition_yet_is_waiting() {
        assert_eq!(
            assess(&api_service(json!([]))),
            Health::new(HealthStatus::Progressing, "Waiting to be processed")
        );
    }
}
