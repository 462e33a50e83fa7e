//! npm packages (MCP servers) installed once under the target directory, like the Python venv.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

static NPM_LOCK: Mutex<()> = Mutex::new(());

/// The `node_modules` directory holding `packages`, npm-installing (from the registry) those
/// not there yet.
pub fn node_modules_with(packages: &[&str]) -> PathBuf {
    let _guard = NPM_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let target = crate::bin_path("tollgate")
        .parent()
        .and_then(|p| p.parent())
        .expect("target dir")
        .to_path_buf();
    let prefix = target.join("e2e-npm");
    let modules = prefix.join("node_modules");
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| !modules.join(p).join("package.json").exists())
        .collect();
    if !missing.is_empty() {
        std::fs::create_dir_all(&prefix).expect("create npm prefix");
        let ok = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--silent", "--prefix"])
            .arg(&prefix)
            .args(&missing)
            .status()
            .expect("run npm (node and npm must be installed)")
            .success();
        assert!(ok, "npm install {missing:?} failed");
    }
    modules
}

/// The script a package runs as its `bin` (to start it with `node` directly, so its process
/// id is the server's).
pub fn npm_bin_script(package: &str) -> PathBuf {
    let modules = node_modules_with(&[package]);
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(modules.join(package).join("package.json")).expect("package.json"),
    )
    .expect("package.json is JSON");
    let bin = match &manifest["bin"] {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Object(m) => m
            .values()
            .next()
            .and_then(|v| v.as_str())
            .expect("a bin entry")
            .to_string(),
        _ => panic!("{package} has no bin"),
    };
    modules.join(package).join(bin)
}
