//! One run of one script: a fresh LuaJIT interpreter with the JIT compiler off, the libraries the script may
//! use, and the limits. LuaJIT gives Lua 5.1 (numbers print as 5.1 prints them) plus `goto`, as gopher-lua
//! does. The limits hold against a hostile script: the allocator refuses memory past [`MEMORY_LIMIT`] (one
//! `string.rep` of a gigabyte included), an instruction-count hook stops it at [`TIME_LIMIT`], and nesting
//! through the library functions that call back into Lua is bounded before it can overflow berth's stack.
//! The hook only fires in the interpreter, never inside machine code the JIT compiler made, so the compiler
//! stays off and out of the script's reach. Not bounded: one Lua pattern match runs in C, outside the hook,
//! so a pattern that backtracks badly over a long string takes as long as it takes, as in Argo CD.

use super::answer;
use crate::health::{Health, HealthStatus};
use mlua::{HookTriggers, Lua, LuaOptions, StdLib, VmState};
use std::time::{Duration, Instant};

/// How long one script may run.
pub const TIME_LIMIT: Duration = Duration::from_secs(1);
/// How much memory one script's interpreter may hold, the object included.
pub const MEMORY_LIMIT: usize = 64 << 20;

pub(super) const TIME_LIMIT_MESSAGE: &str = "health check exceeded its time limit of 1s";
pub(super) const MEMORY_LIMIT_MESSAGE: &str = "health check exceeded its memory limit of 64 MiB";
/// LuaJIT's message for an allocation the memory limit refused.
const OUT_OF_MEMORY: &str = "not enough memory";
/// Errors show as `health.lua:<line>: <error>`.
const CHUNK_NAME: &str = "=health.lua";
/// Instructions between two looks at the clock.
const INSTRUCTIONS_PER_CHECK: u32 = 1000;

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

/// Gone for every script: a `newproxy` finalizer runs with hooks off, so it could loop past the time limit.
/// gopher-lua never runs finalizers, so no script written for Argo CD relies on one.
const UNBOUNDED_BASE: &[&str] = &["newproxy"];

/// What opening `jit` offers to `require` besides itself.
const JIT_SUBMODULES: &[&str] = &["jit.util", "jit.opt", "jit.profile"];

/// How deep a script may nest the library functions that call back into Lua from C (`string.gsub`,
/// `string.format`, `table.sort`, coroutines). LuaJIT puts no bound of its own on that C recursion, and
/// `string.gsub` alone keeps 8 KiB of C stack a level: 64 levels stay far inside a 2 MiB thread stack.
const DEEPEST_C_CALLS: u32 = 64;

/// Makes `pcall`, `xpcall` and `coroutine.resume` re-raise the time-limit error, so a script cannot catch it
/// and run on, runs `xpcall`'s handler outside the hook, and bounds the nesting of the functions that call
/// back into Lua from C. Those run under `pcall`, so an error of their own would name neither the function
/// nor the script's line: the guard puts both back.
const LIMIT_GUARD: &str = r#"
local expired, message, raw_pcall, raise, deepest = ...
local find, sub, type = string.find, string.sub, type
local function pass(...)
  if expired() then raise(message, 0) end
  return ...
end
local depth = 0
local function leave(name, catches, ok, ...)
  depth = depth - 1
  if ok then
    -- `resume` answers the coroutine's errors, the time limit's included.
    if catches and expired() then raise(message, 0) end
    return ...
  end
  if expired() then raise(message, 0) end
  local e = ...
  -- Raised by a Lua function it called, or by the memory limit: as it is.
  if type(e) ~= "string" or e == "not enough memory" or find(e, "^[^%s:]+:%d+: ") then raise(e, 0) end
  if find(e, "^bad argument #%d+ to '%?'") then
    local quote = find(e, "'?'", 1, true)
    e = sub(e, 1, quote) .. name .. sub(e, quote + 2)
  end
  -- Level 2: the script's line that called the bounded function, whose frame this tail call replaced.
  raise(e, 2)
end
local function bounded(f, name, catches)
  return function(...)
    if depth >= deepest then raise("C stack overflow", 2) end
    depth = depth + 1
    return leave(name, catches, raw_pcall(f, ...))
  end
end
pcall = function(...) return pass(raw_pcall(...)) end
local function handle(handler, ok, ...)
  if ok then return true, ... end
  if expired() then raise(message, 0) end
  local handled, result = raw_pcall(handler, (...))
  if expired() then raise(message, 0) end
  if not handled then return false, "error in error handling" end
  return false, result
end
-- The handler runs once the error has unwound: run where the error is raised, it could run inside the
-- time-limit hook, where LuaJIT turns hooks off, and loop for ever.
xpcall = function(f, handler, ...) return handle(handler, raw_pcall(f, ...)) end
string.gsub = bounded(string.gsub, "gsub")
string.format = bounded(string.format, "format")
table.sort = bounded(table.sort, "sort")
coroutine.resume = bounded(coroutine.resume, "resume", true)
local wrap = coroutine.wrap
coroutine.wrap = function(f) return bounded(wrap(f), "wrap") end
"#;

