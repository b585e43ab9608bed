//! Round-trip time estimation and the retransmission timeout (RFC 6298), in microseconds.
//!
//! The estimator is RFC 6298 §2 with the kernel's constants where Linux differs:
//!
//! | quantity        | RFC 6298                  | here (Linux)                                  |
//! |-----------------|---------------------------|-----------------------------------------------|
//! | initial RTO     | 1 s (§2.1)                | 1 s, `TCP_TIMEOUT_INIT`                       |
//! | minimum RTO     | 1 s, lower allowed (§2.4) | 200 ms, `TCP_RTO_MIN`                         |
//! | maximum RTO     | at least 60 s (§2.5)      | 120 s, `TCP_RTO_MAX`                          |
//! | granularity G   | clock tick                | 1 µs (the kernel's `tcp_mstamp` is in µs)     |
//! | backoff         | double, cap at max (§5.5) | same: `inet_csk_rto_backoff()`                |
//!
//! The formula is the RFC's, `RTO = SRTT + max(G, 4 * RTTVAR)` clamped to
//! `[TCP_RTO_MIN, TCP_RTO_MAX]`. Linux's `tcp_rtt_estimator()` instead floors the variance
//! term itself at `TCP_RTO_MIN` (`rttvar_us = max(mdev, tcp_rto_min_us)`, only letting it
//! decay once per window of data), so on a LAN the kernel's RTO is about `SRTT + 200 ms`
//! where this one is 200 ms. That per-window `mdev_max` tracking is not reproduced.
//!
//! As in the kernel, SRTT is kept scaled by 8 and RTTVAR by 4 (`srtt_us`, `mdev_us`), so
//! alpha = 1/8 and beta = 1/4 are shifts and no precision is lost to the divisions.
//!
//! Karn's rule (RFC 6298 §3) is the caller's: pass samples only for segments that were
//! never retransmitted, or ones measured from a timestamp echo (TSecr, RFC 7323 §4), which
//! is unambiguous even for retransmissions.

/// Initial RTO before any sample: 1 s (RFC 6298 §2.1; the kernel's `TCP_TIMEOUT_INIT` =
/// `1 * HZ` in `include/net/tcp.h`).
pub const RTO_INIT_US: u64 = 1_000_000;
/// Lower bound of the RTO: 200 ms (the kernel's `TCP_RTO_MIN` = `HZ / 5`). RFC 6298 §2.4
/// says 1 s but allows a lower minimum; Linux has used 200 ms since 2.2.
pub const RTO_MIN_US: u64 = 200_000;
/// Upper bound of the RTO, also the cap on backoff: 120 s (the kernel's `TCP_RTO_MAX` =
/// `120 * HZ`; RFC 6298 §2.5 asks for at least 60 s).
pub const RTO_MAX_US: u64 = 120_000_000;
/// Clock granularity G of RFC 6298 §2.2: our clock ticks in microseconds.
pub const CLOCK_GRANULARITY_US: u64 = 1;
/// Window of the minimum-RTT filter: 300 s, the default of the kernel's sysctl
/// `net.ipv4.tcp_min_rtt_wlen` (`tcp_update_rtt_min()` in `net/ipv4/tcp_input.c`).
pub const MIN_RTT_WINDOW_US: u64 = 300_000_000;

/// SRTT is stored times 2^3: alpha = 1/8 (RFC 6298 §2.3) becomes a shift of 3.
const SRTT_SHIFT: u32 = 3;
/// RTTVAR is stored times 2^2: beta = 1/4 (RFC 6298 §2.3) becomes a shift of 2, and the
/// stored value is `K * RTTVAR` with K = 4 (§2.2) directly.
const RTTVAR_SHIFT: u32 = 2;
/// Largest useful backoff shift: `RTO_MIN_US << 10` already exceeds `RTO_MAX_US`, and
/// `RTO_MAX_US << 32` still fits a u64, so shifting by at most 32 never overflows.
const MAX_BACKOFF_SHIFT: u32 = 32;

/// One sample of the windowed-minimum filter: value `v` measured at time `t` (µs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct MinSample {
    t: u64,
    v: u32,
}

/// Kathleen Nichols' windowed minimum, as the kernel's `lib/win_minmax.c`
/// (`minmax_running_min()`): the best, second-best and third-best minimum of the window,
/// their times spread over it, so an expiring minimum is replaced in O(1) without keeping
/// every sample.
#[derive(Debug, Clone, Default)]
struct WindowedMin {
    s: Option<[MinSample; 3]>,
}

