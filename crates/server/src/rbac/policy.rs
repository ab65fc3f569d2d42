//! Policy lines (`p, subject, resource, action, object, effect` and `g, member, role`) and the
//! in-memory policy they load into: rules indexed by subject, role bindings indexed by member.

use super::glob::Glob;
use std::collections::HashMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Effect {
    Allow,
    Deny,
}

/// One `p` line without its subject.
#[derive(Clone, Debug)]
pub(crate) struct Rule {
    pub(crate) resource: Glob,
    pub(crate) action: Glob,
    pub(crate) object: Glob,
    pub(crate) effect: Effect,
}

impl Rule {
    pub(crate) fn matches(&self, resource: &str, action: &str, object: &str) -> bool {
        self.resource.matches(resource) && self.action.matches(action) && self.object.matches(object)
    }
}

/// A parsed, non-blank, non-comment line.
#[derive(Debug)]
pub(crate) enum PolicyLine {
    Permission { subject: String, resource: String, object: String, rule: Rule },
    Grouping { member: String, role: String },
}

impl PolicyLine {
    /// `Ok(None)` for blank lines and `#` comments; the error is the reason the line is refused.
    pub(crate) fn parse(line: &str) -> Result<Option<PolicyLine>, String> {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return Ok(None);
        }
        let fields = split_fields(line)?;
        if let Some(i) = fields.iter().position(String::is_empty) {
            return Err(format!("field {} is empty", i + 1));
        }
        match fields[0].as_str() {
            "p" => {
                let [_, subject, resource, action, object, effect] = <[String; 6]>::try_from(fields)
                    .map_err(|f| {
                        format!(
                            "a `p` line has 6 fields (p, subject, resource, action, object, allow|deny), found {}",
                            f.len()
                        )
                    })?;
                let effect = match effect.as_str() {
                    "allow" => Effect::Allow,
                    "deny" => Effect::Deny,
                    other => return Err(format!("effect must be `allow` or `deny`, not `{other}`")),
                };
                let glob = |what: &str, pattern: &str| {
                    Glob::compile(pattern).map_err(|e| format!("{what} pattern `{pattern}`: {e}"))
                };
                let rule = Rule {
                    resource: glob("resource", &resource)?,
                    action: glob("action", &action)?,
                    object: glob("object", &object)?,
                    effect,
                };
                Ok(Some(PolicyLine::Permission { subject, resource, object, rule }))
            }
            "g" => {
                let [_, member, role] = <[String; 3]>::try_from(fields)
                    .map_err(|f| format!("a `g` line has 3 fields (g, member, role), found {}", f.len()))?;
                Ok(Some(PolicyLine::Grouping { member, role }))
            }
            other => Err(format!("a line starts with `p` or `g`, not `{other}`")),
        }
    }
}

/// Splits on commas and trims each field; a field in double quotes may hold commas (`""` is a quote).
fn split_fields(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut rest = line;
    loop {
        rest = rest.trim_start();
        let (field, after) = if let Some(quoted) = rest.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let end = loop {
                match chars.next() {
                    Some((i, '"')) if quoted[i + 1..].starts_with('"') => {
                        value.push('"');
                        chars.next();
                    }
                    Some((i, '"')) => break i + 1,
                    Some((_, c)) => value.push(c),
                    None => return Err("unterminated `\"`".to_owned()),
                }
            };
            let after = quoted[end..].trim_start();
            if !(after.is_empty() || after.starts_with(',')) {
                return Err("text after a closing `\"`".to_owned());
            }
            (value, after)
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            (rest[..end].trim().to_owned(), &rest[end..])
        };
        fields.push(field);
        match after.strip_prefix(',') {
            Some(next) => rest = next,
            None => return Ok(fields),
        }
    }
}

/// Rules and role bindings, each indexed by the subject they apply to.
#[derive(Clone, Debug, Default)]
pub(crate) struct Policy {
    rules: HashMap<String, Vec<Rule>>,
    roles: HashMap<String, Vec<String>>,
}

impl Policy {
    pub(crate) fn add_rule(&mut self, subject: String, rule: Rule) {
        self.rules.entry(subject).or_default().push(rule);
    }

    pub(crate) fn add_role(&mut self, member: String, role: String) {
        let roles = self.roles.entry(member).or_default();
        if !roles.contains(&role) {
            roles.push(role);
        }
    }

    pub(crate) fn add_line(&mut self, line: PolicyLine) {
        match line {
            PolicyLine::Permission { subject, rule, .. } => self.add_rule(subject, rule),
            PolicyLine::Grouping { member, role } => self.add_role(member, role),
        }
    }

    pub(crate) fn rules_of(&self, subject: &str) -> &[Rule] {
        self.rules.get(subject).map_or(&[], Vec::as_slice)
    }

    pub(crate) fn roles_of(&self, subject: &str) -> &[String] {
        self.roles.get(subject).map_or(&[], Vec::as_slice)
    }

    pub(crate) fn has_roles(&self) -> bool {
        !self.roles.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_trimmed_and_quotes_keep_commas() {
        assert_eq!(
            split_fields(r#"g,  "my-org:team, alpha" , role:x"#).unwrap(),
            ["g", "my-org:team, alpha", "role:x"]
        );
        assert_eq!(split_fields(r#""say ""hi""""#).unwrap(), [r#"say "hi""#]);
        assert!(split_fields(r#"g, "open, role"#).is_err());
        assert!(split_fields(r#"g, "a"b, role"#).is_err());
    }

    #[test]
    fn blank_and_comment_lines_parse_to_nothing() {
        assert!(PolicyLine::parse("   ").unwrap().is_none());
        assert!(PolicyLine::parse("  # p, x, y").unwrap().is_none());
    }

    #[test]
    fn malformed_lines_say_why() {
        let reason = |l: &str| PolicyLine::parse(l).unwrap_err();
        assert!(reason("p, alice, applications, get, */*").contains("6 fields"));
        assert!(reason("g, alice").contains("3 fields"));
        assert!(reason("x, alice, role:a").contains("starts with `p` or `g`"));
        assert!(reason("p, alice, applications, get, */*, Allow").contains("`allow` or `deny`"));
        assert!(reason("p, alice, applications, get, , allow").contains("field 5 is empty"));
        assert!(reason("p, alice, applications, get, [x, allow").contains("object pattern"));
    }
}
