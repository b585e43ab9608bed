//! Packetdrill-style scripts for the TCP state machine, run with no kernel and no socket.
//!
//! A [`Harness`] owns a [`Stack`] over a plain mmap'd UMEM (no AF_XDP socket), plays the
//! peer 198.18.0.2 by writing its segments into pool frames with
//! [`stack::write_eth_ip_tcp`] and handing them to [`Stack::input`], sets the clock, runs
//! [`Stack::poll`], and parses what [`Stack::drain_out`] gives (Ethernet, IPv4, TCP with
//! [`tcp::parse`]), checking every IPv4 header checksum and TCP checksum. Frames the stack
//! sends stay with the harness, as the TX ring and the NIC would hold them, until a script
//! completes them ([`Stack::completed`], the completion ring): completion is explicit so a
//! script can check that a frame is not recycled before its data is ACKed. After every
//! drain and completion the harness checks that every UMEM frame is in exactly one place:
//! pool + held (parked on a retransmit queue, or in flight with the harness) + receive
//! queues = all frames.
//!
//! Each script shows the exchange in packetdrill's notation: `<` from the peer, `>` from
//! skiff, sequence numbers relative to the sender's ISN (`0:0(0)` is the SYN, data starts
//! at 1), `ack` relative to the other side's ISN, `+0.2` the clock moving on 200 ms.
//!
//! What is expected is Linux's behaviour as packetdrill's scripts for it show it
//! (`tcp_input.c`, `tcp_output.c`, `tcp_timer.c`) and the RFCs the module docs name, with
//! skiff's documented differences: pure ACKs carry SACK blocks but data segments do not,
//! no limited transmit (RFC 3042), and the advertised window opens to the free receive
//! buffer at once rather than growing with `rcv_ssthresh`.

use std::{
    net::{IpAddr, Ipv4Addr},
    sync::Arc,
};

use proptest::prelude::*;

use super::{
    conn::{CaState, CloseReason, ConnConfig, State},
    stack::{self, ConnId, Stack, StackConfig},
    Seq,
};
use crate::{
    rx::gro::{Gro, GroConfig, GroCounters, GroPacket},
    sys::{Frame, UmemArea, UmemGeometry},
    tx::ip::Route,
    wire::{
        arp::{self, ArpOp, ArpRepr, NeighFrame, NeighMsg},
        checksum,
        tcp::{self, flags::*, TcpHeader, TcpOptions},
        ETHERTYPE_ARP, ETHERTYPE_IPV4, IPPROTO_TCP,
    },
};

/// Our MAC: locally administered (bit 1 of the first byte), unicast.
const OUR_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
/// The peer's MAC.
const PEER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
/// Our address, in 198.18.0.0/15, the benchmarking range (RFC 2544 §C.2.2).
const OUR_IP: [u8; 4] = [198, 18, 0, 1];
/// The peer, on our /24.
const PEER_IP: [u8; 4] = [198, 18, 0, 2];
/// UMEM frames: the geometry the stack runs with in the tests (1024 × 2048 B = 2 MiB).
const FRAMES: usize = 1024;
/// Our listening port.
const LPORT: u16 = 8080;
/// The port our active opens go to.
const RPORT: u16 = 80;
/// First port the peer connects from.
const PPORT: u16 = 40000;
/// The clock at the start: 10 s. Not 0, which the retransmit queue reads as "never sent",
/// and past the 500 ms challenge-ACK rate limit, which starts at time 0.
const T0: u64 = 10_000_000;
/// The peer's ISN: 4 KiB below 2^32, so the peer's sequence numbers wrap in longer scripts.
const PEER_ISS: u32 = 0xffff_f000;
/// The peer's TSval clock at time 0 (ms); any value works, distinct from ours helps reading.
const PEER_TS_BASE: u32 = 7_000;
/// The window field of the peer's ACKs: 502, what Linux advertises with a 64 KiB buffer
/// and window scale 7 (502 × 128 = 64256).
const PEER_WIN: u16 = 502;
/// Sending MSS with timestamps: 1460 − 12 (RFC 7323 §3.2 option, 10 bytes + 2 NOPs).
const MSS_TS: usize = 1448;
/// Sending MSS without timestamps: 1500 − 20 − 20.
const MSS_NO_TS: usize = 1460;
/// Our window scale, what Linux offers for a 4–6 MiB `tcp_rmem[2]`.
const WSCALE: u8 = 7;
/// Default receive buffer (ConnConfig::default): 4 MiB.
const RCVBUF: u32 = 4 << 20;
/// Minimum RTO (RFC 6298 §2.4 says 1 s; Linux's `TCP_RTO_MIN` is 200 ms).
const RTO_MIN_US: u64 = 200_000;
/// Initial RTO before an RTT sample (RFC 6298 §2.1, `TCP_TIMEOUT_INIT`).
const RTO_INIT_US: u64 = 1_000_000;

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// `n` bytes of a pattern that differs with `seed` and position, so misordered or
/// misplaced bytes show.
fn data(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u32).wrapping_mul(31).wrapping_add(u32::from(seed)) as u8)
        .collect()
}

/// What the peer offers in its SYN (or SYN-ACK).
#[derive(Debug, Clone, Copy)]
struct PeerOpts {
    sack: bool,
    ts: bool,
    wscale: bool,
}

/// Linux's SYN: `<mss 1460,sackOK,TS val … ecr 0,nop,wscale 7>`.
const ALL_OPTS: PeerOpts = PeerOpts {
    sack: true,
    ts: true,
    wscale: true,
};

/// One frame the stack sent, parsed.
#[derive(Clone)]
struct Pkt {
    /// Its UMEM frame index.
    idx: u32,
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    ip_id: u16,
    df: bool,
    ttl: u8,
    src: [u8; 4],
    dst: [u8; 4],
    th: Option<TcpHeader>,
    payload: Vec<u8>,
    arp: Option<ArpRepr>,
}

/// packetdrill's line for the segment, absolute numbers: `F. 5:5(0) ack 7 win 9 <...>`.
impl std::fmt::Debug for Pkt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(a) = &self.arp {
            return write!(f, "[{}] ARP {a:?}", self.idx);
        }
        let Some(t) = &self.th else {
            return write!(f, "[{}] ?", self.idx);
        };
        let mut fl = String::new();
        for (bit, c) in [(SYN, 'S'), (FIN, 'F'), (RST, 'R'), (PSH, 'P')] {
            if t.flags & bit != 0 {
                fl.push(c);
            }
        }
        if t.flags & ACK != 0 {
            fl.push('.');
        }
        let n = self.payload.len() as u32;
        write!(
            f,
            "[{}] {fl} {}:{}({n}) ack {} win {} {:?}",
            self.idx,
            t.seq.0,
            t.seq.0.wrapping_add(n),
            t.ack.0,
            t.window,
            t.options
        )
    }
}

impl Pkt {
    fn th(&self) -> &TcpHeader {
        self.th
            .as_ref()
            .unwrap_or_else(|| panic!("a TCP segment, not {self:?}"))
    }
    fn flags(&self) -> u8 {
        self.th().flags
    }
    fn win(&self) -> u16 {
        self.th().window
    }
    fn ts(&self) -> (u32, u32) {
        self.th()
            .options
            .timestamps
            .unwrap_or_else(|| panic!("timestamps on {self:?}"))
    }
    fn sacks(&self) -> Vec<(u32, u32)> {
        self.th()
            .options
            .sack_blocks()
            .iter()
            .map(|&(s, e)| (s.0, e.0))
            .collect()
    }
}

/// Parses a frame the stack sent; panics with context if anything is malformed.
fn parse_out(area: &UmemArea, frame: &Frame) -> Pkt {
    let idx = area.frame_index(frame).expect("a frame of our area");
    let b = area.bytes(frame);
    assert!(b.len() >= 14, "frame {idx} shorter than Ethernet: {b:?}");
    let mut p = Pkt {
        idx,
        dst_mac: b[0..6].try_into().expect("6 bytes"),
        src_mac: b[6..12].try_into().expect("6 bytes"),
        ip_id: 0,
        df: false,
        ttl: 0,
        src: [0; 4],
        dst: [0; 4],
        th: None,
        payload: Vec::new(),
        arp: None,
    };
    match be16(b, 12) {
        ETHERTYPE_ARP => {
            p.arp = Some(ArpRepr::parse(&b[14..]).expect("a valid ARP message"));
        }
        ETHERTYPE_IPV4 => {
            let ip = &b[14..];
            assert!(ip.len() >= 20, "frame {idx}: IPv4 header truncated");
            assert_eq!(ip[0], 0x45, "frame {idx}: IPv4 without options");
            assert_eq!(
                checksum::checksum(&ip[..20], 0),
                0,
                "frame {idx}: IPv4 header checksum"
            );
            let tot = usize::from(be16(ip, 2));
            assert_eq!(tot, ip.len(), "frame {idx}: IP total length is the frame's");
            assert_eq!(ip[9], IPPROTO_TCP, "frame {idx}: protocol");
            p.ip_id = be16(ip, 4);
            p.df = ip[6] & 0x40 != 0;
            p.ttl = ip[8];
            p.src = ip[12..16].try_into().expect("4 bytes");
            p.dst = ip[16..20].try_into().expect("4 bytes");
            let seg = &ip[20..tot];
            assert!(
                tcp::checksum_ok_v4(p.src, p.dst, seg),
                "frame {idx}: TCP checksum"
            );
            let s = tcp::parse(seg).expect("a TCP segment we sent parses");
            p.th = Some(s.header);
            p.payload = s.payload.to_vec();
        }
        other => panic!("frame {idx}: unexpected EtherType {other:#06x}"),
    }
    p
}

/// One connection as the peer sees it.
#[derive(Debug, Clone, Copy)]
struct Tcb {
    id: ConnId,
    /// Our port.
    lport: u16,
    /// The peer's port.
    pport: u16,
    /// Our ISN.
    iss: u32,
    /// The peer's ISN.
    irs: u32,
    /// Options negotiated.
    opts: PeerOpts,
}

impl Tcb {
    /// Our sequence number, relative to our ISN.
    fn seq(&self, p: &Pkt) -> u32 {
        p.th().seq.0.wrapping_sub(self.iss)
    }
    /// Our ACK, relative to the peer's ISN.
    fn ack(&self, p: &Pkt) -> u32 {
        p.th().ack.0.wrapping_sub(self.irs)
    }
    /// Our sequence number `rel` as on the wire (for SACK blocks).
    fn our(&self, rel: u32) -> Seq {
        Seq(self.iss).add(rel)
    }
}

/// The stack, the clock, and the frames in flight.
struct Harness {
    stack: Stack,
    now: u64,
    /// Frames drained from the stack and not completed: the TX ring and the NIC.
    wire: Vec<Frame>,
    /// The last TSval we sent: what the peer echoes.
    echo: u32,
    /// The peer's IPv4 ID counter.
    peer_ip_id: u16,
    /// The next port the peer connects from.
    next_pport: u16,
    /// Pool frames a script took away (as the fill ring takes them in the poller).
    lent: Vec<Frame>,
}

impl Harness {
    fn new() -> Harness {
        Harness::build(|_| {}, true)
    }

    fn with(tune: impl FnOnce(&mut StackConfig)) -> Harness {
        Harness::build(tune, true)
    }

    fn build(tune: impl FnOnce(&mut StackConfig), neighbour: bool) -> Harness {
        let (area, frames) = UmemArea::new(UmemGeometry {
            frames: FRAMES as u32,
            frame_size: 2048,
            fill_size: 1024,
            comp_size: 1024,
        })
        .expect("mmap a UMEM");
        assert_eq!(frames.len(), FRAMES);
        let mut cfg = StackConfig {
            mac: OUR_MAC,
            addr: IpAddr::from(OUR_IP),
            route: Route::v4(OUR_IP, 24, None),
            conn: ConnConfig {
                // Pacing only tags frames with a rate for the qdisc; the scripts have none.
                pacing: false,
                ..ConnConfig::default()
            },
            max_syn_backlog: 256,
            reserve_frames: 64,
            // Every poll walks all connections too and counts the work no event had
            // announced; `out` asserts there is none.
            sweep_us: 0,
        };
        tune(&mut cfg);
        let mut stack = Stack::new(cfg, Arc::new(area), frames);
        stack.set_now(T0);
        if neighbour {
            stack.add_neighbour(IpAddr::from(PEER_IP), PEER_MAC);
        }
        Harness {
            stack,
            now: T0,
            wire: Vec::new(),
            echo: 0,
            peer_ip_id: 0x4000,
            next_pport: PPORT,
            lent: Vec::new(),
        }
    }

    fn wait_ms(&mut self, ms: u64) {
        self.wait_us(ms * 1000);
    }

    fn wait_us(&mut self, us: u64) {
        self.now += us;
        self.stack.set_now(self.now);
    }

    /// The peer's TSval now: a millisecond clock.
    fn peer_ts(&self) -> u32 {
        (self.now / 1000) as u32 + PEER_TS_BASE
    }

    /// A frame from the peer, as bytes, into a pool frame and into the stack.
    fn inject_bytes(&mut self, b: &[u8]) {
        let mut f = self
            .stack
            .pool_mut()
            .pop()
            .expect("a free frame for the peer's segment");
        assert_eq!(self.stack.area().write(&mut f, b), b.len());
        self.stack.input(f);
    }

    /// The peer's frame for `th` + `payload`, as bytes.
    fn frame_bytes(&mut self, th: &TcpHeader, payload: &[u8]) -> Vec<u8> {
        self.peer_ip_id = self.peer_ip_id.wrapping_add(1);
        let mut b = vec![0u8; 14 + 40 + 60 + payload.len()];
        let n = stack::write_eth_ip_tcp(
            &mut b,
            OUR_MAC,
            PEER_MAC,
            IpAddr::from(PEER_IP),
            IpAddr::from(OUR_IP),
            th,
            self.peer_ip_id,
            payload,
        );
        assert!(n > 0, "the peer's segment fits");
        b.truncate(n);
        b
    }

    fn inject(&mut self, th: &TcpHeader, payload: &[u8]) {
        let b = self.frame_bytes(th, payload);
        self.inject_bytes(&b);
    }

    /// Peer frames received in one poll round through GRO, as the poller does: merged
    /// packets to [`Stack::input_merged`], the rest to [`Stack::input`]. Returns GRO's
    /// counters.
    fn inject_gro(&mut self, frames: &[Vec<u8>]) -> GroCounters {
        let mut gro: Gro<Frame> = Gro::new(GroConfig::default());
        let mut out = Vec::new();
        for b in frames {
            let mut f = self.stack.pool_mut().pop().expect("a free frame");
            assert_eq!(self.stack.area().write(&mut f, b), b.len());
            gro.receive_with(f, self.stack.area(), |a, f| a.bytes(f), None, &mut out);
        }
        gro.flush(&mut out);
        for p in out {
            match p {
                GroPacket::Single(f) => self.stack.input(f),
                GroPacket::Merged(m) => gro.recycle(self.stack.input_merged(m)),
            }
        }
        *gro.counters()
    }

    /// A peer segment on `c`: `seq` relative to the peer's ISN, `ack` to ours, the peer's
    /// usual window and, if negotiated, timestamps.
    fn seg(&self, c: &Tcb, flags: u8, seq: u32, ack: u32) -> TcpHeader {
        let mut options = TcpOptions::default();
        if c.opts.ts {
            options.timestamps = Some((self.peer_ts(), self.echo));
        }
        TcpHeader {
            src_port: c.pport,
            dst_port: c.lport,
            seq: Seq(c.irs).add(seq),
            ack: if flags & ACK != 0 {
                Seq(c.iss).add(ack)
            } else {
                Seq(0)
            },
            flags,
            window: PEER_WIN,
            checksum: 0,
            urgent: 0,
            options,
        }
    }

