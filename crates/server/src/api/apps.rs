//! Reading and changing one Application: get (with `?refresh`), update, update of the spec, patch,
//! revision metadata and events, with Argo CD's paths, shapes and RBAC checks. Each route about one app takes
//! Argo CD's `?appNamespace=` for an app outside the control namespace.

use super::query::ListQuery;
use super::{ApiError, Caller, GrpcCode, Shared, kube_error};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use berth_api::{Application, finalizers};
use kube::api::Api;
use std::sync::Arc;
use std::time::Duration;

/// How long `?refresh` waits for the controller to have looked again.
const REFRESH_WAIT: Duration = Duration::from_secs(60);

#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub(super) struct GetQuery {
    refresh: Option<String>,
    #[serde(rename = "appNamespace")]
    app_namespace: Option<String>,
}

/// Argo CD's `appNamespace` parameter: the namespace of the Application a route is about; absent or
/// empty, the control namespace.
#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct AppNamespaceQuery {
    pub(crate) app_namespace: Option<String>,
}

/// `GET /api/v1/applications/{name}[?refresh=normal|hard][&appNamespace=]`: with `refresh`, the controller
/// compares again (a hard refresh renders again too) and the answer is the Application after that, as
/// Argo CD's.
pub(super) async fn get_application(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    Path(name): Path<String>,
    Query(query): Query<GetQuery>,
) -> Result<Json<Application>, ApiError> {
    let app = authorized_app_in(&shared, &caller, query.app_namespace.as_deref(), &name, "get").await?;
    let namespace = shared.app_namespace(query.app_namespace.as_deref()).to_string();
    let hard = match query.refresh.as_deref() {
        None | Some("") => return Ok(Json((*app).clone())),
        Some("normal") | Some("true") => false,
        Some("hard") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!("refresh: {other:?} is neither normal nor hard")));
        }
    };
    // Through the annotation even with the controller in process: its removal, in the controller's status
    // write, says the refresh is done.
    let api: Api<Application> = Api::namespaced(shared.client.clone(), &namespace);
    let level = if hard { "hard" } else { "normal" };
    let patch = serde_json::json!({"metadata": {"annotations": {berth_api::annotations::REFRESH: level}}});
    let patched = api
        .patch(&name, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch))
        .await
        .map_err(kube_error)?;
    let written: u64 = patched.metadata.resource_version.as_deref().and_then(|v| v.parse().ok()).unwrap_or(0);
    let deadline = tokio::time::Instant::now() + REFRESH_WAIT;
    let key = kube::runtime::reflector::ObjectRef::new(&name).within(&namespace);
    let mut changes = shared.events.subscribe();
    loop {
        if let Some(app) = shared.apps.get(&key) {
            let rv: u64 = app.metadata.resource_version.as_deref().and_then(|v| v.parse().ok()).unwrap_or(0);
            let pending = app
                .metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key(berth_api::annotations::REFRESH));
            if rv > written && !pending {
                return Ok(Json((*app).clone()));
            }
        } else {
            return Err(ApiError::not_found(format!("applications.argoproj.io \"{name}\" not found")));
        }
        match tokio::time::timeout_at(deadline, changes.recv()).await {
            Ok(Ok(_)) | Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) | Err(_) => {
                return Err(ApiError::new(
                    GrpcCode::DeadlineExceeded,
                    format!(
                        "application {name}: the controller did not finish the refresh within {}s",
                        REFRESH_WAIT.as_secs()
                    ),
                ));
            }
        }
    }
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub(super) struct UpdateQuery {
    /// Argo CD's `validate`; berth validates on every write, so it is accepted and ignored.
    #[allow(dead_code)]
    validate: Option<bool>,
    #[serde(rename = "appNamespace")]
    app_namespace: Option<String>,
}

