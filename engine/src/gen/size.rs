//! Frame-size distributions: one size, a uniform range, or a weighted mix such as IMIX.
//!
//! Sizes count the 4-byte FCS (RFC 2544, pktgen): `64` is a 60-byte buffer on the socket.
//! A weighted mix is exact, not random: smooth weighted round robin (nginx's upstream
//! balancer, `ngx_http_upstream_get_peer`) sends every size exactly `weight` times in each
//! run of Σweights frames, interleaved, so a short test still has the intended mix.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::wire::{MAX_FRAME_WITH_FCS, MIN_FRAME_WITH_FCS};

/// Simple IMIX, by frame count 7:4:1: 64 bytes (the minimum), 594 (a 576-byte IP datagram,
/// RFC 791's minimum reassembly size, + 14 Ethernet + 4 FCS) and 1518 (a 1500-byte MTU
/// + 14 + 4).
pub const IMIX_SIMPLE: [(usize, u32); 3] = [(64, 7), (594, 4), (1518, 1)];

/// Examples for error messages.
const SIZE_EXAMPLES: &str = "e.g. 64, 64-1518, imix or 64:7,594:4,1518:1";

/// Which frame sizes (FCS included) a stream sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SizeSpec {
    /// Every frame this size.
    Fixed(usize),
    /// Uniform in `lo..=hi`, from a seeded RNG.
    Uniform {
        /// Smallest.
        lo: usize,
        /// Largest.
        hi: usize,
    },
    /// (size, weight) pairs, weights by frame count, sent in an exact interleaved order.
    Weighted(Vec<(usize, u32)>),
}

impl SizeSpec {
    /// Parses `64`, `64-1518` (uniform), `imix` / `imix-simple` ([`IMIX_SIMPLE`]) or a
    /// weighted list `64:7,594:4,1518:1` (a size without `:weight` has weight 1). Sizes are
    /// 64..=9022 and must not repeat; weights are 1..=4294967295.
    pub fn parse(s: &str) -> Result<SizeSpec, String> {
        let t = s.trim();
        let spec = match t {
            "" => return Err(format!("empty size ({SIZE_EXAMPLES})")),
            _ if t.eq_ignore_ascii_case("imix") || t.eq_ignore_ascii_case("imix-simple") => {
                SizeSpec::Weighted(IMIX_SIMPLE.to_vec())
            }
            _ if t.contains([':', ',']) => {
                let mut list = Vec::new();
                for item in t.split(',') {
                    let item = item.trim();
                    if item.is_empty() {
                        return Err(format!(
                            "bad size list {s:?}: an empty entry (a stray comma?) ({SIZE_EXAMPLES})"
                        ));
                    }
                    let (size, weight) = match item.split_once(':') {
                        Some((sz, w)) => (sz, Some(w.trim())),
                        None => (item, None),
                    };
                    let size = parse_size(s, size)?;
                    let weight = match weight {
                        None => 1,
                        Some(w) => match w.parse::<u32>() {
                            Ok(0) => {
                                return Err(format!(
                                    "bad size list {s:?}: {item:?} has weight 0; weights count frames and must be at least 1 ({SIZE_EXAMPLES})"
                                ))
                            }
                            Ok(w) => w,
                            Err(_) => {
                                return Err(format!(
                                    "bad size list {s:?}: in {item:?}, {w:?} is not a weight (a whole number 1..=4294967295) ({SIZE_EXAMPLES})"
                                ))
                            }
                        },
                    };
                    if list.iter().any(|&(x, _)| x == size) {
                        return Err(format!(
                            "bad size list {s:?}: size {size} appears twice; give it once with the summed weight ({SIZE_EXAMPLES})"
                        ));
                    }
                    list.push((size, weight));
                }
                SizeSpec::Weighted(list)
            }
            _ => match t.split_once('-') {
                Some((lo, hi)) => {
                    let (lo, hi) = (parse_size(s, lo)?, parse_size(s, hi)?);
                    if lo > hi {
                        return Err(format!(
                            "bad size range {s:?}: {lo} is above {hi}; give the smaller first ({SIZE_EXAMPLES})"
                        ));
                    }
                    SizeSpec::Uniform { lo, hi }
                }
                None => SizeSpec::Fixed(parse_size(s, t)?),
            },
        };
        spec.validate()?;
        Ok(spec)
    }

