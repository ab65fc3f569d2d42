//! Which replicas are alive, from what this replica has seen of their Leases. A Lease is judged by when
//! this replica last saw it change (its resourceVersion), on its own monotonic clock, never by the
//! `renewTime` written by another machine's clock: a skewed clock can neither keep a dead replica alive
//! nor make a live one look dead.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// One Lease as a list returned it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    /// The replica holding it (`spec.holderIdentity`).
    pub holder: String,
    pub resource_version: String,
    /// `spec.leaseDurationSeconds`.
    pub duration: Duration,
    /// Given up by its replica as it stopped: it leaves at once.
    pub released: bool,
}

#[derive(Clone, Debug)]
struct Observed {
    resource_version: String,
    duration: Duration,
    /// When this replica first saw the current resourceVersion: the renewal happened before then.
    changed_at: Instant,
}

/// The replicas' Leases as observed over time.
#[derive(Debug, Default)]
pub struct Membership {
    leases: BTreeMap<String, Observed>,
}

impl Membership {
    /// Takes a complete list of the Leases, received at `now`. A released Lease leaves at once; one that
    /// vanished without being released (deleted by someone else) stays alive until it would have expired,
    /// since its replica may not know yet; a Lease seen for the first time counts as just renewed.
    pub fn observe(&mut self, leases: impl IntoIterator<Item = Seen>, now: Instant) {
        let mut next = BTreeMap::new();
        for seen in leases {
            if seen.holder.is_empty() || seen.released {
                self.leases.remove(&seen.holder);
                continue;
            }
            let observed = match self.leases.remove(&seen.holder) {
                Some(o) if o.resource_version == seen.resource_version => o,
                _ => Observed {
                    resource_version: seen.resource_version,
                    duration: seen.duration,
                    changed_at: now,
                },
            };
            next.insert(seen.holder, observed);
        }
        for (holder, vanished) in std::mem::take(&mut self.leases) {
            if now < vanished.changed_at + vanished.duration {
                next.insert(holder, vanished);
            }
        }
        self.leases = next;
    }

    /// The replicas whose Lease changed within its duration before `now`, sorted by name.
    pub fn live(&self, now: Instant) -> Vec<String> {
        self.leases.iter().filter(|(_, o)| now < o.changed_at + o.duration).map(|(h, _)| h.clone()).collect()
    }

    /// The Leases expired for longer than `after` (a replica that was killed, or scaled away, without
    /// releasing its Lease), with the resourceVersion seen: the one to delete, only if still unchanged.
    pub fn long_gone(&self, now: Instant, after: Duration) -> Vec<(String, String)> {
        self.leases
            .iter()
            .filter(|(_, o)| now >= o.changed_at + o.duration + after)
            .map(|(h, o)| (h.clone(), o.resource_version.clone()))
            .collect()
    }

    /// The next moment a Lease seen alive now expires, if any: the membership changes then even when no
    /// list says anything new.
    pub fn next_expiry(&self, now: Instant) -> Option<Instant> {
        self.leases.values().map(|o| o.changed_at + o.duration).filter(|t| *t > now).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(holder: &str, rv: &str) -> Seen {
        Seen {
            holder: holder.into(),
            resource_version: rv.into(),
            duration: Duration::from_secs(10),
            released: false,
        }
    }

    #[test]
    fn a_lease_seen_for_the_first_time_is_alive_for_its_duration() {
        let t0 = Instant::now();
        let mut m = Membership::default();
        m.observe([seen("a", "1"), seen("b", "7")], t0);
        assert_eq!(m.live(t0), ["a", "b"]);
        assert_eq!(m.live(t0 + Duration::from_millis(9_999)), ["a", "b"]);
        assert!(m.live(t0 + Duration::from_secs(10)).is_empty());
    }

    #[test]
    fn a_renewed_lease_stays_alive_and_a_stale_one_expires() {
        let t0 = Instant::now();
        let mut m = Membership::default();
        m.observe([seen("a", "1"), seen("b", "1")], t0);
        let t1 = t0 + Duration::from_secs(6);
        m.observe([seen("a", "2"), seen("b", "1")], t1);
        let t2 = t0 + Duration::from_secs(11);
        m.observe([seen("a", "2"), seen("b", "1")], t2);
        assert_eq!(m.live(t2), ["a"], "b's Lease did not change for 11 s");
        assert_eq!(m.next_expiry(t2), Some(t1 + Duration::from_secs(10)));
    }

    #[test]
    fn a_lease_expired_long_ago_is_named_for_deletion_with_its_version() {
        let t0 = Instant::now();
        let mut m = Membership::default();
        m.observe([seen("a", "1"), seen("b", "4")], t0);
        let later = t0 + Duration::from_secs(45);
        m.observe([seen("a", "2"), seen("b", "4")], later);
        assert_eq!(m.long_gone(later, Duration::from_secs(30)), [("b".to_string(), "4".to_string())]);
        assert!(m.long_gone(later, Duration::from_secs(40)).is_empty());
    }

    #[test]
    fn a_released_lease_leaves_at_once() {
        let t0 = Instant::now();
        let mut m = Membership::default();
        m.observe([seen("a", "1"), seen("b", "1")], t0);
        let released = Seen { released: true, ..seen("b", "2") };
        m.observe([seen("a", "1"), released], t0 + Duration::from_millis(500));
        assert_eq!(m.live(t0 + Duration::from_millis(500)), ["a"]);
    }

    #[test]
    fn a_lease_deleted_by_someone_else_stays_until_it_would_have_expired() {
        // Its replica may go on acting until its next renewal finds the Lease gone.
        let t0 = Instant::now();
        let mut m = Membership::default();
        m.observe([seen("a", "1"), seen("b", "1")], t0);
        m.observe([seen("a", "2")], t0 + Duration::from_secs(1));
        assert_eq!(m.live(t0 + Duration::from_secs(1)), ["a", "b"]);
        m.observe([seen("a", "3")], t0 + Duration::from_secs(10));
        assert_eq!(m.live(t0 + Duration::from_secs(10)), ["a"]);
    }

    #[test]
    fn a_released_lease_without_a_holder_is_no_member() {
        let mut m = Membership::default();
        m.observe([seen("", "1")], Instant::now());
        assert!(m.live(Instant::now()).is_empty());
    }
}
