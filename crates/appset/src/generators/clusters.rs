//! The clusters generator: one parameter set per cluster Argo CD knows, the cluster Secrets (label
//! `argocd.argoproj.io/secret-type: cluster`) and the local in-cluster, narrowed by the generator's
//! `selector` over the Secrets' labels.
//!
//! Parameters, as Argo CD's cluster generator makes them: `name`, `nameNormalized` (`name` as
//! [`sanitize_name`] makes it: `my_cluster` → `my-cluster`), `server`, `project` (empty without one),
//! and with fasttemplate `metadata.labels.<key>` and `metadata.annotations.<key>` for each label and
//! annotation of the Secret; with goTemplate one object `metadata` holding `labels` and `annotations`
//! (each only when the Secret has some). `values` are added as `values.<key>`, templated with those
//! parameters.
//!
//! The local cluster (`in-cluster`, `https://kubernetes.default.svc`) has no Secret, hence no labels:
//! it is generated only when the selector has neither `matchLabels` nor `matchExpressions`, and with
//! no `metadata` parameter. A cluster Secret for its server replaces it, and can be selected by its
//! labels like any other. Sets come in Argo CD's order: the local cluster first, then the Secrets
//! (by cluster name, where Argo CD's order is a Go map's).
//!
//! Two departures, both where Argo CD's result could not deploy or is unspecified:
//! - when argocd-cm's `cluster.inClusterEnabled` is `"false"` the in-cluster is not generated, nor a
//!   Secret for its server (as Argo CD 2.x listed clusters; the destination is refused anyway);
//! - `flatList: true` is refused with an error rather than ignored: it is not implemented yet.
//!
//! ```
//! use berth_api::applicationset::ClusterGenerator;
//! use berth_appset::generators::clusters::{self, Cluster};
//! use berth_appset::params::TemplateMode;
//! let generator: ClusterGenerator = serde_json::from_value(serde_json::json!({
//!     "selector": { "matchLabels": { "env": "prod" } },
//!     "values": { "overlay": "apps/web/overlays/{{metadata.labels.env}}" }
//! })).unwrap();
//! let cluster = |name: &str, env: &str| Cluster {
//!     name: name.to_string(),
//!     server: format!("https://{name}.example:6443"),
//!     labels: [("env".to_string(), env.to_string())].into(),
//!     ..Cluster::default()
//! };
//! let secrets = [cluster("prod-eu", "prod"), cluster("staging", "staging")];
//! let sets = clusters::generate(&generator, &secrets, true, TemplateMode::Fast).unwrap();
//! assert_eq!(sets.len(), 1, "the staging cluster and the in-cluster are not selected");
//! assert_eq!(sets[0].get("server"), Some("https://prod-eu.example:6443"));
//! assert_eq!(sets[0].get("values.overlay"), Some("apps/web/overlays/prod"));
//! ```

use berth_api::applicationset::{ClusterGenerator, LeafGenerators};
use berth_api::destination::{IN_CLUSTER_NAME, IN_CLUSTER_SERVER};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

use super::check_count;
use super::selector::Selector;
use crate::Error;
use crate::params::{self, ParamSet, TemplateMode, sanitize_name};

const GENERATOR: &str = "clusters";

/// One cluster Secret as the generator reads it: the `name`, `server` and `project` keys of its data,
/// its labels and its annotations.
///
/// The caller fills it from the Secrets it parsed (berth-controller's `ClusterSecret` has these
/// fields under the same names); berth-appset takes this struct rather than that one so that it does
/// not depend on the controller, which depends on it. Argo CD reads these keys straight from the
/// Secret, so a Secret whose `config` is unusable still yields its parameters: the Applications
/// generated for it then report the connection error.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cluster {
    /// The `name` key; may be empty.
    pub name: String,
    /// The `server` key: the API server URL.
    pub server: String,
    /// The `project` key, when the cluster is scoped to an AppProject.
    pub project: Option<String>,
    /// The Secret's labels, `argocd.argoproj.io/secret-type: cluster` included: the selector sees them
    /// all.
    pub labels: BTreeMap<String, String>,
    /// The Secret's annotations.
    pub annotations: BTreeMap<String, String>,
}

impl Cluster {
    fn is_in_cluster(&self) -> bool {
        self.server.trim_end_matches('/') == IN_CLUSTER_SERVER
    }
}

