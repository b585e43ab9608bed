//! `prio` (`pfifo_fast`): three FIFOs; a packet's band is `PRIOMAP[priority & 15]` and the
//! lowest band number is always served first (Linux `pfifo_fast_dequeue`). Tail drop per
//! band, each band holding at most `limit` packets as each of `pfifo_fast`'s band rings
//! holds `tx_queue_len`.

use std::collections::VecDeque;

use super::{Deq, QPacket, PREALLOC_MAX, PRIOMAP, PRIO_BANDS};

/// Three bands of at most `limit` packets each.
#[derive(Debug)]
pub(crate) struct Prio<P> {
    bands: [VecDeque<P>; PRIO_BANDS],
    limit: usize,
}

/// The band of a packet with `priority`: `PRIOMAP[priority & 15]`, clamped to a valid
/// band (the map only holds 0..=2, so the clamp never changes anything).
#[inline]
pub(crate) fn band_of(priority: u8) -> usize {
    // `& 15` keeps the index within the 16-entry map; `get` makes that visible.
    let band = PRIOMAP
        .get(usize::from(priority & 15))
        .copied()
        .unwrap_or(1);
    usize::from(band).min(PRIO_BANDS - 1)
}

impl<P: QPacket> Prio<P> {
    /// Empty bands of at most `limit` packets each.
    pub(crate) fn new(limit: usize) -> Self {
        let cap = limit.min(PREALLOC_MAX);
        Prio {
            bands: std::array::from_fn(|_| VecDeque::with_capacity(cap)),
            limit,
        }
    }

    /// Into its band, unless that band is full.
    pub(crate) fn enqueue(&mut self, p: P) -> Result<(), P> {
        let limit = self.limit;
        match self.bands.get_mut(band_of(p.priority())) {
            Some(q) if q.len() < limit => {
                q.push_back(p);
                Ok(())
            }
            _ => Err(p),
        }
    }

    /// The oldest packet of the lowest non-empty band.
    #[inline]
    pub(crate) fn dequeue(&mut self) -> Deq<P> {
        self.bands
            .iter_mut()
            .find_map(VecDeque::pop_front)
            .map_or(Deq::Empty, Deq::Packet)
    }

    /// Packets queued in all bands.
    pub(crate) fn len(&self) -> usize {
        self.bands.iter().map(VecDeque::len).sum()
    }

    /// Everything, band 0 first.
    pub(crate) fn drain(&mut self, out: &mut Vec<P>) {
        for b in &mut self.bands {
            out.extend(b.drain(..));
        }
    }
}
