//! Rendering: a source's files at one commit become the desired objects. Directories are read here;
//! Helm and Kustomize sources run the real `helm template` and `kustomize build` (as Argo CD does), each
//! in a scratch directory of its own, with a time limit and without network unless configured.

mod directory;
pub mod helm;
mod inputs;
pub mod kustomize;
pub mod sandbox;
mod source;
pub mod tool;
pub mod yaml;

pub use inputs::render_inputs;
pub use source::{RenderCache, Rendered, SourceType, render_source};

pub use directory::render_directory;
/// Multi-document YAML or JSON read within fixed budgets (documents, nodes, aliases, nesting); what every
/// tool's output and every manifest file goes through.
pub use yaml::parse_documents as parse_yaml_documents;

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// What a Helm or Kustomize render needs besides the source itself.
#[derive(Clone, Debug)]
pub struct ToolContext {
    /// The Application's name (Helm's default release name).
    pub app_name: String,
    /// The destination namespace (Helm's `--namespace` unless the source sets one).
    pub namespace: String,
    /// The destination cluster's version, e.g. `1.36.3` (Helm's `--kube-version`).
    pub kube_version: String,
    /// The destination's API versions, `group/version` and `group/version/Kind` (Helm's `--api-versions`).
    pub api_versions: Vec<String>,
    /// Longest a tool may run.
    pub timeout: Duration,
    /// The `helm` and `kustomize` binaries (`kustomize`: the default version's).
    pub helm: PathBuf,
    pub kustomize: PathBuf,
    /// argocd-cm's Kustomize versions and build options; an Application's `kustomize.version` picks one.
    pub kustomize_settings: Arc<kustomize::KustomizeSettings>,
    /// Where per-render scratch directories and downloaded charts go.
    pub work_dir: PathBuf,
    /// Multiple sources: the `ref` name of a source (written `$name/…` in value files) → its tree root.
    pub refs: BTreeMap<String, PathBuf>,
    /// Whether tools may reach the network (Helm chart dependencies, Kustomize remote bases).
    pub network: bool,
}

impl ToolContext {
    /// Binaries from `PATH`, a 90 s limit (Argo CD's default exec timeout), no network, no argocd-cm
    /// Kustomize settings.
    pub fn new(app_name: &str, namespace: &str, work_dir: PathBuf) -> Self {
        ToolContext {
            app_name: app_name.into(),
            namespace: namespace.into(),
            kube_version: String::new(),
            api_versions: Vec::new(),
            timeout: Duration::from_secs(90),
            helm: PathBuf::from("helm"),
            kustomize: PathBuf::from("kustomize"),
            kustomize_settings: Arc::default(),
            work_dir,
            refs: BTreeMap::new(),
            network: false,
        }
    }
}

/// One desired object and the file it came from (relative to the repository root).
#[derive(Clone, Debug, PartialEq)]
pub struct Manifest {
    pub file: String,
    pub object: serde_json::Value,
}

/// Why a source could not be rendered; every variant names the file (and where it can, the field).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RenderError {
    #[error("path {path:?} leaves the repository")]
    OutsideRepository { path: String },
    #[error("path {path:?} does not exist in the repository")]
    PathNotFound { path: String },
    #[error("{file}: {message}")]
    InvalidFile { file: String, message: String },
    #[error("{file}: file is {size} bytes, over the {limit}-byte limit")]
    TooLarge { file: String, size: u64, limit: u64 },
    #[error("{file}: reading failed: {message}")]
    Io { file: String, message: String },
    /// A tool failed; `message` is what it printed (credentials scrubbed).
    #[error("{tool} failed in {path}: {message}")]
    Tool { tool: String, path: String, message: String },
    #[error("{tool} did not finish within {seconds} s in {path} (killed)")]
    Timeout { tool: String, path: String, seconds: u64 },
    /// The tool reached its memory limit (`limit` as shown, e.g. `1 GiB`) and was stopped.
    #[error("{tool} ran out of its {limit} memory limit in {path}")]
    OutOfMemory { tool: String, path: String, limit: String },
}

/// Largest manifest file berth reads.
pub const MAX_FILE_BYTES: u64 = 8 * 1024 * 1024;

/// Joins `rel` onto `root` and proves the result stays inside `root`, symlinks resolved.
pub fn contained_path(root: &Path, rel: &str) -> Result<PathBuf, RenderError> {
    let rel_path = Path::new(rel.trim_start_matches("./"));
    if rel_path.is_absolute() || rel_path.components().any(|c| matches!(c, Component::ParentDir)) {
        // `..` that stays inside is still refused: Argo CD rejects paths that climb.
        return Err(RenderError::OutsideRepository { path: rel.into() });
    }
    let root =
        root.canonicalize().map_err(|e| RenderError::Io { file: ".".into(), message: e.to_string() })?;
    let joined = root.join(rel_path);
    let real = joined.canonicalize().map_err(|_| RenderError::PathNotFound { path: rel.into() })?;
    if !real.starts_with(&root) {
        return Err(RenderError::OutsideRepository { path: rel.into() });
    }
    Ok(real)
}
