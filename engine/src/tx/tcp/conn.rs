//! One connection's transmission control block and its state machine (RFC 9293 §3.10,
//! with RFC 5961's defences, RFC 7323's timestamps and window scaling, RFC 2018 SACK,
//! RFC 6675 loss recovery, RFC 6298 timers, RFC 6937 PRR), in the shape of the kernel's
//! `tcp_rcv_established` / `tcp_rcv_state_process` and `tcp_write_xmit`.
//!
//! The send buffer lives in UMEM frames: [`Conn::write`] puts each MSS of payload in its own
//! frame, behind the room its headers will take, and remembers the payload's checksum
//! partial sum. [`Conn::output`] gathers consecutive unsent segments into a super-segment
//! of up to `size_goal` (what cwnd and the peer's window allow, at most 44 MSS: 64 KiB)
//! and has GSO write each segment's headers from one template. Frames stay on the
//! retransmit queue, reference-counted ([`super::frames`]), until they are ACKed.
//!
//! Counting follows the kernel: `packets_out`, `sacked_out`, `lost_out` and
//! `retrans_out` in segments, in flight = packets_out − (sacked_out + lost_out) +
//! retrans_out (`tcp_packets_in_flight`), cwnd in segments.

use std::{collections::VecDeque, net::IpAddr};

use hdrhistogram::Histogram;

use super::{
    cc::{self, CcKind, CongestionControl, Prr},
    ooo::{Insert, OooQueue, Refused},
    rack::{Rack, Verdict},
    rtt::RttEstimator,
    sack,
    stack::{write_ip_tcp, Ctx, TxFrame},
    Seq,
};
use crate::{
    sys::Frame,
    tx::{
        gso::GsoTemplate,
        ip::{self, IpIdent},
        neigh::Resolve,
    },
    wire::{
        checksum,
        tcp::{flags, TcpHeader, TcpOptions},
    },
};

/// Connection states (RFC 9293 §3.3.2). LISTEN lives in the stack, not here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum State {
    /// SYN sent, waiting for SYN-ACK.
    SynSent,
    /// SYN received and SYN-ACK sent.
    SynReceived,
    /// Open.
    Established,
    /// We closed; our FIN not yet ACKed.
    FinWait1,
    /// Our FIN ACKed; waiting for the peer's.
    FinWait2,
    /// The peer closed; we may still send.
    CloseWait,
    /// Both closed at once; waiting for the ACK of our FIN.
    Closing,
    /// The peer closed, then we did; waiting for the ACK of our FIN.
    LastAck,
    /// Both closed; waiting 2·MSL for stray segments.
    TimeWait,
    /// Gone (reset, aborted, or done).
    Closed,
}

/// Why a connection ended badly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    /// Closed normally.
    Normal,
    /// The peer reset it.
    Reset,
    /// The peer refused the connection (RST in SYN-SENT).
    Refused,
    /// Too many retransmissions (`tcp_retries2` / `tcp_syn_retries`).
    TimedOut,
    /// The next hop never answered ARP/ND.
    Unreachable,
    /// Aborted locally.
    Aborted,
}

/// The loss-recovery state (the kernel's `icsk_ca_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CaState {
    /// Nothing wrong.
    Open,
    /// Duplicate ACKs or SACKs seen, not yet enough to call a loss.
    Disorder,
    /// Fast recovery (RFC 6675 / RFC 6582) until `high_seq` is ACKed.
    Recovery,
    /// After an RTO until `high_seq` is ACKed.
    Loss,
}

/// Where the bytes of a write come from.
pub(crate) enum WriteSrc<'a> {
    /// A slice, consumed from the front: copied and summed in one pass
    /// ([`checksum::copy_and_sum`]).
    Bytes(&'a [u8]),
    /// Written in place by the application, called once per frame with the exact room to
    /// fill (it must fill all of it); summed after.
    Fill(&'a mut dyn FnMut(&mut [u8])),
}

impl WriteSrc<'_> {
    /// Fills `dst` with the next `dst.len()` bytes and returns their partial sum.
    fn put(&mut self, dst: &mut [u8]) -> u32 {
        match self {
            WriteSrc::Bytes(b) => {
                let n = dst.len().min(b.len());
                let (now, rest) = b.split_at(n);
                *b = rest;
                checksum::copy_and_sum(dst, now, 0)
            }
            WriteSrc::Fill(f) => {
                f(dst);
                checksum::sum(dst, 0)
            }
        }
    }
}

/// Per-connection settings.
#[derive(Debug, Clone)]
pub struct ConnConfig {
    /// Congestion control.
    pub cc: CcKind,
    /// Receive buffer in bytes: the most we advertise. Default 4 MiB (`tcp_rmem[2]` is
    /// 6 MiB; 4 MiB keeps 1000 connections within a UMEM of 64 Ki frames).
    pub rcvbuf: u32,
    /// Send buffer in bytes: what `write` accepts beyond snd_una. Default 4 MiB (the
    /// kernel's `tcp_wmem[2]`).
    pub sndbuf: u32,
    /// Unsent bytes (written, not yet sent) beyond which `write` takes no more, the
    /// kernel's `TCP_NOTSENT_LOWAT`; 0 = no limit (the kernel's default). Default 128 KiB:
    /// data written megabytes ahead of its transmission has left the CPU's caches by the
    /// time its frame, its parked-frame slot and its queue entry are touched again, so
    /// keeping the unsent part small keeps the send path's working set in cache without
    /// limiting what is in flight (that is `sndbuf`'s and cwnd's). Measured in
    /// docs/PERFORMANCE.md ("Unsent data kept small").
    pub notsent_lowat: u32,
    /// Nagle's algorithm (RFC 9293 §3.7.4). Off by default: skiff is a traffic tool, and
    /// its writes are large (the kernel's `TCP_NODELAY`).
    pub nagle: bool,
    /// Pace through the fq qdisc at the rate `tcp_update_pacing_rate` derives.
    pub pacing: bool,
    /// Our MSS on the wire (from the MTU): 1460 for a 1500-byte MTU over IPv4.
    pub mss: u16,
    /// Record every RTT sample in a histogram.
    pub rtt_histogram: bool,
    /// TIME_WAIT length: 60 s (`TCP_TIMEWAIT_LEN`).
    pub time_wait_us: u64,
}

impl Default for ConnConfig {
    fn default() -> Self {
        ConnConfig {
            cc: CcKind::Cubic,
            rcvbuf: 4 << 20,
            sndbuf: 4 << 20,
            notsent_lowat: 128 << 10,
            nagle: false,
            pacing: true,
            mss: 1460,
            rtt_histogram: true,
            time_wait_us: 60_000_000,
        }
    }
}

/// Delayed-ACK timeout: 40 ms (`TCP_DELACK_MIN`).
pub const DELACK_US: u64 = 40_000;
/// Quick ACKs at the start of a connection: 16 (`TCP_MAX_QUICKACKS`).
const MAX_QUICKACKS: u32 = 16;
/// SYN retransmissions before giving up: 6 (`tcp_syn_retries`), about 127 s.
const SYN_RETRIES: u32 = 6;
/// SYN-ACK retransmissions before a passive open gives up: 5 (`tcp_synack_retries`),
/// about 63 s (1 + 2 + 4 + 8 + 16 + 32).
const SYNACK_RETRIES: u32 = 5;
/// Data retransmissions (RTO expiries in a row) before giving up: 15 (`tcp_retries2`).
const RETRIES2: u32 = 15;
/// Duplicate-ACK threshold (RFC 5681 §3.2, `tcp_reordering` = 3).
const DUPTHRESH: u32 = 3;
/// Added to 2·SRTT for a loss probe with more than one segment in flight: 2 ms, the
/// kernel's `TCP_TIMEOUT_MIN` (2 jiffies at HZ = 1000) in `tcp_schedule_loss_probe`.
const TLP_SLACK_US: u64 = 2_000;
/// Out-of-window ACKs are rate limited to one per 500 ms (`tcp_invalid_ratelimit`).
const OOW_RATELIMIT_US: u64 = 500_000;
/// Segments per super-segment at most: 44 × 1448 B = 63712 B, inside GSO's 64 KiB
/// (`GSO_LEGACY_MAX_SIZE` 65536 less headers), as `tcp_tso_autosize` caps `size_goal`.
const MAX_GSO_SEGS: u32 = 44;
/// `tcp_limit_output_bytes`: 4 MiB per connection in host queues, what Linux 6.18 (this
/// machine's kernel) has by default; older kernels had 1 MiB.
const TCP_LIMIT_OUTPUT_BYTES: u64 = 4 << 20;
/// Window scale we offer: 7, what Linux offers for a `tcp_rmem[2]` of 4–6 MiB
/// (`tcp_select_initial_window`: the smallest shift that lets 65535 << shift cover it).
const OUR_WSCALE: u8 = 7;
/// SACK blocks on an ACK that carries timestamps: 3 (40 option bytes − 12 for TS = 28 =
/// 2 + 3 × 8, RFC 2018 §3).
const MAX_SACK_WITH_TS: usize = 3;
/// Largest window scale RFC 7323 §2.3 allows.
const MAX_WSCALE: u8 = 14;

/// One segment on the retransmit queue (sent or not yet).
#[derive(Debug, Clone, Copy)]
struct Seg {
    seq: Seq,
    /// Payload bytes.
    len: u16,
    /// SYN and/or FIN (each takes one sequence number).
    ctl: u8,
    /// Frame index in the UMEM (the payload sits after `hdr_len` bytes of room).
    frame: u32,
    /// One's-complement partial sum of the payload.
    sum: u32,
    /// Last transmission, µs; 0 = never sent.
    sent_us: u64,
    /// Its place in the connection's order of transmissions (from 1; 0 = never sent):
    /// RACK's "sent after", where many segments share a µs.
    order: u64,
    /// Transmissions so far.
    xmits: u16,
    sacked: bool,
    lost: bool,
    /// Retransmitted and neither ACKed nor SACKed since (counted in `retrans_out`).
    retrans: bool,
}

impl Seg {
    fn end(&self) -> Seq {
        self.seq.add(
            self.len as u32
                + u32::from(self.ctl & flags::SYN != 0)
                + u32::from(self.ctl & flags::FIN != 0),
        )
    }
}

/// The payload of one received segment: the frames of a GRO packet (or one frame), each
/// with its bytes at `off`; every frame but the last carries `gso` bytes, `len` in all.
pub(crate) struct Payload<'a> {
    /// In sequence order; the connection takes them (the vector is left empty).
    pub frames: &'a mut Vec<Frame>,
    pub off: u16,
    pub gso: u16,
    pub len: u32,
}

/// In-order data waiting for the application, or out-of-order data waiting for the gap.
#[derive(Debug)]
pub(crate) struct RxChunk {
    pub frame: Frame,
    pub off: u16,
    pub len: u16,
}

