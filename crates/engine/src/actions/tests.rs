use super::*;
use serde_json::json;
use std::time::{Duration, Instant, UNIX_EPOCH};

/// 2023-11-14T22:13:20Z.
fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

fn deployment(spec: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": "web", "namespace": "shop", "uid": "u-1"}, "spec": spec})
}

fn cron_job(suspend: Option<bool>) -> Value {
    let mut cron = json!({"apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": "report", "namespace": "shop", "uid": "u-cron"},
        "spec": {"schedule": "0 * * * *", "jobTemplate": {
            "metadata": {"labels": {"team": "a"}},
            "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "r", "image": "r:1"}]}}}}}});
    if let Some(s) = suspend {
        cron["spec"]["suspend"] = s.into();
    }
    cron
}

fn names(actions: &[ResourceAction]) -> Vec<(&str, bool)> {
    actions.iter().map(|a| (a.name.as_str(), a.disabled)).collect()
}

fn builtins() -> ResourceActions {
    ResourceActions::default()
}

/// The one change an action makes.
fn single(impacts: Vec<Impact>) -> Impact {
    let [impact] = <[Impact; 1]>::try_from(impacts).unwrap_or_else(|i| panic!("one change, not {i:?}"));
    impact
}

fn patched(impacts: Vec<Impact>) -> Value {
    match single(impacts) {
        Impact::Patch(object) => object,
        other => panic!("a patch, not {other:?}"),
    }
}

/// Custom actions for `key` from the YAML-free form of a customization.
fn custom(key: &str, discovery: &str, definitions: &[(&str, &str)], merge: bool) -> ResourceActions {
    let mut actions = ResourceActions::default();
    let config = ActionConfig {
        discovery_lua: discovery.into(),
        definitions: definitions
            .iter()
            .map(|(name, lua)| ActionDefinition { name: name.to_string(), action_lua: lua.to_string() })
            .collect(),
        merge_builtin_actions: merge,
    };
    assert_eq!(actions.insert(key, config), Vec::<String>::new());
    actions
}

fn param(name: &str, value: &str) -> ActionParam {
    ActionParam { name: name.into(), value: value.into(), ..Default::default() }
}

// Built-in actions

#[test]
fn a_deployment_offers_pause_only_when_running_and_resume_only_when_paused() {
    let running = builtins().discover(&deployment(json!({"replicas": 3}))).unwrap();
    assert_eq!(names(&running), [("pause", false), ("restart", false), ("resume", true), ("scale", false)]);
    let scale = running.iter().find(|a| a.name == "scale").unwrap();
    assert_eq!(
        scale.params,
        [ActionParam { name: "replicas".into(), default: "3".into(), ..Default::default() }]
    );
    let paused = builtins().discover(&deployment(json!({"replicas": 3, "paused": true}))).unwrap();
    assert_eq!(names(&paused), [("pause", true), ("restart", false), ("resume", false), ("scale", false)]);
}

#[test]
fn restart_stamps_the_pod_template_with_the_time_in_utc() {
    for kind in ["Deployment", "StatefulSet", "DaemonSet"] {
        let mut live = deployment(json!({"template": {"metadata": {"labels": {"app": "web"}}}}));
        live["kind"] = kind.into();
        let object = patched(builtins().run(&live, "restart", &[], now()).unwrap());
        let template = &object["spec"]["template"]["metadata"];
        assert_eq!(template["annotations"][RESTARTED_AT_ANNOTATION], "2023-11-14T22:13:20Z", "{kind}");
        assert_eq!(template["labels"]["app"], "web", "{kind}: the rest stays");
    }
    // A template without metadata gets it.
    let object =
        patched(builtins().run(&deployment(json!({"template": {}})), "restart", &[], now()).unwrap());
    assert_eq!(
        object["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT_ANNOTATION],
        "2023-11-14T22:13:20Z"
    );
}

#[test]
fn restart_refuses_a_template_whose_metadata_is_not_a_map() {
    let live = deployment(json!({"template": {"metadata": "broken"}}));
    let error = builtins().run(&live, "restart", &[], now()).unwrap_err();
    assert!(
        matches!(&error, ActionError::Failed { message, .. } if message.contains("spec.template.metadata")),
        "{error}"
    );
}

#[test]
fn pause_and_resume_set_and_clear_spec_paused() {
    let object = patched(builtins().run(&deployment(json!({})), "pause", &[], now()).unwrap());
    assert_eq!(object["spec"]["paused"], true);
    let object = patched(builtins().run(&object, "resume", &[], now()).unwrap());
    assert!(object["spec"].get("paused").is_none(), "{object}");
}

#[test]
fn a_disabled_or_unknown_action_is_refused_before_it_runs() {
    let paused = deployment(json!({"paused": true}));
    let error = builtins().run(&paused, "pause", &[], now()).unwrap_err();
    assert!(matches!(error, ActionError::Disabled { .. }), "{error}");
    for unknown in ["delete", "", "restart/../x", "Restart"] {
        let error = builtins().run(&paused, unknown, &[], now()).unwrap_err();
        assert!(matches!(error, ActionError::NotAvailable { .. }), "{unknown}: {error}");
    }
    let map =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "m", "namespace": "shop"}});
    assert_eq!(builtins().discover(&map).unwrap(), []);
    assert!(matches!(builtins().run(&map, "restart", &[], now()), Err(ActionError::NotAvailable { .. })));
}

#[test]
fn scale_takes_a_whole_number_of_replicas() {
    let live = deployment(json!({"replicas": 1}));
    let object = patched(builtins().run(&live, "scale", &[param("replicas", "4")], now()).unwrap());
    assert_eq!(object["spec"]["replicas"], 4);
    for bad in ["-1", "2.5", "many", "", "99999999999"] {
        let error = builtins().run(&live, "scale", &[param("replicas", bad)], now()).unwrap_err();
        assert!(
            matches!(&error, ActionError::Failed { message, .. } if message.contains("invalid number")),
            "{bad}: {error}"
        );
    }
    let error = builtins().run(&live, "scale", &[], now()).unwrap_err();
    assert!(error.to_string().contains("replicas parameter is required"), "{error}");
}

#[test]
fn a_cron_job_offers_create_job_and_suspend_or_resume() {
    assert_eq!(
        names(&builtins().discover(&cron_job(None)).unwrap()),
        [("create-job", false), ("suspend", false)]
    );
    assert_eq!(
        names(&builtins().discover(&cron_job(Some(true))).unwrap()),
        [("create-job", false), ("resume", false)]
    );
    let object = patched(builtins().run(&cron_job(None), "suspend", &[], now()).unwrap());
    assert_eq!(object["spec"]["suspend"], true);
    assert!(matches!(
        builtins().run(&cron_job(None), "resume", &[], now()),
        Err(ActionError::NotAvailable { .. })
    ));
}

#[test]
fn create_job_makes_a_job_owned_by_the_cron_job_in_its_namespace() {
    let Impact::Create(job) = single(builtins().run(&cron_job(None), "create-job", &[], now()).unwrap())
    else {
        panic!("create-job creates")
    };
    assert_eq!(job["apiVersion"], "batch/v1");
    assert_eq!(job["kind"], "Job");
    assert_eq!(job["metadata"]["name"], "report-202311142213");
    assert_eq!(job["metadata"]["namespace"], "shop");
    assert_eq!(job["metadata"]["labels"]["team"], "a");
    assert_eq!(
        job["metadata"]["ownerReferences"],
        json!([{"apiVersion": "batch/v1", "kind": "CronJob", "name": "report", "uid": "u-cron"}])
    );
    assert_eq!(job["spec"]["template"]["spec"]["restartPolicy"], "Never");
}

// Custom actions in Lua

const CRON_DISCOVERY: &str = r#"
actions = {}
actions["suspend"] = {["disabled"] = true}
actions["resume"] = {["disabled"] = true}
local suspend = false
if obj.spec.suspend ~= nil then
    suspend = obj.spec.suspend
end
if suspend then
    actions["resume"]["disabled"] = false
else
    actions["suspend"]["disabled"] = false
end
return actions
"#;

#[test]
fn a_custom_discovery_replaces_the_built_in_one_and_its_scripts_run() {
    let actions = custom(
        "batch/CronJob",
        CRON_DISCOVERY,
        &[
            ("suspend", "obj.spec.suspend = true\nreturn obj"),
            ("resume", "obj.spec.suspend = false\nreturn obj"),
        ],
        false,
    );
    let offered = actions.discover(&cron_job(None)).unwrap();
    assert_eq!(
        names(&offered),
        [("resume", true), ("suspend", false)],
        "no create-job without mergeBuiltinActions"
    );
    let object = patched(actions.run(&cron_job(None), "suspend", &[], now()).unwrap());
    assert_eq!(object["spec"]["suspend"], true);
    assert_eq!(
        object["spec"]["jobTemplate"]["metadata"]["labels"]["team"], "a",
        "the rest of the object stays"
    );
    assert!(matches!(actions.run(&cron_job(None), "resume", &[], now()), Err(ActionError::Disabled { .. })));
}

#[test]
fn merged_discoveries_keep_the_built_ins_and_the_custom_one_wins_a_shared_name() {
    let discovery = r#"return {restart = {disabled = true, displayName = "Restart (custom)"}, ["roll-back"] = {iconClass = "fa fa-undo"}}"#;
    let actions = custom("apps/Deployment", discovery, &[("roll-back", "return obj")], true);
    let offered = actions.discover(&deployment(json!({}))).unwrap();
    assert_eq!(
        names(&offered),
        [("pause", false), ("restart", true), ("resume", true), ("roll-back", false), ("scale", false)]
    );
    let restart = offered.iter().find(|a| a.name == "restart").unwrap();
    assert_eq!(restart.display_name, "Restart (custom)");
    assert_eq!(offered.iter().find(|a| a.name == "roll-back").unwrap().icon_class, "fa fa-undo");
    // A name the custom discovery offers without a custom definition runs the built-in action.
    let actions = custom("apps/Deployment", "return {restart = {}}", &[], false);
    let object = patched(actions.run(&deployment(json!({})), "restart", &[], now()).unwrap());
    assert_eq!(
        object["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT_ANNOTATION],
        "2023-11-14T22:13:20Z"
    );
}

#[test]
fn discovery_reads_lists_params_and_empty_tables_as_argo_cd_does() {
    let discovery = r#"
        local actions = {}
        actions["restart"] = {}
        actions["pause"] = {obj.spec.paused}
        actions["scale"] = {params = {{name = "replicas", default = tostring(obj.spec.replicas)}}}
        return actions"#;
    let actions = custom("apps/Deployment", discovery, &[], false);
    let offered = actions.discover(&deployment(json!({"replicas": 2, "paused": true}))).unwrap();
    assert_eq!(names(&offered), [("pause", false), ("restart", false), ("scale", false)]);
    assert_eq!(
        offered[2].params,
        [ActionParam { name: "replicas".into(), default: "2".into(), ..Default::default() }]
    );
    let none = custom("apps/Deployment", "return {}", &[], false);
    assert_eq!(none.discover(&deployment(json!({}))).unwrap(), []);
    let mistyped = custom("apps/Deployment", r#"return {restart = {disabled = "yes"}}"#, &[], false);
    assert!(matches!(mistyped.discover(&deployment(json!({}))), Err(ActionError::Discovery { .. })));
}

#[test]
fn action_params_reach_the_script_as_strings_by_name() {
    let scale = r#"
        local replicas = tonumber(actionParams["replicas"])
        if replicas == nil then error("replicas parameter is required", 0) end
        obj.spec.replicas = replicas
        return obj"#;
    let actions = custom("apps/Deployment", "return {scale = {}}", &[("scale", scale)], false);
    let live = deployment(json!({"replicas": 1}));
    let object = patched(actions.run(&live, "scale", &[param("replicas", "7")], now()).unwrap());
    assert_eq!(object["spec"]["replicas"], 7);
    let error = actions.run(&live, "scale", &[], now()).unwrap_err();
    assert_eq!(
        error,
        ActionError::Failed { action: "scale".into(), message: "replicas parameter is required".into() }
    );
}

#[test]
fn require_os_answers_the_clock_only_os() {
    let restart = r#"
        local os = require("os")
        if obj.spec.template.metadata == nil then obj.spec.template.metadata = {} end
        if obj.spec.template.metadata.annotations == nil then obj.spec.template.metadata.annotations = {} end
        obj.spec.template.metadata.annotations["kubectl.kubernetes.io/restartedAt"] = os.date("!%Y-%m-%dT%XZ")
        return obj"#;
    let actions = custom("apps/Deployment", "return {restart = {}}", &[("restart", restart)], false);
    let object = patched(actions.run(&deployment(json!({"template": {}})), "restart", &[], now()).unwrap());
    let stamp =
        object["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT_ANNOTATION].as_str().unwrap();
    assert!(stamp.len() == 20 && stamp.ends_with('Z'), "{stamp}");
    let escape =
        custom("apps/Deployment", "return {x = {}}", &[("x", "local io = require('io') return obj")], false);
    let error = escape.run(&deployment(json!({})), "x", &[], now()).unwrap_err();
    assert!(error.to_string().contains("module 'io' not found"), "{error}");
}

#[test]
fn empty_maps_of_the_live_object_survive_the_round_trip_through_lua() {
    let actions = custom(
        "apps/Deployment",
        "return {touch = {}}",
        &[("touch", "obj.spec.paused = true return obj")],
        false,
    );
    let live =
        deployment(json!({"selector": {"matchLabels": {}}, "template": {"metadata": {}}, "strategy": {}}));
    let object = patched(actions.run(&live, "touch", &[], now()).unwrap());
    assert_eq!(object["spec"]["selector"]["matchLabels"], json!({}));
    assert_eq!(object["spec"]["strategy"], json!({}));
    assert_eq!(merge_patch(&live, &object), json!({"spec": {"paused": true}}));
}

#[test]
fn a_list_answer_patches_the_object_and_creates_in_its_namespace() {
    let script = r#"
        local cm = {apiVersion = "v1", kind = "ConfigMap", metadata = {name = "made"}, data = {k = "v"}}
        obj.metadata.labels = {touched = "yes"}
        return {{operation = "create", resource = cm}, {operation = "patch", resource = obj}}"#;
    let actions = custom("apps/Deployment", "return {make = {}}", &[("make", script)], false);
    let impacts = actions.run(&deployment(json!({})), "make", &[], now()).unwrap();
    let [Impact::Create(made), Impact::Patch(object)] = <[Impact; 2]>::try_from(impacts).unwrap() else {
        panic!("create then patch")
    };
    assert_eq!(made["metadata"]["namespace"], "shop", "the namespace is filled in");
    assert_eq!(object["metadata"]["labels"]["touched"], "yes");
    let nothing = custom("apps/Deployment", "return {noop = {}}", &[("noop", "return {}")], false);
    assert_eq!(nothing.run(&deployment(json!({})), "noop", &[], now()).unwrap(), []);
}

// Hostile scripts and answers

#[test]
fn an_action_that_answers_another_object_is_refused() {
    for (what, script) in [
        ("name", "obj.metadata.name = 'other' return obj"),
        ("namespace", "obj.metadata.namespace = 'kube-system' return obj"),
        ("kind", "obj.kind = 'StatefulSet' return obj"),
        ("apiVersion", "obj.apiVersion = 'apps/v1beta1' return obj"),
        ("uid", "obj.metadata.uid = 'someone-else' return obj"),
        ("namespace dropped", "obj.metadata.namespace = nil return obj"),
        ("a forged verdict", "return {status = 'Healthy', message = '{}'}"),
        (
            "patch of another",
            "local o = {apiVersion = 'v1', kind = 'Secret', metadata = {name = 'argocd-secret', namespace = 'argocd'}} return {{operation = 'patch', resource = o}}",
        ),
    ] {
        let actions = custom("apps/Deployment", "return {evil = {}}", &[("evil", script)], false);
        let error = actions.run(&deployment(json!({})), "evil", &[], now()).unwrap_err();
        assert!(matches!(error, ActionError::Refused { .. }), "{what}: {error}");
    }
}

#[test]
fn a_created_object_must_stay_in_the_source_objects_namespace() {
    let elsewhere = "return {{operation = 'create', resource = {apiVersion = 'v1', kind = 'ConfigMap', metadata = {name = 'x', namespace = 'kube-system'}}}}";
    let nameless =
        "return {{operation = 'create', resource = {apiVersion = 'v1', kind = 'ConfigMap', metadata = {}}}}";
    let unknown = "return {{operation = 'delete', resource = obj}}";
    for (script, refused) in [(elsewhere, true), (nameless, true), (unknown, false)] {
        let actions = custom("apps/Deployment", "return {evil = {}}", &[("evil", script)], false);
        let error = actions.run(&deployment(json!({})), "evil", &[], now()).unwrap_err();
        assert_eq!(matches!(error, ActionError::Refused { .. }), refused, "{script}: {error}");
        assert!(matches!(error, ActionError::Refused { .. } | ActionError::Failed { .. }), "{error}");
    }
    // A cluster-scoped object creates nothing.
    let cluster_scoped = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "r"}});
    let script = "return {{operation = 'create', resource = {apiVersion = 'v1', kind = 'ConfigMap', metadata = {name = 'x'}}}}";
    let actions =
        custom("rbac.authorization.k8s.io/ClusterRole", "return {evil = {}}", &[("evil", script)], false);
    assert!(matches!(actions.run(&cluster_scoped, "evil", &[], now()), Err(ActionError::Refused { .. })));
}

#[test]
fn an_endless_script_is_stopped_at_the_time_limit() {
    for (discovery, action) in
        [("while true do end", "return obj"), ("return {spin = {}}", "while true do end")]
    {
        let actions = custom("apps/Deployment", discovery, &[("spin", action)], false);
        let started = Instant::now();
        let error = actions.run(&deployment(json!({})), "spin", &[], now()).unwrap_err();
        assert!(error.to_string().contains("time limit"), "{error}");
        assert!(started.elapsed() < Duration::from_secs(3), "ran {:?}", started.elapsed());
    }
}

#[test]
fn a_memory_bomb_or_an_unencodable_answer_is_an_error() {
    for (script, expected) in [
        (r#"local s = "x" while true do s = s .. s end"#, "memory limit"),
        ("local t = {} t.self = t return t", "recursively nested"),
        ("return {1, nil, 3}", "sparse"),
        ("return {a = 1, [1] = 2}", "mixed"),
        ("return 'obj'", "not string"),
        ("return print", "cannot encode function"),
        ("return {x = 0/0}", "NaN"),
        ("this is not lua", "action.lua:1:"),
    ] {
        let actions = custom_unchecked("apps/Deployment", "return {bad = {}}", &[("bad", script)]);
        let error = actions.run(&deployment(json!({})), "bad", &[], now()).unwrap_err().to_string();
        assert!(error.contains(expected), "{script}: {error}");
    }
}

/// Custom actions whose scripts may not compile.
fn custom_unchecked(key: &str, discovery: &str, definitions: &[(&str, &str)]) -> ResourceActions {
    let mut actions = ResourceActions::default();
    let config = ActionConfig {
        discovery_lua: discovery.into(),
        definitions: definitions
            .iter()
            .map(|(name, lua)| ActionDefinition { name: name.to_string(), action_lua: lua.to_string() })
            .collect(),
        merge_builtin_actions: false,
    };
    let _ = actions.insert(key, config);
    actions
}

#[test]
fn a_script_that_does_not_compile_is_reported_when_inserted() {
    let mut actions = ResourceActions::default();
    let config = ActionConfig {
        discovery_lua: "local = 1".into(),
        definitions: vec![ActionDefinition { name: "x".into(), action_lua: "return obj".into() }],
        merge_builtin_actions: false,
    };
    let problems = actions.insert("apps/Deployment", config);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].starts_with("discovery.lua:1:"), "{problems:?}");
    let error = actions.discover(&deployment(json!({}))).unwrap_err();
    assert!(error.to_string().contains("discovery.lua:1:"), "{error}");
}

