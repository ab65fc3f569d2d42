//! Role-based access control with Argo CD's model, configured from `argocd-rbac-cm` and AppProject
//! roles.
//!
//! A request is (subject, resource, action, object). Policy lines say
//! `p, <subject>, <resource>, <action>, <object>, allow|deny` and `g, <member>, <role>`; resource,
//! action and object are globs where `*` also crosses `/`. A request is allowed when
//!
//! 1. the `policy.default` role allows it (no deny can take that back), or
//! 2. among the rules of the caller's name, its groups and every role they inherit (transitively
//!    through `g` lines), at least one `allow` matches and no `deny` does.
//!
//! ```
//! use berth_server::rbac::{Enforcer, Subject};
//!
//! let csv = "p, role:deployer, applications, sync, team-a/*, allow\n\
//!            g, my-org:team-a, role:deployer";
//! let rbac = Enforcer::from_config(csv, Some("role:readonly"), None, true).unwrap();
//! let dev = Subject::with_groups("dana", ["my-org:team-a"]);
//! assert!(rbac.enforce(&dev, "applications", "sync", "team-a/web"));
//! assert!(!rbac.enforce(&dev, "applications", "delete", "team-a/web"));
//! assert!(rbac.enforce(&dev, "clusters", "get", "https://kubernetes.default.svc"));
//! ```

mod builtin;
mod glob;
mod live;
mod policy;
mod project;
#[cfg(test)]
mod tests;

pub use live::LiveEnforcer;
pub(crate) use project::SUBJECT_PREFIX as PROJECT_SUBJECT_PREFIX;
pub use project::{ProjectTokenState, parse_role_subject, role_subject, validate_project_roles};

use berth_api::AppProject;
use policy::{Effect, Policy, PolicyLine};
use project::{PROJECT_SCOPED_RESOURCES, ProjectPolicy};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The resource names of Argo CD's RBAC.
pub mod resources {
    pub const APPLICATIONS: &str = "applications";
    pub const APPLICATIONSETS: &str = "applicationsets";
    pub const PROJECTS: &str = "projects";
    pub const REPOSITORIES: &str = "repositories";
    pub const CLUSTERS: &str = "clusters";
    pub const ACCOUNTS: &str = "accounts";
    pub const CERTIFICATES: &str = "certificates";
    pub const GPGKEYS: &str = "gpgkeys";
    pub const LOGS: &str = "logs";
    pub const EXEC: &str = "exec";
    pub const EXTENSIONS: &str = "extensions";
}

/// The action names of Argo CD's RBAC; resource actions are `action/<group>/<kind>/<name>`.
pub mod actions {
    pub const GET: &str = "get";
    pub const CREATE: &str = "create";
    pub const UPDATE: &str = "update";
    pub const DELETE: &str = "delete";
    pub const SYNC: &str = "sync";
    pub const OVERRIDE: &str = "override";
    pub const INVOKE: &str = "invoke";
}

/// Why an RBAC configuration or project role was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RbacError {
    /// `key` is the ConfigMap key (`policy.csv`, `policy.<name>.csv`); `line` counts from 1.
    #[error("{key} line {line}: {reason}: `{text}`")]
    InvalidPolicyLine { key: String, line: usize, text: String, reason: String },
    #[error("scopes `{value}`: {reason}")]
    InvalidScopes { value: String, reason: String },
    #[error("policy.matchMode `{mode}` is not supported: berth matches policies with globs only")]
    UnsupportedMatchMode { mode: String },
    #[error("project {project} role {role}: {reason}")]
    InvalidProjectRole { project: String, role: String, reason: String },
}

/// Who is asking: a local account, an SSO user with the groups its token's `scopes` claims carry,
/// or a project token (`proj:<project>:<role>`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subject {
    pub name: String,
    pub groups: Vec<String>,
}

impl Subject {
    pub fn user(name: impl Into<String>) -> Subject {
        Subject { name: name.into(), groups: Vec::new() }
    }

