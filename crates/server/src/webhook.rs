//! Git host webhooks: check a push notification and find the Applications it should refresh.
//!
//! Two pure steps, with no HTTP server here (the `POST /api/webhook` route calls them):
//! [`parse`] detects the provider from the headers, checks the signature or token against
//! `argocd-secret` ([`WebhookSecrets`]) and reads the push into a [`PushEvent`];
//! [`affected_apps`] names the Applications whose repository, revision and paths the push touches.
//!
//! As in Argo CD: a provider with no secret configured is accepted unverified; only push events
//! refresh anything (others are [`WebhookError::Ignored`], answered 200); payloads above
//! `webhook.maxPayloadSizeMB` (default 50 MB) are refused.
//!
//! ```
//! use berth_server::webhook::{self, WebhookSecrets};
//! use std::collections::BTreeMap;
//!
//! let mut headers = axum::http::HeaderMap::new();
//! headers.insert("X-GitHub-Event", "push".parse().unwrap());
//! let body = br#"{"ref": "refs/heads/main", "after": "5e1d4c1",
//!     "repository": {"clone_url": "https://github.com/acme/deploy.git"}}"#;
//! let secrets = WebhookSecrets::from_secret_data(&BTreeMap::new());
//! let event = webhook::parse(&headers, body, &secrets, webhook::DEFAULT_MAX_PAYLOAD_BYTES).unwrap();
//!
//! let app: berth_api::Application = serde_json::from_value(serde_json::json!({
//!     "metadata": { "name": "web" },
//!     "spec": { "destination": {}, "source": {
//!         "repoURL": "git@github.com:acme/deploy", "path": "apps/web", "targetRevision": "main" } }
//! })).unwrap();
//! let affected = webhook::affected_apps(&event, [&app]);
//! assert_eq!(affected[0].metadata.name.as_deref(), Some("web"));
//! ```

use std::collections::BTreeMap;
use std::fmt;

use axum::http::{HeaderMap, StatusCode};
use berth_api::Application;
use berth_api::application::ApplicationSource;
use berth_repo::paths::WatchedPaths;
use berth_repo::url;
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use sha2::Sha256;

/// Payload limit when argocd-cm sets no `webhook.maxPayloadSizeMB` (Argo CD's default, 50 MB).
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 50 * 1024 * 1024;

/// The payload limit from argocd-cm's `webhook.maxPayloadSizeMB`; the default when unset or invalid.
pub fn max_payload_bytes(argocd_cm: &BTreeMap<String, String>) -> usize {
    argocd_cm
        .get("webhook.maxPayloadSizeMB")
        .and_then(|mb| mb.trim().parse::<usize>().ok())
        .filter(|mb| *mb > 0)
        .map_or(DEFAULT_MAX_PAYLOAD_BYTES, |mb| mb.saturating_mul(1024 * 1024))
}

/// The shared secrets from `argocd-secret`, one a provider; `None` (or an empty value) means
/// that provider's webhooks are accepted unverified.
///
/// `Debug` prints only whether each secret is set.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct WebhookSecrets {
    /// `webhook.github.secret`: key of the `X-Hub-Signature-256` HMAC.
    pub github: Option<String>,
    /// `webhook.gitlab.secret`: the expected `X-Gitlab-Token`.
    pub gitlab: Option<String>,
    /// `webhook.bitbucket.uuid`: the expected `X-Hook-UUID` (Bitbucket Cloud).
    pub bitbucket_uuid: Option<String>,
    /// `webhook.bitbucketserver.secret`: key of the `X-Hub-Signature` HMAC (Bitbucket Server).
    pub bitbucket_server: Option<String>,
    /// `webhook.gogs.secret`: key of the `X-Gogs-Signature` HMAC.
    pub gogs: Option<String>,
}

impl WebhookSecrets {
    /// Reads the secrets from `argocd-secret`'s data, already base64-decoded.
    ///
    /// A value of the form `$<secret>:<key>` (a reference to another Secret) must be resolved by
    /// the caller first.
    pub fn from_secret_data(data: &BTreeMap<String, String>) -> Self {
        let get = |key: &str| data.get(key).filter(|value| !value.is_empty()).cloned();
        WebhookSecrets {
            github: get("webhook.github.secret"),
            gitlab: get("webhook.gitlab.secret"),
            bitbucket_uuid: get("webhook.bitbucket.uuid"),
            bitbucket_server: get("webhook.bitbucketserver.secret"),
            gogs: get("webhook.gogs.secret"),
        }
    }
}

impl fmt::Debug for WebhookSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = |secret: &Option<String>| secret.as_ref().map(|_| "<redacted>");
        f.debug_struct("WebhookSecrets")
            .field("github", &shown(&self.github))
            .field("gitlab", &shown(&self.gitlab))
            .field("bitbucket_uuid", &shown(&self.bitbucket_uuid))
            .field("bitbucket_server", &shown(&self.bitbucket_server))
            .field("gogs", &shown(&self.gogs))
            .finish()
    }
}

/// The git host that sent a webhook.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Provider {
    GitHub,
    GitLab,
    BitbucketCloud,
    BitbucketServer,
    Gogs,
}

impl Provider {
    /// A short lowercase name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::GitHub => "github",
            Provider::GitLab => "gitlab",
            Provider::BitbucketCloud => "bitbucket",
            Provider::BitbucketServer => "bitbucketserver",
            Provider::Gogs => "gogs",
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a push moved a branch or a tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RefKind {
    Branch,
    Tag,
}

/// A verified push, as much as the provider's payload tells.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushEvent {
    pub provider: Provider,
    /// Every URL the payload gives for the repository (web, https clone, ssh clone), deduplicated.
    pub repo_urls: Vec<String>,
    /// The pushed branch or tag name, without `refs/heads/` or `refs/tags/`.
    pub revision: String,
    pub kind: RefKind,
    /// The repository's default branch, when the payload names it (GitHub, GitLab, Gogs).
    pub default_branch: Option<String>,
    /// The commit before the push; `None` when the ref was created or the payload omits it.
    pub before: Option<String>,
    /// The commit after the push; `None` when the ref was deleted or the payload omits it.
    pub after: Option<String>,
    /// Files added, modified or removed, relative to the repository root; `None` when the
    /// provider does not list them or the list may be incomplete (forced or truncated pushes).
    pub changed_files: Option<Vec<String>>,
}

/// Why a webhook refreshes nothing. Messages never contain a secret.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// The signature or token is missing or wrong for a provider with a configured secret.
    #[error("unauthorized webhook: {0}")]
    Unauthorized(String),
    /// The request is not a webhook berth understands, or its payload is malformed.
    #[error("bad webhook request: {0}")]
    BadRequest(String),
    /// The body exceeds the configured limit.
    #[error("webhook payload of {size} bytes exceeds the limit of {limit} bytes")]
    PayloadTooLarge { size: usize, limit: usize },
    /// A verified event that is not a push (a ping, a merge request …): nothing to refresh.
    #[error("ignored webhook event {0:?}")]
    Ignored(String),
}

impl WebhookError {
    /// The HTTP status to answer with: 401, 400, 413, or 200 for an ignored event.
    pub fn status(&self) -> StatusCode {
        match self {
            WebhookError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            WebhookError::BadRequest(_) => StatusCode::BAD_REQUEST,
            WebhookError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            WebhookError::Ignored(_) => StatusCode::OK,
        }
    }
}

/// Checks a webhook request and reads its push event.
///
/// The size limit is checked first, then the provider's signature or token (in constant time),
/// then the event type, so a non-push event is [`WebhookError::Ignored`] only once verified.
pub fn parse(
    headers: &HeaderMap,
    body: &[u8],
    secrets: &WebhookSecrets,
    max_bytes: usize,
) -> Result<PushEvent, WebhookError> {
    if body.len() > max_bytes {
        return Err(WebhookError::PayloadTooLarge { size: body.len(), limit: max_bytes });
    }
    let (provider, event) = detect_provider(headers)?;
    match provider {
        Provider::GitHub => {
            verify_signature(headers, "X-Hub-Signature-256", "sha256=", secrets.github.as_deref(), body)?
        }
        Provider::GitLab => verify_token(headers, "X-Gitlab-Token", secrets.gitlab.as_deref())?,
        Provider::BitbucketCloud => verify_token(headers, "X-Hook-UUID", secrets.bitbucket_uuid.as_deref())?,
        Provider::BitbucketServer => verify_signature(
            headers,
            "X-Hub-Signature",
            "sha256=",
            secrets.bitbucket_server.as_deref(),
            body,
        )?,
        Provider::Gogs => verify_signature(headers, "X-Gogs-Signature", "", secrets.gogs.as_deref(), body)?,
    }
    let is_push = match provider {
        Provider::GitHub | Provider::Gogs => event == "push",
        Provider::GitLab => event == "Push Hook" || event == "Tag Push Hook",
        Provider::BitbucketCloud => event == "repo:push",
        Provider::BitbucketServer => event == "repo:refs_changed",
    };
    if !is_push {
        return Err(WebhookError::Ignored(event.chars().take(64).collect()));
    }
    match provider {
        Provider::GitHub | Provider::Gogs => read_github_push(provider, body),
        Provider::GitLab => read_gitlab_push(body),
        Provider::BitbucketCloud => read_bitbucket_cloud_push(body),
        Provider::BitbucketServer => read_bitbucket_server_push(body),
    }
}

