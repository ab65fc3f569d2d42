//! Repositories, clusters and accounts: Argo CD's settings endpoints.
//!
//! Repositories and clusters live where Argo CD keeps them, in Secrets of the control namespace labelled
//! `argocd.argoproj.io/secret-type: repository|cluster`, with Argo CD's keys; accounts in argocd-cm and
//! argocd-secret (see [`crate::auth`]). No response, log line or error message carries a password, a key or a
//! token: credentials are written, never read back.

use super::{ApiError, Shared, kube_error};
use crate::auth::{Account, AuthError};
use crate::rbac::Subject;
use crate::rbac::resources::{ACCOUNTS, CLUSTERS, REPOSITORIES};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use base64::Engine as _;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

pub(super) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/api/v1/repositories", get(list_repositories).post(create_repository))
        .route("/api/v1/repositories/{repo}", get(get_repository).delete(delete_repository))
        .route("/api/v1/clusters", get(list_clusters).post(create_cluster))
        .route("/api/v1/clusters/{server}", get(get_cluster).delete(delete_cluster))
        .route("/api/v1/account", get(list_accounts))
        .route("/api/v1/account/password", put(update_password))
        .route("/api/v1/account/can-i/{resource}/{action}/{*object}", get(can_i))
        .route("/api/v1/account/{name}", get(get_account))
        .route("/api/v1/account/{name}/token", post(create_token))
        .route("/api/v1/account/{name}/token/{id}", axum::routing::delete(delete_token))
}

/// `GET /api/v1/account/can-i/{resource}/{action}/{object}`: whether the caller may, as `argocd account
/// can-i` asks (the UI hides what it may not do). `{"value": "yes"|"no"}`.
async fn can_i(
    State(shared): State<Arc<Shared>>,
    headers: axum::http::HeaderMap,
    Path((resource, action, object)): Path<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    let caller = shared.caller(&headers)?;
    let allowed = shared.rbac.enforce(&caller, &resource, &action, &object);
    Ok(Json(json!({"value": if allowed { "yes" } else { "no" }})))
}

const SECRET_TYPE_LABEL: &str = "argocd.argoproj.io/secret-type";
/// The annotation Argo CD puts on the Secrets it writes.
const MANAGED_BY: (&str, &str) = ("managed-by", "argocd.argoproj.io");
const FIELD_MANAGER: &str = "argocd-server";
/// The cluster berth runs in, always a destination, as in Argo CD.
const IN_CLUSTER_SERVER: &str = "https://kubernetes.default.svc";
const IN_CLUSTER_NAME: &str = "in-cluster";

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct UpsertQuery {
    upsert: Option<bool>,
}

fn conflict(message: impl Into<String>) -> ApiError {
    ApiError { status: StatusCode::CONFLICT, code: 6, message: message.into() }
}

fn failed_precondition(message: impl Into<String>) -> ApiError {
    ApiError { status: StatusCode::BAD_REQUEST, code: 9, message: message.into() }
}

fn permission_denied() -> ApiError {
    ApiError::forbidden("permission denied")
}

/// Argo CD's RBAC object of a repository or cluster: `<project>/<url>`, or the URL alone without a project.
fn rbac_object(project: Option<&str>, url: &str) -> String {
    match project.filter(|p| !p.is_empty()) {
        Some(project) => format!("{project}/{url}"),
        None => url.to_string(),
    }
}

fn require(
    shared: &Shared,
    caller: &Subject,
    resource: &str,
    action: &str,
    object: &str,
) -> Result<(), ApiError> {
    if shared.rbac.enforce(caller, resource, action, object) { Ok(()) } else { Err(permission_denied()) }
}

/// Go's FNV-1a, 32 bits: Argo CD names the Secrets it creates with it.
fn fnv32a(parts: &[&str]) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in parts.iter().flat_map(|p| p.bytes()) {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

fn secrets(shared: &Shared) -> Api<Secret> {
    Api::namespaced(shared.client.clone(), &shared.namespace)
}

/// The Secrets of one Argo CD type (`repository`, `cluster`) in the control namespace.
async fn typed_secrets(shared: &Shared, kind: &str) -> Result<Vec<Secret>, ApiError> {
    let params = ListParams::default().labels(&format!("{SECRET_TYPE_LABEL}={kind}"));
    Ok(secrets(shared).list(&params).await.map_err(kube_error)?.items)
}

/// A Secret's data as text (Argo CD's keys are all text).
fn string_data(secret: &Secret) -> BTreeMap<String, String> {
    secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), String::from_utf8_lossy(&v.0).into_owned()))
        .collect()
}

fn secret_name(secret: &Secret) -> &str {
    secret.metadata.name.as_deref().unwrap_or_default()
}

/// A new Secret of Argo CD type `kind` holding `data`.
fn new_secret(shared: &Shared, name: String, kind: &str, data: &BTreeMap<String, String>) -> Secret {
    let mut secret = Secret::default();
    secret.metadata.name = Some(name);
    secret.metadata.namespace = Some(shared.namespace.clone());
    secret.metadata.labels = Some(BTreeMap::from([(SECRET_TYPE_LABEL.to_string(), kind.to_string())]));
    secret.metadata.annotations =
        Some(BTreeMap::from([(MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string())]));
    secret.type_ = Some("Opaque".into());
    secret.data = Some(data.iter().map(|(k, v)| (k.clone(), ByteString(v.as_bytes().to_vec()))).collect());
    secret
}

