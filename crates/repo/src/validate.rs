//! The one place where values a tenant wrote are checked before they reach git, helm or kustomize: a value
//! that passes can never be read by a tool as an option, a transport or a template. Callers still put user
//! values after `--` or in `--flag=value` form; these checks are the second wall, and the one that explains
//! the refusal to the user with the field that holds the value.
//!
//! ```
//! use berth_repo::validate;
//! assert!(validate::repo_url("spec.source.repoURL", "https://github.com/org/repo.git", false).is_ok());
//! let err = validate::repo_url("spec.source.repoURL", "--upload-pack=touch x", false).unwrap_err();
//! assert_eq!(err.field, "spec.source.repoURL");
//! ```

/// The argocd-cm key that lets repository URLs use `file://` (berth's own, off by default).
pub const ALLOW_FILE_URLS_KEY: &str = "berth.repositories.allowFileURLs";

/// Longest repository URL, revision or Helm value accepted.
const MAX_LEN: usize = 2048;
/// Helm's own limit on release names.
const MAX_RELEASE_NAME: usize = 53;
/// How much of a refused value an error shows.
const SHOWN_CHARS: usize = 120;

/// A refused value: the field that held it, the value shown safely (no credentials, control characters
/// escaped, long values cut) and why it was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field} {value}: {reason}")]
pub struct InvalidValue {
    pub field: String,
    pub value: String,
    pub reason: String,
}

impl InvalidValue {
    fn new(field: &str, value: &str, reason: impl Into<String>) -> Self {
        InvalidValue { field: field.into(), value: shown(value), reason: reason.into() }
    }
}

impl From<InvalidValue> for crate::render::RenderError {
    fn from(e: InvalidValue) -> Self {
        crate::render::RenderError::InvalidFile {
            file: e.field,
            message: format!("{} {}", e.value, e.reason),
        }
    }
}

/// `"value"` with userinfo removed, control characters escaped and at most [`SHOWN_CHARS`] characters.
pub fn shown(value: &str) -> String {
    let scrubbed = crate::url::without_userinfo(value);
    let mut out: String = scrubbed.chars().take(SHOWN_CHARS).flat_map(char::escape_debug).collect();
    if scrubbed.chars().count() > SHOWN_CHARS {
        out.push('…');
    }
    format!("\"{out}\"")
}

/// Refuses the values every tool argument must avoid: a leading `-`, control characters (NUL, newlines,
/// escapes) and over-long values. `what` names the kind of value in the reason.
fn common(field: &str, value: &str, what: &str) -> Result<(), InvalidValue> {
    if value.starts_with('-') {
        return Err(InvalidValue::new(field, value, format!("{what} must not start with \"-\"")));
    }
    if value.chars().any(char::is_control) {
        return Err(InvalidValue::new(field, value, format!("{what} must not contain control characters")));
    }
    if value.len() > MAX_LEN {
        return Err(InvalidValue::new(field, value, format!("{what} is longer than {MAX_LEN} bytes")));
    }
    Ok(())
}

/// The kinds of git repository URL berth accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RepoUrlKind {
    /// `https://`, `http://`, `ssh://` or `git://`.
    Network,
    /// scp-like `user@host:path`, which git reaches over ssh.
    ScpLike,
    /// `file://`: a path on berth's own disk.
    File,
}

/// Checks a git repository URL (`spec.source.repoURL`): `https`, `http`, `ssh`, `git`, scp-like
/// `user@host:path`, and `file://` only when `allow_file` (argocd-cm [`ALLOW_FILE_URLS_KEY`]). Refused:
/// git's `<transport>::<address>` forms (`ext::`, `fd::`), local paths, a leading `-`, whitespace and
/// control characters, and a host or user that starts with `-`.
pub fn repo_url(field: &str, url: &str, allow_file: bool) -> Result<RepoUrlKind, InvalidValue> {
    let kind = repo_url_kind(field, url)?;
    if kind == RepoUrlKind::File && !allow_file {
        return Err(InvalidValue::new(
            field,
            url,
            format!(
                "file:// repository URLs are disabled; an admin can enable them with \
                 {ALLOW_FILE_URLS_KEY}: \"true\" in argocd-cm"
            ),
        ));
    }
    Ok(kind)
}

/// What every repository URL must be before its scheme is read: not empty, no option, control character or
/// whitespace.
fn url_text(field: &str, url: &str) -> Result<(), InvalidValue> {
    if url.is_empty() {
        return Err(InvalidValue::new(field, url, "the repository URL is empty"));
    }
    common(field, url, "a repository URL")?;
    if url.chars().any(char::is_whitespace) {
        return Err(InvalidValue::new(field, url, "a repository URL must not contain whitespace"));
    }
    Ok(())
}

