//! Crossplane: a Provider package is Healthy once installed and healthy, with both reasons as the message;
//! any other kind of a `*.crossplane.io` or `*.upbound.io` group is Degraded by a failed sync or async
//! operation, Healthy by a ready condition, Healthy without conditions when it is configuration that never
//! gets any (or a provider config in use), else still provisioning.
//!
//! Matches Argo CD's `pkg.crossplane.io/Provider/health.lua` and its wildcard checks
//! `_.crossplane.io/_/health.lua` (`*.crossplane.io/*`) and `_.upbound.io/_/health.lua` (`*.upbound.io/*`).

use super::conditions;
use crate::health::{Health, HealthStatus, text};
use serde_json::Value;

/// Kinds of `*.crossplane.io` that are configuration: nothing ever writes conditions on them.
const CROSSPLANE_CONFIGURATION: &[&str] = &[
    "Composition",
    "CompositionRevision",
    "DeploymentRuntimeConfig",
    "EnvironmentConfig",
    "ImageConfig",
    "ProviderConfig",
    "ProviderConfigUsage",
    "ClusterProviderConfig",
    "ClusterProviderConfigUsage",
    "StoreConfig",
    // Crossplane v1.
    "ControllerConfig",
];

/// Kinds of `*.upbound.io` that are configuration.
const UPBOUND_CONFIGURATION: &[&str] = &[
    "ProviderConfig",
    "ProviderConfigUsage",
    "ClusterProviderConfig",
    "ClusterProviderConfigUsage",
    "StoreConfig",
];

/// Condition types of `*.crossplane.io` kinds that mean ready when True.
const CROSSPLANE_READY: &[&str] =
    &["Ready", "Healthy", "Offered", "Established", "ValidPipeline", "RevisionHealthy"];

const UP_TO_DATE: &str = "Resource is up-to-date.";

pub fn assess(group: &str, kind: &str, obj: &Value) -> Option<Health> {
    if (group, kind) == ("pkg.crossplane.io", "Provider") {
        Some(provider(obj))
    } else if group.ends_with(".crossplane.io") {
        Some(resource(kind, obj, CROSSPLANE_CONFIGURATION, CROSSPLANE_READY))
    } else if group.ends_with(".upbound.io") {
        Some(resource(kind, obj, UPBOUND_CONFIGURATION, &["Ready"]))
    } else {
        None
    }
}

fn provider(obj: &Value) -> Health {
    if obj["status"]["conditions"].is_null() {
        return Health::new(HealthStatus::Progressing, "Waiting for provider to be installed");
    }
    let find = |kind: &str| conditions(obj).iter().rfind(|c| c["type"] == kind);
    let (installed, healthy) = (find("Installed"), find("Healthy"));
    let is_true = |c: Option<&Value>| c.is_some_and(|c| c["status"] == "True");
    let status =
        if is_true(installed) && is_true(healthy) { HealthStatus::Healthy } else { HealthStatus::Degraded };
    let (installed, healthy) = (reason(installed), reason(healthy));
    Health::new(status, format!("{installed} {healthy}"))
}

fn reason(condition: Option<&Value>) -> &str {
    condition.map(|c| text(&c["reason"])).unwrap_or_default()
}

