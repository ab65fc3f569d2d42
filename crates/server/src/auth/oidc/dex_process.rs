//! Runs Dex as Argo CD's `argocd-dex rundex` does: Dex's configuration is generated from argocd-cm's
//! `dex.config` and argocd-secret, written to a file only this user can read, and Dex is started with it;
//! when the settings change, Dex is restarted with the new configuration, and stopped when `dex.config`
//! goes away. `berth run` does this itself when a `dex` binary is at hand; `berth dex run` does it in a Dex
//! container beside the server.

use super::config::{self, DEX_CONFIG_KEY, SecretValues, URL_KEY};
use berth_controller::SettingsSource;
use berth_controller::settings_source::ARGOCD_CM;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// How Dex is run.
#[derive(Clone, Debug)]
pub struct DexRun {
    /// The `dex` binary.
    pub binary: PathBuf,
    /// Where Dex serves HTTP (`127.0.0.1:5556`).
    pub listen: String,
    /// A private directory for the generated configuration.
    pub dir: PathBuf,
}

/// Dex's configuration for the settings now, or why there is none (no `dex.config`, no `url`, a reference
/// that names nothing).
pub async fn generate_config(
    client: &kube::Client,
    namespace: &str,
    argocd_cm: &BTreeMap<String, String>,
    argocd_secret: &BTreeMap<String, String>,
    listen: &str,
) -> Result<String, String> {
    let text = argocd_cm
        .get(DEX_CONFIG_KEY)
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| format!("argocd-cm has no {DEX_CONFIG_KEY}"))?;
    let url = argocd_cm
        .get(URL_KEY)
        .map(|u| u.trim().to_string())
        .filter(|u| !u.is_empty())
        .ok_or_else(|| format!("argocd-cm has no {URL_KEY}: Dex's issuer is <url>/api/dex"))?;
    let others = super::referenced_secrets(client, namespace, &[text]).await;
    let secrets = SecretValues { argocd_secret: Some(argocd_secret), others };
    let mut warnings = Vec::new();
    let resolved = config::resolved_dex_config(text, &secrets, &mut warnings).map_err(|e| e.to_string())?;
    for w in warnings {
        tracing::warn!("argocd-cm: {w}");
    }
    let key = argocd_secret.get("server.secretkey").map(String::as_bytes).unwrap_or_default();
    if key.iter().all(u8::is_ascii_whitespace) {
        return Err("argocd-secret has no server.secretkey: Dex's client secret derives from it".into());
    }
    Ok(super::dex::generate(&url, &resolved, key, listen))
}

/// Keeps Dex running with the configuration the settings give, until `shutdown` resolves.
pub async fn supervise(
    client: kube::Client,
    namespace: String,
    settings: SettingsSource,
    run: DexRun,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let mut updates = settings.subscribe();
    let mut child: Option<tokio::process::Child> = None;
    let mut running: Option<String> = None;
    let path = run.dir.join("dex.yaml");
    tokio::pin!(shutdown);
    loop {
        let objects = settings.current();
        let wanted = generate_config(
            &client,
            &namespace,
            objects.config_map(ARGOCD_CM),
            objects.argocd_secret(),
            &run.listen,
        )
        .await;
        // A Dex that exited is started again (after its log says why) with the same configuration.
        let exited = child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))));
        match wanted {
            Ok(config) if running.as_deref() != Some(config.as_str()) || exited || child.is_none() => {
                if let Some(mut c) = child.take() {
                    let _ = c.kill().await;
                }
                match write_private(&path, &config) {
                    // Dex parses what its connectors' providers send: it gets no variable of berth's (no
                    // credentials, no KUBECONFIG), only a PATH.
                    Ok(()) => match tokio::process::Command::new(&run.binary)
                        .arg("serve")
                        .arg(&path)
                        .env_clear()
                        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
                        .kill_on_drop(true)
                        .spawn()
                    {
                        Ok(c) => {
                            tracing::info!(listen = %run.listen, "Dex started");
                            child = Some(c);
                            running = Some(config);
                        }
                        Err(e) => tracing::warn!(binary = %run.binary.display(), "starting Dex: {e}"),
                    },
                    Err(e) => tracing::warn!("writing Dex's configuration: {e}"),
                }
            }
            Ok(_) => {}
            Err(reason) => {
                if let Some(mut c) = child.take() {
                    let _ = c.kill().await;
                    tracing::info!("Dex stopped: {reason}");
                }
                running = None;
            }
        }
        tokio::select! {
            _ = &mut shutdown => break,
            changed = updates.changed() => if changed.is_err() { break },
            _ = tokio::time::sleep(std::time::Duration::from_secs(5)), if child.is_some() => {}
        }
    }
    if let Some(mut c) = child {
        let _ = c.kill().await;
    }
    // The configuration holds client secrets: it goes with the Dex it was written for.
    let _ = std::fs::remove_file(&path);
}

/// A new directory under the temporary directory, readable by this user only, for Dex's configuration: a
/// random name created anew (never one that exists, nor a symlink someone put there).
pub fn private_dir() -> std::io::Result<PathBuf> {
    use rand::RngExt;
    use std::os::unix::fs::DirBuilderExt;
    let mut last = None;
    for _ in 0..8 {
        let name = format!("berth-dex-{:016x}", rand::rng().random::<u64>());
        let dir = std::env::temp_dir().join(name);
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no directory could be created")))
}

/// Writes `text` to `path` readable by this user only (it holds client secrets).
pub fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(tmp, path)
}
