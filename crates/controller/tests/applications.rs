//! Applications from git to the real local cluster: sync, roll-out, prune, self-heal, revert, bad input,
//! manual operations and a controller restart. Each test has its own control namespace and controller.

mod common;

use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service};
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

async fn deployment(client: &kube::Client, ns: &str) -> Option<Deployment> {
    Api::<Deployment>::namespaced(client.clone(), ns).get_opt("web").await.unwrap()
}

/// Scales the `web` Deployment as another field manager would (`kubectl scale`, an autoscaler) and waits
/// until the API server has it.
async fn scale(client: &kube::Client, ns: &str, replicas: i32, manager: Option<&str>) {
    let params = PatchParams { field_manager: manager.map(String::from), ..Default::default() };
    Api::<Deployment>::namespaced(client.clone(), ns)
        .patch("web", &params, &Patch::Merge(&json!({"spec": {"replicas": replicas}})))
        .await
        .unwrap();
    let (client, ns) = (client.clone(), ns.to_string());
    poll("the scale to land", TIMEOUT, || {
        let (client, ns) = (client.clone(), ns.clone());
        async move {
            deployment(&client, &ns).await.and_then(|d| d.spec).and_then(|s| s.replicas) == Some(replicas)
        }
    })
    .await;
}

fn image_of(d: &Deployment) -> String {
    d.spec.as_ref().unwrap().template.spec.as_ref().unwrap().containers[0].image.clone().unwrap()
}