    /// The peer's SYN (or SYN-ACK) options.
    fn syn_options(&self, o: PeerOpts, ecr: u32) -> TcpOptions {
        TcpOptions {
            mss: Some(1460),
            sack_permitted: o.sack,
            timestamps: o.ts.then(|| (self.peer_ts(), ecr)),
            wscale: o.wscale.then_some(WSCALE),
            ..TcpOptions::default()
        }
    }

    /// Poll (timers and output), then drain. Every poll also walks the whole table
    /// (`sweep_us: 0`): that walk must find nothing the event lists missed.
    fn out(&mut self) -> Vec<Pkt> {
        self.stack.poll();
        assert_eq!(
            self.stack.counters().sweep_found,
            0,
            "a connection had work that no event announced"
        );
        self.drain()
    }

    /// What the stack has sent, parsed; the frames stay in flight with the harness.
    fn drain(&mut self) -> Vec<Pkt> {
        let mut v = Vec::new();
        self.stack.drain_out(&mut v);
        let mut pkts = Vec::new();
        for tx in v {
            let p = parse_out(self.stack.area(), &tx.frame);
            if let Some((val, _)) = p.th.as_ref().and_then(|t| t.options.timestamps) {
                self.echo = val;
            }
            if p.th.as_ref().is_some_and(|t| t.flags & RST == 0) {
                // (A RST answers whoever sent the segment: mutated sources included.)
                assert_eq!(p.dst_mac, PEER_MAC, "TCP goes to the peer's MAC");
                assert_eq!(p.src_mac, OUR_MAC);
                assert_eq!((p.src, p.dst), (OUR_IP, PEER_IP));
                assert!(p.df, "TCP sets DF");
                assert_eq!(p.ttl, 64);
            }
            pkts.push(p);
            self.wire.push(tx.frame);
        }
        self.check_frames();
        pkts
    }

    /// The completion ring returns every frame in flight.
    fn complete_all(&mut self) {
        let mut v = std::mem::take(&mut self.wire);
        self.stack.completed(&mut v);
        self.check_frames();
    }

    /// The completion ring returns frame `idx`.
    fn complete(&mut self, idx: u32) {
        let at = self
            .wire
            .iter()
            .position(|f| self.stack.area().frame_index(f) == Some(idx))
            .unwrap_or_else(|| panic!("frame {idx} is in flight"));
        let f = self.wire.swap_remove(at);
        self.stack.completed(&mut vec![f]);
        self.check_frames();
    }

    fn in_flight(&self, idx: u32) -> bool {
        self.wire
            .iter()
            .any(|f| self.stack.area().frame_index(f) == Some(idx))
    }

    fn pool_len(&mut self) -> usize {
        self.stack.pool_mut().len()
    }

    /// Every frame in exactly one place: the pool, parked on a retransmit queue, in flight
    /// (with the harness), or on a receive queue.
    fn check_frames(&mut self) {
        let live = self.stack.frames_live() as usize;
        let parked = self.stack.frames_parked();
        let rx = self.stack.rx_frames();
        let pool = self.pool_len();
        assert_eq!(
            live,
            parked + self.wire.len(),
            "held frames: parked {parked} + in flight {}",
            self.wire.len()
        );
        let lent = self.lent.len();
        assert_eq!(
            pool + live + rx + lent,
            FRAMES,
            "pool {pool} + held {live} + receive queues {rx} + lent {lent}"
        );
    }

    fn state(&self, c: &Tcb) -> State {
        self.stack.conn(c.id).expect("the connection").state()
    }

    fn conn(&self, c: &Tcb) -> &super::conn::Conn {
        self.stack.conn(c.id).expect("the connection")
    }

    fn read_all(&mut self, c: &Tcb) -> Vec<u8> {
        let mut buf = vec![0u8; 1 << 20];
        let n = self.stack.read(c.id, &mut buf);
        buf.truncate(n);
        self.check_frames();
        buf
    }

    fn take_pport(&mut self) -> u16 {
        let p = self.next_pport;
        self.next_pport += 1;
        p
    }

    /// Passive open on [`LPORT`] with the peer offering `o`, the handshake's ACK `rtt_ms`
    /// after the SYN-ACK (an RTT sample); every frame completed.
    fn passive_open(&mut self, o: PeerOpts, rtt_ms: u64) -> Tcb {
        let _ = self.stack.listen(LPORT, 16);
        let mut c = Tcb {
            id: ConnId::MAX,
            lport: LPORT,
            pport: self.take_pport(),
            iss: 0,
            irs: PEER_ISS,
            opts: o,
        };
        // < S 0:0(0) win 65535 <mss 1460,sackOK,TS val P ecr 0,nop,wscale 7>
        let mut th = self.seg(&c, SYN, 0, 0);
        th.window = 65535;
        th.options = self.syn_options(o, 0);
        self.inject(&th, &[]);
        // > S. 0:0(0) ack 1 <...>
        let out = self.drain();
        assert_eq!(out.len(), 1, "one SYN-ACK: {out:?}");
        assert_eq!(out[0].flags(), SYN | ACK);
        c.iss = out[0].th().seq.0;
        // +rtt
        self.wait_ms(rtt_ms);
        // < . 1:1(0) ack 1 win 502
        let th = self.seg(&c, ACK, 1, 1);
        self.inject(&th, &[]);
        let out = self.out();
        assert!(
            out.is_empty(),
            "nothing answers the handshake's ACK: {out:?}"
        );
        c.id = self
            .stack
            .accept(LPORT)
            .expect("accept() after the handshake");
        assert_eq!(self.state(&c), State::Established);
        self.complete_all();
        c
    }

    /// Active open to the peer's [`RPORT`], the peer answering with `o` and a window of
    /// 65535 (unscaled, as every SYN's); every frame completed.
    fn active_open(&mut self, o: PeerOpts) -> Tcb {
        let id = self
            .stack
            .connect((IpAddr::from(PEER_IP), RPORT))
            .expect("connect");
        // > S 0:0(0) win 65535 <mss 1460,sackOK,TS val X ecr 0,nop,wscale 7>
        let out = self.out();
        assert_eq!(out.len(), 1, "one SYN: {out:?}");
        let syn = &out[0];
        assert_eq!(syn.flags(), SYN);
        let c = Tcb {
            id,
            lport: syn.th().src_port,
            pport: RPORT,
            iss: syn.th().seq.0,
            irs: PEER_ISS,
            opts: o,
        };
        // < S. 0:0(0) ack 1 win 65535 <mss 1460,sackOK,TS val P ecr X,nop,wscale 7>
        let mut th = self.seg(&c, SYN | ACK, 0, 1);
        th.window = 65535;
        th.options = self.syn_options(o, self.echo);
        self.inject(&th, &[]);
        // > . 1:1(0) ack 1
        let out = self.out();
        assert_eq!(out.len(), 1, "one ACK: {out:?}");
        assert_eq!(out[0].flags(), ACK);
        assert_eq!((c.seq(&out[0]), c.ack(&out[0])), (1, 1));
        assert_eq!(self.state(&c), State::Established);
        self.complete_all();
        c
    }

    /// write(`segs` × 1448) of pattern `seed`: the first 10 go out (the initial cwnd) and
    /// complete. Returns the payload and those 10 segments.
    fn write_ten_out(&mut self, c: &Tcb, segs: usize, seed: u8) -> (Vec<u8>, Vec<Pkt>) {
        let payload = data(segs * MSS_TS, seed);
        self.stack.write(c.id, &payload);
        let sent = self.out();
        assert_eq!(sent.len(), 10, "the initial cwnd: {sent:?}");
        self.complete_all();
        (payload, sent)
    }

    /// The peer ACKs our data up to `ack` (relative), window `win`, with SACK `blocks`.
    fn ack(&mut self, c: &Tcb, ack: u32, win: u16, blocks: &[(u32, u32)]) {
        let mut th = self.seg(c, ACK, 1, ack);
        th.window = win;
        for &(s, e) in blocks {
            th.options.push_sack(c.our(s), c.our(e));
        }
        self.inject(&th, &[]);
    }
}

// ----- 1. passive open -----

#[test]
fn passive_open_all_options_quick_ack_and_read() {
    let mut h = Harness::new();
    h.stack.listen(LPORT, 16).expect("listen");
    let mut c = Tcb {
        id: ConnId::MAX,
        lport: LPORT,
        pport: PPORT,
        iss: 0,
        irs: PEER_ISS,
        opts: ALL_OPTS,
    };
    // < S 0:0(0) win 65535 <mss 1460,sackOK,TS val P ecr 0,nop,wscale 7>
    let mut syn = h.seg(&c, SYN, 0, 0);
    syn.window = 65535;
    syn.options = h.syn_options(ALL_OPTS, 0);
    let peer_syn_ts = h.peer_ts();
    h.inject(&syn, &[]);
    // > S. 0:0(0) ack 1 win 65535 <mss 1460,sackOK,TS val X ecr P,nop,wscale 7>
    let out = h.drain();
    assert_eq!(out.len(), 1, "{out:?}");
    let sa = &out[0];
    c.iss = sa.th().seq.0;
    assert_eq!(sa.flags(), SYN | ACK);
    assert_eq!((sa.th().src_port, sa.th().dst_port), (LPORT, c.pport));
    assert_eq!(c.ack(sa), 1);
    assert_eq!(
        sa.win(),
        65535,
        "a SYN's window is never scaled (RFC 7323 §2.2)"
    );
    let o = sa.th().options;
    assert_eq!(o.mss, Some(1460));
    assert!(o.sack_permitted);
    assert_eq!(
        o.timestamps.map(|t| t.1),
        Some(peer_syn_ts),
        "TS ecr echoes the SYN"
    );
    assert_eq!(o.wscale, Some(WSCALE));
    assert!(sa.payload.is_empty());
    let synack_ts = sa.ts().0;
    let synack_frame = sa.idx;
    assert!(
        h.stack.accept(LPORT).is_none(),
        "not accepted before the ACK"
    );
    h.complete(synack_frame);
    assert!(
        h.stack.frames_parked() == 1,
        "the SYN-ACK stays held until it is ACKed"
    );

    // +0.01
    h.wait_ms(10);
    // < . 1:1(0) ack 1 win 502 <nop,nop,TS val P+10 ecr X>
    let ack = h.seg(&c, ACK, 1, 1);
    h.inject(&ack, &[]);
    assert!(h.out().is_empty());
    c.id = h.stack.accept(LPORT).expect("accept()");
    assert_eq!(h.state(&c), State::Established);
    assert_eq!(h.stack.counters().passive_opens, 1);
    assert_eq!(
        h.stack.frames_live(),
        0,
        "the SYN-ACK's frame is free once ACKed"
    );
    assert_eq!(h.pool_len(), FRAMES);
    let info = h.conn(&c).info();
    assert_eq!(
        info.snd_wnd,
        u32::from(PEER_WIN) << WSCALE,
        "peer window scaled"
    );
    assert_eq!(info.mss as usize, MSS_TS);
    assert_eq!(
        info.srtt_us,
        Some(10_000),
        "the handshake gives an RTT sample"
    );

    // < P. 1:101(100) ack 1 win 502 <nop,nop,TS val P+10 ecr X>
    let payload = data(100, 1);
    let th = h.seg(&c, PSH | ACK, 1, 1);
    let data_ts = h.peer_ts();
    h.inject(&th, &payload);
    // > . 1:1(0) ack 101 win 32767 <nop,nop,TS val X' ecr P+10>   (quick ACK)
    let out = h.drain();
    assert_eq!(out.len(), 1, "an immediate ACK: {out:?}");
    let a = &out[0];
    assert_eq!(a.flags(), ACK);
    assert_eq!((c.seq(a), c.ack(a)), (1, 101));
    assert!(a.payload.is_empty());
    // The window field is scaled: (4 MiB − 100 bytes queued) >> 7.
    assert_eq!(u32::from(a.win()), (RCVBUF - 100) >> WSCALE);
    assert_eq!(a.ts().1, data_ts);
    assert!(
        a.ts().0 >= synack_ts.wrapping_add(10),
        "our TS clock runs in ms"
    );
    assert_eq!(h.conn(&c).recv_available(), 100);
    assert_eq!(h.read_all(&c), payload);
    assert_eq!(h.conn(&c).recv_available(), 0);
    h.complete_all();
    assert_eq!(h.pool_len(), FRAMES, "every frame back");
}

#[test]
fn passive_open_without_options_uses_defaults() {
    // < S 0:0(0) win 65535            (no options at all)
    // > S. 0:0(0) ack 1 win 65535 <mss 1460>
    // < . 1:1(0) ack 1 win 65535
    let mut h = Harness::new();
    h.stack.listen(LPORT, 16).expect("listen");
    let none = PeerOpts {
        sack: false,
        ts: false,
        wscale: false,
    };
    let mut c = Tcb {
        id: 0,
        lport: LPORT,
        pport: PPORT,
        iss: 0,
        irs: PEER_ISS,
        opts: none,
    };
    let mut syn = h.seg(&c, SYN, 0, 0);
    syn.window = 65535;
    h.inject(&syn, &[]);
    let out = h.drain();
    let o = out[0].th().options;
    assert_eq!(o.mss, Some(1460));
    assert!(!o.sack_permitted && o.timestamps.is_none() && o.wscale.is_none());
    c.iss = out[0].th().seq.0;
    let mut ack = h.seg(&c, ACK, 1, 1);
    ack.window = 65535;
    h.inject(&ack, &[]);
    c.id = h.stack.accept(LPORT).expect("accept");
    h.complete_all();
    // No MSS option from the peer: 536 (RFC 9293 §3.7.1).
    assert_eq!(h.conn(&c).info().mss, 536);
    assert_eq!(h.conn(&c).info().snd_wnd, 65535, "no scaling");
    // < P. 1:11(10) ack 1
    // > . 1:1(0) ack 11 win 65535     (no scale: the field is the window, capped)
    let th = h.seg(&c, PSH | ACK, 1, 1);
    h.inject(&th, &data(10, 3));
    let out = h.drain();
    assert_eq!(c.ack(&out[0]), 11);
    assert_eq!(out[0].win(), 65535);
    assert!(out[0].th().options.timestamps.is_none());
}

#[test]
fn duplicate_syn_in_syn_received_resends_the_same_syn_ack_frame() {
    // < S 0:0(0) <...>
    // > S. 0:0(0) ack 1 <...>
    // < S 0:0(0) <...>               (our SYN-ACK was lost)
    // > S. 0:0(0) ack 1 <...>        (same frame, no copy)
    let mut h = Harness::new();
    h.stack.listen(LPORT, 16).expect("listen");
    let c = Tcb {
        id: 0,
        lport: LPORT,
        pport: PPORT,
        iss: 0,
        irs: PEER_ISS,
        opts: ALL_OPTS,
    };
    let mut syn = h.seg(&c, SYN, 0, 0);
    syn.options = h.syn_options(ALL_OPTS, 0);
    h.inject(&syn, &[]);
    let first = h.drain();
    assert_eq!(first.len(), 1);
    h.complete_all();
    h.wait_ms(100);
    let mut syn = h.seg(&c, SYN, 0, 0);
    syn.options = h.syn_options(ALL_OPTS, 0);
    h.inject(&syn, &[]);
    let again = h.out();
    assert_eq!(again.len(), 1, "{again:?}");
    assert_eq!(again[0].flags(), SYN | ACK);
    assert_eq!(again[0].th().seq, first[0].th().seq);
    assert_eq!(again[0].idx, first[0].idx, "the same frame goes out again");
    assert_eq!(h.stack.counters().retrans_segs, 1);
}

// ----- 2. active open, data, GSO -----

