//! Repository credentials from Argo CD's secrets: a `repository` secret for one URL, or the `repo-creds`
//! secret whose URL is the longest prefix of it.

use berth_repo::git::{Credentials, normalize_url};
use k8s_openapi::api::core::v1::Secret;

pub const SECRET_TYPE_LABEL: &str = "argocd.argoproj.io/secret-type";

fn field(secret: &Secret, key: &str) -> Option<String> {
    let bytes = secret.data.as_ref()?.get(key)?;
    String::from_utf8(bytes.0.clone()).ok().filter(|s| !s.is_empty())
}

fn secret_type(secret: &Secret) -> &str {
    secret
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(SECRET_TYPE_LABEL))
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

/// The credentials for `url`, or none (anonymous) when no secret matches.
pub fn for_url<'a>(url: &str, secrets: impl IntoIterator<Item = &'a Secret>) -> Credentials {
    let wanted = normalize_url(url);
    let mut best_prefix: Option<(usize, &Secret)> = None;
    for secret in secrets {
        let Some(secret_url) = field(secret, "url") else { continue };
        match secret_type(secret) {
            "repository" if normalize_url(&secret_url) == wanted => return credentials_of(secret),
            "repo-creds" => {
                let prefix = secret_url.trim().to_ascii_lowercase();
                if wanted.starts_with(&prefix) && best_prefix.is_none_or(|(len, _)| prefix.len() > len) {
                    best_prefix = Some((prefix.len(), secret));
                }
            }
            _ => {}
        }
    }
    best_prefix.map(|(_, s)| credentials_of(s)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    fn secret(kind: &str, pairs: &[(&str, &str)]) -> Secret {
        let mut s = Secret::default();
        s.metadata.labels = Some([(SECRET_TYPE_LABEL.to_string(), kind.to_string())].into());
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
        assert_eq!(for_url("https://git.example.com/team/app", &secrets).username.as_deref(), Some("app"));
        assert_eq!(for_url("https://git.example.com/team/other", &secrets).username.as_deref(), Some("team"));
        assert_eq!(for_url("https://git.example.com/x/y", &secrets).username.as_deref(), Some("org"));
        assert_eq!(for_url("https://elsewhere.example.com/x", &secrets), Credentials::default());
    }

    #[test]
    fn ssh_keys_and_insecure_are_read() {
        let secrets = [secret(
            "repository",
            &[("url", "git@example.com:org/repo.git"), ("sshPrivateKey", "KEY"), ("insecure", "true")],
        )];
        let c = for_url("git@example.com:org/repo.git", &secrets);
        assert_eq!(c.ssh_private_key.as_deref(), Some("KEY"));
        assert!(c.insecure);
    }
}
