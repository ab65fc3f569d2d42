//! Target: the desired state at one commit — each source's revision resolved, rendered (or a render
//! reused), and the objects prepared (namespaces, tracking annotation, project rules, unknown kinds).

use berth_api::Application;
use berth_api::application::ApplicationSource;
use berth_api::codes::ConditionType;
use berth_engine::resource::{GroupKind, ResourceKey};
use berth_engine::sync::{self};
use berth_repo::git::CommitInfo;
use berth_repo::paths::WatchedPaths;
use berth_repo::render::{self, Manifest};
use berth_repo::render::{Rendered, SourceType};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{app_sources, has_option, hash_of, refresh_annotation, sync_options};
use crate::clusters::Cluster;
use crate::{Controller, Level, project};

/// Why no target could be loaded; displayed as Argo CD words the condition.
#[derive(Clone, Debug, thiserror::Error)]
pub(crate) enum TargetError {
    /// The spec cannot be acted on (no such project, a destination that is not configured…).
    #[error("{0}")]
    InvalidSpec(String),
    /// The Application lives outside the control namespace and its project does not list that namespace
    /// in `sourceNamespaces`: nothing of it is acted on.
    #[error("{0}")]
    ProjectNotPermitted(String),
    #[error("Failed to load target state: failed to resolve revision {revision:?}: {message}")]
    Resolve { revision: String, message: String },
    #[error("Failed to load target state: failed to fetch {sha}: {message}")]
    Fetch { sha: String, message: String },
    #[error("Failed to load target state: failed to check out {sha}: {message}")]
    Checkout { sha: String, message: String },
    /// The source's tool failed, or the render task stopped.
    #[error("Failed to load target state: {0}")]
    Render(String),
}

impl TargetError {
    /// The condition an Application carries while its target cannot be loaded.
    pub(crate) fn condition(&self) -> ConditionType {
        match self {
            Self::InvalidSpec(_) => ConditionType::InvalidSpecError,
            // Argo CD reports a project the application may not use as an UnknownError.
            Self::ProjectNotPermitted(_) => ConditionType::UnknownError,
            _ => ConditionType::ComparisonError,
        }
    }
}

/// The desired state at one commit, ready to compare and apply.
#[derive(Clone)]
pub(crate) struct Target {
    pub(crate) revision: String,
    /// Every source's commit (multiple sources only).
    pub(crate) revisions: Vec<String>,
    pub(crate) source_type: SourceType,
    pub(crate) commit: Option<CommitInfo>,
    pub(crate) objects: Vec<Desired>,
    /// Errors that make this target unsafe to sync (render failed, unknown kind...).
    pub(crate) errors: Vec<String>,
    pub(crate) warnings: Vec<(ConditionType, String)>,
}

impl Target {
    /// A target of `objects` at `revision` with nothing to report, for tests of the stages after it.
    #[cfg(test)]
    pub(crate) fn of(revision: &str, objects: Vec<Desired>) -> Target {
        Target {
            revision: revision.into(),
            revisions: vec![],
            source_type: SourceType::Directory,
            commit: None,
            objects,
            errors: vec![],
            warnings: vec![],
        }
    }

    /// The commit of each source, as an operation pins them.
    pub(crate) fn commits(&self) -> &[String] {
        if self.revisions.is_empty() { std::slice::from_ref(&self.revision) } else { &self.revisions }
    }
}

#[derive(Clone)]
pub(crate) struct Desired {
    pub(crate) key: ResourceKey,
    pub(crate) file: String,
    pub(crate) object: serde_json::Value,
}

impl Controller {
    /// The source to render, or why the spec cannot be acted on.
    /// The sources to render (one, or `spec.sources`), or why the spec cannot be acted on.
    pub(crate) fn validate(&self, app: &Application) -> Result<Vec<ApplicationSource>, TargetError> {
        self.check_source_namespace(app).map_err(TargetError::ProjectNotPermitted)?;
        self.check_spec(app).map_err(TargetError::InvalidSpec)
    }

