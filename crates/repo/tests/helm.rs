//! Helm sources rendered by the real `helm` (on PATH after `eval "$(./hack/cluster env)"`): charts from
//! a git tree, from a Helm chart repository served by lighttpd and from an OCI registry, both started
//! here as real servers.

mod common;

use berth_api::application::{Application, ApplicationSourceHelm, HelmFileParameter, HelmParameter};
use berth_repo::render::helm::{HelmCredentials, is_chart_dir, render_helm_chart, render_helm_path};
use berth_repo::render::{Manifest, RenderError, ToolContext};
use common::{ChartServer, OCI_PASSWORD, OCI_USER, OciRegistry, count, names};
use std::path::Path;
use std::time::{Duration, Instant};

/// The seed's Helm example (shared/seed/examples/application-helm.yaml).
const SEED_APPLICATION: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: web-helm
  namespace: argocd
spec:
  project: default
  source:
    repoURL: https://github.com/myorg/charts
    path: charts/web
    targetRevision: main
    helm:
      values: |
        replicaCount: 3
        image:
          tag: v1.2.3
  destination:
    server: https://kubernetes.default.svc
    namespace: web
"#;

/// A small chart: a Deployment, a Service and a pre-install hook Job.
const WEB_CHART: &[(&str, &str)] = &[
    ("Chart.yaml", "apiVersion: v2\nname: web\nversion: 0.1.0\nappVersion: \"1.0\"\n"),
    (
        "values.yaml",
        "replicaCount: 1\nimage:\n  repository: myorg/web\n  tag: latest\nservice:\n  port: 80\n",
    ),
    ("values-prod.yaml", "replicaCount: 5\n"),
    (
        "templates/deployment.yaml",
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}
  namespace: {{ .Release.Namespace }}
  labels:
    app.kubernetes.io/instance: {{ .Release.Name }}
spec:
  replicas: {{ .Values.replicaCount }}
  selector:
    matchLabels:
      app.kubernetes.io/instance: {{ .Release.Name }}
  template:
    metadata:
      labels:
        app.kubernetes.io/instance: {{ .Release.Name }}
    spec:
      containers:
        - name: web
          image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
"#,
    ),
    (
        "templates/service.yaml",
        r#"apiVersion: v1
kind: Service
metadata:
  name: {{ .Release.Name }}
spec:
  selector:
    app.kubernetes.io/instance: {{ .Release.Name }}
  ports:
    - port: {{ .Values.service.port }}
"#,
    ),
    (
        "templates/migrate-job.yaml",
        r#"apiVersion: batch/v1
kind: Job
metadata:
  name: {{ .Release.Name }}-migrate
  annotations:
    helm.sh/hook: pre-install,pre-upgrade
    helm.sh/hook-weight: "-5"
    helm.sh/hook-delete-policy: before-hook-creation
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: migrate
          image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
"#,
    ),
];

/// A chart whose one ConfigMap reports the values and capabilities it was rendered with.
const PROBE_CHART: &[(&str, &str)] = &[
    ("Chart.yaml", "apiVersion: v2\nname: probe\nversion: 0.1.0\n"),
    ("values.yaml", "a: chart\nb: chart\nc: chart\nd: chart\ne: chart\nx: chart\nnum: 1\ntext: chart\n"),
    (
        "templates/probe.yaml",
        r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-probe
  namespace: {{ .Release.Namespace }}
data:
  a: {{ .Values.a | quote }}
  b: {{ .Values.b | quote }}
  c: {{ .Values.c | quote }}
  d: {{ .Values.d | quote }}
  e: {{ .Values.e | quote }}
  x: {{ .Values.x | quote }}
  num: {{ .Values.num | quote }}
  numKind: {{ kindOf .Values.num | quote }}
  text: {{ .Values.text | quote }}
  conf: {{ .Values.conf | default "" | quote }}
  release: {{ .Release.Name | quote }}
  namespace: {{ .Release.Namespace | quote }}
  kube: {{ .Capabilities.KubeVersion.Version | quote }}
  monitor: {{ .Capabilities.APIVersions.Has "monitoring.coreos.com/v1/ServiceMonitor" | quote }}
"#,
    ),
];

