//! The qdisc layer: what the TX loop does with frames between the streams that build them
//! and the TX ring, in the manner of the kernel's `__dev_xmit_skb` and `qdisc_restart`.
//!
//! Producers [`Qdisc::enqueue`] frames (or skip an empty work-conserving qdisc:
//! [`Qdisc::can_bypass`], the kernel's `TCQ_F_CAN_BYPASS`); each round the TX loop calls
//! [`Qdisc::dequeue_batch`] with a quota (64, `weight_p`), puts what it got on the ring and
//! [`Qdisc::requeue`]s what the ring refused (`dev_requeue_skb`). When a shaper holds
//! packets back, [`Qdisc::next_event_ns`] is its watchdog: when to call again.
//!
//! Four kinds, chosen with `--qdisc`:
//!
//! - `pfifo`: one FIFO, tail drop at `limit` packets (`sch_fifo.c`).
//! - `prio`: `pfifo_fast`'s three bands chosen by priority through the default priomap,
//!   lowest band first (`sch_generic.c`).
//! - `tbf`: a token bucket counted in picoseconds of rate budget, so one type shapes to a
//!   packet rate or to a bit rate at L1 or L2 (`sch_tbf.c`).
//! - `fq`: per-flow queues served by deficit round robin, with optional per-flow pacing
//!   and earliest-departure times (`sch_fq.c`).
//!
//! Time is `now_ns`, nanoseconds since the run's origin on a monotonic clock, always passed
//! in by the caller: nothing here reads a clock, so tests run on synthetic time. Nothing
//! here allocates per packet once warm (queues are preallocated `VecDeque`s; `fq` allocates
//! when it meets a new flow), and nothing panics on any input.
//!
//! Non-goals: classful hierarchies (htb, nested qdiscs), AQM (codel, red), GSO
//! segmentation of packets larger than a tbf burst (they are dropped, as `tbf` does
//! without GSO).

mod fq;
mod pfifo;
mod prio;
mod tbf;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;

use crate::gen::rate::Rate;

/// What a qdisc needs to know about a packet. The TX loop implements it for its frame
/// handle; tests implement it for fake packets.
#[expect(
    clippy::len_without_is_empty,
    reason = "a packet's length, not a collection's: an empty packet means nothing here"
)]
pub trait QPacket {
    /// Bytes as handed to the socket (no FCS).
    fn len(&self) -> usize;
    /// Flow key: the generator sets it to the stream index (as the kernel's fq keys flows
    /// by socket); 0 if unknown.
    fn flow(&self) -> u32;
    /// `skb->priority` analogue, 0..=15 (derive it from the IP TOS with
    /// [`tos_to_priority`]); only the low 4 bits are used.
    fn priority(&self) -> u8;
    /// Earliest departure time (EDT, like `skb->tstamp` for fq) in nanoseconds on the same
    /// clock as `now_ns`; 0 = none. Only `fq` honours it.
    fn tstamp_ns(&self) -> u64;
}

/// `TC_PRIO_BESTEFFORT` (include/uapi/linux/pkt_sched.h).
const TC_PRIO_BESTEFFORT: u8 = 0;
/// `TC_PRIO_BULK`.
const TC_PRIO_BULK: u8 = 2;
/// `TC_PRIO_INTERACTIVE_BULK`.
const TC_PRIO_INTERACTIVE_BULK: u8 = 4;
/// `TC_PRIO_INTERACTIVE`.
const TC_PRIO_INTERACTIVE: u8 = 6;

