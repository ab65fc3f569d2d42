//! The git generator, over a listing of the repository at the generator's revision that the caller
//! made (the folders, and the files with their contents): no git here.
//!
//! **Directories** (`directories` set): every folder matched by an item's `path` (Go's `path.Match`:
//! `*` stays within one segment) and by no `exclude: true` item (an exclude always wins, whatever the
//! order); folders whose name starts with `.` are never candidates. Parameters: `path`,
//! `path.basename`, `path.basenameNormalized`, `path[n]` for each non-empty segment.
//!
//! **Files** (`files` set, when `directories` is not): every file matched by an include pattern and by
//! no exclude pattern, in path order; see [`FileGlobbing`] for the two pattern dialects. Each file holds
//! one object or a list of objects, each a parameter set: its fields flattened (`cluster.name`), then
//! `path` (the file's folder, `.` at the root), `path.basename`, `path.basenameNormalized`,
//! `path.filename`, `path.filenameNormalized`, `path[n]`.
//!
//! `pathParamPrefix: p` renames the path parameters `p.path…`; `values` are added as `values.<key>`.
//! With goTemplate the path parameters are one object `path` with `path`, `basename`, `segments` …
//!
//! ```
//! use berth_api::applicationset::GitGenerator;
//! use berth_appset::generators::git;
//! use berth_appset::params::TemplateMode;
//! let generator: GitGenerator = serde_json::from_value(serde_json::json!({
//!     "repoURL": "https://example.com/repo.git",
//!     "directories": [{ "path": "apps/*/overlays/*" }, { "path": "apps/*/overlays/dev", "exclude": true }]
//! })).unwrap();
//! let folders = ["apps/web/overlays/prod", "apps/web/overlays/dev", "apps/web/base"].map(String::from);
//! let matched = git::matching_directories(&generator, &folders).unwrap();
//! assert_eq!(matched, ["apps/web/overlays/prod"]);
//! let sets = git::directory_params(&generator, &matched, TemplateMode::Fast).unwrap();
//! assert_eq!(sets[0].get("path[1]"), Some("web"));
//! assert_eq!(sets[0].get("path.basename"), Some("prod"));
//! ```

use berth_api::applicationset::{GitGenerator, GitPathItem};
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;

use super::check_count;
use crate::Error;
use crate::params::{self, ParamSet, TemplateMode, sanitize_name};
use crate::pattern::{Dialect, Pattern};

const GENERATOR: &str = "git";

/// How the files generator's `path` patterns match, as `argocd-cmd-params-cm`'s
/// `applicationset.enable.new.git.file.globbing` chooses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FileGlobbing {
    /// Argo CD's default, git's pathspec: `*` crosses folders, so `some-path/*.yaml` finds YAML files at
    /// any depth under `some-path`.
    #[default]
    Greedy,
    /// The opt-in globbing: `*` within one folder, `**` across folders, `{a,b}` alternatives.
    DoubleStar,
}

/// One file of the repository: its path from the root and its content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepoFile {
    pub path: String,
    pub content: Vec<u8>,
}

/// What the caller read from the repository at the generator's revision.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RepoListing {
    /// Every folder, from the root, without a leading or trailing `/`.
    pub directories: Vec<String>,
    /// The files the generator may read; only those [`matching_files`] names are needed.
    pub files: Vec<RepoFile>,
}

/// The parameter sets of `git` over `repo`: its directories when it has `directories`, else its files.
pub fn generate(
    git: &GitGenerator,
    repo: &RepoListing,
    globbing: FileGlobbing,
    mode: TemplateMode,
) -> Result<Vec<ParamSet>, Error> {
    if !git.directories.is_empty() {
        check_roots(&git.directories, "directories", false, repo)?;
        let matched = matching_directories(git, &repo.directories)?;
        return directory_params(git, &matched, mode);
    }
    if git.files.is_empty() {
        return Err(Error::invalid(
            GENERATOR,
            "directories",
            "a git generator needs `directories` or `files`",
        ));
    }
    check_roots(&git.files, "files", true, repo)?;
    let paths: Vec<String> = repo.files.iter().map(|file| file.path.clone()).collect();
    let matched: BTreeSet<String> = matching_files(git, &paths, globbing)?.into_iter().collect();
    let files: Vec<RepoFile> =
        repo.files.iter().filter(|file| matched.contains(&file.path)).cloned().collect();
    file_params(git, &files, mode)
}

