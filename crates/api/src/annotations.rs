//! Annotation keys on an Application that Argo CD defines and berth honours, declared once for the
//! controller, the API server and the webhook.

/// Asks for a refresh: `normal` re-reads the repository, `hard` also drops cached renders. The controller
/// removes it once the refresh is done.
pub const REFRESH: &str = "argocd.argoproj.io/refresh";

/// `;`-separated repository paths (relative to the source's `path`, or `/`-rooted; glob patterns allowed)
/// whose changes concern the Application; see `berth_repo::paths::WatchedPaths`.
pub const MANIFEST_GENERATE_PATHS: &str = "argocd.argoproj.io/manifest-generate-paths";

/// Present (any value): the objects waiting on `Prune=confirm` or `Delete=confirm` may be deleted.
pub const DELETION_APPROVED: &str = "argocd.argoproj.io/deletion-approved";
