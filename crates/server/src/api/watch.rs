//! What the server keeps in step with the cluster: the Applications (for the handlers and the streams) and
//! argocd-rbac-cm, argocd-cm and argocd-secret (policy, HTTP settings, accounts).

use super::{harden, stream};
use berth_api::Application;
use futures::StreamExt;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use std::sync::Arc;

/// Follows argocd-rbac-cm (the policy), argocd-cm and argocd-secret (accounts, passwords, tokens, the
/// signing key): a change applies to the next request without a restart. A policy that does not load is
/// logged with its error and the last good one stays.
pub(super) async fn watch_settings(
    client: kube::Client,
    namespace: String,
    sessions: Arc<crate::auth::SessionManager>,
    rbac: Arc<crate::rbac::LiveEnforcer>,
    http: Arc<std::sync::RwLock<Arc<harden::HttpSettings>>>,
    webhook_secrets: Arc<std::sync::RwLock<Arc<crate::webhook::WebhookSecrets>>>,
) {
    use k8s_openapi::api::core::v1::{ConfigMap, Secret};
    let maps = watcher(Api::<ConfigMap>::namespaced(client.clone(), &namespace), watcher::Config::default())
        .default_backoff()
        .filter_map(|e| async move {
            match e.ok()? {
                watcher::Event::Apply(cm) | watcher::Event::InitApply(cm) => {
                    Some((cm.metadata.name.unwrap_or_default(), cm.data.unwrap_or_default()))
                }
                watcher::Event::Delete(cm) => {
                    Some((cm.metadata.name.unwrap_or_default(), Default::default()))
                }
                _ => None,
            }
        })
        .boxed();
    let secrets = watcher(
        Api::<Secret>::namespaced(client.clone(), &namespace),
        watcher::Config::default().fields("metadata.name=argocd-secret"),
    )
    .default_backoff()
    .filter_map(|e| async move {
        match e.ok()? {
            watcher::Event::Apply(secret) | watcher::Event::InitApply(secret) => {
                Some(("argocd-secret".to_string(), super::settings::string_data(&secret)))
            }
            watcher::Event::Delete(_) => Some(("argocd-secret".to_string(), Default::default())),
            _ => None,
        }
    })
    .boxed();
    let mut changes = futures::stream::select(maps, secrets);
    let mut seen: std::collections::HashMap<String, std::collections::BTreeMap<String, String>> =
        Default::default();
    while let Some((name, data)) = changes.next().await {
        match name.as_str() {
            "argocd-rbac-cm" => {
                if seen.get(&name) == Some(&data) {
                    continue;
                }
                match rbac.reload(&data) {
                    Ok(()) => tracing::info!("argocd-rbac-cm: policy reloaded"),
                    Err(e) => tracing::warn!("argocd-rbac-cm: {e}; the previous policy stays in force"),
                }
                seen.insert(name, data);
            }
            "argocd-cm" | "argocd-secret" => {
                if name == "argocd-secret" {
                    let secrets = crate::webhook::WebhookSecrets::from_secret_data(&data);
                    *webhook_secrets.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(secrets);
                }
                if name == "argocd-cm" {
                    if seen.get(&name) == Some(&data) {
                        continue;
                    }
                    *http.write().unwrap_or_else(|e| e.into_inner()) =
                        Arc::new(harden::HttpSettings::from_config_map(&data));
                    seen.insert(name, data);
                }
                match crate::auth::load(&client, &namespace).await {
                    Ok((key, accounts)) => sessions.replace(key, accounts),
                    Err(e) => tracing::warn!("accounts: {e}; the previous accounts stay in force"),
                }
            }
            _ => {}
        }
    }
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