// argocd-cm

fn parse_json_as_yaml(text: &str, _: &str) -> Result<Value, String> {
    serde_json::from_str(text).map_err(|e| e.to_string())
}

#[test]
fn argocd_cm_keys_and_the_customizations_map_are_read_and_the_split_key_wins() {
    let config = |discovery: &str| {
        json!({"discovery.lua": discovery, "definitions": [{"name": "a", "action.lua": "return obj"}]})
            .to_string()
    };
    let data: BTreeMap<String, String> = [
        ("resource.customizations.actions.apps_Deployment".to_string(), config("return {a = {}}")),
        ("resource.customizations.actions.ConfigMap".to_string(), config("return {a = {}}")),
        ("resource.customizations.actions.a_b_C".to_string(), config("return {}")),
        (
            "resource.customizations".to_string(),
            json!({"apps/Deployment": {"actions": config("return {a = {disabled = true}}")},
                   "batch/Job": {"actions": config("return {a = {}}")}})
            .to_string(),
        ),
    ]
    .into();
    let mut warnings = Vec::new();
    let actions = ResourceActions::from_argocd_cm(&data, &parse_json_as_yaml, &mut warnings);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("a_b_C"), "{warnings:?}");
    assert_eq!(names(&actions.discover(&deployment(json!({}))).unwrap()), [("a", false)]);
    let job = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"}});
    assert_eq!(names(&actions.discover(&job).unwrap()), [("a", false)]);
    let map = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "m"}});
    assert_eq!(names(&actions.discover(&map).unwrap()), [("a", false)]);
}