/// Rewrites the `keys` Argo CD owns in `secret` to `data` (a key absent from `data` is removed), leaving any
/// other key alone; refused by the API server if the Secret changed since it was read.
async fn rewrite_secret(
    shared: &Shared,
    secret: &Secret,
    keys: impl Iterator<Item = &'static str>,
    data: &BTreeMap<String, String>,
) -> Result<(), ApiError> {
    let current = secret.data.clone().unwrap_or_default();
    let mut changes = Map::new();
    for key in keys {
        match data.get(key) {
            Some(v) => {
                changes.insert(key.into(), base64::engine::general_purpose::STANDARD.encode(v).into());
            }
            None if current.contains_key(key) => {
                changes.insert(key.into(), Value::Null);
            }
            None => {}
        }
    }
    let body = json!({
        "metadata": {"resourceVersion": secret.metadata.resource_version},
        "data": changes,
    });
    let params = PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
    secrets(shared).patch(secret_name(secret), &params, &Patch::Merge(&body)).await.map_err(kube_error)?;
    Ok(())
}

/// `https://user:secret@host/x` → `https://host/x`, for log lines.
fn without_userinfo(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let end = rest.find('/').unwrap_or(rest.len());
            match rest[..end].rfind('@') {
                Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
                None => url.to_string(),
            }
        }
        None => url.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------------------
// Repositories

/// How a field of Argo CD's Repository is kept and shown.
#[derive(Clone, Copy, PartialEq)]
enum RepoField {
    Text,
    Bool,
    Number,
    /// Written to the Secret, never returned (credentials, and the client certificate as Argo CD).
    Withheld,
}

/// The fields of Argo CD's Repository besides `repo` (the Secret's `url`); each is its own Secret key.
const REPO_FIELDS: &[(&str, RepoField)] = &[
    ("type", RepoField::Text),
    ("name", RepoField::Text),
    ("project", RepoField::Text),
    ("username", RepoField::Text),
    ("password", RepoField::Withheld),
    ("sshPrivateKey", RepoField::Withheld),
    ("tlsClientCertData", RepoField::Withheld),
    ("tlsClientCertKey", RepoField::Withheld),
    ("githubAppPrivateKey", RepoField::Withheld),
    ("gcpServiceAccountKey", RepoField::Withheld),
    ("bearerToken", RepoField::Withheld),
    ("githubAppID", RepoField::Number),
    ("githubAppInstallationID", RepoField::Number),
    ("githubAppEnterpriseBaseUrl", RepoField::Text),
    ("proxy", RepoField::Text),
    ("noProxy", RepoField::Text),
    ("insecure", RepoField::Bool),
    ("insecureIgnoreHostKey", RepoField::Bool),
    ("enableLfs", RepoField::Bool),
    ("enableOCI", RepoField::Bool),
    ("forceHttpBasicAuth", RepoField::Bool),
    ("useAzureWorkloadIdentity", RepoField::Bool),
    ("insecureOCIForceHttp", RepoField::Bool),
];

const REPO_TYPES: &[&str] = &["git", "helm", "oci"];

fn repo_keys() -> impl Iterator<Item = &'static str> {
    std::iter::once("url").chain(REPO_FIELDS.iter().map(|(k, _)| *k))
}

/// Repository URLs compare as Argo CD's `git.SameURL` does: case, a trailing `/` and `.git` aside.
fn same_repo_url(a: &str, b: &str) -> bool {
    let norm = |u: &str| {
        let u = u.trim().trim_end_matches('/');
        u.strip_suffix(".git").unwrap_or(u).to_ascii_lowercase()
    };
    norm(a) == norm(b)
}

/// The Secret data of a Repository as Argo CD's API takes it (`repo`, `type`, `username`, `password`, ...).
/// Errors name the field, never its value.
fn repository_data(body: &Value) -> Result<(String, BTreeMap<String, String>), ApiError> {
    let Some(object) = body.as_object() else {
        return Err(ApiError::bad_request("the repository must be a JSON object"));
    };
    let url = object.get("repo").and_then(Value::as_str).map(str::trim).unwrap_or_default().to_string();
    if url.is_empty() {
        return Err(ApiError::bad_request("repo (the repository URL) is required"));
    }
    let mut data = BTreeMap::from([("url".to_string(), url.clone())]);
    for (key, kind) in REPO_FIELDS {
        let Some(value) = object.get(*key).filter(|v| !v.is_null()) else { continue };
        let text = match (kind, value) {
            (RepoField::Text | RepoField::Withheld, Value::String(s)) => s.clone(),
            (RepoField::Bool, Value::Bool(b)) => {
                if *b {
                    "true".into()
                } else {
                    String::new()
                }
            }
            (RepoField::Bool, Value::String(s)) if s == "true" || s == "false" => {
                if s == "true" {
                    "true".into()
                } else {
                    String::new()
                }
            }
            (RepoField::Number, Value::Number(n)) if n.is_i64() => {
                if n.as_i64() == Some(0) {
                    String::new()
                } else {
                    n.to_string()
                }
            }
            (RepoField::Number, Value::String(s)) if s.parse::<i64>().is_ok() => {
                if s == "0" {
                    String::new()
                } else {
                    s.clone()
                }
            }
            (RepoField::Bool, _) => {
                return Err(ApiError::bad_request(format!("{key} must be true or false")));
            }
            (RepoField::Number, _) => return Err(ApiError::bad_request(format!("{key} must be an integer"))),
            _ => return Err(ApiError::bad_request(format!("{key} must be a string"))),
        };
        if !text.is_empty() {
            data.insert(key.to_string(), text);
        }
    }
    let repo_type = data.entry("type".into()).or_insert_with(|| "git".into());
    if !REPO_TYPES.contains(&repo_type.as_str()) {
        return Err(ApiError::bad_request(format!(
            "type must be one of {}, not {repo_type:?}",
            REPO_TYPES.join(", ")
        )));
    }
    Ok((url, data))
}

