//! The NDJSON stream of application events.

use super::Shared;
use axum::Router;
use std::sync::Arc;

pub(super) fn routes() -> Router<Arc<Shared>> {
    Router::new()
}
