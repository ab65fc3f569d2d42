//! `berth version`: this binary's version and the server's (`GET /api/version`).

use crate::client::{Client, ConnectionArgs};
use crate::output::{Output, out, structured};
use anyhow::Result;
use clap::Args;
use serde_json::Value;

#[derive(Args, Debug)]
pub struct VersionArgs {
    #[command(flatten)]
    connection: ConnectionArgs,
    /// Only this binary's version; do not ask the server.
    #[arg(long)]
    client: bool,
    /// `json` or `yaml` (the default is text).
    #[arg(short, long, value_enum)]
    output: Option<Output>,
}

fn client_version() -> Value {
    serde_json::json!({
        "Version": format!("v{}", env!("CARGO_PKG_VERSION")),
        "Platform": format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
    })
}

fn text(name: &str, version: &Value) -> String {
    let field = |key: &str| version.get(key).and_then(Value::as_str).unwrap_or_default().to_string();
    let mut out = format!("{name}: {}\n", field("Version"));
    for key in ["Platform", "KustomizeVersion", "HelmVersion"] {
        let value = field(key);
        if !value.is_empty() {
            out.push_str(&format!("  {key}: {value}\n"));
        }
    }
    out
}

pub async fn run(args: VersionArgs) -> Result<()> {
    let client_version = client_version();
    let server_version = if args.client {
        None
    } else {
        // No token needed, but a server is: a context or --server.
        let target = args.connection.target();
        match target {
            Ok(target) => Some(Client::new(&target)?.version().await),
            Err(e) => Some(Err(e.downcast::<crate::client::ClientError>()?)),
        }
    };
    if matches!(args.output, Some(Output::Json | Output::Yaml)) {
        let mut both = serde_json::json!({"client": client_version});
        if let Some(server) = server_version {
            both["server"] = server?;
        }
        out!("{}", structured(&both, args.output)?.unwrap_or_default())?;
        return Ok(());
    }
    out!("{}", text("berth", &client_version))?;
    if let Some(server) = server_version {
        out!("{}", text("berth-server", &server?))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_print_name_version_and_the_details_present() {
        let server = serde_json::json!({"Version": "v0.1.0", "Platform": "linux/amd64", "HelmVersion": ""});
        assert_eq!(text("berth-server", &server), "berth-server: v0.1.0\n  Platform: linux/amd64\n");
    }
}
