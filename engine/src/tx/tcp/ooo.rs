//! The receiver's out-of-order queue: segments that arrived beyond `RCV.NXT`, held until
//! the hole before them fills, and the SACK blocks (RFC 2018) that describe them to the
//! sender. This is the kernel's `tcp_data_queue_ofo` / `tcp_ofo_queue` and the SACK block
//! bookkeeping of `tcp_sack_new_ofo_skb`, `tcp_sack_maybe_coalesce` and `tcp_sack_remove`
//! (`net/ipv4/tcp_input.c`), rebuilt over an opaque payload handle `T` (a UMEM frame in
//! the engine) so that nothing is copied.
//!
//! Layout: a `VecDeque` of segments `[start, end)` sorted by `start`. No queued segment
//! contains another (a newcomer that queued data covers is refused, queued segments that
//! a newcomer covers are evicted), so `start` and `end` both increase strictly along the
//! queue and both can be binary-searched. Partial overlaps stay, as in the kernel: the
//! caller trims when it delivers. Every sequence number the queue compares lies in the
//! receive window, less than 2^31 apart, so [`Seq`]'s order holds across the wrap.
//!
//! Where this differs from the kernel, and why:
//! - Neighbours are not coalesced (`tcp_ooo_try_coalesce`): the items are frames, not
//!   buffers to append to, so each stays its own entry.
//! - A newcomer is refused when the queue already holds `max_segments`
//!   ([`Refused::Full`]). The kernel instead prunes the queue from its highest sequence
//!   down to the newcomer under memory pressure (`tcp_prune_ofo_queue`); refusing the
//!   newest costs the sender the same retransmission and keeps what is queued.
//! - A newcomer is a duplicate when the *union* of queued data covers it; the kernel looks
//!   at one neighbour only and queues a segment that two neighbours cover between them.
//! - The first SACK block is the whole contiguous run of queued data around the newcomer,
//!   found in the queue itself (RFC 2018 §4 asks for exactly that). The kernel widens the
//!   blocks it remembers (`tcp_sack_extend`), so it under-reports a run whose block fell
//!   off the end of its 4-entry list.

use std::collections::VecDeque;

use super::Seq;

/// How many SACK blocks the receiver remembers: the kernel's `TCP_NUM_SACKS`
/// (`include/linux/tcp.h`), which is also all a SACK option can carry:
/// (40 option bytes − 2 for kind and length) / 8 bytes per block = 4 (RFC 2018 §3).
pub const MAX_SACK_BLOCKS: usize = 4;

/// The longest segment accepted: 2^30 bytes, the largest window (RFC 7323 §2.3), so that
/// every pair of sequence numbers the queue compares is less than 2^31 apart.
pub const MAX_SEGMENT_LEN: u32 = 1 << 30;

/// One queued segment.
#[derive(Debug)]
struct Segment<T> {
    start: Seq,
    end: Seq,
    item: T,
}

impl<T> Segment<T> {
    /// Its length in bytes (at most [`MAX_SEGMENT_LEN`]).
    fn len(&self) -> u32 {
        self.end.since(self.start)
    }
}

/// What [`OooQueue::insert`] did with a segment it kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insert {
    /// Queued; none of its bytes were queued before.
    Queued,
    /// Queued, but `[start, end)` of it was queued already (a partial overlap, or queued
    /// segments it covers, which are now in `evicted`): the caller reports that range as a
    /// D-SACK block (RFC 2883 §4; the kernel's `tcp_dsack_set` / `tcp_dsack_extend` in
    /// `tcp_data_queue_ofo`). When the duplicated bytes are not contiguous this is the
    /// first contiguous stretch of them, as in the kernel.
    Overlap {
        /// First duplicated byte.
        start: Seq,
        /// One past the last byte of the stretch.
        end: Seq,
    },
}

