//! What the API reads of the controller, from what the controller already holds (its cluster cache and
//! owner index, its targets and compare verdicts, its health assessment with Lua): the resource tree,
//! managed resources and manifests, revision metadata. Nothing here lists the cluster.

use berth_engine::normalize::{self, IgnoreRule};
use berth_engine::resource::ResourceKey;
use berth_engine::sync::{self};
use std::collections::HashSet;
use std::time::Duration;

use crate::pass::target::TargetError;
use crate::{Controller, Level};

/// Why the controller cannot answer for an application.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error("application {0} not found")]
    NotFound(String),
    /// Its target cannot be loaded (the same message as its condition).
    #[error("{0}")]
    Target(String),
    /// The revision asked about cannot be read.
    #[error("{0}")]
    Revision(String),
}

impl From<TargetError> for ViewError {
    fn from(e: TargetError) -> Self {
        ViewError::Target(e.to_string())
    }
}

/// A node of an application's resource tree, as Argo CD's ApplicationTree lists it.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TreeNode {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub resource_version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    pub parent_refs: Vec<ParentRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<NodeHealth>,
    pub info: Vec<InfoItem>,
    pub images: Vec<String>,
}

/// The owner a node hangs from.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ParentRef {
    pub group: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct NodeHealth {
    pub status: String,
    pub message: String,
}

/// A line of a node's summary (`Ready 2/2`, a Pod's `Status Reason`).
#[derive(Clone, Debug, serde::Serialize)]
pub struct InfoItem {
    pub name: String,
    pub value: String,
}

/// The node for a live object; `health` is the controller's assessment (built-in or Lua).
fn tree_node(
    key: &ResourceKey,
    obj: &serde_json::Value,
    parents: Vec<ParentRef>,
    health: Option<berth_engine::health::Health>,
) -> TreeNode {
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    let version = berth_engine::resource::split_api_version(obj["apiVersion"].as_str().unwrap_or_default())
        .1
        .to_string();
    let pod_spec = if key.kind == "Pod" { &obj["spec"] } else { &obj["spec"]["template"]["spec"] };
    let images = pod_spec["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["image"].as_str().map(str::to_string))
        .collect();
    let mut info = Vec::new();
    if matches!(key.kind.as_str(), "Deployment" | "StatefulSet" | "ReplicaSet") {
        let ready = obj["status"]["readyReplicas"].as_i64().unwrap_or(0);
        let wanted = obj["spec"]["replicas"].as_i64().unwrap_or(1);
        info.push(InfoItem { name: "Ready".into(), value: format!("{ready}/{wanted}") });
    }
    if key.kind == "Pod" {
        let phase = obj["status"]["phase"].as_str().unwrap_or("Unknown");
        info.push(InfoItem { name: "Status Reason".into(), value: phase.into() });
    }
    TreeNode {
        group: key.group.clone(),
        version,
        kind: key.kind.clone(),
        namespace: key.namespace.clone(),
        name: key.name.clone(),
        uid: text(&obj["metadata"]["uid"]),
        resource_version: text(&obj["metadata"]["resourceVersion"]),
        created_at: obj["metadata"]["creationTimestamp"].as_str().map(str::to_string),
        parent_refs: parents,
        health: health.map(|h| NodeHealth { status: h.status.as_str().into(), message: h.message }),
        info,
        images,
    }
}

/// The tree of `roots` (an application's objects) and everything they own, generation by generation,
/// from an owner index (`children_of(uid)`): a plain function, tested without a cluster.
pub fn resource_tree(
    roots: Vec<(ResourceKey, std::sync::Arc<serde_json::Value>)>,
    children_of: impl Fn(&str) -> Vec<(ResourceKey, std::sync::Arc<serde_json::Value>)>,
    health_of: impl Fn(&serde_json::Value) -> Option<berth_engine::health::Health>,
) -> Vec<TreeNode> {
    let mut nodes = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut generation: Vec<(ResourceKey, std::sync::Arc<serde_json::Value>, Vec<ParentRef>)> =
        roots.into_iter().map(|(k, o)| (k, o, vec![])).collect();
    while !generation.is_empty() {
        let mut next = Vec::new();
        for (key, obj, parents) in generation {
            let uid = obj["metadata"]["uid"].as_str().unwrap_or_default().to_string();
            if !uid.is_empty() && !seen.insert(uid.clone()) {
                continue;
            }
            if !uid.is_empty() {
                let me = ParentRef {
                    group: key.group.clone(),
                    kind: key.kind.clone(),
                    namespace: key.namespace.clone(),
                    name: key.name.clone(),
                    uid: uid.clone(),
                };
                for (child_key, child) in children_of(&uid) {
                    next.push((child_key, child, vec![me.clone()]));
                }
            }
            nodes.push(tree_node(&key, &obj, parents, health_of(&obj)));
        }
        generation = next;
    }
    nodes
}

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

/// Whether berth's last request to a cluster succeeded, as Argo CD's `connectionState.status` says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum ConnectionStatus {
    Successful,
    Failed,
    /// Berth has not reached for the cluster (no application deploys there yet).
    Unknown,
}

