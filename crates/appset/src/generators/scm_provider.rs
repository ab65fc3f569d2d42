//! The SCM provider generator, over the repositories (one entry per repository and branch) that the
//! caller listed from the provider's API: no network here.
//!
//! **Filters** (`filters`): each filter's conditions must all hold, and any one filter is enough; no
//! filter keeps everything. As in Argo CD the filters apply in two phases: the repository phase
//! (`repositoryMatch` against the repository's name, `labelMatch` against any of its labels) with the
//! filters that have a repository condition, then the branch phase (`branchMatch` against the branch,
//! `pathsExist` and `pathsDoNotExist` asked of the repository at that branch through the caller's
//! closure) with the filters that have a branch condition. So a filter with only `repositoryMatch` and
//! another with only `pathsExist` both have to hold, where the documentation reads as "either".
//!
//! **Parameters**, Argo CD's names: `organization`, `repository`, `repository_id`, `url`, `branch`,
//! `branchNormalized` (the branch as [`sanitize_name`] makes it), `sha`, `short_sha` (8 characters),
//! `short_sha_7`, `labels` (comma-separated). The shapes are the same for both template modes (with
//! goTemplate, `repository_id` is a number); `values` are added as `values.<key>`.
//!
//! Also here: what every service generator (`scmProvider`, `pullRequest`) reads from its spec the same
//! way: which provider it names ([`provider_of`]), its `values`, its regular expressions.
//!
//! ```
//! use berth_appset::generators::scm_provider::{self, Repository};
//! use berth_appset::params::TemplateMode;
//! let spec = serde_json::json!({
//!     "gitea": { "owner": "acme", "api": "https://gitea.example/" },
//!     "filters": [{ "repositoryMatch": "^web", "pathsExist": ["deploy/"] }]
//! });
//! let repo = |name: &str| Repository {
//!     organization: "acme".into(),
//!     repository: name.into(),
//!     url: format!("git@gitea.example:acme/{name}.git"),
//!     branch: "main".into(),
//!     sha: "0123456789abcdef".into(),
//!     ..Repository::default()
//! };
//! let repos = [repo("web-frontend"), repo("web-api"), repo("docs")];
//! let has_path = |r: &Repository, path: &str| Ok(r.repository == "web-api" && path == "deploy");
//! let sets = scm_provider::generate(&spec, &repos, has_path, TemplateMode::Fast).unwrap();
//! assert_eq!(sets.len(), 1);
//! assert_eq!(sets[0].get("repository"), Some("web-api"));
//! assert_eq!(sets[0].get("short_sha"), Some("01234567"));
//! ```

use regex::Regex;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};

use super::check_count;
use crate::Error;
use crate::params::{self, ParamSet, TemplateMode, sanitize_name};

const GENERATOR: &str = "scmProvider";

/// The providers Argo CD's SCM provider generator knows, by their key in the spec.
pub const PROVIDERS: [&str; 7] =
    ["github", "gitlab", "gitea", "bitbucketServer", "bitbucket", "azureDevOps", "awsCodeCommit"];

/// One repository at one branch, as the caller read it from the provider.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Repository {
    /// The organisation (or user) that owns it.
    pub organization: String,
    /// Its name.
    pub repository: String,
    /// The provider's id for it.
    pub repository_id: u64,
    /// The clone URL for the generator's `cloneProtocol`.
    pub url: String,
    /// The branch this entry is about (the default branch unless `allBranches`).
    pub branch: String,
    /// The branch's head commit.
    pub sha: String,
    /// The repository's labels (Gitea: its labels; GitHub and GitLab: its topics).
    pub labels: Vec<String>,
}

/// An SCM provider generator's `filters`, compiled.
#[derive(Clone, Debug, Default)]
pub struct Filters {
    filters: Vec<Filter>,
}

#[derive(Clone, Debug, Default)]
struct Filter {
    repository_match: Option<Regex>,
    label_match: Option<Regex>,
    branch_match: Option<Regex>,
    paths_exist: Vec<String>,
    paths_do_not_exist: Vec<String>,
}

