//! Questions on the terminal: a line (a password without echo) and a yes/no confirmation.

use anyhow::{Context, Result, bail};
use std::io::{BufRead, IsTerminal};

/// Reads one line from the terminal; `hidden` turns echo off while a password is typed.
pub fn prompt(label: &str, hidden: bool) -> Result<String> {
    eprint!("{label}");
    let stty = |arg: &str| {
        std::process::Command::new("stty")
            .arg(arg)
            .stdin(std::process::Stdio::inherit())
            .status()
            .is_ok_and(|s| s.success())
    };
    let echo_off = hidden && stty("-echo");
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    if echo_off {
        stty("echo");
        eprintln!();
    }
    read.context("reading from the terminal")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// Asks `question`; true for y/yes. Without a terminal it refuses `what` and says to pass -y.
pub fn confirm(question: &str, what: &str) -> Result<bool> {
    if !std::io::stdin().is_terminal() {
        bail!("refusing to {what} without confirmation: stdin is not a terminal, pass -y");
    }
    eprint!("{question}");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer).context("reading the answer")?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}
