//! `berth repo add|list|rm`: repository connections (Argo CD's `repository` Secrets), as `argocd repo …`.

use crate::client::{ClientError, ConnectionArgs};
use crate::output::{Output, Table, out, outln, structured};
use crate::terminal::prompt;
use anyhow::{Context as _, Result, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use std::io::IsTerminal as _;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct RepoArgs {
    #[command(flatten)]
    connection: ConnectionArgs,
    #[command(subcommand)]
    command: RepoCommand,
}

#[derive(Subcommand, Debug)]
enum RepoCommand {
    /// Add a repository connection (credentials are stored in a Secret, never shown again).
    Add(AddArgs),
    /// List the repository connections.
    List {
        #[arg(short, long, value_enum)]
        output: Option<Output>,
    },
    /// Remove a repository connection.
    Rm {
        /// The repository URL, as added.
        url: String,
    },
}

#[derive(Args, Debug)]
struct AddArgs {
    /// The repository URL: `https://…`, `git@host:org/repo.git`, or a Helm repository.
    url: String,
    #[arg(long)]
    username: Option<String>,
    /// Prompted for when --username is given without it and stdin is a terminal.
    #[arg(long)]
    password: Option<String>,
    /// A file holding the SSH private key for `git@…` URLs.
    #[arg(long, value_name = "PATH")]
    ssh_private_key_path: Option<PathBuf>,
    /// Do not verify the server's TLS certificate or SSH host key.
    #[arg(long)]
    insecure_skip_server_verification: bool,
    /// Fetch Git LFS objects too.
    #[arg(long)]
    enable_lfs: bool,
    /// A name for the repository (required for Helm repositories).
    #[arg(long)]
    name: Option<String>,
    /// Make the repository project-scoped.
    #[arg(long)]
    project: Option<String>,
    #[arg(long = "type", default_value = "git", value_parser = ["git", "helm", "oci"])]
    repo_type: String,
    /// Replace an existing repository with a different spec.
    #[arg(long)]
    upsert: bool,
}

pub async fn run(args: RepoArgs) -> Result<()> {
    match args.command {
        RepoCommand::Add(add) => {
            let repo = repository_request(add.spec()?)?;
            let client = args.connection.client()?;
            match client.create_repository(&repo, add.upsert).await {
                Ok(_) => outln!("Repository '{}' added", add.url)?,
                Err(ClientError::Api { status: 409, .. }) => bail!(
                    "repository '{}' already exists with a different spec: pass --upsert to replace it",
                    add.url
                ),
                Err(e) => return Err(e).with_context(|| format!("adding repository '{}'", add.url)),
            }
        }
        RepoCommand::List { output } => {
            let items = args.connection.client()?.list_repositories().await?;
            out!("{}", list_output(&items, output)?)?;
        }
        RepoCommand::Rm { url } => {
            args.connection.client()?.delete_repository(&url).await?;
            outln!("Repository '{url}' removed")?;
        }
    }
    Ok(())
}

/// What `repo add` sends, with the password asked for and the key file read.
struct RepoSpec {
    url: String,
    repo_type: String,
    name: Option<String>,
    project: Option<String>,
    username: Option<String>,
    password: Option<String>,
    ssh_private_key: Option<String>,
    insecure: bool,
    enable_lfs: bool,
}

impl AddArgs {
    fn spec(&self) -> Result<RepoSpec> {
        let password = match (&self.username, &self.password) {
            (Some(_), None) if std::io::stdin().is_terminal() => Some(prompt("Password: ", true)?),
            (Some(_), None) => bail!("--password is required with --username when stdin is not a terminal"),
            (_, password) => password.clone(),
        };
        let ssh_private_key = match &self.ssh_private_key_path {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("reading the SSH private key {}", path.display()))?,
            ),
            None => None,
        };
        Ok(RepoSpec {
            url: self.url.clone(),
            repo_type: self.repo_type.clone(),
            name: self.name.clone(),
            project: self.project.clone(),
            username: self.username.clone(),
            password,
            ssh_private_key,
            insecure: self.insecure_skip_server_verification,
            enable_lfs: self.enable_lfs,
        })
    }
}

