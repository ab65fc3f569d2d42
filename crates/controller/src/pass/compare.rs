//! Compare: each desired object against its live counterpart (a server-side-apply dry run predicts the
//! result), the objects that left git, and the health of what is live.

use berth_api::Application;
use berth_api::application::{HealthStatus as AppHealth, ResourceStatus};
use berth_api::codes::{ConditionType, SyncCode};
use berth_engine::health::{self, HealthStatus};
use berth_engine::managed_fields::ClientSideManagers;
use berth_engine::normalize::{self, IgnoreRule};
use berth_engine::resource::{GroupKind, ResourceKey};
use berth_engine::sync::{self};
use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use super::target::{Desired, Target};
use super::{client_side_managers, has_option, hash_of, sync_options};
use crate::Controller;
use crate::clusters::Cluster;

/// What the compare found: each object's sync status and health, the app's sync status and health, and
/// why it may be incomplete.
pub(crate) struct Comparison {
    pub(crate) resources: Vec<ResourceStatus>,
    pub(crate) sync_status: SyncCode,
    pub(crate) health: HealthStatus,
    pub(crate) errors: Vec<String>,
    /// Objects another Application tracks too (SharedResourceWarning).
    pub(crate) warnings: Vec<String>,
    /// Tracked objects the project does not permit: left alone, never pruned (ExcludedResourceWarning).
    pub(crate) refused: Vec<String>,
    pub(crate) live: Vec<Arc<serde_json::Value>>,
}

impl Comparison {
    /// The conditions the target and this comparison give the Application.
    pub(crate) fn conditions(&self, target: &Target) -> Vec<(ConditionType, String)> {
        let error = |e: &String| (ConditionType::ComparisonError, e.clone());
        // In the order an operator reads them: what the target said, then the compare.
        target
            .errors
            .iter()
            .map(error)
            .chain(target.warnings.iter().cloned())
            .chain(self.errors.iter().map(error))
            .chain(self.warnings.iter().map(|w| (ConditionType::SharedResourceWarning, w.clone())))
            .chain(self.refused.iter().map(|w| (ConditionType::ExcludedResourceWarning, w.clone())))
            .collect()
    }
}

/// One desired object as the compare observed it: its live counterpart and whether applying it would
/// change that (an error when the dry run could not tell).
pub(crate) struct Observed<'a> {
    pub(crate) desired: &'a Desired,
    pub(crate) live: Option<Arc<serde_json::Value>>,
    pub(crate) in_sync: Result<bool, String>,
}

