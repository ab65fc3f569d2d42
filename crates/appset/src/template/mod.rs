//! An `ApplicationSetTemplate` stamped with one parameter set: the Application it generates.
//!
//! Every string of the template is rendered, map keys too (a label's or an annotation's name): the
//! metadata's name, namespace, labels, annotations and finalizers, and the whole spec. With no
//! parameter at all the template is returned as written, as Argo CD does. Flat parameters use the
//! default fasttemplate syntax ([`fast`]); nested ones (`goTemplate: true`) Go templates ([`go`]), with
//! the set's `goTemplateOptions` given as [`go::Options`].
//! The set's `templatePatch` is applied after, by [`patch`].

pub mod fast;
pub mod go;
pub mod patch;

use berth_api::applicationset::{ApplicationSetSyncPolicy, ApplicationSetTemplate};
use berth_api::{Application, finalizers};
use serde_json::{Value, json};

use crate::Error;
use crate::params::ParamSet;

/// The Application `template` renders to with `params`, as JSON (`apiVersion`, `kind`, `metadata`,
/// `spec`); nothing is added that the template does not say. Go templates run with the default options
/// (a missing key renders as `<no value>`); [`render_with_options`] takes the set's.
pub fn render(template: &ApplicationSetTemplate, params: &ParamSet) -> Result<Value, Error> {
    render_with_options(template, params, &go::Options::default())
}

/// [`render`] with the set's `goTemplateOptions` (`missingkey=error` makes a missing key an error naming
/// the field and the key); fasttemplate ignores them, as Argo CD does.
pub fn render_with_options(
    template: &ApplicationSetTemplate,
    params: &ParamSet,
    options: &go::Options,
) -> Result<Value, Error> {
    let metadata = serde_json::to_value(&template.metadata)
        .map_err(|e| Error::Template { field: "metadata".to_string(), message: e.to_string() })?;
    let spec = serde_json::to_value(&template.spec)
        .map_err(|e| Error::Template { field: "spec".to_string(), message: e.to_string() })?;
    let app = json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": metadata,
        "spec": spec,
    });
    match params {
        _ if params.is_empty() => Ok(app),
        ParamSet::Flat(flat) => {
            let mut rendered = app;
            for field in ["metadata", "spec"] {
                let value = fast::render_value(&rendered[field], flat, field)?;
                rendered[field] = value;
            }
            Ok(rendered)
        }
        ParamSet::Nested(nested) => {
            let renderer = go::Renderer::new(nested, *options)
                .map_err(|message| Error::Template { field: "template".to_string(), message })?;
            let mut rendered = app;
            for field in ["metadata", "spec"] {
                let value = renderer.render_value(&rendered[field], field)?;
                rendered[field] = value;
            }
            Ok(rendered)
        }
    }
}

/// The typed Application `template` generates with `params`, with Argo CD's default finalizer: a
/// template without finalizers gets `resources-finalizer.argocd.argoproj.io` unless the set's
/// `syncPolicy.preserveResourcesOnDeletion` is true. A rendering that is no valid Application, or has
/// no name, is an error naming it.
pub fn application(
    template: &ApplicationSetTemplate,
    params: &ParamSet,
    sync_policy: Option<&ApplicationSetSyncPolicy>,
) -> Result<Application, Error> {
    application_with_options(template, params, sync_policy, &go::Options::default())
}

