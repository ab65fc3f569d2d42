//! Kustomize sources, rendered as Argo CD does: the repository is copied into a scratch directory, the
//! Application's `kustomize` options are written into the copy with the real `kustomize edit`, and
//! `kustomize build` prints the objects. The checked-out tree is shared and is never written to. argocd-cm's
//! Kustomize settings ([`KustomizeSettings`]) pick the binary and the build options berth runs confined.
//!
//! ```no_run
//! # use berth_repo::render::{ToolContext, kustomize::render_kustomize};
//! # use std::path::Path;
//! let ctx = ToolContext::new("web-production", "web", "/var/lib/berth/work".into());
//! let objects = render_kustomize(Path::new("/repo"), "apps/web/overlays/production", None, &ctx)?;
//! # Ok::<(), berth_repo::render::RenderError>(())
//! ```

use berth_api::application::{ApplicationSourceKustomize, KustomizePatch};
use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};
use std::time::Instant;

use super::yaml::parse_documents;
use super::{MAX_FILE_BYTES, Manifest, RenderError, ToolContext, contained_path, tool};
use crate::validate;

mod build_options;
pub use build_options::{
    BUILD_OPTIONS_KEY, BuildOptions, KustomizeSettings, KustomizeVersion, LEGACY_VERSION_PATH_PREFIX,
    LoadRestrictor, RefusedOption, VERSION_BUILD_OPTIONS_PREFIX, VERSION_PATH_PREFIX,
};

/// The names Kustomize looks for, in its order.
const KUSTOMIZATION_FILES: [&str; 3] = ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// Whether `dir` holds a kustomization (Argo CD's test for a Kustomize source).
pub fn is_kustomization_dir(dir: &Path) -> bool {
    kustomization_file(dir).is_some()
}

/// Renders the kustomization at `path` inside the checked-out `repo_root` with the Application's options,
/// with the binary and build options argocd-cm gives the Application's `version` (see
/// [`KustomizeSettings`]). Objects name the kustomization file (e.g.
/// `apps/web/overlays/production/kustomization.yaml`).
pub fn render_kustomize(
    repo_root: &Path,
    path: &str,
    options: Option<&ApplicationSourceKustomize>,
    ctx: &ToolContext,
) -> Result<Vec<Manifest>, RenderError> {
    let deadline = Instant::now() + ctx.timeout;
    let version = options.and_then(|o| o.version.as_deref());
    let (binary, build_options) = ctx
        .kustomize_settings
        .select(version, &ctx.kustomize)
        .map_err(|message| RenderError::Tool { tool: "kustomize".into(), path: path.into(), message })?;
    let root =
        repo_root.canonicalize().map_err(|e| RenderError::Io { file: ".".into(), message: e.to_string() })?;
    let app_dir = contained_path(&root, if path.is_empty() { "." } else { path })?;
    let rel = app_dir.strip_prefix(&root).unwrap_or(Path::new("")).to_path_buf();

    let scratch = Scratch::create(&ctx.work_dir)?;
    let copy_root = scratch.path.join("repo");
    let components = options.map(|o| o.components.clone()).unwrap_or_default();
    copy_inputs(&root, &copy_root, &rel, &components)?;
    let work = copy_root.join(&rel);
    let kustomize =
        Kustomize { ctx, binary, path, env: build_env(ctx, path), deadline, copy_root: &copy_root };

    // Before any `kustomize edit` runs, and again after the edits (which add the Application's components).
    check_local_references(&copy_root, &work, ctx.network)?;
    for (index, component) in components.iter().enumerate() {
        let field = format!("spec.source.kustomize.components[{index}]");
        validate::kustomize_remote_entry(&field, component, work.join(component).exists(), ctx.network)?;
    }
    if let Some(options) = options {
        // `kustomize edit` works on the current directory, where `tool::run` also puts its private home.
        let home = work.join(".home");
        let had_home = home.exists();
        let edited = apply_options(&kustomize, options, &work, &rel);
        if !had_home {
            let _ = std::fs::remove_dir_all(&home);
        }
        edited?;
    }
    check_local_references(&copy_root, &work, ctx.network)?;
    if build_options.load_restrictor == LoadRestrictor::None {
        check_loaded_files(&copy_root, &work)?;
    }

    let mut args = vec!["build".to_string()];
    args.extend(build_options.args());
    args.extend(["--".into(), work.to_string_lossy().into_owned()]);
    // A build that fails says which of the admin's options berth left out (a likely cause).
    let output = kustomize.run(&args, &scratch.path).map_err(|e| match e {
        RenderError::Tool { tool, path, message } => {
            RenderError::Tool { tool, path, message: message + &build_options.refusal_note() }
        }
        other => other,
    })?;
    let file = in_repo(&rel, kustomization_file(&work).unwrap_or(KUSTOMIZATION_FILES[0]));
    let text = String::from_utf8(output).map_err(|_| RenderError::InvalidFile {
        file: file.clone(),
        message: "kustomize printed output that is not UTF-8".into(),
    })?;
    let mut out = Vec::new();
    for (index, doc) in parse_documents(&text, &file)?.into_iter().enumerate() {
        match doc {
            serde_json::Value::Null => {}
            serde_json::Value::Object(_) => out.push(Manifest { file: file.clone(), object: doc }),
            _ => {
                return Err(RenderError::InvalidFile {
                    file,
                    message: format!("document {} of the kustomize output is not an object", index + 1),
                });
            }
        }
    }
    tracing::debug!(path, objects = out.len(), "kustomize build");
    Ok(out)
}