fn repo_url_kind(field: &str, url: &str) -> Result<RepoUrlKind, InvalidValue> {
    let bad = |reason: &str| InvalidValue::new(field, url, reason);
    url_text(field, url)?;
    if let Some((scheme, rest)) = url.split_once("://") {
        if scheme.contains("::") {
            return Err(bad("git transport forms (<transport>::<address>) are not allowed"));
        }
        let kind = match scheme.to_ascii_lowercase().as_str() {
            "https" | "http" | "ssh" | "git" => RepoUrlKind::Network,
            "file" => RepoUrlKind::File,
            _ => return Err(bad("the scheme must be https, http, ssh or git (or file when enabled)")),
        };
        if kind == RepoUrlKind::Network {
            let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
            let (user, host) = match authority.rfind('@') {
                Some(at) => (&authority[..at], &authority[at + 1..]),
                None => ("", authority),
            };
            if host.is_empty() {
                return Err(bad("the repository URL has no host"));
            }
            if host.starts_with('-') || user.starts_with('-') {
                return Err(bad("a host or user must not start with \"-\""));
            }
        }
        return Ok(kind);
    }
    if url.contains("::") {
        return Err(bad("git transport forms (<transport>::<address>) are not allowed"));
    }
    // scp-like: `[user@]host:path`, the colon before any slash (git's own rule for telling it from a path).
    let colon = url.find(':');
    let slash = url.find('/');
    match colon {
        Some(c) if slash.is_none_or(|s| c < s) => {
            let (authority, path) = (&url[..c], &url[c + 1..]);
            let (user, host) = match authority.rfind('@') {
                Some(at) => (&authority[..at], &authority[at + 1..]),
                None => ("", authority),
            };
            let host_ok = !host.is_empty()
                && !host.starts_with('-')
                && host
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '.' | '-' | '_' | '[' | ']'));
            let user_ok = !user.starts_with('-')
                && user.chars().all(|ch| ch.is_ascii_alphanumeric() || "._-".contains(ch));
            if !host_ok || !user_ok || path.is_empty() {
                return Err(bad("not a valid scp-like address (user@host:path)"));
            }
            // `file:/x` is scp-like to git, but to a reader (and to other tools) a file URL (found by hack/fuzz).
            if user.is_empty() && host.eq_ignore_ascii_case("file") {
                return Err(bad("file: without // is ambiguous; write file:///path (when enabled)"));
            }
            Ok(RepoUrlKind::ScpLike)
        }
        _ => {
            Err(bad("a repository URL needs a scheme (https://, ssh://, git://) or the form user@host:path"))
        }
    }
}

/// Checks a git revision (`spec.source.targetRevision`): a commit SHA, a branch, a tag, `HEAD` or empty.
/// Refused: a leading `-`, whitespace and control characters, and what `git check-ref-format` refuses
/// that git would read as a range, a reflog or a pattern (`..`, `@{`, `~`, `^`, `:`, `?`, `*`, `[`, `\`).
pub fn git_revision(field: &str, revision: &str) -> Result<(), InvalidValue> {
    common(field, revision, "a revision")?;
    let bad = |reason: &str| InvalidValue::new(field, revision, reason);
    if revision.chars().any(char::is_whitespace) {
        return Err(bad("a revision must not contain whitespace"));
    }
    if revision.contains("..") || revision.contains("@{") {
        return Err(bad("a revision must not contain \"..\" or \"@{\""));
    }
    if let Some(c) = revision.chars().find(|c| matches!(c, '~' | '^' | ':' | '?' | '*' | '[' | '\\')) {
        return Err(bad(&format!("a revision must not contain {c:?}")));
    }
    if revision.starts_with('/')
        || revision.ends_with('/')
        || revision.ends_with('.')
        || revision.contains("//")
    {
        return Err(bad("not a valid branch, tag or commit name"));
    }
    Ok(())
}

/// Checks a full commit SHA as berth passes it to git (40 hexadecimal digits).
pub fn commit_sha(field: &str, sha: &str) -> Result<(), InvalidValue> {
    if sha.len() == 40 && sha.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(InvalidValue::new(field, sha, "not a full commit SHA"))
    }
}

