//! `berth appset list|get|create|delete|generate`: ApplicationSets, as `argocd appset …`, through the REST API
//! (`/api/v1/applicationsets`). A set outside the server's control namespace is named `<namespace>/<name>`.

use crate::client::{Client, ClientError, ConnectionArgs, split_app_name};
use crate::output::{Output, Table, or_none, structured, to_yaml, write};
use anyhow::{Context as _, Result, bail};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub struct AppsetArgs {
    #[command(flatten)]
    connection: ConnectionArgs,
    #[command(subcommand)]
    command: AppsetCommand,
}

#[derive(Subcommand, Debug)]
enum AppsetCommand {
    /// List the ApplicationSets.
    List {
        /// Only the sets of these projects (repeatable).
        #[arg(short, long = "project", value_name = "PROJECT")]
        projects: Vec<String>,
        /// Only the sets whose labels match (`team=web,env!=prod`).
        #[arg(short = 'l', long)]
        selector: Option<String>,
        #[arg(short, long, value_enum)]
        output: Option<Output>,
    },
    /// Show an ApplicationSet: its summary, conditions and the Applications it generated.
    Get {
        /// `[<namespace>/]<name>`.
        name: String,
        #[arg(short, long, value_enum)]
        output: Option<Output>,
    },
    /// Create ApplicationSets from YAML or JSON files (several documents allowed; `-` for stdin).
    Create {
        /// The files (also as positional arguments, as `argocd appset create FILE`).
        #[arg(short, long = "file", value_name = "FILE")]
        files: Vec<PathBuf>,
        #[arg(value_name = "FILE")]
        positional: Vec<PathBuf>,
        /// Replace a set that exists with a different spec.
        #[arg(long)]
        upsert: bool,
        /// Write nothing: show the Applications the set would generate.
        #[arg(long)]
        dry_run: bool,
        #[arg(short, long, value_enum)]
        output: Option<Output>,
    },
    /// Delete ApplicationSets (the Applications they generated go with them).
    Delete {
        /// `[<namespace>/]<name>`, one or more.
        #[arg(required = true)]
        names: Vec<String>,
        /// Do not ask for confirmation.
        #[arg(short, long)]
        yes: bool,
    },
    /// Print the Applications an ApplicationSet would generate now; nothing is written.
    Generate {
        /// The file with the ApplicationSet (also as a positional argument).
        #[arg(short, long = "file", value_name = "FILE")]
        file: Option<PathBuf>,
        #[arg(value_name = "FILE", conflicts_with = "file")]
        positional: Option<PathBuf>,
        #[arg(short, long, value_enum)]
        output: Option<Output>,
    },
}

pub async fn run(args: AppsetArgs) -> Result<()> {
    let client = args.connection.client()?;
    match args.command {
        AppsetCommand::List { projects, selector, output } => {
            let items = list(&client, &projects, selector.as_deref()).await?;
            write(&list_output(&items, output)?)
        }
        AppsetCommand::Get { name, output } => {
            let set = get(&client, &name).await?;
            let text = match output {
                Some(Output::Json | Output::Yaml) => structured(&set, output)?.unwrap_or_default(),
                Some(Output::Name) => format!("{}\n", qualified_name(&set)),
                None | Some(Output::Wide) => {
                    // Apps the caller may not see are left out by the server; the set still shows.
                    let apps = client.list_applications(&[], None).await.unwrap_or_default();
                    get_output(&set, &owned_by(&set, &apps))
                }
            };
            write(&text)
        }
        AppsetCommand::Create { mut files, positional, upsert, dry_run, output } => {
            files.extend(positional);
            if files.is_empty() {
                bail!("give the ApplicationSet's file: -f FILE");
            }
            for file in &files {
                for set in read_sets(file)? {
                    create(&client, &set, upsert, dry_run, output).await?;
                }
            }
            Ok(())
        }
        AppsetCommand::Delete { names, yes } => {
            for name in names {
                if !yes {
                    let question = format!(
                        "Are you sure you want to delete '{name}' and the Applications it generated? [y/n] "
                    );
                    if !crate::terminal::confirm(&question, "delete an ApplicationSet")? {
                        write(&format!("applicationset '{name}' not deleted\n"))?;
                        continue;
                    }
                }
                let _: Value = set_call(&client, &name, Method::DELETE, "", None).await?;
                write(&format!("applicationset '{name}' deleted\n"))?;
            }
            Ok(())
        }
        AppsetCommand::Generate { file, positional, output } => {
            let Some(file) = file.or(positional) else { bail!("give the ApplicationSet's file: -f FILE") };
            let mut sets = read_sets(&file)?;
            if sets.len() != 1 {
                bail!("{}: generate takes one ApplicationSet, the file has {}", file.display(), sets.len());
            }
            let body = json!({"applicationSet": sets.remove(0)});
            let answer: Value =
                client.call(Method::POST, "/api/v1/applicationsets/generate", &[], Some(&body)).await?;
            let apps = answer["applications"].as_array().cloned().unwrap_or_default();
            write(&generated_output(&apps, output)?)
        }
    }
}

