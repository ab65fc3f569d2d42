//! What `berth app …` prints, as pure functions of the Application (and its tree): the list table, the
//! `app get` summary, resources flat or as a tree with health, history, and sync progress by phase and wave.

use crate::client::{ApplicationTree, ResourceNode};
use crate::output::{Table, or_none};
use berth_api::Application;
use berth_api::application::{ApplicationSource, OperationState, ResourceResult, ResourceStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;

pub fn name(app: &Application) -> &str {
    app.metadata.name.as_deref().unwrap_or_default()
}

/// The name `berth app …` takes for `app`: `<namespace>/<name>` outside the server's control namespace
/// (`control`), the plain name in it, or whenever the control namespace is not known.
pub fn qualified_name(app: &Application, control: Option<&str>) -> String {
    match (app.metadata.namespace.as_deref(), control) {
        (Some(namespace), Some(control)) if !namespace.is_empty() && namespace != control => {
            format!("{namespace}/{}", name(app))
        }
        _ => name(app).to_string(),
    }
}

pub fn project(app: &Application) -> &str {
    if app.spec.project.is_empty() { "default" } else { &app.spec.project }
}

fn cluster(app: &Application) -> &str {
    let d = &app.spec.destination;
    d.server.as_deref().filter(|s| !s.is_empty()).or(d.name.as_deref()).unwrap_or_default()
}

fn sources(app: &Application) -> Vec<&ApplicationSource> {
    app.spec.source.iter().chain(&app.spec.sources).collect()
}

fn sync_status(app: &Application) -> &str {
    app.status.as_ref().and_then(|s| s.sync.as_ref()).map_or("Unknown", |s| s.status.as_str())
}

fn health_status(app: &Application) -> &str {
    app.status.as_ref().and_then(|s| s.health.as_ref()).and_then(|h| h.status.as_deref()).unwrap_or("Unknown")
}

/// `Manual`, `Auto` or `Auto-Prune`, as `argocd app list` writes it.
fn sync_policy(app: &Application) -> String {
    match app.spec.sync_policy.as_ref().and_then(|p| p.automated.as_ref()) {
        Some(auto) if auto.enabled != Some(false) => {
            if auto.prune == Some(true) {
                "Auto-Prune".into()
            } else {
                "Auto".into()
            }
        }
        _ => "Manual".into(),
    }
}

/// Conditions counted by type in order of appearance: `SyncError,ComparisonError(2)`.
fn conditions_summary(app: &Application) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for condition in app.status.iter().flat_map(|s| &s.conditions) {
        match counts.iter_mut().find(|(t, _)| *t == condition.type_) {
            Some((_, n)) => *n += 1,
            None => counts.push((&condition.type_, 1)),
        }
    }
    let parts: Vec<String> =
        counts.iter().map(|(t, n)| if *n > 1 { format!("{t}({n})") } else { t.to_string() }).collect();
    or_none(&parts.join(","))
}

/// A commit as people read it: seven characters of a SHA, anything else whole.
pub fn short_revision(revision: &str) -> &str {
    if revision.len() == 40 && revision.chars().all(|c| c.is_ascii_hexdigit()) {
        &revision[..7]
    } else {
        revision
    }
}

pub fn time(t: &Time) -> String {
    t.0.strftime("%Y-%m-%d %H:%M:%S +0000 UTC").to_string()
}

/// `app list`: argocd's columns; `wide` adds the synced revision. Apps outside the control namespace
/// `control` are named `<namespace>/<name>` ([`qualified_name`]).
pub fn list_table(apps: &[Application], control: Option<&str>, wide: bool) -> String {
    let mut header = vec![
        "NAME",
        "CLUSTER",
        "NAMESPACE",
        "PROJECT",
        "STATUS",
        "HEALTH",
        "SYNCPOLICY",
        "CONDITIONS",
        "REPO",
        "PATH",
        "TARGET",
    ];
    if wide {
        header.push("REVISION");
    }
    let mut table = Table::new(header);
    for app in apps {
        let source = sources(app).into_iter().next();
        let mut row = vec![
            qualified_name(app, control),
            cluster(app).to_string(),
            app.spec.destination.namespace.clone().unwrap_or_default(),
            project(app).to_string(),
            sync_status(app).to_string(),
            health_status(app).to_string(),
            sync_policy(app),
            conditions_summary(app),
            source.map(|s| s.repo_url.clone()).unwrap_or_default(),
            source.and_then(|s| s.path.clone().or_else(|| s.chart.clone())).unwrap_or_default(),
            source.and_then(|s| s.target_revision.clone()).unwrap_or_default(),
        ];
        if wide {
            let revision =
                app.status.as_ref().and_then(|s| s.sync.as_ref()).and_then(|s| s.revision.as_deref());
            row.push(short_revision(revision.unwrap_or_default()).to_string());
        }
        table.row(row);
    }
    table.render()
}