    /// Checks a spec built in code as `parse` checks text: sizes in 64..=9022, a range not
    /// backwards, a list not empty, no zero weight, no size twice.
    pub fn validate(&self) -> Result<(), String> {
        let check = |n: usize| -> Result<(), String> {
            if (MIN_FRAME_WITH_FCS..=MAX_FRAME_WITH_FCS).contains(&n) {
                Ok(())
            } else {
                Err(format!(
                    "size {n} is outside {MIN_FRAME_WITH_FCS}..={MAX_FRAME_WITH_FCS} (Ethernet frame including the 4-byte FCS, up to a 9000-byte jumbo MTU; {SIZE_EXAMPLES})"
                ))
            }
        };
        match self {
            SizeSpec::Fixed(n) => check(*n),
            SizeSpec::Uniform { lo, hi } => {
                check(*lo)?;
                check(*hi)?;
                if lo > hi {
                    return Err(format!(
                        "size range {lo}-{hi} runs backwards ({SIZE_EXAMPLES})"
                    ));
                }
                Ok(())
            }
            SizeSpec::Weighted(list) => {
                if list.is_empty() {
                    return Err(format!("empty size list ({SIZE_EXAMPLES})"));
                }
                for (i, &(n, w)) in list.iter().enumerate() {
                    check(n)?;
                    if w == 0 {
                        return Err(format!("size {n} has weight 0 ({SIZE_EXAMPLES})"));
                    }
                    if list[..i].iter().any(|&(x, _)| x == n) {
                        return Err(format!("size {n} appears twice ({SIZE_EXAMPLES})"));
                    }
                }
                Ok(())
            }
        }
    }

    /// The largest size (0 for an empty list).
    pub fn max(&self) -> usize {
        match self {
            SizeSpec::Fixed(n) => *n,
            SizeSpec::Uniform { lo, hi } => *lo.max(hi),
            SizeSpec::Weighted(l) => l.iter().map(|&(n, _)| n).max().unwrap_or(0),
        }
    }

    /// The smallest size (0 for an empty list).
    pub fn min(&self) -> usize {
        match self {
            SizeSpec::Fixed(n) => *n,
            SizeSpec::Uniform { lo, hi } => *lo.min(hi),
            SizeSpec::Weighted(l) => l.iter().map(|&(n, _)| n).min().unwrap_or(0),
        }
    }

    /// Every size that can occur, ascending, once each (weight-0 entries left out).
    pub fn distinct(&self) -> Vec<usize> {
        let mut v: Vec<usize> = match self {
            SizeSpec::Fixed(n) => vec![*n],
            SizeSpec::Uniform { .. } => (self.min()..=self.max()).collect(),
            SizeSpec::Weighted(l) => l.iter().filter(|&&(_, w)| w > 0).map(|&(n, _)| n).collect(),
        };
        v.sort_unstable();
        v.dedup();
        v
    }

    /// The mean size over the distribution (weights by count; 0 for an empty list).
    pub fn mean(&self) -> f64 {
        match self {
            SizeSpec::Fixed(n) => *n as f64,
            SizeSpec::Uniform { lo, hi } => (*lo + *hi) as f64 / 2.0,
            SizeSpec::Weighted(l) => {
                let total: f64 = l.iter().map(|&(_, w)| f64::from(w)).sum();
                if total == 0.0 {
                    return 0.0;
                }
                l.iter().map(|&(n, w)| n as f64 * f64::from(w)).sum::<f64>() / total
            }
        }
    }

    /// A few words for reports: `64 B`, `64-1518 B uniform`,
    /// `imix 64:7,594:4,1518:1 (mean 361.8 B)`.
    pub fn describe(&self) -> String {
        match self {
            SizeSpec::Fixed(n) => format!("{n} B"),
            SizeSpec::Uniform { lo, hi } => format!("{lo}-{hi} B uniform"),
            SizeSpec::Weighted(l) => {
                let list = l
                    .iter()
                    .map(|(n, w)| format!("{n}:{w}"))
                    .collect::<Vec<_>>()
                    .join(",");
                let name = if l[..] == IMIX_SIMPLE[..] {
                    "imix "
                } else {
                    ""
                };
                format!("{name}{list} (mean {:.1} B)", self.mean())
            }
        }
    }
}

/// One size in `whole`: a number in 64..=9022.
fn parse_size(whole: &str, part: &str) -> Result<usize, String> {
    let p = part.trim();
    let n: usize = p.parse().map_err(|_| {
        format!("bad size {whole:?}: {p:?} is not a number of bytes ({SIZE_EXAMPLES})")
    })?;
    if !(MIN_FRAME_WITH_FCS..=MAX_FRAME_WITH_FCS).contains(&n) {
        return Err(format!(
            "bad size {whole:?}: {n} is outside {MIN_FRAME_WITH_FCS}..={MAX_FRAME_WITH_FCS} (Ethernet frame including the 4-byte FCS, up to a 9000-byte jumbo MTU; {SIZE_EXAMPLES})"
        ));
    }
    Ok(n)
}

/// Picks the size of each next frame.
#[derive(Debug, Clone)]
pub struct SizePicker {
    pick: Pick,
}

