//! `berth account list|get|get-user-info|update-password|generate-token|delete-token`, as `argocd account …`.

use crate::client::{Client, ClientError, ConnectionArgs};
use crate::context::{Config, config_path};
use crate::output::{Output, Table, out, outln, structured};
use crate::terminal::prompt;
use anyhow::{Context as _, Result, bail};
use clap::{Args, Subcommand};
use serde_json::Value;
use std::io::IsTerminal as _;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct AccountArgs {
    #[command(flatten)]
    connection: ConnectionArgs,
    #[command(subcommand)]
    command: AccountCommand,
}

#[derive(Subcommand, Debug)]
enum AccountCommand {
    /// List the accounts you may see.
    List {
        #[arg(short, long, value_enum)]
        output: Option<Output>,
    },
    /// Show an account and its API tokens (the current user by default).
    Get {
        #[arg(short, long)]
        account: Option<String>,
        #[arg(short, long, value_enum)]
        output: Option<Output>,
    },
    /// Show who the server takes you for: user, issuer and groups (an SSO login's come from the provider).
    GetUserInfo {
        #[arg(short, long, value_enum)]
        output: Option<Output>,
    },
    /// Change a password (your own by default); your current password is asked for either way.
    UpdatePassword {
        /// Whose password to change (needs RBAC `accounts, update` for another account).
        #[arg(short, long)]
        account: Option<String>,
        /// Your own current password (prompted for when missing and stdin is a terminal).
        #[arg(long)]
        current_password: Option<String>,
        /// The new password (prompted for, twice, when missing and stdin is a terminal).
        #[arg(long)]
        new_password: Option<String>,
    },
    /// Print the bcrypt hash of a password, for argocd-secret or Dex's staticPasswords (offline, as
    /// `argocd account bcrypt`).
    Bcrypt {
        /// The password; from `BERTH_PASSWORD` too, which keeps it off the process list.
        #[arg(long, env = "BERTH_PASSWORD", hide_env_values = true)]
        password: String,
    },
    /// Print a new API token for an account with the apiKey capability (the current user by default).
    GenerateToken {
        #[arg(short, long)]
        account: Option<String>,
        /// How long the token lasts: `24h`, `30m`, `7d`; `0s` never expires.
        #[arg(short, long, default_value = "0s")]
        expires_in: String,
        /// The token's id (default: a random one).
        #[arg(long)]
        id: Option<String>,
    },
    /// Delete an API token: it stops working.
    DeleteToken {
        /// The token's id, as `berth account get` lists it.
        id: String,
        #[arg(short, long)]
        account: Option<String>,
    },
}

pub async fn run(args: AccountArgs) -> Result<()> {
    if let AccountCommand::Bcrypt { password } = &args.command {
        outln!("{}", berth_server::auth::hash_password(password)?)?;
        return Ok(());
    }
    let connection = args.connection;
    let client = connection.client()?;
    match args.command {
        AccountCommand::List { output } => {
            let items = client.list_accounts().await?;
            out!("{}", list_output(&items, output)?)?;
        }
        AccountCommand::Get { account, output } => {
            let account = account_or_me(&client, account).await?;
            let details = client.get_account(&account).await?;
            match structured(&details, output)? {
                Some(text) => out!("{text}")?,
                None => out!("{}", account_details(&details, now()))?,
            }
        }
        AccountCommand::GetUserInfo { output } => {
            let info = client.userinfo().await?;
            match structured(&info, output)? {
                Some(text) => out!("{text}")?,
                None => out!("{}", user_info(&info))?,
            }
        }
        AccountCommand::UpdatePassword { account, current_password, new_password } => {
            update_password(&connection, &client, account, current_password, new_password).await?;
        }
        AccountCommand::GenerateToken { account, expires_in, id } => {
            let expires = parse_expires_in(&expires_in)?;
            let account = account_or_me(&client, account).await?;
            match client.create_token(&account, expires, id.as_deref()).await {
                Ok(token) => outln!("{token}")?,
                Err(ClientError::Api { code: Some(9), message, .. }) if message.contains("apiKey") => bail!(
                    "{message}: give it the capability in argocd-cm (`accounts.{account}: apiKey`) first"
                ),
                Err(e) => return Err(e.into()),
            }
        }
        AccountCommand::DeleteToken { id, account } => {
            let account = account_or_me(&client, account).await?;
            client.delete_token(&account, &id).await?;
            outln!("Token '{id}' of account '{account}' deleted")?;
        }
        AccountCommand::Bcrypt { .. } => unreachable!("answered before connecting"),
    }
    Ok(())
}

