//! Health assessment with Argo CD's statuses and order; one module a kind. Kinds without an
//! assessment have no health and do not count towards the application's.

mod deployment;
mod job;
mod pod;
mod pvc;
mod service;
mod workload;

use serde::{Deserialize, Serialize};
use std::fmt;

/// Argo CD's health codes, ordered from best to worst: the worst child decides an application's health.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum HealthStatus {
    Healthy,
    Suspended,
    Progressing,
    Missing,
    Degraded,
    Unknown,
}

impl HealthStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Healthy => "Healthy",
            HealthStatus::Suspended => "Suspended",
            HealthStatus::Progressing => "Progressing",
            HealthStatus::Missing => "Missing",
            HealthStatus::Degraded => "Degraded",
            HealthStatus::Unknown => "Unknown",
        }
    }
}

impl fmt::Display for HealthStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A health status and the reason for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Health {
    pub status: HealthStatus,
    pub message: String,
}

impl Health {
    pub fn new(status: HealthStatus, message: impl Into<String>) -> Self {
        Health { status, message: message.into() }
    }
    pub fn healthy() -> Self {
        Health::new(HealthStatus::Healthy, "")
    }
}

/// The health of a live object, or `None` for kinds berth does not assess.
pub fn assess(obj: &serde_json::Value) -> Option<Health> {
    if obj["metadata"]["deletionTimestamp"].is_string() {
        return Some(Health::new(HealthStatus::Progressing, "Pending deletion"));
    }
    let group =
        obj["apiVersion"].as_str().map(|v| crate::resource::split_api_version(v).0).unwrap_or_default();
    match (group, obj["kind"].as_str().unwrap_or_default()) {
        ("apps", "Deployment") => Some(deployment::assess(obj)),
        ("apps", "StatefulSet") => Some(workload::assess_stateful_set(obj)),
        ("apps", "DaemonSet") => Some(workload::assess_daemon_set(obj)),
        ("apps", "ReplicaSet") => Some(workload::assess_replica_set(obj)),
        ("", "Pod") => Some(pod::assess(obj)),
        ("", "Service") => Some(service::assess(obj)),
        ("", "PersistentVolumeClaim") => Some(pvc::assess(obj)),
        ("batch", "Job") => Some(job::assess(obj)),
        _ => None,
    }
}

/// The worst of several health statuses (Healthy when there are none).
pub fn worst<'a>(items: impl IntoIterator<Item = &'a HealthStatus>) -> HealthStatus {
    items.into_iter().copied().max().unwrap_or(HealthStatus::Healthy)
}

/// An integer field, 0 when absent.
fn int(v: &serde_json::Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_order_from_healthy_to_unknown() {
        assert_eq!(
            worst(&[HealthStatus::Healthy, HealthStatus::Degraded, HealthStatus::Progressing]),
            HealthStatus::Degraded
        );
        assert_eq!(worst(&[HealthStatus::Missing, HealthStatus::Suspended]), HealthStatus::Missing);
        assert_eq!(worst(&[]), HealthStatus::Healthy);
        assert!(HealthStatus::Degraded < HealthStatus::Unknown);
    }

    #[test]
    fn kinds_without_an_assessment_have_no_health() {
        assert_eq!(
            assess(&serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}})),
            None
        );
    }
}
