//! The repository paths a render reads, so a monorepo commit re-renders exactly the applications whose
//! inputs it changed: a directory source reads its path; a Kustomize source its path and every local base,
//! component, patch or generator file its kustomizations name (recursively); a Helm chart its path and its
//! value files.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const KUSTOMIZATION_FILES: &[&str] = &["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// Repository-relative paths (files or directories) that `path` renders from. `value_files` are a Helm
/// source's value files, relative to the chart.
pub fn render_inputs(repo_root: &Path, path: &str, value_files: &[String]) -> Vec<String> {
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
        let Ok(doc) = serde_saphyr::from_str::<serde_json::Value>(&text) else { continue };
        let mut strings = Vec::new();
        collect_strings(&doc, &mut strings);
        for s in strings {
            if s.contains("://") || s.contains('\n') || s.len() > 4096 {
                continue;
            }
            let Some(candidate) = inside(&root, &dir.join(s)) else { continue };
            if candidate.is_dir() {
                pending.push(candidate);
            } else if candidate.is_file() {
                found.insert(candidate);
            }
        }
    }
    for value_file in value_files {
        if let Some(file) = inside(&root, &start.join(value_file)) {
            found.insert(file);
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

/// `candidate` resolved, if it exists inside `root`.
fn inside(root: &Path, candidate: &Path) -> Option<PathBuf> {
    let real = candidate.canonicalize().ok()?;
    real.starts_with(root).then_some(real)
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