    /// Whether the application's project accepts Applications from its namespace (a project that does
    /// not exist is the spec check's to report).
    pub(crate) fn check_source_namespace(&self, app: &Application) -> Result<(), String> {
        let project = if app.spec.project.is_empty() { "default" } else { &app.spec.project };
        let project_key = kube::runtime::reflector::ObjectRef::new(project).within(&self.config.namespace);
        let Some(proj) = self.projects.get(&project_key) else { return Ok(()) };
        project::source_namespace_check(
            app.metadata.name.as_deref().unwrap_or_default(),
            app.metadata.namespace.as_deref().unwrap_or_default(),
            &self.config.namespace,
            project,
            &proj.spec.source_namespaces,
        )
    }

    fn check_spec(&self, app: &Application) -> Result<Vec<ApplicationSource>, String> {
        let project = if app.spec.project.is_empty() { "default" } else { &app.spec.project };
        let project_key = kube::runtime::reflector::ObjectRef::new(project).within(&self.config.namespace);
        let Some(proj) = self.projects.get(&project_key) else {
            return Err(format!("Application referencing project {project} which does not exist"));
        };
        let dest = &app.spec.destination;
        let cluster = self.cluster_of(app).map_err(|e| e.to_string())?;
        let sources = app_sources(app);
        if sources.is_empty() {
            return Err("spec.source: no source is set".into());
        }
        let field = |i: usize| {
            if app.spec.sources.is_empty() { "spec.source".to_string() } else { format!("spec.sources[{i}]") }
        };
        for (i, source) in sources.iter().enumerate() {
            if source.repo_url.is_empty() {
                return Err(format!("{}.repoURL is empty", field(i)));
            }
            if source.plugin.is_some() {
                return Err(format!("{}.plugin: config management plugins are not supported", field(i)));
            }
            if source.chart.is_some() && source.path.is_some() {
                return Err(format!(
                    "{}: set either chart (a Helm repository) or path (a git repository), not both",
                    field(i)
                ));
            }
            project::source_check(project, &proj.spec, &source.repo_url)?;
        }
        let namespace = dest.namespace.as_deref().unwrap_or_default();
        let scoped_to = cluster.project.as_deref();
        project::destination_check(
            project,
            &proj.spec,
            &cluster.server,
            &cluster.name,
            scoped_to,
            namespace,
        )?;
        if !namespace.is_empty() {
            let name = app.metadata.name.as_deref().unwrap_or_default();
            cluster
                .manages("Application", name, Some(namespace))
                .map_err(|e| format!("spec.destination.namespace: {e}"))?;
        }
        let retry = app.spec.sync_policy.as_ref().and_then(|p| p.retry.as_ref());
        crate::retry::check(retry, "spec.syncPolicy.retry")?;
        Ok(sources)
    }

    /// Resolves each source's revision (git ls-remote; reused within the polling period unless refreshed),
    /// renders the sources (cached by commit and source; `ref` sources only lend their files to `$ref/…`
    /// value files), and prepares the objects.
    pub(crate) async fn target(
        &self,
        app: &Application,
        sources: &[ApplicationSource],
        revisions: Option<&[String]>,
        level: Level,
        sync: bool,
    ) -> Result<Target, TargetError> {
        let mut shas = Vec::new();
        for (i, source) in sources.iter().enumerate() {
            let explicit = revisions.and_then(|r| r.get(i)).filter(|r| !r.is_empty());
            shas.push(self.resolve(app, source, explicit.map(String::as_str), level, sync).await?);
        }
        let mut refs = BTreeMap::new();
        // The `ref` sources' trees stay on disk (not evicted from the git cache) until the renders are done.
        let mut held = Vec::new();
        for (source, sha) in sources.iter().zip(&shas) {
            if let Some(r) = source.reference.as_deref().filter(|r| !r.is_empty()) {
                let creds = self.creds_for(app, &source.repo_url);
                self.git
                    .fetch(&source.repo_url, sha, &creds)
                    .await
                    .map_err(|e| TargetError::Fetch { sha: sha.clone(), message: e.to_string() })?;
                let tree = self
                    .git
                    .checkout(&source.repo_url, sha, &creds)
                    .await
                    .map_err(|e| TargetError::Checkout { sha: sha.clone(), message: e.to_string() })?;
                refs.insert(r.to_string(), (sha.clone(), tree.to_path_buf()));
                held.push(tree);
            }
        }
        let mut manifests = Vec::new();
        let mut commit = None;
        let mut source_type = None;
        let single = sources.len() == 1;
        for (source, sha) in sources.iter().zip(&shas) {
            let ref_only = source.reference.is_some() && source.path.is_none() && source.chart.is_none();
            if ref_only {
                continue;
            }
            let rendered = self.render(app, source, sha, level, &refs, single && revisions.is_none()).await?;
            manifests.extend(rendered.manifests.clone().map_err(TargetError::Render)?);
            commit = commit.or(rendered.commit.clone());
            source_type = source_type.or(Some(rendered.source_type));
        }
        drop(held);
        let revision = shas.first().cloned().unwrap_or_default();
        let mut target = self.prepare(app, revision, commit, manifests).await?;
        target.revisions = if app.spec.sources.is_empty() { vec![] } else { shas };
        target.source_type = source_type.unwrap_or(SourceType::Directory);
        Ok(target)
    }

