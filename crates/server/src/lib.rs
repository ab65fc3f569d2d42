//! The API server of `berth run`: Argo CD's REST API (`api`), accounts and sessions (`auth`), RBAC
//! (`rbac`) and git webhooks (`webhook`).
pub mod api;
pub mod auth;
pub mod rbac;
pub mod webhook;
