//! Helm sources, rendered by the real `helm template` as Argo CD does: a chart at a path of a git tree,
//! or a chart pulled from a Helm HTTP repository or an OCI registry.
//!
//! A chart from a git tree is copied to a scratch directory first (the tree is shared, and
//! `helm dependency build` writes `charts/`); its missing dependencies come from a cache keyed by what
//! they were built from. Pulled charts are cached by repository, chart and version. Value files stay
//! inside their tree, hooks stay in the output (the sync engine maps `helm.sh/hook`), and the output is
//! parsed with limits that refuse alias bombs.
//!
//! ```no_run
//! # use berth_repo::render::{ToolContext, helm::render_helm_path};
//! # use std::path::Path;
//! let ctx = ToolContext::new("web", "web", "/var/cache/berth/render".into());
//! let manifests = render_helm_path(Path::new("/repos/charts"), "charts/web", None, &ctx)?;
//! # Ok::<(), berth_repo::render::RenderError>(())
//! ```

use berth_api::application::ApplicationSourceHelm;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Component, Path, PathBuf};

use super::directory::push_object;
use super::{MAX_FILE_BYTES, Manifest, RenderError, ToolContext, contained_path, tool, yaml};
use crate::validate;

/// Largest chart (or set of local dependencies) copied to a scratch directory.
pub const MAX_CHART_BYTES: u64 = 128 * 1024 * 1024;

/// How to log in to a Helm HTTP repository or an OCI registry.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct HelmCredentials {
    pub username: Option<String>,
    pub password: Option<String>,
    /// Skip TLS certificate verification (`--insecure-skip-tls-verify`).
    pub insecure: bool,
    /// Talk plain HTTP to an OCI registry (`--plain-http`).
    pub plain_http: bool,
}

impl fmt::Debug for HelmCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HelmCredentials")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("insecure", &self.insecure)
            .field("plain_http", &self.plain_http)
            .finish()
    }
}

/// Whether `dir` is a Helm chart (it has a `Chart.yaml`).
pub fn is_chart_dir(dir: &Path) -> bool {
    dir.join("Chart.yaml").is_file()
}

/// Renders the chart at `path` inside the checked-out `repo_root`. Each manifest's `file` is the
/// template it came from, relative to the repository root (`charts/web/templates/deployment.yaml`).
pub fn render_helm_path(
    repo_root: &Path,
    path: &str,
    helm: Option<&ApplicationSourceHelm>,
    ctx: &ToolContext,
) -> Result<Vec<Manifest>, RenderError> {
    let root = canonical(repo_root, ".")?;
    let chart = contained_path(&root, if path.is_empty() { "." } else { path })?;
    let in_repo = relative(&root, &chart);
    let shown = if in_repo.is_empty() { "." } else { in_repo.as_str() };
    if !is_chart_dir(&chart) {
        return Err(RenderError::InvalidFile {
            file: join_file(&in_repo, "Chart.yaml"),
            message: "not a Helm chart: Chart.yaml is missing".into(),
        });
    }
    let scratch = Scratch::new(&ctx.work_dir, shown)?;
    let tree = scratch.path().join("tree");
    let copy = tree.join(&in_repo);
    let mut copied = 0;
    copy_tree(&root, &chart, &copy, &mut copied)?;
    build_dependencies(&root, &chart, &copy, &tree, &in_repo, &scratch, ctx)?;
    let trees = ValueTrees { root: &root, chart: &chart };
    let output = template(ctx, helm, &copy, &trees, &scratch, shown)?;
    parse_output(&output, Some(&in_repo))
}

