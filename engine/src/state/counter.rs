//! One limit counter (scope × kind × window) as a single 128-bit atomic word.
//!
//! The word packs `window (32 bits) | used (48 bits) | reserved (48 bits)`. Keeping all three in
//! one atomic is what makes the counter exact without a lock:
//!
//! - admission reads `used + reserved` from one consistent value and adds to `reserved` with a
//!   compare-and-swap of that same value, so N racing reservations against limit L admit exactly
//!   L units — a reservation can never be checked against a `used` that a concurrent settle has
//!   already moved on from;
//! - rollover is part of the same compare-and-swap: a thread that sees an older window in the
//!   word swaps in `(new window, 0, 0)` plus its own change. Any concurrent increment of the new
//!   window was itself a CAS on this word, so the reset either happened before it (and it
//!   applies on top) or fails and retries; nothing in the new window can be wiped by a reset.
//!   With separate atomics for window/used/reserved there is always a gap between "swap the
//!   window id" and "zero the values" in which a new-window increment is lost.
//!
//! Windows only move forward: a caller whose clock is slightly behind the word (another thread
//! already rolled it over) treats the word's newer window as current instead of resetting back.
//!
//! 48 bits hold 2.8 × 10^14: $281 million in micro-dollars, or 281 trillion tokens per window.
//! Values saturate there instead of wrapping; limits at or above it are effectively unlimited.
//! The window id keeps 32 bits (minute windows overflow that in the year 10136).

use super::window::Window;
use portable_atomic::AtomicU128;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::atomic::Ordering::{AcqRel, Acquire};

/// The largest `used`/`reserved` value a counter holds; larger amounts saturate.
pub const MAX_AMOUNT: u64 = (1 << 48) - 1;

/// What a counter counts. Budgets are micro-dollars (1 USD = 1,000,000).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitKind {
    Requests,
    Tokens,
    Budget,
    /// Requests in flight: reserve takes one, settle gives it back; nothing is ever `used`.
    Concurrent,
}

impl LimitKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LimitKind::Requests => "requests",
            LimitKind::Tokens => "tokens",
            LimitKind::Budget => "budget",
            LimitKind::Concurrent => "concurrent",
        }
    }
}

impl fmt::Display for LimitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Usage of a counter in its current window, as seen at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub window_id: u64,
    pub used: u64,
    /// Amounts reserved by requests still in flight.
    pub reserved: u64,
}

/// Why a single counter refused a reservation: the values it checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub window_id: u64,
    pub used: u64,
    pub reserved: u64,
}

pub struct Counter {
    kind: LimitKind,
    /// `None` for `Concurrent`, whose count never resets.
    window: Option<Window>,
    word: AtomicU128,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Word {
    window: u32,
    used: u64,
    reserved: u64,
}

impl Word {
    fn unpack(raw: u128) -> Word {
        Word {
            window: (raw >> 96) as u32,
            used: ((raw >> 48) as u64) & MAX_AMOUNT,
            reserved: (raw as u64) & MAX_AMOUNT,
        }
    }

    fn pack(self) -> u128 {
        (u128::from(self.window) << 96)
            | (u128::from(self.used.min(MAX_AMOUNT)) << 48)
            | u128::from(self.reserved.min(MAX_AMOUNT))
    }

    /// The word as of window `current`: itself if it is that window or newer, else empty.
    fn as_of(self, current: u32) -> Word {
        if self.window >= current {
            self
        } else {
            Word {
                window: current,
                used: 0,
                reserved: 0,
            }
        }
    }
}

/// Window ids are stored in 32 bits; saturating keeps them ordered.
fn tag(window_id: u64) -> u32 {
    u32::try_from(window_id).unwrap_or(u32::MAX)
}

impl Counter {
    /// A counter of `kind` over `window`. A `Concurrent` counter ignores the window.
    pub fn new(kind: LimitKind, window: Window) -> Counter {
        let window = (kind != LimitKind::Concurrent).then_some(window);
        Counter {
            kind,
            window,
            word: AtomicU128::new(0),
        }
    }

    /// A counter of requests in flight.
    pub fn concurrent() -> Counter {
        Counter {
            kind: LimitKind::Concurrent,
            window: None,
            word: AtomicU128::new(0),
        }
    }

    pub fn kind(&self) -> LimitKind {
        self.kind
    }

    pub fn window(&self) -> Option<Window> {
        self.window
    }

    /// The current window id at `now` (unix seconds); always 0 for `Concurrent`.
    pub fn window_id_at(&self, now: i64) -> u64 {
        self.window.map_or(0, |w| w.window_id(now))
    }

    /// Usage in the window holding `now`; a window that has passed reads as empty.
    pub fn usage_at(&self, now: i64) -> Usage {
        let word = Word::unpack(self.word.load(Acquire)).as_of(tag(self.window_id_at(now)));
        Usage {
            window_id: u64::from(word.window),
            used: word.used,
            reserved: word.reserved,
        }
    }

