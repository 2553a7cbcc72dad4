//! `demo` builds the operator console when its sources changed, so that `cargo run -- demo`
//! needs no manual npm step. Not a build script: CI lints and `cargo build` must not need npm.
#![allow(clippy::print_stderr)]

use std::path::Path;
use std::process::Command;
use std::time::SystemTime;

/// Where the built console is looked for when `--ui-dir` is not given.
pub const DEFAULT_DIST: &str = "ui/dist";

/// Files and folders whose change calls for a new build.
const SOURCES: &[&str] = &[
    "src",
    "index.html",
    "package.json",
    "package-lock.json",
    "vite.config.ts",
    "tsconfig.json",
];

/// Runs `npm ci` (when `node_modules` is missing or older than the lock file) and
/// `npm run build` in `ui` when `ui/dist` is missing or older than the sources. Never fails:
/// without npm, or when the build fails, it says so and the demo serves the API alone.
pub fn build_if_stale(ui: &Path) {
    if !ui.join("package.json").is_file() {
        return;
    }
    let built = newest(&ui.join("dist"));
    let sources = SOURCES.iter().filter_map(|s| newest(&ui.join(s))).max();
    if built.is_some() && built >= sources {
        return;
    }
    // A stale build is better than none: it is served when this one cannot be made.
    let fallback = if built.is_some() {
        "serving the previous build of the console"
    } else {
        "serving the API only"
    };
    if Command::new("npm").arg("--version").output().is_err() {
        eprintln!(
            "inferplane demo: the console in ui/ needs a build and npm is not installed: \
             {fallback} (install Node.js 20+ and npm, or pass --ui-dir)"
        );
        return;
    }
    let installed = newest_file(&ui.join("node_modules/.package-lock.json"));
    let lock = newest_file(&ui.join("package-lock.json"));
    if installed.is_none() || installed < lock {
        eprintln!("inferplane demo: installing the console's dependencies (npm ci in ui/)...");
        if !npm(ui, &["ci", "--no-audit", "--no-fund"], fallback) {
            return;
        }
    }
    eprintln!("inferplane demo: building the console (npm run build in ui/)...");
    if npm(ui, &["run", "build"], fallback) {
        eprintln!("inferplane demo: console built in ui/dist");
    }
}

/// Runs npm with its output shown (its progress is the demo's progress); false on failure.
fn npm(dir: &Path, args: &[&str], fallback: &str) -> bool {
    match Command::new("npm").args(args).current_dir(dir).status() {
        Ok(s) if s.success() => true,
        Ok(s) => {
            eprintln!(
                "inferplane demo: `npm {}` failed ({s}): {fallback}",
                args.join(" ")
            );
            false
        }
        Err(e) => {
            eprintln!("inferplane demo: cannot run npm ({e}): {fallback}");
            false
        }
    }
}

fn newest_file(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).ok()?.modified().ok()
}

/// The newest modification time of a file, or of any file under a folder.
fn newest(path: &Path) -> Option<SystemTime> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_dir() {
        return meta.modified().ok();
    }
    std::fs::read_dir(path)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| newest(&e.path()))
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_is_as_new_as_its_newest_file() {
        let dir = std::env::temp_dir().join(format!("ui-build-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("a/b")).unwrap();
        std::fs::write(dir.join("a/old"), "x").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(dir.join("a/b/new"), "y").unwrap();
        let newest_time = newest(&dir).unwrap();
        assert_eq!(Some(newest_time), newest_file(&dir.join("a/b/new")));
        assert!(newest(&dir.join("missing")).is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
