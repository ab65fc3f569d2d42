//! Argo Rollouts: a Rollout waits until the controller has observed its spec (and its referenced workload),
//! then surfaces the controller's own phase and message when it records one; older controllers are judged
//! from conditions, pauses, replica counts and which ReplicaSet the services point at. Experiments and
//! AnalysisRuns follow their phase.
//!
//! Matches Argo CD's `argoproj.io/{Rollout,Experiment,AnalysisRun}/health.lua`.

use super::{conditions, number, text_or};
use crate::health::{Health, HealthStatus, int, text};
use serde_json::Value;

const SPEC_NOT_OBSERVED: &str = "Waiting for rollout spec update to be observed";
const WORKLOAD_GENERATION_ANNOTATION: &str = "rollout.argoproj.io/workload-generation";

pub fn assess(kind: &str, obj: &Value) -> Option<Health> {
    Some(match kind {
        "Rollout" => rollout(obj),
        "Experiment" => experiment(obj),
        "AnalysisRun" => analysis_run(obj),
        _ => return None,
    })
}

fn rollout(obj: &Value) -> Health {
    let (spec, status) = (&obj["spec"], &obj["status"]);
    if !generation_observed(obj) || !workload_generation_observed(obj) {
        return Health::new(HealthStatus::Progressing, SPEC_NOT_OBSERVED);
    }
    // Rollouts 1.0 and later record their own verdict.
    if let Some(phase) = status["phase"].as_str() {
        let health = match phase {
            "Paused" => HealthStatus::Suspended,
            other => HealthStatus::parse(other).unwrap_or(HealthStatus::Unknown),
        };
        return Health::new(health, text(&status["message"]));
    }
    let failed = conditions(obj).iter().find(|c| {
        c["type"] == "InvalidSpec"
            || (c["type"] == "Progressing"
                && (c["reason"] == "RolloutAborted" || c["reason"] == "ProgressDeadlineExceeded"))
    });
    if let Some(failed) = failed {
        return Health::new(HealthStatus::Degraded, text(&failed["message"]));
    }
    let paused_by_controller = status["pauseConditions"].as_array().is_some_and(|p| !p.is_empty());
    if paused_by_controller || spec["paused"] == true {
        return Health::new(HealthStatus::Suspended, "Rollout is paused");
    }
    let Some(current) = status["currentPodHash"].as_str() else {
        return Health::new(
            HealthStatus::Progressing,
            "Waiting for rollout to finish: status has not been reconciled.",
        );
    };
    let desired = spec["replicas"].as_i64().unwrap_or(1);
    let (replicas, updated, available) =
        (int(&status["replicas"]), int(&status["updatedReplicas"]), int(&status["availableReplicas"]));
    if updated < desired {
        return progressing("Waiting for roll out to finish: More replicas need to be updated");
    }
    if available < updated {
        return progressing("Waiting for roll out to finish: updated replicas are still becoming available");
    }
    // Rollouts before 0.8 kept the stable ReplicaSet under status.canary.
    let stable =
        status["stableRS"].as_str().or_else(|| status["canary"]["stableRS"].as_str()).unwrap_or_default();
    let strategy = &spec["strategy"];
    if !strategy["blueGreen"].is_null() {
        if status["blueGreen"]["activeSelector"].as_str() != Some(current) {
            return progressing("active service cutover pending");
        }
        if !stable.is_empty() && stable != current {
            return progressing("waiting for analysis to complete");
        }
    } else if !strategy["canary"].is_null() {
        if replicas > updated {
            return progressing("Waiting for roll out to finish: old replicas are pending termination");
        }
        if stable.is_empty() || stable != current {
            return progressing("Waiting for rollout to finish steps");
        }
    }
    Health::healthy()
}

fn progressing(message: &str) -> Health {
    Health::new(HealthStatus::Progressing, message)
}

/// Whether the controller has seen the current spec. Before 0.10 `observedGeneration` held a pod-template
/// hash; one that is not a number, or is a number above the generation, cannot be compared and counts as seen.
fn generation_observed(obj: &Value) -> bool {
    if obj["status"].is_null() {
        return false;
    }
    let generation = int(&obj["metadata"]["generation"]) as f64;
    match number(&obj["status"]["observedGeneration"]) {
        Some(observed) if observed <= generation => observed == generation,
        _ => true,
    }
}

