//! `GET /api/v1/settings`: the settings the UI and the CLI read, as Argo CD's SettingsService shows them.
//! No session is needed (the login page reads it); what only a logged-in caller may see is added for one:
//! the control namespace, and berth's own field `unsupportedSettings`, the argocd-cm keys berth does not
//! read (Argo CD's clients ignore a field they do not know).

use super::super::{Shared, session};
use axum::Json;
use axum::extract::State;
use berth_engine::tracking::TrackingMethod;
use serde_json::{Value, json};
use std::sync::Arc;

pub(in crate::api) async fn get_settings(
    State(shared): State<Arc<Shared>>,
    headers: axum::http::HeaderMap,
) -> Json<Value> {
    // The anonymous caller is not logged in: it sees what a caller without a session sees.
    let logged_in = session::authenticate(&shared, &headers).await.is_ok_and(|caller| !caller.is_anonymous());
    let accounts = shared.sessions.accounts();
    let server = &accounts.server;
    let tracking = &shared.http_settings().tracking;
    let tracking_method = match tracking.method {
        TrackingMethod::Annotation => "annotation",
        TrackingMethod::Label => "label",
        TrackingMethod::AnnotationAndLabel => "annotation+label",
    };
    let logins = accounts.iter().any(|a| a.enabled && a.has_capability(crate::auth::Capability::Login));
    let mut body = json!({
        "appLabelKey": tracking.label_key,
        "trackingMethod": tracking_method,
        "statusBadgeEnabled": server.status_badge_enabled,
        "statusBadgeRootUrl": server.status_badge_url,
        "kustomizeOptions": {"buildOptions": server.kustomize_build_options},
        "kustomizeVersions": server.kustomize_versions,
        "userLoginsDisabled": !logins,
        "execEnabled": false,
        "appsInAnyNamespaceEnabled": !shared.application_namespaces.is_empty(),
        "impersonationEnabled": false,
    });
    if let Some(sso) = shared.sso.current() {
        let c = sso.config();
        body["url"] = json!(c.url);
        match &c.kind {
            crate::auth::oidc::config::ProviderKind::Oidc => {
                body["oidcConfig"] = json!({
                    "name": c.name,
                    "issuer": c.issuer,
                    "clientID": c.client_id,
                    "cliClientID": c.cli_client_id,
                    "scopes": c.scopes,
                    "idTokenClaims": c.id_token_claims,
                    "enablePKCEAuthentication": c.pkce,
                });
            }
            crate::auth::oidc::config::ProviderKind::Dex { connectors } => {
                let connectors: Vec<Value> =
                    connectors.iter().map(|(name, kind)| json!({"name": name, "type": kind})).collect();
                body["dexConfig"] = json!({ "connectors": connectors });
            }
        }
    }
    if logged_in {
        body["controllerNamespace"] = json!(shared.namespace);
        body["unsupportedSettings"] = json!(server.unsupported);
    }
    Json(body)
}