    /// The commit a source's revision points at (the chart version for a Helm repository source).
    pub(crate) async fn resolve(
        &self,
        app: &Application,
        source: &ApplicationSource,
        revision: Option<&str>,
        level: Level,
        sync: bool,
    ) -> Result<String, TargetError> {
        let name = self.instance_of(app);
        let wanted = revision
            .map(str::to_string)
            .unwrap_or_else(|| source.target_revision.clone().unwrap_or_default());
        if source.chart.is_some() {
            // A Helm repository: the revision is the chart version, resolved by helm itself.
            return Ok(wanted);
        }
        let wanted = if wanted.is_empty() { "HEAD".to_string() } else { wanted };
        let source_hash = resolution_key(source, &wanted);
        let cached = self.memo.lock().get(&name).and_then(|m| m.resolved.get(&source_hash).cloned());
        if let Some(sha) = cached.as_ref().filter(|_| level < Level::Refresh && revision.is_none()) {
            return Ok(sha.clone());
        }
        // A refresh asked for (the annotation, the API, a webhook), a hard refresh, a sync, or a source not
        // resolved before (a new or changed spec) sees every commit pushed before its pass started: refs
        // from an ls-remote that started after that, shared by the passes that started before it. (Not from
        // when the refresh was asked: the pass clears the refresh annotation at its end, and a second
        // request setting the same annotation meanwhile changes nothing a watch sees, so the refs must be
        // no older than the pass.) So does the first pass over an application since this replica started
        // or took it over: what it knew before is gone, and a refresh announced meanwhile may have been
        // removed by the replica that had it. A poll shares the refs of an ls-remote started within the
        // polling period ([`poll_refs_age`]), and so does the API's view of an application another replica
        // owns (which is not remembered here: the owner's pass, not a page view, must be its first).
        let owned = self.replicas.owns(&name);
        let asked = refresh_annotation(app).is_some()
            || self.pass_explicit(&name)
            || sync
            || level == Level::HardRefresh
            || (cached.is_none() && owned);
        let creds = self.creds_for(app, &source.repo_url);
        let resolved = if asked {
            self.git.resolve_since(&source.repo_url, &wanted, &creds, self.pass_started(&name)).await
        } else {
            self.git.resolve(&source.repo_url, &wanted, &creds, poll_refs_age(&self.settings())).await
        };
        let sha = resolved
            .map_err(|e| TargetError::Resolve { revision: wanted.clone(), message: e.to_string() })?;
        tracing::debug!(app = %name, wanted = %wanted, sha = %sha, asked, "resolved");
        if revision.is_none() && owned {
            let mut memo = self.memo.lock();
            memo.entry(name.clone()).or_default().resolved.insert(source_hash, sha.clone());
        }
        Ok(sha)
    }

