//! [`RequestLog`]: the handle requests log through, and the thread that writes for them.
//!
//! The request side only ever does a `try_send` into a bounded channel. The writer is an OS
//! thread rather than a tokio task because every store call blocks (SQLite does file I/O and
//! may wait on a lock); on a runtime worker that would stall unrelated requests.

use super::config::{LogStoreKind, LogsConfig, RetentionConfig};
use super::query::{LogPage, LogQuery, SpendQuery, SpendReport};
use super::record::LogRecord;
use super::sqlite::SqliteStore;
use super::{Error, LogStore};
use chrono::Utc;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Counters for the metrics endpoint.
#[derive(Debug, Default)]
pub struct LogCounters {
    /// Records refused because the queue was full or the writer had stopped
    /// (`tollgate_log_dropped_total`).
    pub dropped: AtomicU64,
    /// Records committed to the store.
    pub written: AtomicU64,
    /// Store operations (batch inserts, retention passes) that failed.
    pub store_errors: AtomicU64,
    /// Records lost because the batch holding them failed to commit.
    pub failed_records: AtomicU64,
}

/// How the writer thread batches and maintains the store.
pub struct WriterOptions {
    /// Queue capacity; at least 1.
    pub queue: usize,
    /// Keep `request_body` / `response_body`; when off they are cleared before queueing.
    pub bodies: bool,
    /// Most records per transaction.
    pub batch_max: usize,
    /// Longest a record waits for others to share its transaction.
    pub batch_wait: Duration,
    pub retention: RetentionConfig,
    /// How often retention runs (also once at start).
    pub retention_every: Duration,
    /// Called on the writer thread before each batch insert; lets tests hold the writer still.
    #[cfg(test)]
    pub before_insert: Option<Box<dyn FnMut() + Send>>,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            queue: 10_000,
            bodies: false,
            // Each commit writes every page it touched, and the inserts of a batch land all
            // over the key index (one leaf per key): the more records share a commit, the
            // fewer page writes, WAL checksums and checkpoint copies each record costs.
            // 200 ms gathers ~1,000 records at 5,000 req/s; at 50 ms (250 records) the writer
            // spent ~30 % more CPU per record (bench: reqlog-cpu --batch).
            batch_max: 2048,
            batch_wait: Duration::from_millis(200),
            retention: RetentionConfig::default(),
            retention_every: Duration::from_secs(60),
            #[cfg(test)]
            before_insert: None,
        }
    }
}

/// Builds a record on the writer thread.
pub type MakeRecord = Box<dyn FnOnce() -> LogRecord + Send>;

enum Msg {
    // Boxed so the channel's preallocated slots stay small.
    Record(Box<LogRecord>),
    /// A record made on the writer thread, so the request pays for one box, not for every
    /// string and list of the record.
    Deferred(MakeRecord),
    /// Write everything received so far, then answer.
    Flush(SyncSender<()>),
    /// Like `Flush`, then stop the thread.
    Shutdown(SyncSender<()>),
}

/// Cheap to clone; every clone feeds the same queue and writer thread.
#[derive(Clone)]
pub struct RequestLog {
    shared: Arc<Shared>,
}

struct Shared {
    counters: Arc<LogCounters>,
    /// `None` for `logs.kind: none`.
    writer: Option<Writer>,
}

