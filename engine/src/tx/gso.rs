//! Software GSO for TCP: the kernel's `tcp_gso_segment` / `skb_segment` rebuilt for
//! AF_XDP, where no device segments for us (a veth in copy mode has no TSO), so this is
//! skiff's TSO.
//!
//! skiff's TCP already keeps each MSS of payload in its own UMEM frame, so GSO never
//! touches payload bytes: from the header template of the whole super-segment
//! ([`GsoTemplate`]) it writes each segment's headers in front of that segment's payload,
//! with the kernel's per-segment header rules and checksums fixed from sums precomputed
//! once per super-segment. [`segment`] is the plain software split of one contiguous
//! packet, the reference the tests and benches use.
//!
//! # Where the rules come from
//!
//! Read through the `search` tool (`codesnas/linux-6.18.y` 33ef1e6ac01f and
//! `torvalds/linux`):
//!
//! - `net/ipv4/tcp_offload.c` `tcp_gso_segment`: every segment carries `gso_size` (= MSS)
//!   payload bytes but the last; the sequence number advances by MSS per segment
//!   (`seq += mss`); FIN and PSH are cleared on all but the last (`th->fin = th->psh =
//!   0` inside the loop, the last segment keeps the original flags); CWR is kept on the
//!   first only (`th->cwr &= ecn_cwr_mask`, the mask being 0 unless
//!   `SKB_GSO_TCP_ACCECN`); the TCP checksum is the template's pseudo-header sum with the
//!   length replaced (`delta = htonl(oldlen + thlen + mss)`, `newcheck`), completed over
//!   header and payload (`gso_make_checksum`). A payload of at most one MSS is not
//!   segmented (`skb->len <= mss`).
//! - `net/core/skbuff.c` `skb_segment`: the headers (Ethernet, tag, IP, TCP with its
//!   options) are copied to every segment unchanged apart from the fields above and below.
//! - `net/ipv4/af_inet.c` `inet_gso_segment`: the IPv4 ID increments by one per segment
//!   from the super-segment's (`iph->id = htons(id++)`, IDs the stack reserved with
//!   `ip_select_ident_segs`), unless `SKB_GSO_TCP_FIXEDID`; the total length is the
//!   segment's; the header checksum is recomputed (`ip_send_check`).
//! - `net/ipv6/ip6_offload.c` `ipv6_gso_segment`: the payload length is the segment's.
//!
//! # Where skiff differs
//!
//! - Checksums are never recomputed over header bytes: the IPv4 header sum and the TCP
//!   pseudo-header + header sum are taken once in [`GsoTemplate::new`] with every
//!   per-segment field zeroed, and [`GsoTemplate::write_segment`] adds that segment's
//!   length, ID, sequence number, flags and payload sum (the payload sum is the caller's,
//!   taken while the payload was copied into its frame). The result is the same number
//!   the kernel's `ip_send_check` / `gso_make_checksum` give (checked against full
//!   recomputation in the tests).
//! - IPv4 IDs always increment: skiff has no fixed-ID (`SKB_GSO_TCP_FIXEDID`) mode and no
//!   AccECN (`SKB_GSO_TCP_ACCECN`, which keeps CWR on every segment).
//! - Only what skiff's TCP sends is accepted: Ethernet with at most one 802.1Q/802.1ad
//!   tag, IPv4 without options and not a fragment, or IPv6 without extension headers,
//!   then TCP without SYN, RST or URG (the kernel would copy those to every segment; its
//!   TCP never hands them to GSO). Anything else is a [`GsoError`].
//! - No BIG TCP: the super-segment's IP length field must describe it (≤ 65535), so at
//!   most 64 KiB per super-segment, as `GSO_LEGACY_MAX_SIZE`.
//! - [`segment`] rewrites the headers of a packet that needs no split as well (the kernel
//!   leaves it as it is): the same bytes when its checksums were right.

use crate::tx::tcp::Seq;
use crate::wire::{
    checksum,
    tcp::{field as tcp_field, flags, MAX_OPTIONS_LEN, TCP_HLEN},
    udp::{IPV4_HLEN, IPV6_HLEN},
    ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_QINQ, ETHERTYPE_VLAN, ETH_HLEN, IPPROTO_TCP,
    VLAN_HLEN,
};

/// Longest header a super-segment may have: Ethernet 14 + one VLAN tag 4 + IPv6 40 (the
/// fixed header; no extension headers, and IPv4 without options is only 20) + TCP with the
/// most options 60 (data offset 15 words) = 118 bytes.
pub const MAX_HEADER: usize = ETH_HLEN + VLAN_HLEN + IPV6_HLEN + TCP_HLEN + MAX_OPTIONS_LEN;

/// Largest value of an IP length field (IPv4 total length, IPv6 payload length without a
/// jumbo option, RFC 791 §3.1 / RFC 8200 §3): 16 bits.
const MAX_IP_LEN: usize = 65535;

/// IPv4 header field offsets (RFC 791 §3.1): total length.
const IP4_TOT_LEN: usize = 2;
/// Identification.
const IP4_ID: usize = 4;
/// Flags and fragment offset.
const IP4_FRAG: usize = 6;
/// Protocol.
const IP4_PROTO: usize = 9;
/// Header checksum.
const IP4_CHECK: usize = 10;
/// Source address (destination follows).
const IP4_SRC: usize = 12;
/// More-fragments bit and fragment offset (RFC 791 §3.1; `IP_MF | IP_OFFSET`).
const IP4_MF_OFFSET: u16 = 0x3fff;
/// IPv6 header field offsets (RFC 8200 §3): payload length.
const IP6_PAYLOAD_LEN: usize = 4;
/// Next header.
const IP6_NEXT: usize = 6;
/// Source address (destination follows).
const IP6_SRC: usize = 8;

