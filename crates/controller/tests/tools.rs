//! Helm and Kustomize sources (the real `helm` and `kustomize`), multiple sources, the seed's layouts,
//! and hostile input, on the real local cluster.

mod common;

use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

async fn web(client: &kube::Client, ns: &str) -> Deployment {
    Api::<Deployment>::namespaced(client.clone(), ns).get("web").await.unwrap()
}

fn image(d: &Deployment) -> String {
    d.spec.clone().unwrap().template.spec.unwrap().containers[0].image.clone().unwrap()
}

/// The seed's example Application from ../shared/seed/examples, pointed at a test repository.
fn seed_app(file: &str, name: &str, repo_url: &str, ns: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(seed_dir().join(file)).unwrap();
    let mut app: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
    app["metadata"]["name"] = name.into();
    app["spec"]["source"]["repoURL"] = repo_url.into();
    app["spec"]["destination"]["namespace"] = ns.into();
    app["spec"]["syncPolicy"] = json!({"syncOptions": ["CreateNamespace=true"]});
    app
}

/// The seed's layout: apps/web/{base,overlays/{production,staging}} (the seed's Kustomize example uses
/// the path overlays/production at the repository root; both are written).
fn kustomize_repo() -> GitRepo {
    let repo = GitRepo::new();
    for root in ["", "apps/web/"] {
        repo.write(&format!("{root}base/web.yaml"), &web_manifests("myorg/web:latest"));
        repo.write(&format!("{root}base/kustomization.yaml"), "resources: [web.yaml]\n");
        repo.write(
            &format!("{root}overlays/production/kustomization.yaml"),
            "resources: [../../base]\nlabels:\n- pairs: {env: production}\n",
        );
        repo.write(
            &format!("{root}overlays/staging/kustomization.yaml"),
            "resources: [../../base]\nreplicas:\n- name: web\n  count: 1\n",
        );
    }
    repo.commit("base and overlays");
    repo
}

#[tokio::test]
async fn the_seeds_kustomize_overlay_deploys_its_image_and_a_base_change_re_renders_it() {
    let mut bench = Bench::start("kustomize").await;
    let repo = kustomize_repo();
    let ns = bench.dest_namespace("kustomize");
    let name = unique("kustomize");
    bench.create_app(seed_app("application-kustomize.yaml", &name, &repo.url(), &ns)).await;
    let app = bench.wait_app(&name, "compared", |a| a["status"]["sourceType"] == "Kustomize").await;
    assert_eq!(sync_status(&app), "OutOfSync");
    let app = bench.operate(&name, json!({"sync": {"prune": true}})).await;
    assert_eq!(phase(&app), "Succeeded", "{}", app["status"]["operationState"]["message"]);
    let d = web(&bench.client, &ns).await;
    assert_eq!(image(&d), "myorg/web:v1.2.3", "the seed's kustomize.images");
    assert_eq!(d.metadata.labels.unwrap()["env"], "production");

    // The overlay reads ../../base: a commit to the base re-renders it (and only the path would not).
    repo.write("base/web.yaml", &web_manifests("myorg/web:latest").replace("replicas: 3", "replicas: 2"));
    repo.commit("two replicas in the base");
    bench.refreshed(&name).await;
    bench.wait_app(&name, "OutOfSync after the base changed", |a| sync_status(a) == "OutOfSync").await;
    let app = bench.operate(&name, json!({"sync": {"prune": true}})).await;
    assert_eq!(phase(&app), "Succeeded");
    assert_eq!(web(&bench.client, &ns).await.spec.unwrap().replicas, Some(2));
    bench.cleanup().await;
}

fn chart_repo() -> GitRepo {
    let repo = GitRepo::new();
    repo.write("charts/web/Chart.yaml", "apiVersion: v2\nname: web\nversion: 0.1.0\n");
    repo.write("charts/web/values.yaml", "replicaCount: 1\nimage:\n  repository: myorg/web\n  tag: latest\n");
    repo.write(
        "charts/web/templates/deployment.yaml",
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {release: {{ .Release.Name | quote }}, kube: {{ .Capabilities.KubeVersion.Minor | quote }}}
spec:
  replicas: {{ .Values.replicaCount }}
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: {{ .Values.image.repository }}:{{ .Values.image.tag }}
",
    );
    repo.write(
        "charts/web/templates/migrate.yaml",
        "apiVersion: batch/v1
kind: Job
metadata:
  name: migrate
  annotations:
    helm.sh/hook: pre-install,pre-upgrade
    helm.sh/hook-delete-policy: before-hook-creation
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: migrate
        image: myorg/migrate
",
    );
    repo.commit("the web chart");
    repo
}

#[tokio::test]
async fn the_seeds_helm_values_set_replicas_and_tag_and_helm_hooks_run_as_presync() {
    let mut bench = Bench::start("helm").await;
    let repo = chart_repo();
    let ns = bench.dest_namespace("helm");
    let name = unique("helm");
    bench.create_app(seed_app("application-helm.yaml", &name, &repo.url(), &ns)).await;
    bench.wait_app(&name, "compared", |a| a["status"]["sourceType"] == "Helm").await;
    let app = bench.operate(&name, json!({"sync": {"prune": true}})).await;
    assert_eq!(phase(&app), "Succeeded", "{}", app["status"]["operationState"]["message"]);
    let d = web(&bench.client, &ns).await;
    assert_eq!(d.spec.clone().unwrap().replicas, Some(3), "the seed's replicaCount: 3");
    assert_eq!(image(&d), "myorg/web:v1.2.3", "the seed's image.tag");
    let labels = d.metadata.labels.unwrap();
    assert_eq!(labels["release"], name, "releaseName defaults to the app's name");
    assert_eq!(labels["kube"], "36", "kubeVersion from the destination cluster");
    let results = app["status"]["operationState"]["syncResult"]["resources"].as_array().unwrap();
    let hook = results.iter().find(|r| r["kind"] == "Job").expect("the Helm hook ran");
    assert_eq!(hook["hookType"], "PreSync");
    assert!(Api::<Job>::namespaced(bench.client.clone(), &ns).get_opt("migrate").await.unwrap().is_some());
    bench.cleanup().await;
}

