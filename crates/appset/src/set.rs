//! A whole ApplicationSet generated: each generator's parameter sets (its `selector` applied), each set
//! stamped into the template (the generator's own `template` merged over the set's, then the
//! `templatePatch`), and the Applications checked as a whole: no two with one name, none invalid, at most
//! [`MAX_PARAM_SETS`]. Any error fails the whole set, so the caller never acts on half an answer.
//!
//! The caller supplies what needs I/O through [`Inputs`]: the cluster Secrets and a repository's listing
//! at a revision. Generators that reach a service (`pullRequest`, `scmProvider`,
//! `clusterDecisionResource`, `plugin`) go to [`Inputs::service`].
//!
//! ```
//! use berth_api::ApplicationSet;
//! use berth_appset::set::{self, NoInputs};
//! let set: ApplicationSet = serde_json::from_value(serde_json::json!({
//!     "metadata": { "name": "web-multi-env", "namespace": "argocd" },
//!     "spec": {
//!         "generators": [{ "list": { "elements": [{ "env": "prod" }, { "env": "staging" }] } }],
//!         "template": {
//!             "metadata": { "name": "web-{{env}}" },
//!             "spec": { "project": "default", "destination": { "name": "{{env}}", "namespace": "web" },
//!                       "source": { "repoURL": "https://git.example/deploy.git", "path": "apps/web/overlays/{{env}}" } }
//!         }
//!     }
//! })).unwrap();
//! let apps = set::generate(&set, &NoInputs).unwrap();
//! let names: Vec<_> = apps.iter().map(|a| a.metadata.name.as_deref().unwrap()).collect();
//! assert_eq!(names, ["web-prod", "web-staging"]);
//! ```

use berth_api::applicationset::{
    ApplicationSetGenerator, ApplicationSetTemplate, GitGenerator, LeafGenerators, NestedGenerator,
};
use berth_api::{Application, ApplicationSet};
use serde_json::Value;
use std::collections::BTreeSet;

use crate::generators::clusters::Cluster;
use crate::generators::git::{FileGlobbing, RepoListing};
use crate::generators::{clusters, git, list, matrix, merge, selector};
use crate::params::{ParamSet, TemplateMode};
use crate::template::{self, go, patch};
use crate::{Error, MAX_PARAM_SETS};

/// What a set's generators read from outside: supplied by the caller (the controller reads the cluster
/// Secrets and the repositories; tests hand in fixed values).
pub trait Inputs {
    /// The cluster Secrets, in the order the API server lists them.
    fn clusters(&self) -> Result<Vec<Cluster>, Error>;
    /// Whether the local in-cluster is a destination (argocd-cm `cluster.inClusterEnabled`).
    fn in_cluster_enabled(&self) -> bool {
        true
    }
    /// The folders of the generator's `repoURL` at its `revision` (empty: the default branch), and the
    /// files its `files` patterns can match, with their contents ([`git::matching_files`] tells which).
    fn repository(&self, generator: &GitGenerator) -> Result<RepoListing, Error>;
    /// How the git files generator's patterns match.
    fn file_globbing(&self) -> FileGlobbing {
        FileGlobbing::default()
    }
    /// The parameter sets of a generator that asks a service: `kind` is `pullRequest`, `scmProvider`,
    /// `clusterDecisionResource` or `plugin`, `spec` its fields as written.
    fn service(&self, kind: &'static str, spec: &Value, mode: TemplateMode) -> Result<Vec<ParamSet>, Error> {
        let _ = (spec, mode);
        Err(Error::invalid(kind, kind, "this generator is not supported yet"))
    }
}

/// Inputs with no cluster Secret and no repository: enough for list generators (and documentation).
pub struct NoInputs;

impl Inputs for NoInputs {
    fn clusters(&self) -> Result<Vec<Cluster>, Error> {
        Ok(Vec::new())
    }
    fn repository(&self, generator: &GitGenerator) -> Result<RepoListing, Error> {
        Err(Error::invalid(
            "git",
            "repoURL",
            format!("no repository can be read here ({})", generator.repo_url),
        ))
    }
}

