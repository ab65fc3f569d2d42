//! The cluster cache against the real local API server (KUBECONFIG): what it counts, and how long its
//! watches live.

use berth_engine::cache::ClusterCache;
use berth_engine::resource::{GroupKind, ResourceKey};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, PostParams};
use std::time::{Duration, Instant, SystemTime};

async fn client() -> kube::Client {
    assert!(
        std::env::var_os("KUBECONFIG").is_some(),
        "KUBECONFIG is not set: start the local cluster with `hack/cluster up` and `eval \"$(hack/cluster env)\"`"
    );
    kube::Client::try_default().await.expect("a client from KUBECONFIG")
}

#[tokio::test]
async fn a_watch_runs_while_a_clone_of_the_cache_lives_and_ends_with_the_last() {
    let client = client().await;
    let (tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let cache = ClusterCache::new(client.clone(), tx);
    let config_maps = GroupKind { group: String::new(), kind: "ConfigMap".into() };
    let before = SystemTime::now();
    cache.ensure_watched(&config_maps).await.unwrap();

    // Every namespace has its kube-root-ca.crt.
    let stats = cache.stats();
    assert!(stats.resources > 0, "{stats:?}");
    assert_eq!(stats.kinds, 1, "{stats:?}");
    assert!(stats.last_synced.is_some_and(|t| t >= before && t <= SystemTime::now()), "{stats:?}");

    // One clone left keeps the watch: it sees a ConfigMap created after the other clone is gone.
    let clone = cache.clone();
    drop(cache);
    let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().subsec_nanos();
    let name = format!("berth-cache-{}-{nanos}", std::process::id());
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let mut body = ConfigMap::default();
    body.metadata.name = Some(name.clone());
    api.create(&PostParams::default(), &body).await.unwrap();
    let key = ResourceKey::new("", "ConfigMap", "default", &name);
    let deadline = Instant::now() + Duration::from_secs(30);
    while clone.get(&key).is_none() {
        assert!(Instant::now() < deadline, "the remaining clone's watch did not see {name}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    api.delete(&name, &DeleteParams::default()).await.unwrap();

    // Each watch task holds a sender of the events: the channel closes once every one has ended.
    drop(clone);
    tokio::time::timeout(Duration::from_secs(10), async { while events.recv().await.is_some() {} })
        .await
        .expect("the watch tasks ended after the last clone of the cache was dropped");
}
