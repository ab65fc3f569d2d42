//! Repository URL identity: the one place that says which repository a URL names and whether a
//! credential template (`repo-creds`) covers it.
//!
//! Matching is done on parsed parts, never on raw text: `http://127.0.0.1` does not cover
//! `http://127.0.0.1.attacker.example/x` (another host) nor `http://127.0.0.1.attacker.example@127.0.0.1:18886/x`
//! (userinfo is not the host; another port).
//!
//! ```
//! use berth_repo::url::credential_prefix_matches;
//! assert!(credential_prefix_matches("https://github.com/argoproj", "https://github.com/argoproj/argocd-example-apps"));
//! assert!(!credential_prefix_matches("https://github.com/argoproj", "https://github.com/argoprojX/app"));
//! ```

/// A repository URL taken apart: `https://user@Host:8443/org/repo.git`, `ssh://git@host/org/repo`,
/// scp-like `git@host:org/repo`, `git://host/repo`, `oci://registry/charts`, or a scheme-less
/// `registry/charts` (Helm OCI repositories are written so).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoUrl {
    /// Lowercased; scp-like URLs are `ssh`, scheme-less ones are empty.
    pub scheme: String,
    /// The userinfo's user name (never part of the host). A password in the URL is dropped.
    pub user: Option<String>,
    /// Lowercased; an IPv6 address keeps its brackets.
    pub host: String,
    /// The port as written; see [`RepoUrl::effective_port`].
    pub port: Option<u16>,
    /// Without leading or trailing `/` and without a `.git` suffix; letter case kept.
    pub path: String,
}

impl RepoUrl {
    /// Parses a repository URL; `None` for text that names no host (a bare path, an empty string) or
    /// whose authority is malformed (a bad port, a space or backslash in the host).
    pub fn parse(url: &str) -> Option<RepoUrl> {
        let url = url.trim();
        let (scheme, authority, path) = match url.split_once("://") {
            Some((scheme, rest)) => {
                if scheme.is_empty()
                    || !scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
                {
                    return None;
                }
                let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
                (scheme.to_ascii_lowercase(), &rest[..end], &rest[end..])
            }
            None => {
                let colon = url.find(':');
                let slash = url.find('/');
                match (colon, slash) {
                    // scp-like `[user@]host:path`: git's own rule is a colon before any slash.
                    (Some(c), s) if s.is_none_or(|s| c < s) => ("ssh".to_string(), &url[..c], &url[c + 1..]),
                    (_, Some(s)) => (String::new(), &url[..s], &url[s..]),
                    _ => (String::new(), url, ""),
                }
            }
        };
        // The user ends at the last `@`: everything before it is userinfo, as in RFC 3986 and curl.
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
            None => (None, authority),
        };
        let user = userinfo.map(|u| u.split_once(':').map_or(u, |(user, _)| user).to_string());
        let is_scp = !url.contains("://") && scheme == "ssh";
        let (host, port) = split_host_port(hostport, is_scp)?;
        if host.is_empty() && scheme != "file" {
            return None;
        }
        let path = path.trim_matches('/');
        let path = path.strip_suffix(".git").unwrap_or(path).trim_end_matches('/');
        Some(RepoUrl { scheme, user, host: host.to_ascii_lowercase(), port, path: path.to_string() })
    }

    /// The port connections go to: the written one, or the scheme's default (HTTPS's for `oci` and
    /// scheme-less registries; `None` for a scheme without one, e.g. `file`).
    pub fn effective_port(&self) -> Option<u16> {
        self.port.or(self.default_port())
    }

    fn default_port(&self) -> Option<u16> {
        match self.scheme.as_str() {
            "http" => Some(80),
            "https" | "oci" | "" => Some(443),
            "ssh" | "git+ssh" | "ssh+git" => Some(22),
            "git" => Some(9418),
            _ => None,
        }
    }

    /// Where the repository lives, whatever the transport: `host[:port]/path`, lowercased, without scheme,
    /// user, query, `.git` or the scheme's default port. The https, ssh and scp-like URLs a git host
    /// gives for one repository have one location, so a push notification naming one of them finds
    /// Applications written with another.
    pub fn location(&self) -> String {
        let path = self.path.split(['?', '#']).next().unwrap_or_default().trim_matches('/');
        let path = path.strip_suffix(".git").unwrap_or(path).trim_end_matches('/').to_ascii_lowercase();
        match self.port.filter(|port| Some(*port) != self.default_port()) {
            Some(port) => format!("{}:{port}/{path}", self.host),
            None => format!("{}/{path}", self.host),
        }
    }

    /// The scheme with its aliases folded: `git+ssh` and `ssh+git` are `ssh`.
    fn scheme_family(&self) -> &str {
        match self.scheme.as_str() {
            "git+ssh" | "ssh+git" => "ssh",
            s => s,
        }
    }

    /// The path's segments, lowercased as [`normalize`] does; `None` when a segment would move up or
    /// stay in place once a client resolves it (`.`, `..`, their percent-encodings) or has a backslash,
    /// because then the path the server sees is not the one matched here.
    fn segments(&self) -> Option<Vec<String>> {
        let mut out = Vec::new();
        for segment in self.path.split('/').filter(|s| !s.is_empty()) {
            let lower = segment.to_ascii_lowercase();
            let decoded = lower.replace("%2e", ".");
            if decoded == "." || decoded == ".." || lower.contains('\\') || lower.contains("%5c") {
                return None;
            }
            out.push(lower);
        }
        Some(out)
    }
}

