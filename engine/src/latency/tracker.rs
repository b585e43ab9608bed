//! Per-stream sequence accounting: how many probes arrived, how many never did, and how
//! many came out of order, twice, late or too old to tell.
//!
//! A [`SeqTracker`] keeps one bit per sequence number for the last `window` numbers up to
//! the highest seen (a ring of `u64` words indexed by `seq % window`), so a duplicate is
//! told from a late reordered arrival exactly within the window, in constant memory and
//! O(1) amortised time per arrival. Definitions follow RFC 4737 (reordering: an arrival
//! whose sequence number is below one already seen) and RFC 5560 (duplicates); RFC 2680's
//! "late is lost" is not applied: late arrivals are counted apart ([`SeqCounts::late`]).
//!
//! Sequence numbers start at 0 for every (session, stream); the caller keeps one tracker
//! per pair.

/// Bits per bitmap word.
const WORD_BITS: u64 = u64::BITS as u64;

/// What a stream's arrivals add up to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SeqCounts {
    /// Valid probes that arrived (duplicates included).
    pub received: u64,
    /// Distinct sequence numbers that arrived.
    pub unique: u64,
    /// Expected minus unique (never negative): probes that never arrived.
    pub lost: u64,
    /// Arrived after a higher sequence number had arrived (not duplicates).
    pub reordered: u64,
    /// Arrived again (a sequence number already seen, within the window).
    pub duplicated: u64,
    /// Arrived with latency above the late threshold (still recorded and counted as
    /// received; RFC 2680 would call them lost: we count them apart). Any arrival can be
    /// late, duplicates included.
    pub late: u64,
    /// Arrived `window` or more sequence numbers behind the highest seen (outside the
    /// bitmap): too old to check for duplication; counted as reordered and in unique.
    pub too_old: u64,
}

/// What one arrival was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqOutcome {
    /// The next sequence number (or 0, the first one).
    InOrder,
    /// Jumped ahead: this many sequence numbers were skipped (1 for `highest + 2`; a first
    /// arrival of `n` skipped `n`, as sequences start at 0).
    Gap(u64),
    /// Below the highest seen, within the window, not seen before.
    Reordered,
    /// Seen before (within the window).
    Duplicate,
    /// `window` or more behind the highest seen: counted as reordered and unique, unchecked
    /// for duplication.
    TooOld,
}

/// Sequence accounting for one stream (see the module doc).
#[derive(Debug, Clone)]
pub struct SeqTracker {
    /// One bit per sequence number `s` in `highest - window + 1 ..= highest`, at bit
    /// `s % window`; bits for numbers not yet reached are clear.
    bits: Vec<u64>,
    /// Window length in sequence numbers: a multiple of 64, `bits.len() * 64`.
    window: u64,
    /// Highest sequence seen, `None` before the first arrival.
    highest: Option<u64>,
    /// Running counts; `lost` is filled in by [`SeqTracker::counts`].
    counts: SeqCounts,
}

impl Default for SeqTracker {
    /// A tracker with [`SeqTracker::DEFAULT_WINDOW`].
    fn default() -> Self {
        Self::new(Self::DEFAULT_WINDOW)
    }
}

impl SeqTracker {
    /// Default window: 65536 sequence numbers (a bitmap of 8 KiB). At 1 Mpps of probes that
    /// is 65 ms of reordering told apart from duplication, well past any queueing delay
    /// a path reorders by; at 1 kpps, over a minute.
    pub const DEFAULT_WINDOW: u32 = 65536;

    /// A tracker remembering the last `window` sequence numbers, rounded up to a multiple
    /// of 64 (one bitmap word), at least 64. Memory is `window / 8` bytes.
    pub fn new(window: u32) -> Self {
        let words = u64::from(window).div_ceil(WORD_BITS).max(1);
        SeqTracker {
            // At most 2^32 / 64 = 2^26 words: fits usize on every target skiff runs on.
            bits: vec![0; words as usize],
            window: words * WORD_BITS,
            highest: None,
            counts: SeqCounts::default(),
        }
    }

    /// The window in sequence numbers, after rounding.
    pub fn window(&self) -> u64 {
        self.window
    }