/// Argo CD's `ConnectionState` of a cluster.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionState {
    pub status: ConnectionStatus,
    /// Why the connection failed or is unknown; empty when it succeeded.
    pub message: String,
    /// When berth last reached for the cluster (RFC 3339, seconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempted_at: Option<String>,
}

/// Argo CD's `ClusterCacheInfo`: what the controller's cache of a cluster holds.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CacheInfo {
    /// The API resource kinds the cluster serves that can be watched (berth watches them on demand).
    #[serde(skip_serializing_if = "is_zero")]
    pub apis_count: i64,
    /// The live objects berth's watches of the cluster hold in memory.
    #[serde(skip_serializing_if = "is_zero")]
    pub resources_count: i64,
    /// When a watch of the cluster last listed its kind (RFC 3339, seconds); none before the first list.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_cache_sync_time: Option<String>,
}

impl CacheInfo {
    /// The info of a cluster's cache: `apis` the kinds its discovery found, the rest from its watches.
    pub(crate) fn of(apis: usize, stats: &berth_engine::cache::CacheStats) -> CacheInfo {
        CacheInfo {
            apis_count: apis as i64,
            resources_count: stats.resources as i64,
            last_cache_sync_time: stats
                .last_synced
                .and_then(|t| jiff::Timestamp::try_from(t).ok())
                .map(rfc3339_seconds),
        }
    }
}

/// A time as Argo CD's API writes one (`metav1.Time`): RFC 3339 in UTC, whole seconds.
fn rfc3339_seconds(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// A cluster as the controller knows it, in the shape of Argo CD's `ClusterInfo` (the API's `info`).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterInfo {
    pub connection_state: ConnectionState,
    /// `major.minor` (`1.31`), as Argo CD shows it; empty until the cluster has answered.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub server_version: String,
    pub cache_info: CacheInfo,
    /// The applications whose destination resolves to this cluster.
    pub applications_count: i64,
}

/// The info of a cluster from what the controller recorded: `connection` is the last request's outcome
/// (`None`: none yet, or no entry for the cluster), `cache_info` what its cache holds.
pub(crate) fn cluster_info(
    connection: Option<&crate::clusters::Connection>,
    cache_info: CacheInfo,
    applications: usize,
) -> ClusterInfo {
    let attempted_at = connection.map(|c| rfc3339_seconds(c.attempted_at));
    let (connection_state, server_version) = match connection.map(|c| &c.result) {
        Some(Ok(version)) => (
            ConnectionState { status: ConnectionStatus::Successful, message: String::new(), attempted_at },
            major_minor(version),
        ),
        Some(Err(problem)) => (
            ConnectionState { status: ConnectionStatus::Failed, message: problem.clone(), attempted_at },
            String::new(),
        ),
        None => {
            let message = if applications == 0 {
                "no application deploys to this cluster: berth does not connect to it until one does"
            } else {
                "berth has not connected to this cluster yet"
            };
            (
                ConnectionState { status: ConnectionStatus::Unknown, message: message.into(), attempted_at },
                String::new(),
            )
        }
    };
    ClusterInfo { connection_state, server_version, cache_info, applications_count: applications as i64 }
}