/// Renders `chart` at `version` from a Helm HTTP repository (`repo_url` with `http://` or `https://`)
/// or an OCI registry (`repo_url` with `oci://` or without a scheme, as Argo CD writes it). The chart
/// is pulled once per repository, chart and exact version into a cache under the work directory.
/// Pulling needs `ctx.network`; each manifest's `file` is the template as Helm names it
/// (`web/templates/deployment.yaml`).
pub fn render_helm_chart(
    repo_url: &str,
    chart: &str,
    version: &str,
    helm: Option<&ApplicationSourceHelm>,
    ctx: &ToolContext,
    creds: &HelmCredentials,
) -> Result<Vec<Manifest>, RenderError> {
    let at = if version.is_empty() { String::new() } else { format!(" {version}") };
    let shown = format!("chart {chart}{at} from {}", crate::url::without_userinfo(repo_url));
    let scrub = |e| scrub_secrets(e, creds);
    validate::helm_repo_url("spec.source.repoURL", repo_url)?;
    validate::helm_chart_name("spec.source.chart", chart)?;
    validate::helm_chart_version("spec.source.targetRevision", version)?;
    if !ctx.network {
        return Err(RenderError::Tool {
            tool: "helm".into(),
            path: shown,
            message: "pulling a chart needs network access, which is off for this render".into(),
        });
    }
    let scratch = Scratch::new(&ctx.work_dir, &shown)?;
    let remote = RemoteChart {
        repo_url,
        chart,
        version,
        pass_credentials: helm.and_then(|h| h.pass_credentials).unwrap_or(false),
    };
    let dir = pull_chart(&remote, ctx, creds, &scratch, &shown).map_err(scrub)?;
    let dir = canonical(&dir, &shown)?;
    let trees = ValueTrees { root: &dir, chart: &dir };
    let output = template(ctx, helm, &dir, &trees, &scratch, &shown).map_err(scrub)?;
    parse_output(&output, None)
}

/// The trees value files may come from: the repository (or the pulled chart) and the chart in it.
struct ValueTrees<'a> {
    root: &'a Path,
    chart: &'a Path,
}

/// Runs `helm template` for the chart at `chart_dir` with the source's options.
fn template(
    ctx: &ToolContext,
    helm: Option<&ApplicationSourceHelm>,
    chart_dir: &Path,
    trees: &ValueTrees,
    scratch: &Scratch,
    shown: &str,
) -> Result<Vec<u8>, RenderError> {
    let default = ApplicationSourceHelm::default();
    let h = helm.unwrap_or(&default);
    let pick = |own: &Option<String>, fallback: &str| -> String {
        own.as_deref().filter(|v| !v.is_empty()).unwrap_or(fallback).to_string()
    };
    let release = pick(&h.release_name, &ctx.app_name);
    let release_field = if h.release_name.as_deref().is_some_and(|r| !r.is_empty()) {
        "spec.source.helm.releaseName"
    } else {
        "metadata.name"
    };
    // Passed as `--name-template`, a Go template: only Helm's plain release names get there.
    validate::helm_release_name(release_field, &release)?;
    let namespace = pick(&h.namespace, &ctx.namespace);
    let kube_version = pick(&h.kube_version, &ctx.kube_version);
    let api_versions = if h.api_versions.is_empty() { &ctx.api_versions } else { &h.api_versions };

    // Every user value rides in `--flag=value` form, and the chart follows `--`: none can be a flag.
    let mut args: Vec<String> = vec!["template".into(), format!("--name-template={release}")];
    let mut flag = |name: &str, value: String| args.push(format!("{name}={value}"));
    if !namespace.is_empty() {
        flag("--namespace", namespace);
    }
    if !kube_version.is_empty() {
        flag("--kube-version", kube_version);
    }
    for version in api_versions {
        flag("--api-versions", version.clone());
    }
    let ignore_missing = h.ignore_missing_value_files.unwrap_or(false);
    for file in &h.value_files {
        if let Some(values) = value_file(file, trees, ctx, ignore_missing)? {
            flag("--values", values);
        }
    }
    if let Some(inline) = inline_values(h, scratch)? {
        flag("--values", inline.display().to_string());
    }
    for p in &h.parameters {
        let name = if p.force_string.unwrap_or(false) { "--set-string" } else { "--set" };
        flag(name, format!("{}={}", p.name, escape_set_value(&p.value)));
    }
    for (index, p) in h.file_parameters.iter().enumerate() {
        validate::helm_parameter_name(&format!("spec.source.helm.fileParameters[{index}].name"), &p.name)?;
        let file = tree_file(&p.path, trees, &ctx.refs)?
            .ok_or_else(|| RenderError::PathNotFound { path: p.path.clone() })?;
        flag("--set-file", format!("{}={}", p.name, escape_set_value(&file.display().to_string())));
    }
    if !h.skip_crds.unwrap_or(false) {
        args.push("--include-crds".into());
    }
    if h.skip_tests.unwrap_or(false) {
        args.push("--skip-tests".into());
    }
    if h.skip_schema_validation.unwrap_or(false) {
        args.push("--skip-schema-validation".into());
    }
    args.push("--".into());
    args.push(chart_dir.display().to_string());
    tool::run(ctx, "helm", &ctx.helm, &args, scratch.path(), shown, &[])
}

