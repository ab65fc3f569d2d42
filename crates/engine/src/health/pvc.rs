//! PersistentVolumeClaim: Bound is Healthy, Pending Progressing, Lost Degraded; any other phase Unknown.

use super::{Health, HealthStatus};

pub fn assess(obj: &serde_json::Value) -> Health {
    let status = match obj["status"]["phase"].as_str() {
        Some("Bound") => HealthStatus::Healthy,
        Some("Pending") => HealthStatus::Progressing,
        Some("Lost") => HealthStatus::Degraded,
        _ => HealthStatus::Unknown,
    };
    Health::new(status, "")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_phase_has_its_status() {
        for (phase, status) in [
            ("Bound", HealthStatus::Healthy),
            ("Pending", HealthStatus::Progressing),
            ("Lost", HealthStatus::Degraded),
            ("Resizing", HealthStatus::Unknown),
        ] {
            let pvc = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"]}, "status": {"phase": phase}});
            assert_eq!(assess(&pvc), Health::new(status, ""), "{phase}");
        }
    }
}