/// `1.31` of `1.31.2` or `1.31.2-gke.100`: Argo CD shows a cluster's version as major and minor.
fn major_minor(version: &str) -> String {
    let mut parts = version.split(['.', '-', '+']);
    match (parts.next(), parts.next()) {
        (Some(major), Some(minor)) => format!("{major}.{minor}"),
        _ => version.to_string(),
    }
}

impl Controller {
    /// Whether the in-cluster is a destination (argocd-cm `cluster.inClusterEnabled` is not `"false"`).
    pub fn in_cluster_enabled(&self) -> bool {
        self.settings().in_cluster_enabled
    }

    /// What the controller knows of the cluster at `server` (compared without a trailing slash): how its
    /// last request there ended, its version, the kinds its discovery found, the objects its watches hold
    /// and when they last listed, and how many applications deploy there. A cluster no application names
    /// has no entry: its state is `Unknown`. Nothing here contacts a cluster.
    pub fn cluster_info(&self, server: &str) -> ClusterInfo {
        let entry = self.clusters.all().into_iter().find(|c| crate::clusters::same_server(&c.server, server));
        let applications = self
            .apps
            .state()
            .iter()
            .filter(|app| self.cluster_of(app).is_ok_and(|c| crate::clusters::same_server(&c.server, server)))
            .count();
        let connection = entry.as_ref().and_then(|c| c.connection());
        // Discovery lists each kind as `group/version/Kind` besides its `group/version`.
        let cache_info = entry.as_ref().map_or_else(CacheInfo::default, |c| {
            let apis = c
                .cache
                .api_versions()
                .iter()
                .filter(|v| v.rsplit('/').next().is_some_and(|last| last.starts_with(char::is_uppercase)))
                .count();
            CacheInfo::of(apis, &c.cache.stats())
        });
        cluster_info(connection.as_ref(), cache_info, applications)
    }

    /// The application's resource tree: the objects it tracks (those its project permits) and what they
    /// own, from the cluster cache's owner index, each with the health its status uses.
    pub fn resource_tree(&self, name: &str) -> Result<Vec<TreeNode>, ViewError> {
        let app = self.application(name).ok_or_else(|| ViewError::NotFound(name.into()))?;
        let settings = self.settings();
        let cluster = self.cluster_of(&app)?;
        let (mut roots, _) = self.permitted_tracked(&app, &cluster);
        roots.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(resource_tree(roots, |uid| cluster.cache.children(uid), |obj| settings.health(obj)))
    }

    /// Author, date and message of a revision of the application's git source (`source_index` of
    /// `spec.sources`), for the API's `revisions/{revision}/metadata`. A branch or tag is resolved first.
    pub async fn revision_metadata(
        &self,
        name: &str,
        revision: &str,
        source_index: usize,
    ) -> Result<berth_api::application::RevisionMetadata, ViewError> {
        let app = self.application(name).ok_or_else(|| ViewError::NotFound(name.into()))?;
        let sources = self.validate(&app)?;
        let source = sources.get(source_index).ok_or_else(|| {
            ViewError::Revision(format!(
                "source index {source_index} is out of range ({} sources)",
                sources.len()
            ))
        })?;
        if source.chart.is_some() {
            return Err(ViewError::Revision(format!(
                "revision {revision} is a chart version: only git sources have revision metadata"
            )));
        }
        let creds = self.creds_for(&app, &source.repo_url);
        let full_sha = revision.len() == 40 && revision.bytes().all(|b| b.is_ascii_hexdigit());
        let sha = if full_sha {
            revision.to_string()
        } else {
            self.git
                .resolve(&source.repo_url, revision, &creds, Duration::from_secs(5))
                .await
                .map_err(|e| ViewError::Revision(format!("cannot resolve revision {revision:?}: {e}")))?
        };
        self.git
            .fetch(&source.repo_url, &sha, &creds)
            .await
            .map_err(|e| ViewError::Revision(format!("cannot fetch {sha}: {e}")))?;
        let info = self
            .git
            .commit_info(&source.repo_url, &sha)
            .await
            .map_err(|e| ViewError::Revision(format!("{sha}: {e}")))?;
        Ok(berth_api::application::RevisionMetadata {
            author: Some(info.author),
            date: Some(info.date),
            message: Some(info.message),
            tags: vec![],
        })
    }

