//! The in-process vector index: per partition (model + parameters + scope + namespace, see
//! `CacheKey::partition`), each entry kept as int8 codes and sign bits (see `codes`). A
//! partition only ever holds one tenant's entries for one model and parameter set, so it is
//! usually small and is scored whole. A large one (more than `FULL_SCAN` entries) is searched
//! in two passes: the Hamming distance of the sign bits picks the `CANDIDATES` closest entries,
//! which are then scored; a cache hit needs a near-duplicate (cosine ≥ 0.8 or so, a few dozen
//! differing bits of 384), and such an entry is always among the closest by sign bits unless
//! dozens of other entries are nearer still. Entries expire with the answer they point to, and
//! the index is bounded: past `max_entries`, an insert first drops expired entries of its
//! partition, then the one expiring soonest.

use super::codes::{dot_codes, hamming, push_codes, push_signs, words_for};
use crate::cache::Hash128;
use rustc_hash::FxHashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::RwLock;

/// Partitions up to this size are scored whole.
const FULL_SCAN: usize = 4096;
/// Entries scored after the sign-bit pass in a larger partition.
const CANDIDATES: usize = 64;

#[path = "index_file.rs"]
mod file;

#[derive(Debug, Default)]
struct Partition {
    /// `dims` codes per entry, entry `i` at `i * dims`.
    codes: Vec<i8>,
    /// `words` sign words per entry.
    signs: Vec<u64>,
    /// Per entry: its code scale, the exact key of the stored answer, and when it expires
    /// (unix ms).
    entries: Vec<(f32, Hash128, u64)>,
}

impl Partition {
    /// Drops the expired entries, or when none has expired the one expiring soonest; returns
    /// how many went.
    fn make_room(&mut self, now_ms: u64, dims: usize, words: usize) -> usize {
        let before = self.entries.len();
        let mut i = 0;
        while i < self.entries.len() {
            if self.entries[i].2 <= now_ms {
                self.remove(i, dims, words);
            } else {
                i += 1;
            }
        }
        if self.entries.len() == before && before > 0 {
            let soonest = (0..before).min_by_key(|&i| self.entries[i].2).unwrap_or(0);
            self.remove(soonest, dims, words);
        }
        before - self.entries.len()
    }

    fn remove(&mut self, i: usize, dims: usize, words: usize) {
        let last = self.entries.len() - 1;
        if i != last {
            self.codes
                .copy_within(last * dims..(last + 1) * dims, i * dims);
            self.signs
                .copy_within(last * words..(last + 1) * words, i * words);
        }
        self.codes.truncate(last * dims);
        self.signs.truncate(last * words);
        self.entries.swap_remove(i);
    }
}

/// The nearest live entry of a partition.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Neighbour {
    pub exact: Hash128,
    pub similarity: f32,
}

#[derive(Debug)]
pub struct EmbeddedIndex {
    dims: usize,
    words: usize,
    max_entries: usize,
    len: AtomicUsize,
    partitions: RwLock<FxHashMap<u128, Partition>>,
}

impl EmbeddedIndex {
    pub fn new(dims: usize, max_entries: usize) -> EmbeddedIndex {
        EmbeddedIndex {
            dims,
            words: words_for(dims),
            max_entries: max_entries.max(1),
            len: AtomicUsize::new(0),
            partitions: RwLock::default(),
        }
    }

    /// Entries held, expired ones included until an insert drops them.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most similar live entry of `partition` to the unit vector `query`, if any.
    pub fn nearest(&self, partition: Hash128, query: &[f32], now_ms: u64) -> Option<Neighbour> {
        if query.len() != self.dims {
            return None;
        }
        let mut q_codes = Vec::with_capacity(self.dims);
        let q_scale = push_codes(query, &mut q_codes);
        let partitions = self.partitions.read().unwrap_or_else(|e| e.into_inner());
        let p = partitions.get(&partition.as_u128())?;
        let score = |i: usize| {
            let (scale, exact, _) = p.entries[i];
            let code = &p.codes[i * self.dims..(i + 1) * self.dims];
            Neighbour {
                exact,
                similarity: dot_codes(code, &q_codes) as f32 / (scale * q_scale),
            }
        };
        let live = |i: usize| p.entries[i].2 > now_ms;
        let best = |candidates: &mut dyn Iterator<Item = usize>| {
            candidates
                .filter(|&i| live(i))
                .map(score)
                .max_by(|a, b| a.similarity.total_cmp(&b.similarity))
        };
        if p.entries.len() <= FULL_SCAN {
            return best(&mut (0..p.entries.len()));
        }
        let mut q_signs = Vec::with_capacity(self.words);
        push_signs(query, &mut q_signs);
        best(&mut closest_by_signs(p, &q_signs, self.words, &live).into_iter())
    }