    pub fn with_groups<G: Into<String>>(
        name: impl Into<String>,
        groups: impl IntoIterator<Item = G>,
    ) -> Subject {
        Subject { name: name.into(), groups: groups.into_iter().map(Into::into).collect() }
    }

    /// A caller without a session: only `policy.default` applies to it.
    pub fn anonymous() -> Subject {
        Subject::default()
    }

    /// From a token's claims: the name is `federated_claims.user_id` when present (Dex), else `sub`;
    /// the groups are the values (a string or a list of strings) of each claim named in `scopes`. Names and
    /// groups that spell a project role's subject (`proj:…`) are left out.
    pub fn from_claims(claims: &serde_json::Value, scopes: &[String]) -> Subject {
        let name = claims
            .pointer("/federated_claims/user_id")
            .and_then(serde_json::Value::as_str)
            .filter(|id| !id.is_empty())
            .or_else(|| claims.get("sub").and_then(serde_json::Value::as_str))
            .filter(|name| !name.starts_with(project::SUBJECT_PREFIX))
            .unwrap_or_default()
            .to_owned();
        let mut groups: Vec<String> = Vec::new();
        for scope in scopes {
            let values: Vec<&str> = match claims.get(scope) {
                Some(serde_json::Value::String(s)) => vec![s.as_str()],
                Some(serde_json::Value::Array(items)) => {
                    items.iter().filter_map(serde_json::Value::as_str).collect()
                }
                _ => Vec::new(),
            };
            for value in values {
                // A provider's user or group named `proj:<p>:<r>` is no project role (only its tokens are).
                if !value.is_empty()
                    && !value.starts_with(project::SUBJECT_PREFIX)
                    && !groups.iter().any(|g| g == value)
                {
                    groups.push(value.to_owned());
                }
            }
        }
        Subject { name, groups }
    }
}

/// An application-managed Kubernetes object, as fine-grained `update/…` and `delete/…` actions
/// name it: `<verb>/<group>/<kind>/<namespace>/<name>` (empty group for the core API).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ManagedResource<'a> {
    pub group: &'a str,
    pub kind: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
}

/// The RBAC object of an Application: `<project>/<name>`, or `<project>/<namespace>/<name>` for an
/// Application outside the control plane's namespace (pass `None` for the control plane's own).
pub fn app_object(project: &str, namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) if !ns.is_empty() => format!("{project}/{ns}/{name}"),
        _ => format!("{project}/{name}"),
    }
}

/// Answers "may this subject do this": built once per configuration change, then shared (cheap to
/// clone) and queried without locks or allocation-heavy work.
#[derive(Debug, Clone)]
pub struct Enforcer {
    policy: Arc<Policy>,
    projects: Arc<HashMap<String, ProjectPolicy>>,
    default_role: Option<String>,
    /// The default role and every role it inherits through the global `g` lines.
    default_members: Vec<String>,
    scopes: Vec<String>,
    fine_grained_inheritance: bool,
}

impl Default for Enforcer {
    /// The built-in roles only: `admin` may do everything, nobody else anything.
    fn default() -> Enforcer {
        let mut policy = Policy::default();
        builtin::load_into(&mut policy);
        Enforcer::new(policy, None, vec!["groups".to_owned()])
    }
}

impl Enforcer {
    /// From `argocd-rbac-cm`'s `policy.csv`, `policy.default` and `scopes` (default `[groups]`);
    /// `builtin` adds `role:readonly`, `role:admin` and the `admin` account's binding.
    pub fn from_config(
        policy_csv: &str,
        policy_default: Option<&str>,
        scopes: Option<&str>,
        builtin: bool,
    ) -> Result<Enforcer, RbacError> {
        Enforcer::load(&[("policy.csv", policy_csv)], policy_default, scopes, builtin)
    }

