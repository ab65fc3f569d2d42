//! StatefulSet, DaemonSet and ReplicaSet: Healthy once every replica is updated and ready.

use super::{Health, HealthStatus, int};

fn observed(obj: &serde_json::Value) -> bool {
    int(&obj["metadata"]["generation"]) <= int(&obj["status"]["observedGeneration"])
}

pub fn assess_stateful_set(obj: &serde_json::Value) -> Health {
    let replicas = obj["spec"]["replicas"].as_i64().unwrap_or(1);
    let ready = int(&obj["status"]["readyReplicas"]);
    if !observed(obj) || ready < replicas {
        return Health::new(
            HealthStatus::Progressing,
            format!("Waiting for {ready}/{replicas} pods to be ready..."),
        );
    }
    Health::healthy()
}

pub fn assess_daemon_set(obj: &serde_json::Value) -> Health {
    let desired = int(&obj["status"]["desiredNumberScheduled"]);
    let ready = int(&obj["status"]["numberReady"]);
    if !observed(obj) || ready < desired {
        return Health::new(
            HealthStatus::Progressing,
            format!("Waiting for daemon set rollout: {ready} of {desired} pods are ready..."),
        );
    }
    Health::healthy()
}

pub fn assess_replica_set(obj: &serde_json::Value) -> Health {
    let replicas = obj["spec"]["replicas"].as_i64().unwrap_or(1);
    let available = int(&obj["status"]["availableReplicas"]);
    if !observed(obj) || available < replicas {
        return Health::new(
            HealthStatus::Progressing,
            format!("Waiting for rollout to finish: {available} out of {replicas} replicas are available..."),
        );
    }
    Health::healthy()
}