    /// Adds (or refreshes) the entry for `exact` in `partition`.
    pub fn insert(
        &self,
        partition: Hash128,
        vector: &[f32],
        exact: Hash128,
        expires_ms: u64,
        now_ms: u64,
    ) {
        if vector.len() != self.dims {
            return;
        }
        let mut codes = Vec::with_capacity(self.dims);
        let scale = push_codes(vector, &mut codes);
        let mut signs = Vec::with_capacity(self.words);
        push_signs(vector, &mut signs);
        let encoded = Encoded {
            scale,
            codes: &codes,
            signs: &signs,
        };
        self.insert_encoded(partition, encoded, exact, expires_ms, now_ms);
    }

    /// `insert` of a vector already in index form (restored from a file).
    fn insert_encoded(
        &self,
        partition: Hash128,
        vector: Encoded<'_>,
        exact: Hash128,
        expires_ms: u64,
        now_ms: u64,
    ) {
        let (dims, words) = (self.dims, self.words);
        let id = partition.as_u128();
        // `len` only changes under this lock, so it is exact here.
        let mut partitions = self.partitions.write().unwrap_or_else(|e| e.into_inner());
        let mut removed = 0;
        if let Some(p) = partitions.get_mut(&id) {
            if let Some(i) = p.entries.iter().position(|(_, k, _)| *k == exact) {
                p.remove(i, dims, words);
                removed += 1;
            }
        }
        if self.len() - removed >= self.max_entries {
            // Room comes from the partition written to when it has entries to give; a new
            // tenant's empty partition takes it from the largest one instead, or the bound
            // would not hold.
            let victim = match partitions.get(&id) {
                Some(p) if !p.entries.is_empty() => Some(id),
                _ => partitions
                    .iter()
                    .max_by_key(|(_, p)| p.entries.len())
                    .map(|(k, _)| *k),
            };
            if let Some(victim) = victim {
                if let Some(p) = partitions.get_mut(&victim) {
                    removed += p.make_room(now_ms, dims, words);
                    if p.entries.is_empty() && victim != id {
                        partitions.remove(&victim);
                    }
                }
            }
        }
        let p = partitions.entry(id).or_default();
        p.codes.extend_from_slice(vector.codes);
        p.signs.extend_from_slice(vector.signs);
        p.entries.push((vector.scale, exact, expires_ms));
        self.len.fetch_add(1, Ordering::Relaxed);
        self.len.fetch_sub(removed, Ordering::Relaxed);
    }
}

/// One vector as the index keeps it: `dims` int8 codes with their scale, and sign words.
#[derive(Debug, Clone, Copy)]
struct Encoded<'a> {
    scale: f32,
    codes: &'a [i8],
    signs: &'a [u64],
}

