//! `pfifo`: one FIFO with tail drop at `limit` packets (Linux `sch_fifo.c`).

use std::collections::VecDeque;

use super::{Deq, PREALLOC_MAX};

/// A FIFO of at most `limit` packets.
#[derive(Debug)]
pub(crate) struct Pfifo<P> {
    q: VecDeque<P>,
    limit: usize,
}

impl<P> Pfifo<P> {
    /// An empty FIFO holding at most `limit` packets (0: drops everything).
    pub(crate) fn new(limit: usize) -> Self {
        Pfifo {
            q: VecDeque::with_capacity(limit.min(PREALLOC_MAX)),
            limit,
        }
    }

    /// Tail drop: refused when `limit` packets are queued.
    pub(crate) fn enqueue(&mut self, p: P) -> Result<(), P> {
        if self.q.len() >= self.limit {
            return Err(p);
        }
        self.q.push_back(p);
        Ok(())
    }

    /// The oldest packet.
    #[inline]
    pub(crate) fn dequeue(&mut self) -> Deq<P> {
        self.q.pop_front().map_or(Deq::Empty, Deq::Packet)
    }

    /// Packets queued.
    pub(crate) fn len(&self) -> usize {
        self.q.len()
    }

    /// Everything, oldest first.
    pub(crate) fn drain(&mut self, out: &mut Vec<P>) {
        out.extend(self.q.drain(..));
    }
}
