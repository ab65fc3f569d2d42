//! ApplicationSets through the API, as Argo CD's ApplicationSetService serves them: list, get, create (with
//! `upsert` and `dryRun`), delete, generate (what a set would produce, nothing written) and the resource tree
//! (the set's Applications). Each route about one set takes Argo CD's `?appsetNamespace=`.
//!
//! RBAC: resource `applicationsets`, object `<project>/<name>` (`<project>/<namespace>/<name>` outside the
//! control namespace) where the project is the template's `spec.project`. A set the caller may not see, or
//! that does not exist, is refused alike (403), as apps are, so names in other projects cannot be probed.
//! Sets travel as stored (read as JSON, not through the typed form), so fields berth does not know are kept
//! and one odd set never breaks the list.

use super::query::{matches_selector, parse_selector};
use super::{ApiError, Caller, GrpcCode, Shared, kube_error};
use axum::Json;
use axum::extract::{Path, Query, State};
use berth_api::{AppProject, Application, ApplicationSet};
use kube::api::{Api, ApiResource, DynamicObject, ListParams, PostParams};
use serde_json::Value;
use std::sync::Arc;

/// Generator kinds Argo CD knows; anything else in a generator is refused, as Argo CD refuses it.
const GENERATOR_KINDS: &[&str] = &[
    "list",
    "clusters",
    "git",
    "scmProvider",
    "clusterDecisionResource",
    "pullRequest",
    "plugin",
    "matrix",
    "merge",
];
/// How often an upsert reads the set again after a concurrent change before giving up.
const UPDATE_ATTEMPTS: usize = 5;

/// Argo CD's `appsetNamespace`: the namespace of the set a route is about; absent or empty, the control one.
#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct AppsetNamespaceQuery {
    appset_namespace: Option<String>,
}

fn appsets(shared: &Shared, namespace: &str) -> Api<DynamicObject> {
    Api::namespaced_with(shared.client.clone(), namespace, &ApiResource::erase::<ApplicationSet>(&()))
}

/// The template's project; an empty one is `default`, as for apps.
fn project_of(set: &Value) -> &str {
    set.pointer("/spec/template/spec/project")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty())
        .unwrap_or("default")
}

/// The RBAC object of `set` (as JSON): `<project>/<name>`, or `<project>/<namespace>/<name>` outside the
/// control namespace, as Argo CD's `RBACName`.
fn appset_object(shared: &Shared, set: &Value) -> String {
    let namespace = set["metadata"]["namespace"].as_str().filter(|ns| *ns != shared.namespace);
    crate::rbac::app_object(project_of(set), namespace, set["metadata"]["name"].as_str().unwrap_or_default())
}

fn to_json(object: &DynamicObject) -> Result<Value, ApiError> {
    serde_json::to_value(object).map_err(|e| ApiError::internal(e.to_string()))
}

/// Argo CD's refusal of a namespace whose sets are not served.
fn not_permitted(namespace: &str) -> ApiError {
    ApiError::new(GrpcCode::Unknown, format!("namespace '{namespace}' is not permitted"))
}

/// The set `name` of `namespace` (`None` or empty: the control namespace), read from the API server, if the
/// caller may do `action` on it. Missing, not served and not allowed are one answer: 403.
async fn authorized_appset(
    shared: &Shared,
    caller: &crate::rbac::Subject,
    namespace: Option<&str>,
    name: &str,
    action: &str,
) -> Result<Value, ApiError> {
    let denied = || ApiError::forbidden("permission denied");
    let namespace = shared.app_namespace(namespace);
    if !shared.serves_namespace(namespace) {
        return Err(denied());
    }
    let Some(found) = appsets(shared, namespace).get_opt(name).await.map_err(kube_error)? else {
        return Err(denied());
    };
    let set = to_json(&found)?;
    if !shared.rbac.enforce(caller, "applicationsets", action, &appset_object(shared, &set)) {
        return Err(denied());
    }
    Ok(set)
}

