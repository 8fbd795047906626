//! Builds the agent console (`web/`, Vite + React + TypeScript) into `$OUT_DIR/dist`, which `src/lib.rs`
//! embeds: the binary serves the console it was built with, and nothing has to be installed beside it.
//!
//! It runs `npm ci` when `web/node_modules` is missing or older than `web/package-lock.json`, then
//! `npm run build` (type check, then bundle). Node.js and npm must be on the PATH (they are on this
//! project's machines); `OMNIDESK_WEB_DIST=<dir>` embeds an already built `dist/` instead, for machines
//! that build the console elsewhere.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let web = manifest.join("../../web").canonicalize().expect("the console's sources in web/");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("dist");
    println!("cargo:rerun-if-env-changed=OMNIDESK_WEB_DIST");
    // Only paths that exist: cargo rebuilds on every run for one that does not.
    for input in [
        "src",
        "public",
        "index.html",
        "package.json",
        "package-lock.json",
        "openapi.json",
        "vite.config.ts",
        "tsconfig.json",
    ] {
        let path = web.join(input);
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }

    if let Ok(prebuilt) = std::env::var("OMNIDESK_WEB_DIST") {
        copy_dir(Path::new(&prebuilt), &out);
        return;
    }
    if needs_install(&web) {
        npm(&web, &["ci", "--no-audit", "--no-fund"]);
    }
    let out_arg = out.to_str().expect("OUT_DIR is UTF-8");
    npm(&web, &["run", "build", "--", "--outDir", out_arg, "--emptyOutDir"]);
}

fn needs_install(web: &Path) -> bool {
    let installed = web.join("node_modules/.package-lock.json");
    let modified = |path: &Path| path.metadata().and_then(|m| m.modified()).ok();
    match (modified(&installed), modified(&web.join("package-lock.json"))) {
        (Some(installed), Some(lock)) => installed < lock,
        _ => true,
    }
}

fn npm(web: &Path, args: &[&str]) {
    let status = Command::new("npm").args(args).current_dir(web).status().unwrap_or_else(|error| {
        panic!(
            "cannot run `npm {}` in {} ({error}): the agent console is built with Node.js and npm \
             (Debian: apt-get install nodejs npm), or set OMNIDESK_WEB_DIST to a built web/dist",
            args.join(" "),
            web.display()
        )
    });
    assert!(status.success(), "`npm {}` in {} failed ({status})", args.join(" "), web.display());
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create the embedded dist");
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("OMNIDESK_WEB_DIST {}: {e}", from.display())) {
        let entry = entry.expect("a dist entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy a dist file");
        }
    }
}
