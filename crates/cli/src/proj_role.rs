//! `berth proj role`: a project's roles, as `argocd proj role` manages them. Roles, their policies and
//! groups are edited through the project's `PUT /api/v1/projects/{name}` (the server checks them as Argo CD
//! does); tokens through `POST /api/v1/projects/{name}/roles/{role}/token` and
//! `DELETE …/token/{iat}`.

use crate::account::parse_expires_in;
use crate::client::Client;
use crate::output::{Output, Table, or_none, out, outln, structured};
use anyhow::{Context as _, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use reqwest::Method;
use serde_json::{Value, json};

#[derive(Subcommand, Debug)]
pub enum RoleCommand {
    /// Create a project role.
    Create {
        project: String,
        role: String,
        /// What the role is for.
        #[arg(long)]
        description: Option<String>,
    },
    /// Delete a project role (its tokens stop working).
    Delete { project: String, role: String },
    /// Show a project role: its policies, groups and tokens.
    Get {
        project: String,
        role: String,
        #[arg(short, long, value_enum)]
        output: Option<Output>,
    },
    /// List a project's roles.
    List {
        project: String,
        #[arg(short, long, value_enum)]
        output: Option<Output>,
    },
    /// Add a policy to a project role.
    AddPolicy {
        project: String,
        role: String,
        #[command(flatten)]
        policy: PolicyArgs,
    },
    /// Remove a policy from a project role.
    RemovePolicy {
        project: String,
        role: String,
        #[command(flatten)]
        policy: PolicyArgs,
    },
    /// Bind an SSO group to a project role.
    AddGroup { project: String, role: String, group: String },
    /// Unbind an SSO group from a project role.
    RemoveGroup { project: String, role: String, group: String },
    /// Create a token for a project role.
    CreateToken {
        project: String,
        role: String,
        /// Duration before the token will expire, e.g. "12h", "7d" (default: no expiration).
        #[arg(short, long)]
        expires_in: Option<String>,
        /// Token unique identifier (default: a random UUID).
        #[arg(short, long)]
        id: Option<String>,
        /// Output the token only, for use in scripts.
        #[arg(short, long)]
        token_only: bool,
    },
    /// Delete a project role's token (ISSUED-AT as `list-tokens -u` prints it).
    DeleteToken { project: String, role: String, issued_at: i64 },
    /// List a project role's tokens.
    ListTokens {
        project: String,
        role: String,
        /// Print timestamps as Unix time instead of converting them, for delete-token.
        #[arg(short, long)]
        unixtime: bool,
    },
}

/// What a role's policy grants: `p, proj:<project>:<role>, <resource>, <action>, <project>/<object>, <permission>`.
#[derive(Args, Debug)]
pub struct PolicyArgs {
    /// Action the policy grants, e.g. get, sync, update, delete, override, or *.
    #[arg(short, long)]
    action: String,
    /// Object within the project the policy applies to: an application name, or * for all.
    #[arg(short, long)]
    object: String,
    /// Whether the policy allows or denies the action.
    #[arg(short, long, value_enum, default_value = "allow")]
    permission: Permission,
    /// Resource the policy is about.
    #[arg(short, long, default_value = "applications")]
    resource: String,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum Permission {
    Allow,
    Deny,
}

impl PolicyArgs {
    fn line(&self, project: &str, role: &str) -> String {
        let permission = match self.permission {
            Permission::Allow => "allow",
            Permission::Deny => "deny",
        };
        format!(
            "p, proj:{project}:{role}, {}, {}, {project}/{}, {permission}",
            self.resource, self.action, self.object
        )
    }
}

pub async fn run(client: &Client, command: RoleCommand) -> Result<()> {
    match command {
        RoleCommand::Get { project, role, output } => {
            let stored = client.get_project(&project).await?;
            let found = find_role(&stored, &role).with_context(|| missing(&project, &role))?;
            out!("{}", role_output(&stored, found, output)?)?;
        }
        RoleCommand::List { project, output } => {
            let stored = client.get_project(&project).await?;
            out!("{}", roles_output(&stored["spec"]["roles"], output)?)?;
        }
        RoleCommand::ListTokens { project, role, unixtime } => {
            let stored = client.get_project(&project).await?;
            find_role(&stored, &role).with_context(|| missing(&project, &role))?;
            out!("{}", tokens_output(&tokens_of(&stored, &role), unixtime))?;
        }
        RoleCommand::CreateToken { project, role, expires_in, id, token_only } => {
            let expires_in = match expires_in.as_deref() {
                Some(text) => parse_expires_in(text)?,
                None => None,
            };
            let path = format!(
                "/api/v1/projects/{}/roles/{}/token",
                Client::path_segment(&project),
                Client::path_segment(&role)
            );
            let body = json!({
                "project": project, "role": role,
                "expiresIn": expires_in.map_or(0, |d| d.as_secs()),
                "id": id.unwrap_or_default(),
            });
            let answer: Value = client.call(Method::POST, &path, &[], Some(&body)).await?;
            let token = answer["token"].as_str().context("the server answered no token")?;
            if token_only {
                outln!("{token}")?;
            } else {
                out!("{}", token_summary(&project, &role, token)?)?;
            }
        }
        RoleCommand::DeleteToken { project, role, issued_at } => {
            let path = format!(
                "/api/v1/projects/{}/roles/{}/token/{issued_at}",
                Client::path_segment(&project),
                Client::path_segment(&role)
            );
            let _: Value = client.call(Method::DELETE, &path, &[], None).await?;
        }
        command => edit(client, command).await?,
    }
    Ok(())
}

/// The commands that change the project's spec: read it, change its roles, write it back (refused by the
/// server if the project changed since it was read).
async fn edit(client: &Client, command: RoleCommand) -> Result<()> {
    let project = match &command {
        RoleCommand::Create { project, .. }
        | RoleCommand::Delete { project, .. }
        | RoleCommand::AddPolicy { project, .. }
        | RoleCommand::RemovePolicy { project, .. }
        | RoleCommand::AddGroup { project, .. }
        | RoleCommand::RemoveGroup { project, .. } => project.clone(),
        _ => unreachable!("read-only commands are run by `run`"),
    };
    let mut stored = client.get_project(&project).await?;
    let Some(message) = apply(&mut stored, command)? else {
        return Ok(());
    };
    client.update_project(&project, &stored).await.with_context(|| format!("updating project {project}"))?;
    if !message.is_empty() {
        outln!("{message}")?;
    }
    Ok(())
}

/// Changes `project`'s roles as `command` says; the line to print, or `None` when there is nothing to
/// write (printed here: the role already exists, or is not there to delete).
fn apply(project: &mut Value, command: RoleCommand) -> Result<Option<String>> {
    let name = project["metadata"]["name"].as_str().unwrap_or_default().to_string();
    if !project["spec"]["roles"].is_array() {
        project["spec"]["roles"] = json!([]);
    }
    let roles = project["spec"]["roles"].as_array_mut().expect("made an array above");
    let index = |roles: &Vec<Value>, role: &str| roles.iter().position(|r| r["name"].as_str() == Some(role));
    match command {
        RoleCommand::Create { role, description, .. } => {
            if index(roles, &role).is_some() {
                outln!("Role '{role}' already exists")?;
                return Ok(None);
            }
            let mut new = json!({"name": role});
            if let Some(description) = description.filter(|d| !d.is_empty()) {
                new["description"] = description.into();
            }
            roles.push(new);
            Ok(Some(format!("Role '{role}' created")))
        }
        RoleCommand::Delete { role, .. } => {
            let Some(i) = index(roles, &role) else {
                outln!("Role '{role}' does not exist in project")?;
                return Ok(None);
            };
            roles.remove(i);
            Ok(Some(format!("Role '{role}' deleted")))
        }
        RoleCommand::AddPolicy { role, policy, .. } => {
            let i = index(roles, &role).with_context(|| missing(&name, &role))?;
            let line = policy.line(&name, &role);
            let policies = list_mut(&mut roles[i], "policies");
            if policies.iter().any(|p| p.as_str().is_some_and(|p| same_policy(p, &line))) {
                bail!("policy '{line}' already exists for role '{role}'");
            }
            policies.push(line.into());
            Ok(Some(String::new()))
        }
        RoleCommand::RemovePolicy { role, policy, .. } => {
            let i = index(roles, &role).with_context(|| missing(&name, &role))?;
            let line = policy.line(&name, &role);
            let policies = list_mut(&mut roles[i], "policies");
            let before = policies.len();
            policies.retain(|p| !p.as_str().is_some_and(|p| same_policy(p, &line)));
            if policies.len() == before {
                bail!("policy '{line}' does not exist for role '{role}'");
            }
            Ok(Some(String::new()))
        }
        RoleCommand::AddGroup { role, group, .. } => {
            let i = index(roles, &role).with_context(|| missing(&name, &role))?;
            let groups = list_mut(&mut roles[i], "groups");
            if groups.iter().any(|g| g.as_str() == Some(group.as_str())) {
                outln!("Group '{group}' already present in role '{role}'")?;
                return Ok(None);
            }
            groups.push(group.clone().into());
            Ok(Some(format!("Group '{group}' added to role '{role}'")))
        }
        RoleCommand::RemoveGroup { role, group, .. } => {
            let i = index(roles, &role).with_context(|| missing(&name, &role))?;
            let groups = list_mut(&mut roles[i], "groups");
            let before = groups.len();
            groups.retain(|g| g.as_str() != Some(group.as_str()));
            if groups.len() == before {
                outln!("Group '{group}' not present in role '{role}'")?;
                return Ok(None);
            }
            Ok(Some(format!("Group '{group}' removed from role '{role}'")))
        }
        _ => unreachable!("read-only commands are run by `run`"),
    }
}

fn missing(project: &str, role: &str) -> String {
    format!("project '{project}' does not have role '{role}'")
}

/// Two policy lines say the same once blanks around their fields are ignored.
fn same_policy(a: &str, b: &str) -> bool {
    let fields = |s: &str| s.split(',').map(|f| f.trim().to_string()).collect::<Vec<_>>();
    fields(a) == fields(b)
}

/// The list `key` of `role`, made when missing.
fn list_mut<'a>(role: &'a mut Value, key: &str) -> &'a mut Vec<Value> {
    if !role[key].is_array() {
        role[key] = json!([]);
    }
    role[key].as_array_mut().expect("made an array above")
}