/// Runs `kustomize` for one render: one deadline for all its commands, scratch paths hidden in errors.
struct Kustomize<'a> {
    ctx: &'a ToolContext,
    /// The binary of the Application's Kustomize version.
    binary: &'a Path,
    path: &'a str,
    env: Vec<(String, String)>,
    deadline: Instant,
    copy_root: &'a Path,
}

impl Kustomize<'_> {
    fn run(&self, args: &[String], dir: &Path) -> Result<Vec<u8>, RenderError> {
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        let ctx = ToolContext { timeout: remaining, ..self.ctx.clone() };
        tool::run(&ctx, "kustomize", self.binary, args, dir, self.path, &self.env).map_err(|e| match e {
            RenderError::Timeout { tool, path, .. } => {
                RenderError::Timeout { tool, path, seconds: self.ctx.timeout.as_secs() }
            }
            RenderError::Tool { tool, path, message } => {
                RenderError::Tool { tool, path, message: self.clean(&message) }
            }
            other => other,
        })
    }

    fn edit(
        &self,
        args: &[&str],
        values: impl IntoIterator<Item = String>,
        dir: &Path,
    ) -> Result<(), RenderError> {
        let mut all: Vec<String> = ["edit"].iter().chain(args).map(|s| s.to_string()).collect();
        // `--` keeps a value that starts with `-` from being read as a flag.
        all.push("--".into());
        all.extend(values);
        self.run(&all, dir).map(drop)
    }

    fn fail(&self, message: String) -> RenderError {
        RenderError::Tool { tool: "kustomize".into(), path: self.path.into(), message }
    }

    /// Repository-relative paths instead of the scratch copy's, and no usage text after an edit error.
    fn clean(&self, message: &str) -> String {
        let message = message.split("\nUsage:").next().unwrap_or_default().trim();
        let root = self.copy_root.to_string_lossy();
        message.replace(&format!("{root}/"), "").replace(root.as_ref(), ".")
    }
}

