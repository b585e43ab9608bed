//! The RPS hand-off fabric: per-(poller, worker) backlog rings, the kernel's flow limit,
//! batched wakeups, and the ring that takes every item back to the poller that owns it.
//!
//! The kernel has one `input_pkt_queue` per CPU, filled by any CPU under `rps_lock`
//! (`enqueue_to_backlog`) and drained by `process_backlog` (reference §3 S3, S6). skiff has
//! no lock: a poller (a [`Producer`], one per AF_XDP queue) owns one wait-free SPSC ring
//! (`rtrb`) to each worker, and each [`Worker`] owns one return ring back to each poller,
//! because a UMEM frame must go back to the fill ring of the queue it came from.
//!
//! ```text
//!  Producer p ──backlog ring (p,w), max_backlog──▶ Worker w   (drain: weight per call)
//!  Producer p ◀──return ring (w,p), UMEM frames── Worker w   (give_back / reclaim)
//! ```
//!
//! Everything is generic over the item (`T: Send`): the engine moves
//! [`Frame`](crate::sys::Frame) ownership tokens, the tests move integers.
//!
//! # Accept rule and the flow limit
//!
//! An item is accepted iff `qlen < max_backlog && !flow_limited` where `qlen` is the
//! length of the (producer, worker) ring. A dropped item comes back in
//! [`Enqueue::Dropped`] so the caller recycles it. The flow limit favours small flows
//! when the backlog is filling.
//!
//! Follows upstream `skb_flow_limit` (net/core/dev.c, `CONFIG_NET_FLOW_LIMIT`):
//! - it applies only when `qlen >= max_backlog / 2` (upstream: `qlen < (max_backlog >> 1)`
//!   returns false), and only for items that passed the full check (upstream evaluates it
//!   after `qlen <= max_backlog` in the same `&&`);
//! - bucket = `hash & (table_len - 1)`; a ring of the last [`FLOW_LIMIT_HISTORY`] buckets
//!   seen; the evicted one's count is decremented, the new one's incremented, and the item
//!   is limited when its bucket's count is `> FLOW_LIMIT_HISTORY / 2` (64);
//! - every item checked enters the history, the limited ones too (upstream records the
//!   bucket before deciding); u16 history and u8 counts as upstream.
//!
//! Differs:
//! - state per backlog ring, on the producer side, with `qlen` that ring's length;
//!   upstream keeps it per *enqueuing* CPU (`this_cpu_ptr`) while `qlen` is the target
//!   CPU's whole queue; so `flow_limit_count` is reported for the target worker (summed
//!   over its rings), where upstream's softnet_stat column is the enqueuing CPU's count;
//! - upstream's history starts as 128 zeros, so the first 128 checks "evict" bucket 0
//!   (decrementing a real flow in bucket 0, guarded only by `if (buckets[old])`); here
//!   nothing is evicted until the history is full;
//! - upstream's accept test is `qlen <= netdev_max_backlog` (a queue can hold
//!   `max_backlog + 1`); a ring here holds exactly `max_backlog`.
//!
//! # Wakeups (`NAPI_STATE_SCHED` + batched RPS IPIs)
//!
//! Each worker has one shared `scheduled` state: `IDLE` (clear), or set — `RUNNING` (the
//! worker set it itself) or `WOKEN` (a producer claimed it to send a wakeup; the worker
//! counts these as `received_rps`). Only the worker clears it, in [`Worker::wait`], when
//! it found all its rings empty. A producer notes every worker it enqueued to during a
//! round and in [`Producer::end_round`] claims (test-and-set, `IDLE → WOKEN`) the state
//! of each; only a producer that finds it clear, i.e. a worker that went idle (its
//! backlog went empty → non-empty), sends the wakeup (`Thread::unpark`), once per round,
//! like the kernel collects RPS IPIs on `rps_ipi_list` and sends them in
//! `net_rps_action_and_irq_enable`. A fresh worker starts `IDLE`.
//!
//! The test-and-set moved from the enqueue (where the kernel does it, under `rps_lock`)
//! to `end_round`: the no-lost-wakeup argument below needs a `SeqCst` fence between the
//! ring push and the flag check, and doing that once per round instead of once per
//! packet is the whole point of batching.
//!
//! ## Why no wakeup can be lost
//!
//! Producer: `push` (rtrb's `Release` store of the ring tail) … `fence(SeqCst)` … load /
//! claim `scheduled`. Worker ([`Worker::wait`]): swap `scheduled = IDLE` …
//! `fence(SeqCst)` … load every ring tail (`Acquire`) … park. This is the store-buffering
//! (Dekker) pattern: the two fences are ordered in the single total order S, and whichever
//! comes first, the load after the other fence sees the store before the first one. So
//! either the producer sees `IDLE` (it claims it and unparks the worker; an unpark that
//! arrives before the park leaves a token, so the park returns at once) or the worker's
//! re-check sees the item (it does not park). A worker that finds work on its re-check,
//! or returns from the park, sets the state again (`RUNNING` unless a producer's `WOKEN`
//! is there) before it drains: any later `IDLE` a producer could read is from a later
//! `wait`, which re-checks again. `thread::park_timeout` is still bounded:
//! a producer that forgets `end_round` delays a worker by at most the timeout.
//!
//! # Head and tail (for RFS)
//!
//! Per ring the producer counts `tail` = items ever accepted, and the worker publishes
//! `head` = items whose processing has finished: in [`Worker::drain`], after the callback
//! has returned for every item taken from that ring in this call, one `Release` store per
//! ring per drain. The producer reads it with `Acquire` ([`Producer::head`]), so a producer
//! that sees `head >= t` also sees everything the worker did while processing items up to
//! `t` — the edge that lets [`rfs::DevFlowTable`](super::rfs::DevFlowTable) move a flow
//! without reordering it.
//!
//! # Batching and allocation
//!
//! A drain takes one rtrb chunk per ring (one `Acquire` load of the tail, one `Release`
//! store of the ring head, one `Release` store of the RFS head) and stores its counters
//! once. Returns are staged per producer and pushed as one chunk per producer per drain.
//! A producer's `enqueue` reads the consumer's position only when its cached view says the
//! ring may be at least half full (the only case where the exact length matters). Nothing
//! allocates after [`fabric`] except a staged-returns `Vec` growing past `weight` items,
//! which only happens when a return ring is full — impossible when the return capacity is
//! the producer's UMEM frame count, as intended.

use std::sync::atomic::{fence, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, Thread, ThreadId};
use std::time::Duration;

/// Default ring capacity per (producer, worker): 1000, the kernel's `netdev_max_backlog`
/// default (upstream value, reference §11).
pub const DEFAULT_MAX_BACKLOG: usize = 1000;

/// Default items per [`Worker::drain`] call: 64, the kernel's `weight_p` (`dev_weight`),
/// the quota `process_backlog` runs with (reference §3 S6, §11).
pub const DEFAULT_WEIGHT: usize = 64;

/// Default flow-limit buckets per ring: 4096 = `1 << 12`, upstream
/// `netdev_flow_limit_table_len` (reference §11).
pub const DEFAULT_FLOW_LIMIT_TABLE_LEN: usize = 1 << 12;

/// Default return-ring capacity: 4096, skiff's default UMEM frame count per queue
/// (`XskConfig::frames`), so a return ring can hold every frame its producer owns.
pub const DEFAULT_RETURN_CAPACITY: usize = 4096;