    /// Unix seconds at which window `window_id` resets; `None` for `Concurrent`.
    pub fn resets_at_unix(&self, window_id: u64) -> Option<i64> {
        self.window
            .map(|w| w.start_of_id(window_id.saturating_add(1)))
    }

    /// Adds `amount` to `reserved` if `used + reserved + amount <= limit` in the current
    /// window. Returns the window the amount was reserved in.
    pub(crate) fn try_reserve(&self, amount: u64, limit: u64, now: i64) -> Result<u32, Refusal> {
        let current = tag(self.window_id_at(now));
        let mut raw = self.word.load(Acquire);
        loop {
            let word = Word::unpack(raw).as_of(current);
            let total = word
                .used
                .saturating_add(word.reserved)
                .saturating_add(amount);
            if total > limit {
                return Err(Refusal {
                    window_id: u64::from(word.window),
                    used: word.used,
                    reserved: word.reserved,
                });
            }
            let next = Word {
                reserved: word.reserved.saturating_add(amount),
                ..word
            };
            match self
                .word
                .compare_exchange_weak(raw, next.pack(), AcqRel, Acquire)
            {
                Ok(_) => return Ok(word.window),
                Err(actual) => raw = actual,
            }
        }
    }

    /// Takes back a reservation made in `window` that will never be used (a denied sibling
    /// tier). If the word has rolled over since, the reservation went with the old window.
    pub(crate) fn unreserve(&self, window: u32, amount: u64) {
        self.update(|word| {
            (word.window == window).then(|| Word {
                reserved: word.reserved.saturating_sub(amount),
                ..word
            })
        });
    }

    /// Replaces a reservation of `estimate` made in `window` by `actual` usage in the current
    /// window. A reservation from a window that has since passed is simply dropped (its window
    /// is gone); the actual usage still counts, in the window current at `now`.
    pub(crate) fn settle(&self, window: u32, estimate: u64, actual: u64, now: i64) {
        let current = tag(self.window_id_at(now));
        let actual = if self.kind == LimitKind::Concurrent {
            0
        } else {
            actual
        };
        self.update(|stored| {
            let word = stored.as_of(current);
            let reserved = if word.window == window {
                word.reserved.saturating_sub(estimate)
            } else {
                word.reserved
            };
            Some(Word {
                reserved,
                used: word.used.saturating_add(actual),
                ..word
            })
        });
    }

    /// The persistent part of the counter: (window id, used).
    pub(crate) fn persisted(&self) -> (u64, u64) {
        let word = Word::unpack(self.word.load(Acquire));
        (u64::from(word.window), word.used)
    }

    /// Loads persisted usage. A snapshot of an older window than the counter's is ignored;
    /// for the same window usage only grows (restoring twice is harmless).
    pub(crate) fn restore(&self, window_id: u64, used: u64) {
        let window = tag(window_id);
        self.update(|word| {
            if window > word.window {
                Some(Word {
                    window,
                    used,
                    reserved: 0,
                })
            } else if window == word.window && used > word.used {
                Some(Word { used, ..word })
            } else {
                None
            }
        });
    }

    /// CAS loop applying `change` until it sticks; `None` means "leave the word as it is".
    fn update(&self, change: impl Fn(Word) -> Option<Word>) {
        let mut raw = self.word.load(Acquire);
        while let Some(next) = change(Word::unpack(raw)) {
            match self
                .word
                .compare_exchange_weak(raw, next.pack(), AcqRel, Acquire)
            {
                Ok(_) => return,
                Err(actual) => raw = actual,
            }
        }
    }
}

impl fmt::Debug for Counter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let word = Word::unpack(self.word.load(Acquire));
        f.debug_struct("Counter")
            .field("kind", &self.kind)
            .field("window", &self.window)
            .field("window_id", &word.window)
            .field("used", &word.used)
            .field("reserved", &word.reserved)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JAN_31: i64 = 1_801_353_600; // 2027-01-31T00:00:00Z
    const FEB_1: i64 = 1_801_440_000; // 2027-02-01T00:00:00Z

    #[test]
    fn the_word_round_trips_and_saturates() {
        let w = Word {
            window: 24_301,
            used: 123_456_789,
            reserved: MAX_AMOUNT,
        };
        assert_eq!(Word::unpack(w.pack()), w);
        let big = Word {
            window: u32::MAX,
            used: u64::MAX,
            reserved: u64::MAX,
        };
        let back = Word::unpack(big.pack());
        assert_eq!(
            (back.window, back.used, back.reserved),
            (u32::MAX, MAX_AMOUNT, MAX_AMOUNT)
        );
    }

