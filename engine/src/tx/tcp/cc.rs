//! Congestion control: NewReno and CUBIC, Proportional Rate Reduction during recovery, and
//! the pacing rate, with the window counted in segments as the kernel's `snd_cwnd`.
//!
//! The split follows the kernel's `struct tcp_congestion_ops` and `tcp_ack()`:
//!
//! | event (in `tcp_ack()` order)                  | here                                      | kernel                                        |
//! |-----------------------------------------------|-------------------------------------------|-----------------------------------------------|
//! | an RTT sample for the newly acked data        | [`CongestionControl::on_rtt_sample`]      | `ca_ops->pkts_acked` (CUBIC's HyStart)        |
//! | new data acked, not in recovery               | [`CongestionControl::on_ack`]             | `tcp_cong_avoid()` → `ca_ops->cong_avoid`     |
//! | loss detected by dupacks / SACK               | [`CongestionControl::on_loss`], [`Prr::start`] | `tcp_init_cwnd_reduction()` → `ca_ops->ssthresh` |
//! | each ACK in recovery                          | [`Prr::on_ack`] → [`CongestionControl::set_cwnd`] | `tcp_cwnd_reduction()`                  |
//! | a segment sent in recovery                    | [`Prr::on_sent`]                          | `tp->prr_out += ...` in `tcp_write_xmit()`    |
//! | recovery over (`snd_una >= high_seq`)         | [`CongestionControl::on_recovery_end`]    | `tcp_end_cwnd_reduction()`                    |
//! | retransmission timeout                        | [`CongestionControl::on_rto`]             | `tcp_enter_loss()`                            |
//! | after each ACK                                | [`pacing_rate`]                           | `tcp_update_pacing_rate()`                    |
//!
//! NewReno is RFC 5681 slow start and congestion avoidance as `net/ipv4/tcp_cong.c`
//! implements them (`tcp_slow_start()`, `tcp_cong_avoid_ai()`, `tcp_reno_ssthresh()`);
//! the NewReno part proper (RFC 6582's partial ACKs) lives in loss recovery, not here.
//! CUBIC follows `net/ipv4/tcp_cubic.c` (v2.3) with its time in microseconds throughout,
//! as the kernel's own usec rewrite in `tools/testing/selftests/bpf/progs/bpf_cubic.c`
//! does; the differences are listed on [`Cubic`].
//!
//! Non-goals: undo of spurious reductions (`undo_cwnd`, F-RTO, DSACK undo), ECN's CWR
//! state, the per-route initial window, and `snd_cwnd_clamp`.

use std::fmt;
use std::str::FromStr;

/// Initial window: 10 segments (RFC 6928; the kernel's `TCP_INIT_CWND` in
/// `include/net/tcp.h`).
pub const INIT_CWND: u32 = 10;
/// ssthresh before the first loss: "infinite" (the kernel's `TCP_INFINITE_SSTHRESH` =
/// `0x7fffffff`; RFC 5681 §3.1 allows an arbitrarily high initial ssthresh).
pub const INFINITE_SSTHRESH: u32 = 0x7fff_ffff;
/// Smallest ssthresh a loss sets: 2 segments (RFC 5681 eq. (4), `2*SMSS`; the `max(..., 2U)`
/// of `tcp_reno_ssthresh()` and `cubictcp_recalc_ssthresh()`).
pub const MIN_SSTHRESH: u32 = 2;
/// cwnd after a retransmission timeout: the loss window of 1 segment (RFC 5681 §3.1, "LW";
/// the kernel sets `packets_in_flight + 1`, which is 1 once everything is marked lost).
pub const LOSS_WINDOW: u32 = 1;

/// Which congestion-control algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CcKind {
    /// RFC 5681 slow start and congestion avoidance, halving on loss (the kernel's `reno`).
    NewReno,
    /// CUBIC (RFC 9438) with HyStart, as `net/ipv4/tcp_cubic.c`: Linux's default.
    Cubic,
}

impl CcKind {
    /// The name [`FromStr`] accepts and [`fmt::Display`] prints.
    pub fn name(self) -> &'static str {
        match self {
            CcKind::NewReno => "newreno",
            CcKind::Cubic => "cubic",
        }
    }
}

impl fmt::Display for CcKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A congestion-control name that is none of `newreno`, `reno`, `cubic`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown congestion control {given:?}: expected newreno, reno or cubic")]
pub struct UnknownCc {
    /// What was given.
    pub given: String,
}

impl FromStr for CcKind {
    type Err = UnknownCc;
    /// `newreno` or `reno` (the kernel's name for it), `cubic`; ASCII case ignored.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("newreno") || s.eq_ignore_ascii_case("reno") {
            Ok(CcKind::NewReno)
        } else if s.eq_ignore_ascii_case("cubic") {
            Ok(CcKind::Cubic)
        } else {
            Err(UnknownCc {
                given: s.to_string(),
            })
        }
    }
}

/// A congestion-control algorithm, in segments (the kernel's `struct tcp_congestion_ops`
/// together with the `snd_cwnd` / `snd_ssthresh` / `snd_cwnd_cnt` it drives).
pub trait CongestionControl: fmt::Debug + Send {
    /// Which algorithm this is.
    fn kind(&self) -> CcKind;
    /// Congestion window, segments (`snd_cwnd`).
    fn cwnd(&self) -> u32;
    /// Slow-start threshold, segments (`snd_ssthresh`); [`INFINITE_SSTHRESH`] until the
    /// first reduction (or HyStart's exit).
    fn ssthresh(&self) -> u32;
    /// `cwnd < ssthresh` (the kernel's `tcp_in_slow_start()`).
    fn in_slow_start(&self) -> bool;
    /// New data acknowledged outside recovery (the kernel's cong_avoid, called only when
    /// the connection was cwnd-limited): grows cwnd by slow start then congestion
    /// avoidance. `acked_segs` counts segments newly acked or SACKed (stretch ACKs count
    /// in full, as `tcp_slow_start()` does); `cwnd_limited` is the kernel's
    /// `tcp_is_cwnd_limited()` (the window was full, or in slow start less than half of
    /// it was unused). `min_rtt_us` stands in for CUBIC's own minimum delay when no
    /// [`on_rtt_sample`](Self::on_rtt_sample) has been given.
    fn on_ack(&mut self, acked_segs: u32, now_us: u64, min_rtt_us: Option<u32>, cwnd_limited: bool);
    /// Per-ACK RTT sample hook (CUBIC's HyStart uses it; NewReno ignores it). Call it
    /// before [`on_ack`](Self::on_ack) for the same ACK, with the RTT of the most recently
    /// sent segment the ACK covers, as the kernel's `pkts_acked` gets `ack_sample.rtt_us`.
    fn on_rtt_sample(&mut self, rtt_us: u32, now_us: u64) {
        let _ = (rtt_us, now_us);
    }
    /// The pacing rate last computed by [`pacing_rate`] (the kernel's `sk_pacing_rate`)
    /// and whether segments are really paced (`sk_pacing_status != SK_PACING_NONE`).
    /// CUBIC's HyStart ACK-train threshold uses both (`hystart_ack_delay()`); without
    /// this call it behaves as the kernel does with a zero rate and no pacing.
    fn set_pacing_rate(&mut self, bytes_per_sec: u64, paced: bool) {
        let _ = (bytes_per_sec, paced);
    }
    /// Loss detected by dupacks/SACK: sets ssthresh (the kernel's ssthresh op: NewReno
    /// `max(cwnd/2, 2)`; CUBIC `cwnd*beta` with beta = 717/1024 and fast convergence),
    /// returns the new ssthresh. cwnd during recovery is handled by [`Prr`].
    fn on_loss(&mut self, now_us: u64) -> u32;
    /// Recovery over: cwnd = ssthresh (`tcp_end_cwnd_reduction()`). Only after
    /// [`on_loss`](Self::on_loss): the end of an RTO's loss recovery leaves cwnd where
    /// slow start took it, as the kernel does.
    fn on_recovery_end(&mut self);
    /// RTO: ssthresh as [`on_loss`](Self::on_loss), cwnd = 1 (the loss window), CUBIC
    /// resets its epoch (the kernel's `CA_EVENT_LOSS` / `bictcp_state(TCP_CA_Loss)`). As
    /// `tcp_enter_loss()` (and RFC 5681 §3.1's note on repeated timeouts), ssthresh is
    /// not lowered again when the RTO hits during fast recovery or repeats before any
    /// new data was acknowledged.
    fn on_rto(&mut self, now_us: u64);
    /// Sets cwnd (at least 1), as PRR does during recovery.
    fn set_cwnd(&mut self, cwnd: u32);
    /// The reduction was spurious (every retransmission of the recovery D-SACKed): back
    /// to the window and threshold from before it (`tcp_undo_cwnd_reduction`).
    fn undo(&mut self, prior_cwnd: u32, prior_ssthresh: u32);
}

