//! Frames held until ACKed: a reference count per UMEM frame, the kernel's clone of the
//! skb in `tcp_transmit_skb` without the clone.
//!
//! A frame that carries TCP payload (or a SYN or FIN) has up to two holders: the
//! retransmit queue, from the moment its payload is written until the data is
//! cumulatively ACKed, and the transmit path, from the moment it is handed to the qdisc
//! until the completion ring returns it. The frame goes back to the pool when the count
//! drops to zero, whichever holder lets go last, so completion-ring reclaim never recycles
//! a frame whose data the peer has not yet acknowledged, and an ACK never frees a frame the
//! NIC is still reading. No bytes are copied for a retransmission: the same frame goes out
//! again with rewritten headers.
//!
//! While a frame is not in flight its [`Frame`] token is parked here, so the retransmit
//! queue refers to frames by index only. A frame that is still in flight when TCP wants to
//! send it again (the kernel's `TCPSpuriousRtxHostQueues`) is not available: the caller
//! waits for its completion instead of copying it.

use crate::sys::{Frame, UmemArea};

/// Reference counts and parked tokens, one slot per UMEM frame.
#[derive(Debug)]
pub struct FrameRefs {
    refs: Vec<u8>,
    parked: Vec<Option<Frame>>,
    /// Frames with a nonzero count.
    live: u32,
}

impl FrameRefs {
    /// Slots for every frame of `area`.
    pub fn new(area: &UmemArea) -> Self {
        let n = area.frame_count() as usize;
        FrameRefs {
            refs: vec![0; n],
            parked: std::iter::repeat_with(|| None).take(n).collect(),
            live: 0,
        }
    }

    /// Takes `frame` into the retransmit queue (one reference) and parks it. Returns its
    /// index, or gives the frame back if it is not of this area.
    pub fn hold(&mut self, area: &UmemArea, frame: Frame) -> Result<u32, Frame> {
        let Some(i) = area.frame_index(&frame) else {
            return Err(frame);
        };
        let Some(slot) = self.refs.get_mut(i as usize) else {
            return Err(frame);
        };
        if *slot != 0 {
            return Err(frame);
        }
        *slot = 1;
        self.live += 1;
        self.parked[i as usize] = Some(frame);
        Ok(i)
    }

    /// The parked frame `i`, for rewriting its headers; None while it is in flight.
    pub fn parked_mut(&mut self, i: u32) -> Option<&mut Frame> {
        self.parked.get_mut(i as usize)?.as_mut()
    }

    /// True if frame `i` is parked (not in flight).
    pub fn is_parked(&self, i: u32) -> bool {
        self.parked.get(i as usize).is_some_and(Option::is_some)
    }

    /// Takes the parked frame `i` out for transmission: the transmit path now holds a
    /// reference too. None if it is in flight already.
    pub fn take_for_tx(&mut self, i: u32) -> Option<Frame> {
        let f = self.parked.get_mut(i as usize)?.take()?;
        self.refs[i as usize] += 1;
        Some(f)
    }

    /// A frame sent without being held (a pure ACK, a RST): only the transmit path holds it.
    pub fn send_unheld(&mut self, area: &UmemArea, frame: &Frame) {
        if let Some(i) = area.frame_index(frame) {
            if let Some(r) = self.refs.get_mut(i as usize) {
                if *r == 0 {
                    self.live += 1;
                }
                *r += 1;
            }
        }
    }

    /// The completion ring returned `frame`: the transmit path lets go. The frame goes to
    /// `pool` if that was the last reference, else it is parked for the retransmit queue.
    pub fn completed(&mut self, area: &UmemArea, frame: Frame, pool: &mut Vec<Frame>) {
        let Some(i) = area.frame_index(&frame).map(|i| i as usize) else {
            pool.push(frame);
            return;
        };
        match self.refs.get_mut(i) {
            Some(r) if *r > 1 => {
                *r -= 1;
                self.parked[i] = Some(frame);
            }
            Some(r) => {
                if *r == 1 {
                    self.live -= 1;
                }
                *r = 0;
                pool.push(frame);
            }
            None => pool.push(frame),
        }
    }

    /// The retransmit queue lets go of frame `i` (its data was ACKed, or the connection is
    /// gone): back to `pool` if parked and unreferenced, else the completion frees it.
    pub fn release(&mut self, i: u32, pool: &mut Vec<Frame>) {
        let i = i as usize;
        let Some(r) = self.refs.get_mut(i) else {
            return;
        };
        if *r == 0 {
            return;
        }
        *r -= 1;
        if *r == 0 {
            self.live -= 1;
            if let Some(f) = self.parked[i].take() {
                pool.push(f);
            }
        }
    }

    /// Frames with at least one holder.
    pub fn live(&self) -> u32 {
        self.live
    }

    /// Frames parked (held by the retransmit queue, not in flight).
    pub fn parked_count(&self) -> usize {
        self.parked.iter().filter(|p| p.is_some()).count()
    }

    /// Hands every parked frame to `pool` and forgets all counts (teardown).
    pub fn drain(&mut self, pool: &mut Vec<Frame>) {
        for p in &mut self.parked {
            if let Some(f) = p.take() {
                pool.push(f);
            }
        }
        self.refs.iter_mut().for_each(|r| *r = 0);
        self.live = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::UmemGeometry;

    fn area() -> (UmemArea, Vec<Frame>) {
        UmemArea::new(UmemGeometry {
            frames: 8,
            frame_size: 2048,
            fill_size: 8,
            comp_size: 8,
        })
        .expect("mmap a small UMEM")
    }

    #[test]
    fn ack_before_completion_frees_on_completion() {
        let (a, mut frames) = area();
        let mut refs = FrameRefs::new(&a);
        let mut pool = Vec::new();
        let i = refs.hold(&a, frames.pop().unwrap()).unwrap();
        let f = refs.take_for_tx(i).expect("parked");
        assert!(refs.take_for_tx(i).is_none(), "in flight: not available");
        refs.release(i, &mut pool); // ACKed while the NIC still has it
        assert!(pool.is_empty());
        refs.completed(&a, f, &mut pool);
        assert_eq!(pool.len(), 1);
        assert_eq!(refs.live(), 0);
    }

    #[test]
    fn completion_before_ack_parks_then_ack_frees() {
        let (a, mut frames) = area();
        let mut refs = FrameRefs::new(&a);
        let mut pool = Vec::new();
        let i = refs.hold(&a, frames.pop().unwrap()).unwrap();
        let f = refs.take_for_tx(i).unwrap();
        refs.completed(&a, f, &mut pool);
        assert!(pool.is_empty(), "the retransmit queue still holds it");
        assert!(refs.is_parked(i));
        // A retransmission sends the same frame again, no copy.
        let f = refs.take_for_tx(i).unwrap();
        refs.completed(&a, f, &mut pool);
        refs.release(i, &mut pool);
        assert_eq!(pool.len(), 1);
        assert_eq!(refs.live(), 0);
    }

    #[test]
    fn unheld_frames_free_on_completion() {
        let (a, mut frames) = area();
        let mut refs = FrameRefs::new(&a);
        let mut pool = Vec::new();
        let f = frames.pop().unwrap();
        refs.send_unheld(&a, &f);
        assert_eq!(refs.live(), 1);
        refs.completed(&a, f, &mut pool);
        assert_eq!((pool.len(), refs.live()), (1, 0));
    }
}
