//! What is compared: desired (predicted by a server-side-apply dry run) and live objects, stripped of the
//! fields the server owns, with ignoreDifferences removed, so only real drift remains.

use crate::resource::ResourceKey;

/// Annotations the server or other tools add, never part of what git says.
const NOISE_ANNOTATIONS: &[&str] =
    &["deployment.kubernetes.io/revision", "kubectl.kubernetes.io/last-applied-configuration"];

/// `argocd.argoproj.io/compare-options` on an object: comma-separated options of its comparison
/// (`IgnoreExtraneous`: the object being in the cluster and not in git does not make its app OutOfSync).
pub const COMPARE_OPTIONS_ANNOTATION: &str = "argocd.argoproj.io/compare-options";

/// Whether an object's compare-options annotation holds `option` (e.g. `IgnoreExtraneous`).
pub fn has_compare_option(obj: &serde_json::Value, option: &str) -> bool {
    obj["metadata"]["annotations"][COMPARE_OPTIONS_ANNOTATION]
        .as_str()
        .is_some_and(|v| v.split(',').any(|o| o.trim().eq_ignore_ascii_case(option)))
}

/// Removes server-owned fields: status, managedFields, resourceVersion, uid, generation, creationTimestamp,
/// selfLink, and annotations the server or kubectl add.
pub fn strip_server_fields(obj: &mut serde_json::Value) {
    let Some(map) = obj.as_object_mut() else { return };
    map.remove("status");
    if let Some(meta) = map.get_mut("metadata").and_then(|m| m.as_object_mut()) {
        for field in
            ["managedFields", "resourceVersion", "uid", "generation", "creationTimestamp", "selfLink"]
        {
            meta.remove(field);
        }
        if let Some(ann) = meta.get_mut("annotations").and_then(|a| a.as_object_mut()) {
            for a in NOISE_ANNOTATIONS {
                ann.remove(*a);
            }
            if ann.is_empty() {
                meta.remove("annotations");
            }
        }
    }
}

/// One ignoreDifferences rule, from an Application or from argocd-cm.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IgnoreRule {
    /// `None` matches any group; `Some("")` is the core group; `*` matches any.
    pub group: Option<String>,
    /// `*` matches any kind.
    pub kind: String,
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub json_pointers: Vec<String>,
    pub jq_path_expressions: Vec<String>,
    pub managed_fields_managers: Vec<String>,
}

