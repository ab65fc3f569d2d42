//! A generator's parameter set, in the two shapes Argo CD uses: flat strings for the default
//! fasttemplate syntax (`{{path.basename}}`), nested values for `goTemplate: true` (`{{.path.basename}}`).
//!
//! A JSON/YAML document (a git file, a list element) becomes parameters as Argo CD's git files
//! generator makes them: flattened to `a.b.c` keys (list items by index, `a.b.0`) for fasttemplate,
//! kept nested for goTemplate. A generator's `values` are added as `values.<key>` (nested: `values`
//! → `{key: …}`), each value first templated with the generator's own parameters; a value never
//! sees the other values, so values cannot expand each other.
//!
//! ```
//! use berth_appset::params::{self, ParamSet, TemplateMode};
//! use serde_json::json;
//! let doc = json!({ "cluster": { "name": "engineering-dev", "address": "https://1.2.3.4" } });
//! let mut set = params::from_document(doc.as_object().unwrap().clone(), TemplateMode::Fast);
//! let values = [("release".to_string(), "{{cluster.name}}-v1".to_string())].into();
//! params::append_values(&mut set, &values, "git").unwrap();
//! assert_eq!(set.get("cluster.address"), Some("https://1.2.3.4"));
//! assert_eq!(set.get("values.release"), Some("engineering-dev-v1"));
//! ```

use serde_json::{Map, Value};
use std::collections::BTreeMap;

use crate::Error;
use crate::template::fast;

/// Which template syntax a set uses; it decides the shape of every generator's parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TemplateMode {
    /// The default: `{{name}}` substitution of flat string parameters.
    Fast,
    /// `goTemplate: true`: Go's text/template over nested parameters.
    Go,
}

impl TemplateMode {
    /// The mode an ApplicationSet's spec asks for.
    pub fn of(spec: &berth_api::applicationset::ApplicationSetSpec) -> TemplateMode {
        if spec.go_template == Some(true) { TemplateMode::Go } else { TemplateMode::Fast }
    }
}

/// One parameter set: the values one generated Application is rendered with.
#[derive(Clone, Debug, PartialEq)]
pub enum ParamSet {
    /// fasttemplate's `map[string]string`.
    Flat(BTreeMap<String, String>),
    /// goTemplate's `map[string]any`.
    Nested(Map<String, Value>),
}

impl ParamSet {
    /// A set with no parameter, of `mode`'s shape.
    pub fn empty(mode: TemplateMode) -> ParamSet {
        match mode {
            TemplateMode::Fast => ParamSet::Flat(BTreeMap::new()),
            TemplateMode::Go => ParamSet::Nested(Map::new()),
        }
    }

    pub fn mode(&self) -> TemplateMode {
        match self {
            ParamSet::Flat(_) => TemplateMode::Fast,
            ParamSet::Nested(_) => TemplateMode::Go,
        }
    }

    pub fn is_empty(&self) -> bool {
        match self {
            ParamSet::Flat(flat) => flat.is_empty(),
            ParamSet::Nested(nested) => nested.is_empty(),
        }
    }

    /// A string parameter: a flat key, or a top-level string of a nested set.
    pub fn get(&self, key: &str) -> Option<&str> {
        match self {
            ParamSet::Flat(flat) => flat.get(key).map(String::as_str),
            ParamSet::Nested(nested) => nested.get(key).and_then(Value::as_str),
        }
    }

    /// Sets a string parameter (top-level in a nested set).
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) {
        match self {
            ParamSet::Flat(flat) => {
                flat.insert(key.into(), value.into());
            }
            ParamSet::Nested(nested) => {
                nested.insert(key.into(), Value::String(value.into()));
            }
        }
    }

    /// What a generator's `selector` sees: every flat parameter; only the top-level strings of a nested
    /// set (Argo CD keeps only string values for its label match).
    pub fn labels(&self) -> BTreeMap<&str, &str> {
        match self {
            ParamSet::Flat(flat) => flat.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect(),
            ParamSet::Nested(nested) => {
                nested.iter().filter_map(|(k, v)| Some((k.as_str(), v.as_str()?))).collect()
            }
        }
    }

    /// The set as a JSON object (for a dry run's output or a status message).
    pub fn to_value(&self) -> Value {
        match self {
            ParamSet::Flat(flat) => {
                Value::Object(flat.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect())
            }
            ParamSet::Nested(nested) => Value::Object(nested.clone()),
        }
    }
}

