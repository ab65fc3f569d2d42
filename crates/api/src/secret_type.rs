//! The label that marks a Secret in Argo CD's namespace as repository or cluster settings, and its values.
//!
//! ```
//! use berth_api::secret_type;
//! let labels = std::collections::BTreeMap::from([(secret_type::LABEL, secret_type::REPO_CREDS)]);
//! assert_eq!(labels[secret_type::LABEL], "repo-creds");
//! ```

/// The label key; its value says what the Secret holds.
pub const LABEL: &str = "argocd.argoproj.io/secret-type";

/// One repository: its `url` and the credentials for it.
pub const REPOSITORY: &str = "repository";

/// A credential template: its `url` is a prefix of the repositories it serves.
pub const REPO_CREDS: &str = "repo-creds";

/// A destination cluster: `server`, `name` and `config`.
pub const CLUSTER: &str = "cluster";
