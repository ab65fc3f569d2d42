//! External Secrets: ExternalSecret, SecretStore, ClusterSecretStore and PushSecret follow their Ready
//! condition (an ExternalSecret refreshed only on change must have become Ready since its last refresh); a
//! ClusterExternalSecret follows its newest condition.
//!
//! Matches Argo CD's `external-secrets.io/{ExternalSecret,SecretStore,ClusterSecretStore,PushSecret,
//! ClusterExternalSecret}/health.lua`.

use super::{by_condition, conditions};
use crate::health::{Health, HealthStatus, text};
use serde_json::Value;

pub fn assess(kind: &str, obj: &Value) -> Option<Health> {
    Some(match kind {
        "ExternalSecret" => external_secret(obj),
        "SecretStore" => by_condition(obj, "Ready", "Waiting for SecretStore"),
        "ClusterSecretStore" => by_condition(obj, "Ready", "Waiting for ClusterSecretStore"),
        "PushSecret" => by_condition(obj, "Ready", "Waiting for PushSecret"),
        "ClusterExternalSecret" => cluster_external_secret(obj),
        _ => return None,
    })
}

fn external_secret(obj: &Value) -> Health {
    let on_change = obj["spec"]["refreshPolicy"] == "OnChange";
    // RFC 3339 times of one controller compare as text.
    let refreshed = text(&obj["status"]["refreshTime"]);
    conditions(obj)
        .iter()
        .filter(|c| c["type"] == "Ready")
        .filter(|c| !on_change || text(&c["lastTransitionTime"]) >= refreshed)
        .find_map(|c| match text(&c["status"]) {
            "True" => Some(Health::new(HealthStatus::Healthy, text(&c["message"]))),
            "False" => Some(Health::new(HealthStatus::Degraded, text(&c["message"]))),
            _ => None,
        })
        .unwrap_or_else(|| Health::new(HealthStatus::Progressing, "Waiting for ExternalSecret"))
}

