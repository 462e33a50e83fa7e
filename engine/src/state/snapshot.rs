//! Persisted usage: what the `memory` backend writes to `state.snapshot_file` so budgets and
//! rate limits survive a restart. Only `used` is kept — reservations belong to requests of
//! the previous process, which are gone — and only windowed counters (`concurrent` is not usage).

use super::counter::LimitKind;
use super::window::Window;
use serde::{Deserialize, Serialize};
use std::io;
use std::path::{Path, PathBuf};

/// Bumped when the format changes incompatibly; older files are then refused, not misread.
pub const SNAPSHOT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    pub version: u32,
    pub counters: Vec<CounterSnapshot>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CounterSnapshot {
    /// The counter's owner as the compiler names it, e.g. `virtual_key:vk-ml`.
    pub scope: String,
    pub kind: LimitKind,
    pub window: Window,
    /// `Window::window_id` of the window `used` belongs to; a passed window restores as empty.
    pub window_id: u64,
    pub used: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("cannot read state snapshot {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write state snapshot {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("state snapshot {path} is not valid: {source}")]
    Invalid {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("state snapshot {path} has format version {found}; this tollgate reads version {SNAPSHOT_VERSION}")]
    Version { path: PathBuf, found: u32 },
}

impl Snapshot {
    pub fn new(counters: Vec<CounterSnapshot>) -> Snapshot {
        Snapshot {
            version: SNAPSHOT_VERSION,
            counters,
        }
    }

    /// Reads a snapshot file; `Ok(None)` when there is none yet (first start).
    pub fn read_file(path: &Path) -> Result<Option<Snapshot>, SnapshotError> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(SnapshotError::Read {
                    path: path.to_owned(),
                    source,
                })
            }
        };
        let snapshot: Snapshot =
            serde_json::from_slice(&bytes).map_err(|source| SnapshotError::Invalid {
                path: path.to_owned(),
                source,
            })?;
        if snapshot.version != SNAPSHOT_VERSION {
            return Err(SnapshotError::Version {
                path: path.to_owned(),
                found: snapshot.version,
            });
        }
        Ok(Some(snapshot))
    }

    /// Writes the snapshot next to `path` and renames it into place, so a crash mid-write
    /// leaves the previous snapshot intact rather than a truncated file.
    pub fn write_file(&self, path: &Path) -> Result<(), SnapshotError> {
        let write_err = |source| SnapshotError::Write {
            path: path.to_owned(),
            source,
        };
        let bytes = serde_json::to_vec_pretty(self)
            .map_err(io::Error::other)
            .map_err(write_err)?;
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        std::fs::write(&tmp, bytes).map_err(write_err)?;
        std::fs::rename(&tmp, path).map_err(write_err)
    }
}
