//! HorizontalPodAutoscaler: the first condition that decides wins. Failing to get or update the scale
//! (AbleToScale FailedGetScale/FailedUpdateScale) or to read metrics (ScalingActive
//! FailedGetResourceMetric/InvalidSelector) is Degraded; a true AbleToScale or ScalingLimited is Healthy;
//! anything else is Progressing "Waiting to Autoscale". autoscaling/v1 keeps its conditions as JSON in an
//! annotation.

use super::{Health, HealthStatus, text};
use serde_json::Value;

const V1_CONDITIONS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/conditions";

const DEGRADED: &[(&str, &str)] = &[
    ("AbleToScale", "FailedGetScale"),
    ("AbleToScale", "FailedUpdateScale"),
    ("ScalingActive", "FailedGetResourceMetric"),
    ("ScalingActive", "InvalidSelector"),
];

pub fn assess(obj: &Value, version: &str) -> Health {
    let conditions = if version == "v1" {
        let Some(annotation) = obj["metadata"]["annotations"][V1_CONDITIONS_ANNOTATION].as_str() else {
            return waiting();
        };
        match serde_json::from_str::<Vec<Value>>(annotation) {
            Ok(conditions) => conditions,
            Err(e) => {
                return Health::new(
                    HealthStatus::Unknown,
                    format!("failed to convert conditions annotation to typed: {e}"),
                );
            }
        }
    } else {
        obj["status"]["conditions"].as_array().cloned().unwrap_or_default()
    };
    for c in &conditions {
        let (kind, reason) = (text(&c["type"]), text(&c["reason"]));
        if DEGRADED.contains(&(kind, reason)) {
            return Health::new(HealthStatus::Degraded, text(&c["message"]));
        }
        if matches!(kind, "AbleToScale" | "ScalingLimited") && c["status"] == "True" {
            return Health::new(HealthStatus::Healthy, text(&c["message"]));
        }
    }
    waiting()
}

fn waiting() -> Health {
    Health::new(HealthStatus::Progressing, "Waiting to Autoscale")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hpa_v2(conditions: Value) -> Value {
        json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "web"},
               "spec": {"minReplicas": 1, "maxReplicas": 5, "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}},
               "status": {"currentReplicas": 1, "desiredReplicas": 1, "conditions": conditions}})
    }

    #[test]
    fn able_to_scale_is_healthy() {
        let hpa = hpa_v2(json!([
            {"type": "AbleToScale", "status": "True", "reason": "ReadyForNewScale", "message": "recommended size matches current size"},
            {"type": "ScalingActive", "status": "True", "reason": "ValidMetricFound"}]));
        assert_eq!(
            assess(&hpa, "v2"),
            Health::new(HealthStatus::Healthy, "recommended size matches current size")
        );
    }

    #[test]
    fn failing_to_read_metrics_or_scale_is_degraded() {
        let no_metrics = hpa_v2(json!([
            {"type": "ScalingActive", "status": "False", "reason": "FailedGetResourceMetric",
             "message": "the HPA was unable to compute the replica count: failed to get cpu utilization"},
            {"type": "AbleToScale", "status": "True", "reason": "SucceededGetScale"}]));
        assert_eq!(
            assess(&no_metrics, "v2"),
            Health::new(
                HealthStatus::Degraded,
                "the HPA was unable to compute the replica count: failed to get cpu utilization"
            )
        );
        let no_scale = hpa_v2(json!([{"type": "AbleToScale", "status": "False", "reason": "FailedGetScale",
            "message": "deployments/scale.apps \"web\" not found"}]));
        assert_eq!(
            assess(&no_scale, "v2"),
            Health::new(HealthStatus::Degraded, "deployments/scale.apps \"web\" not found")
        );
    }

    #[test]
    fn scaling_limited_is_healthy() {
        let hpa = hpa_v2(json!([{"type": "ScalingLimited", "status": "True", "reason": "TooFewReplicas",
            "message": "the desired replica count is less than the minimum replica count"}]));
        assert_eq!(
            assess(&hpa, "v2"),
            Health::new(
                HealthStatus::Healthy,
                "the desired replica count is less than the minimum replica count"
            )
        );
    }

    #[test]
    fn no_deciding_condition_is_progressing() {
        assert_eq!(
            assess(&hpa_v2(json!([])), "v2"),
            Health::new(HealthStatus::Progressing, "Waiting to Autoscale")
        );
        let inactive =
            hpa_v2(json!([{"type": "ScalingActive", "status": "False", "reason": "ScalingDisabled"}]));
        assert_eq!(assess(&inactive, "v2"), Health::new(HealthStatus::Progressing, "Waiting to Autoscale"));
    }

    #[test]
    fn v1_reads_its_conditions_from_the_annotation() {
        let mut hpa = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "annotations": {}}, "spec": {"maxReplicas": 3}});
        assert_eq!(assess(&hpa, "v1"), Health::new(HealthStatus::Progressing, "Waiting to Autoscale"));
        hpa["metadata"]["annotations"][V1_CONDITIONS_ANNOTATION] = json!(
            r#"[{"type":"AbleToScale","status":"True","lastTransitionTime":"2026-01-01T00:00:00Z","reason":"SucceededRescale","message":"the HPA controller was able to update the target scale to 2"}]"#
        );
        assert_eq!(
            assess(&hpa, "v1"),
            Health::new(HealthStatus::Healthy, "the HPA controller was able to update the target scale to 2")
        );
        hpa["metadata"]["annotations"][V1_CONDITIONS_ANNOTATION] = json!("not json");
        let broken = assess(&hpa, "v1");
        assert_eq!(broken.status, HealthStatus::Unknown);
        assert!(
            broken.message.starts_with("failed to convert conditions annotation to typed: "),
            "{}",
            broken.message
        );
    }
}
