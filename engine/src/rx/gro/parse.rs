//! Header parsing for GRO: one pass over a received frame's Ethernet, IP and TCP/UDP
//! headers that either extracts the fields the merge rules compare, or names the reason
//! the kernel would hand the frame to the stack untouched (`GRO_NORMAL`).
//!
//! Every read goes through `get` / `first_chunk` on the frame, so no input can index out
//! of bounds; the checks run in the order of `dev_gro_receive` → `inet_gro_receive` /
//! `ipv6_gro_receive` → `tcp4_gro_receive` / `udp4_gro_receive` (Linux 6.18,
//! `net/core/gro.c`, `net/ipv4/af_inet.c`, `net/ipv6/ip6_offload.c`,
//! `net/ipv4/tcp_offload.c`, `net/ipv4/udp_offload.c`), so that the pass reason counted is
//! the one the kernel would hit first.

use crate::wire::{
    checksum, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_QINQ, ETHERTYPE_VLAN, ETH_HLEN,
    IPPROTO_TCP, IPPROTO_UDP, VLAN_HLEN,
};

/// IPv4 header without options (RFC 791 §3.1: IHL 5 words × 4 bytes); the only IPv4 header
/// GRO merges (`inet_gro_receive` wants the first byte to be exactly 0x45).
pub(super) const IPV4_HLEN: usize = 20;
/// IPv6 fixed header (RFC 8200 §3).
pub(super) const IPV6_HLEN: usize = 40;
/// TCP header without options (RFC 9293 §3.1).
pub(super) const TCP_HLEN: usize = 20;
/// Longest TCP header: the data offset is 4 bits counting 32-bit words, 15 × 4.
pub(super) const TCP_MAX_HLEN: usize = 60;
/// Most TCP option bytes: 60 − 20.
pub(super) const TCP_MAX_OPTS: usize = TCP_MAX_HLEN - TCP_HLEN;
/// UDP header (RFC 768).
pub(super) const UDP_HLEN: usize = 8;
/// Longest L2 header GRO accepts: Ethernet plus one 802.1Q / 802.1ad tag.
pub(super) const MAX_L2: usize = ETH_HLEN + VLAN_HLEN;
/// Longest header (Ethernet through TCP) a merged packet carries: 18 + 40 + 60 = 118.
pub(super) const MAX_HDR: usize = MAX_L2 + IPV6_HLEN + TCP_MAX_HLEN;

/// Byte offsets of the header fields GRO reads or rewrites.
pub(super) mod field {
    /// EtherType in the Ethernet header, and the encapsulated type in a tag (IEEE 802.3,
    /// 802.1Q).
    pub const ETH_TYPE: usize = 12;
    /// The type after the 2-byte TCI of a tag.
    pub const VLAN_TYPE: usize = 2;
    /// IPv4 (RFC 791 §3.1): version/IHL, TOS, total length, ID, flags/fragment offset,
    /// TTL, protocol, header checksum, source, destination.
    pub const IP4_VER_IHL: usize = 0;
    /// TOS.
    pub const IP4_TOS: usize = 1;
    /// Total length.
    pub const IP4_TOT_LEN: usize = 2;
    /// Identification.
    pub const IP4_ID: usize = 4;
    /// Flags and fragment offset.
    pub const IP4_FRAG: usize = 6;
    /// TTL.
    pub const IP4_TTL: usize = 8;
    /// Protocol.
    pub const IP4_PROTO: usize = 9;
    /// Header checksum.
    pub const IP4_CHECK: usize = 10;
    /// Source address; the destination follows.
    pub const IP4_SRC: usize = 12;
    /// IPv6 (RFC 8200 §3): version/traffic class/flow label word, payload length, next
    /// header, hop limit, source, destination.
    pub const IP6_PAYLOAD_LEN: usize = 4;
    /// Next header.
    pub const IP6_NEXT: usize = 6;
    /// Hop limit.
    pub const IP6_HOP: usize = 7;
    /// Source address; the destination follows.
    pub const IP6_SRC: usize = 8;
    /// TCP (RFC 9293 §3.1): ports, sequence, acknowledgment, the flag word (data offset,
    /// reserved, flags, window), checksum.
    pub const TCP_SEQ: usize = 4;
    /// Acknowledgment number.
    pub const TCP_ACK: usize = 8;
    /// The flag word: data offset (high 4 bits), reserved, flags (next byte), window.
    pub const TCP_FLAG_WORD: usize = 12;
    /// The flags byte.
    pub const TCP_FLAGS: usize = 13;
    /// Checksum.
    pub const TCP_CHECK: usize = 16;
    /// UDP (RFC 768): ports, length, checksum.
    pub const UDP_LEN: usize = 4;
    /// Checksum.
    pub const UDP_CHECK: usize = 6;
    /// Ports: the first 4 bytes of TCP and UDP.
    pub const PORTS: usize = 0;
}

