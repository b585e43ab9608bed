//! Frame templates: UDP, TCP SYN and ICMP echo request over IPv4 or IPv6, with an optional
//! 802.1Q tag and a chosen payload, every checksum filled in.
//!
//! A template is built once per stream and frame size ([`TemplateSpec::build`]), so the
//! code favours clarity; the per-frame work (copying, patching the varied fields) lives in
//! `gen::source` and `gen::vary`, which use the byte offsets of [`Layout`].
//!
//! Sizes count the Ethernet FCS (RFC 2544, pktgen): a 64-byte size is a 60-byte buffer.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use super::udp::{DEFAULT_TTL, IPV4_HLEN, IPV6_HLEN, UDP_HLEN};
use super::{
    checksum, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_VLAN, ETH_HLEN, FCS_LEN, IPPROTO_ICMP,
    IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, MAX_FRAME_WITH_FCS, MIN_FRAME_WITH_FCS, VLAN_HLEN,
};

/// TCP header with one 4-byte MSS option: 20 fixed bytes + 4 (data offset 6 words).
pub const TCP_SYN_HLEN: usize = 24;
/// ICMP / ICMPv6 echo header: type, code, checksum, identifier, sequence (RFC 792, RFC 4443).
pub const ICMP_ECHO_HLEN: usize = 8;
/// MSS announced over IPv4: a 1500-byte Ethernet MTU − 20 (IPv4) − 20 (TCP).
pub const TCP_MSS_V4: u16 = 1500 - 20 - 20;
/// MSS announced over IPv6: a 1500-byte Ethernet MTU − 40 (IPv6) − 20 (TCP).
pub const TCP_MSS_V6: u16 = 1500 - 40 - 20;
/// SYN window: 44 × 1460, Linux's initial window (65535 rounded down to a multiple of the
/// MSS by `tcp_select_initial_window`), which is what a real SYN from Linux carries.
pub const TCP_SYN_WINDOW: u16 = 44 * 1460;
/// The SYN's initial sequence number: fixed, nonzero, ASCII "skif" so it is easy to spot.
pub const TCP_SYN_SEQ: u32 = u32::from_be_bytes(*b"skif");
/// ICMP echo request type (RFC 792).
pub const ICMP_ECHO_REQUEST: u8 = 8;
/// ICMPv6 echo request type (RFC 4443 §4.1).
pub const ICMPV6_ECHO_REQUEST: u8 = 128;
/// The echo sequence number every request carries (fixed; only the identifier varies).
pub const ICMP_ECHO_SEQ: u16 = 0;
/// Highest usable VLAN ID: 4095 is reserved by IEEE 802.1Q.
pub const VLAN_ID_MAX: u16 = 4094;
/// Highest 802.1Q priority code point (3 bits).
pub const VLAN_PCP_MAX: u8 = 7;
/// Highest DSCP (6 bits; the low 2 bits of the TOS / traffic class are ECN, left 0).
pub const DSCP_MAX: u8 = 63;

/// What the template carries above Ethernet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TemplateKind {
    /// UDP over IPv4.
    Udp4,
    /// UDP over IPv6.
    Udp6,
    /// TCP SYN (with an MSS option) over IPv4.
    TcpSyn4,
    /// TCP SYN (with an MSS option) over IPv6.
    TcpSyn6,
    /// ICMP echo request.
    Icmp4,
    /// ICMPv6 echo request.
    Icmp6,
}

impl TemplateKind {
    /// Every kind, in the order `--help` lists them.
    pub const ALL: [TemplateKind; 6] = [
        TemplateKind::Udp4,
        TemplateKind::Udp6,
        TemplateKind::TcpSyn4,
        TemplateKind::TcpSyn6,
        TemplateKind::Icmp4,
        TemplateKind::Icmp6,
    ];

    /// The name `parse` accepts.
    pub fn name(self) -> &'static str {
        match self {
            TemplateKind::Udp4 => "udp4",
            TemplateKind::Udp6 => "udp6",
            TemplateKind::TcpSyn4 => "tcp-syn4",
            TemplateKind::TcpSyn6 => "tcp-syn6",
            TemplateKind::Icmp4 => "icmp4",
            TemplateKind::Icmp6 => "icmp6",
        }
    }

    /// Looks up one of `udp4`, `udp6`, `tcp-syn4`, `tcp-syn6`, `icmp4`, `icmp6` (a name
    /// lookup, as `PcapFormat::parse`); `str::parse` (`FromStr`) gives the error message.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == s.trim())
    }

    /// Whether the kind runs over IPv6.
    pub fn is_v6(self) -> bool {
        matches!(
            self,
            TemplateKind::Udp6 | TemplateKind::TcpSyn6 | TemplateKind::Icmp6
        )
    }

    /// `"IPv4"` or `"IPv6"`, for messages.
    pub fn family(self) -> &'static str {
        if self.is_v6() {
            "IPv6"
        } else {
            "IPv4"
        }
    }

    /// Whether the kind is an ICMP echo request (no ports; the source port is the echo
    /// identifier).
    pub fn is_icmp(self) -> bool {
        matches!(self, TemplateKind::Icmp4 | TemplateKind::Icmp6)
    }

    /// IP protocol / IPv6 next-header value.
    pub fn ip_proto(self) -> u8 {
        match self {
            TemplateKind::Udp4 | TemplateKind::Udp6 => IPPROTO_UDP,
            TemplateKind::TcpSyn4 | TemplateKind::TcpSyn6 => IPPROTO_TCP,
            TemplateKind::Icmp4 => IPPROTO_ICMP,
            TemplateKind::Icmp6 => IPPROTO_ICMPV6,
        }
    }

    fn l3_hlen(self) -> usize {
        if self.is_v6() {
            IPV6_HLEN
        } else {
            IPV4_HLEN
        }
    }

    fn l4_hlen(self) -> usize {
        match self {
            TemplateKind::Udp4 | TemplateKind::Udp6 => UDP_HLEN,
            TemplateKind::TcpSyn4 | TemplateKind::TcpSyn6 => TCP_SYN_HLEN,
            TemplateKind::Icmp4 | TemplateKind::Icmp6 => ICMP_ECHO_HLEN,
        }
    }
}

