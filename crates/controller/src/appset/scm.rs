//! The I/O of the `pullRequest` and `scmProvider` generators: the provider's REST API asked for open pull
//! requests, or for an organisation's repositories, their branches and paths; berth-appset's
//! [`pull_request`] and [`scm_provider`] then make the parameter sets.
//!
//! Providers: `gitea` (API v1). The others Argo CD knows (github, gitlab, bitbucket …) are refused with
//! an error naming them.
//!
//! Settings, argocd-cmd-params-cm as Argo CD reads it:
//! - `applicationsetcontroller.enable.scm.providers`: `false` refuses both generators (default `true`);
//! - `applicationsetcontroller.allowed.scm.providers`: comma-separated API URLs; when set, a generator's
//!   `api` must be one of them, as written (an unset `api` is not checked);
//! - `applicationsetcontroller.enable.tokenref.strict.mode`: `true` reads a `tokenRef` only from a
//!   Secret labelled `argocd.argoproj.io/secret-type: scm-creds`.
//!
//! Every field is the tenant's: the `api` URL must be `http` or `https` with no credentials in it;
//! owner, repository, branch and path names are checked before they become URL segments; a redirect is
//! followed only on the same origin; each answer is read up to [`MAX_RESPONSE_BYTES`], listings stop at
//! [`MAX_PAGES`] pages, each request has a timeout and a whole generation [`GENERATION_TIMEOUT`]. The
//! token is sent as a header only; it never appears in an error, a log line or a `Debug` output (an
//! answer that echoes it has it masked).
//!
//! Two departures from Argo CD: without a `tokenRef` the requests are anonymous (Argo CD falls back to
//! the controller's `GITEA_TOKEN` environment variable, which would hand the controller's token to any
//! URL a tenant writes); an empty repository (no commit) is skipped, where Argo CD fails the generator.
//!
//! [`pull_request`]: berth_appset::generators::pull_request
//! [`scm_provider`]: berth_appset::generators::scm_provider

use berth_appset::Error;
use berth_appset::generators::pull_request::{self, PullRequest};
use berth_appset::generators::scm_provider::{self, Filters, Repository, provider_of};
use berth_appset::params::{ParamSet, TemplateMode};
use k8s_openapi::api::core::v1::Secret;
use reqwest::{StatusCode, Url};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// The largest answer read from a provider.
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;
/// The most pages one listing reads (of [`PAGE_SIZE`] items).
pub const MAX_PAGES: usize = 100;
/// Items asked per page (Gitea's default `MAX_RESPONSE_ITEMS`).
const PAGE_SIZE: usize = 50;
/// The most path checks (`pathsExist`, `pathsDoNotExist`) one generation makes.
const MAX_PATH_CHECKS: usize = 2_000;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest one generator's calls to a provider may take in all.
pub const GENERATION_TIMEOUT: Duration = Duration::from_secs(180);

const ENABLE_KEY: &str = "applicationsetcontroller.enable.scm.providers";
const ALLOWED_KEY: &str = "applicationsetcontroller.allowed.scm.providers";
const STRICT_TOKEN_REF_KEY: &str = "applicationsetcontroller.enable.tokenref.strict.mode";
const SECRET_TYPE_LABEL: &str = "argocd.argoproj.io/secret-type";