/// Flow hashes the flow limit remembers: 128 = upstream `FLOW_LIMIT_HISTORY (1 << 7)`
/// ("must be ^2 and !overflow buckets": 128 fits the u8 bucket counters).
pub const FLOW_LIMIT_HISTORY: usize = 1 << 7;

/// Largest ring capacity accepted: 2^24 items. Far above any sane backlog or UMEM size; it
/// bounds a mistyped setting's memory and stays below rtrb's `usize::MAX / 2` limit.
const MAX_RING_CAPACITY: usize = 1 << 24;

/// Most producers, and most workers, in one fabric: 2^12 threads of each kind.
const MAX_THREADS: usize = 1 << 12;

/// Largest flow-limit table: 2^16 buckets, because the history stores bucket indices as
/// u16 like upstream's `u16 history[FLOW_LIMIT_HISTORY]`.
const MAX_FLOW_LIMIT_TABLE_LEN: usize = 1 << 16;

/// Backlog geometry. Defaults are derived on the constants they come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BacklogConfig {
    /// Capacity of each (producer, worker) backlog ring, [`DEFAULT_MAX_BACKLOG`]. Clamped
    /// to `1..=2^24` (0 would drop everything).
    pub max_backlog: usize,
    /// Most items one [`Worker::drain`] call processes, [`DEFAULT_WEIGHT`]. At least 1.
    pub weight: usize,
    /// Flow-limit buckets per backlog ring, [`DEFAULT_FLOW_LIMIT_TABLE_LEN`]; rounded up
    /// to a power of two, at most 2^16; 0 turns the flow limit off. Upstream enables it
    /// only for the CPUs in `net.core.flow_limit_cpu_bitmap` (none by default); skiff
    /// enables it by default.
    pub flow_limit_table_len: usize,
    /// Capacity of each (worker, producer) return ring: pass the producer's UMEM frame
    /// count (largest over producers), so a return ring can never be full.
    /// [`DEFAULT_RETURN_CAPACITY`]. Clamped to `1..=2^24`.
    pub return_capacity: usize,
}

impl Default for BacklogConfig {
    fn default() -> Self {
        BacklogConfig {
            max_backlog: DEFAULT_MAX_BACKLOG,
            weight: DEFAULT_WEIGHT,
            flow_limit_table_len: DEFAULT_FLOW_LIMIT_TABLE_LEN,
            return_capacity: DEFAULT_RETURN_CAPACITY,
        }
    }
}

impl BacklogConfig {
    /// The configuration actually used: every value clamped into its documented range.
    fn normalized(self) -> BacklogConfig {
        BacklogConfig {
            max_backlog: self.max_backlog.clamp(1, MAX_RING_CAPACITY),
            weight: self.weight.max(1),
            flow_limit_table_len: if self.flow_limit_table_len == 0 {
                0
            } else {
                self.flow_limit_table_len
                    .min(MAX_FLOW_LIMIT_TABLE_LEN)
                    .next_power_of_two()
            },
            return_capacity: self.return_capacity.clamp(1, MAX_RING_CAPACITY),
        }
    }
}

/// Why an item was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The ring held `max_backlog` items (the kernel's `qlen > netdev_max_backlog`).
    Full,
    /// The flow limit picked this item's flow as the one filling the backlog.
    FlowLimit,
    /// No such worker index: a caller bug, counted nowhere.
    NoSuchWorker,
}

/// What [`Producer::enqueue`] did with an item.
#[must_use = "a dropped item must be recycled by the caller"]
#[derive(Debug, PartialEq, Eq)]
pub enum Enqueue<T> {
    /// On the worker's backlog ring.
    Queued,
    /// Not queued; the item comes back to the caller.
    Dropped(T, DropReason),
}

/// What [`Worker::wait`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wakeup {
    /// Work arrived between the last drain and the re-check: did not park.
    Pending,
    /// A producer woke the worker (counted in `received_rps`).
    Woken,
    /// The park ended without a producer's wakeup (timeout or spurious).
    Idle,
}

/// Per-worker counters in the order of `/proc/net/softnet_stat`, summed over the rings
/// that feed the worker, plus `enqueued`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SoftnetCounters {
    /// Items processed (the drain callback returned for them).
    pub processed: u64,
    /// Items refused by this worker's backlogs, for either reason: like the kernel's
    /// `sd->dropped`, which `enqueue_to_backlog` bumps for a full queue and for the flow
    /// limit alike. Drops for a full ring = `dropped - flow_limit_count`.
    pub dropped: u64,
    /// Drain calls that stopped at the weight with work still queued.
    pub time_squeeze: u64,
    /// Wakeups producers claimed for this worker (the kernel counts RPS IPIs received).
    pub received_rps: u64,
    /// Items dropped by the flow limit (a subset of `dropped`).
    pub flow_limit_count: u64,
    /// Items accepted onto this worker's rings (not a softnet_stat column). Producers
    /// publish it in [`Producer::end_round`].
    pub enqueued: u64,
}

impl SoftnetCounters {
    /// Sums another worker's counters into this one.
    pub fn add(&mut self, o: &SoftnetCounters) {
        self.processed += o.processed;
        self.dropped += o.dropped;
        self.time_squeeze += o.time_squeeze;
        self.received_rps += o.received_rps;
        self.flow_limit_count += o.flow_limit_count;
        self.enqueued += o.enqueued;
    }
}

/// Counters of one (producer, worker) backlog ring.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RingCounters {
    /// Items accepted (the ring's `tail`, as of the producer's last `end_round`).
    pub enqueued: u64,
    /// Items refused, either reason.
    pub dropped: u64,
    /// Items refused by the flow limit.
    pub flow_limit_count: u64,
    /// Items processed (the ring's RFS `head`).
    pub processed: u64,
}

/// Two 64-byte lines: x86 prefetches lines in adjacent pairs, so 128-byte alignment keeps
/// a value written by one thread off the lines another thread writes (crossbeam's
/// `CachePadded` uses 128 on x86_64 for the same reason).
#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded<V>(V);

/// What a producer writes about one ring, only on a drop or at `end_round`.
#[derive(Debug, Default)]
struct RingProducerSide {
    enqueued: AtomicU64,
    dropped: AtomicU64,
    flow_limit_count: AtomicU64,
}

/// Shared state of one (producer, worker) ring.
#[derive(Debug, Default)]
struct RingShared {
    /// Items processed; written by the worker (`Release`), read by the producer (`Acquire`).
    head: Padded<AtomicU64>,
    producer: Padded<RingProducerSide>,
}

/// What a worker writes once per drain.
#[derive(Debug, Default)]
struct WorkerCounters {
    processed: AtomicU64,
    time_squeeze: AtomicU64,
    received_rps: AtomicU64,
}

/// `scheduled`: the worker found its rings empty and parks (or is about to); also the
/// state of a worker that never ran.
const IDLE: u8 = 0;
/// `scheduled`: set by the worker itself; it runs and will re-check before parking.
const RUNNING: u8 = 1;
/// `scheduled`: set by the producer that claimed the wakeup of an idle worker.
const WOKEN: u8 = 2;

/// Shared state of one worker.
#[derive(Debug, Default)]
struct WorkerShared {
    /// `NAPI_STATE_SCHED`: [`IDLE`], [`RUNNING`] or [`WOKEN`].
    scheduled: Padded<AtomicU8>,
    /// The thread to unpark; locked only to register it and to send a wakeup.
    thread: Mutex<Option<Thread>>,
    counters: Padded<WorkerCounters>,
}

