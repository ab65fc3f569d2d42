//! `berth proj windows` through the built binary against the API server on the local cluster (its own
//! namespace): windows listed, added, changed and deleted as `argocd proj windows` does, an application's
//! windows as the API serves them, and a sync a deny window refuses as Argo CD refuses it.

use berth_testkit::*;
use kube::api::{Api, Patch, PatchParams};
use std::time::Duration;

mod common;
use common::*;

const HEADER: &str = "ID  STATUS  KIND  SCHEDULE  DURATION  APPLICATIONS  NAMESPACES  CLUSTERS  MANUALSYNC  SYNCOVERRUN  \
                      TIMEZONE  USEANDOPERATOR\n";

async fn apply(client: &kube::Client, ns: &str, object: serde_json::Value) {
    let kind = object["kind"].as_str().unwrap();
    let plural = if kind == "AppProject" { "appprojects" } else { "applications" };
    let resource = kube::api::ApiResource::from_gvk_with_plural(
        &kube::api::GroupVersionKind::gvk("argoproj.io", "v1alpha1", kind),
        plural,
    );
    let api: Api<kube::api::DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource);
    let name = object["metadata"]["name"].as_str().unwrap();
    api.patch(name, &PatchParams::apply("berth-test").force(), &Patch::Apply(&object)).await.unwrap();
}

/// The rows of `berth proj windows list freeze`, each split into words.
async fn rows(cli: &Cli) -> Vec<Vec<String>> {
    let run = cli.run(&["proj", "windows", "list", "freeze"]).await.ok();
    run.stdout.lines().skip(1).map(|l| l.split_whitespace().map(String::from).collect()).collect()
}