fn field(out: &mut String, label: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, "{label:<20}{value}");
}

/// The header of `app get`: where it comes from and goes to, its policy, sync and health. `named` is the
/// app as the user named it: `ns/name` links to the UI's page of an app outside the control namespace.
pub fn summary(app: &Application, base_url: &str, named: &str) -> String {
    let mut out = String::new();
    field(&mut out, "Name:", name(app));
    field(&mut out, "Project:", project(app));
    field(&mut out, "Server:", cluster(app));
    field(&mut out, "Namespace:", app.spec.destination.namespace.as_deref().unwrap_or_default());
    field(&mut out, "URL:", format!("{base_url}/applications/{named}"));
    let all = sources(app);
    if !all.is_empty() {
        out.push_str("Source:\n");
    }
    for source in all {
        field(&mut out, "- Repo:", &source.repo_url);
        field(&mut out, "  Target:", source.target_revision.as_deref().unwrap_or_default());
        if let Some(path) = &source.path {
            field(&mut out, "  Path:", path);
        }
        if let Some(chart) = &source.chart {
            field(&mut out, "  Chart:", chart);
        }
    }
    let policy = match app.spec.sync_policy.as_ref().and_then(|p| p.automated.as_ref()) {
        Some(auto) if auto.enabled != Some(false) => {
            let mut flags = Vec::new();
            if auto.prune == Some(true) {
                flags.push("Prune");
            }
            if auto.self_heal == Some(true) {
                flags.push("Self Heal");
            }
            if flags.is_empty() {
                "Automated".to_string()
            } else {
                format!("Automated ({})", flags.join(", "))
            }
        }
        _ => "Manual".to_string(),
    };
    field(&mut out, "Sync Policy:", policy);
    let sync = app.status.as_ref().and_then(|s| s.sync.as_ref());
    let target =
        sources(app).first().and_then(|s| s.target_revision.clone()).unwrap_or_else(|| "HEAD".into());
    let mut sync_text = sync_status(app).to_string();
    if let Some(revision) = sync.and_then(|s| s.revision.as_deref()).filter(|r| !r.is_empty()) {
        let _ = write!(sync_text, " to {target} ({})", short_revision(revision));
    }
    field(&mut out, "Sync Status:", sync_text);
    let health_message = app
        .status
        .as_ref()
        .and_then(|s| s.health.as_ref())
        .and_then(|h| h.message.as_deref())
        .unwrap_or_default();
    if health_message.is_empty() {
        field(&mut out, "Health Status:", health_status(app));
    } else {
        field(&mut out, "Health Status:", format!("{} ({health_message})", health_status(app)));
    }
    let conditions = app.status.iter().flat_map(|s| &s.conditions).collect::<Vec<_>>();
    if !conditions.is_empty() {
        let mut table = Table::new(["CONDITION", "MESSAGE", "LAST TRANSITION"]);
        for c in conditions {
            table.row([
                c.type_.clone(),
                c.message.clone(),
                c.last_transition_time.as_ref().map(time).unwrap_or_default(),
            ]);
        }
        out.push('\n');
        out.push_str(&table.render());
    }
    if let Some(op) = app.status.as_ref().and_then(|s| s.operation_state.as_ref()) {
        out.push('\n');
        out.push_str(&operation_summary(op));
    }
    out
}