#[test]
fn merge_patches_carry_changes_removals_and_whole_lists() {
    let from = json!({"a": 1, "b": {"c": 2, "d": 3}, "l": [1, 2], "gone": true});
    let to = json!({"a": 1, "b": {"c": 5, "d": 3}, "l": [1], "new": "x"});
    assert_eq!(merge_patch(&from, &to), json!({"b": {"c": 5}, "l": [1], "gone": null, "new": "x"}));
    assert_eq!(merge_patch(&from, &from), json!({}));
}

// Built-in actions of Argo Rollouts' Rollout

/// A canary Rollout of three steps, generation 3 seen by a Rollouts v0.10+ controller, at step 1 of an
/// update (its pods are not yet the stable ReplicaSet's), with `status` merged over that.
fn rollout(spec: Value, status: Value) -> Value {
    let mut object = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "web", "namespace": "shop", "uid": "u-ro", "generation": 3},
        "spec": {"replicas": 3, "strategy": {"canary": {"steps": [{"setWeight": 20}, {"pause": {}}, {"setWeight": 60}]}},
                 "template": {"spec": {"containers": [{"name": "web", "image": "web:2"}]}}},
        "status": {"observedGeneration": "3", "currentPodHash": "new-hash", "stableRS": "old-hash",
                   "currentStepIndex": 1}});
    merge(&mut object["spec"], spec);
    merge(&mut object["status"], status);
    object
}