#[derive(Debug, Clone)]
enum Pick {
    Fixed(usize),
    Uniform {
        lo: usize,
        hi: usize,
        rng: SmallRng,
    },
    /// Smooth weighted round robin: per pick, every `current` grows by its weight, the
    /// largest wins (the first on a tie) and loses the total. After Σweights picks every
    /// `current` is back to 0, each size having won exactly its weight's worth.
    Weighted {
        sizes: Vec<usize>,
        weights: Vec<i64>,
        current: Vec<i64>,
        total: i64,
    },
}

impl SizePicker {
    /// A picker for `spec`; `seed` seeds the uniform RNG. A spec that `validate` would
    /// refuse still gives a picker, never a panic: a backwards range is swapped, zero
    /// weights are dropped, and an empty list sends 64-byte frames.
    pub fn new(spec: &SizeSpec, seed: u64) -> Self {
        let pick = match spec {
            SizeSpec::Fixed(n) => Pick::Fixed(*n),
            SizeSpec::Uniform { lo, hi } => Pick::Uniform {
                lo: *lo.min(hi),
                hi: *lo.max(hi),
                rng: SmallRng::seed_from_u64(seed),
            },
            SizeSpec::Weighted(list) => {
                let list: Vec<(usize, u32)> =
                    list.iter().copied().filter(|&(_, w)| w > 0).collect();
                match list[..] {
                    [] => Pick::Fixed(MIN_FRAME_WITH_FCS),
                    [(n, _)] => Pick::Fixed(n),
                    _ => Pick::Weighted {
                        sizes: list.iter().map(|&(n, _)| n).collect(),
                        weights: list.iter().map(|&(_, w)| i64::from(w)).collect(),
                        current: vec![0; list.len()],
                        // u32 weights: the total fits i64 for any list that fits memory.
                        total: list.iter().map(|&(_, w)| i64::from(w)).sum(),
                    },
                }
            }
        };
        SizePicker { pick }
    }