/// Argo CD's Repository as `argocd repo add` sends it.
fn repository_request(spec: RepoSpec) -> Result<Value> {
    if spec.repo_type == "helm" && spec.name.as_deref().is_none_or(str::is_empty) {
        bail!("--name is required for repositories of type 'helm'");
    }
    let mut repo = json!({"repo": spec.url, "type": spec.repo_type});
    let texts = [
        ("name", spec.name),
        ("project", spec.project),
        ("username", spec.username),
        ("password", spec.password),
        ("sshPrivateKey", spec.ssh_private_key),
    ];
    for (key, value) in texts {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            repo[key] = value.into();
        }
    }
    if spec.insecure {
        repo["insecure"] = true.into();
    }
    if spec.enable_lfs {
        repo["enableLfs"] = true.into();
    }
    Ok(repo)
}

fn list_output(items: &[Value], output: Option<Output>) -> Result<String> {
    if let Some(text) = structured(items, output)? {
        return Ok(text);
    }
    let text = |r: &Value, key: &str| r[key].as_str().unwrap_or_default().to_string();
    let flag = |r: &Value, key: &str| r[key].as_bool().unwrap_or(false).to_string();
    if output == Some(Output::Name) {
        return Ok(items.iter().map(|r| format!("{}\n", text(r, "repo"))).collect());
    }
    let mut table = Table::new([
        "TYPE", "NAME", "REPO", "INSECURE", "OCI", "LFS", "CREDS", "STATUS", "MESSAGE", "PROJECT",
    ]);
    for r in items {
        let has_creds = !text(r, "username").is_empty();
        table.row([
            text(r, "type"),
            text(r, "name"),
            text(r, "repo"),
            flag(r, "insecure"),
            flag(r, "enableOCI"),
            flag(r, "enableLfs"),
            has_creds.to_string(),
            r["connectionState"]["status"].as_str().unwrap_or_default().to_string(),
            r["connectionState"]["message"].as_str().unwrap_or_default().to_string(),
            text(r, "project"),
        ]);
    }
    Ok(table.render())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> RepoSpec {
        RepoSpec {
            url: "https://git.example.com/org/app.git".into(),
            repo_type: "git".into(),
            name: None,
            project: Some("team-a".into()),
            username: Some("bot".into()),
            password: Some("pw".into()),
            ssh_private_key: None,
            insecure: true,
            enable_lfs: false,
        }
    }

    #[test]
    fn repo_add_sends_argo_cds_repository() {
        assert_eq!(
            repository_request(spec()).unwrap(),
            json!({"repo": "https://git.example.com/org/app.git", "type": "git", "project": "team-a",
                "username": "bot", "password": "pw", "insecure": true})
        );
        let helm = RepoSpec { repo_type: "helm".into(), ..spec() };
        assert_eq!(
            repository_request(helm).unwrap_err().to_string(),
            "--name is required for repositories of type 'helm'"
        );
    }

    #[test]
    fn repositories_print_as_argocd_repo_list() {
        let items = vec![
            json!({"repo": "https://git.example.com/org/app.git", "type": "git", "username": "bot", "project": "team-a"}),
            json!({"repo": "https://charts.example.com", "type": "helm", "name": "charts", "insecure": true}),
        ];
        assert_eq!(
            list_output(&items, None).unwrap(),
            "TYPE  NAME    REPO                                 INSECURE  OCI    LFS    CREDS  STATUS  MESSAGE  PROJECT\n\
             git           https://git.example.com/org/app.git  false     false  false  true                    team-a\n\
             helm  charts  https://charts.example.com           true      false  false  false\n"
        );
        assert_eq!(
            list_output(&items, Some(Output::Name)).unwrap(),
            "https://git.example.com/org/app.git\nhttps://charts.example.com\n"
        );
    }
}
