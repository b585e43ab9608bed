//! `fq`: per-flow FIFOs served by deficit round robin, with optional pacing and
//! earliest-departure times, after Linux `sch_fq.c`.
//!
//! - Flows are keyed by [`QPacket::flow`] (the stream index). A flow that gets a packet
//!   while detached joins the *new* list, which is served before the *old* list; a flow
//!   that used up its credit gets `quantum` more bytes and goes to the tail of the old
//!   list (`fq_dequeue`). A new flow that empties moves to the old list once before it
//!   detaches, so new flows cannot starve old ones.
//! - A detached flow that comes back after more than [`REFILL_DELAY_NS`] gets its credit
//!   topped up to a quantum (Linux `flow_refill_delay`); sooner, it keeps what it had.
//! - Pacing: a flow's rate is its entry in `flow_rates`, or else `maxrate`. After each
//!   packet its next departure becomes `max(next, now − horizon) + cost`, in absolute
//!   picoseconds: no rounding accumulates, and a flow whose turn came late (the thread
//!   woke late) may catch up by at most [`PACING_HORIZON_PS`] of budget, like a tbf
//!   burst. A new flow starts paced: its first packet may leave at once, the rest at the
//!   rate.
//! - EDT: a packet whose `tstamp_ns` is later than now waits until then; one further in
//!   the future than [`EDT_HORIZON_NS`] is dropped at enqueue (Linux `horizon_drop`).
//! - A flow that may not send yet is taken off the lists into a min-heap keyed by the
//!   time it may, and put back on the old list when that time comes (`fq_check_throttled`),
//!   so dequeue is O(log n) per throttled flow, not a scan.
//!
//! Linux's `initial_quantum` (10 quanta for a brand-new flow) and its flow garbage
//! collection are left out: flows are streams, few and long-lived. At most [`MAX_FLOWS`]
//! flows are kept; packets of further flow keys share one overflow flow.

use std::{
    cmp::Reverse,
    collections::{BinaryHeap, HashMap, VecDeque},
};

use super::{Deq, QPacket, DEFAULT_BURST_NS, PREALLOC_MAX, PS_PER_NS};
use crate::gen::rate::Rate;

/// How far behind its schedule a paced flow may fall and still catch up: 4 ms of budget,
/// the same as a default tbf burst ([`DEFAULT_BURST_NS`]), in ps.
pub(crate) const PACING_HORIZON_PS: u128 = DEFAULT_BURST_NS as u128 * PS_PER_NS as u128;
/// EDT timestamps further than this beyond now are dropped at enqueue: 10 s, Linux fq's
/// default `horizon` (a bogus timestamp must not block its flow forever).
pub(crate) const EDT_HORIZON_NS: u64 = 10_000_000_000;
/// Idle time after which a returning flow's credit is topped up to a quantum: 40 ms,
/// Linux fq's default `flow_refill_delay`.
pub(crate) const REFILL_DELAY_NS: u64 = 40_000_000;
/// Flows kept at most: 65536, far beyond any stream count; further keys share one flow.
pub(crate) const MAX_FLOWS: usize = 1 << 16;
/// Flow keys below this are found through a directly indexed table instead of a hash map:
/// stream indices are small, and 4096 u32 slots are 16 KiB.
const DIRECT_KEYS: u32 = 4096;
/// Table slot meaning "no flow".
const NO_FLOW: u32 = u32::MAX;

/// Where a flow is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FlowState {
    /// Empty and on no list.
    Detached,
    /// On the new-flows list.
    New,
    /// On the old-flows list.
    Old,
    /// In the throttled heap.
    Throttled,
}

/// One flow's queue and scheduling state.
#[derive(Debug)]
struct Flow<P> {
    q: VecDeque<P>,
    /// DRR credit in bytes (may go negative by less than one packet).
    credit: i64,
    state: FlowState,
    /// Pacing rate, if paced.
    rate: Option<Rate>,
    /// Earliest departure of the next packet by pacing, ps since the origin.
    next_ps: u128,
    /// When the flow last detached.
    detached_at_ns: u64,
    /// Since when packets have waited in `q` without a break, ps.
    backlog_since_ps: u128,
}

/// Fair queueing over flows.
#[derive(Debug)]
pub(crate) struct Fq<P> {
    flows: Vec<Flow<P>>,
    /// Flow index by key, for keys below [`DIRECT_KEYS`].
    direct: Vec<u32>,
    /// Flow index by key, for larger keys.
    hashed: HashMap<u32, u32>,
    /// The flow shared by keys beyond [`MAX_FLOWS`].
    overflow: Option<u32>,
    new_flows: VecDeque<u32>,
    old_flows: VecDeque<u32>,
    /// (time the flow may send, flow index), earliest first.
    throttled: BinaryHeap<Reverse<(u64, u32)>>,
    quantum: i64,
    flow_limit: usize,
    limit: usize,
    qlen: usize,
    maxrate: Option<Rate>,
    flow_rates: Vec<(u32, Rate)>,
    /// Rates are set per flow at run time ([`Fq::set_flow_rate`]).
    dynamic_rates: bool,
    /// Pacing budget lost while packets waited, summed over flows, ps (see `dequeue`).
    behind_ps: u128,
}