/// Why [`OooQueue::insert`] refused a segment; the item comes back for the caller to free.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused<T> {
    /// Queued data already covers every byte: the caller frees it and reports
    /// `[seq, seq + len)` as a D-SACK block (RFC 2883 §4.1.3; `tcp_data_queue_ofo`'s "All
    /// the bits are present"). The SACK blocks were updated as for a new arrival.
    Duplicate(T),
    /// The queue holds `max_segments` already (and the newcomer would evict none of them):
    /// the caller drops it and counts the drop; the sender will retransmit.
    Full(T),
    /// Empty, or longer than [`MAX_SEGMENT_LEN`].
    Invalid(T),
}

impl<T> Refused<T> {
    /// The refused item, for the caller to free.
    pub fn into_item(self) -> T {
        match self {
            Refused::Duplicate(t) | Refused::Full(t) | Refused::Invalid(t) => t,
        }
    }
}

/// The out-of-order queue of one connection's receive side; see the module docs.
#[derive(Debug)]
pub struct OooQueue<T> {
    /// Sorted by start; starts and ends both strictly increasing.
    segs: VecDeque<Segment<T>>,
    /// Refuse a newcomer beyond this many segments.
    max_segments: usize,
    /// Sum of the queued segments' lengths (overlaps counted twice).
    bytes: u64,
    /// SACK blocks, most recently changed first (RFC 2018 §4); `sacks[..num_sacks]` valid.
    sacks: [(Seq, Seq); MAX_SACK_BLOCKS],
    /// How many of `sacks` are valid.
    num_sacks: usize,
}

impl<T> OooQueue<T> {
    /// An empty queue that holds at most `max_segments` segments. Its memory grows to the
    /// largest it has held and is reused from then on.
    pub fn new(max_segments: usize) -> Self {
        OooQueue {
            segs: VecDeque::new(),
            max_segments,
            bytes: 0,
            sacks: [(Seq(0), Seq(0)); MAX_SACK_BLOCKS],
            num_sacks: 0,
        }
    }

    /// Queues `[seq, seq + len)`, which the caller has checked lies beyond `RCV.NXT` and
    /// inside the receive window (`tcp_data_queue` hands `tcp_data_queue_ofo` the same).
    ///
    /// A segment that queued data covers entirely is refused as [`Refused::Duplicate`];
    /// queued segments that the new one covers entirely are removed and pushed to
    /// `evicted` for the caller to free; partial overlaps are kept (the caller trims when
    /// delivering). The SACK blocks are updated: the contiguous block holding this
    /// segment becomes the first, the others keep their recency order, at most
    /// [`MAX_SACK_BLOCKS`], blocks that now touch merged (RFC 2018 §4).
    pub fn insert(
        &mut self,
        seq: Seq,
        len: u32,
        item: T,
        evicted: &mut Vec<T>,
    ) -> Result<Insert, Refused<T>> {
        if len == 0 || len > MAX_SEGMENT_LEN {
            return Err(Refused::Invalid(item));
        }
        let (start, end) = (seq, seq.add(len));

        // Walk the queued segments that share a byte with the newcomer: from the first
        // that ends after `start` while they start before `end`. `covered_to` is how far
        // queued data covers the newcomer contiguously from `start`; `dup` the first
        // contiguous stretch of duplicated bytes.
        let first = self.segs.partition_point(|g| g.end.le(start));
        let mut covered_to = start;
        let mut dup: Option<(Seq, Seq)> = None;
        for g in self.segs.range(first..) {
            if !g.start.lt(end) {
                break;
            }
            let (a, b) = (g.start.max(start), g.end.min(end));
            match &mut dup {
                None => dup = Some((a, b)),
                Some((_, de)) if a.le(*de) => *de = de.max(b),
                Some(_) => {}
            }
            if g.start.le(covered_to) {
                covered_to = covered_to.max(g.end);
            }
        }
        if covered_to.ge(end) {
            // Every byte is here already. The kernel still moves the block holding it to
            // the front (`goto add_sack`), which RFC 2883 §4 wants right behind the D-SACK.
            self.note_sack(start, end);
            return Err(Refused::Duplicate(item));
        }

        // Queued segments inside the newcomer: from the first starting at or after
        // `start`, while they end at or before `end` (ends increase, so they are a run).
        let at = self.segs.partition_point(|g| g.start.lt(start));
        let mut upto = at;
        while self.segs.get(upto).is_some_and(|g| g.end.le(end)) {
            upto += 1;
        }
        if self.segs.len() - (upto - at) >= self.max_segments {
            return Err(Refused::Full(item));
        }
        for g in self.segs.drain(at..upto) {
            self.bytes -= u64::from(g.len());
            evicted.push(g.item);
        }
        self.segs.insert(at, Segment { start, end, item });
        self.bytes += u64::from(len);
        self.note_sack(start, end);
        Ok(match dup {
            None => Insert::Queued,
            Some((start, end)) => Insert::Overlap { start, end },
        })
    }

