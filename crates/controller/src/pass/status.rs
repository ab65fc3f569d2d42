//! Status: the one writer of an Application's status (the API server only requests, e.g. an operation).
//! Written as Argo CD writes it: onto the copy it was computed from, conditions keep their transition
//! time while they hold, history is bounded, and the summary lists images and external URLs. Unlike
//! Argo CD, the copies of the spec's sources it keeps are bounded too ([`bound_sources`]): a spec near the
//! API server's size limit still gets a status. A finished operation is removed in the write that records
//! its end ([`Clearing`]): the Application CRD has no status subresource, so one JSON patch does both.

use berth_api::Application;
use berth_api::annotations;
use berth_api::application::{
    ApplicationCondition, ApplicationSource, ApplicationStatus, ApplicationSummary, ComparedTo,
    HealthStatus as AppHealth, RevisionHistory, SyncStatus,
};
use berth_api::codes::ConditionType;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use std::collections::BTreeSet;

use super::compare::Comparison;
use super::target::Target;
use crate::{Controller, Error};

/// What a status write removes from the Application with it (both present on the copy it is made onto).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Clearing {
    /// The refresh annotation, whose refresh this status is.
    pub refresh: bool,
    /// The requested operation, whose end this status records.
    pub operation: bool,
}

pub fn now() -> Time {
    // Seconds precision, as the API server stores metav1.Time.
    let ts = k8s_openapi::jiff::Timestamp::now();
    Time(k8s_openapi::jiff::Timestamp::from_second(ts.as_second()).unwrap_or(ts))
}

/// New conditions; one that was already present keeps its lastTransitionTime.
pub fn merge_conditions(
    old: &[ApplicationCondition],
    new: Vec<(ConditionType, String)>,
) -> Vec<ApplicationCondition> {
    let mut seen = BTreeSet::new();
    new.into_iter()
        .filter(|(t, m)| seen.insert((*t, m.clone())))
        .map(|(type_, message)| {
            let since = old
                .iter()
                .find(|c| c.type_ == type_.as_str() && c.message == message)
                .and_then(|c| c.last_transition_time.clone())
                .unwrap_or_else(now);
            ApplicationCondition { type_: type_.to_string(), message, last_transition_time: Some(since) }
        })
        .collect()
}

/// Appends a sync to the history and keeps the newest `limit` entries (Argo CD's default is 10).
pub fn push_history(history: &mut Vec<RevisionHistory>, mut entry: RevisionHistory, limit: Option<i64>) {
    entry.id = history.iter().map(|h| h.id).max().map_or(0, |id| id + 1);
    history.push(entry);
    let limit = limit.unwrap_or(10).max(1) as usize;
    if history.len() > limit {
        history.drain(..history.len() - limit);
    }
}

/// A copy of a source kept in status (`sync.comparedTo`, `operationState.syncResult`, `history[]`) whose
/// serialised form exceeds this keeps its Helm `values` and `valuesObject` only as a note of their size
/// and sha256 ([`source_copy`]). Status holds up to a dozen such copies (comparedTo, the last result, ten
/// history entries), and the API server refuses an object past etcd's limit (~1.5 MiB): 1 MiB of values
/// copied whole made every status write fail, so the application showed no status at all.
pub(crate) const SOURCE_COPY_LIMIT: usize = 16 * 1024;

/// All source copies of one status together, after [`SOURCE_COPY_LIMIT`]: past it the oldest history
/// entries go (copies whose other fields are large, or many sources). Status then stays far below
/// etcd's limit whatever the spec holds (the spec itself is the user's).
pub(crate) const SOURCE_COPIES_LIMIT: usize = 256 * 1024;

/// How a summarised `helm.values` starts: a YAML comment, so it reads as no values at all.
const VALUES_SUMMARY: &str = "# berth: values too large to copy into status: ";

/// The one key of a summarised `helm.valuesObject`.
const VALUES_OBJECT_SUMMARY: &str = "berth.argoproj.io/summary";

