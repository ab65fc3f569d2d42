//! Field ownership (`metadata.managedFields`, `fieldsV1` sets) and the move from client-side to
//! server-side apply.
//!
//! An object Argo CD wrote with client-side apply (its default) is owned by an `Update` entry, for
//! `argocd-controller`, or `kubectl-client-side-apply` when a person ran `kubectl apply`. Server-side
//! apply never takes fields away from another entry, so a field removed from git would stay in the
//! cluster for ever while the app looked Synced. berth does what kubectl does when it moves an object to
//! server-side apply: the `Update` entries' fields join berth's `Apply` entry, and the next apply removes
//! what git no longer has. Until then compare removes those fields from the dry run's prediction, so the
//! app is OutOfSync and the diff shows them going.
//!
//! ```
//! use berth_engine::managed_fields::{leftovers, ClientSideManagers};
//! let predicted = serde_json::json!({"metadata": {"labels": {"stale": "x"}, "managedFields": [
//!     {"manager": "argocd-controller", "operation": "Update",
//!      "fieldsV1": {"f:metadata": {"f:labels": {"f:stale": {}}}}}]}});
//! let left = leftovers(&predicted, &ClientSideManagers::default());
//! assert_eq!(left, serde_json::json!({"f:metadata": {"f:labels": {"f:stale": {}}}}));
//! ```

use serde_json::{Map, Value};

/// The manager `kubectl apply` (client-side) writes with; Argo CD migrates it by default.
pub const KUBECTL_CLIENT_SIDE_APPLY: &str = "kubectl-client-side-apply";

/// kubectl's record of the last client-side apply: owned by the client-side entry, never in git, and
/// not a reason to call an object OutOfSync.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The `Update` managers whose fields berth's server-side apply takes over. berth's own manager
/// (`argocd-controller`, also what Argo CD writes with client-side apply) is always one of them;
/// Argo CD's `ClientSideApplyMigration=false` leaves out the others, and the Application's
/// `argocd.argoproj.io/client-side-apply-migration-manager` annotation names another in place of
/// `kubectl-client-side-apply`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientSideManagers(Vec<String>);

impl Default for ClientSideManagers {
    fn default() -> Self {
        ClientSideManagers(vec![crate::apply::FIELD_MANAGER.into(), KUBECTL_CLIENT_SIDE_APPLY.into()])
    }
}

impl ClientSideManagers {
    /// The managers for an Application: `migration` is false with `ClientSideApplyMigration=false`,
    /// `custom` the migration-manager annotation's value.
    pub fn for_app(migration: bool, custom: Option<&str>) -> Self {
        let mut managers = vec![crate::apply::FIELD_MANAGER.to_string()];
        if migration {
            let other = custom.map(str::trim).filter(|m| !m.is_empty()).unwrap_or(KUBECTL_CLIENT_SIDE_APPLY);
            if other != crate::apply::FIELD_MANAGER {
                managers.push(other.to_string());
            }
        }
        ClientSideManagers(managers)
    }

    fn contains(&self, manager: &str) -> bool {
        self.0.iter().any(|m| m == manager)
    }

    /// Whether a managedFields entry is one of these managers' client-side (`Update`) entries.
    fn owns(&self, entry: &Value) -> bool {
        entry["operation"] == "Update"
            && entry["subresource"].as_str().is_none_or(str::is_empty)
            && self.contains(entry["manager"].as_str().unwrap_or_default())
    }
}

/// The fields of `obj` (an object as the server returned it, with managedFields) that only the
/// client-side entries own: what a server-side apply cannot remove until the ownership moves, as a
/// `fieldsV1` set (empty when there are none). The last-applied annotation is not counted.
pub fn leftovers(obj: &Value, managers: &ClientSideManagers) -> Value {
    let entries = obj["metadata"]["managedFields"].as_array().map(Vec::as_slice).unwrap_or_default();
    let mut client_side = Map::new();
    let mut kept = Map::new();
    for entry in entries {
        let Some(fields) = entry["fieldsV1"].as_object() else { continue };
        if managers.owns(entry) {
            union_into(&mut client_side, fields);
        } else {
            union_into(&mut kept, fields);
        }
    }
    if let Some(metadata) = client_side.get_mut("f:metadata").and_then(Value::as_object_mut)
        && let Some(annotations) = metadata.get_mut("f:annotations").and_then(Value::as_object_mut)
    {
        annotations.remove(&format!("f:{LAST_APPLIED}"));
        // Owning the map itself (".") with no key left is no reason to remove the map.
        if annotations.keys().all(|k| k == ".") {
            metadata.remove("f:annotations");
        }
    }
    Value::Object(only_in(&client_side, Some(&kept)))
}

/// Whether a `fieldsV1` set names no field.
pub fn is_empty(set: &Value) -> bool {
    set.as_object().is_none_or(Map::is_empty)
}

