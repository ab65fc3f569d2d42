//! `berth cluster list|get|rm`: deployment destinations (in-cluster and Argo CD's `cluster` Secrets), as
//! `argocd cluster …`.

use crate::client::{Client, ConnectionArgs};
use crate::output::{Output, Table, structured, to_yaml};
use anyhow::{Context as _, Result};
use clap::{Args, Subcommand};
use serde_json::Value;

#[derive(Args, Debug)]
pub struct ClusterArgs {
    #[command(flatten)]
    connection: ConnectionArgs,
    #[command(subcommand)]
    command: ClusterCommand,
}

#[derive(Subcommand, Debug)]
enum ClusterCommand {
    /// List the clusters (in-cluster first).
    List {
        #[arg(short, long, value_enum)]
        output: Option<Output>,
    },
    /// Show a cluster (YAML by default; credentials are never shown).
    Get {
        /// The cluster's server URL, or its name.
        #[arg(value_name = "SERVER")]
        cluster: String,
        #[arg(short, long, value_enum)]
        output: Option<Output>,
    },
    /// Remove a cluster (the built-in in-cluster destination cannot be removed).
    Rm {
        /// The cluster's server URL, or its name.
        #[arg(value_name = "SERVER")]
        cluster: String,
        /// Do not ask for confirmation.
        #[arg(short, long)]
        yes: bool,
    },
}

pub async fn run(args: ClusterArgs) -> Result<()> {
    let client = args.connection.client()?;
    match args.command {
        ClusterCommand::List { output } => {
            let items = client.list_clusters().await?;
            print!("{}", list_output(&items, output)?);
        }
        ClusterCommand::Get { cluster, output } => {
            let server = resolve(&client, &cluster).await?;
            let cluster = client.get_cluster(&server).await?;
            print!("{}", get_output(&cluster, output)?);
        }
        ClusterCommand::Rm { cluster, yes } => {
            let server = resolve(&client, &cluster).await?;
            if !yes {
                let question = format!(
                    "Are you sure you want to remove '{server}'? Applications deploying to it will not sync any more. [y/n] "
                );
                if !crate::terminal::confirm(&question, "remove a cluster")? {
                    println!("The command to remove '{server}' was cancelled.");
                    return Ok(());
                }
            }
            client.delete_cluster(&server).await?;
            println!("Cluster '{server}' removed");
        }
    }
    Ok(())
}

/// A server URL as given, or the server of the cluster with that name.
async fn resolve(client: &Client, server_or_name: &str) -> Result<String> {
    if server_or_name.contains("://") {
        return Ok(server_or_name.to_string());
    }
    let clusters = client.list_clusters().await?;
    clusters
        .iter()
        .find(|c| c["name"].as_str() == Some(server_or_name))
        .and_then(|c| c["server"].as_str())
        .map(str::to_string)
        .with_context(|| format!("no cluster named '{server_or_name}': see `berth cluster list`"))
}

fn text(c: &Value, pointer: &str) -> String {
    c.pointer(pointer).and_then(Value::as_str).unwrap_or_default().to_string()
}

fn clusters_table(items: &[Value]) -> String {
    let mut table = Table::new(["SERVER", "NAME", "VERSION", "STATUS", "MESSAGE", "PROJECT"]);
    for c in items {
        let version = Some(text(c, "/serverVersion"))
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| text(c, "/info/serverVersion"));
        table.row([
            text(c, "/server"),
            text(c, "/name"),
            version,
            text(c, "/connectionState/status"),
            text(c, "/connectionState/message"),
            text(c, "/project"),
        ]);
    }
    table.render()
}

fn list_output(items: &[Value], output: Option<Output>) -> Result<String> {
    if let Some(text) = structured(items, output)? {
        return Ok(text);
    }
    Ok(match output {
        Some(Output::Name) => items.iter().map(|c| format!("{}\n", text(c, "/server"))).collect(),
        _ => clusters_table(items),
    })
}

/// `argocd cluster get` prints YAML unless asked otherwise.
fn get_output(cluster: &Value, output: Option<Output>) -> Result<String> {
    match output {
        None | Some(Output::Yaml) => to_yaml(cluster),
        Some(Output::Wide) => Ok(clusters_table(std::slice::from_ref(cluster))),
        Some(Output::Name) => Ok(format!("{}\n", text(cluster, "/server"))),
        Some(Output::Json) => structured(cluster, output).map(Option::unwrap_or_default),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn clusters_print_as_argocd_cluster_list() {
        let items = vec![
            json!({"server": "https://kubernetes.default.svc", "name": "in-cluster", "serverVersion": "1.31",
                "connectionState": {"status": "Successful"}}),
            json!({"server": "https://prod.example.com:6443", "name": "prod", "project": "team-a",
                "connectionState": {"status": "Unknown"}}),
        ];
        assert_eq!(
            list_output(&items, None).unwrap(),
            "SERVER                          NAME        VERSION  STATUS      MESSAGE  PROJECT\n\
             https://kubernetes.default.svc  in-cluster  1.31     Successful\n\
             https://prod.example.com:6443   prod                 Unknown              team-a\n"
        );
        assert_eq!(
            list_output(&items, Some(Output::Name)).unwrap(),
            "https://kubernetes.default.svc\nhttps://prod.example.com:6443\n"
        );
        assert_eq!(get_output(&items[1], Some(Output::Name)).unwrap(), "https://prod.example.com:6443\n");
        assert!(get_output(&items[1], None).unwrap().starts_with("connectionState:"));
    }
}