    /// Records one arrival of `seq`. `late`: whether this arrival is late (the caller
    /// decides from its latency).
    pub fn observe(&mut self, seq: u64, late: bool) -> SeqOutcome {
        self.counts.received += 1;
        self.counts.late += u64::from(late);
        let outcome = match self.highest {
            None => {
                self.highest = Some(seq);
                self.set(seq);
                if seq == 0 {
                    SeqOutcome::InOrder
                } else {
                    SeqOutcome::Gap(seq)
                }
            }
            Some(h) if seq > h => {
                self.clear_after(h, seq - h);
                self.highest = Some(seq);
                self.set(seq);
                match seq - h - 1 {
                    0 => SeqOutcome::InOrder,
                    skipped => SeqOutcome::Gap(skipped),
                }
            }
            Some(h) if h - seq >= self.window => SeqOutcome::TooOld,
            Some(_) => {
                // The highest's own bit is always set, so `seq == h` lands here too.
                if self.test_and_set(seq) {
                    SeqOutcome::Duplicate
                } else {
                    SeqOutcome::Reordered
                }
            }
        };
        match outcome {
            SeqOutcome::InOrder | SeqOutcome::Gap(_) => self.counts.unique += 1,
            SeqOutcome::Reordered => {
                self.counts.unique += 1;
                self.counts.reordered += 1;
            }
            SeqOutcome::Duplicate => self.counts.duplicated += 1,
            SeqOutcome::TooOld => {
                self.counts.unique += 1;
                self.counts.reordered += 1;
                self.counts.too_old += 1;
            }
        }
        outcome
    }

    /// Counts, with `expected` the number of probes sent if the caller knows it (a pinger
    /// does), else the highest sequence seen + 1 (sequences start at 0; losses after the
    /// last arrival are then invisible).
    pub fn counts(&self, expected: Option<u64>) -> SeqCounts {
        let expected = expected.unwrap_or_else(|| self.highest.map_or(0, |h| h.saturating_add(1)));
        SeqCounts {
            lost: expected.saturating_sub(self.counts.unique),
            ..self.counts
        }
    }

    /// Highest sequence seen.
    pub fn highest(&self) -> Option<u64> {
        self.highest
    }

    /// Word index and bit mask of `seq` in the ring.
    #[inline]
    fn slot(&self, seq: u64) -> (usize, u64) {
        let pos = seq % self.window;
        // pos < window = bits.len() * 64, so the index is in bounds (and fits usize).
        ((pos / WORD_BITS) as usize, 1 << (pos % WORD_BITS))
    }

    fn set(&mut self, seq: u64) {
        self.test_and_set(seq);
    }

    /// Sets `seq`'s bit; whether it was set before.
    fn test_and_set(&mut self, seq: u64) -> bool {
        let (word, mask) = self.slot(seq);
        match self.bits.get_mut(word) {
            Some(w) => {
                let was = *w & mask != 0;
                *w |= mask;
                was
            }
            None => false,
        }
    }

