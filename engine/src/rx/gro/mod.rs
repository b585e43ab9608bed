//! Userspace GRO (generic receive offload) that makes the same merge decisions as Linux
//! 6.18 and emits the same bytes a packet socket on a GRO receiver shows.
//!
//! Frames of one TCP or UDP flow that arrive in order within a poll round are chained into
//! one packet: only the header (≤ [`MAX_HDR`] bytes) is copied and rewritten, the payload
//! stays in the original frames ([`Merged`]). Everything else passes through untouched
//! ([`GroPacket::Single`]). Held packets are completed when a segment ends them, when the
//! next segment cannot join, when their bucket is full, or at the end of the poll round
//! ([`Gro::flush`], the `napi_complete` analogue). No flow is ever reordered, and every
//! frame comes out exactly once: `received == frames_out + held_frames()`.
//!
//! # Where the rules come from
//!
//! Read through the `search` tool (public copies of the kernel tree and of the netdev
//! list), newest version found:
//!
//! - `net/core/gro.c`: `dev_gro_receive` (bucket = hash & (`GRO_HASH_BUCKETS` − 1), hold
//!   with `gso_size` = the first payload, `MAX_GRO_SKBS` per bucket then
//!   `gro_flush_oldest`), `gro_list_prepare` (same flow needs the same L2 header),
//!   `skb_gro_receive` (`p->len + len >= gro_max_size || NAPI_GRO_CB(skb)->flush` →
//!   `-E2BIG`), `napi_gro_complete` (a packet of one segment is left untouched); read at
//!   `torvalds/linux` 0b1605e45c36, whose logic 6.18 keeps.
//! - `include/net/gro.h`: `gro_receive_network_flush`, `inet_gro_flush`, `ipv6_gro_flush`
//!   as of the series "net: gso: restore outer ip ids correctly" (v8, applied to net-next
//!   on 2025-09-25 as 21f7484220ac…5e9ff9378adc, so in 6.18), including f095a358faf2
//!   "net: gro: remove unnecessary df checks".
//! - `net/ipv4/af_inet.c` `inet_gro_receive` / `inet_gro_complete` and
//!   `net/ipv6/ip6_offload.c` `ipv6_gro_receive` / `ipv6_gro_complete` (the IP gates and
//!   the flush bit; read in the same series and at `kernel-patches/bpf`).
//! - `net/ipv4/tcp_offload.c`: `tcp_gro_receive`, `tcp4_gro_receive`, `tcp4_gro_complete`,
//!   `tcp_gro_complete`, read at `codesnas/linux-6.18.y` 33ef1e6ac01f (the 6.18 tree).
//! - `net/ipv4/udp_offload.c`: `udp_gro_receive_segment`, `udp4_gro_receive`,
//!   `udp4_gro_complete`, `udp_gro_complete` (read at `LorenzoBianconi/net-next`, with the
//!   network-flush call from the series above).
//! - `net/8021q/vlan_core.c` `vlan_gro_receive`: one tag, compared like the MACs.
//!
//! # Where skiff differs (non-goals, each documented where it applies)
//!
//! - IPv6 extension headers are passed (`ipv6_ext`); the kernel merges across some
//!   (`ipv6_gso_pull_exthdrs`).
//! - BIG TCP is out: `max_l3` is clamped to 65536 (`GRO_LEGACY_MAX_SIZE`).
//! - TCP packets are also capped at `max_segs` segments; the kernel has no such cap for
//!   TCP (64 is `UDP_GRO_CNT_MAX`'s value, and a 1448-byte stream reaches the size limit
//!   at 45 first).
//! - The flow lookup compares against every held packet, not only those of the hashed
//!   bucket, so a caller's inconsistent hash cannot split a flow (with a consistent hash
//!   the result is the kernel's). `hash` only places new packets and picks which bucket
//!   is full; without one, GRO hashes the key it parsed.
//! - [`Gro::flush`] completes the held packets oldest first across buckets (the kernel
//!   walks bucket by bucket); a flow has at most one held packet, so no flow's order
//!   differs. There is no jiffies-based `flush_old`.
//! - Checksums are verified in software (`CHECKSUM_NONE`) when configured; there is no
//!   device `CHECKSUM_COMPLETE` / `CHECKSUM_UNNECESSARY`.
//! - UDP GRO applies to every UDP flow when [`GroConfig::udp`] is on (the kernel asks the
//!   socket for `UDP_GRO`); no tunnel (encapsulated) GRO, no fraglist GRO.

mod merged;
mod parse;
mod tcp;
mod udp;

#[cfg(test)]
mod frames;
#[cfg(test)]
mod tests;

pub use merged::{GroProto, Merged};

use crate::wire::ETH_HLEN;
use parse::{FlowKey, Net, ParseCfg, Pass, Seg, L4};

/// Longest header a merged packet carries: Ethernet 14 + one tag 4 + IPv6 40 + TCP with
/// the most options 60 = 118 bytes.
pub const MAX_HDR: usize = parse::MAX_HDR;

