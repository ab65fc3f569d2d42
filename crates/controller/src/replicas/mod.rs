//! Several replicas of berth share the work through the Kubernetes API only: each holds a Lease of its
//! own in the control namespace; the live replicas are those whose Lease changed within its duration;
//! each Application belongs to exactly one live replica by rendezvous hashing of its instance name; the
//! parts that run once (the ApplicationSet controller) run on the holder of their contested Lease.
//!
//! Fencing: a replica acts on an Application only while (a) it renewed its own Lease and (b) listed the
//! others' within the last `duration - margin`, and (c) it waits one duration after joining unless it
//! found itself alone. (a) means the others, who judge a Lease by when they saw it change, declare this
//! replica gone only after it has stopped; (b) and (c) mean that when a joining replica starts to act, every
//! other acting replica has listed the Leases since the newcomer's was created, and so knows its share moved.
//! [`Replicas::check`] is asked right before every write, and the controller's clients refuse a write at the
//! moment it leaves while this replica may not act ([`fence`]), whatever waited in between.

pub mod fence;
pub mod lease;
pub mod membership;
pub mod rendezvous;

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use parking_lot::Mutex;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use membership::Membership;

/// The contested Lease of the ApplicationSet controller.
pub const APPLICATIONSET_LEASE: &str = "berth-applicationset-controller";
/// How often a replica lists the Leases (a dead replica's share moves at most this much after its Lease
/// expires).
const LIST_EVERY: Duration = Duration::from_millis(500);

/// How this replica takes part (`berth run --replica-id`, `--lease-duration-seconds`).
#[derive(Clone)]
pub struct ReplicaConfig {
    /// This replica's name among the others: unique per running process (a Pod's name).
    pub identity: String,
    /// How long a Lease holds without renewal; a replica renews every fifth of it.
    pub lease_duration: Duration,
    /// Where the Leases are read and written from: a client of its own, on a thread of its own, so
    /// neither a busy sync's request budget nor busy workers ever delay a renewal. `None`: the
    /// controller's client, on its runtime (in-process tests).
    pub kube_config: Option<kube::Config>,
    /// Opened and closed as this replica may write: `berth run` puts it on the controller's clients
    /// ([`fence::FenceLayer`]).
    pub gate: fence::Gate,
    /// The controller's clients carry [`Self::gate`] (then remote clusters' clients get it too).
    pub fenced: bool,
}

impl std::fmt::Debug for ReplicaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicaConfig")
            .field("identity", &self.identity)
            .field("lease_duration", &self.lease_duration)
            .finish_non_exhaustive()
    }
}

impl Default for ReplicaConfig {
    fn default() -> Self {
        ReplicaConfig {
            identity: default_identity(),
            lease_duration: Duration::from_secs(10),
            kube_config: None,
            gate: fence::Gate::default(),
            fenced: false,
        }
    }
}

/// `BERTH_REPLICA_ID`, else `POD_NAME`, else the host name (a Pod's name is its host name).
pub fn default_identity() -> String {
    ["BERTH_REPLICA_ID", "POD_NAME", "HOSTNAME"]
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .chain(std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|s| s.trim().to_string())
        .find(|s| !s.is_empty())
        .unwrap_or_else(|| "berth".into())
}

/// A write refused because this replica may not act on the Application (any more).
#[derive(Debug, thiserror::Error)]
#[error("this replica does not own {0} (its share moved, or its Lease could not be renewed)")]
pub struct Fenced(pub String);

impl From<Fenced> for kube::Error {
    /// For the engine's writes, which speak the API server's errors: a conflict nobody records, since the
    /// status write that would record it is refused too.
    fn from(fenced: Fenced) -> Self {
        kube::Error::Api(kube::core::Status::failure(&fenced.to_string(), "Conflict").with_code(409).boxed())
    }
}

#[derive(Default)]
struct State {
    /// No Lease could be held (the API refused it): this replica acts alone, as the only one.
    standalone: bool,
    /// Until when this replica may act: its last renewal and its last list, plus the duration, minus
    /// the margin.
    valid_until: Option<Instant>,
    /// Not before then (one duration after joining, unless it joined alone).
    acting_from: Option<Instant>,
    membership: Membership,
    /// The contested Leases held, and until when.
    leading: HashMap<String, Instant>,
}