#[test]
fn active_open_then_write_mss_1448_psh_on_last() {
    let mut h = Harness::new();
    let id = h
        .stack
        .connect((IpAddr::from(PEER_IP), RPORT))
        .expect("connect");
    // > S 0:0(0) win 65535 <mss 1460,sackOK,TS val X ecr 0,nop,wscale 7>
    let out = h.out();
    assert_eq!(out.len(), 1, "{out:?}");
    let syn = &out[0];
    assert_eq!(syn.flags(), SYN);
    assert_eq!(syn.th().ack, Seq(0));
    assert_eq!(syn.win(), 65535);
    let o = syn.th().options;
    assert_eq!(o.mss, Some(1460));
    assert!(o.sack_permitted);
    assert_eq!(o.timestamps.map(|t| t.1), Some(0), "TS ecr 0 on a SYN");
    assert_eq!(o.wscale, Some(WSCALE));
    assert_eq!(syn.th().dst_port, RPORT);
    let lport = syn.th().src_port;
    assert!((32768..=60999).contains(&lport), "an ephemeral port");
    let c = Tcb {
        id,
        lport,
        pport: RPORT,
        iss: syn.th().seq.0,
        irs: PEER_ISS,
        opts: ALL_OPTS,
    };
    assert_eq!(h.state(&c), State::SynSent);
    // +0.005
    h.wait_ms(5);
    // < S. 0:0(0) ack 1 win 65535 <mss 1460,sackOK,TS val P ecr X,nop,wscale 7>
    let mut sa = h.seg(&c, SYN | ACK, 0, 1);
    sa.window = 65535;
    sa.options = h.syn_options(ALL_OPTS, h.echo);
    let peer_ts = h.peer_ts();
    h.inject(&sa, &[]);
    // > . 1:1(0) ack 1 win 32768 <nop,nop,TS val X ecr P>
    let out = h.drain();
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].flags(), ACK);
    assert_eq!((c.seq(&out[0]), c.ack(&out[0])), (1, 1));
    assert_eq!(out[0].ts().1, peer_ts);
    assert_eq!(u32::from(out[0].win()), RCVBUF >> WSCALE);
    assert_eq!(h.state(&c), State::Established);
    assert_eq!(h.stack.counters().active_opens, 1);
    assert_eq!(
        h.conn(&c).info().snd_wnd,
        65535,
        "the SYN-ACK's window, unscaled"
    );
    h.complete_all();

    // write(4000)
    let payload = data(4000, 9);
    assert_eq!(h.stack.write(c.id, &payload), 4000);
    // > . 1:1449(1448) ack 1 <nop,nop,TS val X ecr P>
    // > . 1449:2897(1448) ack 1 <nop,nop,TS val X ecr P>
    // > P. 2897:4001(1104) ack 1 <nop,nop,TS val X ecr P>
    let out = h.out();
    assert_eq!(out.len(), 3, "{out:?}");
    let mut got = Vec::new();
    for (i, p) in out.iter().enumerate() {
        assert_eq!(c.seq(p), 1 + (i * MSS_TS) as u32);
        assert_eq!(c.ack(p), 1);
        assert_eq!(p.ts().1, peer_ts);
        let last = i == 2;
        assert_eq!(
            p.flags(),
            if last { PSH | ACK } else { ACK },
            "PSH only on the last"
        );
        assert_eq!(
            p.payload.len(),
            if last { 4000 - 2 * MSS_TS } else { MSS_TS }
        );
        assert_eq!(
            p.ip_id,
            out[0].ip_id.wrapping_add(i as u16),
            "IP IDs consecutive"
        );
        got.extend_from_slice(&p.payload);
    }
    assert_eq!(got, payload);
    // The frames are held until ACKed, whether or not the NIC is done with them.
    h.complete_all();
    assert_eq!(h.stack.frames_parked(), 3);
    assert_eq!(h.pool_len(), FRAMES - 3);
    // < . 1:1(0) ack 4001 win 502
    h.ack(&c, 4001, PEER_WIN, &[]);
    assert!(h.out().is_empty());
    assert_eq!(h.pool_len(), FRAMES);
    assert!(h.conn(&c).all_acked());
    assert_eq!(h.conn(&c).counters().bytes_acked, 4000);
}

#[test]
fn gso_large_write_consecutive_seq_and_ip_ids() {
    let mut h = Harness::new();
    let c = h.active_open(ALL_OPTS);
    // write(30 × 1448): cwnd 10 (RFC 6928) lets 10 go, in one super-segment.
    let payload = data(30 * MSS_TS, 4);
    assert_eq!(h.stack.write(c.id, &payload), payload.len());
    // > . 1:1449(1448) ack 1 ... > . 13033:14481(1448) ack 1   (10 frames, no PSH)
    let out = h.out();
    assert_eq!(out.len(), 10, "{out:?}");
    for (i, p) in out.iter().enumerate() {
        assert_eq!(c.seq(p), 1 + (i * MSS_TS) as u32, "consecutive seq");
        assert_eq!(
            p.ip_id,
            out[0].ip_id.wrapping_add(i as u16),
            "consecutive IP IDs"
        );
        assert_eq!(p.flags(), ACK, "no PSH: more of the write is queued");
        assert_eq!(p.payload, payload[i * MSS_TS..(i + 1) * MSS_TS]);
    }
    assert_eq!(h.stack.counters().gso_super, 1);
    assert_eq!(h.stack.counters().gso_segs, 10);
    let next_id = out[9].ip_id.wrapping_add(1);
    h.complete_all();
    // +0.01
    h.wait_ms(10);
    // < . 1:1(0) ack 14481 win 2000      (slow start: cwnd 10 → 20)
    h.ack(&c, 1 + 10 * MSS_TS as u32, 2000, &[]);
    // > . 14481:15929(1448) ack 1 ... > P. 42001:43441(1448) ack 1   (20 frames)
    let out = h.out();
    assert_eq!(out.len(), 20, "{out:?}");
    for (i, p) in out.iter().enumerate() {
        assert_eq!(c.seq(p), 1 + ((10 + i) * MSS_TS) as u32);
        assert_eq!(p.ip_id, next_id.wrapping_add(i as u16), "IDs continue");
        assert_eq!(p.flags(), if i == 19 { PSH | ACK } else { ACK });
    }
    assert_eq!(h.conn(&c).info().cwnd, 20);
}

#[test]
fn notsent_lowat_takes_whole_segments_and_reopens_below_half() {
    // TCP_NOTSENT_LOWAT of 20 segments; cwnd 10 sends 10 of what is written.
    let lowat = 20 * MSS_TS;
    let mut h = Harness::with(|cfg| cfg.conn.notsent_lowat = lowat as u32);
    let c = h.active_open(ALL_OPTS);
    assert_eq!(
        h.conn(&c).send_space() as usize,
        lowat,
        "nothing unsent yet"
    );
    // write(50 × 1448) takes 20 segments' worth (the low-water mark), not the send buffer.
    let payload = data(50 * MSS_TS, 5);
    assert_eq!(h.stack.write(c.id, &payload), lowat);
    // > 10 segments (cwnd 10): 10 unsent = half the mark, so not writable yet.
    assert_eq!(h.out().len(), 10);
    assert_eq!(h.conn(&c).send_space(), 0, "unsent is half the mark");
    h.complete_all();
    h.wait_ms(10);
    // < . ack 1449: one segment ACKed; cwnd 11 sends 2 more, 8 unsent < half the mark.
    h.ack(&c, 1 + MSS_TS as u32, 2000, &[]);
    assert_eq!(h.out().len(), 2);
    // Writable again, for whole segments only: 12 segments up to the mark.
    assert_eq!(h.conn(&c).send_space() as usize, 12 * MSS_TS);
    assert_eq!(h.stack.write(c.id, &payload[lowat..]), 12 * MSS_TS);
    // A mark of 0 is the kernel's default: the send buffer alone limits.
    let mut h = Harness::with(|cfg| cfg.conn.notsent_lowat = 0);
    let c = h.active_open(ALL_OPTS);
    assert_eq!(h.stack.write(c.id, &payload), payload.len());
}

/// Connections with nothing new do not run: a write runs its connection alone, the
/// application hears of that one alone, and quiet connections cost nothing however long
/// they wait. (`out` asserts after every poll that the full walk found nothing missed.)
#[test]
fn only_connections_with_events_run() {
    let mut h = Harness::new();
    let conns: Vec<Tcb> = (0..3).map(|_| h.active_open(ALL_OPTS)).collect();
    // Each SYN's retransmit timer (1 s) was cleared by the SYN-ACK, but its heap entry
    // stays until its time: each connection runs once more then, for nothing.
    h.wait_ms(1000);
    assert!(h.out().is_empty());
    let mut ev = Vec::new();
    h.stack.take_events(&mut ev);
    ev.clear();
    let runs = h.stack.counters().conn_runs;
    // Three quiet connections, ten seconds: nothing runs, nothing is named.
    for _ in 0..10 {
        h.wait_ms(1000);
        assert!(h.out().is_empty());
    }
    assert_eq!(h.stack.counters().conn_runs, runs);
    h.stack.take_events(&mut ev);
    assert!(ev.is_empty(), "events for quiet connections: {ev:?}");
    // write() on the middle one: it alone runs and is named.
    let b = &conns[1];
    h.stack.write(b.id, &data(MSS_TS, 3));
    assert_eq!(h.out().len(), 1);
    assert_eq!(h.stack.counters().conn_runs, runs + 1);
    h.stack.take_events(&mut ev);
    assert_eq!(ev, vec![b.id]);
    ev.clear();
    // Its ACK: named again (input); then nothing more.
    h.complete_all();
    h.wait_ms(10);
    h.ack(b, 1 + MSS_TS as u32, PEER_WIN, &[]);
    assert!(h.out().is_empty());
    h.stack.take_events(&mut ev);
    assert!(
        ev.contains(&b.id) && ev.iter().all(|&id| id == b.id),
        "{ev:?}"
    );
    assert!(h.stack.counters().sweeps > 10, "the walk ran every poll");
}

/// An ACK that found the pool empty goes out when frames come back to the pool, without
/// any event of its own connection (the kernel's `SOCK_NOSPACE` wakeup).
#[test]
fn ack_that_found_the_pool_empty_goes_when_frames_return() {
    let mut h = Harness::new();
    let c = h.active_open(ALL_OPTS);
    let mut all: Vec<Frame> = h.stack.pool_mut().drain(..).collect();
    // One frame left: the peer's segment takes it.
    h.stack.pool_mut().extend(all.pop());
    h.lent = all;
    // < P. 1:101(100) ack 1: a quick ACK is owed, and there is no frame for it.
    let empty = h.stack.counters().pool_empty;
    let th = h.seg(&c, PSH | ACK, 1, 1);
    h.inject(&th, &data(100, 9));
    assert!(h.out().is_empty(), "no frame, no ACK");
    assert!(h.stack.counters().pool_empty > empty);
    // Frames come back (the fill ring returns them): the ACK goes.
    let back = std::mem::take(&mut h.lent);
    h.stack.pool_mut().extend(back);
    let out = h.out();
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].flags(), ACK);
    assert_eq!(c.ack(&out[0]), 101);
}

// ----- 3. close -----

#[test]
fn active_close_fin_wait_1_2_time_wait_closed() {
    let mut h = Harness::new();
    let c = h.passive_open(ALL_OPTS, 1);
    // close()
    h.stack.close(c.id);
    assert_eq!(h.state(&c), State::FinWait1);
    // > F. 1:1(0) ack 1
    let out = h.out();
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].flags(), FIN | ACK);
    assert_eq!((c.seq(&out[0]), c.ack(&out[0])), (1, 1));
    h.complete_all();
    // < . 1:1(0) ack 2
    h.ack(&c, 2, PEER_WIN, &[]);
    assert!(h.out().is_empty());
    assert_eq!(h.state(&c), State::FinWait2);
    assert_eq!(h.pool_len(), FRAMES, "the FIN's frame is free once ACKed");
    // The peer may still send.
    // < P. 1:6(5) ack 2
    let th = h.seg(&c, PSH | ACK, 1, 2);
    h.inject(&th, b"hello");
    let out = h.drain();
    assert_eq!((c.seq(&out[0]), c.ack(&out[0])), (2, 6));
    assert_eq!(h.read_all(&c), b"hello");
    // < F. 6:6(0) ack 2
    let th = h.seg(&c, FIN | ACK, 6, 2);
    h.inject(&th, &[]);
    // > . 2:2(0) ack 7
    let out = h.drain();
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].flags(), ACK);
    assert_eq!((c.seq(&out[0]), c.ack(&out[0])), (2, 7));
    assert_eq!(h.state(&c), State::TimeWait);
    assert!(h.conn(&c).at_eof());
    h.complete_all();
    // +59.999: still TIME-WAIT (2·MSL = 60 s, TCP_TIMEWAIT_LEN)
    h.wait_ms(59_999);
    assert!(h.out().is_empty());
    assert_eq!(h.state(&c), State::TimeWait);
    // +0.001
    h.wait_ms(1);
    assert!(h.out().is_empty());
    assert_eq!(h.state(&c), State::Closed);
    assert_eq!(h.conn(&c).close_reason(), Some(CloseReason::Normal));
    h.stack.remove(c.id);
    assert_eq!(h.pool_len(), FRAMES);
}

#[test]
fn passive_close_close_wait_last_ack_closed() {
    let mut h = Harness::new();
    let c = h.active_open(ALL_OPTS);
    // < F. 1:1(0) ack 1
    let th = h.seg(&c, FIN | ACK, 1, 1);
    h.inject(&th, &[]);
    // > . 1:1(0) ack 2
    let out = h.drain();
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].flags(), ACK);
    assert_eq!(c.ack(&out[0]), 2);
    assert_eq!(h.state(&c), State::CloseWait);
    assert!(h.conn(&c).at_eof());
    h.complete_all();
    // We may still send: write(10), close()
    assert_eq!(h.stack.write(c.id, b"last words"), 10);
    h.stack.close(c.id);
    assert_eq!(h.state(&c), State::LastAck);
    // > FP. 1:11(10) ack 2      (the FIN rides on the unsent data)
    let out = h.out();
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].flags(), FIN | PSH | ACK);
    assert_eq!((c.seq(&out[0]), c.ack(&out[0])), (1, 2));
    assert_eq!(out[0].payload, b"last words");
    h.complete_all();
    // < . 2:2(0) ack 12
    let th = h.seg(&c, ACK, 2, 12);
    h.inject(&th, &[]);
    assert!(h.out().is_empty());
    assert_eq!(h.state(&c), State::Closed);
    assert_eq!(h.conn(&c).close_reason(), Some(CloseReason::Normal));
    assert_eq!(h.pool_len(), FRAMES);
}

#[test]
fn simultaneous_close_closing_then_time_wait() {
    let mut h = Harness::new();
    let c = h.active_open(ALL_OPTS);
    // close()
    // > F. 1:1(0) ack 1
    h.stack.close(c.id);
    let out = h.out();
    assert_eq!(out[0].flags(), FIN | ACK);
    // < F. 1:1(0) ack 1      (the peer's FIN crosses ours)
    let th = h.seg(&c, FIN | ACK, 1, 1);
    h.inject(&th, &[]);
    // > . 2:2(0) ack 2
    let out = h.drain();
    assert_eq!((c.seq(&out[0]), c.ack(&out[0])), (2, 2));
    assert_eq!(h.state(&c), State::Closing);
    // < . 2:2(0) ack 2
    let th = h.seg(&c, ACK, 2, 2);
    h.inject(&th, &[]);
    assert_eq!(h.state(&c), State::TimeWait);
    h.complete_all();
    assert_eq!(h.pool_len(), FRAMES);
}