/// `GRO_LEGACY_MAX_SIZE` (`include/linux/netdevice.h`): 64 KiB, the largest packet an IPv4
/// total length (or an IPv6 payload length without a jumbo option) can describe, and the
/// default `gro_max_size`.
pub const GRO_LEGACY_MAX_SIZE: usize = 65536;

/// GRO limits and switches; [`Default`] is the kernel's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct GroConfig {
    /// A merge is refused when the held packet's length after the Ethernet header (its L3
    /// length, plus 4 with an in-line tag, as the kernel's `p->len`) plus the new payload
    /// would reach this (`gro_max_size`, default 65536; clamped to
    /// [`GRO_LEGACY_MAX_SIZE`]).
    pub max_l3: usize,
    /// Most segments in one packet (skiff's bound: 64, `UDP_GRO_CNT_MAX`'s value; at least
    /// 1, which disables merging).
    pub max_segs: u16,
    /// Hash buckets (`GRO_HASH_BUCKETS` = 8); at least 1.
    pub buckets: usize,
    /// Held packets per bucket before the oldest is completed (`MAX_GRO_SKBS` = 8);
    /// at least 1.
    pub per_bucket: usize,
    /// Verify TCP/UDP checksums and pass frames whose checksum is wrong (the kernel does
    /// for `CHECKSUM_NONE` frames, as from a veth fed by a packet socket).
    pub verify_checksums: bool,
    /// Merge TCP.
    pub tcp: bool,
    /// Merge UDP (as on a socket with `UDP_GRO`); off by default, like the socket option.
    pub udp: bool,
}

/// `GRO_HASH_BUCKETS` (`include/net/gro.h`).
const GRO_HASH_BUCKETS: usize = 8;
/// `MAX_GRO_SKBS` (`net/core/gro.c`).
const MAX_GRO_SKBS: usize = 8;
/// Default segment cap: 64, the value of `UDP_GRO_CNT_MAX`.
const DEFAULT_MAX_SEGS: u16 = 64;

impl Default for GroConfig {
    fn default() -> Self {
        GroConfig {
            max_l3: GRO_LEGACY_MAX_SIZE,
            max_segs: DEFAULT_MAX_SEGS,
            buckets: GRO_HASH_BUCKETS,
            per_bucket: MAX_GRO_SKBS,
            verify_checksums: true,
            tcp: true,
            udp: false,
        }
    }
}

/// What GRO did, by reason. Invariants (checked by the tests):
/// `received == passed() + merged + held`, `received == frames_out + Gro::held_frames()`,
/// `held == flushed() + Gro::held_packets()`, `packets_out + singles_out == passed() +
/// flushed()`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct GroCounters {
    /// Frames given to [`Gro::receive`].
    pub received: u64,
    /// Frames handed out (alone or inside merged packets).
    pub frames_out: u64,
    /// Segments appended to a held packet.
    pub merged: u64,
    /// Packets started (a frame held as the first segment).
    pub held: u64,
    /// Merged packets (2+ segments) emitted.
    pub packets_out: u64,
    /// Single frames emitted: passed through, or held and completed alone.
    pub singles_out: u64,
    /// Held packets completed at the end of a poll round ([`Gro::flush`]).
    pub flush_round_end: u64,
    /// ... because a segment carried URG/PSH/RST/SYN/FIN.
    pub flush_flags: u64,
    /// ... because a segment was shorter than `gso_size` (or empty).
    pub flush_short_segment: u64,
    /// ... because the next segment would reach `max_l3` (`-E2BIG`).
    pub flush_size: u64,
    /// ... because the packet had `max_segs` segments (or `UDP_GRO_CNT_MAX` datagrams).
    pub flush_max_segs: u64,
    /// ... because its bucket was full and it was the oldest (`gro_flush_oldest`).
    pub flush_bucket_full: u64,
    /// ... because the next segment differed: IP TOS/TTL/DF or traffic class/hop limit,
    /// TCP flag word, CWR, ACK, options, a segment longer than `gso_size`, a longer UDP
    /// datagram.
    pub flush_mismatch: u64,
    /// ... because the next segment broke the IPv4 ID rule (incrementing or fixed).
    pub flush_ip_id: u64,
    /// ... because the next segment did not start at the next sequence number.
    pub flush_gap: u64,
    /// ... because the next segment of the flow had the IP flush bit.
    pub flush_flush_bit: u64,
    /// Passed: not IPv4/IPv6.
    pub pass_not_ip: u64,
    /// Passed: neither TCP nor UDP.
    pub pass_not_tcp_udp: u64,
    /// Passed: IPv4 first byte not 0x45 (options, or not version 4).
    pub pass_ip_options: u64,
    /// Passed: IPv4 fragment.
    pub pass_fragment: u64,
    /// Passed: IPv6 extension header.
    pub pass_ipv6_ext: u64,
    /// Passed: wrong IPv4 header checksum.
    pub pass_bad_ip_checksum: u64,
    /// Passed: wrong TCP/UDP checksum.
    pub pass_bad_l4_checksum: u64,
    /// Passed: a header runs past the frame.
    pub pass_truncated: u64,
    /// Passed: impossible header field (TCP data offset < 5, UDP length wrong or padded).
    pub pass_bad_header: u64,
    /// Passed: TCP segment without payload.
    pub pass_zero_payload: u64,
    /// Passed: TCP segment with URG/PSH/RST/SYN/FIN and nothing to join.
    pub pass_flags: u64,
    /// Passed: the IP flush bit (length disagrees with the frame, reserved flag).
    pub pass_flush_bit: u64,
    /// Passed: GRO off for this transport.
    pub pass_disabled: u64,
    /// Passed: UDP over IPv4 without a checksum.
    pub pass_udp_zero_checksum: u64,
}

