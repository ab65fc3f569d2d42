//! `berth app …`: list, get, create, delete, sync, wait, diff, history, rollback, manifests, resources and
//! terminate-op, over Argo CD's REST API, printing as `argocd app …` does.

use crate::app_view::{self, SyncProgress};
use crate::client::{
    Client, ClientError, ConnectionArgs, ManagedResources, Refresh, ResourceDiff, SyncOptions, SyncRequest,
    SyncResource,
};
use crate::output::{Output, out, outln, structured, to_yaml};
use anyhow::{Context as _, Result, bail};
use berth_api::Application;
use clap::{ArgAction, Args, Subcommand, ValueEnum};
use serde_json::Value;
use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct AppArgs {
    #[command(flatten)]
    connection: ConnectionArgs,
    #[command(subcommand)]
    command: AppCommand,
}

#[derive(Subcommand, Debug)]
enum AppCommand {
    /// List applications.
    List {
        /// Only these projects (repeatable).
        #[arg(short = 'p', long = "project")]
        projects: Vec<String>,
        /// A label selector: `team=web,env!=prod`.
        #[arg(short = 'l', long)]
        selector: Option<String>,
        #[arg(short, long, value_enum)]
        output: Option<Output>,
    },
    /// Show an application: source, destination, sync and health, its last operation and its resources.
    Get {
        name: String,
        #[arg(short, long, value_enum)]
        output: Option<Output>,
        /// Have the controller compare with git again first.
        #[arg(long, conflicts_with = "hard_refresh")]
        refresh: bool,
        /// Also re-render the manifests instead of using the cache.
        #[arg(long)]
        hard_refresh: bool,
    },
    /// Create applications from a YAML file (`-f -` reads stdin), or one from flags.
    Create(CreateArgs),
    /// Change an application's source, destination, project or sync policy.
    Set(crate::app_set::SetArgs),
    /// Delete an application (and, with cascade, the resources it manages).
    Delete {
        name: String,
        /// Delete the managed resources too (`--cascade=false` leaves them).
        #[arg(long, default_value_t = true, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
        cascade: bool,
        /// Do not ask for confirmation.
        #[arg(short, long)]
        yes: bool,
    },
    /// Sync an application to its target revision (or `--revision`), printing progress until it finishes.
    Sync(SyncArgs),
    /// Wait until an application is synced and healthy (and no operation runs).
    Wait {
        name: String,
        /// Wait for the sync status to be Synced.
        #[arg(long)]
        sync: bool,
        /// Wait for the health to be Healthy.
        #[arg(long)]
        health: bool,
        /// Wait for the running operation to finish.
        #[arg(long)]
        operation: bool,
        /// Give up after this many seconds (0: never).
        #[arg(long, default_value_t = 0)]
        timeout: u64,
    },
    /// Show how the live objects differ from git: a unified diff; exit 1 when they differ, 2 on error.
    Diff {
        name: String,
        /// Exit 1 when there are differences (`--exit-code=false`: exit 0 regardless).
        #[arg(long, default_value_t = true, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
        exit_code: bool,
    },
    /// Show the deployment history.
    History {
        name: String,
        #[arg(short, long, value_enum)]
        output: Option<Output>,
    },
    /// Roll back to a history ID (default: the deployment before the last).
    Rollback {
        name: String,
        id: Option<i64>,
        /// Delete resources the old revision does not have.
        #[arg(long)]
        prune: bool,
        #[arg(long)]
        dry_run: bool,
        /// Give up waiting after this many seconds (0: never).
        #[arg(long, default_value_t = 0)]
        timeout: u64,
    },
    /// Print the manifests, from git (the target revision or `--revision`) or live from the cluster.
    Manifests {
        name: String,
        #[arg(long, value_enum, default_value_t = ManifestSource::Git)]
        source: ManifestSource,
        #[arg(long)]
        revision: Option<String>,
    },
    /// List the application's resources (managed and what they own; `--orphaned` for orphans only).
    Resources {
        name: String,
        #[arg(long)]
        orphaned: bool,
    },
    /// Stop the running operation.
    TerminateOp { name: String },
    /// List and run resource actions (restart, pause, scale, custom ones).
    Actions(crate::app_actions::ActionsArgs),
}