/// The parameter sets of `generator` over the cluster Secrets `clusters` (in the order the API server
/// lists them: of two Secrets with the same cluster name the later wins, as in Argo CD), with the
/// local in-cluster unless `in_cluster_enabled` is false.
pub fn generate(
    generator: &ClusterGenerator,
    clusters: &[Cluster],
    in_cluster_enabled: bool,
    mode: TemplateMode,
) -> Result<Vec<ParamSet>, Error> {
    if generator.flat_list == Some(true) {
        return Err(Error::invalid(
            GENERATOR,
            "flatList",
            "flatList is not supported yet; remove it to generate one Application per cluster",
        ));
    }
    let selector = selector_of(generator)?;
    let mut by_name: BTreeMap<&str, &Cluster> = BTreeMap::new();
    for cluster in clusters {
        if !in_cluster_enabled && cluster.is_in_cluster() {
            continue;
        }
        if selector.as_ref().is_none_or(|s| s.matches(&ParamSet::Flat(cluster.labels.clone()))) {
            by_name.insert(cluster.name.as_str(), cluster);
        }
    }
    // Argo CD: the local cluster has no Secret, so no labels any selector could match.
    let local = in_cluster_enabled
        && !has_requirements(generator)
        && !by_name.values().any(|cluster| cluster.is_in_cluster());
    check_count(GENERATOR, by_name.len() + usize::from(local))?;

    let mut sets = Vec::with_capacity(by_name.len() + usize::from(local));
    if local {
        let mut set = ParamSet::empty(mode);
        set.insert("name", IN_CLUSTER_NAME);
        set.insert("nameNormalized", IN_CLUSTER_NAME);
        set.insert("server", IN_CLUSTER_SERVER);
        set.insert("project", "");
        params::append_values(&mut set, &generator.values, GENERATOR)?;
        sets.push(set);
    }
    for cluster in by_name.values() {
        let mut set = params_of(cluster, mode);
        params::append_values(&mut set, &generator.values, GENERATOR)?;
        sets.push(set);
    }
    Ok(sets)
}

/// The generator's own `selector` (over the Secrets' labels; not the post-selector beside it), its
/// errors naming `clusters.selector…`.
fn selector_of(generator: &ClusterGenerator) -> Result<Option<Selector>, Error> {
    let leaf = LeafGenerators { selector: generator.selector.clone(), ..LeafGenerators::default() };
    Selector::of(&leaf, GENERATOR).map_err(|error| match error {
        Error::InvalidGenerator { generator, field, message } => {
            Error::InvalidGenerator { generator, field: format!("clusters.{field}"), message }
        }
        other => other,
    })
}

/// Whether the selector has a `matchLabels` entry or a `matchExpressions` item: `selector: {}` has
/// none, and keeps the local cluster.
fn has_requirements(generator: &ClusterGenerator) -> bool {
    generator.selector.as_ref().is_some_and(|selector| {
        selector.match_labels.as_ref().is_some_and(|labels| !labels.is_empty())
            || selector.match_expressions.as_ref().is_some_and(|expressions| !expressions.is_empty())
    })
}