/// The Applications `set` generates, in generator order, each as [`template::application_with_options`]
/// makes it (with the default finalizer unless resources are preserved). Nothing here sets the owner or
/// the namespace: that is the caller's plan.
pub fn generate(set: &ApplicationSet, inputs: &dyn Inputs) -> Result<Vec<Application>, Error> {
    let spec = &set.spec;
    let mode = TemplateMode::of(spec);
    let options = go::Options::parse(&spec.go_template_options)?;
    if spec.template_patch.is_some() && mode == TemplateMode::Fast {
        return Err(Error::Template {
            field: "templatePatch".to_string(),
            message: "templatePatch needs goTemplate: true".to_string(),
        });
    }
    if spec.generators.is_empty() {
        return Err(Error::invalid(
            "ApplicationSet",
            "spec.generators",
            "a set needs at least one generator",
        ));
    }
    let mut apps = Vec::new();
    for (index, generator) in spec.generators.iter().enumerate() {
        let sets = top_level(generator, mode, inputs).map_err(|e| in_generator(e, index))?;
        let template = match own_template(generator).map_err(|e| in_generator(e, index))? {
            Some(own) => merge_template(&spec.template, &own)?,
            None => spec.template.clone(),
        };
        for params in &sets {
            apps.push(stamp(&template, params, set, &options)?);
            if apps.len() > MAX_PARAM_SETS {
                return Err(Error::TooManyParamSets { generator: "ApplicationSet", max: MAX_PARAM_SETS });
            }
        }
    }
    check_names(set, &apps)?;
    Ok(apps)
}

/// One parameter set stamped into `template`, then patched.
fn stamp(
    template: &ApplicationSetTemplate,
    params: &ParamSet,
    set: &ApplicationSet,
    options: &go::Options,
) -> Result<Application, Error> {
    let app = template::application_with_options(template, params, set.spec.sync_policy.as_ref(), options)?;
    let Some(text) = set.spec.template_patch.as_deref() else { return Ok(app) };
    let name = app.metadata.name.clone().unwrap_or_default();
    let value = serde_json::to_value(&app)
        .map_err(|e| Error::InvalidApplication { name: name.clone(), message: e.to_string() })?;
    let patched = patch::apply(value, text, params, options)?;
    let patched_name = patched["metadata"]["name"].as_str().unwrap_or_default().to_string();
    let patched: Application = serde_json::from_value(patched).map_err(|e| Error::InvalidApplication {
        name: patched_name,
        message: format!("after templatePatch: {e}"),
    })?;
    Ok(generated_fields(patched))
}

/// Only what a template may say of an Application, as Argo CD copies it: the name, namespace, labels,
/// annotations, finalizers and spec. A patch that writes `operation` (a sync "initiated by" anyone),
/// `status`, owner references or any other field of the object changes nothing.
fn generated_fields(app: Application) -> Application {
    let mut kept = Application { spec: app.spec, ..Default::default() };
    let meta = app.metadata;
    kept.metadata.name = meta.name;
    kept.metadata.namespace = meta.namespace;
    kept.metadata.labels = meta.labels;
    kept.metadata.annotations = meta.annotations;
    kept.metadata.finalizers = meta.finalizers;
    kept
}

/// Prefixes a generator's error with its place in `spec.generators`.
fn in_generator(error: Error, index: usize) -> Error {
    match error {
        Error::InvalidGenerator { generator, field, message } => {
            Error::InvalidGenerator { generator, field: format!("spec.generators[{index}].{field}"), message }
        }
        other => other,
    }
}

/// The parameter sets of one entry of `spec.generators`.
fn top_level(
    generator: &ApplicationSetGenerator,
    mode: TemplateMode,
    inputs: &dyn Inputs,
) -> Result<Vec<ParamSet>, Error> {
    one_kind(
        &generator.leaf,
        generator.matrix.is_some(),
        generator.merge.is_some(),
        ("ApplicationSet", "generator"),
    )?;
    if let Some(m) = &generator.matrix {
        let sets = matrix::generate(m, |child| nested(child, mode, inputs, 1))?;
        return selector::apply(&generator.leaf, "matrix", sets);
    }
    if let Some(m) = &generator.merge {
        let sets = merge::generate(m, |child| nested(child, mode, inputs, 1))?;
        return selector::apply(&generator.leaf, "merge", sets);
    }
    leaf(&generator.leaf, mode, inputs)
}

/// The deepest matrix or merge nesting: Argo CD allows two levels.
const MAX_NESTING: usize = 2;