/// `host[:port]`, or `[v6]:port`; the port must be digits. scp-like URLs carry no port.
fn split_host_port(hostport: &str, scp: bool) -> Option<(&str, Option<u16>)> {
    let bad =
        |h: &str| h.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '\\' | '@' | '/'));
    let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
        let end = rest.find(']')?;
        let after = &rest[end + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) if !scp => Some(p),
            None if after.is_empty() => None,
            _ => return None,
        };
        (&hostport[..end + 2], port)
    } else {
        match hostport.rsplit_once(':') {
            Some(_) if scp => return None,
            Some((host, port)) => (host, Some(port)),
            None => (hostport, None),
        }
    };
    if bad(host) {
        return None;
    }
    let port = match port {
        None | Some("") => None,
        Some(p) if p.chars().all(|c| c.is_ascii_digit()) => Some(p.parse::<u16>().ok()?),
        Some(_) => return None,
    };
    Some((host, port))
}

/// One spelling per repository (`.git` suffix, trailing slashes, letter case and surrounding space do
/// not make another one): the key of caches and of `repository` secrets.
pub fn normalize(url: &str) -> String {
    let url = url.trim().trim_end_matches('/');
    let url = url.strip_suffix(".git").unwrap_or(url);
    url.to_ascii_lowercase()
}

/// The transport-independent identity of a repository URL, [`RepoUrl::location`]; text that names no
/// host (a local path) is its [`normalize`]d self.
///
/// ```
/// use berth_repo::url::location;
/// assert_eq!(location("git@GitHub.com:Acme/deploy.git"), "github.com/acme/deploy");
/// assert_eq!(location("ssh://git@bitbucket.example.com:7999/plat/deploy"), "bitbucket.example.com:7999/plat/deploy");
/// ```
pub fn location(url: &str) -> String {
    RepoUrl::parse(url)
        .map_or_else(|| normalize(url).trim_matches('/').to_string(), |parsed| parsed.location())
}

/// Whether two URLs name the same repository over any transport (see [`RepoUrl::location`]):
/// `https://github.com/Org/Repo.git`, `ssh://git@github.com/org/repo` and `git@github.com:org/repo` do.
/// Letter case is ignored in the whole URL as Argo CD does: the big hosts treat paths so, and a false
/// match only costs a refresh. Not a key for credentials: [`normalize`] and
/// [`credential_prefix_matches`] keep the scheme.
pub fn same_repository(a: &str, b: &str) -> bool {
    location(a) == location(b)
}

/// `https://user:secret@host/x` → `https://host/x`: a URL to show in a log line or an error carries no
/// credentials. Only `scheme://` URLs carry them; an scp-like `git@host:path` names just the ssh user
/// and is returned as it is.
pub fn without_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.into() };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => url.into(),
    }
}