#[test]
fn time_wait_acks_a_retransmitted_fin() {
    let mut h = Harness::new();
    let c = h.passive_open(ALL_OPTS, 1);
    // > F. 1:1(0) ack 1
    // < F. 1:1(0) ack 2
    // > . 2:2(0) ack 2
    h.stack.close(c.id);
    h.out();
    let th = h.seg(&c, FIN | ACK, 1, 2);
    h.inject(&th, &[]);
    h.drain();
    assert_eq!(h.state(&c), State::TimeWait);
    h.complete_all();
    // +1
    h.wait_ms(1000);
    // < F. 1:1(0) ack 2      (our ACK was lost)
    let th = h.seg(&c, FIN | ACK, 1, 2);
    h.inject(&th, &[]);
    // > . 2:2(0) ack 2 <nop,nop,TS val X ecr P,nop,nop,sack 1:2>
    //   (`tcp_send_dupack`: the FIN's sequence space, D-SACKed, never an empty block)
    let out = h.drain();
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].flags(), ACK);
    assert_eq!(c.ack(&out[0]), 2);
    for (s, e) in out[0].sacks() {
        assert!(Seq(s).lt(Seq(e)), "SACK block [{s}, {e}) is empty");
    }
    assert_eq!(
        out[0].sacks(),
        vec![(PEER_ISS.wrapping_add(1), PEER_ISS.wrapping_add(2))]
    );
    assert_eq!(h.state(&c), State::TimeWait);
}

// ----- 4. retransmission timeout -----

#[test]
fn syn_retransmitted_at_initial_rto_1s_same_frame() {
    let mut h = Harness::new();
    let id = h
        .stack
        .connect((IpAddr::from(PEER_IP), RPORT))
        .expect("connect");
    // > S 0:0(0) <...>
    let out = h.out();
    let syn = out[0].clone();
    assert_eq!(h.stack.conn(id).expect("conn").info().rto_us, RTO_INIT_US);
    h.complete_all();
    assert_eq!(
        h.stack.frames_parked(),
        1,
        "the SYN is held for retransmission"
    );
    // +0.999: nothing
    h.wait_ms(999);
    assert!(h.out().is_empty());
    // +0.001
    // > S 0:0(0) <...>      (same frame index, same ISN)
    h.wait_ms(1);
    let out = h.out();
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].flags(), SYN);
    assert_eq!(out[0].th().seq, syn.th().seq);
    assert_eq!(out[0].idx, syn.idx, "no copy: the same frame");
    let conn = h.stack.conn(id).expect("conn");
    assert_eq!(conn.counters().retrans_segs, 1);
    assert_eq!(conn.counters().timeouts, 1);
    assert_eq!(conn.info().rto_us, 2 * RTO_INIT_US, "backed off");
    h.complete_all();
    // +1.999: nothing; +0.001: the third SYN, 3 s after the first (1 s, then 2 s)
    h.wait_ms(1999);
    assert!(h.out().is_empty());
    h.wait_ms(1);
    let out = h.out();
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].idx, syn.idx);
    assert_eq!(
        h.stack.conn(id).expect("conn").info().rto_us,
        4 * RTO_INIT_US
    );
}

#[test]
fn data_rto_same_frame_backoff_held_until_acked() {
    let mut h = Harness::new();
    // The handshake's ACK 10 ms after the SYN-ACK: SRTT 10 ms, RTTVAR 5 ms, RTO 30 ms,
    // clamped to 200 ms.
    let c = h.passive_open(ALL_OPTS, 10);
    assert_eq!(h.conn(&c).info().rto_us, RTO_MIN_US);
    // write(1000)
    // > P. 1:1001(1000) ack 1
    let payload = data(1000, 2);
    h.stack.write(c.id, &payload);
    let out = h.out();
    assert_eq!(out.len(), 1);
    let first = out[0].clone();
    assert_eq!(first.payload, payload);
    // The NIC is done with it; the retransmit queue still holds it.
    h.complete_all();
    assert_eq!(h.pool_len(), FRAMES - 1);
    assert_eq!(h.stack.frames_parked(), 1);
    // +0.199999: nothing
    h.wait_us(RTO_MIN_US - 1);
    assert!(h.out().is_empty());
    // +0.000001
    // > P. 1:1001(1000) ack 1        (RTO: the same frame, no copy)
    h.wait_us(1);
    let out = h.out();
    assert_eq!(out.len(), 1, "{out:?}");
    let rtx = &out[0];
    assert_eq!(rtx.idx, first.idx, "the same frame index");
    assert_eq!(c.seq(rtx), 1);
    assert_eq!(rtx.payload, payload);
    assert_eq!(rtx.flags(), PSH | ACK);
    let info = h.conn(&c).info();
    assert_eq!(info.rto_us, 2 * RTO_MIN_US, "backoff doubles the RTO");
    assert_eq!(info.ca_state, CaState::Loss);
    assert_eq!(info.cwnd, 1, "loss window");
    let cnt = h.conn(&c).counters();
    assert_eq!((cnt.retrans_segs, cnt.timeouts), (1, 1));
    assert_eq!(h.stack.counters().retrans_segs, 1);
    // The retransmission is still in flight when the next RTO fires (+0.4): it cannot go
    // again until the completion ring returns it (TCPSpuriousRtxHostQueues).
    h.wait_us(2 * RTO_MIN_US);
    assert!(h.out().is_empty(), "not sent while in flight");
    assert!(h.conn(&c).counters().rtx_hostqueue >= 1);
    assert_eq!(h.conn(&c).info().rto_us, 4 * RTO_MIN_US);
    h.complete(first.idx);
    // > P. 1:1001(1000) ack 1        (the third transmission, once completed)
    let out = h.out();
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].idx, first.idx);
    assert_eq!(h.conn(&c).counters().retrans_segs, 2);
    // < . 1:1(0) ack 1001
    h.ack(&c, 1001, PEER_WIN, &[]);
    assert!(h.out().is_empty());
    assert_eq!(h.conn(&c).info().ca_state, CaState::Open);
    // ACKed but still in flight: not in the pool until the completion ring returns it.
    assert!(h.in_flight(first.idx));
    assert_eq!(h.pool_len(), FRAMES - 1);
    h.complete(first.idx);
    assert_eq!(h.pool_len(), FRAMES);
    assert_eq!(h.stack.frames_live(), 0);
}

#[test]
fn retries_exhausted_times_out() {
    let mut h = Harness::new();
    let id = h
        .stack
        .connect((IpAddr::from(PEER_IP), RPORT))
        .expect("connect");
    // tcp_syn_retries = 6: SYNs at 0, 1, 3, 7, 15, 31, 63 s; given up at 127 s.
    let mut sent = 0;
    for _ in 0..200 {
        sent += h.out().len();
        h.complete_all();
        if h.stack.conn(id).expect("conn").state() == State::Closed {
            break;
        }
        h.wait_ms(1000);
    }
    assert_eq!(sent, 7);
    let conn = h.stack.conn(id).expect("conn");
    assert_eq!(conn.state(), State::Closed);
    assert_eq!(conn.close_reason(), Some(CloseReason::TimedOut));
    assert_eq!(h.now - T0, 127_000_000);
    assert_eq!(h.pool_len(), FRAMES);
}

// ----- 5. SACK loss recovery -----

#[test]
fn sack_fast_retransmit_hole_first_recovery_ends_at_high_seq() {
    let mut h = Harness::new();
    let c = h.active_open(ALL_OPTS);
    let m = MSS_TS as u32;
    // write(20 × 1448)
    // > . 1:1449(1448) ack 1 ... > . 13033:14481(1448) ack 1   (cwnd 10)
    let (payload, sent) = h.write_ten_out(&c, 20, 5);
    h.wait_ms(10);
    // < . 1:1(0) ack 1449 win 2000 <nop,nop,TS,nop,nop,sack 2897:7241>
    //   (segment 1 arrived; 2 is missing; 3, 4 and 5 arrived)
    h.ack(&c, 1 + m, 2000, &[(1 + 2 * m, 1 + 5 * m)]);
    // > . 1449:2897(1448) ack 1      (the hole, first, from its original frame)
    let out = h.out();
    assert!(!out.is_empty());
    assert_eq!(c.seq(&out[0]), 1 + m, "the hole goes first: {out:?}");
    assert_eq!(out[0].idx, sent[1].idx, "retransmitted from the same frame");
    assert_eq!(out[0].payload, payload[MSS_TS..2 * MSS_TS]);
    for p in &out[1..] {
        assert!(c.seq(p) > 10 * m, "only new data after the hole: {p:?}");
    }
    let info = h.conn(&c).info();
    assert_eq!(info.ca_state, CaState::Recovery);
    assert_eq!(h.conn(&c).counters().fast_recoveries, 1);
    assert_eq!(h.conn(&c).counters().retrans_segs, 1);
    h.complete_all();
    // < . 1:1(0) ack 7241 win 2000      (the retransmission filled the hole: a partial ACK)
    h.ack(&c, 1 + 5 * m, 2000, &[]);
    h.out();
    assert_eq!(
        h.conn(&c).info().ca_state,
        CaState::Recovery,
        "below the recovery point"
    );
    h.complete_all();
    // < . 1:1(0) ack 14481 win 2000     (the recovery point: everything sent before it)
    h.ack(&c, 1 + 10 * m, 2000, &[]);
    h.out();
    assert_eq!(
        h.conn(&c).info().ca_state,
        CaState::Open,
        "recovery is over"
    );
    assert_eq!(
        h.conn(&c).counters().retrans_segs,
        1,
        "one retransmission was enough"
    );
}

// ----- 6. NewReno -----

#[test]
fn newreno_three_dupacks_retransmit_partial_ack_next_hole() {
    let mut h = Harness::new();
    let no_sack = PeerOpts {
        sack: false,
        ts: true,
        wscale: true,
    };
    let c = h.active_open(no_sack);
    let m = MSS_TS as u32;
    // write(10 × 1448)
    // > . 1:1449(1448) ... > P. 13033:14481(1448)
    let (_, sent) = h.write_ten_out(&c, 10, 6);
    assert!(sent[0].th().options.sack_blocks().is_empty());
    h.wait_ms(10);
    // < . 1:1(0) ack 1449          (segments 2 and 3 lost)
    h.ack(&c, 1 + m, PEER_WIN, &[]);
    assert!(h.out().is_empty(), "nothing new to send");
    // < . 1:1(0) ack 1449 ×2       (duplicate ACKs 1 and 2: no retransmission yet)
    for _ in 0..2 {
        h.ack(&c, 1 + m, PEER_WIN, &[]);
        assert!(h.out().is_empty());
    }
    assert_eq!(h.conn(&c).info().ca_state, CaState::Disorder);
    // < . 1:1(0) ack 1449          (the third)
    // > . 1449:2897(1448) ack 1    (fast retransmit, RFC 5681 §3.2)
    h.ack(&c, 1 + m, PEER_WIN, &[]);
    let out = h.out();
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(c.seq(&out[0]), 1 + m);
    assert_eq!(out[0].idx, sent[1].idx);
    assert_eq!(h.conn(&c).info().ca_state, CaState::Recovery);
    assert_eq!(h.conn(&c).counters().dupacks_in, 3);
    h.complete_all();
    // < . 1:1(0) ack 2897          (partial ACK, RFC 6582 §3.2 step 3)
    // > . 2897:4345(1448) ack 1    (the next hole at once)
    h.ack(&c, 1 + 2 * m, PEER_WIN, &[]);
    let out = h.out();
    assert!(!out.is_empty(), "the next hole is retransmitted");
    assert_eq!(c.seq(&out[0]), 1 + 2 * m);
    assert_eq!(h.conn(&c).info().ca_state, CaState::Recovery);
    h.complete_all();
    // < . 1:1(0) ack 14481         (full ACK: recovery over)
    h.ack(&c, 1 + 10 * m, PEER_WIN, &[]);
    h.out();
    assert_eq!(h.conn(&c).info().ca_state, CaState::Open);
    assert!(h.conn(&c).all_acked());
    h.complete_all();
    assert_eq!(h.pool_len(), FRAMES);
}

// ----- 7. out-of-order receive -----

#[test]
fn out_of_order_sack_then_cumulative_then_dsack() {
    let mut h = Harness::new();
    let c = h.passive_open(ALL_OPTS, 1);
    let seg1 = data(1000, 11);
    let seg2 = data(1000, 12);
    // < . 1001:2001(1000) ack 1      (segment 2 first)
    let th = h.seg(&c, ACK, 1001, 1);
    h.inject(&th, &seg2);
    // > . 1:1(0) ack 1 <nop,nop,TS val X ecr P,nop,nop,sack 1001:2001>
    let out = h.drain();
    assert_eq!(out.len(), 1, "an immediate ACK (RFC 5681 §4.2): {out:?}");
    assert_eq!(c.ack(&out[0]), 1);
    let rel = |a: u32| PEER_ISS.wrapping_add(a);
    assert_eq!(out[0].sacks(), vec![(rel(1001), rel(2001))]);
    assert_eq!(
        h.conn(&c).recv_available(),
        0,
        "nothing readable across the gap"
    );
    assert_eq!(h.conn(&c).counters().ofo_queued, 1);
    // < . 1:1001(1000) ack 1
    // > . 1:1(0) ack 2001 <nop,nop,TS val X ecr P>      (no SACK: the gap is filled)
    let th = h.seg(&c, ACK, 1, 1);
    h.inject(&th, &seg1);
    let out = h.drain();
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(c.ack(&out[0]), 2001);
    assert!(out[0].sacks().is_empty());
    // read() = 2000, in order
    let got = h.read_all(&c);
    assert_eq!(got, [seg1.clone(), seg2].concat());
    // < . 1:1001(1000) ack 1         (a duplicate)
    // > . 1:1(0) ack 2001 <nop,nop,TS val X ecr P,nop,nop,sack 1:1001>   (D-SACK, RFC 2883)
    let th = h.seg(&c, ACK, 1, 1);
    h.inject(&th, &seg1);
    let out = h.drain();
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(c.ack(&out[0]), 2001);
    assert_eq!(out[0].sacks(), vec![(rel(1), rel(1001))]);
    assert_eq!(h.conn(&c).counters().dup_data_in, 1);
    h.complete_all();
    assert_eq!(h.pool_len(), FRAMES);
}

#[test]
fn duplicate_out_of_order_segment_dsack_then_its_sack_block() {
    let mut h = Harness::new();
    let c = h.passive_open(ALL_OPTS, 1);
    let rel = |a: u32| PEER_ISS.wrapping_add(a);
    // < . 2001:3001(1000) ack 1
    // > . 1:1(0) ack 1 <...,sack 2001:3001>
    // < . 4001:5001(1000) ack 1
    // > . 1:1(0) ack 1 <...,sack 4001:5001 2001:3001>    (most recent first, RFC 2018 §4)
    // < . 2001:3001(1000) ack 1     (again)
    // > . 1:1(0) ack 1 <...,sack 2001:3001 2001:3001 4001:5001>  (D-SACK first, RFC 2883 §4)
    let th = h.seg(&c, ACK, 2001, 1);
    h.inject(&th, &data(1000, 1));
    assert_eq!(h.drain()[0].sacks(), vec![(rel(2001), rel(3001))]);
    let th = h.seg(&c, ACK, 4001, 1);
    h.inject(&th, &data(1000, 2));
    assert_eq!(
        h.drain()[0].sacks(),
        vec![(rel(4001), rel(5001)), (rel(2001), rel(3001))]
    );
    let th = h.seg(&c, ACK, 2001, 1);
    h.inject(&th, &data(1000, 1));
    assert_eq!(
        h.drain()[0].sacks(),
        vec![
            (rel(2001), rel(3001)),
            (rel(2001), rel(3001)),
            (rel(4001), rel(5001))
        ]
    );
    assert_eq!(
        h.stack.rx_frames(),
        2,
        "the duplicate's frame went back to the pool"
    );
}

