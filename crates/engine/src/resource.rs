//! Identity of an object: group, kind, namespace and name, and the tracking id that ties it to an app.

use std::fmt;

/// `argocd.argoproj.io/tracking-id`: `<app>:<group>/<kind>:<namespace>/<name>`.
pub const TRACKING_ANNOTATION: &str = "argocd.argoproj.io/tracking-id";
/// `argocd.argoproj.io/installation-id`: which installation applied an object (argocd-cm `installationID`),
/// so two installations on one cluster with apps of the same name never take each other's objects.
pub const INSTALLATION_ANNOTATION: &str = "argocd.argoproj.io/installation-id";

/// The key of an object in the cluster (version-independent, as Argo CD's ResourceKey).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceKey {
    pub group: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl ResourceKey {
    pub fn new(group: &str, kind: &str, namespace: &str, name: &str) -> Self {
        ResourceKey { group: group.into(), kind: kind.into(), namespace: namespace.into(), name: name.into() }
    }

    /// The key of a manifest or live object; `None` when it lacks kind or name.
    pub fn of(obj: &serde_json::Value) -> Option<Self> {
        let (group, _) = split_api_version(obj["apiVersion"].as_str()?);
        let kind = obj["kind"].as_str().filter(|k| !k.is_empty())?;
        let name = obj["metadata"]["name"].as_str().filter(|n| !n.is_empty())?;
        let namespace = obj["metadata"]["namespace"].as_str().unwrap_or_default();
        Some(ResourceKey::new(group, kind, namespace, name))
    }

    pub fn group_kind(&self) -> GroupKind {
        GroupKind { group: self.group.clone(), kind: self.kind.clone() }
    }

    /// The tracking id an application `app` writes on this object.
    pub fn tracking_id(&self, app: &str) -> String {
        format!("{app}:{}/{}:{}/{}", self.group, self.kind, self.namespace, self.name)
    }
}

impl fmt::Display for ResourceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let gk =
            if self.group.is_empty() { self.kind.clone() } else { format!("{}.{}", self.kind, self.group) };
        if self.namespace.is_empty() {
            write!(f, "{gk}/{}", self.name)
        } else {
            write!(f, "{gk} {}/{}", self.namespace, self.name)
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupKind {
    pub group: String,
    pub kind: String,
}

impl fmt::Display for GroupKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.group.is_empty() {
            write!(f, "{}", self.kind)
        } else {
            write!(f, "{}.{}", self.kind, self.group)
        }
    }
}

/// `apps/v1` → (`apps`, `v1`); `v1` → (``, `v1`).
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    api_version.rsplit_once('/').unwrap_or(("", api_version))
}

/// A parsed tracking id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackingId {
    pub app: String,
    pub key: ResourceKey,
}

impl TrackingId {
    pub fn parse(s: &str) -> Option<Self> {
        let (app, rest) = s.split_once(':')?;
        let (gk, nn) = rest.split_once(':')?;
        let (group, kind) = gk.split_once('/')?;
        let (namespace, name) = nn.split_once('/')?;
        if app.is_empty() || kind.is_empty() || name.is_empty() {
            return None;
        }
        Some(TrackingId { app: app.into(), key: ResourceKey::new(group, kind, namespace, name) })
    }

    /// The tracking id written on `obj`, if any.
    pub fn of(obj: &serde_json::Value) -> Option<Self> {
        Self::parse(obj["metadata"]["annotations"][TRACKING_ANNOTATION].as_str()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracking_id_round_trips_in_argo_cds_format() {
        let key = ResourceKey::new("apps", "Deployment", "web", "web");
        assert_eq!(key.tracking_id("web"), "web:apps/Deployment:web/web");
        assert_eq!(TrackingId::parse("web:apps/Deployment:web/web").unwrap().key, key);
        let core = TrackingId::parse("guestbook:/Namespace:/demo").unwrap();
        assert_eq!(core.key, ResourceKey::new("", "Namespace", "", "demo"));
        assert_eq!(TrackingId::parse("garbage"), None);
    }

    #[test]
    fn key_of_an_object_uses_the_group_not_the_version() {
        let obj = serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "a", "namespace": "b"}});
        assert_eq!(ResourceKey::of(&obj), Some(ResourceKey::new("apps", "Deployment", "b", "a")));
    }
}
