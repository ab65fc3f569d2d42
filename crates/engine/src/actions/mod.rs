//! Resource actions, as Argo CD offers them on a live object: which actions an object has now (each enabled
//! or not, with its parameters), and what running one changes. Built-in actions are native Rust
//! (`builtin`: restart, pause, resume and scale of workloads, create-job, suspend and resume of CronJobs;
//! `rollout`: restart, pause, resume, abort, retry, promote-full and skip-current-step of Argo Rollouts);
//! argocd-cm `resource.customizations.actions.<group>_<kind>` adds Lua ones (`lua`: a `discovery.lua` that
//! answers the actions, and an `action.lua` for each that answers the changed object, or a list of
//! `{operation = "patch"|"create", resource = ...}`). A custom discovery replaces the built-in one unless it
//! sets `mergeBuiltinActions`.
//!
//! Whatever an action answers is checked here, once for both kinds: a patch must be the very object it ran
//! on (same apiVersion, kind, namespace, name and uid), a created object must be namespaced in that
//! object's namespace. Who may run what, and whether a project permits a created object, is the caller's.
//!
//! ```
//! use berth_engine::actions::{Impact, ResourceActions};
//! let deployment = serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment",
//!     "metadata": {"name": "web", "namespace": "shop"}, "spec": {"replicas": 2, "template": {}}});
//! let actions = ResourceActions::default();
//! let names: Vec<String> = actions.discover(&deployment).unwrap().into_iter().map(|a| a.name).collect();
//! assert_eq!(names, ["pause", "restart", "resume", "scale"]);
//! let now = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
//! let changes = actions.run(&deployment, "restart", &[], now).unwrap();
//! let [Impact::Patch(patched)] = changes.as_slice() else { panic!("restart patches the Deployment") };
//! assert_eq!(
//!     patched["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"],
//!     "2023-11-14T22:13:20Z"
//! );
//! ```

mod builtin;
mod lua;
mod rollout;
#[cfg(test)]
mod tests;

pub use builtin::RESTARTED_AT_ANNOTATION;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::SystemTime;

/// argocd-cm's per-kind key: `resource.customizations.actions.<group>_<kind>` (`<kind>` for the core group).
pub const ACTIONS_KEY_PREFIX: &str = "resource.customizations.actions.";
/// argocd-cm's older map from `<group>/<kind>` to customizations, whose `actions` field holds the same YAML.
const CUSTOMIZATIONS_KEY: &str = "resource.customizations";

/// One action an object offers, as Argo CD's `ResourceAction`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceAction {
    #[serde(default)]
    pub name: String,
    /// The parameters the action takes, each with its default.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<ActionParam>,
    /// Offered but not runnable in the object's present state (pause on a paused Deployment).
    #[serde(default)]
    pub disabled: bool,
    /// A Font Awesome class for the UI.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub icon_class: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub display_name: String,
}

/// A parameter of an action: what discovery offers (`name`, `default`) or what a run passes (`name`, `value`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionParam {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub value: String,
    #[serde(default, rename = "type", skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub default: String,
}

/// One kind's custom actions, the YAML of `resource.customizations.actions.<group>_<kind>`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct ActionConfig {
    /// The script that answers the actions, by name: `{restart = {}, pause = {disabled = true}}`.
    #[serde(rename = "discovery.lua", default)]
    pub discovery_lua: String,
    #[serde(default)]
    pub definitions: Vec<ActionDefinition>,
    /// Offer the built-in actions too (the custom ones win a name both have).
    #[serde(rename = "mergeBuiltinActions", default)]
    pub merge_builtin_actions: bool,
}

/// One custom action's script.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct ActionDefinition {
    pub name: String,
    #[serde(rename = "action.lua", default)]
    pub action_lua: String,
}

/// What running an action changes.
#[derive(Clone, Debug, PartialEq)]
pub enum Impact {
    /// The object the action ran on, as it should be (to be patched from the live one, see [`merge_patch`]).
    Patch(Value),
    /// A new object, namespaced in the namespace of the object the action ran on.
    Create(Value),
}