impl<P: QPacket> Fq<P> {
    /// Empty, with these parameters (`quantum` at least 1 byte).
    pub(crate) fn new(
        quantum: usize,
        flow_limit: usize,
        limit: usize,
        maxrate: Option<Rate>,
        flow_rates: Vec<(u32, Rate)>,
    ) -> Self {
        Fq {
            flows: Vec::new(),
            direct: Vec::new(),
            hashed: HashMap::new(),
            overflow: None,
            new_flows: VecDeque::new(),
            old_flows: VecDeque::new(),
            throttled: BinaryHeap::new(),
            quantum: i64::try_from(quantum).unwrap_or(i64::MAX).max(1),
            flow_limit,
            limit,
            qlen: 0,
            maxrate,
            flow_rates,
            dynamic_rates: false,
            behind_ps: 0,
        }
    }

    /// Whether any flow is paced (then the qdisc is not work-conserving).
    pub(crate) fn is_paced(&self) -> bool {
        self.maxrate.is_some() || !self.flow_rates.is_empty() || self.dynamic_rates
    }

    /// Sets (or clears) one flow's pacing rate from now on, as TCP updates
    /// `sk_pacing_rate` and fq reads it for every packet (`fq_dequeue`). The flow's next
    /// departure already scheduled stands.
    pub(crate) fn set_flow_rate(&mut self, key: u32, rate: Option<Rate>, now_ns: u64) {
        self.dynamic_rates = true;
        let idx = self.flow_index(key, now_ns);
        if let Some(f) = self.flows.get_mut(idx as usize) {
            f.rate = rate.or(self.maxrate);
        }
    }

    /// The index of `key`'s flow, creating it (an allocation, once per flow) if new.
    fn flow_index(&mut self, key: u32, now_ns: u64) -> u32 {
        let found = if key < DIRECT_KEYS {
            self.direct
                .get(key as usize)
                .copied()
                .filter(|&i| i != NO_FLOW)
        } else {
            self.hashed.get(&key).copied()
        };
        if let Some(i) = found {
            return i;
        }
        if self.flows.len() >= MAX_FLOWS {
            if let Some(i) = self.overflow {
                return i;
            }
            let i = self.create_flow(self.maxrate, now_ns);
            self.overflow = Some(i);
            return i;
        }
        let rate = self
            .flow_rates
            .iter()
            .find(|(k, _)| *k == key)
            .map(|&(_, r)| r)
            .or(self.maxrate);
        let i = self.create_flow(rate, now_ns);
        if key < DIRECT_KEYS {
            let k = key as usize;
            if self.direct.len() <= k {
                self.direct.resize(k + 1, NO_FLOW);
            }
            if let Some(slot) = self.direct.get_mut(k) {
                *slot = i;
            }
        } else {
            self.hashed.insert(key, i);
        }
        i
    }

    fn create_flow(&mut self, rate: Option<Rate>, now_ns: u64) -> u32 {
        // `flows.len()` ≤ MAX_FLOWS (65536) + 1, so it fits a u32.
        let i = self.flows.len() as u32;
        self.flows.push(Flow {
            q: VecDeque::with_capacity(self.flow_limit.min(PREALLOC_MAX)),
            credit: self.quantum,
            state: FlowState::Detached,
            rate,
            next_ps: u128::from(now_ns) * u128::from(PS_PER_NS),
            detached_at_ns: now_ns,
            backlog_since_ps: 0,
        });
        i
    }

    /// Into its flow's queue; refused at the total limit, the flow limit, or an EDT beyond
    /// [`EDT_HORIZON_NS`].
    pub(crate) fn enqueue(&mut self, p: P, now_ns: u64) -> Result<(), P> {
        if self.qlen >= self.limit || p.tstamp_ns() > now_ns.saturating_add(EDT_HORIZON_NS) {
            return Err(p);
        }
        let idx = self.flow_index(p.flow(), now_ns);
        let quantum = self.quantum;
        let Some(f) = self.flows.get_mut(idx as usize) else {
            return Err(p);
        };
        if f.q.len() >= self.flow_limit {
            return Err(p);
        }
        if f.q.is_empty() {
            f.backlog_since_ps = u128::from(now_ns) * u128::from(PS_PER_NS);
        }
        f.q.push_back(p);
        self.qlen += 1;
        if f.state == FlowState::Detached {
            if now_ns.saturating_sub(f.detached_at_ns) > REFILL_DELAY_NS {
                f.credit = f.credit.max(quantum);
            }
            f.state = FlowState::New;
            self.new_flows.push_back(idx);
        }
        Ok(())
    }

