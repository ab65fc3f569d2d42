//! One AppProject through the API, as Argo CD serves it: `GET /api/v1/projects/{name}` and
//! `PUT /api/v1/projects/{name}` (Argo CD's ProjectUpdateRequest, `{project}`), which `berth proj windows`
//! and `argocd proj windows` edit sync windows with. RBAC: `projects, get|update, NAME`; a project the
//! caller may not see is refused as one that does not exist. The project travels as stored, fields berth
//! does not know included, so an update never drops them. Project roles are edited through that PUT (their
//! policies checked as Argo CD checks them); their tokens through
//! `POST /api/v1/projects/{name}/roles/{role}/token` and `DELETE …/token/{iat}?id=`.

use super::{ApiError, Caller, Shared, kube_error};
use axum::Json;
use axum::extract::{Path, Query, State};
use berth_api::AppProject;
use berth_api::project::AppProjectSpec;
use berth_api::project::JwtToken;
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// How many times a token write reads the project again after a concurrent change.
const WRITE_ATTEMPTS: usize = 5;

fn projects(shared: &Shared) -> Api<DynamicObject> {
    Api::namespaced_with(shared.client.clone(), &shared.namespace, &ApiResource::erase::<AppProject>(&()))
}

/// The project `name` if the caller may do `action` on it; a missing one is refused the same way.
async fn authorized_project(
    shared: &Shared,
    caller: &Caller,
    name: &str,
    action: &str,
) -> Result<DynamicObject, ApiError> {
    let denied = || ApiError::forbidden("permission denied");
    if !shared.rbac.enforce(caller, "projects", action, name) {
        return Err(denied());
    }
    projects(shared).get_opt(name).await.map_err(kube_error)?.ok_or_else(denied)
}

fn json(object: &DynamicObject) -> Result<Json<Value>, ApiError> {
    serde_json::to_value(object).map(Json).map_err(|e| ApiError::internal(e.to_string()))
}

/// `GET /api/v1/projects/{name}`.
pub(super) async fn get_project(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    json(&authorized_project(&shared, &caller, &name, "get").await?)
}

/// `PUT /api/v1/projects/{name}` with `{project}`: the stored project's spec replaced by the request's,
/// its sync windows checked first as Argo CD checks them. A `resourceVersion` in the request makes the
/// write conditional on it (a concurrent change is refused, not overwritten); metadata and status stay
/// the stored ones.
pub(super) async fn update_project(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    Path(name): Path<String>,
    Json(request): Json<Value>,
) -> Result<Json<Value>, ApiError> {
    let mut stored = authorized_project(&shared, &caller, &name, "update").await?;
    let update = &request["project"];
    if !update.is_object() {
        return Err(ApiError::bad_request("the request has no project"));
    }
    if update["metadata"]["name"].as_str().is_some_and(|n| n != name) {
        return Err(ApiError::bad_request(format!("the project's name must be '{name}'")));
    }
    let spec = update.get("spec").cloned().unwrap_or_else(|| serde_json::json!({}));
    let typed: AppProjectSpec = serde_json::from_value(spec.clone())
        .map_err(|e| ApiError::bad_request(format!("the project's spec: {e}")))?;
    berth_controller::windows::validate(&typed.sync_windows)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let mut checked = AppProject { spec: typed, ..Default::default() };
    checked.metadata.name = Some(name.clone());
    crate::rbac::validate_project_roles(&checked).map_err(|e| ApiError::bad_request(e.to_string()))?;
    // A role deleted then made again must not bring its old tokens back.
    forget_tokens_of_removed_roles(&mut stored.data, &checked);
    if let Some(version) = update["metadata"]["resourceVersion"].as_str().filter(|v| !v.is_empty()) {
        stored.metadata.resource_version = Some(version.to_string());
    }
    stored.data["spec"] = spec;
    let written =
        projects(&shared).replace(&name, &PostParams::default(), &stored).await.map_err(kube_error)?;
    tracing::info!(project = %name, user = %caller.name, "project updated");
    json(&written)
}

/// Argo CD's ProjectTokenCreateRequest; `expiresIn` is seconds, a number or (int64 in JSON) a string.
#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct TokenCreateRequest {
    description: Option<String>,
    expires_in: Option<Value>,
    id: Option<String>,
}

