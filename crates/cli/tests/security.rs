//! Issue 12's attacks, each run against a real `berth run` (the built binary) on the local cluster with three
//! tenants: team-a (a private repository with project-scoped credentials), team-b (a project that allows any
//! repository, as Argo CD's `default` does) and carol, who may only `get` and `create` in team-b. Every attack
//! must fail, nothing may happen in the cluster because of it (asserted from the API server), and no secret
//! may appear in any API answer, in berth's log or in an Event.

use berth_testkit::git_servers::GitHttpServer;
use berth_testkit::{GitRepo, client, ensure_namespace, install_crds, poll, unique};
use k8s_openapi::api::core::v1::{ConfigMap, Event, Secret};
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(90);

/// A `berth run --insecure` process of this test, with its log kept for the secret search.
struct Berth {
    child: std::process::Child,
    base: String,
    log: Arc<Mutex<String>>,
    _cache: tempfile::TempDir,
}

impl Drop for Berth {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Berth {
    async fn start(namespace: &str) -> Berth {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let cache = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
            .args([
                "run",
                "--insecure",
                "--address",
                "127.0.0.1",
                "--metrics-port",
                "0",
                "--port",
                &port.to_string(),
            ])
            .args(["--namespace", namespace, "--cache-dir"])
            .arg(cache.path())
            .env("RUST_LOG", "info,berth_controller=debug,berth_server=debug,berth_repo=debug")
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("berth run starts");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let base = format!("http://127.0.0.1:{port}");
        let healthz = format!("{base}/healthz");
        poll("berth run answers /healthz", DEADLINE, || {
            let healthz = healthz.clone();
            async move { reqwest::get(&healthz).await.is_ok_and(|r| r.status().is_success()) }
        })
        .await;
        Berth { child, base, log, _cache: cache }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

/// Every HTTP answer of the test, kept for the secret search.
#[derive(Clone, Default)]
struct Answers(Arc<Mutex<Vec<String>>>);

impl Answers {
    fn keep(&self, what: &str, body: &str) {
        self.0.lock().unwrap().push(format!("{what}\n{body}"));
    }
    fn all(&self) -> String {
        self.0.lock().unwrap().join("\n")
    }
}

/// A logged-in user of the API.
struct User {
    base: String,
    token: String,
    answers: Answers,
}

impl User {
    /// Logs in, trying again for a while: a password just set reaches the server through its watch.
    async fn login(berth: &Berth, answers: &Answers, name: &str, password: &str) -> User {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let body = loop {
            let response = reqwest::Client::new()
                .post(format!("{}/api/v1/session", berth.base))
                .json(&json!({"username": name, "password": password}))
                .send()
                .await
                .unwrap();
            let status = response.status();
            let body = response.text().await.unwrap();
            answers.keep("login", &body);
            if status.is_success() {
                break body;
            }
            assert!(std::time::Instant::now() < deadline, "login as {name}: {status} {body}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let token = serde_json::from_str::<Value>(&body).unwrap()["token"].as_str().unwrap().to_string();
        User { base: berth.base.clone(), token, answers: answers.clone() }
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, String) {
        let mut request = reqwest::Client::new()
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        self.answers.keep(&format!("{method} {path} → {status}"), &text);
        (status, text)
    }

    async fn get(&self, path: &str) -> (u16, String) {
        self.send(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> (u16, String) {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }
}

/// Three tenants on one `berth run`: projects, accounts, policy, repositories and their credentials.
struct Estate {
    client: kube::Client,
    /// The control namespace (Applications, projects, argocd-cm, argocd-secret).
    ns: String,
    /// Destination namespaces of team-a and team-b.
    ns_a: String,
    ns_b: String,
    _git: GitHttpServer,
    repo_a: GitRepo,
    url_a: String,
    _repo_b: GitRepo,
    url_b: String,
    berth: Berth,
    answers: Answers,
    alice: User,
    bob: User,
    carol: User,
    /// Secrets that must never show: passwords, the signing key, the contents of files berth can read.
    secrets: Vec<String>,
    /// Where a command run by an attack would leave its mark.
    marks: tempfile::TempDir,
}

const PASSWORDS: [(&str, &str); 3] =
    [("alice", "alice-secret-pw-1"), ("bob", "bob-secret-pw-2"), ("carol", "carol-secret-pw-3")];

impl Estate {
    async fn start(prefix: &str) -> Estate {
        let client = client().await;
        install_crds(&client).await;
        let ns = unique(prefix);
        let (ns_a, ns_b) = (format!("{ns}-a"), format!("{ns}-b"));
        for n in [&ns, &ns_a, &ns_b] {
            ensure_namespace(&client, n).await;
        }
        let marks = tempfile::tempdir().unwrap();
        let git = GitHttpServer::start();

        let repo_a = GitRepo::new();
        repo_a.write("apps/cfg/cm.yaml", &config_map("team-a-config", "owned-by-team-a")).commit("team-a");
        let url_a = git.host("team-a", &repo_a);
        let repo_b = GitRepo::new();
        repo_b.write("apps/cm/cm.yaml", &config_map("b-config", "team-b"));
        // An attacker's chart with a post-renderer script, and a kustomization with a hostile remote base.
        repo_b.write("charts/evil/Chart.yaml", "apiVersion: v2\nname: evil\nversion: 0.1.0\n");
        repo_b.write(
            "charts/evil/templates/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: evil\ndata:\n  stolen: {{ .Values.stolen | default \"none\" | quote }}\n",
        );
        let post = marks.path().join("helm-post-renderer");
        repo_b.write("charts/evil/post.sh", &format!("#!/bin/sh\ntouch {}\ncat\n", post.display()));
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            repo_b.path().join("charts/evil/post.sh"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        let kustomize = marks.path().join("kustomize-upload-pack");
        repo_b.write(
            "kustomize/evil/kustomization.yaml",
            &format!(
                "resources:\n  - file:///nonexistent/repo?ref=--upload-pack=touch%20{}%3Btrue\n",
                kustomize.display()
            ),
        );
        // A 700-byte chart whose helm would take gigabytes: a string doubled forty times.
        repo_b.write("charts/hog/Chart.yaml", "apiVersion: v2\nname: hog\nversion: 0.1.0\n");
        repo_b.write(
            "charts/hog/templates/cm.yaml",
            concat!(
                "{{- $s := \"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\" }}\n",
                "{{- range until 40 }}{{ $s = printf \"%s%s\" $s $s }}{{ end }}\n",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: hog\ndata:\n  size: \"{{ len $s }}\"\n",
            ),
        );
        repo_b.commit("team-b");
        let url_b = git.host("team-b", &repo_b);

        let apply = |name: &str, object: Value| {
            let client = client.clone();
            let (ns, name) = (ns.clone(), name.to_string());
            async move {
                let resource = if object["kind"] == "ConfigMap" { "configmaps" } else { "secrets" };
                let api: Api<kube::api::DynamicObject> = Api::namespaced_with(
                    client,
                    &ns,
                    &kube::api::ApiResource::from_gvk_with_plural(
                        &kube::api::GroupVersionKind::gvk("", "v1", object["kind"].as_str().unwrap()),
                        resource,
                    ),
                );
                api.patch(&name, &PatchParams::apply("berth-test").force(), &Patch::Apply(&object))
                    .await
                    .unwrap();
            }
        };
        apply(
            "argocd-cm",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "argocd-cm"},
                   "data": {"accounts.alice": "login", "accounts.bob": "login", "accounts.carol": "login",
                            "timeout.reconciliation": "0",
                            // Objects of earlier runs' apps of the same names are another installation's.
                            "installationID": &ns}}),
        )
        .await;
        let policy = [
            "p, alice, applications, *, team-a/*, allow",
            "p, bob, applications, *, team-b/*, allow",
            "p, carol, applications, get, team-b/*, allow",
            "p, carol, applications, create, team-b/*, allow",
        ]
        .join("\n");
        apply(
            "argocd-rbac-cm",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "argocd-rbac-cm"},
                   "data": {"policy.csv": policy}}),
        )
        .await;
        // team-a's private repository: credentials only for team-a (Argo CD's project-scoped repository).
        apply(
            "repo-team-a",
            json!({"apiVersion": "v1", "kind": "Secret",
                   "metadata": {"name": "repo-team-a", "labels": {"argocd.argoproj.io/secret-type": "repository"}},
                   "stringData": {"url": &url_a, "project": "team-a",
                                  "username": git.username(), "password": git.password()}}),
        )
        .await;
        // team-b's repository, global.
        apply(
            "repo-team-b",
            json!({"apiVersion": "v1", "kind": "Secret",
                   "metadata": {"name": "repo-team-b", "labels": {"argocd.argoproj.io/secret-type": "repository"}},
                   "stringData": {"url": &url_b, "username": git.username(), "password": git.password()}}),
        )
        .await;
        // Credentials for every repository on host 127.0.0.1 (port 80): never for another host or port.
        apply(
            "creds-localhost",
            json!({"apiVersion": "v1", "kind": "Secret",
                   "metadata": {"name": "creds-localhost", "labels": {"argocd.argoproj.io/secret-type": "repo-creds"}},
                   "stringData": {"url": "http://127.0.0.1", "username": "ci", "password": "prefix-creds-pw-4"}}),
        )
        .await;
        let projects: Api<kube::api::DynamicObject> = Api::namespaced_with(
            client.clone(),
            &ns,
            &kube::api::ApiResource::erase::<berth_api::AppProject>(&()),
        );
        for (name, repos, dest) in [("team-a", json!([&url_a]), &ns_a), ("team-b", json!(["*"]), &ns_b)] {
            let project = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject",
                "metadata": {"name": name, "namespace": &ns},
                "spec": {"sourceRepos": repos,
                         "destinations": [{"server": "https://kubernetes.default.svc", "namespace": dest}]}});
            projects
                .patch(name, &PatchParams::apply("berth-test").force(), &Patch::Apply(&project))
                .await
                .unwrap();
        }