/// The condition's message while status keeps summaries of its sources (stable: it keeps its time).
pub(crate) const SUMMARISED_MESSAGE: &str = "status keeps the Helm values of sources larger than 16 KiB as \
     their size and sha256 only (in comparedTo, the sync result and history), and at most 256 KiB of \
     source copies in all: the API server refuses larger objects";

/// The condition's message when the API server refused a status as too large.
pub(crate) const REFUSED_MESSAGE: &str =
    "the API server refused the status as too large: it was written without history";

fn size_and_digest(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(bytes);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{} bytes, sha256:{hex}", bytes.len())
}

/// `source` as status keeps a copy of it: whole when its serialised form is within
/// [`SOURCE_COPY_LIMIT`], else with its Helm values replaced by their size and sha256. The same spec
/// always gives the same copy, so a stored copy compares equal to the spec's while the values do not
/// change; a copy already summarised stays as it is.
pub(crate) fn source_copy(source: &ApplicationSource) -> ApplicationSource {
    let mut copy = source.clone();
    if serde_json::to_vec(source).map_or(0, |b| b.len()) <= SOURCE_COPY_LIMIT {
        return copy;
    }
    summarise_values(&mut copy);
    copy
}

/// Replaces `source`'s Helm values (string and object) by their size and sha256, unless they are already.
fn summarise_values(source: &mut ApplicationSource) {
    let Some(helm) = source.helm.as_mut() else { return };
    if let Some(values) = helm.values.as_mut().filter(|v| !v.starts_with(VALUES_SUMMARY)) {
        *values = format!("{VALUES_SUMMARY}{}", size_and_digest(values.as_bytes()));
    }
    if let Some(object) = helm.values_object.as_mut().filter(|o| !is_values_object_summary(o)) {
        let bytes = serde_json::to_vec(object).unwrap_or_default();
        *object = serde_json::json!({ VALUES_OBJECT_SUMMARY: size_and_digest(&bytes) });
    }
}

fn is_values_object_summary(object: &serde_json::Value) -> bool {
    object.as_object().is_some_and(|o| o.len() == 1 && o.contains_key(VALUES_OBJECT_SUMMARY))
}

/// Whether `source` is a summarised copy ([`source_copy`]): what it deployed cannot be deployed again.
pub(crate) fn is_summarised(source: &ApplicationSource) -> bool {
    source.helm.as_ref().is_some_and(|h| {
        h.values.as_deref().is_some_and(|v| v.starts_with(VALUES_SUMMARY))
            || h.values_object.as_ref().is_some_and(is_values_object_summary)
    })
}

/// Whether `copy` (from status) is `spec`'s copy: equal, or `spec` summarised to the same digest.
pub(crate) fn same_source_copy(copy: Option<&ApplicationSource>, spec: Option<&ApplicationSource>) -> bool {
    if copy == spec || copy.cloned() == spec.map(source_copy) {
        return true;
    }
    // A status the API server refused as too large keeps every copy summarised, whatever its size.
    let (Some(copy), Some(spec)) = (copy, spec) else { return false };
    is_summarised(copy) && {
        let mut summarised = spec.clone();
        summarise_values(&mut summarised);
        *copy == summarised
    }
}

/// [`same_source_copy`] for each of `copies` and `spec`'s sources, in order.
pub(crate) fn same_source_copies(copies: &[ApplicationSource], spec: &[ApplicationSource]) -> bool {
    copies.len() == spec.len() && copies.iter().zip(spec).all(|(c, s)| same_source_copy(Some(c), Some(s)))
}