/// Argo CD's order: name prefix and suffix, images, replicas, labels, annotations, namespace, patches,
/// components.
fn apply_options(
    k: &Kustomize,
    o: &ApplicationSourceKustomize,
    work: &Path,
    rel: &Path,
) -> Result<(), RenderError> {
    if let Some(prefix) = o.name_prefix.as_deref().filter(|p| !p.is_empty()) {
        k.edit(&["set", "nameprefix"], [prefix.to_string()], work)?;
    }
    if let Some(suffix) = o.name_suffix.as_deref().filter(|s| !s.is_empty()) {
        k.edit(&["set", "namesuffix"], [suffix.to_string()], work)?;
    }
    if !o.images.is_empty() {
        k.edit(&["set", "image"], o.images.iter().map(|i| envsubst(i, &k.env)), work)?;
    }
    if !o.replicas.is_empty() {
        let mut values = Vec::new();
        for (index, replica) in o.replicas.iter().enumerate() {
            let count = match &replica.count {
                serde_json::Value::Number(n) => n.as_i64(),
                serde_json::Value::String(s) => s.trim().parse::<i64>().ok(),
                _ => None,
            }
            .ok_or_else(|| {
                k.fail(format!(
                    "spec.source.kustomize.replicas[{index}].count: expected an integer, got {}",
                    replica.count
                ))
            })?;
            values.push(format!("{}={count}", replica.name));
        }
        k.edit(&["set", "replicas"], values, work)?;
    }
    if !o.common_labels.is_empty() {
        let mut args = vec!["add", "label"];
        if o.force_common_labels == Some(true) {
            args.push("--force");
        }
        if o.label_without_selector == Some(true) {
            args.push("--without-selector");
            if o.label_include_templates == Some(true) {
                args.push("--include-templates");
            }
        }
        k.edit(&args, o.common_labels.iter().map(|(key, value)| format!("{key}:{value}")), work)?;
    }
    if !o.common_annotations.is_empty() {
        let mut args = vec!["add", "annotation"];
        if o.force_common_annotations == Some(true) {
            args.push("--force");
        }
        let envsubst_values = o.common_annotations_envsubst == Some(true);
        let values = o.common_annotations.iter().map(|(key, value)| {
            let value = if envsubst_values { envsubst(value, &k.env) } else { value.clone() };
            format!("{key}:{value}")
        });
        k.edit(&args, values, work)?;
    }
    if let Some(namespace) = o.namespace.as_deref().filter(|n| !n.is_empty()) {
        k.edit(&["set", "namespace"], [namespace.to_string()], work)?;
    }
    if !o.patches.is_empty() {
        append_patches(work, rel, &o.patches)?;
    }
    if !o.components.is_empty() {
        let components: Vec<String> = o
            .components
            .iter()
            .filter(|c| o.ignore_missing_components != Some(true) || work.join(c).exists())
            .cloned()
            .collect();
        if !components.is_empty() {
            k.edit(&["add", "component"], components, work)?;
        }
    }
    Ok(())
}

/// Adds the Application's patches after the kustomization's own (Argo CD merges them the same way).
fn append_patches(work: &Path, rel: &Path, patches: &[KustomizePatch]) -> Result<(), RenderError> {
    let name = kustomization_file(work).unwrap_or(KUSTOMIZATION_FILES[0]);
    let file = in_repo(rel, name);
    let invalid = |message: String| RenderError::InvalidFile { file: file.clone(), message };
    let text = read_small(&work.join(name), &file)?;
    let mut doc = parse_documents(&text, &file)?.into_iter().next().unwrap_or_else(|| serde_json::json!({}));
    let map = doc.as_object_mut().ok_or_else(|| invalid("the kustomization is not a mapping".into()))?;
    let list = map.entry("patches").or_insert_with(|| serde_json::Value::Array(Vec::new()));
    if list.is_null() {
        *list = serde_json::Value::Array(Vec::new());
    }
    let list = list.as_array_mut().ok_or_else(|| invalid("field patches is not a list".into()))?;
    for patch in patches {
        list.push(serde_json::to_value(patch).map_err(|e| invalid(e.to_string()))?);
    }
    // JSON is YAML too: used if the YAML writer's output would not read back as the same document.
    let yaml = serde_saphyr::to_string(&doc)
        .ok()
        .filter(|y| parse_documents(y, &file).is_ok_and(|back| back.first() == Some(&doc)));
    let text = match yaml {
        Some(yaml) => yaml,
        None => serde_json::to_string_pretty(&doc).map_err(|e| invalid(e.to_string()))?,
    };
    std::fs::write(work.join(name), text).map_err(|e| RenderError::Io { file, message: e.to_string() })
}

