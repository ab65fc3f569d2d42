//! Resource actions on an application's live objects, with Argo CD's paths and shapes:
//! `GET /api/v1/applications/{name}/resource/actions?namespace=&resourceName=&version=&group=&kind=` lists
//! what the object offers (`{actions: [{name, disabled, params, iconClass, displayName}]}`), and
//! `POST …/resource/actions/v2` (Argo CD's `ResourceActionRunRequestV2` body; its fields may come in the
//! query too) or the older `POST …/resource/actions` (the action as a JSON string, the object in the query)
//! runs one and answers `{}`. Each takes Argo CD's `appNamespace` for an app outside the control namespace
//! (the v2 body may carry it too).
//!
//! Listing needs `get` on the app; running needs `action/<group>/<kind>/<action>`, as Argo CD's RBAC
//! names it, decided on the stored app. The object is looked up by its kind as discovery spells it and must
//! belong to the app (its tracking id, or an owner that has it); anything else is 404, as for
//! `/resource`. What an action changes is checked by `berth_engine::actions` (a patch only of that object,
//! a created object only in its namespace); a created object must also be one the app's project permits.

use super::{ApiError, Caller, GrpcCode, Shared, authorized_app_in, kube_error, members};
use axum::Json;
use axum::extract::{Path, Query, State};
use berth_api::Application;
use berth_engine::actions::{ActionError, ActionParam, Impact, ResourceActions, merge_patch};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use std::sync::Arc;
use std::time::SystemTime;

/// Who patches and creates, as the API server's writes are named.
const FIELD_MANAGER: &str = "argocd-server";
/// The longest name berth accepts for an action, an object or a namespace (Kubernetes' longest name).
const MAX_NAME: usize = 253;
/// The most parameters a run may pass.
const MAX_PARAMS: usize = 32;

/// The object an action request names, as Argo CD's ApplicationResourceRequest (query or body).
#[derive(serde::Deserialize, Default, Clone)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct ResourceQuery {
    /// The app's namespace (Argo CD's `appNamespace`); empty: the control namespace.
    app_namespace: String,
    namespace: String,
    resource_name: String,
    version: String,
    group: String,
    kind: String,
}

/// Argo CD's ResourceActionRunRequestV2; `name` and `project` are accepted and the path's app decides.
#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct RunRequest {
    app_namespace: String,
    namespace: String,
    resource_name: String,
    version: String,
    group: String,
    kind: String,
    action: String,
    resource_action_parameters: Vec<ActionParam>,
}

/// `GET /api/v1/applications/{name}/resource/actions`: the actions the object offers now.
pub(super) async fn list_actions(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    Path(name): Path<String>,
    Query(query): Query<ResourceQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let app = authorized_app_in(&shared, &caller, Some(&query.app_namespace), &name, "get").await?;
    let (_, live) = app_object(&shared, &app, &query).await?;
    let actions = configured_actions(&shared).await?;
    let offered = tokio::task::spawn_blocking(move || actions.discover(&live))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(action_error)?;
    Ok(Json(serde_json::json!({"actions": offered})))
}

/// `POST /api/v1/applications/{name}/resource/actions/v2`: runs the body's action (fields the body leaves
/// empty are read from the query).
pub(super) async fn run_action(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    Path(name): Path<String>,
    Query(query): Query<RunRequest>,
    Json(body): Json<RunRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let resource = ResourceQuery {
        app_namespace: either(body.app_namespace, query.app_namespace),
        namespace: either(body.namespace, query.namespace),
        resource_name: either(body.resource_name, query.resource_name),
        version: either(body.version, query.version),
        group: either(body.group, query.group),
        kind: either(body.kind, query.kind),
    };
    let action = either(body.action, query.action);
    run(&shared, &caller, &name, resource, action, body.resource_action_parameters).await
}

