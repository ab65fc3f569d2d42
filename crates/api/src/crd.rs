//! The three CustomResourceDefinitions, generated from the Rust types (never edited by hand).

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceColumnDefinition, CustomResourceDefinition, CustomResourceDefinitionNames,
    CustomResourceDefinitionSpec, CustomResourceDefinitionVersion, CustomResourceSubresourceStatus,
    CustomResourceSubresources, CustomResourceValidation, JSONSchemaProps,
};
use kube::core::ObjectMeta;
use schemars::JsonSchema;
use serde_json::json;

use crate::{AppProject, Application, ApplicationSet, GROUP, VERSION};

/// Application, AppProject and ApplicationSet, in that order.
pub fn all() -> Vec<CustomResourceDefinition> {
    vec![application(), app_project(), application_set()]
}

/// The Application CRD. Like Argo CD's, it has no status subresource: the controller writes status and
/// `operation` on the object itself.
pub fn application() -> CustomResourceDefinition {
    build::<Application>(Names {
        kind: "Application",
        plural: "applications",
        singular: "application",
        short: &["app", "apps"],
        status_subresource: false,
        columns: vec![
            column("Sync Status", ".status.sync.status", 0),
            column("Health Status", ".status.health.status", 0),
            column("Revision", ".status.sync.revision", 10),
            column("Project", ".spec.project", 10),
        ],
    })
}

pub fn app_project() -> CustomResourceDefinition {
    build::<AppProject>(Names {
        kind: "AppProject",
        plural: "appprojects",
        singular: "appproject",
        short: &["appproj", "appprojs"],
        status_subresource: false,
        columns: vec![],
    })
}

pub fn application_set() -> CustomResourceDefinition {
    build::<ApplicationSet>(Names {
        kind: "ApplicationSet",
        plural: "applicationsets",
        singular: "applicationset",
        short: &["appset", "appsets"],
        status_subresource: true,
        columns: vec![],
    })
}

struct Names {
    kind: &'static str,
    plural: &'static str,
    singular: &'static str,
    short: &'static [&'static str],
    status_subresource: bool,
    columns: Vec<CustomResourceColumnDefinition>,
}

fn column(name: &str, path: &str, priority: i32) -> CustomResourceColumnDefinition {
    CustomResourceColumnDefinition {
        name: name.into(),
        type_: "string".into(),
        json_path: path.into(),
        priority: (priority != 0).then_some(priority),
        ..Default::default()
    }
}

fn build<K: JsonSchema>(names: Names) -> CustomResourceDefinition {
    let mut schema = serde_json::to_value(crate::schema::structural_generator().into_root_schema_for::<K>())
        .expect("a generated schema is JSON");
    let root = schema.as_object_mut().expect("a generated root schema is an object");
    root.remove("$schema");
    root.remove("title");
    let properties = root
        .entry("properties")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .expect("properties is an object");
    properties.insert("apiVersion".into(), json!({ "type": "string" }));
    properties.insert("kind".into(), json!({ "type": "string" }));
    properties.insert("metadata".into(), json!({ "type": "object" }));
    let schema: JSONSchemaProps =
        serde_json::from_value(schema).expect("a generated schema fits JSONSchemaProps");

    CustomResourceDefinition {
        metadata: ObjectMeta {
            name: Some(format!("{}.{GROUP}", names.plural)),
            labels: Some(
                [
                    ("app.kubernetes.io/name".to_string(), format!("{}s.{GROUP}", names.singular)),
                    ("app.kubernetes.io/part-of".to_string(), "argocd".to_string()),
                ]
                .into(),
            ),
            ..Default::default()
        },
        spec: CustomResourceDefinitionSpec {
            group: GROUP.into(),
            names: CustomResourceDefinitionNames {
                kind: names.kind.into(),
                list_kind: Some(format!("{}List", names.kind)),
                plural: names.plural.into(),
                singular: Some(names.singular.into()),
                short_names: Some(names.short.iter().map(|s| s.to_string()).collect()),
                ..Default::default()
            },
            scope: "Namespaced".into(),
            versions: vec![CustomResourceDefinitionVersion {
                name: VERSION.into(),
                served: true,
                storage: true,
                schema: Some(CustomResourceValidation { open_api_v3_schema: Some(schema) }),
                subresources: names
                    .status_subresource
                    // An empty object: a null (the type's default) is dropped by the API server, and the
                    // status subresource with it.
                    .then(|| CustomResourceSubresources {
                        status: Some(CustomResourceSubresourceStatus(serde_json::json!({}))),
                        scale: None,
                    }),
                additional_printer_columns: (!names.columns.is_empty()).then_some(names.columns),
                ..Default::default()
            }],
            ..Default::default()
        },
        status: None,
    }
}

#[cfg(test)]
mod subresource_tests {
    /// The ApplicationSet CRD has a status subresource (its controller writes status through it); the
    /// API server keeps it only when it is an object, never a null.
    #[test]
    fn the_applicationset_crd_has_a_status_subresource_that_survives_serialization() {
        let crd = serde_json::to_value(super::application_set()).unwrap();
        assert_eq!(crd["spec"]["versions"][0]["subresources"]["status"], serde_json::json!({}));
        let app = serde_json::to_value(super::application()).unwrap();
        assert!(
            app["spec"]["versions"][0]["subresources"].is_null(),
            "Applications have none, as in Argo CD"
        );
    }
}
