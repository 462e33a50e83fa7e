//! Weighted random choice over a small candidate list, without allocating.

/// Picks one item among those `eligible`, with probability proportional to `weight`.
/// `roll` is a uniform random number; taking it as an argument keeps this pure and testable.
pub fn pick_weighted<T: Copy>(
    items: impl Iterator<Item = (T, u32)> + Clone,
    roll: u64,
) -> Option<T> {
    let total: u64 = items.clone().map(|(_, w)| u64::from(w)).sum();
    if total == 0 {
        return items.map(|(t, _)| t).next();
    }
    let mut point = roll % total;
    for (item, w) in items {
        let w = u64::from(w);
        if point < w {
            return Some(item);
        }
        point -= w;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_follows_weights() {
        let items = [("a", 80u32), ("b", 20u32)];
        let mut counts = [0u32; 2];
        for roll in 0..100u64 {
            match pick_weighted(items.iter().copied(), roll) {
                Some("a") => counts[0] += 1,
                Some("b") => counts[1] += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(counts, [80, 20]);
    }

    #[test]
    fn empty_list_picks_nothing() {
        assert_eq!(pick_weighted(std::iter::empty::<(u8, u32)>(), 7), None);
    }
}