#[tokio::test]
async fn the_seed_web_app_syncs_to_synced_and_healthy_and_records_its_commit() {
    let mut bench = Bench::start("seed").await;
    let repo = GitRepo::new();
    repo.write("apps/web/web.yaml", &web_manifests("myorg/web:v1.2.3"));
    let sha = repo.commit("web: first version");
    let ns = bench.dest_namespace("web");
    let name = unique("web");
    bench.create_app(seed_web_app(&name, &repo.url(), &ns)).await;

    let app = bench
        .wait_app(&name, "Synced and Healthy", |a| sync_status(a) == "Synced" && health(a) == "Healthy")
        .await;
    assert_eq!(app["status"]["sync"]["revision"], sha.as_str());
    assert_eq!(app["status"]["operationState"]["phase"], "Succeeded");
    assert_eq!(app["status"]["operationState"]["operation"]["initiatedBy"]["automated"], true);
    assert_eq!(app["status"]["history"][0]["revision"], sha.as_str());
    assert_eq!(app["status"]["history"][0]["id"], 0);
    let meta = &app["status"]["history"][0]["revisionMetadata"];
    assert_eq!(meta["author"], "Dev <dev@example.com>");
    assert_eq!(meta["message"], "web: first version");
    assert!(meta["date"].as_str().is_some_and(|d| d.starts_with("20")), "{meta}");
    assert_eq!(app["status"]["sourceType"], "Directory");
    assert_eq!(app["status"]["summary"]["images"], json!(["myorg/web:v1.2.3"]));
    let kinds: Vec<&str> =
        app["status"]["resources"].as_array().unwrap().iter().map(|r| r["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["Service", "Deployment"]);
    assert!(
        app["status"]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == "Synced" && r["health"]["status"] == "Healthy")
    );

    let client = bench.client.clone();
    poll("3/3 replicas available", TIMEOUT, || {
        let client = client.clone();
        let ns = ns.clone();
        async move {
            deployment(&client, &ns).await.and_then(|d| d.status).and_then(|s| s.available_replicas)
                == Some(3)
        }
    })
    .await;
    let d = deployment(&bench.client, &ns).await.expect("the Deployment exists");
    let tracking = d.metadata.annotations.as_ref().unwrap().get("argocd.argoproj.io/tracking-id").cloned();
    assert_eq!(tracking.as_deref(), Some(format!("{name}:apps/Deployment:{ns}/web").as_str()));
    let managers: Vec<String> =
        d.metadata.managed_fields.unwrap().iter().filter_map(|m| m.manager.clone()).collect();
    assert!(
        managers.contains(&"argocd-controller".to_string()),
        "applied with Argo CD's field manager: {managers:?}"
    );
    // CreateNamespace=true made the destination namespace.
    assert!(Api::<Namespace>::all(bench.client.clone()).get_opt(&ns).await.unwrap().is_some());
    bench.cleanup().await;
}

#[tokio::test]
async fn a_new_image_tag_committed_to_git_rolls_out_by_itself_and_git_revert_brings_it_back() {
    let mut bench = Bench::start("rollout").await;
    let repo = GitRepo::new();
    repo.write("apps/web/web.yaml", &web_manifests("myorg/web:v1.2.3"));
    let first = repo.commit("v1.2.3");
    let ns = bench.dest_namespace("web");
    let name = unique("web");
    bench.create_app(seed_web_app(&name, &repo.url(), &ns)).await;
    bench
        .wait_app(&name, "Synced at the first commit", |a| {
            sync_status(a) == "Synced" && a["status"]["sync"]["revision"] == first.as_str()
        })
        .await;

    repo.write("apps/web/web.yaml", &web_manifests("myorg/web:v1.2.4"));
    let second = repo.commit("bump web to v1.2.4");
    // No refresh is requested: polling (timeout.reconciliation 2s in this bench) finds the commit.
    let app = bench
        .wait_app(&name, "Synced at the second commit", |a| {
            sync_status(a) == "Synced" && a["status"]["sync"]["revision"] == second.as_str()
        })
        .await;
    assert_eq!(image_of(&deployment(&bench.client, &ns).await.unwrap()), "myorg/web:v1.2.4");
    assert_eq!(app["status"]["history"].as_array().unwrap().len(), 2);

    repo.git(&["revert", "--no-edit", "HEAD"]);
    let reverted = repo.git(&["rev-parse", "HEAD"]);
    bench.refresh(&name).await;
    bench
        .wait_app(&name, "Synced at the revert", |a| {
            sync_status(a) == "Synced" && a["status"]["sync"]["revision"] == reverted.as_str()
        })
        .await;
    assert_eq!(image_of(&deployment(&bench.client, &ns).await.unwrap()), "myorg/web:v1.2.3");
    // The refresh annotation is removed once handled.
    bench
        .wait_app(&name, "the refresh annotation removed", |a| {
            a["metadata"]["annotations"]["argocd.argoproj.io/refresh"].is_null()
        })
        .await;
    bench.cleanup().await;
}

#[tokio::test]
async fn a_file_deleted_from_git_is_pruned_with_prune_and_flagged_without() {
    let mut bench = Bench::start("prune").await;
    let repo = GitRepo::new();
    repo.write("apps/web/web.yaml", &web_manifests("myorg/web:v1.2.3"));
    repo.write(
        "apps/web/config.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  a: \"1\"\n",
    );
    repo.commit("web with settings");
    let ns_prune = bench.dest_namespace("prune");
    let ns_keep = bench.dest_namespace("keep");
    let (pruning, keeping) = (unique("pruning"), unique("keeping"));
    bench.create_app(seed_web_app(&pruning, &repo.url(), &ns_prune)).await;
    let mut keep = seed_web_app(&keeping, &repo.url(), &ns_keep);
    keep["spec"]["syncPolicy"]["automated"]["prune"] = false.into();
    bench.create_app(keep).await;
    for name in [&pruning, &keeping] {
        bench.wait_app(name, "Synced", |a| sync_status(a) == "Synced").await;
    }

    repo.remove("apps/web/config.yaml");
    let sha = repo.commit("drop the settings");
    bench.refresh(&pruning).await;
    bench.refresh(&keeping).await;
    bench
        .wait_app(&pruning, "Synced without the ConfigMap", |a| {
            sync_status(a) == "Synced" && a["status"]["sync"]["revision"] == sha.as_str()
        })
        .await;
    let cms: Api<ConfigMap> = Api::namespaced(bench.client.clone(), &ns_prune);
    poll("the ConfigMap to be pruned", TIMEOUT, || {
        let cms = cms.clone();
        async move { cms.get_opt("settings").await.unwrap().is_none() }
    })
    .await;

    let app = bench
        .wait_app(&keeping, "OutOfSync with requiresPruning", |a| {
            a["status"]["sync"]["revision"] == sha.as_str()
                && a["status"]["resources"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|r| r["kind"] == "ConfigMap" && r["requiresPruning"] == true)
        })
        .await;
    assert_eq!(sync_status(&app), "OutOfSync");
    let kept: Api<ConfigMap> = Api::namespaced(bench.client.clone(), &ns_keep);
    assert!(kept.get_opt("settings").await.unwrap().is_some(), "prune: false leaves the object");
    bench.cleanup().await;
}

#[tokio::test]
async fn kubectl_scale_is_reverted_with_self_heal_and_flagged_without() {
    let mut bench = Bench::start("heal").await;
    let repo = GitRepo::new();
    repo.write("apps/web/web.yaml", &web_manifests("myorg/web:v1.2.3"));
    repo.commit("web");
    let ns_heal = bench.dest_namespace("heal");
    let ns_flag = bench.dest_namespace("flag");
    let (healing, flagging) = (unique("healing"), unique("flagging"));
    bench.create_app(seed_web_app(&healing, &repo.url(), &ns_heal)).await;
    let mut flag = seed_web_app(&flagging, &repo.url(), &ns_flag);
    flag["spec"]["syncPolicy"]["automated"]["selfHeal"] = false.into();
    bench.create_app(flag).await;
    for name in [&healing, &flagging] {
        bench
            .wait_app(name, "Synced and Healthy", |a| sync_status(a) == "Synced" && health(a) == "Healthy")
            .await;
    }

    let scale = json!({"spec": {"replicas": 1}});
    for ns in [&ns_heal, &ns_flag] {
        Api::<Deployment>::namespaced(bench.client.clone(), ns)
            .patch("web", &PatchParams::default(), &Patch::Merge(&scale))
            .await
            .unwrap();
    }
    let client = bench.client.clone();
    poll("selfHeal to restore 3 replicas", TIMEOUT, || {
        let client = client.clone();
        let ns = ns_heal.clone();
        async move { deployment(&client, &ns).await.and_then(|d| d.spec).and_then(|s| s.replicas) == Some(3) }
    })
    .await;
    let healed = bench.wait_app(&healing, "Synced again", |a| sync_status(a) == "Synced").await;
    assert!(
        healed["status"]["history"].as_array().unwrap().len() >= 2,
        "the self-heal sync is in the history"
    );

    let flagged = bench.wait_app(&flagging, "OutOfSync", |a| sync_status(a) == "OutOfSync").await;
    let dep = flagged["status"]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "Deployment")
        .unwrap()
        .clone();
    assert_eq!(dep["status"], "OutOfSync");
    assert_eq!(
        deployment(&bench.client, &ns_flag).await.unwrap().spec.unwrap().replicas,
        Some(1),
        "no selfHeal: left as changed"
    );
    bench.cleanup().await;
}