/// IPv4 first byte GRO accepts: version 4, IHL 5 (`*(u8 *)iph != 0x45` in inet_gro_receive).
const IPV4_VER_IHL: u8 = 0x45;
/// IPv4 flag bits in the 16-bit flags/fragment-offset field (RFC 791 §3.1, `IP_RF`).
const IP_RF: u16 = 0x8000;
/// Don't fragment (`IP_DF`).
pub(super) const IP_DF: u16 = 0x4000;
/// More fragments (`IP_MF`).
const IP_MF: u16 = 0x2000;
/// Fragment offset, 13 bits (`IP_OFFSET`).
const IP_OFFSET: u16 = 0x1fff;
/// IPv6 first word bits that must match for two packets to be one flow: version and flow
/// label (`first_word & htonl(0xF00FFFFF)` in ipv6_gro_receive).
const IPV6_FLOW_MASK: u32 = 0xf00f_ffff;
/// The traffic class bits of the IPv6 first word (RFC 8200 §3: after the 4 version bits).
const IPV6_TCLASS_SHIFT: u32 = 20;

/// IPv6 extension header numbers (RFC 8200 §4.1 and IANA "IPv6 Extension Header Types"):
/// hop-by-hop 0, routing 43, fragment 44, ESP 50, AH 51, destination options 60,
/// mobility 135, HIP 139, shim6 140, experimental 253 and 254.
const IPV6_EXT_HEADERS: [u8; 11] = [0, 43, 44, 50, 51, 60, 135, 139, 140, 253, 254];

/// Why a frame is passed to the consumer untouched without consulting the held packets
/// (the kernel's `NAPI_GRO_CB(skb)->flush = 1; return NULL` paths, which leave a held
/// packet of the same flow in place).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Pass {
    /// EtherType neither IPv4 nor IPv6 (after at most one tag).
    NotIp,
    /// IP protocol / next header neither TCP nor UDP.
    NotTcpUdp,
    /// IPv4 first byte not 0x45: options, or not version 4.
    IpOptions,
    /// IPv4 fragment (MF set or a non-zero offset).
    Fragment,
    /// IPv6 with an extension header before the transport header.
    Ipv6Ext,
    /// IPv4 header checksum wrong.
    BadIpChecksum,
    /// TCP or UDP checksum wrong (checked only when configured).
    BadL4Checksum,
    /// A header runs past the end of the frame.
    Truncated,
    /// A header field is impossible (TCP data offset < 5, UDP length wrong).
    BadHeader,
    /// A TCP segment without payload.
    ZeroPayload,
    /// A TCP segment with URG, PSH, RST, SYN or FIN.
    Flags,
    /// The IP flush bit: IP length disagrees with the frame, or IPv4's reserved flag.
    FlushBit,
    /// GRO for this transport is off in the configuration.
    Disabled,
    /// UDP over IPv4 without a checksum (udp_gro_receive_segment requires one).
    UdpZeroChecksum,
}