fn params_of(cluster: &Cluster, mode: TemplateMode) -> ParamSet {
    let mut set = ParamSet::empty(mode);
    set.insert("name", cluster.name.as_str());
    set.insert("nameNormalized", sanitize_name(&cluster.name));
    set.insert("server", cluster.server.as_str());
    set.insert("project", cluster.project.clone().unwrap_or_default());
    match &mut set {
        ParamSet::Flat(flat) => {
            for (key, value) in &cluster.annotations {
                flat.insert(format!("metadata.annotations.{key}"), value.clone());
            }
            for (key, value) in &cluster.labels {
                flat.insert(format!("metadata.labels.{key}"), value.clone());
            }
        }
        ParamSet::Nested(nested) => {
            let mut metadata = Map::new();
            if !cluster.annotations.is_empty() {
                metadata.insert("annotations".to_string(), json!(cluster.annotations));
            }
            if !cluster.labels.is_empty() {
                metadata.insert("labels".to_string(), json!(cluster.labels));
            }
            nested.insert("metadata".to_string(), Value::Object(metadata));
        }
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MAX_PARAM_SETS;
    use crate::template;
    use berth_api::applicationset::ApplicationSetTemplate;

    const SECRET_TYPE: (&str, &str) = ("argocd.argoproj.io/secret-type", "cluster");

    fn generator(value: Value) -> ClusterGenerator {
        serde_json::from_value(value).expect("a clusters generator")
    }

    /// A cluster Secret named `name` at `server`, with `labels` beside the secret-type label.
    fn secret(name: &str, server: &str, labels: &[(&str, &str)]) -> Cluster {
        Cluster {
            name: name.to_string(),
            server: server.to_string(),
            labels: [SECRET_TYPE].iter().chain(labels).map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ..Cluster::default()
        }
    }

    fn generated(generator: &ClusterGenerator, clusters: &[Cluster]) -> Vec<ParamSet> {
        generate(generator, clusters, true, TemplateMode::Fast).expect("parameter sets")
    }

    fn names(sets: &[ParamSet]) -> Vec<&str> {
        sets.iter().map(|set| set.get("name").expect("a name")).collect()
    }

    /// Argo CD's "Generators Cluster" page: `clusters: {}` targets every cluster, local and remote.
    #[test]
    fn without_a_selector_every_secret_and_the_in_cluster_give_one_set_each() {
        let clusters = [
            secret("staging", "https://staging.example:6443", &[]),
            secret("prod", "https://prod.example:6443", &[]),
        ];
        let sets = generated(&generator(json!({})), &clusters);
        assert_eq!(names(&sets), ["in-cluster", "prod", "staging"]);
        let local = sets[0].to_value();
        assert_eq!(
            local,
            json!({ "name": "in-cluster", "nameNormalized": "in-cluster",
                    "server": "https://kubernetes.default.svc", "project": "" })
        );
        assert_eq!(sets[1].get("server"), Some("https://prod.example:6443"));
    }

    /// Argo CD's "Generators Cluster" page: the parameters listed for each cluster, and `nameNormalized`
    /// turning `my_cluster` into a valid resource name.
    #[test]
    fn a_secret_gives_its_name_normalized_name_server_project_labels_and_annotations() {
        let mut cluster = secret("My_Cluster", "https://1.2.3.4", &[("env", "staging")]);
        cluster.project = Some("platform".to_string());
        cluster.annotations = [("owner".to_string(), "team-a@example.com".to_string())].into();
        let sets = generated(&generator(json!({})), &[cluster]);
        assert_eq!(
            sets[1].to_value(),
            json!({
                "name": "My_Cluster",
                "nameNormalized": "my-cluster",
                "server": "https://1.2.3.4",
                "project": "platform",
                "metadata.labels.argocd.argoproj.io/secret-type": "cluster",
                "metadata.labels.env": "staging",
                "metadata.annotations.owner": "team-a@example.com",
            })
        );
    }

    #[test]
    fn go_template_parameters_nest_labels_and_annotations_under_metadata() {
        let mut annotated = secret("prod", "https://prod.example", &[("env", "prod")]);
        annotated.annotations = [("my-custom-annotation".to_string(), "v1.2".to_string())].into();
        let bare =
            Cluster { name: "bare".to_string(), server: "https://bare".to_string(), ..Cluster::default() };
        let sets = generate(&generator(json!({})), &[annotated, bare], true, TemplateMode::Go).unwrap();
        assert_eq!(sets[0].to_value()["name"], "in-cluster");
        assert!(sets[0].to_value().get("metadata").is_none(), "the local cluster has no Secret metadata");
        assert_eq!(
            sets[1].to_value()["metadata"],
            json!({}),
            "a Secret without labels has an empty metadata"
        );
        assert_eq!(
            sets[2].to_value(),
            json!({
                "name": "prod", "nameNormalized": "prod", "server": "https://prod.example", "project": "",
                "metadata": {
                    "labels": { "argocd.argoproj.io/secret-type": "cluster", "env": "prod" },
                    "annotations": { "my-custom-annotation": "v1.2" }
                }
            })
        );
    }

    /// Argo CD's "Generators Cluster" page, "Label selector": `staging: "true"` matches the Secret
    /// carrying that label, and the local cluster (no Secret, no labels) is left out.
    #[test]
    fn match_labels_select_secrets_by_label_and_leave_the_in_cluster_out() {
        let clusters = [
            secret("staging-1", "https://staging-1.example", &[("staging", "true")]),
            secret("prod-1", "https://prod-1.example", &[("staging", "false")]),
            secret("dev-1", "https://dev-1.example", &[]),
        ];
        let sets =
            generated(&generator(json!({ "selector": { "matchLabels": { "staging": "true" } } })), &clusters);
        assert_eq!(names(&sets), ["staging-1"]);
    }

    /// Argo CD's "Generators Cluster" page: the selector also takes set-based `matchExpressions`.
    #[test]
    fn match_expressions_select_secrets_with_kubernetes_set_based_requirements() {
        let clusters = [
            secret("a", "https://a", &[("staging", "true")]),
            secret("b", "https://b", &[("staging", "false")]),
            secret("c", "https://c", &[]),
        ];
        let select = |operator: &str, values: &[&str]| {
            let mut expression = json!({ "key": "staging", "operator": operator });
            if !values.is_empty() {
                expression["values"] = json!(values);
            }
            let sets =
                generated(&generator(json!({ "selector": { "matchExpressions": [expression] } })), &clusters);
            names(&sets).into_iter().map(String::from).collect::<Vec<_>>()
        };
        assert_eq!(select("In", &["true"]), ["a"]);
        assert_eq!(select("NotIn", &["true"]), ["b", "c"], "the in-cluster stays out even of NotIn");
        assert_eq!(select("Exists", &[]), ["a", "b"]);
        assert_eq!(select("DoesNotExist", &[]), ["c"], "the in-cluster stays out even of DoesNotExist");
    }

    /// Argo CD's "Generators Cluster" page, "Deploying to the local cluster": selecting on the
    /// secret-type label targets only the remote clusters.
    #[test]
    fn selecting_on_the_secret_type_label_targets_only_remote_clusters() {
        let clusters = [secret("remote", "https://remote.example", &[])];
        let by_type = generator(
            json!({ "selector": { "matchLabels": { "argocd.argoproj.io/secret-type": "cluster" } } }),
        );
        assert_eq!(names(&generated(&by_type, &clusters)), ["remote"]);
    }

    #[test]
    fn an_empty_selector_still_includes_the_in_cluster() {
        for selector in [json!({}), json!({ "matchLabels": {} }), json!({ "matchExpressions": [] })] {
            let sets = generated(&generator(json!({ "selector": selector })), &[]);
            assert_eq!(names(&sets), ["in-cluster"], "selector {selector}");
        }
    }

    /// Argo CD's "Generators Cluster" page: the `in-cluster2` Secret for `https://kubernetes.default.svc`
    /// stands for the local cluster, and with labels it can be selected.
    #[test]
    fn a_secret_for_the_in_cluster_server_replaces_the_local_cluster() {
        let local = secret("in-cluster2", "https://kubernetes.default.svc", &[("env", "dev")]);
        let remote = secret("remote", "https://remote.example", &[("env", "prod")]);
        let all = generated(&generator(json!({})), &[local.clone(), remote.clone()]);
        assert_eq!(names(&all), ["in-cluster2", "remote"]);
        assert_eq!(all[0].get("server"), Some("https://kubernetes.default.svc"));
        assert_eq!(all[0].get("metadata.labels.env"), Some("dev"));
        let dev = generated(
            &generator(json!({ "selector": { "matchLabels": { "env": "dev" } } })),
            &[local, remote],
        );
        assert_eq!(names(&dev), ["in-cluster2"]);
    }

    #[test]
    fn a_disabled_in_cluster_is_not_generated_even_from_a_secret() {
        let local = secret("local", "https://kubernetes.default.svc/", &[]);
        let remote = secret("remote", "https://remote.example", &[]);
        let sets = generate(&generator(json!({})), &[local, remote], false, TemplateMode::Fast).unwrap();
        assert_eq!(names(&sets), ["remote"]);
    }

    /// Argo CD's "Generators Cluster" page, "Pass additional key-value pairs via values": staging
    /// clusters get `revision: HEAD`, production ones `stable`, and values may use the cluster's
    /// parameters (here in fasttemplate syntax).
    #[test]
    fn values_are_added_per_generator_and_templated_with_the_cluster_parameters() {
        let mut staging = secret("staging-1", "https://staging-1.example", &[("type", "staging")]);
        staging.annotations = [("my-custom-annotation".to_string(), "feature-x".to_string())].into();
        let production = secret("prod-1", "https://prod-1.example", &[("type", "production")]);
        let clusters = [staging, production];
        let staging_set = generated(
            &generator(json!({
                "selector": { "matchLabels": { "type": "staging" } },
                "values": { "revision": "{{metadata.annotations.my-custom-annotation}}", "clusterName": "{{name}}" }
            })),
            &clusters,
        );
        let production_set = generated(
            &generator(json!({
                "selector": { "matchLabels": { "type": "production" } },
                "values": { "revision": "stable", "clusterName": "{{name}}" }
            })),
            &clusters,
        );
        assert_eq!(staging_set.len(), 1);
        assert_eq!(staging_set[0].get("values.revision"), Some("feature-x"));
        assert_eq!(staging_set[0].get("values.clusterName"), Some("staging-1"));
        assert_eq!(production_set[0].get("values.revision"), Some("stable"));
        assert_eq!(production_set[0].get("values.clusterName"), Some("prod-1"));
    }

    #[test]
    fn the_in_cluster_values_see_its_name_and_server_only() {
        let values =
            json!({ "values": { "target": "{{name}}@{{server}}", "env": "{{metadata.labels.env}}" } });
        let sets = generated(&generator(values), &[]);
        assert_eq!(sets[0].get("values.target"), Some("in-cluster@https://kubernetes.default.svc"));
        assert_eq!(
            sets[0].get("values.env"),
            Some("{{metadata.labels.env}}"),
            "unknown tags stay as written"
        );
    }

    #[test]
    fn of_two_secrets_with_one_cluster_name_the_later_one_wins() {
        let first = secret("prod", "https://old.example", &[]);
        let second = secret("prod", "https://new.example", &[]);
        let sets = generated(
            &generator(json!({ "selector": { "matchLabels": { SECRET_TYPE.0: "cluster" } } })),
            &[first, second],
        );
        assert_eq!(sets.len(), 1);
        assert_eq!(sets[0].get("server"), Some("https://new.example"));
    }

    #[test]
    fn a_bad_selector_names_the_clusters_selector_field() {
        let bad = generator(
            json!({ "selector": { "matchExpressions": [{ "key": "env", "operator": "Gt", "values": ["1"] }] } }),
        );
        let err = generate(&bad, &[], true, TemplateMode::Fast).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("clusters generator: clusters.selector.matchExpressions[0].operator:"),
            "{err}"
        );
    }

    #[test]
    fn flat_list_is_refused_rather_than_ignored() {
        let err = generate(&generator(json!({ "flatList": true })), &[], true, TemplateMode::Go).unwrap_err();
        assert!(err.to_string().starts_with("clusters generator: flatList:"), "{err}");
    }

    #[test]
    fn more_clusters_than_the_cap_is_a_clear_error() {
        let clusters: Vec<Cluster> =
            (0..MAX_PARAM_SETS).map(|i| secret(&format!("c{i}"), &format!("https://c{i}"), &[])).collect();
        let err = generate(&generator(json!({})), &clusters, true, TemplateMode::Fast).unwrap_err();
        assert_eq!(err, Error::TooManyParamSets { generator: "clusters", max: MAX_PARAM_SETS });
        let selected = generator(json!({ "selector": { "matchLabels": { SECRET_TYPE.0: "cluster" } } }));
        assert_eq!(generate(&selected, &clusters, true, TemplateMode::Fast).unwrap().len(), MAX_PARAM_SETS);
    }

    /// The seed's estate: prod, staging and developers' clusters, one ApplicationSet per environment
    /// selecting its clusters by their `env` label and deploying that environment's overlay.
    #[test]
    fn the_seed_estate_selects_the_prod_or_the_staging_clusters_by_env_label() {
        let clusters = [
            secret("prod", "https://prod.k8s", &[("env", "prod")]),
            secret("staging", "https://staging.k8s", &[("env", "staging")]),
            secret("dev-alice", "https://dev-alice.k8s", &[("env", "dev")]),
            secret("dev-bob", "https://dev-bob.k8s", &[("env", "dev")]),
        ];
        let template: ApplicationSetTemplate = serde_json::from_value(json!({
            "metadata": { "name": "web-{{name}}" },
            "spec": {
                "project": "default",
                "source": { "repoURL": "https://github.com/myorg/manifests", "targetRevision": "main",
                            "path": "apps/web/overlays/{{metadata.labels.env}}" },
                "destination": { "server": "{{server}}", "namespace": "web" }
            }
        }))
        .unwrap();
        for env in ["prod", "staging"] {
            let per_env = generator(json!({ "selector": { "matchLabels": { "env": env } } }));
            let apps: Vec<_> = generated(&per_env, &clusters)
                .iter()
                .map(|params| template::application(&template, params, None).expect("an Application"))
                .map(|app| {
                    (
                        app.metadata.name.unwrap_or_default(),
                        app.spec.destination.server.unwrap_or_default(),
                        app.spec.source.and_then(|s| s.path).unwrap_or_default(),
                    )
                })
                .collect();
            assert_eq!(
                apps,
                [(format!("web-{env}"), format!("https://{env}.k8s"), format!("apps/web/overlays/{env}"))]
            );
        }
    }
}