impl GroCounters {
    /// Sums another instance's counters into this one.
    pub fn add(&mut self, o: &GroCounters) {
        self.received += o.received;
        self.frames_out += o.frames_out;
        self.merged += o.merged;
        self.held += o.held;
        self.packets_out += o.packets_out;
        self.singles_out += o.singles_out;
        self.flush_round_end += o.flush_round_end;
        self.flush_flags += o.flush_flags;
        self.flush_short_segment += o.flush_short_segment;
        self.flush_size += o.flush_size;
        self.flush_max_segs += o.flush_max_segs;
        self.flush_bucket_full += o.flush_bucket_full;
        self.flush_mismatch += o.flush_mismatch;
        self.flush_ip_id += o.flush_ip_id;
        self.flush_gap += o.flush_gap;
        self.flush_flush_bit += o.flush_flush_bit;
        self.pass_not_ip += o.pass_not_ip;
        self.pass_not_tcp_udp += o.pass_not_tcp_udp;
        self.pass_ip_options += o.pass_ip_options;
        self.pass_fragment += o.pass_fragment;
        self.pass_ipv6_ext += o.pass_ipv6_ext;
        self.pass_bad_ip_checksum += o.pass_bad_ip_checksum;
        self.pass_bad_l4_checksum += o.pass_bad_l4_checksum;
        self.pass_truncated += o.pass_truncated;
        self.pass_bad_header += o.pass_bad_header;
        self.pass_zero_payload += o.pass_zero_payload;
        self.pass_flags += o.pass_flags;
        self.pass_flush_bit += o.pass_flush_bit;
        self.pass_disabled += o.pass_disabled;
        self.pass_udp_zero_checksum += o.pass_udp_zero_checksum;
    }

    /// Frames passed through, all reasons.
    pub fn passed(&self) -> u64 {
        self.pass_not_ip
            + self.pass_not_tcp_udp
            + self.pass_ip_options
            + self.pass_fragment
            + self.pass_ipv6_ext
            + self.pass_bad_ip_checksum
            + self.pass_bad_l4_checksum
            + self.pass_truncated
            + self.pass_bad_header
            + self.pass_zero_payload
            + self.pass_flags
            + self.pass_flush_bit
            + self.pass_disabled
            + self.pass_udp_zero_checksum
    }

    /// Held packets completed, all reasons.
    pub fn flushed(&self) -> u64 {
        self.flush_round_end
            + self.flush_flags
            + self.flush_short_segment
            + self.flush_size
            + self.flush_max_segs
            + self.flush_bucket_full
            + self.flush_mismatch
            + self.flush_ip_id
            + self.flush_gap
            + self.flush_flush_bit
    }

    /// Counts a pass-through.
    fn count_pass(&mut self, why: Pass) {
        let c = match why {
            Pass::NotIp => &mut self.pass_not_ip,
            Pass::NotTcpUdp => &mut self.pass_not_tcp_udp,
            Pass::IpOptions => &mut self.pass_ip_options,
            Pass::Fragment => &mut self.pass_fragment,
            Pass::Ipv6Ext => &mut self.pass_ipv6_ext,
            Pass::BadIpChecksum => &mut self.pass_bad_ip_checksum,
            Pass::BadL4Checksum => &mut self.pass_bad_l4_checksum,
            Pass::Truncated => &mut self.pass_truncated,
            Pass::BadHeader => &mut self.pass_bad_header,
            Pass::ZeroPayload => &mut self.pass_zero_payload,
            Pass::Flags => &mut self.pass_flags,
            Pass::FlushBit => &mut self.pass_flush_bit,
            Pass::Disabled => &mut self.pass_disabled,
            Pass::UdpZeroChecksum => &mut self.pass_udp_zero_checksum,
        };
        *c += 1;
    }

    /// Counts a completed held packet.
    fn count_flush(&mut self, why: Flush) {
        let c = match why {
            Flush::RoundEnd => &mut self.flush_round_end,
            Flush::Flags => &mut self.flush_flags,
            Flush::ShortSegment => &mut self.flush_short_segment,
            Flush::Size => &mut self.flush_size,
            Flush::MaxSegs => &mut self.flush_max_segs,
            Flush::BucketFull => &mut self.flush_bucket_full,
            Flush::Mismatch => &mut self.flush_mismatch,
            Flush::IpId => &mut self.flush_ip_id,
            Flush::Gap => &mut self.flush_gap,
            Flush::IpFlushBit => &mut self.flush_flush_bit,
        };
        *c += 1;
    }
}