impl Filter {
    fn has_repository_conditions(&self) -> bool {
        self.repository_match.is_some() || self.label_match.is_some()
    }

    fn has_branch_conditions(&self) -> bool {
        self.branch_match.is_some() || !self.paths_exist.is_empty() || !self.paths_do_not_exist.is_empty()
    }
}

impl Filters {
    /// The `filters` of an `scmProvider` spec; an invalid regular expression is an error naming it.
    pub fn of(spec: &Value) -> Result<Filters, Error> {
        let mut filters = Vec::new();
        for (index, filter) in list_of(spec, "filters", GENERATOR)?.iter().enumerate() {
            let field = format!("filters[{index}]");
            let Value::Object(filter) = filter else {
                return Err(Error::invalid(GENERATOR, field, "a filter must be an object"));
            };
            filters.push(Filter {
                repository_match: regex_of(filter, "repositoryMatch", &field, GENERATOR)?,
                label_match: regex_of(filter, "labelMatch", &field, GENERATOR)?,
                branch_match: regex_of(filter, "branchMatch", &field, GENERATOR)?,
                paths_exist: paths_of(filter, "pathsExist", &field)?,
                paths_do_not_exist: paths_of(filter, "pathsDoNotExist", &field)?,
            });
        }
        Ok(Filters { filters })
    }

    /// The repository phase: whether `repo` passes the filters with a `repositoryMatch` or `labelMatch`
    /// (its branch plays no part, so a caller can skip listing the branches of a repository that fails).
    pub fn repository_matches(&self, repo: &Repository) -> bool {
        let mut applicable = self.filters.iter().filter(|f| f.has_repository_conditions()).peekable();
        if applicable.peek().is_none() {
            return true;
        }
        applicable.any(|filter| {
            filter.repository_match.as_ref().is_none_or(|re| re.is_match(&repo.repository))
                && filter.label_match.as_ref().is_none_or(|re| repo.labels.iter().any(|l| re.is_match(l)))
        })
    }

    /// The paths the branch phase may ask about for `repo` at its branch: those of the filters whose
    /// `branchMatch` (if any) accepts the branch, without trailing `/`.
    pub fn paths_to_check(&self, repo: &Repository) -> BTreeSet<String> {
        self.filters
            .iter()
            .filter(|f| f.branch_match.as_ref().is_none_or(|re| re.is_match(&repo.branch)))
            .flat_map(|f| f.paths_exist.iter().chain(&f.paths_do_not_exist).cloned())
            .collect()
    }

    /// The branch phase: whether `repo` at its branch passes the filters with a `branchMatch`,
    /// `pathsExist` or `pathsDoNotExist`; `has_path` answers whether a path (file or folder, no
    /// trailing `/`) exists in the repository at that branch.
    pub fn branch_matches(
        &self,
        repo: &Repository,
        has_path: &mut impl FnMut(&Repository, &str) -> Result<bool, Error>,
    ) -> Result<bool, Error> {
        let applicable: Vec<&Filter> = self.filters.iter().filter(|f| f.has_branch_conditions()).collect();
        if applicable.is_empty() {
            return Ok(true);
        }
        'filters: for filter in applicable {
            if filter.branch_match.as_ref().is_some_and(|re| !re.is_match(&repo.branch)) {
                continue;
            }
            for path in &filter.paths_exist {
                if !has_path(repo, path)? {
                    continue 'filters;
                }
            }
            for path in &filter.paths_do_not_exist {
                if has_path(repo, path)? {
                    continue 'filters;
                }
            }
            return Ok(true);
        }
        Ok(false)
    }
}

