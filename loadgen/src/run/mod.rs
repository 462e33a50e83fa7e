//! `loadgen run`: open-loop load at a fixed rate against a target (and optionally the provider
//! directly, interleaved), with percentiles, overhead and pass/fail thresholds.

mod client;
mod report;
mod schedule;
mod workload;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use http::header::{HeaderName, HeaderValue};
use http::Method;

use crate::duration::parse_duration;
use client::Pool;
use report::{Report, RunConfig, SideReport, Tally, Thresholds};
use schedule::{Plan, Side};
use workload::{Endpoint, Workload, WorkloadSpec};

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Full endpoint URL of the system under test, e.g. http://127.0.0.1:8080/v1/chat/completions.
    #[arg(long)]
    pub target: String,
    /// Full endpoint URL of the provider itself; enables interleaved runs and overhead.
    #[arg(long)]
    pub direct: Option<String>,
    /// Requests per second (open loop: sent on schedule whether or not earlier ones returned).
    #[arg(long)]
    pub rate: f64,
    /// How long to send for.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Request body file (default: a small OpenAI chat request).
    #[arg(long)]
    pub body: Option<PathBuf>,
    /// Set `"stream": true` in the body and report time to first byte too.
    #[arg(long)]
    pub stream: bool,
    /// Virtual key, sent as `Authorization: Bearer KEY`.
    #[arg(long, conflicts_with = "keys_file")]
    pub key: Option<String>,
    /// File with one key per line (`KEY` or `KEY MODEL`), used round-robin.
    #[arg(long)]
    pub keys_file: Option<PathBuf>,
    /// Extra request header `Name: value` (repeatable).
    #[arg(short = 'H', long = "header", value_parser = workload::parse_header)]
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// HTTP method.
    #[arg(long, default_value = "POST")]
    pub method: Method,
    /// Maximum keep-alive connections per endpoint.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Length of each target/direct slice when --direct is given.
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    pub slice: Duration,
    /// Per-request timeout, counted from the scheduled send time; also the longest wait for
    /// stragglers after the last send.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Fail (exit 1) if p99 of target minus direct exceeds this (needs --direct).
    #[arg(long, value_parser = parse_duration)]
    pub max_p99_overhead: Option<Duration>,
    /// Fail if the target's 2xx responses per second fall below this.
    #[arg(long)]
    pub min_rate: Option<f64>,
    /// Fail if errors (non-2xx + timeouts + transport errors, both sides) exceed this.
    #[arg(long)]
    pub max_errors: Option<u64>,
    /// Worker threads for sending (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
}

/// Everything checked and prepared before the clock starts.
struct Setup {
    plan: Plan,
    target: Endpoint,
    direct: Option<Endpoint>,
    workload: Workload,
    thresholds: Thresholds,
}

fn read(path: &PathBuf, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {what} {}", path.display()))
}

impl RunArgs {
    fn setup(&self) -> anyhow::Result<Setup> {
        if !(self.rate.is_finite() && self.rate > 0.0 && self.rate <= 1_000_000.0) {
            bail!(
                "--rate must be a number between 0 and 1000000, got {}",
                self.rate
            );
        }
        if self.duration.is_zero() {
            bail!("--duration must be longer than 0");
        }
        if self.connections == 0 {
            bail!("--connections must be at least 1");
        }
        if self.timeout.is_zero() {
            bail!("--timeout must be longer than 0");
        }
        if self.direct.is_some() && self.slice.is_zero() {
            bail!("--slice must be longer than 0");
        }
        if self.max_p99_overhead.is_some() && self.direct.is_none() {
            bail!("--max-p99-overhead needs --direct (the overhead is measured against it)");
        }
        if let Some(min) = self.min_rate {
            if !(min.is_finite() && min >= 0.0) {
                bail!("--min-rate must be a non-negative number, got {min}");
            }
        }
        let body = match &self.body {
            Some(path) => read(path, "body file")?,
            // A bodiless method (e.g. GET /v1/models) sends no default chat request.
            None if matches!(self.method, Method::GET | Method::HEAD) => Vec::new(),
            None => workload::DEFAULT_BODY.as_bytes().to_vec(),
        };
        let keys = match (&self.key, &self.keys_file) {
            (Some(key), _) => vec![workload::KeyLine {
                key: key.clone(),
                model: None,
            }],
            (None, Some(path)) => {
                let text = String::from_utf8(read(path, "keys file")?)
                    .with_context(|| format!("{} is not UTF-8 text", path.display()))?;
                workload::parse_keys(&text).with_context(|| format!("in {}", path.display()))?
            }
            (None, None) => Vec::new(),
        };
        let workload = WorkloadSpec {
            method: self.method.clone(),
            body: &body,
            stream: self.stream,
            keys,
            headers: self.headers.clone(),
        }
        .build()?;
        Ok(Setup {
            plan: Plan {
                rate: self.rate,
                duration: self.duration,
                slice: self.direct.as_ref().map(|_| self.slice),
            },
            target: Endpoint::parse(&self.target).context("--target")?,
            direct: self
                .direct
                .as_deref()
                .map(Endpoint::parse)
                .transpose()
                .context("--direct")?,
            workload,
            thresholds: Thresholds {
                max_p99_overhead: self.max_p99_overhead,
                min_rate: self.min_rate,
                max_errors: self.max_errors,
            },
        })
    }
}

