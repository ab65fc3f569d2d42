//! AppProject rules: which repositories, destinations and kinds a project's applications may use.
//!
//! As Argo CD documents them: a repository or destination is permitted when an allow entry matches it
//! and no `!` entry denies it; cluster-scoped kinds must be in `clusterResourceWhitelist`; namespaced
//! kinds are allowed unless a non-empty `namespaceResourceWhitelist` leaves them out; a blacklist entry
//! always wins. Each `*_check` says which rule refused, for the Application's condition.
//!
//! ```text
//! project::resource_check("dev-team", &proj.spec, "rbac.authorization.k8s.io", "ClusterRole", "x", false)?;
//! ```

use berth_api::project::{AppProjectSpec, GroupKind, ProjectDestination};
use berth_engine::resource::ResourceKey;
use std::fmt::Write;

/// Argo CD's globs: `*` alone matches anything. In repository URLs (`path_like`) `*` stops at `/` and
/// `/**` crosses it; elsewhere `*` matches any text. A pattern that does not parse matches nothing.
pub(crate) fn glob_match(pattern: &str, value: &str, path_like: bool) -> bool {
    if pattern == "*" || pattern == value {
        return true;
    }
    globset::GlobBuilder::new(pattern)
        .literal_separator(path_like)
        .build()
        .map(|g| g.compile_matcher().is_match(value))
        .unwrap_or(false)
}

/// Whether the project lets its applications deploy from `repo_url`; the refusal as Argo CD words it, with
/// the rule: `application repo URL is not permitted in project 'P': no sourceRepos entry allows it` or
/// `…: sourceRepos entry '!PATTERN' denies it`.
pub fn source_check(project_name: &str, project: &AppProjectSpec, repo_url: &str) -> Result<(), String> {
    let refuse = |why: String| {
        Err(format!("application repo {repo_url} is not permitted in project '{project_name}': {why}"))
    };
    // `.git`, a trailing slash and letter case do not make another repository.
    let url = berth_repo::url::normalize(repo_url);
    let mut allowed = false;
    for entry in &project.source_repos {
        match entry.strip_prefix('!') {
            Some(denied) => {
                if glob_match(&berth_repo::url::normalize(denied), &url, true) {
                    return refuse(format!("sourceRepos entry '{entry}' denies it"));
                }
            }
            None => allowed |= glob_match(&berth_repo::url::normalize(entry), &url, true),
        }
    }
    if allowed { Ok(()) } else { refuse("no sourceRepos entry allows it".into()) }
}

/// Whether the project lets its applications deploy to `namespace` on the cluster (`server`, `name`, and
/// `scoped_to`: the project its cluster Secret names in `project`); the refusal as Argo CD words it, with
/// the rule: `application destination server 'S' and namespace 'N' do not match any of the allowed
/// destinations in project 'P': no destinations entry allows it` or `…: destinations entry {server: '*',
/// namespace: '!kube-system'} denies it`.
///
/// As Argo CD's IsDestinationPermitted: with `permitOnlyProjectScopedClusters`, a destination the entries
/// allow is permitted only on a cluster scoped to this project (`…: permitOnlyProjectScopedClusters is set
/// and cluster 'C' (S) is not scoped to project 'P' (its cluster Secret's project is 'Q')`).
pub fn destination_check(
    project_name: &str,
    project: &AppProjectSpec,
    server: &str,
    name: &str,
    scoped_to: Option<&str>,
    namespace: &str,
) -> Result<(), String> {
    let why = cluster_refusal(project_name, project, server, name, scoped_to, namespace);
    why.map_or(Ok(()), |why| {
        Err(format!(
            "application destination server '{server}' and namespace '{namespace}' do not match any of the \
             allowed destinations in project '{project_name}': {why}"
        ))
    })
}

/// Why the project refuses `namespace` on the cluster (`server`, `name`, `scoped_to`): its `destinations`,
/// then, with `permitOnlyProjectScopedClusters`, the cluster's scope. The one rule for an application's
/// destination and for each object's own namespace.
fn cluster_refusal(
    project_name: &str,
    project: &AppProjectSpec,
    server: &str,
    name: &str,
    scoped_to: Option<&str>,
    namespace: &str,
) -> Option<String> {
    destination_refusal(project, server, name, namespace).or_else(|| {
        let only_scoped = project.permit_only_project_scoped_clusters == Some(true);
        (only_scoped && scoped_to != Some(project_name)).then(|| {
            let scope = match scoped_to {
                Some(other) => format!("its cluster Secret's project is '{other}'"),
                None => "its cluster Secret has no project".into(),
            };
            format!(
                "permitOnlyProjectScopedClusters is set and cluster '{name}' ({server}) is not scoped to \
                 project '{project_name}' ({scope})"
            )
        })
    })
}

