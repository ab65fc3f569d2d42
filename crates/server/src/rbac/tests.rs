use super::*;
use berth_api::project::{AppProjectSpec, JwtToken, ProjectRole};
use kube::core::ObjectMeta;

fn enforcer(csv: &str, default: Option<&str>) -> Enforcer {
    Enforcer::from_config(csv, default, None, true).expect("policy loads")
}

fn user(name: &str) -> Subject {
    Subject::user(name)
}

fn project(name: &str, roles: Vec<ProjectRole>) -> AppProject {
    AppProject {
        metadata: ObjectMeta { name: Some(name.to_owned()), ..ObjectMeta::default() },
        spec: AppProjectSpec { roles, ..AppProjectSpec::default() },
        status: None,
    }
}

fn role(name: &str, policies: &[&str], groups: &[&str]) -> ProjectRole {
    ProjectRole {
        name: name.to_owned(),
        policies: policies.iter().map(|p| p.to_string()).collect(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        ..ProjectRole::default()
    }
}

// Built-in roles

#[test]
fn builtin_readonly_role_gets_every_resource_and_changes_none() {
    let rbac = enforcer("g, viewer, role:readonly", None);
    let viewer = user("viewer");
    for (resource, object) in [
        ("applications", "default/guestbook"),
        ("applicationsets", "default/generator"),
        ("logs", "default/guestbook"),
        ("projects", "default"),
        ("repositories", "https://github.com/org/repo.git"),
        ("clusters", "https://kubernetes.default.svc"),
        ("accounts", "alice"),
        ("certificates", "github.com"),
        ("gpgkeys", "4AEE18F83AFDEB23"),
    ] {
        assert!(rbac.enforce(&viewer, resource, "get", object), "get {resource}");
    }
    for (resource, action, object) in [
        ("applications", "sync", "default/guestbook"),
        ("applications", "create", "default/guestbook"),
        ("applications", "delete", "default/guestbook"),
        ("applications", "action/apps/Deployment/restart", "default/guestbook"),
        ("projects", "update", "default"),
        ("clusters", "delete", "https://kubernetes.default.svc"),
        ("exec", "create", "default/guestbook"),
        ("extensions", "invoke", "httpbin"),
    ] {
        assert!(!rbac.enforce(&viewer, resource, action, object), "{action} {resource}");
    }
}

#[test]
fn builtin_admin_account_holds_role_admin() {
    let rbac = enforcer("", None);
    let admin = user("admin");
    for (resource, action, object) in [
        ("applications", "get", "default/guestbook"),
        ("applications", "create", "default/guestbook"),
        ("applications", "sync", "default/guestbook"),
        ("applications", "delete", "default/guestbook"),
        ("applications", "override", "default/guestbook"),
        ("applications", "action/apps/Deployment/restart", "default/guestbook"),
        ("applications", "delete//Pod/default/web-1", "default/guestbook"),
        ("applications", "update/apps/Deployment/default/web", "default/ns/guestbook"),
        ("applicationsets", "create", "default/generator"),
        ("projects", "create", "team-a"),
        ("repositories", "delete", "https://github.com/org/repo.git"),
        ("clusters", "update", "https://kubernetes.default.svc"),
        ("accounts", "update", "alice"),
        ("certificates", "create", "github.com"),
        ("gpgkeys", "delete", "4AEE18F83AFDEB23"),
        ("exec", "create", "default/guestbook"),
        ("logs", "get", "default/guestbook"),
    ] {
        assert!(rbac.enforce(&admin, resource, action, object), "{action} {resource}");
    }
    // Proxy extensions always need an explicit grant, even for admins.
    assert!(!rbac.enforce(&admin, "extensions", "invoke", "httpbin"));
}

#[test]
fn builtin_roles_absent_when_disabled() {
    let rbac = Enforcer::from_config("", Some("role:readonly"), None, false).unwrap();
    assert!(!rbac.enforce(&user("admin"), "applications", "get", "default/guestbook"));
    assert!(!rbac.enforce(&user("bob"), "applications", "get", "default/guestbook"));
}

#[test]
fn default_enforcer_allows_only_the_admin_account() {
    let rbac = Enforcer::default();
    assert!(rbac.enforce(&user("admin"), "applications", "sync", "default/guestbook"));
    assert!(!rbac.enforce(&user("bob"), "applications", "get", "default/guestbook"));
    assert_eq!(rbac.scopes(), ["groups"]);
    assert_eq!(rbac.default_role(), None);
}

#[test]
fn builtin_roles_can_be_denied_from_policy_csv() {
    let rbac = enforcer("p, role:admin, applications, delete, prod/*, deny", None);
    let admin = user("admin");
    assert!(!rbac.enforce(&admin, "applications", "delete", "prod/payments"));
    assert!(rbac.enforce(&admin, "applications", "delete", "dev/payments"));
}

// Default policy

#[test]
fn default_policy_applies_to_any_authenticated_user() {
    let rbac = enforcer("", Some("role:readonly"));
    let stranger = Subject::with_groups("stranger@example.org", ["unknown-group"]);
    assert_eq!(rbac.default_role(), Some("role:readonly"));
    assert!(rbac.enforce(&stranger, "applications", "get", "any/app"));
    assert!(!rbac.enforce(&stranger, "applications", "sync", "any/app"));
}

#[test]
fn no_default_policy_leaves_unknown_users_with_nothing() {
    let rbac = enforcer("", None);
    assert!(!rbac.enforce(&user("stranger"), "applications", "get", "any/app"));
    let blank = Enforcer::from_config("", Some("  "), None, true).unwrap();
    assert_eq!(blank.default_role(), None);
}

#[test]
fn default_policy_allow_cannot_be_taken_back_by_a_user_deny() {
    let csv = "p, mallory, applications, get, */*, deny\n\
               g, the-team, role:blocked\n\
               p, role:blocked, applications, get, */*, deny";
    let rbac = enforcer(csv, Some("role:readonly"));
    assert!(rbac.enforce(&user("mallory"), "applications", "get", "default/app"));
    let member = Subject::with_groups("carol", ["the-team"]);
    assert!(rbac.enforce(&member, "applications", "get", "default/app"));
}

#[test]
fn default_role_deny_only_limits_what_the_default_role_grants() {
    let csv = "p, role:everyone, applications, get, */*, allow\n\
               p, role:everyone, applications, get, secret/*, deny\n\
               p, role:auditor, applications, get, secret/*, allow\n\
               g, audit-team, role:auditor";
    let rbac = enforcer(csv, Some("role:everyone"));
    assert!(rbac.enforce(&user("bob"), "applications", "get", "default/app"));
    assert!(!rbac.enforce(&user("bob"), "applications", "get", "secret/vault"));
    let auditor = Subject::with_groups("eve", ["audit-team"]);
    assert!(rbac.enforce(&auditor, "applications", "get", "secret/vault"));
}

#[test]
fn default_policy_role_inherits_through_g_lines() {
    let csv = "p, role:base, logs, get, */*, allow\n\
               g, role:authenticated, role:base";
    let rbac = enforcer(csv, Some("role:authenticated"));
    assert!(rbac.enforce(&user("bob"), "logs", "get", "default/app"));
}

#[test]
fn anonymous_subject_gets_only_the_default_role() {
    let rbac = enforcer("p, alice, applications, sync, */*, allow", Some("role:readonly"));
    let anonymous = Subject::anonymous();
    assert!(rbac.enforce(&anonymous, "applications", "get", "default/app"));
    assert!(!rbac.enforce(&anonymous, "applications", "sync", "default/app"));
    let closed = enforcer("", None);
    assert!(!closed.enforce(&anonymous, "applications", "get", "default/app"));
}

// Roles and groups

#[test]
fn g_line_gives_a_local_user_a_role() {
    let rbac = enforcer("g, bob, role:admin", None);
    assert!(rbac.enforce(&user("bob"), "clusters", "delete", "https://10.0.0.1"));
    assert!(!rbac.enforce(&user("bobby"), "clusters", "get", "https://10.0.0.1"));
}

#[test]
fn policies_can_name_a_user_directly() {
    let rbac = enforcer("p, my-local-user, applications, sync, my-project/*, allow", None);
    assert!(rbac.enforce(&user("my-local-user"), "applications", "sync", "my-project/api"));
    assert!(!rbac.enforce(&user("my-local-user"), "applications", "sync", "other/api"));
}

#[test]
fn nested_roles_inherit_transitively() {
    let csv = "p, role:base, applications, get, team/*, allow\n\
               p, role:deployer, applications, sync, team/*, allow\n\
               g, role:deployer, role:base\n\
               g, role:lead, role:deployer\n\
               g, lee, role:lead";
    let rbac = enforcer(csv, None);
    let lee = user("lee");
    assert!(rbac.enforce(&lee, "applications", "get", "team/api"));
    assert!(rbac.enforce(&lee, "applications", "sync", "team/api"));
    assert!(!rbac.enforce(&lee, "applications", "delete", "team/api"));
    assert!(!rbac.enforce(&user("role:base"), "applications", "sync", "team/api"));
}

#[test]
fn role_cycles_terminate() {
    let csv = "g, role:a, role:b\n\
               g, role:b, role:a\n\
               p, role:b, applications, get, */*, allow\n\
               g, cy, role:a";
    let rbac = enforcer(csv, None);
    assert!(rbac.enforce(&user("cy"), "applications", "get", "x/y"));
    assert!(!rbac.enforce(&user("cy"), "applications", "sync", "x/y"));
}

#[test]
fn sso_groups_receive_the_roles_bound_to_them() {
    let csv = "g, my-org:platform, role:admin\n\
               p, my-org:team-alpha, applications, sync, my-project/*, allow";
    let rbac = enforcer(csv, None);
    let platform = Subject::with_groups("sub-1", ["my-org:dev", "my-org:platform"]);
    assert!(rbac.enforce(&platform, "projects", "delete", "my-project"));
    let alpha = Subject::with_groups("sub-2", ["my-org:team-alpha"]);
    assert!(rbac.enforce(&alpha, "applications", "sync", "my-project/web"));
    assert!(!rbac.enforce(&alpha, "projects", "delete", "my-project"));
    let nobody = Subject::with_groups("sub-3", ["my-org:other"]);
    assert!(!rbac.enforce(&nobody, "applications", "sync", "my-project/web"));
}

#[test]
fn names_and_groups_share_one_namespace() {
    // As in Argo CD: an SSO group named like a local user gets that user's roles.
    let rbac = enforcer("g, sally, role:admin", None);
    let sso = Subject::with_groups("someone", ["sally"]);
    assert!(rbac.enforce(&sso, "clusters", "delete", "https://10.0.0.1"));
}

// Scopes and claims

#[test]
fn scopes_default_to_groups() {
    for scopes in [None, Some(""), Some("   ")] {
        let rbac = Enforcer::from_config("", None, scopes, true).unwrap();
        assert_eq!(rbac.scopes(), ["groups"]);
    }
}

#[test]
fn scopes_read_the_yaml_list_forms() {
    let parse = |s: &str| Enforcer::from_config("", None, Some(s), true).unwrap().scopes().to_vec();
    assert_eq!(parse("[groups, email]"), ["groups", "email"]);
    assert_eq!(parse(r#"["groups", 'email']"#), ["groups", "email"]);
    assert_eq!(parse("- groups\n- email\n"), ["groups", "email"]);
    assert_eq!(parse("email"), ["email"]);
    assert!(parse("[]").is_empty());
}

#[test]
fn malformed_scopes_are_refused() {
    for bad in ["[groups, email", "[groups, [email]]", "- groups\nemail"] {
        let err = Enforcer::from_config("", None, Some(bad), true).unwrap_err();
        assert!(matches!(err, RbacError::InvalidScopes { .. }), "{bad}: {err}");
    }
}

#[test]
fn subject_from_claims_collects_the_configured_scopes() {
    let claims = serde_json::json!({
        "sub": "CiQwOGE4Njg0Yi1kYjg4",
        "email": "dana@example.org",
        "groups": ["my-org:team-alpha", "my-org:readers", 7],
        "roles": "ignored-unless-scoped",
    });
    let scopes = vec!["groups".to_owned(), "email".to_owned()];
    let subject = Subject::from_claims(&claims, &scopes);
    assert_eq!(subject.name, "CiQwOGE4Njg0Yi1kYjg4");
    assert_eq!(subject.groups, ["my-org:team-alpha", "my-org:readers", "dana@example.org"]);
}

#[test]
fn subject_from_claims_prefers_the_federated_user_id() {
    let claims = serde_json::json!({
        "sub": "opaque-dex-sub",
        "federated_claims": {"connector_id": "github", "user_id": "dana@example.org"},
    });
    let subject = Subject::from_claims(&claims, &["groups".to_owned()]);
    assert_eq!(subject.name, "dana@example.org");
    assert!(subject.groups.is_empty());
}

#[test]
fn email_scope_lets_policies_name_users_by_email() {
    let rbac = Enforcer::from_config("g, user@example.org, role:admin", None, Some("[groups, email]"), true)
        .unwrap();
    let claims = serde_json::json!({"sub": "123", "email": "user@example.org"});
    let subject = Subject::from_claims(&claims, rbac.scopes());
    assert!(rbac.enforce(&subject, "applications", "delete", "default/app"));
    let groups_only = Subject::from_claims(&claims, &["groups".to_owned()]);
    assert!(!rbac.enforce(&groups_only, "applications", "delete", "default/app"));
}

#[test]
fn a_provider_cannot_name_a_user_or_group_after_a_project_role() {
    let claims = serde_json::json!({"sub": "proj:shop:ci", "groups": ["proj:shop:ci", "devs"]});
    let subject = Subject::from_claims(&claims, &["groups".to_owned()]);
    assert_eq!(subject.name, "");
    assert_eq!(subject.groups, ["devs"]);
}

#[test]
fn a_groups_claim_that_is_a_string_is_one_group_never_split() {
    let rbac =
        Enforcer::from_config("g, admins, role:admin\ng, team-a, role:readonly", None, None, true).unwrap();
    for groups in ["admins,team-a", "team-a admins", "admins team-a"] {
        let subject = Subject::from_claims(&serde_json::json!({"sub": "u", "groups": groups}), rbac.scopes());
        assert_eq!(subject.groups, [groups]);
        assert!(!rbac.enforce(&subject, "applications", "delete", "default/app"), "{groups}");
        assert!(!rbac.enforce(&subject, "applications", "get", "default/app"), "{groups}");
    }
    let one = Subject::from_claims(&serde_json::json!({"sub": "u", "groups": "team-a"}), rbac.scopes());
    assert!(rbac.enforce(&one, "applications", "get", "default/app"), "a single group as a string counts");
    assert!(!rbac.enforce(&one, "applications", "delete", "default/app"));
}

// Globs

#[test]
fn object_globs_select_projects_and_app_names() {
    let csv = "p, role:dev, applications, sync, default/*, allow\n\
               p, role:web, applications, get, */web-*, allow\n\
               g, dev, role:dev\n\
               g, web, role:web";
    let rbac = enforcer(csv, None);
    assert!(rbac.enforce(&user("dev"), "applications", "sync", "default/anything"));
    assert!(!rbac.enforce(&user("dev"), "applications", "sync", "staging/anything"));
    assert!(rbac.enforce(&user("web"), "applications", "get", "shop/web-frontend"));
    assert!(rbac.enforce(&user("web"), "applications", "get", "shop/web-"));
    assert!(!rbac.enforce(&user("web"), "applications", "get", "shop/api"));
    assert!(!rbac.enforce(&user("web"), "applications", "get", "web-frontend"));
}

#[test]
fn star_object_crosses_namespaced_app_names() {
    let csv = "p, ns-reader, applications, get, */team-ns/*, allow\n\
               p, ns-reader, logs, get, shop/team-ns/cart, allow";
    let rbac = enforcer(csv, None);
    let reader = user("ns-reader");
    let object = app_object("shop", Some("team-ns"), "cart");
    assert_eq!(object, "shop/team-ns/cart");
    assert!(rbac.enforce(&reader, "applications", "get", &object));
    assert!(rbac.enforce(&reader, "logs", "get", &object));
    assert!(!rbac.enforce(&reader, "applications", "get", "shop/other-ns/cart"));
    assert_eq!(app_object("shop", None, "cart"), "shop/cart");
    assert_eq!(app_object("shop", Some(""), "cart"), "shop/cart");
}

#[test]
fn wildcards_in_resource_and_action() {
    let rbac = enforcer("p, root, *, *, *, allow", None);
    let root = user("root");
    assert!(rbac.enforce(&root, "extensions", "invoke", "httpbin"));
    assert!(rbac.enforce(&root, "applications", "action/apps/Deployment/restart", "a/b"));
    // A comma inside braces splits the CSV field unless the field is quoted.
    assert!(Enforcer::from_config("p, ops, applications, {sync,get}, */*, allow", None, None, true).is_err());
    let partial = enforcer(r#"p, ops, applications, "{sync,get}", */*, allow"#, None);
    assert!(partial.enforce(&user("ops"), "applications", "sync", "a/b"));
    assert!(!partial.enforce(&user("ops"), "applications", "delete", "a/b"));
}

// Deny

#[test]
fn deny_overrides_allow_for_the_same_subject() {
    let csv = "p, bob, applications, *, default/*, allow\n\
               p, bob, applications, delete, default/*, deny";
    let rbac = enforcer(csv, None);
    assert!(rbac.enforce(&user("bob"), "applications", "sync", "default/app"));
    assert!(!rbac.enforce(&user("bob"), "applications", "delete", "default/app"));
}

#[test]
fn deny_wins_regardless_of_line_order() {
    let first = "p, bob, applications, delete, default/*, deny\n\
                 p, bob, applications, *, */*, allow";
    let last = "p, bob, applications, *, */*, allow\n\
                p, bob, applications, delete, default/*, deny";
    for csv in [first, last] {
        let rbac = enforcer(csv, None);
        assert!(!rbac.enforce(&user("bob"), "applications", "delete", "default/app"));
        assert!(rbac.enforce(&user("bob"), "applications", "delete", "other/app"));
    }
}

#[test]
fn deny_in_an_inherited_role_overrides_a_direct_allow() {
    let csv = "p, bob, projects, get, *, allow\n\
               p, role:restricted, projects, get, secret, deny\n\
               g, bob, role:restricted";
    let rbac = enforcer(csv, None);
    assert!(rbac.enforce(&user("bob"), "projects", "get", "default"));
    assert!(!rbac.enforce(&user("bob"), "projects", "get", "secret"));
}

#[test]
fn deny_on_one_group_overrides_allow_from_another() {
    let csv = "g, k8s-admins, role:admin\n\
               p, role:no-projects, projects, get, *, deny\n\
               g, contractors, role:no-projects";
    let rbac = enforcer(csv, None);
    let both = Subject::with_groups("user-a", ["k8s-admins", "contractors"]);
    assert!(!rbac.enforce(&both, "projects", "get", "default"));
    assert!(rbac.enforce(&both, "applications", "sync", "default/app"));
    let admin_only = Subject::with_groups("user-b", ["k8s-admins"]);
    assert!(rbac.enforce(&admin_only, "projects", "get", "default"));
}

#[test]
fn deny_alone_grants_nothing() {
    let rbac = enforcer("p, bob, applications, get, default/*, deny", None);
    assert!(!rbac.enforce(&user("bob"), "applications", "get", "other/app"));
}

// Resource actions and fine-grained update/delete

#[test]
fn resource_actions_are_matched_by_their_full_path() {
    let csv = "p, oncall, applications, action/apps/Deployment/restart, prod/*, allow\n\
               p, oncall, applications, action//Pod/maintenance-off, default/*, allow\n\
               p, oncall, applications, action/extensions/DaemonSet/*, default/*, allow";
    let rbac = enforcer(csv, None);
    let oncall = user("oncall");
    assert!(rbac.enforce(&oncall, "applications", "action/apps/Deployment/restart", "prod/api"));
    assert!(!rbac.enforce(&oncall, "applications", "action/apps/Deployment/scale", "prod/api"));
    assert!(!rbac.enforce(&oncall, "applications", "action/apps/StatefulSet/restart", "prod/db"));
    assert!(rbac.enforce(&oncall, "applications", "action//Pod/maintenance-off", "default/a"));
    assert!(rbac.enforce(&oncall, "applications", "action/extensions/DaemonSet/restart", "default/a"));
    assert!(!rbac.enforce(&oncall, "applications", "sync", "prod/api"));
}

#[test]
fn action_star_allows_every_resource_action() {
    let rbac = enforcer("p, ops, applications, action/*, default/*, allow", None);
    assert!(rbac.enforce(&user("ops"), "applications", "action/batch/CronJob/create-job", "default/a"));
    assert!(!rbac.enforce(&user("ops"), "applications", "action/batch/CronJob/x", "prod/a"));
}

fn pod(name: &str) -> ManagedResource<'_> {
    ManagedResource { group: "", kind: "Pod", namespace: "prod", name }
}

const DEPLOYMENT: ManagedResource<'static> =
    ManagedResource { group: "apps", kind: "Deployment", namespace: "prod", name: "web" };

#[test]
fn fine_grained_delete_allows_pods_but_not_the_application() {
    let rbac = enforcer("p, dev, applications, delete/*/Pod/*/*, default/prod-app, allow", None);
    let dev = user("dev");
    assert!(rbac.enforce_managed_resource(&dev, "delete", &pod("web-1"), "default/prod-app"));
    assert!(!rbac.enforce_managed_resource(&dev, "delete", &DEPLOYMENT, "default/prod-app"));
    assert!(!rbac.enforce(&dev, "applications", "delete", "default/prod-app"));
    assert!(!rbac.enforce_managed_resource(&dev, "delete", &pod("web-1"), "default/other"));
}

#[test]
fn update_star_covers_managed_objects_but_not_the_application() {
    let rbac = enforcer("p, dev, applications, update/*, default/prod-app, allow", None);
    let dev = user("dev");
    assert!(rbac.enforce_managed_resource(&dev, "update", &DEPLOYMENT, "default/prod-app"));
    assert!(!rbac.enforce(&dev, "applications", "update", "default/prod-app"));
    assert!(!rbac.enforce_managed_resource(&dev, "delete", &DEPLOYMENT, "default/prod-app"));
}

#[test]
fn application_delete_does_not_reach_managed_objects_without_inheritance() {
    let rbac = enforcer("p, dev, applications, delete, default/prod-app, allow", None);
    let dev = user("dev");
    assert!(rbac.enforce(&dev, "applications", "delete", "default/prod-app"));
    assert!(!rbac.enforce_managed_resource(&dev, "delete", &pod("web-1"), "default/prod-app"));
}

#[test]
fn inheritance_lets_application_grants_cover_managed_objects_beyond_a_fine_grained_deny() {
    let csv = "p, dev, applications, delete, default/prod-app, allow\n\
               p, dev, applications, delete/*/Pod/*/*, default/prod-app, deny";
    let rbac = enforcer(csv, None).with_fine_grained_inheritance(true);
    let dev = user("dev");
    assert!(rbac.enforce_managed_resource(&dev, "delete", &pod("web-1"), "default/prod-app"));
    assert!(rbac.enforce_managed_resource(&dev, "delete", &DEPLOYMENT, "default/prod-app"));
    assert!(!rbac.enforce_managed_resource(&dev, "update", &DEPLOYMENT, "default/prod-app"));
}

#[test]
fn application_delete_denied_while_pod_delete_allowed() {
    let csv = "p, dev, applications, delete, default/prod-app, deny\n\
               p, dev, applications, delete/*/Pod/*/*, default/prod-app, allow";
    let rbac = enforcer(csv, None).with_fine_grained_inheritance(true);
    let dev = user("dev");
    assert!(!rbac.enforce(&dev, "applications", "delete", "default/prod-app"));
    assert!(rbac.enforce_managed_resource(&dev, "delete", &pod("web-1"), "default/prod-app"));
}

#[test]
fn extensions_need_their_own_grant() {
    let csv = "p, ext-user, applications, get, default/*, allow\n\
               p, ext-user, extensions, invoke, httpbin, allow";
    let rbac = enforcer(csv, None);
    let u = user("ext-user");
    assert!(rbac.enforce(&u, "extensions", "invoke", "httpbin"));
    assert!(!rbac.enforce(&u, "extensions", "invoke", "metrics"));
}

// Project roles

fn shop_project() -> AppProject {
    project(
        "shop",
        vec![
            role(
                "developer",
                &[
                    "p, proj:shop:developer, applications, get, shop/*, allow",
                    "p, proj:shop:developer, applications, sync, shop/*, allow",
                    "p, proj:shop:developer, applications, delete, shop/*, deny",
                    "p, proj:shop:developer, logs, get, shop/*, allow",
                ],
                &["my-org:shop-devs"],
            ),
            ProjectRole {
                jwt_tokens: vec![
                    JwtToken { iat: 1_700_000_000, exp: None, id: Some("ci-token-1".to_owned()) },
                    JwtToken { iat: 1_600_000_000, exp: None, id: None },
                ],
                ..role("ci", &["p, proj:shop:ci, applications, sync, shop/*, allow"], &[])
            },
        ],
    )
}

#[test]
fn project_role_groups_grant_within_their_project_only() {
    let rbac = enforcer("", None).with_project_roles(&[shop_project(), project("blog", vec![])]);
    let dev = Subject::with_groups("dana", ["my-org:shop-devs"]);
    assert!(rbac.enforce(&dev, "applications", "sync", "shop/cart"));
    assert!(rbac.enforce(&dev, "logs", "get", "shop/cart"));
    assert!(!rbac.enforce(&dev, "applications", "delete", "shop/cart"));
    assert!(!rbac.enforce(&dev, "applications", "sync", "blog/cart"));
    assert!(!rbac.enforce(&dev, "clusters", "get", "https://kubernetes.default.svc"));
}

#[test]
fn project_role_holders_may_get_their_project() {
    let rbac = enforcer("", None).with_project_roles(&[shop_project(), project("blog", vec![])]);
    let dev = Subject::with_groups("dana", ["my-org:shop-devs"]);
    assert!(rbac.enforce(&dev, "projects", "get", "shop"));
    assert!(!rbac.enforce(&dev, "projects", "get", "blog"));
    assert!(!rbac.enforce(&dev, "projects", "update", "shop"));
}

#[test]
fn project_token_subject_is_confined_to_its_project() {
    let rbac =
        enforcer("", Some("role:readonly")).with_project_roles(&[shop_project(), project("blog", vec![])]);
    let ci = user("proj:shop:ci");
    assert!(rbac.enforce(&ci, "applications", "sync", "shop/cart"));
    assert!(rbac.enforce(&ci, "applications", "get", "shop/cart"));
    assert!(!rbac.enforce(&ci, "applications", "delete", "shop/cart"));
    // The default role does not open other projects to a project token.
    assert!(!rbac.enforce(&ci, "applications", "get", "blog/post"));
    assert!(!rbac.enforce(&ci, "projects", "get", "blog"));
}

#[test]
fn global_policy_may_bind_to_project_roles() {
    let csv = "g, release-bot, proj:shop:ci";
    let rbac = enforcer(csv, None).with_project_roles(&[shop_project()]);
    assert!(rbac.enforce(&user("release-bot"), "applications", "sync", "shop/cart"));
    assert!(!rbac.enforce(&user("release-bot"), "applications", "sync", "blog/cart"));
}

#[test]
fn project_role_deny_overrides_a_global_allow() {
    let csv = "g, my-org:shop-devs, role:admin";
    let rbac = enforcer(csv, None).with_project_roles(&[shop_project()]);
    let dev = Subject::with_groups("dana", ["my-org:shop-devs"]);
    assert!(!rbac.enforce(&dev, "applications", "delete", "shop/cart"));
    assert!(rbac.enforce(&dev, "applications", "delete", "blog/cart"));
}

#[test]
fn invalid_project_policies_are_left_out() {
    let sneaky = project(
        "shop",
        vec![
            role(
                "sneaky",
                &[
                    "p, proj:shop:sneaky, applications, delete, blog/*, allow",
                    "p, proj:shop:sneaky, clusters, delete, *, allow",
                    "p, proj:shop:sneaky, projects, update, shop, allow",
                    "p, proj:blog:admin, applications, delete, shop/*, allow",
                    "p, sneaky-user, applications, delete, shop/*, allow",
                    "g, sneaky-user, role:admin",
                    "p, proj:shop:sneaky, applications, sync, shop/*, allow",
                ],
                &["sneaky-user"],
            ),
            role("bad:name", &["p, proj:shop:bad:name, applications, *, shop/*, allow"], &["sneaky-user"]),
        ],
    );
    let rbac = enforcer("", None).with_project_roles(&[sneaky]);
    let u = user("sneaky-user");
    assert!(rbac.enforce(&u, "applications", "sync", "shop/cart"));
    assert!(!rbac.enforce(&u, "applications", "delete", "shop/cart"));
    assert!(!rbac.enforce(&u, "applications", "delete", "blog/post"));
    assert!(!rbac.enforce(&u, "projects", "update", "shop"));
    assert!(!rbac.enforce(&u, "clusters", "delete", "shop/https://10.0.0.1"));
}

#[test]
fn validate_project_roles_names_the_offending_role_and_policy() {
    assert_eq!(validate_project_roles(&shop_project()), Ok(()));
    let err = validate_project_roles(&project(
        "shop",
        vec![role("dev", &["p, proj:shop:dev, applications, get, blog/*, allow"], &[])],
    ))
    .unwrap_err();
    let message = err.to_string();
    assert!(message.contains("project shop role dev"), "{message}");
    assert!(message.contains("blog/*"), "{message}");
    for (role, reason) in [
        (role("dev", &["p, proj:shop:other, applications, get, shop/*, allow"], &[]), "subject"),
        (role("dev", &["p, proj:shop:dev, projects, get, shop/*, allow"], &[]), "project-scoped"),
        (role("dev", &["g, someone, proj:shop:dev"], &[]), "`p` line"),
        (role("dev", &["p, proj:shop:dev, applications, get, shop/*"], &[]), "6 fields"),
        (role("-dev", &[], &[]), "invalid role name"),
        (role("dev", &[], &["a,b"]), "quoted"),
    ] {
        let err = validate_project_roles(&project("shop", vec![role])).unwrap_err();
        assert!(err.to_string().contains(reason), "{err} should mention {reason}");
    }
    let twice = project("shop", vec![role("dev", &[], &[]), role("dev", &[], &[])]);
    assert!(validate_project_roles(&twice).is_err());
}

#[test]
fn project_tokens_are_active_while_listed_in_their_role() {
    let rbac = enforcer("", None).with_project_roles(&[shop_project()]);
    assert!(rbac.project_token_active("shop", "ci", Some("ci-token-1"), 0));
    assert!(!rbac.project_token_active("shop", "ci", Some("revoked"), 1_700_000_000));
    assert!(rbac.project_token_active("shop", "ci", None, 1_600_000_000));
    assert!(rbac.project_token_active("shop", "ci", Some(""), 1_600_000_000));
    assert!(!rbac.project_token_active("shop", "ci", None, 1_600_000_001));
    assert!(!rbac.project_token_active("shop", "developer", Some("ci-token-1"), 0));
    assert!(!rbac.project_token_active("blog", "ci", Some("ci-token-1"), 0));
}

#[test]
fn replacing_project_roles_drops_the_old_ones() {
    let rbac = enforcer("", None).with_project_roles(&[shop_project()]);
    let dev = Subject::with_groups("dana", ["my-org:shop-devs"]);
    assert!(rbac.enforce(&dev, "applications", "sync", "shop/cart"));
    let rbac = rbac.with_project_roles(&[project("shop", vec![])]);
    assert!(!rbac.enforce(&dev, "applications", "sync", "shop/cart"));
}

// Configuration errors and composition

#[test]
fn invalid_csv_names_the_key_and_line() {
    let csv = "# team policies\n\
               p, role:dev, applications, sync, dev/*, allow\n\
               \n\
               p, role:dev, applications, sync, dev/*\n";
    let err = Enforcer::from_config(csv, None, None, true).unwrap_err();
    assert_eq!(
        err,
        RbacError::InvalidPolicyLine {
            key: "policy.csv".to_owned(),
            line: 4,
            text: "p, role:dev, applications, sync, dev/*".to_owned(),
            reason: "a `p` line has 6 fields (p, subject, resource, action, object, allow|deny), found 5"
                .to_owned(),
        }
    );
    assert!(err.to_string().starts_with("policy.csv line 4: "), "{err}");
}

#[test]
fn invalid_lines_of_every_kind_are_refused() {
    for (csv, reason) in [
        ("p, a, applications, get, */*, permit", "`allow` or `deny`"),
        ("g, lonely", "3 fields"),
        ("r, a, b", "starts with `p` or `g`"),
        ("p, a, applications, get, {x, allow", "unclosed `{`"),
        ("g, \"unterminated, role:x", "unterminated"),
    ] {
        let err = Enforcer::from_config(csv, None, None, true).unwrap_err();
        assert!(err.to_string().contains(reason), "{csv}: {err}");
    }
}

#[test]
fn comments_blank_lines_and_quoted_groups_are_read() {
    let csv = "  # comment\r\n\r\n\
               g, \"my-org:team, with comma\", role:admin\r\n\
               p,bob,applications,get,default/*,allow";
    let rbac = enforcer(csv, None);
    let quoted = Subject::with_groups("x", ["my-org:team, with comma"]);
    assert!(rbac.enforce(&quoted, "clusters", "delete", "c"));
    assert!(rbac.enforce(&user("bob"), "applications", "get", "default/app"));
}

fn config_map(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
    entries.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn config_map_overlays_add_to_policy_csv_in_key_order() {
    let data = config_map(&[
        ("policy.csv", "p, role:tester, applications, get, */*, allow"),
        ("policy.tester-overlay.csv", "g, my-org:team-qa, role:tester"),
        ("policy.B.csv", "p, role:tester, projects, *, *, allow"),
        ("policy.default", "role:none"),
        ("scopes", "[groups, email]"),
        ("policy.matchMode", "glob"),
    ]);
    let rbac = Enforcer::from_config_map(&data).unwrap();
    let qa = Subject::with_groups("q", ["my-org:team-qa"]);
    assert!(rbac.enforce(&qa, "applications", "get", "a/b"));
    assert!(rbac.enforce(&qa, "projects", "update", "a"));
    assert_eq!(rbac.default_role(), Some("role:none"));
    assert_eq!(rbac.scopes(), ["groups", "email"]);
    assert!(rbac.enforce(&user("admin"), "clusters", "delete", "c"));
}

#[test]
fn config_map_overlay_errors_name_the_overlay_key() {
    let data = config_map(&[
        ("policy.csv", "g, a, role:admin"),
        ("policy.A.csv", "p, ok, applications, get, */*, allow"),
        ("policy.B.csv", "\np, broken"),
    ]);
    let err = Enforcer::from_config_map(&data).unwrap_err();
    assert!(err.to_string().starts_with("policy.B.csv line 2: "), "{err}");
}

#[test]
fn config_map_refuses_regex_match_mode() {
    let data = config_map(&[("policy.matchMode", "regex")]);
    assert_eq!(
        Enforcer::from_config_map(&data).unwrap_err(),
        RbacError::UnsupportedMatchMode { mode: "regex".to_owned() }
    );
    assert!(Enforcer::from_config_map(&BTreeMap::new()).is_ok());
}

// Resolved subjects

#[test]
fn resolved_subject_filters_a_list_like_enforce() {
    let csv = "p, role:dev, applications, get, team-a/*, allow\n\
               p, role:dev, applications, get, team-a/secret-*, deny\n\
               g, devs, role:dev";
    let rbac = enforcer(csv, None).with_project_roles(&[shop_project()]);
    let subject = Subject::with_groups("dana", ["devs", "my-org:shop-devs"]);
    let apps = ["team-a/web", "team-a/secret-vault", "team-b/web", "shop/cart", "shop/ns/cart"];
    let resolved = rbac.resolve(&subject);
    let visible: Vec<&str> =
        apps.iter().copied().filter(|app| resolved.enforce("applications", "get", app)).collect();
    assert_eq!(visible, ["team-a/web", "shop/cart", "shop/ns/cart"]);
    for app in apps {
        assert_eq!(
            resolved.enforce("applications", "get", app),
            rbac.enforce(&subject, "applications", "get", app),
            "{app}"
        );
    }
}

// A realistic argocd-rbac-cm, in the spirit of the Argo CD documentation's examples.

const EXAMPLE_POLICY: &str = "\
# Everyone in the company may look; only the platform team may change everything.
g, acme:platform, role:admin
g, acme:everyone, role:readonly

# Payments developers deploy their project's apps, but never delete them.
p, role:payments-dev, applications, get, payments/*, allow
p, role:payments-dev, applications, sync, payments/*, allow
p, role:payments-dev, applications, action/apps/Deployment/restart, payments/*, allow
p, role:payments-dev, logs, get, payments/*, allow
p, role:payments-dev, applications, delete, payments/*, deny
g, acme:payments, role:payments-dev

# The on-call rotation may additionally delete pods of production payment apps.
p, role:oncall, applications, delete/*/Pod/*/*, payments/prod-*, allow
g, role:oncall, role:payments-dev
g, acme:oncall, role:oncall

# A local CI account syncs everything but the platform's own apps.
p, ci-bot, applications, sync, */*, allow
p, ci-bot, applications, sync, platform/*, deny
";

#[test]
fn example_policy_readonly_team_sees_but_cannot_change() {
    let rbac = Enforcer::from_config(EXAMPLE_POLICY, None, Some("[groups]"), true).unwrap();
    let reader = Subject::with_groups("rita", ["acme:everyone"]);
    assert!(rbac.enforce(&reader, "applications", "get", "payments/prod-api"));
    assert!(rbac.enforce(&reader, "clusters", "get", "https://prod.example"));
    assert!(!rbac.enforce(&reader, "applications", "sync", "payments/prod-api"));
    assert!(!rbac.enforce(&reader, "repositories", "create", "https://github.com/acme/x"));
}

#[test]
fn example_policy_admin_group_may_do_everything() {
    let rbac = Enforcer::from_config(EXAMPLE_POLICY, None, Some("[groups]"), true).unwrap();
    let platform = Subject::with_groups("pat", ["acme:everyone", "acme:platform"]);
    assert!(rbac.enforce(&platform, "applications", "delete", "payments/prod-api"));
    assert!(rbac.enforce(&platform, "clusters", "create", "https://new.example"));
    assert!(rbac.enforce(&platform, "accounts", "update", "ci-bot"));
}

#[test]
fn example_policy_project_developer_syncs_but_cannot_delete() {
    let rbac = Enforcer::from_config(EXAMPLE_POLICY, None, Some("[groups]"), true).unwrap();
    let dev = Subject::with_groups("devin", ["acme:everyone", "acme:payments"]);
    assert!(rbac.enforce(&dev, "applications", "sync", "payments/prod-api"));
    assert!(rbac.enforce(&dev, "applications", "action/apps/Deployment/restart", "payments/prod-api"));
    assert!(rbac.enforce(&dev, "logs", "get", "payments/prod-api"));
    assert!(!rbac.enforce(&dev, "applications", "delete", "payments/prod-api"));
    assert!(!rbac.enforce(&dev, "applications", "sync", "platform/ingress"));
    assert!(!rbac.enforce_managed_resource(&dev, "delete", &pod("api-1"), "payments/prod-api"));
}

#[test]
fn example_policy_oncall_deletes_pods_in_prod_apps_only() {
    let rbac = Enforcer::from_config(EXAMPLE_POLICY, None, Some("[groups]"), true).unwrap();
    let oncall = Subject::with_groups("olga", ["acme:oncall"]);
    assert!(rbac.enforce(&oncall, "applications", "sync", "payments/prod-api"));
    assert!(rbac.enforce_managed_resource(&oncall, "delete", &pod("api-1"), "payments/prod-api"));
    assert!(!rbac.enforce_managed_resource(&oncall, "delete", &pod("api-1"), "payments/staging-api"));
    assert!(!rbac.enforce_managed_resource(&oncall, "delete", &DEPLOYMENT, "payments/prod-api"));
    assert!(!rbac.enforce(&oncall, "applications", "delete", "payments/prod-api"));
}

#[test]
fn example_policy_ci_account_syncs_all_but_platform() {
    let rbac = Enforcer::from_config(EXAMPLE_POLICY, None, Some("[groups]"), true).unwrap();
    let ci = user("ci-bot");
    assert!(rbac.enforce(&ci, "applications", "sync", "payments/prod-api"));
    assert!(!rbac.enforce(&ci, "applications", "sync", "platform/ingress"));
    assert!(!rbac.enforce(&ci, "applications", "get", "payments/prod-api"));
}

#[test]
fn enforcer_is_shareable_across_request_handlers() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Enforcer>();
}
