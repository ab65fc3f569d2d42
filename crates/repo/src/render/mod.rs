//! Rendering: a source's files at one commit become the desired objects.

mod directory;

pub use directory::render_directory;

use std::path::{Component, Path, PathBuf};

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
