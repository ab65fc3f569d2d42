//! Values a tenant writes never reach git, helm or kustomize where they read options (issue 12, items 1, 2,
//! 3 and 9): each attack is refused before any tool runs, and the command it carries leaves no marker.
//! Helm and kustomize are the real binaries on `PATH` (`eval "$(./hack/cluster env)"`).

mod common;

use berth_api::application::{ApplicationSourceHelm, ApplicationSourceKustomize, HelmFileParameter};
use berth_repo::git::{Credentials, GitCache, GitError};
use berth_repo::render::helm::{HelmCredentials, render_helm_chart, render_helm_path};
use berth_repo::render::kustomize::render_kustomize;
use berth_repo::render::{RenderError, ToolContext};
use berth_repo::validate::ALLOW_FILE_URLS_KEY;
use berth_testkit::GitRepo;
use std::path::{Path, PathBuf};
use std::time::Duration;

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

/// A path a successful attack would create, in a directory of its own.
fn marker(dir: &Path) -> PathBuf {
    dir.join("pwned")
}

fn assert_invalid(result: Result<impl std::fmt::Debug, GitError>, field: &str) -> String {
    match result {
        Err(GitError::Invalid(e)) => {
            assert_eq!(e.field, field, "{e}");
            e.to_string()
        }
        other => panic!("expected a refusal naming {field}, got {other:?}"),
    }
}

#[tokio::test]
async fn a_repo_url_that_is_a_git_option_is_refused_and_runs_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let mark = marker(tmp.path());
    let cache = GitCache::new(tmp.path().join("cache"));
    cache.set_allow_file_urls(true);
    let url = format!("--upload-pack=touch {};true", mark.display());
    let none = Credentials::default();
    // A full SHA skips ls-remote: the fetch is where the option used to land.
    assert_invalid(cache.resolve(&url, SHA, &none, Duration::ZERO).await, "spec.source.repoURL");
    assert_invalid(cache.fetch(&url, SHA, &none).await, "spec.source.repoURL");
    assert_invalid(cache.resolve(&url, "main", &none, Duration::ZERO).await, "spec.source.repoURL");
    assert!(!mark.exists(), "git ran the injected upload-pack");
}

#[tokio::test]
async fn git_transport_forms_are_refused_and_run_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let mark = marker(tmp.path());
    let cache = GitCache::new(tmp.path().join("cache"));
    cache.set_allow_file_urls(true);
    let none = Credentials::default();
    for url in [format!("ext::sh -c touch% {}", mark.display()), "fd::0".to_string(), "ext::true".to_string()]
    {
        assert_invalid(cache.resolve(&url, "main", &none, Duration::ZERO).await, "spec.source.repoURL");
        assert_invalid(cache.fetch(&url, SHA, &none).await, "spec.source.repoURL");
    }
    assert!(!mark.exists(), "git ran the ext:: command");
}

#[tokio::test]
async fn a_revision_that_is_a_git_option_is_refused() {
    let repo = GitRepo::new();
    repo.write("a.yaml", "a: 1\n");
    repo.commit("one");
    let tmp = tempfile::tempdir().unwrap();
    let cache = GitCache::new(tmp.path().join("cache"));
    cache.set_allow_file_urls(true);
    let none = Credentials::default();
    for revision in ["--upload-pack=touch x", "main..HEAD", "HEAD~1", "ma\nin"] {
        assert_invalid(
            cache.resolve(&repo.url(), revision, &none, Duration::ZERO).await,
            "spec.source.targetRevision",
        );
    }
}