    /// Moves flows whose throttle time has come to the tail of the old list.
    #[inline]
    fn unthrottle(&mut self, now_ns: u64) {
        while let Some(&Reverse((t, idx))) = self.throttled.peek() {
            if t > now_ns {
                break;
            }
            self.throttled.pop();
            if let Some(f) = self.flows.get_mut(idx as usize) {
                f.state = FlowState::Old;
                self.old_flows.push_back(idx);
            }
        }
    }

    /// The next packet by DRR among flows allowed to send now.
    pub(crate) fn dequeue(&mut self, now_ns: u64) -> Deq<P> {
        self.unthrottle(now_ns);
        let now_ps = u128::from(now_ns) * u128::from(PS_PER_NS);
        loop {
            let (idx, from_new) = match (self.new_flows.front(), self.old_flows.front()) {
                (Some(&i), _) => (i, true),
                (None, Some(&i)) => (i, false),
                (None, None) => {
                    return if self.throttled.is_empty() {
                        Deq::Empty
                    } else {
                        Deq::Throttled
                    };
                }
            };
            // The flow leaves the head of its list in every branch but the one that sends.
            let Some(f) = self.flows.get_mut(idx as usize) else {
                pop_list(&mut self.new_flows, &mut self.old_flows, from_new);
                continue;
            };
            if f.credit <= 0 {
                f.credit = f.credit.saturating_add(self.quantum);
                pop_list(&mut self.new_flows, &mut self.old_flows, from_new);
                f.state = FlowState::Old;
                self.old_flows.push_back(idx);
                continue;
            }
            let Some(head) = f.q.front() else {
                pop_list(&mut self.new_flows, &mut self.old_flows, from_new);
                if from_new && !self.old_flows.is_empty() {
                    // Force a pass through the old list before detaching (fq_dequeue:
                    // "force a pass through old_flows to prevent starvation").
                    f.state = FlowState::Old;
                    self.old_flows.push_back(idx);
                } else {
                    f.state = FlowState::Detached;
                    f.detached_at_ns = now_ns;
                }
                continue;
            };
            let mut ready_ps = u128::from(head.tstamp_ns()) * u128::from(PS_PER_NS);
            if f.rate.is_some() {
                ready_ps = ready_ps.max(f.next_ps);
            }
            if ready_ps > now_ps {
                pop_list(&mut self.new_flows, &mut self.old_flows, from_new);
                f.state = FlowState::Throttled;
                // Rounded up, so at that ns the flow is ready.
                let wake =
                    u64::try_from(ready_ps.div_ceil(u128::from(PS_PER_NS))).unwrap_or(u64::MAX);
                self.throttled.push(Reverse((wake, idx)));
                continue;
            }
            let Some(p) = f.q.pop_front() else {
                continue;
            };
            self.qlen = self.qlen.saturating_sub(1);
            let len = p.len();
            f.credit = f
                .credit
                .saturating_sub(i64::try_from(len).unwrap_or(i64::MAX));
            if let Some(rate) = f.rate {
                // A flow more than the horizon behind (its poller was descheduled) catches
                // up by the horizon only; the rest of the schedule is lost, as in Linux's
                // fq, which restarts from now. Counted when packets waited through it, so
                // a rate check can allow for it (idle time is not lost budget).
                let floor = now_ps.saturating_sub(PACING_HORIZON_PS);
                let lost_from = f.next_ps.max(f.backlog_since_ps);
                self.behind_ps += floor.saturating_sub(lost_from);
                f.next_ps = f.next_ps.max(floor) + u128::from(rate.cost_ps(len));
            }
            return Deq::Packet(p);
        }
    }

    /// `now_ns` if some flow is on a list (it may be ready; its turn decides), otherwise
    /// the earliest time a throttled flow may send; None if nothing is queued.
    pub(crate) fn next_event_ns(&self, now_ns: u64) -> Option<u64> {
        if self.qlen == 0 {
            return None;
        }
        if !self.new_flows.is_empty() || !self.old_flows.is_empty() {
            return Some(now_ns);
        }
        Some(
            self.throttled
                .peek()
                .map_or(now_ns, |&Reverse((t, _))| t.max(now_ns)),
        )
    }

    /// Pacing budget lost to stalls while packets waited, all flows together, ns.
    pub(crate) fn behind_ns(&self) -> u64 {
        u64::try_from(self.behind_ps / u128::from(PS_PER_NS)).unwrap_or(u64::MAX)
    }

    /// Packets queued in all flows.
    pub(crate) fn len(&self) -> usize {
        self.qlen
    }

    /// Everything, flow by flow (in order of first appearance), each oldest first.
    pub(crate) fn drain(&mut self, out: &mut Vec<P>) {
        for f in &mut self.flows {
            out.extend(f.q.drain(..));
            f.state = FlowState::Detached;
        }
        self.new_flows.clear();
        self.old_flows.clear();
        self.throttled.clear();
        self.qlen = 0;
    }
}

/// Takes the head off the list a flow was found on.
#[inline]
fn pop_list(new_flows: &mut VecDeque<u32>, old_flows: &mut VecDeque<u32>, from_new: bool) {
    if from_new {
        new_flows.pop_front();
    } else {
        old_flows.pop_front();
    }
}
