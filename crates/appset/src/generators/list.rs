//! The list generator: one parameter set per element of `elements`, then per item of `elementsYaml`
//! (a YAML list of objects, often itself rendered from a matrix parent's parameters).
//!
//! For fasttemplate each key is a parameter: strings as they are, numbers and booleans as written,
//! null as empty; an object under `values` gives `values.<key>`; any other object or list is an
//! error naming the element and key. With goTemplate the element is the parameter set as it is.
//!
//! One departure from Argo CD: a scalar `values` (the seed's `values: values-prod.yaml`) is a plain
//! parameter `{{values}}`, where Argo CD stops the whole set with "error parsing values map".

use berth_api::applicationset::ListGenerator;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

use super::check_count;
use crate::Error;
use crate::params::{ParamSet, TemplateMode, scalar_text};

const GENERATOR: &str = "list";

/// The parameter sets of `list`, `elements` first, in order.
pub fn generate(list: &ListGenerator, mode: TemplateMode) -> Result<Vec<ParamSet>, Error> {
    check_count(GENERATOR, list.elements.len())?;
    let mut sets = Vec::with_capacity(list.elements.len());
    for (index, element) in list.elements.iter().enumerate() {
        let field = format!("elements[{index}]");
        let Value::Object(object) = element else {
            return Err(Error::invalid(GENERATOR, field, "an element must be an object"));
        };
        sets.push(params_of(object, mode, &field)?);
    }
    if let Some(yaml) = list.elements_yaml.as_deref().filter(|yaml| !yaml.trim().is_empty()) {
        let items: Vec<Value> = serde_saphyr::from_str(yaml)
            .map_err(|e| Error::invalid(GENERATOR, "elementsYaml", format!("not a YAML list: {e}")))?;
        check_count(GENERATOR, sets.len() + items.len())?;
        for (index, item) in items.iter().enumerate() {
            let field = format!("elementsYaml[{index}]");
            let Value::Object(object) = item else {
                return Err(Error::invalid(GENERATOR, field, "an element must be an object"));
            };
            sets.push(params_of(object, mode, &field)?);
        }
    }
    Ok(sets)
}

fn params_of(element: &Map<String, Value>, mode: TemplateMode, field: &str) -> Result<ParamSet, Error> {
    if mode == TemplateMode::Go {
        return Ok(ParamSet::Nested(element.clone()));
    }
    let mut flat = BTreeMap::new();
    for (key, value) in element {
        match value {
            Value::Object(values) if key == "values" => {
                for (name, value) in values {
                    flat.insert(format!("values.{name}"), text(value, field, &format!("values.{name}"))?);
                }
            }
            value => {
                flat.insert(key.clone(), text(value, field, key)?);
            }
        }
    }
    Ok(ParamSet::Flat(flat))
}