/// A new congestion controller of `kind`, with cwnd [`INIT_CWND`].
pub fn new_cc(kind: CcKind) -> Box<dyn CongestionControl> {
    match kind {
        CcKind::NewReno => Box::new(NewReno::new()),
        CcKind::Cubic => Box::new(Cubic::new()),
    }
}

/// The window both algorithms grow: `snd_cwnd`, `snd_ssthresh`, `snd_cwnd_cnt`, with the
/// two growth helpers of `net/ipv4/tcp_cong.c`.
#[derive(Debug, Clone)]
struct Window {
    cwnd: u32,
    ssthresh: u32,
    /// Segments acked towards the next +1 in congestion avoidance (`snd_cwnd_cnt`).
    cwnd_cnt: u32,
    /// In fast recovery: [`CongestionControl::on_loss`] seen, recovery not ended.
    in_recovery: bool,
    /// An RTO fired and no new data has been acked since (the kernel's `TCP_CA_Loss`
    /// with `icsk_retransmits != 0`).
    rto_pending: bool,
}

impl Window {
    fn new() -> Self {
        Window {
            cwnd: INIT_CWND,
            ssthresh: INFINITE_SSTHRESH,
            cwnd_cnt: 0,
            in_recovery: false,
            rto_pending: false,
        }
    }

    fn in_slow_start(&self) -> bool {
        self.cwnd < self.ssthresh
    }

    /// What every algorithm does first with an ACK (`tcp_cong_control` before the
    /// algorithm's cong_avoid): new data clears the RTO's pending flag; when cwnd-limited,
    /// slow start takes what it can. Returns the segments left for congestion avoidance,
    /// or `None` when nothing is left to do.
    fn ack_prelude(&mut self, acked_segs: u32, cwnd_limited: bool) -> Option<u32> {
        if acked_segs == 0 {
            return None;
        }
        self.rto_pending = false;
        if !cwnd_limited {
            return None;
        }
        let mut acked = acked_segs;
        if self.in_slow_start() {
            acked = self.slow_start(acked);
        }
        (acked > 0).then_some(acked)
    }

    /// `tcp_slow_start()`: cwnd grows by the segments acked, up to ssthresh; returns the
    /// acked segments left over for congestion avoidance.
    fn slow_start(&mut self, acked: u32) -> u32 {
        let cwnd = self.cwnd.saturating_add(acked).min(self.ssthresh);
        let used = cwnd.saturating_sub(self.cwnd);
        self.cwnd = self.cwnd.max(cwnd);
        acked - used.min(acked)
    }

    /// `tcp_cong_avoid_ai()`: +1 segment per `w` segments acked (w = cwnd is RFC 5681's
    /// one segment per RTT), with credit accumulated at a larger `w` applied gently.
    fn cong_avoid_ai(&mut self, w: u32, acked: u32) {
        let w = w.max(1);
        if self.cwnd_cnt >= w {
            self.cwnd_cnt = 0;
            self.cwnd = self.cwnd.saturating_add(1);
        }
        self.cwnd_cnt = self.cwnd_cnt.saturating_add(acked);
        if self.cwnd_cnt >= w {
            let delta = self.cwnd_cnt / w;
            self.cwnd_cnt -= delta * w;
            self.cwnd = self.cwnd.saturating_add(delta);
        }
    }

    /// Reduction entered (`tcp_init_cwnd_reduction()` clears `snd_cwnd_cnt`).
    fn enter_recovery(&mut self, ssthresh: u32) {
        self.ssthresh = ssthresh;
        self.cwnd_cnt = 0;
        self.in_recovery = true;
    }

    /// `tcp_undo_cwnd_reduction()` with the `undo_cwnd` both algorithms use in the kernel
    /// (`tcp_reno_undo_cwnd`): cwnd back to at least `prior_cwnd`, ssthresh to at least
    /// `prior_ssthresh`, the reduction over.
    fn undo(&mut self, prior_cwnd: u32, prior_ssthresh: u32) {
        self.cwnd = self.cwnd.max(prior_cwnd);
        self.ssthresh = self.ssthresh.max(prior_ssthresh);
        self.in_recovery = false;
    }

    /// `tcp_end_cwnd_reduction()`.
    fn end_recovery(&mut self) {
        if self.in_recovery && self.ssthresh < INFINITE_SSTHRESH {
            self.cwnd = self.ssthresh;
        }
        self.in_recovery = false;
    }

    /// Whether an RTO now should recompute ssthresh (`tcp_enter_loss()`'s condition: not
    /// mid fast recovery, and not a repeated timeout without progress).
    fn rto_recomputes_ssthresh(&self) -> bool {
        !self.in_recovery && !self.rto_pending
    }

    /// The cwnd part of `tcp_enter_loss()`.
    fn enter_loss(&mut self) {
        self.cwnd = LOSS_WINDOW;
        self.cwnd_cnt = 0;
        self.in_recovery = false;
        self.rto_pending = true;
    }

    fn set_cwnd(&mut self, cwnd: u32) {
        self.cwnd = cwnd.max(1);
    }
}

/// `tcp_reno_ssthresh()`: half the window, at least [`MIN_SSTHRESH`].
fn reno_ssthresh(cwnd: u32) -> u32 {
    (cwnd >> 1).max(MIN_SSTHRESH)
}

/// RFC 5681 congestion control as the kernel's `reno` (`tcp_reno_cong_avoid()`).
#[derive(Debug, Clone)]
pub struct NewReno {
    w: Window,
}

impl Default for NewReno {
    fn default() -> Self {
        Self::new()
    }
}

impl NewReno {
    /// cwnd [`INIT_CWND`], ssthresh infinite.
    pub fn new() -> Self {
        NewReno { w: Window::new() }
    }
}

impl CongestionControl for NewReno {
    fn kind(&self) -> CcKind {
        CcKind::NewReno
    }
    fn cwnd(&self) -> u32 {
        self.w.cwnd
    }
    fn ssthresh(&self) -> u32 {
        self.w.ssthresh
    }
    fn in_slow_start(&self) -> bool {
        self.w.in_slow_start()
    }

    fn on_ack(
        &mut self,
        acked_segs: u32,
        _now_us: u64,
        _min_rtt_us: Option<u32>,
        cwnd_limited: bool,
    ) {
        let Some(acked) = self.w.ack_prelude(acked_segs, cwnd_limited) else {
            return;
        };
        // RFC 5681 §3.1 congestion avoidance: +1 segment per cwnd segments acked.
        let cwnd = self.w.cwnd;
        self.w.cong_avoid_ai(cwnd, acked);
    }

    fn on_loss(&mut self, _now_us: u64) -> u32 {
        let ssthresh = reno_ssthresh(self.w.cwnd);
        self.w.enter_recovery(ssthresh);
        ssthresh
    }

    fn on_recovery_end(&mut self) {
        self.w.end_recovery();
    }

    fn on_rto(&mut self, _now_us: u64) {
        if self.w.rto_recomputes_ssthresh() {
            self.w.ssthresh = reno_ssthresh(self.w.cwnd);
        }
        self.w.enter_loss();
    }

