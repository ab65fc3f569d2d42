//! Applications outside the control namespace (Argo CD's "applications in any namespace"): which
//! namespaces the controller takes Applications from, and the instance name an application goes by in the
//! queue, the memo and the tracking of its objects.
//!
//! The instance name is the plain `name` in the control namespace and `<namespace>_<name>` elsewhere, as
//! in Argo CD. Neither a namespace nor an object name can hold `_`, so it always splits back.
//!
//! ```text
//! assert_eq!(instance_name("team-a", "web", "argocd"), "team-a_web");
//! assert_eq!(split_instance("team-a_web"), (Some("team-a"), "web"));
//! ```

/// The ConfigMap of Argo CD's command-line parameters, in the control namespace.
pub const CMD_PARAMS_CM: &str = "argocd-cmd-params-cm";
/// Its key listing the namespaces Applications may live in besides the control namespace.
pub const APPLICATION_NAMESPACES_KEY: &str = "application.namespaces";

/// The name objects of the Application `namespace/name` are tracked by.
pub fn instance_name(namespace: &str, name: &str, control_namespace: &str) -> String {
    if namespace.is_empty() || namespace == control_namespace {
        name.to_string()
    } else {
        format!("{namespace}_{name}")
    }
}

/// The namespace (`None`: the control namespace) and name of the Application an instance name stands for.
pub fn split_instance(instance: &str) -> (Option<&str>, &str) {
    match instance.split_once('_') {
        Some((namespace, name)) => (Some(namespace), name),
        None => (None, instance),
    }
}

/// The namespaces besides the control namespace whose Applications are reconciled: `--application-namespaces`
/// or argocd-cmd-params-cm `application.namespaces`, comma-separated shell globs (`team-*`, `*`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApplicationNamespaces(Vec<String>);

impl ApplicationNamespaces {
    /// The patterns of a comma-separated list; blanks are dropped.
    pub fn parse(list: &str) -> Self {
        Self::of(list.split(','))
    }

    /// The patterns given one by one (a flag repeated, or already split).
    pub fn of<S: AsRef<str>>(patterns: impl IntoIterator<Item = S>) -> Self {
        ApplicationNamespaces(
            patterns.into_iter().map(|p| p.as_ref().trim().to_string()).filter(|p| !p.is_empty()).collect(),
        )
    }

    /// No namespace besides the control namespace.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The patterns, as given.
    pub fn patterns(&self) -> &[String] {
        &self.0
    }

    /// Whether Applications in `namespace` are reconciled. Argo CD's `/regex/` entries are not supported
    /// and match nothing (a warning at start says so).
    pub fn allows(&self, namespace: &str) -> bool {
        self.0.iter().any(|p| !is_regex(p) && crate::project::glob_match(p, namespace, false))
    }

    /// The entries berth does not understand.
    pub fn unsupported(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str).filter(|p| is_regex(p))
    }
}

fn is_regex(pattern: &str) -> bool {
    pattern.len() > 1 && pattern.starts_with('/') && pattern.ends_with('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_namespace_apps_keep_their_plain_name() {
        assert_eq!(instance_name("argocd", "web", "argocd"), "web");
        assert_eq!(instance_name("", "web", "argocd"), "web");
        assert_eq!(instance_name("team-a", "web", "argocd"), "team-a_web");
    }

    #[test]
    fn an_instance_name_splits_back_into_namespace_and_name() {
        assert_eq!(split_instance("web"), (None, "web"));
        assert_eq!(split_instance("team-a_web.v2"), (Some("team-a"), "web.v2"));
    }

    #[test]
    fn application_namespaces_match_globs_and_skip_blanks() {
        let allowed = ApplicationNamespaces::parse(" team-*, apps ,,");
        assert_eq!(allowed.patterns(), ["team-*", "apps"]);
        assert!(allowed.allows("team-one"));
        assert!(allowed.allows("apps"));
        assert!(!allowed.allows("apps-2"));
        assert!(ApplicationNamespaces::parse("*").allows("anything"));
        assert!(ApplicationNamespaces::parse(" , ").is_empty());
    }

    #[test]
    fn regex_entries_are_reported_and_match_nothing() {
        let allowed = ApplicationNamespaces::parse("/^team-.*$/");
        assert!(!allowed.allows("team-a"));
        assert_eq!(allowed.unsupported().collect::<Vec<_>>(), ["/^team-.*$/"]);
    }
}
