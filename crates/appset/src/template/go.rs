//! Go templates (`goTemplate: true`): every string of the template is a Go `text/template` executed over
//! the nested parameters, as Argo CD's ApplicationSet controller does it:
//! - Go's syntax and built-ins (`{{.path.basename}}`, `{{index .path.segments 1}}`, `if`, `range`,
//!   `printf`, `eq` …) through the `gotmpl` crate, a port of Go's `text/template`;
//! - the Sprig functions (all but `env`, `expandenv` and `getHostByName`, which Argo CD removes so a
//!   template learns nothing of the controller's host; [`FUNCTIONS`] lists what berth has), plus Argo CD's
//!   `normalize`, `slugify`, `toYaml`, `fromYaml` and `fromYamlArray`;
//! - `goTemplateOptions: ["missingkey=error"]` makes a missing key an error naming it; without it a
//!   missing key renders as Go's `<no value>`.
//!
//! Each string is its own template: an action cannot span two fields. A string without `{{` is returned
//! as it is. Hostile input gives an error, never a panic or a runaway: templates are capped in size and
//! nesting, functions that build text or lists are capped in output, and a panic inside the engine is
//! caught.
//!
//! ```
//! use berth_appset::template::go::{Options, render_str};
//! use serde_json::json;
//! let params = json!({ "path": { "basename": "Guest_Book", "segments": ["apps", "guestbook"] } });
//! let params = params.as_object().unwrap();
//! let options = Options::default();
//! assert_eq!(render_str("{{ .path.basename | normalize }}", params, &options).unwrap(), "guest-book");
//! assert_eq!(render_str("{{ index .path.segments 1 }}", params, &options).unwrap(), "guestbook");
//! assert_eq!(render_str("{{ .nope }}", params, &options).unwrap(), "<no value>");
//! let strict = Options::parse(&["missingkey=error".to_string()]).unwrap();
//! assert!(render_str("{{ .nope }}", params, &strict).unwrap_err().contains("nope"));
//! ```

use gotmpl::{FuncMap, Template, TemplateError, Value as GoValue};
use serde_json::{Map, Number, Value};
use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, LazyLock};

use crate::Error;
use crate::params::sanitize_name;

/// The longest template string rendered; Application fields are short, and the cap bounds parsing.
const MAX_TEMPLATE_BYTES: usize = 64 * 1024;
/// The most text one rendering, or one function call (`repeat`, `indent`, `until` …), may produce.
const MAX_OUTPUT_BYTES: usize = 1024 * 1024;
/// The most `range` iterations one template may run, all loops together.
const MAX_RANGE_ITERATIONS: u64 = 100_000;
/// The deepest nesting of objects and lists converted between JSON and template values.
const MAX_VALUE_DEPTH: usize = 128;

/// What a missing map key gives, as Go's `missingkey` option says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MissingKey {
    /// `missingkey=default` or `missingkey=invalid` (and no option): the key renders as `<no value>`.
    #[default]
    Default,
    /// `missingkey=zero`: the zero value of the map's element type; for parameters (`map[string]any`)
    /// that is a nil interface, which Go also prints as `<no value>`.
    Zero,
    /// `missingkey=error`: rendering stops with an error naming the key.
    Error,
}

/// A set's `goTemplateOptions`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    pub missing_key: MissingKey,
}

impl Options {
    /// The options `goTemplateOptions` lists. Go's `Template.Option` panics on an option it does not know;
    /// here it is an error naming the option.
    pub fn parse(options: &[String]) -> Result<Options, Error> {
        let mut parsed = Options::default();
        for option in options {
            parsed.missing_key = match option.as_str() {
                "missingkey=default" | "missingkey=invalid" => MissingKey::Default,
                "missingkey=zero" => MissingKey::Zero,
                "missingkey=error" => MissingKey::Error,
                other => {
                    return Err(Error::Template {
                        field: "goTemplateOptions".to_string(),
                        message: format!(
                            "unrecognized option {other:?}; known: missingkey=default|invalid|zero|error"
                        ),
                    });
                }
            };
        }
        Ok(parsed)
    }
}

/// `template` executed over `params`; the error says whether it failed to parse or to execute, and why
/// (a missing key under `missingkey=error` names the key).
pub fn render_str(template: &str, params: &Map<String, Value>, options: &Options) -> Result<String, String> {
    Renderer::new(params, *options)?.render(template)
}

/// Every string of `value` rendered over `params`, object keys included (Argo CD templates map keys,
/// e.g. an annotation's name); numbers, booleans and nulls stay as they are. `field` names `value` in
/// errors.
pub fn render_value(
    value: &Value,
    params: &Map<String, Value>,
    options: &Options,
    field: &str,
) -> Result<Value, Error> {
    let renderer = Renderer::new(params, *options)
        .map_err(|message| Error::Template { field: field.to_string(), message })?;
    renderer.render_value(value, field)
}

/// The parameters converted once, for every string of one Application.
pub(crate) struct Renderer {
    data: GoValue,
    options: Options,
}

impl Renderer {
    pub(crate) fn new(params: &Map<String, Value>, options: Options) -> Result<Renderer, String> {
        let data = to_go_object(params, 0).map_err(|e| format!("parameters: {e}"))?;
        Ok(Renderer { data, options })
    }

    pub(crate) fn render_value(&self, value: &Value, field: &str) -> Result<Value, Error> {
        let error = |field: String, message: String| Error::Template { field, message };
        Ok(match value {
            Value::String(text) => Value::String(self.render(text).map_err(|m| error(field.to_string(), m))?),
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(index, item)| self.render_value(item, &format!("{field}[{index}]")))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(object) => {
                let mut rendered = Map::with_capacity(object.len());
                for (key, item) in object {
                    let child = if field.is_empty() { key.clone() } else { format!("{field}.{key}") };
                    let key = self.render(key).map_err(|m| error(format!("{child} (key)"), m))?;
                    rendered.insert(key, self.render_value(item, &child)?);
                }
                Value::Object(rendered)
            }
            scalar => scalar.clone(),
        })
    }

    pub(crate) fn render(&self, template: &str) -> Result<String, String> {
        if !template.contains("{{") {
            return Ok(template.to_string());
        }
        check_shape(template).map_err(|e| format!("failed to parse template {template:?}: {e}"))?;
        let missing_key = match self.options.missing_key {
            MissingKey::Default => gotmpl::MissingKey::Invalid,
            MissingKey::Zero => gotmpl::MissingKey::ZeroValue,
            MissingKey::Error => gotmpl::MissingKey::Error,
        };
        let run = || -> Result<Result<String, String>, String> {
            let parsed = Template::new("")
                .missing_key(missing_key)
                .max_range_iters(MAX_RANGE_ITERATIONS)
                .funcs(FUNCS.clone())
                .parse(template)
                .map_err(|e| format!("failed to parse template {template:?}: {e}"))?;
            Ok(parsed
                .execute_to_string(&self.data)
                .map_err(|e| format!("failed to execute go template {template:?}: {e}")))
        };
        let rendered = match catch_unwind(AssertUnwindSafe(run)) {
            Ok(Ok(executed)) => executed?,
            Ok(Err(parse)) => return Err(parse),
            Err(_) => return Err(format!("failed to execute go template {template:?}: the engine failed")),
        };
        if rendered.len() > MAX_OUTPUT_BYTES {
            return Err(format!(
                "go template {template:?} renders more than {MAX_OUTPUT_BYTES} bytes; refusing it"
            ));
        }
        Ok(rendered)
    }
}

/// Refuses a template longer than [`MAX_TEMPLATE_BYTES`]; the engine itself caps nesting (100 levels
/// when parsing, 200 when executing) so a hostile template cannot exhaust the stack.
fn check_shape(template: &str) -> Result<(), String> {
    if template.len() > MAX_TEMPLATE_BYTES {
        return Err(format!("longer than {MAX_TEMPLATE_BYTES} bytes"));
    }
    Ok(())
}