    /// The rendered source at `sha`: from the render cache; or, for a new commit that changes no file the
    /// application depends on, the render of its previous commit (a monorepo commit re-renders only the
    /// apps it touches); or rendered now with the source's tool. `remember` keeps the render as the app's
    /// current one (single-source targets of the app's own revision).
    pub(crate) async fn render(
        &self,
        app: &Application,
        source: &ApplicationSource,
        sha: &str,
        level: Level,
        refs: &BTreeMap<String, (String, PathBuf)>,
        remember: bool,
    ) -> Result<Arc<Rendered>, TargetError> {
        let name = self.instance_of(app);
        let source_key = render_key_of_source(source, &self.settings().kustomize);
        let ref_shas: Vec<(&String, &String)> = refs.iter().map(|(k, (sha, _))| (k, sha)).collect();
        // Helm reads the release name, namespace and cluster versions: sources that may be charts key on them.
        let maybe_helm = source.directory.is_none() && source.kustomize.is_none();
        let cluster = if maybe_helm { Some(self.cluster_of(app)?.versions().await) } else { None };
        let app_bound = maybe_helm.then_some((&app.metadata.name, &app.spec.destination.namespace));
        let cluster_hash = cluster.as_ref().map(|(_, hash)| *hash);
        // A render made with one project's credentials is not another's: the key holds which were used.
        let creds = self.creds_for(app, &source.repo_url);
        let creds_key = hash_of(&(&creds.username, &creds.password, &creds.ssh_private_key, creds.insecure));
        let render_key = hash_of(&(source_key, sha, &ref_shas, cluster_hash, app_bound, creds_key));
        let cluster = cluster.map(|(versions, _)| versions);
        if level == Level::HardRefresh {
            self.renders.remove(render_key);
        }
        let rendered = match self.cached_render(render_key).await {
            Some(r) => r,
            None => {
                let rendered =
                    self.render_now(app, source, sha, level, refs, remember, source_key, cluster).await?;
                self.keep_render(render_key, &rendered).await;
                rendered
            }
        };
        if remember {
            let mut memo = self.memo.lock();
            let m = memo.entry(name).or_default();
            m.rendered = Some(rendered.clone());
            m.rendered_from = Some((source_key, sha.to_string()));
        }
        Ok(rendered)
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn render_now(
        &self,
        app: &Application,
        source: &ApplicationSource,
        sha: &str,
        level: Level,
        refs: &BTreeMap<String, (String, PathBuf)>,
        single: bool,
        source_key: u64,
        cluster: Option<Arc<(String, Vec<String>)>>,
    ) -> Result<Arc<Rendered>, TargetError> {
        let name = self.instance_of(app);
        let creds = self.creds_for(app, &source.repo_url);
        // Helm's release name is the Application's own name, wherever it lives.
        let mut ctx = render::ToolContext::new(
            app.metadata.name.as_deref().unwrap_or_default(),
            app.spec.destination.namespace.as_deref().unwrap_or_default(),
            self.config.cache_dir.join("render"),
        );
        if let Some(versions) = cluster {
            ctx.kube_version = versions.0.clone();
            ctx.api_versions = versions.1.clone();
        }
        ctx.refs = refs.iter().map(|(k, (_, tree))| (k.clone(), tree.clone())).collect();
        ctx.kustomize_settings = self.settings().kustomize.clone();
        if let Some(chart) = source.chart.clone() {
            // A chart from a Helm repository (HTTP or OCI).
            ctx.network = true;
            let helm_creds = render::helm::HelmCredentials {
                username: creds.username.clone(),
                password: creds.password.clone(),
                insecure: creds.insecure,
                ..Default::default()
            };
            let (url, helm, version) = (source.repo_url.clone(), source.helm.clone(), sha.to_string());
            let manifests = tokio::task::spawn_blocking(move || {
                render::helm::render_helm_chart(&url, &chart, &version, helm.as_ref(), &ctx, &helm_creds)
            })
            .await
            .map_err(|e| TargetError::Render(format!("the render stopped: {e}")))?
            .map_err(|e| e.to_string());
            return Ok(Arc::new(Rendered {
                manifests,
                commit: None,
                source_type: SourceType::Helm,
                inputs: vec![],
            }));
        }
        self.git
            .fetch(&source.repo_url, sha, &creds)
            .await
            .map_err(|e| TargetError::Fetch { sha: sha.to_string(), message: e.to_string() })?;
        let commit = self.git.commit_info(&source.repo_url, sha).await.ok();
        let previous = {
            let memo = self.memo.lock();
            memo.get(&name).and_then(|m| Some((m.rendered.clone()?, m.rendered_from.clone()?)))
        };
        if single
            && refs.is_empty()
            && level < Level::HardRefresh
            && let Some((prev, (prev_key, prev_sha))) = previous
            && prev_key == source_key
            && prev_sha != sha
            && prev.manifests.is_ok()
            && let Ok(changed) = self.git.changed_files(&source.repo_url, &prev_sha, sha).await
            && !render_concerned(app, source, &prev.inputs, &changed)
        {
            tracing::debug!(target: "berth::render", app = %name, from = %prev_sha, to = %sha, "reused: no input changed");
            return Ok(Arc::new(Rendered {
                manifests: prev.manifests.clone(),
                commit,
                source_type: prev.source_type,
                inputs: prev.inputs.clone(),
            }));
        }
        let tree = self
            .git
            .checkout(&source.repo_url, sha, &creds)
            .await
            .map_err(|e| TargetError::Checkout { sha: sha.to_string(), message: e.to_string() })?;
        let source = source.clone();
        let render_started = Instant::now();
        let (source_type, manifests, inputs) =
            tokio::task::spawn_blocking(move || render::render_source(&source, &tree, &ctx))
                .await
                .map_err(|e| TargetError::Render(format!("the render stopped: {e}")))?;
        tracing::debug!(target: "berth::render", app = %name, sha, %source_type, "rendered");
        crate::metrics::global().rendered(source_type.as_str(), render_started.elapsed());
        let manifests = manifests.map_err(|e| e.to_string());
        Ok(Arc::new(Rendered { manifests, commit, source_type, inputs }))
    }

    /// The render kept under `key` (everything a render depends on but the tools), when it was made with the
    /// tools installed now: `key` names a render of the source and so its type, and the key with that
    /// type's tool versions ([`ToolVersions::of`]) the render itself. A directory never asks a tool.
    async fn cached_render(&self, key: u64) -> Option<Arc<Rendered>> {
        let any = self.renders.get(key)?;
        self.renders.get(self.tool_versions.key(key, any.source_type).await)
    }

    /// Keeps a render for [`Controller::cached_render`].
    async fn keep_render(&self, key: u64, rendered: &Arc<Rendered>) {
        self.renders.insert(key, rendered);
        self.renders.insert(self.tool_versions.key(key, rendered.source_type).await, rendered);
    }

    /// Namespaces set on namespaced objects that have none, the tracking annotation or label added, unknown kinds
    /// and duplicates reported.
    pub(crate) async fn prepare(
        &self,
        app: &Application,
        revision: String,
        commit: Option<CommitInfo>,
        manifests: Vec<Manifest>,
    ) -> Result<Target, TargetError> {
        let cluster = self.cluster_of(app)?;
        let app_name = self.instance_of(app);
        let settings = self.settings();
        let tracking = &settings.tracking;
        let dest_ns = app
            .spec
            .destination
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".into());
        let mut objects: Vec<Desired> = Vec::new();
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        let mut seen: HashMap<ResourceKey, String> = HashMap::new();
        let project = if app.spec.project.is_empty() { "default" } else { &app.spec.project };
        let proj = self
            .projects
            .get(&kube::runtime::reflector::ObjectRef::new(project).within(&self.config.namespace));
        let skip_dry_run = has_option(&sync_options(app, None), "SkipDryRunOnMissingResource=true");
        // Kinds defined by CRDs of this same source: known before the cluster serves them.
        let crd_kinds: HashMap<GroupKind, bool> = manifests
            .iter()
            .filter(|m| m.object["kind"] == "CustomResourceDefinition")
            .filter_map(|m| {
                let spec = &m.object["spec"];
                let gk = GroupKind {
                    group: spec["group"].as_str()?.to_string(),
                    kind: spec["names"]["kind"].as_str()?.to_string(),
                };
                Some((gk, spec["scope"] != "Cluster"))
            })
            .collect();
        for m in manifests {
            let mut object = m.object;
            let api_version = object["apiVersion"].as_str().unwrap_or_default().to_string();
            let kind = object["kind"].as_str().unwrap_or_default().to_string();
            let gk = GroupKind {
                group: berth_engine::resource::split_api_version(&api_version).0.into(),
                kind: kind.clone(),
            };
            if settings.resource_filter.excludes(&gk.group, &kind, &cluster.server) {
                let name = object["metadata"]["name"].as_str().unwrap_or_default();
                warnings.push((
                    ConditionType::ExcludedResourceWarning,
                    format!(
                        "{}: {kind} {name:?} is not applied: argocd-cm resource.exclusions/resource.inclusions exclude its kind",
                        m.file
                    ),
                ));
                continue;
            }
            let namespaced = match cluster.cache.kind(&gk).await {
                Ok(info) => info.namespaced,
                Err(_) if crd_kinds.contains_key(&gk) => crd_kinds[&gk],
                // Its CRD will be made by something else (an operator this sync installs): like Argo CD,
                // the object is neither dry-run nor refused before its turn comes.
                Err(_)
                    if skip_dry_run || sync::has_sync_option(&object, "SkipDryRunOnMissingResource=true") =>
                {
                    true
                }
                Err(e) => {
                    let name = object["metadata"]["name"].as_str().unwrap_or_default();
                    errors.push(format!("{}: {kind} {name:?}: {e}", m.file));
                    continue;
                }
            };
            let name = object["metadata"]["name"].as_str().unwrap_or_default().to_string();
            let meta = object["metadata"].as_object_mut().expect("rendered objects have metadata");
            if namespaced {
                if meta.get("namespace").and_then(|n| n.as_str()).unwrap_or_default().is_empty() {
                    meta.insert("namespace".into(), dest_ns.clone().into());
                }
            } else {
                meta.remove("namespace");
            }
            // On a cluster berth manages only some namespaces of, an object elsewhere (or cluster-scoped) is
            // refused here, naming it, so nothing of the app is applied.
            let ns = meta.get("namespace").and_then(|n| n.as_str()).filter(|_| namespaced);
            if let Err(e) = cluster.manages(&kind, &name, ns) {
                errors.push(format!("{}: {e}", m.file));
                continue;
            }
            if cluster.server == berth_api::destination::IN_CLUSTER_SERVER
                && let Some(refusal) = crate::appset::own_set_refusal(app, &gk.group, &kind, &name, ns)
            {
                errors.push(format!("{}: {refusal}", m.file));
                continue;
            }
            if let Some(proj) = &proj {
                let proj_name = proj.metadata.name.as_deref().unwrap_or_default();
                let ns = namespaced.then(|| object["metadata"]["namespace"].as_str().unwrap_or_default());
                if let Err(e) = project::object_check(
                    proj_name,
                    &proj.spec,
                    &gk.group,
                    &kind,
                    &name,
                    ns,
                    &cluster.server,
                    &cluster.name,
                    cluster.project.as_deref(),
                ) {
                    errors.push(format!("{}: {e}", m.file));
                    continue;
                }
            }
            let is_hook = sync::hooks::is_hook(&object);
            let key = if is_hook { sync::plan::desired_key(&object) } else { ResourceKey::of(&object) };
            let Some(key) = key else {
                errors.push(format!(
                    "{}: {kind}: metadata.name is missing (generateName is only for hooks)",
                    m.file
                ));
                continue;
            };
            if let Err(e) = tracking.mark(&mut object, &key, &app_name) {
                errors.push(format!("{}: {key}: {e}", m.file));
                continue;
            }
            if let Some(first) = seen.insert(key.clone(), m.file.clone()) {
                warnings.push((
                    ConditionType::RepeatedResourceWarning,
                    format!(
                        "Resource {key} appeared 2 times among application resources ({first}, {})",
                        m.file
                    ),
                ));
                objects.retain(|d| d.key != key);
            }
            objects.push(Desired { key, file: m.file, object });
        }
        Ok(Target {
            revision,
            revisions: vec![],
            source_type: SourceType::Directory,
            commit,
            objects,
            errors,
            warnings,
        })
    }

    /// The cluster `app` deploys to, from the registry; an unknown destination, or the in-cluster while
    /// argocd-cm disables it, is an invalid spec.
    pub(crate) fn cluster_of(&self, app: &Application) -> Result<Arc<Cluster>, TargetError> {
        let secrets = self.secrets.state();
        let in_cluster_enabled = self.settings().in_cluster_enabled;
        self.clusters
            .resolve(&app.spec.destination, secrets.iter().map(|s| &**s), in_cluster_enabled)
            .map_err(TargetError::InvalidSpec)
    }
}

/// The `helm` and `kustomize` versions, part of a render's cache key (a new tool renders again). Each is
/// read once, by the first render that needs it, while the others wait for its answer (a thousand first
/// renders run one `helm version`, not one each), and only for sources of its tool.
#[derive(Default)]
pub(crate) struct ToolVersions {
    helm: tokio::sync::OnceCell<String>,
    kustomize: tokio::sync::OnceCell<String>,
    /// Version commands run so far.
    asked: std::sync::atomic::AtomicUsize,
}

impl ToolVersions {
    /// The versions a render of `source_type` depends on: none for a directory, helm's for a chart, and
    /// both for Kustomize (its `helmCharts` run helm).
    pub(crate) async fn of(&self, source_type: SourceType) -> (Option<&str>, Option<&str>) {
        match source_type {
            SourceType::Directory => (None, None),
            SourceType::Helm => (Some(self.helm().await), None),
            SourceType::Kustomize => (Some(self.helm().await), Some(self.kustomize().await)),
        }
    }

