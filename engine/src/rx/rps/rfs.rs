//! RFS: steer a flow to the worker that consumes it, and move it only when that cannot
//! reorder it (reference §3 S8, S9; §13 items 1–2).
//!
//! - [`SockFlowTable`] is the kernel's global `rps_sock_flow_table`: the worker that last
//!   consumed (or sent on) a flow records itself; any thread reads it. Entries are hints,
//!   written and read `Relaxed`: a stale or torn-by-collision entry only changes *where* a
//!   flow goes, never the order, which [`DevFlowTable`] guards.
//! - [`DevFlowTable`] is the per-RX-queue `rps_dev_flow_table`, owned by one producer
//!   (no sharing): for each hash bucket, the worker the flow currently goes to and the
//!   backlog `tail` after its last enqueued item (`last_qtail`). A flow leaves its worker
//!   only once that worker's `head` (items processed, published `Release` by
//!   [`Worker::drain`](super::backlog::Worker::drain), read `Acquire` by
//!   [`Producer::head`](super::backlog::Producer::head)) has reached `last_qtail`.
//!
//! Typical use on a poller, per frame with flow hash `h`:
//!
//! ```text
//! let w = dev.steer(h, rps_choice(h), sock.lookup(h), |w| producer.head(w));
//! if let Enqueue::Queued = producer.enqueue(w, frame, h) {
//!     dev.note_enqueued(h, w, producer.tail(w));
//! }
//! ```

use std::sync::atomic::{AtomicU32, Ordering};

/// Default [`SockFlowTable`] size: 32768 entries, the value the kernel's RPS/RFS
/// documentation (scaling.rst) suggests for `net.core.rps_sock_flow_entries` on a
/// moderately loaded server; 128 KiB of `u32`.
pub const DEFAULT_SOCK_FLOW_ENTRIES: usize = 1 << 15;

/// Largest table accepted: 2^24 entries (64 MiB of `u32` for the sock table), far above
/// any tuning advice; it bounds a mistyped setting.
const MAX_ENTRIES: usize = 1 << 24;

/// Most workers a [`SockFlowTable`] encodes: 2^16, so an entry keeps at least the hash's
/// 16 high bits to tell flows apart.
const MAX_WORKERS: usize = 1 << 16;

/// The kernel's `rps_sock_flow_table` with the upstream encoding (not the article's
/// `cpu << 16`, reference §13 item 1): `ents[hash & mask] = (hash & !worker_mask) |
/// worker`, where `worker_mask = next_power_of_two(workers) - 1` (upstream
/// `rps_cpu_mask`). A lookup hits only if the stored high bits equal the hash's.
///
/// Initial entries never look like a record: entry `i` starts as
/// `!i & mask & !worker_mask`. Every hash that indexes entry `i` has the bits
/// `mask & !worker_mask` equal to `i`'s, the initial entry has them inverted, and
/// [`SockFlowTable::new`] makes the table at least twice `worker_mask + 1` so those bits
/// exist: an initial entry fails the high-bit check for every hash, with certainty.
/// (Upstream fills the table with `RPS_NO_CPU` = 0xffff, which does match the few hashes
/// whose bits above the CPU mask are 0xffff's.)
#[derive(Debug)]
pub struct SockFlowTable {
    ents: Box<[AtomicU32]>,
    mask: u32,
    worker_mask: u32,
    workers: usize,
}

impl SockFlowTable {
    /// A table of `entries` (rounded up to a power of two, at least
    /// `2 × next_power_of_two(workers)`, at most 2^24) for `workers` workers (at most
    /// 2^16; a worker index at or above `workers` is never recorded nor returned).
    pub fn new(entries: usize, workers: usize) -> SockFlowTable {
        let workers = workers.min(MAX_WORKERS);
        let worker_slots = workers.max(1).next_power_of_two();
        // At least two worker_slots: see the type's doc on initial entries.
        let len = entries
            .max(worker_slots * 2)
            .min(MAX_ENTRIES)
            .next_power_of_two();
        let mask = u32::try_from(len - 1).unwrap_or(u32::MAX);
        let worker_mask = u32::try_from(worker_slots - 1).unwrap_or(u32::MAX);
        let ents = (0..=mask)
            .map(|i| AtomicU32::new(!i & mask & !worker_mask))
            .collect();
        SockFlowTable {
            ents,
            mask,
            worker_mask,
            workers,
        }
    }

    /// Entries in the table.
    pub fn len(&self) -> usize {
        self.ents.len()
    }

