//! What to do with the Applications a set generated: create, update, delete or leave them, by the set's
//! `syncPolicy.applicationsSync` policy, refusing names another owner holds.
//!
//! Pure: the caller reads the set and the Applications of its namespace, calls [`plan`], and performs the
//! writes. The rules are Argo CD's ApplicationSet controller's:
//!
//! - An Application the set owns (a controller owner reference with the set's uid) and still generates is
//!   updated in place when the policy allows updates: the spec, labels, annotations and finalizers become
//!   the generated ones, except the annotations and labels Argo CD preserves (notifications state, the
//!   refresh and hydrate requests, `spec.preservedFields`), the pre- and post-delete finalizers in
//!   progress, and the fields `spec.ignoreApplicationDifferences` names, which keep the existing values.
//!   Status and operation are kept (a generated Application carries neither). Nothing is written when
//!   nothing changes. Every Application is the set's namespace's, whatever the template says.
//! - An owned Application the set no longer generates is deleted when the policy allows deletes.
//! - A generated name held by an Application the set does not own (made by hand, or by another set) is a
//!   [`Conflict`]: it is never overwritten. (Argo CD adopts an unowned Application; berth refuses.)
//!
//! ```
//! use berth_controller::appset::plan::{Policy, plan};
//! let set: berth_api::ApplicationSet = serde_json::from_value(serde_json::json!({
//!     "metadata": { "name": "web", "namespace": "argocd", "uid": "u1" },
//!     "spec": { "generators": [], "template": { "spec": { "destination": {} } } }
//! })).unwrap();
//! let app: berth_api::Application = serde_json::from_value(serde_json::json!({
//!     "metadata": { "name": "web-prod" }, "spec": { "project": "default", "destination": {} }
//! })).unwrap();
//! let planned = plan(&set, vec![app], &[], Policy::Sync).unwrap();
//! assert_eq!(planned.create[0].metadata.namespace.as_deref(), Some("argocd"));
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use berth_api::{Application, ApplicationSet, GROUP, VERSION, annotations, finalizers};
use berth_engine::normalize::{IgnoreRule, respect_ignored};
use berth_engine::resource::ResourceKey;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

/// Annotations an update never overwrites nor removes: state other controllers keep on the Application.
pub(crate) const ALWAYS_PRESERVED_ANNOTATIONS: [&str; 3] =
    [annotations::NOTIFIED, annotations::REFRESH, annotations::HYDRATE];

/// Finalizers an update keeps (matched as prefixes, their stages follow a `/`): dropping one while its
/// hooks run would let the Application go before they finish.
const PRESERVED_FINALIZER_PREFIXES: [&str; 2] = [finalizers::PRE_DELETE, finalizers::POST_DELETE];

/// Field of the set naming its own policy, for error messages.
const POLICY_FIELD: &str = "spec.syncPolicy.applicationsSync";

/// Key of argocd-cmd-params-cm naming the controller-wide policy, for error messages.
pub const CONTROLLER_POLICY_KEY: &str = "applicationsetcontroller.policy";

/// Which changes the controller may make to the Applications a set owns; creating is always allowed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Policy {
    /// Create, update and delete (the default).
    #[default]
    Sync,
    /// Create only: existing Applications are never modified nor deleted.
    CreateOnly,
    /// Create and update, never delete.
    CreateUpdate,
    /// Create and delete, never update.
    CreateDelete,
}

impl Policy {
    /// The policy a `--policy` / `applicationsSync` value names (`sync`, `create-only`, `create-update`,
    /// `create-delete`); `None` for anything else.
    pub fn parse(value: &str) -> Option<Policy> {
        match value {
            "sync" => Some(Policy::Sync),
            "create-only" => Some(Policy::CreateOnly),
            "create-update" => Some(Policy::CreateUpdate),
            "create-delete" => Some(Policy::CreateDelete),
            _ => None,
        }
    }

