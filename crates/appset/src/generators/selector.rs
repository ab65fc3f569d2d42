//! A generator's `selector`: a Kubernetes label selector over each parameter set it produced, keeping
//! the sets it matches (Argo CD's post-selector).
//!
//! As Argo CD applies it: `matchLabels` entries are equalities; `matchExpressions` take `In`, `NotIn`
//! (a missing key passes), `Exists` and `DoesNotExist`; keys must be label keys (`path.basename` is,
//! `path[0]` is not); values are free text (a cluster URL is fine). A selector with neither list
//! matches every set; a set is matched on its string parameters only.
//!
//! ```
//! use berth_api::applicationset::LeafGenerators;
//! use berth_appset::generators::selector;
//! use berth_appset::params::ParamSet;
//! let leaf: LeafGenerators = serde_json::from_value(serde_json::json!({
//!     "selector": { "matchLabels": { "env": "prod" } }
//! })).unwrap();
//! let set = |env: &str| ParamSet::Flat([("env".to_string(), env.to_string())].into());
//! let kept = selector::apply(&leaf, "list", vec![set("prod"), set("staging")]).unwrap();
//! assert_eq!(kept, vec![set("prod")]);
//! ```

use berth_api::applicationset::LeafGenerators;
use std::collections::BTreeMap;

use crate::Error;
use crate::params::ParamSet;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Operator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

#[derive(Clone, Debug)]
struct Requirement {
    key: String,
    operator: Operator,
    values: Vec<String>,
}

/// A parsed `selector`.
#[derive(Clone, Debug)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

impl Selector {
    /// The selector of a generator named `generator`; `None` when it has none. A bad operator, key or
    /// value list is an error naming the field.
    pub fn of(leaf: &LeafGenerators, generator: &'static str) -> Result<Option<Selector>, Error> {
        let Some(selector) = &leaf.selector else {
            return Ok(None);
        };
        let mut requirements = Vec::new();
        let labels: BTreeMap<String, String> = selector.match_labels.clone().unwrap_or_default();
        for (key, value) in labels {
            check_key(&key)
                .map_err(|m| Error::invalid(generator, format!("selector.matchLabels.{key}"), m))?;
            requirements.push(Requirement { key, operator: Operator::In, values: vec![value] });
        }
        for (index, expression) in selector.match_expressions.iter().flatten().enumerate() {
            let field = format!("selector.matchExpressions[{index}]");
            let operator = match expression.operator.as_str() {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                other => {
                    return Err(Error::invalid(
                        generator,
                        format!("{field}.operator"),
                        format!("{other:?} is not one of In, NotIn, Exists, DoesNotExist"),
                    ));
                }
            };
            check_key(&expression.key).map_err(|m| Error::invalid(generator, format!("{field}.key"), m))?;
            let values = expression.values.clone().unwrap_or_default();
            let set_based = matches!(operator, Operator::In | Operator::NotIn);
            if set_based && values.is_empty() {
                return Err(Error::invalid(generator, format!("{field}.values"), "In and NotIn need values"));
            }
            if !set_based && !values.is_empty() {
                return Err(Error::invalid(
                    generator,
                    format!("{field}.values"),
                    "Exists and DoesNotExist take no values",
                ));
            }
            requirements.push(Requirement { key: expression.key.clone(), operator, values });
        }
        Ok(Some(Selector { requirements }))
    }

    /// Whether `params` meets every requirement.
    pub fn matches(&self, params: &ParamSet) -> bool {
        let labels = params.labels();
        self.requirements.iter().all(|r| {
            let value = labels.get(r.key.as_str());
            match r.operator {
                Operator::In => value.is_some_and(|v| r.values.iter().any(|x| x == v)),
                Operator::NotIn => value.is_none_or(|v| !r.values.iter().any(|x| x == v)),
                Operator::Exists => value.is_some(),
                Operator::DoesNotExist => value.is_none(),
            }
        })
    }
}

/// The sets of `sets` that the generator's selector keeps (all of them without a selector).
pub fn apply(
    leaf: &LeafGenerators,
    generator: &'static str,
    sets: Vec<ParamSet>,
) -> Result<Vec<ParamSet>, Error> {
    Ok(match Selector::of(leaf, generator)? {
        Some(selector) => sets.into_iter().filter(|set| selector.matches(set)).collect(),
        None => sets,
    })
}