/// `POST /api/v1/applications/{name}/resource/actions`: Argo CD's first form, the action as the body (a
/// JSON string) and the object in the query.
pub(super) async fn run_action_v1(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    Path(name): Path<String>,
    Query(query): Query<ResourceQuery>,
    Json(action): Json<serde_json::Value>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Some(action) = action.as_str() else {
        return Err(ApiError::bad_request("the body is the action's name, a JSON string"));
    };
    run(&shared, &caller, &name, query, action.to_string(), Vec::new()).await
}

fn either(preferred: String, fallback: String) -> String {
    if preferred.is_empty() { fallback } else { preferred }
}

/// Authorizes, finds the object, runs the action and applies what it changes: every created object is
/// checked before anything is written, then each change is made in order.
async fn run(
    shared: &Shared,
    caller: &Caller,
    name: &str,
    resource: ResourceQuery,
    action: String,
    params: Vec<ActionParam>,
) -> Result<Json<serde_json::Value>, ApiError> {
    valid_name("action", &action)?;
    let rbac_action = format!("action/{}/{}/{action}", resource.group, resource.kind);
    let app = authorized_app_in(shared, caller, Some(&resource.app_namespace), name, &rbac_action).await?;
    if params.len() > MAX_PARAMS {
        return Err(ApiError::bad_request(format!("at most {MAX_PARAMS} action parameters are accepted")));
    }
    for param in &params {
        valid_name("parameter", &param.name)?;
    }
    let (kind, live) = app_object(shared, &app, &resource).await?;
    let actions = configured_actions(shared).await?;
    let (object, wanted) = (live.clone(), action.clone());
    let impacts =
        tokio::task::spawn_blocking(move || actions.run(&object, &wanted, &params, SystemTime::now()))
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?
            .map_err(action_error)?;
    let mut creations = Vec::new();
    for impact in &impacts {
        if let Impact::Create(object) = impact {
            creations.push(creatable(shared, &app, &live, object.clone()).await?);
        }
    }
    let mut creations = creations.into_iter();
    for impact in impacts {
        match impact {
            Impact::Patch(object) => patch(shared, &kind, &live, &object).await?,
            Impact::Create(_) => {
                let Some((created_kind, object)) = creations.next() else { continue };
                create(shared, &created_kind, &object, false).await?;
            }
        }
    }
    tracing::info!(
        app = name,
        action = action.as_str(),
        kind = resource.kind.as_str(),
        namespace = resource.namespace.as_str(),
        resource = resource.resource_name.as_str(),
        user = caller.name.as_str(),
        "ran a resource action"
    );
    Ok(Json(serde_json::json!({})))
}

/// The live object the query names (with its kind as discovery has it), if it belongs to `app` (carries its
/// instance name, `<namespace>_<name>` outside the control namespace); 404 otherwise, whatever exists.
async fn app_object(
    shared: &Shared,
    app: &Application,
    query: &ResourceQuery,
) -> Result<(members::Kind, serde_json::Value), ApiError> {
    let name = app.metadata.name.as_deref().unwrap_or_default();
    if query.kind.is_empty() || query.resource_name.is_empty() {
        return Err(ApiError::bad_request("kind and resourceName are required"));
    }
    valid_name("resourceName", &query.resource_name)?;
    if !query.namespace.is_empty() {
        valid_name("namespace", &query.namespace)?;
    }
    let not_found = || {
        ApiError::not_found(format!(
            "{} {} is not a resource of application {name}",
            query.kind, query.resource_name
        ))
    };
    let kind = members::resolve(&shared.client, &query.group, &query.version, &query.kind)
        .await?
        .ok_or_else(not_found)?;
    let namespace = if kind.namespaced { query.namespace.as_str() } else { "" };
    let live =
        members::get(&shared.client, &kind, namespace, &query.resource_name).await?.ok_or_else(not_found)?;
    let tracking = shared.http_settings().tracking.clone();
    if !members::belongs(&shared.client, &shared.instance_of(app), &tracking, &live).await? {
        return Err(not_found());
    }
    Ok((kind, live))
}

