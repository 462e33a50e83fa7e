//! Records to and from PostgreSQL rows.

use super::OpError;
use crate::reqlog::record::{
    from_unix_micros, to_unix_micros, AttemptRecord, CacheResult, GuardrailRecord, LogRecord,
};
use crate::reqlog::sql::COLUMNS;
use std::borrow::Cow;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

/// One statement for a whole batch, whatever its size: each column travels as one array and
/// `UNNEST` turns the arrays back into rows, in order (so ids follow the batch's order, as
/// in SQLite). Fewer round trips than a statement per row, and no parameter-count limit.
pub(super) fn insert_sql() -> String {
    let types = [
        "text", "int8", "text", "text", "text", "text", "text", "text", "text", "text", "int4",
        "text", "int8", "int8", "int8", "float8", "text", "text", "int8", "int8", "int8", "int8",
        "bool", "bool", "text", "text", "text",
    ];
    let arrays: Vec<String> = types
        .iter()
        .enumerate()
        .map(|(i, t)| format!("${}::{t}[]", i + 1))
        .collect();
    format!(
        "INSERT INTO tollgate_requests ({COLUMNS}) SELECT * FROM UNNEST({})",
        arrays.join(", ")
    )
}

/// PostgreSQL text cannot hold NUL characters (SQLite's can). A client can put one in a
/// model name; rather than lose the whole batch to it, it is stored as U+FFFD.
fn text(s: &str) -> Cow<'_, str> {
    if s.contains('\0') {
        Cow::Owned(s.replace('\0', "\u{FFFD}"))
    } else {
        Cow::Borrowed(s)
    }
}

fn opt_text(s: &Option<String>) -> Option<Cow<'_, str>> {
    s.as_deref().map(text)
}

/// Integers are signed in the database; counts beyond `i64::MAX` do not occur, so saturate.
fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn json<T: serde::Serialize>(v: &T) -> String {
    // Serializing plain structs of strings and numbers cannot fail; JSON escapes NUL.
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

/// The 27 column arrays of `insert_sql`, borrowing from `records` where it can.
pub(super) fn insert_params(records: &[LogRecord]) -> Vec<Box<dyn ToSql + Sync + '_>> {
    fn col<'a, T: ToSql + Sync + 'a>(
        records: &'a [LogRecord],
        f: impl Fn(&'a LogRecord) -> T,
    ) -> Box<dyn ToSql + Sync + 'a> {
        Box::new(records.iter().map(f).collect::<Vec<T>>())
    }
    vec![
        col(records, |r| text(&r.request_id)),
        col(records, |r| to_unix_micros(r.time)),
        col(records, |r| opt_text(&r.key_id)),
        col(records, |r| opt_text(&r.team)),
        col(records, |r| opt_text(&r.customer)),
        col(records, |r| text(&r.endpoint)),
        col(records, |r| opt_text(&r.requested_model)),
        col(records, |r| opt_text(&r.provider)),
        col(records, |r| opt_text(&r.model)),
        col(records, |r| json(&r.attempts)),
        col(records, |r| i32::from(r.status)),
        col(records, |r| opt_text(&r.error_type)),
        col(records, |r| int(r.prompt_tokens)),
        col(records, |r| int(r.completion_tokens)),
        col(records, |r| int(r.cached_tokens)),
        col(records, |r| r.cost_usd),
        col(records, |r| r.cache.as_str()),
        col(records, |r| json(&r.guardrails)),
        col(records, |r| int(r.total_us)),
        col(records, |r| r.upstream_us.map(int)),
        col(records, |r| r.ttft_us.map(int)),
        col(records, |r| int(r.overhead_us)),
        col(records, |r| r.stream),
        col(records, |r| r.client_disconnected),
        col(records, |r| opt_text(&r.request_body)),
        col(records, |r| opt_text(&r.response_body)),
        col(records, |r| r.tool.as_ref().map(json)),
    ]
}

fn from_json<T: serde::de::DeserializeOwned>(row: &Row, idx: usize) -> Result<T, OpError> {
    let text: String = row.try_get(idx)?;
    serde_json::from_str(&text)
        .map_err(|e| OpError::Corrupt(format!("column {idx} is not the JSON it should be: {e}")))
}

/// A `SELECT {COLUMNS}, id` row: the record and its row id (for the page cursor).
pub(super) fn read_record(row: &Row) -> Result<(LogRecord, i64), OpError> {
    let u = |idx: usize| -> Result<u64, OpError> { Ok(row.try_get::<_, i64>(idx)?.max(0) as u64) };
    let opt_u = |idx: usize| -> Result<Option<u64>, OpError> {
        Ok(row.try_get::<_, Option<i64>>(idx)?.map(|v| v.max(0) as u64))
    };
    let status: i32 = row.try_get(10)?;
    let cache: String = row.try_get(16)?;
    let rec = LogRecord {
        request_id: row.try_get(0)?,
        time: from_unix_micros(row.try_get(1)?),
        key_id: row.try_get(2)?,
        team: row.try_get(3)?,
        customer: row.try_get(4)?,
        endpoint: row.try_get(5)?,
        requested_model: row.try_get(6)?,
        provider: row.try_get(7)?,
        model: row.try_get(8)?,
        attempts: from_json::<Vec<AttemptRecord>>(row, 9)?,
        status: status.clamp(0, i32::from(u16::MAX)) as u16,
        error_type: row.try_get(11)?,
        prompt_tokens: u(12)?,
        completion_tokens: u(13)?,
        cached_tokens: u(14)?,
        cost_usd: row.try_get(15)?,
        // A value written by a newer version reads as a miss rather than failing the page.
        cache: cache.parse().unwrap_or(CacheResult::Miss),
        guardrails: from_json::<Vec<GuardrailRecord>>(row, 17)?,
        total_us: u(18)?,
        upstream_us: opt_u(19)?,
        ttft_us: opt_u(20)?,
        overhead_us: u(21)?,
        stream: row.try_get(22)?,
        client_disconnected: row.try_get(23)?,
        request_body: row.try_get(24)?,
        response_body: row.try_get(25)?,
        // Written by this store as JSON; a value it cannot read leaves the field out rather
        // than failing the page.
        tool: row
            .try_get::<_, Option<String>>(26)?
            .and_then(|t| serde_json::from_str(&t).ok()),
    };
    Ok((rec, row.try_get(27)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_insert_binds_one_array_per_column() {
        let sql = insert_sql();
        assert_eq!(COLUMNS.split(',').count(), 27);
        assert!(sql.contains("$27::text[]"), "{sql}");
        assert!(!sql.contains("$28"), "{sql}");
        assert_eq!(insert_params(&[]).len(), 27);
    }

    #[test]
    fn nul_characters_become_replacement_characters() {
        assert_eq!(text("gpt\0-4o"), "gpt\u{FFFD}-4o");
        assert!(matches!(text("gpt-4o"), Cow::Borrowed(_)));
    }
}
