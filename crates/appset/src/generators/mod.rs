//! Generators: each turns its spec (and, for git, the repository's listing) into parameter sets.
//!
//! - [`list`]: `elements` and `elementsYaml`;
//! - [`clusters`]: the cluster Secrets (and the in-cluster) the caller read, by label selector;
//! - [`cluster_decision`]: the clusters named in the status of resources the caller read (duck typing);
//! - [`git`]: `directories` and `files`, over paths and contents the caller read from the repository;
//! - [`matrix`]: the product of two children, the second generated once per parameter set of the first
//!   with that set interpolated into its fields;
//! - [`merge`]: the first child's sets, overridden by the others' sets that share their `mergeKeys`;
//! - [`pull_request`]: the open pull requests the caller listed from a provider (Gitea, GitHub …);
//! - [`scm_provider`]: the repositories and branches the caller listed from a provider;
//! - [`selector`]: a generator's `selector`, a label selector over each parameter set.
//!
//! Each refuses more than [`crate::MAX_PARAM_SETS`] sets.

pub mod cluster_decision;
pub mod clusters;
pub mod git;
pub mod list;
pub mod matrix;
pub mod merge;
pub mod pull_request;
pub mod scm_provider;
pub mod selector;

use crate::{Error, MAX_PARAM_SETS};

/// `Ok` while `count` parameter sets are within [`MAX_PARAM_SETS`].
pub(crate) fn check_count(generator: &'static str, count: usize) -> Result<(), Error> {
    if count > MAX_PARAM_SETS {
        return Err(Error::TooManyParamSets { generator, max: MAX_PARAM_SETS });
    }
    Ok(())
}