/// An entry is a deny entry when any of its fields starts with `!`; it denies a destination whose value
/// matches such a field's pattern. Allow entries match by server or by name, and by namespace; a missing
/// namespace pattern matches only an empty namespace, as in Argo CD.
fn destination_refusal(
    project: &AppProjectSpec,
    server: &str,
    name: &str,
    namespace: &str,
) -> Option<String> {
    fn negated(pattern: Option<&str>) -> Option<&str> {
        pattern.and_then(|p| p.strip_prefix('!'))
    }
    let mut allowed = false;
    for d in &project.destinations {
        let fields =
            [(d.server.as_deref(), server), (d.name.as_deref(), name), (d.namespace.as_deref(), namespace)];
        if fields.iter().any(|&(pattern, _)| negated(pattern).is_some()) {
            let denies = |&(pattern, value): &(Option<&str>, &str)| {
                negated(pattern).is_some_and(|p| !value.is_empty() && glob_match(p, value, false))
            };
            if fields.iter().any(denies) {
                return Some(format!("destinations entry {} denies it", show_destination(d)));
            }
            continue;
        }
        let by = |pattern: Option<&str>, value: &str| {
            pattern.is_some_and(|p| !p.is_empty() && !value.is_empty() && glob_match(p, value, false))
        };
        let cluster = by(d.server.as_deref(), server) || by(d.name.as_deref(), name);
        allowed |= cluster && glob_match(d.namespace.as_deref().unwrap_or_default(), namespace, false);
    }
    (!allowed).then(|| "no destinations entry allows it".into())
}

fn show_destination(d: &ProjectDestination) -> String {
    let fields = [("server", &d.server), ("name", &d.name), ("namespace", &d.namespace)];
    let shown: Vec<String> =
        fields.iter().filter_map(|(key, v)| v.as_ref().map(|v| format!("{key}: '{v}'"))).collect();
    format!("{{{}}}", shown.join(", "))
}

/// Whether `project` (an AppProject's `spec.sourceNamespaces`) lets an Application in `namespace` use it;
/// the refusal as Argo CD words it. The control namespace may use every project.
pub fn source_namespace_check(
    app_name: &str,
    namespace: &str,
    control_namespace: &str,
    project_name: &str,
    source_namespaces: &[String],
) -> Result<(), String> {
    if namespace.is_empty()
        || namespace == control_namespace
        || source_namespaces.iter().any(|p| glob_match(p, namespace, false))
    {
        return Ok(());
    }
    Err(format!(
        "application '{app_name}' in namespace '{namespace}' is not permitted to use project '{project_name}'"
    ))
}

/// The first entry of `list` that names this object's group and kind (and name, when the entry has one).
fn listed<'a>(list: &'a [GroupKind], group: &str, kind: &str, name: &str) -> Option<&'a GroupKind> {
    list.iter().find(|gk| {
        glob_match(&gk.group, group, false)
            && glob_match(&gk.kind, kind, false)
            && gk.name.as_deref().is_none_or(|n| n.is_empty() || glob_match(n, name, false))
    })
}

fn show_entry(gk: &GroupKind) -> String {
    let mut s = format!("{{group: '{}', kind: '{}'", gk.group, gk.kind);
    if let Some(n) = gk.name.as_deref().filter(|n| !n.is_empty()) {
        let _ = write!(s, ", name: '{n}'");
    }
    s.push('}');
    s
}

/// Whether the project lets its applications manage an object of this kind. Cluster-scoped kinds must
/// be whitelisted; namespaced kinds are allowed unless a namespace whitelist leaves them out; blacklists
/// win over whitelists. The refusal names the object and the rule: `resource GROUP:KIND "NAME" is not permitted in project 'P': REASON`, where REASON is one of
/// `cluster-scoped kinds must be listed in clusterResourceWhitelist`,
/// `matched clusterResourceBlacklist entry {group: 'G', kind: 'K'}`,
/// `namespaceResourceWhitelist has no entry for it`,
/// `matched namespaceResourceBlacklist entry {group: 'G', kind: 'K'}` (`, name: 'N'` when the entry has one).
/// The core group is empty: `resource :Secret "x"`.
pub fn resource_check(
    project_name: &str,
    project: &AppProjectSpec,
    group: &str,
    kind: &str,
    name: &str,
    namespaced: bool,
) -> Result<(), String> {
    resource_refusal(project, group, kind, name, namespaced).map_or(Ok(()), |why| {
        Err(format!("resource {group}:{kind} {name:?} is not permitted in project '{project_name}': {why}"))
    })
}

