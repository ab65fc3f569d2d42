//! Job: Complete is Healthy, Failed is Degraded, suspended is Suspended, otherwise Progressing.

use super::{Health, HealthStatus};

pub fn assess(obj: &serde_json::Value) -> Health {
    for c in obj["status"]["conditions"].as_array().into_iter().flatten() {
        if c["status"] != "True" {
            continue;
        }
        let message = c["message"].as_str().unwrap_or_default();
        match c["type"].as_str() {
            Some("Complete") => return Health::new(HealthStatus::Healthy, message),
            Some("Failed") => return Health::new(HealthStatus::Degraded, message),
            Some("Suspended") => return Health::new(HealthStatus::Suspended, message),
            _ => {}
        }
    }
    Health::new(HealthStatus::Progressing, "")
}