/// A `valueFiles` entry as Helm's `--values` argument; `None` when it is missing and may be.
fn value_file(
    spec: &str,
    trees: &ValueTrees,
    ctx: &ToolContext,
    ignore_missing: bool,
) -> Result<Option<String>, RenderError> {
    if spec.starts_with("https://") || spec.starts_with("http://") {
        if !ctx.network {
            return Err(RenderError::InvalidFile {
                file: spec.into(),
                message: "a remote value file needs network access, which is off for this render".into(),
            });
        }
        return Ok(Some(spec.into()));
    }
    match tree_file(spec, trees, &ctx.refs)? {
        Some(file) => Ok(Some(file.display().to_string())),
        None if ignore_missing => Ok(None),
        None => Err(RenderError::PathNotFound { path: spec.into() }),
    }
}

/// Resolves a value file or file parameter as Argo CD does: `$ref/path` in the tree of the source
/// with that `ref`, `/path` from the repository root, anything else from the chart's folder. The file
/// (symlinks resolved) must stay inside its tree; `None` when it does not exist.
fn tree_file(
    spec: &str,
    trees: &ValueTrees,
    refs: &BTreeMap<String, PathBuf>,
) -> Result<Option<PathBuf>, RenderError> {
    let outside = || RenderError::OutsideRepository { path: spec.into() };
    let (root, base, rel) = if let Some(reference) = spec.strip_prefix('$') {
        let (name, rel) = reference.split_once('/').unwrap_or((reference, ""));
        let tree = refs.get(name).ok_or_else(|| RenderError::InvalidFile {
            file: spec.into(),
            message: format!("no source of this application has ref: {name}"),
        })?;
        let tree = canonical(tree, spec)?;
        (tree.clone(), tree, rel)
    } else if let Some(rel) = spec.strip_prefix('/') {
        (trees.root.to_path_buf(), trees.root.to_path_buf(), rel)
    } else {
        (trees.root.to_path_buf(), trees.chart.to_path_buf(), spec)
    };
    let mut joined = base;
    for component in Path::new(rel).components() {
        match component {
            Component::Normal(part) => joined.push(part),
            Component::ParentDir => {
                joined.pop();
            }
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return Err(outside()),
        }
        if !joined.starts_with(&root) {
            return Err(outside());
        }
    }
    if !joined.exists() {
        return Ok(None);
    }
    let real = canonical(&joined, spec)?;
    if !real.starts_with(&root) {
        return Err(outside());
    }
    if !real.is_file() {
        return Err(RenderError::InvalidFile { file: spec.into(), message: "is not a file".into() });
    }
    Ok(Some(real))
}

/// `valuesObject`, or else `values`, as one more values file. As in Argo CD, a `valuesObject` replaces
/// the `values` string rather than merging with it.
fn inline_values(h: &ApplicationSourceHelm, scratch: &Scratch) -> Result<Option<PathBuf>, RenderError> {
    let text = match (&h.values_object, h.values.as_deref()) {
        (Some(object), _) if !object.is_null() => {
            if !object.is_object() {
                return Err(RenderError::InvalidFile {
                    file: "helm.valuesObject".into(),
                    message: "must be a mapping".into(),
                });
            }
            // JSON is YAML: Helm reads it as it is.
            object.to_string()
        }
        (_, Some(values)) if !values.trim().is_empty() => {
            let invalid = |message: String| RenderError::InvalidFile { file: "helm.values".into(), message };
            let parsed: serde_json::Value = yaml::parse_document(values, "helm.values")?;
            if !parsed.is_object() && !parsed.is_null() {
                return Err(invalid("must be a mapping".into()));
            }
            values.to_string()
        }
        _ => return Ok(None),
    };
    let file = scratch.path().join("values.yaml");
    std::fs::write(&file, text)
        .map_err(|e| RenderError::Io { file: "helm.values".into(), message: e.to_string() })?;
    Ok(Some(file))
}

