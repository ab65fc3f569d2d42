//! `berth cluster list|get|rm|add|rotate-auth`: deployment destinations (in-cluster and Argo CD's `cluster`
//! Secrets), as `argocd cluster …`.

use crate::client::{Client, ConnectionArgs};
use crate::output::{Output, Table, out, outln, structured, to_yaml};
use anyhow::{Context as _, Result};
use clap::{Args, Subcommand};
use serde_json::Value;

#[derive(Args, Debug)]
pub struct ClusterArgs {
    #[command(flatten)]
    connection: ConnectionArgs,
    #[command(subcommand)]
    command: ClusterCommand,
}

#[derive(Subcommand, Debug)]
enum ClusterCommand {
    /// List the clusters (in-cluster first).
    List {
        #[arg(short, long, value_enum)]
        output: Option<Output>,
    },
    /// Show a cluster (YAML by default; credentials are never shown).
    Get {
        /// The cluster's server URL, or its name.
        #[arg(value_name = "SERVER")]
        cluster: String,
        #[arg(short, long, value_enum)]
        output: Option<Output>,
    },
    /// Remove a cluster (the built-in in-cluster destination cannot be removed).
    Rm {
        /// The cluster's server URL, or its name.
        #[arg(value_name = "SERVER")]
        cluster: String,
        /// Do not ask for confirmation.
        #[arg(short, long)]
        yes: bool,
    },
    /// Add the cluster of a kubeconfig context: a ServiceAccount with its roles and a token there, registered
    /// with berth.
    Add(add::AddArgs),
    /// Give a cluster added with `add` a new token and revoke the old one.
    RotateAuth(add::RotateAuthArgs),
}

pub async fn run(args: ClusterArgs) -> Result<()> {
    let client = args.connection.client()?;
    match args.command {
        ClusterCommand::List { output } => {
            let items = client.list_clusters().await?;
            out!("{}", list_output(&items, output)?)?;
        }
        ClusterCommand::Get { cluster, output } => {
            let server = resolve(&client, &cluster).await?;
            let cluster = client.get_cluster(&server).await?;
            out!("{}", get_output(&cluster, output)?)?;
        }
        ClusterCommand::Rm { cluster, yes } => {
            let server = resolve(&client, &cluster).await?;
            if !yes {
                let question = format!(
                    "Are you sure you want to remove '{server}'? Applications deploying to it will not sync any more. [y/n] "
                );
                if !crate::terminal::confirm(&question, "remove a cluster")? {
                    outln!("The command to remove '{server}' was cancelled.")?;
                    return Ok(());
                }
            }
            client.delete_cluster(&server).await?;
            outln!("Cluster '{server}' removed")?;
        }
        ClusterCommand::Add(add) => add::add(&client, add).await?,
        ClusterCommand::RotateAuth(rotate) => add::rotate_auth(&client, rotate).await?,
    }
    Ok(())
}

/// A server URL as given, or the server of the cluster with that name.
async fn resolve(client: &Client, server_or_name: &str) -> Result<String> {
    if server_or_name.contains("://") {
        return Ok(server_or_name.to_string());
    }
    let clusters = client.list_clusters().await?;
    clusters
        .iter()
        .find(|c| c["name"].as_str() == Some(server_or_name))
        .and_then(|c| c["server"].as_str())
        .map(str::to_string)
        .with_context(|| format!("no cluster named '{server_or_name}': see `berth cluster list`"))
}

fn text(c: &Value, pointer: &str) -> String {
    c.pointer(pointer).and_then(Value::as_str).unwrap_or_default().to_string()
}

/// The first of `pointers` that holds text: Argo CD answers `serverVersion` and `connectionState` both at
/// the top and in `info`, and older servers only at the top.
fn first_text(c: &Value, pointers: &[&str]) -> String {
    pointers.iter().map(|p| text(c, p)).find(|t| !t.is_empty()).unwrap_or_default()
}

/// `argocd cluster list`'s columns; `wide` adds how many applications deploy to each cluster.
fn clusters_table(items: &[Value], wide: bool) -> String {
    let mut header = vec!["SERVER", "NAME", "VERSION", "STATUS", "MESSAGE", "PROJECT"];
    if wide {
        header.push("APPLICATIONS");
    }
    let mut table = Table::new(header);
    for c in items {
        let mut row = vec![
            text(c, "/server"),
            text(c, "/name"),
            first_text(c, &["/serverVersion", "/info/serverVersion"]),
            first_text(c, &["/connectionState/status", "/info/connectionState/status"]),
            first_text(c, &["/connectionState/message", "/info/connectionState/message"]),
            text(c, "/project"),
        ];
        if wide {
            // A server without a controller does not count applications.
            let count = c.pointer("/info/applicationsCount").and_then(Value::as_i64);
            row.push(count.map(|n| n.to_string()).unwrap_or_default());
        }
        table.row(row);
    }
    table.render()
}

