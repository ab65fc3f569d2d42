//! `berth appset` against a real API server (in-process, on the local cluster, each test in its own
//! namespace): create from a file (again, changed, with --upsert), list and its filters, get with the
//! Applications the set generated, delete, and the errors each command exits 1 with.

use berth_testkit::*;
use kube::api::{Api, Patch, PatchParams};
use std::path::{Path, PathBuf};
use std::time::Duration;

mod common;
use common::*;

async fn create_project(client: &kube::Client, ns: &str, name: &str) {
    let api: Api<berth_api::AppProject> = Api::namespaced(client.clone(), ns);
    let body = serde_json::json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"sourceRepos": ["*"], "destinations": [{"server": "*", "namespace": "*"}]}});
    api.patch(name, &PatchParams::apply("berth-test"), &Patch::Apply(&body)).await.unwrap();
}

/// A file with the set `name` in `project`: a list generator of two clusters, deploying `path`.
fn write_set(dir: &Path, name: &str, project: &str, path: &str) -> PathBuf {
    let text = format!(
        "apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata:
  name: {name}
  namespace: argocd
  labels:
    team: {project}
spec:
  generators:
  - list:
      elements:
      - cluster: dev
      - cluster: prod
  template:
    metadata:
      name: '{name}-{{{{cluster}}}}'
    spec:
      project: {project}
      source:
        repoURL: https://example.com/repo.git
        path: '{path}'
        targetRevision: main
      destination:
        server: https://kubernetes.default.svc
        namespace: '{{{{cluster}}}}'
"
    );
    let file = dir.join(format!("{name}.yaml"));
    std::fs::write(&file, text).unwrap();
    file
}