/// The `CANDIDATES` live entries with the fewest sign bits differing from the query's.
fn closest_by_signs(
    p: &Partition,
    q_signs: &[u64],
    words: usize,
    live: &dyn Fn(usize) -> bool,
) -> Vec<usize> {
    // (distance, entry), kept unsorted; `worst` is the slot to replace next.
    let mut top: Vec<(u32, usize)> = Vec::with_capacity(CANDIDATES);
    let mut worst = (0u32, 0usize);
    for (i, signs) in p.signs.chunks_exact(words).enumerate() {
        let d = hamming(signs, q_signs);
        if top.len() == CANDIDATES && d >= worst.0 {
            continue;
        }
        if !live(i) {
            continue;
        }
        if top.len() < CANDIDATES {
            top.push((d, i));
        } else {
            top[worst.1] = (d, i);
        }
        if top.len() == CANDIDATES {
            let (slot, far) = top
                .iter()
                .enumerate()
                .max_by_key(|(_, (d, _))| *d)
                .map(|(slot, (d, _))| (slot, *d))
                .unwrap_or((0, 0));
            worst = (far, slot);
        }
    }
    top.into_iter().map(|(_, i)| i).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn unit(v: &[f32]) -> Vec<f32> {
        let mut v = v.to_vec();
        crate::cache::semantic::normalise(&mut v);
        v
    }

    pub(super) fn h(n: u8) -> Hash128 {
        Hash128([n; 16])
    }

    #[test]
    fn nearest_is_the_most_similar_live_entry_of_the_same_partition() {
        let index = EmbeddedIndex::new(3, 100);
        index.insert(h(1), &unit(&[1.0, 0.0, 0.0]), h(10), 1_000, 0);
        index.insert(h(1), &unit(&[0.9, 0.1, 0.0]), h(11), 1_000, 0);
        index.insert(h(2), &unit(&[1.0, 0.0, 0.0]), h(20), 1_000, 0);
        let q = unit(&[0.8, 0.2, 0.0]);
        let n = index.nearest(h(1), &q, 500).unwrap();
        assert_eq!(n.exact, h(11));
        assert!(n.similarity > 0.99 && n.similarity <= 1.0001, "{n:?}");
        // Another partition's entries are never candidates.
        assert_eq!(index.nearest(h(3), &q, 500), None);
        // Expired entries are skipped.
        assert_eq!(index.nearest(h(1), &q, 1_000), None);
        // A vector of the wrong size finds nothing rather than panicking.
        assert_eq!(index.nearest(h(1), &[1.0], 500), None);
    }

    #[test]
    fn reinserting_refreshes_and_the_bound_evicts_expired_then_oldest() {
        let index = EmbeddedIndex::new(2, 3);
        index.insert(h(1), &unit(&[1.0, 0.0]), h(10), 100, 0);
        index.insert(h(1), &unit(&[1.0, 0.0]), h(10), 900, 0);
        assert_eq!(index.len(), 1);
        assert_eq!(
            index.nearest(h(1), &unit(&[1.0, 0.0]), 500).unwrap().exact,
            h(10)
        );
        index.insert(h(1), &unit(&[0.0, 1.0]), h(11), 200, 0);
        index.insert(h(1), &unit(&[1.0, 1.0]), h(12), 800, 0);
        assert_eq!(index.len(), 3);
        // Full: at t=300 the entry expiring at 200 goes first.
        index.insert(h(1), &unit(&[1.0, -1.0]), h(13), 700, 300);
        assert_eq!(index.len(), 3);
        assert_eq!(
            index.nearest(h(1), &unit(&[0.0, 1.0]), 300).unwrap().exact,
            h(12)
        );
        // Full with nothing expired: the entry expiring soonest goes.
        index.insert(h(1), &unit(&[-1.0, 0.0]), h(14), 950, 300);
        assert_eq!(index.len(), 3);
        let left: Vec<Hash128> = [[1.0, 0.0], [1.0, 1.0], [-1.0, 0.0], [1.0, -1.0]]
            .iter()
            .filter_map(|v| index.nearest(h(1), &unit(v), 300))
            .map(|n| n.exact)
            .collect();
        assert!(!left.contains(&h(13)), "{left:?}");
    }

    #[test]
    fn a_new_partition_takes_room_from_the_largest_when_the_index_is_full() {
        let index = EmbeddedIndex::new(2, 3);
        index.insert(h(1), &unit(&[1.0, 0.0]), h(10), 900, 0);
        index.insert(h(1), &unit(&[0.0, 1.0]), h(11), 800, 0);
        index.insert(h(2), &unit(&[1.0, 1.0]), h(20), 700, 0);
        // A third tenant arrives with the index full: the bound holds, the newcomer is
        // indexed, and the largest partition gives up the entry expiring soonest.
        index.insert(h(3), &unit(&[1.0, -1.0]), h(30), 950, 100);
        assert_eq!(index.len(), 3);
        assert_eq!(
            index
                .nearest(h(3), &unit(&[1.0, -1.0]), 100)
                .map(|n| n.exact),
            Some(h(30))
        );
        assert_eq!(
            index
                .nearest(h(1), &unit(&[0.0, 1.0]), 100)
                .map(|n| n.exact),
            Some(h(10)),
            "h(11) was evicted"
        );
        assert!(index.nearest(h(2), &unit(&[1.0, 1.0]), 100).is_some());
    }

    #[test]
    fn a_large_partition_still_finds_the_near_duplicate_and_skips_expired_ones() {
        let dims = 384;
        let mut rng = fastrand::Rng::with_seed(9);
        let mut random = || unit(&(0..dims).map(|_| rng.f32() - 0.5).collect::<Vec<_>>());
        let index = EmbeddedIndex::new(dims, 100_000);
        let n = FULL_SCAN * 3;
        let mut probes = Vec::new();
        for i in 0..n {
            let v = random();
            let key = Hash128((i as u128).to_be_bytes());
            // Every 1000th entry expires early.
            let expires = if i % 1000 == 0 { 10 } else { 1_000 };
            index.insert(h(1), &v, key, expires, 0);
            if i % 997 == 0 {
                probes.push((v, key, expires));
            }
        }
        for (v, key, expires) in probes {
            // A paraphrase-like neighbour: mostly the same direction.
            let noise = random();
            let query = unit(
                &v.iter()
                    .zip(&noise)
                    .map(|(x, e)| x * 0.8 + e * 0.3)
                    .collect::<Vec<_>>(),
            );
            let found = index.nearest(h(1), &query, 100);
            if expires <= 100 {
                assert_ne!(found.map(|f| f.exact), Some(key));
            } else {
                let found = found.expect("a neighbour");
                assert_eq!(found.exact, key);
                assert!(found.similarity > 0.85, "{found:?}");
            }
        }
    }
}
