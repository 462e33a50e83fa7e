//! The request log in PostgreSQL (`logs: {kind: postgres, url: ...}`): one log that any
//! number of gateway replicas write to and query.
//!
//! The store keeps the [`LogStore`] contract the writer thread and admin handlers rely on
//! (blocking calls), and runs `tokio-postgres` on a small runtime of its own: its I/O then
//! never competes with requests for the gateway's workers, and blocking on it is allowed
//! from the writer thread and from `spawn_blocking`.
//!
//! PostgreSQL being down must never reach a request. The writer holds one connection; when
//! it breaks, batches fail at once (counted by the writer) until a reconnect succeeds, and
//! reconnects back off exponentially (500 ms doubling to 30 s) so a dead server costs a
//! connection attempt now and then, not one per batch. Every operation has a deadline, so a
//! server that stops answering cannot hold the writer either.

mod rows;
mod schema;

use super::query::{LogPage, LogQuery, SpendQuery, SpendReport, SpendRow, SpendTotals};
use super::sql::{self, Arg};
use super::{Error, LogStore, RetentionConfig};
use chrono::{DateTime, Utc};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Statement};

/// How long to wait for a connection when the URL does not say (`connect_timeout=`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest any one statement may take before its connection is given up on.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(30);
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Retention deletes in chunks so no one statement locks many rows for long.
const DELETE_CHUNK: i64 = 10_000;
/// Idle read connections kept for the next admin query.
const MAX_IDLE_READERS: usize = 4;

/// Why an operation failed, before it is put in words for the operator.
#[derive(Debug)]
pub(super) enum OpError {
    Db(tokio_postgres::Error),
    Timeout(Duration),
    SchemaTooNew { found: i64, known: i64 },
    Corrupt(String),
}

impl From<tokio_postgres::Error> for OpError {
    fn from(e: tokio_postgres::Error) -> Self {
        OpError::Db(e)
    }
}

/// `tokio_postgres::Error` displays only its kind ("db error"); the server's message and
/// the I/O error are in its source chain.
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// One connection and the task that drives its socket.
struct Conn {
    client: Client,
    driver: JoinHandle<()>,
    /// The batch insert, prepared on first use.
    insert: Option<Statement>,
}

impl Conn {
    fn is_usable(&self) -> bool {
        !self.client.is_closed()
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        // A server that stopped answering would keep the driver task waiting on its socket.
        self.driver.abort();
    }
}

/// The writer's connection and when it may next try to make one.
#[derive(Default)]
struct Link {
    conn: Option<Conn>,
    /// Set while the server is unreachable: no attempt before this instant.
    retry_at: Option<Instant>,
    backoff: Duration,
    /// Failed connection attempts since the last success.
    failures: u32,
}

pub struct PostgresStore {
    config: tokio_postgres::Config,
    /// The URL with its password hidden, for errors and logs.
    shown_url: String,
    /// `None` only while dropping.
    runtime: Option<Runtime>,
    /// Only the writer thread inserts and deletes, so this lock is uncontended; it exists to
    /// make the store `Sync` for the readers that share it.
    writer: Mutex<Link>,
    readers: Mutex<Vec<Conn>>,
    /// The schema is known to be current; set by the first connection that checked it.
    schema_ready: AtomicBool,
}

impl PostgresStore {
    /// Prepares the store and makes a first connection, migrating the schema. An unreachable
    /// server is not an error (requests are served and records dropped until it answers); a
    /// server that refuses (see `first_contact`) is.
    pub fn open(url: &str) -> Result<PostgresStore, Error> {
        let shown_url = super::redact_postgres_url(url);
        super::check_postgres_url(url).map_err(|message| Error::PostgresUrl {
            url: shown_url.clone(),
            message,
        })?;
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| Error::PostgresUrl {
            url: shown_url.clone(),
            message: describe(&e),
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("tollgate");
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("tollgate-reqlog-pg")
            .enable_all()
            .build()
            .map_err(Error::Thread)?;
        let store = PostgresStore {
            config,
            shown_url,
            runtime: Some(runtime),
            writer: Mutex::new(Link::default()),
            readers: Mutex::new(Vec::new()),
            schema_ready: AtomicBool::new(false),
        };
        // On a thread of its own: `open` may be called on a runtime worker, where blocking
        // on another runtime is not allowed.
        std::thread::scope(|s| {
            s.spawn(|| store.first_contact())
                .join()
                .unwrap_or_else(|_| Err(Error::Thread(std::io::Error::other("panicked"))))
        })?;
        Ok(store)
    }

    /// Applied schema version (the number of migrations).
    pub fn schema_version(&self) -> Result<i64, Error> {
        self.with_reader(|rt, conn| {
            rt.block_on(timed(async {
                let row = conn
                    .client
                    .query_one(
                        "SELECT COALESCE(MAX(version), 0)::int8 FROM tollgate_schema_migrations",
                        &[],
                    )
                    .await?;
                Ok(row.try_get(0)?)
            }))
        })
    }

    /// Rows in the table.
    pub fn count(&self) -> Result<u64, Error> {
        self.with_reader(|rt, conn| {
            rt.block_on(timed(async {
                let row = conn
                    .client
                    .query_one("SELECT COUNT(*) FROM tollgate_requests", &[])
                    .await?;
                Ok(row.try_get::<_, i64>(0)?.max(0) as u64)
            }))
        })
    }

    fn runtime(&self) -> &Runtime {
        // Only `drop` takes the runtime, and nothing runs after it.
        self.runtime
            .as_ref()
            .expect("the runtime lives as long as the store")
    }

    fn error(&self, e: OpError) -> Error {
        let url = self.shown_url.clone();
        match e {
            OpError::Db(e) => {
                if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) {
                    self.schema_ready.store(false, Ordering::Release);
                }
                Error::Postgres {
                    url,
                    message: describe(&e),
                }
            }
            OpError::Timeout(after) => Error::Postgres {
                url,
                message: format!("no answer within {after:?}"),
            },
            OpError::SchemaTooNew { found, known } => {
                Error::PostgresSchemaTooNew { url, found, known }
            }
            OpError::Corrupt(message) => Error::Postgres { url, message },
        }
    }

