//! The HTTP server of `berth run`: Argo CD's REST paths and JSON shapes, `/healthz`, and errors as
//! `{error, code, message}` with gRPC-style codes, as Argo CD's gateway writes them.
//!
//! One file a concern: `serve` (listeners, TLS, metrics), `session` (who calls: `Caller`), `apps` (one
//! Application's CRUD), `operations` (sync, rollback, terminate), `tree` (resource tree, managed resources,
//! manifests), `refresh` (git webhooks), `settings` (repositories, clusters, accounts), `stream`, `watch`,
//! `projects` (one AppProject), `windows` (sync windows).

use axum::Json;
use axum::Router;
use axum::routing::get;
use berth_api::Application;
use berth_controller::SettingsSource;
use berth_controller::instance::ApplicationNamespaces;
use berth_controller::settings_source::{ARGOCD_CM, ARGOCD_RBAC_CM};
use kube::runtime::reflector;
use std::sync::Arc;

mod actions;
mod applicationsets;
mod apps;
mod badge;
mod error;
pub mod harden;
mod members;
mod operations;
mod projects;
mod query;
mod refresh;
mod serve;
mod session;
mod settings;
mod sso;
mod stream;
mod tree;
mod watch;
mod windows;

pub(crate) use apps::{AppNamespaceQuery, authorized_app_in};
pub(crate) use error::kube_error;
pub use error::{ApiError, GrpcCode};
pub use query::ListQuery;
pub use serve::{
    ServerConfig, metrics_router, serve, serve_for, serve_listener, serve_listener_for, serve_metrics,
    serve_metrics_on, serve_on, serve_tls_on,
};
pub(crate) use session::Caller;

/// What every handler reads.
pub struct Shared {
    pub client: kube::Client,
    pub apps: reflector::Store<Application>,
    pub namespace: String,
    pub sessions: Arc<crate::auth::SessionManager>,
    /// argocd-rbac-cm's policy with the AppProjects' roles, replaced when the ConfigMap or a project changes.
    pub rbac: Arc<crate::rbac::LiveEnforcer>,
    /// SSO: the OIDC provider in force (argocd-cm `oidc.config` or `dex.config`) and logged-out ID tokens.
    pub sso: Arc<crate::auth::oidc::SsoState>,
    /// The AppProjects of `namespace`, kept by a watch (their roles feed `rbac`).
    pub projects: reflector::Store<berth_api::AppProject>,
    /// Every change to an Application, from the same watch that fills `apps` (the stream's fan-out).
    pub(crate) events: tokio::sync::broadcast::Sender<Arc<stream::AppEvent>>,
    /// The controller of this process, for what only it knows (targets, comparisons, git); empty when
    /// none runs here.
    pub controller: berth_controller::ControllerView,
    /// argocd-cm's HTTP settings (framing headers, API content types), replaced when it changes.
    http: Arc<std::sync::RwLock<Arc<harden::HttpSettings>>>,
    /// argocd-secret's webhook secrets, replaced when it changes (never read per request).
    webhook_secrets: Arc<std::sync::RwLock<Arc<crate::webhook::WebhookSecrets>>>,
    /// The namespaces besides `namespace` whose Applications `apps` holds and the routes serve
    /// (`?appNamespace=`); empty: only `namespace`.
    pub application_namespaces: ApplicationNamespaces,
}

impl Shared {
    /// Bootstraps the admin account (generating its initial password on the first start), reads
    /// argocd-rbac-cm, and starts watching the Applications, the configuration objects and the logouts
    /// the replicas share.
    pub async fn start(client: kube::Client, namespace: &str) -> Result<Shared, String> {
        let settings = SettingsSource::start(client.clone(), namespace).await?;
        Shared::start_with(client, namespace, settings).await
    }

    /// [`Shared::start`] with the configuration objects of `settings` (the source `berth run` shares with
    /// its controller, so each object is watched once in the process).
    pub async fn start_with(
        client: kube::Client,
        namespace: &str,
        settings: SettingsSource,
    ) -> Result<Shared, String> {
        Shared::start_for(client, namespace, settings, ApplicationNamespaces::default()).await
    }