/// A document's fields as fasttemplate parameters: nested keys joined by `.`, list items by their index
/// (`a.b.0`), scalars as text; empty objects and lists give no parameter.
pub fn flatten(object: &Map<String, Value>) -> BTreeMap<String, String> {
    let mut flat = BTreeMap::new();
    for (key, value) in object {
        flatten_into(key.clone(), value, &mut flat);
    }
    flat
}

fn flatten_into(key: String, value: &Value, flat: &mut BTreeMap<String, String>) {
    match value {
        Value::Object(object) => {
            for (child, value) in object {
                flatten_into(format!("{key}.{child}"), value, flat);
            }
        }
        Value::Array(items) => {
            for (index, value) in items.iter().enumerate() {
                flatten_into(format!("{key}.{index}"), value, flat);
            }
        }
        scalar => {
            flat.insert(key, scalar_text(scalar).unwrap_or_default());
        }
    }
}

/// A scalar as a fasttemplate parameter: strings as they are, numbers and booleans as written, null as
/// the empty string; `None` for an object or a list.
///
/// Argo CD prints numbers through a float64 (`1234567` becomes `1.234567e+06`); berth keeps the number
/// as written, which is what the file's author means.
pub fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        Value::Null => Some(String::new()),
        Value::Array(_) | Value::Object(_) => None,
    }
}

/// A document as a parameter set of `mode`'s shape: flattened for fasttemplate, as is for goTemplate.
pub fn from_document(object: Map<String, Value>, mode: TemplateMode) -> ParamSet {
    match mode {
        TemplateMode::Fast => ParamSet::Flat(flatten(&object)),
        TemplateMode::Go => ParamSet::Nested(object),
    }
}

/// The objects a JSON/YAML file holds, as the git files generator reads it: one object (an empty file
/// is one empty object) or a list of objects.
pub fn documents(content: &str) -> Result<Vec<Map<String, Value>>, String> {
    if content.trim().is_empty() {
        return Ok(vec![Map::new()]);
    }
    let value: Value = serde_saphyr::from_str(content).map_err(|e| format!("unable to parse file: {e}"))?;
    match value {
        Value::Null => Ok(vec![Map::new()]),
        Value::Object(object) => Ok(vec![object]),
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(index, item)| match item {
                Value::Object(object) => Ok(object),
                _ => Err(format!("item {index} of the list is not an object")),
            })
            .collect(),
        _ => Err("the file holds neither an object nor a list of objects".to_string()),
    }
}

/// Adds a generator's `values` to `params`: `values.<key>` (goTemplate: `values: {key: …}`), each
/// value templated with `params` as they were before any value was added.
pub fn append_values(
    params: &mut ParamSet,
    values: &BTreeMap<String, String>,
    generator: &'static str,
) -> Result<(), Error> {
    if values.is_empty() {
        return Ok(());
    }
    match params {
        ParamSet::Flat(flat) => {
            let mut rendered = Vec::with_capacity(values.len());
            for (key, value) in values {
                let text = fast::render_str(value, flat)
                    .map_err(|message| Error::invalid(generator, format!("values.{key}"), message))?;
                rendered.push((format!("values.{key}"), text));
            }
            flat.extend(rendered);
        }
        ParamSet::Nested(nested) => {
            // Rendered with the generator's own parameters, never with each other (as the flat form).
            let options = crate::template::go::Options::default();
            let mut object = serde_json::Map::new();
            for (key, value) in values {
                let text = crate::template::go::render_str(value, nested, &options)
                    .map_err(|message| Error::invalid(generator, format!("values.{key}"), message))?;
                object.insert(key.clone(), Value::String(text));
            }
            nested.insert("values".to_string(), Value::Object(object));
        }
    }
    Ok(())
}

