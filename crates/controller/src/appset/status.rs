//! An ApplicationSet's status conditions, as Argo CD writes them: `ErrorOccurred`, `ParametersGenerated`
//! and `ResourcesUpToDate` from how generation and the writes went (and `RolloutProgressing`, which the
//! rollout stage makes). A condition keeps its `lastTransitionTime` while its status stays the same.

use berth_api::applicationset::ApplicationSetCondition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

pub const ERROR_OCCURRED: &str = "ErrorOccurred";
pub const PARAMETERS_GENERATED: &str = "ParametersGenerated";
pub const RESOURCES_UP_TO_DATE: &str = "ResourcesUpToDate";
pub const ROLLOUT_PROGRESSING: &str = "RolloutProgressing";

/// Argo CD's reasons.
pub mod reason {
    pub const UP_TO_DATE: &str = "ApplicationSetUpToDate";
    pub const PARAMETERS_GENERATED: &str = "ParametersGenerated";
    pub const ERROR_OCCURRED: &str = "ErrorOccurred";
    pub const GENERATION_ERROR: &str = "ApplicationGenerationFromParamsError";
    pub const VALIDATION_ERROR: &str = "ApplicationValidationError";
    pub const CREATE_ERROR: &str = "CreateApplicationError";
    pub const UPDATE_ERROR: &str = "UpdateApplicationError";
    pub const DELETE_ERROR: &str = "DeleteApplicationError";
}

/// How one reconcile of a set went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every Application generated, validated and written.
    UpToDate,
    /// The generators or the template failed: nothing was written.
    GenerationFailed(String),
    /// Parameters were generated, but some Applications are invalid or held by another owner: those are
    /// left alone, the rest written.
    Invalid(String),
    /// Parameters were generated, but a write failed (`reason` is Argo CD's for the kind of write).
    WriteFailed { reason: &'static str, message: String },
}

fn condition(type_: &str, status: bool, reason: &str, message: &str) -> ApplicationSetCondition {
    ApplicationSetCondition {
        type_: type_.to_string(),
        status: if status { "True" } else { "False" }.to_string(),
        reason: reason.to_string(),
        message: message.to_string(),
        last_transition_time: None,
    }
}

/// The three generation conditions for `outcome`.
pub fn conditions(outcome: &Outcome) -> Vec<ApplicationSetCondition> {
    const ALL_GENERATED: &str = "All applications have been generated successfully";
    const PARAMS: &str = "Successfully generated parameters for all Applications";
    match outcome {
        Outcome::UpToDate => vec![
            condition(ERROR_OCCURRED, false, reason::UP_TO_DATE, ALL_GENERATED),
            condition(PARAMETERS_GENERATED, true, reason::PARAMETERS_GENERATED, PARAMS),
            condition(RESOURCES_UP_TO_DATE, true, reason::UP_TO_DATE, ALL_GENERATED),
        ],
        Outcome::GenerationFailed(message) => vec![
            condition(ERROR_OCCURRED, true, reason::GENERATION_ERROR, message),
            condition(PARAMETERS_GENERATED, false, reason::ERROR_OCCURRED, message),
            condition(RESOURCES_UP_TO_DATE, false, reason::ERROR_OCCURRED, message),
        ],
        Outcome::Invalid(message) => vec![
            condition(ERROR_OCCURRED, true, reason::VALIDATION_ERROR, message),
            condition(PARAMETERS_GENERATED, true, reason::PARAMETERS_GENERATED, PARAMS),
            condition(RESOURCES_UP_TO_DATE, false, reason::VALIDATION_ERROR, message),
        ],
        Outcome::WriteFailed { reason, message } => vec![
            condition(ERROR_OCCURRED, true, reason, message),
            condition(PARAMETERS_GENERATED, true, self::reason::PARAMETERS_GENERATED, PARAMS),
            condition(RESOURCES_UP_TO_DATE, false, reason, message),
        ],
    }
}

