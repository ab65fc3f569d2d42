//! Prometheus metrics of the controller, in the text exposition format, under Argo CD's metric names
//! where Argo CD has one (so its dashboards read berth): reconcile durations, sync results, git
//! requests, renders, the git cache's bytes on disk, the work queue's depth, and this replica's shard. Process-wide: one controller per
//! process. Also the replica's readiness (`/readyz`) and liveness (`/healthz`: its workers make progress),
//! which the metrics listener serves.

use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

/// A histogram with fixed upper bounds (seconds).
#[derive(Clone, Debug)]
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram { bounds, counts: vec![0; bounds.len()], sum: 0.0, count: 0 }
    }

    fn observe(&mut self, seconds: f64) {
        for (i, b) in self.bounds.iter().enumerate() {
            if seconds <= *b {
                self.counts[i] += 1;
            }
        }
        self.sum += seconds;
        self.count += 1;
    }

    fn write(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {c}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", self.count);
        let braces = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

/// Argo CD's reconcile buckets.
const RECONCILE_BUCKETS: &[f64] = &[0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0];
const SHORT_BUCKETS: &[f64] = &[0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

#[derive(Default)]
struct State {
    reconcile: Option<Histogram>,
    /// (name, namespace, project, phase) → count
    syncs: BTreeMap<(String, String, String, String), u64>,
    /// (repo, request type) → (count, duration histogram): requests git made to a remote.
    git: BTreeMap<(String, String), Histogram>,
    /// repo → ls-remote answers shared instead of asking the remote again.
    ls_remote_shared: BTreeMap<String, u64>,
    /// source type → duration histogram
    renders: BTreeMap<String, Histogram>,
    /// When a worker last finished a pass (or the workers started), and the longest pass yet.
    progress: Option<Instant>,
    longest_pass: Duration,
    /// The Applications' queue, asked what waits when `/healthz` is.
    queue: Weak<crate::queue::Queue>,
}

#[derive(Default)]
pub struct Metrics {
    state: Mutex<State>,
    queue_depth: AtomicI64,
    /// Applications this replica owns, and the live replicas it sees (its own included).
    shard_applications: AtomicI64,
    shard_replicas: AtomicI64,
    /// This replica's shard has its caches synced: it may be sent traffic and counted on by a rollout.
    ready: AtomicBool,
    /// Reconciles that panicked (each contained: its worker went on).
    panics: AtomicU64,
    /// Application workers running, and those that ended otherwise than by the queue closing.
    workers: AtomicI64,
    workers_died: AtomicI64,
    /// Bytes on disk of the git cache's extracted trees and bare clones, and the trees it evicted.
    repo_cache_trees: AtomicU64,
    repo_cache_clones: AtomicU64,
    repo_cache_evictions: AtomicU64,
}

/// No pass finishing for this long while work waits means the controller is stuck (unless passes are
/// that slow: see [`stalled`]).
pub const STALL_BOUND: Duration = Duration::from_secs(300);

/// What `/healthz` judges the Application workers by.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Workload {
    /// Applications waiting for a worker, and held by one.
    pub queued: usize,
    pub in_flight: usize,
    /// Workers running, and those that died.
    pub workers: i64,
    pub workers_died: i64,
    /// Since the last pass finished, the workers started, or work came after an idle spell (the latest).
    pub since_progress: Duration,
    /// The longest pass yet.
    pub longest_pass: Duration,
}

/// Why the controller makes no progress (`/healthz` answers 503 with it), or `None` while it does: every
/// worker died, or work waits and no pass finished for [`STALL_BOUND`] (or three times the longest pass
/// yet, when that is longer). No workers at all (no controller in this process, or not started yet) and an
/// idle queue are healthy.
pub fn stalled(w: &Workload) -> Option<String> {
    if w.workers <= 0 && w.workers_died > 0 {
        return Some(format!("every application worker died ({} of them)", w.workers_died));
    }
    let bound = STALL_BOUND.max(w.longest_pass.saturating_mul(3));
    let waiting = w.queued > 0 || w.in_flight > 0;
    (w.workers > 0 && waiting && w.since_progress > bound).then(|| {
        format!(
            "no reconcile finished for {}s while {} applications wait and {} are in flight",
            w.since_progress.as_secs(),
            w.queued,
            w.in_flight
        )
    })
}

/// One application worker as [`Metrics`] counts it; dropped without [`WorkerAlive::finished`] (the
/// worker's task ended by a panic or was aborted), it counts as died.
pub struct WorkerAlive {
    metrics: &'static Metrics,
    finished: bool,
}

impl WorkerAlive {
    /// The worker ended because the queue closed (a shutdown).
    pub fn finished(mut self) {
        self.finished = true;
    }
}

impl Drop for WorkerAlive {
    fn drop(&mut self) {
        let m = self.metrics;
        m.workers.fetch_sub(1, Ordering::Relaxed);
        if !self.finished {
            m.workers_died.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The process's metrics.
pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::default)
}

impl Metrics {
    /// A pass finished after `took`: observed, and counted as the workers' progress.
    pub fn reconciled(&self, took: Duration) {
        let mut s = self.state.lock();
        s.reconcile.get_or_insert_with(|| Histogram::new(RECONCILE_BUCKETS)).observe(took.as_secs_f64());
        s.progress = Some(Instant::now());
        s.longest_pass = s.longest_pass.max(took);
    }

    /// A pass panicked (and was contained): counted, and its worker went on.
    pub fn reconcile_panicked(&self) {
        self.panics.fetch_add(1, Ordering::Relaxed);
        self.state.lock().progress = Some(Instant::now());
    }

    /// The Applications' queue `/healthz` asks what waits.
    pub(crate) fn watch_queue(&self, queue: &Arc<crate::queue::Queue>) {
        self.state.lock().queue = Arc::downgrade(queue);
    }

    /// An application worker starts; it counts until the returned guard goes.
    pub fn worker_started(&'static self) -> WorkerAlive {
        self.workers.fetch_add(1, Ordering::Relaxed);
        let mut s = self.state.lock();
        s.progress.get_or_insert_with(Instant::now);
        WorkerAlive { metrics: self, finished: false }
    }

    /// The workers' state now, for [`stalled`].
    pub fn workload(&self) -> Workload {
        let (queue, progress, longest_pass) = {
            let s = self.state.lock();
            (s.queue.upgrade(), s.progress, s.longest_pass)
        };
        // Progress is counted from the later of the last finished pass and the moment work began to wait
        // after an idle spell: a first pass after a quiet hour is not a stall.
        let busy_since = queue.as_ref().and_then(|q| q.busy_since());
        let progress = match (progress, busy_since) {
            (Some(p), Some(b)) => Some(p.max(b)),
            (p, b) => p.or(b),
        };
        Workload {
            queued: queue.as_ref().map_or(0, |q| q.len()),
            in_flight: queue.as_ref().map_or(0, |q| q.in_flight()),
            workers: self.workers.load(Ordering::Relaxed),
            workers_died: self.workers_died.load(Ordering::Relaxed),
            since_progress: progress.map_or(Duration::ZERO, |at| at.elapsed()),
            longest_pass,
        }
    }

    /// What `/healthz` answers: `Err` with a one-line reason when the controller makes no progress.
    pub fn healthy(&self) -> Result<(), String> {
        stalled(&self.workload()).map_or(Ok(()), Err)
    }

    pub fn synced(&self, name: &str, namespace: &str, project: &str, phase: &str) {
        let mut s = self.state.lock();
        *s.syncs.entry((name.into(), namespace.into(), project.into(), phase.into())).or_default() += 1;
    }

    /// git asked the remote `repo` (Argo CD's `request_type`: `ls-remote`, `fetch`); counted where git runs.
    pub fn git_request(&self, repo: &str, request_type: &str, took: Duration) {
        let mut s = self.state.lock();
        s.git
            .entry((repo.into(), request_type.into()))
            .or_insert_with(|| Histogram::new(SHORT_BUCKETS))
            .observe(took.as_secs_f64());
    }

    /// A resolve of `repo` was answered with refs an ls-remote already had (no request to the remote).
    pub fn ls_remote_shared(&self, repo: &str) {
        *self.state.lock().ls_remote_shared.entry(repo.into()).or_default() += 1;
    }

    /// What the git cache takes on disk now: its extracted trees and its bare clones.
    pub fn set_repo_cache_bytes(&self, trees: u64, clones: u64) {
        self.repo_cache_trees.store(trees, Ordering::Relaxed);
        self.repo_cache_clones.store(clones, Ordering::Relaxed);
    }

    /// The git cache deleted `count` extracted trees to stay under its cap.
    pub fn repo_cache_evicted(&self, count: usize) {
        self.repo_cache_evictions.fetch_add(count as u64, Ordering::Relaxed);
    }

    pub fn rendered(&self, source_type: &str, took: Duration) {
        let mut s = self.state.lock();
        s.renders
            .entry(source_type.into())
            .or_insert_with(|| Histogram::new(SHORT_BUCKETS))
            .observe(took.as_secs_f64());
    }

    pub fn set_queue_depth(&self, depth: usize) {
        self.queue_depth.store(depth as i64, Ordering::Relaxed);
    }

    /// The size of this replica's shard: the Applications it owns among the `live_replicas` it sees.
    pub fn set_shard(&self, owned_apps: usize, live_replicas: usize) {
        self.shard_applications.store(owned_apps as i64, Ordering::Relaxed);
        self.shard_replicas.store(live_replicas as i64, Ordering::Relaxed);
    }

    /// Marks this replica ready (its shard's caches are synced) or not (starting, or its shard is moving).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// Whether `/readyz` answers 200: false until [`Metrics::set_ready`] says otherwise.
    pub fn ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Everything, in Prometheus's text format.
    pub fn render(&self) -> String {
        let s = self.state.lock();
        let mut out = String::new();
        out.push_str("# HELP argocd_app_reconcile Application reconciliation performance in seconds.\n");
        out.push_str("# TYPE argocd_app_reconcile histogram\n");
        s.reconcile.clone().unwrap_or_else(|| Histogram::new(RECONCILE_BUCKETS)).write(
            &mut out,
            "argocd_app_reconcile",
            "",
        );
        out.push_str("# HELP argocd_app_sync_total Number of application syncs.\n");
        out.push_str("# TYPE argocd_app_sync_total counter\n");
        for ((name, ns, project, phase), n) in &s.syncs {
            let _ = writeln!(
                out,
                "argocd_app_sync_total{{name=\"{}\",namespace=\"{}\",project=\"{}\",phase=\"{}\"}} {n}",
                escape(name),
                escape(ns),
                escape(project),
                escape(phase)
            );
        }
        out.push_str("# HELP argocd_git_request_total Number of git requests performed.\n");
        out.push_str("# TYPE argocd_git_request_total counter\n");
        for ((repo, kind), h) in &s.git {
            let _ = writeln!(
                out,
                "argocd_git_request_total{{repo=\"{}\",request_type=\"{}\"}} {}",
                escape(repo),
                escape(kind),
                h.count
            );
        }
        out.push_str("# HELP argocd_git_request_duration_seconds Git requests duration seconds.\n");
        out.push_str("# TYPE argocd_git_request_duration_seconds histogram\n");
        for ((repo, kind), h) in &s.git {
            let labels = format!("repo=\"{}\",request_type=\"{}\"", escape(repo), escape(kind));
            h.write(&mut out, "argocd_git_request_duration_seconds", &labels);
        }
        out.push_str(
            "# HELP berth_git_ls_remote_cache_hits_total Resolves answered by an ls-remote already made.\n",
        );
        out.push_str("# TYPE berth_git_ls_remote_cache_hits_total counter\n");
        for (repo, n) in &s.ls_remote_shared {
            let _ = writeln!(out, "berth_git_ls_remote_cache_hits_total{{repo=\"{}\"}} {n}", escape(repo));
        }
        out.push_str("# HELP berth_render_duration_seconds Time to render a source, by tool.\n");
        out.push_str("# TYPE berth_render_duration_seconds histogram\n");
        for (tool, h) in &s.renders {
            h.write(&mut out, "berth_render_duration_seconds", &format!("source_type=\"{}\"", escape(tool)));
        }
        out.push_str("# HELP berth_repo_cache_bytes Bytes on disk of the git cache, by kind.\n");
        out.push_str("# TYPE berth_repo_cache_bytes gauge\n");
        let (trees, clones) =
            (self.repo_cache_trees.load(Ordering::Relaxed), self.repo_cache_clones.load(Ordering::Relaxed));
        let _ = writeln!(out, "berth_repo_cache_bytes{{kind=\"trees\"}} {trees}");
        let _ = writeln!(out, "berth_repo_cache_bytes{{kind=\"clones\"}} {clones}");
        out.push_str(
            "# HELP berth_repo_cache_evictions_total Extracted trees deleted to keep them under their cap.\n",
        );
        out.push_str("# TYPE berth_repo_cache_evictions_total counter\n");
        let evicted = self.repo_cache_evictions.load(Ordering::Relaxed);
        let _ = writeln!(out, "berth_repo_cache_evictions_total {evicted}");
        out.push_str("# HELP workqueue_depth Current depth of the work queue.\n");
        out.push_str("# TYPE workqueue_depth gauge\n");
        // The queue's own count when the controller runs here: the last pass's figure may be old.
        let depth = s.queue.upgrade().map_or(self.queue_depth.load(Ordering::Relaxed), |q| q.len() as i64);
        let _ = writeln!(out, "workqueue_depth{{name=\"app_reconciliation_queue\"}} {depth}");
        out.push_str("# HELP berth_shard_applications Applications owned by this replica's shard.\n");
        out.push_str("# TYPE berth_shard_applications gauge\n");
        let _ = writeln!(out, "berth_shard_applications {}", self.shard_applications.load(Ordering::Relaxed));
        out.push_str("# HELP berth_shard_replicas Live replicas this replica sees, itself included.\n");
        out.push_str("# TYPE berth_shard_replicas gauge\n");
        let _ = writeln!(out, "berth_shard_replicas {}", self.shard_replicas.load(Ordering::Relaxed));
        out.push_str(
            "# HELP berth_reconcile_panics_total Reconciles that panicked (contained; retried later).\n",
        );
        out.push_str("# TYPE berth_reconcile_panics_total counter\n");
        let _ = writeln!(out, "berth_reconcile_panics_total {}", self.panics.load(Ordering::Relaxed));
        out
    }
}

/// What the controller's git cache reports into the process's metrics ([`GitCache::with_observer`]).
///
/// [`GitCache::with_observer`]: berth_repo::git::GitCache::with_observer
pub fn git_observer() -> berth_repo::git::GitObserver {
    use berth_repo::git::GitEvent;
    Arc::new(|event| match event {
        GitEvent::Request { repo, request, took } => global().git_request(repo, request, took),
        GitEvent::LsRemoteShared { repo } => global().ls_remote_shared(repo),
        GitEvent::CacheBytes { trees, clones } => global().set_repo_cache_bytes(trees, clones),
        GitEvent::TreesEvicted { count } => global().repo_cache_evicted(count),
    })
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_count_into_every_bucket_at_or_above() {
        let mut h = Histogram::new(RECONCILE_BUCKETS);
        h.observe(0.3);
        h.observe(3.0);
        let mut out = String::new();
        h.write(&mut out, "x", "");
        assert!(out.contains("x_bucket{le=\"0.25\"} 0\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"0.5\"} 1\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"4\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"+Inf\"} 2\n"), "{out}");
        assert!(out.contains("x_count 2\n") && out.contains("x_sum 3.3\n"), "{out}");
    }

    #[test]
    fn the_exposition_names_argo_cds_metrics_and_escapes_labels() {
        let m = Metrics::default();
        m.reconciled(Duration::from_millis(100));
        m.synced("we\"b", "argocd", "default", "Succeeded");
        m.git_request("https://example.com/r.git", "ls-remote", Duration::from_millis(20));
        m.ls_remote_shared("https://example.com/r.git");
        m.ls_remote_shared("https://example.com/r.git");
        m.rendered("Helm", Duration::from_millis(40));
        m.set_queue_depth(3);
        m.set_shard(120, 3);
        m.set_repo_cache_bytes(4096, 8192);
        m.repo_cache_evicted(2);
        let text = m.render();
        assert!(text.contains("argocd_app_sync_total{name=\"we\\\"b\",namespace=\"argocd\",project=\"default\",phase=\"Succeeded\"} 1"), "{text}");
        assert!(text.contains(
            "argocd_git_request_total{repo=\"https://example.com/r.git\",request_type=\"ls-remote\"} 1"
        ));
        assert!(
            text.contains("berth_git_ls_remote_cache_hits_total{repo=\"https://example.com/r.git\"} 2\n"),
            "shared answers are counted apart from requests: {text}"
        );
        assert!(text.contains("berth_render_duration_seconds_count{source_type=\"Helm\"} 1"));
        assert!(text.contains("workqueue_depth{name=\"app_reconciliation_queue\"} 3"));
        assert!(text.contains("argocd_app_reconcile_count 1"));
        assert!(
            text.contains("# TYPE berth_shard_applications gauge\nberth_shard_applications 120\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE berth_shard_replicas gauge\nberth_shard_replicas 3\n"), "{text}");
        assert!(
            text.contains(
                "berth_repo_cache_bytes{kind=\"trees\"} 4096\nberth_repo_cache_bytes{kind=\"clones\"} 8192\n"
            ),
            "{text}"
        );
        assert!(text.contains(
            "# TYPE berth_repo_cache_evictions_total counter\nberth_repo_cache_evictions_total 2\n"
        ));
    }

    #[test]
    fn panics_are_counted_in_the_exposition() {
        let m = Metrics::default();
        m.reconcile_panicked();
        m.reconcile_panicked();
        let text = m.render();
        assert!(
            text.contains("# TYPE berth_reconcile_panics_total counter\nberth_reconcile_panics_total 2\n"),
            "{text}"
        );
    }

    fn busy(since_progress: u64) -> Workload {
        Workload {
            queued: 3,
            in_flight: 16,
            workers: 16,
            workers_died: 0,
            since_progress: Duration::from_secs(since_progress),
            longest_pass: Duration::from_secs(2),
        }
    }

    #[test]
    fn a_controller_is_stalled_when_work_waits_and_no_pass_finished_for_five_minutes() {
        assert_eq!(stalled(&busy(299)), None);
        assert_eq!(
            stalled(&busy(301)).as_deref(),
            Some("no reconcile finished for 301s while 3 applications wait and 16 are in flight")
        );
        let only_in_flight = Workload { queued: 0, in_flight: 1, ..busy(400) };
        assert!(stalled(&only_in_flight).is_some(), "an application held forever is work waiting");
    }

    #[test]
    fn an_idle_controller_or_none_at_all_is_healthy_however_long_since_a_pass() {
        assert_eq!(stalled(&Workload { queued: 0, in_flight: 0, ..busy(3600) }), None);
        assert_eq!(stalled(&Workload::default()), None, "no controller in this process");
        assert_eq!(stalled(&Workload { workers: 0, ..busy(3600) }), None, "workers not started yet");
    }

    #[test]
    fn slow_passes_stretch_the_bound_to_three_times_the_longest() {
        let slow = Workload { longest_pass: Duration::from_secs(200), ..busy(500) };
        assert_eq!(stalled(&slow), None);
        assert!(stalled(&Workload { since_progress: Duration::from_secs(601), ..slow }).is_some());
    }

    #[test]
    fn a_controller_whose_workers_all_died_is_stalled_even_when_idle() {
        let dead = Workload { queued: 0, in_flight: 0, workers: 0, workers_died: 16, ..busy(0) };
        assert_eq!(stalled(&dead).as_deref(), Some("every application worker died (16 of them)"));
        assert_eq!(stalled(&Workload { workers: 1, workers_died: 15, ..busy(0) }), None, "one still works");
    }

    #[test]
    fn a_replica_is_not_ready_until_its_shard_says_so() {
        let m = Metrics::default();
        assert!(!m.ready());
        m.set_ready(true);
        assert!(m.ready());
        m.set_ready(false);
        assert!(!m.ready());
    }
}
