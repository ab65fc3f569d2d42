//! The control namespace's configuration objects — argocd-cm, argocd-rbac-cm, argocd-ssh-known-hosts-cm and
//! argocd-secret — watched once and shared by every reader in the process: `berth run` starts one source and
//! hands it to the controller and the API server, so each object has one watch and one copy.

use berth_engine::outage::{WatchRetry, retried};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::Api;
use kube::runtime::watcher;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

/// Argo CD's settings: accounts, resource customizations, polling, UI and webhook options.
pub const ARGOCD_CM: &str = "argocd-cm";
/// Argo CD's RBAC policy.
pub const ARGOCD_RBAC_CM: &str = "argocd-rbac-cm";
/// The SSH hosts git trusts (`ssh_known_hosts`).
pub const SSH_KNOWN_HOSTS_CM: &str = "argocd-ssh-known-hosts-cm";
/// The server's signing key, passwords, tokens and webhook secrets.
pub const ARGOCD_SECRET: &str = "argocd-secret";

const CONFIG_MAPS: [&str; 3] = [ARGOCD_CM, ARGOCD_RBAC_CM, SSH_KNOWN_HOSTS_CM];

/// A configuration object's data (a Secret's decoded as text).
pub type Data = BTreeMap<String, String>;

/// The configuration objects as last seen; one that does not exist reads as empty.
#[derive(Clone, Default, PartialEq)]
pub struct ConfigObjects {
    config_maps: BTreeMap<String, Data>,
    secret: Data,
}

impl ConfigObjects {
    /// One of the watched ConfigMaps ([`ARGOCD_CM`], [`ARGOCD_RBAC_CM`], [`SSH_KNOWN_HOSTS_CM`]).
    pub fn config_map(&self, name: &str) -> &Data {
        static EMPTY: Data = BTreeMap::new();
        self.config_maps.get(name).unwrap_or(&EMPTY)
    }

    /// argocd-secret's data.
    pub fn argocd_secret(&self) -> &Data {
        &self.secret
    }
}

/// `Debug` names the objects and keys, never a value (argocd-secret holds passwords and keys).
impl std::fmt::Debug for ConfigObjects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys = |d: &Data| d.keys().cloned().collect::<Vec<_>>();
        f.debug_struct("ConfigObjects")
            .field("config_maps", &self.config_maps.iter().map(|(k, v)| (k, keys(v))).collect::<Vec<_>>())
            .field("argocd_secret_keys", &keys(&self.secret))
            .finish()
    }
}

/// A live view of the configuration objects: the current ones, and a receiver that wakes on each change.
#[derive(Clone)]
pub struct SettingsSource {
    objects: tokio::sync::watch::Receiver<Arc<ConfigObjects>>,
}

impl std::fmt::Debug for SettingsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SettingsSource").field(&**self.objects.borrow()).finish()
    }
}

enum Change {
    Map(String, Data),
    Secret(Data),
    /// A watch finished its first list.
    Listed,
}