    /// [`Shared::start_with`] serving also the Applications of the namespaces `application_namespaces`
    /// allows (`berth run --application-namespaces`); empty, argocd-cmd-params-cm `application.namespaces`
    /// decides, as for the controller.
    pub async fn start_for(
        client: kube::Client,
        namespace: &str,
        settings: SettingsSource,
        application_namespaces: ApplicationNamespaces,
    ) -> Result<Shared, String> {
        let boot = crate::auth::bootstrap(&client, namespace).await.map_err(|e| format!("accounts: {e}"))?;
        if boot.generated_admin_password {
            tracing::info!(
                "generated the admin password: kubectl -n {namespace} get secret argocd-initial-admin-secret -o jsonpath='{{.data.password}}' | base64 -d"
            );
        }
        // Subscribed before reading, so no change between the two is missed.
        let updates = settings.subscribe();
        let objects = settings.current();
        let rbac = crate::rbac::Enforcer::from_config_map(objects.config_map(ARGOCD_RBAC_CM))
            .map_err(|e| format!("{ARGOCD_RBAC_CM}: {e}"))?;
        let http = Arc::new(std::sync::RwLock::new(Arc::new(harden::HttpSettings::from_config_map(
            objects.config_map(ARGOCD_CM),
        ))));
        let webhook_secrets = Arc::new(std::sync::RwLock::new(Arc::new(
            crate::webhook::WebhookSecrets::from_secret_data(objects.argocd_secret()),
        )));
        let application_namespaces =
            watch::application_namespaces(&client, namespace, application_namespaces).await;
        let (apps, events) =
            watch::watch_applications(client.clone(), namespace, application_namespaces.clone());
        let sessions = Arc::new(crate::auth::SessionManager::new(boot.secret_key, boot.accounts));
        let rbac = Arc::new(crate::rbac::LiveEnforcer::new(rbac));
        let projects = watch::watch_projects(client.clone(), namespace, rbac.clone());
        let sso = Arc::new(crate::auth::oidc::SsoState::default());
        sso.reload(&client, namespace, objects.config_map(ARGOCD_CM), objects.argocd_secret()).await;
        watch::follow_revocations(client.clone(), namespace, sessions.clone(), sso.clone());
        let followed = watch::Settings {
            sso: sso.clone(),
            sessions: sessions.clone(),
            rbac: rbac.clone(),
            http: http.clone(),
            webhook_secrets: webhook_secrets.clone(),
        };
        tokio::spawn(watch::follow_settings(
            client.clone(),
            namespace.to_string(),
            updates,
            objects,
            followed,
        ));
        let controller = Default::default();
        Ok(Shared {
            apps,
            events,
            client,
            namespace: namespace.into(),
            sessions,
            sso,
            rbac,
            projects,
            controller,
            http,
            webhook_secrets,
            application_namespaces,
        })
    }

    /// The same, reading what only a controller knows from `controller` (the one `berth run` starts).
    pub fn with_controller(self, controller: berth_controller::ControllerView) -> Shared {
        Shared { controller, ..self }
    }

