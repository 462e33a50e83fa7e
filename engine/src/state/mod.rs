//! Usage counters for rate limits, token limits and budgets (SPEC §5–§6): windows and their
//! calendar resets, lock-free reserve/settle over every tier of a request, and the `memory`
//! backend with its snapshot file. Counters live outside the `Plan`, so a reload keeps usage.

mod counter;
mod limits;
mod memory;
pub mod redis;
mod snapshot;
mod window;

pub use self::redis::{
    redis_key, RedisReservation, RedisStore, RedisTier, ReserveError, StateError,
};
pub use counter::{Counter, LimitKind, Usage, MAX_AMOUNT};
pub use limits::{reserve, reserve_at, settle, unix_now, Denied, Reservation, Tier, INLINE_TIERS};
pub use memory::{CounterKey, MemoryStore};
pub use snapshot::{CounterSnapshot, Snapshot, SnapshotError, SNAPSHOT_VERSION};
pub use window::{UnknownWindow, Window};

#[cfg(test)]
mod tests;
