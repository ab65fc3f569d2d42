//! The pattern language of RBAC policy fields, as Argo CD's default `glob` match mode reads it.
//!
//! `*` matches any run of characters, `/` included (a field has no separators), `?` one character,
//! `[a-z]` / `[!a-z]` one character in or out of a class, `{a,b*}` any of the alternatives, and `\`
//! takes the next character literally. Patterns are compiled once, when the policy is loaded.

use std::str::Chars;

/// More alternatives than this (`{a,b}{c,d}…` multiplies) is refused rather than expanded.
const MAX_ALTERNATIVES: usize = 256;

/// A compiled pattern; the common shapes skip the general matcher.
#[derive(Clone, Debug)]
pub(crate) enum Glob {
    /// `*`: matches every value.
    Any,
    Exact(Box<str>),
    /// `literal*`
    Prefix(Box<str>),
    /// `*literal`
    Suffix(Box<str>),
    /// One token sequence per alternative; the value must match one of them.
    Tokens(Vec<Vec<Token>>),
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Token {
    Char(char),
    AnyChar,
    Star,
    Class { negated: bool, ranges: Vec<(char, char)> },
}

impl Token {
    fn matches(&self, c: char) -> bool {
        match self {
            Token::Char(x) => *x == c,
            Token::AnyChar => true,
            Token::Star => false,
            Token::Class { negated, ranges } => ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated,
        }
    }
}

impl Glob {
    /// Compiles `pattern`; the error says what is malformed.
    pub(crate) fn compile(pattern: &str) -> Result<Glob, String> {
        let mut chars = pattern.chars();
        let (alternatives, _) = parse_sequence(&mut chars, false)?;
        let mut alternatives: Vec<Vec<Token>> = alternatives.into_iter().map(collapse_stars).collect();
        alternatives.dedup();
        if let [tokens] = alternatives.as_slice() {
            return Ok(classify(tokens));
        }
        Ok(Glob::Tokens(alternatives))
    }

