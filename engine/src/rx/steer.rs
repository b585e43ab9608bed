//! RPS in skiff's threads: a poller hashes each frame's flow and hands it to a worker
//! ([`Steer`], the kernel's `get_rps_cpu` + `enqueue_to_backlog`); a worker drains its
//! backlogs in batches of its weight, consumes the frames and hands them back to the
//! poller that owns them ([`run_worker`], the kernel's `process_backlog`).

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use crate::{
    rx::{
        consume::{Consumer, Rx},
        gro::GroCounters,
        poller::RxStage,
        rps::{
            backlog::{DropReason, Enqueue, Producer, SoftnetCounters, Worker},
            hash::{FlowHasher, RpsMap},
            rfs::{DevFlowTable, RfsCounters, SockFlowTable},
        },
    },
    stats::{Published, RxCounters},
    sys::Frame,
    xsk::XskQueue,
};

/// What a poller's steering did.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct SteerCounters {
    /// Frames put on a worker's backlog.
    pub steered: u64,
    /// Frames with no flow key (not IP, truncated): hash 0, the first worker of the set.
    pub no_flow_key: u64,
    /// Dropped: the worker's backlog was full (`netdev_max_backlog`).
    pub backlog_full: u64,
    /// Dropped by the flow limit (the backlog was over half full and this flow held
    /// most of it).
    pub flow_limit: u64,
    /// RFS decisions.
    pub rfs: RfsCounters,
}

impl SteerCounters {
    /// Sums another poller's counters into this one.
    pub fn add(&mut self, o: &SteerCounters) {
        self.steered += o.steered;
        self.no_flow_key += o.no_flow_key;
        self.backlog_full += o.backlog_full;
        self.flow_limit += o.flow_limit;
        self.rfs.add(&o.rfs);
    }
}

/// RFS state of one poller: the shared flow table the consumers write, and this
/// poller's own per-flow record of where it last sent each flow.
#[derive(Debug)]
pub struct Rfs {
    /// Where each flow is consumed (written by workers).
    pub sock: Arc<SockFlowTable>,
    /// Where this poller last steered each flow, and that backlog's tail then.
    pub dev: DevFlowTable,
}

/// The steering stage of one poller.
#[derive(Debug)]
pub struct Steer {
    producer: Producer<Rx>,
    src: u16,
    queue: u32,
    hasher: FlowHasher,
    map: Arc<RpsMap>,
    rfs: Option<Rfs>,
    dropped: Vec<Frame>,
    back: Vec<Rx>,
    home: Vec<Frame>,
    out: usize,
    counters: SteerCounters,
    published: Arc<Published<SteerCounters>>,
}

impl Steer {
    /// Steering for the poller of `queue`, which is producer `src` of the fabric.
    pub fn new(
        producer: Producer<Rx>,
        queue: u32,
        hasher: FlowHasher,
        map: Arc<RpsMap>,
        rfs: Option<Rfs>,
        published: Arc<Published<SteerCounters>>,
    ) -> Self {
        Steer {
            src: u16::try_from(producer.id()).unwrap_or(u16::MAX),
            producer,
            queue,
            hasher,
            map,
            rfs,
            dropped: Vec::new(),
            back: Vec::new(),
            home: Vec::new(),
            out: 0,
            counters: SteerCounters::default(),
            published,
        }
    }

    /// The counters so far.
    pub fn counters(&self) -> SteerCounters {
        let mut c = self.counters;
        if let Some(r) = &self.rfs {
            c.rfs = r.dev.counters();
        }
        c
    }
}

impl RxStage for Steer {
    fn batch(&mut self, q: &mut XskQueue, batch: &mut Vec<Frame>) {
        for frame in batch.drain(..) {
            let hash = match self.hasher.hash_frame(q.area().bytes(&frame)) {
                Some(h) => h,
                None => {
                    self.counters.no_flow_key += 1;
                    0
                }
            };
            let rps = self.map.pick(self.queue, hash);
            let producer = &self.producer;
            let worker = match &mut self.rfs {
                Some(r) => r
                    .dev
                    .steer(hash, rps, r.sock.lookup(hash), |w| producer.head(w)),
                None => rps,
            };
            let rx = Rx {
                src: self.src,
                frame,
                hash: Some(hash),
            };
            match self.producer.enqueue(worker, rx, hash) {
                Enqueue::Queued => {
                    self.out += 1;
                    self.counters.steered += 1;
                    if let Some(r) = &mut self.rfs {
                        r.dev
                            .note_enqueued(hash, worker, self.producer.tail(worker));
                    }
                }
                Enqueue::Dropped(rx, why) => {
                    match why {
                        DropReason::Full => self.counters.backlog_full += 1,
                        DropReason::FlowLimit => self.counters.flow_limit += 1,
                        // A worker index out of range would be a map bug: count it full.
                        DropReason::NoSuchWorker => self.counters.backlog_full += 1,
                    }
                    self.dropped.push(rx.frame);
                }
            }
        }
        q.recycle(&mut self.dropped);
    }

