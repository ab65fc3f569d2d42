//! The pull request generator, over the open pull requests the caller listed from the provider's API
//! (already narrowed by the provider's own `labels`, as the providers' APIs do): no network here.
//!
//! **Filters** (`filters`): `branchMatch` (the source branch), `targetBranchMatch` and `titleMatch`,
//! regular expressions; a filter's conditions must all hold, any one filter is enough, no filter keeps
//! every pull request.
//!
//! **Parameters**, Argo CD's names: `number`, `title`, `branch`, `branch_slug`, `target_branch`,
//! `target_branch_slug`, `head_sha`, `head_short_sha` (8 characters), `head_short_sha_7`, `author`, and
//! with goTemplate only `labels` (a list), as Argo CD does; `values` are added as `values.<key>`.
//!
//! A slug is [gosimple/slug]'s as Argo CD configures it: `_` becomes `-`, `&` `and`, `@` `at`, quotes
//! go, lower case, every other character but `a-z0-9-_` a `-`, runs of `-` one, no `-` or `_` at the
//! ends, cut to 50 characters after the last whole word. One departure: gosimple transliterates
//! non-ASCII letters (`é` → `e`), berth makes them `-` like any other character.
//!
//! [gosimple/slug]: https://github.com/gosimple/slug
//!
//! ```
//! use berth_appset::generators::pull_request::{self, PullRequest};
//! use berth_appset::params::TemplateMode;
//! let spec = serde_json::json!({
//!     "gitea": { "owner": "acme", "repo": "web", "api": "https://gitea.example/" },
//!     "filters": [{ "branchMatch": "^feat/" }]
//! });
//! let pulls = [PullRequest {
//!     number: 7,
//!     title: "Add a cache".into(),
//!     branch: "feat/Cache_Layer".into(),
//!     target_branch: "main".into(),
//!     head_sha: "089d92cbf9ff857a39e6feccd32798ca700fb958".into(),
//!     labels: vec!["preview".into()],
//!     author: "dev".into(),
//! }];
//! let sets = pull_request::generate(&spec, &pulls, TemplateMode::Fast).unwrap();
//! assert_eq!(sets[0].get("number"), Some("7"));
//! assert_eq!(sets[0].get("branch_slug"), Some("feat-cache-layer"));
//! assert_eq!(sets[0].get("head_short_sha"), Some("089d92cb"));
//! ```

use regex::Regex;
use serde_json::{Value, json};

use super::check_count;
use super::scm_provider::{list_of, regex_of, short_sha, values_of};
use crate::Error;
use crate::params::{self, ParamSet, TemplateMode};

const GENERATOR: &str = "pullRequest";

/// The providers Argo CD's pull request generator knows, by their key in the spec.
pub const PROVIDERS: [&str; 6] = ["github", "gitlab", "gitea", "bitbucketServer", "bitbucket", "azureDevOps"];

/// How long a slug may be: room for a 13-character suffix within a 63-character DNS label.
const SLUG_MAX_LENGTH: usize = 50;

/// One open pull request, as the caller read it from the provider.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PullRequest {
    pub number: u64,
    pub title: String,
    /// The source (head) branch.
    pub branch: String,
    /// The branch it merges into.
    pub target_branch: String,
    /// The source branch's head commit.
    pub head_sha: String,
    /// Its labels' names.
    pub labels: Vec<String>,
    /// The login of whoever opened it.
    pub author: String,
}

#[derive(Clone, Debug, Default)]
struct Filter {
    branch_match: Option<Regex>,
    target_branch_match: Option<Regex>,
    title_match: Option<Regex>,
}

impl Filter {
    fn matches(&self, pull: &PullRequest) -> bool {
        self.branch_match.as_ref().is_none_or(|re| re.is_match(&pull.branch))
            && self.target_branch_match.as_ref().is_none_or(|re| re.is_match(&pull.target_branch))
            && self.title_match.as_ref().is_none_or(|re| re.is_match(&pull.title))
    }
}

/// The parameter sets of the `pullRequest` generator `spec` over `pulls` (in the provider's order),
/// filtered by its `filters`.
pub fn generate(spec: &Value, pulls: &[PullRequest], mode: TemplateMode) -> Result<Vec<ParamSet>, Error> {
    let filters = filters_of(spec)?;
    let values = values_of(spec, GENERATOR)?;
    let mut sets = Vec::new();
    for pull in pulls {
        if !filters.is_empty() && !filters.iter().any(|f| f.matches(pull)) {
            continue;
        }
        check_count(GENERATOR, sets.len() + 1)?;
        let mut set = params_of(pull, mode);
        params::append_values(&mut set, &values, GENERATOR)?;
        sets.push(set);
    }
    Ok(sets)
}

