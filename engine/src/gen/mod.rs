//! Traffic generation: what to send (streams: a template's frame source with field
//! variation and sizes, or a replayed capture) and at which rate ([`rate`]). The rate is
//! enforced by the qdisc (`tx::qdisc`), not here.

pub mod rate;
pub mod replay;
pub mod size;
pub mod source;
pub mod stream;
pub mod vary;

/// Splits `total` into `parts` shares that differ by at most one and add up to `total`
/// exactly (the first `total % parts` shares get the extra one).
pub fn split_exact(total: u64, parts: usize) -> Vec<u64> {
    if parts == 0 {
        return Vec::new();
    }
    let p = parts as u64;
    (0..p)
        .map(|i| total / p + u64::from(i < total % p))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_adds_up() {
        assert_eq!(split_exact(10, 3), vec![4, 3, 3]);
        assert_eq!(split_exact(2, 4), vec![1, 1, 0, 0]);
        assert_eq!(split_exact(0, 2), vec![0, 0]);
        assert!(split_exact(5, 0).is_empty());
    }

    proptest::proptest! {
        #[test]
        fn split_exact_sums(total in 0u64..1_000_000_000, parts in 1usize..64) {
            let s = split_exact(total, parts);
            proptest::prop_assert_eq!(s.iter().sum::<u64>(), total);
            let (mn, mx) = (s.iter().min().copied().unwrap_or(0), s.iter().max().copied().unwrap_or(0));
            proptest::prop_assert!(mx - mn <= 1);
        }
    }
}
