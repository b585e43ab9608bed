//! Neighbour resolution on the wire: ARP for IPv4 over Ethernet (RFC 826) and IPv6
//! Neighbor Discovery's Neighbor Solicitation / Advertisement (RFC 4861 §4.3, §4.4) with
//! the source / target link-layer address options (§4.6.1), plus the solicited-node
//! multicast address (RFC 4291 §2.7.1) and the Ethernet mapping of IPv6 multicast
//! (RFC 2464 §7).
//!
//! [`parse_frame`] takes a whole received Ethernet frame (one 802.1Q / 802.1ad tag is
//! skipped), never panics, and tells three cases apart: not ARP/NDP at all (`Ok(None)`), a
//! well-formed message, or an ARP/NDP message that fails a validity check, with the reason
//! ([`NeighInvalid`]). The checks are the kernel's: `arp_rcv` / `arp_process`
//! (net/ipv4/arp.c) for ARP; `icmpv6_rcv`'s checksum, `ndisc_rcv`'s hop limit and code, and
//! `ndisc_recv_ns` / `ndisc_recv_na` (net/ipv6/ndisc.c) for NDP, which are RFC 4861
//! §7.1.1 / §7.1.2. [`build_frame`] emits complete frames, every checksum filled in.
//!
//! Router Solicitation / Advertisement and Redirect are NDP too but are not handled here:
//! they come back as `Ok(None)` (skiff configures its routes, it does not learn them).

use super::{
    checksum, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_QINQ, ETHERTYPE_VLAN,
    ETH_HLEN, IPPROTO_ICMPV6, VLAN_HLEN,
};

/// ARP message length for Ethernet/IPv4: 8 fixed bytes (hrd, pro, hln, pln, op) + two
/// 6-byte hardware and two 4-byte protocol addresses (RFC 826; `arp_hdr_len` in
/// include/linux/if_arp.h for a 6-byte `addr_len`).
pub const ARP_LEN: usize = 8 + 2 * 6 + 2 * 4;
/// An ARP frame as the kernel sends it: Ethernet header + [`ARP_LEN`] = 42 bytes. The
/// kernel's `arp_create` does not pad to the 60-byte minimum; the driver (or NIC) does.
pub const ARP_FRAME_LEN: usize = ETH_HLEN + ARP_LEN;
/// ARP hardware type Ethernet (`ARPHRD_ETHER`, include/uapi/linux/if_arp.h).
pub const ARPHRD_ETHER: u16 = 1;
/// ARP hardware type IEEE 802; `arp_process` accepts it on Ethernet too (RFC 2625).
pub const ARPHRD_IEEE802: u16 = 6;
/// ARP request opcode (RFC 826, `ARPOP_REQUEST`).
pub const ARPOP_REQUEST: u16 = 1;
/// ARP reply opcode (RFC 826, `ARPOP_REPLY`).
pub const ARPOP_REPLY: u16 = 2;
/// The Ethernet broadcast address, where ARP requests go (`dev->broadcast`).
pub const BROADCAST_MAC: [u8; 6] = [0xff; 6];
/// IPv6 fixed header length (RFC 8200 §3).
pub const IPV6_HLEN: usize = 40;
/// Hop limit every NDP message is sent with and must arrive with (RFC 4861 §7.1.1,
/// §7.1.2: "The IP Hop Limit field has a value of 255", proving it was not forwarded).
pub const ND_HOP_LIMIT: u8 = 255;
/// ICMPv6 Neighbor Solicitation type (RFC 4861 §4.3).
pub const ICMPV6_NEIGHBOR_SOLICIT: u8 = 135;
/// ICMPv6 Neighbor Advertisement type (RFC 4861 §4.4).
pub const ICMPV6_NEIGHBOR_ADVERT: u8 = 136;
/// NS / NA message without options: type, code, checksum, 4 bytes of flags/reserved and
/// the 16-byte target (RFC 4861 §4.3, §4.4; `struct nd_msg`). Shorter is invalid (§7.1.1:
/// "ICMP length ... is 24 or more octets").
pub const ND_MSG_LEN: usize = 24;
/// Source Link-Layer Address option type (RFC 4861 §4.6.1).
pub const ND_OPT_SOURCE_LLADDR: u8 = 1;
/// Target Link-Layer Address option type (RFC 4861 §4.6.1).
pub const ND_OPT_TARGET_LLADDR: u8 = 2;
/// A link-layer address option for Ethernet: type, length (in 8-byte units) and the 6-byte
/// MAC, 8 bytes in all (RFC 2464 §6; `ndisc_opt_addr_space` = `NDISC_OPT_SPACE(6)`).
pub const ND_LLADDR_OPT_LEN: usize = 8;
/// NA Router flag, the top bit of the first flags byte (RFC 4861 §4.4).
pub const NA_FLAG_ROUTER: u8 = 0x80;
/// NA Solicited flag (RFC 4861 §4.4).
pub const NA_FLAG_SOLICITED: u8 = 0x40;
/// NA Override flag (RFC 4861 §4.4).
pub const NA_FLAG_OVERRIDE: u8 = 0x20;
/// The link-local all-nodes group ff02::1 (RFC 4291 §2.7.1), where an NA answering a
/// duplicate-address-detection probe goes (RFC 4861 §7.2.4; `in6addr_linklocal_allnodes`).
pub const IPV6_ALL_NODES: [u8; 16] = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
/// The solicited-node prefix ff02::1:ff00:0/104 (RFC 4291 §2.7.1).
const SOLICITED_NODE_PREFIX: [u8; 13] = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff];