fn find_role<'a>(project: &'a Value, role: &str) -> Option<&'a Value> {
    project["spec"]["roles"].as_array()?.iter().find(|r| r["name"].as_str() == Some(role))
}

/// A role's tokens: `status.jwtTokensByRole[role].items`, else (older projects) the role's `jwtTokens`.
fn tokens_of(project: &Value, role: &str) -> Vec<Value> {
    let status = project["status"]["jwtTokensByRole"][role]["items"].as_array();
    let spec = find_role(project, role).and_then(|r| r["jwtTokens"].as_array());
    status.or(spec).cloned().unwrap_or_default()
}

fn role_output(project: &Value, role: &Value, output: Option<Output>) -> Result<String> {
    if let Some(text) = structured(role, output)? {
        return Ok(text);
    }
    let text = |key: &str| role[key].as_str().unwrap_or_default().to_string();
    let lines = |key: &str| -> Vec<String> {
        role[key].as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_string).collect()
    };
    let mut out =
        format!("Role Name:     {}\nDescription:   {}\nPolicies:\n", text("name"), text("description"));
    for policy in lines("policies") {
        out.push_str(&format!("{policy}\n"));
    }
    out.push_str(&format!("Groups:        {}\n", or_none(&lines("groups").join(","))));
    out.push_str("JWT Tokens:\n");
    let mut table = Table::new(["ID", "ISSUED-AT", "EXPIRES-AT"]);
    for token in tokens_of(project, &text("name")) {
        let iat = token["iat"].as_i64().unwrap_or_default();
        let exp = token["exp"].as_i64().filter(|e| *e > 0);
        table.row([iat.to_string(), timestamp(iat), exp.map_or("<none>".to_string(), timestamp)]);
    }
    out.push_str(&table.render());
    Ok(out)
}