async fn list(client: &Client, projects: &[String], selector: Option<&str>) -> Result<Vec<Value>> {
    let mut query: Vec<(&str, String)> = projects.iter().map(|p| ("projects", p.clone())).collect();
    if let Some(selector) = selector.filter(|s| !s.is_empty()) {
        query.push(("selector", selector.to_string()));
    }
    let list: Value = client.call(Method::GET, "/api/v1/applicationsets", &query, None).await?;
    Ok(list["items"].as_array().cloned().unwrap_or_default())
}

/// A call under `/api/v1/applicationsets/{name}`; the server answers a missing set as a forbidden one.
async fn set_call(
    client: &Client,
    name: &str,
    method: Method,
    suffix: &str,
    body: Option<&Value>,
) -> Result<Value> {
    let (namespace, plain) = split_app_name(name);
    let path = format!("/api/v1/applicationsets/{}{suffix}", Client::path_segment(plain));
    let query: Vec<(&str, String)> =
        namespace.map(|ns| ("appsetNamespace", ns.to_string())).into_iter().collect();
    match client.call(method, &path, &query, body).await {
        Err(ClientError::PermissionDenied(message)) if message == "permission denied" => {
            bail!("applicationset {name} not found, or permission denied")
        }
        other => Ok(other?),
    }
}

async fn get(client: &Client, name: &str) -> Result<Value> {
    set_call(client, name, Method::GET, "", None).await
}

async fn create(
    client: &Client,
    set: &Value,
    upsert: bool,
    dry_run: bool,
    output: Option<Output>,
) -> Result<()> {
    let name = text(set, "/metadata/name");
    // What stood before, to say created, updated or unchanged as `argocd appset create` does.
    let before = get(client, &name).await.ok();
    let query = [("upsert", upsert.to_string()), ("dryRun", dry_run.to_string())];
    let answer: Value = client
        .call(Method::POST, "/api/v1/applicationsets", &query, Some(set))
        .await
        .with_context(|| format!("creating applicationset '{name}'"))?;
    if let Some(text) = structured(&answer, output)? {
        return write(&text);
    }
    let action = match &before {
        None => "created",
        Some(before)
            if before["spec"] == answer["spec"]
                && before["metadata"]["labels"] == answer["metadata"]["labels"] =>
        {
            "unchanged"
        }
        Some(_) => "updated",
    };
    if !dry_run {
        return write(&format!("applicationset '{name}' {action}\n"));
    }
    let mut out = format!("applicationset '{name}' {action} (dry run)\n");
    let resources =
        answer.pointer("/status/resources").and_then(Value::as_array).cloned().unwrap_or_default();
    if !resources.is_empty() {
        let mut table = Table::new(["APPLICATION", "NAMESPACE"]);
        for r in &resources {
            table.row([text(r, "/name"), text(r, "/namespace")]);
        }
        out.push_str(&table.render());
    }
    write(&out)
}

/// The ApplicationSets of a YAML or JSON file (several documents allowed; `-` is stdin).
fn read_sets(path: &Path) -> Result<Vec<Value>> {
    crate::app::read_manifests(path, "ApplicationSet")
}