// --- values between JSON and the template engine ---

fn to_go(value: &Value, depth: usize) -> Result<GoValue, String> {
    if depth > MAX_VALUE_DEPTH {
        return Err(format!("nested deeper than {MAX_VALUE_DEPTH} levels"));
    }
    Ok(match value {
        Value::Null => GoValue::Nil,
        Value::Bool(flag) => GoValue::Bool(*flag),
        Value::Number(number) => match number.as_i64() {
            Some(int) => GoValue::Int(int),
            None => GoValue::Float(number.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(text) => GoValue::String(Arc::from(text.as_str())),
        Value::Array(items) => GoValue::List(
            items.iter().map(|item| to_go(item, depth + 1)).collect::<Result<Vec<_>, _>>()?.into(),
        ),
        Value::Object(object) => to_go_object(object, depth)?,
    })
}

fn to_go_object(object: &Map<String, Value>, depth: usize) -> Result<GoValue, String> {
    let mut map = BTreeMap::new();
    for (key, value) in object {
        map.insert(Arc::from(key.as_str()), to_go(value, depth + 1)?);
    }
    Ok(GoValue::Map(Arc::new(map)))
}

fn from_go(value: &GoValue, depth: usize) -> Result<Value, String> {
    if depth > MAX_VALUE_DEPTH {
        return Err(format!("nested deeper than {MAX_VALUE_DEPTH} levels"));
    }
    Ok(match value {
        GoValue::Nil => Value::Null,
        GoValue::Bool(flag) => Value::Bool(*flag),
        GoValue::Int(int) => Value::Number((*int).into()),
        GoValue::Uint(int) => Value::Number((*int).into()),
        GoValue::Float(float) => Value::Number(
            Number::from_f64(*float).ok_or_else(|| format!("json: unsupported value: {float}"))?,
        ),
        GoValue::String(text) => Value::String(text.to_string()),
        GoValue::List(items) => {
            Value::Array(items.iter().map(|item| from_go(item, depth + 1)).collect::<Result<_, _>>()?)
        }
        GoValue::Map(map) => Value::Object(
            map.iter()
                .map(|(key, item)| Ok((key.to_string(), from_go(item, depth + 1)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => return Err(format!("json: unsupported type: {}", other.type_name())),
    })
}

// --- the function library ---

/// The functions a template may call besides Go's built-ins: Argo CD's own and the Sprig functions berth
/// implements. Sprig's `env`, `expandenv` and `getHostByName` are absent on purpose, as in Argo CD; so
/// are its clock, random and crypto-key functions, which would make a set's output change on every
/// reconcile.
pub const FUNCTIONS: &[&str] = &[
    // Argo CD
    "normalize",
    "slugify",
    "toYaml",
    "fromYaml",
    "fromYamlArray",
    // defaults and flow
    "default",
    "empty",
    "coalesce",
    "ternary",
    "fail",
    // strings
    "lower",
    "upper",
    "title",
    "trim",
    "trimAll",
    "trimPrefix",
    "trimSuffix",
    "replace",
    "repeat",
    "substr",
    "trunc",
    "contains",
    "hasPrefix",
    "hasSuffix",
    "quote",
    "squote",
    "cat",
    "indent",
    "nindent",
    "nospace",
    "split",
    "splitList",
    "splitn",
    "join",
    "toString",
    "toStrings",
    "sortAlpha",
    "regexMatch",
    "regexFind",
    "regexFindAll",
    "regexReplaceAll",
    "regexReplaceAllLiteral",
    "regexSplit",
    "b64enc",
    "b64dec",
    "sha256sum",
    // encodings
    "toJson",
    "toRawJson",
    "toPrettyJson",
    "fromJson",
    // lists
    "list",
    "first",
    "last",
    "rest",
    "initial",
    "append",
    "push",
    "prepend",
    "concat",
    "uniq",
    "without",
    "has",
    "compact",
    "reverse",
    "until",
    // dicts
    "dict",
    "get",
    "set",
    "unset",
    "hasKey",
    "keys",
    "values",
    "pick",
    "omit",
    "merge",
    "mergeOverwrite",
    "dig",
    "deepCopy",
    // numbers
    "add",
    "add1",
    "sub",
    "mul",
    "div",
    "mod",
    "max",
    "min",
    "int",
    "int64",
    "float64",
    "atoi",
    // paths
    "base",
    "dir",
    "ext",
    "clean",
    "isAbs",
    // types
    "kindOf",
    "kindIs",
];

type Func = fn(&[GoValue]) -> Result<GoValue, TemplateError>;

static FUNCS: LazyLock<FuncMap> = LazyLock::new(|| {
    let table: &[(&str, Func)] = &[
        ("normalize", |a| Ok(string(sanitize_name(&text(one("normalize", a)?))))),
        ("slugify", slugify),
        ("toYaml", to_yaml),
        ("fromYaml", from_yaml),
        ("fromYamlArray", from_yaml_array),
        ("default", |a| {
            let (default, given) =
                a.split_first().ok_or_else(|| fail("default: wrong number of arguments"))?;
            Ok(given.first().filter(|g| !is_empty(g)).unwrap_or(default).clone())
        }),
        ("empty", |a| Ok(GoValue::Bool(is_empty(one("empty", a)?)))),
        ("coalesce", |a| Ok(a.iter().find(|v| !is_empty(v)).cloned().unwrap_or(GoValue::Nil))),
        ("ternary", |a| {
            let [yes, no, condition] = exactly("ternary", a)?;
            Ok(if condition.is_truthy() { yes } else { no }.clone())
        }),
        ("fail", |a| Err(fail(text(one("fail", a)?)))),
        ("lower", |a| Ok(string(text(one("lower", a)?).to_lowercase()))),
        ("upper", |a| Ok(string(text(one("upper", a)?).to_uppercase()))),
        ("title", |a| Ok(string(title(&text(one("title", a)?))))),
        ("trim", |a| Ok(string(text(one("trim", a)?).trim()))),
        ("trimAll", |a| {
            let [cutset, s] = exactly("trimAll", a)?;
            let cutset = text(cutset);
            Ok(string(text(s).trim_matches(|c| cutset.contains(c))))
        }),
        ("trimPrefix", |a| {
            let [prefix, s] = exactly("trimPrefix", a)?;
            let (prefix, s) = (text(prefix), text(s));
            Ok(string(s.strip_prefix(prefix.as_str()).unwrap_or(&s)))
        }),
        ("trimSuffix", |a| {
            let [suffix, s] = exactly("trimSuffix", a)?;
            let (suffix, s) = (text(suffix), text(s));
            Ok(string(s.strip_suffix(suffix.as_str()).unwrap_or(&s)))
        }),
        ("replace", |a| {
            let [old, new, s] = exactly("replace", a)?;
            let replaced = go_replace(&text(s), &text(old), &text(new));
            capped("replace", replaced.len())?;
            Ok(string(replaced))
        }),
        ("repeat", |a| {
            let [count, s] = exactly("repeat", a)?;
            let (count, s) = (usize::try_from(to_int(count)).unwrap_or(0), text(s));
            capped("repeat", count.saturating_mul(s.len()))?;
            Ok(string(s.repeat(count)))
        }),
        ("substr", |a| {
            let [start, end, s] = exactly("substr", a)?;
            let s = text(s);
            let (len, start, end) = (s.len() as i64, to_int(start), to_int(end));
            let (from, to) = if start < 0 {
                (0, end)
            } else if end < 0 || end > len {
                (start, len)
            } else {
                (start, end)
            };
            Ok(string(byte_slice(&s, from, to)?))
        }),
        ("trunc", |a| {
            let [count, s] = exactly("trunc", a)?;
            let (count, s) = (to_int(count), text(s));
            let len = s.len() as i64;
            Ok(string(if count < 0 && len + count > 0 {
                byte_slice(&s, len + count, len)?
            } else if count >= 0 && len > count {
                byte_slice(&s, 0, count)?
            } else {
                s
            }))
        }),
        ("contains", |a| {
            let [needle, s] = exactly("contains", a)?;
            Ok(GoValue::Bool(text(s).contains(text(needle).as_str())))
        }),
        ("hasPrefix", |a| {
            let [prefix, s] = exactly("hasPrefix", a)?;
            Ok(GoValue::Bool(text(s).starts_with(text(prefix).as_str())))
        }),
        ("hasSuffix", |a| {
            let [suffix, s] = exactly("hasSuffix", a)?;
            Ok(GoValue::Bool(text(s).ends_with(text(suffix).as_str())))
        }),
        ("quote", |a| {
            let quoted: Vec<String> = a.iter().filter(|v| !is_nil(v)).map(|v| go_quote(&text(v))).collect();
            Ok(string(quoted.join(" ")))
        }),
        ("squote", |a| {
            let quoted: Vec<String> =
                a.iter().filter(|v| !is_nil(v)).map(|v| format!("'{}'", text(v))).collect();
            Ok(string(quoted.join(" ")))
        }),
        ("cat", |a| {
            let words: Vec<String> = a.iter().filter(|v| !is_nil(v)).map(text).collect();
            Ok(string(words.join(" ")))
        }),
        ("indent", |a| {
            let [spaces, s] = exactly("indent", a)?;
            Ok(string(indent(to_int(spaces), &text(s))?))
        }),
        ("nindent", |a| {
            let [spaces, s] = exactly("nindent", a)?;
            Ok(string(format!("\n{}", indent(to_int(spaces), &text(s))?)))
        }),
        ("nospace", |a| Ok(string(text(one("nospace", a)?).split_whitespace().collect::<String>()))),
        ("split", |a| {
            let [separator, s] = exactly("split", a)?;
            Ok(indexed(go_split(&text(s), &text(separator), None)))
        }),
        ("splitList", |a| {
            let [separator, s] = exactly("splitList", a)?;
            Ok(list(go_split(&text(s), &text(separator), None).into_iter().map(string).collect()))
        }),
        ("splitn", |a| {
            let [separator, count, s] = exactly("splitn", a)?;
            Ok(indexed(go_split(&text(s), &text(separator), Some(to_int(count)))))
        }),
        ("join", |a| {
            let [separator, items] = exactly("join", a)?;
            Ok(string(strings(items).join(&text(separator))))
        }),
        ("toString", |a| Ok(string(text(one("toString", a)?)))),
        ("toStrings", |a| Ok(list(strings(one("toStrings", a)?).into_iter().map(string).collect()))),
        ("sortAlpha", |a| {
            let mut sorted = strings(one("sortAlpha", a)?);
            sorted.sort();
            Ok(list(sorted.into_iter().map(string).collect()))
        }),
        ("regexMatch", |a| {
            let [pattern, s] = exactly("regexMatch", a)?;
            Ok(GoValue::Bool(regex(pattern)?.is_match(&text(s))))
        }),
        ("regexFind", |a| {
            let [pattern, s] = exactly("regexFind", a)?;
            let s = text(s);
            Ok(string(regex(pattern)?.find(&s).map(|m| m.as_str()).unwrap_or_default()))
        }),
        ("regexFindAll", |a| {
            let [pattern, s, count] = exactly("regexFindAll", a)?;
            let (s, count) = (text(s), to_int(count));
            let limit = if count < 0 { usize::MAX } else { count as usize };
            let found = regex(pattern)?.find_iter(&s).take(limit).map(|m| string(m.as_str())).collect();
            Ok(list(found))
        }),
        ("regexReplaceAll", |a| {
            let [pattern, s, replacement] = exactly("regexReplaceAll", a)?;
            let (s, replacement) = (text(s), text(replacement));
            let replaced = regex(pattern)?.replace_all(&s, replacement.as_str()).into_owned();
            capped("regexReplaceAll", replaced.len())?;
            Ok(string(replaced))
        }),
        ("regexReplaceAllLiteral", |a| {
            let [pattern, s, replacement] = exactly("regexReplaceAllLiteral", a)?;
            let (s, replacement) = (text(s), text(replacement));
            let replaced =
                regex(pattern)?.replace_all(&s, regex::NoExpand(replacement.as_str())).into_owned();
            capped("regexReplaceAllLiteral", replaced.len())?;
            Ok(string(replaced))
        }),
        ("regexSplit", |a| {
            let [pattern, s, count] = exactly("regexSplit", a)?;
            let (s, count) = (text(s), to_int(count));
            let pattern = regex(pattern)?;
            let parts: Vec<GoValue> = match count {
                0 => Vec::new(),
                n if n < 0 => pattern.split(&s).map(string).collect(),
                n => pattern.splitn(&s, n as usize).map(string).collect(),
            };
            Ok(list(parts))
        }),
        ("b64enc", |a| {
            use base64::Engine;
            Ok(string(base64::engine::general_purpose::STANDARD.encode(text(one("b64enc", a)?))))
        }),
        ("b64dec", |a| {
            use base64::Engine;
            // Sprig returns the decoding error as the text rather than failing.
            Ok(string(match base64::engine::general_purpose::STANDARD.decode(text(one("b64dec", a)?)) {
                Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                Err(e) => e.to_string(),
            }))
        }),
        ("sha256sum", |a| {
            use sha2::Digest;
            let digest = sha2::Sha256::digest(text(one("sha256sum", a)?).as_bytes());
            Ok(string(digest.iter().map(|b| format!("{b:02x}")).collect::<String>()))
        }),
        ("toJson", |a| Ok(string(html_escape_json(&to_json(one("toJson", a)?, false)?)))),
        ("toRawJson", |a| Ok(string(to_json(one("toRawJson", a)?, false)?))),
        ("toPrettyJson", |a| Ok(string(html_escape_json(&to_json(one("toPrettyJson", a)?, true)?)))),
        ("fromJson", |a| {
            // Sprig's fromJson gives nil for text that is not JSON.
            let parsed: Option<Value> = serde_json::from_str(&text(one("fromJson", a)?)).ok();
            parsed.map_or(Ok(GoValue::Nil), |v| to_go(&v, 0).map_err(fail))
        }),
        ("list", |a| Ok(list(a.to_vec()))),
        ("first", |a| Ok(items("first", one("first", a)?)?.first().cloned().unwrap_or(GoValue::Nil))),
        ("last", |a| Ok(items("last", one("last", a)?)?.last().cloned().unwrap_or(GoValue::Nil))),
        ("rest", |a| Ok(list(items("rest", one("rest", a)?)?.iter().skip(1).cloned().collect()))),
        ("initial", |a| {
            let all = items("initial", one("initial", a)?)?;
            Ok(list(all[..all.len().saturating_sub(1)].to_vec()))
        }),
        ("append", append),
        ("push", append),
        ("prepend", |a| {
            let [all, value] = exactly("prepend", a)?;
            let mut all = items("prepend", all)?.to_vec();
            all.insert(0, value.clone());
            Ok(list(all))
        }),
        ("concat", |a| {
            let mut all = Vec::new();
            for part in a {
                all.extend_from_slice(items("concat", part)?);
            }
            Ok(list(all))
        }),
        ("uniq", |a| {
            let mut unique: Vec<GoValue> = Vec::new();
            for item in items("uniq", one("uniq", a)?)? {
                if !unique.contains(item) {
                    unique.push(item.clone());
                }
            }
            Ok(list(unique))
        }),
        ("without", |a| {
            let (all, drop) = a.split_first().ok_or_else(|| fail("without: wrong number of arguments"))?;
            Ok(list(items("without", all)?.iter().filter(|item| !drop.contains(item)).cloned().collect()))
        }),
        ("has", |a| {
            let [needle, all] = exactly("has", a)?;
            Ok(GoValue::Bool(!is_nil(all) && items("has", all)?.contains(needle)))
        }),
        ("compact", |a| {
            Ok(list(items("compact", one("compact", a)?)?.iter().filter(|v| !is_empty(v)).cloned().collect()))
        }),
        ("reverse", |a| Ok(list(items("reverse", one("reverse", a)?)?.iter().rev().cloned().collect()))),
        ("until", |a| {
            let count = to_int(one("until", a)?);
            capped("until", usize::try_from(count.unsigned_abs()).unwrap_or(usize::MAX))?;
            let range: Vec<GoValue> = if count >= 0 {
                (0..count).map(GoValue::Int).collect()
            } else {
                (count + 1..=0).rev().map(GoValue::Int).collect()
            };
            Ok(list(range))
        }),
        ("dict", |a| {
            let mut map = BTreeMap::new();
            for pair in a.chunks(2) {
                map.insert(
                    Arc::from(text(&pair[0]).as_str()),
                    pair.get(1).cloned().unwrap_or_else(|| string("")),
                );
            }
            Ok(GoValue::Map(Arc::new(map)))
        }),
        ("get", |a| {
            let [map, key] = exactly("get", a)?;
            Ok(entries("get", map)?.get(text(key).as_str()).cloned().unwrap_or_else(|| string("")))
        }),
        ("set", |a| {
            let [map, key, value] = exactly("set", a)?;
            let mut map = entries("set", map)?.clone();
            map.insert(Arc::from(text(key).as_str()), value.clone());
            Ok(GoValue::Map(Arc::new(map)))
        }),
        ("unset", |a| {
            let [map, key] = exactly("unset", a)?;
            let mut map = entries("unset", map)?.clone();
            map.remove(text(key).as_str());
            Ok(GoValue::Map(Arc::new(map)))
        }),
        ("hasKey", |a| {
            let [map, key] = exactly("hasKey", a)?;
            Ok(GoValue::Bool(entries("hasKey", map)?.contains_key(text(key).as_str())))
        }),
        ("keys", |a| {
            let mut keys = Vec::new();
            for map in a {
                keys.extend(entries("keys", map)?.keys().map(|k| GoValue::String(k.clone())));
            }
            Ok(list(keys))
        }),
        ("values", |a| Ok(list(entries("values", one("values", a)?)?.values().cloned().collect()))),
        ("pick", |a| {
            let (map, keys) = a.split_first().ok_or_else(|| fail("pick: wrong number of arguments"))?;
            let keys: Vec<String> = keys.iter().map(text).collect();
            let picked = entries("pick", map)?
                .iter()
                .filter(|(k, _)| keys.iter().any(|key| key.as_str() == k.as_ref()));
            Ok(GoValue::Map(Arc::new(picked.map(|(k, v)| (k.clone(), v.clone())).collect())))
        }),
        ("omit", |a| {
            let (map, keys) = a.split_first().ok_or_else(|| fail("omit: wrong number of arguments"))?;
            let keys: Vec<String> = keys.iter().map(text).collect();
            let kept = entries("omit", map)?
                .iter()
                .filter(|(k, _)| !keys.iter().any(|key| key.as_str() == k.as_ref()));
            Ok(GoValue::Map(Arc::new(kept.map(|(k, v)| (k.clone(), v.clone())).collect())))
        }),
        ("merge", |a| merge("merge", a, false)),
        ("mergeOverwrite", |a| merge("mergeOverwrite", a, true)),
        ("dig", dig),
        ("deepCopy", |a| Ok(one("deepCopy", a)?.clone())),
        ("add", |a| Ok(GoValue::Int(a.iter().map(to_int).fold(0i64, i64::wrapping_add)))),
        ("add1", |a| Ok(GoValue::Int(to_int(one("add1", a)?).wrapping_add(1)))),
        ("sub", |a| {
            let [x, y] = exactly("sub", a)?;
            Ok(GoValue::Int(to_int(x).wrapping_sub(to_int(y))))
        }),
        ("mul", |a| Ok(GoValue::Int(a.iter().map(to_int).fold(1i64, i64::wrapping_mul)))),
        ("div", |a| {
            let [x, y] = exactly("div", a)?;
            to_int(x)
                .checked_div(to_int(y))
                .map(GoValue::Int)
                .ok_or_else(|| fail("runtime error: integer divide by zero"))
        }),
        ("mod", |a| {
            let [x, y] = exactly("mod", a)?;
            to_int(x)
                .checked_rem(to_int(y))
                .map(GoValue::Int)
                .ok_or_else(|| fail("runtime error: integer divide by zero"))
        }),
        ("max", |a| {
            a.iter().map(to_int).max().map(GoValue::Int).ok_or_else(|| fail("max: wrong number of arguments"))
        }),
        ("min", |a| {
            a.iter().map(to_int).min().map(GoValue::Int).ok_or_else(|| fail("min: wrong number of arguments"))
        }),
        ("int", |a| Ok(GoValue::Int(to_int(one("int", a)?)))),
        ("int64", |a| Ok(GoValue::Int(to_int(one("int64", a)?)))),
        ("float64", |a| Ok(GoValue::Float(to_float(one("float64", a)?)))),
        ("atoi", |a| Ok(GoValue::Int(text(one("atoi", a)?).parse().unwrap_or(0)))),
        ("base", |a| Ok(string(path_base(&text(one("base", a)?))))),
        ("dir", |a| Ok(string(path_dir(&text(one("dir", a)?))))),
        ("ext", |a| Ok(string(path_ext(&text(one("ext", a)?))))),
        ("clean", |a| Ok(string(path_clean(&text(one("clean", a)?))))),
        ("isAbs", |a| Ok(GoValue::Bool(text(one("isAbs", a)?).starts_with('/')))),
        ("kindOf", |a| Ok(string(kind(one("kindOf", a)?)))),
        ("kindIs", |a| {
            let [expected, value] = exactly("kindIs", a)?;
            Ok(GoValue::Bool(text(expected) == kind(value)))
        }),
    ];
    table.iter().map(|(name, func)| (name.to_string(), Arc::new(*func) as gotmpl::ValueFunc)).collect()
});

fn fail(message: impl Into<String>) -> TemplateError {
    TemplateError::Exec(message.into())
}

fn one<'a>(name: &str, args: &'a [GoValue]) -> Result<&'a GoValue, TemplateError> {
    let [only] = exactly(name, args)?;
    Ok(only)
}

fn exactly<'a, const N: usize>(name: &str, args: &'a [GoValue]) -> Result<[&'a GoValue; N], TemplateError> {
    if args.len() != N {
        return Err(fail(format!("{name}: wants {N} arguments, got {}", args.len())));
    }
    Ok(std::array::from_fn(|i| &args[i]))
}

fn capped(name: &str, bytes: usize) -> Result<(), TemplateError> {
    if bytes > MAX_OUTPUT_BYTES {
        return Err(fail(format!("{name}: result larger than {MAX_OUTPUT_BYTES} bytes")));
    }
    Ok(())
}

fn string(text: impl AsRef<str>) -> GoValue {
    GoValue::String(Arc::from(text.as_ref()))
}

fn list(items: Vec<GoValue>) -> GoValue {
    GoValue::List(items.into())
}

/// Sprig's `strval`: a string as it is, anything else as Go's `%v` prints it.
fn text(value: &GoValue) -> String {
    match value {
        GoValue::String(s) => s.to_string(),
        other => other.to_string(),
    }
}

fn is_nil(value: &GoValue) -> bool {
    matches!(value, GoValue::Nil)
}

/// Sprig's `empty`: nil, false, 0, "" and empty lists and maps.
fn is_empty(value: &GoValue) -> bool {
    !value.is_truthy()
}

/// Sprig's `toInt64` (spf13/cast): numbers truncated, booleans 0/1, text parsed (with Go's base prefixes),
/// anything else 0.
fn to_int(value: &GoValue) -> i64 {
    match value {
        GoValue::Int(int) => *int,
        GoValue::Uint(int) => i64::try_from(*int).unwrap_or(i64::MAX),
        GoValue::Float(float) => *float as i64,
        GoValue::Bool(flag) => i64::from(*flag),
        GoValue::String(s) => parse_go_int(s.trim()).unwrap_or(0),
        _ => 0,
    }
}

fn parse_go_int(s: &str) -> Option<i64> {
    let (negative, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let digits = digits.replace('_', "");
    let lower = digits.to_ascii_lowercase();
    let (radix, body) = if let Some(hex) = lower.strip_prefix("0x") {
        (16, hex)
    } else if let Some(bin) = lower.strip_prefix("0b") {
        (2, bin)
    } else if let Some(oct) = lower.strip_prefix("0o") {
        (8, oct)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..])
    } else {
        (10, lower.as_str())
    };
    let magnitude = i64::from_str_radix(body, radix).ok()?;
    Some(if negative { -magnitude } else { magnitude })
}

fn to_float(value: &GoValue) -> f64 {
    match value {
        GoValue::Int(int) => *int as f64,
        GoValue::Uint(int) => *int as f64,
        GoValue::Float(float) => *float,
        GoValue::Bool(flag) => f64::from(u8::from(*flag)),
        GoValue::String(s) => s.trim().parse().unwrap_or(0.0),
        _ => 0.0,
    }
}

fn items<'a>(name: &str, value: &'a GoValue) -> Result<&'a [GoValue], TemplateError> {
    match value {
        GoValue::List(items) => Ok(items),
        other => Err(fail(format!("{name}: cannot find {name} on type {}", other.type_name()))),
    }
}

