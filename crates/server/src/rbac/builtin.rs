//! The built-in roles every Argo CD installation has: `role:readonly` may `get` everything,
//! `role:admin` inherits it and may change everything; the `admin` account holds `role:admin`.
//! Extensions are deliberately absent: invoking one always needs an explicit grant.

use super::glob::Glob;
use super::policy::{Effect, Policy, Rule};

pub(crate) const ROLE_READONLY: &str = "role:readonly";
pub(crate) const ROLE_ADMIN: &str = "role:admin";
pub(crate) const ADMIN_ACCOUNT: &str = "admin";

/// What each built-in role may do to one resource type.
struct BuiltinGrant {
    resource: &'static str,
    /// Project-scoped resources are named `<project>/<name>`, the others by a plain name.
    project_scoped: bool,
    readonly: &'static [&'static str],
    admin: &'static [&'static str],
}

const GRANTS: &[BuiltinGrant] = &[
    BuiltinGrant {
        resource: "applications",
        project_scoped: true,
        readonly: &["get"],
        admin: &[
            "create", "update", "update/*", "delete", "delete/*", "sync", "rollback", "override", "action/*",
        ],
    },
    BuiltinGrant {
        resource: "applicationsets",
        project_scoped: true,
        readonly: &["get"],
        admin: &["get", "create", "update", "delete"],
    },
    BuiltinGrant { resource: "logs", project_scoped: true, readonly: &["get"], admin: &[] },
    BuiltinGrant { resource: "exec", project_scoped: true, readonly: &[], admin: &["create", "debug"] },
    BuiltinGrant {
        resource: "clusters",
        project_scoped: false,
        readonly: &["get"],
        admin: &["create", "update", "delete"],
    },
    BuiltinGrant {
        resource: "repositories",
        project_scoped: false,
        readonly: &["get"],
        admin: &["create", "update", "delete"],
    },
    BuiltinGrant {
        resource: "write-repositories",
        project_scoped: false,
        readonly: &["get"],
        admin: &["create", "update", "delete"],
    },
    BuiltinGrant {
        resource: "projects",
        project_scoped: false,
        readonly: &["get"],
        admin: &["create", "update", "delete"],
    },
    BuiltinGrant {
        resource: "certificates",
        project_scoped: false,
        readonly: &["get"],
        admin: &["create", "update", "delete"],
    },
    BuiltinGrant { resource: "accounts", project_scoped: false, readonly: &["get"], admin: &["update"] },
    BuiltinGrant {
        resource: "gpgkeys",
        project_scoped: false,
        readonly: &["get"],
        admin: &["create", "delete"],
    },
];

/// Adds the built-in roles and the `admin` account's binding to `policy`.
pub(crate) fn load_into(policy: &mut Policy) {
    for grant in GRANTS {
        let object = if grant.project_scoped { "*/*" } else { "*" };
        for (role, actions) in [(ROLE_READONLY, grant.readonly), (ROLE_ADMIN, grant.admin)] {
            for action in actions {
                policy.add_rule(role.to_owned(), allow(grant.resource, action, object));
            }
        }
    }
    policy.add_role(ROLE_ADMIN.to_owned(), ROLE_READONLY.to_owned());
    policy.add_role(ADMIN_ACCOUNT.to_owned(), ROLE_ADMIN.to_owned());
}

fn allow(resource: &str, action: &str, object: &str) -> Rule {
    let glob = |p: &str| Glob::compile(p).unwrap_or_else(|e| panic!("built-in pattern {p}: {e}"));
    Rule { resource: glob(resource), action: glob(action), object: glob(object), effect: Effect::Allow }
}
