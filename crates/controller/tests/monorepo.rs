//! A monorepo: a commit re-renders only the applications whose paths (or manifest-generate-paths) it
//! touches; the others move to the new revision with their previous render.

mod common;

use common::*;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

fn cm(value: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata: {{value: \"{value}\"}}\n")
}

#[tokio::test]
async fn a_commit_re_renders_only_the_apps_whose_paths_it_touches() {
    let mut bench = Bench::start("monorepo").await;
    let repo = GitRepo::new();
    for app in ["a", "b", "c"] {
        repo.write(&format!("apps/{app}/cm.yaml"), &cm("v1"));
    }
    repo.write("unrelated/readme.md", "nothing to render");
    let first = repo.commit("three apps");
    let mut names = Vec::new();
    let mut namespaces = Vec::new();
    for app in ["a", "b", "c"] {
        let ns = bench.dest_namespace(&format!("mono-{app}"));
        let name = unique(&format!("mono-{app}"));
        let mut spec = seed_web_app(&name, &repo.url(), &ns);
        spec["spec"]["source"]["path"] = format!("apps/{app}").into();
        if app == "c" {
            // Declares that only /unrelated matters: a change in its own path is not rendered.
            spec["metadata"]["annotations"] =
                json!({"argocd.argoproj.io/manifest-generate-paths": "/unrelated"});
        }
        bench.create_app(spec).await;
        names.push(name);
        namespaces.push(ns);
    }
    for name in &names {
        bench
            .wait_app(name, "synced at the first commit", |a| {
                sync_status(a) == "Synced" && a["status"]["sync"]["revision"] == first.as_str()
            })
            .await;
    }

    repo.write("apps/a/cm.yaml", &cm("v2"));
    repo.write("apps/c/cm.yaml", &cm("v2"));
    let second = repo.commit("a and c change");
    for name in &names {
        bench.refresh(name).await;
    }
    let value = |ns: &str| {
        let api: Api<ConfigMap> = Api::namespaced(bench.client.clone(), ns);
        async move { api.get("settings").await.unwrap().data.unwrap()["value"].clone() }
    };
    for name in &names {
        bench
            .wait_app(name, "at the second commit", |a| {
                a["status"]["sync"]["revision"] == second.as_str() && sync_status(a) == "Synced"
            })
            .await;
    }
    poll("a's new value to be applied", TIMEOUT, || async { value(&namespaces[0]).await == "v2" }).await;
    assert_eq!(value(&namespaces[1]).await, "v1");
    // c moved to the new revision without rendering it: its ConfigMap keeps v1 and the app reports Synced.
    assert_eq!(value(&namespaces[2]).await, "v1");
    let c = bench.app(&names[2]).await;
    assert_eq!(c["status"]["history"].as_array().unwrap().len(), 1, "nothing to sync for c");

    // A hard refresh renders again whatever the annotation says.
    let hard = json!({"metadata": {"annotations": {"argocd.argoproj.io/refresh": "hard"}}});
    bench.apps().patch(&names[2], &PatchParams::default(), &Patch::Merge(&hard)).await.unwrap();
    poll("c's new value after a hard refresh", TIMEOUT, || async { value(&namespaces[2]).await == "v2" })
        .await;
    bench.cleanup().await;
}
