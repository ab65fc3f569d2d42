//! Flux: a suspended object is Suspended. Sources (GitRepository, HelmRepository, HelmChart, OCIRepository,
//! Bucket) are Healthy when Ready with their artifact in storage, Kustomizations when Ready, HelmReleases
//! when Ready and released (or tested); Progressing when Ready is Unknown while reconciling; else Degraded.
//! The message is the Ready reason. An OCI HelmRepository has no status and is Healthy.
//!
//! Matches Argo CD's `source.toolkit.fluxcd.io/{GitRepository,HelmRepository,HelmChart,OCIRepository,Bucket}/health.lua`,
//! `kustomize.toolkit.fluxcd.io/Kustomization/health.lua` and `helm.toolkit.fluxcd.io/HelmRelease/health.lua`.

use super::conditions;
use crate::health::{Health, HealthStatus, text};
use serde_json::Value;

/// What, besides a True Ready condition, counts towards a kind being healthy.
#[derive(Clone, Copy)]
enum Success {
    /// Sources: the artifact is in storage.
    ArtifactInStorage,
    /// Kustomizations: Ready alone.
    Ready,
    /// HelmReleases: the release was installed or upgraded, or its tests passed.
    Released,
}

pub fn assess(group: &str, kind: &str, obj: &Value) -> Option<Health> {
    let success = match (group, kind) {
        (
            "source.toolkit.fluxcd.io",
            "GitRepository" | "HelmRepository" | "HelmChart" | "OCIRepository" | "Bucket",
        ) => Success::ArtifactInStorage,
        ("kustomize.toolkit.fluxcd.io", "Kustomization") => Success::Ready,
        ("helm.toolkit.fluxcd.io", "HelmRelease") => Success::Released,
        _ => return None,
    };
    if obj["spec"]["suspend"] == true {
        return Some(Health::new(HealthStatus::Suspended, format!("{kind} is suspended")));
    }
    // OCI Helm repositories are never reconciled into a status.
    if kind == "HelmRepository" && obj["spec"]["type"] == "oci" {
        return Some(Health::new(
            HealthStatus::Healthy,
            "Helm repositories of type 'oci' do not contain any information in the status.",
        ));
    }
    Some(reconciled(obj, success))
}

