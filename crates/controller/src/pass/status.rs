//! Status: the one writer of an Application's status (the API server only requests, e.g. an operation).
//! Written as Argo CD writes it: onto the copy it was computed from, conditions keep their transition
//! time while they hold, history is bounded, and the summary lists images and external URLs.

use berth_api::Application;
use berth_api::annotations;
use berth_api::application::{
    ApplicationCondition, ApplicationStatus, ApplicationSummary, ComparedTo, HealthStatus as AppHealth,
    Operation, RevisionHistory, SyncStatus,
};
use berth_api::codes::ConditionType;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use std::collections::BTreeSet;

use super::compare::Comparison;
use super::target::Target;
use crate::{Controller, Error};

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
    pub(crate) fn compared_to(&self, app: &Application) -> ComparedTo {
        ComparedTo {
            source: app.spec.source.clone(),
            sources: app.spec.sources.clone(),
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
        self.write_status_clearing(name, rv, status, false).await
    }

    /// [`Self::write_status`], removing the refresh annotation (present on that copy) in the same write.
    pub(crate) async fn write_status_clearing(
        &self,
        name: &str,
        rv: &mut String,
        status: &ApplicationStatus,
        clear_refresh: bool,
    ) -> Result<(), Error> {
        self.replicas.check(name)?;
        let (api, app_name) = self.application_api(name);
        let mut patch = serde_json::json!([
            { "op": "test", "path": "/metadata/resourceVersion", "value": rv },
            { "op": "add", "path": "/status", "value": status }
        ]);
        if clear_refresh {
            let path = format!(
                "/metadata/annotations/{}",
                annotations::REFRESH.replace('~', "~0").replace('/', "~1")
            );
            patch.as_array_mut().expect("an array").push(serde_json::json!({"op": "remove", "path": path}));
        }
        let patch: json_patch::Patch = serde_json::from_value(patch).expect("a JSON patch");
        match api.patch(app_name, &PatchParams::default(), &Patch::<()>::Json(patch)).await {
            Ok(stored) => {
                self.remember_write(name, &stored);
                self.report(name, &stored, status);
                *rv = stored.metadata.resource_version.unwrap_or_default();
                Ok(())
            }
            Err(kube::Error::Api(e)) if e.code == 422 || e.code == 409 => Err(Error::Stale),
            Err(e) => Err(e.into()),
        }
    }

    /// Records Kubernetes Events for what moved since the last reported status (the stored copy's at the
    /// first write after a start).
    pub(crate) fn report(&self, name: &str, stored: &Application, status: &ApplicationStatus) {
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
            let mut memo = self.memo.lock().expect("memo lock");
            memo.entry(name.to_string()).or_default().reported.replace(summary)
        };
        let previous = previous.or_else(|| self.application(name).and_then(|a| a.status.clone()));
        crate::events::publish(&self.recorder, stored, crate::events::between(previous.as_ref(), status));
    }

    /// Copies of the Application older than berth's own last write are stale: acting on one could run an
    /// operation twice or undo a status.
    pub(crate) fn remember_write(&self, name: &str, stored: &Application) {
        let rv = stored.metadata.resource_version.as_deref().and_then(|v| v.parse().ok());
        self.memo.lock().expect("memo lock").entry(name.to_string()).or_default().written = rv;
    }

    /// Removes the operation that was run, unless someone replaced it meanwhile.
    pub(crate) async fn clear_operation(&self, name: &str, op: &Operation) -> Result<(), Error> {
        self.replicas.check(name)?;
        let (api, app_name) = self.application_api(name);
        let patch = serde_json::json!([
            { "op": "test", "path": "/operation", "value": op },
            { "op": "remove", "path": "/operation" }
        ]);
        let patch: json_patch::Patch = serde_json::from_value(patch).expect("a JSON patch");
        match api.patch(app_name, &PatchParams::default(), &Patch::<()>::Json(patch)).await {
            Ok(stored) => {
                self.remember_write(name, &stored);
                Ok(())
            }
            // 422: the test failed (a new operation was written) — it will run on the next pass.
            Err(kube::Error::Api(e)) if e.code == 422 || e.code == 404 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// How long ago the stored status was refreshed (`reconciledAt`), while that is within the polling
/// `period` (polling off: however long ago); `None` when the refresh is due or status has none.
///
/// Argo CD writes `reconciledAt` on every refresh, and refreshes every application when its controller
/// starts. berth differs only there: a restarted controller keeps a `reconciledAt` that is still within
/// the polling period (the stored status then stands for this process's first refresh, and the next one
/// is due from it, not from the start), so a restart with nothing changed writes nothing.
pub(crate) fn fresh_reconciled_at(
    status: &ApplicationStatus,
    period: Option<std::time::Duration>,
    now: k8s_openapi::jiff::Timestamp,
) -> Option<std::time::Duration> {
    let at = status.reconciled_at.as_ref()?;
    // A clock a little behind the writer's makes a negative age: just written.
    let age = std::time::Duration::from_secs(now.as_second().saturating_sub(at.0.as_second()).max(0) as u64);
    period.is_none_or(|p| age < p).then_some(age)
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

    #[test]
    fn a_refresh_within_the_polling_period_is_fresh_and_an_older_one_is_due() {
        let at = |second: i64| ApplicationStatus {
            reconciled_at: Some(Time(k8s_openapi::jiff::Timestamp::from_second(second).unwrap())),
            ..Default::default()
        };
        let now = k8s_openapi::jiff::Timestamp::from_second(1_000).unwrap();
        let period = Some(std::time::Duration::from_secs(180));
        assert_eq!(fresh_reconciled_at(&at(900), period, now), Some(std::time::Duration::from_secs(100)));
        assert_eq!(fresh_reconciled_at(&at(820), period, now), None, "180 s old: the poll is due");
        assert_eq!(fresh_reconciled_at(&at(1_002), period, now), Some(std::time::Duration::ZERO));
        assert_eq!(fresh_reconciled_at(&ApplicationStatus::default(), period, now), None);
        assert_eq!(fresh_reconciled_at(&at(0), None, now), Some(std::time::Duration::from_secs(1_000)));
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