/// New conditions are appended, so the last one is the current state.
fn cluster_external_secret(obj: &Value) -> Health {
    let last = conditions(obj).last().filter(|c| c["status"] == "True");
    match last.map(|c| (text(&c["type"]), text(&c["message"]))) {
        Some(("Ready", message)) => Health::new(HealthStatus::Healthy, message),
        Some(("PartiallyReady" | "NotReady", message)) => Health::new(HealthStatus::Degraded, message),
        _ => Health::new(HealthStatus::Progressing, "Waiting for ClusterExternalSecret"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(kind: &str, spec: Value, status: Value) -> Value {
        json!({"apiVersion": "external-secrets.io/v1beta1", "kind": kind,
               "metadata": {"name": "test", "namespace": "argocd"}, "spec": spec, "status": status})
    }

    fn ready(status: &str, message: &str, at: &str) -> Value {
        json!({"type": "Ready", "status": status, "reason": "r", "message": message, "lastTransitionTime": at})
    }

    fn health(kind: &str, spec: Value, status: Value) -> Health {
        assess(kind, &object(kind, spec, status)).expect("a known kind")
    }

    #[test]
    fn external_secret_without_conditions_waits() {
        assert_eq!(
            health("ExternalSecret", json!({}), json!({"refreshTime": null})),
            Health::new(HealthStatus::Progressing, "Waiting for ExternalSecret")
        );
    }

    #[test]
    fn external_secret_that_cannot_fetch_is_degraded() {
        let message = "could not get secret data from provider: key \"secret/sa/example\" from ExternalSecret \"test-degraded\"";
        assert_eq!(
            health(
                "ExternalSecret",
                json!({}),
                json!({"conditions": [ready("False", message, "2021-11-16T17:59:34Z")]})
            ),
            Health::new(HealthStatus::Degraded, message)
        );
    }

    #[test]
    fn external_secret_synced_is_healthy() {
        let status = json!({"conditions": [ready("True", "Secret was synced", "2021-11-16T17:59:34Z")],
                            "refreshTime": "2021-11-16T18:32:24Z"});
        assert_eq!(
            health("ExternalSecret", json!({}), status),
            Health::new(HealthStatus::Healthy, "Secret was synced")
        );
    }

    #[test]
    fn external_secret_on_change_counts_only_a_ready_since_the_last_refresh() {
        let spec = json!({"refreshPolicy": "OnChange"});
        let current = json!({"conditions": [ready("True", "Secret was synced", "2021-11-16T18:32:24Z")],
                             "refreshTime": "2021-11-16T18:32:24Z"});
        assert_eq!(
            health("ExternalSecret", spec.clone(), current),
            Health::new(HealthStatus::Healthy, "Secret was synced")
        );
        let stale = json!({"conditions": [ready("True", "Secret was synced", "2021-11-16T17:59:34Z")],
                           "refreshTime": "2021-11-16T18:32:24Z"});
        assert_eq!(
            health("ExternalSecret", spec, stale),
            Health::new(HealthStatus::Progressing, "Waiting for ExternalSecret")
        );
    }

    #[test]
    fn secret_stores_follow_ready() {
        for kind in ["SecretStore", "ClusterSecretStore"] {
            let at = "2022-01-01T00:00:00Z";
            assert_eq!(
                health(
                    kind,
                    json!({}),
                    json!({"conditions": [ready("False", "unable to validate store", at)]})
                ),
                Health::new(HealthStatus::Degraded, "unable to validate store")
            );
            assert_eq!(
                health(kind, json!({}), json!({"conditions": [ready("True", "store validated", at)]})),
                Health::new(HealthStatus::Healthy, "store validated")
            );
            assert_eq!(
                health(kind, json!({}), json!({})),
                Health::new(HealthStatus::Progressing, format!("Waiting for {kind}"))
            );
        }
    }

    #[test]
    fn push_secret_follows_ready() {
        let at = "2023-01-01T00:00:00Z";
        assert_eq!(
            health("PushSecret", json!({}), json!({})),
            Health::new(HealthStatus::Progressing, "Waiting for PushSecret")
        );
        let failed = "set secret failed: could not write remote ref test to target secretstore my-store: Error making API request.";
        assert_eq!(
            health("PushSecret", json!({}), json!({"conditions": [ready("False", failed, at)]})),
            Health::new(HealthStatus::Degraded, failed)
        );
        assert_eq!(
            health(
                "PushSecret",
                json!({}),
                json!({"conditions": [ready("True", "PushSecret synced successfully", at)]})
            ),
            Health::new(HealthStatus::Healthy, "PushSecret synced successfully")
        );
    }

    #[test]
    fn cluster_external_secret_follows_its_newest_condition() {
        let kind = "ClusterExternalSecret";
        let failed = "one or more namespaces failed";
        assert_eq!(
            health(kind, json!({}), json!({})),
            Health::new(HealthStatus::Progressing, "Waiting for ClusterExternalSecret")
        );
        assert_eq!(
            health(
                kind,
                json!({}),
                json!({"conditions": [{"type": "NotReady", "status": "True", "message": failed}]})
            ),
            Health::new(HealthStatus::Degraded, failed)
        );
        assert_eq!(
            health(
                kind,
                json!({}),
                json!({"conditions": [{"type": "PartiallyReady", "status": "True", "message": failed}]})
            ),
            Health::new(HealthStatus::Degraded, failed)
        );
        let healed_then_failed = json!({"conditions": [
            {"type": "Ready", "status": "True"},
            {"type": "PartiallyReady", "status": "True", "message": failed}]});
        assert_eq!(health(kind, json!({}), healed_then_failed), Health::new(HealthStatus::Degraded, failed));
        assert_eq!(
            health(kind, json!({}), json!({"conditions": [{"type": "Ready", "status": "True"}]})),
            Health::new(HealthStatus::Healthy, "")
        );
    }
}