/// What a connection did: the kernel's MIB counters, per connection.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct ConnCounters {
    /// Payload bytes ACKed by the peer.
    pub bytes_acked: u64,
    /// Payload bytes delivered in order (to the application's queue).
    pub bytes_received: u64,
    /// Segments sent (super-segments count their segments: `OutSegs`).
    pub segs_out: u64,
    /// Segments received (a GRO packet counts its frames, as `tcp_segs_in` counts
    /// `gso_segs`).
    pub segs_in: u64,
    /// GRO packets received (two or more segments processed as one).
    pub gro_packets_in: u64,
    /// Segments retransmitted (`RetransSegs`).
    pub retrans_segs: u64,
    /// Fast-recovery episodes entered.
    pub fast_recoveries: u64,
    /// RTO expiries (`TCPTimeouts`).
    pub timeouts: u64,
    /// Duplicate ACKs received.
    pub dupacks_in: u64,
    /// SACK blocks received.
    pub sack_blocks_in: u64,
    /// D-SACKs received (RFC 2883).
    pub dsacks_in: u64,
    /// Segments put on the out-of-order queue (`TCPOFOQueue`).
    pub ofo_queued: u64,
    /// Duplicate data received (all of it already had).
    pub dup_data_in: u64,
    /// Pure ACKs sent.
    pub acks_out: u64,
    /// Delayed ACKs sent by the timer.
    pub delayed_acks: u64,
    /// Challenge ACKs sent (RFC 5961).
    pub challenge_acks: u64,
    /// Segments outside the receive window dropped.
    pub out_of_window: u64,
    /// Segments dropped by PAWS (RFC 7323 §5).
    pub paws_rejected: u64,
    /// ACKs for data not yet sent, dropped (RFC 5961 §5.2).
    pub ack_unsent: u64,
    /// Zero-window probes sent.
    pub window_probes: u64,
    /// Retransmissions found lost by RACK: data sent after them was delivered and their
    /// RTT passed (`TCPLostRetransmit`).
    pub lost_retransmits: u64,
    /// Segments delivered out of order without having been retransmitted: reordering
    /// seen (the kernel's `TCPSACKReorder` and friends, per segment).
    pub reordering: u64,
    /// Recoveries undone because every retransmission in them was D-SACKed: the
    /// reduction of cwnd was spurious (`TCPDSACKUndo`).
    pub dsack_undos: u64,
    /// Tail loss probes sent (`TCPLossProbes`).
    pub tlp_probes: u64,
    /// Losses a loss probe repaired (`TCPLossProbeRecovery`): cwnd reduced as after fast
    /// recovery, without waiting for the RTO.
    pub tlp_recoveries: u64,
    /// Retransmissions postponed because the frame was still in the TX path.
    pub rtx_hostqueue: u64,
    /// Super-segments built by GSO.
    pub gso_super: u64,
    /// Received segments dropped for want of frames or receive space.
    pub rcv_pruned: u64,
}

/// A snapshot in the manner of `struct tcp_info`.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct ConnInfo {
    /// State.
    pub state: State,
    /// Loss-recovery state.
    pub ca_state: CaState,
    /// Congestion window, segments.
    pub cwnd: u32,
    /// Slow-start threshold, segments.
    pub ssthresh: u32,
    /// Smoothed RTT, µs.
    pub srtt_us: Option<u32>,
    /// RTT variance, µs.
    pub rttvar_us: Option<u32>,
    /// Minimum RTT, µs.
    pub min_rtt_us: Option<u32>,
    /// Current RTO, µs.
    pub rto_us: u64,
    /// Segments in flight.
    pub in_flight: u32,
    /// Peer's window, bytes.
    pub snd_wnd: u32,
    /// Sending MSS.
    pub mss: u16,
    /// Pacing rate, bytes/s (0 when not paced).
    pub pacing_rate: u64,
    /// Bytes written and not yet ACKed.
    pub unacked_bytes: u64,
    /// Reordering seen: RACK's window no longer drops to 0 (`tcpi_reord_seen` > 0).
    pub reordering_seen: bool,
    /// RACK's reordering window now, µs.
    pub reo_wnd_us: u64,
}

/// A connection.
#[derive(Debug)]
pub struct Conn {
    pub(crate) state: State,
    pub(crate) close_reason: Option<CloseReason>,
    pub(crate) local: (IpAddr, u16),
    pub(crate) remote: (IpAddr, u16),
    pub(crate) next_hop: IpAddr,
    /// Flow key in the qdisc.
    pub(crate) flow: u32,
    cfg: ConnConfig,

    // Send side.
    iss: Seq,
    snd_una: Seq,
    snd_nxt: Seq,
    write_seq: Seq,
    snd_wnd: u32,
    snd_wl1: Seq,
    snd_wl2: Seq,
    max_snd_wnd: u32,
    snd_wscale: u8,
    /// Sending MSS: payload bytes per segment (options excluded).
    mss: u16,
    /// Header bytes of a data segment: Ethernet + IP + TCP with the timestamp option;
    /// also the payload's offset in its frame.
    hdr_len: u16,
    sack_ok: bool,
    ts_ok: bool,
    ts_recent: u32,
    ts_offset: u32,
    q: VecDeque<Seg>,
    /// Index in `q` of the first segment never sent.
    unsent: usize,
    fin_queued: bool,
    packets_out: u32,
    sacked_out: u32,
    lost_out: u32,
    retrans_out: u32,
    cc: Box<dyn CongestionControl>,
    rtt: RttEstimator,
    /// RACK loss detection (RFC 8985).
    rack: Rack,
    /// Segments transmitted so far: the last one's [`Seg::order`].
    tx_order: u64,
    /// RACK's reordering timer (the kernel's `ICSK_TIME_REO_TIMEOUT`): a segment sent
    /// before a delivered one is lost if not delivered by then.
    rack_at: Option<u64>,
    /// What undoing the current recovery needs.
    undo: Undo,
    prr: Option<Prr>,
    ca_state: CaState,
    high_seq: Seq,
    dupacks: u32,
    /// Consecutive RTO expiries without progress.
    retries: u32,
    rto_at: Option<u64>,
    /// Tail loss probe timer (RFC 8985 §7.2, the kernel's `ICSK_TIME_LOSS_PROBE`).
    tlp_at: Option<u64>,
    /// snd_nxt when the outstanding loss probe went out (`tlp_high_seq`); at most one.
    tlp_high_seq: Option<Seq>,
    /// The outstanding probe's [`Seg::order`]: its delivery moves RACK although it is a
    /// retransmission (see [`Conn::moves_rack`]).
    tlp_order: u64,
    /// The probe timer fired: `output` retransmits the last segment sent.
    tlp_pending: bool,
    persist_at: Option<u64>,
    persist_backoff: u32,
    ip_ident: IpIdent,

    // Receive side.
    irs: Seq,
    rcv_nxt: Seq,
    rcv_wnd: u32,
    rcv_wup: Seq,
    rcv_wscale: u8,
    rcv_mss: u16,
    rcvq: VecDeque<RxChunk>,
    rcvq_bytes: u32,
    ooo: OooQueue<RxChunk>,
    fin_received: bool,
    /// A FIN arrived ahead of the data before it, at this sequence number.
    fin_at: Option<Seq>,
    quickack: u32,
    ack_now: bool,
    delack_at: Option<u64>,
    rcv_unacked: u32,
    dsack: Option<(Seq, Seq)>,
    last_oow_ack_us: u64,
    time_wait_at: Option<u64>,

    pub(crate) counters: ConnCounters,
    pub(crate) rtt_hist: Option<Histogram<u64>>,
    /// Frames handed to the qdisc or the TX ring and not yet completed: the TSQ count
    /// (`sk_wmem_alloc` in frames).
    pub(crate) host_frames: u32,
    /// Scratch for the SACK blocks of an outgoing ACK.
    sack_buf: Vec<(Seq, Seq)>,
}

/// Undo of a spurious recovery (the kernel's `undo_marker`, `undo_retrans`, `prior_cwnd`,
/// `prior_ssthresh`).
#[derive(Debug, Clone, Copy, Default)]
struct Undo {
    /// SND.UNA when the recovery began; None when there is nothing to undo.
    marker: Option<Seq>,
    /// Retransmissions of this recovery not yet D-SACKed; −1 before the first.
    retrans: i32,
    prior_cwnd: u32,
    prior_ssthresh: u32,
}

/// Who a connection is between, and its per-connection secrets.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Endpoints {
    pub local: (IpAddr, u16),
    pub remote: (IpAddr, u16),
    pub next_hop: IpAddr,
    /// Flow key in the qdisc (the connection's id).
    pub flow: u32,
    /// Initial send sequence number (RFC 6528).
    pub iss: Seq,
    /// Offset of our timestamps (RFC 7323 §5.4).
    pub ts_offset: u32,
}

/// Ethernet + IP + TCP header length without TCP options for a peer at `remote`.
fn base_hdr_len(remote: IpAddr) -> u16 {
    let l3 = match remote {
        IpAddr::V4(_) => ip::IPV4_HLEN,
        IpAddr::V6(_) => ip::IPV6_HLEN,
    };
    (crate::wire::ETH_HLEN + l3 + crate::wire::tcp::TCP_HLEN) as u16
}

/// The fields of a SYN that open a connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SynInfo {
    pub seq: Seq,
    pub window: u16,
    pub options: TcpOptions,
}

impl Conn {
    fn new(cfg: ConnConfig, e: &Endpoints) -> Conn {
        let Endpoints {
            local,
            remote,
            next_hop,
            flow,
            iss,
            ts_offset,
        } = *e;
        let rtt_hist = cfg
            .rtt_histogram
            // 1 µs to 60 s at 3 significant digits: what `skiff latency` records.
            .then(|| Histogram::new_with_bounds(1, 60_000_000, 3).ok())
            .flatten();
        Conn {
            state: State::Closed,
            close_reason: None,
            local,
            remote,
            next_hop,
            flow,
            iss,
            snd_una: iss,
            snd_nxt: iss,
            write_seq: iss,
            snd_wnd: 0,
            snd_wl1: Seq(0),
            snd_wl2: iss,
            max_snd_wnd: 0,
            snd_wscale: 0,
            mss: cfg.mss.saturating_sub(12).max(64),
            hdr_len: base_hdr_len(remote.0),
            sack_ok: false,
            ts_ok: false,
            ts_recent: 0,
            ts_offset,
            q: VecDeque::new(),
            unsent: 0,
            fin_queued: false,
            packets_out: 0,
            sacked_out: 0,
            lost_out: 0,
            retrans_out: 0,
            cc: cc::new_cc(cfg.cc),
            rtt: RttEstimator::new(),
            rack: Rack::new(iss),
            tx_order: 0,
            rack_at: None,
            undo: Undo::default(),
            prr: None,
            ca_state: CaState::Open,
            high_seq: iss,
            dupacks: 0,
            retries: 0,
            rto_at: None,
            tlp_at: None,
            tlp_high_seq: None,
            tlp_order: 0,
            tlp_pending: false,
            persist_at: None,
            persist_backoff: 0,
            ip_ident: IpIdent::new((ts_offset >> 16) as u16),
            irs: Seq(0),
            rcv_nxt: Seq(0),
            rcv_wnd: 0,
            rcv_wup: Seq(0),
            rcv_wscale: 0,
            rcv_mss: 536,
            rcvq: VecDeque::new(),
            rcvq_bytes: 0,
            // One queued segment per frame the receive buffer can hold.
            ooo: OooQueue::new((cfg.rcvbuf / 536).max(16) as usize),
            fin_received: false,
            fin_at: None,
            quickack: MAX_QUICKACKS,
            ack_now: false,
            delack_at: None,
            rcv_unacked: 0,
            dsack: None,
            last_oow_ack_us: 0,
            time_wait_at: None,
            counters: ConnCounters::default(),
            rtt_hist,
            host_frames: 0,
            sack_buf: Vec::with_capacity(MAX_SACK_WITH_TS + 1),
            cfg,
        }
    }

