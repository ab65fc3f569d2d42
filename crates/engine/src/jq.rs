//! jq path expressions (ignoreDifferences' jqPathExpressions), run with jaq: `del(<expression>)`.

use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Vars, data, unwrap_valr};
use jaq_json::{Val, read};

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
