//! The request log against real SQLite files in temporary directories.

use super::*;
use rusqlite::Connection;
use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// 2025-11-22T10:30:00Z.
const T0_US: i64 = 1_763_807_400_000_000;

fn rec(i: i64) -> LogRecord {
    LogRecord {
        request_id: format!("req-{i}"),
        time: from_unix_micros(T0_US + i * 1_000_000),
        key_id: Some("vk-ml".into()),
        team: Some("ml".into()),
        customer: Some("acme".into()),
        endpoint: "chat".into(),
        requested_model: Some("gpt-4o".into()),
        provider: Some("openai".into()),
        model: Some("gpt-4o".into()),
        attempts: vec![AttemptRecord {
            provider: "openai".into(),
            model: "gpt-4o".into(),
            status: Some(200),
            error: None,
        }],
        status: 200,
        error_type: None,
        prompt_tokens: 10,
        completion_tokens: 5,
        cached_tokens: 0,
        cost_usd: 0.01,
        cache: CacheResult::Miss,
        guardrails: vec![],
        total_us: 1000,
        upstream_us: Some(900),
        ttft_us: Some(300),
        overhead_us: 100,
        stream: false,
        client_disconnected: false,
        request_body: None,
        response_body: None,
        tool: None,
    }
}

fn store(dir: &Path) -> SqliteStore {
    SqliteStore::open(&dir.join("logs.db")).unwrap()
}

fn ids(page: &LogPage) -> Vec<String> {
    page.records.iter().map(|r| r.request_id.clone()).collect()
}

fn q(s: &str) -> LogQuery {
    LogQuery::from_query_string(s).unwrap()
}

#[test]
fn every_field_survives_a_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let full = LogRecord {
        request_id: "req-full".into(),
        time: from_unix_micros(T0_US + 123_456),
        key_id: Some("vk-ml".into()),
        team: Some("ml".into()),
        customer: Some("acme".into()),
        endpoint: "messages".into(),
        requested_model: Some("fast".into()),
        provider: Some("anthropic".into()),
        model: Some("claude-haiku-4-5".into()),
        attempts: vec![
            AttemptRecord {
                provider: "openai".into(),
                model: "gpt-4o-mini".into(),
                status: Some(429),
                error: Some("rate limited by provider".into()),
            },
            AttemptRecord {
                provider: "openai".into(),
                model: "gpt-4o-mini".into(),
                status: None,
                error: Some("connect timeout after 10s".into()),
            },
            AttemptRecord {
                provider: "anthropic".into(),
                model: "claude-haiku-4-5".into(),
                status: Some(200),
                error: None,
            },
        ],
        status: 200,
        error_type: None,
        prompt_tokens: 1234,
        completion_tokens: 567,
        cached_tokens: 1000,
        cost_usd: 0.004_321,
        cache: CacheResult::HitSemantic,
        guardrails: vec![
            GuardrailRecord {
                name: "pii".into(),
                action: "redact".into(),
            },
            GuardrailRecord {
                name: "tone".into(),
                action: "flag".into(),
            },
        ],
        total_us: 812_345,
        upstream_us: Some(800_000),
        ttft_us: Some(120_000),
        overhead_us: 12_345,
        stream: true,
        client_disconnected: true,
        request_body: Some(
            r#"{"model":"fast","messages":[{"role":"user","content":"héllo"}]}"#.into(),
        ),
        response_body: Some("data: {}\n\n".into()),
        tool: Some(crate::reqlog::ToolRecord {
            server: "fs".into(),
            name: "read_file".into(),
            arguments: serde_json::json!({"path": "/tmp/x"}),
            result_bytes: Some(42),
            is_error: false,
        }),
    };
    let empty = LogRecord {
        request_id: "req-refused".into(),
        time: from_unix_micros(T0_US),
        key_id: None,
        team: None,
        customer: None,
        endpoint: "chat".into(),
        requested_model: None,
        provider: None,
        model: None,
        attempts: vec![],
        status: 401,
        error_type: Some("missing_key".into()),
        prompt_tokens: 0,
        completion_tokens: 0,
        cached_tokens: 0,
        cost_usd: 0.0,
        cache: CacheResult::Off,
        guardrails: vec![],
        total_us: 15,
        upstream_us: None,
        ttft_us: None,
        overhead_us: 15,
        stream: false,
        client_disconnected: false,
        request_body: None,
        response_body: None,
        tool: None,
    };
    s.insert_batch(&[empty.clone(), full.clone()]).unwrap();
    let page = s.query(&LogQuery::default()).unwrap();
    assert_eq!(page.records, vec![full.clone(), empty]);
    assert_eq!(page.next_cursor, None);
    // The JSON the admin API sends: RFC 3339 times, snake_case names.
    let json = serde_json::to_value(&page).unwrap();
    assert_eq!(json["records"][0]["time"], "2025-11-22T10:30:00.123456Z");
    assert_eq!(
        json["records"][0]["attempts"][1]["status"],
        serde_json::Value::Null
    );
    assert_eq!(json["records"][0]["guardrails"][0]["action"], "redact");
    assert_eq!(json["next_cursor"], serde_json::Value::Null);
    // The database keeps unix microseconds.
    let conn = Connection::open(dir.path().join("logs.db")).unwrap();
    let us: i64 = conn
        .query_row(
            "SELECT time_us FROM requests WHERE request_id = 'req-full'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(us, T0_US + 123_456);
}