// ----- 8. RFC 5961 -----

#[test]
fn rst_with_exact_seq_resets() {
    let mut h = Harness::new();
    let c = h.passive_open(ALL_OPTS, 1);
    h.stack.write(c.id, &data(3000, 1));
    h.out();
    // < R. 1:1(0) ack 1       (SEG.SEQ == RCV.NXT)
    let th = h.seg(&c, RST | ACK, 1, 1);
    h.inject(&th, &[]);
    assert!(h.out().is_empty(), "no reply to a RST");
    assert_eq!(h.state(&c), State::Closed);
    assert_eq!(h.conn(&c).close_reason(), Some(CloseReason::Reset));
    assert_eq!(h.stack.counters().resets_in, 1);
    // Held frames go as soon as the NIC is done with them.
    h.complete_all();
    assert_eq!(h.pool_len(), FRAMES);
}

#[test]
fn rst_in_window_not_exact_draws_rate_limited_challenge_ack() {
    let mut h = Harness::new();
    let c = h.passive_open(ALL_OPTS, 1);
    // < R. 1001:1001(0) ack 1      (in the window, not RCV.NXT)
    // > . 1:1(0) ack 1             (challenge ACK, RFC 5961 §3.2)
    let th = h.seg(&c, RST | ACK, 1001, 1);
    h.inject(&th, &[]);
    let out = h.drain();
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].flags(), ACK);
    assert_eq!((c.seq(&out[0]), c.ack(&out[0])), (1, 1));
    assert_eq!(h.state(&c), State::Established);
    assert_eq!(h.stack.counters().rst_challenged, 1);
    assert_eq!(h.conn(&c).counters().challenge_acks, 1);
    // +0.1 < R. 2001:2001(0) ack 1    (within 500 ms: counted, not answered)
    h.wait_ms(100);
    let th = h.seg(&c, RST, 2001, 0);
    h.inject(&th, &[]);
    assert!(h.drain().is_empty(), "rate limited (tcp_invalid_ratelimit)");
    assert_eq!(h.stack.counters().rst_challenged, 2);
    // +0.4 < R. 2001:2001(0) ack 1    (500 ms on: answered again)
    h.wait_ms(400);
    let th = h.seg(&c, RST, 2001, 0);
    h.inject(&th, &[]);
    assert_eq!(h.drain().len(), 1);
    assert_eq!(h.state(&c), State::Established);
}

#[test]
fn rst_out_of_window_ignored() {
    let mut h = Harness::new();
    let c = h.passive_open(ALL_OPTS, 1);
    // < R. 4000000000:... (far outside the window)
    for seq in [0u32, 1u32.wrapping_sub(10), 1 + (RCVBUF * 2)] {
        let th = h.seg(&c, RST | ACK, seq, 1);
        h.inject(&th, &[]);
        assert!(h.out().is_empty(), "no answer to seq {seq}");
    }
    assert_eq!(h.state(&c), State::Established);
    assert_eq!(h.stack.counters().resets_in, 0);
    assert_eq!(h.stack.counters().rst_challenged, 0);
}

#[test]
fn syn_on_established_draws_challenge_ack() {
    let mut h = Harness::new();
    let c = h.passive_open(ALL_OPTS, 1);
    // < S 1000:1000(0) win 65535 <...>   (in the window)
    // > . 1:1(0) ack 1                   (challenge ACK, RFC 5961 §4.2)
    let mut th = h.seg(&c, SYN, 1000, 0);
    th.options = h.syn_options(ALL_OPTS, 0);
    h.inject(&th, &[]);
    let out = h.drain();
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].flags(), ACK);
    assert_eq!(c.ack(&out[0]), 1);
    assert!(out[0].sacks().is_empty());
    assert_eq!(h.stack.counters().syn_challenged, 1);
    assert_eq!(h.state(&c), State::Established);
    // +0.5 < S 0:0(0) <...>      (the old SYN again, below RCV.NXT)
    // > . 1:1(0) ack 1           (a challenge ACK too: no D-SACK for a SYN)
    h.wait_ms(500);
    let mut th = h.seg(&c, SYN, 0, 0);
    th.options = h.syn_options(ALL_OPTS, 0);
    h.inject(&th, &[]);
    let out = h.drain();
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(c.ack(&out[0]), 1);
    assert!(out[0].sacks().is_empty(), "no D-SACK for a SYN: {out:?}");
    assert_eq!(h.conn(&c).counters().challenge_acks, 2);
    // +0.1 < S 0:0(0) again: rate limited
    h.wait_ms(100);
    let mut th = h.seg(&c, SYN, 0, 0);
    th.options = h.syn_options(ALL_OPTS, 0);
    h.inject(&th, &[]);
    assert!(h.drain().is_empty(), "challenge ACKs are rate limited");
    assert_eq!(h.state(&c), State::Established);
}

#[test]
fn ack_for_unsent_data_dropped_and_acked() {
    let mut h = Harness::new();
    let c = h.passive_open(ALL_OPTS, 1);
    // < P. 1:101(100) ack 5001        (we sent nothing)
    // > . 1:1(0) ack 1                (RFC 5961 §5.2: ACK, drop the segment)
    let th = h.seg(&c, PSH | ACK, 1, 5001);
    h.inject(&th, &data(100, 1));
    let out = h.drain();
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!((c.seq(&out[0]), c.ack(&out[0])), (1, 1));
    assert_eq!(h.conn(&c).recv_available(), 0, "the data was dropped");
    assert_eq!(h.conn(&c).counters().ack_unsent, 1);
    assert_eq!(h.state(&c), State::Established);
    h.complete_all();
    assert_eq!(h.pool_len(), FRAMES);
}

#[test]
fn rst_in_syn_received_frees_the_listener_slot_and_tuple() {
    let mut h = Harness::with(|cfg| cfg.max_syn_backlog = 1);
    h.stack.listen(LPORT, 16).expect("listen");
    let mut c = Tcb {
        id: 0,
        lport: LPORT,
        pport: PPORT,
        iss: 0,
        irs: PEER_ISS,
        opts: ALL_OPTS,
    };
    // < S 0:0(0)
    // > S. 0:0(0) ack 1
    let mut syn = h.seg(&c, SYN, 0, 0);
    syn.options = h.syn_options(ALL_OPTS, 0);
    h.inject(&syn, &[]);
    let out = h.drain();
    c.iss = out[0].th().seq.0;
    h.complete_all();
    // < R 1:1(0)          (the peer gives up)
    let th = h.seg(&c, RST, 1, 0);
    h.inject(&th, &[]);
    assert!(h.out().is_empty());
    assert_eq!(h.pool_len(), FRAMES, "the SYN-ACK's frame is free");
    // The same peer port tries again: the half-open slot and the 4-tuple are free.
    // < S 0:0(0)
    // > S. 0:0(0) ack 1
    h.wait_ms(1000);
    let mut syn = h.seg(&c, SYN, 0, 0);
    syn.options = h.syn_options(ALL_OPTS, 0);
    h.inject(&syn, &[]);
    let out = h.drain();
    assert_eq!(out.len(), 1, "a new SYN-ACK: {out:?}");
    assert_eq!(out[0].flags(), SYN | ACK);
    assert_eq!(h.stack.counters().syn_dropped, 0);
    c.iss = out[0].th().seq.0;
    let th = h.seg(&c, ACK, 1, 1);
    h.inject(&th, &[]);
    assert!(h.stack.accept(LPORT).is_some());
}

// ----- 9. bad input -----

/// A valid in-window data segment for `c`, as bytes.
fn valid_data_frame(h: &mut Harness, c: &Tcb, len: usize) -> Vec<u8> {
    let th = h.seg(c, PSH | ACK, 1, 1);
    h.frame_bytes(&th, &data(len, 7))
}

/// Rewrites the IPv4 header checksum and the TCP checksum of a frame built by
/// [`Harness::frame_bytes`] (IPv4 without options at 14) after a test changed it.
fn refill_checksums(b: &mut [u8]) {
    if b.len() < 34 {
        return;
    }
    b[24..26].fill(0);
    let ck = checksum::checksum(&b[14..34], 0);
    b[24..26].copy_from_slice(&ck.to_be_bytes());
    let tot = usize::from(be16(b, 16));
    if tot >= 40 && 14 + tot <= b.len() {
        let src: [u8; 4] = b[26..30].try_into().expect("4 bytes");
        let dst: [u8; 4] = b[30..34].try_into().expect("4 bytes");
        tcp::fill_checksum_v4(src, dst, &mut b[34..14 + tot]);
    }
}

#[test]
fn bad_tcp_checksum_counted_and_dropped() {
    let mut h = Harness::new();
    let c = h.passive_open(ALL_OPTS, 1);
    let mut b = valid_data_frame(&mut h, &c, 100);
    b[34 + 16] ^= 0x55;
    h.inject_bytes(&b);
    assert!(h.out().is_empty());
    assert_eq!(h.stack.counters().in_csum_errors, 1);
    assert_eq!(h.conn(&c).recv_available(), 0);
    assert_eq!(h.pool_len(), FRAMES);
}

#[test]
fn bad_ip_checksum_counted_and_dropped() {
    let mut h = Harness::new();
    let c = h.passive_open(ALL_OPTS, 1);
    let mut b = valid_data_frame(&mut h, &c, 100);
    b[24] ^= 0x01;
    h.inject_bytes(&b);
    assert!(h.out().is_empty());
    assert_eq!(h.stack.counters().ip_errors, 1);
    assert_eq!(h.conn(&c).recv_available(), 0);
    assert_eq!(h.pool_len(), FRAMES);
}

#[test]
fn martian_sources_and_group_macs_dropped_unanswered() {
    let mut h = Harness::new();
    let c = h.passive_open(ALL_OPTS, 1);
    // Sources: multicast 224/4, limited broadcast, loopback, 0/8 (ip_route_input's martians).
    for src in [[224, 18, 0, 2], [255; 4], [127, 0, 0, 1], [0, 18, 0, 2]] {
        let mut b = valid_data_frame(&mut h, &c, 100);
        b[26..30].copy_from_slice(&src);
        refill_checksums(&mut b);
        h.inject_bytes(&b);
    }
    // A right segment in a broadcast or multicast frame (pkt_type != PACKET_HOST).
    for mac in [[0xff; 6], [0x01, 0x00, 0x5e, 0x12, 0x00, 0x01]] {
        let mut b = valid_data_frame(&mut h, &c, 100);
        b[..6].copy_from_slice(&mac);
        h.inject_bytes(&b);
    }
    assert!(h.out().is_empty(), "nothing answers a martian");
    assert_eq!(h.stack.counters().martian, 6);
    // The same through GRO: a merged packet of ten frames in broadcast frames (GRO does
    // not look at MACs), dropped whole, every frame counted.
    let (mut frames, _) = peer_run(&mut h, &c, 1, 10, 7);
    for f in &mut frames {
        f[..6].copy_from_slice(&[0xff; 6]);
    }
    let g = h.inject_gro(&frames);
    assert_eq!((g.packets_out, g.frames_out), (1, 10), "{g:?}");
    assert!(h.out().is_empty(), "nothing answers a martian GRO packet");
    assert_eq!(h.stack.counters().martian, 16);
    assert_eq!(h.conn(&c).recv_available(), 0);
    assert_eq!(h.pool_len(), FRAMES);
}

#[test]
fn option_with_bad_length_counted() {
    let mut h = Harness::new();
    let c = h.passive_open(ALL_OPTS, 1);
    // The TS option's length byte (NOP, NOP, 8, 10, ...) set to 40: past the header.
    let mut b = valid_data_frame(&mut h, &c, 100);
    assert_eq!(&b[54..58], &[1, 1, 8, 10]);
    b[57] = 40;
    refill_checksums(&mut b);
    h.inject_bytes(&b);
    // And to 1: below the smallest legal length.
    let mut b = valid_data_frame(&mut h, &c, 100);
    b[57] = 1;
    refill_checksums(&mut b);
    h.inject_bytes(&b);
    assert!(h.out().is_empty());
    assert_eq!(h.stack.counters().in_errs, 2);
    assert_eq!(h.stack.counters().in_csum_errors, 0);
    assert_eq!(h.conn(&c).recv_available(), 0);
    assert_eq!(h.pool_len(), FRAMES);
}

#[test]
fn truncated_frames_counted() {
    let mut h = Harness::new();
    let c = h.passive_open(ALL_OPTS, 1);
    let full = valid_data_frame(&mut h, &c, 100);
    let before = h.stack.counters();
    // Empty, no EtherType, an IP header cut short, the IP total length beyond the frame.
    for n in [0, 1, 13, 14, 20, 33, 40, full.len() - 1] {
        h.inject_bytes(&full[..n]);
    }
    let after = h.stack.counters();
    assert_eq!(after.not_for_us - before.not_for_us, 3, "{after:?}");
    assert_eq!(after.ip_errors - before.ip_errors, 5, "{after:?}");
    // A TCP header cut short inside a well-formed IP packet (checksums right).
    let mut b = full[..34 + 12].to_vec();
    b[16..18].copy_from_slice(&(20u16 + 12).to_be_bytes());
    refill_checksums(&mut b);
    // No checksum field in 12 bytes: make the one's-complement sum right by hand.
    let pseudo = checksum::pseudo_v4(PEER_IP, OUR_IP, IPPROTO_TCP, 12);
    b[34 + 10..34 + 12].fill(0);
    let fix = !(checksum::sum(&b[34..], pseudo) as u16);
    b[34 + 10..34 + 12].copy_from_slice(&fix.to_be_bytes());
    assert!(tcp::checksum_ok_v4(PEER_IP, OUR_IP, &b[34..]));
    h.inject_bytes(&b);
    assert_eq!(h.stack.counters().in_errs, 1, "TCP shorter than 20 bytes");
    assert!(h.out().is_empty());
    assert_eq!(h.conn(&c).recv_available(), 0);
    assert_eq!(h.pool_len(), FRAMES);
}

#[test]
fn data_offset_beyond_segment_counted() {
    let mut h = Harness::new();
    let c = h.passive_open(ALL_OPTS, 1);
    // A bare 20-byte header claiming 60 bytes of header (data offset 15).
    let mut th = h.seg(&c, ACK, 1, 1);
    th.options = TcpOptions::default();
    let mut b = h.frame_bytes(&th, &[]);
    b[34 + 12] = 15 << 4;
    refill_checksums(&mut b);
    h.inject_bytes(&b);
    // Data offset 4: below the fixed header.
    let mut b = h.frame_bytes(&th, &[]);
    b[34 + 12] = 4 << 4;
    refill_checksums(&mut b);
    h.inject_bytes(&b);
    assert_eq!(h.stack.counters().in_errs, 2);
    assert!(h.out().is_empty());
    assert_eq!(h.pool_len(), FRAMES);
}

#[test]
fn out_of_window_data_dup_ack_and_counted() {
    let mut h = Harness::new();
    let c = h.passive_open(ALL_OPTS, 1);
    // < P. 8388609:8389609(1000) ack 1     (beyond the right edge: 8 MiB on)
    // > . 1:1(0) ack 1                      (duplicate ACK, RFC 9293 §3.10.7.4)
    let th = h.seg(&c, PSH | ACK, 1 + (8 << 20), 1);
    h.inject(&th, &data(1000, 1));
    let out = h.drain();
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(c.ack(&out[0]), 1);
    assert!(out[0].sacks().is_empty(), "not queued out of order");
    assert_eq!(h.conn(&c).counters().out_of_window, 1);
    assert_eq!(h.conn(&c).counters().ofo_queued, 0);
    h.complete_all();
    assert_eq!(h.pool_len(), FRAMES);
}