/// `--set` splits on commas: escape them, except in a `{a,b}` list (as Argo CD does).
fn escape_set_value(value: &str) -> String {
    if value.starts_with('{') && value.ends_with('}') {
        return value.into();
    }
    let mut out = String::with_capacity(value.len());
    let mut previous = None;
    for c in value.chars() {
        if c == ',' && previous != Some('\\') {
            out.push('\\');
        }
        out.push(c);
        previous = Some(c);
    }
    out
}

#[derive(serde::Deserialize, Default)]
struct ChartFile {
    #[serde(default)]
    dependencies: Option<Vec<ChartDependency>>,
}

#[derive(serde::Deserialize)]
struct ChartDependency {
    #[serde(default)]
    name: String,
    #[serde(default)]
    repository: String,
}

/// Puts the chart's missing dependencies into `copy/charts`: from the cache when they were built from
/// the same `Chart.yaml`, `Chart.lock`, `charts/` and local dependencies before, else with
/// `helm dependency build` (network only when allowed; `file://` dependencies inside the repository
/// need none).
fn build_dependencies(
    root: &Path,
    chart: &Path,
    copy: &Path,
    tree: &Path,
    in_repo: &str,
    scratch: &Scratch,
    ctx: &ToolContext,
) -> Result<(), RenderError> {
    let chart_file = join_file(in_repo, "Chart.yaml");
    let text = read_limited(&chart.join("Chart.yaml"), &chart_file)?;
    let parsed: ChartFile = yaml::parse_document(&text, &chart_file)?;
    let dependencies = parsed.dependencies.unwrap_or_default();
    if dependencies.iter().all(|d| vendored(&copy.join("charts"), &d.name)) {
        return Ok(());
    }

    let mut key = Sha256::new();
    key.update(b"berth helm dependencies v1\0");
    key.update(text.as_bytes());
    hash_tree(root, chart, &mut key, |rel| rel == Path::new("Chart.lock") || rel.starts_with("charts"))?;
    let mut local = Vec::new();
    let mut remote = Vec::new();
    for dep in &dependencies {
        match dep.repository.strip_prefix("file://") {
            Some(dir) => {
                let outside = || RenderError::OutsideRepository { path: dep.repository.clone() };
                let dir = tree_file_dir(root, chart, dir).ok_or_else(outside)?;
                key.update(relative(root, &dir).as_bytes());
                hash_tree(root, &dir, &mut key, |_| true)?;
                local.push(dir);
            }
            None => remote.push(format!("{} ({})", dep.name, dep.repository)),
        }
    }
    let cache = ctx.work_dir.join("helm").join("dependencies").join(hex(&key.finalize()));
    let charts = copy.join("charts");
    let mut copied = 0;
    if cache.is_dir() {
        let cache = canonical(&cache, &chart_file)?;
        return copy_tree(&cache, &cache, &charts, &mut copied);
    }
    if !remote.is_empty() && !ctx.network {
        return Err(RenderError::Tool {
            tool: "helm".into(),
            path: if in_repo.is_empty() { ".".into() } else { in_repo.into() },
            message: format!(
                "chart dependencies {} need network access, which is off for this render",
                remote.join(", ")
            ),
        });
    }
    for dir in &local {
        if !dir.starts_with(chart) {
            copy_tree(root, dir, &tree.join(relative(root, dir)), &mut copied)?;
        }
    }
    let args = vec!["dependency".into(), "build".into(), "--".into(), copy.display().to_string()];
    tool::run(ctx, "helm", &ctx.helm, &args, scratch.path(), &chart_file, &[])?;
    publish(&charts, &cache, scratch, true)?;
    Ok(())
}

/// A `file://` dependency's folder, when it exists inside the repository.
fn tree_file_dir(root: &Path, chart: &Path, dir: &str) -> Option<PathBuf> {
    let real = chart.join(dir).canonicalize().ok()?;
    (real.starts_with(root) && real.is_dir()).then_some(real)
}