fn filters_of(spec: &Value) -> Result<Vec<Filter>, Error> {
    let mut filters = Vec::new();
    for (index, filter) in list_of(spec, "filters", GENERATOR)?.iter().enumerate() {
        let field = format!("filters[{index}]");
        let Value::Object(filter) = filter else {
            return Err(Error::invalid(GENERATOR, field, "a filter must be an object"));
        };
        filters.push(Filter {
            branch_match: regex_of(filter, "branchMatch", &field, GENERATOR)?,
            target_branch_match: regex_of(filter, "targetBranchMatch", &field, GENERATOR)?,
            title_match: regex_of(filter, "titleMatch", &field, GENERATOR)?,
        });
    }
    Ok(filters)
}

fn params_of(pull: &PullRequest, mode: TemplateMode) -> ParamSet {
    let mut set = ParamSet::empty(mode);
    for (key, value) in [
        ("number", pull.number.to_string()),
        ("title", pull.title.clone()),
        ("branch", pull.branch.clone()),
        ("branch_slug", slug(&pull.branch)),
        ("target_branch", pull.target_branch.clone()),
        ("target_branch_slug", slug(&pull.target_branch)),
        ("head_sha", pull.head_sha.clone()),
        ("head_short_sha", short_sha(&pull.head_sha, 8).to_string()),
        ("head_short_sha_7", short_sha(&pull.head_sha, 7).to_string()),
        ("author", pull.author.clone()),
    ] {
        set.insert(key, value);
    }
    // Argo CD gives the labels to Go templates only (fasttemplate is being deprecated).
    if let ParamSet::Nested(nested) = &mut set {
        nested.insert("labels".to_string(), json!(pull.labels));
    }
    set
}

/// gosimple/slug's `Make` as Argo CD's pull request generator sets it up (see the module's docs).
pub fn slug(text: &str) -> String {
    let mut replaced = String::with_capacity(text.len());
    for c in text.trim().chars() {
        match c {
            '_' => replaced.push('-'),
            '&' => replaced.push_str("and"),
            '@' => replaced.push_str("at"),
            '"' | '\'' | '\u{2019}' => {}
            '\u{2012}' | '\u{2013}' | '\u{2014}' | '\u{2015}' => replaced.push('-'),
            c if c.is_ascii_alphanumeric() => replaced.push(c.to_ascii_lowercase()),
            '-' => replaced.push('-'),
            _ => replaced.push('-'),
        }
    }
    let mut collapsed = String::with_capacity(replaced.len());
    for c in replaced.chars() {
        if !(c == '-' && collapsed.ends_with('-')) {
            collapsed.push(c);
        }
    }
    let trimmed = collapsed.trim_matches(['-', '_']);
    smart_truncate(trimmed, SLUG_MAX_LENGTH).to_string()
}