    /// Clears the bits of the `count` sequence numbers after `from` (`from + 1 ..= from +
    /// count`), whose slots still hold numbers a window older: at most `window / 64` words,
    /// the whole ring when `count >= window`.
    fn clear_after(&mut self, from: u64, count: u64) {
        if count >= self.window {
            self.bits.fill(0);
            return;
        }
        let mut pos = from.wrapping_add(1) % self.window;
        let mut left = count;
        while left > 0 {
            let bit = pos % WORD_BITS;
            // The window is a multiple of 64, so a run within one word never wraps the ring.
            let n = left.min(WORD_BITS - bit);
            let mask = if n == WORD_BITS {
                !0
            } else {
                ((1u64 << n) - 1) << bit
            };
            if let Some(w) = self.bits.get_mut((pos / WORD_BITS) as usize) {
                *w &= !mask;
            }
            pos = (pos + n) % self.window;
            left -= n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    fn run(t: &mut SeqTracker, seqs: impl IntoIterator<Item = u64>) -> Vec<SeqOutcome> {
        seqs.into_iter().map(|s| t.observe(s, false)).collect()
    }

    fn counts(received: u64, unique: u64, lost: u64, reordered: u64, duplicated: u64) -> SeqCounts {
        SeqCounts {
            received,
            unique,
            lost,
            reordered,
            duplicated,
            late: 0,
            too_old: 0,
        }
    }

    #[test]
    fn window_rounding() {
        assert_eq!(SeqTracker::new(0).window(), 64);
        assert_eq!(SeqTracker::new(1).window(), 64);
        assert_eq!(SeqTracker::new(64).window(), 64);
        assert_eq!(SeqTracker::new(65).window(), 128);
        assert_eq!(SeqTracker::default().window(), 65536);
        assert_eq!(SeqTracker::default().bits.len() * 8, 8 * 1024, "8 KiB");
    }

    #[test]
    fn empty() {
        let t = SeqTracker::new(64);
        assert_eq!(t.highest(), None);
        assert_eq!(t.counts(None), SeqCounts::default());
        assert_eq!(t.counts(Some(5)).lost, 5);
    }

    #[test]
    fn in_order() {
        let mut t = SeqTracker::new(64);
        let out = run(&mut t, 0..1000);
        assert!(out.iter().all(|o| *o == SeqOutcome::InOrder));
        assert_eq!(t.counts(None), counts(1000, 1000, 0, 0, 0));
        assert_eq!(t.counts(Some(1000)), counts(1000, 1000, 0, 0, 0));
        assert_eq!(t.highest(), Some(999));
    }

    #[test]
    fn drop_k_of_n() {
        let mut t = SeqTracker::new(64);
        // Drop every 7th of 1000 (0, 7, ..., 994: 143 numbers), including the first.
        let out = run(&mut t, (0..1000).filter(|s| s % 7 != 0));
        assert_eq!(out[0], SeqOutcome::Gap(1), "0 skipped before 1");
        assert_eq!(out[6], SeqOutcome::Gap(1), "7 skipped before 8");
        assert_eq!(t.counts(None), counts(857, 857, 143, 0, 0));
        // The last one (999) arrived, so expected = highest + 1 = 1000 sees every loss;
        // a sender that sent 1010 tells us of 10 more.
        assert_eq!(t.counts(Some(1010)), counts(857, 857, 153, 0, 0));
    }

    #[test]
    fn swapped_adjacent_pairs() {
        let mut t = SeqTracker::new(64);
        // 1 0 3 2 5 4 ...: each swap is exactly one reordered arrival.
        let seqs: Vec<u64> = (0..500u64).map(|s| s ^ 1).collect();
        let out = run(&mut t, seqs);
        assert_eq!(out[0], SeqOutcome::Gap(1));
        assert_eq!(out[1], SeqOutcome::Reordered);
        assert_eq!(out[2], SeqOutcome::Gap(1));
        assert_eq!(t.counts(None), counts(500, 500, 0, 250, 0));
    }

    #[test]
    fn repeated_frames() {
        let mut t = SeqTracker::new(64);
        // Every 10th sent twice in a row, every 25th three times: 100 + 25 extra copies.
        let mut seqs = Vec::new();
        for s in 0..1000u64 {
            seqs.push(s);
            if s % 10 == 0 {
                seqs.push(s);
            }
            if s % 25 == 0 {
                seqs.push(s);
                seqs.push(s);
            }
        }
        let out = run(&mut t, seqs.iter().copied());
        assert_eq!(out[1], SeqOutcome::Duplicate);
        // s % 10 == 0: 100 extra; s % 25 == 0: 40 × 2 = 80 extra.
        assert_eq!(t.counts(None), counts(1180, 1000, 0, 0, 180));
    }

    #[test]
    fn combination() {
        let mut t = SeqTracker::new(64);
        // 0 1 [2 lost] 4 3 3 5 6 [7 8 lost] 9 1 (dup, older) 6 (dup) 10 late
        let mut out = run(&mut t, [0, 1, 4, 3, 3, 5, 6, 9, 1, 6]);
        out.push(t.observe(10, true));
        use SeqOutcome::*;
        assert_eq!(
            out,
            [
                InOrder,
                InOrder,
                Gap(2),
                Reordered,
                Duplicate,
                InOrder,
                InOrder,
                Gap(2),
                Duplicate,
                Duplicate,
                InOrder
            ]
        );
        let c = t.counts(None);
        assert_eq!(
            c,
            SeqCounts {
                received: 11,
                unique: 8,
                lost: 3,
                reordered: 1,
                duplicated: 3,
                late: 1,
                too_old: 0,
            }
        );
        // Losses that later arrive are no longer lost.
        assert_eq!(t.observe(2, false), Reordered);
        assert_eq!(t.observe(8, false), Reordered);
        assert_eq!(t.counts(None).lost, 1);
        assert_eq!(t.counts(Some(20)).lost, 10);
    }

    #[test]
    fn huge_forward_jump() {
        let mut t = SeqTracker::new(128);
        run(&mut t, 0..100);
        assert_eq!(t.observe(1 << 40, false), SeqOutcome::Gap((1 << 40) - 100));
        // Every slot was cleared: the numbers just below the jump were never seen.
        for s in (1u64 << 40) - 127..(1 << 40) {
            assert_eq!(t.observe(s, false), SeqOutcome::Reordered, "{s}");
        }
        assert_eq!(t.observe((1 << 40) - 128, false), SeqOutcome::TooOld);
        assert_eq!(
            t.observe(50, false),
            SeqOutcome::TooOld,
            "seen, but too old to tell"
        );
        let c = t.counts(None);
        assert_eq!(c.received, 100 + 1 + 127 + 2);
        assert_eq!(c.unique, c.received, "too-old arrivals count as unique");
        assert_eq!(c.reordered, 129);
        assert_eq!(c.too_old, 2);
        assert_eq!(c.lost, (1 << 40) + 1 - c.unique);
        assert_eq!(t.highest(), Some(1 << 40));

        // A jump to the very top, and arrivals around it, do not overflow.
        assert_eq!(
            t.observe(u64::MAX, false),
            SeqOutcome::Gap(u64::MAX - (1 << 40) - 1)
        );
        assert_eq!(t.observe(u64::MAX, false), SeqOutcome::Duplicate);
        assert_eq!(t.observe(u64::MAX - 1, false), SeqOutcome::Reordered);
        assert_eq!(t.counts(None).lost, u64::MAX - t.counts(None).unique);
    }

    #[test]
    fn jumps_just_within_and_past_the_window() {
        let mut t = SeqTracker::new(64);
        run(&mut t, 0..10);
        // 73 - 9 = 64 = window: every old slot is reused, none may still read as seen.
        assert_eq!(t.observe(73, false), SeqOutcome::Gap(63));
        for s in 10..73 {
            assert_eq!(t.observe(s, false), SeqOutcome::Reordered, "{s}");
        }
        assert_eq!(t.observe(9, false), SeqOutcome::TooOld);
        // A jump of 63 keeps exactly one old number (73) in the window.
        assert_eq!(t.observe(136, false), SeqOutcome::Gap(62));
        assert_eq!(t.observe(73, false), SeqOutcome::Duplicate);
        assert_eq!(
            t.observe(74, false),
            SeqOutcome::Reordered,
            "its slot was cleared"
        );
        assert_eq!(t.observe(72, false), SeqOutcome::TooOld);
    }

    #[test]
    fn too_old() {
        let mut t = SeqTracker::new(64);
        run(&mut t, (0..200).filter(|s| s % 2 == 0));
        // Highest 198: 135 is 63 behind (inside), 134 is 64 behind (outside).
        assert_eq!(t.observe(135, false), SeqOutcome::Reordered);
        assert_eq!(t.observe(135, false), SeqOutcome::Duplicate);
        assert_eq!(t.observe(133, false), SeqOutcome::TooOld);
        assert_eq!(
            t.observe(134, false),
            SeqOutcome::TooOld,
            "a duplicate, but too old to tell"
        );
        let c = t.counts(None);
        assert_eq!(
            c,
            SeqCounts {
                received: 104,
                unique: 103,
                lost: 199 - 103,
                reordered: 3,
                duplicated: 1,
                late: 0,
                too_old: 2,
            }
        );
    }

    #[test]
    fn expected_given_or_not() {
        let mut t = SeqTracker::new(64);
        run(&mut t, [0, 1, 2, 4]);
        assert_eq!(t.counts(None).lost, 1, "3 never came; expected = 5");
        assert_eq!(t.counts(Some(10)).lost, 6, "3 and 5..10");
        assert_eq!(t.counts(Some(2)).lost, 0, "never negative");
        assert_eq!(t.counts(Some(0)).lost, 0);
    }

    #[test]
    fn late_is_counted_apart() {
        let mut t = SeqTracker::new(64);
        t.observe(0, true);
        t.observe(1, false);
        t.observe(1, true);
        let c = t.counts(None);
        assert_eq!(
            (c.received, c.unique, c.late, c.duplicated, c.lost),
            (3, 2, 2, 1, 0)
        );
    }

    /// The reference: a set of every number accepted into the window, and the maximum;
    /// numbers `window` or more behind the maximum are too old, as the tracker defines.
    #[derive(Default)]
    struct Model {
        window: u64,
        seen: HashSet<u64>,
        max: Option<u64>,
        c: SeqCounts,
    }

    impl Model {
        fn observe(&mut self, seq: u64) -> SeqOutcome {
            self.c.received += 1;
            let out = match self.max {
                Some(m) if seq <= m && m - seq >= self.window => {
                    self.c.too_old += 1;
                    self.c.reordered += 1;
                    self.c.unique += 1;
                    return SeqOutcome::TooOld;
                }
                _ if self.seen.contains(&seq) => {
                    self.c.duplicated += 1;
                    return SeqOutcome::Duplicate;
                }
                None if seq == 0 => SeqOutcome::InOrder,
                None => SeqOutcome::Gap(seq),
                Some(m) if seq == m + 1 => SeqOutcome::InOrder,
                Some(m) if seq > m => SeqOutcome::Gap(seq - m - 1),
                Some(_) => {
                    self.c.reordered += 1;
                    SeqOutcome::Reordered
                }
            };
            self.seen.insert(seq);
            self.c.unique += 1;
            self.max = self.max.max(Some(seq));
            out
        }
    }

    /// A window as `new` rounds it, and sequence numbers within one window above `base`.
    fn within_window() -> impl Strategy<Value = (u32, u64, Vec<u64>)> {
        (
            prop_oneof![Just(64u32), Just(128), Just(200)],
            0u64..1 << 48,
        )
            .prop_flat_map(|(w, base)| {
                let rounded = u64::from(w).div_ceil(64) * 64;
                (
                    Just(w),
                    Just(base),
                    proptest::collection::vec(base..base + rounded, 0..600),
                )
            })
    }

    proptest! {
        #[test]
        fn matches_a_set_within_the_window((w, _base, seqs) in within_window(), extra in 0u64..100) {
            let mut t = SeqTracker::new(w);
            let mut seen = HashSet::new();
            let mut max: Option<u64> = None;
            let mut reordered = 0;
            for &s in &seqs {
                let out = t.observe(s, false);
                prop_assert_ne!(out, SeqOutcome::TooOld);
                if !seen.contains(&s) && max.is_some_and(|m| s < m) {
                    reordered += 1;
                }
                seen.insert(s);
                max = max.max(Some(s));
            }
            let unique = seen.len() as u64;
            let received = seqs.len() as u64;
            let c = t.counts(None);
            prop_assert_eq!(c.received, received);
            prop_assert_eq!(c.unique, unique);
            prop_assert_eq!(c.duplicated, received - unique);
            prop_assert_eq!(c.reordered, reordered);
            prop_assert_eq!(c.lost, max.map_or(0, |m| m + 1) - unique);
            prop_assert_eq!(c.too_old, 0);
            let expected = max.map_or(0, |m| m + 1) + extra;
            prop_assert_eq!(t.counts(Some(expected)).lost, expected - unique);
            prop_assert_eq!(t.highest(), max);
        }

        #[test]
        fn matches_the_model_everywhere(w in prop_oneof![Just(64u32), Just(128), Just(100)], seqs in proptest::collection::vec(prop_oneof![0u64..400, 0u64..40, 1000u64..1100], 0..800), late in proptest::collection::vec(any::<bool>(), 800)) {
            // Numbers far apart relative to the window: jumps, wraps and too-old arrivals.
            let mut t = SeqTracker::new(w);
            let mut m = Model { window: t.window(), ..Model::default() };
            let mut lates = 0;
            for (i, &s) in seqs.iter().enumerate() {
                let is_late = late[i];
                lates += u64::from(is_late);
                prop_assert_eq!(t.observe(s, is_late), m.observe(s), "arrival {} of {}", i, s);
            }
            let want = SeqCounts {
                lost: m.max.map_or(0, |x| x + 1).saturating_sub(m.c.unique),
                late: lates,
                ..m.c
            };
            prop_assert_eq!(t.counts(None), want);
        }
    }
}