fn entries<'a>(name: &str, value: &'a GoValue) -> Result<&'a BTreeMap<Arc<str>, GoValue>, TemplateError> {
    match value {
        GoValue::Map(map) => Ok(map),
        other => Err(fail(format!("{name}: wants a dict, got {}", other.type_name()))),
    }
}

/// Sprig's `strslice`: a list's items as text (nil items dropped), anything else as one text.
fn strings(value: &GoValue) -> Vec<String> {
    match value {
        GoValue::List(items) => items.iter().filter(|v| !is_nil(v)).map(text).collect(),
        GoValue::Nil => Vec::new(),
        other => vec![text(other)],
    }
}

fn indexed(parts: Vec<String>) -> GoValue {
    let map =
        parts.into_iter().enumerate().map(|(i, part)| (Arc::from(format!("_{i}").as_str()), string(part)));
    GoValue::Map(Arc::new(map.collect()))
}

fn append(args: &[GoValue]) -> Result<GoValue, TemplateError> {
    let [all, value] = exactly("append", args)?;
    let mut all = items("append", all)?.to_vec();
    all.push(value.clone());
    Ok(list(all))
}

/// Sprig's `merge` (destination wins) and `mergeOverwrite` (later sources win), deep into nested dicts.
fn merge(name: &str, args: &[GoValue], overwrite: bool) -> Result<GoValue, TemplateError> {
    fn merge_into(
        into: &mut BTreeMap<Arc<str>, GoValue>,
        from: &BTreeMap<Arc<str>, GoValue>,
        overwrite: bool,
    ) {
        for (key, value) in from {
            match (into.get_mut(key), value) {
                (Some(GoValue::Map(existing)), GoValue::Map(incoming)) => {
                    merge_into(Arc::make_mut(existing), incoming, overwrite)
                }
                (Some(existing), _) if overwrite && !is_empty(value) => *existing = value.clone(),
                (Some(existing), _) if is_empty(existing) && !overwrite => *existing = value.clone(),
                (Some(_), _) => {}
                (None, _) => {
                    into.insert(key.clone(), value.clone());
                }
            }
        }
    }
    let (first, sources) =
        args.split_first().ok_or_else(|| fail(format!("{name}: wrong number of arguments")))?;
    let mut merged = entries(name, first)?.clone();
    for source in sources {
        merge_into(&mut merged, entries(name, source)?, overwrite);
    }
    Ok(GoValue::Map(Arc::new(merged)))
}

