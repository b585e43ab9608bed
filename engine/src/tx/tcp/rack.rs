//! RACK, time-based loss detection (RFC 8985 §6; the kernel's `tcp_recovery.c`).
//!
//! A segment is lost when a segment sent after it has been delivered (ACKed or SACKed)
//! and more than the delivered one's RTT plus a reordering window has passed since it was
//! sent. Until reordering has been seen the window is 0 once `DupThresh` segments are
//! SACKed or recovery is under way (so a hole below three SACKs is lost at once, as
//! RFC 6675's dupthresh had it), and a quarter of the minimum RTT otherwise; after it
//! has been seen, a quarter of the minimum RTT times a multiplier that every round trip
//! with a D-SACK raises (spurious retransmissions: the window was too small) and 16
//! recoveries without one reset, capped at SRTT. So reordering by a few or tens of
//! segments, which dupthresh reads as loss, costs no retransmission once the window
//! covers it.
//!
//! This module keeps the state and the rules; [`super::conn`] walks its retransmit queue
//! with them, arms the reordering timer and starts recovery.

use super::Seq;

/// Recoveries without a D-SACK before the window's multiplier goes back to 1
/// (`TCP_RACK_RECOVERY_THRESH`; RFC 8985 §6.2 step 4's `reo_wnd_persist`).
const RECOVERY_THRESH: u8 = 16;

/// What RACK says of one segment that is neither delivered nor waiting to be resent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Sent after the most recently sent delivered segment: nothing to say yet.
    NotBefore,
    /// Lost.
    Lost,
    /// Sent before it, but the reordering window has not passed: check again in this
    /// many µs.
    Wait(u64),
}

/// RACK's per-connection state (RFC 8985 §6.1's `RACK.*` variables).
#[derive(Debug, Clone)]
pub struct Rack {
    /// Send time of the most recently sent segment delivered (`RACK.xmit_ts`), µs; 0
    /// until one is.
    xmit_us: u64,
    /// Its place in the connection's transmission order. RFC 8985 orders by send time
    /// and breaks ties by `RACK.end_seq`; skiff stamps segments with the µs of the poll
    /// round, so a retransmission sent after new data in the same round would rank
    /// before it by sequence number, and be called lost when that data was delivered
    /// first (198 and 222 spurious retransmissions per GiB in two runs at 1 % loss).
    /// The kernel keeps its `tsorted_sent_queue` for the same reason.
    xmit_order: u64,
    /// Its RTT (`RACK.rtt`), µs.
    rtt_us: u64,
    /// Highest end of data delivered (`RACK.fack`).
    fack: Seq,
    /// `fack` before the ACK being processed: a segment delivered by this ACK below it
    /// arrived out of order.
    prior_fack: Seq,
    /// This ACK delivered a segment sent later than any delivered before.
    advanced: bool,
    /// Reordering observed (`RACK.reordering_seen`, the kernel's `reord_seen`).
    reord_seen: bool,
    /// The window's multiplier (`RACK.reo_wnd_mult`, `reo_wnd_steps`), 1–255.
    steps: u8,
    /// Recoveries left before `steps` goes back to 1 (`RACK.reo_wnd_persist`).
    persist: u8,
    /// SND.NXT when `steps` last grew (`RACK.dsack_round`): it grows once per round trip.
    dsack_round: Option<Seq>,
}

impl Rack {
    /// State for a connection whose first sequence number is `isn`.
    pub fn new(isn: Seq) -> Self {
        Rack {
            xmit_us: 0,
            xmit_order: 0,
            rtt_us: 0,
            fack: isn,
            prior_fack: isn,
            advanced: false,
            reord_seen: false,
            steps: 1,
            persist: 0,
            dsack_round: None,
        }
    }

    /// An ACK arrives: remember `fack` before it.
    pub fn begin_ack(&mut self) {
        self.prior_fack = self.fack;
        self.advanced = false;
    }

