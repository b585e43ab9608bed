//! The one module with `unsafe`: AF_XDP rings and the UMEM area (through xsk-rs), and the
//! raw socket option xsk-rs does not expose.
//!
//! Soundness rests on one invariant: **every UMEM frame is represented by at most one
//! [`Frame`] value at a time.** `Frame` is neither `Clone` nor `Copy` and has no public
//! constructor; [`UmemArea::new`] makes one per frame, and a `Frame` is *moved* into a
//! ring (fill, TX) and a new one is made only when the kernel hands that frame back (RX,
//! completion). So while userspace holds a `Frame`, the kernel does not own that memory,
//! and `&mut Frame` is exclusive access to its bytes. This is exactly the contract
//! xsk-rs's `unsafe fn`s ask of their callers.
#![allow(unsafe_code)]

use std::{ffi::CString, io, num::NonZeroU32, os::fd::AsRawFd, os::fd::RawFd};

use xsk_rs::{
    config::{BindFlags, FrameSize, Interface, LibxdpFlags, QueueSize, SocketConfig, UmemConfig},
    CompQueue, FillQueue, FrameDesc, RxQueue, Socket, TxQueue, Umem,
};

/// `SOL_XDP` (linux/socket.h); not in the libc crate for all targets.
const SOL_XDP: libc::c_int = 283;
/// `XDP_MAX_TX_SKB_BUDGET` (linux/if_xdp.h, Linux 6.16): how many descriptors one `sendto`
/// turns into skbs in copy mode. Defined here because the installed headers are from 6.1.
const XDP_MAX_TX_SKB_BUDGET: libc::c_int = 9;

/// Most descriptors taken from the RX or completion ring in one call: 4096 covers every
/// ring size skiff configures (default 2048), so one call can empty a full ring.
const MAX_BATCH_IN: u32 = 4096;

/// Ownership token for one UMEM frame. See the module doc for the invariant.
///
/// It carries the id of the area it belongs to: every access to memory or a ring checks
/// it, so a `Frame` of one queue handed to another queue's area or rings is refused (left
/// with the caller) instead of aliasing a frame of that area.
#[derive(Debug)]
pub struct Frame(FrameDesc, AreaId);

/// Identity of a [`UmemArea`], unique in the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AreaId(u32);

static NEXT_AREA: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);

impl Frame {
    /// A token for tests of the accounting layer with no kernel and no UMEM: it is never
    /// given to a ring or an area (the fake rings only move it around). `id` is kept in the
    /// descriptor's options word so tests can check each frame is in exactly one place.
    #[cfg(test)]
    pub(crate) fn for_test(id: u32) -> Frame {
        let mut d = FrameDesc::default();
        d.set_options(id);
        Frame(d, AreaId(0))
    }
    /// A test token that claims to belong to area `area`.
    #[cfg(test)]
    pub(crate) fn for_test_area(id: u32, area: u32) -> Frame {
        let mut f = Frame::for_test(id);
        f.1 = AreaId(area);
        f
    }
    /// The id given to [`Frame::for_test`].
    #[cfg(test)]
    pub(crate) fn test_id(&self) -> u32 {
        self.0.options()
    }

