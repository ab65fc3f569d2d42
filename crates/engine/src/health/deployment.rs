//! Deployment: paused is Suspended; once the controller has observed the spec, a rollout past its progress
//! deadline is Degraded, one with replicas to update, terminate or make available is Progressing, and a
//! finished one is Healthy.

use super::{Health, HealthStatus, condition, int};

pub fn assess(obj: &serde_json::Value) -> Health {
    let (spec, status) = (&obj["spec"], &obj["status"]);
    if spec["paused"].as_bool() == Some(true) {
        return Health::new(HealthStatus::Suspended, "Deployment is paused");
    }
    if int(&obj["metadata"]["generation"]) > int(&status["observedGeneration"]) {
        return Health::new(
            HealthStatus::Progressing,
            "Waiting for rollout to finish: observed deployment generation less than desired generation",
        );
    }
    if condition(obj, "Progressing").is_some_and(|c| c["reason"] == "ProgressDeadlineExceeded") {
        let name = obj["metadata"]["name"].as_str().unwrap_or_default();
        return Health::new(
            HealthStatus::Degraded,
            format!("Deployment {name:?} exceeded its progress deadline"),
        );
    }
    let updated = int(&status["updatedReplicas"]);
    let total = int(&status["replicas"]);
    let available = int(&status["availableReplicas"]);
    if let Some(replicas) = spec["replicas"].as_i64()
        && updated < replicas
    {
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
    use serde_json::{Value, json};

    /// A Deployment of 3 replicas at generation 2 with the given status.
    fn deployment(status: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "generation": 2},
               "spec": {"replicas": 3}, "status": status})
    }

    #[test]
    fn a_rolled_out_deployment_is_healthy() {
        let done = deployment(json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3,
            "readyReplicas": 3, "availableReplicas": 3}));
        assert_eq!(assess(&done), Health::healthy());
    }

    #[test]
    fn a_paused_deployment_is_suspended() {
        let mut paused = deployment(json!({"observedGeneration": 2}));
        paused["spec"]["paused"] = json!(true);
        assert_eq!(assess(&paused), Health::new(HealthStatus::Suspended, "Deployment is paused"));
    }

    #[test]
    fn an_unobserved_generation_is_progressing() {
        assert_eq!(
            assess(&deployment(json!({"observedGeneration": 1, "replicas": 3, "updatedReplicas": 3}))),
            Health::new(
                HealthStatus::Progressing,
                "Waiting for rollout to finish: observed deployment generation less than desired generation"
            )
        );
    }

    #[test]
    fn an_exceeded_progress_deadline_is_degraded() {
        let stuck = deployment(json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 1,
            "conditions": [{"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"},
                           {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                            "message": "ReplicaSet \"web-5d9c\" has timed out progressing."}]}));
        assert_eq!(
            assess(&stuck),
            Health::new(HealthStatus::Degraded, "Deployment \"web\" exceeded its progress deadline")
        );
    }

    #[test]
    fn each_rollout_step_is_progressing_with_its_message() {
        let cases = [
            (
                json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 1, "availableReplicas": 1}),
                "Waiting for rollout to finish: 1 out of 3 new replicas have been updated...",
            ),
            (
                json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 3, "availableReplicas": 3}),
                "Waiting for rollout to finish: 1 old replicas are pending termination...",
            ),
            (
                json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 2}),
                "Waiting for rollout to finish: 2 of 3 updated replicas are available...",
            ),
        ];
        for (status, message) in cases {
            assert_eq!(assess(&deployment(status)), Health::new(HealthStatus::Progressing, message));
        }
    }
}