/// Checks a Helm release name (`spec.source.helm.releaseName`, else the Application's name) by Helm's own
/// rule: a lowercase RFC 1123 subdomain of at most 53 characters.
pub fn helm_release_name(field: &str, name: &str) -> Result<(), InvalidValue> {
    let bad = |reason: &str| InvalidValue::new(field, name, reason);
    if name.is_empty() || name.len() > MAX_RELEASE_NAME {
        return Err(bad("a Helm release name must be 1 to 53 characters"));
    }
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    if !name.split('.').all(label_ok) {
        return Err(bad(
            "a Helm release name must consist of lowercase letters, digits, '-' and '.', and start and end \
             with a letter or digit",
        ));
    }
    Ok(())
}

/// Checks a Helm chart name (`spec.source.chart`): letters, digits, `.`, `_`, `-`, and `/` between path
/// segments (OCI repositories), no leading `-`, no `.` or `..` segment.
pub fn helm_chart_name(field: &str, chart: &str) -> Result<(), InvalidValue> {
    common(field, chart, "a chart name")?;
    let bad = |reason: &str| InvalidValue::new(field, chart, reason);
    if chart.is_empty() {
        return Err(bad("the chart name is empty"));
    }
    let segment_ok = |s: &str| {
        !s.is_empty()
            && s != "."
            && s != ".."
            && !s.starts_with('-')
            && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    };
    if !chart.split('/').all(segment_ok) {
        return Err(bad("a chart name may hold letters, digits, '.', '_', '-' and '/' between names"));
    }
    Ok(())
}

/// Checks a Helm chart version (`spec.source.targetRevision` of a chart source): an exact version or a
/// semver constraint (`>=1.2.0 <2`, `1.2.*`, `^1.2`, `~1.2 || 2.x`); empty means the latest.
pub fn helm_chart_version(field: &str, version: &str) -> Result<(), InvalidValue> {
    common(field, version.trim_start(), "a chart version")?;
    let allowed = |c: char| {
        c.is_ascii_alphanumeric()
            || matches!(c, '.' | '-' | '+' | '_' | '*' | '^' | '~' | '<' | '>' | '=' | '!' | ' ' | ',' | '|')
    };
    if let Some(c) = version.chars().find(|&c| !allowed(c)) {
        return Err(InvalidValue::new(field, version, format!("a chart version must not contain {c:?}")));
    }
    Ok(())
}

/// Checks a Helm repository URL (`spec.source.repoURL` of a chart source): `https://`, `http://`,
/// `oci://`, or a registry address without a scheme (`registry.example.com/charts`, as Argo CD writes OCI).
pub fn helm_repo_url(field: &str, url: &str) -> Result<(), InvalidValue> {
    let bad = |reason: &str| InvalidValue::new(field, url, reason);
    url_text(field, url)?;
    if url.contains("::") && !url.contains('[') {
        return Err(bad("transport forms (<transport>::<address>) are not allowed"));
    }
    let rest = match url.split_once("://") {
        Some((scheme, rest)) => match scheme.to_ascii_lowercase().as_str() {
            "https" | "http" | "oci" => rest,
            _ => return Err(bad("the scheme must be https, http or oci")),
        },
        None => url,
    };
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    let host = authority.rsplit('@').next().unwrap_or_default();
    if host.is_empty() || host.starts_with('-') {
        return Err(bad("the repository URL needs a host that does not start with \"-\""));
    }
    Ok(())
}

/// Checks a Helm parameter name (`--set`, `--set-string`, `--set-file`): Helm reads `,` as the start of
/// another parameter and `=` as the start of its value, so a name holding them could set (or, with
/// `--set-file`, read) something else.
pub fn helm_parameter_name(field: &str, name: &str) -> Result<(), InvalidValue> {
    common(field, name, "a parameter name")?;
    if name.is_empty() {
        return Err(InvalidValue::new(field, name, "the parameter name is empty"));
    }
    let mut escaped = false;
    for c in name.chars() {
        if !escaped && matches!(c, ',' | '=') {
            return Err(InvalidValue::new(field, name, format!("a parameter name must not contain {c:?}")));
        }
        escaped = !escaped && c == '\\';
    }
    Ok(())
}

/// What a Kustomize `resources`/`components` entry refers to when it is not a plain local path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KustomizeRemote {
    /// A remote base on berth's own disk (`file://…`) or in a git transport form (`git::…`): it would clone
    /// a path berth's process can read, never allowed.
    Local,
    /// A remote base or file on the network (`https://…`, `git@host:…`, `github.com/org/repo//path?ref=…`).
    Network,
}

