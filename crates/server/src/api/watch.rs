//! What the server keeps in step with the cluster: the Applications (for the handlers and the streams) and
//! argocd-rbac-cm, argocd-cm and argocd-secret (policy, HTTP settings, accounts).

use super::{harden, stream};
use berth_api::Application;
use berth_controller::settings_source::{ARGOCD_CM, ARGOCD_RBAC_CM, ConfigObjects};
use futures::StreamExt;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use std::sync::Arc;

/// Follows argocd-rbac-cm (the policy), argocd-cm and argocd-secret (accounts, passwords, tokens, the
/// signing key, webhook secrets) through the process's [`SettingsSource`]: a change applies to the next
/// request without a restart. A policy that does not load is logged with its error and the last good one
/// stays. `seen` is what the server took at its start.
pub(super) async fn follow_settings(
    client: kube::Client,
    namespace: String,
    mut updates: tokio::sync::watch::Receiver<Arc<ConfigObjects>>,
    mut seen: Arc<ConfigObjects>,
    settings: Settings,
) {
    while updates.changed().await.is_ok() {
        let now = updates.borrow_and_update().clone();
        let changed = |name: &str| now.config_map(name) != seen.config_map(name);
        if changed(ARGOCD_RBAC_CM) {
            match settings.rbac.reload(now.config_map(ARGOCD_RBAC_CM)) {
                Ok(()) => tracing::info!("argocd-rbac-cm: policy reloaded"),
                Err(e) => tracing::warn!("argocd-rbac-cm: {e}; the previous policy stays in force"),
            }
        }
        let cm_changed = changed(ARGOCD_CM);
        let secret_changed = now.argocd_secret() != seen.argocd_secret();
        if cm_changed {
            *settings.http.write().unwrap_or_else(|e| e.into_inner()) =
                Arc::new(harden::HttpSettings::from_config_map(now.config_map(ARGOCD_CM)));
        }
        if secret_changed {
            let secrets = crate::webhook::WebhookSecrets::from_secret_data(now.argocd_secret());
            *settings.webhook_secrets.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(secrets);
        }
        if cm_changed || secret_changed {
            match crate::auth::load(&client, &namespace).await {
                Ok((key, accounts)) => settings.sessions.replace(key, accounts),
                Err(e) => tracing::warn!("accounts: {e}; the previous accounts stay in force"),
            }
        }
        seen = now;
    }
}

/// What [`follow_settings`] keeps current.
pub(super) struct Settings {
    pub(super) sessions: Arc<crate::auth::SessionManager>,
    pub(super) rbac: Arc<crate::rbac::LiveEnforcer>,
    pub(super) http: Arc<std::sync::RwLock<Arc<harden::HttpSettings>>>,
    pub(super) webhook_secrets: Arc<std::sync::RwLock<Arc<crate::webhook::WebhookSecrets>>>,
}

/// The Applications of `namespace`, kept by a watch (the store fills in the background), and each change
/// that watch sees, broadcast to the streams.
pub(super) fn watch_applications(
    client: kube::Client,
    namespace: &str,
) -> (reflector::Store<Application>, tokio::sync::broadcast::Sender<Arc<stream::AppEvent>>) {
    let api: Api<Application> = Api::namespaced(client, namespace);
    let (store, writer) = reflector::store();
    let (events, _) = tokio::sync::broadcast::channel(stream::EVENT_BUFFER);
    let mut feed = stream::ChangeFeed::new(store.clone(), events.clone());
    // managedFields are server-side apply's bookkeeping, often a third of an app; the API never serves them.
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(|app| app.metadata.managed_fields = None)
        .reflect(writer);
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            if let Ok(event) = event {
                feed.observe(event);
            }
        }
    });
    (store, events)
}