/// Whether `charts/` already holds the dependency, unpacked or as an archive.
fn vendored(charts: &Path, name: &str) -> bool {
    if charts.join(name).join("Chart.yaml").is_file() {
        return true;
    }
    let prefix = format!("{name}-");
    std::fs::read_dir(charts).into_iter().flatten().flatten().any(|entry| {
        let file = entry.file_name().to_string_lossy().to_string();
        file.starts_with(&prefix) && file.ends_with(".tgz")
    })
}

/// A chart in a Helm HTTP repository or an OCI registry.
struct RemoteChart<'a> {
    repo_url: &'a str,
    chart: &'a str,
    version: &'a str,
    /// Send the credentials to other hosts too (`--pass-credentials`).
    pass_credentials: bool,
}

/// Pulls the chart unpacked into the cache (or, for a version range, into the scratch directory) and
/// returns its folder.
fn pull_chart(
    remote: &RemoteChart,
    ctx: &ToolContext,
    creds: &HelmCredentials,
    scratch: &Scratch,
    shown: &str,
) -> Result<PathBuf, RenderError> {
    let RemoteChart { repo_url, chart, version, pass_credentials } = *remote;
    let http = repo_url.starts_with("http://") || repo_url.starts_with("https://");
    let reference = if http {
        format!("{} {chart}", repo_url.trim_end_matches('/'))
    } else {
        format!("oci://{}/{chart}", repo_url.trim_start_matches("oci://").trim_end_matches('/'))
    };
    let exact = is_exact_version(version);
    let mut key = Sha256::new();
    key.update(format!("berth helm chart v1\0{reference}\0{version}").as_bytes());
    let cache = ctx.work_dir.join("helm").join("charts").join(hex(&key.finalize()));
    if exact && let Some(dir) = unpacked_chart(&cache) {
        return Ok(dir);
    }

    let dest = scratch.path().join("pulled");
    // Values in `--flag=value` form and the chart after `--`: nothing here can be read as another flag.
    let mut args: Vec<String> = vec!["pull".into()];
    if http {
        args.push(format!("--repo={repo_url}"));
        if pass_credentials {
            args.push("--pass-credentials".into());
        }
    } else if creds.plain_http {
        args.push("--plain-http".into());
    }
    if !version.is_empty() {
        args.push(format!("--version={version}"));
    }
    args.extend([format!("--destination={}", dest.display()), "--untar".into()]);
    if let Some(username) = creds.username.as_deref().filter(|u| !u.is_empty()) {
        args.push(format!("--username={username}"));
    }
    // helm pull has no way to read the password from a file or standard input.
    if let Some(password) = creds.password.as_deref().filter(|p| !p.is_empty()) {
        args.push(format!("--password={password}"));
    }
    if creds.insecure {
        args.push("--insecure-skip-tls-verify".into());
    }
    args.push("--".into());
    args.push(if http { chart.to_string() } else { reference.clone() });
    tool::run(ctx, "helm", &ctx.helm, &args, scratch.path(), shown, &[])?;
    if !exact {
        return unpacked_chart(&dest).ok_or_else(|| no_chart(shown));
    }
    publish(&dest, &cache, scratch, false)?;
    unpacked_chart(&cache).ok_or_else(|| no_chart(shown))
}

fn no_chart(shown: &str) -> RenderError {
    RenderError::Tool {
        tool: "helm".into(),
        path: shown.into(),
        message: "the pulled archive holds no chart".into(),
    }
}

/// The one folder with a `Chart.yaml` inside `dir`.
fn unpacked_chart(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir).ok()?.flatten().map(|e| e.path()).find(|p| is_chart_dir(p))
}

/// A version a cache entry can stand for: not empty, not a range.
fn is_exact_version(version: &str) -> bool {
    !version.is_empty()
        && version.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+' | '_'))
        && !version.split(['.', '-', '+']).any(|part| matches!(part, "x" | "X"))
}