#[test]
fn each_filter_keeps_only_matching_records() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let mut records = Vec::new();
    for i in 0..6 {
        records.push(rec(i));
    }
    records[1].key_id = Some("vk-ops".into());
    records[1].team = Some("ops".into());
    records[2].customer = Some("globex".into());
    records[3].provider = Some("anthropic".into());
    records[3].model = Some("claude-sonnet-4-6".into());
    records[4].status = 429;
    records[4].error_type = Some("rate_limited".into());
    records[4].provider = None;
    records[4].model = None;
    records[4].requested_model = Some("fast".into());
    records[5].cache = CacheResult::HitExact;
    records[5].cost_usd = 2.5;
    s.insert_batch(&records).unwrap();

    let page = |query: &str| ids(&s.query(&q(query)).unwrap());
    assert_eq!(page("key=vk-ops"), ["req-1"]);
    assert_eq!(page("team=ops"), ["req-1"]);
    assert_eq!(page("customer=globex"), ["req-2"]);
    assert_eq!(page("provider=anthropic"), ["req-3"]);
    assert_eq!(page("model=claude-sonnet-4-6"), ["req-3"]);
    // A request no model served is found by the model it asked for.
    assert_eq!(page("model=fast"), ["req-4"]);
    // req-3 asked for gpt-4o but claude served it: it counts as claude.
    assert_eq!(page("model=gpt-4o"), ["req-5", "req-2", "req-1", "req-0"]);
    assert_eq!(page("status=429"), ["req-4"]);
    assert_eq!(page("status=4xx"), ["req-4"]);
    assert_eq!(page("status=error"), ["req-4"]);
    assert_eq!(page("status=ok").len(), 5);
    assert_eq!(page("status=500"), Vec::<String>::new());
    assert_eq!(page("error_type=rate_limited"), ["req-4"]);
    assert_eq!(page("cache=hit-exact"), ["req-5"]);
    assert_eq!(page("cache=miss").len(), 5);
    assert_eq!(page("min_cost=1"), ["req-5"]);
    // since inclusive, until exclusive; unix seconds and RFC 3339 alike.
    assert_eq!(
        page("since=1763807402&until=1763807404"),
        ["req-3", "req-2"]
    );
    assert_eq!(page("since=2025-11-22T10:30:04Z"), ["req-5", "req-4"]);
    assert_eq!(page("until=2025-11-22T11:30:01%2B01:00"), ["req-0"]);
    assert_eq!(
        page("team=ml&status=ok&since=1763807403"),
        ["req-5", "req-3"]
    );
}