struct Writer {
    tx: SyncSender<Msg>,
    store: Arc<dyn LogStore>,
    bodies: bool,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl RequestLog {
    /// Opens the store the config names, with a SQLite `path` relative to `base_dir` (the
    /// config file's directory), and starts the writer thread.
    pub fn open(config: &LogsConfig, base_dir: &Path) -> Result<RequestLog, Error> {
        let store: Arc<dyn LogStore> = match config.kind {
            LogStoreKind::None => return Ok(RequestLog::disabled()),
            LogStoreKind::Sqlite => {
                Arc::new(SqliteStore::open(&base_dir.join(config.sqlite_path()))?)
            }
            LogStoreKind::Postgres => open_postgres(config)?,
        };
        let options = WriterOptions {
            queue: config.queue,
            bodies: config.bodies,
            retention: config.retention.clone(),
            ..WriterOptions::default()
        };
        RequestLog::with_store(store, options)
    }

    /// A log that records nothing (`logs.kind: none`).
    pub fn disabled() -> RequestLog {
        RequestLog {
            shared: Arc::new(Shared {
                counters: Arc::default(),
                writer: None,
            }),
        }
    }

    /// Starts a writer thread over any store.
    pub fn with_store(
        store: Arc<dyn LogStore>,
        mut options: WriterOptions,
    ) -> Result<RequestLog, Error> {
        let (tx, rx) = mpsc::sync_channel(options.queue.max(1));
        let counters = Arc::new(LogCounters::default());
        let bodies = options.bodies;
        let thread = {
            let store = Arc::clone(&store);
            let counters = Arc::clone(&counters);
            options.batch_max = options.batch_max.max(1);
            std::thread::Builder::new()
                .name("tollgate-reqlog".into())
                .spawn(move || {
                    yield_to_requests();
                    run(rx, &*store, &counters, options)
                })
                .map_err(Error::Thread)?
        };
        Ok(RequestLog {
            shared: Arc::new(Shared {
                counters,
                writer: Some(Writer {
                    tx,
                    store,
                    bodies,
                    thread: Mutex::new(Some(thread)),
                }),
            }),
        })
    }

    /// Queues one record. Never blocks: when the queue is full the record is dropped and
    /// counted in `counters().dropped`.
    pub fn record(&self, mut rec: LogRecord) {
        let Some(w) = &self.shared.writer else { return };
        if !w.bodies {
            rec.request_body = None;
            rec.response_body = None;
        }
        match w.tx.try_send(Msg::Record(Box::new(rec))) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.shared.counters.dropped.fetch_add(1, Relaxed);
            }
        }
    }

    /// Queues a record to be made on the writer thread; otherwise like [`RequestLog::record`].
    pub fn record_with(&self, make: MakeRecord) {
        let Some(w) = &self.shared.writer else { return };
        match w.tx.try_send(Msg::Deferred(make)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.shared.counters.dropped.fetch_add(1, Relaxed);
            }
        }
    }

    /// Waits until every record queued before this call is written (or its batch failed).
    /// Blocking: call from `spawn_blocking` in async code.
    pub fn flush(&self) {
        self.send_and_wait(Msg::Flush);
    }

    /// Writes what is queued and stops the writer thread; later records are dropped and
    /// counted. For graceful shutdown. Blocking.
    pub fn shutdown(&self) {
        let Some(w) = &self.shared.writer else { return };
        self.send_and_wait(Msg::Shutdown);
        let handle = w.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = handle {
            let _ = h.join();
        }
    }

    fn send_and_wait(&self, msg: fn(SyncSender<()>) -> Msg) {
        let Some(w) = &self.shared.writer else { return };
        let (ack_tx, ack_rx) = mpsc::sync_channel(1);
        // A blocking send: the caller asked to wait, and the marker must queue behind the
        // records it waits for. Errors mean the writer has stopped; there is nothing to wait on.
        if w.tx.send(msg(ack_tx)).is_ok() {
            let _ = ack_rx.recv();
        }
    }

    pub fn enabled(&self) -> bool {
        self.shared.writer.is_some()
    }

    /// Whether bodies are kept; callers can skip capturing them when not.
    pub fn keeps_bodies(&self) -> bool {
        self.shared.writer.as_ref().is_some_and(|w| w.bodies)
    }

    pub fn counters(&self) -> &Arc<LogCounters> {
        &self.shared.counters
    }

    /// One page of records, newest first. Blocking; runs on a read connection, concurrently
    /// with the writer.
    pub fn query(&self, query: &LogQuery) -> Result<LogPage, Error> {
        self.store()?.query(query)
    }

    /// Whether the store answers now (`Ok` when there is no log). Blocking, like `query`.
    pub fn ping(&self) -> Result<(), Error> {
        match self.store() {
            Ok(store) => store.ping(),
            Err(Error::Disabled) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Spend summed per group. Blocking, like `query`.
    pub fn spend(&self, query: &SpendQuery) -> Result<SpendReport, Error> {
        self.store()?.spend(query)
    }

    fn store(&self) -> Result<&dyn LogStore, Error> {
        self.shared
            .writer
            .as_ref()
            .map(|w| &*w.store)
            .ok_or(Error::Disabled)
    }
}

#[cfg(feature = "postgres")]
fn open_postgres(config: &LogsConfig) -> Result<Arc<dyn LogStore>, Error> {
    let url = config.url.as_deref().ok_or(Error::PostgresUrl {
        url: String::new(),
        message: "`kind: postgres` needs `url`".into(),
    })?;
    Ok(Arc::new(super::PostgresStore::open(url)?))
}

#[cfg(not(feature = "postgres"))]
fn open_postgres(_: &LogsConfig) -> Result<Arc<dyn LogStore>, Error> {
    Err(Error::PostgresNotBuilt)
}

/// Lowers this thread's scheduling priority (nice 10). The log can wait; requests cannot: when
/// the cores are busy the scheduler then gives the request workers most of the CPU, and the
/// writer catches up in idle time (its queue absorbs the delay). Best effort: a refusal
/// leaves the default priority.
fn yield_to_requests() {
    #[cfg(target_os = "linux")]
    // SAFETY: plain syscalls on the calling thread's own id; no memory is passed.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 10);
    }
}