fn resource_refusal(
    project: &AppProjectSpec,
    group: &str,
    kind: &str,
    name: &str,
    namespaced: bool,
) -> Option<String> {
    let (white, black, lists) = if namespaced {
        (&project.namespace_resource_whitelist, &project.namespace_resource_blacklist, "namespaceResource")
    } else {
        (&project.cluster_resource_whitelist, &project.cluster_resource_blacklist, "clusterResource")
    };
    if let Some(entry) = listed(black, group, kind, name) {
        return Some(format!("matched {lists}Blacklist entry {}", show_entry(entry)));
    }
    let whitelisted = listed(white, group, kind, name).is_some();
    match namespaced {
        false if !whitelisted => {
            Some("cluster-scoped kinds must be listed in clusterResourceWhitelist".into())
        }
        true if !white.is_empty() && !whitelisted => {
            Some("namespaceResourceWhitelist has no entry for it".into())
        }
        _ => None,
    }
}

/// [`resource_check`] for an object as it will be applied, and, for a namespaced object, its own
/// namespace checked against `destinations` on the application's cluster (`server`, `cluster_name`), as
/// Argo CD does: `resource :ConfigMap "x" is not permitted in project 'P': namespace 'N' …: REASON`.
#[allow(clippy::too_many_arguments)] // the object and its cluster, in destination_check's order
pub fn object_check(
    project_name: &str,
    project: &AppProjectSpec,
    group: &str,
    kind: &str,
    name: &str,
    namespace: Option<&str>,
    server: &str,
    cluster_name: &str,
    scoped_to: Option<&str>,
) -> Result<(), String> {
    resource_check(project_name, project, group, kind, name, namespace.is_some())?;
    let Some(namespace) = namespace else { return Ok(()) };
    cluster_refusal(project_name, project, server, cluster_name, scoped_to, namespace).map_or(Ok(()), |why| {
        Err(format!(
            "resource {group}:{kind} {name:?} is not permitted in project '{project_name}': namespace \
             '{namespace}' is not an allowed destination: {why}"
        ))
    })
}

/// The live objects an application tracks, split into those its project permits and the refusals of the
/// rest, as Argo CD filters live objects before comparing, pruning or deleting (IsLiveResourcePermitted):
/// [`object_check`] on each object's kind and, when it has one, its own namespace on the application's
/// cluster. An application never prunes or deletes what its project may not deploy, even if the object
/// carries its tracking id. A missing project (`None`) permits nothing.
pub fn permitted_live<T>(
    project_name: &str,
    project: Option<&AppProjectSpec>,
    tracked: Vec<(ResourceKey, T)>,
    server: &str,
    cluster_name: &str,
    scoped_to: Option<&str>,
) -> (Vec<(ResourceKey, T)>, Vec<String>) {
    let mut refused = Vec::new();
    let permitted = tracked
        .into_iter()
        .filter(|(key, _)| {
            let namespace = (!key.namespace.is_empty()).then_some(key.namespace.as_str());
            let check = match project {
                Some(spec) => object_check(
                    project_name,
                    spec,
                    &key.group,
                    &key.kind,
                    &key.name,
                    namespace,
                    server,
                    cluster_name,
                    scoped_to,
                ),
                None => Err(format!(
                    "resource {}:{} {:?} is not permitted: project '{project_name}' does not exist",
                    key.group, key.kind, key.name
                )),
            };
            check
                .map_err(|e| {
                    refused.push(format!("{e}; the application leaves it alone (never pruned or deleted)"))
                })
                .is_ok()
        })
        .collect();
    (permitted, refused)
}

#[cfg(test)]
mod tests {
    use super::*;

    const IN_CLUSTER: &str = "https://kubernetes.default.svc";

    fn spec(json: serde_json::Value) -> AppProjectSpec {
        serde_json::from_value(json).unwrap()
    }

    /// The seed's dev-team AppProject (../shared/seed/examples/appproject-dev-team.yaml), as written.
    fn dev_team() -> AppProjectSpec {
        let path = berth_testkit::seed_dir().join("appproject-dev-team.yaml");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let project: berth_api::AppProject = serde_saphyr::from_str(&text).unwrap();
        project.spec
    }

