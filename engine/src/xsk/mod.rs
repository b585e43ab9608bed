//! AF_XDP queues with frame accounting that always adds up.
//!
//! An [`XskQueue`] is one socket on one (interface, queue) with its own UMEM (a UMEM per
//! queue: a shared UMEM on a veth queue > 0 fails with ENOMEM, ARCHITECTURE.md). Every
//! frame is in exactly one place, and the queue counts each move:
//!
//! ```text
//! free ──refill──▶ kernel_rx (fill ring + RX ring) ──recv──▶ app
//! free ──alloc───▶ app ──send──▶ kernel_tx (TX ring + awaiting completion) ──reclaim──▶ free
//! app ──release──▶ free            app ──recycle──▶ kernel_rx
//! ```
//!
//! so `free + kernel_rx + app + kernel_tx == total` at every instant, checked by
//! [`FrameAccounting::adds_up`]. The split of `kernel_rx` into fill ring and RX ring (and of
//! `kernel_tx` into TX ring and awaiting completion) is read from the ring pointers.

use std::time::{Duration, Instant};

pub use crate::sys::{AreaId, BindMode, Frame, XdpStatistics};
use crate::{
    error::XskError,
    netdev,
    sys::{SocketOptions, SyscallError, UmemArea, UmemGeometry, XskSocket},
};

/// The four rings of a socket, as the accounting layer uses them. Implemented by the real
/// socket ([`XskSocket`]) and, in tests, by a heap-backed fake kernel, so the batching and
/// the frame accounting are tested without a kernel.
pub trait Rings {
    /// The UMEM area whose frames these rings carry.
    fn area_id(&self) -> AreaId;
    /// Free fill ring slots (up to `want`).
    fn fill_free(&mut self, want: u32) -> u32;
    /// Moves up to `max` frames from the end of `frames` into the fill ring.
    fn fill(&mut self, frames: &mut Vec<Frame>, max: usize) -> usize;
    /// The kernel wants a wakeup for the fill ring.
    fn fill_needs_wakeup(&self) -> bool;
    /// Takes up to `max` received frames into `out`.
    fn rx(&mut self, out: &mut Vec<Frame>, max: usize) -> usize;
    /// Free TX ring slots (up to `want`).
    fn tx_free(&mut self, want: u32) -> u32;
    /// Moves frames from the front of `frames` onto the TX ring, as many as fit.
    fn tx(&mut self, frames: &mut Vec<Frame>) -> usize;
    /// The kernel wants a kick for TX.
    fn tx_needs_wakeup(&self) -> bool;
    /// Kicks TX.
    fn kick_tx(&self) -> Result<(), SyscallError>;
    /// Takes up to `max` completed frames into `out`.
    fn complete(&mut self, out: &mut Vec<Frame>, max: usize) -> usize;
}

impl Rings for XskSocket {
    #[inline]
    fn area_id(&self) -> AreaId {
        self.area().id()
    }
    #[inline]
    fn fill_free(&mut self, want: u32) -> u32 {
        XskSocket::fill_free(self, want)
    }
    #[inline]
    fn fill(&mut self, frames: &mut Vec<Frame>, max: usize) -> usize {
        XskSocket::fill(self, frames, max)
    }
    #[inline]
    fn fill_needs_wakeup(&self) -> bool {
        XskSocket::fill_needs_wakeup(self)
    }
    #[inline]
    fn rx(&mut self, out: &mut Vec<Frame>, max: usize) -> usize {
        XskSocket::rx(self, out, max)
    }
    #[inline]
    fn tx_free(&mut self, want: u32) -> u32 {
        XskSocket::tx_free(self, want)
    }
    #[inline]
    fn tx(&mut self, frames: &mut Vec<Frame>) -> usize {
        XskSocket::tx(self, frames)
    }
    #[inline]
    fn tx_needs_wakeup(&self) -> bool {
        XskSocket::tx_needs_wakeup(self)
    }
    #[inline]
    fn kick_tx(&self) -> Result<(), SyscallError> {
        XskSocket::kick_tx(self)
    }
    #[inline]
    fn complete(&mut self, out: &mut Vec<Frame>, max: usize) -> usize {
        XskSocket::complete(self, out, max)
    }
}

