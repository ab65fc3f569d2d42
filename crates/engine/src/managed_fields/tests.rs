use super::*;
use serde_json::json;

/// A Deployment as Argo CD's client-side apply leaves it, after berth's dry run of a git version that
/// dropped the `stale` label, the `sidecar` container and the `LOG` variable.
fn taken_over() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web", "stale": "x"},
            "annotations": {LAST_APPLIED: "{}"},
            "managedFields": [
                {"manager": "argocd-controller", "operation": "Update", "apiVersion": "apps/v1",
                 "fieldsV1": {"f:metadata": {"f:annotations": {".": {}, format!("f:{LAST_APPLIED}"): {}},
                                             "f:labels": {".": {}, "f:app": {}, "f:stale": {}}},
                              "f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
                                  "k:{\"name\":\"web\"}": {".": {}, "f:name": {}, "f:image": {},
                                      "f:env": {".": {}, "k:{\"name\":\"LOG\"}": {".": {}, "f:name": {}, "f:value": {}}}},
                                  "k:{\"name\":\"sidecar\"}": {".": {}, "f:name": {}, "f:image": {}}}}}}}},
                {"manager": "argocd-controller", "operation": "Apply", "apiVersion": "apps/v1",
                 "fieldsV1": {"f:metadata": {"f:labels": {"f:app": {}}},
                              "f:spec": {"f:template": {"f:spec": {"f:containers": {
                                  "k:{\"name\":\"web\"}": {".": {}, "f:name": {}, "f:image": {}}}}}}}},
                {"manager": "kube-controller-manager", "operation": "Update", "subresource": "status",
                 "fieldsV1": {"f:status": {"f:replicas": {}}}},
                {"manager": "hpa", "operation": "Update", "fieldsV1": {"f:spec": {"f:replicas": {}}}}
            ]},
        "spec": {"replicas": 3, "template": {"spec": {"containers": [
            {"name": "web", "image": "web:2", "env": [{"name": "LOG", "value": "debug"}]},
            {"name": "sidecar", "image": "proxy:1"}]}}},
        "status": {"replicas": 3}
    })
}

#[test]
fn fields_only_the_client_side_entry_owns_are_the_leftovers() {
    let left = leftovers(&taken_over(), &ClientSideManagers::default());
    assert_eq!(
        left,
        json!({"f:metadata": {"f:labels": {"f:stale": {}}},
               "f:spec": {"f:template": {"f:spec": {"f:containers": {
                   "k:{\"name\":\"web\"}": {"f:env": {"k:{\"name\":\"LOG\"}": {}}},
                   "k:{\"name\":\"sidecar\"}": {}}}}}})
    );
}

#[test]
fn removing_the_leftovers_predicts_what_the_apply_after_the_move_leaves() {
    let mut obj = taken_over();
    let left = leftovers(&obj, &ClientSideManagers::default());
    remove_fields(&mut obj, &left);
    assert_eq!(obj["metadata"]["labels"], json!({"app": "web"}));
    assert_eq!(
        obj["spec"]["template"]["spec"]["containers"],
        json!([{"name": "web", "image": "web:2", "env": []}])
    );
    // Another manager's field and the last-applied record stay.
    assert_eq!(obj["spec"]["replicas"], 3);
    assert!(obj["metadata"]["annotations"][LAST_APPLIED].is_string());
}

#[test]
fn a_struct_no_other_entry_owns_is_entered_not_removed_whole() {
    // berth's entry owns nothing under metadata here: only the label goes, never metadata itself.
    let obj = json!({"metadata": {"name": "a", "labels": {"stale": "x"}, "managedFields": [
        {"manager": "argocd-controller", "operation": "Update",
         "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:stale": {}}}, "f:data": {"f:a": {}}}},
        {"manager": "argocd-controller", "operation": "Apply", "fieldsV1": {"f:data": {"f:a": {}}}}]}});
    let left = leftovers(&obj, &ClientSideManagers::default());
    assert_eq!(left, json!({"f:metadata": {"f:labels": {"f:stale": {}}}}));
    let mut after = obj.clone();
    remove_fields(&mut after, &left);
    assert_eq!(after["metadata"]["name"], "a");
    assert_eq!(after["metadata"]["labels"], json!({}));
}

