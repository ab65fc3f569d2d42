//! Custom health checks in Lua, run as Argo CD runs them: Lua 5.1, the live object in the global `obj`, and
//! a returned table `{status = "...", message = "..."}`. Scripts see only the base library (without the
//! functions that load code or files), `string`, `table`, `math` and an `os` that only tells the time, unless
//! their group and kind opt into the open libraries (then also `io`, the whole `os`, `package`). Each run has
//! a fresh interpreter, a time limit and a memory limit; a failing script or an invalid status is Unknown
//! with the reason as the message.
//!
//! ```
//! use berth_engine::health::{HealthOverrides, HealthStatus};
//! let mut overrides = HealthOverrides::default();
//! overrides.insert("example.com/Widget", r#"return {status = "Degraded", message = obj.status.reason}"#, false).unwrap();
//! let widget = serde_json::json!({"apiVersion": "example.com/v1", "kind": "Widget", "status": {"reason": "broken"}});
//! let health = overrides.assess(&widget).unwrap();
//! assert_eq!((health.status, health.message.as_str()), (HealthStatus::Degraded, "broken"));
//! ```

use super::{Health, HealthStatus};
use mlua::{HookTriggers, Lua, LuaOptions, StdLib, VmState};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How long one script may run.
pub const TIME_LIMIT: Duration = Duration::from_secs(1);
/// How much memory one script's interpreter may hold, the object included.
pub const MEMORY_LIMIT: usize = 64 << 20;

const TIME_LIMIT_MESSAGE: &str = "health check exceeded its time limit of 1s";
const MEMORY_LIMIT_MESSAGE: &str = "health check exceeded its memory limit of 64 MiB";
const INVALID_STATUS_MESSAGE: &str = "Lua returned an invalid health status";
/// Errors show as `health.lua:<line>: <error>`.
const CHUNK_NAME: &str = "=health.lua";

/// Base functions a script without the open libraries never sees: they load code or files, or reach into
/// the collector and other functions' environments.
const UNSAFE_BASE: &[&str] = &[
    "dofile",
    "loadfile",
    "load",
    "loadstring",
    "require",
    "module",
    "collectgarbage",
    "getfenv",
    "setfenv",
];

/// Makes `pcall`, `xpcall` and `coroutine.resume` re-raise the time-limit error, so a script cannot catch it
/// and run on.
const LIMIT_GUARD: &str = r#"
local expired, message, raw_pcall, raw_xpcall, raise = ...
local function pass(...)
  if expired() then raise(message, 0) end
  return ...
end
pcall = function(...) return pass(raw_pcall(...)) end
xpcall = function(...) return pass(raw_xpcall(...)) end
if coroutine then
  local raw_resume = coroutine.resume
  coroutine.resume = function(...) return pass(raw_resume(...)) end
end
"#;

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
        compile(source).map_err(|message| HealthScriptError::Syntax { key: key.to_string(), message })
    }

    pub fn is_empty(&self) -> bool {
        self.scripts.is_empty()
    }

    /// The health of a live object: none when it is annotated `argocd.argoproj.io/ignore-healthcheck:
    /// "true"`, Progressing while it is being deleted, then its custom script's verdict if one matches its
    /// group and kind (an exact key before a glob), else the built-in check.
    pub fn assess(&self, obj: &serde_json::Value) -> Option<Health> {
        if super::ignores_healthcheck(obj) {
            return None;
        }
        if let Some(deleting) = super::pending_deletion(obj) {
            return Some(deleting);
        }
        match self.script_for(obj) {
            Some(script) => Some(run(&script.source, obj, script.use_open_libs)),
            None => super::built_in(obj),
        }
    }

    fn script_for(&self, obj: &serde_json::Value) -> Option<&HealthScript> {
        if self.scripts.is_empty() {
            return None;
        }
        let (group, _) =
            obj["apiVersion"].as_str().map(crate::resource::split_api_version).unwrap_or_default();
        let kind = obj["kind"].as_str().unwrap_or_default();
        let key = if group.is_empty() { kind.to_string() } else { format!("{group}/{kind}") };
        self.scripts
            .get(&key)
            .or_else(|| self.scripts.values().find(|s| s.wildcard.as_ref().is_some_and(|w| w.is_match(&key))))
    }
}

