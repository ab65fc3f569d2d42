//! The seed's estate, with the built binary: berth (in process, on the control cluster) deploying the seed's
//! web app to three other independent API servers, prod, staging and dev-1 (`hack/test` starts them as
//! `<name>-remote`, `<name>-staging` and `<name>-dev-1` and names their kubeconfigs, colon-separated, in
//! `BERTH_TEST_ESTATE_KUBECONFIGS`), each added with `berth cluster add`. A commit rolls out to all three,
//! selfHeal works on a remote cluster, and one of them going away for a minute holds up no other, loses
//! nothing anywhere, and recovers by itself.

use berth_testkit::clusters::{LocalCluster, Stopped};
use berth_testkit::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

mod common;
use common::*;

// The seed's web app and the status readers of the controller's tests: one definition for both crates.
#[path = "../../controller/tests/common/mod.rs"]
mod controller_common;
use controller_common::{conditions, health, seed_web_app, sync_status, web_manifests};

const TIMEOUT: Duration = Duration::from_secs(120);

/// How long one cluster of the estate stays down.
const OUTAGE: Duration = Duration::from_secs(60);

/// The estate's clusters, as berth names them, in the order of `BERTH_TEST_ESTATE_KUBECONFIGS`.
const ESTATE: [&str; 3] = ["prod", "staging", "dev-1"];

/// The three API servers of `BERTH_TEST_ESTATE_KUBECONFIGS`; fails loudly when it is unset.
async fn estate() -> Vec<LocalCluster> {
    let clusters = LocalCluster::from_env_list("BERTH_TEST_ESTATE_KUBECONFIGS").await;
    assert_eq!(
        clusters.len(),
        ESTATE.len(),
        "BERTH_TEST_ESTATE_KUBECONFIGS names the kubeconfigs of prod, staging and dev-1, colon-separated"
    );
    clusters
}

/// The image of the `web` Deployment that `deployments` reaches, when there is one.
async fn web_image(deployments: &Api<Deployment>) -> Option<String> {
    let web = deployments.get_opt("web").await.ok()??;
    web.spec?.template.spec?.containers.first()?.image.clone()
}

/// Polls the cluster's API server until the `web` Deployment in `ns` runs `image`: how long after `since`.
async fn applied(cluster: &LocalCluster, ns: &str, image: &str, since: Instant) -> Duration {
    let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), ns);
    poll(&format!("{image} on {}", cluster.name), TIMEOUT, || async {
        web_image(&deployments).await.as_deref() == Some(image)
    })
    .await;
    since.elapsed()
}

/// The uids of what the web app made on a cluster: its namespace, Deployment and Service.
async fn uids(cluster: &LocalCluster, ns: &str) -> [Option<String>; 3] {
    let namespace = Api::<Namespace>::all(cluster.client.clone()).get(ns).await.unwrap();
    let deployment = Api::<Deployment>::namespaced(cluster.client.clone(), ns).get("web").await.unwrap();
    let service = Api::<Service>::namespaced(cluster.client.clone(), ns).get("web").await.unwrap();
    [namespace.metadata.uid, deployment.metadata.uid, service.metadata.uid]
}