impl WindowedMin {
    /// Adds `v` measured at `t`; returns the minimum over the last `win` µs.
    fn update(&mut self, win: u64, t: u64, v: u32) -> u32 {
        let val = MinSample { t, v };
        let s = match &mut self.s {
            // A new minimum, or every kept sample older than the window: start afresh.
            Some(s) if v > s[0].v && t.saturating_sub(s[2].t) <= win => s,
            _ => {
                self.s = Some([val; 3]);
                return v;
            }
        };
        if v <= s[1].v {
            s[1] = val;
            s[2] = val;
        } else if v <= s[2].v {
            s[2] = val;
        }
        // As time passes, promote the 2nd and 3rd choices (minmax_subwin_update()).
        let dt = t.saturating_sub(s[0].t);
        if dt > win {
            // The best sample left the window: shift the others up, and once more if the
            // 2nd choice is outside it too.
            s[0] = s[1];
            s[1] = s[2];
            s[2] = val;
            if t.saturating_sub(s[0].t) > win {
                s[0] = s[1];
                s[1] = s[2];
                s[2] = val;
            }
        } else if s[1].t == s[0].t && dt > win / 4 {
            // A quarter of the window without a 2nd choice: take one from this quarter.
            s[1] = val;
            s[2] = val;
        } else if s[2].t == s[1].t && dt > win / 2 {
            // Half the window without a 3rd choice: take one from the second half.
            s[2] = val;
        }
        s[0].v
    }

    fn get(&self) -> Option<u32> {
        self.s.map(|s| s[0].v)
    }
}

/// RTT estimator and retransmission timer of one connection (RFC 6298).
#[derive(Debug, Clone)]
pub struct RttEstimator {
    /// SRTT << 3, µs; `None` before the first sample.
    srtt8: Option<u64>,
    /// RTTVAR << 2 (= 4 * RTTVAR), µs.
    rttvar4: u64,
    /// Latest sample, µs.
    latest: Option<u32>,
    /// Minimum RTT over the last [`MIN_RTT_WINDOW_US`].
    min_rtt: WindowedMin,
    /// Consecutive expiries since the last valid sample (the kernel's `icsk_backoff`).
    backoffs: u32,
}

impl Default for RttEstimator {
    fn default() -> Self {
        Self::new()
    }
}

impl RttEstimator {
    /// An estimator without samples: RTO is [`RTO_INIT_US`].
    pub fn new() -> Self {
        RttEstimator {
            srtt8: None,
            rttvar4: 0,
            latest: None,
            min_rtt: WindowedMin::default(),
            backoffs: 0,
        }
    }

    /// Takes one RTT measurement `rtt_us` made at `now_us` (RFC 6298 §2.2-2.3) and resets
    /// the backoff (§5.7: a new RTT sample after backing off replaces the doubled RTO).
    /// The caller applies Karn's rule. A zero sample counts as 1 µs, as the kernel's
    /// `tcp_rtt_estimator()` keeps `srtt_us >= 1`.
    pub fn sample(&mut self, rtt_us: u32, now_us: u64) {
        let r = rtt_us.max(1);
        let r64 = r as u64;
        match self.srtt8 {
            None => {
                // §2.2: SRTT <- R, RTTVAR <- R/2 (so 4 * RTTVAR = 2R).
                self.srtt8 = Some(r64 << SRTT_SHIFT);
                self.rttvar4 = r64 << 1;
            }
            Some(srtt8) => {
                // §2.3, RTTVAR first, with the old SRTT:
                // RTTVAR <- 3/4 RTTVAR + 1/4 |SRTT - R'|, SRTT <- 7/8 SRTT + 1/8 R'.
                let srtt = srtt8 >> SRTT_SHIFT;
                let err = srtt.abs_diff(r64);
                self.rttvar4 = self.rttvar4 - (self.rttvar4 >> RTTVAR_SHIFT) + err;
                self.srtt8 = Some(srtt8 - srtt + r64);
            }
        }
        self.latest = Some(r);
        self.min_rtt.update(MIN_RTT_WINDOW_US, now_us, r);
        self.backoffs = 0;
    }

    /// Smoothed RTT (SRTT), µs.
    pub fn srtt_us(&self) -> Option<u32> {
        self.srtt8
            .map(|s| u32::try_from(s >> SRTT_SHIFT).unwrap_or(u32::MAX))
    }

    /// RTT variation (RTTVAR), µs.
    pub fn rttvar_us(&self) -> Option<u32> {
        self.srtt8
            .map(|_| u32::try_from(self.rttvar4 >> RTTVAR_SHIFT).unwrap_or(u32::MAX))
    }

    /// Minimum RTT seen over the last [`MIN_RTT_WINDOW_US`] (300 s, the kernel's
    /// `tcp_min_rtt()` with the default `tcp_min_rtt_wlen`).
    pub fn min_rtt_us(&self) -> Option<u32> {
        self.min_rtt.get()
    }

