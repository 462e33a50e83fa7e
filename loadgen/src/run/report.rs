//! Turning outcomes into numbers: per-side histograms and counters, overhead between sides,
//! thresholds, and the two renderings (table for people, JSON for CI).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use super::client::Outcome;
use crate::duration::format_micros;

/// Keep a handful of distinct error messages; a thousand copies of "connection refused" help nobody.
const ERROR_SAMPLES: usize = 5;

/// Microseconds from 1 µs to 1 hour at 3 significant digits (1 µs precision below 1 ms, 0.1%
/// above). Fixed bounds, because `saturating_record` clamps to the current bounds rather than
/// growing an auto-resizing histogram.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3)
        .unwrap_or_else(|_| unreachable!("constant bounds are valid"))
}

fn micros(d: Duration) -> u64 {
    d.as_micros().min(u128::from(u64::MAX)) as u64
}

/// Everything recorded about one side while the run is going.
pub struct Tally {
    latency: Histogram<u64>,
    ttfb: Histogram<u64>,
    statuses: BTreeMap<u16, u64>,
    timeouts: u64,
    transport_errors: u64,
    samples: Vec<String>,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            latency: histogram(),
            ttfb: histogram(),
            statuses: BTreeMap::new(),
            timeouts: 0,
            transport_errors: 0,
            samples: Vec::new(),
        }
    }
}

impl Tally {
    /// Latency counts from `due` (the scheduled send time), not from the actual send, so any
    /// queueing — in the target or in this client — shows up in the tail.
    pub fn record(&mut self, due: Instant, outcome: Option<Outcome>) {
        match outcome {
            None => self.timeouts += 1,
            Some(Outcome::Failed(msg)) => {
                self.transport_errors += 1;
                if self.samples.len() < ERROR_SAMPLES && !self.samples.contains(&msg) {
                    self.samples.push(msg);
                }
            }
            Some(Outcome::Response {
                status,
                first_byte,
                done,
            }) => {
                *self.statuses.entry(status).or_default() += 1;
                self.latency
                    .saturating_record(micros(done.saturating_duration_since(due)));
                let first = first_byte.unwrap_or(done);
                self.ttfb
                    .saturating_record(micros(first.saturating_duration_since(due)));
            }
        }
    }

    pub fn recorded(&self) -> u64 {
        self.statuses.values().sum::<u64>() + self.timeouts + self.transport_errors
    }
}

#[derive(Serialize, Debug, Clone, Copy, Default, PartialEq)]
pub struct Percentiles {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
}

impl Percentiles {
    fn of(h: &Histogram<u64>) -> Self {
        Percentiles {
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: (h.mean() * 10.0).round() / 10.0,
        }
    }
}

#[derive(Serialize, Debug, Clone)]
pub struct SideReport {
    pub url: String,
    /// Requests scheduled for this side.
    pub requests: u64,
    /// 2xx responses.
    pub ok: u64,
    /// 2xx responses per second of this side's sending time.
    pub rate: f64,
    pub statuses: BTreeMap<String, u64>,
    pub non_2xx: u64,
    pub timeouts: u64,
    pub transport_errors: u64,
    /// non_2xx + timeouts + transport_errors.
    pub errors: u64,
    /// Total latency (µs, from the scheduled send time to the end of the body).
    #[serde(flatten)]
    pub latency: Percentiles,
    /// Time to the first body byte (µs); reported for streaming runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttfb: Option<Percentiles>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub error_samples: Vec<String>,
}

impl SideReport {
    /// `requests` is what was scheduled; anything scheduled but never recorded (still in flight
    /// when the run gave up waiting) counts as a timeout.
    pub fn new(
        url: &str,
        tally: Tally,
        requests: u64,
        send_window: Duration,
        stream: bool,
    ) -> Self {
        let ok: u64 = tally
            .statuses
            .iter()
            .filter(|(s, _)| (200..300).contains(*s))
            .map(|(_, n)| n)
            .sum();
        let answered: u64 = tally.statuses.values().sum();
        let timeouts = tally.timeouts + requests.saturating_sub(tally.recorded());
        let non_2xx = answered - ok;
        let secs = send_window.as_secs_f64();
        SideReport {
            url: url.to_owned(),
            requests,
            ok,
            rate: if secs > 0.0 {
                ((ok as f64 / secs) * 10.0).round() / 10.0
            } else {
                0.0
            },
            statuses: tally
                .statuses
                .iter()
                .map(|(s, n)| (s.to_string(), *n))
                .collect(),
            non_2xx,
            timeouts,
            transport_errors: tally.transport_errors,
            errors: non_2xx + timeouts + tally.transport_errors,
            latency: Percentiles::of(&tally.latency),
            ttfb: stream.then(|| Percentiles::of(&tally.ttfb)),
            error_samples: tally.samples,
        }
    }
}

