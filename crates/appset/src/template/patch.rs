//! `templatePatch`: a Go template whose output, a YAML (or JSON) object, is merged into each generated
//! Application after its template is rendered. It reaches what a string template cannot: a field whose
//! type is not a string, or a whole block present only for some parameter sets (automated sync only in
//! staging, a Helm `valuesObject` taken from a file).
//!
//! As Argo CD does it: only with `goTemplate: true` (a set with fasttemplate and a patch is an error, not
//! a patch silently ignored); the set's `goTemplateOptions` apply; the patch is a strategic merge patch
//! over the Application, and an Application's fields carry no merge keys, so it merges like a JSON merge
//! patch (RFC 7386): objects merge key by key, lists and scalars replace, `null` removes.
//!
//! The patch may change any field, the project and the destination included, from parameters: like the
//! template, it is written by whoever may write the set, and every generated Application is then checked
//! against its project like any other.
//!
//! ```
//! use berth_appset::params::ParamSet;
//! use berth_appset::template::{go, patch};
//! use serde_json::json;
//!
//! let app = json!({ "metadata": { "name": "web-staging" }, "spec": { "project": "default" } });
//! let params = ParamSet::Nested(json!({ "autoSync": true }).as_object().unwrap().clone());
//! let text = "{{ if .autoSync }}\nspec:\n  syncPolicy:\n    automated: {prune: true}\n{{ end }}";
//! let patched = patch::apply(app, text, &params, &go::Options::default()).unwrap();
//! assert_eq!(patched["spec"]["syncPolicy"]["automated"]["prune"], true);
//! ```

use serde_json::Value;

use super::go;
use crate::Error;
use crate::params::ParamSet;

const FIELD: &str = "templatePatch";

/// `app` (a rendered Application as JSON) with `patch` rendered over `params` and merged in. A patch that
/// renders to nothing but whitespace changes nothing.
pub fn apply(mut app: Value, patch: &str, params: &ParamSet, options: &go::Options) -> Result<Value, Error> {
    let error = |message: String| Error::Template { field: FIELD.to_string(), message };
    let ParamSet::Nested(nested) = params else {
        return Err(error("templatePatch needs goTemplate: true".to_string()));
    };
    let rendered = go::render_str(patch, nested, options).map_err(error)?;
    if rendered.trim().is_empty() {
        return Ok(app);
    }
    let patch: Value = serde_saphyr::from_str(&rendered)
        .map_err(|e| error(format!("the rendered patch is not YAML: {e}")))?;
    match &patch {
        Value::Object(_) => {}
        Value::Null => return Ok(app),
        other => {
            return Err(error(format!(
                "the rendered patch must be an object (metadata, spec), not {}",
                kind_of(other)
            )));
        }
    }
    json_patch::merge(&mut app, &patch);
    Ok(app)
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn nested(value: Value) -> ParamSet {
        ParamSet::Nested(value.as_object().expect("an object").clone())
    }

    fn app() -> Value {
        json!({
            "metadata": { "name": "web", "labels": { "team": "a" } },
            "spec": { "project": "default", "source": { "repoURL": "https://git/x", "path": "apps/web" },
                      "syncPolicy": { "syncOptions": ["CreateNamespace=true"] } }
        })
    }

    /// Argo CD's "Template Patch" example: automated sync only where a parameter says so.
    #[test]
    fn a_conditional_block_is_added_only_for_the_sets_that_ask_for_it() {
        let text = "{{- if .autoSync }}\nspec:\n  syncPolicy:\n    automated:\n      prune: {{ .prune }}\n{{- end }}\n";
        let on =
            apply(app(), text, &nested(json!({ "autoSync": true, "prune": true })), &go::Options::default())
                .unwrap();
        assert_eq!(on["spec"]["syncPolicy"]["automated"], json!({ "prune": true }));
        assert_eq!(
            on["spec"]["syncPolicy"]["syncOptions"],
            json!(["CreateNamespace=true"]),
            "siblings are kept"
        );
        let off = apply(app(), text, &nested(json!({ "autoSync": false })), &go::Options::default()).unwrap();
        assert_eq!(off, app(), "an empty patch changes nothing");
    }

    #[test]
    fn objects_merge_lists_replace_and_null_removes() {
        let text = "metadata:\n  labels:\n    env: prod\nspec:\n  syncPolicy:\n    syncOptions: [ServerSideApply=true]\n  source:\n    path: null\n";
        let patched = apply(app(), text, &nested(json!({})), &go::Options::default()).unwrap();
        assert_eq!(patched["metadata"]["labels"], json!({ "team": "a", "env": "prod" }));
        assert_eq!(patched["spec"]["syncPolicy"]["syncOptions"], json!(["ServerSideApply=true"]));
        assert!(patched["spec"]["source"].get("path").is_none());
        assert_eq!(patched["spec"]["source"]["repoURL"], "https://git/x");
    }

    /// Non-string values come through: a number and a whole object from the parameters, with `toJson`.
    #[test]
    fn values_of_any_type_come_from_the_parameters() {
        let text = "spec:\n  revisionHistoryLimit: {{ .limit }}\n  source:\n    helm:\n      valuesObject: {{ .values | toJson }}\n";
        let params = nested(json!({ "limit": 3, "values": { "replicas": 2, "image": { "tag": "v1" } } }));
        let patched = apply(app(), text, &params, &go::Options::default()).unwrap();
        assert_eq!(patched["spec"]["revisionHistoryLimit"], 3);
        assert_eq!(
            patched["spec"]["source"]["helm"]["valuesObject"],
            json!({ "replicas": 2, "image": { "tag": "v1" } })
        );
    }

    #[test]
    fn fasttemplate_sets_are_refused_rather_than_left_unpatched() {
        let flat = ParamSet::Flat([("env".to_string(), "prod".to_string())].into());
        let err = apply(app(), "spec: {}", &flat, &go::Options::default()).unwrap_err();
        assert!(err.to_string().contains("templatePatch needs goTemplate: true"), "{err}");
    }

    #[test]
    fn a_patch_that_is_not_an_object_or_not_yaml_names_the_field() {
        for (text, expected) in [
            ("- a\n- b\n", "must be an object"),
            ("spec: [unclosed", "not YAML"),
            ("{{ .missing.key }}", "templatePatch"),
        ] {
            let options = go::Options::parse(&["missingkey=error".to_string()]).unwrap();
            let err = apply(app(), text, &nested(json!({})), &options).unwrap_err();
            let message = err.to_string();
            assert!(message.contains("templatePatch") && message.contains(expected), "{text:?}: {message}");
        }
    }
}