    /// The value as written in a set or in argocd-cmd-params-cm.
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Sync => "sync",
            Policy::CreateOnly => "create-only",
            Policy::CreateUpdate => "create-update",
            Policy::CreateDelete => "create-delete",
        }
    }

    /// Whether owned Applications may be updated to what the set generates now.
    pub fn allows_update(self) -> bool {
        matches!(self, Policy::Sync | Policy::CreateUpdate)
    }

    /// Whether owned Applications the set no longer generates may be deleted.
    pub fn allows_delete(self) -> bool {
        matches!(self, Policy::Sync | Policy::CreateDelete)
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The policy that applies to `set`.
///
/// `controller_policy` is argocd-cmd-params-cm's `applicationsetcontroller.policy` (unset or empty: `sync`);
/// `allow_override` its `applicationsetcontroller.enable.policy.override`, whose default is
/// [`override_allowed_by_default`]. A set's own `spec.syncPolicy.applicationsSync` wins only when overrides
/// are allowed: an administrator who pins a policy is not overruled by the sets' authors. An unknown value
/// is an error naming its field; the set's field is read (and checked) only when it can apply.
pub fn effective_policy(
    set: &ApplicationSet,
    controller_policy: Option<&str>,
    allow_override: bool,
) -> Result<Policy, String> {
    let controller = match controller_policy.map(str::trim).filter(|p| !p.is_empty()) {
        None => Policy::Sync,
        Some(p) => Policy::parse(p).ok_or_else(|| unknown_policy(CONTROLLER_POLICY_KEY, p))?,
    };
    if !allow_override {
        return Ok(controller);
    }
    let own = set.spec.sync_policy.as_ref().and_then(|p| p.applications_sync.as_deref());
    match own.map(str::trim).filter(|p| !p.is_empty()) {
        None => Ok(controller),
        Some(p) => Policy::parse(p).ok_or_else(|| unknown_policy(POLICY_FIELD, p)),
    }
}

/// Argo CD's default for `applicationsetcontroller.enable.policy.override`: sets may choose their own
/// policy unless the controller's is set explicitly.
pub fn override_allowed_by_default(controller_policy: Option<&str>) -> bool {
    controller_policy.is_none_or(|p| p.trim().is_empty())
}

fn unknown_policy(field: &str, value: &str) -> String {
    format!("{field}: unknown policy {value:?}; one of sync, create-only, create-update, create-delete")
}

/// The controller owner reference every Application of `set` carries: the garbage collector deletes the
/// Applications with their set, and [`is_owned_by`] tells the set's Applications from others.
pub fn owner_reference(set: &ApplicationSet) -> OwnerReference {
    OwnerReference {
        api_version: format!("{GROUP}/{VERSION}"),
        kind: "ApplicationSet".to_string(),
        name: set.metadata.name.clone().unwrap_or_default(),
        uid: set.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Whether `set` controls `app`: a controller owner reference with the set's uid (as Kubernetes'
/// `IsControlledBy`). A set without a uid (not yet stored) owns nothing.
pub fn is_owned_by(app: &Application, set: &ApplicationSet) -> bool {
    let Some(uid) = set.metadata.uid.as_deref().filter(|u| !u.is_empty()) else { return false };
    controller_of(app).is_some_and(|r| r.uid == uid)
}

/// The owner reference that controls `app`, if any.
fn controller_of(app: &Application) -> Option<&OwnerReference> {
    app.metadata.owner_references.iter().flatten().find(|r| r.controller == Some(true))
}

/// A generated Application whose name another owner holds; the set's status reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// The Application's name.
    pub name: String,
    /// The controller that owns it (`ApplicationSet/other`), or `None` for one made by hand.
    pub owner: Option<String>,
    /// Why it is left alone, for an `ErrorOccurred` condition.
    pub message: String,
}

/// What the controller should write for a set; applying it and planning again yields no writes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// Applications to create: the generated ones with the set's owner reference and a namespace.
    pub create: Vec<Application>,
    /// Applications to replace (PUT): the existing objects (resourceVersion, uid, status …) with what the
    /// set generates now.
    pub update: Vec<Application>,
    /// Names (in the set's namespace) of owned Applications no longer generated.
    pub delete: Vec<String>,
    /// Generated names held by Applications the set does not own.
    pub conflicts: Vec<Conflict>,
    /// Names of owned, generated Applications left as they are (equal, being deleted, or the policy
    /// forbids updates).
    pub unchanged: Vec<String>,
}

impl Plan {
    /// Whether the plan writes nothing.
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.update.is_empty() && self.delete.is_empty()
    }
}

/// Why a set cannot be planned; nothing of it should be written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// An `ignoreApplicationDifferences` entry cannot be used (the field names it).
    #[error("{field}: {message}")]
    IgnoreRule { field: String, message: String },
}

/// Plans the writes that bring `existing` (every Application in the set's namespace) to `generated` under
/// `policy`; see the module documentation for the rules.
pub fn plan(
    set: &ApplicationSet,
    generated: Vec<Application>,
    existing: &[Application],
    policy: Policy,
) -> Result<Plan, PlanError> {
    check_ignore_rules(set)?;
    let set_namespace = set.metadata.namespace.clone().unwrap_or_default();
    let by_name: HashMap<&str, &Application> =
        existing.iter().map(|a| (a.metadata.name.as_deref().unwrap_or(""), a)).collect();
    let mut wanted = BTreeSet::new();
    let mut out = Plan::default();
    for mut app in generated {
        // Always the set's own namespace, whatever the template or its patch says (as Argo CD does): an
        // owner reference cannot cross namespaces, and another namespace is another tenant's.
        app.metadata.namespace = Some(set_namespace.clone());
        let name = name_of(&app);
        wanted.insert(name.clone());
        match by_name.get(name.as_str()).copied() {
            None => {
                upsert_owner_reference(&mut app, owner_reference(set));
                out.create.push(normalized(app));
            }
            Some(current) if !is_owned_by(current, set) => out.conflicts.push(conflict(set, current)),
            Some(current) if !policy.allows_update() || current.metadata.deletion_timestamp.is_some() => {
                // A terminating Application takes no new finalizers; it is created again once gone.
                out.unchanged.push(name)
            }
            Some(current) => {
                let desired = updated(set, current, app)?;
                if desired == normalized(current.clone()) {
                    out.unchanged.push(name);
                } else {
                    out.update.push(desired);
                }
            }
        }
    }
    if policy.allows_delete() {
        out.delete = existing
            .iter()
            .filter(|a| is_owned_by(a, set) && a.metadata.deletion_timestamp.is_none())
            .map(name_of)
            .filter(|n| !wanted.contains(n))
            .collect();
    }
    Ok(out)
}