#[test]
fn pages_cover_every_record_exactly_once_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    // Several records share a microsecond, so paging must break ties on more than time.
    let records: Vec<LogRecord> = (0..103)
        .map(|i| {
            let mut r = rec(i / 4);
            r.request_id = format!("req-{i}");
            r
        })
        .collect();
    s.insert_batch(&records).unwrap();
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let query = match &cursor {
            Some(c) => format!("limit=10&cursor={c}"),
            None => "limit=10".to_string(),
        };
        let page = s.query(&q(&query)).unwrap();
        assert!(page.records.len() <= 10);
        seen.extend(page.records);
        pages += 1;
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(pages, 11);
    assert_eq!(seen.len(), 103);
    let unique: HashSet<_> = seen.iter().map(|r| r.request_id.clone()).collect();
    assert_eq!(unique.len(), 103);
    assert!(seen.windows(2).all(|w| w[0].time >= w[1].time));
    // A page boundary exactly at the end: no empty extra page is promised.
    let exact = s.query(&q("limit=103")).unwrap();
    assert_eq!(exact.records.len(), 103);
    assert_eq!(exact.next_cursor, None);
    // Filters keep applying across pages.
    let first = s.query(&q("limit=2&since=1763807420")).unwrap();
    let rest = s
        .query(&q(&format!(
            "limit=1000&since=1763807420&cursor={}",
            first.next_cursor.unwrap()
        )))
        .unwrap();
    assert_eq!(first.records.len() + rest.records.len(), 23);
}

#[test]
fn spend_sums_per_group_with_a_total() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let mut records = Vec::new();
    for (i, (model, cost, status, team)) in [
        ("gpt-4o", 1.0, 200, Some("ml")),
        ("gpt-4o", 2.0, 200, Some("ml")),
        ("gpt-4o", 0.0, 502, Some("ops")),
        ("gpt-4o-mini", 0.5, 200, None),
        ("claude-haiku-4-5", 0.25, 200, Some("ops")),
    ]
    .into_iter()
    .enumerate()
    {
        let mut r = rec(i as i64);
        r.model = Some(model.into());
        r.cost_usd = cost;
        r.status = status;
        r.team = team.map(str::to_string);
        r.cached_tokens = 2;
        records.push(r);
    }
    // A refusal no model served counts under the model it asked for.
    let mut refused = rec(10);
    refused.model = None;
    refused.provider = None;
    refused.requested_model = Some("gpt-4o-mini".into());
    refused.status = 403;
    refused.prompt_tokens = 0;
    refused.completion_tokens = 0;
    refused.cost_usd = 0.0;
    records.push(refused);
    s.insert_batch(&records).unwrap();

    let report = s
        .spend(&SpendQuery::from_query_string("group_by=model").unwrap())
        .unwrap();
    let rows: Vec<_> = report
        .rows
        .iter()
        .map(|r| {
            (
                r.group.clone().unwrap(),
                r.totals.requests,
                r.totals.cost_usd,
                r.totals.errors,
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            ("gpt-4o".to_string(), 3, 3.0, 1),
            ("gpt-4o-mini".to_string(), 2, 0.5, 1),
            ("claude-haiku-4-5".to_string(), 1, 0.25, 0),
        ]
    );
    assert_eq!(report.rows[0].totals.prompt_tokens, 30);
    assert_eq!(report.rows[0].totals.completion_tokens, 15);
    assert_eq!(report.rows[0].totals.cached_tokens, 6);
    assert_eq!(report.total.requests, 6);
    assert_eq!(report.total.cost_usd, 3.75);
    assert_eq!(report.total.errors, 2);
    assert_eq!(report.total.prompt_tokens, 50);

    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["group_by"], "model");
    assert_eq!(json["since"], serde_json::Value::Null);
    assert_eq!(json["rows"][0]["group"], "gpt-4o");
    assert_eq!(json["rows"][0]["requests"], 3);
    assert_eq!(json["total"]["cost_usd"], 3.75);

    // Requests without a team form their own group, shown as null.
    let by_team = s
        .spend(
            &SpendQuery::from_query_string("group_by=team&since=1763807401&until=1763807410")
                .unwrap(),
        )
        .unwrap();
    let teams: Vec<_> = by_team
        .rows
        .iter()
        .map(|r| (r.group.clone(), r.totals.requests))
        .collect();
    assert_eq!(
        teams,
        vec![(Some("ml".into()), 1), (None, 1), (Some("ops".into()), 2)]
    );
    assert_eq!(by_team.total.requests, 4);
    let json = serde_json::to_value(&by_team).unwrap();
    assert_eq!(json["since"], "2025-11-22T10:30:01.000000Z");
}

