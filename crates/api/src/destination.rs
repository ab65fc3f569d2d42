//! The cluster berth runs in, as Argo CD names it in destinations and cluster Secrets.

/// The in-cluster destination's server URL.
pub const IN_CLUSTER_SERVER: &str = "https://kubernetes.default.svc";

/// The in-cluster destination's name.
pub const IN_CLUSTER_NAME: &str = "in-cluster";