/// Everything producers and workers share, indexed `[producer * workers + worker]`.
#[derive(Debug)]
struct Shared {
    producers: usize,
    workers: usize,
    rings: Box<[RingShared]>,
    worker: Box<[WorkerShared]>,
}

impl Shared {
    fn ring(&self, producer: usize, worker: usize) -> Option<&RingShared> {
        if producer >= self.producers || worker >= self.workers {
            return None;
        }
        self.rings.get(producer * self.workers + worker)
    }
}

/// A read-only handle on the fabric's counters, for reporters; cheap to clone.
#[derive(Debug, Clone)]
pub struct BacklogStats {
    shared: Arc<Shared>,
}

impl BacklogStats {
    /// Number of producers.
    pub fn producers(&self) -> usize {
        self.shared.producers
    }

    /// Number of workers.
    pub fn workers(&self) -> usize {
        self.shared.workers
    }

    /// Counters of the ring from `producer` to `worker` (zero for indices out of range).
    pub fn ring(&self, producer: usize, worker: usize) -> RingCounters {
        let Some(r) = self.shared.ring(producer, worker) else {
            return RingCounters::default();
        };
        RingCounters {
            enqueued: r.producer.0.enqueued.load(Ordering::Relaxed),
            dropped: r.producer.0.dropped.load(Ordering::Relaxed),
            flow_limit_count: r.producer.0.flow_limit_count.load(Ordering::Relaxed),
            processed: r.head.0.load(Ordering::Relaxed),
        }
    }

    /// One worker's softnet counters, summed over the rings feeding it.
    pub fn worker(&self, worker: usize) -> SoftnetCounters {
        let Some(ws) = self.shared.worker.get(worker) else {
            return SoftnetCounters::default();
        };
        let mut c = SoftnetCounters {
            processed: ws.counters.0.processed.load(Ordering::Relaxed),
            time_squeeze: ws.counters.0.time_squeeze.load(Ordering::Relaxed),
            received_rps: ws.counters.0.received_rps.load(Ordering::Relaxed),
            ..SoftnetCounters::default()
        };
        for p in 0..self.shared.producers {
            let r = self.ring(p, worker);
            c.dropped += r.dropped;
            c.flow_limit_count += r.flow_limit_count;
            c.enqueued += r.enqueued;
        }
        c
    }

    /// All workers' counters summed.
    pub fn total(&self) -> SoftnetCounters {
        let mut t = SoftnetCounters::default();
        for w in 0..self.shared.workers {
            t.add(&self.worker(w));
        }
        t
    }
}

/// The kernel's `sd_flow_limit` for one backlog ring: favour small flows when the backlog
/// is filling. The module doc says where it follows upstream `skb_flow_limit` and where it
/// differs.
#[derive(Debug)]
struct FlowLimit {
    history: [u16; FLOW_LIMIT_HISTORY],
    history_head: usize,
    history_len: usize,
    buckets: Box<[u8]>,
    mask: u32,
}

impl FlowLimit {
    /// `table_len` is a power of two in `1..=2^16` (see [`BacklogConfig::normalized`]).
    fn new(table_len: usize) -> FlowLimit {
        FlowLimit {
            history: [0; FLOW_LIMIT_HISTORY],
            history_head: 0,
            history_len: 0,
            buckets: vec![0; table_len].into_boxed_slice(),
            mask: u32::try_from(table_len.saturating_sub(1)).unwrap_or(u32::MAX),
        }
    }

    /// Records `hash` and says whether its flow is over its share of the history.
    fn limited(&mut self, hash: u32) -> bool {
        // table_len <= 2^16, so the masked hash fits u16.
        let new_flow = u16::try_from(hash & self.mask).unwrap_or(u16::MAX);
        let slot = self.history_head & (FLOW_LIMIT_HISTORY - 1);
        if self.history_len == FLOW_LIMIT_HISTORY {
            if let Some(old) = self.history.get(slot).copied() {
                if let Some(c) = self.buckets.get_mut(usize::from(old)) {
                    *c = c.saturating_sub(1);
                }
            }
        } else {
            self.history_len += 1;
        }
        if let Some(h) = self.history.get_mut(slot) {
            *h = new_flow;
        }
        self.history_head = (slot + 1) & (FLOW_LIMIT_HISTORY - 1);
        match self.buckets.get_mut(usize::from(new_flow)) {
            Some(c) => {
                *c = c.saturating_add(1);
                usize::from(*c) > FLOW_LIMIT_HISTORY >> 1
            }
            None => false,
        }
    }
}

/// The producer's end of one backlog ring.
#[derive(Debug)]
struct OutRing<T> {
    tx: rtrb::Producer<T>,
    /// Items ever accepted (RFS `tail`).
    tail: u64,
    /// `tail` as last published to [`RingProducerSide::enqueued`].
    published: u64,
    flow: Option<FlowLimit>,
}

/// A poller's side of the fabric: enqueue to workers, send wakeups, reclaim items.
/// `Send`, not `Sync`: one thread drives it.
pub struct Producer<T> {
    id: usize,
    max_backlog: usize,
    rings: Vec<OutRing<T>>,
    /// Return rings, one per worker.
    returns: Vec<rtrb::Consumer<T>>,
    /// Workers enqueued to since the last `end_round`.
    pending: Vec<bool>,
    any_pending: bool,
    /// Where the next `reclaim` starts (round-robin over workers).
    reclaim_next: usize,
    shared: Arc<Shared>,
}

impl<T> std::fmt::Debug for Producer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("id", &self.id)
            .field("workers", &self.rings.len())
            .field("max_backlog", &self.max_backlog)
            .finish_non_exhaustive()
    }
}

/// A worker's staged returns: one ring and one staging `Vec` per producer. Handed to the
/// [`Worker::drain`] callback so it can return items while the worker is borrowed.
pub struct Returns<T> {
    rings: Vec<rtrb::Producer<T>>,
    staged: Vec<Vec<T>>,
    /// Staged items per producer that trigger a push: the worker's weight.
    batch: usize,
}

impl<T> std::fmt::Debug for Returns<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Returns")
            .field("producers", &self.rings.len())
            .field("staged", &self.staged())
            .finish_non_exhaustive()
    }
}

impl<T> Returns<T> {
    /// Gives `item` back to `producer` (the one it came from). It is staged and pushed
    /// with others (at the end of the drain, in [`Worker::wait`], or when `weight` items
    /// are staged for that producer); if the return ring is full it stays staged and is
    /// retried, never lost. `Err(item)` only for a producer index out of range.
    pub fn give_back(&mut self, producer: usize, item: T) -> Result<(), T> {
        let Some(staged) = self.staged.get_mut(producer) else {
            return Err(item);
        };
        staged.push(item);
        if staged.len() >= self.batch {
            self.flush_one(producer);
        }
        Ok(())
    }

    /// Pushes what is staged for every producer; returns how many items are still staged
    /// (return rings full).
    pub fn flush(&mut self) -> usize {
        let mut left = 0;
        for p in 0..self.rings.len() {
            left += self.flush_one(p);
        }
        left
    }

    /// Items staged, not yet on a return ring.
    pub fn staged(&self) -> usize {
        self.staged.iter().map(Vec::len).sum()
    }