/// Names of the Applications a push should refresh.
///
/// An Application is affected when one of its git sources (`spec.source`, or each of
/// `spec.sources`) matches on all three:
/// - **repository**: its `repoURL` and one of the event's URLs name the same repository over any
///   transport ([`berth_repo::url::same_repository`]: `https://github.com/Org/Repo.git`,
///   `ssh://git@github.com/org/repo` and `git@github.com:org/repo` are equal);
/// - **revision**: its `targetRevision` (with `refs/heads/` or `refs/tags/` stripped) equals the
///   pushed branch or tag name; `HEAD` or empty matches a branch push to the default branch, or to
///   any branch when the payload does not name the default branch;
/// - **paths**, when the event lists changed files: one of them concerns the source
///   ([`berth_repo::paths::WatchedPaths`]): with the `argocd.argoproj.io/manifest-generate-paths`
///   annotation one of its entries (paths or glob patterns) covers it; without it, where Argo CD
///   refreshes on any change, it lies under the source's `path`, is one of its Helm value files, or
///   for a `ref` source one of the files other sources read through `$ref/`.
pub fn affected_apps<'a>(
    event: &PushEvent,
    apps: impl IntoIterator<Item = &'a Application>,
) -> Vec<&'a Application> {
    let event_repos: Vec<String> = event.repo_urls.iter().map(|repo| url::location(repo)).collect();
    let mut affected_apps = Vec::new();
    for app in apps {
        if app.metadata.name.is_none() {
            continue;
        }
        let sources: Vec<&ApplicationSource> = if app.spec.sources.is_empty() {
            app.spec.source.iter().collect()
        } else {
            app.spec.sources.iter().collect()
        };
        let affected = sources.iter().any(|source| {
            source.chart.is_none()
                && event_repos.contains(&url::location(&source.repo_url))
                && revision_matches(source.target_revision.as_deref(), event)
                && event.changed_files.as_ref().is_none_or(|files| {
                    let watched = WatchedPaths::for_source(app, source, &[]);
                    files.iter().any(|file| watched.concerns(file))
                })
        });
        if affected {
            affected_apps.push(app);
        }
    }
    affected_apps
}

/// The ApplicationSets a push should generate again: those with a git generator (at any depth of matrix
/// or merge) on the pushed repository and revision, by the same rules as [`affected_apps`] (changed paths
/// aside: a new folder is what a directories generator is waiting for).
pub fn affected_applicationsets<'a>(
    event: &PushEvent,
    sets: impl IntoIterator<Item = &'a berth_api::ApplicationSet>,
) -> Vec<&'a berth_api::ApplicationSet> {
    let event_repos: Vec<String> = event.repo_urls.iter().map(|repo| url::location(repo)).collect();
    sets.into_iter()
        .filter(|set| {
            let generators = serde_json::to_value(&set.spec.generators).unwrap_or_default();
            let mut affected = false;
            berth_controller::appset::walk_generators(&generators, &mut |kind, spec| {
                let repo = spec.get("repoURL").and_then(serde_json::Value::as_str).unwrap_or_default();
                let revision = spec.get("revision").and_then(serde_json::Value::as_str);
                affected |= kind == "git"
                    && event_repos.contains(&url::location(repo))
                    && revision_matches(revision, event);
            });
            affected
        })
        .collect()
}

/// The repository (`owner`, `name`) of a verified pull-request event from GitHub, Gitea or Gogs
/// (`X-GitHub-Event`/`X-Gogs-Event: pull_request`, which [`parse`] answers as ignored once verified); `None`
/// for any other event or payload.
pub fn pull_request_repository(event: &str, body: &[u8]) -> Option<(String, String)> {
    if event != "pull_request" {
        return None;
    }
    #[derive(Deserialize)]
    struct Payload {
        repository: Repository,
    }
    #[derive(Deserialize)]
    struct Repository {
        name: String,
        owner: Owner,
    }
    #[derive(Deserialize)]
    struct Owner {
        #[serde(alias = "username")]
        login: String,
    }
    let payload: Payload = serde_json::from_slice(body).ok()?;
    Some((payload.repository.owner.login, payload.repository.name))
}

/// The ApplicationSets whose `pullRequest` generators (at any depth) watch `owner/repo` on GitHub or
/// Gitea: a pull request opened, pushed to or closed there generates them again at once, as Argo CD's
/// webhook does, instead of at their next poll.
pub fn affected_pull_request_sets<'a>(
    owner: &str,
    repo: &str,
    sets: impl IntoIterator<Item = &'a berth_api::ApplicationSet>,
) -> Vec<&'a berth_api::ApplicationSet> {
    sets.into_iter()
        .filter(|set| {
            let generators = serde_json::to_value(&set.spec.generators).unwrap_or_default();
            let mut affected = false;
            berth_controller::appset::walk_generators(&generators, &mut |kind, spec| {
                if kind != "pullRequest" {
                    return;
                }
                for provider in ["github", "gitea"] {
                    let field = |key: &str| spec[provider][key].as_str().unwrap_or_default().to_string();
                    affected |= field("owner").eq_ignore_ascii_case(owner)
                        && field("repo").eq_ignore_ascii_case(repo);
                }
            });
            affected
        })
        .collect()
}

/// The provider and its event name, from the provider's event header.
fn detect_provider(headers: &HeaderMap) -> Result<(Provider, String), WebhookError> {
    // Gogs first: Gitea sends X-Gogs-Event and X-GitHub-Event together, signed the Gogs way.
    if let Some(event) = header(headers, "X-Gogs-Event")? {
        return Ok((Provider::Gogs, event.to_string()));
    }
    if let Some(event) = header(headers, "X-GitHub-Event")? {
        return Ok((Provider::GitHub, event.to_string()));
    }
    if let Some(event) = header(headers, "X-Gitlab-Event")? {
        return Ok((Provider::GitLab, event.to_string()));
    }
    if let Some(event) = header(headers, "X-Event-Key")? {
        let cloud = header(headers, "X-Hook-UUID")?.is_some()
            || (header(headers, "X-Request-Id")?.is_none() && event == "repo:push");
        let provider = if cloud { Provider::BitbucketCloud } else { Provider::BitbucketServer };
        return Ok((provider, event.to_string()));
    }
    Err(WebhookError::BadRequest(
        "unknown webhook provider: expected an X-GitHub-Event, X-Gitlab-Event, X-Event-Key or \
         X-Gogs-Event header"
            .to_string(),
    ))
}

/// A header's value as text; `None` when absent.
fn header<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, WebhookError> {
    headers
        .get(name)
        .map(|value| {
            value
                .to_str()
                .map(str::trim)
                .map_err(|_| WebhookError::BadRequest(format!("header {name} is not valid text")))
        })
        .transpose()
}

type HmacSha256 = Hmac<Sha256>;

/// Checks a hex HMAC-SHA256 of the body (after `prefix`) in header `name`, when a secret is set.
fn verify_signature(
    headers: &HeaderMap,
    name: &str,
    prefix: &str,
    secret: Option<&str>,
    body: &[u8],
) -> Result<(), WebhookError> {
    let Some(secret) = secret else {
        return Ok(());
    };
    let Some(value) = header(headers, name)? else {
        return Err(WebhookError::Unauthorized(format!("missing {name} header")));
    };
    let hex = value.strip_prefix(prefix).ok_or_else(|| {
        WebhookError::Unauthorized(format!("{name} is not an HMAC-SHA256 ({prefix}…) signature"))
    })?;
    let signature = decode_hex(hex)
        .ok_or_else(|| WebhookError::Unauthorized(format!("{name} is not a hex signature")))?;
    let mut mac = mac_with_key(secret);
    mac.update(body);
    mac.verify_slice(&signature)
        .map_err(|_| WebhookError::Unauthorized(format!("{name} does not match the configured secret")))
}

