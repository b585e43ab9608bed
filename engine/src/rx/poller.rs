//! NAPI-style RX polling of one queue, as the kernel's `net_rx_action` does for a device:
//! each round takes frames in batches until a packet budget or a time budget runs out
//! (`time_squeeze` when work was left), then tops the fill ring up; an idle queue is
//! busy-polled for a while and then waited on with `poll()`.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use crate::{
    latency::{
        collect::Collector,
        probe::{self, Found},
    },
    pcap::SharedPcap,
    stats::{Published, RxCounters},
    sys::monotonic_ns,
    wire::{self, Classified},
    xsk::{FrameAccounting, XdpStatistics, XskQueue},
};

/// What an idle poller does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleMode {
    /// Keep polling: lowest latency, a whole core.
    BusyPoll,
    /// Busy-poll for `idle_rounds_before_sleep` empty rounds, then sleep in `poll()`.
    Adaptive,
}

/// Poll-loop tunables. Defaults mirror the kernel's (reference/kernel-mechanisms.md).
#[derive(Debug, Clone, Copy)]
pub struct PollConfig {
    /// Frames per round: `net.core.netdev_budget` = 300.
    pub budget: u32,
    /// Time per round: `net.core.netdev_budget_usecs` = 2000 µs.
    pub time_budget: Duration,
    /// Frames per ring access: 64, the NAPI weight (`weight_p`/`dev_weight`).
    pub batch: u32,
    /// Idle behaviour.
    pub idle: IdleMode,
    /// Empty rounds before sleeping: 1000 rounds ≈ tens of µs of spinning, so a busy
    /// queue never sleeps between bursts while an idle one costs nothing.
    pub idle_rounds_before_sleep: u32,
    /// Longest `poll()` sleep: 100 ms, so a stop request is seen within that.
    pub sleep_ms: i32,
    /// Frames kept in the fill ring: the whole ring (default 2048).
    pub fill_target: u32,
}

impl Default for PollConfig {
    fn default() -> Self {
        PollConfig {
            budget: 300,
            time_budget: Duration::from_micros(2000),
            batch: 64,
            idle: IdleMode::Adaptive,
            idle_rounds_before_sleep: 1000,
            sleep_ms: 100,
            fill_target: 2048,
        }
    }
}

/// What one RX queue saw, at the end of a run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RxQueueReport {
    /// Queue index.
    pub queue: u32,
    /// CPU the poller was pinned to, if any.
    pub cpu: Option<usize>,
    /// Counters.
    #[serde(flatten)]
    pub counters: RxCounters,
    /// Kernel's socket counters.
    pub xdp_statistics: XdpStatistics,
    /// Where the frames were at the end.
    pub frames: FrameAccounting,
}

/// Writes a received batch to the capture, stamped with the time it was taken.
fn capture(w: &SharedPcap, q: &XskQueue, batch: &[crate::sys::Frame]) {
    if !w.wants_more() {
        return;
    }
    let ts = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    // A write error is reported by `finish` at the end; receiving goes on.
    let _ = w.offer_batch(batch.iter().map(|f| (ts, q.area().bytes(f))));
}

/// First and last instants a round of this queue received something.
pub type ActiveSpan = Option<(Instant, Instant)>;

/// Runs the RX poll loop on `q` until `stop` is set, publishing counters every round,
/// writing what arrives to `tap` if given (`skiff sink --pcap-out`), and handing latency
/// probes to `lat` if given (one lock per batch that holds any; one clock read per batch:
/// the batch's frames were taken from the ring together).
/// Returns the counters and when frames first and last arrived.
pub fn run_rx(
    q: &mut XskQueue,
    cfg: &PollConfig,
    stop: &AtomicBool,
    published: &Arc<Published<RxCounters>>,
    tap: Option<&SharedPcap>,
    lat: Option<&Mutex<Collector>>,
) -> (RxCounters, ActiveSpan) {
    let mut found: Vec<Found> = Vec::with_capacity(cfg.batch as usize);
    let mut span: ActiveSpan = None;
    let mut c = RxCounters::default();
    let mut batch = Vec::with_capacity(cfg.batch as usize);
    let mut idle_rounds = 0u32;
    q.refill(cfg.fill_target);
    while !stop.load(Ordering::Relaxed) {
        c.rounds += 1;
        let start = Instant::now();
        let mut done = 0u32;
        loop {
            let want = cfg.batch.min(cfg.budget - done) as usize;
            let n = q.recv(&mut batch, want);
            if n == 0 {
                break;
            }
            c.rx_batches += 1;
            let rx_ns = if lat.is_some() { monotonic_ns() } else { 0 };
            for f in &batch {
                let bytes = q.area().bytes(f);
                c.rx_bytes += bytes.len() as u64;
                match wire::classify(bytes) {
                    Ok(Classified::Udp { payload, .. }) => {
                        c.udp += 1;
                        if lat.is_some() {
                            // classify has parsed the headers: only the payload is read.
                            let p = probe::in_payload(bytes.get(payload..).unwrap_or(&[]));
                            if p != Found::NotProbe {
                                found.push(p);
                            }
                        }
                    }
                    Ok(Classified::Tcp) => c.tcp += 1,
                    Ok(Classified::OtherIp) => c.other_ip += 1,
                    Ok(Classified::NotIp) => c.not_ip += 1,
                    Err(m) => c.malformed[m.index()] += 1,
                }
            }
            c.rx_packets += n as u64;
            if let (Some(l), false) = (lat, found.is_empty()) {
                // A poisoned lock (a panicked peer thread) still holds valid counts.
                let mut g = l.lock().unwrap_or_else(|e| e.into_inner());
                for p in found.drain(..) {
                    g.found(p, rx_ns);
                }
            }
            if let Some(w) = tap {
                capture(w, q, &batch);
            }
            q.recycle(&mut batch);
            done += n as u32;
            // Budget or time gone with the ring possibly non-empty: squeezed, as in
            // net_rx_action; the next round continues where this one stopped.
            if done >= cfg.budget || start.elapsed() >= cfg.time_budget {
                c.time_squeeze += 1;
                break;
            }
        }
        q.refill(cfg.fill_target);
        if q.fill_needs_wakeup() {
            c.fill_wakeups += 1;
            let _ = q.poll_rx(0);
        }
        if done == 0 {
            c.rx_empty_polls += 1;
            idle_rounds = idle_rounds.saturating_add(1);
            if cfg.idle == IdleMode::Adaptive && idle_rounds >= cfg.idle_rounds_before_sleep {
                c.idle_sleeps += 1;
                let _ = q.poll_rx(cfg.sleep_ms);
            } else if cfg.idle == IdleMode::BusyPoll {
                // Lets ksoftirqd have the core (see `latency::ping::idle_yield`).
                crate::latency::ping::idle_yield();
            }
        } else {
            idle_rounds = 0;
            let now = Instant::now();
            span = Some(span.map_or((start, now), |(first, _)| (first, now)));
        }
        published.publish(c);
    }
    published.publish(c);
    (c, span)
}
