//! npm packages (MCP servers, agent CLIs) installed once under the target directory, like the
//! Python venv.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

static NPM_LOCK: Mutex<()> = Mutex::new(());

/// A package spec's name and pinned version: `@scope/name@1.2.3` → (`@scope/name`, `1.2.3`).
fn name_and_version(spec: &str) -> (&str, Option<&str>) {
    match spec.get(1..).and_then(|rest| rest.find('@')) {
        Some(at) => (&spec[..at + 1], Some(&spec[at + 2..])),
        None => (spec, None),
    }
}

/// The version field of an installed package's `package.json`, if it is installed.
fn installed_version(modules: &Path, name: &str) -> Option<String> {
    let text = std::fs::read(modules.join(name).join("package.json")).ok()?;
    let manifest: serde_json::Value = serde_json::from_slice(&text).ok()?;
    manifest["version"].as_str().map(str::to_string)
}

/// The `node_modules` directory holding `packages`, npm-installing (from the registry) those
/// not there yet. A package may be pinned as `name@version`; another installed version is
/// replaced.
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
        .filter(|spec| {
            let (name, pinned) = name_and_version(spec);
            match (installed_version(&modules, name), pinned) {
                (None, _) => true,
                (Some(have), Some(want)) => have != want,
                (Some(_), None) => false,
            }
        })
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
/// id is the server's). `package` may be pinned as `name@version`.
pub fn npm_bin_script(package: &str) -> PathBuf {
    let modules = node_modules_with(&[package]);
    let (package, _) = name_and_version(package);
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

#[cfg(test)]
mod tests {
    use super::name_and_version;

    #[test]
    fn specs_split_into_name_and_pinned_version() {
        assert_eq!(name_and_version("left-pad"), ("left-pad", None));
        assert_eq!(
            name_and_version("left-pad@1.3.0"),
            ("left-pad", Some("1.3.0"))
        );
        assert_eq!(name_and_version("@openai/codex"), ("@openai/codex", None));
        assert_eq!(
            name_and_version("@openai/codex@0.171.0"),
            ("@openai/codex", Some("0.171.0"))
        );
    }
}
