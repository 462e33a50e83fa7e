//! The o200k token counter behind every estimate. Counts only: the gateway never needs the
//! token ids, so it keeps one flat table of the vocabulary (bytes → rank) instead of
//! tiktoken-rs's three copies of the 200k-token vocabulary (encoder, decoder, sorted bytes),
//! which take ~49 MB resident. The table is read out of tiktoken-rs's tokenizer once, which is
//! then dropped.
//!
//! Counting follows the same steps as tiktoken: the o200k pre-tokenizer pattern cuts the text
//! into pieces; a piece in the vocabulary is one token, any other is split by byte-pair merges
//! over this table (`merged_count`).

use smallvec::SmallVec;
use std::hash::Hasher;
use std::sync::atomic::{AtomicUsize, Ordering};
use tiktoken_rs::Rank;

/// Copies of the pattern: the regex engine keeps a scratch cache per copy, and threads sharing
/// one copy's cache would contend for it.
const PATTERN_COPIES: usize = 8;

/// o200k's special tokens (`<|endoftext|>`, `<|endofprompt|>`): never produced by ordinary text.
const SPECIAL: [Rank; 2] = [199_999, 200_018];
/// One past the highest rank o200k assigns.
const RANKS: Rank = 200_019;

pub struct TokenCounter {
    vocabulary: Vocabulary,
    patterns: Box<[fancy_regex::Regex]>,
}

/// The vocabulary as three flat allocations: every token's bytes end to end, one (offset,
/// length, rank) entry per token, and an open-addressing index of entry numbers. A map of
/// `Vec<u8>` keys took ~15 MB for the same 200k tokens, mostly per-key allocations.
struct Vocabulary {
    bytes: Box<[u8]>,
    entries: Box<[Entry]>,
    /// Entry number + 1 per slot, 0 for an empty slot; a power of two, at most half full, so
    /// probe runs stay short.
    slots: Box<[u32]>,
}

#[derive(Clone, Copy)]
struct Entry {
    offset: u32,
    len: u32,
    rank: Rank,
}

impl Vocabulary {
    fn new(bytes: Vec<u8>, entries: Vec<Entry>) -> Vocabulary {
        let slot_count = (entries.len() * 2).next_power_of_two();
        let mut slots = vec![0u32; slot_count].into_boxed_slice();
        for (number, entry) in entries.iter().enumerate() {
            let token = &bytes[entry.offset as usize..(entry.offset + entry.len) as usize];
            let mut slot = hash(token) as usize & (slot_count - 1);
            while slots[slot] != 0 {
                slot = (slot + 1) & (slot_count - 1);
            }
            slots[slot] = number as u32 + 1;
        }
        Vocabulary {
            bytes: bytes.into_boxed_slice(),
            entries: entries.into_boxed_slice(),
            slots,
        }
    }

    fn rank(&self, token: &[u8]) -> Option<Rank> {
        let mask = self.slots.len() - 1;
        let mut slot = hash(token) as usize & mask;
        loop {
            let number = self.slots[slot];
            if number == 0 {
                return None;
            }
            let entry = self.entries[number as usize - 1];
            let start = entry.offset as usize;
            if entry.len as usize == token.len() && &self.bytes[start..start + token.len()] == token
            {
                return Some(entry.rank);
            }
            slot = (slot + 1) & mask;
        }
    }
}

fn hash(bytes: &[u8]) -> u64 {
    let mut hasher = rustc_hash::FxHasher::default();
    hasher.write(bytes);
    hasher.finish()
}

impl TokenCounter {
    /// Builds the o200k counter (~0.3 s).
    pub fn o200k() -> Result<TokenCounter, String> {
        let full = tiktoken_rs::o200k_base().map_err(|e| e.to_string())?;
        let mut bytes: Vec<u8> = Vec::with_capacity(2 << 20);
        let mut entries: Vec<Entry> = Vec::with_capacity(RANKS as usize);
        for rank in (0..RANKS).filter(|r| !SPECIAL.contains(r)) {
            // Unassigned ranks (o200k leaves a gap before its special tokens) do not decode.
            if let Ok(token) = full.decode_bytes(&[rank]) {
                entries.push(Entry {
                    offset: bytes.len() as u32,
                    len: token.len() as u32,
                    rank,
                });
                bytes.extend_from_slice(&token);
            }
        }
        drop(full);
        release_freed_memory();
        let vocabulary = Vocabulary::new(bytes, entries);
        let pattern =
            fancy_regex::Regex::new(tiktoken_rs::O200K_BASE_PAT_STR).map_err(|e| e.to_string())?;
        Ok(TokenCounter {
            vocabulary,
            patterns: (0..PATTERN_COPIES).map(|_| pattern.clone()).collect(),
        })
    }