/// Linux's `ip_tos2prio` (net/ipv4/route.c), indexed by `IPTOS_TOS(tos) >> 1`: the four
/// RFC 1349 TOS bits (0x10 low delay, 0x08 throughput, 0x04 reliability, 0x02 cost) pick
/// a `TC_PRIO_*`. The odd entries are `ECN_OR_COST(class)`, which current kernels define
/// as `TC_PRIO_##class` (bit 0x02 is now ECN's ECT(1), so it must not change priority;
/// kernels before that change mapped entry 1 to `TC_PRIO_FILLER`).
const IP_TOS2PRIO: [u8; 16] = [
    TC_PRIO_BESTEFFORT,
    TC_PRIO_BESTEFFORT,
    TC_PRIO_BESTEFFORT,
    TC_PRIO_BESTEFFORT,
    TC_PRIO_BULK,
    TC_PRIO_BULK,
    TC_PRIO_BULK,
    TC_PRIO_BULK,
    TC_PRIO_INTERACTIVE,
    TC_PRIO_INTERACTIVE,
    TC_PRIO_INTERACTIVE,
    TC_PRIO_INTERACTIVE,
    TC_PRIO_INTERACTIVE_BULK,
    TC_PRIO_INTERACTIVE_BULK,
    TC_PRIO_INTERACTIVE_BULK,
    TC_PRIO_INTERACTIVE_BULK,
];

/// The priority a socket with IP TOS `tos` gives its packets: Linux's
/// `rt_tos2priority(tos) = ip_tos2prio[IPTOS_TOS(tos) >> 1]` (include/net/route.h), where
/// `IPTOS_TOS(tos) = tos & 0x1E`. E.g. 0x10 (low delay) → 6 (interactive, band 0 of
/// `prio`), 0x08 (throughput) → 2 (bulk, band 2), 0 → 0 (best effort, band 1).
pub fn tos_to_priority(tos: u8) -> u8 {
    // `IPTOS_TOS_MASK` = 0x1E; shifted right by one the index is 0..=15, always in bounds.
    let idx = usize::from((tos & 0x1E) >> 1);
    IP_TOS2PRIO.get(idx).copied().unwrap_or(TC_PRIO_BESTEFFORT)
}

/// Counters in the style of `tc -s qdisc`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct QdiscStats {
    /// Packets that left the qdisc for the ring (including bypassed ones, excluding those
    /// requeued since).
    pub sent_packets: u64,
    /// Bytes of those packets.
    pub sent_bytes: u64,
    /// Packets refused at enqueue (tail drop at a limit, a packet a tbf burst cannot pass,
    /// an fq timestamp beyond the horizon).
    pub dropped: u64,
    /// Dequeue calls a shaper cut short while packets waited (one per call, like the
    /// kernel's one per failed dequeue).
    pub overlimits: u64,
    /// Packets the ring refused and that went back to the head of the qdisc.
    pub requeues: u64,
    /// tbf: ns of its schedule the shaper lost because the caller did not dequeue for
    /// longer than the burst covers while packets waited (a stalled sender). The shaped
    /// stream ends that much later than its rate says. fq: the same for paced flows beyond
    /// the pacing horizon, summed over flows. 0 for the other kinds.
    pub behind_ns: u64,
    /// Packets queued now (including requeued ones).
    pub backlog_packets: u64,
    /// Bytes queued now.
    pub backlog_bytes: u64,
}

impl QdiscStats {
    /// Adds `o` into `self` (for summing queues): every field, backlog included.
    pub fn add(&mut self, o: &QdiscStats) {
        self.sent_packets += o.sent_packets;
        self.sent_bytes += o.sent_bytes;
        self.dropped += o.dropped;
        self.overlimits += o.overlimits;
        self.requeues += o.requeues;
        self.behind_ns += o.behind_ns;
        self.backlog_packets += o.backlog_packets;
        self.backlog_bytes += o.backlog_bytes;
    }
}