    fn set_cwnd(&mut self, cwnd: u32) {
        self.w.set_cwnd(cwnd);
    }

    fn undo(&mut self, prior_cwnd: u32, prior_ssthresh: u32) {
        self.w.undo(prior_cwnd, prior_ssthresh);
    }
}

/// Scale of beta: beta is `BETA / BETA_SCALE` (`BICTCP_BETA_SCALE` in `tcp_cubic.c`).
const BETA_SCALE: u32 = 1024;
/// Multiplicative decrease 717/1024 ≈ 0.7 (`tcp_cubic.c`'s `beta`; RFC 9438 §4.6's
/// beta_cubic = 0.7).
const BETA: u32 = 717;
/// `tcp_cubic.c`'s `bic_scale`: C = `BIC_SCALE * 10 / 1024` = 410/1024 ≈ 0.4 (RFC 9438
/// §5's C = 0.4); the kernel folds in a reference RTT of 100 ms, hence the 10.
const BIC_SCALE: u64 = 41;
/// `cube_rtt_scale` = `bic_scale * 10` = 410, i.e. 1024 * C.
const CUBE_RTT_SCALE: u64 = BIC_SCALE * 10;
/// Time unit of the cubic function: 2^-10 s (`BICTCP_HZ` = 10).
const BICTCP_HZ: u32 = 10;
/// `cube_factor` = 2^(10 + 3*BICTCP_HZ) / (bic_scale * 10) = 2^40 / 410: `K^3 =
/// cube_factor * (W_max - cwnd)` gives K in 2^-10 s units, i.e. RFC 9438 eq. (2)
/// `K = cbrt((W_max - cwnd) / C)`.
const CUBE_FACTOR: u64 = (1u64 << (10 + 3 * BICTCP_HZ)) / CUBE_RTT_SCALE;
/// Reno-friendly estimate step, `tcp_cubic.c`'s `beta_scale` =
/// `8 * (1024 + 717) / 3 / (1024 - 717)` = 15: the estimate grows by one segment per
/// `cwnd * 15 / 8` segments acked, i.e. RFC 9438 §4.3's alpha_cubic = 3(1-β)/(1+β) ≈ 0.53
/// per RTT.
const RENO_BETA_SCALE: u64 =
    8 * (BETA_SCALE as u64 + BETA as u64) / 3 / (BETA_SCALE as u64 - BETA as u64);
/// Microseconds per second.
const USEC_PER_SEC: u64 = 1_000_000;
/// `bictcp_update()` skips the recomputation while cwnd is unchanged for `HZ / 32` jiffies:
/// 1/32 s.
const CUBIC_HOLDOFF_US: u64 = USEC_PER_SEC / 32;
/// ... and recomputes `cnt` at most once per jiffy: 1 ms, a jiffy at `CONFIG_HZ=1000`.
const CUBIC_JIFFY_US: u64 = 1_000;
/// `cubictcp_acked()` ignores delay samples for `HZ` jiffies (1 s) after an epoch starts
/// ("discard delay samples right after fast recovery").
const CUBIC_DELAY_DISCARD_US: u64 = USEC_PER_SEC;
/// With no loss yet (`last_max_cwnd == 0`), `cnt` is at most 20: cwnd grows by at least
/// 5% per RTT while the available bandwidth is unknown.
const CUBIC_FIRST_EPOCH_MAX_CNT: u32 = 20;
/// `cnt` of at least 2: at most one segment per two acked, cwnd at most 1.5x per RTT.
const CUBIC_MIN_CNT: u32 = 2;
/// `cnt` when the target is at or below cwnd: "very small increment" of 1/(100 cwnd).
const CUBIC_TINY_INCREMENT: u32 = 100;
/// HyStart is on (`tcp_cubic.c`'s `hystart = 1`).
const HYSTART: bool = true;
/// HyStart only acts from cwnd 16 on (`hystart_low_window`).
const HYSTART_LOW_WINDOW: u32 = 16;
/// ACKs at most 2 ms apart form a train (`hystart_ack_delta_us`).
const HYSTART_ACK_DELTA_US: u64 = 2_000;
/// Delay detection needs 8 samples in a round (`HYSTART_MIN_SAMPLES`).
const HYSTART_MIN_SAMPLES: u8 = 8;
/// The delay increase that ends slow start: delay_min/8 clamped to [4 ms, 16 ms]
/// (`HYSTART_DELAY_MIN`, `HYSTART_DELAY_MAX`).
const HYSTART_DELAY_MIN_US: u32 = 4_000;
/// See [`HYSTART_DELAY_MIN_US`].
const HYSTART_DELAY_MAX_US: u32 = 16_000;
/// `hystart_ack_delay()` caps its TSO/GRO allowance at 1 ms (`USEC_PER_MSEC`).
const HYSTART_ACK_DELAY_MAX_US: u64 = 1_000;
/// The GSO size `hystart_ack_delay()` allows for: 64 KiB, the kernel's default
/// `sk_gso_max_size` (`GSO_LEGACY_MAX_SIZE`, as `bpf_cubic.c` hard-codes it).
const HYSTART_GSO_MAX_SIZE: u64 = 65_536;

/// Floor of the cube root, exact (the kernel's `cubic_root()` is a table lookup plus one
/// Newton step, within 0.2%).
fn cbrt_floor(a: u64) -> u32 {
    let mut x = (a as f64).cbrt() as u64;
    let cube = |x: u64| (x as u128) * (x as u128) * (x as u128);
    while x > 0 && cube(x) > a as u128 {
        x -= 1;
    }
    while cube(x + 1) <= a as u128 {
        x += 1;
    }
    u32::try_from(x).unwrap_or(u32::MAX)
}

/// CUBIC as `net/ipv4/tcp_cubic.c`, HyStart included, time in microseconds.
///
/// Where it differs from the kernel:
/// - Times are µs, not jiffies: the epoch, `HZ/32` hold-off and once-per-jiffy rate limit
///   (taken as 1 ms, `CONFIG_HZ=1000`), and the 1 s delay-sample discard.
/// - The cube root is exact rather than the kernel's table approximation.
/// - HyStart's round ends when a sample's segment was sent after the round began
///   (`now - rtt > round_start`) instead of `after(snd_una, end_seq)` with `end_seq` the
///   `snd_nxt` of the round's start: the same event, told by time instead of sequence.
/// - The Reno-friendly estimate's loop (`while (ack_cnt > delta)`) is a division with the
///   same result.
/// - No `CA_EVENT_TX_START` epoch shift after idle, no `undo_cwnd`.
#[derive(Debug, Clone)]
pub struct Cubic {
    w: Window,
    /// Increase cwnd by 1 per `cnt` segments acked.
    cnt: u32,
    /// W_max: cwnd before the last reduction (after fast convergence), 0 before any.
    last_max_cwnd: u32,
    /// cwnd at the last `cnt` computation.
    last_cwnd: u32,
    /// When `cnt` was last computed, µs.
    last_time_us: u64,
    /// Origin of the cubic function: W_max, or cwnd when above it.
    origin_point: u32,
    /// K: time from epoch start to the origin point, in 2^-10 s.
    k: u32,
    /// Minimum delay (RTT) seen, µs; 0 = none.
    delay_min_us: u32,
    /// Start of the current epoch (first ACK after a reduction), µs.
    epoch_start_us: Option<u64>,
    /// Segments acked since the Reno-friendly estimate last grew.
    ack_cnt: u32,
    /// The Reno-friendly estimate W_est, segments.
    tcp_cwnd: u32,
    /// HyStart found the slow-start exit point (and set ssthresh).
    found: bool,
    /// HyStart: start of the current round, µs.
    round_start_us: Option<u64>,
    /// HyStart: time of the last ACK of the current train, µs.
    last_ack_us: u64,
    /// HyStart: minimum RTT of the current round, µs.
    curr_rtt_us: u32,
    /// HyStart: delay samples taken this round.
    sample_cnt: u8,
    /// `sk_pacing_rate`, bytes/s (0 = unknown).
    pacing_rate: u64,
    /// `sk_pacing_status != SK_PACING_NONE`.
    paced: bool,
}

