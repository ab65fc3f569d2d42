//! Repositories, clusters and accounts: Argo CD's settings endpoints.

use super::Shared;
use axum::Router;
use std::sync::Arc;

pub(super) fn routes() -> Router<Arc<Shared>> {
    Router::new()
}