    /// The next frame's size (FCS included).
    #[inline]
    #[expect(
        clippy::should_implement_trait,
        reason = "an endless picker, not an Iterator: no Option to unwrap per frame"
    )]
    pub fn next(&mut self) -> usize {
        match &mut self.pick {
            Pick::Fixed(n) => *n,
            Pick::Uniform { lo, hi, rng } => rng.gen_range(*lo..=*hi),
            Pick::Weighted {
                sizes,
                weights,
                current,
                total,
            } => {
                let mut best = 0;
                let mut best_cur = i64::MIN;
                for (i, (c, w)) in current.iter_mut().zip(weights.iter()).enumerate() {
                    *c += w;
                    if *c > best_cur {
                        best = i;
                        best_cur = *c;
                    }
                }
                if let Some(c) = current.get_mut(best) {
                    *c -= *total;
                }
                sizes.get(best).copied().unwrap_or(MIN_FRAME_WITH_FCS)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_good() {
        let w = |l: &[(usize, u32)]| SizeSpec::Weighted(l.to_vec());
        let good = [
            ("64", SizeSpec::Fixed(64)),
            (" 1518 ", SizeSpec::Fixed(1518)),
            ("9022", SizeSpec::Fixed(9022)),
            ("64-1518", SizeSpec::Uniform { lo: 64, hi: 1518 }),
            ("100-100", SizeSpec::Uniform { lo: 100, hi: 100 }),
            ("imix", w(&IMIX_SIMPLE)),
            ("imix-simple", w(&IMIX_SIMPLE)),
            ("IMIX", w(&IMIX_SIMPLE)),
            ("64:7,594:4,1518:1", w(&IMIX_SIMPLE)),
            ("64:7, 594:4 ,1518", w(&IMIX_SIMPLE)),
            ("128,256", w(&[(128, 1), (256, 1)])),
            ("128:3", w(&[(128, 3)])),
        ];
        for (s, want) in good {
            assert_eq!(SizeSpec::parse(s), Ok(want), "{s:?}");
        }
    }

    #[test]
    fn parses_bad_with_the_bad_part_named() {
        let bad = [
            ("", "empty size"),
            ("63", "63 is outside 64..=9022"),
            ("9023", "9023 is outside"),
            ("0", "0 is outside"),
            ("abc", "\"abc\" is not a number"),
            ("64.5", "\"64.5\" is not a number"),
            ("-64", "\"\" is not a number"),
            ("1518-64", "1518 is above 64"),
            ("64-", "\"\" is not a number"),
            ("64-99999", "99999 is outside"),
            ("64:0,128:1", "\"64:0\" has weight 0"),
            ("64:x", "\"x\" is not a weight"),
            ("64:-1", "\"-1\" is not a weight"),
            ("64:1,64:2", "size 64 appears twice"),
            ("64:1,,128:1", "empty entry"),
            (",", "empty entry"),
            ("32:1,128:1", "32 is outside"),
            ("imix2", "\"imix2\" is not a number"),
        ];
        for (s, why) in bad {
            let e = SizeSpec::parse(s).unwrap_err();
            assert!(e.contains(why), "{s:?}: {e}");
            assert!(e.contains("e.g. 64, 64-1518"), "{s:?}: {e}");
        }
        assert!(SizeSpec::Weighted(vec![]).validate().is_err());
        assert!(SizeSpec::Uniform { lo: 100, hi: 99 }.validate().is_err());
        assert!(SizeSpec::Weighted(vec![(64, 1), (64, 1)])
            .validate()
            .is_err());
    }

    #[test]
    fn summaries() {
        let imix = SizeSpec::parse("imix").unwrap();
        assert_eq!((imix.min(), imix.max()), (64, 1518));
        assert_eq!(imix.distinct(), [64, 594, 1518]);
        assert_eq!(imix.describe(), "imix 64:7,594:4,1518:1 (mean 361.8 B)");
        let u = SizeSpec::Uniform { lo: 64, hi: 67 };
        assert_eq!(u.distinct(), [64, 65, 66, 67]);
        assert_eq!(u.describe(), "64-67 B uniform");
        assert_eq!(SizeSpec::Fixed(64).describe(), "64 B");
        assert_eq!(SizeSpec::Weighted(vec![]).max(), 0);
    }

    #[test]
    fn imix_is_exact_and_interleaved() {
        let mut p = SizePicker::new(&SizeSpec::parse("imix").unwrap(), 1);
        let first: Vec<usize> = (0..12).map(|_| p.next()).collect();
        assert_eq!(
            first,
            [64, 594, 64, 64, 594, 64, 1518, 64, 594, 64, 594, 64],
            "interleaved, not 7 × 64 then 4 × 594"
        );
        let mut p = SizePicker::new(&SizeSpec::parse("imix").unwrap(), 1);
        let mut counts = std::collections::BTreeMap::new();
        for i in 1..=120_000 {
            *counts.entry(p.next()).or_insert(0u32) += 1;
            if i % 12 == 0 {
                // Exact after every full period, not only at the end.
                assert_eq!(counts[&64] * 4, counts[&594] * 7, "after {i}");
            }
        }
        assert_eq!(
            counts.into_iter().collect::<Vec<_>>(),
            [(64, 70_000), (594, 40_000), (1518, 10_000)]
        );
    }

    #[test]
    fn uniform_stays_in_range_and_reaches_both_ends() {
        let spec = SizeSpec::parse("64-1518").unwrap();
        let mut p = SizePicker::new(&spec, 7);
        let (mut lo, mut hi) = (usize::MAX, 0);
        for _ in 0..200_000 {
            let n = p.next();
            assert!((64..=1518).contains(&n));
            lo = lo.min(n);
            hi = hi.max(n);
        }
        assert_eq!((lo, hi), (64, 1518));
        let a: Vec<usize> = {
            let mut p = SizePicker::new(&spec, 7);
            (0..100).map(|_| p.next()).collect()
        };
        let b: Vec<usize> = {
            let mut p = SizePicker::new(&spec, 7);
            (0..100).map(|_| p.next()).collect()
        };
        assert_eq!(a, b, "seeded");
    }

    #[test]
    fn odd_specs_never_panic() {
        for spec in [
            SizeSpec::Weighted(vec![]),
            SizeSpec::Weighted(vec![(100, 0)]),
            SizeSpec::Weighted(vec![(100, 0), (200, 3)]),
            SizeSpec::Uniform { lo: 200, hi: 100 },
            SizeSpec::Weighted(vec![(64, u32::MAX), (128, u32::MAX)]),
        ] {
            let mut p = SizePicker::new(&spec, 0);
            for _ in 0..10 {
                assert!(p.next() >= 64, "{spec:?}");
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn weighted_counts_are_exact_every_period(
            list in proptest::collection::btree_map(64usize..=9022, 1u32..20, 1..8),
            periods in 1u32..4,
        ) {
            let list: Vec<(usize, u32)> = list.into_iter().collect();
            let total: u32 = list.iter().map(|&(_, w)| w).sum();
            let mut p = SizePicker::new(&SizeSpec::Weighted(list.clone()), 0);
            for _ in 0..periods {
                let mut counts = std::collections::BTreeMap::new();
                for _ in 0..total {
                    *counts.entry(p.next()).or_insert(0u32) += 1;
                }
                for &(n, w) in &list {
                    proptest::prop_assert_eq!(counts.get(&n).copied().unwrap_or(0), w);
                }
            }
        }
    }
}