/// `GET /api/v1/applicationsets[?projects=&selector=&appsetNamespace=]`: Argo CD's ApplicationSetList of the
/// sets the caller may `get`, by name, of the served namespaces (or only of `appsetNamespace`).
pub(super) async fn list_applicationsets(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    let mut projects: Vec<String> = Vec::new();
    let mut selector = Vec::new();
    let mut only: Option<String> = None;
    for (key, value) in pairs {
        match key.as_str() {
            "projects" | "project" => {
                projects.extend(value.split(',').map(str::trim).filter(|p| !p.is_empty()).map(str::to_string))
            }
            "selector" => selector.extend(parse_selector(&value)?),
            "appsetNamespace" if !value.is_empty() => only = Some(value),
            _ => {}
        }
    }
    let resource = ApiResource::erase::<ApplicationSet>(&());
    let api: Api<DynamicObject> = match &only {
        Some(ns) => Api::namespaced_with(shared.client.clone(), ns, &resource),
        None if shared.application_namespaces.is_empty() => {
            Api::namespaced_with(shared.client.clone(), &shared.namespace, &resource)
        }
        None => Api::all_with(shared.client.clone(), &resource),
    };
    let list = api.list(&ListParams::default()).await.map_err(kube_error)?;
    let policy = shared.rbac.current();
    let resolved = policy.resolve(&caller);
    let mut items = Vec::new();
    for object in &list.items {
        let set = to_json(object)?;
        let namespace = set["metadata"]["namespace"].as_str().unwrap_or_default();
        let labels = object.metadata.labels.as_ref();
        if shared.serves_namespace(namespace)
            && (projects.is_empty() || projects.iter().any(|p| p == project_of(&set)))
            && matches_selector(&selector, labels)
            && resolved.enforce("applicationsets", "get", &appset_object(&shared, &set))
        {
            items.push(set);
        }
    }
    fn position(set: &Value) -> (&str, &str) {
        let meta = &set["metadata"];
        (meta["name"].as_str().unwrap_or_default(), meta["namespace"].as_str().unwrap_or_default())
    }
    items.sort_by(|a, b| position(a).cmp(&position(b)));
    let version = list.metadata.resource_version.unwrap_or_default();
    Ok(Json(serde_json::json!({"metadata": {"resourceVersion": version}, "items": items})))
}

/// `GET /api/v1/applicationsets/{name}[?appsetNamespace=]`.
pub(super) async fn get_applicationset(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    Path(name): Path<String>,
    Query(at): Query<AppsetNamespaceQuery>,
) -> Result<Json<Value>, ApiError> {
    authorized_appset(&shared, &caller, at.appset_namespace.as_deref(), &name, "get").await.map(Json)
}

/// A set as sent, checked: its name, namespace, shape, generators and project.
struct Submitted {
    /// The JSON to write (status dropped, apiVersion, kind and namespace set).
    json: Value,
    typed: ApplicationSet,
    name: String,
    namespace: String,
    project: String,
    /// The projects the generators' own templates name (besides `project`).
    generator_projects: Vec<String>,
}

/// Reads a set sent to create or generate, as Argo CD validates it: a JSON object with a valid
/// `metadata.name`, the shape of an ApplicationSet, only generators Argo CD knows, and a project that is not
/// a template. Lands in its `metadata.namespace` when sets of other namespaces are served, else in the control
/// namespace (so a manifest written for `argocd` works unchanged), which must be served.
fn submitted(shared: &Shared, mut set: Value) -> Result<Submitted, ApiError> {
    let Some(fields) = set.as_object_mut() else {
        return Err(ApiError::bad_request("the ApplicationSet: not a JSON object"));
    };
    fields.remove("status");
    let name = set["metadata"]["name"].as_str().unwrap_or_default().to_string();
    if name.is_empty() {
        return Err(ApiError::bad_request("metadata.name is required"));
    }
    // The name is a path segment and an RBAC object: refused here, before either.
    berth_api::names::check_subdomain(&name)
        .map_err(|e| ApiError::bad_request(format!("metadata.name: {e}")))?;
    let namespace = set["metadata"]["namespace"]
        .as_str()
        .filter(|ns| !ns.is_empty() && !shared.application_namespaces.is_empty())
        .unwrap_or(&shared.namespace)
        .to_string();
    if !shared.serves_namespace(&namespace) {
        return Err(not_permitted(&namespace));
    }
    // The ApplicationSet controller acts on the control namespace's sets only: one elsewhere would never
    // generate anything.
    if namespace != shared.namespace {
        return Err(ApiError::bad_request(format!(
            "ApplicationSets are served in namespace {} only; {namespace} is not it",
            shared.namespace
        )));
    }
    set["apiVersion"] = "argoproj.io/v1alpha1".into();
    set["kind"] = "ApplicationSet".into();
    set["metadata"]["namespace"] = namespace.clone().into();
    let typed: ApplicationSet = serde_json::from_value(set.clone()).map_err(|e| {
        ApiError::bad_request(format!("the ApplicationSet: {}", without_values(&e.to_string())))
    })?;
    unrecognized_generators(&name, &set["spec"]["generators"])?;
    let project = typed.spec.template.spec.project.clone();
    if project.contains("{{") {
        return Err(ApiError::bad_request(
            "the API does not support creating ApplicationSets with a templated `project` field",
        ));
    }
    let project = if project.is_empty() { "default".to_string() } else { project };
    let mut generator_projects = Vec::new();
    let mut templated = false;
    berth_controller::appset::walk_templates(&set["spec"]["generators"], &mut |template| {
        if let Some(p) = template.pointer("/spec/project").and_then(Value::as_str).filter(|p| !p.is_empty()) {
            templated |= p.contains("{{");
            generator_projects.push(p.to_string());
        }
    });
    if templated {
        return Err(ApiError::bad_request(
            "the API does not support creating ApplicationSets with a templated `project` field",
        ));
    }
    generator_projects.sort();
    generator_projects.dedup();
    generator_projects.retain(|p| *p != project);
    Ok(Submitted { json: set, typed, name, namespace, project, generator_projects })
}

