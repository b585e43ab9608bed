//! The pinger (`skiff ping`): probes sent on a fixed rate schedule to a reflector, their
//! round trips recorded as they come back.
//!
//! The schedule is kept whatever happens: probe k is due at `start + k / rate`, and a
//! sender that falls behind sends the overdue probes back to back, each still carrying its
//! scheduled time. So the latency from the scheduled time includes every stall of the
//! sender, the path or the reflector (coordinated omission, as wrk2 and HdrHistogram's
//! author describe it), and the latency from the actual send time shows the path alone.
//!
//! The transport is a trait: an AF_XDP socket ([`XskTransport`]) or a kernel UDP socket
//! ([`KernelUdp`]), so the same loop, schedule and histograms measure both paths.

use std::{
    io::ErrorKind,
    net::UdpSocket,
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use hdrhistogram::Histogram;

use super::{
    collect::Collector,
    hist::{new_hist, record},
    probe::{self, Found, Probe, PROBE_LEN},
};
use crate::{
    sys::{monotonic_ns, Frame},
    xsk::XskQueue,
};

/// A way to send probes and receive them back.
pub trait Transport {
    /// Sends one datagram per probe, stamping each probe's `tx_ns` just before it goes.
    /// Returns how many went out (the rest were refused: a full ring or socket buffer).
    fn send(&mut self, probes: &mut [Probe]) -> usize;
    /// Hands every datagram that has arrived to `f` with its receive time; returns how
    /// many.
    fn recv(&mut self, f: &mut dyn FnMut(Found, u64)) -> usize;
    /// Called once at the end (drains TX completions).
    fn finish(&mut self) {}
}

/// Probes over an AF_XDP socket: frames built from a template (a UDP frame whose payload
/// can hold a probe), sent on the TX ring, replies taken from the RX ring.
#[derive(Debug)]
pub struct XskTransport {
    q: XskQueue,
    template: Vec<u8>,
    at: usize,
    frames: Vec<Frame>,
    rx: Vec<Frame>,
}

/// Frames taken from the RX ring per call: 64, the NAPI weight.
const RX_BATCH: usize = 64;
/// Frames kept in the fill ring: 512, far more than a ping rate has in flight.
const FILL_TARGET: u32 = 512;
/// Completion entries reclaimed per call at most: a default ring (2048).
const RECLAIM_MAX: usize = 2048;

impl XskTransport {
    /// `template` is a whole UDP frame (no FCS); probes are written at its payload.
    pub fn new(mut q: XskQueue, template: Vec<u8>) -> Result<Self, String> {
        let at = probe::locate_udp(&template)
            .filter(|u| u.payload_len >= PROBE_LEN)
            .ok_or_else(|| {
                format!("the probe frame has no UDP payload of {PROBE_LEN} bytes (make it larger)")
            })?
            .payload;
        q.refill(FILL_TARGET);
        Ok(XskTransport {
            q,
            template,
            at,
            frames: Vec::with_capacity(RX_BATCH),
            rx: Vec::with_capacity(RX_BATCH),
        })
    }

    /// The socket (for its statistics and frame accounting).
    pub fn queue(&mut self) -> &mut XskQueue {
        &mut self.q
    }
}

impl Transport for XskTransport {
    fn send(&mut self, probes: &mut [Probe]) -> usize {
        self.q.reclaim(RECLAIM_MAX);
        self.frames.clear();
        let n = self.q.alloc(&mut self.frames, probes.len());
        let now = monotonic_ns();
        let (tpl, at) = (&self.template, self.at);
        for (f, p) in self.frames.iter_mut().zip(probes.iter_mut()) {
            p.tx_ns = now;
            self.q.area().build(f, |buf| {
                let Some(b) = buf.get_mut(..tpl.len()) else {
                    return 0;
                };
                b.copy_from_slice(tpl);
                probe::write_at(b, at, p);
                tpl.len()
            });
        }
        let (sent, _) = self.q.send(&mut self.frames);
        if !self.frames.is_empty() {
            self.q.release(&mut self.frames);
        }
        sent.min(n)
    }

    fn recv(&mut self, f: &mut dyn FnMut(Found, u64)) -> usize {
        let n = self.q.recv(&mut self.rx, RX_BATCH);
        if n == 0 {
            if self.q.fill_needs_wakeup() {
                let _ = self.q.poll_rx(0);
            }
            return 0;
        }
        let rx_ns = monotonic_ns();
        for fr in &self.rx {
            f(probe::find(self.q.area().bytes(fr)), rx_ns);
        }
        self.q.recycle(&mut self.rx);
        self.q.refill(FILL_TARGET);
        n
    }

    fn finish(&mut self) {
        crate::tx::reclaim::drain(&mut self.q, Duration::from_millis(500), RECLAIM_MAX);
    }
}

/// Probes over a kernel UDP socket (the baseline: the kernel's own path), non-blocking
/// and busy-polled like the AF_XDP transport, so the two differ only in the path.
#[derive(Debug)]
pub struct KernelUdp {
    sock: UdpSocket,
    buf: Vec<u8>,
    payload_len: usize,
}

impl KernelUdp {
    /// A connected, non-blocking socket; datagrams of `payload_len` bytes (≥ a probe).
    pub fn new(sock: UdpSocket, payload_len: usize) -> std::io::Result<Self> {
        sock.set_nonblocking(true)?;
        Ok(KernelUdp {
            sock,
            // 65535: the largest UDP datagram.
            buf: vec![0; 65_535],
            payload_len: payload_len.max(PROBE_LEN),
        })
    }
}

impl Transport for KernelUdp {
    fn send(&mut self, probes: &mut [Probe]) -> usize {
        let mut sent = 0;
        let len = self.payload_len;
        for p in probes.iter_mut() {
            p.tx_ns = monotonic_ns();
            let b = p.encode();
            let Some(dst) = self.buf.get_mut(..len) else {
                break;
            };
            dst.fill(0);
            dst[..PROBE_LEN].copy_from_slice(&b);
            match self.sock.send(dst) {
                Ok(_) => sent += 1,
                Err(_) => break,
            }
        }
        sent
    }

    fn recv(&mut self, f: &mut dyn FnMut(Found, u64)) -> usize {
        let mut n = 0;
        loop {
            match self.sock.recv(&mut self.buf) {
                Ok(len) => {
                    let rx_ns = monotonic_ns();
                    f(probe::in_payload(self.buf.get(..len).unwrap_or(&[])), rx_ns);
                    n += 1;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return n,
                // ECONNREFUSED (an ICMP port unreachable from a peer not yet listening)
                // and the like: nothing to read now.
                Err(_) => return n,
            }
        }
    }
}

/// The pinger's settings.
#[derive(Debug, Clone, Copy)]
pub struct PingConfig {
    /// Probes per second.
    pub rate_pps: f64,
    /// Probes in all.
    pub count: u64,
    /// How long to wait for replies after the last probe is due.
    pub wait: Duration,
    /// The probes' session id.
    pub session: u32,
    /// The probes' stream id.
    pub stream: u16,
    /// Interval of the `tick` callback.
    pub interval: Duration,
}

/// What the pinger did.
#[derive(Debug)]
pub struct PingResult {
    /// Probes sent.
    pub sent: u64,
    /// Probes the transport refused (counted as lost, never sent).
    pub refused: u64,
    /// Largest lag of an actual send behind its schedule, ns.
    pub max_send_lag_ns: u64,
    /// ns from a batch's transmit stamp to the return of its send call.
    pub stamp_to_ring: Histogram<u64>,
    /// Mean cost of one `CLOCK_MONOTONIC` read, ns (measured over 100 000 reads).
    pub clock_read_ns: f64,
    /// Seconds from the first scheduled probe to the end.
    pub elapsed_s: f64,
}

/// Most probes sent in one call: 64, one NAPI weight; a sender that is further behind
/// catches up over several rounds.
const SEND_BATCH: usize = 64;
/// Clock reads averaged for the clock's self-measured cost: 100 000, about 2 ms.
const CLOCK_SAMPLES: u32 = 100_000;

/// Mean cost of a `CLOCK_MONOTONIC` read, ns.
pub fn clock_read_cost() -> f64 {
    let t0 = monotonic_ns();
    let mut x = 0u64;
    for _ in 0..CLOCK_SAMPLES {
        x = x.wrapping_add(monotonic_ns());
    }
    std::hint::black_box(x);
    monotonic_ns().saturating_sub(t0) as f64 / f64::from(CLOCK_SAMPLES)
}

/// What a busy-polling loop does when a round found nothing: `sched_yield`.
///
/// A busy poller that never yields starves `ksoftirqd` on its core: once the kernel defers
/// softirq work to that thread (after a long softirq run, or while it is runnable), every
/// packet the core's NAPI handles waits for the scheduler to preempt the poller, i.e.
/// milliseconds. Yielding on an idle round lets it run at once and costs one system call
/// (~0.5 µs) only when there is nothing to do. Measured: docs/PERFORMANCE.md (latency).
#[inline]
pub fn idle_yield() {
    std::thread::yield_now();
}

/// Runs the pinger until every probe is sent and back (or `wait` after the last is due),
/// or `stop`. `tick(collector, seconds since start, probes sent)` is called every
/// `cfg.interval`.
pub fn run_ping(
    t: &mut dyn Transport,
    cfg: &PingConfig,
    c: &mut Collector,
    stop: &AtomicBool,
    tick: &mut dyn FnMut(&mut Collector, f64, u64),
) -> PingResult {
    let clock_read_ns = clock_read_cost();
    let mut stamp_to_ring = new_hist();
    let period_ns = 1e9 / cfg.rate_pps.max(1e-9);
    let start = monotonic_ns();
    let sched = |k: u64| start.saturating_add((k as f64 * period_ns) as u64);
    let interval_ns = cfg.interval.as_nanos().max(1) as u64;
    let mut next_tick = start + interval_ns;
    let mut k = 0u64;
    let mut sent = 0u64;
    let mut refused = 0u64;
    let mut max_lag = 0u64;
    let mut due: Vec<Probe> = Vec::with_capacity(SEND_BATCH);
    let wait_ns = cfg.wait.as_nanos() as u64;
    let last_due = if cfg.count > 0 {
        sched(cfg.count - 1)
    } else {
        start
    };
    let mut received = 0u64;
    loop {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let now = monotonic_ns();
        due.clear();
        while k < cfg.count && sched(k) <= now && due.len() < SEND_BATCH {
            due.push(Probe {
                stream: cfg.stream,
                session: cfg.session,
                seq: k,
                tx_ns: 0,
                sched_ns: Some(sched(k)),
            });
            k += 1;
        }
        if !due.is_empty() {
            let n = t.send(&mut due);
            let after = monotonic_ns();
            if let Some(first) = due.first().filter(|_| n > 0) {
                record(&mut stamp_to_ring, after.saturating_sub(first.tx_ns));
                max_lag = max_lag.max(
                    first
                        .tx_ns
                        .saturating_sub(first.sched_ns.unwrap_or(first.tx_ns)),
                );
            }
            sent += n as u64;
            refused += (due.len() - n) as u64;
        }
        let got = t.recv(&mut |f, rx| {
            if matches!(f, Found::Probe(_)) {
                received += 1;
            }
            c.found(f, rx);
        });
        let now = monotonic_ns();
        if now >= next_tick {
            tick(c, now.saturating_sub(start) as f64 / 1e9, sent);
            next_tick += interval_ns;
        }
        if k >= cfg.count && (received >= sent || now >= last_due.saturating_add(wait_ns)) {
            break;
        }
        if due.is_empty() && got == 0 {
            idle_yield();
        }
    }
    t.finish();
    PingResult {
        sent,
        refused,
        max_send_lag_ns: max_lag,
        stamp_to_ring,
        clock_read_ns,
        elapsed_s: monotonic_ns().saturating_sub(start) as f64 / 1e9,
    }
}