/// Sprig's `dig "a" "b" default dict`: the value at the key path, or `default` where a key is missing.
fn dig(args: &[GoValue]) -> Result<GoValue, TemplateError> {
    if args.len() < 3 {
        return Err(fail(format!("dig: wants at least 3 arguments, got {}", args.len())));
    }
    let (dict, rest) = args.split_last().unwrap_or((&GoValue::Nil, &[]));
    let (default, keys) = rest.split_last().unwrap_or((&GoValue::Nil, &[]));
    let mut current = dict;
    for key in keys {
        match entries("dig", current)?.get(text(key).as_str()) {
            Some(step) => current = step,
            None => return Ok(default.clone()),
        }
    }
    Ok(current.clone())
}

fn regex(pattern: &GoValue) -> Result<regex::Regex, TemplateError> {
    regex::RegexBuilder::new(&text(pattern))
        .size_limit(1 << 20)
        .build()
        .map_err(|e| fail(format!("regexp: {e}")))
}

fn byte_slice(s: &str, from: i64, to: i64) -> Result<String, TemplateError> {
    let (from, to) = (usize::try_from(from).unwrap_or(0), usize::try_from(to).unwrap_or(0));
    let bytes =
        s.as_bytes().get(from..to).ok_or_else(|| fail(format!("slice bounds out of range [{from}:{to}]")))?;
    Ok(String::from_utf8_lossy(bytes).into_owned())
}