/// A packet GRO hands out, in an order that never reorders a flow.
#[derive(Debug)]
pub enum GroPacket<F> {
    /// A frame untouched: passed through, or held and completed with one segment (the
    /// kernel leaves `count == 1` packets as they came).
    Single(F),
    /// Two or more frames of one flow with a rewritten header.
    Merged(Merged<F>),
}

impl<F> GroPacket<F> {
    /// Number of frames inside.
    pub fn frame_count(&self) -> usize {
        match self {
            GroPacket::Single(_) => 1,
            GroPacket::Merged(m) => m.segs(),
        }
    }
}

/// Why a held packet was completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flush {
    /// End of the poll round.
    RoundEnd,
    /// URG/PSH/RST/SYN/FIN.
    Flags,
    /// A segment shorter than `gso_size`.
    ShortSegment,
    /// `max_l3` would be reached.
    Size,
    /// Segment cap.
    MaxSegs,
    /// Oldest of a full bucket.
    BucketFull,
    /// A header field differs.
    Mismatch,
    /// IPv4 ID rule.
    IpId,
    /// Sequence gap.
    Gap,
    /// The next segment had the IP flush bit.
    IpFlushBit,
}

/// The decision for a segment of a flow with a held packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    /// Append it; `fixed_id` is the packet's IPv4 fixed-ID state afterwards.
    Merge {
        /// The flow now uses a fixed IPv4 ID.
        fixed_id: bool,
    },
    /// Complete the held packet for this reason; the segment is considered alone.
    Flush(Flush),
}

/// Size limits shared by TCP and UDP.
#[derive(Clone, Copy, Debug)]
struct Limits {
    /// `gro_max_size`, ≤ 65536.
    max_l3: usize,
    /// Segment cap, ≥ 1.
    max_segs: usize,
}

impl Limits {
    /// `skb_gro_receive`'s size refusal (`-E2BIG`: the merged L3 length would reach
    /// `max_l3`), then skiff's segment cap.
    fn refuses<F>(self, p: &Held<F>, seg: &Seg) -> Option<Flush> {
        if p.skb_len() + seg.payload_len as usize >= self.max_l3 {
            Some(Flush::Size)
        } else if p.count() >= self.max_segs {
            Some(Flush::MaxSegs)
        } else {
            None
        }
    }
}

/// A packet being built (the kernel's held skb and its `NAPI_GRO_CB`).
#[derive(Debug)]
struct Held<F> {
    /// The first segment's parsed header.
    first: Seg,
    /// The first segment's header bytes (completed on emission).
    hdr: [u8; MAX_HDR],
    /// The frames, in order.
    frames: Vec<F>,
    /// Bucket it was placed in.
    bucket: usize,
    /// Payload bytes so far (`skb_gro_len(p)`).
    payload: u32,
    /// IPv4 ID fixed rather than incrementing (`NAPI_GRO_CB(p)->ip_fixedid`).
    fixed_id: bool,
    /// FIN/PSH bits of merged segments, ORed into the header on completion.
    or_flags: u32,
}

impl<F> Held<F> {
    /// Segments so far (`NAPI_GRO_CB(p)->count`).
    fn count(&self) -> usize {
        self.frames.len()
    }
    /// `gso_size`: the first segment's payload length.
    fn gso_size(&self) -> u32 {
        self.first.payload_len
    }
    /// `p->len` as `skb_gro_receive` sees it: from after the Ethernet header
    /// (`eth_type_trans` pulled 14 bytes; `vlan_gro_receive` only advances the GRO offset),
    /// so the L3 length, plus 4 with an in-line tag.
    fn skb_len(&self) -> usize {
        self.first.hdr_len - ETH_HLEN + self.payload as usize
    }
}

/// A new segment with the IP flush bit always completes its flow's held packet and is
/// passed: in `tcp_gro_receive` / `udp_gro_receive_segment` every path either flushes `p`
/// for a header reason or reaches `skb_gro_receive`, which refuses the segment
/// (`NAPI_GRO_CB(skb)->flush` → `-E2BIG`), and dev_gro_receive then passes it. Checking it
/// first only names the reason (padding also makes the TCP length look longer than
/// `gso_size`, which the kernel would hit first).
fn flush_bit(seg: &Seg) -> Option<Verdict> {
    seg.flush_bit.then_some(Verdict::Flush(Flush::IpFlushBit))
}

/// The checks TCP and UDP share before their own: the IP flush bit, then the network
/// header rules. `Ok(fixed_id)` to go on, `Err(verdict)` to flush.
fn ip_checks<F>(p: &Held<F>, seg: &Seg) -> Result<bool, Verdict> {
    if let Some(v) = flush_bit(seg) {
        return Err(v);
    }
    network_flush(p, &seg.net).map_err(Verdict::Flush)
}