    /// The application's desired objects (its current target, from the render cache) and their live
    /// counterparts, for the API's managed-resources and manifests. Only objects the last compare found
    /// out of sync are dry-run again for their predicted state; an object in sync is predicted as it is.
    pub async fn managed_resources(&self, name: &str) -> Result<(String, Vec<ManagedResource>), ViewError> {
        let app = self.application(name).ok_or_else(|| ViewError::NotFound(name.into()))?;
        let sources = self.validate(&app)?;
        let target = self.target(&app, &sources, None, Level::Compare, false).await?;
        let cluster = self.cluster_of(&app)?;
        let settings = self.settings();
        let rules = settings.ignore_rules_for(&app);
        let client_side = crate::pass::client_side_managers(&app, &crate::pass::sync_options(&app, None));
        let mut out = Vec::new();
        let mut keys: HashSet<ResourceKey> = HashSet::new();
        for d in &target.objects {
            keys.insert(d.key.clone());
            let hook = sync::hooks::is_hook(&d.object);
            let live = if hook { None } else { self.live_view(name, &d.key, &cluster) };
            let predicted = match (&live, hook) {
                (Some(live), false) if self.verified_in_sync(name, d, live) => Some((**live).clone()),
                (Some(_), false) => match cluster.cache.kind(&d.key.group_kind()).await {
                    Ok(info) => {
                        let mode = berth_engine::apply::ApplyMode {
                            dry_run: true,
                            client_side: client_side.clone(),
                            ..Default::default()
                        };
                        berth_engine::apply::apply_with(&cluster.client, &info, &d.object, mode).await.ok()
                    }
                    Err(_) => None,
                },
                _ => None,
            };
            out.push(self.managed(&d.key, Some(&d.object), live.as_deref(), predicted, &rules, hook));
        }
        for (key, live) in self.permitted_tracked(&app, &cluster).0 {
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

#[cfg(test)]
mod tests {
    use super::*;
    use berth_engine::health::{Health, HealthStatus};
    use std::sync::Arc;

    fn obj(kind: &str, name: &str, uid: &str, owner: Option<&str>) -> (ResourceKey, Arc<serde_json::Value>) {
        let api = if kind == "Pod" { "v1" } else { "apps/v1" };
        let group = if kind == "Pod" { "" } else { "apps" };
        let mut o = serde_json::json!({"apiVersion": api, "kind": kind,
            "metadata": {"name": name, "namespace": "web", "uid": uid, "resourceVersion": "3"},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [{"image": "nginx:1.27"}]}}},
            "status": {"readyReplicas": 1}});
        if let Some(owner) = owner {
            o["metadata"]["ownerReferences"] = serde_json::json!([{"uid": owner}]);
        }
        (ResourceKey::new(group, kind, "web", name), Arc::new(o))
    }