/// A name from the request that goes into an RBAC action or an API path: not empty, not too long, and
/// without the characters that would change either's meaning.
fn valid_name(what: &str, value: &str) -> Result<(), ApiError> {
    let refused = value.is_empty()
        || value.len() > MAX_NAME
        || value == "."
        || value == ".."
        || value
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || matches!(c, '/' | '%' | '?' | '#' | '*'));
    if refused {
        return Err(ApiError::bad_request(format!("{what} {value:?} is not a valid name")));
    }
    Ok(())
}

/// The custom actions of argocd-cm as it is now (read on each request: actions are rare, and a changed
/// script applies at once).
async fn configured_actions(shared: &Shared) -> Result<ResourceActions, ApiError> {
    let maps: Api<ConfigMap> = Api::namespaced(shared.client.clone(), &shared.namespace);
    let data = maps
        .get_opt(berth_controller::settings_source::ARGOCD_CM)
        .await
        .map_err(kube_error)?
        .and_then(|cm| cm.data)
        .unwrap_or_default();
    let parse = |text: &str, key: &str| {
        berth_repo::render::yaml::parse_document::<serde_json::Value>(text, key).map_err(|e| e.to_string())
    };
    let mut warnings = Vec::new();
    let actions = ResourceActions::from_argocd_cm(&data, &parse, &mut warnings);
    for warning in warnings {
        tracing::warn!(warning = warning.as_str(), "resource actions");
    }
    Ok(actions)
}

fn action_error(e: ActionError) -> ApiError {
    match e {
        ActionError::Disabled { .. } => ApiError::failed_precondition(e.to_string()),
        ActionError::Discovery { .. } => ApiError::new(GrpcCode::Internal, e.to_string()),
        ActionError::NotAvailable { .. } | ActionError::Failed { .. } | ActionError::Refused { .. } => {
            ApiError::bad_request(e.to_string())
        }
    }
}

/// Patches `live` into `wanted` with a JSON merge patch of their difference, as Argo CD does: a change to
/// `status` through the status subresource when the kind has one, the rest on the object.
async fn patch(
    shared: &Shared,
    kind: &members::Kind,
    live: &serde_json::Value,
    wanted: &serde_json::Value,
) -> Result<(), ApiError> {
    let mut difference = merge_patch(live, wanted);
    let Some(fields) = difference.as_object_mut() else { return Ok(()) };
    // Bookkeeping of the API server's, never an action's to change.
    if let Some(metadata) = fields.get_mut("metadata").and_then(|m| m.as_object_mut()) {
        metadata.remove("managedFields");
        if metadata.is_empty() {
            fields.remove("metadata");
        }
    }
    if fields.is_empty() {
        return Ok(());
    }
    let api = api_for(shared, kind, live["metadata"]["namespace"].as_str().unwrap_or_default());
    let name = live["metadata"]["name"].as_str().unwrap_or_default();
    let params = PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
    if let Some(status) = fields.get("status").cloned() {
        let status_only = serde_json::json!({"status": status});
        match api.patch_status(name, &params, &Patch::Merge(&status_only)).await {
            Ok(_) => {
                fields.remove("status");
            }
            // No status subresource: the status goes with the rest.
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(kube_error(e)),
        }
    }
    if !fields.is_empty() {
        api.patch(name, &params, &Patch::Merge(&difference)).await.map_err(kube_error)?;
    }
    Ok(())
}