/// The folders of `directories` that `git.directories` selects, sorted.
pub fn matching_directories(git: &GitGenerator, directories: &[String]) -> Result<Vec<String>, Error> {
    let (include, exclude) = compile(&git.directories, "directories", Dialect::GoPath)?;
    let mut matched: Vec<String> = directories
        .iter()
        .filter(|dir| !dir.split('/').any(|segment| segment.starts_with('.')))
        .filter(|dir| include.iter().any(|p| p.matches(dir)) && !exclude.iter().any(|p| p.matches(dir)))
        .cloned()
        .collect();
    matched.sort();
    matched.dedup();
    check_count(GENERATOR, matched.len())?;
    Ok(matched)
}

/// The files of `files` that `git.files` selects, sorted: those an include pattern matches and no
/// exclude pattern does.
pub fn matching_files(
    git: &GitGenerator,
    files: &[String],
    globbing: FileGlobbing,
) -> Result<Vec<String>, Error> {
    let dialect = match globbing {
        FileGlobbing::Greedy => Dialect::GitPathspec,
        FileGlobbing::DoubleStar => Dialect::DoubleStar,
    };
    let (include, exclude) = compile(&git.files, "files", dialect)?;
    let mut matched: Vec<String> = files
        .iter()
        .filter(|file| include.iter().any(|p| p.matches(file)) && !exclude.iter().any(|p| p.matches(file)))
        .cloned()
        .collect();
    matched.sort();
    matched.dedup();
    Ok(matched)
}

/// Refuses an include pattern whose fixed part names a folder the repository does not have: a typo or a
/// moved folder is an error on the set, not zero parameter sets that would delete every Application. The
/// fixed part is the pattern's segments before the first one with a wildcard (for a file pattern, without
/// the file name); a pattern whose wildcards have nothing left to match is fine (its folder exists).
fn check_roots(items: &[GitPathItem], field: &str, files: bool, repo: &RepoListing) -> Result<(), Error> {
    let inside = |path: &str, folder: &str| {
        path == folder || path.strip_prefix(folder).is_some_and(|rest| rest.starts_with('/'))
    };
    let exists = |folder: &str| {
        repo.directories.iter().any(|d| inside(d, folder))
            || repo.files.iter().any(|f| inside(&f.path, folder))
    };
    for (index, item) in items.iter().enumerate().filter(|(_, item)| item.exclude != Some(true)) {
        let segments: Vec<&str> = item.path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
        let literal = segments.iter().take_while(|s| !s.contains(['*', '?', '[', '{', '\\'])).count();
        let folder_len = if files && literal == segments.len() { literal.saturating_sub(1) } else { literal };
        let folder = segments[..folder_len].join("/");
        if folder.is_empty() || folder == "." || exists(&folder) {
            continue;
        }
        return Err(Error::invalid(
            GENERATOR,
            format!("{field}[{index}].path"),
            format!("{:?}: the repository has no folder {folder:?} at this revision", item.path),
        ));
    }
    Ok(())
}

fn compile(
    items: &[GitPathItem],
    field: &str,
    dialect: Dialect,
) -> Result<(Vec<Pattern>, Vec<Pattern>), Error> {
    let mut include = Vec::new();
    let mut exclude = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let pattern = Pattern::new(&item.path, dialect).map_err(|message| {
            Error::invalid(
                GENERATOR,
                format!("{field}[{index}].path"),
                format!("pattern {:?}: {message}", item.path),
            )
        })?;
        if item.exclude == Some(true) { exclude.push(pattern) } else { include.push(pattern) }
    }
    Ok((include, exclude))
}

/// One parameter set per folder of `directories` (as [`matching_directories`] returns them).
pub fn directory_params(
    git: &GitGenerator,
    directories: &[String],
    mode: TemplateMode,
) -> Result<Vec<ParamSet>, Error> {
    check_count(GENERATOR, directories.len())?;
    directories
        .iter()
        .map(|dir| {
            let mut set = ParamSet::empty(mode);
            add_path_params(&mut set, git.path_param_prefix.as_deref(), dir, None);
            params::append_values(&mut set, &git.values, GENERATOR)?;
            Ok(set)
        })
        .collect()
}

