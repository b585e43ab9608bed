//! The transmit side: frames built in place in the UMEM, put on the TX ring in batches
//! with one kick per batch (only when the kernel asks: the `xmit_more` idea), and the
//! completion ring reclaimed into the pool every round, the way the kernel frees
//! transmitted skbs from its completion queue.
//!
//! Two loops: [`xmit::run_xmit`], the generator's (streams → qdisc → ring, the rate set by
//! the qdisc), and [`run_tx`], one fixed frame as fast as possible: the data path's
//! reference loop, kept as the benchmark baseline (`skiff gen --fixed-frame`).

pub mod gso;
pub mod ip;
pub mod neigh;
pub mod qdisc;
pub mod reclaim;
pub mod tcp;
pub mod xmit;

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use crate::{
    stats::{Published, TxCounters},
    xsk::{FrameAccounting, XdpStatistics, XskQueue},
};

/// TX loop settings.
#[derive(Debug, Clone, Copy)]
pub struct TxConfig {
    /// Frames per ring access and per kick. Default 64: the NAPI weight, and the qdisc
    /// dequeue quota; large enough that the kick is amortised (ARCHITECTURE.md: the
    /// per-packet cost dominates in copy mode, not the syscall).
    pub batch: u32,
    /// Stop after this many frames on this queue.
    pub count: Option<u64>,
    /// Stop producing at this instant.
    pub deadline: Option<Instant>,
    /// How long the completion ring may stand still during the final drain before the
    /// missing frames are reported as never completed: 500 ms, far beyond a veth's
    /// transmit time, and short enough that Ctrl-C feels immediate.
    pub drain_timeout: Duration,
    /// Frames a transmit-only queue keeps in its fill ring.
    pub fill_target: u32,
    /// Completion entries reclaimed per round at most: the completion ring size.
    pub reclaim_max: u32,
}

impl Default for TxConfig {
    fn default() -> Self {
        TxConfig {
            batch: 64,
            count: None,
            deadline: None,
            drain_timeout: Duration::from_millis(500),
            fill_target: 64,
            reclaim_max: 2048,
        }
    }
}

/// What one TX queue did, at the end of a run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TxQueueReport {
    /// Queue index.
    pub queue: u32,
    /// CPU the poller was pinned to, if any.
    pub cpu: Option<usize>,
    /// Counters.
    #[serde(flatten)]
    pub counters: TxCounters,
    /// Frames handed to the kernel that never came back on the completion ring (invalid
    /// descriptors, or a ring that stopped moving).
    pub never_completed: u64,
    /// Kernel's socket counters.
    pub xdp_statistics: XdpStatistics,
    /// Where the frames were at the end.
    pub frames: FrameAccounting,
    /// Seconds from the first to the last frame put on the ring.
    pub elapsed_s: f64,
}

/// Runs the TX loop on `q`, sending `frame` (a complete frame without FCS) as fast as the
/// ring takes it until the count, the deadline or `stop`, then drains the completion ring. Returns the counters and the
/// time spent producing.
pub fn run_tx(
    q: &mut XskQueue,
    frame: &[u8],
    cfg: &TxConfig,
    stop: &AtomicBool,
    published: &Arc<Published<TxCounters>>,
) -> (TxCounters, Duration) {
    let mut c = TxCounters::default();
    let batch = cfg.batch.max(1) as usize;
    let mut pending = Vec::with_capacity(batch);
    let frame_len = frame.len() as u64;
    q.refill(cfg.fill_target);
    let start = Instant::now();
    loop {
        c.rounds += 1;
        c.completed += q.reclaim(cfg.reclaim_max as usize) as u64;
        if stop.load(Ordering::Relaxed) || cfg.deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let mut want = batch;
        if let Some(limit) = cfg.count {
            let left = limit.saturating_sub(c.tx_packets) as usize;
            if left == 0 {
                break;
            }
            want = want.min(left);
        }
        // Requeued frames (ring was full) go first; new frames are built behind them.
        let have = pending.len();
        if want > have {
            let got = q.alloc(&mut pending, want - have);
            if got < want - have {
                c.pool_empty += 1;
            }
            let area = q.area();
            for f in &mut pending[have..] {
                area.write(f, frame);
            }
        }
        if pending.is_empty() {
            if q.kick_if_needed() {
                c.tx_kicks += 1;
            }
            std::hint::spin_loop();
            continue;
        }
        let before = pending.len();
        let (sent, kicked) = q.send(&mut pending);
        c.tx_packets += sent as u64;
        c.tx_bytes += sent as u64 * frame_len;
        c.tx_kicks += u64::from(kicked);
        c.tx_batches += u64::from(sent > 0);
        if sent < before {
            c.tx_ring_full += 1;
        }
        published.publish(c);
    }
    let produced = start.elapsed();
    c.completed += reclaim::drain(q, cfg.drain_timeout, cfg.reclaim_max as usize);
    q.release(&mut pending);
    published.publish(c);
    (c, produced)
}

/// Sleeps for waits long enough for the scheduler to be accurate, yields for short ones.
pub(crate) fn wait_until_due(wait: Duration, deadline: Option<Instant>) {
    // thread::sleep overshoots by the timer slack (50 µs by default) plus wake-up latency,
    // so sleep only for what exceeds ~100 µs and yield the core for the rest.
    const SPIN_BELOW: Duration = Duration::from_micros(100);
    let wait = match deadline {
        Some(d) => wait.min(d.saturating_duration_since(Instant::now())),
        None => wait,
    };
    // At most 50 ms per sleep: the loop re-checks the stop flag between sleeps, so Ctrl-C
    // is honoured within that even at a rate of one packet a minute.
    const MAX_SLEEP: Duration = Duration::from_millis(50);
    if wait > SPIN_BELOW {
        std::thread::sleep((wait - SPIN_BELOW).min(MAX_SLEEP));
    } else {
        // Give the core to whoever else is runnable (the receiver, on a small machine).
        std::thread::yield_now();
    }
}
