//! `berth proj list`: the AppProjects, as `argocd proj list` prints them; `berth proj windows`: a
//! project's sync windows, listed and edited as `argocd proj windows` does (through the project's
//! `PUT /api/v1/projects/{name}`, so the server checks them as Argo CD's does); `berth proj role`: its
//! roles and their tokens (in `proj_role`).

use crate::client::ConnectionArgs;
use crate::output::{Output, Table, or_none, out, outln, structured};
use anyhow::{Context as _, Result, bail};
use berth_api::AppProject;
use berth_api::project::{GroupKind, SyncWindow};
use berth_controller::windows::{self, Window};
use clap::{Args, Subcommand};
use serde_json::Value;

#[derive(Args, Debug)]
pub struct ProjArgs {
    #[command(flatten)]
    connection: ConnectionArgs,
    #[command(subcommand)]
    command: ProjCommand,
}

#[derive(Subcommand, Debug)]
enum ProjCommand {
    /// List projects.
    List {
        #[arg(short, long, value_enum)]
        output: Option<Output>,
    },
    /// Manage a project's sync windows (the times its applications may or may not sync).
    #[command(subcommand)]
    Windows(Box<WindowsCommand>),
    /// Manage a project's roles: their policies, SSO groups and tokens.
    #[command(subcommand)]
    Role(Box<crate::proj_role::RoleCommand>),
}

#[derive(Subcommand, Debug)]
enum WindowsCommand {
    /// List a project's sync windows; ID is what delete and update take.
    List {
        project: String,
        #[arg(short, long, value_enum)]
        output: Option<Output>,
    },
    /// Add a sync window to a project.
    Add {
        project: String,
        /// allow or deny.
        #[arg(short, long)]
        kind: String,
        /// When the window opens, in cron format (e.g. "0 22 * * *").
        #[arg(long)]
        schedule: String,
        /// How long it stays open (e.g. 1h, 30m, 1h30m).
        #[arg(long)]
        duration: String,
        #[command(flatten)]
        selectors: Selectors,
        /// Let manual syncs through the window.
        #[arg(long)]
        manual_sync: bool,
        /// Let a sync already under way go on past the window: on a deny window, one that started before it
        /// opened; on an allow window, one that started in it, after it closes.
        #[arg(long)]
        sync_overrun: bool,
        /// The zone whose clock the schedule is read on (IANA name).
        #[arg(long, default_value = "UTC")]
        time_zone: String,
        /// Select applications only when every list given selects them (default: any one).
        #[arg(long)]
        use_and_operator: bool,
        /// A note on the window (at most 255 characters).
        #[arg(long)]
        description: Option<String>,
    },
    /// Delete a project's sync window.
    Delete { project: String, id: usize },
    /// Let manual syncs through a sync window.
    EnableManualSync { project: String, id: usize },
    /// Hold manual syncs in a sync window too.
    DisableManualSync { project: String, id: usize },
    /// Let a sync already under way go on past a sync window (a deny window's start, an allow window's end).
    EnableSyncOverrun { project: String, id: usize },
    /// Hold a sync under way at a sync window's boundary too.
    DisableSyncOverrun { project: String, id: usize },
    /// Change a project's sync window: what is given replaces what it had (lists whole).
    Update {
        project: String,
        id: usize,
        /// When the window opens, in cron format.
        #[arg(long)]
        schedule: Option<String>,
        /// How long it stays open.
        #[arg(long)]
        duration: Option<String>,
        #[command(flatten)]
        selectors: Selectors,
        /// The zone whose clock the schedule is read on (kept when not given).
        #[arg(long)]
        time_zone: Option<String>,
        /// A note on the window (at most 255 characters).
        #[arg(long)]
        description: Option<String>,
    },
}

/// Which applications a window applies to; wildcards as in Argo CD (`prod-*`).
#[derive(Args, Debug, Default)]
struct Selectors {
    /// Application names, comma separated.
    #[arg(long, value_delimiter = ',')]
    applications: Vec<String>,
    /// Destination namespaces, comma separated.
    #[arg(long, value_delimiter = ',')]
    namespaces: Vec<String>,
    /// Destination clusters (server URL or name), comma separated.
    #[arg(long, value_delimiter = ',')]
    clusters: Vec<String>,
}

