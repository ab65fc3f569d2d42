//! The matrix generator: every parameter set of its first child combined with every set of its second.
//!
//! The second child may use the first's parameters in its own fields (a git generator's `path:
//! '{{path}}/config.json'`, a list's `elementsYaml: '{{values.apps}}'`): it is rendered and generated
//! once per set of the first. The caller does the generating, through a closure, because only it can
//! read repositories and cluster Secrets; this module owns the order, the interpolation and the
//! combination.
//!
//! Combining, as Argo CD does: with fasttemplate a parameter both children set must have the same
//! value, else the set is an error; with goTemplate the first child's values win and nested objects
//! are merged.
//!
//! ```
//! use berth_api::applicationset::MatrixGenerator;
//! use berth_appset::generators::{list, matrix};
//! use berth_appset::params::TemplateMode;
//! let spec: MatrixGenerator = serde_json::from_value(serde_json::json!({ "generators": [
//!     { "list": { "elements": [{ "env": "prod" }, { "env": "staging" }] } },
//!     { "list": { "elements": [{ "app": "web", "path": "apps/web/overlays/{{env}}" }] } }
//! ] })).unwrap();
//! let sets = matrix::generate(&spec, |child| list::generate(child.leaf.list.as_ref().unwrap(), TemplateMode::Fast))
//!     .unwrap();
//! assert_eq!(sets[1].get("path"), Some("apps/web/overlays/staging"));
//! ```

use berth_api::applicationset::{MatrixGenerator, NestedGenerator};
use serde_json::{Map, Value};

use super::check_count;
use crate::Error;
use crate::params::ParamSet;
use crate::template::fast;

const GENERATOR: &str = "matrix";

/// The product of `matrix`'s two children; `child` generates one child's parameter sets (its selector
/// applied), and is called once for the first child and once per first-child set for the second.
pub fn generate<F>(matrix: &MatrixGenerator, mut child: F) -> Result<Vec<ParamSet>, Error>
where
    F: FnMut(&NestedGenerator) -> Result<Vec<ParamSet>, Error>,
{
    let [first, second] = matrix.generators.as_slice() else {
        return Err(Error::invalid(
            GENERATOR,
            "generators",
            format!("a matrix combines exactly two generators, found {}", matrix.generators.len()),
        ));
    };
    let parents = child(first)?;
    let mut product = Vec::new();
    for parent in &parents {
        let rendered = interpolate(second, parent)?;
        for set in child(&rendered)? {
            product.push(combine(parent, &set)?);
            check_count(GENERATOR, product.len())?;
        }
    }
    Ok(product)
}

/// `generator` with `params` rendered into every string of its fields, as the matrix's second child
/// is before it generates.
pub fn interpolate(generator: &NestedGenerator, params: &ParamSet) -> Result<NestedGenerator, Error> {
    if params.is_empty() {
        return Ok(generator.clone());
    }
    let field = "generators[1]";
    let value =
        serde_json::to_value(generator).map_err(|e| Error::invalid(GENERATOR, field, e.to_string()))?;
    let rendered = match params {
        ParamSet::Flat(flat) => fast::render_value(&value, flat, field).map_err(|e| match e {
            Error::Template { field, message } => Error::invalid(GENERATOR, field, message),
            other => other,
        })?,
        ParamSet::Nested(nested) => {
            crate::template::go::render_value(&value, nested, &crate::template::go::Options::default(), field)
                .map_err(|e| match e {
                    Error::Template { field, message } => Error::invalid(GENERATOR, field, message),
                    other => other,
                })?
        }
    };
    serde_json::from_value(rendered).map_err(|e| Error::invalid(GENERATOR, field, e.to_string()))
}

/// One set of each child as one set.
fn combine(parent: &ParamSet, child: &ParamSet) -> Result<ParamSet, Error> {
    match (parent, child) {
        (ParamSet::Flat(parent), ParamSet::Flat(child)) => {
            let mut combined = parent.clone();
            for (key, value) in child {
                match combined.get(key) {
                    Some(existing) if existing != value => {
                        return Err(Error::invalid(
                            GENERATOR,
                            "generators",
                            format!("both children set parameter {key:?}, to {existing:?} and {value:?}"),
                        ));
                    }
                    _ => {
                        combined.insert(key.clone(), value.clone());
                    }
                }
            }
            Ok(ParamSet::Flat(combined))
        }
        (ParamSet::Nested(parent), ParamSet::Nested(child)) => {
            let mut combined = parent.clone();
            fill_missing(&mut combined, child);
            Ok(ParamSet::Nested(combined))
        }
        _ => Err(Error::invalid(
            GENERATOR,
            "generators",
            "children produced parameters of different template modes",
        )),
    }
}

