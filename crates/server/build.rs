//! Builds the web UI (`ui/` at the repository root, TypeScript with Vite) into `$OUT_DIR/ui` and lists its
//! files for `include_bytes!`, so the one `berth` binary serves it. npm runs only when the UI's sources
//! changed (cargo's rerun-if-changed); `npm ci` only when `node_modules` is missing or older than the lock.
//! `BERTH_UI_SKIP=1` embeds a one-page placeholder instead (for building without Node.js).

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let ui = manifest.join("../../ui");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("ui");
    println!("cargo:rerun-if-env-changed=BERTH_UI_SKIP");
    for input in [
        "src",
        "index.html",
        "package.json",
        "package-lock.json",
        "vite.config.ts",
        "tsconfig.json",
        "public",
    ] {
        // A path that does not exist would make cargo run this script (and rebuild the crate) every time.
        if ui.join(input).exists() {
            println!("cargo:rerun-if-changed={}", ui.join(input).display());
        }
    }
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let skip = std::env::var("BERTH_UI_SKIP").is_ok_and(|v| v == "1");
    if skip || !ui.join("package.json").exists() {
        std::fs::write(
            out.join("index.html"),
            "<!doctype html><title>berth</title><p>This berth was built without its web UI (BERTH_UI_SKIP=1 or no ui/ directory). The API is at /api/v1.</p>\n",
        )
        .unwrap();
    } else {
        build(&ui, &out);
    }
    write_index(&out);
}

fn run(ui: &Path, args: &[&str]) {
    let status = Command::new("npm").args(args).current_dir(ui).status().unwrap_or_else(|e| {
        panic!(
            "running npm {args:?} in {} failed: {e} (install Node.js, or set BERTH_UI_SKIP=1)",
            ui.display()
        )
    });
    assert!(status.success(), "npm {args:?} in {} failed ({status})", ui.display());
}

fn build(ui: &Path, out: &Path) {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let installed = modified(&ui.join("node_modules/.package-lock.json"));
    if installed.is_none() || installed < modified(&ui.join("package-lock.json")) {
        run(ui, &["ci", "--no-audit", "--no-fund", "--loglevel=error"]);
    }
    let out = out.to_str().expect("a UTF-8 OUT_DIR");
    run(ui, &["run", "build", "--", "--outDir", out, "--emptyOutDir", "--logLevel", "warn"]);
}

/// `$OUT_DIR/ui_assets.rs`: `(path, bytes)` of every built file.
fn write_index(out: &Path) {
    let mut files = Vec::new();
    collect(out, out, &mut files);
    files.sort();
    let mut code = String::from("pub static ASSETS: &[(&str, &[u8])] = &[\n");
    for (rel, abs) in files {
        code.push_str(&format!("    ({rel:?}, include_bytes!({abs:?})),\n"));
    }
    code.push_str("];\n");
    std::fs::write(out.parent().unwrap().join("ui_assets.rs"), code).unwrap();
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect(root, &path, files);
        } else {
            let rel = path.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/");
            files.push((rel, path.to_string_lossy().into_owned()));
        }
    }
}