/// What Argo CD's API returns of a repository: everything but credentials.
fn repository_view(data: &BTreeMap<String, String>) -> Value {
    let mut view = Map::new();
    view.insert("repo".into(), data.get("url").cloned().unwrap_or_default().into());
    view.insert("type".into(), data.get("type").filter(|t| !t.is_empty()).map_or("git", |t| t).into());
    for (key, kind) in REPO_FIELDS {
        let Some(value) = data.get(*key).filter(|v| !v.is_empty()) else { continue };
        match kind {
            RepoField::Text if *key != "type" => {
                view.insert(key.to_string(), value.clone().into());
            }
            RepoField::Bool if value == "true" => {
                view.insert(key.to_string(), true.into());
            }
            RepoField::Number => {
                if let Ok(n) = value.parse::<i64>() {
                    view.insert(key.to_string(), n.into());
                }
            }
            _ => {}
        }
    }
    Value::Object(view)
}

/// The keys Argo CD owns of a stored repository, `type` filled in as the API shows it.
fn stored_repository(secret: &Secret) -> BTreeMap<String, String> {
    let mut data: BTreeMap<String, String> = string_data(secret)
        .into_iter()
        .filter(|(k, v)| repo_keys().any(|key| key == k) && !v.is_empty())
        .collect();
    data.entry("type".into()).or_insert_with(|| "git".into());
    data
}

async fn find_repository(shared: &Shared, url: &str) -> Result<Option<Secret>, ApiError> {
    let all = typed_secrets(shared, "repository").await?;
    let url_of = |s: &Secret| string_data(s).remove("url").unwrap_or_default();
    // The URL as written wins over one that only normalises alike.
    let exact = all.iter().position(|s| url_of(s) == url);
    let index = exact.or_else(|| all.iter().position(|s| same_repo_url(&url_of(s), url)));
    Ok(index.map(|i| all[i].clone()))
}

/// The repository `url` if the caller may do `action` on it: 404 when absent (403 if they could not have
/// seen it anyway), 403 when not allowed.
async fn authorized_repository(
    shared: &Shared,
    caller: &Subject,
    url: &str,
    action: &str,
) -> Result<(Secret, BTreeMap<String, String>), ApiError> {
    let Some(secret) = find_repository(shared, url).await? else {
        require(shared, caller, REPOSITORIES, action, url)?;
        return Err(ApiError::not_found(format!("repo '{url}' not found")));
    };
    let data = stored_repository(&secret);
    let stored_url = data.get("url").cloned().unwrap_or_default();
    require(
        shared,
        caller,
        REPOSITORIES,
        action,
        &rbac_object(data.get("project").map(String::as_str), &stored_url),
    )?;
    Ok((secret, data))
}

/// `GET /api/v1/repositories`: the repositories the caller may get, without credentials.
async fn list_repositories(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let caller = shared.caller(&headers)?;
    let policy = shared.rbac.current();
    let resolved = policy.resolve(&caller);
    let mut items: Vec<BTreeMap<String, String>> = typed_secrets(&shared, "repository")
        .await?
        .iter()
        .map(stored_repository)
        .filter(|d| d.get("url").is_some_and(|u| !u.is_empty()))
        .filter(|d| {
            let object = rbac_object(d.get("project").map(String::as_str), &d["url"]);
            resolved.enforce(REPOSITORIES, "get", &object)
        })
        .collect();
    items.sort_by(|a, b| a["url"].cmp(&b["url"]));
    let items: Vec<Value> = items.iter().map(repository_view).collect();
    Ok(Json(json!({"metadata": {}, "items": items})))
}

/// `GET /api/v1/repositories/{repo}` (the URL, percent-encoded).
async fn get_repository(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(url): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let caller = shared.caller(&headers)?;
    let (_, data) = authorized_repository(&shared, &caller, &url, "get").await?;
    Ok(Json(repository_view(&data)))
}

/// `POST /api/v1/repositories[?upsert=true]`: Argo CD's Repository becomes a `repository` Secret. The same
/// spec again is a no-op; a different one is 409 unless upsert (RBAC `update` then, on the old and new
/// project).
async fn create_repository(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(query): Query<UpsertQuery>,
    Json(body): Json<Value>,
) -> Result<Json<Value>, ApiError> {
    let caller = shared.caller(&headers)?;
    let (url, data) = repository_data(&body)?;
    let project = data.get("project").map(String::as_str);
    let object = rbac_object(project, &url);
    require(&shared, &caller, REPOSITORIES, "create", &object)?;
    let logged_url = without_userinfo(&url);
    match find_repository(&shared, &url).await? {
        None => {
            let name = format!("repo-{}", fnv32a(&[&url, project.unwrap_or_default()]));
            let secret = new_secret(&shared, name, "repository", &data);
            secrets(&shared).create(&PostParams::default(), &secret).await.map_err(kube_error)?;
            tracing::info!(repo = %logged_url, user = %caller.name, "repository created");
        }
        Some(existing) => {
            let stored = stored_repository(&existing);
            if stored == data {
                return Ok(Json(repository_view(&data)));
            }
            if query.upsert != Some(true) {
                return Err(conflict(format!(
                    "repository '{logged_url}' already exists with a different spec; use upsert to replace it"
                )));
            }
            let stored_url = stored.get("url").cloned().unwrap_or_default();
            let old_object = rbac_object(stored.get("project").map(String::as_str), &stored_url);
            require(&shared, &caller, REPOSITORIES, "update", &old_object)?;
            require(&shared, &caller, REPOSITORIES, "update", &object)?;
            rewrite_secret(&shared, &existing, repo_keys(), &data).await?;
            tracing::info!(repo = %logged_url, user = %caller.name, "repository updated");
        }
    }
    Ok(Json(repository_view(&data)))
}

