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