/// Flags that differ between segments: FIN and PSH only on the last, CWR only on the
/// first (`tcp_gso_segment`).
const PER_SEGMENT: u8 = flags::FIN | flags::PSH | flags::CWR;
/// Flags GSO refuses: control segments the kernel's TCP never sends as a super-segment.
const REFUSED: u8 = flags::SYN | flags::RST | flags::URG;

/// Why a super-segment's headers cannot be segmented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GsoError {
    /// The bytes end inside a header.
    #[error("headers truncated")]
    Truncated,
    /// Not IPv4 or IPv6 after at most one VLAN tag.
    #[error("EtherType {ethertype:#06x} is not IPv4 or IPv6 (after at most one tag)")]
    Ethertype {
        /// The EtherType found.
        ethertype: u16,
    },
    /// The IP version nibble does not match the EtherType.
    #[error("IP version {version} does not match the EtherType")]
    IpVersion {
        /// The version nibble.
        version: u8,
    },
    /// IPv4 with options (IHL other than 5).
    #[error("IPv4 header with options (IHL {ihl})")]
    Ipv4Options {
        /// The IHL nibble.
        ihl: u8,
    },
    /// An IPv4 fragment (MF or a fragment offset).
    #[error("IPv4 fragment")]
    Fragment,
    /// Not TCP: the IPv4 protocol or IPv6 next header (extension headers included).
    #[error("IP protocol / next header {proto} is not TCP")]
    NotTcp {
        /// The protocol number.
        proto: u8,
    },
    /// TCP data offset below 5 words.
    #[error("TCP data offset {doff} below 5")]
    TcpDataOffset {
        /// The data offset nibble.
        doff: u8,
    },
    /// SYN, RST or URG set.
    #[error("TCP flags {flags:#04x} include SYN, RST or URG")]
    ControlFlags {
        /// The flags byte.
        flags: u8,
    },
    /// MSS of 0, or one that would not fit the IP length field with the headers.
    #[error("MSS {mss} is 0 or too large for the IP length field")]
    Mss {
        /// The MSS asked for.
        mss: u16,
    },
    /// The IP length field is shorter than the headers or longer than the packet.
    #[error("IP length {len} disagrees with the headers or the packet")]
    IpLength {
        /// The IP length field's value.
        len: u16,
    },
}

/// Reads the big-endian u16 at `at`, `None` past the end.
#[inline]
fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Reads the big-endian u32 at `at`, `None` past the end.
#[inline]
fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Writes `v` big-endian at `at` (offsets come from [`GsoTemplate::new`] and lie inside).
#[inline]
fn put(b: &mut [u8], at: usize, v: &[u8]) {
    if let Some(d) = b.get_mut(at..at + v.len()) {
        d.copy_from_slice(v);
    }
}

/// The headers of one super-segment, ready to be stamped onto each of its segments.
#[derive(Debug, Clone)]
pub struct GsoTemplate {
    /// Ethernet through TCP, as given.
    hdr: [u8; MAX_HEADER],
    /// Bytes of `hdr` in use.
    hdr_len: usize,
    /// IP header offset.
    l3: usize,
    /// TCP header offset.
    l4: usize,
    /// IPv6 (else IPv4).
    v6: bool,
    /// Payload bytes per segment but the last (`gso_size`).
    mss: u16,
    /// The IP length field of a segment without payload: IPv4 total length = IP + TCP
    /// headers, IPv6 payload length = TCP header.
    ip_len_base: u16,
    /// TCP length (pseudo-header) of a segment without payload: the TCP header.
    tcp_len_base: u16,
    /// First segment's sequence number.
    seq: Seq,
    /// First segment's IPv4 ID.
    id: u16,
    /// Flags of the whole super-segment.
    flags: u8,
    /// IPv4 header sum (folded) with total length, ID and checksum zero.
    ip_sum: u32,
    /// Pseudo-header (addresses, protocol, no length) + TCP header sum (folded) with
    /// sequence number, checksum and the [`PER_SEGMENT`] flags zero.
    tcp_sum: u32,
}