/// The last operation: what, which revision, its phase, when and how long, and its message.
pub fn operation_summary(op: &OperationState) -> String {
    let mut out = String::new();
    let kind = if op.operation.sync.is_some() { "Sync" } else { "Unknown" };
    field(&mut out, "Operation:", kind);
    let revision = op
        .sync_result
        .as_ref()
        .map(|r| r.revision.as_str())
        .filter(|r| !r.is_empty())
        .or_else(|| op.operation.sync.as_ref().and_then(|s| s.revision.as_deref()))
        .unwrap_or_default();
    field(&mut out, "Sync Revision:", revision);
    field(&mut out, "Phase:", &op.phase);
    field(&mut out, "Start:", time(&op.started_at));
    if let Some(finished) = &op.finished_at {
        field(&mut out, "Finished:", time(finished));
        let seconds = finished.0.as_second() - op.started_at.0.as_second();
        field(&mut out, "Duration:", format!("{seconds}s"));
    }
    if let Some(message) = op.message.as_deref().filter(|m| !m.is_empty()) {
        field(&mut out, "Message:", message);
    }
    out
}

/// group, kind, namespace, name: how status, results and tree nodes find each other.
type ObjectKey = (String, String, String, String);

fn status_key(r: &ResourceStatus) -> ObjectKey {
    (
        r.group.clone().unwrap_or_default(),
        r.kind.clone().unwrap_or_default(),
        r.namespace.clone().unwrap_or_default(),
        r.name.clone().unwrap_or_default(),
    )
}

fn result_key(r: &ResourceResult) -> ObjectKey {
    (r.group.clone(), r.kind.clone(), r.namespace.clone(), r.name.clone())
}

fn node_key(n: &ResourceNode) -> ObjectKey {
    (n.group.clone(), n.kind.clone(), n.namespace.clone(), n.name.clone())
}

fn results(app: &Application) -> &[ResourceResult] {
    app.status
        .as_ref()
        .and_then(|s| s.operation_state.as_ref())
        .and_then(|o| o.sync_result.as_ref())
        .map_or(&[], |r| r.resources.as_slice())
}

/// The resources of `app get` as a flat table: sync and health from status, messages and hooks from the last
/// sync's results.
pub fn resources_table(app: &Application) -> String {
    let messages: HashMap<ObjectKey, &ResourceResult> =
        results(app).iter().filter(|r| r.hook_type.is_none()).map(|r| (result_key(r), r)).collect();
    let mut table = Table::new(["GROUP", "KIND", "NAMESPACE", "NAME", "STATUS", "HEALTH", "HOOK", "MESSAGE"]);
    for r in app.status.iter().flat_map(|s| &s.resources) {
        let key = status_key(r);
        let message = messages.get(&key).and_then(|m| m.message.clone()).unwrap_or_default();
        let health = r.health.as_ref().and_then(|h| h.status.clone()).unwrap_or_default();
        table.row([
            key.0,
            key.1,
            key.2,
            key.3,
            r.status.clone().unwrap_or_default(),
            health,
            String::new(),
            message,
        ]);
    }
    for hook in results(app).iter().filter(|r| r.hook_type.is_some()) {
        table.row([
            hook.group.clone(),
            hook.kind.clone(),
            hook.namespace.clone(),
            hook.name.clone(),
            hook.hook_phase.clone().unwrap_or_default(),
            String::new(),
            hook.hook_type.clone().unwrap_or_default(),
            hook.message.clone().unwrap_or_default(),
        ]);
    }
    table.render()
}