impl Default for Cubic {
    fn default() -> Self {
        Self::new()
    }
}

impl Cubic {
    /// cwnd [`INIT_CWND`], ssthresh infinite (HyStart on, so no `initial_ssthresh`).
    pub fn new() -> Self {
        Cubic {
            w: Window::new(),
            cnt: 0,
            last_max_cwnd: 0,
            last_cwnd: 0,
            last_time_us: 0,
            origin_point: 0,
            k: 0,
            delay_min_us: 0,
            epoch_start_us: None,
            ack_cnt: 0,
            tcp_cwnd: 0,
            found: false,
            round_start_us: None,
            last_ack_us: 0,
            curr_rtt_us: u32::MAX,
            sample_cnt: 0,
            pacing_rate: 0,
            paced: false,
        }
    }

    /// `bictcp_reset()`: forget everything but the pacing information.
    fn reset(&mut self) {
        *self = Cubic {
            w: self.w.clone(),
            pacing_rate: self.pacing_rate,
            paced: self.paced,
            ..Cubic::new()
        };
    }

    /// `bictcp_hystart_reset()`: a new HyStart round starts now.
    fn hystart_reset(&mut self, now_us: u64) {
        self.round_start_us = Some(now_us);
        self.last_ack_us = now_us;
        self.curr_rtt_us = u32::MAX;
        self.sample_cnt = 0;
    }

    /// `cubictcp_recalc_ssthresh()`: ends the epoch, remembers W_max (with fast
    /// convergence, RFC 9438 §4.7: a flow releasing bandwidth remembers less) and returns
    /// `cwnd * beta`.
    fn recalc_ssthresh(&mut self) -> u32 {
        let cwnd = self.w.cwnd;
        self.epoch_start_us = None;
        self.last_max_cwnd = if cwnd < self.last_max_cwnd {
            // fast_convergence: W_max = cwnd * (1 + beta) / 2.
            (cwnd as u64 * (BETA_SCALE + BETA) as u64 / (2 * BETA_SCALE) as u64) as u32
        } else {
            cwnd
        };
        ((cwnd as u64 * BETA as u64 / BETA_SCALE as u64) as u32).max(MIN_SSTHRESH)
    }

    /// `hystart_ack_delay()`: allowance for TSO/GRO batching of ACKs, from the pacing rate.
    fn hystart_ack_delay(&self) -> u64 {
        if self.pacing_rate == 0 {
            return 0;
        }
        (HYSTART_GSO_MAX_SIZE * 4 * USEC_PER_SEC / self.pacing_rate).min(HYSTART_ACK_DELAY_MAX_US)
    }

    /// `hystart_update()`: ACK-train and delay-increase detection of the slow-start exit.
    fn hystart_update(&mut self, delay: u32, now_us: u64) {
        // A new round once an ACK covers data sent after this round began.
        let new_round = match self.round_start_us {
            None => true,
            Some(start) => now_us.saturating_sub(delay as u64) > start,
        };
        if new_round {
            self.hystart_reset(now_us);
        }
        let round_start = self.round_start_us.unwrap_or(now_us);
        if self.w.cwnd < HYSTART_LOW_WINDOW {
            return;
        }
        // ACK train: ACKs closely spaced since the round began, for longer than half the
        // minimum delay (the whole of it when paced), mean cwnd has reached about the BDP.
        if now_us.saturating_sub(self.last_ack_us) <= HYSTART_ACK_DELTA_US {
            self.last_ack_us = now_us;
            let mut threshold = self.delay_min_us as u64 + self.hystart_ack_delay();
            if !self.paced {
                threshold >>= 1;
            }
            if now_us.saturating_sub(round_start) > threshold {
                self.found = true;
                self.w.ssthresh = self.w.cwnd;
            }
        }
        // Delay increase: the round's minimum RTT over 8 samples has grown past
        // delay_min + clamp(delay_min / 8, 4 ms, 16 ms).
        self.curr_rtt_us = self.curr_rtt_us.min(delay);
        if self.sample_cnt < HYSTART_MIN_SAMPLES {
            self.sample_cnt += 1;
        } else {
            let thresh = (self.delay_min_us >> 3).clamp(HYSTART_DELAY_MIN_US, HYSTART_DELAY_MAX_US);
            if self.curr_rtt_us > self.delay_min_us.saturating_add(thresh) {
                self.found = true;
                self.w.ssthresh = self.w.cwnd;
            }
        }
    }

    /// `bictcp_update()`: recomputes `cnt` (segments acked per +1) from the cubic function
    /// one `delay_min` ahead, bounded by the Reno-friendly estimate and the 1.5x/RTT cap.
    fn update(&mut self, acked: u32, now_us: u64, delay_min_us: u32) {
        let cwnd = self.w.cwnd;
        self.ack_cnt = self.ack_cnt.saturating_add(acked);

        if self.last_cwnd == cwnd && now_us.saturating_sub(self.last_time_us) <= CUBIC_HOLDOFF_US {
            return;
        }
        let recompute = self.epoch_start_us.is_none()
            || now_us.saturating_sub(self.last_time_us) >= CUBIC_JIFFY_US;
        if recompute {
            self.last_cwnd = cwnd;
            self.last_time_us = now_us;
            let epoch_start = match self.epoch_start_us {
                Some(e) => e,
                None => {
                    // A new epoch: the first ACK after a reduction.
                    self.epoch_start_us = Some(now_us);
                    self.ack_cnt = acked;
                    self.tcp_cwnd = cwnd;
                    if self.last_max_cwnd <= cwnd {
                        self.k = 0;
                        self.origin_point = cwnd;
                    } else {
                        let dw = (self.last_max_cwnd - cwnd) as u64;
                        self.k = cbrt_floor(CUBE_FACTOR.saturating_mul(dw));
                        self.origin_point = self.last_max_cwnd;
                    }
                    now_us
                }
            };

            // t: time since the epoch plus one minimum RTT, in 2^-10 s.
            let t_us = now_us
                .saturating_sub(epoch_start)
                .saturating_add(delay_min_us as u64);
            let t = ((t_us as u128) << BICTCP_HZ) / USEC_PER_SEC as u128;
            let k = self.k as u128;
            let offs = t.abs_diff(k);
            // C * (t - K)^3 in segments: (410 * offs^3) >> (10 + 3 * 10).
            let delta = (CUBE_RTT_SCALE as u128)
                .saturating_mul(offs.saturating_mul(offs).saturating_mul(offs))
                >> (10 + 3 * BICTCP_HZ);
            let delta = u64::try_from(delta).unwrap_or(u64::MAX);
            let origin = self.origin_point as u64;
            let target = if t < k {
                origin.saturating_sub(delta)
            } else {
                origin.saturating_add(delta)
            };
            let cwnd64 = cwnd as u64;
            self.cnt = if target > cwnd64 {
                u32::try_from(cwnd64 / (target - cwnd64)).unwrap_or(u32::MAX)
            } else {
                cwnd.saturating_mul(CUBIC_TINY_INCREMENT)
            };
            if self.last_max_cwnd == 0 {
                self.cnt = self.cnt.min(CUBIC_FIRST_EPOCH_MAX_CNT);
            }
        }

        // TCP friendliness (RFC 9438 §4.3): grow the Reno estimate by one per
        // cwnd * 15/8 acked, and go at least as fast as it.
        let step = u32::try_from((cwnd as u64 * RENO_BETA_SCALE) >> 3).unwrap_or(u32::MAX);
        if step > 0 && self.ack_cnt > step {
            // Same as subtracting `step` while `ack_cnt > step`.
            let n = (self.ack_cnt - 1) / step;
            self.ack_cnt -= n * step;
            self.tcp_cwnd = self.tcp_cwnd.saturating_add(n);
        }
        if self.tcp_cwnd > cwnd {
            let max_cnt = cwnd / (self.tcp_cwnd - cwnd);
            self.cnt = self.cnt.min(max_cnt);
        }
        self.cnt = self.cnt.max(CUBIC_MIN_CNT);
    }
}

