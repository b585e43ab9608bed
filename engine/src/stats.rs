//! Counters that explain themselves, per poller thread, published once per round.
//!
//! A poller keeps its counters in plain integers and publishes a copy at the end of each
//! round (an uncontended lock, ~tens of ns, once per batch of up to 64+ frames); readers
//! (the once-a-second progress line, the final summary) sum the copies.

use std::sync::{Arc, Mutex};

use crate::wire::Malformed;

/// A slot a poller publishes into and a reporter reads from.
#[derive(Debug, Default)]
pub struct Published<T: Copy + Default>(Mutex<T>);

impl<T: Copy + Default> Published<T> {
    /// New, zeroed.
    pub fn new() -> Arc<Self> {
        Arc::new(Published(Mutex::new(T::default())))
    }
    /// Publishes a copy.
    #[inline]
    pub fn publish(&self, v: T) {
        if let Ok(mut g) = self.0.lock() {
            *g = v;
        }
    }
    /// Reads the last copy.
    pub fn read(&self) -> T {
        self.0.lock().map(|g| *g).unwrap_or_default()
    }
}

/// Per-queue TX counters.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct TxCounters {
    /// Frames put on the TX ring.
    pub tx_packets: u64,
    /// Bytes put on the TX ring (no FCS).
    pub tx_bytes: u64,
    /// Frames the kernel returned on the completion ring (reclaimed to the pool).
    pub completed: u64,
    /// `sendto` kicks (only when `need_wakeup` asked).
    pub tx_kicks: u64,
    /// Batches put on the ring.
    pub tx_batches: u64,
    /// Times the TX ring had no room for a whole batch (rest requeued at the head).
    pub tx_ring_full: u64,
    /// Times the pool had no free frame (all in flight).
    pub pool_empty: u64,
    /// Rounds spent waiting for the pacing clock.
    pub pacing_waits: u64,
    /// The loop gave up: nothing sent or completed for its stall timeout (a dead ring).
    pub tx_stalled: u64,
    /// Poll rounds.
    pub rounds: u64,
}

impl TxCounters {
    /// Sums another queue's counters into this one.
    pub fn add(&mut self, o: &TxCounters) {
        self.tx_packets += o.tx_packets;
        self.tx_bytes += o.tx_bytes;
        self.completed += o.completed;
        self.tx_kicks += o.tx_kicks;
        self.tx_batches += o.tx_batches;
        self.tx_ring_full += o.tx_ring_full;
        self.pool_empty += o.pool_empty;
        self.pacing_waits += o.pacing_waits;
        self.tx_stalled += o.tx_stalled;
        self.rounds += o.rounds;
    }
}

/// Per-queue RX counters.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct RxCounters {
    /// Frames taken from the RX ring.
    pub rx_packets: u64,
    /// Their bytes (no FCS).
    pub rx_bytes: u64,
    /// UDP frames.
    pub udp: u64,
    /// TCP frames.
    pub tcp: u64,
    /// IP frames of other protocols.
    pub other_ip: u64,
    /// Non-IP frames.
    pub not_ip: u64,
    /// Malformed frames, by [`Malformed`] reason.
    #[serde(skip)]
    pub malformed: [u64; Malformed::ALL.len()],
    /// Batches taken.
    pub rx_batches: u64,
    /// Rounds that found the RX ring empty.
    pub rx_empty_polls: u64,
    /// Rounds cut short by the packet or time budget with work left (the kernel's
    /// softnet `time_squeeze`).
    pub time_squeeze: u64,
    /// Times the poller slept in `poll()` because the queue was idle.
    pub idle_sleeps: u64,
    /// Wakeups of the kernel for the fill ring (`need_wakeup`).
    pub fill_wakeups: u64,
    /// Poll rounds.
    pub rounds: u64,
}

impl RxCounters {
    /// Sums another queue's counters into this one.
    pub fn add(&mut self, o: &RxCounters) {
        self.rx_packets += o.rx_packets;
        self.rx_bytes += o.rx_bytes;
        self.udp += o.udp;
        self.tcp += o.tcp;
        self.other_ip += o.other_ip;
        self.not_ip += o.not_ip;
        for (a, b) in self.malformed.iter_mut().zip(o.malformed.iter()) {
            *a += b;
        }
        self.rx_batches += o.rx_batches;
        self.rx_empty_polls += o.rx_empty_polls;
        self.time_squeeze += o.time_squeeze;
        self.idle_sleeps += o.idle_sleeps;
        self.fill_wakeups += o.fill_wakeups;
        self.rounds += o.rounds;
    }
    /// Malformed frames in total.
    pub fn malformed_total(&self) -> u64 {
        self.malformed.iter().sum()
    }
}
