//! Directory sources: every YAML and JSON file under the path (recursively with `recurse`), filtered by
//! the `include` and `exclude` globs; multi-document files and `kind: List` are flattened.

use berth_api::application::ApplicationSourceDirectory;
use globset::{Glob, GlobSet, GlobSetBuilder};
use std::path::Path;

use super::{MAX_FILE_BYTES, Manifest, RenderError, contained_path};

/// Renders `path` inside the checked-out `repo_root`.
pub fn render_directory(
    repo_root: &Path,
    path: &str,
    options: Option<&ApplicationSourceDirectory>,
) -> Result<Vec<Manifest>, RenderError> {
    let root =
        repo_root.canonicalize().map_err(|e| RenderError::Io { file: ".".into(), message: e.to_string() })?;
    let app_dir = contained_path(&root, if path.is_empty() { "." } else { path })?;
    let recurse = options.and_then(|o| o.recurse).unwrap_or(false);
    let include = options.and_then(|o| o.include.as_deref()).map(glob_set).transpose()?;
    let exclude = options.and_then(|o| o.exclude.as_deref()).map(glob_set).transpose()?;

    let mut files = Vec::new();
    collect_files(&root, &app_dir, recurse, &mut files)?;
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let in_app = file.strip_prefix(&app_dir).unwrap_or(&file).to_string_lossy().to_string();
        let in_repo = file.strip_prefix(&root).unwrap_or(&file).to_string_lossy().to_string();
        if include.as_ref().is_some_and(|g| !g.is_match(&in_app))
            || exclude.as_ref().is_some_and(|g| g.is_match(&in_app))
        {
            continue;
        }
        read_manifests(&file, &in_repo, &mut out)?;
    }
    Ok(out)
}

/// `a.yaml`, `*.yaml` or `{a.yaml,b/*.json}`, matched against the path relative to the app's folder.
fn glob_set(pattern: &str) -> Result<GlobSet, RenderError> {
    let mut builder = GlobSetBuilder::new();
    let invalid = |e: globset::Error| RenderError::InvalidFile {
        file: pattern.into(),
        message: format!("bad glob: {e}"),
    };
    builder.add(Glob::new(pattern).map_err(invalid)?);
    // Argo CD matches a bare file glob against files in sub-folders too.
    if !pattern.contains('/') {
        builder.add(Glob::new(&format!("**/{pattern}")).map_err(invalid)?);
    }
    builder.build().map_err(invalid)
}

fn collect_files(
    root: &Path,
    dir: &Path,
    recurse: bool,
    out: &mut Vec<std::path::PathBuf>,
) -> Result<(), RenderError> {
    let rel = |p: &Path| p.strip_prefix(root).unwrap_or(p).to_string_lossy().to_string();
    let entries =
        std::fs::read_dir(dir).map_err(|e| RenderError::Io { file: rel(dir), message: e.to_string() })?;
    for entry in entries {
        let entry = entry.map_err(|e| RenderError::Io { file: rel(dir), message: e.to_string() })?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with('.') {
            continue;
        }
        // Symlinks are followed only when they stay inside the repository.
        let real =
            path.canonicalize().map_err(|e| RenderError::Io { file: rel(&path), message: e.to_string() })?;
        if !real.starts_with(root) {
            return Err(RenderError::OutsideRepository { path: rel(&path) });
        }
        if real.is_dir() {
            if recurse {
                collect_files(root, &path, recurse, out)?;
            }
        } else if is_manifest_file(&name) {
            out.push(path);
        }
    }
    Ok(())
}

fn is_manifest_file(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".yaml") || lower.ends_with(".yml") || lower.ends_with(".json")
}

