//! Any policy.csv and request: loading ends in an enforcer or an error, enforcing in a yes or no, and a
//! policy that only denies never allows.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;

fuzz_target!(|input: (&str, &str, &str, &str, &str)| {
    let (policy, subject, resource, action, object) = input;
    let data = BTreeMap::from([("policy.csv".to_string(), policy.to_string())]);
    let Ok(enforcer) = berth_server::rbac::Enforcer::from_config_map(&data) else { return };
    let subject = berth_server::rbac::Subject::user(subject);
    let allowed = enforcer.enforce(&subject, resource, action, object);
    let only_denies = policy.lines().all(|l| {
        let l = l.trim();
        l.is_empty() || l.starts_with('#') || (l.starts_with("p,") && l.trim_end().ends_with("deny"))
    });
    // The built-in `admin` account holds role:admin whatever policy.csv says.
    let builtin = subject.name == "admin" || subject.name.starts_with("role:");
    assert!(
        builtin || !(allowed && only_denies),
        "a policy of deny lines allowed {resource} {action} {object}"
    );
});