/// Whether the controller has seen the current generation of the workload a Rollout references (1.1+).
fn workload_generation_observed(obj: &Value) -> bool {
    let annotations = &obj["metadata"]["annotations"];
    if obj["spec"]["workloadRef"].is_null() || annotations.is_null() {
        return true;
    }
    number(&annotations[WORKLOAD_GENERATION_ANNOTATION])
        == number(&obj["status"]["workloadObservedGeneration"])
}

fn experiment(obj: &Value) -> Health {
    let unreconciled = || progressing("Waiting for experiment to finish: status has not been reconciled.");
    if obj["status"].is_null() {
        return unreconciled();
    }
    match text(&obj["status"]["phase"]) {
        "Pending" => progressing("Experiment is pending"),
        "Running" => progressing("Experiment is running"),
        "Successful" => Health::new(HealthStatus::Healthy, "Experiment is successful"),
        "Failed" => Health::new(HealthStatus::Degraded, "Experiment has failed"),
        "Error" => Health::new(HealthStatus::Degraded, "Experiment had an error"),
        _ => unreconciled(),
    }
}

fn analysis_run(obj: &Value) -> Health {
    let status = &obj["status"];
    if status.is_null() {
        return progressing("Waiting for analysis run to finish: status has not been reconciled.");
    }
    let explained = |health, fallback: &str| Health::new(health, text_or(&status["message"], fallback));
    match text(&status["phase"]) {
        "Successful" => explained(HealthStatus::Healthy, "Analysis run completed successfully"),
        "Failed" => explained(HealthStatus::Degraded, "Analysis run failed"),
        "Error" => explained(HealthStatus::Degraded, "Analysis run had an error"),
        "Inconclusive" => explained(HealthStatus::Unknown, "Analysis run was inconclusive"),
        _ => progressing("Analysis run is running"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const HASH: &str = "5b5cf8b7f4";
    const OLD_HASH: &str = "7d4dc5f4b9";

    /// A canary Rollout of 3 replicas at generation 2 whose status is `status`.
    fn canary(status: Value) -> Value {
        json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
               "metadata": {"name": "basic", "namespace": "argocd-e2e", "generation": 2},
               "spec": {"replicas": 3, "strategy": {"canary": {"steps": [{"setWeight": 50}, {"pause": {}}]}}},
               "status": status})
    }

    fn blue_green(status: Value) -> Value {
        let mut rollout = canary(status);
        rollout["spec"]["strategy"] =
            json!({"blueGreen": {"activeService": "active", "previewService": "preview"}});
        rollout
    }

    fn health(obj: &Value) -> Health {
        assess(text(&obj["kind"]), obj).expect("a known kind")
    }

    /// A reconciled, finished status of 3 replicas; `extra` overrides fields.
    fn reconciled(extra: Value) -> Value {
        let mut status = json!({"observedGeneration": "2", "currentPodHash": HASH, "stableRS": HASH,
            "replicas": 3, "updatedReplicas": 3, "readyReplicas": 3, "availableReplicas": 3,
            "blueGreen": {"activeSelector": HASH}, "canary": {}, "conditions": []});
        for (k, v) in extra.as_object().expect("an object") {
            status[k] = v.clone();
        }
        status
    }

    #[test]
    fn rollout_without_status_waits_for_its_spec_to_be_observed() {
        let mut new = canary(Value::Null);
        new.as_object_mut().expect("an object").remove("status");
        assert_eq!(health(&new), progressing(SPEC_NOT_OBSERVED));
    }

    #[test]
    fn rollout_with_a_new_generation_waits_for_it_to_be_observed() {
        assert_eq!(
            health(&canary(reconciled(json!({"observedGeneration": "1"})))),
            progressing(SPEC_NOT_OBSERVED)
        );
    }

    #[test]
    fn rollout_with_a_legacy_hash_generation_is_judged_on_its_status() {
        for legacy in [json!("6b8cf6f7db"), json!("8575574967")] {
            let rollout = canary(reconciled(json!({"observedGeneration": legacy})));
            assert_eq!(health(&rollout), Health::healthy());
        }
    }

    #[test]
    fn rollout_with_an_invalid_spec_is_degraded() {
        let message = "The Rollout \"basic\" is invalid: spec.strategy.strategy: Required value: Rollout has missing field '.spec.strategy.canary or .spec.strategy.blueGreen'";
        let rollout = canary(reconciled(json!({"conditions": [
            {"type": "InvalidSpec", "status": "True", "reason": "InvalidSpec", "message": message}]})));
        assert_eq!(health(&rollout), Health::new(HealthStatus::Degraded, message));
    }

    #[test]
    fn rollout_past_its_progress_deadline_is_degraded() {
        let message =
            "ReplicaSet \"guestbook-bluegreen-helm-guestbook-6b8cf6f7db\" has timed out progressing.";
        let rollout = blue_green(reconciled(json!({"conditions": [
            {"type": "Available", "status": "True", "reason": "AvailableReason"},
            {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": message}]})));
        assert_eq!(health(&rollout), Health::new(HealthStatus::Degraded, message));
    }

    #[test]
    fn aborted_rollout_is_degraded() {
        let rollout = canary(reconciled(json!({"abort": true, "conditions": [
            {"type": "Progressing", "status": "False", "reason": "RolloutAborted", "message": "Rollout is aborted"}]})));
        assert_eq!(health(&rollout), Health::new(HealthStatus::Degraded, "Rollout is aborted"));
    }

    #[test]
    fn blue_green_serving_the_active_service_is_healthy() {
        assert_eq!(health(&blue_green(reconciled(json!({})))), Health::healthy());
    }

    #[test]
    fn blue_green_adding_replicas_is_progressing() {
        let rollout =
            blue_green(reconciled(json!({"updatedReplicas": 1, "availableReplicas": 1, "replicas": 4})));
        assert_eq!(
            health(&rollout),
            progressing("Waiting for roll out to finish: More replicas need to be updated")
        );
    }

    #[test]
    fn blue_green_waiting_for_replicas_to_be_available_is_progressing() {
        let rollout = blue_green(reconciled(json!({"availableReplicas": 1})));
        assert_eq!(
            health(&rollout),
            progressing("Waiting for roll out to finish: updated replicas are still becoming available")
        );
    }

    #[test]
    fn blue_green_before_the_cutover_is_progressing() {
        let rollout =
            blue_green(reconciled(json!({"blueGreen": {"activeSelector": OLD_HASH}, "stableRS": OLD_HASH})));
        assert_eq!(health(&rollout), progressing("active service cutover pending"));
    }

    #[test]
    fn canary_setting_a_weight_is_progressing() {
        let rollout = canary(reconciled(json!({"updatedReplicas": 1, "replicas": 4, "stableRS": OLD_HASH})));
        assert_eq!(
            health(&rollout),
            progressing("Waiting for roll out to finish: More replicas need to be updated")
        );
    }

    #[test]
    fn canary_killing_old_replicas_is_progressing() {
        let rollout = canary(reconciled(json!({"replicas": 4})));
        assert_eq!(
            health(&rollout),
            progressing("Waiting for roll out to finish: old replicas are pending termination")
        );
    }

    #[test]
    fn rollout_paused_by_the_controller_or_the_user_is_suspended() {
        let by_controller = canary(reconciled(json!({"controllerPause": true, "stableRS": OLD_HASH,
            "pauseConditions": [{"reason": "CanaryPauseStep", "startTime": "2019-10-25T21:41:46Z"}]})));
        assert_eq!(health(&by_controller), Health::new(HealthStatus::Suspended, "Rollout is paused"));
        let mut by_user = canary(reconciled(json!({"stableRS": OLD_HASH})));
        by_user["spec"]["paused"] = json!(true);
        assert_eq!(health(&by_user), Health::new(HealthStatus::Suspended, "Rollout is paused"));
    }

    #[test]
    fn canary_that_ran_all_steps_is_healthy_before_and_after_0_8() {
        assert_eq!(health(&canary(reconciled(json!({})))), Health::healthy());
        let pre_0_8 = canary(reconciled(json!({"stableRS": null, "canary": {"stableRS": HASH}})));
        assert_eq!(health(&pre_0_8), Health::healthy());
    }

    #[test]
    fn canary_without_steps_waits_for_available_replicas_then_is_healthy() {
        let mut waiting = canary(reconciled(json!({"availableReplicas": 2})));
        waiting["spec"]["strategy"]["canary"] = json!({});
        assert_eq!(
            health(&waiting),
            progressing("Waiting for roll out to finish: updated replicas are still becoming available")
        );
        let mut done = canary(reconciled(json!({})));
        done["spec"]["strategy"]["canary"] = json!({});
        assert_eq!(health(&done), Health::healthy());
        done["spec"]["strategy"]["canary"] = json!({"steps": []});
        assert_eq!(health(&done), Health::healthy());
    }

    #[test]
    fn canary_with_steps_left_is_progressing() {
        let rollout = canary(reconciled(json!({"stableRS": OLD_HASH})));
        assert_eq!(health(&rollout), progressing("Waiting for rollout to finish steps"));
    }

    #[test]
    fn rollout_phase_and_message_are_surfaced() {
        let degraded = canary(reconciled(
            json!({"phase": "Degraded", "message": "InvalidSpec", "observedGeneration": "8575574967"}),
        ));
        assert_eq!(health(&degraded), Health::new(HealthStatus::Degraded, "InvalidSpec"));
        let paused = canary(reconciled(
            json!({"phase": "Paused", "message": "CanaryPauseStep", "updatedReplicas": 1}),
        ));
        assert_eq!(health(&paused), Health::new(HealthStatus::Suspended, "CanaryPauseStep"));
        let healthy = canary(reconciled(json!({"phase": "Healthy"})));
        assert_eq!(health(&healthy), Health::healthy());
    }

    #[test]
    fn rollout_waits_for_its_referenced_workload_generation() {
        let mut rollout = canary(reconciled(json!({"phase": "Healthy", "workloadObservedGeneration": "1"})));
        rollout["spec"]["workloadRef"] =
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"});
        rollout["metadata"]["annotations"] = json!({WORKLOAD_GENERATION_ANNOTATION: "2"});
        assert_eq!(health(&rollout), progressing(SPEC_NOT_OBSERVED));
        rollout["status"]["workloadObservedGeneration"] = json!("2");
        assert_eq!(health(&rollout), Health::healthy());
        // Before 1.1 the annotation was not written.
        rollout["metadata"].as_object_mut().expect("an object").remove("annotations");
        rollout["status"]["workloadObservedGeneration"] = json!("1");
        assert_eq!(health(&rollout), Health::healthy());
    }

    #[test]
    fn experiment_follows_its_phase() {
        let experiment = |status: Value| {
            health(
                &json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Experiment", "metadata": {"name": "e"}, "status": status}),
            )
        };
        assert_eq!(experiment(json!({"phase": "Pending"})), progressing("Experiment is pending"));
        assert_eq!(
            experiment(Value::Null),
            progressing("Waiting for experiment to finish: status has not been reconciled.")
        );
        assert_eq!(experiment(json!({"phase": "Running"})), progressing("Experiment is running"));
        assert_eq!(
            experiment(json!({"phase": "Successful"})),
            Health::new(HealthStatus::Healthy, "Experiment is successful")
        );
        assert_eq!(
            experiment(json!({"phase": "Failed"})),
            Health::new(HealthStatus::Degraded, "Experiment has failed")
        );
        assert_eq!(
            experiment(json!({"phase": "Error"})),
            Health::new(HealthStatus::Degraded, "Experiment had an error")
        );
    }

    #[test]
    fn analysis_run_follows_its_phase_and_message() {
        let run = |status: Value| {
            health(
                &json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisRun", "metadata": {"name": "a"}, "status": status}),
            )
        };
        assert_eq!(run(json!({"phase": "Pending"})), progressing("Analysis run is running"));
        assert_eq!(
            run(Value::Null),
            progressing("Waiting for analysis run to finish: status has not been reconciled.")
        );
        assert_eq!(run(json!({"phase": "Running"})), progressing("Analysis run is running"));
        let cases = [
            ("Successful", None, HealthStatus::Healthy, "Analysis run completed successfully"),
            ("Failed", None, HealthStatus::Degraded, "Analysis run failed"),
            (
                "Failed",
                Some("Status Message: Assessed as Failed"),
                HealthStatus::Degraded,
                "Status Message: Assessed as Failed",
            ),
            ("Error", None, HealthStatus::Degraded, "Analysis run had an error"),
            (
                "Error",
                Some("Status Message: Assessed as Error"),
                HealthStatus::Degraded,
                "Status Message: Assessed as Error",
            ),
            ("Inconclusive", None, HealthStatus::Unknown, "Analysis run was inconclusive"),
            (
                "Inconclusive",
                Some("Status Message: Assessed as Inconclusive"),
                HealthStatus::Unknown,
                "Status Message: Assessed as Inconclusive",
            ),
            ("Successful", Some("run terminated"), HealthStatus::Healthy, "run terminated"),
        ];
        for (phase, message, status, expected) in cases {
            assert_eq!(
                run(json!({"phase": phase, "message": message})),
                Health::new(status, expected),
                "{phase} {message:?}"
            );
        }
    }
}