/// The parameter sets of a generator inside a matrix or merge, `depth` levels down.
fn nested(
    generator: &NestedGenerator,
    mode: TemplateMode,
    inputs: &dyn Inputs,
    depth: usize,
) -> Result<Vec<ParamSet>, Error> {
    one_kind(
        &generator.leaf,
        generator.matrix.is_some(),
        generator.merge.is_some(),
        ("matrix", "generators"),
    )?;
    if generator.matrix.is_some() || generator.merge.is_some() {
        if depth >= MAX_NESTING {
            return Err(Error::invalid(
                "matrix",
                "generators",
                "matrix and merge nest at most two levels deep",
            ));
        }
        let sets = if let Some(value) = &generator.matrix {
            matrix::generate(&matrix::from_nested(value)?, |child| nested(child, mode, inputs, depth + 1))?
        } else {
            let value = generator.merge.as_ref().expect("checked above");
            merge::generate(&merge::from_nested(value)?, |child| nested(child, mode, inputs, depth + 1))?
        };
        let kind = if generator.matrix.is_some() { "matrix" } else { "merge" };
        return selector::apply(&generator.leaf, kind, sets);
    }
    leaf(&generator.leaf, mode, inputs)
}

/// `Ok` when a generator (its leaf kinds, and whether it is a matrix or a merge) sets exactly one kind;
/// else the error names `at` (the generator and field reporting it).
fn one_kind(leaf: &LeafGenerators, matrix: bool, merge: bool, at: (&'static str, &str)) -> Result<(), Error> {
    let kinds = leaf_kinds(leaf).len() + usize::from(matrix) + usize::from(merge);
    if kinds == 1 {
        return Ok(());
    }
    Err(Error::invalid(
        at.0,
        at.1,
        format!("each generator sets exactly one kind (list, clusters, git, matrix, merge …); found {kinds}"),
    ))
}

/// The kinds of leaf generator `leaf` sets.
fn leaf_kinds(leaf: &LeafGenerators) -> Vec<&'static str> {
    [
        ("list", leaf.list.is_some()),
        ("clusters", leaf.clusters.is_some()),
        ("git", leaf.git.is_some()),
        ("scmProvider", leaf.scm_provider.is_some()),
        ("clusterDecisionResource", leaf.cluster_decision_resource.is_some()),
        ("pullRequest", leaf.pull_request.is_some()),
        ("plugin", leaf.plugin.is_some()),
    ]
    .into_iter()
    .filter_map(|(kind, set)| set.then_some(kind))
    .collect()
}

/// The parameter sets of a leaf generator, its selector applied.
fn leaf(leaf: &LeafGenerators, mode: TemplateMode, inputs: &dyn Inputs) -> Result<Vec<ParamSet>, Error> {
    let (kind, sets) = if let Some(l) = &leaf.list {
        ("list", list::generate(l, mode)?)
    } else if let Some(c) = &leaf.clusters {
        ("clusters", clusters::generate(c, &inputs.clusters()?, inputs.in_cluster_enabled(), mode)?)
    } else if let Some(g) = &leaf.git {
        let listing = inputs.repository(g)?;
        ("git", git::generate(g, &listing, inputs.file_globbing(), mode)?)
    } else if let Some(spec) = &leaf.pull_request {
        ("pullRequest", inputs.service("pullRequest", spec, mode)?)
    } else if let Some(spec) = &leaf.scm_provider {
        ("scmProvider", inputs.service("scmProvider", spec, mode)?)
    } else if let Some(spec) = &leaf.cluster_decision_resource {
        ("clusterDecisionResource", inputs.service("clusterDecisionResource", spec, mode)?)
    } else if let Some(spec) = &leaf.plugin {
        ("plugin", inputs.service("plugin", spec, mode)?)
    } else {
        return Err(Error::invalid("ApplicationSet", "generator", "the generator sets no kind"));
    };
    if sets.len() > MAX_PARAM_SETS {
        return Err(Error::TooManyParamSets { generator: kind, max: MAX_PARAM_SETS });
    }
    selector::apply(leaf, kind, sets)
}

