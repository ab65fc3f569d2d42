//! Whatever a tenant writes, a value the validators accept can never be read by git, helm or kustomize as an
//! option: it does not start with `-`, holds no whitespace or control character, and a release name fits
//! Helm's 53 characters. The validators never panic.
#![no_main]

use berth_repo::validate;
use libfuzzer_sys::fuzz_target;

fn option_safe(value: &str) -> bool {
    !value.trim_start().starts_with('-') && !value.chars().any(|c| c.is_control())
}

fuzz_target!(|input: (&str, bool)| {
    let (value, allow_file) = input;
    if validate::repo_url("spec.source.repoURL", value, allow_file).is_ok() {
        assert!(option_safe(value) && !value.chars().any(char::is_whitespace), "repoURL {value:?}");
        // git takes `<scheme>::<address>` (scheme characters straight before `::`) as a remote helper.
        let scheme_end = value.find(|c: char| !(c.is_ascii_alphanumeric() || "+.-".contains(c)));
        let helper = scheme_end.is_some_and(|end| end > 0 && value[end..].starts_with("::"));
        assert!(!helper, "a git transport helper was accepted: {value:?}");
        assert!(allow_file || !value.to_ascii_lowercase().trim().starts_with("file:"), "file:// {value:?}");
    }
    if validate::git_revision("spec.source.targetRevision", value).is_ok() {
        assert!(option_safe(value) && !value.contains(".."), "revision {value:?}");
    }
    if validate::commit_sha("revision", value).is_ok() {
        assert!(value.len() == 40 && value.chars().all(|c| c.is_ascii_hexdigit()), "sha {value:?}");
    }
    if validate::helm_release_name("spec.source.helm.releaseName", value).is_ok() {
        assert!(option_safe(value) && value.len() <= 53 && !value.contains('='), "release {value:?}");
    }
    for check in [validate::helm_chart_name, validate::helm_chart_version, validate::helm_repo_url] {
        if check("spec.source", value).is_ok() {
            assert!(option_safe(value), "helm value {value:?}");
        }
    }
    if validate::helm_parameter_name("spec.source.helm.fileParameters", value).is_ok() {
        assert!(!value.starts_with('-'), "helm parameter {value:?}");
    }
    let network = allow_file;
    if validate::kustomize_remote_entry("resources", value, false, network).is_ok()
        && validate::kustomize_remote(value, false).is_some()
    {
        assert!(network, "a remote base was accepted without network: {value:?}");
        let lower = value.trim().to_ascii_lowercase();
        assert!(
            !lower.starts_with("file:") && !lower.contains("file://"),
            "a file:// remote base: {value:?}"
        );
    }
});
