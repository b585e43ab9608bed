//! Completion-ring reclamation at the end of a run: keep reclaiming until every frame the
//! kernel took has come back, or until the ring has stood still for `timeout`. A
//! completion ring that stops moving must time out, not hang (ARCHITECTURE.md), and an
//! invalid descriptor never comes back at all: what is left is reported, never waited for.

use std::time::{Duration, Instant};

use crate::xsk::{Rings, XskQueue};

/// Drains the completion ring. Returns the frames reclaimed.
pub fn drain<R: Rings>(q: &mut XskQueue<R>, timeout: Duration, max: usize) -> u64 {
    let mut reclaimed = 0u64;
    let mut last_progress = Instant::now();
    while q.tx_outstanding() > 0 && last_progress.elapsed() < timeout {
        q.kick_if_needed();
        let n = q.reclaim(max);
        if n > 0 {
            reclaimed += n as u64;
            last_progress = Instant::now();
        } else {
            std::thread::sleep(Duration::from_micros(50));
        }
    }
    reclaimed
}