/// Moves (or copies) `from` to `to` in one rename, so a reader never sees half an entry; when another
/// render published the same entry first, its copy is kept.
fn publish(from: &Path, to: &Path, scratch: &Scratch, copy: bool) -> Result<(), RenderError> {
    let io = |e: std::io::Error| RenderError::Io { file: to.display().to_string(), message: e.to_string() };
    let parent = to.parent().unwrap_or(to);
    std::fs::create_dir_all(parent).map_err(io)?;
    let staged = if copy {
        let staged = scratch.path().join("publish");
        let mut copied = 0;
        copy_tree(from, from, &staged, &mut copied)?;
        staged
    } else {
        from.to_path_buf()
    };
    // Stage beside the target: a rename only works within one file system.
    let beside = parent.join(format!(".incoming-{}", unique_name(to)?));
    std::fs::rename(&staged, &beside).map_err(io)?;
    if std::fs::rename(&beside, to).is_err() {
        let _ = std::fs::remove_dir_all(&beside);
        if !to.is_dir() {
            return Err(RenderError::Io { file: to.display().to_string(), message: "cannot store".into() });
        }
    }
    Ok(())
}

/// Splits `helm template` output into its documents and names each by its `# Source:` comment
/// (prefixed with the chart's folder in the repository when there is one).
fn parse_output(output: &[u8], chart_in_repo: Option<&str>) -> Result<Vec<Manifest>, RenderError> {
    let text = std::str::from_utf8(output).map_err(|_| RenderError::InvalidFile {
        file: chart_in_repo.unwrap_or("helm template").into(),
        message: "helm printed output that is not UTF-8".into(),
    })?;
    let mut manifests = Vec::new();
    for chunk in split_documents(text) {
        let source = chunk.lines().find_map(|line| line.strip_prefix("# Source: ")).map(str::trim);
        let file = match (source, chart_in_repo) {
            (Some(source), Some(chart)) => {
                // Helm names the chart by its name, not its folder.
                join_file(chart, source.split_once('/').map_or(source, |(_, rest)| rest))
            }
            (Some(source), None) => source.to_string(),
            (None, Some(chart)) => if chart.is_empty() { "." } else { chart }.to_string(),
            (None, None) => "helm template".into(),
        };
        for (index, doc) in yaml::parse_documents(chunk, &file)?.into_iter().enumerate() {
            push_object(doc, &file, index, &mut manifests)?;
        }
    }
    Ok(manifests)
}

/// The documents of a YAML stream, split at `---` lines (Helm prints one before every document).
fn split_documents(text: &str) -> Vec<&str> {
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if line.trim_end() == "---" {
            chunks.push(&text[start..offset]);
            start = offset + line.len();
        }
        offset += line.len();
    }
    chunks.push(&text[start..]);
    chunks.into_iter().filter(|c| !c.trim().is_empty()).collect()
}

/// A scratch directory of one render under the work directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(work_dir: &Path, shown: &str) -> Result<Scratch, RenderError> {
        let io = |e: std::io::Error| RenderError::Io {
            file: shown.into(),
            message: format!("cannot create a scratch directory under {}: {e}", work_dir.display()),
        };
        let parent = work_dir.join("helm").join("scratch");
        std::fs::create_dir_all(&parent).map_err(io)?;
        // A random name, created new: another render cannot guess it or plant it in advance.
        let dir = parent.join(crate::git::random_hex(16).map_err(io)?);
        std::fs::create_dir(&dir).map_err(io)?;
        // Absolute: helm runs inside it and gets paths into it.
        Ok(Scratch(dir.canonicalize().map_err(io)?))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A random name for a staged cache entry beside `to`.
fn unique_name(to: &Path) -> Result<String, RenderError> {
    crate::git::random_hex(16)
        .map_err(|e| RenderError::Io { file: to.display().to_string(), message: e.to_string() })
}