/// The fields that make two packets one flow: the whole L2 header (both MACs, the tag,
/// the EtherType), the IP version, addresses and protocol, the IPv6 flow label, and the
/// ports. Derived equality compares the fields in declaration order, most selective first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct FlowKey {
    /// Source port in the high half, destination port in the low half.
    pub ports: u32,
    /// Source then destination address; IPv4 uses the first 8 bytes.
    pub addrs: [u8; 32],
    /// IPv6 version and flow label bits of the first word; 0 for IPv4.
    pub flow: u32,
    /// `IPPROTO_TCP` or `IPPROTO_UDP`.
    pub proto: u8,
    /// IPv6 (else IPv4).
    pub v6: bool,
    /// L2 header length: 14, or 18 with a tag.
    pub l2_len: u8,
    /// The L2 header bytes, zero-filled past `l2_len`.
    pub l2: [u8; MAX_L2],
}

impl FlowKey {
    /// A bucket hash from the parsed key, for callers with no flow hash of their own
    /// (no RPS in front): the ports and addresses folded into 32 bits and mixed by a
    /// multiply (Knuth's 2^32/phi), so flows spread over the buckets.
    pub fn bucket_hash(&self) -> u32 {
        let mut h = self.ports ^ u32::from(self.proto) ^ self.flow;
        for w in self.addrs.chunks_exact(4) {
            h ^= u32::from_ne_bytes([w[0], w[1], w[2], w[3]]);
        }
        // 2^32 / golden ratio: a multiply spreads every input bit into the high bits.
        h.wrapping_mul(0x9e37_79b9).rotate_left(16)
    }
}

/// The IP fields that may differ inside a flow but force a flush when they do
/// (`inet_gro_flush` / `ipv6_gro_flush`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Net {
    /// IPv4 TOS, or the IPv6 traffic class.
    pub tos: u8,
    /// IPv4 TTL, or the IPv6 hop limit.
    pub ttl: u8,
    /// IPv4 don't-fragment flag; false for IPv6.
    pub df: bool,
    /// IPv4 identification; 0 for IPv6.
    pub id: u16,
}

/// The TCP fields the merge rules compare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Tcp {
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number.
    pub ack: u32,
    /// The 32-bit word at offset 12: data offset, reserved, flags, window
    /// (`tcp_flag_word`).
    pub flags: u32,
    /// Option bytes, zero-filled past the header's end (the data offset is part of
    /// `flags`, so equal `flags` and equal `opts` mean equal options).
    pub opts: [u8; TCP_MAX_OPTS],
}

/// The UDP fields the merge rules compare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Udp {
    /// The UDP length field (header included).
    pub ulen: u16,
}

/// Transport part of a parsed frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum L4 {
    /// A TCP segment.
    Tcp(Tcp),
    /// A UDP datagram.
    Udp(Udp),
}

/// A frame GRO may merge: everything the rules need, read once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Seg {
    /// Flow identity.
    pub key: FlowKey,
    /// IP fields compared per segment.
    pub net: Net,
    /// Offset of the IP header (= L2 length).
    pub l3: usize,
    /// Offset of the TCP/UDP header.
    pub l4: usize,
    /// Offset of the payload (= length of the header a merged packet keeps).
    pub hdr_len: usize,
    /// Transport payload bytes (from the frame; equal to the IP length's unless the flush
    /// bit is set).
    pub payload_len: u32,
    /// `NAPI_GRO_CB(skb)->flush` as the IP layer sets it for this frame.
    pub flush_bit: bool,
    /// Transport fields.
    pub l4h: L4,
}

/// Which transports are eligible, and whether to verify their checksums.
#[derive(Clone, Copy, Debug)]
pub(super) struct ParseCfg {
    /// TCP GRO on.
    pub tcp: bool,
    /// UDP GRO on.
    pub udp: bool,
    /// Verify TCP/UDP checksums (`skb_gro_checksum_validate`).
    pub verify: bool,
}

/// The big-endian u16 at `off` of `b` (0 past the end; callers read inside headers whose
/// length they checked).
#[inline]
pub(super) fn rd16(b: &[u8], off: usize) -> u16 {
    chunk::<2>(b, off).map_or(0, |c| u16::from_be_bytes(*c))
}

/// The big-endian u32 at `off` of `b` (0 past the end, as [`rd16`]).
#[inline]
fn rd32(b: &[u8], off: usize) -> u32 {
    chunk::<4>(b, off).map_or(0, |c| u32::from_be_bytes(*c))
}