impl fmt::Display for TemplateKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for TemplateKind {
    type Err = TemplateError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s).ok_or_else(|| TemplateError::UnknownKind {
            given: s.to_string(),
        })
    }
}

/// What fills the frame after the headers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Payload {
    /// All zero bytes.
    #[default]
    Zero,
    /// Byte `i` of the payload is `i as u8` (0, 1, ..., 255, 0, ...): shows truncation and
    /// reordering in a hex dump.
    Pattern,
    /// These bytes, repeated to fill (and cut at the frame's end). Never empty.
    Bytes(Vec<u8>),
}

impl Payload {
    /// Parses `zero`, `pattern`, `text:hello` (the UTF-8 bytes) or `hex:deadbeef` (an
    /// even number of hex digits).
    pub fn parse(s: &str) -> Result<Self, TemplateError> {
        let bad = |why: &str| TemplateError::BadPayload {
            given: s.to_string(),
            why: why.to_string(),
        };
        if s == "zero" {
            return Ok(Payload::Zero);
        }
        if s == "pattern" {
            return Ok(Payload::Pattern);
        }
        if let Some(text) = s.strip_prefix("text:") {
            if text.is_empty() {
                return Err(bad("no text after `text:`"));
            }
            return Ok(Payload::Bytes(text.as_bytes().to_vec()));
        }
        if let Some(hex) = s.strip_prefix("hex:") {
            if hex.is_empty() {
                return Err(bad("no hex digits after `hex:`"));
            }
            if let Some(c) = hex.chars().find(|c| !c.is_ascii_hexdigit()) {
                return Err(bad(&format!("{c:?} is not a hex digit")));
            }
            if !hex.len().is_multiple_of(2) {
                return Err(bad("odd number of hex digits (two per byte)"));
            }
            let bytes = hex
                .as_bytes()
                .chunks_exact(2)
                .map(|p| {
                    // Both are ASCII hex digits (checked above), so this cannot fail.
                    let hi = (p[0] as char).to_digit(16).unwrap_or(0);
                    let lo = (p[1] as char).to_digit(16).unwrap_or(0);
                    (hi * 16 + lo) as u8
                })
                .collect();
            return Ok(Payload::Bytes(bytes));
        }
        Err(bad("unknown payload kind"))
    }

    /// Fills `out`, which starts at payload byte 0.
    pub fn fill(&self, out: &mut [u8]) {
        match self {
            Payload::Zero => out.fill(0),
            Payload::Pattern => {
                for (i, b) in out.iter_mut().enumerate() {
                    *b = i as u8; // wraps every 256 bytes, by design
                }
            }
            Payload::Bytes(bytes) => {
                if bytes.is_empty() {
                    out.fill(0);
                    return;
                }
                for (dst, src) in out.iter_mut().zip(bytes.iter().cycle()) {
                    *dst = *src;
                }
            }
        }
    }
}

impl FromStr for Payload {
    type Err = TemplateError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// One 802.1Q tag (TPID 0x8100).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vlan {
    /// VLAN ID, 0..=4094 (0: priority-tagged only).
    pub id: u16,
    /// Priority code point, 0..=7.
    pub pcp: u8,
}

impl Vlan {
    /// The tag control information: PCP in the top 3 bits, DEI 0, then the 12-bit ID.
    pub fn tci(self) -> u16 {
        (u16::from(self.pcp & 0x07) << 13) | (self.id & 0x0fff)
    }
}

/// Why a template cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// Not one of the template names.
    #[error("unknown template {given:?} (expected one of udp4, udp6, tcp-syn4, tcp-syn6, icmp4, icmp6; e.g. udp6)")]
    UnknownKind {
        /// What was given.
        given: String,
    },
    /// Payload text that does not parse.
    #[error("bad payload {given:?}: {why} (expected zero, pattern, text:hello or hex:deadbeef)")]
    BadPayload {
        /// What was given.
        given: String,
        /// What is wrong with it.
        why: String,
    },
    /// An address of the other IP family.
    #[error("{which} address {addr} is not {fam}, which template {kind} needs (e.g. {example})", fam = kind.family(), example = if kind.is_v6() { "2001:2::1" } else { "198.18.0.1" })]
    FamilyMismatch {
        /// The template.
        kind: TemplateKind,
        /// `"source"` or `"destination"`.
        which: &'static str,
        /// The address given.
        addr: IpAddr,
    },
    /// VLAN ID above 4094.
    #[error("VLAN ID {id} is out of range (0..=4094; 4095 is reserved by IEEE 802.1Q; e.g. 100)")]
    VlanId {
        /// The ID given.
        id: u16,
    },
    /// VLAN priority above 7.
    #[error("VLAN priority {pcp} is out of range (0..=7, a 3-bit field; e.g. 5)")]
    VlanPcp {
        /// The priority given.
        pcp: u8,
    },
    /// DSCP above 63.
    #[error("DSCP {dscp} is out of range (0..=63, a 6-bit field; e.g. 46 for EF)")]
    Dscp {
        /// The DSCP given.
        dscp: u8,
    },
    /// `Payload::Bytes` with no bytes.
    #[error("payload bytes are empty (give at least one byte, e.g. hex:00 or text:x)")]
    EmptyPayload,
    /// A size below the template's headers (or below 64).
    #[error("size {size} is below template {kind}'s minimum of {min} bytes (Ethernet frame including the 4-byte FCS)")]
    SizeTooSmall {
        /// The template.
        kind: TemplateKind,
        /// The size asked for.
        size: usize,
        /// The smallest this template can be.
        min: usize,
    },
    /// A size above the jumbo maximum.
    #[error("size {size} is above the maximum of {max} bytes (9000-byte jumbo MTU + 18-byte Ethernet and VLAN headers + 4-byte FCS)")]
    SizeTooLarge {
        /// The size asked for.
        size: usize,
        /// [`MAX_FRAME_WITH_FCS`].
        max: usize,
    },
}

