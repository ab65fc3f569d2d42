//! PersistentVolumeClaim: Bound is Healthy, Lost is Degraded, Pending is Progressing.

use super::{Health, HealthStatus};

pub fn assess(obj: &serde_json::Value) -> Health {
    match obj["status"]["phase"].as_str() {
        Some("Bound") => Health::healthy(),
        Some("Lost") => Health::new(HealthStatus::Degraded, ""),
        _ => Health::new(HealthStatus::Progressing, ""),
    }
}
