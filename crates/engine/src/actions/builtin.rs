//! The actions Argo CD ships for core kinds, in Rust, with the availability and the changes of Argo CD's
//! scripts: `restart` of Deployments, StatefulSets and DaemonSets (the pod template's
//! `kubectl.kubernetes.io/restartedAt` annotation set to now, as `kubectl rollout restart` does); `pause`
//! and `resume` of Deployments (`spec.paused`; each disabled when it would change nothing); `scale` of
//! Deployments and StatefulSets (`replicas`, a whole number, defaulting to the present count); and for
//! CronJobs `create-job` (a Job from the job template, owned by the CronJob) and `suspend` or `resume`,
//! whichever applies. Argo Rollouts' `Rollout` has its own set ([`super::rollout`]).

use super::{ActionParam, Impact, ResourceAction};
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};
use std::time::SystemTime;

/// The pod-template annotation a restart sets, as `kubectl rollout restart` does.
pub const RESTARTED_AT_ANNOTATION: &str = "kubectl.kubernetes.io/restartedAt";

/// Icons of Argo CD's CronJob actions.
const CREATE_ICON: &str = "fa fa-fw fa-plus";
const RESUME_ICON: &str = "fa fa-fw fa-play";
const SUSPEND_ICON: &str = "fa fa-fw fa-pause";

/// The built-in actions `live` offers now; none for a kind without any.
pub(super) fn discover(live: &Value) -> Vec<ResourceAction> {
    let offer = |name: &str| ResourceAction { name: name.into(), ..Default::default() };
    let replicas = || ResourceAction {
        name: "scale".into(),
        params: vec![ActionParam {
            name: "replicas".into(),
            default: live["spec"]["replicas"].as_u64().map(|r| r.to_string()).unwrap_or_default(),
            ..Default::default()
        }],
        ..Default::default()
    };
    match group_kind(live) {
        ("apps", "Deployment") => {
            let paused = is_paused(live);
            vec![
                ResourceAction { disabled: paused, ..offer("pause") },
                offer("restart"),
                ResourceAction { disabled: !paused, ..offer("resume") },
                replicas(),
            ]
        }
        ("apps", "StatefulSet") => vec![offer("restart"), replicas()],
        ("apps", "DaemonSet") => vec![offer("restart")],
        ("argoproj.io", "Rollout") => super::rollout::discover(live),
        ("batch", "CronJob") => {
            let create = ResourceAction {
                icon_class: CREATE_ICON.into(),
                display_name: "Create Job".into(),
                ..offer("create-job")
            };
            let toggle = if is_suspended(live) {
                ResourceAction { icon_class: RESUME_ICON.into(), ..offer("resume") }
            } else {
                ResourceAction { icon_class: SUSPEND_ICON.into(), ..offer("suspend") }
            };
            vec![create, toggle]
        }
        _ => Vec::new(),
    }
}

/// Runs built-in `action` on `live`: `None` when the kind has no such action, else the changes or why the
/// parameters are refused.
pub(super) fn run(
    live: &Value,
    action: &str,
    params: &[ActionParam],
    now: SystemTime,
) -> Option<Result<Vec<Impact>, String>> {
    let patched = |path: &[&str], value: Option<Value>| {
        let mut object = live.clone();
        set(&mut object, path, value).map(|()| vec![Impact::Patch(object)])
    };
    if group_kind(live) == ("argoproj.io", "Rollout") {
        return super::rollout::run(live, action, now);
    }
    Some(match (group_kind(live), action) {
        (("apps", "Deployment" | "StatefulSet" | "DaemonSet"), "restart") => {
            let path = ["spec", "template", "metadata", "annotations", RESTARTED_AT_ANNOTATION];
            patched(&path, Some(utc(now).to_string().into()))
        }
        (("apps", "Deployment"), "pause") => patched(&["spec", "paused"], Some(true.into())),
        (("apps", "Deployment"), "resume") => patched(&["spec", "paused"], None),
        (("apps", "Deployment" | "StatefulSet"), "scale") => {
            replicas(params).and_then(|count| patched(&["spec", "replicas"], Some(count.into())))
        }
        (("batch", "CronJob"), "suspend") => patched(&["spec", "suspend"], Some(true.into())),
        (("batch", "CronJob"), "resume") => patched(&["spec", "suspend"], Some(false.into())),
        (("batch", "CronJob"), "create-job") => Ok(vec![Impact::Create(job_from(live, now))]),
        _ => return None,
    })
}

