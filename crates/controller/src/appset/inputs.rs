//! What an ApplicationSet's generators read, from this controller: the cluster Secrets it watches, the
//! repositories through its git cache (with the credentials the set's project may use), and the services
//! of the pull-request and SCM generators (`scm.rs`) and the duck-typed resources of clusterDecisionResource
//! (`decisions.rs`). The generators themselves are pure (berth-appset); they run on
//! a blocking thread and reach the async reads here through the runtime's handle.

use berth_api::applicationset::GitGenerator;
use berth_appset::Error;
use berth_appset::generators::clusters::Cluster;
use berth_appset::generators::git::{self, FileGlobbing, RepoFile, RepoListing};
use berth_appset::params::{ParamSet, TemplateMode};
use parking_lot::Mutex;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::Controller;
use crate::clusters::secret::ClusterSecret;

/// The most folders and files one repository listing may hold.
const MAX_ENTRIES: usize = 200_000;
/// The largest file the git files generator reads.
const MAX_FILE_BYTES: u64 = 1024 * 1024;
/// The most bytes of files one generation of a set reads in all.
const MAX_TOTAL_BYTES: u64 = 64 * 1024 * 1024;

/// argocd-cmd-params-cm's key choosing the files generator's globbing.
const NEW_GLOBBING_KEY: &str = "applicationset.enable.new.git.file.globbing";

/// A repository's folders and files (paths only) at one commit.
#[derive(Debug, Default)]
pub(crate) struct Tree {
    directories: Vec<String>,
    files: Vec<String>,
}

/// A (repository, revision) resolved: the commit and its tree.
type Resolved = HashMap<(String, String), (String, Arc<Tree>)>;

/// The inputs of one generation of one set.
pub(crate) struct LiveInputs {
    pub controller: Arc<Controller>,
    pub handle: tokio::runtime::Handle,
    /// The project whose repositories and credentials the git generator may use: the template's (its
    /// `sourceRepos` must allow the repository); `None` when the template's project is itself an
    /// expression (a set only an administrator can make): then only global credentials.
    pub project: Option<String>,
    /// The set's namespace (where the SCM generators' token Secrets are read).
    pub namespace: String,
    /// How old a cached `ls-remote` may be: zero after a webhook, so the push is seen.
    pub max_age: Duration,
    pub cmd_params: Arc<BTreeMap<String, String>>,
    /// Each (repository, revision) resolved once per generation, however many generators read it.
    resolved: Mutex<Resolved>,
    /// Bytes of files the git files generators read in this generation, all calls together (a matrix
    /// calls its second child once per parameter set of the first).
    read_bytes: Mutex<u64>,
}

impl LiveInputs {
    pub fn new(
        controller: Arc<Controller>,
        project: Option<String>,
        namespace: String,
        max_age: Duration,
        cmd_params: Arc<BTreeMap<String, String>>,
    ) -> LiveInputs {
        LiveInputs {
            controller,
            handle: tokio::runtime::Handle::current(),
            project,
            namespace,
            max_age,
            cmd_params,
            resolved: Mutex::default(),
            read_bytes: Mutex::default(),
        }
    }

    /// The commits each generated (repository, revision) resolved to, for the set's status and logs.
    pub fn revisions(&self) -> Vec<String> {
        let resolved = self.resolved.lock();
        let mut shas: Vec<String> = resolved.values().map(|(sha, _)| sha.clone()).collect();
        shas.sort();
        shas.dedup();
        shas
    }

    /// The credentials the set may read `url` with: its project's (which must allow the repository), or any
    /// repository Secret's for a set without one.
    fn credentials(&self, url: &str) -> Result<berth_repo::git::Credentials, Error> {
        let c = &self.controller;
        let secrets = c.secrets.state();
        Ok(match &self.project {
            Some(project) => {
                let name = if project.is_empty() { "default" } else { project.as_str() };
                let found = c
                    .projects
                    .get(&kube::runtime::reflector::ObjectRef::new(name).within(&c.config.namespace));
                let Some(found) = found else {
                    return Err(Error::invalid("git", "repoURL", format!("project {name} does not exist")));
                };
                crate::project::source_check(name, &found.spec, url)
                    .map_err(|message| Error::invalid("git", "repoURL", message))?;
                crate::credentials::for_url(url, name, secrets.iter().map(|s| &**s))
            }
            None => crate::credentials::for_url_unscoped(url, secrets.iter().map(|s| &**s)),
        })
    }