    /// Opens a connection: actively (`syn` None: SYN-SENT, our SYN queued) or from a
    /// listener's SYN (SYN-RECEIVED, our SYN-ACK queued). The SYN goes on the retransmit
    /// queue like data and out at the next output. None without a frame for it.
    pub(crate) fn open(
        ctx: &mut Ctx<'_>,
        cfg: ConnConfig,
        e: &Endpoints,
        syn: Option<&SynInfo>,
    ) -> Option<Conn> {
        let mut c = Conn::new(cfg, e);
        c.rcv_wnd = c.cfg.rcvbuf.min(65535);
        match syn {
            None => c.state = State::SynSent,
            Some(syn) => {
                c.state = State::SynReceived;
                c.take_peer_syn(syn.seq, syn.window, &syn.options);
            }
        }
        c.queue_ctl(ctx, flags::SYN).then_some(c)
    }

    /// The peer's SYN (or SYN-ACK): its ISN, options and window.
    fn take_peer_syn(&mut self, seq: Seq, window: u16, options: &TcpOptions) {
        self.irs = seq;
        self.rcv_nxt = seq.add(1);
        self.rcv_wup = self.rcv_nxt;
        self.take_syn_options(options, true);
        // The SYN's window is never scaled (RFC 7323 §2.2).
        self.snd_wnd = u32::from(window);
        self.snd_wl1 = seq;
        self.max_snd_wnd = self.snd_wnd;
    }

    /// Negotiated options from the peer's SYN (or SYN-ACK).
    fn take_syn_options(&mut self, o: &TcpOptions, we_offered_all: bool) {
        let peer_mss = o.mss.unwrap_or(536);
        self.sack_ok = we_offered_all && o.sack_permitted;
        self.ts_ok = we_offered_all && o.timestamps.is_some();
        if let Some((tsval, _)) = o.timestamps {
            self.ts_recent = tsval;
        }
        match o.wscale {
            Some(ws) if we_offered_all => {
                // RFC 7323 §2.3: a shift above 14 is used as 14.
                self.snd_wscale = ws.min(MAX_WSCALE);
                self.rcv_wscale = OUR_WSCALE;
            }
            _ => {
                self.snd_wscale = 0;
                self.rcv_wscale = 0;
            }
        }
        let opt_len: u16 = if self.ts_ok { 12 } else { 0 };
        let ours = self.cfg.mss;
        self.mss = peer_mss.min(ours).saturating_sub(opt_len).max(64);
        self.rcv_mss = self.mss;
        self.hdr_len = base_hdr_len(self.remote.0) + opt_len;
    }

    /// State.
    pub fn state(&self) -> State {
        self.state
    }

    /// Our address and port.
    pub fn local_addr(&self) -> (IpAddr, u16) {
        self.local
    }

    /// The peer's address and port.
    pub fn remote_addr(&self) -> (IpAddr, u16) {
        self.remote
    }