/// Kustomize's load restrictor keeps files inside their kustomization's folder, but it lets `resources`,
/// `components` and the like name another kustomization anywhere on disk: those must stay in the copy.
/// Remote bases make kustomize run git: refused unless the render has network, and `file://` ones always
/// (they clone a path on berth's disk).
fn check_local_references(copy_root: &Path, start: &Path, network: bool) -> Result<(), RenderError> {
    let mut seen = HashSet::new();
    let mut queue = vec![start.to_path_buf()];
    while let Some(dir) = queue.pop() {
        let Ok(dir) = dir.canonicalize() else { continue };
        if !seen.insert(dir.clone()) {
            continue;
        }
        let Some(name) = kustomization_file(&dir) else { continue };
        let rel = dir.strip_prefix(copy_root).unwrap_or(Path::new("")).to_path_buf();
        let file = in_repo(&rel, name);
        let text = read_small(&dir.join(name), &file)?;
        let Some(doc) = parse_documents(&text, &file)?.into_iter().next() else { continue };
        for field in ["resources", "bases", "components", "generators", "transformers", "validators"] {
            let entries = doc.get(field).and_then(|v| v.as_array()).into_iter().flatten();
            for entry in entries.filter_map(|e| e.as_str()) {
                let exists = dir.join(entry).symlink_metadata().is_ok();
                if validate::kustomize_remote(entry, exists).is_some() {
                    validate::kustomize_remote_entry(field, entry, exists, network).map_err(|e| {
                        RenderError::InvalidFile {
                            file: file.clone(),
                            message: format!("{field} entry {}: {}", e.value, e.reason),
                        }
                    })?;
                    continue;
                }
                // Kustomize cleans `dir/entry` lexically before it looks at the disk; so does this.
                let target = normalize(&dir.join(entry));
                if !target.starts_with(copy_root) {
                    return Err(RenderError::InvalidFile {
                        file,
                        message: format!("{field} entry {entry:?} leaves the repository"),
                    });
                }
                if target.is_dir() {
                    queue.push(target);
                }
            }
        }
    }
    Ok(())
}

/// Keys whose strings kustomize loads as files or folders, in kustomizations and in the configurations of
/// its built-in generators and transformers (`files` entries may be `key=path`).
const FILE_KEYS: &[&str] = &[
    "resources",
    "bases",
    "components",
    "generators",
    "transformers",
    "validators",
    "crds",
    "configurations",
    "patchesStrategicMerge",
    "path",
    "paths",
    "files",
    "envs",
    "env",
    "valuesFile",
    "additionalValuesFiles",
    "chartHome",
    "configHome",
];
/// Keys whose values are data, never paths (a chart's inline values, generated literals).
const DATA_KEYS: &[&str] = &["valuesInline", "literals"];
/// Keys that name generator, transformer and validator configurations (files, or folders that build them).
const PLUGIN_KEYS: &[&str] = &["generators", "transformers", "validators"];

/// With `LoadRestrictionsNone` kustomize loads any path a kustomization names, so every one must stay in
/// the render's copy of the repository: an absolute path or a `..` that climbs out is refused, whether or
/// not it exists (the refusal tells nothing about berth's disk). The configurations of generators and
/// transformers load paths relative to a kustomization higher up: theirs may not climb at all.
fn check_loaded_files(copy_root: &Path, start: &Path) -> Result<(), RenderError> {
    let mut seen = HashSet::new();
    // (folder, whether its resources are generator or transformer configurations)
    let mut queue = vec![(start.to_path_buf(), false)];
    while let Some((dir, plugins)) = queue.pop() {
        let Ok(dir) = dir.canonicalize() else { continue };
        if !seen.insert((dir.clone(), plugins)) {
            continue;
        }
        let Some(name) = kustomization_file(&dir) else { continue };
        let rel = dir.strip_prefix(copy_root).unwrap_or(Path::new("")).to_path_buf();
        let file = in_repo(&rel, name);
        let text = read_small(&dir.join(name), &file)?;
        let Some(doc) = parse_documents(&text, &file)?.into_iter().next() else { continue };
        let mut references = Vec::new();
        file_references(&doc, &mut references);
        for (key, entry) in references {
            if validate::kustomize_remote(entry, dir.join(entry).symlink_metadata().is_ok()).is_some() {
                // Remote bases are [`check_local_references`]'s to judge.
                continue;
            }
            let target = normalize(&dir.join(entry));
            if !target.starts_with(copy_root) {
                return Err(RenderError::InvalidFile {
                    file,
                    message: format!(
                        "{key} entry {entry:?} leaves the repository (kustomize.buildOptions allows \
                         LoadRestrictionsNone, and berth keeps every load inside the repository)"
                    ),
                });
            }
            let plugin = PLUGIN_KEYS.contains(&key) || (plugins && key == "resources");
            if target.is_dir() {
                queue.push((target, plugin));
            } else if plugin && target.is_file() {
                check_plugin_configuration(copy_root, &target)?;
            }
        }
    }
    Ok(())
}

