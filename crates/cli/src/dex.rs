//! `berth dex`: Dex beside berth, as Argo CD's `argocd-dex` tools. `gendexcfg` prints (or writes) the Dex
//! configuration argocd-cm's `dex.config` and argocd-secret give; `run` keeps a Dex running with it,
//! restarting it when they change (what `berth run` does by itself when a `dex` binary is on PATH).

use crate::output::out;
use anyhow::{Context as _, Result};
use clap::{Args, Subcommand};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct DexArgs {
    #[command(subcommand)]
    command: DexCommand,
}

#[derive(Subcommand, Debug)]
enum DexCommand {
    /// Print Dex's configuration for the settings now (it holds client secrets: write it with --out).
    Gendexcfg {
        #[command(flatten)]
        common: Common,
        /// Write it to this file, readable by its owner only, instead of standard output.
        #[arg(long, short = 'o')]
        out: Option<PathBuf>,
    },
    /// Run Dex with that configuration, restarting it when argocd-cm or argocd-secret change.
    Run {
        #[command(flatten)]
        common: Common,
        /// The `dex` binary.
        #[arg(long, env = "BERTH_DEX_BINARY", default_value = "dex")]
        dex_binary: PathBuf,
        /// A private directory for the generated configuration (default: a new one under the temp dir).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

#[derive(Args, Debug)]
struct Common {
    /// The control namespace (argocd-cm, argocd-secret).
    #[arg(long, short = 'n', env = "BERTH_NAMESPACE", default_value = "argocd")]
    namespace: String,
    /// Where Dex serves HTTP (Argo CD's Dex listens on 0.0.0.0:5556).
    #[arg(long, default_value = "0.0.0.0:5556")]
    listen: String,
}

pub async fn run(args: DexArgs) -> Result<()> {
    let client = kube::Client::try_default().await.context("no Kubernetes configuration found")?;
    match args.command {
        DexCommand::Gendexcfg { common, out } => {
            let cm: BTreeMap<String, String> =
                kube::Api::<ConfigMap>::namespaced(client.clone(), &common.namespace)
                    .get_opt("argocd-cm")
                    .await?
                    .and_then(|c| c.data)
                    .unwrap_or_default();
            let secret: BTreeMap<String, String> =
                kube::Api::<Secret>::namespaced(client.clone(), &common.namespace)
                    .get_opt("argocd-secret")
                    .await?
                    .and_then(|s| s.data)
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|(k, v)| String::from_utf8(v.0).ok().map(|v| (k, v)))
                    .collect();
            let config = berth_server::auth::oidc::dex_process::generate_config(
                &client,
                &common.namespace,
                &cm,
                &secret,
                &common.listen,
            )
            .await
            .map_err(anyhow::Error::msg)?;
            match out {
                Some(path) => berth_server::auth::oidc::dex_process::write_private(&path, &config)
                    .with_context(|| format!("writing {}", path.display()))?,
                None => out!("{config}")?,
            }
            Ok(())
        }
        DexCommand::Run { common, dex_binary, dir } => {
            let dir = match dir {
                Some(dir) => dir,
                None => berth_server::auth::oidc::dex_process::private_dir()
                    .context("Dex's configuration directory")?,
            };
            let settings = berth_controller::SettingsSource::start(client.clone(), &common.namespace)
                .await
                .map_err(anyhow::Error::msg)?;
            let run = berth_server::auth::oidc::dex_process::DexRun {
                binary: dex_binary,
                listen: common.listen,
                dir,
            };
            let stop = async {
                let _ = tokio::signal::ctrl_c().await;
            };
            berth_server::auth::oidc::dex_process::supervise(client, common.namespace, settings, run, stop)
                .await;
            Ok(())
        }
    }
}