    /// `key` with the versions of `source_type`'s tools.
    async fn key(&self, key: u64, source_type: SourceType) -> u64 {
        hash_of(&(key, self.of(source_type).await))
    }

    async fn helm(&self) -> &str {
        self.helm.get_or_init(|| self.read("helm", &["version", "--short"])).await
    }

    async fn kustomize(&self) -> &str {
        self.kustomize.get_or_init(|| self.read("kustomize", &["version"])).await
    }

    /// What `program args` prints (empty when it cannot run: such renders fail on their own).
    async fn read(&self, program: &'static str, args: &'static [&'static str]) -> String {
        self.asked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tokio::process::Command::new(program)
            .args(args)
            .output()
            .await
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    }
}

/// How old the refs a poll may share are: the polling period (`timeout.reconciliation`; Argo CD keeps refs
/// three minutes, its default period), so a repository's settled applications cost it about one ls-remote
/// a period, whatever their number. The price: a poll may see a push up to one period late (two from the
/// push, at worst). A webhook, a refresh, a sync or a changed source asks git again
/// ([`berth_repo::git::GitCache::resolve_since`]). With polling off only those resolve at all.
pub(crate) fn poll_refs_age(settings: &crate::Settings) -> Duration {
    settings.reconciliation.unwrap_or(DEFAULT_POLL_REFS_AGE)
}

/// [`poll_refs_age`] without a polling period: Argo CD's three minutes.
const DEFAULT_POLL_REFS_AGE: Duration = Duration::from_secs(180);

/// Where the memo keeps the commit `source`'s revision `wanted` resolved to.
pub(crate) fn resolution_key(source: &ApplicationSource, wanted: &str) -> u64 {
    hash_of(&(source, wanted))
}

/// Everything of a source that a render depends on, except the commit.
pub(crate) fn render_source_key(source: &ApplicationSource) -> u64 {
    let mut s = source.clone();
    s.target_revision = None;
    s.repo_url = berth_repo::url::normalize(&source.repo_url);
    hash_of(&s)
}

/// [`render_source_key`] with argocd-cm's Kustomize binaries and build options for a source that may be
/// Kustomize: a change of them renders such sources again.
pub(crate) fn render_key_of_source(
    source: &ApplicationSource,
    kustomize: &berth_repo::render::kustomize::KustomizeSettings,
) -> u64 {
    let maybe_kustomize = source.chart.is_none() && source.helm.is_none() && source.directory.is_none();
    if maybe_kustomize { hash_of(&(render_source_key(source), kustomize)) } else { render_source_key(source) }
}

/// Whether a commit that changed `changed` files concerns the application's render: one of them lies on a
/// path it watches (`manifest-generate-paths`, globs included, or the source path and what its last
/// render read). The one rule the webhook uses too ([`WatchedPaths`]).
pub(crate) fn render_concerned(
    app: &Application,
    source: &ApplicationSource,
    read_inputs: &[String],
    changed: &[String],
) -> bool {
    let watched = WatchedPaths::for_source(app, source, read_inputs);
    changed.iter().any(|file| watched.concerns(file))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(annotation: Option<&str>) -> (Application, ApplicationSource) {
        let mut app: Application = serde_json::from_value(serde_json::json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Application", "metadata": {"name": "web"},
            "spec": {"destination": {"namespace": "web"}, "project": "default",
                     "source": {"repoURL": "https://example.com/r.git", "path": "apps/web/overlays/prod"}}
        }))
        .unwrap();
        if let Some(a) = annotation {
            app.metadata.annotations =
                Some([(berth_api::annotations::MANIFEST_GENERATE_PATHS.to_string(), a.to_string())].into());
        }
        let source = app.spec.source.clone().unwrap();
        (app, source)
    }