/// Target minus direct, per percentile (µs; negative when the target was faster).
#[derive(Serialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overhead {
    pub p50: i64,
    pub p90: i64,
    pub p99: i64,
    pub p999: i64,
}

impl Overhead {
    pub fn between(target: &Percentiles, direct: &Percentiles) -> Self {
        let d = |t: u64, b: u64| t as i64 - b as i64;
        Overhead {
            p50: d(target.p50, direct.p50),
            p90: d(target.p90, direct.p90),
            p99: d(target.p99, direct.p99),
            p999: d(target.p999, direct.p999),
        }
    }
}

#[derive(Serialize, Debug, Clone)]
pub struct Check {
    pub name: &'static str,
    pub limit: f64,
    pub actual: f64,
    pub passed: bool,
    pub message: String,
}

/// Thresholds from the command line; `None` means not checked.
#[derive(Debug, Default, Clone, Copy)]
pub struct Thresholds {
    pub max_p99_overhead: Option<Duration>,
    pub min_rate: Option<f64>,
    pub max_errors: Option<u64>,
}

#[derive(Serialize, Debug, Clone)]
pub struct RunConfig {
    pub rate: f64,
    pub duration_s: f64,
    pub stream: bool,
    pub connections: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slice_ms: Option<f64>,
}

#[derive(Serialize, Debug, Clone)]
pub struct Report {
    pub config: RunConfig,
    pub target: SideReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direct: Option<SideReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overhead_us: Option<Overhead>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overhead_ttfb_us: Option<Overhead>,
    /// How late the load generator launched requests (µs): large values mean it could not keep
    /// the schedule and the numbers above include its own delay.
    pub scheduler_lag_us: Percentiles,
    pub checks: Vec<Check>,
    pub passed: bool,
}

impl Report {
    pub fn new(
        config: RunConfig,
        target: SideReport,
        direct: Option<SideReport>,
        lag: &Histogram<u64>,
        thresholds: Thresholds,
    ) -> Self {
        let overhead_us = direct
            .as_ref()
            .map(|d| Overhead::between(&target.latency, &d.latency));
        let overhead_ttfb_us = direct
            .as_ref()
            .and_then(|d| Some(Overhead::between(target.ttfb.as_ref()?, d.ttfb.as_ref()?)));
        let mut report = Report {
            config,
            target,
            direct,
            overhead_us,
            overhead_ttfb_us,
            scheduler_lag_us: Percentiles::of(lag),
            checks: Vec::new(),
            passed: true,
        };
        report.checks = report.check(thresholds);
        report.passed = report.checks.iter().all(|c| c.passed);
        report
    }

    fn check(&self, t: Thresholds) -> Vec<Check> {
        let mut checks = Vec::new();
        // A run where nothing succeeded measures nothing; never let it pass silently.
        for side in std::iter::once(&self.target).chain(self.direct.as_ref()) {
            checks.push(Check {
                name: "any_success",
                limit: 1.0,
                actual: side.ok as f64,
                passed: side.ok > 0,
                message: format!("{} got {} successful responses", side.url, side.ok),
            });
        }
        if let (Some(limit), Some(overhead)) = (t.max_p99_overhead, self.overhead_us) {
            let limit_us = limit.as_secs_f64() * 1e6;
            checks.push(Check {
                name: "max_p99_overhead",
                limit: limit_us,
                actual: overhead.p99 as f64,
                passed: overhead.p99 as f64 <= limit_us,
                message: format!(
                    "p99 overhead {} (limit {})",
                    format_micros(overhead.p99 as f64),
                    format_micros(limit_us)
                ),
            });
        }
        if let Some(min) = t.min_rate {
            checks.push(Check {
                name: "min_rate",
                limit: min,
                actual: self.target.rate,
                passed: self.target.rate >= min,
                message: format!("target rate {:.1}/s (minimum {min}/s)", self.target.rate),
            });
        }
        if let Some(max) = t.max_errors {
            let errors = self.target.errors + self.direct.as_ref().map_or(0, |d| d.errors);
            checks.push(Check {
                name: "max_errors",
                limit: max as f64,
                actual: errors as f64,
                passed: errors <= max,
                message: format!("{errors} errors (maximum {max})"),
            });
        }
        checks
    }