/// Queue geometry. The defaults are derived in their doc comments.
#[derive(Debug, Clone, Copy)]
pub struct XskConfig {
    /// Frames in the UMEM. Default 4096: enough to keep a 2048-entry fill ring full and a
    /// 2048-entry TX ring full at the same time; 4096 × 2048 B = 8 MiB per queue.
    pub frames: u32,
    /// Frame size, 2048 (default: a 1518-byte frame + 256 B headroom fits) or 4096.
    pub frame_size: u32,
    /// Fill ring entries. Default 2048, power of two.
    pub fill_size: u32,
    /// Completion ring entries. Default 2048, power of two.
    pub comp_size: u32,
    /// RX ring entries. Default 2048, power of two.
    pub rx_size: u32,
    /// TX ring entries. Default 2048, power of two.
    pub tx_size: u32,
    /// Try zero-copy before copy mode.
    pub try_zero_copy: bool,
    /// How many frames a queue that only transmits still keeps in its fill ring: enough
    /// for a burst of stray frames the XDP program might redirect to it. Default 64.
    pub tx_only_fill: u32,
}

impl Default for XskConfig {
    fn default() -> Self {
        XskConfig {
            frames: 4096,
            frame_size: 2048,
            fill_size: 2048,
            comp_size: 2048,
            rx_size: 2048,
            tx_size: 2048,
            try_zero_copy: true,
            tx_only_fill: 64,
        }
    }
}

impl XskConfig {
    /// Checks sizes: powers of two, frame size 2048 or 4096, enough frames.
    pub fn validate(&self) -> Result<(), XskError> {
        let pow2 = |name: &str, v: u32| {
            if v.is_power_of_two() {
                Ok(())
            } else {
                Err(XskError::Config(format!(
                    "{name} {v} is not a power of two"
                )))
            }
        };
        pow2("fill ring size", self.fill_size)?;
        pow2("completion ring size", self.comp_size)?;
        pow2("rx ring size", self.rx_size)?;
        pow2("tx ring size", self.tx_size)?;
        if self.frame_size != 2048 && self.frame_size != 4096 {
            return Err(XskError::Config(format!(
                "frame size {} (use 2048 or 4096)",
                self.frame_size
            )));
        }
        if self.frames < self.fill_size.max(self.tx_size) {
            return Err(XskError::Config(format!(
                "{} frames cannot fill a {}-entry ring",
                self.frames,
                self.fill_size.max(self.tx_size)
            )));
        }
        Ok(())
    }
}

/// Where every frame of a queue is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct FrameAccounting {
    /// All frames of the UMEM.
    pub total: u64,
    /// In the free pool.
    pub free: u64,
    /// In the fill ring.
    pub in_fill_ring: u64,
    /// Taken from the fill ring by the kernel: on the RX ring or being written.
    pub in_rx_ring: u64,
    /// Held by the application (being built, parsed, or waiting to be sent).
    pub held_by_app: u64,
    /// On the TX ring.
    pub in_tx_ring: u64,
    /// Taken from the TX ring by the kernel, not yet on the completion ring.
    pub awaiting_completion: u64,
}

impl FrameAccounting {
    /// free + fill + rx + app + tx + awaiting completion == total.
    pub fn adds_up(&self) -> bool {
        self.free
            + self.in_fill_ring
            + self.in_rx_ring
            + self.held_by_app
            + self.in_tx_ring
            + self.awaiting_completion
            == self.total
    }
}

/// How long to retry a bind that fails with EBUSY: a queue whose previous socket just
/// closed stays busy for about a second (ARCHITECTURE.md), so 2.5 s with backoff.
const BIND_BUSY_RETRY: Duration = Duration::from_millis(2500);

/// One AF_XDP socket with its UMEM and frame pool.
#[derive(Debug)]
pub struct XskQueue<R: Rings = XskSocket> {
    ifname: String,
    queue: u32,
    sock: R,
    free: Vec<Frame>,
    total: u64,
    kernel_rx: u64,
    kernel_tx: u64,
    app: u64,
    fill_size: u32,
    tx_size: u32,
}

