//! Argo CD's repositories: `repository` Secrets keyed by `url`, with every credential withheld from answers.

use super::UpsertQuery;
use super::secrets::{
    SecretBacked, authorized, delete, fnv32a, list_allowed, new_secret, string_data, upsert,
};
use crate::api::{ApiError, Caller, Shared};
use crate::rbac::resources::REPOSITORIES;
use axum::Json;
use axum::extract::{Path, Query, State};
use berth_api::secret_type;
use k8s_openapi::api::core::v1::Secret;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

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

/// Argo CD's repositories: `repository` Secrets keyed by `url`.
struct Repositories;

impl SecretBacked for Repositories {
    const SECRET_TYPE: &'static str = secret_type::REPOSITORY;
    const RBAC_RESOURCE: &'static str = REPOSITORIES;
    const NOUN: &'static str = "repository";
    const ID_KEY: &'static str = "url";
    const NOT_FOUND_NOUN: &'static str = "repo";

    fn keys() -> impl Iterator<Item = &'static str> {
        repo_keys()
    }
    fn stored(secret: &Secret) -> BTreeMap<String, String> {
        stored_repository(secret)
    }
    /// One repository when their one spelling is the same: case, a trailing `/` and `.git` aside, as Argo
    /// CD's `git.SameURL`.
    fn same_id(a: &str, b: &str) -> bool {
        berth_repo::url::normalize(a) == berth_repo::url::normalize(b)
    }
    fn logged(url: &str) -> String {
        berth_repo::url::without_userinfo(url)
    }
}

/// `GET /api/v1/repositories`: the repositories the caller may get, without credentials.
pub(super) async fn list_repositories(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let items: Vec<Value> = list_allowed::<Repositories>(&shared, &caller)
        .await?
        .iter()
        .map(|(d, _)| repository_view(d))
        .collect();
    Ok(Json(json!({"metadata": {}, "items": items})))
}

/// `GET /api/v1/repositories/{repo}` (the URL, percent-encoded).
pub(super) async fn get_repository(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    Path(url): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (_, data) = authorized::<Repositories>(&shared, &caller, &url, "get").await?;
    Ok(Json(repository_view(&data)))
}

/// `POST /api/v1/repositories[?upsert=true]`: Argo CD's Repository becomes a `repository` Secret. The same
/// spec again is a no-op; a different one is 409 unless upsert (RBAC `update` then, on the old and new
/// project).
pub(super) async fn create_repository(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    Query(query): Query<UpsertQuery>,
    Json(body): Json<Value>,
) -> Result<Json<Value>, ApiError> {
    let (url, data) = repository_data(&body)?;
    let name = format!("repo-{}", fnv32a(&[&url, data.get("project").map_or("", String::as_str)]));
    let secret = new_secret(&shared, name, secret_type::REPOSITORY, &data);
    upsert::<Repositories>(&shared, &caller, &url, &data, secret, query.upsert == Some(true)).await?;
    Ok(Json(repository_view(&data)))
}

/// `DELETE /api/v1/repositories/{repo}`.
pub(super) async fn delete_repository(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    Path(url): Path<String>,
) -> Result<Json<Value>, ApiError> {
    delete::<Repositories>(&shared, &caller, &url).await
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(Repositories::same_id("https://GitHub.com/org/app.git", "https://github.com/org/app/"));
        assert!(!Repositories::same_id("https://github.com/org/app", "https://github.com/org/other"));
    }
}