/// This replica's view of the others and its share of the work.
pub struct Replicas {
    identity: String,
    gate: fence::Gate,
    duration: Duration,
    margin: Duration,
    state: Mutex<State>,
    /// Bumped whenever the share may have changed (members, validity, contested Leases).
    changes: tokio::sync::watch::Sender<u64>,
}

/// What the share depends on; a change is announced on [`Replicas::subscribe`].
#[derive(PartialEq, Eq, Default, Clone, Debug)]
struct Shape {
    acting: bool,
    members: Vec<String>,
    leading: BTreeSet<String>,
}

impl Replicas {
    pub fn new(config: &ReplicaConfig) -> Self {
        let duration = config.lease_duration.max(Duration::from_secs(2));
        Replicas {
            identity: config.identity.clone(),
            gate: config.gate.clone(),
            duration,
            margin: duration / 5,
            state: Mutex::default(),
            changes: tokio::sync::watch::channel(0).0,
        }
    }

    /// A replica that owns everything without a Lease (unit tests; an install that may not use Leases).
    pub fn standalone(identity: &str) -> Self {
        let r = Replicas::new(&ReplicaConfig {
            identity: identity.into(),
            lease_duration: Duration::from_secs(10),
            kube_config: None,
            gate: fence::Gate::default(),
            fenced: false,
        });
        r.state.lock().standalone = true;
        r.gate.set(true, None, None);
        r
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Whether this replica acts on `key` (an Application's instance name) now.
    pub fn owns(&self, key: &str) -> bool {
        let state = self.state.lock();
        let now = Instant::now();
        if state.standalone {
            return true;
        }
        self.acting(&state, now)
            && rendezvous::owner(key, state.membership.live(now).iter().map(String::as_str))
                == Some(self.identity.as_str())
    }

    /// [`Self::owns`] as a result, asked right before a write.
    pub fn check(&self, key: &str) -> Result<(), Fenced> {
        if self.owns(key) { Ok(()) } else { Err(Fenced(key.to_string())) }
    }

    /// Whether this replica acts now (holds its Lease, its wait after joining is over).
    pub fn is_acting(&self) -> bool {
        let state = self.state.lock();
        state.standalone || self.acting(&state, Instant::now())
    }

    /// Whether this replica holds the contested Lease `name` now.
    pub fn leads(&self, name: &str) -> bool {
        let state = self.state.lock();
        state.standalone || state.leading.get(name).is_some_and(|until| Instant::now() < *until)
    }

    /// The live replicas as this one sees them (itself included while it holds its Lease).
    pub fn members(&self) -> Vec<String> {
        let state = self.state.lock();
        if state.standalone {
            return vec![self.identity.clone()];
        }
        state.membership.live(Instant::now())
    }

    /// Announces every change of this replica's share (its value means nothing).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn acting(&self, state: &State, now: Instant) -> bool {
        state.valid_until.is_some_and(|t| now < t) && state.acting_from.is_some_and(|t| now >= t)
    }

    fn shape(&self, now: Instant) -> Shape {
        let state = self.state.lock();
        Shape {
            acting: state.standalone || self.acting(&state, now),
            members: state.membership.live(now),
            leading: state.leading.iter().filter(|(_, t)| now < **t).map(|(n, _)| n.clone()).collect(),
        }
    }

    /// When the shape changes next without any list telling (a Lease expiring, the wait after joining
    /// ending, this replica's own validity running out).
    fn next_moment(&self, now: Instant) -> Option<Instant> {
        let state = self.state.lock();
        [state.membership.next_expiry(now), state.acting_from, state.valid_until]
            .into_iter()
            .chain(state.leading.values().map(|t| Some(*t)))
            .flatten()
            .filter(|t| *t > now)
            .min()
    }

    /// [`Self::run`] on a thread of its own with a client of its own made from `config` (see
    /// [`ReplicaConfig::kube_config`]); resolves when it has ended.
    pub async fn run_apart(
        self: Arc<Self>,
        config: kube::Config,
        namespace: String,
        contested: Vec<&'static str>,
        stop: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        let spawned = std::thread::Builder::new().name("berth-leases".into()).spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(runtime) => runtime,
                Err(e) => return tracing::error!(error = %e, "the Leases' thread has no runtime"),
            };
            runtime.block_on(async move {
                match kube::Client::try_from(config) {
                    Ok(client) => self.run(client, namespace, contested, stop).await,
                    Err(e) => tracing::error!(error = %e, "no client for the Leases"),
                }
            });
            let _ = done_tx.send(());
        });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the Leases' thread");
            return;
        }
        let _ = done_rx.await;
    }

    /// Holds this replica's Lease and follows the others' until `stop` resolves; then gives up its
    /// share (no more writes), deletes its Lease and releases the contested ones, so the others take
    /// over at once. `contested`: the Leases of the parts this replica is willing to run.
    pub async fn run(
        self: Arc<Self>,
        client: kube::Client,
        namespace: String,
        contested: Vec<&'static str>,
        stop: impl std::future::Future<Output = ()>,
    ) {
        let api: Api<Lease> = Api::namespaced(client, &namespace);
        let own_name = lease::replica_lease_name(&self.identity);
        let mut contested: Vec<lease::Contested> = contested.into_iter().map(lease::Contested::new).collect();
        let mut own: Option<Lease> = None;
        let mut last_renew: Option<Instant> = None;
        let mut renew_answered: Option<Instant> = None;
        let mut forbidden = berth_engine::outage::Outage::new(Duration::from_secs(60));
        let mut announced = Shape::default();
        let mut failing = false;
        // Consecutive rounds that failed: the next round waits longer (up to 2 s) while the API server
        // does not answer, instead of asking several times a second.
        let mut failed_rounds = 0u32;
        let renew_every = self.duration / 5;
        tokio::pin!(stop);
        loop {
            let started = Instant::now();
            let mut failed: Option<kube::Error> = None;
            // Renew (or take) this replica's Lease every fifth of its duration.
            if last_renew.is_none_or(|t| started >= t + renew_every) {
                let result = match &own {
                    Some(lease) => match lease::renew(&api, lease).await {
                        // Deleted or written by someone else: take it again (as a new member).
                        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {
                            // The others may already count this replica gone: stop at once, then join again.
                            self.state.lock().valid_until = None;
                            tracing::warn!(lease = %own_name, "this replica's Lease was deleted or changed by someone else; joining again");
                            lease::acquire_own(&api, &own_name, &self.identity, self.duration).await
                        }
                        other => other,
                    },
                    None => lease::acquire_own(&api, &own_name, &self.identity, self.duration).await,
                };
                match result {
                    Ok(stored) => {
                        own = Some(stored);
                        // For this replica's own validity: when the renewal was sent (the safe side).
                        last_renew = Some(started);
                        // For the wait after joining: when the Lease was surely stored.
                        renew_answered = Some(Instant::now());
                        for c in &mut contested {
                            match c.try_hold(&api, &self.identity, self.duration, started).await {
                                Ok(held) => {
                                    let mut state = self.state.lock();
                                    if held {
                                        state
                                            .leading
                                            .insert(c.name.clone(), started + self.duration - self.margin);
                                    } else {
                                        state.leading.remove(&c.name);
                                    }
                                }
                                Err(e) => failed = Some(e),
                            }
                        }
                    }
                    // Without its Lease a replica never acts (another may be running): it says why, and
                    // tries again.
                    Err(kube::Error::Api(e)) if e.code == 403 => {
                        if forbidden.failed(tokio::time::Instant::now()) {
                            tracing::error!(namespace = %namespace, error = %e.message, "cannot hold this replica's Lease: grant get, list, create, update and delete on coordination.k8s.io leases in this namespace (deploy/install.yaml's Role berth-leases); reconciling nothing until then");
                        }
                        // Asked again with the backoff of a failing round.
                        failed = Some(kube::Error::Api(e));
                    }
                    Err(e) => failed = Some(e),
                }
            }
            let listed = Instant::now();
            match lease::list_replicas(&api).await {
                Ok(seen) => {
                    // Others are judged from when their Lease was surely seen: after the answer.
                    let received = Instant::now();
                    let mut state = self.state.lock();
                    let was_valid = state.valid_until.is_some_and(|t| listed < t);
                    state.membership.observe(seen, received);
                    if let Some(renewed) = last_renew {
                        let valid_until = renewed.min(listed) + self.duration - self.margin;
                        if !was_valid {
                            // Joining (or back after losing the Lease): alone, act now; else wait until
                            // every other replica has listed the Leases since this one's was written.
                            let alone = state.membership.live(received) == [self.identity.clone()];
                            let stored = renew_answered.unwrap_or(received);
                            state.acting_from = Some(if alone { received } else { stored + self.duration });
                            tracing::info!(replica = %self.identity, members = ?state.membership.live(received), alone, "holding this replica's Lease");
                        }
                        state.valid_until = Some(valid_until);
                    }
                }
                Err(e) => failed = Some(e),
            }
            // Leases of replicas gone long ago (killed, or scaled away with new names) are removed.
            let gone = self.state.lock().membership.long_gone(Instant::now(), self.duration * 6);
            for (holder, rv) in gone {
                if holder != self.identity {
                    let _ = lease::delete(&api, &lease::replica_lease_name(&holder), Some(rv)).await;
                }
            }
            failed_rounds = if failed.is_some() { failed_rounds.saturating_add(1) } else { 0 };
            match failed {
                Some(e) if !failing => {
                    failing = true;
                    tracing::warn!(error = %e, "the Leases cannot be read or renewed; this replica stops acting if it lasts");
                }
                None if failing => {
                    failing = false;
                    tracing::info!("the Leases are read and renewed again");
                }
                _ => {}
            }
            {
                let state = self.state.lock();
                self.gate.set(state.standalone, state.acting_from, state.valid_until);
            }
            let now = Instant::now();
            let shape = self.shape(now);
            if shape != announced {
                tracing::info!(replica = %self.identity, acting = shape.acting, members = ?shape.members, leading = ?shape.leading, "share changed");
                announced = shape;
                self.changes.send_modify(|g| *g += 1);
            }
            let every = LIST_EVERY * 2u32.pow(failed_rounds.min(2));
            let wake = [Some(started + every), self.next_moment(now)].into_iter().flatten().min();
            let wake = wake.unwrap_or(started + every);
            tokio::select! {
                _ = &mut stop => break,
                _ = tokio::time::sleep_until(wake.into()) => {}
            }
        }
        // Stop acting first: from here on every write is refused, then the others may take over.
        {
            let mut state = self.state.lock();
            state.valid_until = None;
            state.leading.clear();
            self.gate.set(false, None, None);
        }
        self.changes.send_modify(|g| *g += 1);
        for c in &mut contested {
            if let Err(e) = c.release(&api, &self.identity).await {
                tracing::warn!(lease = %c.name, error = %e, "could not release the Lease; it expires by itself");
            }
        }
        let released = match &own {
            Some(lease) => lease::release_own(&api, lease).await,
            None => Ok(()),
        };
        match released {
            Ok(()) => tracing::info!(replica = %self.identity, "released this replica's Lease"),
            Err(e) => {
                tracing::warn!(error = %e, "could not delete this replica's Lease; it expires by itself")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_standalone_replica_owns_and_leads_everything() {
        let r = Replicas::standalone("only");
        assert!(r.owns("argocd/a"));
        assert!(r.leads(APPLICATIONSET_LEASE));
        assert_eq!(r.members(), ["only"]);
    }

    #[test]
    fn a_replica_without_its_lease_owns_nothing() {
        let r = Replicas::new(&ReplicaConfig::default());
        assert!(!r.owns("argocd/a"));
        assert!(r.check("argocd/a").is_err());
        assert!(!r.leads(APPLICATIONSET_LEASE));
    }

    #[test]
    fn a_replica_acts_only_between_joining_and_its_validity_end() {
        let r = Replicas::new(&ReplicaConfig {
            identity: "a".into(),
            lease_duration: Duration::from_secs(10),
            kube_config: None,
            gate: fence::Gate::default(),
            fenced: false,
        });
        let now = Instant::now();
        {
            let mut s = r.state.lock();
            s.membership.observe(
                [membership::Seen {
                    holder: "a".into(),
                    resource_version: "1".into(),
                    duration: Duration::from_secs(10),
                    released: false,
                }],
                now,
            );
            s.valid_until = Some(now + Duration::from_secs(8));
            s.acting_from = Some(now + Duration::from_secs(60));
        }
        assert!(!r.owns("x"), "still waiting after joining");
        r.state.lock().acting_from = Some(now);
        assert!(r.owns("x"));
        r.state.lock().valid_until = Some(now);
        assert!(!r.owns("x"), "its validity ended");
    }
}