impl GsoTemplate {
    /// From the headers (Ethernet [+ 802.1Q / 802.1ad tag] + IPv4 without options or IPv6
    /// without extension headers + TCP with options) of the super-segment as if it were
    /// one packet: its IP length fields and checksums are ignored, its TCP sequence number
    /// is the first segment's, its flags those of the whole (FIN/PSH meant for the last
    /// segment, CWR for the first), its IPv4 ID the first segment's. Bytes after the TCP
    /// header (the payload, if given) are ignored.
    pub fn new(headers: &[u8], mss: u16) -> Result<Self, GsoError> {
        let mut ethertype = be16(headers, 12).ok_or(GsoError::Truncated)?;
        let mut l3 = ETH_HLEN;
        if ethertype == ETHERTYPE_VLAN || ethertype == ETHERTYPE_QINQ {
            ethertype = be16(headers, ETH_HLEN + 2).ok_or(GsoError::Truncated)?;
            l3 += VLAN_HLEN;
        }
        let (v6, l4, pseudo, id) = match ethertype {
            ETHERTYPE_IPV4 => {
                let ip = headers.get(l3..l3 + IPV4_HLEN).ok_or(GsoError::Truncated)?;
                let vihl = ip.first().copied().unwrap_or(0);
                if vihl >> 4 != 4 {
                    return Err(GsoError::IpVersion { version: vihl >> 4 });
                }
                if vihl & 0x0f != 5 {
                    return Err(GsoError::Ipv4Options { ihl: vihl & 0x0f });
                }
                if be16(ip, IP4_FRAG).unwrap_or(0) & IP4_MF_OFFSET != 0 {
                    return Err(GsoError::Fragment);
                }
                let proto = ip.get(IP4_PROTO).copied().unwrap_or(0);
                if proto != IPPROTO_TCP {
                    return Err(GsoError::NotTcp { proto });
                }
                let addrs = |at| -> Result<[u8; 4], GsoError> {
                    ip.get(at..at + 4)
                        .and_then(|a| a.try_into().ok())
                        .ok_or(GsoError::Truncated)
                };
                let pseudo =
                    checksum::pseudo_v4(addrs(IP4_SRC)?, addrs(IP4_SRC + 4)?, IPPROTO_TCP, 0);
                let id = be16(ip, IP4_ID).ok_or(GsoError::Truncated)?;
                (false, l3 + IPV4_HLEN, pseudo, id)
            }
            ETHERTYPE_IPV6 => {
                let ip = headers.get(l3..l3 + IPV6_HLEN).ok_or(GsoError::Truncated)?;
                let version = ip.first().copied().unwrap_or(0) >> 4;
                if version != 6 {
                    return Err(GsoError::IpVersion { version });
                }
                let proto = ip.get(IP6_NEXT).copied().unwrap_or(0);
                if proto != IPPROTO_TCP {
                    return Err(GsoError::NotTcp { proto });
                }
                let addrs = |at| -> Result<[u8; 16], GsoError> {
                    ip.get(at..at + 16)
                        .and_then(|a| a.try_into().ok())
                        .ok_or(GsoError::Truncated)
                };
                let pseudo =
                    checksum::pseudo_v6(addrs(IP6_SRC)?, addrs(IP6_SRC + 16)?, IPPROTO_TCP, 0);
                (true, l3 + IPV6_HLEN, pseudo, 0)
            }
            other => return Err(GsoError::Ethertype { ethertype: other }),
        };
        let doff = headers
            .get(l4 + tcp_field::DATA_OFFSET)
            .ok_or(GsoError::Truncated)?
            >> 4;
        let thlen = usize::from(doff) * 4;
        if thlen < TCP_HLEN {
            return Err(GsoError::TcpDataOffset { doff });
        }
        let hdr_len = l4 + thlen;
        let tcp = headers.get(l4..hdr_len).ok_or(GsoError::Truncated)?;
        let fl = tcp.get(tcp_field::FLAGS).copied().unwrap_or(0);
        if fl & REFUSED != 0 {
            return Err(GsoError::ControlFlags { flags: fl });
        }
        // IPv4 total length counts the IP header, IPv6 payload length does not.
        let ip_len_base = if v6 { thlen } else { hdr_len - l3 };
        if mss == 0 || ip_len_base + usize::from(mss) > MAX_IP_LEN {
            return Err(GsoError::Mss { mss });
        }
        let mut hdr = [0u8; MAX_HEADER];
        match (hdr.get_mut(..hdr_len), headers.get(..hdr_len)) {
            (Some(d), Some(s)) => d.copy_from_slice(s),
            _ => return Err(GsoError::Truncated),
        }
        let ip_sum = if v6 {
            0
        } else {
            let mut ip = [0u8; IPV4_HLEN];
            if let Some(s) = headers.get(l3..l4) {
                ip.copy_from_slice(s);
            }
            for f in [IP4_TOT_LEN, IP4_ID, IP4_CHECK] {
                put(&mut ip, f, &[0, 0]);
            }
            checksum::sum(&ip, 0)
        };
        let mut th = [0u8; TCP_HLEN + MAX_OPTIONS_LEN];
        let th = th.get_mut(..thlen).ok_or(GsoError::Truncated)?;
        th.copy_from_slice(tcp);
        put(th, tcp_field::SEQ, &[0; 4]);
        put(th, tcp_field::CHECKSUM, &[0; 2]);
        put(th, tcp_field::FLAGS, &[fl & !PER_SEGMENT]);
        let tcp_sum = checksum::sum(th, pseudo);
        Ok(GsoTemplate {
            hdr,
            hdr_len,
            l3,
            l4,
            v6,
            mss,
            // ≤ 65535 − mss: checked above.
            ip_len_base: ip_len_base as u16,
            tcp_len_base: thlen as u16,
            seq: Seq(be32(tcp, tcp_field::SEQ).ok_or(GsoError::Truncated)?),
            id,
            flags: fl,
            ip_sum,
            tcp_sum,
        })
    }

    /// Header length: Ethernet through TCP with options (where each segment's payload
    /// starts).
    pub fn header_len(&self) -> usize {
        self.hdr_len
    }

    /// Payload bytes per segment but the last.
    pub fn mss(&self) -> u16 {
        self.mss
    }

