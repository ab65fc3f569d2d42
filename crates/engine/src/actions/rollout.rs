//! The actions Argo CD ships for Argo Rollouts' `Rollout` (`argoproj.io`), in Rust, offered and disabled as
//! Argo CD offers them, each changing what Argo Rollouts' own controls change:
//!
//! - `restart` ("Restart Pods", always): `spec.restartAt` = now, in UTC to the second;
//! - `pause` (an update under way, `spec.paused` not true): `spec.paused` = true;
//! - `resume` (paused: by its pause conditions, else by `spec.paused`): `status.pauseConditions` cleared,
//!   `spec.paused` = false;
//! - `abort` (an update under way, not aborted): `status.abort` = true;
//! - `retry` (an update under way, aborted): `status.abort` cleared, and the analysis runs' statuses in
//!   `status.blueGreen` / `status.canary`;
//! - `promote-full` (an update under way): `status.promoteFull` = true; for a status of Rollouts before v0.10
//!   (canary only) `status.abort` cleared and `status.currentStepIndex` set to the step count;
//! - `skip-current-step` (a canary with steps, before its last): `status.pauseConditions` cleared,
//!   `status.currentStepIndex` + 1.
//!
//! An update is under way while `status.currentPodHash` differs from `status.stableRS`. Rollouts before v0.10
//! wrote `status.observedGeneration` as a hash, not a number (or a number above `metadata.generation`).
//! Every action but `restart` and `pause` changes `status`, which the caller applies through the status
//! subresource (Argo Rollouts' CRD has one).

use super::builtin::{set, utc};
use super::{Impact, ResourceAction};
use serde_json::Value;
use std::time::SystemTime;

/// The field a restart sets; Argo Rollouts recreates every pod older than it, one at a time.
const RESTART_AT_FIELD: &str = "restartAt";

/// The actions `rollout` offers now.
pub(super) fn discover(rollout: &Value) -> Vec<ResourceAction> {
    let offer =
        |name: &str, disabled: bool| ResourceAction { name: name.into(), disabled, ..Default::default() };
    let status = &rollout["status"];
    let updating = !fully_promoted(status);
    let aborted = truthy(&status["abort"]);
    let promote_full = status.is_object()
        && updating
        && (!old_status(rollout) || rollout["spec"]["strategy"]["blueGreen"].is_null());
    vec![
        ResourceAction { display_name: "Restart Pods".into(), ..offer("restart", false) },
        offer("resume", !paused(rollout)),
        offer("abort", !updating || aborted),
        offer("retry", !updating || !aborted),
        offer("promote-full", !promote_full),
        offer("pause", !updating || rollout["spec"]["paused"] == Value::Bool(true)),
        offer("skip-current-step", next_step(rollout).is_none()),
    ]
}

/// Runs `action` on `rollout`: `None` when a Rollout has no such action, else the changed Rollout (itself
/// when there is nothing to change, as for `retry` on a Rollout that is not aborted).
pub(super) fn run(rollout: &Value, action: &str, now: SystemTime) -> Option<Result<Vec<Impact>, String>> {
    let mut changed = rollout.clone();
    let done = match action {
        "restart" => set(&mut changed, &["spec", RESTART_AT_FIELD], Some(utc(now).to_string().into())),
        "pause" => set(&mut changed, &["spec", "paused"], Some(true.into())),
        "resume" => resume(&mut changed),
        "abort" => set(&mut changed, &["status", "abort"], Some(true.into())),
        "retry" => retry(&mut changed),
        "promote-full" => promote_full(&mut changed),
        "skip-current-step" => skip_current_step(&mut changed),
        _ => return None,
    };
    Some(done.map(|()| vec![Impact::Patch(changed)]))
}