/// `DELETE /api/v1/repositories/{repo}`.
async fn delete_repository(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(url): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let caller = shared.caller(&headers)?;
    let (secret, _) = authorized_repository(&shared, &caller, &url, "delete").await?;
    secrets(&shared).delete(secret_name(&secret), &Default::default()).await.map_err(kube_error)?;
    tracing::info!(repo = %without_userinfo(&url), user = %caller.name, "repository deleted");
    Ok(Json(json!({})))
}

// ---------------------------------------------------------------------------------------------------------
// Clusters

/// The keys of a cluster Secret that Argo CD owns.
const CLUSTER_KEYS: &[&str] =
    &["name", "server", "config", "namespaces", "project", "clusterResources", "shard"];

/// Server URLs compare without a trailing `/`.
fn same_server(a: &str, b: &str) -> bool {
    a.trim().trim_end_matches('/') == b.trim().trim_end_matches('/')
}

fn is_in_cluster(server: &str) -> bool {
    same_server(server, IN_CLUSTER_SERVER)
}

/// Argo CD's name for a cluster Secret: `cluster-<host>-<FNV-1a of the URL>`.
fn cluster_secret_name(server: &str) -> Result<String, ApiError> {
    let rest = server.split_once("://").map(|(_, rest)| rest).filter(|r| !r.is_empty());
    let Some(rest) = rest else {
        return Err(ApiError::bad_request(format!(
            "server must be a URL like https://host:6443, not {server:?}"
        )));
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let authority = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default().replace(':', "-"),
        None => authority.split(':').next().unwrap_or_default().to_string(),
    };
    let host: String = host
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '-' })
        .collect();
    let host = host.trim_matches(|c| c == '.' || c == '-');
    let hash = fnv32a(&[server]);
    Ok(if host.is_empty() { format!("cluster-{hash}") } else { format!("cluster-{host}-{hash}") })
}

/// The Secret data of Argo CD's Cluster (`server`, `name`, `config`, `namespaces`, `project`, ...).
fn cluster_data(body: &Value) -> Result<(String, BTreeMap<String, String>), ApiError> {
    let Some(object) = body.as_object() else {
        return Err(ApiError::bad_request("the cluster must be a JSON object"));
    };
    let text = |key: &str| -> Result<String, ApiError> {
        match object.get(key) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.trim().to_string()),
            Some(_) => Err(ApiError::bad_request(format!("{key} must be a string"))),
        }
    };
    let server = text("server")?;
    if server.is_empty() {
        return Err(ApiError::bad_request("server (the cluster's API URL) is required"));
    }
    cluster_secret_name(&server)?;
    let mut name = text("name")?;
    if name.is_empty() {
        name = if is_in_cluster(&server) { IN_CLUSTER_NAME.into() } else { server.clone() };
    }
    let config = match object.get("config") {
        None | Some(Value::Null) => json!({"tlsClientConfig": {"insecure": false}}),
        Some(c @ Value::Object(_)) => c.clone(),
        Some(_) => return Err(ApiError::bad_request("config must be a JSON object")),
    };
    let mut data = BTreeMap::from([
        ("server".to_string(), server.clone()),
        ("name".to_string(), name),
        ("config".to_string(), config.to_string()),
    ]);
    match object.get("namespaces") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            let names: Vec<&str> = items.iter().filter_map(Value::as_str).filter(|n| !n.is_empty()).collect();
            if names.len() != items.len() {
                return Err(ApiError::bad_request("namespaces must be a list of namespace names"));
            }
            if !names.is_empty() {
                data.insert("namespaces".into(), names.join(","));
            }
        }
        Some(_) => return Err(ApiError::bad_request("namespaces must be a list of namespace names")),
    }
    let project = text("project")?;
    if !project.is_empty() {
        data.insert("project".into(), project);
    }
    match object.get("clusterResources") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => {}
        Some(Value::Bool(true)) => {
            data.insert("clusterResources".into(), "true".into());
        }
        Some(_) => return Err(ApiError::bad_request("clusterResources must be true or false")),
    }
    match object.get("shard") {
        None | Some(Value::Null) => {}
        Some(Value::Number(n)) if n.is_i64() => {
            data.insert("shard".into(), n.to_string());
        }
        Some(_) => return Err(ApiError::bad_request("shard must be an integer")),
    }
    Ok((server, data))
}

/// A cluster's `config` without its credentials: no password, bearer token, client key, nor the exec
/// provider's arguments and environment (they may hold secrets too), as Argo CD answers.
fn redacted_config(text: &str) -> Value {
    let Ok(Value::Object(mut config)) = serde_json::from_str::<Value>(text) else {
        return json!({});
    };
    config.remove("password");
    config.remove("bearerToken");
    if let Some(Value::Object(tls)) = config.get_mut("tlsClientConfig") {
        tls.remove("keyData");
    }
    if let Some(Value::Object(exec)) = config.get_mut("execProviderConfig") {
        exec.remove("args");
        exec.insert("env".into(), json!({}));
    }
    Value::Object(config)
}

/// The comparable form of a stored cluster: Argo CD's keys, `config` re-serialised.
fn stored_cluster(secret: &Secret) -> BTreeMap<String, String> {
    string_data(secret)
        .into_iter()
        .filter(|(k, v)| CLUSTER_KEYS.contains(&k.as_str()) && !v.is_empty())
        .map(|(k, v)| {
            if k == "config" {
                let canonical = serde_json::from_str::<Value>(&v).map(|c| c.to_string()).unwrap_or(v);
                (k, canonical)
            } else {
                (k, v)
            }
        })
        .collect()
}