/// Replaces the spec (and labels, annotations, finalizers) of the stored Application with `wanted`'s, keeping
/// its status and operation; `update` on the stored project and, when it moves, on the new one.
async fn replace(
    shared: &Shared,
    caller: &crate::rbac::Subject,
    namespace: Option<&str>,
    name: &str,
    wanted: serde_json::Value,
    only_spec: bool,
) -> Result<Application, ApiError> {
    let stored = authorized_app_in(shared, caller, namespace, name, "update").await?;
    let stored = latest(shared, caller, &stored, "update").await?;
    replace_stored(shared, caller, stored, wanted, only_spec).await
}

/// `app` as the API server holds it now, still authorized for `action`. A write computed from the watch's
/// copy, which can trail the caller's own previous write by a moment, would fail with a conflict the caller
/// never caused; a concurrent change by someone else still is one, through the resourceVersion.
async fn latest(
    shared: &Shared,
    caller: &crate::rbac::Subject,
    app: &Application,
    action: &str,
) -> Result<Arc<Application>, ApiError> {
    let namespace = app.metadata.namespace.as_deref().unwrap_or(&shared.namespace);
    let name = app.metadata.name.as_deref().unwrap_or_default();
    let api: Api<Application> = Api::namespaced(shared.client.clone(), namespace);
    let current = api.get_opt(name).await.map_err(kube_error)?;
    current
        .filter(|current| shared.rbac.enforce(caller, "applications", action, &shared.app_object(current)))
        .map(Arc::new)
        .ok_or_else(|| ApiError::forbidden("permission denied"))
}

/// [`replace`] of an Application already read and authorized for `update` by the caller. Whatever `wanted`
/// says of `status` and `operation` is not taken: only the spec, labels, annotations and finalizers are.
pub(super) async fn replace_stored(
    shared: &Shared,
    caller: &crate::rbac::Subject,
    stored: Arc<Application>,
    wanted: serde_json::Value,
    only_spec: bool,
) -> Result<Application, ApiError> {
    let name = stored.metadata.name.clone().unwrap_or_default();
    let name = name.as_str();
    let mut next = serde_json::to_value(&*stored).map_err(|e| ApiError::internal(e.to_string()))?;
    next["apiVersion"] = "argoproj.io/v1alpha1".into();
    next["kind"] = "Application".into();
    if only_spec {
        next["spec"] = wanted;
    } else {
        if wanted["metadata"]["name"].as_str().is_some_and(|n| n != name) {
            return Err(ApiError::bad_request(format!(
                "metadata.name {:?} does not match the path's {name:?}",
                wanted["metadata"]["name"].as_str().unwrap_or_default()
            )));
        }
        next["spec"] = wanted["spec"].clone();
        for field in ["labels", "annotations", "finalizers"] {
            next["metadata"][field] = wanted["metadata"][field].clone();
        }
        // A resourceVersion sent along must still be current (optimistic concurrency).
        if let Some(rv) = wanted["metadata"]["resourceVersion"].as_str().filter(|v| !v.is_empty()) {
            next["metadata"]["resourceVersion"] = rv.into();
        }
    }
    let typed: Application = serde_json::from_value(next.clone())
        .map_err(|e| ApiError::bad_request(format!("the Application: {e}")))?;
    if typed.spec.project != stored.spec.project {
        if !shared.rbac.enforce(caller, "applications", "update", &shared.app_object(&typed)) {
            return Err(ApiError::forbidden("permission denied"));
        }
        // The project it moves to must admit its namespace too.
        namespace_admitted(shared, &typed).await?;
    }
    let resource = kube::api::ApiResource::erase::<Application>(&());
    let namespace = stored.metadata.namespace.as_deref().unwrap_or(&shared.namespace);
    let api: Api<kube::api::DynamicObject> =
        Api::namespaced_with(shared.client.clone(), namespace, &resource);
    let object: kube::api::DynamicObject =
        serde_json::from_value(next).map_err(|e| ApiError::bad_request(format!("the Application: {e}")))?;
    let written = api.replace(name, &kube::api::PostParams::default(), &object).await.map_err(kube_error)?;
    let written = serde_json::to_value(written).map_err(|e| ApiError::internal(e.to_string()))?;
    serde_json::from_value(written).map_err(|e| ApiError::internal(e.to_string()))
}