fn write(root: &Path, dir: &str, files: &[(&str, &str)]) {
    for (path, text) in files {
        let p = root.join(dir).join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

fn repo_with(dir: &str, chart: &[(&str, &str)]) -> tempfile::TempDir {
    let repo = tempfile::tempdir().unwrap();
    write(repo.path(), dir, chart);
    repo
}

fn context(work: &Path) -> ToolContext {
    let mut ctx = ToolContext::new("web-helm", "web", work.to_path_buf());
    ctx.helm = common::helm();
    ctx.kube_version = "1.36.3".into();
    ctx.timeout = Duration::from_secs(60);
    ctx
}

fn find<'a>(manifests: &'a [Manifest], kind: &str) -> &'a Manifest {
    manifests
        .iter()
        .find(|m| m.object["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in {:?}", names(manifests)))
}

/// The probe ConfigMap's data.
fn probe(manifests: &[Manifest]) -> serde_json::Map<String, serde_json::Value> {
    find(manifests, "ConfigMap").object["data"].as_object().unwrap().clone()
}

fn helm_with(f: impl FnOnce(&mut ApplicationSourceHelm)) -> ApplicationSourceHelm {
    let mut helm = ApplicationSourceHelm::default();
    f(&mut helm);
    helm
}

fn param(name: &str, value: &str, force_string: bool) -> HelmParameter {
    HelmParameter { name: name.into(), value: value.into(), force_string: force_string.then_some(true) }
}

fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path.display().to_string());
        }
    }
    out
}

#[test]
fn the_seed_helm_example_renders_three_replicas_of_v1_2_3_and_keeps_the_hook() {
    let app: Application = serde_saphyr::from_str(SEED_APPLICATION).unwrap();
    let source = app.spec.source.as_ref().unwrap();
    let path = source.path.as_deref().unwrap();
    let repo = repo_with(path, WEB_CHART);
    let before = files_under(repo.path());
    let work = tempfile::tempdir().unwrap();
    let name = app.metadata.name.as_deref().unwrap();
    let namespace = app.spec.destination.namespace.as_deref().unwrap();
    let mut ctx = ToolContext::new(name, namespace, work.path().to_path_buf());
    ctx.helm = common::helm();
    ctx.kube_version = "1.36.3".into();

    assert!(is_chart_dir(&repo.path().join(path)));
    let m = render_helm_path(repo.path(), path, source.helm.as_ref(), &ctx).unwrap();
    assert_eq!(names(&m).len(), 3, "{:?}", names(&m));
    let deployment = find(&m, "Deployment");
    assert_eq!(deployment.object["spec"]["replicas"], 3);
    assert_eq!(deployment.object["spec"]["template"]["spec"]["containers"][0]["image"], "myorg/web:v1.2.3");
    assert_eq!(deployment.object["metadata"]["name"], "web-helm", "release name defaults to the app's");
    assert_eq!(deployment.object["metadata"]["namespace"], "web");
    assert_eq!(deployment.file, "charts/web/templates/deployment.yaml");
    assert_eq!(find(&m, "Service").file, "charts/web/templates/service.yaml");
    let hook = find(&m, "Job");
    assert_eq!(hook.object["metadata"]["annotations"]["helm.sh/hook"], "pre-install,pre-upgrade");
    assert_eq!(hook.object["metadata"]["annotations"]["helm.sh/hook-weight"], "-5");
    assert_eq!(hook.file, "charts/web/templates/migrate-job.yaml");

    assert_eq!(files_under(repo.path()), before, "the git tree is left as it was");
    assert!(files_under(&work.path().join("helm/scratch")).is_empty(), "the scratch directory is removed");
}

#[test]
fn value_files_then_values_then_parameters_each_override_the_previous() {
    let repo = repo_with("charts/probe", PROBE_CHART);
    write(
        repo.path(),
        "charts/probe",
        &[
            ("values-1.yaml", "a: file1\nb: file1\nc: file1\nd: file1\n"),
            ("values-2.yaml", "b: file2\nc: file2\nd: file2\n"),
        ],
    );
    let work = tempfile::tempdir().unwrap();
    let helm = helm_with(|h| {
        h.value_files = vec!["values-1.yaml".into(), "values-2.yaml".into()];
        h.values = Some("c: values\nd: values\n".into());
        h.parameters = vec![param("d", "parameter", false)];
    });
    let data =
        probe(&render_helm_path(repo.path(), "charts/probe", Some(&helm), &context(work.path())).unwrap());
    assert_eq!(
        [&data["a"], &data["b"], &data["c"], &data["d"], &data["e"]],
        ["file1", "file2", "values", "parameter", "chart"]
    );
}

