//! The o200k token counter behind every estimate. Counts only: the gateway never needs the
//! token ids, so it keeps one table (bytes → rank) instead of tiktoken-rs's three copies of
//! the 200k-token vocabulary (encoder, decoder, sorted bytes), which take ~49 MB resident.
//! The table is read out of tiktoken-rs's tokenizer once, which is then dropped.
//!
//! Counting follows the same steps as tiktoken: the o200k pre-tokenizer pattern cuts the text
//! into pieces; a piece in the vocabulary is one token, any other is split by byte-pair merges
//! (tiktoken-rs's own `byte_pair_split`, over this table).

use rustc_hash::FxHashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use tiktoken_rs::{byte_pair_split, Rank};

/// Copies of the pattern: the regex engine keeps a scratch cache per copy, and threads sharing
/// one copy's cache would contend for it.
const PATTERN_COPIES: usize = 8;

/// o200k's special tokens (`<|endoftext|>`, `<|endofprompt|>`): never produced by ordinary text.
const SPECIAL: [Rank; 2] = [199_999, 200_018];
/// One past the highest rank o200k assigns.
const RANKS: Rank = 200_019;

pub struct TokenCounter {
    ranks: FxHashMap<Vec<u8>, Rank>,
    patterns: Box<[fancy_regex::Regex]>,
}

impl TokenCounter {
    /// Builds the o200k counter (~0.3 s).
    pub fn o200k() -> Result<TokenCounter, String> {
        let full = tiktoken_rs::o200k_base().map_err(|e| e.to_string())?;
        // The vocabulary goes into two flat buffers first, and the table is built only after
        // the full tokenizer is freed: built in between, its many small allocations would
        // pin the freed pages around them.
        let mut flat: Vec<u8> = Vec::with_capacity(2 << 20);
        let mut spans: Vec<(u32, u32, Rank)> = Vec::with_capacity(RANKS as usize);
        for rank in (0..RANKS).filter(|r| !SPECIAL.contains(r)) {
            // Unassigned ranks (o200k leaves a gap before its special tokens) do not decode.
            if let Ok(bytes) = full.decode_bytes(&[rank]) {
                let start = flat.len() as u32;
                flat.extend_from_slice(&bytes);
                spans.push((start, flat.len() as u32, rank));
            }
        }
        drop(full);
        release_freed_memory();
        let mut ranks = FxHashMap::default();
        ranks.reserve(spans.len());
        for (start, end, rank) in spans {
            ranks.insert(flat[start as usize..end as usize].to_vec(), rank);
        }
        let pattern =
            fancy_regex::Regex::new(tiktoken_rs::O200K_BASE_PAT_STR).map_err(|e| e.to_string())?;
        Ok(TokenCounter {
            ranks,
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
            tokens += if bytes.len() == 1 || self.ranks.contains_key(bytes) {
                1
            } else {
                byte_pair_split(bytes, &self.ranks).len() as u64
            };
        }
        tokens
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
