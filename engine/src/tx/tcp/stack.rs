//! The TCP/IP stack of one poller: Ethernet demultiplexing (ARP/ND to the neighbour
//! table, IPv4/IPv6 TCP to the connections), listeners, connection lookup, RSTs for
//! segments nobody owns, and the application API: `connect`, `listen`, `accept`,
//! `write`, `read`, `close`. Nothing here blocks or uses std sockets: the application
//! calls the API from the poller's own loop (smoltcp's model), and many connections share
//! one poller, one UMEM and one qdisc.

use std::{
    cmp::Reverse,
    collections::{BinaryHeap, HashMap, VecDeque},
    hash::BuildHasher,
    net::IpAddr,
    sync::Arc,
};

use super::{
    conn::{CloseReason, Conn, ConnConfig, Endpoints, Payload, State, SynInfo, WriteSrc},
    frames::FrameRefs,
    Seq,
};
use crate::{
    gen::rate::{Layer, Rate},
    rx::gro::{Merged, MAX_HDR},
    sys::{Frame, UmemArea},
    tx::{
        ip::{self, Ipv4Out, Ipv6Out, Route},
        neigh::{is_martian, NeighConfig, NeighCounters, NeighTable},
        qdisc::QPacket,
    },
    wire::{
        checksum,
        tcp::{self, flags, TcpHeader, TcpOptions},
        ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETH_HLEN, IPPROTO_ICMPV6, IPPROTO_TCP,
    },
};

/// A connection handle: an index in the stack's table.
pub type ConnId = u32;

/// A frame on its way to the qdisc: TCP's flow key and pacing rate ride with it.
#[derive(Debug)]
pub struct TxFrame {
    /// The frame, headers written.
    pub frame: Frame,
    /// The connection's flow key (fq flow).
    pub flow: u32,
    /// Pacing rate (bytes/s) when paced.
    pub rate: Option<u64>,
}

impl TxFrame {
    /// The pacing rate as the qdisc's [`Rate`] (L2 bits per second).
    pub fn qdisc_rate(&self) -> Option<Rate> {
        self.rate.map(|b| Rate::Bits {
            bps: b as f64 * 8.0,
            layer: Layer::L2,
        })
    }
}

impl QPacket for TxFrame {
    fn len(&self) -> usize {
        self.frame.len()
    }
    fn flow(&self) -> u32 {
        self.flow
    }
    fn priority(&self) -> u8 {
        0
    }
    fn tstamp_ns(&self) -> u64 {
        0
    }
}

/// Stack-wide counters, named after the kernel's SNMP MIB (`/proc/net/snmp` Tcp: and
/// `netstat` TcpExt:).
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct TcpCounters {
    /// Connections opened by us (`ActiveOpens`).
    pub active_opens: u64,
    /// Connections accepted (`PassiveOpens`).
    pub passive_opens: u64,
    /// Segments received for TCP (`InSegs`).
    pub in_segs: u64,
    /// Segments sent (`OutSegs`).
    pub out_segs: u64,
    /// Segments retransmitted (`RetransSegs`).
    pub retrans_segs: u64,
    /// Segments with a bad checksum (`InCsumErrors`).
    pub in_csum_errors: u64,
    /// Segments with a malformed header or options (`InErrs`).
    pub in_errs: u64,
    /// RSTs sent for segments nobody owns (`OutRsts`).
    pub out_rsts: u64,
    /// RSTs accepted (the connection was reset).
    pub resets_in: u64,
    /// RSTs answered with a challenge ACK (RFC 5961 §3.2).
    pub rst_challenged: u64,
    /// SYNs in a synchronized state answered with a challenge ACK (RFC 5961 §4).
    pub syn_challenged: u64,
    /// SYNs dropped because the listener's SYN queue was full (`ListenOverflows`,
    /// `TCPReqQFullDrop`).
    pub syn_dropped: u64,
    /// Established connections dropped because the accept queue was full.
    pub accept_overflows: u64,
    /// Frames not for us (other address, not IP/ARP/ND, fragments, other protocols).
    pub not_for_us: u64,
    /// IP headers that failed validation.
    pub ip_errors: u64,
    /// TCP from a source no host may have (multicast, broadcast, loopback, 0/8, IPv4-mapped)
    /// or to a link-layer group address: dropped unanswered, as `ip_route_input` (martian
    /// source), `ipv6_rcv` and `tcp_v4_rcv` (`pkt_type != PACKET_HOST`) drop them.
    pub martian: u64,
    /// Super-segments GSO split.
    pub gso_super: u64,
    /// Segments GSO produced.
    pub gso_segs: u64,
    /// Frames the pool could not supply.
    pub pool_empty: u64,
    /// Times a connection stopped sending because of TCP Small Queues.
    pub tsq_throttled: u64,
    /// Connections the poller ran because an event named them (input, a write, read or
    /// close, a frame of theirs completed, a timer due, frames back in the pool they
    /// waited for): a round's cost follows these, not the table's size.
    pub conn_runs: u64,
    /// Full walks of the connection table: the safety net every
    /// [`StackConfig::sweep_us`], and the walks a neighbour's change forces.
    pub sweeps: u64,
    /// Connections a safety-net walk found with work that no event had announced (a
    /// timer due, or output that went out): 0 unless a wakeup is missing somewhere.
    pub sweep_found: u64,
}

/// Per-call context: the stack's shared pieces a connection needs.
#[derive(Debug)]
pub(crate) struct Ctx<'a> {
    pub area: &'a UmemArea,
    pub pool: &'a mut Vec<Frame>,
    pub refs: &'a mut FrameRefs,
    pub out: &'a mut Vec<TxFrame>,
    pub neigh: &'a mut NeighTable,
    pub neigh_out: &'a mut Vec<Vec<u8>>,
    pub counters: &'a mut TcpCounters,
    pub now_us: u64,
    pub reserve: usize,
}

