//! How requests ended: answered completely, or cancelled because the client went away first
//! (hyper drops the handler future, or the response body mid-stream, when the connection
//! closes). Tests read it from `GET /_mock/stats` to check that a gateway really hangs up on
//! its provider when its own client does.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

#[derive(Debug, Default)]
pub struct Outcomes {
    completed: AtomicU64,
    cancelled: AtomicU64,
}

impl Outcomes {
    /// A request under way: counted as cancelled if dropped before [`Pending::finish`].
    pub fn begin(self: &Arc<Self>) -> Pending {
        Pending {
            outcomes: Some(self.clone()),
        }
    }

    /// `(completed, cancelled)`
    pub fn counts(&self) -> (u64, u64) {
        (self.completed.load(Relaxed), self.cancelled.load(Relaxed))
    }

    pub fn reset(&self) {
        self.completed.store(0, Relaxed);
        self.cancelled.store(0, Relaxed);
    }
}

/// A drop guard: travels with the handler future, then with a streamed body until its last
/// frame is handed to hyper.
#[derive(Debug)]
pub struct Pending {
    outcomes: Option<Arc<Outcomes>>,
}

impl Pending {
    pub fn finish(mut self) {
        if let Some(o) = self.outcomes.take() {
            o.completed.fetch_add(1, Relaxed);
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(o) = self.outcomes.take() {
            o.cancelled.fetch_add(1, Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_unfinished_counts_as_cancelled() {
        let o = Arc::new(Outcomes::default());
        o.begin().finish();
        drop(o.begin());
        o.begin().finish();
        assert_eq!(o.counts(), (2, 1));
        o.reset();
        assert_eq!(o.counts(), (0, 0));
    }
}
