//! Timing finer than tokio's: tokio timers have 1 ms resolution and round up, so a 2 ms mock
//! latency would really be ~3 ms and a 10k/s schedule would fire in 1 ms bursts. Both the mock's
//! delays and the load schedule are therefore kept by dedicated OS threads.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// Linux delays sleeping threads by up to 50 µs by default to batch wake-ups; timing threads want
/// their wake-ups on time.
pub fn reduce_timer_slack() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_TIMERSLACK takes one integer argument and only affects the calling thread.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0);
    }
}

struct Due {
    at: Instant,
    wake: oneshot::Sender<()>,
}

// Ordered by deadline, reversed so `BinaryHeap` (a max-heap) pops the earliest first.
impl Ord for Due {
    fn cmp(&self, other: &Self) -> Ordering {
        other.at.cmp(&self.at)
    }
}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}
impl Eq for Due {}

/// A timer thread with microsecond-level precision shared by all tasks.
pub struct PreciseTimer {
    tx: mpsc::Sender<Due>,
}

impl PreciseTimer {
    pub fn start() -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Due>();
        std::thread::Builder::new()
            .name("precise-timer".into())
            .spawn(move || run(rx))?;
        Ok(PreciseTimer { tx })
    }

    pub async fn sleep(&self, duration: Duration) {
        let (wake, woken) = oneshot::channel();
        let due = Due {
            at: Instant::now() + duration,
            wake,
        };
        match self.tx.send(due) {
            Ok(()) => {
                let _ = woken.await;
            }
            // The timer thread is gone (cannot happen while `self` lives); stay correct anyway.
            Err(_) => tokio::time::sleep(duration).await,
        }
    }
}

fn run(rx: mpsc::Receiver<Due>) {
    reduce_timer_slack();
    let mut heap = BinaryHeap::<Due>::new();
    loop {
        let now = Instant::now();
        while heap.peek().is_some_and(|d| d.at <= now) {
            if let Some(due) = heap.pop() {
                // The waiting request may be gone (client hung up); nothing to do then.
                let _ = due.wake.send(());
            }
        }
        let next = match heap.peek() {
            Some(d) => rx.recv_timeout(d.at.saturating_duration_since(now)),
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match next {
            Ok(due) => heap.push(due),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        // Take everything already queued before sleeping again.
        heap.extend(rx.try_iter());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sleepers_wake_in_deadline_order() {
        let timer = std::sync::Arc::new(PreciseTimer::start().unwrap());
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        for (name, ms) in [("c", 30u64), ("a", 10), ("b", 20)] {
            let timer = timer.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                timer.sleep(Duration::from_millis(ms)).await;
                let _ = tx.send(name);
            });
        }
        drop(tx);
        let mut order = Vec::new();
        while let Some(name) = rx.recv().await {
            order.push(name);
        }
        assert_eq!(order, ["a", "b", "c"]);
    }
}
