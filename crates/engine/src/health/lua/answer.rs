//! A script's answer, read as Argo CD reads it: the last value the script returned, encoded to JSON the way
//! gopher-json encodes Lua values, then decoded into a status and a message by Go's rules. An answer with
//! nothing in it gives no health: `nil` or no value at all, an empty table or a list (both encode as a JSON
//! array), and a status or message that is not a string (Go's decoder refuses it, and Argo CD answers an
//! empty health for any such refusal). A table JSON cannot hold is an error with gopher-json's words.

use crate::health::{Health, HealthStatus};
use mlua::{Function, Table, Value};

const INVALID_STATUS_MESSAGE: &str = "Lua returned an invalid health status";

/// Returns a function that tells what gopher-json makes of a table: `"object"` (string keys only) or
/// `"list"` (the keys 1 to n, or none), or `nil` and gopher-json's error when it cannot encode it (a table
/// twice, mixed or other keys, a sparse list, NaN, infinities, functions, userdata, threads). Go wraps an
/// error from a nested `MarshalJSON` once for every level between it and the answer. It runs in the
/// sandbox, under the script's limits, and walks without recursion: the answer may be as large and as deep
/// as the memory limit lets it be, and berth holds no reference into it.
pub(super) const SHAPE: &str = r#"
local next, type, rep, huge = next, type, string.rep, math.huge
local marshal = "json: error calling MarshalJSON for type json.jsonValue: "
local function fail(depth, message) return nil, rep(marshal, depth + 1) .. message end
return function(root)
  local seen, tables, depths, pending, shape = {}, {root}, {0}, 1, nil
  while pending > 0 do
    local t, depth = tables[pending], depths[pending]
    tables[pending], depths[pending], pending = nil, nil, pending - 1
    if seen[t] then return fail(depth, "cannot encode recursively nested tables to JSON") end
    seen[t] = true
    local strings, numbers, highest, whole = 0, 0, 0, true
    for k, v in next, t do
      local kind = type(k)
      if kind == "string" then
        strings = strings + 1
      elseif kind == "number" then
        numbers = numbers + 1
        if k < 1 or k % 1 ~= 0 then whole = false elseif k > highest then highest = k end
      else
        return fail(depth, "cannot encode mixed or invalid key types")
      end
      kind = type(v)
      if kind == "table" then
        pending = pending + 1
        tables[pending], depths[pending] = v, depth + 1
      elseif kind == "number" then
        if v ~= v then return fail(depth + 1, "json: unsupported value: NaN") end
        if v == huge then return fail(depth + 1, "json: unsupported value: +Inf") end
        if v == -huge then return fail(depth + 1, "json: unsupported value: -Inf") end
      elseif kind ~= "string" and kind ~= "boolean" then
        return fail(depth + 1, "cannot encode " .. kind .. " to JSON")
      end
    end
    if strings > 0 and numbers > 0 then return fail(depth, "cannot encode mixed or invalid key types") end
    if numbers > 0 and not (whole and highest == numbers) then
      return fail(depth, "cannot encode sparse array")
    end
    shape = shape or (strings > 0 and "object" or "list")
  end
  return shape
end
"#;

/// The health a script's returned values give: none for an empty answer, or the message of an answer that
/// is not a health at all; `shape_of` is the function [`SHAPE`] returns. A Lua error is the limits' doing.
pub(super) fn read(
    returned: mlua::MultiValue,
    shape_of: &Function,
) -> mlua::Result<Result<Option<Health>, String>> {
    // gopher-lua leaves every returned value on the stack and Argo CD reads the top one.
    let table = match returned.into_iter().last() {
        None | Some(Value::Nil) => return Ok(Ok(None)),
        Some(Value::Table(table)) => table,
        Some(other) => {
            return Ok(Err(format!("expect table output from Lua script, not {}", go_type_name(&other))));
        }
    };
    let (shape, error): (Option<String>, Option<String>) = shape_of.call(&table)?;
    if let Some(error) = error {
        return Ok(Err(error));
    }
    if shape.as_deref() != Some("object") {
        return Ok(Ok(None));
    }
    let (status, message) = match (field(&table, "status")?, field(&table, "message")?) {
        (Field::Mistyped, _) | (_, Field::Mistyped) => return Ok(Ok(None)),
        (status, message) => (status.text(), message.text()),
    };
    Ok(Ok(Some(match HealthStatus::parse(&status) {
        Some(status) => Health::new(status, message),
        None => Health::new(HealthStatus::Unknown, INVALID_STATUS_MESSAGE),
    })))
}

/// A field of the decoded health.
enum Field {
    Absent,
    Text(String),
    /// Present, but not a string: Go's decoder refuses the whole answer.
    Mistyped,
}

impl Field {
    fn text(self) -> String {
        match self {
            Field::Text(text) => text,
            Field::Absent | Field::Mistyped => String::new(),
        }
    }
}

/// The field `name` as Go decodes it: any key equal to it but for ASCII case counts, in byte order, so the
/// last of them wins; one that is not a string spoils the answer.
fn field(table: &Table, name: &str) -> mlua::Result<Field> {
    let mut found: Option<(Vec<u8>, String)> = None;
    for pair in table.pairs::<Value, Value>() {
        let (key, value) = pair?;
        let Value::String(key) = key else { continue };
        let key = key.as_bytes().to_vec();
        if !key.eq_ignore_ascii_case(name.as_bytes()) {
            continue;
        }
        let Value::String(text) = value else { return Ok(Field::Mistyped) };
        if found.as_ref().is_none_or(|(last, _)| key > *last) {
            found = Some((key, text.to_string_lossy()));
        }
    }
    Ok(found.map_or(Field::Absent, |(_, text)| Field::Text(text)))
}

/// A value's type as gopher-lua names it.
fn go_type_name(value: &Value) -> &'static str {
    match value {
        Value::Nil => "nil",
        Value::Boolean(_) => "boolean",
        Value::Integer(_) | Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Table(_) => "table",
        Value::Function(_) => "function",
        Value::Thread(_) => "thread",
        _ => "userdata",
    }
}