#[test]
fn retention_deletes_oldest_beyond_max_rows_and_older_than_max_age() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    // Inserted out of time order: retention goes by time, not by insertion.
    let mut records: Vec<LogRecord> = (0..50).map(rec).collect();
    records.reverse();
    s.insert_batch(&records).unwrap();
    let now = from_unix_micros(T0_US + 50 * 1_000_000);

    let rows_only = RetentionConfig {
        max_age: None,
        max_rows: Some(30),
    };
    assert_eq!(s.apply_retention(&rows_only, now).unwrap(), 20);
    assert_eq!(s.count().unwrap(), 30);
    let left = s.query(&q("limit=1000")).unwrap();
    assert_eq!(left.records.last().unwrap().request_id, "req-20");
    assert_eq!(s.apply_retention(&rows_only, now).unwrap(), 0);

    // 10s of age at `now` keeps records from req-40 on.
    let age_only = RetentionConfig {
        max_age: Some(crate::config::units::DurationStr(Duration::from_secs(10))),
        max_rows: None,
    };
    assert_eq!(s.apply_retention(&age_only, now).unwrap(), 20);
    let left = s.query(&q("limit=1000")).unwrap();
    assert_eq!(left.records.len(), 10);
    assert_eq!(left.records.last().unwrap().request_id, "req-40");
}

#[test]
fn the_writer_applies_retention_when_it_starts() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(store(dir.path()));
    s.insert_batch(&(0..20).map(rec).collect::<Vec<_>>())
        .unwrap();
    let log = RequestLog::with_store(
        s.clone(),
        WriterOptions {
            retention: RetentionConfig {
                max_age: None,
                max_rows: Some(5),
            },
            ..WriterOptions::default()
        },
    )
    .unwrap();
    log.flush();
    assert_eq!(s.count().unwrap(), 5);
}

#[test]
fn a_full_queue_drops_and_counts_without_blocking_the_caller() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(store(dir.path()));
    let (entered_tx, entered_rx) = mpsc::channel::<()>();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let release_rx = std::sync::Mutex::new(release_rx);
    let mut first = true;
    let log = RequestLog::with_store(
        s.clone(),
        WriterOptions {
            queue: 4,
            batch_wait: Duration::from_millis(1),
            // Hold the writer inside its first batch until the test says go.
            before_insert: Some(Box::new(move || {
                if std::mem::take(&mut first) {
                    let _ = entered_tx.send(());
                    let _ = release_rx.lock().unwrap().recv();
                }
            })),
            ..WriterOptions::default()
        },
    )
    .unwrap();

    log.record(rec(0));
    entered_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    // The writer holds req-0 and waits; the queue has room for exactly four more.
    for i in 1..=4 {
        log.record(rec(i));
    }
    assert_eq!(log.counters().dropped.load(Relaxed), 0);
    let started = Instant::now();
    for i in 5..15 {
        log.record(rec(i));
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "record() blocked"
    );
    assert_eq!(log.counters().dropped.load(Relaxed), 10);

    release_tx.send(()).unwrap();
    log.flush();
    let written = ids(&s.query(&q("limit=1000")).unwrap());
    assert_eq!(written, ["req-4", "req-3", "req-2", "req-1", "req-0"]);
    assert_eq!(log.counters().written.load(Relaxed), 5);
    assert_eq!(log.counters().store_errors.load(Relaxed), 0);
}

#[test]
fn the_writer_waits_out_a_lock_held_by_another_connection() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(store(dir.path()));
    let log = RequestLog::with_store(s.clone(), WriterOptions::default()).unwrap();
    let other = Connection::open(dir.path().join("logs.db")).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let started = Instant::now();
    for i in 0..100 {
        log.record(rec(i));
    }
    assert!(started.elapsed() < Duration::from_millis(500));
    // Readers are not blocked by the held write lock (WAL).
    assert_eq!(s.query(&LogQuery::default()).unwrap().records.len(), 0);
    std::thread::sleep(Duration::from_millis(300));
    other.execute_batch("COMMIT").unwrap();
    log.flush();
    assert_eq!(s.count().unwrap(), 100);
    assert_eq!(log.counters().store_errors.load(Relaxed), 0);
    assert_eq!(log.counters().dropped.load(Relaxed), 0);
}