impl Selectors {
    fn is_empty(&self) -> bool {
        self.applications.is_empty() && self.namespaces.is_empty() && self.clusters.is_empty()
    }

    /// Sets the lists given on `window`, each replacing the one it had.
    fn set_on(self, window: &mut Value) {
        for (key, list) in [
            ("applications", self.applications),
            ("namespaces", self.namespaces),
            ("clusters", self.clusters),
        ] {
            if !list.is_empty() {
                window[key] = list.into();
            }
        }
    }
}

pub async fn run(args: ProjArgs) -> Result<()> {
    let client = args.connection.client()?;
    match args.command {
        ProjCommand::List { output } => {
            let items = client.list_projects().await?;
            out!("{}", list_output(&items, output)?)?;
        }
        ProjCommand::Role(command) => crate::proj_role::run(&client, *command).await?,
        ProjCommand::Windows(command) => match *command {
            WindowsCommand::List { project, output } => {
                let project = client.get_project(&project).await?;
                let now = k8s_openapi::jiff::Timestamp::now();
                out!("{}", windows_output(&project["spec"]["syncWindows"], output, now)?)?;
            }
            command => {
                let name = command.project().to_string();
                let mut project = client.get_project(&name).await?;
                let message = edit_windows(&mut project, command)?;
                client.update_project(&name, &project).await?;
                outln!("{message}")?;
            }
        },
    }
    Ok(())
}

impl WindowsCommand {
    fn project(&self) -> &str {
        match self {
            WindowsCommand::List { project, .. }
            | WindowsCommand::Add { project, .. }
            | WindowsCommand::Delete { project, .. }
            | WindowsCommand::EnableManualSync { project, .. }
            | WindowsCommand::DisableManualSync { project, .. }
            | WindowsCommand::EnableSyncOverrun { project, .. }
            | WindowsCommand::DisableSyncOverrun { project, .. }
            | WindowsCommand::Update { project, .. } => project,
        }
    }
}

/// Makes the change `command` asks of `project`'s sync windows (as JSON, so fields berth does not know
/// stay), checks them as the server will, and says what was done.
fn edit_windows(project: &mut Value, command: WindowsCommand) -> Result<String> {
    let name = project["metadata"]["name"].as_str().unwrap_or_default().to_string();
    let mut list = project["spec"]["syncWindows"].as_array().cloned().unwrap_or_default();
    let missing = |id: usize| {
        anyhow::anyhow!("project '{name}' has no sync window {id} (see berth proj windows list {name})")
    };
    let (id, done) = match command {
        WindowsCommand::List { .. } => unreachable!("listing changes nothing"),
        WindowsCommand::Add {
            kind,
            schedule,
            duration,
            selectors,
            manual_sync,
            sync_overrun,
            time_zone,
            use_and_operator,
            description,
            ..
        } => {
            if selectors.is_empty() {
                bail!("a sync window needs --applications, --namespaces or --clusters");
            }
            let mut window = serde_json::json!({"kind": kind, "schedule": schedule, "duration": duration,
                "timeZone": time_zone});
            // As Argo CD stores them: flags that are off are left out.
            for (key, on) in [
                ("manualSync", manual_sync),
                ("syncOverrun", sync_overrun),
                ("andOperator", use_and_operator),
            ] {
                if on {
                    window[key] = true.into();
                }
            }
            selectors.set_on(&mut window);
            if let Some(description) = description {
                window["description"] = description.into();
            }
            list.push(window);
            (list.len() - 1, "added")
        }
        WindowsCommand::Delete { id, .. } => {
            if id >= list.len() {
                return Err(missing(id));
            }
            list.remove(id);
            (id, "deleted")
        }
        WindowsCommand::EnableManualSync { id, .. } | WindowsCommand::DisableManualSync { id, .. } => {
            let enable = matches!(command, WindowsCommand::EnableManualSync { .. });
            list.get_mut(id).ok_or_else(|| missing(id))?["manualSync"] = enable.into();
            (id, if enable { "now lets manual syncs through" } else { "now holds manual syncs too" })
        }
        WindowsCommand::EnableSyncOverrun { id, .. } | WindowsCommand::DisableSyncOverrun { id, .. } => {
            let enable = matches!(command, WindowsCommand::EnableSyncOverrun { .. });
            list.get_mut(id).ok_or_else(|| missing(id))?["syncOverrun"] = enable.into();
            let done = if enable {
                "now lets a sync under way run past it"
            } else {
                "now holds a sync under way at its boundary"
            };
            (id, done)
        }
        WindowsCommand::Update { id, schedule, duration, selectors, time_zone, description, .. } => {
            let window = list.get_mut(id).ok_or_else(|| missing(id))?;
            if schedule.is_none()
                && duration.is_none()
                && selectors.is_empty()
                && time_zone.is_none()
                && description.is_none()
            {
                bail!(
                    "nothing to update: give --schedule, --duration, --applications, --namespaces, --clusters, --time-zone or --description"
                );
            }
            for (key, value) in [
                ("schedule", schedule),
                ("duration", duration),
                ("timeZone", time_zone),
                ("description", description),
            ] {
                if let Some(value) = value {
                    window[key] = value.into();
                }
            }
            selectors.set_on(window);
            (id, "updated")
        }
    };
    let typed: Vec<SyncWindow> =
        serde_json::from_value(Value::Array(list.clone())).context("reading the project's sync windows")?;
    windows::validate(&typed)?;
    project["spec"]["syncWindows"] = Value::Array(list);
    Ok(format!("sync window {id} of project '{name}' {done}"))
}

