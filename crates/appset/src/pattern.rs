//! The three path-pattern dialects of Argo CD's git generator, each matched as its Go original does:
//! - [`Dialect::GoPath`]: Go's `path.Match`, for `directories` (`*` and `?` stay within one segment,
//!   `[…]` classes negated by `^`, `\` escapes);
//! - [`Dialect::GitPathspec`]: git's pathspec, for `files` by default (`*` and `?` cross `/`, so
//!   `some-path/*.yaml` finds YAML files at any depth; a pattern without wildcard names a file or a
//!   folder and everything under it);
//! - [`Dialect::DoubleStar`]: the `doublestar` library, for `files` with
//!   `applicationset.enable.new.git.file.globbing` (`*` within a segment, `**` across segments,
//!   `{a,b}` alternatives, classes negated by `!` or `^`).
//!
//! berth's other globs (the repo crate's `manifest-generate-paths`, the controller's project globs)
//! follow other rules, so this crate does not share them. Matching is a table over pattern × path,
//! linear in each: a hostile pattern cannot make it exponential.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dialect {
    GoPath,
    GitPathspec,
    DoubleStar,
}

/// At most this many alternatives come out of a pattern's `{…}` groups.
const MAX_ALTERNATIVES: usize = 256;

#[derive(Debug)]
enum Token {
    Char(char),
    /// `?`: one character (not `/` unless the dialect crosses segments).
    One,
    /// `*`: any run of characters (not `/` unless the dialect crosses segments).
    Star,
    /// doublestar's `**/`: nothing, or any run of whole segments each followed by `/`.
    Segments,
    /// doublestar's trailing `**`: anything.
    Rest,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

/// A compiled pattern: one token list per `{…}` alternative.
#[derive(Debug)]
pub(crate) struct Pattern {
    dialect: Dialect,
    literal: Option<String>,
    alternatives: Vec<Vec<Token>>,
}

impl Pattern {
    /// `pattern` compiled in `dialect`; the error says what is malformed.
    pub(crate) fn new(pattern: &str, dialect: Dialect) -> Result<Pattern, String> {
        if dialect == Dialect::GitPathspec && !pattern.contains(['*', '?', '[', '\\']) {
            let literal = pattern.trim_end_matches('/').to_string();
            return Ok(Pattern { dialect, literal: Some(literal), alternatives: Vec::new() });
        }
        let expanded =
            if dialect == Dialect::DoubleStar { expand_braces(pattern)? } else { vec![pattern.to_string()] };
        let alternatives = expanded.iter().map(|p| tokenize(p, dialect)).collect::<Result<_, _>>()?;
        Ok(Pattern { dialect, literal: None, alternatives })
    }

    pub(crate) fn matches(&self, path: &str) -> bool {
        if let Some(literal) = &self.literal {
            return literal.is_empty()
                || path == literal
                || path.strip_prefix(literal.as_str()).is_some_and(|rest| rest.starts_with('/'));
        }
        let text: Vec<char> = path.chars().collect();
        let crosses = self.dialect == Dialect::GitPathspec;
        self.alternatives.iter().any(|tokens| matches(tokens, &text, crosses))
    }
}

fn tokenize(pattern: &str, dialect: Dialect) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '*' if dialect == Dialect::DoubleStar && chars.get(i + 1) == Some(&'*') => {
                let segment_start = i == 0 || chars[i - 1] == '/';
                let mut end = i;
                while chars.get(end) == Some(&'*') {
                    end += 1;
                }
                match chars.get(end) {
                    Some('/') if segment_start => {
                        tokens.push(Token::Segments);
                        end += 1;
                    }
                    None if segment_start => tokens.push(Token::Rest),
                    _ => tokens.push(Token::Star),
                }
                i = end;
                continue;
            }
            '*' => {
                // Consecutive stars match what one does.
                if !matches!(tokens.last(), Some(Token::Star)) {
                    tokens.push(Token::Star);
                }
            }
            '?' => tokens.push(Token::One),
            '\\' => {
                i += 1;
                let escaped = chars.get(i).ok_or("a trailing `\\` escapes nothing")?;
                tokens.push(Token::Char(*escaped));
            }
            '[' => {
                let (token, next) = class(&chars, i + 1, dialect)?;
                tokens.push(token);
                i = next;
                continue;
            }
            c => tokens.push(Token::Char(c)),
        }
        i += 1;
    }
    Ok(tokens)
}

