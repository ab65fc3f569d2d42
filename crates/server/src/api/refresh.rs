//! Refresh requests from git pushes: `POST /api/webhook`, and how the server asks for a refresh.

use super::{ApiError, GrpcCode, Shared};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use berth_api::Application;
use kube::api::Api;
use std::sync::Arc;

/// `POST /api/webhook`: a git host's push; refreshes exactly the Applications it affects (in the controller's
/// queue when it runs in this process, else with Argo CD's refresh annotation, as Argo CD's server does).
/// A bad signature is 401 and refreshes nothing.
pub(super) async fn webhook(
    State(shared): State<Arc<Shared>>,
    headers: axum::http::HeaderMap,
    body: axum::body::Body,
) -> Result<Json<serde_json::Value>, ApiError> {
    let limit = shared.http_settings().webhook_max_payload;
    // Read through argocd-cm's limit: a larger payload is refused after that many bytes, not buffered whole.
    let body = axum::body::to_bytes(body, limit.saturating_add(1)).await.map_err(|_| {
        ApiError::bad_request(format!(
            "webhook payload is larger than {limit} bytes (argocd-cm webhook.maxPayloadSizeMB)"
        ))
        .with_status(StatusCode::PAYLOAD_TOO_LARGE)
    })?;
    let event = match crate::webhook::parse(&headers, &body, &shared.webhook_secrets(), limit) {
        Ok(event) => event,
        Err(crate::webhook::WebhookError::Ignored(what)) => {
            // A verified pull-request event: the sets with a pull-request generator on that repository
            // generate again now (not named in the answer: the route may need no login).
            if let (Some((owner, repo)), Some(controller)) =
                (crate::webhook::pull_request_repository(&what, &body), shared.controller.get())
            {
                let sets = controller.applicationsets();
                let keys: Vec<String> =
                    crate::webhook::affected_pull_request_sets(&owner, &repo, sets.iter().map(|s| &**s))
                        .into_iter()
                        .map(berth_controller::appset::key_of)
                        .collect();
                tracing::info!(sets = keys.len(), "webhook: a pull request; generating ApplicationSets");
                refresh_applicationsets(&shared, &controller, &keys).await;
            }
            return Ok(Json(serde_json::json!({"ignored": what})));
        }
        Err(e) => {
            let status = e.status();
            let code = if status == StatusCode::UNAUTHORIZED {
                GrpcCode::Unauthenticated
            } else {
                GrpcCode::InvalidArgument
            };
            return Err(ApiError::new(code, e.to_string()).with_status(status));
        }
    };
    let apps = shared.apps.state();
    let served = apps.iter().map(|a| &**a).filter(|a| shared.serves_namespace(namespace_of(a)));
    let affected = crate::webhook::affected_apps(&event, served);
    tracing::info!(provider = %event.provider, revision = %event.revision, apps = affected.len(), "webhook: refreshing");
    let mut names = Vec::with_capacity(affected.len());
    for app in affected {
        request_refresh(&shared, app, false).await;
        names.push(qualified_name(&shared, app));
    }
    // ApplicationSets whose git generators read the pushed revision generate again (with a controller in
    // this process, which knows the sets' generators; the replica running them is told by annotation).
    // (Not named in the answer: the route needs no login when no webhook secret is set.)
    if let Some(controller) = shared.controller.get() {
        let sets = controller.applicationsets();
        let keys: Vec<String> = crate::webhook::affected_applicationsets(&event, sets.iter().map(|s| &**s))
            .into_iter()
            .map(berth_controller::appset::key_of)
            .collect();
        tracing::info!(provider = %event.provider, revision = %event.revision, sets = keys.len(), "webhook: generating ApplicationSets");
        refresh_applicationsets(&shared, &controller, &keys).await;
    }
    Ok(Json(serde_json::json!({"refreshed": names})))
}

/// Refreshes an application: straight into the queue of the controller running in this process when it
/// owns the application (no write to the Application), else through Argo CD's refresh annotation, which
/// its owner acts on.
async fn request_refresh(shared: &Shared, app: &Application, hard: bool) {
    if let Some(controller) = shared.controller.get()
        && controller.request_refresh(&shared.instance_of(app), hard)
    {
        return;
    }
    let name = app.metadata.name.as_deref().unwrap_or_default();
    let api: Api<Application> = Api::namespaced(shared.client.clone(), namespace_of(app));
    let level = if hard { "hard" } else { "normal" };
    let patch = serde_json::json!({"metadata": {"annotations": {berth_api::annotations::REFRESH: level}}});
    if let Err(e) =
        api.patch(name, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch)).await
    {
        tracing::warn!(app = %name, namespace = namespace_of(app), error = %e, "refresh request failed");
    }
}

/// Generates the sets `keys` again: in the controller of this process when it runs the ApplicationSet
/// controller, else through Argo CD's `application-set-refresh` annotation, which the replica running it sees.
async fn refresh_applicationsets(
    shared: &Shared,
    controller: &berth_controller::Controller,
    keys: &[String],
) {
    if controller.refresh_applicationsets(keys) {
        return;
    }
    for key in keys {
        let (namespace, name) = key.split_once('/').unwrap_or((shared.namespace.as_str(), key));
        let api: Api<berth_api::ApplicationSet> = Api::namespaced(shared.client.clone(), namespace);
        let body = serde_json::json!({"metadata": {"annotations": {berth_controller::appset::REFRESH_ANNOTATION: "true"}}});
        if let Err(e) =
            api.patch(name, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&body)).await
        {
            tracing::warn!(appset = %key, error = %e, "refresh request failed");
        }
    }
}

fn namespace_of(app: &Application) -> &str {
    app.metadata.namespace.as_deref().unwrap_or_default()
}

/// `name` in the control namespace, `namespace/name` elsewhere, as `argocd app list` names apps.
fn qualified_name(shared: &Shared, app: &Application) -> String {
    let name = app.metadata.name.as_deref().unwrap_or_default();
    match namespace_of(app) {
        ns if ns.is_empty() || ns == shared.namespace => name.to_string(),
        ns => format!("{ns}/{name}"),
    }
}