/// `patch` merged into `target` (JSON merge patch: `null` removes).
fn merge(target: &mut Value, patch: Value) {
    match patch {
        Value::Object(fields) => {
            for (key, value) in fields {
                if value.is_null() {
                    if let Some(map) = target.as_object_mut() {
                        map.remove(&key);
                    }
                } else {
                    merge(&mut target[&key], value);
                }
            }
        }
        other => *target = other,
    }
}

fn rollout_actions(object: &Value) -> Vec<(&'static str, bool)> {
    let offered = builtins().discover(object).unwrap();
    let order = ["abort", "pause", "promote-full", "restart", "resume", "retry", "skip-current-step"];
    let names: Vec<&str> = offered.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, order, "a Rollout offers every action, some disabled");
    order.iter().zip(&offered).map(|(name, a)| (*name, a.disabled)).collect()
}

/// What running `action` on `object` changes, as the merge patch berth sends.
fn rollout_change(object: &Value, action: &str) -> Value {
    merge_patch(object, &patched(builtins().run(object, action, &[], now()).unwrap()))
}

#[test]
fn a_rollout_mid_update_offers_pause_abort_promote_and_skip_but_not_resume_or_retry() {
    let offered = rollout_actions(&rollout(json!({}), json!({})));
    assert_eq!(
        offered,
        [
            ("abort", false),
            ("pause", false),
            ("promote-full", false),
            ("restart", false),
            ("resume", true),
            ("retry", true),
            ("skip-current-step", false),
        ]
    );
    let restart = builtins().discover(&rollout(json!({}), json!({}))).unwrap();
    assert_eq!(restart.iter().find(|a| a.name == "restart").unwrap().display_name, "Restart Pods");
}