/// The parameter sets of a `pullRequest` or `scmProvider` generator (`kind`) whose fields are `spec`,
/// for a set in `namespace` (where `tokenRef` Secrets are read), with argocd-cmd-params-cm's data as
/// `cmd_params`. Any other kind is an unsupported-generator error.
pub async fn service_params(
    client: &kube::Client,
    namespace: &str,
    kind: &'static str,
    spec: &Value,
    mode: TemplateMode,
    cmd_params: &BTreeMap<String, String>,
) -> Result<Vec<ParamSet>, Error> {
    let providers: &[&'static str] = match kind {
        "pullRequest" => &pull_request::PROVIDERS,
        "scmProvider" => &scm_provider::PROVIDERS,
        _ => return Err(Error::invalid(kind, kind, "this generator is not supported yet")),
    };
    if !enabled(cmd_params) {
        return Err(Error::invalid(
            kind,
            kind,
            format!("SCM providers are disabled (argocd-cmd-params-cm {ENABLE_KEY} is false)"),
        ));
    }
    let (provider, fields) = provider_of(spec, providers, kind)?;
    let api = fields.get("api").and_then(Value::as_str).unwrap_or_default();
    let base = if api.is_empty() {
        None
    } else {
        Some(api_base(api).map_err(|m| invalid(kind, provider, "api", m))?)
    };
    check_allowed(api, cmd_params).map_err(|m| invalid(kind, provider, "api", m))?;
    if provider != "gitea" {
        return Err(Error::invalid(
            kind,
            provider,
            format!("the {provider} provider is not supported yet (berth supports gitea)"),
        ));
    }
    let Some(base) = base else {
        return Err(invalid(kind, provider, "api", "the Gitea instance's URL is required".to_string()));
    };
    let token = token(client, namespace, fields, cmd_params)
        .await
        .map_err(|m| invalid(kind, provider, "tokenRef", m))?;
    let gitea = Gitea::new(base, token, fields.get("insecure") == Some(&Value::Bool(true)))
        .map_err(|m| Error::invalid(kind, provider, m))?;
    let work = async {
        match kind {
            "pullRequest" => pull_requests(&gitea, kind, spec, fields, mode).await,
            _ => repositories(&gitea, kind, spec, fields, mode).await,
        }
    };
    tokio::time::timeout(GENERATION_TIMEOUT, work).await.map_err(|_| {
        Error::invalid(kind, provider, format!("the provider did not answer within {GENERATION_TIMEOUT:?}"))
    })?
}

fn invalid(kind: &'static str, provider: &str, field: &str, message: String) -> Error {
    Error::invalid(kind, format!("{provider}.{field}"), message)
}

/// `applicationsetcontroller.enable.scm.providers`: `true` unless it says `false` (any case), as Argo
/// CD's boolean parsing of its environment variable.
fn enabled(cmd_params: &BTreeMap<String, String>) -> bool {
    !cmd_params.get(ENABLE_KEY).is_some_and(|v| v.trim().eq_ignore_ascii_case("false"))
}

/// Argo CD's `ScmProviderAllowed`: no list, or no `api`, allows; else `api` must be in the list as written.
fn check_allowed(api: &str, cmd_params: &BTreeMap<String, String>) -> Result<(), String> {
    let allowed: Vec<&str> = cmd_params
        .get(ALLOWED_KEY)
        .map(|list| list.split(',').map(str::trim).filter(|u| !u.is_empty()).collect())
        .unwrap_or_default();
    if api.is_empty() || allowed.is_empty() || allowed.contains(&api) {
        return Ok(());
    }
    Err(format!(
        "the SCM provider {api:?} is not allowed; argocd-cmd-params-cm {ALLOWED_KEY} allows: {}",
        allowed.join(", ")
    ))
}

/// The API's base URL from a generator's `api`: `http` or `https`, a host, no credentials, no query.
fn api_base(api: &str) -> Result<Url, String> {
    let url = Url::parse(api.trim()).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("the scheme {:?} is not allowed; use http or https", url.scheme()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        // Not echoed: the URL holds a credential.
        return Err("a URL with credentials is not allowed; put the token in a Secret (tokenRef)".to_string());
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("the URL has no host".to_string());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("the URL must have no query or fragment".to_string());
    }
    Ok(url)
}

/// A provider token: sent as a header, never shown.
#[derive(Clone, Default)]
struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() { "Token(none)" } else { "Token(***)" })
    }
}

