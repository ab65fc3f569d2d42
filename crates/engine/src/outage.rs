//! Quiet under faults: a watch or loop that fails warns once, then at most once per [`Outage::every`],
//! and says once when it works again; its retries back off, but never wait long once the API server
//! answers again, so a cache is listed again within seconds of an outage ending.
//!
//! Every watch of the process retries through [`WatchRetry`] ([`retried`] for a watch stream), and the
//! controller reports its reconcile failures caused by an unreachable API server through one [`Outage`].

use futures::{Stream, StreamExt};
use kube::runtime::watcher;
use std::time::Duration;
use tokio::time::Instant;

/// How often a failure that lasts is logged again, after the first warning.
pub const WARN_EVERY: Duration = Duration::from_secs(60);

/// One failing source (a watch, the reconciles of a controller): when to log its failures and its
/// recovery. Time is given by the caller, so the rule is tested without a clock.
#[derive(Debug)]
pub struct Outage {
    every: Duration,
    since: Option<Instant>,
    failures: u64,
    warned_at: Option<Instant>,
}

/// What a finished outage was, for its one recovery line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recovered {
    pub down_for: Duration,
    pub failures: u64,
}

impl Outage {
    /// An outage that warns at its first failure, then at most once every `every`.
    pub fn new(every: Duration) -> Outage {
        Outage { every, since: None, failures: 0, warned_at: None }
    }

    /// Records a failure at `now`; true when it is to be logged (the first one, then once per `every`).
    pub fn failed(&mut self, now: Instant) -> bool {
        self.since.get_or_insert(now);
        self.failures += 1;
        let due = self.warned_at.is_none_or(|at| now.duration_since(at) >= self.every);
        if due {
            self.warned_at = Some(now);
        }
        due
    }

    /// Records a success at `now`: what the outage was when this ends one (logged once), else `None`.
    pub fn succeeded(&mut self, now: Instant) -> Option<Recovered> {
        let since = self.since.take()?;
        let failures = std::mem::take(&mut self.failures);
        self.warned_at = None;
        Some(Recovered { down_for: now.duration_since(since), failures })
    }

    /// Whether failures are being counted (the last outcome was a failure).
    pub fn is_failing(&self) -> bool {
        self.since.is_some()
    }

    /// The failures of the outage so far.
    pub fn failures(&self) -> u64 {
        self.failures
    }
}

impl Default for Outage {
    fn default() -> Outage {
        Outage::new(WARN_EVERY)
    }
}

/// Whether a request failed because the API server did not answer (refused, reset, timed out) or answered
/// that it cannot serve now (5xx: its etcd is gone), rather than refusing this request.
pub fn unreachable(e: &kube::Error) -> bool {
    match e {
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        kube::Error::Api(status) => status.code >= 500,
        _ => false,
    }
}

/// [`unreachable`] for a watch's error.
pub fn watch_unreachable(e: &watcher::Error) -> bool {
    match e {
        watcher::Error::InitialListFailed(e)
        | watcher::Error::WatchStartFailed(e)
        | watcher::Error::WatchFailed(e) => unreachable(e),
        watcher::Error::WatchError(status) => status.code >= 500,
        watcher::Error::NoResourceVersion => false,
    }
}

/// A watch's resourceVersion is too old (410 Gone, as after an API server restart): the watcher lists
/// again at its next poll, which is what recovery wants, so it is retried at once and not logged.
fn expired(e: &watcher::Error) -> bool {
    matches!(e, watcher::Error::WatchError(status) if status.code == 410)
}

/// Waits after an unreachable server: from the first step doubling to the last; the last is short, so a
/// watch lists again within two seconds of the server returning (every watch of a cluster fails at the
/// same moment, so none can wake the others earlier; asking a server that refuses connections is cheap).
const UNREACHABLE_FIRST: Duration = Duration::from_millis(500);
const UNREACHABLE_MAX: Duration = Duration::from_secs(2);
/// Waits after an error of a server that answers (forbidden, a kind gone): longer, it will not heal soon.
const REFUSED_FIRST: Duration = Duration::from_secs(1);
const REFUSED_MAX: Duration = Duration::from_secs(30);

/// The retries of one watch: exponential backoff, reset by any event; a throttled warning while it fails
/// and one info line when it works again.
#[derive(Debug)]
pub struct WatchRetry {
    source: String,
    outage: Outage,
    /// The last wait, and whether it was for an unreachable server.
    backoff: Option<(bool, Duration)>,
}

impl WatchRetry {
    /// Retries of the watch named `source` in its log lines (a kind, "Applications", "argocd-cm").
    pub fn new(source: impl Into<String>) -> WatchRetry {
        WatchRetry { source: source.into(), outage: Outage::default(), backoff: None }
    }

    /// The watch delivered an event: the backoff starts over, and a recovery is logged.
    pub fn succeeded(&mut self) {
        self.backoff = None;
        if let Some(r) = self.outage.succeeded(Instant::now()) {
            tracing::info!(source = %self.source, down_for = ?r.down_for, failures = r.failures, "watch recovered");
        }
    }

