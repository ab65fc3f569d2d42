//! Kustomize sources against the real `kustomize` binary (on `PATH` after
//! `eval "$(./hack/cluster env)"`), on the seed's layout `apps/web/{base,overlays/{production,staging}}`.

mod common;

use berth_api::application::{
    ApplicationSourceKustomize, KustomizePatch, KustomizeReplica, KustomizeSelector,
};
use berth_repo::render::kustomize::{KustomizeSettings, is_kustomization_dir, render_kustomize};
use berth_repo::render::{Manifest, RenderError, ToolContext};
use common::names;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The `kustomize` on `PATH`; these tests never run without it.
fn kustomize_bin() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).map(|dir| dir.join("kustomize")).find(|p| p.is_file()).unwrap_or_else(|| {
        panic!(
            "kustomize is not on PATH: run `eval \"$(./hack/cluster env)\"` in /work/main before these tests"
        )
    })
}

fn ctx(work_dir: &Path) -> ToolContext {
    let mut ctx = ToolContext::new("web-production", "web", work_dir.to_path_buf());
    ctx.kustomize = kustomize_bin();
    ctx.timeout = Duration::from_secs(60);
    ctx
}

fn write(root: &Path, files: &[(&str, &str)]) {
    for (path, text) in files {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

const DEPLOYMENT: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels:
    app: web
spec:
  replicas: 1
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
        - name: web
          image: myorg/web:v1.2.2
          ports:
            - containerPort: 8080
";

const SERVICE: &str = "\
apiVersion: v1
kind: Service
metadata:
  name: web
  labels:
    app: web
spec:
  selector:
    app: web
  ports:
    - port: 80
      targetPort: 8080
";

const PRODUCTION: &str = "\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../../base
labels:
  - pairs:
      env: production
replicas:
  - name: web
    count: 3
patches:
  - path: resources.yaml
";

const PRODUCTION_PATCH: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  template:
    spec:
      containers:
        - name: web
          resources:
            limits:
              memory: 512Mi
";

const MONITORING: &str = "\
apiVersion: kustomize.config.k8s.io/v1alpha1
kind: Component
resources:
  - servicemonitor-config.yaml
";

/// The seed's manifest repository: one app, a base and two overlays, and a component.
fn seed_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[
            ("apps/web/base/deployment.yaml", DEPLOYMENT),
            ("apps/web/base/service.yaml", SERVICE),
            ("apps/web/base/kustomization.yaml", "resources:\n  - deployment.yaml\n  - service.yaml\n"),
            ("apps/web/overlays/production/kustomization.yaml", PRODUCTION),
            ("apps/web/overlays/production/resources.yaml", PRODUCTION_PATCH),
            (
                "apps/web/overlays/staging/kustomization.yml",
                "resources:\n  - ../../base\nnamePrefix: staging-\n",
            ),
            ("apps/web/components/monitoring/kustomization.yaml", MONITORING),
            (
                "apps/web/components/monitoring/servicemonitor-config.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: monitoring\ndata:\n  scrape: \"true\"\n",
            ),
        ],
    );
    dir
}

const PROD: &str = "apps/web/overlays/production";

fn render(repo: &Path, path: &str, options: Option<&ApplicationSourceKustomize>) -> Vec<Manifest> {
    let work = tempfile::tempdir().unwrap();
    let out = render_kustomize(repo, path, options, &ctx(work.path()));
    out.unwrap_or_else(|e| panic!("render {path}: {e}"))
}

fn render_err(repo: &Path, path: &str, options: Option<&ApplicationSourceKustomize>) -> RenderError {
    let work = tempfile::tempdir().unwrap();
    render_kustomize(repo, path, options, &ctx(work.path())).expect_err("the render must fail")
}

fn object<'a>(manifests: &'a [Manifest], kind: &str, name: &str) -> &'a serde_json::Value {
    let found = manifests.iter().find(|m| m.object["kind"] == kind && m.object["metadata"]["name"] == name);
    &found.unwrap_or_else(|| panic!("no {kind}/{name} in {:?}", names(manifests))).object
}