/// The class starting after `[` at `start`; the token and the index after its `]`.
fn class(chars: &[char], start: usize, dialect: Dialect) -> Result<(Token, usize), String> {
    let mut i = start;
    let negated = match chars.get(i) {
        Some('^') => true,
        Some('!') if dialect != Dialect::GoPath => true,
        _ => false,
    };
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    loop {
        let unclosed = || "a `[` class has no closing `]`".to_string();
        match chars.get(i) {
            None => return Err(unclosed()),
            Some(']') if !ranges.is_empty() => return Ok((Token::Class { negated, ranges }, i + 1)),
            Some(']') => return Err("a `[]` class is empty".to_string()),
            _ => {}
        }
        let low = class_char(chars, &mut i)?;
        let high = if chars.get(i) == Some(&'-') && chars.get(i + 1).is_some_and(|c| *c != ']') {
            i += 1;
            class_char(chars, &mut i)?
        } else {
            low
        };
        ranges.push((low, high));
    }
}

fn class_char(chars: &[char], i: &mut usize) -> Result<char, String> {
    let c = match chars.get(*i) {
        Some('\\') => {
            *i += 1;
            *chars.get(*i).ok_or("a trailing `\\` escapes nothing")?
        }
        Some(c) => *c,
        None => return Err("a `[` class has no closing `]`".to_string()),
    };
    *i += 1;
    Ok(c)
}

/// doublestar's `{a,b}` groups as the list of patterns they stand for.
fn expand_braces(pattern: &str) -> Result<Vec<String>, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut open = None;
    let mut depth = 0usize;
    let mut commas = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 1,
            '{' => {
                if depth == 0 {
                    open = Some(i);
                    commas.clear();
                }
                depth += 1;
            }
            ',' if depth == 1 => commas.push(i),
            '}' if depth > 0 => {
                depth -= 1;
                if depth == 0 {
                    let start = open.unwrap_or_default();
                    let prefix: String = chars[..start].iter().collect();
                    let suffix: String = chars[i + 1..].iter().collect();
                    let mut bounds = vec![start];
                    bounds.extend(&commas);
                    bounds.push(i);
                    let mut out = Vec::new();
                    for pair in bounds.windows(2) {
                        let choice: String = chars[pair[0] + 1..pair[1]].iter().collect();
                        for expanded in expand_braces(&format!("{prefix}{choice}{suffix}"))? {
                            out.push(expanded);
                            if out.len() > MAX_ALTERNATIVES {
                                return Err(format!("more than {MAX_ALTERNATIVES} `{{…}}` alternatives"));
                            }
                        }
                    }
                    return Ok(out);
                }
            }
            _ => {}
        }
        i += 1;
    }
    if depth > 0 {
        return Err("a `{` group has no closing `}`".to_string());
    }
    Ok(vec![pattern.to_string()])
}

/// Whether `tokens` match all of `text`: `next[j]` says whether the tokens after the current one match
/// `text[j..]`, computed from the last token back.
fn matches(tokens: &[Token], text: &[char], crosses: bool) -> bool {
    let m = text.len();
    let mut next = vec![false; m + 1];
    next[m] = true;
    for token in tokens.iter().rev() {
        let mut row = vec![false; m + 1];
        match token {
            Token::Star => {
                row[m] = next[m];
                for j in (0..m).rev() {
                    row[j] = next[j] || ((crosses || text[j] != '/') && row[j + 1]);
                }
            }
            Token::Rest => {
                row[m] = next[m];
                for j in (0..m).rev() {
                    row[j] = next[j] || row[j + 1];
                }
            }
            Token::Segments => {
                // Nothing, or any run ending in `/` followed by a match of the rest.
                let mut later = false;
                row[m] = next[m];
                for j in (0..m).rev() {
                    later |= text[j] == '/' && next[j + 1];
                    row[j] = next[j] || later;
                }
            }
            single => {
                for (j, c) in text.iter().enumerate() {
                    row[j] = next[j + 1] && matches_one(single, *c, crosses);
                }
            }
        }
        next = row;
    }
    next[0]
}