fn text(v: &Value, pointer: &str) -> String {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or_default().to_string()
}

/// `<namespace>/<name>`, as `argocd appset list` names a set.
fn qualified_name(set: &Value) -> String {
    let namespace = text(set, "/metadata/namespace");
    let name = text(set, "/metadata/name");
    if namespace.is_empty() { name } else { format!("{namespace}/{name}") }
}

/// The template's single source, or its first of several.
fn template_source(set: &Value) -> &Value {
    let spec = &set["spec"]["template"]["spec"];
    if spec["source"].is_object() { &spec["source"] } else { &spec["sources"][0] }
}

fn sync_policy(set: &Value) -> String {
    match set.pointer("/spec/syncPolicy") {
        None | Some(Value::Null) => "nil".to_string(),
        Some(policy) => policy["applicationsSync"].as_str().unwrap_or("sync").to_string(),
    }
}

/// The conditions that hold (status True), by type, as `argocd appset list` shows them.
fn true_conditions(set: &Value) -> String {
    let conditions = set.pointer("/status/conditions").and_then(Value::as_array);
    let types: Vec<&str> = conditions
        .into_iter()
        .flatten()
        .filter(|c| c["status"] == "True")
        .filter_map(|c| c["type"].as_str())
        .collect();
    or_none(&types.join(","))
}

/// `argocd appset list`'s columns; `wide` adds the template's repository, path and revision.
fn list_output(items: &[Value], output: Option<Output>) -> Result<String> {
    if let Some(text) = structured(items, output)? {
        return Ok(text);
    }
    if output == Some(Output::Name) {
        return Ok(items.iter().map(|s| format!("{}\n", qualified_name(s))).collect());
    }
    let wide = output == Some(Output::Wide);
    let mut header = vec!["NAME", "PROJECT", "SYNCPOLICY", "CONDITIONS"];
    if wide {
        header.extend(["REPO", "PATH", "TARGET"]);
    }
    let mut table = Table::new(header);
    for set in items {
        let mut row = vec![
            qualified_name(set),
            text(set, "/spec/template/spec/project"),
            sync_policy(set),
            true_conditions(set),
        ];
        if wide {
            let source = template_source(set);
            row.extend([text(source, "/repoURL"), text(source, "/path"), text(source, "/targetRevision")]);
        }
        table.row(row);
    }
    Ok(table.render())
}

/// The Applications whose owner reference names `set` (by uid when both carry one).
fn owned_by<'a>(set: &Value, apps: &'a [Value]) -> Vec<&'a Value> {
    let name = text(set, "/metadata/name");
    let namespace = text(set, "/metadata/namespace");
    let uid = text(set, "/metadata/uid");
    apps.iter()
        .filter(|app| namespace.is_empty() || text(app, "/metadata/namespace") == namespace)
        .filter(|app| {
            let owners = app.pointer("/metadata/ownerReferences").and_then(Value::as_array);
            owners.into_iter().flatten().any(|o| {
                o["kind"] == "ApplicationSet"
                    && o["name"].as_str() == Some(name.as_str())
                    && (uid.is_empty() || o["uid"].as_str().is_none_or(|u| u == uid))
            })
        })
        .collect()
}

