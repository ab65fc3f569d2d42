//! Argo CD's default template syntax, fasttemplate: `{{name}}` or `{{ name }}` is replaced by the flat
//! parameter `name`. As Argo CD does it:
//! - a tag naming no parameter (or an empty tag) is left as written, spaces included;
//! - a string with no `{{…}}` on one line is returned untouched, whatever else it holds;
//! - otherwise every `{{` needs a closing `}}`, or the string is an error (fasttemplate's
//!   "Cannot find end tag"); an unclosed `{{` alone on its line is kept as text;
//! - replacements are inserted as they are, never templated again.
//!
//! ```
//! use berth_appset::template::fast::render_str;
//! let params = [("cluster".to_string(), "prod".to_string())].into();
//! assert_eq!(render_str("web-{{cluster}}-{{ cluster }}", &params).unwrap(), "web-prod-prod");
//! assert_eq!(render_str("{{unknown}} {{}}", &params).unwrap(), "{{unknown}} {{}}");
//! assert!(render_str("{{cluster}} {{oops", &params).is_err());
//! ```

use serde_json::{Map, Value};
use std::collections::BTreeMap;

use crate::Error;

const START: &str = "{{";
const END: &str = "}}";

/// `template` with its tags replaced by `params`; the error says where an unclosed `{{` starts.
pub fn render_str(template: &str, params: &BTreeMap<String, String>) -> Result<String, String> {
    if !has_tag_on_one_line(template) {
        return Ok(template.to_string());
    }
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find(START) {
        out.push_str(&rest[..start]);
        let after = &rest[start + START.len()..];
        let Some(end) = after.find(END) else {
            let at = template.len() - rest.len() + start;
            return Err(format!("`{{{{` at byte {at} has no closing `}}}}`"));
        };
        let tag = &after[..end];
        let name = tag.trim();
        match params.get(name) {
            Some(value) if !name.is_empty() => out.push_str(value),
            _ => {
                out.push_str(START);
                out.push_str(tag);
                out.push_str(END);
            }
        }
        rest = &after[end + END.len()..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Argo CD's guard `.*{{.*}}.*`: a `{{` followed by `}}` on the same line.
fn has_tag_on_one_line(text: &str) -> bool {
    text.split('\n').any(|line| line.find(START).is_some_and(|at| line[at + START.len()..].contains(END)))
}

/// Every string of `value` rendered with `params`, object keys included (Argo CD templates map keys,
/// e.g. a label's name); numbers, booleans and nulls stay as they are. `field` names `value` in errors.
pub fn render_value(value: &Value, params: &BTreeMap<String, String>, field: &str) -> Result<Value, Error> {
    let error = |field: String, message: String| Error::Template { field, message };
    Ok(match value {
        Value::String(text) => {
            Value::String(render_str(text, params).map_err(|m| error(field.to_string(), m))?)
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(index, item)| render_value(item, params, &format!("{field}[{index}]")))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(object) => {
            let mut rendered = Map::with_capacity(object.len());
            for (key, item) in object {
                let child = if field.is_empty() { key.clone() } else { format!("{field}.{key}") };
                let key = render_str(key, params).map_err(|m| error(format!("{child} (key)"), m))?;
                rendered.insert(key, render_value(item, params, &child)?);
            }
            Value::Object(rendered)
        }
        scalar => scalar.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    /// Argo CD's "Template" page: `'{{cluster}}-guestbook'` and `guestbook/{{cluster}}`.
    #[test]
    fn tags_with_and_without_spaces_are_replaced() {
        let p = params(&[("cluster", "engineering-dev"), ("path.basename", "guestbook")]);
        assert_eq!(render_str("{{cluster}}-guestbook", &p).unwrap(), "engineering-dev-guestbook");
        assert_eq!(render_str("guestbook/{{ cluster }}", &p).unwrap(), "guestbook/engineering-dev");
        assert_eq!(render_str("{{path.basename}}", &p).unwrap(), "guestbook");
    }

    #[test]
    fn unknown_and_empty_tags_are_left_as_written() {
        let p = params(&[("a", "1")]);
        assert_eq!(render_str("{{ b }}-{{a}}-{{}}-{{  }}", &p).unwrap(), "{{ b }}-1-{{}}-{{  }}");
    }

    #[test]
    fn replacements_are_not_templated_again() {
        let p = params(&[("a", "{{b}}"), ("b", "x")]);
        assert_eq!(render_str("{{a}}", &p).unwrap(), "{{b}}");
    }

    #[test]
    fn an_unclosed_tag_after_a_tag_is_an_error_alone_it_is_text() {
        let p = params(&[("a", "1")]);
        assert!(render_str("{{a}} and {{b", &p).unwrap_err().contains("no closing"));
        assert_eq!(render_str("{{b", &p).unwrap(), "{{b");
        assert_eq!(render_str("{{a\n}}", &p).unwrap(), "{{a\n}}", "the guard looks at one line at a time");
    }

    #[test]
    fn a_tag_spanning_lines_is_replaced_when_another_line_has_a_tag() {
        let p = params(&[("a", "1")]);
        assert_eq!(render_str("{{a}}\n{{ a\n}}", &p).unwrap(), "1\n1");
    }

    #[test]
    fn object_keys_are_templated_and_errors_name_the_field() {
        let p = params(&[("env", "prod")]);
        let value = json!({ "labels": { "team-{{env}}": "{{env}}" }, "n": 3, "b": true, "z": null });
        let rendered = render_value(&value, &p, "").unwrap();
        assert_eq!(rendered, json!({ "labels": { "team-prod": "prod" }, "n": 3, "b": true, "z": null }));
        let bad = json!({ "spec": { "sources": [{ "path": "{{env}}/{{x" }] } });
        let err = render_value(&bad, &p, "").unwrap_err();
        assert!(err.to_string().starts_with("template spec.sources[0].path:"), "{err}");
    }

    proptest! {
        /// Without parameters every tag names nothing, so rendering leaves any well-formed text as is.
        #[test]
        fn rendering_with_no_params_is_identity(text in "[a-z{} .\n]{0,40}") {
            if let Ok(rendered) = render_str(&text, &BTreeMap::new()) {
                prop_assert_eq!(rendered, text);
            }
        }

        /// Hostile text never panics: it renders or gives an error.
        #[test]
        fn any_text_renders_or_errors_without_panicking(text in "\\PC{0,64}", value in "\\PC{0,8}") {
            let p = params(&[("a", value.as_str())]);
            let _ = render_str(&text, &p);
        }

        /// A string without `{{` is returned unchanged whatever the parameters.
        #[test]
        fn text_without_tags_is_untouched(text in "[^{]{0,40}", value in "[a-z]{0,8}") {
            prop_assert_eq!(render_str(&text, &params(&[("a", value.as_str())])).unwrap(), text);
        }
    }
}
