//! The cluster cache: live objects kept in memory by watches, one watch per kind that applications
//! manage, so compare, prune and the resource tree read memory instead of listing the API server.
//!
//! Kinds are watched on demand (`ensure_watched`), which keeps idle clusters cheap; every change to an
//! object that carries a tracking id is reported, so self-heal reacts to drift within a watch event.
//! The watches live as long as the cache: when its last clone is dropped they stop and its objects are freed.

use futures::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::discovery::{Discovery, Scope, verbs};
use kube::runtime::watcher;
use parking_lot::{Mutex, RwLock};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::mpsc::UnboundedSender;

use crate::outage::WatchRetry;
use crate::resource::{GroupKind, ResourceKey};
use crate::tracking::Tracking;

/// How the API server serves a kind.
#[derive(Clone, Debug)]
pub struct KindInfo {
    pub resource: ApiResource,
    pub namespaced: bool,
}

/// A change to an object; `app` is the application named by its tracking id (before or after the change).
#[derive(Clone, Debug, PartialEq)]
pub struct ObjectEvent {
    pub key: ResourceKey,
    pub apps: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("the cluster has no resource type {0} (is its CRD installed?)")]
    UnknownKind(GroupKind),
    #[error("discovery failed: {0}")]
    Discovery(#[source] kube::Error),
    #[error("the watch of {0} did not finish its initial list within {1:?}")]
    NotSynced(GroupKind, Duration),
    #[error("{0} is cluster-scoped, and berth manages only the namespaces {1:?} of this cluster")]
    ClusterScoped(GroupKind, Vec<String>),
}

type Objects = HashMap<(String, String), Arc<serde_json::Value>>;

#[derive(Default)]
struct State {
    kinds: HashMap<GroupKind, KindInfo>,
    discovered_at: Option<Instant>,
    /// Counts discoveries, so readers of `api_versions` know when to read again.
    generation: u64,
    objects: HashMap<GroupKind, Objects>,
    synced: HashMap<GroupKind, tokio::sync::watch::Receiver<bool>>,
    by_app: HashMap<String, HashSet<ResourceKey>>,
    /// Owner uid → the objects whose ownerReferences name it (ReplicaSets of a Deployment, its Pods...).
    children: HashMap<String, HashSet<ResourceKey>>,
    /// How objects name their application (argocd-cm tracking method, label key, installationID).
    tracking: Tracking,
    /// When a watch last listed its kind (its initial list, or the list after it was resumed).
    last_synced: Option<SystemTime>,
}