/// The comparison of a target with what was observed: a plain function, so every rule of sync status and
/// health is tested without a cluster. `orphans` are tracked live objects git no longer has.
pub(crate) fn summarise(
    target: &Target,
    observed: Vec<Observed<'_>>,
    orphans: &[(ResourceKey, Arc<serde_json::Value>)],
    health_of: impl Fn(&serde_json::Value) -> Option<health::Health>,
) -> Comparison {
    let version_of = |object: &serde_json::Value| {
        berth_engine::resource::split_api_version(object["apiVersion"].as_str().unwrap_or_default())
            .1
            .to_string()
    };
    let mut errors = Vec::new();
    let mut resources = Vec::new();
    let mut healths = Vec::new();
    let mut out_of_sync = 0;
    let mut live_objects = Vec::new();
    for o in observed {
        let d = o.desired;
        let (code, health) = match &o.live {
            None => (SyncCode::OutOfSync, Some(health::Health::new(HealthStatus::Missing, ""))),
            Some(live) => {
                live_objects.push(live.clone());
                // Being deleted: gone soon, whatever it holds now; the sync re-creates it once it is gone.
                let deleting = !live["metadata"]["deletionTimestamp"].is_null();
                let equal = !deleting
                    && o.in_sync.unwrap_or_else(|message| {
                        errors.push(format!("{}: {}: {message}", d.file, d.key));
                        false
                    });
                (if equal { SyncCode::Synced } else { SyncCode::OutOfSync }, health_of(live))
            }
        };
        if code == SyncCode::OutOfSync {
            out_of_sync += 1;
        }
        if let Some(h) = &health {
            healths.push(h.status);
        }
        let wave = Some(sync::sync_wave(&d.object));
        resources.push(resource_status(&d.key, &version_of(&d.object), code, health, None, wave));
    }
    for (key, live) in orphans {
        // IgnoreExtraneous: an object made outside git (by a tool, say) is shown, not counted. One already
        // being deleted (a prune waiting for its finalizers or dependents) is not counted either: counting it
        // would start a second sync of the same commit to prune it again.
        let deleting = !live["metadata"]["deletionTimestamp"].is_null();
        if !deleting && !normalize::has_compare_option(live, "IgnoreExtraneous") {
            out_of_sync += 1;
        }
        resources.push(resource_status(
            key,
            &version_of(live),
            SyncCode::OutOfSync,
            health_of(live),
            Some(true),
            None,
        ));
    }
    resources.sort_by(|a, b| {
        (&a.group, &a.kind, &a.namespace, &a.name).cmp(&(&b.group, &b.kind, &b.namespace, &b.name))
    });
    let sync_status = if !target.errors.is_empty() {
        SyncCode::Unknown
    } else if out_of_sync > 0 {
        SyncCode::OutOfSync
    } else {
        SyncCode::Synced
    };
    Comparison {
        resources,
        sync_status,
        health: health::worst(&healths),
        errors,
        warnings: vec![],
        refused: vec![],
        live: live_objects,
    }
}

/// The health when there is no target to compare with (a comparison error): each resource of the last
/// comparison takes its live object's current health (Missing when it is gone, unless it was only
/// waiting to be pruned), and the app the worst of them, as Argo CD keeps assessing health then.
pub(crate) fn health_without_target(
    resources: &mut [ResourceStatus],
    tracked: &[(ResourceKey, Arc<serde_json::Value>)],
    health_of: impl Fn(&serde_json::Value) -> Option<health::Health>,
) -> HealthStatus {
    let mut healths = Vec::new();
    for r in resources.iter_mut() {
        let key = ResourceKey::new(
            r.group.as_deref().unwrap_or_default(),
            r.kind.as_deref().unwrap_or_default(),
            r.namespace.as_deref().unwrap_or_default(),
            r.name.as_deref().unwrap_or_default(),
        );
        let health = match tracked.iter().find(|(k, _)| *k == key) {
            Some((_, live)) => health_of(live),
            None if r.requires_pruning == Some(true) => None,
            None => Some(health::Health::new(HealthStatus::Missing, "")),
        };
        if let Some(h) = &health {
            healths.push(h.status);
        }
        r.health = health.map(|h| AppHealth {
            status: Some(h.status.as_str().into()),
            message: (!h.message.is_empty()).then_some(h.message),
            last_transition_time: None,
        });
    }
    health::worst(&healths)
}

/// The app's health record: the transition time moves only when the status changes.
pub(crate) fn app_health(previous: Option<&AppHealth>, health: HealthStatus) -> AppHealth {
    AppHealth {
        status: Some(health.as_str().into()),
        message: None,
        last_transition_time: previous
            .filter(|h| h.status.as_deref() == Some(health.as_str()))
            .and_then(|h| h.last_transition_time.clone())
            .or_else(|| Some(super::status::now())),
    }
}

pub(crate) fn resource_status(
    key: &ResourceKey,
    version: &str,
    sync_status: SyncCode,
    health: Option<health::Health>,
    requires_pruning: Option<bool>,
    wave: Option<i64>,
) -> ResourceStatus {
    ResourceStatus {
        group: (!key.group.is_empty()).then(|| key.group.clone()),
        version: Some(version.into()),
        kind: Some(key.kind.clone()),
        namespace: (!key.namespace.is_empty()).then(|| key.namespace.clone()),
        name: Some(key.name.clone()),
        status: Some(sync_status.to_string()),
        health: health.map(|h| AppHealth {
            status: Some(h.status.as_str().into()),
            message: (!h.message.is_empty()).then_some(h.message),
            last_transition_time: None,
        }),
        hook: None,
        requires_pruning,
        sync_wave: wave,
        requires_deletion_confirmation: None,
    }
}

