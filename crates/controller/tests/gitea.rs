//! The `pullRequest` and `scmProvider` generators against a real Gitea (built by `hack/deps`, started by
//! berth-testkit) with their token in a Secret on the real local cluster: the parameters Argo CD names,
//! the provider's label filter, a closed pull request gone, `pathsExist` asked of the repositories, and
//! the settings and failures an operator sees (a disallowed API URL, a wrong token that never shows, a
//! `tokenRef` to argocd-secret or a repository Secret refused without showing what they hold).

use berth_appset::params::{ParamSet, TemplateMode};
use berth_controller::appset::scm::service_params;
use berth_testkit::gitea::Gitea;
use berth_testkit::{client, ensure_namespace, unique};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// A namespace of its own with the Secret `gitea-token` holding `token` under `token`.
async fn namespace_with_token(client: &kube::Client, token: &str) -> String {
    let namespace = unique("gitea");
    ensure_namespace(client, &namespace).await;
    put_secret(client, &namespace, "gitea-token", &json!({}), "token", token).await;
    namespace
}

/// The Secret `name` in `namespace` with `labels`, holding `value` under `key`.
async fn put_secret(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    labels: &Value,
    key: &str,
    value: &str,
) {
    let secret = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "stringData": {key: value}});
    Api::<Secret>::namespaced(client.clone(), namespace)
        .patch(name, &PatchParams::apply("berth-test"), &Patch::Apply(&secret))
        .await
        .unwrap();
}

async fn delete_namespace(client: &kube::Client, namespace: &str) {
    let _ = Api::<Namespace>::all(client.clone()).delete(namespace, &DeleteParams::default()).await;
}

fn no_settings() -> BTreeMap<String, String> {
    BTreeMap::new()
}

fn numbers(sets: &[ParamSet]) -> Vec<String> {
    let mut numbers: Vec<String> = sets.iter().map(|s| s.get("number").unwrap().to_string()).collect();
    numbers.sort();
    numbers
}

/// `acme/web` with `main` and two feature branches, each with an open pull request labelled `preview`,
/// and a `docs` pull request without the label. Returns the feature branches' head SHAs.
async fn web_with_pull_requests(gitea: &Gitea) -> (String, String) {
    gitea.create_org("acme").await;
    gitea.create_repo("acme", "web").await;
    gitea.push_branch("acme", "web", "main", None, &[("deploy/kustomization.yaml", "resources: []\n")]).await;
    let a = gitea.push_branch("acme", "web", "feat/Cache_Layer", Some("main"), &[("a.txt", "a\n")]).await;
    let b = gitea.push_branch("acme", "web", "feat-b", Some("main"), &[("b.txt", "b\n")]).await;
    gitea.push_branch("acme", "web", "docs", Some("main"), &[("README.md", "docs\n")]).await;
    let one = gitea.open_pull_request("acme", "web", "feat/Cache_Layer", "main", "Add a cache").await;
    let two = gitea.open_pull_request("acme", "web", "feat-b", "main", "Feature B").await;
    let three = gitea.open_pull_request("acme", "web", "docs", "main", "Docs").await;
    assert_eq!((one, two, three), (1, 2, 3));
    gitea.add_label("acme", "web", one, "preview").await;
    gitea.add_label("acme", "web", two, "preview").await;
    gitea.add_label("acme", "web", two, "team-web").await;
    (a, b)
}

