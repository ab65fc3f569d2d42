//! The Leases of `coordination.k8s.io`: a replica's own Lease (it says "I am alive"), and the Leases of
//! the parts that run once (their holder runs them). Every update carries the resourceVersion it read, so
//! two replicas never both believe they took the same Lease.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::membership::Seen;

/// The label on every replica's own Lease; the value names the part of berth.
pub const LABEL: &str = "berth.dev/lease";
/// [`LABEL`]'s value on the replicas' own Leases.
pub const REPLICA: &str = "controller";
/// On a replica's own Lease as it stops: the others take its share at once (a Lease that merely vanished
/// is kept until it would have expired).
pub const RELEASED: &str = "berth.dev/released";

/// The name of the Lease of the replica `identity`: `berth-controller-<identity>`, made a valid object name.
pub fn replica_lease_name(identity: &str) -> String {
    let cleaned: String = identity
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '-' })
        .collect();
    let mut name = format!("berth-controller-{}", cleaned.trim_matches(|c| c == '-' || c == '.'));
    name.truncate(253);
    name.trim_end_matches(['-', '.']).to_string()
}

fn now_micro() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

fn spec_of(identity: &str, duration: Duration) -> LeaseSpec {
    let now = now_micro();
    LeaseSpec {
        holder_identity: Some(identity.to_string()),
        lease_duration_seconds: Some(duration.as_secs().max(1) as i32),
        acquire_time: Some(now.clone()),
        renew_time: Some(now),
        ..Default::default()
    }
}

/// Creates or takes over this replica's own Lease (a Lease of its name is its own by name).
pub async fn acquire_own(
    api: &Api<Lease>,
    name: &str,
    identity: &str,
    duration: Duration,
) -> Result<Lease, kube::Error> {
    match api.get_opt(name).await? {
        Some(mut lease) => {
            lease.spec = Some(spec_of(identity, duration));
            lease.metadata.labels.get_or_insert_with(Default::default).insert(LABEL.into(), REPLICA.into());
            if let Some(annotations) = lease.metadata.annotations.as_mut() {
                annotations.remove(RELEASED);
            }
            api.replace(name, &PostParams::default(), &lease).await
        }
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(name.to_string()),
                    labels: Some(BTreeMap::from([(LABEL.to_string(), REPLICA.to_string())])),
                    ..Default::default()
                },
                spec: Some(spec_of(identity, duration)),
            };
            api.create(&PostParams::default(), &lease).await
        }
    }
}

/// Renews a Lease this replica holds (written with the resourceVersion of its last write).
pub async fn renew(api: &Api<Lease>, lease: &Lease) -> Result<Lease, kube::Error> {
    let mut next = lease.clone();
    let spec = next.spec.get_or_insert_with(Default::default);
    spec.renew_time = Some(now_micro());
    api.replace(lease.metadata.name.as_deref().unwrap_or_default(), &PostParams::default(), &next).await
}

/// Every replica's Lease, as one consistent list.
pub async fn list_replicas(api: &Api<Lease>) -> Result<Vec<Seen>, kube::Error> {
    let leases = api.list(&ListParams::default().labels(&format!("{LABEL}={REPLICA}"))).await?;
    Ok(leases.items.iter().filter_map(seen).collect())
}

fn seen(lease: &Lease) -> Option<Seen> {
    let spec = lease.spec.as_ref()?;
    Some(Seen {
        holder: spec.holder_identity.clone().unwrap_or_default(),
        resource_version: lease.metadata.resource_version.clone().unwrap_or_default(),
        duration: Duration::from_secs(spec.lease_duration_seconds.unwrap_or(0).max(0) as u64),
        released: lease.metadata.annotations.as_ref().is_some_and(|a| a.contains_key(RELEASED)),
    })
}

/// Marks this replica's own Lease released (the others take its share at their next look), then deletes
/// it, only if nobody wrote it since.
pub async fn release_own(api: &Api<Lease>, lease: &Lease) -> Result<(), kube::Error> {
    let mut released = lease.clone();
    released.metadata.annotations.get_or_insert_with(Default::default).insert(RELEASED.into(), "true".into());
    let name = lease.metadata.name.as_deref().unwrap_or_default();
    let stored = api.replace(name, &PostParams::default(), &released).await?;
    delete(api, name, stored.metadata.resource_version).await
}