/// The managedFields after the move: the client-side entries' fields joined to `manager`'s `Apply`
/// entry (made when there is none) and those entries removed; `None` when there is nothing to move.
pub fn migrate(obj: &Value, managers: &ClientSideManagers, manager: &str) -> Option<Vec<Value>> {
    let entries = obj["metadata"]["managedFields"].as_array()?;
    if !entries.iter().any(|e| managers.owns(e)) {
        return None;
    }
    let mut moved = Map::new();
    let mut api_version = None;
    let mut out = Vec::with_capacity(entries.len());
    for entry in entries {
        if managers.owns(entry) {
            if let Some(fields) = entry["fieldsV1"].as_object() {
                union_into(&mut moved, fields);
            }
            api_version = api_version.or_else(|| entry["apiVersion"].as_str().map(str::to_string));
        } else {
            out.push(entry.clone());
        }
    }
    let apply = out.iter_mut().find(|e| {
        e["manager"] == manager
            && e["operation"] == "Apply"
            && e["subresource"].as_str().is_none_or(str::is_empty)
    });
    match apply {
        Some(entry) => {
            let mut fields = entry["fieldsV1"].as_object().cloned().unwrap_or_default();
            union_into(&mut fields, &moved);
            entry["fieldsV1"] = Value::Object(fields);
        }
        None => out.push(serde_json::json!({
            "manager": manager,
            "operation": "Apply",
            "apiVersion": api_version.or_else(|| obj["apiVersion"].as_str().map(str::to_string)),
            "fieldsType": "FieldsV1",
            "fieldsV1": moved,
        })),
    }
    Some(out)
}

/// Adds every path of `from` to `into`.
fn union_into(into: &mut Map<String, Value>, from: &Map<String, Value>) {
    for (selector, children) in from {
        let slot = into.entry(selector.clone()).or_insert_with(|| Value::Object(Map::new()));
        if let (Some(slot), Some(children)) = (slot.as_object_mut(), children.as_object()) {
            union_into(slot, children);
        }
    }
}

/// The part of `set` that `kept` does not reach, down to its leaves: a field `kept` does not own goes, a
/// list item (`k:`, `v:`, `i:`) `kept` does not have at all goes whole, and a struct or map is entered, so
/// what nobody owns in it (server defaults, `metadata.name`) stays.
fn only_in(set: &Map<String, Value>, kept: Option<&Map<String, Value>>) -> Map<String, Value> {
    let mut out = Map::new();
    for (selector, children) in set {
        if selector == "." {
            continue;
        }
        let kept_children = kept.and_then(|k| k.get(selector)).and_then(Value::as_object);
        let children = children.as_object().filter(|c| !c.is_empty());
        let item = !selector.starts_with("f:");
        match (children, kept_children) {
            (None, Some(_)) => {}
            (None, None) => {
                out.insert(selector.clone(), Value::Object(Map::new()));
            }
            (Some(_), None) if item => {
                out.insert(selector.clone(), Value::Object(Map::new()));
            }
            (Some(children), kept_children) => {
                let below = only_in(children, kept_children);
                if !below.is_empty() {
                    out.insert(selector.clone(), Value::Object(below));
                }
            }
        }
    }
    out
}

/// Removes from `target` the fields a `fieldsV1` set names: `f:` fields, `k:` keyed list items, `v:`
/// set values. A node with no children (or only `.`) goes whole.
pub fn remove_fields(target: &mut Value, fields: &Value) {
    let Some(set) = fields.as_object() else { return };
    for (selector, children) in set {
        if selector == "." {
            continue;
        }
        let is_leaf =
            children.as_object().is_none_or(|c| c.is_empty() || (c.len() == 1 && c.contains_key(".")));
        if let Some(field) = selector.strip_prefix("f:") {
            if let Some(map) = target.as_object_mut() {
                if is_leaf {
                    map.remove(field);
                } else if let Some(child) = map.get_mut(field) {
                    remove_fields(child, children);
                }
            }
        } else if let Some(item_key) = selector.strip_prefix("k:") {
            let Ok(wanted) = serde_json::from_str::<Map<String, Value>>(item_key) else { continue };
            if let Some(items) = target.as_array_mut() {
                let matches = |item: &Value| wanted.iter().all(|(k, v)| item.get(k).is_some_and(|x| x == v));
                if is_leaf {
                    items.retain(|i| !matches(i));
                } else if let Some(item) = items.iter_mut().find(|i| matches(i)) {
                    remove_fields(item, children);
                }
            }
        } else if let Some(value) = selector.strip_prefix("v:")
            && let (Ok(v), Some(items)) = (serde_json::from_str::<Value>(value), target.as_array_mut())
        {
            items.retain(|i| i != &v);
        } else if let Some(index) = selector.strip_prefix("i:")
            && let (Ok(i), Some(items)) = (index.parse::<usize>(), target.as_array_mut())
            && i < items.len()
        {
            if is_leaf {
                items.remove(i);
            } else {
                remove_fields(&mut items[i], children);
            }
        }
    }
}

#[cfg(test)]
mod tests;