/// The parameter sets of the files (as [`matching_files`] names them, with their contents), in path
/// order: one per object each file holds.
pub fn file_params(
    git: &GitGenerator,
    files: &[RepoFile],
    mode: TemplateMode,
) -> Result<Vec<ParamSet>, Error> {
    let mut files: Vec<&RepoFile> = files.iter().collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let mut sets = Vec::new();
    for file in files {
        let field = || format!("files: {}", file.path);
        let text = std::str::from_utf8(&file.content)
            .map_err(|_| Error::invalid(GENERATOR, field(), "not UTF-8 text"))?;
        let documents =
            params::documents(text).map_err(|message| Error::invalid(GENERATOR, field(), message))?;
        check_count(GENERATOR, sets.len() + documents.len())?;
        for document in documents {
            let mut set = params::from_document(document, mode);
            add_path_params(
                &mut set,
                git.path_param_prefix.as_deref(),
                &go_dir(&file.path),
                Some(go_base(&file.path)),
            );
            params::append_values(&mut set, &git.values, GENERATOR)?;
            sets.push(set);
        }
    }
    Ok(sets)
}

/// The `path…` parameters of folder `dir` (and of the file named `filename` in it).
fn add_path_params(set: &mut ParamSet, prefix: Option<&str>, dir: &str, filename: Option<&str>) {
    let prefix = prefix.filter(|p| !p.is_empty());
    let basename = go_base(dir);
    match set {
        ParamSet::Flat(flat) => {
            let name = prefix.map_or_else(|| "path".to_string(), |p| format!("{p}.path"));
            flat.insert(name.clone(), dir.to_string());
            flat.insert(format!("{name}.basename"), basename.to_string());
            flat.insert(format!("{name}.basenameNormalized"), sanitize_name(basename));
            if let Some(filename) = filename {
                flat.insert(format!("{name}.filename"), filename.to_string());
                flat.insert(format!("{name}.filenameNormalized"), sanitize_name(filename));
            }
            for (index, segment) in dir.split('/').enumerate().filter(|(_, s)| !s.is_empty()) {
                flat.insert(format!("{name}[{index}]"), segment.to_string());
            }
        }
        ParamSet::Nested(nested) => {
            let mut path = Map::new();
            path.insert("path".into(), json!(dir));
            path.insert("basename".into(), json!(basename));
            path.insert("basenameNormalized".into(), json!(sanitize_name(basename)));
            if let Some(filename) = filename {
                path.insert("filename".into(), json!(filename));
                path.insert("filenameNormalized".into(), json!(sanitize_name(filename)));
            }
            path.insert("segments".into(), json!(dir.split('/').collect::<Vec<_>>()));
            match prefix {
                Some(prefix) => nested.insert(prefix.to_string(), json!({ "path": Value::Object(path) })),
                None => nested.insert("path".to_string(), Value::Object(path)),
            };
        }
    }
}

/// Go's `path.Base` of a clean path: the last element, `.` for the empty path.
fn go_base(path: &str) -> &str {
    let trimmed = path.trim_end_matches('/');
    match trimmed {
        "" if path.is_empty() => ".",
        "" => "/",
        trimmed => trimmed.rsplit('/').next().unwrap_or(trimmed),
    }
}