/// The logged-in user, as the server reads the token.
async fn current_user(client: &Client) -> Result<String> {
    let info = client.userinfo().await?;
    match info["username"].as_str().filter(|_| info["loggedIn"] == true) {
        Some(name) => Ok(name.to_string()),
        None => Err(ClientError::Unauthenticated {
            server: client.base().to_string(),
            message: "the server does not know this token".into(),
        }
        .into()),
    }
}

async fn account_or_me(client: &Client, account: Option<String>) -> Result<String> {
    match account.filter(|a| !a.is_empty()) {
        Some(account) => Ok(account),
        None => current_user(client).await,
    }
}

async fn update_password(
    connection: &ConnectionArgs,
    client: &Client,
    account: Option<String>,
    current: Option<String>,
    new: Option<String>,
) -> Result<()> {
    let me = current_user(client).await?;
    let account = account.filter(|a| !a.is_empty()).unwrap_or_else(|| me.clone());
    let interactive = std::io::stdin().is_terminal();
    let current = match current {
        Some(p) => p,
        None if interactive => {
            prompt(&format!("*** Enter password of currently logged in user ({me}): "), true)?
        }
        None => bail!("--current-password is required when stdin is not a terminal"),
    };
    let new = match new {
        Some(p) => p,
        None if interactive => {
            let first = prompt(&format!("*** Enter new password for user {account}: "), true)?;
            let second = prompt(&format!("*** Confirm new password for user {account}: "), true)?;
            if first != second {
                bail!("the new passwords do not match");
            }
            first
        }
        None => bail!("--new-password is required when stdin is not a terminal"),
    };
    let other = (account != me).then_some(account.as_str());
    client.update_password(other, &current, &new).await?;
    outln!("Password updated")?;
    if other.is_none() {
        relogin(connection, client, &me, &new).await?;
    }
    Ok(())
}

/// The old session ends with the password change: log in again with the new one and save the token in the
/// context, as `argocd account update-password` does.
async fn relogin(connection: &ConnectionArgs, client: &Client, user: &str, password: &str) -> Result<()> {
    let target = connection.target()?;
    if connection.auth_token.as_deref().is_some_and(|t| !t.is_empty()) {
        outln!(
            "The token given with --auth-token ends with the old password: run `berth login {}`",
            target.server
        )?;
        return Ok(());
    }
    let path = config_path(connection.config.as_deref())?;
    let mut config = Config::load(&path)?;
    let Some(name) = config.for_server(&target.server).map(|c| c.name.clone()) else {
        return Ok(());
    };
    let token = client.login(user, password).await.context("logging in with the new password")?;
    if let Some(context) = config.contexts.iter_mut().find(|c| c.name == name) {
        context.token = Some(token);
    }
    config.save(&path)?;
    outln!("Context '{name}' updated")?;
    Ok(())
}

/// Go durations (`24h`, `90m`) and days (`7d`), as `argocd account generate-token --expires-in` and
/// `argocd proj role create-token --expires-in`; zero is `None`: the token never expires.
pub(crate) fn parse_expires_in(text: &str) -> Result<Option<Duration>> {
    let days = text.strip_suffix('d').and_then(|d| d.parse::<u64>().ok());
    let duration = match days {
        // As long as any Go duration at most (about 292 years); more is refused, not wrapped.
        Some(days) => days
            .checked_mul(24 * 3600)
            .map(Duration::from_secs)
            .filter(|d| *d <= berth_controller::settings::LONGEST_DURATION),
        None => berth_controller::settings::parse_duration(text),
    };
    match duration {
        Some(d) if d.is_zero() => Ok(None),
        Some(d) => Ok(Some(d.max(Duration::from_secs(1)))),
        None => bail!("--expires-in {text:?} is not a duration: use e.g. 24h, 90m, 7d or 0s (never)"),
    }
}