fn resource(kind: &str, obj: &Value, configuration: &[&str], ready: &[&str]) -> Health {
    let provisioning = Health::new(HealthStatus::Progressing, "Provisioning ...");
    let conditions = conditions(obj);
    // An empty list of conditions says no more than an absent one.
    if conditions.is_empty() {
        if matches!(kind, "ProviderConfig" | "ClusterProviderConfig") && !obj["status"]["users"].is_null() {
            return Health::new(HealthStatus::Healthy, "Resource is in use.");
        }
        if configuration.contains(&kind) {
            return Health::new(HealthStatus::Healthy, UP_TO_DATE);
        }
        return provisioning;
    }
    // A failed operation is reported even when an older Ready condition still says True.
    let failed = conditions
        .iter()
        .find(|c| (c["type"] == "LastAsyncOperation" || c["type"] == "Synced") && c["status"] == "False");
    if let Some(failed) = failed {
        return Health::new(HealthStatus::Degraded, text(&failed["message"]));
    }
    if conditions.iter().any(|c| ready.contains(&text(&c["type"])) && c["status"] == "True") {
        return Health::new(HealthStatus::Healthy, UP_TO_DATE);
    }
    provisioning
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn health(api_version: &str, kind: &str, status: Option<Value>) -> Option<Health> {
        let mut obj = json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": "x"}, "spec": {}});
        if let Some(status) = status {
            obj["status"] = status;
        }
        let (group, _) = crate::resource::split_api_version(api_version);
        assess(group, kind, &obj)
    }

    fn up_to_date() -> Option<Health> {
        Some(Health::new(HealthStatus::Healthy, UP_TO_DATE))
    }

    fn condition(kind: &str, status: &str, reason: &str) -> Value {
        json!({"type": kind, "status": status, "reason": reason, "lastTransitionTime": "2025-09-29T18:06:40Z"})
    }

    #[test]
    fn provider_waits_to_be_installed() {
        assert_eq!(
            health("pkg.crossplane.io/v1", "Provider", None),
            Some(Health::new(HealthStatus::Progressing, "Waiting for provider to be installed"))
        );
    }

    #[test]
    fn provider_installed_and_healthy_is_healthy_with_both_reasons() {
        let status = json!({"conditions": [condition("Installed", "True", "ActivePackageRevision"),
                                           condition("Healthy", "True", "HealthyPackageRevision")]});
        assert_eq!(
            health("pkg.crossplane.io/v1", "Provider", Some(status)),
            Some(Health::new(HealthStatus::Healthy, "ActivePackageRevision HealthyPackageRevision"))
        );
    }

    #[test]
    fn provider_unhealthy_or_not_installed_is_degraded() {
        let unhealthy = json!({"conditions": [condition("Healthy", "False", "UnhealthyPackageRevision"),
                                              condition("Installed", "True", "ActivePackageRevision")]});
        assert_eq!(
            health("pkg.crossplane.io/v1", "Provider", Some(unhealthy)),
            Some(Health::new(HealthStatus::Degraded, "ActivePackageRevision UnhealthyPackageRevision"))
        );
        let unpacking = json!({"conditions": [condition("Installed", "False", "UnpackingPackage"),
                                              condition("Healthy", "True", "HealthyPackageRevision")]});
        assert_eq!(
            health("pkg.crossplane.io/v1", "Provider", Some(unpacking)),
            Some(Health::new(HealthStatus::Degraded, "UnpackingPackage HealthyPackageRevision"))
        );
    }

    #[test]
    fn crossplane_configuration_kinds_without_status_are_up_to_date() {
        for (api_version, kind) in [
            ("apiextensions.crossplane.io/v1", "Composition"),
            ("apiextensions.crossplane.io/v1beta1", "EnvironmentConfig"),
            ("pkg.crossplane.io/v1beta1", "ImageConfig"),
            ("helm.m.crossplane.io/v1beta1", "ClusterProviderConfigUsage"),
            ("aws.crossplane.io/v1alpha1", "StoreConfig"),
        ] {
            assert_eq!(health(api_version, kind, None), up_to_date(), "{kind}");
        }
    }

    #[test]
    fn crossplane_ready_conditions_of_every_flavour_are_up_to_date() {
        let revision =
            json!({"conditions": [condition("RevisionHealthy", "True", "HealthyPackageRevision")]});
        assert_eq!(health("pkg.crossplane.io/v1", "ConfigurationRevision", Some(revision)), up_to_date());
        let established = json!({"conditions": [condition("Offered", "True", "OfferedClaim"),
                                                condition("Established", "True", "WatchingCompositeResource")]});
        assert_eq!(
            health("apiextensions.crossplane.io/v1", "CompositeResourceDefinition", Some(established)),
            up_to_date()
        );
    }

    #[test]
    fn crossplane_resource_not_yet_reconciled_is_provisioning() {
        assert_eq!(
            health("apiextensions.crossplane.io/v1", "CompositeResourceDefinition", None),
            Some(Health::new(HealthStatus::Progressing, "Provisioning ..."))
        );
    }

    #[test]
    fn provider_config_with_users_is_in_use() {
        for api_version in ["helm.m.crossplane.io/v1beta1", "aws.upbound.io/v1beta1"] {
            assert_eq!(
                health(api_version, "ClusterProviderConfig", Some(json!({"users": 3}))),
                Some(Health::new(HealthStatus::Healthy, "Resource is in use.")),
            );
        }
    }

    #[test]
    fn provider_config_with_empty_conditions_is_up_to_date() {
        for api_version in ["helm.m.crossplane.io/v1beta1", "azure.upbound.io/v1beta1"] {
            assert_eq!(health(api_version, "ProviderConfig", Some(json!({"conditions": []}))), up_to_date());
        }
    }

    #[test]
    fn upbound_configuration_kinds_without_status_are_up_to_date() {
        for kind in ["ProviderConfig", "ProviderConfigUsage", "ClusterProviderConfigUsage", "StoreConfig"] {
            assert_eq!(health("aws.upbound.io/v1beta1", kind, None), up_to_date(), "{kind}");
        }
    }

    #[test]
    fn upbound_managed_resource_with_a_failed_update_is_degraded_though_ready() {
        let message = "update failed: async update failed: refuse to update the external resource because the following update requires replacing it: cannot change the value of the argument \"location\" from \"westeurope\" to \"switzerlandnorth\"";
        let status = json!({"conditions": [
            condition("Ready", "True", "Available"),
            {"type": "Synced", "status": "False", "reason": "ReconcileError", "message": message},
            {"type": "LastAsyncOperation", "status": "False", "reason": "AsyncUpdateFailure", "message": "async update failed"}]});
        assert_eq!(
            health("azure.m.upbound.io/v1beta1", "ResourceGroup", Some(status)),
            Some(Health::new(HealthStatus::Degraded, message))
        );
    }

    #[test]
    fn upbound_managed_resource_provisioning_and_ready() {
        assert_eq!(
            health("ec2.aws.upbound.io/v1beta1", "VPC", None),
            Some(Health::new(HealthStatus::Progressing, "Provisioning ..."))
        );
        let ready = json!({"conditions": [condition("Ready", "True", "Available"), condition("Synced", "True", "ReconcileSuccess")]});
        assert_eq!(health("ec2.aws.upbound.io/v1beta1", "VPC", Some(ready)), up_to_date());
        // Only Ready counts for upbound kinds.
        let healthy = json!({"conditions": [condition("Healthy", "True", "Healthy")]});
        assert_eq!(
            health("ec2.aws.upbound.io/v1beta1", "VPC", Some(healthy)),
            Some(Health::new(HealthStatus::Progressing, "Provisioning ..."))
        );
    }

    #[test]
    fn groups_merely_named_like_crossplane_are_not_assessed() {
        assert_eq!(health("crossplane.io/v1", "Thing", None), None);
        assert_eq!(health("example.com/v1", "ProviderConfig", None), None);
    }
}