/// The resources as a tree: each managed resource with its sync status and health, and under it what it owns
/// (ReplicaSets, Pods…) with their health, from the resource tree's parent references.
pub fn resource_tree(app: &Application, tree: &ApplicationTree) -> String {
    let nodes: Vec<&ResourceNode> = tree.nodes.iter().collect();
    let by_key: HashMap<ObjectKey, &ResourceNode> = nodes.iter().map(|n| (node_key(n), *n)).collect();
    let by_uid: HashMap<&str, &ResourceNode> =
        nodes.iter().filter(|n| !n.uid.is_empty()).map(|n| (n.uid.as_str(), *n)).collect();
    // Children of each parent (by node key), in name order.
    let mut children: BTreeMap<ObjectKey, Vec<&ResourceNode>> = BTreeMap::new();
    let mut has_parent: HashSet<ObjectKey> = HashSet::new();
    for node in &nodes {
        for parent in &node.parent_refs {
            let parent_node = by_uid.get(parent.uid.as_str()).copied().or_else(|| {
                by_key
                    .get(&(
                        parent.group.clone(),
                        parent.kind.clone(),
                        parent.namespace.clone(),
                        parent.name.clone(),
                    ))
                    .copied()
            });
            if let Some(parent_node) = parent_node {
                children.entry(node_key(parent_node)).or_default().push(node);
                has_parent.insert(node_key(node));
            }
        }
    }
    for list in children.values_mut() {
        list.sort_by(|a, b| (&a.kind, &a.name).cmp(&(&b.kind, &b.name)));
    }
    let messages: HashMap<ObjectKey, String> =
        results(app).iter().map(|r| (result_key(r), r.message.clone().unwrap_or_default())).collect();

    let mut table = Table::new(["KIND/NAME", "STATUS", "HEALTH", "MESSAGE"]);
    let mut shown: HashSet<ObjectKey> = HashSet::new();
    let statuses: Vec<&ResourceStatus> = app.status.iter().flat_map(|s| &s.resources).collect();
    for r in &statuses {
        let key = status_key(r);
        let health = r
            .health
            .as_ref()
            .and_then(|h| h.status.clone())
            .or_else(|| by_key.get(&key).and_then(|n| n.health.as_ref()).map(|h| h.status.clone()))
            .unwrap_or_default();
        let message = messages.get(&key).cloned().unwrap_or_default();
        table.row([format!("{}/{}", key.1, key.3), r.status.clone().unwrap_or_default(), health, message]);
        shown.insert(key.clone());
        add_children(&mut table, &children, &key, "", &mut shown);
    }
    // Tree roots the status does not list (it may lag the tree).
    for node in nodes.iter().filter(|n| !has_parent.contains(&node_key(n))) {
        let key = node_key(node);
        if shown.contains(&key) {
            continue;
        }
        let health = node.health.as_ref().map(|h| h.status.clone()).unwrap_or_default();
        table.row([format!("{}/{}", node.kind, node.name), String::new(), health, String::new()]);
        shown.insert(key.clone());
        add_children(&mut table, &children, &key, "", &mut shown);
    }
    table.render()
}

fn add_children(
    table: &mut Table,
    children: &BTreeMap<ObjectKey, Vec<&ResourceNode>>,
    parent: &ObjectKey,
    indent: &str,
    shown: &mut HashSet<ObjectKey>,
) {
    let Some(list) = children.get(parent) else { return };
    for (i, child) in list.iter().enumerate() {
        let key = node_key(child);
        // An ownership cycle (or a node with two parents) is shown once.
        if !shown.insert(key.clone()) {
            continue;
        }
        let last = i + 1 == list.len();
        let branch = if last { "└─" } else { "├─" };
        let (health, message) =
            child.health.as_ref().map(|h| (h.status.clone(), h.message.clone())).unwrap_or_default();
        table.row([format!("{indent}{branch}{}/{}", child.kind, child.name), String::new(), health, message]);
        let deeper = format!("{indent}{}", if last { "  " } else { "│ " });
        add_children(table, children, &key, &deeper, shown);
    }
}

/// `app resources`: one row per object of the tree, orphans marked.
pub fn resources_list(tree: &ApplicationTree, orphaned_only: bool) -> String {
    let mut table = Table::new(["GROUP", "KIND", "NAMESPACE", "NAME", "ORPHANED"]);
    let managed = tree.nodes.iter().filter(|_| !orphaned_only).map(|n| (n, "No"));
    for (node, orphaned) in managed.chain(tree.orphaned_nodes.iter().map(|n| (n, "Yes"))) {
        table.row([
            node.group.clone(),
            node.kind.clone(),
            node.namespace.clone(),
            node.name.clone(),
            orphaned.to_string(),
        ]);
    }
    table.render()
}

/// `app resources` when the server has no tree: the managed objects from status.
pub fn status_resources_list(app: &Application) -> String {
    let mut table = Table::new(["GROUP", "KIND", "NAMESPACE", "NAME", "ORPHANED"]);
    for r in app.status.iter().flat_map(|s| &s.resources) {
        let key = status_key(r);
        table.row([key.0, key.1, key.2, key.3, "No".to_string()]);
    }
    table.render()
}

/// `app history`: ID, when it was deployed, which revision.
pub fn history_table(app: &Application) -> String {
    let mut table = Table::new(["ID", "DATE", "REVISION"]);
    for entry in app.status.iter().flat_map(|s| &s.history) {
        let revision = match (&entry.revision, entry.revisions.as_slice()) {
            (Some(r), _) if !r.is_empty() => r.clone(),
            (_, many) => many.join(","),
        };
        let target =
            entry.source.as_ref().and_then(|s| s.target_revision.as_deref()).filter(|t| !t.is_empty());
        let revision = match target {
            Some(target) if target != revision => format!("{revision} ({target})"),
            _ => revision,
        };
        table.row([entry.id.to_string(), time(&entry.deployed_at), revision]);
    }
    table.render()
}

