//! HTTPS on the real local cluster: the generated self-signed certificate (kept in argocd-secret, the same
//! after a restart), the certificate of Secret argocd-server-tls (taken up while running, dropped when the
//! Secret goes), plain HTTP redirected on the same port, and `--insecure` plain HTTP.
//!
//! Each request trusts exactly one certificate, so a connection that succeeds proves which one was served.

use berth_testkit::*;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Server {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(20), &mut self.task)
            .await
            .expect("the server stops")
            .unwrap()
            .unwrap();
    }
}

async fn start(client: &kube::Client, namespace: &str, insecure: bool) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = berth_server::api::ServerConfig {
        dex_server: None,
        namespace: namespace.into(),
        addr,
        insecure,
        metrics_on_api_port: false,
        controller: Default::default(),
        settings: None,
    };
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(berth_server::api::serve_listener(client.clone(), config, listener, async {
        let _ = rx.await;
    }));
    Server { addr, stop: Some(tx), task }
}

/// One HTTP/1.1 request over TLS to `localhost`, trusting only `trusted` (PEM): the status line and body,
/// or the TLS error.
async fn https_get(addr: SocketAddr, trusted: &str, path: &str) -> Result<(u16, String), String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(trusted.as_bytes()) {
        roots.add(cert.map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    }
    let config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.map_err(|e| e.to_string())?;
    exchange(&mut tls, path).await
}

async fn plain_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    exchange(&mut tcp, path).await.unwrap()
}

async fn exchange(
    stream: &mut (impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin),
    path: &str,
) -> Result<(u16, String), String> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let status =
        text.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or(format!("no status in {text:?}"))?;
    Ok((status, text))
}

async fn secret_data(client: &kube::Client, ns: &str, name: &str, key: &str) -> Option<String> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let secret = secrets.get_opt(name).await.unwrap()?;
    secret.data?.get(key).map(|v| String::from_utf8(v.0.clone()).unwrap())
}

/// The certificate berth generated and kept in argocd-secret, once it is there.
async fn kept_certificate(client: &kube::Client, ns: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(pem) = secret_data(client, ns, "argocd-secret", "tls.crt").await {
            assert!(secret_data(client, ns, "argocd-secret", "tls.key").await.is_some());
            return pem;
        }
        assert!(std::time::Instant::now() < deadline, "no certificate in argocd-secret after 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn https_by_default_with_a_kept_self_signed_certificate_and_a_redirect_for_plain_http() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = client().await;
    install_crds(&client).await;
    let ns = unique("tls");
    ensure_namespace(&client, &ns).await;
    let server = start(&client, &ns, false).await;

    // The generated certificate is kept in argocd-secret and is the one served.
    let generated = kept_certificate(&client, &ns).await;
    poll("an HTTPS answer", Duration::from_secs(30), || async {
        https_get(server.addr, &generated, "/healthz").await.is_ok()
    })
    .await;
    let (status, text) = https_get(server.addr, &generated, "/api/version").await.unwrap();
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("\"Version\""), "{text}");
    // Another certificate is not trusted for it: the client refuses.
    let stranger = berth_server::tls::self_signed("elsewhere").unwrap();
    let refused = https_get(server.addr, &stranger.cert, "/healthz").await.unwrap_err();
    assert!(refused.to_lowercase().contains("certificate"), "{refused}");

    // Plain HTTP on the same port: a redirect to https, but /healthz answers for probes.
    let (status, text) = plain_get(server.addr, "/api/v1/applications?projects=a").await;
    assert_eq!(status, 307, "{text}");
    assert!(
        text.to_lowercase().contains("location: https://localhost/api/v1/applications?projects=a"),
        "{text}"
    );
    let (status, text) = plain_get(server.addr, "/healthz").await;
    assert_eq!(status, 200, "{text}");
    assert!(text.ends_with("ok"), "{text}");

    // A restart serves the same certificate.
    server.stop().await;
    let server = start(&client, &ns, false).await;
    poll("an HTTPS answer after the restart", Duration::from_secs(30), || async {
        https_get(server.addr, &generated, "/healthz").await.is_ok()
    })
    .await;
    server.stop().await;

    // --insecure: plain HTTP, no redirect.
    let server = start(&client, &ns, true).await;
    poll("a plain HTTP answer", Duration::from_secs(30), || async {
        tokio::net::TcpStream::connect(server.addr).await.is_ok()
    })
    .await;
    let (status, text) = plain_get(server.addr, "/api/version").await;
    assert_eq!(status, 200, "{text}");
    server.stop().await;
}

#[tokio::test]
async fn the_certificate_of_argocd_server_tls_is_served_and_followed_while_running() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = client().await;
    install_crds(&client).await;
    let ns = unique("tls-secret");
    ensure_namespace(&client, &ns).await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let put = |pem: &berth_server::tls::Pem| {
        let body = serde_json::json!({
            "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": "argocd-server-tls", "namespace": ns},
            "data": {"tls.crt": ByteString(pem.cert.clone().into_bytes()),
                     "tls.key": ByteString(pem.key.clone().into_bytes())},
        });
        let secrets = secrets.clone();
        async move {
            secrets
                .patch("argocd-server-tls", &PatchParams::apply("berth-test").force(), &Patch::Apply(&body))
                .await
                .unwrap();
        }
    };
    let first = berth_server::tls::self_signed(&ns).unwrap();
    put(&first).await;
    let server = start(&client, &ns, false).await;
    poll("the certificate of argocd-server-tls", Duration::from_secs(30), || async {
        https_get(server.addr, &first.cert, "/healthz").await.is_ok()
    })
    .await;

    // A new certificate in the Secret is served without a restart.
    let second = berth_server::tls::self_signed(&ns).unwrap();
    put(&second).await;
    poll("the replaced certificate", Duration::from_secs(30), || async {
        https_get(server.addr, &second.cert, "/healthz").await.is_ok()
    })
    .await;
    // A key that does not match is refused; the server keeps the last good certificate.
    let broken =
        berth_server::tls::Pem { cert: first.cert.clone(), key: second.key.clone(), source: String::new() };
    put(&broken).await;
    let (status, _) = https_get(server.addr, &second.cert, "/healthz").await.unwrap();
    assert_eq!(status, 200);
    let marker = berth_server::tls::self_signed(&ns).unwrap();
    put(&marker).await;
    poll("the certificate after a broken one", Duration::from_secs(30), || async {
        https_get(server.addr, &marker.cert, "/healthz").await.is_ok()
    })
    .await;

    // Without the Secret the generated certificate (kept in argocd-secret) comes back.
    secrets.delete("argocd-server-tls", &DeleteParams::default()).await.unwrap();
    let generated = kept_certificate(&client, &ns).await;
    poll("the generated certificate served again", Duration::from_secs(30), || async {
        https_get(server.addr, &generated, "/healthz").await.is_ok()
    })
    .await;
    server.stop().await;
}