/// Why an ARP or NDP message was rejected. Counted by reason, never a panic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NeighInvalid {
    /// Shorter than its Ethernet / ARP / IPv6 / ICMPv6 header, or the IPv6 payload length
    /// runs past the frame.
    Truncated,
    /// ARP hardware type not Ethernet / IEEE 802, or a hardware address length other than
    /// 6 (`arp_rcv`, `arp_process`).
    ArpHardware,
    /// ARP protocol type not IPv4, or a protocol address length other than 4.
    ArpProtocol,
    /// ARP opcode neither request nor reply ("Understand only these message types").
    ArpOp,
    /// ARP target address multicast or loopback (`arp_process`: "bad requests for
    /// 127.x.x.x and requests for multicast addresses").
    ArpTarget,
    /// IPv6 version field not 6, or a multicast source (`ipv6_rcv` drops those, RFC 4291
    /// §2.7: "Multicast addresses must not be used as source addresses").
    Ipv6Header,
    /// Hop limit not 255 (RFC 4861 §7.1.1; `ndisc_rcv` "invalid hop-limit").
    HopLimit,
    /// ICMPv6 checksum wrong (RFC 4861 §7.1.1; `icmpv6_rcv`).
    Checksum,
    /// ICMPv6 code not 0 (RFC 4861 §7.1.1; `ndisc_rcv` "invalid ICMPv6 code").
    IcmpCode,
    /// NS / NA shorter than 24 bytes ("packet too short").
    ShortMessage,
    /// Target address is multicast ("multicast target address").
    MulticastTarget,
    /// An option of length 0 or running past the message (`ndisc_parse_options`), or a
    /// link-layer address option that is not 8 bytes ("invalid link-layer address length").
    BadOption,
    /// NS from the unspecified address (duplicate address detection) not sent to a
    /// solicited-node group, or carrying a source link-layer address option (RFC 4861
    /// §7.1.1; "bad DAD packet").
    BadDad,
    /// NA with the Solicited flag sent to a multicast address (RFC 4861 §7.1.2; "solicited
    /// NA is multicasted").
    SolicitedMulticast,
}

impl NeighInvalid {
    /// All reasons, in report order.
    pub const ALL: [NeighInvalid; 14] = [
        NeighInvalid::Truncated,
        NeighInvalid::ArpHardware,
        NeighInvalid::ArpProtocol,
        NeighInvalid::ArpOp,
        NeighInvalid::ArpTarget,
        NeighInvalid::Ipv6Header,
        NeighInvalid::HopLimit,
        NeighInvalid::Checksum,
        NeighInvalid::IcmpCode,
        NeighInvalid::ShortMessage,
        NeighInvalid::MulticastTarget,
        NeighInvalid::BadOption,
        NeighInvalid::BadDad,
        NeighInvalid::SolicitedMulticast,
    ];

    /// Counter name.
    pub fn name(self) -> &'static str {
        match self {
            NeighInvalid::Truncated => "truncated",
            NeighInvalid::ArpHardware => "arp_hardware",
            NeighInvalid::ArpProtocol => "arp_protocol",
            NeighInvalid::ArpOp => "arp_op",
            NeighInvalid::ArpTarget => "arp_target",
            NeighInvalid::Ipv6Header => "ipv6_header",
            NeighInvalid::HopLimit => "hop_limit",
            NeighInvalid::Checksum => "checksum",
            NeighInvalid::IcmpCode => "icmp_code",
            NeighInvalid::ShortMessage => "short_message",
            NeighInvalid::MulticastTarget => "multicast_target",
            NeighInvalid::BadOption => "bad_option",
            NeighInvalid::BadDad => "bad_dad",
            NeighInvalid::SolicitedMulticast => "solicited_multicast",
        }
    }
}

/// A VLAN tag as it was on the wire: the tag protocol (0x8100 or 0x88a8) and the TCI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VlanTag {
    /// Tag protocol identifier.
    pub tpid: u16,
    /// Tag control information (priority, DEI, VLAN ID).
    pub tci: u16,
}

/// The Ethernet header of a frame: addresses and the tag, if there was one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthInfo {
    /// Destination MAC.
    pub dst: [u8; 6],
    /// Source MAC.
    pub src: [u8; 6],
    /// The one VLAN tag skipped, if any.
    pub vlan: Option<VlanTag>,
}

/// ARP operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArpOp {
    /// Who has `target_ip`? Tell `sender_ip`.
    Request,
    /// `sender_ip` is at `sender_mac`.
    Reply,
}

/// An ARP message for Ethernet/IPv4 (RFC 826), the fields `arp_process` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpRepr {
    /// Request or reply.
    pub op: ArpOp,
    /// Sender hardware address (`sha`).
    pub sender_mac: [u8; 6],
    /// Sender protocol address (`sip`).
    pub sender_ip: [u8; 4],
    /// Target hardware address (`tha`; zero in a request, `arp_create`).
    pub target_mac: [u8; 6],
    /// Target protocol address (`tip`).
    pub target_ip: [u8; 4],
}

