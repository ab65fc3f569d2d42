//! Argo CD's `argoproj.io/v1alpha1` resources as Rust types, and their CustomResourceDefinitions.
//!
//! ```
//! let app: berth_api::Application = serde_json::from_value(serde_json::json!({
//!     "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
//!     "metadata": { "name": "web", "namespace": "argocd" },
//!     "spec": { "project": "default", "destination": { "namespace": "web" },
//!               "source": { "repoURL": "https://example.com/repo.git", "path": "apps/web" } }
//! })).unwrap();
//! assert_eq!(app.spec.source.unwrap().path.as_deref(), Some("apps/web"));
//! ```

pub mod annotations;
pub mod application;
pub mod applicationset;
pub mod codes;
pub mod crd;
pub mod destination;
pub mod finalizers;
pub mod names;
pub mod project;
pub mod schema;
pub mod secret_type;

pub use application::Application;
pub use applicationset::ApplicationSet;
pub use project::AppProject;

/// The API group of every berth (and Argo CD) resource.
pub const GROUP: &str = "argoproj.io";
/// The only API version, as in Argo CD.
pub const VERSION: &str = "v1alpha1";

macro_rules! namespaced_resource {
    ($ty:ty, $kind:literal, $plural:literal) => {
        impl kube::Resource for $ty {
            type DynamicType = ();
            type Scope = kube::core::NamespaceResourceScope;

            fn kind(_: &()) -> std::borrow::Cow<'_, str> {
                $kind.into()
            }
            fn group(_: &()) -> std::borrow::Cow<'_, str> {
                GROUP.into()
            }
            fn version(_: &()) -> std::borrow::Cow<'_, str> {
                VERSION.into()
            }
            fn plural(_: &()) -> std::borrow::Cow<'_, str> {
                $plural.into()
            }
            fn meta(&self) -> &kube::core::ObjectMeta {
                &self.metadata
            }
            fn meta_mut(&mut self) -> &mut kube::core::ObjectMeta {
                &mut self.metadata
            }
        }
    };
}

namespaced_resource!(Application, "Application", "applications");
namespaced_resource!(AppProject, "AppProject", "appprojects");
namespaced_resource!(ApplicationSet, "ApplicationSet", "applicationsets");