/// The byte at `off` of `b` (0 past the end, as [`rd16`]).
#[inline]
fn rd8(b: &[u8], off: usize) -> u8 {
    b.get(off).copied().unwrap_or(0)
}

/// `N` bytes of `b` starting at `off`, or `None` past the end.
#[inline]
pub(super) fn chunk<const N: usize>(b: &[u8], off: usize) -> Option<&[u8; N]> {
    b.get(off..)?.first_chunk::<N>()
}

/// Is the ones'-complement sum of the transport bytes plus the pseudo-header all ones
/// (the receiver's check, RFC 1071 §1)?
#[inline]
fn l4_sum_ok(l4: &[u8], pseudo: u32) -> bool {
    // 0xffff: the folded sum of data that includes its own correct checksum.
    checksum::sum(l4, pseudo) == 0xffff
}

/// What the IP layer hands the transport layer.
struct Ip {
    /// Source then destination address; IPv4 uses the first 8 bytes.
    addrs: [u8; 32],
    /// Transport protocol.
    proto: u8,
    /// IPv6 version and flow label bits; 0 for IPv4.
    flow: u32,
    /// IPv6.
    v6: bool,
    /// Per-segment fields.
    net: Net,
    /// Transport header offset.
    l4: usize,
    /// The IP layer's flush bit.
    flush_bit: bool,
}

impl Ip {
    /// The pseudo-header partial sum for a transport length of `len` (RFC 768, RFC 9293
    /// §3.1, RFC 8200 §8.1).
    fn pseudo(&self, len: usize) -> u32 {
        let a = &self.addrs;
        if self.v6 {
            let (src, dst) = (first16(a, 0), first16(a, 16));
            // Lengths past 32 bits cannot occur; the flush bit keeps them unverified.
            checksum::pseudo_v6(src, dst, self.proto, u32::try_from(len).unwrap_or(u32::MAX))
        } else {
            let (src, dst) = v4_addrs(a);
            // The IPv4 pseudo-header length is 16 bits; a frame whose length does not fit
            // has the flush bit set and is never verified.
            checksum::pseudo_v4(src, dst, self.proto, u16::try_from(len).unwrap_or(u16::MAX))
        }
    }
}

/// The IPv4 source and destination from a key's address bytes (the first 4 and next 4).
#[inline]
pub(super) fn v4_addrs(a: &[u8; 32]) -> ([u8; 4], [u8; 4]) {
    (
        chunk::<4>(a, 0).copied().unwrap_or_default(),
        chunk::<4>(a, 4).copied().unwrap_or_default(),
    )
}

/// 16 bytes of `a` from `off` (0 or 16) as an array.
#[inline]
pub(super) fn first16(a: &[u8; 32], off: usize) -> [u8; 16] {
    chunk::<16>(a, off).copied().unwrap_or([0; 16])
}