/// Copies `src` (inside `root`) to `dst`, symlinks replaced by what they point to; a symlink out of
/// `root` is refused. `copied` counts bytes against [`MAX_CHART_BYTES`].
fn copy_tree(root: &Path, src: &Path, dst: &Path, copied: &mut u64) -> Result<(), RenderError> {
    let io = |file: &Path, e: std::io::Error| RenderError::Io {
        file: relative(root, file),
        message: e.to_string(),
    };
    std::fs::create_dir_all(dst).map_err(|e| io(src, e))?;
    walk(root, src, &mut |path, real, rel, is_dir| {
        let target = dst.join(rel);
        if is_dir {
            return std::fs::create_dir_all(&target).map_err(|e| io(path, e));
        }
        let size = std::fs::metadata(real).map_err(|e| io(path, e))?.len();
        *copied += size;
        if *copied > MAX_CHART_BYTES {
            return Err(RenderError::TooLarge {
                file: relative(root, path),
                size: *copied,
                limit: MAX_CHART_BYTES,
            });
        }
        std::fs::copy(real, &target).map(|_| ()).map_err(|e| io(path, e))
    })
}

/// Feeds every file under `dir` accepted by `include` (paths relative to `dir`) into `hasher`.
fn hash_tree(
    root: &Path,
    dir: &Path,
    hasher: &mut Sha256,
    include: impl Fn(&Path) -> bool,
) -> Result<(), RenderError> {
    let mut hashed = 0u64;
    walk(root, dir, &mut |path, real, rel, is_dir| {
        if is_dir || !include(rel) {
            return Ok(());
        }
        let bytes = std::fs::read(real)
            .map_err(|e| RenderError::Io { file: relative(root, path), message: e.to_string() })?;
        hashed += bytes.len() as u64;
        if hashed > MAX_CHART_BYTES {
            return Err(RenderError::TooLarge {
                file: relative(root, path),
                size: hashed,
                limit: MAX_CHART_BYTES,
            });
        }
        hasher.update(rel.to_string_lossy().as_bytes());
        hasher.update(b"\0");
        hasher.update(Sha256::digest(&bytes));
        Ok(())
    })
}

type Visitor<'a> = dyn FnMut(&Path, &Path, &Path, bool) -> Result<(), RenderError> + 'a;

/// Visits everything under `top` in name order (`.git` skipped) as (path, real path, path relative to
/// `top`, is a folder), following symlinks that stay inside `root`.
fn walk(root: &Path, top: &Path, visit: &mut Visitor) -> Result<(), RenderError> {
    fn inner(
        root: &Path,
        top: &Path,
        dir: &Path,
        open: &mut Vec<PathBuf>,
        visit: &mut Visitor,
    ) -> Result<(), RenderError> {
        let io = |file: &Path, e: std::io::Error| RenderError::Io {
            file: relative(root, file),
            message: e.to_string(),
        };
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| io(dir, e))?
            .map(|entry| entry.map(|e| e.path()))
            .collect::<Result<_, _>>()
            .map_err(|e| io(dir, e))?;
        entries.sort();
        for path in entries {
            if path.file_name().is_some_and(|n| n == ".git") {
                continue;
            }
            let real = path.canonicalize().map_err(|e| io(&path, e))?;
            if !real.starts_with(root) {
                return Err(RenderError::OutsideRepository { path: relative(root, &path) });
            }
            let rel = path.strip_prefix(top).unwrap_or(&path).to_path_buf();
            if real.is_dir() {
                if open.contains(&real) {
                    return Err(RenderError::InvalidFile {
                        file: relative(root, &path),
                        message: "symlink loop".into(),
                    });
                }
                visit(&path, &real, &rel, true)?;
                open.push(real);
                inner(root, top, &path, open, visit)?;
                open.pop();
            } else {
                visit(&path, &real, &rel, false)?;
            }
        }
        Ok(())
    }
    let start = top
        .canonicalize()
        .map_err(|e| RenderError::Io { file: relative(root, top), message: e.to_string() })?;
    inner(root, top, top, &mut vec![start], visit)
}

fn read_limited(path: &Path, shown: &str) -> Result<String, RenderError> {
    let io = |e: std::io::Error| RenderError::Io { file: shown.into(), message: e.to_string() };
    let size = std::fs::metadata(path).map_err(io)?.len();
    if size > MAX_FILE_BYTES {
        return Err(RenderError::TooLarge { file: shown.into(), size, limit: MAX_FILE_BYTES });
    }
    std::fs::read_to_string(path).map_err(io)
}

fn canonical(path: &Path, shown: &str) -> Result<PathBuf, RenderError> {
    path.canonicalize().map_err(|e| RenderError::Io { file: shown.into(), message: e.to_string() })
}

