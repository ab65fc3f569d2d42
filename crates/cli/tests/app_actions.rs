//! `berth app actions list|run` with the built binary against the API server and the controller (in process,
//! on the local cluster): the actions of a synced app's Deployment, a restart seen on the API server, a
//! parameterised scale, and the refusal of an action the resource does not offer.

use berth_testkit::*;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;
use std::time::Duration;

mod common;
use common::*;

/// No replicas: healthy without pulling an image.
const DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 0\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - name: web\n        image: myorg/web:v1\n";
const CONFIG_MAP: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web-config\ndata:\n  value: one\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_of_a_synced_deployment_are_listed_and_run() {
    let client = client().await;
    install_crds(&client).await;
    let ns = unique("cli-actions");
    ensure_namespace(&client, &ns).await;
    allow_file_urls(&client, &ns).await;
    let dest = unique("cli-actions-dest");
    // Resources are tracked by application name, so leftovers of an earlier run must not share it.
    let app = unique("web");
    let app = app.as_str();
    let repo = GitRepo::new();
    repo.write("apps/web/deployment.yaml", DEPLOYMENT);
    repo.write("apps/web/configmap.yaml", CONFIG_MAP);
    repo.commit("one");

    let server = InProcess::start(&client, &ns, Options { controller: true, ..Default::default() }).await;
    let cli = Cli::new();
    cli.login(&server.address, "admin", &admin_password(&client, &ns).await).await;
    let url = repo.url();
    cli.create_app(app, &url, "apps/web", &dest).await;
    poll("the controller to compare the app", Duration::from_secs(60), || async {
        cli.run(&["app", "get", app]).await.stdout.contains("Sync Status:")
    })
    .await;
    cli.run(&["app", "sync", app, "--timeout", "120"]).await.ok();
    poll("the Deployment among the managed resources", Duration::from_secs(60), || async {
        cli.run(&["app", "actions", "list", app, "--kind", "Deployment"]).await.code == 0
    })
    .await;

    // Every action of every resource: the Deployment's, none for the ConfigMap.
    let run = cli.run(&["app", "actions", "list", app]).await.ok();
    let rows: Vec<Vec<&str>> = run.stdout.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows[0], ["GROUP", "KIND", "NAME", "ACTION", "DISABLED"], "{}", run.stdout);
    for (action, disabled) in
        [("pause", "false"), ("restart", "false"), ("resume", "true"), ("scale", "false")]
    {
        assert!(
            rows.contains(&vec!["apps", "Deployment", "web", action, disabled]),
            "{action}: {}",
            run.stdout
        );
    }
    assert!(!run.stdout.contains("ConfigMap"), "{}", run.stdout);
    let run = cli.run(&["app", "actions", "list", app, "--kind", "Deployment", "-o", "json"]).await.ok();
    let listed: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert!(
        listed.as_array().unwrap().iter().any(|a| a["Action"] == "restart" && a["Disabled"] == false),
        "{listed}"
    );

    // restart: the pod template's annotation on the live Deployment.
    cli.run(&["app", "actions", "run", app, "restart", "--kind", "Deployment"]).await.ok();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &dest);
    let live = serde_json::to_value(deployments.get("web").await.unwrap()).unwrap();
    let stamp = &live["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"];
    assert!(stamp.as_str().is_some_and(|s| s.ends_with('Z')), "{live}");

    // scale with its parameter.
    cli.run(&["app", "actions", "run", app, "scale", "--kind", "Deployment", "--param", "replicas=2"])
        .await
        .ok();
    let live = deployments.get("web").await.unwrap();
    assert_eq!(live.spec.unwrap().replicas, Some(2));

    // An action the resource does not offer, and a kind the app does not have.
    let run = cli.run(&["app", "actions", "run", app, "restart", "--kind", "ConfigMap"]).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("not available"), "{}", run.stderr);
    let run = cli.run(&["app", "actions", "run", app, "restart", "--kind", "StatefulSet"]).await;
    assert_eq!(run.stderr, "error: no matching resource found\n");

    server.stop().await;
}