/// `src`'s entries where `dst` has none (or an empty value); objects on both sides merged the same way.
fn fill_missing(dst: &mut Map<String, Value>, src: &Map<String, Value>) {
    for (key, value) in src {
        match (dst.get_mut(key), value) {
            (Some(Value::Object(dst)), Value::Object(src)) => fill_missing(dst, src),
            (Some(existing), _) if !is_empty(existing) => {}
            _ => {
                dst.insert(key.clone(), value.clone());
            }
        }
    }
}

/// Go's zero values, which mergo treats as unset.
pub(crate) fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(flag) => !flag,
        Value::Number(number) => number.as_f64() == Some(0.0),
        Value::String(text) => text.is_empty(),
        Value::Array(items) => items.is_empty(),
        Value::Object(object) => object.is_empty(),
    }
}

/// A matrix nested in a matrix or merge (kept free-form by the API types) as a typed one.
pub fn from_nested(value: &Value) -> Result<MatrixGenerator, Error> {
    serde_json::from_value(value.clone()).map_err(|e| Error::invalid(GENERATOR, "generators", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MAX_PARAM_SETS;
    use crate::generators::{git, list, selector};
    use crate::params::TemplateMode;
    use serde_json::json;

    fn matrix(value: Value) -> MatrixGenerator {
        serde_json::from_value(value).expect("a matrix generator")
    }

    /// A caller with list and git children: the repository listing stands for a clone.
    fn child(
        mode: TemplateMode,
        repo: &git::RepoListing,
    ) -> impl FnMut(&NestedGenerator) -> Result<Vec<ParamSet>, Error> {
        move |child| {
            let sets = match (&child.leaf.list, &child.leaf.git) {
                (Some(list), _) => list::generate(list, mode)?,
                (_, Some(generator)) => git::generate(generator, repo, git::FileGlobbing::Greedy, mode)?,
                _ => panic!("a list or git child"),
            };
            selector::apply(&child.leaf, "child", sets)
        }
    }

    /// Argo CD's "Generators Matrix" page: git directories × a list of clusters.
    #[test]
    fn every_set_of_the_first_child_meets_every_set_of_the_second() {
        let spec = matrix(json!({ "generators": [
            { "git": { "repoURL": "https://github.com/argoproj/argo-cd.git", "revision": "HEAD",
                       "directories": [{ "path": "applicationset/examples/matrix/cluster-addons/*" }] } },
            { "list": { "elements": [{ "cluster": "engineering-dev", "url": "https://kubernetes.default.svc" },
                                     { "cluster": "engineering-prod", "url": "https://prod.example.com" }] } }
        ] }));
        let repo = git::RepoListing {
            directories: ["argo-workflows", "prometheus-operator"]
                .map(|d| format!("applicationset/examples/matrix/cluster-addons/{d}"))
                .to_vec(),
            files: vec![],
        };
        let sets = generate(&spec, child(TemplateMode::Fast, &repo)).unwrap();
        let pairs: Vec<_> =
            sets.iter().map(|s| (s.get("path.basename").unwrap(), s.get("cluster").unwrap())).collect();
        assert_eq!(
            pairs,
            [
                ("argo-workflows", "engineering-dev"),
                ("argo-workflows", "engineering-prod"),
                ("prometheus-operator", "engineering-dev"),
                ("prometheus-operator", "engineering-prod"),
            ]
        );
    }

    /// Argo CD's "Generators Matrix" page: the second child reads a file named by the first's `path`.
    #[test]
    fn the_second_child_is_generated_with_each_set_of_the_first() {
        let spec = matrix(json!({ "generators": [
            { "git": { "repoURL": "r", "directories": [{ "path": "apps/*" }] } },
            { "git": { "repoURL": "r", "files": [{ "path": "{{path}}/config.json" }] } }
        ] }));
        let file = |path: &str, content: &str| git::RepoFile { path: path.into(), content: content.into() };
        let repo = git::RepoListing {
            directories: vec!["apps/web".into(), "apps/api".into()],
            files: vec![
                file("apps/web/config.json", r#"{"replicas": "3"}"#),
                file("apps/api/config.json", r#"{"replicas": "1"}"#),
                file("config/web.json", r#"{"replicas": "5"}"#),
            ],
        };
        // The file's folder is the directory itself, so the shared `path` parameters agree.
        let sets = generate(&spec, child(TemplateMode::Fast, &repo)).unwrap();
        let replicas: Vec<_> =
            sets.iter().map(|s| (s.get("path").unwrap(), s.get("replicas").unwrap())).collect();
        assert_eq!(replicas, [("apps/api", "1"), ("apps/web", "3")]);
        assert_eq!(sets[0].get("path.filename"), Some("config.json"));

        // Elsewhere they disagree: an error, until `pathParamPrefix` keeps them apart.
        let clash = matrix(json!({ "generators": [
            { "git": { "repoURL": "r", "directories": [{ "path": "apps/web" }] } },
            { "git": { "repoURL": "r", "files": [{ "path": "config/{{path.basename}}.json" }] } }
        ] }));
        let err = generate(&clash, child(TemplateMode::Fast, &repo)).unwrap_err();
        assert!(err.to_string().contains("both children set parameter \"path\""), "{err}");
        let prefixed = matrix(json!({ "generators": [
            { "git": { "repoURL": "r", "directories": [{ "path": "apps/web" }] } },
            { "git": { "repoURL": "r", "pathParamPrefix": "config", "files": [{ "path": "config/{{path.basename}}.json" }] } }
        ] }));
        let sets = generate(&prefixed, child(TemplateMode::Fast, &repo)).unwrap();
        assert_eq!(sets.len(), 1);
        assert_eq!(sets[0].get("path"), Some("apps/web"));
        assert_eq!(sets[0].get("config.path"), Some("config"));
        assert_eq!(sets[0].get("replicas"), Some("5"));
    }

    #[test]
    fn equal_shared_parameters_are_kept_and_the_child_selector_applies() {
        let spec = matrix(json!({ "generators": [
            { "list": { "elements": [{ "env": "prod" }, { "env": "dev" }] } },
            { "list": { "elements": [{ "env": "{{env}}", "tier": "a" }, { "env": "{{env}}", "tier": "b" }] },
              "selector": { "matchLabels": { "tier": "b" } } }
        ] }));
        let sets = generate(&spec, child(TemplateMode::Fast, &git::RepoListing::default())).unwrap();
        let got: Vec<_> = sets.iter().map(|s| (s.get("env").unwrap(), s.get("tier").unwrap())).collect();
        assert_eq!(got, [("prod", "b"), ("dev", "b")]);
    }

    #[test]
    fn a_matrix_needs_exactly_two_children() {
        let one = matrix(json!({ "generators": [{ "list": { "elements": [] } }] }));
        let err = generate(&one, child(TemplateMode::Fast, &git::RepoListing::default())).unwrap_err();
        assert!(
            err.to_string().starts_with("matrix generator: generators: a matrix combines exactly two"),
            "{err}"
        );
    }

    #[test]
    fn go_template_sets_merge_with_the_first_child_winning() {
        let parent =
            ParamSet::Nested(json!({ "a": "1", "m": { "x": "p", "z": "" } }).as_object().unwrap().clone());
        let set = ParamSet::Nested(
            json!({ "a": "2", "b": "3", "m": { "x": "c", "y": "c", "z": "c" } }).as_object().unwrap().clone(),
        );
        assert_eq!(
            combine(&parent, &set).unwrap().to_value(),
            json!({ "a": "1", "b": "3", "m": { "x": "p", "y": "c", "z": "c" } })
        );
    }

    #[test]
    fn a_product_past_the_cap_is_a_clear_error() {
        let elements =
            |n: usize, key: &str| (0..n).map(|i| json!({ key: i.to_string() })).collect::<Vec<_>>();
        let spec = matrix(json!({ "generators": [
            { "list": { "elements": elements(100, "a") } },
            { "list": { "elements": elements(100, "b") } }
        ] }));
        let err = generate(&spec, child(TemplateMode::Fast, &git::RepoListing::default())).unwrap_err();
        assert_eq!(err, Error::TooManyParamSets { generator: "matrix", max: MAX_PARAM_SETS });
    }

    #[test]
    fn a_bad_tag_in_the_second_child_names_its_field() {
        let spec = matrix(json!({ "generators": [
            { "list": { "elements": [{ "env": "prod" }] } },
            { "list": { "elements": [{ "x": "{{env}} {{oops" }] } }
        ] }));
        let err = generate(&spec, child(TemplateMode::Fast, &git::RepoListing::default())).unwrap_err();
        assert!(err.to_string().starts_with("matrix generator: generators[1].list.elements[0].x:"), "{err}");
    }
}