impl CongestionControl for Cubic {
    fn kind(&self) -> CcKind {
        CcKind::Cubic
    }
    fn cwnd(&self) -> u32 {
        self.w.cwnd
    }
    fn ssthresh(&self) -> u32 {
        self.w.ssthresh
    }
    fn in_slow_start(&self) -> bool {
        self.w.in_slow_start()
    }

    /// `cubictcp_cong_avoid()`.
    fn on_ack(
        &mut self,
        acked_segs: u32,
        now_us: u64,
        min_rtt_us: Option<u32>,
        cwnd_limited: bool,
    ) {
        let Some(acked) = self.w.ack_prelude(acked_segs, cwnd_limited) else {
            return;
        };
        let delay_min = if self.delay_min_us > 0 {
            self.delay_min_us
        } else {
            min_rtt_us.unwrap_or(0)
        };
        self.update(acked, now_us, delay_min);
        let cnt = self.cnt;
        self.w.cong_avoid_ai(cnt, acked);
    }

    /// `cubictcp_acked()`.
    fn on_rtt_sample(&mut self, rtt_us: u32, now_us: u64) {
        if let Some(epoch) = self.epoch_start_us {
            if now_us.saturating_sub(epoch) < CUBIC_DELAY_DISCARD_US {
                return;
            }
        }
        let delay = rtt_us.max(1);
        if self.delay_min_us == 0 || self.delay_min_us > delay {
            self.delay_min_us = delay;
        }
        if HYSTART && !self.found && self.w.in_slow_start() {
            self.hystart_update(delay, now_us);
        }
    }

    fn set_pacing_rate(&mut self, bytes_per_sec: u64, paced: bool) {
        self.pacing_rate = bytes_per_sec;
        self.paced = paced;
    }

    fn on_loss(&mut self, _now_us: u64) -> u32 {
        let ssthresh = self.recalc_ssthresh();
        self.w.enter_recovery(ssthresh);
        ssthresh
    }

    fn on_recovery_end(&mut self) {
        self.w.end_recovery();
    }

    fn on_rto(&mut self, now_us: u64) {
        if self.w.rto_recomputes_ssthresh() {
            self.w.ssthresh = self.recalc_ssthresh();
        }
        self.w.enter_loss();
        // cubictcp_state(TCP_CA_Loss): bictcp_reset() and a new HyStart round.
        self.reset();
        self.hystart_reset(now_us);
    }

    fn set_cwnd(&mut self, cwnd: u32) {
        self.w.set_cwnd(cwnd);
    }

    fn undo(&mut self, prior_cwnd: u32, prior_ssthresh: u32) {
        self.w.undo(prior_cwnd, prior_ssthresh);
    }
}

/// Proportional Rate Reduction (RFC 6937; the kernel's tcp_cwnd_reduction with the SSRB
/// bound): state for one recovery episode.
///
/// While more than ssthresh is in flight, PRR sends in proportion to what was delivered,
/// `ceil(prr_delivered * ssthresh / RecoverFS) - prr_out`, so the window comes down to
/// ssthresh smoothly over one RTT; below ssthresh it sends what is delivered plus one
/// (the slow-start reduction bound, PRR-SSRB), catching up to ssthresh. RecoverFS is the
/// cwnd before the reduction (the kernel's `prior_cwnd`; RFC 6937 takes the flight size,
/// the same when the sender was cwnd-limited).
#[derive(Debug, Clone, Default)]
pub struct Prr {
    /// ssthresh at the start of recovery.
    ssthresh: u32,
    /// RecoverFS, segments (at least 1).
    recover_fs: u32,
    /// Segments delivered (acked or SACKed) since recovery began.
    prr_delivered: u32,
    /// Segments sent (new or retransmitted) since recovery began.
    prr_out: u32,
    /// The cwnd last returned (the prior cwnd before the first ACK).
    cwnd: u32,
}

impl Prr {
    /// Recovery begins (`tcp_init_cwnd_reduction()`): `ssthresh` as the congestion control
    /// just set it, `prior_cwnd` the window before the loss, `in_flight` the segments in
    /// flight now (used as RecoverFS only if `prior_cwnd` is 0).
    pub fn start(ssthresh: u32, prior_cwnd: u32, in_flight: u32) -> Self {
        let recover_fs = if prior_cwnd > 0 {
            prior_cwnd
        } else {
            in_flight
        };
        Prr {
            ssthresh,
            recover_fs: recover_fs.max(1),
            prr_delivered: 0,
            prr_out: 0,
            cwnd: prior_cwnd.max(1),
        }
    }

    /// After each ACK in recovery: delivered = segments newly acked or sacked; returns the
    /// cwnd to use (in_flight + sndcnt). This is RFC 6937's PRR-SSRB, which adds one
    /// segment on every ACK below ssthresh; see [`Prr::on_ack_safe`] for the kernel's
    /// refinement.
    pub fn on_ack(&mut self, delivered: u32, in_flight: u32, ssthresh: u32) -> u32 {
        self.on_ack_safe(delivered, in_flight, ssthresh, true)
    }

    /// [`Prr::on_ack`] with the kernel's (and RFC 9937's) condition on the extra segment:
    /// `safe_ack` is "this ACK advanced snd_una and marked nothing newly lost"
    /// (`FLAG_SND_UNA_ADVANCED && !newly_lost`); without it the bound is conservative
    /// (PRR-CRB, packet conservation).
    pub fn on_ack_safe(
        &mut self,
        delivered: u32,
        in_flight: u32,
        ssthresh: u32,
        safe_ack: bool,
    ) -> u32 {
        if delivered == 0 {
            // The kernel returns without touching cwnd.
            return self.cwnd;
        }
        self.prr_delivered = self.prr_delivered.saturating_add(delivered);
        let delivered_total = self.prr_delivered as i64;
        let out = self.prr_out as i64;
        let delta = ssthresh as i64 - in_flight as i64;
        let mut sndcnt = if delta < 0 {
            // Proportional rate reduction: CEIL(prr_delivered * ssthresh / RecoverFS).
            let fs = self.recover_fs as i64;
            (ssthresh as i64 * delivered_total + fs - 1) / fs - out
        } else {
            let mut limit = (delivered_total - out).max(delivered as i64);
            if safe_ack {
                limit += 1;
            }
            delta.min(limit)
        };
        // Force a fast retransmit upon entering recovery.
        sndcnt = sndcnt.max(if self.prr_out > 0 { 0 } else { 1 });
        let cwnd = (in_flight as i64 + sndcnt).clamp(1, u32::MAX as i64);
        self.cwnd = cwnd as u32;
        self.cwnd
    }

    /// `segs` segments (new or retransmitted) were sent during recovery.
    pub fn on_sent(&mut self, segs: u32) {
        self.prr_out = self.prr_out.saturating_add(segs);
    }

    /// Segments delivered since recovery began (`prr_delivered`).
    pub fn delivered(&self) -> u32 {
        self.prr_delivered
    }

    /// Segments sent since recovery began (`prr_out`).
    pub fn sent(&self) -> u32 {
        self.prr_out
    }

    /// ssthresh given to [`Prr::start`].
    pub fn ssthresh(&self) -> u32 {
        self.ssthresh
    }
}

/// Pacing ratio in slow start, percent (sysctl `net.ipv4.tcp_pacing_ss_ratio` = 200).
pub const PACING_SS_RATIO: u64 = 200;
/// Pacing ratio in congestion avoidance, percent (sysctl `net.ipv4.tcp_pacing_ca_ratio` =
/// 120).
pub const PACING_CA_RATIO: u64 = 120;

