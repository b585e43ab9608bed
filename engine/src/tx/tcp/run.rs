//! The TCP poller: one thread per queue doing, each round, what the kernel splits between
//! softirqs and the socket calls: reclaim completions (back to the pool, or parked for
//! the retransmit queue), top up the fill ring, take received frames into the stack, let
//! the application read and write, run timers and output, and move the stack's frames
//! through the qdisc (fq with per-connection pacing) onto the TX ring with one kick per
//! round. Each round receives and transmits up to `TcpRunConfig::budget` frames.

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use super::stack::{Stack, TxFrame};
use crate::{
    rx::gro::{Gro, GroConfig, GroCounters, GroPacket},
    sys::{self, monotonic_ns, Frame, ThreadCpu, XdpStatistics},
    tx::qdisc::{Qdisc, QdiscStats},
    xsk::XskQueue,
};

/// What the application does each round, from inside the poller.
pub trait TcpApp {
    /// Called once per round after input; reads and writes through `stack`. Returns false
    /// when the application is done (the loop then drains and returns).
    fn on_round(&mut self, stack: &mut Stack, now: Instant) -> bool;
}

/// Poller settings.
#[derive(Debug, Clone, Copy)]
pub struct TcpRunConfig {
    /// Frames taken from the RX ring, and frames the qdisc puts on the TX ring, per round
    /// at most: 256. The kernel's NAPI polls a device for 64 (`weight_p`) and its qdisc
    /// run takes 64 (`dev_tx_weight`), but `net_rx_action` and `net_tx_action` go round
    /// again until `netdev_budget` (300) or the queue is empty. A round here also runs
    /// the application and the connections' timers and output, so it takes four NAPI
    /// weights' worth each way to spread that cost over more frames (PERFORMANCE.md, "Poll budget",
    /// measured 64 against 256). RX and TX get the same budget: every two data frames
    /// out bring an ACK in, and a smaller RX budget let ACKs pile up until the RX ring
    /// overflowed and dropped them.
    pub budget: usize,
    /// Frames kept in the fill ring: 2048, the ring's size.
    pub fill_target: u32,
    /// Completions reclaimed per round at most: the completion ring's size, 2048.
    pub reclaim_max: usize,
    /// Longest sleep when idle: 1 ms, so timers (delayed ACK 40 ms, RTO ≥ 200 ms) fire
    /// within 1 ms of their time.
    pub idle_max: Duration,
    /// Hard stop.
    pub deadline: Option<Instant>,
    /// Receive through GRO (the kernel's `napi_gro_receive` in the driver's poll): frames
    /// of a flow that arrive in order in one round reach TCP as one segment. `None`: each
    /// frame alone.
    pub gro: Option<GroConfig>,
}

impl Default for TcpRunConfig {
    fn default() -> Self {
        TcpRunConfig {
            budget: 256,
            fill_target: 2048,
            reclaim_max: 2048,
            idle_max: Duration::from_millis(1),
            deadline: None,
            gro: Some(GroConfig::default()),
        }
    }
}

/// The poller's own counters.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct TcpRunCounters {
    /// Rounds.
    pub rounds: u64,
    /// Frames received.
    pub rx_frames: u64,
    /// Frames put on the TX ring.
    pub tx_frames: u64,
    /// TX kicks.
    pub tx_kicks: u64,
    /// Rounds the TX ring was full.
    pub tx_ring_full: u64,
    /// Frames the qdisc refused (freed).
    pub qdisc_drops: u64,
    /// Completions reclaimed.
    pub completed: u64,
    /// Idle waits.
    pub idle_waits: u64,
}