#[test]
fn open_migrates_an_empty_file_and_reopens_an_existing_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("logs.db");
    std::fs::write(&path, b"").unwrap();
    let config = LogsConfig {
        path: Some("logs.db".into()),
        ..LogsConfig::default()
    };
    let log = RequestLog::open(&config, dir.path()).unwrap();
    log.record(rec(1));
    log.shutdown();
    // After shutdown, records are refused and counted rather than lost silently.
    log.record(rec(2));
    assert_eq!(log.counters().dropped.load(Relaxed), 1);
    drop(log);

    let conn = Connection::open(&path).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    drop(conn);

    let s = SqliteStore::open(&path).unwrap();
    assert_eq!(s.schema_version().unwrap(), 3);
    assert_eq!(ids(&s.query(&LogQuery::default()).unwrap()), ["req-1"]);
    s.insert_batch(&[rec(3)]).unwrap();
    assert_eq!(s.count().unwrap(), 2);
}

#[test]
fn only_the_most_used_filters_are_indexed_after_upgrading() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("logs.db");
    // A file as the previous release left it: schema 2, with seven indexes.
    let conn = Connection::open(&path).unwrap();
    let tx = conn.unchecked_transaction().unwrap();
    for sql in &super::sqlite::MIGRATIONS[..2] {
        tx.execute_batch(sql).unwrap();
    }
    tx.execute_batch("PRAGMA user_version = 2").unwrap();
    tx.commit().unwrap();
    let indexes = |conn: &Connection| -> Vec<String> {
        let mut stmt = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'index' ORDER BY name")
            .unwrap();
        let names = stmt.query_map([], |r| r.get(0)).unwrap();
        names.map(Result::unwrap).collect()
    };
    assert_eq!(indexes(&conn).len(), 7);
    drop(conn);
    let s = SqliteStore::open(&path).unwrap();
    assert_eq!(s.schema_version().unwrap(), 3);
    let conn = Connection::open(&path).unwrap();
    assert_eq!(
        indexes(&conn),
        [
            "requests_key",
            "requests_model",
            "requests_status",
            "requests_time"
        ]
    );
    // Filters on the dropped columns still answer.
    s.insert_batch(&[rec(1)]).unwrap();
    let by_team = LogQuery {
        team: rec(1).team,
        ..LogQuery::default()
    };
    assert_eq!(ids(&s.query(&by_team).unwrap()), ["req-1"]);
}

#[test]
fn open_refuses_a_schema_from_a_newer_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("logs.db");
    Connection::open(&path)
        .unwrap()
        .execute_batch("PRAGMA user_version = 99")
        .unwrap();
    let err = SqliteStore::open(&path).err().unwrap().to_string();
    assert!(err.contains("schema version 99"), "{err}");
}

#[test]
fn open_explains_a_missing_directory_or_an_unwritable_path() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogsConfig {
        path: Some("no/such/dir/logs.db".into()),
        ..LogsConfig::default()
    };
    let err = RequestLog::open(&config, dir.path()).err().unwrap();
    assert!(matches!(err, Error::MissingDirectory { .. }), "{err}");
    assert!(err.to_string().contains("does not exist"), "{err}");
    assert!(err.to_string().contains("no/such/dir"), "{err}");

    // A directory where the file should be cannot be opened as a database.
    std::fs::create_dir(dir.path().join("taken.db")).unwrap();
    let config = LogsConfig {
        path: Some("taken.db".into()),
        ..LogsConfig::default()
    };
    let err = RequestLog::open(&config, dir.path()).err().unwrap();
    assert!(matches!(err, Error::NotWritable { .. }), "{err}");
    assert!(err.to_string().contains("taken.db"), "{err}");
}

#[test]
fn kind_none_records_nothing_and_says_so_on_query() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogsConfig {
        kind: LogStoreKind::None,
        ..LogsConfig::default()
    };
    let log = RequestLog::open(&config, dir.path()).unwrap();
    assert!(!log.enabled());
    log.record(rec(1));
    log.flush();
    log.shutdown();
    assert_eq!(log.counters().dropped.load(Relaxed), 0);
    assert!(matches!(
        log.query(&LogQuery::default()),
        Err(Error::Disabled)
    ));
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
}