#[test]
fn values_object_overrides_and_replaces_the_values_string_and_parameters_override_it() {
    let repo = repo_with("charts/probe", PROBE_CHART);
    let work = tempfile::tempdir().unwrap();
    let helm = helm_with(|h| {
        h.values = Some("c: values\nx: values\n".into());
        h.values_object = Some(serde_json::json!({"c": "object", "d": "object"}));
        h.parameters = vec![param("d", "parameter", false)];
    });
    let data =
        probe(&render_helm_path(repo.path(), "charts/probe", Some(&helm), &context(work.path())).unwrap());
    assert_eq!(data["c"], "object");
    assert_eq!(data["d"], "parameter");
    // As in Argo CD: with a valuesObject the values string is not used at all.
    assert_eq!(data["x"], "chart");
}

#[test]
fn force_string_keeps_a_number_a_string_and_commas_stay_in_the_value() {
    let repo = repo_with("charts/probe", PROBE_CHART);
    let work = tempfile::tempdir().unwrap();
    let ctx = context(work.path());
    let helm = helm_with(|h| h.parameters = vec![param("num", "8080", false), param("text", "a,b", false)]);
    let data = probe(&render_helm_path(repo.path(), "charts/probe", Some(&helm), &ctx).unwrap());
    assert_eq!(data["numKind"], "int64");
    assert_eq!(data["text"], "a,b");
    let helm = helm_with(|h| h.parameters = vec![param("num", "8080", true)]);
    let data = probe(&render_helm_path(repo.path(), "charts/probe", Some(&helm), &ctx).unwrap());
    assert_eq!(data["numKind"], "string");
    assert_eq!(data["num"], "8080");
}

#[test]
fn file_parameters_set_a_value_from_a_file_elsewhere_in_the_repository() {
    let repo = repo_with("charts/probe", PROBE_CHART);
    write(repo.path(), "config", &[("app.conf", "listen 8080\n")]);
    let work = tempfile::tempdir().unwrap();
    let helm = helm_with(|h| {
        h.file_parameters =
            vec![HelmFileParameter { name: "conf".into(), path: "../../config/app.conf".into() }]
    });
    let data =
        probe(&render_helm_path(repo.path(), "charts/probe", Some(&helm), &context(work.path())).unwrap());
    assert_eq!(data["conf"], "listen 8080\n");

    let helm = helm_with(|h| {
        h.file_parameters =
            vec![HelmFileParameter { name: "conf".into(), path: "../../../etc/hostname".into() }]
    });
    assert_eq!(
        render_helm_path(repo.path(), "charts/probe", Some(&helm), &context(work.path())),
        Err(RenderError::OutsideRepository { path: "../../../etc/hostname".into() })
    );
}

#[test]
fn release_name_defaults_to_the_app_name_and_can_be_set() {
    let repo = repo_with("probe", PROBE_CHART);
    let work = tempfile::tempdir().unwrap();
    let ctx = context(work.path());
    let data = probe(&render_helm_path(repo.path(), "probe", None, &ctx).unwrap());
    assert_eq!(data["release"], "web-helm");
    let helm = helm_with(|h| h.release_name = Some("custom".into()));
    let m = render_helm_path(repo.path(), "probe", Some(&helm), &ctx).unwrap();
    assert_eq!(probe(&m)["release"], "custom");
    assert_eq!(names(&m), ["ConfigMap/custom-probe"]);
    assert_eq!(m[0].file, "probe/templates/probe.yaml");
}

#[test]
fn namespace_comes_from_the_destination_unless_the_source_sets_one() {
    let repo = repo_with("probe", PROBE_CHART);
    let work = tempfile::tempdir().unwrap();
    let ctx = context(work.path());
    assert_eq!(probe(&render_helm_path(repo.path(), "probe", None, &ctx).unwrap())["namespace"], "web");
    let helm = helm_with(|h| h.namespace = Some("other".into()));
    assert_eq!(
        probe(&render_helm_path(repo.path(), "probe", Some(&helm), &ctx).unwrap())["namespace"],
        "other"
    );
}