impl ArpRepr {
    /// Parses an ARP message (the bytes after the Ethernet header; trailing padding is
    /// ignored), with the checks of `arp_rcv` and `arp_process`.
    pub fn parse(b: &[u8]) -> Result<ArpRepr, NeighInvalid> {
        let h = b.get(..ARP_LEN).ok_or(NeighInvalid::Truncated)?;
        let hrd = be16(h, 0).ok_or(NeighInvalid::Truncated)?;
        let pro = be16(h, 2).ok_or(NeighInvalid::Truncated)?;
        let (hln, pln) = (h[4], h[5]);
        if (hrd != ARPHRD_ETHER && hrd != ARPHRD_IEEE802) || hln != 6 {
            return Err(NeighInvalid::ArpHardware);
        }
        if pro != ETHERTYPE_IPV4 || pln != 4 {
            return Err(NeighInvalid::ArpProtocol);
        }
        let op = match be16(h, 6).ok_or(NeighInvalid::Truncated)? {
            ARPOP_REQUEST => ArpOp::Request,
            ARPOP_REPLY => ArpOp::Reply,
            _ => return Err(NeighInvalid::ArpOp),
        };
        let r = ArpRepr {
            op,
            sender_mac: arr(h, 8).ok_or(NeighInvalid::Truncated)?,
            sender_ip: arr(h, 14).ok_or(NeighInvalid::Truncated)?,
            target_mac: arr(h, 18).ok_or(NeighInvalid::Truncated)?,
            target_ip: arr(h, 24).ok_or(NeighInvalid::Truncated)?,
        };
        // ipv4_is_multicast (224/4) or ipv4_is_loopback (127/8) target: dropped.
        if r.target_ip[0] & 0xf0 == 0xe0 || r.target_ip[0] == 127 {
            return Err(NeighInvalid::ArpTarget);
        }
        Ok(r)
    }

    /// Writes the 28-byte message. Returns [`ARP_LEN`], or 0 if `out` is too short.
    pub fn emit(&self, out: &mut [u8]) -> usize {
        let Some(h) = out.get_mut(..ARP_LEN) else {
            return 0;
        };
        h[0..2].copy_from_slice(&ARPHRD_ETHER.to_be_bytes());
        h[2..4].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        h[4] = 6;
        h[5] = 4;
        let op = match self.op {
            ArpOp::Request => ARPOP_REQUEST,
            ArpOp::Reply => ARPOP_REPLY,
        };
        h[6..8].copy_from_slice(&op.to_be_bytes());
        h[8..14].copy_from_slice(&self.sender_mac);
        h[14..18].copy_from_slice(&self.sender_ip);
        h[18..24].copy_from_slice(&self.target_mac);
        h[24..28].copy_from_slice(&self.target_ip);
        ARP_LEN
    }
}

/// Neighbor Advertisement flags (RFC 4861 §4.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NaFlags {
    /// R: the sender is a router.
    pub router: bool,
    /// S: sent in response to a solicitation.
    pub solicited: bool,
    /// O: should override an existing cached link-layer address.
    pub overrides: bool,
}

impl NaFlags {
    fn from_byte(b: u8) -> NaFlags {
        NaFlags {
            router: b & NA_FLAG_ROUTER != 0,
            solicited: b & NA_FLAG_SOLICITED != 0,
            overrides: b & NA_FLAG_OVERRIDE != 0,
        }
    }

    fn to_byte(self) -> u8 {
        (if self.router { NA_FLAG_ROUTER } else { 0 })
            | (if self.solicited { NA_FLAG_SOLICITED } else { 0 })
            | (if self.overrides { NA_FLAG_OVERRIDE } else { 0 })
    }
}

/// A Neighbor Solicitation or Advertisement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NdMsg {
    /// Neighbor Solicitation (type 135).
    Solicit {
        /// The address being resolved.
        target: [u8; 16],
        /// The Source Link-Layer Address option, if present.
        source_lladdr: Option<[u8; 6]>,
    },
    /// Neighbor Advertisement (type 136).
    Advert {
        /// The address advertised.
        target: [u8; 16],
        /// R, S, O.
        flags: NaFlags,
        /// The Target Link-Layer Address option, if present.
        target_lladdr: Option<[u8; 6]>,
    },
}

impl NdMsg {
    /// The target address.
    pub fn target(&self) -> [u8; 16] {
        match *self {
            NdMsg::Solicit { target, .. } | NdMsg::Advert { target, .. } => target,
        }
    }

    /// The link-layer address option carried (source for NS, target for NA).
    pub fn lladdr(&self) -> Option<[u8; 6]> {
        match *self {
            NdMsg::Solicit { source_lladdr, .. } => source_lladdr,
            NdMsg::Advert { target_lladdr, .. } => target_lladdr,
        }
    }

    /// ICMPv6 message length: 24 bytes, plus 8 for the link-layer address option.
    pub fn icmp_len(&self) -> usize {
        ND_MSG_LEN
            + if self.lladdr().is_some() {
                ND_LLADDR_OPT_LEN
            } else {
                0
            }
    }
}

/// An NDP message with the IPv6 header fields that matter to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NdpRepr {
    /// IPv6 source (the unspecified address :: for duplicate address detection).
    pub src: [u8; 16],
    /// IPv6 destination.
    pub dst: [u8; 16],
    /// The message.
    pub msg: NdMsg,
}