#[test]
fn an_object_berth_owns_alone_has_no_leftovers() {
    let obj = json!({"metadata": {"managedFields": [
        {"manager": "argocd-controller", "operation": "Apply", "fieldsV1": {"f:data": {"f:a": {}}}}]}});
    assert!(is_empty(&leftovers(&obj, &ClientSideManagers::default())));
    assert_eq!(migrate(&obj, &ClientSideManagers::default(), "argocd-controller"), None);
    assert!(is_empty(&leftovers(&json!({"metadata": {}}), &ClientSideManagers::default())));
}

#[test]
fn a_client_side_entry_equal_to_git_leaves_nothing() {
    let same = json!({"f:data": {".": {}, "f:a": {}}});
    let obj = json!({"metadata": {"managedFields": [
        {"manager": "argocd-controller", "operation": "Update", "fieldsV1": same},
        {"manager": "argocd-controller", "operation": "Apply", "fieldsV1": same}]}});
    assert!(is_empty(&leftovers(&obj, &ClientSideManagers::default())));
}

#[test]
fn other_update_managers_are_taken_over_only_when_named() {
    let obj = json!({"metadata": {"managedFields": [
        {"manager": "kubectl-client-side-apply", "operation": "Update", "fieldsV1": {"f:data": {"f:k": {}}}},
        {"manager": "my-operator", "operation": "Update", "fieldsV1": {"f:data": {"f:o": {}}}}]}});
    let default = leftovers(&obj, &ClientSideManagers::default());
    assert_eq!(default, json!({"f:data": {"f:k": {}}}));
    let off = leftovers(&obj, &ClientSideManagers::for_app(false, None));
    assert!(is_empty(&off), "ClientSideApplyMigration=false takes over only berth's own entry: {off}");
    let custom = leftovers(&obj, &ClientSideManagers::for_app(true, Some("my-operator")));
    assert_eq!(custom, json!({"f:data": {"f:o": {}}}));
}

#[test]
fn the_move_joins_the_client_side_fields_to_berths_apply_entry() {
    let migrated = migrate(&taken_over(), &ClientSideManagers::default(), "argocd-controller").unwrap();
    let managers: Vec<(&str, &str)> =
        migrated.iter().map(|e| (e["manager"].as_str().unwrap(), e["operation"].as_str().unwrap())).collect();
    assert_eq!(
        managers,
        [("argocd-controller", "Apply"), ("kube-controller-manager", "Update"), ("hpa", "Update")]
    );
    let fields = &migrated[0]["fieldsV1"];
    assert!(fields["f:metadata"]["f:labels"].get("f:stale").is_some());
    assert!(
        fields["f:spec"]["f:template"]["f:spec"]["f:containers"].get("k:{\"name\":\"sidecar\"}").is_some()
    );
    // After the move nothing is left over: the next apply removes what git dropped.
    let mut after = taken_over();
    after["metadata"]["managedFields"] = Value::Array(migrated);
    assert!(is_empty(&leftovers(&after, &ClientSideManagers::default())));
}

#[test]
fn the_move_makes_an_apply_entry_when_there_is_none() {
    let obj = json!({"apiVersion": "v1", "metadata": {"managedFields": [
        {"manager": "argocd-controller", "operation": "Update", "apiVersion": "v1", "fieldsV1": {"f:data": {"f:a": {}}}}]}});
    let migrated = migrate(&obj, &ClientSideManagers::default(), "argocd-controller").unwrap();
    assert_eq!(
        migrated,
        vec![json!({"manager": "argocd-controller", "operation": "Apply", "apiVersion": "v1",
                    "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:a": {}}}})]
    );
}

#[test]
fn set_values_and_indexed_items_are_removed() {
    let mut obj = json!({"metadata": {"finalizers": ["a", "b"]}, "spec": {"args": ["x", "y"]}});
    remove_fields(
        &mut obj,
        &json!({"f:metadata": {"f:finalizers": {"v:\"a\"": {}}}, "f:spec": {"f:args": {"i:1": {}}}}),
    );
    assert_eq!(obj, json!({"metadata": {"finalizers": ["b"]}, "spec": {"args": ["x"]}}));
}