    /// Always false: a table has at least two entries.
    pub fn is_empty(&self) -> bool {
        self.ents.is_empty()
    }

    /// Records that `worker` consumes the flow hashing to `hash` (`rps_record_sock_flow`).
    /// Stores only if the entry differs, as upstream does, so a flow that stays put does
    /// not keep dirtying a cache line every reader shares. Hash 0 means "no hash" and is
    /// not recorded (upstream skips it too); nor is a worker out of range.
    pub fn record(&self, hash: u32, worker: usize) {
        if hash == 0 || worker >= self.workers {
            return;
        }
        let Ok(w) = u32::try_from(worker) else {
            return;
        };
        let val = (hash & !self.worker_mask) | w;
        if let Some(e) = self.ents.get((hash & self.mask) as usize) {
            if e.load(Ordering::Relaxed) != val {
                e.store(val, Ordering::Relaxed);
            }
        }
    }

    /// The worker recorded for `hash`: `None` for hash 0, when the entry belongs to
    /// another flow (high bits differ) or was never written, or when the worker is out of
    /// range (`get_rps_cpu`'s `next_cpu < nr_cpu_ids` check).
    pub fn lookup(&self, hash: u32) -> Option<usize> {
        if hash == 0 {
            return None;
        }
        let ident = self
            .ents
            .get((hash & self.mask) as usize)?
            .load(Ordering::Relaxed);
        if (ident ^ hash) & !self.worker_mask != 0 {
            return None;
        }
        let w = (ident & self.worker_mask) as usize;
        (w < self.workers).then_some(w)
    }
}

/// RFS steering counters of one [`DevFlowTable`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RfsCounters {
    /// Decisions with a desired (RFS) worker.
    pub steered_rfs: u64,
    /// Decisions without one: the RPS choice was the target.
    pub steered_rps: u64,
    /// Entries moved to a new worker (the old one had processed the flow's items).
    pub moves: u64,
    /// Moves put off because the old worker had not processed them yet.
    pub moves_deferred: u64,
}

impl RfsCounters {
    /// Sums another table's counters into this one.
    pub fn add(&mut self, o: &RfsCounters) {
        self.steered_rfs += o.steered_rfs;
        self.steered_rps += o.steered_rps;
        self.moves += o.moves;
        self.moves_deferred += o.moves_deferred;
    }
}

/// Entry value meaning "no worker yet" (upstream `RPS_NO_CPU`).
const NO_WORKER: u32 = u32::MAX;

/// One `rps_dev_flow`: where the bucket's flows go and the tail after their last item.
#[derive(Debug, Clone, Copy)]
struct DevFlow {
    worker: u32,
    last_qtail: u64,
}

/// The kernel's per-RX-queue `rps_dev_flow_table`, owned by one producer: `{worker,
/// last_qtail}` per bucket `hash & mask`.
///
/// [`DevFlowTable::steer`] follows `get_rps_cpu`: when the desired worker differs from
/// the entry's, switch only if the entry has no worker, its worker is out of range (the
/// kernel's offline CPU), or that worker's `head` has reached `last_qtail`
/// (`(i64)(head - last_qtail) >= 0`, wrapping-safe like the kernel's `(int)` cast); on a
/// switch `last_qtail` becomes the new worker's `head` (upstream `set_rps_cpu`).
///
/// Differs from the kernel: upstream consults the entry only when the sock table has a
/// desired CPU; an RPS-steered packet (no match) bypasses it, so a flow going RFS → RPS,
/// or RPS → RFS for the first time (entry unset), can be reordered. Here every decision,
/// RPS ones included, goes through the entry and is recorded, so any move waits for the
/// old backlog to drain. The granularity is the bucket: flows that share one move
/// together.
#[derive(Debug)]
pub struct DevFlowTable {
    flows: Box<[DevFlow]>,
    mask: u32,
    workers: usize,
    counters: RfsCounters,
}

impl DevFlowTable {
    /// A table of `entries` buckets (rounded up to a power of two, 1 to 2^24) for
    /// `workers` workers. Upstream's advice (scaling.rst) is `rps_flow_cnt =
    /// rps_sock_flow_entries / N` for N RX queues, i.e.
    /// `DEFAULT_SOCK_FLOW_ENTRIES / pollers` here.
    pub fn new(entries: usize, workers: usize) -> DevFlowTable {
        let len = entries.clamp(1, MAX_ENTRIES).next_power_of_two();
        DevFlowTable {
            flows: vec![
                DevFlow {
                    worker: NO_WORKER,
                    last_qtail: 0
                };
                len
            ]
            .into_boxed_slice(),
            mask: u32::try_from(len - 1).unwrap_or(u32::MAX),
            workers,
            counters: RfsCounters::default(),
        }
    }

