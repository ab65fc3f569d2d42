//! argocd-cm `resource.exclusions` and `resource.inclusions`: the kinds berth leaves alone, as Argo CD
//! documents them. An entry matches when each of its lists (`apiGroups`, `kinds`, `clusters`; globs,
//! an empty or absent list matching anything) matches; a kind is excluded when an exclusion matches it,
//! or when there are inclusions and none matches it. An excluded kind is never applied, compared,
//! watched for an application or pruned; an application whose source has one gets an
//! ExcludedResourceWarning naming it.

use serde::Deserialize;
use std::collections::BTreeMap;

/// One `resource.exclusions` / `resource.inclusions` entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FilteredResource {
    #[serde(default)]
    pub api_groups: Vec<String>,
    #[serde(default)]
    pub kinds: Vec<String>,
    #[serde(default)]
    pub clusters: Vec<String>,
}

impl FilteredResource {
    fn matches(&self, group: &str, kind: &str, cluster: &str) -> bool {
        let any = |patterns: &[String], value: &str| {
            patterns.is_empty() || patterns.iter().any(|p| crate::project::glob_match(p, value, false))
        };
        any(&self.api_groups, group) && any(&self.kinds, kind) && any(&self.clusters, cluster)
    }
}

/// The kinds argocd-cm excludes from management.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResourceFilter {
    pub exclusions: Vec<FilteredResource>,
    pub inclusions: Vec<FilteredResource>,
}

impl ResourceFilter {
    /// Reads both keys; a value that does not parse is a warning and leaves that list empty.
    pub fn from_argocd_cm(data: &BTreeMap<String, String>, warnings: &mut Vec<String>) -> Self {
        let mut read = |key: &str| -> Vec<FilteredResource> {
            let Some(text) = data.get(key).filter(|t| !t.trim().is_empty()) else { return vec![] };
            serde_saphyr::from_str::<Vec<FilteredResource>>(text).unwrap_or_else(|e| {
                warnings.push(format!("argocd-cm {key}: {e}"));
                vec![]
            })
        };
        ResourceFilter { exclusions: read("resource.exclusions"), inclusions: read("resource.inclusions") }
    }

    /// Whether objects of `group`/`kind` on `cluster` (its API server URL) are left alone.
    pub fn excludes(&self, group: &str, kind: &str, cluster: &str) -> bool {
        self.exclusions.iter().any(|r| r.matches(group, kind, cluster))
            || (!self.inclusions.is_empty()
                && !self.inclusions.iter().any(|r| r.matches(group, kind, cluster)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(exclusions: &str, inclusions: &str) -> (ResourceFilter, Vec<String>) {
        let data = [("resource.exclusions", exclusions), ("resource.inclusions", inclusions)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut warnings = vec![];
        (ResourceFilter::from_argocd_cm(&data, &mut warnings), warnings)
    }

    const IN_CLUSTER: &str = "https://kubernetes.default.svc";

    #[test]
    fn an_exclusion_matches_by_group_kind_and_cluster_with_globs() {
        let (f, warnings) = filter(
            "- apiGroups: [\"*.example.com\"]\n  kinds: [\"*\"]\n- apiGroups: [\"\"]\n  kinds: [ConfigMap]\n  clusters: [\"https://prod.*\"]\n",
            "",
        );
        assert!(warnings.is_empty(), "{warnings:?}");
        assert!(f.excludes("db.example.com", "Database", IN_CLUSTER));
        assert!(!f.excludes("apps", "Deployment", IN_CLUSTER));
        assert!(f.excludes("", "ConfigMap", "https://prod.example.com"));
        assert!(!f.excludes("", "ConfigMap", IN_CLUSTER), "the cluster list limits the entry");
    }

    #[test]
    fn with_inclusions_only_what_they_name_is_managed_and_an_exclusion_still_wins() {
        let (f, _) = filter("- kinds: [Secret]\n", "- apiGroups: [\"\"]\n  kinds: [\"*\"]\n");
        assert!(!f.excludes("", "ConfigMap", IN_CLUSTER));
        assert!(f.excludes("apps", "Deployment", IN_CLUSTER), "not included");
        assert!(f.excludes("", "Secret", IN_CLUSTER), "included and excluded: excluded");
    }

    #[test]
    fn no_setting_excludes_nothing_and_a_bad_one_is_a_warning() {
        let (f, _) = filter("", "");
        assert!(!f.excludes("apps", "Deployment", IN_CLUSTER));
        let (f, warnings) = filter("kinds: [Secret]", "");
        assert_eq!(f, ResourceFilter::default());
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("resource.exclusions"), "{warnings:?}");
    }
}