fn roles_output(roles: &Value, output: Option<Output>) -> Result<String> {
    let empty = Vec::new();
    let roles = roles.as_array().unwrap_or(&empty);
    if let Some(text) = structured(roles, output)? {
        return Ok(text);
    }
    if output == Some(Output::Name) {
        return Ok(roles.iter().filter_map(|r| r["name"].as_str()).map(|n| format!("{n}\n")).collect());
    }
    let wide = output == Some(Output::Wide);
    let mut table = Table::new(if wide {
        vec!["ROLE-NAME", "DESCRIPTION", "POLICIES", "GROUPS"]
    } else {
        vec!["ROLE-NAME", "DESCRIPTION"]
    });
    for role in roles {
        let mut row = vec![
            role["name"].as_str().unwrap_or_default().to_string(),
            role["description"].as_str().unwrap_or_default().to_string(),
        ];
        if wide {
            let count = |key: &str| role[key].as_array().map_or(0, Vec::len).to_string();
            row.extend([count("policies"), count("groups")]);
        }
        table.row(row);
    }
    Ok(table.render())
}

fn tokens_output(tokens: &[Value], unixtime: bool) -> String {
    let show = |t: i64| if unixtime { t.to_string() } else { timestamp(t) };
    let mut table = Table::new(["ID", "ISSUED AT", "EXPIRES AT"]);
    for token in tokens {
        let iat = token["iat"].as_i64().unwrap_or_default();
        let exp = token["exp"].as_i64().filter(|e| *e > 0);
        let id = token["id"].as_str().map_or_else(|| iat.to_string(), str::to_string);
        table.row([id, show(iat), exp.map_or("Never".to_string(), show)]);
    }
    table.render()
}

