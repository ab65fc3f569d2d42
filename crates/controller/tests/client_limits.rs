//! A cluster's request budget ([`berth_controller::clusters::limits`]) on a real API server: the local
//! cluster of `hack/cluster up` (KUBECONFIG).

use berth_controller::clusters::limits::{ClientLimits, limited_client};
use std::time::{Duration, Instant};

#[tokio::test]
async fn a_limited_client_passes_requests_to_the_api_server_each_in_its_turn() {
    // Fails loudly without the local cluster.
    berth_testkit::client().await;
    let config = kube::Config::infer().await.expect("a configuration from KUBECONFIG");
    let client = limited_client(config, ClientLimits { qps: 5.0, burst: 1 }).unwrap();

    let started = Instant::now();
    for _ in 0..3 {
        let version = client.apiserver_version().await.expect("the API server answers through the limiter");
        assert!(!version.git_version.is_empty());
    }
    // The first request spends the burst; each of the next two waits 1/5 s for its token.
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(400), "3 requests at 5 a second took {waited:?}");
}
