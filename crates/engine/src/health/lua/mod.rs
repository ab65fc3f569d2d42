//! Custom health checks in Lua, run as Argo CD runs them: Lua 5.1 with `goto` and `::labels::` (LuaJIT's
//! interpreter, as Argo CD's gopher-lua accepts them), the live object in the global `obj`, and a returned
//! table `{status = "...", message = "..."}`. Scripts see only the base library (without the functions
//! that load code or files), `string`, `table`, `math` and an `os` that only tells the time, unless their
//! group and kind opt into the open libraries (then also `io`, the whole `os`, `package`). Each run has a
//! fresh interpreter, a time limit and a memory limit; a failing script or an invalid status is Unknown with
//! the reason as the message. A script that answers nothing (`nil`, `{}`) gives the object no health, so it
//! does not count towards the application's.
//!
//! ```
//! use berth_engine::health::{HealthOverrides, HealthStatus};
//! let mut overrides = HealthOverrides::default();
//! overrides.insert("example.com/Widget", r#"
//!     for _, condition in ipairs(obj.status.conditions) do
//!       if condition.type ~= "Ready" then goto continue end
//!       if condition.status == "False" then return {status = "Degraded", message = condition.reason} end
//!       ::continue::
//!     end
//!     return {status = "Healthy"}
//! "#, false).unwrap();
//! let widget = serde_json::json!({"apiVersion": "example.com/v1", "kind": "Widget", "status": {
//!   "conditions": [
//!     {"type": "Synced", "status": "False"},
//!     {"type": "Ready", "status": "False", "reason": "broken"},
//!   ],
//! }});
//! let health = overrides.assess(&widget).unwrap();
//! assert_eq!((health.status, health.message.as_str()), (HealthStatus::Degraded, "broken"));
//! ```

mod answer;
mod sandbox;
#[cfg(test)]
mod tests;

pub use sandbox::{MEMORY_LIMIT, TIME_LIMIT};

use super::Health;
use std::collections::BTreeMap;

/// Custom health checks by group and kind (argocd-cm `resource.customizations.health.<group>_<kind>`),
/// consulted before the built-in checks.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HealthOverrides {
    /// By Argo CD's override key: `group/Kind`, or `Kind` for the core group; globs allowed.
    scripts: BTreeMap<String, HealthScript>,
}

#[derive(Clone, Debug)]
struct HealthScript {
    source: String,
    use_open_libs: bool,
    /// Set when the key is a glob (`*.example.com/*`).
    wildcard: Option<globset::GlobMatcher>,
}

impl PartialEq for HealthScript {
    fn eq(&self, other: &Self) -> bool {
        (&self.source, self.use_open_libs) == (&other.source, other.use_open_libs)
    }
}

/// A script or key that cannot work, found when the settings are read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HealthScriptError {
    #[error("health check for {key}: the script does not compile: {message}")]
    Syntax { key: String, message: String },
    #[error("health check for {key}: the key is not a valid glob: {message}")]
    Pattern { key: String, message: String },
}

impl HealthOverrides {
    /// Adds the script for `key`, Argo CD's override key (`group/Kind`, `Kind` for the core group; `*`, `?`,
    /// `[...]` and `{a,b}` match several). A script that does not compile is kept, so its objects show
    /// Unknown with the error rather than a built-in health, and the error is returned to be reported; a key
    /// that is not a valid glob is refused.
    pub fn insert(&mut self, key: &str, source: &str, use_open_libs: bool) -> Result<(), HealthScriptError> {
        let wildcard = if key.contains(['*', '?', '[', '{']) {
            let glob = globset::Glob::new(key).map_err(|e| HealthScriptError::Pattern {
                key: key.to_string(),
                message: e.kind().to_string(),
            })?;
            Some(glob.compile_matcher())
        } else {
            None
        };
        self.scripts
            .insert(key.to_string(), HealthScript { source: source.to_string(), use_open_libs, wildcard });
        sandbox::compile(source)
            .map_err(|message| HealthScriptError::Syntax { key: key.to_string(), message })
    }

    pub fn is_empty(&self) -> bool {
        self.scripts.is_empty()
    }

    /// The health of a live object: none when it is annotated `argocd.argoproj.io/ignore-healthcheck:
    /// "true"`, Progressing while it is being deleted, then its custom script's verdict if one matches its
    /// group and kind (none when the script answers nothing), else the built-in check.
    pub fn assess(&self, obj: &serde_json::Value) -> Option<Health> {
        if super::ignores_healthcheck(obj) {
            return None;
        }
        if let Some(deleting) = super::pending_deletion(obj) {
            return Some(deleting);
        }
        match self.script_for(obj) {
            Some(script) => sandbox::run(&script.source, obj, script.use_open_libs),
            None => super::built_in(obj),
        }
    }

    /// The object's own key first, as Argo CD looks it up; only without one a glob, the longest (the most
    /// specific) when several match, then the first in key order. Argo CD picks among several globs in no
    /// fixed order.
    fn script_for(&self, obj: &serde_json::Value) -> Option<&HealthScript> {
        if self.scripts.is_empty() {
            return None;
        }
        let (group, _) =
            obj["apiVersion"].as_str().map(crate::resource::split_api_version).unwrap_or_default();
        let kind = obj["kind"].as_str().unwrap_or_default();
        let key = if group.is_empty() { kind.to_string() } else { format!("{group}/{kind}") };
        if let Some(exact) = self.scripts.get(&key) {
            return Some(exact);
        }
        self.scripts
            .iter()
            .filter(|(_, s)| s.wildcard.as_ref().is_some_and(|w| w.is_match(&key)))
            .min_by_key(|(glob, _)| (std::cmp::Reverse(glob.len()), glob.as_str()))
            .map(|(_, s)| s)
    }
}
