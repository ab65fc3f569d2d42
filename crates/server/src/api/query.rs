//! Argo CD's ApplicationQuery: which Applications a list or a stream selects.

use super::ApiError;
use berth_api::Application;

/// Argo CD's ApplicationQuery, as the list and the stream read it, with Kubernetes' `limit` and `continue`.
/// Keys may repeat (`projects=a&projects=b`, Argo CD's form), so it is read from the pairs, not derived.
#[derive(Default, Debug)]
pub struct ListQuery {
    pub(crate) name: Option<String>,
    /// `appNamespace`: only the apps of that namespace (none: every served namespace).
    app_namespace: Option<String>,
    /// From `projects` (or the legacy `project`), repeated or comma-separated.
    projects: Vec<String>,
    search: Option<String>,
    selector: Vec<(String, Option<String>, bool)>,
    /// Apps with an older resourceVersion are not streamed; as in Argo CD, a non-number counts as 0.
    pub(crate) resource_version: Option<u64>,
    /// Items a page; none (or 0) is all.
    pub(super) limit: Option<usize>,
    /// From `continue`: the last app of the previous page, its name and namespace (a token of an older
    /// berth has only the name: the page after every app of that name).
    after: Option<(String, Option<String>)>,
}

impl ListQuery {
    pub(crate) fn from_pairs(pairs: Vec<(String, String)>) -> Result<ListQuery, ApiError> {
        use base64::Engine;
        let mut query = ListQuery::default();
        for (key, value) in pairs {
            match key.as_str() {
                "name" if !value.is_empty() => query.name = Some(value),
                "appNamespace" if !value.is_empty() => query.app_namespace = Some(value),
                "projects" | "project" => query
                    .projects
                    .extend(value.split(',').map(str::trim).filter(|p| !p.is_empty()).map(str::to_string)),
                "search" if !value.is_empty() => query.search = Some(value),
                "selector" => query.selector.extend(parse_selector(&value)?),
                "resourceVersion" if !value.is_empty() => {
                    query.resource_version = Some(value.parse().unwrap_or(0));
                }
                "limit" if !value.is_empty() => {
                    let limit: usize = value
                        .parse()
                        .map_err(|_| ApiError::bad_request(format!("limit {value:?} is not a number")))?;
                    query.limit = Some(limit).filter(|l| *l > 0);
                }
                "continue" if !value.is_empty() => {
                    let position = base64::engine::general_purpose::URL_SAFE_NO_PAD
                        .decode(value.as_bytes())
                        .ok()
                        .and_then(|bytes| String::from_utf8(bytes).ok())
                        .map(|text| match text.split_once('/') {
                            Some((namespace, name)) => (name.to_string(), Some(namespace.to_string())),
                            None => (text, None),
                        })
                        .filter(|(name, _)| !name.is_empty())
                        .ok_or_else(|| {
                            ApiError::bad_request(format!("continue token {value:?} is not valid"))
                        })?;
                    query.after = Some(position);
                }
                _ => {}
            }
        }
        Ok(query)
    }

    /// Does the query select `app` (name, app namespace, projects, search, selector)? RBAC is checked apart.
    pub(crate) fn matches(&self, app: &Application) -> bool {
        let name = app.metadata.name.as_deref().unwrap_or_default();
        let project = if app.spec.project.is_empty() { "default" } else { &app.spec.project };
        self.name.as_deref().is_none_or(|n| n == name)
            && self.app_namespace.as_deref().is_none_or(|ns| app.metadata.namespace.as_deref() == Some(ns))
            && (self.projects.is_empty() || self.projects.iter().any(|p| p == project))
            && self.search.as_deref().is_none_or(|s| name.contains(s))
            && matches_selector(&self.selector, app.metadata.labels.as_ref())
    }

    /// Is `app` older than the query's `resourceVersion`?
    pub(crate) fn is_older(&self, app: &Application) -> bool {
        let version = app.metadata.resource_version.as_deref().and_then(|v| v.parse::<u64>().ok());
        matches!((self.resource_version, version), (Some(min), Some(v)) if v < min)
    }

