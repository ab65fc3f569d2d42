//! The I/O of the `clusterDecisionResource` generator: the ConfigMap its `configMapRef` names and the
//! resources of the type that ConfigMap says, both in the controller's namespace (as Argo CD reads
//! them), read through a dynamic API; berth-appset's [`cluster_decision`] then makes the parameter sets.
//!
//! Every field is hostile: the ConfigMap's name and the group and version are checked before they
//! become URL segments; the type must be found by discovery at exactly that group/version (as a plural
//! or a kind), be namespaced and listable, and is never a Secret; the listing stops at
//! [`MAX_RESOURCES`] objects; the whole read has [`READ_TIMEOUT`].
//!
//! [`cluster_decision`]: berth_appset::generators::cluster_decision

use berth_api::names::check_subdomain;
use berth_appset::Error;
use berth_appset::generators::cluster_decision::{self, DuckType, Generator};
use berth_appset::generators::clusters::Cluster;
use berth_appset::params::{ParamSet, TemplateMode};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::core::GroupVersion;
use kube::discovery::{Scope, verbs};
use serde_json::Value;
use std::time::Duration;

const GENERATOR: &str = "clusterDecisionResource";
/// The most resources of the ConfigMap's type one generation reads.
pub const MAX_RESOURCES: usize = 2_000;
/// Objects asked per page of the listing.
const PAGE_SIZE: u32 = 500;
/// The longest one generator's reads may take in all.
pub const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// The parameter sets of the `clusterDecisionResource` generator `spec`, reading its ConfigMap and
/// resources in `namespace` (the controller's), over the cluster Secrets `clusters` and the local
/// cluster unless `in_cluster_enabled` is false.
pub async fn decision_params(
    client: &kube::Client,
    namespace: &str,
    spec: &Value,
    clusters: &[Cluster],
    in_cluster_enabled: bool,
    mode: TemplateMode,
) -> Result<Vec<ParamSet>, Error> {
    let generator = Generator::parse(spec)?;
    let read = async {
        let duck = duck_type(client, namespace, &generator.config_map_ref).await?;
        let resource = discover(client, &duck).await?;
        let objects = list(client, namespace, &duck, &resource).await?;
        Ok::<_, Error>((duck, objects))
    };
    let (duck, objects) = tokio::time::timeout(READ_TIMEOUT, read).await.map_err(|_| {
        Error::invalid(
            GENERATOR,
            "configMapRef",
            format!("the API server did not answer within {READ_TIMEOUT:?}"),
        )
    })??;
    cluster_decision::generate(&generator, &duck, &objects, clusters, in_cluster_enabled, mode)
}

/// The ConfigMap `name` of `namespace`, read and checked.
async fn duck_type(client: &kube::Client, namespace: &str, name: &str) -> Result<DuckType, Error> {
    if let Err(e) = check_subdomain(name) {
        return Err(Error::invalid(GENERATOR, "configMapRef", format!("not a ConfigMap name: {e}")));
    }
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let config_map = maps
        .get_opt(name)
        .await
        .map_err(|e| {
            Error::invalid(
                GENERATOR,
                "configMapRef",
                format!("reading the ConfigMap {namespace}/{name}: {e}"),
            )
        })?
        .ok_or_else(|| {
            Error::invalid(
                GENERATOR,
                "configMapRef",
                format!("the ConfigMap {namespace}/{name} does not exist"),
            )
        })?;
    DuckType::parse(name, &config_map.data.unwrap_or_default())
}

/// The API resource `duck` names, found by discovery at its exact group/version: namespaced, listable,
/// and not a Secret.
async fn discover(client: &kube::Client, duck: &DuckType) -> Result<ApiResource, Error> {
    let api_version = format!("{}/{}", duck.group, duck.version);
    let field = "configMapRef.apiVersion";
    if check_subdomain(&duck.group).is_err()
        || !duck.version.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        return Err(Error::invalid(
            GENERATOR,
            field,
            format!("{api_version:?} is not a valid group/version"),
        ));
    }
    let group =
        kube::discovery::pinned_group(client, &GroupVersion::gv(&duck.group, &duck.version)).await.map_err(
            |e| Error::invalid(GENERATOR, field, format!("{api_version} could not be discovered: {e}")),
        )?;
    let found = group
        .versioned_resources(&duck.version)
        .into_iter()
        .find(|(resource, _)| resource.plural == duck.kind || resource.kind == duck.kind);
    let Some((resource, capabilities)) = found else {
        return Err(Error::invalid(
            GENERATOR,
            "configMapRef.kind",
            format!("{api_version} serves no resource {:?} (is its CRD installed?)", duck.kind),
        ));
    };
    if resource.kind == "Secret" || resource.plural == "secrets" {
        return Err(Error::invalid(
            GENERATOR,
            "configMapRef.kind",
            "Secrets are never read by this generator",
        ));
    }
    if capabilities.scope != Scope::Namespaced || !capabilities.supports_operation(verbs::LIST) {
        return Err(Error::invalid(
            GENERATOR,
            "configMapRef.kind",
            format!("{} of {api_version} is not a namespaced resource that can be listed", resource.plural),
        ));
    }
    Ok(resource)
}

/// Every object of `resource` in `namespace`, as JSON, at most [`MAX_RESOURCES`].
async fn list(
    client: &kube::Client,
    namespace: &str,
    duck: &DuckType,
    resource: &ApiResource,
) -> Result<Vec<Value>, Error> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, resource);
    let mut objects = Vec::new();
    let mut params = ListParams::default().limit(PAGE_SIZE);
    loop {
        let page = api.list(&params).await.map_err(|e| {
            Error::invalid(
                GENERATOR,
                "configMapRef.kind",
                format!("listing {} of {}/{} in {namespace}: {e}", resource.plural, duck.group, duck.version),
            )
        })?;
        for object in page.items {
            objects.push(serde_json::to_value(object).unwrap_or_default());
        }
        if objects.len() > MAX_RESOURCES {
            return Err(Error::invalid(
                GENERATOR,
                "configMapRef.kind",
                format!(
                    "more than {MAX_RESOURCES} {} in {namespace}; refusing to read them all",
                    resource.plural
                ),
            ));
        }
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(objects),
        }
    }
}