impl NdpRepr {
    /// Parses an IPv6 packet (from the version field; trailing Ethernet padding beyond the
    /// payload length is ignored). `Ok(None)` when it is not ICMPv6 NS or NA (another
    /// next header, extension headers included, or another ICMPv6 type).
    pub fn parse(ip: &[u8]) -> Result<Option<NdpRepr>, NeighInvalid> {
        let h = ip.get(..IPV6_HLEN).ok_or(NeighInvalid::Truncated)?;
        if h[0] >> 4 != 6 {
            return Err(NeighInvalid::Ipv6Header);
        }
        if h[6] != IPPROTO_ICMPV6 {
            return Ok(None);
        }
        let payload = be16(h, 4).ok_or(NeighInvalid::Truncated)? as usize;
        let icmp = ip
            .get(IPV6_HLEN..IPV6_HLEN + payload)
            .ok_or(NeighInvalid::Truncated)?;
        let ty = *icmp.first().ok_or(NeighInvalid::Truncated)?;
        if ty != ICMPV6_NEIGHBOR_SOLICIT && ty != ICMPV6_NEIGHBOR_ADVERT {
            return Ok(None);
        }
        if icmp.len() < 4 {
            return Err(NeighInvalid::Truncated);
        }
        let src: [u8; 16] = arr(h, 8).ok_or(NeighInvalid::Truncated)?;
        let dst: [u8; 16] = arr(h, 24).ok_or(NeighInvalid::Truncated)?;
        if src[0] == 0xff {
            return Err(NeighInvalid::Ipv6Header);
        }
        // icmpv6_rcv validates the checksum before ndisc_rcv sees the message.
        let pseudo = checksum::pseudo_v6(src, dst, IPPROTO_ICMPV6, icmp.len() as u32);
        if checksum::sum(icmp, pseudo) != 0xffff {
            return Err(NeighInvalid::Checksum);
        }
        // ndisc_rcv: hop limit, then code.
        if h[7] != ND_HOP_LIMIT {
            return Err(NeighInvalid::HopLimit);
        }
        if icmp[1] != 0 {
            return Err(NeighInvalid::IcmpCode);
        }
        if icmp.len() < ND_MSG_LEN {
            return Err(NeighInvalid::ShortMessage);
        }
        let target: [u8; 16] = arr(icmp, 8).ok_or(NeighInvalid::ShortMessage)?;
        if target[0] == 0xff {
            return Err(NeighInvalid::MulticastTarget);
        }
        let opts = icmp.get(ND_MSG_LEN..).unwrap_or(&[]);
        let msg = if ty == ICMPV6_NEIGHBOR_SOLICIT {
            let dad = src == [0; 16];
            // RFC 4861 §7.1.1: DAD has to go to a solicited-node group.
            if dad && !is_solicited_node(dst) {
                return Err(NeighInvalid::BadDad);
            }
            let source_lladdr = parse_lladdr_option(opts, ND_OPT_SOURCE_LLADDR)?;
            // "If the IP source address is the unspecified address, there MUST NOT be
            // source link-layer address option in the message."
            if dad && source_lladdr.is_some() {
                return Err(NeighInvalid::BadDad);
            }
            NdMsg::Solicit {
                target,
                source_lladdr,
            }
        } else {
            let flags = NaFlags::from_byte(icmp[4]);
            // RFC 4861 §7.1.2: a multicast NA must not claim to be solicited.
            if dst[0] == 0xff && flags.solicited {
                return Err(NeighInvalid::SolicitedMulticast);
            }
            NdMsg::Advert {
                target,
                flags,
                target_lladdr: parse_lladdr_option(opts, ND_OPT_TARGET_LLADDR)?,
            }
        };
        Ok(Some(NdpRepr { src, dst, msg }))
    }

    /// Writes the IPv6 header (traffic class 0, flow label 0, hop limit 255, as
    /// `ndisc_send_skb` sends) and the ICMPv6 message with its checksum. Returns the bytes
    /// written, or 0 if `out` is too short.
    pub fn emit(&self, out: &mut [u8]) -> usize {
        let icmp_len = self.msg.icmp_len();
        let total = IPV6_HLEN + icmp_len;
        let Some(p) = out.get_mut(..total) else {
            return 0;
        };
        p.fill(0);
        p[0] = 0x60;
        p[4..6].copy_from_slice(&(icmp_len as u16).to_be_bytes());
        p[6] = IPPROTO_ICMPV6;
        p[7] = ND_HOP_LIMIT;
        p[8..24].copy_from_slice(&self.src);
        p[24..40].copy_from_slice(&self.dst);
        let icmp = &mut p[IPV6_HLEN..];
        let (ty, opt_ty) = match self.msg {
            NdMsg::Solicit { .. } => (ICMPV6_NEIGHBOR_SOLICIT, ND_OPT_SOURCE_LLADDR),
            NdMsg::Advert { flags, .. } => {
                icmp[4] = flags.to_byte();
                (ICMPV6_NEIGHBOR_ADVERT, ND_OPT_TARGET_LLADDR)
            }
        };
        icmp[0] = ty;
        icmp[8..24].copy_from_slice(&self.msg.target());
        if let Some(mac) = self.msg.lladdr() {
            icmp[24] = opt_ty;
            icmp[25] = (ND_LLADDR_OPT_LEN / 8) as u8;
            icmp[26..32].copy_from_slice(&mac);
        }
        let pseudo = checksum::pseudo_v6(self.src, self.dst, IPPROTO_ICMPV6, icmp_len as u32);
        let ck = checksum::checksum(icmp, pseudo);
        icmp[2..4].copy_from_slice(&ck.to_be_bytes());
        total
    }
}

/// An ARP or NDP message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NeighMsg {
    /// ARP (EtherType 0x0806).
    Arp(ArpRepr),
    /// NS or NA (IPv6, ICMPv6).
    Ndp(NdpRepr),
}

