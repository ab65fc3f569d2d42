//! Git through the git CLI, as Argo CD does: one bare clone per repository URL, shallow fetches of the
//! commits that are asked for, `ls-remote` to learn cheaply whether anything changed, and immutable trees
//! extracted per commit for rendering. The extracted trees are kept under a size cap: past it, the least
//! recently used trees that no caller holds are deleted (and extracted again when asked). The bare clones
//! themselves are kept, left to git's own `gc --auto`, which prunes commits no ref holds once two weeks old:
//! [`GitCache::checkout`] fetches such a commit again.
//!
//! Credentials reach git only through its environment (an askpass helper, `GIT_SSH_COMMAND`), never
//! through a command line or a URL, and every message that leaves this module is scrubbed of them.
//!
//! User values never reach git where it reads options: URLs and revisions are checked by
//! [`crate::validate`] first, positional values follow `--` (or `--end-of-options`), and git may use only
//! the https, http, ssh and git transports (`file` when an admin allows it). Clones and trees live under
//! names derived from a random salt kept in the cache, so no tenant can compute where a repository lives.

use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::process::Command;

use crate::validate::{self, InvalidValue};

/// The field names berth's messages use for the values checked here.
const URL_FIELD: &str = "spec.source.repoURL";
const REVISION_FIELD: &str = "spec.source.targetRevision";

/// Credentials for one repository, from Argo CD's repository or repo-creds secrets.
#[derive(Clone, Default, PartialEq)]
pub struct Credentials {
    pub username: Option<String>,
    pub password: Option<String>,
    pub ssh_private_key: Option<String>,
    /// Skip TLS verification (https) or host key checking (ssh).
    pub insecure: bool,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("ssh_private_key", &self.ssh_private_key.as_ref().map(|_| "***"))
            .field("insecure", &self.insecure)
            .finish()
    }
}

impl Credentials {
    /// Which credentials these are, as a digest that reveals nothing of them: the key under which what a
    /// remote answered them is kept.
    pub fn identity(&self) -> String {
        let mut digest = Sha256::new();
        for part in [&self.username, &self.password, &self.ssh_private_key] {
            digest.update(part.as_deref().unwrap_or_default().as_bytes());
            digest.update([0u8, u8::from(part.is_some())]);
        }
        digest.update([u8::from(self.insecure)]);
        digest.finalize().iter().take(12).map(|b| format!("{b:02x}")).collect()
    }