    /// Removes and returns the first segment if it starts at or before `rcv_nxt`, as
    /// `(seq, len, item)` (`tcp_ofo_queue`). The caller delivers its bytes from `rcv_nxt`
    /// on and advances `rcv_nxt`, or frees it if it ends at or before `rcv_nxt` (the
    /// kernel's `TCP_OFO_DROP`); then calls again until `None`.
    pub fn pop_ready(&mut self, rcv_nxt: Seq) -> Option<(Seq, u32, T)> {
        if !self.segs.front()?.start.le(rcv_nxt) {
            return None;
        }
        let g = self.segs.pop_front()?;
        let len = g.len();
        self.bytes -= u64::from(len);
        self.forget_sacks_upto(rcv_nxt);
        Some((g.start, len, g.item))
    }

    /// Appends to `out` the SACK blocks to send (RFC 2018 §4), most recent first, at most
    /// `max` of them: 4 without timestamps, 3 with (the 40-byte option space), one fewer
    /// when the caller puts a D-SACK block first (RFC 2883 §4). Blocks at or below
    /// `rcv_nxt` are dropped first (`tcp_sack_remove`), all of them when the queue is
    /// empty; call after draining [`OooQueue::pop_ready`].
    pub fn sack_blocks(&mut self, rcv_nxt: Seq, out: &mut Vec<(Seq, Seq)>, max: usize) {
        self.forget_sacks_upto(rcv_nxt);
        out.extend(self.sacks.iter().take(self.num_sacks.min(max)).copied());
    }

    /// Number of queued segments.
    pub fn len(&self) -> usize {
        self.segs.len()
    }

    /// Nothing queued.
    pub fn is_empty(&self) -> bool {
        self.segs.is_empty()
    }

    /// Bytes held: the sum of the queued segments' lengths (partial overlaps counted in
    /// each segment).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The limit given to [`OooQueue::new`].
    pub fn max_segments(&self) -> usize {
        self.max_segments
    }

    /// Empties the queue into `out` (connection reset or close, the kernel's
    /// `skb_rbtree_purge` in `tcp_fin` / `tcp_done`) and forgets the SACK blocks.
    pub fn drain(&mut self, out: &mut Vec<T>) {
        out.extend(self.segs.drain(..).map(|g| g.item));
        self.bytes = 0;
        self.num_sacks = 0;
    }

    /// Drops the SACK blocks that start at or before `rcv_nxt`, all of them when the queue
    /// is empty (`tcp_sack_remove`).
    fn forget_sacks_upto(&mut self, rcv_nxt: Seq) {
        if self.segs.is_empty() {
            self.num_sacks = 0;
            return;
        }
        let mut kept = 0;
        for i in 0..self.num_sacks {
            let b = self.sacks[i];
            if rcv_nxt.lt(b.0) {
                self.sacks[kept] = b;
                kept += 1;
            }
        }
        self.num_sacks = kept;
    }