impl XskQueue {
    /// Opens queue `queue` of `ifname`: UMEM, socket (zero-copy, else copy), EBUSY retried.
    pub fn open(ifname: &str, queue: u32, cfg: &XskConfig) -> Result<Self, XskError> {
        cfg.validate()?;
        if !netdev::exists(ifname) {
            return Err(XskError::NoSuchInterface {
                ifname: ifname.to_owned(),
            });
        }
        let count = netdev::rx_queues(ifname).max(netdev::tx_queues(ifname));
        if count > 0 && queue >= count {
            return Err(XskError::QueueOutOfRange {
                ifname: ifname.to_owned(),
                queue,
                count,
            });
        }
        let geometry = UmemGeometry {
            frames: cfg.frames,
            frame_size: cfg.frame_size,
            fill_size: cfg.fill_size,
            comp_size: cfg.comp_size,
        };
        let opts = SocketOptions {
            rx_size: cfg.rx_size,
            tx_size: cfg.tx_size,
            try_zero_copy: cfg.try_zero_copy,
        };
        let start = Instant::now();
        let mut backoff = Duration::from_millis(20);
        loop {
            // A fresh UMEM per attempt: a failed bind may leave the area registered.
            let (area, free) = UmemArea::new(geometry).map_err(|source| XskError::Umem {
                ifname: ifname.to_owned(),
                queue,
                source,
            })?;
            match XskSocket::bind(area, ifname, queue, opts) {
                Ok(sock) => {
                    return Ok(XskQueue::from_parts(
                        ifname,
                        queue,
                        sock,
                        free,
                        cfg.fill_size,
                        cfg.tx_size,
                    ))
                }
                Err(e) if e.errno() == Some(libc::EBUSY) && start.elapsed() < BIND_BUSY_RETRY => {
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_millis(400));
                }
                Err(e) if e.errno() == Some(libc::EBUSY) => {
                    return Err(XskError::QueueBusy {
                        ifname: ifname.to_owned(),
                        queue,
                        waited_ms: start.elapsed().as_millis() as u64,
                    })
                }
                Err(source) => {
                    return Err(XskError::Bind {
                        ifname: ifname.to_owned(),
                        queue,
                        source,
                    })
                }
            }
        }
    }

    /// Zero-copy or copy.
    pub fn mode(&self) -> BindMode {
        self.sock.mode()
    }
    /// Socket fd, for the XSKMAP.
    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        self.sock.raw_fd()
    }
    /// The UMEM, to read and write frames the application holds.
    pub fn area(&self) -> &UmemArea {
        self.sock.area()
    }

    /// A shared handle on the area (see [`XskSocket::area_shared`]).
    pub fn area_shared(&self) -> std::sync::Arc<UmemArea> {
        self.sock.area_shared()
    }
    /// Raises the copy-mode TX budget per `sendto` (see `sys`).
    pub fn set_tx_skb_budget(&self, budget: u32) -> Result<(), SyscallError> {
        self.sock.set_tx_skb_budget(budget)
    }
    /// Waits for RX (and wakes the kernel for the fill ring).
    pub fn poll_rx(&mut self, timeout_ms: i32) -> Result<bool, SyscallError> {
        self.sock.poll_rx(timeout_ms)
    }
    /// The kernel's XDP_STATISTICS for this socket (zeros if unreadable).
    pub fn statistics(&self) -> XdpStatistics {
        self.sock.statistics().unwrap_or_default()
    }
}

impl<R: Rings> XskQueue<R> {
    /// A queue over `sock` whose frames are all in `free`.
    pub fn from_parts(
        ifname: &str,
        queue: u32,
        sock: R,
        free: Vec<Frame>,
        fill_size: u32,
        tx_size: u32,
    ) -> Self {
        let total = free.len() as u64;
        XskQueue {
            ifname: ifname.to_owned(),
            queue,
            sock,
            free,
            total,
            kernel_rx: 0,
            kernel_tx: 0,
            app: 0,
            fill_size,
            tx_size,
        }
    }

    /// The rings (tests drive the fake kernel through this).
    pub fn rings_mut(&mut self) -> &mut R {
        &mut self.sock
    }

    /// Interface name.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }
    /// Queue index.
    pub fn queue_id(&self) -> u32 {
        self.queue
    }

    /// Tops the fill ring up from the free pool until it holds `target` frames (capped at
    /// the ring size) or the pool is empty. Returns frames added.
    #[inline]
    pub fn refill(&mut self, target: u32) -> usize {
        let target = target.min(self.fill_size) as u64;
        let in_fill = (self.fill_size - self.sock.fill_free(self.fill_size)) as u64;
        // `kernel_rx` bounds the fill occupancy; the ring read may lag by a batch.
        let want = target.saturating_sub(in_fill.min(self.kernel_rx)) as usize;
        let n = self.sock.fill(&mut self.free, want);
        self.kernel_rx += n as u64;
        n
    }