/// What Argo CD's API returns of a cluster.
fn cluster_view(data: &BTreeMap<String, String>, secret: Option<&Secret>) -> Value {
    let mut view = Map::new();
    let field = |key: &str| data.get(key).cloned().unwrap_or_default();
    view.insert("server".into(), field("server").into());
    view.insert("name".into(), field("name").into());
    view.insert("config".into(), redacted_config(data.get("config").map_or("{}", String::as_str)));
    let namespaces: Vec<&str> = data
        .get("namespaces")
        .into_iter()
        .flat_map(|n| n.split(','))
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect();
    if !namespaces.is_empty() {
        view.insert("namespaces".into(), namespaces.into());
    }
    if let Some(project) = data.get("project").filter(|p| !p.is_empty()) {
        view.insert("project".into(), project.clone().into());
    }
    if data.get("clusterResources").is_some_and(|v| v == "true") {
        view.insert("clusterResources".into(), true.into());
    }
    if let Some(shard) = data.get("shard").and_then(|s| s.parse::<i64>().ok()) {
        view.insert("shard".into(), shard.into());
    }
    if let Some(secret) = secret {
        let labels: Map<String, Value> = secret
            .metadata
            .labels
            .iter()
            .flatten()
            .filter(|(k, _)| k.as_str() != SECRET_TYPE_LABEL)
            .map(|(k, v)| (k.clone(), v.clone().into()))
            .collect();
        if !labels.is_empty() {
            view.insert("labels".into(), labels.into());
        }
        let annotations: Map<String, Value> = secret
            .metadata
            .annotations
            .iter()
            .flatten()
            .filter(|(k, _)| k.as_str() != MANAGED_BY.0 && !k.starts_with("kubectl.kubernetes.io/"))
            .map(|(k, v)| (k.clone(), v.clone().into()))
            .collect();
        if !annotations.is_empty() {
            view.insert("annotations".into(), annotations.into());
        }
    }
    Value::Object(view)
}

/// The built-in in-cluster destination, as Argo CD lists it when no Secret declares it.
fn default_in_cluster() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("server".to_string(), IN_CLUSTER_SERVER.to_string()),
        ("name".to_string(), IN_CLUSTER_NAME.to_string()),
        ("config".to_string(), json!({"tlsClientConfig": {"insecure": false}}).to_string()),
    ])
}

/// The local API server's version and whether it answered, as Argo CD's `info` for the in-cluster entry;
/// other clusters are not contacted by the API server.
async fn connection_info(shared: &Shared, server: &str) -> Value {
    if !is_in_cluster(server) {
        return json!({"connectionState": {"status": "Unknown"}});
    }
    match shared.client.apiserver_version().await {
        Ok(v) => {
            let version = format!("{}.{}", v.major, v.minor.trim_end_matches('+'));
            json!({"serverVersion": version, "connectionState": {"status": "Successful"}})
        }
        Err(e) => json!({"connectionState": {"status": "Failed", "message": e.to_string()}}),
    }
}

/// A cluster as the API returns it, with Argo CD's `info`, `connectionState` and `serverVersion`.
async fn cluster_response(
    shared: &Shared,
    data: &BTreeMap<String, String>,
    secret: Option<&Secret>,
) -> Value {
    let mut view = cluster_view(data, secret);
    let info = connection_info(shared, data.get("server").map_or("", String::as_str)).await;
    view["connectionState"] = info["connectionState"].clone();
    if let Some(version) = info.get("serverVersion") {
        view["serverVersion"] = version.clone();
    }
    view["info"] = info;
    view
}

async fn find_cluster(shared: &Shared, server: &str) -> Result<Option<Secret>, ApiError> {
    let all = typed_secrets(shared, "cluster").await?;
    Ok(all.into_iter().find(|s| string_data(s).get("server").is_some_and(|v| same_server(v, server))))
}

fn cluster_object(data: &BTreeMap<String, String>) -> String {
    rbac_object(data.get("project").map(String::as_str), data.get("server").map_or("", String::as_str))
}

/// The cluster `server` (the in-cluster default when no Secret declares it) if the caller may do `action`.
async fn authorized_cluster(
    shared: &Shared,
    caller: &Subject,
    server: &str,
    action: &str,
) -> Result<(Option<Secret>, BTreeMap<String, String>), ApiError> {
    let found = find_cluster(shared, server).await?;
    let data = match &found {
        Some(secret) => stored_cluster(secret),
        None if is_in_cluster(server) => default_in_cluster(),
        None => {
            require(shared, caller, CLUSTERS, action, server)?;
            return Err(ApiError::not_found(format!("cluster '{server}' not found")));
        }
    };
    require(shared, caller, CLUSTERS, action, &cluster_object(&data))?;
    Ok((found, data))
}

/// `GET /api/v1/clusters`: in-cluster first, then the declared clusters the caller may get.
async fn list_clusters(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let caller = shared.caller(&headers)?;
    let policy = shared.rbac.current();
    let resolved = policy.resolve(&caller);
    let mut declared: Vec<(BTreeMap<String, String>, Secret)> = typed_secrets(&shared, "cluster")
        .await?
        .into_iter()
        .map(|s| (stored_cluster(&s), s))
        .filter(|(d, _)| d.get("server").is_some_and(|s| !s.is_empty()))
        .collect();
    declared.sort_by(|a, b| a.0["server"].cmp(&b.0["server"]));
    let in_cluster = declared.iter().position(|(d, _)| is_in_cluster(&d["server"]));
    let mut entries: Vec<(BTreeMap<String, String>, Option<Secret>)> = Vec::new();
    match in_cluster {
        Some(i) => {
            let (data, secret) = declared.remove(i);
            entries.push((data, Some(secret)));
        }
        None => entries.push((default_in_cluster(), None)),
    }
    entries.extend(declared.into_iter().map(|(d, s)| (d, Some(s))));
    let mut items = Vec::new();
    for (data, secret) in &entries {
        if resolved.enforce(CLUSTERS, "get", &cluster_object(data)) {
            items.push(cluster_response(&shared, data, secret.as_ref()).await);
        }
    }
    Ok(Json(json!({"metadata": {}, "items": items})))
}

