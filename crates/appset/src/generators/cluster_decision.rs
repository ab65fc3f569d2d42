//! The cluster decision resource generator: the clusters some other controller chose (an Open Cluster
//! Management `PlacementDecision`, any resource of that shape), read by duck typing from the resources'
//! `status`; no network here, the caller read the ConfigMap, the resources and the cluster Secrets.
//!
//! As Argo CD documents it: the generator's `configMapRef` names a ConfigMap in the controller's
//! namespace whose data says what to read ([`DuckType`]): `apiVersion` (`group/version`), `kind` (the
//! resource's plural, `placementdecisions`; berth also takes its kind, `PlacementDecision`),
//! `statusListKey` (default `clusters`) and `matchKey`. The generator picks the resources of that type
//! in the controller's namespace by `name` or by `labelSelector` (exactly one of them). Each entry of a
//! picked resource's `status.<statusListKey>` whose `<matchKey>` names a cluster Argo CD knows (a
//! cluster Secret's `name`, or `in-cluster`) gives one parameter set: `name` and `server` of that
//! cluster, then every key of the entry as written (`clusterName`, `reason` …; an entry key wins over
//! `name` and `server`), then `values` as `values.<key>` (goTemplate: a `values` object), copied as
//! written, not templated, as Argo CD copies them. Entries naming no known cluster are skipped.
//!
//! Departures, each where Argo CD fails on a panic or would silently delete every Application:
//! - a ConfigMap without `matchKey` is an error (Argo CD generates nothing, deleting what the set owns);
//! - a resource whose status has no `<statusListKey>` list contributes nothing (Argo CD panics), and a
//!   non-string entry value is an error naming it (Argo CD panics);
//! - a core-group kind (`apiVersion: v1`) is refused as Argo CD refuses it, and Secrets are refused by
//!   name whatever the group: the generator never reads credentials.
//!
//! ```
//! use berth_appset::generators::cluster_decision::{self, DuckType, Generator};
//! use berth_appset::params::TemplateMode;
//! use serde_json::json;
//! let generator = Generator::parse(&json!({ "configMapRef": "ocm-placement", "name": "web-placement" })).unwrap();
//! let data = [("apiVersion", "cluster.open-cluster-management.io/v1beta1"), ("kind", "placementdecisions"),
//!             ("statusListKey", "decisions"), ("matchKey", "clusterName")]
//!     .map(|(k, v)| (k.to_string(), v.to_string())).into();
//! let duck = DuckType::parse("ocm-placement", &data).unwrap();
//! let decision = json!({ "metadata": { "name": "web-placement" },
//!                        "status": { "decisions": [{ "clusterName": "in-cluster", "reason": "" }] } });
//! let sets = cluster_decision::generate(&generator, &duck, &[decision], &[], true, TemplateMode::Fast).unwrap();
//! assert_eq!(sets[0].get("server"), Some("https://kubernetes.default.svc"));
//! assert_eq!(sets[0].get("clusterName"), Some("in-cluster"));
//! ```

use berth_api::applicationset::LeafGenerators;
use berth_api::destination::{IN_CLUSTER_NAME, IN_CLUSTER_SERVER};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

use super::check_count;
use super::clusters::Cluster;
use super::scm_provider::values_of;
use super::selector::Selector;
use crate::Error;
use crate::params::{ParamSet, TemplateMode};

const GENERATOR: &str = "clusterDecisionResource";
/// Argo CD's default `statusListKey`.
const DEFAULT_STATUS_LIST_KEY: &str = "clusters";

/// A `clusterDecisionResource` generator's own fields, checked.
#[derive(Clone, Debug)]
pub struct Generator {
    /// The ConfigMap (in the controller's namespace) that says what to read.
    pub config_map_ref: String,
    /// The one resource to read, by name; `None` when a label selector picks them.
    pub name: Option<String>,
    selector: Option<Selector>,
    values: BTreeMap<String, String>,
}

