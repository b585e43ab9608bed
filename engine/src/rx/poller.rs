//! NAPI-style RX polling of one queue, as the kernel's `net_rx_action` does for a device:
//! each round takes frames in batches until a packet budget or a time budget runs out
//! (`time_squeeze` when work was left), then tops the fill ring up; an idle queue is
//! busy-polled for a while and then waited on with `poll()`.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use crate::{
    rx::{
        consume::{Consumer, Rx},
        gro::GroCounters,
    },
    stats::{Published, RxCounters},
    sys::Frame,
    xsk::{FrameAccounting, XdpStatistics, XskQueue},
};

/// What an idle poller does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleMode {
    /// Keep polling: lowest latency, a whole core.
    BusyPoll,
    /// Busy-poll for `idle_rounds_before_sleep` empty rounds, then sleep in `poll()`.
    Adaptive,
}

/// Poll-loop tunables. Defaults mirror the kernel's (reference/kernel-mechanisms.md).
#[derive(Debug, Clone, Copy)]
pub struct PollConfig {
    /// Frames per round: `net.core.netdev_budget` = 300.
    pub budget: u32,
    /// Time per round: `net.core.netdev_budget_usecs` = 2000 µs.
    pub time_budget: Duration,
    /// Frames per ring access: 64, the NAPI weight (`weight_p`/`dev_weight`).
    pub batch: u32,
    /// Idle behaviour.
    pub idle: IdleMode,
    /// Empty rounds before sleeping: 1000 rounds ≈ tens of µs of spinning, so a busy
    /// queue never sleeps between bursts while an idle one costs nothing.
    pub idle_rounds_before_sleep: u32,
    /// Longest `poll()` sleep: 100 ms, so a stop request is seen within that.
    pub sleep_ms: i32,
    /// Frames kept in the fill ring: the whole ring (default 2048).
    pub fill_target: u32,
}

impl Default for PollConfig {
    fn default() -> Self {
        PollConfig {
            budget: 300,
            time_budget: Duration::from_micros(2000),
            batch: 64,
            idle: IdleMode::Adaptive,
            idle_rounds_before_sleep: 1000,
            sleep_ms: 100,
            fill_target: 2048,
        }
    }
}

/// What one RX queue saw, at the end of a run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RxQueueReport {
    /// Queue index.
    pub queue: u32,
    /// CPU the poller was pinned to, if any.
    pub cpu: Option<usize>,
    /// Counters.
    #[serde(flatten)]
    pub counters: RxCounters,
    /// Kernel's socket counters.
    pub xdp_statistics: XdpStatistics,
    /// Where the frames were at the end.
    pub frames: FrameAccounting,
}

/// First and last instants a round of this queue received something.
pub type ActiveSpan = Option<(Instant, Instant)>;

/// What a poller does with the frames it takes from its RX ring.
pub trait RxStage {
    /// Takes a batch received together; frames it is done with go back to `q`'s fill
    /// ring (now or at a later call).
    fn batch(&mut self, q: &mut XskQueue, batch: &mut Vec<Frame>);
    /// End of a poll round: GRO flushes (local consumer), wakeups go out and frames come
    /// back from the workers (steering).
    fn end_round(&mut self, q: &mut XskQueue);
    /// Frames handed on and not yet back (at workers, held by GRO).
    fn outstanding(&self) -> usize;
    /// Counters the stage adds to the queue's (classes, when it classifies).
    fn counters(&self) -> RxCounters;
    /// GRO's counters, when the stage runs GRO.
    fn gro_counters(&self) -> Option<GroCounters> {
        None
    }
}

/// The consumer runs in the poller itself (no steering).
#[derive(Debug)]
pub struct Local {
    /// The consumer.
    pub consumer: Consumer,
    items: Vec<Rx>,
    done: Vec<Frame>,
}

impl Local {
    /// A local stage around `consumer` (queue 0 of its area list).
    pub fn new(consumer: Consumer) -> Self {
        Local {
            consumer,
            items: Vec::new(),
            done: Vec::new(),
        }
    }
}

