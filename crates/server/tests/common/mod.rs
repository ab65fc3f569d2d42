//! What the API's integration tests share: the server on a free local port (plain HTTP, stopped when
//! dropped), the admin's initial password and logging in.
#![allow(dead_code)] // each test binary uses its own part

use kube::api::Api;
use std::sync::Arc;

pub struct Server {
    pub base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The API server for `namespace` on 127.0.0.1, plain HTTP.
pub async fn start(client: &kube::Client, namespace: &str) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let shared = Arc::new(berth_server::api::Shared::start(client.clone(), namespace).await.unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(berth_server::api::serve_on(listener, shared, async {
        let _ = rx.await;
    }));
    Server { base, stop: Some(tx) }
}

/// The admin's initial password, as the seed's kubectl command reads it.
pub async fn admin_password(client: &kube::Client, ns: &str) -> String {
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), ns);
    let secret = secrets.get("argocd-initial-admin-secret").await.unwrap();
    String::from_utf8(secret.data.unwrap()["password"].0.clone()).unwrap()
}

/// `POST /api/v1/session` as sent.
pub async fn login(base: &str, username: &str, password: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{base}/api/v1/session"))
        .json(&serde_json::json!({"username": username, "password": password}))
        .send()
        .await
        .unwrap()
}

/// A session token; the login must succeed.
pub async fn token(base: &str, username: &str, password: &str) -> String {
    try_token(base, username, password).await.unwrap_or_else(|| panic!("login as {username} failed"))
}

/// A session token, or None when the login is refused.
pub async fn try_token(base: &str, username: &str, password: &str) -> Option<String> {
    let response = login(base, username, password).await;
    if response.status().as_u16() != 200 {
        return None;
    }
    Some(response.json::<serde_json::Value>().await.unwrap()["token"].as_str().unwrap().to_string())
}