    fn secrets(&self) -> impl Iterator<Item = &str> {
        self.password.iter().chain(self.ssh_private_key.iter()).map(String::as_str).filter(|s| !s.is_empty())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("git {action} {url} failed: {message}")]
    Command { action: &'static str, url: String, message: String },
    #[error("revision {revision} not found in {url}")]
    RevisionNotFound { url: String, revision: String },
    #[error("git {action} {url} timed out after {seconds}s")]
    Timeout { action: &'static str, url: String, seconds: u64 },
    #[error("git could not be run: {0}")]
    Spawn(#[from] std::io::Error),
    /// A URL or revision that could be read as an option, a transport berth does not allow, or malformed.
    #[error("{0}")]
    Invalid(#[from] InvalidValue),
    #[error("the git cache cannot be used: {0}")]
    Cache(String),
}

/// The commit a revision resolved to, with what history and the UI show of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitInfo {
    pub sha: String,
    pub author: String,
    pub date: String,
    pub message: String,
}

/// What the git cache did that costs the git server something, or spared it, and what it keeps on disk:
/// the controller's metrics count these.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum GitEvent<'a> {
    /// git asked the remote (`request` is `ls-remote` or `fetch`, Argo CD's `request_type` values),
    /// successfully or not, and took `took`. `repo` is the URL without credentials.
    Request { repo: &'a str, request: &'static str, took: Duration },
    /// A caller was answered with the refs of an `ls-remote` already made (or in flight when it asked).
    LsRemoteShared { repo: &'a str },
    /// The bytes on disk of the extracted trees, and of the bare clones measured since start (all those on
    /// disk once a tree was asked for), after either changed.
    CacheBytes { trees: u64, clones: u64 },
    /// This many extracted trees were deleted to keep the trees under their cap.
    TreesEvicted { count: usize },
}

/// Receives every [`GitEvent`]; called on the task that caused it, so it must be quick.
pub type GitObserver = Arc<dyn Fn(GitEvent<'_>) + Send + Sync>;

/// A shared cache of bare clones, one per repository URL, and of extracted trees, one per commit.
pub struct GitCache {
    root: PathBuf,
    timeout: Duration,
    locks: Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>,
    /// Each remote's last `ls-remote` output (per credentials) and when it started.
    refs: Mutex<HashMap<String, (Arc<String>, Instant)>>,
    /// Told of each request to a remote and each shared ls-remote answer.
    observer: Option<GitObserver>,
    /// (repository, credentials identity) pairs the remote has accepted.
    access: Mutex<HashMap<String, ()>>,
    /// What a thousand applications on one monorepo ask about the same commits, answered once:
    /// commits known to be fetched, commit metadata, and files changed between two commits.
    fetched: Mutex<std::collections::HashSet<(String, String)>>,
    infos: Mutex<HashMap<(String, String), CommitInfo>>,
    diffs: Mutex<HashMap<DiffKey, Arc<Vec<String>>>>,
    /// The SSH known hosts file (from argocd-ssh-known-hosts-cm), when one is configured.
    known_hosts: parking_lot::RwLock<Option<PathBuf>>,
    /// Whether `file://` repository URLs may be used (argocd-cm `berth.repositories.allowFileURLs`).
    allow_file_urls: AtomicBool,
    /// The cache's secret salt (`<root>/.salt`), read or created on first use.
    salt: Mutex<Option<Arc<str>>>,
    /// The extracted trees on disk (those a previous run left are indexed on first use), and the cap on
    /// their bytes.
    trees: Mutex<TreeIndex>,
    trees_indexed: tokio::sync::OnceCell<()>,
    max_tree_bytes: u64,
    /// The bytes on disk of each bare clone measured since start, by directory.
    clone_bytes: Mutex<HashMap<PathBuf, u64>>,
}

/// The cap on the bytes of extracted trees unless [`GitCache::with_max_tree_bytes`] sets another: 1 GiB.
pub const DEFAULT_MAX_TREE_BYTES: u64 = 1 << 30;

/// An extracted tree of one commit, kept on disk while this lives: the cache deletes only trees nobody holds,
/// so hold it for as long as the directory is read. Derefs to the directory.
#[derive(Debug)]
pub struct ExtractedTree {
    path: PathBuf,
    _hold: Arc<()>,
}

impl ExtractedTree {
    /// The tree's read-only directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Deref for ExtractedTree {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<Path> for ExtractedTree {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

/// The extracted trees on disk by directory name (`<key>-<sha>`): their bytes, their last use, and their holds.
#[derive(Default)]
struct TreeIndex {
    entries: HashMap<String, TreeEntry>,
    /// The bytes of every entry.
    bytes: u64,
    /// Orders the uses: a larger value is a later use.
    clock: u64,
}

struct TreeEntry {
    bytes: u64,
    used: u64,
    /// One reference here, and one per [`ExtractedTree`] handed out: only ever cloned under the index's lock,
    /// so a count of one there means nobody holds the tree and nobody can take it meanwhile.
    hold: Arc<()>,
}

impl TreeIndex {
    /// The tree named `name` at `path`, held and marked used now, when it is indexed and still on disk. One
    /// deleted behind the cache's back (an operator freeing space, a tmp cleaner) is forgotten, to be
    /// extracted again.
    fn hold(&mut self, name: &str, path: &Path) -> Option<ExtractedTree> {
        self.clock += 1;
        if !path.is_dir() {
            let gone = self.entries.remove(name)?;
            self.bytes -= gone.bytes;
            return None;
        }
        let entry = self.entries.get_mut(name)?;
        entry.used = self.clock;
        Some(ExtractedTree { path: path.to_path_buf(), _hold: entry.hold.clone() })
    }

    /// Indexes a tree of `bytes`, used now (or, for trees found on disk, just before everything after it).
    fn insert(&mut self, name: String, bytes: u64) -> Arc<()> {
        self.clock += 1;
        let hold = Arc::new(());
        let entry = TreeEntry { bytes, used: self.clock, hold: hold.clone() };
        if let Some(old) = self.entries.insert(name, entry) {
            self.bytes -= old.bytes;
        }
        self.bytes += bytes;
        hold
    }

    /// Takes the least recently used trees that nobody holds out of the index until the others fit in `cap`,
    /// and names them. Held trees stay, whatever the total: the cap is passed by them until they are let go.
    fn evict(&mut self, cap: u64) -> Vec<String> {
        if self.bytes <= cap {
            return Vec::new();
        }
        let mut free: Vec<(u64, &String)> = self
            .entries
            .iter()
            .filter(|(_, e)| Arc::strong_count(&e.hold) == 1)
            .map(|(name, e)| (e.used, name))
            .collect();
        free.sort_unstable();
        let mut gone = Vec::new();
        let mut left = self.bytes;
        for (_, name) in free {
            if left <= cap {
                break;
            }
            left -= self.entries[name].bytes;
            gone.push(name.clone());
        }
        for name in &gone {
            self.entries.remove(name);
        }
        self.bytes = left;
        gone
    }
}

/// (repository, from commit, to commit).
type DiffKey = (String, String, String);

/// Entries kept in each memo before it starts afresh.
const MEMO_LIMIT: usize = 4096;

fn remember<K: std::hash::Hash + Eq, V>(map: &Mutex<HashMap<K, V>>, key: K, value: V) {
    let mut map = map.lock();
    if map.len() >= MEMO_LIMIT {
        map.clear();
    }
    map.insert(key, value);
}

impl GitCache {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        GitCache {
            root: root.into(),
            timeout: Duration::from_secs(90),
            locks: Mutex::default(),
            refs: Mutex::default(),
            observer: None,
            access: Mutex::default(),
            fetched: Mutex::default(),
            infos: Mutex::default(),
            diffs: Mutex::default(),
            known_hosts: parking_lot::RwLock::default(),
            allow_file_urls: AtomicBool::new(false),
            salt: Mutex::default(),
            trees: Mutex::default(),
            trees_indexed: tokio::sync::OnceCell::new(),
            max_tree_bytes: DEFAULT_MAX_TREE_BYTES,
            clone_bytes: Mutex::default(),
        }
    }

    /// Caps the bytes the extracted trees take on disk (`berth run --repo-cache-max-bytes`): past it, the
    /// least recently used trees nobody holds are deleted. The bare clones are not counted here.
    pub fn with_max_tree_bytes(mut self, bytes: u64) -> Self {
        self.max_tree_bytes = bytes;
        self
    }

    /// Tells `observer` of every request to a remote and every shared `ls-remote` answer (metrics).
    pub fn with_observer(mut self, observer: GitObserver) -> Self {
        self.observer = Some(observer);
        self
    }

    fn observe(&self, event: GitEvent<'_>) {
        if let Some(observer) = &self.observer {
            observer(event);
        }
    }

    /// Lets repository URLs use `file://` (off by default: a path on berth's disk is not a tenant's to
    /// read). Set from argocd-cm's [`validate::ALLOW_FILE_URLS_KEY`].
    pub fn set_allow_file_urls(&self, allow: bool) {
        self.allow_file_urls.store(allow, Ordering::Relaxed);
    }

    pub fn allow_file_urls(&self) -> bool {
        self.allow_file_urls.load(Ordering::Relaxed)
    }

    /// Checks a repository URL as this cache would use it.
    pub fn check_url(&self, url: &str) -> Result<(), GitError> {
        validate::repo_url(URL_FIELD, url, self.allow_file_urls())?;
        Ok(())
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The SSH hosts git may connect to without `insecure` (Argo CD's `ssh_known_hosts`); `None` falls
    /// back to ssh's own files.
    pub fn set_known_hosts(&self, text: Option<&str>) -> Result<(), std::io::Error> {
        let Some(text) = text else {
            *self.known_hosts.write() = None;
            return Ok(());
        };
        std::fs::create_dir_all(&self.root)?;
        let path = self.root.join("ssh_known_hosts");
        let scratch = self.root.join(".ssh_known_hosts.tmp");
        std::fs::write(&scratch, text)?;
        std::fs::rename(&scratch, &path)?;
        *self.known_hosts.write() = Some(path);
        Ok(())
    }

    /// The cache's secret salt: created once (random, mode 0600) and kept across restarts, so the names
    /// stay stable for berth and unpredictable for anyone who cannot read the file.
    fn salt(&self) -> Result<Arc<str>, GitError> {
        let mut held = self.salt.lock();
        if let Some(salt) = held.as_ref() {
            return Ok(salt.clone());
        }
        let salt: Arc<str> = read_or_create_salt(&self.root)
            .map_err(|e| {
                GitError::Cache(format!("cannot read or create {}: {e}", self.root.join(SALT_FILE).display()))
            })?
            .into();
        *held = Some(salt.clone());
        Ok(salt)
    }

    /// The on-disk name of a repository: a keyed hash of its normalized URL.
    fn key(&self, url: &str) -> Result<String, GitError> {
        Ok(salted_key(&self.salt()?, url))
    }

    fn bare_dir(&self, url: &str) -> Result<PathBuf, GitError> {
        Ok(self.root.join("repos").join(self.key(url)?))
    }

    fn lock(&self, dir: &Path) -> Arc<tokio::sync::Mutex<()>> {
        self.locks.lock().entry(dir.to_path_buf()).or_default().clone()
    }

    /// The commit SHA a target revision (branch, tag, commit SHA, `HEAD` or empty) points at, by
    /// `git ls-remote`: no objects are transferred. The refs of an ls-remote that started at most `max_age`
    /// before this call are shared by every caller with the same credentials: a poll passes its polling
    /// period (at most three minutes, as long as Argo CD keeps refs), so a thousand settled applications on
    /// one repository cost about one ls-remote a period. The price: a poll may see a push up to one period
    /// late; a webhook or a refresh sees it at once ([`GitCache::resolve_since`]).
    pub async fn resolve(
        &self,
        url: &str,
        revision: &str,
        creds: &Credentials,
        max_age: Duration,
    ) -> Result<String, GitError> {
        self.resolve_fresh(url, revision, creds, Instant::now(), max_age).await
    }

    /// [`GitCache::resolve`] with the refs of an ls-remote that started at `not_before` or later: what a
    /// refresh, a webhook or a sync passes (the moment it was asked for), so it sees every commit pushed
    /// before it. While one ls-remote runs the others wait (one at a time per repository and credentials),
    /// and every caller that asked before it started is answered by it: a burst of a thousand refreshes
    /// costs about as many ls-remotes as fit, one after the other, in the time the burst lasts, not one each.
    pub async fn resolve_since(
        &self,
        url: &str,
        revision: &str,
        creds: &Credentials,
        not_before: Instant,
    ) -> Result<String, GitError> {
        self.resolve_fresh(url, revision, creds, not_before, Duration::ZERO).await
    }

    /// Resolves with the refs of an ls-remote that started at most `max_age` before `at`.
    async fn resolve_fresh(
        &self,
        url: &str,
        revision: &str,
        creds: &Credentials,
        at: Instant,
        max_age: Duration,
    ) -> Result<String, GitError> {
        let revision = revision.trim();
        self.check_url(url)?;
        validate::git_revision(REVISION_FIELD, revision)?;
        // A full SHA needs no ref list, but the clone may hold the commit because another project's app fetched
        // it with credentials this caller does not have: only the remote can say whether these may read it,
        // once (an ls-remote that succeeded with them).
        if is_full_sha(revision) {
            if !self.proven(url, creds) {
                self.ls_remote(url, creds, at, max_age).await?;
            }
            return Ok(revision.to_ascii_lowercase());
        }
        let out = self.ls_remote(url, creds, at, max_age).await?;
        let refs: Vec<(&str, &str)> = out.lines().filter_map(|l| l.split_once('\t')).collect();
        let wanted: Vec<String> = if revision.is_empty() || revision == "HEAD" {
            vec!["HEAD".into()]
        } else {
            vec![
                format!("refs/tags/{revision}^{{}}"),
                format!("refs/tags/{revision}"),
                format!("refs/heads/{revision}"),
                format!("{revision}^{{}}"),
                revision.to_string(),
            ]
        };
        for want in &wanted {
            if let Some((sha, _)) = refs.iter().find(|(_, name)| name == want) {
                return Ok(sha.to_string());
            }
        }
        Err(GitError::RevisionNotFound { url: scrub_url(url), revision: revision.into() })
    }

    /// The remote's refs by `git ls-remote` with `creds`: the last answer these credentials had, when it
    /// started at most `max_age` before `at` (or after it), else a new one (never another's credentials'
    /// answer: it proves nothing about these). The lock makes callers that arrive while one runs wait for
    /// it rather than start their own; the age is measured from `at`, not from the end of that wait, so a
    /// caller is served by the first ls-remote that started after its request.
    async fn ls_remote(
        &self,
        url: &str,
        creds: &Credentials,
        at: Instant,
        max_age: Duration,
    ) -> Result<Arc<String>, GitError> {
        let key = access_key(url, creds);
        let lock = self.lock(&self.root.join("ls-remote").join(self.key(url)?).join(creds.identity()));
        let _guard = lock.lock().await;
        let fresh = |started: &Instant| at.saturating_duration_since(*started) <= max_age;
        let cached = self.refs.lock().get(&key).filter(|(_, started)| fresh(started)).cloned();
        if let Some((out, _)) = cached {
            self.observe(GitEvent::LsRemoteShared { repo: &scrub_url(url) });
            return Ok(out);
        }
        // Kept with the time it *started*: a caller that asked at that time or before may use it.
        let started = Instant::now();
        let out = Arc::new(self.git(None, "ls-remote", url, creds, &["ls-remote", "--", url]).await?);
        self.refs.lock().insert(key.clone(), (out.clone(), started));
        remember(&self.access, key, ());
        Ok(out)
    }

    /// Whether the remote has answered an ls-remote with these credentials (they may read the repository).
    fn proven(&self, url: &str, creds: &Credentials) -> bool {
        let key = access_key(url, creds);
        self.access.lock().contains_key(&key)
    }

    /// Makes sure `sha` is in the local clone, fetching it (shallow) when missing. Callers resolve first with
    /// the same credentials ([`GitCache::resolve`]), which proves they may read the repository.
    pub async fn fetch(&self, url: &str, sha: &str, creds: &Credentials) -> Result<(), GitError> {
        self.check_url(url)?;
        validate::commit_sha(REVISION_FIELD, sha)?;
        let id = (normalize_url(url), sha.to_string());
        if self.fetched.lock().contains(&id) {
            return Ok(());
        }
        self.fetch_once(url, sha, creds).await?;
        let mut fetched = self.fetched.lock();
        if fetched.len() >= MEMO_LIMIT {
            fetched.clear();
        }
        fetched.insert(id);
        Ok(())
    }

    async fn fetch_once(&self, url: &str, sha: &str, creds: &Credentials) -> Result<(), GitError> {
        let dir = self.bare_dir(url)?;
        let lock = self.lock(&dir);
        let _guard = lock.lock().await;
        let fetched = self.fetch_locked(&dir, url, sha, creds).await?;
        // The clone grew, or was not measured since start: its bytes, for the metric.
        if fetched || !self.clone_bytes.lock().contains_key(&dir) {
            let measured = dir.clone();
            let bytes = tokio::task::spawn_blocking(move || disk_bytes(&measured)).await.unwrap_or_default();
            self.clone_bytes.lock().insert(dir, bytes);
            self.report_bytes();
        }
        Ok(())
    }

    /// [`GitCache::fetch_once`] under the clone's lock: whether git fetched anything.
    async fn fetch_locked(
        &self,
        dir: &Path,
        url: &str,
        sha: &str,
        creds: &Credentials,
    ) -> Result<bool, GitError> {
        let dir = dir.to_path_buf();
        if !dir.join("HEAD").exists() {
            tokio::fs::create_dir_all(&dir).await?;
            self.git(Some(&dir), "init", url, creds, &["init", "--bare", "--quiet"]).await?;
        }
        if self.has_commit(&dir, sha).await {
            return Ok(false);
        }
        let by_sha = self
            .git(
                Some(&dir),
                "fetch",
                url,
                creds,
                &["fetch", "--quiet", "--no-tags", "--depth=1", "--", url, sha],
            )
            .await;
        if by_sha.is_err() || !self.has_commit(&dir, sha).await {
            // Servers that refuse to serve a SHA directly: fetch every branch and tag instead.
            // A shallow clone's fallback must reach below its boundary (an older commit to roll back to).
            let mut args = vec!["fetch", "--quiet", "--tags"];
            if dir.join("shallow").exists() {
                args.push("--unshallow");
            }
            args.extend(["--", url, "+refs/heads/*:refs/remotes/origin/*"]);
            self.git(Some(&dir), "fetch", url, creds, &args).await?;
        }
        if self.has_commit(&dir, sha).await {
            Ok(true)
        } else {
            Err(GitError::RevisionNotFound { url: scrub_url(url), revision: sha.into() })
        }
    }

    async fn has_commit(&self, dir: &Path, sha: &str) -> bool {
        Command::new("git")
            .arg("--git-dir")
            .arg(dir)
            .args(["cat-file", "-e", &format!("{sha}^{{commit}}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .is_ok_and(|s| s.success())
    }

    /// Author, date and message of a fetched commit.
    pub async fn commit_info(&self, url: &str, sha: &str) -> Result<CommitInfo, GitError> {
        validate::commit_sha(REVISION_FIELD, sha)?;
        let id = (normalize_url(url), sha.to_string());
        if let Some(info) = self.infos.lock().get(&id) {
            return Ok(info.clone());
        }
        let info = match self.read_commit_info(url, sha).await {
            Ok(info) => info,
            Err(e) => {
                // Pruned by git's gc since it was fetched: the next fetch fetches it again.
                if let Ok(dir) = self.bare_dir(url)
                    && !self.has_commit(&dir, sha).await
                {
                    self.fetched.lock().remove(&id);
                }
                return Err(e);
            }
        };
        remember(&self.infos, id, info.clone());
        Ok(info)
    }

    async fn read_commit_info(&self, url: &str, sha: &str) -> Result<CommitInfo, GitError> {
        let dir = self.bare_dir(url)?;
        let out = self
            .git(
                Some(&dir),
                "log",
                url,
                &Credentials::default(),
                &["log", "-1", "--format=%an <%ae>%n%aI%n%B", "--end-of-options", sha, "--"],
            )
            .await?;
        let mut lines = out.splitn(3, '\n');
        Ok(CommitInfo {
            sha: sha.into(),
            author: lines.next().unwrap_or_default().into(),
            date: lines.next().unwrap_or_default().into(),
            message: lines.next().unwrap_or_default().trim_end().into(),
        })
    }

    /// Files that differ between two fetched commits (paths relative to the repository root).
    pub async fn changed_files(&self, url: &str, from: &str, to: &str) -> Result<Arc<Vec<String>>, GitError> {
        validate::commit_sha(REVISION_FIELD, from)?;
        validate::commit_sha(REVISION_FIELD, to)?;
        let id = (normalize_url(url), from.to_string(), to.to_string());
        if let Some(files) = self.diffs.lock().get(&id) {
            return Ok(files.clone());
        }
        let files = Arc::new(self.diff(url, from, to).await?);
        remember(&self.diffs, id, files.clone());
        Ok(files)
    }

    async fn diff(&self, url: &str, from: &str, to: &str) -> Result<Vec<String>, GitError> {
        let dir = self.bare_dir(url)?;
        let out = self
            .git(
                Some(&dir),
                "diff",
                url,
                &Credentials::default(),
                &["diff", "--name-only", "--no-renames", "--end-of-options", from, to, "--"],
            )
            .await?;
        Ok(out.lines().map(String::from).collect())
    }

    /// [`GitCache::fetch`], then [`GitCache::tree`]. The clone holds fetched commits under no ref, and git's
    /// own `gc --auto` (which fetches run) prunes unreachable objects once they are two weeks old: a commit
    /// fetched long ago, whose tree was evicted since, is fetched again rather than failing the extraction.
    pub async fn checkout(
        &self,
        url: &str,
        sha: &str,
        creds: &Credentials,
    ) -> Result<ExtractedTree, GitError> {
        self.fetch(url, sha, creds).await?;
        let first = self.tree(url, sha).await;
        if let Err(GitError::RevisionNotFound { .. }) = &first {
            self.fetched.lock().remove(&(normalize_url(url), sha.to_string()));
            self.fetch(url, sha, creds).await?;
            return self.tree(url, sha).await;
        }
        first
    }

    /// The tree of a fetched commit, extracted once into its own read-only directory and kept while the trees
    /// fit in their cap ([`GitCache::with_max_tree_bytes`]). The tree stays on disk while the returned
    /// [`ExtractedTree`] lives; once let go it may be deleted to make room, and is extracted again when next
    /// asked for.
    pub async fn tree(&self, url: &str, sha: &str) -> Result<ExtractedTree, GitError> {
        validate::commit_sha(REVISION_FIELD, sha)?;
        let key = self.key(url)?;
        self.index_trees().await;
        let name = format!("{key}-{sha}");
        let target = self.root.join("trees").join(&name);
        if let Some(tree) = self.trees.lock().hold(&name, &target) {
            return Ok(tree);
        }
        let dir = self.bare_dir(url)?;
        let lock = self.lock(&dir);
        let _guard = lock.lock().await;
        if let Some(tree) = self.trees.lock().hold(&name, &target) {
            return Ok(tree);
        }
        // Not indexed but on disk: put there by another cache on the same root since this one looked; kept.
        if !target.is_dir() {
            self.extract(&dir, url, sha, &key, &target).await?;
        }
        let measured = target.clone();
        let bytes = tokio::task::spawn_blocking(move || disk_bytes(&measured)).await.unwrap_or_default();
        let hold = self.trees.lock().insert(name, bytes);
        let tree = ExtractedTree { path: target, _hold: hold };
        // Deleting evicted trees (of any repository) need not keep this one's fetches waiting.
        drop(_guard);
        self.make_room().await;
        Ok(tree)
    }

    /// Extracts the tree of `sha` from the clone `dir` into `target`, through a scratch directory.
    async fn extract(
        &self,
        dir: &Path,
        url: &str,
        sha: &str,
        key: &str,
        target: &Path,
    ) -> Result<(), GitError> {
        // Asked first: the exit status of `git archive | tar` is tar's, and a tar may accept empty input.
        if !self.has_commit(dir, sha).await {
            return Err(GitError::RevisionNotFound { url: scrub_url(url), revision: sha.into() });
        }
        let scratch = self.root.join("trees").join(format!(".{key}-{sha}.tmp"));
        let _ = tokio::fs::remove_dir_all(&scratch).await;
        tokio::fs::create_dir_all(&scratch).await?;
        let archive = tokio::process::Command::new("sh")
            .arg("-c")
            .arg("git --git-dir=\"$1\" archive --format=tar --end-of-options \"$2\" | tar -x -C \"$3\"")
            .arg("sh")
            .arg(dir)
            .arg(sha)
            .arg(&scratch)
            .stdin(Stdio::null())
            .output()
            .await?;
        if !archive.status.success() {
            let _ = tokio::fs::remove_dir_all(&scratch).await;
            return Err(GitError::Command {
                action: "archive",
                url: scrub_url(url),
                message: String::from_utf8_lossy(&archive.stderr).trim().into(),
            });
        }
        tokio::fs::rename(&scratch, target).await?;
        Ok(())
    }

    /// Indexes, once, what a previous run left under `<root>/trees` (oldest first, by modification time, all
    /// older than any use since) and measures the bare clones under `<root>/repos`; deletes scratch and
    /// evicted directories a stopped process left (`.…tmp`). A walk of what the cap bounds, on the first
    /// tree asked for rather than at start.
    async fn index_trees(&self) {
        self.trees_indexed
            .get_or_init(|| async {
                let root = self.root.clone();
                let found = tokio::task::spawn_blocking(move || scan_cache(&root)).await.unwrap_or_default();
                {
                    let mut index = self.trees.lock();
                    for (name, bytes) in found.trees {
                        index.insert(name, bytes);
                    }
                }
                {
                    let mut clones = self.clone_bytes.lock();
                    for (dir, bytes) in found.clones {
                        // A fetch since start measured it later than this walk did.
                        clones.entry(dir).or_insert(bytes);
                    }
                }
                self.make_room().await;
            })
            .await;
    }

    /// Deletes the least recently used trees nobody holds until the trees fit in their cap. Each is renamed
    /// out of the way under the index's lock, so no caller finds it half deleted, then removed.
    async fn make_room(&self) {
        let trees = self.root.join("trees");
        let doomed: Vec<PathBuf> = {
            let mut index = self.trees.lock();
            let gone = index.evict(self.max_tree_bytes);
            let clock = index.clock;
            gone.iter()
                .enumerate()
                .filter_map(|(i, name)| {
                    let doomed =
                        trees.join(format!(".{name}.{}-{clock}-{i}.evicted.tmp", std::process::id()));
                    std::fs::rename(trees.join(name), &doomed).ok().map(|()| doomed)
                })
                .collect()
        };
        if doomed.is_empty() {
            self.report_bytes();
            return;
        }
        let count = doomed.len();
        let _ = tokio::task::spawn_blocking(move || {
            for dir in doomed {
                let _ = std::fs::remove_dir_all(dir);
            }
        })
        .await;
        tracing::debug!(target: "berth::git", count, cap = self.max_tree_bytes, "evicted extracted trees");
        self.observe(GitEvent::TreesEvicted { count });
        self.report_bytes();
    }

    /// Tells the observer what the trees and the clones take on disk now.
    fn report_bytes(&self) {
        let trees = self.trees.lock().bytes;
        let clones = self.clone_bytes.lock().values().sum();
        self.observe(GitEvent::CacheBytes { trees, clones });
    }

    /// Runs git with credentials in its environment only; output and errors are scrubbed of secrets.
    async fn git(
        &self,
        dir: Option<&Path>,
        action: &'static str,
        url: &str,
        creds: &Credentials,
        args: &[&str],
    ) -> Result<String, GitError> {
        let scratch = tempfile_dir(&self.root)?;
        let mut cmd = Command::new("git");
        if let Some(dir) = dir {
            cmd.arg("--git-dir").arg(dir);
        }
        // Only the transports berth allows, whatever the URL or a server's redirect asks for.
        let file =
            if self.allow_file_urls() { "protocol.file.allow=always" } else { "protocol.file.allow=never" };
        cmd.args(["-c", "protocol.allow=never"])
            .args(["-c", "protocol.https.allow=always", "-c", "protocol.http.allow=always"])
            .args(["-c", "protocol.ssh.allow=always", "-c", "protocol.git.allow=always", "-c", file])
            .args(["-c", "credential.helper="])
            .args(args)
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        if let (Some(user), Some(pass)) = (&creds.username, &creds.password) {
            let askpass = scratch.path().join("askpass");
            std::fs::write(
                &askpass,
                "#!/bin/sh\ncase \"$1\" in Username*) printf '%s' \"$BERTH_GIT_USERNAME\";; *) printf '%s' \"$BERTH_GIT_PASSWORD\";; esac\n",
            )?;
            set_mode(&askpass, 0o700)?;
            cmd.env("GIT_ASKPASS", &askpass).env("BERTH_GIT_USERNAME", user).env("BERTH_GIT_PASSWORD", pass);
        }
        let mut ssh = String::from("ssh -o BatchMode=yes -o ConnectTimeout=15");
        if let Some(key) = &creds.ssh_private_key {
            let key_file = scratch.path().join("id");
            let mut text = key.clone();
            if !text.ends_with('\n') {
                text.push('\n');
            }
            std::fs::write(&key_file, text)?;
            set_mode(&key_file, 0o600)?;
            ssh.push_str(&format!(" -o IdentitiesOnly=yes -i '{}'", key_file.display()));
        }
        if creds.insecure {
            cmd.env("GIT_SSL_NO_VERIFY", "true");
            ssh.push_str(" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null");
        } else if let Some(known) = self.known_hosts.read().as_ref() {
            // Argo CD's argocd-ssh-known-hosts-cm: only the hosts it lists are trusted.
            ssh.push_str(&format!(
                " -o StrictHostKeyChecking=yes -o UserKnownHostsFile='{}'",
                known.display()
            ));
        }
        cmd.env("GIT_SSH_COMMAND", ssh);
        let started = Instant::now();
        let ran = tokio::time::timeout(self.timeout, cmd.output()).await;
        // Requests to the remote, counted where they run (whatever their outcome), not where they are asked.
        if matches!(action, "ls-remote" | "fetch") && !matches!(ran, Ok(Err(_))) {
            self.observe(GitEvent::Request {
                repo: &scrub_url(url),
                request: action,
                took: started.elapsed(),
            });
        }
        let out = match ran {
            Ok(out) => out?,
            Err(_) => {
                return Err(GitError::Timeout {
                    action,
                    url: scrub_url(url),
                    seconds: self.timeout.as_secs(),
                });
            }
        };
        if !out.status.success() {
            let mut message = String::from_utf8_lossy(&out.stderr).trim().to_string();
            for secret in creds.secrets() {
                message = message.replace(secret, "***");
            }
            return Err(GitError::Command { action, url: scrub_url(url), message: scrub_url(&message) });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// What [`scan_cache`] found: trees by name, oldest first, and bare clones, each with its bytes on disk.
#[derive(Default)]
struct CacheOnDisk {
    trees: Vec<(String, u64)>,
    clones: Vec<(PathBuf, u64)>,
}

/// Walks the trees and clones under a cache root, deleting the scratch and evicted directories (`.…tmp`) a
/// stopped process left.
fn scan_cache(root: &Path) -> CacheOnDisk {
    let mut found = CacheOnDisk::default();
    let mut trees = Vec::new();
    for entry in std::fs::read_dir(root.join("trees")).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if name.starts_with('.') {
            let _ = std::fs::remove_dir_all(&path);
            continue;
        }
        let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
        if meta.is_dir() {
            let modified = meta.modified().unwrap_or(std::time::SystemTime::UNIX_EPOCH);
            trees.push((modified, name, disk_bytes(&path)));
        }
    }
    trees.sort();
    found.trees = trees.into_iter().map(|(_, name, bytes)| (name, bytes)).collect();
    for entry in std::fs::read_dir(root.join("repos")).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            let bytes = disk_bytes(&path);
            found.clones.push((path, bytes));
        }
    }
    found
}

/// The bytes `path` takes on disk, everything under it included and no symlink followed: each entry's
/// allocated blocks, or its length when that is more (about what the kubelet counts against an `emptyDir`'s
/// `sizeLimit`).
fn disk_bytes(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0u64;
    let mut stack = vec![path.to_path_buf()];
    while let Some(next) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&next) else { continue };
        total = total.saturating_add((meta.blocks() * 512).max(meta.len()));
        if meta.is_dir() {
            stack.extend(std::fs::read_dir(&next).into_iter().flatten().flatten().map(|e| e.path()));
        }
    }
    total
}

fn tempfile_dir(root: &Path) -> Result<TempDir, std::io::Error> {
    let base = root.join("tmp");
    std::fs::create_dir_all(&base)?;
    TempDir::new_in(&base)
}

/// A directory removed when dropped (holds askpass helpers and keys for one git call).
struct TempDir(PathBuf);

impl TempDir {
    fn new_in(base: &Path) -> Result<Self, std::io::Error> {
        let path = base.join(format!("git-{}", random_hex(16)?));
        std::fs::create_dir(&path)?;
        set_mode(&path, 0o700)?;
        Ok(TempDir(path))
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<(), std::io::Error> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// The file in the cache root that holds its secret salt.
const SALT_FILE: &str = ".salt";

/// Reads `<root>/.salt`, or creates it (32 random bytes as hex, mode 0600) when missing. Creation is a
/// hard link of a complete file, so two processes starting at once agree on one salt.
fn read_or_create_salt(root: &Path) -> Result<String, std::io::Error> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = root.join(SALT_FILE);
    if let Ok(salt) = read_salt(&path) {
        return Ok(salt);
    }
    std::fs::create_dir_all(root)?;
    let staged = root.join(format!(".salt-{}.tmp", random_hex(8)?));
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&staged)?;
    std::io::Write::write_all(&mut file, random_hex(32)?.as_bytes())?;
    file.sync_all()?;
    drop(file);
    let linked = std::fs::hard_link(&staged, &path);
    let _ = std::fs::remove_file(&staged);
    match linked {
        // A new salt: clones and trees from before it sit at names anyone could compute; they go.
        Ok(()) => {
            for dir in ["repos", "trees"] {
                let _ = std::fs::remove_dir_all(root.join(dir));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    read_salt(&path)
}

fn read_salt(path: &Path) -> Result<String, std::io::Error> {
    let salt = std::fs::read_to_string(path)?.trim().to_string();
    if salt.len() < 32 {
        return Err(std::io::Error::other("the salt file is too short"));
    }
    Ok(salt)
}

/// The keyed name of a repository: SHA-256 of the salt and the normalized URL.
fn salted_key(salt: &str, url: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"berth git cache v2\0");
    hasher.update(salt.as_bytes());
    hasher.update(b"\0");
    hasher.update(normalize_url(url).as_bytes());
    hasher.finalize().iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// `bytes` random bytes from the kernel, as hex: names nobody can guess (scratch directories, the salt).
pub(crate) fn random_hex(bytes: usize) -> Result<String, std::io::Error> {
    use std::io::Read;
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

pub fn is_full_sha(s: &str) -> bool {
    s.len() == 40 && s.chars().all(|c| c.is_ascii_hexdigit())
}

/// One spelling per repository: owned by [`crate::url::normalize`], re-exported where callers look for it.
pub use crate::url::normalize as normalize_url;

/// The key of what a remote answered one set of credentials for one repository.
fn access_key(url: &str, creds: &Credentials) -> String {
    format!("{}\0{}", normalize_url(url), creds.identity())
}

/// Removes `user:password@` from every URL in a text.
pub fn scrub_url(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("://") {
        let (head, tail) = rest.split_at(pos + 3);
        out.push_str(head);
        let end =
            tail.find(|c: char| c.is_whitespace() || c == '/' || c == '\'' || c == '"').unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => {
                out.push_str("***@");
                out.push_str(&authority[at + 1..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_url_removes_userinfo_everywhere() {
        assert_eq!(
            scrub_url(
                "fatal: could not read from https://bob:hunter2@git.example.com/repo.git and ssh://git@h/x"
            ),
            "fatal: could not read from https://***@git.example.com/repo.git and ssh://***@h/x"
        );
        assert_eq!(scrub_url("no urls here"), "no urls here");
    }

    #[test]
    fn urls_that_differ_only_in_spelling_share_a_cache_entry() {
        let salt = "0".repeat(64);
        assert_eq!(
            salted_key(&salt, "https://Git.Example.com/org/repo.git/"),
            salted_key(&salt, "https://git.example.com/org/repo")
        );
        assert_ne!(
            salted_key(&salt, "https://git.example.com/org/a"),
            salted_key(&salt, "https://git.example.com/org/b")
        );
    }

    #[test]
    fn cache_names_depend_on_a_secret_salt_kept_in_the_cache_root() {
        let tmp = tempfile::tempdir().unwrap();
        let url = "https://git.example.com/org/repo";
        let first = GitCache::new(tmp.path()).key(url).unwrap();
        // Stable across restarts of the same cache.
        assert_eq!(GitCache::new(tmp.path()).key(url).unwrap(), first);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(tmp.path().join(SALT_FILE)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // Another cache (another salt) names the same URL differently, and neither is the bare URL hash.
        let other = tempfile::tempdir().unwrap();
        assert_ne!(GitCache::new(other.path()).key(url).unwrap(), first);
        let unsalted: String = Sha256::digest(normalize_url(url).as_bytes())
            .iter()
            .take(12)
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(!first.starts_with(&unsalted), "{first}");
    }

    #[tokio::test]
    async fn shas_that_are_not_full_hex_never_reach_git() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = GitCache::new(tmp.path());
        let url = "https://git.example.com/org/repo";
        assert!(matches!(cache.tree(url, "--output=/tmp/x").await, Err(GitError::Invalid(_))));
        assert!(matches!(cache.commit_info(url, "-p").await, Err(GitError::Invalid(_))));
        assert!(matches!(cache.changed_files(url, "--output=x", "HEAD").await, Err(GitError::Invalid(_))));
        assert!(matches!(
            cache.fetch(url, "--upload-pack=x", &Credentials::default()).await,
            Err(GitError::Invalid(_))
        ));
    }

    /// A cache of `file://` repositories whose observer writes down each event about the remote as
    /// `ls-remote`, `fetch` or `shared`, and each eviction as `evicted` (once per tree); sizes are not written.
    fn observed_cache(root: &Path) -> (GitCache, Arc<Mutex<Vec<String>>>) {
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let log = seen.clone();
        let cache = GitCache::new(root).with_observer(Arc::new(move |event: GitEvent<'_>| {
            let mut log = log.lock();
            match event {
                GitEvent::Request { request, .. } => log.push(request.to_string()),
                GitEvent::LsRemoteShared { .. } => log.push("shared".to_string()),
                GitEvent::TreesEvicted { count } => log.extend((0..count).map(|_| "evicted".to_string())),
                GitEvent::CacheBytes { .. } => {}
            }
        }));
        cache.set_allow_file_urls(true);
        (cache, seen)
    }

    fn count(seen: &Mutex<Vec<String>>, what: &str) -> usize {
        seen.lock().iter().filter(|e| *e == what).count()
    }

    #[tokio::test]
    async fn polls_within_their_period_share_one_ls_remote_and_only_real_requests_are_counted() {
        let repo = berth_testkit::GitRepo::new();
        let first = repo.write("a.yaml", "a: 1\n").commit("first");
        let tmp = tempfile::tempdir().unwrap();
        let (cache, seen) = observed_cache(tmp.path());
        let (url, none, period) = (repo.url(), Credentials::default(), Duration::from_secs(120));
        for _ in 0..3 {
            assert_eq!(cache.resolve(&url, "main", &none, period).await.unwrap(), first);
        }
        assert_eq!((count(&seen, "ls-remote"), count(&seen, "shared")), (1, 2));
        // The trade-off: a poll within the period does not see a push; a refresh asked after it does.
        let second = repo.write("a.yaml", "a: 2\n").commit("second");
        assert_eq!(cache.resolve(&url, "main", &none, period).await.unwrap(), first);
        assert_eq!(cache.resolve_since(&url, "main", &none, Instant::now()).await.unwrap(), second);
        assert_eq!(cache.resolve(&url, "main", &none, period).await.unwrap(), second);
        assert_eq!((count(&seen, "ls-remote"), count(&seen, "shared")), (2, 4));
        // A fetch is a request too, made once per commit.
        cache.fetch(&url, &second, &none).await.unwrap();
        cache.fetch(&url, &second, &none).await.unwrap();
        assert_eq!(count(&seen, "fetch"), 1);
        assert_eq!(seen.lock().len(), 7, "local git commands (init, log, diff) are not requests");
    }

    #[tokio::test]
    async fn refreshes_asked_before_an_ls_remote_started_are_all_answered_by_it() {
        let repo = berth_testkit::GitRepo::new();
        let sha = repo.write("a.yaml", "a: 1\n").commit("first");
        let tmp = tempfile::tempdir().unwrap();
        let (cache, seen) = observed_cache(tmp.path());
        let (cache, url, none) = (Arc::new(cache), repo.url(), Credentials::default());
        // A burst: every request asked before the first ls-remote started, all waiting behind it.
        let asked = Instant::now();
        let mut burst = tokio::task::JoinSet::new();
        for _ in 0..50 {
            let (cache, url, none) = (cache.clone(), url.clone(), none.clone());
            burst.spawn(async move { cache.resolve_since(&url, "main", &none, asked).await.unwrap() });
        }
        for answer in burst.join_all().await {
            assert_eq!(answer, sha);
        }
        assert_eq!((count(&seen, "ls-remote"), count(&seen, "shared")), (1, 49));
        // A refresh asked after that ls-remote started needs the next one.
        cache.resolve_since(&url, "main", &none, Instant::now()).await.unwrap();
        assert_eq!(count(&seen, "ls-remote"), 2);
    }

    #[tokio::test]
    async fn other_credentials_never_share_an_ls_remote() {
        let repo = berth_testkit::GitRepo::new();
        repo.write("a.yaml", "a: 1\n").commit("first");
        let tmp = tempfile::tempdir().unwrap();
        let (cache, seen) = observed_cache(tmp.path());
        let url = repo.url();
        let other =
            Credentials { username: Some("bob".into()), password: Some("x".into()), ..Default::default() };
        let asked = Instant::now();
        cache.resolve_since(&url, "main", &Credentials::default(), asked).await.unwrap();
        cache.resolve_since(&url, "main", &other, asked).await.unwrap();
        assert_eq!((count(&seen, "ls-remote"), count(&seen, "shared")), (2, 0));
    }

    /// A repository of `n` commits whose trees take the same bytes on disk (one file rewritten with as many
    /// bytes each time), its commits, and those bytes.
    async fn equal_trees(n: usize) -> (berth_testkit::GitRepo, Vec<String>, u64) {
        let repo = berth_testkit::GitRepo::new();
        let padding = "x".repeat(6000);
        let shas: Vec<String> = (0..n)
            .map(|i| repo.write("apps/a.yaml", &format!("n: {i:04}\n# {padding}\n")).commit(&format!("c{i}")))
            .collect();
        let probe = tempfile::tempdir().unwrap();
        let (cache, _) = observed_cache(probe.path());
        drop(take(&cache, &repo.url(), &shas[0]).await);
        let bytes = cache.trees.lock().bytes;
        assert!(bytes > 6000, "{bytes}");
        (repo, shas, bytes)
    }

    async fn take(cache: &GitCache, url: &str, sha: &str) -> ExtractedTree {
        cache.fetch(url, sha, &Credentials::default()).await.unwrap();
        cache.tree(url, sha).await.unwrap()
    }

    /// The names under `<root>/trees`, sorted: trees, and any scratch or evicted directory left.
    fn trees_on_disk(root: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(root.join("trees"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn tree_names(cache: &GitCache, url: &str, shas: &[&String]) -> Vec<String> {
        let key = cache.key(url).unwrap();
        let mut names: Vec<String> = shas.iter().map(|sha| format!("{key}-{sha}")).collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn trees_past_their_cap_are_evicted_least_recently_used_first() {
        let (repo, shas, each) = equal_trees(6).await;
        let tmp = tempfile::tempdir().unwrap();
        let (cache, seen) = observed_cache(tmp.path());
        let cap = each * 5 / 2;
        let (cache, url) = (cache.with_max_tree_bytes(cap), repo.url());
        drop(take(&cache, &url, &shas[0]).await);
        drop(take(&cache, &url, &shas[1]).await);
        // The first is used again: the second is now the least recently used, and goes for the third.
        drop(take(&cache, &url, &shas[0]).await);
        drop(take(&cache, &url, &shas[2]).await);
        assert_eq!(trees_on_disk(tmp.path()), tree_names(&cache, &url, &[&shas[0], &shas[2]]));
        for sha in &shas[3..] {
            let tree = take(&cache, &url, sha).await;
            assert!(tree.join("apps/a.yaml").is_file(), "the tree just asked for stays");
            let on_disk: u64 =
                trees_on_disk(tmp.path()).iter().map(|n| disk_bytes(&tmp.path().join("trees").join(n))).sum();
            assert_eq!(cache.trees.lock().bytes, on_disk, "the index counts what is on disk");
            assert!(on_disk <= cap, "{on_disk} > {cap}");
        }
        assert_eq!(trees_on_disk(tmp.path()), tree_names(&cache, &url, &[&shas[4], &shas[5]]));
        assert_eq!(count(&seen, "evicted"), 4);
    }

    #[tokio::test]
    async fn a_tree_held_by_a_caller_is_never_evicted() {
        let (repo, shas, each) = equal_trees(4).await;
        let tmp = tempfile::tempdir().unwrap();
        let (cache, _) = observed_cache(tmp.path());
        let cap = each * 3 / 2;
        let (cache, url) = (cache.with_max_tree_bytes(cap), repo.url());
        let held = take(&cache, &url, &shas[0]).await;
        let content = std::fs::read_to_string(held.join("apps/a.yaml")).unwrap();
        for sha in &shas[1..] {
            drop(take(&cache, &url, sha).await);
            assert_eq!(std::fs::read_to_string(held.join("apps/a.yaml")).unwrap(), content);
            assert!(cache.trees.lock().bytes <= cap + each, "past the cap by the held tree at most");
        }
        assert_eq!(trees_on_disk(tmp.path()), tree_names(&cache, &url, &[&shas[0], &shas[3]]));
        // Let go, it is the least recently used tree: the next one makes room by it.
        drop(held);
        drop(take(&cache, &url, &shas[1]).await);
        assert_eq!(trees_on_disk(tmp.path()), tree_names(&cache, &url, &[&shas[1]]));
    }

    #[tokio::test]
    async fn a_tree_deleted_behind_the_caches_back_is_extracted_again() {
        let (repo, shas, each) = equal_trees(1).await;
        let tmp = tempfile::tempdir().unwrap();
        let (cache, _) = observed_cache(tmp.path());
        let url = repo.url();
        let first = take(&cache, &url, &shas[0]).await;
        let path = first.to_path_buf();
        drop(first);
        std::fs::remove_dir_all(&path).unwrap();
        let again = take(&cache, &url, &shas[0]).await;
        assert!(again.join("apps/a.yaml").is_file());
        assert_eq!(cache.trees.lock().bytes, each, "counted once");
    }

    #[tokio::test]
    async fn a_commit_pruned_from_the_clone_is_fetched_again_for_its_tree() {
        let (repo, shas, _) = equal_trees(1).await;
        let tmp = tempfile::tempdir().unwrap();
        let (cache, seen) = observed_cache(tmp.path());
        let url = repo.url();
        let first = cache.checkout(&url, &shas[0], &Credentials::default()).await.unwrap();
        let path = first.to_path_buf();
        drop(first);
        std::fs::remove_dir_all(&path).unwrap();
        let dir = cache.bare_dir(&url).unwrap();
        prune(&dir);
        assert!(!cache.has_commit(&dir, &shas[0]).await, "gc pruned the commit");
        assert!(
            matches!(cache.tree(&url, &shas[0]).await, Err(GitError::RevisionNotFound { .. })),
            "a tree cannot be extracted without its commit"
        );
        let again = cache.checkout(&url, &shas[0], &Credentials::default()).await.unwrap();
        assert!(again.join("apps/a.yaml").is_file());
        assert_eq!(count(&seen, "fetch"), 2, "fetched again");
        // Its metadata, read after another prune, fails once and lets the next fetch fetch it.
        drop(again);
        prune(&dir);
        assert!(cache.commit_info(&url, &shas[0]).await.is_err());
        cache.fetch(&url, &shas[0], &Credentials::default()).await.unwrap();
        assert_eq!(count(&seen, "fetch"), 3, "fetched again");
        assert_eq!(cache.commit_info(&url, &shas[0]).await.unwrap().message, "c0");
    }

    /// What git's gc does to commits fetched under no ref once they are old enough.
    fn prune(dir: &Path) {
        let _ = std::fs::remove_file(dir.join("FETCH_HEAD"));
        let gc = std::process::Command::new("git")
            .arg("--git-dir")
            .arg(dir)
            .args(["-c", "gc.reflogExpireUnreachable=now", "gc", "--quiet", "--prune=now"])
            .status()
            .unwrap();
        assert!(gc.success());
    }

    #[tokio::test]
    async fn an_evicted_tree_is_extracted_again_with_the_same_content() {
        let (repo, shas, _) = equal_trees(2).await;
        let tmp = tempfile::tempdir().unwrap();
        let (cache, seen) = observed_cache(tmp.path());
        let (cache, url) = (cache.with_max_tree_bytes(1), repo.url());
        let first = take(&cache, &url, &shas[0]).await;
        let (path, content) =
            (first.to_path_buf(), std::fs::read_to_string(first.join("apps/a.yaml")).unwrap());
        drop(first);
        drop(take(&cache, &url, &shas[1]).await);
        assert!(!path.exists(), "evicted for the second tree");
        let again = take(&cache, &url, &shas[0]).await;
        assert_eq!(again.path(), path);
        assert_eq!(std::fs::read_to_string(again.join("apps/a.yaml")).unwrap(), content);
        assert_eq!(count(&seen, "fetch"), 2, "the clone kept the commit: nothing is fetched again");
    }

    #[tokio::test]
    async fn trees_a_previous_run_left_are_counted_and_its_scratch_directories_deleted() {
        let (repo, shas, each) = equal_trees(3).await;
        let tmp = tempfile::tempdir().unwrap();
        let url = repo.url();
        {
            let (cache, _) = observed_cache(tmp.path());
            drop(take(&cache, &url, &shas[0]).await);
            drop(take(&cache, &url, &shas[1]).await);
        }
        let scratch = tmp.path().join("trees").join(".0123-4567.tmp");
        std::fs::create_dir_all(scratch.join("apps")).unwrap();
        // Restarted with a cap of a tree and a half: the trees found are older than any asked for since.
        let (cache, _) = observed_cache(tmp.path());
        let cache = cache.with_max_tree_bytes(each * 3 / 2);
        let tree = take(&cache, &url, &shas[2]).await;
        assert!(!scratch.exists());
        assert_eq!(trees_on_disk(tmp.path()), tree_names(&cache, &url, &[&shas[2]]));
        assert_eq!(cache.trees.lock().bytes, each);
        let clones: Vec<u64> = cache.clone_bytes.lock().values().copied().collect();
        assert!(clones.len() == 1 && clones[0] > 0, "the clone is measured: {clones:?}");
        drop(tree);
    }

    #[test]
    fn credentials_debug_hides_secrets() {
        let c = Credentials {
            username: Some("bob".into()),
            password: Some("hunter2".into()),
            ssh_private_key: Some("-----BEGIN KEY".into()),
            insecure: false,
        };
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("BEGIN"), "{shown}");
    }
}
