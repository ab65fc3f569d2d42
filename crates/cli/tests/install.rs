//! deploy/install.yaml is current, applies to the real local cluster, and its ServiceAccount holds every
//! permission berth uses and none of the dangerous ones it does not; its Deployment runs two replicas that roll
//! one at a time behind a PodDisruptionBudget, ready on `/readyz`.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, PostParams};
use kube::config::{AuthInfo, Context, Kubeconfig, NamedAuthInfo, NamedContext};
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn kubectl(args: &[&str]) -> String {
    let out = Command::new("kubectl")
        .args(args)
        .output()
        .expect("kubectl is on PATH (hack/cluster env puts it there)");
    assert!(out.status.success(), "kubectl {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

fn require_cluster() {
    assert!(
        std::env::var_os("KUBECONFIG").is_some(),
        "KUBECONFIG is not set: start the local cluster with `hack/cluster up` and `eval \"$(hack/cluster env)\"`, or run `hack/test`"
    );
}

#[test]
fn install_yaml_is_up_to_date() {
    let install =
        std::fs::read_to_string(repo_root().join("deploy/install.yaml")).expect("deploy/install.yaml");
    let base =
        std::fs::read_to_string(repo_root().join("deploy/base/berth.yaml")).expect("deploy/base/berth.yaml");
    let crds = Command::new(env!("CARGO_BIN_EXE_berth")).arg("crds").output().expect("berth crds runs");
    assert!(crds.status.success());
    let body = install.split_once('\n').map(|(_, rest)| rest).unwrap_or_default();
    assert!(
        body == format!("{}{base}", String::from_utf8_lossy(&crds.stdout)),
        "deploy/install.yaml is stale: run hack/gen-install"
    );
}

/// A kubeconfig for the current cluster that authenticates as berth's ServiceAccount.
fn service_account_kubeconfig(dir: &Path) -> PathBuf {
    service_account_kubeconfig_in(dir, "argocd")
}

/// A kubeconfig that authenticates as the ServiceAccount `berth` of `namespace`.
fn service_account_kubeconfig_in(dir: &Path, namespace: &str) -> PathBuf {
    let token = kubectl(&["-n", namespace, "create", "token", "berth", "--duration=10m"]);
    let mut config = Kubeconfig::read().expect("reading KUBECONFIG");
    let current = config.current_context.clone().expect("a current context");
    let cluster = config
        .contexts
        .iter()
        .find(|c| c.name == current)
        .and_then(|c| c.context.as_ref())
        .map(|c| c.cluster.clone())
        .expect("the current context's cluster");
    config.auth_infos = vec![NamedAuthInfo {
        name: "berth-sa".into(),
        auth_info: Some(AuthInfo { token: Some(token.trim().to_string().into()), ..Default::default() }),
        other: Default::default(),
    }];
    config.contexts = vec![NamedContext {
        name: "berth-sa".into(),
        context: Some(Context { cluster, user: Some("berth-sa".into()), ..Default::default() }),
        other: Default::default(),
    }];
    config.current_context = Some("berth-sa".into());
    let path = dir.join("kubeconfig");
    std::fs::write(&path, serde_json::to_string(&config).expect("kubeconfig as JSON"))
        .expect("writing kubeconfig");
    path
}

async fn allowed(
    client: &kube::Client,
    verb: &str,
    group: &str,
    resource: &str,
    namespace: Option<&str>,
) -> bool {
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                group: Some(group.into()),
                resource: Some(resource.split('/').next().unwrap_or_default().into()),
                subresource: resource.split_once('/').map(|(_, sub)| sub.into()),
                namespace: namespace.map(Into::into),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let answer = api.create(&PostParams::default(), &review).await.expect("SelfSubjectAccessReview");
    answer.status.expect("a review status").allowed
}

/// What berth does through the API server: (verb, group, resource, namespace).
const BERTH_USES: &[(&str, &str, &str, Option<&str>)] = &[
    // start-up: the CRDs must be installed
    ("get", "apiextensions.k8s.io", "customresourcedefinitions", None),
    // Argo CD's resources, in the control namespace
    ("list", "argoproj.io", "applications", Some("argocd")),
    ("watch", "argoproj.io", "applications", Some("argocd")),
    ("patch", "argoproj.io", "applications", Some("argocd")),
    ("update", "argoproj.io", "applications", Some("argocd")),
    ("list", "argoproj.io", "appprojects", Some("argocd")),
    ("watch", "argoproj.io", "applicationsets", Some("argocd")),
    ("patch", "argoproj.io", "applicationsets/status", Some("argocd")),
    // configuration objects and repository/cluster secrets
    ("watch", "", "configmaps", Some("argocd")),
    ("watch", "", "secrets", Some("argocd")),
    ("create", "", "secrets", Some("argocd")),
    ("patch", "", "secrets", Some("argocd")),
    ("create", "", "events", Some("argocd")),
    // replicas: berth-controller-<replica> and berth-applicationset-controller
    ("get", "coordination.k8s.io", "leases", Some("argocd")),
    ("list", "coordination.k8s.io", "leases", Some("argocd")),
    ("watch", "coordination.k8s.io", "leases", Some("argocd")),
    ("create", "coordination.k8s.io", "leases", Some("argocd")),
    ("update", "coordination.k8s.io", "leases", Some("argocd")),
    ("patch", "coordination.k8s.io", "leases", Some("argocd")),
    ("delete", "coordination.k8s.io", "leases", Some("argocd")),
    // managed resources in any namespace: watch, server-side apply, prune
    ("watch", "apps", "deployments", None),
    ("patch", "apps", "deployments", Some("web")),
    ("create", "", "namespaces", None),
    ("delete", "", "services", Some("web")),
    ("patch", "rbac.authorization.k8s.io", "clusterroles", None),
    ("patch", "batch", "jobs", Some("web")),
    ("patch", "", "serviceaccounts", Some("web")),
    ("delete", "", "secrets", Some("web")),
    ("patch", "networking.k8s.io", "ingresses", Some("web")),
    ("patch", "apiextensions.k8s.io", "customresourcedefinitions", None),
    ("get", "", "nodes", None),
];

/// Verbs berth never needs, which least privilege must leave out.
const BERTH_NEVER_USES: &[(&str, &str, &str, Option<&str>)] = &[
    ("impersonate", "", "users", None),
    ("impersonate", "", "serviceaccounts", Some("kube-system")),
    ("escalate", "rbac.authorization.k8s.io", "clusterroles", None),
    ("bind", "rbac.authorization.k8s.io", "clusterroles", None),
    ("deletecollection", "", "pods", Some("web")),
    ("approve", "certificates.k8s.io", "signers", None),
    // privilege minting through subresources
    ("create", "", "serviceaccounts/token", Some("kube-system")),
    ("create", "", "pods/exec", Some("kube-system")),
    ("create", "", "pods/attach", Some("kube-system")),
    ("create", "", "pods/portforward", Some("kube-system")),
    ("create", "", "nodes/proxy", None),
    ("create", "", "services/proxy", Some("kube-system")),
    ("update", "certificates.k8s.io", "certificatesigningrequests/approval", None),
];

#[tokio::test]
async fn install_yaml_applies_and_grants_exactly_what_berth_uses() {
    require_cluster();
    let install = repo_root().join("deploy/install.yaml");
    kubectl(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager=berth-test",
        "-f",
        install.to_str().unwrap(),
    ]);
    kubectl(&[
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/applications.argoproj.io",
        "crd/appprojects.argoproj.io",
        "crd/applicationsets.argoproj.io",
    ]);

    let dir = tempfile::tempdir().expect("a temporary directory");
    let kubeconfig = service_account_kubeconfig(dir.path());
    let config = kube::Config::from_custom_kubeconfig(
        Kubeconfig::read_from(&kubeconfig).expect("the ServiceAccount kubeconfig"),
        &Default::default(),
    )
    .await
    .expect("a config");
    let client = kube::Client::try_from(config).expect("a client");

    // The ClusterRole is aggregated by kube-controller-manager, a moment after it is applied.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let missing = loop {
        let mut missing = Vec::new();
        for &(verb, group, resource, ns) in BERTH_USES {
            if !allowed(&client, verb, group, resource, ns).await {
                missing.push(format!("{verb} {group}/{resource} in {ns:?}"));
            }
        }
        if missing.is_empty() || std::time::Instant::now() > deadline {
            break missing;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert!(missing.is_empty(), "install.yaml does not grant what berth uses: {missing:?}");
    let mut excess = Vec::new();
    for &(verb, group, resource, ns) in BERTH_NEVER_USES {
        if allowed(&client, verb, group, resource, ns).await {
            excess.push(format!("{verb} {group}/{resource} in {ns:?}"));
        }
    }
    assert!(excess.is_empty(), "install.yaml grants more than berth needs: {excess:?}");

    // The ServiceAccount holds, renews and releases a Lease in the control namespace, as a replica does.
    let admin = berth_testkit::client().await;
    let lease_name = berth_testkit::unique("install-lease");
    let as_berth: Api<Lease> = Api::namespaced(client.clone(), "argocd");
    let lease: Lease = serde_json::from_value(serde_json::json!({
        "metadata": {"name": &lease_name, "labels": {"berth.dev/lease": "install-test"}},
        "spec": {"holderIdentity": "replica-a", "leaseDurationSeconds": 15}
    }))
    .unwrap();
    let mut lease =
        as_berth.create(&PostParams::default(), &lease).await.expect("the ServiceAccount creates a Lease");
    lease.spec.as_mut().unwrap().holder_identity = Some("replica-b".into());
    as_berth
        .replace(&lease_name, &PostParams::default(), &lease)
        .await
        .expect("the ServiceAccount updates it");
    let seen = Api::<Lease>::namespaced(admin.clone(), "argocd").get(&lease_name).await.unwrap();
    assert_eq!(seen.spec.unwrap().holder_identity.as_deref(), Some("replica-b"));
    as_berth.delete(&lease_name, &Default::default()).await.expect("the ServiceAccount deletes it");
    assert!(Api::<Lease>::namespaced(admin.clone(), "argocd").get_opt(&lease_name).await.unwrap().is_none());

    assert_deployment_is_highly_available(&admin, "argocd").await;

    // The real binary, authenticated as the ServiceAccount, starts its controller without a forbidden call.
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let metrics = std::net::SocketAddr::from(([127, 0, 0, 1], metrics_port));
    let mut berth = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["run", "--port", "0", "--metrics-address", "127.0.0.1", "--metrics-port"])
        .arg(metrics_port.to_string())
        .arg("--cache-dir")
        .arg(dir.path().join("cache"))
        .env("KUBECONFIG", &kubeconfig)
        // Dex elsewhere, as the Deployment says: a Dex started here (argocd-cm may hold a dex.config) would
        // outlive the kill below.
        .env("BERTH_DEX_SERVER", "http://berth-dex-server:5556")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("berth run starts");
    let stderr = berth.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut log = String::new();
    let started = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                log.push_str(&line);
                log.push('\n');
                if line.contains("controller started") {
                    break true;
                }
            }
            Err(_) => break false,
        }
    };
    // The probes' paths answer on the metrics port: live at once; ready once its caches are synced and it
    // holds its share (alone here: at once).
    let ready = Some((200, "ok".to_string()));
    let mut readyz = None;
    if started {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while readyz != ready && std::time::Instant::now() < deadline {
            readyz = plain_get(metrics, "/readyz").await;
            if readyz != ready {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
    let healthz = plain_get(metrics, "/healthz").await;
    let _ = berth.kill();
    let _ = berth.wait();
    assert!(started, "berth run as the ServiceAccount did not start its controller:\n{log}");
    assert!(!log.to_lowercase().contains("forbidden"), "berth run hit a forbidden call:\n{log}");
    assert_eq!(healthz, Some((200, "ok".to_string())));
    assert_eq!(readyz, ready, "/readyz on berth run's metrics port");
}

/// A plain HTTP/1.1 GET: (status, body), or `None` while nothing listens.
async fn plain_get(addr: std::net::SocketAddr, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.ok()?;
    let mut response = Vec::new();
    tcp.read_to_end(&mut response).await.ok()?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.split(' ').nth(1)?.parse().ok()?;
    Some((status, text.split_once("\r\n\r\n")?.1.to_string()))
}

/// The berth Deployment of `namespace` as the API server holds it after the apply: two replicas spread over
/// nodes, rolled one at a time (a new one ready before an old one stops), probed on the metrics port, named by
/// their Pod; both become available, and the PodDisruptionBudget lets a drain take one of them and no more.
async fn assert_deployment_is_highly_available(admin: &kube::Client, namespace: &str) {
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), namespace);
    let deployment = deployments.get("berth").await.expect("Deployment berth");
    let spec = deployment.spec.expect("a Deployment spec");
    assert_eq!(spec.replicas, Some(2));
    let strategy = spec.strategy.expect("a strategy");
    assert_eq!(strategy.type_.as_deref(), Some("RollingUpdate"));
    let rolling = strategy.rolling_update.expect("rollingUpdate");
    assert_eq!(
        (rolling.max_unavailable, rolling.max_surge),
        (Some(IntOrString::Int(0)), Some(IntOrString::Int(1)))
    );
    let pod = spec.template.spec.expect("a Pod spec");
    assert_eq!(pod.termination_grace_period_seconds, Some(30));
    let preferred = pod
        .affinity
        .and_then(|a| a.pod_anti_affinity)
        .and_then(|a| a.preferred_during_scheduling_ignored_during_execution)
        .expect("preferred pod anti-affinity");
    let term = &preferred[0].pod_affinity_term;
    assert_eq!(term.topology_key, "kubernetes.io/hostname");
    let own_labels = spec.template.metadata.and_then(|m| m.labels).expect("Pod labels");
    let selector = term.label_selector.clone().and_then(|s| s.match_labels).expect("a label selector");
    assert!(
        selector.iter().all(|(k, v)| own_labels.get(k) == Some(v)),
        "{selector:?} selects berth's own Pods"
    );

    let container = pod.containers.iter().find(|c| c.name == "berth").expect("container berth");
    let replica_id =
        container.env.iter().flatten().find(|e| e.name == "BERTH_REPLICA_ID").expect("BERTH_REPLICA_ID");
    let field =
        replica_id.value_from.as_ref().and_then(|v| v.field_ref.as_ref()).expect("from the downward API");
    assert_eq!(field.field_path, "metadata.name");
    let metrics_port = container.ports.iter().flatten().find(|p| p.name.as_deref() == Some("metrics"));
    assert_eq!(metrics_port.map(|p| p.container_port), Some(8083), "berth run's default --metrics-port");
    for (probe, path) in [(&container.readiness_probe, "/readyz"), (&container.liveness_probe, "/healthz")] {
        let get =
            probe.as_ref().and_then(|p| p.http_get.as_ref()).unwrap_or_else(|| panic!("a probe on {path}"));
        assert_eq!((get.path.as_deref(), &get.port), (Some(path), &IntOrString::String("metrics".into())));
    }

    let budgets: Api<PodDisruptionBudget> = Api::namespaced(admin.clone(), namespace);
    let budget = budgets.get("berth").await.expect("PodDisruptionBudget berth");
    let budget_spec = budget.spec.expect("a PodDisruptionBudget spec");
    assert_eq!(budget_spec.max_unavailable, Some(IntOrString::Int(1)));
    assert_eq!(budget_spec.selector.and_then(|s| s.match_labels).as_ref(), Some(&own_labels));

    // The local cluster's nodes run Pods (kwok): the rollout completes and the budget counts both replicas.
    berth_testkit::poll(
        "two available replicas and a budget allowing one disruption",
        std::time::Duration::from_secs(90),
        || async {
            let status = deployments.get("berth").await.unwrap().status.unwrap_or_default();
            let budget = budgets.get("berth").await.unwrap().status.unwrap_or_default();
            status.updated_replicas == Some(2)
                && status.available_replicas == Some(2)
                && status.replicas == Some(2)
                && budget.current_healthy == Some(2)
                && budget.disruptions_allowed == Some(1)
        },
    )
    .await;
}

