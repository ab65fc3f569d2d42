//! Against the real local API server (hack/cluster up): the generated CRDs install, every example passes
//! `kubectl create --dry-run=server`, and what is stored is exactly what was written (nothing pruned).

mod common;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams};
use std::time::{Duration, Instant};

/// The test cluster's client; a missing cluster fails loudly, it never skips.
async fn client() -> kube::Client {
    assert!(
        std::env::var_os("KUBECONFIG").is_some(),
        "KUBECONFIG is not set: start the local cluster with `hack/cluster up` and `eval \"$(hack/cluster env)\"`, or run `hack/test`"
    );
    let client = kube::Client::try_default().await.expect("a client from KUBECONFIG");
    client.apiserver_version().await.expect("the local API server answers (is `hack/cluster up` running?)");
    client
}

async fn install_crds(client: &kube::Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let pp = PatchParams::apply("berth-test").force();
    for crd in berth_api::crd::all() {
        let name = crd.metadata.name.clone().expect("a CRD has a name");
        let mut body = serde_json::to_value(&crd).expect("CRD as JSON");
        body["apiVersion"] = "apiextensions.k8s.io/v1".into();
        body["kind"] = "CustomResourceDefinition".into();
        crds.patch(&name, &pp, &Patch::Apply(&body))
            .await
            .unwrap_or_else(|e| panic!("applying CRD {name}: {e}"));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    for crd in berth_api::crd::all() {
        let name = crd.metadata.name.expect("a CRD has a name");
        loop {
            let live = crds.get(&name).await.expect("reading the CRD back");
            let established = live
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True");
            if established {
                break;
            }
            assert!(Instant::now() < deadline, "CRD {name} was not Established within 60s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn ensure_namespace(client: &kube::Client, name: &str) {
    let ns: Api<Namespace> = Api::all(client.clone());
    let body = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
    ns.patch(name, &PatchParams::apply("berth-test"), &Patch::Apply(&body))
        .await
        .unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
}

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