#[test]
fn crds_are_included_unless_skip_crds() {
    let repo = repo_with("probe", PROBE_CHART);
    write(
        repo.path(),
        "probe",
        &[(
            "crds/crontab.yaml",
            "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: crontabs.example.com\nspec:\n  group: example.com\n  names: {kind: CronTab, plural: crontabs}\n  scope: Namespaced\n  versions: []\n",
        )],
    );
    let work = tempfile::tempdir().unwrap();
    let ctx = context(work.path());
    let m = render_helm_path(repo.path(), "probe", None, &ctx).unwrap();
    assert_eq!(find(&m, "CustomResourceDefinition").file, "probe/crds/crontab.yaml");
    let helm = helm_with(|h| h.skip_crds = Some(true));
    let m = render_helm_path(repo.path(), "probe", Some(&helm), &ctx).unwrap();
    assert_eq!(names(&m), ["ConfigMap/web-helm-probe"]);
}

#[test]
fn kube_version_and_api_versions_reach_the_templates() {
    let repo = repo_with("probe", PROBE_CHART);
    let work = tempfile::tempdir().unwrap();
    let mut ctx = context(work.path());
    let data = probe(&render_helm_path(repo.path(), "probe", None, &ctx).unwrap());
    assert_eq!((&data["kube"], &data["monitor"]), (&"v1.36.3".into(), &"false".into()));

    ctx.api_versions =
        vec!["monitoring.coreos.com/v1".into(), "monitoring.coreos.com/v1/ServiceMonitor".into()];
    let data = probe(&render_helm_path(repo.path(), "probe", None, &ctx).unwrap());
    assert_eq!(data["monitor"], "true");

    // The source's own kubeVersion and apiVersions win over the cluster's.
    let helm = helm_with(|h| {
        h.kube_version = Some("1.30.2".into());
        h.api_versions = vec!["example.com/v1".into()];
    });
    let data = probe(&render_helm_path(repo.path(), "probe", Some(&helm), &ctx).unwrap());
    assert_eq!((&data["kube"], &data["monitor"]), (&"v1.30.2".into(), &"false".into()));
}

#[test]
fn a_value_file_from_another_source_resolves_through_its_ref() {
    let repo = repo_with("probe", PROBE_CHART);
    let values = tempfile::tempdir().unwrap();
    write(values.path(), "envs/prod", &[("values.yaml", "a: from-ref\n")]);
    let work = tempfile::tempdir().unwrap();
    let mut ctx = context(work.path());
    ctx.refs.insert("values".into(), values.path().to_path_buf());
    let helm = helm_with(|h| h.value_files = vec!["$values/envs/prod/values.yaml".into()]);
    assert_eq!(probe(&render_helm_path(repo.path(), "probe", Some(&helm), &ctx).unwrap())["a"], "from-ref");

    let helm = helm_with(|h| h.value_files = vec!["$values/../../etc/passwd".into()]);
    assert_eq!(
        render_helm_path(repo.path(), "probe", Some(&helm), &ctx),
        Err(RenderError::OutsideRepository { path: "$values/../../etc/passwd".into() })
    );
    let helm = helm_with(|h| h.value_files = vec!["$nope/values.yaml".into()]);
    let err = render_helm_path(repo.path(), "probe", Some(&helm), &ctx).unwrap_err().to_string();
    assert!(err.contains("$nope/values.yaml") && err.contains("ref: nope"), "{err}");
}

#[test]
fn a_value_file_outside_the_repository_is_refused() {
    let repo = repo_with("web", WEB_CHART);
    let work = tempfile::tempdir().unwrap();
    let ctx = context(work.path());
    let helm = helm_with(|h| h.value_files = vec!["../../etc/passwd".into()]);
    assert_eq!(
        render_helm_path(repo.path(), "web", Some(&helm), &ctx),
        Err(RenderError::OutsideRepository { path: "../../etc/passwd".into() })
    );
    // An absolute value file is read from the repository's root, as Argo CD does, never the host's.
    let helm = helm_with(|h| h.value_files = vec!["/etc/passwd".into()]);
    assert_eq!(
        render_helm_path(repo.path(), "web", Some(&helm), &ctx),
        Err(RenderError::PathNotFound { path: "/etc/passwd".into() })
    );
}

