//! The enforcer the server uses, replaced whole when argocd-rbac-cm or an AppProject changes: a request sees
//! either the old policy or the new one, never half of each. A policy that does not load leaves the last
//! good one in place; the project roles then apply on top of that one.

use super::{Enforcer, Subject};
use berth_api::AppProject;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

#[derive(Default)]
pub struct LiveEnforcer {
    current: RwLock<Arc<Enforcer>>,
    /// What `current` is built from: argocd-rbac-cm's last good policy and the projects now. Held while
    /// building, so two changes at once never leave the older result in force.
    sources: Mutex<Sources>,
}

#[derive(Default)]
struct Sources {
    /// The enforcer of argocd-rbac-cm alone (no project roles).
    config: Option<Enforcer>,
    projects: Vec<AppProject>,
}

impl LiveEnforcer {
    /// Starts with `enforcer` as argocd-rbac-cm's policy (and no project roles until
    /// [`set_projects`](Self::set_projects)).
    pub fn new(enforcer: Enforcer) -> Self {
        LiveEnforcer {
            current: RwLock::new(Arc::new(enforcer.clone())),
            sources: Mutex::new(Sources { config: Some(enforcer), projects: Vec::new() }),
        }
    }

    /// The policy now; hold it for a whole request (a list filters every item under one policy).
    pub fn current(&self) -> Arc<Enforcer> {
        self.current.read().expect("rbac lock").clone()
    }

    pub fn enforce(&self, subject: &Subject, resource: &str, action: &str, object: &str) -> bool {
        self.current().enforce(subject, resource, action, object)
    }

    /// Loads argocd-rbac-cm's data; on an error the policy in force stays and the error is returned.
    pub fn reload(&self, data: &BTreeMap<String, String>) -> Result<(), super::RbacError> {
        let next = Enforcer::from_config_map(data)?;
        let mut sources = self.lock_sources();
        sources.config = Some(next);
        self.rebuild(&sources);
        Ok(())
    }

    /// Takes the AppProjects now (their roles' policies, groups and tokens); call it whenever one changes.
    pub fn set_projects(&self, projects: Vec<AppProject>) {
        let mut sources = self.lock_sources();
        sources.projects = projects;
        self.rebuild(&sources);
    }

    fn rebuild(&self, sources: &Sources) {
        let config = sources.config.clone().unwrap_or_default();
        let next = config.with_project_roles(&sources.projects);
        *self.current.write().expect("rbac lock") = Arc::new(next);
    }

    fn lock_sources(&self) -> std::sync::MutexGuard<'_, Sources> {
        self.sources.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::project::ProjectRole;

    fn data(csv: &str) -> BTreeMap<String, String> {
        BTreeMap::from([("policy.csv".to_string(), csv.to_string())])
    }

    fn shop(policy: &str) -> AppProject {
        let mut project = AppProject::default();
        project.metadata.name = Some("shop".into());
        project.spec.roles = vec![ProjectRole {
            name: "ci".into(),
            policies: vec![policy.into()],
            groups: vec!["my-org:shop".into()],
            ..Default::default()
        }];
        project
    }

    #[test]
    fn a_new_policy_applies_and_a_broken_one_keeps_the_last_good() {
        let live = LiveEnforcer::default();
        let alice = Subject::user("alice");
        assert!(!live.enforce(&alice, "applications", "get", "default/web"));
        live.reload(&data("p, alice, applications, get, default/*, allow\n")).unwrap();
        assert!(live.enforce(&alice, "applications", "get", "default/web"));
        assert!(live.reload(&data("p, alice, applications\n")).is_err());
        assert!(live.enforce(&alice, "applications", "get", "default/web"), "the last good policy stays");
    }

    #[test]
    fn project_roles_apply_on_top_of_the_config_map_and_follow_project_changes() {
        let live = LiveEnforcer::new(Enforcer::default());
        let ci = Subject::user("proj:shop:ci");
        let member = Subject::with_groups("dana", ["my-org:shop"]);
        assert!(!live.enforce(&ci, "applications", "get", "shop/web"));
        live.set_projects(vec![shop("p, proj:shop:ci, applications, get, shop/*, allow")]);
        assert!(live.enforce(&ci, "applications", "get", "shop/web"));
        assert!(live.enforce(&member, "applications", "get", "shop/web"), "groups bind to the role");
        live.set_projects(vec![shop("p, proj:shop:ci, applications, sync, shop/*, allow")]);
        assert!(!live.enforce(&ci, "applications", "get", "shop/web"));
        assert!(live.enforce(&ci, "applications", "sync", "shop/web"));
    }

    #[test]
    fn reloading_the_config_map_keeps_the_project_roles() {
        let live = LiveEnforcer::new(Enforcer::default());
        let ci = Subject::user("proj:shop:ci");
        live.set_projects(vec![shop("p, proj:shop:ci, applications, get, shop/*, allow")]);
        live.reload(&data("p, alice, applications, get, default/*, allow\n")).unwrap();
        assert!(live.enforce(&ci, "applications", "get", "shop/web"));
        assert!(live.enforce(&Subject::user("alice"), "applications", "get", "default/web"));
        assert!(live.reload(&data("p, alice\n")).is_err());
        live.set_projects(vec![shop("p, proj:shop:ci, applications, sync, shop/*, allow")]);
        assert!(live.enforce(&ci, "applications", "sync", "shop/web"));
        assert!(
            live.enforce(&Subject::user("alice"), "applications", "get", "default/web"),
            "a project change keeps the last good argocd-rbac-cm policy"
        );
    }
}
