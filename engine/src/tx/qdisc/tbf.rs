//! `tbf`: a token bucket filter (Linux `sch_tbf.c`) whose tokens are picoseconds of rate
//! budget. Tokens accrue at 1000 ps per ns of elapsed time up to `burst_ps`; the head packet
//! leaves when the bucket holds its cost ([`Rate::cost_ps`]), which is then taken out.
//!
//! Precision: tokens are integers and the elapsed time is taken between absolute `now_ns`
//! values, so nothing is rounded but each packet's cost (to the nearest picosecond). With
//! a backlog, the packets dequeued by time T are exactly those whose summed costs fit in
//! `(T − t0) · 1000` ps, i.e. ⌊(T − t0) · rate⌋ for a packet rate, provided the caller
//! dequeues at least once per `burst_ps / 1000 − cost / 1000` ns (otherwise the full bucket
//! overflows and that budget is lost, as in any token bucket).
//!
//! The bucket starts *empty* at the first enqueue, so a run starts paced rather than with
//! a burst. Later idle periods fill it up to `burst_ps`, as in Linux.
//!
//! Budget that overflows a full bucket *while packets wait* is counted (`behind_ps`): the
//! caller stalled longer than the burst covers (a descheduled thread), so the shaped
//! stream is that much behind its schedule for good. Linux's tbf loses the same budget
//! silently; skiff reports it so a short run can be told apart from a wrong rate.

use std::collections::VecDeque;

use super::{Deq, QPacket, PREALLOC_MAX, PS_PER_NS};
use crate::gen::rate::Rate;

/// A token bucket in front of a FIFO.
#[derive(Debug)]
pub(crate) struct Tbf<P> {
    q: VecDeque<P>,
    rate: Rate,
    /// Bucket depth, ps (at least 1).
    burst_ps: u64,
    limit: usize,
    /// Tokens (ps) as of `t_c_ns`.
    tokens_ps: u64,
    /// Time of the last token update; None until the first enqueue starts the clock.
    t_c_ns: Option<u64>,
    /// Budget (ps) lost to a full bucket while the queue was not empty.
    behind_ps: u64,
}

impl<P: QPacket> Tbf<P> {
    /// An empty bucket shaping to `rate`, holding at most `burst_ps` ps of budget and
    /// `limit` packets.
    pub(crate) fn new(rate: Rate, burst_ps: u64, limit: usize) -> Self {
        Tbf {
            q: VecDeque::with_capacity(limit.min(PREALLOC_MAX)),
            rate,
            burst_ps: burst_ps.max(1),
            limit,
            tokens_ps: 0,
            t_c_ns: None,
            behind_ps: 0,
        }
    }

    /// Budget the caller's stalls cost while packets waited, in ns of the schedule.
    pub(crate) fn behind_ns(&self) -> u64 {
        self.behind_ps / PS_PER_NS
    }

    /// Brings the bucket up to `now_ns`; an overflow while packets wait is budget lost.
    #[inline]
    fn update(&mut self, now_ns: u64) -> u64 {
        let Some(t) = self.t_c_ns else { return 0 };
        let accrued = now_ns.saturating_sub(t).saturating_mul(PS_PER_NS);
        let full = self.tokens_ps.saturating_add(accrued);
        if full > self.burst_ps && !self.q.is_empty() {
            self.behind_ps = self.behind_ps.saturating_add(full - self.burst_ps);
        }
        self.tokens_ps = full.min(self.burst_ps);
        self.t_c_ns = Some(t.max(now_ns));
        self.tokens_ps
    }

    /// Tokens the bucket holds at `now_ns` (never fewer than at the last update).
    #[inline]
    fn tokens_at(&self, now_ns: u64) -> u64 {
        match self.t_c_ns {
            None => 0,
            Some(t) => {
                let accrued = now_ns.saturating_sub(t).saturating_mul(PS_PER_NS);
                self.tokens_ps.saturating_add(accrued).min(self.burst_ps)
            }
        }
    }

    /// Tail drop at `limit`; a packet costing more than the whole bucket could never leave
    /// and is dropped (Linux tbf drops packets above its `max_size` the same way).
    pub(crate) fn enqueue(&mut self, p: P, now_ns: u64) -> Result<(), P> {
        if self.t_c_ns.is_none() {
            // The clock starts with an empty bucket at the first packet.
            self.t_c_ns = Some(now_ns);
            self.tokens_ps = 0;
        } else if self.q.is_empty() {
            // Idle until now: the bucket fills (up to the burst) and nothing is behind.
            self.update(now_ns);
        }
        if self.q.len() >= self.limit || self.rate.cost_ps(p.len()) > self.burst_ps {
            return Err(p);
        }
        self.q.push_back(p);
        Ok(())
    }

    /// The head packet if the bucket holds its cost.
    #[inline]
    pub(crate) fn dequeue(&mut self, now_ns: u64) -> Deq<P> {
        let Some(head) = self.q.front() else {
            return Deq::Empty;
        };
        let cost = self.rate.cost_ps(head.len());
        let tokens = self.update(now_ns);
        if tokens < cost {
            return Deq::Throttled;
        }
        self.tokens_ps = tokens - cost;
        self.q.pop_front().map_or(Deq::Empty, Deq::Packet)
    }

    /// When the head packet's cost will be in the bucket (`now_ns` if it is already).
    pub(crate) fn next_event_ns(&self, now_ns: u64) -> Option<u64> {
        let head = self.q.front()?;
        let cost = self.rate.cost_ps(head.len());
        let deficit = cost.saturating_sub(self.tokens_at(now_ns));
        // Rounded up: at that ns the bucket holds at least `cost` (cost ≤ burst_ps, as
        // enqueue refused anything dearer, so the cap does not get in the way).
        Some(now_ns.saturating_add(deficit.div_ceil(PS_PER_NS)))
    }

    /// Packets queued.
    pub(crate) fn len(&self) -> usize {
        self.q.len()
    }

    /// Everything, oldest first.
    pub(crate) fn drain(&mut self, out: &mut Vec<P>) {
        out.extend(self.q.drain(..));
    }
}
