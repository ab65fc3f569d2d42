//! The last fence: the controller's clients refuse a write at the moment it would leave, when this replica
//! may not act. The checks before each write ([`super::Replicas::check`]) decide by Application; this one
//! catches what waited meanwhile — behind the request budget, or in a process frozen (SIGSTOP) past its
//! Lease — and would otherwise reach the API server after the share moved. Dry runs pass: they change nothing.

use parking_lot::Mutex;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;
use tower::{BoxError, Layer, Service};

/// Whether this replica may write now: published by [`super::Replicas`], read by [`Fence`].
#[derive(Clone, Default)]
pub struct Gate(Arc<Mutex<Window>>);

#[derive(Clone, Copy, Default)]
struct Window {
    standalone: bool,
    from: Option<Instant>,
    until: Option<Instant>,
}

impl Gate {
    /// Open between `from` and `until` (or always, `standalone`).
    pub(crate) fn set(&self, standalone: bool, from: Option<Instant>, until: Option<Instant>) {
        *self.0.lock() = Window { standalone, from, until };
    }

    pub fn open(&self) -> bool {
        let w = *self.0.lock();
        let now = Instant::now();
        w.standalone || (w.from.is_some_and(|t| now >= t) && w.until.is_some_and(|t| now < t))
    }
}

/// A request refused because this replica may not write now.
#[derive(Debug, thiserror::Error)]
#[error(
    "this replica may not write now (its Lease is not held, or not yet long enough); the request was not sent"
)]
pub struct Closed;

/// Puts a [`Fence`] around a client's service (below its request budget, so the check is the last step).
#[derive(Clone)]
pub struct FenceLayer(pub Gate);

impl<S> Layer<S> for FenceLayer {
    type Service = Fence<S>;

    fn layer(&self, inner: S) -> Fence<S> {
        Fence { inner, gate: self.0.clone() }
    }
}

#[derive(Clone)]
pub struct Fence<S> {
    inner: S,
    gate: Gate,
}

/// Whether a request changes the cluster: a mutating method that is not a dry run.
fn writes<B>(request: &http::Request<B>) -> bool {
    let mutating = matches!(
        *request.method(),
        http::Method::POST | http::Method::PUT | http::Method::PATCH | http::Method::DELETE
    );
    let dry_run = request.uri().query().is_some_and(|q| q.split('&').any(|p| p.starts_with("dryRun=")));
    mutating && !dry_run
}

impl<S, B> Service<http::Request<B>> for Fence<S>
where
    S: Service<http::Request<B>>,
    S::Error: Into<BoxError>,
    S::Response: Send + 'static,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = futures::future::BoxFuture<'static, Result<S::Response, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if writes(&request) && !self.gate.open() {
            return Box::pin(async { Err(Box::new(Closed) as BoxError) });
        }
        let future = self.inner.call(request);
        Box::pin(async move { future.await.map_err(Into::into) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[derive(Clone, Default)]
    struct Counter(Arc<Mutex<Vec<String>>>);

    impl Service<http::Request<()>> for Counter {
        type Response = ();
        type Error = std::convert::Infallible;
        type Future = std::future::Ready<Result<(), std::convert::Infallible>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, request: http::Request<()>) -> Self::Future {
            self.0.lock().push(format!("{} {}", request.method(), request.uri()));
            std::future::ready(Ok(()))
        }
    }

    fn request(method: &str, uri: &str) -> http::Request<()> {
        http::Request::builder().method(method).uri(uri).body(()).unwrap()
    }

    #[tokio::test]
    async fn a_closed_gate_stops_writes_and_lets_reads_and_dry_runs_through() {
        let sent = Counter::default();
        let gate = Gate::default();
        let mut fence = FenceLayer(gate.clone()).layer(sent.clone());
        assert!(fence.call(request("GET", "/api/v1/namespaces/a/configmaps")).await.is_ok());
        assert!(
            fence
                .call(request("PATCH", "/api/v1/namespaces/a/configmaps/x?dryRun=All&force=true"))
                .await
                .is_ok()
        );
        let refused = fence.call(request("PATCH", "/api/v1/namespaces/a/configmaps/x")).await.unwrap_err();
        assert!(refused.to_string().contains("may not write"), "{refused}");
        assert!(fence.call(request("DELETE", "/api/v1/namespaces/a/configmaps/x")).await.is_err());
        assert_eq!(sent.0.lock().len(), 2, "the refused writes were not sent");

        let now = Instant::now();
        gate.set(false, Some(now), Some(now + Duration::from_secs(60)));
        assert!(fence.call(request("POST", "/api/v1/namespaces/a/configmaps")).await.is_ok());
        gate.set(false, Some(now), Some(now));
        assert!(fence.call(request("PUT", "/api/v1/namespaces/a/configmaps/x")).await.is_err(), "expired");
        gate.set(true, None, None);
        assert!(fence.call(request("PUT", "/api/v1/namespaces/a/configmaps/x")).await.is_ok(), "standalone");
    }
}