/// Kubernetes' qualified name: an optional DNS subdomain prefix and `/`, then a name of at most 63
/// characters, alphanumerics inside with `-`, `_` and `.`.
fn check_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    let alnum = |c: char| c.is_ascii_alphanumeric();
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(alnum)
        && name.ends_with(alnum)
        && name.chars().all(|c| alnum(c) || matches!(c, '-' | '_' | '.'));
    if !name_ok {
        return Err(format!(
            "{key:?} is not a label key: a name of at most 63 letters, digits, `-`, `_` or `.`"
        ));
    }
    if let Some(prefix) = prefix {
        let lower = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
        let prefix_ok = !prefix.is_empty()
            && prefix.len() <= 253
            && prefix.starts_with(lower)
            && prefix.ends_with(lower)
            && prefix.chars().all(|c| lower(c) || matches!(c, '-' | '.'));
        if !prefix_ok {
            return Err(format!("{key:?} is not a label key: its prefix must be a DNS subdomain"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn leaf(selector: Value) -> LeafGenerators {
        serde_json::from_value(json!({ "selector": selector })).expect("a selector")
    }

    fn set(pairs: &[(&str, &str)]) -> ParamSet {
        ParamSet::Flat(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    fn kept(selector: Value, sets: &[ParamSet]) -> Vec<ParamSet> {
        apply(&leaf(selector), "list", sets.to_vec()).expect("a valid selector")
    }

    /// Argo CD's "Generators Post Selector" page: a list generator keeping the `env: staging` element.
    #[test]
    fn match_labels_keeps_equal_parameter_sets() {
        let sets = [
            set(&[("cluster", "engineering-dev"), ("env", "staging")]),
            set(&[("cluster", "engineering-prod"), ("env", "prod")]),
        ];
        assert_eq!(kept(json!({ "matchLabels": { "env": "staging" } }), &sets), vec![sets[0].clone()]);
    }

    #[test]
    fn match_expressions_follow_kubernetes_semantics() {
        let sets = [set(&[("env", "prod")]), set(&[("env", "dev")]), set(&[("other", "x")])];
        let expr = |op: &str, values: &[&str]| json!({ "matchExpressions": [{ "key": "env", "operator": op, "values": values }] });
        assert_eq!(kept(expr("In", &["prod", "qa"]), &sets), vec![sets[0].clone()]);
        assert_eq!(kept(expr("NotIn", &["prod"]), &sets), vec![sets[1].clone(), sets[2].clone()]);
        assert_eq!(kept(expr("Exists", &[]), &sets), vec![sets[0].clone(), sets[1].clone()]);
        assert_eq!(kept(expr("DoesNotExist", &[]), &sets), vec![sets[2].clone()]);
    }

    #[test]
    fn an_empty_selector_keeps_everything_and_values_may_be_urls() {
        let sets = [set(&[("server", "https://kubernetes.default.svc")]), set(&[])];
        assert_eq!(kept(json!({}), &sets), sets.to_vec());
        let by_url = json!({ "matchLabels": { "server": "https://kubernetes.default.svc" } });
        assert_eq!(kept(by_url, &sets), vec![sets[0].clone()]);
    }

    #[test]
    fn nested_parameter_sets_are_matched_on_their_top_level_strings() {
        let nested = ParamSet::Nested(
            json!({ "env": "prod", "path": { "basename": "web" } }).as_object().unwrap().clone(),
        );
        assert_eq!(kept(json!({ "matchLabels": { "env": "prod" } }), std::slice::from_ref(&nested)).len(), 1);
        assert!(
            kept(json!({ "matchExpressions": [{ "key": "path", "operator": "Exists" }] }), &[nested])
                .is_empty()
        );
    }

    #[test]
    fn bad_operators_keys_and_value_lists_name_the_field() {
        let cases = [
            (
                json!({ "matchExpressions": [{ "key": "env", "operator": "Gt", "values": ["1"] }] }),
                "selector.matchExpressions[0].operator",
            ),
            (
                json!({ "matchExpressions": [{ "key": "env", "operator": "In" }] }),
                "selector.matchExpressions[0].values",
            ),
            (
                json!({ "matchExpressions": [{ "key": "env", "operator": "Exists", "values": ["x"] }] }),
                "selector.matchExpressions[0].values",
            ),
            (json!({ "matchLabels": { "path[0]": "x" } }), "selector.matchLabels.path[0]"),
            (
                json!({ "matchExpressions": [{ "key": "Bad_Prefix/x", "operator": "Exists" }] }),
                "selector.matchExpressions[0].key",
            ),
        ];
        for (selector, field) in cases {
            let err = apply(&leaf(selector), "git", vec![]).unwrap_err();
            assert!(err.to_string().starts_with(&format!("git generator: {field}:")), "{err}");
        }
    }

    #[test]
    fn label_keys_may_carry_a_dns_prefix_and_dots() {
        assert!(check_key("metadata.labels.env").is_ok());
        assert!(check_key("argocd.argoproj.io/secret-type").is_ok());
        assert!(check_key("values.release").is_ok());
        assert!(check_key("").is_err());
        assert!(check_key(&"a".repeat(64)).is_err());
        assert!(check_key("a/b/c").is_err());
    }
}