    /// Length of the packet data the frame holds.
    #[inline]
    pub fn len(&self) -> usize {
        self.0.lengths().data()
    }
    /// The area the frame belongs to.
    #[inline]
    pub fn area(&self) -> AreaId {
        self.1
    }
    /// True when the frame holds no packet data.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// UMEM geometry.
#[derive(Debug, Clone, Copy)]
pub struct UmemGeometry {
    /// Frames in the area.
    pub frames: u32,
    /// Bytes per frame: 2048 or 4096 (aligned mode needs a power of two ≤ page size).
    pub frame_size: u32,
    /// Fill ring entries (power of two).
    pub fill_size: u32,
    /// Completion ring entries (power of two).
    pub comp_size: u32,
}

/// The UMEM: an mmap'd area of equal frames, registered with the kernel by the first
/// socket bound to it. Unmapped when the last handle (ours and xsk-rs's) goes.
#[derive(Debug)]
pub struct UmemArea {
    umem: Umem,
    data_room: usize,
    id: AreaId,
    frame_size: u32,
    frames: u32,
}

/// A failed system call, with its name: the error type of this module.
#[derive(Debug, thiserror::Error)]
#[error("{call}: {source}")]
pub struct SyscallError {
    /// What was called.
    pub call: &'static str,
    /// What the kernel said.
    #[source]
    pub source: io::Error,
}

impl SyscallError {
    fn new(call: &'static str, source: io::Error) -> Self {
        SyscallError { call, source }
    }
    /// The errno, if the kernel gave one.
    pub fn errno(&self) -> Option<i32> {
        self.source.raw_os_error()
    }
}

fn invalid(call: &'static str, what: String) -> SyscallError {
    SyscallError::new(call, io::Error::new(io::ErrorKind::InvalidInput, what))
}

impl UmemArea {
    /// Maps and describes a UMEM; the returned `Frame`s are every frame of it, all free.
    pub fn new(g: UmemGeometry) -> Result<(Self, Vec<Frame>), SyscallError> {
        let frames = NonZeroU32::new(g.frames).ok_or_else(|| invalid("umem", "0 frames".into()))?;
        let frame_size = FrameSize::new(g.frame_size)
            .map_err(|e| invalid("umem", format!("frame size {}: {e}", g.frame_size)))?;
        let fill = QueueSize::new(g.fill_size)
            .map_err(|e| invalid("umem", format!("fill ring size: {e}")))?;
        let comp = QueueSize::new(g.comp_size)
            .map_err(|e| invalid("umem", format!("completion ring size: {e}")))?;
        let config = UmemConfig::builder()
            .frame_size(frame_size)
            .fill_queue_size(fill)
            .comp_queue_size(comp)
            .build()
            .map_err(|e| invalid("umem", e.to_string()))?;
        let data_room = (g.frame_size - config.xdp_headroom() - config.frame_headroom()) as usize;
        let (umem, descs) = Umem::new(config, frames, false).map_err(|e| {
            let source = std::error::Error::source(&e)
                .and_then(|s| s.downcast_ref::<io::Error>())
                .and_then(io::Error::raw_os_error)
                .map(io::Error::from_raw_os_error)
                .unwrap_or_else(|| io::Error::other(e.to_string()));
            SyscallError::new("xsk_umem__create", source)
        })?;
        let id = AreaId(NEXT_AREA.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        let frames = descs.into_iter().map(|d| Frame(d, id)).collect();
        Ok((
            UmemArea {
                umem,
                data_room,
                id,
                frame_size: g.frame_size,
                frames: g.frames,
            },
            frames,
        ))
    }

    /// Bytes of packet data a frame can hold (frame size less the kernel's headroom).
    pub fn data_room(&self) -> usize {
        self.data_room
    }

    /// The area's identity.
    pub fn id(&self) -> AreaId {
        self.id
    }

    /// Frames in the area.
    pub fn frame_count(&self) -> u32 {
        self.frames
    }

    /// The frame's index in the area, `0..frame_count()`: its address divided by the frame
    /// size (in aligned mode the data address lies inside its frame). None for a frame of
    /// another area.
    #[inline]
    pub fn frame_index(&self, frame: &Frame) -> Option<u32> {
        if frame.1 != self.id {
            return None;
        }
        Some((frame.0.addr() / self.frame_size as usize) as u32)
    }

    /// The packet bytes of a frame userspace owns (empty for a frame of another area).
    #[inline]
    pub fn bytes<'a>(&'a self, frame: &'a Frame) -> &'a [u8] {
        if frame.1 != self.id {
            return &[];
        }
        // SAFETY: `frame` came from this UMEM (a `Frame` is only made by `new` or a ring of
        // a socket on this area), and by the module invariant userspace owns it: neither
        // the kernel nor another `Frame` writes this memory while the borrow lasts.
        unsafe { self.umem.data(&frame.0) }.contents()
    }

    /// Writes `packet` at the start of the frame's data and sets its length. Returns the
    /// number of bytes written: less than `packet.len()` only if the frame is too small.
    #[inline]
    pub fn write(&self, frame: &mut Frame, packet: &[u8]) -> usize {
        if frame.1 != self.id {
            return 0;
        }
        let n = packet.len().min(self.data_room);
        // SAFETY: as in `bytes`, and `&mut Frame` makes this the only access to the frame.
        let mut data = unsafe { self.umem.data_mut(&mut frame.0) };
        let mut cur = data.cursor();
        cur.set_pos(0);
        // A cursor over the frame's data room cannot fail a write of `n` ≤ room bytes.
        let _ = std::io::Write::write(&mut cur, &packet[..n]);
        n
    }
}

impl UmemArea {
    /// Builds a packet in place: `build` gets the frame's whole data room (at least
    /// [`UmemArea::data_room`] bytes), writes a frame at its start and returns its length,
    /// which becomes the frame's length (clamped to the room). Returns that length; 0 for
    /// a frame of another area (nothing is called then).
    #[inline]
    pub fn build(&self, frame: &mut Frame, build: impl FnOnce(&mut [u8]) -> usize) -> usize {
        if frame.1 != self.id {
            return 0;
        }
        // SAFETY: as in `write`: the frame is from this UMEM, userspace owns it, and
        // `&mut Frame` makes this the only access to its memory while `data` lives.
        let mut data = unsafe { self.umem.data_mut(&mut frame.0) };
        // Open the whole room (the length is the cursor position), build, then cut the
        // length to what was built.
        let room = {
            let mut cur = data.cursor();
            let room = cur.buf_len();
            cur.set_pos(room);
            room
        };
        let n = build(data.contents_mut()).min(room);
        data.cursor().set_pos(n);
        n
    }
}

/// How the socket was bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BindMode {
    /// `XDP_ZEROCOPY`: the driver DMAs into the UMEM.
    ZeroCopy,
    /// `XDP_COPY`: the kernel copies between skbs/xdp_buffs and the UMEM.
    Copy,
}

/// Socket ring sizes and bind preferences.
#[derive(Debug, Clone, Copy)]
pub struct SocketOptions {
    /// RX ring entries (power of two).
    pub rx_size: u32,
    /// TX ring entries (power of two).
    pub tx_size: u32,
    /// Try zero-copy first (`false`: copy mode straight away).
    pub try_zero_copy: bool,
}

/// Counters the kernel keeps per socket (`XDP_STATISTICS`).
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct XdpStatistics {
    /// Frames dropped for reasons other than invalid descriptors (e.g. no fill frame).
    pub rx_dropped: u64,
    /// Invalid RX descriptors.
    pub rx_invalid_descs: u64,
    /// Invalid TX descriptors: never completed.
    pub tx_invalid_descs: u64,
    /// Frames dropped because the RX ring was full.
    pub rx_ring_full: u64,
    /// Times the fill ring was empty when the kernel needed a frame.
    pub rx_fill_ring_empty_descs: u64,
    /// Times the TX ring was empty when the kernel looked.
    pub tx_ring_empty_descs: u64,
}

/// One AF_XDP socket bound to (interface, queue), owning the area's fill and completion
/// rings (one UMEM per socket: see ARCHITECTURE.md on shared UMEM and veth).
#[derive(Debug)]
pub struct XskSocket {
    area: std::sync::Arc<UmemArea>,
    tx: TxQueue,
    rx: RxQueue,
    fill: FillQueue,
    comp: CompQueue,
    /// Descriptors going to the kernel (fill, TX): cleared and refilled per batch.
    scratch: Vec<FrameDesc>,
    /// Descriptors coming back (RX, completion): sized once, never cleared, so taking a
    /// batch costs no memset of the whole ring's worth.
    incoming: Vec<FrameDesc>,
    mode: BindMode,
}

impl XskSocket {
    /// Binds a socket to `ifname`/`queue` on `area`. Zero-copy first if asked, then copy.
    /// Never loads libxdp's default XDP program: skiff inserts the socket into its own map.
    pub fn bind(
        area: UmemArea,
        ifname: &str,
        queue: u32,
        opts: SocketOptions,
    ) -> Result<Self, SyscallError> {
        let iface = Interface::new(
            CString::new(ifname)
                .map_err(|_| invalid("bind", format!("interface name {ifname:?}")))?,
        );
        let rx_size = QueueSize::new(opts.rx_size)
            .map_err(|e| invalid("bind", format!("rx ring size: {e}")))?;
        let tx_size = QueueSize::new(opts.tx_size)
            .map_err(|e| invalid("bind", format!("tx ring size: {e}")))?;
        let modes: &[(BindMode, BindFlags)] = if opts.try_zero_copy {
            &[
                (BindMode::ZeroCopy, BindFlags::XDP_ZEROCOPY),
                (BindMode::Copy, BindFlags::XDP_COPY),
            ]
        } else {
            &[(BindMode::Copy, BindFlags::XDP_COPY)]
        };
        let mut last = None;
        for &(mode, flag) in modes {
            let config = SocketConfig::builder()
                .rx_queue_size(rx_size)
                .tx_queue_size(tx_size)
                .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
                .bind_flags(flag | BindFlags::XDP_USE_NEED_WAKEUP)
                .build();
            // SAFETY: the UMEM is not shared with another socket on this (ifname, queue)
            // pair (one area per socket), which is xsk-rs's condition, and
            // INHIBIT_PROG_LOAD is set as it asks for.
            match unsafe { Socket::new(config, &area.umem, &iface, queue) } {
                Ok((tx, rx, rings)) => {
                    // Not shared, so xsk-rs hands this socket the area's fill/completion rings.
                    let Some((fill, comp)) = rings else {
                        return Err(invalid(
                            "bind",
                            "UMEM already bound to another socket".into(),
                        ));
                    };
                    let ring_max = opts.tx_size.max(opts.rx_size).max(MAX_BATCH_IN) as usize;
                    let scratch = Vec::with_capacity(ring_max);
                    let incoming = vec![FrameDesc::default(); ring_max];
                    return Ok(XskSocket {
                        area: std::sync::Arc::new(area),
                        tx,
                        rx,
                        fill,
                        comp,
                        scratch,
                        incoming,
                        mode,
                    });
                }
                Err(e) => {
                    let errno = std::error::Error::source(&e)
                        .and_then(|s| s.downcast_ref::<io::Error>())
                        .and_then(io::Error::raw_os_error);
                    let source = errno
                        .map(io::Error::from_raw_os_error)
                        .unwrap_or_else(|| io::Error::other(e.to_string()));
                    let err = SyscallError::new("xsk_socket__create", source);
                    // Zero-copy unsupported (veth, generic XDP): fall through to copy mode.
                    let zc_refused = mode == BindMode::ZeroCopy
                        && matches!(
                            errno,
                            Some(libc::EOPNOTSUPP)
                                | Some(libc::EINVAL)
                                | Some(libc::EPROTONOSUPPORT)
                        );
                    if !zc_refused {
                        return Err(err);
                    }
                    last = Some(err);
                }
            }
        }
        Err(last.unwrap_or_else(|| invalid("bind", "no bind mode".into())))
    }

