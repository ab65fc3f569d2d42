//! An `ApplicationSetTemplate` stamped with one parameter set: the Application it generates.
//!
//! Every string of the template is rendered, map keys too (a label's or an annotation's name): the
//! metadata's name, namespace, labels, annotations and finalizers, and the whole spec. With no
//! parameter at all the template is returned as written, as Argo CD does.
//!
//! Not yet: Go templates (`goTemplate: true`, [`crate::Error::GoTemplateUnsupported`]) and
//! `templatePatch` (a Go-templated patch, so it waits for Go templates; the caller must refuse a set
//! that has one rather than ignore it).

pub mod fast;

use berth_api::applicationset::{ApplicationSetSyncPolicy, ApplicationSetTemplate};
use berth_api::{Application, finalizers};
use serde_json::{Value, json};

use crate::Error;
use crate::params::ParamSet;

/// The Application `template` renders to with `params`, as JSON (`apiVersion`, `kind`, `metadata`,
/// `spec`); nothing is added that the template does not say.
pub fn render(template: &ApplicationSetTemplate, params: &ParamSet) -> Result<Value, Error> {
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
        ParamSet::Nested(_) => Err(Error::GoTemplateUnsupported { what: "template".to_string() }),
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
    let rendered = render(template, params)?;
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

    #[test]
    fn nested_parameters_are_refused_until_go_templates_exist() {
        let t = template(json!({ "metadata": { "name": "{{.x}}" }, "spec": { "destination": {} } }));
        let mut set = ParamSet::empty(TemplateMode::Go);
        set.insert("x", "y");
        assert!(matches!(render(&t, &set), Err(Error::GoTemplateUnsupported { .. })));
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
