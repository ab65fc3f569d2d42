//! `berth app actions list|run`: the resource actions of an application's managed resources, as
//! `argocd app actions` lists and runs them. The resources come from the app's managed resources (those
//! with a live object), narrowed by `--group`, `--kind`, `--namespace` and `--resource-name`; `run` needs
//! `--kind` and, when several resources match, `--all`. `--param NAME=VALUE` passes a parameter (the
//! built-in `scale` takes `replicas`).

use crate::client::{Client, ClientError, ManagedResources, split_app_name};
use crate::output::{Output, Table, out, structured};
use anyhow::{Context as _, Result, bail};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Args, Debug)]
pub struct ActionsArgs {
    #[command(subcommand)]
    command: ActionsCommand,
}

#[derive(Subcommand, Debug)]
enum ActionsCommand {
    /// List the actions of the application's resources (all of them, or those the flags select).
    List {
        name: String,
        #[arg(long)]
        kind: Option<String>,
        #[command(flatten)]
        selector: SelectorArgs,
        #[arg(short, long, value_enum)]
        output: Option<Output>,
    },
    /// Run an action on the resource the flags select (`--all`: on each that matches).
    Run {
        name: String,
        action: String,
        #[arg(long)]
        kind: String,
        #[command(flatten)]
        selector: SelectorArgs,
        /// Run it on every resource that matches, not only when one does.
        #[arg(long)]
        all: bool,
        /// A parameter of the action (repeatable), such as `replicas=3` for `scale`.
        #[arg(long = "param", value_name = "NAME=VALUE")]
        params: Vec<String>,
    },
}

#[derive(Args, Debug)]
struct SelectorArgs {
    /// The resource's API group (empty for the core group).
    #[arg(long)]
    group: Option<String>,
    #[arg(long)]
    namespace: Option<String>,
    #[arg(long)]
    resource_name: Option<String>,
}

/// Which managed resources a command acts on; `None` matches any.
#[derive(Debug, Default, Clone, PartialEq)]
struct Selector {
    group: Option<String>,
    kind: Option<String>,
    namespace: Option<String>,
    name: Option<String>,
}

impl Selector {
    fn new(kind: Option<String>, args: SelectorArgs) -> Selector {
        let given = |v: Option<String>| v.filter(|v| !v.is_empty());
        // An empty group is the core group, so it stays a filter.
        Selector {
            group: args.group,
            kind: given(kind),
            namespace: given(args.namespace),
            name: given(args.resource_name),
        }
    }
}

/// A resource an action runs on, its version from its live object.
#[derive(Debug, Clone, PartialEq)]
struct Resource {
    group: String,
    version: String,
    kind: String,
    namespace: String,
    name: String,
}

/// One line of `actions list`, with the field names `argocd app actions list -o json` prints.
#[derive(Serialize, Debug, PartialEq)]
#[serde(rename_all = "PascalCase")]
struct DisplayedAction {
    group: String,
    kind: String,
    name: String,
    action: String,
    disabled: bool,
}

/// Argo CD's ResourceActionsListResponse, the fields the CLI shows.
#[derive(Deserialize, Debug, Default)]
struct ActionList {
    #[serde(default)]
    actions: Option<Vec<ListedAction>>,
}

#[derive(Deserialize, Debug, Default)]
struct ListedAction {
    #[serde(default)]
    name: String,
    #[serde(default)]
    disabled: Option<bool>,
}

