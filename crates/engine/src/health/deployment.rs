//! Deployment: rolled out (observed, updated, available) is Healthy; paused is Suspended; a rollout past
//! its progress deadline is Degraded.

use super::{Health, HealthStatus, int};

pub fn assess(obj: &serde_json::Value) -> Health {
    let spec = &obj["spec"];
    let status = &obj["status"];
    if spec["paused"].as_bool() == Some(true) {
        return Health::new(HealthStatus::Suspended, "Deployment is paused");
    }
    if int(&obj["metadata"]["generation"]) > int(&status["observedGeneration"]) {
        return Health::new(
            HealthStatus::Progressing,
            "Waiting for rollout to finish: observed deployment generation less than desired generation",
        );
    }
    let conditions = status["conditions"].as_array().cloned().unwrap_or_default();
    if conditions.iter().any(|c| c["type"] == "Progressing" && c["reason"] == "ProgressDeadlineExceeded") {
        return Health::new(
            HealthStatus::Degraded,
            format!(
                "Deployment {:?} exceeded its progress deadline",
                obj["metadata"]["name"].as_str().unwrap_or_default()
            ),
        );
    }
    let replicas = spec["replicas"].as_i64().unwrap_or(1);
    let updated = int(&status["updatedReplicas"]);
    let total = int(&status["replicas"]);
    let available = int(&status["availableReplicas"]);
    if updated < replicas {
        return Health::new(
            HealthStatus::Progressing,
            format!(
                "Waiting for rollout to finish: {updated} out of {replicas} new replicas have been updated..."
            ),
        );
    }
    if total > updated {
        return Health::new(
            HealthStatus::Progressing,
            format!(
                "Waiting for rollout to finish: {} old replicas are pending termination...",
                total - updated
            ),
        );
    }
    if available < updated {
        return Health::new(
            HealthStatus::Progressing,
            format!(
                "Waiting for rollout to finish: {available} of {updated} updated replicas are available..."
            ),
        );
    }
    Health::healthy()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_rolled_out_deployment_is_healthy_and_a_rolling_one_progressing() {
        let done = json!({"metadata": {"generation": 2}, "spec": {"replicas": 3},
            "status": {"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3}});
        assert_eq!(assess(&done).status, HealthStatus::Healthy);
        let rolling = json!({"metadata": {"generation": 2}, "spec": {"replicas": 3},
            "status": {"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 1}});
        assert_eq!(assess(&rolling).status, HealthStatus::Progressing);
        let unobserved = json!({"metadata": {"generation": 3}, "spec": {"replicas": 3}, "status": {"observedGeneration": 2}});
        assert_eq!(assess(&unobserved).status, HealthStatus::Progressing);
    }

    #[test]
    fn paused_is_suspended_and_deadline_exceeded_is_degraded() {
        assert_eq!(assess(&json!({"spec": {"paused": true}})).status, HealthStatus::Suspended);
        let stuck = json!({"metadata": {"name": "web"}, "spec": {"replicas": 1}, "status": {"conditions": [{"type": "Progressing", "reason": "ProgressDeadlineExceeded"}]}});
        assert_eq!(assess(&stuck).status, HealthStatus::Degraded);
    }
}