#[tokio::test]
async fn multiple_sources_take_value_files_from_another_repository() {
    let mut bench = Bench::start("multi").await;
    let charts = chart_repo();
    let values = GitRepo::new();
    values.write("envs/prod/values.yaml", "replicaCount: 2\nimage:\n  tag: v9\n");
    values.commit("prod values");
    let ns = bench.dest_namespace("multi");
    let name = unique("multi");
    let mut app = seed_web_app(&name, &charts.url(), &ns);
    app["spec"].as_object_mut().unwrap().remove("source");
    app["spec"]["sources"] = json!([
        {"repoURL": charts.url(), "path": "charts/web", "targetRevision": "HEAD",
         "helm": {"valueFiles": ["$values/envs/prod/values.yaml"]}},
        {"repoURL": values.url(), "targetRevision": "HEAD", "ref": "values"}
    ]);
    app["spec"]["syncPolicy"] = json!({"syncOptions": ["CreateNamespace=true"]});
    bench.create_app(app).await;
    let app = bench
        .wait_app(&name, "compared", |a| {
            a["status"]["sync"]["revisions"].as_array().is_some_and(|r| r.len() == 2)
        })
        .await;
    assert_eq!(sync_status(&app), "OutOfSync", "{}", conditions(&app));
    let app = bench.operate(&name, json!({"sync": {"prune": true}})).await;
    assert_eq!(phase(&app), "Succeeded", "{}", app["status"]["operationState"]["message"]);
    let d = web(&bench.client, &ns).await;
    assert_eq!(d.spec.clone().unwrap().replicas, Some(2));
    assert_eq!(image(&d), "myorg/web:v9");
    assert_eq!(app["status"]["history"][0]["revisions"].as_array().unwrap().len(), 2);
    bench.cleanup().await;
}

#[tokio::test]
async fn hostile_sources_get_a_clear_condition_and_change_nothing() {
    let mut bench = Bench::start("hostile").await;
    let repo = GitRepo::new();
    repo.write("good/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: keep\ndata: {a: b}\n");
    repo.commit("good");
    let ns = bench.dest_namespace("hostile");
    let name = unique("hostile");
    let mut app = seed_web_app(&name, &repo.url(), &ns);
    app["spec"]["source"]["path"] = "good".into();
    bench.create_app(app).await;
    bench.wait_app(&name, "synced", |a| sync_status(a) == "Synced" && phase(a) == "Succeeded").await;
    let cases: Vec<(&str, serde_json::Value, &str, &str)> = vec![
        ("a path out of the repository", json!({"path": "../../etc"}), "", "leaves the repository"),
        ("a YAML alias bomb", json!({"path": "bomb"}), "bomb/bomb.yaml", "bomb"),
        (
            "a Kustomize remote base without network",
            json!({"path": "remote"}),
            "remote/kustomization.yaml",
            "remote bases need network access",
        ),
        (
            "a value file out of the repository",
            json!({"path": "chart", "helm": {"valueFiles": ["../../../etc/passwd"]}}),
            "chart/Chart.yaml",
            "../../../etc/passwd",
        ),
    ];
    let mut laughs =
        String::from("a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
    for (i, prev) in ["a", "b", "c", "d", "e", "f", "g", "h"].iter().enumerate() {
        let next = ["b", "c", "d", "e", "f", "g", "h", "i"][i];
        laughs.push_str(&format!(
            "{next}: &{next} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"
        ));
    }
    repo.write(
        "bomb/bomb.yaml",
        &format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bomb\ndata:\n  x: y\n{laughs}"),
    );
    repo.write(
        "remote/kustomization.yaml",
        "resources:\n- https://github.com/kubernetes-sigs/kustomize//examples/helloWorld?ref=v3.3.1\n",
    );
    repo.write("chart/Chart.yaml", "apiVersion: v2\nname: c\nversion: 0.1.0\n");
    repo.write("chart/templates/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n");
    repo.commit("hostile inputs");
    for (what, source, _, needle) in cases {
        let mut patch = json!({"spec": {"source": source}});
        patch["spec"]["source"]["repoURL"] = repo.url().into();
        if patch["spec"]["source"]["helm"].is_null() {
            patch["spec"]["source"]["helm"] = serde_json::Value::Null;
        }
        bench.apps().patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
        let app = bench
            .wait_app(&name, what, |a| {
                conditions(a).contains("ComparisonError") && conditions(a).contains(needle)
            })
            .await;
        assert_eq!(sync_status(&app), "Unknown", "{what}");
        let kept = Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(bench.client.clone(), &ns);
        assert!(kept.get_opt("keep").await.unwrap().is_some(), "{what}: nothing was pruned");
    }
    bench.cleanup().await;
}
