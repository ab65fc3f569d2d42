//! Project roles: the policies and group bindings an AppProject declares in `spec.roles`. They
//! apply only to requests about objects of that project, under the subject `proj:<project>:<role>`.

use super::RbacError;
use super::glob::Glob;
use super::policy::{Effect, Policy, PolicyLine, Rule};
use berth_api::AppProject;
use berth_api::project::{JwtToken, ProjectRole};
use std::collections::HashMap;

/// Resources whose objects are named `<project>/…`, so a project role may grant them.
pub(crate) const PROJECT_SCOPED_RESOURCES: &[&str] =
    &["applications", "applicationsets", "logs", "exec", "repositories", "clusters"];

/// The policy one project contributes, and its roles' issued tokens.
#[derive(Clone, Debug, Default)]
pub(crate) struct ProjectPolicy {
    pub(crate) policy: Policy,
    /// Role name → the tokens the project lists for it.
    tokens: HashMap<String, RoleTokens>,
}

impl ProjectPolicy {
    /// Builds the project's policy, leaving out (and logging) what [`validate_role`] refuses:
    /// one bad role must not take RBAC down for everyone.
    pub(crate) fn build(project: &AppProject) -> ProjectPolicy {
        let name = project.metadata.name.as_deref().unwrap_or_default();
        let mut built = ProjectPolicy::default();
        for role in &project.spec.roles {
            if let Err(reason) = validate_role_name(&role.name) {
                tracing::warn!(project = name, role = %role.name, %reason, "project role ignored");
                continue;
            }
            let subject = role_subject(name, &role.name);
            // Holders of a role may always read the project itself.
            built.policy.add_rule(
                subject.clone(),
                Rule {
                    resource: Glob::Exact("projects".into()),
                    action: Glob::Exact("get".into()),
                    object: Glob::Exact(name.into()),
                    effect: Effect::Allow,
                },
            );
            for text in &role.policies {
                match parse_role_policy(name, &role.name, text) {
                    Ok(line) => built.policy.add_line(line),
                    Err(reason) => tracing::warn!(
                        project = name,
                        role = %role.name,
                        policy = %text,
                        %reason,
                        "project role policy ignored"
                    ),
                }
            }
            for group in &role.groups {
                let group = group.trim().trim_matches('"');
                if !group.is_empty() {
                    built.policy.add_role(group.to_owned(), subject.clone());
                }
            }
            let listed = |tokens: &[JwtToken]| -> Vec<(Option<String>, i64)> {
                tokens.iter().map(|t| (t.id.clone().filter(|id| !id.is_empty()), t.iat)).collect()
            };
            let in_status = project.status.as_ref().and_then(|s| s.jwt_tokens_by_role.get(&role.name));
            built.tokens.insert(
                role.name.clone(),
                RoleTokens { spec: listed(&role.jwt_tokens), status: in_status.map(|t| listed(&t.items)) },
            );
        }
        built
    }

    /// Whether the role exists and lists the token, as Argo CD looks it up: a token with an id in
    /// `status.jwtTokensByRole[role]` (in the role's own `jwtTokens` when the status has no entry for
    /// the role: a project from before the status kept them); a token without one (before Argo CD 1.8)
    /// by its issued-at time in either.
    pub(crate) fn token_state(&self, role: &str, id: Option<&str>, issued_at: i64) -> ProjectTokenState {
        let Some(tokens) = self.tokens.get(role) else {
            return ProjectTokenState::NoRole;
        };
        let listed = match id.filter(|id| !id.is_empty()) {
            Some(id) => {
                tokens.status.as_ref().unwrap_or(&tokens.spec).iter().any(|(t, _)| t.as_deref() == Some(id))
            }
            None => {
                tokens.spec.iter().chain(tokens.status.iter().flatten()).any(|(_, iat)| *iat == issued_at)
            }
        };
        if listed { ProjectTokenState::Listed } else { ProjectTokenState::Revoked }
    }
}

/// (token id, issued-at) of a role's tokens, as the role lists them and as the project's status does.
#[derive(Clone, Debug, Default)]
struct RoleTokens {
    spec: Vec<(Option<String>, i64)>,
    /// `None` when the status has no entry for the role.
    status: Option<Vec<(Option<String>, i64)>>,
}

