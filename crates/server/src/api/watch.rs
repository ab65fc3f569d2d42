//! What the server keeps in step with the cluster: the Applications (for the handlers and the streams), the
//! AppProjects (their roles join the policy), argocd-rbac-cm, argocd-cm and argocd-secret (policy, HTTP
//! settings, accounts) and the logouts of the other replicas (Secret `berth-revoked-sessions`).

use super::{harden, stream};
use berth_api::{AppProject, Application};
use berth_controller::instance::{APPLICATION_NAMESPACES_KEY, ApplicationNamespaces, CMD_PARAMS_CM};
use berth_controller::settings_source::{ARGOCD_CM, ARGOCD_RBAC_CM, ConfigObjects};
use futures::{StreamExt, TryStreamExt};
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
            settings.sso.reload(&client, &namespace, now.config_map(ARGOCD_CM), now.argocd_secret()).await;
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
    pub(super) sso: Arc<crate::auth::oidc::SsoState>,
    pub(super) sessions: Arc<crate::auth::SessionManager>,
    pub(super) rbac: Arc<crate::rbac::LiveEnforcer>,
    pub(super) http: Arc<std::sync::RwLock<Arc<harden::HttpSettings>>>,
    pub(super) webhook_secrets: Arc<std::sync::RwLock<Arc<crate::webhook::WebhookSecrets>>>,
}

/// The Applications of `namespace` and of the namespaces `outside` allows, kept by a watch (the store
/// fills in the background), and each change that watch sees, broadcast to the streams. With `outside`
/// empty only `namespace` is watched; otherwise the watch is cluster-wide (the patterns are globs) and the
/// Applications of namespaces not allowed never reach the store, as in the controller.
pub(super) fn watch_applications(
    client: kube::Client,
    namespace: &str,
    outside: ApplicationNamespaces,
) -> (reflector::Store<Application>, tokio::sync::broadcast::Sender<Arc<stream::AppEvent>>) {
    let api: Api<Application> =
        if outside.is_empty() { Api::namespaced(client, namespace) } else { Api::all(client) };
    let control = namespace.to_string();
    let admitted = move |app: &Application| {
        let namespace = app.metadata.namespace.as_deref().unwrap_or_default();
        namespace == control || outside.allows(namespace)
    };
    let (store, writer) = reflector::store();
    let (events, _) = tokio::sync::broadcast::channel(stream::EVENT_BUFFER);
    let mut feed = stream::ChangeFeed::new(store.clone(), events.clone());
    // managedFields are server-side apply's bookkeeping, often a third of an app; the API never serves them.
    let stream = watcher(api, watcher::Config::default()).try_filter(move |event| {
        let keep = match event {
            watcher::Event::Apply(app) | watcher::Event::InitApply(app) | watcher::Event::Delete(app) => {
                admitted(app)
            }
            watcher::Event::Init | watcher::Event::InitDone => true,
        };
        futures::future::ready(keep)
    });
    // Retried with backoff, a warning while it fails and one line when it works again.
    let stream = berth_engine::outage::retried(stream, berth_engine::outage::WatchRetry::new("Applications"))
        .map(Ok::<_, watcher::Error>)
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

/// The AppProjects of `namespace`, kept by a watch (the store fills in the background); `rbac` takes their
/// roles (policies, groups, tokens) once the first list is in and again after every change, so a new role,
/// a revoked token or a deleted project applies to the next request.
pub(super) fn watch_projects(
    client: kube::Client,
    namespace: &str,
    rbac: Arc<crate::rbac::LiveEnforcer>,
) -> reflector::Store<AppProject> {
    let api: Api<AppProject> = Api::namespaced(client, namespace);
    let (store, writer) = reflector::store();
    let reader = store.clone();
    let stream = watcher(api, watcher::Config::default());
    let stream = berth_engine::outage::retried(stream, berth_engine::outage::WatchRetry::new("AppProjects"))
        .map(Ok::<_, watcher::Error>)
        .modify(|project| project.metadata.managed_fields = None)
        .reflect(writer);
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                // A relist rebuilds once, when it is whole.
                Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => {}
                Ok(_) => rbac.set_projects(reader.state().iter().map(|p| AppProject::clone(p)).collect()),
                Err(e) => tracing::warn!(error = %e, "watching AppProjects; retrying"),
            }
        }
    });
    store
}

/// Follows Secret `berth-revoked-sessions` ([`crate::auth::revocations`]): the logouts of every replica join
/// `sessions` and `sso`, so a token logged out on another replica is refused here too, within the watch's
/// latency. A deleted Secret takes nothing away: what was merged stays until it lapses.
pub(super) fn follow_revocations(
    client: kube::Client,
    namespace: &str,
    sessions: Arc<crate::auth::SessionManager>,
    sso: Arc<crate::auth::oidc::SsoState>,
) {
    use crate::auth::revocations::{self, REVOKED_SESSIONS_SECRET};
    let api: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client, namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={REVOKED_SESSIONS_SECRET}"));
    let stream = berth_engine::outage::retried(
        watcher(api, config),
        berth_engine::outage::WatchRetry::new(REVOKED_SESSIONS_SECRET),
    );
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            if let watcher::Event::Apply(secret) | watcher::Event::InitApply(secret) = event {
                revocations::merge(&secret.data.unwrap_or_default(), &sessions, &sso);
            }
        }
    });
}

/// The namespaces besides `namespace` whose Applications the server serves: `given` (`berth run
/// --application-namespaces`), else argocd-cmd-params-cm `application.namespaces`, as the controller reads
/// them. An unreadable ConfigMap leaves only the control namespace.
pub(super) async fn application_namespaces(
    client: &kube::Client,
    namespace: &str,
    given: ApplicationNamespaces,
) -> ApplicationNamespaces {
    if !given.is_empty() {
        return given;
    }
    let api: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client.clone(), namespace);
    match api.get_opt(CMD_PARAMS_CM).await {
        Ok(cm) => cm
            .and_then(|cm| cm.data?.get(APPLICATION_NAMESPACES_KEY).cloned())
            .map(|list| ApplicationNamespaces::parse(&list))
            .unwrap_or_default(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read {CMD_PARAMS_CM}: the API serves Applications only in {namespace}");
            ApplicationNamespaces::default()
        }
    }
}