#[tokio::test]
async fn without_a_session_appset_commands_say_to_log_in() {
    let cli = Cli::new();
    for args in [&["appset", "list"][..], &["appset", "get", "web"], &["appset", "delete", "web", "-y"]] {
        let run = cli.run(args).await.failed();
        assert_eq!(run.stderr, "error: not logged in: run `berth login HOST`\n", "{args:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appsets_are_created_from_files_listed_shown_with_their_applications_and_deleted() {
    let client = client().await;
    install_crds(&client).await;
    let ns = unique("cli-appset");
    ensure_namespace(&client, &ns).await;
    create_project(&client, &ns, "default").await;
    create_project(&client, &ns, "team-a").await;
    let server = start_server(&client, &ns).await;
    let cli = Cli::new();
    cli.login(&server.address, "admin", &admin_password(&client, &ns).await).await;
    let files = tempfile::tempdir().unwrap();
    let web = write_set(files.path(), "web", "team-a", "apps/{{cluster}}");
    let web = web.to_str().unwrap();

    // Create, the same again, a changed one refused, then replaced with --upsert.
    let run = cli.run(&["appset", "create", "-f", web]).await.ok();
    assert_eq!(run.stdout, "applicationset 'web' created\n");
    let run = cli.run(&["appset", "create", web]).await.ok();
    assert_eq!(run.stdout, "applicationset 'web' unchanged\n");
    let changed = write_set(files.path(), "web", "team-a", "other/{{cluster}}");
    let changed = changed.to_str().unwrap();
    let run = cli.run(&["appset", "create", "-f", changed]).await.failed();
    assert_eq!(
        run.stderr,
        "error: creating applicationset 'web': existing ApplicationSet spec is different, use upsert flag to force update\n"
    );
    let run = cli.run(&["appset", "create", "-f", changed, "--upsert"]).await.ok();
    assert_eq!(run.stdout, "applicationset 'web' updated\n");
    let stored: Api<berth_api::ApplicationSet> = Api::namespaced(client.clone(), &ns);
    let source = stored.get("web").await.unwrap().spec.template.spec.source.unwrap();
    assert_eq!(source.path.as_deref(), Some("other/{{cluster}}"));
    let api = write_set(files.path(), "api", "default", "api");
    cli.run(&["appset", "create", "-f", api.to_str().unwrap(), "-o", "json"]).await.ok();

    // List: argocd's columns, the filters, and the structured forms.
    let run = cli.run(&["appset", "list"]).await.ok();
    let lines: Vec<Vec<&str>> = run.stdout.lines().map(|l| l.split_whitespace().collect()).collect();
    let api_name = format!("{ns}/api");
    let web_name = format!("{ns}/web");
    assert_eq!(
        lines,
        [
            vec!["NAME", "PROJECT", "SYNCPOLICY", "CONDITIONS"],
            vec![api_name.as_str(), "default", "nil", "<none>"],
            vec![web_name.as_str(), "team-a", "nil", "<none>"],
        ]
    );
    let run = cli.run(&["appset", "list", "-p", "team-a", "-o", "name"]).await.ok();
    assert_eq!(run.stdout, format!("{web_name}\n"));
    let run = cli.run(&["appset", "list", "-l", "team=default", "-o", "name"]).await.ok();
    assert_eq!(run.stdout, format!("{api_name}\n"));
    let run = cli.run(&["appset", "list", "-o", "json"]).await.ok();
    let sets: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(sets.as_array().map(Vec::len), Some(2));
    let run = cli.run(&["appset", "list", "-o", "wide"]).await.ok();
    assert!(run.stdout.contains("https://example.com/repo.git"), "{}", run.stdout);

    // Get: the summary, and the Applications the set owns with their sync and health.
    let uid = stored.get("web").await.unwrap().metadata.uid.unwrap();
    let apps: Api<berth_api::Application> = Api::namespaced(client.clone(), &ns);
    let owned = serde_json::json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": "web-dev", "namespace": ns, "ownerReferences": [{"apiVersion": "argoproj.io/v1alpha1",
            "kind": "ApplicationSet", "name": "web", "uid": uid}]},
        "spec": {"project": "team-a", "source": {"repoURL": "https://example.com/repo.git", "path": "other/dev"},
                 "destination": {"server": "https://kubernetes.default.svc", "namespace": "dev"}}});
    apps.patch("web-dev", &PatchParams::apply("berth-test"), &Patch::Apply(&owned)).await.unwrap();
    poll("appset get to show web-dev", Duration::from_secs(30), || async {
        cli.run(&["appset", "get", "web"]).await.stdout.contains("web-dev")
    })
    .await;
    let run = cli.run(&["appset", "get", "web"]).await.ok();
    for line in [
        format!("Name:        {web_name}"),
        "Project:     team-a".to_string(),
        "Server:      https://kubernetes.default.svc".to_string(),
        "Path:        other/{{cluster}}".to_string(),
        "Generators:  list".to_string(),
    ] {
        assert!(run.stdout.lines().any(|l| l == line), "{line:?} in\n{}", run.stdout);
    }
    let table: Vec<Vec<&str>> = run
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("APPLICATION"))
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        table,
        [vec!["APPLICATION", "SYNC", "HEALTH", "NAMESPACE"], vec!["web-dev", "<none>", "<none>", "dev"]]
    );
    let run = cli.run(&["appset", "get", "web", "-o", "yaml"]).await.ok();
    assert!(run.stdout.contains("name: web\n"), "{}", run.stdout);

    // Delete: asks first, and without a terminal refuses unless -y.
    let run = cli.run(&["appset", "delete", "api"]).await.failed();
    assert_eq!(
        run.stderr,
        "error: refusing to delete an ApplicationSet without confirmation: stdin is not a terminal, pass -y\n"
    );
    let run = cli.run(&["appset", "delete", "api", "-y"]).await.ok();
    assert_eq!(run.stdout, "applicationset 'api' deleted\n");
    poll("api to be deleted", Duration::from_secs(30), || async {
        stored.get_opt("api").await.unwrap().is_none()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appset_errors_exit_1_with_the_servers_reason() {
    let client = client().await;
    install_crds(&client).await;
    let ns = unique("cli-appset-err");
    ensure_namespace(&client, &ns).await;
    create_project(&client, &ns, "team-a").await;
    let server = start_server(&client, &ns).await;
    let cli = Cli::new();
    cli.login(&server.address, "admin", &admin_password(&client, &ns).await).await;
    let files = tempfile::tempdir().unwrap();

    let run = cli.run(&["appset", "get", "missing"]).await.failed();
    assert_eq!(run.stderr, "error: applicationset missing not found, or permission denied\n");
    let run = cli.run(&["appset", "delete", "missing", "-y"]).await.failed();
    assert_eq!(run.stderr, "error: applicationset missing not found, or permission denied\n");
    let orphan = write_set(files.path(), "orphan", "missing", "x");
    let run = cli.run(&["appset", "create", "-f", orphan.to_str().unwrap()]).await.failed();
    assert_eq!(
        run.stderr,
        "error: creating applicationset 'orphan': ApplicationSet references project missing which does not exist\n"
    );
    let not_a_set = files.path().join("app.yaml");
    std::fs::write(&not_a_set, "kind: Application\nmetadata: {name: web}\n").unwrap();
    let run = cli.run(&["appset", "create", "-f", not_a_set.to_str().unwrap()]).await.failed();
    assert!(run.stderr.contains("document 1 is of kind Application, not ApplicationSet"), "{}", run.stderr);
    let run = cli.run(&["appset", "create"]).await.failed();
    assert_eq!(run.stderr, "error: give the ApplicationSet's file: -f FILE\n");

    // Generate and a dry run need the controller, which this server runs without.
    let web = write_set(files.path(), "web", "team-a", "apps/{{cluster}}");
    let run = cli.run(&["appset", "generate", "-f", web.to_str().unwrap()]).await.failed();
    assert_eq!(run.stderr, "error: the application controller does not run in this process\n");
    let run = cli.run(&["appset", "create", "-f", web.to_str().unwrap(), "--dry-run"]).await.failed();
    assert!(run.stderr.contains("the application controller does not run in this process"), "{}", run.stderr);
    let stored: Api<berth_api::ApplicationSet> = Api::namespaced(client.clone(), &ns);
    assert!(stored.get_opt("web").await.unwrap().is_none(), "a dry run writes nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_prints_the_applications_a_set_would_make_and_a_dry_run_writes_nothing() {
    let client = client().await;
    install_crds(&client).await;
    let ns = unique("cli-appset-gen");
    ensure_namespace(&client, &ns).await;
    create_project(&client, &ns, "team-a").await;
    let server = InProcess::start(&client, &ns, Options { controller: true, ..Default::default() }).await;
    let cli = Cli::new();
    cli.login(&server.address, "admin", &admin_password(&client, &ns).await).await;
    let files = tempfile::tempdir().unwrap();
    let web = write_set(files.path(), "web", "team-a", "apps/{{cluster}}");
    let web = web.to_str().unwrap();

    let run = cli.run(&["appset", "generate", "-f", web]).await.ok();
    let lines: Vec<Vec<&str>> = run.stdout.lines().map(|l| l.split_whitespace().collect()).collect();
    let row = |name, path, dest| {
        vec![name, "team-a", "https://kubernetes.default.svc", dest, "https://example.com/repo.git", path]
    };
    assert_eq!(
        lines,
        [
            vec!["NAME", "PROJECT", "CLUSTER", "NAMESPACE", "REPO", "PATH"],
            row("web-dev", "apps/dev", "dev"),
            row("web-prod", "apps/prod", "prod"),
        ]
    );
    let run = cli.run(&["appset", "generate", web, "-o", "yaml"]).await.ok();
    let documents: Vec<serde_json::Value> = serde_saphyr::from_multiple(&run.stdout).unwrap();
    let names: Vec<&str> = documents.iter().map(|d| d["metadata"]["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["web-dev", "web-prod"]);

    let run = cli.run(&["appset", "create", "-f", web, "--dry-run"]).await.ok();
    assert!(run.stdout.starts_with("applicationset 'web' created (dry run)\nAPPLICATION"), "{}", run.stdout);
    assert!(run.stdout.contains("web-dev") && run.stdout.contains("web-prod"), "{}", run.stdout);
    let stored: Api<berth_api::ApplicationSet> = Api::namespaced(client.clone(), &ns);
    assert!(stored.get_opt("web").await.unwrap().is_none(), "a dry run writes nothing");
    let apps: Api<berth_api::Application> = Api::namespaced(client.clone(), &ns);
    assert!(apps.list(&Default::default()).await.unwrap().items.is_empty(), "generate writes nothing");
    server.stop().await;
}