/// Default queue limit in packets: Linux's default `txqueuelen` (1000, `ether_setup`).
pub const DEFAULT_TXQUEUELEN: usize = 1000;
/// Default `fq` quantum: 2 × MTU as Linux `fq_init` sets it (`2 * psched_mtu(dev)`), with
/// `psched_mtu` = 1500 MTU + 14-byte Ethernet header = 1514, so 3028 bytes.
pub const FQ_DEFAULT_QUANTUM: usize = 2 * 1514;
/// Default `fq` per-flow limit in packets: Linux `fq`'s `flow_plimit` (100).
pub const FQ_DEFAULT_FLOW_LIMIT: usize = 100;
/// Default `fq` total limit in packets: Linux `fq`'s `sch->limit` (10000).
pub const FQ_DEFAULT_LIMIT: usize = 10_000;
/// How much time's worth of budget a shaper may bank: 4 ms, the rule of thumb that a tbf
/// burst should cover at least one timer tick (rate / HZ with HZ = 250). The TX loop
/// must dequeue at least once per this time (minus one packet's cost) for the rate to be
/// exact; a thread woken late by less than this catches up instead of losing budget.
pub const DEFAULT_BURST_NS: u64 = 4_000_000;
/// The largest frame a default tbf burst must let through: 9216 bytes, the largest jumbo
/// frame common switches accept (a burst smaller than one frame's cost would never let
/// that frame leave).
pub const MAX_FRAME_LEN: usize = 9216;
/// Picoseconds per nanosecond: token buckets count picoseconds, time comes in ns.
pub(crate) const PS_PER_NS: u64 = 1000;

/// Which qdisc to run and its parameters (what the CLI builds from `--qdisc`).
#[derive(Debug, Clone, PartialEq)]
pub enum QdiscConfig {
    /// One FIFO with tail drop.
    Pfifo {
        /// Packets; default [`DEFAULT_TXQUEUELEN`].
        limit: usize,
    },
    /// `pfifo_fast`: three FIFOs chosen through [`PRIOMAP`], lowest band first.
    Prio {
        /// Packets per band; default [`DEFAULT_TXQUEUELEN`].
        limit: usize,
    },
    /// Token bucket filter.
    Tbf {
        /// The shaped rate (a packet rate, or a bit rate at L1 or L2).
        rate: Rate,
        /// Bucket depth in picoseconds of rate budget (see [`QdiscConfig::default_burst_ps`]);
        /// a packet whose cost exceeds it is dropped at enqueue.
        burst_ps: u64,
        /// Packets.
        limit: usize,
    },
    /// Fair queueing with optional pacing.
    Fq {
        /// Bytes of deficit-round-robin credit a flow gets per round (at least 1).
        quantum: usize,
        /// Packets per flow.
        flow_limit: usize,
        /// Packets in all.
        limit: usize,
        /// Pacing rate for every flow without its own entry in `flow_rates`; None =
        /// unpaced (Linux `maxrate`).
        maxrate: Option<Rate>,
        /// Per-flow pacing rates, by flow key (the stream index).
        flow_rates: Vec<(u32, Rate)>,
    },
}

/// `prio`'s priority → band map, Linux's `sch_default_prio2band` (net/sched/sch_generic.c),
/// the map `tc qdisc show` prints as `priomap 1 2 2 2 1 2 0 0 1 1 1 1 1 1 1 1`.
pub const PRIOMAP: [u8; 16] = [1, 2, 2, 2, 1, 2, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1];
/// `prio`'s band count (`PFIFO_FAST_BANDS`).
pub const PRIO_BANDS: usize = 3;

/// A `--qdisc` value or its parameters that make no sense.
#[derive(Debug, thiserror::Error)]
pub enum QdiscConfigError {
    /// Not one of the known kinds.
    #[error("unknown qdisc {kind:?}: use pfifo, prio, tbf (needs --rate) or fq")]
    UnknownKind {
        /// What was given.
        kind: String,
    },
    /// A shaper without a rate.
    #[error("qdisc {kind} shapes to a rate: give one, e.g. --rate 1Mpps or --rate 10Gbit")]
    NeedsRate {
        /// The kind.
        kind: &'static str,
    },
}