/// Every file, folder and link under `root`, with contents or link targets.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            if meta.is_symlink() {
                out.insert(rel, format!("-> {}", std::fs::read_link(&path).unwrap().display()));
            } else if meta.is_dir() {
                out.insert(rel, "dir".into());
                stack.push(path);
            } else {
                out.insert(rel, std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    out
}

/// A stand-in `kustomize` that runs `body` (a shell script).
fn fake_kustomize(dir: &Path, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("kustomize");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Renders with a fake tool; a freshly written script may be briefly busy while another test forks.
fn render_with(repo: &Path, path: &str, ctx: &ToolContext) -> Result<Vec<Manifest>, RenderError> {
    for _ in 0..20 {
        match render_kustomize(repo, path, None, ctx) {
            Err(RenderError::Tool { message, .. }) if message.contains("Text file busy") => {
                std::thread::sleep(Duration::from_millis(50))
            }
            other => return other,
        }
    }
    panic!("the fake kustomize stayed busy")
}

#[test]
fn seed_production_overlay_renders_base_with_the_overlays_changes() {
    let repo = seed_repo();
    let m = render(repo.path(), PROD, None);
    assert_eq!(names(&m), ["Service/web", "Deployment/web"]);
    assert!(m.iter().all(|m| m.file == "apps/web/overlays/production/kustomization.yaml"));
    let deployment = object(&m, "Deployment", "web");
    assert_eq!(deployment["spec"]["replicas"], 3);
    assert_eq!(deployment["metadata"]["labels"]["env"], "production");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["resources"]["limits"]["memory"], "512Mi");
    assert_eq!(container["image"], "myorg/web:v1.2.2");
}

#[test]
fn kustomization_yml_and_a_root_kustomization_are_rendered() {
    let repo = seed_repo();
    let m = render(repo.path(), "apps/web/overlays/staging", None);
    assert_eq!(names(&m), ["Service/staging-web", "Deployment/staging-web"]);
    assert_eq!(m[0].file, "apps/web/overlays/staging/kustomization.yml");

    write(repo.path(), &[("kustomization.yaml", "resources:\n  - apps/web/base\n")]);
    let m = render(repo.path(), "", None);
    assert_eq!(names(&m), ["Service/web", "Deployment/web"]);
    assert_eq!(m[0].file, "kustomization.yaml");
}

#[test]
fn seed_images_option_sets_myorg_web_v1_2_3() {
    let repo = seed_repo();
    let options =
        ApplicationSourceKustomize { images: vec!["myorg/web:v1.2.3".into()], ..Default::default() };
    let m = render(repo.path(), PROD, Some(&options));
    let deployment = object(&m, "Deployment", "web");
    assert_eq!(deployment["spec"]["template"]["spec"]["containers"][0]["image"], "myorg/web:v1.2.3");
}

#[test]
fn images_option_substitutes_build_variables() {
    let repo = seed_repo();
    let options = ApplicationSourceKustomize {
        images: vec!["myorg/web=myorg/${ARGOCD_APP_NAME}:v2".into()],
        ..Default::default()
    };
    let m = render(repo.path(), PROD, Some(&options));
    let deployment = object(&m, "Deployment", "web");
    assert_eq!(deployment["spec"]["template"]["spec"]["containers"][0]["image"], "myorg/web-production:v2");
}

#[test]
fn name_prefix_and_suffix_options_replace_the_kustomizations_own() {
    let repo = seed_repo();
    let options = ApplicationSourceKustomize {
        name_prefix: Some("blue-".into()),
        name_suffix: Some("-v2".into()),
        ..Default::default()
    };
    let m = render(repo.path(), "apps/web/overlays/staging", Some(&options));
    assert_eq!(names(&m), ["Service/blue-web-v2", "Deployment/blue-web-v2"]);
}

#[test]
fn common_labels_and_annotations_options_reach_every_object() {
    let repo = seed_repo();
    let options = ApplicationSourceKustomize {
        common_labels: BTreeMap::from([("team".into(), "payments".into())]),
        common_annotations: BTreeMap::from([("owner".into(), "ops@example.com".into())]),
        ..Default::default()
    };
    let m = render(repo.path(), PROD, Some(&options));
    for object in m.iter().map(|m| &m.object) {
        assert_eq!(object["metadata"]["labels"]["team"], "payments", "{object}");
        assert_eq!(object["metadata"]["annotations"]["owner"], "ops@example.com", "{object}");
    }
    let deployment = object(&m, "Deployment", "web");
    assert_eq!(deployment["spec"]["selector"]["matchLabels"]["team"], "payments");
}

#[test]
fn force_common_labels_overrides_a_label_the_kustomization_already_sets() {
    let repo = seed_repo();
    write(
        repo.path(),
        &[(
            "apps/web/overlays/staging/kustomization.yml",
            "resources: [../../base]\ncommonLabels:\n  team: old\n",
        )],
    );
    let mut options = ApplicationSourceKustomize {
        common_labels: BTreeMap::from([("team".into(), "new".into())]),
        ..Default::default()
    };
    match render_err(repo.path(), "apps/web/overlays/staging", Some(&options)) {
        RenderError::Tool { tool, path, message } => {
            assert_eq!((tool.as_str(), path.as_str()), ("kustomize", "apps/web/overlays/staging"));
            assert!(message.contains("team"), "{message}");
            assert!(!message.contains("Usage:"), "{message}");
        }
        other => panic!("expected a kustomize error, got {other:?}"),
    }
    options.force_common_labels = Some(true);
    let m = render(repo.path(), "apps/web/overlays/staging", Some(&options));
    assert!(m.iter().all(|m| m.object["metadata"]["labels"]["team"] == "new"));
}

#[test]
fn common_annotations_envsubst_expands_build_variables_only_when_asked() {
    let repo = seed_repo();
    let mut options = ApplicationSourceKustomize {
        common_annotations: BTreeMap::from([
            ("app".into(), "${ARGOCD_APP_NAME}".into()),
            ("where".into(), "$ARGOCD_APP_NAMESPACE/$ARGOCD_APP_SOURCE_PATH".into()),
            ("price".into(), "$$5".into()),
        ]),
        ..Default::default()
    };
    let annotations = |m: &[Manifest]| object(m, "Service", "web")["metadata"]["annotations"].clone();
    let literal = annotations(&render(repo.path(), PROD, Some(&options)));
    assert_eq!(literal["app"], "${ARGOCD_APP_NAME}");
    options.common_annotations_envsubst = Some(true);
    let expanded = annotations(&render(repo.path(), PROD, Some(&options)));
    assert_eq!(expanded["app"], "web-production");
    assert_eq!(expanded["where"], "web/apps/web/overlays/production");
    assert_eq!(expanded["price"], "$5");
}

#[test]
fn replicas_option_overrides_the_overlays_count() {
    let repo = seed_repo();
    let options = ApplicationSourceKustomize {
        replicas: vec![KustomizeReplica { name: "web".into(), count: serde_json::json!("5") }],
        ..Default::default()
    };
    let m = render(repo.path(), PROD, Some(&options));
    assert_eq!(object(&m, "Deployment", "web")["spec"]["replicas"], 5);

    let bad = ApplicationSourceKustomize {
        replicas: vec![KustomizeReplica { name: "web".into(), count: serde_json::json!("many") }],
        ..Default::default()
    };
    let err = render_err(repo.path(), PROD, Some(&bad)).to_string();
    assert!(err.contains("replicas[0].count") && err.contains("many"), "{err}");
}

#[test]
fn inline_patches_json6902_and_strategic_merge_with_target_join_the_overlays_patches() {
    let repo = seed_repo();
    let options = ApplicationSourceKustomize {
        patches: vec![
            KustomizePatch {
                patch: Some(
                    "- op: replace\n  path: /spec/template/spec/containers/0/ports/0/containerPort\n  value: 9090\n"
                        .into(),
                ),
                target: Some(KustomizeSelector {
                    kind: Some("Deployment".into()),
                    name: Some("web".into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            KustomizePatch {
                patch: Some(
                    "apiVersion: v1\nkind: Service\nmetadata:\n  name: any\n  annotations:\n    patched: \"yes\"\n".into(),
                ),
                target: Some(KustomizeSelector { kind: Some("Service".into()), ..Default::default() }),
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    let m = render(repo.path(), PROD, Some(&options));
    let container = &object(&m, "Deployment", "web")["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["ports"][0]["containerPort"], 9090);
    // The overlay's own patch still applies.
    assert_eq!(container["resources"]["limits"]["memory"], "512Mi");
    assert_eq!(object(&m, "Service", "web")["metadata"]["annotations"]["patched"], "yes");
}

#[test]
fn components_option_adds_the_component_and_ignore_missing_skips_absent_ones() {
    let repo = seed_repo();
    let mut options = ApplicationSourceKustomize {
        components: vec!["../../components/monitoring".into(), "../../components/absent".into()],
        ..Default::default()
    };
    let err = render_err(repo.path(), PROD, Some(&options)).to_string();
    assert!(err.contains("components/absent"), "{err}");
    options.ignore_missing_components = Some(true);
    let m = render(repo.path(), PROD, Some(&options));
    assert_eq!(object(&m, "ConfigMap", "monitoring")["data"]["scrape"], "true");
}

#[test]
fn namespace_option_sets_every_objects_namespace() {
    let repo = seed_repo();
    let options = ApplicationSourceKustomize { namespace: Some("web-prod".into()), ..Default::default() };
    let m = render(repo.path(), PROD, Some(&options));
    assert!(m.iter().all(|m| m.object["metadata"]["namespace"] == "web-prod"), "{:?}", names(&m));
}

#[test]
fn source_tree_is_unchanged_and_scratch_removed_after_a_render_with_every_option() {
    let repo = seed_repo();
    let before = snapshot(repo.path());
    let options = ApplicationSourceKustomize {
        name_prefix: Some("p-".into()),
        name_suffix: Some("-s".into()),
        images: vec!["myorg/web:v1.2.3".into()],
        common_labels: BTreeMap::from([("team".into(), "web".into())]),
        common_annotations: BTreeMap::from([("owner".into(), "ops".into())]),
        namespace: Some("web".into()),
        replicas: vec![KustomizeReplica { name: "web".into(), count: serde_json::json!(2) }],
        patches: vec![KustomizePatch {
            patch: Some("- op: add\n  path: /metadata/annotations/x\n  value: y\n".into()),
            target: Some(KustomizeSelector { kind: Some("Service".into()), ..Default::default() }),
            ..Default::default()
        }],
        components: vec!["../../components/monitoring".into()],
        ..Default::default()
    };
    let work = tempfile::tempdir().unwrap();
    let m = render_kustomize(repo.path(), PROD, Some(&options), &ctx(work.path())).unwrap();
    assert_eq!(names(&m), ["ConfigMap/p-monitoring-s", "Service/p-web-s", "Deployment/p-web-s"]);
    assert_eq!(snapshot(repo.path()), before);
    assert_eq!(std::fs::read_dir(work.path()).unwrap().count(), 0, "the scratch directory is left behind");
}

#[test]
fn a_path_climbing_out_of_the_repository_is_refused() {
    let repo = seed_repo();
    assert_eq!(render_err(repo.path(), "../x", None), RenderError::OutsideRepository { path: "../x".into() });
    assert_eq!(
        render_err(repo.path(), "apps/../../x", None),
        RenderError::OutsideRepository { path: "apps/../../x".into() }
    );
}

#[test]
fn a_symlink_out_of_the_repository_is_refused_anywhere_the_application_reads() {
    let outside = tempfile::tempdir().unwrap();
    write(outside.path(), &[("secret.yaml", SERVICE)]);
    let repo = seed_repo();
    std::os::unix::fs::symlink(
        outside.path().join("secret.yaml"),
        repo.path().join("apps/web/base/leak.yaml"),
    )
    .unwrap();
    assert_eq!(
        render_err(repo.path(), PROD, None),
        RenderError::OutsideRepository { path: "apps/web/base/leak.yaml".into() }
    );
    // A dangling link that would point outside is refused too.
    std::fs::remove_file(repo.path().join("apps/web/base/leak.yaml")).unwrap();
    std::os::unix::fs::symlink("../../../../../nowhere", repo.path().join("apps/web/base/dangling")).unwrap();
    assert_eq!(
        render_err(repo.path(), PROD, None),
        RenderError::OutsideRepository { path: "apps/web/base/dangling".into() }
    );
    // In a folder the application does not read, a link is none of its business (a monorepo's other
    // applications are not even copied).
    std::fs::remove_file(repo.path().join("apps/web/base/dangling")).unwrap();
    std::os::unix::fs::symlink("../../../../nowhere", repo.path().join("apps/unrelated")).unwrap();
    render(repo.path(), PROD, None);
}

#[test]
fn symlinks_inside_the_repository_are_followed_in_the_copy() {
    let repo = seed_repo();
    std::os::unix::fs::symlink("production", repo.path().join("apps/web/overlays/prod")).unwrap();
    std::os::unix::fs::symlink(repo.path().join("apps/web/base"), repo.path().join("apps/web/shared"))
        .unwrap();
    write(repo.path(), &[("apps/web/overlays/linked/kustomization.yaml", "resources: [../../shared]\n")]);
    let m = render(repo.path(), "apps/web/overlays/prod", None);
    assert_eq!(object(&m, "Deployment", "web")["spec"]["replicas"], 3);
    assert_eq!(m[0].file, "apps/web/overlays/production/kustomization.yaml");
    assert_eq!(
        names(&render(repo.path(), "apps/web/overlays/linked", None)),
        ["Service/web", "Deployment/web"]
    );
}

#[test]
fn a_base_outside_the_repository_is_refused() {
    let repo = seed_repo();
    // The seed's Application points at `overlays/production`, two levels down: four `..` leave the repo.
    write(repo.path(), &[("overlays/production/kustomization.yaml", "resources:\n  - ../../../../etc\n")]);
    assert_eq!(
        render_err(repo.path(), "overlays/production", None),
        RenderError::InvalidFile {
            file: "overlays/production/kustomization.yaml".into(),
            message: "resources entry \"../../../../etc\" leaves the repository".into(),
        }
    );
    let overlay = "apps/web/overlays/escape";
    // A kustomization outside, which kustomize's load restrictor alone would accept, and a base that
    // climbs out further down the chain.
    let outside = tempfile::tempdir().unwrap();
    write(
        outside.path(),
        &[("base/kustomization.yaml", "resources: [svc.yaml]\n"), ("base/svc.yaml", SERVICE)],
    );
    let absolute = format!("resources:\n  - {}\n", outside.path().join("base").display());
    write(repo.path(), &[("apps/web/overlays/escape/kustomization.yaml", &absolute)]);
    assert!(matches!(render_err(repo.path(), overlay, None), RenderError::InvalidFile { .. }));
    write(
        repo.path(),
        &[
            ("apps/web/overlays/escape/kustomization.yaml", "resources: [../../base]\n"),
            ("apps/web/base/kustomization.yaml", "components: [../../../../../../../../tmp]\n"),
        ],
    );
    assert_eq!(
        render_err(repo.path(), overlay, None).to_string(),
        "apps/web/base/kustomization.yaml: components entry \"../../../../../../../../tmp\" leaves the repository"
    );
}

#[test]
fn a_file_outside_the_kustomization_folder_is_refused_by_the_load_restrictor() {
    let repo = seed_repo();
    write(
        repo.path(),
        &[("apps/web/overlays/peek/kustomization.yaml", "resources:\n  - ../../base/service.yaml\n")],
    );
    let work = tempfile::tempdir().unwrap();
    match render_kustomize(repo.path(), "apps/web/overlays/peek", None, &ctx(work.path())) {
        Err(RenderError::Tool { path, message, .. }) => {
            assert_eq!(path, "apps/web/overlays/peek");
            assert!(message.contains("is not in or below"), "{message}");
            assert!(message.contains("apps/web/base/service.yaml"), "{message}");
            let scratch = work.path().canonicalize().unwrap();
            assert!(!message.contains(scratch.to_str().unwrap()), "scratch path leaks: {message}");
        }
        other => panic!("expected the load restrictor's refusal, got {other:?}"),
    }
}

#[test]
fn a_remote_base_fails_fast_without_network() {
    let repo = seed_repo();
    let url = "https://github.com/kubernetes-sigs/kustomize//examples/helloWorld?ref=v3.3.1";
    write(
        repo.path(),
        &[("apps/web/overlays/remote/kustomization.yaml", &format!("resources:\n  - {url}\n"))],
    );
    let started = Instant::now();
    // Refused before kustomize runs: a remote base would make it run git.
    match render_err(repo.path(), "apps/web/overlays/remote", None) {
        RenderError::InvalidFile { file, message } => {
            assert_eq!(file, "apps/web/overlays/remote/kustomization.yaml");
            assert!(message.contains(url) && message.contains("network"), "{message}");
        }
        other => panic!("expected the remote base to be refused, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
}

#[test]
fn a_kustomize_failure_names_the_path_and_kustomizes_message() {
    let repo = seed_repo();
    write(repo.path(), &[("apps/web/overlays/broken/kustomization.yaml", "resources:\n  - missing.yaml\n")]);
    match render_err(repo.path(), "apps/web/overlays/broken", None) {
        RenderError::Tool { tool, path, message } => {
            assert_eq!((tool.as_str(), path.as_str()), ("kustomize", "apps/web/overlays/broken"));
            assert!(message.contains("missing.yaml"), "{message}");
        }
        other => panic!("expected a kustomize error, got {other:?}"),
    }
    let err = render_err(repo.path(), "apps/web/nowhere", None);
    assert_eq!(err, RenderError::PathNotFound { path: "apps/web/nowhere".into() });
}

#[test]
fn a_hanging_kustomize_times_out_and_leaves_no_process() {
    let repo = seed_repo();
    let bin = tempfile::tempdir().unwrap();
    // A child in the background and the tool itself, both busy in builtins (a confined tool may
    // start no other program and write nothing outside its scratch directory).
    let script = "while :; do :; done &\nwait";
    let work = tempfile::tempdir().unwrap();
    let mut ctx = ctx(work.path());
    ctx.kustomize = fake_kustomize(bin.path(), script);
    ctx.timeout = Duration::from_millis(1500);
    let started = Instant::now();
    let err = render_with(repo.path(), PROD, &ctx).unwrap_err();
    assert_eq!(err, RenderError::Timeout { tool: "kustomize".into(), path: PROD.into(), seconds: 1 });
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    // The tool's processes are the ones whose private HOME lies in this test's work directory.
    let home = format!("HOME={}", work.path().canonicalize().unwrap().display());
    let running: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|pid| pid.chars().all(|c| c.is_ascii_digit()))
        .filter(|pid| {
            let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            let ours = environ.split(|b| *b == 0).any(|kv| kv.starts_with(home.as_bytes()));
            // Gone, or a zombie waiting for a parent that does not reap, is fine.
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let state = stat.rsplit(')').next().unwrap_or_default().trim_start().chars().next();
            ours && !matches!(state, None | Some('Z') | Some('X'))
        })
        .collect();
    for pid in &running {
        // This test's own leftovers go before it fails.
        let _ = std::process::Command::new("kill").args(["-9", pid]).status();
    }
    assert!(running.is_empty(), "processes {running:?} of the timed-out kustomize are still running");
    assert_eq!(std::fs::read_dir(work.path()).unwrap().count(), 0, "the scratch directory is left behind");
}

#[test]
fn huge_kustomize_output_is_refused() {
    let repo = seed_repo();
    let bin = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let mut ctx = ctx(work.path());
    // 1 MiB doubled up in the shell, then printed without end (no `head`: a confined tool runs no other program).
    let script = "x=0123456789abcdef; i=0; while [ $i -lt 16 ]; do x=\"$x$x\"; i=$((i+1)); done; while :; do printf '%s' \"$x\"; done";
    ctx.kustomize = fake_kustomize(bin.path(), script);
    match render_with(repo.path(), PROD, &ctx) {
        Err(RenderError::Tool { path, message, .. }) => {
            assert_eq!(path, PROD);
            assert!(message.contains("printed more than"), "{message}");
        }
        other => panic!("expected the output limit, got {other:?}"),
    }
}

#[test]
fn an_alias_bomb_in_kustomize_output_is_refused() {
    let repo = seed_repo();
    let bin = tempfile::tempdir().unwrap();
    let mut bomb = String::from(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bomb\ndata:\n  a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n",
    );
    for i in 1..12 {
        let p = i - 1;
        bomb.push_str(&format!(
            "  a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }

    let work = tempfile::tempdir().unwrap();
    let mut ctx = ctx(work.path());
    // Printed by the shell itself: a confined tool reads no file outside its render and runs no `cat`.
    ctx.kustomize = fake_kustomize(bin.path(), &format!("printf '%s' '{bomb}'"));
    let started = Instant::now();
    match render_with(repo.path(), PROD, &ctx) {
        Err(RenderError::InvalidFile { file, .. }) => {
            assert_eq!(file, "apps/web/overlays/production/kustomization.yaml")
        }
        other => panic!("expected the alias bomb to be refused, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
}

#[test]
fn is_kustomization_dir_knows_the_three_file_names() {
    let dir = tempfile::tempdir().unwrap();
    assert!(!is_kustomization_dir(dir.path()));
    for name in ["kustomization.yaml", "kustomization.yml", "Kustomization"] {
        let sub = dir.path().join(name.replace('.', "_"));
        write(&sub, &[(name, "resources: []\n")]);
        assert!(is_kustomization_dir(&sub), "{name}");
    }
    write(dir.path(), &[("plain/deployment.yaml", DEPLOYMENT)]);
    assert!(!is_kustomization_dir(&dir.path().join("plain")));
}

// argocd-cm's Kustomize settings: build options and versions.

/// A context with argocd-cm's Kustomize keys `pairs` read as the controller reads them.
fn ctx_with_settings(work_dir: &Path, pairs: &[(&str, &str)]) -> ToolContext {
    let data = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let mut ctx = ctx(work_dir);
    ctx.kustomize_settings = std::sync::Arc::new(KustomizeSettings::from_argocd_cm(&data, &mut Vec::new()));
    ctx
}

const NO_RESTRICTIONS: (&str, &str) = ("kustomize.buildOptions", "--load-restrictor LoadRestrictionsNone");

/// An overlay whose generator reads a file of the repository outside its own folder.
fn shared_config_repo() -> tempfile::TempDir {
    let repo = seed_repo();
    write(
        repo.path(),
        &[
            ("shared/app.properties", "color=blue\n"),
            (
                "apps/web/overlays/shared/kustomization.yaml",
                "resources:\n  - ../../base\nconfigMapGenerator:\n  - name: settings\n    files:\n      - ../../../../shared/app.properties\n",
            ),
        ],
    );
    repo
}

#[test]
fn load_restrictions_none_from_argocd_cm_lets_a_kustomization_load_files_of_the_repository() {
    let repo = shared_config_repo();
    let work = tempfile::tempdir().unwrap();
    let path = "apps/web/overlays/shared";
    // Kustomize's default refuses the file; argocd-cm's build option allows it, as in Argo CD.
    match render_kustomize(repo.path(), path, None, &ctx(work.path())) {
        Err(RenderError::Tool { message, .. }) => {
            assert!(message.contains("is not in or below"), "{message}")
        }
        other => panic!("expected the default load restrictor to refuse, got {other:?}"),
    }
    let m = render_kustomize(repo.path(), path, None, &ctx_with_settings(work.path(), &[NO_RESTRICTIONS]))
        .unwrap_or_else(|e| panic!("{e}"));
    let config = m.iter().find(|m| m.object["kind"] == "ConfigMap").expect("the generated ConfigMap");
    assert_eq!(config.object["data"]["app.properties"], "color=blue\n");
}

#[test]
fn load_restrictions_none_still_refuses_files_outside_the_repository_exist_or_not() {
    let repo = seed_repo();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "token").unwrap();
    let secret = outside.path().join("secret.txt");
    let work = tempfile::tempdir().unwrap();
    let settings = ctx_with_settings(work.path(), &[NO_RESTRICTIONS]);
    for (field, entry) in [
        ("files", secret.display().to_string()),
        ("files", format!("token={}", secret.display())),
        ("files", "/etc/hosts".to_string()),
        ("files", "/no/such/file".to_string()),
        ("envs", "../../../../../../../../etc/hosts".to_string()),
    ] {
        write(
            repo.path(),
            &[(
                "apps/web/overlays/peek/kustomization.yaml",
                &format!("configMapGenerator:\n  - name: peek\n    {field}:\n      - {entry}\n"),
            )],
        );
        match render_kustomize(repo.path(), "apps/web/overlays/peek", None, &settings) {
            Err(RenderError::InvalidFile { file, message }) => {
                assert_eq!(file, "apps/web/overlays/peek/kustomization.yaml");
                assert!(message.contains(field) && message.contains("leaves the repository"), "{message}");
            }
            other => panic!("{field} {entry}: expected a refusal, got {other:?}"),
        }
    }
}

#[test]
fn load_restrictions_none_refuses_a_transformer_configuration_that_names_an_outside_file() {
    let repo = seed_repo();
    write(
        repo.path(),
        &[
            (
                "apps/web/overlays/sneaky/kustomization.yaml",
                "resources:\n  - ../../base\ntransformers:\n  - patch.yaml\n",
            ),
            (
                "apps/web/overlays/sneaky/patch.yaml",
                "apiVersion: builtin\nkind: PatchTransformer\nmetadata:\n  name: sneak\npath: /etc/hosts\n",
            ),
        ],
    );
    let work = tempfile::tempdir().unwrap();
    let settings = ctx_with_settings(work.path(), &[NO_RESTRICTIONS]);
    match render_kustomize(repo.path(), "apps/web/overlays/sneaky", None, &settings) {
        Err(RenderError::InvalidFile { file, message }) => {
            assert_eq!(file, "apps/web/overlays/sneaky/patch.yaml");
            assert!(message.contains("/etc/hosts"), "{message}");
        }
        other => panic!("expected the transformer configuration to be refused, got {other:?}"),
    }
}

#[test]
fn a_refused_build_option_is_named_in_the_error_of_a_build_that_needs_it() {
    let repo = seed_repo();
    write(
        repo.path(),
        &[(
            "apps/web/overlays/chart/kustomization.yaml",
            "helmCharts:\n  - name: web\n    repo: https://charts.example.com\n    version: 1.0.0\n",
        )],
    );
    let work = tempfile::tempdir().unwrap();
    let settings = ctx_with_settings(work.path(), &[("kustomize.buildOptions", "--enable-helm")]);
    match render_kustomize(repo.path(), "apps/web/overlays/chart", None, &settings) {
        Err(RenderError::Tool { message, .. }) => {
            assert!(
                message.contains("argocd-cm kustomize.buildOptions: \"--enable-helm\" is not passed"),
                "{message}"
            );
        }
        other => panic!("expected kustomize to fail without --enable-helm, got {other:?}"),
    }
}

#[test]
fn an_application_version_picks_the_binary_and_build_options_argocd_cm_names_for_it() {
    let repo = seed_repo();
    let bin = tempfile::tempdir().unwrap();
    // The version's binary prints the arguments of `build` as a ConfigMap (and accepts `edit`).
    let fake = fake_kustomize(
        bin.path(),
        "[ \"$1\" = build ] || exit 0\nprintf 'apiVersion: v1\\nkind: ConfigMap\\nmetadata:\\n  name: v9\\ndata:\\n  args: \"%s\"\\n' \"$*\"",
    );
    let work = tempfile::tempdir().unwrap();
    let fake = fake.display().to_string();
    let ctx = ctx_with_settings(
        work.path(),
        &[
            NO_RESTRICTIONS,
            ("kustomize.path.v9.0.0", &fake),
            ("kustomize.buildOptions.v9.0.0", "--load-restrictor=LoadRestrictionsRootOnly --enable-exec"),
        ],
    );
    let options = ApplicationSourceKustomize { version: Some("v9.0.0".into()), ..Default::default() };
    let mut rendered = None;
    for _ in 0..20 {
        match render_kustomize(repo.path(), PROD, Some(&options), &ctx) {
            Err(RenderError::Tool { message, .. }) if message.contains("Text file busy") => {
                std::thread::sleep(Duration::from_millis(50))
            }
            other => {
                rendered = Some(other);
                break;
            }
        }
    }
    let m = rendered.expect("the fake kustomize stayed busy").unwrap_or_else(|e| panic!("{e}"));
    let args = object(&m, "ConfigMap", "v9")["data"]["args"].as_str().unwrap().to_string();
    assert!(args.starts_with("build --load-restrictor=LoadRestrictionsRootOnly -- "), "{args}");
    assert!(!args.contains("enable-exec"), "a refused option reached the binary: {args}");

    let unknown = ApplicationSourceKustomize { version: Some("v1.0.0".into()), ..Default::default() };
    match render_kustomize(repo.path(), PROD, Some(&unknown), &ctx) {
        Err(RenderError::Tool { message, .. }) => {
            assert!(message.starts_with("spec.source.kustomize.version: "), "{message}");
            assert!(message.contains("kustomize.path.v1.0.0"), "{message}");
        }
        other => panic!("expected an unregistered version to fail, got {other:?}"),
    }
}
