//! Each cluster's budget of requests to its API server, as Argo CD's `ARGOCD_K8S_CLIENT_QPS` and
//! `ARGOCD_K8S_CLIENT_BURST`: every client berth makes for a cluster ([`limited_client`]) has a token bucket
//! of its own, so a busy cluster never spends another's budget and berth never floods an API server.
//!
//! ```no_run
//! # async fn example(config: kube::Config) -> Result<(), Box<dyn std::error::Error>> {
//! use berth_controller::clusters::limits::{ClientLimits, limited_client};
//! let client = limited_client(config, ClientLimits::from_env()?)?;
//! client.apiserver_version().await?;
//! # Ok(())
//! # }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::time::{Instant, Sleep};
use tower::{Layer, Service};

/// Requests a second to one API server, on average (Argo CD's name; berth's default 500).
pub const QPS_VAR: &str = "ARGOCD_K8S_CLIENT_QPS";
/// Requests sent at once to one API server after a quiet spell (Argo CD's name; default twice the QPS).
pub const BURST_VAR: &str = "ARGOCD_K8S_CLIENT_BURST";

/// The longest wait between two requests, whatever the QPS (keeps the clock arithmetic finite).
const SLOWEST: Duration = Duration::from_secs(24 * 3600);

/// How fast one client may send requests: `burst` at once, then `qps` a second.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClientLimits {
    pub qps: f64,
    pub burst: u32,
}

impl Default for ClientLimits {
    /// 500 a second, bursts of 1,000: ten times Argo CD's 50/100, which would hold berth's own pace (the
    /// in-cluster client carries the controller's status writes and the API server's reads too: 1,000 apps
    /// synced at once take a few thousand requests). `ARGOCD_K8S_CLIENT_QPS=50` gives Argo CD's.
    fn default() -> ClientLimits {
        ClientLimits { qps: 500.0, burst: 1000 }
    }
}

/// A limit that is not a positive number; names the variable, as the value is no secret.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{var}: {value:?} is not a positive number")]
pub struct LimitsError {
    pub var: &'static str,
    pub value: String,
}

impl ClientLimits {
    /// The limits [`QPS_VAR`] and [`BURST_VAR`] set (unset or empty: the defaults, the burst twice the QPS
    /// as in Argo CD).
    pub fn from_env() -> Result<ClientLimits, LimitsError> {
        let var = |name| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned());
        ClientLimits::parse(var(QPS_VAR).as_deref(), var(BURST_VAR).as_deref())
    }

    /// The limits of the two variables' values (`None` or blank: unset).
    pub fn parse(qps: Option<&str>, burst: Option<&str>) -> Result<ClientLimits, LimitsError> {
        fn set(v: Option<&str>) -> Option<&str> {
            v.map(str::trim).filter(|v| !v.is_empty())
        }
        let refused = |var, value: &str| LimitsError { var, value: value.to_string() };
        let qps = match set(qps) {
            None => ClientLimits::default().qps,
            Some(v) => v
                .parse::<f64>()
                .ok()
                .filter(|q| q.is_finite() && *q > 0.0)
                .ok_or_else(|| refused(QPS_VAR, v))?,
        };
        let burst = match set(burst) {
            // Saturates for a huge QPS; at least one request may go.
            None => ((2.0 * qps) as u32).max(1),
            Some(v) => v.parse::<u32>().ok().filter(|b| *b > 0).ok_or_else(|| refused(BURST_VAR, v))?,
        };
        Ok(ClientLimits { qps, burst })
    }

    /// The limits of this process's remote clusters: the environment's, read once. A value that is not a
    /// positive number gives the defaults here: `berth run` refuses to start with one before any cluster.
    pub fn of_process() -> ClientLimits {
        static LIMITS: OnceLock<ClientLimits> = OnceLock::new();
        *LIMITS.get_or_init(|| ClientLimits::from_env().unwrap_or_default())
    }
}

/// A client for `config` whose requests wait for their turn under `limits`; a watch takes its turn when it
/// starts, like any request. Each call makes a bucket of its own: one a cluster.
pub fn limited_client(config: kube::Config, limits: ClientLimits) -> Result<kube::Client, kube::Error> {
    Ok(kube::client::ClientBuilder::try_from(config)?.with_layer(&RateLimitLayer::new(limits)).build())
}