/// Waits until the Application's JSON satisfies `check`; panics with its last status otherwise.
async fn wait_app(
    apps: &Api<berth_api::Application>,
    name: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let app = serde_json::to_value(apps.get(name).await.unwrap()).unwrap();
        if check(&app) {
            return app;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {name}: {what}; status:\n{}",
            serde_json::to_string_pretty(&app["status"]).unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Synced and Healthy at `revision`, with no condition left from an outage.
fn synced_at(app: &Value, revision: &str) -> bool {
    sync_status(app) == "Synced"
        && health(app) == "Healthy"
        && app["status"]["sync"]["revision"] == revision
        && !conditions(app).contains("unreachable")
}

/// A GitHub push of `after` to `repo`, as a git host sends it: berth refreshes the apps of that repository.
async fn push(server: &InProcess, repo: &GitRepo, after: &str) -> Value {
    let url = repo.url();
    let body = json!({"ref": "refs/heads/main", "before": "0".repeat(40), "after": after,
        "repository": {"html_url": url, "clone_url": url, "default_branch": "main"},
        "commits": [{"added": [], "modified": ["apps/web/web.yaml"], "removed": []}]});
    let response = reqwest::Client::new()
        .post(format!("{}/api/webhook", server.base))
        .header("X-GitHub-Event", "push")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    response.json().await.unwrap()
}

/// The median of `samples`, in milliseconds.
fn p50(samples: &[Duration]) -> u128 {
    let mut sorted = samples.to_vec();
    sorted.sort();
    sorted[sorted.len() / 2].as_millis()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_estate_rolls_out_to_prod_staging_and_dev_1_and_rides_out_a_minute_without_one() {
    let client = client().await;
    install_crds(&client).await;
    let estate = estate().await;
    let ns = unique("cli-estate");
    ensure_namespace(&client, &ns).await;
    allow_file_urls(&client, &ns).await;
    let server = InProcess::start(&client, &ns, Options { controller: true, ..Default::default() }).await;
    let cli = Cli::new();
    cli.login(&server.address, "admin", &admin_password(&client, &ns).await).await;

    // `berth cluster add` of each context, from the three kubeconfigs merged as KUBECONFIG=a:b:c.
    let merged: Vec<&str> = estate.iter().map(|c| c.kubeconfig.as_str()).collect();
    let merged = merged.join(":");
    for (cluster, name) in estate.iter().zip(ESTATE) {
        let add = ["cluster", "add", &cluster.name, "--name", name, "--yes", "--upsert"];
        let run = cli.run_with(&add, &[("KUBECONFIG", &merged)]).await.ok();
        assert_eq!(run.stdout, format!("Cluster '{}' added\n", cluster.server), "{}", run.stderr);
    }
    let run = cli.run(&["cluster", "list", "-o", "name"]).await.ok();
    for cluster in &estate {
        assert!(
            run.stdout.lines().any(|l| l == cluster.server),
            "{} not listed: {}",
            cluster.server,
            run.stdout
        );
    }

    // The seed's web app on each, by the cluster's name, into one namespace of the same name everywhere.
    let repo = GitRepo::new();
    repo.write("apps/web/web.yaml", &web_manifests("myorg/web:v1.2.3"));
    let first = repo.commit("web v1.2.3");
    let dest = unique("estate-web");
    let apps: Api<berth_api::Application> = Api::namespaced(client.clone(), &ns);
    let names: Vec<String> = ESTATE.iter().map(|c| unique(&format!("web-{c}"))).collect();
    for (name, cluster) in names.iter().zip(ESTATE) {
        let mut app = seed_web_app(name, &repo.url(), &dest);
        app["metadata"]["namespace"] = ns.clone().into();
        app["spec"]["destination"] = json!({"name": cluster, "namespace": dest});
        apps.patch(name, &PatchParams::apply("berth-test"), &Patch::Apply(&app)).await.unwrap();
    }
    poll("the web app Synced and Healthy on prod, staging and dev-1", TIMEOUT, || async {
        let mut all = true;
        for name in &names {
            let app = serde_json::to_value(apps.get(name).await.unwrap()).unwrap();
            all &= synced_at(&app, &first);
        }
        all
    })
    .await;
    for cluster in &estate {
        let web = Api::<Deployment>::namespaced(cluster.client.clone(), &dest).get("web").await.unwrap();
        assert_eq!(web.spec.unwrap().replicas, Some(3), "on {}", cluster.name);
    }
    let here: Api<Deployment> = Api::namespaced(client.clone(), &dest);
    assert!(here.get_opt("web").await.unwrap().is_none(), "nothing is deployed to berth's own cluster");

    // A commit (and its push) rolls out to all three.
    let commit = repo.write("apps/web/web.yaml", &web_manifests("myorg/web:v1.2.4")).commit("web v1.2.4");
    let since = Instant::now();
    let refreshed = push(&server, &repo, &commit).await;
    for name in &names {
        assert!(refreshed["refreshed"].as_array().unwrap().contains(&name.as_str().into()), "{refreshed}");
    }
    let rollout =
        futures::future::join_all(estate.iter().map(|c| applied(c, &dest, "myorg/web:v1.2.4", since)));
    let latencies = rollout.await;
    println!("estate: v1.2.4 applied on prod, staging, dev-1 after {latencies:?}");

    // selfHeal on staging, from its own API server.
    let staging: Api<Deployment> = Api::namespaced(estate[1].client.clone(), &dest);
    let scale = json!({"spec": {"replicas": 1}});
    staging.patch("web", &PatchParams::default(), &Patch::Merge(&scale)).await.unwrap();
    poll("staging's Deployment healed to 3 replicas", TIMEOUT, || async {
        staging.get("web").await.unwrap().spec.and_then(|s| s.replicas) == Some(3)
    })
    .await;

    // The outage: dev-1's API server stops for a minute while commits go on.
    let mut before = Vec::new();
    for cluster in &estate {
        before.push(uids(cluster, &dest).await);
    }
    let dev = &estate[2];
    let dev_app = &names[2];
    let synced = wait_app(&apps, dev_app, "Synced at v1.2.4", |a| synced_at(a, &commit)).await;
    let last_sync = synced["status"]["operationState"]["startedAt"].clone();
    let stopped = Stopped::stop(&dev.name).await;
    let outage = Instant::now();
    let unreachable = |a: &Value| {
        let mut said =
            a["status"]["conditions"].as_array().into_iter().flatten().filter_map(|c| c["message"].as_str());
        sync_status(a) == "Unknown"
            && said.any(|m| m.contains("cluster \"dev-1\"") && m.contains(&dev.server))
    };
    // Watched from the start: the first push after the stop makes dev-1's app compare, and fail.
    let turned_unknown = async {
        wait_app(&apps, dev_app, "Unknown, with a condition naming dev-1", unreachable).await;
        outage.elapsed()
    };
    let commits = async {
        let (mut on_prod, mut on_staging) = (Vec::new(), Vec::new());
        let mut release = 0;
        let newest = loop {
            release += 1;
            let image = format!("myorg/web:v1.3.{release}");
            let sha = repo.write("apps/web/web.yaml", &web_manifests(&image)).commit(&format!("web {image}"));
            let since = Instant::now();
            push(&server, &repo, &sha).await;
            let (prod, staging) = futures::join!(
                applied(&estate[0], &dest, &image, since),
                applied(&estate[1], &dest, &image, since)
            );
            on_prod.push(prod);
            on_staging.push(staging);
            if outage.elapsed() >= OUTAGE {
                break (sha, image);
            }
        };
        (newest, on_prod, on_staging)
    };
    let (unknown_after, ((newest, newest_image), on_prod, on_staging)) =
        futures::join!(turned_unknown, commits);
    println!("estate: dev-1's app Unknown {unknown_after:?} after its API server stopped");
    println!(
        "estate: {} commits during dev-1's outage; commit→applied p50: prod {} ms, staging {} ms (max {:?}, {:?})",
        on_prod.len(),
        p50(&on_prod),
        p50(&on_staging),
        on_prod.iter().max().unwrap(),
        on_staging.iter().max().unwrap()
    );
    let app = serde_json::to_value(apps.get(dev_app).await.unwrap()).unwrap();
    assert!(unreachable(&app), "dev-1's app after a minute down: {}", app["status"]);
    assert_eq!(app["status"]["operationState"]["startedAt"], last_sync, "no sync ran: {}", app["status"]);
    for name in &names[..2] {
        wait_app(&apps, name, "Synced and Healthy at the newest commit", |a| synced_at(a, &newest)).await;
    }

    // Back: dev-1 catches up by itself, and nothing was deleted anywhere.
    stopped.start().await;
    let back = Instant::now();
    wait_app(&apps, dev_app, "Synced and Healthy at the newest commit, by itself", |a| synced_at(a, &newest))
        .await;
    applied(dev, &dest, &newest_image, back).await;
    println!(
        "estate: dev-1 Synced and Healthy at the newest commit {:?} after its API server was up",
        back.elapsed()
    );
    for ((cluster, uids_before), name) in estate.iter().zip(&before).zip(ESTATE) {
        assert_eq!(&uids(cluster, &dest).await, uids_before, "the web app's objects on {name} were replaced");
    }
    assert!(here.get_opt("web").await.unwrap().is_none(), "nothing is deployed to berth's own cluster");

    server.stop().await;
    for cluster in &estate {
        let _ =
            Api::<Namespace>::all(cluster.client.clone()).delete(&dest, &DeleteParams::background()).await;
    }
    let _ = Api::<Namespace>::all(client.clone()).delete(&ns, &DeleteParams::background()).await;
}