#[derive(Args, Debug)]
struct CreateArgs {
    /// The application's name (with flags instead of `-f`).
    name: Option<String>,
    /// A YAML (or JSON) file with one or more Applications; `-` for stdin.
    #[arg(short, long, value_name = "FILE", conflicts_with = "name")]
    file: Option<PathBuf>,
    /// Replace an application that already exists with a different spec.
    #[arg(long)]
    upsert: bool,
    #[arg(long)]
    repo: Option<String>,
    #[arg(long)]
    path: Option<String>,
    #[arg(long)]
    revision: Option<String>,
    #[arg(long, default_value = "https://kubernetes.default.svc")]
    dest_server: String,
    #[arg(long)]
    dest_namespace: Option<String>,
    #[arg(long, default_value = "default")]
    project: String,
    /// `automated` (or `auto`) to sync on every change; `none` by default.
    #[arg(long)]
    sync_policy: Option<String>,
    #[arg(long)]
    auto_prune: bool,
    #[arg(long)]
    self_heal: bool,
    /// A sync option such as `CreateNamespace=true` (repeatable).
    #[arg(long = "sync-option")]
    sync_options: Vec<String>,
}

#[derive(Args, Debug)]
struct SyncArgs {
    name: String,
    /// Sync to this revision instead of the target revision.
    #[arg(long)]
    revision: Option<String>,
    /// Delete resources that are no longer in git.
    #[arg(long)]
    prune: bool,
    /// Show what would happen without changing anything.
    #[arg(long)]
    dry_run: bool,
    /// Sync only these objects: GROUP:KIND:NAME or GROUP:KIND:NAMESPACE/NAME (repeatable).
    #[arg(long = "resource", value_name = "GROUP:KIND:NAME")]
    resources: Vec<SyncResource>,
    /// A sync option such as `ServerSideApply=true` (repeatable).
    #[arg(long = "sync-option")]
    sync_options: Vec<String>,
    /// `apply` (kubectl apply) or `hook` (run hooks).
    #[arg(long, value_enum)]
    strategy: Option<Strategy>,
    /// Force the apply (delete and recreate what cannot be patched).
    #[arg(long)]
    force: bool,
    /// Do not wait for the operation to finish.
    #[arg(long = "async")]
    no_wait: bool,
    /// Give up waiting after this many seconds (0: never).
    #[arg(long, default_value_t = 0)]
    timeout: u64,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq)]
enum Strategy {
    Apply,
    Hook,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq)]
enum ManifestSource {
    Git,
    Live,
}

/// How often a waiting command asks the server again.
const POLL_INTERVAL: Duration = Duration::from_millis(300);

pub async fn run(args: AppArgs) -> Result<ExitCode> {
    let is_diff = matches!(args.command, AppCommand::Diff { .. });
    let outcome = match args.connection.client() {
        Ok(client) => run_command(&client, args.command).await,
        Err(e) => Err(e),
    };
    match outcome {
        // As argocd: 1 means "differences", so an error must be something else.
        Err(e) if is_diff => {
            eprintln!("error: {e:#}");
            Ok(ExitCode::from(2))
        }
        other => other,
    }
}

