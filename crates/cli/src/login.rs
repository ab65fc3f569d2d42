//! `berth login HOST [--sso]`, `berth logout` and `berth context`: sessions kept in the config file.

use crate::client::{Client, Target, base_url};
use crate::context::{Config, ServerContext, config_path};
use crate::output::{Table, out, outln};
use crate::sso::{self, SsoOptions};
use crate::terminal::prompt;
use anyhow::{Result, bail};
use clap::{ArgAction, Args};
use std::io::IsTerminal as _;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct LoginArgs {
    /// The server: HOST:PORT (`http://` or `https://` in front is understood too).
    host: String,
    /// The account (prompted for when missing and stdin is a terminal).
    #[arg(long, conflicts_with = "sso")]
    username: Option<String>,
    /// The password (prompted for, unechoed, when missing and stdin is a terminal); from `BERTH_PASSWORD`
    /// too, which keeps it off the process list.
    #[arg(long, env = "BERTH_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// Log in through the server's SSO provider (Dex or oidc.config) in a browser, as `argocd login --sso`.
    #[arg(long)]
    sso: bool,
    /// The local port of the SSO callback (`http://localhost:PORT/auth/callback`, which the provider must
    /// allow as a redirect URI).
    #[arg(long, default_value_t = sso::DEFAULT_PORT, value_name = "PORT")]
    sso_port: u16,
    /// Open the system's browser at the provider's login page (the URL is printed either way).
    #[arg(long, default_value_t = true, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    sso_launch_browser: bool,
    /// Accept any TLS certificate (the server's self-signed default).
    #[arg(long)]
    insecure: bool,
    /// Speak plain HTTP (a server started with `berth run --insecure`).
    #[arg(long)]
    plaintext: bool,
    /// The context's name (default: the server).
    #[arg(long)]
    name: Option<String>,
    /// The config file (default: $XDG_CONFIG_HOME/berth/config or ~/.config/berth/config).
    #[arg(long, env = "BERTH_CONFIG", value_name = "PATH")]
    config: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct LogoutArgs {
    /// The context to log out of (default: the current one).
    context: Option<String>,
    #[arg(long, env = "BERTH_CONFIG", value_name = "PATH")]
    config: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ContextArgs {
    /// Switch to this context; without it, list the contexts.
    name: Option<String>,
    /// Forget the context instead of switching to it.
    #[arg(long, requires = "name")]
    delete: bool,
    #[arg(long, env = "BERTH_CONFIG", value_name = "PATH")]
    config: Option<PathBuf>,
}

/// `HOST:PORT` and whether the URL form asked for plain HTTP.
fn split_host(host: &str) -> (String, Option<bool>) {
    let host = host.trim().trim_end_matches('/');
    if let Some(rest) = host.strip_prefix("http://") {
        (rest.to_string(), Some(true))
    } else if let Some(rest) = host.strip_prefix("https://") {
        (rest.to_string(), Some(false))
    } else {
        (host.to_string(), None)
    }
}

pub async fn login(args: LoginArgs) -> Result<()> {
    let (server, scheme_plaintext) = split_host(&args.host);
    if server.is_empty() {
        bail!("give the server to log in to: `berth login HOST:PORT`");
    }
    let plaintext = args.plaintext || scheme_plaintext == Some(true);
    if args.sso {
        return sso_login(args, server, plaintext).await;
    }
    let interactive = std::io::stdin().is_terminal();
    let username = match args.username {
        Some(username) => username,
        None if interactive => prompt("Username: ", false)?,
        None => bail!("--username is required when stdin is not a terminal"),
    };
    let password = match args.password {
        Some(password) => password,
        None if interactive => prompt("Password: ", true)?,
        None => bail!("--password is required when stdin is not a terminal"),
    };
    let target =
        Target { server: server.clone(), token: None, plaintext, insecure: args.insecure, renewal: None };
    let token = Client::new(&target)?.login(&username, &password).await?;

    let path = config_path(args.config.as_deref())?;
    let mut config = Config::load(&path)?;
    let name = args.name.unwrap_or_else(|| server.clone());
    config.upsert(ServerContext {
        name: name.clone(),
        server,
        token: Some(token),
        refresh_token: None,
        plaintext,
        insecure: args.insecure,
    });
    config.save(&path)?;
    outln!("'{username}:login' logged in successfully")?;
    outln!("Context '{name}' updated")?;
    Ok(())
}

/// `berth login HOST --sso`: the browser logs in at the provider; the ID token is the session's token and
/// the refresh token renews it.
async fn sso_login(args: LoginArgs, server: String, plaintext: bool) -> Result<()> {
    // Read before the browser round trip, so a broken config file fails before the user logs in.
    let path = config_path(args.config.as_deref())?;
    let mut config = Config::load(&path)?;
    let options = SsoOptions { port: args.sso_port, launch_browser: args.sso_launch_browser };
    let (tokens, claims) = sso::login(&base_url(&server, plaintext), args.insecure, &options).await?;
    let name = args.name.unwrap_or_else(|| server.clone());
    config.upsert(ServerContext {
        name: name.clone(),
        server,
        token: Some(tokens.id_token),
        refresh_token: tokens.refresh_token,
        plaintext,
        insecure: args.insecure,
    });
    config.save(&path)?;
    outln!("'{}' logged in successfully", sso::display_name(&claims))?;
    outln!("Context '{name}' updated")?;
    Ok(())
}

pub fn logout(args: LogoutArgs) -> Result<()> {
    let path = config_path(args.config.as_deref())?;
    let mut config = Config::load(&path)?;
    let name = match args.context.or_else(|| config.current_context.clone()) {
        Some(name) => name,
        None => bail!("not logged in: run `berth login HOST`"),
    };
    config.logout(&name)?;
    config.save(&path)?;
    outln!("Logged out from '{name}'")?;
    Ok(())
}

pub fn context(args: ContextArgs) -> Result<()> {
    let path = config_path(args.config.as_deref())?;
    let mut config = Config::load(&path)?;
    match args.name {
        None => out!("{}", contexts_table(&config))?,
        Some(name) if args.delete => {
            let before = config.contexts.len();
            config.contexts.retain(|c| c.name != name);
            if config.contexts.len() == before {
                bail!("no context named '{name}'");
            }
            if config.current_context.as_deref() == Some(name.as_str()) {
                config.current_context = None;
            }
            config.save(&path)?;
            outln!("Context '{name}' deleted")?;
        }
        Some(name) => {
            config.use_context(&name)?;
            config.save(&path)?;
            outln!("Switched to context '{name}'")?;
        }
    }
    Ok(())
}

fn contexts_table(config: &Config) -> String {
    let mut table = Table::new(["CURRENT", "NAME", "SERVER"]);
    for c in &config.contexts {
        let current = if config.current_context.as_deref() == Some(c.name.as_str()) { "*" } else { "" };
        table.row([current.to_string(), c.name.clone(), c.server.clone()]);
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_may_carry_a_scheme_that_picks_the_transport() {
        assert_eq!(split_host("127.0.0.1:8080"), ("127.0.0.1:8080".into(), None));
        assert_eq!(split_host("http://127.0.0.1:8080/"), ("127.0.0.1:8080".into(), Some(true)));
        assert_eq!(split_host("https://berth.example"), ("berth.example".into(), Some(false)));
    }

    #[test]
    fn the_context_list_marks_the_current_one() {
        let mut config = Config::default();
        for name in ["a", "b"] {
            config.upsert(ServerContext {
                name: name.into(),
                server: format!("{name}:443"),
                ..Default::default()
            });
        }
        assert_eq!(
            contexts_table(&config),
            "CURRENT  NAME  SERVER\n         a     a:443\n*        b     b:443\n"
        );
    }
}
