//! Ring batching and frame accounting without a kernel: a heap-backed fake kernel stands
//! in for the four rings, and the real `XskQueue` accounting code moves frames through it.

use std::collections::{BTreeSet, VecDeque};

use proptest::prelude::*;

use super::{Frame, Rings, XskQueue};
use crate::sys::SyscallError;

/// Rings as bounded queues; `deliver` and `transmit` play the kernel's part.
#[derive(Debug)]
struct FakeKernel {
    fill: VecDeque<Frame>,
    rx: VecDeque<Frame>,
    tx: VecDeque<Frame>,
    comp: VecDeque<Frame>,
    /// Taken from the fill ring, being "written" by the kernel.
    rx_in_flight: Vec<Frame>,
    /// Taken from the TX ring, not yet completed.
    tx_in_flight: Vec<Frame>,
    size: usize,
}

impl FakeKernel {
    fn new(size: usize) -> Self {
        FakeKernel {
            fill: VecDeque::new(),
            rx: VecDeque::new(),
            tx: VecDeque::new(),
            comp: VecDeque::new(),
            rx_in_flight: Vec::new(),
            tx_in_flight: Vec::new(),
            size,
        }
    }
    /// The kernel receives `n` frames: fill ring → in flight → RX ring (while room).
    fn deliver(&mut self, n: usize) {
        for _ in 0..n {
            if let Some(f) = self.fill.pop_front() {
                self.rx_in_flight.push(f);
            }
        }
        while self.rx.len() < self.size {
            match self.rx_in_flight.pop() {
                Some(f) => self.rx.push_back(f),
                None => break,
            }
        }
    }
    /// The kernel transmits `n` frames: TX ring → in flight → completion ring.
    fn transmit(&mut self, n: usize) {
        for _ in 0..n {
            if let Some(f) = self.tx.pop_front() {
                self.tx_in_flight.push(f);
            }
        }
        while self.comp.len() < self.size {
            match self.tx_in_flight.pop() {
                Some(f) => self.comp.push_back(f),
                None => break,
            }
        }
    }
    fn ids(&self) -> Vec<u32> {
        self.fill
            .iter()
            .chain(&self.rx)
            .chain(&self.tx)
            .chain(&self.comp)
            .chain(&self.rx_in_flight)
            .chain(&self.tx_in_flight)
            .map(Frame::test_id)
            .collect()
    }
}

impl Rings for FakeKernel {
    fn area_id(&self) -> super::AreaId {
        Frame::for_test(0).area()
    }
    fn fill_free(&mut self, want: u32) -> u32 {
        ((self.size - self.fill.len()) as u32).min(want.max(self.size as u32))
    }
    fn fill(&mut self, frames: &mut Vec<Frame>, max: usize) -> usize {
        let n = max.min(frames.len()).min(self.size - self.fill.len());
        let start = frames.len() - n;
        self.fill.extend(frames.drain(start..));
        n
    }
    fn fill_needs_wakeup(&self) -> bool {
        false
    }
    fn rx(&mut self, out: &mut Vec<Frame>, max: usize) -> usize {
        let n = max.min(self.rx.len());
        out.extend(self.rx.drain(..n));
        n
    }
    fn tx_free(&mut self, want: u32) -> u32 {
        ((self.size - self.tx.len()) as u32).min(want.max(self.size as u32))
    }
    fn tx(&mut self, frames: &mut Vec<Frame>) -> usize {
        let n = frames.len().min(self.size - self.tx.len());
        self.tx.extend(frames.drain(..n));
        n
    }
    fn tx_needs_wakeup(&self) -> bool {
        true // copy mode: every batch needs a kick
    }
    fn kick_tx(&self) -> Result<(), SyscallError> {
        Ok(())
    }
    fn complete(&mut self, out: &mut Vec<Frame>, max: usize) -> usize {
        let n = max.min(self.comp.len());
        out.extend(self.comp.drain(..n));
        n
    }
}

const RING: usize = 8;
const FRAMES: u32 = 20;

fn queue() -> XskQueue<FakeKernel> {
    let free = (0..FRAMES).map(Frame::for_test).collect();
    XskQueue::from_parts(
        "fake0",
        0,
        FakeKernel::new(RING),
        free,
        RING as u32,
        RING as u32,
    )
}

/// Every frame id is in exactly one place: the pool, the app's hands, or the kernel.
fn assert_each_once(q: &mut XskQueue<FakeKernel>, app: &[&Vec<Frame>]) {
    let acc = q.accounting();
    assert!(acc.adds_up(), "{acc:?}");
    let mut ids: Vec<u32> = q.free.iter().map(Frame::test_id).collect();
    ids.extend(app.iter().flat_map(|v| v.iter().map(Frame::test_id)));
    ids.extend(q.rings_mut().ids());
    let set: BTreeSet<u32> = ids.iter().copied().collect();
    assert_eq!(
        ids.len(),
        FRAMES as usize,
        "a frame is missing or duplicated: {ids:?}"
    );
    assert_eq!(set, (0..FRAMES).collect(), "ids");
    let held: usize = app.iter().map(|v| v.len()).sum();
    assert_eq!(acc.held_by_app, held as u64, "{acc:?}");
}