    /// The watch failed: logs when due and returns how long to wait before it is polled again.
    pub fn failed(&mut self, e: &watcher::Error) -> Duration {
        if expired(e) {
            tracing::debug!(source = %self.source, error = %e, "watch expired; listing again");
            return Duration::ZERO;
        }
        let unreachable = watch_unreachable(e);
        let (first, max) =
            if unreachable { (UNREACHABLE_FIRST, UNREACHABLE_MAX) } else { (REFUSED_FIRST, REFUSED_MAX) };
        // A server that answers again starts the backoff over, even when it refuses (a CRD's resources are
        // served a moment after the server is ready): no long wait carried over from the outage.
        let wait = match self.backoff {
            Some((was_unreachable, last)) if was_unreachable == unreachable => (last * 2).clamp(first, max),
            _ => first,
        };
        self.backoff = Some((unreachable, wait));
        if self.outage.failed(Instant::now()) {
            tracing::warn!(
                source = %self.source, error = %e, failures = self.outage.failures(), retry_in = ?wait,
                "watch failing; retrying with backoff (warned again each {WARN_EVERY:?} while it lasts)"
            );
        }
        wait
    }
}

/// A watch stream whose errors are retried through `retry` (the stream is polled again after the wait):
/// only events come out, and it ends only when the watch does.
pub fn retried<S, T>(stream: S, retry: WatchRetry) -> impl Stream<Item = T> + Send
where
    S: Stream<Item = Result<T, watcher::Error>> + Send + 'static,
    T: Send + 'static,
{
    futures::stream::unfold((stream.boxed(), retry), |(mut stream, mut retry)| async move {
        loop {
            match stream.next().await? {
                Ok(event) => {
                    retry.succeeded();
                    return Some((event, (stream, retry)));
                }
                Err(e) => {
                    let wait = retry.failed(&e);
                    if !wait.is_zero() {
                        tokio::time::sleep(wait).await;
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16) -> watcher::Error {
        watcher::Error::WatchError(Box::new(kube::core::Status { code, ..Default::default() }))
    }

    #[test]
    fn an_outage_warns_at_its_first_failure_then_once_per_period() {
        let t0 = Instant::now();
        let mut outage = Outage::new(Duration::from_secs(60));
        let warned: Vec<bool> = (0..30).map(|s| outage.failed(t0 + Duration::from_secs(s))).collect();
        assert_eq!(warned.iter().filter(|w| **w).count(), 1, "30 failures in 30 s: one warning");
        assert!(warned[0]);
        assert!(outage.failed(t0 + Duration::from_secs(61)), "a minute on: warned again");
        assert!(!outage.failed(t0 + Duration::from_secs(62)));
        assert_eq!(outage.failures(), 32);
    }

    #[test]
    fn a_recovery_is_reported_once_with_the_outage_length_and_failures() {
        let t0 = Instant::now();
        let mut outage = Outage::default();
        assert_eq!(outage.succeeded(t0), None, "nothing failed: nothing to report");
        outage.failed(t0);
        outage.failed(t0 + Duration::from_secs(10));
        assert!(outage.is_failing());
        assert_eq!(
            outage.succeeded(t0 + Duration::from_secs(30)),
            Some(Recovered { down_for: Duration::from_secs(30), failures: 2 })
        );
        assert_eq!(outage.succeeded(t0 + Duration::from_secs(31)), None, "reported once");
        assert!(outage.failed(t0 + Duration::from_secs(32)), "a new outage warns again at once");
    }

    #[tokio::test]
    async fn an_unreachable_server_is_asked_again_every_two_seconds_and_an_answer_resets_the_backoff() {
        let mut retry = WatchRetry::new("test");
        let down = status(503);
        let waits: Vec<u64> = (0..8).map(|_| retry.failed(&down).as_millis() as u64).collect();
        assert_eq!(waits, [500, 1000, 2000, 2000, 2000, 2000, 2000, 2000]);
        retry.succeeded();
        assert_eq!(retry.failed(&down), UNREACHABLE_FIRST, "the backoff starts over after an event");
    }

    #[tokio::test]
    async fn a_server_that_answers_again_starts_the_backoff_over_even_when_it_refuses() {
        let mut retry = WatchRetry::new("test");
        for _ in 0..6 {
            retry.failed(&status(503));
        }
        assert_eq!(retry.failed(&status(404)), REFUSED_FIRST, "not the outage's step doubled");
        assert_eq!(retry.failed(&status(404)), REFUSED_FIRST * 2);
    }

    #[tokio::test]
    async fn a_refused_watch_backs_off_to_half_a_minute_and_an_expired_one_lists_at_once() {
        let mut retry = WatchRetry::new("test");
        let waits: Vec<u64> = (0..7).map(|_| retry.failed(&status(403)).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(retry.failed(&status(410)), Duration::ZERO);
    }

    #[tokio::test]
    async fn a_retried_stream_yields_only_events_and_waits_between_failures() {
        let events = futures::stream::iter(vec![Err(status(503)), Ok(1), Err(status(410)), Ok(2)]);
        let out: Vec<i32> = retried(events, WatchRetry::new("test")).collect().await;
        assert_eq!(out, [1, 2]);
    }
}