    fn end_round(&mut self, q: &mut XskQueue) {
        // Wakeups for workers whose backlog went empty -> non-empty, once per round.
        self.producer.end_round();
        let n = self.producer.reclaim(&mut self.back, usize::MAX);
        self.out = self.out.saturating_sub(n);
        self.home.extend(self.back.drain(..).map(|rx| rx.frame));
        q.recycle(&mut self.home);
        self.published.publish(self.counters());
    }

    fn outstanding(&self) -> usize {
        self.out
    }

    fn counters(&self) -> RxCounters {
        RxCounters::default()
    }
}

/// What one worker did.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct WorkerCounters {
    /// softnet_stat-style counters (dropped and flow_limit_count are counted by the
    /// pollers that enqueue to this worker).
    pub softnet: SoftnetCounters,
    /// Frames by class.
    pub classes: RxCounters,
    /// GRO, if on.
    pub gro: Option<GroCounters>,
}

/// Worker tunables.
#[derive(Debug, Clone, Copy)]
pub struct WorkerConfig {
    /// Frames per round before GRO flushes and counters are published: 300, the
    /// kernel's netdev_budget (a round of `net_rx_action`).
    pub budget: usize,
    /// Longest park when idle: 100 ms, so a stop is seen within that.
    pub park: Duration,
    /// Simulated application work per frame, in ns (0: none): spins that long per frame,
    /// for testing what backlogs do under a slow consumer.
    pub work_ns: u64,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            budget: 300,
            park: Duration::from_millis(100),
            work_ns: 0,
        }
    }
}

/// Runs worker `w` until `stop` is set and its backlogs are empty: drains in batches of
/// its weight, consumes, flushes GRO at the end of each round (and after every batch
/// when RFS may move flows, so a moved flow's held frames are delivered before its head
/// advances past them), records in the RFS table that this worker consumes the flow,
/// and hands frames back to their pollers.
pub fn run_worker(
    w: &mut Worker<Rx>,
    consumer: &mut Consumer,
    cfg: &WorkerConfig,
    stop: &AtomicBool,
    rfs: Option<&SockFlowTable>,
    published: &Published<WorkerCounters>,
) -> WorkerCounters {
    w.register_thread();
    let me = w.id();
    let mut one = Vec::with_capacity(1);
    let snapshot = |w: &Worker<Rx>, consumer: &Consumer| WorkerCounters {
        softnet: w.stats().worker(me),
        classes: consumer.counters,
        gro: consumer.gro_counters(),
    };
    loop {
        let mut done = 0usize;
        loop {
            let n = w.drain(|_, rx, ret| {
                if let (Some(t), Some(h)) = (rfs, rx.hash) {
                    t.record(h, me);
                }
                if cfg.work_ns > 0 {
                    spin(cfg.work_ns);
                }
                // Processed inside the drain: a backlog's head (what RFS waits for) only
                // advances past frames already consumed.
                one.push(rx);
                consumer.consume(&mut one, &mut |r: Rx| {
                    let _ = ret.give_back(r.src as usize, r);
                });
            });
            done += n;
            if rfs.is_some() {
                consumer.end_round(&mut |r: Rx| {
                    let _ = w.give_back(r.src as usize, r);
                });
            }
            if n == 0 || done >= cfg.budget {
                break;
            }
        }
        consumer.end_round(&mut |r: Rx| {
            let _ = w.give_back(r.src as usize, r);
        });
        w.flush_returns();
        published.publish(snapshot(w, consumer));
        if done == 0 {
            if stop.load(Ordering::Acquire) && !w.has_work() {
                break;
            }
            let _ = w.wait(cfg.park);
        }
    }
    // Returns that found a full ring are retried until they go (the poller still runs
    // its reclaim until it has every frame back or gives up).
    for _ in 0..1000 {
        if w.flush_returns() == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let s = snapshot(w, consumer);
    published.publish(s);
    s
}

/// Busy-waits `ns` nanoseconds (simulated per-frame work).
fn spin(ns: u64) {
    let until = crate::sys::monotonic_ns() + ns;
    while crate::sys::monotonic_ns() < until {
        std::hint::spin_loop();
    }
}