#[tokio::test]
async fn file_urls_are_refused_unless_allowed_and_the_refusal_says_how_to_allow_them() {
    let repo = GitRepo::new();
    repo.write("apps/web/a.yaml", "a: 1\n");
    let sha = repo.commit("one");
    let tmp = tempfile::tempdir().unwrap();
    let cache = GitCache::new(tmp.path().join("cache"));
    let none = Credentials::default();
    let message = assert_invalid(
        cache.resolve(&repo.url(), "main", &none, Duration::ZERO).await,
        "spec.source.repoURL",
    );
    assert!(message.contains(ALLOW_FILE_URLS_KEY) && message.contains("argocd-cm"), "{message}");
    assert_invalid(cache.resolve(&repo.url(), &sha, &none, Duration::ZERO).await, "spec.source.repoURL");
    assert_invalid(cache.fetch(&repo.url(), &sha, &none).await, "spec.source.repoURL");

    cache.set_allow_file_urls(true);
    assert_eq!(cache.resolve(&repo.url(), "main", &none, Duration::ZERO).await.unwrap(), sha);
    cache.fetch(&repo.url(), &sha, &none).await.unwrap();
    assert!(cache.tree(&repo.url(), &sha).await.unwrap().join("apps/web/a.yaml").is_file());

    // Turned off again: the clone already in the cache is not fetched from through file:// any more.
    cache.set_allow_file_urls(false);
    let other = repo.write("apps/web/b.yaml", "b: 2\n").commit("two");
    assert_invalid(cache.fetch(&repo.url(), &other, &none).await, "spec.source.repoURL");
}