impl Ctx<'_> {
    /// The clock in nanoseconds: the unit of the neighbour table's timers. (Fix: the
    /// table used to be given microseconds, so its 1 s ARP/ND retransmit timer ran for
    /// 1000 s and an unanswered `connect` never failed; caught by the test
    /// `arp_unanswered_retries_every_second_then_unreachable`.)
    pub fn now_ns(&self) -> u64 {
        self.now_us.saturating_mul(1000)
    }

    /// A frame for control traffic (ACKs, SYNs, FINs, RSTs): may use the reserve.
    pub fn alloc(&mut self) -> Option<Frame> {
        let f = self.pool.pop();
        if f.is_none() {
            self.counters.pool_empty += 1;
        }
        f
    }

    /// A frame for payload: leaves the reserve for the fill ring and control traffic
    /// (pfmemalloc's idea: ACKs must never starve behind data).
    pub fn alloc_data(&mut self) -> Option<Frame> {
        if self.pool.len() <= self.reserve {
            self.counters.pool_empty += 1;
            return None;
        }
        self.pool.pop()
    }

    /// Writes the TCP checksum of a frame whose TCP header starts at `l4` (payload
    /// included, all of it in the frame).
    pub fn fill_tcp_checksum(&mut self, frame: &mut Frame, src: IpAddr, dst: IpAddr, l4: usize) {
        let len = frame.len();
        self.area.build(frame, |buf| {
            if let Some(seg) = buf.get_mut(l4..len) {
                fill_checksum(src, dst, seg);
            }
            len
        });
    }
}

/// Stack settings.
#[derive(Debug, Clone)]
pub struct StackConfig {
    /// Our MAC address.
    pub mac: [u8; 6],
    /// Our address (IPv4 or IPv6) and the routes.
    pub addr: IpAddr,
    /// Subnet and gateway.
    pub route: Route,
    /// Per-connection settings.
    pub conn: ConnConfig,
    /// Half-open connections per listener at most: 256 (the kernel sizes
    /// `max_syn_backlog` from memory, 128 to 1024; 256 keeps a SYN flood bounded).
    pub max_syn_backlog: usize,
    /// Frames payload may not take: the fill ring's share and control traffic.
    pub reserve_frames: usize,
    /// The poller runs only the connections an event named; every `sweep_us` µs it walks
    /// them all and counts any work it finds in [`TcpCounters::sweep_found`]. 100 ms by
    /// default ([`DEFAULT_SWEEP_US`]); 0 walks every poll (the tests, which assert the
    /// count stays 0).
    pub sweep_us: u64,
}

/// The safety-net walk's period: 100 ms. Half the minimum RTO (200 ms), so a missed
/// wakeup costs less than a timeout would; at ~50 ns a connection (timers checked, output
/// with nothing to send) 1000 connections cost 50 µs of it, 0.05 %.
pub const DEFAULT_SWEEP_US: u64 = 100_000;

/// What the poller knows of one connection slot, beside the connection.
#[derive(Debug, Clone, Copy)]
struct Sched {
    /// On the run list.
    queued: bool,
    /// On the application's event list.
    app_queued: bool,
    /// Waits for frames in the pool (an ACK or a write found it empty).
    pool_wait: bool,
    /// The earliest deadline this slot has on the timer heap, µs; `NOT_ARMED` if none.
    armed: u64,
}

/// `Sched::armed` when the slot has no entry on the timer heap.
const NOT_ARMED: u64 = u64::MAX;

impl Default for Sched {
    fn default() -> Self {
        Sched {
            queued: false,
            app_queued: false,
            pool_wait: false,
            armed: NOT_ARMED,
        }
    }
}

/// A listening port.
#[derive(Debug)]
struct Listener {
    backlog: usize,
    accept_q: VecDeque<ConnId>,
    half_open: usize,
}

/// The stack.
#[derive(Debug)]
pub struct Stack {
    cfg: StackConfig,
    area: Arc<UmemArea>,
    pool: Vec<Frame>,
    refs: FrameRefs,
    out: Vec<TxFrame>,
    neigh: NeighTable,
    neigh_out: Vec<Vec<u8>>,
    conns: Vec<Option<Conn>>,
    free_ids: Vec<ConnId>,
    by_tuple: HashMap<(IpAddr, u16, u16), ConnId>,
    listeners: HashMap<u16, Listener>,
    /// Listener port of each half-open passive connection.
    parent: HashMap<ConnId, u16>,
    counters: TcpCounters,
    isn_key: std::collections::hash_map::RandomState,
    next_port: u16,
    now_us: u64,
    /// The connection each frame in the transmit path belongs to (TSQ accounting).
    owner: Vec<u32>,
    /// Scratch: the frames of the segment being processed (one, or a GRO packet's).
    rx_frames: Vec<Frame>,
    /// Per slot: run list, event list, pool wait, timer (indexed by `ConnId`).
    sched: Vec<Sched>,
    /// Connections to run at the next poll: epoll's ready list turned inward.
    run_q: Vec<ConnId>,
    /// Connections the application should look at (see [`Stack::take_events`]).
    app_q: Vec<ConnId>,
    /// Connections waiting for pool frames.
    pool_q: Vec<ConnId>,
    /// Timer deadlines (µs) by connection, earliest first. An entry is pushed only when
    /// a connection's next deadline moves earlier than the one it has here; one that
    /// moved later is found out when its entry comes due, and re-armed (the kernel's
    /// `sk_reset_timer` would modify the timer in place; a heap cannot, cheaply).
    timers: BinaryHeap<Reverse<(u64, ConnId)>>,
    /// Stack time of the next safety-net walk, µs.
    next_sweep_us: u64,
    /// A walk is owed regardless of the period: a neighbour resolved or failed, and the
    /// connections that waited for it are not on any list.
    sweep_now: bool,
}

/// Why an API call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TcpError {
    /// No route to the destination (`EHOSTUNREACH`).
    #[error("no route to host")]
    NoRoute,
    /// Address family differs from ours.
    #[error("address family mismatch")]
    Family,
    /// Every ephemeral port is in use (`EADDRNOTAVAIL`).
    #[error("no free local port")]
    NoPort,
    /// No frame for the SYN.
    #[error("out of frames")]
    NoFrames,
    /// Port already listening (`EADDRINUSE`).
    #[error("port in use")]
    InUse,
    /// No such connection.
    #[error("no such connection")]
    BadId,
}

/// First ephemeral port: 32768, `ip_local_port_range`'s default start.
const EPHEMERAL_LO: u16 = 32768;
/// Last ephemeral port: 60999, its default end.
const EPHEMERAL_HI: u16 = 60999;

