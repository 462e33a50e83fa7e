//! Harness for end-to-end tests: starts the real `tollgate` and `loadgen` binaries on free
//! loopback ports, talks to them over HTTP, and stops them (by PID, on drop).

mod embedder;
mod http;
pub mod log_traffic;
mod npm;
mod postgres;
mod process;
mod python;
mod redis;

pub use embedder::embedder_dir;
pub use http::{get, post_json, post_raw, Reply};
pub use npm::{node_modules_with, npm_bin_script};
pub use postgres::{PostgresServer, PG_PASSWORD, PG_USER};
pub use process::{bin_path, run_tollgate, Gateway, Mock};
pub use python::{python_json, python_script_json, python_with, recorded_body};
pub use redis::RedisServer;

/// The SHA-256 of `secret` as hex, as written in `key_sha256:`.
pub fn sha256_hex(secret: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// `body` with the digits after each of `marks` replaced by `#`: the parts of two answers
/// that differ only by the mock's numbering (ids, timestamps).
pub fn numbers_masked(body: &str, marks: &[&str]) -> String {
    let mut out = String::with_capacity(body.len());
    let mut rest = body;
    while let Some((i, mark)) = marks
        .iter()
        .filter_map(|m| Some((rest.find(m)?, m)))
        .min_by_key(|(i, _)| *i)
    {
        let (head, tail) = rest.split_at(i + mark.len());
        out.push_str(head);
        out.push('#');
        rest = tail.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    out.push_str(rest);
    out
}