/// Byte offsets in a built frame, from the Ethernet header's first byte. The same for every
/// size of one template; what `gen::vary` patches and `gen::source` adjusts per size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// IP header.
    pub l3: usize,
    /// UDP / TCP / ICMP header.
    pub l4: usize,
    /// First payload byte (= length of all headers).
    pub payload: usize,
    /// IPv4 total length or IPv6 payload length (16 bits).
    pub ip_len: usize,
    /// IPv4 header checksum; `None` for IPv6, which has none.
    pub ip_csum: Option<usize>,
    /// Source address (4 or 16 bytes, see `addr_len`).
    pub src_ip: usize,
    /// Destination address.
    pub dst_ip: usize,
    /// 4 (IPv4) or 16 (IPv6).
    pub addr_len: usize,
    /// UDP length field; `None` for TCP and ICMP, which have none.
    pub udp_len: Option<usize>,
    /// UDP/TCP source port; `None` for ICMP.
    pub src_port: Option<usize>,
    /// UDP/TCP destination port; `None` for ICMP.
    pub dst_port: Option<usize>,
    /// ICMP echo identifier; `None` for UDP/TCP.
    pub icmp_id: Option<usize>,
    /// The L4 checksum.
    pub l4_csum: usize,
    /// Whether the L4 checksum covers the IP addresses through a pseudo-header (UDP, TCP,
    /// ICMPv6: yes; ICMPv4: no).
    pub l4_csum_covers_pseudo: bool,
    /// Whether a computed L4 checksum of 0 is sent as 0xffff (UDP, RFC 768 / RFC 8200 §8.1).
    pub udp_zero_is_ffff: bool,
}

/// Everything that defines one stream's frames, except their sizes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateSpec {
    /// What rides above Ethernet.
    pub kind: TemplateKind,
    /// Destination MAC.
    pub dst_mac: [u8; 6],
    /// Source MAC.
    pub src_mac: [u8; 6],
    /// Optional 802.1Q tag.
    pub vlan: Option<Vlan>,
    /// Source address; the family must match `kind`.
    pub src_ip: IpAddr,
    /// Destination address; the family must match `kind`.
    pub dst_ip: IpAddr,
    /// UDP/TCP source port; the echo identifier for ICMP.
    pub src_port: u16,
    /// UDP/TCP destination port; unused for ICMP.
    pub dst_port: u16,
    /// DSCP, 0..=63: the IPv4 TOS / IPv6 traffic class is `dscp << 2` (ECN 0).
    pub dscp: u8,
    /// IPv4 TTL / IPv6 hop limit (64 is Linux's default, [`DEFAULT_TTL`]).
    pub ttl: u8,
    /// What fills the frame after the headers.
    pub payload: Payload,
}

impl TemplateSpec {
    /// A spec with skiff's defaults around the given kind and addresses: locally
    /// administered MACs 02:00:00:00:00:01 → :02, no VLAN, ports 9000 → 9001, DSCP 0,
    /// TTL 64, zero payload. `validate` still checks the families.
    pub fn new(kind: TemplateKind, src_ip: IpAddr, dst_ip: IpAddr) -> Self {
        TemplateSpec {
            kind,
            dst_mac: [0x02, 0, 0, 0, 0, 0x02],
            src_mac: [0x02, 0, 0, 0, 0, 0x01],
            vlan: None,
            src_ip,
            dst_ip,
            src_port: 9000,
            dst_port: 9001,
            dscp: 0,
            ttl: DEFAULT_TTL,
            payload: Payload::Zero,
        }
    }

    /// Checks the address families, VLAN, DSCP and payload.
    pub fn validate(&self) -> Result<(), TemplateError> {
        for (which, addr) in [("source", self.src_ip), ("destination", self.dst_ip)] {
            if addr.is_ipv6() != self.kind.is_v6() {
                return Err(TemplateError::FamilyMismatch {
                    kind: self.kind,
                    which,
                    addr,
                });
            }
        }
        if let Some(v) = self.vlan {
            if v.id > VLAN_ID_MAX {
                return Err(TemplateError::VlanId { id: v.id });
            }
            if v.pcp > VLAN_PCP_MAX {
                return Err(TemplateError::VlanPcp { pcp: v.pcp });
            }
        }
        if self.dscp > DSCP_MAX {
            return Err(TemplateError::Dscp { dscp: self.dscp });
        }
        if matches!(&self.payload, Payload::Bytes(b) if b.is_empty()) {
            return Err(TemplateError::EmptyPayload);
        }
        Ok(())
    }

