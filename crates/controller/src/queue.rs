//! The work queue: one entry per application, never two reconciles of the same application at once (so
//! no auto-sync races), and the strongest request wins when several arrive before a worker takes it.
//! A worker ([`Queue::work`]) outlives a pass that panics, and [`PanicBackoff`] spaces out the retries of
//! an application whose passes keep panicking.

use futures::FutureExt;
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// How much a reconcile must do, weakest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Compare against the cluster again (a watched object changed).
    Compare,
    /// Also ask git whether the target revision moved.
    Refresh,
    /// Also drop the cached render (`argocd.argoproj.io/refresh: hard`).
    HardRefresh,
}

#[derive(Default)]
struct State {
    order: VecDeque<String>,
    pending: HashMap<String, Level>,
    running: HashMap<String, Option<Level>>,
    /// Since when work has waited or been held without a break (`None`: idle): `/healthz` measures a
    /// stall from here, not from a pass that finished before a quiet spell.
    busy_since: Option<Instant>,
    closed: bool,
}

#[derive(Default)]
#[allow(clippy::len_without_is_empty)]
pub struct Queue {
    state: Mutex<State>,
    notify: Notify,
}

impl Queue {
    pub fn push(&self, name: &str, level: Level) {
        let mut s = self.state.lock();
        s.busy_since.get_or_insert_with(Instant::now);
        if let Some(again) = s.running.get_mut(name) {
            *again = Some(again.map_or(level, |l| l.max(level)));
            return;
        }
        match s.pending.get_mut(name) {
            Some(l) => *l = (*l).max(level),
            None => {
                s.pending.insert(name.to_string(), level);
                s.order.push_back(name.to_string());
                drop(s);
                self.notify.notify_one();
            }
        }
    }

    /// The next application to reconcile, or `None` once the queue is closed.
    pub async fn pop(&self) -> Option<(String, Level)> {
        loop {
            let notified = self.notify.notified();
            {
                let mut s = self.state.lock();
                if s.closed {
                    return None;
                }
                if let Some(name) = s.order.pop_front() {
                    let level = s.pending.remove(&name).unwrap_or(Level::Compare);
                    s.running.insert(name.clone(), None);
                    if !s.order.is_empty() {
                        self.notify.notify_one();
                    }
                    return Some((name, level));
                }
            }
            notified.await;
        }
    }

    /// Marks a reconcile finished; a request that arrived meanwhile is queued again.
    pub fn done(&self, name: &str) {
        let again = {
            let mut s = self.state.lock();
            let again = s.running.remove(name).flatten();
            if again.is_none() && s.running.is_empty() && s.pending.is_empty() {
                s.busy_since = None;
            }
            again
        };
        if let Some(level) = again {
            self.push(name, level);
        }
    }

    /// Stops handing out work; workers finish what they hold.
    pub fn close(&self) {
        self.state.lock().closed = true;
        self.notify.notify_waiters();
    }

    /// Applications waiting for a worker.
    pub fn len(&self) -> usize {
        self.state.lock().pending.len()
    }

    /// Since when applications have waited or been held without the queue going idle in between.
    pub fn busy_since(&self) -> Option<Instant> {
        self.state.lock().busy_since
    }

    /// Applications a worker holds now.
    pub fn in_flight(&self) -> usize {
        self.state.lock().running.len()
    }

    /// One worker: runs `pass` on each application handed out until the queue closes. A pass that panics
    /// is caught (its message goes to `panicked`, run while the application is still held, so nothing else
    /// works on it meanwhile), and the application is always marked done: the worker goes on with the next
    /// one, and the panicking application does not stay in flight forever.
    pub async fn work<P, PF, H, HF>(&self, mut pass: P, mut panicked: H)
    where
        P: FnMut(String, Level) -> PF,
        PF: Future<Output = ()>,
        H: FnMut(String, Level, String) -> HF,
        HF: Future<Output = ()>,
    {
        while let Some((name, level)) = self.pop().await {
            if let Err(payload) = AssertUnwindSafe(pass(name.clone(), level)).catch_unwind().await {
                let message = panic_message(payload.as_ref());
                // Reporting it must not take the worker down either.
                let reported = AssertUnwindSafe(panicked(name.clone(), level, message)).catch_unwind().await;
                if reported.is_err() {
                    tracing::error!(app = %name, "reporting a panicked reconcile panicked too");
                }
            }
            self.done(&name);
        }
    }
}