impl IgnoreRule {
    pub fn matches(&self, key: &ResourceKey) -> bool {
        let group_ok = match self.group.as_deref() {
            None | Some("*") => true,
            Some(g) => g == key.group,
        };
        group_ok
            && (self.kind == "*" || self.kind == key.kind)
            && self.name.as_deref().is_none_or(|n| n.is_empty() || n == key.name)
            && self.namespace.as_deref().is_none_or(|n| n.is_empty() || n == key.namespace)
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum IgnoreError {
    #[error("jqPathExpression {expression:?} is invalid: {message}")]
    Jq { expression: String, message: String },
}

/// Removes from `target` every field the matching rules ignore. Fields owned by an ignored manager are
/// looked up in `live`'s managedFields (the predicted object is owned by berth after the dry run).
pub fn apply_ignore_rules(
    target: &mut serde_json::Value,
    live: &serde_json::Value,
    key: &ResourceKey,
    rules: &[IgnoreRule],
) -> Result<(), IgnoreError> {
    for rule in rules.iter().filter(|r| r.matches(key)) {
        for pointer in &rule.json_pointers {
            remove_pointer(target, pointer);
        }
        for expr in &rule.jq_path_expressions {
            *target = crate::jq::delete_paths(target, expr)
                .map_err(|message| IgnoreError::Jq { expression: expr.clone(), message })?;
        }
        if !rule.managed_fields_managers.is_empty() {
            for entry in live["metadata"]["managedFields"].as_array().into_iter().flatten() {
                let manager = entry["manager"].as_str().unwrap_or_default();
                if rule.managed_fields_managers.iter().any(|m| m == manager) {
                    crate::managed_fields::remove_fields(target, &entry["fieldsV1"]);
                }
            }
        }
    }
    Ok(())
}

/// RespectIgnoreDifferences=true: the fields the rules ignore keep their live values when `desired` is
/// applied (an ignored field absent from the live object is left out), so a sync does not undo them.
pub fn respect_ignored(
    desired: &mut serde_json::Value,
    live: &serde_json::Value,
    key: &ResourceKey,
    rules: &[IgnoreRule],
) -> Result<(), IgnoreError> {
    let mut d = desired.clone();
    apply_ignore_rules(&mut d, live, key, rules)?;
    let mut l = live.clone();
    apply_ignore_rules(&mut l, live, key, rules)?;
    let mut paths = differing_paths(desired, &d);
    paths.extend(differing_paths(live, &l));
    paths.sort();
    paths.dedup();
    for path in paths {
        match live.pointer(&path) {
            Some(value) => set_pointer(desired, &path, value.clone()),
            None => remove_pointer(desired, &path),
        }
    }
    Ok(())
}

/// Sets the value at a JSON pointer, creating objects on the way.
fn set_pointer(target: &mut serde_json::Value, pointer: &str, value: serde_json::Value) {
    let tokens: Vec<String> =
        pointer.split('/').skip(1).map(|t| t.replace("~1", "/").replace("~0", "~")).collect();
    let Some((last, parents)) = tokens.split_last() else { return };
    let mut node = target;
    for t in parents {
        node = match node {
            serde_json::Value::Array(items) => match t.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                Some(n) => n,
                None => return,
            },
            other => {
                if !other.is_object() {
                    *other = serde_json::json!({});
                }
                other.as_object_mut().expect("an object").entry(t.clone()).or_insert(serde_json::json!({}))
            }
        };
    }
    match node {
        serde_json::Value::Array(items) => {
            if let Some(slot) = last.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                *slot = value;
            }
        }
        serde_json::Value::Object(map) => {
            map.insert(last.clone(), value);
        }
        _ => {}
    }
}

/// Removes the value at an RFC 6901 JSON pointer, if present.
pub fn remove_pointer(target: &mut serde_json::Value, pointer: &str) {
    let tokens: Vec<String> =
        pointer.split('/').skip(1).map(|t| t.replace("~1", "/").replace("~0", "~")).collect();
    let Some((last, parents)) = tokens.split_last() else { return };
    let mut node = target;
    for t in parents {
        node = match node {
            serde_json::Value::Object(m) => match m.get_mut(t) {
                Some(n) => n,
                None => return,
            },
            serde_json::Value::Array(a) => match t.parse::<usize>().ok().and_then(|i| a.get_mut(i)) {
                Some(n) => n,
                None => return,
            },
            _ => return,
        };
    }
    match node {
        serde_json::Value::Object(m) => {
            m.remove(last);
        }
        serde_json::Value::Array(a) => {
            if let Ok(i) = last.parse::<usize>()
                && i < a.len()
            {
                a.remove(i);
            }
        }
        _ => {}
    }
}

/// Replaces Secret values with `+` runs (the same run where both sides agree, a different one where they
/// differ), so a diff shows that a value changed but never what it is.
pub fn mask_secret_pair(a: &mut serde_json::Value, b: &mut serde_json::Value) {
    if a["kind"] != "Secret" && b["kind"] != "Secret" {
        return;
    }
    for field in ["data", "stringData"] {
        let keys: std::collections::BTreeSet<String> =
            [&*a, &*b].iter().filter_map(|o| o[field].as_object()).flat_map(|m| m.keys().cloned()).collect();
        for k in keys {
            let same = a[field].get(&k) == b[field].get(&k);
            if let Some(v) = a[field].get_mut(&k) {
                *v = "++++++++".into();
            }
            if let Some(v) = b[field].get_mut(&k) {
                *v = if same { "++++++++" } else { "+++++++++" }.into();
            }
        }
    }
    for o in [a, b] {
        if let Some(ann) = o["metadata"]["annotations"].as_object_mut() {
            ann.remove("kubectl.kubernetes.io/last-applied-configuration");
        }
    }
}