/// The sync status when the comparison itself failed (`errors`, such as an ignoreDifferences rule that does
/// not compile): Unknown, for the app and each resource, as Argo CD says when it cannot tell; never OutOfSync,
/// which would start a self-heal sync every poll. Health stays as assessed.
pub(crate) fn failed_comparison(mut comparison: Comparison, errors: Vec<String>) -> Comparison {
    if errors.is_empty() {
        return comparison;
    }
    comparison.sync_status = SyncCode::Unknown;
    for r in &mut comparison.resources {
        r.status = Some(SyncCode::Unknown.to_string());
    }
    comparison.errors.splice(0..0, errors);
    comparison
}

/// The jqPathExpressions of the Application's and argocd-cm's ignoreDifferences that do not compile, each
/// named by where it is written (`spec.ignoreDifferences[1].jqPathExpressions[0]`, or the argocd-cm key).
pub(crate) fn invalid_ignore_rules(app: &Application, system: &[IgnoreRule]) -> Vec<String> {
    let mut errors = Vec::new();
    let mut check = |place: String, expressions: &[String]| {
        for (j, expression) in expressions.iter().enumerate() {
            if let Err(message) = berth_engine::jq::check(expression) {
                // Both bounded: the rule is the user's, and the compiler's message may quote it.
                let message: String = message.to_string().chars().take(200).collect();
                errors.push(format!(
                    "{place}.jqPathExpressions[{j}]: jq expression {} is invalid: {message}",
                    berth_repo::validate::shown(expression)
                ));
            }
        }
    };
    for rule in system {
        let key = match (rule.group.as_deref(), rule.kind.as_str()) {
            (None, "*") => "all".to_string(),
            (Some("") | None, kind) => kind.to_string(),
            (Some(group), kind) => format!("{group}_{kind}"),
        };
        check(
            format!("argocd-cm resource.customizations.ignoreDifferences.{key}"),
            &rule.jq_path_expressions,
        );
    }
    for (i, rule) in app.spec.ignore_differences.iter().enumerate() {
        check(format!("spec.ignoreDifferences[{i}]"), &rule.jq_path_expressions);
    }
    errors
}

impl crate::Settings {
    /// The system-wide rules plus the application's own.
    pub fn ignore_rules_for(&self, app: &Application) -> Vec<IgnoreRule> {
        let mut rules = self.ignore_rules.clone();
        rules.extend(app.spec.ignore_differences.iter().map(|r| IgnoreRule {
            group: Some(r.group.clone().unwrap_or_default()),
            kind: r.kind.clone(),
            name: r.name.clone(),
            namespace: r.namespace.clone(),
            json_pointers: r.json_pointers.clone(),
            jq_path_expressions: r.jq_path_expressions.clone(),
            managed_fields_managers: r.managed_fields_managers.clone(),
        }));
        rules
    }
}

/// What decides whether a live object equals its desired one, besides the two objects.
#[derive(Clone, Copy)]
pub(crate) struct CompareRules<'a> {
    pub(crate) ignore: &'a [IgnoreRule],
    /// Strict field validation in the dry run (`Validate=false` turns it off).
    pub(crate) validate: bool,
    pub(crate) client_side: &'a ClientSideManagers,
}