#[tokio::test]
async fn cache_paths_are_not_the_hash_of_the_url() {
    let repo = GitRepo::new();
    repo.write("a.yaml", "a: 1\n");
    let sha = repo.commit("one");
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("cache");
    let cache = GitCache::new(&root);
    cache.set_allow_file_urls(true);
    cache.fetch(&repo.url(), &sha, &Credentials::default()).await.unwrap();
    let tree = cache.tree(&repo.url(), &sha).await.unwrap();

    // The old names: the first 12 bytes of sha256(normalized URL), which anyone could compute.
    let normalized = berth_repo::git::normalize_url(&repo.url());
    let old = {
        use sha2::Digest;
        sha2::Sha256::digest(normalized.as_bytes())
            .iter()
            .take(12)
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let names = |dir: &str| -> Vec<String> {
        std::fs::read_dir(root.join(dir))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    let repos = names("repos");
    assert_eq!(repos.len(), 1, "{repos:?}");
    for name in repos.iter().chain(&names("trees")) {
        assert!(!name.contains(&old), "{name} is predictable from the URL");
    }
    assert!(tree.starts_with(root.join("trees")));
    // A second cache (another installation) puts the same repository somewhere else.
    let other_root = tmp.path().join("other");
    let other = GitCache::new(&other_root);
    other.set_allow_file_urls(true);
    other.fetch(&repo.url(), &sha, &Credentials::default()).await.unwrap();
    let other_tree = other.tree(&repo.url(), &sha).await.unwrap();
    assert_ne!(tree.file_name(), other_tree.file_name());
}

fn helm_ctx(work: &Path) -> ToolContext {
    let mut ctx = ToolContext::new("web", "web", work.to_path_buf());
    ctx.helm = common::helm();
    ctx.timeout = Duration::from_secs(60);
    ctx
}

/// A chart at `chart/` and a post-renderer script beside it that would leave the marker.
fn helm_repo(mark: &Path) -> tempfile::TempDir {
    let repo = tempfile::tempdir().unwrap();
    let chart = repo.path().join("chart");
    std::fs::create_dir_all(chart.join("templates")).unwrap();
    std::fs::write(chart.join("Chart.yaml"), "apiVersion: v2\nname: web\nversion: 0.1.0\n").unwrap();
    std::fs::write(
        chart.join("templates/cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\ndata:\n  a: {{ .Values.a | default \"x\" | quote }}\n",
    )
    .unwrap();
    let script = repo.path().join("render.sh");
    std::fs::write(&script, format!("#!/bin/sh\ntouch {}\ncat\n", mark.display())).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    repo
}

#[test]
fn a_release_name_that_is_a_helm_flag_is_refused_and_runs_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let mark = marker(tmp.path());
    let repo = helm_repo(&mark);
    let work = tempfile::tempdir().unwrap();
    let ctx = helm_ctx(work.path());
    let script = repo.path().join("render.sh");
    for release in [
        "--set-file=x=/etc/hostname".to_string(),
        format!("--post-renderer={}", script.display()),
        "{{ .Release.Namespace }}".to_string(),
    ] {
        let helm = ApplicationSourceHelm { release_name: Some(release.clone()), ..Default::default() };
        match render_helm_path(repo.path(), "chart", Some(&helm), &ctx) {
            Err(RenderError::InvalidFile { file, .. }) => assert_eq!(file, "spec.source.helm.releaseName"),
            other => panic!("{release}: expected a refusal of the release name, got {other:?}"),
        }
    }
    // The Application's own name is the default release name and is held to the same rule.
    let mut bad_app = helm_ctx(work.path());
    bad_app.app_name = format!("--post-renderer={}", script.display());
    assert!(matches!(
        render_helm_path(repo.path(), "chart", None, &bad_app),
        Err(RenderError::InvalidFile { file, .. }) if file == "metadata.name"
    ));
    assert!(!mark.exists(), "helm ran the post-renderer");
    // A plain release name still renders, and names the objects.
    let helm = ApplicationSourceHelm { release_name: Some("custom".into()), ..Default::default() };
    let m = render_helm_path(repo.path(), "chart", Some(&helm), &ctx).unwrap();
    assert_eq!(m[0].object["metadata"]["name"], "custom");
}

#[test]
fn values_that_start_with_a_dash_stay_values() {
    let repo = helm_repo(&marker(Path::new("/nonexistent")));
    let work = tempfile::tempdir().unwrap();
    let mut ctx = helm_ctx(work.path());
    // `--flag=value` forms: a namespace or a parameter value that looks like a flag is only a value.
    ctx.namespace = "--debug".into();
    let helm = ApplicationSourceHelm {
        parameters: vec![berth_api::application::HelmParameter {
            name: "a".into(),
            value: "--post-renderer=/bin/sh".into(),
            force_string: None,
        }],
        ..Default::default()
    };
    let m = render_helm_path(repo.path(), "chart", Some(&helm), &ctx).unwrap();
    assert_eq!(m[0].object["data"]["a"], "--post-renderer=/bin/sh");
}

#[test]
fn a_file_parameter_name_cannot_add_a_file_of_its_own() {
    let repo = helm_repo(&marker(Path::new("/nonexistent")));
    std::fs::write(repo.path().join("chart/v.txt"), "fine").unwrap();
    let work = tempfile::tempdir().unwrap();
    let helm = ApplicationSourceHelm {
        file_parameters: vec![HelmFileParameter { name: "a=/etc/hostname,b".into(), path: "v.txt".into() }],
        ..Default::default()
    };
    match render_helm_path(repo.path(), "chart", Some(&helm), &helm_ctx(work.path())) {
        Err(RenderError::InvalidFile { file, .. }) => {
            assert_eq!(file, "spec.source.helm.fileParameters[0].name")
        }
        other => panic!("expected a refusal of the parameter name, got {other:?}"),
    }
}

#[test]
fn chart_names_versions_and_repositories_that_are_helm_flags_are_refused() {
    let work = tempfile::tempdir().unwrap();
    let mut ctx = helm_ctx(work.path());
    ctx.network = true;
    let none = HelmCredentials::default();
    let cases = [
        ("https://charts.example.com", "--devel", "1.0.0", "spec.source.chart"),
        ("https://charts.example.com", "web", "--devel", "spec.source.targetRevision"),
        ("--repo=https://evil.example.com", "web", "1.0.0", "spec.source.repoURL"),
        ("file:///etc", "web", "1.0.0", "spec.source.repoURL"),
    ];
    for (url, chart, version, field) in cases {
        match render_helm_chart(url, chart, version, None, &ctx, &none) {
            Err(RenderError::InvalidFile { file, .. }) => assert_eq!(file, field, "{url} {chart} {version}"),
            other => panic!("{url} {chart} {version}: expected a refusal naming {field}, got {other:?}"),
        }
    }
}

fn kustomize_ctx(work: &Path, network: bool) -> ToolContext {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let bin = std::env::split_paths(&path)
        .map(|dir| dir.join("kustomize"))
        .find(|p| p.is_file())
        .expect("kustomize on PATH: run `eval \"$(./hack/cluster env)\"` first");
    let mut ctx = ToolContext::new("web", "web", work.to_path_buf());
    ctx.kustomize = bin;
    ctx.timeout = Duration::from_secs(60);
    ctx.network = network;
    ctx
}

#[test]
fn a_file_remote_base_with_an_option_in_its_ref_is_refused_and_runs_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let mark = marker(tmp.path());
    let repo = tempfile::tempdir().unwrap();
    let entry = format!("file:///x?ref=--upload-pack=touch%20{}%3Btrue", mark.display());
    let dir = repo.path().join("apps/evil");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("kustomization.yaml"), format!("resources:\n  - {entry}\n")).unwrap();
    let work = tempfile::tempdir().unwrap();
    // Refused with network too: a file:// remote clones a path on berth's own disk.
    for network in [false, true] {
        match render_kustomize(repo.path(), "apps/evil", None, &kustomize_ctx(work.path(), network)) {
            Err(RenderError::InvalidFile { file, message }) => {
                assert_eq!(file, "apps/evil/kustomization.yaml");
                assert!(message.contains("resources") && message.contains("file:///x"), "{message}");
            }
            other => panic!("expected the remote base to be refused, got {other:?}"),
        }
    }
    assert!(!mark.exists(), "kustomize's git ran the injected upload-pack");
}