/// `berth appset get`: the summary, the conditions and the generated Applications with their sync and health.
fn get_output(set: &Value, apps: &[&Value]) -> String {
    let source = template_source(set);
    let destination = &set["spec"]["template"]["spec"]["destination"];
    let server =
        [text(destination, "/server"), text(destination, "/name")].into_iter().find(|s| !s.is_empty());
    let generators: Vec<String> = set
        .pointer("/spec/generators")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|g| g.as_object().and_then(|o| o.keys().find(|k| *k != "selector").cloned()))
        .collect();
    let mut summary = Table::new(["Name:", &qualified_name(set)]);
    let lines = [
        ("Project:", text(set, "/spec/template/spec/project")),
        ("Server:", server.unwrap_or_default()),
        ("Namespace:", text(destination, "/namespace")),
        ("Repo:", text(source, "/repoURL")),
        ("Target:", text(source, "/targetRevision")),
        ("Path:", text(source, "/path")),
        ("SyncPolicy:", sync_policy(set)),
        ("Generators:", generators.join(", ")),
    ];
    for (label, value) in lines {
        summary.row([label.to_string(), value]);
    }
    let mut out = summary.render();
    let conditions = set.pointer("/status/conditions").and_then(Value::as_array).cloned().unwrap_or_default();
    if !conditions.is_empty() {
        let mut table = Table::new(["CONDITION", "STATUS", "MESSAGE", "LAST TRANSITION"]);
        for c in &conditions {
            table.row([
                text(c, "/type"),
                text(c, "/status"),
                text(c, "/message"),
                text(c, "/lastTransitionTime"),
            ]);
        }
        out.push('\n');
        out.push_str(&table.render());
    }
    out.push('\n');
    if apps.is_empty() {
        out.push_str("No Applications generated.\n");
    } else {
        let mut table = Table::new(["APPLICATION", "SYNC", "HEALTH", "NAMESPACE"]);
        for app in apps {
            table.row([
                text(app, "/metadata/name"),
                or_none(&text(app, "/status/sync/status")),
                or_none(&text(app, "/status/health/status")),
                text(app, "/spec/destination/namespace"),
            ]);
        }
        out.push_str(&table.render());
    }
    out
}