/// Checks that header `name` equals the secret, when one is set, in constant time.
fn verify_token(headers: &HeaderMap, name: &str, secret: Option<&str>) -> Result<(), WebhookError> {
    let Some(secret) = secret else {
        return Ok(());
    };
    let Some(token) = header(headers, name)? else {
        return Err(WebhookError::Unauthorized(format!("missing {name} header")));
    };
    // Comparing MACs keyed by the secret takes the same time whatever the token and its length.
    let mut expected = mac_with_key(secret);
    expected.update(secret.as_bytes());
    let expected = expected.finalize().into_bytes();
    let mut presented = mac_with_key(secret);
    presented.update(token.as_bytes());
    presented
        .verify_slice(&expected)
        .map_err(|_| WebhookError::Unauthorized(format!("{name} does not match the configured secret")))
}

fn mac_with_key(secret: &str) -> HmacSha256 {
    match HmacSha256::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        // HMAC takes keys of any length; this arm is never taken.
        Err(_) => unreachable!("HMAC-SHA256 accepts keys of any length"),
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    let text = text.as_bytes();
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    text.chunks_exact(2).map(|pair| Some((digit(pair[0])? << 4) | digit(pair[1])?)).collect()
}

fn read_payload<T: DeserializeOwned>(provider: Provider, body: &[u8]) -> Result<T, WebhookError> {
    serde_json::from_slice(body).map_err(|err| {
        WebhookError::BadRequest(format!("invalid {provider} push payload (JSON expected): {err}"))
    })
}

/// Files listed by the commits of a push; `None` when none are (the list then tells nothing).
fn listed_files(commits: &[CommitFiles]) -> Option<Vec<String>> {
    let mut files: Vec<String> = commits
        .iter()
        .flat_map(|commit| [&commit.added, &commit.modified, &commit.removed])
        .flatten()
        .map(|file| file.trim_start_matches('/').to_string())
        .collect();
    files.sort();
    files.dedup();
    (!files.is_empty()).then_some(files)
}

/// Splits `refs/heads/x` and `refs/tags/x` into the name and its kind.
fn parse_ref(provider: Provider, reference: Option<&str>) -> Result<(String, RefKind), WebhookError> {
    let reference = reference.map(str::trim).unwrap_or_default();
    if reference.is_empty() {
        return Err(WebhookError::BadRequest(format!("{provider} push payload has no ref")));
    }
    Ok(if let Some(tag) = reference.strip_prefix("refs/tags/") {
        (tag.to_string(), RefKind::Tag)
    } else {
        let branch = reference.strip_prefix("refs/heads/").unwrap_or(reference);
        (branch.to_string(), RefKind::Branch)
    })
}

/// A commit id, or `None` for an empty or all-zero one (git's "no commit").
fn commit_id(sha: Option<&str>) -> Option<String> {
    sha.map(str::trim).filter(|sha| !sha.is_empty() && !sha.bytes().all(|b| b == b'0')).map(str::to_string)
}