impl RxStage for Local {
    fn batch(&mut self, q: &mut XskQueue, batch: &mut Vec<Frame>) {
        // No flow hash here: GRO, if on, hashes the flow key it parses.
        self.items.extend(batch.drain(..).map(|frame| Rx {
            src: 0,
            frame,
            hash: None,
        }));
        let done = &mut self.done;
        self.consumer
            .consume(&mut self.items, &mut |rx: Rx| done.push(rx.frame));
        q.recycle(&mut self.done);
    }
    fn end_round(&mut self, q: &mut XskQueue) {
        let done = &mut self.done;
        self.consumer.end_round(&mut |rx: Rx| done.push(rx.frame));
        q.recycle(&mut self.done);
    }
    fn outstanding(&self) -> usize {
        self.consumer.held()
    }
    fn counters(&self) -> RxCounters {
        self.consumer.counters
    }
    fn gro_counters(&self) -> Option<GroCounters> {
        self.consumer.gro_counters()
    }
}

/// Runs the RX poll loop on `q` until `stop` is set, handing what arrives to `stage`
/// and publishing counters every round. After `stop` it waits (up to 1 s) for the frames
/// the stage handed on to come back. Returns the counters and when frames first and
/// last arrived.
pub fn run_rx(
    q: &mut XskQueue,
    cfg: &PollConfig,
    stop: &AtomicBool,
    published: &Arc<Published<RxCounters>>,
    stage: &mut dyn RxStage,
) -> (RxCounters, ActiveSpan) {
    let mut span: ActiveSpan = None;
    let mut c = RxCounters::default();
    let mut batch = Vec::with_capacity(cfg.batch as usize);
    let mut idle_rounds = 0u32;
    let with_stage = |c: &RxCounters, stage: &dyn RxStage| {
        let mut all = *c;
        all.add(&stage.counters());
        all
    };
    q.refill(cfg.fill_target);
    while !stop.load(Ordering::Relaxed) {
        c.rounds += 1;
        let start = Instant::now();
        let mut done = 0u32;
        loop {
            let want = cfg.batch.min(cfg.budget - done) as usize;
            let n = q.recv(&mut batch, want);
            if n == 0 {
                break;
            }
            c.rx_batches += 1;
            c.rx_packets += n as u64;
            c.rx_bytes += batch.iter().map(|f| f.len() as u64).sum::<u64>();
            stage.batch(q, &mut batch);
            done += n as u32;
            // Budget or time gone with the ring possibly non-empty: squeezed, as in
            // net_rx_action; the next round continues where this one stopped.
            if done >= cfg.budget || start.elapsed() >= cfg.time_budget {
                c.time_squeeze += 1;
                break;
            }
        }
        stage.end_round(q);
        q.refill(cfg.fill_target);
        if q.fill_needs_wakeup() {
            c.fill_wakeups += 1;
            let _ = q.poll_rx(0);
        }
        if done == 0 {
            c.rx_empty_polls += 1;
            idle_rounds = idle_rounds.saturating_add(1);
            if cfg.idle == IdleMode::Adaptive && idle_rounds >= cfg.idle_rounds_before_sleep {
                c.idle_sleeps += 1;
                // Frames still out at workers come back while we sleep: sleep 1 ms then,
                // so the fill ring is topped up before traffic can find it empty.
                let ms = if stage.outstanding() > 0 {
                    1
                } else {
                    cfg.sleep_ms
                };
                let _ = q.poll_rx(ms);
            } else if cfg.idle == IdleMode::BusyPoll {
                // Lets ksoftirqd have the core (see `latency::ping::idle_yield`).
                crate::latency::ping::idle_yield();
            }
        } else {
            idle_rounds = 0;
            let now = Instant::now();
            span = Some(span.map_or((start, now), |(first, _)| (first, now)));
        }
        published.publish(with_stage(&c, stage));
    }
    // Bring home what was handed on, so the frame accounting adds up.
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        stage.end_round(q);
        if stage.outstanding() == 0 || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    let all = with_stage(&c, stage);
    published.publish(all);
    (all, span)
}