#[test]
fn segment_to_closed_port_draws_rst_rfc9293() {
    let mut h = Harness::new();
    let c = Tcb {
        id: 0,
        lport: 9,
        pport: PPORT,
        iss: 5000,
        irs: PEER_ISS,
        opts: PeerOpts {
            sack: false,
            ts: false,
            wscale: false,
        },
    };
    // < . 1:1(0) ack 5000            (ACK bit on)
    // > R 5000:5000(0)               (<SEQ=SEG.ACK><CTL=RST>, no ACK)
    let th = h.seg(&c, ACK, 1, 0);
    h.inject(&th, &[]);
    let out = h.out();
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].flags(), RST);
    assert_eq!(out[0].th().seq, Seq(5000));
    assert_eq!(out[0].th().ack, Seq(0));
    assert_eq!((out[0].th().src_port, out[0].th().dst_port), (9, PPORT));
    assert_eq!(out[0].dst_mac, PEER_MAC);
    // < S 0:0(0)                      (ACK bit off)
    // > R. 0:0(0) ack 1               (<SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>)
    let th = h.seg(&c, SYN, 0, 0);
    h.inject(&th, &[]);
    let out = h.out();
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].flags(), RST | ACK);
    assert_eq!(out[0].th().seq, Seq(0));
    assert_eq!(out[0].th().ack, Seq(PEER_ISS).add(1));
    // < FP 1:101(100)                 (data and FIN, no ACK: SEG.LEN = 101)
    // > R. 0:0(0) ack 102
    let th = h.seg(&c, FIN | PSH, 1, 0);
    h.inject(&th, &data(100, 0));
    let out = h.out();
    assert_eq!(out[0].flags(), RST | ACK);
    assert_eq!(out[0].th().ack, Seq(PEER_ISS).add(102));
    // < R 1:1(0)                      (never a RST for a RST)
    let th = h.seg(&c, RST, 1, 0);
    h.inject(&th, &[]);
    assert!(h.out().is_empty());
    assert_eq!(h.stack.counters().out_rsts, 3);
    h.complete_all();
    assert_eq!(h.pool_len(), FRAMES);
}

#[test]
fn syn_flood_beyond_backlog_dropped() {
    let mut h = Harness::with(|cfg| cfg.max_syn_backlog = 4);
    h.stack.listen(LPORT, 16).expect("listen");
    let mut answered = Vec::new();
    // < S 0:0(0) from ports 40000..40005
    for i in 0..5u16 {
        let c = Tcb {
            id: 0,
            lport: LPORT,
            pport: PPORT + i,
            iss: 0,
            irs: PEER_ISS,
            opts: ALL_OPTS,
        };
        let mut syn = h.seg(&c, SYN, 0, 0);
        syn.options = h.syn_options(ALL_OPTS, 0);
        h.inject(&syn, &[]);
        for p in h.drain() {
            answered.push((c, p));
        }
    }
    // > S. ×4; the fifth is dropped (ListenOverflows)
    assert_eq!(answered.len(), 4);
    assert_eq!(h.stack.counters().syn_dropped, 1);
    // One completes: a half-open slot frees up.
    let (mut c, sa) = answered[0].clone();
    c.iss = sa.th().seq.0;
    let th = h.seg(&c, ACK, 1, 1);
    h.inject(&th, &[]);
    assert!(h.stack.accept(LPORT).is_some());
    let c5 = Tcb {
        pport: PPORT + 4,
        ..c
    };
    let mut syn = h.seg(&c5, SYN, 0, 0);
    syn.options = h.syn_options(ALL_OPTS, 0);
    h.inject(&syn, &[]);
    assert_eq!(h.drain().len(), 1, "room again");
}

/// An established connection with 5 segments in flight (all completed) and the harness
/// clock past the rate limits, for the properties.
fn fuzz_target() -> (Harness, Tcb) {
    let mut h = Harness::new();
    let c = h.passive_open(ALL_OPTS, 1);
    h.stack.write(c.id, &data(5 * MSS_TS + 100, 3));
    h.out();
    h.complete_all();
    (h, c)
}

/// One round after an input: output, completion, the application reads.
fn settle(h: &mut Harness, c: &Tcb) {
    h.out();
    h.complete_all();
    h.read_all(c);
    if let Some(conn) = h.stack.conn(c.id) {
        let i = conn.info();
        assert!(i.cwnd >= 1, "{i:?}");
    }
}

proptest! {
    /// Random bytes, with an Ethernet + IPv4 header of ours in front or not: no panic,
    /// every frame accounted for.
    #[test]
    fn random_bytes_never_panic(
        frames in proptest::collection::vec(
            (any::<bool>(), proptest::collection::vec(any::<u8>(), 0..120)),
            1..8,
        )
    ) {
        let (mut h, c) = fuzz_target();
        for (prefix, tail) in frames {
            let mut b = Vec::new();
            if prefix {
                // A valid-looking Ethernet + IPv4 header for us, the rest random.
                b.extend_from_slice(&OUR_MAC);
                b.extend_from_slice(&PEER_MAC);
                b.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
                let tot = (20 + tail.len()) as u16;
                b.extend_from_slice(&[0x45, 0]);
                b.extend_from_slice(&tot.to_be_bytes());
                b.extend_from_slice(&[0, 0, 0x40, 0, 64, IPPROTO_TCP, 0, 0]);
                b.extend_from_slice(&PEER_IP);
                b.extend_from_slice(&OUR_IP);
                b.extend_from_slice(&tail);
                refill_checksums(&mut b);
            } else {
                b = tail;
            }
            h.inject_bytes(&b);
            settle(&mut h, &c);
        }
    }

    /// Valid segments of an established connection (data in and out of order, ACKs with
    /// SACK blocks, FIN, SYN, RST), mutated at random positions, cut short, with the
    /// checksums fixed up or not: no panic, every frame accounted for.
    #[test]
    fn mutated_segments_never_panic(
        inputs in proptest::collection::vec(
            (
                0usize..6,
                proptest::collection::vec((0usize..140, any::<u8>()), 0..6),
                proptest::option::of(0usize..200),
                any::<bool>(),
            ),
            1..8,
        )
    ) {
        let (mut h, c) = fuzz_target();
        let m = MSS_TS as u32;
        for (kind, muts, cut, fix) in inputs {
            let th_payload = match kind {
                0 => (h.seg(&c, PSH | ACK, 1, 1), data(500, 1)),
                1 => (h.seg(&c, ACK, 1001, 1), data(700, 2)),
                2 => {
                    let mut th = h.seg(&c, ACK, 1, 1 + m);
                    th.options.push_sack(c.our(1 + 2 * m), c.our(1 + 4 * m));
                    th.options.push_sack(c.our(1 + 4 * m), c.our(1 + 5 * m));
                    (th, Vec::new())
                }
                3 => (h.seg(&c, FIN | ACK, 1, 1), Vec::new()),
                4 => {
                    let mut th = h.seg(&c, SYN, 0, 0);
                    th.options = h.syn_options(ALL_OPTS, 0);
                    (th, Vec::new())
                }
                _ => (h.seg(&c, RST | ACK, 1, 1), Vec::new()),
            };
            let mut b = h.frame_bytes(&th_payload.0, &th_payload.1);
            for (at, v) in muts {
                if let Some(x) = b.get_mut(at) {
                    *x = v;
                }
            }
            if let Some(n) = cut {
                b.truncate(n);
            }
            if fix {
                refill_checksums(&mut b);
            }
            h.inject_bytes(&b);
            settle(&mut h, &c);
        }
    }

    /// A peer that sends arbitrary well-formed segments: any flags, sequence and ACK
    /// numbers near the edges, SACK blocks anywhere around the flight, windows, payloads,
    /// interleaved with writes, reads, time and completions. The counts of the retransmit
    /// queue must never underflow (a panic in a debug build), and every frame must stay
    /// accounted for.
    #[test]
    fn arbitrary_peer_never_panics(ops in proptest::collection::vec(peer_op(), 1..40)) {
        let (mut h, c) = fuzz_target();
        let m = MSS_TS as i64;
        for op in ops {
            match op {
                PeerOp::Seg { flags, seq, ack, win, len, sacks, old_ts } => {
                    let Some(conn) = h.stack.conn(c.id) else { break };
                    let rcv = 1 + conn.counters().bytes_received as i64;
                    let una = 1 + conn.counters().bytes_acked as i64;
                    let mut th = h.seg(&c, flags, (rcv + seq * 256) as u32, (una + ack * m / 2) as u32);
                    th.window = win;
                    if old_ts {
                        th.options.timestamps = Some((h.peer_ts().wrapping_sub(100), h.echo));
                    }
                    for (s, l) in sacks {
                        let s = (una + s * m / 2) as u32;
                        th.options.push_sack(c.our(s), c.our(s.wrapping_add((l * m / 2) as u32)));
                    }
                    h.inject(&th, &data(len, 0));
                    h.out();
                }
                PeerOp::Write(n) => {
                    h.stack.write(c.id, &data(n, 1));
                    h.out();
                }
                PeerOp::Read => {
                    h.read_all(&c);
                    h.out();
                }
                PeerOp::Wait(ms) => {
                    h.wait_ms(ms);
                    h.out();
                }
                PeerOp::Complete => h.complete_all(),
                PeerOp::Close => {
                    h.stack.close(c.id);
                    h.out();
                }
            }
            h.check_frames();
        }
        h.complete_all();
        h.stack.remove(c.id);
        h.check_frames();
        prop_assert_eq!(h.pool_len(), FRAMES);
    }
}

#[derive(Debug, Clone)]
enum PeerOp {
    Seg {
        flags: u8,
        /// In units of 256 bytes from RCV.NXT.
        seq: i64,
        /// In half-MSS units from SND.UNA.
        ack: i64,
        win: u16,
        len: usize,
        /// (start, length) in half-MSS units from SND.UNA.
        sacks: Vec<(i64, i64)>,
        old_ts: bool,
    },
    Write(usize),
    Read,
    Wait(u64),
    Complete,
    Close,
}

fn peer_op() -> impl Strategy<Value = PeerOp> {
    let flags = prop_oneof![
        8 => Just(ACK),
        2 => Just(PSH | ACK),
        1 => Just(FIN | ACK),
        1 => Just(RST),
        1 => Just(RST | ACK),
        1 => Just(SYN),
        1 => Just(SYN | ACK),
        1 => any::<u8>(),
    ];
    let seg = (
        flags,
        prop_oneof![3 => Just(0i64), 1 => -8i64..24],
        -4i64..24,
        prop_oneof![Just(0u16), Just(1u16), Just(PEER_WIN), any::<u16>()],
        prop_oneof![2 => Just(0usize), 1 => 1usize..1400],
        proptest::collection::vec((-2i64..24, 0i64..8), 0..4),
        proptest::bool::weighted(0.1),
    )
        .prop_map(|(flags, seq, ack, win, len, sacks, old_ts)| PeerOp::Seg {
            flags,
            seq,
            ack,
            win,
            len,
            sacks,
            old_ts,
        });
    prop_oneof![
        20 => seg,
        4 => (1usize..20_000).prop_map(PeerOp::Write),
        2 => Just(PeerOp::Read),
        4 => prop_oneof![Just(1u64), Just(50), Just(200), Just(1000), Just(5000)].prop_map(PeerOp::Wait),
        6 => Just(PeerOp::Complete),
        1 => Just(PeerOp::Close),
    ]
}

// ----- 10. zero window -----

#[test]
fn zero_window_persist_probe_then_data() {
    let mut h = Harness::new();
    let c = h.active_open(ALL_OPTS);
    // < . 1:1(0) ack 1 win 0
    h.ack(&c, 1, 0, &[]);
    assert!(h.out().is_empty());
    assert_eq!(h.conn(&c).info().snd_wnd, 0);
    // write(1000): nothing may go
    let payload = data(1000, 8);
    h.stack.write(c.id, &payload);
    assert!(h.out().is_empty(), "no data into a zero window");
    let rto = h.conn(&c).info().rto_us;
    assert_eq!(rto, RTO_MIN_US, "the handshake's RTT sample is ~0");
    // +0.2 (the persist timer: one RTO)
    // > . 0:0(0) ack 1       (window probe: SND.UNA − 1, no data, tcp_xmit_probe_skb)
    h.wait_us(rto);
    let out = h.out();
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].flags(), ACK);
    assert_eq!(c.seq(&out[0]), 0, "SND.UNA − 1");
    assert!(out[0].payload.is_empty());
    assert_eq!(h.conn(&c).counters().window_probes, 1);
    h.complete_all();
    // < . 1:1(0) ack 1 win 0   (still closed)
    h.ack(&c, 1, 0, &[]);
    assert!(h.out().is_empty());
    // +0.4 (backed off: twice the RTO)
    // > . 0:0(0) ack 1
    h.wait_us(2 * rto - 1);
    assert!(h.out().is_empty(), "the probe interval backs off");
    h.wait_us(1);
    let out = h.out();
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(c.seq(&out[0]), 0);
    h.complete_all();
    // < . 1:1(0) ack 1 win 100    (open: 12800 bytes)
    // > P. 1:1001(1000) ack 1
    h.ack(&c, 1, 100, &[]);
    let out = h.out();
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(c.seq(&out[0]), 1);
    assert_eq!(out[0].payload, payload);
    assert_eq!(out[0].flags(), PSH | ACK);
}

#[test]
fn window_below_one_segment_still_probes() {
    let mut h = Harness::new();
    let c = h.active_open(ALL_OPTS);
    // < . 1:1(0) ack 1 win 1      (128 bytes: less than the 1000-byte segment)
    h.ack(&c, 1, 1, &[]);
    let payload = data(1000, 8);
    h.stack.write(c.id, &payload);
    assert!(h.out().is_empty(), "the segment does not fit the window");
    // +0.2: the persist timer must run even though the window is not zero, or the
    // connection waits forever (`tcp_check_probe_timer` arms it whenever nothing is in
    // flight and nothing could be sent).
    // > . 0:0(0) ack 1
    h.wait_us(RTO_MIN_US);
    let out = h.out();
    assert_eq!(out.len(), 1, "a window probe: {out:?}");
    assert_eq!(c.seq(&out[0]), 0);
    h.complete_all();
    // < . 1:1(0) ack 1 win 100
    // > P. 1:1001(1000) ack 1
    h.ack(&c, 1, 100, &[]);
    let out = h.out();
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].payload, payload);
}

// ----- 11. ARP -----

fn arp_reply_from_peer() -> Vec<u8> {
    arp::build_frame(&NeighFrame {
        eth: arp::EthInfo {
            dst: OUR_MAC,
            src: PEER_MAC,
            vlan: None,
        },
        msg: NeighMsg::Arp(ArpRepr {
            op: ArpOp::Reply,
            sender_mac: PEER_MAC,
            sender_ip: PEER_IP,
            target_mac: OUR_MAC,
            target_ip: OUR_IP,
        }),
    })
}

#[test]
fn arp_request_first_then_reply_releases_the_syn() {
    let mut h = Harness::build(|_| {}, false);
    let id = h
        .stack
        .connect((IpAddr::V4(Ipv4Addr::from(PEER_IP)), RPORT))
        .expect("connect");
    // > ARP who-has 198.18.0.2 tell 198.18.0.1   (broadcast)
    let out = h.out();
    assert_eq!(out.len(), 1, "{out:?}");
    let req = out[0].arp.expect("an ARP request");
    assert_eq!(out[0].dst_mac, arp::BROADCAST_MAC);
    assert_eq!(out[0].src_mac, OUR_MAC);
    assert_eq!(req.op, ArpOp::Request);
    assert_eq!((req.sender_ip, req.sender_mac), (OUR_IP, OUR_MAC));
    assert_eq!(req.target_ip, PEER_IP);
    assert_eq!(h.stack.conn(id).expect("conn").state(), State::SynSent);
    h.complete_all();
    // < ARP 198.18.0.2 is-at 02:00:00:00:00:02
    h.inject_bytes(&arp_reply_from_peer());
    // > S 0:0(0) <...>      (to the MAC just learned)
    let out = h.out();
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].flags(), SYN);
    assert_eq!(out[0].dst_mac, PEER_MAC);
    h.complete_all();
    assert_eq!(h.pool_len(), FRAMES - 1, "only the SYN is held");
}

