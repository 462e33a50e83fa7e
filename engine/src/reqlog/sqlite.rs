//! The request log in one SQLite file.
//!
//! WAL mode lets the admin API read while the writer thread appends; `synchronous=NORMAL`
//! skips the fsync per commit (a power cut may lose the last batches, never corrupt the file),
//! which is the right trade for a log. The schema is versioned with `PRAGMA user_version`
//! and upgraded by the numbered migrations below, so an existing file is upgraded in place.

use super::query::{LogPage, LogQuery, SpendQuery, SpendReport, SpendRow, SpendTotals};
use super::record::{
    from_unix_micros, to_unix_micros, AttemptRecord, CacheResult, GuardrailRecord, LogRecord,
};
use super::sql::{self, Arg, COLUMNS};
use super::{Error, LogStore, RetentionConfig};
use chrono::{DateTime, Utc};
use rusqlite::types::{Type, Value};
use rusqlite::{params, params_from_iter, Connection, OpenFlags, Row, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// Schema changes in order; `user_version` is the number applied. Append only: never edit an
/// entry that has shipped, add a new one.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: the requests table. Attempts and guardrail actions are JSON text: they are read
    // back whole, never filtered on. Indexes pair each filter column with time so a filtered,
    // newest-first page is one index range scan.
    "CREATE TABLE requests (
        id                  INTEGER PRIMARY KEY,
        request_id          TEXT NOT NULL,
        time_us             INTEGER NOT NULL,
        key_id              TEXT,
        team                TEXT,
        customer            TEXT,
        endpoint            TEXT NOT NULL,
        requested_model     TEXT,
        provider            TEXT,
        model               TEXT,
        attempts            TEXT NOT NULL,
        status              INTEGER NOT NULL,
        error_type          TEXT,
        prompt_tokens       INTEGER NOT NULL,
        completion_tokens   INTEGER NOT NULL,
        cached_tokens       INTEGER NOT NULL,
        cost_usd            REAL NOT NULL,
        cache               TEXT NOT NULL,
        guardrails          TEXT NOT NULL,
        total_us            INTEGER NOT NULL,
        upstream_us         INTEGER,
        ttft_us             INTEGER,
        overhead_us         INTEGER NOT NULL,
        stream              INTEGER NOT NULL,
        client_disconnected INTEGER NOT NULL,
        request_body        TEXT,
        response_body       TEXT
    );
    CREATE INDEX requests_time ON requests (time_us);
    CREATE INDEX requests_key ON requests (key_id, time_us);
    CREATE INDEX requests_team ON requests (team, time_us);
    CREATE INDEX requests_customer ON requests (customer, time_us);
    -- The model a request counts under: the one that served it, else the one it asked for
    -- (refusals). Indexed as an expression so filtering and grouping by it scan in order.
    CREATE INDEX requests_model ON requests (COALESCE(model, requested_model), time_us);
    CREATE INDEX requests_provider ON requests (provider, time_us);
    CREATE INDEX requests_status ON requests (status, time_us);",
    // 2: MCP tool calls: server, tool, arguments (as sent upstream, after redaction),
    // result size and whether the tool reported an error, as JSON.
    "ALTER TABLE requests ADD COLUMN tool TEXT;",
    // 3: every index costs the writer on each insert (on two cores, CPU taken from requests);
    // team, customer and provider filters scan by time instead. Time, key, model and status
    // stay indexed: the filters used most, and group-by queries read the time range anyway.
    "DROP INDEX IF EXISTS requests_team;
     DROP INDEX IF EXISTS requests_customer;
     DROP INDEX IF EXISTS requests_provider;",
];

/// How long a writer waits for a lock held by another connection before the batch fails.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Pages of WAL between automatic checkpoints; see `SqliteStore::open`.
const WAL_AUTOCHECKPOINT_PAGES: i64 = 4000;
/// Retention deletes in chunks so one pass never holds the write lock for long.
const DELETE_CHUNK: i64 = 10_000;
/// Idle read connections kept for the next admin query.
const MAX_IDLE_READERS: usize = 4;

pub struct SqliteStore {
    path: PathBuf,
    /// Only the writer thread inserts and deletes, so this lock is uncontended; it exists to
    /// make the store `Sync` for the readers that share it.
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
}