/// `argocd account get-user-info`: whether the token is a session and, when it is, whose.
fn user_info(info: &Value) -> String {
    let logged_in = info["loggedIn"].as_bool().unwrap_or(false);
    let mut out = format!("Logged In: {logged_in}\n");
    if logged_in {
        let text = |key: &str| info[key].as_str().unwrap_or_default().to_string();
        let groups: Vec<&str> =
            info["groups"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        out.push_str(&format!(
            "Username: {}\nIssuer: {}\nGroups: {}\n",
            text("username"),
            text("iss"),
            groups.join(",")
        ));
    }
    out
}

fn capabilities(account: &Value) -> String {
    let list: Vec<&str> =
        account["capabilities"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    list.join(", ")
}

fn list_output(items: &[Value], output: Option<Output>) -> Result<String> {
    if let Some(text) = structured(items, output)? {
        return Ok(text);
    }
    let name = |a: &Value| a["name"].as_str().unwrap_or_default().to_string();
    if output == Some(Output::Name) {
        return Ok(items.iter().map(|a| format!("{}\n", name(a))).collect());
    }
    let mut table = Table::new(["NAME", "ENABLED", "CAPABILITIES"]);
    for a in items {
        table.row([name(a), a["enabled"].as_bool().unwrap_or(false).to_string(), capabilities(a)]);
    }
    Ok(table.render())
}

fn now() -> i64 {
    k8s_openapi::jiff::Timestamp::now().as_second()
}

fn rfc3339(seconds: i64) -> String {
    k8s_openapi::jiff::Timestamp::from_second(seconds).map_or_else(|_| seconds.to_string(), |t| t.to_string())
}

/// `argocd account get`: the account, then its tokens (`NONE` without any).
fn account_details(account: &Value, now: i64) -> String {
    let mut out = String::new();
    let line = |label: &str, value: String| format!("{label:<25}{value}\n");
    out.push_str(&line("Name:", account["name"].as_str().unwrap_or_default().to_string()));
    out.push_str(&line("Enabled:", account["enabled"].as_bool().unwrap_or(false).to_string()));
    out.push_str(&line("Capabilities:", capabilities(account)));
    out.push_str("\nTokens:\n");
    let tokens = account["tokens"].as_array().map(Vec::as_slice).unwrap_or_default();
    if tokens.is_empty() {
        out.push_str("NONE\n");
        return out;
    }
    let mut table = Table::new(["ID", "ISSUED AT", "EXPIRING AT"]);
    for t in tokens {
        let expires = match t["expiresAt"].as_i64().filter(|e| *e > 0) {
            None => "never".to_string(),
            Some(e) if e < now => format!("{} (expired)", rfc3339(e)),
            Some(e) => rfc3339(e),
        };
        table.row([
            t["id"].as_str().unwrap_or_default().to_string(),
            rfc3339(t["issuedAt"].as_i64().unwrap_or_default()),
            expires,
        ]);
    }
    out.push_str(&table.render());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn user_info_prints_as_argocd_account_get_user_info() {
        let sso = json!({"loggedIn": true, "username": "kim@example.com", "iss": "https://dex.example",
            "groups": ["dev", "ops"]});
        assert_eq!(
            user_info(&sso),
            "Logged In: true\nUsername: kim@example.com\nIssuer: https://dex.example\nGroups: dev,ops\n"
        );
        let local = json!({"loggedIn": true, "username": "admin", "iss": "argocd"});
        assert_eq!(user_info(&local), "Logged In: true\nUsername: admin\nIssuer: argocd\nGroups: \n");
        assert_eq!(user_info(&json!({"loggedIn": false})), "Logged In: false\n");
    }

    #[test]
    fn token_lifetimes_read_as_argocd_reads_them() {
        assert_eq!(parse_expires_in("0s").unwrap(), None);
        assert_eq!(parse_expires_in("0").unwrap(), None);
        assert_eq!(parse_expires_in("24h").unwrap(), Some(Duration::from_secs(86_400)));
        assert_eq!(parse_expires_in("1h30m").unwrap(), Some(Duration::from_secs(5_400)));
        assert_eq!(parse_expires_in("7d").unwrap(), Some(Duration::from_secs(604_800)));
        assert!(parse_expires_in("soon").unwrap_err().to_string().contains("e.g. 24h"));
        assert!(parse_expires_in("99999999999999999d").is_err(), "past Go's longest duration");
    }

    #[test]
    fn accounts_print_as_argocd_account_list_and_get() {
        let items = vec![
            json!({"name": "admin", "enabled": true, "capabilities": ["login"], "tokens": []}),
            json!({"name": "ci", "enabled": true, "capabilities": ["apiKey", "login"],
                "tokens": [{"id": "deploy", "issuedAt": 1_714_564_800, "expiresAt": 1_714_568_400},
                           {"id": "old", "issuedAt": 1_600_000_000, "expiresAt": 1_600_000_001},
                           {"id": "forever", "issuedAt": 1_600_000_000}]}),
        ];
        assert_eq!(
            list_output(&items, None).unwrap(),
            "NAME   ENABLED  CAPABILITIES\nadmin  true     login\nci     true     apiKey, login\n"
        );
        assert_eq!(
            account_details(&items[0], 1_700_000_000),
            "Name:                    admin\nEnabled:                 true\nCapabilities:            login\n\nTokens:\nNONE\n"
        );
        let details = account_details(&items[1], 1_700_000_000);
        assert!(
            details.ends_with(
                "Tokens:\n\
                 ID       ISSUED AT             EXPIRING AT\n\
                 deploy   2024-05-01T12:00:00Z  2024-05-01T13:00:00Z\n\
                 old      2020-09-13T12:26:40Z  2020-09-13T12:26:41Z (expired)\n\
                 forever  2020-09-13T12:26:40Z  never\n"
            ),
            "{details}"
        );
    }
}
