use super::*;
use crate::pass::target::Desired;

fn desired(name: &str, wave: Option<&str>) -> Desired {
    let mut object = serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "web"}
    });
    if let Some(wave) = wave {
        object["metadata"]["annotations"] = serde_json::json!({"argocd.argoproj.io/sync-wave": wave});
    }
    Desired { key: ResourceKey::new("apps", "Deployment", "web", name), file: format!("{name}.yaml"), object }
}

fn target(objects: Vec<Desired>) -> Target {
    Target::of("abc", objects)
}

fn live(name: &str, health: &str) -> Arc<serde_json::Value> {
    Arc::new(serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "web", "resourceVersion": "7"},
        "health": health
    }))
}

/// Health read from a test-only field, so the compare's rules are seen apart from health's.
fn health_of(live: &serde_json::Value) -> Option<health::Health> {
    let status = match live["health"].as_str()? {
        "Healthy" => HealthStatus::Healthy,
        "Progressing" => HealthStatus::Progressing,
        _ => HealthStatus::Degraded,
    };
    Some(health::Health::new(status, ""))
}

fn code(c: &Comparison, name: &str) -> (String, Option<String>, Option<bool>) {
    let r = c.resources.iter().find(|r| r.name.as_deref() == Some(name)).expect(name);
    (r.status.clone().unwrap(), r.health.as_ref().and_then(|h| h.status.clone()), r.requires_pruning)
}

#[test]
fn every_object_in_sync_makes_the_app_synced_and_its_health_the_worst_of_them() {
    let t = target(vec![desired("a", None), desired("b", Some("2"))]);
    let observed = vec![
        Observed { desired: &t.objects[0], live: Some(live("a", "Healthy")), in_sync: Ok(true) },
        Observed { desired: &t.objects[1], live: Some(live("b", "Progressing")), in_sync: Ok(true) },
    ];
    let c = summarise(&t, observed, &[], health_of);
    assert_eq!(c.sync_status, SyncCode::Synced);
    assert_eq!(c.health, HealthStatus::Progressing);
    assert_eq!(code(&c, "a"), ("Synced".into(), Some("Healthy".into()), None));
    assert_eq!(c.resources.iter().find(|r| r.name.as_deref() == Some("b")).unwrap().sync_wave, Some(2));
    assert_eq!(c.live.len(), 2);
}

#[test]
fn a_missing_object_is_out_of_sync_and_missing() {
    let t = target(vec![desired("a", None), desired("gone", None)]);
    let observed = vec![
        Observed { desired: &t.objects[0], live: Some(live("a", "Healthy")), in_sync: Ok(true) },
        Observed { desired: &t.objects[1], live: None, in_sync: Ok(false) },
    ];
    let c = summarise(&t, observed, &[], health_of);
    assert_eq!(c.sync_status, SyncCode::OutOfSync);
    assert_eq!(code(&c, "gone"), ("OutOfSync".into(), Some("Missing".into()), None));
    assert_eq!(c.health, HealthStatus::Missing);
}

#[test]
fn a_tracked_object_that_left_git_requires_pruning() {
    let t = target(vec![desired("a", None)]);
    let observed =
        vec![Observed { desired: &t.objects[0], live: Some(live("a", "Healthy")), in_sync: Ok(true) }];
    let orphan = (ResourceKey::new("apps", "Deployment", "web", "old"), live("old", "Degraded"));
    let c = summarise(&t, observed, &[orphan], health_of);
    assert_eq!(c.sync_status, SyncCode::OutOfSync);
    assert_eq!(code(&c, "old"), ("OutOfSync".into(), Some("Degraded".into()), Some(true)));
    assert_eq!(c.health, HealthStatus::Healthy, "an orphan's health is shown but not the app's");
}

