//! Custom actions in Lua, run in the health checks' sandbox (`crate::health::lua`: LuaJIT with `goto`, a
//! fresh interpreter a run, the safe libraries only, 1 s and 64 MiB), with Argo CD's globals: `obj`, the
//! live object, and for an action `actionParams`, its parameters by name. `require("os")` answers the
//! clock-only `os`, as Argo CD's safe `os` module; actions never get the open libraries.
//!
//! A script's answer is read as Argo CD reads it, through JSON as gopher-json encodes Lua values (an empty
//! table is `[]`, a table with keys 1 to n a list, string keys a map; anything else an error). Discovery
//! answers a map from action name to `{disabled, params, iconClass, displayName}` (a list, such as
//! `{paused}`, is an enabled action with none of them; `{}` is no action at all). An action answers the
//! object (a patch) or a list of `{operation = "patch" | "create", resource = ...}`.
//!
//! The sandbox answers health, not values, so a run wraps the script: it runs as a function, and the
//! wrapper encodes its answer to JSON in the message of a `Healthy` verdict (any failure is an `Unknown`
//! one, with the error). `evaluate` is the only place that knows it.

use super::{ActionParam, Impact, ResourceAction};
use crate::health::{HealthOverrides, HealthStatus};
use serde_json::{Map, Value};

/// The override key the wrapped script is run under, and the input's apiVersion and kind that select it.
const WRAPPER_KEY: &str = "actions.berth.dev/Script";
const WRAPPER_API_VERSION: &str = "actions.berth.dev/v1";
const WRAPPER_KIND: &str = "Script";
/// How the sandbox names the chunk in errors, and how an action's errors name it.
const SANDBOX_CHUNK: &str = "health.lua:";
const SANDBOX_SUBJECT: &str = "health check";

/// Runs on line 1, before the script (so the script's line numbers stay its own): takes the globals out of
/// the input, keeps the functions the encoder needs before the script can change them, and gives
/// `require` its one answer.
const PRELUDE: &str = "local __berth_input = obj obj = __berth_input.obj actionParams = __berth_input.actionParams \
    local __berth_type, __berth_pairs, __berth_error, __berth_format, __berth_gsub, __berth_byte, __berth_sort, \
    __berth_concat, __berth_floor, __berth_huge, __berth_tostring = type, pairs, error, string.format, string.gsub, \
    string.byte, table.sort, table.concat, math.floor, math.huge, tostring \
    if require == nil then require = function(name) if name == 'os' then return os end \
    __berth_error(\"module '\" .. __berth_tostring(name) .. \"' not found\", 2) end end \
    local __berth_answer = (function(...) ";

/// Closes the script's function, then encodes its answer as gopher-json does: a table that holds itself (or
/// any table twice), mixed or non-integer keys, a sparse list, NaN, infinities, functions and userdata are
/// errors.
const EPILOGUE: &str = r#"
end)()
local __berth_seen = {}
local function __berth_quote(s)
  return '"' .. __berth_gsub(s, '[%c"\\]', function(c)
    if c == '"' then return '\\"' elseif c == '\\' then return '\\\\' end
    return __berth_format('\\u%04x', __berth_byte(c))
  end) .. '"'
end
local function __berth_encode(v)
  local t = __berth_type(v)
  if t == 'nil' then return 'null' end
  if t == 'boolean' then return v and 'true' or 'false' end
  if t == 'string' then return __berth_quote(v) end
  if t == 'number' then
    if v ~= v then __berth_error('json: unsupported value: NaN', 0) end
    if v == __berth_huge or v == -__berth_huge then __berth_error('json: unsupported value: Inf', 0) end
    if __berth_floor(v) == v and v >= -2^53 and v <= 2^53 then return __berth_format('%.0f', v) end
    return __berth_format('%.17g', v)
  end
  if t ~= 'table' then __berth_error('cannot encode ' .. t .. ' to JSON', 0) end
  if __berth_seen[v] then __berth_error('cannot encode recursively nested tables to JSON', 0) end
  __berth_seen[v] = true
  local keys, strings, numbers, highest = {}, 0, 0, 0
  for k in __berth_pairs(v) do
    local kt = __berth_type(k)
    if kt == 'string' then
      strings = strings + 1
      keys[strings] = k
    elseif kt == 'number' and k >= 1 and __berth_floor(k) == k then
      numbers = numbers + 1
      if k > highest then highest = k end
    else
      __berth_error('cannot encode mixed or invalid key types', 0)
    end
  end
  if strings > 0 and numbers > 0 then __berth_error('cannot encode mixed or invalid key types', 0) end
  local parts = {}
  if strings > 0 then
    __berth_sort(keys)
    for i = 1, strings do parts[i] = __berth_quote(keys[i]) .. ':' .. __berth_encode(v[keys[i]]) end
    return '{' .. __berth_concat(parts, ',') .. '}'
  end
  if highest ~= numbers then __berth_error('cannot encode sparse array', 0) end
  for i = 1, numbers do parts[i] = __berth_encode(v[i]) end
  return '[' .. __berth_concat(parts, ',') .. ']'
