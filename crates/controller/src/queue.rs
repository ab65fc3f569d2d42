//! The work queue: one entry per application, never two reconciles of the same application at once (so
//! no auto-sync races), and the strongest request wins when several arrive before a worker takes it.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
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
        let mut s = self.state.lock().expect("queue lock");
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
                let mut s = self.state.lock().expect("queue lock");
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
        let again = self.state.lock().expect("queue lock").running.remove(name).flatten();
        if let Some(level) = again {
            self.push(name, level);
        }
    }

    /// Stops handing out work; workers finish what they hold.
    pub fn close(&self) {
        self.state.lock().expect("queue lock").closed = true;
        self.notify.notify_waiters();
    }

    /// Applications waiting for a worker.
    pub fn len(&self) -> usize {
        self.state.lock().expect("queue lock").pending.len()
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
    async fn a_closed_queue_returns_none() {
        let q = Queue::default();
        q.close();
        assert_eq!(q.pop().await, None);
    }
}
