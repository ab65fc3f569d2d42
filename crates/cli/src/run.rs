//! `berth run`: every part of berth in one process.
//!
//! Today only the start-up checks exist (the cluster is reachable, the CRDs are installed); the
//! reconcilers, API server and UI come with the issues that build them, and `run` says so plainly.

use anyhow::{Context, Result, bail};
use clap::Args;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{Api, Client};

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Namespace holding Argo CD's configuration objects (argocd-cm, argocd-rbac-cm, secrets).
    #[arg(long, short = 'n', env = "BERTH_NAMESPACE", default_value = "argocd")]
    pub namespace: String,
    /// Port of the API server and web UI.
    #[arg(long, env = "BERTH_PORT", default_value_t = 8080)]
    pub port: u16,
    /// Serve plain HTTP instead of HTTPS (as argocd-server --insecure).
    #[arg(long, env = "BERTH_INSECURE")]
    pub insecure: bool,
}

pub async fn run(args: RunArgs) -> Result<()> {
    let client = Client::try_default()
        .await
        .context("no Kubernetes configuration found (set KUBECONFIG, or run in a Pod)")?;
    let version = client.apiserver_version().await.context("the API server did not answer")?;
    tracing::info!(server = %version.git_version, namespace = %args.namespace, "connected to the cluster");

    let crds: Api<CustomResourceDefinition> = Api::all(client);
    for crd in berth_api::crd::all() {
        let name = crd.metadata.name.unwrap_or_default();
        crds.get_opt(&name)
            .await
            .with_context(|| format!("reading CustomResourceDefinition {name}"))?
            .with_context(|| {
                format!("CustomResourceDefinition {name} is missing: run `berth crds | kubectl apply -f -`")
            })?;
    }
    tracing::info!("the Application, AppProject and ApplicationSet CRDs are installed");
    bail!(
        "the controller, API server and UI are not built yet (see the README's roadmap); nothing else to run"
    )
}
