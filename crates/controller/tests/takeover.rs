//! Taking over a live Argo CD estate on the real local cluster. The objects are written the way Argo CD
//! writes them with client-side apply (its default): a create or patch by field manager
//! `argocd-controller` (operation `Update`) with the `kubectl.kubernetes.io/last-applied-configuration`
//! annotation, tracked by annotation or, with `application.resourceTrackingMethod: label`, by the
//! instance label. Then berth takes over: what git dropped leaves the cluster, what equals git is not
//! written (uid and resourceVersion kept), a label-tracked orphan is pruned.

mod common;

use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

/// Writes `obj` as Argo CD's client-side apply does on a first sync: a create by `argocd-controller`
/// carrying the last-applied-configuration annotation.
async fn client_side_apply<K>(api: &Api<K>, obj: serde_json::Value)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let mut obj = obj;
    let last_applied = obj.to_string();
    obj["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] = last_applied.into();
    let data: K = serde_json::from_value(obj).unwrap();
    let params = PostParams { field_manager: Some("argocd-controller".into()), ..Default::default() };
    api.create(&params, &data).await.unwrap();
}

fn config_map(
    name: &str,
    ns: &str,
    app: &str,
    labels: serde_json::Value,
    data: serde_json::Value,
) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns, "labels": labels,
            "annotations": {"argocd.argoproj.io/tracking-id": format!("{app}:/ConfigMap:{ns}/{name}")}},
        "data": data})
}

fn managers(obj: &impl kube::Resource) -> Vec<(String, String)> {
    obj.meta()
        .managed_fields
        .iter()
        .flatten()
        .map(|m| (m.manager.clone().unwrap_or_default(), m.operation.clone().unwrap_or_default()))
        .collect()
}

fn app_for(name: &str, repo: &GitRepo, ns: &str) -> serde_json::Value {
    let mut app = seed_web_app(name, &repo.url(), ns);
    app["spec"]["source"]["path"] = "app".into();
    app["spec"]["syncPolicy"] = json!({});
    app
}