/// A received (or to-be-sent) ARP/NDP frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighFrame {
    /// The Ethernet header.
    pub eth: EthInfo,
    /// The message.
    pub msg: NeighMsg,
}

/// Reads the Ethernet header and one optional tag. Returns the header and the EtherType
/// and offset of what follows, or `None` if the frame is too short.
pub fn parse_eth(frame: &[u8]) -> Option<(EthInfo, u16, usize)> {
    let dst = arr(frame, 0)?;
    let src = arr(frame, 6)?;
    let mut ethertype = be16(frame, 12)?;
    let mut at = ETH_HLEN;
    let mut vlan = None;
    if ethertype == ETHERTYPE_VLAN || ethertype == ETHERTYPE_QINQ {
        vlan = Some(VlanTag {
            tpid: ethertype,
            tci: be16(frame, 14)?,
        });
        ethertype = be16(frame, 16)?;
        at += VLAN_HLEN;
    }
    Some((EthInfo { dst, src, vlan }, ethertype, at))
}

/// Parses a whole Ethernet frame. `Ok(None)`: not ARP and not IPv6 NS/NA (including a
/// frame too short to have an EtherType). `Err`: ARP/NDP that fails a validity check.
pub fn parse_frame(frame: &[u8]) -> Result<Option<NeighFrame>, NeighInvalid> {
    let Some((eth, ethertype, at)) = parse_eth(frame) else {
        return Ok(None);
    };
    let rest = frame.get(at..).unwrap_or(&[]);
    let msg = match ethertype {
        ETHERTYPE_ARP => NeighMsg::Arp(ArpRepr::parse(rest)?),
        ETHERTYPE_IPV6 => match NdpRepr::parse(rest)? {
            Some(n) => NeighMsg::Ndp(n),
            None => return Ok(None),
        },
        _ => return Ok(None),
    };
    Ok(Some(NeighFrame { eth, msg }))
}

/// Builds a complete frame (no FCS, no padding: 42 bytes for ARP, 86 for NS/NA with a
/// link-layer address option, 4 more with a tag).
pub fn build_frame(f: &NeighFrame) -> Vec<u8> {
    let tag = if f.eth.vlan.is_some() { VLAN_HLEN } else { 0 };
    let (ethertype, len) = match &f.msg {
        NeighMsg::Arp(_) => (ETHERTYPE_ARP, ARP_LEN),
        NeighMsg::Ndp(n) => (ETHERTYPE_IPV6, IPV6_HLEN + n.msg.icmp_len()),
    };
    let mut out = vec![0u8; ETH_HLEN + tag + len];
    out[0..6].copy_from_slice(&f.eth.dst);
    out[6..12].copy_from_slice(&f.eth.src);
    let mut at = 12;
    if let Some(v) = f.eth.vlan {
        out[12..14].copy_from_slice(&v.tpid.to_be_bytes());
        out[14..16].copy_from_slice(&v.tci.to_be_bytes());
        at += VLAN_HLEN;
    }
    out[at..at + 2].copy_from_slice(&ethertype.to_be_bytes());
    let body = &mut out[at + 2..];
    match &f.msg {
        NeighMsg::Arp(a) => a.emit(body),
        NeighMsg::Ndp(n) => n.emit(body),
    };
    out
}

/// The solicited-node multicast address of `addr`: ff02::1:ff00:0/104 followed by the low
/// 24 bits of the address (RFC 4291 §2.7.1; `addrconf_addr_solict_mult`).
pub fn solicited_node(addr: [u8; 16]) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..13].copy_from_slice(&SOLICITED_NODE_PREFIX);
    out[13..].copy_from_slice(&addr[13..]);
    out
}

/// Whether `addr` is a solicited-node multicast address (`ipv6_addr_is_solict_mult`).
pub fn is_solicited_node(addr: [u8; 16]) -> bool {
    addr[..13] == SOLICITED_NODE_PREFIX
}

/// The Ethernet address of an IPv6 multicast group: 33:33 followed by the group's last 32
/// bits (RFC 2464 §7; `ipv6_eth_mc_map`).
pub fn ipv6_multicast_mac(group: [u8; 16]) -> [u8; 6] {
    [0x33, 0x33, group[12], group[13], group[14], group[15]]
}

/// The Ethernet address an NS for `target` goes to: 33:33:ff:XX:XX:XX.
pub fn solicited_node_mac(target: [u8; 16]) -> [u8; 6] {
    ipv6_multicast_mac(solicited_node(target))
}

/// The Ethernet address of an IPv4 multicast group: 01:00:5e and the low 23 bits
/// (RFC 1112 §6.4; `ip_eth_mc_map` in include/net/ip.h).
pub fn ipv4_multicast_mac(group: [u8; 4]) -> [u8; 6] {
    [0x01, 0x00, 0x5e, group[1] & 0x7f, group[2], group[3]]
}

/// Walks the ND options (`ndisc_parse_options`): every option needs a nonzero length that
/// fits; unknown options are skipped; of repeated link-layer options the first counts
/// ("duplicated ND6 option found" is ignored). The wanted link-layer option must be 8
/// bytes for Ethernet (`ndisc_opt_addr_data`).
fn parse_lladdr_option(mut opts: &[u8], want: u8) -> Result<Option<[u8; 6]>, NeighInvalid> {
    let mut found = None;
    while !opts.is_empty() {
        let (Some(&ty), Some(&units)) = (opts.first(), opts.get(1)) else {
            return Err(NeighInvalid::BadOption);
        };
        let len = units as usize * 8;
        if len == 0 || len > opts.len() {
            return Err(NeighInvalid::BadOption);
        }
        if ty == want && found.is_none() {
            if len != ND_LLADDR_OPT_LEN {
                return Err(NeighInvalid::BadOption);
            }
            found = Some(arr(opts, 2).ok_or(NeighInvalid::BadOption)?);
        }
        opts = opts.get(len..).unwrap_or(&[]);
    }
    Ok(found)
}