#[tokio::test]
async fn ignore_differences_keep_a_scaled_deployment_synced() {
    let mut bench = Bench::start("ignore").await;
    let repo = GitRepo::new();
    repo.write("apps/web/web.yaml", &web_manifests("myorg/web:v1.2.3"));
    repo.commit("web");
    let ns = bench.dest_namespace("ignore");
    let name = unique("ignoring");
    let mut app = seed_web_app(&name, &repo.url(), &ns);
    app["spec"]["syncPolicy"]["automated"]["selfHeal"] = false.into();
    app["spec"]["ignoreDifferences"] =
        json!([{"group": "apps", "kind": "Deployment", "jsonPointers": ["/spec/replicas"]}]);
    bench.create_app(app).await;
    bench.wait_app(&name, "Synced", |a| sync_status(a) == "Synced").await;
    scale(&bench.client, &ns, 5, None).await;
    bench.refreshed(&name).await;
    assert_eq!(
        sync_status(&bench.app(&name).await),
        "Synced",
        "an ignored field never shows as a difference"
    );
    bench.cleanup().await;
}

#[tokio::test]
async fn a_file_repo_url_is_refused_with_a_condition_until_argocd_cm_allows_it() {
    let mut bench = Bench::start("file-url").await;
    let control = bench.namespace.clone();
    let cm = |allow: bool| {
        let mut data = json!({"timeout.reconciliation": "2s", "timeout.reconciliation.jitter": "0s"});
        if allow {
            data["berth.repositories.allowFileURLs"] = "true".into();
        }
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "argocd-cm", "namespace": control}, "data": data})
    };
    apply_json(&bench.client, &bench.namespace, cm(false)).await;
    let repo = GitRepo::new();
    repo.write("apps/web/web.yaml", &web_manifests("myorg/web:v1.2.3"));
    repo.commit("web");
    let ns = bench.dest_namespace("file-url");
    let name = unique("file-url");
    bench.create_app(seed_web_app(&name, &repo.url(), &ns)).await;
    let app = bench.wait_app(&name, "a ComparisonError", |a| conditions(a).contains("ComparisonError")).await;
    let text = conditions(&app);
    assert!(
        text.contains("spec.source.repoURL") && text.contains("berth.repositories.allowFileURLs"),
        "{text}"
    );
    assert!(deployment(&bench.client, &ns).await.is_none(), "nothing is deployed from a refused URL");

    apply_json(&bench.client, &bench.namespace, cm(true)).await;
    bench.wait_app(&name, "Synced once file:// is allowed", |a| sync_status(a) == "Synced").await;
    bench.cleanup().await;
}