/// What a run did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TcpRunReport {
    /// Poller counters.
    pub poller: TcpRunCounters,
    /// The qdisc's counters.
    pub qdisc: QdiscStats,
    /// Seconds the loop ran.
    pub elapsed_s: f64,
    /// GRO's counters, when it ran.
    pub gro: Option<GroCounters>,
    /// The socket's XDP_STATISTICS at the end: frames the kernel dropped because the RX
    /// ring was full or the fill ring empty show here, not in TCP's counters.
    pub xdp_statistics: XdpStatistics,
    /// The poller thread's CPU time over the run (`getrusage(RUSAGE_THREAD)`), the drain
    /// at the end included.
    pub cpu: ThreadCpu,
}

/// Runs the poller until the application is done, `stop` is set or the deadline passes.
/// Frames still in flight at the end are drained from the completion ring (500 ms at
/// most); everything goes back to the stack's pool.
pub fn run_tcp(
    q: &mut XskQueue,
    stack: &mut Stack,
    qdisc: &mut Qdisc<TxFrame>,
    app: &mut dyn TcpApp,
    cfg: &TcpRunConfig,
    stop: &AtomicBool,
) -> TcpRunReport {
    let start = Instant::now();
    let cpu0 = sys::thread_cpu();
    let origin_ns = monotonic_ns();
    let mut c = TcpRunCounters::default();
    let mut rx: Vec<Frame> = Vec::with_capacity(cfg.budget);
    let mut comp: Vec<Frame> = Vec::with_capacity(cfg.reclaim_max);
    let mut out: Vec<TxFrame> = Vec::new();
    let mut batch: Vec<TxFrame> = Vec::with_capacity(cfg.budget);
    let mut frames: Vec<Frame> = Vec::with_capacity(cfg.budget);
    let mut rates: Vec<u64> = Vec::new();
    // Flow and rate of each frame of the batch, to requeue what the ring refuses.
    let mut flows: Vec<(u32, Option<u64>)> = Vec::with_capacity(cfg.budget);
    let mut app_running = true;
    let mut gro: Option<Gro<Frame>> = cfg.gro.map(Gro::new);
    let mut gro_out: Vec<GroPacket<Frame>> = Vec::with_capacity(cfg.budget);
    // Frames going from the pool to the fill ring.
    let mut give: Vec<Frame> = Vec::with_capacity(cfg.budget * 4);
    loop {
        c.rounds += 1;
        let now_ns = monotonic_ns().saturating_sub(origin_ns);
        let now = Instant::now();
        stack.set_now(monotonic_ns() / 1000);
        if stop.load(Ordering::Relaxed) || cfg.deadline.is_some_and(|d| now >= d) || !app_running {
            break;
        }
        let mut work = false;
        // Completions.
        let n = q.reclaim_to(&mut comp, cfg.reclaim_max);
        if n > 0 {
            c.completed += n as u64;
            stack.completed(&mut comp);
            work = true;
        }
        // Fill ring: hand the socket frames from the stack's pool, keep it topped up.
        let pool = stack.pool_mut();
        if q.free_len() < cfg.budget && pool.len() > cfg.budget {
            let take = cfg.budget * 4;
            give.extend(pool.drain(pool.len().saturating_sub(take)..));
            q.release(&mut give);
            pool.append(&mut give);
        }
        q.refill(cfg.fill_target);
        // Input.
        let got = q.recv(&mut rx, cfg.budget);
        if got > 0 {
            c.rx_frames += got as u64;
            work = true;
            match gro.as_mut() {
                Some(g) => {
                    for f in rx.drain(..) {
                        g.receive_with(f, stack.area(), |a, f| a.bytes(f), None, &mut gro_out);
                    }
                    // End of the round's receive (`napi_complete`): nothing stays held.
                    g.flush(&mut gro_out);
                    for p in gro_out.drain(..) {
                        match p {
                            GroPacket::Single(f) => stack.input(f),
                            GroPacket::Merged(m) => g.recycle(stack.input_merged(m)),
                        }
                    }
                }
                None => {
                    for f in rx.drain(..) {
                        stack.input(f);
                    }
                }
            }
        }
        // The application.
        app_running = app.on_round(stack, now);
        // Timers and output.
        stack.poll();
        stack.drain_out(&mut out);
        for p in out.drain(..) {
            let flow = p.flow as usize;
            if let Some(r) = p.rate {
                if rates.len() <= flow && flow < (1 << 20) {
                    rates.resize(flow + 1, 0);
                }
                if let Some(slot) = rates.get_mut(flow) {
                    if *slot != r {
                        *slot = r;
                        qdisc.set_flow_rate(p.flow, p.qdisc_rate(), now_ns);
                    }
                }
            }
            if let Err(p) = qdisc.enqueue(p, now_ns) {
                c.qdisc_drops += 1;
                stack.dropped(p.frame);
            }
        }
        // The qdisc onto the ring.
        qdisc.dequeue_batch(now_ns, cfg.budget, &mut batch);
        if !batch.is_empty() {
            work = true;
            flows.clear();
            flows.extend(batch.iter().map(|p| (p.flow, p.rate)));
            frames.extend(batch.drain(..).map(|p| p.frame));
            let before = frames.len();
            let (sent, kicked) = q.send(&mut frames);
            c.tx_frames += sent as u64;
            c.tx_kicks += u64::from(kicked);
            if sent < before {
                c.tx_ring_full += 1;
                let mut rest: Vec<TxFrame> = frames
                    .drain(..)
                    .zip(flows[sent..].iter())
                    .map(|(frame, &(flow, rate))| TxFrame { frame, flow, rate })
                    .collect();
                qdisc.requeue(&mut rest);
            }
        } else {
            q.kick_if_needed();
        }
        if !work {
            c.idle_waits += 1;
            // Sleep until the next timer or qdisc event, at most idle_max, waking on RX.
            let next_q = qdisc
                .next_event_ns(now_ns)
                .map(|t| Duration::from_nanos(t.saturating_sub(now_ns)));
            let next_t = stack
                .next_timer()
                .map(|t| Duration::from_micros(t.saturating_sub(monotonic_ns() / 1000)));
            let wait = [Some(cfg.idle_max), next_q, next_t]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(cfg.idle_max);
            if wait.is_zero() {
                // Something is due now: straight into the next round.
            } else if q.tx_outstanding() > 0 {
                // Completions are due any moment.
                std::thread::yield_now();
            } else if wait >= Duration::from_millis(1) {
                let _ = q.poll_rx(wait.as_millis().min(i32::MAX as u128) as i32);
            } else {
                // A gap shorter than poll's 1 ms resolution, mostly fq's next paced
                // release: sleep through most of it rather than spin, so the core goes to
                // whoever else runs there (the receiver on a small machine; with a
                // thousand paced flows this was most rounds, and the spinning cost 1.3x
                // the CPU per byte). RX waits as long at most, under 1 ms.
                crate::tx::wait_until_due(wait, cfg.deadline);
            }
        }
    }
    // Drain: frames still queued go back, completions are awaited briefly.
    let mut rest = Vec::new();
    qdisc.drain(&mut rest);
    for p in rest {
        stack.dropped(p.frame);
    }
    let drain_start = Instant::now();
    while q.tx_outstanding() > 0 && drain_start.elapsed() < Duration::from_millis(500) {
        q.kick_if_needed();
        if q.reclaim_to(&mut comp, cfg.reclaim_max) > 0 {
            stack.completed(&mut comp);
        } else {
            std::thread::sleep(Duration::from_micros(50));
        }
    }
    TcpRunReport {
        poller: c,
        qdisc: qdisc.stats(),
        elapsed_s: start.elapsed().as_secs_f64(),
        gro: gro.map(|g| *g.counters()),
        xdp_statistics: q.statistics(),
        cpu: {
            let end = sys::thread_cpu();
            ThreadCpu {
                user_s: end.user_s - cpu0.user_s,
                sys_s: end.sys_s - cpu0.sys_s,
            }
        },
    }
}