#[inline]
fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([
        *b.get(at)?,
        *b.get(at.checked_add(1)?)?,
    ]))
}

#[inline]
fn arr<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..at.checked_add(N)?)?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
    const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];
    const V6_A: [u8; 16] = [
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0a,
    ];
    const V6_B: [u8; 16] = [
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0x12, 0x34, 0x56, 0x78,
    ];

    /// A broadcast ARP request, byte by byte: who has 198.18.0.2? tell 198.18.0.1.
    fn request_bytes() -> Vec<u8> {
        let mut f = vec![
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // dst: broadcast
            0x02, 0, 0, 0, 0, 0x0a, // src
            0x08, 0x06, // ARP
            0x00, 0x01, // hrd Ethernet
            0x08, 0x00, // pro IPv4
            6, 4, // hln, pln
            0x00, 0x01, // request
            0x02, 0, 0, 0, 0, 0x0a, // sha
            198, 18, 0, 1, // sip
            0, 0, 0, 0, 0, 0, // tha
            198, 18, 0, 2, // tip
        ];
        f.resize(60, 0); // Ethernet padding, as it arrives from a NIC
        f
    }

    #[test]
    fn arp_request_parses_and_round_trips() {
        let f = request_bytes();
        let p = parse_frame(&f).expect("valid").expect("is ARP");
        assert_eq!(p.eth.dst, BROADCAST_MAC);
        assert_eq!(p.eth.src, MAC_A);
        assert_eq!(p.eth.vlan, None);
        let want = ArpRepr {
            op: ArpOp::Request,
            sender_mac: MAC_A,
            sender_ip: [198, 18, 0, 1],
            target_mac: [0; 6],
            target_ip: [198, 18, 0, 2],
        };
        assert_eq!(p.msg, NeighMsg::Arp(want));
        let built = build_frame(&p);
        assert_eq!(built.len(), ARP_FRAME_LEN);
        assert_eq!(
            &built[..],
            &f[..ARP_FRAME_LEN],
            "emit gives the same bytes back"
        );
    }

    #[test]
    fn vlan_tag_is_skipped_and_kept() {
        let plain = request_bytes();
        let mut f = plain[..12].to_vec();
        f.extend_from_slice(&[0x81, 0x00, 0x20, 0x2a]); // 802.1Q, PCP 1, VID 42
        f.extend_from_slice(&plain[12..ARP_FRAME_LEN]);
        let p = parse_frame(&f).expect("valid").expect("is ARP");
        assert_eq!(
            p.eth.vlan,
            Some(VlanTag {
                tpid: 0x8100,
                tci: 0x202a
            })
        );
        assert_eq!(build_frame(&p), f);
    }

    #[test]
    fn arp_validity_checks() {
        let good = request_bytes();
        let cases: [(usize, u8, NeighInvalid); 7] = [
            (15, 0x02, NeighInvalid::ArpHardware), // hrd 2
            (18, 8, NeighInvalid::ArpHardware),    // hln 8
            (17, 0x06, NeighInvalid::ArpProtocol), // pro 0x0806
            (19, 16, NeighInvalid::ArpProtocol),   // pln 16
            (21, 3, NeighInvalid::ArpOp),          // RARP request
            (38, 224, NeighInvalid::ArpTarget),    // tip 224.18.0.2
            (38, 127, NeighInvalid::ArpTarget),    // tip 127.18.0.2
        ];
        for (at, v, why) in cases {
            let mut f = good.clone();
            f[at] = v;
            assert_eq!(parse_frame(&f), Err(why), "byte {at} = {v}");
        }
        // IEEE 802 hardware type is accepted (RFC 2625).
        let mut f = good.clone();
        f[15] = 6;
        assert!(parse_frame(&f).is_ok_and(|p| p.is_some()));
        // Every truncation inside the ARP message is a reason; before the EtherType it is
        // not ARP at all.
        for cut in 0..ARP_FRAME_LEN {
            let r = parse_frame(&good[..cut]);
            if cut < 14 {
                assert_eq!(r, Ok(None), "cut {cut}");
            } else {
                assert_eq!(r, Err(NeighInvalid::Truncated), "cut {cut}");
            }
        }
    }

    #[test]
    fn other_frames_are_not_neighbour_messages() {
        let mut f = request_bytes();
        f[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        assert_eq!(parse_frame(&f), Ok(None));
        // ICMPv6 echo request over IPv6: not NS/NA.
        let ns = ns_frame();
        let mut echo = ns.clone();
        echo[54] = 128;
        assert_eq!(parse_frame(&echo), Ok(None));
        // UDP over IPv6.
        let mut udp = ns;
        udp[20] = 17;
        assert_eq!(parse_frame(&udp), Ok(None));
    }

    #[test]
    fn solicited_node_address_and_mac() {
        // RFC 4291 §2.7.1: 2001:db8::1234:5678 → ff02::1:ff34:5678.
        let sn = solicited_node(V6_B);
        assert_eq!(
            sn,
            [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0x34, 0x56, 0x78]
        );
        assert!(is_solicited_node(sn));
        assert!(!is_solicited_node(V6_B));
        assert!(!is_solicited_node(IPV6_ALL_NODES));
        // RFC 2464 §7: 33:33 + the low 32 bits.
        assert_eq!(
            solicited_node_mac(V6_B),
            [0x33, 0x33, 0xff, 0x34, 0x56, 0x78]
        );
        assert_eq!(ipv6_multicast_mac(IPV6_ALL_NODES), [0x33, 0x33, 0, 0, 0, 1]);
        assert_eq!(
            ipv4_multicast_mac([239, 129, 2, 3]),
            [0x01, 0x00, 0x5e, 0x01, 2, 3]
        );
    }

    /// An NS from V6_A for V6_B to its solicited-node group, with a source link-layer
    /// address option, written out by hand except for the checksum.
    fn ns_frame() -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&[0x33, 0x33, 0xff, 0x34, 0x56, 0x78]); // dst
        f.extend_from_slice(&MAC_A); // src
        f.extend_from_slice(&[0x86, 0xdd]);
        f.extend_from_slice(&[0x60, 0, 0, 0, 0, 32, 58, 255]); // v6, plen 32, ICMPv6, hop 255
        f.extend_from_slice(&V6_A);
        f.extend_from_slice(&solicited_node(V6_B));
        f.extend_from_slice(&[135, 0, 0, 0, 0, 0, 0, 0]); // NS, code 0, checksum, reserved
        f.extend_from_slice(&V6_B); // target
        f.extend_from_slice(&[1, 1]); // SLLA option, 8 bytes
        f.extend_from_slice(&MAC_A);
        fill_icmp_checksum(&mut f);
        f
    }

    /// Fills the ICMPv6 checksum at bytes 56..58 with etherparse's (independent) sum.
    fn fill_icmp_checksum(f: &mut [u8]) {
        f[56] = 0;
        f[57] = 0;
        let src: [u8; 16] = f[22..38].try_into().unwrap();
        let dst: [u8; 16] = f[38..54].try_into().unwrap();
        let ty = etherparse::Icmpv6Type::Unknown {
            type_u8: f[54],
            code_u8: f[55],
            bytes5to8: f[58..62].try_into().unwrap(),
        };
        let ck = ty.calc_checksum(src, dst, &f[62..]).expect("small");
        f[56..58].copy_from_slice(&ck.to_be_bytes());
    }

    #[test]
    fn ns_parses_and_round_trips() {
        let f = ns_frame();
        let p = parse_frame(&f).expect("valid").expect("is NS");
        let want = NdpRepr {
            src: V6_A,
            dst: solicited_node(V6_B),
            msg: NdMsg::Solicit {
                target: V6_B,
                source_lladdr: Some(MAC_A),
            },
        };
        assert_eq!(p.msg, NeighMsg::Ndp(want));
        assert_eq!(build_frame(&p), f, "our checksum equals etherparse's");
    }

    #[test]
    fn na_parses_and_round_trips() {
        let mut f = Vec::new();
        f.extend_from_slice(&MAC_A);
        f.extend_from_slice(&MAC_B);
        f.extend_from_slice(&[0x86, 0xdd]);
        f.extend_from_slice(&[0x60, 0, 0, 0, 0, 32, 58, 255]);
        f.extend_from_slice(&V6_B);
        f.extend_from_slice(&V6_A);
        f.extend_from_slice(&[136, 0, 0, 0, 0x60, 0, 0, 0]); // NA, S and O
        f.extend_from_slice(&V6_B);
        f.extend_from_slice(&[2, 1]); // TLLA
        f.extend_from_slice(&MAC_B);
        fill_icmp_checksum(&mut f);
        let p = parse_frame(&f).expect("valid").expect("is NA");
        let want = NdpRepr {
            src: V6_B,
            dst: V6_A,
            msg: NdMsg::Advert {
                target: V6_B,
                flags: NaFlags {
                    router: false,
                    solicited: true,
                    overrides: true,
                },
                target_lladdr: Some(MAC_B),
            },
        };
        assert_eq!(p.msg, NeighMsg::Ndp(want));
        assert_eq!(build_frame(&p), f);
    }

    #[test]
    fn ndp_validity_checks() {
        let good = ns_frame();
        // Checksum first (icmpv6_rcv), then hop limit and code (ndisc_rcv).
        let mut f = good.clone();
        f[57] ^= 1;
        assert_eq!(parse_frame(&f), Err(NeighInvalid::Checksum));
        let mut f = good.clone();
        f[21] = 254;
        assert_eq!(parse_frame(&f), Err(NeighInvalid::HopLimit), "forwarded NS");
        let mut f = good.clone();
        f[55] = 1;
        fill_icmp_checksum(&mut f);
        assert_eq!(parse_frame(&f), Err(NeighInvalid::IcmpCode));
        // Multicast target.
        let mut f = good.clone();
        f[62] = 0xff;
        fill_icmp_checksum(&mut f);
        assert_eq!(parse_frame(&f), Err(NeighInvalid::MulticastTarget));
        // Option of length 0.
        let mut f = good.clone();
        f[79] = 0;
        fill_icmp_checksum(&mut f);
        assert_eq!(parse_frame(&f), Err(NeighInvalid::BadOption));
        // Option running past the message.
        let mut f = good.clone();
        f[79] = 2;
        fill_icmp_checksum(&mut f);
        assert_eq!(parse_frame(&f), Err(NeighInvalid::BadOption));
        // DAD (source ::) with a source link-layer option.
        let mut f = good.clone();
        f[22..38].fill(0);
        fill_icmp_checksum(&mut f);
        assert_eq!(parse_frame(&f), Err(NeighInvalid::BadDad));
        // DAD to a unicast destination.
        let mut f = good.clone();
        f[22..38].fill(0);
        f[38..54].copy_from_slice(&V6_B);
        f[19] = 24; // drop the option
        f.truncate(78);
        fill_icmp_checksum(&mut f);
        assert_eq!(parse_frame(&f), Err(NeighInvalid::BadDad));
        // A proper DAD probe: to the solicited-node group, no option.
        let mut f = good.clone();
        f[22..38].fill(0);
        f[19] = 24;
        f.truncate(78);
        fill_icmp_checksum(&mut f);
        assert!(matches!(
            parse_frame(&f),
            Ok(Some(NeighFrame {
                msg: NeighMsg::Ndp(NdpRepr {
                    msg: NdMsg::Solicit {
                        source_lladdr: None,
                        ..
                    },
                    ..
                }),
                ..
            }))
        ));
        // Shorter than 24 bytes.
        let mut f = good.clone();
        f[19] = 20;
        f.truncate(74);
        fill_icmp_checksum(&mut f);
        assert_eq!(parse_frame(&f), Err(NeighInvalid::ShortMessage));
        // A solicited NA to a multicast group.
        let mut f = good.clone();
        f[54] = 136;
        f[58] = NA_FLAG_SOLICITED;
        f[78] = 2;
        fill_icmp_checksum(&mut f);
        assert_eq!(parse_frame(&f), Err(NeighInvalid::SolicitedMulticast));
        // Not version 6; a multicast source.
        let mut f = good.clone();
        f[14] = 0x40;
        assert_eq!(parse_frame(&f), Err(NeighInvalid::Ipv6Header));
        let mut f = good.clone();
        f[22] = 0xff;
        fill_icmp_checksum(&mut f);
        assert_eq!(parse_frame(&f), Err(NeighInvalid::Ipv6Header));
        // Payload length past the frame; every truncation.
        for cut in 14..good.len() {
            assert_eq!(
                parse_frame(&good[..cut]),
                Err(NeighInvalid::Truncated),
                "cut {cut}"
            );
        }
        // Ethernet padding after the payload is ignored.
        let mut f = good.clone();
        f.extend_from_slice(&[0xee; 10]);
        assert!(parse_frame(&f).is_ok_and(|p| p.is_some()));
    }

    #[test]
    fn options_first_lladdr_counts_unknown_skipped() {
        let mut opts = vec![14, 1, 0, 0, 0, 0, 0, 0]; // nonce option (RFC 7527), skipped
        opts.extend_from_slice(&[1, 1, 1, 2, 3, 4, 5, 6]);
        opts.extend_from_slice(&[1, 1, 9, 9, 9, 9, 9, 9]); // duplicate: ignored
        assert_eq!(
            parse_lladdr_option(&opts, ND_OPT_SOURCE_LLADDR),
            Ok(Some([1, 2, 3, 4, 5, 6]))
        );
        assert_eq!(parse_lladdr_option(&opts, ND_OPT_TARGET_LLADDR), Ok(None));
        // A 16-byte link-layer option is not an Ethernet address.
        let long = [1, 2, 1, 2, 3, 4, 5, 6, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            parse_lladdr_option(&long, ND_OPT_SOURCE_LLADDR),
            Err(NeighInvalid::BadOption)
        );
        assert_eq!(
            parse_lladdr_option(&[1], ND_OPT_SOURCE_LLADDR),
            Err(NeighInvalid::BadOption)
        );
    }

    proptest::proptest! {
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(proptest::num::u8::ANY, 0..128), kind in 0u8..3) {
            let mut f = data;
            // Steer a share of the inputs to the ARP and IPv6 parsers.
            if f.len() >= 14 {
                match kind {
                    0 => f[12..14].copy_from_slice(&ETHERTYPE_ARP.to_be_bytes()),
                    1 => {
                        f[12..14].copy_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
                        if f.len() > 21 {
                            f[14] = 0x60;
                            f[20] = IPPROTO_ICMPV6;
                        }
                    }
                    _ => {}
                }
            }
            let _ = parse_frame(&f);
        }

        #[test]
        fn ndp_round_trip(src in proptest::array::uniform16(proptest::num::u8::ANY), target in proptest::array::uniform16(0u8..0xff), mac in proptest::option::of(proptest::array::uniform6(proptest::num::u8::ANY)), na in proptest::bool::ANY, r in proptest::bool::ANY, s in proptest::bool::ANY, o in proptest::bool::ANY) {
            let src = if src == [0; 16] || src[0] == 0xff { V6_A } else { src };
            let msg = if na {
                NdMsg::Advert { target, flags: NaFlags { router: r, solicited: s, overrides: o }, target_lladdr: mac }
            } else {
                NdMsg::Solicit { target, source_lladdr: mac }
            };
            let n = NdpRepr { src, dst: V6_B, msg };
            let f = NeighFrame { eth: EthInfo { dst: MAC_B, src: MAC_A, vlan: None }, msg: NeighMsg::Ndp(n) };
            let bytes = build_frame(&f);
            proptest::prop_assert_eq!(parse_frame(&bytes), Ok(Some(f)));
        }
    }
}
