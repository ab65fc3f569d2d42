//! ApplicationSets against the real local cluster: the controller in-process generates, creates, updates
//! and deletes the Applications each set owns, and the Application controller deploys them. Every check
//! reads the API server (Applications, ApplicationSets, Deployments), never berth's own record.

mod common;

use berth_api::ApplicationSet;
use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::{Value, json};
use std::time::Duration;

const SET_TIMEOUT: Duration = Duration::from_secs(60);

fn sets(bench: &Bench) -> Api<ApplicationSet> {
    Api::namespaced(bench.client.clone(), &bench.namespace)
}

async fn apply_set(bench: &Bench, mut set: Value) {
    set["apiVersion"] = "argoproj.io/v1alpha1".into();
    set["kind"] = "ApplicationSet".into();
    set["metadata"]["namespace"] = bench.namespace.clone().into();
    let name = set["metadata"]["name"].as_str().unwrap().to_string();
    sets(bench).patch(&name, &PatchParams::apply("berth-test").force(), &Patch::Apply(&set)).await.unwrap();
}

/// Asks the set to generate now (Argo CD's refresh annotation) and waits until it has (the annotation
/// is gone).
async fn refresh_set(bench: &Bench, name: &str) {
    let patch = json!({"metadata": {"annotations": {"argocd.argoproj.io/application-set-refresh": "true"}}});
    sets(bench).patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    wait_set(bench, name, "the refresh handled", |s| {
        s["metadata"]["annotations"]["argocd.argoproj.io/application-set-refresh"].is_null()
    })
    .await;
}