/// `inet_gro_flush` / `ipv6_gro_flush` (`include/net/gro.h`, 6.18): IPv4 TTL, TOS and DF
/// must match the first segment; the IP ID must be the first's plus the segments already
/// held (incrementing), or, if the second segment repeated the first's ID, stay equal to
/// it (fixed; since f095a358faf2 whether or not DF is set). IPv6 traffic class and hop
/// limit must match. Returns the fixed-ID state to keep when the segment joins.
fn network_flush<F>(p: &Held<F>, n: &Net) -> Result<bool, Flush> {
    let f = &p.first.net;
    if f.tos != n.tos || f.ttl != n.ttl || f.df != n.df {
        return Err(Flush::Mismatch);
    }
    if p.first.key.v6 {
        return Ok(false);
    }
    // NAPI_GRO_CB(p)->count is a u16 and wraps the same way; max_segs ≤ 65535 anyway.
    let count = p.count() as u16;
    let offset = n.id.wrapping_sub(f.id);
    let fixed = p.fixed_id || (count == 1 && offset == 0);
    let want = if fixed { 0 } else { count };
    if offset == want {
        Ok(fixed)
    } else {
        Err(Flush::IpId)
    }
}

/// The GRO engine for one receive queue, generic over the frame handle `F` (a UMEM frame
/// address, an index, a buffer): frames go in with their bytes, packets come out.
#[derive(Debug)]
pub struct Gro<F> {
    /// Normalised configuration.
    cfg: GroConfig,
    /// Size limits from `cfg`.
    lim: Limits,
    /// Parser switches from `cfg`.
    pcfg: ParseCfg,
    /// Held packets; `None` slots are free (listed in `free`).
    slots: Vec<Option<Held<F>>>,
    /// Free slot indices.
    free: Vec<usize>,
    /// Occupied slot indices, oldest first.
    order: Vec<usize>,
    /// Held packets per bucket.
    bucket_len: Vec<usize>,
    /// Emptied frame vectors for reuse.
    pool: Vec<Vec<F>>,
    /// Frames inside held packets.
    held_frames: usize,
    /// Counters.
    counters: GroCounters,
}

impl<F> Gro<F> {
    /// A GRO engine with `cfg` (limits clamped to their documented ranges).
    pub fn new(cfg: GroConfig) -> Self {
        let cfg = GroConfig {
            max_l3: cfg.max_l3.min(GRO_LEGACY_MAX_SIZE),
            max_segs: cfg.max_segs.max(1),
            buckets: cfg.buckets.max(1),
            per_bucket: cfg.per_bucket.max(1),
            ..cfg
        };
        let capacity = cfg.buckets.saturating_mul(cfg.per_bucket);
        Gro {
            cfg,
            lim: Limits {
                max_l3: cfg.max_l3,
                max_segs: usize::from(cfg.max_segs),
            },
            pcfg: ParseCfg {
                tcp: cfg.tcp,
                udp: cfg.udp,
                verify: cfg.verify_checksums,
            },
            slots: Vec::with_capacity(capacity),
            free: Vec::with_capacity(capacity),
            order: Vec::with_capacity(capacity),
            bucket_len: vec![0; cfg.buckets],
            pool: Vec::new(),
            held_frames: 0,
            counters: GroCounters::default(),
        }
    }

    /// The configuration in force (after clamping).
    pub fn config(&self) -> &GroConfig {
        &self.cfg
    }

    /// Counters so far.
    pub fn counters(&self) -> &GroCounters {
        &self.counters
    }

    /// Frames inside held packets.
    pub fn held_frames(&self) -> usize {
        self.held_frames
    }

    /// Held packets.
    pub fn held_packets(&self) -> usize {
        self.order.len()
    }

    /// One received frame (`bytes` are its Ethernet frame). `hash` is the flow hash the
    /// caller already computed (RPS); it picks the bucket (`skb_get_hash_raw(skb) &
    /// (GRO_HASH_BUCKETS - 1)`, here modulo `buckets`). Any value is correct; a consistent
    /// one per flow gives the kernel's bucket-full behaviour. `None`: GRO hashes the flow
    /// key it parses anyway, so a caller without a hash does not parse the frame twice.
    ///
    /// Packets that are complete (merged packets that ended, frames passed through) are
    /// pushed to `out` in an order that never reorders a flow.
    pub fn receive(
        &mut self,
        frame: F,
        bytes: &[u8],
        hash: Option<u32>,
        out: &mut Vec<GroPacket<F>>,
    ) {
        let parsed = parse::parse(bytes, self.pcfg);
        let hdr = match &parsed {
            Ok(seg) => bytes.get(..seg.hdr_len).unwrap_or(&[]),
            Err(_) => &[],
        };
        self.receive_parsed(frame, parsed, hdr, hash, out);
    }

