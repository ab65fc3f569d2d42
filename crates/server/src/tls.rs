//! TLS for the API server, as argocd-server does it: the certificate of Secret `argocd-server-tls`
//! (`tls.crt`, `tls.key`) when it exists, reloaded when it changes; otherwise a self-signed certificate
//! generated at the first start and kept in `argocd-secret` (`tls.crt`, `tls.key`), so clients that chose
//! to trust it keep trusting it across restarts.
//!
//! One port serves both: a connection whose first byte opens a TLS handshake gets TLS; a plain HTTP request
//! gets a redirect to `https://` (argocd-server's behaviour without `--insecure`).

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::sync::{Arc, RwLock};

/// The Secret an operator puts a certificate in (type kubernetes.io/tls).
pub const SERVER_TLS_SECRET: &str = "argocd-server-tls";
/// Where the generated certificate is kept.
use berth_controller::settings_source::ARGOCD_SECRET;

/// A certificate and its key, PEM-encoded, and where they came from (for the log, never the key).
#[derive(Clone)]
pub struct Pem {
    pub cert: String,
    pub key: String,
    pub source: String,
}

impl std::fmt::Debug for Pem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pem").field("source", &self.source).finish_non_exhaustive()
    }
}

/// A self-signed certificate for the names a client may use to reach the server in `namespace`, valid
/// for a year (as Argo CD's).
pub fn self_signed(namespace: &str) -> Result<Pem, String> {
    let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    for service in ["argocd-server", "berth"] {
        names.push(service.into());
        names.push(format!("{service}.{namespace}"));
        names.push(format!("{service}.{namespace}.svc"));
    }
    let mut params = rcgen::CertificateParams::new(names).map_err(|e| format!("certificate names: {e}"))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::OrganizationName, "berth");
    params.distinguished_name.push(rcgen::DnType::CommonName, "localhost");
    let now = std::time::SystemTime::now();
    params.not_before = (now - std::time::Duration::from_secs(300)).into();
    params.not_after = (now + std::time::Duration::from_secs(365 * 24 * 3600)).into();
    let key = rcgen::KeyPair::generate().map_err(|e| format!("generating a key: {e}"))?;
    let cert = params.self_signed(&key).map_err(|e| format!("signing the certificate: {e}"))?;
    Ok(Pem { cert: cert.pem(), key: key.serialize_pem(), source: "generated".into() })
}

/// The certificate and key of PEM text, ready for rustls; an error says which part is wrong (never the
/// key's content).
pub fn certified_key(pem: &Pem) -> Result<Arc<CertifiedKey>, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem.cert.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: tls.crt is not a PEM certificate: {e}", pem.source))?;
    if chain.is_empty() {
        return Err(format!("{}: tls.crt holds no certificate", pem.source));
    }
    let key = PrivateKeyDer::from_pem_slice(pem.key.as_bytes())
        .map_err(|_| format!("{}: tls.key is not a PEM private key", pem.source))?;
    let provider = rustls::crypto::ring::default_provider();
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|_| format!("{}: tls.key is not a usable private key", pem.source))?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|_| format!("{}: tls.key does not belong to tls.crt", pem.source))?;
    Ok(Arc::new(certified))
}

fn pem_of(secret: &Secret, source: String) -> Option<Pem> {
    let data = secret.data.as_ref()?;
    let text = |k: &str| data.get(k).map(|v| String::from_utf8_lossy(&v.0).into_owned());
    Some(Pem { cert: text("tls.crt")?, key: text("tls.key")?, source })
}

/// The certificates the server starts with: the one to serve (argocd-server-tls when it holds a usable
/// one, else the kept one) and the kept one of argocd-secret (generated and stored on the first start),
/// to fall back to when argocd-server-tls goes.
pub async fn initial(client: &kube::Client, namespace: &str) -> Result<(Pem, Pem), String> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let kept =
        secrets.get_opt(ARGOCD_SECRET).await.map_err(|e| format!("reading Secret {ARGOCD_SECRET}: {e}"))?;
    let kept = match kept.and_then(|s| pem_of(&s, format!("Secret {ARGOCD_SECRET}"))) {
        Some(pem) if certified_key(&pem).is_ok() => pem,
        _ => {
            let pem = self_signed(namespace)?;
            let patch = serde_json::json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": ARGOCD_SECRET, "namespace": namespace},
                "data": {
                    "tls.crt": ByteString(pem.cert.clone().into_bytes()),
                    "tls.key": ByteString(pem.key.clone().into_bytes()),
                },
            });
            // Kept so a restart serves the same certificate; when the write fails the server still starts.
            if let Err(e) = secrets
                .patch(ARGOCD_SECRET, &PatchParams::apply("argocd-server"), &Patch::Apply(&patch))
                .await
            {
                tracing::warn!(error = %e, "could not keep the generated certificate in {ARGOCD_SECRET}");
            }
            pem
        }
    };
    let configured = secrets
        .get_opt(SERVER_TLS_SECRET)
        .await
        .map_err(|e| format!("reading Secret {SERVER_TLS_SECRET}: {e}"))?;
    if let Some(pem) = configured.and_then(|s| pem_of(&s, format!("Secret {SERVER_TLS_SECRET}"))) {
        match certified_key(&pem) {
            Ok(_) => return Ok((pem, kept)),
            Err(e) => tracing::warn!("{e}; serving the self-signed certificate"),
        }
    }
    Ok((kept.clone(), kept))
}