#[test]
fn a_dry_run_that_fails_names_the_file_and_object_and_counts_as_out_of_sync() {
    let t = target(vec![desired("a", None)]);
    let observed = vec![Observed {
        desired: &t.objects[0],
        live: Some(live("a", "Healthy")),
        in_sync: Err("admission webhook denied".into()),
    }];
    let c = summarise(&t, observed, &[], health_of);
    assert_eq!(c.sync_status, SyncCode::OutOfSync);
    assert_eq!(c.errors, ["a.yaml: Deployment.apps web/a: admission webhook denied"]);
}

#[test]
fn a_target_with_errors_is_unknown_and_its_conditions_come_first() {
    let mut t = target(vec![desired("a", None)]);
    t.errors.push("b.yaml: Widget \"w\": no kind Widget".into());
    t.warnings.push((ConditionType::RepeatedResourceWarning, "twice".into()));
    let observed =
        vec![Observed { desired: &t.objects[0], live: Some(live("a", "Healthy")), in_sync: Ok(true) }];
    let mut c = summarise(&t, observed, &[], health_of);
    assert_eq!(c.sync_status, SyncCode::Unknown);
    c.warnings.push("Deployment.apps web/a is part of application other".into());
    c.refused.push("not permitted".into());
    let kinds: Vec<ConditionType> = c.conditions(&t).into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        kinds,
        [
            ConditionType::ComparisonError,
            ConditionType::RepeatedResourceWarning,
            ConditionType::SharedResourceWarning,
            ConditionType::ExcludedResourceWarning
        ]
    );
}

#[test]
fn an_orphan_already_being_deleted_is_shown_but_asks_for_no_second_prune() {
    let t = target(vec![desired("a", None)]);
    let observed =
        vec![Observed { desired: &t.objects[0], live: Some(live("a", "Healthy")), in_sync: Ok(true) }];
    let mut pruned = (*live("old", "Healthy")).clone();
    pruned["metadata"]["deletionTimestamp"] = "2026-12-05T15:00:00Z".into();
    let orphans = [(ResourceKey::new("apps", "Deployment", "web", "old"), Arc::new(pruned))];
    let c = summarise(&t, observed, &orphans, health_of);
    assert_eq!(c.sync_status, SyncCode::Synced);
    assert_eq!(code(&c, "old"), ("OutOfSync".into(), Some("Healthy".into()), Some(true)));
}

#[test]
fn an_extraneous_object_marked_ignore_extraneous_is_shown_but_leaves_the_app_synced() {
    let t = target(vec![desired("a", None)]);
    let observed =
        vec![Observed { desired: &t.objects[0], live: Some(live("a", "Healthy")), in_sync: Ok(true) }];
    let mut made_by_a_tool = (*live("generated", "Healthy")).clone();
    made_by_a_tool["metadata"]["annotations"] =
        serde_json::json!({"argocd.argoproj.io/compare-options": "ServerSideDiff=true, IgnoreExtraneous"});
    let orphans = [(ResourceKey::new("apps", "Deployment", "web", "generated"), Arc::new(made_by_a_tool))];
    let c = summarise(&t, observed, &orphans, health_of);
    assert_eq!(c.sync_status, SyncCode::Synced);
    assert_eq!(code(&c, "generated"), ("OutOfSync".into(), Some("Healthy".into()), Some(true)));
    // Without the option the same orphan makes the app OutOfSync.
    let observed =
        vec![Observed { desired: &t.objects[0], live: Some(live("a", "Healthy")), in_sync: Ok(true) }];
    let plain = [(ResourceKey::new("apps", "Deployment", "web", "generated"), live("generated", "Healthy"))];
    assert_eq!(summarise(&t, observed, &plain, health_of).sync_status, SyncCode::OutOfSync);
}