impl SqliteStore {
    /// Opens or creates the file, switches it to WAL and brings the schema up to date.
    pub fn open(path: &Path) -> Result<SqliteStore, Error> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !dir.is_dir() {
            return Err(Error::MissingDirectory {
                dir,
                path: path.to_path_buf(),
            });
        }
        let not_writable = |source| Error::NotWritable {
            path: path.to_path_buf(),
            source,
        };
        let mut conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(not_writable)?;
        // SQLite falls back to read-only when the file is write-protected; the log would then
        // fail on every batch, so say so now.
        if conn.is_readonly("main").map_err(not_writable)? {
            return Err(not_writable(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_READONLY),
                Some("the file is read-only".into()),
            )));
        }
        conn.busy_timeout(BUSY_TIMEOUT).map_err(not_writable)?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .map_err(not_writable)?;
        if !mode.eq_ignore_ascii_case("wal") {
            // Some file systems (network mounts) refuse WAL; the log still works, but readers
            // then wait for writers.
            tracing::warn!(path = %path.display(), mode = %mode, "request log: WAL mode unavailable");
        }
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(not_writable)?;
        // Checkpoint every 4,000 pages (16 MB of WAL at 4 KiB pages) rather than SQLite's
        // 1,000: a page the batches keep touching (the key index's leaves) is then copied
        // into the database once per checkpoint instead of four times, with fewer fsyncs.
        // The WAL file stays at that size between checkpoints.
        conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)
            .map_err(not_writable)?;
        migrate(&mut conn, path)?;
        Ok(SqliteStore {
            path: path.to_path_buf(),
            writer: Mutex::new(conn),
            readers: Mutex::new(Vec::new()),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version of the open file (the number of migrations applied).
    pub fn schema_version(&self) -> Result<i64, Error> {
        Ok(self
            .lock_writer()
            .pragma_query_value(None, "user_version", |r| r.get(0))?)
    }

    /// Rows in the table; the writer uses it for `max_rows`.
    pub fn count(&self) -> Result<u64, Error> {
        self.with_reader(|c| {
            let n: i64 = c.query_row("SELECT COUNT(*) FROM requests", [], |r| r.get(0))?;
            Ok(n as u64)
        })
    }

    fn lock_writer(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave the connection half-used (each
        // operation is one transaction), so a poisoned lock is still usable.
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on a read-only connection, reusing an idle one when there is one.
    fn with_reader<T>(&self, f: impl FnOnce(&Connection) -> Result<T, Error>) -> Result<T, Error> {
        let idle = self.readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match idle {
            Some(c) => c,
            None => {
                let c = Connection::open_with_flags(
                    &self.path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                c.busy_timeout(BUSY_TIMEOUT)?;
                c
            }
        };
        let out = f(&conn);
        let mut idle = self.readers.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
        out
    }
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<(), Error> {
    let known = MIGRATIONS.len() as i64;
    let found: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if found > known {
        return Err(Error::SchemaTooNew {
            path: path.to_path_buf(),
            found,
            known,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        // The version bump commits with the change, so a crash mid-way re-runs only the
        // migration that did not finish.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

/// SQLite integers are signed; counts beyond `i64::MAX` do not occur, so saturate.
fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn json<T: serde::Serialize>(v: &T) -> String {
    // Serializing plain structs of strings and numbers cannot fail.
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

/// A list as JSON text in `buf`, reused from record to record so a batch allocates once per
/// list column rather than once per record. Most lists are empty (no retry, no guardrail
/// action), and those skip the serializer.
fn json_list<'b, T: serde::Serialize>(buf: &'b mut Vec<u8>, list: &[T]) -> &'b str {
    if list.is_empty() {
        return "[]";
    }
    buf.clear();
    // Serializing plain structs of strings and numbers cannot fail, and serde_json writes
    // UTF-8 only; both fallbacks are unreachable and keep a batch from failing.
    if serde_json::to_writer(&mut *buf, list).is_err() {
        return "[]";
    }
    std::str::from_utf8(buf).unwrap_or("[]")
}

fn from_json<T: serde::de::DeserializeOwned>(row: &Row<'_>, idx: usize) -> rusqlite::Result<T> {
    let text: String = row.get(idx)?;
    serde_json::from_str(&text)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, Type::Text, Box::new(e)))
}

fn read_record(row: &Row<'_>) -> rusqlite::Result<LogRecord> {
    let u = |idx: usize| -> rusqlite::Result<u64> { Ok(row.get::<_, i64>(idx)?.max(0) as u64) };
    let opt_u = |idx: usize| -> rusqlite::Result<Option<u64>> {
        Ok(row.get::<_, Option<i64>>(idx)?.map(|v| v.max(0) as u64))
    };
    let cache: String = row.get(16)?;
    Ok(LogRecord {
        request_id: row.get(0)?,
        time: from_unix_micros(row.get(1)?),
        key_id: row.get(2)?,
        team: row.get(3)?,
        customer: row.get(4)?,
        endpoint: row.get(5)?,
        requested_model: row.get(6)?,
        provider: row.get(7)?,
        model: row.get(8)?,
        attempts: from_json::<Vec<AttemptRecord>>(row, 9)?,
        status: row.get(10)?,
        error_type: row.get(11)?,
        prompt_tokens: u(12)?,
        completion_tokens: u(13)?,
        cached_tokens: u(14)?,
        cost_usd: row.get(15)?,
        // A value written by a newer version reads as a miss rather than failing the page.
        cache: cache.parse().unwrap_or(CacheResult::Miss),
        guardrails: from_json::<Vec<GuardrailRecord>>(row, 17)?,
        total_us: u(18)?,
        upstream_us: opt_u(19)?,
        ttft_us: opt_u(20)?,
        overhead_us: u(21)?,
        stream: row.get(22)?,
        client_disconnected: row.get(23)?,
        request_body: row.get(24)?,
        response_body: row.get(25)?,
        tool: row
            .get::<_, Option<String>>(26)?
            .and_then(|t| serde_json::from_str(&t).ok()),
    })
}

impl LogStore for SqliteStore {
    fn insert_batch(&self, records: &[LogRecord]) -> Result<(), Error> {
        if records.is_empty() {
            return Ok(());
        }
        let mut conn = self.lock_writer();
        // IMMEDIATE takes the write lock up front, so waiting on another writer happens in
        // the busy handler at BEGIN rather than failing half-way through the batch.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut stmt = tx.prepare_cached(&format!(
                "INSERT INTO requests ({COLUMNS}) VALUES \
                 (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            ))?;
            let (mut attempts, mut guardrails) = (Vec::new(), Vec::new());
            for r in records {
                stmt.execute(params![
                    r.request_id,
                    to_unix_micros(r.time),
                    r.key_id,
                    r.team,
                    r.customer,
                    r.endpoint,
                    r.requested_model,
                    r.provider,
                    r.model,
                    json_list(&mut attempts, &r.attempts),
                    r.status,
                    r.error_type,
                    int(r.prompt_tokens),
                    int(r.completion_tokens),
                    int(r.cached_tokens),
                    r.cost_usd,
                    r.cache.as_str(),
                    json_list(&mut guardrails, &r.guardrails),
                    int(r.total_us),
                    r.upstream_us.map(int),
                    r.ttft_us.map(int),
                    int(r.overhead_us),
                    r.stream,
                    r.client_disconnected,
                    r.request_body,
                    r.response_body,
                    r.tool.as_ref().map(json),
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn ping(&self) -> Result<(), Error> {
        self.with_reader(|conn| {
            Ok(conn.query_row("SELECT COUNT(*) FROM requests WHERE 0", [], |_| Ok(()))?)
        })
    }

    fn query(&self, q: &LogQuery) -> Result<LogPage, Error> {
        let (sql, args) = sql::page_query("requests", q, |_, _| "?".to_string());
        let args = args.into_iter().map(|a| match a {
            Arg::Text(t) => Value::Text(t),
            Arg::Int(i) => Value::Integer(i),
            Arg::Real(r) => Value::Real(r),
        });
        let rows = self.with_reader(|conn| {
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(params_from_iter(args), |row| {
                Ok((read_record(row)?, row.get::<_, i64>(27)?))
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })?;
        Ok(sql::into_page(rows, q.limit))
    }

    fn spend(&self, q: &SpendQuery) -> Result<SpendReport, Error> {
        let group = sql::group_column(q.group_by);
        let sql = format!(
            "SELECT {group} AS g, COUNT(*), SUM(prompt_tokens), SUM(completion_tokens), \
             SUM(cached_tokens), SUM(cost_usd), SUM(status >= 400) \
             FROM requests WHERE time_us >= ? AND time_us < ? GROUP BY g"
        );
        let (since, until) = sql::spend_range(q);
        let rows = self.with_reader(|conn| {
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(params![since, until], |r| {
                let n =
                    |i: usize| -> rusqlite::Result<u64> { Ok(r.get::<_, i64>(i)?.max(0) as u64) };
                Ok(SpendRow {
                    group: r.get(0)?,
                    totals: SpendTotals {
                        requests: n(1)?,
                        prompt_tokens: n(2)?,
                        completion_tokens: n(3)?,
                        cached_tokens: n(4)?,
                        cost_usd: r.get(5)?,
                        errors: n(6)?,
                    },
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })?;
        Ok(sql::finish_spend(q, rows))
    }

    fn apply_retention(
        &self,
        retention: &RetentionConfig,
        now: DateTime<Utc>,
    ) -> Result<u64, Error> {
        let conn = self.lock_writer();
        let mut deleted = 0u64;
        if let Some(age) = retention.max_age() {
            let age = chrono::Duration::from_std(age).unwrap_or(chrono::Duration::MAX);
            let cutoff = now
                .checked_sub_signed(age)
                .map(to_unix_micros)
                .unwrap_or(i64::MIN);
            loop {
                let n = conn.execute(
                    "DELETE FROM requests WHERE id IN \
                     (SELECT id FROM requests WHERE time_us < ? ORDER BY time_us LIMIT ?)",
                    params![cutoff, DELETE_CHUNK],
                )?;
                deleted += n as u64;
                if (n as i64) < DELETE_CHUNK {
                    break;
                }
            }
        }
        if let Some(max_rows) = retention.max_rows {
            let count: i64 = conn.query_row("SELECT COUNT(*) FROM requests", [], |r| r.get(0))?;
            let mut excess = count - int(max_rows);
            while excess > 0 {
                let n = conn.execute(
                    "DELETE FROM requests WHERE id IN \
                     (SELECT id FROM requests ORDER BY time_us, id LIMIT ?)",
                    params![excess.min(DELETE_CHUNK)],
                )?;
                if n == 0 {
                    break;
                }
                deleted += n as u64;
                excess -= n as i64;
            }
        }
        Ok(deleted)
    }
}
