//! Argo CD's clusters: `cluster` Secrets keyed by `server`, and the built-in in-cluster destination.

use super::UpsertQuery;
use super::secrets::{
    MANAGED_BY, SecretBacked, authorized, delete, fnv32a, list_allowed, new_secret, string_data, upsert,
};
use crate::api::{ApiError, Caller, Shared};
use crate::rbac::resources::CLUSTERS;
use axum::Json;
use axum::extract::{Path, Query, State};
use berth_api::destination::{IN_CLUSTER_NAME, IN_CLUSTER_SERVER};
use berth_api::secret_type;
use berth_controller::clusters::same_server;
use berth_controller::clusters::secret::{ClusterSecret, redacted_config};
use k8s_openapi::api::core::v1::Secret;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The keys of a cluster Secret that Argo CD owns.
const CLUSTER_KEYS: &[&str] =
    &["name", "server", "config", "namespaces", "project", "clusterResources", "shard"];

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

/// What Argo CD's API returns of a cluster: `data` (its Secret's keys, or a request's) read as the
/// controller reads a cluster Secret ([`ClusterSecret`]), with the labels and annotations of `secret`.
/// `server` is shown as stored, `config` without its credentials ([`redacted_config`]).
fn cluster_view(data: &BTreeMap<String, String>, secret: Option<&Secret>) -> Value {
    let mut view = Map::new();
    let field = |key: &str| data.get(key).cloned().unwrap_or_default();
    view.insert("server".into(), field("server").into());
    view.insert("name".into(), field("name").into());
    view.insert("config".into(), redacted_config(data.get("config").map_or("{}", String::as_str)));
    // `config` is shown from its own text above: the rest of the Secret does not depend on it parsing.
    let keys = Secret {
        metadata: secret.map(|s| s.metadata.clone()).unwrap_or_default(),
        string_data: Some(
            data.iter()
                .filter(|(k, _)| k.as_str() != "config")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        ..Secret::default()
    };
    if let Ok(cluster) = ClusterSecret::from_secret(&keys) {
        if !cluster.namespaces.is_empty() {
            view.insert("namespaces".into(), cluster.namespaces.into());
        }
        if let Some(project) = cluster.project {
            view.insert("project".into(), project.into());
        }
        if cluster.cluster_resources {
            view.insert("clusterResources".into(), true.into());
        }
        let labels: Map<String, Value> = cluster
            .labels
            .into_iter()
            .filter(|(k, _)| k.as_str() != secret_type::LABEL)
            .map(|(k, v)| (k, v.into()))
            .collect();
        if !labels.is_empty() {
            view.insert("labels".into(), labels.into());
        }
        let annotations: Map<String, Value> = cluster
            .annotations
            .into_iter()
            .filter(|(k, _)| k.as_str() != MANAGED_BY.0 && !k.starts_with("kubectl.kubernetes.io/"))
            .map(|(k, v)| (k, v.into()))
            .collect();
        if !annotations.is_empty() {
            view.insert("annotations".into(), annotations.into());
        }
    }
    if let Some(shard) = data.get("shard").and_then(|s| s.parse::<i64>().ok()) {
        view.insert("shard".into(), shard.into());
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

/// Argo CD's `info` of a cluster. With a controller in this process: what it recorded of the cluster
/// (connection state, version, cache, applications; see [`berth_controller::Controller::cluster_info`]).
/// Without one: the local API server's version and whether it answered for the in-cluster entry, and
/// `Unknown` for the others, which the API server does not contact.
async fn connection_info(shared: &Shared, server: &str) -> Value {
    if shared.controller.get().is_some() {
        // On the controller's runtime (it may make a cluster's client, see `on_controller`).
        let server = server.to_string();
        let info = crate::api::tree::on_controller(shared, move |c| async move {
            serde_json::to_value(c.cluster_info(&server)).unwrap_or_default()
        })
        .await;
        return info.unwrap_or_else(|_| json!({"connectionState": {"status": "Unknown"}}));
    }
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

/// A cluster as the API returns it, with Argo CD's `info`, and its `connectionState` and `serverVersion`
/// repeated at the top, as Argo CD's older fields.
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

/// Argo CD's clusters: `cluster` Secrets keyed by `server`, and the built-in in-cluster destination.
struct Clusters;

impl SecretBacked for Clusters {
    const SECRET_TYPE: &'static str = secret_type::CLUSTER;
    const RBAC_RESOURCE: &'static str = CLUSTERS;
    const NOUN: &'static str = "cluster";
    const ID_KEY: &'static str = "server";

    fn keys() -> impl Iterator<Item = &'static str> {
        CLUSTER_KEYS.iter().copied()
    }
    fn stored(secret: &Secret) -> BTreeMap<String, String> {
        stored_cluster(secret)
    }
    fn same_id(a: &str, b: &str) -> bool {
        same_server(a, b)
    }
    fn built_in() -> Option<BTreeMap<String, String>> {
        Some(default_in_cluster())
    }
}

/// `GET /api/v1/clusters`: in-cluster first (unless argocd-cm `cluster.inClusterEnabled` is `"false"`), then
/// the declared clusters the caller may get.
pub(super) async fn list_clusters(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    // As Argo CD lists them: without the in-cluster while argocd-cm disables it (unless a Secret declares it).
    let in_cluster_enabled = shared.controller.get().is_none_or(|c| c.in_cluster_enabled());
    let mut items = Vec::new();
    for (data, secret) in &list_allowed::<Clusters>(&shared, &caller).await? {
        let server = data.get("server").map_or("", String::as_str);
        if !in_cluster_enabled && secret.is_none() && is_in_cluster(server) {
            continue;
        }
        items.push(cluster_response(&shared, data, secret.as_ref()).await);
    }
    Ok(Json(json!({"metadata": {}, "items": items})))
}

/// `GET /api/v1/clusters/{server}` (the URL, percent-encoded).
pub(super) async fn get_cluster(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    Path(server): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (secret, data) = authorized::<Clusters>(&shared, &caller, &server, "get").await?;
    Ok(Json(cluster_response(&shared, &data, secret.as_ref()).await))
}

/// `POST /api/v1/clusters[?upsert=true]`: Argo CD's Cluster becomes a `cluster` Secret; the same spec again
/// is a no-op, a different one 409 unless upsert.
pub(super) async fn create_cluster(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    Query(query): Query<UpsertQuery>,
    Json(body): Json<Value>,
) -> Result<Json<Value>, ApiError> {
    let (server, data) = cluster_data(&body)?;
    let labels: BTreeMap<String, String> =
        serde_json::from_value(body.get("labels").cloned().unwrap_or(Value::Null)).unwrap_or_default();
    let annotations: BTreeMap<String, String> =
        serde_json::from_value(body.get("annotations").cloned().unwrap_or(Value::Null)).unwrap_or_default();
    let mut secret = new_secret(&shared, cluster_secret_name(&server)?, secret_type::CLUSTER, &data);
    secret
        .metadata
        .labels
        .get_or_insert_default()
        .extend(labels.into_iter().filter(|(k, _)| k != secret_type::LABEL));
    secret.metadata.annotations.get_or_insert_default().extend(annotations);
    let stored =
        upsert::<Clusters>(&shared, &caller, &server, &data, secret, query.upsert == Some(true)).await?;
    Ok(Json(cluster_response(&shared, &data, Some(&stored)).await))
}

/// `DELETE /api/v1/clusters/{server}`: removes the cluster's Secret. The built-in in-cluster destination has
/// none and cannot be removed (a Secret declaring it can, which brings the default back).
pub(super) async fn delete_cluster(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    Path(server): Path<String>,
) -> Result<Json<Value>, ApiError> {
    delete::<Clusters>(&shared, &caller, &server).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_secrets_are_named_as_argo_cd_names_them() {
        let name = cluster_secret_name("https://Kube.Example.com:6443").unwrap();
        assert_eq!(name, format!("cluster-kube.example.com-{}", fnv32a(&["https://Kube.Example.com:6443"])));
        let v6 = cluster_secret_name("https://[fe80::1]:8443").unwrap();
        assert!(v6.starts_with("cluster-fe80--1-"), "{v6}");
        assert!(cluster_secret_name("kube.example.com").is_err());
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
    fn a_stored_cluster_is_shown_as_the_controller_reads_its_secret_whatever_its_config() {
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {"name": "cluster-prod", "labels": {"argocd.argoproj.io/secret-type": "cluster", "env": "prod"},
                         "annotations": {"managed-by": "argocd.argoproj.io", "team": "web",
                                         "kubectl.kubernetes.io/last-applied-configuration": "{}"}},
        }))
        .unwrap();
        let data = BTreeMap::from([
            ("server".to_string(), "https://prod.example:6443/".to_string()),
            ("name".to_string(), "prod".to_string()),
            ("namespaces".to_string(), " web, ,api".to_string()),
            ("clusterResources".to_string(), "yes".to_string()),
            ("project".to_string(), "team-a".to_string()),
            ("shard".to_string(), "2".to_string()),
            // Not JSON Argo CD can read: the rest of the cluster is still shown, the config as nothing.
            ("config".to_string(), r#"{"bearerToken": "tok-1"#.to_string()),
        ]);
        let view = cluster_view(&data, Some(&secret));
        assert_eq!(
            view,
            json!({"server": "https://prod.example:6443/", "name": "prod", "config": {},
                "namespaces": ["web", "api"], "project": "team-a", "shard": 2,
                "labels": {"env": "prod"}, "annotations": {"team": "web"}})
        );
        assert!(!view.to_string().contains("tok-1"));
    }
}
