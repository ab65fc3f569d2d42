//! jq path expressions (ignoreDifferences' jqPathExpressions), run with jaq: `del(<expression>)`.

use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Vars, data, unwrap_valr};
use jaq_json::{Val, read};

/// Whether the expression is one [`delete_paths`] can run: an error says why not (before any object is
/// compared, so a bad rule is named once rather than failing every comparison).
pub fn check(expression: &str) -> Result<(), String> {
    let code = format!("del({expression})");
    let program = File { code: code.as_str(), path: () };
    let defs = jaq_core::defs().chain(jaq_std::defs()).chain(jaq_json::defs());
    let funs = jaq_core::funs::<data::JustLut<Val>>().chain(jaq_std::funs()).chain(jaq_json::funs());
    let loader = Loader::new(defs);
    let arena = Arena::default();
    let modules =
        loader.load(&arena, program).map_err(|errs| format!("does not parse ({} errors)", errs.len()))?;
    Compiler::default()
        .with_funs(funs)
        .compile(modules)
        .map(|_| ())
        .map_err(|errs| format!("does not compile ({} errors)", errs.len()))
}

/// The value with every path the expression selects deleted.
pub fn delete_paths(value: &serde_json::Value, expression: &str) -> Result<serde_json::Value, String> {
    let code = format!("del({expression})");
    let program = File { code: code.as_str(), path: () };
    let defs = jaq_core::defs().chain(jaq_std::defs()).chain(jaq_json::defs());
    let funs = jaq_core::funs().chain(jaq_std::funs()).chain(jaq_json::funs());
    let loader = Loader::new(defs);
    let arena = Arena::default();
    let modules =
        loader.load(&arena, program).map_err(|errs| format!("does not parse ({} errors)", errs.len()))?;
    let filter = Compiler::default()
        .with_funs(funs)
        .compile(modules)
        .map_err(|errs| format!("does not compile ({} errors)", errs.len()))?;
    let bytes = serde_json::to_vec(value).map_err(|e| e.to_string())?;
    let input = read::parse_single(&bytes).map_err(|e| e.to_string())?;
    let ctx = Ctx::<data::JustLut<Val>>::new(&filter.lut, Vars::new([]));
    let mut out = filter.id.run((ctx, input)).map(unwrap_valr);
    match out.next() {
        Some(Ok(v)) => serde_json::from_str(&v.to_string()).map_err(|e| e.to_string()),
        Some(Err(e)) => Err(e.to_string()),
        None => Ok(value.clone()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn check_accepts_what_delete_paths_runs_and_names_what_does_not_parse() {
        assert_eq!(super::check(".spec.replicas"), Ok(()));
        assert_eq!(super::check(r#".spec.containers[] | select(.name == "a") | .image"#), Ok(()));
        assert!(super::check(".spec[").unwrap_err().contains("does not parse"));
        assert!(super::check("nosuchfunction(1)").is_err());
    }
}