/// Why an action could not be listed or run.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ActionError {
    #[error("action {action:?} is not available on {kind} {name}")]
    NotAvailable { action: String, kind: String, name: String },
    #[error("action {action:?} is disabled on {kind} {name} in its present state")]
    Disabled { action: String, kind: String, name: String },
    /// A discovery or action script failed, or a built-in action refused its parameters.
    #[error("action {action:?}: {message}")]
    Failed { action: String, message: String },
    /// The action answered something berth will not apply: another object, an unknown operation.
    #[error("action {action:?} is refused: {message}")]
    Refused { action: String, message: String },
    #[error("action discovery for {kind}: {message}")]
    Discovery { kind: String, message: String },
}

/// The custom actions of argocd-cm by Argo CD's override key (`<group>/<kind>`, `<kind>` for the core group),
/// over the built-in ones.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ResourceActions {
    custom: BTreeMap<String, ActionConfig>,
}

impl ResourceActions {
    /// Reads argocd-cm's `resource.customizations.actions.<group>_<kind>` keys and the `actions` of the
    /// `resource.customizations` map (the split keys win). `parse_yaml` reads one YAML text (the caller's
    /// YAML reader, with its limits; the second argument names the key for its errors). A value that does
    /// not parse, a key that names no kind and a script that does not compile are warnings; the kind's
    /// other scripts stay.
    pub fn from_argocd_cm(
        data: &BTreeMap<String, String>,
        parse_yaml: &dyn Fn(&str, &str) -> Result<Value, String>,
        warnings: &mut Vec<String>,
    ) -> ResourceActions {
        let mut texts: BTreeMap<String, (String, String)> = BTreeMap::new();
        if let Some(blob) = data.get(CUSTOMIZATIONS_KEY) {
            match parse_yaml(blob, CUSTOMIZATIONS_KEY) {
                Ok(Value::Object(map)) => {
                    for (key, entry) in map {
                        if let Some(actions) = entry.get("actions").and_then(Value::as_str) {
                            let source = format!("{CUSTOMIZATIONS_KEY} {key}");
                            texts.insert(key, (source, actions.to_string()));
                        }
                    }
                }
                Ok(Value::Null) => {}
                Ok(_) => warnings.push(format!("argocd-cm {CUSTOMIZATIONS_KEY}: not a map")),
                Err(e) => warnings.push(format!("argocd-cm {CUSTOMIZATIONS_KEY}: {e}")),
            }
        }
        for (key, text) in data {
            let Some(group_kind) = key.strip_prefix(ACTIONS_KEY_PREFIX) else { continue };
            match override_key(group_kind) {
                Some(override_key) => {
                    texts.insert(override_key, (key.clone(), text.clone()));
                }
                None => warnings.push(format!(
                    "argocd-cm {key}: the key should end in <group>_<kind>, or <kind> for the core group"
                )),
            }
        }
        let mut actions = ResourceActions::default();
        for (override_key, (source, text)) in texts {
            let config = parse_yaml(&text, &source).and_then(|v| {
                serde_json::from_value::<ActionConfig>(v)
                    .map_err(|e| format!("not an actions customization: {e}"))
            });
            match config {
                Ok(config) => {
                    for problem in actions.insert(&override_key, config) {
                        warnings.push(format!("argocd-cm {source}: {problem}"));
                    }
                }
                Err(e) => warnings.push(format!("argocd-cm {source}: {e}")),
            }
        }
        actions
    }

    /// Sets the custom actions of `key` (`<group>/<kind>`, `<kind>` for the core group); answers the
    /// problems of its scripts (each kept, so running it reports the same error).
    pub fn insert(&mut self, key: &str, config: ActionConfig) -> Vec<String> {
        let mut problems = Vec::new();
        if !config.discovery_lua.trim().is_empty()
            && let Err(e) = lua::check_syntax(&config.discovery_lua, "discovery.lua")
        {
            problems.push(e);
        }
        for definition in &config.definitions {
            if let Err(e) = lua::check_syntax(&definition.action_lua, "action.lua") {
                problems.push(format!("action {:?}: {e}", definition.name));
            }
        }
        self.custom.insert(key.to_string(), config);
        problems
    }