/// Bounds the source copies of `status` ([`SOURCE_COPY_LIMIT`], [`SOURCE_COPIES_LIMIT`]); true when
/// status keeps a summary of a source or history lost entries to the bound, which a condition says.
/// The copies of the requested operation (`operationState.operation`) stay whole: berth matches them to
/// the Application's `operation`.
pub(crate) fn bound_sources(status: &mut ApplicationStatus) -> bool {
    fn bound(source: &mut Option<ApplicationSource>, sources: &mut [ApplicationSource]) {
        for s in source.iter_mut().chain(sources.iter_mut()) {
            *s = source_copy(s);
        }
    }
    if let Some(c) = status.sync.as_mut().and_then(|s| s.compared_to.as_mut()) {
        bound(&mut c.source, &mut c.sources);
    }
    if let Some(r) = status.operation_state.as_mut().and_then(|s| s.sync_result.as_mut()) {
        bound(&mut r.source, &mut r.sources);
    }
    for h in &mut status.history {
        bound(&mut h.source, &mut h.sources);
    }
    let size = |source: &Option<ApplicationSource>, sources: &[ApplicationSource]| {
        serde_json::to_vec(&(source, sources)).map_or(0, |b| b.len())
    };
    let fixed =
        status.sync.iter().flat_map(|s| &s.compared_to).map(|c| size(&c.source, &c.sources)).sum::<usize>()
            + status
                .operation_state
                .iter()
                .flat_map(|s| &s.sync_result)
                .map(|r| size(&r.source, &r.sources))
                .sum::<usize>();
    let mut total = fixed + status.history.iter().map(|h| size(&h.source, &h.sources)).sum::<usize>();
    let mut trimmed = false;
    while total > SOURCE_COPIES_LIMIT && !status.history.is_empty() {
        let oldest = status.history.remove(0);
        total -= size(&oldest.source, &oldest.sources);
        trimmed = true;
    }
    let summarised = |source: &Option<ApplicationSource>, sources: &[ApplicationSource]| {
        source.iter().chain(sources).any(is_summarised)
    };
    trimmed
        || status.sync.iter().flat_map(|s| &s.compared_to).any(|c| summarised(&c.source, &c.sources))
        || status
            .operation_state
            .iter()
            .flat_map(|s| &s.sync_result)
            .any(|r| summarised(&r.source, &r.sources))
        || status.history.iter().any(|h| summarised(&h.source, &h.sources))
}

/// Whether the API server refused a write as too large: its body limit (413), or etcd's request limit
/// (`etcdserver: request is too large`, or gRPC's message limit past 2 MiB), which it reports as a 500.
pub(crate) fn too_large(error: &kube::Error) -> bool {
    let kube::Error::Api(e) = error else { return false };
    let message = e.message.to_ascii_lowercase();
    e.code == 413
        || message.contains("request is too large")
        || message.contains("request entity too large")
        || message.contains("larger than max")
}

/// The smaller status written when the API server refused `status` as too large: no history, every source
/// copy summarised whatever its size, and a condition that says so.
pub(crate) fn refused_as_too_large(status: &ApplicationStatus) -> ApplicationStatus {
    let mut smaller = status.clone();
    smaller.history.clear();
    if let Some(c) = smaller.sync.as_mut().and_then(|s| s.compared_to.as_mut()) {
        c.source.iter_mut().chain(c.sources.iter_mut()).for_each(summarise_values);
    }
    if let Some(r) = smaller.operation_state.as_mut().and_then(|s| s.sync_result.as_mut()) {
        r.source.iter_mut().chain(r.sources.iter_mut()).for_each(summarise_values);
    }
    if !smaller.conditions.iter().any(|c| c.message == REFUSED_MESSAGE) {
        smaller.conditions.push(ApplicationCondition {
            type_: ConditionType::StatusTooLargeWarning.to_string(),
            message: REFUSED_MESSAGE.into(),
            last_transition_time: Some(now()),
        });
    }
    smaller
}