    /// From the whole `argocd-rbac-cm` data, built-in roles included: `policy.csv` followed by every
    /// `policy.<name>.csv` in key order, `policy.default`, `scopes` and `policy.matchMode` (only
    /// `glob`, the default, is supported).
    pub fn from_config_map(data: &BTreeMap<String, String>) -> Result<Enforcer, RbacError> {
        if let Some(mode) = data.get("policy.matchMode").map(|m| m.trim())
            && mode == "regex"
        {
            return Err(RbacError::UnsupportedMatchMode { mode: mode.to_owned() });
        }
        let main = data.get("policy.csv").map_or("", String::as_str);
        let overlays = data
            .iter()
            .filter(|(key, _)| *key != "policy.csv" && key.starts_with("policy.") && key.ends_with(".csv"));
        let sources: Vec<(&str, &str)> = std::iter::once(("policy.csv", main))
            .chain(overlays.map(|(key, csv)| (key.as_str(), csv.as_str())))
            .collect();
        Enforcer::load(
            &sources,
            data.get("policy.default").map(String::as_str),
            data.get("scopes").map(String::as_str),
            true,
        )
    }

    /// `sources` are (ConfigMap key, CSV text) pairs, loaded in order.
    fn load(
        sources: &[(&str, &str)],
        policy_default: Option<&str>,
        scopes: Option<&str>,
        builtin: bool,
    ) -> Result<Enforcer, RbacError> {
        let mut policy = Policy::default();
        if builtin {
            builtin::load_into(&mut policy);
        }
        for (key, csv) in sources {
            load_csv(&mut policy, key, csv)?;
        }
        let default_role = policy_default.map(str::trim).filter(|r| !r.is_empty()).map(str::to_owned);
        Ok(Enforcer::new(policy, default_role, parse_scopes(scopes)?))
    }

    fn new(policy: Policy, default_role: Option<String>, scopes: Vec<String>) -> Enforcer {
        let default_members = match default_role.as_deref() {
            Some(role) => {
                let mut members = vec![role];
                expand_roles(&mut members, &policy, None);
                members.into_iter().map(str::to_owned).collect()
            }
            None => Vec::new(),
        };
        Enforcer {
            policy: Arc::new(policy),
            projects: Arc::default(),
            default_role,
            default_members,
            scopes,
            fine_grained_inheritance: false,
        }
    }

    /// The same policy with the roles of `projects` (replacing any loaded before). Invalid role
    /// policies are left out and logged; use [`validate_project_roles`] to refuse them on write.
    pub fn with_project_roles(mut self, projects: &[AppProject]) -> Enforcer {
        self.projects = Arc::new(
            projects
                .iter()
                .filter_map(|p| {
                    let name = p.metadata.name.as_deref().filter(|n| !n.is_empty())?;
                    Some((name.to_owned(), ProjectPolicy::build(p)))
                })
                .collect(),
        );
        self
    }

    /// Whether `update`/`delete` granted on an Application also covers the objects it manages
    /// (Argo CD 2.x behaviour; `server.rbac.disableApplicationFineGrainedRBACInheritance: "false"`).
    /// Off by default, as in Argo CD 3: managed objects then need `update/…` or `delete/…` grants.
    pub fn with_fine_grained_inheritance(mut self, enabled: bool) -> Enforcer {
        self.fine_grained_inheritance = enabled;
        self
    }

