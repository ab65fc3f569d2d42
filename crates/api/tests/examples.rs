//! Every Argo CD manifest of the seed and of Argo CD's documentation reads into berth's types and writes
//! back without losing a field.

mod common;

use berth_api::{AppProject, Application, ApplicationSet};
use serde::{Serialize, de::DeserializeOwned};

fn round_trip<T: Serialize + DeserializeOwned>(doc: &serde_json::Value) -> Result<serde_json::Value, String> {
    let typed: T = serde_json::from_value(doc.clone()).map_err(|e| format!("does not deserialise: {e}"))?;
    let mut back = serde_json::to_value(&typed).map_err(|e| e.to_string())?;
    let obj = back.as_object_mut().ok_or("not an object")?;
    obj.insert("apiVersion".into(), doc["apiVersion"].clone());
    obj.insert("kind".into(), doc["kind"].clone());
    Ok(back)
}

#[test]
fn every_argoproj_example_round_trips_without_losing_a_field() {
    let examples = common::all();
    let mut checked = 0;
    for ex in examples.iter().filter(|e| e.is_argoproj()) {
        let back = match ex.kind() {
            "Application" => round_trip::<Application>(&ex.doc),
            "AppProject" => round_trip::<AppProject>(&ex.doc),
            "ApplicationSet" => round_trip::<ApplicationSet>(&ex.doc),
            other => panic!("{}: unknown argoproj.io kind {other}", ex.label()),
        }
        .unwrap_or_else(|e| panic!("{}: {e}", ex.label()));
        let want = common::without_empty_lists(&ex.doc);
        if let Some(diff) = common::first_difference(&want, &back, "") {
            panic!("{} changed in a round trip at {diff}", ex.label());
        }
        checked += 1;
    }
    // The seed holds 6 argoproj.io documents, berth's documented examples 9.
    assert!(checked >= 15, "only {checked} argoproj.io examples were checked");
}

#[test]
fn seed_web_application_reads_its_sync_policy() {
    let seed = common::load(&common::seed_dir());
    let web =
        seed.iter().find(|e| e.file.ends_with("application-web.yaml")).expect("the seed's web Application");
    let app: Application =
        serde_json::from_value(web.doc.clone()).expect("the seed's web Application deserialises");
    let policy = app.spec.sync_policy.expect("syncPolicy");
    let automated = policy.automated.expect("automated");
    assert_eq!(automated.prune, Some(true));
    assert_eq!(automated.self_heal, Some(true));
    assert_eq!(policy.sync_options, vec!["CreateNamespace=true".to_string()]);
    assert_eq!(app.spec.destination.namespace.as_deref(), Some("web"));
    assert_eq!(app.spec.source.and_then(|s| s.path).as_deref(), Some("apps/web"));
}

#[test]
fn unknown_enum_like_values_are_kept_as_written() {
    // Argo CD adds sync options and statuses over time; berth must keep ones it does not know yet.
    let app: Application = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "x"},
        "spec": {"destination": {}, "syncPolicy": {"syncOptions": ["SomeFutureOption=true"]}},
        "status": {"sync": {"status": "SomeFutureStatus"}}
    }))
    .expect("deserialises");
    assert_eq!(app.spec.sync_policy.unwrap().sync_options, ["SomeFutureOption=true"]);
    assert_eq!(app.status.unwrap().sync.unwrap().status, "SomeFutureStatus");
}

#[test]
fn a_wrong_type_is_rejected() {
    let err = serde_json::from_value::<Application>(serde_json::json!({
        "metadata": {"name": "x"},
        "spec": {"destination": {}, "syncPolicy": {"automated": {"prune": "yes"}}}
    }))
    .expect_err("prune must be a boolean");
    assert!(err.to_string().contains("invalid type"), "{err}");
}