#[tokio::test]
async fn broken_yaml_leaves_the_cluster_untouched_with_a_condition_naming_the_file() {
    let mut bench = Bench::start("broken").await;
    let repo = GitRepo::new();
    repo.write("apps/web/web.yaml", &web_manifests("myorg/web:v1.2.3"));
    repo.write("apps/web/config.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n");
    repo.commit("good");
    let ns = bench.dest_namespace("broken");
    let name = unique("broken");
    bench.create_app(seed_web_app(&name, &repo.url(), &ns)).await;
    bench.wait_app(&name, "Synced", |a| sync_status(a) == "Synced").await;

    // The ConfigMap file is replaced by broken YAML: a render failure must not prune the ConfigMap.
    repo.remove("apps/web/config.yaml");
    repo.write("apps/web/broken.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [oops\n");
    let sha = repo.commit("broken");
    bench.refresh(&name).await;
    let app = bench.wait_app(&name, "a ComparisonError", |a| conditions(a).contains("ComparisonError")).await;
    assert!(conditions(&app).contains("apps/web/broken.yaml"), "{}", conditions(&app));
    assert_eq!(sync_status(&app), "Unknown");
    assert_ne!(app["status"]["sync"]["revision"], sha.as_str());
    let cms: Api<ConfigMap> = Api::namespaced(bench.client.clone(), &ns);
    assert!(cms.get_opt("settings").await.unwrap().is_some(), "nothing is pruned after a failed render");
    assert!(deployment(&bench.client, &ns).await.is_some());

    // Fixing git clears the condition.
    repo.remove("apps/web/broken.yaml");
    repo.commit("fixed");
    bench.refresh(&name).await;
    bench
        .wait_app(&name, "the condition cleared", |a| {
            !conditions(a).contains("ComparisonError") && sync_status(a) == "Synced"
        })
        .await;
    bench.cleanup().await;
}

#[tokio::test]
async fn an_unknown_kind_or_an_empty_render_prunes_nothing() {
    let mut bench = Bench::start("unknown").await;
    let repo = GitRepo::new();
    repo.write("apps/web/web.yaml", &web_manifests("myorg/web:v1.2.3"));
    repo.commit("good");
    let ns = bench.dest_namespace("unknown");
    let name = unique("unknown");
    bench.create_app(seed_web_app(&name, &repo.url(), &ns)).await;
    bench.wait_app(&name, "Synced", |a| sync_status(a) == "Synced").await;

    repo.write("apps/web/widget.yaml", "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n");
    repo.commit("a kind without a CRD");
    bench.refresh(&name).await;
    let app = bench.wait_app(&name, "a condition about Widget", |a| conditions(a).contains("Widget")).await;
    assert!(conditions(&app).contains("apps/web/widget.yaml"), "{}", conditions(&app));
    assert!(deployment(&bench.client, &ns).await.is_some());

    // Everything deleted from the path: allowEmpty is false, so nothing is pruned.
    repo.remove("apps/web/widget.yaml");
    repo.remove("apps/web/web.yaml");
    repo.write("apps/web/README.md", "moved away\n");
    repo.commit("empty");
    bench.refresh(&name).await;
    let app =
        bench.wait_app(&name, "the empty render refused", |a| conditions(a).contains("allowEmpty")).await;
    assert_eq!(sync_status(&app), "OutOfSync");
    assert!(deployment(&bench.client, &ns).await.is_some(), "an empty render prunes nothing");
    bench.cleanup().await;
}

