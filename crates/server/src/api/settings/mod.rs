//! Repositories, clusters and accounts: Argo CD's settings endpoints; and `GET /api/v1/settings`
//! ([`server_settings`]).
//!
//! Repositories and clusters live where Argo CD keeps them, in Secrets of the control namespace labelled
//! `argocd.argoproj.io/secret-type: repository|cluster`, with Argo CD's keys ([`secrets`] serves both);
//! accounts in argocd-cm and argocd-secret (see [`crate::auth`]). No response, log line or error message
//! carries a password, a key or a token: credentials are written, never read back.

use super::{ApiError, Shared};
use crate::rbac::Subject;
use axum::Router;
use axum::routing::{get, post, put};
use std::sync::Arc;

mod accounts;
mod clusters;
mod repositories;
mod secrets;
mod server_settings;

pub(super) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/api/v1/settings", get(server_settings::get_settings))
        .route(
            "/api/v1/repositories",
            get(repositories::list_repositories).post(repositories::create_repository),
        )
        .route(
            "/api/v1/repositories/{repo}",
            get(repositories::get_repository).delete(repositories::delete_repository),
        )
        .route("/api/v1/clusters", get(clusters::list_clusters).post(clusters::create_cluster))
        .route("/api/v1/clusters/{server}", get(clusters::get_cluster).delete(clusters::delete_cluster))
        .route("/api/v1/account", get(accounts::list_accounts))
        .route("/api/v1/account/password", put(accounts::update_password))
        .route("/api/v1/account/can-i/{resource}/{action}/{*object}", get(accounts::can_i))
        .route("/api/v1/account/{name}", get(accounts::get_account))
        .route("/api/v1/account/{name}/token", post(accounts::create_token))
        .route("/api/v1/account/{name}/token/{id}", axum::routing::delete(accounts::delete_token))
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub(super) struct UpsertQuery {
    pub(super) upsert: Option<bool>,
}

pub(super) fn permission_denied() -> ApiError {
    ApiError::forbidden("permission denied")
}

/// Argo CD's RBAC object of a repository or cluster: `<project>/<url>`, or the URL alone without a project.
pub(super) fn rbac_object(project: Option<&str>, url: &str) -> String {
    match project.filter(|p| !p.is_empty()) {
        Some(project) => format!("{project}/{url}"),
        None => url.to_string(),
    }
}

pub(super) fn require(
    shared: &Shared,
    caller: &Subject,
    resource: &str,
    action: &str,
    object: &str,
) -> Result<(), ApiError> {
    if shared.rbac.enforce(caller, resource, action, object) { Ok(()) } else { Err(permission_denied()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rbac_objects_carry_the_project_when_there_is_one() {
        assert_eq!(rbac_object(Some("team-a"), "https://g/x"), "team-a/https://g/x");
        assert_eq!(rbac_object(Some(""), "https://g/x"), "https://g/x");
        assert_eq!(rbac_object(None, "https://g/x"), "https://g/x");
    }
}
