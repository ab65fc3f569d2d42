//! Which repository paths an Application source watches, and whether a changed file concerns it: the one
//! rule behind "refresh on this push" (the webhook) and "reuse the last render at this commit" (the
//! controller).
//!
//! With Argo CD's `argocd.argoproj.io/manifest-generate-paths` annotation the watched paths are its
//! `;`-separated entries: relative to the source's `path` (`.` is the path itself), or from the
//! repository root with a leading `/`; `..` climbs, never above the root. An entry covers a changed file
//! equal to it or under it. An entry with a wildcard (`*` and `?` within one path segment, `[...]`
//! classes, `**` across segments) covers a file it matches, or under a directory it matches; Argo CD
//! matches the pattern against the file only, so berth refreshes in a few more cases, never fewer.
//!
//! Without the annotation berth watches the source's path and the files it reads from elsewhere in the
//! repository: local Helm value files, for a `ref` source the files other sources read as `$ref/…`, and
//! what the last render read (a Kustomize overlay's bases).
//!
//! ```
//! use berth_repo::paths::WatchedPaths;
//! let watched = WatchedPaths::from_annotation("apps/web", "/charts/*.yaml; ../shared").unwrap();
//! assert!(watched.concerns("charts/web.yaml"));
//! assert!(watched.concerns("apps/shared/labels.yaml"));
//! assert!(!watched.concerns("charts/web/values.yaml"));
//! assert!(!watched.concerns("apps/web/deployment.yaml"));
//! ```

use berth_api::Application;
use berth_api::annotations::MANIFEST_GENERATE_PATHS;
use berth_api::application::ApplicationSource;

/// The paths one Application source watches; see the [module docs](self) for the rules.
#[derive(Clone, Debug)]
pub struct WatchedPaths {
    entries: Vec<Entry>,
}

#[derive(Clone, Debug)]
enum Entry {
    /// A file or directory from the repository root, `.` and `..` resolved; empty is the root.
    Path(String),
    /// A pattern from the repository root; `/` is matched only by `/` or `**`.
    Glob(globset::GlobMatcher),
}

impl WatchedPaths {
    /// What `source` of `app` watches: the annotation's entries when `app` has a non-blank one, else the
    /// source's path, its local Helm value files, the `$ref/…` files other sources read through it, and
    /// `read_inputs` (repository-root-relative files or folders its last render read; the controller
    /// knows them, the webhook passes none).
    pub fn for_source(app: &Application, source: &ApplicationSource, read_inputs: &[String]) -> WatchedPaths {
        let source_path = source.path.as_deref().unwrap_or_default();
        let annotation = app.metadata.annotations.as_ref().and_then(|a| a.get(MANIFEST_GENERATE_PATHS));
        if let Some(watched) = annotation.and_then(|value| WatchedPaths::from_annotation(source_path, value))
        {
            return watched;
        }
        let base = resolve("", source_path);
        let mut inputs: Vec<String> = read_inputs.iter().map(|input| resolve("", input)).collect();
        for file in source.helm.iter().flat_map(|helm| &helm.value_files) {
            // Remote value files are no repository path; `$ref/…` ones belong to the `ref` source.
            if !file.contains("://") && !file.starts_with('$') {
                inputs.push(resolve(&base, file));
            }
        }
        let reference = source.reference.as_deref().filter(|name| !name.is_empty());
        if let Some(name) = reference {
            let prefix = format!("${name}/");
            let sources = app.spec.sources.iter().chain(&app.spec.source);
            for file in sources.flat_map(|other| other.helm.iter().flat_map(|helm| &helm.value_files)) {
                if let Some(file) = file.strip_prefix(&prefix) {
                    inputs.push(resolve("", file));
                }
            }
        }
        // A `ref` source without a path is read only through the files other sources name.
        if source.path.is_some() || reference.is_none() || inputs.is_empty() {
            inputs.push(base);
        }
        WatchedPaths { entries: inputs.into_iter().map(Entry::Path).collect() }
    }

    /// The entries of a `manifest-generate-paths` value for a source at `source_path` (from the
    /// repository root); `None` when the value names no entry.
    pub fn from_annotation(source_path: &str, annotation: &str) -> Option<WatchedPaths> {
        let base = resolve("", source_path);
        let entries: Vec<Entry> = annotation
            .split(';')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| Entry::new(resolve(&base, entry)))
            .collect();
        (!entries.is_empty()).then_some(WatchedPaths { entries })
    }

    /// Whether a change to `changed_file` (from the repository root, as a git diff or a push lists it)
    /// concerns the source.
    pub fn concerns(&self, changed_file: &str) -> bool {
        let file = resolve("", changed_file);
        self.entries.iter().any(|entry| entry.covers(&file))
    }
}