#[tokio::test]
async fn an_unreachable_repo_or_a_missing_revision_is_a_condition_without_secrets() {
    let mut bench = Bench::start("unreachable").await;
    let ns = bench.dest_namespace("unreachable");
    // A repository secret with a password for an address where nothing listens.
    let url = "https://127.0.0.1:9/org/repo.git";
    common::apply_json(
        &bench.client,
        &bench.namespace,
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "repo", "namespace": bench.namespace,
                            "labels": {"argocd.argoproj.io/secret-type": "repository"}},
               "stringData": {"url": url, "username": "bob", "password": "hunter2-secret"}}),
    )
    .await;
    let name = unique("unreachable");
    bench.create_app(seed_web_app(&name, url, &ns)).await;
    let app = bench.wait_app(&name, "a ComparisonError", |a| conditions(a).contains("ComparisonError")).await;
    let text = serde_json::to_string(&app).unwrap();
    assert!(!text.contains("hunter2-secret"), "the password leaked into the Application: {text}");
    assert!(conditions(&app).contains("127.0.0.1:9"), "{}", conditions(&app));

    let repo = GitRepo::new();
    repo.write("apps/web/web.yaml", &web_manifests("myorg/web:v1.2.3"));
    repo.commit("web");
    let missing = unique("missing");
    let mut app = seed_web_app(&missing, &repo.url(), &ns);
    app["spec"]["source"]["targetRevision"] = "no-such-branch".into();
    bench.create_app(app).await;
    let app =
        bench.wait_app(&missing, "a ComparisonError", |a| conditions(a).contains("ComparisonError")).await;
    assert!(conditions(&app).contains("no-such-branch"), "{}", conditions(&app));
    assert_eq!(sync_status(&app), "Unknown");
    bench.cleanup().await;
}

#[tokio::test]
async fn a_missing_namespace_fails_the_sync_with_its_name_and_prunes_nothing() {
    let mut bench = Bench::start("nons").await;
    let repo = GitRepo::new();
    repo.write("apps/web/web.yaml", &web_manifests("myorg/web:v1.2.3"));
    repo.commit("web");
    let ns = bench.dest_namespace("nons");
    let name = unique("nons");
    let mut app = seed_web_app(&name, &repo.url(), &ns);
    app["spec"]["syncPolicy"]["syncOptions"] = json!([]);
    bench.create_app(app).await;
    let app =
        bench.wait_app(&name, "a failed sync", |a| a["status"]["operationState"]["phase"] == "Failed").await;
    let message = app["status"]["operationState"]["message"].as_str().unwrap();
    assert!(message.contains(&ns), "the message names the namespace: {message}");
    assert!(conditions(&app).contains("SyncError"), "{}", conditions(&app));
    // Failed once for this (commit, spec): auto-sync does not hammer the API server.
    assert_eq!(app["status"]["history"].as_array().map(Vec::len).unwrap_or(0), 0);
    bench.cleanup().await;
}

#[tokio::test]
async fn a_duplicate_object_is_reported_and_the_last_one_wins() {
    let mut bench = Bench::start("dup").await;
    let repo = GitRepo::new();
    repo.write(
        "apps/web/a.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: same\ndata:\n  from: a\n",
    );
    repo.write(
        "apps/web/b.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: same\ndata:\n  from: b\n",
    );
    repo.commit("twice");
    let ns = bench.dest_namespace("dup");
    let name = unique("dup");
    bench.create_app(seed_web_app(&name, &repo.url(), &ns)).await;
    let app = bench
        .wait_app(&name, "a RepeatedResourceWarning", |a| conditions(a).contains("RepeatedResourceWarning"))
        .await;
    assert!(
        conditions(&app).contains("apps/web/a.yaml") && conditions(&app).contains("apps/web/b.yaml"),
        "{}",
        conditions(&app)
    );
    bench.wait_app(&name, "Synced", |a| sync_status(a) == "Synced").await;
    let cm = Api::<ConfigMap>::namespaced(bench.client.clone(), &ns).get("same").await.unwrap();
    assert_eq!(cm.data.unwrap()["from"], "b");
    bench.cleanup().await;
}

