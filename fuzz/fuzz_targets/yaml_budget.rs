//! Any text given to the YAML reader ends in documents or a typed error, within its budgets: no panic, no
//! stack overflow, no unbounded memory (libFuzzer's -rss_limit_mb catches the last).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = berth_repo::render::parse_yaml_documents(text, "fuzz.yaml");
});
