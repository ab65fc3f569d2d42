//! StatefulSet: Progressing until the controller has observed the spec and every replica is ready, then
//! according to the update strategy: a partitioned rolling update is Healthy once the pods above the
//! partition are updated, OnDelete is Healthy, and a full rolling update once the revisions agree.

use super::{Health, HealthStatus, int, text};

pub fn assess(obj: &serde_json::Value) -> Health {
    let (spec, status) = (&obj["spec"], &obj["status"]);
    let observed = int(&status["observedGeneration"]);
    if observed == 0 || int(&obj["metadata"]["generation"]) > observed {
        return Health::new(
            HealthStatus::Progressing,
            "Waiting for statefulset spec update to be observed...",
        );
    }
    let replicas = spec["replicas"].as_i64();
    let ready = int(&status["readyReplicas"]);
    let updated = int(&status["updatedReplicas"]);
    if let Some(replicas) = replicas
        && ready < replicas
    {
        return Health::new(
            HealthStatus::Progressing,
            format!("Waiting for {} pods to be ready...", replicas - ready),
        );
    }
    let strategy = &spec["updateStrategy"];
    if strategy["type"] == "RollingUpdate" && strategy["rollingUpdate"].is_object() {
        if let (Some(replicas), Some(partition)) = (replicas, strategy["rollingUpdate"]["partition"].as_i64())
            && updated < replicas - partition
        {
            return Health::new(
                HealthStatus::Progressing,
                format!(
                    "Waiting for partitioned roll out to finish: {updated} out of {} new pods have been updated...",
                    replicas - partition
                ),
            );
        }
        return Health::new(
            HealthStatus::Healthy,
            format!("partitioned roll out complete: {updated} new pods have been updated..."),
        );
    }
    if strategy["type"] == "OnDelete" {
        return Health::new(HealthStatus::Healthy, format!("statefulset has {ready} ready pods"));
    }
    let (current_revision, update_revision) =
        (text(&status["currentRevision"]), text(&status["updateRevision"]));
    if update_revision != current_revision {
        return Health::new(
            HealthStatus::Progressing,
            format!(
                "waiting for statefulset rolling update to complete {updated} pods at revision {update_revision}..."
            ),
        );
    }
    Health::new(
        HealthStatus::Healthy,
        format!(
            "statefulset rolling update complete {} pods at revision {current_revision}...",
            int(&status["currentReplicas"])
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// A StatefulSet of 3 replicas at generation 1 with the given update strategy and status.
    fn stateful_set(strategy: Value, status: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "generation": 1},
               "spec": {"replicas": 3, "updateStrategy": strategy}, "status": status})
    }

    fn rolling(partition: i64) -> Value {
        json!({"type": "RollingUpdate", "rollingUpdate": {"partition": partition}})
    }

    #[test]
    fn an_unobserved_spec_is_progressing() {
        for status in [json!({}), json!({"observedGeneration": 0})] {
            assert_eq!(
                assess(&stateful_set(rolling(0), status)),
                Health::new(
                    HealthStatus::Progressing,
                    "Waiting for statefulset spec update to be observed..."
                )
            );
        }
    }

    #[test]
    fn pods_not_ready_are_progressing() {
        let status = json!({"observedGeneration": 1, "replicas": 3, "readyReplicas": 1});
        assert_eq!(
            assess(&stateful_set(rolling(0), status)),
            Health::new(HealthStatus::Progressing, "Waiting for 2 pods to be ready...")
        );
    }

    #[test]
    fn a_partitioned_rollout_is_progressing_until_the_pods_above_the_partition_are_updated() {
        let status =
            json!({"observedGeneration": 1, "replicas": 3, "readyReplicas": 3, "updatedReplicas": 0});
        assert_eq!(
            assess(&stateful_set(rolling(1), status)),
            Health::new(
                HealthStatus::Progressing,
                "Waiting for partitioned roll out to finish: 0 out of 2 new pods have been updated..."
            )
        );
        let status =
            json!({"observedGeneration": 1, "replicas": 3, "readyReplicas": 3, "updatedReplicas": 2});
        assert_eq!(
            assess(&stateful_set(rolling(1), status)),
            Health::new(
                HealthStatus::Healthy,
                "partitioned roll out complete: 2 new pods have been updated..."
            )
        );
    }

    #[test]
    fn on_delete_is_healthy_once_ready() {
        let status = json!({"observedGeneration": 1, "replicas": 3, "readyReplicas": 3});
        assert_eq!(
            assess(&stateful_set(json!({"type": "OnDelete"}), status)),
            Health::new(HealthStatus::Healthy, "statefulset has 3 ready pods")
        );
    }

    #[test]
    fn a_rolling_update_without_partition_compares_revisions() {
        let strategy = json!({"type": "RollingUpdate"});
        let rolling = json!({"observedGeneration": 1, "readyReplicas": 3, "updatedReplicas": 1, "currentReplicas": 2,
            "currentRevision": "db-6b8f", "updateRevision": "db-7c9d"});
        assert_eq!(
            assess(&stateful_set(strategy.clone(), rolling)),
            Health::new(
                HealthStatus::Progressing,
                "waiting for statefulset rolling update to complete 1 pods at revision db-7c9d..."
            )
        );
        let done = json!({"observedGeneration": 1, "readyReplicas": 3, "updatedReplicas": 3, "currentReplicas": 3,
            "currentRevision": "db-7c9d", "updateRevision": "db-7c9d"});
        assert_eq!(
            assess(&stateful_set(strategy, done)),
            Health::new(
                HealthStatus::Healthy,
                "statefulset rolling update complete 3 pods at revision db-7c9d..."
            )
        );
    }
}
