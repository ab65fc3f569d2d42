//! `berth proj list`: the AppProjects, as `argocd proj list` prints them.

use crate::client::ConnectionArgs;
use crate::output::{Output, Table, or_none, structured};
use anyhow::{Context as _, Result};
use berth_api::AppProject;
use berth_api::project::GroupKind;
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
}

pub async fn run(args: ProjArgs) -> Result<()> {
    let client = args.connection.client()?;
    match args.command {
        ProjCommand::List { output } => {
            let items = client.list_projects().await?;
            print!("{}", list_output(&items, output)?);
        }
    }
    Ok(())
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