fn repo_urls<'u>(urls: impl IntoIterator<Item = Option<&'u str>>) -> Vec<String> {
    let mut unique: Vec<String> = Vec::new();
    for url in urls.into_iter().flatten().map(str::trim) {
        if !url.is_empty() && !unique.iter().any(|seen| seen == url) {
            unique.push(url.to_string());
        }
    }
    unique
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CommitFiles {
    added: Vec<String>,
    modified: Vec<String>,
    removed: Vec<String>,
}

/// A GitHub push; Gogs (and Gitea) send the same fields.
#[derive(Deserialize, Default)]
#[serde(default)]
struct GitHubPush {
    #[serde(rename = "ref")]
    reference: Option<String>,
    before: Option<String>,
    after: Option<String>,
    forced: Option<bool>,
    repository: GitHubRepository,
    commits: Option<Vec<CommitFiles>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct GitHubRepository {
    html_url: Option<String>,
    clone_url: Option<String>,
    ssh_url: Option<String>,
    default_branch: Option<String>,
}

/// GitHub lists at most this many commits in a push; a full list may be truncated.
const GITHUB_MAX_LISTED_COMMITS: usize = 2048;

fn read_github_push(provider: Provider, body: &[u8]) -> Result<PushEvent, WebhookError> {
    let push: GitHubPush = read_payload(provider, body)?;
    let (revision, kind) = parse_ref(provider, push.reference.as_deref())?;
    let commits = push.commits.unwrap_or_default();
    // A forced push may drop commits whose files the list then misses.
    let complete = push.forced != Some(true) && commits.len() < GITHUB_MAX_LISTED_COMMITS;
    let repo = push.repository;
    Ok(PushEvent {
        provider,
        repo_urls: repo_urls([repo.html_url.as_deref(), repo.clone_url.as_deref(), repo.ssh_url.as_deref()]),
        revision,
        kind,
        default_branch: repo.default_branch.filter(|branch| !branch.is_empty()),
        before: commit_id(push.before.as_deref()),
        after: commit_id(push.after.as_deref()),
        changed_files: listed_files(&commits).filter(|_| complete),
    })
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct GitLabPush {
    #[serde(rename = "ref")]
    reference: Option<String>,
    before: Option<String>,
    after: Option<String>,
    project: GitLabProject,
    repository: GitLabRepository,
    commits: Option<Vec<CommitFiles>>,
    total_commits_count: Option<usize>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct GitLabProject {
    web_url: Option<String>,
    git_http_url: Option<String>,
    git_ssh_url: Option<String>,
    default_branch: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct GitLabRepository {
    homepage: Option<String>,
    git_http_url: Option<String>,
    git_ssh_url: Option<String>,
}

fn read_gitlab_push(body: &[u8]) -> Result<PushEvent, WebhookError> {
    let provider = Provider::GitLab;
    let push: GitLabPush = read_payload(provider, body)?;
    let (revision, kind) = parse_ref(provider, push.reference.as_deref())?;
    let commits = push.commits.unwrap_or_default();
    // GitLab lists only the newest commits (20) of a bigger push.
    let complete = push.total_commits_count.is_none_or(|total| total <= commits.len());
    Ok(PushEvent {
        provider,
        repo_urls: repo_urls([
            push.project.web_url.as_deref(),
            push.project.git_http_url.as_deref(),
            push.project.git_ssh_url.as_deref(),
            push.repository.homepage.as_deref(),
            push.repository.git_http_url.as_deref(),
            push.repository.git_ssh_url.as_deref(),
        ]),
        revision,
        kind,
        default_branch: push.project.default_branch.filter(|branch| !branch.is_empty()),
        before: commit_id(push.before.as_deref()),
        after: commit_id(push.after.as_deref()),
        changed_files: listed_files(&commits).filter(|_| complete),
    })
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct BitbucketCloudPush {
    push: BitbucketCloudChanges,
    repository: BitbucketCloudRepository,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct BitbucketCloudChanges {
    changes: Vec<BitbucketCloudChange>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct BitbucketCloudChange {
    new: Option<BitbucketCloudRef>,
    old: Option<BitbucketCloudRef>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct BitbucketCloudRef {
    #[serde(rename = "type")]
    kind: Option<String>,
    name: Option<String>,
    target: Option<BitbucketCloudTarget>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct BitbucketCloudTarget {
    hash: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct BitbucketCloudRepository {
    links: BitbucketCloudLinks,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct BitbucketCloudLinks {
    html: Option<Href>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Href {
    href: Option<String>,
}

impl BitbucketCloudRef {
    fn hash(&self) -> Option<String> {
        commit_id(self.target.as_ref().and_then(|t| t.hash.as_deref()))
    }
}

/// Bitbucket Cloud lists no files; when a push moves several refs, the first one is reported.
fn read_bitbucket_cloud_push(body: &[u8]) -> Result<PushEvent, WebhookError> {
    let provider = Provider::BitbucketCloud;
    let push: BitbucketCloudPush = read_payload(provider, body)?;
    let change = push
        .push
        .changes
        .first()
        .ok_or_else(|| WebhookError::BadRequest("bitbucket push payload lists no changes".to_string()))?;
    // A deleted ref has only `old`.
    let Some(moved) = change.new.as_ref().or(change.old.as_ref()) else {
        return Err(WebhookError::BadRequest("bitbucket push change names no ref".to_string()));
    };
    let revision = moved
        .name
        .clone()
        .filter(|name| !name.is_empty())
        .ok_or_else(|| WebhookError::BadRequest("bitbucket push change has no ref name".into()))?;
    let kind = if moved.kind.as_deref() == Some("tag") { RefKind::Tag } else { RefKind::Branch };
    let html = push.repository.links.html.and_then(|link| link.href);
    Ok(PushEvent {
        provider,
        repo_urls: repo_urls([html.as_deref()]),
        revision,
        kind,
        default_branch: None,
        before: change.old.as_ref().and_then(BitbucketCloudRef::hash),
        after: change.new.as_ref().and_then(BitbucketCloudRef::hash),
        changed_files: None,
    })
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct BitbucketServerPush {
    repository: BitbucketServerRepository,
    changes: Vec<BitbucketServerChange>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct BitbucketServerRepository {
    links: BitbucketServerLinks,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct BitbucketServerLinks {
    #[serde(rename = "clone")]
    clone_links: Vec<Href>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct BitbucketServerChange {
    #[serde(rename = "ref")]
    reference: Option<BitbucketServerRef>,
    ref_id: Option<String>,
    from_hash: Option<String>,
    to_hash: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct BitbucketServerRef {
    id: Option<String>,
    display_id: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// Bitbucket Server lists no files; when a push moves several refs, the first one is reported.
fn read_bitbucket_server_push(body: &[u8]) -> Result<PushEvent, WebhookError> {
    let provider = Provider::BitbucketServer;
    let push: BitbucketServerPush = read_payload(provider, body)?;
    let change = push.changes.first().ok_or_else(|| {
        WebhookError::BadRequest("bitbucketserver refs_changed payload lists no changes".into())
    })?;
    let reference = change.reference.as_ref();
    let full_ref = reference.and_then(|r| r.id.as_deref()).or(change.ref_id.as_deref());
    let (parsed, parsed_kind) =
        parse_ref(provider, full_ref.or(reference.and_then(|r| r.display_id.as_deref())))?;
    let revision =
        reference.and_then(|r| r.display_id.clone()).filter(|name| !name.is_empty()).unwrap_or(parsed);
    let kind = match reference.and_then(|r| r.kind.as_deref()) {
        Some("TAG") => RefKind::Tag,
        Some("BRANCH") => RefKind::Branch,
        _ => parsed_kind,
    };
    Ok(PushEvent {
        provider,
        repo_urls: repo_urls(push.repository.links.clone_links.iter().map(|l| l.href.as_deref())),
        revision,
        kind,
        default_branch: None,
        before: commit_id(change.from_hash.as_deref()),
        after: commit_id(change.to_hash.as_deref()),
        changed_files: None,
    })
}

fn revision_matches(target: Option<&str>, event: &PushEvent) -> bool {
    let target = target.map(str::trim).unwrap_or_default();
    if target.is_empty() || target == "HEAD" {
        return event.kind == RefKind::Branch
            && event.default_branch.as_deref().is_none_or(|default| default == event.revision);
    }
    // As in Argo CD, a branch and a tag of the same name are not told apart.
    let target =
        target.strip_prefix("refs/heads/").or_else(|| target.strip_prefix("refs/tags/")).unwrap_or(target);
    target == event.revision
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use berth_api::annotations::MANIFEST_GENERATE_PATHS;
    use serde_json::{Value, json};

    const SECRET: &str = "It's a Secret to Everybody";

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn hmac_hex(secret: &str, body: &[u8]) -> String {
        let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(body);
        mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
    }

    fn secrets(data: &[(&str, &str)]) -> WebhookSecrets {
        let data = data.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        WebhookSecrets::from_secret_data(&data)
    }

    fn body(value: Value) -> Vec<u8> {
        serde_json::to_vec_pretty(&value).unwrap()
    }

    fn github_push() -> Vec<u8> {
        body(json!({
            "ref": "refs/heads/main",
            "before": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
            "after": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
            "created": false,
            "deleted": false,
            "forced": false,
            "compare": "https://github.com/Acme/deploy/compare/6113728f27ae...0d1a26e67d8f",
            "repository": {
                "id": 186853002,
                "name": "deploy",
                "full_name": "Acme/deploy",
                "private": true,
                "html_url": "https://github.com/Acme/deploy",
                "url": "https://github.com/Acme/deploy",
                "git_url": "git://github.com/Acme/deploy.git",
                "ssh_url": "git@github.com:Acme/deploy.git",
                "clone_url": "https://github.com/Acme/deploy.git",
                "default_branch": "main"
            },
            "pusher": { "name": "octocat", "email": "octocat@github.com" },
            "sender": { "login": "octocat", "id": 21031067 },
            "commits": [
                {
                    "id": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
                    "message": "web: bump replicas",
                    "timestamp": "2026-03-14T10:12:44+01:00",
                    "author": { "name": "Octo Cat", "email": "octocat@github.com" },
                    "added": ["apps/web/hpa.yaml"],
                    "removed": [],
                    "modified": ["apps/web/deployment.yaml", "README.md"]
                }
            ],
            "head_commit": null
        }))
    }

    fn parse_github(
        payload: &[u8],
        signature: Option<&str>,
        secrets: &WebhookSecrets,
    ) -> Result<PushEvent, WebhookError> {
        let mut pairs = vec![
            ("X-GitHub-Event", "push"),
            ("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
            ("Content-Type", "application/json"),
        ];
        if let Some(signature) = signature {
            pairs.push(("X-Hub-Signature-256", signature));
        }
        parse(&headers(&pairs), payload, secrets, DEFAULT_MAX_PAYLOAD_BYTES)
    }

    #[test]
    fn github_push_with_valid_signature_is_parsed() {
        let payload = github_push();
        let signature = format!("sha256={}", hmac_hex(SECRET, &payload));
        let event =
            parse_github(&payload, Some(&signature), &secrets(&[("webhook.github.secret", SECRET)])).unwrap();
        assert_eq!(
            event,
            PushEvent {
                provider: Provider::GitHub,
                repo_urls: vec![
                    "https://github.com/Acme/deploy".to_string(),
                    "https://github.com/Acme/deploy.git".to_string(),
                    "git@github.com:Acme/deploy.git".to_string(),
                ],
                revision: "main".to_string(),
                kind: RefKind::Branch,
                default_branch: Some("main".to_string()),
                before: Some("6113728f27ae82c7b1a177c8d03f9e96e0adf246".to_string()),
                after: Some("0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c".to_string()),
                changed_files: Some(vec![
                    "README.md".to_string(),
                    "apps/web/deployment.yaml".to_string(),
                    "apps/web/hpa.yaml".to_string(),
                ]),
            }
        );
    }

    #[test]
    fn github_push_with_wrong_signature_is_unauthorized() {
        let payload = github_push();
        let forged = format!("sha256={}", hmac_hex("guessed", &payload));
        let err = parse_github(&payload, Some(&forged), &secrets(&[("webhook.github.secret", SECRET)]))
            .unwrap_err();
        assert!(matches!(err, WebhookError::Unauthorized(_)), "{err:?}");
        assert_eq!(err.status(), StatusCode::UNAUTHORIZED);
        assert!(!err.to_string().contains(SECRET));
    }

    #[test]
    fn github_signature_over_a_tampered_body_is_unauthorized() {
        let payload = github_push();
        let signature = format!("sha256={}", hmac_hex(SECRET, &payload));
        let mut tampered = payload.clone();
        tampered.extend_from_slice(b" ");
        let err = parse_github(&tampered, Some(&signature), &secrets(&[("webhook.github.secret", SECRET)]))
            .unwrap_err();
        assert!(matches!(err, WebhookError::Unauthorized(_)), "{err:?}");
    }

    #[test]
    fn github_malformed_or_sha1_signature_is_unauthorized() {
        let payload = github_push();
        let github = secrets(&[("webhook.github.secret", SECRET)]);
        for signature in ["sha256=not-hex", "sha1=0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c", ""] {
            let err = parse_github(&payload, Some(signature), &github).unwrap_err();
            assert!(matches!(err, WebhookError::Unauthorized(_)), "{signature}: {err:?}");
        }
    }

    #[test]
    fn github_push_without_signature_is_unauthorized_when_secret_configured() {
        let err =
            parse_github(&github_push(), None, &secrets(&[("webhook.github.secret", SECRET)])).unwrap_err();
        assert_eq!(err, WebhookError::Unauthorized("missing X-Hub-Signature-256 header".to_string()));
    }

    #[test]
    fn github_push_is_accepted_unverified_when_no_secret_configured() {
        let only_gitlab = secrets(&[("webhook.gitlab.secret", SECRET), ("webhook.github.secret", "")]);
        let event = parse_github(&github_push(), None, &only_gitlab).unwrap();
        assert_eq!(event.revision, "main");
        let event = parse_github(&github_push(), Some("sha256=00"), &only_gitlab).unwrap();
        assert_eq!(event.provider, Provider::GitHub);
    }

    #[test]
    fn github_ping_event_is_ignored() {
        let payload = body(json!({
            "zen": "Design for failure.",
            "hook_id": 109948940,
            "hook": { "type": "Repository", "events": ["push"], "config": { "content_type": "json" } },
            "repository": { "full_name": "Acme/deploy" }
        }));
        let signature = format!("sha256={}", hmac_hex(SECRET, &payload));
        let err = parse(
            &headers(&[("X-GitHub-Event", "ping"), ("X-Hub-Signature-256", &signature)]),
            &payload,
            &secrets(&[("webhook.github.secret", SECRET)]),
            DEFAULT_MAX_PAYLOAD_BYTES,
        )
        .unwrap_err();
        assert_eq!(err, WebhookError::Ignored("ping".to_string()));
        assert_eq!(err.status(), StatusCode::OK);
    }

    #[test]
    fn unsigned_ping_is_unauthorized_not_ignored_when_secret_configured() {
        let err = parse(
            &headers(&[("X-GitHub-Event", "ping")]),
            b"{}",
            &secrets(&[("webhook.github.secret", SECRET)]),
            DEFAULT_MAX_PAYLOAD_BYTES,
        )
        .unwrap_err();
        assert!(matches!(err, WebhookError::Unauthorized(_)), "{err:?}");
    }

    #[test]
    fn github_tag_push_reports_a_tag_without_files() {
        let payload = body(json!({
            "ref": "refs/tags/v1.4.0",
            "before": "0000000000000000000000000000000000000000",
            "after": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
            "created": true,
            "repository": { "html_url": "https://github.com/Acme/deploy", "default_branch": "main" },
            "commits": []
        }));
        let event = parse_github(&payload, None, &WebhookSecrets::default()).unwrap();
        assert_eq!((event.revision.as_str(), event.kind), ("v1.4.0", RefKind::Tag));
        assert_eq!(event.before, None);
        assert_eq!(event.changed_files, None);
    }

    #[test]
    fn github_forced_push_reports_no_changed_files() {
        let mut payload: Value = serde_json::from_slice(&github_push()).unwrap();
        payload["forced"] = json!(true);
        let event = parse_github(&body(payload), None, &WebhookSecrets::default()).unwrap();
        assert_eq!(event.changed_files, None);
    }

    #[test]
    fn form_encoded_github_payload_is_bad_request() {
        let err = parse_github(
            b"payload=%7B%22ref%22%3A%22refs%2Fheads%2Fmain%22%7D",
            None,
            &WebhookSecrets::default(),
        )
        .unwrap_err();
        assert!(matches!(err, WebhookError::BadRequest(_)), "{err:?}");
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn push_without_ref_is_bad_request() {
        let err = parse_github(br#"{"repository": {}}"#, None, &WebhookSecrets::default()).unwrap_err();
        assert_eq!(err, WebhookError::BadRequest("github push payload has no ref".to_string()));
    }

    fn gitlab_push(total_commits_count: usize) -> Vec<u8> {
        body(json!({
            "object_kind": "push",
            "event_name": "push",
            "before": "95790bf891e76fee5e1747ab589903a6a1f80f22",
            "after": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
            "ref": "refs/heads/release/2026.03",
            "ref_protected": true,
            "checkout_sha": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
            "user_username": "jsmith",
            "project_id": 15,
            "project": {
                "id": 15,
                "name": "deploy",
                "web_url": "https://gitlab.example.com/platform/team-a/deploy",
                "git_ssh_url": "git@gitlab.example.com:platform/team-a/deploy.git",
                "git_http_url": "https://gitlab.example.com/platform/team-a/deploy.git",
                "namespace": "team-a",
                "path_with_namespace": "platform/team-a/deploy",
                "default_branch": "main"
            },
            "repository": {
                "name": "deploy",
                "url": "git@gitlab.example.com:platform/team-a/deploy.git",
                "homepage": "https://gitlab.example.com/platform/team-a/deploy",
                "git_http_url": "https://gitlab.example.com/platform/team-a/deploy.git",
                "git_ssh_url": "git@gitlab.example.com:platform/team-a/deploy.git"
            },
            "commits": [
                {
                    "id": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
                    "message": "api: new config",
                    "added": ["services/api/config.yaml"],
                    "modified": ["services/api/kustomization.yaml"],
                    "removed": []
                },
                {
                    "id": "b6568db1bc1dcd7f8b4d5a946b0b91f9dacd7327",
                    "message": "drop old job",
                    "added": [],
                    "modified": [],
                    "removed": ["services/api/job.yaml"]
                }
            ],
            "total_commits_count": total_commits_count
        }))
    }

    fn parse_gitlab(event: &str, token: Option<&str>, payload: &[u8]) -> Result<PushEvent, WebhookError> {
        let mut pairs = vec![("X-Gitlab-Event", event), ("X-Gitlab-Instance", "https://gitlab.example.com")];
        if let Some(token) = token {
            pairs.push(("X-Gitlab-Token", token));
        }
        parse(
            &headers(&pairs),
            payload,
            &secrets(&[("webhook.gitlab.secret", SECRET)]),
            DEFAULT_MAX_PAYLOAD_BYTES,
        )
    }

    #[test]
    fn gitlab_push_with_right_token_is_parsed() {
        let event = parse_gitlab("Push Hook", Some(SECRET), &gitlab_push(2)).unwrap();
        assert_eq!(event.provider, Provider::GitLab);
        assert_eq!(event.revision, "release/2026.03");
        assert_eq!(
            event.repo_urls,
            [
                "https://gitlab.example.com/platform/team-a/deploy",
                "https://gitlab.example.com/platform/team-a/deploy.git",
                "git@gitlab.example.com:platform/team-a/deploy.git",
            ]
        );
        assert_eq!(event.after.as_deref(), Some("da1560886d4f094c3e6c9ef40349f7d38b5d27d7"));
        assert_eq!(
            event.changed_files.unwrap(),
            ["services/api/config.yaml", "services/api/job.yaml", "services/api/kustomization.yaml"]
        );
    }

    #[test]
    fn gitlab_push_with_wrong_or_missing_token_is_unauthorized() {
        for token in [Some("It's a secret to everybody"), Some(""), None] {
            let err = parse_gitlab("Push Hook", token, &gitlab_push(2)).unwrap_err();
            assert!(matches!(err, WebhookError::Unauthorized(_)), "{token:?}: {err:?}");
            assert!(!err.to_string().contains(SECRET));
        }
    }

    #[test]
    fn gitlab_truncated_commit_list_reports_no_changed_files() {
        let event = parse_gitlab("Push Hook", Some(SECRET), &gitlab_push(57)).unwrap();
        assert_eq!(event.changed_files, None);
    }

    #[test]
    fn gitlab_tag_push_hook_is_a_push() {
        let payload = body(json!({
            "object_kind": "tag_push",
            "ref": "refs/tags/v2.0.0",
            "before": "0000000000000000000000000000000000000000",
            "after": "82b3d5ae55f7080f1e6022629cdb57bfae7cccc7",
            "project": { "web_url": "https://gitlab.example.com/platform/team-a/deploy" },
            "commits": [],
            "total_commits_count": 0
        }));
        let event = parse_gitlab("Tag Push Hook", Some(SECRET), &payload).unwrap();
        assert_eq!((event.revision.as_str(), event.kind), ("v2.0.0", RefKind::Tag));
    }

    #[test]
    fn gitlab_merge_request_event_is_ignored() {
        let err = parse_gitlab("Merge Request Hook", Some(SECRET), b"{}").unwrap_err();
        assert_eq!(err, WebhookError::Ignored("Merge Request Hook".to_string()));
    }

    fn bitbucket_cloud_push() -> Vec<u8> {
        body(json!({
            "actor": { "display_name": "Jane Doe", "type": "user" },
            "repository": {
                "type": "repository",
                "full_name": "acme/deploy",
                "name": "deploy",
                "is_private": true,
                "links": {
                    "self": { "href": "https://api.bitbucket.org/2.0/repositories/acme/deploy" },
                    "html": { "href": "https://bitbucket.org/acme/deploy" },
                    "avatar": { "href": "https://bytebucket.org/ravatar/%7B1%7D?ts=default" }
                },
                "uuid": "{6f0aab4c-8a2b-4bb4-9d63-4e4f8c1c5d2e}"
            },
            "push": {
                "changes": [
                    {
                        "new": {
                            "type": "branch",
                            "name": "main",
                            "target": { "type": "commit", "hash": "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678" }
                        },
                        "old": {
                            "type": "branch",
                            "name": "main",
                            "target": { "type": "commit", "hash": "9f8e7d6c5b4a39281706f5e4d3c2b1a098765432" }
                        },
                        "created": false,
                        "forced": false,
                        "closed": false,
                        "commits": [{ "hash": "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678" }],
                        "truncated": false
                    }
                ]
            }
        }))
    }

    const HOOK_UUID: &str = "{9f3c4e1a-2b7d-4c8e-a0f1-5d6e7f8a9b0c}";

    fn parse_bitbucket_cloud(uuid: &str) -> Result<PushEvent, WebhookError> {
        parse(
            &headers(&[
                ("X-Event-Key", "repo:push"),
                ("X-Hook-UUID", uuid),
                ("X-Request-UUID", "b8c1a0d2-7e4f-4c3b-9a5d-6e7f8a9b0c1d"),
                ("User-Agent", "Bitbucket-Webhooks/2.0"),
            ]),
            &bitbucket_cloud_push(),
            &secrets(&[("webhook.bitbucket.uuid", HOOK_UUID)]),
            DEFAULT_MAX_PAYLOAD_BYTES,
        )
    }

    #[test]
    fn bitbucket_cloud_push_with_matching_uuid_is_parsed() {
        let event = parse_bitbucket_cloud(HOOK_UUID).unwrap();
        assert_eq!(
            event,
            PushEvent {
                provider: Provider::BitbucketCloud,
                repo_urls: vec!["https://bitbucket.org/acme/deploy".to_string()],
                revision: "main".to_string(),
                kind: RefKind::Branch,
                default_branch: None,
                before: Some("9f8e7d6c5b4a39281706f5e4d3c2b1a098765432".to_string()),
                after: Some("a1b2c3d4e5f60718293a4b5c6d7e8f9012345678".to_string()),
                changed_files: None,
            }
        );
    }

    #[test]
    fn bitbucket_cloud_push_with_wrong_uuid_is_unauthorized() {
        let err = parse_bitbucket_cloud("{00000000-0000-0000-0000-000000000000}").unwrap_err();
        assert!(matches!(err, WebhookError::Unauthorized(_)), "{err:?}");
        assert!(!err.to_string().contains(HOOK_UUID));
    }

    fn bitbucket_server_push() -> Vec<u8> {
        body(json!({
            "eventKey": "repo:refs_changed",
            "date": "2026-03-14T10:12:44+0100",
            "actor": { "name": "admin", "emailAddress": "admin@example.com", "type": "NORMAL" },
            "repository": {
                "slug": "deploy",
                "id": 84,
                "name": "deploy",
                "scmId": "git",
                "project": { "key": "PLAT", "id": 84, "name": "Platform" },
                "links": {
                    "clone": [
                        { "href": "ssh://git@bitbucket.example.com:7999/plat/deploy.git", "name": "ssh" },
                        { "href": "https://bitbucket.example.com/scm/plat/deploy.git", "name": "http" }
                    ],
                    "self": [{ "href": "https://bitbucket.example.com/projects/PLAT/repos/deploy/browse" }]
                }
            },
            "changes": [
                {
                    "ref": { "id": "refs/heads/main", "displayId": "main", "type": "BRANCH" },
                    "refId": "refs/heads/main",
                    "fromHash": "ecddabb624f6f5ba43816f5926e580a5f680a932",
                    "toHash": "178864a7d521b6f5e720b386b2c2b0ef8563e0dc",
                    "type": "UPDATE"
                }
            ]
        }))
    }

    fn bitbucket_server_headers(event: &str, signature: &str) -> HeaderMap {
        headers(&[
            ("X-Event-Key", event),
            ("X-Request-Id", "d8c3a8f4-5a8b-4b5e-8a8c-3e8f1a6b2c4d"),
            ("X-Hub-Signature", signature),
        ])
    }

    #[test]
    fn bitbucket_server_refs_changed_signed_is_parsed() {
        let payload = bitbucket_server_push();
        let signature = format!("sha256={}", hmac_hex(SECRET, &payload));
        let event = parse(
            &bitbucket_server_headers("repo:refs_changed", &signature),
            &payload,
            &secrets(&[("webhook.bitbucketserver.secret", SECRET)]),
            DEFAULT_MAX_PAYLOAD_BYTES,
        )
        .unwrap();
        assert_eq!(
            event,
            PushEvent {
                provider: Provider::BitbucketServer,
                repo_urls: vec![
                    "ssh://git@bitbucket.example.com:7999/plat/deploy.git".to_string(),
                    "https://bitbucket.example.com/scm/plat/deploy.git".to_string(),
                ],
                revision: "main".to_string(),
                kind: RefKind::Branch,
                default_branch: None,
                before: Some("ecddabb624f6f5ba43816f5926e580a5f680a932".to_string()),
                after: Some("178864a7d521b6f5e720b386b2c2b0ef8563e0dc".to_string()),
                changed_files: None,
            }
        );
    }

    #[test]
    fn bitbucket_server_wrong_signature_is_unauthorized() {
        let payload = bitbucket_server_push();
        let signature = format!("sha256={}", hmac_hex("not the secret", &payload));
        let err = parse(
            &bitbucket_server_headers("repo:refs_changed", &signature),
            &payload,
            &secrets(&[("webhook.bitbucketserver.secret", SECRET)]),
            DEFAULT_MAX_PAYLOAD_BYTES,
        )
        .unwrap_err();
        assert!(matches!(err, WebhookError::Unauthorized(_)), "{err:?}");
    }

    #[test]
    fn bitbucket_server_ping_is_ignored() {
        let payload = body(json!({ "test": true }));
        let signature = format!("sha256={}", hmac_hex(SECRET, &payload));
        let err = parse(
            &bitbucket_server_headers("diagnostics:ping", &signature),
            &payload,
            &secrets(&[("webhook.bitbucketserver.secret", SECRET)]),
            DEFAULT_MAX_PAYLOAD_BYTES,
        )
        .unwrap_err();
        assert_eq!(err, WebhookError::Ignored("diagnostics:ping".to_string()));
    }

    #[test]
    fn gogs_push_signed_is_parsed() {
        let payload = body(json!({
            "ref": "refs/heads/main",
            "before": "28e1879d029cb852e4844d9c718537df08844e03",
            "after": "bffeb74224043ba2feb48d137756c8a9331c449a",
            "compare_url": "https://gogs.example.com/acme/deploy/compare/28e1879d02...bffeb74224",
            "commits": [{
                "id": "bffeb74224043ba2feb48d137756c8a9331c449a",
                "message": "web: new image",
                "added": [], "removed": [], "modified": ["apps/web/values.yaml"]
            }],
            "repository": {
                "id": 140,
                "full_name": "acme/deploy",
                "html_url": "https://gogs.example.com/acme/deploy",
                "ssh_url": "ssh://git@gogs.example.com:2222/acme/deploy.git",
                "clone_url": "https://gogs.example.com/acme/deploy.git",
                "default_branch": "main"
            },
            "pusher": { "username": "jane" }
        }));
        let signature = hmac_hex(SECRET, &payload);
        let gogs = secrets(&[("webhook.gogs.secret", SECRET)]);
        let event = parse(
            &headers(&[
                ("X-Gogs-Event", "push"),
                ("X-Gogs-Delivery", "f6266f16-1bf3-46a5-9ea4-602e06ead473"),
                ("X-Gogs-Signature", &signature),
            ]),
            &payload,
            &gogs,
            DEFAULT_MAX_PAYLOAD_BYTES,
        )
        .unwrap();
        assert_eq!(event.provider, Provider::Gogs);
        assert_eq!(event.changed_files.unwrap(), ["apps/web/values.yaml"]);
        let err = parse(
            &headers(&[("X-Gogs-Event", "push"), ("X-Gogs-Signature", "00ff")]),
            &payload,
            &gogs,
            DEFAULT_MAX_PAYLOAD_BYTES,
        )
        .unwrap_err();
        assert!(matches!(err, WebhookError::Unauthorized(_)), "{err:?}");
    }

    #[test]
    fn oversize_payload_is_refused_before_verification() {
        let payload = github_push();
        let err = parse_github(&payload, None, &secrets(&[("webhook.github.secret", SECRET)]));
        assert!(matches!(err, Err(WebhookError::Unauthorized(_))));
        let err = parse(
            &headers(&[("X-GitHub-Event", "push")]),
            &payload,
            &secrets(&[("webhook.github.secret", SECRET)]),
            payload.len() - 1,
        )
        .unwrap_err();
        assert_eq!(err, WebhookError::PayloadTooLarge { size: payload.len(), limit: payload.len() - 1 });
        assert_eq!(err.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let at_limit = parse(
            &headers(&[("X-GitHub-Event", "push")]),
            &payload,
            &WebhookSecrets::default(),
            payload.len(),
        );
        assert!(at_limit.is_ok());
    }

    #[test]
    fn request_without_provider_header_is_bad_request() {
        let err = parse(
            &headers(&[("Content-Type", "application/json")]),
            &github_push(),
            &WebhookSecrets::default(),
            DEFAULT_MAX_PAYLOAD_BYTES,
        )
        .unwrap_err();
        assert!(matches!(err, WebhookError::BadRequest(_)), "{err:?}");
    }

    #[test]
    fn secrets_come_from_argocd_secret_keys_and_debug_redacts_them() {
        let secrets = secrets(&[
            ("webhook.github.secret", "gh-shared"),
            ("webhook.gitlab.secret", "gl-token"),
            ("webhook.bitbucket.uuid", HOOK_UUID),
            ("webhook.bitbucketserver.secret", "bbs-shared"),
            ("webhook.gogs.secret", ""),
            ("server.secretkey", "not a webhook secret"),
        ]);
        assert_eq!(
            secrets,
            WebhookSecrets {
                github: Some("gh-shared".to_string()),
                gitlab: Some("gl-token".to_string()),
                bitbucket_uuid: Some(HOOK_UUID.to_string()),
                bitbucket_server: Some("bbs-shared".to_string()),
                gogs: None,
            }
        );
        let debug = format!("{secrets:?}");
        for secret in ["gh-shared", "gl-token", HOOK_UUID, "bbs-shared"] {
            assert!(!debug.contains(secret), "{debug}");
        }
        assert!(debug.contains("gogs: None"), "{debug}");
    }

    #[test]
    fn max_payload_bytes_reads_argocd_cm_with_50mb_default() {
        let cm = |value: &str| BTreeMap::from([("webhook.maxPayloadSizeMB".to_string(), value.to_string())]);
        assert_eq!(max_payload_bytes(&BTreeMap::new()), 50 * 1024 * 1024);
        assert_eq!(max_payload_bytes(&cm("10")), 10 * 1024 * 1024);
        assert_eq!(max_payload_bytes(&cm("ten")), DEFAULT_MAX_PAYLOAD_BYTES);
        assert_eq!(max_payload_bytes(&cm("0")), DEFAULT_MAX_PAYLOAD_BYTES);
    }

    fn app(name: &str, spec: Value) -> Application {
        app_annotated(name, None, spec)
    }

    fn app_annotated(name: &str, paths: Option<&str>, spec: Value) -> Application {
        let mut metadata = json!({ "name": name, "namespace": "argocd" });
        if let Some(paths) = paths {
            metadata["annotations"] = json!({ MANIFEST_GENERATE_PATHS: paths });
        }
        serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Application",
            "metadata": metadata,
            "spec": {
                "project": "default",
                "destination": { "server": "https://kubernetes.default.svc", "namespace": name },
                "source": spec
            }
        }))
        .unwrap()
    }

    fn push(revision: &str, files: Option<&[&str]>) -> PushEvent {
        PushEvent {
            provider: Provider::GitHub,
            repo_urls: vec![
                "https://github.com/Acme/deploy".to_string(),
                "https://github.com/Acme/deploy.git".to_string(),
                "git@github.com:Acme/deploy.git".to_string(),
            ],
            revision: revision.to_string(),
            kind: RefKind::Branch,
            default_branch: Some("main".to_string()),
            before: None,
            after: Some("0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c".to_string()),
            changed_files: files.map(|files| files.iter().map(|f| f.to_string()).collect()),
        }
    }

    fn source(repo: &str, path: &str, revision: &str) -> Value {
        json!({ "repoURL": repo, "path": path, "targetRevision": revision })
    }

    fn names(apps: Vec<&Application>) -> Vec<&str> {
        apps.iter().filter_map(|a| a.metadata.name.as_deref()).collect()
    }

    #[test]
    fn apps_on_any_url_form_of_the_pushed_repo_are_affected() {
        let apps = [
            app("https", source("https://github.com/acme/deploy.git", "apps/web", "main")),
            app("scp", source("git@github.com:acme/deploy", "apps/web", "main")),
            app("ssh", source("ssh://git@GITHUB.COM/Acme/deploy/", "apps/web", "main")),
            app("other-repo", source("https://github.com/acme/deploy-staging", "apps/web", "main")),
            app("other-host", source("https://gitlab.com/acme/deploy", "apps/web", "main")),
        ];
        assert_eq!(names(affected_apps(&push("main", None), &apps)), ["https", "scp", "ssh"]);
    }

    #[test]
    fn only_apps_tracking_the_pushed_branch_are_affected() {
        let repo = "https://github.com/acme/deploy";
        let apps = [
            app("main", source(repo, "apps/web", "main")),
            app("refs-heads-main", source(repo, "apps/web", "refs/heads/main")),
            app("head", source(repo, "apps/web", "HEAD")),
            app("empty", json!({ "repoURL": repo, "path": "apps/web" })),
            app("staging", source(repo, "apps/web", "staging")),
            app("pinned", source(repo, "apps/web", "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c")),
        ];
        assert_eq!(
            names(affected_apps(&push("main", None), &apps)),
            ["main", "refs-heads-main", "head", "empty"]
        );
        assert_eq!(names(affected_apps(&push("staging", None), &apps)), ["staging"]);
    }

    #[test]
    fn head_follows_any_branch_when_default_branch_unknown_but_never_a_tag() {
        let apps = [app("head", source("https://github.com/acme/deploy", ".", "HEAD"))];
        let mut event = push("feature/x", None);
        event.default_branch = None;
        assert_eq!(names(affected_apps(&event, &apps)), ["head"]);
        event.kind = RefKind::Tag;
        assert!(names(affected_apps(&event, &apps)).is_empty());
    }

    #[test]
    fn tag_push_affects_apps_on_that_tag() {
        let repo = "https://github.com/acme/deploy";
        let apps = [
            app("tag", source(repo, "apps/web", "v1.4.0")),
            app("refs-tags", source(repo, "apps/web", "refs/tags/v1.4.0")),
            app("head", source(repo, "apps/web", "HEAD")),
        ];
        let mut event = push("v1.4.0", None);
        event.kind = RefKind::Tag;
        assert_eq!(names(affected_apps(&event, &apps)), ["tag", "refs-tags"]);
    }

    #[test]
    fn only_apps_whose_path_holds_a_changed_file_are_affected() {
        let repo = "https://github.com/acme/deploy";
        let apps = [
            app("web", source(repo, "apps/web", "main")),
            app("web-admin", source(repo, "apps/web-admin", "main")),
            app("api", source(repo, "./apps/api/", "main")),
            app("root", source(repo, ".", "main")),
        ];
        let event = push("main", Some(&["apps/web/deployment.yaml"]));
        assert_eq!(names(affected_apps(&event, &apps)), ["web", "root"]);
        let event = push("main", Some(&["apps/api/base/kustomization.yaml", "docs/x.md"]));
        assert_eq!(names(affected_apps(&event, &apps)), ["api", "root"]);
    }

    #[test]
    fn unknown_changed_files_affect_every_app_on_the_revision() {
        let repo = "https://github.com/acme/deploy";
        let apps =
            [app("web", source(repo, "apps/web", "main")), app("api", source(repo, "apps/api", "main"))];
        assert_eq!(names(affected_apps(&push("main", None), &apps)), ["web", "api"]);
    }

    #[test]
    fn annotation_paths_replace_the_app_path() {
        let repo = "https://github.com/acme/deploy";
        let apps = [
            app_annotated("dot", Some("."), source(repo, "apps/web", "main")),
            app_annotated("relative", Some("../../charts/web"), source(repo, "apps/web", "main")),
            app_annotated("rooted", Some("/shared; /charts/web"), source(repo, "apps/web", "main")),
            app_annotated("file", Some("/config/web.yaml"), source(repo, "apps/web", "main")),
        ];
        let event = push("main", Some(&["apps/web/deployment.yaml"]));
        assert_eq!(names(affected_apps(&event, &apps)), ["dot"]);
        let event = push("main", Some(&["charts/web/templates/svc.yaml"]));
        assert_eq!(names(affected_apps(&event, &apps)), ["relative", "rooted"]);
        let event = push("main", Some(&["shared/labels.yaml", "config/web.yaml"]));
        assert_eq!(names(affected_apps(&event, &apps)), ["rooted", "file"]);
        let event = push("main", Some(&["config/web.yaml.bak"]));
        assert!(names(affected_apps(&event, &apps)).is_empty());
    }

    #[test]
    fn annotation_glob_matches_the_changed_file_not_its_whole_folder() {
        let repo = "https://github.com/acme/deploy";
        let apps = [
            app_annotated("secrets", Some("/shared/*-secret.yaml"), source(repo, "apps/web", "main")),
            app_annotated("charts", Some("/charts/*.yaml"), source(repo, "apps/web", "main")),
        ];
        let event = push("main", Some(&["shared/db-secret.yaml"]));
        assert_eq!(names(affected_apps(&event, &apps)), ["secrets"]);
        let event = push("main", Some(&["charts/web.yaml"]));
        assert_eq!(names(affected_apps(&event, &apps)), ["charts"]);
        // Cutting the pattern to its folder refreshed both for these.
        let event = push("main", Some(&["shared/db-config.yaml", "charts/web/values.yaml"]));
        assert!(names(affected_apps(&event, &apps)).is_empty());
        let event = push("main", Some(&["apps/web/deployment.yaml"]));
        assert!(names(affected_apps(&event, &apps)).is_empty());
    }

    #[test]
    fn helm_value_files_outside_the_chart_are_watched() {
        let apps = [app(
            "web",
            json!({
                "repoURL": "https://github.com/acme/deploy",
                "path": "charts/web",
                "targetRevision": "main",
                "helm": { "valueFiles": ["values.yaml", "../../envs/prod/web.yaml",
                                         "https://example.com/values.yaml"] }
            }),
        )];
        let event = push("main", Some(&["envs/prod/web.yaml"]));
        assert_eq!(names(affected_apps(&event, &apps)), ["web"]);
        let event = push("main", Some(&["envs/staging/web.yaml"]));
        assert!(names(affected_apps(&event, &apps)).is_empty());
    }

    #[test]
    fn multi_source_app_is_affected_through_any_source() {
        let mut app: Application = serde_json::from_value(json!({
            "metadata": { "name": "web", "namespace": "argocd" },
            "spec": {
                "destination": { "namespace": "web" },
                "sources": [
                    { "repoURL": "https://charts.example.com", "chart": "web", "targetRevision": "1.2.*",
                      "helm": { "valueFiles": ["$values/envs/prod/web.yaml"] } },
                    { "repoURL": "git@github.com:acme/deploy.git", "targetRevision": "main", "ref": "values" },
                    { "repoURL": "https://github.com/acme/extras", "path": "web", "targetRevision": "main" }
                ]
            }
        }))
        .unwrap();
        let event = push("main", Some(&["envs/prod/web.yaml"]));
        assert_eq!(names(affected_apps(&event, [&app])), ["web"]);
        let event = push("main", Some(&["envs/prod/api.yaml"]));
        assert!(affected_apps(&event, [&app]).is_empty());
        let event = push("staging", None);
        assert!(affected_apps(&event, [&app]).is_empty());
        app.spec.sources[1].target_revision = Some("staging".to_string());
        assert_eq!(names(affected_apps(&event, [&app])), ["web"]);
    }

    #[test]
    fn helm_repository_sources_never_match_a_git_push() {
        let apps = [app(
            "chart",
            json!({ "repoURL": "https://github.com/acme/deploy", "chart": "web", "targetRevision": "main" }),
        )];
        assert!(names(affected_apps(&push("main", None), &apps)).is_empty());
    }

    #[test]
    fn parsed_bitbucket_server_push_affects_apps_on_its_clone_urls() {
        let payload = bitbucket_server_push();
        let event = parse(
            &bitbucket_server_headers("repo:refs_changed", ""),
            &payload,
            &WebhookSecrets::default(),
            DEFAULT_MAX_PAYLOAD_BYTES,
        )
        .unwrap();
        let apps = [
            app("http", source("https://bitbucket.example.com/scm/PLAT/deploy", "web", "main")),
            app("ssh", source("ssh://git@bitbucket.example.com:7999/plat/deploy", "web", "main")),
            app("other", source("https://bitbucket.example.com/scm/plat/other.git", "web", "main")),
        ];
        assert_eq!(names(affected_apps(&event, &apps)), ["http", "ssh"]);
    }

    /// A push to the repository and branch a set's git generator reads (in a matrix, over another URL
    /// spelling) generates that set again; a set on another branch or repository, or with no git
    /// generator, is left alone.
    #[test]
    fn a_push_reaches_the_sets_whose_git_generators_read_that_revision() {
        let event = parse(
            &headers(&[("X-GitHub-Event", "push")]),
            &github_push(),
            &secrets(&[]),
            DEFAULT_MAX_PAYLOAD_BYTES,
        )
        .unwrap();
        let set = |name: &str, generators: Value| -> berth_api::ApplicationSet {
            serde_json::from_value(json!({"metadata": {"name": name},
                "spec": {"generators": generators, "template": {"metadata": {}, "spec": {"destination": {}}}}}))
            .unwrap()
        };
        let git = |repo: &str, revision: &str| json!({"git": {"repoURL": repo, "revision": revision, "directories": [{"path": "apps/*"}]}});
        let sets = [
            set(
                "nested",
                json!([{"matrix": {"generators": [{"clusters": {}}, git("git@github.com:acme/deploy", "main")]}}]),
            ),
            set("head", json!([git("https://github.com/Acme/deploy.git", "HEAD")])),
            set("other-branch", json!([git("https://github.com/Acme/deploy.git", "release")])),
            set("other-repo", json!([git("https://github.com/Acme/charts.git", "main")])),
            set("list", json!([{"list": {"elements": [{"repoURL": "https://github.com/Acme/deploy.git"}]}}])),
        ];
        let names: Vec<&str> = affected_applicationsets(&event, &sets)
            .into_iter()
            .map(|s| s.metadata.name.as_deref().unwrap())
            .collect();
        assert_eq!(names, ["nested", "head"]);
    }

    /// A pull-request event names its repository; the sets with a pull-request generator on it are found.
    #[test]
    fn a_pull_request_event_reaches_the_sets_watching_that_repository() {
        let body = br#"{"action": "opened", "number": 7, "repository": {"name": "web", "owner": {"login": "acme"}}}"#;
        let gitea = br#"{"action": "closed", "repository": {"name": "web", "owner": {"username": "acme"}}}"#;
        assert_eq!(pull_request_repository("pull_request", body), Some(("acme".into(), "web".into())));
        assert_eq!(pull_request_repository("pull_request", gitea), Some(("acme".into(), "web".into())));
        assert_eq!(pull_request_repository("push", body), None);
        let set = |name: &str, generators: Value| -> berth_api::ApplicationSet {
            serde_json::from_value(json!({"metadata": {"name": name},
                "spec": {"generators": generators, "template": {"metadata": {}, "spec": {"destination": {}}}}}))
            .unwrap()
        };
        let sets = [
            set(
                "previews",
                json!([{"pullRequest": {"gitea": {"owner": "Acme", "repo": "web", "api": "https://g"}}}]),
            ),
            set(
                "nested",
                json!([{"matrix": {"generators": [{"clusters": {}}, {"pullRequest": {"github": {"owner": "acme", "repo": "web"}}}]}}]),
            ),
            set(
                "other",
                json!([{"pullRequest": {"gitea": {"owner": "acme", "repo": "api", "api": "https://g"}}}]),
            ),
        ];
        let names: Vec<&str> = affected_pull_request_sets("acme", "web", &sets)
            .into_iter()
            .map(|s| s.metadata.name.as_deref().unwrap())
            .collect();
        assert_eq!(names, ["previews", "nested"]);
    }
}