#[test]
fn a_fully_promoted_rollout_offers_only_restart_and_what_its_spec_allows() {
    let stable = rollout(json!({}), json!({"currentPodHash": "old-hash", "currentStepIndex": 3}));
    let disabled: Vec<&str> = rollout_actions(&stable).into_iter().filter(|a| a.1).map(|a| a.0).collect();
    assert_eq!(disabled, ["abort", "pause", "promote-full", "resume", "retry", "skip-current-step"]);
}

#[test]
fn a_paused_rollout_offers_resume_by_its_pause_conditions_else_by_spec_paused() {
    let waiting = rollout(json!({}), json!({"pauseConditions": [{"reason": "CanaryPauseStep"}]}));
    assert!(rollout_actions(&waiting).contains(&("resume", false)));
    let paused_by_hand = rollout(json!({"paused": true}), json!({}));
    let offered = rollout_actions(&paused_by_hand);
    assert!(offered.contains(&("resume", false)) && offered.contains(&("pause", true)), "{offered:?}");
    // The pause conditions win: an empty list is not paused, whatever spec.paused says.
    let resumed = rollout(json!({"paused": true}), json!({"pauseConditions": []}));
    assert!(rollout_actions(&resumed).contains(&("resume", true)));
}

#[test]
fn an_aborted_rollout_offers_retry_instead_of_abort() {
    let aborted = rollout(json!({}), json!({"abort": true}));
    let offered = rollout_actions(&aborted);
    assert!(offered.contains(&("abort", true)) && offered.contains(&("retry", false)), "{offered:?}");
}

