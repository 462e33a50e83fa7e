//! The request log: one record per request, written off the response path.
//!
//! This part holds what a record is, the `logs:` config section and the admin queries.

mod config;
mod query;
mod record;

pub use config::{LogStoreKind, LogsConfig, RetentionConfig};
pub use query::{
    Cursor, GroupBy, LogPage, LogQuery, QueryError, SpendQuery, SpendReport, SpendRow,
    SpendTotals, StatusFilter, DEFAULT_LIMIT, MAX_LIMIT,
};
pub use record::{
    format_time, from_unix_micros, to_unix_micros, AttemptRecord, CacheResult, GuardrailRecord,
    LogRecord,
};
