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
//! followed only on the same origin. A `tokenRef` never reads berth's or Argo CD's own Secrets, nor
//! credentials of another kind ([`check_token_secret`]), so a set's author cannot send them to a URL of
//! their choosing. An answer is read up to [`MAX_RESPONSE_BYTES`] and all answers of one generation up to
//! [`MAX_TOTAL_BYTES`], counted as they arrive; listings are turned into the generators' types page by
//! page and stop at [`MAX_PAGES`] pages; each request has a timeout and the whole generation
//! [`GENERATION_TIMEOUT`]. An error says the status and the URL, and of the body only Gitea's short JSON
//! `message`: a set pointed at an internal address must not read its answers through its conditions.
//! The token is sent as a header only; it never appears in an error, a log line or a `Debug` output (an
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
use reqwest::{Response, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// The largest answer read from a provider.
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;
/// The most bytes all answers of one generation (one [`service_params`] call) may bring in all.
pub const MAX_TOTAL_BYTES: usize = 32 * 1024 * 1024;
/// The most of an error answer read, for Gitea's `message`.
const MAX_ERROR_BODY_BYTES: usize = 8 * 1024;
/// The longest provider message an error repeats.
const MAX_MESSAGE_CHARS: usize = 200;
/// The most pages one listing reads (of [`PAGE_SIZE`] items).
pub const MAX_PAGES: usize = 100;
/// Items asked per page (Gitea's default `MAX_RESPONSE_ITEMS`).
const PAGE_SIZE: usize = 50;
/// The most path checks (`pathsExist`, `pathsDoNotExist`) one generation makes.
const MAX_PATH_CHECKS: usize = 2_000;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest one [`service_params`] call may take in all (its Secret read and every request).
pub const GENERATION_TIMEOUT: Duration = Duration::from_secs(180);

const ENABLE_KEY: &str = "applicationsetcontroller.enable.scm.providers";
const ALLOWED_KEY: &str = "applicationsetcontroller.allowed.scm.providers";
const STRICT_TOKEN_REF_KEY: &str = "applicationsetcontroller.enable.tokenref.strict.mode";
const SECRET_TYPE_LABEL: &str = "argocd.argoproj.io/secret-type";
/// The label value of Argo CD's SCM credentials Secrets.
const SCM_CREDS: &str = "scm-creds";
/// Secrets berth and Argo CD own in the control namespace: never a `tokenRef`, whatever their labels.
const OWN_SECRETS: [&str; 7] = [
    "argocd-secret",
    "argocd-initial-admin-secret",
    "argocd-server-tls",
    "argocd-repo-server-tls",
    "argocd-dex-server-tls",
    "argocd-notifications-secret",
    "argocd-redis",
];
/// Secret types that hold credentials of another kind than a provider token.
const OTHER_CREDENTIAL_TYPES: [&str; 6] = [
    "kubernetes.io/service-account-token",
    "bootstrap.kubernetes.io/token",
    "kubernetes.io/tls",
    "kubernetes.io/ssh-auth",
    "kubernetes.io/dockercfg",
    "kubernetes.io/dockerconfigjson",
];

/// The parameter sets of a `pullRequest` or `scmProvider` generator (`kind`) whose fields are `spec`,
/// for a set in `namespace` (where `tokenRef` Secrets are read), with argocd-cmd-params-cm's data as
/// `cmd_params`, within [`GENERATION_TIMEOUT`]. Any other kind is an unsupported-generator error.
pub async fn service_params(
    client: &kube::Client,
    namespace: &str,
    kind: &'static str,
    spec: &Value,
    mode: TemplateMode,
    cmd_params: &BTreeMap<String, String>,
) -> Result<Vec<ParamSet>, Error> {
    let generation = generate(client, namespace, kind, spec, mode, cmd_params);
    tokio::time::timeout(GENERATION_TIMEOUT, generation).await.map_err(|_| {
        Error::invalid(
            kind,
            kind,
            format!("the generation took longer than its limit of {GENERATION_TIMEOUT:?} in all"),
        )
    })?
}

/// [`service_params`] without its deadline.
async fn generate(
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
    match kind {
        "pullRequest" => pull_requests(&gitea, kind, spec, fields, mode).await,
        _ => repositories(&gitea, kind, spec, fields, mode).await,
    }
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
    berth_api::names::check_subdomain(name).map_err(|e| format!("secretName is not a Secret name: {e}"))?;
    let secrets: kube::Api<Secret> = kube::Api::namespaced(client.clone(), namespace);
    let secret = match secrets.get_opt(name).await {
        Ok(Some(secret)) => secret,
        Ok(None) => return Err(format!("the Secret {namespace}/{name} does not exist")),
        Err(e) => return Err(format!("reading the Secret {namespace}/{name}: {e}")),
    };
    let strict = cmd_params.get(STRICT_TOKEN_REF_KEY).is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    check_token_secret(namespace, name, secret.type_.as_deref(), secret.metadata.labels.as_ref(), strict)?;
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

/// Whether a `tokenRef` may read the Secret `namespace/name` of type `secret_type` with
/// `labels`: never one berth or Argo CD own ([`OWN_SECRETS`]), one of a type that holds other
/// credentials ([`OTHER_CREDENTIAL_TYPES`]) or one Argo CD labels as another kind of credentials
/// (repository, repo-creds, cluster …); under `strict` only one labelled `scm-creds`. The error names the
/// Secret, never what it holds.
fn check_token_secret(
    namespace: &str,
    name: &str,
    secret_type: Option<&str>,
    labels: Option<&BTreeMap<String, String>>,
    strict: bool,
) -> Result<(), String> {
    let refused = "and never serves as a tokenRef; put the token in a Secret of its own";
    let own = OWN_SECRETS.contains(&name);
    let name = format!("{namespace}/{name}");
    if own {
        return Err(format!("the Secret {name} is berth's and Argo CD's own {refused}"));
    }
    if let Some(secret_type) = secret_type.filter(|t| OTHER_CREDENTIAL_TYPES.contains(t)) {
        return Err(format!("the Secret {name} is of type {secret_type} {refused}"));
    }
    match labels.and_then(|l| l.get(SECRET_TYPE_LABEL)).map(String::as_str) {
        Some(SCM_CREDS) => Ok(()),
        Some(other) => Err(format!(
            "the Secret {name} holds Argo CD credentials of another kind ({SECRET_TYPE_LABEL}: {other:?}) {refused}"
        )),
        None if strict => Err(format!(
            "the Secret {name} is not an SCM credentials Secret (label {SECRET_TYPE_LABEL}: {SCM_CREDS}), \
             which {STRICT_TOKEN_REF_KEY} requires"
        )),
        None => Ok(()),
    }
}

/// A client of one Gitea instance's API v1, for one generation: its answers share [`MAX_TOTAL_BYTES`].
#[derive(Debug)]
struct Gitea {
    http: reqwest::Client,
    /// The instance URL as the generator wrote it (without the `/api/v1`).
    base: Url,
    token: Token,
    /// The bytes of all answers read so far.
    received: AtomicUsize,
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
        Ok(Gitea { http, base, token, received: AtomicUsize::new(0) })
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

    /// GETs `url`: the answer, its body not read yet.
    async fn send(&self, url: &Url) -> Result<Response, String> {
        let mut request = self.http.get(url.clone()).header("Accept", "application/json");
        if !self.token.0.is_empty() {
            request = request.header("Authorization", format!("token {}", self.token.0));
        }
        tracing::debug!(url = %url, "asking the SCM provider");
        request
            .send()
            .await
            .map_err(|e| self.mask(format!("GET {url}: {}", crate::clusters::error_chain(&e))))
    }

    /// The first `max` bytes of `response`'s body, and whether that is all of it; every byte that arrives
    /// counts against [`MAX_TOTAL_BYTES`].
    async fn body(&self, url: &Url, mut response: Response, max: usize) -> Result<(Vec<u8>, bool), String> {
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.mask(format!("GET {url}: {}", crate::clusters::error_chain(&e))))?
        {
            let received = self.received.fetch_add(chunk.len(), Ordering::Relaxed) + chunk.len();
            if received > MAX_TOTAL_BYTES {
                return Err(format!(
                    "GET {url}: the provider's answers to this generator came to more than their limit of \
                     {} MiB in all; narrow the generator",
                    MAX_TOTAL_BYTES >> 20
                ));
            }
            if body.len() + chunk.len() > max {
                body.extend_from_slice(&chunk[..max - body.len()]);
                return Ok((body, false));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((body, true))
    }

    /// GETs `url` and reads a successful answer whole, up to [`MAX_RESPONSE_BYTES`]; `None` on 404 when
    /// `not_found_is_none`; any other status is an error.
    async fn get(&self, url: &Url, not_found_is_none: bool) -> Result<Option<Vec<u8>>, String> {
        let response = self.send(url).await?;
        let status = response.status();
        if status == StatusCode::NOT_FOUND && not_found_is_none {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(self.failure(url, response).await);
        }
        let (body, whole) = self.body(url, response, MAX_RESPONSE_BYTES).await?;
        if !whole {
            return Err(format!(
                "GET {url}: the answer is larger than its limit of {} MiB",
                MAX_RESPONSE_BYTES >> 20
            ));
        }
        Ok(Some(body))
    }

    /// GETs a JSON document of type `T`; a status other than 2xx is an error.
    async fn get_json<T: DeserializeOwned>(&self, url: &Url) -> Result<T, String> {
        let body = self.get(url, false).await?.unwrap_or_default();
        serde_json::from_slice(&body).map_err(|e| not_gitea_json(url, &e))
    }

    /// Every item of a paginated listing of `T`, made into a `U` (or dropped) by `keep` page by page, at
    /// most [`MAX_PAGES`] pages; `None` when the listing answers 404.
    async fn list<T: DeserializeOwned, U>(
        &self,
        segments: &[&str],
        query: &[(&str, &str)],
        mut keep: impl FnMut(T) -> Result<Option<U>, String>,
    ) -> Result<Option<Vec<U>>, String> {
        let mut items = Vec::new();
        let limit = PAGE_SIZE.to_string();
        for page in 1..=MAX_PAGES {
            let page = page.to_string();
            let mut query = query.to_vec();
            query.extend([("page", page.as_str()), ("limit", limit.as_str())]);
            let url = self.url(segments, &query);
            let Some(body) = self.get(&url, true).await? else {
                return Ok(None);
            };
            let batch: Vec<T> = serde_json::from_slice(&body).map_err(|e| not_gitea_json(&url, &e))?;
            drop(body);
            let last = batch.len() < PAGE_SIZE;
            for item in batch {
                items.extend(keep(item)?);
            }
            if last {
                return Ok(Some(items));
            }
        }
        Err(format!(
            "{}: more than {MAX_PAGES} pages of {PAGE_SIZE}; refusing to read further",
            self.url(segments, &[])
        ))
    }

    /// Whether `path` exists (a file or a folder) in `owner/repo` at `branch`; the listing is not read.
    async fn has_path(&self, owner: &str, repo: &str, branch: &str, path: &str) -> Result<bool, String> {
        let mut segments = vec!["repos", owner, repo, "contents"];
        segments.extend(segments_of(path, "path")?);
        let url = self.url(&segments, &[("ref", branch)]);
        let response = self.send(&url).await?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(false),
            s if s.is_success() => Ok(true),
            _ => Err(self.failure(&url, response).await),
        }
    }

    /// An answer that is not a success: its status and URL, and Gitea's `message` when the body is JSON
    /// with a short one (the token masked). Nothing else of the body: the URL may be an internal service's.
    async fn failure(&self, url: &Url, response: Response) -> String {
        let status = response.status();
        let message = match self.body(url, response, MAX_ERROR_BODY_BYTES).await {
            Ok((body, true)) => gitea_message(&body).map(|m| format!(": {m}")).unwrap_or_default(),
            Ok((_, false)) => String::new(),
            Err(e) => return e,
        };
        let hint = match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => " (check the token in tokenRef)",
            _ => "",
        };
        self.mask(format!("GET {url}: {status}{hint}{message}"))
    }

    /// `text` with the token masked, should a server have echoed it.
    fn mask(&self, text: String) -> String {
        if self.token.0.len() >= 4 { text.replace(&self.token.0, "***") } else { text }
    }
}

/// Gitea's error `message` from an error answer's `body`: only a JSON object's string `message` of at
/// most [`MAX_MESSAGE_CHARS`] printable characters.
fn gitea_message(body: &[u8]) -> Option<String> {
    let answer: Map<String, Value> = serde_json::from_slice(body).ok()?;
    let message = answer.get("message")?.as_str()?.trim();
    let short = !message.is_empty() && message.chars().count() <= MAX_MESSAGE_CHARS;
    (short && !message.chars().any(char::is_control)).then(|| message.to_string())
}

/// An answer that does not parse as the type asked: where, never what (serde's message quotes values).
fn not_gitea_json(url: &Url, error: &serde_json::Error) -> String {
    let what = match error.classify() {
        serde_json::error::Category::Data => "JSON of another shape than Gitea's",
        _ => "not JSON",
    };
    format!("GET {url}: the answer is {what} (line {}, column {})", error.line(), error.column())
}

/// The fields berth reads of Gitea's answers; the others are skipped unread.
mod answers {
    use serde::Deserialize;

    /// A pull request (`/repos/{owner}/{repo}/pulls`).
    #[derive(Debug, Deserialize)]
    pub struct Pull {
        pub number: Option<u64>,
        pub title: Option<String>,
        pub head: Option<Ref>,
        pub base: Option<Ref>,
        pub labels: Option<Vec<Named>>,
        pub user: Option<User>,
    }

    /// A pull request's head or base.
    #[derive(Debug, Deserialize)]
    pub struct Ref {
        #[serde(rename = "ref")]
        pub name: Option<String>,
        pub sha: Option<String>,
    }

    #[derive(Debug, Deserialize)]
    pub struct User {
        pub login: Option<String>,
    }

    /// A label, or anything else known by its name.
    #[derive(Debug, Deserialize)]
    pub struct Named {
        pub name: Option<String>,
    }

    /// A repository (`/orgs/{owner}/repos`, `/users/{owner}/repos`).
    #[derive(Debug, Deserialize)]
    pub struct Repo {
        pub id: Option<u64>,
        pub name: Option<String>,
        pub html_url: Option<String>,
        pub ssh_url: Option<String>,
        pub default_branch: Option<String>,
        pub archived: Option<bool>,
        pub empty: Option<bool>,
    }

    /// A branch (`/repos/{owner}/{repo}/branches[/{branch}]`).
    #[derive(Debug, Deserialize)]
    pub struct Branch {
        pub name: Option<String>,
        pub commit: Option<Commit>,
    }

    #[derive(Debug, Deserialize)]
    pub struct Commit {
        pub id: Option<String>,
    }

    /// The names of `labels`, those without one left out.
    pub fn names(labels: Option<Vec<Named>>) -> Vec<String> {
        labels.unwrap_or_default().into_iter().filter_map(|l| l.name).collect()
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
    // Each pull request carrying the labels, as the pages arrive.
    let keep = |pull: answers::Pull| -> Result<Option<PullRequest>, String> {
        let number = pull.number.ok_or("a pull request without a number in Gitea's answer")?;
        let labels = answers::names(pull.labels);
        if !wanted.iter().all(|w| labels.iter().any(|l| l == w)) {
            return Ok(None);
        }
        let (head, base) = (pull.head, pull.base);
        Ok(Some(PullRequest {
            number,
            title: pull.title.unwrap_or_default(),
            branch: head.as_ref().and_then(|h| h.name.clone()).unwrap_or_default(),
            target_branch: base.and_then(|b| b.name).unwrap_or_default(),
            head_sha: head.and_then(|h| h.sha).unwrap_or_default(),
            labels,
            author: pull.user.and_then(|u| u.login).unwrap_or_default(),
        }))
    };
    let listed = gitea
        .list(&["repos", owner, repo, "pulls"], &[("state", "open")], keep)
        .await
        .map_err(|m| Error::invalid(kind, "gitea", m))?;
    let Some(pulls) = listed else {
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
    // An organisation's repositories, or a user's when the owner is no organisation; each kept as a
    // Repository (its labels and commit still to read) as the pages arrive.
    let keep = |item: answers::Repo| -> Result<Option<Repository>, String> {
        if (exclude_archived && item.archived == Some(true)) || item.empty == Some(true) {
            return Ok(None);
        }
        let name = item.name.unwrap_or_default();
        // Not echoed: the answer is the provider's, and the URL may be an internal service's.
        check_name(&name, "repository").map_err(|_| "a repository name in the answer is not a Gitea name")?;
        Ok(Some(Repository {
            organization: owner.to_string(),
            repository: name,
            repository_id: item.id.unwrap_or_default(),
            url: (if protocol == "https" { item.html_url } else { item.ssh_url }).unwrap_or_default(),
            branch: item.default_branch.unwrap_or_default(),
            sha: String::new(),
            labels: Vec::new(),
        }))
    };
    let listed = match gitea.list(&["orgs", owner, "repos"], &[], keep).await.map_err(fail)? {
        Some(listed) => listed,
        None => gitea
            .list(&["users", owner, "repos"], &[], keep)
            .await
            .map_err(fail)?
            .ok_or_else(|| fail(format!("no organisation or user {owner:?} at {}", gitea.base)))?,
    };
    let mut repos: Vec<Repository> = Vec::new();
    for mut repo in listed {
        let name = repo.repository.clone();
        let labels = gitea
            .list(&["repos", owner, &name, "labels"], &[], |label: answers::Named| Ok(label.name))
            .await
            .map_err(fail)?;
        repo.labels = labels.unwrap_or_default();
        if !filters.repository_matches(&repo) {
            continue;
        }
        if all_branches {
            let branches = gitea
                .list(&["repos", owner, &name, "branches"], &[], |branch: answers::Branch| {
                    Ok(Some(Repository {
                        branch: branch.name.unwrap_or_default(),
                        sha: branch.commit.and_then(|c| c.id).unwrap_or_default(),
                        ..repo.clone()
                    }))
                })
                .await
                .map_err(fail)?;
            repos.extend(branches.unwrap_or_default());
        } else {
            let mut segments = vec!["repos", owner, name.as_str(), "branches"];
            // Not echoed: the branch name is the provider's answer.
            let branch = segments_of(&repo.branch, "default branch").map_err(|_| {
                fail(format!("the default branch of {owner}/{name} in the answer is not a valid branch name"))
            })?;
            segments.extend(branch);
            let branch: answers::Branch = gitea
                .get_json(&gitea.url(&segments, &[]))
                .await
                .map_err(|m| fail(format!("the default branch of {owner}/{name}: {m}")))?;
            repos.push(Repository { sha: branch.commit.and_then(|c| c.id).unwrap_or_default(), ..repo });
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

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        params(pairs)
    }

    #[test]
    fn a_token_ref_never_reads_berths_or_argo_cds_own_secrets_even_labelled_scm_creds() {
        let scm = labels(&[(SECRET_TYPE_LABEL, SCM_CREDS)]);
        for own in ["argocd-secret", "argocd-initial-admin-secret", "argocd-server-tls"] {
            for strict in [false, true] {
                let err = check_token_secret("argocd", own, Some("Opaque"), Some(&scm), strict).unwrap_err();
                assert!(err.starts_with(&format!("the Secret argocd/{own} is berth's")), "{err}");
            }
        }
    }

    #[test]
    fn a_token_ref_never_reads_a_service_account_token_or_other_credential_types() {
        for kind in
            ["kubernetes.io/service-account-token", "kubernetes.io/tls", "kubernetes.io/dockerconfigjson"]
        {
            let err = check_token_secret("argocd", "t", Some(kind), None, false).unwrap_err();
            assert!(err.contains(&format!("argocd/t is of type {kind}")), "{err}");
        }
    }

    #[test]
    fn a_token_ref_never_reads_argo_cd_credentials_of_another_kind() {
        for kind in ["repository", "repo-creds", "cluster", ""] {
            let label = labels(&[(SECRET_TYPE_LABEL, kind)]);
            let err =
                check_token_secret("argocd", "repo-1", Some("Opaque"), Some(&label), false).unwrap_err();
            assert!(err.contains(&format!("({SECRET_TYPE_LABEL}: {kind:?})")), "{err}");
        }
    }

    #[test]
    fn strict_mode_reads_only_scm_creds_secrets_and_otherwise_unlabelled_ones_serve() {
        let scm = labels(&[(SECRET_TYPE_LABEL, SCM_CREDS), ("team", "web")]);
        let other = labels(&[("team", "web")]);
        assert!(check_token_secret("argocd", "t", Some("Opaque"), Some(&scm), true).is_ok());
        assert!(check_token_secret("argocd", "t", None, Some(&other), false).is_ok());
        assert!(check_token_secret("argocd", "t", None, None, false).is_ok());
        let err = check_token_secret("argocd", "t", None, Some(&other), true).unwrap_err();
        assert!(err.contains(STRICT_TOKEN_REF_KEY), "{err}");
    }

    #[test]
    fn an_error_answer_gives_only_a_short_json_message() {
        assert_eq!(
            gitea_message(br#"{"message":"token is required","url":"x"}"#).as_deref(),
            Some("token is required")
        );
        let long = format!(r#"{{"message":"{}"}}"#, "a".repeat(MAX_MESSAGE_CHARS + 1));
        for body in [
            b"internal secret page".as_slice(),
            br#"{"error":"secret"}"#,
            br#"{"message":{"secret":"x"}}"#,
            br#"{"message":"line\nbreak"}"#,
            br#"["message"]"#,
            long.as_bytes(),
        ] {
            assert_eq!(gitea_message(body), None, "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn an_answer_of_another_shape_is_reported_without_its_values() {
        let url = Url::parse("http://h/api/v1/repos/o/r/pulls").unwrap();
        let error =
            serde_json::from_slice::<Vec<answers::Pull>>(br#"[{"number":"hidden-value"}]"#).unwrap_err();
        let text = not_gitea_json(&url, &error);
        assert_eq!(
            text,
            "GET http://h/api/v1/repos/o/r/pulls: the answer is JSON of another shape than Gitea's (line 1, column 25)"
        );
        let error = serde_json::from_slice::<Vec<answers::Pull>>(b"hidden <html>").unwrap_err();
        assert!(!not_gitea_json(&url, &error).contains("hidden"));
    }

    #[test]
    fn listings_keep_only_the_fields_berth_reads() {
        let page = br#"[{"id":7,"name":"web","html_url":"h","ssh_url":"s","default_branch":"main",
            "archived":false,"empty":false,"owner":{"login":"acme","avatar_url":"x"},"description":"..."}]"#;
        let repos: Vec<answers::Repo> = serde_json::from_slice(page).unwrap();
        assert_eq!((repos[0].id, repos[0].name.as_deref()), (Some(7), Some("web")));
        let pull: answers::Pull = serde_json::from_slice(
            br#"{"number":3,"title":"t","head":{"ref":"feat","sha":"abc"},"labels":[{"name":"preview"},{"id":1}],"user":null}"#,
        )
        .unwrap();
        assert_eq!(answers::names(pull.labels), ["preview"]);
        assert_eq!(pull.head.and_then(|h| h.name).as_deref(), Some("feat"));
    }

    /// A local HTTP server answering each request with `answer(path and query)` as (status, body), one
    /// connection at a time; its URL.
    fn serve(answer: impl Fn(&str) -> (u16, Vec<u8>) + Send + 'static) -> Url {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                let _ = reader.read_line(&mut request_line);
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let target = request_line.split(' ').nth(1).unwrap_or_default();
                let (status, body) = answer(target);
                let head = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(&body));
            }
        });
        url
    }

    #[tokio::test]
    async fn an_error_answer_shows_its_status_and_url_and_never_its_body() {
        let base = serve(|target| match target {
            t if t.starts_with("/api/v1/plain") => (500, b"internal-only: db password hunter2".to_vec()),
            t if t.starts_with("/api/v1/json") => {
                (403, br#"{"message":"token is required","detail":"internal-only"}"#.to_vec())
            }
            _ => (200, br#"[{"name":"internal-only"}]"#.to_vec()),
        });
        let gitea = Gitea::new(base.clone(), Token::default(), false).unwrap();
        let err = gitea.list(&["plain"], &[], |l: answers::Named| Ok(l.name)).await.unwrap_err();
        assert_eq!(err, format!("GET {base}api/v1/plain?page=1&limit=50: 500 Internal Server Error"));
        let err = gitea.list(&["json"], &[], |l: answers::Named| Ok(l.name)).await.unwrap_err();
        assert!(err.ends_with(": 403 Forbidden (check the token in tokenRef): token is required"), "{err}");
        assert!(!err.contains("internal-only"), "{err}");
        let err = gitea.get_json::<answers::Branch>(&gitea.url(&["plain"], &[])).await.unwrap_err();
        assert!(!err.contains("internal-only") && err.contains("500"), "{err}");
        let err = gitea.get_json::<Vec<u64>>(&gitea.url(&["listing"], &[])).await.unwrap_err();
        assert!(err.contains("another shape than Gitea's") && !err.contains("internal-only"), "{err}");
    }

    #[tokio::test]
    async fn all_answers_of_one_generation_share_one_byte_budget() {
        // Pages of about 1 MiB: a listing of 20 pages fits, a second one in the same generation does not.
        let item = format!(r#"{{"name":"{}"}}"#, "x".repeat(20_000));
        let page = format!("[{}]", vec![item; PAGE_SIZE].join(",")).into_bytes();
        let base = serve(move |target| {
            let number: usize =
                target.split("page=").nth(1).and_then(|p| p.split('&').next()?.parse().ok()).unwrap();
            (200, if number <= 20 { page.clone() } else { b"[]".to_vec() })
        });
        let gitea = Gitea::new(base, Token::default(), false).unwrap();
        let drop_all = |_: answers::Named| Ok(None::<()>);
        assert_eq!(gitea.list(&["first"], &[], drop_all).await, Ok(Some(Vec::new())));
        let err = gitea.list(&["second"], &[], drop_all).await.unwrap_err();
        assert!(err.contains("more than their limit of 32 MiB in all"), "{err}");
        let fresh = Gitea::new(gitea.base.clone(), Token::default(), false).unwrap();
        assert!(fresh.list(&["second"], &[], drop_all).await.is_ok(), "the budget is one generation's");
    }
}