/// The certificate rustls presents, replaced when argocd-server-tls changes.
#[derive(Debug)]
pub struct Resolver {
    current: RwLock<Arc<CertifiedKey>>,
    /// What to go back to when argocd-server-tls is deleted.
    fallback: RwLock<Option<Arc<CertifiedKey>>>,
}

impl Resolver {
    pub fn new(key: Arc<CertifiedKey>) -> Self {
        Resolver { current: RwLock::new(key), fallback: RwLock::new(None) }
    }

    fn set(&self, key: Arc<CertifiedKey>) {
        *self.current.write().expect("certificate lock") = key;
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().expect("certificate lock").clone())
    }
}

/// rustls's configuration: HTTP/2 and HTTP/1.1 by ALPN.
pub fn server_config(resolver: Arc<Resolver>) -> Result<Arc<rustls::ServerConfig>, String> {
    let mut config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS versions: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Follows argocd-server-tls: a new certificate is served from the next handshake on; a broken one is
/// refused with a warning naming the Secret (the current certificate stays); a deleted one brings the
/// generated certificate back.
pub async fn watch(client: kube::Client, namespace: String, resolver: Arc<Resolver>, kept: Pem) {
    use futures::StreamExt;
    use kube::runtime::watcher;
    if let Ok(key) = certified_key(&kept) {
        *resolver.fallback.write().expect("certificate lock") = Some(key);
    }
    let secrets: Api<Secret> = Api::namespaced(client, &namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={SERVER_TLS_SECRET}"));
    let mut events = std::pin::pin!(watcher(secrets, config));
    while let Some(event) = events.next().await {
        match event {
            Ok(watcher::Event::Apply(secret) | watcher::Event::InitApply(secret)) => {
                let Some(pem) = pem_of(&secret, format!("Secret {SERVER_TLS_SECRET}")) else {
                    tracing::warn!(
                        "Secret {SERVER_TLS_SECRET} has no tls.crt and tls.key; keeping the current certificate"
                    );
                    continue;
                };
                match certified_key(&pem) {
                    Ok(key) => {
                        resolver.set(key);
                        tracing::info!("serving the certificate of Secret {SERVER_TLS_SECRET}");
                    }
                    Err(e) => tracing::warn!("{e}; keeping the current certificate"),
                }
            }
            Ok(watcher::Event::Delete(_)) => {
                if let Some(key) = resolver.fallback.read().expect("certificate lock").clone() {
                    resolver.set(key);
                    tracing::info!("Secret {SERVER_TLS_SECRET} deleted; serving the generated certificate");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "watching {SERVER_TLS_SECRET}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_certificate_loads_and_names_localhost() {
        let pem = self_signed("argocd").unwrap();
        assert!(pem.cert.starts_with("-----BEGIN CERTIFICATE-----"));
        let key = certified_key(&pem).unwrap();
        assert_eq!(key.cert.len(), 1);
        // The DER holds the DNS names a client checks.
        let der = key.cert[0].as_ref();
        for name in [&b"localhost"[..], b"argocd-server.argocd.svc"] {
            assert!(der.windows(name.len()).any(|w| w == name), "{}", String::from_utf8_lossy(name));
        }
    }

    #[test]
    fn a_key_of_another_certificate_is_refused_without_showing_it() {
        let a = self_signed("a").unwrap();
        let b = self_signed("b").unwrap();
        let mixed = Pem { cert: a.cert, key: b.key.clone(), source: "Secret argocd-server-tls".into() };
        let e = certified_key(&mixed).unwrap_err();
        assert!(e.contains("does not belong"), "{e}");
        assert!(!e.contains("PRIVATE KEY") && !e.contains(&b.key[40..80]), "{e}");
        let broken = Pem { cert: "nonsense".into(), key: b.key, source: "Secret argocd-server-tls".into() };
        assert!(certified_key(&broken).unwrap_err().contains("tls.crt"));
    }

    #[test]
    fn debug_output_never_shows_the_key() {
        let pem = self_signed("argocd").unwrap();
        assert!(!format!("{pem:?}").contains("PRIVATE"));
    }
}
