//! Prometheus metrics of the controller, in the text exposition format, under Argo CD's metric names
//! where Argo CD has one (so its dashboards read berth): reconcile durations, sync results, git
//! requests, renders, the work queue's depth, and this replica's shard. Process-wide: one controller per
//! process. Also the replica's readiness (`/readyz`), which the metrics listener serves.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

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
    /// (repo, request type) → (count, duration histogram)
    git: BTreeMap<(String, String), Histogram>,
    /// source type → duration histogram
    renders: BTreeMap<String, Histogram>,
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
}

/// The process's metrics.
pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::default)
}

impl Metrics {
    pub fn reconciled(&self, took: Duration) {
        let mut s = self.state.lock().expect("metrics lock");
        s.reconcile.get_or_insert_with(|| Histogram::new(RECONCILE_BUCKETS)).observe(took.as_secs_f64());
    }

    pub fn synced(&self, name: &str, namespace: &str, project: &str, phase: &str) {
        let mut s = self.state.lock().expect("metrics lock");
        *s.syncs.entry((name.into(), namespace.into(), project.into(), phase.into())).or_default() += 1;
    }

    pub fn git_request(&self, repo: &str, request_type: &str, took: Duration) {
        let mut s = self.state.lock().expect("metrics lock");
        s.git
            .entry((repo.into(), request_type.into()))
            .or_insert_with(|| Histogram::new(SHORT_BUCKETS))
            .observe(took.as_secs_f64());
    }

    pub fn rendered(&self, source_type: &str, took: Duration) {
        let mut s = self.state.lock().expect("metrics lock");
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
        let s = self.state.lock().expect("metrics lock");
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
        out.push_str("# HELP berth_render_duration_seconds Time to render a source, by tool.\n");
        out.push_str("# TYPE berth_render_duration_seconds histogram\n");
        for (tool, h) in &s.renders {
            h.write(&mut out, "berth_render_duration_seconds", &format!("source_type=\"{}\"", escape(tool)));
        }
        out.push_str("# HELP workqueue_depth Current depth of the work queue.\n");
        out.push_str("# TYPE workqueue_depth gauge\n");
        let _ = writeln!(
            out,
            "workqueue_depth{{name=\"app_reconciliation_queue\"}} {}",
            self.queue_depth.load(Ordering::Relaxed)
        );
        out.push_str("# HELP berth_shard_applications Applications owned by this replica's shard.\n");
        out.push_str("# TYPE berth_shard_applications gauge\n");
        let _ = writeln!(out, "berth_shard_applications {}", self.shard_applications.load(Ordering::Relaxed));
        out.push_str("# HELP berth_shard_replicas Live replicas this replica sees, itself included.\n");
        out.push_str("# TYPE berth_shard_replicas gauge\n");
        let _ = writeln!(out, "berth_shard_replicas {}", self.shard_replicas.load(Ordering::Relaxed));
        out
    }
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
        m.rendered("Helm", Duration::from_millis(40));
        m.set_queue_depth(3);
        m.set_shard(120, 3);
        let text = m.render();
        assert!(text.contains("argocd_app_sync_total{name=\"we\\\"b\",namespace=\"argocd\",project=\"default\",phase=\"Succeeded\"} 1"), "{text}");
        assert!(text.contains(
            "argocd_git_request_total{repo=\"https://example.com/r.git\",request_type=\"ls-remote\"} 1"
        ));
        assert!(text.contains("berth_render_duration_seconds_count{source_type=\"Helm\"} 1"));
        assert!(text.contains("workqueue_depth{name=\"app_reconciliation_queue\"} 3"));
        assert!(text.contains("argocd_app_reconcile_count 1"));
        assert!(
            text.contains("# TYPE berth_shard_applications gauge\nberth_shard_applications 120\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE berth_shard_replicas gauge\nberth_shard_replicas 3\n"), "{text}");
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