impl Stack {
    /// A stack over `area`, owning `frames` (all of the area's frames not in the rings).
    pub fn new(cfg: StackConfig, area: Arc<UmemArea>, frames: Vec<Frame>) -> Stack {
        let (v4, v6) = match cfg.addr {
            IpAddr::V4(a) => (Some(a.octets()), None),
            IpAddr::V6(a) => (None, Some(a.octets())),
        };
        let neigh = NeighTable::new(NeighConfig::new(cfg.mac, v4, v6));
        let refs = FrameRefs::new(&area);
        let isn_key = std::collections::hash_map::RandomState::new();
        let seed = isn_key.hash_one(0xdead_beefu64);
        Stack {
            refs,
            area,
            pool: frames,
            out: Vec::new(),
            neigh,
            neigh_out: Vec::new(),
            conns: Vec::new(),
            free_ids: Vec::new(),
            by_tuple: HashMap::new(),
            listeners: HashMap::new(),
            parent: HashMap::new(),
            counters: TcpCounters::default(),
            isn_key,
            next_port: EPHEMERAL_LO + (seed % u64::from(EPHEMERAL_HI - EPHEMERAL_LO)) as u16,
            now_us: 0,
            owner: Vec::new(),
            rx_frames: Vec::new(),
            sched: Vec::new(),
            run_q: Vec::new(),
            app_q: Vec::new(),
            pool_q: Vec::new(),
            timers: BinaryHeap::new(),
            next_sweep_us: 0,
            sweep_now: false,
            cfg,
        }
    }

    /// The free frame pool (the poller moves frames between it and the fill ring).
    pub fn pool_mut(&mut self) -> &mut Vec<Frame> {
        &mut self.pool
    }

    /// The UMEM area.
    pub fn area(&self) -> &UmemArea {
        &self.area
    }

    /// Counters.
    pub fn counters(&self) -> TcpCounters {
        self.counters
    }

    /// Neighbour counters.
    pub fn neigh_counters(&self) -> NeighCounters {
        self.neigh.counters()
    }

    /// Adds a permanent neighbour (for `--dst-mac`).
    pub fn add_neighbour(&mut self, ip: IpAddr, mac: [u8; 6]) {
        self.neigh.insert_static(ip, mac);
        self.sweep_now = true;
    }

    /// Frames held by connections (retransmit queues) and in flight.
    pub fn frames_live(&self) -> u32 {
        self.refs.live()
    }

    /// Frames parked on retransmit queues (held, not in flight), for tests.
    #[cfg(test)]
    pub(crate) fn frames_parked(&self) -> usize {
        self.refs.parked_count()
    }

    /// Frames the connections' receive queues hold, for tests.
    #[cfg(test)]
    pub(crate) fn rx_frames(&self) -> usize {
        self.conns.iter().flatten().map(Conn::rx_frames).sum()
    }

    fn split(&mut self) -> (Ctx<'_>, &mut Vec<Option<Conn>>) {
        (
            Ctx {
                area: &self.area,
                pool: &mut self.pool,
                refs: &mut self.refs,
                out: &mut self.out,
                neigh: &mut self.neigh,
                neigh_out: &mut self.neigh_out,
                counters: &mut self.counters,
                now_us: self.now_us,
                reserve: self.cfg.reserve_frames,
            },
            &mut self.conns,
        )
    }

    /// RFC 6528 initial sequence number: a keyed hash of the 4-tuple plus a 4 µs clock.
    fn isn(&self, local: (IpAddr, u16), remote: (IpAddr, u16)) -> (Seq, u32) {
        let x = self.isn_key.hash_one((local, remote));
        let m = (self.now_us / 4) as u32;
        (Seq((x as u32).wrapping_add(m)), (x >> 32) as u32)
    }

    fn alloc_id(&mut self) -> ConnId {
        if let Some(id) = self.free_ids.pop() {
            return id;
        }
        self.conns.push(None);
        self.sched.push(Sched::default());
        (self.conns.len() - 1) as ConnId
    }

    /// Puts `id` on the run list for the next poll (which puts it on the application's
    /// event list when it has run).
    fn wake(&mut self, id: ConnId) {
        if let Some(s) = self.sched.get_mut(id as usize) {
            if !s.queued {
                s.queued = true;
                self.run_q.push(id);
            }
        }
    }

    /// Puts `id` on the application's event list.
    fn wake_app(&mut self, id: ConnId) {
        if let Some(s) = self.sched.get_mut(id as usize) {
            if !s.app_queued {
                s.app_queued = true;
                self.app_q.push(id);
            }
        }
    }

    /// After a connection ran: its next deadline onto the timer heap if earlier than the
    /// one it has there, and onto the pool's wait list if it found the pool empty
    /// (`pool_empty` went up from `pool_empty_before`).
    fn after_run(&mut self, id: ConnId, next_timer: Option<u64>, pool_empty_before: u64) {
        let Some(s) = self.sched.get_mut(id as usize) else {
            return;
        };
        if let Some(t) = next_timer {
            if t < s.armed {
                s.armed = t;
                self.timers.push(Reverse((t, id)));
            }
        }
        if self.counters.pool_empty != pool_empty_before && !s.pool_wait {
            s.pool_wait = true;
            self.pool_q.push(id);
        }
    }

    /// Connections that waited for pool frames run again once there are some.
    fn release_pool_waiters(&mut self) {
        if self.pool_q.is_empty() || self.pool.is_empty() {
            return;
        }
        for id in std::mem::take(&mut self.pool_q) {
            if let Some(s) = self.sched.get_mut(id as usize) {
                s.pool_wait = false;
            }
            self.wake(id);
        }
    }

    /// The connections something happened to since the last call, for the application to
    /// look at (epoll's ready list): input arrived (data, a FIN, the handshake's end, a
    /// RST), timers ran, segments went out (send space may have opened), or pool frames
    /// came back after a write found none. Appends to `out`; a connection appears once
    /// however many events it had. A connection with nothing new is not named, so an
    /// application that walks only these does work in proportion to what happened.
    pub fn take_events(&mut self, out: &mut Vec<ConnId>) {
        self.release_pool_waiters();
        for id in self.app_q.drain(..) {
            if let Some(s) = self.sched.get_mut(id as usize) {
                s.app_queued = false;
            }
            out.push(id);
        }
    }

    /// Sets the clock (µs, monotonic). Call before input/poll each round.
    pub fn set_now(&mut self, now_us: u64) {
        self.now_us = now_us;
    }

