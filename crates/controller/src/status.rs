//! Pieces of Application status written as Argo CD writes them: conditions keep their transition time
//! while they hold, history is bounded, and the summary lists images and external URLs.

use berth_api::application::{ApplicationCondition, ApplicationSummary, RevisionHistory};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::collections::BTreeSet;

pub fn now() -> Time {
    // Seconds precision, as the API server stores metav1.Time.
    let ts = k8s_openapi::jiff::Timestamp::now();
    Time(k8s_openapi::jiff::Timestamp::from_second(ts.as_second()).unwrap_or(ts))
}

/// New conditions; one that was already present keeps its lastTransitionTime.
pub fn merge_conditions(old: &[ApplicationCondition], new: Vec<(&str, String)>) -> Vec<ApplicationCondition> {
    let mut seen = BTreeSet::new();
    new.into_iter()
        .filter(|(t, m)| seen.insert((t.to_string(), m.clone())))
        .map(|(type_, message)| {
            let since = old
                .iter()
                .find(|c| c.type_ == type_ && c.message == message)
                .and_then(|c| c.last_transition_time.clone())
                .unwrap_or_else(now);
            ApplicationCondition { type_: type_.into(), message, last_transition_time: Some(since) }
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
        let merged =
            merge_conditions(&old, vec![("ComparisonError", "boom".into()), ("SyncError", "x".into())]);
        assert_eq!(merged[0].last_transition_time, old[0].last_transition_time);
        assert_ne!(merged[1].last_transition_time, old[0].last_transition_time);
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