        let berth = Berth::start(&ns).await;
        let answers = Answers::default();
        let secrets_api: Api<Secret> = Api::namespaced(client.clone(), &ns);
        let admin_password = String::from_utf8(
            secrets_api.get("argocd-initial-admin-secret").await.unwrap().data.unwrap()["password"].0.clone(),
        )
        .unwrap();
        let admin = User::login(&berth, &answers, "admin", &admin_password).await;
        for (name, password) in PASSWORDS {
            let (status, body) = admin
                .send(
                    reqwest::Method::PUT,
                    "/api/v1/account/password",
                    Some(json!({"name": name, "currentPassword": &admin_password, "newPassword": password})),
                )
                .await;
            assert_eq!(status, 200, "setting {name}'s password: {body}");
        }
        let user = |name: &'static str| {
            let (berth, answers) = (&berth, &answers);
            async move {
                let password = PASSWORDS.iter().find(|(n, _)| *n == name).unwrap().1;
                User::login(berth, answers, name, password).await
            }
        };
        let (alice, bob, carol) = (user("alice").await, user("bob").await, user("carol").await);
        let signing_key = String::from_utf8(
            secrets_api.get("argocd-secret").await.unwrap().data.unwrap()["server.secretkey"].0.clone(),
        )
        .unwrap();
        let mut secrets =
            vec![admin_password, signing_key, git.password().to_string(), "prefix-creds-pw-4".into()];
        secrets.extend(PASSWORDS.iter().map(|(_, p)| p.to_string()));
        Estate {
            client,
            ns,
            ns_a,
            ns_b,
            _git: git,
            repo_a,
            url_a,
            _repo_b: repo_b,
            url_b,
            berth,
            answers,
            alice,
            bob,
            carol,
            secrets,
            marks,
        }
    }

    fn mark(&self, name: &str) -> PathBuf {
        self.marks.path().join(name)
    }

    /// An Application as a tenant writes it, for `POST /api/v1/applications`.
    fn app(&self, name: &str, project: &str, source: Value, automated: bool) -> Value {
        let dest = if project == "team-a" { &self.ns_a } else { &self.ns_b };
        let mut app = json!({"metadata": {"name": name},
            "spec": {"project": project, "source": source,
                     "destination": {"server": "https://kubernetes.default.svc", "namespace": dest}}});
        if automated {
            app["spec"]["syncPolicy"] = json!({"automated": {"prune": true, "selfHeal": true}});
        }
        app
    }

    /// The stored Application, read from the API server.
    async fn stored(&self, name: &str) -> Option<Value> {
        let api: Api<kube::api::DynamicObject> = Api::namespaced_with(
            self.client.clone(),
            &self.ns,
            &kube::api::ApiResource::erase::<berth_api::Application>(&()),
        );
        api.get_opt(name).await.unwrap().map(|o| serde_json::to_value(o).unwrap())
    }

    /// Waits until the controller has compared the app and returns it.
    async fn compared(&self, name: &str) -> Value {
        let mut last = Value::Null;
        let deadline = std::time::Instant::now() + DEADLINE;
        while std::time::Instant::now() < deadline {
            if let Some(app) = self.stored(name).await {
                let done = app["status"]["reconciledAt"].is_string()
                    || app["status"]["conditions"].as_array().is_some_and(|c| !c.is_empty());
                if done {
                    return app;
                }
                last = app;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{name} was never compared: {last:#}\nberth's log:\n{}", self.berth.log());
    }

    /// The app's conditions, once it has some.
    async fn conditions(&self, name: &str) -> String {
        self.conditions_until(name, |_| true).await
    }

    /// The app's conditions, once `wanted` holds for their JSON text.
    async fn conditions_until(&self, name: &str, wanted: impl Fn(&str) -> bool) -> String {
        let mut last = Value::Null;
        let deadline = std::time::Instant::now() + DEADLINE;
        while std::time::Instant::now() < deadline {
            if let Some(app) = self.stored(name).await {
                if let Some(conditions) = app["status"]["conditions"].as_array().filter(|c| !c.is_empty()) {
                    let text = serde_json::to_string(conditions).unwrap();
                    if wanted(&text) {
                        return text;
                    }
                }
                last = app;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{name} never got a condition: {last:#}\nberth's log:\n{}", self.berth.log());
    }

    async fn wait_synced(&self, name: &str) -> Value {
        let mut last = Value::Null;
        let deadline = std::time::Instant::now() + DEADLINE;
        while std::time::Instant::now() < deadline {
            if let Some(app) = self.stored(name).await {
                if app["status"]["sync"]["status"] == "Synced"
                    && app["status"]["operationState"]["phase"] == "Succeeded"
                {
                    return app;
                }
                last = app;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{name} never synced: {last:#}\nberth's log:\n{}", self.berth.log());
    }

    /// No secret in any API answer, in berth's log, in an Event, or in an Application's status.
    async fn assert_nothing_leaked(&self) {
        let mut events = String::new();
        for n in [&self.ns, &self.ns_a, &self.ns_b] {
            let api: Api<Event> = Api::namespaced(self.client.clone(), n);
            for e in api.list(&Default::default()).await.unwrap().items {
                events.push_str(&serde_json::to_string(&e).unwrap());
            }
        }
        let apps: Api<kube::api::DynamicObject> = Api::namespaced_with(
            self.client.clone(),
            &self.ns,
            &kube::api::ApiResource::erase::<berth_api::Application>(&()),
        );
        let statuses: String = apps
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .iter()
            .map(|a| serde_json::to_string(&a.data["status"]).unwrap())
            .collect();
        let (answers, log) = (self.answers.all(), self.berth.log());
        assert!(!log.is_empty(), "berth's log was not captured");
        for secret in &self.secrets {
            for (what, text) in [
                ("an API answer", &answers),
                ("berth's log", &log),
                ("an Event", &events),
                ("a status", &statuses),
            ] {
                // The login answers carry tokens, never passwords; the search covers them too.
                assert!(!text.contains(secret.as_str()), "a secret leaked into {what}");
            }
        }
    }
}

fn config_map(name: &str, value: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  value: {value}\n")
}

/// A revision that skips `ls-remote` (a full SHA), as the attack used.
const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

#[tokio::test]
async fn values_of_an_application_never_become_options_of_git_helm_or_kustomize() {
    let estate = Estate::start("sec-tools").await;
    let stolen = estate.marks.path().join("client.key");
    std::fs::write(&stolen, "stolen-client-key-material-5").unwrap();
    let mut secrets = estate.secrets.clone();
    secrets.push("stolen-client-key-material-5".into());

    // 1. repoURL read as a git option (`--upload-pack` runs a command).
    let touched = estate.mark("git-upload-pack");
    let source = json!({"repoURL": format!("--upload-pack=touch {};true", touched.display()),
                        "targetRevision": SHA, "path": "."});
    let (status, body) =
        estate.bob.post("/api/v1/applications", estate.app("git-opt", "team-b", source, true)).await;
    if status == 200 {
        let conditions = estate.conditions("git-opt").await;
        assert!(
            conditions.contains("repoURL"),
            "the condition should name spec.source.repoURL: {conditions}"
        );
    } else {
        assert!(body.contains("repoURL"), "a refusal should name repoURL: {body}");
    }
    // ext:: runs a command through git's remote helper.
    let ext = estate.mark("git-ext");
    let source = json!({"repoURL": format!("ext::sh -c touch% {}", ext.display()), "targetRevision": SHA, "path": "."});
    let (status, _) =
        estate.bob.post("/api/v1/applications", estate.app("git-ext", "team-b", source, true)).await;
    if status == 200 {
        estate.conditions("git-ext").await;
    }

    // 2. Helm releaseName read as a helm flag: a file berth can read, and a post-renderer from the repo.
    let post = estate.mark("helm-post-renderer");
    for (name, release) in [
        ("helm-set-file", format!("--set-file=stolen={}", stolen.display())),
        ("helm-post", "--post-renderer=./post.sh".to_string()),
    ] {
        let source = json!({"repoURL": &estate.url_b, "targetRevision": "main", "path": "charts/evil",
                            "helm": {"releaseName": release}});
        let (status, body) =
            estate.bob.post("/api/v1/applications", estate.app(name, "team-b", source, false)).await;
        if status == 200 {
            let conditions = estate.conditions(name).await;
            assert!(
                conditions.contains("releaseName"),
                "{name}: the condition should name releaseName: {conditions}"
            );
            let (_, manifests) = estate.bob.get(&format!("/api/v1/applications/{name}/manifests")).await;
            assert!(!manifests.contains("stolen-client-key-material-5"), "{name}: {manifests}");
        } else {
            assert!(body.contains("releaseName"), "{name}: a refusal should name releaseName: {body}");
        }
    }

    // 3. A kustomize remote base in an allowed repository, with an option in its ref.
    let kustomize = estate.mark("kustomize-upload-pack");
    let source = json!({"repoURL": &estate.url_b, "targetRevision": "main", "path": "kustomize/evil"});
    estate.bob.post("/api/v1/applications", estate.app("kustomize-remote", "team-b", source, true)).await;
    let conditions = estate.conditions("kustomize-remote").await;
    assert!(
        conditions.contains("kustomization"),
        "the condition should name the kustomization: {conditions}"
    );

    // 11. A chart that makes helm take gigabytes stops at the render's memory limit; berth goes on.
    let source = json!({"repoURL": &estate.url_b, "targetRevision": "main", "path": "charts/hog"});
    estate.bob.post("/api/v1/applications", estate.app("hog", "team-b", source, true)).await;
    let conditions = estate.conditions("hog").await;
    assert!(conditions.contains("memory limit"), "{conditions}");
    let rss_kib = std::fs::read_to_string(format!("/proc/{}/status", estate.berth.pid()))
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix("VmHWM:").map(|v| v.trim().trim_end_matches(" kB").parse::<u64>().unwrap())
        })
        .unwrap();
    assert!(rss_kib < 512 * 1024, "berth's own peak memory reached {rss_kib} KiB");

    // 9. file:// reaches berth's own cache (off unless an admin enables it in argocd-cm).
    let source = json!({"repoURL": format!("file://{}", estate.repo_a.path().display()),
                        "targetRevision": "main", "path": "apps/cfg"});
    let (status, _) =
        estate.bob.post("/api/v1/applications", estate.app("file-url", "team-b", source, true)).await;
    if status == 200 {
        let conditions = estate.conditions("file-url").await;
        assert!(conditions.contains("file://"), "the condition should say file:// is off: {conditions}");
    }

    for (what, mark) in [
        ("git --upload-pack", &touched),
        ("git ext::", &ext),
        ("helm --post-renderer", &post),
        ("kustomize's git", &kustomize),
    ] {
        assert!(!mark.exists(), "{what} ran a command");
    }
    let cms: Api<ConfigMap> = Api::namespaced(estate.client.clone(), &estate.ns_b);
    assert!(
        cms.get_opt("team-a-config").await.unwrap().is_none(),
        "team-a's repository was read through file://"
    );
    let estate = Estate { secrets, ..estate };
    estate.assert_nothing_leaked().await;
}

#[tokio::test]
async fn what_a_request_claims_decides_nothing() {
    let estate = Estate::start("sec-claims").await;
    let source_b = json!({"repoURL": &estate.url_b, "targetRevision": "main", "path": "apps/cm"});

    // 4. A status naming argocd-secret, then the resource route (kind in any case).
    let mut app = estate.app("claims", "team-b", source_b.clone(), false);
    app["status"] = json!({"resources": [
        {"kind": "Secret", "version": "v1", "namespace": &estate.ns, "name": "argocd-secret"},
        {"kind": "secret", "version": "v1", "namespace": &estate.ns, "name": "argocd-secret"}]});
    let (status, body) = estate.bob.post("/api/v1/applications", app).await;
    assert_eq!(status, 200, "{body}");
    let stored = estate.stored("claims").await.unwrap();
    assert!(
        !serde_json::to_string(&stored["status"]).unwrap().contains("argocd-secret"),
        "the client's status was stored: {stored:#}"
    );
    for kind in ["secret", "Secret", "SECRET"] {
        let (status, body) = estate
            .bob
            .get(&format!(
                "/api/v1/applications/claims/resource?namespace={}&resourceName=argocd-secret&version=v1&kind={kind}",
                estate.ns
            ))
            .await;
        assert!(status == 403 || status == 404, "kind={kind}: {status} {body}");
        assert!(!body.contains("server.secretkey"), "kind={kind}: {body}");
    }
    let (_, tree) = estate.bob.get("/api/v1/applications/claims/resource-tree").await;
    assert!(!tree.contains("argocd-secret"), "{tree}");

    // 5. carol may create but not sync: an operation in the body is dropped.
    let mut app = estate.app("carol-op", "team-b", source_b.clone(), false);
    app["operation"] = json!({"sync": {"revision": "main", "prune": true,
        "source": {"repoURL": &estate.url_a, "targetRevision": "main", "path": "apps/cfg"}},
        "initiatedBy": {"username": "admin"}});
    let (status, body) = estate.carol.post("/api/v1/applications", app).await;
    assert_eq!(status, 200, "{body}");
    let stored = estate.stored("carol-op").await.unwrap();
    assert!(stored["operation"].is_null(), "the operation was stored: {:#}", stored["operation"]);
    let compared = estate.compared("carol-op").await;
    assert!(compared["status"]["operationState"].is_null(), "an operation ran: {compared:#}");
    let cms: Api<ConfigMap> = Api::namespaced(estate.client.clone(), &estate.ns_b);
    for name in ["b-config", "team-a-config"] {
        assert!(cms.get_opt(name).await.unwrap().is_none(), "{name} was deployed without a sync");
    }
    // carol cannot sync either.
    let (status, _) = estate.carol.post("/api/v1/applications/carol-op/sync", json!({})).await;
    assert_eq!(status, 403);

    // 6. bob upserts alice's app into his project.
    let source_a = json!({"repoURL": &estate.url_a, "targetRevision": "main", "path": "apps/cfg"});
    let (status, body) =
        estate.alice.post("/api/v1/applications", estate.app("alice-app", "team-a", source_a, false)).await;
    assert_eq!(status, 200, "{body}");
    let before = estate.stored("alice-app").await.unwrap();
    let (status, body) = estate
        .bob
        .post("/api/v1/applications?upsert=true", estate.app("alice-app", "team-b", source_b.clone(), true))
        .await;
    assert_eq!(status, 403, "{body}");
    let after = estate.stored("alice-app").await.unwrap();
    assert_eq!(before["metadata"]["resourceVersion"], after["metadata"]["resourceVersion"], "{after:#}");

    // 13. Unknown and forbidden apps answer alike (no enumeration of other projects' names).
    let (forbidden, forbidden_body) = estate.bob.get("/api/v1/applications/alice-app").await;
    let (unknown, unknown_body) = estate.bob.get("/api/v1/applications/no-such-app").await;
    assert_eq!((forbidden, unknown), (403, 403), "{forbidden_body} / {unknown_body}");
    assert_eq!(forbidden_body.replace("alice-app", "X"), unknown_body.replace("no-such-app", "X"));

    estate.assert_nothing_leaked().await;
}

#[tokio::test]
async fn a_project_confines_prune_delete_and_credentials() {
    let estate = Estate::start("sec-project").await;
    let cms_a: Api<ConfigMap> = Api::namespaced(estate.client.clone(), &estate.ns_a);

    // 7. alice deploys team-a-config; the app is deleted without cascade; bob takes the name in team-b.
    let source_a = json!({"repoURL": &estate.url_a, "targetRevision": "main", "path": "apps/cfg"});
    let (status, body) =
        estate.alice.post("/api/v1/applications", estate.app("cfg", "team-a", source_a, true)).await;
    assert_eq!(status, 200, "{body}");
    estate.wait_synced("cfg").await;
    let uid = cms_a.get("team-a-config").await.unwrap().metadata.uid.unwrap();
    let (status, body) =
        estate.alice.send(reqwest::Method::DELETE, "/api/v1/applications/cfg?cascade=false", None).await;
    assert_eq!(status, 200, "{body}");
    poll("cfg deleted", DEADLINE, || async { estate.stored("cfg").await.is_none() }).await;
    let source_b = json!({"repoURL": &estate.url_b, "targetRevision": "main", "path": "apps/cm"});
    let mut app = estate.app("cfg", "team-b", source_b, true);
    app["metadata"]["finalizers"] = json!(["resources-finalizer.argocd.argoproj.io"]);
    let (status, body) = estate.bob.post("/api/v1/applications", app).await;
    assert_eq!(status, 200, "{body}");
    estate.wait_synced("cfg").await;
    let kept = cms_a.get("team-a-config").await.unwrap();
    assert_eq!(kept.metadata.uid.as_deref(), Some(uid.as_str()), "team-b's app pruned team-a's object");
    // Its cascade delete leaves team-a's object too.
    let (status, body) = estate.bob.send(reqwest::Method::DELETE, "/api/v1/applications/cfg", None).await;
    assert_eq!(status, 200, "{body}");
    poll("team-b's cfg deleted with its resources", DEADLINE, || async {
        estate.stored("cfg").await.is_none()
    })
    .await;
    let cms_b: Api<ConfigMap> = Api::namespaced(estate.client.clone(), &estate.ns_b);
    assert!(
        cms_b.get_opt("b-config").await.unwrap().is_none(),
        "the cascade did not delete team-b's own object"
    );
    let kept = cms_a.get("team-a-config").await.unwrap();
    assert_eq!(kept.metadata.uid.as_deref(), Some(uid.as_str()), "team-b's cascade deleted team-a's object");

    // 8. team-a's project-scoped credentials are not lent to team-b.
    let source = json!({"repoURL": &estate.url_a, "targetRevision": "main", "path": "apps/cfg"});
    estate.bob.post("/api/v1/applications", estate.app("borrow", "team-b", source, true)).await;
    let conditions = estate.conditions_until("borrow", |c| c.contains("ComparisonError")).await;
    // Anonymous (the credentials are team-a's alone), so the server asks for a user name git may not prompt for.
    assert!(conditions.contains("could not read Username"), "{conditions}");
    assert!(
        cms_b.get_opt("team-a-config").await.unwrap().is_none(),
        "team-b deployed team-a's private repository"
    );
    // Pinned to a commit berth's cache already holds (team-a fetched it): the remote is still asked.
    let sha = estate.repo_a.git(&["rev-parse", "HEAD"]);
    let source = json!({"repoURL": &estate.url_a, "targetRevision": sha, "path": "apps/cfg"});
    estate.bob.post("/api/v1/applications", estate.app("borrow-sha", "team-b", source, true)).await;
    let conditions = estate.conditions_until("borrow-sha", |c| c.contains("ComparisonError")).await;
    assert!(conditions.contains("could not read Username"), "{conditions}");
    assert!(
        cms_b.get_opt("team-a-config").await.unwrap().is_none(),
        "a SHA pin read team-a's repository from berth's cache"
    );

    // 12. A repo-creds prefix is matched on the parsed URL: host and port, not the raw string.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(String::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buf = vec![0u8; 16 * 1024];
            let n = socket.read(&mut buf).await.unwrap_or(0);
            record.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            let _ = socket
                .write_all(b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"x\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                .await;
        }
    });
    let url = format!("http://127.0.0.1.attacker.example@127.0.0.1:{port}/x.git");
    let source = json!({"repoURL": url, "targetRevision": "main", "path": "."});
    let (status, _) =
        estate.bob.post("/api/v1/applications", estate.app("prefix", "team-b", source, true)).await;
    if status == 200 {
        estate.conditions("prefix").await;
    }
    // git may send the URL's own user name (with no password); berth's repo-creds must never go there.
    let seen = seen.lock().unwrap().clone();
    let sent: Vec<String> = seen
        .lines()
        .filter_map(|l| l.strip_prefix("Authorization: Basic "))
        .map(|b| {
            String::from_utf8_lossy(
                &base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b.trim()).unwrap(),
            )
            .into_owned()
        })
        .collect();
    assert!(
        sent.iter().all(|s| !s.contains("prefix-creds-pw-4") && !s.starts_with("ci:")),
        "repo-creds for http://127.0.0.1 were sent to another port: {sent:?}"
    );

    estate.assert_nothing_leaked().await;
}

#[tokio::test]
async fn the_http_surface_is_hardened() {
    let estate = Estate::start("sec-http").await;
    let source_b = json!({"repoURL": &estate.url_b, "targetRevision": "main", "path": "apps/cm"});
    let (status, body) =
        estate.bob.post("/api/v1/applications", estate.app("web", "team-b", source_b, false)).await;
    assert_eq!(status, 200, "{body}");
    let http = reqwest::Client::new();

    // 10. A cross-site form: the cookie alone, no body, no JSON content type.
    let response = http
        .post(format!("{}/api/v1/applications/web/sync", estate.berth.base))
        .header("Cookie", format!("argocd.token={}", estate.bob.token))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    assert!(!(200..300).contains(&status), "a bodyless cookie-only POST synced: {status}");
    let response = http
        .post(format!("{}/api/v1/applications/web/sync", estate.berth.base))
        .header("Cookie", format!("argocd.token={}", estate.bob.token))
        .header("Content-Type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert!(!response.status().is_success(), "a text/plain cookie POST synced: {}", response.status());
    assert!(
        estate.stored("web").await.unwrap()["operation"].is_null(),
        "a CSRF request started an operation"
    );

    // 11. Big bodies are refused before they are read: 12 logins of 48 MB at once.
    let hwm = || {
        let status = std::fs::read_to_string(format!("/proc/{}/status", estate.berth.pid())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap().to_string();
        line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap()
    };
    let before = hwm();
    let body = format!("{{\"username\": \"admin\", \"password\": \"{}\"}}", "x".repeat(48 * 1024 * 1024));
    let sends: Vec<_> = (0..12)
        .map(|_| {
            let (http, url, body) =
                (http.clone(), format!("{}/api/v1/session", estate.berth.base), body.clone());
            tokio::spawn(async move {
                http.post(url)
                    .header("Content-Type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .map(|r| r.status())
            })
        })
        .collect();
    for send in sends {
        if let Ok(status) = send.await.unwrap() {
            assert_eq!(status.as_u16(), 413, "a 48 MB login body was accepted");
        }
    }
    let grown_kib = hwm().saturating_sub(before);
    assert!(grown_kib < 64 * 1024, "berth's peak memory grew by {grown_kib} KiB for 12 refused bodies");

    // 13. Framing and scripts from elsewhere are refused; metrics are not on the API port.
    let response = http.get(format!("{}/", estate.berth.base)).send().await.unwrap();
    let headers = response.headers().clone();
    assert_eq!(
        headers.get("x-frame-options").and_then(|v| v.to_str().ok()),
        Some("sameorigin"),
        "{headers:?}"
    );
    let csp = headers.get("content-security-policy").and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert!(csp.contains("frame-ancestors"), "{headers:?}");
    let metrics = http.get(format!("{}/metrics", estate.berth.base)).send().await.unwrap();
    let text = metrics.text().await.unwrap();
    assert!(!text.contains("argocd_app"), "metrics are served on the API port without authentication");

    // A client that never finishes its headers is disconnected.
    let mut slow =
        tokio::net::TcpStream::connect(estate.berth.base.trim_start_matches("http://")).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    slow.write_all(b"GET /api/version HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(DEADLINE, slow.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "a client that sent half its headers was kept for {DEADLINE:?}");

    // A stream opened before logout ends after it. A new connection: the pooled one idled through the
    // slow client's wait, and the server closes idle connections at its header timeout.
    let mut stream = reqwest::Client::new()
        .get(format!("{}/api/v1/stream/applications", estate.berth.base))
        .bearer_auth(&estate.bob.token)
        .send()
        .await
        .unwrap();
    assert!(stream.chunk().await.unwrap().is_some(), "the stream sent nothing");
    let (status, _) = estate.bob.send(reqwest::Method::DELETE, "/api/v1/session", None).await;
    assert_eq!(status, 200);
    let ended =
        tokio::time::timeout(DEADLINE, async { while let Ok(Some(_)) = stream.chunk().await {} }).await;
    assert!(ended.is_ok(), "the stream went on after logout");

    estate.assert_nothing_leaked().await;
}
