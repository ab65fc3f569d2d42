//! Schema pieces the derive cannot express, and the generator settings that make schemas structural.

use schemars::{Schema, SchemaGenerator, json_schema};

/// An object the API server stores whole (Helm `valuesObject`, free-form generators).
pub fn preserve_unknown_fields(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "object", "x-kubernetes-preserve-unknown-fields": true, "nullable": true })
}

/// A list of objects the API server stores whole (list generator elements).
pub fn preserve_unknown_list(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "items": { "x-kubernetes-preserve-unknown-fields": true }
    })
}

/// A number or a string (`3`, `"3"`, `"25%"`).
pub fn int_or_string(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "x-kubernetes-int-or-string": true, "nullable": true })
}

/// The schema generator kube's CRD derive uses: OpenAPI v3, inlined, rewritten to be structural.
pub(crate) fn structural_generator() -> SchemaGenerator {
    schemars::generate::SchemaSettings::openapi3()
        .with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
        })
        .with_transform(schemars::transform::AddNullable::default())
        .with_transform(kube::core::schema::StructuralSchemaRewriter)
        .with_transform(kube::core::schema::OptionalEnum)
        .with_transform(kube::core::schema::OptionalIntOrString)
        .into_generator()
}