    /// Writes the headers of segment `i` of `n` into `out[..header_len]` and returns
    /// `header_len`: payload length `len`, payload one's-complement partial sum
    /// `payload_sum` ([`checksum::sum`]`(payload, 0)`), sequence number `first_seq +
    /// i·mss`, IPv4 ID `first + i` (consecutive, as `ip_select_ident_segs` reserved them),
    /// IP total / payload length, FIN and PSH only on the last segment, CWR only on the
    /// first, IPv4 header checksum and TCP checksum (pseudo-header + header + payload)
    /// from the template's precomputed sums plus this segment's fields.
    ///
    /// Returns 0 and writes nothing when `out` is shorter than the header, `i ≥ n`, `len >
    /// mss`, or a segment other than the last is not exactly `mss` long (the sequence
    /// numbers of the following segments would be wrong).
    pub fn write_segment(
        &self,
        i: u32,
        n: u32,
        len: u16,
        payload_sum: u32,
        out: &mut [u8],
    ) -> usize {
        let last = i.checked_add(1) == Some(n);
        if i >= n || len > self.mss || (!last && len != self.mss) {
            return 0;
        }
        let (Some(h), Some(src)) = (out.get_mut(..self.hdr_len), self.hdr.get(..self.hdr_len))
        else {
            return 0;
        };
        h.copy_from_slice(src);
        // No overflow: new() checked ip_len_base + mss ≤ 65535, and tcp_len_base ≤ it.
        let ip_len = self.ip_len_base + len;
        let tcp_len = self.tcp_len_base + len;
        if self.v6 {
            put(h, self.l3 + IP6_PAYLOAD_LEN, &ip_len.to_be_bytes());
        } else {
            // `htons(id++)`: IDs wrap modulo 2^16.
            let id = self.id.wrapping_add(i as u16);
            put(h, self.l3 + IP4_TOT_LEN, &ip_len.to_be_bytes());
            put(h, self.l3 + IP4_ID, &id.to_be_bytes());
            let sum = u64::from(self.ip_sum) + u64::from(ip_len) + u64::from(id);
            put(
                h,
                self.l3 + IP4_CHECK,
                &(!(checksum::fold(sum) as u16)).to_be_bytes(),
            );
        }
        let seq = self.seq.add(i.wrapping_mul(u32::from(self.mss)));
        let mut fl = self.flags & !PER_SEGMENT;
        if i == 0 {
            fl |= self.flags & flags::CWR;
        }
        if last {
            fl |= self.flags & (flags::FIN | flags::PSH);
        }
        put(h, self.l4 + tcp_field::SEQ, &seq.0.to_be_bytes());
        put(h, self.l4 + tcp_field::FLAGS, &[fl]);
        // The flags byte is the low half of the 16-bit word at offset 12.
        let sum = u64::from(self.tcp_sum)
            + u64::from(tcp_len)
            + u64::from(seq.0 >> 16)
            + u64::from(seq.0 & 0xffff)
            + u64::from(fl & PER_SEGMENT)
            + u64::from(payload_sum);
        put(
            h,
            self.l4 + tcp_field::CHECKSUM,
            &(!(checksum::fold(sum) as u16)).to_be_bytes(),
        );
        self.hdr_len
    }
}