/// Parses `b` as Ethernet (≤ 1 tag) / IPv4 or IPv6 / TCP or UDP for GRO.
pub(super) fn parse(b: &[u8], cfg: ParseCfg) -> Result<Seg, Pass> {
    let eth: &[u8; ETH_HLEN] = chunk(b, 0).ok_or(Pass::Truncated)?;
    let mut ethertype = rd16(eth, field::ETH_TYPE);
    let mut l3 = ETH_HLEN;
    if ethertype == ETHERTYPE_VLAN || ethertype == ETHERTYPE_QINQ {
        // vlan_gro_receive: one tag; the whole L2 header is part of the flow key.
        let tag: &[u8; VLAN_HLEN] = chunk(b, ETH_HLEN).ok_or(Pass::Truncated)?;
        ethertype = rd16(tag, field::VLAN_TYPE);
        l3 += VLAN_HLEN;
    }
    let mut l2 = [0u8; MAX_L2];
    if let (Some(dst), Some(src)) = (l2.get_mut(..l3), b.get(..l3)) {
        dst.copy_from_slice(src);
    }
    let l3_len = b.len().saturating_sub(l3);
    let ip = match ethertype {
        ETHERTYPE_IPV4 => ipv4(b, l3, l3_len, cfg)?,
        ETHERTYPE_IPV6 => ipv6(b, l3, l3_len, cfg)?,
        _ => return Err(Pass::NotIp),
    };
    let l4 = ip.l4;
    let l4_bytes = b.get(l4..).ok_or(Pass::Truncated)?;
    let l4_len = l4_bytes.len();
    let verify = cfg.verify && !ip.flush_bit;
    let (ports, hdr_len, payload_len, l4h) = if ip.proto == IPPROTO_TCP {
        // tcp4_gro_receive / tcp6_gro_receive: tcp_gro_pull_header (doff ≥ 5, header
        // inside the frame) and the checksum, skipped when the IP layer already decided
        // to flush ("Don't bother verifying checksum if we're going to flush anyway").
        let th: &[u8; TCP_HLEN] = chunk(l4_bytes, 0).ok_or(Pass::Truncated)?;
        // Data offset: the high 4 bits, in 32-bit words.
        let thlen = usize::from(rd8(th, field::TCP_FLAG_WORD) >> 4) * 4;
        if thlen < TCP_HLEN {
            return Err(Pass::BadHeader);
        }
        if thlen > l4_len {
            return Err(Pass::Truncated);
        }
        if verify && !l4_sum_ok(l4_bytes, ip.pseudo(l4_len)) {
            return Err(Pass::BadL4Checksum);
        }
        let mut opts = [0u8; TCP_MAX_OPTS];
        if let (Some(dst), Some(src)) = (
            opts.get_mut(..thlen - TCP_HLEN),
            l4_bytes.get(TCP_HLEN..thlen),
        ) {
            dst.copy_from_slice(src);
        }
        let tcp = Tcp {
            seq: rd32(th, field::TCP_SEQ),
            ack: rd32(th, field::TCP_ACK),
            flags: rd32(th, field::TCP_FLAG_WORD),
            opts,
        };
        let ports = rd32(th, field::PORTS);
        (ports, l4 + thlen, l4_len - thlen, L4::Tcp(tcp))
    } else {
        // udp4_gro_receive / udp6_gro_receive → udp_gro_receive_segment.
        let uh: &[u8; UDP_HLEN] = chunk(l4_bytes, 0).ok_or(Pass::Truncated)?;
        let check = rd16(uh, field::UDP_CHECK);
        // skb_gro_checksum_validate_zero_check: a zero checksum is not validated...
        if verify && check != 0 && !l4_sum_ok(l4_bytes, ip.pseudo(l4_len)) {
            return Err(Pass::BadL4Checksum);
        }
        // ...and then refused "for symmetry with GSO".
        if check == 0 {
            return Err(Pass::UdpZeroChecksum);
        }
        // "Do not deal with padded or malicious packets": the UDP length must exceed the
        // header and equal what the frame holds after the IP header.
        let ulen = rd16(uh, field::UDP_LEN);
        if usize::from(ulen) <= UDP_HLEN || usize::from(ulen) != l4_len {
            return Err(Pass::BadHeader);
        }
        let ports = rd32(uh, field::PORTS);
        (
            ports,
            l4 + UDP_HLEN,
            l4_len - UDP_HLEN,
            L4::Udp(Udp { ulen }),
        )
    };
    if hdr_len > MAX_HDR {
        // Impossible (18 + 40 + 60 at most); kept so a header copy can never overrun.
        return Err(Pass::BadHeader);
    }
    Ok(Seg {
        key: FlowKey {
            ports,
            addrs: ip.addrs,
            flow: ip.flow,
            proto: ip.proto,
            v6: ip.v6,
            // 14 or 18.
            l2_len: l3 as u8,
            l2,
        },
        net: ip.net,
        l3,
        l4,
        hdr_len,
        // Frames longer than 4 GiB do not exist; saturate rather than wrap if one did.
        payload_len: u32::try_from(payload_len).unwrap_or(u32::MAX),
        flush_bit: ip.flush_bit,
        l4h,
    })
}

