//! The one list of the argocd-cm keys berth understands, controller and API server together. A key that is
//! not in it has no effect in berth: it is logged once when the settings are first read (and when it
//! first appears), and `GET /api/v1/settings` lists it as `unsupportedSettings`, so no setting copied from
//! an Argo CD install is ignored in silence. Whoever teaches berth a new key adds it here.
//!
//! ```
//! use berth_controller::settings_keys::{is_supported, unsupported};
//! use std::collections::BTreeMap;
//! assert!(is_supported("kustomize.path.v5.4.3"));
//! let cm = BTreeMap::from([("ga.trackingid".to_string(), String::new())]);
//! assert_eq!(unsupported(&cm), ["ga.trackingid"]);
//! ```

use std::collections::BTreeMap;

/// Keys berth reads, each with who reads it.
pub const SUPPORTED_KEYS: &[(&str, &str)] = &[
    ("timeout.reconciliation", "controller: polling period"),
    ("timeout.reconciliation.jitter", "controller: polling jitter"),
    ("resource.customizations", "controller: health checks (health.lua, useOpenLibs)"),
    ("resource.exclusions", "controller: kinds left alone"),
    ("resource.inclusions", "controller: kinds left alone"),
    ("application.resourceTrackingMethod", "controller and server: resource tracking"),
    ("application.instanceLabelKey", "controller and server: resource tracking"),
    ("installationID", "controller and server: resource tracking"),
    ("kustomize.buildOptions", "controller: kustomize build options"),
    ("berth.selfHeal.paused", "controller: berth's emergency switch"),
    ("berth.repositories.allowFileURLs", "controller: file:// repositories"),
    ("cluster.inClusterEnabled", "controller: whether the in-cluster is a destination"),
    ("admin.enabled", "server: the admin account"),
    ("users.anonymous.enabled", "server: anonymous access"),
    ("url", "server: the external URL (SSO callback, Dex issuer)"),
    ("oidc.config", "server: SSO with an OIDC provider"),
    ("dex.config", "server: SSO through Dex"),
    ("statusbadge.enabled", "server: status badges"),
    ("statusbadge.url", "server: status badge URL in /api/v1/settings"),
    ("server.x.frame.options", "server: X-Frame-Options"),
    ("server.content.security.policy", "server: Content-Security-Policy"),
    ("server.api.content.types", "server: content types of state-changing requests"),
    ("webhook.maxPayloadSizeMB", "server: webhook body limit"),
];

/// Key prefixes berth reads (the rest of the key is a name: a group and kind, an account, a version).
pub const SUPPORTED_PREFIXES: &[(&str, &str)] = &[
    ("resource.customizations.ignoreDifferences.", "controller: system-wide ignoreDifferences"),
    ("resource.customizations.health.", "controller: Lua health checks"),
    ("resource.customizations.useOpenLibs.", "controller: Lua health checks"),
    ("resource.customizations.actions.", "server: resource actions"),
    ("kustomize.buildOptions.", "controller: build options of a Kustomize version"),
    ("kustomize.path.", "controller: binary of a Kustomize version"),
    ("kustomize.version.", "controller: binary of a Kustomize version (older spelling)"),
    ("accounts.", "server: local accounts"),
];

/// Whether berth reads argocd-cm `key`.
pub fn is_supported(key: &str) -> bool {
    SUPPORTED_KEYS.iter().any(|(k, _)| *k == key)
        || SUPPORTED_PREFIXES.iter().any(|(p, _)| key.len() > p.len() && key.starts_with(p))
}

/// The keys of argocd-cm's `data` that berth does not read, in key order.
pub fn unsupported(data: &BTreeMap<String, String>) -> Vec<String> {
    data.keys().filter(|k| !is_supported(k)).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(keys: &[&str]) -> BTreeMap<String, String> {
        keys.iter().map(|k| (k.to_string(), String::new())).collect()
    }

    #[test]
    fn keys_and_prefixes_berth_reads_are_supported_and_the_rest_are_listed() {
        let cm = data(&[
            "timeout.reconciliation",
            "resource.customizations.health.apps_Deployment",
            "accounts.alice",
            "accounts.alice.enabled",
            "kustomize.buildOptions.v5.0.0",
            "users.anonymous.enabled",
            "ga.trackingid",
            "users.session.duration",
            "resource.customizations.actions.apps_Deployment",
            "accounts.",
        ]);
        assert_eq!(unsupported(&cm), ["accounts.", "ga.trackingid", "users.session.duration"]);
    }

    #[test]
    fn the_keys_other_modules_read_are_on_the_list() {
        // Each key a reader in berth takes from argocd-cm (settings, tracking, exclusions, accounts, HTTP
        // settings, webhooks, Kustomize, the file-URL switch).
        for key in [
            berth_repo::validate::ALLOW_FILE_URLS_KEY,
            berth_repo::render::kustomize::BUILD_OPTIONS_KEY,
            crate::clusters::secret::IN_CLUSTER_ENABLED_KEY,
            "application.resourceTrackingMethod",
            "application.instanceLabelKey",
            "installationID",
            "resource.exclusions",
            "resource.inclusions",
            "server.api.content.types",
            "webhook.maxPayloadSizeMB",
        ] {
            assert!(is_supported(key), "{key}");
        }
        for prefix in [
            berth_repo::render::kustomize::VERSION_PATH_PREFIX,
            berth_repo::render::kustomize::LEGACY_VERSION_PATH_PREFIX,
            berth_repo::render::kustomize::VERSION_BUILD_OPTIONS_PREFIX,
        ] {
            assert!(is_supported(&format!("{prefix}v1")), "{prefix}");
        }
    }
}