/// The writer thread: batch, insert, acknowledge flushes, apply retention now and then.
/// Exits when shut down or when every `RequestLog` clone is gone.
#[cfg_attr(not(test), allow(unused_mut))] // `opts` is mutated only by the test hook
fn run(
    rx: mpsc::Receiver<Msg>,
    store: &dyn LogStore,
    counters: &LogCounters,
    mut opts: WriterOptions,
) {
    let mut batch: Vec<LogRecord> = Vec::with_capacity(opts.batch_max);
    let mut failures = FailureLog::default();
    let mut acks: Vec<SyncSender<()>> = Vec::new();
    let mut next_retention = Instant::now();
    let mut stop = false;
    // The last batch was full: records are arriving faster than one batch per wait.
    let mut behind = false;
    while !stop {
        if Instant::now() >= next_retention {
            retain(store, counters, &opts.retention);
            next_retention = Instant::now() + opts.retention_every;
        }
        // Sleep until the first message, waking for retention.
        let wait = next_retention.saturating_duration_since(Instant::now());
        match rx.recv_timeout(wait) {
            Ok(msg) => stop = take(msg, &mut batch, &mut acks, opts.bodies),
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => break,
        }
        // Let records gather for `batch_wait` rather than waking this thread for each one:
        // under load the senders then find no parked receiver to wake, which keeps a futex
        // wake-up (a syscall and a context switch) off every request. A flush, a full batch
        // last time round, or a stop skip the wait.
        if !stop && acks.is_empty() && !behind {
            std::thread::sleep(opts.batch_wait);
        }
        while !stop && batch.len() < opts.batch_max {
            match rx.try_recv() {
                Ok(msg) => stop = take(msg, &mut batch, &mut acks, opts.bodies),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => stop = true,
            }
        }
        behind = batch.len() >= opts.batch_max;
        if stop {
            // Records that raced the shutdown marker are still written.
            while let Ok(msg) = rx.try_recv() {
                take(msg, &mut batch, &mut acks, opts.bodies);
            }
        }
        #[cfg(test)]
        if let Some(hook) = opts.before_insert.as_mut() {
            hook();
        }
        write(store, counters, &mut batch, &mut failures);
        for ack in acks.drain(..) {
            let _ = ack.send(());
        }
    }
    write(store, counters, &mut batch, &mut failures);
}

/// Files one message; true when it asks the thread to stop.
fn take(
    msg: Msg,
    batch: &mut Vec<LogRecord>,
    acks: &mut Vec<SyncSender<()>>,
    bodies: bool,
) -> bool {
    match msg {
        Msg::Record(rec) => batch.push(*rec),
        Msg::Deferred(make) => {
            let mut rec = make();
            if !bodies {
                rec.request_body = None;
                rec.response_body = None;
            }
            batch.push(rec);
        }
        Msg::Flush(ack) => acks.push(ack),
        Msg::Shutdown(ack) => {
            acks.push(ack);
            return true;
        }
    }
    false
}

fn write(
    store: &dyn LogStore,
    counters: &LogCounters,
    batch: &mut Vec<LogRecord>,
    failures: &mut FailureLog,
) {
    if batch.is_empty() {
        return;
    }
    match store.insert_batch(batch) {
        Ok(()) => {
            counters.written.fetch_add(batch.len() as u64, Relaxed);
            failures.recovered();
        }
        Err(e) => {
            counters.store_errors.fetch_add(1, Relaxed);
            counters
                .failed_records
                .fetch_add(batch.len() as u64, Relaxed);
            failures.failed(&e, batch.len());
        }
    }
    batch.clear();
}

/// Warns about failed batches without a line per batch: an unreachable store fails every
/// batch, and a warning each 50 ms would bury everything else in the log. The first failure
/// is logged at once, later ones summed up at most every [`FailureLog::EVERY`].
#[derive(Default)]
struct FailureLog {
    /// Failures not yet reported: batches, records.
    pending: (u64, u64),
    last_report: Option<Instant>,
}

impl FailureLog {
    const EVERY: Duration = Duration::from_secs(30);

    fn failed(&mut self, e: &Error, records: usize) {
        self.pending.0 += 1;
        self.pending.1 += records as u64;
        let due = self
            .last_report
            .is_none_or(|at| at.elapsed() >= Self::EVERY);
        if due {
            // The error names the store and its reason, never record contents.
            tracing::warn!(
                error = %e,
                batches = self.pending.0,
                records = self.pending.1,
                "request log: records not written"
            );
            self.pending = (0, 0);
            self.last_report = Some(Instant::now());
        }
    }

    fn recovered(&mut self) {
        if self.pending.0 > 0 {
            tracing::warn!(
                batches = self.pending.0,
                records = self.pending.1,
                "request log: records not written before the store recovered"
            );
        }
        *self = FailureLog::default();
    }
}

fn retain(store: &dyn LogStore, counters: &LogCounters, retention: &RetentionConfig) {
    if retention.max_age.is_none() && retention.max_rows.is_none() {
        return;
    }
    match store.apply_retention(retention, Utc::now()) {
        Ok(0) => {}
        Ok(n) => tracing::debug!(deleted = n, "request log: retention applied"),
        Err(e) => {
            counters.store_errors.fetch_add(1, Relaxed);
            tracing::warn!(error = %e, "request log: retention failed");
        }
    }
}