    pub(crate) fn matches(&self, value: &str) -> bool {
        match self {
            Glob::Any => true,
            Glob::Exact(s) => value == &**s,
            Glob::Prefix(s) => value.starts_with(&**s),
            Glob::Suffix(s) => value.ends_with(&**s),
            Glob::Tokens(alternatives) => alternatives.iter().any(|t| match_tokens(t, value)),
        }
    }
}

fn classify(tokens: &[Token]) -> Glob {
    let literal = |ts: &[Token]| -> Option<String> {
        ts.iter()
            .map(|t| match t {
                Token::Char(c) => Some(*c),
                _ => None,
            })
            .collect()
    };
    match tokens {
        [Token::Star] => Glob::Any,
        [rest @ .., Token::Star] if literal(rest).is_some() => {
            Glob::Prefix(literal(rest).unwrap_or_default().into())
        }
        [Token::Star, rest @ ..] if literal(rest).is_some() => {
            Glob::Suffix(literal(rest).unwrap_or_default().into())
        }
        _ => match literal(tokens) {
            Some(s) => Glob::Exact(s.into()),
            None => Glob::Tokens(vec![tokens.to_vec()]),
        },
    }
}

fn collapse_stars(tokens: Vec<Token>) -> Vec<Token> {
    let mut out: Vec<Token> = Vec::with_capacity(tokens.len());
    for t in tokens {
        if t == Token::Star && out.last() == Some(&Token::Star) {
            continue;
        }
        out.push(t);
    }
    out
}

/// Parses until the end, or inside braces until `,` or `}` (returned as the terminator).
fn parse_sequence(chars: &mut Chars<'_>, in_braces: bool) -> Result<(Vec<Vec<Token>>, Option<char>), String> {
    let mut alternatives: Vec<Vec<Token>> = vec![Vec::new()];
    let push = |alternatives: &mut Vec<Vec<Token>>, token: Token| {
        for a in alternatives.iter_mut() {
            a.push(token.clone());
        }
    };
    loop {
        let Some(c) = chars.next() else {
            if in_braces {
                return Err("unclosed `{`".to_owned());
            }
            return Ok((alternatives, None));
        };
        match c {
            ',' | '}' if in_braces => return Ok((alternatives, Some(c))),
            '*' => push(&mut alternatives, Token::Star),
            '?' => push(&mut alternatives, Token::AnyChar),
            '\\' => {
                let escaped = chars.next().ok_or("`\\` at the end of the pattern")?;
                push(&mut alternatives, Token::Char(escaped));
            }
            '[' => push(&mut alternatives, parse_class(chars)?),
            '{' => {
                let mut options = Vec::new();
                loop {
                    let (option, terminator) = parse_sequence(chars, true)?;
                    options.extend(option);
                    if terminator == Some('}') {
                        break;
                    }
                }
                if alternatives.len() * options.len() > MAX_ALTERNATIVES {
                    return Err(format!("more than {MAX_ALTERNATIVES} alternatives"));
                }
                alternatives = alternatives
                    .iter()
                    .flat_map(|prefix| {
                        options.iter().map(move |option| {
                            let mut joined = prefix.clone();
                            joined.extend(option.iter().cloned());
                            joined
                        })
                    })
                    .collect();
            }
            c => push(&mut alternatives, Token::Char(c)),
        }
    }
}

/// Parses a class after its `[`.
fn parse_class(chars: &mut Chars<'_>) -> Result<Token, String> {
    let mut negated = false;
    let mut ranges = Vec::new();
    let mut first = true;
    loop {
        let c = chars.next().ok_or("unclosed `[`")?;
        match c {
            '!' if first => negated = true,
            ']' if ranges.is_empty() => return Err("empty `[]` class".to_owned()),
            ']' => return Ok(Token::Class { negated, ranges }),
            _ => {
                let lo = if c == '\\' { chars.next().ok_or("unclosed `[`")? } else { c };
                // A `-` followed by a character other than `]` makes a range.
                let mut lookahead = chars.clone();
                if lookahead.next() == Some('-')
                    && let Some(hi) = lookahead.next()
                    && hi != ']'
                {
                    chars.next();
                    chars.next();
                    if hi < lo {
                        return Err(format!("reversed range `{lo}-{hi}`"));
                    }
                    ranges.push((lo, hi));
                } else {
                    ranges.push((lo, lo));
                }
            }
        }
        first = false;
    }
}

/// Wildcard matching that backtracks only to the last `*`, which is exact here because every
/// other token consumes exactly one character.
fn match_tokens(tokens: &[Token], value: &str) -> bool {
    let (mut p, mut v) = (0usize, 0usize);
    let mut last_star: Option<(usize, usize)> = None;
    loop {
        if p < tokens.len() {
            if tokens[p] == Token::Star {
                last_star = Some((p + 1, v));
                p += 1;
                continue;
            }
            if let Some(c) = value[v..].chars().next()
                && tokens[p].matches(c)
            {
                p += 1;
                v += c.len_utf8();
                continue;
            }
        } else if v == value.len() {
            return true;
        }
        match last_star {
            Some((after_star, from)) => match value[from..].chars().next() {
                Some(c) => {
                    let next = from + c.len_utf8();
                    last_star = Some((after_star, next));
                    p = after_star;
                    v = next;
                }
                None => return false,
            },
            None => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, value: &str) -> bool {
        Glob::compile(pattern).expect("pattern compiles").matches(value)
    }

    #[test]
    fn star_matches_across_slashes() {
        assert!(m("*", ""));
        assert!(m("*", "default/guestbook"));
        assert!(m("action/extensions/*", "action/extensions/DaemonSet/test"));
        assert!(m("*/*", "a/b/c"));
        assert!(!m("*/*", "no-slash"));
    }

    #[test]
    fn exact_prefix_and_suffix_shapes_match_like_the_general_matcher() {
        assert!(m("default/guestbook", "default/guestbook"));
        assert!(!m("default/guestbook", "default/guestbook2"));
        assert!(m("default/*", "default/"));
        assert!(m("default/*", "default/x/y"));
        assert!(!m("default/*", "staging/x"));
        assert!(m("*-prod", "web-prod"));
        assert!(!m("*-prod", "web-prod-2"));
        assert!(matches!(Glob::compile("a*").unwrap(), Glob::Prefix(_)));
        assert!(matches!(Glob::compile("*a").unwrap(), Glob::Suffix(_)));
        assert!(matches!(Glob::compile("**").unwrap(), Glob::Any));
    }

    #[test]
    fn middle_stars_backtrack() {
        assert!(m("*/web-*", "team/web-frontend"));
        assert!(m("*/web-*", "team/ns/web-"));
        assert!(!m("*/web-*", "team/api"));
        assert!(m("a*b*c", "aXXbYYbc"));
        assert!(!m("a*b*c", "aXXbYYb"));
        assert!(m("delete/*/Pod/*/*", "delete//Pod/default/web-1"));
    }

    #[test]
    fn question_mark_and_classes_take_one_character() {
        assert!(m("app-?", "app-1"));
        assert!(!m("app-?", "app-12"));
        assert!(m("app-[0-9]", "app-7"));
        assert!(!m("app-[0-9]", "app-x"));
        assert!(m("app-[!0-9]", "app-x"));
        assert!(!m("app-[!0-9]", "app-7"));
        assert!(m("[ab]*", "beta"));
        assert!(m("é?", "éü"));
    }

    #[test]
    fn braces_are_alternatives_that_may_hold_wildcards() {
        assert!(m("{dev,staging}/*", "dev/a"));
        assert!(m("{dev,staging}/*", "staging/a"));
        assert!(!m("{dev,staging}/*", "prod/a"));
        assert!(m("{get,sync*}", "syncing"));
        assert!(m("x{a,{b,c}}y", "xcy"));
        assert!(m("{,pre-}app", "app"));
    }

    #[test]
    fn backslash_escapes_a_metacharacter() {
        assert!(m(r"a\*b", "a*b"));
        assert!(!m(r"a\*b", "axb"));
    }

    #[test]
    fn commas_and_braces_outside_alternatives_are_literal() {
        assert!(m("a,b}", "a,b}"));
    }

    #[test]
    fn malformed_patterns_are_refused() {
        for bad in ["[abc", "[]", "{a,b", "x\\", "[z-a]"] {
            assert!(Glob::compile(bad).is_err(), "{bad} should not compile");
        }
        assert!(Glob::compile(&"{a,b}".repeat(9)).is_err());
    }
}