    /// The `continue` token of a page whose last app is `namespace`/`name`: pages go by name, then
    /// namespace, so apps of one name in several namespaces are neither skipped nor repeated.
    pub(super) fn continue_token(namespace: &str, name: &str) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{namespace}/{name}"))
    }

    /// Does `app` come after the page `continue` ended (every app, without one)?
    pub(super) fn is_after_page(&self, app: &Application) -> bool {
        let Some((after_name, after_namespace)) = &self.after else { return true };
        let name = app.metadata.name.as_deref().unwrap_or_default();
        match after_namespace {
            Some(after_namespace) => {
                let namespace = app.metadata.namespace.as_deref().unwrap_or_default();
                (name, namespace) > (after_name.as_str(), after_namespace.as_str())
            }
            None => name > after_name.as_str(),
        }
    }
}

/// A label selector as kubectl writes it: `a=b,c!=d,e` (equality, inequality, existence).
pub(crate) fn parse_selector(text: &str) -> Result<Vec<(String, Option<String>, bool)>, ApiError> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|term| {
            if let Some((k, v)) = term.split_once("!=") {
                Ok((k.trim().to_string(), Some(v.trim().to_string()), false))
            } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                Ok((k.trim().to_string(), Some(v.trim().to_string()), true))
            } else if term.chars().all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c)) {
                Ok((term.to_string(), None, true))
            } else {
                Err(ApiError::bad_request(format!("selector: cannot read {term:?}")))
            }
        })
        .collect()
}

pub(crate) fn matches_selector(
    selector: &[(String, Option<String>, bool)],
    labels: Option<&std::collections::BTreeMap<String, String>>,
) -> bool {
    selector.iter().all(|(key, value, equal)| {
        let have = labels.and_then(|l| l.get(key));
        match (value, equal) {
            (None, _) => have.is_some(),
            (Some(v), true) => have == Some(v),
            (Some(v), false) => have != Some(v),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(namespace: &str, name: &str) -> Application {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": namespace}, "spec": {"destination": {}}
        }))
        .unwrap()
    }

    #[test]
    fn a_continue_token_resumes_after_the_same_name_in_the_next_namespace() {
        let token = ListQuery::continue_token("team-a", "web");
        let query = ListQuery::from_pairs(vec![("continue".into(), token)]).unwrap();
        assert!(!query.is_after_page(&app("argocd", "web")));
        assert!(!query.is_after_page(&app("team-a", "web")));
        assert!(query.is_after_page(&app("team-b", "web")));
        assert!(query.is_after_page(&app("argocd", "worker")));
        assert!(!query.is_after_page(&app("team-z", "api")));
        // An older berth's token names only the app: the page after every app of that name.
        use base64::Engine;
        let old = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("web");
        let query = ListQuery::from_pairs(vec![("continue".into(), old)]).unwrap();
        assert!(!query.is_after_page(&app("team-b", "web")));
        assert!(query.is_after_page(&app("argocd", "worker")));
    }

    #[test]
    fn app_namespace_selects_the_apps_of_one_namespace_for_the_list_and_the_stream() {
        let query = ListQuery::from_pairs(vec![("appNamespace".into(), "team-a".into())]).unwrap();
        assert!(query.matches(&app("team-a", "web")));
        assert!(!query.matches(&app("argocd", "web")));
        let every = ListQuery::from_pairs(vec![("appNamespace".into(), String::new())]).unwrap();
        assert!(every.matches(&app("argocd", "web")) && every.matches(&app("team-a", "web")));
    }

    #[test]
    fn selectors_match_as_kubectl_reads_them() {
        let sel = parse_selector("team=web,env!=prod,tier").unwrap();
        let labels = |pairs: &[(&str, &str)]| -> std::collections::BTreeMap<String, String> {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        assert!(matches_selector(&sel, Some(&labels(&[("team", "web"), ("env", "dev"), ("tier", "1")]))));
        assert!(!matches_selector(&sel, Some(&labels(&[("team", "web"), ("env", "prod"), ("tier", "1")]))));
        assert!(!matches_selector(&sel, Some(&labels(&[("team", "web")]))));
        assert!(parse_selector("a in (b)").is_err());
    }
}
