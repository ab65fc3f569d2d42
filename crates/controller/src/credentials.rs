//! Repository credentials from Argo CD's secrets: a `repository` secret for one URL, or the `repo-creds`
//! secret whose URL is the longest prefix of it (matched on parsed URLs: scheme, host, port, and path
//! on a `/` boundary, see [`berth_repo::url`]).
//!
//! A secret with a `project` key is that project's (Argo CD's project-scoped repositories): it is used
//! only for that project's applications, and wins over a global one for them.

use berth_api::secret_type;
use berth_repo::git::Credentials;
use berth_repo::url;
use k8s_openapi::api::core::v1::Secret;

fn field(secret: &Secret, key: &str) -> Option<String> {
    let bytes = secret.data.as_ref()?.get(key)?;
    String::from_utf8(bytes.0.clone()).ok().filter(|s| !s.is_empty())
}

fn kind_of(secret: &Secret) -> &str {
    secret
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(secret_type::LABEL))
        .map(String::as_str)
        .unwrap_or_default()
}

fn credentials_of(secret: &Secret) -> Credentials {
    Credentials {
        username: field(secret, "username"),
        password: field(secret, "password"),
        ssh_private_key: field(secret, "sshPrivateKey"),
        insecure: field(secret, "insecure").is_some_and(|v| v == "true"),
    }
}

fn has_credentials(c: &Credentials) -> bool {
    c.username.is_some() || c.password.is_some() || c.ssh_private_key.is_some()
}

/// The credentials for `url` that belong to no project: only global repository and repo-creds Secrets,
/// never a project-scoped one (an ApplicationSet whose template's project is an expression reads its git
/// generators' repositories with these).
pub fn for_url_unscoped<'a>(url: &str, secrets: impl IntoIterator<Item = &'a Secret>) -> Credentials {
    // No AppProject can be named "/" (names are DNS labels), so every scoped Secret is another project's.
    for_url(url, "/", secrets)
}