/// `PUT /api/v1/applications/{name}[?appNamespace=]`: the Application as sent (spec, labels, annotations,
/// finalizers). Without `appNamespace` the app is the one of the body's `metadata.namespace` (what Argo CD's
/// clients send), else of the control namespace; a body naming another namespace than the query is refused.
pub(super) async fn update_application(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    Path(name): Path<String>,
    Query(query): Query<UpdateQuery>,
    Json(app): Json<serde_json::Value>,
) -> Result<Json<Application>, ApiError> {
    let sent = app["metadata"]["namespace"].as_str().filter(|ns| !ns.is_empty());
    let asked = query.app_namespace.as_deref().filter(|ns| !ns.is_empty());
    let namespace = match (asked, sent) {
        (Some(asked), Some(sent)) if shared.app_namespace(Some(asked)) != sent => {
            return Err(ApiError::bad_request(format!(
                "metadata.namespace {sent:?} does not match appNamespace {asked:?}"
            )));
        }
        (asked, sent) => asked.or(sent).map(str::to_string),
    };
    replace(&shared, &caller, namespace.as_deref(), &name, app, false).await.map(Json)
}

/// `PUT /api/v1/applications/{name}/spec`: only the spec (what `berth app set` sends); answers the spec.
pub(super) async fn update_spec(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    Path(name): Path<String>,
    Query(query): Query<UpdateQuery>,
    Json(spec): Json<serde_json::Value>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let app = replace(&shared, &caller, query.app_namespace.as_deref(), &name, spec, true).await?;
    serde_json::to_value(app.spec).map(Json).map_err(|e| ApiError::internal(e.to_string()))
}

/// Argo CD's ApplicationPatchRequest.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PatchRequest {
    patch: String,
    #[serde(default)]
    patch_type: Option<String>,
}

/// `PATCH /api/v1/applications/{name}`: `{patch, patchType: json|merge}` applied to the stored Application,
/// then written as an update (so the same RBAC checks hold, a project change included).
pub(super) async fn patch_application(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    Path(name): Path<String>,
    Query(at): Query<AppNamespaceQuery>,
    Json(request): Json<PatchRequest>,
) -> Result<Json<Application>, ApiError> {
    let namespace = at.app_namespace.as_deref();
    let stored = authorized_app_in(&shared, &caller, namespace, &name, "update").await?;
    let stored = latest(&shared, &caller, &stored, "update").await?;
    let mut doc = serde_json::to_value(&*stored).map_err(|e| ApiError::internal(e.to_string()))?;
    let patch: serde_json::Value = serde_json::from_str(&request.patch)
        .map_err(|e| ApiError::bad_request(format!("patch: not JSON: {e}")))?;
    if touches_operation_or_status(&patch) {
        return Err(ApiError::bad_request(
            "patch: operation and status cannot be patched; start an operation with /sync or /rollback",
        ));
    }
    match request.patch_type.as_deref().unwrap_or("json") {
        "json" => {
            let patch: json_patch::Patch = serde_json::from_value(patch)
                .map_err(|e| ApiError::bad_request(format!("patch: not a JSON patch: {e}")))?;
            json_patch::patch(&mut doc, &patch).map_err(|e| ApiError::bad_request(format!("patch: {e}")))?;
        }
        "merge" => json_patch::merge(&mut doc, &patch),
        other => {
            return Err(ApiError::bad_request(format!(
                "patchType {other:?} is not supported: use json or merge (strategic merge patch does not apply to custom resources)"
            )));
        }
    }
    // The resourceVersion read is the one written against: a concurrent change is a conflict, not lost.
    doc["metadata"]["resourceVersion"] = stored.metadata.resource_version.clone().unwrap_or_default().into();
    replace_stored(&shared, &caller, stored, doc, false).await.map(Json)
}

