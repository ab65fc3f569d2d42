//! What the API's integration tests share: berth in-process on a free local port (plain HTTP, stopped when
//! dropped), the admin's initial password, logging in and calling the API.
#![allow(dead_code)] // each test binary uses its own part

mod in_process;
pub use in_process::*;

/// The API server alone, as most tests start it.
pub type Server = InProcess;

/// The API server for `namespace` on 127.0.0.1, plain HTTP.
pub async fn start(client: &kube::Client, namespace: &str) -> Server {
    InProcess::start(client, namespace, Options::default()).await
}
