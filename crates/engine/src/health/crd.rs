//! CustomResourceDefinition (berth's own; Argo CD has none): rejected names (NamesAccepted false) are
//! Degraded, Established true is Healthy, otherwise Progressing, so a sync waits before creating custom
//! resources of a new CRD.

use super::{Health, HealthStatus, condition, text};

pub fn assess(obj: &serde_json::Value) -> Health {
    if let Some(names) = condition(obj, "NamesAccepted").filter(|c| c["status"] == "False") {
        return Health::new(HealthStatus::Degraded, text(&names["message"]));
    }
    if condition(obj, "Established").is_some_and(|c| c["status"] == "True") {
        return Health::healthy();
    }
    Health::new(HealthStatus::Progressing, "waiting for the CRD to be established")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn crd(conditions: Value) -> Value {
        json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
               "metadata": {"name": "widgets.example.com"},
               "spec": {"group": "example.com", "names": {"kind": "Widget", "plural": "widgets"}, "scope": "Namespaced"},
               "status": {"conditions": conditions}})
    }

    #[test]
    fn an_established_crd_is_healthy() {
        let established = crd(json!([
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found"},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"}]));
        assert_eq!(assess(&established), Health::healthy());
    }

    #[test]
    fn a_crd_not_yet_established_is_progressing() {
        let waiting = crd(json!([
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts"},
            {"type": "Established", "status": "False", "reason": "Installing"}]));
        assert_eq!(
            assess(&waiting),
            Health::new(HealthStatus::Progressing, "waiting for the CRD to be established")
        );
        assert_eq!(
            assess(&crd(json!([]))),
            Health::new(HealthStatus::Progressing, "waiting for the CRD to be established")
        );
    }

    #[test]
    fn rejected_names_are_degraded() {
        let conflict = crd(json!([{"type": "NamesAccepted", "status": "False", "reason": "PluralConflict",
            "message": "\"widgets\" is already in use"}]));
        assert_eq!(assess(&conflict), Health::new(HealthStatus::Degraded, "\"widgets\" is already in use"));
    }
}