/// Whether a Kustomize entry is a remote base or file rather than a path in the repository, as Kustomize
/// itself would try it: anything with a scheme or a query, scp-like `user@host:path`, `github.com/…`, or
/// a first path segment that looks like a host (`example.com/…`) when no such path `exists_locally`.
/// `None` for a local path.
pub fn kustomize_remote(entry: &str, exists_locally: bool) -> Option<KustomizeRemote> {
    let entry = entry.trim();
    let lower = entry.to_ascii_lowercase();
    // `file://` anywhere (a query, after a prefix kustomize strips) may still reach a local clone.
    if lower.starts_with("file:") || lower.contains("file://") || lower.contains("::") {
        return Some(KustomizeRemote::Local);
    }
    if entry.contains("://") || entry.contains('?') {
        return Some(KustomizeRemote::Network);
    }
    let first = entry.split('/').next().unwrap_or_default();
    // `user@host:path` or `host.tld:path`; a plain `name:x.yaml` stays a file name.
    let scp_like = first.contains('@')
        || first.split_once(':').is_some_and(|(host, _)| host.contains('.') && !host.starts_with('.'));
    let host_like = entry.contains('/')
        && (!exists_locally || first.eq_ignore_ascii_case("github.com"))
        && first.contains('.')
        && !first.starts_with('.')
        && first
            .rsplit('.')
            .next()
            .is_some_and(|tld| tld.len() >= 2 && tld.chars().all(|c| c.is_ascii_alphabetic()));
    (scp_like || host_like).then_some(KustomizeRemote::Network)
}

/// Checks a Kustomize `resources`/`components` entry that [`kustomize_remote`] found remote: never a
/// `file://` remote (it clones a path on berth's disk), never without network, and never with a ref or
/// URL that git could read as an option.
pub fn kustomize_remote_entry(
    field: &str,
    entry: &str,
    exists_locally: bool,
    network: bool,
) -> Result<(), InvalidValue> {
    let Some(kind) = kustomize_remote(entry, exists_locally) else { return Ok(()) };
    let bad = |reason: &str| InvalidValue::new(field, entry, reason);
    if kind == KustomizeRemote::Local {
        return Err(bad("remote bases on the local disk (file://) are not allowed"));
    }
    if !network {
        return Err(bad("remote bases need network access, which is off for this render"));
    }
    common(field, entry, "a remote base")?;
    if entry.chars().any(char::is_whitespace) {
        return Err(bad("a remote base must not contain whitespace"));
    }
    let (url, query) = entry.split_once('?').unwrap_or((entry, ""));
    let host = url.split_once("://").map_or(url, |(_, rest)| rest);
    let host = host.split(['/', ':']).next().unwrap_or_default();
    if host.rsplit('@').next().unwrap_or_default().starts_with('-') || host.starts_with('-') {
        return Err(bad("a host or user must not start with \"-\""));
    }
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(value);
        if value.starts_with('-') || value.chars().any(char::is_control) {
            return Err(bad(&format!(
                "the {key} parameter must not start with \"-\" or hold control characters"
            )));
        }
        if matches!(key, "ref" | "version") {
            git_revision(field, &value)?;
        }
    }
    Ok(())
}