/// Lets a paused Rollout go on: its pause conditions (a step's pause, the controller's) go, and a
/// `spec.paused` that is true becomes false.
fn resume(rollout: &mut Value) -> Result<(), String> {
    if has_pause_conditions(&rollout["status"]) {
        set(rollout, &["status", "pauseConditions"], None)?;
    }
    if truthy(&rollout["spec"]["paused"]) {
        set(rollout, &["spec", "paused"], Some(false.into()))?;
    }
    Ok(())
}

/// Takes an aborted update up again: the abort goes, and so do the statuses of the analysis runs that
/// failed it, so they run anew.
fn retry(rollout: &mut Value) -> Result<(), String> {
    if !truthy(&rollout["status"]["abort"]) {
        return Ok(());
    }
    set(rollout, &["status", "abort"], None)?;
    let analyses = [
        ("blueGreen", ["prePromotionAnalysisRunStatus", "postPromotionAnalysisRunStatus"]),
        ("canary", ["currentStepAnalysisRunStatus", "currentBackgroundAnalysisRunStatus"]),
    ];
    for (strategy, fields) in analyses {
        if rollout["status"][strategy].is_object() {
            for field in fields {
                set(rollout, &["status", strategy, field], None)?;
            }
        }
    }
    Ok(())
}

/// Promotes the update to every pod at once, past the remaining steps, pauses and analyses: by
/// `status.promoteFull` since Rollouts v0.10; before, by clearing the abort and jumping to the last step.
fn promote_full(rollout: &mut Value) -> Result<(), String> {
    if !rollout["status"].is_object() {
        return Ok(());
    }
    if !old_status(rollout) {
        return set(rollout, &["status", "promoteFull"], Some(true.into()));
    }
    set(rollout, &["status", "abort"], None)?;
    if let Some(steps) = rollout["spec"]["strategy"]["canary"]["steps"].as_array().map(Vec::len) {
        set(rollout, &["status", "currentStepIndex"], Some(steps.into()))?;
    }
    Ok(())
}

/// Moves a canary on to its next step, ending the pause it waits in.
fn skip_current_step(rollout: &mut Value) -> Result<(), String> {
    let Some(next) = next_step(rollout) else { return Ok(()) };
    if has_pause_conditions(&rollout["status"]) {
        set(rollout, &["status", "pauseConditions"], None)?;
    }
    set(rollout, &["status", "currentStepIndex"], Some(next.into()))
}

/// The index of the canary step after the present one, when there is one to skip to: the Rollout is a
/// canary with steps, and the controller has set a step index below their count.
fn next_step(rollout: &Value) -> Option<i64> {
    let steps = rollout["spec"]["strategy"]["canary"]["steps"].as_array()?.len();
    let index = rollout["status"]["currentStepIndex"].as_i64()?;
    (index < steps as i64).then_some(index + 1)
}

/// Every pod is of the stable ReplicaSet: no update is under way (also when the status names neither).
fn fully_promoted(status: &Value) -> bool {
    status["currentPodHash"] == status["stableRS"]
}

/// Paused, as the resume button sees it: by its pause conditions when the status lists any field of them
/// (an empty list is not paused), else by `spec.paused`.
fn paused(rollout: &Value) -> bool {
    let conditions = &rollout["status"]["pauseConditions"];
    if conditions.is_null() {
        truthy(&rollout["spec"]["paused"])
    } else {
        has_pause_conditions(&rollout["status"])
    }
}

fn has_pause_conditions(status: &Value) -> bool {
    status["pauseConditions"].as_array().is_some_and(|c| !c.is_empty())
}

/// A status written by Rollouts before v0.10: its `observedGeneration` is not a number, or is one above
/// `metadata.generation`.
fn old_status(rollout: &Value) -> bool {
    let observed = match &rollout["status"]["observedGeneration"] {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|n| n.is_finite()),
        _ => None,
    };
    match observed {
        None => true,
        Some(observed) => rollout["metadata"]["generation"].as_f64().is_some_and(|g| observed > g),
    }
}

/// Set and not false, as a Lua condition reads a field.
fn truthy(value: &Value) -> bool {
    !matches!(value, Value::Null | Value::Bool(false))
}