/// `argocd proj windows list`'s table (with DESCRIPTION when wide), or the windows as JSON or YAML; with
/// `-o name`, their IDs. STATUS is whether each is open `now`.
fn windows_output(list: &Value, output: Option<Output>, now: k8s_openapi::jiff::Timestamp) -> Result<String> {
    let list = if list.is_null() { Value::Array(vec![]) } else { list.clone() };
    if let Some(text) = structured(&list, output)? {
        return Ok(text);
    }
    let specs: Vec<SyncWindow> =
        serde_json::from_value(list).context("reading the project's sync windows")?;
    if output == Some(Output::Name) {
        return Ok((0..specs.len()).map(|id| format!("{id}\n")).collect());
    }
    let wide = output == Some(Output::Wide);
    let mut header = vec![
        "ID",
        "STATUS",
        "KIND",
        "SCHEDULE",
        "DURATION",
        "APPLICATIONS",
        "NAMESPACES",
        "CLUSTERS",
        "MANUALSYNC",
        "SYNCOVERRUN",
        "TIMEZONE",
        "USEANDOPERATOR",
    ];
    if wide {
        header.push("DESCRIPTION");
    }
    let mut table = Table::new(header);
    let listed = |list: &[String]| if list.is_empty() { "-".to_string() } else { list.join(",") };
    let enabled = |on: Option<bool>| (if on.unwrap_or(false) { "Enabled" } else { "Disabled" }).to_string();
    for (id, spec) in specs.iter().enumerate() {
        let status = match Window::parse(id, spec) {
            Ok(window) if window.is_active(now) => "Active",
            Ok(_) => "Inactive",
            Err(_) => "Invalid",
        };
        let mut row = vec![
            id.to_string(),
            status.to_string(),
            spec.kind.clone().unwrap_or_default(),
            spec.schedule.clone().unwrap_or_default(),
            spec.duration.clone().unwrap_or_default(),
            listed(&spec.applications),
            listed(&spec.namespaces),
            listed(&spec.clusters),
            enabled(spec.manual_sync),
            enabled(spec.sync_overrun),
            spec.time_zone.clone().unwrap_or_default(),
            enabled(spec.and_operator),
        ];
        if wide {
            row.push(or_none(spec.description.as_deref().unwrap_or_default()));
        }
        table.row(row);
    }
    Ok(table.render())
}

fn list_output(items: &[Value], output: Option<Output>) -> Result<String> {
    if let Some(text) = structured(items, output)? {
        return Ok(text);
    }
    let projects: Vec<AppProject> = items
        .iter()
        .map(|raw| serde_json::from_value(raw.clone()).context("reading a project from the server"))
        .collect::<Result<_>>()?;
    Ok(match output {
        Some(Output::Name) => {
            projects.iter().map(|p| format!("{}\n", p.metadata.name.as_deref().unwrap_or_default())).collect()
        }
        _ => projects_table(&projects),
    })
}