/// Shared by the scheduler thread and every request task.
struct Shared {
    workload: Workload,
    timeout: Duration,
    target: Pool,
    target_tally: Mutex<Tally>,
    direct: Option<Pool>,
    direct_tally: Mutex<Tally>,
    in_flight: AtomicU64,
}

impl Shared {
    async fn fire(&self, i: u64, side: Side, due: Instant) {
        let (pool, tally) = match (side, &self.direct) {
            (Side::Direct, Some(pool)) => (pool, &self.direct_tally),
            _ => (&self.target, &self.target_tally),
        };
        let variant = self.workload.variant(i);
        let deadline = tokio::time::Instant::from_std(due + self.timeout);
        let outcome = tokio::time::timeout_at(deadline, pool.send(variant, &self.workload.method))
            .await
            .ok();
        tally
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .record(due, outcome);
        self.in_flight.fetch_sub(1, Ordering::Release);
    }
}

/// Returns whether every threshold passed. Errors are setup problems (exit 2).
pub fn main(args: RunArgs) -> anyhow::Result<bool> {
    let setup = args.setup()?;
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = args.threads {
        builder.worker_threads(n.max(1));
    }
    let rt = builder
        .enable_all()
        .build()
        .context("starting the runtime")?;

    let warm = args.connections.min(16);
    let shared = Arc::new(Shared {
        timeout: args.timeout,
        target: Pool::new(setup.target, args.connections),
        target_tally: Mutex::new(Tally::default()),
        direct: setup.direct.map(|d| Pool::new(d, args.connections)),
        direct_tally: Mutex::new(Tally::default()),
        in_flight: AtomicU64::new(0),
        workload: setup.workload,
    });
    rt.block_on(async {
        shared
            .target
            .warm(warm)
            .await
            .with_context(|| format!("cannot reach --target {}", shared.target.endpoint().url))?;
        if let Some(direct) = &shared.direct {
            direct
                .warm(warm)
                .await
                .with_context(|| format!("cannot reach --direct {}", direct.endpoint().url))?;
        }
        anyhow::Ok(())
    })?;

    // The clock runs on this thread; requests run on the runtime's workers.
    let plan = setup.plan;
    let handle = rt.handle().clone();
    let start = Instant::now() + Duration::from_millis(5);
    let lag = schedule::run(&plan, start, |i, side, due| {
        shared.in_flight.fetch_add(1, Ordering::Relaxed);
        let shared = shared.clone();
        handle.spawn(async move { shared.fire(i, side, due).await });
    });

    // Every request times out `timeout` after its due time, so stragglers are done by then.
    let give_up = Instant::now() + args.timeout + Duration::from_millis(100);
    while shared.in_flight.load(Ordering::Acquire) > 0 && Instant::now() < give_up {
        std::thread::sleep(Duration::from_millis(5));
    }

    let report = build_report(&args, &plan, &shared, &lag, setup.thresholds);
    rt.shutdown_timeout(Duration::from_millis(100));
    print!("{}", report.table());
    for check in report.checks.iter().filter(|c| !c.passed) {
        eprintln!(
            "loadgen: threshold failed: {}: {}",
            check.name, check.message
        );
    }
    if let Some(path) = &args.json {
        let json = serde_json::to_vec_pretty(&report)?;
        std::fs::write(path, json).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(report.passed)
}

fn build_report(
    args: &RunArgs,
    plan: &Plan,
    shared: &Shared,
    lag: &hdrhistogram::Histogram<u64>,
    thresholds: Thresholds,
) -> Report {
    let take = |m: &Mutex<Tally>| std::mem::take(&mut *m.lock().unwrap_or_else(|e| e.into_inner()));
    let side = |side: Side, pool: &Pool, tally: Tally| {
        let scheduled = plan.scheduled(side);
        let window = plan.offset(scheduled);
        SideReport::new(&pool.endpoint().url, tally, scheduled, window, args.stream)
    };
    let target = side(Side::Target, &shared.target, take(&shared.target_tally));
    let direct = shared
        .direct
        .as_ref()
        .map(|pool| side(Side::Direct, pool, take(&shared.direct_tally)));
    let config = RunConfig {
        rate: args.rate,
        duration_s: args.duration.as_secs_f64(),
        stream: args.stream,
        connections: args.connections,
        slice_ms: plan.slice.map(|s| s.as_secs_f64() * 1e3),
    };
    Report::new(config, target, direct, lag, thresholds)
}
