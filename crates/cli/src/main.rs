//! `berth`: the one binary. `berth run` runs every part in one process; the other verbs speak to it.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod account;
mod admin;
mod app;
mod app_actions;
mod app_set;
mod app_view;
mod appset;
mod client;
mod cluster;
mod context;
mod crds;
mod dex;
mod diff;
mod login;
mod output;
mod proj;
mod proj_role;
mod repo;
mod run;
mod sso;
mod terminal;
mod version;

/// GitOps continuous delivery for Kubernetes, drop-in compatible with Argo CD.
#[derive(Parser, Debug)]
#[command(name = "berth", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run berth (controller, API server and UI) against the current kubeconfig.
    Run(run::RunArgs),
    /// Print the Application, AppProject and ApplicationSet CRDs as YAML (for `kubectl apply -f -`).
    Crds,
    /// Dex beside berth, as `argocd-dex`: generate its configuration from argocd-cm's dex.config, or run it.
    Dex(dex::DexArgs),
    /// Offline tools for administrators, as `argocd admin`.
    Admin(admin::AdminArgs),
    /// Log in to a berth server and save the session as the current context.
    Login(login::LoginArgs),
    /// Forget the token of a context.
    Logout(login::LogoutArgs),
    /// List the contexts, or switch to one.
    Context(login::ContextArgs),
    /// Manage applications.
    App(app::AppArgs),
    /// Manage ApplicationSets.
    Appset(appset::AppsetArgs),
    /// Manage projects.
    Proj(proj::ProjArgs),
    /// Manage repository connections.
    Repo(repo::RepoArgs),
    /// Manage clusters (deployment destinations).
    Cluster(cluster::ClusterArgs),
    /// Manage accounts: passwords and API tokens.
    Account(account::AccountArgs),
    /// Print the client's and the server's versions.
    Version(version::VersionArgs),
}

#[tokio::main]
async fn main() -> Result<ExitCode> {
    let cli = Cli::parse();
    // The client verbs report their own errors; library logs (TLS, HTTP) only when RUST_LOG asks.
    let server_side =
        matches!(cli.command, Command::Run(_) | Command::Crds | Command::Admin(_) | Command::Dex(_));
    // kube's client logs every failed request as an error of its own; berth's callers report the failures
    // that matter once (with backoff), so an outage of the API server is a few lines, not thousands.
    let default_filter =
        if server_side { "info,kube_client=error,kube_client::client::builder=off" } else { "off" };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default_filter.into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let remote = match cli.command {
        Command::Run(args) => run::run(args).await.map(|()| ExitCode::SUCCESS),
        Command::Crds => {
            output::write(&crds::to_yaml().context("serialising the CRDs")?)?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Admin(args) => return admin::run(args).map(|()| ExitCode::SUCCESS),
        Command::Dex(args) => return dex::run(args).await.map(|()| ExitCode::SUCCESS),
        Command::Login(args) => login::login(args).await.map(|()| ExitCode::SUCCESS),
        Command::Logout(args) => login::logout(args).map(|()| ExitCode::SUCCESS),
        Command::Context(args) => login::context(args).map(|()| ExitCode::SUCCESS),
        Command::App(args) => app::run(args).await,
        Command::Appset(args) => appset::run(args).await.map(|()| ExitCode::SUCCESS),
        Command::Proj(args) => proj::run(args).await.map(|()| ExitCode::SUCCESS),
        Command::Repo(args) => repo::run(args).await.map(|()| ExitCode::SUCCESS),
        Command::Cluster(args) => cluster::run(args).await.map(|()| ExitCode::SUCCESS),
        Command::Account(args) => account::run(args).await.map(|()| ExitCode::SUCCESS),
        Command::Version(args) => version::run(args).await.map(|()| ExitCode::SUCCESS),
    };
    // The client verbs and `berth run` print one human line, not a debug chain.
    Ok(remote.unwrap_or_else(|e| {
        eprintln!("error: {e:#}");
        ExitCode::FAILURE
    }))
}
