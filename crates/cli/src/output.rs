//! How the CLI prints: `-o json|yaml|wide|name`, and aligned tables as `argocd` prints them (columns
//! separated by at least two spaces, no trailing blanks).

use anyhow::{Context as _, Result};
use clap::ValueEnum;
use serde::Serialize;

/// Writes `text` to stdout: every command's output goes through here (or [`out!`] and [`outln!`]). A reader
/// that went away (`berth crds | head -1`) ends the process at once, quietly and with exit code 0, as a closed
/// pipe ends a Unix filter: nothing the command would still print has a reader (`print!` panics there).
pub fn write(text: &str) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        other => other.context("writing to stdout"),
    }
}

/// `print!` through [`write`]: `Result<()>`, and a closed stdout ends the command quietly.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::write(&format!($($arg)*))
    };
}
pub(crate) use out;

/// `println!` through [`write`]: `Result<()>`, and a closed stdout ends the command quietly.
macro_rules! outln {
    () => {
        $crate::output::write("\n")
    };
    ($($arg:tt)*) => {
        $crate::output::write(&format!("{}\n", format_args!($($arg)*)))
    };
}
pub(crate) use outln;

/// `-o`: the default is a table.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Json,
    Yaml,
    Wide,
    Name,
}

/// Rows of cells under a header.
#[derive(Debug, Default)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new<S: Into<String>>(header: impl IntoIterator<Item = S>) -> Table {
        Table { header: header.into_iter().map(Into::into).collect(), rows: Vec::new() }
    }

    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        self.rows.push(cells.into_iter().map(Into::into).collect());
    }

    /// The table as text; widths count characters, so tree branches (`├─`) align too.
    pub fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).chain([self.header.len()]).max().unwrap_or(0);
        let mut widths = vec![0; columns];
        for line in std::iter::once(&self.header).chain(&self.rows) {
            for (i, cell) in line.iter().enumerate() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for line in std::iter::once(&self.header).chain(&self.rows) {
            let mut text = String::new();
            for (i, cell) in line.iter().enumerate() {
                text.push_str(cell);
                if i + 1 < line.len() {
                    text.extend(std::iter::repeat_n(' ', widths[i] - cell.chars().count() + 2));
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        }
        out
    }
}

pub fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<String> {
    let mut text = serde_json::to_string_pretty(value).context("serialising to JSON")?;
    text.push('\n');
    Ok(text)
}

pub fn to_yaml<T: Serialize + ?Sized>(value: &T) -> Result<String> {
    serde_saphyr::to_string(&value).context("serialising to YAML")
}

/// `value` as `-o json` or `-o yaml` print it; `None` for the other formats.
pub fn structured<T: Serialize + ?Sized>(value: &T, output: Option<Output>) -> Result<Option<String>> {
    match output {
        Some(Output::Json) => to_json(value).map(Some),
        Some(Output::Yaml) => to_yaml(value).map(Some),
        _ => Ok(None),
    }
}

/// A cell for an absent value, as `argocd` writes it.
pub fn or_none(text: &str) -> String {
    if text.is_empty() { "<none>".into() } else { text.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns_by_characters_and_trim_line_ends() {
        let mut table = Table::new(["NAME", "STATUS", "MESSAGE"]);
        table.row(["web", "Synced", ""]);
        table.row(["├─ReplicaSet/web-1", "", "ok"]);
        assert_eq!(
            table.render(),
            "NAME                STATUS  MESSAGE\n\
             web                 Synced\n\
             ├─ReplicaSet/web-1          ok\n"
        );
    }

    #[test]
    fn structured_output_is_json_or_yaml_and_nothing_else() {
        let value = serde_json::json!({"a": [1]});
        assert_eq!(
            structured(&value, Some(Output::Json)).unwrap().unwrap(),
            "{\n  \"a\": [\n    1\n  ]\n}\n"
        );
        assert_eq!(structured(&value, Some(Output::Yaml)).unwrap().unwrap(), "a:\n- 1\n");
        assert_eq!(structured(&value, Some(Output::Wide)).unwrap(), None);
        assert_eq!(or_none(""), "<none>");
    }
}