/// The message a panic was raised with (`panic!("…")`, `expect("…")`): berth's own words, never a secret.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        message.to_string()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "a panic without a message".to_string()
    }
}

/// The retries of the applications whose pass panicked: the first waits [`PanicBackoff::FIRST`], each
/// panic in a row doubles it up to [`PanicBackoff::MAX`], and a pass that returns starts it over. While an
/// application waits, requests for it (watch events, polls) are held and the strongest one is kept for
/// its retry: a pass that panics on every object change cannot spin a worker.
#[derive(Debug, Default)]
pub struct PanicBackoff {
    apps: HashMap<String, Held>,
}

#[derive(Debug)]
struct Held {
    /// Panics in a row.
    panics: u32,
    /// When its retry is due.
    until: Instant,
    /// The strongest request held meanwhile.
    asked: Option<Level>,
}

impl PanicBackoff {
    pub const FIRST: Duration = Duration::from_secs(10);
    pub const MAX: Duration = Duration::from_secs(300);

    /// Records that a pass of `name` panicked at `now`: how long until its retry.
    pub fn panicked(&mut self, name: &str, now: Instant) -> Duration {
        let held = self.apps.entry(name.to_string()).or_insert(Held { panics: 0, until: now, asked: None });
        held.panics = held.panics.saturating_add(1);
        let delay = Self::FIRST.saturating_mul(1 << (held.panics - 1).min(16)).min(Self::MAX);
        held.until = now + delay;
        delay
    }

    /// Whether a pass of `name` asked at `now` must wait for its retry; the request is kept for it.
    pub fn holds(&mut self, name: &str, level: Level, now: Instant) -> bool {
        match self.apps.get_mut(name) {
            Some(held) if now < held.until => {
                held.asked = Some(held.asked.map_or(level, |l| l.max(level)));
                true
            }
            _ => false,
        }
    }

    /// The retry of `name` is due: the strongest of `level` and what was held meanwhile.
    pub fn retry(&mut self, name: &str, level: Level) -> Level {
        self.apps.get_mut(name).and_then(|held| held.asked.take()).map_or(level, |l| l.max(level))
    }