/// The conflict a generated name meets in an Application the set does not own.
fn conflict(set: &ApplicationSet, current: &Application) -> Conflict {
    let namespace = current.metadata.namespace.as_deref().unwrap_or_default();
    let name = name_of(current);
    match controller_of(current) {
        // controller-runtime's words, which Argo CD reports when another set holds the name.
        Some(owner) => Conflict {
            owner: Some(format!("{}/{}", owner.kind, owner.name)),
            message: format!(
                "Object {namespace}/{name} is already owned by another {} controller {}",
                owner.kind, owner.name
            ),
            name,
        },
        None => Conflict {
            owner: None,
            message: format!(
                "Application {namespace}/{name} already exists and is not managed by ApplicationSet {}; it is left unchanged",
                name_of_set(set)
            ),
            name,
        },
    }
}

/// The object to PUT for `current` so it matches `generated`, by Argo CD's rules (module documentation).
fn updated(
    set: &ApplicationSet,
    current: &Application,
    generated: Application,
) -> Result<Application, PlanError> {
    let mut desired = current.clone();
    desired.spec = generated.spec;
    let preserved = set.spec.preserved_fields.as_ref();
    desired.metadata.annotations = Some(keep_existing(
        generated.metadata.annotations.unwrap_or_default(),
        current.metadata.annotations.as_ref(),
        ALWAYS_PRESERVED_ANNOTATIONS
            .iter()
            .copied()
            .chain(preserved.into_iter().flat_map(|p| p.annotations.iter().map(String::as_str))),
    ));
    desired.metadata.labels = Some(keep_existing(
        generated.metadata.labels.unwrap_or_default(),
        current.metadata.labels.as_ref(),
        preserved.into_iter().flat_map(|p| p.labels.iter().map(String::as_str)),
    ));
    let mut finalizers = generated.metadata.finalizers.unwrap_or_default();
    for f in current.metadata.finalizers.iter().flatten() {
        if PRESERVED_FINALIZER_PREFIXES.iter().any(|p| f.starts_with(p)) && !finalizers.contains(f) {
            finalizers.push(f.clone());
        }
    }
    desired.metadata.finalizers = Some(finalizers);
    upsert_owner_reference(&mut desired, owner_reference(set));
    let desired = normalized(desired);
    ignore_differences(set, current, desired)
}

/// `generated` with the existing values of `keys` (those the existing object has).
fn keep_existing<'a>(
    mut generated: BTreeMap<String, String>,
    existing: Option<&BTreeMap<String, String>>,
    keys: impl Iterator<Item = &'a str>,
) -> BTreeMap<String, String> {
    let Some(existing) = existing else { return generated };
    for key in keys {
        if let Some(value) = existing.get(key) {
            generated.insert(key.to_string(), value.clone());
        }
    }
    generated
}

/// Sets `reference` on `app`, replacing a reference to the same object (group, kind and name), as
/// controller-runtime's `SetControllerReference` does.
fn upsert_owner_reference(app: &mut Application, reference: OwnerReference) {
    let group = |api_version: &str| api_version.split_once('/').map_or("", |(g, _)| g).to_string();
    let refs = app.metadata.owner_references.get_or_insert_with(Vec::new);
    let same = |r: &OwnerReference| {
        group(&r.api_version) == group(&reference.api_version)
            && r.kind == reference.kind
            && r.name == reference.name
    };
    match refs.iter_mut().find(|r| same(r)) {
        Some(slot) => *slot = reference,
        None => refs.push(reference),
    }
}

/// `app` with empty label, annotation, finalizer and owner reference lists absent, so an object the API
/// server stored without them compares equal.
fn normalized(mut app: Application) -> Application {
    let meta = &mut app.metadata;
    if meta.labels.as_ref().is_some_and(BTreeMap::is_empty) {
        meta.labels = None;
    }
    if meta.annotations.as_ref().is_some_and(BTreeMap::is_empty) {
        meta.annotations = None;
    }
    if meta.finalizers.as_ref().is_some_and(Vec::is_empty) {
        meta.finalizers = None;
    }
    if meta.owner_references.as_ref().is_some_and(Vec::is_empty) {
        meta.owner_references = None;
    }
    app
}

/// The set's `ignoreApplicationDifferences` entries that apply to the Application `name`, one engine rule
/// per expression (so one that fails on this Application does not void the others).
fn ignore_rules_for(set: &ApplicationSet, name: &str) -> Vec<IgnoreRule> {
    let rule = |json_pointers: Vec<String>, jq_path_expressions: Vec<String>| IgnoreRule {
        kind: "*".to_string(),
        json_pointers,
        jq_path_expressions,
        ..IgnoreRule::default()
    };
    let mut rules = Vec::new();
    for entry in &set.spec.ignore_application_differences {
        if entry.name.as_deref().is_some_and(|n| !n.is_empty() && n != name) {
            continue;
        }
        rules.extend(entry.json_pointers.iter().map(|p| rule(vec![p.clone()], Vec::new())));
        rules.extend(entry.jq_path_expressions.iter().map(|e| rule(Vec::new(), vec![e.clone()])));
    }
    rules
}

