//! `reqlog-cpu`: the request log's CPU cost per record, through the real writer thread into a
//! real SQLite file.
//!
//! ```text
//! reqlog-cpu [--records 60000] [--batch N] [--runs 5] [--dir DIR] [--json]
//! ```
//!
//! Each run opens a fresh database in `--dir` (default: the system temp directory), starts the
//! gateway's writer over it and queues `--records` records the way a finished request does (a
//! closure that builds the record on the writer thread), `--batch` at a time followed by a
//! flush. By default a batch is what the writer's window (`WriterOptions::batch_wait`)
//! gathers at 5,000 req/s, at most its `batch_max`. It reports the CPU
//! time of the writer thread per record (what competes with the request workers) and of the
//! whole process per record (the queueing side included), from the kernel's per-thread
//! accounting (`/proc/self/task/*/schedstat`, nanoseconds), and the median over the runs.
//! Records vary like benchmark traffic: 1,000 keys over 50 teams and 10 customers, two
//! providers, one answering attempt, a guardrail action on one request in ten.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tollgate::reqlog::{
    from_unix_micros, AttemptRecord, CacheResult, GuardrailRecord, LogRecord, RequestLog,
    SqliteStore, WriterOptions,
};

const USAGE: &str = "usage: reqlog-cpu [--records N] [--batch N] [--runs N] [--dir DIR] [--json]";

struct Opts {
    records: usize,
    batch: usize,
    runs: usize,
    dir: PathBuf,
    json: bool,
}