    // The bool wrappers are for reconcile.rs; the tests go through the checks.
    fn source_ok(p: &AppProjectSpec, url: &str) -> bool {
        source_check("p", p, url).is_ok()
    }

    fn destination_ok(p: &AppProjectSpec, server: &str, name: &str, namespace: &str) -> bool {
        destination_check("p", p, server, name, None, namespace).is_ok()
    }

    fn resource_ok(p: &AppProjectSpec, group: &str, kind: &str, name: &str, namespaced: bool) -> bool {
        resource_check("p", p, group, kind, name, namespaced).is_ok()
    }

    fn err<T: std::fmt::Debug>(r: Result<T, String>) -> String {
        r.expect_err("refused")
    }

    // sourceRepos

    #[test]
    fn a_project_must_list_an_outside_namespace_in_source_namespaces() {
        let listed = vec!["team-*".to_string()];
        assert_eq!(source_namespace_check("web", "team-a", "argocd", "p", &listed), Ok(()));
        assert_eq!(source_namespace_check("web", "argocd", "argocd", "p", &[]), Ok(()));
        assert_eq!(
            source_namespace_check("web", "other", "argocd", "p", &listed),
            Err("application 'web' in namespace 'other' is not permitted to use project 'p'".into())
        );
    }

    #[test]
    fn the_seeds_dev_team_may_use_only_its_repo() {
        let p = dev_team();
        assert!(source_ok(&p, "https://github.com/myorg/dev-manifests.git"));
        assert!(source_ok(&p, "https://github.com/myorg/dev-manifests"));
        assert!(source_ok(&p, "https://GitHub.com/myorg/dev-manifests/"));
        assert_eq!(
            err(source_check("dev-team", &p, "https://github.com/myorg/k8s-manifests")),
            "application repo https://github.com/myorg/k8s-manifests is not permitted in project 'dev-team': \
             no sourceRepos entry allows it"
        );
    }

    #[test]
    fn a_source_deny_entry_wins_over_a_wildcard_and_is_named() {
        let p = spec(serde_json::json!({"sourceRepos": ["*", "!https://github.com/forbidden/*"]}));
        assert!(source_check("p", &p, "https://github.com/myorg/app").is_ok());
        assert_eq!(
            err(source_check("p", &p, "https://github.com/forbidden/app.git")),
            "application repo https://github.com/forbidden/app.git is not permitted in project 'p': \
             sourceRepos entry '!https://github.com/forbidden/*' denies it"
        );
    }

    #[test]
    fn a_source_deny_entry_alone_allows_nothing() {
        // Argo CD's documentation: valid when an allow entry permits it and no deny entry rejects it.
        let p = spec(serde_json::json!({"sourceRepos": ["!https://github.com/forbidden/*"]}));
        assert!(!source_ok(&p, "https://github.com/myorg/app"));
    }

    #[test]
    fn a_source_star_stays_within_one_path_segment_and_double_star_crosses_them() {
        let p = spec(
            serde_json::json!({"sourceRepos": ["https://github.com/myorg/*", "https://gitlab.com/group/**"]}),
        );
        assert!(source_ok(&p, "https://github.com/myorg/app"));
        assert!(!source_ok(&p, "https://github.com/myorg/team/app"));
        assert!(!source_ok(&p, "https://github.com/other/app"));
        assert!(source_ok(&p, "https://gitlab.com/group/sub/app"));
        let any = spec(serde_json::json!({"sourceRepos": ["*"]}));
        assert!(source_ok(&any, "git@github.com:myorg/app.git"));
    }

    #[test]
    fn a_negated_source_is_normalized_like_the_url() {
        let p = spec(serde_json::json!({"sourceRepos": ["*", "!https://GitHub.com/myorg/secret.git"]}));
        assert!(!source_ok(&p, "https://github.com/myorg/secret"));
        assert!(source_ok(&p, "https://github.com/myorg/public"));
    }

    #[test]
    fn a_project_without_source_repos_allows_no_repo() {
        assert!(!source_ok(&AppProjectSpec::default(), "https://github.com/myorg/app"));
    }

    // destinations