    #[test]
    fn reserve_admits_up_to_the_limit_and_reports_the_refusal() {
        let c = Counter::new(LimitKind::Tokens, Window::Hour);
        let now = 1_800_000_000;
        let w = c.try_reserve(600, 1_000, now).expect("fits");
        assert_eq!(c.try_reserve(400, 1_000, now), Ok(w));
        let refusal = c.try_reserve(1, 1_000, now).expect_err("full");
        assert_eq!((refusal.used, refusal.reserved), (0, 1_000));
        c.settle(w, 600, 100, now);
        assert_eq!(c.usage_at(now).used, 100);
        assert_eq!(c.usage_at(now).reserved, 400);
        assert!(c.try_reserve(500, 1_000, now).is_ok());
    }

    #[test]
    fn a_new_window_starts_empty() {
        let c = Counter::new(LimitKind::Budget, Window::Month);
        let w = c.try_reserve(10, 10, JAN_31).expect("fits");
        c.settle(w, 10, 10, JAN_31);
        assert!(c.try_reserve(1, 10, JAN_31).is_err());
        assert_eq!(c.usage_at(FEB_1).used, 0);
        assert!(c.try_reserve(10, 10, FEB_1).is_ok());
        assert_eq!(c.usage_at(FEB_1).reserved, 10);
    }

    #[test]
    fn settling_across_a_rollover_drops_the_old_reservation_and_counts_in_the_new_window() {
        let c = Counter::new(LimitKind::Tokens, Window::Month);
        let old = c.try_reserve(500, 1_000, JAN_31).expect("fits");
        // Another request rolls the counter into February and reserves there.
        let new = c.try_reserve(300, 1_000, FEB_1).expect("fits");
        assert_ne!(old, new);
        c.settle(old, 500, 200, FEB_1);
        let usage = c.usage_at(FEB_1);
        assert_eq!((usage.used, usage.reserved), (200, 300));
        // Settling late, with no one having touched the new window yet, also resets first.
        let c = Counter::new(LimitKind::Tokens, Window::Month);
        let old = c.try_reserve(900, 1_000, JAN_31).expect("fits");
        c.settle(old, 900, 50, FEB_1);
        let usage = c.usage_at(FEB_1);
        assert_eq!((usage.used, usage.reserved), (50, 0));
    }

    #[test]
    fn a_clock_behind_the_counter_never_rolls_it_back() {
        let c = Counter::new(LimitKind::Requests, Window::Month);
        c.try_reserve(1, 5, FEB_1).expect("fits");
        // A thread whose `now` is still January sees February's usage, not an empty January.
        let w = c.try_reserve(1, 5, JAN_31).expect("fits");
        assert_eq!(u64::from(w), Window::Month.window_id(FEB_1));
        assert_eq!(c.usage_at(FEB_1).reserved, 2);
    }

    #[test]
    fn unreserve_after_a_rollover_leaves_the_new_window_alone() {
        let c = Counter::new(LimitKind::Tokens, Window::Month);
        let old = c.try_reserve(100, 1_000, JAN_31).expect("fits");
        c.try_reserve(70, 1_000, FEB_1).expect("fits");
        c.unreserve(old, 100);
        assert_eq!(c.usage_at(FEB_1).reserved, 70);
    }

    #[test]
    fn settle_and_unreserve_never_underflow() {
        let c = Counter::new(LimitKind::Tokens, Window::Hour);
        let now = 1_800_000_000;
        let w = c.try_reserve(10, 100, now).expect("fits");
        c.settle(w, 1_000, 5, now);
        c.unreserve(w, 1_000);
        assert_eq!(
            c.usage_at(now),
            Usage {
                window_id: u64::from(w),
                used: 5,
                reserved: 0
            }
        );
    }

    #[test]
    fn concurrent_counters_give_back_what_they_take_and_never_reset() {
        let c = Counter::concurrent();
        let a = c.try_reserve(1, 2, JAN_31).expect("first");
        c.try_reserve(1, 2, JAN_31).expect("second");
        assert!(
            c.try_reserve(1, 2, FEB_1).is_err(),
            "a new month frees no slot"
        );
        c.settle(a, 1, 12_345, FEB_1);
        let usage = c.usage_at(FEB_1);
        assert_eq!((usage.used, usage.reserved), (0, 1));
        assert_eq!(c.resets_at_unix(usage.window_id), None);
        assert!(Counter::new(LimitKind::Concurrent, Window::Day)
            .window()
            .is_none());
    }

    #[test]
    fn restore_only_moves_forward() {
        let c = Counter::new(LimitKind::Budget, Window::Month);
        let jan = Window::Month.window_id(JAN_31);
        c.restore(jan, 700);
        assert_eq!(c.usage_at(JAN_31).used, 700);
        c.restore(jan, 500);
        assert_eq!(c.usage_at(JAN_31).used, 700);
        c.restore(jan - 1, 9_999);
        assert_eq!(c.persisted(), (jan, 700));
    }
}
