//! `GET /api/v1/stream/applications`: Argo CD's watch of Applications as newline-delimited JSON, one
//! `{"result":{"type":"ADDED|MODIFIED|DELETED","application":{...}}}` a line. A watcher first gets an ADDED
//! for every current app it may `get` (by name), then each change as it happens; the response never ends.
//!
//! One Kubernetes watch serves every watcher: [`ChangeFeed`] turns the reflector's events into [`AppEvent`]s
//! on a broadcast channel. An event is serialized at most once, by the first watcher that sends it, and all
//! share the bytes. A watcher more than [`EVENT_BUFFER`] events behind gets an error line and is closed rather
//! than resynced: the current state alone could not tell it what was deleted meanwhile, and Argo CD's clients
//! watch again when a stream ends (and a new watch starts with the full list). The others never wait for it.

use super::{ApiError, Caller, ListQuery, Shared};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use berth_api::Application;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::broadcast;

/// Events a watcher may fall behind before it is closed (Argo CD buffers 1,000 a watcher).
pub(crate) const EVENT_BUFFER: usize = 1024;

/// The initial ADDED lines go out in chunks of about this size.
const CHUNK_BYTES: usize = 64 * 1024;

/// How long a watch that arrives before the first list of Applications waits for it.
const READY_WAIT: Duration = Duration::from_secs(10);

/// How often an open stream checks its token even without a revocation (so an expired one ends it too).
const TOKEN_RECHECK: Duration = Duration::from_secs(30);

pub(super) fn routes() -> Router<Arc<Shared>> {
    Router::new().route("/api/v1/stream/applications", get(stream_applications))
}

/// Kubernetes' watch event types, as Argo CD's ApplicationWatchEvent names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// A change to one Application, as every watcher receives it.
pub(crate) struct AppEvent {
    kind: EventType,
    app: Arc<Application>,
    line: OnceLock<Bytes>,
}

impl AppEvent {
    fn new(kind: EventType, app: Arc<Application>) -> Arc<AppEvent> {
        Arc::new(AppEvent { kind, app, line: OnceLock::new() })
    }

    /// The event's line, serialized by the first watcher that sends it.
    fn line(&self) -> &Bytes {
        self.line.get_or_init(|| {
            let mut line = Vec::with_capacity(4096);
            write_event(&mut line, self.kind, &self.app);
            Bytes::from(line)
        })
    }
}

/// Appends `{"result":{"type":…,"application":…}}` and a newline to `out`.
fn write_event(out: &mut Vec<u8>, kind: EventType, app: &Application) {
    #[derive(serde::Serialize)]
    struct Line<'a> {
        result: WatchEvent<'a>,
    }
    #[derive(serde::Serialize)]
    struct WatchEvent<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        application: &'a Application,
    }
    let start = out.len();
    match serde_json::to_writer(
        &mut *out,
        &Line { result: WatchEvent { kind: kind.as_str(), application: app } },
    ) {
        Ok(()) => out.push(b'\n'),
        Err(e) => {
            out.truncate(start);
            let name = app.metadata.name.as_deref().unwrap_or_default();
            tracing::warn!(app = %name, error = %e, "stream: the Application does not serialize");
        }
    }
}

/// Turns the reflector's watch events into [`AppEvent`]s: ADDED for an app not seen before, MODIFIED for a
/// new resourceVersion, DELETED for a delete or for an app a relist no longer has. It holds the store's
/// `Arc`s, not copies, so the objects are in memory once.
pub(crate) struct ChangeFeed {
    store: Store<Application>,
    events: broadcast::Sender<Arc<AppEvent>>,
    known: HashMap<ObjectRef<Application>, Arc<Application>>,
    /// The apps listed so far while the watch relists (the store swaps them in at the end).
    relisted: Option<HashSet<ObjectRef<Application>>>,
}

impl ChangeFeed {
    pub(crate) fn new(store: Store<Application>, events: broadcast::Sender<Arc<AppEvent>>) -> ChangeFeed {
        ChangeFeed { store, events, known: HashMap::new(), relisted: None }
    }

    /// Takes one event of the watch, after the reflector's writer has applied it to the store.
    pub(crate) fn observe(&mut self, event: watcher::Event<Application>) {
        match event {
            watcher::Event::Apply(app) => self.stored(ObjectRef::from_obj(&app)),
            watcher::Event::Delete(app) => {
                self.known.remove(&ObjectRef::from_obj(&app));
                self.publish(EventType::Deleted, Arc::new(app));
            }
            watcher::Event::Init => self.relisted = Some(HashSet::new()),
            watcher::Event::InitApply(app) => {
                self.relisted.get_or_insert_default().insert(ObjectRef::from_obj(&app));
            }
            watcher::Event::InitDone => {
                let listed = self.relisted.take().unwrap_or_default();
                let gone: Vec<ObjectRef<Application>> =
                    self.known.keys().filter(|k| !listed.contains(k)).cloned().collect();
                for key in gone {
                    if let Some(app) = self.known.remove(&key) {
                        self.publish(EventType::Deleted, app);
                    }
                }
                for key in listed {
                    self.stored(key);
                }
            }
        }
    }