/// The token `tokenRef` (`secretName`, `key`) names in `namespace`; none without a `tokenRef`.
async fn token(
    client: &kube::Client,
    namespace: &str,
    fields: &Map<String, Value>,
    cmd_params: &BTreeMap<String, String>,
) -> Result<Token, String> {
    let Some(reference) = fields.get("tokenRef").filter(|v| !v.is_null()) else {
        return Ok(Token::default());
    };
    let name = reference.get("secretName").and_then(Value::as_str).unwrap_or_default();
    let key = reference.get("key").and_then(Value::as_str).unwrap_or_default();
    if name.is_empty() || key.is_empty() {
        return Err("tokenRef needs secretName and key".to_string());
    }
    let secrets: kube::Api<Secret> = kube::Api::namespaced(client.clone(), namespace);
    let secret = match secrets.get_opt(name).await {
        Ok(Some(secret)) => secret,
        Ok(None) => return Err(format!("the Secret {namespace}/{name} does not exist")),
        Err(e) => return Err(format!("reading the Secret {namespace}/{name}: {e}")),
    };
    let strict = cmd_params.get(STRICT_TOKEN_REF_KEY).is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    let labelled = secret.metadata.labels.as_ref().and_then(|l| l.get(SECRET_TYPE_LABEL)).map(String::as_str);
    if strict && labelled != Some("scm-creds") {
        return Err(format!(
            "the Secret {namespace}/{name} is not an SCM credentials Secret (label {SECRET_TYPE_LABEL}: scm-creds), \
             which {STRICT_TOKEN_REF_KEY} requires"
        ));
    }
    let value = secret.data.as_ref().and_then(|d| d.get(key)).map(|b| b.0.clone());
    let Some(value) = value else {
        return Err(format!("the Secret {namespace}/{name} has no key {key:?}"));
    };
    let value = String::from_utf8(value)
        .map_err(|_| format!("the key {key:?} of the Secret {namespace}/{name} is not text"))?;
    let value = value.trim().to_string();
    if value.bytes().any(|b| b.is_ascii_control()) {
        return Err(format!("the key {key:?} of the Secret {namespace}/{name} is not a usable token"));
    }
    Ok(Token(value))
}

/// A client of one Gitea instance's API v1.
#[derive(Debug)]
struct Gitea {
    http: reqwest::Client,
    /// The instance URL as the generator wrote it (without the `/api/v1`).
    base: Url,
    token: Token,
}

impl Gitea {
    fn new(base: Url, token: Token, insecure: bool) -> Result<Gitea, String> {
        // reqwest is built without a bundled provider: use ring, as kube does (a second install is a no-op).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .tls_danger_accept_invalid_certs(insecure)
            .redirect(reqwest::redirect::Policy::custom(|attempt| {
                // The token's header goes to the generator's own origin only.
                let same_origin =
                    attempt.previous().first().is_some_and(|first| first.origin() == attempt.url().origin());
                if same_origin && attempt.previous().len() < 5 { attempt.follow() } else { attempt.stop() }
            }))
            .build()
            .map_err(|e| format!("building the HTTP client: {e}"))?;
        Ok(Gitea { http, base, token })
    }

    /// `<base>/api/v1/<segments…>?<query>`; each segment percent-encoded as one path segment.
    fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        {
            let mut path = url.path_segments_mut().expect("an http(s) URL has a path");
            path.pop_if_empty().extend(["api", "v1"]).extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// GETs `url`; the status and the body (read up to [`MAX_RESPONSE_BYTES`]).
    async fn get(&self, url: &Url) -> Result<(StatusCode, Vec<u8>), String> {
        let mut request = self.http.get(url.clone()).header("Accept", "application/json");
        if !self.token.0.is_empty() {
            request = request.header("Authorization", format!("token {}", self.token.0));
        }
        tracing::debug!(url = %url, "asking the SCM provider");
        let mut response = request
            .send()
            .await
            .map_err(|e| self.mask(format!("GET {url}: {}", crate::clusters::error_chain(&e))))?;
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.mask(format!("GET {url}: {}", crate::clusters::error_chain(&e))))?
        {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(format!("GET {url}: the answer is larger than {MAX_RESPONSE_BYTES} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, body))
    }

    /// GETs a JSON document; a status other than 2xx is an error with Gitea's message.
    async fn get_json(&self, url: &Url) -> Result<Value, String> {
        let (status, body) = self.get(url).await?;
        if !status.is_success() {
            return Err(self.failure(url, status, &body));
        }
        serde_json::from_slice(&body).map_err(|e| format!("GET {url}: not JSON: {e}"))
    }

    /// Every item of a paginated listing, at most [`MAX_PAGES`] pages; `None` when the listing answers 404.
    async fn list(&self, segments: &[&str], query: &[(&str, &str)]) -> Result<Option<Vec<Value>>, String> {
        let mut items = Vec::new();
        let limit = PAGE_SIZE.to_string();
        for page in 1..=MAX_PAGES {
            let page = page.to_string();
            let mut query = query.to_vec();
            query.extend([("page", page.as_str()), ("limit", limit.as_str())]);
            let url = self.url(segments, &query);
            let (status, body) = self.get(&url).await?;
            if status == StatusCode::NOT_FOUND {
                return Ok(None);
            }
            if !status.is_success() {
                return Err(self.failure(&url, status, &body));
            }
            let Value::Array(batch) =
                serde_json::from_slice(&body).map_err(|e| format!("GET {url}: not JSON: {e}"))?
            else {
                return Err(format!("GET {url}: the answer is not a list"));
            };
            let last = batch.len() < PAGE_SIZE;
            items.extend(batch);
            if last {
                return Ok(Some(items));
            }
        }
        Err(format!(
            "{}: more than {MAX_PAGES} pages of {PAGE_SIZE}; refusing to read further",
            self.url(segments, &[])
        ))
    }

    /// Whether `path` exists (a file or a folder) in `owner/repo` at `branch`.
    async fn has_path(&self, owner: &str, repo: &str, branch: &str, path: &str) -> Result<bool, String> {
        let mut segments = vec!["repos", owner, repo, "contents"];
        segments.extend(segments_of(path, "path")?);
        let url = self.url(&segments, &[("ref", branch)]);
        let (status, body) = self.get(&url).await?;
        match status {
            StatusCode::NOT_FOUND => Ok(false),
            s if s.is_success() => Ok(true),
            s => Err(self.failure(&url, s, &body)),
        }
    }

    /// An answer that is not a success, with the message Gitea gave (short, the token masked).
    fn failure(&self, url: &Url, status: StatusCode, body: &[u8]) -> String {
        let message = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(200)]).to_string());
        let message: String = message.chars().take(200).collect();
        let hint = match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => " (check the token in tokenRef)",
            _ => "",
        };
        self.mask(format!("GET {url}: {status}{hint}: {message}"))
    }

    /// `text` with the token masked, should a server have echoed it.
    fn mask(&self, text: String) -> String {
        if self.token.0.len() >= 4 { text.replace(&self.token.0, "***") } else { text }
    }
}

