//! Reserving an estimate against every tier of a request at once, and settling it with the
//! actual usage afterwards (SPEC §6 "Accounting").
//!
//! `reserve` is all-or-nothing: tiers are reserved in order, and the first refusal takes back
//! what the earlier tiers got. While that rollback is in flight a concurrent request may see
//! those tiers fuller than they end up — it can be refused spuriously, never admitted beyond a
//! limit. Nothing here locks or allocates for up to `INLINE_TIERS` tiers.

use super::counter::{Counter, LimitKind, Refusal};
use super::window::Window;
use chrono::{DateTime, Utc};
use smallvec::SmallVec;
use std::borrow::Borrow;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// Tiers a reservation holds without allocating: enough for every tier SPEC §6 defines
/// (provider-config, virtual key, team, customer, global provider) with their kinds.
pub const INLINE_TIERS: usize = 12;

/// One tier of a request: reserve `amount` on `counter` if it stays within `limit`.
///
/// `C` is how the caller holds counters: `&Counter` for a reservation that lives inside one
/// function, `Arc<Counter>` for one that outlives it (a stream settled when it ends).
#[derive(Debug, Clone)]
pub struct Tier<C> {
    pub counter: C,
    pub amount: u64,
    pub limit: u64,
}

impl<C> Tier<C> {
    pub fn new(counter: C, amount: u64, limit: u64) -> Tier<C> {
        Tier {
            counter,
            amount,
            limit,
        }
    }
}

/// Why a request was refused: the first tier (in the order given) that had no room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    /// Index of the refusing tier in the slice passed to `reserve`.
    pub tier: usize,
    pub kind: LimitKind,
    pub window: Option<Window>,
    pub used: u64,
    pub reserved: u64,
    /// The amount this request asked for on that tier.
    pub requested: u64,
    pub limit: u64,
    /// When the refusing window resets; `None` for `concurrent`, which frees up as requests end.
    pub resets_at: Option<DateTime<Utc>>,
}

impl Denied {
    /// Whole seconds from `now` until the window resets, for a `Retry-After` header.
    pub fn retry_after_secs(&self, now: DateTime<Utc>) -> Option<u64> {
        self.resets_at
            .map(|at| u64::try_from((at - now).num_seconds()).unwrap_or(0))
    }
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} limit of tier {} reached: {} used + {} in flight + {} requested > {}",
            self.kind, self.tier, self.used, self.reserved, self.requested, self.limit
        )?;
        match (self.window, self.resets_at) {
            (Some(w), Some(at)) => write!(f, " (window {w}, resets at {})", at.to_rfc3339()),
            _ => Ok(()),
        }
    }
}

impl std::error::Error for Denied {}

struct Held<C> {
    counter: C,
    window: u32,
    amount: u64,
}

/// Amounts reserved on each tier of one request, to be settled with the actual usage.
///
/// Dropping a reservation without settling it charges the estimates: usage must not vanish
/// because a code path forgot to settle (a stream cut short is "charged for what was sent,
/// never zero"). Call `release` when nothing was sent at all.
#[must_use = "settle the reservation, or it is charged at the estimate when dropped"]
pub struct Reservation<C: Borrow<Counter>> {
    held: SmallVec<[Held<C>; INLINE_TIERS]>,
}

impl<C: Borrow<Counter>> Reservation<C> {
    pub fn len(&self) -> usize {
        self.held.len()
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// The amount reserved on tier `i`.
    pub fn amount(&self, i: usize) -> Option<u64> {
        self.held.get(i).map(|h| h.amount)
    }

    /// Replaces each tier's estimate by the actual usage, `actual[i]` for tier `i`. A tier
    /// without an entry in `actual` is charged its estimate; `concurrent` tiers ignore theirs.
    pub fn settle(self, actual: &[u64]) {
        self.settle_at(actual, unix_now());
    }

    /// `settle` at a given instant (unix seconds): the window the actual usage counts in.
    pub fn settle_at(mut self, actual: &[u64], now: i64) {
        for (i, held) in self.held.drain(..).enumerate() {
            let used = actual.get(i).copied().unwrap_or(held.amount);
            held.counter
                .borrow()
                .settle(held.window, held.amount, used, now);
        }
    }

    /// Gives every reservation back without charging anything: the request never reached a
    /// provider. `requests` tiers are given back too; count the attempt with `settle` if it
    /// should use up the rate limit.
    pub fn release(mut self) {
        for held in self.held.drain(..) {
            held.counter.borrow().unreserve(held.window, held.amount);
        }
    }
}

impl<C: Borrow<Counter>> Drop for Reservation<C> {
    fn drop(&mut self) {
        if !self.held.is_empty() {
            let now = unix_now();
            for held in self.held.drain(..) {
                held.counter
                    .borrow()
                    .settle(held.window, held.amount, held.amount, now);
            }
        }
    }
}

impl<C: Borrow<Counter>> fmt::Debug for Reservation<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(
                self.held
                    .iter()
                    .map(|h| (h.counter.borrow().kind(), h.amount)),
            )
            .finish()
    }
}

/// Reserves every tier's amount, or none of them. See `reserve_at`.
pub fn reserve<C: Borrow<Counter> + Clone>(tiers: &[Tier<C>]) -> Result<Reservation<C>, Denied> {
    reserve_at(tiers, unix_now())
}

/// Admits the request only if on every tier `used + reserved + amount <= limit` in the window
/// holding `now` (unix seconds), and then adds `amount` to each tier's `reserved`.
pub fn reserve_at<C: Borrow<Counter> + Clone>(
    tiers: &[Tier<C>],
    now: i64,
) -> Result<Reservation<C>, Denied> {
    let mut reservation = Reservation {
        held: SmallVec::new(),
    };
    for (i, tier) in tiers.iter().enumerate() {
        let counter = tier.counter.borrow();
        match counter.try_reserve(tier.amount, tier.limit, now) {
            Ok(window) => reservation.held.push(Held {
                counter: tier.counter.clone(),
                window,
                amount: tier.amount,
            }),
            Err(refusal) => {
                reservation.release();
                return Err(denied(i, tier, counter, refusal));
            }
        }
    }
    Ok(reservation)
}

/// Settles `reservation` with the actual usage per tier; see `Reservation::settle`.
pub fn settle<C: Borrow<Counter>>(reservation: Reservation<C>, actual: &[u64]) {
    reservation.settle(actual);
}

fn denied<C>(tier_index: usize, tier: &Tier<C>, counter: &Counter, refusal: Refusal) -> Denied {
    Denied {
        tier: tier_index,
        kind: counter.kind(),
        window: counter.window(),
        used: refusal.used,
        reserved: refusal.reserved,
        requested: tier.amount,
        limit: tier.limit,
        resets_at: counter
            .resets_at_unix(refusal.window_id)
            .and_then(|secs| DateTime::from_timestamp(secs, 0)),
    }
}

/// Unix seconds now; a clock before 1970 reads as the epoch rather than failing.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
