//! The effective config for `/admin/config`, with every secret replaced.

use crate::config::Config;
use bytes::Bytes;

pub(super) fn redacted_config(cfg: &Config) -> Bytes {
    // Serializing plain data into a Vec cannot fail; an empty object is the safe fallback.
    Bytes::from(serde_json::to_vec_pretty(cfg).unwrap_or_else(|_| b"{}".to_vec()))
}