#[test]
fn skip_current_step_is_offered_only_to_a_canary_before_its_last_step() {
    let at_last = rollout(json!({}), json!({"currentStepIndex": 3}));
    assert!(rollout_actions(&at_last).contains(&("skip-current-step", true)));
    let blue_green =
        rollout(json!({"strategy": {"canary": null, "blueGreen": {"activeService": "web"}}}), json!({}));
    assert!(rollout_actions(&blue_green).contains(&("skip-current-step", true)));
    let not_started = rollout(json!({}), json!({"currentStepIndex": null}));
    assert!(rollout_actions(&not_started).contains(&("skip-current-step", true)));
}

#[test]
fn promote_full_of_a_pre_v0_10_status_is_offered_to_canaries_only() {
    let old = json!({"observedGeneration": "7d4f8c9b5"});
    assert!(rollout_actions(&rollout(json!({}), old.clone())).contains(&("promote-full", false)));
    let blue_green = json!({"strategy": {"canary": null, "blueGreen": {"activeService": "web"}}});
    assert!(rollout_actions(&rollout(blue_green.clone(), old)).contains(&("promote-full", true)));
    assert!(rollout_actions(&rollout(blue_green, json!({}))).contains(&("promote-full", false)), "v0.10+");
}

#[test]
fn rollout_restart_sets_restart_at_to_now_in_utc() {
    let change = rollout_change(&rollout(json!({}), json!({})), "restart");
    assert_eq!(change, json!({"spec": {"restartAt": "2023-11-14T22:13:20Z"}}));
}