/// `%2D` → `-`, as Kustomize decodes a remote base's query before handing it to git.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) =
                (bytes.get(i + 1).and_then(|b| hex(*b)), bytes.get(i + 2).and_then(|b| hex(*b)))
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
            continue;
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "spec.source.repoURL";

    #[test]
    fn repository_urls_of_the_allowed_schemes_pass() {
        for url in [
            "https://github.com/argoproj/argocd-example-apps.git",
            "http://127.0.0.1:8080/org/repo",
            "ssh://git@github.com/org/repo.git",
            "git://git.example.com/repo",
            "git@github.com:org/repo.git",
            "github.com:org/repo",
            "https://[::1]:8443/repo",
            "HTTPS://Git.Example.com/Repo",
        ] {
            assert!(repo_url(URL, url, false).is_ok(), "{url}");
        }
        assert_eq!(repo_url(URL, "file:///srv/repo", true), Ok(RepoUrlKind::File));
    }

    #[test]
    fn repository_urls_that_git_would_read_as_options_or_transports_are_refused() {
        for url in [
            "--upload-pack=touch /tmp/pwned;true",
            "-c",
            "ext::sh -c touch% /tmp/pwned",
            "ext::sh",
            "fd::3",
            "https::ext::x",
            "ssh://-oProxyCommand=touch%20x/repo",
            "ssh://-oProxyCommand=x@host/repo",
            "git@-oProxyCommand=x:repo",
            "https://host/repo\n--upload-pack=x",
            "https://host/re po",
            "https://host/\0",
            "/srv/repo",
            "./repo",
            "repo",
            "",
            "gopher://host/repo",
            "https:///repo",
            "file:/srv/repo",
            "FILE:x",
        ] {
            assert!(repo_url(URL, url, true).is_err(), "{url:?}");
        }
    }

    #[test]
    fn file_urls_are_refused_unless_allowed_and_the_error_says_how_to_allow_them() {
        let err = repo_url(URL, "file:///srv/repo", false).unwrap_err();
        assert_eq!(err.field, URL);
        let text = err.to_string();
        assert!(text.contains(ALLOW_FILE_URLS_KEY) && text.contains("argocd-cm"), "{text}");
        assert!(repo_url(URL, "FILE:///srv/repo", false).is_err());
    }

    #[test]
    fn errors_name_the_field_and_show_the_value_without_credentials_or_control_characters() {
        let err = repo_url(URL, "gopher://bob:hunter2@host/x\u{1b}[2J", false).unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("spec.source.repoURL "), "{text}");
        assert!(!text.contains("hunter2") && !text.contains('\u{1b}'), "{text}");
        let long = format!("-{}", "a".repeat(10_000));
        assert!(repo_url(URL, &long, false).unwrap_err().value.chars().count() < 130);
    }

    #[test]
    fn revisions_pass_as_branches_tags_shas_and_head() {
        for rev in
            ["", "HEAD", "main", "feature/x-1", "v1.2.3", "refs/heads/main", "release-1.0", &"a".repeat(40)]
        {
            assert!(git_revision("spec.source.targetRevision", rev).is_ok(), "{rev}");
        }
    }

    #[test]
    fn revisions_that_read_as_options_ranges_or_patterns_are_refused() {
        for rev in [
            "--upload-pack=x",
            "-",
            "main..evil",
            "main@{1}",
            "HEAD~1",
            "HEAD^",
            "a:b",
            "ma in",
            "main\n",
            "x\0",
            "v*",
            "/main",
            "main/",
            "main.",
        ] {
            assert!(git_revision("spec.source.targetRevision", rev).is_err(), "{rev:?}");
        }
    }

    #[test]
    fn commit_shas_are_exactly_forty_hex_digits() {
        assert!(commit_sha("sha", &"0123456789abcdef".repeat(3)[..40]).is_ok());
        assert!(commit_sha("sha", "--output=/tmp/x").is_err());
        assert!(commit_sha("sha", &"g".repeat(40)).is_err());
    }

    #[test]
    fn release_names_follow_helms_rule() {
        for name in ["web", "web-1", "a.b-c", &"a".repeat(53)] {
            assert!(helm_release_name("spec.source.helm.releaseName", name).is_ok(), "{name}");
        }
        for name in [
            "",
            "--set-file=x=/etc/hostname",
            "--post-renderer=./x",
            "Web",
            "web_1",
            "-web",
            "web-",
            "{{ env \"HOME\" }}",
            &"a".repeat(54),
        ] {
            let err = helm_release_name("spec.source.helm.releaseName", name).unwrap_err();
            assert_eq!(err.field, "spec.source.helm.releaseName");
        }
    }

    #[test]
    fn chart_names_and_versions_pass_constraints_but_not_options() {
        for chart in ["web", "bitnami/nginx", "my_chart.v2"] {
            assert!(helm_chart_name("spec.source.chart", chart).is_ok(), "{chart}");
        }
        for chart in ["", "--repo=x", "a/../b", "a//b", "/a", "a b", "-a"] {
            assert!(helm_chart_name("spec.source.chart", chart).is_err(), "{chart:?}");
        }
        for v in ["", "1.2.3", "v1.2.3-rc.1+b5", ">=1.2.0 <2", "1.2.*", "^1.2", "~1.2 || 2.x", "*"] {
            assert!(helm_chart_version("spec.source.targetRevision", v).is_ok(), "{v}");
        }
        for v in ["--devel", " --devel", "1.2\n", "$(x)", "1;2"] {
            assert!(helm_chart_version("spec.source.targetRevision", v).is_err(), "{v:?}");
        }
    }

    #[test]
    fn helm_repository_urls_allow_http_oci_and_bare_registries() {
        for url in
            ["https://charts.example.com", "http://127.0.0.1:1234/x", "oci://reg.io/charts", "reg.io/charts"]
        {
            assert!(helm_repo_url(URL, url).is_ok(), "{url}");
        }
        for url in ["", "--username=x", "file:///etc", "ext::sh", "https://-x/", "https://a b"] {
            assert!(helm_repo_url(URL, url).is_err(), "{url:?}");
        }
    }

    #[test]
    fn parameter_names_cannot_start_another_parameter() {
        assert!(helm_parameter_name("p", "image.tag").is_ok());
        assert!(helm_parameter_name("p", r"a\,b\=c").is_ok());
        for name in ["x=/etc/hostname,y", "a,b", "a=b", ""] {
            assert!(helm_parameter_name("p", name).is_err(), "{name:?}");
        }
    }

    #[test]
    fn kustomize_entries_are_told_apart_as_local_or_remote() {
        for local in ["../base", "deployment.yaml", "base", "./x/y.yaml", "v1.2/x.yaml"] {
            assert_eq!(kustomize_remote(local, false), None, "{local}");
        }
        // The last two were found by hack/fuzz.
        for local_remote in [
            "file:///x?ref=--upload-pack=touch%20y%3Btrue",
            "file:/x",
            "FILE:///x",
            "?+{?+file://#g",
            "git::file:///x",
        ] {
            assert_eq!(kustomize_remote(local_remote, true), Some(KustomizeRemote::Local), "{local_remote}");
        }
        for remote in [
            "https://github.com/org/repo//base?ref=v1",
            "github.com/org/repo/base?ref=main",
            "github.com/org/repo/base",
            "git@github.com:org/repo.git//base",
            "ssh://git@host/org/repo",
            "base?ref=main",
        ] {
            assert_eq!(kustomize_remote(remote, false), Some(KustomizeRemote::Network), "{remote}");
        }
        assert_eq!(kustomize_remote("overlays.prod/base", true), None);
        assert_eq!(kustomize_remote("config:v1.yaml", false), None);
        assert_eq!(kustomize_remote("github.com:org/repo", false), Some(KustomizeRemote::Network));
        assert_eq!(kustomize_remote("github.com/org/repo", true), Some(KustomizeRemote::Network));
    }

    #[test]
    fn remote_bases_are_refused_without_network_and_file_ones_always() {
        let f = "resources";
        assert!(kustomize_remote_entry(f, "../base", false, false).is_ok());
        assert!(kustomize_remote_entry(f, "https://github.com/org/repo//base?ref=v1", false, false).is_err());
        assert!(kustomize_remote_entry(f, "https://github.com/org/repo//base?ref=v1", false, true).is_ok());
        assert!(kustomize_remote_entry(f, "file:///x?ref=main", false, true).is_err());
        for evil in [
            "https://github.com/org/repo?ref=--upload-pack=touch%20x",
            "https://github.com/org/repo?ref=%2D%2Dupload-pack=x",
            "ssh://-oProxyCommand=x/repo",
            "git@-oProxyCommand=x:repo",
        ] {
            assert!(kustomize_remote_entry(f, evil, false, true).is_err(), "{evil}");
        }
    }

    /// Random strings from a small alphabet rich in the characters that matter: whatever passes a validator
    /// never starts with `-` and never holds a control character or (for URLs) a transport form.
    #[test]
    fn no_generated_value_that_passes_could_be_read_as_an_option() {
        let alphabet: Vec<char> = "-=:/@.a1 \n\0:ext:file?&%~^[".chars().collect();
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            let len = (next() % 24) as usize;
            let value: String =
                (0..len).map(|_| alphabet[(next() % alphabet.len() as u64) as usize]).collect();
            let checks: [(&str, bool); 6] = [
                ("url", repo_url("f", &value, true).is_ok()),
                ("rev", git_revision("f", &value).is_ok()),
                ("release", helm_release_name("f", &value).is_ok()),
                ("chart", helm_chart_name("f", &value).is_ok()),
                ("version", helm_chart_version("f", &value).is_ok()),
                ("helm url", helm_repo_url("f", &value).is_ok()),
            ];
            for (what, passed) in checks {
                if passed {
                    assert!(!value.trim_start().starts_with('-'), "{what} passed {value:?}");
                    assert!(!value.chars().any(char::is_control), "{what} passed {value:?}");
                }
            }
            if repo_url("f", &value, true).is_ok() {
                assert!(!value.contains("ext::") && !value.contains(char::is_whitespace), "{value:?}");
            }
        }
    }
}