    /// Why it closed (None while open).
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.close_reason
    }

    /// Counters.
    pub fn counters(&self) -> ConnCounters {
        self.counters
    }

    /// Every RTT sample, µs (when recorded).
    pub fn rtt_histogram(&self) -> Option<&Histogram<u64>> {
        self.rtt_hist.as_ref()
    }

    /// The congestion window, segments: what [`Conn::info`] reports as `cwnd`, without
    /// building the rest of the snapshot (an application that tracks it every round).
    pub fn cwnd(&self) -> u32 {
        self.cc.cwnd()
    }

    /// A `tcp_info`-like snapshot.
    pub fn info(&self) -> ConnInfo {
        ConnInfo {
            state: self.state,
            ca_state: self.ca_state,
            cwnd: self.cwnd(),
            ssthresh: self.cc.ssthresh(),
            srtt_us: self.rtt.srtt_us(),
            rttvar_us: self.rtt.rttvar_us(),
            min_rtt_us: self.rtt.min_rtt_us(),
            rto_us: self.rtt.rto_us(),
            in_flight: self.in_flight(),
            snd_wnd: self.snd_wnd,
            mss: self.mss,
            pacing_rate: self.pacing_rate().unwrap_or(0),
            unacked_bytes: self.write_seq.since(self.snd_una) as u64,
            reordering_seen: self.rack.reord_seen(),
            reo_wnd_us: self.reo_wnd(),
        }
    }

    fn in_flight(&self) -> u32 {
        (self.packets_out + self.retrans_out).saturating_sub(self.sacked_out + self.lost_out)
    }

    fn pacing_rate(&self) -> Option<u64> {
        if !self.cfg.pacing {
            return None;
        }
        let srtt = self.rtt.srtt_us()?;
        Some(cc::pacing_rate(
            self.cc.cwnd(),
            self.mss as u32,
            srtt,
            self.cc.in_slow_start(),
        ))
    }

    /// The TSQ limit in frames: max(2 super-segments, pacing rate >> 10 (≈ 1 ms, the
    /// kernel's `sk_pacing_shift` of 10)), at most `tcp_limit_output_bytes` (4 MiB).
    fn tsq_limit(&self) -> u32 {
        let mss = self.mss.max(1) as u64;
        let by_rate = self.pacing_rate().map(|r| (r >> 10) / mss).unwrap_or(0);
        let limit = by_rate.max(2 * MAX_GSO_SEGS as u64);
        limit.min(TCP_LIMIT_OUTPUT_BYTES / mss) as u32
    }

    /// Bytes the application may still write: the send buffer's free space, and no more
    /// than brings the unsent bytes to `notsent_lowat`. As the kernel's `tcp_poll` does,
    /// a connection with a low-water mark is writable again only once its unsent bytes
    /// fall below half of it, and then for whole segments (so writes do not leave a short
    /// segment at the tail of every round).
    pub fn send_space(&self) -> u32 {
        if !matches!(self.state, State::Established | State::CloseWait) || self.fin_queued {
            return 0;
        }
        let space = self
            .cfg
            .sndbuf
            .saturating_sub(self.write_seq.since(self.snd_una));
        let unsent = self.write_seq.since(self.snd_nxt);
        match self.cfg.notsent_lowat {
            0 => space,
            l if unsent.saturating_mul(2) >= l => 0,
            l => {
                let mss = u32::from(self.mss.max(1));
                let room = (l - unsent) / mss * mss;
                space.min(room.max(mss))
            }
        }
    }

    /// Bytes readable in order.
    pub fn recv_available(&self) -> u32 {
        self.rcvq_bytes
    }

    /// True once the peer's FIN has been reached in order and everything before it read.
    pub fn at_eof(&self) -> bool {
        self.fin_received && self.rcvq.is_empty()
    }

    /// True when everything written has been ACKed (FIN included, once queued).
    pub fn all_acked(&self) -> bool {
        self.snd_una == self.write_seq && self.q.is_empty()
    }

    /// Frames the receive side holds (in-order and out-of-order queues), for tests that
    /// account for every UMEM frame.
    #[cfg(test)]
    pub(crate) fn rx_frames(&self) -> usize {
        self.rcvq.len() + self.ooo.len()
    }

    /// Appends up to `max` payload bytes from `src` to the send queue, filling the tail
    /// segment first if it was not sent yet (`tcp_sendmsg`'s `skb_tailroom` case). Returns
    /// the bytes taken (0 when the buffer or the frame pool is full).
    pub(crate) fn write(&mut self, ctx: &mut Ctx<'_>, max: usize, src: &mut WriteSrc<'_>) -> usize {
        let max = max.min(self.send_space() as usize);
        let mut done = 0usize;
        let off = self.hdr_len as usize;
        let mss = self.mss as usize;
        // Top up the unsent tail.
        let unsent_tail = self.unsent < self.q.len();
        if let Some(tail) = self.q.back_mut() {
            if unsent_tail && tail.ctl == 0 && (tail.len as usize) < mss && max > 0 {
                let n = (mss - tail.len as usize).min(max);
                if let Some(frame) = ctx.refs.parked_mut(tail.frame) {
                    let start = off + tail.len as usize;
                    let mut part = 0u32;
                    ctx.area.build(frame, |buf| {
                        let end = (start + n).min(buf.len());
                        if let Some(dst) = buf.get_mut(start..end) {
                            part = src.put(dst);
                        }
                        end
                    });
                    // A block that starts at an odd offset adds byte-swapped (RFC 1071 §2(B)).
                    if tail.len % 2 == 1 {
                        part = part.rotate_left(8);
                        part = checksum::fold(part as u64);
                    }
                    tail.sum = checksum::fold(tail.sum as u64 + part as u64);
                    tail.len += n as u16;
                    self.write_seq = self.write_seq.add(n as u32);
                    done += n;
                }
            }
        }
        while done < max {
            let Some(mut frame) = ctx.alloc_data() else {
                break;
            };
            let n = (max - done).min(mss);
            let mut sum = 0u32;
            let built = ctx.area.build(&mut frame, |buf| {
                let end = (off + n).min(buf.len());
                match buf.get_mut(off..end) {
                    Some(dst) => {
                        sum = src.put(dst);
                        end
                    }
                    None => 0,
                }
            });
            if built < off + n {
                ctx.pool.push(frame);
                break;
            }
            let idx = match ctx.refs.hold(ctx.area, frame) {
                Ok(i) => i,
                Err(f) => {
                    ctx.pool.push(f);
                    break;
                }
            };
            self.q.push_back(Seg {
                seq: self.write_seq,
                len: n as u16,
                ctl: 0,
                frame: idx,
                sum,
                sent_us: 0,
                order: 0,
                xmits: 0,
                sacked: false,
                lost: false,
                retrans: false,
            });
            self.write_seq = self.write_seq.add(n as u32);
            done += n;
        }
        done
    }

    /// Queues a SYN or FIN (a header-only frame). False without a frame.
    fn queue_ctl(&mut self, ctx: &mut Ctx<'_>, ctl: u8) -> bool {
        // A FIN rides on the unsent tail when there is one (`tcp_send_fin`).
        if ctl == flags::FIN && self.unsent < self.q.len() {
            if let Some(tail) = self.q.back_mut() {
                if tail.ctl == 0 {
                    tail.ctl = flags::FIN;
                    self.write_seq = self.write_seq.add(1);
                    return true;
                }
            }
        }
        let Some(mut frame) = ctx.alloc() else {
            return false;
        };
        let hl = self.hdr_len as usize + 40;
        ctx.area.build(&mut frame, |buf| hl.min(buf.len()));
        let idx = match ctx.refs.hold(ctx.area, frame) {
            Ok(i) => i,
            Err(f) => {
                ctx.pool.push(f);
                return false;
            }
        };
        self.q.push_back(Seg {
            seq: self.write_seq,
            len: 0,
            ctl,
            frame: idx,
            sum: 0,
            sent_us: 0,
            order: 0,
            xmits: 0,
            sacked: false,
            lost: false,
            retrans: false,
        });
        self.write_seq = self.write_seq.add(1);
        true
    }

    /// The application closes its side: FIN queued, state per RFC 9293 §3.10.4.
    pub(crate) fn close(&mut self, ctx: &mut Ctx<'_>) {
        let state = self.state;
        match state {
            State::SynSent => self.terminate(ctx, CloseReason::Normal),
            State::SynReceived | State::Established | State::CloseWait
                if !self.fin_queued && self.queue_ctl(ctx, flags::FIN) =>
            {
                self.fin_queued = true;
                self.state = if state == State::CloseWait {
                    State::LastAck
                } else {
                    State::FinWait1
                };
            }
            _ => {}
        }
    }

    /// Copies in-order data out. Returns bytes copied.
    pub(crate) fn read(&mut self, ctx: &mut Ctx<'_>, out: &mut [u8]) -> usize {
        let mut done = 0;
        while done < out.len() {
            let Some(c) = self.rcvq.front_mut() else {
                break;
            };
            let bytes = ctx.area.bytes(&c.frame);
            let start = c.off as usize;
            let n = (c.len as usize).min(out.len() - done);
            if let Some(src) = bytes.get(start..start + n) {
                out[done..done + n].copy_from_slice(src);
            }
            done += n;
            c.off += n as u16;
            c.len -= n as u16;
            if c.len == 0 {
                if let Some(c) = self.rcvq.pop_front() {
                    ctx.pool.push(c.frame);
                }
            }
        }
        self.rcvq_bytes -= done as u32;
        self.window_update_after_read();
        done
    }

    /// Hands in-order data to `f` without copying, chunk by chunk, consuming it.
    pub(crate) fn read_with(&mut self, ctx: &mut Ctx<'_>, f: &mut dyn FnMut(&[u8])) -> usize {
        let mut done = 0;
        while let Some(c) = self.rcvq.pop_front() {
            let bytes = ctx.area.bytes(&c.frame);
            let (s, n) = (c.off as usize, c.len as usize);
            if let Some(src) = bytes.get(s..s + n) {
                f(src);
            }
            done += n;
            ctx.pool.push(c.frame);
        }
        self.rcvq_bytes -= done as u32;
        self.window_update_after_read();
        done
    }

    /// `tcp_cleanup_rbuf`: after a read, if the window we could offer is at least twice
    /// what the peer still has, tell it now rather than at the next ACK.
    fn window_update_after_read(&mut self) {
        let cur = self.rcv_wup.add(self.rcv_wnd).since(self.rcv_nxt);
        let new = self.free_space();
        if new >= 2 * cur.max(1) && new - cur >= self.rcv_mss as u32 {
            self.ack_now = true;
        }
    }

    fn free_space(&self) -> u32 {
        self.cfg
            .rcvbuf
            .saturating_sub(self.rcvq_bytes + self.ooo.bytes() as u32)
    }

    /// `tcp_select_window`: the window to advertise, never shrinking the right edge
    /// (RFC 9293 §3.8.6.2.2), rounded to the scale.
    fn select_window(&mut self) -> u16 {
        let cur = self.rcv_wup.add(self.rcv_wnd).since(self.rcv_nxt);
        let mut new = self.free_space();
        if new < cur {
            new = cur;
        }
        let max = 65535u32 << self.rcv_wscale;
        new = new.min(max);
        // Round down to what the scaled field can express, but never below the current
        // window: that one is rounded up (`tcp_select_window`: `ALIGN(cur_win, 1 <<
        // rcv_wscale)`). (Fix: rounding down alone moved the right edge left by up to
        // 2^wscale − 1 bytes, and data the peer sent up to the old edge was then dropped
        // as out of window; caught by the test `advertised_right_edge_never_moves_left`.)
        let mut field = new >> self.rcv_wscale;
        if field << self.rcv_wscale < cur {
            field = cur.div_ceil(1 << self.rcv_wscale).min(65535);
        }
        self.rcv_wnd = field << self.rcv_wscale;
        self.rcv_wup = self.rcv_nxt;
        field as u16
    }

    fn tsval(&self, now_us: u64) -> u32 {
        // Millisecond timestamps (the kernel's default `tcp_time_stamp_ts`), offset per
        // connection (`tcp_timestamps` = 1: randomized offsets).
        ((now_us / 1000) as u32).wrapping_add(self.ts_offset)
    }

    // ----- input -----

    /// One received segment for this connection. `payload` is the frame holding it and
    /// where its payload sits; the frame is consumed (queued or returned to the pool).
    /// One received segment: a frame, or a packet GRO merged from frames of this flow
    /// (one header pass and one ACK decision for all of it, as the kernel's TCP sees a GRO
    /// packet). Frames the connection does not keep go back to the pool.
    pub(crate) fn input(&mut self, ctx: &mut Ctx<'_>, h: &TcpHeader, p: Payload<'_>) {
        let n = p.frames.len().max(1) as u64;
        self.counters.segs_in += n;
        self.counters.gro_packets_in += u64::from(n > 1);
        match self.state {
            State::SynSent => self.input_syn_sent(ctx, h),
            State::Closed => {}
            _ => self.input_synchronized(ctx, h, p.frames, p.off, p.gso, p.len),
        }
        ctx.pool.append(p.frames);
    }

    fn input_syn_sent(&mut self, ctx: &mut Ctx<'_>, h: &TcpHeader) {
        let f = h.flags;
        if f & flags::ACK != 0 && (h.ack.le(self.iss) || h.ack.gt(self.snd_nxt)) {
            if f & flags::RST == 0 {
                self.send_pure(ctx, h.ack, flags::RST, false);
            }
            return;
        }
        if f & flags::RST != 0 {
            if f & flags::ACK != 0 {
                self.terminate(ctx, CloseReason::Refused);
            }
            return;
        }
        if f & flags::SYN == 0 {
            return;
        }
        self.take_peer_syn(h.seq, h.window, &h.options);
        self.snd_wl2 = h.ack;
        if f & flags::ACK != 0 {
            self.state = State::Established;
            self.process_acked(ctx, h.ack, ctx.now_us);
            self.ack_now = true;
            ctx.counters.active_opens += 1;
        } else {
            // Simultaneous open (RFC 9293 §3.5): SYN-RECEIVED, SYN-ACK from the queue.
            // (Fix: the SYN was flagged lost without counting it in `lost_out`, so the
            // SYN-ACK never went out and the ACK of our SYN underflowed `lost_out`; caught
            // by the test `simultaneous_open_sends_syn_ack_and_establishes`.)
            self.state = State::SynReceived;
            if !self.q.is_empty() {
                self.mark_lost(0);
            }
        }
    }

    fn send_challenge_ack(&mut self, ctx: &mut Ctx<'_>) {
        if ctx.now_us.saturating_sub(self.last_oow_ack_us) >= OOW_RATELIMIT_US {
            self.last_oow_ack_us = ctx.now_us;
            self.counters.challenge_acks += 1;
            self.ack_now = true;
        }
    }

    fn input_synchronized(
        &mut self,
        ctx: &mut Ctx<'_>,
        h: &TcpHeader,
        frames: &mut Vec<Frame>,
        off: u16,
        gso: u16,
        len: u32,
    ) {
        let f = h.flags;
        let now = ctx.now_us;
        let seg_len = len + u32::from(f & flags::SYN != 0) + u32::from(f & flags::FIN != 0);
        // PAWS (RFC 7323 §5.3): a timestamp older than ts_recent marks an old duplicate.
        if self.ts_ok && f & flags::RST == 0 {
            if let Some((tsval, _)) = h.options.timestamps {
                if Seq(tsval).lt(Seq(self.ts_recent)) {
                    self.counters.paws_rejected += 1;
                    self.ack_now = true;
                    return;
                }
            }
        }
        // The peer's SYN again in SYN-RECEIVED: our SYN-ACK was lost; resend it, at most
        // once per `tcp_invalid_ratelimit` (`tcp_check_req`: `seq == rcv_isn && flg ==
        // TCP_FLAG_SYN` → `inet_rtx_syn_ack`). (Fix: this sat behind the acceptability
        // test, which such a SYN, one below RCV.NXT, never passes, so the SYN-ACK was not
        // resent and the SYN drew a D-SACK instead; caught by the test
        // `duplicate_syn_in_syn_received_resends_the_same_syn_ack_frame`.)
        if self.state == State::SynReceived
            && f & (flags::SYN | flags::ACK | flags::RST) == flags::SYN
            && h.seq.add(1) == self.rcv_nxt
        {
            if now.saturating_sub(self.last_oow_ack_us) >= OOW_RATELIMIT_US
                && self.q.front().is_some_and(|s| s.ctl & flags::SYN != 0)
            {
                self.last_oow_ack_us = now;
                if self.q[0].retrans {
                    // Sent again already: eligible once more.
                    self.q[0].retrans = false;
                    self.retrans_out -= 1;
                }
                self.mark_lost(0);
            }
            return;
        }
        // Acceptability (RFC 9293 §3.10.7.4), against the window we advertised.
        let wnd = self.rcv_wup.add(self.rcv_wnd).since(self.rcv_nxt);
        let right = self.rcv_nxt.add(wnd);
        let acceptable = match (seg_len, wnd) {
            (0, 0) => h.seq == self.rcv_nxt,
            (0, _) => h.seq.in_range(self.rcv_nxt, right),
            (_, 0) => false,
            (_, _) => {
                h.seq.in_range(self.rcv_nxt, right)
                    || h.seq.add(seg_len - 1).in_range(self.rcv_nxt, right)
            }
        };
        // A pure ACK completing the handshake is judged by its ACK, not its sequence.
        let handshake_ack = self.state == State::SynReceived && f & flags::ACK != 0 && seg_len == 0;
        if !(acceptable || handshake_ack) {
            if f & flags::RST == 0 {
                self.counters.out_of_window += 1;
                // (Fix: a SYN is tested first, as `tcp_validate_incoming` jumps to
                // `syn_challenge` before `tcp_send_dupack`: an old SYN below RCV.NXT drew
                // an unlimited ACK with an empty D-SACK block; and the D-SACK of a
                // retransmitted FIN covers the FIN's sequence number (`end_seq`), where it
                // was an empty block. Caught by the tests
                // `syn_on_established_draws_challenge_ack` and
                // `time_wait_acks_a_retransmitted_fin`.)
                if f & flags::SYN != 0 {
                    // RFC 5961 §4.2: any SYN in a synchronized state.
                    ctx.counters.syn_challenged += 1;
                    self.send_challenge_ack(ctx);
                } else if seg_len > 0 && h.seq.lt(self.rcv_nxt) {
                    // Old duplicate data: D-SACK it (RFC 2883) and ACK at once.
                    self.counters.dup_data_in += 1;
                    if self.sack_ok {
                        let end = h.seq.add(seg_len).min(self.rcv_nxt);
                        self.dsack = Some((h.seq, end));
                    }
                    self.ack_now = true;
                } else if seg_len == 0 {
                    // Pure ACKs out of window are rate limited (`tcp_oow_rate_limited`).
                    self.send_challenge_ack(ctx);
                } else {
                    self.ack_now = true;
                }
            }
            return;
        }
        // RST (RFC 5961 §3.2): exact match resets, in window draws a challenge ACK.
        if f & flags::RST != 0 {
            if h.seq == self.rcv_nxt {
                ctx.counters.resets_in += 1;
                self.terminate(ctx, CloseReason::Reset);
            } else {
                ctx.counters.rst_challenged += 1;
                self.send_challenge_ack(ctx);
            }
            return;
        }
        // SYN in a synchronized state (RFC 5961 §4.2): challenge ACK, drop. (A
        // retransmitted SYN in SYN-RECEIVED was handled above.)
        if f & flags::SYN != 0 {
            ctx.counters.syn_challenged += 1;
            self.send_challenge_ack(ctx);
            return;
        }
        if f & flags::ACK == 0 {
            return;
        }
        // Timestamps: remember the peer's clock (RFC 7323 §4.3).
        if self.ts_ok {
            if let Some((tsval, _)) = h.options.timestamps {
                if h.seq.le(self.rcv_wup) && Seq(tsval).ge(Seq(self.ts_recent)) {
                    self.ts_recent = tsval;
                }
            }
        }
        if self.state == State::SynReceived {
            if h.ack.gt(self.snd_una) && h.ack.le(self.snd_nxt) {
                self.state = State::Established;
                self.snd_wnd = (h.window as u32) << self.snd_wscale;
                self.snd_wl1 = h.seq;
                self.snd_wl2 = h.ack;
                ctx.counters.passive_opens += 1;
            } else {
                self.send_pure(ctx, h.ack, flags::RST, false);
                return;
            }
        }
        if !self.process_ack(ctx, h, len) {
            return;
        }
        if self.state == State::Closed {
            return;
        }
        // Data.
        if len > 0 {
            match self.state {
                State::Established | State::FinWait1 | State::FinWait2 => {
                    // Every frame but the last carries `gso` bytes (GRO's invariant; a
                    // single frame has gso == len).
                    let (mut seq, mut left) = (h.seq, len);
                    for fr in frames.drain(..) {
                        let l = left.min(u32::from(gso)) as u16;
                        if l == 0 {
                            ctx.pool.push(fr);
                            continue;
                        }
                        self.receive_data(ctx, seq, fr, off, l);
                        seq = seq.add(u32::from(l));
                        left -= u32::from(l);
                    }
                }
                _ => {}
            }
        }
        // FIN.
        if f & flags::FIN != 0 {
            let fin_seq = h.seq.add(len);
            if fin_seq == self.rcv_nxt {
                self.receive_fin(ctx);
            } else if fin_seq.gt(self.rcv_nxt) {
                self.fin_at = Some(fin_seq);
                self.ack_now = true;
            }
        }
        if self.state == State::TimeWait {
            self.time_wait_at = Some(now + self.cfg.time_wait_us);
        }
    }

    fn receive_fin(&mut self, ctx: &mut Ctx<'_>) {
        if self.fin_received {
            self.ack_now = true;
            return;
        }
        self.fin_received = true;
        self.fin_at = None;
        self.rcv_nxt = self.rcv_nxt.add(1);
        self.ack_now = true;
        self.state = match self.state {
            State::SynReceived | State::Established => State::CloseWait,
            State::FinWait1 => {
                if self.snd_una == self.write_seq {
                    State::TimeWait
                } else {
                    State::Closing
                }
            }
            State::FinWait2 => State::TimeWait,
            s => s,
        };
        if self.state == State::TimeWait {
            self.enter_time_wait(ctx);
        }
    }

    fn enter_time_wait(&mut self, ctx: &mut Ctx<'_>) {
        self.state = State::TimeWait;
        self.time_wait_at = Some(ctx.now_us + self.cfg.time_wait_us);
        self.rto_at = None;
        self.persist_at = None;
        self.close_reason.get_or_insert(CloseReason::Normal);
    }

    fn receive_data(&mut self, ctx: &mut Ctx<'_>, seq: Seq, frame: Frame, off: u16, len: u16) {
        let end = seq.add(len as u32);
        if end.le(self.rcv_nxt) {
            self.counters.dup_data_in += 1;
            if self.sack_ok {
                self.dsack = Some((seq, end));
            }
            self.ack_now = true;
            ctx.pool.push(frame);
            return;
        }
        // Out of receive space: drop (the kernel prunes; the sender retransmits).
        if self.free_space() < len as u32 / 2 {
            self.counters.rcv_pruned += 1;
            self.ack_now = true;
            ctx.pool.push(frame);
            return;
        }
        if seq.le(self.rcv_nxt) {
            let skip = self.rcv_nxt.since(seq) as u16;
            let chunk = RxChunk {
                frame,
                off: off + skip,
                len: len - skip,
            };
            self.deliver(chunk);
            // Drain what the gap was holding back.
            while let Some((s, l, mut c)) = self.ooo.pop_ready(self.rcv_nxt) {
                let e = s.add(l);
                if e.le(self.rcv_nxt) {
                    ctx.pool.push(c.frame);
                    continue;
                }
                let skip = self.rcv_nxt.since(s) as u16;
                c.off += skip;
                c.len -= skip;
                self.deliver(c);
            }
            if self.fin_at == Some(self.rcv_nxt) {
                self.receive_fin(ctx);
            }
            self.rcv_unacked += len as u32;
            if !self.ooo.is_empty()
                || self.quickack > 0
                || self.rcv_unacked >= 2 * self.rcv_mss as u32
            {
                self.ack_now = true;
                self.quickack = self.quickack.saturating_sub(1);
            } else if self.delack_at.is_none() {
                self.delack_at = Some(ctx.now_us + DELACK_US);
            }
        } else {
            // Out of order: queue it, ACK at once with SACK (RFC 5681 §4.2).
            let mut evicted = Vec::new();
            let chunk = RxChunk { frame, off, len };
            match self.ooo.insert(seq, len as u32, chunk, &mut evicted) {
                Ok(Insert::Queued) => self.counters.ofo_queued += 1,
                Ok(Insert::Overlap { start, end }) => {
                    self.counters.ofo_queued += 1;
                    if self.sack_ok {
                        self.dsack = Some((start, end));
                    }
                }
                Err(Refused::Duplicate(c)) => {
                    self.counters.dup_data_in += 1;
                    if self.sack_ok {
                        self.dsack = Some((seq, end));
                    }
                    ctx.pool.push(c.frame);
                }
                Err(r) => {
                    self.counters.rcv_pruned += 1;
                    ctx.pool.push(r.into_item().frame);
                }
            }
            for c in evicted {
                ctx.pool.push(c.frame);
            }
            self.ack_now = true;
        }
    }

    fn deliver(&mut self, c: RxChunk) {
        self.rcv_nxt = self.rcv_nxt.add(c.len as u32);
        self.rcvq_bytes += c.len as u32;
        self.counters.bytes_received += c.len as u64;
        if c.len > 0 {
            self.rcvq.push_back(c);
        }
    }

    /// The ACK half of input (RFC 9293 §3.10.7.4 fifth check, RFC 5961 §5.2). False if
    /// the segment is to be dropped.
    fn process_ack(&mut self, ctx: &mut Ctx<'_>, h: &TcpHeader, len: u32) -> bool {
        let now = ctx.now_us;
        let ack = h.ack;
        if ack.gt(self.snd_nxt) {
            self.counters.ack_unsent += 1;
            self.send_challenge_ack(ctx);
            return false;
        }
        if ack.lt(self.snd_una.sub(self.max_snd_wnd.max(1))) {
            self.send_challenge_ack(ctx);
            return false;
        }
        let wnd = (h.window as u32) << self.snd_wscale;
        // Window update (RFC 9293 §3.10.7.4: SND.WL1/SND.WL2).
        let mut wnd_changed = false;
        if self.snd_wl1.lt(h.seq) || (self.snd_wl1 == h.seq && self.snd_wl2.le(ack)) {
            wnd_changed = wnd != self.snd_wnd;
            self.snd_wnd = wnd;
            self.snd_wl1 = h.seq;
            self.snd_wl2 = ack;
            self.max_snd_wnd = self.max_snd_wnd.max(wnd);
            // `tcp_ack_probe`: the probe timer stops once the head fits the window.
            if !self.window_blocks_head() {
                self.persist_at = None;
                self.persist_backoff = 0;
            }
        }
        // SACK.
        self.rack.begin_ack();
        let mut newly_sacked = 0u32;
        if self.sack_ok && self.packets_out > 0 {
            let blocks = h.options.sack_blocks();
            if !blocks.is_empty() {
                self.counters.sack_blocks_in += blocks.len() as u64;
                // Blocks are validated where they are applied (`mark_sacked`), per segment;
                // the D-SACK test needs only this ACK.
                if sack::is_dsack(ack, blocks) {
                    self.counters.dsacks_in += 1;
                    // A duplicate loss probe says nothing about reordering (the kernel's
                    // FLAG_DSACK_TLP); any other D-SACK widens RACK's window.
                    if self.tlp_high_seq.is_none() {
                        self.rack.on_dsack(self.snd_una, self.snd_nxt);
                    }
                    self.undo_on_dsack(blocks[0]);
                    // RFC 8985 §7.4.2: the probe was a duplicate, nothing was lost.
                    self.tlp_high_seq = None;
                }
                newly_sacked = self.mark_sacked(blocks, ack, now);
            }
        }
        let prior_in_flight = self.in_flight();
        // RFC 8985 §7.4.2 (`tcp_process_tlp_ack`): an ACK beyond the probe's snd_nxt with
        // no D-SACK for it means the probe repaired a loss: reduce cwnd as a fast recovery
        // would have (CWR), once.
        if self.tlp_high_seq.is_some_and(|t| ack.gt(t)) {
            self.tlp_high_seq = None;
            self.counters.tlp_recoveries += 1;
            self.cc.on_loss(now);
            self.cc.on_recovery_end();
        }
        if ack.gt(self.snd_una) {
            let acked = self.process_acked(ctx, ack, now);
            self.retries = 0;
            ctx.neigh.confirm(self.next_hop, ctx.now_ns());
            self.dupacks = 0;
            self.after_ack(ctx, acked, newly_sacked, prior_in_flight, now);
        } else if ack == self.snd_una
            && len == 0
            && !wnd_changed
            && self.packets_out > 0
            && h.flags & (flags::SYN | flags::FIN) == 0
        {
            self.dupacks += 1;
            self.counters.dupacks_in += 1;
            self.after_ack(ctx, 0, newly_sacked.max(1), prior_in_flight, now);
        } else if newly_sacked > 0 {
            self.after_ack(ctx, 0, newly_sacked, prior_in_flight, now);
        }
        // Our FIN ACKed?
        if self.fin_queued && self.snd_una == self.write_seq {
            match self.state {
                State::FinWait1 => self.state = State::FinWait2,
                State::Closing => self.enter_time_wait(ctx),
                State::LastAck => {
                    self.terminate(ctx, CloseReason::Normal);
                    return false;
                }
                _ => {}
            }
        }
        true
    }

    /// Marks segments covered by valid SACK blocks, telling RACK of each. Returns
    /// segments newly SACKed.
    fn mark_sacked(&mut self, blocks: &[(Seq, Seq)], ack: Seq, now: u64) -> u32 {
        let mut n = 0;
        for &(s, e) in blocks {
            // Valid: inside (snd_una, snd_nxt], not a D-SACK below the cumulative ACK.
            if !s.lt(e) || s.lt(ack.max(self.snd_una)) || e.gt(self.snd_nxt) {
                continue;
            }
            let start = self.q.partition_point(|g| g.seq.lt(s));
            for i in start..self.unsent.min(self.q.len()) {
                let g = &mut self.q[i];
                if g.end().gt(e) {
                    break;
                }
                if !g.sacked {
                    g.sacked = true;
                    self.sacked_out += 1;
                    if g.lost {
                        g.lost = false;
                        self.lost_out -= 1;
                    }
                    if g.retrans {
                        g.retrans = false;
                        self.retrans_out -= 1;
                    }
                    n += 1;
                    let g = *g;
                    self.rack_delivered(&g, now);
                }
            }
        }
        n
    }

    /// Removes everything below `ack` from the queue. Returns segments acked.
    fn process_acked(&mut self, ctx: &mut Ctx<'_>, ack: Seq, now: u64) -> u32 {
        let mut acked = 0u32;
        let mut rtt_sample: Option<u64> = None;
        while let Some(g) = self.q.front() {
            if g.end().gt(ack) {
                break;
            }
            let g = *g;
            self.q.pop_front();
            if self.unsent > 0 {
                self.unsent -= 1;
                self.packets_out -= 1;
            }
            if g.sacked {
                self.sacked_out -= 1;
            } else {
                self.rack_delivered(&g, now);
            }
            if g.lost {
                self.lost_out -= 1;
            }
            if g.retrans {
                self.retrans_out -= 1;
            }
            if g.xmits == 1 && g.sent_us > 0 {
                rtt_sample = Some(now.saturating_sub(g.sent_us));
            }
            self.counters.bytes_acked += g.len as u64;
            acked += 1;
            ctx.refs.release(g.frame, ctx.pool);
        }
        self.snd_una = ack;
        if self.snd_nxt.lt(ack) {
            self.snd_nxt = ack;
        }
        if let Some(r) = rtt_sample {
            let r = r.clamp(1, u32::MAX as u64) as u32;
            self.rtt.sample(r, now);
            self.rtt.reset_backoff();
            self.cc.on_rtt_sample(r, now);
            if let Some(h) = self.rtt_hist.as_mut() {
                let _ = h.record(r as u64);
            }
        }
        // RFC 6298 §5.2/5.3: stop the timer when all is ACKed, else restart it.
        self.rto_at = (self.packets_out > 0).then(|| now + self.rtt.rto_us());
        self.arm_tlp(now);
        acked
    }

    /// Congestion control and loss recovery after an ACK (the kernel's
    /// `tcp_fastretrans_alert` + `tcp_cong_control`): RACK loss detection with SACK
    /// (dupthresh dupacks and NewReno partial ACKs without), recovery with PRR, and undo
    /// of a recovery whose retransmissions were all D-SACKed.
    fn after_ack(
        &mut self,
        ctx: &mut Ctx<'_>,
        acked: u32,
        sacked: u32,
        prior_in_flight: u32,
        now: u64,
    ) {
        let _ = ctx;
        if self.sack_ok && self.rack.advanced() {
            self.rack_detect_loss(now);
        }
        match self.ca_state {
            CaState::Recovery | CaState::Loss => {
                if self.ca_state == CaState::Recovery && self.try_undo() {
                    return;
                }
                if self.snd_una.ge(self.high_seq) {
                    // Recovery point reached (RFC 6582 full ACK): out.
                    self.cc.on_recovery_end();
                    self.prr = None;
                    self.ca_state = CaState::Open;
                    self.rack.on_recovery_exit();
                    self.undo.marker = None;
                } else {
                    if self.ca_state == CaState::Recovery {
                        if !self.sack_ok && acked > 0 {
                            // NewReno partial ACK (RFC 6582 §3.2 step 3): the next hole.
                            self.mark_head_lost();
                        }
                        let ssthresh = self.cc.ssthresh();
                        let in_flight = self.in_flight();
                        if let Some(p) = self.prr.as_mut() {
                            let cwnd = p.on_ack(acked + sacked, in_flight, ssthresh);
                            self.cc.set_cwnd(cwnd.max(1));
                        }
                    } else {
                        // After an RTO: slow start from the loss window.
                        self.cc.on_ack(acked, now, self.rtt.min_rtt_us(), true);
                    }
                    return;
                }
            }
            _ => {}
        }
        // Time to recover? (`tcp_time_to_recover`: with SACK, RACK marked a loss; without,
        // dupthresh duplicate ACKs.)
        let time_to_recover = self.lost_out > 0 || (!self.sack_ok && self.dupacks >= DUPTHRESH);
        if self.packets_out > 0 && time_to_recover {
            self.enter_recovery(now, prior_in_flight);
            return;
        }
        if self.dupacks > 0 || self.sacked_out > 0 {
            self.ca_state = CaState::Disorder;
        } else {
            self.ca_state = CaState::Open;
        }
        if acked > 0 {
            // cwnd-limited: was the window full before this ACK (`tcp_is_cwnd_limited`)?
            let cwnd = self.cc.cwnd();
            let limited =
                prior_in_flight >= cwnd || (self.cc.in_slow_start() && prior_in_flight * 2 > cwnd);
            self.cc.on_ack(acked, now, self.rtt.min_rtt_us(), limited);
        }
    }

    fn enter_recovery(&mut self, now: u64, prior_in_flight: u32) {
        self.counters.fast_recoveries += 1;
        // A loss probe that led here did its job; recovery reduces cwnd, not the probe.
        self.tlp_high_seq = None;
        let prior_cwnd = self.cc.cwnd();
        // `tcp_init_undo` with `tcp_current_ssthresh` (we enter from Open or Disorder).
        self.undo = Undo {
            marker: Some(self.snd_una),
            retrans: if self.retrans_out > 0 {
                self.retrans_out as i32
            } else {
                -1
            },
            prior_cwnd,
            prior_ssthresh: self
                .cc
                .ssthresh()
                .max((prior_cwnd >> 1) + (prior_cwnd >> 2)),
        };
        let ssthresh = self.cc.on_loss(now);
        self.ca_state = CaState::Recovery;
        self.high_seq = self.snd_nxt;
        self.prr = Some(Prr::start(ssthresh, prior_cwnd, prior_in_flight));
        if !self.sack_ok {
            self.mark_head_lost();
        }
        let in_flight = self.in_flight();
        if let Some(p) = self.prr.as_mut() {
            let cwnd = p.on_ack(1, in_flight, ssthresh);
            self.cc.set_cwnd(cwnd.max(1));
        }
    }

    /// `tcp_try_undo_dsack`: every retransmission of this recovery was D-SACKed, so what
    /// looked like loss was reordering: cwnd and ssthresh go back to what they were and
    /// the recovery ends. True if it did.
    ///
    /// Unlike the kernel, skiff also counts this as reordering seen, so RACK's window
    /// opens. The kernel learns it here from timestamps (`tcp_packet_delayed`: the ACK
    /// echoes a TSval older than the retransmission), which at millisecond resolution
    /// cannot tell a late original from the retransmission when the RTT is well below a
    /// millisecond, as on veth; so segments late by more than dupthresh would be resent
    /// and undone over and over without ever widening the window.
    fn try_undo(&mut self) -> bool {
        if self.undo.marker.is_none() || self.undo.retrans != 0 {
            return false;
        }
        self.rack.set_reord_seen();
        self.cc.undo(self.undo.prior_cwnd, self.undo.prior_ssthresh);
        self.undo.marker = None;
        self.prr = None;
        self.ca_state = if self.sacked_out + self.lost_out + self.retrans_out > 0 {
            CaState::Disorder
        } else {
            CaState::Open
        };
        self.rack.on_recovery_exit();
        self.counters.dsack_undos += 1;
        true
    }

    /// A D-SACK for `(s, e)` (`tcp_check_dsack`, `tcp_sacktag_one`): that many
    /// retransmissions of this recovery were not needed.
    fn undo_on_dsack(&mut self, (s, e): (Seq, Seq)) {
        let Some(marker) = self.undo.marker else {
            return;
        };
        if self.undo.retrans > 0 && e.gt(marker) {
            let segs = e.since(s).div_ceil(u32::from(self.mss).max(1)).max(1);
            let segs = i32::try_from(segs).unwrap_or(i32::MAX);
            self.undo.retrans = self.undo.retrans.saturating_sub(segs).max(0);
        }
    }

    fn mark_lost(&mut self, i: usize) {
        let g = &mut self.q[i];
        if !g.lost && !g.sacked {
            g.lost = true;
            self.lost_out += 1;
            if g.retrans {
                g.retrans = false;
                self.retrans_out -= 1;
            }
        }
    }

    /// The first unacknowledged segment is lost (dupthresh reached, or a NewReno partial
    /// ACK): RFC 6675 §5 step 3 / RFC 6582.
    fn mark_head_lost(&mut self) {
        if self.unsent > 0 && !self.q[0].retrans {
            self.mark_lost(0);
        }
    }

    /// RACK's reordering window now, µs.
    fn reo_wnd(&self) -> u64 {
        self.rack.reo_wnd(
            matches!(self.ca_state, CaState::Recovery | CaState::Loss),
            self.sacked_out,
            DUPTHRESH,
            self.rtt.min_rtt_us(),
            self.rtt.srtt_us(),
        )
    }

    /// RACK's loss detection (RFC 8985 §6.2 step 5, `tcp_rack_detect_loss`): a segment
    /// in flight sent before the most recently sent delivered one is lost once that one's
    /// RTT plus the reordering window has passed since it went out; for those still
    /// within it the reordering timer is armed. A retransmission found lost (data sent
    /// after it was delivered) becomes eligible to go out again.
    fn rack_detect_loss(&mut self, now: u64) {
        self.rack_at = None;
        let reo_wnd = self.reo_wnd();
        let mut wait = 0u64;
        for i in 0..self.unsent.min(self.q.len()) {
            let g = self.q[i];
            if g.sacked {
                continue;
            }
            let awaiting_rtx = g.lost && !g.retrans;
            match self.rack.check(g.sent_us, g.order, now, reo_wnd) {
                // First transmissions leave in sequence order and a retransmission
                // leaves after its original, so nothing above a first transmission sent
                // after RACK's segment was sent before it.
                Verdict::NotBefore if g.xmits <= 1 => break,
                Verdict::NotBefore => {}
                Verdict::Wait(t) if !awaiting_rtx => wait = wait.max(t),
                Verdict::Wait(_) => {}
                Verdict::Lost if g.lost && g.retrans => {
                    // Still marked lost from the first time: only the retransmission's
                    // count goes, which makes it eligible again.
                    self.q[i].retrans = false;
                    self.retrans_out -= 1;
                    self.counters.lost_retransmits += 1;
                }
                Verdict::Lost => self.mark_lost(i),
            }
        }
        if wait > 0 {
            self.rack_at = Some(now + wait);
        }
    }

    /// The reordering timer fired (`tcp_rack_reo_timeout`): look again, and start a
    /// recovery if that found a loss.
    fn on_rack_timer(&mut self, now: u64) {
        let prior_in_flight = self.in_flight();
        let lost_before = self.lost_out;
        self.rack_detect_loss(now);
        if self.lost_out > lost_before
            && self.packets_out > 0
            && matches!(self.ca_state, CaState::Open | CaState::Disorder)
        {
            self.enter_recovery(now, prior_in_flight);
        }
    }

    // ----- timers -----

    /// Earliest pending timer, µs.
    pub(crate) fn next_timer(&self) -> Option<u64> {
        [
            self.rto_at,
            self.rack_at,
            self.tlp_at,
            self.persist_at,
            self.delack_at,
            self.time_wait_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Runs the timers that are due.
    pub(crate) fn on_timers(&mut self, ctx: &mut Ctx<'_>) {
        let now = ctx.now_us;
        if self.time_wait_at.is_some_and(|t| t <= now) {
            self.time_wait_at = None;
            self.terminate(ctx, CloseReason::Normal);
            return;
        }
        if self.delack_at.is_some_and(|t| t <= now) {
            self.delack_at = None;
            if self.rcv_unacked > 0 {
                self.ack_now = true;
                self.counters.delayed_acks += 1;
            }
        }
        if self.rto_at.is_some_and(|t| t <= now) {
            self.rto_at = None;
            self.tlp_at = None;
            self.on_rto(ctx);
        }
        if self.rack_at.is_some_and(|t| t <= now) {
            self.rack_at = None;
            self.on_rack_timer(now);
        }
        if self.tlp_at.is_some_and(|t| t <= now) {
            self.tlp_at = None;
            self.on_tlp_timer(now);
        }
        if self.persist_at.is_some_and(|t| t <= now) {
            self.persist_at = None;
            self.send_window_probe(ctx);
        }
    }

    fn on_rto(&mut self, ctx: &mut Ctx<'_>) {
        if self.packets_out == 0 {
            return;
        }
        let now = ctx.now_us;
        self.retries += 1;
        let limit = match self.state {
            State::SynSent => SYN_RETRIES,
            State::SynReceived => SYNACK_RETRIES,
            _ => RETRIES2,
        };
        if self.retries > limit {
            self.terminate(ctx, CloseReason::TimedOut);
            return;
        }
        self.counters.timeouts += 1;
        // `tcp_enter_loss`: cwnd to the loss window, every un-SACKed segment lost, and a
        // new recovery point.
        if self.ca_state != CaState::Loss {
            self.cc.on_rto(now);
        } else {
            self.cc.set_cwnd(1);
        }
        self.ca_state = CaState::Loss;
        self.prr = None;
        self.undo.marker = None;
        self.rack_at = None;
        self.tlp_high_seq = None;
        self.tlp_pending = false;
        self.high_seq = self.snd_nxt;
        self.dupacks = 0;
        for i in 0..self.unsent.min(self.q.len()) {
            if self.q[i].retrans {
                self.q[i].retrans = false;
                self.retrans_out -= 1;
            }
            self.mark_lost(i);
        }
        self.rtt.backoff();
        self.rto_at = Some(now + self.rtt.rto_us());
    }

    /// Arms the tail loss probe (RFC 8985 §7.2, `tcp_schedule_loss_probe`): with SACK,
    /// data in flight, no recovery under way and no probe outstanding, fire 2·SRTT after
    /// the last ACK or transmission (plus 2 ms, or plus the 200 ms delayed-ACK allowance
    /// for a single segment), unless the RTO comes first. Each ACK and each transmission
    /// pushes it back, so it only fires when the ACK clock has stopped: a lost tail is
    /// then repaired in about 2 RTTs instead of an RTO (≥ 200 ms), with no cwnd collapse.
    fn arm_tlp(&mut self, now: u64) {
        self.tlp_at = None;
        let open = self.ca_state == CaState::Open
            && matches!(
                self.state,
                State::Established
                    | State::CloseWait
                    | State::FinWait1
                    | State::Closing
                    | State::LastAck
            );
        if !self.sack_ok || self.packets_out == 0 || !open || self.tlp_high_seq.is_some() {
            return;
        }
        let Some(srtt) = self.rtt.srtt_us() else {
            return;
        };
        let slack = if self.packets_out == 1 {
            super::rtt::RTO_MIN_US
        } else {
            TLP_SLACK_US
        };
        let at = now + 2 * u64::from(srtt) + slack;
        if self.rto_at.is_none_or(|r| at < r) {
            self.tlp_at = Some(at);
        }
    }

    /// The probe timer fired (`tcp_send_loss_probe`): `output` resends the last segment
    /// sent, whose ACK (or SACK) tells which part of the tail was lost. Skiff always
    /// probes with the last segment (RFC 8985 §7.3 allows new data instead when the
    /// window permits; the kernel prefers that).
    fn on_tlp_timer(&mut self, now: u64) {
        if self.packets_out == 0 || self.tlp_high_seq.is_some() || self.ca_state != CaState::Open {
            return;
        }
        self.tlp_pending = true;
        self.rto_at = Some(now + self.rtt.rto_us());
    }

    /// Sends the loss probe: the last segment sent, again, unless it is SACKed or still in
    /// the host's TX path.
    fn send_tlp(&mut self, ctx: &mut Ctx<'_>, hh: &[u8; 14]) -> bool {
        self.tlp_pending = false;
        let Some(i) = self.unsent.min(self.q.len()).checked_sub(1) else {
            return false;
        };
        let g = self.q[i];
        if g.sacked || g.retrans || !ctx.refs.is_parked(g.frame) {
            return false;
        }
        if !self.transmit(ctx, hh, i, 1) {
            return false;
        }
        self.note_retransmitted(ctx, i);
        self.counters.tlp_probes += 1;
        self.tlp_high_seq = Some(self.snd_nxt);
        self.tlp_order = self.q[i].order;
        true
    }

    /// Segment `i` leaves now, as the connection's next transmission.
    fn stamp_sent(&mut self, i: usize, now: u64) {
        self.tx_order += 1;
        let g = &mut self.q[i];
        g.sent_us = now;
        g.order = self.tx_order;
        g.xmits = g.xmits.saturating_add(1);
    }

    /// Whether `g`'s delivery moves RACK: a first transmission, or the outstanding loss
    /// probe. Other retransmissions do not (see [`Rack::delivered`]); the probe does, as
    /// it left at least 2·SRTT after the segments before it, so its SACK makes RACK mark
    /// the unSACKed ones lost (RFC 8985 §7.4.2: a probe that reveals a tail hole starts
    /// fast recovery instead of waiting for the RTO).
    fn moves_rack(&self, g: &Seg) -> bool {
        g.xmits <= 1 || (self.tlp_high_seq.is_some() && g.order == self.tlp_order)
    }

    /// Tells RACK `g` was delivered now, counting reordering it shows.
    fn rack_delivered(&mut self, g: &Seg, now: u64) {
        let retransmitted = !self.moves_rack(g);
        if self
            .rack
            .delivered(g.sent_us, g.order, g.end(), retransmitted, now)
        {
            self.counters.reordering += 1;
        }
    }

    /// Segment `i` went out again: counted in `retrans_out` until ACKed, SACKed or lost.
    fn note_retransmitted(&mut self, ctx: &mut Ctx<'_>, i: usize) {
        self.q[i].retrans = true;
        self.retrans_out += 1;
        if self.undo.marker.is_some() {
            self.undo.retrans = self.undo.retrans.max(0) + 1;
        }
        self.counters.retrans_segs += 1;
        ctx.counters.retrans_segs += 1;
    }

    /// True when the first unsent segment carries data the peer's window does not take
    /// (what stops `send_new`; `tcp_snd_wnd_test` failing).
    fn window_blocks_head(&self) -> bool {
        self.q.get(self.unsent).is_some_and(|g| {
            g.len > 0 && g.seq.add(g.len as u32).gt(self.snd_una.add(self.snd_wnd))
        })
    }

    /// Zero-window probe: a segment one below snd_una with no data, which the peer must
    /// ACK with its current window (`tcp_xmit_probe_skb`).
    fn send_window_probe(&mut self, ctx: &mut Ctx<'_>) {
        if !self.window_blocks_head() {
            return;
        }
        self.counters.window_probes += 1;
        self.persist_backoff = (self.persist_backoff + 1).min(RETRIES2);
        let seq = self.snd_una.sub(1);
        self.send_pure(ctx, seq, flags::ACK, false);
        let wait = (self.rtt.rto_us() << self.persist_backoff).min(120_000_000);
        self.persist_at = Some(ctx.now_us + wait);
    }

    /// Tears the connection down: every frame back to the pool.
    pub(crate) fn terminate(&mut self, ctx: &mut Ctx<'_>, why: CloseReason) {
        for g in self.q.drain(..) {
            ctx.refs.release(g.frame, ctx.pool);
        }
        for c in self.rcvq.drain(..) {
            ctx.pool.push(c.frame);
        }
        let mut rest = Vec::new();
        self.ooo.drain(&mut rest);
        for c in rest {
            ctx.pool.push(c.frame);
        }
        self.rcvq_bytes = 0;
        self.unsent = 0;
        self.packets_out = 0;
        self.sacked_out = 0;
        self.lost_out = 0;
        self.retrans_out = 0;
        self.rto_at = None;
        self.rack_at = None;
        self.tlp_at = None;
        self.persist_at = None;
        self.delack_at = None;
        self.time_wait_at = None;
        if self.close_reason.is_none() || why != CloseReason::Normal {
            self.close_reason = Some(why);
        }
        self.state = State::Closed;
    }

    /// Aborts: RST to the peer (RFC 9293 §3.10.5), then teardown.
    pub(crate) fn abort(&mut self, ctx: &mut Ctx<'_>) {
        if matches!(
            self.state,
            State::SynReceived
                | State::Established
                | State::FinWait1
                | State::FinWait2
                | State::CloseWait
        ) {
            let seq = self.snd_nxt;
            self.send_pure(ctx, seq, flags::RST | flags::ACK, false);
        }
        self.terminate(ctx, CloseReason::Aborted);
    }

    // ----- output -----

    /// Sends what is due: retransmissions first, then new data as cwnd, the peer's window
    /// and Nagle allow, in super-segments; then a pure ACK if one is owed and nothing
    /// carried it.
    pub(crate) fn output(&mut self, ctx: &mut Ctx<'_>) {
        if self.state == State::Closed {
            return;
        }
        let hh = match ctx
            .neigh
            .resolve(self.next_hop, ctx.now_ns(), ctx.neigh_out)
        {
            Resolve::Ready(hh) => *hh,
            Resolve::Pending => return,
            Resolve::Failed => {
                self.terminate(ctx, CloseReason::Unreachable);
                return;
            }
        };
        let mut carried_ack = false;
        // SACK and D-SACK blocks ride on pure ACKs only (a data segment's header length
        // is fixed by where its payload sits), so when the peer is owed them a pure ACK
        // goes first, whatever data follows; Linux puts them on the data segments
        // (`tcp_established_options`). (Fix: data carrying the ACK number used to clear
        // the owed ACK, and the peer never heard of the hole: data segments are not
        // duplicate ACKs, so its recovery waited for an RTO; caught by the test
        // `out_of_order_while_sending_still_reports_sack`.)
        if self.ack_now
            && self.sack_ok
            && (self.dsack.is_some() || !self.ooo.is_empty())
            && self.state != State::SynSent
        {
            let seq = self.snd_nxt;
            self.send_pure(ctx, seq, flags::ACK, true);
        }
        // Retransmissions.
        if self.lost_out > self.retrans_out {
            carried_ack |= self.retransmit(ctx, &hh);
        }
        if self.tlp_pending {
            carried_ack |= self.send_tlp(ctx, &hh);
        }
        // New data.
        carried_ack |= self.send_new(ctx, &hh);
        // Data waiting that the peer's window does not take, and nothing in flight whose
        // ACK could open it: the persist timer (`tcp_check_probe_timer`). (Fix: this
        // tested `snd_wnd == 0` only, so a window smaller than the next segment, which
        // `send_new` never splits, stalled the connection for good; caught by the test
        // `window_below_one_segment_still_probes`. Where the kernel's `tcp_write_wakeup`
        // would send the part that fits, skiff probes until the segment fits.)
        if self.window_blocks_head()
            && self.packets_out == 0
            && self.persist_at.is_none()
            && matches!(
                self.state,
                State::Established | State::CloseWait | State::FinWait1 | State::LastAck
            )
        {
            self.persist_at = Some(ctx.now_us + self.rtt.rto_us());
        }
        if self.ack_now && !carried_ack && self.state != State::SynSent {
            let seq = self.snd_nxt;
            self.send_pure(ctx, seq, flags::ACK, true);
        }
    }

    fn retransmit(&mut self, ctx: &mut Ctx<'_>, hh: &[u8; 14]) -> bool {
        let mut sent_any = false;
        let cwnd = self.cc.cwnd();
        for i in 0..self.unsent.min(self.q.len()) {
            if self.in_flight() >= cwnd {
                break;
            }
            let g = self.q[i];
            if !g.lost || g.retrans || g.sacked {
                continue;
            }
            if !ctx.refs.is_parked(g.frame) {
                self.counters.rtx_hostqueue += 1;
                continue;
            }
            if self.transmit(ctx, hh, i, 1) {
                self.note_retransmitted(ctx, i);
                sent_any = true;
                if self.rto_at.is_none() {
                    self.rto_at = Some(ctx.now_us + self.rtt.rto_us());
                }
            }
        }
        sent_any
    }

    fn send_new(&mut self, ctx: &mut Ctx<'_>, hh: &[u8; 14]) -> bool {
        let mut sent_any = false;
        loop {
            if self.unsent >= self.q.len() {
                break;
            }
            // SYN-SENT / SYN-RECEIVED send nothing but the SYN.
            if matches!(self.state, State::SynSent | State::SynReceived)
                && self.q[self.unsent].ctl & flags::SYN == 0
            {
                break;
            }
            let cwnd = self.cc.cwnd();
            let in_flight = self.in_flight();
            if in_flight >= cwnd {
                break;
            }
            // TCP Small Queues (`tcp_small_queue_check`): no more than about 1 ms at the
            // pacing rate, and at least two super-segments, may wait in the qdisc and the
            // TX ring, so queueing delay stays out of the RTT and cwnd does not grow
            // into a host queue.
            if self.host_frames >= self.tsq_limit() {
                ctx.counters.tsq_throttled += 1;
                break;
            }
            // How many segments fit the cwnd quota, the peer's window and size_goal.
            let quota = (cwnd - in_flight).min(MAX_GSO_SEGS);
            let wnd_end = self.snd_una.add(self.snd_wnd);
            let mut n = 0usize;
            let first = self.unsent;
            while n < quota as usize && first + n < self.q.len() {
                let g = &self.q[first + n];
                let data_end = g.seq.add(g.len as u32);
                if g.ctl & flags::SYN == 0 && data_end.gt(wnd_end) && g.len > 0 {
                    break;
                }
                // A SYN or FIN ends a super-segment (they go out with what precedes them).
                n += 1;
                if g.ctl != 0 {
                    break;
                }
            }
            if n == 0 {
                break;
            }
            // Nagle (RFC 9293 §3.7.4): a small segment waits while data is in flight.
            if self.cfg.nagle
                && n == 1
                && (self.q[first].len as u32) < self.mss as u32
                && self.packets_out > 0
                && self.q[first].ctl == 0
            {
                break;
            }
            if !self.transmit(ctx, hh, first, n) {
                break;
            }
            for k in 0..n {
                let g = &self.q[first + k];
                self.snd_nxt = self.snd_nxt.max(g.end());
            }
            self.unsent += n;
            self.packets_out += n as u32;
            sent_any = true;
            if self.rto_at.is_none() {
                self.rto_at = Some(ctx.now_us + self.rtt.rto_us());
            }
        }
        if sent_any {
            // New data in flight: the loss probe counts from this transmission.
            self.arm_tlp(ctx.now_us);
        }
        sent_any
    }

    /// Builds the headers of `n` consecutive queued segments starting at `first` with one
    /// GSO template and hands their frames to the transmit path. False if the first frame
    /// is still in flight.
    fn transmit(&mut self, ctx: &mut Ctx<'_>, hh: &[u8; 14], first: usize, n: usize) -> bool {
        let now = ctx.now_us;
        let g0 = self.q[first];
        let last = self.q[first + n - 1];
        let syn = g0.ctl & flags::SYN != 0;
        let mut fl = flags::ACK;
        if syn && self.state == State::SynSent {
            fl = flags::SYN;
        } else if syn {
            fl |= flags::SYN;
        }
        if last.ctl & flags::FIN != 0 {
            fl |= flags::FIN;
        }
        // PSH on the last segment of what is queued (`tcp_mark_push` at the end of a write).
        if first + n == self.q.len() && last.len > 0 {
            fl |= flags::PSH;
        }
        let mut opts = TcpOptions::default();
        let tsval = self.tsval(now);
        if syn {
            opts.mss = Some(self.cfg.mss);
            opts.sack_permitted = self.state == State::SynSent || self.sack_ok;
            let peer_ts = self.state == State::SynSent || self.ts_ok;
            if peer_ts {
                opts.timestamps = Some((
                    tsval,
                    if self.state == State::SynSent {
                        0
                    } else {
                        self.ts_recent
                    },
                ));
            }
            if self.state == State::SynSent || self.rcv_wscale > 0 {
                opts.wscale = Some(OUR_WSCALE);
            }
        } else if self.ts_ok {
            opts.timestamps = Some((tsval, self.ts_recent));
        }
        let window = if syn {
            self.rcv_wnd.min(65535) as u16
        } else {
            self.select_window()
        };
        let th = TcpHeader {
            src_port: self.local.1,
            dst_port: self.remote.1,
            seq: g0.seq,
            ack: if fl & flags::ACK != 0 {
                self.rcv_nxt
            } else {
                Seq(0)
            },
            flags: fl,
            window,
            checksum: 0,
            urgent: 0,
            options: opts,
        };
        let total_payload: u32 = (0..n).map(|k| self.q[first + k].len as u32).sum();
        let segs = n as u32;
        let mut hdr = [0u8; crate::tx::gso::MAX_HEADER];
        let Some(hl) = self.build_headers(hh, &th, total_payload, segs, &mut hdr) else {
            return false;
        };
        // A SYN cannot go through GSO (which copies control flags to no segment but
        // refuses SYN): its header is written whole and checksummed here.
        if syn {
            let Some(mut frame) = ctx.refs.take_for_tx(g0.frame) else {
                self.counters.rtx_hostqueue += 1;
                return false;
            };
            let n = ctx.area.build(&mut frame, |buf| match buf.get_mut(..hl) {
                Some(dst) => {
                    dst.copy_from_slice(&hdr[..hl]);
                    hl
                }
                None => 0,
            });
            if n == 0 {
                ctx.refs.completed(ctx.area, frame, ctx.pool);
                return false;
            }
            ctx.fill_tcp_checksum(
                &mut frame,
                self.local.0,
                self.remote.0,
                hl - th.header_len(),
            );
            self.stamp_sent(first, now);
            ctx.out.push(TxFrame {
                frame,
                flow: self.flow,
                rate: None,
            });
            self.host_frames += 1;
            self.counters.segs_out += 1;
            ctx.counters.out_segs += 1;
            self.ack_sent();
            return true;
        }
        let mss = if n > 1 {
            self.q[first].len
        } else {
            self.mss.max(g0.len.max(1))
        };
        let Ok(tmpl) = GsoTemplate::new(&hdr[..hl], mss.max(1)) else {
            return false;
        };
        let rate = self.pacing_rate();
        for k in 0..n {
            let g = self.q[first + k];
            let Some(mut frame) = ctx.refs.take_for_tx(g.frame) else {
                if k == 0 {
                    self.counters.rtx_hostqueue += 1;
                    return false;
                }
                // Should not happen for never-sent segments; stop the batch here.
                return k > 0;
            };
            // The payload sits at the data-segment header length; a SYN/FIN-only frame
            // has none. The header written must end where the payload starts.
            let payload_off = self.hdr_len as usize;
            let written = ctx.area.build(&mut frame, |buf| {
                if hl != payload_off && g.len > 0 {
                    return 0;
                }
                let Some(dst) = buf.get_mut(..hl) else {
                    return 0;
                };
                tmpl.write_segment(k as u32, segs, g.len, g.sum, dst);
                hl + g.len as usize
            });
            if written == 0 {
                // Cannot happen with a consistent header length; put the frame back.
                ctx.refs.completed(ctx.area, frame, ctx.pool);
                return k > 0;
            }
            self.stamp_sent(first + k, now);
            ctx.out.push(TxFrame {
                frame,
                flow: self.flow,
                rate,
            });
            self.host_frames += 1;
            self.counters.segs_out += 1;
            ctx.counters.out_segs += 1;
        }
        if n > 1 {
            self.counters.gso_super += 1;
            ctx.counters.gso_super += 1;
            ctx.counters.gso_segs += n as u64;
        }
        // Every segment carried our ACK: nothing more is owed.
        self.ack_sent();
        true
    }

    fn ack_sent(&mut self) {
        self.ack_now = false;
        self.delack_at = None;
        self.rcv_unacked = 0;
        self.dsack = None;
    }

    /// Ethernet + IP + TCP headers for a segment (or super-segment of `segs` segments)
    /// carrying `payload` bytes. Returns the header length.
    fn build_headers(
        &mut self,
        hh: &[u8; 14],
        th: &TcpHeader,
        payload: u32,
        segs: u32,
        out: &mut [u8],
    ) -> Option<usize> {
        out.get_mut(..14)?.copy_from_slice(hh);
        let id = match self.remote.0 {
            IpAddr::V4(_) => self.ip_ident.next_segs(segs),
            IpAddr::V6(_) => 0,
        };
        // The flow hash the label derives from: the connection id times 2^32/φ (Knuth's
        // multiplicative hash), so neighbouring ids get unrelated labels.
        let label = ip::flow_label(self.flow.wrapping_mul(0x9e37_79b9));
        let n = write_ip_tcp(
            out.get_mut(14..)?,
            self.local.0,
            self.remote.0,
            th,
            payload,
            id,
            label,
        )?;
        Some(14 + n)
    }

    /// A segment with no payload that is not queued for retransmission: a pure ACK (with
    /// SACK blocks and D-SACK), a RST, a window probe.
    fn send_pure(&mut self, ctx: &mut Ctx<'_>, seq: Seq, fl: u8, with_sack: bool) {
        let hh = match ctx
            .neigh
            .resolve(self.next_hop, ctx.now_ns(), ctx.neigh_out)
        {
            Resolve::Ready(hh) => *hh,
            _ => return,
        };
        let mut opts = TcpOptions::default();
        if self.ts_ok {
            opts.timestamps = Some((self.tsval(ctx.now_us), self.ts_recent));
        }
        if with_sack && self.sack_ok {
            let max = if self.ts_ok {
                MAX_SACK_WITH_TS
            } else {
                MAX_SACK_WITH_TS + 1
            };
            // D-SACK first (RFC 2883 §4), then the out-of-order blocks, most recent first;
            // in a buffer kept with the connection: no allocation per ACK.
            let mut blocks = std::mem::take(&mut self.sack_buf);
            blocks.clear();
            blocks.extend(self.dsack);
            let room = max - blocks.len();
            self.ooo.sack_blocks(self.rcv_nxt, &mut blocks, room);
            for &(s, e) in &blocks {
                opts.push_sack(s, e);
            }
            self.sack_buf = blocks;
        }
        let window = self.select_window();
        let th = TcpHeader {
            src_port: self.local.1,
            dst_port: self.remote.1,
            seq,
            ack: self.rcv_nxt,
            flags: fl,
            window,
            checksum: 0,
            urgent: 0,
            options: opts,
        };
        let Some(mut frame) = ctx.alloc() else {
            return;
        };
        let mut hdr = [0u8; crate::tx::gso::MAX_HEADER];
        let Some(hl) = self.build_headers(&hh, &th, 0, 1, &mut hdr) else {
            ctx.pool.push(frame);
            return;
        };
        let ok = ctx.area.build(&mut frame, |buf| match buf.get_mut(..hl) {
            Some(dst) => {
                dst.copy_from_slice(&hdr[..hl]);
                hl
            }
            None => 0,
        });
        if ok == 0 {
            ctx.pool.push(frame);
            return;
        }
        ctx.fill_tcp_checksum(
            &mut frame,
            self.local.0,
            self.remote.0,
            hl - th.header_len(),
        );
        ctx.refs.send_unheld(ctx.area, &frame);
        ctx.out.push(TxFrame {
            frame,
            flow: self.flow,
            rate: None,
        });
        self.host_frames += 1;
        ctx.counters.out_segs += 1;
        self.counters.segs_out += 1;
        if fl & flags::RST == 0 {
            self.counters.acks_out += 1;
            self.ack_sent();
        }
    }
}