/// Checks the transport protocol against the configuration.
#[inline]
fn transport_ok(proto: u8, cfg: ParseCfg) -> Result<(), Pass> {
    match proto {
        IPPROTO_TCP if cfg.tcp => Ok(()),
        IPPROTO_UDP if cfg.udp => Ok(()),
        IPPROTO_TCP | IPPROTO_UDP => Err(Pass::Disabled),
        _ => Err(Pass::NotTcpUdp),
    }
}

/// inet_gro_receive: protocol, 0x45, fragment, header checksum, then the flush bit
/// `(u16)((first_word ^ skb_gro_len) | (frag_off & ~IP_DF))`: a total length that
/// disagrees with the frame (Ethernet padding, a trailer, truncation) or the reserved flag.
fn ipv4(b: &[u8], l3: usize, l3_len: usize, cfg: ParseCfg) -> Result<Ip, Pass> {
    let ip: &[u8; IPV4_HLEN] = chunk(b, l3).ok_or(Pass::Truncated)?;
    let proto = rd8(ip, field::IP4_PROTO);
    transport_ok(proto, cfg)?;
    if rd8(ip, field::IP4_VER_IHL) != IPV4_VER_IHL {
        return Err(Pass::IpOptions);
    }
    let frag = rd16(ip, field::IP4_FRAG);
    if frag & (IP_MF | IP_OFFSET) != 0 {
        return Err(Pass::Fragment);
    }
    if checksum::sum(ip, 0) != 0xffff {
        return Err(Pass::BadIpChecksum);
    }
    let tot_len = usize::from(rd16(ip, field::IP4_TOT_LEN));
    // The kernel compares the low 16 bits only; frames over 64 KiB cannot come from
    // Ethernet, and comparing the whole length keeps them from merging here.
    let flush_bit = tot_len != l3_len || frag & IP_RF != 0;
    let mut addrs = [0u8; 32];
    // Source and destination, 4 bytes each, end the option-less header.
    for (d, s) in addrs.iter_mut().zip(&ip[field::IP4_SRC..IPV4_HLEN]) {
        *d = *s;
    }
    Ok(Ip {
        addrs,
        proto,
        flow: 0,
        v6: false,
        net: Net {
            tos: rd8(ip, field::IP4_TOS),
            ttl: rd8(ip, field::IP4_TTL),
            df: frag & IP_DF != 0,
            id: rd16(ip, field::IP4_ID),
        },
        l4: l3 + IPV4_HLEN,
        flush_bit,
    })
}

/// ipv6_gro_receive: the flush bit is `payload_len != skb->len - hlen`; extension headers
/// are passed (see the module docs: a non-goal).
fn ipv6(b: &[u8], l3: usize, l3_len: usize, cfg: ParseCfg) -> Result<Ip, Pass> {
    let ip: &[u8; IPV6_HLEN] = chunk(b, l3).ok_or(Pass::Truncated)?;
    let nh = rd8(ip, field::IP6_NEXT);
    if IPV6_EXT_HEADERS.contains(&nh) {
        return Err(Pass::Ipv6Ext);
    }
    transport_ok(nh, cfg)?;
    // The first word: version, traffic class, flow label.
    let first = rd32(ip, 0);
    let payload_len = usize::from(rd16(ip, field::IP6_PAYLOAD_LEN));
    let flush_bit = payload_len + IPV6_HLEN != l3_len;
    let mut addrs = [0u8; 32];
    // Source and destination, 16 bytes each, end the fixed header.
    for (d, s) in addrs.iter_mut().zip(&ip[field::IP6_SRC..IPV6_HLEN]) {
        *d = *s;
    }
    Ok(Ip {
        addrs,
        proto: nh,
        flow: first & IPV6_FLOW_MASK,
        v6: true,
        net: Net {
            // The 8 traffic-class bits; the cast keeps exactly those.
            tos: (first >> IPV6_TCLASS_SHIFT) as u8,
            ttl: rd8(ip, field::IP6_HOP),
            df: false,
            id: 0,
        },
        l4: l3 + IPV6_HLEN,
        flush_bit,
    })
}