/// `GET /api/v1/clusters/{server}` (the URL, percent-encoded).
async fn get_cluster(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(server): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let caller = shared.caller(&headers)?;
    let (secret, data) = authorized_cluster(&shared, &caller, &server, "get").await?;
    Ok(Json(cluster_response(&shared, &data, secret.as_ref()).await))
}

/// `POST /api/v1/clusters[?upsert=true]`: Argo CD's Cluster becomes a `cluster` Secret; the same spec again
/// is a no-op, a different one 409 unless upsert.
async fn create_cluster(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(query): Query<UpsertQuery>,
    Json(body): Json<Value>,
) -> Result<Json<Value>, ApiError> {
    let caller = shared.caller(&headers)?;
    let (server, data) = cluster_data(&body)?;
    let object = cluster_object(&data);
    require(&shared, &caller, CLUSTERS, "create", &object)?;
    let labels: BTreeMap<String, String> =
        serde_json::from_value(body.get("labels").cloned().unwrap_or(Value::Null)).unwrap_or_default();
    let annotations: BTreeMap<String, String> =
        serde_json::from_value(body.get("annotations").cloned().unwrap_or(Value::Null)).unwrap_or_default();
    let stored = match find_cluster(&shared, &server).await? {
        None => {
            let mut secret = new_secret(&shared, cluster_secret_name(&server)?, "cluster", &data);
            secret
                .metadata
                .labels
                .get_or_insert_default()
                .extend(labels.into_iter().filter(|(k, _)| k != SECRET_TYPE_LABEL));
            secret.metadata.annotations.get_or_insert_default().extend(annotations);
            let created =
                secrets(&shared).create(&PostParams::default(), &secret).await.map_err(kube_error)?;
            tracing::info!(server = %server, user = %caller.name, "cluster created");
            created
        }
        Some(existing) => {
            let current = stored_cluster(&existing);
            if current == data {
                return Ok(Json(cluster_response(&shared, &data, Some(&existing)).await));
            }
            if query.upsert != Some(true) {
                return Err(conflict(format!(
                    "cluster '{server}' already exists with a different spec; use upsert to replace it"
                )));
            }
            require(&shared, &caller, CLUSTERS, "update", &cluster_object(&current))?;
            require(&shared, &caller, CLUSTERS, "update", &object)?;
            rewrite_secret(&shared, &existing, CLUSTER_KEYS.iter().copied(), &data).await?;
            tracing::info!(server = %server, user = %caller.name, "cluster updated");
            secrets(&shared).get(secret_name(&existing)).await.map_err(kube_error)?
        }
    };
    Ok(Json(cluster_response(&shared, &data, Some(&stored)).await))
}

/// `DELETE /api/v1/clusters/{server}`: removes the cluster's Secret. The built-in in-cluster destination has
/// none and cannot be removed (a Secret declaring it can, which brings the default back).
async fn delete_cluster(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(server): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let caller = shared.caller(&headers)?;
    let (secret, _) = authorized_cluster(&shared, &caller, &server, "delete").await?;
    let Some(secret) = secret else {
        return Err(failed_precondition(format!(
            "cluster '{IN_CLUSTER_SERVER}' ({IN_CLUSTER_NAME}) is the cluster berth runs in: it is built in and \
             cannot be removed"
        )));
    };
    secrets(&shared).delete(secret_name(&secret), &Default::default()).await.map_err(kube_error)?;
    tracing::info!(server = %server, user = %caller.name, "cluster deleted");
    Ok(Json(json!({})))
}

// ---------------------------------------------------------------------------------------------------------
// Accounts

/// An account error as the API answers it. A missing capability is the request's fault here, not the
/// session's: 400, so a client does not read it as "log in again".
fn account_error(e: AuthError) -> ApiError {
    match e {
        AuthError::MissingCapability { .. } | AuthError::AccountDisabled(_) => {
            failed_precondition(e.to_string())
        }
        AuthError::TooManyAttempts { .. } => {
            ApiError { status: StatusCode::TOO_MANY_REQUESTS, code: 8, message: e.to_string() }
        }
        e => ApiError { status: e.http_status(), code: e.grpc_code(), message: e.to_string() },
    }
}

/// Re-reads argocd-cm and argocd-secret into the session manager (logins and tokens then see the change)
/// and returns the accounts.
async fn fresh_accounts(shared: &Shared) -> Result<Arc<crate::auth::Accounts>, ApiError> {
    let (key, accounts) =
        crate::auth::load(&shared.client, &shared.namespace).await.map_err(account_error)?;
    shared.sessions.replace(key, accounts);
    Ok(shared.sessions.accounts())
}

/// An account may always read and update itself; others need RBAC `accounts` on its name.
fn may_touch_account(shared: &Shared, caller: &Subject, action: &str, account: &str) -> bool {
    caller.name == account || shared.rbac.enforce(caller, ACCOUNTS, action, account)
}