    /// A pass of `name` returned: its next panic waits [`PanicBackoff::FIRST`] again.
    pub fn passed(&mut self, name: &str) {
        self.apps.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_strongest_pending_request_wins() {
        let q = Queue::default();
        q.push("a", Level::Compare);
        q.push("a", Level::HardRefresh);
        q.push("a", Level::Refresh);
        assert_eq!(q.pop().await, Some(("a".into(), Level::HardRefresh)));
        assert_eq!(q.len(), 0);
    }

    #[tokio::test]
    async fn an_app_is_never_handed_out_twice_at_once() {
        let q = Queue::default();
        q.push("a", Level::Refresh);
        let (name, _) = q.pop().await.unwrap();
        q.push("a", Level::Compare);
        q.push("b", Level::Compare);
        assert_eq!(q.pop().await, Some(("b".into(), Level::Compare)), "a is running, so b comes first");
        q.done(&name);
        assert_eq!(
            q.pop().await,
            Some(("a".into(), Level::Compare)),
            "the request made while running is kept"
        );
    }

    #[tokio::test]
    async fn a_panicking_pass_is_contained_and_the_worker_takes_the_next_application() {
        let q = std::sync::Arc::new(Queue::default());
        q.push("boom", Level::Refresh);
        q.push("fine", Level::Compare);
        let passed = std::sync::Arc::new(Mutex::new(Vec::new()));
        let reported = std::sync::Arc::new(Mutex::new(Vec::new()));
        let worker = {
            let (q, passed, reported) = (q.clone(), passed.clone(), reported.clone());
            tokio::spawn(async move {
                q.work(
                    |name, _| {
                        let passed = passed.clone();
                        async move {
                            tokio::task::yield_now().await;
                            if name == "boom" {
                                panic!("the pass of {name} broke");
                            }
                            passed.lock().push(name);
                        }
                    },
                    |name, level, message| {
                        let reported = reported.clone();
                        async move { reported.lock().push((name, level, message)) }
                    },
                )
                .await
            })
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while passed.lock().is_empty() {
            assert!(tokio::time::Instant::now() < deadline, "the worker did not take the next application");
            tokio::task::yield_now().await;
        }
        assert_eq!(*passed.lock(), ["fine"]);
        assert_eq!(*reported.lock(), [("boom".into(), Level::Refresh, "the pass of boom broke".into())]);
        assert_eq!(q.in_flight(), 0, "the panicked application is done, not in flight forever");
        q.push("boom", Level::Compare);
        assert_eq!(q.len(), 1, "and can be queued again");
        q.close();
        worker.await.expect("the worker ends when the queue closes, not by the panic");
    }

    #[test]
    fn panic_messages_are_read_from_str_and_string_payloads() {
        assert_eq!(panic_message(&"static words"), "static words");
        assert_eq!(panic_message(&String::from("formatted words")), "formatted words");
        assert_eq!(panic_message(&42_u8), "a panic without a message");
    }

    #[test]
    fn panic_retries_double_from_ten_seconds_to_five_minutes_and_start_over_after_a_pass() {
        let mut b = PanicBackoff::default();
        let t = Instant::now();
        let delays: Vec<u64> = (0..8).map(|_| b.panicked("a", t).as_secs()).collect();
        assert_eq!(delays, [10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(b.panicked("b", t), Duration::from_secs(10), "each application has its own");
        b.passed("a");
        assert_eq!(b.panicked("a", t), Duration::from_secs(10));
    }

    #[test]
    fn requests_during_the_wait_are_held_for_the_retry() {
        let mut b = PanicBackoff::default();
        let t = Instant::now();
        assert!(!b.holds("a", Level::Compare, t), "nothing panicked: no wait");
        b.panicked("a", t);
        assert!(b.holds("a", Level::Compare, t + Duration::from_secs(1)));
        assert!(b.holds("a", Level::HardRefresh, t + Duration::from_secs(2)));
        assert!(!b.holds("a", Level::Compare, t + Duration::from_secs(10)), "the retry is due");
        assert_eq!(b.retry("a", Level::Refresh), Level::HardRefresh, "the strongest request held");
        assert_eq!(b.retry("a", Level::Refresh), Level::Refresh, "taken once");
    }

    #[tokio::test]
    async fn the_queue_is_busy_from_the_first_request_after_an_idle_spell_until_it_is_empty() {
        let q = Queue::default();
        assert_eq!(q.busy_since(), None);
        q.push("a", Level::Compare);
        let since = q.busy_since().expect("busy");
        q.push("b", Level::Compare);
        let (a, _) = q.pop().await.unwrap();
        q.done(&a);
        assert_eq!(q.busy_since(), Some(since), "b still waits");
        let (b, _) = q.pop().await.unwrap();
        q.push(&b, Level::Refresh);
        q.done(&b);
        assert_eq!(q.busy_since(), Some(since), "b was asked for again while it ran");
        let (b, _) = q.pop().await.unwrap();
        q.done(&b);
        assert_eq!(q.busy_since(), None, "idle");
    }

    #[tokio::test]
    async fn a_closed_queue_returns_none() {
        let q = Queue::default();
        q.close();
        assert_eq!(q.pop().await, None);
    }
}