/// Does a JSON patch (a list of operations) or a merge patch (an object) reach `/operation` or `/status`?
fn touches_operation_or_status(patch: &serde_json::Value) -> bool {
    let guarded = |path: &str| {
        ["/operation", "/status"].iter().any(|p| path == *p || path.starts_with(&format!("{p}/")))
    };
    match patch {
        serde_json::Value::Array(operations) => operations.iter().any(|op| {
            ["path", "from"].iter().any(|k| op[*k].as_str().is_some_and(guarded))
                // `/` replaces the whole document, status and operation included.
                || op["path"].as_str() == Some("")
        }),
        serde_json::Value::Object(fields) => {
            fields.contains_key("operation") || fields.contains_key("status")
        }
        _ => false,
    }
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct MetadataQuery {
    source_index: Option<usize>,
    app_namespace: Option<String>,
}

/// `GET /api/v1/applications/{name}/revisions/{revision}/metadata`: author, date, message of a commit of the
/// app's git source.
pub(super) async fn revision_metadata(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    Path((name, revision)): Path<(String, String)>,
    Query(query): Query<MetadataQuery>,
) -> Result<Json<berth_api::application::RevisionMetadata>, ApiError> {
    let app = authorized_app_in(&shared, &caller, query.app_namespace.as_deref(), &name, "get").await?;
    let (instance, at, index) = (shared.instance_of(&app), revision.clone(), query.source_index.unwrap_or(0));
    super::tree::on_controller(
        &shared,
        move |c| async move { c.revision_metadata(&instance, &at, index).await },
    )
    .await?
    .map(Json)
    .map_err(|m| ApiError::not_found(format!("revision {revision}: {m}")))
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct EventsQuery {
    app_namespace: Option<String>,
    resource_namespace: Option<String>,
    resource_name: Option<String>,
    resource_uid: Option<String>,
}

/// `GET /api/v1/applications/{name}/events`: the Kubernetes Events of the Application (or, with
/// `resourceNamespace`, `resourceName`, `resourceUID`, of one of its resources), newest last.
pub(super) async fn events(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    Path(name): Path<String>,
    Query(query): Query<EventsQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    use k8s_openapi::api::core::v1::Event;
    let app = authorized_app_in(&shared, &caller, query.app_namespace.as_deref(), &name, "get").await?;
    let (namespace, fields) = match (&query.resource_name, &query.resource_uid) {
        (Some(resource), uid) => {
            let namespace = query.resource_namespace.clone().unwrap_or_default();
            // The live object the app tracks under that name; its uid selects the Events (so another
            // object of the same name, or one the app only claims in status, shows nothing).
            let wanted_uid = uid.as_deref().filter(|u| !u.is_empty());
            let tracked =
                super::tree::tracked_objects(&shared, &app).await?.into_iter().find_map(|(_, live)| {
                    let meta = &live["metadata"];
                    let uid = meta["uid"].as_str()?;
                    (meta["name"].as_str() == Some(resource.as_str())
                        && meta["namespace"].as_str().unwrap_or_default() == namespace
                        && wanted_uid.is_none_or(|w| w == uid))
                    .then(|| uid.to_string())
                });
            let Some(uid) = tracked else {
                return Err(ApiError::not_found(format!(
                    "{namespace}/{resource} is not a resource of application {name}"
                )));
            };
            (namespace, format!("involvedObject.name={resource},involvedObject.uid={uid}"))
        }
        (None, _) => {
            let mut fields = format!("involvedObject.name={name},involvedObject.kind=Application");
            if let Some(uid) = app.metadata.uid.as_deref() {
                fields.push_str(&format!(",involvedObject.uid={uid}"));
            }
            (shared.app_namespace(query.app_namespace.as_deref()).to_string(), fields)
        }
    };
    let api: Api<Event> = if namespace.is_empty() {
        Api::all(shared.client.clone())
    } else {
        Api::namespaced(shared.client.clone(), &namespace)
    };
    let mut list = api.list(&kube::api::ListParams::default().fields(&fields)).await.map_err(kube_error)?;
    let at = |e: &Event| {
        e.last_timestamp
            .as_ref()
            .map(|t| t.0)
            .or_else(|| e.event_time.as_ref().map(|t| t.0))
            .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0))
    };
    list.items.sort_by_key(|e| at(e));
    Ok(Json(serde_json::json!({"metadata": {}, "items": list.items})))
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct ResourceQuery {
    app_namespace: Option<String>,
    namespace: String,
    resource_name: String,
    group: String,
    version: String,
    kind: String,
}

/// `GET /api/v1/applications/{name}/resource?namespace=&resourceName=&group=&version=&kind=`: the live
/// manifest of one of the app's resources or of an object they own (a ReplicaSet, a Pod), as Argo CD's
/// `{"manifest": "<JSON>"}`. The kind must be one the API server serves, spelled as it does; the object must
/// carry the app's tracking id or be owned by one that does; a Secret's values are masked by its real kind.
/// Anything else is 404, whatever exists in the cluster.
pub(super) async fn resource(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    Path(name): Path<String>,
    Query(query): Query<ResourceQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let app = authorized_app_in(&shared, &caller, query.app_namespace.as_deref(), &name, "get").await?;
    if query.kind.is_empty() || query.resource_name.is_empty() {
        return Err(ApiError::bad_request("kind and resourceName are required"));
    }
    let not_found = || {
        ApiError::not_found(format!(
            "{} {} is not a resource of application {name}",
            query.kind, query.resource_name
        ))
    };
    let kind = super::members::resolve(&shared.client, &query.group, &query.version, &query.kind)
        .await?
        .ok_or_else(not_found)?;
    let namespace = if kind.namespaced { query.namespace.as_str() } else { "" };
    let mut value = super::members::get(&shared.client, &kind, namespace, &query.resource_name)
        .await?
        .ok_or_else(not_found)?;
    let tracking = shared.http_settings().tracking.clone();
    if !super::members::belongs(&shared.client, &shared.instance_of(&app), &tracking, &value).await? {
        return Err(not_found());
    }
    super::members::mask(&mut value);
    Ok(Json(serde_json::json!({"manifest": value.to_string()})))
}

/// The RBAC object of `app` for a server whose control namespace is `control`: `<project>/<name>` there,
/// `<project>/<namespace>/<name>` elsewhere, as in Argo CD.
pub(crate) fn app_object_in(control: &str, app: &Application) -> String {
    let project = if app.spec.project.is_empty() { "default" } else { &app.spec.project };
    let namespace = app.metadata.namespace.as_deref().filter(|ns| *ns != control);
    crate::rbac::app_object(project, namespace, app.metadata.name.as_deref().unwrap_or_default())
}

/// The application `name` of `namespace` (`?appNamespace=`; `None` or empty: the control namespace) if the
/// caller may do `action` on it. An app that does not exist, or lives in a namespace whose Applications are
/// not served, is refused exactly as one the caller may not see (403 `permission denied`), so names in
/// other projects cannot be probed (Argo CD, GHSA-2q5c-qw9c-fmvq). An app outside the control namespace
/// whose project does not list that namespace in `sourceNamespaces` is refused after that, as Argo CD's
/// server refuses it ([`namespace_admitted`]).
pub(crate) async fn authorized_app_in(
    shared: &Shared,
    caller: &crate::rbac::Subject,
    namespace: Option<&str>,
    name: &str,
    action: &str,
) -> Result<Arc<Application>, ApiError> {
    let key = kube::runtime::reflector::ObjectRef::new(name).within(shared.app_namespace(namespace));
    let app = shared
        .apps
        .get(&key)
        .filter(|app| shared.rbac.enforce(caller, "applications", action, &shared.app_object(app)))
        .ok_or_else(|| ApiError::forbidden("permission denied"))?;
    namespace_admitted(shared, &app).await?;
    Ok(app)
}

/// Argo CD's refusal of an app its project does not admit, worded so project names cannot be probed.
fn not_admitted(project: &str) -> ApiError {
    ApiError::bad_request(format!(
        "app is not allowed in project \"{project}\", or the project does not exist"
    ))
}

/// Whether `app`'s project admits the namespace it lives in: always in the control namespace; elsewhere
/// the project must exist and list the namespace in `sourceNamespaces`. Refused as Argo CD's server does
/// (InvalidArgument, one message for a missing project and a refusing one); the reason is logged.
pub(crate) async fn namespace_admitted(shared: &Shared, app: &Application) -> Result<(), ApiError> {
    let namespace = app.metadata.namespace.as_deref().unwrap_or_default();
    let project = if app.spec.project.is_empty() { "default" } else { &app.spec.project };
    let name = app.metadata.name.as_deref().unwrap_or_default();
    project_admits(shared, project, namespace, name).await.map_err(|why| {
        tracing::warn!(app = name, namespace, project, "{why}");
        not_admitted(project)
    })
}

/// Whether the AppProject `project` admits the Application `name` of `namespace` (see
/// [`namespace_admitted`]); the refusal says why, for the log.
pub(crate) async fn project_admits(
    shared: &Shared,
    project: &str,
    namespace: &str,
    name: &str,
) -> Result<(), String> {
    if namespace.is_empty() || namespace == shared.namespace {
        return Ok(());
    }
    let projects: Api<berth_api::AppProject> = Api::namespaced(shared.client.clone(), &shared.namespace);
    let found = projects.get_opt(project).await.map_err(|e| format!("cannot read project {project}: {e}"))?;
    let found = found.ok_or_else(|| format!("project {project} does not exist"))?;
    berth_controller::project::source_namespace_check(
        name,
        namespace,
        &shared.namespace,
        project,
        &found.spec.source_namespaces,
    )
}

/// `GET /api/v1/applications`: the apps the query selects and the caller may `get`, by name, of the control
/// namespace and of every namespace served (or only of `appNamespace`); with `limit`, a page of them, and
/// `metadata.continue` (the next page's token) and `remainingItemCount` while more remain.
pub(super) async fn list_applications(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    #[derive(serde::Serialize)]
    struct Page<'a> {
        metadata: PageMetadata,
        items: &'a [&'a Application],
    }
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct PageMetadata {
        #[serde(rename = "continue", skip_serializing_if = "Option::is_none")]
        next: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        remaining_item_count: Option<usize>,
    }
    let query = ListQuery::from_pairs(pairs)?;
    let policy = shared.rbac.current();
    let resolved = policy.resolve(&caller);
    let apps = shared.apps.state();
    let mut items: Vec<&Application> = apps
        .iter()
        .map(|a| &**a)
        .filter(|a| query.is_after_page(a))
        .filter(|a| query.matches(a))
        .filter(|a| resolved.enforce("applications", "get", &shared.app_object(a)))
        .collect();
    // By name, then namespace: the order `continue` resumes in.
    fn position(a: &Application) -> (&str, &str) {
        (a.metadata.name.as_deref().unwrap_or_default(), a.metadata.namespace.as_deref().unwrap_or_default())
    }
    items.sort_unstable_by(|a, b| position(a).cmp(&position(b)));
    let shown = query.limit.unwrap_or(items.len()).min(items.len());
    let remaining = items.len() - shown;
    let metadata = PageMetadata {
        next: (remaining > 0).then(|| {
            let (name, namespace) = position(items[shown - 1]);
            ListQuery::continue_token(namespace, name)
        }),
        remaining_item_count: (remaining > 0).then_some(remaining),
    };
    let body = serde_json::to_vec(&Page { metadata, items: &items[..shown] })
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(([(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response())
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub(super) struct CreateQuery {
    upsert: Option<bool>,
}

/// `POST /api/v1/applications`: creates the Application in its `metadata.namespace` when applications in
/// other namespaces are enabled (none: the control namespace), else in the control namespace. `status` and `operation` from the request are dropped (operations start only through `/sync`
/// and `/rollback`), as Argo CD does. Outside the control namespace, as Argo CD's server: the project must
/// admit the namespace ([`namespace_admitted`]), then the namespace must be one whose Applications are served
/// (else Unknown `namespace 'x' is not permitted`). `?upsert=true` over an existing app is an update:
/// `update` on it as stored and on the app as sent, and `create` on the latter.
pub(super) async fn create_application(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    Query(query): Query<CreateQuery>,
    Json(mut app): Json<serde_json::Value>,
) -> Result<Json<Application>, ApiError> {
    let Some(fields) = app.as_object_mut() else {
        return Err(ApiError::bad_request("the Application: not a JSON object"));
    };
    fields.remove("status");
    fields.remove("operation");
    let name = app["metadata"]["name"].as_str().filter(|n| !n.is_empty()).map(str::to_string);
    let Some(name) = name else { return Err(ApiError::bad_request("metadata.name is required")) };
    // Without applications in other namespaces the app lands in the control namespace whatever it names,
    // so a manifest written for `argocd` works unchanged under another control namespace.
    let namespace = app["metadata"]["namespace"]
        .as_str()
        .filter(|ns| !ns.is_empty() && !shared.application_namespaces.is_empty())
        .unwrap_or(&shared.namespace)
        .to_string();
    let project = app["spec"]["project"].as_str().filter(|p| !p.is_empty()).unwrap_or("default").to_string();
    let outside = (namespace != shared.namespace).then_some(namespace.as_str());
    let object = crate::rbac::app_object(&project, outside, &name);
    if !shared.rbac.enforce(&caller, "applications", "create", &object) {
        return Err(ApiError::forbidden("permission denied"));
    }
    app["apiVersion"] = "argoproj.io/v1alpha1".into();
    app["kind"] = "Application".into();
    app["metadata"]["namespace"] = namespace.clone().into();
    // The typed form checks the shape (an error names the field); the JSON goes to the API server as sent.
    let typed = serde_json::from_value::<Application>(app.clone())
        .map_err(|e| ApiError::bad_request(format!("the Application: {e}")))?;
    namespace_admitted(&shared, &typed).await?;
    if !shared.serves_namespace(&namespace) {
        return Err(ApiError::new(GrpcCode::Unknown, format!("namespace '{namespace}' is not permitted")));
    }
    if query.upsert == Some(true) {
        let typed: Api<Application> = Api::namespaced(shared.client.clone(), &namespace);
        if let Some(existing) = typed.get_opt(&name).await.map_err(kube_error)? {
            let existing = Arc::new(existing);
            if !shared.rbac.enforce(&caller, "applications", "update", &shared.app_object(&existing))
                || !shared.rbac.enforce(&caller, "applications", "update", &object)
            {
                return Err(ApiError::forbidden("permission denied"));
            }
            return replace_stored(&shared, &caller, existing, app, false).await.map(Json);
        }
    }
    let resource = kube::api::ApiResource::erase::<Application>(&());
    let api: Api<kube::api::DynamicObject> =
        Api::namespaced_with(shared.client.clone(), &namespace, &resource);
    let object: kube::api::DynamicObject =
        serde_json::from_value(app).map_err(|e| ApiError::bad_request(format!("the Application: {e}")))?;
    let stored = api.create(&kube::api::PostParams::default(), &object).await.map_err(kube_error)?;
    let stored = serde_json::to_value(stored).map_err(|e| ApiError::internal(e.to_string()))?;
    serde_json::from_value(stored).map(Json).map_err(|e| ApiError::internal(e.to_string()))
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub(super) struct DeleteQuery {
    cascade: Option<bool>,
    #[serde(rename = "appNamespace")]
    app_namespace: Option<String>,
}

/// `DELETE /api/v1/applications/{name}?cascade=true|false[&appNamespace=]`: with cascade (the default) the app's
/// resources go too (Argo CD's resources finalizer); without, they stay.
pub(super) async fn delete_application(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    Path(name): Path<String>,
    Query(query): Query<DeleteQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let app = authorized_app_in(&shared, &caller, query.app_namespace.as_deref(), &name, "delete").await?;
    let api: Api<Application> =
        Api::namespaced(shared.client.clone(), shared.app_namespace(query.app_namespace.as_deref()));
    let cascade = query.cascade.unwrap_or(true);
    let mut finalizers: Vec<String> = app.metadata.finalizers.clone().unwrap_or_default();
    let has = finalizers.iter().any(|f| finalizers::is_resources(f));
    if cascade && !has {
        finalizers.push(finalizers::RESOURCES.into());
    } else if !cascade {
        finalizers.retain(|f| !finalizers::is_resources(f));
    }
    if finalizers != app.metadata.finalizers.clone().unwrap_or_default() {
        let patch = serde_json::json!({"metadata": {"finalizers": finalizers}});
        api.patch(&name, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch))
            .await
            .map_err(kube_error)?;
    }
    api.delete(&name, &Default::default()).await.map_err(kube_error)?;
    Ok(Json(serde_json::json!({})))
}

/// `GET /api/v1/projects`: the AppProjects the caller may get.
pub(super) async fn list_projects(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
) -> Result<Json<serde_json::Value>, ApiError> {
    // Only right after the start is the store not filled yet.
    let ready = tokio::time::timeout(std::time::Duration::from_secs(10), shared.projects.wait_until_ready());
    if !matches!(ready.await, Ok(Ok(()))) {
        return Err(ApiError::new(
            super::GrpcCode::Unavailable,
            "the projects are not loaded yet; try again",
        ));
    }
    let policy = shared.rbac.current();
    let rbac = policy.resolve(&caller);
    let mut items: Vec<Arc<berth_api::AppProject>> = shared
        .projects
        .state()
        .into_iter()
        .filter(|p| rbac.enforce("projects", "get", p.metadata.name.as_deref().unwrap_or_default()))
        .collect();
    items.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let items: Vec<&berth_api::AppProject> = items.iter().map(|p| p.as_ref()).collect();
    Ok(Json(serde_json::json!({"metadata": {}, "items": items})))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(namespace: &str, name: &str, project: &str) -> Application {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"project": project, "destination": {}}
        }))
        .unwrap()
    }

    #[test]
    fn apps_outside_the_control_namespace_are_rbac_objects_with_their_namespace() {
        assert_eq!(app_object_in("argocd", &app("argocd", "web", "shop")), "shop/web");
        assert_eq!(app_object_in("argocd", &app("team-a", "web", "shop")), "shop/team-a/web");
        assert_eq!(app_object_in("argocd", &app("team-a", "web", "")), "default/team-a/web");
        let rbac = crate::rbac::Enforcer::from_config(
            "p, alice, applications, get, shop/team-a/*, allow\np, bob, applications, get, shop/*, allow",
            None,
            None,
            true,
        )
        .unwrap();
        let (alice, bob) = (crate::rbac::Subject::user("alice"), crate::rbac::Subject::user("bob"));
        let outside = app_object_in("argocd", &app("team-a", "web", "shop"));
        let inside = app_object_in("argocd", &app("argocd", "web", "shop"));
        assert!(rbac.enforce(&alice, "applications", "get", &outside));
        assert!(!rbac.enforce(&alice, "applications", "get", &inside));
        assert!(rbac.enforce(&bob, "applications", "get", &outside));
        assert!(rbac.enforce(&bob, "applications", "get", &inside));
    }

    #[test]
    fn patches_that_reach_operation_or_status_are_recognised() {
        let json = |v: serde_json::Value| touches_operation_or_status(&v);
        assert!(json(serde_json::json!([{"op": "add", "path": "/operation", "value": {}}])));
        assert!(json(
            serde_json::json!([{"op": "replace", "path": "/status/resources/0/kind", "value": "x"}])
        ));
        assert!(json(serde_json::json!([{"op": "copy", "from": "/status", "path": "/spec/x"}])));
        assert!(json(serde_json::json!([{"op": "replace", "path": "", "value": {}}])));
        assert!(json(serde_json::json!({"operation": {"sync": {}}})));
        assert!(json(serde_json::json!({"status": null})));
        assert!(!json(serde_json::json!([{"op": "replace", "path": "/spec/operationx", "value": 1}])));
        assert!(!json(serde_json::json!({"spec": {"project": "default"}})));
    }
}