    pub fn is_empty(&self) -> bool {
        self.custom.is_empty()
    }

    /// The actions `live` offers now, by name: the custom discovery's, then (without a custom one, or
    /// with `mergeBuiltinActions`) the built-in ones whose names it does not have.
    pub fn discover(&self, live: &Value) -> Result<Vec<ResourceAction>, ActionError> {
        let kind = kind_label(live);
        let custom = self.custom_for(live);
        let mut found: BTreeMap<String, ResourceAction> = BTreeMap::new();
        if let Some(config) = custom.filter(|c| !c.discovery_lua.trim().is_empty()) {
            let listed = lua::discover(&config.discovery_lua, live)
                .map_err(|message| ActionError::Discovery { kind: kind.clone(), message })?;
            for action in listed {
                found.entry(action.name.clone()).or_insert(action);
            }
        }
        if custom.is_none_or(|c| c.merge_builtin_actions) {
            for action in builtin::discover(live) {
                found.entry(action.name.clone()).or_insert(action);
            }
        }
        Ok(found.into_values().collect())
    }

    /// Runs `action` on `live` with `params` (`now` stamps a restart): the changes to make, checked. The
    /// action must be one [`ResourceActions::discover`] offers now, and enabled.
    pub fn run(
        &self,
        live: &Value,
        action: &str,
        params: &[ActionParam],
        now: SystemTime,
    ) -> Result<Vec<Impact>, ActionError> {
        let name = live["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let kind = kind_label(live);
        let offered = self.discover(live)?.into_iter().find(|a| a.name == action);
        match offered {
            None => return Err(ActionError::NotAvailable { action: action.into(), kind, name }),
            Some(a) if a.disabled => return Err(ActionError::Disabled { action: action.into(), kind, name }),
            Some(_) => {}
        }
        let failed = |message: String| ActionError::Failed { action: action.to_string(), message };
        let script = self
            .custom_for(live)
            .and_then(|c| c.definitions.iter().find(|d| d.name == action))
            .map(|d| d.action_lua.as_str());
        let impacts = match script {
            Some(script) => lua::run(script, live, params).map_err(failed)?,
            None => match builtin::run(live, action, params, now) {
                Some(result) => result.map_err(failed)?,
                None => {
                    return Err(failed("discovery offers it but no definition says what it does".into()));
                }
            },
        };
        impacts
            .into_iter()
            .map(|impact| checked(live, impact))
            .collect::<Result<_, String>>()
            .map_err(|message| ActionError::Refused { action: action.to_string(), message })
    }

    fn custom_for(&self, live: &Value) -> Option<&ActionConfig> {
        let (group, _) =
            live["apiVersion"].as_str().map(crate::resource::split_api_version).unwrap_or_default();
        let kind = live["kind"].as_str().unwrap_or_default();
        let key = if group.is_empty() { kind.to_string() } else { format!("{group}/{kind}") };
        self.custom.get(&key)
    }
}

/// `apps_Deployment` → `apps/Deployment`; `ConfigMap` (or `_ConfigMap`) → `ConfigMap`, the core group.
fn override_key(group_kind: &str) -> Option<String> {
    match group_kind.split('_').collect::<Vec<_>>().as_slice() {
        [kind] | ["", kind] if !kind.is_empty() => Some(kind.to_string()),
        [group, kind] if !kind.is_empty() => Some(format!("{group}/{kind}")),
        _ => None,
    }
}

/// `Deployment.apps` (`ConfigMap` for the core group), for messages.
fn kind_label(obj: &Value) -> String {
    let (group, _) = obj["apiVersion"].as_str().map(crate::resource::split_api_version).unwrap_or_default();
    let kind = obj["kind"].as_str().unwrap_or_default();
    if group.is_empty() { kind.to_string() } else { format!("{kind}.{group}") }
}

/// An impact as berth applies it: a patch only of `live` itself; a created object namespaced in `live`'s
/// namespace (filled in when the action left it out).
fn checked(live: &Value, impact: Impact) -> Result<Impact, String> {
    match impact {
        Impact::Patch(object) => {
            for (field, pointer) in [
                ("apiVersion", "/apiVersion"),
                ("kind", "/kind"),
                ("namespace", "/metadata/namespace"),
                ("name", "/metadata/name"),
            ] {
                let (was, is) = (live.pointer(pointer), object.pointer(pointer));
                if was != is {
                    return Err(format!(
                        "it patches another object: {field} {} instead of {}",
                        shown(is),
                        shown(was)
                    ));
                }
            }
            let uid = object.pointer("/metadata/uid");
            if uid.is_some() && uid != live.pointer("/metadata/uid") {
                return Err(format!("it patches another object: uid {}", shown(uid)));
            }
            Ok(Impact::Patch(object))
        }
        Impact::Create(mut object) => {
            let namespace = live["metadata"]["namespace"].as_str().unwrap_or_default();
            if namespace.is_empty() {
                return Err("it creates an object, but only namespaced objects may create one".into());
            }
            let api_version = object["apiVersion"].as_str().unwrap_or_default().to_string();
            let kind = object["kind"].as_str().unwrap_or_default().to_string();
            let name = object["metadata"]["name"].as_str().unwrap_or_default().to_string();
            if api_version.is_empty() || kind.is_empty() || name.is_empty() {
                return Err("a created object needs apiVersion, kind and metadata.name".into());
            }
            let Some(meta) = object["metadata"].as_object_mut() else {
                return Err("a created object's metadata is not a map".into());
            };
            match meta.get("namespace") {
                None | Some(Value::Null) => {
                    meta.insert("namespace".into(), namespace.into());
                }
                Some(other) if other != namespace => {
                    return Err(format!(
                        "it creates {kind} {name} in namespace {}, outside {namespace}",
                        shown(Some(other))
                    ));
                }
                Some(_) => {}
            }
            Ok(Impact::Create(object))
        }
    }
}

fn shown(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "(none)".into(),
        Some(Value::String(s)) => format!("{s:?}"),
        Some(other) => other.to_string(),
    }
}

