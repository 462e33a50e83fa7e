//! The embedded index's part of the cache file (see `cache::persist`): its dimension count,
//! then every live entry with its partition, exactly as the index holds it. Codes are copied,
//! not recomputed, so a restored entry scores as it did before the restart.

use super::{EmbeddedIndex, Encoded};
use crate::cache::persist::Reader;
use crate::cache::semantic::codes::words_for;
use crate::cache::Hash128;

/// Smallest scale a unit vector's codes can have (`127 / max component`, max ≤ 1). Anything
/// smaller would score above 1.0, a certain false hit, so it marks a damaged file.
const MIN_SCALE: f32 = 126.9;

impl EmbeddedIndex {
    /// Appends the entries live at `now_ms` to `out` and returns how many. Each partition is
    /// copied under its own brief read lock, so lookups and inserts go on while a save runs.
    pub(crate) fn write_live(&self, out: &mut Vec<u8>, now_ms: u64) -> u64 {
        let (dims, words) = (self.dims, self.words);
        out.extend_from_slice(&(dims as u32).to_be_bytes());
        let count_at = out.len();
        out.extend_from_slice(&0u64.to_be_bytes());
        let ids: Vec<u128> = {
            let partitions = self.partitions.read().unwrap_or_else(|e| e.into_inner());
            partitions.keys().copied().collect()
        };
        let mut count = 0u64;
        for id in ids {
            let partitions = self.partitions.read().unwrap_or_else(|e| e.into_inner());
            let Some(p) = partitions.get(&id) else {
                continue;
            };
            for (i, &(scale, exact, expires)) in p.entries.iter().enumerate() {
                if expires <= now_ms {
                    continue;
                }
                out.extend_from_slice(&id.to_be_bytes());
                out.extend_from_slice(&scale.to_be_bytes());
                out.extend_from_slice(&exact.0);
                out.extend_from_slice(&expires.to_be_bytes());
                out.extend(p.codes[i * dims..(i + 1) * dims].iter().map(|&c| c as u8));
                for word in &p.signs[i * words..(i + 1) * words] {
                    out.extend_from_slice(&word.to_be_bytes());
                }
                count += 1;
            }
        }
        out[count_at..count_at + 8].copy_from_slice(&count.to_be_bytes());
        count
    }

    /// Adds what `write_live` wrote, skipping entries expired by `now_ms`, and returns how
    /// many were added. Vectors of another size (the embedding model changed since the save)
    /// cannot be compared with this model's: they are skipped whole and `Ok(None)` returned.
    pub(crate) fn read_into(
        &self,
        input: &mut Reader<'_>,
        now_ms: u64,
    ) -> Result<Option<u64>, String> {
        let dims = input.u32()? as usize;
        let count = input.u64()?;
        if dims != self.dims {
            let entry_len = 16 + 4 + 16 + 8 + dims + 8 * words_for(dims);
            let len = usize::try_from(count)
                .ok()
                .and_then(|n| n.checked_mul(entry_len))
                .ok_or("index entry count is out of range")?;
            input.bytes(len)?;
            return Ok(None);
        }
        let mut codes = vec![0i8; dims];
        let mut signs = vec![0u64; self.words];
        let mut added = 0;
        for _ in 0..count {
            let partition = Hash128(input.array()?);
            let scale = input.f32()?;
            let exact = Hash128(input.array()?);
            let expires = input.u64()?;
            for (code, byte) in codes.iter_mut().zip(input.bytes(dims)?) {
                *code = *byte as i8;
            }
            for word in signs.iter_mut() {
                *word = input.u64()?;
            }
            if !(scale.is_finite() && scale >= MIN_SCALE) {
                return Err(format!(
                    "index entry {exact} has an impossible scale {scale}"
                ));
            }
            if expires <= now_ms {
                continue;
            }
            let encoded = Encoded {
                scale,
                codes: &codes,
                signs: &signs,
            };
            self.insert_encoded(partition, encoded, exact, expires, now_ms);
            added += 1;
        }
        Ok(Some(added))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{h, unit};
    use super::*;

    fn saved(index: &EmbeddedIndex, now_ms: u64) -> (Vec<u8>, u64) {
        let mut out = Vec::new();
        let n = index.write_live(&mut out, now_ms);
        (out, n)
    }

    #[test]
    fn a_restored_index_finds_the_same_neighbours_with_the_same_scores() {
        let index = EmbeddedIndex::new(3, 100);
        index.insert(h(1), &unit(&[1.0, 0.0, 0.0]), h(10), 1_000, 0);
        index.insert(h(1), &unit(&[0.2, 0.9, 0.1]), h(11), 1_000, 0);
        index.insert(h(2), &unit(&[0.0, 0.0, 1.0]), h(20), 1_000, 0);
        // Expired at save time: not written.
        index.insert(h(2), &unit(&[0.0, 1.0, 1.0]), h(21), 50, 0);
        let (bytes, written) = saved(&index, 100);
        assert_eq!(written, 3);

        let restored = EmbeddedIndex::new(3, 100);
        let added = restored.read_into(&mut Reader::new(&bytes), 200).unwrap();
        assert_eq!(added, Some(3));
        assert_eq!(restored.len(), 3);
        for (partition, q) in [(h(1), [0.9, 0.1, 0.0]), (h(2), [0.1, 0.2, 0.9])] {
            let q = unit(&q);
            assert_eq!(
                restored.nearest(partition, &q, 200),
                index.nearest(partition, &q, 200)
            );
        }
        // Entries expired between save and restore are left out.
        let later = EmbeddedIndex::new(3, 100);
        let added = later.read_into(&mut Reader::new(&bytes), 1_000).unwrap();
        assert_eq!(added, Some(0));
    }

    #[test]
    fn vectors_of_another_model_are_skipped_and_damage_is_an_error() {
        let index = EmbeddedIndex::new(3, 100);
        index.insert(h(1), &unit(&[1.0, 0.0, 0.0]), h(10), 1_000, 0);
        let (mut bytes, _) = saved(&index, 0);
        bytes.extend_from_slice(b"rest");

        let other_model = EmbeddedIndex::new(4, 100);
        let mut input = Reader::new(&bytes);
        assert_eq!(other_model.read_into(&mut input, 0), Ok(None));
        assert!(other_model.is_empty());
        // The skipped section is consumed whole: what follows it is still readable.
        assert_eq!(input.bytes(4).unwrap(), b"rest");

        let truncated = &bytes[..bytes.len() - 10];
        let err = EmbeddedIndex::new(3, 100)
            .read_into(&mut Reader::new(truncated), 0)
            .unwrap_err();
        assert!(err.contains("ends early"), "{err}");

        // A scale no unit vector has would score above 1.0: refused.
        let mut bad_scale = bytes.clone();
        bad_scale[4 + 8 + 16..4 + 8 + 16 + 4].copy_from_slice(&1.0f32.to_be_bytes());
        let err = EmbeddedIndex::new(3, 100)
            .read_into(&mut Reader::new(&bad_scale), 0)
            .unwrap_err();
        assert!(err.contains("impossible scale"), "{err}");
    }
}