/// Cut after the last whole word (at the last `-` at or before `max`), or at `max` for one long word.
fn smart_truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    // The slug is ASCII here, so byte indices are character indices.
    match text.as_bytes()[..=max].iter().rposition(|&b| b == b'-') {
        Some(cut) => &text[..cut],
        None => &text[..max],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MAX_PARAM_SETS;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn pull(number: u64, branch: &str, target: &str, title: &str) -> PullRequest {
        PullRequest {
            number,
            title: title.to_string(),
            branch: branch.to_string(),
            target_branch: target.to_string(),
            head_sha: "089d92cbf9ff857a39e6feccd32798ca700fb958".to_string(),
            labels: vec!["preview".to_string()],
            author: "testName".to_string(),
        }
    }

    fn numbers(sets: &[ParamSet]) -> Vec<&str> {
        sets.iter().map(|s| s.get("number").unwrap()).collect()
    }

    /// Argo CD's pull_request_test: the parameters of one pull request, under their exact names; no
    /// `labels` without goTemplate.
    #[test]
    fn a_pull_request_gives_argo_cds_parameters() {
        let spec = json!({ "gitea": { "owner": "o", "repo": "r" } });
        let sets = generate(&spec, &[pull(1, "branch1", "master", "title1")], TemplateMode::Fast).unwrap();
        let expected: BTreeMap<String, String> = [
            ("number", "1"),
            ("title", "title1"),
            ("branch", "branch1"),
            ("branch_slug", "branch1"),
            ("target_branch", "master"),
            ("target_branch_slug", "master"),
            ("head_sha", "089d92cbf9ff857a39e6feccd32798ca700fb958"),
            ("head_short_sha", "089d92cb"),
            ("head_short_sha_7", "089d92c"),
            ("author", "testName"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(sets, vec![ParamSet::Flat(expected)]);
    }

    /// Argo CD's pull_request_test: a long branch name is slugged and cut after its last whole word.
    #[test]
    fn a_long_branch_is_slugged_within_fifty_characters() {
        let tail = "long_pull_request_name_to_test_argo_slugification_and_branch_name_shortening_feature";
        let (branch, target) = (format!("feat/areally+{tail}"), format!("feat/anotherreally+{tail}"));
        let sets = generate(&json!({}), &[pull(2, &branch, &target, "t")], TemplateMode::Fast).unwrap();
        assert_eq!(sets[0].get("branch_slug"), Some("feat-areally-long-pull-request-name-to-test-argo"));
        assert_eq!(
            sets[0].get("target_branch_slug"),
            Some("feat-anotherreally-long-pull-request-name-to-test")
        );
    }

    #[test]
    fn slugs_follow_gosimple() {
        assert_eq!(slug("  Feature/Tom & Jerry's @home  "), "feature-tom-and-jerrys-athome");
        assert_eq!(slug("--a__b--"), "a-b");
        assert_eq!(slug("fix\u{2014}it"), "fix-it");
        assert_eq!(slug(&"x".repeat(60)), "x".repeat(50), "one long word is cut at 50");
        assert_eq!(slug(""), "");
    }

    #[test]
    fn go_templates_get_the_labels_as_a_list_and_values_nested() {
        let spec = json!({ "values": { "env": "pr-{{.number}}" } });
        let sets = generate(&spec, &[pull(5, "b", "main", "t")], TemplateMode::Go).unwrap();
        let value = sets[0].to_value();
        assert_eq!(value["labels"], json!(["preview"]));
        assert_eq!(value["number"], "5");
        assert_eq!(value["values"], json!({ "env": "pr-5" }));
    }

    #[test]
    fn values_are_templated_with_the_pull_request_parameters() {
        let spec = json!({ "values": { "name": "{{branch_slug}}-{{number}}" } });
        let sets = generate(&spec, &[pull(3, "feat/x", "main", "t")], TemplateMode::Fast).unwrap();
        assert_eq!(sets[0].get("values.name"), Some("feat-x-3"));
        assert_eq!(sets[0].get("labels"), None, "labels are for goTemplate only");
    }

    /// The docs' filters: `branchMatch: ".*-argocd"`, and a target branch filter.
    #[test]
    fn filters_select_by_branch_target_and_title_and_any_filter_is_enough() {
        let pulls = [
            pull(1, "feat-argocd", "main", "Add feature"),
            pull(2, "feat", "main", "Add feature"),
            pull(3, "hotfix", "release", "Fix"),
            pull(4, "docs", "main", "[WIP] docs"),
        ];
        let by_branch = json!({ "filters": [{ "branchMatch": ".*-argocd" }] });
        assert_eq!(numbers(&generate(&by_branch, &pulls, TemplateMode::Fast).unwrap()), ["1"]);
        let both = json!({ "filters": [{ "branchMatch": "^feat", "targetBranchMatch": "^main$", "titleMatch": "^Add" }] });
        assert_eq!(numbers(&generate(&both, &pulls, TemplateMode::Fast).unwrap()), ["1", "2"]);
        let either = json!({ "filters": [{ "targetBranchMatch": "^release$" }, { "titleMatch": "WIP" }] });
        assert_eq!(numbers(&generate(&either, &pulls, TemplateMode::Fast).unwrap()), ["3", "4"]);
        assert_eq!(numbers(&generate(&json!({}), &pulls, TemplateMode::Fast).unwrap()).len(), 4);
    }

    #[test]
    fn an_invalid_regular_expression_is_an_error_naming_the_filter() {
        let err =
            generate(&json!({ "filters": [{ "titleMatch": "[" }] }), &[], TemplateMode::Fast).unwrap_err();
        assert!(err.to_string().starts_with("pullRequest generator: filters[0].titleMatch:"), "{err}");
        let err = generate(&json!({ "filters": ["x"] }), &[], TemplateMode::Fast).unwrap_err();
        assert!(err.to_string().starts_with("pullRequest generator: filters[0]:"), "{err}");
    }

    #[test]
    fn more_sets_than_the_maximum_are_refused() {
        let pulls = vec![pull(1, "b", "main", "t"); MAX_PARAM_SETS + 1];
        let err = generate(&json!({}), &pulls, TemplateMode::Fast).unwrap_err();
        assert_eq!(err, Error::TooManyParamSets { generator: GENERATOR, max: MAX_PARAM_SETS });
    }
}