/// One item as itself, several as a count (`3 destinations`), none as `<none>`.
fn one_or_count(items: Vec<String>, noun: &str) -> String {
    match items.as_slice() {
        [] => "<none>".into(),
        [one] => one.clone(),
        many => format!("{} {noun}", many.len()),
    }
}

fn group_kinds(list: &[GroupKind]) -> String {
    one_or_count(list.iter().map(|gk| format!("{}/{}", gk.group, gk.kind)).collect(), "resources")
}

fn projects_table(projects: &[AppProject]) -> String {
    let mut table = Table::new([
        "NAME",
        "DESCRIPTION",
        "DESTINATIONS",
        "SOURCES",
        "CLUSTER-RESOURCE-WHITELIST",
        "NAMESPACE-RESOURCE-BLACKLIST",
        "SIGNATURE-KEYS",
        "ORPHANED-RESOURCES",
    ]);
    for p in projects {
        let spec = &p.spec;
        let destinations = spec
            .destinations
            .iter()
            .map(|d| {
                let cluster = d.server.as_deref().or(d.name.as_deref()).unwrap_or_default();
                format!("{cluster},{}", d.namespace.as_deref().unwrap_or_default())
            })
            .collect();
        let orphaned = match &spec.orphaned_resources {
            None => "disabled".to_string(),
            Some(o) => format!("enabled (warn={})", o.warn.unwrap_or(false)),
        };
        table.row([
            p.metadata.name.clone().unwrap_or_default(),
            or_none(spec.description.as_deref().unwrap_or_default()),
            one_or_count(destinations, "destinations"),
            one_or_count(spec.source_repos.clone(), "repos"),
            group_kinds(&spec.cluster_resource_whitelist),
            group_kinds(&spec.namespace_resource_blacklist),
            one_or_count(spec.signature_keys.iter().map(|k| k.key_id.clone()).collect(), "key(s)"),
            orphaned,
        ]);
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// `berth proj windows ARGS…` as clap reads it.
    fn command(args: &[&str]) -> WindowsCommand {
        #[derive(Parser)]
        struct Cli {
            #[command(subcommand)]
            command: ProjCommand,
        }
        let argv = ["proj", "windows"].iter().chain(args).copied();
        match Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("{e}")).command {
            ProjCommand::Windows(command) => *command,
            other => panic!("{other:?}"),
        }
    }

    fn project(windows: Value) -> Value {
        serde_json::json!({"metadata": {"name": "dev-team", "resourceVersion": "7"},
            "spec": {"sourceRepos": ["*"], "syncWindows": windows}})
    }

    fn edit(project: &mut Value, args: &[&str]) -> Result<String> {
        edit_windows(project, command(args))
    }

    const NOON: &str = "2025-06-02T12:00:00Z";

    #[test]
    fn windows_list_as_argocd_proj_windows_list() {
        let list = serde_json::json!([
            {"kind": "deny", "schedule": "* * * * *", "duration": "1h", "applications": ["*"], "timeZone": "UTC"},
            {"kind": "allow", "schedule": "0 22 * * *", "duration": "1h", "namespaces": ["web", "api"],
             "clusters": ["prod"], "manualSync": true, "syncOverrun": true, "andOperator": true,
             "description": "nightly"},
            {"kind": "deny", "schedule": "@daily", "duration": "1h", "applications": ["*"]},
        ]);
        assert_eq!(
            windows_output(&list, None, NOON.parse().unwrap()).unwrap(),
            "ID  STATUS    KIND   SCHEDULE    DURATION  APPLICATIONS  NAMESPACES  CLUSTERS  MANUALSYNC  SYNCOVERRUN  TIMEZONE  USEANDOPERATOR\n\
             0   Active    deny   * * * * *   1h        *             -           -         Disabled    Disabled     UTC       Disabled\n\
             1   Inactive  allow  0 22 * * *  1h        -             web,api     prod      Enabled     Enabled                Enabled\n\
             2   Invalid   deny   @daily      1h        *             -           -         Disabled    Disabled               Disabled\n"
        );
        let wide = windows_output(&list, Some(Output::Wide), NOON.parse().unwrap()).unwrap();
        assert!(wide.lines().next().unwrap().ends_with("USEANDOPERATOR  DESCRIPTION"), "{wide}");
        assert!(wide.lines().nth(2).unwrap().ends_with("nightly"), "{wide}");
        let json = windows_output(&list, Some(Output::Json), NOON.parse().unwrap()).unwrap();
        assert_eq!(serde_json::from_str::<Value>(&json).unwrap(), list);
        assert_eq!(windows_output(&Value::Null, Some(Output::Json), NOON.parse().unwrap()).unwrap(), "[]\n");
        assert_eq!(windows_output(&list, Some(Output::Name), NOON.parse().unwrap()).unwrap(), "0\n1\n2\n");
        assert_eq!(
            windows_output(&Value::Null, None, NOON.parse().unwrap()).unwrap().lines().count(),
            1,
            "a header only"
        );
    }

    #[test]
    fn add_appends_a_window_with_argocds_defaults_and_keeps_the_rest() {
        let mut p = project(serde_json::json!([{"kind": "deny", "schedule": "0 1 * * *", "duration": "1h",
            "applications": ["*"], "futureField": true}]));
        let done = edit(
            &mut p,
            &[
                "add",
                "dev-team",
                "--kind",
                "allow",
                "--schedule",
                "0 22 * * *",
                "--duration",
                "1h30m",
                "--applications",
                "web,api-*",
                "--namespaces",
                "prod",
                "--description",
                "Ticket 123",
            ],
        )
        .unwrap();
        assert_eq!(done, "sync window 1 of project 'dev-team' added");
        assert_eq!(
            p["spec"]["syncWindows"][1],
            serde_json::json!({"kind": "allow", "schedule": "0 22 * * *",
            "duration": "1h30m", "applications": ["web", "api-*"], "namespaces": ["prod"],
            "timeZone": "UTC", "description": "Ticket 123"})
        );
        assert_eq!(p["spec"]["syncWindows"][0]["futureField"], true, "a field berth does not know stays");
        assert_eq!(p["metadata"]["resourceVersion"], "7", "the update is conditional on what was read");
        assert_eq!(p["spec"]["sourceRepos"], serde_json::json!(["*"]));
    }

    #[test]
    fn add_refuses_what_the_server_would_refuse_naming_the_field() {
        let mut p = project(Value::Null);
        let e =
            edit(&mut p, &["add", "dev-team", "-k", "deny", "--schedule", "0 22 * * *", "--duration", "1h"])
                .unwrap_err();
        assert_eq!(e.to_string(), "a sync window needs --applications, --namespaces or --clusters");
        // kind, schedule, duration and extra flags of a window for every cluster.
        let mut refusal = |kind: &str, schedule: &str, duration: &str, extra: &[&str]| {
            let mut args =
                vec!["add", "dev-team", "-k", kind, "--schedule", schedule, "--duration", duration];
            args.extend(["--clusters", "*"]);
            args.extend(extra);
            edit(&mut p, &args).unwrap_err().to_string()
        };
        assert_eq!(
            refusal("deny", "0 25 * * *", "1h", &[]),
            "sync window 0: schedule: hour field '25': 25 is above the maximum 23"
        );
        let e = refusal("deny", "0 2 * * *", "1d", &[]);
        assert!(e.starts_with("sync window 0: duration: '1d' is not a duration"), "{e}");
        assert_eq!(
            refusal("block", "0 2 * * *", "1h", &[]),
            "sync window 0: kind: 'block' is neither allow nor deny"
        );
        let e = refusal("deny", "0 2 * * *", "1h", &["--time-zone", "Mars/Olympus"]);
        assert!(e.starts_with("sync window 0: timeZone: unknown time zone 'Mars/Olympus'"), "{e}");
        assert!(p["spec"]["syncWindows"].is_null(), "nothing is changed by a refusal");
    }

    #[test]
    fn delete_manual_sync_and_update_change_the_window_by_id() {
        let mut p = project(serde_json::json!([
            {"kind": "deny", "schedule": "0 1 * * *", "duration": "1h", "applications": ["*"]},
            {"kind": "allow", "schedule": "0 2 * * *", "duration": "1h", "namespaces": ["a", "b"], "timeZone": "Europe/Berlin"},
        ]));
        assert_eq!(
            edit(&mut p, &["enable-manual-sync", "dev-team", "1"]).unwrap(),
            "sync window 1 of project 'dev-team' now lets manual syncs through"
        );
        assert_eq!(p["spec"]["syncWindows"][1]["manualSync"], true);
        edit(&mut p, &["disable-manual-sync", "dev-team", "1"]).unwrap();
        assert_eq!(p["spec"]["syncWindows"][1]["manualSync"], false);
        edit(&mut p, &["update", "dev-team", "1", "--schedule", "0 3 * * *", "--namespaces", "c"]).unwrap();
        assert_eq!(
            p["spec"]["syncWindows"][1],
            serde_json::json!({"kind": "allow", "schedule": "0 3 * * *",
            "duration": "1h", "namespaces": ["c"], "timeZone": "Europe/Berlin", "manualSync": false}),
            "the time zone stays unless given"
        );
        let e = edit(&mut p, &["update", "dev-team", "1"]).unwrap_err();
        assert!(e.to_string().starts_with("nothing to update"), "{e}");
        let e = edit(&mut p, &["update", "dev-team", "0", "--duration", "soon"]).unwrap_err();
        assert!(e.to_string().starts_with("sync window 0: duration:"), "{e}");
        assert_eq!(
            edit(&mut p, &["delete", "dev-team", "0"]).unwrap(),
            "sync window 0 of project 'dev-team' deleted"
        );
        assert_eq!(p["spec"]["syncWindows"].as_array().unwrap().len(), 1);
        assert_eq!(p["spec"]["syncWindows"][0]["schedule"], "0 3 * * *", "the others move up");
        let e = edit(&mut p, &["delete", "dev-team", "5"]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "project 'dev-team' has no sync window 5 (see berth proj windows list dev-team)"
        );
    }

    #[test]
    fn sync_overrun_is_set_by_add_and_switched_by_id_as_argocd_does() {
        let mut p = project(Value::Null);
        let add = |schedule| {
            ["add", "dev-team", "-k", "deny", "--schedule", schedule, "--duration", "1h", "--clusters", "*"]
        };
        edit(&mut p, &add("0 22 * * *")).unwrap();
        assert_eq!(p["spec"]["syncWindows"][0].get("syncOverrun"), None, "off is left out");
        edit(&mut p, &[&add("0 23 * * *")[..], &["--sync-overrun"]].concat()).unwrap();
        assert_eq!(p["spec"]["syncWindows"][1]["syncOverrun"], true);
        assert_eq!(
            edit(&mut p, &["enable-sync-overrun", "dev-team", "0"]).unwrap(),
            "sync window 0 of project 'dev-team' now lets a sync under way run past it"
        );
        assert_eq!(p["spec"]["syncWindows"][0]["syncOverrun"], true);
        assert_eq!(
            edit(&mut p, &["disable-sync-overrun", "dev-team", "1"]).unwrap(),
            "sync window 1 of project 'dev-team' now holds a sync under way at its boundary"
        );
        assert_eq!(p["spec"]["syncWindows"][1]["syncOverrun"], false);
        let e = edit(&mut p, &["enable-sync-overrun", "dev-team", "2"]).unwrap_err();
        assert!(e.to_string().starts_with("project 'dev-team' has no sync window 2"), "{e}");
    }

    #[test]
    fn projects_print_as_argocd_proj_list() {
        let items = vec![
            serde_json::json!({"metadata": {"name": "default"}, "spec": {"sourceRepos": ["*"],
                "destinations": [{"server": "*", "namespace": "*"}], "clusterResourceWhitelist": [{"group": "*", "kind": "*"}]}}),
            serde_json::json!({"metadata": {"name": "dev-team"}, "spec": {"description": "Dev",
                "sourceRepos": ["https://a", "https://b"],
                "destinations": [{"server": "s", "namespace": "a"}, {"server": "s", "namespace": "b"}],
                "orphanedResources": {"warn": true}}}),
        ];
        assert_eq!(
            list_output(&items, None).unwrap(),
            "NAME      DESCRIPTION  DESTINATIONS    SOURCES  CLUSTER-RESOURCE-WHITELIST  NAMESPACE-RESOURCE-BLACKLIST  SIGNATURE-KEYS  ORPHANED-RESOURCES\n\
             default   <none>       *,*             *        */*                         <none>                        <none>          disabled\n\
             dev-team  Dev          2 destinations  2 repos  <none>                      <none>                        <none>          enabled (warn=true)\n"
        );
        assert_eq!(list_output(&items, Some(Output::Name)).unwrap(), "default\ndev-team\n");
    }
}
