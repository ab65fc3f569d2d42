//! Annotation keys on an Application that Argo CD defines and berth honours, declared once for the
//! controller, the API server and the webhook.

/// Asks for a refresh: `normal` re-reads the repository, `hard` also drops cached renders. The controller
/// removes it once the refresh is done.
pub const REFRESH: &str = "argocd.argoproj.io/refresh";

/// Argo CD notifications' record of what it already sent for an Application (an ApplicationSet never
/// overwrites it).
pub const NOTIFIED: &str = "notified.notifications.argoproj.io";

/// A request to hydrate an Application's source (an ApplicationSet never overwrites it, as the refresh).
pub const HYDRATE: &str = "argocd.argoproj.io/hydrate";

/// `;`-separated repository paths (relative to the source's `path`, or `/`-rooted; glob patterns allowed)
/// whose changes concern the Application; see `berth_repo::paths::WatchedPaths`.
pub const MANIFEST_GENERATE_PATHS: &str = "argocd.argoproj.io/manifest-generate-paths";

/// Present (any value): the objects waiting on `Prune=confirm` or `Delete=confirm` may be deleted.
pub const DELETION_APPROVED: &str = "argocd.argoproj.io/deletion-approved";

/// A field manager whose client-side-apply (`Update`) fields berth's server-side apply takes over, in
/// place of `kubectl-client-side-apply`; see `berth_engine::managed_fields`.
pub const CLIENT_SIDE_APPLY_MIGRATION_MANAGER: &str =
    "argocd.argoproj.io/client-side-apply-migration-manager";

/// `"true"`: the controller leaves the Application alone: no refresh, no compare, no sync, no status
/// write (deletion still runs), as Argo CD's `skip-reconcile` does for apps another tool manages.
pub const SKIP_RECONCILE: &str = "argocd.argoproj.io/skip-reconcile";

/// Whether the Application asks to be skipped ([`SKIP_RECONCILE`] is `"true"`).
pub fn skips_reconcile(annotations: Option<&std::collections::BTreeMap<String, String>>) -> bool {
    annotations.and_then(|a| a.get(SKIP_RECONCILE)).is_some_and(|v| v.trim() == "true")
}