impl Controller {
    /// Desired against live: each object's sync status and health, and which tracked objects left git.
    pub(crate) async fn compare(
        &self,
        app: &Application,
        target: &Target,
        cluster: &Cluster,
        settings: &crate::Settings,
    ) -> Comparison {
        // A rule that does not compile fails the comparison (named once), and is left out of it.
        let invalid_rules = invalid_ignore_rules(app, &settings.ignore_rules);
        let mut ignore = settings.ignore_rules_for(app);
        if !invalid_rules.is_empty() {
            for rule in &mut ignore {
                rule.jq_path_expressions.retain(|e| berth_engine::jq::check(e).is_ok());
            }
        }
        let ignore = &ignore;
        let app_name = self.instance_of(app);
        let mut errors = Vec::new();
        let options = sync_options(app, None);
        let validate = !has_option(&options, "Validate=false");
        let client_side = client_side_managers(app, &options);
        // Watch the desired kinds and every kind in the last inventory (status.resources), so objects that
        // left git are still seen after a restart.
        let mut kinds: BTreeSet<GroupKind> = target.objects.iter().map(|d| d.key.group_kind()).collect();
        for r in app.status.iter().flat_map(|s| &s.resources) {
            if let Some(kind) = &r.kind {
                kinds.insert(GroupKind { group: r.group.clone().unwrap_or_default(), kind: kind.clone() });
            }
        }
        for gk in &kinds {
            if let Err(e) = cluster.cache.ensure_watched(gk).await
                && target.objects.iter().any(|d| &d.key.group_kind() == gk)
            {
                errors.push(e.to_string());
            }
        }
        // Workloads' children (ReplicaSets, Pods) are cached too, for the resource tree.
        let workloads = ["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"];
        if kinds.iter().any(|gk| workloads.contains(&gk.kind.as_str())) {
            for (group, kind) in [("apps", "ReplicaSet"), ("", "Pod"), ("batch", "Job")] {
                let _ =
                    cluster.cache.ensure_watched(&GroupKind { group: group.into(), kind: kind.into() }).await;
            }
        }
        let (tracked, refused) = self.permitted_tracked(app, cluster);
        let desired_keys: HashSet<&ResourceKey> = target.objects.iter().map(|d| &d.key).collect();
        let rules = CompareRules { ignore, validate, client_side: &client_side };
        let mut observed = Vec::new();
        for d in target.objects.iter().filter(|d| !sync::hooks::is_hook(&d.object)) {
            let live = self.live_view(&app_name, &d.key, cluster);
            let in_sync = match &live {
                // Being deleted: out of sync whatever the dry run says (summarise counts it so too).
                Some(live) if !live["metadata"]["deletionTimestamp"].is_null() => Ok(false),
                Some(live) => self.in_sync(&app_name, d, live, &rules, cluster).await,
                None => Ok(false),
            };
            observed.push(Observed { desired: d, live, in_sync });
        }
        let orphans: Vec<_> = tracked
            .into_iter()
            .filter(|(key, live)| !desired_keys.contains(key) && !sync::hooks::is_hook(live))
            .collect();
        let mut comparison = summarise(target, observed, &orphans, |live| settings.health(live));
        errors.append(&mut comparison.errors);
        comparison.errors = errors;
        comparison.warnings = self.shared_resources(&app_name, target, cluster);
        comparison.refused = refused;
        failed_comparison(comparison, invalid_rules)
    }

    /// The live object as the cache has it, or what the last sync stored if the watch is behind.
    pub(crate) fn live_view(
        &self,
        app: &str,
        key: &ResourceKey,
        cluster: &Cluster,
    ) -> Option<Arc<serde_json::Value>> {
        let cached = cluster.cache.get(key);
        let memo = self.memo.lock();
        let Some((applied, at)) = memo.get(app).and_then(|m| m.applied.get(key)) else { return cached };
        if at.elapsed() > Duration::from_secs(10) {
            return cached;
        }
        let rv = |o: &serde_json::Value| {
            o["metadata"]["resourceVersion"].as_str().and_then(|v| v.parse::<u64>().ok())
        };
        match &cached {
            Some(c) if rv(c) >= rv(applied) => cached,
            _ => Some(applied.clone()),
        }
    }