/// Checks that a script compiles; the message says where it does not.
fn compile(source: &str) -> Result<(), String> {
    let lua = Lua::new_with(StdLib::NONE, LuaOptions::new()).map_err(|e| describe(&e))?;
    lua.load(source).set_name(CHUNK_NAME).into_function().map(drop).map_err(|e| describe(&e))
}

/// Runs one script on `obj`: its health, or Unknown with the reason it has none.
fn run(source: &str, obj: &serde_json::Value, use_open_libs: bool) -> Health {
    match evaluate(source, obj, use_open_libs) {
        Ok(health) => health,
        Err(e) => Health::new(HealthStatus::Unknown, describe(&e)),
    }
}

fn evaluate(source: &str, obj: &serde_json::Value, use_open_libs: bool) -> mlua::Result<Health> {
    let lua = sandbox(use_open_libs)?;
    lua.set_memory_limit(MEMORY_LIMIT)?;
    let globals = lua.globals();
    globals.raw_set("obj", to_lua(&lua, obj)?)?;

    let deadline = Instant::now() + TIME_LIMIT;
    let expired = lua.create_function(move |_, ()| Ok(Instant::now() >= deadline))?;
    let guard_args = (
        expired,
        TIME_LIMIT_MESSAGE,
        globals.raw_get::<mlua::Value>("pcall")?,
        globals.raw_get::<mlua::Value>("xpcall")?,
        globals.raw_get::<mlua::Value>("error")?,
    );
    lua.load(LIMIT_GUARD).set_name("=limits").call::<()>(guard_args)?;
    // Global: coroutines the script creates inherit it.
    lua.set_global_hook(HookTriggers::new().every_nth_instruction(1000), move |_, _| {
        if Instant::now() >= deadline {
            Err(mlua::Error::runtime(TIME_LIMIT_MESSAGE))
        } else {
            Ok(VmState::Continue)
        }
    })?;

    let returned = lua.load(source).set_name(CHUNK_NAME).call::<mlua::MultiValue>(())?;
    let table = match returned.into_iter().next().unwrap_or(mlua::Value::Nil) {
        mlua::Value::Table(t) => t,
        other => {
            return Err(mlua::Error::runtime(format!(
                "expect table output from Lua script, not {}",
                other.type_name()
            )));
        }
    };
    let status = match table.raw_get::<mlua::Value>("status")? {
        mlua::Value::String(s) => HealthStatus::parse(&s.to_str()?),
        _ => None,
    };
    let Some(status) = status else {
        return Ok(Health::new(HealthStatus::Unknown, INVALID_STATUS_MESSAGE));
    };
    let message = table.raw_get::<Option<String>>("message")?.unwrap_or_default();
    Ok(Health::new(status, message))
}

/// A fresh interpreter with the libraries a script may use.
fn sandbox(use_open_libs: bool) -> mlua::Result<Lua> {
    let libs = if use_open_libs {
        StdLib::ALL_SAFE
    } else {
        StdLib::STRING | StdLib::TABLE | StdLib::MATH | StdLib::OS
    };
    let lua = Lua::new_with(libs, LuaOptions::new())?;
    let globals = lua.globals();
    if !use_open_libs {
        for name in UNSAFE_BASE {
            globals.raw_set(*name, mlua::Nil)?;
        }
        let os: mlua::Table = globals.raw_get("os")?;
        let clock_only = lua.create_table()?;
        for name in ["time", "date", "clock", "difftime"] {
            clock_only.raw_set(name, os.raw_get::<mlua::Value>(name)?)?;
        }
        globals.raw_set("os", clock_only)?;
    }
    // A script's output goes to the log, never to berth's own stdout.
    let print = lua.create_function(|_, args: mlua::Variadic<mlua::Value>| {
        let line: Vec<String> =
            args.iter().map(|v| v.to_string().unwrap_or_else(|_| v.type_name().into())).collect();
        tracing::debug!(target: "berth::health::lua", "{}", line.join("\t"));
        Ok(())
    })?;
    globals.raw_set("print", print)?;
    Ok(lua)
}