#[test]
fn remote_bases_are_refused_without_network_and_options_in_their_ref_always() {
    let repo = tempfile::tempdir().unwrap();
    let dir = repo.path().join("apps/remote");
    std::fs::create_dir_all(&dir).unwrap();
    let work = tempfile::tempdir().unwrap();
    for (entry, network) in [
        ("https://github.com/kubernetes-sigs/kustomize//examples/helloWorld?ref=v3.3.1", false),
        ("github.com/kubernetes-sigs/kustomize/examples/helloWorld?ref=v3.3.1", false),
        ("git@github.com:org/repo.git//base", false),
        ("https://github.com/org/repo//base?ref=--upload-pack=touch%20x", true),
        ("https://github.com/org/repo//base?ref=%2D%2Dupload-pack=x", true),
    ] {
        std::fs::write(dir.join("kustomization.yaml"), format!("resources:\n  - {entry}\n")).unwrap();
        match render_kustomize(repo.path(), "apps/remote", None, &kustomize_ctx(work.path(), network)) {
            Err(RenderError::InvalidFile { file, .. }) => assert_eq!(file, "apps/remote/kustomization.yaml"),
            other => panic!("{entry}: expected a refusal, got {other:?}"),
        }
    }
}

#[test]
fn a_remote_component_from_the_application_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mark = marker(tmp.path());
    let repo = tempfile::tempdir().unwrap();
    let dir = repo.path().join("apps/web");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("kustomization.yaml"), "resources: []\n").unwrap();
    let work = tempfile::tempdir().unwrap();
    let options = ApplicationSourceKustomize {
        components: vec![format!("file:///x?ref=--upload-pack=touch%20{}%3Btrue", mark.display())],
        ..Default::default()
    };
    match render_kustomize(repo.path(), "apps/web", Some(&options), &kustomize_ctx(work.path(), true)) {
        Err(RenderError::InvalidFile { file, .. }) => assert_eq!(file, "spec.source.kustomize.components[0]"),
        other => panic!("expected a refusal of the component, got {other:?}"),
    }
    assert!(!mark.exists());
}