    /// The tree of `url` at `revision`: resolved, fetched and listed (listings are kept per commit by
    /// the controller, so a thousand sets on one monorepo list it once).
    fn tree(&self, url: &str, revision: &str) -> Result<(String, Arc<Tree>), Error> {
        let key = (url.to_string(), revision.to_string());
        if let Some(found) = self.resolved.lock().get(&key) {
            return Ok(found.clone());
        }
        let c = &self.controller;
        let creds = self.credentials(url)?;
        let read = async {
            let sha = c.git.resolve(url, revision, &creds, self.max_age).await?;
            if let Some(tree) = c.appsets.listing(url, &sha) {
                return Ok::<_, berth_repo::git::GitError>((sha, tree));
            }
            let root = c.git.checkout(url, &sha, &creds).await?;
            let tree = tokio::task::spawn_blocking(move || list_tree(&root))
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))?
                .map_err(std::io::Error::other)?;
            let tree = Arc::new(tree);
            c.appsets.remember_listing(url, &sha, tree.clone());
            Ok((sha, tree))
        };
        let found = self.handle.block_on(read).map_err(|e| {
            Error::invalid("git", "repoURL", format!("{url} at {:?}: {e}", display_revision(revision)))
        })?;
        self.resolved.lock().insert(key, found.clone());
        Ok(found)
    }
}

fn display_revision(revision: &str) -> &str {
    if revision.trim().is_empty() { "HEAD" } else { revision }
}

impl berth_appset::set::Inputs for LiveInputs {
    fn clusters(&self) -> Result<Vec<Cluster>, Error> {
        let secrets = self.controller.secrets.state();
        Ok(secrets
            .iter()
            .filter(|s| {
                s.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(berth_api::secret_type::LABEL))
                    .map(String::as_str)
                    == Some(berth_api::secret_type::CLUSTER)
            })
            .filter_map(|s| ClusterSecret::for_generator(s))
            .collect())
    }

    fn in_cluster_enabled(&self) -> bool {
        self.controller.settings().in_cluster_enabled
    }

    fn repository(&self, generator: &GitGenerator) -> Result<RepoListing, Error> {
        let revision = generator.revision.as_deref().unwrap_or_default();
        let (sha, tree) = self.tree(&generator.repo_url, revision)?;
        let mut listing = RepoListing { directories: tree.directories.clone(), files: Vec::new() };
        if generator.directories.is_empty() && !generator.files.is_empty() {
            let wanted: std::collections::HashSet<String> =
                git::matching_files(generator, &tree.files, self.file_globbing())?.into_iter().collect();
            let creds = self.credentials(&generator.repo_url)?;
            let root = self
                .handle
                .block_on(self.controller.git.checkout(&generator.repo_url, &sha, &creds))
                .map_err(|e| Error::invalid("git", "repoURL", format!("{}: {e}", generator.repo_url)))?;
            // Only the files a pattern matches are read; the listing names the others for the checks.
            let mut total = self.read_bytes.lock();
            for path in &tree.files {
                if !wanted.contains(path) {
                    listing.files.push(RepoFile { path: path.clone(), content: Vec::new() });
                    continue;
                }
                let content = read_file(&root, path, &mut total)
                    .map_err(|message| Error::invalid("git", "files", format!("{path}: {message}")))?;
                listing.files.push(RepoFile { path: path.clone(), content });
            }
        }
        Ok(listing)
    }

    fn file_globbing(&self) -> FileGlobbing {
        if self.cmd_params.get(NEW_GLOBBING_KEY).is_some_and(|v| v.trim() == "true") {
            FileGlobbing::DoubleStar
        } else {
            FileGlobbing::Greedy
        }
    }

    fn service(&self, kind: &'static str, spec: &Value, mode: TemplateMode) -> Result<Vec<ParamSet>, Error> {
        let client = &self.controller.client;
        if kind == "clusterDecisionResource" {
            // Argo CD reads the ConfigMap and the resources in its own namespace, whatever the set's.
            let clusters = berth_appset::set::Inputs::clusters(self)?;
            return self.handle.block_on(super::decisions::decision_params(
                client,
                &self.controller.config.namespace,
                spec,
                &clusters,
                self.in_cluster_enabled(),
                mode,
            ));
        }
        self.handle.block_on(super::scm::service_params(
            client,
            &self.namespace,
            kind,
            spec,
            mode,
            &self.cmd_params,
        ))
    }
}