    /// The OIDC claims whose values count as the caller's groups (see [`Subject::from_claims`]).
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }

    /// The role every authenticated caller holds (`policy.default`), if any.
    pub fn default_role(&self) -> Option<&str> {
        self.default_role.as_deref()
    }

    /// May `subject` do `action` on `resource` `object`? Objects of applications, applicationsets,
    /// logs and exec are `<project>/<app>` or `<project>/<namespace>/<app>`.
    pub fn enforce(&self, subject: &Subject, resource: &str, action: &str, object: &str) -> bool {
        self.resolve(subject).enforce(resource, action, object)
    }

    /// May `subject` `verb` (`update` or `delete`) `resource`, managed by the Application `app_object`?
    pub fn enforce_managed_resource(
        &self,
        subject: &Subject,
        verb: &str,
        resource: &ManagedResource<'_>,
        app_object: &str,
    ) -> bool {
        self.resolve(subject).enforce_managed_resource(verb, resource, app_object)
    }

    /// Resolves `subject`'s roles once, to check many objects (filtering a list) cheaply.
    pub fn resolve<'a>(&'a self, subject: &'a Subject) -> ResolvedSubject<'a> {
        let mut members: Vec<&'a str> = Vec::with_capacity(1 + subject.groups.len());
        for name in std::iter::once(&subject.name).chain(&subject.groups) {
            if !name.is_empty() && !members.contains(&name.as_str()) {
                members.push(name);
            }
        }
        expand_roles(&mut members, &self.policy, None);
        ResolvedSubject {
            enforcer: self,
            members,
            token_project: project::parse_role_subject(&subject.name).map(|(p, _)| p),
        }
    }

    /// Is a project token still listed in its role (not revoked)? `id` is the token's `jti`; tokens
    /// without one are known by their issued-at time.
    pub fn project_token_active(&self, project: &str, role: &str, id: Option<&str>, issued_at: i64) -> bool {
        self.project_token_state(project, role, id, issued_at) == ProjectTokenState::Listed
    }

    /// Why a project token is or is not usable: its project and role must exist and the role list it.
    pub fn project_token_state(
        &self,
        project: &str,
        role: &str,
        id: Option<&str>,
        issued_at: i64,
    ) -> ProjectTokenState {
        self.projects
            .get(project)
            .map_or(ProjectTokenState::NoProject, |p| p.token_state(role, id, issued_at))
    }

    fn default_role_allows(
        &self,
        project: Option<&ProjectPolicy>,
        resource: &str,
        action: &str,
        object: &str,
    ) -> bool {
        let effect = match project {
            _ if self.default_members.is_empty() => None,
            Some(p) if p.policy.has_roles() => {
                let mut members: Vec<&str> = self.default_members.iter().map(String::as_str).collect();
                expand_roles(&mut members, &self.policy, Some(&p.policy));
                decide(&members, &self.policy, project, resource, action, object)
            }
            _ => decide(&self.default_members, &self.policy, project, resource, action, object),
        };
        effect == Some(Effect::Allow)
    }
}

/// A subject with its roles resolved against one [`Enforcer`]'s policy.
#[derive(Debug, Clone)]
pub struct ResolvedSubject<'a> {
    enforcer: &'a Enforcer,
    /// The name, the groups and every role they inherit through the global `g` lines.
    members: Vec<&'a str>,
    /// Set for project tokens: the only project whose objects they may touch.
    token_project: Option<&'a str>,
}

impl ResolvedSubject<'_> {
    /// May this subject do `action` on `resource` `object`?
    pub fn enforce(&self, resource: &str, action: &str, object: &str) -> bool {
        let enforcer = self.enforcer;
        let project_name = request_project(resource, object);
        let project = project_name.and_then(|p| enforcer.projects.get(p));
        // A project token never reaches into another (existing) project.
        if let (Some(own), Some(name), Some(_)) = (self.token_project, project_name, project)
            && own != name
        {
            return false;
        }
        if enforcer.default_role_allows(project, resource, action, object) {
            return true;
        }
        let effect = match project {
            Some(p) if p.policy.has_roles() => {
                let mut members = self.members.clone();
                expand_roles(&mut members, &enforcer.policy, Some(&p.policy));
                decide(&members, &enforcer.policy, project, resource, action, object)
            }
            _ => decide(&self.members, &enforcer.policy, project, resource, action, object),
        };
        effect == Some(Effect::Allow)
    }

    /// May this subject `verb` (`update` or `delete`) `resource`, managed by the Application
    /// `app_object`? Checks `<verb>/<group>/<kind>/<namespace>/<name>`, and first the plain verb on
    /// the Application when fine-grained inheritance is on.
    pub fn enforce_managed_resource(
        &self,
        verb: &str,
        resource: &ManagedResource<'_>,
        app_object: &str,
    ) -> bool {
        if self.enforcer.fine_grained_inheritance && self.enforce(resources::APPLICATIONS, verb, app_object) {
            return true;
        }
        let action =
            format!("{verb}/{}/{}/{}/{}", resource.group, resource.kind, resource.namespace, resource.name);
        self.enforce(resources::APPLICATIONS, &action, app_object)
    }
}