    /// [`Gro::receive`] for handles whose bytes can only be borrowed through the handle
    /// (a UMEM frame, read through its area `ctx`): `bytes_of(ctx, &frame)` is called
    /// once, and everything GRO needs from the bytes (the parsed fields, the header copy)
    /// is taken before the handle moves into GRO.
    pub fn receive_with<C: ?Sized>(
        &mut self,
        frame: F,
        ctx: &C,
        bytes_of: impl for<'b> Fn(&'b C, &'b F) -> &'b [u8],
        hash: Option<u32>,
        out: &mut Vec<GroPacket<F>>,
    ) {
        let mut hdr = [0u8; MAX_HDR];
        let (parsed, n) = {
            let bytes = bytes_of(ctx, &frame);
            let parsed = parse::parse(bytes, self.pcfg);
            let n = match (&parsed, bytes.get(..MAX_HDR.min(bytes.len()))) {
                (Ok(seg), Some(h)) => {
                    let n = seg.hdr_len.min(h.len());
                    hdr[..n].copy_from_slice(&h[..n]);
                    n
                }
                _ => 0,
            };
            (parsed, n)
        };
        self.receive_parsed(frame, parsed, &hdr[..n], hash, out);
    }

    /// The rest of `receive`, once the frame is parsed; `hdr` holds its first
    /// `seg.hdr_len` bytes.
    fn receive_parsed(
        &mut self,
        frame: F,
        parsed: Result<Seg, Pass>,
        hdr: &[u8],
        hash: Option<u32>,
        out: &mut Vec<GroPacket<F>>,
    ) {
        self.counters.received += 1;
        let seg = match parsed {
            Ok(seg) => seg,
            Err(why) => return self.pass(frame, why, out),
        };
        if let Some(pos) = self.lookup(&seg.key) {
            let verdict = match (self.held_at(pos), &seg.l4h) {
                (Some(p), L4::Tcp(t)) => tcp::verdict(p, &seg, t, self.lim),
                (Some(p), L4::Udp(u)) => udp::verdict(p, &seg, u, self.lim),
                // `lookup` returned an occupied position, so this does not happen.
                (None, _) => Verdict::Flush(Flush::Mismatch),
            };
            match verdict {
                Verdict::Merge { fixed_id } => {
                    match self.append(pos, frame, &seg, fixed_id) {
                        Ok(Some(why)) => self.flush_pos(pos, why, out),
                        Ok(None) => {}
                        Err(frame) => self.pass(frame, Pass::BadHeader, out),
                    }
                    return;
                }
                Verdict::Flush(why) => self.flush_pos(pos, why, out),
            }
        }
        // Nothing (any more) to join: dev_gro_receive holds the segment unless it is to be
        // flushed on its own.
        let alone = match &seg.l4h {
            L4::Tcp(t) => tcp::pass_alone(&seg, t),
            L4::Udp(_) => seg.flush_bit.then_some(Pass::FlushBit),
        };
        match alone {
            Some(why) => self.pass(frame, why, out),
            None => self.hold(frame, hdr, &seg, hash, out),
        }
    }

    /// End of a poll round (`napi_complete`): completes every held packet, oldest first.
    pub fn flush(&mut self, out: &mut Vec<GroPacket<F>>) {
        let mut order = std::mem::take(&mut self.order);
        for slot in order.drain(..) {
            if let Some(h) = self.take_slot(slot) {
                self.counters.count_flush(Flush::RoundEnd);
                self.emit(h, out);
            }
        }
        self.order = order;
    }

    /// Hands every frame of `m` to `release`, in order, and keeps its frame vector for
    /// reuse: the allocation-free way to finish with a merged packet.
    pub fn release(&mut self, mut m: Merged<F>, mut release: impl FnMut(F)) {
        for f in m.frames.drain(..) {
            release(f);
        }
        self.recycle(m.frames);
    }

    /// Returns a frame vector (from [`Merged::into_frames`]) for reuse. Frames still in it
    /// are dropped, not released: empty it first.
    pub fn recycle(&mut self, mut frames: Vec<F>) {
        frames.clear();
        // Bound the pool: twice the most packets that can be held at once.
        let cap = 2 * self.cfg.buckets.saturating_mul(self.cfg.per_bucket);
        if self.pool.len() < cap && frames.capacity() > 0 {
            self.pool.push(frames);
        }
    }

    /// Emits `frame` untouched and counts why.
    fn pass(&mut self, frame: F, why: Pass, out: &mut Vec<GroPacket<F>>) {
        self.counters.count_pass(why);
        self.counters.singles_out += 1;
        self.counters.frames_out += 1;
        out.push(GroPacket::Single(frame));
    }

    /// Position in `order` of the held packet of `key`. Every held packet is compared, not
    /// only the hashed bucket's (see the module docs); a flow has at most one.
    fn lookup(&self, key: &FlowKey) -> Option<usize> {
        self.order
            .iter()
            .position(|&s| matches!(self.slots.get(s), Some(Some(h)) if h.first.key == *key))
    }