#[tokio::test]
async fn open_pull_requests_with_the_label_become_parameters_and_a_closed_one_is_gone() {
    let client = client().await;
    let gitea = Gitea::start().await;
    let (sha_a, sha_b) = web_with_pull_requests(&gitea).await;
    let namespace = namespace_with_token(&client, gitea.token()).await;
    let spec = json!({
        "gitea": { "owner": "acme", "repo": "web", "api": gitea.url(),
                   "tokenRef": { "secretName": "gitea-token", "key": "token" }, "labels": ["preview"] },
        "filters": [{ "targetBranchMatch": "^main$" }],
        "values": { "name": "web-{{branch_slug}}-{{number}}" }
    });
    let sets = service_params(&client, &namespace, "pullRequest", &spec, TemplateMode::Fast, &no_settings())
        .await
        .unwrap();
    assert_eq!(numbers(&sets), ["1", "2"], "the docs pull request has no preview label");
    let one = sets.iter().find(|s| s.get("number") == Some("1")).unwrap();
    let expected: BTreeMap<String, String> = [
        ("number", "1"),
        ("title", "Add a cache"),
        ("branch", "feat/Cache_Layer"),
        ("branch_slug", "feat-cache-layer"),
        ("target_branch", "main"),
        ("target_branch_slug", "main"),
        ("head_sha", sha_a.as_str()),
        ("head_short_sha", &sha_a[..8]),
        ("head_short_sha_7", &sha_a[..7]),
        ("author", gitea.admin()),
        ("values.name", "web-feat-cache-layer-1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(one, &ParamSet::Flat(expected));

    // goTemplate: the labels as a list, the values nested.
    let mut go = spec.clone();
    go["values"]["name"] = json!("web-{{.branch_slug}}-{{.number}}");
    let sets = service_params(&client, &namespace, "pullRequest", &go, TemplateMode::Go, &no_settings())
        .await
        .unwrap();
    let two = sets.iter().map(ParamSet::to_value).find(|s| s["number"] == "2").unwrap();
    assert_eq!(two["head_sha"], sha_b.as_str());
    assert_eq!(two["values"]["name"], "web-feat-b-2");
    let mut labels: Vec<&str> =
        two["labels"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
    labels.sort();
    assert_eq!(labels, ["preview", "team-web"]);

    gitea.close_pull_request("acme", "web", 1).await;
    let sets = service_params(&client, &namespace, "pullRequest", &spec, TemplateMode::Fast, &no_settings())
        .await
        .unwrap();
    assert_eq!(numbers(&sets), ["2"], "a closed pull request generates nothing");

    // A missing repository fails the generator, unless continueOnRepoNotFoundError.
    let mut missing = spec.clone();
    missing["gitea"]["repo"] = json!("nope");
    let err =
        service_params(&client, &namespace, "pullRequest", &missing, TemplateMode::Fast, &no_settings())
            .await
            .unwrap_err();
    assert!(err.to_string().contains("acme/nope was not found"), "{err}");
    missing["continueOnRepoNotFoundError"] = json!(true);
    let sets =
        service_params(&client, &namespace, "pullRequest", &missing, TemplateMode::Fast, &no_settings())
            .await
            .unwrap();
    assert!(sets.is_empty());
    delete_namespace(&client, &namespace).await;
}

#[tokio::test]
async fn an_scm_provider_lists_the_organisations_repositories_that_have_the_paths() {
    let client = client().await;
    let gitea = Gitea::start().await;
    gitea.create_org("acme").await;
    for repo in ["web", "api", "docs", "empty"] {
        gitea.create_repo("acme", repo).await;
    }
    let web = gitea
        .push_branch("acme", "web", "main", None, &[("deploy/kustomization.yaml", "resources: []\n")])
        .await;
    gitea.push_branch("acme", "web", "release-1", Some("main"), &[("x.txt", "x\n")]).await;
    gitea
        .push_branch(
            "acme",
            "api",
            "main",
            None,
            &[("deploy/kustomization.yaml", "resources: []\n"), ("disabled", "")],
        )
        .await;
    gitea.push_branch("acme", "docs", "main", None, &[("README.md", "docs\n")]).await;
    let label = gitea.label_id("acme", "web", "deploy-ok").await;
    assert!(label > 0);
    let namespace = namespace_with_token(&client, gitea.token()).await;
    let token_ref = json!({ "secretName": "gitea-token", "key": "token" });
    let gitea_spec = json!({ "owner": "acme", "api": gitea.url(), "tokenRef": token_ref });
    let spec = json!({
        "cloneProtocol": "https",
        "gitea": gitea_spec,
        "filters": [{ "pathsExist": ["deploy/"], "pathsDoNotExist": ["disabled"] }]
    });
    let sets = service_params(&client, &namespace, "scmProvider", &spec, TemplateMode::Fast, &no_settings())
        .await
        .unwrap();
    assert_eq!(sets.len(), 1, "docs has no deploy folder, api is disabled, empty has no commit: {sets:?}");
    let set = &sets[0];
    assert_eq!(set.get("organization"), Some("acme"));
    assert_eq!(set.get("repository"), Some("web"));
    assert_eq!(set.get("branch"), Some("main"));
    assert_eq!(set.get("branchNormalized"), Some("main"));
    assert_eq!(set.get("sha"), Some(web.as_str()));
    assert_eq!(set.get("short_sha"), Some(&web[..8]));
    assert_eq!(set.get("short_sha_7"), Some(&web[..7]));
    assert_eq!(set.get("url"), Some(format!("{}acme/web", gitea.url()).as_str()));
    assert_eq!(set.get("labels"), Some("deploy-ok"));

    // Every branch, narrowed by branchMatch and labelMatch.
    let mut all = gitea_spec.clone();
    all["allBranches"] = json!(true);
    let spec = json!({ "gitea": all, "filters": [{ "branchMatch": "^release-", "labelMatch": "^deploy" }] });
    let sets = service_params(&client, &namespace, "scmProvider", &spec, TemplateMode::Go, &no_settings())
        .await
        .unwrap();
    let found: Vec<Value> = sets.iter().map(ParamSet::to_value).collect();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        (found[0]["repository"].as_str(), found[0]["branch"].as_str()),
        (Some("web"), Some("release-1"))
    );
    assert!(found[0]["url"].as_str().unwrap().ends_with("acme/web.git"), "ssh is the default clone protocol");
    delete_namespace(&client, &namespace).await;
}

#[tokio::test]
async fn settings_and_a_wrong_token_give_clear_errors_that_never_show_the_token() {
    let client = client().await;
    let gitea = Gitea::start().await;
    web_with_pull_requests(&gitea).await;
    let wrong = "0123456789abcdef0123456789abcdef01234567";
    let namespace = namespace_with_token(&client, wrong).await;
    let spec = |api: &str| {
        json!({ "gitea": { "owner": "acme", "repo": "web", "api": api,
                            "tokenRef": { "secretName": "gitea-token", "key": "token" } } })
    };

    // A wrong token: Gitea's 401, a hint, and neither token.
    let err = service_params(
        &client,
        &namespace,
        "pullRequest",
        &spec(&gitea.url()),
        TemplateMode::Fast,
        &no_settings(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("401") && err.contains("check the token in tokenRef"), "{err}");
    assert!(!err.contains(wrong) && !err.contains(gitea.token()), "the token shows in {err}");

    // An API URL the operator did not allow, named.
    let allowed: BTreeMap<String, String> = [(
        "applicationsetcontroller.allowed.scm.providers".to_string(),
        "https://gitea.example/".to_string(),
    )]
    .into();
    let err =
        service_params(&client, &namespace, "scmProvider", &spec(&gitea.url()), TemplateMode::Fast, &allowed)
            .await
            .unwrap_err()
            .to_string();
    assert!(err.contains(&format!("{:?} is not allowed", gitea.url())), "{err}");

    // SCM providers switched off.
    let off: BTreeMap<String, String> =
        [("applicationsetcontroller.enable.scm.providers".to_string(), "false".to_string())].into();
    let err =
        service_params(&client, &namespace, "pullRequest", &spec(&gitea.url()), TemplateMode::Fast, &off)
            .await
            .unwrap_err()
            .to_string();
    assert!(err.contains("SCM providers are disabled"), "{err}");

    // Only http and https.
    let err = service_params(
        &client,
        &namespace,
        "pullRequest",
        &spec("file:///etc/passwd"),
        TemplateMode::Fast,
        &no_settings(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("the scheme \"file\" is not allowed"), "{err}");

    // A missing Secret, another provider, another generator.
    let mut no_secret = spec(&gitea.url());
    no_secret["gitea"]["tokenRef"]["secretName"] = json!("absent");
    let err =
        service_params(&client, &namespace, "pullRequest", &no_secret, TemplateMode::Fast, &no_settings())
            .await
            .unwrap_err()
            .to_string();
    assert!(err.contains(&format!("the Secret {namespace}/absent does not exist")), "{err}");

    // Berth's and Argo CD's own Secrets and other credentials are never a token, and never shown.
    let server_key = "dummy-server-secretkey-4f1c9a0e7b2d";
    let repo_password = "dummy-repo-password-8d3e1f0a";
    put_secret(&client, &namespace, "argocd-secret", &json!({}), "server.secretkey", server_key).await;
    let repository = json!({"argocd.argoproj.io/secret-type": "repository"});
    put_secret(&client, &namespace, "repo-web", &repository, "password", repo_password).await;
    for (name, key, value, why) in [
        ("argocd-secret", "server.secretkey", server_key, "is berth's and Argo CD's own"),
        ("repo-web", "password", repo_password, "holds Argo CD credentials of another kind"),
    ] {
        let mut theft = spec(&gitea.url());
        theft["gitea"]["tokenRef"] = json!({ "secretName": name, "key": key });
        let err =
            service_params(&client, &namespace, "pullRequest", &theft, TemplateMode::Fast, &no_settings())
                .await
                .unwrap_err()
                .to_string();
        assert!(err.contains(&format!("the Secret {namespace}/{name} {why}")), "{err}");
        assert!(!err.contains(value), "the Secret's value shows in the error");
    }

    let github = json!({ "github": { "owner": "acme", "repo": "web" } });
    let err = service_params(&client, &namespace, "pullRequest", &github, TemplateMode::Fast, &no_settings())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("the github provider is not supported yet"), "{err}");
    let err = service_params(&client, &namespace, "plugin", &json!({}), TemplateMode::Fast, &no_settings())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("not supported yet"), "{err}");
    delete_namespace(&client, &namespace).await;
}
