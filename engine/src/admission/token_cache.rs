//! Token counts of message texts seen recently. Chat clients resend the whole conversation,
//! and agents the same long system prompt, on every turn: counting only the texts not seen
//! before turns re-tokenising kilobytes per request into a few hash lookups.
//!
//! A direct-mapped table of atomic words: no lock, no allocation. Each word holds the upper
//! 32 bits of the text's hash (the tag) and its count; a slot is simply overwritten by the
//! next text that maps to it. The hash is seeded per process, so texts cannot be crafted
//! offline to collide; an accidental collision (odds 2^-32 per lookup of an evicted slot)
//! only misestimates one reservation, which settlement corrects with the provider's usage.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// Texts shorter than this are tokenised directly: hashing would save little and their
/// entries would evict the long ones that matter.
pub const MIN_CACHED_BYTES: usize = 32;

const SLOTS: usize = 8192;

struct Table {
    seed: u64,
    slots: Box<[AtomicU64]>,
}

static TABLE: OnceLock<Table> = OnceLock::new();

fn table() -> &'static Table {
    TABLE.get_or_init(|| Table {
        seed: fastrand::u64(..),
        slots: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
    })
}

/// The count of `text`, from the table or from `count` (then remembered).
pub fn count_with(text: &str, count: impl FnOnce(&str) -> u64) -> u64 {
    if text.len() < MIN_CACHED_BYTES {
        return count(text);
    }
    let table = table();
    let hash = xxhash_rust::xxh3::xxh3_64_with_seed(text.as_bytes(), table.seed);
    let slot = &table.slots[(hash as usize) & (SLOTS - 1)];
    // Tag 0 marks an empty slot, so a text whose tag is 0 uses 1.
    let tag = ((hash >> 32) as u32).max(1);
    let word = slot.load(Ordering::Relaxed);
    if (word >> 32) as u32 == tag {
        return word & u64::from(u32::MAX);
    }
    let n = count(text);
    // Counts beyond u32 cannot be cached (no request body is that large); return them as is.
    if let Ok(small) = u32::try_from(n) {
        slot.store((u64::from(tag) << 32) | u64::from(small), Ordering::Relaxed);
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn a_long_text_is_counted_once_and_a_short_one_every_time() {
        let calls = Cell::new(0);
        let counter = |t: &str| {
            calls.set(calls.get() + 1);
            t.len() as u64
        };
        let long = "a system prompt that every request of this agent repeats, word for word.";
        assert!(long.len() >= MIN_CACHED_BYTES);
        assert_eq!(count_with(long, counter), long.len() as u64);
        assert_eq!(count_with(long, counter), long.len() as u64);
        assert_eq!(calls.get(), 1);
        // A different long text is not answered from the first one's entry.
        let other = format!("{long} And one more sentence.");
        assert_eq!(count_with(&other, counter), other.len() as u64);
        assert_eq!(calls.get(), 2);
        for _ in 0..2 {
            assert_eq!(count_with("hi", counter), 2);
        }
        assert_eq!(calls.get(), 4);
    }
}
