//! Service: a LoadBalancer is Progressing until `status.loadBalancer.ingress` has an address; every other
//! type is Healthy.

use super::{Health, HealthStatus};

pub fn assess(obj: &serde_json::Value) -> Health {
    if obj["spec"]["type"] == "LoadBalancer" && !super::ingress::has_address(obj) {
        return Health::new(HealthStatus::Progressing, "");
    }
    Health::healthy()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_cluster_ip_service_is_healthy() {
        let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
            "spec": {"type": "ClusterIP", "ports": [{"port": 80}]}, "status": {"loadBalancer": {}}});
        assert_eq!(assess(&svc), Health::healthy());
    }

    #[test]
    fn a_load_balancer_is_progressing_until_it_has_an_address() {
        let mut svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}, "status": {"loadBalancer": {}}});
        assert_eq!(assess(&svc), Health::new(HealthStatus::Progressing, ""));
        svc["status"]["loadBalancer"]["ingress"] = json!([]);
        assert_eq!(assess(&svc), Health::new(HealthStatus::Progressing, ""));
        svc["status"]["loadBalancer"]["ingress"] = json!([{"ip": "203.0.113.10"}]);
        assert_eq!(assess(&svc), Health::healthy());
    }
}