/// Container images and external URLs of the application's objects.
pub fn summary<'a>(objects: impl IntoIterator<Item = &'a serde_json::Value>) -> Option<ApplicationSummary> {
    let mut images = BTreeSet::new();
    let mut urls = BTreeSet::new();
    for obj in objects {
        let pod_spec = if obj["kind"] == "Pod" { &obj["spec"] } else { &obj["spec"]["template"]["spec"] };
        for list in ["containers", "initContainers"] {
            for c in pod_spec[list].as_array().into_iter().flatten() {
                if let Some(image) = c["image"].as_str() {
                    images.insert(image.to_string());
                }
            }
        }
        if obj["kind"] == "Ingress" {
            let tls_hosts: BTreeSet<&str> = obj["spec"]["tls"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|t| t["hosts"].as_array().into_iter().flatten().filter_map(|h| h.as_str()))
                .collect();
            for rule in obj["spec"]["rules"].as_array().into_iter().flatten() {
                if let Some(host) = rule["host"].as_str() {
                    let scheme = if tls_hosts.contains(host) { "https" } else { "http" };
                    urls.insert(format!("{scheme}://{host}"));
                }
            }
        }
        for (key, value) in obj["metadata"]["annotations"].as_object().into_iter().flatten() {
            if key.starts_with("link.argocd.argoproj.io/")
                && let Some(url) = value.as_str()
            {
                urls.insert(url.to_string());
            }
        }
    }
    (!images.is_empty() || !urls.is_empty()).then(|| ApplicationSummary {
        images: images.into_iter().collect(),
        external_urls: urls.into_iter().collect(),
    })
}

impl Controller {
    /// What status records the comparison was made to: the spec's sources as [`source_copy`] keeps them.
    pub(crate) fn compared_to(&self, app: &Application) -> ComparedTo {
        ComparedTo {
            source: app.spec.source.as_ref().map(source_copy),
            sources: app.spec.sources.iter().map(source_copy).collect(),
            destination: app.spec.destination.clone(),
            ignore_differences: app.spec.ignore_differences.clone(),
        }
    }

    pub(crate) fn apply_comparison(
        &self,
        app: &Application,
        status: &mut ApplicationStatus,
        target: &Target,
        cmp: &Comparison,
    ) {
        status.resources = cmp.resources.clone();
        status.sync = Some(SyncStatus {
            status: cmp.sync_status.to_string(),
            compared_to: Some(self.compared_to(app)),
            revision: Some(target.revision.clone()),
            revisions: target.revisions.clone(),
        });
        status.health = Some(AppHealth {
            status: Some(cmp.health.as_str().into()),
            message: None,
            last_transition_time: status
                .health
                .as_ref()
                .filter(|h| h.status.as_deref() == Some(cmp.health.as_str()))
                .and_then(|h| h.last_transition_time.clone())
                .or_else(|| Some(now())),
        });
        status.source_type = Some(target.source_type.to_string());
        let desired: Vec<&serde_json::Value> = target.objects.iter().map(|d| &d.object).collect();
        status.summary = summary(desired.into_iter().chain(cmp.live.iter().map(|l| &**l)));
    }

    /// Writes status only onto the copy it was computed from (resourceVersion `rv`), and moves `rv` on.
    pub(crate) async fn write_status(
        &self,
        name: &str,
        rv: &mut String,
        status: &ApplicationStatus,
    ) -> Result<(), Error> {
        self.write_status_clearing(name, rv, status, Clearing::default()).await
    }

    /// [`Self::write_status`], removing what `clear` names (present on that copy) in the same write: a
    /// finished operation is removed in the write that records its end, so no crash can leave it requested
    /// and finished, to be run again. Source copies are bounded ([`bound_sources`]); a status the API
    /// server still refuses as too large is written again smaller ([`refused_as_too_large`]), once.
    pub(crate) async fn write_status_clearing(
        &self,
        name: &str,
        rv: &mut String,
        status: &ApplicationStatus,
        clear: Clearing,
    ) -> Result<(), Error> {
        let mut bounded = status.clone();
        bound_sources(&mut bounded);
        match self.patch_status(name, rv, &bounded, clear).await {
            Err(Error::Kube(e)) if too_large(&e) => {
                tracing::warn!(app = name, error = %e, "status refused as too large: written without history");
                self.patch_status(name, rv, &refused_as_too_large(&bounded), clear).await
            }
            other => other,
        }
    }

