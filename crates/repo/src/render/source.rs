//! One source of an Application rendered: which tool it needs (Argo CD's detection), the tool run, the
//! files the render read, and the cache that keeps renders while an application uses them.

use super::{Manifest, RenderError, ToolContext};
use crate::git::CommitInfo;
use berth_api::application::ApplicationSource;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Weak};

/// Argo CD's source types (`status.sourceType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SourceType {
    Directory,
    Kustomize,
    Helm,
}

impl SourceType {
    /// The name Argo CD writes.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceType::Directory => "Directory",
            SourceType::Kustomize => "Kustomize",
            SourceType::Helm => "Helm",
        }
    }

    /// Argo CD's detection: an explicit `chart`/`helm`, `kustomize` or `directory` wins, then a
    /// `Chart.yaml` at the path, then a kustomization file, else a directory of manifests.
    pub fn detect(source: &ApplicationSource, tree: &Path, path: &str) -> SourceType {
        if source.chart.is_some() || source.helm.is_some() {
            return SourceType::Helm;
        }
        if source.kustomize.is_some() {
            return SourceType::Kustomize;
        }
        if source.directory.is_some() {
            return SourceType::Directory;
        }
        let Ok(dir) = super::contained_path(tree, path) else { return SourceType::Directory };
        if super::helm::is_chart_dir(&dir) {
            SourceType::Helm
        } else if super::kustomize::is_kustomization_dir(&dir) {
            SourceType::Kustomize
        } else {
            SourceType::Directory
        }
    }
}

impl std::fmt::Display for SourceType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A git source at its `path` in `tree` (a checked-out commit) rendered with the tool it needs. Returns the
/// tool, the objects or the tool's error, and the repository paths the render read (a Kustomize
/// overlay's bases, a chart's value files; none for a plain directory, whose path is all it reads).
pub fn render_source(
    source: &ApplicationSource,
    tree: &Path,
    ctx: &ToolContext,
) -> (SourceType, Result<Vec<Manifest>, RenderError>, Vec<String>) {
    let path = source.path.as_deref().unwrap_or_default();
    let kind = SourceType::detect(source, tree, path);
    let out = match kind {
        SourceType::Helm => super::helm::render_helm_path(tree, path, source.helm.as_ref(), ctx),
        SourceType::Kustomize => {
            super::kustomize::render_kustomize(tree, path, source.kustomize.as_ref(), ctx)
        }
        SourceType::Directory => super::render_directory(tree, path, source.directory.as_ref()),
    };
    let inputs = match kind {
        SourceType::Directory => vec![],
        _ => {
            let value_files: Vec<String> = source
                .helm
                .iter()
                .flat_map(|h| &h.value_files)
                .filter(|f| !f.starts_with('$'))
                .cloned()
                .collect();
            super::render_inputs(tree, path, &value_files)
        }
    };
    (kind, out, inputs)
}

/// One source rendered at one commit.
pub struct Rendered {
    /// The objects, or what the tool said when it failed (naming the file and field).
    pub manifests: Result<Vec<Manifest>, String>,
    pub commit: Option<CommitInfo>,
    pub source_type: SourceType,
    /// The repository paths the render read (a commit that touches none of them is not rendered again).
    pub inputs: Vec<String>,
}

/// Rendered sources by a key the caller derives from everything a render depends on (repository, commit,
/// path, options, tool versions, credentials, and for sources that may be Kustomize the
/// [`ToolContext::kustomize_settings`]): an unchanged app is never rendered again. An entry lives
/// as long as someone (an application's current target) holds its render.
#[derive(Default)]
pub struct RenderCache {
    entries: Mutex<HashMap<u64, Weak<Rendered>>>,
}

impl RenderCache {
    pub fn get(&self, key: u64) -> Option<Arc<Rendered>> {
        self.entries.lock().get(&key).and_then(Weak::upgrade)
    }

    pub fn insert(&self, key: u64, rendered: &Arc<Rendered>) {
        let mut entries = self.entries.lock();
        // Dropped renders leave dead entries behind: swept now and then, so the map stays as small as
        // the set of renders in use.
        if entries.len() % 256 == 255 {
            entries.retain(|_, w| w.strong_count() > 0);
        }
        entries.insert(key, Arc::downgrade(rendered));
    }

    pub fn remove(&self, key: u64) {
        self.entries.lock().remove(&key);
    }

    /// Entries whose render is still held by someone.
    pub fn live_entries(&self) -> usize {
        self.entries.lock().values().filter(|w| w.strong_count() > 0).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(json: serde_json::Value) -> ApplicationSource {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn detection_follows_argo_cd_explicit_then_chart_then_kustomization_then_directory() {
        let tree = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tree.path().join("chart")).unwrap();
        std::fs::write(tree.path().join("chart/Chart.yaml"), "name: c\nversion: 1.0.0\n").unwrap();
        std::fs::create_dir_all(tree.path().join("overlay")).unwrap();
        std::fs::write(tree.path().join("overlay/kustomization.yaml"), "resources: []\n").unwrap();
        std::fs::create_dir_all(tree.path().join("plain")).unwrap();
        let plain = source(serde_json::json!({"repoURL": "https://x/r", "path": "plain"}));
        let at = |p: &str| SourceType::detect(&plain, tree.path(), p);
        assert_eq!(at("chart"), SourceType::Helm);
        assert_eq!(at("overlay"), SourceType::Kustomize);
        assert_eq!(at("plain"), SourceType::Directory);
        assert_eq!(at("../outside"), SourceType::Directory, "a path outside the tree detects nothing");
        let forced = source(serde_json::json!({"repoURL": "https://x/r", "path": "chart", "directory": {}}));
        assert_eq!(SourceType::detect(&forced, tree.path(), "chart"), SourceType::Directory);
        let helm = source(serde_json::json!({"repoURL": "https://x/r", "chart": "nginx"}));
        assert_eq!(SourceType::detect(&helm, tree.path(), ""), SourceType::Helm);
    }

    #[test]
    fn a_cached_render_lives_only_while_someone_holds_it() {
        let cache = RenderCache::default();
        let held = Arc::new(Rendered {
            manifests: Ok(vec![]),
            commit: None,
            source_type: SourceType::Directory,
            inputs: vec![],
        });
        cache.insert(1, &held);
        assert!(cache.get(1).is_some());
        assert_eq!(cache.live_entries(), 1);
        drop(held);
        assert!(cache.get(1).is_none(), "nobody holds it any more");
        assert_eq!(cache.live_entries(), 0);
    }
}