/// The paths a generator or transformer configuration file names may be neither absolute nor climb.
fn check_plugin_configuration(copy_root: &Path, path: &Path) -> Result<(), RenderError> {
    let file = path.strip_prefix(copy_root).unwrap_or(path).to_string_lossy().into_owned();
    let text = read_small(path, &file)?;
    for doc in parse_documents(&text, &file)? {
        let mut references = Vec::new();
        file_references(&doc, &mut references);
        for (key, entry) in references {
            if validate::kustomize_remote(entry, false).is_some() {
                continue;
            }
            let mut depth = 0i64;
            let climbs = Path::new(entry).is_absolute()
                || Path::new(entry).components().any(|c| {
                    depth += match c {
                        Component::ParentDir => -1,
                        Component::Normal(_) => 1,
                        _ => 0,
                    };
                    depth < 0
                });
            if climbs {
                return Err(RenderError::InvalidFile {
                    file,
                    message: format!(
                        "{key} entry {entry:?} may leave the repository (kustomize.buildOptions allows \
                         LoadRestrictionsNone; a generator or transformer configuration may not name \
                         absolute paths or climb with ..)"
                    ),
                });
            }
        }
    }
    Ok(())
}

/// The strings under [`FILE_KEYS`] anywhere in `doc` (not under [`DATA_KEYS`]), with their key; a
/// `files` entry `name=path` gives its path. Multi-line strings are inline content, not paths.
fn file_references<'a>(doc: &'a serde_json::Value, out: &mut Vec<(&'a str, &'a str)>) {
    fn strings<'a>(key: &'a str, value: &'a serde_json::Value, out: &mut Vec<(&'a str, &'a str)>) {
        match value {
            serde_json::Value::String(s) if !s.contains('\n') && !s.trim().is_empty() => {
                let path = if key == "files" { s.split_once('=').map_or(s.as_str(), |(_, p)| p) } else { s };
                out.push((key, path.trim()));
            }
            serde_json::Value::Array(items) => items.iter().for_each(|item| strings(key, item, out)),
            serde_json::Value::Object(_) => file_references(value, out),
            _ => {}
        }
    }
    match doc {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                if DATA_KEYS.contains(&key.as_str()) {
                    continue;
                }
                if FILE_KEYS.contains(&key.as_str()) {
                    strings(key, value, out);
                } else {
                    file_references(value, out);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|item| file_references(item, out)),
        _ => {}
    }
}

/// Copies what the kustomization at `rel` reads (its folder, and the bases, components and files its
/// kustomizations name, with the targets of symlinks among them) to the same places under `copy_root`.
/// A monorepo's other applications are not copied: a render costs what the application reads.
fn copy_inputs(root: &Path, copy_root: &Path, rel: &Path, components: &[String]) -> Result<(), RenderError> {
    let start = rel.to_string_lossy().replace('\\', "/");
    let mut pending: Vec<PathBuf> =
        super::render_inputs(root, &start, components).into_iter().map(|p| root.join(p)).collect();
    pending.push(root.join(rel));
    let mut copied: Vec<PathBuf> = Vec::new();
    while let Some(next) = pending.pop() {
        if copied.iter().any(|c| next.starts_with(c)) {
            continue;
        }
        // A folder replaces the folders inside it that were copied before.
        copied.retain(|c| !c.starts_with(&next));
        let mut links = Vec::new();
        if next.is_dir() {
            copy_tree(root, copy_root, &next, &mut links)?;
        } else if next.is_file() {
            let to = copy_root.join(next.strip_prefix(root).unwrap_or(&next));
            let io = |e: std::io::Error| RenderError::Io { file: start.clone(), message: e.to_string() };
            std::fs::create_dir_all(to.parent().unwrap_or(copy_root)).map_err(io)?;
            std::fs::copy(&next, &to).map_err(io)?;
        }
        copied.push(next);
        pending.extend(links);
    }
    Ok(())
}