    /// True if the kernel asked for a wakeup to take fill ring entries.
    #[inline]
    pub fn fill_needs_wakeup(&self) -> bool {
        self.sock.fill_needs_wakeup()
    }

    /// Takes up to `max` received frames into `out` (the application now holds them).
    #[inline]
    pub fn recv(&mut self, out: &mut Vec<Frame>, max: usize) -> usize {
        let n = self.sock.rx(out, max);
        self.kernel_rx -= n as u64;
        self.app += n as u64;
        n
    }

    /// Gives held frames straight back to the fill ring; what does not fit goes to the pool.
    #[inline]
    pub fn recycle(&mut self, frames: &mut Vec<Frame>) {
        let n = self.sock.fill(frames, frames.len());
        self.kernel_rx += n as u64;
        self.app -= n as u64;
        self.release(frames);
    }

    /// Returns held frames to the free pool.
    #[inline]
    pub fn release(&mut self, frames: &mut Vec<Frame>) {
        let id = self.sock.area_id();
        let before = self.free.len();
        // Frames of another queue's area stay with the caller: they were never ours.
        self.free.extend(frames.extract_if(.., |f| f.area() == id));
        self.app -= (self.free.len() - before) as u64;
    }

    /// Takes up to `n` frames from the free pool into `out`. Returns how many.
    #[inline]
    pub fn alloc(&mut self, out: &mut Vec<Frame>, n: usize) -> usize {
        let n = n.min(self.free.len());
        let start = self.free.len() - n;
        out.extend(self.free.drain(start..));
        self.app += n as u64;
        n
    }

    /// Puts frames from the front of `frames` on the TX ring, as many as fit (the rest stay
    /// in `frames`, at their head: the requeue of a busy ring). Kicks the kernel once for
    /// the batch, and only if it asked (`need_wakeup`). Returns (sent, kicked).
    #[inline]
    pub fn send(&mut self, frames: &mut Vec<Frame>) -> (usize, bool) {
        let n = self.sock.tx(frames);
        self.kernel_tx += n as u64;
        self.app -= n as u64;
        let kicked = self.kick_if_needed();
        (n, kicked)
    }

    /// Kicks TX if the kernel asked. Returns whether it did.
    #[inline]
    pub fn kick_if_needed(&mut self) -> bool {
        if self.kernel_tx > 0 && self.sock.tx_needs_wakeup() {
            // EAGAIN/EBUSY/ENOBUFS are swallowed below us; anything else shows as frames
            // that never complete, which the caller's accounting reports.
            let _ = self.sock.kick_tx();
            true
        } else {
            false
        }
    }

    /// Moves up to `max` completed TX frames back to the free pool. Returns how many.
    #[inline]
    pub fn reclaim(&mut self, max: usize) -> usize {
        let n = self.sock.complete(&mut self.free, max);
        self.kernel_tx -= n as u64;
        n
    }

    /// Moves up to `max` completed TX frames to `out` instead of the pool: for callers that
    /// keep some of them (TCP's retransmit queue holds a frame until its data is ACKed).
    /// Returns how many.
    #[inline]
    pub fn reclaim_to(&mut self, out: &mut Vec<Frame>, max: usize) -> usize {
        let n = self.sock.complete(out, max);
        self.kernel_tx -= n as u64;
        self.app += n as u64;
        n
    }

    /// Frames in the free pool.
    pub fn free_len(&self) -> usize {
        self.free.len()
    }

    /// Frames given to the kernel for TX and not yet completed.
    pub fn tx_outstanding(&self) -> u64 {
        self.kernel_tx
    }

    /// Where every frame is, right now.
    pub fn accounting(&mut self) -> FrameAccounting {
        let in_fill =
            ((self.fill_size - self.sock.fill_free(self.fill_size)) as u64).min(self.kernel_rx);
        let in_tx = ((self.tx_size - self.sock.tx_free(self.tx_size)) as u64).min(self.kernel_tx);
        FrameAccounting {
            total: self.total,
            free: self.free.len() as u64,
            in_fill_ring: in_fill,
            in_rx_ring: self.kernel_rx - in_fill,
            held_by_app: self.app,
            in_tx_ring: in_tx,
            awaiting_completion: self.kernel_tx - in_tx,
        }
    }
}

#[cfg(test)]
mod tests;