/// Sets (or, with `None`, removes) the field at `path`, making the maps on the way; a field on the way that
/// is not a map is an error, never overwritten.
pub(super) fn set(object: &mut Value, path: &[&str], value: Option<Value>) -> Result<(), String> {
    let Some((last, parents)) = path.split_last() else { return Ok(()) };
    let mut current = object;
    for (depth, key) in parents.iter().enumerate() {
        let map = current.as_object_mut().ok_or_else(|| not_a_map(&path[..depth]))?;
        let next = map.entry(key.to_string()).or_insert_with(|| json!({}));
        if next.is_null() {
            *next = json!({});
        }
        current = next;
    }
    let map = current.as_object_mut().ok_or_else(|| not_a_map(parents))?;
    match value {
        Some(value) => {
            map.insert(last.to_string(), value);
        }
        None => {
            map.remove(*last);
        }
    }
    Ok(())
}

fn not_a_map(path: &[&str]) -> String {
    format!("the object's {} is not a map", if path.is_empty() { "root".into() } else { path.join(".") })
}

fn group_kind(live: &Value) -> (&str, &str) {
    let (group, _) = live["apiVersion"].as_str().map(crate::resource::split_api_version).unwrap_or_default();
    (group, live["kind"].as_str().unwrap_or_default())
}

fn is_paused(live: &Value) -> bool {
    live["spec"]["paused"].as_bool().unwrap_or(false)
}

fn is_suspended(live: &Value) -> bool {
    live["spec"]["suspend"].as_bool().unwrap_or(false)
}

/// The `replicas` parameter: a whole number of at least 0.
fn replicas(params: &[ActionParam]) -> Result<u32, String> {
    let value = params
        .iter()
        .rev()
        .find(|p| p.name == "replicas")
        .map(|p| p.value.trim())
        .ok_or("the replicas parameter is required")?;
    value.parse::<u32>().map_err(|_| format!("invalid number: {value:?} (must be a whole number >= 0)"))
}

/// `now` to the second, which prints as the restart annotation holds it (`2024-05-01T12:00:00Z`).
pub(super) fn utc(now: SystemTime) -> Timestamp {
    Timestamp::try_from(now)
        .ok()
        .and_then(|t| Timestamp::from_second(t.as_second()).ok())
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

/// A Job from the CronJob's job template, as `kubectl create job --from=cronjob/<name>` makes it: named
/// `<cronjob>-<YYYYMMDDHHMM>` (UTC), in the CronJob's namespace, owned by the CronJob.
fn job_from(cron_job: &Value, now: SystemTime) -> Value {
    let template = &cron_job["spec"]["jobTemplate"];
    let mut metadata = match &template["metadata"] {
        Value::Object(m) => Value::Object(m.clone()),
        _ => json!({}),
    };
    let name = cron_job["metadata"]["name"].as_str().unwrap_or_default();
    let minute = utc(now).strftime("%Y%m%d%H%M").to_string();
    metadata["name"] = format!("{name}-{minute}").into();
    metadata["namespace"] = cron_job["metadata"]["namespace"].clone();
    metadata["ownerReferences"] = json!([{
        "apiVersion": cron_job["apiVersion"],
        "kind": cron_job["kind"],
        "name": name,
        "uid": cron_job["metadata"]["uid"],
    }]);
    let mut job = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata});
    if !template["spec"].is_null() {
        job["spec"] = template["spec"].clone();
    }
    job
}