    pub fn table(&self) -> String {
        let mut out = String::new();
        let c = &self.config;
        let _ = write!(
            out,
            "loadgen run: {} req/s for {}s, {} connections{}",
            c.rate,
            c.duration_s,
            c.connections,
            if c.stream { ", streaming" } else { "" }
        );
        if let Some(slice) = c.slice_ms {
            let _ = write!(out, ", target/direct alternating every {slice}ms");
        }
        out.push('\n');
        let header = format!(
            "{:<9}{:>9}{:>9}{:>8}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}\n",
            "", "requests", "2xx", "errors", "rate/s", "p50", "p90", "p99", "p99.9", "max"
        );
        out.push_str(&header);
        let row = |out: &mut String, name: &str, s: &SideReport, p: &Percentiles| {
            let _ = writeln!(
                out,
                "{:<9}{:>9}{:>9}{:>8}{:>10.1}{:>10}{:>10}{:>10}{:>10}{:>10}",
                name,
                s.requests,
                s.ok,
                s.errors,
                s.rate,
                format_micros(p.p50 as f64),
                format_micros(p.p90 as f64),
                format_micros(p.p99 as f64),
                format_micros(p.p999 as f64),
                format_micros(p.max as f64),
            );
        };
        let overhead_row = |out: &mut String, name: &str, o: &Overhead| {
            let _ = writeln!(
                out,
                "{:<9}{:>36}{:>10}{:>10}{:>10}{:>10}",
                name,
                "",
                format_micros(o.p50 as f64),
                format_micros(o.p90 as f64),
                format_micros(o.p99 as f64),
                format_micros(o.p999 as f64),
            );
        };
        row(&mut out, "target", &self.target, &self.target.latency);
        if let Some(d) = &self.direct {
            row(&mut out, "direct", d, &d.latency);
        }
        if let Some(o) = &self.overhead_us {
            overhead_row(&mut out, "overhead", o);
        }
        if let Some(ttfb) = &self.target.ttfb {
            out.push_str("time to first byte:\n");
            row(&mut out, "target", &self.target, ttfb);
            if let Some(d) = &self.direct {
                if let Some(dt) = &d.ttfb {
                    row(&mut out, "direct", d, dt);
                }
            }
            if let Some(o) = &self.overhead_ttfb_us {
                overhead_row(&mut out, "overhead", o);
            }
        }
        let sides = [
            ("target", Some(&self.target)),
            ("direct", self.direct.as_ref()),
        ];
        for (name, side) in sides {
            let Some(side) = side else { continue };
            let statuses: Vec<String> = side
                .statuses
                .iter()
                .map(|(s, n)| format!("{s}×{n}"))
                .collect();
            let _ = writeln!(
                out,
                "{name} {}: statuses [{}], timeouts {}, transport errors {}",
                side.url,
                statuses.join(" "),
                side.timeouts,
                side.transport_errors
            );
            for sample in &side.error_samples {
                let _ = writeln!(out, "  error: {sample}");
            }
        }
        let _ = writeln!(
            out,
            "scheduler lag: p99 {}, max {}",
            format_micros(self.scheduler_lag_us.p99 as f64),
            format_micros(self.scheduler_lag_us.max as f64)
        );
        for check in &self.checks {
            let verdict = if check.passed { "PASS" } else { "FAIL" };
            let _ = writeln!(out, "{verdict} {}: {}", check.name, check.message);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(latencies_us: &[u64], status: u16) -> Tally {
        let mut t = Tally::default();
        let due = Instant::now();
        for &us in latencies_us {
            let done = due + Duration::from_micros(us);
            t.record(
                due,
                Some(Outcome::Response {
                    status,
                    first_byte: None,
                    done,
                }),
            );
        }
        t
    }

    fn config() -> RunConfig {
        RunConfig {
            rate: 100.0,
            duration_s: 1.0,
            stream: false,
            connections: 1,
            slice_ms: None,
        }
    }

    #[test]
    fn percentiles_of_a_known_distribution() {
        let values: Vec<u64> = (1..=1000).collect();
        let side = SideReport::new(
            "t",
            tally(&values, 200),
            1000,
            Duration::from_secs(2),
            false,
        );
        assert_eq!(side.latency.p50, 500);
        assert_eq!(side.latency.p90, 900);
        assert_eq!(side.latency.p99, 990);
        assert_eq!(side.latency.p999, 999);
        assert_eq!(side.latency.max, 1000);
        assert_eq!(side.rate, 500.0);
        assert_eq!(side.errors, 0);
    }

    #[test]
    fn errors_add_up_and_missing_outcomes_are_timeouts() {
        let mut t = tally(&[10, 20], 200);
        let due = Instant::now();
        t.record(
            due,
            Some(Outcome::Response {
                status: 503,
                first_byte: None,
                done: due,
            }),
        );
        t.record(due, None);
        t.record(due, Some(Outcome::Failed("refused".into())));
        t.record(due, Some(Outcome::Failed("refused".into())));
        let side = SideReport::new("t", t, 8, Duration::from_secs(1), false);
        assert_eq!(side.ok, 2);
        assert_eq!(side.non_2xx, 1);
        assert_eq!(side.transport_errors, 2);
        assert_eq!(side.timeouts, 1 + 2);
        assert_eq!(side.errors, 1 + 3 + 2);
        assert_eq!(side.error_samples, ["refused"]);
        assert_eq!(side.statuses["503"], 1);
    }

    #[test]
    fn overhead_is_target_minus_direct() {
        let t = Percentiles {
            p50: 300,
            p90: 400,
            p99: 500,
            p999: 600,
            max: 700,
            mean: 0.0,
        };
        let d = Percentiles {
            p50: 100,
            p90: 100,
            p99: 600,
            p999: 100,
            max: 100,
            mean: 0.0,
        };
        assert_eq!(
            Overhead::between(&t, &d),
            Overhead {
                p50: 200,
                p90: 300,
                p99: -100,
                p999: 500
            }
        );
    }

    #[test]
    fn thresholds_pass_and_fail() {
        let target = SideReport::new(
            "t",
            tally(&[1950; 10], 200),
            10,
            Duration::from_secs(1),
            false,
        );
        let direct = SideReport::new(
            "d",
            tally(&[900; 10], 200),
            10,
            Duration::from_secs(1),
            false,
        );
        let lag = histogram();
        let strict = Thresholds {
            max_p99_overhead: Some(Duration::from_millis(1)),
            min_rate: Some(20.0),
            max_errors: Some(0),
        };
        let r = Report::new(config(), target.clone(), Some(direct.clone()), &lag, strict);
        assert!(!r.passed);
        let failed: Vec<&str> = r
            .checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| c.name)
            .collect();
        assert_eq!(failed, ["max_p99_overhead", "min_rate"]);
        assert_eq!(r.overhead_us.unwrap().p99, 1050);

        let lenient = Thresholds {
            max_p99_overhead: Some(Duration::from_millis(3)),
            min_rate: Some(10.0),
            max_errors: Some(0),
        };
        let r = Report::new(config(), target, Some(direct), &lag, lenient);
        assert!(r.passed, "{:?}", r.checks);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["target"]["p99"], 1950);
        assert_eq!(json["overhead_us"]["p99"], 1050);
        assert!(r.table().contains("overhead"));
    }

    #[test]
    fn nothing_succeeding_fails_the_run() {
        let side = SideReport::new("t", tally(&[5], 500), 1, Duration::from_secs(1), false);
        let r = Report::new(config(), side, None, &histogram(), Thresholds::default());
        assert!(!r.passed);
    }
}