async fn run_command(client: &Client, command: AppCommand) -> Result<ExitCode> {
    match command {
        AppCommand::List { projects, selector, output } => {
            let items = client.list_applications(&projects, selector.as_deref()).await?;
            // Only names outside the control namespace are qualified, so the server is asked which it is
            // when any app says a namespace; a server that does not say leaves every name plain.
            let control = if items.iter().any(|a| a["metadata"]["namespace"].is_string()) {
                client.control_namespace().await.unwrap_or_default()
            } else {
                None
            };
            out!("{}", list_output(&items, control.as_deref(), output)?)?;
        }
        AppCommand::Get { name, output, refresh, hard_refresh } => {
            let refresh = match (refresh, hard_refresh) {
                (_, true) => Some(Refresh::Hard),
                (true, _) => Some(Refresh::Normal),
                _ => None,
            };
            let raw = client.get_application(&name, refresh).await?;
            if let Some(text) = structured(&raw, output)? {
                out!("{text}")?;
            } else if output == Some(Output::Name) {
                outln!("{name}")?;
            } else {
                let app = typed(&name, raw)?;
                out!("{}", app_view::summary(&app, client.base(), &name))?;
                outln!()?;
                out!("{}", resources_view(client, &app).await)?;
            }
        }
        AppCommand::Create(args) => create(client, args).await?,
        AppCommand::Delete { name, cascade, yes } => {
            if !yes {
                let question = if cascade {
                    format!("Are you sure you want to delete '{name}' and all its resources? [y/n] ")
                } else {
                    format!("Are you sure you want to delete '{name}' (its resources stay)? [y/n] ")
                };
                if !crate::terminal::confirm(&question, "delete")? {
                    outln!("application '{name}' not deleted")?;
                    return Ok(ExitCode::SUCCESS);
                }
            }
            client.delete_application(&name, cascade).await?;
            outln!("application '{name}' deleted")?;
        }
        AppCommand::Sync(args) => return sync(client, args).await,
        AppCommand::Wait { name, sync, health, operation, timeout } => {
            let all = !sync && !health && !operation;
            return wait(client, &name, sync || all, health || all, operation || all, timeout).await;
        }
        AppCommand::Diff { name, exit_code } => {
            let differs = diff(client, &name).await?;
            return Ok(if differs && exit_code { ExitCode::from(1) } else { ExitCode::SUCCESS });
        }
        AppCommand::History { name, output } => {
            let raw = client.get_application(&name, None).await?;
            let app = typed(&name, raw)?;
            let history = app.status.as_ref().map(|s| s.history.clone()).unwrap_or_default();
            match structured(&history, output)? {
                Some(text) => out!("{text}")?,
                None => out!("{}", app_view::history_table(&app))?,
            }
        }
        AppCommand::Rollback { name, id, prune, dry_run, timeout } => {
            let before = typed(&name, client.get_application(&name, None).await?)?;
            let id = match id {
                Some(id) => id,
                None => previous_deployment(&before).with_context(|| {
                    format!("application {name} has no earlier deployment to roll back to")
                })?,
            };
            let requested = client.rollback(&name, id, prune, dry_run).await?;
            outln!("rolling back {name} to history ID {id}")?;
            let requested = serde_json::from_value::<Application>(requested).ok();
            return wait_for_operation(
                client,
                &name,
                RequestedOperation::new(&before, requested.as_ref()),
                timeout,
            )
            .await;
        }
        AppCommand::Manifests { name, source, revision } => {
            let documents = match source {
                ManifestSource::Git => client.manifests(&name, revision.as_deref()).await?.manifests,
                ManifestSource::Live => {
                    client.managed_resources(&name).await?.items.into_iter().map(|i| i.live_state).collect()
                }
            };
            out!("{}", manifests_yaml(&documents)?)?;
        }
        AppCommand::Resources { name, orphaned } => match client.resource_tree(&name).await {
            Ok(tree) => out!("{}", app_view::resources_list(&tree, orphaned))?,
            Err(ClientError::Unsupported { .. }) if !orphaned => {
                let app = typed(&name, client.get_application(&name, None).await?)?;
                out!("{}", app_view::status_resources_list(&app))?;
            }
            Err(e) => return Err(e.into()),
        },
        AppCommand::Set(args) => crate::app_set::run(client, args).await?,
        AppCommand::Actions(args) => crate::app_actions::run(client, args).await?,
        AppCommand::TerminateOp { name } => {
            client.terminate_operation(&name).await?;
            outln!("Application '{name}' operation terminating")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn typed(name: &str, raw: Value) -> Result<Application> {
    serde_json::from_value(raw).with_context(|| format!("reading application {name} from the server"))
}

/// `app list` in each output format (`-o json` is an array of Applications, as argocd prints it); names
/// outside the control namespace `control` are `<namespace>/<name>`, as `berth app …` takes them.
fn list_output(items: &[Value], control: Option<&str>, output: Option<Output>) -> Result<String> {
    if let Some(text) = structured(items, output)? {
        return Ok(text);
    }
    let apps: Vec<Application> = items
        .iter()
        .map(|raw| serde_json::from_value(raw.clone()).context("reading an application from the server"))
        .collect::<Result<_>>()?;
    Ok(match output {
        Some(Output::Name) => {
            apps.iter().map(|a| format!("{}\n", app_view::qualified_name(a, control))).collect()
        }
        wide => app_view::list_table(&apps, control, wide == Some(Output::Wide)),
    })
}

/// The resources of `app get`: the tree with health when the server has it, else the flat table.
async fn resources_view(client: &Client, app: &Application) -> String {
    // Qualified by its namespace, so an app outside the control namespace is found too.
    let name = match app.metadata.namespace.as_deref() {
        Some(namespace) if !namespace.is_empty() => format!("{namespace}/{}", app_view::name(app)),
        _ => app_view::name(app).to_string(),
    };
    match client.resource_tree(&name).await {
        Ok(tree) if !tree.nodes.is_empty() => app_view::resource_tree(app, &tree),
        Ok(_) | Err(ClientError::Unsupported { .. }) => app_view::resources_table(app),
        Err(e) => {
            eprintln!("warning: no resource tree ({e}); showing the resources from status");
            app_view::resources_table(app)
        }
    }
}

async fn create(client: &Client, args: CreateArgs) -> Result<()> {
    let apps = match &args.file {
        Some(path) => read_manifests(path, "Application")?,
        None => vec![application_from_flags(&args)?],
    };
    for app in apps {
        let name = app.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string();
        match client.create_application(&app, args.upsert).await {
            Ok(_) => outln!("application '{name}' created")?,
            Err(ClientError::Api { status: 409, message, .. })
            | Err(ClientError::Api { code: Some(6), message, .. }) => {
                bail!("application '{name}' already exists ({message}): pass --upsert to replace it")
            }
            Err(e) => return Err(e).with_context(|| format!("creating application '{name}'")),
        }
    }
    Ok(())
}

/// The objects of `kind` in a YAML or JSON file (several documents allowed; `-` is stdin): each must be
/// of that kind (a document without `kind` is taken as one) and named. `berth app create -f` and
/// `berth appset create|generate -f` read their files here.
pub(crate) fn read_manifests(path: &std::path::Path, kind: &str) -> Result<Vec<Value>> {
    let text = if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading stdin")?
    } else {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
    };
    parse_manifests(&text, kind).with_context(|| format!("reading {}", path.display()))
}

pub(crate) fn parse_manifests(text: &str, kind: &str) -> Result<Vec<Value>> {
    let documents: Vec<Value> = serde_saphyr::from_multiple(text).context("parsing YAML")?;
    let objects: Vec<Value> = documents.into_iter().filter(|d| !d.is_null()).collect();
    for (i, object) in objects.iter().enumerate() {
        let found = object.get("kind").and_then(Value::as_str).unwrap_or(kind);
        if found != kind {
            bail!("document {} is of kind {found}, not {kind}", i + 1);
        }
        if object.pointer("/metadata/name").and_then(Value::as_str).is_none_or(str::is_empty) {
            bail!("document {} has no metadata.name", i + 1);
        }
    }
    if objects.is_empty() {
        bail!("no {kind} in the file");
    }
    Ok(objects)
}

fn application_from_flags(args: &CreateArgs) -> Result<Value> {
    let Some(name) = &args.name else { bail!("give the application a NAME, or a file with -f FILE") };
    let Some(repo) = &args.repo else { bail!("--repo is required when creating from flags") };
    let mut source = serde_json::json!({"repoURL": repo});
    if let Some(path) = &args.path {
        source["path"] = path.clone().into();
    }
    if let Some(revision) = &args.revision {
        source["targetRevision"] = revision.clone().into();
    }
    let mut destination = serde_json::json!({"server": args.dest_server});
    if let Some(namespace) = &args.dest_namespace {
        destination["namespace"] = namespace.clone().into();
    }
    let mut spec = serde_json::json!({"project": args.project, "source": source, "destination": destination});
    let mut policy = serde_json::Map::new();
    match args.sync_policy.as_deref() {
        Some("automated" | "auto" | "automatic") => {
            policy.insert(
                "automated".into(),
                serde_json::json!({"prune": args.auto_prune, "selfHeal": args.self_heal}),
            );
        }
        None | Some("none" | "manual") => {}
        Some(other) => bail!("--sync-policy {other}: expected automated or none"),
    }
    if !args.sync_options.is_empty() {
        policy.insert("syncOptions".into(), args.sync_options.clone().into());
    }
    if !policy.is_empty() {
        spec["syncPolicy"] = Value::Object(policy);
    }
    Ok(serde_json::json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": name}, "spec": spec}))
}

async fn sync(client: &Client, args: SyncArgs) -> Result<ExitCode> {
    let before = typed(&args.name, client.get_application(&args.name, None).await?)?;
    let strategy = match (args.strategy, args.force) {
        (Some(Strategy::Hook), force) => Some(serde_json::json!({"hook": {"force": force}})),
        (Some(Strategy::Apply), force) | (None, force @ true) => {
            Some(serde_json::json!({"apply": {"force": force}}))
        }
        (None, false) => None,
    };
    let request = SyncRequest {
        name: args.name.clone(),
        revision: args.revision,
        prune: args.prune,
        dry_run: args.dry_run,
        resources: args.resources,
        sync_options: (!args.sync_options.is_empty()).then_some(SyncOptions { items: args.sync_options }),
        strategy,
    };
    let requested = client.sync(&args.name, &request).await?;
    if args.no_wait {
        outln!("sync of {} requested", args.name)?;
        return Ok(ExitCode::SUCCESS);
    }
    let requested = serde_json::from_value::<Application>(requested).ok();
    wait_for_operation(client, &args.name, RequestedOperation::new(&before, requested.as_ref()), args.timeout)
        .await
}

/// Tells the operation a command requested from the one before it. The controller clears `operation` when it
/// starts one; start times have one-second resolution and the server answers from a cache, so "ours" means:
/// the request was seen pending, or the state started at another time, or the object changed after the
/// request was written (its resourceVersion, an etcd revision, is past the request's).
struct RequestedOperation {
    before_started: Option<String>,
    requested_version: Option<u64>,
    seen_pending: bool,
}

fn resource_version(app: &Application) -> Option<u64> {
    app.metadata.resource_version.as_deref()?.parse().ok()
}

impl RequestedOperation {
    /// `before`: the app read before the request; `requested`: the server's answer to it.
    fn new(before: &Application, requested: Option<&Application>) -> Self {
        RequestedOperation {
            before_started: before
                .status
                .as_ref()
                .and_then(|s| s.operation_state.as_ref())
                .map(|o| o.started_at.0.to_string()),
            requested_version: requested.and_then(resource_version),
            seen_pending: false,
        }
    }

    fn observe(&mut self, app: &Application) {
        self.seen_pending |= app.operation.is_some();
    }

    /// Whether the app's operation state is the requested operation's (running or done).
    fn is_current(&self, app: &Application) -> bool {
        if app.operation.is_some() {
            return false;
        }
        let Some(state) = app.status.as_ref().and_then(|s| s.operation_state.as_ref()) else { return false };
        let changed_after_request =
            self.requested_version.zip(resource_version(app)).is_some_and(|(r, v)| v > r);
        self.seen_pending
            || changed_after_request
            || self.before_started.as_deref() != Some(state.started_at.0.to_string().as_str())
    }

    fn finished(&self, app: &Application) -> bool {
        let state = app.status.as_ref().and_then(|s| s.operation_state.as_ref());
        self.is_current(app)
            && state.is_some_and(|s| {
                s.finished_at.is_some() && !matches!(s.phase.as_str(), "Running" | "Terminating")
            })
    }
}

/// Polls until the requested operation finishes, printing its progress; fails when it did not succeed.
async fn wait_for_operation(
    client: &Client,
    name: &str,
    mut requested: RequestedOperation,
    timeout: u64,
) -> Result<ExitCode> {
    let deadline = (timeout > 0).then(|| Instant::now() + Duration::from_secs(timeout));
    let mut progress = SyncProgress::default();
    loop {
        let app = typed(name, client.get_application(name, None).await?)?;
        requested.observe(&app);
        let current = requested.is_current(&app);
        // The old operation's results are not this one's progress.
        if current {
            for line in progress.update(&app) {
                outln!("{line}")?;
            }
        }
        let state = app.status.as_ref().and_then(|s| s.operation_state.as_ref());
        if let Some(state) = state.filter(|_| requested.finished(&app)) {
            outln!()?;
            out!("{}", app_view::operation_summary(state))?;
            outln!()?;
            out!("{}", app_view::resources_table(&app))?;
            return Ok(match state.phase.as_str() {
                "Succeeded" => ExitCode::SUCCESS,
                phase => {
                    eprintln!(
                        "error: the operation on {name} ended {phase}: {}",
                        state.message.as_deref().unwrap_or("no message")
                    );
                    ExitCode::FAILURE
                }
            });
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let phase = state.filter(|_| current).map_or("not started".to_string(), |o| o.phase.clone());
            bail!("timed out after {timeout}s waiting for the operation on {name} to finish (it is {phase})");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// The history entry before the newest one, as `argocd app rollback NAME` picks it.
fn previous_deployment(app: &Application) -> Option<i64> {
    let mut ids: Vec<i64> = app.status.iter().flat_map(|s| &s.history).map(|h| h.id).collect();
    ids.sort_unstable();
    ids.iter().rev().nth(1).copied()
}

async fn wait(
    client: &Client,
    name: &str,
    sync: bool,
    health: bool,
    operation: bool,
    timeout: u64,
) -> Result<ExitCode> {
    let deadline = (timeout > 0).then(|| Instant::now() + Duration::from_secs(timeout));
    loop {
        let app = typed(name, client.get_application(name, None).await?)?;
        let missing = app_view::waiting_for(&app, sync, health, operation);
        if missing.is_empty() {
            out!("{}", app_view::summary(&app, client.base(), name))?;
            outln!()?;
            out!("{}", app_view::resources_table(&app))?;
            return Ok(ExitCode::SUCCESS);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            eprintln!(
                "error: timed out after {timeout}s waiting for application {name}: {}",
                missing.join("; ")
            );
            return Ok(ExitCode::FAILURE);
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Prints the differences of every managed resource; true when there are any.
async fn diff(client: &Client, name: &str) -> Result<bool> {
    let resources = client.managed_resources(name).await?;
    let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let (text, differs) = render_diffs(&resources, colour)?;
    out!("{text}")?;
    Ok(differs)
}

/// The diff of each resource, live (normalised) against desired (predicted), as YAML.
fn render_diffs(resources: &ManagedResources, colour: bool) -> Result<(String, bool)> {
    let mut out = String::new();
    let mut differs = false;
    for item in resources.items.iter().filter(|i| !i.hook) {
        let live = state_yaml(item, &item.normalized_live_state, &item.live_state, "live")?;
        let desired = state_yaml(item, &item.predicted_live_state, &item.target_state, "desired")?;
        if let Some(text) = crate::diff::unified(&live, &desired, "live", "desired", colour) {
            differs = true;
            let header =
                format!("===== {}/{} {}/{} ======", item.group, item.kind, item.namespace, item.name);
            out.push_str(&if colour { format!("\x1b[1m{header}\x1b[0m") } else { header });
            out.push('\n');
            out.push_str(&text);
        }
    }
    Ok((out, differs))
}

/// A state as YAML: `preferred` (normalised or predicted) when the server sent it, else `fallback`.
fn state_yaml(item: &ResourceDiff, preferred: &str, fallback: &str, which: &str) -> Result<String> {
    let text = if preferred.trim().is_empty() { fallback } else { preferred };
    if text.trim().is_empty() || text.trim() == "null" {
        return Ok(String::new());
    }
    let value: Value = serde_json::from_str(text).with_context(|| {
        format!("the {which} state of {}/{} {} is not JSON", item.group, item.kind, item.name)
    })?;
    to_yaml(&value)
}

/// Manifests (JSON documents) as one YAML stream.
fn manifests_yaml(documents: &[String]) -> Result<String> {
    let mut out = String::new();
    for document in documents.iter().filter(|d| !d.trim().is_empty() && d.trim() != "null") {
        let value: Value =
            serde_json::from_str(document).context("a manifest from the server is not JSON")?;
        out.push_str("---\n");
        out.push_str(&to_yaml(&value)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(kind: &str, live: Value, predicted: Value) -> ResourceDiff {
        ResourceDiff {
            group: "apps".into(),
            kind: kind.into(),
            namespace: "web".into(),
            name: "web".into(),
            live_state: live.to_string(),
            normalized_live_state: live.to_string(),
            predicted_live_state: predicted.to_string(),
            target_state: predicted.to_string(),
            ..Default::default()
        }
    }

    #[test]
    fn diff_reports_differences_so_the_exit_code_is_one() {
        let resources = ManagedResources {
            items: vec![
                resource(
                    "Deployment",
                    serde_json::json!({"spec": {"replicas": 1}}),
                    serde_json::json!({"spec": {"replicas": 3}}),
                ),
                resource(
                    "Service",
                    serde_json::json!({"spec": {"a": 1}}),
                    serde_json::json!({"spec": {"a": 1}}),
                ),
            ],
        };
        let (text, differs) = render_diffs(&resources, false).unwrap();
        assert!(differs);
        assert_eq!(
            text,
            "===== apps/Deployment web/web ======\n--- live\n+++ desired\n@@ -1,2 +1,2 @@\n spec:\n-  replicas: 1\n+  replicas: 3\n"
        );
    }

    #[test]
    fn no_differences_print_nothing_so_the_exit_code_is_zero() {
        let same = serde_json::json!({"spec": {"replicas": 1}});
        let (text, differs) = render_diffs(
            &ManagedResources { items: vec![resource("Deployment", same.clone(), same)] },
            false,
        )
        .unwrap();
        assert!(!differs);
        assert_eq!(text, "");
    }

    #[test]
    fn a_missing_live_object_is_all_additions_and_hooks_are_skipped() {
        let mut missing = resource("Deployment", Value::Null, serde_json::json!({"kind": "Deployment"}));
        missing.normalized_live_state = String::new();
        missing.live_state = "null".into();
        let mut hook = resource("Job", Value::Null, serde_json::json!({"kind": "Job"}));
        hook.hook = true;
        let (text, differs) = render_diffs(&ManagedResources { items: vec![missing, hook] }, false).unwrap();
        assert!(differs);
        assert!(text.ends_with("@@ -0,0 +1,1 @@\n+kind: Deployment\n"), "{text}");
        assert!(!text.contains("Job"), "{text}");
    }

    #[test]
    fn a_state_that_is_not_json_is_an_error_so_the_exit_code_is_two() {
        let mut broken = resource("Deployment", Value::Null, Value::Null);
        broken.predicted_live_state = "{not json".into();
        let error = render_diffs(&ManagedResources { items: vec![broken] }, false).unwrap_err();
        assert_eq!(error.to_string(), "the desired state of apps/Deployment web is not JSON");
    }

    fn app_with(operation: bool, version: &str, started: &str, finished: bool, phase: &str) -> Application {
        let mut state = serde_json::json!({"operation": {"sync": {}}, "phase": phase, "startedAt": started});
        if finished {
            state["finishedAt"] = "2024-05-01T10:00:09Z".into();
        }
        let mut app = serde_json::json!({"metadata": {"name": "web", "resourceVersion": version},
            "spec": {"destination": {}}, "status": {"operationState": state}});
        if operation {
            app["operation"] = serde_json::json!({"sync": {}});
        }
        serde_json::from_value(app).unwrap()
    }

    #[test]
    fn an_operation_counts_as_finished_only_when_it_is_the_requested_one() {
        let old = "2024-05-01T10:00:00Z";
        let before = app_with(false, "10", old, true, "Succeeded");
        let requested = app_with(true, "12", old, true, "Succeeded");
        let watch = RequestedOperation::new(&before, Some(&requested));
        // The server's cache still shows the previous, finished operation.
        assert!(!watch.finished(&app_with(false, "11", old, true, "Succeeded")));
        // Running, then done within the same second as the previous one: the newer object tells them apart.
        assert!(!watch.finished(&app_with(false, "13", old, false, "Running")));
        assert!(watch.finished(&app_with(false, "14", old, true, "Failed")));
        // Without versions: a new start time, or the request seen pending.
        let mut watch = RequestedOperation::new(&before, None);
        assert!(!watch.finished(&app_with(false, "x", old, true, "Succeeded")));
        assert!(watch.finished(&app_with(false, "x", "2024-05-01T10:00:05Z", true, "Succeeded")));
        watch.observe(&requested);
        assert!(!watch.finished(&requested), "still pending");
        assert!(watch.finished(&app_with(false, "x", old, true, "Succeeded")));
    }

    #[test]
    fn rollback_without_an_id_picks_the_deployment_before_the_last() {
        let app: Application = serde_json::from_value(serde_json::json!({"metadata": {"name": "web"}, "spec": {"destination": {}},
            "status": {"history": [
                {"id": 3, "deployedAt": "2024-05-01T10:00:00Z"}, {"id": 5, "deployedAt": "2024-05-02T10:00:00Z"},
                {"id": 4, "deployedAt": "2024-05-01T12:00:00Z"}]}}))
        .unwrap();
        assert_eq!(previous_deployment(&app), Some(4));
    }

    #[test]
    fn create_reads_every_application_of_a_file_and_refuses_other_kinds() {
        let apps = parse_manifests("apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: a\n---\nkind: Application\nmetadata:\n  name: b\n", "Application").unwrap();
        assert_eq!(apps.len(), 2);
        let error = parse_manifests("kind: AppProject\nmetadata:\n  name: p\n", "Application").unwrap_err();
        assert_eq!(error.to_string(), "document 1 is of kind AppProject, not Application");
        assert!(parse_manifests("", "Application").is_err());
    }

    #[test]
    fn list_output_prints_names_json_or_the_table() {
        let items = vec![
            serde_json::json!({"metadata": {"name": "web"}, "spec": {"destination": {"namespace": "web"}}}),
        ];
        assert_eq!(list_output(&items, None, Some(Output::Name)).unwrap(), "web\n");
        let json: Value =
            serde_json::from_str(&list_output(&items, None, Some(Output::Json)).unwrap()).unwrap();
        assert_eq!(json[0]["metadata"]["name"], "web");
        assert!(list_output(&items, None, None).unwrap().starts_with("NAME  CLUSTER"));
        let outside = vec![serde_json::json!({"metadata": {"name": "web", "namespace": "team-a"},
            "spec": {"destination": {"namespace": "web"}}})];
        assert_eq!(list_output(&outside, Some("argocd"), Some(Output::Name)).unwrap(), "team-a/web\n");
    }

    #[test]
    fn manifests_print_as_one_yaml_stream() {
        let text = manifests_yaml(&[
            r#"{"kind":"Service"}"#.into(),
            "null".into(),
            r#"{"kind":"Deployment"}"#.into(),
        ])
        .unwrap();
        assert_eq!(text, "---\nkind: Service\n---\nkind: Deployment\n");
    }
}
