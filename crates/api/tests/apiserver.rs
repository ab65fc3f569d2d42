//! Against the real local API server (hack/cluster up): the generated CRDs install, every example passes
//! `kubectl create --dry-run=server`, and what is stored is exactly what was written (nothing pruned).

mod common;

use berth_testkit::{client, ensure_namespace, install_crds};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams};

#[tokio::test]
async fn every_example_passes_a_server_side_dry_run() {
    let client = client().await;
    install_crds(&client).await;
    // Namespaces the examples name; the dry run creates nothing.
    for ns in ["argocd", "demo-waves"] {
        ensure_namespace(&client, ns).await;
    }
    for dir in [common::seed_dir(), common::documented_dir()] {
        for entry in std::fs::read_dir(&dir).expect("example folder") {
            let file = entry.expect("entry").path();
            if file.extension().is_none_or(|e| e != "yaml") {
                continue;
            }
            // `create`, not `apply`: the seed's PreSync Job uses generateName, which apply cannot take.
            let out = std::process::Command::new("kubectl")
                .args(["create", "--dry-run=server", "-o", "name", "-f"])
                .arg(&file)
                .output()
                .expect("kubectl is on PATH (hack/cluster env puts it there)");
            let stderr = String::from_utf8_lossy(&out.stderr);
            // AlreadyExists comes after validation and admission, so it also means "accepted": the seed's
            // sync-waves.yaml names a Namespace made above, and a demo may have created the seed's apps.
            let only_exists =
                stderr.lines().filter(|l| l.starts_with("Error")).all(|l| l.contains("AlreadyExists"));
            assert!(
                out.status.success() || only_exists,
                "{} was refused by the API server:\n{stderr}",
                file.display()
            );
            assert!(
                !out.stdout.is_empty() || stderr.contains("AlreadyExists"),
                "{}: the dry run returned no objects",
                file.display()
            );
        }
    }
}

#[tokio::test]
async fn the_api_server_stores_every_argoproj_field_as_written() {
    let client = client().await;
    install_crds(&client).await;
    let ns = format!("berth-examples-{}", std::process::id());
    ensure_namespace(&client, &ns).await;
    let pp = PatchParams::apply("berth-test").force();
    let mut stored_count = 0;
    for ex in common::all().into_iter().filter(|e| e.is_argoproj()) {
        let gvk = GroupVersionKind::gvk("argoproj.io", "v1alpha1", ex.kind());
        let plural = format!("{}s", ex.kind().to_lowercase());
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), &ns, &ApiResource::from_gvk_with_plural(&gvk, &plural));
        let mut body = ex.doc.clone();
        body["metadata"]["namespace"] = ns.clone().into();
        // Finalizers would hold the namespace's deletion for a controller that is not running here.
        body["metadata"].as_object_mut().expect("metadata").remove("finalizers");
        let name = body["metadata"]["name"].as_str().expect("argoproj examples have names").to_string();
        api.patch(&name, &pp, &Patch::Apply(&body)).await.unwrap_or_else(|e| panic!("{}: {e}", ex.label()));
        let stored = serde_json::to_value(api.get(&name).await.expect("reading back")).expect("JSON");
        // The ApplicationSet CRD has a status subresource, so status written with the object is not stored.
        let fields: &[&str] =
            if ex.kind() == "ApplicationSet" { &["spec"] } else { &["spec", "status", "operation"] };
        for field in fields {
            if let Some(diff) = common::first_difference(&ex.doc[*field], &stored[*field], field) {
                panic!("{}: the API server changed {diff}", ex.label());
            }
        }
        api.delete(&name, &DeleteParams::default()).await.expect("deleting the example");
        stored_count += 1;
    }
    assert!(stored_count >= 15, "only {stored_count} examples were stored");
    let namespaces: Api<Namespace> = Api::all(client);
    namespaces.delete(&ns, &DeleteParams::default()).await.expect("deleting the test namespace");
}