/// Number of segments for a payload of `payload_len` bytes: `DIV_ROUND_UP(len, mss)`
/// (`tcp_gso_segment`'s `gso_segs`), 1 for an empty payload (a bare ACK or FIN is one
/// segment). An `mss` of 0 counts as 1.
pub fn segment_count(payload_len: usize, mss: u16) -> u32 {
    if payload_len == 0 {
        return 1;
    }
    let n = payload_len.div_ceil(usize::from(mss.max(1)));
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Software GSO of one whole packet (Ethernet + IP + TCP + payload, the IP length field
/// covering the whole; bytes past it, Ethernet padding, are dropped): pushes the
/// segments, each a complete frame of at most `mss` payload bytes, to `out` and returns
/// how many. The reference for the tests and benches: [`GsoTemplate`] does the header
/// work, the payload is copied.
pub fn segment(packet: &[u8], mss: u16, out: &mut Vec<Vec<u8>>) -> Result<usize, GsoError> {
    let t = GsoTemplate::new(packet, mss)?;
    let at = t.l3 + if t.v6 { IP6_PAYLOAD_LEN } else { IP4_TOT_LEN };
    let ip_len = be16(packet, at).ok_or(GsoError::Truncated)?;
    // An IPv6 payload length of 0 (a jumbogram, RFC 2675) is shorter than the headers too.
    let payload = usize::from(ip_len)
        .checked_sub(usize::from(t.ip_len_base))
        .and_then(|n| packet.get(t.hdr_len..t.hdr_len + n))
        .ok_or(GsoError::IpLength { len: ip_len })?;
    let n = segment_count(payload.len(), mss);
    let mut chunks = payload.chunks(usize::from(mss));
    out.reserve(n as usize);
    for i in 0..n {
        let chunk = chunks.next().unwrap_or(&[]);
        let mut f = vec![0u8; t.hdr_len + chunk.len()];
        let (h, p) = f.split_at_mut(t.hdr_len);
        // ≤ mss: a chunk of `chunks(mss)`.
        t.write_segment(i, n, chunk.len() as u16, checksum::sum(chunk, 0), h);
        p.copy_from_slice(chunk);
        out.push(f);
    }
    Ok(n as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rx::gro::{Gro, GroConfig, GroPacket};
    use crate::wire::tcp::{self, flags::*, TcpHeader, TcpOptions};
    use etherparse::{NetHeaders, PacketHeaders, PayloadSlice, TransportHeader};
    use proptest::prelude::*;

    const SRC4: [u8; 4] = [198, 18, 0, 1];
    const DST4: [u8; 4] = [198, 18, 0, 2];
    const SRC6: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    const DST6: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
    /// The usual MSS on a 1500-byte MTU with timestamps: 1500 − 20 − 32.
    const MSS: u16 = 1448;

    /// A super-segment to build as one Ethernet frame with valid checksums.
    #[derive(Clone, Debug)]
    struct Super {
        v6: bool,
        vlan: Option<u16>,
        /// TCP timestamps option (12 bytes, Linux's layout).
        ts: bool,
        flags: u8,
        seq: u32,
        id: u16,
        tos: u8,
        payload: Vec<u8>,
    }

    impl Super {
        fn v4(payload_len: usize) -> Super {
            Super {
                v6: false,
                vlan: None,
                ts: true,
                flags: ACK,
                seq: 1_000_000,
                id: 0x1000,
                tos: 0,
                payload: pattern(7, payload_len),
            }
        }

        fn l3(&self) -> usize {
            ETH_HLEN + if self.vlan.is_some() { VLAN_HLEN } else { 0 }
        }

        fn l4(&self) -> usize {
            self.l3() + if self.v6 { IPV6_HLEN } else { IPV4_HLEN }
        }

        fn tcp_header(&self) -> TcpHeader {
            TcpHeader {
                src_port: 40000,
                dst_port: 5001,
                seq: Seq(self.seq),
                ack: Seq(77),
                flags: self.flags,
                window: 502,
                checksum: 0,
                urgent: 0,
                options: TcpOptions {
                    timestamps: self.ts.then_some((1000, 2000)),
                    ..TcpOptions::default()
                },
            }
        }

        fn hdr_len(&self) -> usize {
            self.l4() + self.tcp_header().header_len()
        }

        /// The Ethernet frame, checksums filled by full computation.
        fn build(&self) -> Vec<u8> {
            let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
            if let Some(tci) = self.vlan {
                f.extend_from_slice(&ETHERTYPE_VLAN.to_be_bytes());
                f.extend_from_slice(&tci.to_be_bytes());
            }
            let ethertype = if self.v6 {
                ETHERTYPE_IPV6
            } else {
                ETHERTYPE_IPV4
            };
            f.extend_from_slice(&ethertype.to_be_bytes());
            let th = self.tcp_header();
            let mut l4 = vec![0u8; th.header_len()];
            assert_eq!(th.emit(&mut l4), l4.len());
            l4.extend_from_slice(&self.payload);
            if self.v6 {
                assert!(tcp::fill_checksum_v6(SRC6, DST6, &mut l4));
                let w = (6u32 << 28) | (u32::from(self.tos) << 20) | 0x12345;
                f.extend_from_slice(&w.to_be_bytes());
                f.extend_from_slice(&(l4.len() as u16).to_be_bytes());
                f.extend_from_slice(&[IPPROTO_TCP, 64]);
                f.extend_from_slice(&SRC6);
                f.extend_from_slice(&DST6);
            } else {
                assert!(tcp::fill_checksum_v4(SRC4, DST4, &mut l4));
                let mut ip = vec![0x45, self.tos];
                ip.extend_from_slice(&((IPV4_HLEN + l4.len()) as u16).to_be_bytes());
                ip.extend_from_slice(&self.id.to_be_bytes());
                ip.extend_from_slice(&[0x40, 0, 64, IPPROTO_TCP, 0, 0]);
                ip.extend_from_slice(&SRC4);
                ip.extend_from_slice(&DST4);
                let ck = checksum::checksum(&ip, 0);
                ip[IP4_CHECK..IP4_CHECK + 2].copy_from_slice(&ck.to_be_bytes());
                f.extend_from_slice(&ip);
            }
            f.extend_from_slice(&l4);
            f
        }

        /// Largest payload whose packet GRO still merges: L3 length (+ 4 with a tag, as
        /// the kernel's `p->len` counts it) below 65536.
        fn max_payload(&self) -> usize {
            let tag = if self.vlan.is_some() { VLAN_HLEN } else { 0 };
            MAX_IP_LEN - tag - (self.hdr_len() - self.l3())
        }
    }

    /// Payload bytes distinct per offset and seed.
    fn pattern(seed: u64, len: usize) -> Vec<u8> {
        (0..len as u64)
            .map(|k| (k.wrapping_mul(7) ^ seed.wrapping_mul(131) ^ (k >> 8)) as u8)
            .collect()
    }

    /// Checks one segment with full recomputation (and etherparse): IP lengths, IPv4
    /// header checksum, TCP checksum; returns its payload.
    fn check_segment(f: &[u8]) -> Vec<u8> {
        let h = PacketHeaders::from_ethernet_slice(f).expect("etherparse parses");
        let l3 = if h.vlan.is_some() { 18 } else { 14 };
        let payload = match h.payload {
            PayloadSlice::Tcp(p) => p.to_vec(),
            _ => panic!("no TCP payload"),
        };
        match (h.transport.expect("tcp"), h.net.expect("ip")) {
            (TransportHeader::Tcp(t), NetHeaders::Ipv4(ip, _)) => {
                assert_eq!(usize::from(ip.total_len), f.len() - l3);
                assert_eq!(ip.header_checksum, ip.calc_header_checksum());
                assert_eq!(checksum::sum(&f[l3..l3 + 20], 0), 0xffff);
                assert_eq!(t.checksum, t.calc_checksum_ipv4(&ip, &payload).unwrap());
                assert!(tcp::checksum_ok_v4(SRC4, DST4, &f[l3 + 20..]));
            }
            (TransportHeader::Tcp(t), NetHeaders::Ipv6(ip, _)) => {
                assert_eq!(usize::from(ip.payload_length), f.len() - l3 - 40);
                assert_eq!(t.checksum, t.calc_checksum_ipv6(&ip, &payload).unwrap());
                assert!(tcp::checksum_ok_v6(SRC6, DST6, &f[l3 + 40..]));
            }
            _ => panic!("not TCP"),
        }
        payload
    }

    /// Splits `s` with [`segment`], checks every segment's checksums, lengths and header
    /// rules against `s`, and returns the segments.
    fn split_and_check(s: &Super, mss: u16) -> Vec<Vec<u8>> {
        let pkt = s.build();
        check_segment(&pkt);
        let mut segs = Vec::new();
        let n = segment(&pkt, mss, &mut segs).expect("segments");
        assert_eq!(n, segs.len());
        assert_eq!(n as u32, segment_count(s.payload.len(), mss));
        let (l3, l4, hl) = (s.l3(), s.l4(), s.hdr_len());
        let mut joined = Vec::new();
        for (i, f) in segs.iter().enumerate() {
            let payload = check_segment(f);
            let last = i + 1 == n;
            if !last {
                assert_eq!(payload.len(), usize::from(mss), "segment {i}");
            }
            assert!(payload.len() <= usize::from(mss));
            joined.extend_from_slice(&payload);
            let th = tcp::parse(&f[l4..]).expect("parses").header;
            assert_eq!(th.seq, Seq(s.seq).add(i as u32 * u32::from(mss)), "seq {i}");
            let mut want = s.flags & !(FIN | PSH | CWR);
            if i == 0 {
                want |= s.flags & CWR;
            }
            if last {
                want |= s.flags & (FIN | PSH);
            }
            assert_eq!(th.flags, want, "flags of segment {i}");
            if !s.v6 {
                let id = u16::from_be_bytes([f[l3 + 4], f[l3 + 5]]);
                assert_eq!(id, s.id.wrapping_add(i as u16), "IPv4 ID {i}");
            }
            // Everything else is the template's: MACs, tag, the IP fields that do not
            // change, ports, ack, window, options.
            let same = |r: std::ops::Range<usize>| assert_eq!(f[r.clone()], pkt[r], "{i}");
            same(0..l3);
            if s.v6 {
                same(l3..l3 + 4);
                same(l3 + 6..l4);
            } else {
                same(l3..l3 + 2);
                same(l3 + 6..l3 + 10);
                same(l3 + 12..l4);
            }
            same(l4..l4 + 4);
            same(l4 + 8..l4 + 13);
            same(l4 + 14..l4 + 16);
            same(l4 + 18..hl);
        }
        assert_eq!(joined, s.payload, "the payload, in order");
        segs
    }

    #[test]
    fn split_sizes() {
        let m = usize::from(MSS);
        // 65483 = 65535 − 20 − 32: the largest IPv4 payload with timestamps.
        for (len, n, last) in [
            (0, 1, 0),
            (1, 1, 1),
            (m - 1, 1, m - 1),
            (m, 1, m),
            (m + 1, 2, 1),
            (44 * m, 44, m),
            (65483, 46, 65483 - 45 * m),
        ] {
            assert_eq!(segment_count(len, MSS), n, "{len}");
            let segs = split_and_check(&Super::v4(len), MSS);
            assert_eq!(segs.len(), n as usize, "{len}");
            let hl = Super::v4(len).hdr_len();
            assert_eq!(segs.last().unwrap().len() - hl, last, "{len}");
        }
        assert_eq!(segment_count(10, 0), 10);
    }

    #[test]
    fn every_family_and_tag() {
        for v6 in [false, true] {
            for vlan in [None, Some(0x0123)] {
                for ts in [false, true] {
                    let mut s = Super::v4(10_000);
                    s.v6 = v6;
                    s.vlan = vlan;
                    s.ts = ts;
                    s.flags = ACK | PSH | FIN | CWR | ECE;
                    s.seq = u32::MAX - 3000; // wraps inside the stream
                    s.id = 0xfffe; // wraps too
                    s.tos = 0x02;
                    let segs = split_and_check(&s, 1000);
                    assert_eq!(segs.len(), 10);
                }
            }
        }
    }

    #[test]
    fn no_split_needed_gives_the_packet_back() {
        let mut s = Super::v4(100);
        s.flags = ACK | PSH | FIN | CWR;
        let pkt = s.build();
        let mut out = Vec::new();
        assert_eq!(segment(&pkt, MSS, &mut out), Ok(1));
        assert_eq!(out[0], pkt);
        // Ethernet padding after the IP packet is dropped.
        let mut padded = Super::v4(0).build();
        let want = padded.clone();
        padded.extend_from_slice(&[0; 6]);
        out.clear();
        assert_eq!(segment(&padded, MSS, &mut out), Ok(1));
        assert_eq!(out[0], want);
    }

    #[test]
    fn write_segment_refuses_impossible_requests() {
        let s = Super::v4(3 * usize::from(MSS));
        let pkt = s.build();
        let t = GsoTemplate::new(&pkt, MSS).expect("template");
        assert_eq!(t.header_len(), s.hdr_len());
        assert_eq!(t.mss(), MSS);
        let mut out = [0xeeu8; MAX_HEADER];
        for (i, n, len) in [
            (3, 3, MSS),     // i ≥ n
            (0, 0, 0),       // no segments
            (2, 3, MSS + 1), // longer than mss
            (0, 3, MSS - 1), // a short segment that is not the last
        ] {
            assert_eq!(t.write_segment(i, n, len, 0, &mut out), 0, "{i} {n} {len}");
        }
        assert_eq!(
            t.write_segment(0, 3, MSS, 0, &mut out[..s.hdr_len() - 1]),
            0
        );
        assert!(out.iter().all(|&b| b == 0xee), "nothing written");
        assert_eq!(t.write_segment(2, 3, 1, 0, &mut out), s.hdr_len());
    }

    #[test]
    fn template_errors() {
        let good = Super::v4(10).build();
        let hl = Super::v4(10).hdr_len();
        assert!(GsoTemplate::new(&good[..hl], MSS).is_ok(), "headers alone");
        assert_eq!(
            GsoTemplate::new(&good[..hl - 1], MSS).unwrap_err(),
            GsoError::Truncated
        );
        assert_eq!(GsoTemplate::new(&[], MSS).unwrap_err(), GsoError::Truncated);
        let edit = |at: usize, v: &[u8]| {
            let mut p = good.clone();
            p[at..at + v.len()].copy_from_slice(v);
            GsoTemplate::new(&p, MSS).unwrap_err()
        };
        assert_eq!(
            edit(12, &[0x08, 0x06]),
            GsoError::Ethertype { ethertype: 0x0806 }
        );
        assert_eq!(edit(14, &[0x65]), GsoError::IpVersion { version: 6 });
        assert_eq!(edit(14, &[0x46]), GsoError::Ipv4Options { ihl: 6 });
        assert_eq!(edit(20, &[0x20, 0]), GsoError::Fragment);
        assert_eq!(edit(20, &[0x00, 0x08]), GsoError::Fragment);
        assert_eq!(edit(23, &[17]), GsoError::NotTcp { proto: 17 });
        assert_eq!(edit(46, &[0x40]), GsoError::TcpDataOffset { doff: 4 });
        for f in [SYN, RST, URG] {
            assert_eq!(
                edit(47, &[ACK | f]),
                GsoError::ControlFlags { flags: ACK | f }
            );
        }
        assert_eq!(
            GsoTemplate::new(&good, 0).unwrap_err(),
            GsoError::Mss { mss: 0 }
        );
        // 52 bytes of IPv4 + TCP headers leave 65483 for one segment.
        assert!(GsoTemplate::new(&good, 65483).is_ok());
        assert_eq!(
            GsoTemplate::new(&good, 65484).unwrap_err(),
            GsoError::Mss { mss: 65484 }
        );
        // IPv6 with an extension header (hop-by-hop, next header 0).
        let mut s6 = Super::v4(10);
        s6.v6 = true;
        let mut p6 = s6.build();
        p6[20] = 0;
        assert_eq!(
            GsoTemplate::new(&p6, MSS).unwrap_err(),
            GsoError::NotTcp { proto: 0 }
        );
        // segment(): the IP length must describe the packet.
        let mut out = Vec::new();
        let mut p = good.clone();
        p[16..18].copy_from_slice(&51u16.to_be_bytes());
        assert_eq!(
            segment(&p, MSS, &mut out).unwrap_err(),
            GsoError::IpLength { len: 51 }
        );
        p[16..18].copy_from_slice(&((good.len() - 14 + 1) as u16).to_be_bytes());
        assert!(matches!(
            segment(&p, MSS, &mut out).unwrap_err(),
            GsoError::IpLength { .. }
        ));
        assert!(out.is_empty());
    }

    /// What GRO made of a sequence of frames: each output packet's bytes (a merged one
    /// written out), in order, with its frame count.
    fn gro(frames: &[Vec<u8>]) -> Vec<(Vec<u8>, usize)> {
        let mut gro: Gro<usize> = Gro::new(GroConfig::default());
        let mut raw = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            gro.receive(i, f, None, &mut raw);
        }
        gro.flush(&mut raw);
        let mut out = Vec::new();
        let mut next = 0;
        for p in raw {
            match p {
                GroPacket::Single(i) => {
                    assert_eq!(i, next, "in order");
                    next += 1;
                    out.push((frames[i].clone(), 1));
                }
                GroPacket::Merged(m) => {
                    assert_eq!(m.frames(), (next..next + m.segs()).collect::<Vec<_>>());
                    next += m.segs();
                    let mut b = Vec::new();
                    m.write_to(|&i| frames[i].as_slice(), &mut b);
                    out.push((b, m.segs()));
                }
            }
        }
        assert_eq!(next, frames.len(), "every frame out once");
        out
    }

    /// `got` is `want` (a super-segment built with a full checksum) as GRO writes a merged
    /// packet: byte for byte except the TCP checksum field, which `tcp4_gro_complete` /
    /// `tcp6_gro_complete` set to the folded pseudo-header sum, not complemented
    /// (`~tcp_v4_check(len, saddr, daddr, 0)`, left for `CHECKSUM_PARTIAL`).
    fn assert_merged_is(got: &[u8], want: &Super) {
        let w = want.build();
        assert_eq!(got.len(), w.len());
        let ck = want.l4() + tcp_field::CHECKSUM;
        assert_eq!(got[..ck], w[..ck], "headers before the TCP checksum");
        assert_eq!(got[ck + 2..], w[ck + 2..], "after the TCP checksum");
        let l4_len = w.len() - want.l4();
        let pseudo = if want.v6 {
            checksum::pseudo_v6(SRC6, DST6, IPPROTO_TCP, l4_len as u32)
        } else {
            checksum::pseudo_v4(SRC4, DST4, IPPROTO_TCP, l4_len as u16)
        };
        assert_eq!(
            u16::from_be_bytes([got[ck], got[ck + 1]]),
            pseudo as u16,
            "GRO's partial checksum"
        );
    }

    /// The property itself, for one super-segment.
    fn gro_of_gso_is_identity(s: &Super, mss: u16) {
        let segs = split_and_check(s, mss);
        let out = gro(&segs);
        let n = segs.len();
        if n == 1 {
            // One segment: GRO passes it (or completes it alone) untouched.
            assert_eq!(out, [(s.build(), 1)]);
            return;
        }
        if s.flags & CWR == 0 {
            assert_eq!(out.len(), 1, "one merged packet");
            assert_eq!(out[0].1, n);
            assert_merged_is(&out[0].0, s);
            return;
        }
        // CWR: only the first segment carries it, and GRO flushes on a CWR mismatch
        // (`flush = flags & TCP_FLAG_CWR` and the flag-word comparison), exactly as the
        // kernel: the first segment comes out alone, the rest merge into the
        // super-segment that starts one MSS later without CWR.
        assert_eq!(out[0], (segs[0].clone(), 1));
        let mut rest = s.clone();
        rest.flags &= !CWR;
        rest.seq = s.seq.wrapping_add(u32::from(mss));
        rest.id = s.id.wrapping_add(1);
        rest.payload = s.payload[usize::from(mss)..].to_vec();
        assert_eq!(out.len(), 2);
        if n == 2 {
            assert_eq!(out[1], (rest.build(), 1));
        } else {
            assert_eq!(out[1].1, n - 1);
            assert_merged_is(&out[1].0, &rest);
        }
    }

    #[test]
    fn gro_of_gso_examples() {
        let m = usize::from(MSS);
        for len in [0, 1, m, m + 1, 44 * m, 65483] {
            for fl in [ACK, ACK | PSH, ACK | PSH | FIN, ACK | CWR, ACK | CWR | PSH] {
                let mut s = Super::v4(len);
                s.flags = fl;
                gro_of_gso_is_identity(&s, MSS);
            }
        }
    }

    proptest! {
        /// `gro(gso(s)) == s` with skiff's GRO (default configuration: the kernel's
        /// limits plus skiff's 64-segment cap). `s` stays within what GRO merges: L3
        /// length (+ 4 with a tag) below 65536 ([`Super::max_payload`]) and at most 64
        /// segments (MSS ≥ 1024: ⌈65495 / 1024⌉ = 64).
        #[test]
        fn gro_of_gso(
            v6 in any::<bool>(),
            vlan in proptest::option::of(0u16..0x1000),
            ts in any::<bool>(),
            extra in proptest::sample::subsequence(vec![PSH, FIN, CWR], 0..=3),
            seq in any::<u32>(),
            id in any::<u16>(),
            tos in any::<u8>(),
            mss in 1024u16..=9000,
            raw_len in 0usize..=65535,
            seed in any::<u64>(),
        ) {
            let mut s = Super::v4(0);
            s.v6 = v6;
            s.vlan = vlan;
            s.ts = ts;
            s.flags = ACK | extra.iter().fold(0, |a, f| a | f);
            s.seq = seq;
            s.id = id;
            s.tos = tos;
            let len = raw_len % (s.max_payload() + 1);
            s.payload = pattern(seed, len);
            prop_assert!(segment_count(len, mss) <= 64);
            gro_of_gso_is_identity(&s, mss);
        }

        /// The incremental checksums equal full recomputation for any template fields
        /// and payload, including the all-ones / zero corner.
        #[test]
        fn incremental_equals_full(
            v6 in any::<bool>(),
            seq in any::<u32>(),
            id in any::<u16>(),
            fl in proptest::sample::subsequence(vec![PSH, FIN, CWR, ECE], 0..=4),
            payload in proptest::collection::vec(any::<u8>(), 0..200),
            mss in 1u16..=64,
        ) {
            let mut s = Super::v4(0);
            s.v6 = v6;
            s.seq = seq;
            s.id = id;
            s.flags = ACK | fl.iter().fold(0, |a, f| a | f);
            s.payload = payload;
            split_and_check(&s, mss);
        }

        #[test]
        fn never_panics(
            bytes in proptest::collection::vec(any::<u8>(), 0..200),
            muts in proptest::collection::vec((0usize..140, any::<u8>()), 0..8),
            mss in any::<u16>(),
        ) {
            let mut out = Vec::new();
            let _ = segment(&bytes, mss, &mut out);
            // A valid packet with a few bytes changed reaches the deeper checks.
            let mut mutated = Super::v4(usize::from(mss % 4096)).build();
            for (at, v) in muts {
                if let Some(b) = mutated.get_mut(at) {
                    *b = v;
                }
            }
            let _ = segment(&mutated, mss.max(1), &mut out);
            if let Ok(t) = GsoTemplate::new(&bytes, mss) {
                let mut h = [0u8; MAX_HEADER];
                prop_assert_eq!(t.write_segment(0, 1, 0, 0, &mut h), t.header_len());
            }
        }
    }
}
