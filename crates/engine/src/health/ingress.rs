//! Ingress (networking.k8s.io and extensions): Progressing until `status.loadBalancer.ingress` has an
//! address, then Healthy.

use super::{Health, HealthStatus};

pub fn assess(obj: &serde_json::Value) -> Health {
    if has_address(obj) { Health::healthy() } else { Health::new(HealthStatus::Progressing, "") }
}

/// Whether `status.loadBalancer.ingress` lists at least one address (shared with Service).
pub(super) fn has_address(obj: &serde_json::Value) -> bool {
    obj["status"]["loadBalancer"]["ingress"].as_array().is_some_and(|i| !i.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_ingress_is_progressing_until_it_has_an_address() {
        let mut ingress = json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "web"}, "spec": {"rules": [{"host": "web.example.com"}]}, "status": {"loadBalancer": {}}});
        assert_eq!(assess(&ingress), Health::new(HealthStatus::Progressing, ""));
        ingress["status"]["loadBalancer"]["ingress"] = json!([{"hostname": "lb.example.com"}]);
        assert_eq!(assess(&ingress), Health::healthy());
    }
}
