//! Loading the example manifests shared by the round-trip and API-server tests.
#![allow(dead_code)] // each test binary uses a different part of this module

use std::path::{Path, PathBuf};

/// One YAML document of an example file.
pub struct Example {
    pub file: PathBuf,
    pub doc: serde_json::Value,
}

impl Example {
    pub fn kind(&self) -> &str {
        self.doc["kind"].as_str().unwrap_or_default()
    }
    pub fn is_argoproj(&self) -> bool {
        self.doc["apiVersion"] == "argoproj.io/v1alpha1"
    }
    pub fn label(&self) -> String {
        let name = self.doc["metadata"]["name"].as_str().or(self.doc["metadata"]["generateName"].as_str());
        format!("{} {}/{}", self.file.display(), self.kind(), name.unwrap_or("?"))
    }
}

pub use berth_testkit::seed_dir;

/// Examples written from Argo CD's documentation, kept in this crate.
pub fn documented_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/examples")
}

pub fn load(dir: &Path) -> Vec<Example> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no YAML files in {}", dir.display());
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("readable example");
        let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text)
            .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", file.display()));
        out.extend(docs.into_iter().filter(|d| !d.is_null()).map(|doc| Example { file: file.clone(), doc }));
    }
    out
}

pub fn all() -> Vec<Example> {
    let mut v = load(&seed_dir());
    v.extend(load(&documented_dir()));
    v
}

/// Empty lists mean the same as absent ones (Argo CD's Go types omit them too), so drop them before
/// comparing; everything else must survive unchanged.
pub fn without_empty_lists(v: &serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(m) => serde_json::Value::Object(
            m.iter()
                .filter(|(_, v)| !v.as_array().is_some_and(|a| a.is_empty()))
                .map(|(k, v)| (k.clone(), without_empty_lists(v)))
                .collect(),
        ),
        serde_json::Value::Array(a) => serde_json::Value::Array(a.iter().map(without_empty_lists).collect()),
        other => other.clone(),
    }
}

/// The first path at which two JSON values differ, for readable failures.
pub fn first_difference(a: &serde_json::Value, b: &serde_json::Value, path: &str) -> Option<String> {
    use serde_json::Value::{Array, Object};
    match (a, b) {
        (Object(x), Object(y)) => {
            for k in x.keys().chain(y.keys()) {
                let (l, r) = (
                    x.get(k).unwrap_or(&serde_json::Value::Null),
                    y.get(k).unwrap_or(&serde_json::Value::Null),
                );
                if x.contains_key(k) != y.contains_key(k) {
                    return Some(format!("{path}/{k}: {l} vs {r}"));
                }
                if let Some(d) = first_difference(l, r, &format!("{path}/{k}")) {
                    return Some(d);
                }
            }
            None
        }
        (Array(x), Array(y)) if x.len() == y.len() => {
            x.iter().zip(y).enumerate().find_map(|(i, (l, r))| first_difference(l, r, &format!("{path}/{i}")))
        }
        _ if a == b => None,
        _ => Some(format!("{path}: {a} vs {b}")),
    }
}