    /// Where each field sits.
    pub fn layout(&self) -> Layout {
        let kind = self.kind;
        let l3 = ETH_HLEN + if self.vlan.is_some() { VLAN_HLEN } else { 0 };
        let l4 = l3 + kind.l3_hlen();
        let v6 = kind.is_v6();
        let is_udp = matches!(kind, TemplateKind::Udp4 | TemplateKind::Udp6);
        let is_tcp = matches!(kind, TemplateKind::TcpSyn4 | TemplateKind::TcpSyn6);
        let icmp = kind.is_icmp();
        Layout {
            l3,
            l4,
            payload: l4 + kind.l4_hlen(),
            // IPv4: total length at byte 2, checksum at 10, addresses at 12 and 16
            // (RFC 791 §3.1). IPv6: payload length at 4, addresses at 8 and 24 (RFC 8200 §3).
            ip_len: l3 + if v6 { 4 } else { 2 },
            ip_csum: (!v6).then_some(l3 + 10),
            src_ip: l3 + if v6 { 8 } else { 12 },
            dst_ip: l3 + if v6 { 24 } else { 16 },
            addr_len: if v6 { 16 } else { 4 },
            // UDP: ports at 0 and 2, length at 4, checksum at 6 (RFC 768). TCP: ports at 0
            // and 2, checksum at 16 (RFC 9293 §3.1). ICMP echo: checksum at 2, identifier
            // at 4 (RFC 792, RFC 4443 §4.1).
            udp_len: is_udp.then_some(l4 + 4),
            src_port: (!icmp).then_some(l4),
            dst_port: (!icmp).then_some(l4 + 2),
            icmp_id: icmp.then_some(l4 + 4),
            l4_csum: l4
                + if is_udp {
                    6
                } else if is_tcp {
                    16
                } else {
                    2
                },
            l4_csum_covers_pseudo: kind != TemplateKind::Icmp4,
            udp_zero_is_ffff: is_udp,
        }
    }

    /// The smallest size (FCS included) this template can have: its headers + FCS, and
    /// never below 64.
    pub fn min_size(&self) -> usize {
        (self.layout().payload + FCS_LEN).max(MIN_FRAME_WITH_FCS)
    }

    /// Builds the frame for `size` (FCS included): `size - 4` bytes, headers, payload and
    /// every checksum filled in.
    pub fn build(&self, size: usize) -> Result<Vec<u8>, TemplateError> {
        self.validate()?;
        let min = self.min_size();
        if size < min {
            return Err(TemplateError::SizeTooSmall {
                kind: self.kind,
                size,
                min,
            });
        }
        if size > MAX_FRAME_WITH_FCS {
            return Err(TemplateError::SizeTooLarge {
                size,
                max: MAX_FRAME_WITH_FCS,
            });
        }
        let lay = self.layout();
        let len = size - FCS_LEN;
        let mut f = vec![0u8; len];

        // Ethernet (IEEE 802.3) and the optional 802.1Q tag.
        f[0..6].copy_from_slice(&self.dst_mac);
        f[6..12].copy_from_slice(&self.src_mac);
        if let Some(v) = self.vlan {
            f[12..14].copy_from_slice(&ETHERTYPE_VLAN.to_be_bytes());
            f[14..16].copy_from_slice(&v.tci().to_be_bytes());
        }
        let ethertype = if self.kind.is_v6() {
            ETHERTYPE_IPV6
        } else {
            ETHERTYPE_IPV4
        };
        f[lay.l3 - 2..lay.l3].copy_from_slice(&ethertype.to_be_bytes());

        self.payload.fill(&mut f[lay.payload..]);
        let l4_len = len - lay.l4;
        let proto = self.kind.ip_proto();
        let tos = self.dscp << 2; // DSCP is the top 6 bits; ECN (low 2) stays 0

        // The L4 header, checksum field zero for now.
        {
            let l4 = &mut f[lay.l4..lay.payload];
            match self.kind {
                TemplateKind::Udp4 | TemplateKind::Udp6 => {
                    l4[0..2].copy_from_slice(&self.src_port.to_be_bytes());
                    l4[2..4].copy_from_slice(&self.dst_port.to_be_bytes());
                    // At most 9018 − 14 − 20 bytes (MAX_FRAME_WITH_FCS), fits 16 bits.
                    l4[4..6].copy_from_slice(&(l4_len as u16).to_be_bytes());
                }
                TemplateKind::TcpSyn4 | TemplateKind::TcpSyn6 => {
                    l4[0..2].copy_from_slice(&self.src_port.to_be_bytes());
                    l4[2..4].copy_from_slice(&self.dst_port.to_be_bytes());
                    l4[4..8].copy_from_slice(&TCP_SYN_SEQ.to_be_bytes());
                    // Acknowledgment number 0 (no ACK flag). Data offset in 32-bit words.
                    l4[12] = ((TCP_SYN_HLEN / 4) as u8) << 4;
                    l4[13] = 0x02; // flags: SYN only
                    l4[14..16].copy_from_slice(&TCP_SYN_WINDOW.to_be_bytes());
                    // Urgent pointer 0. Option: MSS, kind 2, length 4 (RFC 9293 §3.2).
                    let mss = if self.kind.is_v6() {
                        TCP_MSS_V6
                    } else {
                        TCP_MSS_V4
                    };
                    l4[20] = 2;
                    l4[21] = 4;
                    l4[22..24].copy_from_slice(&mss.to_be_bytes());
                }
                TemplateKind::Icmp4 | TemplateKind::Icmp6 => {
                    l4[0] = if self.kind.is_v6() {
                        ICMPV6_ECHO_REQUEST
                    } else {
                        ICMP_ECHO_REQUEST
                    };
                    l4[1] = 0; // code
                    l4[4..6].copy_from_slice(&self.src_port.to_be_bytes());
                    l4[6..8].copy_from_slice(&ICMP_ECHO_SEQ.to_be_bytes());
                }
            }
        }

        // The IP header, and the pseudo-header sum the L4 checksum starts from.
        let pseudo = match (self.src_ip, self.dst_ip) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => {
                let (src, dst) = (src.octets(), dst.octets());
                let h = &mut f[lay.l3..lay.l4];
                h[0] = 0x45; // version 4, IHL 5 (no options)
                h[1] = tos;
                h[2..4].copy_from_slice(&((len - lay.l3) as u16).to_be_bytes());
                // Identification 0 is fine with DF set (RFC 6864 §4.1).
                h[6..8].copy_from_slice(&0x4000u16.to_be_bytes()); // DF
                h[8] = self.ttl;
                h[9] = proto;
                h[12..16].copy_from_slice(&src);
                h[16..20].copy_from_slice(&dst);
                let ck = checksum::checksum(h, 0);
                h[10..12].copy_from_slice(&ck.to_be_bytes());
                checksum::pseudo_v4(src, dst, proto, l4_len as u16)
            }
            (IpAddr::V6(src), IpAddr::V6(dst)) => {
                let (src, dst) = (src.octets(), dst.octets());
                let h = &mut f[lay.l3..lay.l4];
                // Version 6, traffic class, flow label 0 (RFC 8200 §3).
                h[0] = 0x60 | (tos >> 4);
                h[1] = (tos & 0x0f) << 4;
                h[4..6].copy_from_slice(&(l4_len as u16).to_be_bytes());
                h[6] = proto;
                h[7] = self.ttl;
                h[8..24].copy_from_slice(&src);
                h[24..40].copy_from_slice(&dst);
                checksum::pseudo_v6(src, dst, proto, l4_len as u32)
            }
            // validate() refused mixed families above.
            (src, _) => {
                return Err(TemplateError::FamilyMismatch {
                    kind: self.kind,
                    which: "source",
                    addr: src,
                })
            }
        };
        let initial = if lay.l4_csum_covers_pseudo { pseudo } else { 0 };
        let mut ck = checksum::checksum(&f[lay.l4..], initial);
        if ck == 0 && lay.udp_zero_is_ffff {
            ck = 0xffff; // RFC 768: a computed zero is sent as all ones
        }
        f[lay.l4_csum..lay.l4_csum + 2].copy_from_slice(&ck.to_be_bytes());
        Ok(f)
    }
}