fn matches_one(token: &Token, c: char, crosses: bool) -> bool {
    match token {
        Token::Char(expected) => *expected == c,
        Token::One => crosses || c != '/',
        Token::Class { negated, ranges } => {
            ranges.iter().any(|(low, high)| (*low..=*high).contains(&c)) != *negated
        }
        Token::Star | Token::Rest | Token::Segments => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn is_match(pattern: &str, path: &str, dialect: Dialect) -> bool {
        Pattern::new(pattern, dialect).expect("a valid pattern").matches(path)
    }

    /// Cases from Go's `path.Match` documentation and Argo CD's "Generators Git" page (`/d/[f|g]`).
    #[test]
    fn go_path_match_stays_within_segments() {
        let go = Dialect::GoPath;
        assert!(is_match("abc", "abc", go));
        assert!(is_match("*", "abc", go));
        assert!(!is_match("*", "a/b", go));
        assert!(is_match("*c", "abc", go));
        assert!(is_match("a*/b", "abc/b", go));
        assert!(!is_match("a*/b", "a/c/b", go));
        assert!(is_match("a*b*c*d*e*/f", "axbxcxdxe/f", go));
        assert!(!is_match("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", go));
        assert!(is_match("ab[c]", "abc", go));
        assert!(is_match("ab[b-d]", "abc", go));
        assert!(!is_match("ab[^c]", "abc", go));
        assert!(is_match("ab[^e-g]", "abc", go));
        assert!(is_match("a\\*b", "a*b", go));
        assert!(!is_match("a\\*b", "ab", go));
        assert!(is_match("a?b", "a☺b", go));
        assert!(!is_match("a?b", "a/b", go));
        assert!(is_match("d/[f|g]", "d/f", go));
        assert!(is_match("d/[f|g]", "d/g", go));
        assert!(!is_match("d/[f|g]", "d/e", go));
        assert!(!is_match("[!a]", "b", go), "Go negates with `^` only");
    }

    #[test]
    fn malformed_patterns_are_errors() {
        for bad in ["[", "a[", "[]a]", "ab\\", "[a-", "[x-]\\"] {
            assert!(Pattern::new(bad, Dialect::GoPath).is_err(), "{bad:?}");
        }
        assert!(Pattern::new("a{b,c", Dialect::DoubleStar).is_err());
    }

    /// Argo CD's "Git File Generator Globbing" page: the default globbing is greedy.
    #[test]
    fn git_pathspecs_cross_folders() {
        let git = Dialect::GitPathspec;
        assert!(is_match(
            "cluster-charts/*/*/values.yaml",
            "cluster-charts/cluster1/mychart/values.yaml",
            git
        ));
        assert!(is_match(
            "cluster-charts/*/*/values.yaml",
            "cluster-charts/cluster1/mychart/charts/mysubchart/values.yaml",
            git
        ));
        assert!(is_match("some-path/*.yaml", "some-path/deep/down/x.yaml", git));
        assert!(is_match("cluster-config/**/config.json", "cluster-config/engineering/dev/config.json", git));
        assert!(is_match("apps/config.json", "apps/config.json", git));
        assert!(is_match("apps", "apps/web/config.json", git), "a plain pathspec names a folder too");
        assert!(!is_match("apps", "apps2/config.json", git));
    }

    /// Argo CD's "Git File Generator Globbing" page: the new globbing matches segment by segment.
    #[test]
    fn doublestar_globbing_matches_segments_and_double_stars_span_them() {
        let ds = Dialect::DoubleStar;
        assert!(is_match(
            "cluster-charts/*/*/values.yaml",
            "cluster-charts/cluster1/mychart/values.yaml",
            ds
        ));
        assert!(!is_match(
            "cluster-charts/*/*/values.yaml",
            "cluster-charts/cluster1/mychart/charts/mysubchart/values.yaml",
            ds
        ));
        assert!(!is_match("some-path/*.yaml", "some-path/deep/x.yaml", ds));
        assert!(is_match("a/**/config.json", "a/config.json", ds));
        assert!(is_match("a/**/config.json", "a/b/c/config.json", ds));
        assert!(is_match("a/**", "a/b/c", ds));
        assert!(is_match("**/*.json", "x.json", ds));
        assert!(is_match("envs/{prod,staging}/*.yaml", "envs/staging/a.yaml", ds));
        assert!(!is_match("envs/{prod,staging}/*.yaml", "envs/dev/a.yaml", ds));
        assert!(is_match("[!a]*", "b", ds));
    }

    proptest! {
        /// Any pattern compiles or errors, and any path then matches or not, without a panic.
        #[test]
        fn hostile_patterns_never_panic(pattern in "[a*?\\[\\]{},/\\\\^!-]{0,24}", path in "[a/b]{0,24}") {
            for dialect in [Dialect::GoPath, Dialect::GitPathspec, Dialect::DoubleStar] {
                if let Ok(compiled) = Pattern::new(&pattern, dialect) {
                    let _ = compiled.matches(&path);
                }
            }
        }

        /// A pattern without wildcards matches exactly itself in Go's dialect.
        #[test]
        fn a_literal_go_pattern_matches_only_itself(pattern in "[a-c/]{0,8}", path in "[a-c/]{0,8}") {
            prop_assert_eq!(is_match(&pattern, &path, Dialect::GoPath), pattern == path);
        }
    }
}