#[test]
fn bodies_are_kept_only_when_configured() {
    for bodies in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let config = LogsConfig {
            path: Some("logs.db".into()),
            bodies,
            ..LogsConfig::default()
        };
        let log = RequestLog::open(&config, dir.path()).unwrap();
        assert_eq!(log.keeps_bodies(), bodies);
        let mut r = rec(1);
        r.request_body = Some("{\"messages\":[]}".into());
        r.response_body = Some("{}".into());
        log.record(r);
        log.flush();
        let got = log.query(&LogQuery::default()).unwrap().records.remove(0);
        assert_eq!(got.request_body.is_some(), bodies);
        assert_eq!(got.response_body.is_some(), bodies);
    }
}

#[test]
fn clones_share_one_writer_and_batches_span_threads() {
    let dir = tempfile::tempdir().unwrap();
    let log = RequestLog::open(
        &LogsConfig {
            path: Some("logs.db".into()),
            ..LogsConfig::default()
        },
        dir.path(),
    )
    .unwrap();
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || {
                for i in 0..250 {
                    log.record(rec(t * 1000 + i));
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    log.flush();
    assert_eq!(log.counters().written.load(Relaxed), 1000);
    let report = log
        .spend(&SpendQuery::from_query_string("group_by=key").unwrap())
        .unwrap();
    assert_eq!(report.total.requests, 1000);
}

/// Bursts as large as the queue are absorbed, not dropped: the writer drains a full queue
/// in batches and every record lands, over many keys and models.
#[test]
fn bursts_the_size_of_the_queue_are_written_without_loss() {
    let dir = tempfile::tempdir().unwrap();
    let log = RequestLog::open(
        &LogsConfig {
            path: Some("logs.db".into()),
            queue: 5_000,
            ..LogsConfig::default()
        },
        dir.path(),
    )
    .unwrap();
    let n = 20_000i64;
    for i in 0..n {
        let mut r = rec(i);
        r.key_id = Some(format!("vk-{}", i % 50));
        r.model = Some(["gpt-4o", "gpt-4o-mini", "claude-sonnet-4-6"][(i % 3) as usize].into());
        log.record(r);
        if i % 5_000 == 4_999 {
            // One queue's worth per burst; the next burst starts once it is written.
            log.flush();
        }
    }
    log.flush();
    assert_eq!(log.counters().dropped.load(Relaxed), 0);
    assert_eq!(log.counters().written.load(Relaxed), n as u64);
    let by_key = log
        .spend(&SpendQuery::from_query_string("group_by=key").unwrap())
        .unwrap();
    assert_eq!(by_key.rows.len(), 50);
    assert_eq!(by_key.total.requests, n as u64);
    let by_model = log
        .spend(&SpendQuery::from_query_string("group_by=model").unwrap())
        .unwrap();
    assert_eq!(by_model.rows.len(), 3);
}

#[test]
fn filtered_pages_read_an_index_in_time_order() {
    let dir = tempfile::tempdir().unwrap();
    let _ = store(dir.path());
    let conn = Connection::open(dir.path().join("logs.db")).unwrap();
    let plan = |filter: &str| -> String {
        let sql = format!(
            "EXPLAIN QUERY PLAN SELECT id FROM requests WHERE {filter} \
             ORDER BY time_us DESC, id DESC LIMIT 101"
        );
        let mut stmt = conn.prepare(&sql).unwrap();
        let rows = stmt.query_map([], |r| r.get::<_, String>(3)).unwrap();
        rows.map(Result::unwrap).collect::<Vec<_>>().join("; ")
    };
    // No "TEMP B-TREE" sort: a page costs its size, not the number of matching rows.
    for (filter, index) in [
        (
            "COALESCE(model, requested_model) = 'gpt-4o'",
            "requests_model",
        ),
        ("key_id = 'vk-ml'", "requests_key"),
        ("status = 429", "requests_status"),
        ("time_us >= 0", "requests_time"),
    ] {
        let p = plan(filter);
        assert!(p.contains(index), "{filter}: {p}");
        assert!(!p.contains("TEMP B-TREE"), "{filter}: {p}");
    }
}