    async fn patch_status(
        &self,
        name: &str,
        rv: &mut String,
        status: &ApplicationStatus,
        clear: Clearing,
    ) -> Result<(), Error> {
        self.replicas.check(name)?;
        let (api, app_name) = self.application_api(name);
        let mut patch = serde_json::json!([
            { "op": "test", "path": "/metadata/resourceVersion", "value": rv },
            { "op": "add", "path": "/status", "value": status }
        ]);
        let ops = patch.as_array_mut().expect("an array");
        if clear.refresh {
            let path = format!(
                "/metadata/annotations/{}",
                annotations::REFRESH.replace('~', "~0").replace('/', "~1")
            );
            ops.push(serde_json::json!({"op": "remove", "path": path}));
        }
        if clear.operation {
            ops.push(serde_json::json!({"op": "remove", "path": "/operation"}));
        }
        let patch: json_patch::Patch = serde_json::from_value(patch).expect("a JSON patch");
        // Read before the write leaves: once it is stored, the watch may show the cache this write itself.
        let before = self.unreported(name);
        match api.patch(app_name, &PatchParams::default(), &Patch::<()>::Json(patch)).await {
            Ok(stored) => {
                self.remember_write(name, &stored);
                self.report(name, &stored, status, before);
                *rv = stored.metadata.resource_version.unwrap_or_default();
                Ok(())
            }
            Err(kube::Error::Api(e)) if e.code == 422 || e.code == 409 => Err(Error::Stale),
            Err(e) => Err(e.into()),
        }
    }

    /// The status of the cached copy of an app none of whose statuses was reported since start: what the
    /// first write's events compare against.
    fn unreported(&self, name: &str) -> Option<ApplicationStatus> {
        if self.memo.lock().get(name).is_some_and(|m| m.reported.is_some()) {
            return None;
        }
        self.application(name).and_then(|a| a.status.clone())
    }

    /// Records Kubernetes Events for what moved since the last reported status (`before`, the copy this write
    /// replaced, at the first write after a start).
    pub(crate) fn report(
        &self,
        name: &str,
        stored: &Application,
        status: &ApplicationStatus,
        before: Option<ApplicationStatus>,
    ) {
        let summary = ApplicationStatus {
            sync: status.sync.as_ref().map(|s| berth_api::application::SyncStatus {
                status: s.status.clone(),
                ..Default::default()
            }),
            health: status.health.as_ref().map(|h| berth_api::application::HealthStatus {
                status: h.status.clone(),
                ..Default::default()
            }),
            operation_state: status.operation_state.clone().map(|mut op| {
                if let Some(result) = op.sync_result.as_mut() {
                    result.resources.clear();
                }
                op
            }),
            ..Default::default()
        };
        let previous = {
            let mut memo = self.memo.lock();
            memo.entry(name.to_string()).or_default().reported.replace(summary)
        };
        let previous = previous.or(before);
        crate::events::publish(&self.recorder, stored, crate::events::between(previous.as_ref(), status));
    }

    /// Copies of the Application older than berth's own last write are stale: acting on one could run an
    /// operation twice or undo a status.
    pub(crate) fn remember_write(&self, name: &str, stored: &Application) {
        let rv = stored.metadata.resource_version.as_deref().and_then(|v| v.parse().ok());
        self.memo.lock().entry(name.to_string()).or_default().written = rv;
    }
}