fn reconciled(obj: &Value, success: Success) -> Health {
    if obj["status"]["conditions"].is_null() {
        return Health::new(HealthStatus::Progressing, "Status unknown");
    }
    let (mut progressing, mut succeeded) = (0, 0);
    let mut message = String::new();
    for c in conditions(obj) {
        let is_true = c["status"] == "True";
        match (text(&c["type"]), success) {
            ("Ready", _) => {
                match text(&c["status"]) {
                    "True" => succeeded += 1,
                    "Unknown" => progressing += 1,
                    _ => {}
                }
                message = text(&c["reason"]).to_string();
            }
            ("Reconciling", _) if is_true => progressing += 1,
            ("ArtifactOutdated", Success::ArtifactInStorage) if is_true => {
                message = format!("{message} {}", text(&c["reason"]));
            }
            ("ArtifactInStorage", Success::ArtifactInStorage) if is_true => succeeded += 1,
            ("Released" | "TestSuccess", Success::Released) if is_true => succeeded += 1,
            _ => {}
        }
    }
    let needed = if matches!(success, Success::Ready) { 1 } else { 2 };
    let status = if progressing == 2 {
        HealthStatus::Progressing
    } else if succeeded == needed {
        HealthStatus::Healthy
    } else {
        HealthStatus::Degraded
    };
    Health::new(status, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(api_version: &str, kind: &str, spec: Value, conditions: Value) -> Value {
        json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": "podinfo", "namespace": "flux-system"},
               "spec": spec, "status": {"conditions": conditions, "observedGeneration": 1}})
    }

    fn health(api_version: &str, kind: &str, spec: Value, conditions: Value) -> Health {
        let obj = object(api_version, kind, spec, conditions);
        let (group, _) = crate::resource::split_api_version(api_version);
        assess(group, kind, &obj).expect("a known kind")
    }

    fn condition(kind: &str, status: &str, reason: &str) -> Value {
        json!({"type": kind, "status": status, "reason": reason, "message": "m", "lastTransitionTime": "2023-01-01T00:00:00Z"})
    }

    const SOURCES: [&str; 5] = ["GitRepository", "HelmRepository", "HelmChart", "OCIRepository", "Bucket"];
    const SOURCE_API: &str = "source.toolkit.fluxcd.io/v1";

    #[test]
    fn sources_that_fail_are_degraded_with_the_reason() {
        for (kind, reason) in [
            ("GitRepository", "GitOperationFailed"),
            ("HelmRepository", "Failed"),
            ("HelmChart", "SourceUnavailable"),
            ("OCIRepository", "OCIArtifactPullFailed"),
            ("Bucket", "BucketOperationFailed"),
        ] {
            let conditions =
                json!([condition("Ready", "False", reason), condition("FetchFailed", "True", reason)]);
            assert_eq!(
                health(SOURCE_API, kind, json!({}), conditions),
                Health::new(HealthStatus::Degraded, reason)
            );
        }
    }

    #[test]
    fn sources_ready_with_their_artifact_stored_are_healthy() {
        for (kind, reason) in [
            ("GitRepository", "Succeeded"),
            ("HelmRepository", "Succeeded"),
            ("HelmChart", "ChartPullSucceeded"),
            ("OCIRepository", "Succeeded"),
            ("Bucket", "Succeeded"),
        ] {
            let conditions =
                json!([condition("Ready", "True", reason), condition("ArtifactInStorage", "True", reason)]);
            assert_eq!(
                health(SOURCE_API, kind, json!({}), conditions),
                Health::new(HealthStatus::Healthy, reason)
            );
        }
    }

    #[test]
    fn sources_reconciling_are_progressing_and_name_an_outdated_artifact() {
        for kind in SOURCES {
            let conditions = json!([
                condition("Reconciling", "True", "Progressing"),
                condition("Ready", "Unknown", "Progressing"),
                condition("ArtifactOutdated", "True", "NewRevision")
            ]);
            assert_eq!(
                health(SOURCE_API, kind, json!({}), conditions),
                Health::new(HealthStatus::Progressing, "Progressing NewRevision")
            );
        }
    }

    #[test]
    fn suspended_objects_are_suspended() {
        for kind in SOURCES {
            assert_eq!(
                health(SOURCE_API, kind, json!({"suspend": true}), json!([])),
                Health::new(HealthStatus::Suspended, format!("{kind} is suspended"))
            );
        }
        assert_eq!(
            health("kustomize.toolkit.fluxcd.io/v1", "Kustomization", json!({"suspend": true}), json!([])),
            Health::new(HealthStatus::Suspended, "Kustomization is suspended")
        );
    }

    #[test]
    fn oci_helm_repository_is_healthy_without_status() {
        let mut repository = object(
            SOURCE_API,
            "HelmRepository",
            json!({"type": "oci", "url": "oci://ghcr.io/x"}),
            Value::Null,
        );
        repository.as_object_mut().expect("an object").remove("status");
        assert_eq!(
            assess("source.toolkit.fluxcd.io", "HelmRepository", &repository),
            Some(Health::new(
                HealthStatus::Healthy,
                "Helm repositories of type 'oci' do not contain any information in the status."
            ))
        );
    }

    #[test]
    fn objects_without_conditions_are_of_unknown_status() {
        assert_eq!(
            health(SOURCE_API, "GitRepository", json!({}), Value::Null),
            Health::new(HealthStatus::Progressing, "Status unknown")
        );
    }

    #[test]
    fn kustomization_follows_ready() {
        let api = "kustomize.toolkit.fluxcd.io/v1";
        let progressing = json!([
            condition("Reconciling", "True", "Progressing"),
            condition("Ready", "Unknown", "Progressing")
        ]);
        assert_eq!(
            health(api, "Kustomization", json!({}), progressing),
            Health::new(HealthStatus::Progressing, "Progressing")
        );
        let failed = json!([condition("Ready", "False", "ArtifactFailed")]);
        assert_eq!(
            health(api, "Kustomization", json!({}), failed),
            Health::new(HealthStatus::Degraded, "ArtifactFailed")
        );
        let ready = json!([condition("Ready", "True", "InstallSucceeded")]);
        assert_eq!(
            health(api, "Kustomization", json!({}), ready),
            Health::new(HealthStatus::Healthy, "InstallSucceeded")
        );
    }

    #[test]
    fn helm_release_needs_ready_and_released() {
        let api = "helm.toolkit.fluxcd.io/v2";
        let progressing = json!([
            condition("Reconciling", "True", "Progressing"),
            condition("Ready", "Unknown", "Progressing")
        ]);
        assert_eq!(
            health(api, "HelmRelease", json!({}), progressing),
            Health::new(HealthStatus::Progressing, "Progressing")
        );
        let rolled_back = json!([
            condition("Ready", "False", "RollbackSucceeded"),
            condition("Released", "True", "UpgradeSucceeded")
        ]);
        assert_eq!(
            health(api, "HelmRelease", json!({}), rolled_back),
            Health::new(HealthStatus::Degraded, "RollbackSucceeded")
        );
        let installed = json!([
            condition("Ready", "True", "InstallSucceeded"),
            condition("Released", "True", "InstallSucceeded")
        ]);
        assert_eq!(
            health(api, "HelmRelease", json!({}), installed),
            Health::new(HealthStatus::Healthy, "InstallSucceeded")
        );
    }
}