/// What the projects say of a project role token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProjectTokenState {
    /// The role lists the token: it may be used.
    Listed,
    NoProject,
    /// The project has no such role (it was removed, or its name is invalid).
    NoRole,
    /// The role exists but no longer lists the token.
    Revoked,
}

/// The RBAC subject of a project role: `proj:<project>:<role>`.
/// How every project role's subject begins (`proj:<project>:<role>`).
pub(crate) const SUBJECT_PREFIX: &str = "proj:";

pub fn role_subject(project: &str, role: &str) -> String {
    format!("{SUBJECT_PREFIX}{project}:{role}")
}

/// `proj:<project>:<role>` → (project, role).
pub fn parse_role_subject(subject: &str) -> Option<(&str, &str)> {
    let rest = subject.strip_prefix(SUBJECT_PREFIX)?;
    let (project, role) = rest.split_once(':')?;
    (!role.contains(':')).then_some((project, role))
}

/// Checks every role of `project` as Argo CD does before storing it: valid role names, each policy
/// a `p` line for the role's own subject, on a project-scoped resource, inside the project.
pub fn validate_project_roles(project: &AppProject) -> Result<(), RbacError> {
    let name = project.metadata.name.as_deref().unwrap_or_default();
    let mut seen = Vec::new();
    for role in &project.spec.roles {
        validate_role(name, role).map_err(|reason| RbacError::InvalidProjectRole {
            project: name.to_owned(),
            role: role.name.clone(),
            reason,
        })?;
        if seen.contains(&role.name.as_str()) {
            return Err(RbacError::InvalidProjectRole {
                project: name.to_owned(),
                role: role.name.clone(),
                reason: "the role is defined twice".to_owned(),
            });
        }
        seen.push(role.name.as_str());
    }
    Ok(())
}

fn validate_role(project: &str, role: &ProjectRole) -> Result<(), String> {
    validate_role_name(&role.name)?;
    for text in &role.policies {
        parse_role_policy(project, &role.name, text).map_err(|e| format!("policy `{text}`: {e}"))?;
    }
    for group in &role.groups {
        let group = group.trim();
        let unquoted = group.strip_prefix('"').and_then(|g| g.strip_suffix('"')).unwrap_or(group);
        if unquoted.is_empty() {
            return Err("a group is empty".to_owned());
        }
        if unquoted.len() == group.len() && group.contains(',') {
            return Err(format!("group `{group}` holds a comma and must be quoted"));
        }
        if unquoted.contains(['"', '\n', '\r', '\t']) {
            return Err(format!("group `{group}` holds a quote or a control character"));
        }
    }
    Ok(())
}

/// Alphanumerics, `-` and `_`, starting and ending alphanumeric.
fn validate_role_name(name: &str) -> Result<(), String> {
    let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    let valid = edge_ok(name.chars().next())
        && edge_ok(name.chars().last())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "invalid role name `{name}`: alphanumerics, `-` and `_`, starting and ending alphanumeric"
        ))
    }
}

fn parse_role_policy(project: &str, role: &str, text: &str) -> Result<PolicyLine, String> {
    let line = PolicyLine::parse(text)?.ok_or("the policy is empty")?;
    let PolicyLine::Permission { subject, resource, object, .. } = &line else {
        return Err("a project role policy is a `p` line".to_owned());
    };
    let expected = role_subject(project, role);
    if *subject != expected {
        return Err(format!("the subject must be `{expected}`, not `{subject}`"));
    }
    if !PROJECT_SCOPED_RESOURCES.contains(&resource.as_str()) {
        return Err(format!(
            "resource `{resource}` is not project-scoped (one of {})",
            PROJECT_SCOPED_RESOURCES.join(", ")
        ));
    }
    let inside = object
        .strip_prefix(project)
        .and_then(|rest| rest.strip_prefix('/'))
        .is_some_and(|rest| !rest.is_empty());
    if !inside {
        return Err(format!("the object must be `{project}/<name>` or `{project}/*`, not `{object}`"));
    }
    Ok(line)
}
