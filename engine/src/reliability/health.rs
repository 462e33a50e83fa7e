//! Provider and provider key health: outcomes over a sliding window; a failure rate above
//! the threshold opens the circuit for a cool-down, after which a small share of traffic
//! probes the provider until it proves healthy again (closed) or fails (open again).
//!
//! Lock-free: each tracker is a ring of per-second buckets of atomics plus an atomic state.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};

const BUCKETS: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HealthPolicy {
    /// Failure share (0–1) over the window that opens the circuit.
    pub failure_threshold: f64,
    /// Fewer outcomes than this in the window never open it (one failure is not a trend).
    pub min_requests: u64,
    /// How long an open circuit stays closed to traffic before probing.
    pub cooldown_secs: u64,
    /// Share of requests let through as probes while half-open.
    pub probe_share: f64,
}

impl Default for HealthPolicy {
    fn default() -> Self {
        HealthPolicy {
            failure_threshold: 0.5,
            min_requests: 5,
            cooldown_secs: 10,
            probe_share: 0.1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Circuit {
    Closed,
    Open,
    HalfOpen,
}

/// One bucket: the second it counts, and its outcomes.
#[derive(Debug, Default)]
struct Bucket {
    second: AtomicU64,
    ok: AtomicU64,
    failed: AtomicU64,
    /// Sum of the successful attempts' times to response headers, in µs.
    latency_us: AtomicU64,
}

/// Outcomes over the window, for `/admin/health`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct WindowStats {
    pub ok: u64,
    pub failed: u64,
    /// Mean time to response headers of the successful attempts; `None` without any.
    pub mean_latency_ms: Option<f64>,
}

#[derive(Debug, Default)]
pub struct Health {
    buckets: [Bucket; BUCKETS],
    /// 0 = closed; otherwise the unix second the circuit opened.
    opened_at: AtomicU64,
    /// Consecutive successful probes while half-open.
    probe_successes: AtomicU32,
}

impl Health {
    fn bucket(&self, now: u64) -> &Bucket {
        let b = &self.buckets[(now % BUCKETS as u64) as usize];
        let seen = b.second.load(Relaxed);
        if seen != now
            && b.second
                .compare_exchange(seen, now, Relaxed, Relaxed)
                .is_ok()
        {
            // This bucket last counted a second that left the window: start it over. A racing
            // increment between the swap and these stores can be lost; health is statistics.
            b.ok.store(0, Relaxed);
            b.failed.store(0, Relaxed);
            b.latency_us.store(0, Relaxed);
        }
        b
    }

    /// (ok, failed) over the last `BUCKETS` seconds.
    fn window(&self, now: u64) -> (u64, u64) {
        self.buckets
            .iter()
            .filter(|b| now.saturating_sub(b.second.load(Relaxed)) < BUCKETS as u64)
            .fold((0, 0), |(o, f), b| {
                (o + b.ok.load(Relaxed), f + b.failed.load(Relaxed))
            })
    }

    /// Adds one successful attempt's time to response headers (after `record` counted it).
    pub fn record_latency(&self, now: u64, latency: std::time::Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.bucket(now).latency_us.fetch_add(us, Relaxed);
    }

    /// Outcomes and mean latency over the last `BUCKETS` seconds.
    pub fn stats(&self, now: u64) -> WindowStats {
        let live = self
            .buckets
            .iter()
            .filter(|b| now.saturating_sub(b.second.load(Relaxed)) < BUCKETS as u64);
        let (ok, failed, latency_us) = live.fold((0, 0, 0u64), |(o, f, l), b| {
            (
                o + b.ok.load(Relaxed),
                f + b.failed.load(Relaxed),
                l.saturating_add(b.latency_us.load(Relaxed)),
            )
        });
        WindowStats {
            ok,
            failed,
            mean_latency_ms: (ok > 0).then(|| latency_us as f64 / ok as f64 / 1000.0),
        }
    }

    pub fn circuit(&self, policy: &HealthPolicy, now: u64) -> Circuit {
        match self.opened_at.load(Relaxed) {
            0 => Circuit::Closed,
            t if now < t + policy.cooldown_secs => Circuit::Open,
            _ => Circuit::HalfOpen,
        }
    }

    /// Whether to send this request here. `roll` in [0, 1) picks the probes when half-open.
    pub fn admits(&self, policy: &HealthPolicy, now: u64, roll: f64) -> bool {
        match self.circuit(policy, now) {
            Circuit::Closed => true,
            Circuit::Open => false,
            Circuit::HalfOpen => roll < policy.probe_share,
        }
    }

    pub fn record(&self, policy: &HealthPolicy, now: u64, ok: bool) {
        let b = self.bucket(now);
        if ok {
            b.ok.fetch_add(1, Relaxed);
        } else {
            b.failed.fetch_add(1, Relaxed);
        }
        match self.circuit(policy, now) {
            // A few good probes in a row close the circuit; one is luck.
            Circuit::HalfOpen if ok && self.probe_successes.fetch_add(1, Relaxed) + 1 >= 3 => {
                self.close();
            }
            Circuit::HalfOpen if ok => {}
            Circuit::HalfOpen => {
                self.probe_successes.store(0, Relaxed);
                self.opened_at.store(now.max(1), Relaxed);
            }
            Circuit::Closed if !ok => {
                let (oks, fails) = self.window(now);
                let total = oks + fails;
                if total >= policy.min_requests
                    && fails as f64 >= policy.failure_threshold * total as f64
                {
                    self.probe_successes.store(0, Relaxed);
                    self.opened_at.store(now.max(1), Relaxed);
                }
            }
            _ => {}
        }
    }

    /// Opens the circuit now, whatever the window says: for an answer that is conclusive on
    /// its own (a provider key refused with 401/403, or out of quota with 429).
    pub fn trip(&self, now: u64) {
        self.probe_successes.store(0, Relaxed);
        self.opened_at.store(now.max(1), Relaxed);
    }

    fn close(&self) {
        self.opened_at.store(0, Relaxed);
        self.probe_successes.store(0, Relaxed);
        for b in &self.buckets {
            b.ok.store(0, Relaxed);
            b.failed.store(0, Relaxed);
            b.latency_us.store(0, Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_count_outcomes_and_average_the_successes_latency_over_the_window() {
        let (h, p) = (Health::default(), HealthPolicy::default());
        assert_eq!(h.stats(100).mean_latency_ms, None);
        for ms in [10, 30] {
            h.record(&p, 100, true);
            h.record_latency(100, std::time::Duration::from_millis(ms));
        }
        h.record(&p, 101, false);
        let s = h.stats(101);
        assert_eq!((s.ok, s.failed), (2, 1));
        assert_eq!(s.mean_latency_ms, Some(20.0));
        // Ten seconds on, the window has moved past all of it.
        assert_eq!(h.stats(111), WindowStats::default());
    }

    #[test]
    fn opens_after_the_threshold_then_probes_and_closes() {
        let p = HealthPolicy::default();
        let h = Health::default();
        for _ in 0..4 {
            h.record(&p, 100, false);
        }
        assert_eq!(h.circuit(&p, 100), Circuit::Closed, "below min_requests");
        h.record(&p, 100, false);
        assert_eq!(h.circuit(&p, 100), Circuit::Open);
        assert!(!h.admits(&p, 105, 0.0));
        assert_eq!(h.circuit(&p, 110), Circuit::HalfOpen);
        assert!(h.admits(&p, 110, 0.05) && !h.admits(&p, 110, 0.5));
        h.record(&p, 110, true);
        h.record(&p, 110, true);
        assert_eq!(h.circuit(&p, 110), Circuit::HalfOpen);
        h.record(&p, 111, true);
        assert_eq!(h.circuit(&p, 111), Circuit::Closed);
    }

    #[test]
    fn a_trip_opens_at_once_and_probes_close_it_again() {
        let p = HealthPolicy::default();
        let h = Health::default();
        h.trip(100);
        assert_eq!(h.circuit(&p, 100), Circuit::Open);
        assert_eq!(h.circuit(&p, 110), Circuit::HalfOpen);
        for _ in 0..3 {
            h.record(&p, 110, true);
        }
        assert_eq!(h.circuit(&p, 110), Circuit::Closed);
    }

    #[test]
    fn a_failed_probe_reopens() {
        let p = HealthPolicy::default();
        let h = Health::default();
        for _ in 0..5 {
            h.record(&p, 100, false);
        }
        h.record(&p, 111, false);
        assert_eq!(h.circuit(&p, 111), Circuit::Open);
        assert_eq!(h.circuit(&p, 121), Circuit::HalfOpen);
    }

    #[test]
    fn mostly_healthy_traffic_stays_closed_and_old_failures_age_out() {
        let p = HealthPolicy::default();
        let h = Health::default();
        for i in 0..20 {
            h.record(&p, 100, i % 4 != 0);
        }
        assert_eq!(h.circuit(&p, 100), Circuit::Closed, "25% failures");
        for _ in 0..4 {
            h.record(&p, 100, false);
        }
        // 9 of 24 failed: still under half. Ten seconds later the window is empty again.
        assert_eq!(h.circuit(&p, 100), Circuit::Closed);
        for _ in 0..4 {
            h.record(&p, 120, false);
        }
        assert_eq!(
            h.circuit(&p, 120),
            Circuit::Closed,
            "old outcomes left the window"
        );
    }
}
