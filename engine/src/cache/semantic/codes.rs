//! Compact forms of a unit vector for the embedded index: int8 codes with a per-vector scale
//! (4× smaller than `f32`, similarity within about 0.002 of the exact cosine) for scoring, and
//! one sign bit per dimension (32× smaller) for a first pass that finds candidates by Hamming
//! distance, which tracks the angle between vectors. Search is memory-bound, so reading fewer
//! bytes per entry is what makes 100,000 entries cheap to scan.

/// Bits per sign word.
const WORD: usize = 64;

pub fn words_for(dims: usize) -> usize {
    dims.div_ceil(WORD)
}

/// Appends the int8 codes of `v` to `codes` and returns the scale (`code = v * scale`).
pub fn push_codes(v: &[f32], codes: &mut Vec<i8>) -> f32 {
    let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
    let scale = if max > 0.0 { 127.0 / max } else { 1.0 };
    codes.extend(
        v.iter()
            .map(|x| (x * scale).round().clamp(-127.0, 127.0) as i8),
    );
    scale
}

/// Appends the sign bits of `v` to `bits` (bit set: component ≥ 0).
pub fn push_signs(v: &[f32], bits: &mut Vec<u64>) {
    for chunk in v.chunks(WORD) {
        let mut word = 0u64;
        for (i, x) in chunk.iter().enumerate() {
            if *x >= 0.0 {
                word |= 1 << i;
            }
        }
        bits.push(word);
    }
}

pub fn hamming(a: &[u64], b: &[u64]) -> u32 {
    a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum()
}

/// The dot product of two int8 code vectors, in sixteen independent lanes the compiler turns
/// into SIMD multiply-adds.
pub fn dot_codes(a: &[i8], b: &[i8]) -> i32 {
    let mut lanes = [0i32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: i32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| i32::from(*x) * i32::from(*y))
        .sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..16 {
            lanes[l] += i32::from(x[l]) * i32::from(y[l]);
        }
    }
    lanes.iter().sum::<i32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::semantic::normalise;

    fn random_unit(rng: &mut fastrand::Rng, dims: usize) -> Vec<f32> {
        let mut v: Vec<f32> = (0..dims).map(|_| rng.f32() - 0.5).collect();
        normalise(&mut v);
        v
    }

    #[test]
    fn code_similarity_is_close_to_the_cosine() {
        let mut rng = fastrand::Rng::with_seed(3);
        for _ in 0..200 {
            let a = random_unit(&mut rng, 384);
            // A neighbour at some similarity: a mixed with noise.
            let noise = random_unit(&mut rng, 384);
            let t = rng.f32();
            let mut b: Vec<f32> = a
                .iter()
                .zip(&noise)
                .map(|(x, n)| x * t + n * (1.0 - t))
                .collect();
            normalise(&mut b);
            let exact: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            let (mut ca, mut cb) = (Vec::new(), Vec::new());
            let (sa, sb) = (push_codes(&a, &mut ca), push_codes(&b, &mut cb));
            let approx = dot_codes(&ca, &cb) as f32 / (sa * sb);
            assert!((approx - exact).abs() < 0.005, "{approx} vs {exact}");
        }
    }

    #[test]
    fn hamming_distance_grows_with_the_angle() {
        let mut rng = fastrand::Rng::with_seed(4);
        let a = random_unit(&mut rng, 384);
        let noise = random_unit(&mut rng, 384);
        let mut last = 0;
        for t in [1.0f32, 0.8, 0.5, 0.2] {
            let mut b: Vec<f32> = a
                .iter()
                .zip(&noise)
                .map(|(x, n)| x * t + n * (1.0 - t))
                .collect();
            normalise(&mut b);
            let (mut ba, mut bb) = (Vec::new(), Vec::new());
            push_signs(&a, &mut ba);
            push_signs(&b, &mut bb);
            assert_eq!(ba.len(), words_for(384));
            let d = hamming(&ba, &bb);
            assert!(d >= last, "t={t}: {d} < {last}");
            last = d;
        }
        assert!(last > 100, "{last}");
    }

    #[test]
    fn dot_codes_matches_the_plain_sum_for_any_length() {
        for n in [0usize, 1, 15, 16, 17, 384] {
            let a: Vec<i8> = (0..n).map(|i| (i as i32 * 37 % 255 - 127) as i8).collect();
            let b: Vec<i8> = (0..n).map(|i| (i as i32 * 91 % 255 - 127) as i8).collect();
            let plain: i32 = a
                .iter()
                .zip(&b)
                .map(|(x, y)| i32::from(*x) * i32::from(*y))
                .sum();
            assert_eq!(dot_codes(&a, &b), plain, "n={n}");
        }
    }
}