#[test]
fn symlinks_pointing_out_of_the_repository_are_refused() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.yaml"), "replicaCount: 9\n").unwrap();
    let repo = repo_with("web", WEB_CHART);
    std::os::unix::fs::symlink(outside.path().join("secret.yaml"), repo.path().join("web/evil.yaml"))
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    let ctx = context(work.path());
    let helm = helm_with(|h| h.value_files = vec!["evil.yaml".into()]);
    // The chart's copy meets the link first.
    assert_eq!(
        render_helm_path(repo.path(), "web", Some(&helm), &ctx),
        Err(RenderError::OutsideRepository { path: "web/evil.yaml".into() })
    );

    // A value file outside the chart's folder, linked out of the repository.
    std::fs::remove_file(repo.path().join("web/evil.yaml")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret.yaml"), repo.path().join("evil.yaml")).unwrap();
    let helm = helm_with(|h| h.value_files = vec!["../evil.yaml".into()]);
    assert_eq!(
        render_helm_path(repo.path(), "web", Some(&helm), &ctx),
        Err(RenderError::OutsideRepository { path: "../evil.yaml".into() })
    );

    // A template linked out of the repository.
    std::os::unix::fs::symlink(
        outside.path().join("secret.yaml"),
        repo.path().join("web/templates/leak.yaml"),
    )
    .unwrap();
    assert_eq!(
        render_helm_path(repo.path(), "web", None, &ctx),
        Err(RenderError::OutsideRepository { path: "web/templates/leak.yaml".into() })
    );
}

#[test]
fn missing_value_files_fail_unless_ignore_missing_value_files() {
    let repo = repo_with("probe", PROBE_CHART);
    let work = tempfile::tempdir().unwrap();
    let ctx = context(work.path());
    let mut helm = helm_with(|h| h.value_files = vec!["values-missing.yaml".into()]);
    assert_eq!(
        render_helm_path(repo.path(), "probe", Some(&helm), &ctx),
        Err(RenderError::PathNotFound { path: "values-missing.yaml".into() })
    );
    helm.ignore_missing_value_files = Some(true);
    assert_eq!(probe(&render_helm_path(repo.path(), "probe", Some(&helm), &ctx).unwrap())["a"], "chart");
}

#[test]
fn a_local_file_dependency_is_built_without_network_and_cached() {
    let repo = repo_with(
        "charts/parent",
        &[
            (
                "Chart.yaml",
                "apiVersion: v2\nname: parent\nversion: 1.0.0\ndependencies:\n- name: lib\n  version: 0.1.0\n  repository: file://../lib\n",
            ),
            ("templates/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: parent\n"),
        ],
    );
    write(
        repo.path(),
        "charts/lib",
        &[
            ("Chart.yaml", "apiVersion: v2\nname: lib\nversion: 0.1.0\n"),
            (
                "templates/cm.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: lib-{{ .Release.Name }}\n",
            ),
        ],
    );
    let before = files_under(repo.path());
    let work = tempfile::tempdir().unwrap();
    let ctx = context(work.path());
    assert!(!ctx.network);
    let m = render_helm_path(repo.path(), "charts/parent", None, &ctx).unwrap();
    assert_eq!(names(&m), ["ConfigMap/lib-web-helm", "ConfigMap/parent"]);
    assert_eq!(m[0].file, "charts/parent/charts/lib/templates/cm.yaml");
    assert_eq!(
        files_under(repo.path()),
        before,
        "charts/ and Chart.lock are written in the scratch copy only"
    );
    let cached = files_under(&work.path().join("helm/dependencies"));
    assert_eq!(cached.len(), 1, "{cached:?}");
    assert!(cached[0].ends_with("lib-0.1.0.tgz"), "{cached:?}");

    // A changed dependency is a new cache entry, not the old build.
    write(
        repo.path(),
        "charts/lib",
        &[(
            "templates/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: lib2-{{ .Release.Name }}\n",
        )],
    );
    let m = render_helm_path(repo.path(), "charts/parent", None, &ctx).unwrap();
    assert_eq!(names(&m), ["ConfigMap/lib2-web-helm", "ConfigMap/parent"]);
    assert_eq!(files_under(&work.path().join("helm/dependencies")).len(), 2);
}

#[test]
fn a_file_dependency_outside_the_repository_is_refused() {
    let repo = repo_with(
        "parent",
        &[
            (
                "Chart.yaml",
                "apiVersion: v2\nname: parent\nversion: 1.0.0\ndependencies:\n- name: lib\n  version: 0.1.0\n  repository: file://../../lib\n",
            ),
            ("templates/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: parent\n"),
        ],
    );
    let work = tempfile::tempdir().unwrap();
    assert_eq!(
        render_helm_path(repo.path(), "parent", None, &context(work.path())),
        Err(RenderError::OutsideRepository { path: "file://../../lib".into() })
    );
}