/// A serde message without the values it quotes (`invalid type: string "…"`): a value may be a secret.
fn without_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut inside = false;
    for c in message.chars() {
        if c == '"' {
            if inside {
                out.push('…');
            }
            out.push('"');
            inside = !inside;
        } else if !inside {
            out.push(c);
        }
    }
    out
}

/// Argo CD refuses a set with a generator it does not know: each generator must be one of
/// [`GENERATOR_KINDS`] (with an optional post-`selector`).
fn unrecognized_generators(name: &str, generators: &Value) -> Result<(), ApiError> {
    let mut unknown: Vec<&str> = Vec::new();
    let mut empty = false;
    for generator in generators.as_array().into_iter().flatten() {
        let Some(fields) = generator.as_object() else {
            empty = true;
            continue;
        };
        let kinds = fields.keys().filter(|k| *k != "selector").map(String::as_str);
        let (known, other): (Vec<&str>, Vec<&str>) = kinds.partition(|k| GENERATOR_KINDS.contains(k));
        empty |= known.is_empty() && other.is_empty();
        unknown.extend(other);
    }
    unknown.sort_unstable();
    unknown.dedup();
    if !unknown.is_empty() {
        return Err(ApiError::bad_request(format!(
            "ApplicationSet {name} contains unrecognized generators: {}",
            unknown.join(", ")
        )));
    }
    if empty {
        return Err(ApiError::bad_request(format!("ApplicationSet {name} contains unrecognized generators")));
    }
    Ok(())
}

/// Argo CD's check before creating or generating: `create` on the set, then its project must exist (in that
/// order, so a caller without the right learns nothing of projects).
async fn may_create(shared: &Shared, caller: &crate::rbac::Subject, set: &Submitted) -> Result<(), ApiError> {
    if !shared.rbac.enforce(caller, "applicationsets", "create", &appset_object(shared, &set.json)) {
        return Err(ApiError::forbidden("permission denied"));
    }
    // A generator's own template may name another project: the caller must be allowed there too (the
    // controller refuses any generated app in a project no template names, a templatePatch's included).
    let namespace = set.json["metadata"]["namespace"].as_str().filter(|ns| *ns != shared.namespace);
    for project in &set.generator_projects {
        let object = crate::rbac::app_object(project, namespace, &set.name);
        if !shared.rbac.enforce(caller, "applicationsets", "create", &object) {
            return Err(ApiError::forbidden("permission denied"));
        }
    }
    let projects: Api<AppProject> = Api::namespaced(shared.client.clone(), &shared.namespace);
    if projects.get_opt(&set.project).await.map_err(kube_error)?.is_none() {
        return Err(ApiError::bad_request(format!(
            "ApplicationSet references project {} which does not exist",
            set.project
        )));
    }
    Ok(())
}