#[tokio::test]
async fn a_manual_sync_through_the_operation_field_honours_dry_run_subset_prune_and_revision() {
    let mut bench = Bench::start("manual").await;
    let repo = GitRepo::new();
    repo.write("apps/web/web.yaml", &web_manifests("myorg/web:v1.2.3"));
    repo.write("apps/web/config.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n");
    let first = repo.commit("first");
    let ns = bench.dest_namespace("manual");
    let name = unique("manual");
    let mut app = seed_web_app(&name, &repo.url(), &ns);
    app["spec"]["syncPolicy"] = json!({"syncOptions": ["CreateNamespace=true"],
        "managedNamespaceMetadata": {"labels": {"team": "web"}}});
    bench.create_app(app).await;
    bench.wait_app(&name, "OutOfSync (no automation)", |a| sync_status(a) == "OutOfSync").await;
    let set_operation = |op: serde_json::Value| {
        let apps = bench.apps();
        let name = name.clone();
        async move {
            apps.patch(&name, &PatchParams::default(), &Patch::Merge(&json!({"operation": op})))
                .await
                .unwrap();
        }
    };

    // A dry run changes nothing.
    set_operation(json!({"initiatedBy": {"username": "admin"}, "sync": {"dryRun": true}})).await;
    let app = bench
        .wait_app(&name, "the dry run finished", |a| {
            a["operation"].is_null() && a["status"]["operationState"]["phase"] == "Succeeded"
        })
        .await;
    assert!(app["status"]["history"].as_array().is_none_or(|h| h.is_empty()), "a dry run is not history");
    assert!(deployment(&bench.client, &ns).await.is_none());

    // A subset: only the ConfigMap.
    set_operation(json!({"initiatedBy": {"username": "admin"}, "sync": {"resources": [{"kind": "ConfigMap", "name": "settings"}]}})).await;
    bench
        .wait_app(&name, "the subset sync finished", |a| {
            a["operation"].is_null() && a["status"]["history"].as_array().is_some_and(|h| h.len() == 1)
        })
        .await;
    assert!(
        Api::<ConfigMap>::namespaced(bench.client.clone(), &ns).get_opt("settings").await.unwrap().is_some()
    );
    assert!(deployment(&bench.client, &ns).await.is_none(), "the Deployment was not in the subset");
    let labels = Api::<Namespace>::all(bench.client.clone()).get(&ns).await.unwrap().metadata.labels.unwrap();
    assert_eq!(labels.get("team").map(String::as_str), Some("web"), "managedNamespaceMetadata applied");

    // A new commit drops the ConfigMap; a full sync with prune to the *first* revision keeps it, then
    // a sync to HEAD with prune removes it.
    repo.remove("apps/web/config.yaml");
    repo.commit("drop settings");
    set_operation(json!({"initiatedBy": {"username": "admin"}, "sync": {"revision": first, "prune": true}}))
        .await;
    let app = bench
        .wait_app(&name, "the sync to the first revision", |a| {
            a["operation"].is_null() && a["status"]["history"].as_array().is_some_and(|h| h.len() == 2)
        })
        .await;
    assert_eq!(app["status"]["history"][1]["revision"], first.as_str());
    assert_eq!(app["status"]["history"][1]["initiatedBy"]["username"], "admin");
    assert!(deployment(&bench.client, &ns).await.is_some());
    assert!(
        Api::<ConfigMap>::namespaced(bench.client.clone(), &ns).get_opt("settings").await.unwrap().is_some()
    );
    set_operation(json!({"initiatedBy": {"username": "admin"}, "sync": {"prune": true}})).await;
    bench
        .wait_app(&name, "the sync to HEAD", |a| {
            a["operation"].is_null() && a["status"]["history"].as_array().is_some_and(|h| h.len() == 3)
        })
        .await;
    let cms: Api<ConfigMap> = Api::namespaced(bench.client.clone(), &ns);
    poll("the ConfigMap pruned", TIMEOUT, || {
        let cms = cms.clone();
        async move { cms.get_opt("settings").await.unwrap().is_none() }
    })
    .await;
    bench.wait_app(&name, "Synced", |a| sync_status(a) == "Synced").await;
    bench.cleanup().await;
}