impl Entry {
    fn new(path: String) -> Entry {
        if !path.contains(['*', '?', '[']) {
            return Entry::Path(path);
        }
        let glob = globset::GlobBuilder::new(&path).literal_separator(true).backslash_escape(true).build();
        match glob {
            Ok(glob) => Entry::Glob(glob.compile_matcher()),
            // A malformed pattern (an unclosed `[`) is taken as written, as a path.
            Err(_) => Entry::Path(path),
        }
    }

    fn covers(&self, file: &str) -> bool {
        match self {
            Entry::Path(path) => {
                path.is_empty()
                    || file == path
                    || file.strip_prefix(path.as_str()).is_some_and(|rest| rest.starts_with('/'))
            }
            Entry::Glob(glob) => {
                // The file itself, or one of the folders that hold it.
                let mut folders = file.match_indices('/').map(|(slash, _)| &file[..slash]);
                glob.is_match(file) || folders.any(|folder| glob.is_match(folder))
            }
        }
    }
}

/// `relative` from folder `base` (both from the repository root), `.` and `..` resolved; a leading `/`
/// starts at the root and `..` never climbs above it. The root is the empty path.
fn resolve(base: &str, relative: &str) -> String {
    let start = if relative.starts_with('/') { "" } else { base };
    let mut parts: Vec<&str> = Vec::new();
    for part in start.split('/').chain(relative.split('/')) {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn annotated(source_path: &str, annotation: &str) -> WatchedPaths {
        WatchedPaths::from_annotation(source_path, annotation).expect("entries")
    }

    fn app(annotation: Option<&str>, spec: serde_json::Value) -> Application {
        let mut metadata = json!({ "name": "web", "namespace": "argocd" });
        if let Some(value) = annotation {
            metadata["annotations"] = json!({ MANIFEST_GENERATE_PATHS: value });
        }
        serde_json::from_value(json!({ "metadata": metadata, "spec": spec })).unwrap()
    }

    fn single(annotation: Option<&str>, source: serde_json::Value) -> (Application, ApplicationSource) {
        let app = app(annotation, json!({ "destination": {}, "source": source }));
        let source = app.spec.source.clone().unwrap();
        (app, source)
    }

    #[test]
    fn a_glob_entry_matches_the_changed_file_not_just_its_folder() {
        let watched = annotated("apps/web", "/charts/*.yaml");
        assert!(watched.concerns("charts/web.yaml"));
        assert!(watched.concerns("/charts/api.yaml"));
        assert!(!watched.concerns("charts/web.yml"), "another extension");
        assert!(!watched.concerns("charts/README.md"), "another file of the folder");
        assert!(!watched.concerns("charts/web/values.yaml"), "`*` stays within one segment");
        assert!(!watched.concerns("apps/web/deployment.yaml"), "the annotation replaces the path");
    }

    #[test]
    fn glob_classes_single_characters_and_double_stars() {
        let watched = annotated("", "/envs/prod-?/[ab]*.yaml; /shared/**/secret.yaml");
        assert!(watched.concerns("envs/prod-1/app.yaml"));
        assert!(watched.concerns("envs/prod-2/b.yaml"));
        assert!(!watched.concerns("envs/prod-10/app.yaml"));
        assert!(!watched.concerns("envs/prod-1/c.yaml"));
        assert!(watched.concerns("shared/secret.yaml"));
        assert!(watched.concerns("shared/db/eu/secret.yaml"));
        assert!(!watched.concerns("shared/db/eu/config.yaml"));
        let negated = annotated("", "/envs/[!s]*/app.yaml");
        assert!(negated.concerns("envs/prod/app.yaml"));
        assert!(!negated.concerns("envs/staging/app.yaml"));
    }

    #[test]
    fn a_glob_naming_folders_covers_what_they_hold() {
        let watched = annotated("apps/web", "../../services/*");
        assert!(watched.concerns("services/api/deployment.yaml"));
        assert!(watched.concerns("services/README.md"));
        assert!(!watched.concerns("servicesX/api/deployment.yaml"));
    }

    #[test]
    fn entries_are_relative_to_the_source_path_or_rooted() {
        let watched = annotated("apps/web/overlays/prod", ".; ../../base ;/shared/values");
        assert!(watched.concerns("apps/web/overlays/prod/kustomization.yaml"));
        assert!(watched.concerns("apps/web/base/deployment.yaml"));
        assert!(watched.concerns("shared/values/common.yaml"));
        assert!(!watched.concerns("apps/web/overlays/staging/kustomization.yaml"));
        assert!(!watched.concerns("shared/other.yaml"));
        let relative_glob = annotated("apps/web", "../*/values.yaml");
        assert!(relative_glob.concerns("apps/api/values.yaml"));
        assert!(!relative_glob.concerns("apps/api/templates/values.yaml"));
    }

    #[test]
    fn dot_dot_never_climbs_above_the_root() {
        let watched = annotated("apps", "../../../config/web.yaml");
        assert!(watched.concerns("config/web.yaml"));
        assert!(!watched.concerns("config/web.yaml.bak"));
        assert!(!watched.concerns("apps/config/web.yaml"));
    }

    #[test]
    fn the_root_covers_every_file() {
        for (path, value) in [("apps/web", "/"), ("", "."), ("apps/web", "../.."), ("apps", "/**")] {
            let watched = annotated(path, value);
            for file in ["README.md", "apps/web/x.yaml", "a/b/c/d.json"] {
                assert!(watched.concerns(file), "{path:?} {value:?} {file}");
            }
        }
    }

    /// For every plain entry and file in a small universe: covered exactly when the file is the entry or
    /// lies under it, so a sibling with a longer name never is.
    #[test]
    fn a_plain_entry_covers_itself_and_what_is_under_it_only() {
        let names = ["a", "ab", "a.yaml", "b"];
        let mut paths = vec![String::new()];
        for first in names {
            paths.push(first.to_string());
            for second in names {
                paths.push(format!("{first}/{second}"));
            }
        }
        for entry in &paths {
            let watched = WatchedPaths { entries: vec![Entry::new(entry.clone())] };
            for file in paths.iter().filter(|file| !file.is_empty()) {
                let under = entry.is_empty() || file == entry || file.starts_with(&format!("{entry}/"));
                assert_eq!(watched.concerns(file), under, "entry {entry:?} file {file:?}");
            }
        }
    }

    #[test]
    fn a_blank_annotation_names_no_entry() {
        assert!(WatchedPaths::from_annotation("apps/web", " ; ;").is_none());
        let (app, source) = single(Some(" "), json!({ "repoURL": "r", "path": "apps/web" }));
        let watched = WatchedPaths::for_source(&app, &source, &[]);
        assert!(watched.concerns("apps/web/deployment.yaml"));
        assert!(!watched.concerns("apps/api/deployment.yaml"));
    }

    #[test]
    fn the_annotation_replaces_the_path_and_the_read_inputs() {
        let (app, source) = single(Some("/charts/*.yaml"), json!({ "repoURL": "r", "path": "apps/web" }));
        let watched = WatchedPaths::for_source(&app, &source, &["apps/base".into()]);
        assert!(watched.concerns("charts/web.yaml"));
        assert!(!watched.concerns("apps/web/deployment.yaml"));
        assert!(!watched.concerns("apps/base/deployment.yaml"));
    }

    #[test]
    fn without_the_annotation_the_path_and_what_the_last_render_read_are_watched() {
        let (app, source) = single(None, json!({ "repoURL": "r", "path": "./apps/web/overlays/prod/" }));
        let watched = WatchedPaths::for_source(&app, &source, &["apps/web/base".into()]);
        assert!(watched.concerns("apps/web/overlays/prod/kustomization.yaml"));
        assert!(watched.concerns("apps/web/base/deployment.yaml"), "a base the overlay read");
        assert!(!watched.concerns("apps/web/overlays/prod-eu/kustomization.yaml"), "a longer sibling");
        assert!(!watched.concerns("apps/api/deployment.yaml"));
    }

    #[test]
    fn a_source_without_a_path_watches_the_whole_repository() {
        let (app, source) = single(None, json!({ "repoURL": "r" }));
        assert!(WatchedPaths::for_source(&app, &source, &["x".into()]).concerns("anything/at/all.yaml"));
    }

    #[test]
    fn local_helm_value_files_are_watched_remote_ones_are_not() {
        let (app, source) = single(
            None,
            json!({ "repoURL": "r", "path": "charts/web", "helm": { "valueFiles":
                ["values.yaml", "../../envs/prod/web.yaml", "https://example.com/values.yaml"] } }),
        );
        let watched = WatchedPaths::for_source(&app, &source, &[]);
        assert!(watched.concerns("envs/prod/web.yaml"));
        assert!(watched.concerns("charts/web/templates/svc.yaml"));
        assert!(!watched.concerns("envs/staging/web.yaml"));
        assert!(!watched.concerns("example.com/values.yaml"));
    }

    #[test]
    fn a_ref_source_watches_the_files_other_sources_read_through_it() {
        let app = app(
            None,
            json!({ "destination": {}, "sources": [
                { "repoURL": "https://charts.example.com", "chart": "web",
                  "helm": { "valueFiles": ["$values/envs/prod/web.yaml"] } },
                { "repoURL": "r", "ref": "values" },
                { "repoURL": "r", "ref": "shared", "path": "shared" }
            ] }),
        );
        let values = WatchedPaths::for_source(&app, &app.spec.sources[1], &[]);
        assert!(values.concerns("envs/prod/web.yaml"));
        assert!(!values.concerns("envs/prod/api.yaml"), "a pathless ref source is not the whole repository");
        let shared = WatchedPaths::for_source(&app, &app.spec.sources[2], &[]);
        assert!(shared.concerns("shared/labels.yaml"));
        assert!(!shared.concerns("envs/prod/web.yaml"));
    }
}