    /// A segment ending at `end`, last sent at `sent_us` as the `order`th transmission of
    /// the connection (counted from 1), was delivered (newly ACKed or
    /// SACKed) at `now_us` (RFC 8985 §6.2 steps 2 and 3). `retransmitted`: it was sent
    /// more than once, so it says nothing about reordering and does not move RACK (see
    /// below). Returns true if it shows reordering: never retransmitted and delivered
    /// below data delivered by an earlier ACK.
    ///
    /// A retransmitted segment's delivery may be the original's: RFC 8985 tells them
    /// apart by the echoed timestamp, or else trusts an RTT of at least the minimum RTT
    /// (`tcp_rack_advance`). Skiff's timestamps tick in milliseconds, too coarse below a
    /// millisecond of RTT, and on veth the minimum RTT (35 µs measured) is far below the
    /// SRTT (1 ms, mostly queueing), so a late original ACKed 100 µs after its
    /// retransmission passed the test and made RACK mark the whole flight sent before
    /// the retransmission lost: 5 % reordering then cost 4.8k retransmissions per GiB
    /// and a third of the goodput (1.49 against 2.49 Gbit/s without it). Data sent after
    /// a retransmission still shows when the retransmission was lost.
    pub fn delivered(
        &mut self,
        sent_us: u64,
        order: u64,
        end: Seq,
        retransmitted: bool,
        now_us: u64,
    ) -> bool {
        let reordered = !retransmitted && end.lt(self.prior_fack);
        if reordered {
            self.reord_seen = true;
        }
        if end.gt(self.fack) {
            self.fack = end;
        }
        if sent_us == 0 || retransmitted {
            return reordered;
        }
        if order > self.xmit_order {
            self.xmit_us = sent_us;
            self.xmit_order = order;
            self.rtt_us = now_us.saturating_sub(sent_us);
            self.advanced = true;
        }
        reordered
    }

    /// True once a segment has been delivered (there is something to compare with).
    pub fn has_sample(&self) -> bool {
        self.xmit_order > 0
    }

    /// This ACK delivered a segment sent later than any before (`RACK.advanced`): time
    /// to look for losses.
    pub fn advanced(&self) -> bool {
        self.advanced
    }

    /// Reordering has been seen on this connection.
    pub fn reord_seen(&self) -> bool {
        self.reord_seen
    }

    /// Reordering shown otherwise: a recovery whose every retransmission the peer
    /// D-SACKed as a duplicate (see [`super::conn`]'s undo).
    pub fn set_reord_seen(&mut self) {
        self.reord_seen = true;
    }

    /// The reordering window, µs (`RACK_update_reo_wnd`'s result, `tcp_rack_reo_wnd`).
    /// `in_recovery`: fast or RTO recovery under way; `sacked_out`: segments SACKed now;
    /// `dupthresh`: 3.
    pub fn reo_wnd(
        &self,
        in_recovery: bool,
        sacked_out: u32,
        dupthresh: u32,
        min_rtt_us: Option<u32>,
        srtt_us: Option<u32>,
    ) -> u64 {
        if !self.reord_seen && (in_recovery || sacked_out >= dupthresh) {
            return 0;
        }
        let (Some(min), Some(srtt)) = (min_rtt_us, srtt_us) else {
            return 0;
        };
        // A quarter of the minimum RTT: reordering is a property of the path, so of its
        // unloaded RTT, not of queueing (the kernel's comment on tcp_rack_reo_wnd).
        (u64::from(min / 4) * u64::from(self.steps)).min(u64::from(srtt))
    }

    /// RFC 8985 §6.2 step 5 for one segment last sent at `sent_us` as transmission
    /// `order`, with the window `reo_wnd`.
    pub fn check(&self, sent_us: u64, order: u64, now_us: u64, reo_wnd: u64) -> Verdict {
        if !self.has_sample() || order >= self.xmit_order {
            return Verdict::NotBefore;
        }
        let deadline = sent_us + self.rtt_us + reo_wnd;
        if now_us >= deadline {
            Verdict::Lost
        } else {
            Verdict::Wait(deadline - now_us)
        }
    }

    /// A D-SACK arrived (RFC 8985 §6.2 step 4): a retransmission was spurious, so the
    /// window grows by a quarter of the minimum RTT, once per round trip.
    pub fn on_dsack(&mut self, snd_una: Seq, snd_nxt: Seq) {
        if self.dsack_round.is_some_and(|r| snd_una.ge(r)) {
            self.dsack_round = None;
        }
        if self.dsack_round.is_none() {
            self.steps = self.steps.saturating_add(1);
            self.dsack_round = Some(snd_nxt);
            self.persist = RECOVERY_THRESH;
        }
    }

    /// A fast or RTO recovery ended: after [`RECOVERY_THRESH`] of them without a D-SACK
    /// the multiplier goes back to 1.
    pub fn on_recovery_exit(&mut self) {
        self.persist = self.persist.saturating_sub(1);
        if self.persist == 0 {
            self.steps = 1;
        }
    }

