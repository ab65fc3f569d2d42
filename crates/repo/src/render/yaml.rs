//! The one YAML reader for what a repository or a tool hands berth: manifest files, `kustomize build` and
//! `helm template` output, `Chart.yaml`, Helm values. One set of limits for all of them, so an alias bomb,
//! a document storm or nesting deep enough to overflow the stack fails the same way wherever it hides,
//! with an error naming the file.

use serde::de::DeserializeOwned;

use super::RenderError;
use super::tool::MAX_OUTPUT_BYTES;

/// Largest total of documents, nodes and alias replays berth accepts in one YAML text: far above any real
/// set of manifests, far below what an alias bomb or a document storm needs.
pub const MAX_DOCUMENTS: usize = 20_000;
const MAX_NODES: usize = 4_000_000;
const MAX_ALIAS_REPLAYED_EVENTS: usize = 250_000;
/// Deepest nesting read: CRD schemas reach a few dozen levels; much more overflows a worker's 2 MiB stack
/// (debug builds overflow near 120).
pub const MAX_DEPTH: usize = 64;

fn options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_documents: MAX_DOCUMENTS,
            max_nodes: MAX_NODES,
            max_events: 2 * MAX_NODES,
            max_depth: MAX_DEPTH,
            max_aliases: 10_000,
            max_anchors: 10_000,
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: MAX_ALIAS_REPLAYED_EVENTS,
        },
        // Argo CD's YAML reader keeps the last of duplicate keys; charts in the wild have them.
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::LastWins,
    }
}

fn within_size(text: &str, file: &str) -> Result<(), RenderError> {
    let limit = MAX_OUTPUT_BYTES as u64;
    if text.len() as u64 > limit {
        return Err(RenderError::TooLarge { file: file.into(), size: text.len() as u64, limit });
    }
    Ok(())
}

/// Parses a multi-document YAML (or JSON) text; errors name `file`. Empty documents are dropped.
pub fn parse_documents(text: &str, file: &str) -> Result<Vec<serde_json::Value>, RenderError> {
    within_size(text, file)?;
    serde_saphyr::from_multiple_with_options(text, options())
        .map_err(|e| RenderError::InvalidFile { file: file.into(), message: e.to_string() })
}

/// Parses a single-document YAML text into `T` (a `Chart.yaml`, Helm values); errors name `file`.
pub fn parse_document<T: DeserializeOwned>(text: &str, file: &str) -> Result<T, RenderError> {
    within_size(text, file)?;
    serde_saphyr::from_str_with_options(text, options())
        .map_err(|e| RenderError::InvalidFile { file: file.into(), message: e.to_string() })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Ten levels of nine aliases each: a few hundred bytes that would expand to a billion nodes.
    pub(in crate::render) fn billion_laughs() -> String {
        let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let p = i - 1;
            bomb.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        bomb
    }

    /// Nesting `depth` levels deep, block style, or flow style when `flow`.
    pub(in crate::render) fn nested(depth: usize, flow: bool) -> String {
        if flow {
            format!("{}1{}", "{a: ".repeat(depth), "}".repeat(depth))
        } else {
            (0..depth).map(|i| format!("{}a:\n", "  ".repeat(i))).collect::<String>()
                + &"  ".repeat(depth)
                + "1\n"
        }
    }

    /// Parsed on a thread with a Tokio worker's stack, where renders run.
    fn parse_nested(depth: usize, flow: bool) -> Result<usize, RenderError> {
        let text = nested(depth, flow);
        let parse = move || parse_documents(&text, "crd.yaml").map(|d| d.len());
        std::thread::Builder::new().stack_size(2 * 1024 * 1024).spawn(parse).unwrap().join().unwrap()
    }

    #[test]
    fn an_alias_bomb_is_refused_naming_the_file() {
        let err = parse_documents(&billion_laughs(), "out.yaml").unwrap_err();
        assert!(matches!(&err, RenderError::InvalidFile { file, .. } if file == "out.yaml"), "{err}");
        let err = parse_document::<serde_json::Value>(&billion_laughs(), "values.yaml").unwrap_err();
        assert!(matches!(&err, RenderError::InvalidFile { file, .. } if file == "values.yaml"), "{err}");
    }

    #[test]
    fn a_document_storm_and_a_huge_text_are_refused() {
        let storm = "---\na: 1\n".repeat(MAX_DOCUMENTS + 1);
        assert!(matches!(parse_documents(&storm, "out.yaml"), Err(RenderError::InvalidFile { .. })));
        let huge = " ".repeat(MAX_OUTPUT_BYTES + 1);
        assert!(matches!(parse_documents(&huge, "out.yaml"), Err(RenderError::TooLarge { .. })));
    }

    #[test]
    fn many_documents_are_read_and_empty_ones_skipped() {
        let docs = parse_documents("a: 1\n---\n---\nb: [x]\n", "f.yaml").unwrap();
        assert_eq!(docs, [serde_json::json!({"a": 1}), serde_json::json!({"b": ["x"]})]);
    }

    #[test]
    fn duplicate_keys_keep_the_last_value_as_argo_cd_does() {
        let docs = parse_documents("a: 1\na: 2\n", "f.yaml").unwrap();
        assert_eq!(docs, [serde_json::json!({"a": 2})]);
    }

    #[test]
    fn crd_schema_nesting_is_read_up_to_the_limit() {
        assert_eq!(parse_nested(60, false), Ok(1));
        assert_eq!(parse_nested(MAX_DEPTH - 2, false), Ok(1));
        assert_eq!(parse_nested(MAX_DEPTH - 2, true), Ok(1));
    }

    #[test]
    fn nesting_that_would_overflow_the_stack_is_refused_naming_the_file() {
        for flow in [false, true] {
            let err = parse_nested(5_000, flow).unwrap_err();
            assert!(matches!(&err, RenderError::InvalidFile { file, .. } if file == "crd.yaml"), "{err}");
        }
        assert!(parse_nested(MAX_DEPTH + 1, false).is_err());
    }
}