    /// Whether the last compare found `live` (this very resourceVersion) already what `d` asks for.
    pub(crate) fn verified_in_sync(&self, app: &str, d: &Desired, live: &serde_json::Value) -> bool {
        let rv = live["metadata"]["resourceVersion"].as_str().unwrap_or_default();
        let memo = self.memo.lock();
        memo.get(app)
            .and_then(|m| m.verdicts.get(&d.key))
            .is_some_and(|(h, r, _, in_sync)| *in_sync && r == rv && *h == hash_of(&d.object))
    }

    /// Whether the live object already is what applying the desired one would make it: a server-side-apply
    /// dry run predicts the result (with every server default), and the two are compared without server
    /// fields and ignored differences. The verdict is kept until the object in git, in the cluster, or
    /// the rules change.
    pub(crate) async fn in_sync(
        &self,
        app: &str,
        d: &Desired,
        live: &serde_json::Value,
        rules: &CompareRules<'_>,
        cluster: &Cluster,
    ) -> Result<bool, String> {
        let CompareRules { ignore, validate, client_side } = *rules;
        let desired_hash = hash_of(&d.object);
        let rules: Vec<&IgnoreRule> = ignore.iter().filter(|r| r.matches(&d.key)).collect();
        let rules_hash = hash_of(&format!("{rules:?} validate={validate} {client_side:?}"));
        let rv = live["metadata"]["resourceVersion"].as_str().unwrap_or_default().to_string();
        if let Some((h, r, rh, verdict)) = self.memo.lock().get(app).and_then(|m| m.verdicts.get(&d.key))
            && *h == desired_hash
            && *r == rv
            && *rh == rules_hash
        {
            return Ok(*verdict);
        }
        let info = cluster.cache.kind(&d.key.group_kind()).await.map_err(|e| e.to_string())?;
        let mode = berth_engine::apply::ApplyMode {
            dry_run: true,
            validate: validate && !sync::has_sync_option(&d.object, "Validate=false"),
            client_side: client_side.clone(),
            ..Default::default()
        };
        let predicted = berth_engine::apply::apply_with(&cluster.client, &info, &d.object, mode)
            .await
            .map_err(|e| sync::api_message(&e))?;
        // The cache keeps no managedFields; rules that ignore fields by manager read them from the server.
        let with_managers;
        let live = if rules.iter().any(|r| !r.managed_fields_managers.is_empty()) {
            with_managers = berth_engine::apply::get(&cluster.client, &info, &d.key)
                .await
                .map_err(|e| sync::api_message(&e))?
                .unwrap_or_else(|| live.clone());
            &with_managers
        } else {
            live
        };
        let mut a = predicted;
        let mut b = live.clone();
        let owned: Vec<IgnoreRule> = rules.into_iter().cloned().collect();
        normalize::apply_ignore_rules(&mut a, live, &d.key, &owned).map_err(|e| e.to_string())?;
        normalize::apply_ignore_rules(&mut b, live, &d.key, &owned).map_err(|e| e.to_string())?;
        normalize::strip_server_fields(&mut a);
        normalize::strip_server_fields(&mut b);
        let verdict = normalize::differing_paths(&a, &b).is_empty();
        let mut memo = self.memo.lock();
        memo.entry(app.to_string())
            .or_default()
            .verdicts
            .insert(d.key.clone(), (desired_hash, rv, rules_hash, verdict));
        Ok(verdict)
    }

    /// Desired objects that another Application tracks, in Argo CD's words of its SharedResourceWarning
    /// ("ConfigMap/web is part of applications a and b"): the app whose tracking id the live object does not
    /// carry is the one warned.
    pub(crate) fn shared_resources(&self, app: &str, target: &Target, cluster: &Cluster) -> Vec<String> {
        let tracking = self.settings().tracking.clone();
        target
            .objects
            .iter()
            .filter_map(|d| {
                let live = cluster.cache.get(&d.key)?;
                let owner = tracking.app_of(&live, &d.key)?;
                (owner != app).then(|| {
                    format!("{}/{} is part of applications {app} and {owner}", d.key.kind, d.key.name)
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
