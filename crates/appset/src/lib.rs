//! The pure half of Argo CD's ApplicationSet controller: generators turn their inputs into parameter
//! sets, and a template stamped with each set becomes an Application. No cluster and no git here: the
//! caller lists the repository's paths, reads the files and the cluster Secrets, and hands them in.
//!
//! - [`params`]: a parameter set (fasttemplate's flat strings, goTemplate's nested values), the
//!   flattening of a JSON/YAML document and the `values` a generator adds.
//! - [`template`]: an `ApplicationSetTemplate` rendered into an Application, with fasttemplate (the
//!   default) or Go templates (`goTemplate: true`: gotmpl with Argo CD's Sprig subset, `template::go`).
//! - [`generators`]: `list`, `clusters` (over the cluster Secrets the caller read), `git` (over a listing
//!   of the repository), `matrix`, `merge`, and the per-generator `selector`.
//! - [`set`]: a whole ApplicationSet: every generator, its own template over the set's, the
//!   `templatePatch` ([`template::patch`]), and the checks on the result as a whole; the caller's I/O
//!   comes in through [`set::Inputs`].
//!
//! ```
//! use berth_api::applicationset::{ApplicationSetTemplate, ListGenerator};
//! use berth_appset::{generators::list, params::TemplateMode, template};
//! use serde_json::json;
//!
//! let list: ListGenerator = serde_json::from_value(json!({
//!     "elements": [{ "cluster": "prod", "url": "https://prod.k8s" }]
//! })).unwrap();
//! let template: ApplicationSetTemplate = serde_json::from_value(json!({
//!     "metadata": { "name": "web-{{cluster}}" },
//!     "spec": { "project": "default", "destination": { "server": "{{url}}", "namespace": "web" } }
//! })).unwrap();
//! let sets = list::generate(&list, TemplateMode::Fast).unwrap();
//! let app = template::render(&template, &sets[0]).unwrap();
//! assert_eq!(app["metadata"]["name"], "web-prod");
//! assert_eq!(app["spec"]["destination"]["server"], "https://prod.k8s");
//! ```

pub mod generators;
pub mod params;
mod pattern;
pub mod set;
pub mod template;

/// The most parameter sets one generator (or one set's generators together) may produce: past it the
/// set gets an error instead of thousands of Applications, and existing ones stay as they are.
pub const MAX_PARAM_SETS: usize = 5_000;

/// Why a generator or a template could not produce Applications; each names the generator or the
/// template field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A generator's own fields are wrong (`list.elements[2]`, `git.directories[0].path`, `merge.mergeKeys`).
    #[error("{generator} generator: {field}: {message}")]
    InvalidGenerator { generator: &'static str, field: String, message: String },
    /// A generator produced more than [`MAX_PARAM_SETS`] parameter sets.
    #[error(
        "{generator} generator: more than {max} parameter sets; refusing to generate that many Applications"
    )]
    TooManyParamSets { generator: &'static str, max: usize },
    /// A template string that cannot be rendered (`spec.source.path`: `{{` without `}}`).
    #[error("template {field}: {message}")]
    Template { field: String, message: String },
    /// Two generated Applications have one name (Argo CD's message): neither is written.
    #[error("ApplicationSet {set} contains applications with duplicate name: {name}")]
    DuplicateName { set: String, name: String },
    /// The rendered object is not an Application.
    #[error("generated Application {name:?} is invalid: {message}")]
    InvalidApplication { name: String, message: String },
}

impl Error {
    /// A generator's field is wrong, or an input it needs could not be read (named as its field).
    pub fn invalid(generator: &'static str, field: impl Into<String>, message: impl Into<String>) -> Error {
        Error::InvalidGenerator { generator, field: field.into(), message: message.into() }
    }
}