#[test]
fn tx_batch_larger_than_the_ring_is_requeued_at_the_head() {
    let mut q = queue();
    let mut pending = Vec::new();
    assert_eq!(q.alloc(&mut pending, 12), 12);
    let first = pending[0].test_id();
    let (sent, kicked) = q.send(&mut pending);
    assert_eq!(sent, RING, "only a ring's worth fits");
    assert!(kicked);
    assert_eq!(pending.len(), 4, "the rest stays, in order");
    assert_eq!(q.rings_mut().tx.front().map(Frame::test_id), Some(first));
    assert_each_once(&mut q, &[&pending]);
    let acc = q.accounting();
    assert_eq!(
        (acc.in_tx_ring, acc.awaiting_completion, acc.free),
        (8, 0, 8)
    );
    q.rings_mut().transmit(5);
    let acc = q.accounting();
    assert_eq!((acc.in_tx_ring, acc.awaiting_completion), (3, 5));
    assert_eq!(q.reclaim(64), 5);
    assert_eq!(q.tx_outstanding(), 3);
    assert_each_once(&mut q, &[&pending]);
}

#[test]
fn rx_recycle_returns_frames_to_the_fill_ring() {
    let mut q = queue();
    assert_eq!(q.refill(64), RING, "fill capped at the ring size");
    q.rings_mut().deliver(5);
    let mut batch = Vec::new();
    assert_eq!(q.recv(&mut batch, 3), 3, "batch limit honoured");
    assert_each_once(&mut q, &[&batch]);
    q.recycle(&mut batch);
    assert!(batch.is_empty());
    let acc = q.accounting();
    assert_eq!(acc.held_by_app, 0);
    assert_eq!(acc.in_fill_ring + acc.in_rx_ring, RING as u64);
    assert_each_once(&mut q, &[]);
}

#[test]
fn an_invalid_descriptor_that_never_completes_is_reported_not_waited_for() {
    let mut q = queue();
    let mut pending = Vec::new();
    q.alloc(&mut pending, 4);
    q.send(&mut pending);
    q.rings_mut().transmit(3); // one frame never comes back
    let drained = crate::tx::reclaim::drain(&mut q, std::time::Duration::from_millis(20), 64);
    assert_eq!(drained, 3);
    assert_eq!(q.tx_outstanding(), 1, "reported as never completed");
    assert_each_once(&mut q, &[]);
}

#[test]
fn frames_of_another_area_are_refused_not_aliased() {
    let mut q = queue();
    // A real area's frame cannot be made without a kernel; a foreign area id is simulated
    // by a frame whose id differs from the fake kernel's.
    let mut foreign = vec![Frame::for_test_area(99, 7)];
    q.release(&mut foreign);
    assert_eq!(foreign.len(), 1, "a foreign frame stays with the caller");
    assert_each_once(&mut q, &[]);
}

#[derive(Debug, Clone)]
enum Op {
    Refill(u32),
    Deliver(usize),
    Recv(usize),
    Recycle,
    Release,
    Alloc(usize),
    Send,
    Transmit(usize),
    Reclaim(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u32..12).prop_map(Op::Refill),
        (0usize..12).prop_map(Op::Deliver),
        (0usize..12).prop_map(Op::Recv),
        Just(Op::Recycle),
        Just(Op::Release),
        (0usize..12).prop_map(Op::Alloc),
        Just(Op::Send),
        (0usize..12).prop_map(Op::Transmit),
        (0usize..12).prop_map(Op::Reclaim),
    ]
}

proptest! {
    /// Whatever the order of ring operations, every UMEM frame is accounted for exactly once.
    #[test]
    fn every_frame_accounted_for_exactly_once(ops in proptest::collection::vec(op(), 1..200)) {
        let mut q = queue();
        let mut rx_held = Vec::new();
        let mut tx_pending = Vec::new();
        for o in ops {
            match o {
                Op::Refill(n) => { q.refill(n); }
                Op::Deliver(n) => q.rings_mut().deliver(n),
                Op::Recv(n) => { q.recv(&mut rx_held, n); }
                Op::Recycle => q.recycle(&mut rx_held),
                Op::Release => q.release(&mut rx_held),
                Op::Alloc(n) => { q.alloc(&mut tx_pending, n); }
                Op::Send => { q.send(&mut tx_pending); }
                Op::Transmit(n) => q.rings_mut().transmit(n),
                Op::Reclaim(n) => { q.reclaim(n); }
            }
            assert_each_once(&mut q, &[&rx_held, &tx_pending]);
        }
    }
}