    /// Active open to `remote`. The SYN goes out at the next [`Stack::poll`].
    pub fn connect(&mut self, remote: (IpAddr, u16)) -> Result<ConnId, TcpError> {
        if remote.0.is_ipv4() != self.cfg.addr.is_ipv4() {
            return Err(TcpError::Family);
        }
        let next_hop = self.cfg.route.next_hop(remote.0).ok_or(TcpError::NoRoute)?;
        let span = EPHEMERAL_HI - EPHEMERAL_LO + 1;
        let mut port = None;
        for _ in 0..span {
            let p = self.next_port;
            self.next_port = if p >= EPHEMERAL_HI {
                EPHEMERAL_LO
            } else {
                p + 1
            };
            if !self.by_tuple.contains_key(&(remote.0, remote.1, p))
                && !self.listeners.contains_key(&p)
            {
                port = Some(p);
                break;
            }
        }
        let port = port.ok_or(TcpError::NoPort)?;
        let local = (self.cfg.addr, port);
        let id = self
            .open_conn(local, remote, next_hop, None)
            .ok_or(TcpError::NoFrames)?;
        self.wake(id);
        Ok(id)
    }

    /// Listens on `port` with an accept queue of `backlog` connections.
    pub fn listen(&mut self, port: u16, backlog: usize) -> Result<(), TcpError> {
        if self.listeners.contains_key(&port) {
            return Err(TcpError::InUse);
        }
        self.listeners.insert(
            port,
            Listener {
                backlog: backlog.max(1),
                accept_q: VecDeque::new(),
                half_open: 0,
            },
        );
        Ok(())
    }

    /// An established connection from `port`'s accept queue.
    pub fn accept(&mut self, port: u16) -> Option<ConnId> {
        self.listeners.get_mut(&port)?.accept_q.pop_front()
    }

    /// The connection `id`.
    pub fn conn(&self, id: ConnId) -> Option<&Conn> {
        self.conns.get(id as usize)?.as_ref()
    }