pub async fn run(client: &Client, args: ActionsArgs) -> Result<()> {
    match args.command {
        ActionsCommand::List { name, kind, selector, output } => {
            let selector = Selector::new(kind, selector);
            let resources = client.managed_resources(&name).await?;
            let mut shown = Vec::new();
            for resource in matching(&resources, &selector, true)? {
                let query = resource_query(&resource);
                let list: ActionList = call(client, &name, "", Method::GET, "", &query, None).await?;
                shown.extend(list.actions.unwrap_or_default().into_iter().map(|a| DisplayedAction {
                    group: resource.group.clone(),
                    kind: resource.kind.clone(),
                    name: resource.name.clone(),
                    action: a.name,
                    disabled: a.disabled.unwrap_or(false),
                }));
            }
            match structured(&shown, output)? {
                Some(text) => out!("{text}")?,
                None => out!("{}", table(&shown))?,
            }
        }
        ActionsCommand::Run { name, action, kind, selector, all, params } => {
            let selector = Selector::new(Some(kind), selector);
            let params = parameters(&params)?;
            let resources = client.managed_resources(&name).await?;
            let targets = matching(&resources, &selector, all)?;
            if selector.group.is_none() && targets.iter().any(|t| t.group != targets[0].group) {
                bail!("the kind is in more than one API group: say which with --group");
            }
            for resource in targets {
                let (app_namespace, plain) = split_app_name(&name);
                let body = serde_json::json!({
                    "name": plain, "appNamespace": app_namespace.unwrap_or_default(),
                    "namespace": resource.namespace, "resourceName": resource.name,
                    "group": resource.group, "version": resource.version, "kind": resource.kind,
                    "action": action, "resourceActionParameters": params,
                });
                let _: Value = call(client, &name, &action, Method::POST, "/v2", &[], Some(&body)).await?;
            }
        }
    }
    Ok(())
}

/// A call under `/api/v1/applications/{name}/resource/actions`, its refusals worded for the terminal.
/// `name` may be `<namespace>/<name>`: the namespace goes as `appNamespace`.
async fn call<T: serde::de::DeserializeOwned>(
    client: &Client,
    name: &str,
    action: &str,
    method: Method,
    suffix: &str,
    query: &[(&str, String)],
    body: Option<&Value>,
) -> Result<T> {
    let (app_namespace, plain) = split_app_name(name);
    let path = format!("/api/v1/applications/{}/resource/actions{suffix}", Client::path_segment(plain));
    let mut query = query.to_vec();
    if let Some(app_namespace) = app_namespace {
        query.push(("appNamespace", app_namespace.to_string()));
    }
    match client.call(method, &path, &query, body).await {
        // The server refuses a missing application as a forbidden one, so names cannot be probed.
        Err(ClientError::PermissionDenied(message)) if message == "permission denied" => {
            if action.is_empty() {
                bail!("application {name} not found, or permission denied")
            }
            bail!("application {name} not found, or permission denied to run {action} on it")
        }
        Err(ClientError::Unsupported { .. }) => bail!("the server does not support resource actions"),
        other => other.with_context(|| format!("application {name}")),
    }
}

fn resource_query(resource: &Resource) -> Vec<(&'static str, String)> {
    vec![
        ("namespace", resource.namespace.clone()),
        ("resourceName", resource.name.clone()),
        ("group", resource.group.clone()),
        ("version", resource.version.clone()),
        ("kind", resource.kind.clone()),
    ]
}

/// The managed resources with a live object that `selector` selects; an error when none does, or when
/// several do and `all` is not set.
fn matching(resources: &ManagedResources, selector: &Selector, all: bool) -> Result<Vec<Resource>> {
    let wanted = |filter: &Option<String>, value: &str| filter.as_deref().is_none_or(|f| f == value);
    let found: Vec<Resource> = resources
        .items
        .iter()
        .filter_map(|item| {
            let live: Value = serde_json::from_str(&item.live_state).ok()?;
            let api_version = live["apiVersion"].as_str()?;
            let version = api_version.rsplit('/').next().unwrap_or(api_version).to_string();
            Some(Resource {
                group: item.group.clone(),
                version,
                kind: item.kind.clone(),
                namespace: item.namespace.clone(),
                name: item.name.clone(),
            })
        })
        .filter(|r| {
            wanted(&selector.group, &r.group)
                && wanted(&selector.kind, &r.kind)
                && wanted(&selector.namespace, &r.namespace)
                && wanted(&selector.name, &r.name)
        })
        .collect();
    match found.len() {
        0 => bail!("no matching resource found"),
        1 => Ok(found),
        _ if all => Ok(found),
        n => bail!(
            "{n} resources match: narrow it down with --resource-name or --namespace, or use --all to run the action on each"
        ),
    }
}