    /// One chunk to `producer`'s return ring; returns how many stay staged.
    fn flush_one(&mut self, producer: usize) -> usize {
        let (Some(staged), Some(ring)) =
            (self.staged.get_mut(producer), self.rings.get_mut(producer))
        else {
            return 0;
        };
        if staged.is_empty() {
            return 0;
        }
        // One Acquire load of the producer's read position, then one Release store.
        let n = staged.len().min(ring.slots());
        if n > 0 {
            if let Ok(chunk) = ring.write_chunk_uninit(n) {
                chunk.fill_from_iter(staged.drain(..n));
            }
        }
        staged.len()
    }
}

/// A worker's side of the fabric: drain backlogs, give items back, sleep when idle.
/// `Send`, not `Sync`: one thread drives it.
pub struct Worker<T> {
    id: usize,
    weight: usize,
    /// Backlog rings, one per producer.
    inbox: Vec<rtrb::Consumer<T>>,
    /// Items processed per inbox ring (the published RFS `head`).
    heads: Vec<u64>,
    returns: Returns<T>,
    /// Where the next drain starts (round-robin over producers).
    next: usize,
    processed: u64,
    time_squeeze: u64,
    received_rps: u64,
    /// The thread registered for wakeups.
    thread: Option<ThreadId>,
    shared: Arc<Shared>,
}

impl<T> std::fmt::Debug for Worker<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("id", &self.id)
            .field("producers", &self.inbox.len())
            .field("weight", &self.weight)
            .field("processed", &self.processed)
            .finish_non_exhaustive()
    }
}

/// Builds the fabric: `producers × workers` backlog rings and as many return rings.
/// Returns the producers (index = producer id) and the workers (index = worker id); move
/// each to its thread. Sizes are clamped as [`BacklogConfig`] documents, and each count to
/// at most 2^12 (one thread each: more than the cores of any machine skiff runs on).
pub fn fabric<T: Send>(
    producers: usize,
    workers: usize,
    cfg: BacklogConfig,
) -> (Vec<Producer<T>>, Vec<Worker<T>>) {
    let cfg = cfg.normalized();
    let producers = producers.min(MAX_THREADS);
    let workers = workers.min(MAX_THREADS);
    let shared = Arc::new(Shared {
        producers,
        workers,
        rings: (0..producers * workers)
            .map(|_| RingShared::default())
            .collect(),
        worker: (0..workers).map(|_| WorkerShared::default()).collect(),
    });
    let mut ps: Vec<Producer<T>> = (0..producers)
        .map(|id| Producer {
            id,
            max_backlog: cfg.max_backlog,
            rings: Vec::with_capacity(workers),
            returns: Vec::with_capacity(workers),
            pending: vec![false; workers],
            any_pending: false,
            reclaim_next: 0,
            shared: Arc::clone(&shared),
        })
        .collect();
    let mut ws: Vec<Worker<T>> = (0..workers)
        .map(|id| Worker {
            id,
            weight: cfg.weight,
            inbox: Vec::with_capacity(producers),
            heads: vec![0; producers],
            returns: Returns {
                rings: Vec::with_capacity(producers),
                staged: (0..producers)
                    .map(|_| Vec::with_capacity(cfg.weight))
                    .collect(),
                batch: cfg.weight,
            },
            next: 0,
            processed: 0,
            time_squeeze: 0,
            received_rps: 0,
            thread: None,
            shared: Arc::clone(&shared),
        })
        .collect();
    for p in ps.iter_mut() {
        for w in ws.iter_mut() {
            let (tx, rx) = rtrb::RingBuffer::new(cfg.max_backlog);
            p.rings.push(OutRing {
                tx,
                tail: 0,
                published: 0,
                flow: (cfg.flow_limit_table_len > 0)
                    .then(|| FlowLimit::new(cfg.flow_limit_table_len)),
            });
            w.inbox.push(rx);
            let (rtx, rrx) = rtrb::RingBuffer::new(cfg.return_capacity);
            w.returns.rings.push(rtx);
            p.returns.push(rrx);
        }
    }
    (ps, ws)
}

impl<T: Send> Producer<T> {
    /// This producer's index.
    pub fn id(&self) -> usize {
        self.id
    }

    /// Number of workers.
    pub fn workers(&self) -> usize {
        self.rings.len()
    }