async fn wait_set(bench: &Bench, name: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let api = sets(bench);
    let mut last = Value::Null;
    let found = tokio::time::timeout(SET_TIMEOUT, async {
        loop {
            last = serde_json::to_value(api.get(name).await.unwrap()).unwrap();
            if check(&last) {
                return last.clone();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    found.unwrap_or_else(|_| {
        panic!(
            "timed out waiting for set {name}: {what}; status:\n{}",
            serde_json::to_string_pretty(&last["status"]).unwrap()
        )
    })
}

/// The condition of `type_` as `status reason: message`.
fn set_condition(set: &Value, type_: &str) -> String {
    set["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == type_)
        .map(|c| {
            format!(
                "{} {}: {}",
                c["status"].as_str().unwrap_or(""),
                c["reason"].as_str().unwrap_or(""),
                c["message"].as_str().unwrap_or("")
            )
        })
        .unwrap_or_default()
}

/// The names of the Applications the API server has in the bench's namespace.
async fn app_names(bench: &Bench) -> Vec<String> {
    let mut names: Vec<String> = bench
        .apps()
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|a| a.metadata.name)
        .collect();
    names.sort();
    names
}

async fn wait_names(bench: &Bench, want: &[&str]) {
    poll(&format!("exactly the Applications {want:?}"), SET_TIMEOUT, || async {
        app_names(bench).await == want
    })
    .await;
}

fn synced_healthy(app: &Value) -> bool {
    sync_status(app) == "Synced" && health(app) == "Healthy"
}

/// A manifest repository laid out as the seed's: `apps/<app>/{base,overlays/<env>}`, each overlay a
/// Kustomization over the app's base.
fn kustomize_app(repo: &GitRepo, app: &str, envs: &[&str]) {
    repo.write(&format!("apps/{app}/base/kustomization.yaml"), "resources: [web.yaml]\n");
    repo.write(&format!("apps/{app}/base/web.yaml"), &web_manifests(&format!("myorg/{app}:v1")));
    for env in envs {
        repo.write(&format!("apps/{app}/overlays/{env}/kustomization.yaml"), "resources: [../../base]\n");
    }
}

/// A set over the repository's overlays: one Application per `apps/*/overlays/*`, each into a namespace
/// of its own (`<app>-<env>-<suffix>`, created by the sync).
fn overlays_set(name: &str, repo: &GitRepo, suffix: &str, policy: &str) -> Value {
    json!({
        "metadata": {"name": name},
        "spec": {
            "generators": [{"git": {"repoURL": repo.url(), "revision": "main",
                                    "directories": [{"path": "apps/*/overlays/*"}]}}],
            "syncPolicy": {"applicationsSync": policy},
            "template": {
                "metadata": {"name": "{{path[1]}}-{{path.basename}}", "labels": {"env": "{{path.basename}}"}},
                "spec": {
                    "project": "default",
                    "source": {"repoURL": repo.url(), "targetRevision": "main", "path": "{{path}}"},
                    "destination": {"server": "https://kubernetes.default.svc",
                                    "namespace": format!("{{{{path[1]}}}}-{{{{path.basename}}}}-{suffix}")},
                    "syncPolicy": {"automated": {"prune": true}, "syncOptions": ["CreateNamespace=true"]}
                }
            }
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_git_directories_set_creates_updates_and_deletes_its_applications_and_never_loses_one_to_bad_input()
{
    let mut bench = Bench::start("appset-git").await;
    let repo = GitRepo::new();
    kustomize_app(&repo, "web", &["prod", "staging"]);
    repo.commit("web");
    let suffix = unique("d");
    for ns in ["web-prod", "web-staging", "api-prod"] {
        bench.namespaces.push(format!("{ns}-{suffix}"));
    }
    apply_set(&bench, overlays_set("overlays", &repo, &suffix, "sync")).await;

    // One Application per overlay, owned by the set, deployed.
    wait_names(&bench, &["web-prod", "web-staging"]).await;
    let set = wait_set(&bench, "overlays", "ResourcesUpToDate", |s| {
        set_condition(s, "ResourcesUpToDate").starts_with("True")
    })
    .await;
    assert!(set_condition(&set, "ErrorOccurred").starts_with("False ApplicationSetUpToDate"), "{set}");
    let app = bench.wait_app("web-prod", "Synced and Healthy", synced_healthy).await;
    let owner = &app["metadata"]["ownerReferences"][0];
    assert_eq!((owner["kind"].as_str(), owner["name"].as_str()), (Some("ApplicationSet"), Some("overlays")));
    assert_eq!(owner["uid"], set["metadata"]["uid"]);
    assert_eq!(app["metadata"]["labels"]["env"], "prod");
    let deployments: Api<Deployment> = Api::namespaced(bench.client.clone(), &format!("web-prod-{suffix}"));
    assert!(deployments.get_opt("web").await.unwrap().is_some(), "web-prod deployed web");
    wait_set(&bench, "overlays", "both apps in status.resources", |s| {
        s["status"]["resources"]
            .as_array()
            .is_some_and(|r| r.len() == 2 && r.iter().all(|r| r["health"]["status"] == "Healthy"))
    })
    .await;
    let web_prod_uid = app["metadata"]["uid"].clone();

    // A commit adding apps/api/overlays/prod creates api-prod; removing it deletes the app.
    kustomize_app(&repo, "api", &["prod"]);
    repo.commit("api");
    refresh_set(&bench, "overlays").await;
    wait_names(&bench, &["api-prod", "web-prod", "web-staging"]).await;
    bench.wait_app("api-prod", "Synced and Healthy", synced_healthy).await;
    repo.remove("apps/api");
    repo.commit("no api");
    refresh_set(&bench, "overlays").await;
    wait_names(&bench, &["web-prod", "web-staging"]).await;

    // A hand edit of a generated field is put back (the set owns it).
    let edit = json!({"spec": {"source": {"path": "apps/web/overlays/staging"}}});
    bench.apps().patch("web-prod", &PatchParams::default(), &Patch::Merge(&edit)).await.unwrap();
    bench
        .wait_app("web-prod", "the set's path back", |a| {
            a["spec"]["source"]["path"] == "apps/web/overlays/prod"
        })
        .await;

    // create-update: a removed overlay keeps its Application.
    apply_set(&bench, overlays_set("overlays", &repo, &suffix, "create-update")).await;
    repo.remove("apps/web/overlays/staging");
    repo.commit("no staging overlay");
    refresh_set(&bench, "overlays").await;
    wait_set(&bench, "overlays", "generated after the removal", |s| {
        s["status"]["resources"].as_array().is_some_and(|r| r.len() == 2)
    })
    .await;
    assert_eq!(app_names(&bench).await, ["web-prod", "web-staging"], "create-update deletes nothing");

    // A hand-made Application with a name the set would generate is never overwritten.
    let mut hand = seed_web_app("api-prod", &repo.url(), &format!("api-prod-{suffix}"));
    hand["spec"]["source"]["path"] = "apps/web/base".into();
    bench.create_app(hand).await;
    kustomize_app(&repo, "api", &["prod"]);
    repo.commit("api again");
    refresh_set(&bench, "overlays").await;
    let set = wait_set(&bench, "overlays", "the conflict reported", |s| {
        set_condition(s, "ErrorOccurred").starts_with("True")
    })
    .await;
    assert!(
        set_condition(&set, "ErrorOccurred").contains("api-prod"),
        "{}",
        set_condition(&set, "ErrorOccurred")
    );
    let hand = bench.app("api-prod").await;
    assert_eq!(hand["spec"]["source"]["path"], "apps/web/base", "the hand-made app is untouched");
    assert!(hand["metadata"]["ownerReferences"].is_null(), "and not adopted");
    bench.apps().delete("api-prod", &DeleteParams::default()).await.unwrap();

    // Bad input: a path that does not exist, then a template with a missing key under missingkey=error.
    // Each is a condition naming it; every Application stays as it was.
    let mut bad = overlays_set("overlays", &repo, &suffix, "sync");
    bad["spec"]["generators"][0]["git"]["directories"][0]["path"] = "aps/*/overlays/*".into();
    apply_set(&bench, bad).await;
    let set = wait_set(&bench, "overlays", "the missing folder reported", |s| {
        set_condition(s, "ErrorOccurred").contains("no folder \"aps\"")
    })
    .await;
    assert!(set_condition(&set, "ParametersGenerated").starts_with("False"), "{set}");
    let mut missing = overlays_set("overlays", &repo, &suffix, "sync");
    missing["spec"]["goTemplate"] = true.into();
    missing["spec"]["goTemplateOptions"] = json!(["missingkey=error"]);
    missing["spec"]["template"]["metadata"] = json!({"name": "{{ .path.basename }}-{{ .nope }}"});
    missing["spec"]["template"]["spec"]["source"]["path"] = "{{ .path.path }}".into();
    missing["spec"]["template"]["spec"]["destination"]["namespace"] = "{{ .path.basename }}".into();
    apply_set(&bench, missing).await;
    wait_set(&bench, "overlays", "the missing key reported", |s| {
        let c = set_condition(s, "ErrorOccurred");
        c.contains("metadata.name") && c.contains("nope")
    })
    .await;
    let names = app_names(&bench).await;
    assert!(
        names.contains(&"web-prod".to_string()) && names.contains(&"web-staging".to_string()),
        "{names:?}"
    );
    assert_eq!(bench.app("web-prod").await["metadata"]["uid"], web_prod_uid, "never deleted or recreated");

    // Deleting the set deletes what it owns (the API server's garbage collector follows the owner).
    sets(&bench).delete("overlays", &DeleteParams::foreground()).await.unwrap();
    wait_names(&bench, &[]).await;
    bench.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preserve_resources_on_deletion_keeps_the_workloads_of_a_deleted_set() {
    let mut bench = Bench::start("appset-keep").await;
    let repo = GitRepo::new();
    kustomize_app(&repo, "web", &["prod"]);
    repo.commit("web");
    let suffix = unique("k");
    let dest = format!("web-prod-{suffix}");
    bench.namespaces.push(dest.clone());
    let mut set = overlays_set("keep", &repo, &suffix, "sync");
    set["spec"]["syncPolicy"]["preserveResourcesOnDeletion"] = true.into();
    apply_set(&bench, set).await;
    wait_names(&bench, &["web-prod"]).await;
    let app = bench.wait_app("web-prod", "Synced and Healthy", synced_healthy).await;
    assert!(
        !app["metadata"]["finalizers"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|f| f == "resources-finalizer.argocd.argoproj.io"),
        "no cascade finalizer on a preserving set's app: {}",
        app["metadata"]
    );
    let deployments: Api<Deployment> = Api::namespaced(bench.client.clone(), &dest);
    let uid = deployments.get("web").await.unwrap().metadata.uid;

    sets(&bench).delete("keep", &DeleteParams::foreground()).await.unwrap();
    wait_names(&bench, &[]).await;
    let after = deployments.get_opt("web").await.unwrap().expect("the Deployment outlives its Application");
    assert_eq!(after.metadata.uid, uid);
    bench.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_sync_holds_prod_until_staging_is_healthy() {
    let mut bench = Bench::start("appset-roll").await;
    let suffix = unique("r");
    let repo = GitRepo::new();
    // Staging starts with a claim no volume will ever bind (Progressing); prod is a plain web app.
    let pending_claim = "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: data\nspec:\n  accessModes: [ReadWriteOnce]\n  resources:\n    requests:\n      storage: 1Gi\n";
    repo.write("envs/staging/claim.yaml", pending_claim);
    repo.write("envs/prod/web.yaml", &web_manifests("myorg/web:v1"));
    repo.commit("envs");
    for env in ["staging", "prod"] {
        bench.namespaces.push(format!("roll-{env}-{suffix}"));
    }
    let set = json!({
        "metadata": {"name": "roll"},
        "spec": {
            "generators": [{"list": {"elements": [{"env": "staging"}, {"env": "prod"}]}}],
            "strategy": {"type": "RollingSync", "rollingSync": {"steps": [
                {"matchExpressions": [{"key": "env", "operator": "In", "values": ["staging"]}]},
                {"matchExpressions": [{"key": "env", "operator": "In", "values": ["prod"]}]}
            ]}},
            "template": {
                "metadata": {"name": "roll-{{env}}", "labels": {"env": "{{env}}"}},
                "spec": {
                    "project": "default",
                    "source": {"repoURL": repo.url(), "targetRevision": "main", "path": "envs/{{env}}"},
                    "destination": {"server": "https://kubernetes.default.svc", "namespace": format!("roll-{{{{env}}}}-{suffix}")},
                    "syncPolicy": {"automated": {"prune": true}, "syncOptions": ["CreateNamespace=true"]}
                }
            }
        }
    });
    apply_set(&bench, set).await;
    wait_names(&bench, &["roll-prod", "roll-staging"]).await;

    // Staging is synced by the set and stays Progressing; prod waits, never synced.
    bench
        .wait_app("roll-staging", "synced, Progressing", |a| {
            sync_status(a) == "Synced" && health(a) == "Progressing"
        })
        .await;
    let set = wait_set(&bench, "roll", "prod Waiting while staging progresses", |s| {
        let status = |app: &str| {
            s["status"]["applicationStatus"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|e| e["application"] == app)
                .map(|e| e["status"].as_str().unwrap_or("").to_string())
        };
        status("roll-prod").as_deref() == Some("Waiting")
    })
    .await;
    assert!(set_condition(&set, "RolloutProgressing").starts_with("True"), "{}", set["status"]);
    let prod = bench.app("roll-prod").await;
    assert!(
        prod["status"]["operationState"].is_null() && prod["operation"].is_null(),
        "prod was not synced: {}",
        prod["status"]
    );
    assert_eq!(prod["spec"]["syncPolicy"]["automated"]["enabled"], false, "the set owns prod's syncs");

    // Staging made healthy: prod syncs next, and the rollout completes.
    repo.remove("envs/staging/claim.yaml");
    repo.write("envs/staging/web.yaml", &web_manifests("myorg/web:v1"));
    repo.commit("staging healthy");
    bench.refresh("roll-staging").await;
    bench.wait_app("roll-prod", "synced and Healthy after staging", synced_healthy).await;
    let staging = bench.app("roll-staging").await;
    assert!(synced_healthy(&staging), "staging first: {}", staging["status"]);
    wait_set(&bench, "roll", "the rollout complete", |s| {
        set_condition(s, "RolloutProgressing").starts_with("False")
    })
    .await;
    bench.cleanup().await;
}

/// The seed's estate: prod and staging, two independent API servers (the first two of
/// `BERTH_TEST_ESTATE_KUBECONFIGS`, which `hack/test` starts), registered by cluster Secrets labelled
/// `env`; the demo's repositories (`hack/demo-repos`: the seed's layout `apps/web/{base,overlays/{prod,
/// staging}}` and the chart with its value files). The seed's web-multi-env set, unchanged but for its
/// URLs, puts web-prod and web-staging each on its own cluster with its own values; one set per
/// environment (git directories × clusters by label) puts prod-web and staging-web there too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seeds_sets_deploy_each_environment_to_its_own_cluster() {
    use berth_testkit::clusters::LocalCluster;
    use k8s_openapi::api::core::v1::Secret;
    let bench = Bench::start("appset-estate").await;
    let estate = LocalCluster::from_env_list("BERTH_TEST_ESTATE_KUBECONFIGS").await;
    assert!(
        estate.len() >= 2,
        "BERTH_TEST_ESTATE_KUBECONFIGS names at least prod's and staging's kubeconfigs"
    );
    let (prod, staging) = (&estate[0], &estate[1]);
    for (cluster, env) in [(prod, "prod"), (staging, "staging")] {
        let mut data = cluster.secret_data();
        data["name"] = env.into();
        let body = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": format!("cluster-{env}"), "namespace": bench.namespace,
                         "labels": {"argocd.argoproj.io/secret-type": "cluster", "env": env}},
            "stringData": data});
        Api::<Secret>::namespaced(bench.client.clone(), &bench.namespace)
            .patch(&format!("cluster-{env}"), &PatchParams::apply("berth-test"), &Patch::Apply(&body))
            .await
            .unwrap();
    }
    let repos = tempfile::tempdir().unwrap();
    let made = std::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../hack/demo-repos"))
        .arg(repos.path())
        .status()
        .unwrap();
    assert!(made.success(), "hack/demo-repos");
    let manifests = format!("file://{}/k8s-manifests", repos.path().display());
    let charts = format!("file://{}/charts", repos.path().display());

    // The seed's set, its URLs only replaced.
    let seed = std::fs::read_to_string(seed_dir().join("applicationset-web-multi-env.yaml")).unwrap();
    let seed = seed
        .replace("https://github.com/myorg/charts", &charts)
        .replace("https://prod.k8s", &prod.server)
        .replace("https://staging.k8s", &staging.server);
    let set: Value = serde_saphyr::from_str(&seed).unwrap();
    apply_set(&bench, set).await;
    // One set per environment over the manifest repository, as the demo applies them.
    let suffix = unique("e");
    for env in ["prod", "staging"] {
        apply_set(&bench, json!({
            "metadata": {"name": format!("apps-{env}")},
            "spec": {
                "generators": [{"matrix": {"generators": [
                    {"clusters": {"selector": {"matchLabels": {"env": env}}}},
                    {"git": {"repoURL": manifests, "revision": "main",
                             "directories": [{"path": "apps/*/overlays/{{metadata.labels.env}}"}]}}
                ]}}],
                "template": {
                    "metadata": {"name": "{{name}}-{{path[1]}}"},
                    "spec": {"project": "default",
                             "source": {"repoURL": manifests, "targetRevision": "main", "path": "{{path}}"},
                             "destination": {"name": "{{name}}", "namespace": format!("{{{{path[1]}}}}-{suffix}")},
                             "syncPolicy": {"automated": {"prune": true}, "syncOptions": ["CreateNamespace=true"]}}
                }
            }
        }))
        .await;
    }
    wait_names(&bench, &["prod-web", "staging-web", "web-prod", "web-staging"]).await;

    // The seed's apps have no automated sync: synced once, as `argocd app sync` does.
    for app in ["web-prod", "web-staging"] {
        let done = bench.operate(app, json!({"sync": {"syncOptions": ["CreateNamespace=true"]}})).await;
        assert_eq!(phase(&done), "Succeeded", "{app}: {}", done["status"]["operationState"]);
    }
    for app in ["web-prod", "web-staging", "prod-web", "staging-web"] {
        bench.wait_app(app, "Synced and Healthy", synced_healthy).await;
    }
    // Each on its own cluster, with its own values: read from that cluster's API server.
    for (cluster, app, replicas, tag) in
        [(prod, "web-prod", 3, "v1.2.3"), (staging, "web-staging", 1, "v1.2.4")]
    {
        let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), "web");
        let web = deployments.get(app).await.unwrap().spec.unwrap();
        assert_eq!(web.replicas, Some(replicas), "{app} on {}", cluster.name);
        let image = web.template.spec.unwrap().containers[0].image.clone().unwrap();
        assert_eq!(image, format!("myorg/web:{tag}"), "{app} on {}", cluster.name);
        let other = if cluster.name == prod.name { staging } else { prod };
        let elsewhere: Api<Deployment> = Api::namespaced(other.client.clone(), "web");
        assert!(elsewhere.get_opt(app).await.unwrap().is_none(), "{app} only on its own cluster");
    }
    for (cluster, replicas) in [(prod, 3), (staging, 1)] {
        let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), &format!("web-{suffix}"));
        let web = deployments.get("web").await.unwrap();
        assert_eq!(web.spec.unwrap().replicas, Some(replicas), "the overlay's web on {}", cluster.name);
    }
    // Deleting the sets deletes their Applications, and with them what they deployed.
    sets(&bench).delete("web-multi-env", &DeleteParams::foreground()).await.unwrap();
    for env in ["prod", "staging"] {
        sets(&bench).delete(&format!("apps-{env}"), &DeleteParams::foreground()).await.unwrap();
    }
    wait_names(&bench, &[]).await;
    for cluster in [prod, staging] {
        let _ = Api::<k8s_openapi::api::core::v1::Namespace>::all(cluster.client.clone())
            .delete(&format!("web-{suffix}"), &DeleteParams::background())
            .await;
    }
    bench.cleanup().await;
}

/// A templatePatch that moves an Application into a project none of the set's templates names is refused
/// (a condition names it) and nothing is created; the set's other Applications are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_patch_cannot_move_an_application_into_another_project() {
    let bench = Bench::start("appset-escape").await;
    let set = json!({
        "metadata": {"name": "escape"},
        "spec": {
            "goTemplate": true,
            "generators": [{"list": {"elements": [{"env": "dev", "project": "default"}, {"env": "ops", "project": "admin-only"}]}}],
            "templatePatch": "spec:\n  project: '{{ .project }}'\n",
            "template": {"metadata": {"name": "escape-{{ .env }}"},
                         "spec": {"project": "default", "destination": {"server": "https://kubernetes.default.svc", "namespace": "x"},
                                  "source": {"repoURL": "https://example.com/repo.git", "path": "."}}}
        }
    });
    apply_set(&bench, set).await;
    let set = wait_set(&bench, "escape", "the escape refused", |s| {
        set_condition(s, "ErrorOccurred").starts_with("True")
    })
    .await;
    let condition = set_condition(&set, "ErrorOccurred");
    assert!(condition.contains("escape-ops") && condition.contains("admin-only"), "{condition}");
    wait_names(&bench, &["escape-dev"]).await;
    bench.cleanup().await;
}

/// An Application generated by a set whose manifests hold that very set (an app-of-sets pointed at its own
/// folder) is refused with a condition naming it: it never rewrites or prunes the set that owns it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_application_never_touches_the_set_that_owns_it() {
    let bench = Bench::start("appset-self").await;
    let repo = GitRepo::new();
    let set = |repo_url: &str| {
        json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "ApplicationSet",
            "metadata": {"name": "selfish", "namespace": bench.namespace},
            "spec": {
                "generators": [{"list": {"elements": [{"app": "sets"}]}}],
                "template": {"metadata": {"name": "{{app}}"},
                             "spec": {"project": "default",
                                      "source": {"repoURL": repo_url, "targetRevision": "main", "path": "sets"},
                                      "destination": {"server": "https://kubernetes.default.svc", "namespace": bench.namespace},
                                      "syncPolicy": {"automated": {"prune": true}}}}
            }
        })
    };
    // The folder holds the set itself, changed (another element): applying it would rewrite the set.
    let mut changed = set(&repo.url());
    changed["spec"]["generators"][0]["list"]["elements"] = json!([{"app": "sets"}, {"app": "more"}]);
    repo.write("sets/selfish.yaml", &serde_json::to_string(&changed).unwrap());
    repo.commit("the set itself");
    apply_set(&bench, set(&repo.url())).await;
    wait_names(&bench, &["sets"]).await;
    let app = bench
        .wait_app("sets", "the refusal", |a| conditions(a).contains("may not manage the set that owns it"))
        .await;
    assert!(conditions(&app).contains("sets/selfish.yaml"), "{}", conditions(&app));
    let stored = serde_json::to_value(sets(&bench).get("selfish").await.unwrap()).unwrap();
    assert_eq!(
        stored["spec"]["generators"][0]["list"]["elements"],
        json!([{"app": "sets"}]),
        "the set is untouched"
    );
    assert_eq!(app_names(&bench).await, ["sets"]);
    bench.cleanup().await;
}