    #[test]
    fn the_seeds_dev_team_may_deploy_only_to_dev_namespaces() {
        let p = dev_team();
        assert!(destination_ok(&p, IN_CLUSTER, "in-cluster", "dev-alice"));
        assert_eq!(
            err(destination_check("dev-team", &p, IN_CLUSTER, "in-cluster", None, "prod-x")),
            "application destination server 'https://kubernetes.default.svc' and namespace 'prod-x' do not \
             match any of the allowed destinations in project 'dev-team': no destinations entry allows it"
        );
    }

    #[test]
    fn a_destination_matches_by_server_or_by_name() {
        let p = spec(serde_json::json!({"destinations": [
            {"server": "https://prod.example.com", "namespace": "a"},
            {"name": "staging-*", "namespace": "b"},
        ]}));
        assert!(destination_ok(&p, "https://prod.example.com", "prod", "a"));
        assert!(destination_ok(&p, "https://10.0.0.1", "staging-eu", "b"));
        assert!(!destination_ok(&p, "https://10.0.0.1", "staging-eu", "a"), "namespace a is prod's");
        assert!(!destination_ok(&p, IN_CLUSTER, "in-cluster", "b"));
    }

    #[test]
    fn an_empty_server_or_name_pattern_matches_no_cluster() {
        let p = spec(serde_json::json!({"destinations": [{"server": "", "name": "", "namespace": "*"}]}));
        assert!(!destination_ok(&p, IN_CLUSTER, "in-cluster", "web"));
    }

    #[test]
    fn a_destination_without_a_namespace_allows_only_cluster_scoped_apps() {
        let p = spec(serde_json::json!({"destinations": [{"server": "*"}]}));
        assert!(destination_ok(&p, IN_CLUSTER, "in-cluster", ""));
        assert!(!destination_ok(&p, IN_CLUSTER, "in-cluster", "web"));
    }

    #[test]
    fn a_negated_namespace_denies_even_when_a_wildcard_allows_and_is_named() {
        let p = spec(serde_json::json!({"destinations": [
            {"namespace": "!kube-system", "server": "*"},
            {"namespace": "*", "server": "*"},
        ]}));
        assert!(destination_ok(&p, IN_CLUSTER, "in-cluster", "web"));
        let refusal = err(destination_check("p", &p, IN_CLUSTER, "in-cluster", None, "kube-system"));
        assert!(
            refusal.ends_with(": destinations entry {server: '*', namespace: '!kube-system'} denies it"),
            "{refusal}"
        );
    }

    #[test]
    fn a_negated_server_or_name_denies_that_cluster() {
        let p = spec(serde_json::json!({"destinations": [
            {"namespace": "*", "server": "!https://team1-*"},
            {"namespace": "*", "name": "!prod"},
            {"namespace": "*", "server": "*"},
        ]}));
        assert!(destination_ok(&p, IN_CLUSTER, "in-cluster", "web"));
        assert!(!destination_ok(&p, "https://team1-eu", "eu", "web"));
        let refusal = err(destination_check("p", &p, "https://10.0.0.9", "prod", None, "web"));
        assert!(
            refusal.ends_with(": destinations entry {name: '!prod', namespace: '*'} denies it"),
            "{refusal}"
        );
    }

    #[test]
    fn with_permit_only_project_scoped_clusters_a_matched_destination_must_be_a_cluster_scoped_to_the_project()
     {
        let mut p = spec(serde_json::json!({"destinations": [{"namespace": "web", "server": "*"}]}));
        let prod = "https://prod.example.com";
        // Without the flag, a project-scoped cluster is a destination like any other.
        assert!(destination_check("team-a", &p, prod, "prod", Some("team-b"), "web").is_ok());
        p.permit_only_project_scoped_clusters = Some(true);
        assert!(destination_check("team-a", &p, prod, "prod", Some("team-a"), "web").is_ok());
        assert_eq!(
            err(destination_check("team-a", &p, prod, "prod", Some("team-b"), "web")),
            "application destination server 'https://prod.example.com' and namespace 'web' do not match any \
             of the allowed destinations in project 'team-a': permitOnlyProjectScopedClusters is set and \
             cluster 'prod' (https://prod.example.com) is not scoped to project 'team-a' (its cluster \
             Secret's project is 'team-b')"
        );
        let refusal = err(destination_check("team-a", &p, IN_CLUSTER, "in-cluster", None, "web"));
        assert!(refusal.ends_with("(its cluster Secret has no project)"), "{refusal}");
        // The entries still decide first: a scoped cluster they do not allow is refused for that.
        let refusal = err(destination_check("team-a", &p, prod, "prod", Some("team-a"), "other"));
        assert!(refusal.ends_with(": no destinations entry allows it"), "{refusal}");
    }

