//! `berth`: the one binary. `berth run` runs every part in one process; the other verbs speak to it.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

mod admin;
mod crds;
mod run;

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
    /// Offline tools for administrators, as `argocd admin`.
    Admin(admin::AdminArgs),
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match Cli::parse().command {
        Command::Run(args) => run::run(args).await,
        Command::Crds => {
            print!("{}", crds::to_yaml().context("serialising the CRDs")?);
            Ok(())
        }
        Command::Admin(args) => admin::run(args),
    }
}