/// Whether a credential template for `prefix_url` (a `repo-creds` secret's `url`) covers `repo_url`:
/// the same scheme (scp-like is `ssh`), the same host and port, the same user when the template names
/// one, and the template's path a prefix of the repository's on a `/` boundary. Letter case of the path
/// is ignored as [`normalize`] ignores it. Anything that does not parse matches nothing.
pub fn credential_prefix_matches(prefix_url: &str, repo_url: &str) -> bool {
    let (Some(prefix), Some(repo)) = (RepoUrl::parse(prefix_url), RepoUrl::parse(repo_url)) else {
        return false;
    };
    let (Some(prefix_path), Some(repo_path)) = (prefix.segments(), repo.segments()) else {
        return false;
    };
    prefix.scheme_family() == repo.scheme_family()
        && prefix.host == repo.host
        && prefix.effective_port() == repo.effective_port()
        && prefix.user.as_ref().is_none_or(|u| repo.user.as_ref() == Some(u))
        && repo_path.starts_with(&prefix_path)
}

/// How specific a matching template is: the longest prefix wins, as in Argo CD.
pub fn credential_prefix_len(prefix_url: &str) -> usize {
    RepoUrl::parse(prefix_url).and_then(|u| u.segments()).map_or(0, |s| s.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(url: &str) -> RepoUrl {
        RepoUrl::parse(url).unwrap_or_else(|| panic!("{url} parses"))
    }

    #[test]
    fn userinfo_is_never_part_of_the_host() {
        let u = parsed("http://127.0.0.1.attacker.example@127.0.0.1:18886/x");
        assert_eq!(u.scheme, "http");
        assert_eq!(u.user.as_deref(), Some("127.0.0.1.attacker.example"));
        assert_eq!(u.host, "127.0.0.1");
        assert_eq!(u.port, Some(18886));
        assert_eq!(u.path, "x");
        let u = parsed("https://bob:s3cr@t@Git.Example.com/org/repo.git/");
        assert_eq!(
            (u.user.as_deref(), u.host.as_str(), u.path.as_str()),
            (Some("bob"), "git.example.com", "org/repo")
        );
    }

    #[test]
    fn a_credential_for_a_host_is_not_sent_to_a_host_that_starts_with_its_name() {
        assert!(!credential_prefix_matches("http://127.0.0.1", "http://127.0.0.1.attacker.example/x"));
    }

    #[test]
    fn a_credential_for_a_host_is_not_sent_to_another_port_behind_userinfo() {
        assert!(!credential_prefix_matches(
            "http://127.0.0.1",
            "http://127.0.0.1.attacker.example@127.0.0.1:18886/x"
        ));
        assert!(credential_prefix_matches("http://127.0.0.1:18886", "http://anyone@127.0.0.1:18886/x"));
    }

    #[test]
    fn argo_cds_documented_repo_creds_example_matches_on_a_path_boundary() {
        let creds = "https://github.com/argoproj";
        assert!(credential_prefix_matches(creds, "https://github.com/argoproj/argocd-example-apps"));
        assert!(credential_prefix_matches(creds, "https://github.com/argoproj/argocd-example-apps.git"));
        assert!(credential_prefix_matches(creds, "https://GitHub.com/ArgoProj/argo-cd/"));
        assert!(credential_prefix_matches("https://github.com/argoproj/", "https://github.com/argoproj/x"));
        assert!(!credential_prefix_matches(creds, "https://github.com/argoprojX/argocd-example-apps"));
        assert!(!credential_prefix_matches(creds, "https://gitlab.com/argoproj/argocd-example-apps"));
        assert!(!credential_prefix_matches(creds, "http://github.com/argoproj/argocd-example-apps"));
        assert!(!credential_prefix_matches(creds, "https://github.com:8443/argoproj/argocd-example-apps"));
    }

    #[test]
    fn the_default_port_is_the_same_port() {
        assert!(credential_prefix_matches("http://127.0.0.1", "http://127.0.0.1:80/x"));
        assert!(credential_prefix_matches(
            "https://git.example.com:443/org",
            "https://git.example.com/org/r"
        ));
        assert!(credential_prefix_matches("ssh://git@host/org", "git@host:org/repo.git"));
        assert!(credential_prefix_matches("ssh://git@host:22/org", "git@host:org/repo.git"));
        assert!(!credential_prefix_matches("ssh://git@host:2222/org", "git@host:org/repo.git"));
    }

    #[test]
    fn scp_like_urls_are_ssh() {
        let u = parsed("git@GitHub.com:argoproj/argo-cd.git");
        assert_eq!(
            u,
            RepoUrl {
                scheme: "ssh".into(),
                user: Some("git".into()),
                host: "github.com".into(),
                port: None,
                path: "argoproj/argo-cd".into()
            }
        );
        assert!(credential_prefix_matches("git@github.com:argoproj", "git@github.com:argoproj/argo-cd.git"));
        assert!(credential_prefix_matches(
            "git@github.com:argoproj",
            "ssh://git@github.com/argoproj/argo-cd"
        ));
        assert!(!credential_prefix_matches("git@github.com:argoproj", "git@github.com:argoprojX/argo-cd"));
        assert!(!credential_prefix_matches("git@github.com:argoproj", "https://github.com/argoproj/argo-cd"));
    }

    #[test]
    fn a_template_naming_a_user_covers_only_that_user() {
        assert!(!credential_prefix_matches("git@host:org", "deploy@host:org/repo"));
        assert!(credential_prefix_matches("https://host/org", "https://someone@host/org/repo"));
    }

    #[test]
    fn oci_and_scheme_less_helm_registries_parse() {
        let u = parsed("oci://Registry.example.com:5000/charts/app");
        assert_eq!(
            (u.scheme.as_str(), u.host.as_str(), u.port, u.path.as_str()),
            ("oci", "registry.example.com", Some(5000), "charts/app")
        );
        assert!(credential_prefix_matches(
            "oci://registry.example.com:5000/charts",
            "oci://registry.example.com:5000/charts/app"
        ));
        assert!(credential_prefix_matches(
            "registry-1.docker.io/bitnamicharts",
            "registry-1.docker.io/bitnamicharts/redis"
        ));
        assert!(!credential_prefix_matches(
            "registry-1.docker.io/bitnami",
            "registry-1.docker.io/bitnamicharts"
        ));
    }

    #[test]
    fn ipv6_hosts_keep_their_brackets_and_ports() {
        let u = parsed("https://[::1]:8443/org/repo");
        assert_eq!((u.host.as_str(), u.port), ("[::1]", Some(8443)));
        assert!(!credential_prefix_matches("https://[::1]", "https://[::1]:8443/org/repo"));
    }

    #[test]
    fn paths_that_climb_out_of_the_prefix_match_nothing() {
        let creds = "https://github.com/argoproj";
        assert!(!credential_prefix_matches(creds, "https://github.com/argoproj/../victim/repo"));
        assert!(!credential_prefix_matches(creds, "https://github.com/argoproj/%2e%2e/victim/repo"));
        assert!(!credential_prefix_matches(creds, "https://github.com/argoproj/.%2E/victim/repo"));
        assert!(!credential_prefix_matches(creds, "https://github.com/argoproj/..\\victim"));
        assert!(!credential_prefix_matches(creds, "https://github.com/argoproj/./x"));
    }

    #[test]
    fn malformed_urls_match_nothing() {
        for url in [
            "",
            "/local/path",
            "https://",
            "http://host:port/x",
            "http://host:99999/x",
            "http://ho st/x",
            "://host/x",
        ] {
            assert!(!credential_prefix_matches(url, "https://host/x"), "{url}");
            assert!(!credential_prefix_matches("https://host", url), "{url}");
        }
    }

    #[test]
    fn one_repository_has_one_location_over_https_ssh_and_scp_like_urls() {
        let same = [
            "https://github.com/acme/deploy",
            "https://github.com/Acme/deploy.git",
            "https://GitHub.com/acme/deploy/",
            "https://github.com:443/acme/deploy.git/",
            "http://github.com/acme/deploy",
            "https://ci-bot:token@github.com/acme/deploy.git",
            "https://github.com/acme/deploy?ref=main#frag",
            "git@github.com:Acme/deploy.git",
            "git@github.com:/acme/deploy",
            "ssh://git@github.com/acme/deploy.git",
            "ssh://git@github.com:22/acme/deploy",
            "git+ssh://git@github.com/acme/deploy",
            " git://github.com/acme/deploy.git ",
            "git://github.com:9418/acme/deploy",
        ];
        for url in same {
            assert_eq!(location(url), "github.com/acme/deploy", "{url}");
            assert!(same_repository(url, "git@github.com:acme/deploy"), "{url}");
        }
    }

    #[test]
    fn another_host_port_or_path_is_another_repository() {
        for url in [
            "https://github.com/acme/deploy2",
            "https://github.com/acme/deploy/sub",
            "https://gitlab.com/acme/deploy",
            "ssh://git@github.com:2222/acme/deploy",
            "https://github.com:8443/acme/deploy",
            "ssh://git@github.com:443/acme/deploy",
        ] {
            assert!(!same_repository(url, "https://github.com/acme/deploy"), "{url}");
        }
        assert_eq!(
            location("ssh://git@bitbucket.example.com:7999/plat/deploy.git"),
            "bitbucket.example.com:7999/plat/deploy"
        );
    }

    #[test]
    fn a_local_path_is_its_own_location() {
        assert_eq!(location("/srv/git/Deploy.git/"), "srv/git/deploy");
        assert!(same_repository("/srv/git/deploy", "/srv/git/deploy.git"));
        assert!(!same_repository("/srv/git/deploy", "/srv/git/other"));
    }

    #[test]
    fn without_userinfo_drops_user_and_password_of_scheme_urls_only() {
        assert_eq!(without_userinfo("https://u:p@charts.example.com/x"), "https://charts.example.com/x");
        assert_eq!(without_userinfo("https://u:p@w@host:8443"), "https://host:8443");
        assert_eq!(without_userinfo("https://host/x@y"), "https://host/x@y");
        assert_eq!(without_userinfo("https://host?q=a@b"), "https://host?q=a@b");
        assert_eq!(without_userinfo("git@github.com:org/x.git"), "git@github.com:org/x.git");
        assert_eq!(without_userinfo("registry.example.com/charts"), "registry.example.com/charts");
    }

    #[test]
    fn normalize_ignores_suffix_slash_and_case() {
        assert_eq!(normalize(" https://Git.Example.com/Org/Repo.git/ "), "https://git.example.com/org/repo");
        assert_eq!(normalize("https://git.example.com/org/repo"), "https://git.example.com/org/repo");
    }

    /// Every combination of the attack's parts: a match always means the same host, port and scheme.
    #[test]
    fn a_match_always_has_the_templates_host_port_and_scheme() {
        let schemes = ["http://", "https://", "ssh://", ""];
        let users = ["", "git@", "127.0.0.1@", "a:b@", "evil.example@"];
        let hosts = ["127.0.0.1", "127.0.0.1.attacker.example", "GitHub.com", "github.com.evil"];
        let ports = ["", ":80", ":443", ":22", ":18886"];
        let paths = ["", "/", "/org", "/org/", "/orgX/r", "/org/r.git", "/org/../x"];
        let mut urls = Vec::new();
        for s in schemes {
            for u in users {
                for h in hosts {
                    for p in ports {
                        for path in paths {
                            urls.push(format!("{s}{u}{h}{p}{path}"));
                        }
                    }
                }
            }
        }
        for prefix in urls.iter().step_by(37) {
            for repo in &urls {
                if !credential_prefix_matches(prefix, repo) {
                    continue;
                }
                let (a, b) = (parsed(prefix), parsed(repo));
                assert_eq!(a.host, b.host, "{prefix} matched {repo}");
                assert_eq!(a.effective_port(), b.effective_port(), "{prefix} matched {repo}");
                assert_eq!(a.scheme_family(), b.scheme_family(), "{prefix} matched {repo}");
                let (pa, pb) = (a.segments().unwrap(), b.segments().unwrap());
                assert!(pb.starts_with(&pa), "{prefix} matched {repo}");
            }
        }
    }
}