/// Argo CD's `normalize`: lower case, every character but `a-z`, `0-9`, `-` and `.` replaced by `-`, at
/// most 253 characters, no `-` or `.` at either end (`directory_2` → `directory-2`).
pub fn sanitize_name(name: &str) -> String {
    let replaced: String = name
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.' { c } else { '-' })
        .take(253)
        .collect();
    replaced.trim_matches(['-', '.']).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().expect("an object").clone()
    }

    /// Argo CD's "Generators Git" page: the engineering-dev config.json and the parameters it lists.
    #[test]
    fn a_nested_json_document_flattens_to_dotted_keys() {
        let doc = object(json!({
            "aws_account": "123456",
            "asset_id": "11223344",
            "cluster": { "owner": "cluster-admin@company.com", "name": "engineering-dev", "address": "https://1.2.3.4" }
        }));
        let flat = flatten(&doc);
        let expected: BTreeMap<String, String> = [
            ("aws_account", "123456"),
            ("asset_id", "11223344"),
            ("cluster.owner", "cluster-admin@company.com"),
            ("cluster.name", "engineering-dev"),
            ("cluster.address", "https://1.2.3.4"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(flat, expected);
    }

    #[test]
    fn list_items_flatten_by_index_and_empty_containers_give_nothing() {
        let flat = flatten(&object(json!({ "a": { "b": ["x", { "c": "y" }], "empty": {}, "none": [] } })));
        assert_eq!(flat.get("a.b.0").map(String::as_str), Some("x"));
        assert_eq!(flat.get("a.b.1.c").map(String::as_str), Some("y"));
        assert_eq!(flat.len(), 2);
    }

    #[test]
    fn numbers_and_booleans_keep_their_written_form_and_null_is_empty() {
        let flat = flatten(&object(json!({ "n": 1234567, "f": 1.5, "b": true, "z": null })));
        assert_eq!(flat["n"], "1234567");
        assert_eq!(flat["f"], "1.5");
        assert_eq!(flat["b"], "true");
        assert_eq!(flat["z"], "");
    }

    #[test]
    fn go_template_parameters_stay_nested() {
        let doc = object(json!({ "cluster": { "name": "dev" } }));
        let set = from_document(doc.clone(), TemplateMode::Go);
        assert_eq!(set, ParamSet::Nested(doc));
        assert_eq!(set.get("cluster"), None, "a nested object is no string parameter");
    }

    #[test]
    fn values_are_templated_with_the_generator_parameters_not_with_each_other() {
        let mut set = ParamSet::Flat([("name".to_string(), "dev".to_string())].into());
        let values: BTreeMap<String, String> =
            [("a".to_string(), "{{name}}-a".to_string()), ("b".to_string(), "{{values.a}}-b".to_string())]
                .into();
        append_values(&mut set, &values, "list").unwrap();
        assert_eq!(set.get("values.a"), Some("dev-a"));
        assert_eq!(set.get("values.b"), Some("{{values.a}}-b"), "a value does not see other values");
    }

    #[test]
    fn nested_values_land_under_a_values_object() {
        let mut set = ParamSet::empty(TemplateMode::Go);
        append_values(&mut set, &[("env".to_string(), "prod".to_string())].into(), "git").unwrap();
        assert_eq!(set.to_value(), json!({ "values": { "env": "prod" } }));
    }

    #[test]
    fn a_templated_value_in_go_mode_is_rendered_with_the_generators_params() {
        let mut set = ParamSet::empty(TemplateMode::Go);
        if let ParamSet::Nested(nested) = &mut set {
            nested.insert("name".to_string(), json!("prod"));
        }
        append_values(&mut set, &[("env".to_string(), "{{.name}}-eu".to_string())].into(), "git").unwrap();
        assert_eq!(set.to_value(), json!({ "name": "prod", "values": { "env": "prod-eu" } }));
    }

    #[test]
    fn a_value_with_an_unclosed_tag_names_the_generator_and_the_value() {
        let mut set = ParamSet::Flat([("name".to_string(), "dev".to_string())].into());
        let err =
            append_values(&mut set, &[("x".to_string(), "{{name}} {{oops".to_string())].into(), "clusters")
                .unwrap_err();
        let message = err.to_string();
        assert!(message.starts_with("clusters generator: values.x:"), "{message}");
    }

    #[test]
    fn files_hold_one_object_a_list_of_objects_or_nothing() {
        assert_eq!(documents("").unwrap(), vec![Map::new()]);
        assert_eq!(documents("a: 1\n").unwrap(), vec![object(json!({ "a": 1 }))]);
        assert_eq!(documents("- a: x\n- b: y\n").unwrap().len(), 2);
        assert_eq!(documents(r#"{"a": {"b": "c"}}"#).unwrap(), vec![object(json!({ "a": { "b": "c" } }))]);
        assert!(documents("- 1\n- 2\n").is_err());
        assert!(documents("just a string").is_err());
        assert!(documents("a: [unclosed").is_err());
    }

    /// Argo CD's "Generators Git" page: `directory_2` is normalized to `directory-2`.
    #[test]
    fn sanitize_name_lowercases_replaces_and_trims() {
        assert_eq!(sanitize_name("directory_2"), "directory-2");
        assert_eq!(sanitize_name("My App"), "my-app");
        assert_eq!(sanitize_name("_.x.-"), "x");
        assert_eq!(sanitize_name("config.json"), "config.json");
        assert_eq!(sanitize_name(&"a".repeat(300)).len(), 253);
    }
}
