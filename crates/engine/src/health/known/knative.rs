//! Knative Serving: a Service is Healthy when ConfigurationsReady, RoutesReady and Ready are all True,
//! Degraded when any condition is False, else Progressing; the message lists every condition that is False or
//! Unknown with its reason and message, one a line.
//!
//! Matches Argo CD's `serving.knative.dev/Service/health.lua`.

use super::conditions;
use crate::health::{Health, HealthStatus, text};
use serde_json::Value;

const READY_TYPES: [&str; 3] = ["ConfigurationsReady", "RoutesReady", "Ready"];

pub fn assess(kind: &str, obj: &Value) -> Option<Health> {
    (kind == "Service").then(|| service(obj))
}

fn service(obj: &Value) -> Health {
    if obj["status"]["conditions"].is_null() {
        return Health::new(HealthStatus::Progressing, "Waiting for status update.");
    }
    let (mut ready, mut failed, mut unknown) = (0, 0, 0);
    let mut message = String::new();
    for c in conditions(obj) {
        let (kind, status) = (text(&c["type"]), text(&c["status"]));
        match status {
            "True" if READY_TYPES.contains(&kind) => ready += 1,
            "False" | "Unknown" => {
                message.push_str(&format!("{kind} is {status}"));
                let reason = text(&c["reason"]);
                if !reason.is_empty() {
                    message.push_str(&format!(", since {reason}."));
                }
                let detail = text(&c["message"]);
                if !detail.is_empty() {
                    message.push_str(&format!(" {detail}"));
                }
                message.push('\n');
                if status == "False" {
                    failed += 1;
                } else {
                    unknown += 1;
                }
            }
            _ => {}
        }
    }
    if ready == READY_TYPES.len() && failed == 0 && unknown == 0 {
        Health::new(HealthStatus::Healthy, "Knative Service is healthy.")
    } else if failed > 0 {
        Health::new(HealthStatus::Degraded, message)
    } else {
        Health::new(HealthStatus::Progressing, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn health(conditions: Value) -> Health {
        let obj = json!({"apiVersion": "serving.knative.dev/v1", "kind": "Service", "metadata": {"name": "helloworld"},
            "status": {"conditions": conditions}});
        assess("Service", &obj).expect("a known kind")
    }

    fn condition(kind: &str, status: &str, reason: Option<&str>, message: Option<&str>) -> Value {
        json!({"type": kind, "status": status, "reason": reason, "message": message,
               "lastTransitionTime": "2020-05-08T13:16:46Z"})
    }

    #[test]
    fn service_rolling_out_is_progressing_with_each_pending_condition() {
        let rolling = "A gradual rollout of the latest revision(s) is in progress.";
        let conditions = json!([
            condition("ConfigurationsReady", "True", None, None),
            condition("Ready", "Unknown", Some("RolloutInProgress"), Some(rolling)),
            condition("RoutesReady", "Unknown", Some("RolloutInProgress"), Some(rolling))
        ]);
        assert_eq!(
            health(conditions),
            Health::new(
                HealthStatus::Progressing,
                "Ready is Unknown, since RolloutInProgress. A gradual rollout of the latest revision(s) is in progress.\nRoutesReady is Unknown, since RolloutInProgress. A gradual rollout of the latest revision(s) is in progress.\n"
            )
        );
    }

    #[test]
    fn service_with_a_failed_revision_is_degraded() {
        let failed = "Revision \"helloworld-00002\" failed with message: Container failed with: container exited with no error.";
        let conditions = json!([
            condition("ConfigurationsReady", "False", Some("RevisionFailed"), Some(failed)),
            condition("Ready", "False", Some("RevisionFailed"), Some(failed)),
            condition("RoutesReady", "True", None, None)
        ]);
        assert_eq!(
            health(conditions),
            Health::new(
                HealthStatus::Degraded,
                format!(
                    "ConfigurationsReady is False, since RevisionFailed. {failed}\nReady is False, since RevisionFailed. {failed}\n"
                )
            )
        );
    }

    #[test]
    fn service_all_ready_is_healthy() {
        let conditions = json!([
            condition("ConfigurationsReady", "True", None, None),
            condition("Ready", "True", None, None),
            condition("RoutesReady", "True", None, None)
        ]);
        assert_eq!(health(conditions), Health::new(HealthStatus::Healthy, "Knative Service is healthy."));
    }

    #[test]
    fn service_without_conditions_waits_for_a_status() {
        assert_eq!(health(Value::Null), Health::new(HealthStatus::Progressing, "Waiting for status update."));
        let bare =
            json!({"apiVersion": "serving.knative.dev/v1", "kind": "Route", "metadata": {"name": "r"}});
        assert_eq!(assess("Route", &bare), None);
    }
}