#[tokio::test]
async fn fields_argo_cd_applied_client_side_leave_when_git_drops_them_and_equal_objects_are_not_written() {
    let mut bench = Bench::start("takeover").await;
    let ns = bench.dest_namespace("takeover");
    ensure_namespace(&bench.client, &ns).await;
    let name = unique("takeover");
    // What Argo CD synced from the old commit.
    let cms: Api<ConfigMap> = Api::namespaced(bench.client.clone(), &ns);
    let same = config_map("same", &ns, &name, json!({"app": "web"}), json!({"a": "1"}));
    client_side_apply(&cms, same.clone()).await;
    let old =
        config_map("changed", &ns, &name, json!({"app": "web", "stale": "x"}), json!({"a": "1", "b": "2"}));
    client_side_apply(&cms, old).await;
    let deployments: Api<Deployment> = Api::namespaced(bench.client.clone(), &ns);
    let deployment = |containers: serde_json::Value| {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": ns,
                "annotations": {"argocd.argoproj.io/tracking-id": format!("{name}:apps/Deployment:{ns}/web")}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": containers}}}})
    };
    let web = json!({"name": "web", "image": "web:1", "env": [{"name": "LOG", "value": "debug"}]});
    let sidecar = json!({"name": "sidecar", "image": "proxy:1"});
    client_side_apply(&deployments, deployment(json!([web, sidecar]))).await;
    let before_same = cms.get("same").await.unwrap();
    // The new commit: `same` as it is; `changed` without `b` and the `stale` label; the Deployment
    // without its sidecar and the LOG variable.
    let repo = GitRepo::new();
    let yaml = |v: &serde_json::Value| {
        let mut v = v.clone();
        v["metadata"].as_object_mut().unwrap().remove("namespace");
        v["metadata"].as_object_mut().unwrap().remove("annotations");
        serde_json::to_string(&v).unwrap()
    };
    repo.write("app/same.yaml", &yaml(&same));
    repo.write(
        "app/changed.yaml",
        &yaml(&config_map("changed", &ns, &name, json!({"app": "web"}), json!({"a": "1"}))),
    );
    repo.write("app/web.yaml", &yaml(&deployment(json!([{"name": "web", "image": "web:1"}]))));
    repo.commit("drop fields");
    bench.create_app(app_for(&name, &repo, &ns)).await;

    // Compare sees the leftovers: the app is never Synced while they are there.
    let app = bench.wait_app(&name, "compared", |a| !sync_status(a).is_empty()).await;
    assert_eq!(sync_status(&app), "OutOfSync", "{}", conditions(&app));
    let status_of = |app: &serde_json::Value, kind: &str, n: &str| {
        app["status"]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["kind"] == kind && r["name"] == n)
            .map(|r| r["status"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert_eq!(status_of(&app, "ConfigMap", "same"), "Synced");
    assert_eq!(status_of(&app, "ConfigMap", "changed"), "OutOfSync");
    assert_eq!(status_of(&app, "Deployment", "web"), "OutOfSync");

    let app = bench.operate(&name, json!({"sync": {"revision": "HEAD"}})).await;
    assert_eq!(phase(&app), "Succeeded", "{}", serde_json::to_string_pretty(&app["status"]).unwrap());
    // From the API server: the dropped fields are gone, the old client-side entry too.
    let changed = cms.get("changed").await.unwrap();
    assert_eq!(changed.data.unwrap().keys().collect::<Vec<_>>(), ["a"]);
    assert!(!changed.metadata.labels.unwrap().contains_key("stale"));
    assert!(
        !managers(&cms.get("changed").await.unwrap())
            .contains(&("argocd-controller".into(), "Update".into()))
    );
    let web = deployments.get("web").await.unwrap();
    let containers = web.spec.unwrap().template.spec.unwrap().containers;
    assert_eq!(containers.len(), 1, "{containers:?}");
    assert_eq!(containers[0].env, None, "{containers:?}");
    // Equal to git: not written at all.
    let after_same = cms.get("same").await.unwrap();
    assert_eq!(after_same.metadata.uid, before_same.metadata.uid);
    assert_eq!(after_same.metadata.resource_version, before_same.metadata.resource_version);
    let app = bench.refreshed(&name).await;
    assert_eq!(sync_status(&app), "Synced", "{}", serde_json::to_string_pretty(&app["status"]).unwrap());
    bench.cleanup().await;
}

#[tokio::test]
async fn with_label_tracking_label_tracked_objects_are_the_apps_and_an_orphan_is_pruned() {
    let mut bench = Bench::start("labels").await;
    // argocd-cm says label tracking before the controller reads it.
    bench.stop_controller().await;
    let cm: Api<ConfigMap> = Api::namespaced(bench.client.clone(), &bench.namespace);
    let patch = json!({"data": {"application.resourceTrackingMethod": "label"}});
    cm.patch("argocd-cm", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    bench.start_controller();
    let ns = bench.dest_namespace("labels");
    ensure_namespace(&bench.client, &ns).await;
    let name = unique("labels");
    let cms: Api<ConfigMap> = Api::namespaced(bench.client.clone(), &ns);
    let labelled = |n: &str| {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": n, "namespace": ns, "labels": {"app.kubernetes.io/instance": name}},
            "data": {"a": "1"}})
    };
    client_side_apply(&cms, labelled("keep")).await;
    client_side_apply(&cms, labelled("orphan")).await;
    // A copy of the label on an object something else owns is not the app's.
    let owner = cms.get("keep").await.unwrap();
    let mut owned = labelled("owned");
    owned["metadata"]["ownerReferences"] = json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "keep",
        "uid": owner.metadata.uid.clone().unwrap()}]);
    client_side_apply(&cms, owned).await;
    let before_keep = cms.get("keep").await.unwrap();
    let repo = GitRepo::new();
    let mut keep = labelled("keep");
    keep["metadata"].as_object_mut().unwrap().remove("namespace");
    keep["metadata"].as_object_mut().unwrap().remove("labels");
    repo.write("app/keep.yaml", &serde_json::to_string(&keep).unwrap());
    repo.commit("only keep");
    bench.create_app(app_for(&name, &repo, &ns)).await;
    let app = bench.wait_app(&name, "compared", |a| !sync_status(a).is_empty()).await;
    assert_eq!(sync_status(&app), "OutOfSync", "{}", conditions(&app));
    let resources = app["status"]["resources"].as_array().unwrap().clone();
    let entry = |n: &str| resources.iter().find(|r| r["name"] == n).cloned();
    assert_eq!(entry("keep").unwrap()["status"], "Synced", "{resources:?}");
    assert_eq!(entry("orphan").unwrap()["requiresPruning"], true, "{resources:?}");
    assert!(entry("owned").is_none(), "an owned copy of the label is not tracked: {resources:?}");

    let app = bench.operate(&name, json!({"sync": {"revision": "HEAD", "prune": true}})).await;
    assert_eq!(phase(&app), "Succeeded", "{}", serde_json::to_string_pretty(&app["status"]).unwrap());
    poll("the orphan pruned", TIMEOUT, || async { cms.get_opt("orphan").await.unwrap().is_none() }).await;
    let after_keep = cms.get("keep").await.unwrap();
    assert_eq!(
        after_keep.metadata.resource_version, before_keep.metadata.resource_version,
        "keep was not written"
    );
    assert!(
        !after_keep.metadata.annotations.unwrap_or_default().contains_key("argocd.argoproj.io/tracking-id"),
        "label tracking writes no tracking annotation"
    );
    let app = bench.refreshed(&name).await;
    assert_eq!(sync_status(&app), "Synced", "{}", serde_json::to_string_pretty(&app["status"]).unwrap());
    bench.cleanup().await;
}