/// The parameter sets of the `scmProvider` generator `spec` over `repos` (one per repository and
/// branch, in the provider's order), filtered by its `filters` with `has_path` answering `pathsExist`
/// and `pathsDoNotExist`.
pub fn generate(
    spec: &Value,
    repos: &[Repository],
    mut has_path: impl FnMut(&Repository, &str) -> Result<bool, Error>,
    mode: TemplateMode,
) -> Result<Vec<ParamSet>, Error> {
    let filters = Filters::of(spec)?;
    let values = values_of(spec, GENERATOR)?;
    let mut sets = Vec::new();
    for repo in repos {
        if !filters.repository_matches(repo) || !filters.branch_matches(repo, &mut has_path)? {
            continue;
        }
        check_count(GENERATOR, sets.len() + 1)?;
        let mut set = params_of(repo, mode);
        params::append_values(&mut set, &values, GENERATOR)?;
        sets.push(set);
    }
    Ok(sets)
}

fn params_of(repo: &Repository, mode: TemplateMode) -> ParamSet {
    let mut set = ParamSet::empty(mode);
    for (key, value) in [
        ("organization", repo.organization.clone()),
        ("repository", repo.repository.clone()),
        ("url", repo.url.clone()),
        ("branch", repo.branch.clone()),
        ("branchNormalized", sanitize_name(&repo.branch)),
        ("sha", repo.sha.clone()),
        ("short_sha", short_sha(&repo.sha, 8).to_string()),
        ("short_sha_7", short_sha(&repo.sha, 7).to_string()),
        ("labels", repo.labels.join(",")),
    ] {
        set.insert(key, value);
    }
    match &mut set {
        ParamSet::Flat(flat) => {
            flat.insert("repository_id".to_string(), repo.repository_id.to_string());
        }
        ParamSet::Nested(nested) => {
            nested.insert("repository_id".to_string(), json!(repo.repository_id));
        }
    }
    set
}

/// The first `length` characters of a commit SHA (all of it when shorter).
pub(crate) fn short_sha(sha: &str, length: usize) -> &str {
    sha.char_indices().nth(length).map_or(sha, |(end, _)| &sha[..end])
}

/// The one provider a service generator's `spec` names, among `known`, and its fields. None, several,
/// or a provider that is not an object are errors naming the generator.
pub fn provider_of<'a>(
    spec: &'a Value,
    known: &[&'static str],
    generator: &'static str,
) -> Result<(&'static str, &'a Map<String, Value>), Error> {
    let Value::Object(spec) = spec else {
        return Err(Error::invalid(generator, generator, "the generator must be an object"));
    };
    let named: Vec<&'static str> = known.iter().copied().filter(|key| spec.contains_key(*key)).collect();
    match named.as_slice() {
        [] => Err(Error::invalid(
            generator,
            generator,
            format!("no provider is set; set one of {}", known.join(", ")),
        )),
        [one] => match &spec[*one] {
            Value::Object(fields) => Ok((one, fields)),
            _ => Err(Error::invalid(generator, *one, "the provider's settings must be an object")),
        },
        several => Err(Error::invalid(
            generator,
            generator,
            format!("several providers are set ({}); set exactly one", several.join(", ")),
        )),
    }
}

/// A generator's `values`: string to string (none when absent).
pub(crate) fn values_of(spec: &Value, generator: &'static str) -> Result<BTreeMap<String, String>, Error> {
    match spec.get("values") {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(values)) => values
            .iter()
            .map(|(key, value)| match value {
                Value::String(text) => Ok((key.clone(), text.clone())),
                _ => Err(Error::invalid(generator, format!("values.{key}"), "a value must be a string")),
            })
            .collect(),
        Some(_) => Err(Error::invalid(generator, "values", "values must be a map of strings")),
    }
}

/// A list field of `spec` (empty when absent).
pub(crate) fn list_of<'a>(spec: &'a Value, key: &str, generator: &'static str) -> Result<&'a [Value], Error> {
    match spec.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(Error::invalid(generator, key, "must be a list")),
    }
}