/// Go's `path.Dir` of a clean file path: everything before the last `/`, `.` when there is none.
fn go_dir(path: &str) -> String {
    match path.rfind('/') {
        None => ".".to_string(),
        Some(0) => "/".to_string(),
        Some(at) => path[..at].to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MAX_PARAM_SETS;
    use std::collections::BTreeMap;

    fn generator(mut value: Value) -> GitGenerator {
        value["repoURL"] = json!("https://github.com/argoproj/argo-cd.git");
        serde_json::from_value(value).expect("a git generator")
    }

    fn dirs(paths: &[&str]) -> Vec<String> {
        paths.iter().map(|p| p.to_string()).collect()
    }

    fn flat(set: &ParamSet) -> BTreeMap<String, String> {
        match set {
            ParamSet::Flat(flat) => flat.clone(),
            ParamSet::Nested(_) => panic!("a flat set"),
        }
    }

    fn file(path: &str, content: &str) -> RepoFile {
        RepoFile { path: path.to_string(), content: content.as_bytes().to_vec() }
    }

    /// Argo CD's "Generators Git" page: cluster-addons/* gives argo-workflows and prometheus-operator.
    #[test]
    fn a_directory_wildcard_gives_one_set_per_matching_folder() {
        let root = "applicationset/examples/git-generator-directory/cluster-addons";
        let git = generator(json!({ "directories": [{ "path": format!("{root}/*") }] }));
        let listing = dirs(&[
            "applicationset",
            root,
            &format!("{root}/argo-workflows"),
            &format!("{root}/prometheus-operator"),
            &format!("{root}/prometheus-operator/templates"),
        ]);
        let sets = directory_params(&git, &matching_directories(&git, &listing).unwrap(), TemplateMode::Fast)
            .unwrap();
        assert_eq!(sets.len(), 2);
        let first = flat(&sets[0]);
        assert_eq!(first["path"], format!("{root}/argo-workflows"));
        assert_eq!(first["path.basename"], "argo-workflows");
        assert_eq!(first["path.basenameNormalized"], "argo-workflows");
        assert_eq!(first["path[0]"], "applicationset");
        assert_eq!(first["path[4]"], "argo-workflows");
        assert_eq!(flat(&sets[1])["path.basename"], "prometheus-operator");
    }

    /// Argo CD's "Generators Git" page: an exclude wins over an include whatever their order.
    #[test]
    fn an_excluded_directory_stays_out_even_when_an_include_names_it() {
        let listing = dirs(&["d", "d/e", "d/f", "d/g"]);
        let wrong =
            generator(json!({ "directories": [{ "path": "d/e" }, { "path": "d/*", "exclude": true }] }));
        assert!(matching_directories(&wrong, &listing).unwrap().is_empty());
        let right = generator(json!({ "directories": [
            { "path": "d/*" }, { "path": "d/f", "exclude": true }, { "path": "d/g", "exclude": true }
        ] }));
        assert_eq!(matching_directories(&right, &listing).unwrap(), ["d/e"]);
        let class =
            generator(json!({ "directories": [{ "path": "d/*" }, { "path": "d/[f|g]", "exclude": true }] }));
        assert_eq!(matching_directories(&class, &listing).unwrap(), ["d/e"]);
    }

    /// Argo CD's "Generators Git" page: `'*'` deploys the repository's top folders, hidden ones never.
    #[test]
    fn the_root_wildcard_takes_top_folders_and_skips_hidden_ones() {
        let git = generator(
            json!({ "directories": [{ "path": "*" }, { "path": "donotdeploy", "exclude": true }] }),
        );
        let listing = dirs(&[".git", ".github", "web", "api", "api/base", "donotdeploy", "web/.cache"]);
        assert_eq!(matching_directories(&git, &listing).unwrap(), ["api", "web"]);
    }

    #[test]
    fn basename_normalized_replaces_what_a_name_may_not_hold() {
        let git = generator(json!({ "directories": [{ "path": "*" }] }));
        let sets = directory_params(&git, &dirs(&["directory_2"]), TemplateMode::Fast).unwrap();
        assert_eq!(sets[0].get("path.basenameNormalized"), Some("directory-2"));
    }

    #[test]
    fn a_malformed_pattern_names_the_item() {
        let git = generator(json!({ "directories": [{ "path": "apps/*" }, { "path": "apps/[" }] }));
        let err = matching_directories(&git, &dirs(&["apps/web"])).unwrap_err();
        assert!(err.to_string().starts_with("git generator: directories[1].path:"), "{err}");
    }

    #[test]
    fn a_git_generator_needs_directories_or_files() {
        let err = generate(
            &generator(json!({})),
            &RepoListing::default(),
            FileGlobbing::Greedy,
            TemplateMode::Fast,
        );
        assert!(matches!(err, Err(Error::InvalidGenerator { generator: "git", .. })), "{err:?}");
    }

    /// Argo CD's "Generators Git" page: the cluster-config/**/config.json files and their parameters.
    #[test]
    fn each_config_file_gives_its_flattened_fields_and_path_parameters() {
        let dev = r#"{ "aws_account": "123456", "asset_id": "11223344",
            "cluster": { "owner": "cluster-admin@company.com", "name": "engineering-dev", "address": "https://1.2.3.4" } }"#;
        let prod = "cluster:\n  name: engineering-prod\n  address: https://5.6.7.8\n";
        let root = "applicationset/examples/git-generator-files-discovery";
        let repo = RepoListing {
            directories: vec![],
            files: vec![
                file(&format!("{root}/cluster-config/engineering/prod/config.json"), prod),
                file(&format!("{root}/cluster-config/engineering/dev/config.json"), dev),
                file(&format!("{root}/apps/guestbook/kustomization.yaml"), "resources: []\n"),
            ],
        };
        let git =
            generator(json!({ "files": [{ "path": format!("{root}/cluster-config/**/config.json") }] }));
        let sets = generate(&git, &repo, FileGlobbing::Greedy, TemplateMode::Fast).unwrap();
        assert_eq!(sets.len(), 2);
        let dev = flat(&sets[0]);
        assert_eq!(dev["cluster.name"], "engineering-dev");
        assert_eq!(dev["cluster.address"], "https://1.2.3.4");
        assert_eq!(dev["aws_account"], "123456");
        assert_eq!(dev["path"], format!("{root}/cluster-config/engineering/dev"));
        assert_eq!(dev["path.basename"], "dev");
        assert_eq!(dev["path.filename"], "config.json");
        assert_eq!(dev["path.filenameNormalized"], "config.json");
        assert_eq!(dev["path[5]"], "dev");
        assert_eq!(flat(&sets[1])["cluster.name"], "engineering-prod");
    }

    /// Argo CD's "Git File Generator Globbing" page: the default globbing also finds a subchart's
    /// values.yaml; the new one does not.
    #[test]
    fn greedy_globbing_reaches_deeper_than_doublestar() {
        let git = generator(json!({ "files": [{ "path": "cluster-charts/*/*/values.yaml" }] }));
        let files = dirs(&[
            "cluster-charts/cluster1/mychart/values.yaml",
            "cluster-charts/cluster1/mychart/charts/mysubchart/values.yaml",
            "cluster-charts/cluster1/myotherchart/values.yaml",
        ]);
        assert_eq!(matching_files(&git, &files, FileGlobbing::Greedy).unwrap().len(), 3);
        assert_eq!(
            matching_files(&git, &files, FileGlobbing::DoubleStar).unwrap(),
            [
                "cluster-charts/cluster1/mychart/values.yaml",
                "cluster-charts/cluster1/myotherchart/values.yaml"
            ]
        );
    }

    #[test]
    fn excluded_files_are_removed_from_the_included_ones() {
        let git = generator(json!({ "files": [
            { "path": "clusters/**/config.json" }, { "path": "clusters/legacy/**", "exclude": true }
        ] }));
        let files = dirs(&["clusters/a/config.json", "clusters/legacy/b/config.json"]);
        assert_eq!(
            matching_files(&git, &files, FileGlobbing::DoubleStar).unwrap(),
            ["clusters/a/config.json"]
        );
    }

    #[test]
    fn a_file_with_a_list_gives_one_set_per_item_and_a_root_file_has_path_dot() {
        let git = generator(
            json!({ "files": [{ "path": "*.yaml" }], "values": { "name": "{{cluster}}-{{path.basename}}" } }),
        );
        let repo = RepoListing {
            directories: vec![],
            files: vec![file("clusters.yaml", "- cluster: a\n- cluster: b\n")],
        };
        let sets = generate(&git, &repo, FileGlobbing::Greedy, TemplateMode::Fast).unwrap();
        assert_eq!(sets.len(), 2);
        assert_eq!(flat(&sets[0])["path"], ".");
        assert_eq!(flat(&sets[0])["path.basename"], ".");
        assert_eq!(flat(&sets[0])["path[0]"], ".");
        assert_eq!(flat(&sets[1])["values.name"], "b-.");
    }

    #[test]
    fn a_path_param_prefix_renames_the_path_parameters() {
        let git = generator(json!({ "directories": [{ "path": "*" }], "pathParamPrefix": "app" }));
        let sets = directory_params(&git, &dirs(&["web"]), TemplateMode::Fast).unwrap();
        let set = flat(&sets[0]);
        assert_eq!(set["app.path"], "web");
        assert_eq!(set["app.path.basename"], "web");
        assert_eq!(set["app.path[0]"], "web");
        assert!(!set.contains_key("path"));
    }

    #[test]
    fn go_template_path_parameters_are_one_object() {
        let git = generator(json!({ "files": [{ "path": "**" }] }));
        let repo =
            RepoListing { directories: vec![], files: vec![file("envs/prod/config.yaml", "env: prod\n")] };
        let sets = generate(&git, &repo, FileGlobbing::Greedy, TemplateMode::Go).unwrap();
        assert_eq!(
            sets[0].to_value(),
            json!({ "env": "prod", "path": { "path": "envs/prod", "basename": "prod", "basenameNormalized": "prod",
                "filename": "config.yaml", "filenameNormalized": "config.yaml", "segments": ["envs", "prod"] } })
        );
    }

    #[test]
    fn unreadable_files_name_the_file() {
        let git = generator(json!({ "files": [{ "path": "*.json" }] }));
        for content in [&b"\xff\xfe"[..], b"[1, 2]", b"{ unclosed"] {
            let repo = RepoListing {
                directories: vec![],
                files: vec![RepoFile { path: "a.json".into(), content: content.to_vec() }],
            };
            let err = generate(&git, &repo, FileGlobbing::Greedy, TemplateMode::Fast).unwrap_err();
            assert!(err.to_string().starts_with("git generator: files: a.json:"), "{err}");
        }
    }

    /// Argo CD's "Generators Git" page: the cluster-addons set, one Application per folder, named and
    /// placed by `{{path.basename}}` and deployed from `{{path}}`.
    #[test]
    fn the_cluster_addons_example_renders_one_application_per_folder() {
        let git = generator(json!({ "directories": [{ "path": "cluster-addons/*" }] }));
        let template: berth_api::applicationset::ApplicationSetTemplate = serde_json::from_value(json!({
            "metadata": { "name": "{{path.basename}}" },
            "spec": { "project": "my-project",
                      "source": { "repoURL": "https://github.com/argoproj/argo-cd.git", "targetRevision": "HEAD",
                                  "path": "{{path}}" },
                      "destination": { "server": "https://kubernetes.default.svc", "namespace": "{{path.basename}}" } }
        }))
        .unwrap();
        let repo = RepoListing {
            directories: dirs(&[
                "cluster-addons",
                "cluster-addons/argo-workflows",
                "cluster-addons/prometheus-operator",
            ]),
            files: vec![],
        };
        let apps: Vec<_> = generate(&git, &repo, FileGlobbing::Greedy, TemplateMode::Fast)
            .unwrap()
            .iter()
            .map(|params| crate::template::application(&template, params, None).unwrap())
            .collect();
        let got: Vec<_> = apps
            .iter()
            .map(|app| {
                let path = app.spec.source.as_ref().and_then(|s| s.path.clone()).unwrap_or_default();
                (app.metadata.name.clone().unwrap(), path, app.spec.destination.namespace.clone().unwrap())
            })
            .collect();
        let row = |name: &str| (name.to_string(), format!("cluster-addons/{name}"), name.to_string());
        assert_eq!(got, [row("argo-workflows"), row("prometheus-operator")]);
    }

    #[test]
    fn a_deeply_nested_file_is_an_error_not_a_crash() {
        let git = generator(json!({ "files": [{ "path": "deep.yaml" }] }));
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let repo = RepoListing { directories: vec![], files: vec![file("deep.yaml", &deep)] };
        let err = generate(&git, &repo, FileGlobbing::Greedy, TemplateMode::Fast).unwrap_err();
        assert!(err.to_string().starts_with("git generator: files: deep.yaml:"), "{err}");
    }

    #[test]
    fn more_matching_folders_than_the_cap_is_a_clear_error() {
        let git = generator(json!({ "directories": [{ "path": "apps/*" }] }));
        let listing: Vec<String> = (0..=MAX_PARAM_SETS).map(|i| format!("apps/a{i}")).collect();
        let err = matching_directories(&git, &listing).unwrap_err();
        assert_eq!(err, Error::TooManyParamSets { generator: "git", max: MAX_PARAM_SETS });
    }
}
