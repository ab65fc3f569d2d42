//! What the API server takes from argocd-cm besides the accounts, read in the same snapshot (replaced with
//! the accounts whenever argocd-cm changes): who may call without a session, the status badge, and what
//! `GET /api/v1/settings` shows.

use std::collections::BTreeMap;

/// `users.anonymous.enabled`.
pub const ANONYMOUS_ENABLED_KEY: &str = "users.anonymous.enabled";
/// `statusbadge.enabled`.
pub const STATUS_BADGE_ENABLED_KEY: &str = "statusbadge.enabled";
/// `statusbadge.url`.
pub const STATUS_BADGE_URL_KEY: &str = "statusbadge.url";

/// argocd-cm as the API server reads it (besides accounts and HTTP headers).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerSettings {
    /// `users.anonymous.enabled: "true"`: a request without a valid session acts as the anonymous user,
    /// whom RBAC gives argocd-rbac-cm's `policy.default` role and nothing else.
    pub anonymous_enabled: bool,
    /// `statusbadge.enabled: "true"`: `GET /api/badge` shows an application's sync and health to anyone.
    pub status_badge_enabled: bool,
    /// `statusbadge.url`: the root URL the UI writes into badge links ("" for the server's own).
    pub status_badge_url: String,
    /// `kustomize.buildOptions` as written (shown to clients; the controller decides what runs).
    pub kustomize_build_options: String,
    /// The Kustomize versions argocd-cm names binaries for (`kustomize.path.<version>`).
    pub kustomize_versions: Vec<String>,
    /// The keys berth does not read (see [`berth_controller::settings_keys`]).
    pub unsupported: Vec<String>,
}

impl ServerSettings {
    /// Reads argocd-cm's `data`; the switches are on only for exactly `"true"`, as in Argo CD.
    pub fn from_config_map(data: &BTreeMap<String, String>) -> Self {
        let on = |key: &str| data.get(key).is_some_and(|v| v == "true");
        let kustomize =
            berth_repo::render::kustomize::KustomizeSettings::from_argocd_cm(data, &mut Vec::new());
        ServerSettings {
            anonymous_enabled: on(ANONYMOUS_ENABLED_KEY),
            status_badge_enabled: on(STATUS_BADGE_ENABLED_KEY),
            status_badge_url: data.get(STATUS_BADGE_URL_KEY).cloned().unwrap_or_default(),
            kustomize_build_options: data
                .get(berth_repo::render::kustomize::BUILD_OPTIONS_KEY)
                .cloned()
                .unwrap_or_default(),
            kustomize_versions: kustomize.versions.into_keys().collect(),
            unsupported: berth_controller::settings_keys::unsupported(data),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::accounts::tests::cm;

    #[test]
    fn the_switches_are_on_only_for_exactly_true() {
        let off = ServerSettings::from_config_map(&cm(&[]));
        assert!(!off.anonymous_enabled && !off.status_badge_enabled);
        let on = ServerSettings::from_config_map(&cm(&[
            ("users.anonymous.enabled", "true"),
            ("statusbadge.enabled", "true"),
        ]));
        assert!(on.anonymous_enabled && on.status_badge_enabled);
        let almost = ServerSettings::from_config_map(&cm(&[
            ("users.anonymous.enabled", "True"),
            ("statusbadge.enabled", "1"),
        ]));
        assert!(!almost.anonymous_enabled && !almost.status_badge_enabled, "as Argo CD compares them");
    }

    #[test]
    fn unsupported_keys_and_kustomize_versions_are_listed() {
        let s = ServerSettings::from_config_map(&cm(&[
            ("ga.trackingid", "UA-1"),
            ("kustomize.path.v5.4.3", "/usr/local/bin/kustomize-5"),
            ("kustomize.buildOptions", "--load-restrictor LoadRestrictionsNone"),
            ("statusbadge.url", "https://cd.example.com/"),
        ]));
        assert_eq!(s.unsupported, ["ga.trackingid"]);
        assert_eq!(s.kustomize_versions, ["v5.4.3"]);
        assert_eq!(s.kustomize_build_options, "--load-restrictor LoadRestrictionsNone");
        assert_eq!(s.status_badge_url, "https://cd.example.com/");
    }
}