    /// The latest sample, µs.
    pub fn latest_us(&self) -> Option<u32> {
        self.latest
    }

    /// RTO without backoff: [`RTO_INIT_US`] before a sample, else
    /// `SRTT + max(G, 4 * RTTVAR)` clamped to `[RTO_MIN_US, RTO_MAX_US]` (§2.2-2.5).
    fn base_rto_us(&self) -> u64 {
        match self.srtt8 {
            None => RTO_INIT_US,
            Some(srtt8) => ((srtt8 >> SRTT_SHIFT) + self.rttvar4.max(CLOCK_GRANULARITY_US))
                .clamp(RTO_MIN_US, RTO_MAX_US),
        }
    }

    /// The retransmission timeout with backoff applied: the base RTO doubled per expiry
    /// (RFC 6298 §5.5), capped at [`RTO_MAX_US`] (the kernel's `inet_csk_rto_backoff()`).
    pub fn rto_us(&self) -> u64 {
        let shift = self.backoffs.min(MAX_BACKOFF_SHIFT);
        (self.base_rto_us() << shift).min(RTO_MAX_US)
    }

    /// The timer expired: back off (RFC 6298 §5.5, "RTO <- RTO * 2").
    pub fn backoff(&mut self) {
        self.backoffs = self.backoffs.saturating_add(1);
    }

    /// Forgets the backoff (e.g. an ACK of new data that yields no RTT sample, as the
    /// kernel clears `icsk_backoff` in `tcp_ack()`).
    pub fn reset_backoff(&mut self) {
        self.backoffs = 0;
    }