impl QdiscConfig {
    /// The kind's name as `--qdisc` spells it: `pfifo`, `prio`, `tbf`, `fq`.
    pub fn name(&self) -> &'static str {
        match self {
            QdiscConfig::Pfifo { .. } => "pfifo",
            QdiscConfig::Prio { .. } => "prio",
            QdiscConfig::Tbf { .. } => "tbf",
            QdiscConfig::Fq { .. } => "fq",
        }
    }

    /// `pfifo` with its default limit.
    pub fn pfifo() -> Self {
        QdiscConfig::Pfifo {
            limit: DEFAULT_TXQUEUELEN,
        }
    }

    /// `prio` with its default per-band limit.
    pub fn prio() -> Self {
        QdiscConfig::Prio {
            limit: DEFAULT_TXQUEUELEN,
        }
    }

    /// `tbf` shaping to `rate` with the default burst and limit.
    pub fn tbf(rate: Rate) -> Self {
        QdiscConfig::Tbf {
            rate,
            burst_ps: Self::default_burst_ps(&rate),
            limit: DEFAULT_TXQUEUELEN,
        }
    }

    /// `fq` with Linux's defaults and pacing every flow to `maxrate` (None: unpaced).
    pub fn fq(maxrate: Option<Rate>) -> Self {
        QdiscConfig::Fq {
            quantum: FQ_DEFAULT_QUANTUM,
            flow_limit: FQ_DEFAULT_FLOW_LIMIT,
            limit: FQ_DEFAULT_LIMIT,
            maxrate,
            flow_rates: Vec::new(),
        }
    }

    /// The default tbf bucket depth for `rate`: [`DEFAULT_BURST_NS`] of time, or the cost
    /// of one [`MAX_FRAME_LEN`] frame if that is more (so every frame can pass).
    pub fn default_burst_ps(rate: &Rate) -> u64 {
        (DEFAULT_BURST_NS * PS_PER_NS).max(rate.cost_ps(MAX_FRAME_LEN))
    }

    /// The configuration `--qdisc kind` means with defaults. `rate` is tbf's rate
    /// (required) or fq's `maxrate`; `pfifo` and `prio` do not shape and ignore it.
    pub fn parse_kind(kind: &str, rate: Option<Rate>) -> Result<Self, QdiscConfigError> {
        match kind.trim() {
            "pfifo" => Ok(Self::pfifo()),
            "prio" | "pfifo_fast" => Ok(Self::prio()),
            "tbf" => rate
                .map(Self::tbf)
                .ok_or(QdiscConfigError::NeedsRate { kind: "tbf" }),
            "fq" => Ok(Self::fq(rate)),
            other => Err(QdiscConfigError::UnknownKind {
                kind: other.to_owned(),
            }),
        }
    }

    /// Whether this configuration never holds a packet back when the ring has room
    /// (pfifo, prio, fq without pacing): such a qdisc may be bypassed when empty.
    pub fn is_work_conserving(&self) -> bool {
        match self {
            QdiscConfig::Pfifo { .. } | QdiscConfig::Prio { .. } => true,
            QdiscConfig::Tbf { .. } => false,
            QdiscConfig::Fq {
                maxrate,
                flow_rates,
                ..
            } => maxrate.is_none() && flow_rates.is_empty(),
        }
    }
}

/// What one dequeue attempt of an algorithm found.
#[derive(Debug)]
pub(crate) enum Deq<P> {
    /// A packet to send.
    Packet(P),
    /// Nothing queued.
    Empty,
    /// Packets queued, but the shaper holds them back until `next_event_ns`.
    Throttled,
}

/// The algorithm behind a [`Qdisc`] (enum dispatch: no trait objects in the hot path).
#[derive(Debug)]
enum Kind<P> {
    Pfifo(pfifo::Pfifo<P>),
    Prio(prio::Prio<P>),
    Tbf(tbf::Tbf<P>),
    Fq(fq::Fq<P>),
}

/// Packets preallocated per queue at most: a txqueuelen (1000) with room to spare; larger
/// limits grow on demand, a few times, never per packet in the steady state.
pub(crate) const PREALLOC_MAX: usize = 4096;
/// Requeue slots preallocated: one dequeue quota (64, `weight_p`), the most the ring can
/// refuse in one round.
const REQUEUE_PREALLOC: usize = 64;

/// The root qdisc a TX loop owns: requeued packets in front (the kernel's `q->gso_skb`),
/// then the configured algorithm.
#[derive(Debug)]
pub struct Qdisc<P: QPacket> {
    kind: Kind<P>,
    /// Packets the ring refused, sent first and regardless of shaping (already paid for).
    requeued: VecDeque<P>,
    /// Counters; `backlog_packets` is filled in by [`Qdisc::stats`], `backlog_bytes` is
    /// kept up to date.
    stats: QdiscStats,
}

