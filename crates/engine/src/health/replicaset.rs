//! ReplicaSet: a ReplicaFailure condition is Degraded; Progressing until the spec is observed and every
//! replica is available.

use super::{Health, HealthStatus, condition, int, text};

pub fn assess(obj: &serde_json::Value) -> Health {
    let status = &obj["status"];
    if int(&obj["metadata"]["generation"]) > int(&status["observedGeneration"]) {
        return Health::new(
            HealthStatus::Progressing,
            "Waiting for rollout to finish: observed replica set generation less than desired generation",
        );
    }
    if let Some(failure) = condition(obj, "ReplicaFailure").filter(|c| c["status"] == "True") {
        return Health::new(HealthStatus::Degraded, text(&failure["message"]));
    }
    let available = int(&status["availableReplicas"]);
    if let Some(replicas) = obj["spec"]["replicas"].as_i64()
        && available < replicas
    {
        return Health::new(
            HealthStatus::Progressing,
            format!(
                "Waiting for rollout to finish: {available} out of {replicas} new replicas are available..."
            ),
        );
    }
    Health::healthy()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn replica_set(status: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web-5d9c", "generation": 1},
               "spec": {"replicas": 2}, "status": status})
    }

    #[test]
    fn every_replica_available_is_healthy() {
        let status =
            json!({"observedGeneration": 1, "replicas": 2, "readyReplicas": 2, "availableReplicas": 2});
        assert_eq!(assess(&replica_set(status)), Health::healthy());
    }

    #[test]
    fn an_unobserved_generation_is_progressing() {
        assert_eq!(
            assess(&replica_set(json!({}))),
            Health::new(
                HealthStatus::Progressing,
                "Waiting for rollout to finish: observed replica set generation less than desired generation"
            )
        );
    }

    #[test]
    fn replicas_not_yet_available_are_progressing() {
        assert_eq!(
            assess(&replica_set(json!({"observedGeneration": 1, "replicas": 2, "availableReplicas": 1}))),
            Health::new(
                HealthStatus::Progressing,
                "Waiting for rollout to finish: 1 out of 2 new replicas are available..."
            )
        );
    }

    #[test]
    fn a_replica_failure_is_degraded_with_its_message() {
        let status = json!({"observedGeneration": 1, "replicas": 0, "conditions": [{"type": "ReplicaFailure",
            "status": "True", "reason": "FailedCreate",
            "message": "pods \"web-5d9c-\" is forbidden: exceeded quota: compute"}]});
        assert_eq!(
            assess(&replica_set(status)),
            Health::new(HealthStatus::Degraded, "pods \"web-5d9c-\" is forbidden: exceeded quota: compute")
        );
    }
}