    /// Expiries since the last sample or reset (the kernel's `icsk_backoff`): what a retry
    /// limit such as `tcp_retries2` counts.
    pub fn backoffs(&self) -> u32 {
        self.backoffs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn initial_rto_is_one_second() {
        let r = RttEstimator::new();
        assert_eq!(r.rto_us(), 1_000_000);
        assert_eq!(r.srtt_us(), None);
        assert_eq!(r.rttvar_us(), None);
        assert_eq!(r.min_rtt_us(), None);
        assert_eq!(r.latest_us(), None);
        assert_eq!(r.backoffs(), 0);
    }

    #[test]
    fn first_sample_formulas() {
        // RFC 6298 §2.2: SRTT = R, RTTVAR = R/2, RTO = SRTT + max(G, 4 RTTVAR) = 3R.
        let mut r = RttEstimator::new();
        r.sample(100_000, 0);
        assert_eq!(r.srtt_us(), Some(100_000));
        assert_eq!(r.rttvar_us(), Some(50_000));
        assert_eq!(r.rto_us(), 300_000);
        assert_eq!(r.latest_us(), Some(100_000));
        assert_eq!(r.min_rtt_us(), Some(100_000));
    }

    #[test]
    fn subsequent_samples_alpha_eighth_beta_quarter() {
        let mut r = RttEstimator::new();
        r.sample(100_000, 0);
        // R' = 200 ms: RTTVAR = 3/4 * 50000 + 1/4 * |100000 - 200000| = 62500;
        // SRTT = 7/8 * 100000 + 1/8 * 200000 = 112500; RTO = 112500 + 4 * 62500.
        r.sample(200_000, 1);
        assert_eq!(r.rttvar_us(), Some(62_500));
        assert_eq!(r.srtt_us(), Some(112_500));
        assert_eq!(r.rto_us(), 362_500);
        assert_eq!(r.latest_us(), Some(200_000));
        assert_eq!(r.min_rtt_us(), Some(100_000));

        // A smaller sample: RTTVAR uses the old SRTT (112500): 3/4 * 62500 + 1/4 * 32500.
        r.sample(80_000, 2);
        assert_eq!(r.rttvar_us(), Some(55_000));
        // SRTT = 7/8 * 112500 + 1/8 * 80000 = 98437.5 + 10000 = 108437 (floor).
        assert_eq!(r.srtt_us(), Some(108_437));
        assert_eq!(r.min_rtt_us(), Some(80_000));
    }

    #[test]
    fn rto_clamped_to_min_and_max() {
        let mut r = RttEstimator::new();
        r.sample(1_000, 0); // 1 ms + 4 * 0.5 ms = 3 ms < 200 ms
        assert_eq!(r.rto_us(), RTO_MIN_US);

        let mut r = RttEstimator::new();
        r.sample(100_000_000, 0); // 100 s + 200 s > 120 s
        assert_eq!(r.rto_us(), RTO_MAX_US);
    }

    #[test]
    fn steady_rtt_converges_to_srtt_plus_granularity() {
        let mut r = RttEstimator::new();
        for i in 0..200 {
            r.sample(300_000, i);
        }
        assert_eq!(r.srtt_us(), Some(300_000));
        assert_eq!(r.rttvar_us(), Some(0));
        // 4 * RTTVAR has decayed to a few µs of fixed-point residue; G = 1 µs floors it.
        let rto = r.rto_us();
        assert!((300_001..=300_004).contains(&rto), "rto {rto}");
    }

    #[test]
    fn zero_sample_counts_as_one_microsecond() {
        let mut r = RttEstimator::new();
        r.sample(0, 0);
        assert_eq!(r.srtt_us(), Some(1));
        assert_eq!(r.latest_us(), Some(1));
        assert_eq!(r.rto_us(), RTO_MIN_US);
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let mut r = RttEstimator::new();
        r.sample(100_000, 0);
        assert_eq!(r.rto_us(), 300_000);
        let mut expect = 300_000u64;
        for n in 1..=12 {
            r.backoff();
            expect = (expect * 2).min(RTO_MAX_US);
            assert_eq!(r.rto_us(), expect, "after {n} backoffs");
            assert_eq!(r.backoffs(), n);
        }
        // 300 ms * 2^9 = 153.6 s: capped from the 9th expiry on.
        assert_eq!(r.rto_us(), RTO_MAX_US);
        // Many more expiries never overflow.
        for _ in 0..1000 {
            r.backoff();
        }
        assert_eq!(r.rto_us(), RTO_MAX_US);
        r.reset_backoff();
        assert_eq!(r.backoffs(), 0);
        assert_eq!(r.rto_us(), 300_000);
    }

    #[test]
    fn initial_rto_backs_off_too() {
        let mut r = RttEstimator::new();
        let seen: Vec<u64> = (0..8)
            .map(|_| {
                r.backoff();
                r.rto_us()
            })
            .collect();
        assert_eq!(seen, [2, 4, 8, 16, 32, 64, 120, 120].map(|s| s * 1_000_000));
    }

    #[test]
    fn new_sample_resets_backoff() {
        let mut r = RttEstimator::new();
        r.sample(100_000, 0);
        r.backoff();
        r.backoff();
        assert_eq!(r.rto_us(), 1_200_000);
        r.sample(100_000, 1);
        assert_eq!(r.backoffs(), 0);
        // RTTVAR decayed to 3/4 * 50000: RTO = 100000 + 4 * 37500.
        assert_eq!(r.rto_us(), 250_000);
    }

    #[test]
    fn min_rtt_expires_after_window() {
        let mut r = RttEstimator::new();
        r.sample(50_000, 0);
        r.sample(80_000, 1_000_000);
        r.sample(90_000, 100_000_000);
        assert_eq!(r.min_rtt_us(), Some(50_000));
        // 302 s on, the 50 ms and 80 ms samples have both left the 300 s window. The
        // filter never kept the 80 ms one (it keeps three choices spread over the window:
        // the 90 ms sample became the 2nd choice after a quarter window), and the 90 ms
        // sample is the true minimum of what is left.
        r.sample(95_000, 302_000_000);
        assert_eq!(r.min_rtt_us(), Some(90_000));
        // A new minimum replaces everything.
        r.sample(10_000, 303_000_000);
        assert_eq!(r.min_rtt_us(), Some(10_000));
        assert_eq!(r.latest_us(), Some(10_000));
    }

    #[test]
    fn min_rtt_keeps_minimum_within_window() {
        let mut r = RttEstimator::new();
        r.sample(40_000, 0);
        for i in 1..100u64 {
            r.sample(60_000 + i as u32, i * 1_000_000);
        }
        assert_eq!(r.min_rtt_us(), Some(40_000));
    }

    proptest! {
        #[test]
        fn rto_always_within_bounds(
            samples in proptest::collection::vec(0u32..200_000_000, 1..50),
            backoffs in 0u32..100,
        ) {
            let mut r = RttEstimator::new();
            for (i, &s) in samples.iter().enumerate() {
                r.sample(s, i as u64 * 1000);
            }
            let lo = samples.iter().map(|&s| s.max(1)).min().unwrap_or(1);
            let hi = samples.iter().copied().max().unwrap_or(1).max(1);
            let srtt = r.srtt_us().unwrap_or(0);
            prop_assert!(srtt >= lo && srtt <= hi, "srtt {} not in [{}, {}]", srtt, lo, hi);
            prop_assert_eq!(r.min_rtt_us(), Some(lo));
            for _ in 0..backoffs {
                r.backoff();
            }
            let rto = r.rto_us();
            prop_assert!((RTO_MIN_US..=RTO_MAX_US).contains(&rto));
        }
    }
}
