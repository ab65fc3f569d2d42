//! The API server of `berth run`: Argo CD's REST API (`api`), accounts and sessions (`auth`), RBAC
//! (`rbac`), git webhooks (`webhook`) and TLS (`tls`).
pub mod api;
pub mod auth;
pub mod rbac;
pub mod tls;
pub mod webhook;
