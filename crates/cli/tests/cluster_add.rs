//! `berth cluster add|rotate-auth` with the built binary: the second local cluster (`hack/test` names its
//! kubeconfig in `BERTH_TEST_REMOTE_KUBECONFIG`) gets the argocd-manager ServiceAccount, its roles and a
//! token Secret; berth (in process, on the first cluster) stores a cluster Secret whose token reaches the
//! remote API server, and deploys an Application there by the cluster's name; `berth cluster rm` forgets the
//! cluster and leaves what it deployed there running.

use berth_testkit::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, RoleBinding};
use kube::api::{Api, DeleteParams, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;

mod common;
use common::*;

const TIMEOUT: Duration = Duration::from_secs(120);

/// No replicas: healthy without pulling an image.
const DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 0\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - name: web\n        image: myorg/web:v1\n";

/// The second API server: its kubeconfig, the context `cluster add` takes, its URL and an admin client.
struct Remote {
    kubeconfig: String,
    context: String,
    server: String,
    client: kube::Client,
}

async fn remote() -> Remote {
    let kubeconfig = std::env::var("BERTH_TEST_REMOTE_KUBECONFIG").expect(
        "BERTH_TEST_REMOTE_KUBECONFIG names the second API server's kubeconfig: run the tests through hack/test, \
         or `hack/cluster up --name berth-remote` and export it from `hack/cluster env --name berth-remote`",
    );
    let config = Kubeconfig::read_from(&kubeconfig).unwrap();
    let context = config.current_context.clone().unwrap_or_else(|| config.contexts[0].name.clone());
    let server = config.clusters[0].cluster.as_ref().unwrap().server.clone().unwrap();
    let options = KubeConfigOptions::default();
    let client =
        kube::Client::try_from(kube::Config::from_custom_kubeconfig(config, &options).await.unwrap())
            .unwrap();
    Remote { kubeconfig, context, server, client }
}

impl Remote {
    /// A client for the remote API server that authenticates with `token` only (and trusts its CA).
    async fn as_token(&self, token: &str) -> kube::Client {
        let admin = Kubeconfig::read_from(&self.kubeconfig).unwrap();
        let ca = admin.clusters[0].cluster.as_ref().unwrap().certificate_authority.clone().unwrap();
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: r\n  cluster:\n    server: {}\n    certificate-authority: {ca}\n\
             users:\n- name: t\n  user:\n    token: {token}\ncontexts:\n- name: t\n  context: {{cluster: r, user: t}}\n\
             current-context: t\n",
            self.server
        );
        let config = Kubeconfig::from_yaml(&text).unwrap();
        let config =
            kube::Config::from_custom_kubeconfig(config, &KubeConfigOptions::default()).await.unwrap();
        kube::Client::try_from(config).unwrap()
    }
}

/// The data of the cluster Secret for `server` in berth's namespace.
async fn cluster_secret(client: &kube::Client, ns: &str, server: &str) -> serde_json::Map<String, Value> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let listed =
        secrets.list(&ListParams::default().labels("argocd.argoproj.io/secret-type=cluster")).await.unwrap();
    let data = |s: &Secret| -> serde_json::Map<String, Value> {
        s.data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), String::from_utf8(v.0.clone()).unwrap().into()))
            .collect()
    };
    let all: Vec<_> = listed.items.iter().map(data).collect();
    all.iter()
        .find(|d| d["server"] == server)
        .cloned()
        .unwrap_or_else(|| panic!("no cluster Secret for {server}"))
}

/// The bearer token of a cluster Secret's `config`.
fn bearer_token(data: &serde_json::Map<String, Value>) -> String {
    let config: Value = serde_json::from_str(data["config"].as_str().unwrap()).unwrap();
    config["bearerToken"].as_str().expect("a bearer token in the config").to_string()
}