fn list_output(items: &[Value], output: Option<Output>) -> Result<String> {
    if let Some(text) = structured(items, output)? {
        return Ok(text);
    }
    Ok(match output {
        Some(Output::Name) => items.iter().map(|c| format!("{}\n", text(c, "/server"))).collect(),
        _ => clusters_table(items, output == Some(Output::Wide)),
    })
}

/// `argocd cluster get` prints YAML unless asked otherwise.
fn get_output(cluster: &Value, output: Option<Output>) -> Result<String> {
    match output {
        None | Some(Output::Yaml) => to_yaml(cluster),
        Some(Output::Wide) => Ok(clusters_table(std::slice::from_ref(cluster), true)),
        Some(Output::Name) => Ok(format!("{}\n", text(cluster, "/server"))),
        Some(Output::Json) => structured(cluster, output).map(Option::unwrap_or_default),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn clusters_print_as_argocd_cluster_list() {
        let items = vec![
            json!({"server": "https://kubernetes.default.svc", "name": "in-cluster", "serverVersion": "1.31",
                "connectionState": {"status": "Successful"}}),
            json!({"server": "https://prod.example.com:6443", "name": "prod", "project": "team-a",
                "connectionState": {"status": "Unknown"}}),
        ];
        assert_eq!(
            list_output(&items, None).unwrap(),
            "SERVER                          NAME        VERSION  STATUS      MESSAGE  PROJECT\n\
             https://kubernetes.default.svc  in-cluster  1.31     Successful\n\
             https://prod.example.com:6443   prod                 Unknown              team-a\n"
        );
        assert_eq!(
            list_output(&items, Some(Output::Name)).unwrap(),
            "https://kubernetes.default.svc\nhttps://prod.example.com:6443\n"
        );
        assert_eq!(get_output(&items[1], Some(Output::Name)).unwrap(), "https://prod.example.com:6443\n");
        assert!(get_output(&items[1], None).unwrap().starts_with("connectionState:"));
    }

    #[test]
    fn wide_clusters_show_the_controllers_state_and_application_count() {
        // As a server with a controller answers: the state in `info` too, a failure with its reason.
        let items = vec![
            json!({"server": "https://kubernetes.default.svc", "name": "in-cluster",
                "info": {"serverVersion": "1.31", "applicationsCount": 3,
                         "connectionState": {"status": "Successful", "message": ""}}}),
            json!({"server": "https://prod.example.com:6443", "name": "prod",
                "connectionState": {"status": "Failed", "message": "connection refused"},
                "info": {"applicationsCount": 0, "connectionState": {"status": "Failed", "message": "connection refused"}}}),
            json!({"server": "https://old.example.com", "name": "old", "connectionState": {"status": "Unknown"}}),
        ];
        assert_eq!(
            list_output(&items, Some(Output::Wide)).unwrap(),
            "SERVER                          NAME        VERSION  STATUS      MESSAGE             PROJECT  APPLICATIONS\n\
             https://kubernetes.default.svc  in-cluster  1.31     Successful                               3\n\
             https://prod.example.com:6443   prod                 Failed      connection refused           0\n\
             https://old.example.com         old                  Unknown\n"
        );
        let one = get_output(&items[0], Some(Output::Wide)).unwrap();
        assert!(
            one.starts_with("SERVER") && one.contains("APPLICATIONS") && one.trim_end().ends_with('3'),
            "{one}"
        );
    }
}

/// `berth cluster add CONTEXT` and `berth cluster rotate-auth`, as `argocd cluster add|rotate-auth`: on the
/// target cluster (reached through a kubeconfig context) the ServiceAccount berth acts as, its roles and a
/// long-lived token Secret; then the cluster, with that token, registered through berth's API.
mod add {
    use super::resolve;
    use crate::client::Client;
    use crate::output::{Output, out, outln, structured};
    use anyhow::{Context as _, Result, bail};
    use berth_api::destination::IN_CLUSTER_SERVER;
    use clap::{Args, ValueEnum};
    use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
    use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
    use kube::config::{KubeConfigOptions, Kubeconfig};
    use reqwest::Method;
    use serde_json::{Value, json};
    use std::path::PathBuf;
    use std::time::{Duration, Instant};

    /// The ServiceAccount Argo CD's `cluster add` creates, and the names of its role and binding.
    const MANAGER: &str = "argocd-manager";
    const MANAGER_ROLE: &str = "argocd-manager-role";
    const MANAGER_BINDING: &str = "argocd-manager-role-binding";
    /// The field manager of what `cluster add` applies on the target cluster.
    const FIELD_MANAGER: &str = "berth-cluster-add";
    const SA_TOKEN_TYPE: &str = "kubernetes.io/service-account-token";
    const SA_NAME_ANNOTATION: &str = "kubernetes.io/service-account.name";
    /// How long the target's token controller may take to fill a new token Secret.
    const TOKEN_DEADLINE: Duration = Duration::from_secs(30);

    /// `-o`: the registered cluster as the API answers it (credentials redacted).
    #[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Format {
        Json,
        Yaml,
    }

    impl Format {
        fn print(self, cluster: &Value) -> Result<()> {
            let output = match self {
                Format::Json => Output::Json,
                Format::Yaml => Output::Yaml,
            };
            out!("{}", structured(cluster, Some(output))?.unwrap_or_default())?;
            Ok(())
        }
    }

    /// Where the target cluster's kubeconfig is, and the ServiceAccount berth acts as there.
    #[derive(Args, Debug)]
    pub struct TargetArgs {
        /// The kubeconfig (default: $KUBECONFIG, else ~/.kube/config).
        #[arg(long, value_name = "PATH")]
        kubeconfig: Option<PathBuf>,
        /// The namespace of the ServiceAccount on the target cluster (it must exist).
        #[arg(long, default_value = "kube-system", value_name = "NAMESPACE")]
        system_namespace: String,
        /// Use this existing ServiceAccount and its own permissions instead of creating argocd-manager and
        /// its roles.
        #[arg(long, value_name = "NAME")]
        service_account: Option<String>,
    }

    impl TargetArgs {
        fn account(&self) -> &str {
            self.service_account.as_deref().unwrap_or(MANAGER)
        }

        fn kubeconfig(&self) -> Result<Kubeconfig> {
            match &self.kubeconfig {
                Some(path) => Kubeconfig::read_from(path)
                    .with_context(|| format!("reading the kubeconfig {}", path.display())),
                None => Kubeconfig::read().context("reading the kubeconfig ($KUBECONFIG or ~/.kube/config)"),
            }
        }
    }

    /// `berth cluster add CONTEXT`.
    #[derive(Args, Debug)]
    pub struct AddArgs {
        /// The kubeconfig context of the cluster to add.
        context: String,
        #[command(flatten)]
        target: TargetArgs,
        /// The cluster's name in berth (default: the context's name).
        #[arg(long)]
        name: Option<String>,
        /// berth runs inside this cluster: register it as https://kubernetes.default.svc.
        #[arg(long)]
        in_cluster: bool,
        /// Manage only this namespace (repeatable): Roles there and no cluster-wide access.
        #[arg(long = "namespace", value_name = "NAMESPACE")]
        namespaces: Vec<String>,
        /// With --namespace, manage cluster-scoped resources too.
        #[arg(long)]
        cluster_resources: bool,
        /// The project the cluster belongs to.
        #[arg(long)]
        project: Option<String>,
        /// A label of the cluster (repeatable).
        #[arg(long = "label", value_name = "KEY=VALUE", value_parser = key_value)]
        labels: Vec<(String, String)>,
        /// An annotation of the cluster (repeatable).
        #[arg(long = "annotation", value_name = "KEY=VALUE", value_parser = key_value)]
        annotations: Vec<(String, String)>,
        /// The controller shard that manages the cluster.
        #[arg(long)]
        shard: Option<i64>,
        /// Replace a registered cluster of the same server whose settings differ.
        #[arg(long)]
        upsert: bool,
        /// Do not ask for confirmation.
        #[arg(short, long)]
        yes: bool,
        #[arg(short, long, value_enum)]
        output: Option<Format>,
    }

    /// `berth cluster rotate-auth SERVER`.
    #[derive(Args, Debug)]
    pub struct RotateAuthArgs {
        /// The cluster's server URL, or its name.
        #[arg(value_name = "SERVER")]
        cluster: String,
        /// The kubeconfig context that reaches the cluster (default: the first whose server is the cluster's).
        #[arg(long)]
        context: Option<String>,
        #[command(flatten)]
        target: TargetArgs,
        #[arg(short, long, value_enum)]
        output: Option<Format>,
    }

    fn key_value(text: &str) -> Result<(String, String), String> {
        match text.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() => Ok((key.trim().to_string(), value.to_string())),
            _ => Err(format!("expected KEY=VALUE, not {text:?}")),
        }
    }

    /// The target cluster as a kubeconfig context describes it.
    #[derive(Debug, Clone, PartialEq)]
    pub(super) struct ContextCluster {
        pub server: String,
        /// The CA's PEM, base64-encoded (Argo CD's `caData`).
        pub ca_data: Option<String>,
        pub insecure: bool,
        pub server_name: Option<String>,
        pub proxy_url: Option<String>,
    }

    /// The cluster of `context` in `kubeconfig`; a CA file is read and encoded.
    pub(super) fn context_cluster(kubeconfig: &Kubeconfig, context: &str) -> Result<ContextCluster> {
        let Some(named) = kubeconfig.contexts.iter().find(|c| c.name == context) else {
            let known: Vec<&str> = kubeconfig.contexts.iter().map(|c| c.name.as_str()).collect();
            bail!("no context '{context}' in the kubeconfig (it has: {})", known.join(", "));
        };
        let cluster_name = named.context.as_ref().map(|c| c.cluster.as_str()).unwrap_or_default();
        let cluster = kubeconfig
            .clusters
            .iter()
            .find(|c| c.name == cluster_name)
            .and_then(|c| c.cluster.as_ref())
            .with_context(|| {
                format!("context '{context}' names cluster '{cluster_name}', which the kubeconfig lacks")
            })?;
        let server = cluster
            .server
            .clone()
            .filter(|s| !s.is_empty())
            .with_context(|| format!("cluster '{cluster_name}' of the kubeconfig has no server"))?;
        let ca_data = match (&cluster.certificate_authority_data, &cluster.certificate_authority) {
            (Some(data), _) if !data.trim().is_empty() => {
                Some(data.chars().filter(|c| !c.is_whitespace()).collect())
            }
            (_, Some(file)) if !file.is_empty() => {
                let pem = std::fs::read(file).with_context(|| format!("reading the CA file {file}"))?;
                Some(base64(pem))
            }
            _ => None,
        };
        Ok(ContextCluster {
            server,
            ca_data,
            insecure: cluster.insecure_skip_tls_verify.unwrap_or(false),
            server_name: cluster.tls_server_name.clone().filter(|s| !s.is_empty()),
            proxy_url: cluster.proxy_url.clone().filter(|s| !s.is_empty()),
        })
    }

    /// Standard base64, as Kubernetes and Argo CD encode bytes in JSON.
    fn base64(bytes: Vec<u8>) -> String {
        match serde_json::to_value(k8s_openapi::ByteString(bytes)) {
            Ok(Value::String(text)) => text,
            _ => String::new(),
        }
    }

    /// Argo CD's cluster `config` for a bearer token: the kubeconfig's CA (none when it skips verification,
    /// which a CA cannot be combined with), TLS server name and proxy.
    fn token_config(cluster: &ContextCluster, token: &str) -> Value {
        let mut tls = json!({"insecure": cluster.insecure});
        if let Some(ca) = cluster.ca_data.as_ref().filter(|_| !cluster.insecure) {
            tls["caData"] = ca.clone().into();
        }
        if let Some(name) = &cluster.server_name {
            tls["serverName"] = name.clone().into();
        }
        let mut config = json!({"bearerToken": token, "tlsClientConfig": tls});
        if let Some(proxy) = &cluster.proxy_url {
            config["proxyUrl"] = proxy.clone().into();
        }
        config
    }

    /// The body of `POST /api/v1/clusters` for `berth cluster add`.
    pub(super) fn add_request(args: &AddArgs, cluster: &ContextCluster, token: &str) -> Value {
        let server = if args.in_cluster { IN_CLUSTER_SERVER } else { &cluster.server };
        let mut body = json!({
            "server": server,
            "name": args.name.as_deref().unwrap_or(&args.context),
            "config": token_config(cluster, token),
        });
        if !args.namespaces.is_empty() {
            body["namespaces"] = args.namespaces.clone().into();
            body["clusterResources"] = args.cluster_resources.into();
        }
        if let Some(project) = &args.project {
            body["project"] = project.clone().into();
        }
        if let Some(shard) = args.shard {
            body["shard"] = shard.into();
        }
        let map = |pairs: &[(String, String)]| -> Value {
            pairs
                .iter()
                .map(|(k, v)| (k.clone(), Value::from(v.clone())))
                .collect::<serde_json::Map<_, _>>()
                .into()
        };
        if !args.labels.is_empty() {
            body["labels"] = map(&args.labels);
        }
        if !args.annotations.is_empty() {
            body["annotations"] = map(&args.annotations);
        }
        body
    }

    /// The body that re-registers `registered` (as `GET /api/v1/clusters/{server}` shows it) with a new token:
    /// every other credential of its `config` goes, the token replaces them.
    pub(super) fn rotated_request(registered: &Value, token: &str) -> Value {
        let mut body = json!({});
        for key in
            ["server", "name", "namespaces", "clusterResources", "project", "shard", "labels", "annotations"]
        {
            if let Some(value) = registered.get(key).filter(|v| !v.is_null()) {
                body[key] = value.clone();
            }
        }
        let mut config =
            registered.get("config").cloned().filter(Value::is_object).unwrap_or_else(|| json!({}));
        if let Some(config) = config.as_object_mut() {
            for credential in ["username", "password", "bearerToken", "execProviderConfig", "awsAuthConfig"] {
                config.remove(credential);
            }
            if let Some(Value::Object(tls)) = config.get_mut("tlsClientConfig") {
                tls.remove("certData");
                tls.remove("keyData");
            }
            config.insert("bearerToken".into(), token.into());
        }
        body["config"] = config;
        body
    }

    /// A client for the cluster of `context`.
    async fn target_client(kubeconfig: Kubeconfig, context: &str) -> Result<kube::Client> {
        let options = KubeConfigOptions { context: Some(context.to_string()), ..Default::default() };
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .with_context(|| format!("the kubeconfig context '{context}'"))?;
        kube::Client::try_from(config).with_context(|| format!("a client for the context '{context}'"))
    }

    fn apply_params() -> PatchParams {
        PatchParams::apply(FIELD_MANAGER).force()
    }

    /// The ServiceAccount, and either a ClusterRole with all verbs on everything bound to it, or a Role with
    /// all verbs on the resources of each of `namespaces` bound to it there.
    async fn install_manager(
        client: &kube::Client,
        system_namespace: &str,
        namespaces: &[String],
    ) -> Result<()> {
        let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), system_namespace);
        let account = json!({"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": MANAGER, "namespace": system_namespace}});
        accounts
            .patch(MANAGER, &apply_params(), &Patch::Apply(&account))
            .await
            .with_context(|| format!("creating the ServiceAccount {system_namespace}/{MANAGER}"))?;
        eprintln!("ServiceAccount \"{MANAGER}\" ready in namespace \"{system_namespace}\"");
        let subjects = json!([{"kind": "ServiceAccount", "name": MANAGER, "namespace": system_namespace}]);
        let everything = json!({"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]});
        if namespaces.is_empty() {
            let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": MANAGER_ROLE},
                "rules": [everything, {"nonResourceURLs": ["*"], "verbs": ["*"]}]});
            Api::<ClusterRole>::all(client.clone())
                .patch(MANAGER_ROLE, &apply_params(), &Patch::Apply(&role))
                .await
                .with_context(|| format!("creating the ClusterRole {MANAGER_ROLE}"))?;
            eprintln!("ClusterRole \"{MANAGER_ROLE}\" ready");
            let binding = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": MANAGER_BINDING},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": MANAGER_ROLE},
                "subjects": subjects});
            Api::<ClusterRoleBinding>::all(client.clone())
                .patch(MANAGER_BINDING, &apply_params(), &Patch::Apply(&binding))
                .await
                .with_context(|| format!("creating the ClusterRoleBinding {MANAGER_BINDING}"))?;
            eprintln!("ClusterRoleBinding \"{MANAGER_BINDING}\" ready");
            return Ok(());
        }
        for namespace in namespaces {
            let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                "metadata": {"name": MANAGER_ROLE, "namespace": namespace}, "rules": [everything]});
            Api::<Role>::namespaced(client.clone(), namespace)
                .patch(MANAGER_ROLE, &apply_params(), &Patch::Apply(&role))
                .await
                .with_context(|| format!("creating the Role {namespace}/{MANAGER_ROLE}"))?;
            let binding = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": {"name": MANAGER_BINDING, "namespace": namespace},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": MANAGER_ROLE},
                "subjects": subjects});
            Api::<RoleBinding>::namespaced(client.clone(), namespace)
                .patch(MANAGER_BINDING, &apply_params(), &Patch::Apply(&binding))
                .await
                .with_context(|| format!("creating the RoleBinding {namespace}/{MANAGER_BINDING}"))?;
            eprintln!("Role and RoleBinding \"{MANAGER_ROLE}\" ready in namespace \"{namespace}\"");
        }
        Ok(())
    }

    /// The token of a filled token Secret of `account`.
    fn secret_token(secret: &Secret, account: &str) -> Option<String> {
        let for_account = secret.type_.as_deref() == Some(SA_TOKEN_TYPE)
            && secret
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(SA_NAME_ANNOTATION))
                .map(String::as_str)
                == Some(account);
        let token = secret.data.as_ref()?.get("token")?;
        let token = String::from_utf8(token.0.clone()).ok().filter(|t| for_account && !t.is_empty())?;
        Some(token)
    }

    /// The names of the token Secrets `account` lists.
    async fn listed_token_secrets(
        accounts: &Api<ServiceAccount>,
        secrets: &Api<Secret>,
        account: &str,
    ) -> Result<Vec<String>> {
        let sa = accounts
            .get_opt(account)
            .await
            .with_context(|| format!("reading the ServiceAccount {account}"))?
            .with_context(|| format!("the ServiceAccount '{account}' does not exist on the cluster"))?;
        let mut names = Vec::new();
        for name in sa.secrets.iter().flatten().filter_map(|r| r.name.clone()) {
            let secret =
                secrets.get_opt(&name).await.with_context(|| format!("reading the Secret {name}"))?;
            if secret.is_some_and(|s| s.type_.as_deref() == Some(SA_TOKEN_TYPE)) {
                names.push(name);
            }
        }
        Ok(names)
    }

    /// A new token Secret of `account`, listed on it, and its token once the token controller filled it.
    async fn new_token(
        accounts: &Api<ServiceAccount>,
        secrets: &Api<Secret>,
        account: &str,
    ) -> Result<(String, String)> {
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {"generateName": format!("{account}-token-"),
                         "annotations": {SA_NAME_ANNOTATION: account}},
            "type": SA_TOKEN_TYPE}))?;
        let created = secrets
            .create(&PostParams::default(), &secret)
            .await
            .with_context(|| format!("creating a token Secret for the ServiceAccount {account}"))?;
        let name = created.metadata.name.clone().unwrap_or_default();
        let mut listed = listed_token_secrets(accounts, secrets, account).await?;
        listed.push(name.clone());
        let refs: Vec<Value> = listed.iter().map(|n| json!({"name": n})).collect();
        accounts
            .patch(account, &PatchParams::default(), &Patch::Merge(&json!({"secrets": refs})))
            .await
            .with_context(|| format!("listing the Secret {name} on the ServiceAccount {account}"))?;
        let deadline = Instant::now() + TOKEN_DEADLINE;
        loop {
            let secret = secrets.get(&name).await.with_context(|| format!("reading the Secret {name}"))?;
            if let Some(token) = secret_token(&secret, account) {
                eprintln!("Token Secret \"{name}\" created for the ServiceAccount \"{account}\"");
                return Ok((name, token));
            }
            if Instant::now() >= deadline {
                bail!(
                    "the token Secret {name} was not filled within {}s: does the cluster's kube-controller-manager run its token controller (--service-account-private-key-file)?",
                    TOKEN_DEADLINE.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The token of a filled token Secret `account` already lists, else of a new one.
    async fn account_token(client: &kube::Client, namespace: &str, account: &str) -> Result<String> {
        let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
        let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
        for name in listed_token_secrets(&accounts, &secrets, account).await? {
            let secret = secrets.get(&name).await.with_context(|| format!("reading the Secret {name}"))?;
            if let Some(token) = secret_token(&secret, account) {
                return Ok(token);
            }
        }
        Ok(new_token(&accounts, &secrets, account).await?.1)
    }

    /// `POST /api/v1/clusters[?upsert=true]`.
    async fn register(client: &Client, body: &Value, upsert: bool) -> Result<Value> {
        let query = [("upsert", upsert.to_string())];
        Ok(client.call(Method::POST, "/api/v1/clusters", &query, Some(body)).await?)
    }

    pub async fn add(client: &Client, args: AddArgs) -> Result<()> {
        let kubeconfig = args.target.kubeconfig()?;
        let cluster = context_cluster(&kubeconfig, &args.context)?;
        if !args.yes {
            let who = match &args.target.service_account {
                Some(account) => {
                    format!("the token of the ServiceAccount '{account}' in {}", args.target.system_namespace)
                }
                None if args.namespaces.is_empty() => format!(
                    "a ServiceAccount '{MANAGER}' in {} with full cluster-wide privileges",
                    args.target.system_namespace
                ),
                None => format!(
                    "a ServiceAccount '{MANAGER}' in {} with full privileges in the namespaces {}",
                    args.target.system_namespace,
                    args.namespaces.join(", ")
                ),
            };
            let question = format!(
                "This creates {who} on the cluster of context '{}' and gives berth its token. Continue? [y/n] ",
                args.context
            );
            if !crate::terminal::confirm(&question, "add a cluster")? {
                outln!("The command to add '{}' was cancelled.", args.context)?;
                return Ok(());
            }
        }
        let target = target_client(kubeconfig, &args.context).await?;
        if args.target.service_account.is_none() {
            install_manager(&target, &args.target.system_namespace, &args.namespaces)
                .await
                .with_context(|| format!("on the cluster of context '{}'", args.context))?;
        }
        let token = account_token(&target, &args.target.system_namespace, args.target.account())
            .await
            .with_context(|| format!("on the cluster of context '{}'", args.context))?;
        let body = add_request(&args, &cluster, &token);
        let registered = register(client, &body, args.upsert).await?;
        match args.output {
            Some(format) => format.print(&registered)?,
            None => outln!("Cluster '{}' added", body["server"].as_str().unwrap_or_default())?,
        }
        Ok(())
    }

    /// The first context of `kubeconfig` whose cluster's server is `server`.
    fn context_for_server(kubeconfig: &Kubeconfig, server: &str) -> Result<String> {
        let same = |s: &str| s.trim_end_matches('/') == server.trim_end_matches('/');
        kubeconfig
            .contexts
            .iter()
            .find(|c| context_cluster(kubeconfig, &c.name).is_ok_and(|cluster| same(&cluster.server)))
            .map(|c| c.name.clone())
            .with_context(|| format!("no context of the kubeconfig reaches {server}: pass --context"))
    }

    pub async fn rotate_auth(client: &Client, args: RotateAuthArgs) -> Result<()> {
        let server = resolve(client, &args.cluster).await?;
        let registered = client.get_cluster(&server).await?;
        let kubeconfig = args.target.kubeconfig()?;
        let context = match &args.context {
            Some(context) => context.clone(),
            None => context_for_server(&kubeconfig, &server)?,
        };
        let target = target_client(kubeconfig, &context).await?;
        let account = args.target.account();
        let accounts: Api<ServiceAccount> = Api::namespaced(target.clone(), &args.target.system_namespace);
        let secrets: Api<Secret> = Api::namespaced(target.clone(), &args.target.system_namespace);
        let old = listed_token_secrets(&accounts, &secrets, account).await?;
        let (new, token) = new_token(&accounts, &secrets, account).await?;
        let answer = register(client, &rotated_request(&registered, &token), true).await?;
        // Only once berth holds the new token: deleting a token Secret revokes its token.
        accounts
            .patch(account, &PatchParams::default(), &Patch::Merge(&json!({"secrets": [{"name": new}]})))
            .await
            .with_context(|| format!("listing the Secret {new} on the ServiceAccount {account}"))?;
        for name in old {
            secrets
                .delete(&name, &DeleteParams::default())
                .await
                .with_context(|| format!("deleting the old token Secret {name}"))?;
            eprintln!("Old token Secret \"{name}\" deleted");
        }
        match args.output {
            Some(format) => format.print(&answer)?,
            None => outln!("Cluster '{server}' rotated auth")?,
        }
        Ok(())
    }
}

#[cfg(test)]
mod add_tests {
    use super::add::*;
    use clap::Parser;
    use serde_json::json;

    #[derive(Parser, Debug)]
    struct Command {
        #[command(subcommand)]
        command: super::ClusterCommand,
    }

    fn parse(args: &[&str]) -> AddArgs {
        let parsed = Command::try_parse_from(["cluster", "add"].iter().chain(args)).unwrap();
        match parsed.command {
            super::ClusterCommand::Add(add) => add,
            other => panic!("not add: {other:?}"),
        }
    }

    fn remote() -> ContextCluster {
        ContextCluster {
            server: "https://10.0.0.7:6443".into(),
            ca_data: Some("Q0EK".into()),
            insecure: false,
            server_name: None,
            proxy_url: None,
        }
    }

    #[test]
    fn cluster_add_flags_become_argo_cd_s_cluster_request() {
        let add = parse(&[
            "prod-ctx",
            "--name",
            "prod",
            "--namespace",
            "team-a",
            "--namespace",
            "team-b",
            "--cluster-resources",
            "--project",
            "platform",
            "--label",
            "env=prod",
            "--label",
            "tier=1=gold",
            "--annotation",
            "owner=ops",
            "--upsert",
            "--yes",
        ]);
        assert_eq!(
            add_request(&add, &remote(), "t0k3n"),
            json!({
                "server": "https://10.0.0.7:6443",
                "name": "prod",
                "config": {"bearerToken": "t0k3n", "tlsClientConfig": {"insecure": false, "caData": "Q0EK"}},
                "namespaces": ["team-a", "team-b"],
                "clusterResources": true,
                "project": "platform",
                "labels": {"env": "prod", "tier": "1=gold"},
                "annotations": {"owner": "ops"},
            })
        );
    }

    #[test]
    fn cluster_add_defaults_to_the_context_name_and_full_access_without_namespaces() {
        let add = parse(&["staging"]);
        let mut cluster = remote();
        cluster.insecure = true;
        cluster.server_name = Some("api.internal".into());
        assert_eq!(
            add_request(&add, &cluster, "t"),
            json!({"server": "https://10.0.0.7:6443", "name": "staging",
                   "config": {"bearerToken": "t", "tlsClientConfig": {"insecure": true, "serverName": "api.internal"}}}),
            "an insecure kubeconfig gives no CA: a CA cannot be combined with skipping verification"
        );
        let add = parse(&["staging", "--in-cluster"]);
        assert_eq!(add_request(&add, &remote(), "t")["server"], "https://kubernetes.default.svc");
    }

    #[test]
    fn cluster_add_refuses_a_label_without_a_value() {
        let error = Command::try_parse_from(["cluster", "add", "ctx", "--label", "env"]).unwrap_err();
        assert!(error.to_string().contains("expected KEY=VALUE"), "{error}");
    }

    #[test]
    fn the_context_s_cluster_comes_from_the_kubeconfig_with_its_ca_file_encoded() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.crt");
        std::fs::write(&ca, "CA\n").unwrap();
        let kubeconfig = kube::config::Kubeconfig::from_yaml(&format!(
            "apiVersion: v1\nkind: Config\n\
             clusters:\n- name: a\n  cluster:\n    server: https://a:6443\n    certificate-authority: {}\n\
             - name: b\n  cluster:\n    server: https://b:6443\n    insecure-skip-tls-verify: true\n\
             contexts:\n- name: ctx-a\n  context: {{cluster: a, user: u}}\n- name: ctx-b\n  context: {{cluster: b, user: u}}\n\
             users:\n- name: u\n  user: {{token: x}}\n",
            ca.display()
        ))
        .unwrap();
        let a = context_cluster(&kubeconfig, "ctx-a").unwrap();
        assert_eq!(
            (a.server.as_str(), a.ca_data.as_deref(), a.insecure),
            ("https://a:6443", Some("Q0EK"), false)
        );
        let b = context_cluster(&kubeconfig, "ctx-b").unwrap();
        assert_eq!((b.ca_data, b.insecure), (None, true));
        let error = context_cluster(&kubeconfig, "nope").unwrap_err().to_string();
        assert!(error.contains("no context 'nope'") && error.contains("ctx-a, ctx-b"), "{error}");
    }

    #[test]
    fn rotated_auth_keeps_the_cluster_and_replaces_every_credential_with_the_token() {
        let registered = json!({
            "server": "https://10.0.0.7:6443", "name": "prod", "namespaces": ["a"], "project": "p",
            "labels": {"env": "prod"}, "connectionState": {"status": "Unknown"},
            "config": {"username": "admin", "tlsClientConfig": {"caData": "Q0EK", "certData": "Y2VydA==", "insecure": false}},
        });
        assert_eq!(
            rotated_request(&registered, "new"),
            json!({"server": "https://10.0.0.7:6443", "name": "prod", "namespaces": ["a"], "project": "p",
                   "labels": {"env": "prod"},
                   "config": {"bearerToken": "new", "tlsClientConfig": {"caData": "Q0EK", "insecure": false}}})
        );
    }
}