    pub fn count(&self, text: &str) -> u64 {
        let pattern = &self.patterns[thread_slot() % PATTERN_COPIES];
        let mut tokens = 0u64;
        for piece in pattern.find_iter(text) {
            let Ok(piece) = piece else {
                // The pattern's look-ahead gave up (backtracking limit): estimate the rest.
                return tokens + (text.len() as u64).div_ceil(4);
            };
            let bytes = piece.as_str().as_bytes();
            tokens += if bytes.len() == 1 || self.vocabulary.rank(bytes).is_some() {
                1
            } else {
                self.merged_count(bytes) as u64
            };
        }
        tokens
    }

    /// Tokens in a piece that is not itself in the vocabulary, by byte-pair merging: start
    /// from single bytes and keep joining the adjacent pair whose joined bytes have the lowest
    /// rank (the leftmost on a tie), until no adjacent pair joins into a token.
    fn merged_count(&self, piece: &[u8]) -> usize {
        // `starts[i]` is where part i begins; part i ends where part i + 1 begins.
        // `pair_ranks[i]` is the rank of part i joined with part i + 1, if that is a token.
        let mut starts: SmallVec<[u32; 64]> = (0..=piece.len() as u32).collect();
        let pair_rank = |starts: &[u32], i: usize| -> Rank {
            match starts.get(i + 2) {
                Some(&end) => self
                    .vocabulary
                    .rank(&piece[starts[i] as usize..end as usize])
                    .unwrap_or(Rank::MAX),
                None => Rank::MAX,
            }
        };
        let mut pair_ranks: SmallVec<[Rank; 64]> =
            (0..piece.len()).map(|i| pair_rank(&starts, i)).collect();
        loop {
            let Some((lowest, _)) = pair_ranks
                .iter()
                .enumerate()
                .filter(|(_, rank)| **rank != Rank::MAX)
                .min_by_key(|(i, rank)| (**rank, *i))
            else {
                return starts.len() - 1;
            };
            starts.remove(lowest + 1);
            pair_ranks.remove(lowest + 1);
            pair_ranks[lowest] = pair_rank(&starts, lowest);
            if lowest > 0 {
                pair_ranks[lowest - 1] = pair_rank(&starts, lowest - 1);
            }
        }
    }
}

/// A small number per thread, for picking a pattern copy.
fn thread_slot() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SLOT: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    SLOT.with(|s| *s)
}

/// Hands the freed vocabulary copies back to the system: they were many small allocations,
/// which the allocator would otherwise keep resident.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free heap pages; it takes no pointers.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_match_tiktoken_on_varied_text() {
        let lean = TokenCounter::o200k().expect("builds");
        let full = tiktoken_rs::o200k_base().expect("builds");
        let mut texts: Vec<String> = [
            "",
            "a",
            "Hello, world!",
            "What is the capital of France?",
            "  leading and trailing spaces  \n\n\n",
            "fn main() {\n    println!(\"{}\", 42_000_000);\n}\n",
            "naïve café — déjà vu; 東京都は日本の首都です。 Привет, мир! مرحبا بالعالم",
            "emoji 🙂🚀👩‍💻 and numbers 1234567890 3.14159 1e-9",
            "https://example.com/path?query=1&other=two#frag",
            "AKIAABCDEFGHIJKLMNOP ghp_0123456789abcdefghijklmnopqrstuvwxyz",
            "I'LL we've they'd it's DON'T",
            "\t\ttabs\r\nand\rcarriage returns",
            "<|endoftext|> is text here, not a special token",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        // Pseudo-random byte soup over mixed scripts, to reach unusual merges.
        let alphabet: Vec<char> = "ab zé東🙂1.\n'_-ДxyQ".chars().collect();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        // Long runs of letters and digits are single pieces that need many merges.
        texts.push("aGVsbG8gd29ybGQ".repeat(40));
        texts.push("x9Qz".repeat(150));
        // Repeated bytes make equal-rank pairs side by side: the leftmost must join first.
        for unit in ["z", "ab", "ǎ", "!", "ло", "🙂"] {
            for n in [3, 7, 12, 31] {
                texts.push(unit.repeat(n));
            }
        }
        for len in [17, 64, 300, 2000] {
            let s: String = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    alphabet[(seed % alphabet.len() as u64) as usize]
                })
                .collect();
            texts.push(s);
        }
        for t in &texts {
            assert_eq!(
                lean.count(t),
                full.encode_ordinary(t).len() as u64,
                "count differs for {t:?}"
            );
        }
    }
}