/// Test helper for this module and `gen`: recomputes the IPv4 header checksum and the L4
/// checksum of `f` from scratch (fields zeroed, pseudo-header from the frame's own
/// addresses) and compares them with what the frame carries, exactly.
#[cfg(test)]
pub(crate) fn check_checksums(spec: &TemplateSpec, f: &[u8]) -> Result<(), String> {
    let lay = spec.layout();
    if f.len() < lay.payload {
        return Err(format!(
            "frame of {} bytes is shorter than its headers",
            f.len()
        ));
    }
    let be = |at: usize| u16::from_be_bytes([f[at], f[at + 1]]);
    let mut g = f.to_vec();
    if let Some(at) = lay.ip_csum {
        g[at..at + 2].copy_from_slice(&[0, 0]);
        let want = checksum::checksum(&g[lay.l3..lay.l4], 0);
        if be(at) != want {
            return Err(format!(
                "IPv4 header checksum {:#06x}, recomputed {want:#06x}",
                be(at)
            ));
        }
    }
    g[lay.l4_csum..lay.l4_csum + 2].copy_from_slice(&[0, 0]);
    let l4_len = f.len() - lay.l4;
    let src = &f[lay.src_ip..lay.src_ip + lay.addr_len];
    let dst = &f[lay.dst_ip..lay.dst_ip + lay.addr_len];
    let proto = spec.kind.ip_proto();
    let addr = |b: &[u8]| -> [u8; 16] {
        let mut a = [0u8; 16];
        a[..b.len()].copy_from_slice(b);
        a
    };
    let (s, d) = (addr(src), addr(dst));
    let pseudo = if !lay.l4_csum_covers_pseudo {
        0
    } else if lay.addr_len == 16 {
        checksum::pseudo_v6(s, d, proto, l4_len as u32)
    } else {
        let v4 = |a: [u8; 16]| [a[0], a[1], a[2], a[3]];
        checksum::pseudo_v4(v4(s), v4(d), proto, l4_len as u16)
    };
    let mut want = checksum::checksum(&g[lay.l4..], pseudo);
    if want == 0 && lay.udp_zero_is_ffff {
        want = 0xffff;
    }
    if be(lay.l4_csum) != want {
        return Err(format!(
            "{} checksum {:#06x}, recomputed {want:#06x}",
            spec.kind,
            be(lay.l4_csum)
        ));
    }
    if checksum::sum(&f[lay.l4..], pseudo) != 0xffff {
        return Err(format!("{} checksum does not verify by summing", spec.kind));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{NetSlice, SlicedPacket, TransportSlice, VlanSlice};
    use std::net::{Ipv4Addr, Ipv6Addr};

    const V4_SRC: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const V4_DST: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 2);
    const V6_SRC: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1);
    const V6_DST: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0xabcd, 2);

    fn spec(kind: TemplateKind, vlan: Option<Vlan>) -> TemplateSpec {
        let (s, d) = if kind.is_v6() {
            (IpAddr::V6(V6_SRC), IpAddr::V6(V6_DST))
        } else {
            (IpAddr::V4(V4_SRC), IpAddr::V4(V4_DST))
        };
        let mut t = TemplateSpec::new(kind, s, d);
        t.vlan = vlan;
        t.dscp = 46;
        t.ttl = 33;
        t.src_port = 1234;
        t.dst_port = 5678;
        t.payload = Payload::Pattern;
        t
    }

    #[test]
    fn udp4_64_bytes_exact() {
        let mut t = TemplateSpec::new(TemplateKind::Udp4, IpAddr::V4(V4_SRC), IpAddr::V4(V4_DST));
        t.src_port = 9000;
        t.dst_port = 9001;
        let f = t.build(64).unwrap();
        #[rustfmt::skip]
        let head: [u8; 42] = [
            2, 0, 0, 0, 0, 2,  2, 0, 0, 0, 0, 1,  0x08, 0x00,
            0x45, 0, 0, 46,  0, 0, 0x40, 0,  64, 17, 0, 0,  198, 18, 0, 1,  198, 19, 0, 2,
            0x23, 0x28, 0x23, 0x29, 0, 26, 0, 0,
        ];
        assert_eq!(f.len(), 60);
        let mut g = f.clone();
        g[24..26].copy_from_slice(&[0, 0]);
        g[40..42].copy_from_slice(&[0, 0]);
        assert_eq!(&g[..42], &head[..]);
        assert!(f[42..].iter().all(|&b| b == 0));
        assert_eq!(checksum::sum(&f[14..34], 0), 0xffff);
    }

    #[test]
    fn min_sizes() {
        let want = [
            (TemplateKind::Udp4, None, 64),
            (TemplateKind::Udp6, None, 14 + 40 + 8 + 4),
            (TemplateKind::Udp6, Some(()), 18 + 40 + 8 + 4),
            (TemplateKind::TcpSyn4, None, 64),
            (TemplateKind::TcpSyn4, Some(()), 18 + 20 + 24 + 4),
            (TemplateKind::TcpSyn6, None, 14 + 40 + 24 + 4),
            (TemplateKind::TcpSyn6, Some(()), 18 + 40 + 24 + 4),
            (TemplateKind::Icmp4, Some(()), 64),
            (TemplateKind::Icmp6, None, 66),
            (TemplateKind::Icmp6, Some(()), 70),
        ];
        for (kind, vlan, min) in want {
            let t = spec(kind, vlan.map(|_| Vlan { id: 7, pcp: 3 }));
            assert_eq!(t.min_size(), min, "{kind} vlan={vlan:?}");
            assert_eq!(t.build(min).unwrap().len(), min - FCS_LEN);
            assert_eq!(
                t.build(min - 1),
                Err(TemplateError::SizeTooSmall {
                    kind,
                    size: min - 1,
                    min
                })
            );
        }
        let t = spec(TemplateKind::Udp4, None);
        assert!(matches!(
            t.build(MAX_FRAME_WITH_FCS + 1),
            Err(TemplateError::SizeTooLarge { .. })
        ));
        assert_eq!(
            t.build(MAX_FRAME_WITH_FCS).unwrap().len(),
            MAX_FRAME_WITH_FCS - 4
        );
    }

    /// Every kind × VLAN or not × a few sizes, read back by etherparse with every checksum
    /// recomputed from scratch.
    #[test]
    fn etherparse_reads_every_kind() {
        for kind in TemplateKind::ALL {
            for vlan in [None, Some(Vlan { id: 4094, pcp: 5 })] {
                let t = spec(kind, vlan);
                for size in [t.min_size(), 65, 128, 594, 1518, 9022] {
                    if size < t.min_size() {
                        continue;
                    }
                    check_frame(&t, &t.build(size).unwrap(), size);
                }
            }
        }
    }

    fn check_frame(t: &TemplateSpec, f: &[u8], size: usize) {
        let ctx = format!("{} vlan={:?} size={size}", t.kind, t.vlan);
        assert_eq!(f.len(), size - FCS_LEN, "{ctx}");
        let p = SlicedPacket::from_ethernet(f).unwrap_or_else(|e| panic!("{ctx}: {e}"));
        match (&p.vlan, t.vlan) {
            (Some(VlanSlice::SingleVlan(v)), Some(want)) => {
                assert_eq!(v.vlan_identifier().value(), want.id, "{ctx}");
                assert_eq!(v.priority_code_point().value(), want.pcp, "{ctx}");
            }
            (None, None) => {}
            (other, _) => panic!("{ctx}: VLAN {other:?}"),
        }
        let lay = t.layout();
        let l4_len = f.len() - lay.l4;
        let payload_len = match &p.net {
            Some(NetSlice::Ipv4(ip)) => {
                let h = ip.header();
                assert!(!t.kind.is_v6(), "{ctx}");
                assert_eq!(IpAddr::V4(h.source_addr()), t.src_ip, "{ctx}");
                assert_eq!(IpAddr::V4(h.destination_addr()), t.dst_ip, "{ctx}");
                assert_eq!(h.ttl(), t.ttl, "{ctx}");
                assert_eq!(h.dcp().value(), t.dscp, "{ctx}");
                assert!(h.dont_fragment(), "{ctx}");
                assert_eq!(h.protocol().0, t.kind.ip_proto(), "{ctx}");
                assert_eq!(h.total_len() as usize, f.len() - lay.l3, "{ctx}");
                assert_eq!(
                    h.to_header().calc_header_checksum(),
                    h.header_checksum(),
                    "{ctx}: IPv4 header checksum"
                );
                ip.payload().payload.len()
            }
            Some(NetSlice::Ipv6(ip)) => {
                let h = ip.header();
                assert!(t.kind.is_v6(), "{ctx}");
                assert_eq!(IpAddr::V6(h.source_addr()), t.src_ip, "{ctx}");
                assert_eq!(IpAddr::V6(h.destination_addr()), t.dst_ip, "{ctx}");
                assert_eq!(h.hop_limit(), t.ttl, "{ctx}");
                assert_eq!(h.traffic_class(), t.dscp << 2, "{ctx}");
                assert_eq!(h.flow_label().value(), 0, "{ctx}");
                assert_eq!(h.next_header().0, t.kind.ip_proto(), "{ctx}");
                assert_eq!(h.payload_length() as usize, l4_len, "{ctx}");
                ip.payload().payload.len()
            }
            other => panic!("{ctx}: not IP: {other:?}"),
        };
        assert_eq!(payload_len, l4_len, "{ctx}");
        let body = &f[lay.payload..];
        let mut want = vec![0u8; body.len()];
        t.payload.fill(&mut want);
        assert_eq!(body, &want[..], "{ctx}: payload");
        check_checksums(t, f).unwrap_or_else(|e| panic!("{ctx}: {e}"));
        match p.transport {
            Some(TransportSlice::Udp(u)) => {
                assert_eq!(u.source_port(), t.src_port, "{ctx}");
                assert_eq!(u.destination_port(), t.dst_port, "{ctx}");
                assert_eq!(u.length() as usize, l4_len, "{ctx}");
                let h = u.to_header();
                let calc = match &p.net {
                    Some(NetSlice::Ipv4(ip)) => {
                        h.calc_checksum_ipv4(&ip.header().to_header(), u.payload())
                    }
                    Some(NetSlice::Ipv6(ip)) => {
                        h.calc_checksum_ipv6(&ip.header().to_header(), u.payload())
                    }
                    _ => unreachable!(),
                }
                .unwrap();
                assert_eq!(u.checksum(), calc, "{ctx}: UDP checksum (etherparse)");
            }
            Some(TransportSlice::Tcp(tcp)) => {
                assert_eq!(tcp.source_port(), t.src_port, "{ctx}");
                assert_eq!(tcp.destination_port(), t.dst_port, "{ctx}");
                assert!(
                    tcp.syn() && !tcp.ack() && !tcp.fin() && !tcp.rst() && !tcp.psh(),
                    "{ctx}"
                );
                assert_eq!(tcp.sequence_number(), TCP_SYN_SEQ, "{ctx}");
                assert_eq!(tcp.window_size(), TCP_SYN_WINDOW, "{ctx}");
                assert_eq!(tcp.data_offset(), 6, "{ctx}");
                let mss = if t.kind.is_v6() {
                    TCP_MSS_V6
                } else {
                    TCP_MSS_V4
                };
                assert_eq!(tcp.options(), &[2, 4, (mss >> 8) as u8, mss as u8], "{ctx}");
                let h = tcp.to_header();
                let calc = match &p.net {
                    Some(NetSlice::Ipv4(ip)) => {
                        h.calc_checksum_ipv4(&ip.header().to_header(), tcp.payload())
                    }
                    Some(NetSlice::Ipv6(ip)) => {
                        h.calc_checksum_ipv6(&ip.header().to_header(), tcp.payload())
                    }
                    _ => unreachable!(),
                }
                .unwrap();
                assert_eq!(tcp.checksum(), calc, "{ctx}: TCP checksum (etherparse)");
            }
            Some(TransportSlice::Icmpv4(icmp)) => {
                assert_eq!(
                    icmp.icmp_type(),
                    etherparse::Icmpv4Type::EchoRequest(etherparse::IcmpEchoHeader {
                        id: t.src_port,
                        seq: ICMP_ECHO_SEQ
                    }),
                    "{ctx}"
                );
                let calc = icmp.icmp_type().calc_checksum(icmp.payload());
                assert_eq!(icmp.checksum(), calc, "{ctx}: ICMP checksum (etherparse)");
            }
            Some(TransportSlice::Icmpv6(icmp)) => {
                assert_eq!(
                    icmp.icmp_type(),
                    etherparse::Icmpv6Type::EchoRequest(etherparse::IcmpEchoHeader {
                        id: t.src_port,
                        seq: ICMP_ECHO_SEQ
                    }),
                    "{ctx}"
                );
                let (IpAddr::V6(s), IpAddr::V6(d)) = (t.src_ip, t.dst_ip) else {
                    unreachable!()
                };
                let calc = icmp
                    .icmp_type()
                    .calc_checksum(s.octets(), d.octets(), icmp.payload())
                    .unwrap();
                assert_eq!(icmp.checksum(), calc, "{ctx}: ICMPv6 checksum (etherparse)");
            }
            other => panic!("{ctx}: transport {other:?}"),
        }
        // The receiver's check: the L4 bytes plus pseudo-header sum to all ones.
        let src = &f[lay.src_ip..lay.src_ip + lay.addr_len];
        let dst = &f[lay.dst_ip..lay.dst_ip + lay.addr_len];
        let pseudo = match t.kind {
            TemplateKind::Icmp4 => 0,
            k if k.is_v6() => checksum::pseudo_v6(
                src.try_into().unwrap(),
                dst.try_into().unwrap(),
                k.ip_proto(),
                l4_len as u32,
            ),
            k => checksum::pseudo_v4(
                src.try_into().unwrap(),
                dst.try_into().unwrap(),
                k.ip_proto(),
                l4_len as u16,
            ),
        };
        assert_eq!(checksum::sum(&f[lay.l4..], pseudo), 0xffff, "{ctx}");
    }

    #[test]
    fn payload_kinds_fill() {
        let mut b = [9u8; 300];
        Payload::Pattern.fill(&mut b);
        assert_eq!((b[0], b[1], b[255], b[256], b[299]), (0, 1, 255, 0, 43));
        Payload::Bytes(b"abc".to_vec()).fill(&mut b[..7]);
        assert_eq!(&b[..7], b"abcabca");
        Payload::Zero.fill(&mut b);
        assert!(b.iter().all(|&x| x == 0));
        for kind in TemplateKind::ALL {
            let mut t = spec(kind, None);
            t.payload = Payload::Bytes(vec![0xde, 0xad, 0xbe]);
            check_frame(&t, &t.build(200).unwrap(), 200);
            t.payload = Payload::Zero;
            check_frame(&t, &t.build(201).unwrap(), 201);
        }
    }

    #[test]
    fn udp_zero_checksum_is_sent_as_ffff() {
        // Walk the source port until the checksum computes to zero (one port in 65535 does:
        // each step adds one to the sum), then check it went out as 0xffff.
        for kind in [TemplateKind::Udp4, TemplateKind::Udp6] {
            let mut t = spec(kind, None);
            let lay = t.layout();
            let hit = (0..=u16::MAX).find(|&p| {
                t.src_port = p;
                let f = t.build(64.max(t.min_size())).unwrap();
                f[lay.l4_csum..lay.l4_csum + 2] == [0xff, 0xff]
            });
            assert!(hit.is_some(), "{kind}: some port gives a zero checksum");
            let f = t.build(t.min_size()).unwrap();
            check_frame(&t, &f, t.min_size());
        }
    }

    #[test]
    fn bytes_for_tcp_and_icmp_headers() {
        let t = spec(TemplateKind::TcpSyn4, Some(Vlan { id: 100, pcp: 5 }));
        let f = t.build(70).unwrap();
        assert_eq!(&f[12..18], &[0x81, 0x00, 0xa0, 100, 0x08, 0x00]); // pcp 5 → 0xa0 00
        assert_eq!(f[19], 46 << 2, "TOS = DSCP << 2");
        let tcp = &f[38..62];
        assert_eq!(&tcp[4..8], b"skif");
        assert_eq!(&tcp[12..16], &[0x60, 0x02, 0xfa, 0xf0]); // doff 6, SYN, 64240
        assert_eq!(&tcp[20..24], &[2, 4, 0x05, 0xb4]); // MSS 1460
        let t = spec(TemplateKind::Icmp6, None);
        let f = t.build(66).unwrap();
        assert_eq!(
            &f[14..16],
            &[0x6b, 0x80],
            "version 6, traffic class 0xb8 (EF)"
        );
        assert_eq!(&f[54..56], &[128, 0]);
        assert_eq!(&f[58..62], &[0x04, 0xd2, 0, 0], "id 1234, seq 0");
    }

    #[test]
    fn validation_errors_name_the_problem() {
        let mut t = spec(TemplateKind::Udp6, None);
        t.dst_ip = IpAddr::V4(V4_DST);
        let e = t.build(100).unwrap_err();
        assert_eq!(
            e.to_string(),
            "destination address 198.19.0.2 is not IPv6, which template udp6 needs (e.g. 2001:2::1)"
        );
        let mut t = spec(TemplateKind::Icmp4, Some(Vlan { id: 4095, pcp: 0 }));
        assert_eq!(t.validate(), Err(TemplateError::VlanId { id: 4095 }));
        t.vlan = Some(Vlan { id: 1, pcp: 8 });
        assert_eq!(t.validate(), Err(TemplateError::VlanPcp { pcp: 8 }));
        t.vlan = None;
        t.dscp = 64;
        assert_eq!(t.validate(), Err(TemplateError::Dscp { dscp: 64 }));
        t.dscp = 0;
        t.payload = Payload::Bytes(vec![]);
        assert_eq!(t.validate(), Err(TemplateError::EmptyPayload));
        assert!(t.build(64).is_err());
    }

    #[test]
    fn parsers() {
        for k in TemplateKind::ALL {
            assert_eq!(TemplateKind::parse(k.name()), Some(k));
            assert_eq!(k.name().parse::<TemplateKind>(), Ok(k));
        }
        for bad in ["", "udp", "UDP4", "tcp6", "tcp-syn", "icmp"] {
            assert_eq!(TemplateKind::parse(bad), None);
            let e = bad.parse::<TemplateKind>().unwrap_err().to_string();
            assert!(e.contains(&format!("{bad:?}")) && e.contains("e.g."), "{e}");
        }
        let good = [
            ("zero", Payload::Zero),
            ("pattern", Payload::Pattern),
            ("text:hello", Payload::Bytes(b"hello".to_vec())),
            ("text:a:b", Payload::Bytes(b"a:b".to_vec())),
            ("hex:deadBEEF", Payload::Bytes(vec![0xde, 0xad, 0xbe, 0xef])),
            ("hex:00", Payload::Bytes(vec![0])),
        ];
        for (s, want) in good {
            assert_eq!(Payload::parse(s), Ok(want), "{s}");
        }
        for (bad, why) in [
            ("", "unknown payload kind"),
            ("zeros", "unknown payload kind"),
            ("text:", "no text"),
            ("hex:", "no hex digits"),
            ("hex:abc", "odd number"),
            ("hex:zz", "'z' is not a hex digit"),
            ("hex:de ad", "' ' is not a hex digit"),
            ("hex:ÿÿ", "not a hex digit"),
        ] {
            let e = Payload::parse(bad).unwrap_err().to_string();
            assert!(
                e.contains(why) && e.contains("hex:deadbeef"),
                "{bad:?}: {e}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn any_spec_builds_valid_frames(
            k in 0usize..6, size in 64usize..1600, vlan in proptest::option::of((0u16..=4094, 0u8..=7)),
            sport in proptest::num::u16::ANY, dport in proptest::num::u16::ANY,
            dscp in 0u8..=63, ttl in proptest::num::u8::ANY,
            a in proptest::num::u128::ANY, b in proptest::num::u128::ANY,
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 1..40),
        ) {
            let kind = TemplateKind::ALL[k];
            let mut t = spec(kind, vlan.map(|(id, pcp)| Vlan { id, pcp }));
            if kind.is_v6() {
                t.src_ip = IpAddr::V6(Ipv6Addr::from(a));
                t.dst_ip = IpAddr::V6(Ipv6Addr::from(b));
            } else {
                t.src_ip = IpAddr::V4(Ipv4Addr::from(a as u32));
                t.dst_ip = IpAddr::V4(Ipv4Addr::from(b as u32));
            }
            t.src_port = sport;
            t.dst_port = dport;
            t.dscp = dscp;
            t.ttl = ttl;
            t.payload = Payload::Bytes(bytes);
            let size = size.max(t.min_size());
            check_frame(&t, &t.build(size).unwrap(), size);
        }
    }
}