    /// Picks the worker for a packet of the flow hashing to `hash`: `desired` (from
    /// [`SockFlowTable::lookup`]) if any, else `rps_choice`, but keeps the entry's current
    /// worker while it still has unprocessed items of this bucket (`head(cur) <
    /// last_qtail`). `head(w)` is worker `w`'s processed count for this producer
    /// ([`Producer::head`](super::backlog::Producer::head)). After a successful enqueue,
    /// call [`DevFlowTable::note_enqueued`].
    pub fn steer(
        &mut self,
        hash: u32,
        rps_choice: usize,
        desired: Option<usize>,
        head: impl Fn(usize) -> u64,
    ) -> usize {
        let target = match desired {
            Some(w) => {
                self.counters.steered_rfs += 1;
                w
            }
            None => {
                self.counters.steered_rps += 1;
                rps_choice
            }
        };
        let workers = self.workers;
        let Some(e) = self.flows.get_mut((hash & self.mask) as usize) else {
            return target;
        };
        let cur = e.worker as usize;
        if e.worker != NO_WORKER && cur == target {
            return cur;
        }
        let unset = e.worker == NO_WORKER || cur >= workers;
        // Wrapping-safe "head >= last_qtail", as the kernel's (int) cast.
        if unset || head(cur).wrapping_sub(e.last_qtail) as i64 >= 0 {
            if !unset {
                self.counters.moves += 1;
            }
            // A target that does not fit is left unrecorded: the enqueue will refuse it.
            if let Ok(w) = u32::try_from(target) {
                e.worker = w;
                e.last_qtail = head(target);
            }
            target
        } else {
            self.counters.moves_deferred += 1;
            cur
        }
    }

    /// Saves `last_qtail = tail_after` (the producer's [`tail`] for `worker` right after
    /// the enqueue, i.e. the sequence number the worker's `head` must reach before the
    /// bucket may move). Ignored when `worker` is not the bucket's current worker: the
    /// caller enqueued somewhere `steer` did not send it, which this table cannot make
    /// safe.
    ///
    /// [`tail`]: super::backlog::Producer::tail
    pub fn note_enqueued(&mut self, hash: u32, worker: usize, tail_after: u64) {
        if let Some(e) = self.flows.get_mut((hash & self.mask) as usize) {
            if e.worker != NO_WORKER && e.worker as usize == worker {
                e.last_qtail = tail_after;
            }
        }
    }