/// Checks that a script compiles; the message says where it does not.
pub(super) fn compile(source: &str) -> Result<(), String> {
    let lua = Lua::new_with(StdLib::NONE, LuaOptions::new()).map_err(|e| describe(&e))?;
    lua.load(source).set_name(CHUNK_NAME).into_function().map(drop).map_err(|e| describe(&e))
}

/// Runs one script on `obj`: its health, none when it answers nothing, or Unknown with the reason it has
/// none.
pub(super) fn run(source: &str, obj: &serde_json::Value, use_open_libs: bool) -> Option<Health> {
    match evaluate(source, obj, use_open_libs) {
        Ok(Ok(health)) => health,
        Ok(Err(message)) => Some(Health::new(HealthStatus::Unknown, message)),
        Err(e) => Some(Health::new(HealthStatus::Unknown, describe(&e))),
    }
}

/// The script's answer as [`answer::read`] gives it, or the Lua error that stopped it.
fn evaluate(
    source: &str,
    obj: &serde_json::Value,
    use_open_libs: bool,
) -> mlua::Result<Result<Option<Health>, String>> {
    let lua = sandbox(use_open_libs)?;
    // Refused only by an interpreter without berth's allocator, which would have no memory limit at all.
    lua.set_memory_limit(MEMORY_LIMIT)?;
    let globals = lua.globals();
    globals.raw_set("obj", to_lua(&lua, obj)?)?;

    let deadline = Instant::now() + TIME_LIMIT;
    let expired = lua.create_function(move |_, ()| Ok(Instant::now() >= deadline))?;
    let guard_args = (
        expired,
        TIME_LIMIT_MESSAGE,
        globals.raw_get::<mlua::Value>("pcall")?,
        globals.raw_get::<mlua::Value>("error")?,
        DEEPEST_C_CALLS,
    );
    lua.load(LIMIT_GUARD).set_name("=limits").call::<()>(guard_args)?;
    // Global: LuaJIT counts instructions for every coroutine with one hook.
    lua.set_global_hook(HookTriggers::new().every_nth_instruction(INSTRUCTIONS_PER_CHECK), move |_, _| {
        if Instant::now() >= deadline {
            Err(mlua::Error::runtime(TIME_LIMIT_MESSAGE))
        } else {
            Ok(VmState::Continue)
        }
    })?;

    let shape_of: mlua::Function = lua.load(answer::SHAPE).set_name("=answer").call(())?;
    let returned = lua.load(source).set_name(CHUNK_NAME).call::<mlua::MultiValue>(())?;
    answer::read(returned, &shape_of)
}

/// A fresh interpreter with the libraries a script may use and the JIT compiler off.
fn sandbox(use_open_libs: bool) -> mlua::Result<Lua> {
    // The base library, `coroutine` included, comes with every interpreter. LuaJIT's own `jit` and `bit` are
    // not Lua 5.1's and gopher-lua has neither; `jit` is opened only to be switched off.
    let libs = if use_open_libs {
        StdLib::TABLE | StdLib::IO | StdLib::OS | StdLib::STRING | StdLib::MATH | StdLib::PACKAGE
    } else {
        StdLib::STRING | StdLib::TABLE | StdLib::MATH | StdLib::OS
    };
    let lua = Lua::new_with(libs | StdLib::JIT, LuaOptions::new())?;
    let globals = lua.globals();
    let jit: mlua::Table = globals.raw_get("jit")?;
    jit.raw_get::<mlua::Function>("off")?.call::<()>(())?;
    globals.raw_set("jit", mlua::Nil)?;
    if let Some(package) = globals.raw_get::<Option<mlua::Table>>("package")? {
        package.raw_get::<mlua::Table>("loaded")?.raw_set("jit", mlua::Nil)?;
        // `jit` also offers its submodules to `require`.
        let preload: mlua::Table = package.raw_get("preload")?;
        for name in JIT_SUBMODULES {
            preload.raw_set(*name, mlua::Nil)?;
        }
    }
    for name in UNBOUNDED_BASE {
        globals.raw_set(*name, mlua::Nil)?;
    }
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
    // Tables and userdata print as their type: a `__tostring` would run Lua again from inside this function.
    let print = lua.create_function(|_, args: mlua::Variadic<mlua::Value>| {
        let line: Vec<String> = args
            .iter()
            .map(|v| match v {
                mlua::Value::Table(_) | mlua::Value::UserData(_) => v.type_name().to_string(),
                _ => v.to_string().unwrap_or_else(|_| v.type_name().into()),
            })
            .collect();
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
        // The memory error, caught and raised again by the guard of a nested call.
        mlua::Error::RuntimeError(message) if message == OUT_OF_MEMORY => MEMORY_LIMIT_MESSAGE.to_string(),
        mlua::Error::RuntimeError(message) | mlua::Error::SyntaxError { message, .. } => {
            message.split("\nstack traceback:").next().unwrap_or_default().trim_end().to_string()
        }
        other => other.to_string(),
    }
}