/// `POST /api/v1/projects/{name}/roles/{role}/token`: a token for the role (`sub: proj:<name>:<role>`),
/// answered as `{token}` and recorded (`{iat, exp, id}`) in `status.jwtTokensByRole[role]` and the role's
/// `jwtTokens`, as Argo CD does. RBAC `projects, update, <name>`; an unknown role is 404, a used id 400.
pub(super) async fn create_token(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    Path((name, role)): Path<(String, String)>,
    Json(request): Json<TokenCreateRequest>,
) -> Result<Json<Value>, ApiError> {
    let expires_in = seconds(request.expires_in.as_ref())?;
    let mut stored = authorized_project(&shared, &caller, &name, "update").await?;
    let issued = shared
        .sessions
        .issue_project_token(&name, &role, expires_in, request.id.as_deref())
        .map_err(|e| ApiError::from_auth(&e))?;
    for attempt in 1..=WRITE_ATTEMPTS {
        add_token(&mut stored.data, &name, &role, &issued.record)?;
        match projects(&shared).replace(&name, &PostParams::default(), &stored).await {
            Ok(_) => {
                tracing::info!(
                    project = %name,
                    role = %role,
                    id = issued.record.id.as_deref().unwrap_or_default(),
                    user = %caller.name,
                    description = request.description.as_deref().unwrap_or_default(),
                    "project token created"
                );
                return Ok(Json(serde_json::json!({"token": issued.token})));
            }
            Err(kube::Error::Api(e)) if e.code == 409 && attempt < WRITE_ATTEMPTS => {
                stored = authorized_project(&shared, &caller, &name, "update").await?;
            }
            Err(e) => return Err(kube_error(e)),
        }
    }
    Err(ApiError::internal(format!("project {name} kept changing; try again")))
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub(super) struct TokenDeleteQuery {
    id: Option<String>,
}

/// `DELETE /api/v1/projects/{name}/roles/{role}/token/{iat}[?id=]`: removes the token (by `id` when given,
/// else by issued-at time) from the status and the role, which revokes it. RBAC `projects, update, <name>`;
/// a token or role that is not there is already gone (`{}`), as in Argo CD.
pub(super) async fn delete_token(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    Path((name, role, iat)): Path<(String, String, i64)>,
    Query(query): Query<TokenDeleteQuery>,
) -> Result<Json<Value>, ApiError> {
    let mut stored = authorized_project(&shared, &caller, &name, "update").await?;
    let id = query.id.filter(|id| !id.is_empty());
    for attempt in 1..=WRITE_ATTEMPTS {
        if !remove_token(&mut stored.data, &role, iat, id.as_deref()) {
            return Ok(Json(serde_json::json!({})));
        }
        match projects(&shared).replace(&name, &PostParams::default(), &stored).await {
            Ok(_) => {
                tracing::info!(project = %name, role = %role, iat, user = %caller.name, "project token deleted");
                return Ok(Json(serde_json::json!({})));
            }
            Err(kube::Error::Api(e)) if e.code == 409 && attempt < WRITE_ATTEMPTS => {
                stored = authorized_project(&shared, &caller, &name, "update").await?;
            }
            Err(e) => return Err(kube_error(e)),
        }
    }
    Err(ApiError::internal(format!("project {name} kept changing; try again")))
}

/// `expiresIn` in seconds: absent, a number, or a string of digits (int64 as JSON writes it).
fn seconds(value: Option<&Value>) -> Result<Option<Duration>, ApiError> {
    let invalid = || ApiError::bad_request("expiresIn must be a whole number of seconds");
    let seconds = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_i64().ok_or_else(invalid)?,
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
        Some(Value::String(s)) => s.trim().parse::<i64>().map_err(|_| invalid())?,
        Some(_) => return Err(invalid()),
    };
    if seconds < 0 {
        return Err(ApiError::bad_request("expiresIn must not be negative"));
    }
    Ok(Some(Duration::from_secs(seconds.unsigned_abs())))
}

/// The index of role `role` in a stored project's `spec.roles`.
fn role_index(data: &Value, role: &str) -> Option<usize> {
    data["spec"]["roles"].as_array()?.iter().position(|r| r["name"].as_str() == Some(role))
}

/// Records `token` in the role's `jwtTokens` and in `status.jwtTokensByRole[role].items`, refusing an unknown
/// role (404) or an id either list already has (400).
fn add_token(data: &mut Value, project: &str, role: &str, token: &JwtToken) -> Result<(), ApiError> {
    let index = role_index(data, role)
        .ok_or_else(|| ApiError::not_found(format!("project '{project}' does not have role '{role}'")))?;
    let id = token.id.as_deref().unwrap_or_default();
    let used = |list: &Value| list.as_array().is_some_and(|l| l.iter().any(|t| t["id"].as_str() == Some(id)));
    if used(&data["spec"]["roles"][index]["jwtTokens"])
        || used(&data["status"]["jwtTokensByRole"][role]["items"])
    {
        return Err(ApiError::bad_request(format!("token id '{id}' has been used")));
    }
    let record = serde_json::to_value(token).map_err(|e| ApiError::internal(e.to_string()))?;
    push(&mut data["spec"]["roles"][index]["jwtTokens"], record.clone());
    if !data["status"].is_object() {
        data["status"] = serde_json::json!({});
    }
    push(&mut data["status"]["jwtTokensByRole"][role]["items"], record);
    Ok(())
}

/// Appends to the list at `slot`, making it (and the objects above it) when missing.
fn push(slot: &mut Value, item: Value) {
    match slot {
        Value::Array(items) => items.push(item),
        _ => *slot = Value::Array(vec![item]),
    }
}