/// [`limited_client`] for the controller of one replica among several: below the request budget, a fence
/// refuses a write whenever this replica may not write ([`crate::replicas::fence`]), so nothing that
/// waited for a token goes out after its share moved.
pub fn fenced_client(
    config: kube::Config,
    limits: ClientLimits,
    gate: &crate::replicas::fence::Gate,
) -> Result<kube::Client, kube::Error> {
    Ok(kube::client::ClientBuilder::try_from(config)?
        .with_layer(&crate::replicas::fence::FenceLayer(gate.clone()))
        .with_layer(&RateLimitLayer::new(limits))
        .build())
}

/// Makes a [`RateLimit`] with a full bucket of its own around each service it is given.
#[derive(Clone, Debug)]
pub struct RateLimitLayer {
    limits: ClientLimits,
}

impl RateLimitLayer {
    pub fn new(limits: ClientLimits) -> RateLimitLayer {
        RateLimitLayer { limits }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> RateLimit<S> {
        RateLimit { inner, bucket: Bucket::full(self.limits, Instant::now()), taken: false, sleep: None }
    }
}

/// A token bucket in front of `inner`: `poll_ready` waits for a token, `call` spends it. Callers queue in
/// front of it (kube's client buffers them), so requests go in their order.
pub struct RateLimit<S> {
    inner: S,
    bucket: Bucket,
    /// A token is taken for the next `call`.
    taken: bool,
    /// The wait for the next token (made on the first wait: a timer needs the runtime).
    sleep: Option<Pin<Box<Sleep>>>,
}

/// A token bucket kept as the time its next request would be due with an empty bucket (GCRA): exact on the
/// clock's nanoseconds, where counting fractional tokens drifts.
#[derive(Debug)]
struct Bucket {
    /// Time a token takes to come back (1/qps).
    interval: Duration,
    /// How far ahead of the clock `due` may run and still let a request go: the burst less one.
    slack: Duration,
    due: Instant,
}

impl Bucket {
    fn full(limits: ClientLimits, now: Instant) -> Bucket {
        let interval = Duration::try_from_secs_f64(1.0 / limits.qps).unwrap_or(SLOWEST).min(SLOWEST);
        Bucket { interval, slack: interval.saturating_mul(limits.burst.saturating_sub(1)), due: now }
    }

    /// Takes a token at `now`, or says when the next one comes.
    fn take(&mut self, now: Instant) -> Result<(), Instant> {
        let due = self.due.max(now);
        if due.saturating_duration_since(now) > self.slack {
            return Err(due - self.slack);
        }
        self.due = due + self.interval;
        Ok(())
    }
}

impl<S, R> Service<R> for RateLimit<S>
where
    S: Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        while !self.taken {
            match self.bucket.take(Instant::now()) {
                Ok(()) => self.taken = true,
                Err(at) => {
                    let sleep = self.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
                    sleep.as_mut().reset(at);
                    ready!(sleep.as_mut().poll(cx));
                }
            }
        }
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> S::Future {
        // tower's contract: `call` follows a ready `poll_ready`, which took the token.
        self.taken = false;
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parking_lot::Mutex;
    use std::convert::Infallible;
    use std::future::{Ready, poll_fn};
    use std::sync::Arc;

    /// A service that records when each request reached it, counted from `start`.
    #[derive(Clone)]
    struct Recorder {
        start: Instant,
        arrivals: Arc<Mutex<Vec<Duration>>>,
    }

    impl Recorder {
        fn new() -> Recorder {
            Recorder { start: Instant::now(), arrivals: Arc::default() }
        }

        fn arrivals(&self) -> Vec<Duration> {
            self.arrivals.lock().clone()
        }
    }

    impl Service<()> for Recorder {
        type Response = ();
        type Error = Infallible;
        type Future = Ready<Result<(), Infallible>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: ()) -> Self::Future {
            self.arrivals.lock().push(self.start.elapsed());
            std::future::ready(Ok(()))
        }
    }

    /// Sends `n` requests one after the other, each as soon as the limiter lets it.
    async fn send(service: &mut RateLimit<Recorder>, n: usize) {
        for _ in 0..n {
            poll_fn(|cx| service.poll_ready(cx)).await.unwrap();
            service.call(()).await.unwrap();
        }
    }

