//! The acceptance of hack/cluster: Deployments become Available on kwok's fake node, a second named
//! cluster is independent, `up` is idempotent and `down` leaves no process behind.

use berth_testkit::{client, poll};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn hack(script: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../hack").join(script)
}

#[tokio::test]
async fn a_deployment_of_three_replicas_becomes_available_with_its_endpoints() {
    let client = client().await;
    let ns = format!("berth-cluster-{}", std::process::id());
    let pp = PatchParams::apply("berth-test");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .patch(
            &ns,
            &pp,
            &Patch::Apply(
                serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
            ),
        )
        .await
        .expect("namespace");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let labels = serde_json::json!({"app": "web"});
    deployments
        .patch("web", &pp, &Patch::Apply(serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"replicas": 3, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "web", "image": "myorg/web:v1.2.3", "ports": [{"containerPort": 80}]}]}}}
        })))
        .await
        .expect("deployment");
    let services: Api<Service> = Api::namespaced(client.clone(), &ns);
    services
        .patch(
            "web",
            &pp,
            &Patch::Apply(serde_json::json!({
                "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 80}]}
            })),
        )
        .await
        .expect("service");

    poll("3/3 available replicas", Duration::from_secs(60), || {
        let deployments = deployments.clone();
        async move {
            let d = deployments.get("web").await.expect("deployment");
            d.status.and_then(|s| s.available_replicas) == Some(3)
        }
    })
    .await;
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), &ns);
    poll("an EndpointSlice with 3 ready endpoints", Duration::from_secs(30), || {
        let slices = slices.clone();
        async move {
            let list = slices
                .list(&ListParams::default().labels("kubernetes.io/service-name=web"))
                .await
                .expect("slices");
            list.items
                .iter()
                .flat_map(|s| s.endpoints.iter().flatten())
                .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
                .count()
                == 3
        }
    })
    .await;
    namespaces.delete(&ns, &DeleteParams::default()).await.expect("cleanup");
}

fn run(script: &Path, args: &[&str]) -> String {
    let out = Command::new(script).args(args).output().expect("the script runs");
    assert!(
        out.status.success(),
        "{} {args:?} failed:\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().chars().all(|c| c.is_ascii_digit()))
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(needle))
        .collect()
}

#[tokio::test]
async fn a_second_named_cluster_is_independent_and_down_leaves_no_process() {
    let first = client().await;
    let name = format!("second-{}", std::process::id());
    let cluster = hack("cluster");
    run(&cluster, &["up", "--name", &name]);
    let again = run(&cluster, &["up", "--name", &name]);
    assert!(again.contains("already up"), "a second `up` restarted the cluster:\n{again}");

    let env = run(&cluster, &["env", "--name", &name]);
    let kubeconfig = env
        .lines()
        .find_map(|l| l.strip_prefix("export KUBECONFIG="))
        .expect("env prints KUBECONFIG")
        .to_string();
    assert_ne!(
        Some(kubeconfig.clone()),
        std::env::var("KUBECONFIG").ok(),
        "the second cluster has its own kubeconfig"
    );
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&kubeconfig).expect("second kubeconfig"),
        &Default::default(),
    )
    .await
    .expect("config");
    let second = kube::Client::try_from(config).expect("client");

    // A namespace made in the second cluster does not exist in the first.
    let ns_name = format!("only-in-{name}");
    let second_ns: Api<Namespace> = Api::all(second);
    second_ns
        .patch(
            &ns_name,
            &PatchParams::apply("berth-test"),
            &Patch::Apply(
                serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns_name}}),
            ),
        )
        .await
        .expect("namespace in the second cluster");
    let first_ns: Api<Namespace> = Api::all(first);
    assert!(first_ns.get_opt(&ns_name).await.expect("lookup").is_none(), "the clusters share state");

    let cluster_dir = Path::new(&kubeconfig).parent().expect("cluster dir").to_string_lossy().to_string();
    assert!(processes_mentioning(&cluster_dir).len() >= 5, "the second cluster's five processes are running");
    run(&cluster, &["down", "--name", &name]);
    let left = processes_mentioning(&cluster_dir);
    assert!(left.is_empty(), "down left processes behind: {left:?}");
    std::fs::remove_dir_all(&cluster_dir).expect("removing the second cluster's state");
}