/// `--param NAME=VALUE` flags as the request's `resourceActionParameters`.
fn parameters(flags: &[String]) -> Result<Vec<Value>> {
    flags
        .iter()
        .map(|flag| match flag.split_once('=') {
            Some((name, value)) if !name.is_empty() => Ok(serde_json::json!({"name": name, "value": value})),
            _ => bail!("--param {flag:?}: expected NAME=VALUE"),
        })
        .collect()
}

/// `actions list` as `argocd` prints it: GROUP, KIND, NAME, ACTION, DISABLED.
fn table(actions: &[DisplayedAction]) -> String {
    let mut table = Table::new(["GROUP", "KIND", "NAME", "ACTION", "DISABLED"]);
    for a in actions {
        table.row([
            a.group.clone(),
            a.kind.clone(),
            a.name.clone(),
            a.action.clone(),
            a.disabled.to_string(),
        ]);
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::ResourceDiff;

    fn managed(group: &str, kind: &str, namespace: &str, name: &str, live: bool) -> ResourceDiff {
        let api_version = if group.is_empty() { "v1".to_string() } else { format!("{group}/v1") };
        ResourceDiff {
            group: group.into(),
            kind: kind.into(),
            namespace: namespace.into(),
            name: name.into(),
            live_state: if live {
                serde_json::json!({"apiVersion": api_version, "kind": kind}).to_string()
            } else {
                "null".into()
            },
            ..Default::default()
        }
    }

    fn resources() -> ManagedResources {
        ManagedResources {
            items: vec![
                managed("apps", "Deployment", "shop", "web", true),
                managed("apps", "Deployment", "shop", "api", true),
                managed("", "ConfigMap", "shop", "web", true),
                managed("apps", "Deployment", "shop", "gone", false),
            ],
        }
    }

    fn selector(kind: Option<&str>, name: Option<&str>) -> Selector {
        Selector { kind: kind.map(String::from), name: name.map(String::from), ..Default::default() }
    }

    #[test]
    fn resources_are_selected_by_kind_and_name_and_need_a_live_object() {
        let found = matching(&resources(), &selector(Some("Deployment"), Some("web")), false).unwrap();
        assert_eq!(
            found,
            [Resource {
                group: "apps".into(),
                version: "v1".into(),
                kind: "Deployment".into(),
                namespace: "shop".into(),
                name: "web".into()
            }]
        );
        let error = matching(&resources(), &selector(Some("Deployment"), Some("gone")), true).unwrap_err();
        assert_eq!(error.to_string(), "no matching resource found");
        let core = Selector { group: Some(String::new()), ..selector(None, Some("web")) };
        assert_eq!(matching(&resources(), &core, false).unwrap()[0].kind, "ConfigMap");
    }

    #[test]
    fn several_matches_need_all() {
        let error = matching(&resources(), &selector(Some("Deployment"), None), false).unwrap_err();
        assert!(error.to_string().contains("--all"), "{error}");
        assert_eq!(matching(&resources(), &selector(Some("Deployment"), None), true).unwrap().len(), 2);
    }

    #[test]
    fn parameters_are_name_value_pairs() {
        assert_eq!(
            parameters(&["replicas=3".into(), "note=a=b".into()]).unwrap(),
            [
                serde_json::json!({"name": "replicas", "value": "3"}),
                serde_json::json!({"name": "note", "value": "a=b"})
            ]
        );
        assert!(parameters(&["replicas".into()]).is_err());
        assert!(parameters(&["=3".into()]).is_err());
    }

    #[test]
    fn the_list_prints_as_argocd_prints_it() {
        let actions = [DisplayedAction {
            group: "apps".into(),
            kind: "Deployment".into(),
            name: "web".into(),
            action: "restart".into(),
            disabled: false,
        }];
        assert_eq!(
            table(&actions),
            "GROUP  KIND        NAME  ACTION   DISABLED\napps   Deployment  web   restart  false\n"
        );
        let json = serde_json::to_value(&actions).unwrap();
        assert_eq!(
            json,
            serde_json::json!([{"Group": "apps", "Kind": "Deployment", "Name": "web", "Action": "restart", "Disabled": false}])
        );
    }
}