/// `berth appset generate`: the Applications as a table (NAME, PROJECT, CLUSTER — the destination's server
/// or name —, NAMESPACE, REPO, PATH), or as JSON, YAML documents or names.
fn generated_output(apps: &[Value], output: Option<Output>) -> Result<String> {
    match output {
        Some(Output::Json) => structured(apps, output).map(Option::unwrap_or_default),
        Some(Output::Yaml) => {
            let documents: Result<Vec<String>> = apps.iter().map(to_yaml).collect();
            Ok(documents?.join("---\n"))
        }
        Some(Output::Name) => Ok(apps.iter().map(|a| format!("{}\n", text(a, "/metadata/name"))).collect()),
        None | Some(Output::Wide) => {
            let mut table = Table::new(["NAME", "PROJECT", "CLUSTER", "NAMESPACE", "REPO", "PATH"]);
            for app in apps {
                let spec = &app["spec"];
                let destination = &spec["destination"];
                let cluster = [text(destination, "/server"), text(destination, "/name")]
                    .into_iter()
                    .find(|s| !s.is_empty())
                    .unwrap_or_default();
                let source = if spec["source"].is_object() { &spec["source"] } else { &spec["sources"][0] };
                table.row([
                    text(app, "/metadata/name"),
                    text(spec, "/project"),
                    cluster,
                    text(destination, "/namespace"),
                    text(source, "/repoURL"),
                    text(source, "/path"),
                ]);
            }
            Ok(table.render())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> Value {
        json!({
            "metadata": {"name": "web", "namespace": "argocd", "uid": "u1"},
            "spec": {
                "generators": [{"list": {"elements": []}}],
                "syncPolicy": {"applicationsSync": "create-only"},
                "template": {"metadata": {}, "spec": {"project": "team-a",
                    "source": {"repoURL": "https://example.com/r.git", "path": "apps/{{cluster}}", "targetRevision": "main"},
                    "destination": {"server": "https://kubernetes.default.svc", "namespace": "{{cluster}}"}}}
            },
            "status": {"conditions": [
                {"type": "ParametersGenerated", "status": "True", "message": "ok", "reason": "x"},
                {"type": "ErrorOccurred", "status": "False", "message": "", "reason": "x"}
            ]}
        })
    }

    #[test]
    fn sets_list_as_argocd_appset_list_prints_them() {
        let items = vec![set(), json!({"metadata": {"name": "api", "namespace": "argocd"}, "spec": {}})];
        assert_eq!(
            list_output(&items, None).unwrap(),
            "NAME        PROJECT  SYNCPOLICY   CONDITIONS\n\
             argocd/web  team-a   create-only  ParametersGenerated\n\
             argocd/api           nil          <none>\n"
        );
        let wide = list_output(&items[..1], Some(Output::Wide)).unwrap();
        assert!(
            wide.lines().next().unwrap().ends_with("REPO                       PATH              TARGET"),
            "{wide}"
        );
        assert!(wide.contains("https://example.com/r.git  apps/{{cluster}}  main"), "{wide}");
        assert_eq!(list_output(&items, Some(Output::Name)).unwrap(), "argocd/web\nargocd/api\n");
    }

    #[test]
    fn get_shows_the_summary_the_conditions_and_the_generated_apps() {
        let apps = vec![
            json!({"metadata": {"name": "web-dev", "namespace": "argocd",
                    "ownerReferences": [{"kind": "ApplicationSet", "name": "web", "uid": "u1"}]},
                   "spec": {"destination": {"namespace": "dev"}},
                   "status": {"sync": {"status": "Synced"}, "health": {"status": "Healthy"}}}),
            json!({"metadata": {"name": "other", "namespace": "argocd",
                    "ownerReferences": [{"kind": "ApplicationSet", "name": "web", "uid": "u2"}]}}),
            json!({"metadata": {"name": "lone", "namespace": "argocd"}}),
        ];
        let owned = owned_by(&set(), &apps);
        assert_eq!(owned.len(), 1);
        let out = get_output(&set(), &owned);
        assert!(out.starts_with("Name:        argocd/web\nProject:     team-a\n"), "{out}");
        assert!(out.contains("Generators:  list\n"), "{out}");
        assert!(
            out.contains(
                "\nCONDITION            STATUS  MESSAGE  LAST TRANSITION\nParametersGenerated  True    ok\n"
            ),
            "{out}"
        );
        assert!(
            out.ends_with("APPLICATION  SYNC    HEALTH   NAMESPACE\nweb-dev      Synced  Healthy  dev\n"),
            "{out}"
        );
        assert!(get_output(&set(), &[]).ends_with("No Applications generated.\n"));
    }

    #[test]
    fn generated_apps_print_as_a_table_or_yaml_documents() {
        let apps = vec![
            json!({"metadata": {"name": "web-dev"}, "spec": {"project": "team-a",
                "source": {"repoURL": "https://example.com/r.git", "path": "apps/dev"},
                "destination": {"name": "in-cluster", "namespace": "dev"}}}),
            json!({"metadata": {"name": "web-prod"}, "spec": {"project": "team-a",
                "sources": [{"repoURL": "https://example.com/r.git", "path": "apps/prod"}],
                "destination": {"server": "https://prod:6443", "namespace": "prod"}}}),
        ];
        assert_eq!(
            generated_output(&apps, None).unwrap(),
            "NAME      PROJECT  CLUSTER            NAMESPACE  REPO                       PATH\n\
             web-dev   team-a   in-cluster         dev        https://example.com/r.git  apps/dev\n\
             web-prod  team-a   https://prod:6443  prod       https://example.com/r.git  apps/prod\n"
        );
        let yaml = generated_output(&apps, Some(Output::Yaml)).unwrap();
        let documents: Vec<Value> = serde_saphyr::from_multiple(&yaml).unwrap();
        assert_eq!(documents, apps);
        assert_eq!(generated_output(&apps, Some(Output::Name)).unwrap(), "web-dev\nweb-prod\n");
    }

    #[test]
    fn files_must_hold_named_applicationsets() {
        assert_eq!(
            crate::app::parse_manifests(
                "kind: ApplicationSet\nmetadata: {name: a}\n---\nmetadata: {name: b}\n",
                "ApplicationSet"
            )
            .unwrap()
            .len(),
            2
        );
        let parse_sets = |text: &str| crate::app::parse_manifests(text, "ApplicationSet");
        let e = parse_sets("kind: Application\nmetadata: {name: a}\n").unwrap_err();
        assert_eq!(e.to_string(), "document 1 is of kind Application, not ApplicationSet");
        assert!(parse_sets("kind: ApplicationSet\nmetadata: {}\n").is_err());
        assert!(parse_sets("").is_err());
    }
}