#[test]
fn a_template_error_names_the_template() {
    let repo = repo_with("web", WEB_CHART);
    write(
        repo.path(),
        "web",
        &[(
            "templates/bad.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Values.missing.key }}\n",
        )],
    );
    let work = tempfile::tempdir().unwrap();
    match render_helm_path(repo.path(), "web", None, &context(work.path())) {
        Err(RenderError::Tool { tool, path, message }) => {
            assert_eq!((tool.as_str(), path.as_str()), ("helm", "web"));
            assert!(message.contains("web/templates/bad.yaml"), "{message}");
        }
        other => panic!("expected a helm error, got {other:?}"),
    }
}

#[test]
fn a_chart_that_hangs_is_killed_at_the_time_limit() {
    let repo = repo_with("web", WEB_CHART);
    let bin = tempfile::tempdir().unwrap();
    let fake = bin.path().join("helm");
    // Busy in a shell builtin: a confined tool may start no other program (such as `sleep`).
    std::fs::write(&fake, "#!/bin/sh\nwhile :; do :; done\n").unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let work = tempfile::tempdir().unwrap();
    let mut ctx = context(work.path());
    ctx.helm = fake;
    ctx.timeout = Duration::from_secs(1);
    let started = Instant::now();
    assert_eq!(
        render_helm_path(repo.path(), "web", None, &ctx),
        Err(RenderError::Timeout { tool: "helm".into(), path: "web".into(), seconds: 1 })
    );
    assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());
}

#[test]
fn a_chart_repository_chart_is_pulled_once_and_then_rendered_from_the_cache() {
    let charts = repo_with("web", WEB_CHART);
    let server = ChartServer::start(&[&charts.path().join("web")], None);
    let work = tempfile::tempdir().unwrap();
    let mut ctx = context(work.path());
    ctx.network = true;
    let helm = helm_with(|h| h.value_files = vec!["values-prod.yaml".into()]);
    let none = HelmCredentials::default();
    let url = server.url();
    for _ in 0..2 {
        let m = render_helm_chart(&url, "web", "0.1.0", Some(&helm), &ctx, &none).unwrap();
        assert_eq!(find(&m, "Deployment").object["spec"]["replicas"], 5, "a value file inside the chart");
        assert_eq!(find(&m, "Deployment").file, "web/templates/deployment.yaml");
        assert!(find(&m, "Job").object["metadata"]["annotations"]["helm.sh/hook"].is_string());
    }
    let log = server.stop();
    assert_eq!(count(&log, "GET /web-0.1.0.tgz"), 1, "{log}");
    // The server is gone: only the cache can answer.
    let m = render_helm_chart(&url, "web", "0.1.0", None, &ctx, &none).unwrap();
    assert_eq!(find(&m, "Deployment").object["spec"]["replicas"], 1);
}

#[test]
fn a_chart_repository_behind_basic_auth_needs_the_right_password() {
    let charts = repo_with("web", WEB_CHART);
    let server = ChartServer::start(&[&charts.path().join("web")], Some(("berth", "chart-s3cret")));
    let work = tempfile::tempdir().unwrap();
    let mut ctx = context(work.path());
    ctx.network = true;
    let wrong = HelmCredentials {
        username: Some("berth".into()),
        password: Some("wr0ng-pa55".into()),
        ..Default::default()
    };
    let err = render_helm_chart(&server.url(), "web", "0.1.0", None, &ctx, &wrong).unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(text.contains("401"), "{text}");
    assert!(!text.contains("wr0ng-pa55"), "the password leaked: {text}");
    let err = render_helm_chart(&server.url(), "web", "0.1.0", None, &ctx, &HelmCredentials::default());
    assert!(err.unwrap_err().to_string().contains("401"));

    let right = HelmCredentials { password: Some("chart-s3cret".into()), ..wrong };
    let m = render_helm_chart(&server.url(), "web", "0.1.0", None, &ctx, &right).unwrap();
    assert_eq!(find(&m, "Deployment").object["metadata"]["name"], "web-helm");
}

#[test]
fn a_remote_chart_with_network_off_fails_clearly() {
    let work = tempfile::tempdir().unwrap();
    let ctx = context(work.path());
    let err = render_helm_chart(
        "https://charts.example.com",
        "web",
        "0.1.0",
        None,
        &ctx,
        &HelmCredentials::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("network access") && err.contains("chart web 0.1.0"), "{err}");
}