    /// The held packet at position `pos` of `order`.
    fn held_at(&self, pos: usize) -> Option<&Held<F>> {
        let slot = *self.order.get(pos)?;
        self.slots.get(slot)?.as_ref()
    }

    /// Appends `frame` to the packet at `pos` and says whether that completes it
    /// (`out_check_final` / the UDP length and count checks). Gives the frame back if
    /// `pos` is not occupied (cannot happen).
    fn append(
        &mut self,
        pos: usize,
        frame: F,
        seg: &Seg,
        fixed_id: bool,
    ) -> Result<Option<Flush>, F> {
        let Some(&slot) = self.order.get(pos) else {
            return Err(frame);
        };
        let Some(Some(p)) = self.slots.get_mut(slot) else {
            return Err(frame);
        };
        p.frames.push(frame);
        p.payload = p.payload.saturating_add(seg.payload_len);
        p.fixed_id = fixed_id;
        let end = match &seg.l4h {
            L4::Tcp(t) => {
                // `tcp_flag_word(th2) |= flags & (TCP_FLAG_FIN | TCP_FLAG_PSH)`.
                p.or_flags |= t.flags & tcp::MAY_DIFFER;
                tcp::ends_packet(seg, t, p.gso_size())
            }
            L4::Udp(u) => udp::ends_packet(p, u),
        };
        self.held_frames += 1;
        self.counters.merged += 1;
        Ok(end)
    }

    /// Starts a packet with `frame` in bucket `hash % buckets`, completing that bucket's
    /// oldest packet first if it is full (`gro_flush_oldest`).
    fn hold(
        &mut self,
        frame: F,
        hdr_in: &[u8],
        seg: &Seg,
        hash: Option<u32>,
        out: &mut Vec<GroPacket<F>>,
    ) {
        let hash = hash.unwrap_or_else(|| seg.key.bucket_hash());
        let bucket = hash as usize % self.cfg.buckets;
        if self.bucket_len.get(bucket).copied().unwrap_or(0) >= self.cfg.per_bucket {
            let oldest = self
                .order
                .iter()
                .position(|&s| matches!(self.slots.get(s), Some(Some(h)) if h.bucket == bucket));
            if let Some(pos) = oldest {
                self.flush_pos(pos, Flush::BucketFull, out);
            }
        }
        let mut hdr = [0u8; MAX_HDR];
        match (hdr.get_mut(..seg.hdr_len), hdr_in.get(..seg.hdr_len)) {
            (Some(d), Some(s)) => d.copy_from_slice(s),
            // The parser bounds hdr_len by both; kept so nothing can go out of range.
            _ => return self.pass(frame, Pass::BadHeader, out),
        }
        let mut frames = self
            .pool
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(self.lim.max_segs));
        frames.push(frame);
        let held = Held {
            first: *seg,
            hdr,
            frames,
            bucket,
            payload: seg.payload_len,
            fixed_id: false,
            or_flags: 0,
        };
        let slot = match self
            .free
            .pop()
            .and_then(|s| self.slots.get_mut(s).map(|x| (s, x)))
        {
            Some((s, x)) => {
                *x = Some(held);
                s
            }
            None => {
                self.slots.push(Some(held));
                self.slots.len() - 1
            }
        };
        self.order.push(slot);
        if let Some(n) = self.bucket_len.get_mut(bucket) {
            *n += 1;
        }
        self.held_frames += 1;
        self.counters.held += 1;
    }

    /// Completes the packet at position `pos` of `order` for reason `why`.
    fn flush_pos(&mut self, pos: usize, why: Flush, out: &mut Vec<GroPacket<F>>) {
        if pos >= self.order.len() {
            return;
        }
        let slot = self.order.remove(pos);
        if let Some(h) = self.take_slot(slot) {
            self.counters.count_flush(why);
            self.emit(h, out);
        }
    }

    /// Frees `slot` (already out of `order`) and returns its packet.
    fn take_slot(&mut self, slot: usize) -> Option<Held<F>> {
        let h = self.slots.get_mut(slot)?.take()?;
        self.free.push(slot);
        if let Some(n) = self.bucket_len.get_mut(h.bucket) {
            *n = n.saturating_sub(1);
        }
        self.held_frames = self.held_frames.saturating_sub(h.frames.len());
        Some(h)
    }

    /// Hands a completed packet out (`napi_gro_complete`): alone and untouched with one
    /// segment, else with its header completed.
    fn emit(&mut self, mut h: Held<F>, out: &mut Vec<GroPacket<F>>) {
        let n = h.frames.len();
        self.counters.frames_out += n as u64;
        if n <= 1 {
            if let Some(f) = h.frames.pop() {
                self.counters.singles_out += 1;
                out.push(GroPacket::Single(f));
            }
            self.recycle(h.frames);
            return;
        }
        let mut hdr = h.hdr;
        merged::complete(&h.first, &mut hdr, h.payload, h.or_flags);
        let gso_size = h.gso_size();
        // Every segment but the last carries gso_size bytes (a shorter one ends the packet).
        let last_len = h
            .payload
            .saturating_sub(gso_size.saturating_mul((n - 1) as u32));
        let proto = match (
            h.first.key.proto == crate::wire::IPPROTO_TCP,
            h.first.key.v6,
        ) {
            (true, false) => GroProto::Tcp4,
            (true, true) => GroProto::Tcp6,
            (false, false) => GroProto::Udp4,
            (false, true) => GroProto::Udp6,
        };
        self.counters.packets_out += 1;
        out.push(GroPacket::Merged(Merged {
            hdr,
            hdr_len: h.first.hdr_len,
            frames: h.frames,
            gso_size,
            last_len,
            proto,
        }));
    }
}

