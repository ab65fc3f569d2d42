//! Finalizers on an Application that make its deletion a cascade, declared once for the controller and
//! the API server.

/// Deleting the Application deletes its resources first (foreground propagation).
pub const RESOURCES: &str = "resources-finalizer.argocd.argoproj.io";

/// As [`RESOURCES`], with background propagation.
pub const RESOURCES_BACKGROUND: &str = "resources-finalizer.argocd.argoproj.io/background";

/// The Application's `PreDelete` hooks run, and succeed, before its resources are deleted.
pub const PRE_DELETE: &str = "pre-delete-finalizer.argocd.argoproj.io";

/// The Application's `PostDelete` hooks run once its resources are gone.
pub const POST_DELETE: &str = "post-delete-finalizer.argocd.argoproj.io";

/// Whether `finalizer` is one of the two that cascade the deletion to the Application's resources.
pub fn is_resources(finalizer: &str) -> bool {
    finalizer == RESOURCES || finalizer == RESOURCES_BACKGROUND
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_two_resources_finalizers_cascade() {
        assert!(is_resources(RESOURCES));
        assert!(is_resources(RESOURCES_BACKGROUND));
        assert!(!is_resources(PRE_DELETE));
        assert!(!is_resources(POST_DELETE));
        assert!(!is_resources("resources-finalizer.argocd.argoproj.io/foreground"));
    }
}
