//! The in-process vector index: per partition (model + parameters + scope + namespace, see
//! `CacheKey::partition`), unit vectors stored contiguously and searched exhaustively. A
//! partition only ever holds one tenant's entries for one model and parameter set, so it stays
//! small in practice; exhaustive search over contiguous `f32`s is exact (no recall loss) and
//! vectorises well. Entries expire with the answer they point to, and the index is bounded:
//! past `max_entries`, an insert first drops expired entries of its partition, then its
//! oldest.

use crate::cache::Hash128;
use rustc_hash::FxHashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::RwLock;

#[derive(Debug, Default)]
struct Partition {
    /// `dims` floats per entry, entry `i` at `i * dims`.
    vectors: Vec<f32>,
    /// Per entry: the exact key of the stored answer, and when it expires (unix ms).
    entries: Vec<(Hash128, u64)>,
}

impl Partition {
    fn remove(&mut self, i: usize, dims: usize) {
        let last = self.entries.len() - 1;
        if i != last {
            let (head, tail) = self.vectors.split_at_mut(last * dims);
            head[i * dims..(i + 1) * dims].copy_from_slice(&tail[..dims]);
        }
        self.vectors.truncate(last * dims);
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
    max_entries: usize,
    len: AtomicUsize,
    partitions: RwLock<FxHashMap<u128, Partition>>,
}

impl EmbeddedIndex {
    pub fn new(dims: usize, max_entries: usize) -> EmbeddedIndex {
        EmbeddedIndex {
            dims,
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
        let partitions = self.partitions.read().unwrap_or_else(|e| e.into_inner());
        let p = partitions.get(&partition.as_u128())?;
        let mut best: Option<Neighbour> = None;
        for (i, v) in p.vectors.chunks_exact(self.dims).enumerate() {
            let (exact, expires) = p.entries[i];
            if expires <= now_ms {
                continue;
            }
            let similarity = dot(v, query);
            if best.is_none_or(|b| similarity > b.similarity) {
                best = Some(Neighbour { exact, similarity });
            }
        }
        best
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
        let dims = self.dims;
        // `len` only changes under this lock, so it is exact here.
        let mut partitions = self.partitions.write().unwrap_or_else(|e| e.into_inner());
        let p = partitions.entry(partition.as_u128()).or_default();
        let mut removed = 0;
        if let Some(i) = p.entries.iter().position(|(k, _)| *k == exact) {
            p.remove(i, dims);
            removed += 1;
        }
        let full = |removed: usize| self.len() - removed >= self.max_entries;
        if full(removed) {
            let mut i = 0;
            while i < p.entries.len() {
                if p.entries[i].1 <= now_ms {
                    p.remove(i, dims);
                    removed += 1;
                } else {
                    i += 1;
                }
            }
        }
        if full(removed) && !p.entries.is_empty() {
            let soonest = (0..p.entries.len())
                .min_by_key(|&i| p.entries[i].1)
                .unwrap_or(0);
            p.remove(soonest, dims);
            removed += 1;
        }
        p.vectors.extend_from_slice(vector);
        p.entries.push((exact, expires_ms));
        self.len.fetch_add(1, Ordering::Relaxed);
        self.len.fetch_sub(removed, Ordering::Relaxed);
    }
}

/// Dot product in eight independent lanes, which the compiler turns into SIMD.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            lanes[l] += x[l] * y[l];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: &[f32]) -> Vec<f32> {
        let mut v = v.to_vec();
        crate::cache::semantic::normalise(&mut v);
        v
    }

    fn h(n: u8) -> Hash128 {
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
    fn dot_matches_the_plain_sum_for_any_length() {
        for n in [0, 1, 7, 8, 9, 384] {
            let a: Vec<f32> = (0..n).map(|i| (i as f32).sin()).collect();
            let b: Vec<f32> = (0..n).map(|i| (i as f32).cos()).collect();
            let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!((dot(&a, &b) - plain).abs() < 1e-3, "n={n}");
        }
    }
}
