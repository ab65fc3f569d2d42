//! `berth app get|list|set|delete <namespace>/<name>` with the built binary against the API server (in
//! process, on the local cluster): an Application outside the control namespace, allowed by
//! argocd-cmd-params-cm.

use berth_testkit::*;
use kube::api::{Api, Patch, PatchParams};
use std::time::Duration;

mod common;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_outside_the_control_namespace_is_named_namespace_slash_name() {
    let client = client().await;
    install_crds(&client).await;
    let ns = unique("cli-anyns");
    let team = unique("cli-anyns-team");
    for n in [&ns, &team] {
        ensure_namespace(&client, n).await;
    }
    set_application_namespaces(&client, &ns, &team).await;
    // Its project must admit the namespace, else the server refuses every route about it.
    let project = serde_json::json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject",
        "metadata": {"name": "team", "namespace": ns},
        "spec": {"sourceRepos": ["*"], "destinations": [{"namespace": "*", "server": "*"}],
                 "sourceNamespaces": [team]}});
    Api::<berth_api::AppProject>::namespaced(client.clone(), &ns)
        .patch("team", &PatchParams::apply("berth-test"), &Patch::Apply(&project))
        .await
        .unwrap();
    let app = serde_json::json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": "web", "namespace": team},
        "spec": {"project": "team", "source": {"repoURL": "https://example.com/repo.git", "path": "web"},
                 "destination": {"server": "https://kubernetes.default.svc", "namespace": team}}});
    let apps: Api<berth_api::Application> = Api::namespaced(client.clone(), &team);
    apps.patch("web", &PatchParams::apply("berth-test"), &Patch::Apply(&app)).await.unwrap();
    let mut home = app.clone();
    home["metadata"] = serde_json::json!({"name": "home", "namespace": ns});
    Api::<berth_api::Application>::namespaced(client.clone(), &ns)
        .patch("home", &PatchParams::apply("berth-test"), &Patch::Apply(&home))
        .await
        .unwrap();
    let server = start_server(&client, &ns).await;
    let cli = Cli::new();
    cli.login(&server.address, "admin", &admin_password(&client, &ns).await).await;

    let qualified = format!("{team}/web");
    poll("web served", Duration::from_secs(30), || async {
        cli.run(&["app", "get", &qualified, "-o", "json"]).await.code == 0
    })
    .await;
    let run = cli.run(&["app", "get", &qualified, "-o", "json"]).await.ok();
    let got: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(got["metadata"]["namespace"], team.as_str());
    // Unqualified, the name is looked up in the control namespace, where there is none.
    cli.run(&["app", "get", "web"]).await.failed();

    // Listed by the name the CLI takes: qualified outside the control namespace only, as argocd lists.
    let listed = cli.run(&["app", "list", "-o", "name"]).await.ok();
    let mut names: Vec<&str> = listed.stdout.lines().collect();
    names.sort();
    let mut wanted = vec!["home", qualified.as_str()];
    wanted.sort();
    assert_eq!(names, wanted, "{}", listed.stdout);
    let table = cli.run(&["app", "list"]).await.ok();
    assert!(table.stdout.lines().any(|l| l.starts_with(&format!("{qualified} "))), "{}", table.stdout);

    // Set in its own namespace.
    cli.run(&["app", "set", &qualified, "--revision", "v2"]).await.ok();
    let revision = apps.get("web").await.unwrap().spec.source.and_then(|s| s.target_revision);
    assert_eq!(revision.as_deref(), Some("v2"));

    cli.run(&["app", "delete", &qualified, "--cascade=false", "--yes"]).await.ok();
    poll("web deleted", Duration::from_secs(30), || async { apps.get_opt("web").await.unwrap().is_none() })
        .await;

    drop(server);
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    for n in [&ns, &team] {
        let _ = namespaces.delete(n, &Default::default()).await;
    }
}