/// The body of a cargo-fuzz target for GRO: never panics unless GRO breaks an invariant
/// (that panic is the finding).
///
/// `data[0]` picks the configuration (bit 0 verify checksums, bit 1 UDP on, bit 2 TCP
/// off, bits 3–4 `per_bucket − 1`, bits 5–7 `buckets − 1`); the rest is a sequence of
/// records `[len_hi, len_lo, hash, ctl, bytes…]` (`len` capped to what is left), each
/// frame received with handle = its index, followed by a [`Gro::flush`] when `ctl` bit 0
/// is set. After every step frames are conserved (`received == frames_out +
/// held_frames()`); at the end, after a final flush, every frame has come out exactly once
/// and every merged packet is well formed (its frames parse as one flow, sizes add up,
/// L3 length below 64 KiB).
pub fn fuzz_one(data: &[u8]) {
    let Some((&ctl, mut rest)) = data.split_first() else {
        return;
    };
    let cfg = GroConfig {
        verify_checksums: ctl & 1 != 0,
        udp: ctl & 2 != 0,
        tcp: ctl & 4 == 0,
        // Bits 3–4 and 5–7: small tables make the bucket-full path common.
        per_bucket: usize::from((ctl >> 3) & 3) + 1,
        buckets: usize::from(ctl >> 5) + 1,
        ..GroConfig::default()
    };
    let mut gro: Gro<usize> = Gro::new(cfg);
    let mut frames: Vec<&[u8]> = Vec::new();
    let mut seen: Vec<u32> = Vec::new();
    let mut out = Vec::new();
    let mut check = |gro: &mut Gro<usize>, out: &mut Vec<GroPacket<usize>>, frames: &[&[u8]]| {
        for pkt in out.drain(..) {
            match pkt {
                GroPacket::Single(f) => note(&mut seen, f),
                GroPacket::Merged(m) => {
                    check_merged(&m, frames, gro.pcfg);
                    gro.release(m, |f| note(&mut seen, f));
                }
            }
        }
        let c = gro.counters();
        assert_eq!(c.received, c.frames_out + gro.held_frames() as u64);
        assert_eq!(c.received, c.passed() + c.merged + c.held);
    };
    while let [a, b, hash, step, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*a, *b])).min(tail.len());
        let (frame, next) = tail.split_at(len);
        rest = next;
        frames.push(frame);
        gro.receive(frames.len() - 1, frame, Some(u32::from(*hash)), &mut out);
        if step & 1 != 0 {
            gro.flush(&mut out);
        }
        check(&mut gro, &mut out, &frames);
    }
    gro.flush(&mut out);
    check(&mut gro, &mut out, &frames);
    assert_eq!(gro.held_frames(), 0);
    assert_eq!(seen.len(), frames.len());
    assert!(
        seen.iter().all(|&n| n == 1),
        "a frame came out twice or never"
    );
}

/// Records that frame `f` came out.
fn note(seen: &mut Vec<u32>, f: usize) {
    if seen.len() <= f {
        seen.resize(f + 1, 0);
    }
    seen[f] += 1;
}

/// Asserts that `m` is well formed: at least two frames, each parsing to the same flow
/// and header length as the merged header, with the payload lengths `m` claims, and an L3
/// length below 64 KiB.
fn check_merged(m: &Merged<usize>, frames: &[&[u8]], pcfg: ParseCfg) {
    assert!(m.segs() >= 2);
    let mut key = None;
    for (i, &f) in m.frames().iter().enumerate() {
        let bytes = frames.get(f).copied().unwrap_or(&[]);
        let seg = parse::parse(bytes, pcfg).expect("a merged frame parses");
        assert_eq!(seg.hdr_len, m.hdr_len());
        assert_eq!(Some(seg.payload_len as usize), m.payload_len(i));
        assert!(i + 1 == m.segs() || seg.payload_len as usize == m.gso_size());
        assert!(
            *key.get_or_insert(seg.key) == seg.key,
            "merged frames of two flows"
        );
        if i == 0 {
            assert!(m.len() - seg.l3 < GRO_LEGACY_MAX_SIZE);
        }
    }
    let mut written = Vec::new();
    m.write_to(|&f| frames.get(f).copied().unwrap_or(&[]), &mut written);
    assert_eq!(written.len(), m.len());
}
