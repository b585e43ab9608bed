//! The generator's transmit loop, shaped like the kernel's `__dev_xmit_skb` and
//! `qdisc_restart`: streams build frames in place in the UMEM and enqueue them (or bypass
//! an empty work-conserving qdisc); each round the qdisc is dequeued up to its quota
//! (`weight_p` = 64) onto the TX ring, what the ring refuses is requeued at the head, and
//! when a shaping qdisc is throttled the thread sleeps until its watchdog time. The rate is
//! the qdisc's: there is no other sleep loop.
//!
//! Streams are back-pressured like sockets under TSQ: each may have at most
//! `backlog_per_stream` frames in the qdisc or in flight to the ring, so nothing is dropped
//! for a full qdisc and frames are built just before they are due.

use std::{
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use hdrhistogram::Histogram;

use super::{
    qdisc::{QPacket, Qdisc, QdiscStats},
    reclaim, wait_until_due,
};
use crate::{
    gen::stream::{probe_in, QueueStream, StreamSource},
    latency::probe,
    pcap::SharedPcap,
    stats::{Published, TxCounters},
    sys::{monotonic_ns, Frame},
    xsk::XskQueue,
};

/// A frame on its way through the qdisc: the UMEM frame and what the qdisc needs to know.
#[derive(Debug)]
pub struct Pkt {
    frame: Frame,
    flow: u32,
    priority: u8,
    tstamp_ns: u64,
    /// Offset of a latency probe to stamp at transmit; 0: none.
    probe_at: u16,
}

impl QPacket for Pkt {
    #[inline]
    fn len(&self) -> usize {
        self.frame.len()
    }
    #[inline]
    fn flow(&self) -> u32 {
        self.flow
    }
    #[inline]
    fn priority(&self) -> u8 {
        self.priority
    }
    #[inline]
    fn tstamp_ns(&self) -> u64 {
        self.tstamp_ns
    }
}

/// Transmit-loop settings.
#[derive(Debug, Clone, Copy)]
pub struct XmitConfig {
    /// Frames dequeued per round at most: 64, the kernel's `weight_p` (dev_weight).
    pub quota: usize,
    /// Frames a stream may have in the qdisc or on the way to the ring: one quota, so a
    /// round can always fill its quota from one stream while the UMEM (4096 frames) holds
    /// the backlogs of dozens of streams.
    pub backlog_per_stream: usize,
    /// Stop producing at this instant (the run's duration plus grace).
    pub deadline: Option<Instant>,
    /// How long the completion ring may stand still in the final drain: 500 ms.
    pub drain_timeout: Duration,
    /// Frames a transmit-only queue keeps in its fill ring.
    pub fill_target: u32,
    /// Completion entries reclaimed per round at most: the completion ring size.
    pub reclaim_max: u32,
    /// The run's origin, shared by all queues so their departure times (replay timing,
    /// first/last departures) are on one clock. None: the loop's own start.
    pub origin: Option<Instant>,
    /// How long the loop may make no progress at all (nothing sent, nothing completed,
    /// nothing throttled) before it gives up and counts `tx_stalled`: 1 s, far beyond any
    /// completion latency, so only a dead ring trips it.
    pub stall_timeout: Duration,
}

/// How far ahead of its departure time a replayed frame is built: 1 ms, enough for a whole
/// batch at any rate a veth reaches, and well inside fq's 10 s EDT horizon.
const EDT_LOOKAHEAD_NS: u64 = 1_000_000;

/// When the source's next frame may be built, if not yet: its departure time minus the
/// lookahead, for a frame that departs more than the lookahead after `now`.
#[inline]
fn build_at(source: &StreamSource, now: u64) -> Option<u64> {
    source
        .peek_edt()
        .filter(|&e| e > now + EDT_LOOKAHEAD_NS)
        .map(|e| e - EDT_LOOKAHEAD_NS)
}

/// Longest inter-departure gap the histograms record: 60 s (longer ones count as 60 s).
pub const GAP_MAX_NS: u64 = 60_000_000_000;

impl Default for XmitConfig {
    fn default() -> Self {
        XmitConfig {
            quota: 64,
            backlog_per_stream: 64,
            deadline: None,
            drain_timeout: Duration::from_millis(500),
            fill_target: 64,
            reclaim_max: 2048,
            origin: None,
            stall_timeout: Duration::from_secs(1),
        }
    }
}

/// What one stream did on one queue.
#[derive(Debug)]
pub struct StreamTx {
    /// Frames built.
    pub built: u64,
    /// Frames put on the TX ring.
    pub tx_packets: u64,
    /// Their bytes (no FCS).
    pub tx_bytes: u64,
    /// Frames the qdisc dropped at enqueue (its limit).
    pub qdisc_dropped: u64,
    /// Frames still queued when the run stopped (freed, never sent).
    pub unsent_at_stop: u64,
    /// Inter-departure gaps on this queue, ns. The k frames of the stream in one batch
    /// share a submit time: the time since the stream's previous batch is spread over them
    /// (k gaps of Δ/k), the spacing they get on the wire as the kernel sends the batch.
    pub gaps: Histogram<u64>,
    /// Time of the first and last departure, ns from the origin.
    pub first_last_ns: Option<(u64, u64)>,
    /// Latency probes sent (stamped and put on the ring).
    pub probes: u64,
    in_flight: usize,
}

impl StreamTx {
    fn new() -> Self {
        StreamTx {
            built: 0,
            tx_packets: 0,
            tx_bytes: 0,
            qdisc_dropped: 0,
            unsent_at_stop: 0,
            // 1 ns to 60 s with 3 significant digits (~0.1% resolution): longer gaps are
            // recorded as 60 s.
            gaps: Histogram::new_with_bounds(1, GAP_MAX_NS, 3)
                .expect("constant histogram bounds are valid"),
            first_last_ns: None,
            probes: 0,
            in_flight: 0,
        }
    }
}

/// What one queue did, at the end of a run.
#[derive(Debug)]
pub struct XmitResult {
    /// Queue counters.
    pub counters: TxCounters,
    /// Per stream, in the order given.
    pub streams: Vec<StreamTx>,
    /// The qdisc's statistics.
    pub qdisc: QdiscStats,
    /// From the loop's start to the last frame put on the ring.
    pub produced: Duration,
    /// For batches with probes: ns from the probes' transmit stamp to the return of the
    /// ring submit and kick (the timestamp-to-ring delay, self-measured).
    pub stamp_to_ring: Histogram<u64>,
}

/// Runs the generator on `q` until every stream is done, the deadline, or `stop`; then
/// drains the completion ring. `progress[i]` gets stream i's frames sent, every round.
#[expect(
    clippy::too_many_arguments,
    reason = "the queue, its streams and qdisc, and the run's shared state"
)]
pub fn run_xmit(
    q: &mut XskQueue,
    streams: &mut [QueueStream],
    qdisc: &mut Qdisc<Pkt>,
    cfg: &XmitConfig,
    tap: Option<&SharedPcap>,
    stop: &AtomicBool,
    published: &Published<TxCounters>,
    progress: &[AtomicU64],
) -> XmitResult {
    let mut c = TxCounters::default();
    let mut st: Vec<StreamTx> = streams.iter().map(|_| StreamTx::new()).collect();
    let quota = cfg.quota.max(1);
    let mut fresh: Vec<Frame> = Vec::with_capacity(cfg.backlog_per_stream);
    let mut out: Vec<Pkt> = Vec::with_capacity(quota);
    let mut frames: Vec<Frame> = Vec::with_capacity(quota);
    // Per frame of a batch: (stream, length, probe offset or 0).
    let mut meta: Vec<(u32, u32, u16)> = Vec::with_capacity(quota);
    let mut stamp_to_ring = Histogram::<u64>::new_with_bounds(1, GAP_MAX_NS, 3)
        .expect("constant histogram bounds are valid");
    let mut tap_buf: Vec<u8> = Vec::new();
    let mut tap_ends: Vec<usize> = Vec::with_capacity(quota);
    // Frames going back to the pool unused (a source with nothing to give).
    let mut unused: Vec<Frame> = Vec::with_capacity(cfg.backlog_per_stream);
    // Frames of each stream in the batch being sent.
    let mut per_stream: Vec<u64> = vec![0; streams.len()];
    let epoch_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    q.refill(cfg.fill_target);
    let origin = cfg.origin.unwrap_or_else(Instant::now);
    // The origin on CLOCK_MONOTONIC (Instant's clock on Linux), for probes' schedules.
    let origin_mono = monotonic_ns()
        .saturating_sub(Instant::now().saturating_duration_since(origin).as_nanos() as u64);
    let mut last_send = origin;
    let mut last_progress = Instant::now();
    loop {
        c.rounds += 1;
        let reclaimed = q.reclaim(cfg.reclaim_max as usize) as u64;
        c.completed += reclaimed;
        let now_i = Instant::now();
        if reclaimed > 0 {
            last_progress = now_i;
        }
        let now = now_i.saturating_duration_since(origin).as_nanos() as u64;
        if stop.load(Ordering::Relaxed) || cfg.deadline.is_some_and(|d| now_i >= d) {
            break;
        }

        // Produce: each active stream tops its backlog up, building frames in place. A
        // replayed frame is built only when its departure time is near (EDT lookahead).
        let mut any_active = false;
        let mut hold_until: Option<u64> = None;
        for (i, s) in streams.iter_mut().enumerate() {
            let t = &mut st[i];
            if !s.active(t.built, now_i) {
                continue;
            }
            any_active = true;
            let mut want = cfg.backlog_per_stream.saturating_sub(t.in_flight);
            if let Some(cnt) = s.count {
                want = want.min(cnt.saturating_sub(t.built) as usize);
            }
            if want == 0 {
                continue;
            }
            if let Some(at) = build_at(&s.source, now) {
                hold_until = Some(hold_until.map_or(at, |h| h.min(at)));
                continue;
            }
            if q.alloc(&mut fresh, want) < want {
                c.pool_empty += 1;
            }
            for mut f in fresh.drain(..) {
                if let Some(at) = build_at(&s.source, now) {
                    hold_until = Some(hold_until.map_or(at, |h| h.min(at)));
                    unused.push(f);
                    continue;
                }
                let mut edt = 0;
                let mut probe_at = 0;
                let n = q.area().build(&mut f, |buf| {
                    let (n, e) = s.source.next_into(buf);
                    edt = e;
                    if let (Some(pg), Some(frame)) = (s.probe.as_mut(), buf.get_mut(..n)) {
                        probe_at = match s.source {
                            StreamSource::Synth(_) => pg.mark(frame, origin_mono),
                            StreamSource::Replay(_) => probe_in(frame),
                        }
                        .unwrap_or(0);
                    }
                    n
                });
                if n == 0 {
                    // Exhausted or unbuildable: the frame goes back to the pool.
                    unused.push(f);
                    continue;
                }
                t.built += 1;
                let p = Pkt {
                    frame: f,
                    flow: i as u32,
                    priority: s.priority,
                    tstamp_ns: edt,
                    probe_at,
                };
                // TCQ_F_CAN_BYPASS: an empty work-conserving qdisc is skipped, unless the
                // frame carries a departure time the qdisc must honour.
                if out.len() < quota && edt == 0 && qdisc.can_bypass() {
                    qdisc.bypassed(1, n as u64);
                    out.push(p);
                    t.in_flight += 1;
                    continue;
                }
                match qdisc.enqueue(p, now) {
                    Ok(()) => t.in_flight += 1,
                    Err(p) => {
                        t.qdisc_dropped += 1;
                        unused.push(p.frame);
                    }
                }
            }
            if !unused.is_empty() {
                q.release(&mut unused);
            }
        }

        // Dequeue up to the quota.
        if out.len() < quota {
            qdisc.dequeue_batch(now, quota - out.len(), &mut out);
        }
        if out.is_empty() {
            if !any_active && qdisc.is_empty() {
                break; // every stream done and everything sent
            }
            let wake = match (qdisc.next_event_ns(now).filter(|&t| t > now), hold_until) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            match wake {
                Some(t) => {
                    // Throttled (the qdisc's watchdog) or a replayed frame not yet near its
                    // departure time. Publish while waiting.
                    last_progress = now_i;
                    c.pacing_waits += 1;
                    published.publish(c);
                    wait_until_due(Duration::from_nanos(t.saturating_sub(now)), cfg.deadline);
                }
                None => {
                    // Nothing due and nothing throttled: frames are all in flight (pool
                    // empty). Let the kernel move; give up if it never does.
                    if now_i.saturating_duration_since(last_progress) > cfg.stall_timeout {
                        c.tx_stalled += 1;
                        break;
                    }
                    if q.kick_if_needed() {
                        c.tx_kicks += 1;
                    }
                    std::thread::yield_now();
                }
            }
            continue;
        }

        // Transmit: frames to the ring, their stream and length kept aside.
        meta.clear();
        let mut stamped = None;
        for mut p in out.drain(..) {
            let len = p.frame.len();
            if p.probe_at != 0 {
                // One clock read per batch: its frames go to the ring together.
                let now_ns = *stamped.get_or_insert_with(monotonic_ns);
                q.area().build(&mut p.frame, |buf| {
                    if let Some(b) = buf.get_mut(..len) {
                        probe::stamp_at(b, usize::from(p.probe_at), now_ns);
                    }
                    len
                });
            }
            meta.push((p.flow, len as u32, p.probe_at));
            frames.push(p.frame);
        }
        if tap.is_some_and(|w| w.wants_more()) {
            tap_buf.clear();
            tap_ends.clear();
            for f in &frames {
                tap_buf.extend_from_slice(q.area().bytes(f));
                tap_ends.push(tap_buf.len());
            }
        }
        let before = frames.len();
        let (sent, kicked) = q.send(&mut frames);
        let sent_at = Instant::now();
        if let Some(t) = stamped {
            let _ = stamp_to_ring.record(monotonic_ns().saturating_sub(t).clamp(1, GAP_MAX_NS));
        }
        let dep = sent_at.saturating_duration_since(origin).as_nanos() as u64;
        c.tx_kicks += u64::from(kicked);
        if sent > 0 {
            last_send = sent_at;
            last_progress = sent_at;
            c.tx_batches += 1;
            c.tx_packets += sent as u64;
            for &(flow, len, probe_at) in &meta[..sent] {
                let Some(t) = st.get_mut(flow as usize) else {
                    continue;
                };
                t.tx_packets += 1;
                t.probes += u64::from(probe_at != 0);
                t.tx_bytes += u64::from(len);
                c.tx_bytes += u64::from(len);
                t.in_flight = t.in_flight.saturating_sub(1);
                if let Some(k) = per_stream.get_mut(flow as usize) {
                    *k += 1;
                }
            }
            for (t, k) in st.iter_mut().zip(per_stream.iter_mut()) {
                if *k == 0 {
                    continue;
                }
                t.first_last_ns = match t.first_last_ns {
                    Some((first, last)) => {
                        let gap = (dep.saturating_sub(last) / *k).max(1);
                        let _ = t.gaps.record_n(gap.min(GAP_MAX_NS), *k);
                        Some((first, dep))
                    }
                    None => {
                        // The first batch: its frames after the first left back to back.
                        if *k > 1 {
                            let _ = t.gaps.record_n(1, *k - 1);
                        }
                        Some((dep, dep))
                    }
                };
                *k = 0;
            }
        }
        if sent < before {
            // The ring is full: the rest goes back to the head of the qdisc, in order.
            c.tx_ring_full += 1;
            for (f, &(flow, _, probe_at)) in frames.drain(..).zip(&meta[sent..]) {
                out.push(Pkt {
                    frame: f,
                    flow,
                    priority: streams.get(flow as usize).map_or(0, |s| s.priority),
                    tstamp_ns: 0,
                    // Stamped again when it goes to the ring.
                    probe_at,
                });
            }
            qdisc.requeue(&mut out);
        }
        if let (Some(w), true) = (tap, sent > 0) {
            if w.wants_more() {
                let ts = epoch_ns + dep;
                let mut start = 0;
                let frames = tap_ends[..sent].iter().map(|&end| {
                    let f = (ts, &tap_buf[start..end]);
                    start = end;
                    f
                });
                // A write error is reported by `finish` at the end; sending goes on.
                let _ = w.offer_batch(frames);
            }
        }
        for (p, t) in progress.iter().zip(&st) {
            p.store(t.tx_packets, Ordering::Relaxed);
        }
        published.publish(c);
    }
    let produced = last_send.saturating_duration_since(origin);

    // Teardown: what is still queued was never sent; free it, then drain completions.
    qdisc.drain(&mut out);
    for p in out.drain(..) {
        if let Some(t) = st.get_mut(p.flow as usize) {
            t.unsent_at_stop += 1;
        }
        frames.push(p.frame);
    }
    q.release(&mut frames);
    c.completed += reclaim::drain(q, cfg.drain_timeout, cfg.reclaim_max as usize);
    for (p, t) in progress.iter().zip(&st) {
        p.store(t.tx_packets, Ordering::Relaxed);
    }
    published.publish(c);
    XmitResult {
        counters: c,
        qdisc: qdisc.stats(),
        streams: st,
        produced,
        stamp_to_ring,
    }
}