/// The object as Lua sees it in Argo CD: objects and arrays as tables (arrays from 1), numbers as Lua
/// numbers, null as nil.
fn to_lua(lua: &Lua, value: &serde_json::Value) -> mlua::Result<mlua::Value> {
    use serde_json::Value as Json;
    Ok(match value {
        Json::Null => mlua::Value::Nil,
        Json::Bool(b) => mlua::Value::Boolean(*b),
        Json::Number(n) => mlua::Value::Number(n.as_f64().unwrap_or_default()),
        Json::String(s) => mlua::Value::String(lua.create_string(s)?),
        Json::Array(items) => {
            let table = lua.create_table_with_capacity(items.len(), 0)?;
            for (i, item) in items.iter().enumerate() {
                table.raw_set(i + 1, to_lua(lua, item)?)?;
            }
            mlua::Value::Table(table)
        }
        Json::Object(fields) => {
            let table = lua.create_table_with_capacity(0, fields.len())?;
            for (key, item) in fields {
                table.raw_set(key.as_str(), to_lua(lua, item)?)?;
            }
            mlua::Value::Table(table)
        }
    })
}

/// The error as a one-line message: the Lua error without mlua's wrapping and traceback.
fn describe(error: &mlua::Error) -> String {
    match error {
        mlua::Error::CallbackError { cause, .. } => describe(cause),
        mlua::Error::MemoryError(_) => MEMORY_LIMIT_MESSAGE.to_string(),
        mlua::Error::RuntimeError(message) | mlua::Error::SyntaxError { message, .. } => {
            message.split("\nstack traceback:").next().unwrap_or_default().trim_end().to_string()
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn widget(status: Value) -> Value {
        json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "apps"},
               "status": status})
    }

    /// Overrides with one script for `example.com/Widget`.
    fn overrides(source: &str, use_open_libs: bool) -> HealthOverrides {
        let mut o = HealthOverrides::default();
        o.insert("example.com/Widget", source, use_open_libs).unwrap();
        o
    }

    /// The verdict of `source` on a Widget with `status`.
    fn verdict(source: &str, status: Value) -> Health {
        overrides(source, false).assess(&widget(status)).unwrap()
    }

    const READY_CONDITION: &str = r#"
        hs = {}
        if obj.status ~= nil and obj.status.conditions ~= nil then
          for i, condition in ipairs(obj.status.conditions) do
            if condition.type == "Ready" and condition.status == "False" then
              hs.status = "Degraded"
              hs.message = condition.message
              return hs
            end
            if condition.type == "Ready" and condition.status == "True" then
              hs.status = "Healthy"
              hs.message = condition.message
              return hs
            end
          end
        end
        hs.status = "Progressing"
        hs.message = "Waiting for the widget"
        return hs
    "#;

    #[test]
    fn a_script_decides_healthy_degraded_and_progressing() {
        let ready = json!({"conditions": [{"type": "Ready", "status": "True", "message": "all good"}]});
        assert_eq!(verdict(READY_CONDITION, ready), Health::new(HealthStatus::Healthy, "all good"));
        let broken = json!({"conditions": [{"type": "Ready", "status": "False", "message": "no quota"}]});
        assert_eq!(verdict(READY_CONDITION, broken), Health::new(HealthStatus::Degraded, "no quota"));
        assert_eq!(
            verdict(READY_CONDITION, Value::Null),
            Health::new(HealthStatus::Progressing, "Waiting for the widget")
        );
        assert_eq!(
            verdict(r#"return {status = "Suspended"}"#, Value::Null),
            Health::new(HealthStatus::Suspended, "")
        );
    }

    #[test]
    fn a_script_error_is_unknown_with_the_error() {
        assert_eq!(
            verdict("return {status = obj.spec.replicas}", json!({})),
            Health::new(HealthStatus::Unknown, "health.lua:1: attempt to index field 'spec' (a nil value)")
        );
        assert_eq!(
            verdict(r#"error("widget controller is down")"#, json!({})),
            Health::new(HealthStatus::Unknown, "health.lua:1: widget controller is down")
        );
    }

    #[test]
    fn an_invalid_status_or_return_value_is_unknown() {
        assert_eq!(
            verdict(r#"return {status = "Fine"}"#, json!({})),
            Health::new(HealthStatus::Unknown, "Lua returned an invalid health status")
        );
        assert_eq!(
            verdict(r#"return {message = "no status"}"#, json!({})),
            Health::new(HealthStatus::Unknown, "Lua returned an invalid health status")
        );
        assert_eq!(
            verdict(r#"return "Healthy""#, json!({})),
            Health::new(HealthStatus::Unknown, "expect table output from Lua script, not string")
        );
        assert_eq!(
            verdict("local x = 1", json!({})),
            Health::new(HealthStatus::Unknown, "expect table output from Lua script, not nil")
        );
    }

    #[test]
    fn a_script_that_does_not_compile_is_reported_and_unknown() {
        let mut o = HealthOverrides::default();
        let err = o.insert("example.com/Widget", "return {status = ", false).unwrap_err();
        assert!(
            matches!(&err, HealthScriptError::Syntax { key, message } if key == "example.com/Widget" && message.starts_with("health.lua:1:")),
            "{err}"
        );
        let health = o.assess(&widget(json!({}))).unwrap();
        assert_eq!(health.status, HealthStatus::Unknown);
        assert!(health.message.starts_with("health.lua:1:"), "{}", health.message);
    }

    #[test]
    fn an_infinite_loop_is_stopped_at_the_time_limit() {
        for source in [
            "while true do end",
            "while true do pcall(function() while true do end end) end",
            "local co = coroutine.create(function() while true do end end) while true do coroutine.resume(co) end",
        ] {
            let started = Instant::now();
            let health = verdict(source, json!({}));
            assert_eq!(health, Health::new(HealthStatus::Unknown, TIME_LIMIT_MESSAGE), "{source}");
            assert!(started.elapsed() < TIME_LIMIT * 3, "{source} ran {:?}", started.elapsed());
        }
    }

    #[test]
    fn a_memory_bomb_is_stopped_at_the_memory_limit() {
        assert_eq!(
            verdict(r#"local s = "x" while true do s = s .. s end"#, json!({})),
            Health::new(HealthStatus::Unknown, MEMORY_LIMIT_MESSAGE)
        );
        let tables =
            verdict("local t = {} for i = 1, 1e9 do t[i] = {i} end return {status = 'Healthy'}", json!({}));
        assert_eq!(tables, Health::new(HealthStatus::Unknown, MEMORY_LIMIT_MESSAGE));
    }

    #[test]
    fn only_safe_libraries_are_open_by_default() {
        let probe = r#"
            local seen = {}
            for _, name in ipairs({"io", "require", "dofile", "loadfile", "load", "loadstring", "package", "debug"}) do
              if _G[name] ~= nil then table.insert(seen, name) end
            end
            if os.execute ~= nil or os.exit ~= nil or os.getenv ~= nil or os.remove ~= nil then table.insert(seen, "os") end
            local usable = string.format("%d", math.floor(os.time() / 1e12)) .. string.upper("x")
            return {status = "Healthy", message = table.concat(seen, ",") .. "|" .. usable}
        "#;
        assert_eq!(verdict(probe, json!({})), Health::new(HealthStatus::Healthy, "|0X"));
        assert_eq!(
            verdict(r#"os.execute("true") return {status = "Healthy"}"#, json!({})),
            Health::new(HealthStatus::Unknown, "health.lua:1: attempt to call field 'execute' (a nil value)")
        );
    }

    #[test]
    fn open_libraries_make_os_and_io_available() {
        let o = overrides(
            r#"return {status = "Healthy", message = type(os.execute) .. " " .. type(io.open) .. " " .. type(os.getenv)}"#,
            true,
        );
        assert_eq!(
            o.assess(&widget(json!({}))).unwrap(),
            Health::new(HealthStatus::Healthy, "function function function")
        );
    }

    #[test]
    fn json_values_arrive_as_lua_values() {
        let status = json!({"nothing": null, "items": ["a", "b", null, "d"], "nested": {"deep": {"n": 3, "on": true}},
            "big": 1.5, "empty": {}, "list": []});
        let probe = r#"
            local s = obj.status
            local parts = {
              tostring(s.nothing == nil),
              s.items[1] .. s.items[2] .. tostring(s.items[3]) .. s.items[4],
              tostring(s.nested.deep.n + 1) .. tostring(s.nested.deep.on),
              tostring(s.big * 2),
              type(s.empty) .. type(s.list) .. tostring(#s.list),
              obj.metadata.namespace .. "/" .. obj.metadata.name,
            }
            return {status = "Healthy", message = table.concat(parts, " ")}
        "#;
        assert_eq!(
            verdict(probe, status),
            Health::new(HealthStatus::Healthy, "true abnild 4true 3 tabletable0 apps/w")
        );
    }

    #[test]
    fn a_script_wins_over_the_built_in_check() {
        let mut o = HealthOverrides::default();
        o.insert("Pod", r#"return {status = "Healthy", message = "custom"}"#, false).unwrap();
        let failed = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "status": {"phase": "Failed"}});
        assert_eq!(o.assess(&failed), Some(Health::new(HealthStatus::Healthy, "custom")));
        let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
            "spec": {"paused": true}});
        assert_eq!(o.assess(&deployment).map(|h| h.status), Some(HealthStatus::Suspended));
    }

    #[test]
    fn ignore_healthcheck_and_deletion_come_before_the_script() {
        let o = overrides(r#"return {status = "Degraded"}"#, false);
        let mut ignored = widget(json!({}));
        ignored["metadata"]["annotations"] = json!({"argocd.argoproj.io/ignore-healthcheck": "true"});
        assert_eq!(o.assess(&ignored), None);
        let mut deleting = widget(json!({}));
        deleting["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        assert_eq!(o.assess(&deleting), Some(Health::new(HealthStatus::Progressing, "Pending deletion")));
    }

    #[test]
    fn wildcard_keys_match_groups_and_kinds_after_exact_keys() {
        let mut o = HealthOverrides::default();
        o.insert("*.example.com/*", r#"return {status = "Degraded", message = "wildcard"}"#, false).unwrap();
        o.insert("ec2.example.com/Instance", r#"return {status = "Healthy", message = "exact"}"#, false)
            .unwrap();
        let object = |api_version: &str, kind: &str| json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": "x"}});
        assert_eq!(
            o.assess(&object("s3.example.com/v1", "Bucket")),
            Some(Health::new(HealthStatus::Degraded, "wildcard"))
        );
        assert_eq!(
            o.assess(&object("ec2.example.com/v1", "Instance")),
            Some(Health::new(HealthStatus::Healthy, "exact"))
        );
        assert_eq!(o.assess(&object("example.org/v1", "Bucket")), None);
        assert_eq!(
            o.insert("[example.com/Widget", "return {}", false),
            Err(HealthScriptError::Pattern {
                key: "[example.com/Widget".into(),
                message: "unclosed character class; missing ']'".into()
            })
        );
    }

    #[test]
    fn scripts_do_not_share_state_between_runs() {
        let o = overrides(
            r#"counter = (counter or 0) + 1 return {status = "Healthy", message = tostring(counter)}"#,
            false,
        );
        for _ in 0..2 {
            assert_eq!(o.assess(&widget(json!({}))), Some(Health::new(HealthStatus::Healthy, "1")));
        }
    }
}