/// What `app wait` still waits for; empty when everything asked for holds.
pub fn waiting_for(app: &Application, sync: bool, health: bool, operation: bool) -> Vec<String> {
    let mut missing = Vec::new();
    if sync && sync_status(app) != "Synced" {
        missing.push(format!("sync status is {} (want Synced)", sync_status(app)));
    }
    if health && health_status(app) != "Healthy" {
        missing.push(format!("health is {} (want Healthy)", health_status(app)));
    }
    if operation {
        let running =
            app.status.as_ref().and_then(|s| s.operation_state.as_ref()).filter(|o| o.finished_at.is_none());
        if app.operation.is_some() {
            missing.push("an operation is requested and not yet started".into());
        } else if let Some(op) = running {
            missing.push(format!("an operation is {}", op.phase));
        }
    }
    missing
}

/// Prints each sync result once per change, by phase and wave, while an operation runs.
#[derive(Default)]
pub struct SyncProgress {
    printed: HashMap<ObjectKey, String>,
}

impl SyncProgress {
    /// The lines for results that are new or changed since the last call.
    pub fn update(&mut self, app: &Application) -> Vec<String> {
        let waves: HashMap<ObjectKey, i64> = app
            .status
            .iter()
            .flat_map(|s| &s.resources)
            .filter_map(|r| r.sync_wave.map(|w| (status_key(r), w)))
            .collect();
        let mut ordered: Vec<(&str, i64, &ResourceResult)> = results(app)
            .iter()
            .map(|r| {
                let phase = r.sync_phase.as_deref().or(r.hook_type.as_deref()).unwrap_or("Sync");
                (phase, waves.get(&result_key(r)).copied().unwrap_or(0), r)
            })
            .collect();
        ordered.sort_by_key(|(phase, wave, _)| (phase_order(phase), *wave));
        let mut lines = Vec::new();
        for (phase, wave, r) in ordered {
            // Argo CD records a hook phase on every result; a plain resource is shown by its sync status.
            let status = if r.hook_type.is_some() {
                r.hook_phase.as_deref().or(r.status.as_deref())
            } else {
                r.status.as_deref()
            }
            .unwrap_or_default();
            let message = r.message.as_deref().unwrap_or_default();
            let object = match (r.group.as_str(), r.namespace.as_str()) {
                ("", "") => format!("{}/{}", r.kind, r.name),
                ("", ns) => format!("{}/{ns}/{}", r.kind, r.name),
                (group, "") => format!("{group}/{}/{}", r.kind, r.name),
                (group, ns) => format!("{group}/{}/{ns}/{}", r.kind, r.name),
            };
            let line = format!("{phase:<9} wave {wave:<4} {object:<48} {status:<12} {message}");
            let line = line.trim_end().to_string();
            if self.printed.get(&result_key(r)) != Some(&line) {
                self.printed.insert(result_key(r), line.clone());
                lines.push(line);
            }
        }
        lines
    }
}