/// Refuses a jq path expression that does not parse; one that fails on a given Application (a path
/// through a field it lacks) is skipped there, as Argo CD skips it.
fn check_ignore_rules(set: &ApplicationSet) -> Result<(), PlanError> {
    for (i, entry) in set.spec.ignore_application_differences.iter().enumerate() {
        for (j, expression) in entry.jq_path_expressions.iter().enumerate() {
            if let Err(message) = berth_engine::jq::delete_paths(&serde_json::Value::Null, expression)
                && (message.starts_with("does not parse") || message.starts_with("does not compile"))
            {
                return Err(PlanError::IgnoreRule {
                    field: format!("spec.ignoreApplicationDifferences[{i}].jqPathExpressions[{j}]"),
                    message: format!("{expression:?} {message}"),
                });
            }
        }
        for (j, pointer) in entry.json_pointers.iter().enumerate() {
            if !pointer.is_empty() && !pointer.starts_with('/') {
                return Err(PlanError::IgnoreRule {
                    field: format!("spec.ignoreApplicationDifferences[{i}].jsonPointers[{j}]"),
                    message: format!("{pointer:?} is not a JSON pointer (it must start with /)"),
                });
            }
        }
    }
    Ok(())
}

/// `desired` with the existing values (or absence) of `current` at the paths the set's
/// `ignoreApplicationDifferences` names, so hand-made changes there survive. The name, namespace and
/// operation are never taken from `current` by a rule.
fn ignore_differences(
    set: &ApplicationSet,
    current: &Application,
    desired: Application,
) -> Result<Application, PlanError> {
    let name = name_of(current);
    let rules = ignore_rules_for(set, &name);
    if rules.is_empty() {
        return Ok(desired);
    }
    let serialize = |app: &Application| {
        serde_json::to_value(app).map_err(|e| PlanError::IgnoreRule {
            field: "spec.ignoreApplicationDifferences".to_string(),
            message: format!("Application {name}: {e}"),
        })
    };
    let live = serialize(current)?;
    let mut wanted = serialize(&desired)?;
    let key = ResourceKey::new(
        GROUP,
        "Application",
        current.metadata.namespace.as_deref().unwrap_or_default(),
        &name,
    );
    for rule in &rules {
        let mut attempt = wanted.clone();
        match respect_ignored(&mut attempt, &live, &key, std::slice::from_ref(rule)) {
            Ok(()) => wanted = attempt,
            Err(e) => tracing::debug!(app = %name, error = %e, "ignoreApplicationDifferences rule skipped"),
        }
    }
    let mut kept: Application = match serde_json::from_value(wanted) {
        Ok(app) => app,
        Err(e) => {
            return Err(PlanError::IgnoreRule {
                field: "spec.ignoreApplicationDifferences".to_string(),
                message: format!("Application {name}: the kept fields make no valid Application: {e}"),
            });
        }
    };
    kept.metadata.name = desired.metadata.name;
    kept.metadata.namespace = desired.metadata.namespace;
    kept.operation = desired.operation;
    Ok(normalized(kept))
}

fn name_of(app: &Application) -> String {
    app.metadata.name.clone().unwrap_or_default()
}

