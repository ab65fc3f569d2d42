//! What the API reads of the controller: managed resources, revision metadata.

use berth_engine::normalize::{self, IgnoreRule};
use berth_engine::resource::ResourceKey;
use berth_engine::sync::{self};
use std::collections::HashSet;
use std::time::Duration;

use crate::{Controller, Level};

/// One object of an application as Argo CD's managed-resources call shows it: the desired state, the live
/// state, and both normalised the way the compare sees them (Secrets masked).
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ManagedResource {
    pub group: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub target_state: String,
    pub live_state: String,
    pub normalized_live_state: String,
    pub predicted_live_state: String,
    pub hook: bool,
}

impl Controller {
    /// The application's desired objects (its current target, from the render cache) and their live
    /// counterparts, for the API's managed-resources and manifests.
    /// Author, date and message of a revision of the application's git source (`source_index` of
    /// `spec.sources`), for the API's `revisions/{revision}/metadata`. A branch or tag is resolved first.
    pub async fn revision_metadata(
        &self,
        name: &str,
        revision: &str,
        source_index: usize,
    ) -> Result<berth_api::application::RevisionMetadata, String> {
        let key = kube::runtime::reflector::ObjectRef::new(name).within(&self.config.namespace);
        let app = self.apps.get(&key).ok_or_else(|| format!("application {name} not found"))?;
        let sources = self.validate(&app).map_err(|e| e.to_string())?;
        let source = sources.get(source_index).ok_or_else(|| {
            format!("source index {source_index} is out of range ({} sources)", sources.len())
        })?;
        if source.chart.is_some() {
            return Err(format!(
                "revision {revision} is a chart version: only git sources have revision metadata"
            ));
        }
        let creds = self.creds_for(&app, &source.repo_url);
        let full_sha = revision.len() == 40 && revision.bytes().all(|b| b.is_ascii_hexdigit());
        let sha = if full_sha {
            revision.to_string()
        } else {
            self.git
                .resolve(&source.repo_url, revision, &creds, Duration::from_secs(5))
                .await
                .map_err(|e| format!("cannot resolve revision {revision:?}: {e}"))?
        };
        self.git
            .fetch(&source.repo_url, &sha, &creds)
            .await
            .map_err(|e| format!("cannot fetch {sha}: {e}"))?;
        let info = self.git.commit_info(&source.repo_url, &sha).await.map_err(|e| format!("{sha}: {e}"))?;
        Ok(berth_api::application::RevisionMetadata {
            author: Some(info.author),
            date: Some(info.date),
            message: Some(info.message),
            tags: vec![],
        })
    }

    pub async fn managed_resources(&self, name: &str) -> Result<(String, Vec<ManagedResource>), String> {
        let key = kube::runtime::reflector::ObjectRef::new(name).within(&self.config.namespace);
        let app = self.apps.get(&key).ok_or_else(|| format!("application {name} not found"))?;
        let sources = self.validate(&app).map_err(|e| e.to_string())?;
        let target =
            self.target(&app, &sources, None, Level::Compare, false).await.map_err(|e| e.to_string())?;
        let settings = self.settings();
        let rules = settings.ignore_rules_for(&app);
        let mut out = Vec::new();
        let mut keys: HashSet<ResourceKey> = HashSet::new();
        for d in &target.objects {
            keys.insert(d.key.clone());
            let hook = sync::hooks::is_hook(&d.object);
            let live = if hook { None } else { self.live_view(name, &d.key) };
            let predicted = match (&live, hook) {
                (Some(_), false) => match self.cache.kind(&d.key.group_kind()).await {
                    Ok(info) => berth_engine::apply::apply(&self.client, &info, &d.object, true).await.ok(),
                    Err(_) => None,
                },
                _ => None,
            };
            out.push(self.managed(&d.key, Some(&d.object), live.as_deref(), predicted, &rules, hook));
        }
        for (key, live) in self.permitted_tracked(&app).0 {
            if !keys.contains(&key) && !sync::hooks::is_hook(&live) {
                out.push(self.managed(&key, None, Some(&live), None, &rules, false));
            }
        }
        Ok((target.revision, out))
    }

    pub(crate) fn managed(
        &self,
        key: &ResourceKey,
        target: Option<&serde_json::Value>,
        live: Option<&serde_json::Value>,
        predicted: Option<serde_json::Value>,
        rules: &[IgnoreRule],
        hook: bool,
    ) -> ManagedResource {
        let mut normalized_live = live.cloned();
        let mut predicted = predicted.or_else(|| target.cloned());
        if let (Some(live_obj), Some(n)) = (live, normalized_live.as_mut()) {
            let _ = normalize::apply_ignore_rules(n, live_obj, key, rules);
            normalize::strip_server_fields(n);
        }
        if let Some(p) = predicted.as_mut() {
            if let Some(live_obj) = live {
                let _ = normalize::apply_ignore_rules(p, live_obj, key, rules);
            }
            normalize::strip_server_fields(p);
        }
        let mut target = target.cloned();
        let mut live = live.cloned();
        if let (Some(a), Some(b)) = (normalized_live.as_mut(), predicted.as_mut()) {
            normalize::mask_secret_pair(a, b);
        }
        if let (Some(a), Some(b)) = (live.as_mut(), target.as_mut()) {
            normalize::mask_secret_pair(a, b);
        }
        // A Secret that is only on one side is masked against itself.
        for v in [&mut target, &mut live, &mut normalized_live, &mut predicted].into_iter().flatten() {
            if v["kind"] == "Secret" {
                let mut copy = v.clone();
                normalize::mask_secret_pair(v, &mut copy);
            }
        }
        let text = |v: &Option<serde_json::Value>| {
            v.as_ref().map(|v| v.to_string()).unwrap_or_else(|| "null".into())
        };
        ManagedResource {
            group: key.group.clone(),
            kind: key.kind.clone(),
            namespace: key.namespace.clone(),
            name: key.name.clone(),
            target_state: text(&target),
            live_state: text(&live),
            normalized_live_state: text(&normalized_live),
            predicted_live_state: text(&predicted),
            hook,
        }
    }
}
