//! A stream, as TRex's stateless streams: what one queue sends for it (a synthetic frame
//! source or a replayed capture), how many, until when, with which priority. Its rate is
//! not here: the qdisc enforces it (`tx::qdisc`), with the stream index as the flow key.

use std::time::Instant;

use super::{rate::Rate, replay::ReplaySource, source::FrameSource};
use crate::latency::probe::{self, Found, Probe, PROBE_LEN};

/// Where a stream's frames come from.
#[derive(Debug)]
pub enum StreamSource {
    /// Template, field variation and sizes.
    Synth(Box<FrameSource>),
    /// A capture being replayed.
    Replay(ReplaySource),
}

impl StreamSource {
    /// Writes the next frame into `buf`: (length, earliest departure time in ns from the
    /// run's origin, 0 for none). Length 0: nothing written (exhausted, or `buf` too small).
    #[inline]
    pub fn next_into(&mut self, buf: &mut [u8]) -> (usize, u64) {
        match self {
            StreamSource::Synth(s) => (s.next_into(buf), 0),
            StreamSource::Replay(r) => r.next_into(buf),
        }
    }

    /// The departure time of the next frame, if it has one (a replay at original timing).
    #[inline]
    pub fn peek_edt(&self) -> Option<u64> {
        match self {
            StreamSource::Synth(_) => None,
            StreamSource::Replay(r) => r.peek_edt(),
        }
    }

    /// True when the source has nothing more to send (a replay whose loops are done).
    pub fn exhausted(&self) -> bool {
        match self {
            StreamSource::Synth(_) => false,
            StreamSource::Replay(r) => r.exhausted(),
        }
    }
}

/// One stream as one queue runs it.
#[derive(Debug)]
pub struct QueueStream {
    /// The frames.
    pub source: StreamSource,
    /// `skb->priority` analogue for the `prio` qdisc (from the stream's DSCP).
    pub priority: u8,
    /// This queue's share of the stream's count.
    pub count: Option<u64>,
    /// When the stream stops producing (its duration).
    pub deadline: Option<Instant>,
    /// Latency probes (`gen --latency`), if the stream carries them.
    pub probe: Option<ProbeGen>,
}

/// Queue bits of a probe's stream id: the id on the wire is `stream << 6 | queue`, so
/// every queue of a stream numbers its probes on its own (queues are independent senders)
/// and a receiver still groups them by stream. 6 bits: the XSKMAP's 64 queues.
pub const PROBE_QUEUE_BITS: u32 = 6;

/// The probe stream id of `stream` sent on `queue`, if both fit (stream < 1024, queue < 64).
pub fn probe_wire_id(stream: usize, queue: usize) -> Option<u16> {
    if queue >= 1 << PROBE_QUEUE_BITS || stream >= 1 << (16 - PROBE_QUEUE_BITS) {
        return None;
    }
    Some(((stream << PROBE_QUEUE_BITS) | queue) as u16)
}

/// How one queue's part of a stream carries latency probes: which frames, with which ids,
/// and the rate schedule they are measured against (coordinated omission).
#[derive(Debug, Clone)]
pub struct ProbeGen {
    /// The probes' stream id ([`probe_wire_id`]).
    pub wire_id: u16,
    /// The sender run's session id.
    pub session: u32,
    /// One frame in `every` carries a probe (1: every frame).
    pub every: u64,
    /// This queue's rate for the stream, if paced: frame i's scheduled send time is the
    /// origin plus the rate's cost of the frames before it (and of itself when `lead`).
    pub rate: Option<Rate>,
    /// Whether a frame's own cost comes before its scheduled time: tbf starts with an
    /// empty bucket, so its first frame is due one cost after the origin; fq sends its
    /// first at the origin.
    pub lead: bool,
    seq: u64,
    sched_ps: u128,
    frames: u64,
}

/// Picoseconds per nanosecond.
const PS_PER_NS: u128 = 1000;

impl ProbeGen {
    /// A probe generator; see the fields.
    pub fn new(wire_id: u16, session: u32, every: u64, rate: Option<Rate>, lead: bool) -> Self {
        ProbeGen {
            wire_id,
            session,
            every: every.max(1),
            rate,
            lead,
            seq: 0,
            sched_ps: 0,
            frames: 0,
        }
    }

    /// Probes written so far.
    pub fn written(&self) -> u64 {
        self.seq
    }

    /// Called for every frame built (`frame` = its bytes): advances the schedule, and
    /// writes a probe into every `every`-th frame big enough to hold one (its transmit
    /// time is stamped later, just before the ring: [`probe::stamp_at`]). `origin_ns` is the
    /// run's origin on `CLOCK_MONOTONIC`. Returns the probe's offset in the frame.
    #[inline]
    pub fn mark(&mut self, frame: &mut [u8], origin_ns: u64) -> Option<u16> {
        let cost = self.rate.map_or(0, |r| u128::from(r.cost_ps(frame.len())));
        let before = self.sched_ps;
        self.sched_ps += cost;
        let idx = self.frames;
        self.frames += 1;
        if !idx.is_multiple_of(self.every) {
            return None;
        }
        let at = probe::locate_udp(frame).filter(|u| u.payload_len >= PROBE_LEN)?;
        let due_ps = if self.lead { self.sched_ps } else { before };
        let sched_ns = self
            .rate
            .map(|_| origin_ns.saturating_add((due_ps / PS_PER_NS) as u64));
        let p = Probe {
            stream: self.wire_id,
            session: self.session,
            seq: self.seq,
            tx_ns: 0,
            sched_ns,
        };
        if !probe::write_at(frame, at.payload, &p) {
            return None;
        }
        self.seq += 1;
        u16::try_from(at.payload).ok()
    }
}

/// The offset of a probe already in a frame (a replayed capture of probes), to be
/// restamped at transmit.
#[inline]
pub fn probe_in(frame: &[u8]) -> Option<u16> {
    let at = probe::locate_udp(frame)?;
    let payload = frame.get(at.payload..at.payload + at.payload_len)?;
    match probe::in_payload(payload) {
        Found::Probe(_) => u16::try_from(at.payload).ok(),
        _ => None,
    }
}

impl QueueStream {
    /// Whether the stream still produces, having built `built` frames, at `now`.
    #[inline]
    pub fn active(&self, built: u64, now: Instant) -> bool {
        !self.source.exhausted()
            && self.count.is_none_or(|c| built < c)
            && self.deadline.is_none_or(|d| now < d)
    }
}
