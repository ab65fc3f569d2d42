//! Pod: by phase. Pending is Progressing, Succeeded Healthy, Failed Degraded (with the pod's or the failed
//! container's message). A Running pod that restarts forever is Healthy when ready, Degraded when a container
//! waits in an error or back-off state or has terminated before, else Progressing; a Running pod that runs to
//! completion (restartPolicy OnFailure or Never, typically a hook) stays Progressing until it ends.

use super::{Health, HealthStatus, condition, text};
use serde_json::Value;

pub fn assess(obj: &Value) -> Health {
    let status = &obj["status"];
    let message = text(&status["message"]);
    // Kubernetes' default; only objects that never reached the API server lack it.
    let restarts_always = obj["spec"]["restartPolicy"].as_str().is_none_or(|p| p == "Always");
    let containers = status["containerStatuses"].as_array().map(Vec::as_slice).unwrap_or_default();

    // Only for pods that restart forever: a failing hook pod must not fail its sync before it ends.
    if restarts_always {
        let waiting_on_errors: Vec<&str> = containers
            .iter()
            .map(|c| &c["state"]["waiting"])
            .filter(|w| {
                let reason = text(&w["reason"]);
                reason.starts_with("Err") || reason.ends_with("Error") || reason.ends_with("BackOff")
            })
            .map(|w| text(&w["message"]))
            .collect();
        if !waiting_on_errors.is_empty() {
            return Health::new(HealthStatus::Degraded, waiting_on_errors.join(", "));
        }
    }

    match text(&status["phase"]) {
        "Pending" => Health::new(HealthStatus::Progressing, message),
        "Succeeded" => Health::new(HealthStatus::Healthy, message),
        "Failed" => {
            if !message.is_empty() {
                return Health::new(HealthStatus::Degraded, message);
            }
            let init = status["initContainerStatuses"].as_array().map(Vec::as_slice).unwrap_or_default();
            let failure = init.iter().chain(containers).find_map(failure_message).unwrap_or_default();
            Health::new(HealthStatus::Degraded, failure)
        }
        "Running" if restarts_always => {
            if condition(obj, "Ready").is_some_and(|c| c["status"] == "True") {
                Health::new(HealthStatus::Healthy, message)
            } else if containers.iter().any(|c| c["lastState"]["terminated"].is_object()) {
                Health::new(HealthStatus::Degraded, message)
            } else {
                Health::new(HealthStatus::Progressing, message)
            }
        }
        "Running" => Health::new(HealthStatus::Progressing, message),
        _ => Health::new(HealthStatus::Unknown, message),
    }
}

