//! The reflector (`skiff reflect`): probes come in on a queue's RX ring, get their
//! Ethernet, IP and UDP addresses swapped in place, and go back out on the same socket's
//! TX ring, in the same UMEM frame: no copy. The sender measures the round trip.
//!
//! The loop is the RX poller's (budgeted rounds, fill ring topped up every round) with a
//! transmit step: one TX submit and at most one kick per received batch, completions
//! reclaimed every round so frames go back to the fill ring.

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use super::poller::{IdleMode, PollConfig};
use crate::{
    latency::{
        ping::idle_yield,
        probe::{self, Found},
    },
    stats::Published,
    sys::Frame,
    tx::reclaim,
    xsk::XskQueue,
};

/// What a reflector queue did.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct ReflectCounters {
    /// Frames taken from the RX ring.
    pub rx_packets: u64,
    /// Frames sent back.
    pub reflected: u64,
    /// Frames that were not probes (dropped, or reflected with `reflect_all`).
    pub not_probe: u64,
    /// Frames with the probe signature that failed a check (dropped).
    pub bad_probes: u64,
    /// Frames dropped because the TX ring was full.
    pub tx_ring_full: u64,
    /// TX completions reclaimed.
    pub completed: u64,
    /// Kicks (`sendto`) for TX.
    pub tx_kicks: u64,
    /// Poll rounds.
    pub rounds: u64,
    /// Rounds that found the RX ring empty.
    pub rx_empty_polls: u64,
    /// Times the poller slept in `poll()` (adaptive idle mode only).
    pub idle_sleeps: u64,
}

impl ReflectCounters {
    /// Sums another queue's counters into this one.
    pub fn add(&mut self, o: &ReflectCounters) {
        self.rx_packets += o.rx_packets;
        self.reflected += o.reflected;
        self.not_probe += o.not_probe;
        self.bad_probes += o.bad_probes;
        self.tx_ring_full += o.tx_ring_full;
        self.completed += o.completed;
        self.tx_kicks += o.tx_kicks;
        self.rounds += o.rounds;
        self.rx_empty_polls += o.rx_empty_polls;
        self.idle_sleeps += o.idle_sleeps;
    }
}

/// Completion entries reclaimed per round at most: a whole default ring (2048).
const RECLAIM_MAX: usize = 2048;
/// How long the final drain waits for a completion ring that stands still: 500 ms, as the
/// generator's.
const DRAIN_TIMEOUT: Duration = Duration::from_millis(500);

/// Reflects on `q` until `stop`. With `reflect_all`, every UDP frame the program hands
/// over is reflected, not only valid probes (a loopback for throughput tests).
pub fn run_reflect(
    q: &mut XskQueue,
    cfg: &PollConfig,
    stop: &AtomicBool,
    published: &Published<ReflectCounters>,
    reflect_all: bool,
) -> ReflectCounters {
    let mut c = ReflectCounters::default();
    let mut batch: Vec<Frame> = Vec::with_capacity(cfg.batch as usize);
    let mut back: Vec<Frame> = Vec::with_capacity(cfg.batch as usize);
    let mut rest: Vec<Frame> = Vec::with_capacity(cfg.batch as usize);
    let mut idle_rounds = 0u32;
    q.refill(cfg.fill_target);
    while !stop.load(Ordering::Relaxed) {
        c.rounds += 1;
        c.completed += q.reclaim(RECLAIM_MAX) as u64;
        let mut done = 0u32;
        loop {
            let want = cfg.batch.min(cfg.budget - done) as usize;
            let n = q.recv(&mut batch, want);
            if n == 0 {
                break;
            }
            c.rx_packets += n as u64;
            done += n as u32;
            for mut f in batch.drain(..) {
                let len = f.len();
                let mut verdict = Found::NotProbe;
                let mut swapped = false;
                q.area().build(&mut f, |buf| {
                    // One header parse per frame: the probe test and the swap share it.
                    if let Some((b, at)) = buf
                        .get_mut(..len)
                        .and_then(|b| probe::locate_udp(b).map(|at| (b, at)))
                    {
                        verdict = probe::in_payload(
                            b.get(at.payload..at.payload + at.payload_len)
                                .unwrap_or(&[]),
                        );
                        let wanted = match verdict {
                            Found::Probe(_) => true,
                            Found::NotProbe => reflect_all,
                            Found::Invalid(_) => false,
                        };
                        swapped = wanted && probe::reflect_at(b, &at);
                    }
                    len
                });
                match verdict {
                    Found::Invalid(_) => c.bad_probes += 1,
                    Found::NotProbe => c.not_probe += 1,
                    Found::Probe(_) => {}
                }
                if swapped {
                    back.push(f);
                } else {
                    rest.push(f);
                }
            }
            // Frames not reflected go straight back to the fill ring.
            if !rest.is_empty() {
                q.recycle(&mut rest);
            }
            if !back.is_empty() {
                let before = back.len();
                let (sent, kicked) = q.send(&mut back);
                c.reflected += sent as u64;
                c.tx_kicks += u64::from(kicked);
                if sent < before {
                    // A full TX ring: the reflector does not queue; the rest is lost, as
                    // a full device queue drops.
                    c.tx_ring_full += (before - sent) as u64;
                    q.release(&mut back);
                }
            }
            if done >= cfg.budget {
                break;
            }
        }
        q.refill(cfg.fill_target);
        if q.fill_needs_wakeup() {
            let _ = q.poll_rx(0);
        }
        if done == 0 {
            c.rx_empty_polls += 1;
            // Frames on the TX ring still need the kernel when it asked for a kick.
            if q.kick_if_needed() {
                c.tx_kicks += 1;
            }
            idle_rounds = idle_rounds.saturating_add(1);
            if cfg.idle == IdleMode::Adaptive && idle_rounds >= cfg.idle_rounds_before_sleep {
                c.idle_sleeps += 1;
                let _ = q.poll_rx(cfg.sleep_ms);
            } else {
                // Lets ksoftirqd have the core (see `idle_yield`).
                idle_yield();
            }
        } else {
            idle_rounds = 0;
        }
        published.publish(c);
    }
    c.completed += reclaim::drain(q, DRAIN_TIMEOUT, RECLAIM_MAX);
    published.publish(c);
    c
}