/// Copies `dir` (inside `root`) to the same place under `copy_root`, leaving out `.git`; every symlink must
/// point inside `root` and is recreated to point at the same place in the copy (its target is added to
/// `links`, to be copied too).
fn copy_tree(root: &Path, copy_root: &Path, dir: &Path, links: &mut Vec<PathBuf>) -> Result<(), RenderError> {
    let rel = |p: &Path| p.strip_prefix(root).unwrap_or(p).to_path_buf();
    let io = |p: &Path, e: std::io::Error| RenderError::Io {
        file: rel(p).to_string_lossy().into_owned(),
        message: e.to_string(),
    };
    std::fs::create_dir_all(copy_root.join(rel(dir))).map_err(|e| io(dir, e))?;
    for entry in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
        let entry = entry.map_err(|e| io(dir, e))?;
        if entry.file_name() == ".git" {
            continue;
        }
        let path = entry.path();
        let to = copy_root.join(rel(&path));
        let kind = entry.file_type().map_err(|e| io(&path, e))?;
        if kind.is_symlink() {
            let target = std::fs::read_link(&path).map_err(|e| io(&path, e))?;
            // A dangling link is judged by where it would point.
            let real = path.canonicalize().unwrap_or_else(|_| normalize(&dir.join(&target)));
            if !real.starts_with(root) {
                return Err(RenderError::OutsideRepository {
                    path: rel(&path).to_string_lossy().into_owned(),
                });
            }
            if !to.exists() && to.symlink_metadata().is_err() {
                symlink(&copy_root.join(rel(&real)), &to).map_err(|e| io(&path, e))?;
            }
            links.push(real);
        } else if kind.is_dir() {
            copy_tree(root, copy_root, &path, links)?;
        } else if kind.is_file() {
            std::fs::copy(&path, &to).map_err(|e| io(&path, e))?;
        }
    }
    Ok(())
}

#[cfg(unix)]
fn symlink(target: &Path, link: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

#[cfg(not(unix))]
fn symlink(_target: &Path, _link: &Path) -> std::io::Result<()> {
    Err(std::io::Error::other("symlinks in a Kustomize source need a Unix host"))
}

/// `a/b/../c` → `a/c` without touching the disk (`..` above the start stays at the start).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

fn kustomization_file(dir: &Path) -> Option<&'static str> {
    KUSTOMIZATION_FILES.into_iter().find(|name| dir.join(name).is_file())
}

fn in_repo(rel: &Path, name: &str) -> String {
    rel.join(name).to_string_lossy().into_owned()
}

fn read_small(path: &Path, file: &str) -> Result<String, RenderError> {
    let io = |e: std::io::Error| RenderError::Io { file: file.into(), message: e.to_string() };
    let size = std::fs::metadata(path).map_err(io)?.len();
    if size > MAX_FILE_BYTES {
        return Err(RenderError::TooLarge { file: file.into(), size, limit: MAX_FILE_BYTES });
    }
    std::fs::read_to_string(path).map_err(io)
}

/// Argo CD's build environment, as far as berth knows it at render time.
fn build_env(ctx: &ToolContext, path: &str) -> Vec<(String, String)> {
    vec![
        ("ARGOCD_APP_NAME".into(), ctx.app_name.clone()),
        ("ARGOCD_APP_NAMESPACE".into(), ctx.namespace.clone()),
        ("ARGOCD_APP_SOURCE_PATH".into(), path.into()),
        ("KUBE_VERSION".into(), ctx.kube_version.clone()),
        ("KUBE_API_VERSIONS".into(), ctx.api_versions.join(",")),
    ]
}