    #[test]
    fn a_destination_deny_entry_alone_allows_nothing() {
        let p = spec(serde_json::json!({"destinations": [{"namespace": "!kube-system", "server": "*"}]}));
        assert!(!destination_ok(&p, IN_CLUSTER, "in-cluster", "web"));
    }

    #[test]
    fn destination_globs_cover_alternatives_and_single_characters() {
        let p = spec(
            serde_json::json!({"destinations": [{"namespace": "{dev,qa}-?", "server": "https://*.example.com"}]}),
        );
        assert!(destination_ok(&p, "https://eu.example.com", "", "qa-1"));
        assert!(!destination_ok(&p, "https://eu.example.com", "", "qa-12"));
        assert!(!destination_ok(&p, "https://eu.example.org", "", "dev-1"));
    }

    // cluster-scoped kinds

    #[test]
    fn the_seeds_dev_team_may_create_namespaces_but_not_cluster_roles() {
        let p = dev_team();
        assert!(resource_ok(&p, "", "Namespace", "dev-a", false));
        assert_eq!(
            err(resource_check("dev-team", &p, "rbac.authorization.k8s.io", "ClusterRole", "x", false)),
            "resource rbac.authorization.k8s.io:ClusterRole \"x\" is not permitted in project 'dev-team': \
             cluster-scoped kinds must be listed in clusterResourceWhitelist"
        );
    }

    #[test]
    fn a_project_without_a_cluster_whitelist_allows_no_cluster_scoped_kind() {
        let p = spec(serde_json::json!({"sourceRepos": ["*"]}));
        let refusal = err(resource_check("p", &p, "", "Namespace", "x", false));
        assert!(
            refusal.ends_with(": cluster-scoped kinds must be listed in clusterResourceWhitelist"),
            "{refusal}"
        );
        assert!(resource_ok(&p, "", "ConfigMap", "x", true));
    }