impl State {
    /// The live objects for these keys, sorted by key; keys of deleted objects are skipped.
    fn lookup(&self, keys: &HashSet<ResourceKey>) -> Vec<(ResourceKey, Arc<serde_json::Value>)> {
        let mut out: Vec<_> = keys
            .iter()
            .filter_map(|k| {
                let obj = self.objects.get(&k.group_kind())?.get(&(k.namespace.clone(), k.name.clone()))?;
                Some((k.clone(), obj.clone()))
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

/// What a cluster's cache holds, for Argo CD's cluster `cacheInfo`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// The live objects in memory, over every watched kind.
    pub resources: usize,
    /// The kinds watched.
    pub kinds: usize,
    /// When a watch last listed its kind (its initial list, or the list after it was resumed).
    pub last_synced: Option<SystemTime>,
}

#[derive(Clone)]
pub struct ClusterCache {
    client: kube::Client,
    state: Arc<RwLock<State>>,
    events: UnboundedSender<ObjectEvent>,
    /// The namespaces berth manages (a namespaced install); empty: the whole cluster.
    namespaces: Arc<Vec<String>>,
    /// With `namespaces`: cluster-scoped kinds are managed too (a cluster Secret's `clusterResources`).
    cluster_resources: bool,
    /// How long the API server keeps a watch open before it ends (and is resumed); `None`: its default.
    watch_timeout: Option<Duration>,
    /// Stops the watches when the last clone goes; the watch tasks hold everything above but not this.
    watches: Arc<Watches>,
}

/// The running watch tasks of one cache, aborted when it is dropped: a cluster nobody uses any more
/// neither keeps its watches open nor its objects in memory.
#[derive(Default)]
struct Watches(Mutex<Vec<tokio::task::AbortHandle>>);

impl Drop for Watches {
    fn drop(&mut self) {
        for task in self.0.get_mut().iter() {
            task.abort();
        }
    }
}

/// What one watch task needs of its cache: all of it but the [`Watches`] guard, which would keep it alive.
struct Feed {
    client: kube::Client,
    state: Arc<RwLock<State>>,
    events: UnboundedSender<ObjectEvent>,
    watch_timeout: Option<Duration>,
}

impl ClusterCache {
    pub fn new(client: kube::Client, events: UnboundedSender<ObjectEvent>) -> Self {
        ClusterCache {
            client,
            state: Arc::default(),
            events,
            namespaces: Arc::default(),
            cluster_resources: false,
            watch_timeout: None,
            watches: Arc::default(),
        }
    }

    /// Has the API server end each watch after `timeout` (it is resumed at once from where it was): for a
    /// client with a read timeout, which would otherwise cut a watch that has nothing to say for that long.
    pub fn with_watch_timeout(mut self, timeout: Duration) -> Self {
        self.watch_timeout = Some(timeout);
        self
    }

    /// Watches only `namespaces` (a namespaced install, whose Roles allow nothing else); cluster-scoped
    /// kinds are then refused. An empty list is the whole cluster.
    pub fn with_namespaces(mut self, namespaces: Vec<String>) -> Self {
        self.namespaces = Arc::new(namespaces);
        self
    }

    /// With [`Self::with_namespaces`]: cluster-scoped kinds are watched (cluster-wide) rather than refused,
    /// as a cluster Secret with `namespaces` and `clusterResources: "true"` asks.
    pub fn with_cluster_resources(mut self, yes: bool) -> Self {
        self.cluster_resources = yes;
        self
    }

    /// How a kind is served, running discovery again (at most every 5 s) when it is not known yet,
    /// for CRDs created after start.
    pub async fn kind(&self, gk: &GroupKind) -> Result<KindInfo, CacheError> {
        if let Some(info) = self.state.read().kinds.get(gk) {
            return Ok(info.clone());
        }
        let stale = self.state.read().discovered_at.is_none_or(|t| t.elapsed() > Duration::from_secs(5));
        if stale {
            self.discover().await?;
        }
        self.state.read().kinds.get(gk).cloned().ok_or_else(|| CacheError::UnknownKind(gk.clone()))
    }

    /// Forces a new discovery (after a sync created CRDs, for example).
    pub async fn discover(&self) -> Result<(), CacheError> {
        let discovery = Discovery::new(self.client.clone()).run().await.map_err(CacheError::Discovery)?;
        let mut kinds = HashMap::new();
        for group in discovery.groups() {
            for (ar, caps) in group.recommended_resources() {
                if !caps.supports_operation(verbs::WATCH) || !caps.supports_operation(verbs::LIST) {
                    continue;
                }
                let gk = GroupKind { group: ar.group.clone(), kind: ar.kind.clone() };
                kinds.insert(gk, KindInfo { namespaced: caps.scope == Scope::Namespaced, resource: ar });
            }
        }
        let mut state = self.state.write();
        state.kinds = kinds;
        state.discovered_at = Some(Instant::now());
        state.generation += 1;
        Ok(())
    }

    /// Sets how objects name their application (argocd-cm's tracking method, instance label key and
    /// `installationID`). A change re-indexes the objects already cached; returns whether it changed.
    pub fn set_tracking(&self, tracking: &Tracking) -> bool {
        let mut state = self.state.write();
        if state.tracking == *tracking {
            return false;
        }
        state.tracking = tracking.clone();
        let mut by_app: HashMap<String, HashSet<ResourceKey>> = HashMap::new();
        for objects in state.objects.values() {
            for obj in objects.values() {
                let Some(key) = ResourceKey::of(obj) else { continue };
                if let Some(app) = tracking.app_of(obj, &key) {
                    by_app.entry(app).or_default().insert(key);
                }
            }
        }
        state.by_app = by_app;
        true
    }

    /// Increases with every discovery (what `api_versions` returns can only change then).
    pub fn discovery_generation(&self) -> u64 {
        self.state.read().generation
    }

    /// Every API version the cluster serves, as `group/version` and `group/version/Kind` (Helm's
    /// `--api-versions`).
    pub fn api_versions(&self) -> Vec<String> {
        let state = self.state.read();
        let mut out = std::collections::BTreeSet::new();
        for info in state.kinds.values() {
            out.insert(info.resource.api_version.clone());
            out.insert(format!("{}/{}", info.resource.api_version, info.resource.kind));
        }
        out.into_iter().collect()
    }

    /// Starts watching a kind (once) and waits until its initial list is in memory.
    pub async fn ensure_watched(&self, gk: &GroupKind) -> Result<(), CacheError> {
        let info = self.kind(gk).await?;
        if !info.namespaced && !self.namespaces.is_empty() && !self.cluster_resources {
            return Err(CacheError::ClusterScoped(gk.clone(), self.namespaces.to_vec()));
        }
        let mut synced = {
            let mut state = self.state.write();
            match state.synced.get(gk) {
                Some(rx) => rx.clone(),
                None => {
                    let (tx, rx) = tokio::sync::watch::channel(false);
                    state.synced.insert(gk.clone(), rx.clone());
                    state.objects.entry(gk.clone()).or_default();
                    let tx = Arc::new(tx);
                    let mut watches = self.watches.0.lock();
                    if self.namespaces.is_empty() || !info.namespaced {
                        let task = tokio::spawn(self.feed().watch(gk.clone(), info, None, tx));
                        watches.push(task.abort_handle());
                    } else {
                        // One watch a namespace; the kind is synced when every one has listed.
                        let pending = Arc::new(std::sync::atomic::AtomicUsize::new(self.namespaces.len()));
                        for ns in self.namespaces.iter() {
                            let scope = Scoped { namespace: ns.clone(), pending: pending.clone() };
                            let task = tokio::spawn(self.feed().watch(
                                gk.clone(),
                                info.clone(),
                                Some(scope),
                                tx.clone(),
                            ));
                            watches.push(task.abort_handle());
                        }
                    }
                    rx
                }
            }
        };
        let limit = Duration::from_secs(60);
        tokio::time::timeout(limit, synced.wait_for(|s| *s))
            .await
            .map_err(|_| CacheError::NotSynced(gk.clone(), limit))?
            .map_err(|_| CacheError::NotSynced(gk.clone(), limit))?;
        Ok(())
    }

    /// What the cache holds: objects and kinds watched, and when a watch last listed. Counts under the
    /// read lock, one addition a kind.
    pub fn stats(&self) -> CacheStats {
        let state = self.state.read();
        CacheStats {
            resources: state.objects.values().map(HashMap::len).sum(),
            kinds: state.synced.len(),
            last_synced: state.last_synced,
        }
    }

    /// A watch task's share of the cache (without the guard that stops it).
    fn feed(&self) -> Feed {
        Feed {
            client: self.client.clone(),
            state: self.state.clone(),
            events: self.events.clone(),
            watch_timeout: self.watch_timeout,
        }
    }

    /// The live object with this key, if its kind is watched and it exists.
    pub fn get(&self, key: &ResourceKey) -> Option<Arc<serde_json::Value>> {
        let state = self.state.read();
        state.objects.get(&key.group_kind())?.get(&(key.namespace.clone(), key.name.clone())).cloned()
    }

    /// Every live object that names `app` as its application (see [`Tracking`]).
    pub fn tracked_by(&self, app: &str) -> Vec<(ResourceKey, Arc<serde_json::Value>)> {
        let state = self.state.read();
        state.by_app.get(app).map(|keys| state.lookup(keys)).unwrap_or_default()
    }

    /// The watched objects whose ownerReferences name `uid` (the resource tree reads this).
    pub fn children(&self, uid: &str) -> Vec<(ResourceKey, Arc<serde_json::Value>)> {
        let state = self.state.read();
        state.children.get(uid).map(|keys| state.lookup(keys)).unwrap_or_default()
    }
}

impl Feed {
    async fn watch(
        self,
        gk: GroupKind,
        info: KindInfo,
        scope: Option<Scoped>,
        synced: Arc<tokio::sync::watch::Sender<bool>>,
    ) {
        let api: Api<DynamicObject> = match &scope {
            Some(scope) => Api::namespaced_with(self.client.clone(), &scope.namespace, &info.resource),
            None => Api::all_with(self.client.clone(), &info.resource),
        };
        let mut config = watcher::Config::default();
        if let Some(timeout) = self.watch_timeout {
            config = config.timeout(timeout.as_secs().try_into().unwrap_or(u32::MAX));
        }
        let mut stream = watcher(api, config).boxed();
        let mut initial: Objects = HashMap::new();
        // Backoff, one warning while it fails and one line when it recovers ([`WatchRetry`]); a list
        // after an outage reports every object that changed meanwhile, so self-heal sees drift at once.
        let mut retry = WatchRetry::new(match &scope {
            Some(s) => format!("{gk} in {}", s.namespace),
            None => gk.to_string(),
        });
        while let Some(event) = stream.next().await {
            if event.is_ok() {
                retry.succeeded();
            }
            match event {
                Ok(watcher::Event::Init) => initial.clear(),
                Ok(watcher::Event::InitApply(obj)) => {
                    let value = to_value(obj, &info.resource);
                    initial.insert(object_id(&value), Arc::new(value));
                }
                Ok(watcher::Event::InitDone) => {
                    let fresh = std::mem::take(&mut initial);
                    let changed = self.replace_all(&gk, fresh, scope.as_ref().map(|s| s.namespace.as_str()));
                    for event in changed {
                        let _ = self.events.send(event);
                    }
                    // A namespaced install: the kind is synced once every namespace's watch has listed.
                    let all_listed = match &scope {
                        None => true,
                        // Err: already zero (a watch that listed again).
                        Some(s) => {
                            s.pending
                                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
                                .is_ok_and(|before| before == 1)
                                || s.pending.load(Ordering::Acquire) == 0
                        }
                    };
                    if all_listed {
                        let _ = synced.send(true);
                    }
                }
                Ok(watcher::Event::Apply(obj)) => {
                    let value = to_value(obj, &info.resource);
                    if let Some(event) = self.upsert(&gk, value) {
                        let _ = self.events.send(event);
                    }
                }
                Ok(watcher::Event::Delete(obj)) => {
                    let value = to_value(obj, &info.resource);
                    if let Some(event) = self.remove(&gk, &value) {
                        let _ = self.events.send(event);
                    }
                }
                Err(e) => {
                    let wait = retry.failed(&e);
                    if !wait.is_zero() {
                        tokio::time::sleep(wait).await;
                    }
                }
            }
        }
    }

    fn upsert(&self, gk: &GroupKind, value: serde_json::Value) -> Option<ObjectEvent> {
        let id = object_id(&value);
        let mut state = self.state.write();
        let old = state.objects.entry(gk.clone()).or_default().insert(id, Arc::new(value.clone()));
        index_change(&mut state, old.as_deref(), Some(&value))
    }

    fn remove(&self, gk: &GroupKind, value: &serde_json::Value) -> Option<ObjectEvent> {
        let mut state = self.state.write();
        let old = state.objects.entry(gk.clone()).or_default().remove(&object_id(value));
        index_change(&mut state, old.as_deref().or(Some(value)), None)
    }

    /// Replaces a kind's objects with a watch's fresh list: all of them, or (`scope`) those of one namespace.
    fn replace_all(&self, gk: &GroupKind, fresh: Objects, scope: Option<&str>) -> Vec<ObjectEvent> {
        let mut state = self.state.write();
        state.last_synced = Some(SystemTime::now());
        let mut old = state.objects.remove(gk).unwrap_or_default();
        let mut kept = Objects::new();
        if let Some(ns) = scope {
            // Other namespaces' watches own their objects: keep them, compare only this namespace's.
            old.retain(|id, obj| {
                if id.0 == ns {
                    return true;
                }
                kept.insert(id.clone(), obj.clone());
                false
            });
        }
        let mut all = kept;
        all.extend(fresh.iter().map(|(k, v)| (k.clone(), v.clone())));
        state.objects.insert(gk.clone(), all);
        let mut events = Vec::new();
        for (id, obj) in &old {
            if !fresh.contains_key(id) {
                events.extend(index_change(&mut state, Some(obj), None));
            }
        }
        for (id, obj) in &fresh {
            if old.get(id) != Some(obj) {
                events.extend(index_change(&mut state, old.get(id).map(|o| &**o), Some(obj)));
            }
        }
        events
    }
}

/// The namespace one watch of a namespaced install covers, and how many of the kind's watches have not
/// listed yet.
struct Scoped {
    namespace: String,
    pending: Arc<std::sync::atomic::AtomicUsize>,
}

fn object_id(value: &serde_json::Value) -> (String, String) {
    let meta = &value["metadata"];
    (
        meta["namespace"].as_str().unwrap_or_default().to_string(),
        meta["name"].as_str().unwrap_or_default().to_string(),
    )
}

/// Keeps the app → objects index current and says which apps an object change concerns.
fn index_change(
    state: &mut State,
    old: Option<&serde_json::Value>,
    new: Option<&serde_json::Value>,
) -> Option<ObjectEvent> {
    let key = ResourceKey::of(new.or(old)?)?;
    for uid in old.map(owner_uids).unwrap_or_default() {
        if let Some(set) = state.children.get_mut(&uid) {
            set.remove(&key);
            if set.is_empty() {
                state.children.remove(&uid);
            }
        }
    }
    for uid in new.map(owner_uids).unwrap_or_default() {
        state.children.entry(uid).or_default().insert(key.clone());
    }
    let old_app = old.and_then(|o| state.tracking.app_of(o, &key));
    let new_app = new.and_then(|o| state.tracking.app_of(o, &key));
    if let Some(app) = &old_app
        && new_app.as_ref() != Some(app)
        && let Some(set) = state.by_app.get_mut(app)
    {
        set.remove(&key);
    }
    if let Some(app) = &new_app {
        state.by_app.entry(app.clone()).or_default().insert(key.clone());
    }
    let mut apps: Vec<String> = old_app.into_iter().chain(new_app).collect();
    apps.dedup();
    (!apps.is_empty()).then_some(ObjectEvent { key, apps })
}

fn owner_uids(obj: &serde_json::Value) -> Vec<String> {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["uid"].as_str().map(String::from))
        .collect()
}

/// The object as JSON with apiVersion and kind set (watch events may omit them).
fn to_value(obj: DynamicObject, ar: &ApiResource) -> serde_json::Value {
    let mut value = serde_json::to_value(obj).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        map.insert("apiVersion".into(), ar.api_version.clone().into());
        map.insert("kind".into(), ar.kind.clone().into());
    }
    // managedFields are often half an object; the rare rule that needs them reads the object itself.
    if let Some(meta) = value["metadata"].as_object_mut() {
        meta.remove("managedFields");
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, owner: Option<&str>, app: Option<&str>) -> serde_json::Value {
        let mut p =
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "web"}});
        if let Some(uid) = owner {
            p["metadata"]["ownerReferences"] = json!([{"uid": uid, "kind": "ReplicaSet", "name": "rs"}]);
        }
        if let Some(app) = app {
            p["metadata"]["annotations"] =
                json!({TRACKING_ANNOTATION_FOR_TEST: format!("{app}:/Pod:web/{name}")});
        }
        p
    }

    const TRACKING_ANNOTATION_FOR_TEST: &str = crate::resource::TRACKING_ANNOTATION;

    fn in_namespace(namespace: &str, name: &str) -> ((String, String), Arc<serde_json::Value>) {
        let object = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace}});
        ((namespace.to_string(), name.to_string()), Arc::new(object))
    }

    #[tokio::test]
    async fn a_namespace_watch_that_lists_again_replaces_only_its_own_namespace() {
        // No request is made: the client only has to exist.
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let cache = ClusterCache::new(kube::Client::try_from(config).unwrap(), tx)
            .with_namespaces(vec!["a".into(), "b".into()]);
        let gk = GroupKind { group: String::new(), kind: "ConfigMap".into() };
        cache.feed().replace_all(&gk, [in_namespace("a", "one"), in_namespace("a", "two")].into(), Some("a"));
        cache.feed().replace_all(&gk, [in_namespace("b", "three")].into(), Some("b"));
        // a lists again without "two": b's object stays, a's "two" goes.
        cache.feed().replace_all(&gk, [in_namespace("a", "one")].into(), Some("a"));
        let state = cache.state.read();
        let mut ids: Vec<_> = state.objects[&gk].keys().cloned().collect();
        ids.sort();
        assert_eq!(ids, [("a".to_string(), "one".to_string()), ("b".to_string(), "three".to_string())]);
    }

    /// A cache of a client whose requests all fail, and the ConfigMap kind known without discovery.
    fn unreachable_cache() -> (ClusterCache, GroupKind) {
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let cache = ClusterCache::new(kube::Client::try_from(config).unwrap(), tx);
        let gk = GroupKind { group: String::new(), kind: "ConfigMap".into() };
        let resource = ApiResource::erase::<k8s_openapi::api::core::v1::ConfigMap>(&());
        let mut state = cache.state.write();
        state.kinds.insert(gk.clone(), KindInfo { resource, namespaced: true });
        state.discovered_at = Some(Instant::now());
        drop(state);
        (cache, gk)
    }

    #[tokio::test]
    async fn dropping_the_last_clone_stops_the_watches_and_frees_the_objects() {
        let (cache, gk) = unreachable_cache();
        // The watch starts at once; its list never comes, so stop waiting for it.
        let _ = tokio::time::timeout(Duration::from_millis(50), cache.ensure_watched(&gk)).await;
        assert_eq!(cache.stats().kinds, 1);
        let state = Arc::downgrade(&cache.state);
        let clone = cache.clone();
        drop(cache);
        let running = clone.watches.0.lock().iter().all(|task| !task.is_finished());
        assert!(running, "a clone is left: its watch goes on");
        drop(clone);
        let deadline = Instant::now() + Duration::from_secs(10);
        while state.upgrade().is_some() {
            assert!(Instant::now() < deadline, "the watch task still holds the cache's state");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn stats_count_objects_over_kinds_and_when_a_watch_last_listed() {
        let (cache, gk) = unreachable_cache();
        assert_eq!(cache.stats(), CacheStats::default());
        let before = SystemTime::now();
        let secrets = GroupKind { group: String::new(), kind: "Secret".into() };
        for kind in [&gk, &secrets] {
            let (tx, rx) = tokio::sync::watch::channel(true);
            drop(tx);
            cache.state.write().synced.insert(kind.clone(), rx);
        }
        cache.feed().replace_all(&gk, [in_namespace("a", "one"), in_namespace("b", "two")].into(), None);
        cache.feed().replace_all(&secrets, [in_namespace("a", "three")].into(), None);
        let stats = cache.stats();
        assert_eq!((stats.resources, stats.kinds), (3, 2));
        assert!(stats.last_synced.is_some_and(|t| t >= before), "{stats:?}");
    }

    #[test]
    fn owner_references_index_children_and_follow_changes() {
        let mut state = State::default();
        let a = pod("a", Some("rs-1"), None);
        assert_eq!(index_change(&mut state, None, Some(&a)), None, "untracked objects raise no app event");
        assert!(state.children["rs-1"].contains(&ResourceKey::new("", "Pod", "web", "a")));
        let moved = pod("a", Some("rs-2"), None);
        index_change(&mut state, Some(&a), Some(&moved));
        assert!(!state.children.contains_key("rs-1"));
        assert_eq!(state.children["rs-2"].len(), 1);
        index_change(&mut state, Some(&moved), None);
        assert!(state.children.is_empty());
    }

    #[test]
    fn tracked_objects_name_their_app_before_and_after_a_change() {
        let mut state = State::default();
        let tracked = pod("a", None, Some("web"));
        let event = index_change(&mut state, None, Some(&tracked)).unwrap();
        assert_eq!(event.apps, ["web"]);
        let untracked = pod("a", None, None);
        let event = index_change(&mut state, Some(&tracked), Some(&untracked)).unwrap();
        assert_eq!(event.apps, ["web"], "losing the annotation is a change the app must see");
        assert!(state.by_app["web"].is_empty());
    }

    #[test]
    fn objects_of_another_installation_are_never_an_apps() {
        // Two installations on one cluster, each with an app called web: each sees only its own objects.
        let blue_install = Tracking { installation_id: "blue".into(), ..Tracking::default() };
        let mut ours = State { tracking: blue_install, ..Default::default() };
        let mut theirs = State::default();
        let mut blue = pod("a", None, Some("web"));
        blue["metadata"]["annotations"][crate::resource::INSTALLATION_ANNOTATION] = "blue".into();
        let plain = pod("b", None, Some("web"));
        assert_eq!(index_change(&mut ours, None, Some(&blue)).unwrap().apps, ["web"]);
        assert_eq!(index_change(&mut ours, None, Some(&plain)), None, "no id: another installation's");
        assert_eq!(
            index_change(&mut theirs, None, Some(&blue)),
            None,
            "an id: not the id-less installation's"
        );
        assert_eq!(index_change(&mut theirs, None, Some(&plain)).unwrap().apps, ["web"]);
        assert_eq!(ours.by_app["web"].len(), 1);
        assert_eq!(theirs.by_app["web"].len(), 1);
    }
}