/// Paths (JSON pointers) at which two normalized objects differ; empty when they are equal.
pub fn differing_paths(a: &serde_json::Value, b: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    walk_diff(a, b, String::new(), &mut out);
    out
}

fn walk_diff(a: &serde_json::Value, b: &serde_json::Value, path: String, out: &mut Vec<String>) {
    use serde_json::Value::{Array, Object};
    match (a, b) {
        (Object(x), Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let p = format!("{path}/{}", k.replace('~', "~0").replace('/', "~1"));
                match (x.get(k), y.get(k)) {
                    (Some(l), Some(r)) => walk_diff(l, r, p, out),
                    _ => out.push(p),
                }
            }
        }
        (Array(x), Array(y)) if x.len() == y.len() => {
            for (i, (l, r)) in x.iter().zip(y).enumerate() {
                walk_diff(l, r, format!("{path}/{i}"), out);
            }
        }
        _ if a == b => {}
        _ => out.push(if path.is_empty() { "/".into() } else { path }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key() -> ResourceKey {
        ResourceKey::new("apps", "Deployment", "web", "web")
    }

    #[test]
    fn server_fields_never_show_as_differences() {
        let mut live = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "uid": "u", "resourceVersion": "9", "generation": 3,
                         "creationTimestamp": "2026-01-01T00:00:00Z", "managedFields": [{}],
                         "annotations": {"deployment.kubernetes.io/revision": "2"}},
            "spec": {"replicas": 3}, "status": {"availableReplicas": 3}
        });
        let mut desired = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 3}});
        strip_server_fields(&mut live);
        strip_server_fields(&mut desired);
        assert!(differing_paths(&desired, &live).is_empty(), "{:?}", differing_paths(&desired, &live));
    }

    #[test]
    fn json_pointer_rules_remove_the_field_on_matching_objects_only() {
        let rule = IgnoreRule {
            group: Some("apps".into()),
            kind: "Deployment".into(),
            json_pointers: vec!["/spec/replicas".into()],
            ..Default::default()
        };
        let mut obj = json!({"spec": {"replicas": 5, "paused": false}});
        apply_ignore_rules(&mut obj, &json!({}), &key(), std::slice::from_ref(&rule)).unwrap();
        assert_eq!(obj, json!({"spec": {"paused": false}}));
        let other = ResourceKey::new("", "ConfigMap", "web", "web");
        let mut cm = json!({"spec": {"replicas": 5}});
        apply_ignore_rules(&mut cm, &json!({}), &other, &[rule]).unwrap();
        assert_eq!(cm, json!({"spec": {"replicas": 5}}));
    }

    #[test]
    fn jq_path_expressions_delete_what_they_select() {
        let rule = IgnoreRule {
            kind: "*".into(),
            jq_path_expressions: vec![
                ".spec.template.spec.containers[] | select(.name == \"sidecar\")".into(),
            ],
            ..Default::default()
        };
        let mut obj =
            json!({"spec": {"template": {"spec": {"containers": [{"name": "web"}, {"name": "sidecar"}]}}}});
        apply_ignore_rules(&mut obj, &json!({}), &key(), &[rule]).unwrap();
        assert_eq!(obj, json!({"spec": {"template": {"spec": {"containers": [{"name": "web"}]}}}}));
    }

    #[test]
    fn an_invalid_jq_expression_is_an_error_naming_it() {
        let rule =
            IgnoreRule { kind: "*".into(), jq_path_expressions: vec![".spec[".into()], ..Default::default() };
        let err = apply_ignore_rules(&mut json!({}), &json!({}), &key(), &[rule]).unwrap_err();
        assert!(err.to_string().contains(".spec["), "{err}");
    }

    #[test]
    fn fields_owned_by_an_ignored_manager_are_removed() {
        let live = json!({"metadata": {"managedFields": [
            {"manager": "kube-controller-manager", "fieldsV1": {"f:spec": {"f:replicas": {}}}},
            {"manager": "berth", "fieldsV1": {"f:spec": {"f:template": {}}}}
        ]}});
        let rule = IgnoreRule {
            kind: "*".into(),
            managed_fields_managers: vec!["kube-controller-manager".into()],
            ..Default::default()
        };
        let mut obj = json!({"spec": {"replicas": 7, "template": {"x": 1}}});
        apply_ignore_rules(&mut obj, &live, &key(), &[rule]).unwrap();
        assert_eq!(obj, json!({"spec": {"template": {"x": 1}}}));
    }

    #[test]
    fn keyed_list_items_owned_by_a_manager_are_removed() {
        let live = json!({"metadata": {"managedFields": [
            {"manager": "injector", "fieldsV1": {"f:spec": {"f:containers": {"k:{\"name\":\"sidecar\"}": {".": {}, "f:image": {}}}}}}
        ]}});
        let rule = IgnoreRule {
            kind: "*".into(),
            managed_fields_managers: vec!["injector".into()],
            ..Default::default()
        };
        let mut obj = json!({"spec": {"containers": [{"name": "web", "image": "a"}, {"name": "sidecar", "image": "b"}]}});
        apply_ignore_rules(&mut obj, &live, &key(), &[rule]).unwrap();
        assert_eq!(
            obj,
            json!({"spec": {"containers": [{"name": "web", "image": "a"}, {"name": "sidecar"}]}})
        );
    }

    #[test]
    fn secret_values_are_masked_but_changes_stay_visible() {
        let mut a = json!({"kind": "Secret", "data": {"same": "c2VjcmV0", "changed": "b2xk"}});
        let mut b = json!({"kind": "Secret", "data": {"same": "c2VjcmV0", "changed": "bmV3"}});
        mask_secret_pair(&mut a, &mut b);
        let text = format!("{a}{b}");
        assert!(!text.contains("c2VjcmV0") && !text.contains("b2xk") && !text.contains("bmV3"), "{text}");
        assert_eq!(a["data"]["same"], b["data"]["same"]);
        assert_ne!(a["data"]["changed"], b["data"]["changed"]);
    }

    #[test]
    fn differing_paths_names_each_changed_field() {
        let a = json!({"spec": {"replicas": 3, "template": {"image": "a"}}, "x": [1, 2]});
        let b = json!({"spec": {"replicas": 4, "template": {"image": "a"}}, "x": [1, 2, 3]});
        assert_eq!(differing_paths(&a, &b), ["/spec/replicas", "/x"]);
    }

    #[test]
    fn respect_ignored_keeps_the_live_value_of_ignored_fields() {
        let key = ResourceKey::new("apps", "Deployment", "web", "web");
        let rules = vec![IgnoreRule {
            group: Some("apps".into()),
            kind: "Deployment".into(),
            json_pointers: vec!["/spec/replicas".into()],
            jq_path_expressions: vec![".spec.template.metadata.annotations".into()],
            ..Default::default()
        }];
        let mut desired = serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "spec": {"replicas": 3, "template": {"metadata": {"annotations": {"a": "git"}}, "spec": {"x": 1}}}});
        let live = serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "spec": {"replicas": 7, "template": {"metadata": {}, "spec": {"x": 0}}}});
        respect_ignored(&mut desired, &live, &key, &rules).unwrap();
        assert_eq!(desired["spec"]["replicas"], 7, "live value kept");
        assert!(
            desired["spec"]["template"]["metadata"].get("annotations").is_none(),
            "absent live: left out"
        );
        assert_eq!(desired["spec"]["template"]["spec"]["x"], 1, "other fields still from git");
    }
}

#[cfg(test)]
mod properties;
