//! Pod: Running and ready is Healthy, Succeeded is Healthy, Failed is Degraded, otherwise Progressing.

use super::{Health, HealthStatus};

pub fn assess(obj: &serde_json::Value) -> Health {
    let status = &obj["status"];
    let message = status["message"].as_str().unwrap_or_default().to_string();
    match status["phase"].as_str().unwrap_or_default() {
        "Succeeded" => Health::new(HealthStatus::Healthy, message),
        "Failed" => Health::new(HealthStatus::Degraded, message),
        "Running" => {
            let ready = status["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            if ready {
                Health::new(HealthStatus::Healthy, message)
            } else {
                Health::new(HealthStatus::Progressing, message)
            }
        }
        _ => Health::new(HealthStatus::Progressing, message),
    }
}
