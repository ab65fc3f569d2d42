//! The repository paths a render reads, so a monorepo commit re-renders exactly the applications whose
//! inputs it changed: a directory source reads its path; a Kustomize source its path and every local base,
//! component, patch or generator file its kustomizations name (recursively); a Helm chart its path and its
//! value files.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const KUSTOMIZATION_FILES: &[&str] = &["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// Repository-relative paths (files or directories) that `path` renders from. `extra` are paths relative
/// to `path` the source names itself: a Helm source's value files, a Kustomize source's components.
pub fn render_inputs(repo_root: &Path, path: &str, extra: &[String]) -> Vec<String> {
    let Ok(root) = repo_root.canonicalize() else { return vec![path.to_string()] };
    let Ok(start) = super::contained_path(&root, path) else { return vec![path.to_string()] };
    let mut found = BTreeSet::new();
    let mut pending = vec![start.clone()];
    while let Some(dir) = pending.pop() {
        if !found.insert(dir.clone()) || found.len() > 10_000 {
            continue;
        }
        let Some(file) = KUSTOMIZATION_FILES.iter().map(|f| dir.join(f)).find(|f| f.is_file()) else {
            continue;
        };
        let Ok(text) = std::fs::read_to_string(&file) else { continue };
        if text.len() as u64 > super::MAX_FILE_BYTES {
            continue;
        }
        let Ok(mut docs) = super::parse_yaml_documents(&text, "kustomization") else { continue };
        let Some(doc) = docs.drain(..).next() else { continue };
        let mut strings = Vec::new();
        collect_strings(&doc, &mut strings);
        for s in strings {
            if s.contains('\n') || s.len() > 4096 {
                continue;
            }
            // Remote bases are not repository inputs (and a render refuses them unless allowed).
            if crate::validate::kustomize_remote(s, dir.join(s).symlink_metadata().is_ok()).is_some() {
                continue;
            }
            add(&root, &dir.join(s), &mut found, &mut pending);
        }
    }
    for extra in extra {
        add(&root, &start.join(extra), &mut found, &mut pending);
    }
    // Folders named by the extras (a component from the Application's options) are read too.
    while let Some(dir) = pending.pop() {
        if found.insert(dir.clone()) {
            let mut more =
                render_inputs(&root, &dir.strip_prefix(&root).unwrap_or(&dir).to_string_lossy(), &[]);
            for p in more.drain(..) {
                found.insert(root.join(p));
            }
        }
    }
    let mut out: Vec<String> = found
        .iter()
        .filter_map(|p| p.strip_prefix(&root).ok())
        .map(|p| p.to_string_lossy().replace('\\', "/"))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Records `candidate` if it exists inside `root`: as written (a symlink's own path, which is where a tool
/// looks) and, when a symlink leads elsewhere in the repository, where it leads too. Folders go to `pending`.
fn add(root: &Path, candidate: &Path, found: &mut BTreeSet<PathBuf>, pending: &mut Vec<PathBuf>) {
    let Ok(real) = candidate.canonicalize() else { return };
    if !real.starts_with(root) {
        return;
    }
    let written = lexical(candidate);
    for p in [written, real] {
        if !p.starts_with(root) {
            continue;
        }
        if p.is_dir() {
            pending.push(p);
        } else if p.is_file() {
            found.insert(p);
        }
    }
}

/// `a/b/../c` → `a/c`, without touching the file system.
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

fn collect_strings<'a>(value: &'a serde_json::Value, out: &mut Vec<&'a str>) {
    match value {
        serde_json::Value::String(s) => out.push(s),
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_strings(v, out)),
        serde_json::Value::Object(map) => map.values().for_each(|v| collect_strings(v, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str, text: &str) {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn an_overlay_reads_its_base_components_and_patch_files() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        write(root, "apps/web/base/kustomization.yaml", "resources: [deployment.yaml]\n");
        write(root, "apps/web/base/deployment.yaml", "kind: Deployment\n");
        write(root, "components/tls/kustomization.yaml", "kind: Component\n");
        write(
            root,
            "apps/web/overlays/prod/kustomization.yaml",
            "resources: [../../base]\ncomponents: [../../../../components/tls]\npatches:\n- path: replicas.yaml\nimages:\n- name: myorg/web\n  newTag: v1\n",
        );
        write(root, "apps/web/overlays/prod/replicas.yaml", "spec: {replicas: 3}\n");
        write(root, "apps/web/overlays/staging/kustomization.yaml", "resources: [../../base]\n");
        let inputs = render_inputs(root, "apps/web/overlays/prod", &[]);
        assert_eq!(
            inputs,
            [
                "apps/web/base",
                "apps/web/base/deployment.yaml",
                "apps/web/overlays/prod",
                "apps/web/overlays/prod/replicas.yaml",
                "components/tls"
            ]
        );
    }

    #[test]
    fn paths_outside_the_repository_and_remote_bases_are_not_inputs() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("repo");
        write(
            &root,
            "app/kustomization.yaml",
            "resources:\n- ../../outside\n- https://github.com/org/repo//base\n",
        );
        write(tmp.path(), "outside/kustomization.yaml", "resources: []\n");
        assert_eq!(render_inputs(&root, "app", &[]), ["app"]);
    }

    #[test]
    fn a_chart_reads_its_value_files() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        write(root, "charts/web/Chart.yaml", "name: web\n");
        write(root, "envs/prod/values.yaml", "replicaCount: 3\n");
        let inputs =
            render_inputs(root, "charts/web", &["../../envs/prod/values.yaml".into(), "missing.yaml".into()]);
        assert_eq!(inputs, ["charts/web", "envs/prod/values.yaml"]);
    }
}