/// The token Secrets a ServiceAccount lists.
async fn listed_token_secrets(client: &kube::Client, ns: &str, account: &str) -> Vec<Secret> {
    let sa = Api::<ServiceAccount>::namespaced(client.clone(), ns).get(account).await.unwrap();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let mut found = Vec::new();
    for name in sa.secrets.iter().flatten().filter_map(|r| r.name.clone()) {
        if let Some(secret) = secrets.get_opt(&name).await.unwrap() {
            found.push(secret);
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_add_installs_the_manager_account_and_its_token_deploys_an_app_there() {
    let client = client().await;
    install_crds(&client).await;
    let remote = remote().await;
    let ns = unique("cli-cluster-add");
    ensure_namespace(&client, &ns).await;
    allow_file_urls(&client, &ns).await;
    let server = InProcess::start(&client, &ns, Options { controller: true, ..Default::default() }).await;
    let cli = Cli::new();
    cli.login(&server.address, "admin", &admin_password(&client, &ns).await).await;

    // The default kubeconfig is $KUBECONFIG.
    let run = cli
        .run_with(
            &["cluster", "add", &remote.context, "--name", "remote", "--yes"],
            &[("KUBECONFIG", &remote.kubeconfig)],
        )
        .await
        .ok();
    assert_eq!(run.stdout, format!("Cluster '{}' added\n", remote.server), "{}", run.stderr);

    // On the remote cluster: the ServiceAccount, full cluster-wide access bound to it, and its token Secret.
    let sa = Api::<ServiceAccount>::namespaced(remote.client.clone(), "kube-system");
    assert!(sa.get_opt("argocd-manager").await.unwrap().is_some());
    let role = Api::<ClusterRole>::all(remote.client.clone()).get("argocd-manager-role").await.unwrap();
    let rules = serde_json::to_value(role.rules.unwrap()).unwrap();
    assert_eq!(
        rules,
        json!([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}, {"nonResourceURLs": ["*"], "verbs": ["*"]}])
    );
    let binding = Api::<ClusterRoleBinding>::all(remote.client.clone())
        .get("argocd-manager-role-binding")
        .await
        .unwrap();
    assert_eq!(binding.role_ref.name, "argocd-manager-role");
    let subjects = serde_json::to_value(binding.subjects.unwrap()).unwrap();
    assert_eq!(
        subjects,
        json!([{"kind": "ServiceAccount", "name": "argocd-manager", "namespace": "kube-system"}])
    );
    let tokens = listed_token_secrets(&remote.client, "kube-system", "argocd-manager").await;
    let tokens: Vec<String> = tokens
        .iter()
        .filter(|s| s.type_.as_deref() == Some("kubernetes.io/service-account-token"))
        .filter_map(|s| s.data.as_ref()?.get("token").map(|t| String::from_utf8(t.0.clone()).unwrap()))
        .collect();
    assert!(!tokens.is_empty(), "no filled token Secret listed on argocd-manager");

    // berth's cluster Secret: the name, the server, the CA, and that token, which reaches the remote cluster.
    let stored = cluster_secret(&client, &ns, &remote.server).await;
    assert_eq!(stored["name"], "remote");
    let token = bearer_token(&stored);
    assert!(tokens.contains(&token), "the stored token is not the ServiceAccount's");
    let config: Value = serde_json::from_str(stored["config"].as_str().unwrap()).unwrap();
    assert!(config["tlsClientConfig"]["caData"].as_str().is_some_and(|ca| !ca.is_empty()), "{config}");
    let as_manager = remote.as_token(&token).await;
    as_manager.apiserver_version().await.expect("the token authenticates on the remote cluster");
    Api::<Namespace>::all(as_manager).list(&ListParams::default()).await.expect("it may list namespaces");

    // Adding it again with other settings is refused without --upsert (409 from the API), taken with it.
    let add =
        ["cluster", "add", &remote.context, "--name", "remote2", "--yes", "--kubeconfig", &remote.kubeconfig];
    let run = cli.run(&add).await.failed();
    let last = run.stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("error: ") && last.contains("use upsert"), "{}", run.stderr);
    let run = cli.run(&[&add[..], &["--upsert", "-o", "json"]].concat()).await.ok();
    let answer: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!((answer["name"].as_str(), answer["config"].get("bearerToken")), (Some("remote2"), None));
    cli.run_with(
        &["cluster", "add", &remote.context, "--name", "remote", "--yes", "--upsert"],
        &[("KUBECONFIG", &remote.kubeconfig)],
    )
    .await
    .ok();
    // The same cluster again with a label (an ApplicationSet's clusters generator selects on it): upsert
    // adds it to the Secret, as Argo CD's does.
    cli.run_with(
        &["cluster", "add", &remote.context, "--name", "remote", "--yes", "--upsert", "--label", "env=prod"],
        &[("KUBECONFIG", &remote.kubeconfig)],
    )
    .await
    .ok();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let labelled = secrets
        .list(&ListParams::default().labels("argocd.argoproj.io/secret-type=cluster,env=prod"))
        .await
        .unwrap();
    assert_eq!(labelled.items.len(), 1, "the cluster Secret carries env=prod");

    // An Application whose destination is the cluster's name syncs there.
    let repo = GitRepo::new();
    repo.write("apps/web/deployment.yaml", DEPLOYMENT);
    repo.commit("web");
    let dest = unique("cli-remote-web");
    let app = unique("remote-web");
    let admin = server.admin(&client, &ns).await;
    let body = json!({"metadata": {"name": app}, "spec": {
        "project": "default",
        "source": {"repoURL": repo.url(), "path": "apps/web", "targetRevision": "main"},
        "destination": {"name": "remote", "namespace": dest},
        "syncPolicy": {"automated": {}, "syncOptions": ["CreateNamespace=true"]}}});
    let (status, answer) = admin.call(Method::POST, "/api/v1/applications", Some(body)).await;
    assert_eq!(status, 200, "{answer}");
    let there: Api<Deployment> = Api::namespaced(remote.client.clone(), &dest);
    poll("the app Synced with its Deployment on the remote cluster", TIMEOUT, || async {
        let (_, live) = admin.call(Method::GET, format!("/api/v1/applications/{app}"), None).await;
        live["status"]["sync"]["status"] == "Synced" && there.get_opt("web").await.unwrap().is_some()
    })
    .await;
    let here: Api<Deployment> = Api::namespaced(client.clone(), &dest);
    assert!(here.get_opt("web").await.unwrap().is_none(), "nothing is deployed to berth's own cluster");

    let (status, answer) =
        admin.call(Method::DELETE, format!("/api/v1/applications/{app}?cascade=false"), None).await;
    assert_eq!(status, 200, "{answer}");
    server.stop().await;
    let _ = Api::<Namespace>::all(remote.client.clone()).delete(&dest, &DeleteParams::background()).await;
}

/// What a test of a namespaced cluster starts from: the remote cluster with a system namespace and a managed
/// namespace of the test's own (bound by a Role there, so the first test's cluster-wide binding of
/// kube-system/argocd-manager stays its own), and berth's namespace on the control cluster.
struct Namespaced {
    client: kube::Client,
    remote: Remote,
    system: String,
    managed: String,
    ns: String,
}

impl Namespaced {
    async fn new(prefix: &str) -> Namespaced {
        let client = client().await;
        install_crds(&client).await;
        let remote = remote().await;
        let system = unique(&format!("{prefix}-sys"));
        let managed = unique(&format!("{prefix}-managed"));
        ensure_namespace(&remote.client, &system).await;
        ensure_namespace(&remote.client, &managed).await;
        let ns = unique(prefix);
        ensure_namespace(&client, &ns).await;
        Namespaced { client, remote, system, managed, ns }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_add_with_a_namespace_binds_a_role_there_only_and_rotate_auth_revokes_the_old_token() {
    let Namespaced { client, remote, system, managed, ns } = Namespaced::new("cli-ns").await;
    let server = start_server(&client, &ns).await;
    let cli = Cli::new();
    cli.login(&server.address, "admin", &admin_password(&client, &ns).await).await;
    let add = [
        "cluster",
        "add",
        &remote.context,
        "--kubeconfig",
        &remote.kubeconfig,
        "--name",
        "remote-ns",
        "--namespace",
        &managed,
        "--system-namespace",
        &system,
        "--label",
        "env=test",
    ];

    // Without --yes and without a terminal: refused, nothing created.
    let run = cli.run(&add).await.failed();
    assert!(run.stderr.contains("pass -y"), "{}", run.stderr);
    let accounts = Api::<ServiceAccount>::namespaced(remote.client.clone(), &system);
    assert!(accounts.get_opt("argocd-manager").await.unwrap().is_none());

    let run = cli.run(&[&add[..], &["--yes", "-o", "json"]].concat()).await.ok();
    let answer: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(answer["namespaces"], json!([managed]), "{answer}");
    assert_eq!(answer["labels"]["env"], "test", "{answer}");

    // A RoleBinding in the managed namespace, no cluster-wide binding of this ServiceAccount.
    let binding = Api::<RoleBinding>::namespaced(remote.client.clone(), &managed)
        .get("argocd-manager-role-binding")
        .await
        .unwrap();
    assert_eq!(
        (binding.role_ref.kind.as_str(), binding.role_ref.name.as_str()),
        ("Role", "argocd-manager-role")
    );
    let subjects = serde_json::to_value(binding.subjects.unwrap()).unwrap();
    assert_eq!(subjects, json!([{"kind": "ServiceAccount", "name": "argocd-manager", "namespace": system}]));
    let cluster_bindings =
        Api::<ClusterRoleBinding>::all(remote.client.clone()).list(&ListParams::default()).await;
    let bound_here = cluster_bindings
        .unwrap()
        .items
        .into_iter()
        .filter(|b| b.subjects.iter().flatten().any(|s| s.namespace.as_deref() == Some(system.as_str())));
    assert_eq!(bound_here.count(), 0, "a ClusterRoleBinding names the ServiceAccount");

    // The token may read the managed namespace and nothing cluster-wide.
    let stored = cluster_secret(&client, &ns, &remote.server).await;
    assert_eq!(
        (stored["name"].as_str(), stored["namespaces"].as_str()),
        (Some("remote-ns"), Some(managed.as_str()))
    );
    let old_token = bearer_token(&stored);
    let as_manager = remote.as_token(&old_token).await;
    Api::<ConfigMap>::namespaced(as_manager.clone(), &managed)
        .list(&ListParams::default())
        .await
        .expect("the token may list the managed namespace's ConfigMaps");
    let error = Api::<Namespace>::all(as_manager).list(&ListParams::default()).await.unwrap_err();
    assert!(matches!(&error, kube::Error::Api(status) if status.code == 403), "{error}");

    // rotate-auth: a new token stored, the old token Secret gone and its token rejected.
    let old_secrets: Vec<String> = listed_token_secrets(&remote.client, &system, "argocd-manager")
        .await
        .into_iter()
        .filter_map(|s| s.metadata.name)
        .collect();
    let run = cli
        .run(&[
            "cluster",
            "rotate-auth",
            "remote-ns",
            "--kubeconfig",
            &remote.kubeconfig,
            "--system-namespace",
            &system,
        ])
        .await
        .ok();
    assert_eq!(run.stdout, format!("Cluster '{}' rotated auth\n", remote.server), "{}", run.stderr);
    let stored = cluster_secret(&client, &ns, &remote.server).await;
    let new_token = bearer_token(&stored);
    assert_ne!(new_token, old_token);
    assert_eq!(
        stored["namespaces"].as_str(),
        Some(managed.as_str()),
        "rotation keeps the cluster's settings"
    );
    let secrets = Api::<Secret>::namespaced(remote.client.clone(), &system);
    for name in &old_secrets {
        poll(&format!("the old token Secret {name} deleted"), TIMEOUT, || async {
            secrets.get_opt(name).await.unwrap().is_none()
        })
        .await;
    }
    Api::<ConfigMap>::namespaced(remote.as_token(&new_token).await, &managed)
        .list(&ListParams::default())
        .await
        .expect("the new token works");
    let old = remote.as_token(&old_token).await;
    poll("the old token rejected", TIMEOUT, || async {
        let answer = Api::<ConfigMap>::namespaced(old.clone(), &managed).list(&ListParams::default()).await;
        matches!(answer, Err(kube::Error::Api(status)) if status.code == 401)
    })
    .await;

    server.stop().await;
    let namespaces = Api::<Namespace>::all(remote.client.clone());
    let _ = namespaces.delete(&system, &DeleteParams::background()).await;
    let _ = namespaces.delete(&managed, &DeleteParams::background()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_rm_forgets_the_cluster_and_leaves_its_workloads_running() {
    let Namespaced { client, remote, system, managed, ns } = Namespaced::new("cli-rm").await;
    allow_file_urls(&client, &ns).await;
    let server = InProcess::start(&client, &ns, Options { controller: true, ..Default::default() }).await;
    let cli = Cli::new();
    cli.login(&server.address, "admin", &admin_password(&client, &ns).await).await;
    let add = [
        "cluster",
        "add",
        &remote.context,
        "--kubeconfig",
        &remote.kubeconfig,
        "--name",
        "remote-rm",
        "--namespace",
        &managed,
        "--system-namespace",
        &system,
        "--yes",
    ];
    cli.run(&add).await.ok();

    // An Application deploys a Deployment there.
    let repo = GitRepo::new();
    repo.write("apps/web/deployment.yaml", DEPLOYMENT);
    repo.commit("web");
    let app = unique("rm-web");
    let admin = server.admin(&client, &ns).await;
    let body = json!({"metadata": {"name": app}, "spec": {
        "project": "default",
        "source": {"repoURL": repo.url(), "path": "apps/web", "targetRevision": "main"},
        "destination": {"name": "remote-rm", "namespace": managed},
        "syncPolicy": {"automated": {"prune": true}}}});
    let (status, answer) = admin.call(Method::POST, "/api/v1/applications", Some(body)).await;
    assert_eq!(status, 200, "{answer}");
    let there: Api<Deployment> = Api::namespaced(remote.client.clone(), &managed);
    poll("the app Synced with its Deployment on the remote cluster", TIMEOUT, || async {
        let (_, live) = admin.call(Method::GET, format!("/api/v1/applications/{app}"), None).await;
        live["status"]["sync"]["status"] == "Synced" && there.get_opt("web").await.unwrap().is_some()
    })
    .await;
    let uid = there.get("web").await.unwrap().metadata.uid;
    assert!(uid.is_some());

    // `cluster rm` by server URL: the cluster Secret is gone.
    let run = cli.run(&["cluster", "rm", &remote.server, "-y"]).await.ok();
    assert_eq!(run.stdout, format!("Cluster '{}' removed\n", remote.server), "{}", run.stderr);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let left = secrets.list(&ListParams::default().labels("argocd.argoproj.io/secret-type=cluster")).await;
    let servers: Vec<String> = left
        .unwrap()
        .items
        .iter()
        .filter_map(|s| s.data.as_ref()?.get("server").map(|v| String::from_utf8_lossy(&v.0).into_owned()))
        .collect();
    assert!(!servers.contains(&remote.server), "a cluster Secret for {} is left: {servers:?}", remote.server);

    // The app says its cluster is gone; nothing of it is deleted there, even by its automated prune.
    poll("the app's InvalidSpecError naming its cluster", TIMEOUT, || async {
        let (_, live) = admin.call(Method::GET, format!("/api/v1/applications/{app}"), None).await;
        live["status"]["conditions"].as_array().into_iter().flatten().any(|c| {
            c["type"] == "InvalidSpecError"
                && c["message"].as_str().is_some_and(|m| {
                    m.contains("spec.destination.name: there are no clusters with this name: remote-rm")
                })
        })
    })
    .await;
    let web = there.get("web").await.expect("the remote Deployment is still there");
    assert_eq!(web.metadata.uid, uid, "the remote Deployment was never deleted");
    assert!(web.metadata.deletion_timestamp.is_none());

    let (status, answer) =
        admin.call(Method::DELETE, format!("/api/v1/applications/{app}?cascade=false"), None).await;
    assert_eq!(status, 200, "{answer}");
    server.stop().await;
    let namespaces = Api::<Namespace>::all(remote.client.clone());
    let _ = namespaces.delete(&system, &DeleteParams::background()).await;
    let _ = namespaces.delete(&managed, &DeleteParams::background()).await;
}