impl<P: QPacket> Qdisc<P> {
    /// A qdisc as `cfg` describes it, empty.
    pub fn new(cfg: &QdiscConfig) -> Self {
        let kind = match cfg {
            QdiscConfig::Pfifo { limit } => Kind::Pfifo(pfifo::Pfifo::new(*limit)),
            QdiscConfig::Prio { limit } => Kind::Prio(prio::Prio::new(*limit)),
            QdiscConfig::Tbf {
                rate,
                burst_ps,
                limit,
            } => Kind::Tbf(tbf::Tbf::new(*rate, *burst_ps, *limit)),
            QdiscConfig::Fq {
                quantum,
                flow_limit,
                limit,
                maxrate,
                flow_rates,
            } => Kind::Fq(fq::Fq::new(
                *quantum,
                *flow_limit,
                *limit,
                *maxrate,
                flow_rates.clone(),
            )),
        };
        Qdisc {
            kind,
            requeued: VecDeque::with_capacity(REQUEUE_PREALLOC),
            stats: QdiscStats::default(),
        }
    }

    /// Sets one flow's pacing rate (fq only; the others ignore it): TCP's
    /// `sk_pacing_rate`, updated as cwnd and RTT change.
    pub fn set_flow_rate(&mut self, key: u32, rate: Option<Rate>, now_ns: u64) {
        if let Kind::Fq(q) = &mut self.kind {
            q.set_flow_rate(key, rate, now_ns);
        }
    }

    /// Queues `p` at time `now_ns`. `Err(p)`: dropped (a limit was reached, or see
    /// [`QdiscStats::dropped`]); counted, and the caller frees the frame.
    pub fn enqueue(&mut self, p: P, now_ns: u64) -> Result<(), P> {
        let len = p.len() as u64;
        let r = match &mut self.kind {
            Kind::Pfifo(q) => q.enqueue(p),
            Kind::Prio(q) => q.enqueue(p),
            Kind::Tbf(q) => q.enqueue(p, now_ns),
            Kind::Fq(q) => q.enqueue(p, now_ns),
        };
        match r {
            Ok(()) => self.stats.backlog_bytes += len,
            Err(_) => self.stats.dropped += 1,
        }
        r
    }

    /// One packet from the algorithm.
    #[inline]
    fn dequeue_one(&mut self, now_ns: u64) -> Deq<P> {
        match &mut self.kind {
            Kind::Pfifo(q) => q.dequeue(),
            Kind::Prio(q) => q.dequeue(),
            Kind::Tbf(q) => q.dequeue(now_ns),
            Kind::Fq(q) => q.dequeue(now_ns),
        }
    }

    /// Appends up to `quota` packets to `out`, requeued ones first, and returns how many.
    /// They count as sent. A shaper that stops the batch while packets wait counts one
    /// overlimit.
    pub fn dequeue_batch(&mut self, now_ns: u64, quota: usize, out: &mut Vec<P>) -> usize {
        let mut n = 0;
        while n < quota {
            let Some(p) = self.requeued.pop_front() else {
                break;
            };
            self.account_sent(p.len());
            out.push(p);
            n += 1;
        }
        while n < quota {
            match self.dequeue_one(now_ns) {
                Deq::Packet(p) => {
                    self.account_sent(p.len());
                    out.push(p);
                    n += 1;
                }
                Deq::Empty => break,
                Deq::Throttled => {
                    self.stats.overlimits += 1;
                    break;
                }
            }
        }
        n
    }

    #[inline]
    fn account_sent(&mut self, len: usize) {
        let len = len as u64;
        self.stats.sent_packets += 1;
        self.stats.sent_bytes += len;
        self.stats.backlog_bytes = self.stats.backlog_bytes.saturating_sub(len);
    }

