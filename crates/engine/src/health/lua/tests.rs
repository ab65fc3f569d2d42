use super::sandbox::{MEMORY_LIMIT_MESSAGE, TIME_LIMIT_MESSAGE};
use super::*;
use crate::health::HealthStatus;
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

/// The answer of `source` on a Widget with `status`: `None` when it gives no health.
fn answer(source: &str, status: Value) -> Option<Health> {
    overrides(source, false).assess(&widget(status))
}

/// The verdict of `source` on a Widget with `status`, for scripts that give one.
fn verdict(source: &str, status: Value) -> Health {
    answer(source, status).unwrap_or_else(|| panic!("no health from {source}"))
}

fn unknown(message: &str) -> Health {
    Health::new(HealthStatus::Unknown, message)
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

/// The shape of the checks Argo CD ships for Gateway API, Strimzi and Knative kinds: skip the conditions
/// that do not decide with `goto continue`.
const GOTO_CONTINUE: &str = r#"
    local hs = {status = "Progressing", message = "Waiting for conditions"}
    if obj.status == nil or obj.status.conditions == nil then return hs end
    local seen = 0
    for _, condition in ipairs(obj.status.conditions) do
      if condition.type ~= "Accepted" and condition.type ~= "Programmed" then
        goto continue
      end
      if condition.status ~= "True" then
        return {status = "Degraded", message = condition.type .. ": " .. (condition.message or "")}
      end
      seen = seen + 1
      ::continue::
    end
    if seen == 2 then
      hs.status = "Healthy"
      hs.message = "Accepted and programmed"
    end
    return hs
"#;

#[test]
fn a_script_may_skip_conditions_with_goto_continue() {
    let conditions = |accepted: &str| {
        json!({"conditions": [
            {"type": "ResolvedRefs", "status": "False", "message": "not one that decides"},
            {"type": "Accepted", "status": accepted, "message": "no listener"},
            {"type": "Programmed", "status": "True"},
        ]})
    };
    assert_eq!(
        verdict(GOTO_CONTINUE, conditions("True")),
        Health::new(HealthStatus::Healthy, "Accepted and programmed")
    );
    assert_eq!(
        verdict(GOTO_CONTINUE, conditions("False")),
        Health::new(HealthStatus::Degraded, "Accepted: no listener")
    );
    assert_eq!(
        verdict(GOTO_CONTINUE, Value::Null),
        Health::new(HealthStatus::Progressing, "Waiting for conditions")
    );
    let nested = r#"
        local found = {}
        for i = 1, 3 do
          for j = 1, 3 do
            if j == i then goto next_j end
            if j > 2 then goto next_i end
            table.insert(found, i .. j)
            ::next_j::
          end
          ::next_i::
        end
        return {status = "Healthy", message = table.concat(found, ",")}
    "#;
    assert_eq!(verdict(nested, Value::Null), Health::new(HealthStatus::Healthy, "12,21,31,32"));
}

#[test]
fn numbers_and_the_libraries_behave_as_in_lua_5_1() {
    let probe = r#"
        local parts = {
          tostring(3), tostring(10 / 4), "Replicas: " .. obj.spec.replicas, tostring(7 % 3), tostring(-7 % 3),
          string.format("%d/%s", obj.spec.replicas, 2^53), tostring(1e15), tostring(0.1), _VERSION,
          tostring(unpack({"unpack"})), tostring(table.getn({1, 2})), tostring(math.pow(2, 10)),
          type(setmetatable), type(string.gmatch), tostring(#"abc"),
        }
        return {status = "Healthy", message = table.concat(parts, " ")}
    "#;
    let mut o = HealthOverrides::default();
    o.insert("example.com/Widget", probe, false).unwrap();
    let widget = json!({"apiVersion": "example.com/v1", "kind": "Widget", "spec": {"replicas": 3}});
    assert_eq!(
        o.assess(&widget),
        Some(Health::new(
            HealthStatus::Healthy,
            "3 2.5 Replicas: 3 1 2 3/9.007199254741e+15 1e+15 0.1 Lua 5.1 unpack 2 1024 function function 3"
        ))
    );
}

#[test]
fn a_script_error_is_unknown_with_the_error() {
    assert_eq!(
        verdict("return {status = obj.spec.replicas}", json!({})),
        unknown("health.lua:1: attempt to index field 'spec' (a nil value)")
    );
    assert_eq!(
        verdict(r#"error("widget controller is down")"#, json!({})),
        unknown("health.lua:1: widget controller is down")
    );
}

#[test]
fn an_invalid_status_or_return_value_is_unknown() {
    assert_eq!(
        verdict(r#"return {status = "Fine"}"#, json!({})),
        unknown("Lua returned an invalid health status")
    );
    assert_eq!(
        verdict(r#"return {status = "healthy"}"#, json!({})),
        unknown("Lua returned an invalid health status")
    );
    assert_eq!(
        verdict(r#"return {message = "no status"}"#, json!({})),
        unknown("Lua returned an invalid health status")
    );
    assert_eq!(
        verdict(r#"return "Healthy""#, json!({})),
        unknown("expect table output from Lua script, not string")
    );
    assert_eq!(verdict("return 1", json!({})), unknown("expect table output from Lua script, not number"));
}

#[test]
fn an_empty_answer_gives_no_health_and_no_built_in_check() {
    for source in [
        "return {}",
        "hs = {} return hs",
        "return nil",
        "local x = 1",
        r#"return {status = "Healthy"}, nil"#,
        r#"return {"Healthy", "fine"}"#,
        // Go refuses a status or message that is not a string, and Argo CD then answers an empty health.
        "return {status = 5}",
        r#"return {status = "Degraded", message = 3}"#,
        r#"return {status = "Degraded", message = {}}"#,
    ] {
        assert_eq!(answer(source, json!({})), None, "{source}");
    }
    let mut o = HealthOverrides::default();
    o.insert("Pod", "return {}", false).unwrap();
    let failed =
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "status": {"phase": "Failed"}});
    assert_eq!(o.assess(&failed), None);
}

#[test]
fn the_answer_is_read_as_argo_cd_reads_its_json() {
    assert_eq!(
        verdict(r#"return "ignored", {status = "Healthy"}"#, json!({})),
        Health::new(HealthStatus::Healthy, "")
    );
    assert_eq!(
        verdict(
            r#"return {Status = "Degraded", MESSAGE = "any case", extra = {1, 2, {deep = true}}}"#,
            json!({})
        ),
        Health::new(HealthStatus::Degraded, "any case")
    );
    assert_eq!(
        verdict(r#"return {Status = "Degraded", status = "Healthy"}"#, json!({})),
        Health::new(HealthStatus::Healthy, "")
    );
    let wrapped = |levels: usize, error: &str| {
        unknown(&format!(
            "{}{error}",
            "json: error calling MarshalJSON for type json.jsonValue: ".repeat(levels)
        ))
    };
    assert_eq!(
        verdict(r#"return {status = "Healthy", check = function() end}"#, json!({})),
        wrapped(2, "cannot encode function to JSON")
    );
    assert_eq!(
        verdict(r#"return {status = "Healthy", ratio = 0/0}"#, json!({})),
        wrapped(2, "json: unsupported value: NaN")
    );
    assert_eq!(
        verdict(r#"return {status = "Healthy", list = {[1] = "a", [3] = "c"}}"#, json!({})),
        wrapped(2, "cannot encode sparse array")
    );
    assert_eq!(
        verdict(r#"return {status = "Healthy", [1] = "a"}"#, json!({})),
        wrapped(1, "cannot encode mixed or invalid key types")
    );
    assert_eq!(
        verdict(r#"local t = {} return {status = "Healthy", a = t, b = t}"#, json!({})),
        wrapped(2, "cannot encode recursively nested tables to JSON")
    );
    let deep = r#"
        local root = {status = "Healthy"}
        local t = root
        for i = 1, 100000 do t.next = {} t = t.next end
        return root
    "#;
    assert_eq!(verdict(deep, json!({})), Health::new(HealthStatus::Healthy, ""));
    let wide = r#"
        local list = {}
        for i = 1, 100000 do list[i] = {i} end
        return {status = "Healthy", list = list}
    "#;
    assert_eq!(verdict(wide, json!({})), Health::new(HealthStatus::Healthy, ""));
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
    for (source, use_open_libs) in [
        ("while true do end", false),
        ("for i = 1, 1e300 do end", false),
        ("local n = 0 repeat n = n + 1 until false", false),
        ("::top:: goto top", false),
        ("while true do pcall(function() while true do end end) end", false),
        (
            "while true do xpcall(function() while true do end end, function() while true do end end) end",
            false,
        ),
        (
            "local co = coroutine.create(function() while true do end end) while true do coroutine.resume(co) end",
            false,
        ),
        (
            "local loop = coroutine.wrap(function() while true do end end) while true do pcall(loop) end",
            false,
        ),
        // The compiler stays off even for a script that may load modules.
        ("pcall(require, 'jit') while true do end", true),
    ] {
        let o = overrides(source, use_open_libs);
        assert_eq!(
            within_three_limits(move || o.assess(&widget(json!({})))),
            Some(unknown(TIME_LIMIT_MESSAGE)),
            "{source}"
        );
    }
}

/// What `run` returns, failing the test when it takes longer than three time limits (an escaped script
/// would run for ever, so it runs on a thread the test leaves behind).
fn within_three_limits<T: Send + 'static>(run: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, result) = std::sync::mpsc::channel();
    std::thread::spawn(move || done.send(run()));
    result.recv_timeout(TIME_LIMIT * 3).expect("the script ran past three time limits")
}

#[test]
fn a_memory_bomb_is_stopped_at_the_memory_limit() {
    for source in [
        r#"local s = "x" while true do s = s .. s end"#,
        r#"return {status = "Healthy", message = string.rep("x", 1e9)}"#,
        r#"return {status = "Healthy", message = string.rep("xy", 3e7, ",")}"#,
        "local t = {} for i = 1, 1e9 do t[i] = {i} end return {status = 'Healthy'}",
        "local t = {} for i = 1, 1e9 do t[string.rep('k', 1e4) .. i] = true end return {status = 'Healthy'}",
        r#"local t = {} for i = 1, 1e6 do t[i] = string.rep("x", 100) end return {message = table.concat(t)}"#,
    ] {
        assert_eq!(
            within_three_limits(move || verdict(source, json!({}))),
            unknown(MEMORY_LIMIT_MESSAGE),
            "{source}"
        );
    }
    // A script that catches the memory error and tries again still meets the time limit.
    let retrying = r#"while true do pcall(string.rep, "x", 1e9) end"#;
    assert_eq!(verdict(retrying, json!({})), unknown(TIME_LIMIT_MESSAGE));
}

#[test]
fn deep_recursion_is_an_error_not_a_crash() {
    for source in [
        // Lua's own stack.
        "local function f(n) return f(n + 1) + 1 end return f(1)",
        r#"local t = setmetatable({}, {__tostring = function(t) return "x" .. tostring(t) end}) return tostring(t)"#,
        "local t = setmetatable({}, {__index = function(t, k) return t[k] .. 'x' end}) return t.x",
        // Functions that call back into Lua from C.
        r#"local function f(s) return (string.gsub(s, ".", f)) end return f("x")"#,
        r#"local function f(s) return (("x"):gsub(".", {}) and s:gsub(".", f)) end return f("x")"#,
        r#"local t = setmetatable({}, {__tostring = function(t) return string.format("%s", t) end}) return string.format("%s", t)"#,
        r#"local t = {1, 2} local function f(a, b) table.sort(t, f) return a < b end table.sort(t, f)"#,
        r#"local function f() local ok, e = coroutine.resume(coroutine.create(f)) if not ok then error(e, 0) end end f()"#,
        r#"local function f() return coroutine.wrap(f)() end f()"#,
    ] {
        let overflow = verdict(source, json!({}));
        assert_eq!(overflow.status, HealthStatus::Unknown, "{source}");
        assert!(overflow.message.contains("stack overflow"), "{source}: {}", overflow.message);
    }
    // `print` never runs a `__tostring`, so it cannot recurse.
    let printing = r#"
        local t = setmetatable({}, {__tostring = function(t) print(t) return "t" end})
        print(t)
        return {status = "Healthy"}
    "#;
    assert_eq!(verdict(printing, json!({})), Health::new(HealthStatus::Healthy, ""));
    // An error handler runs in Lua once the error has unwound, so its recursion ends on Lua's own stack.
    let handlers = r#"
        local function f() return xpcall(error, f) end
        local ok, e = f()
        return {status = "Healthy", message = tostring(ok) .. " " .. tostring(e)}
    "#;
    assert_eq!(verdict(handlers, json!({})), Health::new(HealthStatus::Healthy, "false false"));
}

#[test]
fn only_safe_libraries_are_open_by_default() {
    let probe = r#"
        local seen = {}
        for _, name in ipairs({"io", "require", "dofile", "loadfile", "load", "loadstring", "package", "debug",
                               "jit", "bit", "ffi", "newproxy", "collectgarbage", "setfenv"}) do
          if _G[name] ~= nil then table.insert(seen, name) end
        end
        if os.execute ~= nil or os.exit ~= nil or os.getenv ~= nil or os.remove ~= nil then table.insert(seen, "os") end
        local usable = string.format("%d", math.floor(os.time() / 1e12)) .. string.upper("x")
        return {status = "Healthy", message = table.concat(seen, ",") .. "|" .. usable}
    "#;
    assert_eq!(verdict(probe, json!({})), Health::new(HealthStatus::Healthy, "|0X"));
    assert_eq!(
        verdict(r#"os.execute("true") return {status = "Healthy"}"#, json!({})),
        unknown("health.lua:1: attempt to call field 'execute' (a nil value)")
    );
}

#[test]
fn open_libraries_make_os_and_io_available_but_not_the_compiler() {
    let o = overrides(
        r#"
        local reach = type(os.execute) .. " " .. type(io.open) .. " " .. type(os.getenv) .. " " .. type(require)
        local compiler = tostring(jit) .. " " .. tostring(package.loaded.jit) .. " " .. tostring(pcall(require, "jit"))
          .. " " .. tostring(pcall(require, "jit.util")) .. " " .. tostring(pcall(require, "jit.profile"))
          .. " " .. tostring(debug) .. " " .. tostring(ffi)
        return {status = "Healthy", message = reach .. " | " .. compiler}
        "#,
        true,
    );
    assert_eq!(
        o.assess(&widget(json!({}))),
        Some(Health::new(
            HealthStatus::Healthy,
            "function function function function | nil nil false false false nil nil"
        ))
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
    let failed =
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "status": {"phase": "Failed"}});
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

fn object(api_version: &str, kind: &str) -> Value {
    json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": "x"}})
}

fn says(message: &str) -> String {
    format!(r#"return {{status = "Healthy", message = "{message}"}}"#)
}

#[test]
fn the_objects_own_key_beats_every_glob() {
    let mut o = HealthOverrides::default();
    // Globs inserted first, and sorting before the exact key, still lose to it.
    o.insert("*.crossplane.io/*", &says("crossplane glob"), false).unwrap();
    o.insert("*", &says("anything"), false).unwrap();
    o.insert("pkg.crossplane.io/*", &says("pkg glob"), false).unwrap();
    o.insert("pkg.crossplane.io/Provider", &says("exact"), false).unwrap();
    let message = |api_version: &str, kind: &str| o.assess(&object(api_version, kind)).map(|h| h.message);
    assert_eq!(message("pkg.crossplane.io/v1", "Provider").as_deref(), Some("exact"));
    // Without an exact key the most specific glob wins.
    assert_eq!(message("pkg.crossplane.io/v1", "Function").as_deref(), Some("pkg glob"));
    assert_eq!(message("aws.crossplane.io/v1beta1", "Bucket").as_deref(), Some("crossplane glob"));
    assert_eq!(message("example.org/v1", "Bucket").as_deref(), Some("anything"));
}

#[test]
fn wildcard_keys_match_groups_and_kinds() {
    let mut o = HealthOverrides::default();
    o.insert("*.example.com/*", r#"return {status = "Degraded", message = "wildcard"}"#, false).unwrap();
    o.insert("example.net/{Bucket,Queue}", r#"return {status = "Degraded", message = "either"}"#, false)
        .unwrap();
    assert_eq!(
        o.assess(&object("s3.example.com/v1", "Bucket")),
        Some(Health::new(HealthStatus::Degraded, "wildcard"))
    );
    assert_eq!(
        o.assess(&object("example.net/v1", "Queue")),
        Some(Health::new(HealthStatus::Degraded, "either"))
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

#[test]
fn library_errors_name_the_function_and_the_scripts_line() {
    for (source, message) in [
        (
            r#"string.gsub(nil, "x", "y")"#,
            "health.lua:1: bad argument #1 to 'gsub' (string expected, got nil)",
        ),
        (
            "\nlocal n = string.format('%d', 'x')",
            "health.lua:2: bad argument #2 to 'format' (number expected, got string)",
        ),
        (r#"string.format("%y", 1)"#, "health.lua:1: invalid option '%y' to 'format'"),
        (r#"string.gsub("abc", "%", "x")"#, "health.lua:1: malformed pattern (ends with '%')"),
        (r#"table.sort({3, "a"})"#, "health.lua:1: attempt to compare string with number"),
        ("coroutine.resume(nil)", "health.lua:1: bad argument #1 to 'resume' (coroutine expected)"),
        (
            r#"string.gsub("abc", "%w", function(c) error("in the callback") end)"#,
            "health.lua:1: in the callback",
        ),
        (r#"coroutine.wrap(function() error("in the coroutine") end)()"#, "health.lua:1: in the coroutine"),
    ] {
        assert_eq!(verdict(source, json!({})), unknown(message), "{source}");
    }
}