    /// argocd-secret's webhook secrets now.
    pub(crate) fn webhook_secrets(&self) -> Arc<crate::webhook::WebhookSecrets> {
        self.webhook_secrets.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The namespace an `?appNamespace=` names: the control namespace when it is absent or empty.
    pub(crate) fn app_namespace<'a>(&'a self, requested: Option<&'a str>) -> &'a str {
        requested.filter(|ns| !ns.is_empty()).unwrap_or(&self.namespace)
    }

    /// Whether the Applications of `namespace` are served: the control namespace's, and those of the
    /// namespaces `application_namespaces` allows (Argo CD's "namespace is enabled").
    pub(crate) fn serves_namespace(&self, namespace: &str) -> bool {
        namespace == self.namespace || self.application_namespaces.allows(namespace)
    }

    /// The RBAC object of `app`: `<project>/<name>` in the control namespace, `<project>/<namespace>/<name>`
    /// elsewhere, as in Argo CD.
    pub(crate) fn app_object(&self, app: &Application) -> String {
        apps::app_object_in(&self.namespace, app)
    }

    /// The name the controller of this process knows `app` by ([`berth_controller::instance::instance_name`]).
    pub(crate) fn instance_of(&self, app: &Application) -> String {
        berth_controller::instance::instance_name(
            app.metadata.namespace.as_deref().unwrap_or_default(),
            app.metadata.name.as_deref().unwrap_or_default(),
            &self.namespace,
        )
    }

    /// argocd-cm's HTTP settings now.
    pub(crate) fn http_settings(&self) -> Arc<harden::HttpSettings> {
        self.http.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The routes (state included), for `serve` and for tests that drive the router directly.
pub fn router(shared: Arc<Shared>) -> Router {
    use axum::extract::DefaultBodyLimit;
    let whole_app = DefaultBodyLimit::max(harden::APPLICATION_BODY_LIMIT);
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/api/version", get(version))
        .route(
            "/api/v1/session",
            axum::routing::post(session::login)
                .layer(DefaultBodyLimit::max(harden::LOGIN_BODY_LIMIT))
                .delete(session::logout),
        )
        .route("/api/v1/session/userinfo", get(session::userinfo))
        .route(
            "/api/v1/applications",
            get(apps::list_applications).post(apps::create_application).layer(whole_app),
        )
        .route(
            "/api/v1/applications/{name}",
            get(apps::get_application)
                .put(apps::update_application)
                .patch(apps::patch_application)
                .delete(apps::delete_application)
                .layer(whole_app),
        )
        .route("/api/v1/applications/{name}/spec", axum::routing::put(apps::update_spec).layer(whole_app))
        .route("/api/v1/applications/{name}/revisions/{revision}/metadata", get(apps::revision_metadata))
        .route("/api/v1/applications/{name}/events", get(apps::events))
        .route("/api/v1/applications/{name}/resource", get(apps::resource))
        .route(
            "/api/v1/applications/{name}/resource/actions",
            get(actions::list_actions).post(actions::run_action_v1),
        )
        .route("/api/v1/applications/{name}/resource/actions/v2", axum::routing::post(actions::run_action))
        .route("/api/v1/applications/{name}/sync", axum::routing::post(operations::sync_application))
        .route("/api/v1/applications/{name}/resource-tree", get(tree::resource_tree))
        .route("/api/v1/applications/{name}/managed-resources", get(tree::managed_resources))
        .route("/api/v1/applications/{name}/manifests", get(tree::manifests))
        .route("/api/v1/applications/{name}/rollback", axum::routing::post(operations::rollback_application))
        .route(
            "/api/v1/applications/{name}/operation",
            axum::routing::delete(operations::terminate_operation),
        )
        .route("/api/v1/applications/{name}/syncwindows", get(windows::application_sync_windows))
        .route(
            "/api/v1/applicationsets",
            get(applicationsets::list_applicationsets)
                .post(applicationsets::create_applicationset)
                .layer(whole_app),
        )
        .route(
            "/api/v1/applicationsets/generate",
            axum::routing::post(applicationsets::generate_applicationset).layer(whole_app),
        )
        .route(
            "/api/v1/applicationsets/{name}",
            get(applicationsets::get_applicationset).delete(applicationsets::delete_applicationset),
        )
        .route("/api/v1/applicationsets/{name}/resource-tree", get(applicationsets::resource_tree))
        .route("/api/v1/projects", get(apps::list_projects))
        .route("/api/v1/projects/{name}", get(projects::get_project).put(projects::update_project))
        .route("/api/v1/projects/{name}/roles/{role}/token", axum::routing::post(projects::create_token))
        .route(
            "/api/v1/projects/{name}/roles/{role}/token/{iat}",
            axum::routing::delete(projects::delete_token),
        )
        .route("/auth/login", get(sso::login))
        .route("/auth/callback", get(sso::callback))
        .route("/auth/logout", get(sso::logout).post(sso::logout))
        .route("/api/dex", axum::routing::any(sso::dex_proxy))
        .route("/api/dex/{*rest}", axum::routing::any(sso::dex_proxy))
        .route("/api/webhook", axum::routing::post(refresh::webhook))
        .route("/api/badge", get(badge::badge))
        .merge(settings::routes())
        .merge(stream::routes())
        .fallback(crate::ui::serve)
        // Bodies are read through the limit, so a large one is refused after that many bytes, never buffered.
        .layer(DefaultBodyLimit::max(harden::JSON_BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(shared.clone(), harden::guard))
        .with_state(shared)
}

async fn version() -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "Version": format!("v{}", env!("CARGO_PKG_VERSION")),
        "Platform": format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
        "KustomizeVersion": "",
        "HelmVersion": "",
    }))
}