/// A repository or owner name as one URL segment: Gitea's names are letters, digits, `-`, `_` and `.`.
fn name_of<'a>(fields: &'a Map<String, Value>, key: &str) -> Result<&'a str, String> {
    let name = fields.get(key).and_then(Value::as_str).unwrap_or_default();
    if name.is_empty() {
        return Err(format!("{key} is required"));
    }
    check_name(name, key)?;
    Ok(name)
}

fn check_name(name: &str, what: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 255
        && name != "."
        && name != ".."
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if valid { Ok(()) } else { Err(format!("{what} {name:?} is not a valid Gitea name")) }
}

/// A branch or file path as URL segments: no empty, `.` or `..` segment, no control character.
fn segments_of<'a>(path: &'a str, what: &str) -> Result<Vec<&'a str>, String> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let valid = !path.is_empty()
        && path.len() <= 4096
        && !path.chars().any(char::is_control)
        && segments.iter().all(|s| !s.is_empty() && *s != "." && *s != "..");
    if valid { Ok(segments) } else { Err(format!("the {what} {path:?} is not a valid path")) }
}

fn text(value: &Value, pointer: &str) -> String {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or_default().to_string()
}

/// The open pull requests of the `gitea` generator's `owner/repo` that carry all of its `labels`.
async fn pull_requests(
    gitea: &Gitea,
    kind: &'static str,
    spec: &Value,
    fields: &Map<String, Value>,
    mode: TemplateMode,
) -> Result<Vec<ParamSet>, Error> {
    let owner = name_of(fields, "owner").map_err(|m| invalid(kind, "gitea", "owner", m))?;
    let repo = name_of(fields, "repo").map_err(|m| invalid(kind, "gitea", "repo", m))?;
    let wanted: Vec<&str> = match fields.get("labels") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(labels)) => labels.iter().filter_map(Value::as_str).collect(),
        Some(_) => return Err(invalid(kind, "gitea", "labels", "must be a list of label names".to_string())),
    };
    let listed = gitea
        .list(&["repos", owner, repo, "pulls"], &[("state", "open")])
        .await
        .map_err(|m| Error::invalid(kind, "gitea", m))?;
    let Some(listed) = listed else {
        if spec.get("continueOnRepoNotFoundError") == Some(&Value::Bool(true)) {
            tracing::warn!(
                owner,
                repo,
                "the pull request generator's repository was not found; no pull requests"
            );
            return Ok(Vec::new());
        }
        return Err(Error::invalid(
            kind,
            "gitea",
            format!("the repository {owner}/{repo} was not found at {}", gitea.base),
        ));
    };
    let mut pulls = Vec::with_capacity(listed.len());
    for item in &listed {
        let Some(number) = item.get("number").and_then(Value::as_u64) else {
            return Err(Error::invalid(kind, "gitea", "a pull request without a number in Gitea's answer"));
        };
        let labels: Vec<String> = item
            .get("labels")
            .and_then(Value::as_array)
            .map(|labels| labels.iter().filter_map(|l| l.get("name")?.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        if !wanted.iter().all(|w| labels.iter().any(|l| l == w)) {
            continue;
        }
        pulls.push(PullRequest {
            number,
            title: text(item, "/title"),
            branch: text(item, "/head/ref"),
            target_branch: text(item, "/base/ref"),
            head_sha: text(item, "/head/sha"),
            labels,
            author: text(item, "/user/login"),
        });
    }
    pull_request::generate(spec, &pulls, mode)
}

/// The repositories (and branches) of the `gitea` generator's `owner`, filtered, as parameter sets.
async fn repositories(
    gitea: &Gitea,
    kind: &'static str,
    spec: &Value,
    fields: &Map<String, Value>,
    mode: TemplateMode,
) -> Result<Vec<ParamSet>, Error> {
    let fail = |m: String| Error::invalid(kind, "gitea", m);
    let owner = name_of(fields, "owner").map_err(|m| invalid(kind, "gitea", "owner", m))?;
    let all_branches = fields.get("allBranches") == Some(&Value::Bool(true));
    let exclude_archived = fields.get("excludeArchivedRepos") == Some(&Value::Bool(true));
    let protocol = spec.get("cloneProtocol").and_then(Value::as_str).unwrap_or_default();
    if !matches!(protocol, "" | "ssh" | "https") {
        return Err(Error::invalid(
            kind,
            "cloneProtocol",
            format!("unknown clone protocol {protocol:?} for Gitea; use ssh or https"),
        ));
    }
    let filters = Filters::of(spec)?;
    // An organisation's repositories, or a user's when the owner is no organisation.
    let listed = match gitea.list(&["orgs", owner, "repos"], &[]).await.map_err(fail)? {
        Some(listed) => listed,
        None => gitea
            .list(&["users", owner, "repos"], &[])
            .await
            .map_err(fail)?
            .ok_or_else(|| fail(format!("no organisation or user {owner:?} at {}", gitea.base)))?,
    };
    let mut repos: Vec<Repository> = Vec::new();
    for item in &listed {
        if exclude_archived && item.get("archived") == Some(&Value::Bool(true)) {
            continue;
        }
        if item.get("empty") == Some(&Value::Bool(true)) {
            continue;
        }
        let name = text(item, "/name");
        check_name(&name, "repository").map_err(fail)?;
        let labels: Vec<String> = gitea
            .list(&["repos", owner, &name, "labels"], &[])
            .await
            .map_err(fail)?
            .unwrap_or_default()
            .iter()
            .filter_map(|l| l.get("name")?.as_str().map(str::to_string))
            .collect();
        let repo = Repository {
            organization: owner.to_string(),
            repository: name.clone(),
            repository_id: item.get("id").and_then(Value::as_u64).unwrap_or_default(),
            url: text(item, if protocol == "https" { "/html_url" } else { "/ssh_url" }),
            branch: text(item, "/default_branch"),
            sha: String::new(),
            labels,
        };
        if !filters.repository_matches(&repo) {
            continue;
        }
        if all_branches {
            let branches = gitea
                .list(&["repos", owner, &name, "branches"], &[])
                .await
                .map_err(fail)?
                .unwrap_or_default();
            for branch in &branches {
                repos.push(Repository {
                    branch: text(branch, "/name"),
                    sha: text(branch, "/commit/id"),
                    ..repo.clone()
                });
            }
        } else {
            let mut segments = vec!["repos", owner, name.as_str(), "branches"];
            segments.extend(segments_of(&repo.branch, "default branch").map_err(fail)?);
            let branch = gitea
                .get_json(&gitea.url(&segments, &[]))
                .await
                .map_err(|m| fail(format!("the default branch {:?} of {owner}/{name}: {m}", repo.branch)))?;
            repos.push(Repository { sha: text(&branch, "/commit/id"), ..repo });
        }
        if repos.len() > berth_appset::MAX_PARAM_SETS {
            return Err(Error::TooManyParamSets { generator: kind, max: berth_appset::MAX_PARAM_SETS });
        }
    }
    // The paths the filters ask about, asked once each; the pure generator reads the answers.
    let mut answers: HashMap<(String, String, String), bool> = HashMap::new();
    for repo in &repos {
        for path in filters.paths_to_check(repo) {
            let key = (repo.repository.clone(), repo.branch.clone(), path.clone());
            if answers.contains_key(&key) {
                continue;
            }
            if answers.len() >= MAX_PATH_CHECKS {
                return Err(fail(format!(
                    "the filters ask about more than {MAX_PATH_CHECKS} paths; narrow them"
                )));
            }
            let found = gitea.has_path(owner, &repo.repository, &repo.branch, &path).await.map_err(fail)?;
            answers.insert(key, found);
        }
    }
    let has_path = |repo: &Repository, path: &str| {
        answers.get(&(repo.repository.clone(), repo.branch.clone(), path.to_string())).copied().ok_or_else(
            || fail(format!("{}@{}: the path {path:?} was not asked", repo.repository, repo.branch)),
        )
    };
    scm_provider::generate(spec, &repos, has_path, mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn scm_providers_are_enabled_unless_the_setting_says_false() {
        assert!(enabled(&params(&[])));
        assert!(enabled(&params(&[(ENABLE_KEY, "yes")])));
        assert!(!enabled(&params(&[(ENABLE_KEY, "FALSE")])));
    }

    #[test]
    fn an_api_url_must_be_in_the_allowed_list_when_there_is_one() {
        let list = params(&[(ALLOWED_KEY, "https://gitea.example/, https://git.example ")]);
        assert!(check_allowed("https://gitea.example/", &list).is_ok());
        assert!(check_allowed("https://git.example", &list).is_ok());
        assert!(check_allowed("", &list).is_ok(), "an unset api is not checked");
        assert!(check_allowed("https://anything", &params(&[])).is_ok());
        let err = check_allowed("https://gitea.example", &list).unwrap_err();
        assert!(err.contains("\"https://gitea.example\" is not allowed"), "{err}");
    }

    #[test]
    fn only_http_and_https_api_urls_without_credentials_are_accepted() {
        assert!(api_base("https://gitea.example/sub/").is_ok());
        for bad in [
            "file:///etc/passwd",
            "ftp://x/",
            "gopher://x",
            "not a url",
            "http://user:pw@host/",
            "https://h/?a=b",
        ] {
            let err = api_base(bad).unwrap_err();
            assert!(!err.contains("pw@"), "{err}");
        }
    }

    #[test]
    fn names_and_paths_cannot_leave_their_url_segment() {
        assert!(check_name("web-app_1.x", "repo").is_ok());
        for bad in ["..", ".", "a/b", "a?b", "a%2f", ""] {
            assert!(check_name(bad, "repo").is_err(), "{bad}");
        }
        assert_eq!(segments_of("a/b/", "path").unwrap_err(), "the path \"a/b/\" is not a valid path");
        assert_eq!(segments_of("feature/x", "branch").unwrap(), ["feature", "x"]);
        assert!(segments_of("../x", "path").is_err());
        assert!(segments_of("a\nb", "path").is_err());
    }

    #[test]
    fn urls_put_each_segment_in_one_path_segment() {
        let gitea = Gitea::new(Url::parse("http://h:3000/sub/").unwrap(), Token::default(), false).unwrap();
        let url = gitea.url(&["repos", "o", "r", "contents", "a b#c"], &[("ref", "feat/x&y")]);
        assert_eq!(url.as_str(), "http://h:3000/sub/api/v1/repos/o/r/contents/a%20b%23c?ref=feat%2Fx%26y");
    }

    #[test]
    fn a_token_never_shows_in_debug_output_or_masked_text() {
        let token = Token("s3cret-token-value".to_string());
        assert_eq!(format!("{token:?}"), "Token(***)");
        let gitea = Gitea::new(Url::parse("http://h/").unwrap(), token, false).unwrap();
        assert!(!format!("{gitea:?}").contains("s3cret"));
        assert_eq!(gitea.mask("echo: token s3cret-token-value".to_string()), "echo: token ***");
    }
}