/// Argo CD's Account: name, enabled, capabilities and the API tokens' `{id, issuedAt, expiresAt}`, newest
/// first. Nothing else of argocd-secret.
fn account_view(account: &Account) -> Value {
    let mut tokens = account.tokens.clone();
    tokens.sort_by_key(|t| std::cmp::Reverse(t.issued_at));
    let tokens: Vec<Value> = tokens
        .iter()
        .map(|t| {
            let mut token = json!({"id": t.id, "issuedAt": t.issued_at});
            if let Some(exp) = t.expires_at {
                token["expiresAt"] = exp.into();
            }
            token
        })
        .collect();
    json!({
        "name": account.name,
        "enabled": account.enabled,
        "capabilities": account.capabilities.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
        "tokens": tokens,
    })
}

/// `GET /api/v1/account`: the accounts the caller may get (always itself).
async fn list_accounts(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let caller = shared.caller(&headers)?;
    let accounts = fresh_accounts(&shared).await?;
    let items: Vec<Value> = accounts
        .iter()
        .filter(|a| may_touch_account(&shared, &caller, "get", &a.name))
        .map(account_view)
        .collect();
    Ok(Json(json!({"items": items})))
}

/// `GET /api/v1/account/{name}`.
async fn get_account(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let caller = shared.caller(&headers)?;
    if !may_touch_account(&shared, &caller, "get", &name) {
        return Err(permission_denied());
    }
    let accounts = fresh_accounts(&shared).await?;
    let account =
        accounts.get(&name).ok_or_else(|| account_error(AuthError::AccountNotFound(name.clone())))?;
    Ok(Json(account_view(account)))
}

/// Argo CD's UpdatePasswordRequest. No `Debug`: it holds passwords.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct PasswordChange {
    #[serde(default)]
    name: String,
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
}

/// `PUT /api/v1/account/password`: `{name?, currentPassword, newPassword}`. As in Argo CD the caller proves
/// who they are with *their own* current password, whichever account changes; changing another account's
/// password also needs RBAC `accounts, update, <name>`. Tokens issued before the change stop working.
async fn update_password(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Json(change): Json<PasswordChange>,
) -> Result<Json<Value>, ApiError> {
    let caller = shared.caller(&headers)?;
    let target = if change.name.is_empty() { caller.name.clone() } else { change.name.clone() };
    if target != caller.name && !shared.rbac.enforce(&caller, ACCOUNTS, "update", &target) {
        return Err(permission_denied());
    }
    if change.current_password.is_empty() {
        return Err(ApiError::bad_request("currentPassword is required: the caller's current password"));
    }
    if change.new_password.is_empty() {
        return Err(ApiError::bad_request("newPassword is required"));
    }
    let checker = shared.clone();
    let (user, current) = (caller.name.clone(), change.current_password);
    let checked = tokio::task::spawn_blocking(move || checker.sessions.check_password(&user, &current))
        .await
        .map_err(|e| ApiError::internal(format!("checking the current password: {e}")))?;
    match checked {
        Ok(()) => {}
        Err(e @ AuthError::TooManyAttempts { .. }) => return Err(account_error(e)),
        Err(_) => return Err(account_error(AuthError::WrongCurrentPassword)),
    }
    crate::auth::set_password(&shared.client, &shared.namespace, &target, &change.new_password)
        .await
        .map_err(account_error)?;
    fresh_accounts(&shared).await?;
    if target == caller.name {
        tracing::info!(account = %target, "user updated their password");
    } else {
        tracing::info!(account = %target, user = %caller.name, "user updated another account's password");
    }
    Ok(Json(json!({})))
}

/// Argo CD's CreateTokenRequest: `expiresIn` in seconds (a number, or a string as gRPC-gateway writes
/// int64), `id` optional.
#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct TokenRequest {
    expires_in: Option<Value>,
    id: Option<String>,
}

fn expires_in(value: Option<&Value>) -> Result<Option<Duration>, ApiError> {
    let seconds = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) if s.is_empty() => return Ok(None),
        Some(Value::String(s)) => s.parse::<i64>().ok(),
        Some(_) => None,
    };
    match seconds {
        Some(s) if s >= 0 => Ok((s > 0).then(|| Duration::from_secs(s.unsigned_abs()))),
        _ => Err(ApiError::bad_request("expiresIn must be a whole number of seconds (0: never expires)")),
    }
}

/// `POST /api/v1/account/{name}/token`: a new API token (only for accounts with the apiKey capability),
/// listed in argocd-secret; the token itself is in this answer only.
async fn create_token(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Option<Json<TokenRequest>>,
) -> Result<Json<Value>, ApiError> {
    let caller = shared.caller(&headers)?;
    if !may_touch_account(&shared, &caller, "update", &name) {
        return Err(permission_denied());
    }
    let request = body.map(|Json(b)| b).unwrap_or_default();
    let expires = expires_in(request.expires_in.as_ref())?;
    fresh_accounts(&shared).await?;
    let issued = shared
        .sessions
        .generate_token(&name, expires, request.id.as_deref().filter(|id| !id.is_empty()))
        .map_err(account_error)?;
    crate::auth::add_api_token(&shared.client, &shared.namespace, &name, &issued.record)
        .await
        .map_err(account_error)?;
    fresh_accounts(&shared).await?;
    tracing::info!(account = %name, id = %issued.record.id, user = %caller.name, "API token created");
    Ok(Json(json!({"token": issued.token})))
}

