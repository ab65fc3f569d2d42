//! The GitOps engine: what is in the cluster (cache), how it differs from what git says (normalize, diff),
//! how healthy it is (health), and how to make it equal (apply, sync). It knows nothing of Applications.

pub mod actions;
pub mod apply;
pub mod cache;
pub mod health;
pub mod jq;
pub mod managed_fields;
pub mod normalize;
pub mod outage;
pub mod resource;
pub mod sync;
pub mod tracking;
