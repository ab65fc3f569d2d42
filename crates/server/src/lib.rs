//! The API server of `berth run`: Argo CD's REST API (`api`), accounts and sessions (`auth`), RBAC
//! (`rbac`), git webhooks (`webhook`), TLS (`tls`) and the embedded web UI (`ui`).
pub mod api;
pub mod auth;
pub mod rbac;
pub mod tls;
pub mod ui;
pub mod webhook;