fn text(value: &Value, field: &str, key: &str) -> Result<String, Error> {
    scalar_text(value).ok_or_else(|| {
        Error::invalid(
            GENERATOR,
            format!("{field}.{key}"),
            "objects and lists are not supported without goTemplate; use a string",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MAX_PARAM_SETS;
    use crate::template;
    use berth_api::ApplicationSet;
    use serde_json::json;

    fn list(value: Value) -> ListGenerator {
        serde_json::from_value(value).expect("a list generator")
    }

    /// Argo CD's "Generators List" page: `cluster` and `url` elements, with arbitrary `values`.
    #[test]
    fn each_element_is_one_parameter_set_with_values_prefixed() {
        let generator = list(json!({ "elements": [
            { "cluster": "engineering-dev", "url": "https://kubernetes.default.svc" },
            { "cluster": "engineering-prod", "url": "https://kubernetes.default.svc",
              "values": { "additional": "prod-only" } }
        ] }));
        let sets = generator_sets(&generator);
        assert_eq!(sets.len(), 2);
        assert_eq!(sets[0].get("cluster"), Some("engineering-dev"));
        assert_eq!(sets[1].get("url"), Some("https://kubernetes.default.svc"));
        assert_eq!(sets[1].get("values.additional"), Some("prod-only"));
        assert_eq!(sets[1].get("values"), None);
    }

    fn generator_sets(generator: &ListGenerator) -> Vec<ParamSet> {
        generate(generator, TemplateMode::Fast).expect("parameter sets")
    }

    /// Argo CD's "Generators List" page: `elementsYaml` items come after `elements`.
    #[test]
    fn elements_yaml_items_follow_the_elements() {
        let generator = list(json!({
            "elements": [{ "cluster": "a" }],
            "elementsYaml": "- cluster: b\n  url: https://b\n- cluster: c\n  replicas: 3\n"
        }));
        let sets = generator_sets(&generator);
        let clusters: Vec<_> = sets.iter().map(|s| s.get("cluster").unwrap()).collect();
        assert_eq!(clusters, ["a", "b", "c"]);
        assert_eq!(sets[2].get("replicas"), Some("3"));
    }

    #[test]
    fn scalars_become_text_and_nested_values_are_an_error_naming_the_key() {
        let sets = generator_sets(&list(json!({ "elements": [{ "n": 2, "b": false, "z": null }] })));
        assert_eq!(sets[0].to_value(), json!({ "n": "2", "b": "false", "z": "" }));
        let err =
            generate(&list(json!({ "elements": [{ "a": "x" }, { "tags": ["x"] }] })), TemplateMode::Fast)
                .unwrap_err();
        assert_eq!(
            err.to_string(),
            "list generator: elements[1].tags: objects and lists are not supported without goTemplate; use a string"
        );
    }

    #[test]
    fn go_template_elements_are_kept_whole() {
        let generator = list(json!({ "elements": [{ "cluster": "a", "tags": ["x", "y"] }] }));
        let sets = generate(&generator, TemplateMode::Go).unwrap();
        assert_eq!(sets[0].to_value(), json!({ "cluster": "a", "tags": ["x", "y"] }));
    }

    #[test]
    fn bad_elements_and_bad_yaml_name_their_field() {
        let err = generate(&list(json!({ "elements": ["x"] })), TemplateMode::Fast).unwrap_err();
        assert!(err.to_string().starts_with("list generator: elements[0]:"), "{err}");
        let err = generate(&list(json!({ "elementsYaml": "a: b" })), TemplateMode::Fast).unwrap_err();
        assert!(err.to_string().starts_with("list generator: elementsYaml:"), "{err}");
        let err = generate(&list(json!({ "elementsYaml": "- x\n" })), TemplateMode::Fast).unwrap_err();
        assert!(err.to_string().starts_with("list generator: elementsYaml[0]:"), "{err}");
    }

    #[test]
    fn more_elements_than_the_cap_is_a_clear_error() {
        let elements: Vec<Value> = (0..=MAX_PARAM_SETS).map(|i| json!({ "i": i.to_string() })).collect();
        let err = generate(&list(json!({ "elements": elements })), TemplateMode::Fast).unwrap_err();
        assert_eq!(err, Error::TooManyParamSets { generator: "list", max: MAX_PARAM_SETS });
        let yaml: String = (0..=MAX_PARAM_SETS).map(|i| format!("- i: '{i}'\n")).collect();
        let err = generate(&list(json!({ "elementsYaml": yaml })), TemplateMode::Fast).unwrap_err();
        assert_eq!(err, Error::TooManyParamSets { generator: "list", max: MAX_PARAM_SETS });
    }

    /// The seed's `web-multi-env` set: its list and template give web-prod and web-staging, each on its
    /// own cluster with its own Helm value file.
    #[test]
    fn the_seed_web_multi_env_set_generates_web_prod_and_web_staging() {
        let path = berth_testkit::seed_dir().join("applicationset-web-multi-env.yaml");
        let text = std::fs::read_to_string(&path).expect("the seed's ApplicationSet");
        let set: ApplicationSet = serde_saphyr::from_str(&text).expect("an ApplicationSet");
        let mode = TemplateMode::of(&set.spec);
        assert_eq!(mode, TemplateMode::Fast);
        let generator = set.spec.generators[0].leaf.list.as_ref().expect("a list generator");
        let apps: Vec<_> = generate(generator, mode)
            .unwrap()
            .iter()
            .map(|params| {
                template::application(&set.spec.template, params, set.spec.sync_policy.as_ref()).unwrap()
            })
            .collect();
        let summary: Vec<_> = apps
            .iter()
            .map(|app| {
                let source = app.spec.source.as_ref().expect("one source");
                let helm = source.helm.as_ref().expect("helm");
                (
                    app.metadata.name.clone().unwrap(),
                    app.spec.destination.server.clone().unwrap_or_default(),
                    app.spec.destination.namespace.clone().unwrap_or_default(),
                    source.path.clone().unwrap_or_default(),
                    helm.value_files.clone(),
                )
            })
            .collect();
        let row = |name: &str, server: &str, values: &str| {
            (
                name.to_string(),
                server.to_string(),
                "web".to_string(),
                "charts/web".to_string(),
                vec![values.to_string()],
            )
        };
        assert_eq!(
            summary,
            [
                row("web-prod", "https://prod.k8s", "values-prod.yaml"),
                row("web-staging", "https://staging.k8s", "values-staging.yaml"),
            ]
        );
        assert!(apps.iter().all(|app| app.spec.project == "default"));
    }
}
