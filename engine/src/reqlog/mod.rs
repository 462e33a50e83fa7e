//! The request log: one record per request, written off the response path.
//!
//! Requests hand a [`LogRecord`] to [`RequestLog::record`], which only tries to put it in a
//! bounded queue: a full queue drops the record and counts it (`tollgate_log_dropped_total`)
//! rather than slow the request. A dedicated OS thread drains the queue in batches into a
//! [`LogStore`]: SQLite (the default, one file beside the config) or PostgreSQL (one log
//! shared by many replicas). The admin API reads through the same store on its own
//! connections, so reads never wait on writes. Both stores build their filters and shape
//! their answers with the same code ([`sql`]), so they answer every query alike.

mod config;
mod pg_url;
#[cfg(feature = "postgres")]
mod postgres;
mod query;
mod record;
mod sql;
mod sqlite;
#[cfg(test)]
mod tests;
mod writer;

pub use config::{LogStoreKind, LogsConfig, RetentionConfig};
pub use pg_url::{check_postgres_url, redact_postgres_url};
#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;
pub use query::{
    Cursor, GroupBy, LogPage, LogQuery, QueryError, SpendQuery, SpendReport, SpendRow, SpendTotals,
    StatusFilter, DEFAULT_LIMIT, MAX_LIMIT,
};
pub use record::{
    format_time, from_unix_micros, to_unix_micros, AttemptRecord, CacheResult, GuardrailRecord,
    LogRecord, ToolRecord,
};
pub use sqlite::SqliteStore;
pub use writer::{LogCounters, RequestLog, WriterOptions};

use chrono::{DateTime, Utc};
use std::path::PathBuf;

/// Where records are kept. Every method is blocking; the writer thread calls `insert_batch`
/// and `apply_retention`, admin handlers call `query` and `spend` from `spawn_blocking`.
/// Methods take `&self` so one store can be shared by the writer and concurrent readers;
/// an implementation keeps its write and read connections apart.
pub trait LogStore: Send + Sync {
    /// Writes all records or none of them.
    fn insert_batch(&self, records: &[LogRecord]) -> Result<(), Error>;
    /// One page of records, newest first.
    fn query(&self, query: &LogQuery) -> Result<LogPage, Error>;
    /// Whether the store answers a trivial query now (for `/readyz`).
    fn ping(&self) -> Result<(), Error>;
    /// Requests, tokens, cost and errors summed per group.
    fn spend(&self, query: &SpendQuery) -> Result<SpendReport, Error>;
    /// Deletes records older than `max_age` (relative to `now`), then the oldest records beyond
    /// `max_rows`. Returns how many were deleted.
    fn apply_retention(
        &self,
        retention: &RetentionConfig,
        now: DateTime<Utc>,
    ) -> Result<u64, Error>;
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "request log: directory {} does not exist (logs.path: {}); create it or change logs.path",
        dir.display(), path.display()
    )]
    MissingDirectory { dir: PathBuf, path: PathBuf },
    #[error("request log: cannot write {}: {source}; check its permissions or change logs.path", path.display())]
    NotWritable {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "request log {} has schema version {found}, newer than this tollgate knows ({known}); \
         upgrade tollgate or point logs.path at another file",
        path.display()
    )]
    SchemaTooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("request log: {url}: {message}")]
    PostgresUrl { url: String, message: String },
    #[error("request log: PostgreSQL at {url}: {message}")]
    Postgres { url: String, message: String },
    #[error(
        "request log: PostgreSQL at {url} is unreachable; records are dropped until it \
         answers (next attempt in {}ms)",
        retry_in.as_millis()
    )]
    PostgresUnavailable {
        url: String,
        retry_in: std::time::Duration,
    },
    #[error(
        "request log at {url} has schema version {found}, newer than this tollgate knows \
         ({known}); upgrade tollgate or point logs.url at another database"
    )]
    PostgresSchemaTooNew { url: String, found: i64, known: i64 },
    #[error(
        "request log: `kind: postgres` is not available in this build (built without the \
         `postgres` feature)"
    )]
    PostgresNotBuilt,
    #[error("request log is off (logs.kind: none)")]
    Disabled,
    #[error("request log: cannot start the writer thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("request log: {0}")]
    Sqlite(#[from] rusqlite::Error),
}
