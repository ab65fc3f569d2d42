//! The merge generator: the first child's parameter sets, each overridden by the set of a later child
//! that has the same values for every one of `mergeKeys`.
//!
//! As Argo CD does it: at least two children and one merge key; a later child may not produce two sets
//! with the same key values (the first child may); a later child's values win (with goTemplate nested
//! objects merge, and an empty value does not override); sets of later children that match no base
//! set are dropped. The result keeps the first child's order.
//!
//! ```
//! use berth_api::applicationset::MergeGenerator;
//! use berth_appset::generators::{list, merge};
//! use berth_appset::params::TemplateMode;
//! let spec: MergeGenerator = serde_json::from_value(serde_json::json!({
//!     "mergeKeys": ["server"],
//!     "generators": [
//!         { "list": { "elements": [{ "server": "https://a", "kafka": "true" }, { "server": "https://b", "kafka": "true" }] } },
//!         { "list": { "elements": [{ "server": "https://b", "kafka": "false" }] } }
//!     ]
//! })).unwrap();
//! let sets = merge::generate(&spec, |child| list::generate(child.leaf.list.as_ref().unwrap(), TemplateMode::Fast))
//!     .unwrap();
//! assert_eq!(sets[1].get("kafka"), Some("false"));
//! ```

use berth_api::applicationset::{MergeGenerator, NestedGenerator};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

use super::check_count;
use super::matrix::is_empty;
use crate::Error;
use crate::params::ParamSet;

const GENERATOR: &str = "merge";

/// The merged parameter sets of `merge`'s children; `child` generates one child's sets (its selector
/// applied).
pub fn generate<F>(merge: &MergeGenerator, mut child: F) -> Result<Vec<ParamSet>, Error>
where
    F: FnMut(&NestedGenerator) -> Result<Vec<ParamSet>, Error>,
{
    if merge.generators.len() < 2 {
        return Err(Error::invalid(
            GENERATOR,
            "generators",
            format!("a merge needs two or more generators, found {}", merge.generators.len()),
        ));
    }
    let keys: BTreeSet<&str> = merge.merge_keys.iter().map(String::as_str).collect();
    if keys.is_empty() {
        return Err(Error::invalid(GENERATOR, "mergeKeys", "a merge needs at least one merge key"));
    }
    let mut base = child(&merge.generators[0])?;
    check_count(GENERATOR, base.len())?;
    for (index, generator) in merge.generators.iter().enumerate().skip(1) {
        let mut overrides: BTreeMap<String, ParamSet> = BTreeMap::new();
        for set in child(generator)? {
            let key = merge_key(&keys, &set);
            if overrides.contains_key(&key) {
                return Err(Error::invalid(
                    GENERATOR,
                    format!("generators[{index}]"),
                    format!("two parameter sets share the merge key values {key}; each must be unique"),
                ));
            }
            overrides.insert(key, set);
        }
        for set in &mut base {
            if let Some(over) = overrides.get(&merge_key(&keys, set)) {
                override_with(set, over)?;
            }
        }
    }
    Ok(base)
}

/// The values of `keys` in `set`, as a JSON object (missing ones null), the identity of a set.
fn merge_key(keys: &BTreeSet<&str>, set: &ParamSet) -> String {
    let object: Map<String, Value> = keys
        .iter()
        .map(|key| {
            let value = match set {
                ParamSet::Flat(flat) => flat.get(*key).map_or(Value::Null, |v| Value::String(v.clone())),
                ParamSet::Nested(nested) => nested.get(*key).cloned().unwrap_or(Value::Null),
            };
            (key.to_string(), value)
        })
        .collect();
    Value::Object(object).to_string()
}

fn override_with(base: &mut ParamSet, over: &ParamSet) -> Result<(), Error> {
    match (base, over) {
        (ParamSet::Flat(base), ParamSet::Flat(over)) => {
            base.extend(over.iter().map(|(k, v)| (k.clone(), v.clone())));
            Ok(())
        }
        (ParamSet::Nested(base), ParamSet::Nested(over)) => {
            override_nested(base, over);
            Ok(())
        }
        _ => Err(Error::invalid(
            GENERATOR,
            "generators",
            "children produced parameters of different template modes",
        )),
    }
}

fn override_nested(base: &mut Map<String, Value>, over: &Map<String, Value>) {
    for (key, value) in over {
        match (base.get_mut(key), value) {
            (Some(Value::Object(base)), Value::Object(over)) => override_nested(base, over),
            (Some(_), value) if is_empty(value) => {}
            _ => {
                base.insert(key.clone(), value.clone());
            }
        }
    }
}

