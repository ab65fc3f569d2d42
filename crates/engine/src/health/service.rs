//! Service: a LoadBalancer is Progressing until it has an ingress address; other types are Healthy.

use super::{Health, HealthStatus};

pub fn assess(obj: &serde_json::Value) -> Health {
    if obj["spec"]["type"] == "LoadBalancer"
        && obj["status"]["loadBalancer"]["ingress"].as_array().is_none_or(|i| i.is_empty())
    {
        return Health::new(HealthStatus::Progressing, "Waiting for the load balancer to get an address");
    }
    Health::healthy()
}
