//! The seed's preview environments end to end: a real Gitea (berth-testkit) holds the repository and its
//! pull requests, an ApplicationSet's `pullRequest.gitea` generator (token from a Secret beside the set)
//! makes `preview-<number>` for each open pull request, deploying its head commit into a namespace of its
//! own, and the Application controller in-process deploys it to the real local cluster. Every check
//! reads the API server (Applications, Deployments).

mod common;

use berth_api::ApplicationSet;
use berth_testkit::gitea::Gitea;
use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};
use std::time::Duration;

const SET_TIMEOUT: Duration = Duration::from_secs(60);

fn synced_healthy_at(app: &Value, sha: &str) -> bool {
    sync_status(app) == "Synced" && health(app) == "Healthy" && app["status"]["sync"]["revision"] == sha
}

/// The image of the `web` Deployment in `namespace`, when it exists.
async fn web_image(client: &kube::Client, namespace: &str) -> Option<String> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let deployment = deployments.get_opt("web").await.unwrap()?;
    deployment.spec?.template.spec?.containers.first()?.image.clone()
}

async fn app_exists(bench: &Bench, name: &str) -> bool {
    bench.apps().get_opt(name).await.unwrap().is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_request_gets_a_preview_environment_that_follows_its_head_and_goes_when_it_closes() {
    let mut bench = Bench::start("previews").await;
    let gitea = Gitea::start().await;
    gitea.create_org("acme").await;
    gitea.create_repo("acme", "web").await;
    gitea
        .push_branch("acme", "web", "main", None, &[("deploy/web.yaml", &web_manifests("myorg/web:v1"))])
        .await;
    let token = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "gitea-token", "namespace": bench.namespace},
        "stringData": {"token": gitea.token()}});
    Api::<Secret>::namespaced(bench.client.clone(), &bench.namespace)
        .patch("gitea-token", &PatchParams::apply("berth-test"), &Patch::Apply(&token))
        .await
        .unwrap();
    let suffix = unique("p");
    let repo_url = gitea.clone_url("acme", "web");
    let set = json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "ApplicationSet",
        "metadata": {"name": "previews", "namespace": bench.namespace},
        "spec": {
            "generators": [{"pullRequest": {
                "gitea": {"owner": "acme", "repo": "web", "api": gitea.url(),
                          "tokenRef": {"secretName": "gitea-token", "key": "token"}},
                "requeueAfterSeconds": 1
            }}],
            "template": {
                "metadata": {"name": "preview-{{number}}", "labels": {"preview": "{{branch_slug}}"}},
                "spec": {
                    "project": "default",
                    "source": {"repoURL": repo_url, "targetRevision": "{{head_sha}}", "path": "deploy"},
                    "destination": {"server": "https://kubernetes.default.svc",
                                    "namespace": format!("preview-{{{{number}}}}-{suffix}")},
                    "syncPolicy": {"automated": {"prune": true}, "syncOptions": ["CreateNamespace=true"]}
                }
            }
        }
    });
    Api::<ApplicationSet>::namespaced(bench.client.clone(), &bench.namespace)
        .patch("previews", &PatchParams::apply("berth-test").force(), &Patch::Apply(&set))
        .await
        .unwrap();

    // A pull request opened: preview-N appears and deploys the head commit into its own namespace.
    let first = gitea
        .push_branch("acme", "web", "feat/cache", Some("main"), &[("deploy/notes.txt", "cache\n")])
        .await;
    let number = gitea.open_pull_request("acme", "web", "feat/cache", "main", "Add a cache").await;
    let name = format!("preview-{number}");
    let dest = format!("preview-{number}-{suffix}");
    bench.namespaces.push(dest.clone());
    poll(&format!("the Application {name}"), SET_TIMEOUT, || app_exists(&bench, &name)).await;
    let app = bench.wait_app(&name, "Synced and Healthy at the head", |a| synced_healthy_at(a, &first)).await;
    assert_eq!(app["spec"]["source"]["targetRevision"], first.as_str());
    assert_eq!(app["spec"]["destination"]["namespace"], dest.as_str());
    assert_eq!(app["metadata"]["labels"]["preview"], "feat-cache");
    assert_eq!(app["metadata"]["ownerReferences"][0]["name"], "previews");
    assert_eq!(web_image(&bench.client, &dest).await.as_deref(), Some("myorg/web:v1"), "web deployed");

    // A new commit on the branch: the preview follows it.
    let second = gitea
        .push_branch(
            "acme",
            "web",
            "feat/cache",
            Some("feat/cache"),
            &[("deploy/web.yaml", &web_manifests("myorg/web:v2"))],
        )
        .await;
    bench.wait_app(&name, "Synced and Healthy at the new head", |a| synced_healthy_at(a, &second)).await;
    assert_eq!(bench.app(&name).await["spec"]["source"]["targetRevision"], second.as_str());
    assert_eq!(
        web_image(&bench.client, &dest).await.as_deref(),
        Some("myorg/web:v2"),
        "the new commit deployed"
    );

    // Closed: the preview is deleted (the default policy, sync).
    gitea.close_pull_request("acme", "web", number).await;
    poll(&format!("{name} deleted"), SET_TIMEOUT, || async { !app_exists(&bench, &name).await }).await;
    bench.cleanup().await;
}
