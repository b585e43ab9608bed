//! Traffic generation: what to send (a frame template per stream) and when (the pacing
//! clock). A simple pps pacing lives here until the qdisc layer (`tx::qdisc`, a later
//! piece of work) takes over rate control.

pub mod pacing;
pub mod rate;
pub mod replay;
pub mod size;
pub mod source;
pub mod stream;
pub mod vary;

pub use pacing::Pacer;

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

/// Splits a rate in packets/s over `parts` queues so the shares add up to the total.
pub fn split_rate(total_pps: f64, parts: usize) -> Vec<f64> {
    if parts == 0 {
        return Vec::new();
    }
    vec![total_pps / parts as f64; parts]
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
        let r = split_rate(100_000.0, 3);
        assert!((r.iter().sum::<f64>() - 100_000.0).abs() < 1e-6);
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
