//! AppProject rules: which repositories, destinations and kinds a project's applications may use.
//! Globs as Argo CD writes them (`*`, `dev-*`, `{a,b}`), `!` negates; a deny always wins.

use berth_api::project::{AppProjectSpec, GroupKind};

fn glob_match(pattern: &str, value: &str) -> bool {
    if pattern == "*" || pattern == value {
        return true;
    }
    globset::Glob::new(pattern).map(|g| g.compile_matcher().is_match(value)).unwrap_or(false)
}

/// Allowed when a positive pattern matches and no `!` pattern does.
fn allowed_by(patterns: &[String], value: &str) -> bool {
    let mut allowed = false;
    for p in patterns {
        match p.strip_prefix('!') {
            Some(neg) if glob_match(neg, value) => return false,
            Some(_) => {}
            None => allowed |= glob_match(p, value),
        }
    }
    allowed
}

/// Whether the project lets its applications deploy from `repo_url`.
pub fn source_permitted(project: &AppProjectSpec, repo_url: &str) -> bool {
    // `.git`, a trailing slash and letter case do not make another repository.
    let normalize = |u: &str| {
        let (neg, u) = u.strip_prefix('!').map_or(("", u), |rest| ("!", rest));
        format!("{neg}{}", berth_repo::git::normalize_url(u))
    };
    let patterns: Vec<String> = project.source_repos.iter().map(|p| normalize(p)).collect();
    allowed_by(&patterns, &normalize(repo_url))
}

/// Whether the project lets its applications deploy to `namespace` on the cluster (`server`, `name`).
pub fn destination_permitted(project: &AppProjectSpec, server: &str, name: &str, namespace: &str) -> bool {
    let cluster_matches = |d: &berth_api::project::ProjectDestination| {
        let by_server = d.server.as_deref().is_some_and(|s| !s.is_empty() && glob_match(s, server));
        let by_name = d.name.as_deref().is_some_and(|n| !n.is_empty() && glob_match(n, name));
        by_server || by_name
    };
    let mut allowed = false;
    for d in &project.destinations {
        let ns = d.namespace.as_deref().unwrap_or("*");
        match ns.strip_prefix('!') {
            Some(neg) => {
                if cluster_matches(d) && glob_match(neg, namespace) {
                    return false;
                }
            }
            None => allowed |= cluster_matches(d) && glob_match(ns, namespace),
        }
    }
    allowed
}

fn listed(list: &[GroupKind], group: &str, kind: &str, name: &str) -> bool {
    list.iter().any(|gk| {
        glob_match(&gk.group, group)
            && glob_match(&gk.kind, kind)
            && gk.name.as_deref().is_none_or(|n| n.is_empty() || glob_match(n, name))
    })
}

/// Whether the project lets its applications manage an object of this kind. Cluster-scoped kinds must
/// be whitelisted; namespaced kinds are allowed unless a namespace whitelist leaves them out. Blacklists
/// win over whitelists.
pub fn resource_permitted(
    project: &AppProjectSpec,
    group: &str,
    kind: &str,
    name: &str,
    namespaced: bool,
) -> bool {
    if namespaced {
        let whitelisted = project.namespace_resource_whitelist.is_empty()
            || listed(&project.namespace_resource_whitelist, group, kind, name);
        whitelisted && !listed(&project.namespace_resource_blacklist, group, kind, name)
    } else {
        listed(&project.cluster_resource_whitelist, group, kind, name)
            && !listed(&project.cluster_resource_blacklist, group, kind, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seed's dev-team AppProject (../shared/seed/examples/appproject-dev-team.yaml).
    fn dev_team() -> AppProjectSpec {
        serde_json::from_value(serde_json::json!({
            "sourceRepos": ["https://github.com/myorg/dev-manifests.git"],
            "destinations": [{"namespace": "dev-*", "server": "*"}],
            "clusterResourceWhitelist": [{"group": "", "kind": "Namespace"}],
            "namespaceResourceWhitelist": [{"group": "apps", "kind": "Deployment"}]
        }))
        .unwrap()
    }

    #[test]
    fn the_seeds_dev_team_may_use_only_its_repo() {
        let p = dev_team();
        assert!(source_permitted(&p, "https://github.com/myorg/dev-manifests.git"));
        assert!(source_permitted(&p, "https://github.com/myorg/dev-manifests"));
        assert!(!source_permitted(&p, "https://github.com/myorg/k8s-manifests"));
    }

    #[test]
    fn the_seeds_dev_team_may_deploy_only_to_dev_namespaces() {
        let p = dev_team();
        assert!(destination_permitted(&p, "https://kubernetes.default.svc", "in-cluster", "dev-alice"));
        assert!(!destination_permitted(&p, "https://kubernetes.default.svc", "in-cluster", "prod"));
    }

    #[test]
    fn the_seeds_dev_team_may_create_namespaces_and_deployments_only() {
        let p = dev_team();
        assert!(resource_permitted(&p, "", "Namespace", "dev-a", false));
        assert!(resource_permitted(&p, "apps", "Deployment", "web", true));
        assert!(!resource_permitted(&p, "", "Service", "web", true));
        assert!(!resource_permitted(&p, "rbac.authorization.k8s.io", "ClusterRole", "x", false));
    }

    #[test]
    fn negations_deny_even_when_a_wildcard_allows() {
        let p: AppProjectSpec = serde_json::from_value(serde_json::json!({
            "sourceRepos": ["*", "!https://github.com/forbidden/*"],
            "destinations": [{"namespace": "*", "server": "*"}, {"namespace": "!kube-system", "server": "*"}],
            "clusterResourceWhitelist": [{"group": "*", "kind": "*"}],
            "clusterResourceBlacklist": [{"group": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin-*"}],
            "namespaceResourceBlacklist": [{"group": "", "kind": "ResourceQuota"}]
        }))
        .unwrap();
        assert!(source_permitted(&p, "https://github.com/myorg/app"));
        assert!(!source_permitted(&p, "https://github.com/forbidden/app"));
        assert!(destination_permitted(&p, "https://k", "", "web"));
        assert!(!destination_permitted(&p, "https://k", "", "kube-system"));
        assert!(resource_permitted(&p, "rbac.authorization.k8s.io", "ClusterRole", "viewer", false));
        assert!(!resource_permitted(&p, "rbac.authorization.k8s.io", "ClusterRole", "admin-all", false));
        assert!(!resource_permitted(&p, "", "ResourceQuota", "q", true));
        assert!(resource_permitted(&p, "", "ConfigMap", "c", true));
    }

    #[test]
    fn a_project_without_a_cluster_whitelist_allows_no_cluster_scoped_kind() {
        let p: AppProjectSpec = serde_json::from_value(serde_json::json!({"sourceRepos": ["*"]})).unwrap();
        assert!(!resource_permitted(&p, "", "Namespace", "x", false));
        assert!(resource_permitted(&p, "", "ConfigMap", "x", true));
    }
}