#[tokio::test]
async fn a_restarted_controller_loses_no_history_and_does_not_sync_again() {
    let mut bench = Bench::start("restart").await;
    let repo = GitRepo::new();
    repo.write("apps/web/web.yaml", &web_manifests("myorg/web:v1.2.3"));
    repo.commit("first");
    let ns = bench.dest_namespace("restart");
    let name = unique("restart");
    bench.create_app(seed_web_app(&name, &repo.url(), &ns)).await;
    let before =
        bench.wait_app(&name, "Synced", |a| sync_status(a) == "Synced" && health(a) == "Healthy").await;

    bench.stop_controller().await;
    bench.start_controller();
    // A full polling period passes under the new controller: same commit, same spec, no new sync.
    bench.refresh(&name).await;
    bench
        .wait_app(&name, "the refresh handled", |a| {
            a["metadata"]["annotations"]["argocd.argoproj.io/refresh"].is_null()
        })
        .await;
    let after = bench.app(&name).await;
    assert_eq!(after["status"]["history"], before["status"]["history"], "no second sync of the same commit");

    repo.write("apps/web/web.yaml", &web_manifests("myorg/web:v1.2.4"));
    let second = repo.commit("second");
    bench.refresh(&name).await;
    let app = bench
        .wait_app(&name, "the second commit synced", |a| {
            a["status"]["history"].as_array().is_some_and(|h| h.len() == 2)
        })
        .await;
    assert_eq!(app["status"]["history"][0], before["status"]["history"][0]);
    assert_eq!(app["status"]["history"][1]["revision"], second.as_str());
    bench.cleanup().await;
}

#[tokio::test]
async fn deleting_an_application_with_the_finalizer_deletes_its_objects() {
    let mut bench = Bench::start("delete").await;
    let repo = GitRepo::new();
    repo.write("apps/web/web.yaml", &web_manifests("myorg/web:v1.2.3"));
    repo.commit("web");
    let ns = bench.dest_namespace("delete");
    let name = unique("delete");
    let mut app = seed_web_app(&name, &repo.url(), &ns);
    app["metadata"]["finalizers"] = json!(["resources-finalizer.argocd.argoproj.io"]);
    bench.create_app(app).await;
    bench.wait_app(&name, "Synced", |a| sync_status(a) == "Synced").await;
    bench.apps().delete(&name, &Default::default()).await.unwrap();
    let apps = bench.apps();
    poll("the Application to be gone", TIMEOUT, || {
        let apps = apps.clone();
        let name = name.clone();
        async move { apps.get_opt(&name).await.unwrap().is_none() }
    })
    .await;
    let services: Api<Service> = Api::namespaced(bench.client.clone(), &ns);
    assert!(services.get_opt("web").await.unwrap().is_none(), "the Service was deleted with its app");
    bench.cleanup().await;
}

#[tokio::test]
async fn the_seeds_app_project_confines_repos_destinations_and_kinds() {
    let mut bench = Bench::start("project").await;
    let repo = GitRepo::new();
    repo.write("apps/web/web.yaml", &web_manifests("myorg/web:v1.2.3"));
    repo.commit("web");
    // The seed's dev-team AppProject: only its GitHub repo, only dev-* namespaces, only Deployments
    // (and Namespaces cluster-wide).
    let path = seed_dir().join("appproject-dev-team.yaml");
    let mut project: serde_json::Value =
        serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    project["metadata"]["namespace"] = bench.namespace.clone().into();
    let projects: Api<berth_api::AppProject> = Api::namespaced(bench.client.clone(), &bench.namespace);
    projects.patch("dev-team", &PatchParams::apply("berth-test"), &Patch::Apply(&project)).await.unwrap();

    let ns = bench.dest_namespace("prod");
    let name = unique("outsider");
    let mut app = seed_web_app(&name, &repo.url(), &ns);
    app["spec"]["project"] = "dev-team".into();
    bench.create_app(app).await;
    let app = bench.wait_app(&name, "the repo refused", |a| conditions(a).contains("InvalidSpecError")).await;
    assert!(conditions(&app).contains("is not permitted in project 'dev-team'"), "{}", conditions(&app));

    // Allow this test's repo: the destination is checked next (only dev-* namespaces).
    project["spec"]["sourceRepos"] = json!([repo.url()]);
    projects.patch("dev-team", &PatchParams::apply("berth-test"), &Patch::Apply(&project)).await.unwrap();
    let app = bench
        .wait_app(&name, "the destination refused", |a| conditions(a).contains("allowed destinations"))
        .await;
    assert_eq!(sync_status(&app), "Unknown");

    // A dev-* namespace: the Deployment is allowed, the Service is not, so nothing is synced.
    let dev_ns = format!("dev-{ns}");
    bench.namespaces.push(dev_ns.clone());
    let patch = json!({"spec": {"destination": {"namespace": dev_ns}}});
    bench.apps().patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    let app = bench.wait_app(&name, "the Service refused", |a| conditions(a).contains("Service")).await;
    let text = conditions(&app);
    assert!(
        text.contains("apps/web/web.yaml: resource :Service")
            && text.contains("is not permitted in project 'dev-team'"),
        "{text}"
    );
    assert!(deployment(&bench.client, &dev_ns).await.is_none(), "a refused object blocks the sync");
    bench.cleanup().await;
}