#[test]
fn rollout_pause_sets_spec_paused() {
    assert_eq!(rollout_change(&rollout(json!({}), json!({})), "pause"), json!({"spec": {"paused": true}}));
}

#[test]
fn rollout_resume_clears_the_pause_conditions_and_spec_paused() {
    let both = rollout(json!({"paused": true}), json!({"pauseConditions": [{"reason": "PausedByUser"}]}));
    assert_eq!(
        rollout_change(&both, "resume"),
        json!({"spec": {"paused": false}, "status": {"pauseConditions": null}})
    );
    let by_step = rollout(json!({}), json!({"pauseConditions": [{"reason": "CanaryPauseStep"}]}));
    assert_eq!(rollout_change(&by_step, "resume"), json!({"status": {"pauseConditions": null}}));
}

#[test]
fn rollout_abort_sets_status_abort() {
    assert_eq!(rollout_change(&rollout(json!({}), json!({})), "abort"), json!({"status": {"abort": true}}));
}

#[test]
fn rollout_retry_clears_the_abort_and_the_analysis_statuses() {
    let canary = rollout(
        json!({}),
        json!({"abort": true, "canary": {"currentStepAnalysisRunStatus": {"name": "a1", "status": "Failed"},
            "currentBackgroundAnalysisRunStatus": {"name": "b1", "status": "Failed"}, "weights": {"canary": 20}}}),
    );
    assert_eq!(
        rollout_change(&canary, "retry"),
        json!({"status": {"abort": null, "canary": {"currentStepAnalysisRunStatus": null,
            "currentBackgroundAnalysisRunStatus": null}}})
    );
    let blue_green = rollout(
        json!({}),
        json!({"abort": true, "blueGreen": {"prePromotionAnalysisRunStatus": {"name": "p1"}, "activeSelector": "x"}}),
    );
    assert_eq!(
        rollout_change(&blue_green, "retry"),
        json!({"status": {"abort": null, "blueGreen": {"prePromotionAnalysisRunStatus": null}}})
    );
}

