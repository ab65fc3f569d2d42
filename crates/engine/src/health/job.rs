//! Job: a true Complete condition is Healthy, a true Failed condition Degraded (with its message), a suspended
//! Job (`spec.suspend` or a true Suspended condition) Suspended; otherwise Progressing.

use super::{Health, HealthStatus, condition, text};

pub fn assess(obj: &serde_json::Value) -> Health {
    let holds = |kind| condition(obj, kind).filter(|c| c["status"] == "True");
    if let Some(failed) = holds("Failed") {
        let message =
            Some(text(&failed["message"])).filter(|m| !m.is_empty()).unwrap_or(text(&failed["reason"]));
        return Health::new(HealthStatus::Degraded, message);
    }
    if let Some(complete) = holds("Complete") {
        return Health::new(HealthStatus::Healthy, text(&complete["message"]));
    }
    if let Some(suspended) = holds("Suspended") {
        return Health::new(HealthStatus::Suspended, text(&suspended["message"]));
    }
    if obj["spec"]["suspend"].as_bool() == Some(true) {
        return Health::new(HealthStatus::Suspended, "");
    }
    Health::new(HealthStatus::Progressing, "")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn job(suspend: bool, status: Value) -> Value {
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate"},
               "spec": {"suspend": suspend, "backoffLimit": 1}, "status": status})
    }

    #[test]
    fn a_running_job_is_progressing() {
        assert_eq!(
            assess(&job(false, json!({"active": 1, "startTime": "2026-01-01T00:00:00Z"}))),
            Health::new(HealthStatus::Progressing, "")
        );
    }

    #[test]
    fn a_complete_job_is_healthy() {
        let status = json!({"succeeded": 1, "conditions": [
            {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached"},
            {"type": "Complete", "status": "True", "reason": "CompletionsReached", "message": "Reached expected number of succeeded pods"}]});
        assert_eq!(
            assess(&job(false, status)),
            Health::new(HealthStatus::Healthy, "Reached expected number of succeeded pods")
        );
    }

    #[test]
    fn a_failed_job_is_degraded_with_its_message_or_reason() {
        let status = json!({"failed": 2, "conditions": [
            {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded"},
            {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]});
        assert_eq!(
            assess(&job(false, status)),
            Health::new(HealthStatus::Degraded, "Job has reached the specified backoff limit")
        );
        let status =
            json!({"conditions": [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}]});
        assert_eq!(assess(&job(false, status)), Health::new(HealthStatus::Degraded, "DeadlineExceeded"));
    }

    #[test]
    fn a_suspended_job_is_suspended() {
        let status = json!({"conditions": [{"type": "Suspended", "status": "True", "reason": "JobSuspended", "message": "Job suspended"}]});
        assert_eq!(assess(&job(true, status)), Health::new(HealthStatus::Suspended, "Job suspended"));
        assert_eq!(assess(&job(true, json!({}))), Health::new(HealthStatus::Suspended, ""));
        let resumed = json!({"active": 1, "conditions": [{"type": "Suspended", "status": "False", "reason": "JobResumed"}]});
        assert_eq!(assess(&job(false, resumed)), Health::new(HealthStatus::Progressing, ""));
    }
}