/// deploy/namespace-install.yaml, applied to a namespace of the test's own (its `argocd` replaced), grants its
/// ServiceAccount what berth needs there and nothing elsewhere, and `berth run --managed-namespaces` as that
/// ServiceAccount syncs an Application into the namespace and refuses one aimed at another.
#[tokio::test]
async fn namespace_install_yaml_confines_berth_to_its_namespace_and_syncs_there() {
    require_cluster();
    let admin = berth_testkit::client().await;
    berth_testkit::install_crds(&admin).await;
    let ns = berth_testkit::unique("nsinstall");
    let other = berth_testkit::unique("nsinstall-other");
    for n in [&ns, &other] {
        berth_testkit::ensure_namespace(&admin, n).await;
    }
    let yaml = std::fs::read_to_string(repo_root().join("deploy/namespace-install.yaml"))
        .expect("deploy/namespace-install.yaml")
        .replace("argocd", &ns);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let file = dir.path().join("namespace-install.yaml");
    std::fs::write(&file, yaml).unwrap();
    kubectl(&["apply", "--server-side", "--field-manager=berth-test", "-f", file.to_str().unwrap()]);

    let kubeconfig = service_account_kubeconfig_in(dir.path(), &ns);
    let config = kube::Config::from_custom_kubeconfig(
        Kubeconfig::read_from(&kubeconfig).expect("the ServiceAccount kubeconfig"),
        &Default::default(),
    )
    .await
    .expect("a config");
    let client = kube::Client::try_from(config).expect("a client");
    let n = Some(ns.as_str());
    for (verb, group, resource, namespace) in [
        ("watch", "argoproj.io", "applications", n),
        ("patch", "argoproj.io", "applications", n),
        ("create", "", "secrets", n),
        ("patch", "", "configmaps", n),
        ("create", "", "events", n),
        ("patch", "apps", "deployments", n),
        ("create", "coordination.k8s.io", "leases", n),
        ("update", "coordination.k8s.io", "leases", n),
        ("delete", "coordination.k8s.io", "leases", n),
    ] {
        assert!(
            allowed(&client, verb, group, resource, namespace).await,
            "{verb} {group}/{resource} in {namespace:?}"
        );
    }
    for (verb, group, resource, namespace) in [
        ("list", "", "configmaps", Some(other.as_str())),
        ("create", "coordination.k8s.io", "leases", Some(other.as_str())),
        ("patch", "", "configmaps", Some(other.as_str())),
        ("list", "", "namespaces", None),
        ("get", "apiextensions.k8s.io", "customresourcedefinitions", None),
        ("create", "", "serviceaccounts/token", n),
        ("create", "", "pods/exec", n),
        ("escalate", "rbac.authorization.k8s.io", "roles", n),
        ("bind", "rbac.authorization.k8s.io", "roles", n),
    ] {
        assert!(
            !allowed(&client, verb, group, resource, namespace).await,
            "{verb} {group}/{resource} in {namespace:?}"
        );
    }
    assert_deployment_is_highly_available(&admin, &ns).await;

    // A git repository with one ConfigMap, and two Applications: into the managed namespace and into another.
    let repo = berth_testkit::GitRepo::new();
    repo.write(
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: namespaced\ndata:\n  a: \"1\"\n",
    )
    .commit("one ConfigMap");
    let cm = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "argocd-cm"},
        "data": {"berth.repositories.allowFileURLs": "true"}});
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(admin.clone(), &ns);
    cms.patch("argocd-cm", &kube::api::PatchParams::apply("berth-test"), &kube::api::Patch::Apply(&cm))
        .await
        .unwrap();
    let apps: Api<kube::api::DynamicObject> = Api::namespaced_with(
        admin.clone(),
        &ns,
        &kube::api::ApiResource::erase::<berth_api::Application>(&()),
    );
    for (name, dest) in [("inside", &ns), ("outside", &other)] {
        let app = serde_json::json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": {"name": name, "namespace": &ns},
            "spec": {"project": "default",
                     "source": {"repoURL": repo.url(), "targetRevision": "main", "path": "."},
                     "destination": {"server": "https://kubernetes.default.svc", "namespace": dest},
                     "syncPolicy": {"automated": {"prune": true}}}});
        apps.patch(name, &kube::api::PatchParams::apply("berth-test"), &kube::api::Patch::Apply(&app))
            .await
            .unwrap();
    }

    let mut berth = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["run", "--insecure", "--port", "0", "--metrics-port", "0", "--namespace", &ns])
        .args(["--managed-namespaces", &ns, "--cache-dir"])
        .arg(dir.path().join("cache"))
        .env("KUBECONFIG", &kubeconfig)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("berth run starts");
    let in_ns: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(admin.clone(), &ns);
    let mut outcome = (false, String::new());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    while std::time::Instant::now() < deadline {
        let deployed = in_ns.get_opt("namespaced").await.unwrap().is_some();
        let outside = apps.get("outside").await.unwrap();
        let refused = serde_json::to_string(&outside.data["status"]["conditions"]).unwrap();
        outcome = (deployed, refused);
        if outcome.0 && outcome.1.contains("not managed") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let _ = berth.kill();
    let _ = berth.wait();
    assert!(outcome.0, "the namespaced berth did not deploy into its namespace");
    assert!(outcome.1.contains("not managed"), "the app aimed at another namespace: {}", outcome.1);
    let in_other: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(admin.clone(), &other);
    assert!(in_other.get_opt("namespaced").await.unwrap().is_none());
    for n in [&ns, &other] {
        kubectl(&["delete", "namespace", n, "--wait=false"]);
    }
}
