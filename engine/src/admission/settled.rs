//! What a request was finally charged, as its reservation settled: read by whatever reports on
//! the request after its answer ends (metrics, the request log). A stream settles in its relay,
//! after the handler has returned, hence a shared cell rather than a return value.

use super::estimate::Usage;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Written by `Admitted::settle` (the last settlement wins: earlier ones belong to routes that
/// failed and charged nothing), read once the answer has ended.
#[derive(Debug, Default)]
pub struct SettledUsage {
    prompt: AtomicU64,
    cached: AtomicU64,
    completion: AtomicU64,
    cost_micros: AtomicU64,
    set: AtomicBool,
}

/// A settlement as read back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Settled {
    pub usage: Usage,
    /// Micro-dollars; 0 for an unpriced model.
    pub cost_micros: u64,
}

impl SettledUsage {
    pub fn record(&self, usage: Usage, cost_micros: u64) {
        self.prompt.store(usage.prompt, Ordering::Relaxed);
        self.cached.store(usage.cached, Ordering::Relaxed);
        self.completion.store(usage.completion, Ordering::Relaxed);
        self.cost_micros.store(cost_micros, Ordering::Relaxed);
        // Release pairs with the Acquire in `get`: whoever sees `set` sees the counts.
        self.set.store(true, Ordering::Release);
    }

    /// `None` until a settlement was recorded (the request was refused, or never got far
    /// enough to reserve).
    pub fn get(&self) -> Option<Settled> {
        if !self.set.load(Ordering::Acquire) {
            return None;
        }
        Some(Settled {
            usage: Usage {
                prompt: self.prompt.load(Ordering::Relaxed),
                cached: self.cached.load(Ordering::Relaxed),
                completion: self.completion.load(Ordering::Relaxed),
            },
            cost_micros: self.cost_micros.load(Ordering::Relaxed),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_until_recorded_and_last_settlement_wins() {
        let cell = SettledUsage::default();
        assert_eq!(cell.get(), None);
        cell.record(Usage::default(), 0);
        let usage = Usage {
            prompt: 10,
            cached: 4,
            completion: 3,
        };
        cell.record(usage, 25);
        assert_eq!(
            cell.get(),
            Some(Settled {
                usage,
                cost_micros: 25
            })
        );
    }
}
