//! Strimzi: Kafka, KafkaTopic, KafkaUser, KafkaConnect, KafkaConnector and KafkaBridge are Degraded by a
//! NotReady condition (except a Kafka cluster still being created) and Healthy by a Ready one, whichever comes
//! first; else still waiting.
//!
//! Matches Argo CD's `kafka.strimzi.io/{Kafka,KafkaTopic,KafkaUser,KafkaConnect,KafkaConnector,KafkaBridge}/health.lua`.

use super::conditions;
use crate::health::{Health, HealthStatus, text};
use serde_json::Value;

pub fn assess(kind: &str, obj: &Value) -> Option<Health> {
    let waiting = match kind {
        "Kafka" => "Waiting for Kafka Cluster",
        "KafkaTopic" => "Waiting for Kafka Topic",
        "KafkaUser" => "Waiting for Kafka User",
        "KafkaConnect" => "Waiting for Kafka Connect",
        "KafkaConnector" => "Waiting for KafkaConnector",
        "KafkaBridge" => "Waiting for KafkaBridge",
        _ => return None,
    };
    // A Kafka cluster reports NotReady while it is first created.
    let creating = |c: &Value| kind == "Kafka" && c["reason"] == "Creating";
    let verdict =
        conditions(obj).iter().filter(|c| c["status"] == "True").find_map(|c| match text(&c["type"]) {
            "NotReady" if !creating(c) => Some(Health::new(HealthStatus::Degraded, text(&c["message"]))),
            "Ready" => Some(Health::healthy()),
            _ => None,
        });
    Some(verdict.unwrap_or_else(|| Health::new(HealthStatus::Progressing, waiting)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn health(kind: &str, conditions: Value) -> Health {
        let obj = json!({"apiVersion": "kafka.strimzi.io/v1beta2", "kind": kind, "metadata": {"name": "my-cluster"},
            "status": {"conditions": conditions, "observedGeneration": 1}});
        assess(kind, &obj).expect("a known kind")
    }

    fn not_ready(message: &str) -> Value {
        json!([{"type": "NotReady", "status": "True", "message": message, "lastTransitionTime": "2020-05-28T13:43:05.813Z"}])
    }

    const KINDS: [(&str, &str); 6] = [
        ("Kafka", "Waiting for Kafka Cluster"),
        ("KafkaTopic", "Waiting for Kafka Topic"),
        ("KafkaUser", "Waiting for Kafka User"),
        ("KafkaConnect", "Waiting for Kafka Connect"),
        ("KafkaConnector", "Waiting for KafkaConnector"),
        ("KafkaBridge", "Waiting for KafkaBridge"),
    ];

    #[test]
    fn kinds_without_status_wait() {
        for (kind, waiting) in KINDS {
            assert_eq!(health(kind, Value::Null), Health::new(HealthStatus::Progressing, waiting));
        }
    }

    #[test]
    fn kinds_ready_are_healthy() {
        for (kind, _) in KINDS {
            assert_eq!(health(kind, json!([{"type": "Ready", "status": "True"}])), Health::healthy());
        }
    }

    #[test]
    fn kinds_not_ready_are_degraded_with_the_message() {
        for (kind, message) in [
            (
                "Kafka",
                "Exceeded timeout of 300000ms while waiting for StatefulSet resource my-cluster-zookeeper in namespace default to be ready",
            ),
            ("KafkaTopic", "Invalid value abcd for configuration retention.ms: Not a number of type LONG"),
            ("KafkaUser", "Authorization needs to be enabled in the Kafka custom resource"),
            ("KafkaConnect", "Error"),
            ("KafkaConnector", "The following tasks have failed: 0, see connectorStatus for more details."),
            ("KafkaBridge", "Error"),
        ] {
            assert_eq!(health(kind, not_ready(message)), Health::new(HealthStatus::Degraded, message));
        }
    }

    #[test]
    fn kafka_being_created_is_still_waiting() {
        let creating = json!([{"type": "NotReady", "status": "True", "reason": "Creating", "message": "Kafka cluster is being deployed"}]);
        assert_eq!(
            health("Kafka", creating.clone()),
            Health::new(HealthStatus::Progressing, "Waiting for Kafka Cluster")
        );
        assert_eq!(
            health("KafkaTopic", creating),
            Health::new(HealthStatus::Degraded, "Kafka cluster is being deployed")
        );
    }
}