    /// Publishes the store's version of `key` unless it is the version watchers already have.
    fn stored(&mut self, key: ObjectRef<Application>) {
        let Some(app) = self.store.get(&key) else { return };
        let kind = match self.known.insert(key, app.clone()) {
            None => EventType::Added,
            Some(old) if old.metadata.resource_version == app.metadata.resource_version => return,
            Some(_) => EventType::Modified,
        };
        self.publish(kind, app);
    }

    fn publish(&self, kind: EventType, app: Arc<Application>) {
        // An error only means nobody watches right now.
        let _ = self.events.send(AppEvent::new(kind, app));
    }
}

/// `GET /api/v1/stream/applications?name=&appNamespace=&projects=&selector=&resourceVersion=`: Argo CD's watch. With a
/// `resourceVersion` and no `name` the current apps are not sent first; apps older than it never are.
async fn stream_applications(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    // The stream lasts as long as its token: a logout, a password change or a deleted token ends it.
    let Caller { subject: caller, token } = caller;
    let revocations = shared.sessions.revocations();
    let mut recheck = tokio::time::interval(TOKEN_RECHECK);
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let query = ListQuery::from_pairs(pairs)?;
    let _ = tokio::time::timeout(READY_WAIT, shared.apps.wait_until_ready()).await;
    // Subscribed before the snapshot is taken, so no change falls between the two.
    let events = shared.events.subscribe();
    let mut initial = Vec::new();
    if query.resource_version.is_none() || query.name.is_some() {
        initial = shared.apps.state();
        initial.retain(|a| query.matches(a));
        initial.sort_unstable_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    }
    let watch = Watcher {
        shared,
        caller,
        token,
        revocations,
        recheck,
        query,
        initial: initial.into_iter(),
        events,
        closed: false,
    };
    let body = Body::from_stream(futures::stream::unfold(watch, Watcher::next));
    Ok(([(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// One open stream: the apps still to send as ADDED, then the broadcast.
struct Watcher {
    shared: Arc<Shared>,
    caller: crate::rbac::Subject,
    /// The session token the stream was opened with, verified again on every revocation.
    token: String,
    revocations: tokio::sync::watch::Receiver<u64>,
    recheck: tokio::time::Interval,
    query: ListQuery,
    initial: std::vec::IntoIter<Arc<Application>>,
    events: broadcast::Receiver<Arc<AppEvent>>,
    /// Set once the error line of a watcher that fell behind is out.
    closed: bool,
}

impl Watcher {
    /// The next bytes of the response; `None` ends it.
    async fn next(mut self) -> Option<(Result<Bytes, Infallible>, Watcher)> {
        if self.closed {
            return None;
        }
        if !self.token_valid() {
            return None;
        }
        if let Some(chunk) = self.initial_chunk() {
            return Some((Ok(chunk), self));
        }
        loop {
            let received = tokio::select! {
                received = self.events.recv() => received,
                changed = self.revocations.changed() => {
                    if changed.is_err() || !self.token_valid() {
                        return None;
                    }
                    continue;
                }
                _ = self.recheck.tick() => {
                    if !self.token_valid() {
                        return None;
                    }
                    continue;
                }
            };
            match received {
                Ok(event) => {
                    if self.permits(&event.app) {
                        let line = event.line().clone();
                        return Some((Ok(line), self));
                    }
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::info!(user = %self.caller.name, missed, "stream: a watcher fell behind; closing it");
                    let error = serde_json::json!({"error": {
                        "code": 14,
                        "message": format!("the watch fell {missed} events behind: watch again"),
                        "details": [],
                    }});
                    let mut line = error.to_string().into_bytes();
                    line.push(b'\n');
                    self.closed = true;
                    return Some((Ok(Bytes::from(line)), self));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// Does the stream's token still verify? When not, the stream ends (the client logs in and watches again).
    fn token_valid(&self) -> bool {
        // An anonymous stream (users.anonymous.enabled) lasts as long as anonymous access stays on.
        let valid = if self.token.is_empty() {
            self.shared.sessions.accounts().server.anonymous_enabled
        } else {
            super::session::still_valid(&self.shared, &self.token)
        };
        if !valid {
            tracing::info!(user = %self.caller.name, "stream: the session ended; closing the watch");
        }
        valid
    }

    /// ADDED lines for the next apps of the initial list, about [`CHUNK_BYTES`] of them.
    fn initial_chunk(&mut self) -> Option<Bytes> {
        let policy = self.shared.rbac.current();
        let rbac = policy.resolve(&self.caller);
        let mut chunk = Vec::new();
        for app in self.initial.by_ref() {
            if !self.query.is_older(&app)
                && rbac.enforce("applications", "get", &self.shared.app_object(&app))
            {
                write_event(&mut chunk, EventType::Added, &app);
                if chunk.len() >= CHUNK_BYTES {
                    break;
                }
            }
        }
        (!chunk.is_empty()).then(|| Bytes::from(chunk))
    }

    /// Does the watcher's query select `app`, and may its caller `get` it?
    fn permits(&self, app: &Application) -> bool {
        self.query.matches(app)
            && !self.query.is_older(app)
            && self.shared.rbac.enforce(&self.caller, "applications", "get", &self.shared.app_object(app))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::reflector;

    fn app(name: &str, version: &str) -> Application {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": {"name": name, "namespace": "argocd", "resourceVersion": version},
            "spec": {"project": "default", "source": {"repoURL": "https://example.com/r.git"},
                     "destination": {"namespace": name}}
        }))
        .unwrap()
    }

    /// A feed over a store of its own; `feed` applies each event to the store first, as the reflector does.
    struct Fixture {
        writer: reflector::store::Writer<Application>,
        feed: ChangeFeed,
        events: broadcast::Receiver<Arc<AppEvent>>,
    }

    impl Fixture {
        fn new() -> Fixture {
            let (store, writer) = reflector::store();
            let (sender, events) = broadcast::channel(16);
            Fixture { writer, feed: ChangeFeed::new(store, sender), events }
        }

        fn feed(&mut self, event: watcher::Event<Application>) {
            self.writer.apply_watcher_event(&event);
            self.feed.observe(event);
        }

        fn published(&mut self) -> Vec<(EventType, String, String)> {
            std::iter::from_fn(|| self.events.try_recv().ok())
                .map(|e| {
                    let name = e.app.metadata.name.clone().unwrap();
                    (e.kind, name, e.app.metadata.resource_version.clone().unwrap())
                })
                .collect()
        }
    }

    fn event(kind: EventType, name: &str, version: &str) -> (EventType, String, String) {
        (kind, name.to_string(), version.to_string())
    }

    #[test]
    fn the_feed_names_a_new_app_added_a_new_version_modified_and_a_delete_deleted() {
        let mut fx = Fixture::new();
        fx.feed(watcher::Event::Apply(app("web", "1")));
        fx.feed(watcher::Event::Apply(app("web", "1")));
        fx.feed(watcher::Event::Apply(app("web", "2")));
        fx.feed(watcher::Event::Delete(app("web", "3")));
        assert_eq!(
            fx.published(),
            [
                event(EventType::Added, "web", "1"),
                event(EventType::Modified, "web", "2"),
                event(EventType::Deleted, "web", "3")
            ]
        );
    }

    #[test]
    fn a_relist_publishes_only_what_changed_while_the_watch_was_away() {
        let mut fx = Fixture::new();
        for name in ["kept", "changed", "gone"] {
            fx.feed(watcher::Event::Apply(app(name, "1")));
        }
        fx.published();
        fx.feed(watcher::Event::Init);
        fx.feed(watcher::Event::InitApply(app("kept", "1")));
        fx.feed(watcher::Event::InitApply(app("changed", "5")));
        fx.feed(watcher::Event::InitApply(app("new", "6")));
        fx.feed(watcher::Event::InitDone);
        let mut published = fx.published();
        published.sort_by(|a, b| a.1.cmp(&b.1));
        assert_eq!(
            published,
            [
                event(EventType::Modified, "changed", "5"),
                event(EventType::Deleted, "gone", "1"),
                event(EventType::Added, "new", "6")
            ]
        );
    }

    #[test]
    fn an_event_is_one_ndjson_line_serialized_once_and_shared() {
        let event = AppEvent::new(EventType::Modified, Arc::new(app("web", "7")));
        let line = event.line().clone();
        assert!(line.ends_with(b"\n"));
        let value: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(value["result"]["type"], "MODIFIED");
        assert_eq!(value["result"]["application"]["metadata"]["name"], "web");
        // The second watcher gets the same bytes, not a copy.
        assert_eq!(event.line().as_ptr(), line.as_ptr());
    }
}