#[test]
fn without_a_target_health_is_still_assessed_from_the_live_objects() {
    let t = target(vec![desired("a", None), desired("b", None)]);
    let observed = vec![
        Observed { desired: &t.objects[0], live: Some(live("a", "Healthy")), in_sync: Ok(true) },
        Observed { desired: &t.objects[1], live: Some(live("b", "Healthy")), in_sync: Ok(true) },
    ];
    let mut resources = summarise(&t, observed, &[], health_of).resources;
    // The repository became unreachable; meanwhile a went bad and b was deleted.
    let tracked = [(ResourceKey::new("apps", "Deployment", "web", "a"), live("a", "Degraded"))];
    let health = health_without_target(&mut resources, &tracked, health_of);
    assert_eq!(health, HealthStatus::Degraded, "the worst of Degraded and Missing");
    let of = |name: &str| {
        resources
            .iter()
            .find(|r| r.name.as_deref() == Some(name))
            .unwrap()
            .health
            .clone()
            .unwrap()
            .status
            .unwrap()
    };
    assert_eq!(of("a"), "Degraded");
    assert_eq!(of("b"), "Missing");
}

#[test]
fn a_desired_object_being_deleted_is_out_of_sync_whatever_the_dry_run_said() {
    let t = target(vec![desired("a", None)]);
    let mut going = (*live("a", "Progressing")).clone();
    going["metadata"]["deletionTimestamp"] = serde_json::json!("2026-01-01T00:00:00Z");
    let observed = vec![Observed { desired: &t.objects[0], live: Some(Arc::new(going)), in_sync: Ok(true) }];
    let c = summarise(&t, observed, &[], health_of);
    assert_eq!(c.sync_status, SyncCode::OutOfSync);
    assert_eq!(code(&c, "a"), ("OutOfSync".into(), Some("Progressing".into()), None));
}

fn app_with_rules(rules: serde_json::Value) -> Application {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application", "metadata": {"name": "web"},
        "spec": {"destination": {"namespace": "web"}, "project": "default",
                 "source": {"repoURL": "https://example.com/r.git", "path": "web"},
                 "ignoreDifferences": rules}
    }))
    .unwrap()
}

#[test]
fn an_ignore_rule_that_does_not_compile_is_named_by_field_and_index() {
    let app = app_with_rules(serde_json::json!([
        {"kind": "ConfigMap", "jqPathExpressions": [".data.a"]},
        {"kind": "ConfigMap", "jqPathExpressions": [".data.b", ".data["]},
    ]));
    let system = [
        IgnoreRule {
            group: Some("apps".into()),
            kind: "Deployment".into(),
            jq_path_expressions: vec!["|||".into()],
            ..Default::default()
        },
        IgnoreRule {
            group: None,
            kind: "*".into(),
            jq_path_expressions: vec![".metadata.labels".into()],
            ..Default::default()
        },
    ];
    let errors = invalid_ignore_rules(&app, &system);
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].starts_with("argocd-cm resource.customizations.ignoreDifferences.apps_Deployment.jqPathExpressions[0]: jq expression \"|||\" is invalid"),
        "{}",
        errors[0]
    );
    assert!(
        errors[1].starts_with(
            "spec.ignoreDifferences[1].jqPathExpressions[1]: jq expression \".data[\" is invalid"
        ),
        "{}",
        errors[1]
    );
}

#[test]
fn a_failed_comparison_is_unknown_not_out_of_sync_and_its_error_is_a_condition() {
    let t = target(vec![desired("a", None), desired("gone", None)]);
    let observed = vec![
        Observed { desired: &t.objects[0], live: Some(live("a", "Healthy")), in_sync: Ok(true) },
        Observed { desired: &t.objects[1], live: None, in_sync: Ok(false) },
    ];
    let c = failed_comparison(summarise(&t, observed, &[], health_of), vec!["bad rule".into()]);
    assert_eq!(c.sync_status, SyncCode::Unknown);
    assert_eq!(code(&c, "a"), ("Unknown".into(), Some("Healthy".into()), None));
    assert_eq!(code(&c, "gone"), ("Unknown".into(), Some("Missing".into()), None));
    assert_eq!(c.conditions(&t), [(ConditionType::ComparisonError, "bad rule".to_string())]);
}
