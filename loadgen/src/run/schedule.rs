//! The open-loop clock: request `i` is due at `start + i / rate`, whatever happened to earlier
//! requests. A dedicated OS thread keeps that clock (see `crate::clock` for why not tokio).

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Side {
    /// The system under test (the gateway).
    Target,
    /// The provider called directly: the baseline the overhead is measured against.
    Direct,
}

#[derive(Clone, Copy, Debug)]
pub struct Plan {
    pub rate: f64,
    pub duration: Duration,
    /// With `--direct`: alternate target / direct every `slice`, so that noise on the machine
    /// (other processes, CPU frequency, GC in a peer) hits both sides alike.
    pub slice: Option<Duration>,
}

impl Plan {
    /// Number of requests due within the duration (those at offsets 0, 1/rate, ... < duration).
    pub fn count(&self) -> u64 {
        (self.duration.as_secs_f64() * self.rate).ceil() as u64
    }

    pub fn offset(&self, i: u64) -> Duration {
        Duration::from_secs_f64(i as f64 / self.rate)
    }

    pub fn side(&self, offset: Duration) -> Side {
        match self.slice {
            Some(slice) if (offset.as_nanos() / slice.as_nanos().max(1)) % 2 == 1 => Side::Direct,
            _ => Side::Target,
        }
    }

    /// How many requests each side is scheduled to get: the denominator of achieved rates.
    pub fn scheduled(&self, side: Side) -> u64 {
        (0..self.count())
            .filter(|&i| self.side(self.offset(i)) == side)
            .count() as u64
    }
}

/// Runs the clock on the calling thread, calling `launch(i, side, due)` at each due time.
/// Returns the lag histogram (µs between due time and actual launch): if it is large, the load
/// generator itself could not keep up and the run says more about it than about the target.
pub fn run(
    plan: &Plan,
    start: Instant,
    mut launch: impl FnMut(u64, Side, Instant),
) -> Histogram<u64> {
    crate::clock::reduce_timer_slack();
    let mut lag = super::report::histogram();
    for i in 0..plan.count() {
        let offset = plan.offset(i);
        let due = start + offset;
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let late = Instant::now().saturating_duration_since(due);
        lag.saturating_record(late.as_micros() as u64);
        launch(i, plan.side(offset), due);
    }
    lag
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(rate: f64, secs: f64, slice_ms: Option<u64>) -> Plan {
        Plan {
            rate,
            duration: Duration::from_secs_f64(secs),
            slice: slice_ms.map(Duration::from_millis),
        }
    }

    #[test]
    fn counts_and_offsets() {
        let p = plan(1000.0, 2.0, None);
        assert_eq!(p.count(), 2000);
        assert_eq!(p.offset(0), Duration::ZERO);
        assert_eq!(p.offset(500), Duration::from_millis(500));
        assert_eq!(plan(3.0, 1.0, None).count(), 3);
        assert_eq!(plan(2.5, 1.0, None).count(), 3);
    }

    #[test]
    fn slices_alternate_and_split_evenly() {
        let p = plan(100.0, 2.0, Some(500));
        assert_eq!(p.side(Duration::from_millis(0)), Side::Target);
        assert_eq!(p.side(Duration::from_millis(499)), Side::Target);
        assert_eq!(p.side(Duration::from_millis(500)), Side::Direct);
        assert_eq!(p.side(Duration::from_millis(1200)), Side::Target);
        assert_eq!(p.scheduled(Side::Target), 100);
        assert_eq!(p.scheduled(Side::Direct), 100);
        let solo = plan(100.0, 2.0, None);
        assert_eq!(solo.scheduled(Side::Target), 200);
        assert_eq!(solo.scheduled(Side::Direct), 0);
    }

    #[test]
    fn launches_every_request_in_order() {
        let p = plan(1000.0, 0.02, Some(5));
        let mut seen = Vec::new();
        let lag = run(&p, Instant::now(), |i, side, _| seen.push((i, side)));
        assert_eq!(seen.len(), 20);
        assert!(seen.iter().enumerate().all(|(n, (i, _))| n as u64 == *i));
        assert_eq!(seen[0].1, Side::Target);
        assert_eq!(seen[5].1, Side::Direct);
        assert_eq!(lag.len(), 20);
    }
}