    /// The UMEM this socket's frames live in.
    pub fn area(&self) -> &UmemArea {
        &self.area
    }

    /// A shared handle on the area, for threads that read frames this socket received
    /// (RPS workers): the `Frame` token they hold is what makes the access exclusive.
    pub fn area_shared(&self) -> std::sync::Arc<UmemArea> {
        self.area.clone()
    }

    /// The mode the socket was bound in.
    pub fn mode(&self) -> BindMode {
        self.mode
    }

    /// The socket's file descriptor, for the XSKMAP.
    pub fn raw_fd(&self) -> RawFd {
        self.rx.fd().as_raw_fd()
    }

    /// Raises how many TX descriptors one `sendto` processes in copy mode (Linux ≥ 6.16;
    /// older kernels say `ENOPROTOOPT`, which the caller may ignore).
    pub fn set_tx_skb_budget(&self, budget: u32) -> Result<(), SyscallError> {
        let v: libc::c_uint = budget;
        // SAFETY: plain setsockopt on a socket fd we own, with a pointer to a live u32 and
        // its exact size.
        let rc = unsafe {
            libc::setsockopt(
                self.raw_fd(),
                SOL_XDP,
                XDP_MAX_TX_SKB_BUDGET,
                (&v as *const libc::c_uint).cast(),
                size_of::<libc::c_uint>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(SyscallError::new(
                "setsockopt(XDP_MAX_TX_SKB_BUDGET)",
                io::Error::last_os_error(),
            ))
        }
    }

    /// Free slots in the fill ring (up to `want`; exact when fewer).
    #[inline]
    pub fn fill_free(&mut self, want: u32) -> u32 {
        self.fill.nb_free(want)
    }

    /// Moves up to `max` frames from the end of `frames` into the fill ring. Returns how many.
    #[inline]
    pub fn fill(&mut self, frames: &mut Vec<Frame>, max: usize) -> usize {
        let want = max.min(frames.len());
        if want == 0 {
            return 0;
        }
        let n = (self.fill.nb_free(want as u32) as usize).min(want);
        if n == 0 {
            return 0;
        }
        self.scratch.clear();
        let mut start = frames.len() - n;
        // Frames of another area never enter this ring: stop below the last foreign one.
        if let Some(i) = frames[start..].iter().rposition(|f| f.1 != self.area.id) {
            start += i + 1;
        }
        self.scratch.extend(frames[start..].iter().map(|f| f.0));
        // SAFETY: the descriptors are frames of this socket's UMEM (area id checked) that
        // userspace owned; exactly the `done` produced are dropped right below, so none
        // remains to alias memory the kernel now owns.
        let done = unsafe { self.fill.produce(&self.scratch) };
        frames.drain(start..start + done);
        done
    }

    /// True if the kernel asked to be woken to refill (`need_wakeup` on the fill ring).
    #[inline]
    pub fn fill_needs_wakeup(&self) -> bool {
        self.fill.needs_wakeup()
    }

    /// Takes up to `max` received frames, appending them to `out`. Returns how many.
    #[inline]
    pub fn rx(&mut self, out: &mut Vec<Frame>, max: usize) -> usize {
        let max = max.min(self.incoming.len());
        // SAFETY: the kernel hands these frames back to userspace; a `Frame` is made for
        // each, and the kernel gave up its ownership by producing them.
        let n = unsafe { self.rx.consume(&mut self.incoming[..max]) };
        let id = self.area.id;
        out.extend(self.incoming[..n].iter().map(|d| Frame(*d, id)));
        n
    }

    /// Waits up to `timeout_ms` for the RX ring (POLLIN); also wakes the kernel for the
    /// fill ring. Returns true if readable.
    pub fn poll_rx(&mut self, timeout_ms: i32) -> Result<bool, SyscallError> {
        self.rx
            .poll(timeout_ms)
            .map_err(|e| SyscallError::new("poll", e))
    }

    /// Free slots in the TX ring (up to `want`).
    #[inline]
    pub fn tx_free(&mut self, want: u32) -> u32 {
        self.tx.nb_free(want)
    }

    /// Moves frames from the front of `frames` into the TX ring, as many as fit. Returns how many.
    #[inline]
    pub fn tx(&mut self, frames: &mut Vec<Frame>) -> usize {
        if frames.is_empty() {
            return 0;
        }
        let n = (self.tx.nb_free(frames.len() as u32) as usize).min(frames.len());
        if n == 0 {
            return 0;
        }
        // Frames of another area never enter this ring: stop at the first foreign one.
        let n = frames[..n]
            .iter()
            .position(|f| f.1 != self.area.id)
            .unwrap_or(n);
        self.scratch.clear();
        self.scratch.extend(frames[..n].iter().map(|f| f.0));
        // SAFETY: as in `fill`: the frames are this area's and ours, and exactly the `done`
        // produced are dropped below.
        let done = unsafe { self.tx.produce(&self.scratch) };
        frames.drain(..done);
        done
    }

    /// True if the kernel must be kicked (`sendto`) to process the TX ring.
    #[inline]
    pub fn tx_needs_wakeup(&self) -> bool {
        self.tx.needs_wakeup()
    }

    /// Kicks TX processing. EAGAIN/EBUSY/ENOBUFS are not errors (xsk-rs ignores them).
    #[inline]
    pub fn kick_tx(&self) -> Result<(), SyscallError> {
        self.tx.wakeup().map_err(|e| SyscallError::new("sendto", e))
    }

    /// Takes up to `max` completed TX frames, appending them to `out`. Returns how many.
    #[inline]
    pub fn complete(&mut self, out: &mut Vec<Frame>, max: usize) -> usize {
        let max = max.min(self.incoming.len());
        // SAFETY: as in `rx`: completed frames are handed back to userspace.
        let n = unsafe { self.comp.consume(&mut self.incoming[..max]) };
        let id = self.area.id;
        out.extend(self.incoming[..n].iter().map(|d| Frame(*d, id)));
        n
    }

    /// The kernel's counters for this socket.
    pub fn statistics(&self) -> Result<XdpStatistics, SyscallError> {
        let s = self
            .rx
            .fd()
            .xdp_statistics()
            .map_err(|e| SyscallError::new("getsockopt(XDP_STATISTICS)", e))?;
        Ok(XdpStatistics {
            rx_dropped: s.rx_dropped(),
            rx_invalid_descs: s.rx_invalid_descs(),
            tx_invalid_descs: s.tx_invalid_descs(),
            rx_ring_full: s.rx_ring_full(),
            rx_fill_ring_empty_descs: s.rx_fill_ring_empty_descs(),
            tx_ring_empty_descs: s.tx_ring_empty_descs(),
        })
    }
}

/// CPU time the calling thread has used, user and system, from `getrusage(RUSAGE_THREAD)`:
/// what a poller costs, separate from the wall clock (on veth the system part includes the
/// receiver's softirq, which runs in the sender's `sendto`).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct ThreadCpu {
    /// Seconds in user space.
    pub user_s: f64,
    /// Seconds in the kernel.
    pub sys_s: f64,
}

/// The calling thread's CPU time so far (zeros if the kernel refuses, which it does not).
pub fn thread_cpu() -> ThreadCpu {
    // SAFETY: an all-zero `rusage` is a valid value of that plain C struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes one `rusage` through the pointer, which points at a local of
    // exactly that type that lives across the call.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    if rc != 0 {
        return ThreadCpu::default();
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    ThreadCpu {
        user_s: secs(ru.ru_utime),
        sys_s: secs(ru.ru_stime),
    }
}

/// `CLOCK_MONOTONIC` in nanoseconds: the clock latency probes carry.
///
/// It is the clock `std::time::Instant` reads on Linux, so instants and probe timestamps
/// compare; it is read through the vDSO (no system call; its cost is measured and reported
/// by `skiff ping` as `clock_read_ns`). It is shared by every process on the host (no time
/// namespaces are used), which is what makes one-way latency between two namespaces of one
/// host meaningful. Why not the TSC: see `docs/LATENCY.md`.
#[inline]
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one `timespec` through the pointer, which points at a
    // local of exactly that type that lives across the call; nothing else aliases it.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    if rc != 0 {
        return 0; // CLOCK_MONOTONIC cannot fail on Linux; 0 reads as "no time".
    }
    // tv_sec and tv_nsec are non-negative for CLOCK_MONOTONIC.
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}