    fn changed(files: &[&str]) -> Vec<String> {
        files.iter().map(|f| f.to_string()).collect()
    }

    #[test]
    fn a_glob_in_manifest_generate_paths_renders_again_when_a_matching_file_changes() {
        // The webhook refreshed such an app while the controller reused its previous render.
        let (app, source) = app(Some("/charts/*.yaml"));
        assert!(render_concerned(&app, &source, &[], &changed(&["charts/values.yaml"])));
        assert!(!render_concerned(&app, &source, &[], &changed(&["charts/templates/x.txt", "docs/a.md"])));
    }

    #[test]
    fn without_the_annotation_the_source_path_and_what_the_render_read_are_watched() {
        let (app, source) = app(None);
        let read = ["apps/web/base".to_string()];
        assert!(render_concerned(&app, &source, &read, &changed(&["apps/web/base/deployment.yaml"])));
        assert!(render_concerned(
            &app,
            &source,
            &[],
            &changed(&["apps/web/overlays/prod/kustomization.yaml"])
        ));
        assert!(!render_concerned(&app, &source, &[], &changed(&["apps/web/overlays/prod-eu/k.yaml"])));
        assert!(!render_concerned(&app, &source, &read, &changed(&["apps/api/deployment.yaml"])));
    }

    #[tokio::test]
    async fn tool_versions_are_read_once_and_only_for_the_tools_a_source_type_uses() {
        use std::sync::atomic::Ordering;
        let tools = ToolVersions::default();
        assert_eq!(tools.of(SourceType::Directory).await, (None, None));
        assert_eq!(tools.asked.load(Ordering::Relaxed), 0, "a directory asks no tool its version");
        let first_renders = (0..16).map(|_| tools.of(SourceType::Helm));
        let answers = futures::future::join_all(first_renders).await;
        assert!(answers.iter().all(|a| a.0.is_some() && a.1.is_none()));
        assert_eq!(tools.asked.load(Ordering::Relaxed), 1, "sixteen renders at once ask helm once");
        tools.of(SourceType::Kustomize).await;
        tools.of(SourceType::Kustomize).await;
        assert_eq!(tools.asked.load(Ordering::Relaxed), 2, "then kustomize once");
    }

