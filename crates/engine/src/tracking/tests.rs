use super::*;
use serde_json::json;

fn object(labels: serde_json::Value, annotations: serde_json::Value) -> (serde_json::Value, ResourceKey) {
    let obj = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cfg", "namespace": "web", "labels": labels, "annotations": annotations}});
    let key = ResourceKey::of(&obj).unwrap();
    (obj, key)
}

fn with(method: TrackingMethod) -> Tracking {
    Tracking { method, ..Tracking::default() }
}

#[test]
fn argocd_cm_keys_are_read_and_a_bad_method_is_a_warning() {
    let data: BTreeMap<String, String> = [
        ("application.resourceTrackingMethod", "annotation+label"),
        ("application.instanceLabelKey", "argocd.argoproj.io/instance"),
        ("installationID", " blue "),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut warnings = vec![];
    let t = Tracking::from_argocd_cm(&data, &mut warnings);
    assert_eq!(t.method, TrackingMethod::AnnotationAndLabel);
    assert_eq!(t.label_key, "argocd.argoproj.io/instance");
    assert_eq!(t.installation_id, "blue");
    assert!(warnings.is_empty());
    let bad = [("application.resourceTrackingMethod".to_string(), "labels".to_string())].into();
    let t = Tracking::from_argocd_cm(&bad, &mut warnings);
    assert_eq!(t, Tracking::default());
    assert_eq!(warnings.len(), 1, "{warnings:?}");
}

#[test]
fn label_tracking_reads_the_instance_label_of_objects_nothing_owns() {
    let t = with(TrackingMethod::Label);
    let (obj, key) = object(json!({"app.kubernetes.io/instance": "web"}), json!({}));
    assert_eq!(t.app_of(&obj, &key).as_deref(), Some("web"));
    let mut pod = obj.clone();
    pod["metadata"]["ownerReferences"] = json!([{"kind": "ReplicaSet", "name": "web-1", "uid": "u"}]);
    assert_eq!(t.app_of(&pod, &key), None, "a Pod inheriting its template's labels is not the app's own");
    // The annotation does not count with label tracking, and the label does not with annotations.
    let (annotated, key) = object(json!({}), json!({TRACKING_ANNOTATION: "web:/ConfigMap:web/cfg"}));
    assert_eq!(t.app_of(&annotated, &key), None);
    assert_eq!(with(TrackingMethod::Annotation).app_of(&obj, &key), None);
    assert_eq!(with(TrackingMethod::Annotation).app_of(&annotated, &key).as_deref(), Some("web"));
}

#[test]
fn annotation_and_label_tracking_decides_by_the_annotation() {
    let t = with(TrackingMethod::AnnotationAndLabel);
    let (obj, key) = object(
        json!({"app.kubernetes.io/instance": "other"}),
        json!({TRACKING_ANNOTATION: "web:/ConfigMap:web/cfg"}),
    );
    assert_eq!(t.app_of(&obj, &key).as_deref(), Some("web"));
}

#[test]
fn a_copied_tracking_id_is_not_the_objects_own() {
    let (obj, _) = object(json!({}), json!({TRACKING_ANNOTATION: "web:/ConfigMap:web/cfg"}));
    let other = ResourceKey::new("", "ConfigMap", "web", "copy");
    assert_eq!(Tracking::default().app_of(&obj, &other), None);
}

#[test]
fn objects_of_another_installation_are_not_ours() {
    let (obj, key) = object(
        json!({}),
        json!({TRACKING_ANNOTATION: "web:/ConfigMap:web/cfg", INSTALLATION_ANNOTATION: "blue"}),
    );
    assert_eq!(Tracking::default().app_of(&obj, &key), None);
    let blue = Tracking { installation_id: "blue".into(), ..Tracking::default() };
    assert_eq!(blue.app_of(&obj, &key).as_deref(), Some("web"));
}

#[test]
fn each_method_marks_what_it_reads() {
    for method in [TrackingMethod::Annotation, TrackingMethod::Label, TrackingMethod::AnnotationAndLabel] {
        let t = with(method);
        let (mut obj, key) = object(json!({}), json!({}));
        t.mark(&mut obj, &key, "web").unwrap();
        assert_eq!(t.app_of(&obj, &key).as_deref(), Some("web"), "{method:?}: {obj}");
        let labelled = obj["metadata"]["labels"].get(DEFAULT_INSTANCE_LABEL).is_some();
        let annotated = obj["metadata"]["annotations"].get(TRACKING_ANNOTATION).is_some();
        assert_eq!(labelled, method != TrackingMethod::Annotation, "{method:?}");
        assert_eq!(annotated, method != TrackingMethod::Label, "{method:?}");
    }
}

#[test]
fn a_name_too_long_for_a_label_is_refused_with_label_tracking_and_cut_with_both() {
    let long = "a".repeat(70);
    let (mut obj, key) = object(json!({}), json!({}));
    let err = with(TrackingMethod::Label).mark(&mut obj, &key, &long).unwrap_err();
    assert!(err.contains("longer than 63"), "{err}");
    with(TrackingMethod::AnnotationAndLabel).mark(&mut obj, &key, &long).unwrap();
    assert_eq!(obj["metadata"]["labels"][DEFAULT_INSTANCE_LABEL].as_str().unwrap().len(), 63);
}

#[test]
fn a_hook_from_generate_name_is_tracked_under_its_prefix() {
    let hook = json!({"apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "migrate-x7k2p", "generateName": "migrate-", "namespace": "web",
                     "annotations": {TRACKING_ANNOTATION: "web:batch/Job:web/migrate-"}}});
    let key = ResourceKey::of(&hook).unwrap();
    assert_eq!(Tracking::default().app_of(&hook, &key).as_deref(), Some("web"));
}
