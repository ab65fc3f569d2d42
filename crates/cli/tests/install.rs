//! deploy/install.yaml is current, applies to the real local cluster, and its ServiceAccount holds every
//! permission berth uses and none of the dangerous ones it does not.

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
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
    ("update", "coordination.k8s.io", "leases", Some("argocd")),
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

    // The real binary, authenticated as the ServiceAccount, starts its controller without a forbidden call.
    let mut berth = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["run", "--port", "0", "--metrics-port", "0", "--cache-dir"])
        .arg(dir.path().join("cache"))
        .env("KUBECONFIG", &kubeconfig)
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
    let _ = berth.kill();
    let _ = berth.wait();
    assert!(started, "berth run as the ServiceAccount did not start its controller:\n{log}");
    assert!(!log.to_lowercase().contains("forbidden"), "berth run hit a forbidden call:\n{log}");
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
    ] {
        assert!(
            allowed(&client, verb, group, resource, namespace).await,
            "{verb} {group}/{resource} in {namespace:?}"
        );
    }
    for (verb, group, resource, namespace) in [
        ("list", "", "configmaps", Some(other.as_str())),
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