/// A generator's own `template`, which overrides the set's (the free-form generators' too).
fn own_template(generator: &ApplicationSetGenerator) -> Result<Option<ApplicationSetTemplate>, Error> {
    let leaf = &generator.leaf;
    let typed = leaf
        .list
        .as_ref()
        .and_then(|g| g.template.as_ref())
        .or_else(|| leaf.clusters.as_ref().and_then(|g| g.template.as_ref()))
        .or_else(|| leaf.git.as_ref().and_then(|g| g.template.as_ref()))
        .or_else(|| generator.matrix.as_ref().and_then(|g| g.template.as_ref()))
        .or_else(|| generator.merge.as_ref().and_then(|g| g.template.as_ref()));
    if let Some(template) = typed {
        return Ok(Some(template.clone()));
    }
    let free = [
        ("pullRequest", &leaf.pull_request),
        ("scmProvider", &leaf.scm_provider),
        ("clusterDecisionResource", &leaf.cluster_decision_resource),
        ("plugin", &leaf.plugin),
    ];
    for (kind, spec) in free {
        if let Some(template) = spec.as_ref().and_then(|s| s.get("template")) {
            return serde_json::from_value(template.clone())
                .map(Some)
                .map_err(|e| Error::invalid(kind, "template", e.to_string()));
        }
    }
    Ok(None)
}

/// `over` merged over `base` as Argo CD merges a generator's template over the set's: every field `over`
/// sets (not empty) wins, objects merge key by key, lists replace.
pub fn merge_template(
    base: &ApplicationSetTemplate,
    over: &ApplicationSetTemplate,
) -> Result<ApplicationSetTemplate, Error> {
    let field =
        |e: serde_json::Error| Error::Template { field: "template".to_string(), message: e.to_string() };
    let mut merged = serde_json::to_value(base).map_err(field)?;
    merge_over(&mut merged, &serde_json::to_value(over).map_err(field)?);
    serde_json::from_value(merged).map_err(field)
}

