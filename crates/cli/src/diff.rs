//! Line diffs for `berth app diff`: a longest-common-subsequence edit script and unified hunks (three lines of
//! context, `@@ -a,b +c,d @@` headers as `diff -u` writes them), optionally coloured.

/// One line of an edit script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edit<'a> {
    Same(&'a str),
    Removed(&'a str),
    Added(&'a str),
}

/// Past this many cells the middle is shown as removed-then-added instead of aligned (manifests are far smaller).
const MAX_TABLE_CELLS: usize = 16_000_000;

/// The edits turning `old` into `new`, keeping the longest common subsequence of lines.
pub fn line_edits<'a>(old: &[&'a str], new: &[&'a str]) -> Vec<Edit<'a>> {
    let prefix = old.iter().zip(new).take_while(|(a, b)| a == b).count();
    let suffix =
        old[prefix..].iter().rev().zip(new[prefix..].iter().rev()).take_while(|(a, b)| a == b).count();
    let (a, b) = (&old[prefix..old.len() - suffix], &new[prefix..new.len() - suffix]);
    let mut edits: Vec<Edit<'a>> = old[..prefix].iter().map(|l| Edit::Same(l)).collect();
    if a.len().saturating_mul(b.len()) > MAX_TABLE_CELLS {
        edits.extend(a.iter().map(|l| Edit::Removed(l)));
        edits.extend(b.iter().map(|l| Edit::Added(l)));
    } else {
        // lcs[i][j]: the longest common subsequence of a[i..] and b[j..], in one row-major vector.
        let width = b.len() + 1;
        let mut lcs = vec![0u32; (a.len() + 1) * width];
        for i in (0..a.len()).rev() {
            for j in (0..b.len()).rev() {
                lcs[i * width + j] = if a[i] == b[j] {
                    lcs[(i + 1) * width + j + 1] + 1
                } else {
                    lcs[(i + 1) * width + j].max(lcs[i * width + j + 1])
                };
            }
        }
        let (mut i, mut j) = (0, 0);
        while i < a.len() && j < b.len() {
            if a[i] == b[j] {
                edits.push(Edit::Same(a[i]));
                i += 1;
                j += 1;
            } else if lcs[(i + 1) * width + j] >= lcs[i * width + j + 1] {
                edits.push(Edit::Removed(a[i]));
                i += 1;
            } else {
                edits.push(Edit::Added(b[j]));
                j += 1;
            }
        }
        edits.extend(a[i..].iter().map(|l| Edit::Removed(l)));
        edits.extend(b[j..].iter().map(|l| Edit::Added(l)));
    }
    edits.extend(old[old.len() - suffix..].iter().map(|l| Edit::Same(l)));
    edits
}

const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const CYAN: &str = "\x1b[36m";
const BOLD: &str = "\x1b[1m";
const RESET: &str = "\x1b[0m";

/// A unified diff of two texts, or `None` when they are equal.
pub fn unified(old: &str, new: &str, old_label: &str, new_label: &str, colour: bool) -> Option<String> {
    const CONTEXT: usize = 3;
    let old_lines: Vec<&str> = old.lines().collect();
    let new_lines: Vec<&str> = new.lines().collect();
    let edits = line_edits(&old_lines, &new_lines);
    let changes: Vec<usize> =
        edits.iter().enumerate().filter(|(_, e)| !matches!(e, Edit::Same(_))).map(|(i, _)| i).collect();
    if changes.is_empty() {
        return None;
    }
    let paint = |code: &str, text: String| if colour { format!("{code}{text}{RESET}") } else { text };
    let mut out = String::new();
    out.push_str(&paint(BOLD, format!("--- {old_label}")));
    out.push('\n');
    out.push_str(&paint(BOLD, format!("+++ {new_label}")));
    out.push('\n');
    // Changes closer than twice the context share a hunk.
    let mut groups: Vec<(usize, usize)> = Vec::new();
    for &c in &changes {
        match groups.last_mut() {
            Some((_, last)) if c - *last <= 2 * CONTEXT => *last = c,
            _ => groups.push((c, c)),
        }
    }
    for (first, last) in groups {
        let lo = first.saturating_sub(CONTEXT);
        let hi = (last + CONTEXT + 1).min(edits.len());
        let old_before = edits[..lo].iter().filter(|e| !matches!(e, Edit::Added(_))).count();
        let new_before = edits[..lo].iter().filter(|e| !matches!(e, Edit::Removed(_))).count();
        let old_count = edits[lo..hi].iter().filter(|e| !matches!(e, Edit::Added(_))).count();
        let new_count = edits[lo..hi].iter().filter(|e| !matches!(e, Edit::Removed(_))).count();
        // As diff -u: an empty side names the line before it.
        let start = |before: usize, count: usize| if count == 0 { before } else { before + 1 };
        out.push_str(&paint(
            CYAN,
            format!(
                "@@ -{},{old_count} +{},{new_count} @@",
                start(old_before, old_count),
                start(new_before, new_count)
            ),
        ));
        out.push('\n');
        for edit in &edits[lo..hi] {
            let line = match edit {
                Edit::Same(l) => format!(" {l}"),
                Edit::Removed(l) => paint(RED, format!("-{l}")),
                Edit::Added(l) => paint(GREEN, format!("+{l}")),
            };
            out.push_str(&line);
            out.push('\n');
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_edit_script_keeps_the_longest_common_subsequence() {
        let old = ["a", "b", "c", "d"];
        let new = ["a", "c", "x", "d"];
        assert_eq!(
            line_edits(&old, &new),
            [Edit::Same("a"), Edit::Removed("b"), Edit::Same("c"), Edit::Added("x"), Edit::Same("d")]
        );
        assert_eq!(line_edits(&[], &["n"]), [Edit::Added("n")]);
        assert_eq!(line_edits(&["o"], &[]), [Edit::Removed("o")]);
    }

    #[test]
    fn equal_texts_have_no_diff() {
        assert_eq!(unified("a\nb\n", "a\nb\n", "live", "desired", true), None);
    }

    #[test]
    fn a_change_prints_as_diff_u_with_three_lines_of_context() {
        let old = "1\n2\n3\n4\n5\n6\n7\n8\nreplicas: 1\n9\n";
        let new = "1\n2\n3\n4\n5\n6\n7\n8\nreplicas: 3\n9\n";
        assert_eq!(
            unified(old, new, "live", "desired", false).unwrap(),
            "--- live\n+++ desired\n@@ -6,5 +6,5 @@\n 6\n 7\n 8\n-replicas: 1\n+replicas: 3\n 9\n"
        );
    }

    #[test]
    fn distant_changes_get_separate_hunks_and_an_empty_side_counts_zero() {
        let old: String = (1..=20).map(|i| format!("{i}\n")).collect();
        let new: String = (1..=20)
            .map(|i| match i {
                2 => "two\n".to_string(),
                19 => "nineteen\n".to_string(),
                _ => format!("{i}\n"),
            })
            .collect();
        let diff = unified(&old, &new, "a", "b", false).unwrap();
        let headers: Vec<&str> = diff.lines().filter(|l| l.starts_with("@@")).collect();
        assert_eq!(headers, ["@@ -1,5 +1,5 @@", "@@ -16,5 +16,5 @@"]);
        assert_eq!(unified("", "x\n", "a", "b", false).unwrap(), "--- a\n+++ b\n@@ -0,0 +1,1 @@\n+x\n");
    }

    #[test]
    fn colour_marks_removals_red_and_additions_green() {
        let diff = unified("a\n", "b\n", "live", "desired", true).unwrap();
        assert!(diff.contains("\x1b[31m-a\x1b[0m"), "{diff:?}");
        assert!(diff.contains("\x1b[32m+b\x1b[0m"), "{diff:?}");
        assert!(diff.contains("\x1b[36m@@ -1,1 +1,1 @@\x1b[0m"), "{diff:?}");
    }
}
