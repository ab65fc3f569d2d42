//! KEDA: a ScaledObject or ScaledJob is Degraded when not Ready (a ScaledObject also when a trigger falls
//! back), Healthy when Ready, Suspended when Ready but paused; the message is that of the last condition that
//! counted. A ScaledObject whose HPA only lacks metrics yet is still Progressing.
//!
//! Matches Argo CD's `keda.sh/{ScaledObject,ScaledJob}/health.lua`.

use super::conditions;
use crate::health::{Health, HealthStatus, text};
use serde_json::Value;

/// The reason KEDA gives when the scaled object is configured but its HPA has no metrics yet.
const HPA_METRICS_UNAVAILABLE: &str = "HPAMetricsUnavailable";

pub fn assess(kind: &str, obj: &Value) -> Option<Health> {
    Some(match kind {
        "ScaledObject" => scaled(obj, true, "Creating HorizontalPodAutoscaler Object"),
        "ScaledJob" => scaled(obj, false, "Waiting for ScaledJob"),
        _ => return None,
    })
}

/// `scaled_object` selects the ScaledObject rules (Fallback degrades, Ready Unknown does not); ScaledJob's
/// Ready Unknown degrades instead.
fn scaled(obj: &Value, scaled_object: bool, waiting: &str) -> Health {
    let (mut healthy, mut degraded, mut suspended, mut metrics_pending) = (false, false, false, false);
    let mut message = "";
    for c in conditions(obj) {
        let (kind, status) = (text(&c["type"]), text(&c["status"]));
        let counted = match (kind, status) {
            ("Ready", "False") if scaled_object && c["reason"] == HPA_METRICS_UNAVAILABLE => {
                metrics_pending = true;
                true
            }
            ("Ready", "False") => {
                degraded = true;
                true
            }
            ("Ready", "Unknown") if !scaled_object => {
                degraded = true;
                true
            }
            ("Fallback", "True") if scaled_object => {
                degraded = true;
                true
            }
            ("Ready", "True") => {
                healthy = true;
                true
            }
            ("Paused", "True") => {
                suspended = true;
                true
            }
            _ => false,
        };
        if counted {
            message = text(&c["message"]);
        }
    }
    match (degraded, metrics_pending, healthy, suspended) {
        (true, ..) => Health::new(HealthStatus::Degraded, message),
        (_, true, ..) => Health::new(HealthStatus::Progressing, message),
        (_, _, true, false) => Health::new(HealthStatus::Healthy, message),
        (_, _, true, true) => Health::new(HealthStatus::Suspended, message),
        _ => Health::new(HealthStatus::Progressing, waiting),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn health(kind: &str, conditions: Value) -> Health {
        let obj = json!({"apiVersion": "keda.sh/v1alpha1", "kind": kind, "metadata": {"name": "keda", "namespace": "keda"},
            "status": {"conditions": conditions}});
        assess(kind, &obj).expect("a known kind")
    }

    fn condition(kind: &str, status: &str, reason: &str, message: &str) -> Value {
        json!({"type": kind, "status": status, "reason": reason, "message": message})
    }

    #[test]
    fn scaled_object_without_conditions_is_creating_its_hpa() {
        assert_eq!(
            health("ScaledObject", json!([])),
            Health::new(HealthStatus::Progressing, "Creating HorizontalPodAutoscaler Object")
        );
    }

    #[test]
    fn scaled_object_with_a_wrong_spec_is_degraded() {
        for message in [
            "ScaledObject doesn't have correct Idle/Min/Max Replica Counts specification",
            "ScaledObject doesn't have correct triggers specification",
        ] {
            let conditions = json!([
                condition("Ready", "False", "ScaledObjectCheckFailed", message),
                condition("Active", "False", "ScaledObjectCheckFailed", "not active")
            ]);
            assert_eq!(health("ScaledObject", conditions), Health::new(HealthStatus::Degraded, message));
        }
    }

    #[test]
    fn scaled_object_ready_is_healthy() {
        let message = "ScaledObject is defined correctly and is ready for scaling";
        let conditions = json!([condition("Ready", "True", "ScaledObjectReady", message),
                                condition("Active", "False", "ScalerNotActive", "Scaling is not performed because triggers are not active"),
                                {"type": "Paused", "status": "Unknown"}]);
        assert_eq!(health("ScaledObject", conditions), Health::new(HealthStatus::Healthy, message));
    }

    #[test]
    fn scaled_object_paused_is_suspended() {
        let conditions = json!([
            condition("Ready", "True", "ScaledObjectReady", "ready"),
            condition("Paused", "True", "ScaledObjectPaused", "ScaledObject is paused")
        ]);
        assert_eq!(
            health("ScaledObject", conditions),
            Health::new(HealthStatus::Suspended, "ScaledObject is paused")
        );
    }

    #[test]
    fn scaled_object_falling_back_is_degraded() {
        let message = "At least one trigger is falling back on this scaled object";
        let conditions = json!([
            condition("Ready", "True", "ScaledObjectReady", "ready"),
            condition("Fallback", "True", "FallbackExists", message)
        ]);
        assert_eq!(health("ScaledObject", conditions), Health::new(HealthStatus::Degraded, message));
    }

    #[test]
    fn scaled_object_waiting_for_hpa_metrics_is_progressing() {
        let message = "ScaledObject is configured correctly but HPA is not healthy: FailedGetResourceMetric";
        let conditions = json!([condition("Ready", "False", HPA_METRICS_UNAVAILABLE, message),
                                condition("Fallback", "False", "NoFallbackFound", "No fallbacks are active on this scaled object"),
                                {"type": "Paused", "status": "Unknown"}]);
        assert_eq!(health("ScaledObject", conditions), Health::new(HealthStatus::Progressing, message));
    }

    #[test]
    fn scaled_job_follows_ready_and_paused() {
        assert_eq!(
            health("ScaledJob", json!([])),
            Health::new(HealthStatus::Progressing, "Waiting for ScaledJob")
        );
        let failing = "Triggers defined in ScaledJob are not working correctly";
        assert_eq!(
            health("ScaledJob", json!([condition("Ready", "False", "ScaledJobCheckFailed", failing)])),
            Health::new(HealthStatus::Degraded, failing)
        );
        let ready = "ScaledJob is defined correctly and is ready to scaling";
        assert_eq!(
            health("ScaledJob", json!([condition("Ready", "True", "ScaledJobReady", ready)])),
            Health::new(HealthStatus::Healthy, ready)
        );
        let partly = "Some triggers defined in ScaledJob are not working correctly";
        assert_eq!(
            health("ScaledJob", json!([condition("Ready", "Unknown", "PartialTriggerError", partly)])),
            Health::new(HealthStatus::Degraded, partly)
        );
        let paused = "ScaledJob is paused";
        assert_eq!(
            health(
                "ScaledJob",
                json!([
                    condition("Ready", "True", "ScaledJobReady", ready),
                    condition("Paused", "True", "ScaledJobPaused", paused)
                ])
            ),
            Health::new(HealthStatus::Suspended, paused)
        );
    }
}