#[test]
fn an_oci_chart_is_pulled_over_plain_http_with_credentials_and_cached() {
    let charts = repo_with("web", WEB_CHART);
    let registry = OciRegistry::start(true);
    registry.push(&charts.path().join("web"), "charts");
    let work = tempfile::tempdir().unwrap();
    let mut ctx = context(work.path());
    ctx.network = true;
    let creds = HelmCredentials {
        username: Some(OCI_USER.into()),
        password: Some(OCI_PASSWORD.into()),
        plain_http: true,
        ..Default::default()
    };
    let wrong = HelmCredentials { password: Some("not-the-password".into()), ..creds.clone() };
    let err = render_helm_chart(&format!("{}/charts", registry.host()), "web", "0.1.0", None, &ctx, &wrong)
        .unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(text.contains("401") || text.contains("unauthorized"), "{text}");
    assert!(!text.contains("not-the-password"), "the password leaked: {text}");

    // Argo CD writes OCI repositories without a scheme; oci:// is accepted too and is the same chart.
    for url in [format!("{}/charts", registry.host()), format!("oci://{}/charts", registry.host())] {
        let helm = helm_with(|h| h.parameters = vec![param("image.tag", "v2.0.0", false)]);
        let m = render_helm_chart(&url, "web", "0.1.0", Some(&helm), &ctx, &creds).unwrap();
        assert_eq!(
            find(&m, "Deployment").object["spec"]["template"]["spec"]["containers"][0]["image"],
            "myorg/web:v2.0.0"
        );
    }
    let log = registry.stop();
    assert_eq!(count(&log, "\"GET /v2/charts/web/blobs/"), 2, "one chart layer and one config blob:\n{log}");
}

#[test]
fn a_dependency_from_a_chart_repository_is_built_with_network_and_then_served_from_the_cache() {
    let charts = repo_with("web", WEB_CHART);
    let server = ChartServer::start(&[&charts.path().join("web")], None);
    let repo = repo_with(
        "charts/parent",
        &[
            (
                "Chart.yaml",
                &format!(
                    "apiVersion: v2\nname: parent\nversion: 1.0.0\ndependencies:\n- name: web\n  version: 0.1.0\n  repository: {}\n",
                    server.url()
                ),
            ),
            ("templates/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: parent\n"),
        ],
    );
    let work = tempfile::tempdir().unwrap();
    let mut ctx = context(work.path());

    let err = render_helm_path(repo.path(), "charts/parent", None, &ctx).unwrap_err().to_string();
    assert!(err.contains("network access") && err.contains(&server.url()), "{err}");

    ctx.network = true;
    for _ in 0..2 {
        let m = render_helm_path(repo.path(), "charts/parent", None, &ctx).unwrap();
        assert_eq!(find(&m, "Deployment").file, "charts/parent/charts/web/templates/deployment.yaml");
    }
    let log = server.stop();
    assert_eq!(count(&log, "GET /web-0.1.0.tgz"), 1, "{log}");
    ctx.network = false;
    let m = render_helm_path(repo.path(), "charts/parent", None, &ctx).unwrap();
    assert_eq!(names(&m).len(), 4, "{:?}", names(&m));
}

#[test]
fn anchors_in_a_template_are_expanded_and_an_alias_bomb_is_refused_naming_the_template() {
    let repo = repo_with("web", WEB_CHART);
    write(
        repo.path(),
        "web",
        &[(
            "templates/anchors.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: anchors\n  labels: &labels {team: web}\n  annotations: *labels\n",
        )],
    );
    let work = tempfile::tempdir().unwrap();
    let ctx = context(work.path());
    let m = render_helm_path(repo.path(), "web", None, &ctx).unwrap();
    assert_eq!(find(&m, "ConfigMap").object["metadata"]["annotations"]["team"], "web");

    let mut bomb = String::from(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bomb\ndata:\n  x0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n",
    );
    for i in 1..10 {
        bomb.push_str(&format!("  x{i}: &a{i} [{}]\n", vec![format!("*a{}", i - 1); 10].join(", ")));
    }
    write(repo.path(), "web", &[("templates/anchors.yaml", &bomb)]);
    let err = render_helm_path(repo.path(), "web", None, &ctx).unwrap_err().to_string();
    assert!(err.contains("web/templates/anchors.yaml"), "{err}");
}