#[test]
fn rollout_promote_full_sets_promote_full_or_on_old_statuses_jumps_to_the_last_step() {
    assert_eq!(
        rollout_change(&rollout(json!({}), json!({})), "promote-full"),
        json!({"status": {"promoteFull": true}})
    );
    let old = rollout(json!({}), json!({"observedGeneration": "7d4f8c9b5", "abort": true}));
    assert_eq!(
        rollout_change(&old, "promote-full"),
        json!({"status": {"abort": null, "currentStepIndex": 3}})
    );
    let ahead = rollout(json!({}), json!({"observedGeneration": 9}));
    assert_eq!(rollout_change(&ahead, "promote-full"), json!({"status": {"currentStepIndex": 3}}));
}

#[test]
fn rollout_skip_current_step_moves_to_the_next_step_and_ends_its_pause() {
    let paused = rollout(json!({}), json!({"pauseConditions": [{"reason": "CanaryPauseStep"}]}));
    assert_eq!(
        rollout_change(&paused, "skip-current-step"),
        json!({"status": {"pauseConditions": null, "currentStepIndex": 2}})
    );
    let running = rollout(json!({}), json!({"currentStepIndex": 0}));
    assert_eq!(rollout_change(&running, "skip-current-step"), json!({"status": {"currentStepIndex": 1}}));
}

#[test]
fn rollout_actions_that_change_status_patch_only_the_rollout_itself() {
    let object = rollout(json!({}), json!({"abort": true, "pauseConditions": [{"reason": "x"}]}));
    for action in ["resume", "retry", "promote-full", "skip-current-step", "restart"] {
        let changed = patched(builtins().run(&object, action, &[], now()).unwrap());
        assert_eq!(changed["metadata"], object["metadata"], "{action}");
        assert_eq!(changed["spec"]["template"], object["spec"]["template"], "{action}");
    }
    let err = builtins().run(&object, "abort", &[], now()).unwrap_err();
    assert!(matches!(err, ActionError::Disabled { .. }), "an aborted rollout is not aborted again: {err:?}");
}

#[test]
fn a_custom_rollout_discovery_replaces_the_built_in_rollout_actions() {
    let actions = custom("argoproj.io/Rollout", "return {hello = {}}", &[("hello", "return obj")], false);
    let offered = actions.discover(&rollout(json!({}), json!({}))).unwrap();
    assert_eq!(names(&offered), [("hello", false)]);
}