impl Generator {
    /// The generator `spec` as written: `configMapRef` is required, and exactly one of `name` and a
    /// `labelSelector` with `matchLabels` or `matchExpressions`.
    pub fn parse(spec: &Value) -> Result<Generator, Error> {
        let text = |key: &str| -> Result<Option<String>, Error> {
            match spec.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(text)) if text.is_empty() => Ok(None),
                Some(Value::String(text)) => Ok(Some(text.clone())),
                Some(_) => Err(Error::invalid(GENERATOR, key, "must be a string")),
            }
        };
        let config_map_ref = text("configMapRef")?.ok_or_else(|| {
            Error::invalid(GENERATOR, "configMapRef", "the ConfigMap naming the resource type is required")
        })?;
        let name = text("name")?;
        let label_selector = match spec.get("labelSelector") {
            None | Some(Value::Null) => None,
            Some(selector) => Some(serde_json::from_value(selector.clone()).map_err(|e| {
                Error::invalid(GENERATOR, "labelSelector", format!("not a label selector: {e}"))
            })?),
        };
        let leaf = LeafGenerators { selector: label_selector, ..LeafGenerators::default() };
        let selects = leaf.selector.as_ref().is_some_and(|s| {
            s.match_labels.as_ref().is_some_and(|l| !l.is_empty())
                || s.match_expressions.as_ref().is_some_and(|e| !e.is_empty())
        });
        if name.is_some() == selects {
            return Err(Error::invalid(
                GENERATOR,
                "name",
                "choose either the resource's name or a labelSelector (matchLabels or matchExpressions)",
            ));
        }
        let selector = Selector::of(&leaf, GENERATOR).map_err(|error| match error {
            Error::InvalidGenerator { generator, field, message } => Error::InvalidGenerator {
                generator,
                field: field.replacen("selector", "labelSelector", 1),
                message,
            },
            other => other,
        })?;
        Ok(Generator {
            config_map_ref,
            name,
            selector: if selects { selector } else { None },
            values: values_of(spec, GENERATOR)?,
        })
    }

    /// Whether the resource `object` is one the generator picks.
    fn picks(&self, object: &Value) -> bool {
        let metadata = &object["metadata"];
        if let Some(name) = &self.name {
            return metadata["name"].as_str() == Some(name.as_str());
        }
        let labels: BTreeMap<String, String> = metadata["labels"]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
            .collect();
        self.selector.as_ref().is_some_and(|s| s.matches(&ParamSet::Flat(labels)))
    }
}

/// What the generator's ConfigMap says to read: the resources of `group`/`version` named `kind` (a
/// plural or a kind), and in each one's status the list `status_list_key` whose entries name their
/// cluster under `match_key`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DuckType {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub status_list_key: String,
    pub match_key: String,
}

impl DuckType {
    /// The ConfigMap `config_map`'s `data`, checked: errors name the ConfigMap and its key.
    pub fn parse(config_map: &str, data: &BTreeMap<String, String>) -> Result<DuckType, Error> {
        let field = |key: &str| format!("configMapRef ({config_map}).{key}");
        let get = |key: &str| data.get(key).map(|v| v.trim()).unwrap_or_default();
        let api_version = get("apiVersion");
        let Some((group, version)) =
            api_version.split_once('/').filter(|(g, v)| !g.is_empty() && !v.is_empty())
        else {
            return Err(Error::invalid(
                GENERATOR,
                field("apiVersion"),
                format!("{api_version:?} is not group/version (core kinds such as v1 cannot be read)"),
            ));
        };
        let kind = get("kind");
        if kind.is_empty() {
            return Err(Error::invalid(GENERATOR, field("kind"), "the resource's kind is required"));
        }
        if ["secret", "secrets"].contains(&kind.to_ascii_lowercase().as_str()) {
            return Err(Error::invalid(GENERATOR, field("kind"), "Secrets are never read by this generator"));
        }
        let match_key = get("matchKey");
        if match_key.is_empty() {
            return Err(Error::invalid(
                GENERATOR,
                field("matchKey"),
                "the key of each status entry that names its cluster is required",
            ));
        }
        let status_list_key = match get("statusListKey") {
            "" => DEFAULT_STATUS_LIST_KEY,
            key => key,
        };
        Ok(DuckType {
            group: group.to_string(),
            version: version.to_string(),
            kind: kind.to_string(),
            status_list_key: status_list_key.to_string(),
            match_key: match_key.to_string(),
        })
    }
}