    /// Makes the contiguous run of queued data around `[start, end)` the first SACK block,
    /// absorbing the blocks it touches and keeping the rest in recency order; the oldest
    /// falls off beyond [`MAX_SACK_BLOCKS`] (`tcp_sack_new_ofo_skb` +
    /// `tcp_sack_maybe_coalesce`).
    fn note_sack(&mut self, start: Seq, end: Seq) {
        let (mut a, mut b) = (start, end);
        // Grow [a, b) until nothing touches it. Known blocks are whole runs, so absorbing
        // one jumps over it; the queue walk finds runs whose block was forgotten.
        loop {
            let (a0, b0) = (a, b);
            for &(s, e) in &self.sacks[..self.num_sacks] {
                if s.le(b) && a.le(e) {
                    a = a.min(s);
                    b = b.max(e);
                }
            }
            // On the left: the last segment starting before `a` ends last among those.
            let i = self.segs.partition_point(|g| g.start.lt(a));
            if let Some(g) = i.checked_sub(1).and_then(|i| self.segs.get(i)) {
                if g.end.ge(a) {
                    a = g.start;
                }
            }
            // On the right: the first segment ending after `b`.
            let j = self.segs.partition_point(|g| g.end.le(b));
            if let Some(g) = self.segs.get(j) {
                if g.start.le(b) {
                    b = g.end;
                }
            }
            if a == a0 && b == b0 {
                break;
            }
        }
        let mut next = [(a, b); MAX_SACK_BLOCKS];
        let mut n = 1;
        for &(s, e) in &self.sacks[..self.num_sacks] {
            let absorbed = s.le(b) && a.le(e);
            if !absorbed && n < MAX_SACK_BLOCKS {
                next[n] = (s, e);
                n += 1;
            }
        }
        self.sacks = next;
        self.num_sacks = n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The SACK blocks as plain numbers, up to 4.
    fn blocks<T>(q: &mut OooQueue<T>, rcv_nxt: u32) -> Vec<(u32, u32)> {
        let mut out = Vec::new();
        q.sack_blocks(Seq(rcv_nxt), &mut out, MAX_SACK_BLOCKS);
        out.into_iter().map(|(s, e)| (s.0, e.0)).collect()
    }

    /// Inserts `[seq, seq + len)` with item `id`, expecting it queued.
    fn put(q: &mut OooQueue<u32>, seq: u32, len: u32, id: u32) -> Insert {
        let mut ev = Vec::new();
        let r = q.insert(Seq(seq), len, id, &mut ev).expect("queued");
        assert!(ev.is_empty(), "unexpected eviction of {ev:?}");
        r
    }

    /// Pops everything ready from `rcv_nxt`, returning the new `rcv_nxt` and the items.
    fn deliver(q: &mut OooQueue<u32>, mut rcv_nxt: u32) -> (u32, Vec<u32>) {
        let mut got = Vec::new();
        while let Some((s, len, id)) = q.pop_ready(Seq(rcv_nxt)) {
            let end = s.add(len);
            if end.gt(Seq(rcv_nxt)) {
                rcv_nxt = end.0;
            }
            got.push(id);
        }
        (rcv_nxt, got)
    }

    #[test]
    fn rfc2018_case2_first_segment_lost() {
        // RFC 2018 §5 case 2: eight 500-byte segments from 5000, the first lost.
        // +0 < . 5000:5500(500)  (lost)
        // +0 < . 5500:6000(500)  > . ack 5000 <sack 5500:6000>
        // ...
        // +0 < . 8500:9000(500)  > . ack 5000 <sack 5500:9000>
        let mut q = OooQueue::new(64);
        for i in 1..8u32 {
            assert_eq!(put(&mut q, 5000 + 500 * i, 500, i), Insert::Queued);
            assert_eq!(blocks(&mut q, 5000), vec![(5500, 5500 + 500 * i)]);
        }
        assert_eq!((q.len(), q.bytes()), (7, 3500));
        // +0 < . 5000:5500(500)  > . ack 9000 (in order: the caller delivers it, then the queue)
        let (nxt, got) = deliver(&mut q, 5500);
        assert_eq!((nxt, got), (9000, (1..8).collect::<Vec<_>>()));
        assert!(q.is_empty() && q.bytes() == 0);
        assert_eq!(blocks(&mut q, nxt), vec![]);
    }

    #[test]
    fn rfc2018_case3_alternate_segments_lost() {
        // RFC 2018 §5 case 3: the 2nd, 4th, 6th and 8th segments are dropped.
        // +0 < . 5000:5500(500)  > . ack 5500 (in order, not queued)
        let mut q = OooQueue::new(64);
        // +0 < . 6000:6500(500)  > . ack 5500 <sack 6000:6500>
        put(&mut q, 6000, 500, 3);
        assert_eq!(blocks(&mut q, 5500), vec![(6000, 6500)]);
        // +0 < . 7000:7500(500)  > . ack 5500 <sack 7000:7500 6000:6500>
        put(&mut q, 7000, 500, 5);
        assert_eq!(blocks(&mut q, 5500), vec![(7000, 7500), (6000, 6500)]);
        // +0 < . 8000:8500(500)  > . ack 5500 <sack 8000:8500 7000:7500 6000:6500>
        put(&mut q, 8000, 500, 7);
        assert_eq!(
            blocks(&mut q, 5500),
            vec![(8000, 8500), (7000, 7500), (6000, 6500)]
        );
        // The 4th arrives late: the blocks around it merge and go first.
        // +0 < . 6500:7000(500)  > . ack 5500 <sack 6000:7500 8000:8500>
        put(&mut q, 6500, 500, 4);
        assert_eq!(blocks(&mut q, 5500), vec![(6000, 7500), (8000, 8500)]);
        // Then the 2nd: ACK 7500, the merged block is gone.
        // +0 < . 5500:6000(500)  > . ack 7500 <sack 8000:8500>
        let (nxt, got) = deliver(&mut q, 6000);
        assert_eq!((nxt, got), (7500, vec![3, 4, 5]));
        assert_eq!(blocks(&mut q, nxt), vec![(8000, 8500)]);
    }

    #[test]
    fn first_block_is_the_most_recent_and_the_oldest_falls_off() {
        // RFC 2018 §4: the first block holds the segment that triggered the ACK, then the
        // most recently reported ones; five disjoint arrivals keep the four latest.
        let mut q = OooQueue::new(64);
        for (i, seq) in [1000u32, 3000, 5000, 7000, 9000].into_iter().enumerate() {
            put(&mut q, seq, 100, i as u32);
        }
        assert_eq!(
            blocks(&mut q, 0),
            vec![(9000, 9100), (7000, 7100), (5000, 5100), (3000, 3100)]
        );
        // With timestamps only three fit.
        let mut out = Vec::new();
        q.sack_blocks(Seq(0), &mut out, 3);
        assert_eq!(out.len(), 3);
        // Touching an older block moves it first without disturbing the others' order.
        put(&mut q, 5100, 100, 9);
        assert_eq!(
            blocks(&mut q, 0),
            vec![(5000, 5200), (9000, 9100), (7000, 7100), (3000, 3100)]
        );
    }

    #[test]
    fn forgotten_run_is_found_again() {
        // [1000,1300) in three segments, then four disjoint blocks push it off the list.
        let mut q = OooQueue::new(64);
        for i in 0..3u32 {
            put(&mut q, 1000 + 100 * i, 100, i);
        }
        for (i, seq) in [3000u32, 5000, 7000, 9000].into_iter().enumerate() {
            put(&mut q, seq, 100, 10 + i as u32);
        }
        assert!(!blocks(&mut q, 0).contains(&(1000, 1300)));
        // A segment touching it reports the whole run (the kernel would say 1300:1400).
        put(&mut q, 1300, 100, 20);
        assert_eq!(blocks(&mut q, 0)[0], (1000, 1400));
        // And one that bridges two runs reports both.
        put(&mut q, 1400, 1600, 21);
        assert_eq!(blocks(&mut q, 0)[0], (1000, 3100));
    }

    #[test]
    fn duplicate_is_refused_and_its_block_goes_first() {
        // RFC 2883 §4.1.3: 4000:4500 lost, 4500:5000 and 5000:5500 queued, then
        // 5000:5500 again: refused (the caller sends <sack 5000:5500 4500:5500>).
        let mut q = OooQueue::new(64);
        put(&mut q, 4500, 500, 1);
        put(&mut q, 9000, 500, 2);
        put(&mut q, 5000, 500, 3);
        put(&mut q, 9500, 500, 4);
        assert_eq!(blocks(&mut q, 4000), vec![(9000, 10000), (4500, 5500)]);
        let mut ev = Vec::new();
        assert_eq!(
            q.insert(Seq(5000), 500, 5, &mut ev),
            Err(Refused::Duplicate(5))
        );
        assert_eq!(blocks(&mut q, 4000), vec![(4500, 5500), (9000, 10000)]);
        assert_eq!((q.len(), q.bytes()), (4, 2000));
        // A part of a queued segment is a duplicate too.
        let r = q.insert(Seq(4600), 10, 6, &mut ev);
        assert_eq!(r.map_err(Refused::into_item), Err(6));
    }

    #[test]
    fn covered_by_two_neighbours_is_a_duplicate() {
        // 100:200 and 200:300 queued; 150:250 brings nothing new.
        let mut q = OooQueue::new(64);
        put(&mut q, 100, 100, 1);
        put(&mut q, 200, 100, 2);
        let mut ev = Vec::new();
        assert_eq!(
            q.insert(Seq(150), 100, 3, &mut ev),
            Err(Refused::Duplicate(3))
        );
        // 150:310 does bring 300:310: queued, D-SACK 150:300 (contiguous over both).
        assert_eq!(
            q.insert(Seq(150), 160, 4, &mut ev),
            Ok(Insert::Overlap {
                start: Seq(150),
                end: Seq(300)
            })
        );
        // 200:300 lies inside it: evicted.
        assert_eq!(ev, vec![2]);
        assert_eq!((q.len(), q.bytes()), (2, 260));
    }

    #[test]
    fn covering_segment_evicts_what_it_covers() {
        // 200:300, 400:500, 600:700 queued; a retransmission 150:550 covers the first two.
        let mut q = OooQueue::new(64);
        put(&mut q, 200, 100, 1);
        put(&mut q, 400, 100, 2);
        put(&mut q, 600, 100, 3);
        let mut ev = Vec::new();
        let r = q.insert(Seq(150), 400, 4, &mut ev);
        // The duplicated bytes are 200:300 and 400:500; the D-SACK names the first stretch.
        assert_eq!(
            r,
            Ok(Insert::Overlap {
                start: Seq(200),
                end: Seq(300)
            })
        );
        assert_eq!(ev, vec![1, 2]);
        assert_eq!((q.len(), q.bytes()), (2, 500));
        assert_eq!(blocks(&mut q, 100), vec![(150, 550), (600, 700)]);
        // Same start, longer: replaces (the kernel's rb_replace_node case).
        ev.clear();
        let r = q.insert(Seq(600), 200, 5, &mut ev);
        assert_eq!(
            r,
            Ok(Insert::Overlap {
                start: Seq(600),
                end: Seq(700)
            })
        );
        assert_eq!(ev, vec![3]);
        assert_eq!(deliver(&mut q, 150), (550, vec![4]));
        assert_eq!(deliver(&mut q, 600), (800, vec![5]));
    }

    #[test]
    fn partial_overlaps_are_kept_for_the_caller_to_trim() {
        // 100:200 queued; 150:300 overlaps it by 50 bytes.
        let mut q = OooQueue::new(64);
        put(&mut q, 100, 100, 1);
        assert_eq!(
            put(&mut q, 150, 150, 2),
            Insert::Overlap {
                start: Seq(150),
                end: Seq(200)
            }
        );
        // 50:120 overlaps from the left.
        assert_eq!(
            put(&mut q, 50, 70, 3),
            Insert::Overlap {
                start: Seq(100),
                end: Seq(120)
            }
        );
        assert_eq!((q.len(), q.bytes()), (3, 320));
        assert_eq!(blocks(&mut q, 0), vec![(50, 300)]);
        assert_eq!(q.pop_ready(Seq(50)), Some((Seq(50), 70, 3)));
        assert_eq!(q.pop_ready(Seq(120)), Some((Seq(100), 100, 1)));
        assert_eq!(q.pop_ready(Seq(200)), Some((Seq(150), 150, 2)));
        assert_eq!(q.pop_ready(Seq(300)), None);
    }

    #[test]
    fn stale_segments_come_out_for_freeing() {
        // An in-order retransmission moved rcv_nxt past two queued segments.
        let mut q = OooQueue::new(64);
        put(&mut q, 1100, 100, 1);
        put(&mut q, 1300, 100, 2);
        put(&mut q, 1500, 100, 3);
        // rcv_nxt is now 1450: 1 and 2 end at or before it (free), 3 is not ready.
        assert_eq!(q.pop_ready(Seq(1450)), Some((Seq(1100), 100, 1)));
        assert_eq!(q.pop_ready(Seq(1450)), Some((Seq(1300), 100, 2)));
        assert_eq!(q.pop_ready(Seq(1450)), None);
        assert_eq!(blocks(&mut q, 1450), vec![(1500, 1600)]);
    }

    #[test]
    fn sequence_numbers_wrap() {
        // rcv_nxt just below 2^32; segments straddle and follow the wrap.
        let nxt = u32::MAX - 999;
        let mut q = OooQueue::new(64);
        put(&mut q, nxt.wrapping_add(1500), 1000, 3); // 500:1500 after the wrap
        put(&mut q, nxt.wrapping_add(500), 1000, 2); // u32::MAX-499 : 500, straddles 0
        assert_eq!(blocks(&mut q, nxt), vec![(nxt.wrapping_add(500), 1500)]);
        let mut ev = Vec::new();
        assert_eq!(
            q.insert(Seq(0), 100, 9, &mut ev),
            Err(Refused::Duplicate(9))
        );
        // The hole nxt : nxt+500 fills.
        assert_eq!(deliver(&mut q, nxt.wrapping_add(500)), (1500, vec![2, 3]));
        assert!(q.is_empty());
    }

    #[test]
    fn full_queue_refuses_the_newest() {
        let mut q = OooQueue::new(2);
        put(&mut q, 100, 10, 1);
        put(&mut q, 200, 10, 2);
        let mut ev = Vec::new();
        assert_eq!(q.insert(Seq(300), 10, 3, &mut ev), Err(Refused::Full(3)));
        assert_eq!(blocks(&mut q, 0), vec![(200, 210), (100, 110)]);
        // One that evicts as many as it adds still fits.
        assert!(q.insert(Seq(195), 20, 4, &mut ev).is_ok());
        assert_eq!(ev, vec![2]);
        assert_eq!(q.len(), 2);
    }

    #[test]
    fn invalid_lengths_are_refused() {
        let mut q = OooQueue::new(8);
        let mut ev = Vec::new();
        assert_eq!(q.insert(Seq(5), 0, 1, &mut ev), Err(Refused::Invalid(1)));
        let r = q.insert(Seq(5), MAX_SEGMENT_LEN + 1, 2, &mut ev);
        assert_eq!(r, Err(Refused::Invalid(2)));
        assert!(q.is_empty() && blocks(&mut q, 0).is_empty());
    }

    #[test]
    fn drain_returns_everything() {
        let mut q = OooQueue::new(8);
        put(&mut q, 100, 10, 1);
        put(&mut q, 300, 10, 2);
        let mut out = Vec::new();
        q.drain(&mut out);
        assert_eq!(out, vec![1, 2]);
        assert!(q.is_empty() && q.bytes() == 0 && blocks(&mut q, 0).is_empty());
    }

    /// Base sequence number, the stream, its segments as byte ranges, the arrival order.
    type Arrivals = (u32, Vec<u8>, Vec<(usize, usize)>, Vec<usize>);

    /// A random segmentation of `len` bytes: cut points, plus extra (possibly
    /// overlapping) ranges that duplicate parts of the stream.
    fn arrivals() -> impl Strategy<Value = Arrivals> {
        (any::<u32>(), 1usize..3000)
            .prop_flat_map(|(base, len)| {
                let data = proptest::collection::vec(any::<u8>(), len);
                let cuts = proptest::collection::vec(1..len.max(2), 0..40);
                let extra = proptest::collection::vec((0..len, 1..400usize), 0..20);
                (Just(base), data, cuts, extra)
            })
            .prop_flat_map(|(base, data, mut cuts, extra)| {
                let len = data.len();
                cuts.retain(|&c| c < len);
                cuts.push(0);
                cuts.push(len);
                cuts.sort_unstable();
                cuts.dedup();
                let mut segs: Vec<(usize, usize)> = cuts.windows(2).map(|w| (w[0], w[1])).collect();
                segs.extend(extra.into_iter().map(|(s, l)| (s, (s + l).min(len))));
                let n = segs.len();
                let order = Just((0..n).collect::<Vec<_>>()).prop_shuffle();
                (Just(base), Just(data), Just(segs), order)
            })
    }

    proptest! {
        #[test]
        fn any_arrival_order_reassembles_the_stream(
            (base, data, segs, order) in arrivals()
        ) {
            let mut q: OooQueue<(u32, Vec<u8>)> = OooQueue::new(10_000);
            let mut rcv_nxt = Seq(base);
            let mut out: Vec<u8> = Vec::new();
            let mut evicted = Vec::new();
            let (mut inserted, mut gone) = (0usize, 0usize);
            let deliver = |seq: Seq, bytes: &[u8], rcv_nxt: &mut Seq, out: &mut Vec<u8>| {
                let end = seq.add(bytes.len() as u32);
                if end.gt(*rcv_nxt) {
                    let skip = rcv_nxt.since(seq) as usize;
                    out.extend_from_slice(&bytes[skip..]);
                    *rcv_nxt = end;
                }
            };
            for &i in &order {
                let (s, e) = segs[i];
                let seq = Seq(base).add(s as u32);
                let bytes = data[s..e].to_vec();
                if seq.le(rcv_nxt) {
                    // In order (or old): the caller delivers it, then drains the queue.
                    deliver(seq, &bytes, &mut rcv_nxt, &mut out);
                    while let Some((pseq, plen, (id, pbytes))) = q.pop_ready(rcv_nxt) {
                        prop_assert_eq!(pbytes.len() as u32, plen);
                        prop_assert_eq!(pseq, Seq(base).add(id));
                        deliver(pseq, &pbytes, &mut rcv_nxt, &mut out);
                        gone += 1;
                    }
                } else {
                    match q.insert(seq, bytes.len() as u32, (s as u32, bytes), &mut evicted) {
                        Ok(_) => inserted += 1,
                        Err(Refused::Duplicate(_)) => {}
                        Err(r) => prop_assert!(false, "refused {:?}", r),
                    }
                    gone += evicted.len();
                    evicted.clear();
                }
                // Every item accounted for; bytes add up.
                prop_assert_eq!(inserted, gone + q.len());
                // SACK blocks: above rcv_nxt, disjoint, not touching, at most 4.
                let mut sb = Vec::new();
                q.sack_blocks(rcv_nxt, &mut sb, MAX_SACK_BLOCKS);
                prop_assert!(sb.len() <= MAX_SACK_BLOCKS);
                for (k, &(bs, be)) in sb.iter().enumerate() {
                    prop_assert!(rcv_nxt.lt(bs) && bs.lt(be));
                    for &(os, oe) in &sb[k + 1..] {
                        prop_assert!(be.lt(os) || oe.lt(bs), "{:?} touches {:?}", (bs, be), (os, oe));
                    }
                }
                if !seq.le(rcv_nxt) {
                    // The segment that just arrived beyond rcv_nxt is in the first block.
                    prop_assert!(!sb.is_empty());
                    prop_assert!(sb[0].0.le(seq) && seq.add((e - s) as u32).le(sb[0].1));
                }
            }
            prop_assert!(q.is_empty());
            prop_assert_eq!(q.bytes(), 0);
            prop_assert_eq!(rcv_nxt, Seq(base).add(data.len() as u32));
            prop_assert_eq!(out, data);
        }
    }
}
