//! DaemonSet: Progressing until the controller has observed the spec and every scheduled pod is updated and
//! available; OnDelete is Healthy once observed.

use super::{Health, HealthStatus, int};

pub fn assess(obj: &serde_json::Value) -> Health {
    let status = &obj["status"];
    if int(&obj["metadata"]["generation"]) > int(&status["observedGeneration"]) {
        return Health::new(
            HealthStatus::Progressing,
            "Waiting for rollout to finish: observed daemon set generation less than desired generation",
        );
    }
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    let desired = int(&status["desiredNumberScheduled"]);
    let updated = int(&status["updatedNumberScheduled"]);
    let available = int(&status["numberAvailable"]);
    if obj["spec"]["updateStrategy"]["type"] == "OnDelete" {
        return Health::new(
            HealthStatus::Healthy,
            format!("daemon set {updated} out of {desired} new pods have been updated"),
        );
    }
    if updated < desired {
        return Health::new(
            HealthStatus::Progressing,
            format!(
                "Waiting for daemon set {name:?} rollout to finish: {updated} out of {desired} new pods have been updated..."
            ),
        );
    }
    if available < desired {
        return Health::new(
            HealthStatus::Progressing,
            format!(
                "Waiting for daemon set {name:?} rollout to finish: {available} of {desired} updated pods are available..."
            ),
        );
    }
    Health::healthy()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn daemon_set(strategy: &str, status: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent", "generation": 2},
               "spec": {"updateStrategy": {"type": strategy}}, "status": status})
    }

    #[test]
    fn a_rolled_out_daemon_set_is_healthy() {
        let status = json!({"observedGeneration": 2, "desiredNumberScheduled": 2, "currentNumberScheduled": 2,
            "updatedNumberScheduled": 2, "numberReady": 2, "numberAvailable": 2});
        assert_eq!(assess(&daemon_set("RollingUpdate", status)), Health::healthy());
    }

    #[test]
    fn an_unobserved_generation_is_progressing() {
        assert_eq!(
            assess(&daemon_set("RollingUpdate", json!({"observedGeneration": 1}))),
            Health::new(
                HealthStatus::Progressing,
                "Waiting for rollout to finish: observed daemon set generation less than desired generation"
            )
        );
    }

    #[test]
    fn pods_to_update_or_make_available_are_progressing() {
        let updating = json!({"observedGeneration": 2, "desiredNumberScheduled": 3, "updatedNumberScheduled": 1,
            "numberAvailable": 3});
        assert_eq!(
            assess(&daemon_set("RollingUpdate", updating)),
            Health::new(
                HealthStatus::Progressing,
                "Waiting for daemon set \"agent\" rollout to finish: 1 out of 3 new pods have been updated..."
            )
        );
        let starting = json!({"observedGeneration": 2, "desiredNumberScheduled": 3, "updatedNumberScheduled": 3,
            "numberAvailable": 2});
        assert_eq!(
            assess(&daemon_set("RollingUpdate", starting)),
            Health::new(
                HealthStatus::Progressing,
                "Waiting for daemon set \"agent\" rollout to finish: 2 of 3 updated pods are available..."
            )
        );
    }

    #[test]
    fn on_delete_is_healthy_with_the_updated_count() {
        let status =
            json!({"observedGeneration": 2, "desiredNumberScheduled": 3, "updatedNumberScheduled": 1});
        assert_eq!(
            assess(&daemon_set("OnDelete", status)),
            Health::new(HealthStatus::Healthy, "daemon set 1 out of 3 new pods have been updated")
        );
    }
}