impl SettingsSource {
    /// Starts the watches of `namespace` and returns once both have listed (so a reader never takes an
    /// object that exists for an absent one); the watches go on for the life of the process.
    pub async fn start(client: kube::Client, namespace: &str) -> Result<SettingsSource, String> {
        let maps = retried(
            watcher(Api::<ConfigMap>::namespaced(client.clone(), namespace), watcher::Config::default()),
            WatchRetry::new("ConfigMaps argocd-cm, argocd-rbac-cm, argocd-ssh-known-hosts-cm"),
        )
        .filter_map(|event| async move {
            match event {
                watcher::Event::Apply(cm) | watcher::Event::InitApply(cm) => {
                    let name = cm.metadata.name.unwrap_or_default();
                    CONFIG_MAPS
                        .contains(&name.as_str())
                        .then(|| Change::Map(name, cm.data.unwrap_or_default()))
                }
                watcher::Event::Delete(cm) => {
                    let name = cm.metadata.name.unwrap_or_default();
                    CONFIG_MAPS.contains(&name.as_str()).then(|| Change::Map(name, Data::new()))
                }
                watcher::Event::InitDone => Some(Change::Listed),
                watcher::Event::Init => None,
            }
        });
        let secret = retried(
            watcher(
                Api::<Secret>::namespaced(client, namespace),
                watcher::Config::default().fields(&format!("metadata.name={ARGOCD_SECRET}")),
            ),
            WatchRetry::new(format!("Secret {ARGOCD_SECRET}")),
        )
        .filter_map(|event| async move {
            match event {
                watcher::Event::Apply(s) | watcher::Event::InitApply(s) => {
                    Some(Change::Secret(secret_text(&s)))
                }
                watcher::Event::Delete(_) => Some(Change::Secret(Data::new())),
                watcher::Event::InitDone => Some(Change::Listed),
                watcher::Event::Init => None,
            }
        });
        let (tx, rx) = tokio::sync::watch::channel(Arc::new(ConfigObjects::default()));
        let (listed_tx, listed_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let mut changes = std::pin::pin!(futures::stream::select(maps, secret));
            let mut current = ConfigObjects::default();
            let mut listed = 0;
            let mut listed_tx = Some(listed_tx);
            let mut reported = BTreeSet::new();
            while let Some(change) = changes.next().await {
                match change {
                    Change::Map(name, data) => {
                        current.config_maps.insert(name, data);
                    }
                    Change::Secret(data) => current.secret = data,
                    Change::Listed => listed += 1,
                }
                if listed >= 2 {
                    for key in newly_unsupported(current.config_map(ARGOCD_CM), &mut reported) {
                        tracing::warn!(
                            key = %key,
                            "argocd-cm: berth does not support this key; it has no effect (listed in /api/v1/settings)"
                        );
                    }
                    if let Some(ready) = listed_tx.take() {
                        let _ = ready.send(());
                    }
                    tx.send_if_modified(|shared| {
                        let changed = **shared != current;
                        if changed {
                            *shared = Arc::new(current.clone());
                        }
                        changed
                    });
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(60), listed_rx)
            .await
            .map_err(|_| {
                format!("{ARGOCD_CM}, {ARGOCD_RBAC_CM} and {ARGOCD_SECRET} were not listed within 60 s")
            })?
            .map_err(|_| "the configuration watch stopped before its first list".to_string())?;
        Ok(SettingsSource { objects: rx })
    }

    /// The objects now.
    pub fn current(&self) -> Arc<ConfigObjects> {
        self.objects.borrow().clone()
    }

    /// A receiver whose `changed()` wakes on every change after this call.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<Arc<ConfigObjects>> {
        let mut rx = self.objects.clone();
        rx.mark_unchanged();
        rx
    }
}

/// The keys of argocd-cm berth does not read (see [`crate::settings_keys`]) that are not in `reported` yet;
/// they are added to it, so each is logged once per process: at the first read, or when it first appears.
fn newly_unsupported(argocd_cm: &Data, reported: &mut BTreeSet<String>) -> Vec<String> {
    crate::settings_keys::unsupported(argocd_cm)
        .into_iter()
        .filter(|key| reported.insert(key.clone()))
        .collect()
}

/// A Secret's data as text (Argo CD's keys are all text; a value that is not UTF-8 reads lossily).
pub fn secret_text(secret: &Secret) -> Data {
    secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), String::from_utf8_lossy(&v.0).into_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_unsupported_key_is_reported_once_when_first_seen() {
        let mut reported = BTreeSet::new();
        let mut cm: Data = [("ga.trackingid", ""), ("timeout.reconciliation", "3m"), ("ui.cssurl", "x")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(newly_unsupported(&cm, &mut reported), ["ga.trackingid", "ui.cssurl"]);
        assert!(newly_unsupported(&cm, &mut reported).is_empty(), "already logged");
        cm.insert("users.session.duration".into(), "1h".into());
        assert_eq!(newly_unsupported(&cm, &mut reported), ["users.session.duration"]);
    }
}