/// A merge nested in a matrix or merge (kept free-form by the API types) as a typed one.
pub fn from_nested(value: &Value) -> Result<MergeGenerator, Error> {
    serde_json::from_value(value.clone()).map_err(|e| Error::invalid(GENERATOR, "generators", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generators::list;
    use crate::params::TemplateMode;
    use serde_json::json;

    fn merge(value: Value) -> MergeGenerator {
        serde_json::from_value(value).expect("a merge generator")
    }

    fn lists(mode: TemplateMode) -> impl FnMut(&NestedGenerator) -> Result<Vec<ParamSet>, Error> {
        move |child| list::generate(child.leaf.list.as_ref().expect("a list child"), mode)
    }

    /// Argo CD's "Generators Merge" page: clusters with defaults, one cluster overridden by a list.
    #[test]
    fn later_children_override_the_sets_sharing_their_merge_keys() {
        let spec = merge(json!({
            "mergeKeys": ["server"],
            "generators": [
                { "list": { "elements": [
                    { "name": "in-cluster", "server": "https://kubernetes.default.svc", "values.kafka": "true", "values.redis": "false" },
                    { "name": "staging", "server": "https://staging.example.com", "values.kafka": "true", "values.redis": "false" }
                ] } },
                { "list": { "elements": [{ "server": "https://staging.example.com", "values.redis": "true" }] } },
                { "list": { "elements": [
                    { "server": "https://kubernetes.default.svc", "values.kafka": "false" },
                    { "server": "https://unknown.example.com", "values.kafka": "false" }
                ] } }
            ]
        }));
        let sets = generate(&spec, lists(TemplateMode::Fast)).unwrap();
        let got: Vec<_> = sets
            .iter()
            .map(|s| (s.get("name").unwrap(), s.get("values.kafka").unwrap(), s.get("values.redis").unwrap()))
            .collect();
        assert_eq!(got, [("in-cluster", "false", "false"), ("staging", "true", "true")]);
    }

    #[test]
    fn several_merge_keys_must_all_agree() {
        let spec = merge(json!({
            "mergeKeys": ["app", "env"],
            "generators": [
                { "list": { "elements": [{ "app": "web", "env": "prod", "r": "1" }, { "app": "web", "env": "dev", "r": "1" }] } },
                { "list": { "elements": [{ "app": "web", "env": "dev", "r": "2" }] } }
            ]
        }));
        let sets = generate(&spec, lists(TemplateMode::Fast)).unwrap();
        assert_eq!(sets.iter().map(|s| s.get("r").unwrap()).collect::<Vec<_>>(), ["1", "2"]);
    }

    #[test]
    fn duplicate_keys_in_a_later_child_are_an_error_in_the_first_they_are_not() {
        let spec = merge(json!({
            "mergeKeys": ["server"],
            "generators": [
                { "list": { "elements": [{ "server": "a", "x": "1" }, { "server": "a", "x": "2" }] } },
                { "list": { "elements": [{ "server": "a", "y": "3" }] } }
            ]
        }));
        let sets = generate(&spec, lists(TemplateMode::Fast)).unwrap();
        assert!(sets.iter().all(|s| s.get("y") == Some("3")));
        let bad = merge(json!({
            "mergeKeys": ["server"],
            "generators": [
                { "list": { "elements": [{ "server": "a" }] } },
                { "list": { "elements": [{ "server": "a" }, { "server": "a" }] } }
            ]
        }));
        let err = generate(&bad, lists(TemplateMode::Fast)).unwrap_err();
        assert!(
            err.to_string().starts_with("merge generator: generators[1]: two parameter sets share"),
            "{err}"
        );
    }

    #[test]
    fn a_merge_needs_two_children_and_a_key() {
        let one = merge(json!({ "mergeKeys": ["a"], "generators": [{ "list": { "elements": [] } }] }));
        assert!(generate(&one, lists(TemplateMode::Fast)).unwrap_err().to_string().contains("two or more"));
        let keyless =
            merge(json!({ "generators": [{ "list": { "elements": [] } }, { "list": { "elements": [] } }] }));
        let err = generate(&keyless, lists(TemplateMode::Fast)).unwrap_err();
        assert!(err.to_string().starts_with("merge generator: mergeKeys:"), "{err}");
    }

    #[test]
    fn go_template_overrides_merge_nested_objects_and_skip_empty_values() {
        let spec = merge(json!({
            "mergeKeys": ["server"],
            "generators": [
                { "list": { "elements": [{ "server": "a", "values": { "kafka": "true", "redis": "false" }, "keep": "x" }] } },
                { "list": { "elements": [{ "server": "a", "values": { "redis": "true" }, "keep": "" }] } }
            ]
        }));
        let sets = generate(&spec, lists(TemplateMode::Go)).unwrap();
        assert_eq!(
            sets[0].to_value(),
            json!({ "server": "a", "values": { "kafka": "true", "redis": "true" }, "keep": "x" })
        );
    }
}