    fn ms(values: &[u64]) -> Vec<Duration> {
        values.iter().map(|v| Duration::from_millis(*v)).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_passes_at_once_and_the_next_requests_are_spaced_at_one_over_qps() {
        let recorder = Recorder::new();
        let mut limited = RateLimitLayer::new(ClientLimits { qps: 10.0, burst: 3 }).layer(recorder.clone());
        send(&mut limited, 6).await;
        assert_eq!(recorder.arrivals(), ms(&[0, 0, 0, 100, 200, 300]));
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_client_saves_up_to_its_burst_and_no_more() {
        let recorder = Recorder::new();
        let mut limited = RateLimitLayer::new(ClientLimits { qps: 10.0, burst: 2 }).layer(recorder.clone());
        send(&mut limited, 2).await;
        // A second of quiet would refill ten tokens; the bucket holds two.
        tokio::time::sleep(Duration::from_secs(1)).await;
        send(&mut limited, 3).await;
        assert_eq!(recorder.arrivals(), ms(&[0, 0, 1000, 1000, 1100]));
    }

    #[tokio::test(start_paused = true)]
    async fn each_limited_service_has_its_own_budget() {
        let layer = RateLimitLayer::new(ClientLimits { qps: 1.0, burst: 2 });
        let (busy, quiet) = (Recorder::new(), Recorder::new());
        let mut busy_limited = layer.layer(busy.clone());
        let mut quiet_limited = layer.layer(quiet.clone());
        send(&mut busy_limited, 2).await;
        send(&mut quiet_limited, 2).await;
        assert_eq!(busy.arrivals(), ms(&[0, 0]));
        assert_eq!(quiet.arrivals(), ms(&[0, 0]), "the busy service spent the quiet one's budget");
    }

    #[tokio::test(start_paused = true)]
    async fn requests_sent_together_go_in_turn() {
        let recorder = Recorder::new();
        let limited = RateLimitLayer::new(ClientLimits { qps: 4.0, burst: 1 }).layer(recorder.clone());
        // As kube's client holds it: one limiter behind a queue that many callers share.
        let shared = tower::buffer::Buffer::new(limited, 16);
        let calls = (0..4).map(|_| {
            let mut service = shared.clone();
            tokio::spawn(async move {
                poll_fn(|cx| service.poll_ready(cx)).await.unwrap();
                service.call(()).await.unwrap();
            })
        });
        for call in calls.collect::<Vec<_>>() {
            call.await.unwrap();
        }
        assert_eq!(recorder.arrivals(), ms(&[0, 250, 500, 750]));
    }

    #[test]
    fn unset_limits_are_the_defaults_and_the_burst_follows_the_qps_as_in_argo_cd() {
        assert_eq!(ClientLimits::parse(None, None), Ok(ClientLimits { qps: 500.0, burst: 1000 }));
        assert_eq!(ClientLimits::parse(Some(" "), Some("")), Ok(ClientLimits { qps: 500.0, burst: 1000 }));
        assert_eq!(ClientLimits::parse(Some("50"), None), Ok(ClientLimits { qps: 50.0, burst: 100 }));
        assert_eq!(ClientLimits::parse(Some("150"), None), Ok(ClientLimits { qps: 150.0, burst: 300 }));
        assert_eq!(ClientLimits::parse(Some("0.2"), None), Ok(ClientLimits { qps: 0.2, burst: 1 }));
        assert_eq!(ClientLimits::parse(Some("7.5"), Some("9")), Ok(ClientLimits { qps: 7.5, burst: 9 }));
    }

    #[test]
    fn a_limit_that_is_not_a_positive_number_is_refused_naming_its_variable() {
        for qps in ["0", "-5", "fast", "NaN", "inf"] {
            let error = ClientLimits::parse(Some(qps), None).unwrap_err();
            assert_eq!(error.to_string(), format!("ARGOCD_K8S_CLIENT_QPS: {qps:?} is not a positive number"));
        }
        for burst in ["0", "-1", "1.5", "lots"] {
            let error = ClientLimits::parse(None, Some(burst)).unwrap_err();
            assert_eq!(
                error.to_string(),
                format!("ARGOCD_K8S_CLIENT_BURST: {burst:?} is not a positive number")
            );
        }
    }

    #[test]
    fn an_extreme_qps_keeps_the_clock_arithmetic_finite() {
        let now = Instant::now();
        let mut slow = Bucket::full(ClientLimits { qps: 1e-300, burst: u32::MAX }, now);
        assert_eq!(slow.interval, SLOWEST);
        assert!(slow.take(now).is_ok());
        let mut fast = Bucket::full(ClientLimits { qps: 1e300, burst: 1 }, now);
        assert!((0..1000).all(|_| fast.take(now).is_ok()), "a zero interval never makes a request wait");
    }
}