/// The JSON merge patch (RFC 7386) that turns `from` into `to`: changed fields, removed ones as `null`,
/// arrays whole. `{}` when they are equal.
pub fn merge_patch(from: &Value, to: &Value) -> Value {
    match (from, to) {
        (Value::Object(before), Value::Object(after)) => {
            let mut patch = serde_json::Map::new();
            for (key, was) in before {
                match after.get(key) {
                    None => {
                        patch.insert(key.clone(), Value::Null);
                    }
                    Some(is) if is != was => {
                        let change = match (was, is) {
                            (Value::Object(_), Value::Object(_)) => merge_patch(was, is),
                            // `null` in a merge patch removes: a field set to null stays removed too.
                            _ => is.clone(),
                        };
                        patch.insert(key.clone(), change);
                    }
                    Some(_) => {}
                }
            }
            for (key, is) in after {
                if !before.contains_key(key) {
                    patch.insert(key.clone(), is.clone());
                }
            }
            Value::Object(patch)
        }
        _ => to.clone(),
    }
}

/// Argo CD's repair of an answered object against the live one: Lua cannot tell an empty map from an empty
/// list, so where the live object has a map and the answer an empty list, the map is kept; lists are
/// walked item by item.
fn restore_empty_maps(answer: &mut Value, live: &Value) {
    match (answer, live) {
        (Value::Object(fields), Value::Object(was)) => {
            for (key, value) in fields.iter_mut() {
                let Some(old) = was.get(key) else { continue };
                match (&*value, old) {
                    (Value::Array(items), Value::Object(_)) if items.is_empty() => *value = old.clone(),
                    _ => restore_empty_maps(value, old),
                }
            }
        }
        (Value::Array(items), Value::Array(was)) => {
            for (item, old) in items.iter_mut().zip(was) {
                restore_empty_maps(item, old);
            }
        }
        _ => {}
    }
}