    /// The counters handle.
    pub fn stats(&self) -> BacklogStats {
        BacklogStats {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Offers `item` (whose flow hashes to `hash`) to `worker`'s backlog: the kernel's
    /// `enqueue_to_backlog`. Accepted iff the ring holds fewer than `max_backlog` items and
    /// the flow limit (module doc) does not pick this flow. A refused item comes back.
    /// The wakeup, if the worker is idle, goes out in [`Producer::end_round`].
    pub fn enqueue(&mut self, worker: usize, item: T, hash: u32) -> Enqueue<T> {
        let cap = self.max_backlog;
        let Some(ring) = self.rings.get_mut(worker) else {
            return Enqueue::Dropped(item, DropReason::NoSuchWorker);
        };
        // The cached read position is never ahead of the worker's, so this length is an
        // upper bound; refresh it (one Acquire load) only when the bound reaches the
        // flow-limit threshold or the capacity, the only places where it matters.
        let half = cap >> 1;
        let mut qlen = cap.saturating_sub(ring.tx.cached_slots());
        if qlen >= half {
            qlen = cap.saturating_sub(ring.tx.slots());
        }
        let refused = if qlen >= cap {
            Some(DropReason::Full)
        } else if qlen >= half && ring.flow.as_mut().is_some_and(|f| f.limited(hash)) {
            Some(DropReason::FlowLimit)
        } else {
            None
        };
        if let Some(reason) = refused {
            return self.dropped(worker, item, reason);
        }
        match ring.tx.push(item) {
            Ok(()) => {
                ring.tail += 1;
                if let Some(p) = self.pending.get_mut(worker) {
                    *p = true;
                }
                self.any_pending = true;
                Enqueue::Queued
            }
            // Not expected: a single producer's free-slot count only grows after `slots()`.
            Err(rtrb::PushError::Full(item)) => self.dropped(worker, item, DropReason::Full),
        }
    }

    fn dropped(&mut self, worker: usize, item: T, reason: DropReason) -> Enqueue<T> {
        if let Some(r) = self.shared.ring(self.id, worker) {
            r.producer.0.dropped.fetch_add(1, Ordering::Relaxed);
            if reason == DropReason::FlowLimit {
                r.producer
                    .0
                    .flow_limit_count
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        Enqueue::Dropped(item, reason)
    }

    /// Ends a round: publishes `enqueued` and sends one wakeup to each worker that this
    /// round enqueued to and that had gone idle (see the module doc for why none is lost).
    /// Call it after every batch of enqueues. Returns the wakeups sent.
    pub fn end_round(&mut self) -> usize {
        for (w, ring) in self.rings.iter_mut().enumerate() {
            if ring.tail != ring.published {
                ring.published = ring.tail;
                if let Some(r) = self.shared.ring(self.id, w) {
                    r.producer.0.enqueued.store(ring.tail, Ordering::Relaxed);
                }
            }
        }
        if !self.any_pending {
            return 0;
        }
        self.any_pending = false;
        // Orders this round's ring pushes before the flag loads below; pairs with the
        // fence in `Worker::wait` (store-buffering pattern, module doc).
        fence(Ordering::SeqCst);
        let mut sent = 0;
        for (w, pending) in self.pending.iter_mut().enumerate() {
            if !std::mem::take(pending) {
                continue;
            }
            let Some(ws) = self.shared.worker.get(w) else {
                continue;
            };
            // Acquire: reading the worker's `IDLE` makes its thread registration visible.
            // Load first so a running worker's line is only read, not written; the CAS
            // lets exactly one producer claim the wakeup.
            let s = &ws.scheduled.0;
            if s.load(Ordering::Acquire) != IDLE
                || s.compare_exchange(IDLE, WOKEN, Ordering::AcqRel, Ordering::Acquire)
                    .is_err()
            {
                continue;
            }
            let guard = ws.thread.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(t) = guard.as_ref() {
                t.unpark();
            }
            sent += 1;
        }
        sent
    }

    /// Takes up to `max` items that workers gave back, appending them to `out` (reserve
    /// `out` beforehand to stay allocation-free). One chunk per return ring.
    pub fn reclaim(&mut self, out: &mut Vec<T>, max: usize) -> usize {
        let n = self.returns.len();
        let mut got = 0;
        for k in 0..n {
            if got >= max {
                break;
            }
            let Some(rx) = self.returns.get_mut((self.reclaim_next + k) % n) else {
                continue;
            };
            let take = rx.slots().min(max - got);
            if take == 0 {
                continue;
            }
            if let Ok(chunk) = rx.read_chunk(take) {
                out.extend(chunk);
                got += take;
            }
        }
        if n > 0 {
            self.reclaim_next = (self.reclaim_next + 1) % n;
        }
        got
    }

    /// Items ever accepted onto `worker`'s ring (RFS `tail`; 0 for an unknown worker).
    pub fn tail(&self, worker: usize) -> u64 {
        self.rings.get(worker).map_or(0, |r| r.tail)
    }

    /// Items of this producer that `worker` has finished processing (RFS `head`,
    /// `Acquire`: everything the worker did for them is visible after this returns).
    pub fn head(&self, worker: usize) -> u64 {
        self.shared
            .ring(self.id, worker)
            .map_or(0, |r| r.head.0.load(Ordering::Acquire))
    }

    /// Items on `worker`'s ring now (not counting those being processed).
    pub fn backlog_len(&self, worker: usize) -> usize {
        self.rings
            .get(worker)
            .map_or(0, |r| self.max_backlog.saturating_sub(r.tx.slots()))
    }
}

impl<T: Send> Worker<T> {
    /// This worker's index.
    pub fn id(&self) -> usize {
        self.id
    }

    /// Number of producers.
    pub fn producers(&self) -> usize {
        self.inbox.len()
    }

    /// The counters handle.
    pub fn stats(&self) -> BacklogStats {
        BacklogStats {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Registers the calling thread as the one producers unpark. [`Worker::wait`] does it
    /// too, before it can park, so calling this is only needed to get wakeups earlier.
    pub fn register_thread(&mut self) {
        let me = thread::current();
        if self.thread == Some(me.id()) {
            return;
        }
        self.thread = Some(me.id());
        if let Some(ws) = self.shared.worker.get(self.id) {
            let mut g = ws.thread.lock().unwrap_or_else(|e| e.into_inner());
            *g = Some(me);
        }
    }

    /// Processes up to `weight` items, taking one chunk per producer ring in round-robin
    /// order (the kernel's `process_backlog` with quota `weight_p`). `f(producer, item,
    /// returns)` is the processing; it hands the item back with
    /// [`Returns::give_back`] (now or later through [`Worker::give_back`]). A ring's `head`
    /// advances, `Release`, once the callback has returned for every item taken from it.
    /// Counts `time_squeeze` when it stops at the weight with work still queued. Returns
    /// the items processed.
    pub fn drain<F>(&mut self, mut f: F) -> usize
    where
        F: FnMut(usize, T, &mut Returns<T>),
    {
        let Worker {
            id,
            weight,
            inbox,
            heads,
            returns,
            next,
            shared,
            ..
        } = self;
        // Retry returns that found their ring full last time.
        returns.flush();
        let n = inbox.len();
        if n == 0 {
            return 0;
        }
        let start = *next % n;
        *next = (start + 1) % n;
        let mut budget = *weight;
        for k in 0..n {
            if budget == 0 {
                break;
            }
            let p = (start + k) % n;
            let Some(rx) = inbox.get_mut(p) else {
                continue;
            };
            // One Acquire load of the producer's tail.
            let take = rx.slots().min(budget);
            if take == 0 {
                continue;
            }
            let Ok(chunk) = rx.read_chunk(take) else {
                continue;
            };
            // Dropping the iterator stores the ring head once (Release).
            for item in chunk {
                f(p, item, returns);
            }
            budget -= take;
            if let (Some(h), Some(r)) = (heads.get_mut(p), shared.ring(p, *id)) {
                *h += take as u64;
                // Release: the processing above happens-before a producer's Acquire
                // read of this head (RFS moves a flow only after it).
                r.head.0.store(*h, Ordering::Release);
            }
        }
        let done = *weight - budget;
        let squeezed = budget == 0 && inbox.iter().any(|rx| !rx.is_empty());
        returns.flush();
        if done > 0 {
            self.processed += done as u64;
            if let Some(ws) = self.shared.worker.get(self.id) {
                ws.counters
                    .0
                    .processed
                    .store(self.processed, Ordering::Relaxed);
            }
        }
        if squeezed {
            self.time_squeeze += 1;
            if let Some(ws) = self.shared.worker.get(self.id) {
                ws.counters
                    .0
                    .time_squeeze
                    .store(self.time_squeeze, Ordering::Relaxed);
            }
        }
        done
    }

    /// Gives `item` back to `producer` outside a drain (see [`Returns::give_back`]).
    pub fn give_back(&mut self, producer: usize, item: T) -> Result<(), T> {
        self.returns.give_back(producer, item)
    }

    /// Pushes staged returns now; returns how many are still staged (return ring full).
    pub fn flush_returns(&mut self) -> usize {
        self.returns.flush()
    }

    /// Whether any backlog ring holds an item (loads each ring's tail, Acquire).
    pub fn has_work(&self) -> bool {
        self.inbox.iter().any(|rx| !rx.is_empty())
    }

    /// Sleeps until a producer's wakeup or `timeout`, unless work is pending: flushes
    /// staged returns, clears `scheduled`, re-checks every ring after a `SeqCst` fence
    /// (module doc: no wakeup can be lost), and only then parks. On return `scheduled` is
    /// set again (the worker runs, producers send it no wakeup). Call [`Worker::drain`]
    /// next, whatever it returns.
    pub fn wait(&mut self, timeout: Duration) -> Wakeup {
        self.register_thread();
        self.returns.flush();
        let Some(ws) = self.shared.worker.get(self.id) else {
            thread::park_timeout(timeout);
            return Wakeup::Idle;
        };
        let s = &ws.scheduled.0;
        // Release: a producer that reads this `IDLE` (Acquire) sees the registration.
        // A `WOKEN` found here was claimed while the worker had not started yet.
        let mut woken = u64::from(s.swap(IDLE, Ordering::AcqRel) == WOKEN);
        // Orders the store above before the ring re-check; pairs with the fence in
        // `Producer::end_round`.
        fence(Ordering::SeqCst);
        let found = if self.inbox.iter().any(|rx| !rx.is_empty()) {
            Wakeup::Pending
        } else {
            thread::park_timeout(timeout);
            Wakeup::Idle
        };
        // A producer that claimed the wakeup after the clear has unparked (or will
        // unpark) this thread; a token left over only makes one later park return early.
        let claimed = s.swap(RUNNING, Ordering::Acquire) == WOKEN;
        woken += u64::from(claimed);
        if woken > 0 {
            self.received_rps += woken;
            ws.counters
                .0
                .received_rps
                .store(self.received_rps, Ordering::Relaxed);
        }
        match found {
            Wakeup::Idle if claimed => Wakeup::Woken,
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize};
    use std::time::Instant;

    use crate::rx::rps::rfs::{DevFlowTable, SockFlowTable};

    /// One producer, one worker, `cfg`.
    fn pair(cfg: BacklogConfig) -> (Producer<u64>, Worker<u64>) {
        let (mut ps, mut ws) = fabric::<u64>(1, 1, cfg);
        match (ps.pop(), ws.pop()) {
            (Some(p), Some(w)) => (p, w),
            _ => panic!("fabric(1, 1) built no pair"),
        }
    }

    fn queued(r: Enqueue<u64>) -> bool {
        matches!(r, Enqueue::Queued)
    }

    #[test]
    fn both_sides_are_send_for_frames() {
        fn send<S: Send>() {}
        send::<Producer<crate::sys::Frame>>();
        send::<Worker<crate::sys::Frame>>();
        send::<BacklogStats>();
    }

    #[test]
    fn below_half_nothing_is_flow_limited() {
        let (mut p, _w) = pair(BacklogConfig::default());
        let half = DEFAULT_MAX_BACKLOG / 2;
        // One elephant flow fills the ring up to just below half: all accepted.
        for i in 0..half as u64 {
            assert!(
                queued(p.enqueue(0, i, 0xdead_0007)),
                "item {i} refused below half"
            );
        }
        assert_eq!(p.backlog_len(0), half);
        assert_eq!(p.stats().worker(0).flow_limit_count, 0);
        assert_eq!(p.stats().worker(0).dropped, 0);
    }

    #[test]
    fn flow_limit_drops_the_elephant_first_and_spares_mice() {
        let (mut p, _w) = pair(BacklogConfig::default());
        let elephant = 0xdead_0007_u32; // bucket 7 of 4096
        let half = DEFAULT_MAX_BACKLOG / 2;
        // Mice up to exactly half: from here on the flow limit applies.
        for i in 0..half as u64 {
            assert!(queued(p.enqueue(0, i, 1000 + (i as u32 % 2000))));
        }
        let (mut elephant_drops, mut mouse_drops, mut first_drop_mouse) = (0u64, 0u64, None);
        let mut item = 1_000_000u64;
        // 3 elephant packets per mouse: the elephant holds ~96 of the 128 history slots,
        // over the 64 limit; each mouse bucket (period 2000) holds 1. 400 rounds keep the
        // ring below full: 500 + 64 elephants + 400 mice < 1000.
        for round in 0..400u32 {
            for k in 0..4u32 {
                let is_mouse = k == 3;
                let hash = if is_mouse {
                    1000 + (round % 2000)
                } else {
                    elephant
                };
                item += 1;
                match p.enqueue(0, item, hash) {
                    Enqueue::Queued => {}
                    Enqueue::Dropped(back, reason) => {
                        assert_eq!(back, item, "the dropped item must come back");
                        assert_eq!(reason, DropReason::FlowLimit);
                        first_drop_mouse.get_or_insert(is_mouse);
                        if is_mouse {
                            mouse_drops += 1;
                        } else {
                            elephant_drops += 1;
                        }
                    }
                }
            }
        }
        assert_eq!(
            first_drop_mouse,
            Some(false),
            "the elephant must be dropped first"
        );
        assert_eq!(mouse_drops, 0, "mice must pass");
        // The 65th elephant in the history (count > 64) is the first one dropped.
        assert_eq!(1200 - elephant_drops, 64, "accepted elephants");
        let c = p.stats().worker(0);
        assert_eq!(c.flow_limit_count, elephant_drops);
        assert_eq!(
            c.dropped, elephant_drops,
            "dropped counts flow-limit drops too"
        );
        assert!(p.backlog_len(0) < DEFAULT_MAX_BACKLOG);
    }

    #[test]
    fn flow_limit_table_len_zero_turns_it_off() {
        let cfg = BacklogConfig {
            flow_limit_table_len: 0,
            ..BacklogConfig::default()
        };
        let (mut p, _w) = pair(cfg);
        for i in 0..DEFAULT_MAX_BACKLOG as u64 {
            assert!(queued(p.enqueue(0, i, 7)));
        }
        assert_eq!(p.enqueue(0, 9, 7), Enqueue::Dropped(9, DropReason::Full));
    }

    #[test]
    fn full_ring_drops_and_returns_the_item() {
        let cfg = BacklogConfig {
            max_backlog: 8,
            flow_limit_table_len: 0,
            ..BacklogConfig::default()
        };
        let (mut p, mut w) = pair(cfg);
        for i in 0..8u64 {
            assert!(queued(p.enqueue(0, i, 1 + i as u32)));
        }
        assert_eq!(p.enqueue(0, 8, 99), Enqueue::Dropped(8, DropReason::Full));
        assert_eq!(p.enqueue(0, 9, 99), Enqueue::Dropped(9, DropReason::Full));
        assert_eq!(
            p.enqueue(1, 10, 99),
            Enqueue::Dropped(10, DropReason::NoSuchWorker)
        );
        let c = p.stats().worker(0);
        assert_eq!((c.dropped, c.flow_limit_count), (2, 0));
        // Room again after a drain: items come out in order.
        let mut seen = Vec::new();
        assert_eq!(w.drain(|_, it, _| seen.push(it)), 8);
        assert_eq!(seen, (0..8).collect::<Vec<_>>());
        assert!(queued(p.enqueue(0, 11, 99)));
    }

    #[test]
    fn head_and_tail_count_accepted_and_processed() {
        let cfg = BacklogConfig {
            weight: 3,
            ..BacklogConfig::default()
        };
        let (mut p, mut w) = pair(cfg);
        for i in 0..5u64 {
            assert!(queued(p.enqueue(0, i, 5)));
        }
        assert_eq!((p.tail(0), p.head(0)), (5, 0));
        // Head advances only after the callback returned for every item of the chunk.
        let head_seen = AtomicU64::new(u64::MAX);
        let stats = p.stats();
        assert_eq!(
            w.drain(|_, _, _| head_seen.store(stats.ring(0, 0).processed, Ordering::Relaxed)),
            3
        );
        assert_eq!(head_seen.load(Ordering::Relaxed), 0, "head moved mid-chunk");
        assert_eq!((p.tail(0), p.head(0)), (5, 3));
        assert_eq!(w.drain(|_, _, _| {}), 2);
        assert_eq!((p.tail(0), p.head(0)), (5, 5));
        assert_eq!((p.tail(7), p.head(7)), (0, 0));
    }

    #[test]
    fn counters_add_up() {
        let cfg = BacklogConfig {
            max_backlog: 16,
            weight: 5,
            flow_limit_table_len: 16,
            return_capacity: 1024, // > 4 × 200 items offered per ring: never full
        };
        let (mut ps, mut ws) = fabric::<u64>(2, 2, cfg);
        let stats = ps[0].stats();
        let mut offered = [[0u64; 2]; 2];
        let mut dropped_back = 0u64;
        let mut x = 0x2545_f491_4f6c_dd1d_u64; // xorshift seed
        for round in 0..200u64 {
            for (pi, p) in ps.iter_mut().enumerate() {
                for _ in 0..4 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let wi = (x & 1) as usize;
                    // Four flows, one hot (3/4 of the items): exercises both drop reasons.
                    let hash = if x & 6 != 0 {
                        5
                    } else {
                        1 + (x >> 40) as u32 % 3
                    };
                    offered[pi][wi] += 1;
                    if let Enqueue::Dropped(_, reason) = p.enqueue(wi, round, hash) {
                        assert_ne!(reason, DropReason::NoSuchWorker);
                        dropped_back += 1;
                    }
                }
                let _ = p.end_round();
            }
            // Drain slower than the offered load so the backlogs fill and squeeze.
            if round % 3 == 0 {
                for w in ws.iter_mut() {
                    w.drain(|from, it, ret| {
                        assert!(ret.give_back(from, it).is_ok());
                    });
                }
            }
        }
        let mut total_dropped = 0;
        for ((pi, p), offered_p) in ps.iter().enumerate().zip(&offered) {
            for (wi, &offered_pw) in offered_p.iter().enumerate() {
                let r = stats.ring(pi, wi);
                assert_eq!(r.enqueued + r.dropped, offered_pw, "ring {pi}->{wi}");
                assert_eq!(r.enqueued, p.tail(wi));
                assert_eq!(
                    r.enqueued,
                    r.processed + p.backlog_len(wi) as u64,
                    "enqueued = processed + still queued, ring {pi}->{wi}"
                );
                assert!(r.flow_limit_count <= r.dropped);
                total_dropped += r.dropped;
            }
        }
        assert_eq!(total_dropped, dropped_back);
        let t = stats.total();
        let offered_all: u64 = offered.iter().flatten().sum();
        let queued_now: u64 = ps
            .iter()
            .map(|p| (p.backlog_len(0) + p.backlog_len(1)) as u64)
            .sum();
        assert_eq!(t.enqueued + t.dropped, offered_all);
        assert_eq!(offered_all, t.processed + t.dropped + queued_now);
        assert!(
            t.dropped > t.flow_limit_count && t.flow_limit_count > 0,
            "{t:?}"
        );
        assert!(t.time_squeeze > 0, "{t:?}");
        // Everything processed came back.
        let mut back = Vec::new();
        for p in ps.iter_mut() {
            p.reclaim(&mut back, usize::MAX);
        }
        assert_eq!(back.len() as u64, t.processed);
    }

    #[test]
    fn full_return_ring_keeps_items_staged() {
        let cfg = BacklogConfig {
            return_capacity: 2,
            ..BacklogConfig::default()
        };
        let (mut p, mut w) = pair(cfg);
        for i in 0..5u64 {
            assert!(queued(p.enqueue(0, i, 3)));
        }
        assert_eq!(
            w.drain(|from, it, ret| assert!(ret.give_back(from, it).is_ok())),
            5
        );
        assert_eq!(w.give_back(1, 77), Err(77), "no producer 1");
        // The end of the drain pushed what fits (2); the rest stays staged, then trickles.
        assert_eq!(w.flush_returns(), 3);
        let mut back = Vec::new();
        assert_eq!(p.reclaim(&mut back, usize::MAX), 2);
        assert_eq!(w.flush_returns(), 1);
        assert_eq!(p.reclaim(&mut back, usize::MAX), 2);
        assert_eq!(w.flush_returns(), 0);
        assert_eq!(p.reclaim(&mut back, usize::MAX), 1);
        back.sort_unstable();
        assert_eq!(back, vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn wakeups_only_for_idle_workers() {
        let (mut p, mut w) = pair(BacklogConfig::default());
        w.register_thread();
        // Fresh worker: idle, so the first round claims it and wakes it.
        assert!(queued(p.enqueue(0, 1, 1)));
        assert_eq!(p.end_round(), 1);
        // Claimed, not idle again yet: no second wakeup.
        assert!(queued(p.enqueue(0, 2, 1)));
        assert_eq!(p.end_round(), 0);
        assert_eq!(p.end_round(), 0, "nothing enqueued, nothing sent");
        // Work is pending: wait does not park; the claimed wakeup is counted.
        assert_eq!(w.wait(Duration::from_secs(5)), Wakeup::Pending);
        assert_eq!(w.stats().worker(0).received_rps, 1);
        assert_eq!(w.drain(|_, _, _| {}), 2);
        // Idle: the park consumes the first unpark's token or times out.
        let t0 = Instant::now();
        assert_eq!(w.wait(Duration::from_millis(1)), Wakeup::Idle);
        assert!(t0.elapsed() < Duration::from_secs(5));
        assert_eq!(w.wait(Duration::from_millis(1)), Wakeup::Idle);
        // Back from `wait` the worker counts as running: producers send it no wakeup.
        assert!(queued(p.enqueue(0, 3, 1)));
        assert_eq!(p.end_round(), 0);
        assert_eq!(w.wait(Duration::from_secs(5)), Wakeup::Pending);
        assert_eq!(w.stats().worker(0).received_rps, 1);
    }

    /// Hash of test flow `f`, never 0.
    fn flow_hash(f: u32) -> u32 {
        (f + 1).wrapping_mul(0x9e37_79b9) | 1
    }

    /// The kernel's `reciprocal_scale`: `hash * n >> 32`, n workers.
    fn rps_choice(hash: u32, n: usize) -> usize {
        ((u64::from(hash) * n as u64) >> 32) as usize
    }

    /// A frame stand-in: moved, never copied.
    #[derive(Debug)]
    struct Pkt {
        frame: u32,
        flow: u32,
        seq: u64,
    }

    /// Worker loop: drain, check per-flow order, give back; stop when told and empty.
    fn run_worker(
        mut w: Worker<Pkt>,
        last: Arc<Vec<AtomicU64>>,
        reorders: Arc<AtomicU64>,
        stop: Arc<AtomicBool>,
        park: Duration,
    ) -> u64 {
        w.register_thread();
        let mut processed = 0u64;
        loop {
            let n = w.drain(|from, pkt, ret| {
                if let Some(l) = last.get(pkt.flow as usize) {
                    // `last` holds seq + 1 of the flow's last processed item.
                    if l.swap(pkt.seq + 1, Ordering::AcqRel) > pkt.seq {
                        reorders.fetch_add(1, Ordering::Relaxed);
                    }
                }
                processed += 1;
                if ret.give_back(from, pkt).is_err() {
                    reorders.fetch_add(1_000_000, Ordering::Relaxed);
                }
            });
            if n == 0 {
                if stop.load(Ordering::Acquire) && !w.has_work() && w.flush_returns() == 0 {
                    return processed;
                }
                let _ = w.wait(park);
            }
        }
    }

    /// A frame id is free again: exactly once.
    fn put_back(pool: &mut Vec<u32>, free: &mut [bool], frame: u32) {
        let slot = free.get_mut(frame as usize).expect("frame id in range");
        assert!(!*slot, "frame {frame} came back twice");
        *slot = true;
        pool.push(frame);
    }

    #[test]
    fn steering_never_reorders_a_flow_while_rfs_moves_it() {
        const PRODUCERS: usize = 2;
        const WORKERS: usize = 2;
        const FLOWS: u32 = 16; // per producer
        const PER_FLOW: u64 = 3000;
        const FRAMES: usize = 256; // per producer, = return capacity
        let cfg = BacklogConfig {
            return_capacity: FRAMES,
            ..BacklogConfig::default()
        };
        let (ps, ws) = fabric::<Pkt>(PRODUCERS, WORKERS, cfg);
        let stats = ps[0].stats();
        let sock = Arc::new(SockFlowTable::new(1024, WORKERS));
        let all_flows = FLOWS as usize * PRODUCERS;
        let last: Arc<Vec<AtomicU64>> =
            Arc::new((0..all_flows).map(|_| AtomicU64::new(0)).collect());
        let reorders = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let flips = Arc::new(AtomicUsize::new(0));

        let workers: Vec<_> = ws
            .into_iter()
            .map(|w| {
                let (last, reorders, stop) = (last.clone(), reorders.clone(), stop.clone());
                thread::spawn(move || run_worker(w, last, reorders, stop, Duration::from_millis(5)))
            })
            .collect();

        // Control thread: keeps flipping the recorded worker of every other flow.
        let control = {
            let (sock, stop, flips) = (sock.clone(), stop.clone(), flips.clone());
            thread::spawn(move || {
                let mut k = 0usize;
                while !stop.load(Ordering::Acquire) {
                    for f in (0..all_flows as u32).step_by(2) {
                        sock.record(flow_hash(f), (k + f as usize) % WORKERS);
                    }
                    k += 1;
                    flips.store(k, Ordering::Relaxed);
                    thread::sleep(Duration::from_micros(300));
                }
            })
        };

        let producers: Vec<_> = ps
            .into_iter()
            .map(|mut p| {
                let sock = sock.clone();
                thread::spawn(move || {
                    let me = p.id() as u32;
                    let mut dev = DevFlowTable::new(1024, WORKERS);
                    let mut pool: Vec<u32> = (0..FRAMES as u32).collect();
                    let mut free = vec![true; FRAMES];
                    let mut seq = vec![0u64; FLOWS as usize];
                    let mut back = Vec::with_capacity(FRAMES);
                    let mut drops = 0u64;
                    let mut produced = 0u64;
                    let deadline = Instant::now() + Duration::from_secs(60);
                    while produced < u64::from(FLOWS) * PER_FLOW {
                        assert!(Instant::now() < deadline, "producer {me} stuck");
                        p.reclaim(&mut back, FRAMES);
                        for pkt in back.drain(..) {
                            put_back(&mut pool, &mut free, pkt.frame);
                        }
                        for _ in 0..32 {
                            if produced == u64::from(FLOWS) * PER_FLOW {
                                break;
                            }
                            let Some(frame) = pool.pop() else { break };
                            free[frame as usize] = false;
                            let local = (produced % u64::from(FLOWS)) as u32;
                            let flow = me * FLOWS + local;
                            let s = &mut seq[local as usize];
                            let pkt = Pkt {
                                frame,
                                flow,
                                seq: *s,
                            };
                            *s += 1;
                            produced += 1;
                            let h = flow_hash(flow);
                            let w =
                                dev.steer(h, rps_choice(h, WORKERS), sock.lookup(h), |w| p.head(w));
                            match p.enqueue(w, pkt, h) {
                                Enqueue::Queued => dev.note_enqueued(h, w, p.tail(w)),
                                Enqueue::Dropped(pkt, _) => {
                                    drops += 1;
                                    put_back(&mut pool, &mut free, pkt.frame);
                                }
                            }
                        }
                        p.end_round();
                        if pool.is_empty() {
                            thread::yield_now();
                        }
                    }
                    while pool.len() < FRAMES {
                        assert!(
                            Instant::now() < deadline,
                            "producer {me}: frames not returned"
                        );
                        p.end_round();
                        p.reclaim(&mut back, FRAMES);
                        for pkt in back.drain(..) {
                            put_back(&mut pool, &mut free, pkt.frame);
                        }
                        thread::yield_now();
                    }
                    (dev.counters(), drops, produced)
                })
            })
            .collect();

        let results: Vec<_> = producers.into_iter().map(|h| h.join()).collect();
        stop.store(true, Ordering::Release);
        let control_ok = control.join().is_ok();
        let processed: Vec<_> = workers
            .into_iter()
            .map(|h| {
                h.thread().unpark();
                h.join()
            })
            .collect();
        let mut rfs = crate::rx::rps::rfs::RfsCounters::default();
        let (mut drops, mut produced) = (0, 0);
        for r in results {
            let (c, d, n) = r.expect("a producer thread failed (see its panic above)");
            rfs.add(&c);
            drops += d;
            produced += n;
        }
        assert!(control_ok);
        let processed: u64 = processed
            .into_iter()
            .map(|r| r.expect("a worker thread panicked"))
            .sum();
        assert_eq!(
            reorders.load(Ordering::Relaxed),
            0,
            "a flow was reordered; {rfs:?}"
        );
        assert!(flips.load(Ordering::Relaxed) > 0);
        assert!(rfs.moves > 0, "no flow moved: {rfs:?}");
        assert_eq!(
            processed + drops,
            produced,
            "every item processed or dropped"
        );
        let t = stats.total();
        assert_eq!(t.processed, processed);
        assert_eq!(t.enqueued, processed);
        assert_eq!(t.dropped, drops);
    }

    #[test]
    fn no_lost_wakeup_across_bursts_and_idle_gaps() {
        const BURSTS: u32 = 20_000;
        let (mut ps, ws) = fabric::<u64>(1, 2, BacklogConfig::default());
        let Some(mut p) = ps.pop() else {
            panic!("no producer");
        };
        let stop = Arc::new(AtomicBool::new(false));
        // Workers park for far longer than the per-burst deadline: only a real wakeup
        // gets a burst through in time.
        let workers: Vec<_> = ws
            .into_iter()
            .map(|w| {
                let stop = stop.clone();
                let mut w = w;
                thread::spawn(move || {
                    w.register_thread();
                    let mut n = 0u64;
                    loop {
                        let got = w.drain(|from, it, ret| {
                            n += 1;
                            let _ = ret.give_back(from, it);
                        });
                        if got == 0 {
                            if stop.load(Ordering::Acquire) && !w.has_work() {
                                return n;
                            }
                            let _ = w.wait(Duration::from_secs(60));
                        }
                    }
                })
            })
            .collect();
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        let mut back = Vec::with_capacity(64);
        let mut item = 0u64;
        for burst in 0..BURSTS {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let size = 1 + (x % 8) as usize;
            for k in 0..size {
                item += 1;
                let w = ((x >> (8 + k)) & 1) as usize;
                assert!(queued(p.enqueue(w, item, 1 + (x >> 32) as u32)));
            }
            p.end_round();
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut got = 0;
            while got < size {
                assert!(
                    Instant::now() < deadline,
                    "burst {burst}: {got}/{size} back after 10 s: a lost wakeup"
                );
                back.clear();
                got += p.reclaim(&mut back, 64);
                thread::yield_now();
            }
            // Idle gaps of different lengths catch the workers in every phase of `wait`:
            // mostly short spins (0 to ~2 µs) that sweep the few hundred nanoseconds
            // between a worker's last empty drain and its park, sometimes real sleeps.
            match x % 8 {
                0 => thread::sleep(Duration::from_micros(50)),
                1 => thread::yield_now(),
                _ => {
                    for _ in 0..(x >> 20) % 2048 {
                        std::hint::spin_loop();
                    }
                }
            }
        }
        stop.store(true, Ordering::Release);
        let done: u64 = workers
            .into_iter()
            .map(|h| {
                h.thread().unpark();
                h.join().expect("worker panicked")
            })
            .sum();
        assert_eq!(done, item);
        let t = p.stats().total();
        assert_eq!(t.processed, item);
        assert!(t.received_rps > 0, "{t:?}");
    }
}
