//! The enforcer the server uses, replaced whole when argocd-rbac-cm changes: a request sees either the old
//! policy or the new one, never half of each. A policy that does not load leaves the last good one in place.

use super::{Enforcer, Subject};
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

#[derive(Default)]
pub struct LiveEnforcer {
    current: RwLock<Arc<Enforcer>>,
}

impl LiveEnforcer {
    pub fn new(enforcer: Enforcer) -> Self {
        LiveEnforcer { current: RwLock::new(Arc::new(enforcer)) }
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
        *self.current.write().expect("rbac lock") = Arc::new(next);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_policy_applies_and_a_broken_one_keeps_the_last_good() {
        let live = LiveEnforcer::default();
        let alice = Subject::user("alice");
        assert!(!live.enforce(&alice, "applications", "get", "default/web"));
        let data = |csv: &str| BTreeMap::from([("policy.csv".to_string(), csv.to_string())]);
        live.reload(&data("p, alice, applications, get, default/*, allow\n")).unwrap();
        assert!(live.enforce(&alice, "applications", "get", "default/web"));
        assert!(live.reload(&data("p, alice, applications\n")).is_err());
        assert!(live.enforce(&alice, "applications", "get", "default/web"), "the last good policy stays");
    }
}