/// One file of an extracted tree, refused past [`MAX_FILE_BYTES`] or when the generation's total passes
/// [`MAX_TOTAL_BYTES`]. Paths come from [`list_tree`]'s own walk, and a symbolic link is never followed.
fn read_file(root: &Path, path: &str, total: &mut u64) -> Result<Vec<u8>, String> {
    let full = root.join(path);
    let meta = std::fs::symlink_metadata(&full).map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".to_string());
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(format!(
            "{} bytes; the files generator reads files of at most {MAX_FILE_BYTES} bytes",
            meta.len()
        ));
    }
    *total += meta.len();
    if *total > MAX_TOTAL_BYTES {
        return Err(format!("the matched files exceed {MAX_TOTAL_BYTES} bytes in all"));
    }
    std::fs::read(&full).map_err(|e| e.to_string())
}

/// Every folder and file under `root`, as paths from it with `/`, sorted; symbolic links are listed as
/// files (as git lists them) and never followed; `.git` is skipped.
pub(crate) fn list_tree(root: &Path) -> Result<Tree, String> {
    let mut tree = Tree::default();
    let mut stack = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| format!("{prefix}: {e}"))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("{prefix}: {e}"))?;
            let Ok(name) = entry.file_name().into_string() else { continue };
            if prefix.is_empty() && name == ".git" {
                continue;
            }
            let path = if prefix.is_empty() { name } else { format!("{prefix}/{name}") };
            let kind = entry.file_type().map_err(|e| format!("{path}: {e}"))?;
            if kind.is_dir() {
                tree.directories.push(path.clone());
                stack.push((entry.path(), path));
            } else {
                tree.files.push(path);
            }
            if tree.directories.len() + tree.files.len() > MAX_ENTRIES {
                return Err(format!("the repository has more than {MAX_ENTRIES} files and folders"));
            }
        }
    }
    tree.directories.sort();
    tree.files.sort();
    Ok(tree)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_lists_folders_and_files_and_never_follows_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("apps/web/overlays/prod")).unwrap();
        std::fs::create_dir_all(root.join(".git/objects")).unwrap();
        std::fs::write(root.join("apps/web/overlays/prod/kustomization.yaml"), "resources: []").unwrap();
        std::os::unix::fs::symlink("/etc", root.join("apps/etc")).unwrap();
        let tree = list_tree(root).unwrap();
        assert_eq!(tree.directories, ["apps", "apps/web", "apps/web/overlays", "apps/web/overlays/prod"]);
        assert_eq!(tree.files, ["apps/etc", "apps/web/overlays/prod/kustomization.yaml"]);
        let mut total = 0;
        assert!(read_file(root, "apps/etc", &mut total).unwrap_err().contains("not a regular file"));
        assert_eq!(
            read_file(root, "apps/web/overlays/prod/kustomization.yaml", &mut total).unwrap(),
            b"resources: []"
        );
    }

    #[test]
    fn a_file_past_the_limit_is_refused_with_its_size() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("big.json"), vec![b' '; MAX_FILE_BYTES as usize + 1]).unwrap();
        let err = read_file(dir.path(), "big.json", &mut 0).unwrap_err();
        assert!(err.contains("at most"), "{err}");
    }
}
