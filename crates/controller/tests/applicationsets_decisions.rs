//! The `clusterDecisionResource` generator against the real local cluster: a duck-typed
//! PlacementDecision-like custom resource (a CRD of its own) whose `status.decisions` names the
//! in-cluster, the ConfigMap that says how to read it, and an ApplicationSet whose Application follows
//! the decision. Every check reads the API server (Applications, ApplicationSets, Deployments).

mod common;

use berth_api::ApplicationSet;
use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::{Value, json};
use std::time::Duration;

const SET_TIMEOUT: Duration = Duration::from_secs(60);
const GROUP: &str = "decisions.berth.test";
const VERSION: &str = "v1alpha1";

/// Installs the PlacementDecision CRD (any status shape: duck typing reads only `status.decisions`) and
/// waits until it is served.
async fn install_decision_crd(client: &kube::Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let name = format!("placementdecisions.{GROUP}");
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": name},
        "spec": {
            "group": GROUP, "scope": "Namespaced",
            "names": {"kind": "PlacementDecision", "listKind": "PlacementDecisionList",
                      "plural": "placementdecisions", "singular": "placementdecision"},
            "versions": [{"name": VERSION, "served": true, "storage": true,
                          "schema": {"openAPIV3Schema": {"type": "object",
                                                          "x-kubernetes-preserve-unknown-fields": true}}}]
        }
    });
    crds.patch(&name, &PatchParams::apply("berth-test").force(), &Patch::Apply(&crd)).await.unwrap();
    poll("the PlacementDecision CRD Established", SET_TIMEOUT, || async {
        crds.get(&name)
            .await
            .ok()
            .and_then(|c| c.status)
            .and_then(|s| s.conditions)
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Established" && c.status == "True"))
    })
    .await;
}

fn decisions(bench: &Bench) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(GROUP, VERSION, "PlacementDecision"),
        "placementdecisions",
    );
    Api::namespaced_with(bench.client.clone(), &bench.namespace, &resource)
}

/// Writes the PlacementDecision `name` (labelled `placement: web`) deciding `clusters`.
async fn decide(bench: &Bench, name: &str, clusters: &[&str]) {
    let decided: Vec<Value> =
        clusters.iter().map(|c| json!({"clusterName": c, "reason": "placed by the test"})).collect();
    let object = json!({
        "apiVersion": format!("{GROUP}/{VERSION}"), "kind": "PlacementDecision",
        "metadata": {"name": name, "namespace": bench.namespace, "labels": {"placement": "web"}},
        "status": {"decisions": decided}
    });
    let api = decisions(bench);
    // Poll: the new type may take a moment to be served after Established.
    poll(&format!("PlacementDecision {name} written"), SET_TIMEOUT, || {
        let api = api.clone();
        let object = object.clone();
        async move {
            api.patch(name, &PatchParams::apply("berth-test").force(), &Patch::Apply(&object)).await.is_ok()
        }
    })
    .await;
}

/// The ConfigMap that tells the generator how to read the duck type (Argo CD's documented keys).
async fn duck_config_map(bench: &Bench, api_version: &str, kind: &str) {
    apply_json(
        &bench.client,
        &bench.namespace,
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "placement-duck", "namespace": bench.namespace},
               "data": {"apiVersion": api_version, "kind": kind,
                        "statusListKey": "decisions", "matchKey": "clusterName"}}),
    )
    .await;
}

fn sets(bench: &Bench) -> Api<ApplicationSet> {
    Api::namespaced(bench.client.clone(), &bench.namespace)
}

/// The message of the set's `ErrorOccurred` condition when it is `True`.
async fn set_error(bench: &Bench, name: &str) -> String {
    let set = serde_json::to_value(sets(bench).get(name).await.unwrap()).unwrap();
    set["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "ErrorOccurred" && c["status"] == "True")
        .and_then(|c| c["message"].as_str())
        .unwrap_or_default()
        .to_string()
}

async fn wait_error(bench: &Bench, name: &str, wanted: &str) {
    poll(&format!("set {name} reporting {wanted:?}"), SET_TIMEOUT, || async {
        set_error(bench, name).await.contains(wanted)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_placement_decision_naming_the_in_cluster_generates_its_application_and_its_removal_deletes_it() {
    let mut bench = Bench::start("appset-cdr").await;
    install_decision_crd(&bench.client).await;
    duck_config_map(&bench, &format!("{GROUP}/{VERSION}"), "placementdecisions").await;
    decide(&bench, "web-placement", &["in-cluster", "unknown-cluster"]).await;
    let repo = GitRepo::new();
    repo.write("web/web.yaml", &web_manifests("myorg/web:v1"));
    repo.commit("web");
    let dest = bench.dest_namespace("cdr-web");
    let set = json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "ApplicationSet",
        "metadata": {"name": "placed", "namespace": bench.namespace},
        "spec": {
            "generators": [{"clusterDecisionResource": {
                "configMapRef": "placement-duck",
                "labelSelector": {"matchLabels": {"placement": "web"}},
                "requeueAfterSeconds": 1
            }}],
            "template": {
                "metadata": {"name": "web-{{name}}", "annotations": {"placement-reason": "{{reason}}"}},
                "spec": {
                    "project": "default",
                    "source": {"repoURL": repo.url(), "targetRevision": "main", "path": "web"},
                    "destination": {"server": "{{server}}", "namespace": dest},
                    "syncPolicy": {"automated": {"prune": true}, "syncOptions": ["CreateNamespace=true"]}
                }
            }
        }
    });
    sets(&bench)
        .patch("placed", &PatchParams::apply("berth-test").force(), &Patch::Apply(&set))
        .await
        .unwrap();

    // The decided in-cluster gets its Application, deployed; the unknown cluster nothing.
    poll("the Application web-in-cluster", SET_TIMEOUT, || async {
        bench.apps().get_opt("web-in-cluster").await.unwrap().is_some()
    })
    .await;
    let app = bench
        .wait_app("web-in-cluster", "Synced and Healthy", |a| {
            sync_status(a) == "Synced" && health(a) == "Healthy"
        })
        .await;
    assert_eq!(app["spec"]["destination"]["server"], "https://kubernetes.default.svc");
    assert_eq!(app["metadata"]["annotations"]["placement-reason"], "placed by the test");
    let names: Vec<String> = bench
        .apps()
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|a| a.metadata.name)
        .collect();
    assert_eq!(names, ["web-in-cluster"], "a decision naming no known cluster generates nothing");
    let deployments: Api<Deployment> = Api::namespaced(bench.client.clone(), &dest);
    assert!(deployments.get_opt("web").await.unwrap().is_some(), "web deployed");

    // The decision withdrawn: the Application goes.
    decide(&bench, "web-placement", &[]).await;
    poll("web-in-cluster deleted", SET_TIMEOUT, || async {
        bench.apps().get_opt("web-in-cluster").await.unwrap().is_none()
    })
    .await;

    // A ConfigMap naming what cannot be read is a clear error on the set.
    duck_config_map(&bench, "nothing.berth.test/v1", "placementdecisions").await;
    wait_error(&bench, "placed", "nothing.berth.test/v1 could not be discovered").await;
    duck_config_map(&bench, &format!("{GROUP}/{VERSION}"), "Secret").await;
    wait_error(&bench, "placed", "Secrets are never read").await;
    duck_config_map(&bench, &format!("{GROUP}/{VERSION}"), "ducks").await;
    wait_error(&bench, "placed", "serves no resource \"ducks\"").await;
    bench.cleanup().await;
}