/// The pacing rate the kernel's tcp_update_pacing_rate derives: cwnd*mss/srtt scaled by
/// 200% in slow start (sysctl tcp_pacing_ss_ratio) and 120% in congestion avoidance
/// (tcp_pacing_ca_ratio), in bytes per second.
///
/// Without an srtt (`srtt_us == 0`) there is nothing to derive a rate from, and this
/// returns `u64::MAX`: unlimited, as the kernel leaves the rate at `sk_max_pacing_rate`
/// (`~0UL` by default). The kernel's own `slow_start` test is `cwnd < ssthresh / 2`, not
/// `cwnd < ssthresh`: near the end of slow start it already uses the CA ratio. It also
/// multiplies by `max(cwnd, packets_out)`; pass that as `cwnd` to match.
pub fn pacing_rate(cwnd: u32, mss: u32, srtt_us: u32, slow_start: bool) -> u64 {
    if srtt_us == 0 {
        return u64::MAX;
    }
    let ratio = if slow_start {
        PACING_SS_RATIO
    } else {
        PACING_CA_RATIO
    };
    // mss * cwnd / srtt bytes per µs, times 10^6 µs/s, times ratio / 100.
    let rate =
        mss as u128 * cwnd as u128 * ratio as u128 * (USEC_PER_SEC / 100) as u128 / srtt_us as u128;
    u64::try_from(rate).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One RTT of ACKs for a cwnd-limited sender: as many single-segment ACKs as cwnd was
    /// at the round's start, spread evenly over `rtt_us` from `*now`.
    fn round(cc: &mut dyn CongestionControl, now: &mut u64, rtt_us: u64, per_ack: u32) {
        let acks = cc.cwnd().div_ceil(per_ack).max(1);
        let gap = rtt_us / acks as u64;
        for _ in 0..acks {
            *now += gap;
            cc.on_ack(per_ack, *now, Some(rtt_us as u32), true);
        }
    }

    #[test]
    fn kind_parse_and_display() {
        assert_eq!("newreno".parse::<CcKind>(), Ok(CcKind::NewReno));
        assert_eq!("reno".parse::<CcKind>(), Ok(CcKind::NewReno));
        assert_eq!("CUBIC".parse::<CcKind>(), Ok(CcKind::Cubic));
        assert_eq!(
            "bbr".parse::<CcKind>(),
            Err(UnknownCc {
                given: "bbr".to_string()
            })
        );
        assert_eq!(CcKind::NewReno.to_string(), "newreno");
        assert_eq!(CcKind::Cubic.to_string(), "cubic");
        for kind in [CcKind::NewReno, CcKind::Cubic] {
            let cc = new_cc(kind);
            assert_eq!(cc.kind(), kind);
            assert_eq!(cc.cwnd(), INIT_CWND);
            assert_eq!(cc.ssthresh(), INFINITE_SSTHRESH);
            assert!(cc.in_slow_start());
        }
    }

    #[test]
    fn constants_derive() {
        assert_eq!(RENO_BETA_SCALE, 15);
        assert_eq!(CUBE_RTT_SCALE, 410);
        assert_eq!(CUBE_FACTOR, (1u64 << 40) / 410);
    }

    #[test]
    fn slow_start_doubles_per_rtt() {
        for kind in [CcKind::NewReno, CcKind::Cubic] {
            let mut cc = new_cc(kind);
            let mut now = 0;
            let mut seen = vec![cc.cwnd()];
            for _ in 0..5 {
                round(cc.as_mut(), &mut now, 100_000, 1);
                seen.push(cc.cwnd());
            }
            assert_eq!(seen, [10, 20, 40, 80, 160, 320], "{kind}");
        }
    }

    #[test]
    fn stretch_acks_count_in_full() {
        let mut cc = NewReno::new();
        let mut now = 0;
        round(&mut cc, &mut now, 100_000, 2);
        assert_eq!(cc.cwnd(), 20);
    }

    #[test]
    fn not_cwnd_limited_does_not_grow() {
        let mut cc = NewReno::new();
        cc.on_ack(5, 1, None, false);
        assert_eq!(cc.cwnd(), INIT_CWND);
    }

    #[test]
    fn slow_start_leftover_goes_to_congestion_avoidance() {
        let mut w = Window::new();
        w.cwnd = 8;
        w.ssthresh = 10;
        assert_eq!(w.slow_start(5), 3);
        assert_eq!(w.cwnd, 10);
        w.cong_avoid_ai(10, 3);
        assert_eq!((w.cwnd, w.cwnd_cnt), (10, 3));
        w.cong_avoid_ai(10, 7);
        assert_eq!((w.cwnd, w.cwnd_cnt), (11, 0));
        // A stretch ACK of two windows' worth adds 2 at once.
        w.cong_avoid_ai(11, 22);
        assert_eq!((w.cwnd, w.cwnd_cnt), (13, 0));
    }

    #[test]
    fn newreno_loss_halves_and_ca_adds_one_per_rtt() {
        let mut cc = NewReno::new();
        cc.set_cwnd(20);
        assert_eq!(cc.on_loss(0), 10);
        assert_eq!(cc.ssthresh(), 10);
        assert_eq!(cc.cwnd(), 20, "cwnd in recovery is PRR's business");
        cc.on_recovery_end();
        assert_eq!(cc.cwnd(), 10);
        assert!(!cc.in_slow_start());
        let mut now = 0;
        let mut seen = vec![cc.cwnd()];
        for _ in 0..5 {
            round(&mut cc, &mut now, 100_000, 1);
            seen.push(cc.cwnd());
        }
        assert_eq!(seen, [10, 11, 12, 13, 14, 15]);
        // Floor of 2 segments.
        cc.set_cwnd(3);
        assert_eq!(cc.on_loss(now), 2);
    }

    #[test]
    fn rto_collapses_to_loss_window() {
        for kind in [CcKind::NewReno, CcKind::Cubic] {
            let mut cc = new_cc(kind);
            cc.set_cwnd(100);
            cc.on_rto(1_000_000);
            // CUBIC: 100 * 717 / 1024 = 70; Reno: 100 / 2.
            let expect = if kind == CcKind::Cubic { 70 } else { 50 };
            assert_eq!((cc.cwnd(), cc.ssthresh()), (1, expect), "{kind}");
            // A second expiry before any progress keeps ssthresh (RFC 5681 §3.1).
            cc.on_rto(2_000_000);
            assert_eq!((cc.cwnd(), cc.ssthresh()), (1, expect), "{kind}");
            // Slow start from 1: 1, 2, 4, 8.
            let mut now = 3_000_000;
            for want in [2, 4, 8] {
                round(cc.as_mut(), &mut now, 10_000, 1);
                assert_eq!(cc.cwnd(), want, "{kind}");
            }
            // Progress was made: a new RTO halves again, from cwnd 8.
            cc.on_rto(now);
            let expect = if kind == CcKind::Cubic { 5 } else { 4 };
            assert_eq!((cc.cwnd(), cc.ssthresh()), (1, expect), "{kind}");
        }
    }

    #[test]
    fn rto_during_recovery_keeps_ssthresh() {
        let mut cc = NewReno::new();
        cc.set_cwnd(100);
        assert_eq!(cc.on_loss(0), 50);
        cc.set_cwnd(60);
        cc.on_rto(1_000_000);
        assert_eq!((cc.cwnd(), cc.ssthresh()), (1, 50));
        // The RTO ended the fast recovery: no jump to ssthresh.
        cc.on_recovery_end();
        assert_eq!(cc.cwnd(), 1);
    }

    #[test]
    fn cubic_rto_resets_state() {
        let mut cc = Cubic::new();
        cc.on_rtt_sample(10_000, 0);
        cc.set_cwnd(100);
        cc.on_loss(0);
        cc.on_recovery_end();
        cc.on_ack(1, 10_000, None, true);
        assert!(cc.epoch_start_us.is_some());
        assert_eq!(cc.last_max_cwnd, 100);
        cc.on_rto(5_000_000);
        assert_eq!(cc.epoch_start_us, None);
        assert_eq!(cc.last_max_cwnd, 0);
        assert_eq!(cc.delay_min_us, 0);
        assert!(!cc.found);
        assert_eq!(cc.round_start_us, Some(5_000_000));
    }

    #[test]
    fn cubic_reduction_and_fast_convergence() {
        let mut cc = Cubic::new();
        cc.set_cwnd(100);
        // ssthresh = 100 * 717 / 1024 = 70.02 -> 70; W_max = 100.
        assert_eq!(cc.on_loss(0), 70);
        assert_eq!(cc.last_max_cwnd, 100);
        cc.on_recovery_end();
        assert_eq!(cc.cwnd(), 70);
        // Loss again below W_max: fast convergence remembers cwnd * (1 + 0.7) / 2.
        cc.set_cwnd(90);
        assert_eq!(cc.on_loss(0), 90 * 717 / 1024);
        assert_eq!(cc.last_max_cwnd, 90 * 1741 / 2048);
        assert_eq!(cc.last_max_cwnd, 76);
        // At or above W_max: no fast convergence.
        cc.set_cwnd(200);
        cc.on_loss(0);
        assert_eq!(cc.last_max_cwnd, 200);
        // Floor of 2.
        cc.set_cwnd(2);
        assert_eq!(cc.on_loss(0), 2);
    }

    #[test]
    fn cubic_k_matches_rfc9438() {
        for w_max in [100u32, 1000, 10_000, 100_000] {
            let mut cc = Cubic::new();
            cc.set_cwnd(w_max);
            cc.on_loss(0);
            cc.on_recovery_end();
            cc.on_ack(1, 1_000, Some(10_000), true);
            let k_kernel = cc.k as f64 / 1024.0;
            // RFC 9438 eq. (2) with C = 0.4, beta_cubic = 0.7, cwnd_epoch = W_max * 0.7.
            let k_rfc = (w_max as f64 * (1.0 - 0.7) / 0.4).cbrt();
            let err = (k_kernel - k_rfc).abs() / k_rfc;
            assert!(err < 0.01, "W_max {w_max}: K {k_kernel} vs RFC {k_rfc}");
        }
        assert_eq!(cbrt_floor(0), 0);
        assert_eq!(cbrt_floor(26), 2);
        assert_eq!(cbrt_floor(27), 3);
        assert_eq!(cbrt_floor(u64::MAX), 2_642_245);
    }

    #[test]
    fn cubic_curve_concave_then_convex() {
        // 100 ms RTT keeps the Reno-friendly estimate (0.53 segments per RTT) below the
        // cubic curve throughout, so this is the cubic function alone.
        const RTT: u64 = 100_000;
        const W_MAX: u32 = 1000;
        let mut cc = Cubic::new();
        cc.on_rtt_sample(RTT as u32, 0);
        cc.set_cwnd(W_MAX);
        assert_eq!(cc.on_loss(0), 700);
        cc.on_recovery_end();
        let mut now = 1_000;
        // Sample cwnd once per RTT for 16 s.
        let mut curve = vec![(0u64, cc.cwnd())];
        while now < 16_000_000 {
            round(&mut cc, &mut now, RTT, 1);
            curve.push((now, cc.cwnd()));
        }
        let epoch = cc.epoch_start_us.expect("epoch started");
        let k_us = cc.k as u64 * USEC_PER_SEC / 1024;
        assert!((9_000_000..9_200_000).contains(&k_us), "K {k_us} µs");
        let at = |t_us: u64| {
            curve
                .iter()
                .find(|(t, _)| *t >= epoch + t_us)
                .map(|&(_, c)| c)
                .expect("curve covers t")
        };
        // The target is computed one RTT ahead, so cwnd reaches W_max around K - RTT.
        let plateau = at(k_us);
        assert!(plateau.abs_diff(W_MAX) <= 5, "cwnd at K: {plateau}");
        // Concave: growth slows as cwnd approaches W_max ...
        let g1 = at(2_000_000) - at(0);
        let g2 = at(4_000_000) - at(2_000_000);
        let g3 = at(k_us - 1_000_000) - at(k_us - 3_000_000);
        assert!(g1 > g2 && g2 > g3, "concave growth {g1} {g2} {g3}");
        // ... then convex past K.
        let h1 = at(k_us + 2_000_000) - at(k_us);
        let h2 = at(k_us + 4_000_000) - at(k_us + 2_000_000);
        let h3 = at(k_us + 6_000_000) - at(k_us + 4_000_000);
        assert!(h1 < h2 && h2 < h3, "convex growth {h1} {h2} {h3}");
        // And close to W(t) = C (t - K)^3 + W_max at t = K + 6 s (+1 RTT of lookahead).
        let t = (6_000_000 + RTT) as f64 / 1e6;
        let w_rfc = 0.4 * t * t * t + W_MAX as f64;
        let w = at(k_us + 6_000_000) as f64;
        assert!(
            (w - w_rfc).abs() / w_rfc < 0.05,
            "cwnd {w} vs W_cubic {w_rfc}"
        );
        // Never faster than 1.5x per RTT.
        for pair in curve.windows(2) {
            assert!(pair[1].1 as f64 <= pair[0].1 as f64 * 1.5 + 1.0);
        }
    }

    #[test]
    fn cubic_reno_friendly_region() {
        // At 10 ms RTT the cubic curve is below the Reno estimate, which then drives
        // growth at about 0.53 segments per RTT (RFC 9438 §4.3).
        const RTT: u64 = 10_000;
        let mut cc = Cubic::new();
        cc.on_rtt_sample(RTT as u32, 0);
        cc.set_cwnd(100);
        cc.on_loss(0);
        cc.on_recovery_end();
        let mut now = 1_000;
        for _ in 0..100 {
            round(&mut cc, &mut now, RTT, 1);
        }
        // After 1 s the cubic curve alone is at 100 - 0.4 * (4.2 - 1)^3 ≈ 87; the Reno
        // estimate at 70 + 100 * 0.53 = 123.
        let cwnd = cc.cwnd();
        assert!((110..=130).contains(&cwnd), "cwnd {cwnd}");
    }

    #[test]
    fn cubic_first_epoch_grows_at_least_five_percent() {
        let mut cc = Cubic::new();
        cc.set_cwnd(100);
        cc.on_rto(0); // ssthresh 70, W_max forgotten
        let mut now = 0;
        while cc.in_slow_start() {
            round(&mut cc, &mut now, 10_000, 1);
        }
        let before = cc.cwnd();
        round(&mut cc, &mut now, 10_000, 1);
        assert!(
            cc.cwnd() >= before + before / 20,
            "{before} -> {}",
            cc.cwnd()
        );
    }

    #[test]
    fn hystart_ack_train_exits_slow_start() {
        let mut cc = Cubic::new();
        cc.set_cwnd(32);
        // ACKs 1 ms apart, RTT 10 ms: the train passes delay_min / 2 = 5 ms.
        let mut exit = None;
        for i in 0..10u64 {
            let now = 100_000 + i * 1_000;
            cc.on_rtt_sample(10_000, now);
            if cc.found && exit.is_none() {
                exit = Some(i);
            }
        }
        assert_eq!(exit, Some(6), "train of 6 ms > 5 ms");
        assert_eq!(cc.ssthresh(), 32);
        assert!(!cc.in_slow_start());
    }

    #[test]
    fn hystart_ack_train_when_paced_needs_full_delay_min() {
        let mut cc = Cubic::new();
        cc.set_cwnd(32);
        // Paced at 1 GB/s: threshold = 10 ms + 65536 * 4 / 1000 µs, not halved; the round
        // (10 ms) ends before the train is that long.
        cc.set_pacing_rate(1_000_000_000, true);
        assert_eq!(cc.hystart_ack_delay(), 262);
        for i in 0..40u64 {
            cc.on_rtt_sample(10_000, 100_000 + i * 1_000);
        }
        assert!(!cc.found);
        assert!(cc.in_slow_start());
    }

    #[test]
    fn hystart_below_low_window_does_nothing() {
        let mut cc = Cubic::new();
        for i in 0..40u64 {
            cc.on_rtt_sample(10_000 + i as u32 * 1_000, i * 1_000);
        }
        assert!(!cc.found);
        assert_eq!(cc.ssthresh(), INFINITE_SSTHRESH);
    }

    #[test]
    fn hystart_delay_increase_exits_slow_start() {
        let mut cc = Cubic::new();
        cc.set_cwnd(64);
        // ACKs 2.5 ms apart (no train), RTT 40 ms: a round holds 16 samples.
        let mut now = 0;
        for _ in 0..20 {
            now += 2_500;
            cc.on_rtt_sample(40_000, now);
        }
        assert!(!cc.found);
        assert_eq!(cc.delay_min_us, 40_000);
        // The queue builds: 50 ms > 40 ms + clamp(5 ms, 4, 16) = 45 ms. Detection after
        // 8 samples of a fresh round.
        let mut n = 0;
        while !cc.found && n < 40 {
            now += 2_500;
            cc.on_rtt_sample(50_000, now);
            n += 1;
        }
        assert!(cc.found, "no exit after {n} samples");
        assert_eq!(cc.ssthresh(), 64);
        // 44 ms would not have triggered (below 45 ms).
        let mut cc2 = Cubic::new();
        cc2.set_cwnd(64);
        let mut now = 0;
        for _ in 0..20 {
            now += 2_500;
            cc2.on_rtt_sample(40_000, now);
        }
        for _ in 0..40 {
            now += 2_500;
            cc2.on_rtt_sample(44_000, now);
        }
        assert!(!cc2.found);
    }

    #[test]
    fn cubic_discards_delay_samples_after_epoch_start() {
        let mut cc = Cubic::new();
        cc.on_rtt_sample(10_000, 0);
        cc.set_cwnd(100);
        cc.on_loss(0);
        cc.on_recovery_end();
        cc.on_ack(1, 1_000_000, None, true); // epoch starts
        cc.on_rtt_sample(5_000, 1_500_000);
        assert_eq!(cc.delay_min_us, 10_000);
        cc.on_rtt_sample(5_000, 2_000_000);
        assert_eq!(cc.delay_min_us, 5_000);
    }

    /// Runs PRR over an RFC 6937 §5-style episode: cwnd 20, one segment lost, every ACK
    /// delivers one segment and the sender sends all PRR allows. Returns (sent per ACK,
    /// pipe after each ACK).
    fn prr_episode(ssthresh: u32, acks: usize) -> (Vec<u32>, Vec<u32>) {
        let mut pipe = 19u32; // 20 outstanding, 1 lost
        let mut prr = Prr::start(ssthresh, 20, pipe);
        let (mut sent, mut pipes) = (vec![], vec![]);
        for _ in 0..acks {
            pipe -= 1; // this ACK delivered one segment
            let cwnd = prr.on_ack(1, pipe, ssthresh);
            let n = cwnd.saturating_sub(pipe);
            prr.on_sent(n);
            pipe += n;
            sent.push(n);
            pipes.push(pipe);
        }
        (sent, pipes)
    }

    #[test]
    fn prr_rfc6937_reno_example() {
        // ssthresh 10 (Reno halving 20): the first ACK forces the fast retransmit, then one
        // segment per two ACKs while pipe > ssthresh (sndcnt = ceil(d * 10 / 20) - out);
        // the 17th ACK brings pipe down to ssthresh, and from then on each ACK sends one
        // (SSRB's min(ssthresh - pipe, ...)), holding pipe at ssthresh.
        let (sent, pipes) = prr_episode(10, 20);
        assert_eq!(
            sent,
            [1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 0, 1, 1, 1]
        );
        assert_eq!(
            pipes,
            [19, 18, 18, 17, 17, 16, 16, 15, 15, 14, 14, 13, 13, 12, 12, 11, 10, 10, 10, 10]
        );
    }

    #[test]
    fn prr_rfc6937_cubic_example() {
        // ssthresh 14 (CUBIC's 0.7 * 20): 7 segments per 10 ACKs while pipe > ssthresh.
        let (sent, pipes) = prr_episode(14, 20);
        assert_eq!(sent[0], 1, "fast retransmit forced");
        assert_eq!(sent[..10].iter().sum::<u32>(), 7);
        assert_eq!(sent[..10], [1, 1, 1, 0, 1, 1, 0, 1, 1, 0]);
        // Ends holding pipe at ssthresh: 20 delivered, 19 - 20 + 15 = 14.
        assert_eq!(pipes[19], 14);
        assert_eq!(sent.iter().sum::<u32>(), 15);
        // Proportional while above ssthresh: sent never exceeds ceil(delivered * 14 / 20).
        let mut total = 0;
        for (i, (&n, &pipe)) in sent.iter().zip(&pipes).enumerate() {
            total += n;
            if pipe - n > 14 {
                assert!(total <= ((i as u32 + 1) * 14).div_ceil(20), "ACK {}", i + 1);
            }
        }
    }

    #[test]
    fn prr_ssrb_and_crb_below_ssthresh() {
        // A burst loss leaves pipe (4) far below ssthresh (10).
        let mut prr = Prr::start(10, 20, 4);
        let mut pipe = 4;
        let mut sent = vec![];
        for _ in 0..4 {
            pipe -= 1;
            let cwnd = prr.on_ack(1, pipe, 10);
            let n = cwnd - pipe;
            prr.on_sent(n);
            pipe += n;
            sent.push(n);
        }
        // SSRB: delivered + 1 per ACK (slow start), capped at ssthresh - pipe.
        assert_eq!(sent, [2, 2, 2, 2]);
        assert_eq!(pipe, 8);

        let mut prr = Prr::start(10, 20, 4);
        let mut pipe = 4;
        for _ in 0..4 {
            pipe -= 1;
            let cwnd = prr.on_ack_safe(1, pipe, 10, false);
            let n = cwnd - pipe;
            prr.on_sent(n);
            pipe += n;
        }
        // CRB: packet conservation, pipe stays put.
        assert_eq!(pipe, 4);
        assert_eq!((prr.delivered(), prr.sent(), prr.ssthresh()), (4, 4, 10));
    }

    #[test]
    fn prr_edge_cases() {
        let mut prr = Prr::start(10, 20, 19);
        // Nothing delivered: cwnd unchanged (the prior cwnd).
        assert_eq!(prr.on_ack(0, 19, 10), 20);
        // Everything lost and nothing in flight: still at least 1.
        let mut prr = Prr::start(2, 0, 0);
        assert_eq!(prr.on_ack(1, 0, 2), 2);
        prr.on_sent(1);
        assert!(prr.on_ack(1, 0, 2) >= 1);
    }

    #[test]
    fn recovery_sequence_with_cc() {
        let mut cc = new_cc(CcKind::NewReno);
        cc.set_cwnd(20);
        let ssthresh = cc.on_loss(0);
        let mut prr = Prr::start(ssthresh, 20, 19);
        let cwnd = prr.on_ack(1, 18, cc.ssthresh());
        cc.set_cwnd(cwnd);
        assert_eq!(cc.cwnd(), 19);
        cc.on_recovery_end();
        assert_eq!(cc.cwnd(), 10);
    }

    #[test]
    fn pacing_rate_numbers() {
        // 10 * 1448 bytes per 10 ms = 1.448 MB/s; 200% in slow start, 120% in CA.
        assert_eq!(pacing_rate(10, 1448, 10_000, true), 2_896_000);
        assert_eq!(pacing_rate(10, 1448, 10_000, false), 1_737_600);
        // 100 Gbit/s-class numbers don't overflow: 100000 * 9000 B per 1 µs.
        assert_eq!(
            pacing_rate(100_000, 9000, 1, false),
            100_000 * 9000 * 1_200_000
        );
        assert_eq!(pacing_rate(u32::MAX, u32::MAX, 1, true), u64::MAX);
        // Rounds down like the kernel's do_div: 3 * 1000 * 1.2 / 7 µs.
        assert_eq!(pacing_rate(3, 1000, 7, false), 514_285_714);
        assert_eq!(pacing_rate(10, 1448, 0, true), u64::MAX);
    }
}