    #[tokio::test]
    async fn a_render_key_holds_the_versions_of_its_own_tools_only() {
        let tools = ToolVersions::default();
        let directory = tools.key(7, SourceType::Directory).await;
        assert_ne!(directory, 7);
        assert_eq!(directory, hash_of(&(7u64, (None::<&str>, None::<&str>))));
        assert_ne!(tools.key(7, SourceType::Helm).await, directory);
        assert_ne!(tools.key(7, SourceType::Kustomize).await, tools.key(7, SourceType::Helm).await);
    }

    #[test]
    fn the_render_key_ignores_the_revision_but_not_the_options() {
        let (_, source) = app(None);
        let mut moved = source.clone();
        moved.target_revision = Some("v2".into());
        assert_eq!(render_source_key(&source), render_source_key(&moved));
        let mut other = source.clone();
        other.path = Some("apps/web/overlays/staging".into());
        assert_ne!(render_source_key(&source), render_source_key(&other));
    }

    #[test]
    fn the_render_key_of_a_kustomize_source_changes_with_argocd_cms_build_options() {
        use berth_repo::render::kustomize::KustomizeSettings;
        let (_, source) = app(None);
        let settings = |options: &str| {
            let data = [("kustomize.buildOptions".to_string(), options.to_string())].into();
            KustomizeSettings::from_argocd_cm(&data, &mut Vec::new())
        };
        let none = settings("--load-restrictor LoadRestrictionsNone");
        assert_ne!(render_key_of_source(&source, &none), render_key_of_source(&source, &settings("")));
        assert_eq!(render_key_of_source(&source, &none), render_key_of_source(&source, &none.clone()));
        let mut directory = source.clone();
        directory.directory = Some(Default::default());
        assert_eq!(
            render_key_of_source(&directory, &none),
            render_key_of_source(&directory, &settings("")),
            "a directory source does not render again"
        );
    }
}