/// The parameter sets of `generator` over `resources` (the objects of the ConfigMap's type in the
/// controller's namespace, as listed; the generator picks among them) and the cluster Secrets
/// `clusters` (in the order the API server lists them), with the local in-cluster unless
/// `in_cluster_enabled` is false. No picked resource is an error, as in Argo CD.
pub fn generate(
    generator: &Generator,
    duck: &DuckType,
    resources: &[Value],
    clusters: &[Cluster],
    in_cluster_enabled: bool,
    mode: TemplateMode,
) -> Result<Vec<ParamSet>, Error> {
    let known = known_clusters(clusters, in_cluster_enabled);
    let picked: Vec<&Value> = resources.iter().filter(|r| generator.picks(r)).collect();
    if picked.is_empty() {
        let which = match &generator.name {
            Some(name) => format!("no {} named {name:?}", duck.kind),
            None => format!("no {} matches the labelSelector", duck.kind),
        };
        return Err(Error::invalid(GENERATOR, "name", format!("{which} in {}/{}", duck.group, duck.version)));
    }
    let mut sets = Vec::new();
    for resource in picked {
        let resource_name = resource["metadata"]["name"].as_str().unwrap_or_default();
        let field =
            |rest: &str| format!("{} {resource_name}: status.{}{rest}", duck.kind, duck.status_list_key);
        let entries = match &resource["status"] {
            Value::Null => continue,
            Value::Object(status) => match status.get(&duck.status_list_key) {
                None | Some(Value::Null) => continue,
                Some(Value::Array(entries)) => entries,
                Some(_) => return Err(Error::invalid(GENERATOR, field(""), "must be a list")),
            },
            _ => {
                return Err(Error::invalid(
                    GENERATOR,
                    format!("{resource_name}: status"),
                    "must be an object",
                ));
            }
        };
        for (index, entry) in entries.iter().enumerate() {
            let Value::Object(entry) = entry else {
                return Err(Error::invalid(GENERATOR, field(&format!("[{index}]")), "must be an object"));
            };
            let entry = strings_of(entry).map_err(|key| {
                Error::invalid(GENERATOR, field(&format!("[{index}].{key}")), "must be a string")
            })?;
            let Some(wanted) = entry.get(&duck.match_key).filter(|v| !v.is_empty()) else { continue };
            let Some(cluster) = known.iter().find(|(name, _)| name == wanted) else { continue };
            check_count(GENERATOR, sets.len() + 1)?;
            let mut set = ParamSet::empty(mode);
            set.insert("name", cluster.0.as_str());
            set.insert("server", cluster.1.as_str());
            for (key, value) in entry {
                set.insert(key, value);
            }
            append_values(&mut set, &generator.values);
            sets.push(set);
        }
    }
    Ok(sets)
}

/// The (name, server) of each cluster a decision may name: the Secrets in their order, then the local
/// cluster unless a Secret stands for it; none for the local server when it is disabled.
fn known_clusters(clusters: &[Cluster], in_cluster_enabled: bool) -> Vec<(String, String)> {
    let is_local = |server: &str| server.trim_end_matches('/') == IN_CLUSTER_SERVER;
    let mut known: Vec<(String, String)> = clusters
        .iter()
        .filter(|c| in_cluster_enabled || !is_local(&c.server))
        .map(|c| (c.name.clone(), c.server.clone()))
        .collect();
    if in_cluster_enabled && !known.iter().any(|(_, server)| is_local(server)) {
        known.push((IN_CLUSTER_NAME.to_string(), IN_CLUSTER_SERVER.to_string()));
    }
    known
}

/// An entry's fields as strings; `Err` names the first that is not one.
fn strings_of(entry: &Map<String, Value>) -> Result<BTreeMap<String, String>, String> {
    entry
        .iter()
        .map(|(key, value)| match value {
            Value::String(text) => Ok((key.clone(), text.clone())),
            _ => Err(key.clone()),
        })
        .collect()
}