fn name_of_set(set: &ApplicationSet) -> String {
    set.metadata.name.clone().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    fn set(extra: Value) -> ApplicationSet {
        let mut value = json!({
            "metadata": { "name": "web", "namespace": "argocd", "uid": "set-uid" },
            "spec": { "generators": [], "template": { "spec": { "destination": {} } } }
        });
        if let (Some(spec), Some(extra)) = (value["spec"].as_object_mut(), extra.as_object()) {
            spec.extend(extra.clone());
        }
        serde_json::from_value(value).expect("a set")
    }

    /// What the set generates for `name` at `revision`.
    fn generated(name: &str, revision: &str) -> Application {
        serde_json::from_value(json!({
            "metadata": { "name": name, "finalizers": [finalizers::RESOURCES], "labels": { "env": "prod" } },
            "spec": { "project": "default", "destination": { "server": "https://prod", "namespace": name },
                      "source": { "repoURL": "https://git.example/repo.git", "path": name, "targetRevision": revision } }
        }))
        .expect("an app")
    }

    /// `app` as the API server stores it once `set` created it.
    fn stored(app: Application, set: &ApplicationSet) -> Application {
        let mut app = plan(set, vec![app], &[], Policy::Sync).expect("a plan").create.remove(0);
        app.metadata.uid = Some(format!("uid-{}", name_of(&app)));
        app.metadata.resource_version = Some("1".to_string());
        app
    }

    fn hand_made(name: &str) -> Application {
        let mut app = generated(name, "main");
        app.metadata.namespace = Some("argocd".to_string());
        app
    }

    fn owned_by_other_set(name: &str) -> Application {
        let mut app = hand_made(name);
        let other = set(json!({}));
        let mut reference = owner_reference(&other);
        reference.name = "other".to_string();
        reference.uid = "other-uid".to_string();
        app.metadata.owner_references = Some(vec![reference]);
        app
    }

    fn names(apps: &[Application]) -> Vec<String> {
        apps.iter().map(name_of).collect()
    }

    #[test]
    fn policies_allow_what_their_names_say() {
        assert!(Policy::Sync.allows_update() && Policy::Sync.allows_delete());
        assert!(!Policy::CreateOnly.allows_update() && !Policy::CreateOnly.allows_delete());
        assert!(Policy::CreateUpdate.allows_update() && !Policy::CreateUpdate.allows_delete());
        assert!(!Policy::CreateDelete.allows_update() && Policy::CreateDelete.allows_delete());
        for p in [Policy::Sync, Policy::CreateOnly, Policy::CreateUpdate, Policy::CreateDelete] {
            assert_eq!(Policy::parse(p.as_str()), Some(p));
        }
    }

    #[test]
    fn the_controller_policy_applies_when_overrides_are_not_allowed() {
        let s = set(json!({ "syncPolicy": { "applicationsSync": "create-only" } }));
        assert_eq!(effective_policy(&s, Some("create-update"), false), Ok(Policy::CreateUpdate));
        assert_eq!(effective_policy(&s, None, false), Ok(Policy::Sync));
    }

    #[test]
    fn the_set_policy_wins_when_overrides_are_allowed() {
        let s = set(json!({ "syncPolicy": { "applicationsSync": "create-only" } }));
        assert_eq!(effective_policy(&s, Some("create-update"), true), Ok(Policy::CreateOnly));
        assert_eq!(effective_policy(&set(json!({})), Some("create-delete"), true), Ok(Policy::CreateDelete));
        assert_eq!(effective_policy(&set(json!({})), None, true), Ok(Policy::Sync));
    }

    #[test]
    fn overrides_are_allowed_by_default_only_without_a_controller_policy() {
        assert!(override_allowed_by_default(None));
        assert!(override_allowed_by_default(Some("")));
        assert!(!override_allowed_by_default(Some("sync")));
    }

    #[test]
    fn an_unknown_policy_is_an_error_naming_its_field() {
        let s = set(json!({ "syncPolicy": { "applicationsSync": "create-everything" } }));
        let err = effective_policy(&s, None, true).unwrap_err();
        assert!(err.starts_with("spec.syncPolicy.applicationsSync: "), "{err}");
        assert!(err.contains("create-everything"), "{err}");
        let err = effective_policy(&set(json!({})), Some("nope"), false).unwrap_err();
        assert!(err.starts_with("applicationsetcontroller.policy: "), "{err}");
    }

    #[test]
    fn the_owner_reference_is_a_blocking_controller_reference_to_the_set() {
        let reference = owner_reference(&set(json!({})));
        assert_eq!(reference.api_version, "argoproj.io/v1alpha1");
        assert_eq!(reference.kind, "ApplicationSet");
        assert_eq!(reference.name, "web");
        assert_eq!(reference.uid, "set-uid");
        assert_eq!(reference.controller, Some(true));
        assert_eq!(reference.block_owner_deletion, Some(true));
    }

    #[test]
    fn ownership_needs_a_controller_reference_with_the_set_uid() {
        let s = set(json!({}));
        assert!(is_owned_by(&stored(generated("a", "main"), &s), &s));
        assert!(!is_owned_by(&hand_made("a"), &s));
        assert!(!is_owned_by(&owned_by_other_set("a"), &s));
        let mut not_controller = stored(generated("a", "main"), &s);
        not_controller.metadata.owner_references.as_mut().expect("refs")[0].controller = None;
        assert!(!is_owned_by(&not_controller, &s));
        let mut renamed_same_uid = stored(generated("a", "main"), &s);
        renamed_same_uid.metadata.owner_references.as_mut().expect("refs")[0].name = "old-name".to_string();
        assert!(is_owned_by(&renamed_same_uid, &s));
        let mut unsaved = s.clone();
        unsaved.metadata.uid = None;
        assert!(!is_owned_by(&stored(generated("a", "main"), &s), &unsaved));
    }

    #[test]
    fn a_new_application_is_created_in_the_set_namespace_with_the_owner_reference() {
        let s = set(json!({}));
        let planned = plan(&s, vec![generated("a", "main")], &[], Policy::CreateOnly).expect("a plan");
        assert_eq!(names(&planned.create), ["a"]);
        let created = &planned.create[0];
        assert_eq!(created.metadata.namespace.as_deref(), Some("argocd"));
        assert_eq!(created.metadata.owner_references, Some(vec![owner_reference(&s)]));
        assert!(is_owned_by(created, &s));
    }

    #[test]
    fn a_namespace_the_template_gives_is_replaced_by_the_sets() {
        let mut app = generated("a", "main");
        app.metadata.namespace = Some("team-a".to_string());
        let planned = plan(&set(json!({})), vec![app], &[], Policy::Sync).expect("a plan");
        assert_eq!(planned.create[0].metadata.namespace.as_deref(), Some("argocd"));
    }

    #[test]
    fn sync_updates_changed_apps_and_deletes_those_no_longer_generated() {
        let s = set(json!({}));
        let existing = [stored(generated("a", "main"), &s), stored(generated("gone", "main"), &s)];
        let planned = plan(&s, vec![generated("a", "v2"), generated("b", "main")], &existing, Policy::Sync)
            .expect("a plan");
        assert_eq!(names(&planned.create), ["b"]);
        assert_eq!(names(&planned.update), ["a"]);
        assert_eq!(planned.delete, ["gone"]);
        let updated = &planned.update[0];
        assert_eq!(updated.spec.source.as_ref().and_then(|s| s.target_revision.as_deref()), Some("v2"));
        assert_eq!(
            updated.metadata.resource_version.as_deref(),
            Some("1"),
            "the PUT carries the stored version"
        );
        assert_eq!(updated.metadata.uid.as_deref(), Some("uid-a"));
    }

    #[test]
    fn create_only_neither_updates_nor_deletes() {
        let s = set(json!({}));
        let existing = [stored(generated("a", "main"), &s), stored(generated("gone", "main"), &s)];
        let planned =
            plan(&s, vec![generated("a", "v2"), generated("b", "main")], &existing, Policy::CreateOnly)
                .expect("a plan");
        assert_eq!(names(&planned.create), ["b"]);
        assert!(planned.update.is_empty() && planned.delete.is_empty());
        assert_eq!(planned.unchanged, ["a"]);
    }

    #[test]
    fn create_update_updates_but_never_deletes() {
        let s = set(json!({}));
        let existing = [stored(generated("a", "main"), &s), stored(generated("gone", "main"), &s)];
        let planned = plan(&s, vec![generated("a", "v2")], &existing, Policy::CreateUpdate).expect("a plan");
        assert_eq!(names(&planned.update), ["a"]);
        assert!(planned.delete.is_empty());
    }

    #[test]
    fn create_delete_deletes_but_never_updates() {
        let s = set(json!({}));
        let existing = [stored(generated("a", "main"), &s), stored(generated("gone", "main"), &s)];
        let planned = plan(&s, vec![generated("a", "v2")], &existing, Policy::CreateDelete).expect("a plan");
        assert!(planned.update.is_empty());
        assert_eq!(planned.unchanged, ["a"]);
        assert_eq!(planned.delete, ["gone"]);
    }

    #[test]
    fn a_steady_set_writes_nothing() {
        let s = set(json!({}));
        let existing = [stored(generated("a", "main"), &s), stored(generated("b", "main"), &s)];
        let planned = plan(&s, vec![generated("a", "main"), generated("b", "main")], &existing, Policy::Sync)
            .expect("a plan");
        assert!(planned.is_empty(), "{planned:?}");
        assert_eq!(planned.unchanged, ["a", "b"]);
    }

    #[test]
    fn a_hand_made_application_with_a_generated_name_is_a_conflict_and_never_overwritten() {
        let s = set(json!({}));
        let planned = plan(&s, vec![generated("a", "v2")], &[hand_made("a")], Policy::Sync).expect("a plan");
        assert!(planned.is_empty(), "{planned:?}");
        assert_eq!(planned.conflicts.len(), 1);
        let conflict = &planned.conflicts[0];
        assert_eq!((conflict.name.as_str(), conflict.owner.as_deref()), ("a", None));
        assert!(
            conflict.message.contains("argocd/a") && conflict.message.contains("ApplicationSet web"),
            "{}",
            conflict.message
        );
    }

    #[test]
    fn another_sets_application_is_a_conflict_in_controller_runtime_words_and_never_deleted() {
        let s = set(json!({}));
        let existing = [owned_by_other_set("a"), owned_by_other_set("theirs")];
        let planned = plan(&s, vec![generated("a", "v2")], &existing, Policy::Sync).expect("a plan");
        assert!(planned.is_empty(), "{planned:?}");
        assert_eq!(planned.conflicts[0].owner.as_deref(), Some("ApplicationSet/other"));
        assert_eq!(
            planned.conflicts[0].message,
            "Object argocd/a is already owned by another ApplicationSet controller other"
        );
    }

    #[test]
    fn preserved_and_always_preserved_annotations_keep_their_existing_values() {
        let s = set(json!({ "preservedFields": { "annotations": ["team/owner"], "labels": ["team/tier"] } }));
        let mut current = stored(generated("a", "main"), &s);
        current.metadata.annotations = Some(BTreeMap::from([
            ("team/owner".to_string(), "alice".to_string()),
            (annotations::NOTIFIED.to_string(), "{}".to_string()),
            (annotations::REFRESH.to_string(), "hard".to_string()),
            (annotations::HYDRATE.to_string(), "normal".to_string()),
            ("hand/made".to_string(), "x".to_string()),
        ]));
        current.metadata.labels = Some(BTreeMap::from([
            ("env".to_string(), "prod".to_string()),
            ("team/tier".to_string(), "gold".to_string()),
            ("stray".to_string(), "y".to_string()),
        ]));
        let mut wanted = generated("a", "main");
        wanted.metadata.annotations =
            Some(BTreeMap::from([("team/owner".to_string(), "template".to_string())]));
        let planned = plan(&s, vec![wanted], &[current], Policy::Sync).expect("a plan");
        let updated = &planned.update[0];
        let annotations = updated.metadata.annotations.clone().expect("annotations");
        assert_eq!(annotations.get("team/owner").map(String::as_str), Some("alice"));
        for key in [annotations::NOTIFIED, annotations::REFRESH, annotations::HYDRATE] {
            assert!(annotations.contains_key(key), "{key} kept");
        }
        assert!(!annotations.contains_key("hand/made"), "an annotation no one preserves goes");
        let labels = updated.metadata.labels.clone().expect("labels");
        assert_eq!(labels.get("team/tier").map(String::as_str), Some("gold"));
        assert!(!labels.contains_key("stray"));
    }

    #[test]
    fn pre_and_post_delete_finalizers_in_progress_are_kept() {
        let s = set(json!({}));
        let mut current = stored(generated("a", "main"), &s);
        let post = format!("{}/cleanup", finalizers::POST_DELETE);
        current.metadata.finalizers = Some(vec![
            finalizers::RESOURCES.to_string(),
            post.clone(),
            finalizers::PRE_DELETE.to_string(),
            "other/x".to_string(),
        ]);
        let planned = plan(&s, vec![generated("a", "main")], &[current], Policy::Sync).expect("a plan");
        assert_eq!(
            planned.update[0].metadata.finalizers,
            Some(vec![finalizers::RESOURCES.to_string(), post, finalizers::PRE_DELETE.to_string()])
        );
    }

    #[test]
    fn status_and_a_pending_operation_are_kept_on_update() {
        let s = set(json!({}));
        let mut current = stored(generated("a", "main"), &s);
        current.status = serde_json::from_value(json!({ "sync": { "status": "Synced" } })).expect("a status");
        current.operation =
            serde_json::from_value(json!({ "sync": { "revision": "abc" } })).expect("an operation");
        let planned = plan(&s, vec![generated("a", "v2")], std::slice::from_ref(&current), Policy::Sync)
            .expect("a plan");
        assert_eq!(planned.update[0].status, current.status);
        assert_eq!(planned.update[0].operation, current.operation);
    }

    #[test]
    fn an_application_being_deleted_is_neither_updated_nor_deleted_again() {
        let s = set(json!({}));
        let mut going = stored(generated("a", "main"), &s);
        going.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::UNIX_EPOCH));
        let mut gone = stored(generated("b", "main"), &s);
        gone.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::UNIX_EPOCH));
        let planned = plan(&s, vec![generated("a", "v2")], &[going, gone], Policy::Sync).expect("a plan");
        assert!(planned.is_empty(), "{planned:?}");
    }

    #[test]
    fn an_ignored_json_pointer_keeps_the_hand_made_value() {
        let s = set(
            json!({ "ignoreApplicationDifferences": [{ "jsonPointers": ["/spec/source/targetRevision"] }] }),
        );
        let mut current = stored(generated("a", "main"), &s);
        current.spec.source.as_mut().expect("a source").target_revision = Some("fix/bug-1".to_string());
        let planned = plan(&s, vec![generated("a", "main")], std::slice::from_ref(&current), Policy::Sync)
            .expect("a plan");
        assert!(planned.is_empty(), "the hand-made revision is not undone: {planned:?}");
        let mut moved = generated("a", "main");
        moved.spec.source.as_mut().expect("a source").path = Some("moved".to_string());
        let planned = plan(&s, vec![moved], &[current], Policy::Sync).expect("a plan");
        let source = planned.update[0].spec.source.clone().expect("a source");
        assert_eq!(
            (source.path.as_deref(), source.target_revision.as_deref()),
            (Some("moved"), Some("fix/bug-1"))
        );
    }

    #[test]
    fn an_ignored_jq_path_keeps_the_hand_made_value() {
        let s =
            set(json!({ "ignoreApplicationDifferences": [{ "jqPathExpressions": [".spec.syncPolicy"] }] }));
        let mut current = stored(generated("a", "main"), &s);
        current.spec.sync_policy =
            serde_json::from_value(json!({ "automated": { "prune": true } })).expect("a policy");
        let planned = plan(&s, vec![generated("a", "v2")], std::slice::from_ref(&current), Policy::Sync)
            .expect("a plan");
        assert_eq!(planned.update[0].spec.sync_policy, current.spec.sync_policy);
        assert_eq!(
            planned.update[0].spec.source.as_ref().and_then(|s| s.target_revision.as_deref()),
            Some("v2")
        );
    }

    #[test]
    fn a_jq_path_that_fails_on_an_application_is_skipped_there() {
        let s = set(json!({ "ignoreApplicationDifferences": [{
            "jqPathExpressions": [".spec.sources[] | select(.repoURL == \"x\").targetRevision"],
            "jsonPointers": ["/spec/source/targetRevision"]
        }] }));
        let mut current = stored(generated("a", "main"), &s);
        current.spec.source.as_mut().expect("a source").target_revision = Some("pinned".to_string());
        let planned = plan(&s, vec![generated("a", "main")], &[current], Policy::Sync).expect("a plan");
        assert!(planned.is_empty(), "{planned:?}");
    }

    #[test]
    fn an_ignore_rule_with_a_name_applies_to_that_application_only() {
        let s = set(
            json!({ "ignoreApplicationDifferences": [{ "name": "a", "jsonPointers": ["/spec/source/targetRevision"] }] }),
        );
        let mut a = stored(generated("a", "main"), &s);
        a.spec.source.as_mut().expect("a source").target_revision = Some("pinned".to_string());
        let mut b = stored(generated("b", "main"), &s);
        b.spec.source.as_mut().expect("a source").target_revision = Some("pinned".to_string());
        let planned = plan(&s, vec![generated("a", "main"), generated("b", "main")], &[a, b], Policy::Sync)
            .expect("a plan");
        assert_eq!(names(&planned.update), ["b"]);
        assert_eq!(planned.unchanged, ["a"]);
    }

    #[test]
    fn a_jq_path_that_does_not_parse_is_an_error_naming_the_field() {
        let s = set(json!({ "ignoreApplicationDifferences": [{ "jqPathExpressions": [".spec.["] }] }));
        let err = plan(&s, vec![generated("a", "main")], &[], Policy::Sync).unwrap_err();
        assert!(
            err.to_string().starts_with("spec.ignoreApplicationDifferences[0].jqPathExpressions[0]: "),
            "{err}"
        );
    }

    /// One Application found in the set's namespace before planning.
    #[derive(Clone, Debug)]
    enum Found {
        Owned { revision: String, stray_annotation: bool, post_delete: bool },
        HandMade,
        OtherSet,
    }

    fn found() -> impl Strategy<Value = Found> {
        prop_oneof![
            ("[a-c]", any::<bool>(), any::<bool>()).prop_map(|(revision, stray_annotation, post_delete)| {
                Found::Owned { revision, stray_annotation, post_delete }
            }),
            Just(Found::HandMade),
            Just(Found::OtherSet),
        ]
    }

    fn policy() -> impl Strategy<Value = Policy> {
        prop_oneof![
            Just(Policy::Sync),
            Just(Policy::CreateOnly),
            Just(Policy::CreateUpdate),
            Just(Policy::CreateDelete)
        ]
    }

    /// `existing` with the plan's writes done, as the API server would hold them.
    fn apply(existing: &[Application], planned: &Plan) -> Vec<Application> {
        let mut out: Vec<Application> = existing
            .iter()
            .filter(|a| !planned.delete.contains(&name_of(a)))
            .map(|a| {
                planned.update.iter().find(|u| name_of(u) == name_of(a)).cloned().unwrap_or_else(|| a.clone())
            })
            .collect();
        for created in &planned.create {
            let mut created = created.clone();
            created.metadata.uid = Some(format!("uid-{}", name_of(&created)));
            out.push(created);
        }
        out
    }

    proptest! {
        #[test]
        fn planning_again_after_applying_a_plan_writes_nothing(
            wanted in proptest::collection::btree_map("[a-e]", "[a-c]", 0..5),
            present in proptest::collection::btree_map("[a-f]", found(), 0..6),
            policy in policy(),
            preserve_label in any::<bool>(),
            ignore_revision in any::<bool>(),
            ignore_by_jq in any::<bool>(),
        ) {
            let mut extra = json!({});
            if preserve_label {
                extra["preservedFields"] = json!({ "labels": ["stray"], "annotations": ["stray"] });
            }
            if ignore_revision {
                extra["ignoreApplicationDifferences"] = json!([{ "jsonPointers": ["/spec/source/targetRevision"] }]);
            }
            if ignore_by_jq {
                extra["ignoreApplicationDifferences"] = json!([{ "name": "a", "jqPathExpressions": [".metadata.labels"] }]);
            }
            let s = set(extra);
            let existing: Vec<Application> = present
                .iter()
                .map(|(name, found)| match found {
                    Found::Owned { revision, stray_annotation, post_delete } => {
                        let mut app = stored(generated(name, revision), &s);
                        if *stray_annotation {
                            app.metadata.annotations = Some(BTreeMap::from([("stray".to_string(), "x".to_string())]));
                            app.metadata.labels.get_or_insert_with(BTreeMap::new).insert("stray".to_string(), "y".to_string());
                        }
                        if *post_delete {
                            app.metadata.finalizers.get_or_insert_with(Vec::new).push(finalizers::POST_DELETE.to_string());
                        }
                        app
                    }
                    Found::HandMade => hand_made(name),
                    Found::OtherSet => owned_by_other_set(name),
                })
                .collect();
            let apps = || wanted.iter().map(|(name, revision)| generated(name, revision)).collect::<Vec<_>>();
            let first = plan(&s, apps(), &existing, policy).expect("a plan");
            for conflict in &first.conflicts {
                prop_assert!(first.update.iter().all(|u| name_of(u) != conflict.name));
                prop_assert!(!first.delete.contains(&conflict.name));
            }
            let after = apply(&existing, &first);
            let second = plan(&s, apps(), &after, policy).expect("a plan");
            prop_assert!(second.is_empty(), "{:?}", second);
            prop_assert_eq!(second.conflicts, first.conflicts);
        }
    }
}