/// Why a terminated container failed: its message, OOMKilled, or its exit code.
fn failure_message(container: &Value) -> Option<String> {
    let terminated = container["state"]["terminated"].as_object()?;
    let message = terminated.get("message").and_then(Value::as_str).unwrap_or_default();
    let exit_code = terminated.get("exitCode").and_then(Value::as_i64).unwrap_or(0);
    if !message.is_empty() {
        Some(message.to_string())
    } else if terminated.get("reason").and_then(Value::as_str) == Some("OOMKilled") {
        Some("OOMKilled".to_string())
    } else if exit_code != 0 {
        Some(format!("container {:?} failed with exit code {exit_code}", text(&container["name"])))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(restart_policy: &str, status: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-0"},
               "spec": {"restartPolicy": restart_policy, "containers": [{"name": "main", "image": "nginx"}]},
               "status": status})
    }

    #[test]
    fn a_pending_pod_is_progressing_with_its_message() {
        let status = json!({"phase": "Pending", "message": "0/1 nodes are available"});
        assert_eq!(
            assess(&pod("Always", status)),
            Health::new(HealthStatus::Progressing, "0/1 nodes are available")
        );
    }

    #[test]
    fn a_running_ready_pod_is_healthy_and_an_unready_one_progressing() {
        let ready = json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{"name": "main", "ready": true, "state": {"running": {}}}]});
        assert_eq!(assess(&pod("Always", ready)), Health::healthy());
        let starting = json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}],
            "containerStatuses": [{"name": "main", "ready": false, "state": {"running": {}}}]});
        assert_eq!(assess(&pod("Always", starting)), Health::new(HealthStatus::Progressing, ""));
    }

    #[test]
    fn a_running_unready_pod_that_restarted_is_degraded() {
        let restarted = json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}],
            "containerStatuses": [{"name": "main", "ready": false, "restartCount": 1, "state": {"running": {}},
                "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}}}]});
        assert_eq!(assess(&pod("Always", restarted)), Health::new(HealthStatus::Degraded, ""));
    }

    #[test]
    fn a_container_in_back_off_or_error_is_degraded_with_the_waiting_messages() {
        let crashing = json!({"phase": "Running", "containerStatuses": [
            {"name": "main", "state": {"waiting": {"reason": "CrashLoopBackOff",
                "message": "back-off 5m0s restarting failed container=main pod=web-0"}}},
            {"name": "side", "state": {"waiting": {"reason": "ErrImagePull", "message": "pull access denied"}}},
            {"name": "ok", "state": {"waiting": {"reason": "ContainerCreating"}}}]});
        assert_eq!(
            assess(&pod("Always", crashing.clone())),
            Health::new(
                HealthStatus::Degraded,
                "back-off 5m0s restarting failed container=main pod=web-0, pull access denied"
            )
        );
        // A hook pod is left to finish or fail on its own.
        assert_eq!(assess(&pod("Never", crashing)).status, HealthStatus::Progressing);
    }

    #[test]
    fn a_running_pod_that_runs_to_completion_is_progressing() {
        let running = json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]});
        assert_eq!(assess(&pod("OnFailure", running.clone())).status, HealthStatus::Progressing);
        assert_eq!(assess(&pod("Never", running)).status, HealthStatus::Progressing);
    }

    #[test]
    fn a_succeeded_pod_is_healthy() {
        assert_eq!(assess(&pod("Never", json!({"phase": "Succeeded"}))), Health::healthy());
    }

    #[test]
    fn a_failed_pod_is_degraded_with_the_best_message_available() {
        let evicted = json!({"phase": "Failed", "reason": "Evicted", "message": "The node was low on resource: memory."});
        assert_eq!(
            assess(&pod("Never", evicted)),
            Health::new(HealthStatus::Degraded, "The node was low on resource: memory.")
        );
        let terminated_with_message = json!({"phase": "Failed", "containerStatuses": [{"name": "main",
            "state": {"terminated": {"exitCode": 2, "message": "migration failed: table exists"}}}]});
        assert_eq!(
            assess(&pod("Never", terminated_with_message)),
            Health::new(HealthStatus::Degraded, "migration failed: table exists")
        );
        let oom = json!({"phase": "Failed", "containerStatuses": [{"name": "main",
            "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]});
        assert_eq!(assess(&pod("Never", oom)), Health::new(HealthStatus::Degraded, "OOMKilled"));
        let init_failed = json!({"phase": "Failed",
            "initContainerStatuses": [{"name": "init", "state": {"terminated": {"exitCode": 3, "reason": "Error"}}}],
            "containerStatuses": [{"name": "main", "state": {"waiting": {"reason": "PodInitializing"}}}]});
        assert_eq!(
            assess(&pod("Never", init_failed)),
            Health::new(HealthStatus::Degraded, "container \"init\" failed with exit code 3")
        );
        assert_eq!(
            assess(&pod("Never", json!({"phase": "Failed"}))),
            Health::new(HealthStatus::Degraded, "")
        );
    }

    #[test]
    fn an_unknown_phase_is_unknown() {
        assert_eq!(
            assess(&pod("Always", json!({"phase": "Unknown", "message": "node unreachable"}))),
            Health::new(HealthStatus::Unknown, "node unreachable")
        );
    }
}