fn read_manifests(path: &Path, in_repo: &str, out: &mut Vec<Manifest>) -> Result<(), RenderError> {
    let size = std::fs::metadata(path)
        .map_err(|e| RenderError::Io { file: in_repo.into(), message: e.to_string() })?
        .len();
    if size > MAX_FILE_BYTES {
        return Err(RenderError::TooLarge { file: in_repo.into(), size, limit: MAX_FILE_BYTES });
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| RenderError::Io { file: in_repo.into(), message: e.to_string() })?;
    let invalid = |message: String| RenderError::InvalidFile { file: in_repo.into(), message };
    let docs: Vec<serde_json::Value> = if in_repo.to_ascii_lowercase().ends_with(".json") {
        match serde_json::from_str::<serde_json::Value>(&text).map_err(|e| invalid(e.to_string()))? {
            serde_json::Value::Array(items) => items,
            one => vec![one],
        }
    } else {
        // The one reader with budgets (documents, nodes, aliases, nesting) for every YAML berth takes in.
        super::yaml::parse_documents(&text, in_repo)?
    };
    for (index, doc) in docs.into_iter().enumerate() {
        push_object(doc, in_repo, index, out)?;
    }
    Ok(())
}

pub(super) fn push_object(
    doc: serde_json::Value,
    file: &str,
    index: usize,
    out: &mut Vec<Manifest>,
) -> Result<(), RenderError> {
    let invalid = |message: String| RenderError::InvalidFile { file: file.into(), message };
    match doc {
        serde_json::Value::Null => Ok(()),
        serde_json::Value::Object(ref map) => {
            let kind = map.get("kind").and_then(|k| k.as_str()).unwrap_or_default();
            if kind.is_empty() {
                return Err(invalid(format!("document {}: field kind is missing", index + 1)));
            }
            if map.get("apiVersion").and_then(|v| v.as_str()).unwrap_or_default().is_empty() {
                return Err(invalid(format!("document {} ({kind}): field apiVersion is missing", index + 1)));
            }
            if kind.ends_with("List") && map.get("items").is_some_and(|i| i.is_array()) {
                let items = map["items"].as_array().cloned().unwrap_or_default();
                for item in items {
                    push_object(item, file, index, out)?;
                }
                return Ok(());
            }
            // A missing name is the controller's to refuse: a hook may have none (Argo CD names it).
            out.push(Manifest { file: file.into(), object: doc });
            Ok(())
        }
        other => Err(invalid(format!("document {} is a {}, not an object", index + 1, type_name(&other)))),
    }
}