    /// Ids of every connection in the table.
    pub fn conn_ids(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.conns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.is_some())
            .map(|(i, _)| i as ConnId)
    }

    /// Writes `data`; returns the bytes taken (0: the send buffer or the pool is full).
    /// The bytes are copied into UMEM frames and summed for the checksum in one pass.
    pub fn write(&mut self, id: ConnId, data: &[u8]) -> usize {
        self.write_src(id, data.len(), &mut WriteSrc::Bytes(data))
    }

    fn write_src(&mut self, id: ConnId, max: usize, src: &mut WriteSrc<'_>) -> usize {
        let empty = self.counters.pool_empty;
        let (mut ctx, conns) = self.split();
        let n = match conns.get_mut(id as usize).and_then(Option::as_mut) {
            Some(c) => c.write(&mut ctx, max, src),
            None => return 0,
        };
        if n > 0 {
            self.wake(id);
        }
        // The pool ran dry: the write is retried when frames come back.
        self.after_run(id, None, empty);
        n
    }

    /// Writes up to `max` bytes produced in place by `fill` (called per frame with the
    /// exact room to fill), with no intermediate buffer.
    pub fn write_with(&mut self, id: ConnId, max: usize, fill: &mut dyn FnMut(&mut [u8])) -> usize {
        self.write_src(id, max, &mut WriteSrc::Fill(fill))
    }

    /// Copies in-order received data into `buf`.
    pub fn read(&mut self, id: ConnId, buf: &mut [u8]) -> usize {
        let (mut ctx, conns) = self.split();
        let n = match conns.get_mut(id as usize).and_then(Option::as_mut) {
            Some(c) => c.read(&mut ctx, buf),
            None => 0,
        };
        // The receive window may open: a window update may be owed.
        if n > 0 {
            self.wake(id);
        }
        n
    }

    /// Hands in-order received data to `f` without copying.
    pub fn read_with(&mut self, id: ConnId, f: &mut dyn FnMut(&[u8])) -> usize {
        let (mut ctx, conns) = self.split();
        let n = match conns.get_mut(id as usize).and_then(Option::as_mut) {
            Some(c) => c.read_with(&mut ctx, f),
            None => 0,
        };
        if n > 0 {
            self.wake(id);
        }
        n
    }

    /// Closes our side (FIN after the queued data).
    pub fn close(&mut self, id: ConnId) {
        let (mut ctx, conns) = self.split();
        if let Some(c) = conns.get_mut(id as usize).and_then(Option::as_mut) {
            c.close(&mut ctx);
        }
        self.wake(id);
    }

    /// Resets the connection.
    pub fn abort(&mut self, id: ConnId) {
        let (mut ctx, conns) = self.split();
        if let Some(c) = conns.get_mut(id as usize).and_then(Option::as_mut) {
            c.abort(&mut ctx);
        }
        self.wake(id);
    }

    /// Forgets a closed connection (its slot is reused).
    pub fn remove(&mut self, id: ConnId) {
        let Some(slot) = self.conns.get_mut(id as usize) else {
            return;
        };
        if let Some(mut c) = slot.take() {
            if c.state != State::Closed {
                let (mut ctx, _) = self.split();
                c.terminate(&mut ctx, CloseReason::Aborted);
            }
            self.by_tuple.remove(&(c.remote.0, c.remote.1, c.local.1));
            self.parent.remove(&id);
            self.free_ids.push(id);
            // Its heap entries go stale (they no longer match `armed`); list entries run
            // an empty slot, or the slot's next connection, which is harmless.
            if let Some(s) = self.sched.get_mut(id as usize) {
                s.armed = NOT_ARMED;
            }
        }
    }

    /// One received frame: ARP/ND, or TCP for one of our connections or listeners.
    /// Consumes the frame.
    pub fn input(&mut self, frame: Frame) {
        let area = Arc::clone(&self.area);
        let bytes = area.bytes(&frame);
        // Ethernet (one optional VLAN tag is not expected on the testbed; skipped).
        let Some(et) = bytes.get(12..14).map(|b| u16::from_be_bytes([b[0], b[1]])) else {
            self.counters.not_for_us += 1;
            self.pool.push(frame);
            return;
        };
        match et {
            ETHERTYPE_ARP => {
                let before = self.neigh_changes();
                // The neighbour table counts in ns (see `Ctx::now_ns`).
                self.neigh
                    .input(bytes, self.now_us.saturating_mul(1000), &mut self.neigh_out);
                self.pool.push(frame);
                self.sweep_now |= self.neigh_changes() != before;
            }
            ETHERTYPE_IPV4 => self.input_ipv4(&area, frame),
            ETHERTYPE_IPV6 => self.input_ipv6(&area, frame),
            _ => {
                self.counters.not_for_us += 1;
                self.pool.push(frame);
            }
        }
    }

    fn input_ipv4(&mut self, area: &UmemArea, frame: Frame) {
        let b = area.bytes(&frame);
        let ipb = b.get(14..).unwrap_or(&[]);
        let ok = ipb.len() >= 20 && ipb[0] >> 4 == 4 && (ipb[0] & 0xf) >= 5;
        if !ok {
            self.counters.ip_errors += 1;
            self.pool.push(frame);
            return;
        }
        let ihl = ((ipb[0] & 0xf) as usize) * 4;
        let tot = u16::from_be_bytes([ipb[2], ipb[3]]) as usize;
        if tot < ihl
            || tot > ipb.len()
            || ihl > ipb.len()
            || checksum::checksum(&ipb[..ihl], 0) != 0
        {
            self.counters.ip_errors += 1;
            self.pool.push(frame);
            return;
        }
        let frag = u16::from_be_bytes([ipb[6], ipb[7]]) & 0x3fff;
        let src = [ipb[12], ipb[13], ipb[14], ipb[15]];
        let dst = [ipb[16], ipb[17], ipb[18], ipb[19]];
        let ours = matches!(self.cfg.addr, IpAddr::V4(a) if a.octets() == dst);
        if !ours || frag != 0 || ipb[9] != IPPROTO_TCP {
            self.counters.not_for_us += 1;
            self.pool.push(frame);
            return;
        }
        let seg = &ipb[ihl..tot];
        if !tcp::checksum_ok_v4(src, dst, seg) {
            self.counters.in_csum_errors += 1;
            self.pool.push(frame);
            return;
        }
        let l4 = 14 + ihl;
        let macs = eth_macs(b);
        self.input_tcp(
            area,
            frame,
            IpAddr::from(src),
            IpAddr::from(dst),
            l4,
            tot - ihl,
            macs,
        );
    }

    fn input_ipv6(&mut self, area: &UmemArea, frame: Frame) {
        let b = area.bytes(&frame);
        let ipb = b.get(14..).unwrap_or(&[]);
        if ipb.len() < 40 || ipb[0] >> 4 != 6 {
            self.counters.ip_errors += 1;
            self.pool.push(frame);
            return;
        }
        let plen = u16::from_be_bytes([ipb[4], ipb[5]]) as usize;
        if 40 + plen > ipb.len() {
            self.counters.ip_errors += 1;
            self.pool.push(frame);
            return;
        }
        if ipb[6] == IPPROTO_ICMPV6 {
            let before = self.neigh_changes();
            self.neigh
                .input(b, self.now_us.saturating_mul(1000), &mut self.neigh_out);
            self.pool.push(frame);
            self.sweep_now |= self.neigh_changes() != before;
            return;
        }
        let mut src = [0u8; 16];
        let mut dst = [0u8; 16];
        src.copy_from_slice(&ipb[8..24]);
        dst.copy_from_slice(&ipb[24..40]);
        let ours = matches!(self.cfg.addr, IpAddr::V6(a) if a.octets() == dst);
        if !ours || ipb[6] != IPPROTO_TCP {
            self.counters.not_for_us += 1;
            self.pool.push(frame);
            return;
        }
        if !tcp::checksum_ok_v6(src, dst, &ipb[40..40 + plen]) {
            self.counters.in_csum_errors += 1;
            self.pool.push(frame);
            return;
        }
        let macs = eth_macs(b);
        self.input_tcp(
            area,
            frame,
            IpAddr::from(src),
            IpAddr::from(dst),
            14 + 40,
            plen,
            macs,
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn input_tcp(
        &mut self,
        area: &UmemArea,
        frame: Frame,
        src: IpAddr,
        dst: IpAddr,
        l4: usize,
        l4_len: usize,
        macs: [u8; 12],
    ) {
        let b = area.bytes(&frame);
        let Some(Ok(seg)) = b.get(l4..l4 + l4_len).map(tcp::parse) else {
            self.counters.in_segs += 1;
            self.counters.in_errs += 1;
            self.pool.push(frame);
            return;
        };
        let h = seg.header;
        let off = (l4 + seg.header_len) as u16;
        let len = seg.payload.len() as u16;
        let mut frames = std::mem::take(&mut self.rx_frames);
        frames.push(frame);
        self.input_segment(&h, (src, dst), macs, &mut frames, off, len, u32::from(len));
        self.rx_frames = frames;
    }

    /// A packet GRO merged from two or more frames of one TCP flow (`merged`: its
    /// rewritten header, and the frames, every one but the last carrying `gso` payload
    /// bytes after `hdr_len`, `len` in all): one segment to the connection, as the
    /// kernel's TCP sees a GRO skb. GRO verified every frame's checksums and IP header
    /// and merged only frames with identical addresses, ports, ACK, window, flags (but
    /// PSH/FIN on the last) and options. Takes the frames; the emptied vector is returned
    /// for [`Gro::recycle`](crate::rx::gro::Gro::recycle).
    pub fn input_merged(&mut self, merged: Merged<Frame>) -> Vec<Frame> {
        let mut hdr = [0u8; MAX_HDR];
        let n = merged.hdr_len().min(MAX_HDR);
        hdr[..n].copy_from_slice(&merged.header()[..n]);
        let (gso, len) = (merged.gso_size(), merged.payload_total());
        let mut frames = merged.into_frames();
        let segs = frames.len() as u64;
        let parsed = l3_of(&hdr[..n]).and_then(|(src, dst, l4)| {
            let h = tcp::parse(hdr.get(l4..n)?).ok()?.header;
            Some((src, dst, h))
        });
        match (parsed, u16::try_from(gso), u32::try_from(len)) {
            (Some((src, dst, h)), Ok(gso), Ok(len)) if dst == self.cfg.addr => {
                self.input_segment(
                    &h,
                    (src, dst),
                    eth_macs(&hdr),
                    &mut frames,
                    n as u16,
                    gso,
                    len,
                );
            }
            _ => {
                // Not IPv4/IPv6 TCP to our address without a VLAN tag: not ours.
                self.counters.not_for_us += segs;
                self.pool.append(&mut frames);
            }
        }
        frames
    }

    /// One TCP segment (one frame, or a GRO packet's frames in `frames`, each with its
    /// payload at `off`, `gso` bytes but the last, `len` in all) to its connection or
    /// listener, or answered with a RST. `macs` is the Ethernet header's destination and
    /// source. Empties `frames`.
    #[allow(clippy::too_many_arguments)]
    fn input_segment(
        &mut self,
        h: &TcpHeader,
        (src, dst): (IpAddr, IpAddr),
        macs: [u8; 12],
        frames: &mut Vec<Frame>,
        off: u16,
        gso: u16,
        len: u32,
    ) {
        // Before TCP sees it, as IP drops a martian source (`ip_route_input`, `ipv6_rcv`)
        // and `tcp_v4_rcv` a frame not addressed to this host alone (`pkt_type`).
        if is_martian(src) || macs[0] & 1 != 0 {
            self.counters.martian += frames.len() as u64;
            self.pool.append(frames);
            return;
        }
        let [_, _, _, _, _, _, peer_mac @ ..] = macs;
        self.counters.in_segs += frames.len() as u64;
        let key = (src, h.src_port, h.dst_port);
        if let Some(&id) = self.by_tuple.get(&key) {
            let was_half_open = self.parent.contains_key(&id);
            let empty = self.counters.pool_empty;
            let (mut ctx, conns) = self.split();
            if let Some(c) = conns.get_mut(id as usize).and_then(Option::as_mut) {
                let p = Payload {
                    frames,
                    off,
                    gso,
                    len,
                };
                c.input(&mut ctx, h, p);
                c.output(&mut ctx);
                let (st, next) = (c.state, c.next_timer());
                self.after_run(id, next, empty);
                self.wake_app(id);
                if was_half_open && st != State::SynReceived {
                    self.promote(id, st);
                }
            } else {
                ctx.pool.append(frames);
            }
            return;
        }
        self.pool.append(frames);
        // A listener?
        if h.flags & flags::SYN != 0 && h.flags & (flags::ACK | flags::RST) == 0 {
            if let Some(l) = self.listeners.get_mut(&h.dst_port) {
                if l.half_open >= self.cfg.max_syn_backlog || l.accept_q.len() >= l.backlog {
                    self.counters.syn_dropped += 1;
                    return;
                }
                l.half_open += 1;
                let port = h.dst_port;
                self.passive_open(port, (dst, h.dst_port), (src, h.src_port), h);
                return;
            }
        }
        // Nobody's: RST (RFC 9293 §3.10.7.1), never in reply to a RST.
        if h.flags & flags::RST == 0 {
            let seg_len =
                len + u32::from(h.flags & flags::SYN != 0) + u32::from(h.flags & flags::FIN != 0);
            let (seq, ack, fl) = if h.flags & flags::ACK != 0 {
                (h.ack, Seq(0), flags::RST)
            } else {
                (Seq(0), h.seq.add(seg_len), flags::RST | flags::ACK)
            };
            self.send_rst(peer_mac, (dst, h.dst_port), (src, h.src_port), seq, ack, fl);
        }
    }

    fn promote(&mut self, id: ConnId, st: State) {
        let Some(port) = self.parent.remove(&id) else {
            return;
        };
        let Some(l) = self.listeners.get_mut(&port) else {
            return;
        };
        l.half_open = l.half_open.saturating_sub(1);
        if st == State::Closed {
            // Died half-open (RST, SYN-ACK retries): no application knows its id, so it
            // goes now. (Fix: it stayed in the table, and its 4-tuple swallowed every
            // later SYN from the same peer port; caught by the test
            // `rst_in_syn_received_frees_the_listener_slot_and_tuple`.)
            self.remove(id);
            return;
        }
        if l.accept_q.len() >= l.backlog {
            self.counters.accept_overflows += 1;
            self.abort(id);
            return;
        }
        l.accept_q.push_back(id);
    }

    fn passive_open(
        &mut self,
        port: u16,
        local: (IpAddr, u16),
        remote: (IpAddr, u16),
        h: &TcpHeader,
    ) {
        let Some(next_hop) = self.cfg.route.next_hop(remote.0) else {
            return;
        };
        let syn = SynInfo {
            seq: h.seq,
            window: h.window,
            options: h.options,
        };
        match self.open_conn(local, remote, next_hop, Some(&syn)) {
            Some(id) => {
                self.parent.insert(id, port);
            }
            None => {
                if let Some(l) = self.listeners.get_mut(&port) {
                    l.half_open = l.half_open.saturating_sub(1);
                }
            }
        }
    }

    /// A new connection between `local` and `remote` (active without `syn`, passive
    /// answering it), in the table under its 4-tuple; a passive one sends its SYN-ACK at
    /// once. `None` when there is no frame for the SYN.
    fn open_conn(
        &mut self,
        local: (IpAddr, u16),
        remote: (IpAddr, u16),
        next_hop: IpAddr,
        syn: Option<&SynInfo>,
    ) -> Option<ConnId> {
        let (iss, tso) = self.isn(local, remote);
        let id = self.alloc_id();
        let cfg = self.cfg.conn.clone();
        let (mut ctx, conns) = self.split();
        let e = Endpoints {
            local,
            remote,
            next_hop,
            flow: id,
            iss,
            ts_offset: tso,
        };
        let Some(mut c) = Conn::open(&mut ctx, cfg, &e, syn) else {
            self.free_ids.push(id);
            return None;
        };
        if syn.is_some() {
            c.output(&mut ctx);
        }
        let next = c.next_timer();
        conns[id as usize] = Some(c);
        self.by_tuple.insert((remote.0, remote.1, local.1), id);
        if let Some(s) = self.sched.get_mut(id as usize) {
            // A reused slot: its old heap entries must not match.
            s.armed = NOT_ARMED;
        }
        self.after_run(id, next, self.counters.pool_empty);
        Some(id)
    }

    /// A RST for a segment no connection owns, straight back to the sender's MAC.
    fn send_rst(
        &mut self,
        peer_mac: [u8; 6],
        local: (IpAddr, u16),
        remote: (IpAddr, u16),
        seq: Seq,
        ack: Seq,
        fl: u8,
    ) {
        let Some(mut frame) = self.pool.pop() else {
            self.counters.pool_empty += 1;
            return;
        };
        let th = TcpHeader {
            src_port: local.1,
            dst_port: remote.1,
            seq,
            ack,
            flags: fl,
            window: 0,
            checksum: 0,
            urgent: 0,
            options: TcpOptions::default(),
        };
        let mac = self.cfg.mac;
        let n = self.area.build(&mut frame, |buf| {
            write_eth_ip_tcp(buf, peer_mac, mac, local.0, remote.0, &th, 0, &[])
        });
        if n == 0 {
            self.pool.push(frame);
            return;
        }
        self.counters.out_rsts += 1;
        self.counters.out_segs += 1;
        self.refs.send_unheld(&self.area, &frame);
        self.out.push(TxFrame {
            frame,
            flow: u32::MAX,
            rate: None,
        });
    }

    /// Timers and output for the connections an event named since the last poll (and,
    /// every [`StackConfig::sweep_us`] or after a neighbour changed, for all of them);
    /// passive connections that left SYN-RECEIVED here move to their listener's books;
    /// closed connections that the application no longer needs stay until
    /// [`Stack::remove`].
    pub fn poll(&mut self) {
        let now = self.now_us;
        let before = self.neigh_changes();
        // The neighbour table counts in ns (see `Ctx::now_ns`).
        self.neigh
            .poll(now.saturating_mul(1000), &mut self.neigh_out);
        self.sweep_now |= self.neigh_changes() != before;
        // Due timers put their connections on the run list; an entry that no longer
        // matches its slot's deadline is stale (the deadline moved, or the slot emptied).
        while let Some(&Reverse((t, id))) = self.timers.peek() {
            if t > now {
                break;
            }
            self.timers.pop();
            if let Some(s) = self.sched.get_mut(id as usize) {
                if s.armed == t {
                    s.armed = NOT_ARMED;
                    self.wake(id);
                }
            }
        }
        self.release_pool_waiters();
        let mut promote = Vec::new();
        let mut runs = std::mem::take(&mut self.run_q);
        for &id in &runs {
            if let Some(s) = self.sched.get_mut(id as usize) {
                s.queued = false;
            }
            self.counters.conn_runs += 1;
            self.run_conn(id, &mut promote);
            self.wake_app(id);
        }
        runs.clear();
        // Keep the list's allocation; anything woken meanwhile goes after.
        runs.append(&mut self.run_q);
        self.run_q = runs;
        if self.sweep_now || now >= self.next_sweep_us {
            let counted = !self.sweep_now;
            self.sweep_now = false;
            self.next_sweep_us = now.saturating_add(self.cfg.sweep_us);
            self.counters.sweeps += 1;
            for id in 0..self.conns.len() as ConnId {
                // Running a connection twice in a poll is harmless: with no event
                // between, the second run has nothing to send.
                let out = self.out.len() + self.neigh_out.len();
                let was = self.conn(id).map(|c| c.state);
                let due = self
                    .conn(id)
                    .filter(|c| c.state != State::Closed)
                    .and_then(Conn::next_timer)
                    .is_some_and(|t| t <= now);
                self.run_conn(id, &mut promote);
                let changed = self.conn(id).map(|c| c.state) != was;
                if due || changed || self.out.len() + self.neigh_out.len() > out {
                    // Quiet connections stay off the application's list.
                    self.wake_app(id);
                    self.counters.sweep_found += u64::from(counted);
                }
            }
        }
        for (id, st) in promote {
            if self.parent.contains_key(&id) {
                self.promote(id, st);
            }
        }
    }

    /// Timers (if due) and output for one connection.
    fn run_conn(&mut self, id: ConnId, promote: &mut Vec<(ConnId, State)>) {
        let now = self.now_us;
        let empty = self.counters.pool_empty;
        let (mut ctx, conns) = self.split();
        let Some(c) = conns.get_mut(id as usize).and_then(Option::as_mut) else {
            return;
        };
        if c.state == State::Closed {
            return;
        }
        let was = c.state;
        if c.next_timer().is_some_and(|t| t <= now) {
            c.on_timers(&mut ctx);
        }
        c.output(&mut ctx);
        let (st, next) = (c.state, c.next_timer());
        // A half-open connection that left SYN-RECEIVED here (its SYN-ACK retries ran
        // out) goes to its listener's books; input handles the rest.
        if was == State::SynReceived && st != State::SynReceived {
            promote.push((id, st));
        }
        self.after_run(id, next, empty);
    }

    /// Neighbour entries that resolved or failed so far: connections waiting on a next
    /// hop are on no list, so a change walks them all.
    fn neigh_changes(&self) -> u64 {
        let n = self.neigh.counters();
        n.resolved + n.failed
    }

    /// Frames ready for the qdisc (data, ACKs, RSTs), and neighbour frames built into
    /// pool frames.
    pub fn drain_out(&mut self, out: &mut Vec<TxFrame>) {
        for pkt in std::mem::take(&mut self.neigh_out) {
            let Some(mut f) = self.pool.pop() else {
                self.counters.pool_empty += 1;
                continue;
            };
            if self.area.write(&mut f, &pkt) == pkt.len() {
                self.refs.send_unheld(&self.area, &f);
                out.push(TxFrame {
                    frame: f,
                    flow: u32::MAX,
                    rate: None,
                });
            } else {
                self.pool.push(f);
            }
        }
        if self.owner.is_empty() {
            self.owner = vec![u32::MAX; self.area.frame_count() as usize];
        }
        for p in &self.out {
            if let Some(i) = self.area.frame_index(&p.frame) {
                if let Some(o) = self.owner.get_mut(i as usize) {
                    *o = p.flow;
                }
            }
        }
        out.append(&mut self.out);
    }

    /// TSQ: a frame of connection `owner[i]` left the host.
    fn left_host(&mut self, f: &Frame) {
        let Some(i) = self.area.frame_index(f) else {
            return;
        };
        let Some(o) = self.owner.get_mut(i as usize) else {
            return;
        };
        let id = std::mem::replace(o, u32::MAX);
        if let Some(Some(c)) = self.conns.get_mut(id as usize) {
            c.host_frames = c.host_frames.saturating_sub(1);
            // TSQ room, or a frame parked for retransmission: output may go on.
            self.wake(id);
        }
    }

    /// Frames the completion ring returned.
    pub fn completed(&mut self, frames: &mut Vec<Frame>) {
        for f in frames.drain(..) {
            self.left_host(&f);
            self.refs.completed(&self.area, f, &mut self.pool);
        }
    }

    /// A frame the transmit path dropped (qdisc full): as if it had completed.
    pub fn dropped(&mut self, f: Frame) {
        self.left_host(&f);
        self.refs.completed(&self.area, f, &mut self.pool);
    }

    /// Earliest timer of any connection, µs: the heap's top, which may be a deadline
    /// that has since moved later (a wakeup early, never late); `now` when connections
    /// wait on the run list.
    pub fn next_timer(&self) -> Option<u64> {
        let conn = self.timers.peek().map(|&Reverse((t, _))| t);
        let ready = (!self.run_q.is_empty()).then_some(self.now_us);
        let neigh = self.neigh.next_timer_ns().map(|t| t / 1000);
        conn.into_iter().chain(ready).chain(neigh).min()
    }

    /// Tears everything down: all frames back to the pool.
    pub fn shutdown(&mut self) {
        let ids: Vec<ConnId> = self.conn_ids().collect();
        for id in ids {
            self.remove(id);
        }
        self.refs.drain(&mut self.pool);
    }
}

/// An Ethernet header's destination and source MACs (zeros where the frame is shorter).
fn eth_macs(frame: &[u8]) -> [u8; 12] {
    let mut m = [0u8; 12];
    if let Some(b) = frame.get(..12) {
        m.copy_from_slice(b);
    }
    m
}

/// Writes an IP header (IPv4 with DF and TTL 64, or IPv6 with hop limit 64) and the TCP
/// header `th` (checksum field zero) at the start of `out`, for `payload` bytes after
/// them. Returns the header length, None if `out` is too short or the families differ.
pub(crate) fn write_ip_tcp(
    out: &mut [u8],
    src: IpAddr,
    dst: IpAddr,
    th: &TcpHeader,
    payload: u32,
    ip_id: u16,
    flow_label: u32,
) -> Option<usize> {
    let l4_len = u16::try_from(th.header_len() as u32 + payload).ok()?;
    let l3 = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => ip::write_ipv4(
            out,
            &Ipv4Out {
                src: s.octets(),
                dst: d.octets(),
                proto: IPPROTO_TCP,
                payload_len: l4_len,
                id: ip_id,
                df: true,
                ttl: ip::DEFAULT_TTL,
                tos: 0,
            },
        ),
        (IpAddr::V6(s), IpAddr::V6(d)) => ip::write_ipv6(
            out,
            &Ipv6Out {
                src: s.octets(),
                dst: d.octets(),
                next_header: IPPROTO_TCP,
                payload_len: l4_len,
                hop_limit: ip::DEFAULT_TTL,
                traffic_class: 0,
                flow_label,
            },
        ),
        _ => return None,
    };
    if l3 == 0 {
        return None;
    }
    match th.emit(out.get_mut(l3..)?) {
        0 => None,
        t => Some(l3 + t),
    }
}