#[tokio::test]
async fn fields_owned_by_an_ignored_manager_never_make_an_app_out_of_sync() {
    let mut bench = Bench::start("managers").await;
    let repo = GitRepo::new();
    repo.write("apps/web/web.yaml", &web_manifests("myorg/web:v1.2.3"));
    repo.commit("web");
    let ns = bench.dest_namespace("managers");
    let name = unique("managers");
    let mut app = seed_web_app(&name, &repo.url(), &ns);
    app["spec"]["syncPolicy"]["automated"]["selfHeal"] = false.into();
    app["spec"]["ignoreDifferences"] =
        json!([{"group": "apps", "kind": "Deployment", "managedFieldsManagers": ["autoscaler"]}]);
    bench.create_app(app).await;
    bench.wait_app(&name, "Synced", |a| sync_status(a) == "Synced").await;
    scale(&bench.client, &ns, 6, Some("autoscaler")).await;
    bench.refreshed(&name).await;
    assert_eq!(sync_status(&bench.app(&name).await), "Synced", "replicas are owned by the ignored manager");
    bench.cleanup().await;
}

#[tokio::test]
async fn two_installations_with_an_app_of_the_same_name_never_take_or_prune_each_others_objects() {
    let mut blue = Bench::start("blue").await;
    let mut green = Bench::start("green").await;
    for (bench, id) in [(&mut blue, "blue"), (&mut green, "green")] {
        bench.stop_controller().await;
        apply_json(
            &bench.client,
            &bench.namespace,
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "argocd-cm", "namespace": bench.namespace},
                "data": {"timeout.reconciliation": "2s", "timeout.reconciliation.jitter": "0s", "installationID": id,
                         "berth.repositories.allowFileURLs": "true"}}),
        )
        .await;
        bench.start_controller();
    }
    let repo = GitRepo::new();
    repo.write("apps/web/web.yaml", &web_manifests("myorg/web:v1.2.3"));
    repo.commit("web");
    // One app name for both (the seed's, with prune), each deploying into its own namespace.
    let name = unique("web");
    let (ns_blue, ns_green) = (blue.dest_namespace("blue-web"), green.dest_namespace("green-web"));
    blue.create_app(seed_web_app(&name, &repo.url(), &ns_blue)).await;
    green.create_app(seed_web_app(&name, &repo.url(), &ns_green)).await;
    for (bench, ns) in [(&blue, &ns_blue), (&green, &ns_green)] {
        let app = bench.wait_app(&name, "Synced", |a| sync_status(a) == "Synced").await;
        let namespaces: Vec<&str> = app["status"]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["namespace"].as_str().unwrap_or_default())
            .collect();
        assert!(!namespaces.is_empty() && namespaces.iter().all(|n| n == ns), "{namespaces:?} beside {ns}");
    }
    // Another pass of each (a refresh) still leaves the other's objects alone, and each carries its id.
    blue.refresh(&name).await;
    green.refresh(&name).await;
    for (bench, ns, id) in [(&blue, &ns_blue, "blue"), (&green, &ns_green, "green")] {
        bench.wait_app(&name, "Synced after a refresh", |a| sync_status(a) == "Synced").await;
        let services: Api<Service> = Api::namespaced(bench.client.clone(), ns);
        let web = services.get("web").await.expect("the Service was never pruned by the other installation");
        let annotations = web.metadata.annotations.unwrap_or_default();
        assert_eq!(annotations.get("argocd.argoproj.io/installation-id").map(String::as_str), Some(id));
    }
    blue.cleanup().await;
    green.cleanup().await;
}