/// What the controller of this process generates for `set`: 503 when none runs here.
async fn generate(shared: &Shared, set: &ApplicationSet) -> Result<Vec<Application>, ApiError> {
    let set = set.clone();
    let generated =
        super::tree::on_controller(shared, move |c| async move { c.generate_applicationset(&set).await })
            .await?;
    generated.map_err(|e| {
        use berth_controller::appset::GenerateError;
        let message = format!("unable to generate Applications of ApplicationSet: {e}");
        match e {
            GenerateError::Generate(_) => ApiError::bad_request(message),
            GenerateError::Input(_) => ApiError::new(GrpcCode::Unknown, message),
        }
    })
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct CreateQuery {
    upsert: bool,
    dry_run: bool,
}

/// `POST /api/v1/applicationsets[?upsert=true][&dryRun=true]` (the body is the ApplicationSet), as Argo CD:
/// RBAC `create` on the set and its project existing; the same set again answers the stored one; a
/// different one is refused unless `upsert`, which needs `update` too (and, when the project changes,
/// `create` on the new project and `update` on the old). `dryRun` writes nothing and answers the set with
/// `status.resources` listing the Applications it would make.
pub(super) async fn create_applicationset(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    Query(query): Query<CreateQuery>,
    Json(set): Json<Value>,
) -> Result<Json<Value>, ApiError> {
    let set = submitted(&shared, set)?;
    may_create(&shared, &caller, &set).await?;
    if query.dry_run {
        let apps = generate(&shared, &set.typed).await?;
        let mut answer = set.json;
        answer["status"]["resources"] = apps.iter().map(resource_status).collect();
        return Ok(Json(answer));
    }
    let api = appsets(&shared, &set.namespace);
    let object: DynamicObject = serde_json::from_value(set.json.clone()).map_err(|e| {
        ApiError::bad_request(format!("the ApplicationSet: {}", without_values(&e.to_string())))
    })?;
    match api.create(&PostParams::default(), &object).await {
        Ok(created) => {
            tracing::info!(applicationset = %set.name, namespace = %set.namespace, user = %caller.name, "applicationset created");
            return to_json(&created).map(Json);
        }
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => return Err(kube_error(e)),
    }
    for _ in 0..UPDATE_ATTEMPTS {
        let Some(existing) = api.get_opt(&set.name).await.map_err(kube_error)? else {
            return Err(ApiError::internal(
                "unable to check existing ApplicationSet details: it was deleted",
            ));
        };
        let stored = to_json(&existing)?;
        if same_spec(&stored, &set.typed) {
            return Ok(Json(stored));
        }
        if !query.upsert {
            return Err(ApiError::bad_request(
                "existing ApplicationSet spec is different, use upsert flag to force update",
            ));
        }
        let (old, new) = (appset_object(&shared, &stored), appset_object(&shared, &set.json));
        let allowed = shared.rbac.enforce(&caller, "applicationsets", "update", &new)
            && (old == new
                || shared.rbac.enforce(&caller, "applicationsets", "update", &old)
                    && shared.rbac.enforce(&caller, "applicationsets", "create", &new));
        if !allowed {
            return Err(ApiError::forbidden("permission denied"));
        }
        let mut next = stored;
        next["spec"] = set.json["spec"].clone();
        for field in ["labels", "annotations"] {
            if let Some(sent) = set.json["metadata"][field].as_object() {
                for (key, value) in sent {
                    next["metadata"][field][key] = value.clone();
                }
            }
        }
        let next: DynamicObject =
            serde_json::from_value(next).map_err(|e| ApiError::internal(e.to_string()))?;
        match api.replace(&set.name, &PostParams::default(), &next).await {
            Ok(updated) => {
                tracing::info!(applicationset = %set.name, namespace = %set.namespace, user = %caller.name, "applicationset updated");
                return to_json(&updated).map(Json);
            }
            // Changed since it was read: read it again.
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(e) => return Err(kube_error(e)),
        }
    }
    Err(ApiError::internal("failed to update the ApplicationSet: too many concurrent changes"))
}

/// Is the stored set the one sent: spec, labels, annotations and finalizers equal (absent and empty alike),
/// as Argo CD compares them?
fn same_spec(stored: &Value, sent: &ApplicationSet) -> bool {
    let Ok(stored) = serde_json::from_value::<ApplicationSet>(stored.clone()) else { return false };
    let (a, b) = (&stored.metadata, &sent.metadata);
    stored.spec == sent.spec
        && a.labels.clone().unwrap_or_default() == b.labels.clone().unwrap_or_default()
        && a.annotations.clone().unwrap_or_default() == b.annotations.clone().unwrap_or_default()
        && a.finalizers.clone().unwrap_or_default() == b.finalizers.clone().unwrap_or_default()
}

/// A generated Application as a set's `status.resources` lists it.
fn resource_status(app: &Application) -> Value {
    let status = app.status.as_ref();
    serde_json::json!({
        "group": berth_api::GROUP,
        "version": berth_api::VERSION,
        "kind": "Application",
        "namespace": app.metadata.namespace,
        "name": app.metadata.name,
        "status": status.and_then(|s| s.sync.as_ref()).map(|s| s.status.clone()),
        "health": status.and_then(|s| s.health.as_ref()),
    })
}

/// `DELETE /api/v1/applicationsets/{name}[?appsetNamespace=]`: RBAC `delete`; the Applications it owns are
/// then removed by Kubernetes' garbage collector through their owner reference, as in Argo CD.
pub(super) async fn delete_applicationset(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    Path(name): Path<String>,
    Query(at): Query<AppsetNamespaceQuery>,
) -> Result<Json<Value>, ApiError> {
    let set = authorized_appset(&shared, &caller, at.appset_namespace.as_deref(), &name, "delete").await?;
    let namespace = set["metadata"]["namespace"].as_str().unwrap_or(&shared.namespace);
    appsets(&shared, namespace).delete(&name, &Default::default()).await.map_err(kube_error)?;
    tracing::info!(applicationset = %name, namespace, user = %caller.name, "applicationset deleted");
    Ok(Json(serde_json::json!({})))
}

/// `POST /api/v1/applicationsets/generate` with `{"applicationSet": {...}}`: the Applications the set would
/// make now, `{"applications": [...]}`; nothing is written. Checked as a create is (RBAC `create`, the project
/// exists); generated by the controller of this process (503 without one).
pub(super) async fn generate_applicationset(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    Json(request): Json<Value>,
) -> Result<Json<Value>, ApiError> {
    let Some(set) = request.get("applicationSet").filter(|s| !s.is_null()) else {
        return Err(ApiError::bad_request("the request has no applicationSet"));
    };
    let set = submitted(&shared, set.clone())?;
    may_create(&shared, &caller, &set).await?;
    let applications = generate(&shared, &set.typed).await?;
    Ok(Json(serde_json::json!({"applications": applications})))
}

/// `GET /api/v1/applicationsets/{name}/resource-tree[?appsetNamespace=]`: Argo CD's ApplicationSetTree, the
/// Applications the set owns (by owner reference) as nodes with their health, each with the set as parent.
pub(super) async fn resource_tree(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    Path(name): Path<String>,
    Query(at): Query<AppsetNamespaceQuery>,
) -> Result<Json<Value>, ApiError> {
    let set = authorized_appset(&shared, &caller, at.appset_namespace.as_deref(), &name, "get").await?;
    let meta = &set["metadata"];
    let uid = meta["uid"].as_str().unwrap_or_default();
    let parent = serde_json::json!({
        "group": berth_api::GROUP, "version": berth_api::VERSION, "kind": "ApplicationSet",
        "namespace": meta["namespace"], "name": meta["name"], "uid": uid,
    });
    let mut nodes: Vec<Value> = shared
        .apps
        .state()
        .iter()
        .filter(|app| {
            app.metadata.owner_references.iter().flatten().any(|o| o.kind == "ApplicationSet" && o.uid == uid)
        })
        .map(|app| {
            serde_json::json!({
                "group": berth_api::GROUP, "version": berth_api::VERSION, "kind": "Application",
                "namespace": app.metadata.namespace, "name": app.metadata.name, "uid": app.metadata.uid,
                "health": app.status.as_ref().and_then(|s| s.health.as_ref()),
                "parentRefs": [parent.clone()],
            })
        })
        .collect();
    nodes.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    Ok(Json(serde_json::json!({"nodes": nodes})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generators_argo_cd_does_not_know_are_refused_by_name() {
        let known = serde_json::json!([{"list": {"elements": []}}, {"matrix": {}, "selector": {}}]);
        assert!(unrecognized_generators("s", &known).is_ok());
        let unknown = serde_json::json!([{"list": {}}, {"bogus": {}, "other": {}}, {"bogus": {}}]);
        let e = unrecognized_generators("s", &unknown).unwrap_err();
        assert_eq!(e.message, "ApplicationSet s contains unrecognized generators: bogus, other");
        let e = unrecognized_generators("s", &serde_json::json!([{}])).unwrap_err();
        assert_eq!(e.message, "ApplicationSet s contains unrecognized generators");
    }

    #[test]
    fn serde_messages_lose_the_values_they_quote() {
        assert_eq!(
            without_values("invalid type: string \"hunter2\", expected a boolean"),
            "invalid type: string \"…\", expected a boolean"
        );
        assert_eq!(without_values("missing field `generators`"), "missing field `generators`");
    }

    #[test]
    fn the_rbac_project_is_the_templates_default_when_empty() {
        assert_eq!(
            project_of(&serde_json::json!({"spec": {"template": {"spec": {"project": "team"}}}})),
            "team"
        );
        assert_eq!(
            project_of(&serde_json::json!({"spec": {"template": {"spec": {"project": ""}}}})),
            "default"
        );
        assert_eq!(project_of(&serde_json::json!({})), "default");
    }
}