/// `path` relative to `root` as text (empty for the root itself).
fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root).unwrap_or(path).to_string_lossy().to_string()
}

fn join_file(dir: &str, file: &str) -> String {
    if dir.is_empty() || dir == "." { file.into() } else { format!("{}/{file}", dir.trim_end_matches('/')) }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Removes the password from whatever a failed helm run printed.
fn scrub_secrets(err: RenderError, creds: &HelmCredentials) -> RenderError {
    let Some(password) = creds.password.as_deref().filter(|p| !p.is_empty()) else { return err };
    let scrub = |text: String| text.replace(password, "<redacted>");
    match err {
        RenderError::Tool { tool, path, message } => {
            RenderError::Tool { tool, path: scrub(path), message: scrub(message) }
        }
        RenderError::InvalidFile { file, message } => {
            RenderError::InvalidFile { file: scrub(file), message: scrub(message) }
        }
        RenderError::Io { file, message } => RenderError::Io { file: scrub(file), message: scrub(message) },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_debug_hides_the_password() {
        let creds = HelmCredentials {
            username: Some("berth".into()),
            password: Some("hunter2".into()),
            ..Default::default()
        };
        let shown = format!("{creds:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("berth") && shown.contains("<redacted>"), "{shown}");
    }

    #[test]
    fn set_values_escape_commas_except_in_lists() {
        assert_eq!(escape_set_value("a,b"), r"a\,b");
        assert_eq!(escape_set_value(r"a\,b"), r"a\,b");
        assert_eq!(escape_set_value("{a,b}"), "{a,b}");
        assert_eq!(escape_set_value("plain"), "plain");
    }

    #[test]
    fn output_documents_are_split_and_named_by_their_source() {
        let out = "---\n# Source: web/templates/a.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n\
                   ---\n# Source: web/templates/a.yaml\napiVersion: v1\nkind: Secret\nmetadata:\n  name: b\n\
                   ---\n# Source: web/templates/empty.yaml\n";
        let m = parse_output(out.as_bytes(), Some("charts/web")).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].file, "charts/web/templates/a.yaml");
        assert_eq!(m[1].object["kind"], "Secret");
        let m = parse_output(out.as_bytes(), None).unwrap();
        assert_eq!(m[0].file, "web/templates/a.yaml");
        let m = parse_output(out.as_bytes(), Some("")).unwrap();
        assert_eq!(m[0].file, "templates/a.yaml");
    }

    #[test]
    fn an_alias_bomb_in_the_output_is_refused() {
        let mut bomb = String::from(
            "---\n# Source: web/templates/bomb.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bomb\nx0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n",
        );
        for i in 1..10 {
            let refs = vec![format!("*a{}", i - 1); 10].join(", ");
            bomb.push_str(&format!("x{i}: &a{i} [{refs}]\n"));
        }
        let err = parse_output(bomb.as_bytes(), Some("web")).unwrap_err();
        assert!(
            matches!(&err, RenderError::InvalidFile { file, .. } if file == "web/templates/bomb.yaml"),
            "{err:?}"
        );
    }

    #[test]
    fn nesting_too_deep_in_the_output_is_refused_naming_the_template() {
        let deep = format!(
            "---\n# Source: web/templates/deep.yaml\napiVersion: v1\nkind: ConfigMap\ndata: {}\n",
            crate::render::yaml::tests::nested(5_000, true)
        );
        let err = parse_output(deep.as_bytes(), Some("charts/web")).unwrap_err();
        assert!(
            matches!(&err, RenderError::InvalidFile { file, .. } if file == "charts/web/templates/deep.yaml"),
            "{err:?}"
        );
    }

    #[test]
    fn exact_versions_are_cached_and_ranges_are_not() {
        for v in ["1.2.3", "v1.2.3", "1.2.3-rc.1+build.5"] {
            assert!(is_exact_version(v), "{v}");
        }
        for v in ["", "1.x", "^1.2", "~1.2.0", ">=1.0 <2.0", "*", "1.2.*"] {
            assert!(!is_exact_version(v), "{v}");
        }
    }
}