fn type_name(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Array(_) => "list",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::Bool(_) => "boolean",
        _ => "value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let p = dir.path().join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        dir
    }

    fn names(m: &[Manifest]) -> Vec<String> {
        m.iter()
            .map(|m| {
                format!(
                    "{}/{}",
                    m.object["kind"].as_str().unwrap(),
                    m.object["metadata"]["name"].as_str().unwrap()
                )
            })
            .collect()
    }

    const CM: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n";

    #[test]
    fn reads_yaml_json_and_multi_document_files_and_ignores_other_files() {
        let r = repo(&[
            (
                "app/one.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: b}\n---\n",
            ),
            ("app/two.json", r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"c"}}"#),
            ("app/README.md", "# not a manifest"),
            ("app/sub/deep.yaml", CM),
        ]);
        let m = render_directory(r.path(), "app", None).unwrap();
        assert_eq!(names(&m), ["ConfigMap/a", "Service/b", "Secret/c"]);
        assert_eq!(m[0].file, "app/one.yaml");
    }

    #[test]
    fn recurse_reads_sub_folders() {
        let r = repo(&[("app/a.yaml", CM), ("app/sub/b.yaml", &CM.replace("name: a", "name: b"))]);
        let opts = ApplicationSourceDirectory { recurse: Some(true), ..Default::default() };
        assert_eq!(
            names(&render_directory(r.path(), "app", Some(&opts)).unwrap()),
            ["ConfigMap/a", "ConfigMap/b"]
        );
    }

    #[test]
    fn include_and_exclude_globs_filter_files() {
        let r = repo(&[
            ("app/a.yaml", CM),
            ("app/b.yaml", &CM.replace("name: a", "name: b")),
            ("app/c.json", r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"}}"#),
        ]);
        let opts = ApplicationSourceDirectory {
            include: Some("{*.yaml,c.json}".into()),
            exclude: Some("b.yaml".into()),
            ..Default::default()
        };
        assert_eq!(
            names(&render_directory(r.path(), "app", Some(&opts)).unwrap()),
            ["ConfigMap/a", "ConfigMap/c"]
        );
    }

    #[test]
    fn kind_list_is_flattened() {
        let r = repo(&[(
            "app/list.yaml",
            "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: x1}\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: x2}\n",
        )]);
        assert_eq!(
            names(&render_directory(r.path(), "app", None).unwrap()),
            ["ConfigMap/x1", "ConfigMap/x2"]
        );
    }

    #[test]
    fn a_path_outside_the_repository_is_refused() {
        let r = repo(&[("app/a.yaml", CM)]);
        assert_eq!(
            render_directory(r.path(), "../etc", None),
            Err(RenderError::OutsideRepository { path: "../etc".into() })
        );
        assert_eq!(
            render_directory(r.path(), "/etc", None),
            Err(RenderError::OutsideRepository { path: "/etc".into() })
        );
    }

    #[test]
    fn a_symlink_out_of_the_repository_is_refused() {
        let outside = repo(&[("secret.yaml", CM)]);
        let r = repo(&[("app/a.yaml", CM)]);
        std::os::unix::fs::symlink(outside.path().join("secret.yaml"), r.path().join("app/link.yaml"))
            .unwrap();
        assert_eq!(
            render_directory(r.path(), "app", None),
            Err(RenderError::OutsideRepository { path: "app/link.yaml".into() })
        );
        std::os::unix::fs::symlink(outside.path(), r.path().join("escape")).unwrap();
        assert_eq!(
            render_directory(r.path(), "escape", None),
            Err(RenderError::OutsideRepository { path: "escape".into() })
        );
    }

    #[test]
    fn broken_yaml_names_the_file_and_line() {
        let r = repo(&[("app/bad.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [unclosed\n")]);
        let err = render_directory(r.path(), "app", None).unwrap_err().to_string();
        assert!(err.starts_with("app/bad.yaml: "), "{err}");
        assert!(err.contains("line"), "{err}");
    }

    #[test]
    fn an_alias_bomb_or_deep_nesting_is_refused_naming_the_file() {
        use crate::render::yaml::tests::{billion_laughs, nested};
        for text in [billion_laughs(), nested(200, false)] {
            let r = repo(&[("app/ok.yaml", CM), ("app/bomb.yaml", &text)]);
            let err = render_directory(r.path(), "app", None).unwrap_err();
            assert!(
                matches!(&err, RenderError::InvalidFile { file, .. } if file == "app/bomb.yaml"),
                "{err}"
            );
        }
    }

    #[test]
    fn a_document_without_kind_names_the_field_and_one_without_name_is_left_to_the_controller() {
        let r = repo(&[("app/x.yaml", "apiVersion: v1\nmetadata: {name: a}\n")]);
        assert_eq!(
            render_directory(r.path(), "app", None).unwrap_err().to_string(),
            "app/x.yaml: document 1: field kind is missing"
        );
        // An unnamed hook is valid (Argo CD names it at sync); the controller refuses an unnamed object.
        let hook =
            "apiVersion: batch/v1\nkind: Job\nmetadata: {annotations: {argocd.argoproj.io/hook: PreSync}}\n";
        let r = repo(&[("app/x.yaml", hook)]);
        assert_eq!(render_directory(r.path(), "app", None).unwrap().len(), 1);
    }

    #[test]
    fn a_missing_path_is_reported() {
        let r = repo(&[("app/a.yaml", CM)]);
        assert_eq!(
            render_directory(r.path(), "nope", None),
            Err(RenderError::PathNotFound { path: "nope".into() })
        );
    }
}