fn merge_over(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(base), Value::Object(over)) => {
            for (key, value) in over {
                if matrix::is_empty(value) {
                    continue;
                }
                match base.get_mut(key) {
                    Some(existing @ Value::Object(_)) if value.is_object() => merge_over(existing, value),
                    _ => {
                        base.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (base, over) => {
            if !matrix::is_empty(over) {
                *base = over.clone();
            }
        }
    }
}

/// Every generated name is a valid Kubernetes object name and appears once, as Argo CD requires.
fn check_names(set: &ApplicationSet, apps: &[Application]) -> Result<(), Error> {
    let mut seen = BTreeSet::new();
    for app in apps {
        let name = app.metadata.name.as_deref().unwrap_or_default();
        if let Err(message) = berth_api::names::check_subdomain(name) {
            return Err(Error::InvalidApplication { name: name.to_string(), message });
        }
        if !seen.insert(name) {
            let set = set.metadata.name.clone().unwrap_or_default();
            return Err(Error::DuplicateName { set, name: name.to_string() });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generators::git::RepoFile;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn set(value: Value) -> ApplicationSet {
        serde_json::from_value(value).expect("an ApplicationSet")
    }

    /// A repository and two clusters, fixed.
    struct Fixed {
        listing: RepoListing,
    }

    impl Inputs for Fixed {
        fn clusters(&self) -> Result<Vec<Cluster>, Error> {
            let cluster = |name: &str, server: &str, env: &str| Cluster {
                name: name.to_string(),
                server: server.to_string(),
                labels: BTreeMap::from([
                    ("argocd.argoproj.io/secret-type".to_string(), "cluster".to_string()),
                    ("env".to_string(), env.to_string()),
                ]),
                ..Cluster::default()
            };
            Ok(vec![
                cluster("prod", "https://prod.k8s", "prod"),
                cluster("staging", "https://staging.k8s", "staging"),
            ])
        }
        fn repository(&self, generator: &GitGenerator) -> Result<RepoListing, Error> {
            assert_eq!(
                (generator.repo_url.as_str(), generator.revision.as_deref()),
                ("https://git.example/deploy.git", Some("main"))
            );
            Ok(self.listing.clone())
        }
    }

    fn estate() -> Fixed {
        let dirs = [
            "apps",
            "apps/web",
            "apps/web/base",
            "apps/web/overlays",
            "apps/web/overlays/prod",
            "apps/web/overlays/staging",
            "apps/api",
            "apps/api/base",
            "apps/api/overlays",
            "apps/api/overlays/prod",
        ];
        Fixed {
            listing: RepoListing {
                directories: dirs.map(String::from).to_vec(),
                files: vec![RepoFile {
                    path: "apps/web/base/kustomization.yaml".into(),
                    content: b"resources: []".to_vec(),
                }],
            },
        }
    }

    fn names(apps: &[Application]) -> Vec<&str> {
        apps.iter().map(|a| a.metadata.name.as_deref().unwrap_or_default()).collect()
    }

    /// The seed's web-multi-env set, as written (its `values` element is a string, kept as `{{values}}`).
    #[test]
    fn the_seeds_web_multi_env_set_generates_web_prod_and_web_staging() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/seed/examples/applicationset-web-multi-env.yaml"
        ));
        // The seed lives beside the project; a clone without it still has the same YAML inline below.
        let yaml = text.unwrap_or_else(|_| {
            include_str!("../tests/fixtures/applicationset-web-multi-env.yaml").to_string()
        });
        let set: ApplicationSet = serde_saphyr::from_str(&yaml).expect("the seed's YAML");
        let apps = generate(&set, &NoInputs).unwrap();
        assert_eq!(names(&apps), ["web-prod", "web-staging"]);
        assert_eq!(apps[0].spec.destination.server.as_deref(), Some("https://prod.k8s"));
        let source = apps[1].spec.source.as_ref().expect("a source");
        assert_eq!(source.helm.as_ref().unwrap().value_files, ["values-staging.yaml"]);
    }

    /// The seed's estate: git directories `apps/*/overlays/<env>` × clusters labelled with that env.
    #[test]
    fn a_matrix_of_git_directories_and_clusters_generates_one_app_per_overlay_and_cluster() {
        let s = set(json!({
            "metadata": { "name": "prod" },
            "spec": {
                "generators": [{ "matrix": { "generators": [
                    { "clusters": { "selector": { "matchLabels": { "env": "prod" } } } },
                    { "git": { "repoURL": "https://git.example/deploy.git", "revision": "main",
                               "directories": [{ "path": "apps/*/overlays/{{metadata.labels.env}}" }] } }
                ] } }],
                "template": {
                    "metadata": { "name": "{{path[1]}}-{{name}}" },
                    "spec": { "project": "default", "destination": { "server": "{{server}}", "namespace": "{{path[1]}}" },
                              "source": { "repoURL": "https://git.example/deploy.git", "targetRevision": "main", "path": "{{path}}" } }
                }
            }
        }));
        let apps = generate(&s, &estate()).unwrap();
        assert_eq!(names(&apps), ["api-prod", "web-prod"]);
        assert_eq!(apps[1].spec.source.as_ref().unwrap().path.as_deref(), Some("apps/web/overlays/prod"));
        assert_eq!(apps[1].spec.destination.namespace.as_deref(), Some("web"));
    }

    #[test]
    fn a_generators_own_template_overrides_the_sets_field_by_field() {
        let s = set(json!({
            "metadata": { "name": "s" },
            "spec": {
                "generators": [
                    { "list": { "elements": [{ "env": "a" }] } },
                    { "list": { "elements": [{ "env": "b" }],
                                "template": { "metadata": {}, "spec": { "project": "special", "destination": {},
                                              "source": { "path": "other/{{env}}" } } } } }
                ],
                "template": { "metadata": { "name": "web-{{env}}" },
                              "spec": { "project": "default", "destination": { "namespace": "web" },
                                        "source": { "repoURL": "https://git/x", "path": "apps/{{env}}" } } }
            }
        }));
        let apps = generate(&s, &NoInputs).unwrap();
        assert_eq!(apps[0].spec.project, "default");
        assert_eq!(apps[1].spec.project, "special");
        let source = apps[1].spec.source.as_ref().unwrap();
        assert_eq!((source.repo_url.as_str(), source.path.as_deref()), ("https://git/x", Some("other/b")));
        assert_eq!(
            apps[1].spec.destination.namespace.as_deref(),
            Some("web"),
            "fields it leaves out are the set's"
        );
    }

    #[test]
    fn two_applications_with_one_name_fail_the_whole_set() {
        let s = set(json!({
            "metadata": { "name": "s" },
            "spec": { "generators": [{ "list": { "elements": [{ "env": "a" }, { "env": "a" }] } }],
                      "template": { "metadata": { "name": "web-{{env}}" }, "spec": { "destination": {} } } }
        }));
        let err = generate(&s, &NoInputs).unwrap_err().to_string();
        assert_eq!(err, "ApplicationSet s contains applications with duplicate name: web-a");
    }

    #[test]
    fn a_generated_name_the_api_server_would_refuse_fails_the_set_naming_it() {
        let s = set(json!({
            "metadata": { "name": "s" },
            "spec": { "generators": [{ "list": { "elements": [{ "env": "Prod_1" }] } }],
                      "template": { "metadata": { "name": "web-{{env}}" }, "spec": { "destination": {} } } }
        }));
        let err = generate(&s, &NoInputs).unwrap_err().to_string();
        assert!(err.contains("web-Prod_1") && err.contains("RFC 1123"), "{err}");
    }

    #[test]
    fn a_git_generator_on_a_folder_that_does_not_exist_is_an_error_not_zero_applications() {
        let s = set(json!({
            "metadata": { "name": "s" },
            "spec": { "generators": [{ "git": { "repoURL": "https://git.example/deploy.git", "revision": "main",
                                                "directories": [{ "path": "aps/*/overlays/prod" }] } }],
                      "template": { "metadata": { "name": "{{path[1]}}" }, "spec": { "destination": {} } } }
        }));
        let err = generate(&s, &estate()).unwrap_err().to_string();
        assert!(
            err.contains("spec.generators[0].directories[0].path") && err.contains("no folder \"aps\""),
            "{err}"
        );
        // A pattern over an existing folder that matches nothing is zero Applications (a deleted overlay).
        let mut s = s;
        s.spec.generators[0].leaf.git.as_mut().unwrap().directories[0].path = "apps/*/overlays/dev".into();
        assert!(generate(&s, &estate()).unwrap().is_empty());
    }

    #[test]
    fn a_matrix_of_two_git_generators_whose_paths_collide_is_an_error() {
        let git = |path: &str| {
            json!({ "git": { "repoURL": "https://git.example/deploy.git", "revision": "main",
                                               "directories": [{ "path": path }] } })
        };
        let s = set(json!({
            "metadata": { "name": "s" },
            "spec": { "generators": [{ "matrix": { "generators": [git("apps/web/overlays/*"), git("apps/api/overlays/*")] } }],
                      "template": { "metadata": { "name": "{{path.basename}}" }, "spec": { "destination": {} } } }
        }));
        let err = generate(&s, &estate()).unwrap_err().to_string();
        assert!(err.contains("both children set parameter \"path\""), "{err}");
    }

    #[test]
    fn matrix_nests_two_levels_and_no_deeper() {
        let list = json!({ "list": { "elements": [{ "a": "1" }] } });
        let two = json!({ "matrix": { "generators": [list, { "list": { "elements": [{ "b": "2" }] } }] } });
        let three = json!({ "matrix": { "generators": [list, two] } });
        let template = json!({ "metadata": { "name": "x-{{a}}" }, "spec": { "destination": {} } });
        let ok = set(json!({ "metadata": { "name": "s" },
            "spec": { "generators": [{ "matrix": { "generators": [list, two] } }], "template": template } }));
        assert_eq!(names(&generate(&ok, &NoInputs).unwrap()), ["x-1"], "a nested matrix, one level down");
        let deep = set(json!({ "metadata": { "name": "s" },
            "spec": { "generators": [{ "matrix": { "generators": [{ "list": { "elements": [{ "c": "3" }] } }, three] } }],
                      "template": template } }));
        let err = generate(&deep, &NoInputs).unwrap_err().to_string();
        assert!(err.contains("at most two levels"), "{err}");
    }

    #[test]
    fn template_patch_with_fasttemplate_and_generators_that_need_a_service_are_clear_errors() {
        let s = set(json!({ "metadata": { "name": "s" },
            "spec": { "generators": [{ "list": { "elements": [{ "a": "1" }] } }],
                      "templatePatch": "spec: {}",
                      "template": { "metadata": { "name": "x" }, "spec": { "destination": {} } } } }));
        assert!(
            generate(&s, &NoInputs).unwrap_err().to_string().contains("templatePatch needs goTemplate: true")
        );
        let s = set(json!({ "metadata": { "name": "s" },
            "spec": { "generators": [{ "plugin": { "configMapRef": { "name": "p" } } }],
                      "template": { "metadata": { "name": "x" }, "spec": { "destination": {} } } } }));
        assert!(generate(&s, &NoInputs).unwrap_err().to_string().contains("not supported yet"));
    }

    #[test]
    fn go_templates_with_missingkey_error_and_a_template_patch() {
        let s = set(json!({ "metadata": { "name": "s" },
            "spec": { "goTemplate": true, "goTemplateOptions": ["missingkey=error"],
                      "generators": [{ "list": { "elements": [{ "env": "staging", "auto": true }, { "env": "prod", "auto": false }] } }],
                      "templatePatch": "{{ if .auto }}\nspec:\n  syncPolicy:\n    automated: {selfHeal: true}\n{{ end }}",
                      "template": { "metadata": { "name": "web-{{ .env }}" }, "spec": { "destination": {} } } } }));
        let apps = generate(&s, &NoInputs).unwrap();
        assert!(apps[0].spec.sync_policy.as_ref().and_then(|p| p.automated.as_ref()).is_some());
        assert!(apps[1].spec.sync_policy.as_ref().and_then(|p| p.automated.as_ref()).is_none());
        let mut missing = s.clone();
        missing.spec.template.metadata.name = Some("web-{{ .cluster }}".into());
        let err = generate(&missing, &NoInputs).unwrap_err().to_string();
        assert!(err.contains("metadata.name") && err.contains("cluster"), "{err}");
    }

    #[test]
    fn more_applications_than_the_cap_fail_the_set() {
        let elements: Vec<Value> = (0..MAX_PARAM_SETS + 1).map(|i| json!({ "i": i.to_string() })).collect();
        let s = set(json!({ "metadata": { "name": "s" },
            "spec": { "generators": [{ "list": { "elements": elements } }],
                      "template": { "metadata": { "name": "a-{{i}}" }, "spec": { "destination": {} } } } }));
        assert!(matches!(generate(&s, &NoInputs), Err(Error::TooManyParamSets { .. })));
    }

    /// A generator that asks a service (here a pull-request generator answered by the caller) may carry
    /// its own template too, as the typed ones do.
    #[test]
    fn a_service_generators_own_template_overrides_the_sets() {
        struct OnePull;
        impl Inputs for OnePull {
            fn clusters(&self) -> Result<Vec<Cluster>, Error> {
                Ok(Vec::new())
            }
            fn repository(&self, generator: &GitGenerator) -> Result<RepoListing, Error> {
                NoInputs.repository(generator)
            }
            fn service(
                &self,
                kind: &'static str,
                _spec: &Value,
                mode: TemplateMode,
            ) -> Result<Vec<ParamSet>, Error> {
                assert_eq!((kind, mode), ("pullRequest", TemplateMode::Fast));
                Ok(vec![ParamSet::Flat([("number".to_string(), "7".to_string())].into())])
            }
        }
        let s = set(json!({ "metadata": { "name": "s" },
            "spec": { "generators": [{ "pullRequest": { "gitea": { "owner": "o", "repo": "r", "api": "https://g" },
                                                      "template": { "metadata": {}, "spec": { "project": "previews", "destination": {} } } } }],
                      "template": { "metadata": { "name": "preview-{{number}}" }, "spec": { "project": "default", "destination": {} } } } }));
        let apps = generate(&s, &OnePull).unwrap();
        assert_eq!(
            (apps[0].metadata.name.as_deref(), apps[0].spec.project.as_str()),
            (Some("preview-7"), "previews")
        );
    }

    /// A templatePatch cannot forge what a template may not say: an operation, a status, owner references.
    #[test]
    fn a_template_patch_reaches_only_the_fields_a_template_may_set() {
        let s = set(json!({ "metadata": { "name": "s" },
            "spec": { "goTemplate": true,
                      "generators": [{ "list": { "elements": [{ "env": "prod" }] } }],
                      "templatePatch": "metadata:\n  labels: {env: prod}\n  ownerReferences: [{apiVersion: v1, kind: Secret, name: x, uid: u}]\n  uid: forged\noperation:\n  initiatedBy: {username: admin}\n  sync: {}\nstatus:\n  sync: {status: Synced}\n",
                      "template": { "metadata": { "name": "web-{{ .env }}" }, "spec": { "destination": {} } } } }));
        let app = &generate(&s, &NoInputs).unwrap()[0];
        assert_eq!(app.metadata.labels.as_ref().unwrap()["env"], "prod", "a label is the template's to set");
        assert!(app.operation.is_none() && app.status.is_none());
        assert!(app.metadata.owner_references.is_none() && app.metadata.uid.is_none());
    }
}