#[test]
fn kustomize_edit_values_that_start_with_a_dash_stay_values() {
    let repo = tempfile::tempdir().unwrap();
    let dir = repo.path().join("apps/web");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("kustomization.yaml"), "resources: [cm.yaml]\n").unwrap();
    std::fs::write(dir.join("cm.yaml"), "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\n").unwrap();
    let work = tempfile::tempdir().unwrap();
    let options = ApplicationSourceKustomize { name_suffix: Some("-x".into()), ..Default::default() };
    let m = render_kustomize(repo.path(), "apps/web", Some(&options), &kustomize_ctx(work.path(), false))
        .unwrap();
    assert_eq!(m[0].object["metadata"]["name"], "cm-x");
}

/// argocd-cm build options that would make kustomize run code, as an admin might copy them from an
/// Argo CD install, or as a hostile value would try to smuggle them in.
const HOSTILE_BUILD_OPTIONS: &[&str] = &[
    "--enable-alpha-plugins --enable-exec",
    "--enable-exec=true",
    "--enable-helm --helm-command /bin/sh",
    "--helm-command=/tmp/pwn --enable-helm",
    "--load-restrictor LoadRestrictionsNone --enable-exec",
    "--load-restrictor=--enable-exec",
    "--load-restrictor --enable-exec",
    "-e PWN=1 --mount type=bind,src=/,dst=/host --network --as-current-user",
    "-o /tmp/pwned.yaml",
    "build /etc --stack-trace",
];

#[test]
fn no_build_option_from_argocd_cm_becomes_a_flag_that_runs_code() {
    use berth_repo::render::kustomize::BuildOptions;
    for text in HOSTILE_BUILD_OPTIONS {
        let options = BuildOptions::parse("kustomize.buildOptions", text);
        let args = options.args();
        assert_eq!(args.len(), 1, "{text}: {args:?}");
        assert!(
            args[0] == "--load-restrictor=LoadRestrictionsNone"
                || args[0] == "--load-restrictor=LoadRestrictionsRootOnly",
            "{text}: {args:?}"
        );
        assert!(!options.refused.is_empty(), "{text}: something must be refused, by name");
    }
}

#[test]
fn an_exec_function_stays_unrun_when_argocd_cm_asks_for_plugins_and_exec() {
    use berth_repo::render::kustomize::KustomizeSettings;
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let mark = marker(tmp.path());
    let repo = tempfile::tempdir().unwrap();
    let dir = repo.path().join("apps/evil");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("kustomization.yaml"), "generators:\n  - pwn.yaml\n").unwrap();
    std::fs::write(
        dir.join("pwn.yaml"),
        "apiVersion: example.com/v1\nkind: Pwn\nmetadata:\n  name: pwn\n  annotations:\n    \
         config.kubernetes.io/function: |\n      exec:\n        path: ./pwn.sh\n",
    )
    .unwrap();
    std::fs::write(dir.join("pwn.sh"), format!("#!/bin/sh\ntouch {}\n", mark.display())).unwrap();
    std::fs::set_permissions(dir.join("pwn.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let work = tempfile::tempdir().unwrap();
    let mut ctx = kustomize_ctx(work.path(), false);
    let data = [("kustomize.buildOptions".to_string(), HOSTILE_BUILD_OPTIONS[0].to_string())].into();
    let mut warnings = Vec::new();
    ctx.kustomize_settings = std::sync::Arc::new(KustomizeSettings::from_argocd_cm(&data, &mut warnings));
    assert_eq!(warnings.len(), 2, "both options are refused by name: {warnings:?}");
    match render_kustomize(repo.path(), "apps/evil", None, &ctx) {
        Err(RenderError::Tool { message, .. }) => {
            assert!(message.contains("\"--enable-alpha-plugins\" is not passed"), "{message}");
            assert!(message.contains("\"--enable-exec\" is not passed"), "{message}");
        }
        other => panic!("expected kustomize to refuse the external generator, got {other:?}"),
    }
    assert!(!mark.exists(), "kustomize ran the repository's exec function");
}