/// `DELETE /api/v1/account/{name}/token/{id}`: the token stops working.
async fn delete_token(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path((name, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let caller = shared.caller(&headers)?;
    if !may_touch_account(&shared, &caller, "update", &name) {
        return Err(permission_denied());
    }
    let deleted = crate::auth::delete_api_token(&shared.client, &shared.namespace, &name, &id)
        .await
        .map_err(account_error)?;
    if !deleted {
        return Err(ApiError::not_found(format!("token with id '{id}' does not exist")));
    }
    fresh_accounts(&shared).await?;
    tracing::info!(account = %name, id = %id, user = %caller.name, "API token deleted");
    Ok(Json(json!({})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv32a_matches_go_hash_fnv() {
        assert_eq!(fnv32a(&[""]), 0x811c_9dc5);
        assert_eq!(fnv32a(&["a"]), 0xe40c_292c);
        assert_eq!(fnv32a(&["foo", "bar"]), fnv32a(&["foobar"]));
    }

    #[test]
    fn cluster_secrets_are_named_as_argo_cd_names_them() {
        let name = cluster_secret_name("https://Kube.Example.com:6443").unwrap();
        assert_eq!(name, format!("cluster-kube.example.com-{}", fnv32a(&["https://Kube.Example.com:6443"])));
        let v6 = cluster_secret_name("https://[fe80::1]:8443").unwrap();
        assert!(v6.starts_with("cluster-fe80--1-"), "{v6}");
        assert!(cluster_secret_name("kube.example.com").is_err());
    }

    #[test]
    fn repository_requests_become_argo_cd_secret_keys_and_views_never_show_credentials() {
        let body = json!({"repo": "https://git.example.com/org/app.git", "username": "bot", "password": "hunter22",
            "sshPrivateKey": "KEY", "insecure": true, "enableLfs": false, "project": "team-a", "githubAppID": 12});
        let (url, data) = repository_data(&body).unwrap();
        assert_eq!(url, "https://git.example.com/org/app.git");
        assert_eq!(data["url"], url);
        assert_eq!(data["type"], "git");
        assert_eq!(data["password"], "hunter22");
        assert_eq!(data["insecure"], "true");
        assert!(!data.contains_key("enableLfs"));
        let view = repository_view(&data);
        assert_eq!(
            view,
            json!({"repo": url, "type": "git", "username": "bot", "project": "team-a", "insecure": true,
                "githubAppID": 12})
        );
        let text = view.to_string();
        assert!(!text.contains("hunter22") && !text.contains("KEY"), "{text}");
        assert!(repository_data(&json!({"repo": ""})).is_err());
        let error = repository_data(&json!({"repo": "x", "password": 5})).unwrap_err();
        assert_eq!(error.message, "password must be a string");
        assert!(repository_data(&json!({"repo": "x", "type": "svn"})).is_err());
    }

    #[test]
    fn repository_urls_match_as_argo_cd_compares_them() {
        assert!(same_repo_url("https://GitHub.com/org/app.git", "https://github.com/org/app/"));
        assert!(!same_repo_url("https://github.com/org/app", "https://github.com/org/other"));
    }

    #[test]
    fn cluster_configs_lose_every_credential() {
        let config = json!({"username": "u", "password": "p", "bearerToken": "tok",
            "tlsClientConfig": {"insecure": false, "caData": "CA", "certData": "CERT", "keyData": "KEY"},
            "execProviderConfig": {"command": "aws", "args": ["--secret", "s"], "env": {"K": "V"}}});
        let redacted = redacted_config(&config.to_string());
        assert_eq!(
            redacted,
            json!({"username": "u", "tlsClientConfig": {"insecure": false, "caData": "CA", "certData": "CERT"},
                "execProviderConfig": {"command": "aws", "env": {}}})
        );
        assert_eq!(redacted_config("not json"), json!({}));
    }

    #[test]
    fn cluster_requests_become_argo_cd_secret_keys() {
        let body = json!({"server": "https://k.example:6443", "name": "prod", "namespaces": ["a", "b"],
            "project": "team-a", "config": {"bearerToken": "tok"}, "clusterResources": true});
        let (server, data) = cluster_data(&body).unwrap();
        assert_eq!(server, "https://k.example:6443");
        assert_eq!(data["namespaces"], "a,b");
        assert_eq!(data["clusterResources"], "true");
        let view = cluster_view(&data, None);
        assert_eq!(view["namespaces"], json!(["a", "b"]));
        assert_eq!(view["config"], json!({}));
        assert!(!view.to_string().contains("tok"));
        let (_, data) = cluster_data(&json!({"server": IN_CLUSTER_SERVER})).unwrap();
        assert_eq!(data["name"], IN_CLUSTER_NAME);
        assert!(cluster_data(&json!({"name": "x"})).is_err());
    }

    #[test]
    fn rbac_objects_carry_the_project_when_there_is_one() {
        assert_eq!(rbac_object(Some("team-a"), "https://g/x"), "team-a/https://g/x");
        assert_eq!(rbac_object(Some(""), "https://g/x"), "https://g/x");
        assert_eq!(rbac_object(None, "https://g/x"), "https://g/x");
    }

    #[test]
    fn log_lines_drop_credentials_in_urls() {
        assert_eq!(without_userinfo("https://u:p@git.example.com/x"), "https://git.example.com/x");
        assert_eq!(without_userinfo("git@github.com:org/x.git"), "git@github.com:org/x.git");
    }

    #[test]
    fn token_lifetimes_read_numbers_and_strings() {
        assert_eq!(expires_in(Some(&json!(3600))).unwrap(), Some(Duration::from_secs(3600)));
        assert_eq!(expires_in(Some(&json!("60"))).unwrap(), Some(Duration::from_secs(60)));
        assert_eq!(expires_in(Some(&json!(0))).unwrap(), None);
        assert_eq!(expires_in(None).unwrap(), None);
        assert!(expires_in(Some(&json!(-1))).is_err());
        assert!(expires_in(Some(&json!("1h"))).is_err());
    }
}