async fn get(url: &str, token: &str) -> (u16, serde_json::Value) {
    let response = reqwest::Client::new().get(url).bearer_auth(token).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_windows_are_edited_by_id_and_a_deny_window_refuses_a_sync() {
    let client = client().await;
    install_crds(&client).await;
    let ns = unique("cli-windows");
    ensure_namespace(&client, &ns).await;
    apply(
        &client,
        &ns,
        serde_json::json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject",
        "metadata": {"name": "freeze", "namespace": ns},
        "spec": {"sourceRepos": ["*"], "destinations": [{"server": "*", "namespace": "*"}]}}),
    )
    .await;
    apply(
        &client,
        &ns,
        serde_json::json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": "web", "namespace": ns},
        "spec": {"project": "freeze", "source": {"repoURL": "https://example.com/r.git", "path": "web"},
                 "destination": {"server": "https://kubernetes.default.svc", "namespace": "web"}}}),
    )
    .await;
    let server = start_server(&client, &ns).await;
    let host = server.address.clone();
    let cli = Cli::new();
    cli.login(&host, "admin", &admin_password(&client, &ns).await).await;
    let token = cli.saved_token();
    let windows_url = format!("http://{host}/api/v1/applications/web/syncwindows");

    assert_eq!(cli.run(&["proj", "windows", "list", "freeze"]).await.ok().stdout, HEADER);
    let run = cli
        .run(&[
            "proj",
            "windows",
            "add",
            "freeze",
            "--kind",
            "deny",
            "--schedule",
            "* * * * *",
            "--duration",
            "1h",
            "--applications",
            "*",
        ])
        .await
        .ok();
    assert_eq!(run.stdout, "sync window 0 of project 'freeze' added\n");
    let expected = "0 Active deny * * * * * 1h * - - Disabled Disabled UTC Disabled";
    assert_eq!(rows(&cli).await, [expected.split(' ').map(String::from).collect::<Vec<_>>()]);
    let run = cli.run(&["proj", "windows", "list", "freeze", "-o", "json"]).await.ok();
    let listed: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        listed,
        serde_json::json!([{"kind": "deny", "schedule": "* * * * *", "duration": "1h", "applications": ["*"],
            "timeZone": "UTC"}])
    );
    let project: Api<berth_api::AppProject> = Api::namespaced(client.clone(), &ns);
    let stored = project.get("freeze").await.unwrap();
    assert_eq!(stored.spec.sync_windows.len(), 1, "written to the AppProject");
    assert_eq!(stored.spec.source_repos, ["*"], "the rest of the project is kept");

    // The server's answer and its refusal, once it sees the app.
    poll("the server to see web", Duration::from_secs(30), || async {
        cli.run(&["app", "get", "web", "-o", "name"]).await.code == 0
    })
    .await;
    let (status, body) = get(&windows_url, &token).await;
    assert_eq!(status, 200);
    let window = serde_json::json!({"kind": "deny", "schedule": "* * * * *", "duration": "1h",
        "manualSync": false, "timeZone": "UTC"});
    assert_eq!(
        body,
        serde_json::json!({"activeWindows": [window], "assignedWindows": [window], "canSync": false})
    );
    let run = cli.run(&["app", "sync", "web", "--async"]).await.failed();
    assert_eq!(run.stderr, "error: permission denied: cannot sync: blocked by sync window\n");
    let apps: Api<berth_api::Application> = Api::namespaced(client.clone(), &ns);
    assert!(apps.get("web").await.unwrap().operation.is_none(), "no operation was written");

    // manualSync lets a person through.
    let run = cli.run(&["proj", "windows", "enable-manual-sync", "freeze", "0"]).await.ok();
    assert_eq!(run.stdout, "sync window 0 of project 'freeze' now lets manual syncs through\n");
    assert_eq!(rows(&cli).await[0][12], "Enabled");
    poll("the server to let a manual sync through", Duration::from_secs(30), || async {
        get(&windows_url, &token).await.1["canSync"] == true
    })
    .await;
    cli.run(&["app", "sync", "web", "--async"]).await.ok();
    assert!(apps.get("web").await.unwrap().operation.is_some(), "the sync was requested");
    cli.run(&["proj", "windows", "disable-manual-sync", "freeze", "0"]).await.ok();
    assert_eq!(rows(&cli).await[0][12], "Disabled");

    // Changed and deleted by ID; refusals name what is wrong.
    cli.run(&[
        "proj",
        "windows",
        "update",
        "freeze",
        "0",
        "--schedule",
        "0 0 1 1 *",
        "--duration",
        "1m",
        "--namespaces",
        "web,api",
    ])
    .await
    .ok();
    let row = &rows(&cli).await[0];
    assert_eq!((row[1].as_str(), row[3].as_str(), row[8].as_str()), ("Inactive", "0", "1m"));
    assert_eq!(row[10], "web,api");
    let run = cli
        .run(&[
            "proj",
            "windows",
            "add",
            "freeze",
            "-k",
            "allow",
            "--schedule",
            "0 25 * * *",
            "--duration",
            "1h",
            "--clusters",
            "*",
        ])
        .await
        .failed();
    assert_eq!(run.stderr, "error: sync window 1: schedule: hour field '25': 25 is above the maximum 23\n");
    let run = cli.run(&["proj", "windows", "delete", "freeze", "3"]).await.failed();
    assert_eq!(
        run.stderr,
        "error: project 'freeze' has no sync window 3 (see berth proj windows list freeze)\n"
    );
    cli.run(&["proj", "windows", "delete", "freeze", "0"]).await.ok();
    assert_eq!(cli.run(&["proj", "windows", "list", "freeze"]).await.ok().stdout, HEADER);
    assert_eq!(get(&windows_url, &token).await.1, serde_json::json!({"canSync": true}));

    // The server checks what any client writes, as Argo CD's does.
    let bad = serde_json::json!({"project": {"metadata": {"name": "freeze"}, "spec": {"sourceRepos": ["*"],
        "syncWindows": [{"kind": "deny", "schedule": "@daily", "duration": "1h", "applications": ["*"]}]}}});
    let response = reqwest::Client::new()
        .put(format!("http://{host}/api/v1/projects/freeze"))
        .bearer_auth(&token)
        .json(&bad)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().starts_with("sync window 0: schedule: '@daily': descriptors"),
        "{body}"
    );
    assert!(project.get("freeze").await.unwrap().spec.sync_windows.is_empty(), "nothing was written");
}