/// The project a request is about, whose roles then take part: the first segment of a
/// project-scoped object, or the object itself for `projects`.
fn request_project<'o>(resource: &str, object: &'o str) -> Option<&'o str> {
    if resource == resources::PROJECTS {
        return Some(object);
    }
    if PROJECT_SCOPED_RESOURCES.contains(&resource) {
        return object.split_once('/').map(|(project, _)| project);
    }
    None
}

/// Adds every role reachable from `members` through `g` bindings (global, then the project's).
fn expand_roles<'a>(members: &mut Vec<&'a str>, policy: &'a Policy, project: Option<&'a Policy>) {
    let mut i = 0;
    while i < members.len() {
        let member = members[i];
        let project_roles = project.map_or(&[][..], |p| p.roles_of(member));
        for role in policy.roles_of(member).iter().chain(project_roles) {
            if !members.contains(&role.as_str()) {
                members.push(role);
            }
        }
        i += 1;
    }
}

/// `Deny` if any matching rule denies, `Allow` if one allows, `None` if none matches.
fn decide<S: AsRef<str>>(
    members: &[S],
    policy: &Policy,
    project: Option<&ProjectPolicy>,
    resource: &str,
    action: &str,
    object: &str,
) -> Option<Effect> {
    let mut allowed = false;
    for member in members {
        let member = member.as_ref();
        let project_rules = project.map_or(&[][..], |p| p.policy.rules_of(member));
        for rule in policy.rules_of(member).iter().chain(project_rules) {
            if rule.matches(resource, action, object) {
                match rule.effect {
                    Effect::Deny => return Some(Effect::Deny),
                    Effect::Allow => allowed = true,
                }
            }
        }
    }
    allowed.then_some(Effect::Allow)
}

fn load_csv(policy: &mut Policy, key: &str, csv: &str) -> Result<(), RbacError> {
    for (i, text) in csv.lines().enumerate() {
        let line = PolicyLine::parse(text).map_err(|reason| RbacError::InvalidPolicyLine {
            key: key.to_owned(),
            line: i + 1,
            text: text.trim().to_owned(),
            reason,
        })?;
        if let Some(line) = line {
            policy.add_line(line);
        }
    }
    Ok(())
}

/// `scopes` is a YAML list of claim names: `[groups, email]`, `["groups"]` or `- groups` lines; a
/// bare `groups, email` is read the same way. Unset or blank means `[groups]`.
fn parse_scopes(value: Option<&str>) -> Result<Vec<String>, RbacError> {
    let Some(raw) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(vec!["groups".to_owned()]);
    };
    let invalid =
        |reason: &str| RbacError::InvalidScopes { value: raw.to_owned(), reason: reason.to_owned() };
    let items: Vec<&str> = if let Some(inner) = raw.strip_prefix('[') {
        let inner = inner.strip_suffix(']').ok_or_else(|| invalid("a `[` list must end with `]`"))?;
        inner.split(',').collect()
    } else if raw.starts_with('-') {
        raw.lines()
            .map(|l| {
                l.trim()
                    .strip_prefix('-')
                    .ok_or_else(|| invalid("every line of a block list starts with `-`"))
            })
            .collect::<Result<_, _>>()?
    } else {
        raw.split(',').collect()
    };
    let mut scopes = Vec::new();
    for item in items {
        let item = item.trim();
        let unquoted = ['"', '\'']
            .iter()
            .find_map(|q| item.strip_prefix(*q).and_then(|i| i.strip_suffix(*q)))
            .unwrap_or(item);
        if unquoted.contains(['[', ']', '{', '}', '"', '\'']) {
            return Err(invalid(&format!("`{item}` is not a claim name")));
        }
        if !unquoted.is_empty() {
            scopes.push(unquoted.to_owned());
        }
    }
    Ok(scopes)
}