    /// A new connection with its driver running.
    fn connect(&self) -> Result<Conn, OpError> {
        self.runtime().block_on(async {
            let (client, connection) =
                timed(async { Ok(self.config.connect(NoTls).await?) }).await?;
            let driver = tokio::spawn(async move {
                // Errors surface to the client's next call as a closed connection.
                let _ = connection.await;
            });
            Ok(Conn {
                client,
                driver,
                insert: None,
            })
        })
    }

    /// Brings the schema up to date the first time any connection is used (and again if
    /// the table went missing, e.g. the database was recreated under a running gateway).
    fn ensure_schema(&self, conn: &mut Conn) -> Result<(), OpError> {
        if !self.schema_ready.load(Ordering::Acquire) {
            self.runtime()
                .block_on(timed(schema::migrate(&mut conn.client)))?;
            self.schema_ready.store(true, Ordering::Release);
        }
        Ok(())
    }

    fn lock_writer(&self) -> MutexGuard<'_, Link> {
        // A panic while holding the lock cannot leave the link inconsistent beyond a
        // connection that the next call checks anyway.
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the writer's connection, connecting first when there is none and the
    /// backoff allows. Fails at once while backing off.
    fn with_writer<T>(
        &self,
        f: impl FnOnce(&Runtime, &mut Conn) -> Result<T, OpError>,
    ) -> Result<T, Error> {
        let mut link = self.lock_writer();
        if link.conn.as_ref().is_some_and(|c| !c.is_usable()) {
            link.conn = None;
        }
        if link.conn.is_none() {
            if let Some(at) = link.retry_at {
                let now = Instant::now();
                if now < at {
                    return Err(Error::PostgresUnavailable {
                        url: self.shown_url.clone(),
                        retry_in: at - now,
                    });
                }
            }
            match self.connect() {
                Ok(conn) => {
                    if link.failures > 0 {
                        tracing::info!(
                            url = %self.shown_url,
                            failed_attempts = link.failures,
                            "request log: PostgreSQL reachable again"
                        );
                    }
                    *link = Link {
                        conn: Some(conn),
                        ..Link::default()
                    };
                }
                Err(e) => {
                    let e = self.error(e);
                    self.note_failure(&mut link, &e);
                    return Err(e);
                }
            }
        }
        let Some(conn) = link.conn.as_mut() else {
            return Err(self.error(OpError::Corrupt("no connection".into())));
        };
        let out = self
            .ensure_schema(conn)
            .and_then(|()| f(self.runtime(), conn));
        if let Err(e) = &out {
            // A connection that broke or stopped answering is replaced on the next call;
            // one that reported an SQL error is still good.
            if matches!(e, OpError::Timeout(_)) || !conn.is_usable() {
                link.conn = None;
            }
        }
        out.map_err(|e| self.error(e))
    }

    /// A failed connection attempt: when to try again, and a log line for the first one of
    /// a run (the writer reports the batches that fail meanwhile).
    fn note_failure(&self, link: &mut Link, e: &Error) {
        link.failures += 1;
        link.backoff = if link.backoff.is_zero() {
            FIRST_BACKOFF
        } else {
            (link.backoff * 2).min(MAX_BACKOFF)
        };
        // Jitter keeps replicas that lost the server together from retrying in step.
        let wait = link.backoff.mul_f64(0.8 + 0.4 * fastrand::f64());
        link.retry_at = Some(Instant::now() + wait);
        if link.failures == 1 {
            tracing::error!(
                error = %e,
                "request log: cannot reach PostgreSQL; requests are served, \
                 their records dropped until it answers"
            );
        } else {
            tracing::debug!(error = %e, retry_in = ?wait, "request log: PostgreSQL still unreachable");
        }
    }