/// `$NAME` and `${NAME}` from `env` (unknown names become empty), `$$` → `$`, as Argo CD substitutes.
fn envsubst(text: &str, env: &[(String, String)]) -> String {
    let lookup = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).unwrap_or("");
    let is_name = |c: char| c == '_' || c.is_ascii_alphanumeric();
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let mut chars = after.chars();
        match chars.next() {
            Some('$') => {
                out.push('$');
                rest = &after[1..];
            }
            Some('{') => match after.find('}') {
                Some(end) => {
                    out.push_str(lookup(&after[1..end]));
                    rest = &after[end + 1..];
                }
                // Unclosed `${`: dropped, as Go's expansion does.
                None => rest = &after[1..],
            },
            Some(c) if "*#@!?-0123456789".contains(c) => rest = &after[c.len_utf8()..],
            Some(c) if is_name(c) => {
                let end = after.find(|c: char| !is_name(c)).unwrap_or(after.len());
                out.push_str(lookup(&after[..end]));
                rest = &after[end..];
            }
            _ => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// A per-render folder under the work dir, removed when the render ends, however it ends.
struct Scratch {
    path: PathBuf,
}

impl Scratch {
    fn create(work_dir: &Path) -> Result<Self, RenderError> {
        let io = |e: std::io::Error| RenderError::Io {
            file: work_dir.display().to_string(),
            message: e.to_string(),
        };
        std::fs::create_dir_all(work_dir).map_err(io)?;
        // Kustomize prints resolved paths: a canonical name lets errors hide them.
        let work_dir = work_dir.canonicalize().map_err(io)?;
        loop {
            // A random name, created new: another render cannot guess it or plant it in advance.
            let path = work_dir.join(format!("kustomize-{}", crate::git::random_hex(16).map_err(io)?));
            match std::fs::create_dir(&path) {
                Ok(()) => return Ok(Scratch { path }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io(e)),
            }
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Vec<(String, String)> {
        vec![("ARGOCD_APP_NAME".into(), "web".into()), ("KUBE_VERSION".into(), "1.36.3".into())]
    }

    #[test]
    fn envsubst_expands_known_names_and_empties_unknown_ones() {
        assert_eq!(envsubst("app=$ARGOCD_APP_NAME k=${KUBE_VERSION}!", &env()), "app=web k=1.36.3!");
        assert_eq!(envsubst("x${NOPE}y$NOPE.z", &env()), "xy.z");
    }

    #[test]
    fn envsubst_keeps_escaped_and_lone_dollars() {
        assert_eq!(
            envsubst("$$ARGOCD_APP_NAME costs $5 or $ 6 $", &env()),
            "$ARGOCD_APP_NAME costs  or $ 6 $"
        );
        assert_eq!(envsubst("a${b", &env()), "ab");
    }

    #[test]
    fn an_alias_bomb_or_deep_nesting_in_a_kustomization_is_refused_naming_it() {
        use crate::render::yaml::tests::{billion_laughs, nested};
        for text in [billion_laughs(), nested(5_000, true)] {
            let root = tempfile::tempdir().unwrap();
            let app = root.path().join("apps/web");
            std::fs::create_dir_all(&app).unwrap();
            std::fs::write(app.join("kustomization.yaml"), text).unwrap();
            let root = root.path().canonicalize().unwrap();
            let err = check_local_references(&root, &app, false).unwrap_err();
            assert!(
                matches!(&err, RenderError::InvalidFile { file, .. } if file == "apps/web/kustomization.yaml"),
                "{err}"
            );
        }
    }

    #[test]
    fn normalize_removes_dot_segments() {
        assert_eq!(normalize(Path::new("/r/a/b/../../c/./d")), PathBuf::from("/r/c/d"));
        assert_eq!(normalize(Path::new("/r/../../etc")), PathBuf::from("/etc"));
    }
}
