//! Which application an object belongs to, and how an application marks the objects it applies:
//! argocd-cm's `application.resourceTrackingMethod` (`annotation`, the default since Argo CD 3;
//! `label`; `annotation+label`), `application.instanceLabelKey` and `installationID`. The cache, the
//! controller's target and the API server all ask this one place.
//!
//! ```
//! use berth_engine::resource::ResourceKey;
//! use berth_engine::tracking::{Tracking, TrackingMethod};
//! let tracking = Tracking { method: TrackingMethod::Label, ..Tracking::default() };
//! let mut obj = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "web"}});
//! let key = ResourceKey::of(&obj).unwrap();
//! tracking.mark(&mut obj, &key, "web").unwrap();
//! assert_eq!(obj["metadata"]["labels"]["app.kubernetes.io/instance"], "web");
//! assert_eq!(tracking.app_of(&obj, &key).as_deref(), Some("web"));
//! ```

use std::collections::BTreeMap;

use crate::resource::{INSTALLATION_ANNOTATION, ResourceKey, TRACKING_ANNOTATION, TrackingId};

/// Argo CD's default `application.instanceLabelKey`.
pub const DEFAULT_INSTANCE_LABEL: &str = "app.kubernetes.io/instance";

/// A label value's longest length (Kubernetes' rule).
const LABEL_VALUE_MAX: usize = 63;

/// argocd-cm `application.resourceTrackingMethod`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TrackingMethod {
    /// The `argocd.argoproj.io/tracking-id` annotation names the app and the object itself.
    #[default]
    Annotation,
    /// The instance label holds the app's name.
    Label,
    /// The annotation decides; the label is written too (cut to 63 characters), for selectors.
    AnnotationAndLabel,
}

impl TrackingMethod {
    /// The method argocd-cm names; `None` for a value Argo CD does not know.
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim() {
            "" | "annotation" => Some(TrackingMethod::Annotation),
            "label" => Some(TrackingMethod::Label),
            "annotation+label" => Some(TrackingMethod::AnnotationAndLabel),
            _ => None,
        }
    }
}

/// How this installation tracks objects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tracking {
    pub method: TrackingMethod,
    /// `application.instanceLabelKey`.
    pub label_key: String,
    /// `installationID` ("" for none): objects another installation applied are never this one's.
    pub installation_id: String,
}

impl Default for Tracking {
    fn default() -> Self {
        Tracking {
            method: TrackingMethod::default(),
            label_key: DEFAULT_INSTANCE_LABEL.into(),
            installation_id: String::new(),
        }
    }
}

impl Tracking {
    /// Reads the three argocd-cm keys; a bad value is a warning and its default is kept.
    pub fn from_argocd_cm(data: &BTreeMap<String, String>, warnings: &mut Vec<String>) -> Self {
        let mut t = Tracking::default();
        if let Some(v) = data.get("application.resourceTrackingMethod") {
            match TrackingMethod::parse(v) {
                Some(m) => t.method = m,
                None => warnings.push(format!(
                    "argocd-cm application.resourceTrackingMethod: {v:?} is not annotation, label or annotation+label"
                )),
            }
        }
        if let Some(v) = data.get("application.instanceLabelKey").map(|v| v.trim()).filter(|v| !v.is_empty())
        {
            t.label_key = v.to_string();
        }
        t.installation_id = data.get("installationID").map(|v| v.trim().to_string()).unwrap_or_default();
        t
    }

    /// The application `obj` (whose key is `key`) belongs to. With the annotation, the id must name this
    /// very object (a copied annotation does not count; a hook made from `generateName` is tracked under
    /// its prefix). With the label, only objects no other object owns count, as in Argo CD: a Pod that
    /// inherits its Deployment's labels is not the app's own.
    pub fn app_of(&self, obj: &serde_json::Value, key: &ResourceKey) -> Option<String> {
        let meta = &obj["metadata"];
        if meta["annotations"][INSTALLATION_ANNOTATION].as_str().unwrap_or_default() != self.installation_id {
            return None;
        }
        if self.method == TrackingMethod::Label {
            let owned = meta["ownerReferences"].as_array().is_some_and(|o| !o.is_empty());
            let app = meta["labels"][self.label_key.as_str()].as_str().filter(|a| !a.is_empty())?;
            return (!owned).then(|| app.to_string());
        }
        let t = TrackingId::of(obj)?;
        let generated = meta["generateName"].as_str().is_some_and(|prefix| {
            t.key.name == prefix
                && key.name.starts_with(prefix)
                && (&t.key.group, &t.key.kind, &t.key.namespace) == (&key.group, &key.kind, &key.namespace)
        });
        (t.key == *key || generated).then_some(t.app)
    }

    /// Marks a desired object as `app`'s, the way this method writes it (and the installation id).
    pub fn mark(&self, obj: &mut serde_json::Value, key: &ResourceKey, app: &str) -> Result<(), String> {
        let Some(meta) = obj["metadata"].as_object_mut() else { return Ok(()) };
        if self.method != TrackingMethod::Label || !self.installation_id.is_empty() {
            let annotations = meta.entry("annotations").or_insert_with(|| serde_json::json!({}));
            if let Some(a) = annotations.as_object_mut() {
                if self.method != TrackingMethod::Label {
                    a.insert(TRACKING_ANNOTATION.into(), key.tracking_id(app).into());
                }
                if !self.installation_id.is_empty() {
                    a.insert(INSTALLATION_ANNOTATION.into(), self.installation_id.clone().into());
                }
            }
        }
        if self.method != TrackingMethod::Annotation {
            let value = match self.method {
                TrackingMethod::Label if app.len() > LABEL_VALUE_MAX => {
                    return Err(format!(
                        "the application name {app:?} is longer than {LABEL_VALUE_MAX} characters, too long for label tracking ({}); use annotation tracking",
                        self.label_key
                    ));
                }
                _ => app.chars().take(LABEL_VALUE_MAX).collect::<String>(),
            };
            let labels = meta.entry("labels").or_insert_with(|| serde_json::json!({}));
            if let Some(l) = labels.as_object_mut() {
                l.insert(self.label_key.clone(), value.into());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