    /// The ring refused `rest` (in order): they go back to the head, in the same order,
    /// ahead of everything (also of packets requeued earlier), and are no longer counted
    /// as sent. `rest` is left empty.
    pub fn requeue(&mut self, rest: &mut Vec<P>) {
        let n = rest.len() as u64;
        let mut bytes = 0u64;
        for p in rest.drain(..).rev() {
            bytes += p.len() as u64;
            self.requeued.push_front(p);
        }
        self.stats.requeues += n;
        self.stats.sent_packets = self.stats.sent_packets.saturating_sub(n);
        self.stats.sent_bytes = self.stats.sent_bytes.saturating_sub(bytes);
        self.stats.backlog_bytes += bytes;
    }

    /// `TCQ_F_CAN_BYPASS`: true when the caller may put a new packet straight on the ring
    /// instead of enqueueing it: the kind is work-conserving (pfifo, prio, fq without any
    /// pacing) and nothing is queued or requeued. The caller must not bypass a packet
    /// whose EDT (`tstamp_ns`) is in the future: fq would have held it.
    pub fn can_bypass(&self) -> bool {
        let conserving = match &self.kind {
            Kind::Pfifo(_) | Kind::Prio(_) => true,
            Kind::Tbf(_) => false,
            Kind::Fq(q) => !q.is_paced(),
        };
        conserving && self.is_empty()
    }

    /// The caller sent `packets` packets of `bytes` bytes in all directly (bypass): they
    /// count as sent.
    pub fn bypassed(&mut self, packets: u64, bytes: u64) {
        self.stats.sent_packets += packets;
        self.stats.sent_bytes += bytes;
    }

    /// The watchdog: None when nothing is queued; `Some(now_ns)` when something can be
    /// dequeued now; otherwise the time the first held packet becomes sendable. Never
    /// late; for fq it may say `now_ns` once more than needed (a flow is examined only at
    /// its turn), after which the next dequeue settles it.
    pub fn next_event_ns(&self, now_ns: u64) -> Option<u64> {
        if !self.requeued.is_empty() {
            return Some(now_ns);
        }
        let t = match &self.kind {
            Kind::Pfifo(q) => (q.len() > 0).then_some(now_ns),
            Kind::Prio(q) => (q.len() > 0).then_some(now_ns),
            Kind::Tbf(q) => q.next_event_ns(now_ns),
            Kind::Fq(q) => q.next_event_ns(now_ns),
        };
        t.map(|t| t.max(now_ns))
    }

    /// Packets queued, requeued ones included.
    pub fn len(&self) -> usize {
        let algo = match &self.kind {
            Kind::Pfifo(q) => q.len(),
            Kind::Prio(q) => q.len(),
            Kind::Tbf(q) => q.len(),
            Kind::Fq(q) => q.len(),
        };
        self.requeued.len() + algo
    }

    /// Nothing queued or requeued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The counters, with the backlog as of now.
    pub fn stats(&self) -> QdiscStats {
        QdiscStats {
            backlog_packets: self.len() as u64,
            behind_ns: match &self.kind {
                Kind::Tbf(q) => q.behind_ns(),
                Kind::Fq(q) => q.behind_ns(),
                _ => 0,
            },
            ..self.stats
        }
    }

    /// Teardown: everything queued goes to `out` (requeued first, then in dequeue order
    /// where the kind has one) so the caller can free the frames. Not counted as sent.
    pub fn drain(&mut self, out: &mut Vec<P>) {
        out.extend(self.requeued.drain(..));
        match &mut self.kind {
            Kind::Pfifo(q) => q.drain(out),
            Kind::Prio(q) => q.drain(out),
            Kind::Tbf(q) => q.drain(out),
            Kind::Fq(q) => q.drain(out),
        }
        self.stats.backlog_bytes = 0;
    }

    /// The kind's name: `pfifo`, `prio`, `tbf`, `fq`.
    pub fn name(&self) -> &'static str {
        match &self.kind {
            Kind::Pfifo(_) => "pfifo",
            Kind::Prio(_) => "prio",
            Kind::Tbf(_) => "tbf",
            Kind::Fq(_) => "fq",
        }
    }
}