/// `values` as written: `values.<key>`, or one `values` object with goTemplate.
fn append_values(set: &mut ParamSet, values: &BTreeMap<String, String>) {
    if values.is_empty() {
        return;
    }
    match set {
        ParamSet::Flat(flat) => {
            flat.extend(values.iter().map(|(k, v)| (format!("values.{k}"), v.clone())));
        }
        ParamSet::Nested(nested) => {
            let object = values.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
            nested.insert("values".to_string(), Value::Object(object));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MAX_PARAM_SETS;
    use serde_json::json;

    /// Argo CD's documented ConfigMap: `ducks` of `mallard.io/v1beta1`, their `decisions` by
    /// `clusterName`.
    fn ducks() -> DuckType {
        DuckType::parse(
            "my-configmap",
            &data(&[
                ("apiVersion", "mallard.io/v1beta1"),
                ("kind", "ducks"),
                ("statusListKey", "decisions"),
                ("matchKey", "clusterName"),
            ]),
        )
        .unwrap()
    }

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn cluster(name: &str, server: &str) -> Cluster {
        Cluster { name: name.to_string(), server: server.to_string(), ..Cluster::default() }
    }

    /// Argo CD's documented `quak` Duck, its decisions naming `clusters`.
    fn quak(labels: Value, clusters: &[&str]) -> Value {
        let decisions: Vec<Value> = clusters.iter().map(|c| json!({ "clusterName": c })).collect();
        json!({ "apiVersion": "mallard.io/v1beta1", "kind": "Duck",
                "metadata": { "name": "quak", "labels": labels },
                "spec": {}, "status": { "decisions": decisions } })
    }

    fn generator(spec: Value) -> Generator {
        Generator::parse(&spec).expect("a clusterDecisionResource generator")
    }

    fn names(sets: &[ParamSet]) -> Vec<&str> {
        sets.iter().map(|s| s.get("name").expect("a name")).collect()
    }

    /// Argo CD's "Cluster Decision Resource Generator" page: `quak` decides cluster-01 and cluster-02;
    /// each gives `name`, `server` and the entry's `clusterName`.
    #[test]
    fn each_decision_naming_a_known_cluster_gives_its_name_server_and_the_entry_keys() {
        let clusters = [
            cluster("cluster-01", "https://c1.example:6443"),
            cluster("cluster-02", "https://c2.example:6443"),
        ];
        let spec = generator(json!({ "configMapRef": "my-configmap", "name": "quak" }));
        let sets = generate(
            &spec,
            &ducks(),
            &[quak(json!({}), &["cluster-01", "cluster-02"])],
            &clusters,
            true,
            TemplateMode::Fast,
        )
        .unwrap();
        assert_eq!(
            sets.iter().map(ParamSet::to_value).collect::<Vec<_>>(),
            [
                json!({ "name": "cluster-01", "server": "https://c1.example:6443", "clusterName": "cluster-01" }),
                json!({ "name": "cluster-02", "server": "https://c2.example:6443", "clusterName": "cluster-02" }),
            ]
        );
    }

    /// Argo CD's page: the decided clusters "must be predefined in Argo CD"; others generate nothing.
    #[test]
    fn a_decision_naming_no_known_cluster_is_skipped_and_the_in_cluster_is_known() {
        let spec = generator(json!({ "configMapRef": "my-configmap", "name": "quak" }));
        let resource = quak(json!({}), &["cluster-01", "in-cluster", ""]);
        let sets = generate(&spec, &ducks(), std::slice::from_ref(&resource), &[], true, TemplateMode::Fast)
            .unwrap();
        assert_eq!(names(&sets), ["in-cluster"]);
        assert_eq!(sets[0].get("server"), Some(IN_CLUSTER_SERVER));
        let disabled = generate(&spec, &ducks(), &[resource], &[], false, TemplateMode::Fast).unwrap();
        assert!(disabled.is_empty(), "a disabled in-cluster is not a destination");
    }

    #[test]
    fn a_secret_for_the_local_server_stands_for_the_in_cluster() {
        let spec = generator(json!({ "configMapRef": "my-configmap", "name": "quak" }));
        let local = cluster("local", "https://kubernetes.default.svc");
        let sets = generate(
            &spec,
            &ducks(),
            &[quak(json!({}), &["in-cluster", "local"])],
            &[local],
            true,
            TemplateMode::Fast,
        )
        .unwrap();
        assert_eq!(names(&sets), ["local"]);
    }

    /// Argo CD's page: "Choose either name of the resource or labelSelector"; `duck: spotted`.
    #[test]
    fn a_label_selector_picks_the_resources_by_their_labels() {
        let clusters = [cluster("a", "https://a"), cluster("b", "https://b")];
        let mut spotted = quak(json!({ "duck": "spotted" }), &["a"]);
        spotted["metadata"]["name"] = json!("spotted");
        let mut mallard = quak(json!({ "duck": "mallard" }), &["b"]);
        mallard["metadata"]["name"] = json!("mallard");
        let by_label = generator(json!({ "configMapRef": "my-configmap",
                                          "labelSelector": { "matchLabels": { "duck": "spotted" } } }));
        let resources = [spotted, mallard];
        let sets = generate(&by_label, &ducks(), &resources, &clusters, true, TemplateMode::Fast).unwrap();
        assert_eq!(names(&sets), ["a"]);
        let by_expression = generator(json!({ "configMapRef": "my-configmap", "labelSelector": {
            "matchExpressions": [{ "key": "duck", "operator": "In", "values": ["spotted", "mallard"] }] } }));
        let sets =
            generate(&by_expression, &ducks(), &resources, &clusters, true, TemplateMode::Fast).unwrap();
        assert_eq!(names(&sets), ["a", "b"]);
    }

    #[test]
    fn name_and_label_selector_are_one_or_the_other() {
        for spec in [
            json!({ "configMapRef": "cm" }),
            json!({ "configMapRef": "cm", "labelSelector": {} }),
            json!({ "configMapRef": "cm", "name": "quak", "labelSelector": { "matchLabels": { "a": "b" } } }),
        ] {
            let err = Generator::parse(&spec).unwrap_err().to_string();
            assert!(err.contains("choose either the resource's name or a labelSelector"), "{spec}: {err}");
        }
        let err = Generator::parse(&json!({ "name": "quak" })).unwrap_err().to_string();
        assert!(err.starts_with("clusterDecisionResource generator: configMapRef:"), "{err}");
        let bad = json!({ "configMapRef": "cm",
                          "labelSelector": { "matchExpressions": [{ "key": "a", "operator": "Gt" }] } });
        let err = Generator::parse(&bad).unwrap_err().to_string();
        assert!(err.contains("labelSelector.matchExpressions[0].operator"), "{err}");
    }

    /// Argo CD: no resource found is an error ("no clusterDecisionResources found"), never an empty set
    /// that would delete every Application.
    #[test]
    fn no_picked_resource_is_an_error_naming_it() {
        let spec = generator(json!({ "configMapRef": "my-configmap", "name": "absent" }));
        let err = generate(&spec, &ducks(), &[quak(json!({}), &[])], &[], true, TemplateMode::Fast)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no ducks named \"absent\" in mallard.io/v1beta1"), "{err}");
    }

    /// Argo CD's page: "The Default Cluster list key is `clusters`"; a resource without a status has no
    /// decision yet.
    #[test]
    fn the_status_list_key_defaults_to_clusters_and_a_resource_without_status_gives_nothing() {
        let duck = DuckType::parse(
            "cm",
            &data(&[("apiVersion", "mallard.io/v1beta1"), ("kind", "Duck"), ("matchKey", "name")]),
        )
        .unwrap();
        assert_eq!(duck.status_list_key, "clusters");
        let spec =
            generator(json!({ "configMapRef": "cm", "labelSelector": { "matchLabels": { "d": "1" } } }));
        let decided = json!({ "metadata": { "name": "x", "labels": { "d": "1" } },
                              "status": { "clusters": [{ "name": "in-cluster" }] } });
        let pending = json!({ "metadata": { "name": "y", "labels": { "d": "1" } } });
        let other_list =
            json!({ "metadata": { "name": "z", "labels": { "d": "1" } }, "status": { "decisions": [] } });
        let sets =
            generate(&spec, &duck, &[decided, pending, other_list], &[], true, TemplateMode::Fast).unwrap();
        assert_eq!(names(&sets), ["in-cluster"]);
    }

    /// Argo CD copies `values` as written; goTemplate nests them, and the entry's keys stay top-level.
    #[test]
    fn values_are_copied_as_written_and_nested_with_go_template() {
        let spec = generator(json!({ "configMapRef": "my-configmap", "name": "quak",
                                     "values": { "revision": "stable", "raw": "{{name}}" } }));
        let mut resource = quak(json!({}), &[]);
        resource["status"]["decisions"] = json!([{ "clusterName": "in-cluster", "reason": "balanced" }]);
        let fast = generate(&spec, &ducks(), &[resource.clone()], &[], true, TemplateMode::Fast).unwrap();
        assert_eq!(fast[0].get("values.revision"), Some("stable"));
        assert_eq!(fast[0].get("values.raw"), Some("{{name}}"));
        assert_eq!(fast[0].get("reason"), Some("balanced"));
        let go = generate(&spec, &ducks(), &[resource], &[], true, TemplateMode::Go).unwrap();
        assert_eq!(
            go[0].to_value(),
            json!({ "name": "in-cluster", "server": IN_CLUSTER_SERVER, "clusterName": "in-cluster",
                    "reason": "balanced", "values": { "raw": "{{name}}", "revision": "stable" } })
        );
    }

    #[test]
    fn an_entry_key_overrides_name_and_server() {
        let spec = generator(json!({ "configMapRef": "my-configmap", "name": "quak" }));
        let mut resource = quak(json!({}), &[]);
        resource["status"]["decisions"] = json!([{ "clusterName": "in-cluster", "name": "custom" }]);
        let sets = generate(&spec, &ducks(), &[resource], &[], true, TemplateMode::Fast).unwrap();
        assert_eq!(sets[0].get("name"), Some("custom"));
    }

    #[test]
    fn hostile_status_shapes_are_errors_naming_the_field() {
        let spec = generator(json!({ "configMapRef": "my-configmap", "name": "quak" }));
        let with = |decisions: Value| {
            let mut resource = quak(json!({}), &[]);
            resource["status"]["decisions"] = decisions;
            generate(&spec, &ducks(), &[resource], &[], true, TemplateMode::Fast).unwrap_err().to_string()
        };
        assert!(with(json!("in-cluster")).contains("ducks quak: status.decisions: must be a list"));
        assert!(with(json!(["in-cluster"])).contains("status.decisions[0]: must be an object"));
        let err = with(json!([{ "clusterName": "in-cluster", "weight": 3 }]));
        assert!(err.contains("status.decisions[0].weight: must be a string"), "{err}");
        let err = with(json!([{ "clusterName": { "name": "in-cluster" } }]));
        assert!(err.contains("status.decisions[0].clusterName: must be a string"), "{err}");
    }

    #[test]
    fn the_config_map_must_name_a_group_version_a_kind_and_a_match_key() {
        let complete = [("apiVersion", "mallard.io/v1beta1"), ("kind", "ducks"), ("matchKey", "clusterName")];
        let without = |key: &str, value: &str| {
            let mut d = data(&complete);
            d.insert(key.to_string(), value.to_string());
            DuckType::parse("my-configmap", &d).unwrap_err().to_string()
        };
        assert!(without("apiVersion", "v1").contains("configMapRef (my-configmap).apiVersion"));
        assert!(without("apiVersion", "/v1").contains("is not group/version"));
        assert!(without("kind", "").contains("kind is required"));
        assert!(without("matchKey", " ").contains("configMapRef (my-configmap).matchKey"));
        for secret in ["Secret", "secrets"] {
            assert!(without("kind", secret).contains("Secrets are never read"), "{secret}");
        }
    }

    #[test]
    fn more_decisions_than_the_cap_is_a_clear_error() {
        let spec = generator(json!({ "configMapRef": "my-configmap", "name": "quak" }));
        let many: Vec<&str> = vec!["in-cluster"; MAX_PARAM_SETS + 1];
        let err =
            generate(&spec, &ducks(), &[quak(json!({}), &many)], &[], true, TemplateMode::Fast).unwrap_err();
        assert_eq!(err, Error::TooManyParamSets { generator: GENERATOR, max: MAX_PARAM_SETS });
    }
}