/// The regular expression (Go's RE2 syntax, unanchored) at `key` of a filter, when set.
pub(crate) fn regex_of(
    filter: &Map<String, Value>,
    key: &str,
    field: &str,
    generator: &'static str,
) -> Result<Option<Regex>, Error> {
    match filter.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(pattern)) => {
            // A size limit keeps a hostile pattern from costing memory; RE2 syntax has no backtracking.
            regex::RegexBuilder::new(pattern).size_limit(1 << 20).build().map(Some).map_err(|e| {
                Error::invalid(
                    generator,
                    format!("{field}.{key}"),
                    format!("invalid regular expression: {e}"),
                )
            })
        }
        Some(_) => Err(Error::invalid(generator, format!("{field}.{key}"), "must be a string")),
    }
}

fn paths_of(filter: &Map<String, Value>, key: &str, field: &str) -> Result<Vec<String>, Error> {
    match filter.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(paths)) => paths
            .iter()
            .enumerate()
            .map(|(index, path)| match path {
                Value::String(path) => Ok(path.trim_end_matches('/').to_string()),
                _ => Err(Error::invalid(GENERATOR, format!("{field}.{key}[{index}]"), "must be a string")),
            })
            .collect(),
        Some(_) => Err(Error::invalid(GENERATOR, format!("{field}.{key}"), "must be a list of paths")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MAX_PARAM_SETS;
    use serde_json::json;

    fn repo(name: &str, branch: &str, labels: &[&str]) -> Repository {
        Repository {
            organization: "myorg".to_string(),
            repository: name.to_string(),
            repository_id: 42,
            url: format!("git@github.com:myorg/{name}.git"),
            branch: branch.to_string(),
            sha: "019b0a0f6a3ba7b0d4e2f98f1e46e7f2c67d79c6".to_string(),
            labels: labels.iter().map(|l| l.to_string()).collect(),
        }
    }

    fn no_paths(_: &Repository, _: &str) -> Result<bool, Error> {
        Ok(false)
    }

    fn names(sets: &[ParamSet]) -> Vec<String> {
        sets.iter()
            .map(|s| format!("{}@{}", s.get("repository").unwrap(), s.get("branch").unwrap()))
            .collect()
    }

    /// Argo CD's scm_provider_test: the parameters of one repository, under their exact names.
    #[test]
    fn a_repository_gives_argo_cds_parameters() {
        let spec = json!({ "gitea": { "owner": "myorg" } });
        let sets =
            generate(&spec, &[repo("repo1", "main", &["prod", "staging"])], no_paths, TemplateMode::Fast)
                .unwrap();
        let expected: BTreeMap<String, String> = [
            ("organization", "myorg"),
            ("repository", "repo1"),
            ("repository_id", "42"),
            ("url", "git@github.com:myorg/repo1.git"),
            ("branch", "main"),
            ("branchNormalized", "main"),
            ("sha", "019b0a0f6a3ba7b0d4e2f98f1e46e7f2c67d79c6"),
            ("short_sha", "019b0a0f"),
            ("short_sha_7", "019b0a0"),
            ("labels", "prod,staging"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(sets, vec![ParamSet::Flat(expected)]);
    }

    #[test]
    fn go_template_sets_have_the_same_names_and_a_numeric_repository_id() {
        let spec = json!({ "gitea": {}, "values": { "name": "{{.organization}}-{{.repository}}" } });
        let sets = generate(&spec, &[repo("repo1", "feature/X_1", &[])], no_paths, TemplateMode::Go).unwrap();
        let value = sets[0].to_value();
        assert_eq!(value["repository_id"], json!(42));
        assert_eq!(value["branchNormalized"], "feature-x-1");
        assert_eq!(value["labels"], "");
        assert_eq!(value["values"]["name"], "myorg-repo1", "the docs' values example");
    }

    #[test]
    fn a_short_sha_is_the_whole_sha_when_shorter() {
        let mut short = repo("r", "main", &[]);
        short.sha = "abc".to_string();
        let sets = generate(&json!({ "gitea": {} }), &[short], no_paths, TemplateMode::Fast).unwrap();
        assert_eq!(sets[0].get("short_sha"), Some("abc"));
        assert_eq!(sets[0].get("short_sha_7"), Some("abc"));
    }

    #[test]
    fn values_are_templated_with_the_repository_parameters() {
        let spec = json!({ "gitea": {}, "values": { "name": "{{organization}}-{{repository}}" } });
        let sets = generate(&spec, &[repo("repo1", "main", &[])], no_paths, TemplateMode::Fast).unwrap();
        assert_eq!(sets[0].get("values.name"), Some("myorg-repo1"));
    }

    #[test]
    fn no_filter_keeps_every_repository_and_branch() {
        let repos = [repo("a", "main", &[]), repo("a", "dev", &[]), repo("b", "main", &[])];
        let sets = generate(&json!({ "gitea": {} }), &repos, no_paths, TemplateMode::Fast).unwrap();
        assert_eq!(names(&sets), ["a@main", "a@dev", "b@main"]);
    }

    /// The docs' filters example: `^myapp` with a kustomization and the label `deploy-ok`, or `^otherapp`
    /// with a helm folder and no `disabledrepo.txt`.
    #[test]
    fn the_docs_filters_select_by_name_paths_and_labels() {
        let spec = json!({ "gitea": {}, "filters": [
            { "repositoryMatch": "^myapp", "pathsExist": ["kubernetes/kustomization.yaml"], "labelMatch": "deploy-ok" },
            { "repositoryMatch": "^otherapp", "pathsExist": ["helm"], "pathsDoNotExist": ["disabledrepo.txt"] }
        ]});
        let repos = [
            repo("myapp-ok", "main", &["deploy-ok"]),
            repo("myapp-unlabelled", "main", &[]),
            repo("myapp-nokustomize", "main", &["deploy-ok"]),
            repo("otherapp-ok", "main", &[]),
            repo("otherapp-disabled", "main", &[]),
            repo("unrelated", "main", &["deploy-ok"]),
        ];
        let files: BTreeSet<(&str, &str)> = [
            ("myapp-ok", "kubernetes/kustomization.yaml"),
            ("myapp-unlabelled", "kubernetes/kustomization.yaml"),
            ("otherapp-ok", "helm"),
            ("otherapp-disabled", "helm"),
            ("otherapp-disabled", "disabledrepo.txt"),
        ]
        .into();
        let has_path = |r: &Repository, p: &str| Ok(files.contains(&(r.repository.as_str(), p)));
        let sets = generate(&spec, &repos, has_path, TemplateMode::Fast).unwrap();
        assert_eq!(names(&sets), ["myapp-ok@main", "otherapp-ok@main"]);
    }

    #[test]
    fn branch_match_selects_branches_and_paths_lose_their_trailing_slash() {
        let spec =
            json!({ "gitea": {}, "filters": [{ "branchMatch": "^release-", "pathsExist": ["deploy/"] }] });
        let repos = [repo("a", "main", &[]), repo("a", "release-1", &[]), repo("b", "release-2", &[])];
        let mut asked = Vec::new();
        let has_path = |r: &Repository, p: &str| {
            asked.push(format!("{}@{}:{p}", r.repository, r.branch));
            Ok(r.repository == "a")
        };
        let sets = generate(&spec, &repos, has_path, TemplateMode::Fast).unwrap();
        assert_eq!(names(&sets), ["a@release-1"]);
        assert_eq!(asked, ["a@release-1:deploy", "b@release-2:deploy"], "main never matched branchMatch");
    }

    /// Argo CD applies repository filters and branch filters in two phases: one filter with only a
    /// repository condition and another with only a branch condition both have to hold.
    #[test]
    fn repository_and_branch_filters_apply_in_two_phases() {
        let spec =
            json!({ "gitea": {}, "filters": [{ "repositoryMatch": "^a" }, { "branchMatch": "^main$" }] });
        let repos = [repo("a", "main", &[]), repo("a", "dev", &[]), repo("b", "main", &[])];
        let sets = generate(&spec, &repos, no_paths, TemplateMode::Fast).unwrap();
        assert_eq!(names(&sets), ["a@main"]);
    }

    #[test]
    fn label_match_needs_any_label_to_match() {
        let spec = json!({ "gitea": {}, "filters": [{ "labelMatch": "^team-" }] });
        let repos =
            [repo("a", "main", &["x", "team-web"]), repo("b", "main", &["x"]), repo("c", "main", &[])];
        let sets = generate(&spec, &repos, no_paths, TemplateMode::Fast).unwrap();
        assert_eq!(names(&sets), ["a@main"]);
    }

    #[test]
    fn paths_to_check_are_those_of_filters_whose_branch_matches() {
        let spec = json!({ "gitea": {}, "filters": [
            { "branchMatch": "^main$", "pathsExist": ["a/"] },
            { "pathsDoNotExist": ["b"] },
            { "branchMatch": "^dev$", "pathsExist": ["c"] }
        ]});
        let filters = Filters::of(&spec).unwrap();
        assert_eq!(filters.paths_to_check(&repo("r", "main", &[])), BTreeSet::from(["a".into(), "b".into()]));
    }

    #[test]
    fn a_failing_path_check_fails_the_generator() {
        let spec = json!({ "gitea": {}, "filters": [{ "pathsExist": ["x"] }] });
        let failing = |_: &Repository, _: &str| Err(Error::invalid(GENERATOR, "gitea", "the API said 500"));
        let err = generate(&spec, &[repo("a", "main", &[])], failing, TemplateMode::Fast).unwrap_err();
        assert!(err.to_string().contains("the API said 500"), "{err}");
    }

    #[test]
    fn an_invalid_regular_expression_is_an_error_naming_the_filter() {
        let spec = json!({ "gitea": {}, "filters": [{}, { "repositoryMatch": "(" }] });
        let err = generate(&spec, &[], no_paths, TemplateMode::Fast).unwrap_err();
        assert!(err.to_string().starts_with("scmProvider generator: filters[1].repositoryMatch:"), "{err}");
    }

    #[test]
    fn malformed_filters_and_values_are_errors_naming_the_field() {
        for (spec, field) in [
            (json!({ "filters": "x" }), "filters"),
            (json!({ "filters": [{ "pathsExist": "deploy" }] }), "filters[0].pathsExist"),
            (json!({ "filters": [{ "pathsExist": [1] }] }), "filters[0].pathsExist[0]"),
            (json!({ "values": { "a": 1 } }), "values.a"),
            (json!({ "values": "x" }), "values"),
        ] {
            let err = generate(&spec, &[], no_paths, TemplateMode::Fast).unwrap_err();
            assert!(err.to_string().starts_with(&format!("scmProvider generator: {field}:")), "{err}");
        }
    }

    #[test]
    fn more_sets_than_the_maximum_are_refused() {
        let repos = vec![repo("a", "main", &[]); MAX_PARAM_SETS + 1];
        let err = generate(&json!({ "gitea": {} }), &repos, no_paths, TemplateMode::Fast).unwrap_err();
        assert_eq!(err, Error::TooManyParamSets { generator: GENERATOR, max: MAX_PARAM_SETS });
    }

    #[test]
    fn provider_of_names_exactly_one_provider() {
        let spec = json!({ "gitea": { "owner": "o" } });
        let (name, fields) = provider_of(&spec, &PROVIDERS, GENERATOR).unwrap();
        assert_eq!((name, fields["owner"].as_str()), ("gitea", Some("o")));
        let none = provider_of(&json!({ "filters": [] }), &PROVIDERS, GENERATOR).unwrap_err();
        assert!(none.to_string().contains("no provider is set"), "{none}");
        let two = provider_of(&json!({ "gitea": {}, "github": {} }), &PROVIDERS, GENERATOR).unwrap_err();
        assert!(two.to_string().contains("several providers are set (github, gitea)"), "{two}");
        let scalar = provider_of(&json!({ "gitea": "x" }), &PROVIDERS, GENERATOR).unwrap_err();
        assert!(scalar.to_string().starts_with("scmProvider generator: gitea:"), "{scalar}");
    }
}