fn phase_order(phase: &str) -> u8 {
    match phase {
        "PreSync" => 0,
        "Sync" => 1,
        "PostSync" => 2,
        "SyncFail" => 3,
        _ => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{NodeHealth, ResourceRef};

    fn app(value: serde_json::Value) -> Application {
        serde_json::from_value(value).unwrap()
    }

    fn web() -> Application {
        app(serde_json::json!({
            "metadata": {"name": "web", "namespace": "argocd"},
            "spec": {"project": "default",
                "source": {"repoURL": "https://github.com/myorg/k8s-manifests", "targetRevision": "main", "path": "apps/web"},
                "destination": {"server": "https://kubernetes.default.svc", "namespace": "web"},
                "syncPolicy": {"automated": {"prune": true, "selfHeal": true}}},
            "status": {
                "sync": {"status": "Synced", "revision": "0123456789abcdef0123456789abcdef01234567"},
                "health": {"status": "Healthy"},
                "conditions": [{"type": "SyncError", "message": "a"}, {"type": "SyncError", "message": "b"},
                               {"type": "OrphanedResourceWarning", "message": "c"}],
                "resources": [
                    {"version": "v1", "kind": "Service", "namespace": "web", "name": "web", "status": "Synced",
                     "health": {"status": "Healthy"}, "syncWave": 0},
                    {"group": "apps", "version": "v1", "kind": "Deployment", "namespace": "web", "name": "web",
                     "status": "Synced", "health": {"status": "Healthy"}, "syncWave": 1}],
                "history": [{"id": 0, "revision": "0123456789abcdef0123456789abcdef01234567",
                             "deployedAt": "2024-05-01T10:00:00Z", "source": {"repoURL": "r", "targetRevision": "main"}}],
                "operationState": {
                    "operation": {"sync": {"revision": "main"}}, "phase": "Succeeded",
                    "message": "successfully synced (all tasks run)",
                    "startedAt": "2024-05-01T10:00:00Z", "finishedAt": "2024-05-01T10:00:07Z",
                    "syncResult": {"revision": "0123456789abcdef0123456789abcdef01234567", "resources": [
                        {"kind": "Service", "namespace": "web", "name": "web", "status": "Synced",
                         "message": "service/web created", "syncPhase": "Sync"},
                        {"group": "apps", "kind": "Deployment", "namespace": "web", "name": "web", "status": "Synced",
                         "message": "deployment.apps/web created", "syncPhase": "Sync"},
                        {"group": "batch", "kind": "Job", "namespace": "web", "name": "migrate", "hookType": "PreSync",
                         "hookPhase": "Succeeded", "syncPhase": "PreSync", "message": "job completed"}]}}
            }
        }))
    }

    #[test]
    fn the_list_table_has_argocds_columns() {
        let mut bare = web();
        bare.metadata.name = Some("bare".into());
        bare.status = None;
        bare.spec.sync_policy = None;
        assert_eq!(
            list_table(&[web(), bare], None, false),
            "NAME  CLUSTER                         NAMESPACE  PROJECT  STATUS   HEALTH   SYNCPOLICY  CONDITIONS                            REPO                                    PATH      TARGET\n\
             web   https://kubernetes.default.svc  web        default  Synced   Healthy  Auto-Prune  SyncError(2),OrphanedResourceWarning  https://github.com/myorg/k8s-manifests  apps/web  main\n\
             bare  https://kubernetes.default.svc  web        default  Unknown  Unknown  Manual      <none>                                https://github.com/myorg/k8s-manifests  apps/web  main\n"
        );
        let wide = list_table(&[web()], None, true);
        assert!(wide.lines().next().unwrap().ends_with("TARGET  REVISION"), "{wide}");
        assert!(wide.lines().nth(1).unwrap().ends_with("main    0123456"), "{wide}");
    }

    #[test]
    fn apps_outside_the_control_namespace_are_listed_as_namespace_slash_name() {
        let mut home = web();
        home.metadata.namespace = Some("argocd".into());
        let mut team = web();
        team.metadata.namespace = Some("team-a".into());
        assert_eq!(qualified_name(&home, Some("argocd")), "web");
        assert_eq!(qualified_name(&team, Some("argocd")), "team-a/web");
        assert_eq!(qualified_name(&team, None), "web", "an unknown control namespace qualifies nothing");
        let table = list_table(&[home, team], Some("argocd"), false);
        let names: Vec<&str> = table.lines().skip(1).filter_map(|l| l.split_whitespace().next()).collect();
        assert_eq!(names, ["web", "team-a/web"]);
    }

    #[test]
    fn the_summary_reads_like_argocd_app_get() {
        let namespaced = summary(&web(), "https://berth.example", "team-a/web");
        assert!(namespaced.contains("URL:                https://berth.example/applications/team-a/web\n"));
        let text = summary(&web(), "https://berth.example", "web");
        for line in [
            "Name:               web",
            "URL:                https://berth.example/applications/web",
            "- Repo:             https://github.com/myorg/k8s-manifests",
            "  Path:             apps/web",
            "Sync Policy:        Automated (Prune, Self Heal)",
            "Sync Status:        Synced to main (0123456)",
            "Health Status:      Healthy",
            "Phase:              Succeeded",
            "Duration:           7s",
            "Message:            successfully synced (all tasks run)",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} in\n{text}");
        }
        assert!(
            text.contains(
                "\nCONDITION                MESSAGE  LAST TRANSITION\nSyncError                a\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn the_flat_resource_table_joins_status_with_sync_messages_and_lists_hooks() {
        assert_eq!(
            resources_table(&web()),
            "GROUP  KIND        NAMESPACE  NAME     STATUS     HEALTH   HOOK     MESSAGE\n\
             \x20      Service     web        web      Synced     Healthy           service/web created\n\
             apps   Deployment  web        web      Synced     Healthy           deployment.apps/web created\n\
             batch  Job         web        migrate  Succeeded           PreSync  job completed\n"
        );
    }

    fn node(kind: &str, name: &str, uid: &str, parent: Option<&str>, health: &str) -> ResourceNode {
        ResourceNode {
            group: if kind == "Service" || kind == "Pod" { String::new() } else { "apps".into() },
            kind: kind.into(),
            namespace: "web".into(),
            name: name.into(),
            uid: uid.into(),
            parent_refs: parent
                .map(|p| ResourceRef { uid: p.into(), ..Default::default() })
                .into_iter()
                .collect(),
            health: Some(NodeHealth { status: health.into(), message: String::new() }),
            ..Default::default()
        }
    }

    #[test]
    fn the_tree_nests_owned_objects_under_their_managed_parent() {
        let tree = ApplicationTree {
            nodes: vec![
                node("Service", "web", "s", None, "Healthy"),
                node("Deployment", "web", "d", None, "Healthy"),
                node("ReplicaSet", "web-2", "rs2", Some("d"), "Healthy"),
                node("ReplicaSet", "web-1", "rs1", Some("d"), "Healthy"),
                node("Pod", "web-1-a", "p1", Some("rs1"), "Healthy"),
                node("Pod", "web-2-a", "p2", Some("rs2"), "Progressing"),
            ],
            orphaned_nodes: vec![],
        };
        assert_eq!(
            resource_tree(&web(), &tree),
            "KIND/NAME           STATUS  HEALTH       MESSAGE\n\
             Service/web         Synced  Healthy      service/web created\n\
             Deployment/web      Synced  Healthy      deployment.apps/web created\n\
             ├─ReplicaSet/web-1          Healthy\n\
             │ └─Pod/web-1-a             Healthy\n\
             └─ReplicaSet/web-2          Healthy\n\
             \x20 └─Pod/web-2-a             Progressing\n"
        );
        let listed = resources_list(&tree, false);
        assert_eq!(listed.lines().count(), 7);
        assert!(
            listed.lines().nth(3).unwrap().starts_with("apps   ReplicaSet  web        web-2    No"),
            "{listed}"
        );
    }

    #[test]
    fn history_shows_id_date_and_revision() {
        assert_eq!(
            history_table(&web()),
            "ID  DATE                           REVISION\n\
             0   2024-05-01 10:00:00 +0000 UTC  0123456789abcdef0123456789abcdef01234567 (main)\n"
        );
    }

    #[test]
    fn waiting_names_what_is_missing() {
        let mut app = web();
        assert!(waiting_for(&app, true, true, true).is_empty());
        let status = app.status.as_mut().unwrap();
        status.sync.as_mut().unwrap().status = "OutOfSync".into();
        status.health.as_mut().unwrap().status = Some("Progressing".into());
        status.operation_state.as_mut().unwrap().finished_at = None;
        status.operation_state.as_mut().unwrap().phase = "Running".into();
        assert_eq!(
            waiting_for(&app, true, true, true),
            [
                "sync status is OutOfSync (want Synced)",
                "health is Progressing (want Healthy)",
                "an operation is Running"
            ]
        );
        assert_eq!(waiting_for(&app, false, true, false), ["health is Progressing (want Healthy)"]);
    }

    #[test]
    fn sync_progress_prints_by_phase_and_wave_and_only_changes() {
        let mut progress = SyncProgress::default();
        let lines = progress.update(&web());
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("PreSync   wave 0    batch/Job/web/migrate"), "{lines:?}");
        assert!(lines[0].contains("Succeeded    job completed"), "{lines:?}");
        assert!(lines[1].starts_with("Sync      wave 0    Service/web/web"), "{lines:?}");
        assert!(lines[2].starts_with("Sync      wave 1    apps/Deployment/web/web"), "{lines:?}");
        assert!(progress.update(&web()).is_empty(), "nothing changed, nothing printed");
    }
}