/// A created object as berth writes it, once it is known to be allowed: a namespaced kind the API server
/// serves, permitted by the app's project, and the app's (owned by the object the action ran on, or marked
/// with the app's tracking); checked with a dry run.
async fn creatable(
    shared: &Shared,
    app: &Application,
    source: &serde_json::Value,
    mut object: serde_json::Value,
) -> Result<(members::Kind, serde_json::Value), ApiError> {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let (group, version) = berth_engine::resource::split_api_version(api_version);
    let kind_name = object["kind"].as_str().unwrap_or_default().to_string();
    let kind = members::resolve(&shared.client, group, version, &kind_name)
        .await?
        .filter(|k| k.namespaced)
        .ok_or_else(|| {
        ApiError::bad_request(format!("an action may not create {kind_name}: not a namespaced kind"))
    })?;
    project_permits(shared, app, &object).await?;
    let owned_by_source = object["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|owners| owners.iter().any(|o| o["uid"] == source["metadata"]["uid"]));
    if !owned_by_source {
        let key = berth_engine::resource::ResourceKey::of(&object)
            .ok_or_else(|| ApiError::bad_request("a created object needs a kind and a name"))?;
        let tracking = shared.http_settings().tracking.clone();
        // The instance name, as the controller tracks the app's objects.
        tracking.mark(&mut object, &key, &shared.instance_of(app)).map_err(ApiError::bad_request)?;
    }
    create(shared, &kind, &object, true).await?;
    Ok((kind, object))
}

/// Whether the app's project lets it create `object`, by the controller's project rules (kinds,
/// destinations); a missing project permits nothing, as for a sync.
async fn project_permits(
    shared: &Shared,
    app: &Application,
    object: &serde_json::Value,
) -> Result<(), ApiError> {
    let project = if app.spec.project.is_empty() { "default" } else { &app.spec.project };
    let api: Api<berth_api::AppProject> = Api::namespaced(shared.client.clone(), &shared.namespace);
    let proj = api.get_opt(project).await.map_err(kube_error)?.ok_or_else(|| {
        ApiError::failed_precondition(format!(
            "application references project {project} which does not exist"
        ))
    })?;
    let group =
        berth_engine::resource::split_api_version(object["apiVersion"].as_str().unwrap_or_default()).0;
    berth_controller::project::object_check(
        project,
        &proj.spec,
        group,
        object["kind"].as_str().unwrap_or_default(),
        object["metadata"]["name"].as_str().unwrap_or_default(),
        Some(object["metadata"]["namespace"].as_str().unwrap_or_default()),
        berth_api::destination::IN_CLUSTER_SERVER,
        berth_api::destination::IN_CLUSTER_NAME,
        None,
    )
    .map_err(ApiError::forbidden)
}

async fn create(
    shared: &Shared,
    kind: &members::Kind,
    object: &serde_json::Value,
    dry_run: bool,
) -> Result<(), ApiError> {
    let api = api_for(shared, kind, object["metadata"]["namespace"].as_str().unwrap_or_default());
    let typed: DynamicObject = serde_json::from_value(object.clone())
        .map_err(|e| ApiError::bad_request(format!("the created object: {e}")))?;
    let params = PostParams { dry_run, field_manager: Some(FIELD_MANAGER.into()) };
    api.create(&params, &typed).await.map_err(kube_error)?;
    Ok(())
}

fn api_for(shared: &Shared, kind: &members::Kind, namespace: &str) -> Api<DynamicObject> {
    if kind.namespaced {
        Api::namespaced_with(shared.client.clone(), namespace, &kind.resource)
    } else {
        Api::all_with(shared.client.clone(), &kind.resource)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_would_change_a_path_or_an_rbac_action_are_refused() {
        for good in ["restart", "create-job", "web-0", "kube-system", "promote-full", "a.b"] {
            assert!(valid_name("x", good).is_ok(), "{good}");
        }
        let long = "a".repeat(MAX_NAME + 1);
        for bad in
            ["", ".", "..", "a/b", "../secrets", "a%2Fb", "a?b", "a#b", "*", "a b", "a\nb", long.as_str()]
        {
            assert!(valid_name("x", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn body_fields_win_over_the_query_and_empty_ones_fall_back_to_it() {
        assert_eq!(either("body".into(), "query".into()), "body");
        assert_eq!(either(String::new(), "query".into()), "query");
    }
}