    /// The counters.
    pub fn counters(&self) -> RfsCounters {
        self.counters
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fresh_table_never_hits() {
        for workers in [1usize, 2, 3, 4, 16] {
            let t = SockFlowTable::new(64, workers);
            for h in (0..=u32::MAX).step_by(65_521).chain([1, 0xffff, u32::MAX]) {
                assert_eq!(t.lookup(h), None, "hash {h:#x}, {workers} workers");
            }
        }
    }

    #[test]
    fn upstream_encoding_and_collisions() {
        let t = SockFlowTable::new(DEFAULT_SOCK_FLOW_ENTRIES, 3);
        assert_eq!(t.len(), DEFAULT_SOCK_FLOW_ENTRIES);
        let h = 0xabcd_1234_u32;
        t.record(h, 2);
        assert_eq!(t.lookup(h), Some(2));
        // Stored as (hash & !worker_mask) | worker, at hash & mask.
        assert_eq!(
            t.ents[(h & t.mask) as usize].load(Ordering::Relaxed),
            (h & !3) | 2
        );
        // Same slot, other high bits: another flow, a miss.
        assert_eq!(t.lookup(h ^ 0x8000_0000), None);
        // Out-of-range workers and hash 0 are neither recorded nor returned.
        t.record(h, 3);
        assert_eq!(t.lookup(h), Some(2));
        t.record(0, 1);
        assert_eq!(t.lookup(0), None);
        // A worker that fits the mask but not the count (mask 3, 3 workers) is refused.
        let t3 = SockFlowTable::new(64, 4);
        t3.record(h, 3);
        let narrow = SockFlowTable {
            ents: t3.ents,
            mask: t3.mask,
            worker_mask: t3.worker_mask,
            workers: 3,
        };
        assert_eq!(narrow.lookup(h), None);
    }

    #[test]
    fn tiny_tables_grow_past_the_worker_field() {
        let t = SockFlowTable::new(1, 8);
        assert_eq!(t.len(), 16, "2 × next_power_of_two(8)");
        assert!(!t.is_empty());
    }

    proptest! {
        #[test]
        fn record_lookup_round_trip(
            hash in 1u32..,
            workers in 1usize..64,
            w in 0usize..64,
            entries in prop::sample::select(vec![1usize, 64, 4096, DEFAULT_SOCK_FLOW_ENTRIES]),
        ) {
            let t = SockFlowTable::new(entries, workers);
            prop_assert_eq!(t.lookup(hash), None);
            let w = w % workers;
            t.record(hash, w);
            prop_assert_eq!(t.lookup(hash), Some(w));
            // Bit 31 is above both masks: same slot, another flow.
            let other = hash ^ 0x8000_0000;
            prop_assert_eq!(t.lookup(other), None);
            t.record(other, (w + 1) % workers);
            prop_assert_eq!(t.lookup(other), Some((w + 1) % workers));
            prop_assert_eq!(t.lookup(hash), None);
        }
    }

    #[test]
    fn first_decision_takes_the_target_and_records_it() {
        let mut d = DevFlowTable::new(16, 2);
        assert_eq!(d.steer(5, 1, None, |_| 0), 1);
        assert_eq!(d.steer(5, 0, Some(1), |_| 0), 1);
        let c = d.counters();
        assert_eq!(
            (c.steered_rps, c.steered_rfs, c.moves, c.moves_deferred),
            (1, 1, 0, 0)
        );
    }

    #[test]
    fn a_move_waits_for_the_old_backlog_to_drain() {
        let mut d = DevFlowTable::new(16, 2);
        let h = 7;
        // RPS picks worker 0; three items enqueued there (tail 1, 2, 3).
        for tail in 1..=3 {
            assert_eq!(d.steer(h, 0, None, |_| 0), 0);
            d.note_enqueued(h, 0, tail);
        }
        // RFS wants worker 1 (RPS → RFS), worker 0 has processed 2 of 3: deferred.
        let heads = [2u64, 10];
        assert_eq!(d.steer(h, 0, Some(1), |w| heads[w]), 0);
        assert_eq!(d.counters().moves_deferred, 1);
        // Worker 0 has processed all three: the bucket moves, last_qtail = head(1).
        let heads = [3u64, 10];
        assert_eq!(d.steer(h, 0, Some(1), |w| heads[w]), 1);
        assert_eq!(d.counters().moves, 1);
        // Nothing enqueued on 1 since: going back (RFS → RPS) is allowed at once.
        assert_eq!(d.steer(h, 0, None, |w| heads[w]), 0);
        assert_eq!(d.counters().moves, 2);
        // Enqueued on 0 up to tail 9: back to 1 waits until head(0) reaches 9.
        d.note_enqueued(h, 0, 9);
        assert_eq!(d.steer(h, 0, Some(1), |w| [8u64, 10][w]), 0);
        assert_eq!(d.steer(h, 0, Some(1), |w| [9u64, 10][w]), 1);
        // note_enqueued for a worker that is not the bucket's is ignored.
        d.note_enqueued(h, 0, 1_000);
        assert_eq!(d.steer(h, 0, None, |w| [9u64, 10][w]), 0);
    }

    #[test]
    fn a_worker_out_of_range_is_left_at_once() {
        let mut d = DevFlowTable::new(4, 4);
        assert_eq!(d.steer(1, 3, None, |_| 0), 3);
        d.note_enqueued(1, 3, 50);
        // The table now says 2 workers worth of range: worker 3 is "offline".
        d.workers = 2;
        assert_eq!(d.steer(1, 0, None, |_| 0), 0);
    }

    #[test]
    fn head_comparison_wraps() {
        let mut d = DevFlowTable::new(4, 2);
        assert_eq!(d.steer(1, 0, None, |_| 0), 0);
        d.note_enqueued(1, 0, u64::MAX - 1);
        assert_eq!(d.steer(1, 0, Some(1), |_| u64::MAX - 2), 0, "behind");
        assert_eq!(
            d.steer(1, 0, Some(1), |w| if w == 0 { 3 } else { 0 }),
            1,
            "wrapped past"
        );
    }
}