fn indent(spaces: i64, s: &str) -> Result<String, TemplateError> {
    let pad = " ".repeat(usize::try_from(spaces).unwrap_or(0).min(MAX_OUTPUT_BYTES + 1));
    let lines = s.matches('\n').count() + 1;
    capped("indent", s.len().saturating_add(lines.saturating_mul(pad.len())))?;
    Ok(format!("{pad}{}", s.replace('\n', &format!("\n{pad}"))))
}

/// Go's `strings.Replace(s, old, new, -1)`: an empty `old` matches before every character and at the end.
fn go_replace(s: &str, old: &str, new: &str) -> String {
    if !old.is_empty() {
        return s.replace(old, new);
    }
    let mut out = String::with_capacity(s.len() + new.len() * (s.len() + 1));
    for c in s.chars() {
        out.push_str(new);
        out.push(c);
    }
    out.push_str(new);
    out
}

/// Go's `strings.Split` (and `SplitN` with `count`): an empty separator splits into characters.
fn go_split(s: &str, separator: &str, count: Option<i64>) -> Vec<String> {
    match count {
        Some(0) => Vec::new(),
        Some(n) if n > 0 => {
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            if separator.is_empty() {
                let mut chars: Vec<String> = s.chars().take(n.saturating_sub(1)).map(String::from).collect();
                let used: usize = chars.iter().map(String::len).sum();
                if used < s.len() {
                    chars.push(s[used..].to_string());
                }
                chars
            } else {
                s.splitn(n, separator).map(str::to_string).collect()
            }
        }
        _ if separator.is_empty() => s.chars().map(String::from).collect(),
        _ => s.split(separator).map(str::to_string).collect(),
    }
}

/// Go's `strconv.Quote`.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() || c == '\u{2028}' || c == '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `strings.Title`: the first letter of every word upper-cased.
fn title(s: &str) -> String {
    let mut previous_is_letter = false;
    s.chars()
        .map(|c| {
            let word_start = !previous_is_letter;
            previous_is_letter = c.is_alphanumeric() || c == '_';
            if word_start { c.to_uppercase().collect::<String>() } else { c.to_string() }
        })
        .collect()
}