fn main() -> ExitCode {
    let opts = match parse(std::env::args().skip(1).collect()) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("reqlog-cpu: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mut writer = Vec::new();
    let mut process = Vec::new();
    for run in 0..opts.runs {
        match one_run(&opts, run) {
            Ok((w, p)) => {
                if !opts.json {
                    println!(
                        "run {}: writer {w:.2} µs/record, process {p:.2} µs/record",
                        run + 1
                    );
                }
                writer.push(w);
                process.push(p);
            }
            Err(e) => {
                eprintln!("reqlog-cpu: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let (w, p) = (median(&mut writer), median(&mut process));
    if opts.json {
        println!(
            "{{\"records\":{},\"batch\":{},\"runs\":{},\"writer_us_per_record\":{w:.3},\
             \"process_us_per_record\":{p:.3}}}",
            opts.records, opts.batch, opts.runs
        );
    } else {
        println!(
            "median of {}: writer {w:.2} µs/record, process {p:.2} µs/record \
             ({} records, batches of {})",
            opts.runs, opts.records, opts.batch
        );
    }
    ExitCode::SUCCESS
}

fn parse(args: Vec<String>) -> Result<Opts, String> {
    let writer = WriterOptions::default();
    let at_5k = (writer.batch_wait.as_secs_f64() * 5000.0).round() as usize;
    let mut o = Opts {
        records: 60_000,
        batch: at_5k.clamp(1, writer.batch_max),
        runs: 5,
        dir: std::env::temp_dir(),
        json: false,
    };
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let count = |v: String| match v.parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("{flag} takes a whole number above 0, got `{v}`")),
        };
        match flag.as_str() {
            "--records" => o.records = count(value()?)?,
            "--batch" => o.batch = count(value()?)?,
            "--runs" => o.runs = count(value()?)?,
            "--dir" => o.dir = PathBuf::from(value()?),
            "--json" => o.json = true,
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(o)
}

/// One fresh database: (writer µs/record, process µs/record).
fn one_run(opts: &Opts, run: usize) -> Result<(f64, f64), String> {
    let dir = opts
        .dir
        .join(format!("reqlog-cpu-{}-{run}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let result = measure(opts, &dir.join("requests.db"));
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn measure(opts: &Opts, db: &Path) -> Result<(f64, f64), String> {
    let store = SqliteStore::open(db).map_err(|e| e.to_string())?;
    let log = RequestLog::with_store(
        Arc::new(store),
        WriterOptions {
            // Room for a whole batch: nothing may be dropped.
            queue: opts.batch.max(1) + 1,
            ..WriterOptions::default()
        },
    )
    .map_err(|e| e.to_string())?;
    // Warm up: the file, its schema and the writer's cached statement exist before measuring.
    queue(&log, 0, opts.batch);
    log.flush();
    let writer_tid = thread_named("tollgate-reqlog").ok_or("writer thread not found")?;
    let (w0, p0) = (thread_cpu(&writer_tid), process_cpu());
    let mut sent = 0;
    while sent < opts.records {
        let n = opts.batch.min(opts.records - sent);
        queue(&log, opts.batch + sent, n);
        log.flush();
        sent += n;
    }
    let (w1, p1) = (thread_cpu(&writer_tid), process_cpu());
    log.shutdown();
    let c = log.counters();
    let written = c.written.load(std::sync::atomic::Ordering::Relaxed);
    let dropped = c.dropped.load(std::sync::atomic::Ordering::Relaxed);
    if dropped > 0 || written != (opts.records + opts.batch) as u64 {
        return Err(format!("written {written}, dropped {dropped}"));
    }
    let per = |a: Duration, b: Duration| (b - a).as_secs_f64() * 1e6 / opts.records as f64;
    Ok((per(w0, w1), per(p0, p1)))
}

/// Queues records `first..first + n` as finished requests do.
fn queue(log: &RequestLog, first: usize, n: usize) {
    for i in first..first + n {
        // What a request holds when it ends: shared names and a few numbers. The strings of
        // the record are made in the closure, on the writer thread.
        let key: Arc<str> = format!("vk-{:04}", i % 1000).into();
        let id = format!("{:016x}{:016x}", mix(i as u64), mix(!(i as u64)));
        log.record_with(Box::new(move || record(i, &id, &key)));
    }
}

/// A record like those the gateway writes under benchmark load, request `i` of a steady
/// 5,000 req/s.
fn record(i: usize, id: &str, key: &str) -> LogRecord {
    let (provider, model) = if i.is_multiple_of(3) {
        ("anthropic", "claude-3-5-haiku")
    } else {
        ("openai", "gpt-4o-mini")
    };
    let k = i % 1000;
    let h = mix(i as u64);
    LogRecord {
        request_id: id.to_owned(),
        time: from_unix_micros(1_765_000_000_000_000 + i as i64 * 200),
        key_id: Some(key.to_owned()),
        team: Some(format!("team-{:02}", k % 50)),
        customer: Some(format!("customer-{}", k % 10)),
        endpoint: "chat".to_owned(),
        requested_model: Some(model.to_owned()),
        provider: Some(provider.to_owned()),
        model: Some(model.to_owned()),
        attempts: vec![AttemptRecord {
            provider: provider.to_owned(),
            model: model.to_owned(),
            status: Some(200),
            error: None,
        }],
        status: 200,
        error_type: None,
        prompt_tokens: 20 + h % 200,
        completion_tokens: 10 + h % 50,
        cached_tokens: 0,
        cost_usd: (h % 1000) as f64 * 1e-6,
        cache: CacheResult::Miss,
        guardrails: if i.is_multiple_of(10) {
            vec![GuardrailRecord {
                name: "pii-out".to_owned(),
                action: "redact".to_owned(),
            }]
        } else {
            Vec::new()
        },
        total_us: 300 + h % 400,
        upstream_us: Some(250 + h % 300),
        ttft_us: None,
        overhead_us: 20 + h % 80,
        stream: false,
        client_disconnected: false,
        request_body: None,
        response_body: None,
        tool: None,
    }
}

/// A cheap, fixed scramble (splitmix64), so runs are repeatable.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The task directory of this process's thread with that name (`comm`).
fn thread_named(name: &str) -> Option<PathBuf> {
    std::fs::read_dir("/proc/self/task")
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| std::fs::read_to_string(p.join("comm")).is_ok_and(|c| c.trim_end() == name))
}

/// CPU time a thread has run, from `schedstat` (its first field, nanoseconds).
fn thread_cpu(task: &Path) -> Duration {
    std::fs::read_to_string(task.join("schedstat"))
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .map(Duration::from_nanos)
        .unwrap_or_default()
}

/// CPU time of every live thread of this process. Only the main and writer threads run
/// during a measurement and both outlive it, so nothing is lost to exited threads.
fn process_cpu() -> Duration {
    std::fs::read_dir("/proc/self/task")
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| thread_cpu(&e.path()))
                .sum()
        })
        .unwrap_or_default()
}