/// [`application`] with the set's `goTemplateOptions` ([`go::Options::parse`]).
pub fn application_with_options(
    template: &ApplicationSetTemplate,
    params: &ParamSet,
    sync_policy: Option<&ApplicationSetSyncPolicy>,
    options: &go::Options,
) -> Result<Application, Error> {
    let rendered = render_with_options(template, params, options)?;
    let name = rendered["metadata"]["name"].as_str().unwrap_or_default().to_string();
    let mut app: Application = serde_json::from_value(rendered)
        .map_err(|e| Error::InvalidApplication { name: name.clone(), message: e.to_string() })?;
    if name.is_empty() {
        return Err(Error::InvalidApplication { name, message: "metadata.name is empty".to_string() });
    }
    let preserve = sync_policy.and_then(|p| p.preserve_resources_on_deletion).unwrap_or(false);
    if !preserve && app.metadata.finalizers.as_ref().is_none_or(Vec::is_empty) {
        app.metadata.finalizers = Some(vec![finalizers::RESOURCES.to_string()]);
    }
    Ok(app)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::TemplateMode;
    use proptest::prelude::*;

    fn template(value: Value) -> ApplicationSetTemplate {
        serde_json::from_value(value).expect("a template")
    }

    fn flat(pairs: &[(&str, &str)]) -> ParamSet {
        ParamSet::Flat(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    /// Argo CD's "Template" page: the cluster generator's template, `{{cluster}}` and `{{url}}`.
    #[test]
    fn every_string_of_metadata_and_spec_is_rendered() {
        let t = template(json!({
            "metadata": { "name": "{{cluster}}-guestbook", "labels": { "env": "{{cluster}}" },
                          "annotations": { "owner/{{cluster}}": "team" } },
            "spec": { "project": "default",
                      "source": { "repoURL": "https://github.com/infra-team/cluster-deployments.git",
                                  "targetRevision": "HEAD", "path": "guestbook/{{cluster}}" },
                      "destination": { "server": "{{url}}", "namespace": "guestbook" } }
        }));
        let app = render(&t, &flat(&[("cluster", "engineering-dev"), ("url", "https://1.2.3.4")])).unwrap();
        assert_eq!(app["apiVersion"], "argoproj.io/v1alpha1");
        assert_eq!(app["kind"], "Application");
        assert_eq!(app["metadata"]["name"], "engineering-dev-guestbook");
        assert_eq!(app["metadata"]["labels"]["env"], "engineering-dev");
        assert_eq!(app["metadata"]["annotations"]["owner/engineering-dev"], "team");
        assert_eq!(app["spec"]["source"]["path"], "guestbook/engineering-dev");
        assert_eq!(app["spec"]["destination"]["server"], "https://1.2.3.4");
        assert_eq!(app["spec"]["destination"]["namespace"], "guestbook");
    }

    #[test]
    fn a_template_without_finalizers_gets_the_resources_finalizer_unless_resources_are_preserved() {
        let t = template(json!({ "metadata": { "name": "web-{{env}}" }, "spec": { "destination": {} } }));
        let params = flat(&[("env", "prod")]);
        let app = application(&t, &params, None).unwrap();
        assert_eq!(app.metadata.name.as_deref(), Some("web-prod"));
        assert_eq!(app.metadata.finalizers, Some(vec![finalizers::RESOURCES.to_string()]));
        let preserve =
            ApplicationSetSyncPolicy { preserve_resources_on_deletion: Some(true), ..Default::default() };
        assert_eq!(application(&t, &params, Some(&preserve)).unwrap().metadata.finalizers, None);
        let own = template(
            json!({ "metadata": { "name": "x", "finalizers": ["a/b"] }, "spec": { "destination": {} } }),
        );
        assert_eq!(
            application(&own, &params, None).unwrap().metadata.finalizers,
            Some(vec!["a/b".to_string()])
        );
    }

    #[test]
    fn an_application_without_a_name_is_an_error() {
        let t = template(json!({ "metadata": {}, "spec": { "destination": {} } }));
        let err = application(&t, &flat(&[("a", "b")]), None).unwrap_err();
        assert!(matches!(err, Error::InvalidApplication { .. }), "{err}");
    }

    fn nested(value: Value) -> ParamSet {
        ParamSet::Nested(value.as_object().expect("an object").clone())
    }

    /// Argo CD's "Go Template" page: the basic list generator example with `missingkey=error`.
    #[test]
    fn nested_parameters_render_the_template_as_go_templates() {
        let t = template(json!({
            "metadata": { "name": "{{.cluster}}-guestbook", "labels": { "env-{{ .cluster }}": "{{ .cluster | upper }}" } },
            "spec": { "project": "my-project",
                      "source": { "repoURL": "https://github.com/infra-team/cluster-deployments.git",
                                  "targetRevision": "HEAD", "path": "guestbook/{{.cluster}}" },
                      "destination": { "server": "{{.url}}", "namespace": "guestbook" } }
        }));
        let params = nested(json!({ "cluster": "engineering-dev", "url": "https://1.2.3.4" }));
        let options = go::Options::parse(&["missingkey=error".to_string()]).unwrap();
        let app = application_with_options(&t, &params, None, &options).unwrap();
        assert_eq!(app.metadata.name.as_deref(), Some("engineering-dev-guestbook"));
        let rendered = render_with_options(&t, &params, &options).unwrap();
        assert_eq!(rendered["metadata"]["labels"]["env-engineering-dev"], "ENGINEERING-DEV");
        assert_eq!(rendered["spec"]["source"]["path"], "guestbook/engineering-dev");
        assert_eq!(rendered["spec"]["destination"]["server"], "https://1.2.3.4");
    }

    #[test]
    fn a_missing_key_under_missingkey_error_names_the_field_and_the_key() {
        let t = template(json!({ "metadata": { "name": "web" },
            "spec": { "source": { "repoURL": "r", "path": "apps/{{ .nope }}" }, "destination": {} } }));
        let params = nested(json!({ "cluster": "dev" }));
        let options = go::Options::parse(&["missingkey=error".to_string()]).unwrap();
        let err = render_with_options(&t, &params, &options).unwrap_err().to_string();
        assert!(err.starts_with("template spec.source.path:"), "{err}");
        assert!(err.contains("nope"), "{err}");
        let lax = render(&t, &params).unwrap();
        assert_eq!(lax["spec"]["source"]["path"], "apps/<no value>");
    }

    proptest! {
        /// With no parameter the template comes back as written, even with tags Argo CD would reject.
        #[test]
        fn rendering_with_no_params_is_identity(name in "\\PC{0,30}", path in "[a-z{}/ ]{0,30}") {
            let t = template(json!({ "metadata": { "name": name }, "spec": {
                "source": { "repoURL": "r", "path": path }, "destination": {} } }));
            let app = render(&t, &ParamSet::empty(TemplateMode::Fast)).unwrap();
            prop_assert_eq!(&app["metadata"], &serde_json::to_value(&t.metadata).unwrap());
            prop_assert_eq!(&app["spec"], &serde_json::to_value(&t.spec).unwrap());
        }
    }
}