#[test]
fn arp_unanswered_retries_every_second_then_unreachable() {
    let mut h = Harness::build(|_| {}, false);
    let id = h
        .stack
        .connect((IpAddr::from(PEER_IP), RPORT))
        .expect("connect");
    // > ARP who-has 198.18.0.2   at 0, 1 and 2 s (retrans_time 1 s, mcast_solicit 3)
    let mut requests = Vec::new();
    for _ in 0..10 {
        for p in h.out() {
            assert!(p.arp.is_some(), "only ARP while unresolved: {p:?}");
            requests.push(h.now - T0);
        }
        h.complete_all();
        if h.stack.conn(id).expect("conn").state() == State::Closed {
            break;
        }
        h.wait_ms(500);
    }
    assert_eq!(
        requests,
        vec![0, 1_000_000, 2_000_000],
        "one request per second"
    );
    let conn = h.stack.conn(id).expect("conn");
    assert_eq!(conn.state(), State::Closed);
    assert_eq!(conn.close_reason(), Some(CloseReason::Unreachable));
    assert_eq!(h.pool_len(), FRAMES);
}

// ----- simultaneous open -----

#[test]
fn simultaneous_open_sends_syn_ack_and_establishes() {
    let mut h = Harness::new();
    let id = h
        .stack
        .connect((IpAddr::from(PEER_IP), RPORT))
        .expect("connect");
    // > S 0:0(0) <...>
    let out = h.out();
    let c = Tcb {
        id,
        lport: out[0].th().src_port,
        pport: RPORT,
        iss: out[0].th().seq.0,
        irs: PEER_ISS,
        opts: ALL_OPTS,
    };
    h.complete_all();
    // < S 0:0(0) <...>          (the peer opens at the same time: RFC 9293 §3.5 fig. 8)
    // > S. 0:0(0) ack 1 <...>
    let mut syn = h.seg(&c, SYN, 0, 0);
    syn.options = h.syn_options(ALL_OPTS, 0);
    h.inject(&syn, &[]);
    let out = h.out();
    assert_eq!(h.state(&c), State::SynReceived);
    assert_eq!(out.len(), 1, "a SYN-ACK: {out:?}");
    assert_eq!(out[0].flags(), SYN | ACK);
    assert_eq!((c.seq(&out[0]), c.ack(&out[0])), (0, 1));
    h.complete_all();
    // < . 1:1(0) ack 1
    let th = h.seg(&c, ACK, 1, 1);
    h.inject(&th, &[]);
    assert!(h.out().is_empty());
    assert_eq!(h.state(&c), State::Established);
    assert_eq!(h.pool_len(), FRAMES);
}

// ----- receive window, delayed ACK, PAWS -----

#[test]
fn advertised_right_edge_never_moves_left() {
    // A 4 KiB receive buffer the application does not read.
    let mut h = Harness::with(|cfg| cfg.conn.rcvbuf = 4096);
    let c = h.passive_open(ALL_OPTS, 1);
    let m = MSS_TS as u32;
    // The SYN-ACK offered 4096 (unscaled): the edge is at 1 + 4096.
    let mut edge = Seq(c.irs).add(1 + 4096);
    let mut wins = Vec::new();
    // < . 1:1449(1448) ack 1
    // > . 1:1(0) ack 1449 win 21       (2648 free, rounded up to keep the edge: 2688)
    // < . 1449:2897(1448) ack 1
    // > . 1:1(0) ack 2897 win 10       (1200 free, the edge kept: 1280)
    // < . 2897:4345(1448) ack 1        (runs past the edge: taken whole, as Linux does)
    // > . 1:1(0) ack 4345 win 0
    for i in 0..3 {
        let th = h.seg(&c, ACK, 1 + i * m, 1);
        h.inject(&th, &data(MSS_TS, i as u8));
        let out = h.drain();
        assert_eq!(out.len(), 1, "{out:?}");
        let e = out[0].th().ack.add(u32::from(out[0].win()) << WSCALE);
        assert!(
            e.ge(edge),
            "right edge moved left: {edge:?} → {e:?} ({out:?})"
        );
        edge = e;
        wins.push(out[0].win());
    }
    assert_eq!(wins, vec![21, 10, 0]);
    // < . 4345:5793(1448) ack 1        (into a zero window: dropped)
    // > . 1:1(0) ack 4345 win 0
    let th = h.seg(&c, ACK, 1 + 3 * m, 1);
    h.inject(&th, &data(MSS_TS, 3));
    let out = h.drain();
    assert_eq!((c.ack(&out[0]), out[0].win()), (1 + 3 * m, 0));
    assert_eq!(h.conn(&c).counters().out_of_window, 1);
    // read() = 4344; the window reopens at once (`tcp_cleanup_rbuf`)
    // > . 1:1(0) ack 4345 win 32
    assert_eq!(h.read_all(&c).len(), 3 * MSS_TS);
    let out = h.out();
    assert_eq!(out.len(), 1, "a window update: {out:?}");
    assert_eq!(out[0].win(), 32);
    h.complete_all();
    assert_eq!(h.pool_len(), FRAMES);
}

#[test]
fn delayed_ack_after_the_quick_acks() {
    let mut h = Harness::new();
    let c = h.passive_open(ALL_OPTS, 1);
    // 16 segments, 16 immediate ACKs (TCP_MAX_QUICKACKS)
    for i in 0..16u32 {
        let th = h.seg(&c, PSH | ACK, 1 + i * 100, 1);
        h.inject(&th, &data(100, 0));
        assert_eq!(h.drain().len(), 1, "quick ACK {i}");
    }
    // < P. 1601:1701(100) ack 1
    // (no ACK: delayed)
    let th = h.seg(&c, PSH | ACK, 1601, 1);
    h.inject(&th, &data(100, 0));
    assert!(h.out().is_empty());
    // +0.039 nothing; +0.001
    // > . 1:1(0) ack 1701          (TCP_DELACK_MIN, 40 ms)
    h.wait_ms(39);
    assert!(h.out().is_empty());
    h.wait_ms(1);
    let out = h.out();
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(c.ack(&out[0]), 1701);
    assert_eq!(h.conn(&c).counters().delayed_acks, 1);
    // < . 1701:3149(1448) ack 1   (delayed)
    // < . 3149:4597(1448) ack 1   (two full segments unACKed: ACK now, RFC 5681 §4.2)
    // > . 1:1(0) ack 4597
    let th = h.seg(&c, ACK, 1701, 1);
    h.inject(&th, &data(MSS_TS, 1));
    assert!(h.drain().is_empty());
    let th = h.seg(&c, ACK, 1701 + MSS_TS as u32, 1);
    h.inject(&th, &data(MSS_TS, 2));
    let out = h.drain();
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(c.ack(&out[0]), 1701 + 2 * MSS_TS as u32);
}

#[test]
fn paws_drops_a_segment_with_an_old_timestamp() {
    let mut h = Harness::new();
    let c = h.passive_open(ALL_OPTS, 1);
    // < P. 1:101(100) ack 1 <nop,nop,TS val P−1000 ecr X>   (older than TS.Recent)
    // > . 1:1(0) ack 1                                        (RFC 7323 §5.3: ACK, drop)
    let mut th = h.seg(&c, PSH | ACK, 1, 1);
    th.options.timestamps = Some((h.peer_ts().wrapping_sub(1000), h.echo));
    h.inject(&th, &data(100, 0));
    let out = h.drain();
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(c.ack(&out[0]), 1);
    assert_eq!(h.conn(&c).counters().paws_rejected, 1);
    assert_eq!(h.conn(&c).recv_available(), 0);
    // The same segment with a current timestamp is taken.
    let th = h.seg(&c, PSH | ACK, 1, 1);
    h.inject(&th, &data(100, 0));
    assert_eq!(h.conn(&c).recv_available(), 100);
}

// ----- SYN-SENT and SYN-RECEIVED -----

#[test]
fn syn_sent_bad_ack_draws_rst_and_rst_ack_refuses() {
    let mut h = Harness::new();
    let id = h
        .stack
        .connect((IpAddr::from(PEER_IP), RPORT))
        .expect("connect");
    let out = h.out();
    let c = Tcb {
        id,
        lport: out[0].th().src_port,
        pport: RPORT,
        iss: out[0].th().seq.0,
        irs: PEER_ISS,
        opts: ALL_OPTS,
    };
    h.complete_all();
    // < S. 0:0(0) ack 5          (acknowledges what we never sent)
    // > R 5:5(0)                 (<SEQ=SEG.ACK><CTL=RST>, RFC 9293 §3.10.7.3)
    let mut th = h.seg(&c, SYN | ACK, 0, 5);
    th.options = h.syn_options(ALL_OPTS, h.echo);
    h.inject(&th, &[]);
    let out = h.drain();
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].flags(), RST);
    assert_eq!(c.seq(&out[0]), 5);
    assert_eq!(h.state(&c), State::SynSent);
    // < R 0:0(0)                 (no ACK: ignored)
    let th = h.seg(&c, RST, 0, 0);
    h.inject(&th, &[]);
    assert!(h.drain().is_empty());
    assert_eq!(h.state(&c), State::SynSent);
    // < R. 0:0(0) ack 1          (connection refused)
    let th = h.seg(&c, RST | ACK, 0, 1);
    h.inject(&th, &[]);
    assert!(h.out().is_empty());
    assert_eq!(h.state(&c), State::Closed);
    assert_eq!(h.conn(&c).close_reason(), Some(CloseReason::Refused));
    h.complete_all();
    assert_eq!(h.pool_len(), FRAMES);
}

#[test]
fn syn_ack_retries_exhausted_frees_the_half_open_slot() {
    let mut h = Harness::with(|cfg| cfg.max_syn_backlog = 1);
    h.stack.listen(LPORT, 16).expect("listen");
    let c = Tcb {
        id: 0,
        lport: LPORT,
        pport: PPORT,
        iss: 0,
        irs: PEER_ISS,
        opts: ALL_OPTS,
    };
    // < S 0:0(0)
    // > S. 0:0(0) ack 1   at 0, 1, 3, 7, 15, 31 s, then given up at 63 s
    //   (tcp_synack_retries = 5)
    let mut syn = h.seg(&c, SYN, 0, 0);
    syn.options = h.syn_options(ALL_OPTS, 0);
    h.inject(&syn, &[]);
    let mut synacks = h.drain().len();
    h.complete_all();
    for s in 1..=70 {
        h.wait_ms(1000);
        synacks += h.out().len();
        h.complete_all();
        if s == 62 {
            assert_eq!(h.stack.conn_ids().count(), 1, "still half-open at 62 s");
        }
    }
    assert_eq!(synacks, 6);
    assert_eq!(h.pool_len(), FRAMES);
    assert_eq!(
        h.stack.conn_ids().count(),
        0,
        "the dead half-open connection is gone"
    );
    // The slot is free: the same peer port connects.
    let mut syn = h.seg(&c, SYN, 0, 0);
    syn.options = h.syn_options(ALL_OPTS, 0);
    h.inject(&syn, &[]);
    let out = h.drain();
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].flags(), SYN | ACK);
}

#[test]
fn api_errors() {
    use super::stack::TcpError;
    let mut h = Harness::new();
    assert_eq!(
        h.stack.connect(("2001:db8::1".parse().expect("v6"), 80)),
        Err(TcpError::Family)
    );
    assert_eq!(
        h.stack.connect((IpAddr::from([10, 0, 0, 1]), 80)),
        Err(TcpError::NoRoute),
        "off the subnet with no gateway"
    );
    h.stack.listen(LPORT, 1).expect("listen");
    assert_eq!(h.stack.listen(LPORT, 1), Err(TcpError::InUse));
    assert_eq!(h.stack.write(77, b"x"), 0);
    assert_eq!(h.stack.read(77, &mut [0u8; 4]), 0);
    h.stack.close(77);
    h.stack.abort(77);
    h.stack.remove(77);
    assert!(h.out().is_empty());
}

#[test]
fn abort_sends_rst_and_frees_everything() {
    let mut h = Harness::new();
    let c = h.passive_open(ALL_OPTS, 1);
    h.stack.write(c.id, &data(5000, 1));
    h.out();
    // < P. 1:101(100) ack 1          (data waiting in the receive queue)
    let th = h.seg(&c, PSH | ACK, 1, 1);
    h.inject(&th, &data(100, 0));
    h.drain();
    // abort()
    // > R. 5001:5001(0) ack 101      (RFC 9293 §3.10.5)
    h.stack.abort(c.id);
    let out = h.drain();
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].flags(), RST | ACK);
    assert_eq!((c.seq(&out[0]), c.ack(&out[0])), (5001, 101));
    assert_eq!(h.state(&c), State::Closed);
    assert_eq!(h.conn(&c).close_reason(), Some(CloseReason::Aborted));
    h.complete_all();
    assert_eq!(h.pool_len(), FRAMES);
}

// ----- without timestamps -----

#[test]
fn no_timestamps_mss_1460_and_four_sack_blocks() {
    let mut h = Harness::new();
    let o = PeerOpts {
        sack: true,
        ts: false,
        wscale: true,
    };
    let c = h.active_open(o);
    // write(3000)
    // > . 1:1461(1460) ack 1           (no options: a 20-byte header)
    // > . 1461:2921(1460) ack 1
    // > P. 2921:3001(80) ack 1
    h.stack.write(c.id, &data(3000, 2));
    let out = h.out();
    assert_eq!(out.len(), 3, "{out:?}");
    for (i, p) in out.iter().enumerate() {
        assert_eq!(c.seq(p), 1 + (i * MSS_NO_TS) as u32);
        assert_eq!(p.th().header_len(), 20);
    }
    assert_eq!(out[2].payload.len(), 3000 - 2 * MSS_NO_TS);
    // Five islands out of order: the ACK carries four SACK blocks (no timestamps: 4 fit
    // in 40 option bytes, RFC 2018 §3), most recent first.
    // < . 101:201(100) ... < . 901:1001(100)
    // > . ack 1 <nop,nop,sack 901:1001 701:801 501:601 301:401>
    let rel = |a: u32| PEER_ISS.wrapping_add(a);
    let mut last = Vec::new();
    for k in 0..5u32 {
        let th = h.seg(&c, ACK, 101 + 200 * k, 1);
        h.inject(&th, &data(100, 0));
        last = h.drain();
    }
    assert_eq!(
        last[0].sacks(),
        vec![
            (rel(901), rel(1001)),
            (rel(701), rel(801)),
            (rel(501), rel(601)),
            (rel(301), rel(401))
        ]
    );
}

#[test]
fn out_of_order_while_sending_still_reports_sack() {
    let mut h = Harness::new();
    let c = h.passive_open(ALL_OPTS, 1);
    let rel = |a: u32| PEER_ISS.wrapping_add(a);
    // write(2000), not yet sent, then:
    // < . 1001:2001(1000) ack 1       (a hole at 1:1001)
    // > . 1:1(0) ack 1 <...,sack 1001:2001>    (the SACK must reach the peer: data
    //                                          segments have no room for it)
    // > . 1:1449(1448) ack 1
    // > P. 1449:2001(552) ack 1
    h.stack.write(c.id, &data(2000, 1));
    let th = h.seg(&c, ACK, 1001, 1);
    h.inject(&th, &data(1000, 2));
    let out = h.drain();
    assert!(
        out.iter()
            .any(|p| p.sacks() == vec![(rel(1001), rel(2001))]),
        "no segment told the peer about 1001:2001: {out:?}"
    );
    let data_segs: Vec<_> = out.iter().filter(|p| !p.payload.is_empty()).collect();
    assert_eq!(data_segs.len(), 2, "{out:?}");
    for p in data_segs {
        assert_eq!(c.ack(p), 1);
    }
}