    #[test]
    fn the_tree_hangs_each_owned_object_from_its_owner_with_the_controllers_health() {
        let index = [obj("ReplicaSet", "web-1", "r1", Some("d1")), obj("Pod", "web-1-a", "p1", Some("r1"))];
        let children_of = |uid: &str| {
            index
                .iter()
                .filter(|(_, o)| o["metadata"]["ownerReferences"][0]["uid"] == uid)
                .cloned()
                .collect::<Vec<_>>()
        };
        // A custom (Lua) verdict the built-in checks would not give: the tree shows the same as status.
        let health_of = |o: &serde_json::Value| {
            (o["kind"] == "Deployment").then(|| Health::new(HealthStatus::Degraded, "custom check"))
        };
        let nodes = resource_tree(vec![obj("Deployment", "web", "d1", None)], children_of, health_of);
        let names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["web", "web-1", "web-1-a"]);
        assert_eq!(nodes[0].health.as_ref().map(|h| h.status.as_str()), Some("Degraded"));
        assert_eq!(nodes[0].health.as_ref().map(|h| h.message.as_str()), Some("custom check"));
        assert_eq!(nodes[0].info[0].value, "1/2");
        assert_eq!(nodes[0].images, ["nginx:1.27"]);
        assert!(nodes[0].parent_refs.is_empty());
        assert_eq!(nodes[1].parent_refs[0].uid, "d1");
        assert_eq!(nodes[1].parent_refs[0].kind, "Deployment");
        assert_eq!(nodes[2].parent_refs[0].name, "web-1");
        assert_eq!(nodes[2].version, "v1");
        assert_eq!(nodes[2].group, "");
    }

    #[test]
    fn an_ownership_cycle_or_a_shared_child_is_listed_once() {
        let a = obj("ReplicaSet", "a", "ua", Some("ub"));
        let b = obj("ReplicaSet", "b", "ub", Some("ua"));
        let all = [a.clone(), b.clone()];
        let children_of = |uid: &str| {
            all.iter().filter(|(_, o)| o["metadata"]["ownerReferences"][0]["uid"] == uid).cloned().collect()
        };
        let nodes = resource_tree(vec![a, b], children_of, |_| None);
        assert_eq!(nodes.len(), 2);
    }

    fn connection(result: Result<&str, &str>) -> crate::clusters::Connection {
        crate::clusters::Connection {
            attempted_at: "2026-12-05T03:47:59.123Z".parse().unwrap(),
            result: result.map(str::to_string).map_err(str::to_string),
        }
    }

    #[test]
    fn a_cluster_that_answered_is_successful_with_its_major_and_minor_version_in_argo_cds_shape() {
        let stats = berth_engine::cache::CacheStats {
            resources: 412,
            kinds: 9,
            last_synced: Some(std::time::UNIX_EPOCH + Duration::from_millis(1_796_442_479_123)),
        };
        let info = cluster_info(Some(&connection(Ok("1.31.2-gke.100"))), CacheInfo::of(57, &stats), 1);
        assert_eq!(
            serde_json::to_value(&info).unwrap(),
            serde_json::json!({
                "connectionState": {"status": "Successful", "message": "", "attemptedAt": "2026-12-05T03:47:59Z"},
                "serverVersion": "1.31",
                "cacheInfo": {"apisCount": 57, "resourcesCount": 412,
                              "lastCacheSyncTime": "2026-12-05T03:47:59Z"},
                "applicationsCount": 1,
            })
        );
        assert_eq!(
            cluster_info(Some(&connection(Ok("1.36.3"))), CacheInfo::default(), 0).server_version,
            "1.36"
        );
    }

    #[test]
    fn a_cluster_that_did_not_answer_is_failed_with_the_reason_and_no_version() {
        let info = cluster_info(Some(&connection(Err("connection refused"))), CacheInfo::default(), 2);
        assert_eq!(
            serde_json::to_value(&info).unwrap(),
            serde_json::json!({
                "connectionState": {"status": "Failed", "message": "connection refused",
                                    "attemptedAt": "2026-12-05T03:47:59Z"},
                "cacheInfo": {},
                "applicationsCount": 2,
            })
        );
    }

    #[test]
    fn a_cluster_never_reached_is_unknown_and_says_why() {
        let unused = cluster_info(None, CacheInfo::default(), 0);
        assert_eq!(unused.connection_state.status, ConnectionStatus::Unknown);
        assert!(unused.connection_state.message.contains("no application deploys"), "{unused:?}");
        let value = serde_json::to_value(&unused).unwrap();
        assert_eq!(value["connectionState"]["status"], "Unknown");
        assert!(
            value["connectionState"].get("attemptedAt").is_none() && value.get("serverVersion").is_none()
        );
        assert_eq!(value["applicationsCount"], 0);
        let pending = cluster_info(None, CacheInfo::default(), 3);
        assert!(pending.connection_state.message.contains("not connected"), "{pending:?}");
    }
}