/// The credentials an application of `project` uses for `url`, or none (anonymous) when no secret
/// matches. A `repository` secret for the URL wins; when it carries no credentials of its own, the best
/// `repo-creds` template lends them (Argo CD's credential templates). Another project's secret is
/// never used; among the rest a project's own wins over a global one.
pub fn for_url<'a>(url: &str, project: &str, secrets: impl IntoIterator<Item = &'a Secret>) -> Credentials {
    let project = if project.is_empty() { "default" } else { project };
    let wanted = url::normalize(url);
    let mut repository: Option<(bool, &Secret)> = None;
    let mut template: Option<((usize, bool), &Secret)> = None;
    for secret in secrets {
        let Some(secret_url) = field(secret, "url") else { continue };
        let own = match field(secret, "project") {
            Some(p) if p == project => true,
            Some(_) => continue,
            None => false,
        };
        match kind_of(secret) {
            secret_type::REPOSITORY
                if url::normalize(&secret_url) == wanted
                    && repository.is_none_or(|(best_own, _)| own && !best_own) =>
            {
                repository = Some((own, secret));
            }
            secret_type::REPO_CREDS if url::credential_prefix_matches(&secret_url, url) => {
                let rank = (url::credential_prefix_len(&secret_url), own);
                if template.is_none_or(|(best, _)| rank > best) {
                    template = Some((rank, secret));
                }
            }
            _ => {}
        }
    }
    let template = template.map(|(_, s)| credentials_of(s));
    match repository.map(|(_, s)| credentials_of(s)) {
        Some(repo) if has_credentials(&repo) => repo,
        Some(repo) => {
            let lent = template.unwrap_or_default();
            Credentials { insecure: repo.insecure || lent.insecure, ..lent }
        }
        None => template.unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    fn secret(kind: &str, pairs: &[(&str, &str)]) -> Secret {
        let mut s = Secret::default();
        s.metadata.labels = Some([(berth_api::secret_type::LABEL.to_string(), kind.to_string())].into());
        s.data =
            Some(pairs.iter().map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec()))).collect());
        s
    }

    #[test]
    fn a_repository_secret_wins_over_repo_creds_and_the_longest_prefix_wins() {
        let secrets = [
            secret(
                "repo-creds",
                &[("url", "https://git.example.com"), ("username", "org"), ("password", "p1")],
            ),
            secret(
                "repo-creds",
                &[("url", "https://git.example.com/team"), ("username", "team"), ("password", "p2")],
            ),
            secret(
                "repository",
                &[("url", "https://git.example.com/team/app.git"), ("username", "app"), ("password", "p3")],
            ),
        ];
        assert_eq!(
            for_url("https://git.example.com/team/app", "default", &secrets).username.as_deref(),
            Some("app")
        );
        assert_eq!(
            for_url("https://git.example.com/team/other", "default", &secrets).username.as_deref(),
            Some("team")
        );
        assert_eq!(
            for_url("https://git.example.com/x/y", "default", &secrets).username.as_deref(),
            Some("org")
        );
        assert_eq!(for_url("https://elsewhere.example.com/x", "default", &secrets), Credentials::default());
    }

    #[test]
    fn ssh_keys_and_insecure_are_read() {
        let secrets = [secret(
            "repository",
            &[("url", "git@example.com:org/repo.git"), ("sshPrivateKey", "KEY"), ("insecure", "true")],
        )];
        let c = for_url("git@example.com:org/repo.git", "default", &secrets);
        assert_eq!(c.ssh_private_key.as_deref(), Some("KEY"));
        assert!(c.insecure);
    }

    fn user(url: &str, project: &str, secrets: &[Secret]) -> Option<String> {
        for_url(url, project, secrets).username
    }

    #[test]
    fn a_project_scoped_repository_secret_is_used_only_by_its_projects_applications() {
        let secrets = [secret(
            "repository",
            &[
                ("url", "https://git.example.com/team-a/private"),
                ("username", "a"),
                ("password", "pa"),
                ("project", "team-a"),
            ],
        )];
        assert_eq!(user("https://git.example.com/team-a/private", "team-a", &secrets).as_deref(), Some("a"));
        assert_eq!(
            for_url("https://git.example.com/team-a/private", "team-b", &secrets),
            Credentials::default()
        );
        assert_eq!(for_url("https://git.example.com/team-a/private", "", &secrets), Credentials::default());
    }

    #[test]
    fn another_projects_secret_falls_back_to_a_global_one_and_a_projects_own_wins() {
        let secrets = [
            secret(
                "repository",
                &[("url", "https://git.example.com/r"), ("username", "a"), ("project", "team-a")],
            ),
            secret("repository", &[("url", "https://git.example.com/r.git"), ("username", "global")]),
            secret(
                "repository",
                &[("url", "https://git.example.com/r/"), ("username", "c"), ("project", "team-c")],
            ),
        ];
        assert_eq!(user("https://git.example.com/r", "team-a", &secrets).as_deref(), Some("a"));
        assert_eq!(user("https://git.example.com/r", "team-b", &secrets).as_deref(), Some("global"));
        assert_eq!(user("https://git.example.com/r", "team-c", &secrets).as_deref(), Some("c"));
    }

    #[test]
    fn a_project_scoped_credential_template_is_used_only_by_its_project() {
        let secrets = [
            secret(
                "repo-creds",
                &[("url", "https://git.example.com/org"), ("username", "a"), ("project", "team-a")],
            ),
            secret("repo-creds", &[("url", "https://git.example.com"), ("username", "global")]),
        ];
        assert_eq!(user("https://git.example.com/org/app", "team-a", &secrets).as_deref(), Some("a"));
        assert_eq!(user("https://git.example.com/org/app", "team-b", &secrets).as_deref(), Some("global"));
        let scoped_only = &secrets[..1];
        assert_eq!(for_url("https://git.example.com/org/app", "team-b", scoped_only), Credentials::default());
    }

    #[test]
    fn a_credential_template_matches_parsed_urls_not_text_prefixes() {
        let secrets = [
            secret("repo-creds", &[("url", "http://127.0.0.1"), ("username", "local"), ("password", "p")]),
            secret("repo-creds", &[("url", "https://github.com/argoproj"), ("username", "argo")]),
        ];
        assert_eq!(
            for_url("http://127.0.0.1.attacker.example/x", "default", &secrets),
            Credentials::default()
        );
        assert_eq!(
            for_url("http://127.0.0.1.attacker.example@127.0.0.1:18886/x", "default", &secrets),
            Credentials::default()
        );
        assert_eq!(user("http://127.0.0.1/x", "default", &secrets).as_deref(), Some("local"));
        assert_eq!(
            user("https://github.com/argoproj/argocd-example-apps", "default", &secrets).as_deref(),
            Some("argo")
        );
        assert_eq!(for_url("https://github.com/argoprojX/app", "default", &secrets), Credentials::default());
    }

    #[test]
    fn a_repository_secret_without_credentials_borrows_the_templates() {
        let secrets = [
            secret("repository", &[("url", "https://git.example.com/org/app"), ("insecure", "true")]),
            secret(
                "repo-creds",
                &[("url", "https://git.example.com/org"), ("username", "org"), ("password", "p")],
            ),
        ];
        let c = for_url("https://git.example.com/org/app", "default", &secrets);
        assert_eq!(
            (c.username.as_deref(), c.password.as_deref(), c.insecure),
            (Some("org"), Some("p"), true)
        );
    }
}