/// Go's `json.Marshal` escapes `<`, `>`, `&`, U+2028 and U+2029 (they only occur inside strings).
fn html_escape_json(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

fn to_json(value: &GoValue, pretty: bool) -> Result<String, TemplateError> {
    let json = from_go(value, 0).map_err(fail)?;
    let encoded = if pretty { serde_json::to_string_pretty(&json) } else { serde_json::to_string(&json) };
    encoded.map_err(|e| fail(format!("json: {e}")))
}

/// Argo CD's `toYaml` (Helm's): the value as YAML, without the final newline.
fn to_yaml(args: &[GoValue]) -> Result<GoValue, TemplateError> {
    let json =
        from_go(one("toYaml", args)?, 0).map_err(|e| fail(format!("error marshaling into JSON: {e}")))?;
    let yaml =
        serde_saphyr::to_string(&json).map_err(|e| fail(format!("error marshaling into YAML: {e}")))?;
    Ok(string(yaml.strip_suffix('\n').unwrap_or(&yaml)))
}

fn parse_yaml(name: &str, args: &[GoValue]) -> Result<Value, TemplateError> {
    let source = text(one(name, args)?);
    if source.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_saphyr::from_str(&source).map_err(|e| fail(format!("error unmarshaling YAML: {e}")))
}

/// Argo CD's `fromYaml`: a YAML mapping as a dict; anything else is an error.
fn from_yaml(args: &[GoValue]) -> Result<GoValue, TemplateError> {
    match parse_yaml("fromYaml", args)? {
        Value::Null => Ok(GoValue::Map(Arc::default())),
        Value::Object(object) => to_go_object(&object, 0).map_err(fail),
        other => Err(fail(format!("cannot unmarshal {} into a dict", json_kind(&other)))),
    }
}

/// Argo CD's `fromYamlArray`: a YAML sequence as a list; anything else is an error.
fn from_yaml_array(args: &[GoValue]) -> Result<GoValue, TemplateError> {
    match parse_yaml("fromYamlArray", args)? {
        Value::Null => Ok(list(Vec::new())),
        array @ Value::Array(_) => to_go(&array, 0).map_err(fail),
        other => Err(fail(format!("cannot unmarshal {} into a list", json_kind(&other)))),
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn kind(value: &GoValue) -> &'static str {
    match value {
        GoValue::Nil => "invalid",
        GoValue::Bool(_) => "bool",
        GoValue::Int(_) => "int64",
        GoValue::Uint(_) => "uint64",
        GoValue::Float(_) => "float64",
        GoValue::String(_) => "string",
        GoValue::List(_) => "slice",
        GoValue::Map(_) => "map",
        _ => "func",
    }
}

/// Argo CD's `slugify [maxSize [smartTruncate]] name`: `normalize`d, dots and underscores turned to
/// dashes, at most `maxSize` (default 50) bytes, cut at a dash when smart truncation is on (default).
fn slugify(args: &[GoValue]) -> Result<GoValue, TemplateError> {
    let (mut max, mut smart, mut name) = (50i64, true, String::new());
    for (index, arg) in args.iter().enumerate() {
        if index + 1 == args.len() {
            name = match arg {
                GoValue::String(s) => s.to_string(),
                other => {
                    return Err(fail(format!(
                        "slugify: the name must be a string, got {}",
                        other.type_name()
                    )));
                }
            };
        } else if index == 0 {
            max = match arg {
                GoValue::Int(n) => *n,
                other => {
                    return Err(fail(format!("slugify: the size must be an int, got {}", other.type_name())));
                }
            };
        } else if index == 1 {
            smart = match arg {
                GoValue::Bool(b) => *b,
                other => {
                    return Err(fail(format!(
                        "slugify: smartTruncate must be a bool, got {}",
                        other.type_name()
                    )));
                }
            };
        } else {
            return Err(fail("slugify: at most 3 arguments"));
        }
    }
    Ok(string(slug(&sanitize_name(&name), max, smart)))
}

/// gosimple/slug's `Make` on an already normalized name (`[-a-z0-9.]`), as Argo CD configures it.
fn slug(name: &str, max: i64, smart: bool) -> String {
    let max = usize::try_from(max).unwrap_or(0);
    let mut slug = name.trim().to_string();
    if !smart && slug.len() >= max {
        slug.truncate(max);
    }
    let mut collapsed = String::with_capacity(slug.len());
    for c in slug.chars() {
        let c = if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '-' };
        if !(c == '-' && collapsed.ends_with('-')) {
            collapsed.push(c);
        }
    }
    let mut slug = collapsed.trim_matches(['-', '_']).to_string();
    if max > 0 && smart && slug.len() > max {
        let cut = slug.as_bytes()[..=max].iter().rposition(|b| *b == b'-').unwrap_or(max);
        slug.truncate(cut);
    }
    slug
}

/// Go's `path.Clean`.
fn path_clean(path: &str) -> String {
    if path.is_empty() {
        return ".".to_string();
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|last| *last != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            part => parts.push(part),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// Go's `path.Base`.
fn path_base(path: &str) -> String {
    if path.is_empty() {
        return ".".to_string();
    }
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return "/".to_string();
    }
    trimmed.rsplit('/').next().unwrap_or(trimmed).to_string()
}

/// Go's `path.Dir`.
fn path_dir(path: &str) -> String {
    let dir = path.rfind('/').map_or("", |at| &path[..=at]);
    path_clean(dir)
}

/// Go's `path.Ext`.
fn path_ext(path: &str) -> String {
    for (at, c) in path.char_indices().rev() {
        match c {
            '/' => break,
            '.' => return path[at..].to_string(),
            _ => {}
        }
    }
    String::new()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params(value: Value) -> Map<String, Value> {
        value.as_object().expect("an object").clone()
    }

    fn render(template: &str, value: Value) -> Result<String, String> {
        render_str(template, &params(value), &Options::default())
    }

    fn strict(template: &str, value: Value) -> Result<String, String> {
        render_str(template, &params(value), &Options { missing_key: MissingKey::Error })
    }

    /// Argo CD's "Go Template" page: the list generator's `{{.cluster}}` and `{{.url}}`.
    #[test]
    fn dotted_parameters_are_substituted() {
        let p = json!({ "cluster": "engineering-dev", "url": "https://1.2.3.4" });
        assert_eq!(render("{{.cluster}}-guestbook", p.clone()).unwrap(), "engineering-dev-guestbook");
        assert_eq!(render("guestbook/{{ .cluster }}", p.clone()).unwrap(), "guestbook/engineering-dev");
        assert_eq!(render("{{.url}}", p).unwrap(), "https://1.2.3.4");
    }

    /// The "Go Template" page's migration table: `{{.path.basename}}`, `{{index .path.segments N}}`,
    /// `{{base .path.path}}`, `{{normalize .path.path}}`.
    #[test]
    fn git_path_parameters_are_nested_and_sprig_builds_them_too() {
        let p = json!({ "path": { "path": "applicationset/examples/cluster-addons/Argo_Workflows",
            "basename": "Argo_Workflows", "basenameNormalized": "argo-workflows",
            "segments": ["applicationset", "examples", "cluster-addons", "Argo_Workflows"] } });
        assert_eq!(render("{{.path.basename}}", p.clone()).unwrap(), "Argo_Workflows");
        assert_eq!(render("{{index .path.segments 1}}", p.clone()).unwrap(), "examples");
        assert_eq!(render("{{base .path.path}}", p.clone()).unwrap(), "Argo_Workflows");
        assert_eq!(
            render("{{normalize .path.path}}", p.clone()).unwrap(),
            "applicationset-examples-cluster-addons-argo-workflows"
        );
        assert_eq!(render("{{ .path.basename | normalize }}", p).unwrap(), "argo-workflows");
    }

    /// The "Go Template" page's cluster migration: `{{ index .metadata.labels "my-label" }}`.
    #[test]
    fn labels_with_dashes_are_read_with_index() {
        let p = json!({ "metadata": { "labels": { "my-label": "blue" }, "annotations": { "my/annotation": "x" } } });
        assert_eq!(render(r#"{{ index .metadata.labels "my-label" }}"#, p.clone()).unwrap(), "blue");
        assert_eq!(render(r#"{{ index .metadata.annotations "my/annotation" }}"#, p).unwrap(), "x");
    }

    /// The "Go Template" page's fallback example: `{{.cluster}}{{dig "nameSuffix" "" .}}`.
    #[test]
    fn dig_gives_the_default_for_a_missing_key_even_under_missingkey_error() {
        let t = r#"{{.cluster}}{{dig "nameSuffix" "" .}}"#;
        assert_eq!(strict(t, json!({ "cluster": "engineering-dev" })).unwrap(), "engineering-dev");
        assert_eq!(
            strict(t, json!({ "cluster": "engineering-prod", "nameSuffix": "-my-name-suffix" })).unwrap(),
            "engineering-prod-my-name-suffix"
        );
        assert_eq!(render(r#"{{ dig "a" "b" "none" . }}"#, json!({ "a": { "b": "deep" } })).unwrap(), "deep");
    }

    #[test]
    fn default_replaces_an_empty_or_missing_value() {
        let p = json!({ "values": { "foo": "", "bar": "set" } });
        assert_eq!(render(r#"{{ default "x" .values.foo }}"#, p.clone()).unwrap(), "x");
        assert_eq!(render(r#"{{ default "x" .values.bar }}"#, p.clone()).unwrap(), "set");
        assert_eq!(render(r#"{{ default "x" .values.missing }}"#, p.clone()).unwrap(), "x");
        assert_eq!(render(r#"{{ .values.foo | default "piped" }}"#, p).unwrap(), "piped");
    }

    /// Argo CD's utils_test "lookup missing value with missingkey=default" and "=error".
    #[test]
    fn a_missing_key_renders_no_value_by_default_and_is_an_error_naming_it_under_missingkey_error() {
        let p = json!({ "unused": "this is not used" });
        assert_eq!(render("--> {{.doesnotexist}} <--", p.clone()).unwrap(), "--> <no value> <--");
        let err = strict("--> {{.doesnotexist}} <--", p).unwrap_err();
        assert!(err.contains("doesnotexist"), "{err}");
        assert!(err.starts_with("failed to execute go template"), "{err}");
    }

    #[test]
    fn options_parse_missingkey_and_refuse_unknown_ones() {
        let parse = |o: &[&str]| Options::parse(&o.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(parse(&[]).unwrap().missing_key, MissingKey::Default);
        assert_eq!(parse(&["missingkey=error"]).unwrap().missing_key, MissingKey::Error);
        assert_eq!(parse(&["missingkey=invalid"]).unwrap().missing_key, MissingKey::Default);
        assert_eq!(parse(&["missingkey=zero"]).unwrap().missing_key, MissingKey::Zero);
        let err = parse(&["missingkey=maybe"]).unwrap_err();
        assert!(err.to_string().contains("missingkey=maybe"), "{err}");
    }

    /// Argo CD's utils_test: depth, multiple depth, if ok / if not ok, loop, Index, quote.
    #[test]
    fn argo_cd_go_template_cases_render_as_in_argo_cd() {
        let p = json!({ "replicas": 3, "image": { "name": "busybox", "version": "latest" },
            "hpa": { "enabled": true, "minReplicas": 1, "maxReplicas": 5 },
            "volumes": [{ "name": "volume-one", "emptyDir": {} }, { "name": "volume-two", "emptyDir": {} }],
            "admin": { "admin-ca": "value admin ca", "admin-jks": "value admin jks" }, "quote": "\"" });
        let cases = [
            ("{{ .image.version }}", "latest"),
            ("{{ .image.name }}:{{ .image.version }}", "busybox:latest"),
            ("{{ if .hpa.enabled }}{{ .hpa.maxReplicas }}{{ else }}{{ .replicas }}{{ end }}", "5"),
            ("{{ range .volumes }}[{{ .name }}]{{ end }}", "[volume-one][volume-two]"),
            (
                r#"{{ index .admin "admin-ca" }}, {{ index .admin "admin-jks" }}"#,
                "value admin ca, value admin jks",
            ),
            ("{{.quote}}", "\""),
            ("{{ .one }}", "<no value>"),
        ];
        for (template, expected) in cases {
            assert_eq!(render(template, p.clone()).unwrap(), expected, "{template}");
        }
        let off = json!({ "replicas": 3, "hpa": { "enabled": false, "maxReplicas": 5 } });
        assert_eq!(
            render("{{ if .hpa.enabled }}{{ .hpa.maxReplicas }}{{ else }}{{ .replicas }}{{ end }}", off)
                .unwrap(),
            "3"
        );
    }

    /// Argo CD's utils_test "template contains itself": a parameter's text is never templated again.
    #[test]
    fn parameter_values_are_inserted_not_templated() {
        assert_eq!(render("{{ .one }}", json!({ "one": "{{two}}" })).unwrap(), "{{two}}");
    }

    /// Argo CD's utils_test "Test Parse Error" and "Test template error".
    #[test]
    fn an_unknown_function_and_a_field_of_a_string_are_errors() {
        // Go refuses an unknown function when parsing, gotmpl when executing: an error either way.
        let err = render("{{functiondoesnotexist}}", json!({ "data": "a data string" })).unwrap_err();
        assert!(err.contains("undefined function: functiondoesnotexist"), "{err}");
        let err = render("{{.data.test}}", json!({ "data": "a data string" })).unwrap_err();
        assert!(err.starts_with("failed to execute go template"), "{err}");
    }

    #[test]
    fn env_expandenv_and_get_host_by_name_are_not_defined() {
        for template in
            [r#"{{ env "HOME" }}"#, r#"{{ expandenv "$HOME" }}"#, r#"{{ getHostByName "localhost" }}"#]
        {
            let err = render(template, json!({ "a": 1 })).unwrap_err();
            assert!(err.contains("undefined function"), "{template}: {err}");
        }
    }

    /// Argo CD's utils_test "toYaml", "fromYaml", "fromYamlArray" and their errors.
    #[test]
    fn yaml_functions_round_trip_and_refuse_the_wrong_shape() {
        let p = json!({ "foo": { "bar": { "bool": true, "number": 2, "str": "Hello world" } } });
        assert_eq!(
            render("{{ toYaml . | indent 2 }}", p).unwrap(),
            "  foo:\n    bar:\n      bool: true\n      number: 2\n      str: Hello world"
        );
        assert_eq!(
            render(r#"{{ get (fromYaml .value) "hello" }}"#, json!({ "value": "hello: world" })).unwrap(),
            "world"
        );
        let bad = json!({ "value": "non\n compliant\n yaml" });
        assert!(
            render(r#"{{ get (fromYaml .value) "hello" }}"#, bad.clone()).unwrap_err().contains("fromYaml")
        );
        let list = json!({ "value": "- hello world\n- bonjour tout le monde" });
        assert_eq!(render("{{ fromYamlArray .value | last }}", list).unwrap(), "bonjour tout le monde");
        assert!(render("{{ fromYamlArray .value | last }}", bad).is_err());
    }

    /// The "Template" page's templatePatch advice: piping input to `toJson` quotes it safely.
    #[test]
    fn to_json_quotes_and_escapes_like_go() {
        let p = json!({ "s": "a\"b\n<c>&", "list": ["x", 1, true], "m": { "k": null } });
        assert_eq!(render("{{ toJson .s }}", p.clone()).unwrap(), r#""a\"b\n\u003cc\u003e\u0026""#);
        assert_eq!(render("{{ toRawJson .s }}", p.clone()).unwrap(), r#""a\"b\n<c>&""#);
        assert_eq!(render("{{ toJson .list }}", p.clone()).unwrap(), r#"["x",1,true]"#);
        assert_eq!(render("{{ toJson .m }}", p.clone()).unwrap(), r#"{"k":null}"#);
        assert_eq!(render(r#"{{ (fromJson "{\"a\":[1,2]}").a | len }}"#, p).unwrap(), "2");
    }

    /// The "Go Template" page's slugify example and gosimple/slug's smart truncation.
    #[test]
    fn slugify_normalizes_and_truncates_at_a_word_boundary() {
        let p = json!({ "branch": "feature/JIRA-1234_Add.the_new-Login.page for the mobile app v2" });
        assert_eq!(
            render("{{ cat .branch | slugify }}", p.clone()).unwrap(),
            "feature-jira-1234-add-the-new-login-page-for-the"
        );
        assert_eq!(render("{{ cat .branch | slugify 23 }}", p.clone()).unwrap(), "feature-jira-1234-add");
        assert_eq!(
            render("{{ cat .branch | slugify 23 false }}", p.clone()).unwrap(),
            "feature-jira-1234-add-t"
        );
        assert_eq!(render(r#"{{ slugify "Hello World" }}"#, p).unwrap(), "hello-world");
    }

    #[test]
    fn sprig_string_functions_follow_their_argument_order() {
        let p = json!({ "name": "  My App  ", "env": "prod" });
        let cases = [
            ("{{ .name | trim | lower }}", "my app"),
            ("{{ .env | upper }}", "PROD"),
            (r#"{{ .env | replace "o" "0" }}"#, "pr0d"),
            ("{{ .env | trunc 2 }}", "pr"),
            ("{{ .env | trunc -2 }}", "od"),
            ("{{ .env | quote }}", "\"prod\""),
            ("{{ .env | squote }}", "'prod'"),
            (r#"{{ .env | hasPrefix "pr" }}"#, "true"),
            (r#"{{ .env | hasSuffix "x" }}"#, "false"),
            (r#"{{ .env | contains "ro" }}"#, "true"),
            (r#"{{ join "," (list "a" "b" "c") }}"#, "a,b,c"),
            (r#"{{ (split "/" "apps/web/prod")._1 }}"#, "web"),
            (r#"{{ splitList "/" "apps/web" | last }}"#, "web"),
            (r#"{{ printf "%s-%d" .env 3 }}"#, "prod-3"),
            (r#"{{ cat "a" .env "b" }}"#, "a prod b"),
            (r#"{{ .env | title }}"#, "Prod"),
            (r#"{{ "a\nb" | indent 2 }}"#, "  a\n  b"),
            (r#"{{ "apps/web.yaml" | ext }}"#, ".yaml"),
            (r#"{{ "apps/web/" | dir }}"#, "apps/web"),
            (r#"{{ regexReplaceAll "[0-9]+" "v12-rc3" "N" }}"#, "vN-rcN"),
            (r#"{{ "hello" | b64enc }}"#, "aGVsbG8="),
            (r#"{{ "aGVsbG8=" | b64dec }}"#, "hello"),
        ];
        for (template, expected) in cases {
            assert_eq!(render(template, p.clone()).unwrap(), expected, "{template}");
        }
    }

    #[test]
    fn sprig_lists_dicts_and_numbers_work_together() {
        let p = json!({ "n": 3, "s": "7", "m": { "a": 1, "b": { "c": 2 } } });
        let cases = [
            ("{{ add .n 2 }}", "5"),
            ("{{ add1 .n }}", "4"),
            ("{{ sub .n 1 }}", "2"),
            ("{{ mul .n 2 }}", "6"),
            ("{{ div 7 2 }}", "3"),
            ("{{ mod 7 2 }}", "1"),
            ("{{ int .s | add 1 }}", "8"),
            ("{{ max 1 .n 2 }}", "3"),
            ("{{ toString .n }}", "3"),
            (r#"{{ $d := dict "k" "v" }}{{ $d.k }}"#, "v"),
            (r#"{{ get .m "a" }}"#, "1"),
            (r#"{{ hasKey .m "b" }}"#, "true"),
            ("{{ keys .m | join \",\" }}", "a,b"),
            (r#"{{ (set (dict) "x" "y").x }}"#, "y"),
            (r#"{{ (merge (dict "a" 9) .m).a }}"#, "9"),
            (r#"{{ (mergeOverwrite (dict "a" 9) .m).a }}"#, "1"),
            (r#"{{ list 1 2 2 3 | uniq | len }}"#, "3"),
            (r#"{{ list "a" "b" | first }}"#, "a"),
            (r#"{{ has "b" (list "a" "b") }}"#, "true"),
            (r#"{{ until 3 | toJson }}"#, "[0,1,2]"),
            (r#"{{ ternary "yes" "no" true }}"#, "yes"),
            (r#"{{ coalesce "" .missing "c" }}"#, "c"),
            (r#"{{ empty "" }}"#, "true"),
            (r#"{{ kindOf .m }}"#, "map"),
        ];
        for (template, expected) in cases {
            assert_eq!(render(template, p.clone()).unwrap(), expected, "{template}");
        }
        assert!(render("{{ div 1 0 }}", p).unwrap_err().contains("divide by zero"));
    }

    #[test]
    fn text_without_actions_is_returned_untouched() {
        assert_eq!(render("plain } text {", json!({ "a": 1 })).unwrap(), "plain } text {");
    }

    #[test]
    fn keys_and_values_of_objects_are_rendered_and_errors_name_the_field() {
        let renderer =
            Renderer::new(&params(json!({ "key": "some-key", "value": "some-value" })), Options::default())
                .unwrap();
        let value = json!({ "annotations": { "annotation-{{ .key }}": "annotation-{{ .value }}" }, "n": 2 });
        let rendered = renderer.render_value(&value, "metadata").unwrap();
        assert_eq!(
            rendered,
            json!({ "annotations": { "annotation-some-key": "annotation-some-value" }, "n": 2 })
        );
        let bad = json!({ "sources": [{ "path": "{{ .key" }] });
        let err = renderer.render_value(&bad, "spec").unwrap_err();
        assert!(err.to_string().starts_with("template spec.sources[0].path:"), "{err}");
    }

    #[test]
    fn hostile_templates_give_errors_not_panics() {
        let p = json!({ "a": "x", "l": [1] });
        let hostile = [
            "{{ .a ".to_string(),
            "{{".to_string(),
            "{{ (((( }}".to_string(),
            format!("{{{{ {}1{} }}}}", "(".repeat(10_000), ")".repeat(10_000)),
            "{{ if 1 }}".repeat(10_000) + &"{{ end }}".repeat(10_000),
            r#"{{ define "a" }}{{ template "a" . }}{{ end }}{{ template "a" . }}"#.to_string(),
            r#"{{ repeat 1000000000 "x" }}"#.to_string(),
            r#"{{ until 1000000000 }}"#.to_string(),
            r#"{{ indent 1000000000 "x" }}"#.to_string(),
            "{{ index .l 5 }}".to_string(),
            r#"{{ regexMatch "(" "x" }}"#.to_string(),
            r#"{{ slugify 1 2 3 4 }}"#.to_string(),
            r#"{{ substr 5 2 "abc" }}"#.to_string(),
            "x".repeat(MAX_TEMPLATE_BYTES) + "{{ .a }}",
        ];
        for template in hostile {
            let shown: String = template.chars().take(60).collect();
            assert!(render(&template, p.clone()).is_err(), "{shown} should be an error");
        }
    }

    #[test]
    fn go_path_helpers_match_go() {
        assert_eq!(path_clean("a//b/../c/."), "a/c");
        assert_eq!(path_clean("/../x"), "/x");
        assert_eq!(path_clean(""), ".");
        assert_eq!(path_base("a/b/"), "b");
        assert_eq!(path_base("/"), "/");
        assert_eq!(path_dir("a/b"), "a");
        assert_eq!(path_dir("b"), ".");
        assert_eq!(path_ext("a.b/c"), "");
    }

    #[test]
    fn go_quote_escapes_like_strconv_quote() {
        assert_eq!(go_quote("a\"b\\c\n\t\u{1}é"), "\"a\\\"b\\\\c\\n\\t\\x01é\"");
    }
}