/// What `argocd proj role create-token` prints, from the token's own claims.
fn token_summary(project: &str, role: &str, token: &str) -> Result<String> {
    use base64::Engine;
    let payload = token.split('.').nth(1).context("the server answered a malformed token")?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .context("the server answered a malformed token")?;
    let claims: Value = serde_json::from_slice(&bytes).context("the server answered a malformed token")?;
    let exp = claims["exp"].as_i64().filter(|e| *e > 0);
    Ok(format!(
        "Create token succeeded for proj:{project}:{role}.\n  ID: {}\n  Issued At: {}\n  Expires At: {}\n  Token: {token}\n",
        claims["jti"].as_str().unwrap_or_default(),
        timestamp(claims["iat"].as_i64().unwrap_or_default()),
        exp.map_or("Never".to_string(), timestamp),
    ))
}

/// RFC 3339 in UTC.
fn timestamp(seconds: i64) -> String {
    k8s_openapi::jiff::Timestamp::from_second(seconds).map_or_else(|_| seconds.to_string(), |t| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn project() -> Value {
        json!({"metadata": {"name": "shop"}, "spec": {"roles": [{"name": "ci", "policies": []}]}})
    }

    fn policy(action: &str, object: &str, permission: Permission) -> PolicyArgs {
        PolicyArgs {
            action: action.into(),
            object: object.into(),
            permission,
            resource: "applications".into(),
        }
    }

    #[test]
    fn policies_are_written_as_argo_cd_writes_them() {
        let mut p = project();
        let add = RoleCommand::AddPolicy {
            project: "shop".into(),
            role: "ci".into(),
            policy: policy("get", "*", Permission::Allow),
        };
        apply(&mut p, add).unwrap();
        assert_eq!(
            p["spec"]["roles"][0]["policies"],
            json!(["p, proj:shop:ci, applications, get, shop/*, allow"])
        );
        let again = RoleCommand::AddPolicy {
            project: "shop".into(),
            role: "ci".into(),
            policy: policy("get", "*", Permission::Allow),
        };
        assert!(apply(&mut p, again).unwrap_err().to_string().contains("already exists"));
        let remove = RoleCommand::RemovePolicy {
            project: "shop".into(),
            role: "ci".into(),
            policy: policy("get", "*", Permission::Allow),
        };
        apply(&mut p, remove).unwrap();
        assert_eq!(p["spec"]["roles"][0]["policies"], json!([]));
        let deny = RoleCommand::AddPolicy {
            project: "shop".into(),
            role: "ops".into(),
            policy: policy("sync", "web", Permission::Deny),
        };
        assert_eq!(apply(&mut p, deny).unwrap_err().to_string(), "project 'shop' does not have role 'ops'");
    }

    #[test]
    fn roles_and_groups_are_added_and_removed_once() {
        let mut p = project();
        let create = |role: &str| RoleCommand::Create {
            project: "shop".into(),
            role: role.into(),
            description: Some("deploys".into()),
        };
        assert_eq!(apply(&mut p, create("ops")).unwrap().as_deref(), Some("Role 'ops' created"));
        assert_eq!(p["spec"]["roles"][1], json!({"name": "ops", "description": "deploys"}));
        assert_eq!(apply(&mut p, create("ops")).unwrap(), None, "already there: nothing to write");
        let group =
            |g: &str| RoleCommand::AddGroup { project: "shop".into(), role: "ops".into(), group: g.into() };
        apply(&mut p, group("my-org:ops")).unwrap();
        assert_eq!(apply(&mut p, group("my-org:ops")).unwrap(), None);
        assert_eq!(p["spec"]["roles"][1]["groups"], json!(["my-org:ops"]));
        let ungroup = RoleCommand::RemoveGroup {
            project: "shop".into(),
            role: "ops".into(),
            group: "my-org:ops".into(),
        };
        assert!(apply(&mut p, ungroup).unwrap().is_some());
        let delete = RoleCommand::Delete { project: "shop".into(), role: "ops".into() };
        assert_eq!(apply(&mut p, delete).unwrap().as_deref(), Some("Role 'ops' deleted"));
        assert_eq!(p["spec"]["roles"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn tokens_come_from_the_status_and_print_as_argo_cd_lists_them() {
        let mut p = project();
        p["spec"]["roles"][0]["jwtTokens"] = json!([{"iat": 1}]);
        p["status"] = json!({"jwtTokensByRole": {"ci": {"items": [{"iat": 1_700_000_000, "id": "deploy"}, {"iat": 1_700_000_000, "exp": 1_700_003_600}]}}});
        let tokens = tokens_of(&p, "ci");
        assert_eq!(tokens.len(), 2);
        assert_eq!(
            tokens_output(&tokens, true),
            "ID          ISSUED AT   EXPIRES AT\ndeploy      1700000000  Never\n1700000000  1700000000  1700003600\n"
        );
        assert!(tokens_output(&tokens, false).contains("2023-11-14T22:13:20Z"));
    }

    #[test]
    fn expiry_takes_go_durations_and_days() {
        assert_eq!(parse_expires_in("24h").unwrap(), Some(Duration::from_secs(86_400)));
        assert_eq!(parse_expires_in("7d").unwrap(), Some(Duration::from_secs(604_800)));
        assert_eq!(parse_expires_in("0s").unwrap(), None);
        assert!(parse_expires_in("soon").is_err());
    }
}
