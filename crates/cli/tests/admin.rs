//! `berth admin settings resource-overrides`: the built binary on fixture files, no cluster needed.

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/admin").join(name)
}

/// `berth admin settings resource-overrides <verb> <file> --argocd-cm-path argocd-cm.yaml`: (success,
/// stdout, stderr).
fn resource_overrides(verb: &str, file: &str) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["admin", "settings", "resource-overrides", verb])
        .arg(fixture(file))
        .arg("--argocd-cm-path")
        .arg(fixture("argocd-cm.yaml"))
        .output()
        .expect("berth runs");
    (
        out.status.success(),
        String::from_utf8(out.stdout).expect("UTF-8 stdout"),
        String::from_utf8(out.stderr).expect("UTF-8 stderr"),
    )
}

#[test]
fn health_prints_the_lua_check_verdict_for_a_custom_resource() {
    let (ok, stdout, stderr) = resource_overrides("health", "certificate.yaml");
    assert!(ok, "{stderr}");
    assert_eq!(stdout, "STATUS: Degraded\nMESSAGE: Issuing certificate as Secret does not exist\n");
}

#[test]
fn health_reads_json_and_honours_use_open_libs() {
    let (ok, stdout, stderr) = resource_overrides("health", "widget.json");
    assert!(ok, "{stderr}");
    assert_eq!(stdout, "STATUS: Healthy\nMESSAGE: os.execute is function\n");
}

#[test]
fn health_falls_back_to_the_built_in_check() {
    let (ok, stdout, stderr) = resource_overrides("health", "deployment.yaml");
    assert!(ok, "{stderr}");
    assert_eq!(
        stdout,
        "STATUS: Progressing\nMESSAGE: Waiting for rollout to finish: 0 out of 3 new replicas have been updated...\n"
    );
}

#[test]
fn ignore_differences_prints_the_removed_fields() {
    let (ok, stdout, stderr) = resource_overrides("ignore-differences", "deployment.yaml");
    assert!(ok, "{stderr}");
    assert_eq!(
        stdout,
        "Following fields are ignored:\n\n\
         - /spec/replicas: 3\n\
         - /spec/template/spec/containers/1: {\"image\":\"envoyproxy/envoy:v1.31\",\"name\":\"sidecar\"}\n"
    );
}

#[test]
fn ignore_differences_says_when_no_rule_applies() {
    let (ok, stdout, stderr) = resource_overrides("ignore-differences", "certificate.yaml");
    assert!(ok, "{stderr}");
    assert_eq!(stdout, "Ignore differences are not configured for 'cert-manager.io/Certificate'\n");
}

#[test]
fn a_missing_object_file_fails_with_its_path() {
    let (ok, stdout, stderr) = resource_overrides("health", "absent.yaml");
    assert!(!ok);
    assert_eq!(stdout, "");
    assert!(stderr.contains("absent.yaml"), "{stderr}");
}
