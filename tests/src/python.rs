//! A Python virtualenv with the official SDKs, created once under the target directory.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

static VENV_LOCK: Mutex<()> = Mutex::new(());

/// The venv's python, with `packages` pip-installed (from PyPI) if not there yet. A package
/// whose import name differs from its pip name is given as `pip-name:import.name`.
pub fn python_with(packages: &[&str]) -> PathBuf {
    let _guard = VENV_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let target = crate::bin_path("tollgate")
        .parent()
        .and_then(|p| p.parent())
        .expect("target dir")
        .to_path_buf();
    let venv = target.join("e2e-venv");
    let python = venv.join("bin/python");
    if !python.exists() {
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .expect("python3 -m venv")
            .success();
        assert!(ok, "creating the test virtualenv failed");
    }
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| {
            let module = p
                .split_once(':')
                .map_or_else(|| p.replace('-', "_"), |(_, m)| m.to_string());
            !Command::new(&python)
                .args(["-c", &format!("import {module}")])
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .map(|p| p.split_once(':').map_or(p, |(pip, _)| pip))
        .collect();
    if !missing.is_empty() {
        let ok = Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(&missing)
            .status()
            .expect("pip install")
            .success();
        assert!(ok, "pip install {missing:?} failed");
    }
    python
}

/// Runs `script` with the venv's python (with `packages` installed) and returns the JSON
/// printed on its last line; a failing script fails the test with its output.
pub fn python_json(packages: &[&str], script: &str) -> serde_json::Value {
    let mut cmd = Command::new(python_with(packages));
    cmd.arg("-c").arg(script);
    last_line_json(cmd)
}

/// The JSON body of a request a `loadgen mock` recorded.
pub fn recorded_body(recorded: &serde_json::Value) -> serde_json::Value {
    serde_json::from_str(recorded["body"].as_str().expect("recorded body")).expect("JSON body")
}

/// Runs the script file `script` with `args` like [`python_json`].
pub fn python_script_json(packages: &[&str], script: &Path, args: &[&str]) -> serde_json::Value {
    let mut cmd = Command::new(python_with(packages));
    cmd.arg(script).args(args);
    last_line_json(cmd)
}

/// Runs `cmd`; the JSON on the last line of its output, or the test fails with that output.
fn last_line_json(mut cmd: Command) -> serde_json::Value {
    let out = cmd.output().expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "script failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}