/// `next` with each condition's transition time: the previous one's when its status did not change,
/// else `now`. Conditions of `previous` whose type `next` does not have are dropped, except those in
/// `keep` (written by another stage).
pub fn with_transitions(
    previous: &[ApplicationSetCondition],
    next: Vec<ApplicationSetCondition>,
    keep: &[&str],
    now: &Time,
) -> Vec<ApplicationSetCondition> {
    let mut out: Vec<ApplicationSetCondition> = next
        .into_iter()
        .map(|mut c| {
            let before = previous.iter().find(|p| p.type_ == c.type_);
            c.last_transition_time = match before {
                Some(p) if p.status == c.status && p.last_transition_time.is_some() => {
                    p.last_transition_time.clone()
                }
                _ => Some(now.clone()),
            };
            c
        })
        .collect();
    for p in previous {
        if keep.contains(&p.type_.as_str()) && !out.iter().any(|c| c.type_ == p.type_) {
            out.push(p.clone());
        }
    }
    out
}

/// Whether two condition lists say the same, transition times aside (a status write is skipped then).
pub fn same(a: &[ApplicationSetCondition], b: &[ApplicationSetCondition]) -> bool {
    let strip = |list: &[ApplicationSetCondition]| -> Vec<(String, String, String, String)> {
        let mut v: Vec<_> = list
            .iter()
            .map(|c| (c.type_.clone(), c.status.clone(), c.reason.clone(), c.message.clone()))
            .collect();
        v.sort();
        v
    };
    strip(a) == strip(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time(s: &str) -> Time {
        Time(s.parse().unwrap())
    }

    #[test]
    fn a_set_up_to_date_reads_as_argo_cd_writes_it() {
        let c = conditions(&Outcome::UpToDate);
        let error = c.iter().find(|c| c.type_ == ERROR_OCCURRED).unwrap();
        assert_eq!((error.status.as_str(), error.reason.as_str()), ("False", "ApplicationSetUpToDate"));
        let params = c.iter().find(|c| c.type_ == PARAMETERS_GENERATED).unwrap();
        assert_eq!(params.message, "Successfully generated parameters for all Applications");
    }

    #[test]
    fn a_generation_error_sets_error_occurred_and_clears_the_others() {
        let c = conditions(&Outcome::GenerationFailed("git generator: boom".into()));
        let status: Vec<(&str, &str)> = c.iter().map(|c| (c.type_.as_str(), c.status.as_str())).collect();
        assert_eq!(
            status,
            [(ERROR_OCCURRED, "True"), (PARAMETERS_GENERATED, "False"), (RESOURCES_UP_TO_DATE, "False")]
        );
        assert!(c.iter().all(|c| c.message == "git generator: boom"));
    }

    #[test]
    fn transition_times_move_only_when_the_status_changes() {
        let t0 = time("2026-01-01T00:00:00Z");
        let t1 = time("2026-01-01T00:05:00Z");
        let first = with_transitions(&[], conditions(&Outcome::UpToDate), &[], &t0);
        let again = with_transitions(&first, conditions(&Outcome::UpToDate), &[], &t1);
        assert!(again.iter().all(|c| c.last_transition_time == Some(t0.clone())));
        assert!(same(&first, &again));
        let failed = with_transitions(&again, conditions(&Outcome::GenerationFailed("x".into())), &[], &t1);
        let params = failed.iter().find(|c| c.type_ == PARAMETERS_GENERATED).unwrap();
        assert_eq!(params.last_transition_time, Some(t1.clone()));
        assert!(!same(&again, &failed));
    }

    #[test]
    fn a_condition_of_another_stage_is_kept_only_when_asked() {
        let t0 = time("2026-01-01T00:00:00Z");
        let rollout = condition(ROLLOUT_PROGRESSING, true, "ApplicationSetModified", "m");
        let next = with_transitions(
            std::slice::from_ref(&rollout),
            conditions(&Outcome::UpToDate),
            &[ROLLOUT_PROGRESSING],
            &t0,
        );
        assert!(next.iter().any(|c| c.type_ == ROLLOUT_PROGRESSING));
        let next = with_transitions(&[rollout], conditions(&Outcome::UpToDate), &[], &t0);
        assert!(!next.iter().any(|c| c.type_ == ROLLOUT_PROGRESSING));
    }
}