// ----- GRO on receive -----

/// `n` in-order full-sized segments from `start` (relative), PSH on the last as a
/// sender's GSO sets it, as frames.
fn peer_run(h: &mut Harness, c: &Tcb, start: u32, n: usize, seed: u8) -> (Vec<Vec<u8>>, Vec<u8>) {
    let mut frames = Vec::new();
    let mut bytes = Vec::new();
    for i in 0..n {
        let d = data(MSS_TS, seed.wrapping_add(i as u8));
        let fl = if i + 1 == n { ACK | PSH } else { ACK };
        let th = h.seg(c, fl, start + (i * MSS_TS) as u32, 1);
        frames.push(h.frame_bytes(&th, &d));
        bytes.extend_from_slice(&d);
    }
    (frames, bytes)
}

#[test]
fn gro_packet_is_one_segment_one_ack_and_every_byte_in_order() {
    let mut h = Harness::new();
    let c = h.passive_open(ALL_OPTS, 1);
    // < . 1:14481(14480) ack 1       (10 frames, merged by GRO into one packet)
    let (frames, want) = peer_run(&mut h, &c, 1, 10, 40);
    let g = h.inject_gro(&frames);
    assert_eq!(
        (g.packets_out, g.frames_out, g.singles_out),
        (1, 10, 0),
        "{g:?}"
    );
    // > . 1:1(0) ack 14481           (one ACK for the packet, as the kernel sends for a GRO skb)
    let out = h.drain();
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(c.ack(&out[0]), 1 + 10 * MSS_TS as u32);
    let k = h.conn(&c).counters();
    // The handshake's ACK, then the ten frames (`tcp_segs_in` counts `gso_segs`).
    assert_eq!((k.segs_in, k.gro_packets_in), (1 + 10, 1), "{k:?}");
    assert_eq!(h.read_all(&c), want);
    h.complete_all();
    assert_eq!(h.pool_len(), FRAMES);
}

#[test]
fn gro_packets_around_a_gap_go_out_of_order_then_fill_in() {
    let mut h = Harness::new();
    let c = h.passive_open(ALL_OPTS, 1);
    let (a, da) = peer_run(&mut h, &c, 1, 4, 50);
    let (b, db) = peer_run(&mut h, &c, 1 + 5 * MSS_TS as u32, 5, 60);
    let (gap, dg) = peer_run(&mut h, &c, 1 + 4 * MSS_TS as u32, 1, 70);
    // Segments 1–4, then 6–10 (5 lost): GRO ends the first packet at the PSH and the
    // second at its own; the second is out of order.
    let g = h.inject_gro(&[a, b].concat());
    assert_eq!(g.packets_out, 2, "{g:?}");
    let out = h.drain();
    let rel = |x: u32| PEER_ISS.wrapping_add(x);
    let last = out.last().expect("an ACK");
    assert_eq!(c.ack(last), 1 + 4 * MSS_TS as u32);
    assert_eq!(
        last.sacks(),
        vec![(rel(1 + 5 * MSS_TS as u32), rel(1 + 10 * MSS_TS as u32))],
        "the out-of-order packet SACKed whole"
    );
    assert_eq!(h.conn(&c).counters().ofo_queued, 5, "each frame queued");
    // < . 5793:7241(1448)            (the hole: everything becomes readable)
    h.inject_gro(&gap);
    let out = h.drain();
    assert_eq!(c.ack(out.last().expect("an ACK")), 1 + 10 * MSS_TS as u32);
    assert_eq!(h.read_all(&c), [da, dg, db].concat());
    h.complete_all();
    assert_eq!(h.pool_len(), FRAMES);
}

#[test]
fn gro_merged_fin_closes_after_the_data_and_bad_frames_stay_out() {
    let mut h = Harness::new();
    let c = h.passive_open(ALL_OPTS, 1);
    let (mut frames, want) = peer_run(&mut h, &c, 1, 3, 80);
    // The last segment carries FIN (GRO takes it into the packet and ends it there).
    let d = data(MSS_TS, 90);
    let th = h.seg(&c, ACK | FIN, 1 + 3 * MSS_TS as u32, 1);
    let mut fin = h.frame_bytes(&th, &d);
    // A frame with a broken TCP checksum in front: GRO passes it, the stack drops it.
    let mut bad = h.frame_bytes(&h.seg(&c, ACK, 1, 1), &data(MSS_TS, 1));
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    frames[2] = {
        // Segment 3 without PSH, so segment 4 (with the FIN) joins it.
        let th = h.seg(&c, ACK, 1 + 2 * MSS_TS as u32, 1);
        h.frame_bytes(&th, &want[2 * MSS_TS..])
    };
    frames.insert(0, std::mem::take(&mut bad));
    frames.push(std::mem::take(&mut fin));
    let g = h.inject_gro(&frames);
    assert_eq!(g.pass_bad_l4_checksum, 1, "{g:?}");
    assert_eq!(h.stack.counters().in_csum_errors, 1);
    let out = h.drain();
    assert_eq!(
        c.ack(out.last().expect("an ACK")),
        2 + 4 * MSS_TS as u32,
        "data and FIN"
    );
    assert_eq!(h.state(&c), State::CloseWait);
    assert_eq!(h.read_all(&c), [want, d].concat());
    h.complete_all();
}

// ----- lost retransmissions and tail loss probes -----

#[test]
fn lost_retransmission_found_by_a_sack_of_later_data_and_sent_again() {
    let mut h = Harness::new();
    let c = h.active_open(ALL_OPTS);
    let m = MSS_TS as u32;
    let (_, sent) = h.write_ten_out(&c, 30, 8);
    h.wait_ms(10);
    // < . 1:1(0) ack 1449 <sack 2897:7241>     (segment 2 lost)
    h.ack(&c, 1 + m, 2000, &[(1 + 2 * m, 1 + 5 * m)]);
    // > . 1449:2897(1448)                       (the hole) and new data after it
    let out = h.out();
    assert_eq!(c.seq(&out[0]), 1 + m);
    let new: Vec<u32> = out[1..].iter().map(|p| c.seq(p)).collect();
    assert!(
        !new.is_empty(),
        "PRR lets new data follow the retransmission: {out:?}"
    );
    assert!(new.iter().all(|&s| s > 10 * m), "{new:?}");
    h.complete_all();
    h.wait_ms(10);
    // < . 1:1(0) ack 1449 <sack 14481:15929 2897:7241>
    //   (data sent after the retransmission arrived; the retransmission did not)
    h.ack(
        &c,
        1 + m,
        2000,
        &[(1 + 10 * m, 1 + 11 * m), (1 + 2 * m, 1 + 5 * m)],
    );
    // > . 1449:2897(1448)                       (again, from the same frame, no RTO)
    // > . 7241:8689(1448) 8689:10137(1448)      (RACK: sent before 14481, which was
    //                                            delivered, and its RTT has passed)
    let out = h.out();
    assert!(!out.is_empty(), "resent at once");
    assert_eq!(c.seq(&out[0]), 1 + m);
    assert_eq!(out[0].idx, sent[1].idx);
    let rest: Vec<u32> = out[1..].iter().map(|p| c.seq(p)).collect();
    assert_eq!(rest, [1 + 5 * m, 1 + 6 * m], "as far as PRR allows");
    let k = h.conn(&c).counters();
    assert_eq!(
        (k.lost_retransmits, k.retrans_segs, k.timeouts),
        (1, 4, 0),
        "{k:?}"
    );
    h.complete_all();
}

/// A passive open with a 10 ms handshake RTT (minimum RTT 10 ms: RACK's reordering
/// window is 2.5 ms), 20 segments written, the first 10 sent (cwnd 10) and completed.
fn ten_segments_out_rtt_10ms(seed: u8) -> (Harness, Tcb) {
    let mut h = Harness::new();
    let c = h.passive_open(ALL_OPTS, 10);
    h.write_ten_out(&c, 20, seed);
    (h, c)
}

#[test]
fn rack_waits_a_quarter_rtt_for_a_late_segment_and_after_reordering_for_three_sacks() {
    let (mut h, c) = ten_segments_out_rtt_10ms(9);
    let m = MSS_TS as u32;
    h.wait_ms(10);
    // < . 1:1(0) ack 1449 <sack 2897:4345>      (2 late, 3 here: one SACK, below dupthresh)
    h.ack(&c, 1 + m, 2000, &[(1 + 2 * m, 1 + 3 * m)]);
    let out = h.out();
    assert!(
        out.iter().all(|p| c.seq(p) > 10 * m),
        "no retransmission, new data only: {out:?}"
    );
    let info = h.conn(&c).info();
    assert_eq!((info.ca_state, info.reo_wnd_us), (CaState::Disorder, 2500));
    h.complete_all();
    // +1 ms < . 1:1(0) ack 4345                (2 arrives, inside the window)
    h.wait_ms(1);
    h.ack(&c, 1 + 3 * m, 2000, &[]);
    h.out();
    h.complete_all();
    let k = h.conn(&c).counters();
    assert_eq!((k.retrans_segs, k.reordering, k.fast_recoveries), (0, 1, 0));
    assert!(h.conn(&c).info().reordering_seen);
    // Reordering seen: three SACKs above a hole are no longer a loss at once.
    // < . 1:1(0) ack 4345 <sack 5793:10137>    (4 late, 5-7 here)
    h.ack(&c, 1 + 3 * m, 2000, &[(1 + 4 * m, 1 + 7 * m)]);
    let out = h.out();
    assert!(out.iter().all(|p| c.seq(p) != 1 + 3 * m), "{out:?}");
    assert_eq!(h.conn(&c).counters().retrans_segs, 0);
    assert_eq!(h.conn(&c).info().ca_state, CaState::Disorder);
    h.complete_all();
    // +3 ms: RACK's timer (RTT 11 ms + 2.5 ms after 4 went out) has fired: 4 is lost.
    // > . 4345:5793(1448)
    h.wait_ms(3);
    let out = h.out();
    assert_eq!(out.first().map(|p| c.seq(p)), Some(1 + 3 * m), "{out:?}");
    let k = h.conn(&c).counters();
    assert_eq!((k.retrans_segs, k.fast_recoveries), (1, 1));
    assert_eq!(h.conn(&c).info().ca_state, CaState::Recovery);
    h.complete_all();
}

#[test]
fn dsack_of_every_retransmission_undoes_the_recovery_and_opens_the_window() {
    let (mut h, c) = ten_segments_out_rtt_10ms(10);
    let m = MSS_TS as u32;
    let prior = h.conn(&c).info();
    h.wait_ms(10);
    // < . 1:1(0) ack 1449 <sack 2897:7241>      (2 late, 3-5 here: lost at once, no
    //                                            reordering seen yet)
    h.ack(&c, 1 + m, 2000, &[(1 + 2 * m, 1 + 5 * m)]);
    // > . 1449:2897(1448)
    let out = h.out();
    assert_eq!(c.seq(&out[0]), 1 + m);
    let info = h.conn(&c).info();
    assert_eq!(info.ca_state, CaState::Recovery);
    assert!(info.cwnd < prior.cwnd, "{info:?}");
    h.complete_all();
    // +1 ms < . 1:1(0) ack 7241                (the original 2 arrived)
    h.wait_ms(1);
    h.ack(&c, 1 + 5 * m, 2000, &[]);
    h.out();
    h.complete_all();
    // +1 ms < . 1:1(0) ack 7241 <sack 1449:2897> (D-SACK: the retransmission was a duplicate)
    h.wait_ms(1);
    h.ack(&c, 1 + 5 * m, 2000, &[(1 + m, 1 + 2 * m)]);
    h.out();
    h.complete_all();
    let info = h.conn(&c).info();
    let k = h.conn(&c).counters();
    assert_eq!(
        (k.dsacks_in, k.dsack_undos, k.retrans_segs),
        (1, 1, 1),
        "{k:?}"
    );
    assert_ne!(info.ca_state, CaState::Recovery, "{info:?}");
    assert!(info.cwnd >= prior.cwnd, "cwnd back: {info:?}");
    assert_eq!(info.ssthresh, prior.ssthresh, "ssthresh back: {info:?}");
    assert!(info.reordering_seen);
    // The D-SACK also doubled RACK's window: 2 × min RTT / 4.
    assert_eq!(info.reo_wnd_us, 5000, "{info:?}");
}

#[test]
fn tail_loss_probe_after_two_srtt_then_sack_of_it_recovers_the_hole() {
    let mut h = Harness::new();
    // SRTT 10 ms from the handshake.
    let c = h.passive_open(ALL_OPTS, 10);
    let m = MSS_TS as u32;
    let payload = data(5 * MSS_TS, 9);
    h.stack.write(c.id, &payload);
    let sent = h.out();
    assert_eq!(sent.len(), 5);
    h.complete_all();
    // +0.010 < . 1:1(0) ack 4345            (segments 4 and 5 are lost: the ACK clock stops)
    h.wait_ms(10);
    h.ack(&c, 1 + 3 * m, PEER_WIN, &[]);
    assert!(h.out().is_empty());
    // The probe timer: 2·SRTT + 2 ms after the ACK, well before the 200 ms RTO.
    let srtt = u64::from(h.conn(&c).info().srtt_us.expect("an RTT sample"));
    h.wait_us(2 * srtt + 2_000 - 1);
    assert!(h.out().is_empty(), "not yet");
    h.wait_us(1);
    // > P. 5793:7241(1448)                   (the probe: the last segment, same frame)
    let out = h.out();
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(c.seq(&out[0]), 1 + 4 * m);
    assert_eq!(out[0].idx, sent[4].idx);
    let k = h.conn(&c).counters();
    assert_eq!(
        (k.tlp_probes, k.retrans_segs, k.timeouts),
        (1, 1, 0),
        "{k:?}"
    );
    h.complete_all();
    // < . 1:1(0) ack 4345 <sack 5793:7241>   (the probe arrived: segment 4 is the hole)
    h.wait_ms(10);
    h.ack(&c, 1 + 3 * m, PEER_WIN, &[(1 + 4 * m, 1 + 5 * m)]);
    // > . 4345:5793(1448)                    (fast recovery, no RTO)
    let out = h.out();
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(c.seq(&out[0]), 1 + 3 * m);
    assert_eq!(h.conn(&c).info().ca_state, CaState::Recovery);
    h.complete_all();
    // < . 1:1(0) ack 7241
    h.ack(&c, 1 + 5 * m, PEER_WIN, &[]);
    assert!(h.out().is_empty());
    let k = h.conn(&c).counters();
    assert_eq!(
        (k.retrans_segs, k.timeouts, k.fast_recoveries),
        (2, 0, 1),
        "{k:?}"
    );
    assert_eq!(h.conn(&c).info().ca_state, CaState::Open);
}

#[test]
fn tail_loss_probe_not_armed_for_one_segment_when_the_rto_comes_first() {
    let mut h = Harness::new();
    let c = h.passive_open(ALL_OPTS, 10);
    h.stack.write(c.id, &data(1000, 3));
    assert_eq!(h.out().len(), 1);
    h.complete_all();
    // One segment: 2·SRTT + 200 ms exceeds the 200 ms RTO, which fires instead.
    h.wait_us(RTO_MIN_US);
    let out = h.out();
    assert_eq!(out.len(), 1);
    let k = h.conn(&c).counters();
    assert_eq!((k.tlp_probes, k.timeouts), (0, 1), "{k:?}");
}