/// Deletes a replica's Lease (this replica's own, at shutdown: the others take its share at their next
/// look, without waiting for it to expire); with `resource_version`, only if nobody renewed it since.
pub async fn delete(
    api: &Api<Lease>,
    name: &str,
    resource_version: Option<String>,
) -> Result<(), kube::Error> {
    let params = DeleteParams {
        preconditions: resource_version
            .map(|rv| kube::api::Preconditions { uid: None, resource_version: Some(rv) }),
        ..DeleteParams::default()
    };
    match api.delete(name, &params).await {
        Ok(_) => Ok(()),
        // Gone already, or renewed since (its replica is back).
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

/// A Lease contested by all replicas: who holds it runs the part it names.
pub struct Contested {
    pub name: String,
    /// The copy this replica last read or wrote.
    last: Option<Lease>,
    /// When this replica first saw `last`'s resourceVersion.
    changed_at: Instant,
}

impl Contested {
    pub fn new(name: &str) -> Self {
        Contested { name: name.to_string(), last: None, changed_at: Instant::now() }
    }

    /// Takes or renews the Lease if this replica may: it is free (missing, released, or not renewed
    /// within its duration as seen here) or already this replica's. True when this replica holds it.
    pub async fn try_hold(
        &mut self,
        api: &Api<Lease>,
        identity: &str,
        duration: Duration,
        now: Instant,
    ) -> Result<bool, kube::Error> {
        let current = api.get_opt(&self.name).await?;
        if current.is_none()
            && let Some(last) = &self.last
            && let Some(spec) = &last.spec
            && spec.holder_identity.as_deref().is_some_and(|h| !h.is_empty() && h != identity)
            && now
                < self.changed_at
                    + Duration::from_secs(spec.lease_duration_seconds.unwrap_or(0).max(0) as u64)
        {
            // Deleted while another replica held it: it may still act until its next renewal.
            return Ok(false);
        }
        let Some(mut lease) = current else {
            let lease = Lease {
                metadata: ObjectMeta { name: Some(self.name.clone()), ..Default::default() },
                spec: Some(spec_of(identity, duration)),
            };
            return self.wrote(api.create(&PostParams::default(), &lease).await, now);
        };
        let rv = lease.metadata.resource_version.clone();
        if self.last.as_ref().map(|l| &l.metadata.resource_version) != Some(&rv) {
            // Another holder is judged from when its renewal was surely seen: after the answer.
            self.changed_at = Instant::now();
        }
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let their_duration = Duration::from_secs(spec.lease_duration_seconds.unwrap_or(0).max(0) as u64);
        self.last = Some(lease.clone());
        if holder == identity {
            let mut spec = spec;
            spec.renew_time = Some(now_micro());
            spec.lease_duration_seconds = Some(duration.as_secs().max(1) as i32);
            lease.spec = Some(spec);
        } else if holder.is_empty() || now >= self.changed_at + their_duration {
            let mut taken = spec_of(identity, duration);
            taken.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            lease.spec = Some(taken);
        } else {
            return Ok(false);
        }
        self.wrote(api.replace(&self.name, &PostParams::default(), &lease).await, now)
    }

    fn wrote(&mut self, result: Result<Lease, kube::Error>, now: Instant) -> Result<bool, kube::Error> {
        match result {
            Ok(stored) => {
                self.last = Some(stored);
                self.changed_at = now;
                Ok(true)
            }
            // Another replica wrote it first.
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Gives the Lease up if this replica holds it, so another takes it at once.
    pub async fn release(&mut self, api: &Api<Lease>, identity: &str) -> Result<(), kube::Error> {
        let Some(mut lease) = self.last.take() else { return Ok(()) };
        let spec = lease.spec.get_or_insert_with(Default::default);
        if spec.holder_identity.as_deref() != Some(identity) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.renew_time = Some(now_micro());
        match api.replace(&self.name, &PostParams::default(), &lease).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 409 || e.code == 404 => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replica_lease_name_is_a_valid_object_name() {
        assert_eq!(replica_lease_name("berth-7d9f-abcde"), "berth-controller-berth-7d9f-abcde");
        assert_eq!(replica_lease_name("My_Host:1"), "berth-controller-my-host-1");
        let long = replica_lease_name(&"x".repeat(400));
        assert!(long.len() <= 253);
    }
}