/// Removes the role's token with `id` (or, without one, issued at `iat`) from both lists; whether any was
/// there. The status keeps an (empty) entry for the role, so it stays the list tokens are checked against.
fn remove_token(data: &mut Value, role: &str, iat: i64, id: Option<&str>) -> bool {
    let matches = |t: &Value| match id {
        Some(id) => t["id"].as_str() == Some(id),
        None => t["iat"].as_i64() == Some(iat),
    };
    let mut removed = false;
    let mut retain = |list: Option<&mut Vec<Value>>| {
        if let Some(list) = list {
            let before = list.len();
            list.retain(|t| !matches(t));
            removed |= list.len() != before;
        }
    };
    if let Some(index) = role_index(data, role) {
        retain(data["spec"]["roles"][index]["jwtTokens"].as_array_mut());
    }
    retain(
        data.pointer_mut(&format!("/status/jwtTokensByRole/{}/items", pointer_escape(role)))
            .and_then(Value::as_array_mut),
    );
    removed
}

fn pointer_escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Drops `status.jwtTokensByRole` entries of roles `project` no longer has.
fn forget_tokens_of_removed_roles(data: &mut Value, project: &AppProject) {
    if let Some(by_role) = data["status"]["jwtTokensByRole"].as_object_mut() {
        by_role.retain(|role, _| project.spec.roles.iter().any(|r| &r.name == role));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stored() -> Value {
        json!({"spec": {"roles": [{"name": "ci", "policies": []}, {"name": "dev"}]}})
    }

    fn token(id: &str, iat: i64) -> JwtToken {
        JwtToken { iat, exp: None, id: Some(id.into()) }
    }

    #[test]
    fn a_new_token_is_recorded_in_the_status_and_the_role() {
        let mut data = stored();
        add_token(&mut data, "shop", "ci", &JwtToken { iat: 10, exp: Some(70), id: Some("a".into()) })
            .unwrap();
        add_token(&mut data, "shop", "ci", &token("b", 20)).unwrap();
        assert_eq!(
            data["spec"]["roles"][0]["jwtTokens"],
            json!([{"iat": 10, "exp": 70, "id": "a"}, {"iat": 20, "id": "b"}])
        );
        assert_eq!(data["status"]["jwtTokensByRole"]["ci"]["items"], data["spec"]["roles"][0]["jwtTokens"]);
        assert!(data["spec"]["roles"][1].get("jwtTokens").is_none());
    }

    #[test]
    fn a_used_id_and_an_unknown_role_are_refused() {
        let mut data = stored();
        add_token(&mut data, "shop", "ci", &token("a", 10)).unwrap();
        let used = add_token(&mut data, "shop", "ci", &token("a", 20)).unwrap_err();
        assert_eq!((used.status.as_u16(), used.message.as_str()), (400, "token id 'a' has been used"));
        let unknown = add_token(&mut data, "shop", "ops", &token("c", 20)).unwrap_err();
        assert_eq!(
            (unknown.status.as_u16(), unknown.message.as_str()),
            (404, "project 'shop' does not have role 'ops'")
        );
    }

    #[test]
    fn deleting_a_token_removes_it_by_id_or_else_by_issued_at() {
        let mut data = stored();
        add_token(&mut data, "shop", "ci", &token("a", 10)).unwrap();
        add_token(&mut data, "shop", "ci", &token("b", 10)).unwrap();
        add_token(&mut data, "shop", "ci", &token("c", 30)).unwrap();
        assert!(remove_token(&mut data, "ci", 10, Some("b")));
        assert_eq!(data["status"]["jwtTokensByRole"]["ci"]["items"].as_array().unwrap().len(), 2);
        assert!(remove_token(&mut data, "ci", 30, None));
        assert!(!remove_token(&mut data, "ci", 30, None), "already gone");
        assert!(!remove_token(&mut data, "ops", 10, None));
        assert!(remove_token(&mut data, "ci", 10, Some("a")));
        assert_eq!(data["status"]["jwtTokensByRole"]["ci"]["items"], json!([]), "the entry stays, empty");
        assert_eq!(data["spec"]["roles"][0]["jwtTokens"], json!([]));
    }

    #[test]
    fn expires_in_is_seconds_as_a_number_or_a_string() {
        assert_eq!(seconds(None).unwrap(), None);
        assert_eq!(seconds(Some(&json!(3600))).unwrap(), Some(Duration::from_secs(3600)));
        assert_eq!(seconds(Some(&json!("86400"))).unwrap(), Some(Duration::from_secs(86400)));
        assert_eq!(seconds(Some(&json!("0"))).unwrap(), Some(Duration::ZERO));
        assert!(seconds(Some(&json!("1d"))).is_err());
        assert!(seconds(Some(&json!(-1))).is_err());
    }

    #[test]
    fn the_tokens_of_a_removed_role_are_forgotten() {
        let mut data = stored();
        add_token(&mut data, "shop", "ci", &token("a", 10)).unwrap();
        data["status"]["jwtTokensByRole"]["gone"] = json!({"items": [{"iat": 1, "id": "x"}]});
        let project: AppProject =
            serde_json::from_value(json!({"metadata": {"name": "shop"}, "spec": data["spec"]})).unwrap();
        forget_tokens_of_removed_roles(&mut data, &project);
        let roles: Vec<&String> = data["status"]["jwtTokensByRole"].as_object().unwrap().keys().collect();
        assert_eq!(roles, ["ci"]);
    }
}
