//! Sealed Secrets: a SealedSecret follows its Synced condition once the controller has observed its current
//! generation; until then it waits to be decrypted.
//!
//! Matches Argo CD's `bitnami.com/SealedSecret/health.lua`.

use super::{by_condition, number};
use crate::health::{Health, HealthStatus};
use serde_json::Value;

const WAITING: &str = "Waiting for Sealed Secret to be decrypted";

pub fn assess(kind: &str, obj: &Value) -> Option<Health> {
    (kind == "SealedSecret").then(|| sealed_secret(obj))
}

fn sealed_secret(obj: &Value) -> Health {
    // A Synced condition can still describe an earlier generation.
    let generation = number(&obj["metadata"]["generation"]);
    if generation.is_none() || number(&obj["status"]["observedGeneration"]) != generation {
        return Health::new(HealthStatus::Progressing, WAITING);
    }
    by_condition(obj, "Synced", WAITING)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sealed(generation: u64, status: Value) -> Health {
        let obj = json!({"apiVersion": "bitnami.com/v1alpha1", "kind": "SealedSecret",
            "metadata": {"name": "test", "namespace": "test", "generation": generation}, "status": status});
        assess("SealedSecret", &obj).expect("a known kind")
    }

    fn synced(status: &str, message: &str) -> Value {
        json!({"type": "Synced", "status": status, "message": message, "lastUpdateTime": "2021-02-11T15:57:37Z"})
    }

    #[test]
    fn sealed_secret_not_yet_synced_waits() {
        assert_eq!(
            sealed(1, json!({"observedGeneration": 1})),
            Health::new(HealthStatus::Progressing, WAITING)
        );
    }

    #[test]
    fn sealed_secret_that_cannot_be_decrypted_is_degraded() {
        let message = "no key could decrypt secret (.dockerconfigjson)";
        assert_eq!(
            sealed(1, json!({"observedGeneration": 1, "conditions": [synced("False", message)]})),
            Health::new(HealthStatus::Degraded, message)
        );
    }

    #[test]
    fn sealed_secret_synced_is_healthy() {
        assert_eq!(
            sealed(1, json!({"observedGeneration": 1, "conditions": [synced("True", "")]})),
            Health::new(HealthStatus::Healthy, "")
        );
    }

    #[test]
    fn sealed_secret_with_a_stale_condition_waits() {
        for stale in [synced("True", ""), synced("False", "no key could decrypt secret")] {
            assert_eq!(
                sealed(2, json!({"observedGeneration": 1, "conditions": [stale]})),
                Health::new(HealthStatus::Progressing, WAITING)
            );
        }
    }

    #[test]
    fn sealed_secret_without_an_observed_generation_waits() {
        assert_eq!(
            sealed(1, json!({"conditions": [synced("True", "")]})),
            Health::new(HealthStatus::Progressing, WAITING)
        );
    }
}
