//! The in-process cache saved beside the usage snapshot, as `<state.snapshot_file>.cache`, so
//! a restart does not begin cold: the answers of the in-process store and the vectors of the
//! embedded index, each with its expiry. Shared stores (Redis, Qdrant) keep their own data and
//! are not written.
//!
//! Binary, big-endian: `MAGIC`, then the answers section (count, then per answer its exact key,
//! length and `Entry::encode` bytes), then the index section (see `semantic::index`'s file
//! part), then a CRC-32 of everything before it. The file is written beside its final name and
//! renamed into place, so a crash mid-write leaves the previous file whole.

use super::entry::{unix_ms_now, Entry};
use super::key::Hash128;
use super::store::CacheStore;
use super::ResponseCache;
use bytes::Bytes;
use std::io;
use std::path::{Path, PathBuf};

/// Names the format and its version; another version is refused, never misread.
const MAGIC: &[u8; 8] = b"TGCACHE1";
/// Marks a file without an index section (no embedded index configured at save time).
const NO_INDEX: u8 = 0;
const HAS_INDEX: u8 = 1;

/// The cache file that goes with a usage snapshot file.
pub fn cache_file_for(snapshot: &Path) -> PathBuf {
    let mut name = snapshot.as_os_str().to_owned();
    name.push(".cache");
    PathBuf::from(name)
}

/// How much a save wrote or a restore brought back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Persisted {
    /// Stored answers.
    pub answers: u64,
    /// Vectors of the embedded index.
    pub vectors: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    #[error("cannot read cache file {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write cache file {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("cache file {path} is not valid: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

impl ResponseCache {
    /// Whether this process holds cache data of its own (an in-process store or index).
    pub fn keeps_local_data(&self) -> bool {
        matches!(self.store, CacheStore::Memory(_))
            || self
                .semantic()
                .is_some_and(|s| s.embedded_index().is_some())
    }

    /// Writes the live answers and vectors to `path`.
    pub fn save_to(&self, path: &Path) -> Result<Persisted, PersistError> {
        let now = unix_ms_now();
        let mut out = Vec::with_capacity(1 << 16);
        out.extend_from_slice(MAGIC);
        let mut saved = Persisted::default();
        let count_at = out.len();
        out.extend_from_slice(&0u64.to_be_bytes());
        if let CacheStore::Memory(memory) = &self.store {
            memory.for_each(|key, entry| {
                if entry.remaining(now).is_none() {
                    return;
                }
                let bytes = entry.encode();
                out.extend_from_slice(&key.0);
                out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
                out.extend_from_slice(&bytes);
                saved.answers += 1;
            });
        }
        out[count_at..count_at + 8].copy_from_slice(&saved.answers.to_be_bytes());
        match self.semantic().and_then(|s| s.embedded_index()) {
            Some(index) => {
                out.push(HAS_INDEX);
                saved.vectors = index.write_live(&mut out, now);
            }
            None => out.push(NO_INDEX),
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        write_atomically(path, &out).map_err(|source| PersistError::Write {
            path: path.to_owned(),
            source,
        })?;
        Ok(saved)
    }

    /// Loads what `save_to` wrote, leaving out what has expired since; `Ok(None)` when there
    /// is no file yet. Answers go back only into an in-process store and vectors only into an
    /// embedded index; a file saved under another configuration restores what still fits.
    pub fn restore_from(&self, path: &Path) -> Result<Option<Persisted>, PersistError> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(PersistError::Read {
                    path: path.to_owned(),
                    source,
                })
            }
        };
        let invalid = |reason: String| PersistError::Invalid {
            path: path.to_owned(),
            reason,
        };
        let body = checked_body(&bytes).map_err(invalid)?;
        self.restore_body(body, unix_ms_now())
            .map(Some)
            .map_err(invalid)
    }

    fn restore_body(&self, body: &[u8], now: u64) -> Result<Persisted, String> {
        let mut input = Reader::new(body);
        let mut restored = Persisted::default();
        let answers = input.u64()?;
        for _ in 0..answers {
            let key = Hash128(input.array()?);
            let len = input.u32()? as usize;
            let bytes = Bytes::copy_from_slice(input.bytes(len)?);
            let entry = Entry::decode(bytes).map_err(|e| format!("answer {key}: {e}"))?;
            let (CacheStore::Memory(memory), Some(ttl)) = (&self.store, entry.remaining(now))
            else {
                continue;
            };
            memory.put(&key, entry, ttl);
            restored.answers += 1;
        }
        if input.u8()? == HAS_INDEX {
            match self.semantic().and_then(|s| s.embedded_index()) {
                Some(index) => match index.read_into(&mut input, now)? {
                    Some(n) => restored.vectors = n,
                    None => tracing::warn!(
                        "the saved semantic index holds vectors of another size (the \
                         embedding model changed); it is not restored"
                    ),
                },
                // Not searched by this configuration: nothing to restore it into.
                None => return Ok(restored),
            }
        }
        if !input.is_empty() {
            return Err("unexpected bytes after the index".into());
        }
        Ok(restored)
    }
}

/// The file without its magic and checksum, once both are verified.
fn checked_body(bytes: &[u8]) -> Result<&[u8], String> {
    if bytes.len() < MAGIC.len() + 4 || &bytes[..MAGIC.len()] != MAGIC {
        return Err("not a tollgate cache file of this version".into());
    }
    let (content, crc) = bytes.split_at(bytes.len() - 4);
    let crc = u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]);
    if crc32fast::hash(content) != crc {
        return Err("checksum mismatch (truncated or damaged)".into());
    }
    Ok(&content[MAGIC.len()..])
}

fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// Reads big-endian fields off a byte slice; running past its end is an error, not a panic.
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { rest: bytes }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], String> {
        if n > self.rest.len() {
            return Err(format!(
                "ends early: {n} bytes wanted, {} left",
                self.rest.len()
            ));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, String> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u32(&mut self) -> Result<u32, String> {
        self.array().map(u32::from_be_bytes)
    }

    pub(crate) fn u64(&mut self) -> Result<u64, String> {
        self.array().map(u64::from_be_bytes)
    }

    pub(crate) fn f32(&mut self) -> Result<f32, String> {
        self.array().map(f32::from_be_bytes)
    }
}

#[cfg(test)]
#[path = "persist_tests.rs"]
mod tests;