    /// The window's multiplier now.
    pub fn steps(&self) -> u8 {
        self.steps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Option<u32> = Some(400);
    const SRTT: Option<u32> = Some(1000);

    #[test]
    fn nothing_is_lost_before_anything_is_delivered() {
        let r = Rack::new(Seq(0));
        assert_eq!(r.check(10, 1, 1_000_000, 0), Verdict::NotBefore);
    }

    #[test]
    fn a_segment_sent_before_a_delivered_one_is_lost_after_rtt_plus_window() {
        let mut r = Rack::new(Seq(0));
        r.begin_ack();
        // Transmission 5 (at 200 µs) SACKed at 700: RACK.rtt 500.
        assert!(!r.delivered(200, 5, Seq(2000), false, 700));
        assert!(r.advanced());
        // Transmission 1, at 100: lost once 100 + 500 + window has passed.
        assert_eq!(r.check(100, 1, 700, 0), Verdict::Lost);
        assert_eq!(
            r.check(100, 1, 700, 100),
            Verdict::Lost,
            "deadline 700 reached"
        );
        assert_eq!(r.check(100, 1, 550, 100), Verdict::Wait(150));
        // Sent in the same µs: the order decides, not the sequence number.
        assert_eq!(r.check(200, 4, 700, 0), Verdict::Lost);
        assert_eq!(r.check(200, 6, 700, 0), Verdict::NotBefore);
        assert_eq!(r.check(200, 5, 700, 0), Verdict::NotBefore, "itself");
    }

    #[test]
    fn the_window_is_zero_until_reordering_once_dupthresh_is_sacked_or_in_recovery() {
        let r = Rack::new(Seq(0));
        assert_eq!(r.reo_wnd(false, 1, 3, MIN, SRTT), 100, "min_rtt / 4");
        assert_eq!(r.reo_wnd(false, 3, 3, MIN, SRTT), 0);
        assert_eq!(r.reo_wnd(true, 0, 3, MIN, SRTT), 0);
        assert_eq!(r.reo_wnd(false, 1, 3, None, SRTT), 0, "no RTT yet");
    }

    #[test]
    fn reordering_is_a_first_transmission_delivered_below_an_earlier_acks_fack() {
        let mut r = Rack::new(Seq(0));
        r.begin_ack();
        // One ACK delivering 3 then 1 (a cumulative ACK with a SACK): not reordering.
        assert!(!r.delivered(30, 3, Seq(3000), false, 500));
        assert!(!r.delivered(10, 1, Seq(1000), false, 500));
        // The next ACK delivers 2: below fack 3000 from the earlier ACK.
        r.begin_ack();
        assert!(r.delivered(20, 2, Seq(2000), false, 600));
        assert!(r.reord_seen());
        // The window no longer drops to 0.
        assert_eq!(r.reo_wnd(true, 5, 3, MIN, SRTT), 100);
    }

    #[test]
    fn a_retransmission_neither_shows_reordering_nor_moves_rack() {
        let mut r = Rack::new(Seq(0));
        r.begin_ack();
        assert!(!r.delivered(100, 3, Seq(3000), false, 600));
        r.begin_ack();
        // Retransmitted at 500 (transmission 7), delivered at 1650: maybe the original.
        assert!(!r.delivered(500, 7, Seq(1000), true, 1650));
        assert!(!r.reord_seen());
        assert_eq!(
            r.check(150, 4, 1650, 0),
            Verdict::NotBefore,
            "RACK not moved"
        );
        // New data sent at 700 and delivered: transmission 4 is now before it.
        r.begin_ack();
        r.delivered(700, 8, Seq(4000), false, 1650);
        assert_eq!(r.check(150, 4, 1650, 0), Verdict::Lost);
    }

    #[test]
    fn dsacks_grow_the_window_once_per_round_trip_and_sixteen_recoveries_reset_it() {
        let mut r = Rack::new(Seq(0));
        r.begin_ack();
        r.delivered(30, 3, Seq(3000), false, 500);
        r.begin_ack();
        r.delivered(20, 2, Seq(2000), false, 600);
        r.on_dsack(Seq(1000), Seq(9000));
        assert_eq!(r.steps(), 2);
        r.on_dsack(Seq(5000), Seq(12000));
        assert_eq!(r.steps(), 2, "same round trip");
        r.on_dsack(Seq(9000), Seq(15000));
        assert_eq!(r.steps(), 3);
        assert_eq!(r.reo_wnd(false, 9, 3, MIN, SRTT), 300);
        assert_eq!(
            r.reo_wnd(false, 9, 3, MIN, Some(250)),
            250,
            "capped at SRTT"
        );
        for _ in 0..15 {
            r.on_recovery_exit();
        }
        assert_eq!(r.steps(), 3);
        r.on_recovery_exit();
        assert_eq!(r.steps(), 1);
    }
}