/// Status equality that ignores timestamps berth refreshes on every pass.
pub(crate) fn same_ignoring_time(a: &ApplicationStatus, b: &ApplicationStatus) -> bool {
    let strip = |s: &ApplicationStatus| {
        let mut s = s.clone();
        s.reconciled_at = None;
        s.observed_at = None;
        s
    };
    strip(a) == strip(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry() -> RevisionHistory {
        RevisionHistory {
            revision: Some("abc".into()),
            revisions: vec![],
            deployed_at: now(),
            id: 0,
            source: None,
            sources: vec![],
            deploy_started_at: None,
            initiated_by: None,
            revision_metadata: None,
        }
    }

    #[test]
    fn history_ids_grow_and_the_oldest_entries_go_past_the_limit() {
        let mut h = Vec::new();
        for _ in 0..5 {
            push_history(&mut h, entry(), Some(3));
        }
        assert_eq!(h.iter().map(|e| e.id).collect::<Vec<_>>(), [2, 3, 4]);
    }

    #[test]
    fn a_condition_that_holds_keeps_its_transition_time() {
        let old = vec![ApplicationCondition {
            type_: "ComparisonError".into(),
            message: "boom".into(),
            last_transition_time: Some(Time(k8s_openapi::jiff::Timestamp::from_second(1).unwrap())),
        }];
        let merged = merge_conditions(
            &old,
            vec![(ConditionType::ComparisonError, "boom".into()), (ConditionType::SyncError, "x".into())],
        );
        assert_eq!(merged[0].last_transition_time, old[0].last_transition_time);
        assert_ne!(merged[1].last_transition_time, old[0].last_transition_time);
    }

    fn helm_source(values: &str) -> ApplicationSource {
        ApplicationSource {
            repo_url: "https://charts.example.com".into(),
            chart: Some("web".into()),
            helm: Some(berth_api::application::ApplicationSourceHelm {
                values: Some(values.into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn values_of(source: &ApplicationSource) -> &str {
        source.helm.as_ref().and_then(|h| h.values.as_deref()).unwrap_or_default()
    }

    #[test]
    fn a_small_source_is_copied_whole() {
        let source = helm_source("replicas: 2\n");
        assert_eq!(source_copy(&source), source);
        assert!(!is_summarised(&source_copy(&source)));
    }

    #[test]
    fn large_helm_values_are_copied_as_their_size_and_digest_the_same_for_the_same_values() {
        let big = format!("data: {}\n", "x".repeat(1024 * 1024));
        let copy = source_copy(&helm_source(&big));
        assert!(is_summarised(&copy));
        assert!(values_of(&copy).contains(&format!("{} bytes, sha256:", big.len())), "{}", values_of(&copy));
        assert!(values_of(&copy).len() < 200);
        assert_eq!(copy.chart.as_deref(), Some("web"), "everything but the values is kept");
        assert_eq!(source_copy(&helm_source(&big)), copy, "stable: a stored copy compares equal");
        assert_eq!(source_copy(&copy), copy, "a summary is not summarised again");
        let other = format!("data: {}\n", "y".repeat(1024 * 1024));
        assert_ne!(source_copy(&helm_source(&other)), copy, "other values, another digest");
        assert!(same_source_copy(Some(&copy), Some(&helm_source(&big))));
        assert!(!same_source_copy(Some(&copy), Some(&helm_source(&other))));
        assert!(same_source_copies(std::slice::from_ref(&copy), &[helm_source(&big)]));
    }

    #[test]
    fn a_large_values_object_is_copied_as_its_size_and_digest() {
        let mut source = helm_source("");
        source.helm.as_mut().unwrap().values = None;
        source.helm.as_mut().unwrap().values_object = Some(json!({"data": "z".repeat(64 * 1024)}));
        let copy = source_copy(&source);
        let object = copy.helm.as_ref().and_then(|h| h.values_object.as_ref()).unwrap();
        assert!(object[VALUES_OBJECT_SUMMARY].as_str().unwrap().contains("sha256:"), "{object}");
        assert!(is_summarised(&copy));
        assert_eq!(source_copy(&copy), copy);
    }

    #[test]
    fn bounded_status_summarises_every_copy_and_drops_old_history_past_the_total() {
        let big = helm_source(&"v".repeat(1024 * 1024));
        let mut status = ApplicationStatus {
            sync: Some(SyncStatus {
                compared_to: Some(ComparedTo { source: Some(big.clone()), ..Default::default() }),
                ..Default::default()
            }),
            operation_state: Some(berth_api::application::OperationState {
                sync_result: Some(berth_api::application::SyncOperationResult {
                    source: Some(big.clone()),
                    ..Default::default()
                }),
                operation: Default::default(),
                phase: "Succeeded".into(),
                message: None,
                started_at: now(),
                finished_at: Some(now()),
                retry_count: None,
            }),
            ..Default::default()
        };
        for _ in 0..10 {
            push_history(&mut status.history, RevisionHistory { source: Some(big.clone()), ..entry() }, None);
        }
        assert!(bound_sources(&mut status));
        assert!(serde_json::to_vec(&status).unwrap().len() < 8 * 1024, "a dozen summaries");
        assert_eq!(status.history.len(), 10, "summaries fit: history is kept");
        assert!(status.history.iter().all(|h| is_summarised(h.source.as_ref().unwrap())));

        // Sources that stay large without their values (parameters here): the oldest history goes.
        let mut wide = helm_source("");
        wide.helm.as_mut().unwrap().parameters = vec![berth_api::application::HelmParameter {
            name: "blob".into(),
            value: "p".repeat(40 * 1024),
            force_string: None,
        }];
        let mut status = ApplicationStatus::default();
        for _ in 0..10 {
            push_history(
                &mut status.history,
                RevisionHistory { source: Some(wide.clone()), ..entry() },
                None,
            );
        }
        assert!(bound_sources(&mut status));
        assert_eq!(status.history.len(), 6, "6 × 40 KiB fit in 256 KiB");
        assert_eq!(status.history[0].id, 4, "the oldest went");

        let mut small = ApplicationStatus::default();
        push_history(
            &mut small.history,
            RevisionHistory { source: Some(helm_source("a: 1")), ..entry() },
            None,
        );
        assert!(!bound_sources(&mut small), "nothing to say");
    }

    #[test]
    fn a_status_refused_as_too_large_is_written_without_history_and_says_so() {
        let api_error = |code: u16, message: &str| {
            kube::Error::Api(kube::core::Status::failure(message, "").with_code(code).boxed())
        };
        assert!(too_large(&api_error(413, "Request entity too large: limit is 3145728")));
        assert!(too_large(&api_error(500, "etcdserver: request is too large")));
        assert!(!too_large(&api_error(422, "the server rejected our request")));
        assert!(!too_large(&api_error(500, "etcdserver: leader changed")));

        let mut status = ApplicationStatus::default();
        push_history(&mut status.history, entry(), None);
        let smaller = refused_as_too_large(&status);
        assert!(smaller.history.is_empty());
        assert_eq!(smaller.conditions[0].type_, "StatusTooLargeWarning");
        assert_eq!(refused_as_too_large(&smaller).conditions.len(), 1, "said once");
    }

    #[test]
    fn a_copy_summarised_by_a_refused_write_still_matches_its_spec() {
        let spec: ApplicationSource = serde_json::from_value(json!({
            "repoURL": "https://example.com/charts.git", "path": "web", "helm": {"values": "replicas: 2"}
        }))
        .unwrap();
        let status = ApplicationStatus {
            operation_state: Some(berth_api::application::OperationState {
                operation: Default::default(),
                phase: "Succeeded".into(),
                message: None,
                sync_result: Some(berth_api::application::SyncOperationResult {
                    source: Some(spec.clone()),
                    ..Default::default()
                }),
                started_at: now(),
                finished_at: None,
                retry_count: None,
            }),
            ..Default::default()
        };
        let smaller = refused_as_too_large(&status);
        let kept = smaller.operation_state.unwrap().sync_result.unwrap().source.unwrap();
        assert!(is_summarised(&kept), "small values are summarised too after a refusal");
        assert!(same_source_copy(Some(&kept), Some(&spec)));
        let mut changed = spec.clone();
        changed.helm.as_mut().unwrap().values = Some("replicas: 3".into());
        assert!(!same_source_copy(Some(&kept), Some(&changed)));
    }

    #[test]
    fn summary_lists_images_and_ingress_urls() {
        let dep = json!({"kind": "Deployment", "spec": {"template": {"spec": {"containers": [{"image": "myorg/web:v1.2.3"}]}}}});
        let ing = json!({"kind": "Ingress", "spec": {"tls": [{"hosts": ["a.example.com"]}], "rules": [{"host": "a.example.com"}, {"host": "b.example.com"}]}});
        let s = summary([&dep, &ing]).unwrap();
        assert_eq!(s.images, ["myorg/web:v1.2.3"]);
        assert_eq!(s.external_urls, ["http://b.example.com", "https://a.example.com"]);
    }
}
