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
