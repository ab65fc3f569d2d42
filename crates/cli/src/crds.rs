//! `berth crds`: the CRDs generated from `berth_api`, as a multi-document YAML stream.

use anyhow::Result;

pub fn to_yaml() -> Result<String> {
    let mut out = String::new();
    for crd in berth_api::crd::all() {
        let mut value = serde_json::to_value(&crd)?;
        // TypeMeta is not part of the k8s-openapi struct's serialisation order; put it first for readers.
        let object = value.as_object_mut().expect("a CRD serialises to an object");
        let mut ordered = serde_json::Map::new();
        ordered.insert("apiVersion".into(), "apiextensions.k8s.io/v1".into());
        ordered.insert("kind".into(), "CustomResourceDefinition".into());
        for (k, v) in std::mem::take(object) {
            if k != "apiVersion" && k != "kind" {
                ordered.insert(k, v);
            }
        }
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(&serde_json::Value::Object(ordered))?);
    }
    Ok(out)
}