end
return {status = 'Healthy', message = __berth_encode(__berth_answer)}
"#;

/// Whether `script` compiles; the message says where it does not, in the chunk called `chunk`.
pub(super) fn check_syntax(script: &str, chunk: &str) -> Result<(), String> {
    let mut overrides = HealthOverrides::default();
    overrides.insert(WRAPPER_KEY, &wrapped(script), false).map_err(|e| match e {
        crate::health::HealthScriptError::Syntax { message, .. } => named(&message, chunk),
        other => other.to_string(),
    })
}

/// The actions `discovery` answers for `live`.
pub(super) fn discover(discovery: &str, live: &Value) -> Result<Vec<ResourceAction>, String> {
    let answer = evaluate(discovery, live, None).map_err(|e| named(&e, "discovery.lua"))?;
    let actions = match answer {
        Value::Array(items) if items.is_empty() => return Ok(Vec::new()),
        Value::Object(actions) => actions,
        other => return Err(not_a_table(&other, "a map of actions")),
    };
    actions
        .into_iter()
        .map(|(name, value)| match value {
            // `{paused}`: a list says nothing of the action, so it is enabled.
            Value::Array(_) => Ok(ResourceAction { name, ..Default::default() }),
            Value::Object(mut fields) => {
                // The name is the key's, whatever the table says.
                fields.remove("name");
                let disabled = match fields.remove("disabled") {
                    None | Some(Value::Null) => false,
                    Some(Value::Bool(disabled)) => disabled,
                    Some(other) => {
                        return Err(format!(
                            "action {name:?}: disabled is a {}, not a boolean",
                            lua_type(&other)
                        ));
                    }
                };
                let described: ResourceAction = serde_json::from_value(Value::Object(fields))
                    .map_err(|e| format!("action {name:?}: {e}"))?;
                Ok(ResourceAction { name, disabled, ..described })
            }
            other => Err(format!("action {name:?}: expected a table, not {}", lua_type(&other))),
        })
        .collect()
}

/// What `action` answers for `live` with `params`: the changes, unchecked.
pub(super) fn run(action: &str, live: &Value, params: &[ActionParam]) -> Result<Vec<Impact>, String> {
    let by_name: Map<String, Value> =
        params.iter().map(|p| (p.name.clone(), p.value.clone().into())).collect();
    let answer = evaluate(action, live, Some(by_name)).map_err(|e| named(&e, "action.lua"))?;
    match answer {
        Value::Object(_) => {
            let mut object = answer;
            super::restore_empty_maps(&mut object, live);
            Ok(vec![Impact::Patch(object)])
        }
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, item)| {
                let operation = item["operation"].as_str().unwrap_or_default().to_string();
                let mut resource = match item.get("resource") {
                    Some(r @ Value::Object(_)) => r.clone(),
                    _ => return Err(format!("item {}: resource is not an object", i + 1)),
                };
                match operation.as_str() {
                    "patch" => {
                        super::restore_empty_maps(&mut resource, live);
                        Ok(Impact::Patch(resource))
                    }
                    "create" => Ok(Impact::Create(resource)),
                    other => Err(format!("item {}: unsupported operation {other:?}", i + 1)),
                }
            })
            .collect(),
        other => Err(not_a_table(&other, "the object or a list of operations")),
    }
}

/// Runs `script` with `obj` = `live` (and `actionParams` = `params`) in the sandbox: its answer as JSON, or
/// the error that stopped it.
fn evaluate(script: &str, live: &Value, params: Option<Map<String, Value>>) -> Result<Value, String> {
    let mut overrides = HealthOverrides::default();
    // A script that does not compile is kept: the run below reports it.
    let _ = overrides.insert(WRAPPER_KEY, &wrapped(script), false);
    let mut input = serde_json::json!({"apiVersion": WRAPPER_API_VERSION, "kind": WRAPPER_KIND, "obj": live});
    if let Some(params) = params {
        input["actionParams"] = Value::Object(params);
    }
    let verdict = overrides.assess(&input).ok_or("the script answered nothing")?;
    if verdict.status != HealthStatus::Healthy {
        return Err(verdict.message);
    }
    serde_json::from_str(&verdict.message).map_err(|e| format!("the answer is not valid JSON: {e}"))
}

fn wrapped(script: &str) -> String {
    format!("{PRELUDE}{script}{EPILOGUE}")
}

/// The sandbox's message with the chunk called `chunk` and the limits said of a script, not a health check.
fn named(message: &str, chunk: &str) -> String {
    message.replacen(SANDBOX_CHUNK, &format!("{chunk}:"), 1).replacen(SANDBOX_SUBJECT, "script", 1)
}

fn not_a_table(answer: &Value, expected: &str) -> String {
    format!("expected {expected} from the Lua script, not {}", lua_type(answer))
}

/// The Lua type a JSON answer came from.
fn lua_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "nil",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) | Value::Object(_) => "table",
    }
}