/// Fills the TCP checksum of `seg` (header and payload) for this address pair.
pub(crate) fn fill_checksum(src: IpAddr, dst: IpAddr, seg: &mut [u8]) {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            tcp::fill_checksum_v4(s.octets(), d.octets(), seg);
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            tcp::fill_checksum_v6(s.octets(), d.octets(), seg);
        }
        _ => {}
    }
}

/// Builds Ethernet + IP + TCP (with `payload`) into `buf` with a full TCP checksum.
/// Returns the frame length, 0 if it does not fit.
#[allow(clippy::too_many_arguments)]
pub fn write_eth_ip_tcp(
    buf: &mut [u8],
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src: IpAddr,
    dst: IpAddr,
    th: &TcpHeader,
    ip_id: u16,
    payload: &[u8],
) -> usize {
    if buf.len() < ETH_HLEN {
        return 0;
    }
    buf[..6].copy_from_slice(&dst_mac);
    buf[6..12].copy_from_slice(&src_mac);
    let et = if src.is_ipv4() {
        ETHERTYPE_IPV4
    } else {
        ETHERTYPE_IPV6
    };
    buf[12..14].copy_from_slice(&et.to_be_bytes());
    let Some(hl) = write_ip_tcp(
        &mut buf[ETH_HLEN..],
        src,
        dst,
        th,
        payload.len() as u32,
        ip_id,
        0,
    ) else {
        return 0;
    };
    let l4 = ETH_HLEN + hl - th.header_len();
    let end = ETH_HLEN + hl + payload.len();
    let Some(dst_payload) = buf.get_mut(ETH_HLEN + hl..end) else {
        return 0;
    };
    dst_payload.copy_from_slice(payload);
    fill_checksum(src, dst, &mut buf[l4..end]);
    end
}

/// Source, destination and TCP header offset of an untagged Ethernet/IPv4 or IPv6 TCP
/// header (`hdr`, as GRO rewrote it: IPv4 options allowed, IPv6 extension headers not).
fn l3_of(hdr: &[u8]) -> Option<(IpAddr, IpAddr, usize)> {
    let et = u16::from_be_bytes([*hdr.get(12)?, *hdr.get(13)?]);
    let ip = hdr.get(ETH_HLEN..)?;
    match et {
        ETHERTYPE_IPV4 if ip.len() >= 20 && ip[9] == IPPROTO_TCP => {
            let ihl = usize::from(ip[0] & 0xf) * 4;
            let src: [u8; 4] = ip[12..16].try_into().ok()?;
            let dst: [u8; 4] = ip[16..20].try_into().ok()?;
            Some((src.into(), dst.into(), ETH_HLEN + ihl))
        }
        ETHERTYPE_IPV6 if ip.len() >= 40 && ip[6] == IPPROTO_TCP => {
            let src: [u8; 16] = ip[8..24].try_into().ok()?;
            let dst: [u8; 16] = ip[24..40].try_into().ok()?;
            Some((src.into(), dst.into(), ETH_HLEN + 40))
        }
        _ => None,
    }
}
