//! The repository side of berth: git fetch and cache, revision resolution, and rendering a source into
//! the desired objects. Nothing here talks to a cluster.

pub mod git;
pub mod paths;
pub mod render;
pub mod url;
pub mod validate;