    /// The connection `open` makes. A server that cannot be reached is waited for (the
    /// gateway serves meanwhile); one that answers "no" — a wrong password, a missing
    /// database, no right to create the tables, a newer schema — will not change its mind,
    /// so that is an error at start, as an unwritable SQLite file is.
    fn first_contact(&self) -> Result<(), Error> {
        let conn = self.connect().and_then(|mut conn| {
            self.ensure_schema(&mut conn)?;
            Ok(conn)
        });
        match conn {
            Ok(conn) => {
                self.lock_writer().conn = Some(conn);
                Ok(())
            }
            Err(e) => {
                let refused = match &e {
                    OpError::SchemaTooNew { .. } | OpError::Corrupt(_) => true,
                    OpError::Db(db) => db.code().is_some_and(|c| !transient(c.code())),
                    OpError::Timeout(_) => false,
                };
                let e = self.error(e);
                if refused {
                    return Err(e);
                }
                self.note_failure(&mut self.lock_writer(), &e);
                Ok(())
            }
        }
    }

    /// Runs `f` on a read connection, reusing an idle one when there is one. Readers do not
    /// back off: an admin query asks once and reports what it found.
    fn with_reader<T>(
        &self,
        f: impl FnOnce(&Runtime, &mut Conn) -> Result<T, OpError>,
    ) -> Result<T, Error> {
        let idle = {
            let mut idle = self.readers.lock().unwrap_or_else(|p| p.into_inner());
            idle.retain(Conn::is_usable);
            idle.pop()
        };
        let mut conn = match idle {
            Some(c) => c,
            None => self.connect().map_err(|e| self.error(e))?,
        };
        let out = self
            .ensure_schema(&mut conn)
            .and_then(|()| f(self.runtime(), &mut conn));
        let keep = match &out {
            Ok(_) => true,
            Err(OpError::Timeout(_)) => false,
            Err(_) => conn.is_usable(),
        };
        if keep {
            let mut idle = self.readers.lock().unwrap_or_else(|p| p.into_inner());
            if idle.len() < MAX_IDLE_READERS {
                idle.push(conn);
            }
        }
        out.map_err(|e| self.error(e))
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        // The last handle may go away on a runtime worker, where dropping a runtime (which
        // waits for its threads) panics; let it wind down in the background instead.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// SQLSTATE classes a server reports while it cannot serve for now: connection exceptions
/// (08), insufficient resources such as too many connections (53), and operator intervention
/// such as starting up or shutting down (57).
fn transient(sqlstate: &str) -> bool {
    ["08", "53", "57"]
        .iter()
        .any(|class| sqlstate.starts_with(class))
}

/// `fut` with the operation deadline.
async fn timed<T>(
    fut: impl std::future::Future<Output = Result<T, OpError>>,
) -> Result<T, OpError> {
    tokio::time::timeout(OPERATION_TIMEOUT, fut)
        .await
        .unwrap_or(Err(OpError::Timeout(OPERATION_TIMEOUT)))
}

/// A filter value as a statement parameter.
fn arg_param(a: Arg) -> Box<dyn ToSql + Sync + Send> {
    match a {
        Arg::Text(t) => Box::new(t),
        Arg::Int(i) => Box::new(i),
        Arg::Real(r) => Box::new(r),
    }
}

/// Placeholders carry their type so the server never has to guess it from the column
/// (`status` is an int4 compared with an int8 argument).
fn placeholder(n: usize, a: &Arg) -> String {
    let ty = match a {
        Arg::Text(_) => "text",
        Arg::Int(_) => "int8",
        Arg::Real(_) => "float8",
    };
    format!("${n}::{ty}")
}

fn refs(params: &[Box<dyn ToSql + Sync + Send>]) -> Vec<&(dyn ToSql + Sync)> {
    params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

impl LogStore for PostgresStore {
    fn insert_batch(&self, records: &[super::LogRecord]) -> Result<(), Error> {
        if records.is_empty() {
            return Ok(());
        }
        self.with_writer(|rt, conn| {
            rt.block_on(timed(async {
                let stmt = match &conn.insert {
                    Some(s) => s.clone(),
                    None => {
                        let s = conn.client.prepare(&rows::insert_sql()).await?;
                        conn.insert = Some(s.clone());
                        s
                    }
                };
                let params = rows::insert_params(records);
                let params: Vec<&(dyn ToSql + Sync)> = params
                    .iter()
                    .map(|p| p.as_ref() as &(dyn ToSql + Sync))
                    .collect();
                // One statement: all of the batch or none of it.
                conn.client.execute(&stmt, &params).await?;
                Ok(())
            }))
        })
    }

    fn ping(&self) -> Result<(), Error> {
        self.with_reader(|rt, conn| {
            rt.block_on(timed(async {
                conn.client.simple_query("SELECT 1").await?;
                Ok(())
            }))
        })
    }

    fn query(&self, q: &LogQuery) -> Result<LogPage, Error> {
        let (sql, args) = sql::page_query("tollgate_requests", q, placeholder);
        let params: Vec<_> = args.into_iter().map(arg_param).collect();
        let rows = self.with_reader(|rt, conn| {
            rt.block_on(timed(async {
                let rows = conn.client.query(&sql, &refs(&params)).await?;
                rows.iter().map(rows::read_record).collect()
            }))
        })?;
        Ok(sql::into_page(rows, q.limit))
    }

    fn spend(&self, q: &SpendQuery) -> Result<SpendReport, Error> {
        let group = sql::group_column(q.group_by);
        // Sums of int8 are numeric in PostgreSQL; back to int8 for the client.
        let sql = format!(
            "SELECT {group} AS g, COUNT(*), SUM(prompt_tokens)::int8, \
             SUM(completion_tokens)::int8, SUM(cached_tokens)::int8, SUM(cost_usd), \
             COUNT(*) FILTER (WHERE status >= 400) \
             FROM tollgate_requests WHERE time_us >= $1::int8 AND time_us < $2::int8 GROUP BY g"
        );
        let (since, until) = sql::spend_range(q);
        let rows = self.with_reader(|rt, conn| {
            rt.block_on(timed(async {
                let rows = conn.client.query(&sql, &[&since, &until]).await?;
                rows.iter()
                    .map(|r| {
                        let n = |i: usize| -> Result<u64, OpError> {
                            Ok(r.try_get::<_, i64>(i)?.max(0) as u64)
                        };
                        Ok(SpendRow {
                            group: r.try_get(0)?,
                            totals: SpendTotals {
                                requests: n(1)?,
                                prompt_tokens: n(2)?,
                                completion_tokens: n(3)?,
                                cached_tokens: n(4)?,
                                cost_usd: r.try_get(5)?,
                                errors: n(6)?,
                            },
                        })
                    })
                    .collect::<Result<Vec<_>, OpError>>()
            }))
        })?;
        Ok(sql::finish_spend(q, rows))
    }

    /// By age, then by row count, as SQLite does. Counting rows is a scan of the time index,
    /// which is why retention runs once a minute, not per batch.
    fn apply_retention(
        &self,
        retention: &RetentionConfig,
        now: DateTime<Utc>,
    ) -> Result<u64, Error> {
        let cutoff = retention.max_age().map(|age| {
            let age = chrono::Duration::from_std(age).unwrap_or(chrono::Duration::MAX);
            now.checked_sub_signed(age)
                .map(super::to_unix_micros)
                .unwrap_or(i64::MIN)
        });
        let max_rows = retention
            .max_rows
            .map(|m| i64::try_from(m).unwrap_or(i64::MAX));
        self.with_writer(|rt, conn| {
            let client = &conn.client;
            let mut deleted = 0u64;
            if let Some(cutoff) = cutoff {
                loop {
                    let n = rt.block_on(timed(async {
                        Ok(client
                            .execute(
                                "DELETE FROM tollgate_requests WHERE id IN \
                                 (SELECT id FROM tollgate_requests WHERE time_us < $1::int8 \
                                  ORDER BY time_us LIMIT $2::int8)",
                                &[&cutoff, &DELETE_CHUNK],
                            )
                            .await?)
                    }))?;
                    deleted += n;
                    if (n as i64) < DELETE_CHUNK {
                        break;
                    }
                }
            }
            if let Some(max_rows) = max_rows {
                let count: i64 = rt.block_on(timed(async {
                    let row = client
                        .query_one("SELECT COUNT(*) FROM tollgate_requests", &[])
                        .await?;
                    Ok(row.try_get(0)?)
                }))?;
                let mut excess = count.saturating_sub(max_rows);
                while excess > 0 {
                    let chunk = excess.min(DELETE_CHUNK);
                    let n = rt.block_on(timed(async {
                        Ok(client
                            .execute(
                                "DELETE FROM tollgate_requests WHERE id IN \
                                 (SELECT id FROM tollgate_requests \
                                  ORDER BY time_us, id LIMIT $1::int8)",
                                &[&chunk],
                            )
                            .await?)
                    }))?;
                    if n == 0 {
                        break;
                    }
                    deleted += n;
                    excess -= n as i64;
                }
            }
            Ok(deleted)
        })
    }
}