    #[test]
    fn the_cluster_blacklist_wins_over_the_whitelist_and_is_named_with_its_name_glob() {
        let p = spec(serde_json::json!({
            "clusterResourceWhitelist": [{"group": "*", "kind": "*"}],
            "clusterResourceBlacklist": [{"group": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin-*"}]
        }));
        assert!(resource_ok(&p, "rbac.authorization.k8s.io", "ClusterRole", "viewer", false));
        assert_eq!(
            err(resource_check("p", &p, "rbac.authorization.k8s.io", "ClusterRole", "admin-all", false)),
            "resource rbac.authorization.k8s.io:ClusterRole \"admin-all\" is not permitted in project 'p': \
             matched clusterResourceBlacklist entry {group: 'rbac.authorization.k8s.io', kind: 'ClusterRole', \
             name: 'admin-*'}"
        );
    }

    #[test]
    fn a_cluster_whitelist_entry_with_a_name_allows_only_that_name() {
        let p = spec(
            serde_json::json!({"clusterResourceWhitelist": [{"group": "", "kind": "Namespace", "name": "team1-*"}]}),
        );
        assert!(resource_ok(&p, "", "Namespace", "team1-web", false));
        assert!(!resource_ok(&p, "", "Namespace", "team2-web", false));
    }

    #[test]
    fn group_and_kind_globs_match_parts_of_the_name() {
        let p = spec(
            serde_json::json!({"clusterResourceWhitelist": [{"group": "*.k8s.io", "kind": "Cluster*"}]}),
        );
        assert!(resource_ok(&p, "rbac.authorization.k8s.io", "ClusterRoleBinding", "x", false));
        assert!(!resource_ok(&p, "rbac.authorization.k8s.io", "Role", "x", false), "Role is not Cluster*");
        assert!(!resource_ok(&p, "", "ClusterThing", "x", false), "the core group is not *.k8s.io");
    }

    #[test]
    fn the_core_group_is_the_empty_string() {
        let p = spec(serde_json::json!({"clusterResourceWhitelist": [{"group": "", "kind": "Namespace"}]}));
        assert!(resource_ok(&p, "", "Namespace", "x", false));
        assert!(!resource_ok(&p, "example.com", "Namespace", "x", false));
    }

    // namespaced kinds

    #[test]
    fn namespaced_kinds_are_allowed_without_a_namespace_whitelist() {
        let p = AppProjectSpec::default();
        assert!(resource_check("p", &p, "", "Secret", "s", true).is_ok());
        assert!(resource_check("p", &p, "apps", "Deployment", "web", true).is_ok());
    }

    #[test]
    fn the_seeds_dev_team_may_manage_deployments_only() {
        let p = dev_team();
        assert!(resource_ok(&p, "apps", "Deployment", "web", true));
        assert_eq!(
            err(resource_check("dev-team", &p, "", "Service", "web", true)),
            "resource :Service \"web\" is not permitted in project 'dev-team': namespaceResourceWhitelist has no \
             entry for it"
        );
    }

    #[test]
    fn the_namespace_blacklist_wins_over_the_whitelist_and_is_named() {
        let p = spec(serde_json::json!({
            "namespaceResourceWhitelist": [{"group": "*", "kind": "*"}],
            "namespaceResourceBlacklist": [{"group": "", "kind": "Secret"}]
        }));
        assert!(resource_ok(&p, "", "ConfigMap", "c", true));
        assert_eq!(
            err(resource_check("p", &p, "", "Secret", "s", true)),
            "resource :Secret \"s\" is not permitted in project 'p': matched namespaceResourceBlacklist entry \
             {group: '', kind: 'Secret'}"
        );
    }

    #[test]
    fn argo_cds_locked_down_default_project_denies_every_namespaced_kind() {
        // The manifest Argo CD's documentation gives to remove all permissions from `default`.
        let p = spec(serde_json::json!({"namespaceResourceBlacklist": [{"group": "*", "kind": "*"}]}));
        assert!(!resource_ok(&p, "", "ConfigMap", "c", true));
        assert!(!resource_ok(&p, "apps", "Deployment", "d", true));
    }

    #[test]
    fn namespaced_and_cluster_lists_do_not_mix() {
        let p = spec(serde_json::json!({
            "clusterResourceWhitelist": [{"group": "*", "kind": "*"}],
            "namespaceResourceBlacklist": [{"group": "", "kind": "Namespace"}],
            "clusterResourceBlacklist": [{"group": "", "kind": "ConfigMap"}]
        }));
        assert!(resource_ok(&p, "", "Namespace", "x", false), "a namespace list ignores cluster kinds");
        assert!(resource_ok(&p, "", "ConfigMap", "x", true), "a cluster list ignores namespaced kinds");
    }

    #[test]
    fn the_default_project_allows_everything() {
        // What the controller creates when `default` is absent (lib.rs, as Argo CD documents it).
        let p = spec(serde_json::json!({
            "sourceRepos": ["*"], "destinations": [{"namespace": "*", "server": "*"}],
            "clusterResourceWhitelist": [{"group": "*", "kind": "*"}]
        }));
        assert!(source_ok(&p, "https://github.com/any/repo"));
        assert!(destination_ok(&p, IN_CLUSTER, "in-cluster", "kube-system"));
        assert!(resource_ok(&p, "rbac.authorization.k8s.io", "ClusterRole", "admin", false));
        assert!(resource_ok(&p, "", "Secret", "s", true));
    }

    // objects as applied

    #[test]
    fn an_object_in_a_namespace_outside_the_destinations_is_refused_with_its_namespace() {
        let p = dev_team();
        assert!(
            object_check(
                "dev-team",
                &p,
                "apps",
                "Deployment",
                "web",
                Some("dev-a"),
                IN_CLUSTER,
                "in-cluster",
                None
            )
            .is_ok()
        );
        assert_eq!(
            err(object_check(
                "dev-team",
                &p,
                "apps",
                "Deployment",
                "web",
                Some("prod"),
                IN_CLUSTER,
                "in-cluster",
                None
            )),
            "resource apps:Deployment \"web\" is not permitted in project 'dev-team': namespace 'prod' is not an \
             allowed destination: no destinations entry allows it"
        );
    }

    #[test]
    fn a_cluster_scoped_object_is_not_checked_against_destination_namespaces() {
        let p = dev_team();
        assert!(
            object_check("dev-team", &p, "", "Namespace", "dev-a", None, IN_CLUSTER, "in-cluster", None)
                .is_ok()
        );
        let refusal = err(object_check(
            "dev-team",
            &p,
            "rbac.authorization.k8s.io",
            "ClusterRole",
            "x",
            None,
            IN_CLUSTER,
            "in-cluster",
            None,
        ));
        assert!(refusal.ends_with("clusterResourceWhitelist"), "{refusal}");
    }

    #[test]
    fn an_object_of_a_refused_kind_is_refused_for_its_kind_first() {
        let p = dev_team();
        let refusal = err(object_check(
            "dev-team",
            &p,
            "",
            "Service",
            "web",
            Some("prod"),
            IN_CLUSTER,
            "in-cluster",
            None,
        ));
        assert!(refusal.ends_with("namespaceResourceWhitelist has no entry for it"), "{refusal}");
    }

    // live objects before prune and delete

    fn live(namespace: &str, kind: &str, name: &str) -> (ResourceKey, ()) {
        let group = if kind == "ClusterRole" { "rbac.authorization.k8s.io" } else { "" };
        (ResourceKey::new(group, kind, namespace, name), ())
    }

    fn team_b() -> AppProjectSpec {
        spec(
            serde_json::json!({"sourceRepos": ["*"], "destinations": [{"server": "*", "namespace": "team-b-*"}]}),
        )
    }

    #[test]
    fn a_tracked_object_in_a_namespace_the_project_forbids_is_never_pruned_or_deleted() {
        let tracked =
            vec![live("team-b-1", "ConfigMap", "mine"), live("team-a", "ConfigMap", "team-a-config")];
        let (permitted, refused) =
            permitted_live("team-b", Some(&team_b()), tracked, IN_CLUSTER, "in-cluster", None);
        assert_eq!(permitted.iter().map(|(k, _)| k.name.as_str()).collect::<Vec<_>>(), ["mine"]);
        assert_eq!(
            refused,
            [
                "resource :ConfigMap \"team-a-config\" is not permitted in project 'team-b': namespace 'team-a' is not \
              an allowed destination: no destinations entry allows it; the application leaves it alone (never \
              pruned or deleted)"
            ]
        );
    }

    #[test]
    fn a_tracked_object_of_a_kind_the_project_forbids_is_left_alone() {
        let p = spec(serde_json::json!({
            "destinations": [{"server": "*", "namespace": "*"}],
            "namespaceResourceBlacklist": [{"group": "", "kind": "Secret"}]
        }));
        let tracked =
            vec![live("web", "Secret", "s"), live("", "ClusterRole", "admin"), live("web", "ConfigMap", "c")];
        let (permitted, refused) = permitted_live("p", Some(&p), tracked, IN_CLUSTER, "in-cluster", None);
        assert_eq!(permitted.iter().map(|(k, _)| k.name.as_str()).collect::<Vec<_>>(), ["c"]);
        assert_eq!(refused.len(), 2, "{refused:?}");
        assert!(refused[0].contains("namespaceResourceBlacklist"), "{refused:?}");
        assert!(refused[1].contains("clusterResourceWhitelist"), "{refused:?}");
    }

    #[test]
    fn a_negated_destination_protects_its_namespace_from_pruning() {
        let p = spec(serde_json::json!({"destinations": [
            {"server": "*", "namespace": "!kube-system"}, {"server": "*", "namespace": "*"}
        ]}));
        let tracked = vec![live("kube-system", "ConfigMap", "coredns"), live("web", "ConfigMap", "c")];
        let (permitted, refused) = permitted_live("p", Some(&p), tracked, IN_CLUSTER, "in-cluster", None);
        assert_eq!(permitted.len(), 1);
        assert!(refused[0].contains("denies it"), "{refused:?}");
    }

    #[test]
    fn a_project_that_permits_only_its_scoped_clusters_leaves_live_objects_elsewhere_alone() {
        let mut p = team_b();
        p.permit_only_project_scoped_clusters = Some(true);
        let tracked = || vec![live("team-b-1", "ConfigMap", "mine")];
        let (permitted, _) = permitted_live("team-b", Some(&p), tracked(), "https://b", "b", Some("team-b"));
        assert_eq!(permitted.len(), 1, "on its own cluster the object is the app's");
        let (permitted, refused) =
            permitted_live("team-b", Some(&p), tracked(), IN_CLUSTER, "in-cluster", None);
        assert!(permitted.is_empty(), "on another cluster it is never pruned or deleted");
        assert!(refused[0].contains("permitOnlyProjectScopedClusters is set"), "{}", refused[0]);
    }

    #[test]
    fn a_missing_project_permits_no_live_object() {
        let (permitted, refused) =
            permitted_live("gone", None, vec![live("web", "ConfigMap", "c")], IN_CLUSTER, "in-cluster", None);
        assert!(permitted.is_empty());
        assert!(refused[0].contains("project 'gone' does not exist"), "{refused:?}");
    }
}
