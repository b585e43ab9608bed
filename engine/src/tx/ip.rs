//! IP output the way Linux does it for TCP: the route (on-link or via the gateway), the
//! IPv4 / IPv6 header, the IPv4 identification rules and the IPv6 automatic flow label.
//!
//! # Where the rules come from
//!
//! Read through the `search` tool (include/net/ip.h in the 6.18 tree
//! `codesnas/linux-6.18.y`, net/ipv4/route.c in a current `CachyOS/linux`, ip_output.c in
//! torvalds/linux plus the 2022 SYN-ACK patch, include/net/ipv6.h and af_inet6.c):
//!
//! - `__ip_queue_xmit` (net/ipv4/ip_output.c): header `0x45`, TOS from the socket,
//!   `frag_off = IP_DF` when `ip_dont_fragment()`, TTL from `ip_select_ttl` (the route's
//!   hop limit, `net.ipv4.ip_default_ttl` = 64), then `ip_select_ident_segs(net, skb, sk,
//!   gso_segs ?: 1)`; no route → `IPSTATS_MIB_OUTNOROUTES`, `-EHOSTUNREACH`.
//! - `ip_select_ident_segs` (include/net/ip.h): a socket with a destination (`inet_daddr`,
//!   every connected TCP socket) takes its ID from its own `inet_id` and advances it by the
//!   segment count, **whatever DF says**; without such a socket, DF gives ID 0 and no DF
//!   takes the hashed generator `__ip_select_ident` (net/ipv4/route.c). [`IpIdent`] and
//!   [`IpIdentHashed`] are the two generators, [`ident_unconnected`] the second branch.
//! - `ip_build_and_send_pkt` (the SYN-ACK): DF (or a packet ≤ 68 bytes) → ID 0; otherwise
//!   a random ID for TCP (commit 970a5a3ea86d, "ipv4: tcp: send zero IPID in SYNACK
//!   messages"). RSTs and the ACKs of SYN-RECV / TIME-WAIT leave through the per-netns
//!   control socket, which `tcp_sk_init` sets to `IP_PMTUDISC_DO` ("Please enforce IP_DF
//!   and IPID==0 for RST and ACK sent in SYN-RECV and TIME-WAIT state"): DF and ID 0.
//! - `inet_id` starts random: `tcp_v4_connect` for an active open, `tcp_v4_syn_recv_sock`
//!   for a passive one (`get_random_u16()`); [`IpIdent::new`] takes that start value.
//! - `ip6_make_flowlabel` (include/net/ipv6.h) with `auto_flowlabels` = 1
//!   (`IP6_DEFAULT_AUTO_FLOW_LABELS` = `IP6_AUTO_FLOW_LABEL_OPTOUT`) and
//!   `flowlabel_state_ranges` = 0 (`inet6_net_init`): see [`flow_label`].
//!
//! Non-goals: IP options, fragmentation (TCP never needs it: DF is set and segments fit the
//! MSS), multiple addresses per family, policy routing.

use std::hash::Hasher;
use std::net::IpAddr;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::wire::checksum;

/// Default IPv4 TTL: `net.ipv4.ip_default_ttl` = 64 (`IPDEFTTL`, include/uapi/linux/ip.h),
/// what `ip_select_ttl` gives a socket that did not set `IP_TTL`.
pub const DEFAULT_TTL: u8 = 64;
/// Default IPv6 hop limit: `net.ipv6.conf.*.hop_limit` = `IPV6_DEFAULT_HOPLIMIT` = 64
/// (include/net/ipv6.h), what `ip6_dst_hoplimit` gives a socket without `IPV6_UNICAST_HOPS`.
pub const DEFAULT_HOP_LIMIT: u8 = 64;
/// IPv4 header without options (RFC 791 §3.1: IHL 5).
pub const IPV4_HLEN: usize = 20;
/// IPv6 fixed header (RFC 8200 §3).
pub const IPV6_HLEN: usize = 40;
/// The Don't Fragment bit in the flags/fragment-offset word (`IP_DF`, include/net/ip.h).
pub const IP_DF: u16 = 0x4000;
/// The 20 flow-label bits of the first IPv6 word (`IPV6_FLOWLABEL_MASK`, RFC 8200 §3).
pub const IPV6_FLOWLABEL_MASK: u32 = 0x000f_ffff;
/// Linux's TCP sends with DF set: `inet_create` (net/ipv4/af_inet.c) starts every socket at
/// `IP_PMTUDISC_WANT` because `net.ipv4.ip_no_pmtu_disc` defaults to 0, and
/// `ip_dont_fragment` (include/net/ip.h) is true for `WANT` unless the route's MTU is
/// locked, so `__ip_queue_xmit` writes `IP_DF` (RFC 1191 path MTU discovery).
pub const TCP_DF: bool = true;
/// Buckets of the hashed ID generator: `ip_idents` holds 2048 to 262144 buckets
/// depending on memory (net/ipv4/route.c, `ip_rt_init`); the smallest size is used.
pub const IP_IDENTS_BUCKETS: usize = 2048;
/// Clock rate of the hashed generator's perturbation, in ticks per second: the kernel
/// counts jiffies; skiff assumes `CONFIG_HZ=1000`.
pub const IDENT_HZ: u64 = 1000;

/// Our IPv4 address on the interface, its prefix and the default gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Iface4 {
    /// Our address.
    pub addr: [u8; 4],
    /// Prefix length of the connected subnet (0..=32).
    pub prefix: u8,
    /// Next hop for everything off the subnet.
    pub gateway: Option<[u8; 4]>,
}

/// Our IPv6 address on the interface, its prefix and the default gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Iface6 {
    /// Our address.
    pub addr: [u8; 16],
    /// Prefix length of the on-link prefix (0..=128).
    pub prefix: u8,
    /// Next hop for everything off the prefix.
    pub gateway: Option<[u8; 16]>,
}

/// The routing table of one interface: a connected route and a default route per family,
/// which is all a host with one address needs (the kernel's `fib_lookup` reduced to the
/// `proto kernel scope link` route plus `default via`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Route {
    /// IPv4 configuration, if any.
    pub v4: Option<Iface4>,
    /// IPv6 configuration, if any.
    pub v6: Option<Iface6>,
}

impl Route {
    /// An interface with an IPv4 address (`prefix` is clamped to 32).
    pub fn v4(addr: [u8; 4], prefix: u8, gateway: Option<[u8; 4]>) -> Self {
        Route {
            v4: Some(Iface4 {
                addr,
                prefix: prefix.min(32),
                gateway,
            }),
            v6: None,
        }
    }

    /// Adds (or replaces) the IPv6 address (`prefix` is clamped to 128).
    pub fn with_v6(mut self, addr: [u8; 16], prefix: u8, gateway: Option<[u8; 16]>) -> Self {
        self.v6 = Some(Iface6 {
            addr,
            prefix: prefix.min(128),
            gateway,
        });
        self
    }

    /// The next hop for `dst`: `dst` itself when it is on the interface's subnet (or
    /// multicast / limited broadcast, or IPv6 link-local: the kernel installs fe80::/64 on
    /// every interface), else the gateway. `None` when unroutable (no address of that
    /// family, no gateway, or an address that never leaves the host: our own, loopback,
    /// unspecified), the kernel's `-EHOSTUNREACH` / `IPSTATS_MIB_OUTNOROUTES`.
    pub fn next_hop(&self, dst: IpAddr) -> Option<IpAddr> {
        match dst {
            IpAddr::V4(d) => {
                let i = self.v4?;
                let o = d.octets();
                if d.is_unspecified() || d.is_loopback() || o == i.addr {
                    return None;
                }
                if d.is_broadcast() || d.is_multicast() || same_prefix4(o, i.addr, i.prefix) {
                    return Some(dst);
                }
                i.gateway.map(IpAddr::from)
            }
            IpAddr::V6(d) => {
                let i = self.v6?;
                let o = d.octets();
                if d.is_unspecified() || d.is_loopback() || o == i.addr {
                    return None;
                }
                let link_local = o[0] == 0xfe && o[1] & 0xc0 == 0x80;
                if d.is_multicast() || link_local || same_prefix6(o, i.addr, i.prefix) {
                    return Some(dst);
                }
                i.gateway.map(IpAddr::from)
            }
        }
    }

    /// Our source address for `dst`: the interface's address of that family, when `dst`
    /// is routable (`inet_select_addr` / `ipv6_dev_get_saddr` with one address to choose
    /// from).
    pub fn source_for(&self, dst: IpAddr) -> Option<IpAddr> {
        self.next_hop(dst)?;
        match dst {
            IpAddr::V4(_) => self.v4.map(|i| IpAddr::from(i.addr)),
            IpAddr::V6(_) => self.v6.map(|i| IpAddr::from(i.addr)),
        }
    }
}

fn same_prefix4(a: [u8; 4], b: [u8; 4], prefix: u8) -> bool {
    let mask = u32::MAX
        .checked_shl(32 - u32::from(prefix.min(32)))
        .unwrap_or(0);
    (u32::from_be_bytes(a) ^ u32::from_be_bytes(b)) & mask == 0
}

fn same_prefix6(a: [u8; 16], b: [u8; 16], prefix: u8) -> bool {
    let mask = u128::MAX
        .checked_shl(128 - u32::from(prefix.min(128)))
        .unwrap_or(0);
    (u128::from_be_bytes(a) ^ u128::from_be_bytes(b)) & mask == 0
}

/// What goes into an IPv4 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Out {
    /// Source address.
    pub src: [u8; 4],
    /// Destination address.
    pub dst: [u8; 4],
    /// Protocol (6 for TCP).
    pub proto: u8,
    /// Bytes after the IP header.
    pub payload_len: u16,
    /// Identification (from [`IpIdent`] or [`ident_unconnected`]).
    pub id: u16,
    /// Don't Fragment ([`TCP_DF`] for TCP).
    pub df: bool,
    /// Time to live ([`DEFAULT_TTL`]).
    pub ttl: u8,
    /// TOS byte (DSCP and ECN).
    pub tos: u8,
}

/// Writes an IPv4 header without options: version/IHL 0x45, TOS, total length, ID, DF,
/// TTL, protocol and the header checksum (RFC 791 §3.1, `ip_send_check`). Returns 20, or 0
/// if `out` is too short or the total length does not fit 16 bits.
pub fn write_ipv4(out: &mut [u8], h: &Ipv4Out) -> usize {
    let Some(total) = (h.payload_len as usize)
        .checked_add(IPV4_HLEN)
        .filter(|&t| t <= usize::from(u16::MAX))
    else {
        return 0;
    };
    let Some(b) = out.get_mut(..IPV4_HLEN) else {
        return 0;
    };
    b[0] = 0x45;
    b[1] = h.tos;
    b[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    b[4..6].copy_from_slice(&h.id.to_be_bytes());
    let frag: u16 = if h.df { IP_DF } else { 0 };
    b[6..8].copy_from_slice(&frag.to_be_bytes());
    b[8] = h.ttl;
    b[9] = h.proto;
    b[10..12].fill(0);
    b[12..16].copy_from_slice(&h.src);
    b[16..20].copy_from_slice(&h.dst);
    let ck = checksum::checksum(b, 0);
    b[10..12].copy_from_slice(&ck.to_be_bytes());
    IPV4_HLEN
}

/// What goes into an IPv6 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Out {
    /// Source address.
    pub src: [u8; 16],
    /// Destination address.
    pub dst: [u8; 16],
    /// Next header (6 for TCP).
    pub next_header: u8,
    /// Bytes after the IPv6 header.
    pub payload_len: u16,
    /// Hop limit ([`DEFAULT_HOP_LIMIT`]).
    pub hop_limit: u8,
    /// Traffic class (DSCP and ECN).
    pub traffic_class: u8,
    /// Flow label (low 20 bits used; [`flow_label`]).
    pub flow_label: u32,
}

/// Writes an IPv6 header (RFC 8200 §3; `ip6_flow_hdr` then the fields `ip6_xmit` sets).
/// Returns 40, or 0 if `out` is too short.
pub fn write_ipv6(out: &mut [u8], h: &Ipv6Out) -> usize {
    let Some(b) = out.get_mut(..IPV6_HLEN) else {
        return 0;
    };
    let word =
        (6u32 << 28) | (u32::from(h.traffic_class) << 20) | (h.flow_label & IPV6_FLOWLABEL_MASK);
    b[0..4].copy_from_slice(&word.to_be_bytes());
    b[4..6].copy_from_slice(&h.payload_len.to_be_bytes());
    b[6] = h.next_header;
    b[7] = h.hop_limit;
    b[8..24].copy_from_slice(&h.src);
    b[24..40].copy_from_slice(&h.dst);
    IPV6_HLEN
}

/// The IPv6 flow label Linux puts on a socket's packets: `ip6_make_flowlabel` with
/// automatic labels on (`auto_flowlabels` = 1) takes the skb's flow hash (for TCP the
/// socket's random `sk_txhash`, re-drawn by `sk_rethink_txhash` after a timeout), rotates
/// it by 16 bits, and keeps the bits under `IPV6_FLOWLABEL_MASK`; `flowlabel_state_ranges`
/// = 0, so bit 19 is left as it falls.
///
/// The mask is applied to the rotated hash reinterpreted as a big-endian word (`(__force
/// __be32)hash & IPV6_FLOWLABEL_MASK`), so on the little-endian hosts skiff runs on
/// (x86-64, arm64) the label on the wire is `swap_bytes(rol32(hash, 16)) & 0xfffff`.
pub fn flow_label(hash: u32) -> u32 {
    hash.rotate_left(16).swap_bytes() & IPV6_FLOWLABEL_MASK
}

/// The per-socket IPv4 ID counter of a connected socket (`inet_id`): each packet takes the
/// current value and advances it by its segment count, so the segments of a GSO packet
/// get consecutive IDs (`inet_gso_segment` numbers them first, first + 1, ...) and the next
/// packet continues after them.
#[derive(Debug, Clone)]
pub struct IpIdent {
    next: u16,
}

impl IpIdent {
    /// A counter starting at `seed`: the kernel draws it with `get_random_u16()` at
    /// `tcp_v4_connect` (active open) or `tcp_v4_syn_recv_sock` (passive open).
    pub fn new(seed: u16) -> Self {
        IpIdent { next: seed }
    }

    /// The first ID of a packet of `segs` segments (a plain packet is 1; 0 counts as 1,
    /// the kernel's `gso_segs ?: 1`), advancing the counter by `segs` modulo 2^16.
    pub fn next_segs(&mut self, segs: u32) -> u16 {
        let id = self.next;
        // Only the low 16 bits of the advance matter: `htons` keeps 16 bits of inet_id.
        self.next = id.wrapping_add(segs.max(1) as u16);
        id
    }

    /// The ID the next packet will get.
    pub fn peek(&self) -> u16 {
        self.next
    }
}

/// The shared, hashed IPv4 ID generator `__ip_select_ident` (net/ipv4/route.c), used for
/// packets without a connected socket and without DF.
///
/// Modelled as the kernel has it, with two stand-ins: the bucket is a keyed hash of
/// (daddr, saddr, protocol) (the kernel: `siphash_3u32` with a random per-netns key; here
/// std's SipHash with `seed` hashed in first) masked to [`IP_IDENTS_BUCKETS`]; each bucket
/// is a counter advanced by the segment count, plus, when the bucket was last used in an
/// earlier tick, a random perturbation below the number of ticks since (`ip_idents_reserve`:
/// `get_random_u32_below(now - old)`), which hides how many packets went out meanwhile.
#[derive(Debug, Clone)]
pub struct IpIdentHashed {
    seed: u64,
    ids: Vec<u32>,
    stamps: Vec<u32>,
    rng: SmallRng,
}

impl IpIdentHashed {
    /// A generator whose hash key and perturbation come from `seed`.
    pub fn new(seed: u64) -> Self {
        IpIdentHashed {
            seed,
            ids: vec![0; IP_IDENTS_BUCKETS],
            stamps: vec![0; IP_IDENTS_BUCKETS],
            rng: SmallRng::seed_from_u64(seed ^ 0x6970_6964_656e_7473),
        }
    }

    /// The first ID of a packet of `segs` segments from `src` to `dst` with `proto`, at
    /// `now_ns` (monotonic).
    pub fn next(&mut self, src: [u8; 4], dst: [u8; 4], proto: u8, segs: u32, now_ns: u64) -> u16 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        h.write_u64(self.seed);
        h.write(&dst);
        h.write(&src);
        h.write_u8(proto);
        let bucket = (h.finish() as usize) & (IP_IDENTS_BUCKETS - 1);
        // Ticks as a wrapping 32-bit count, like `(u32)jiffies`.
        let now = (now_ns / (1_000_000_000 / IDENT_HZ)) as u32;
        let old = self.stamps[bucket];
        let mut delta = 0;
        if old != now {
            self.stamps[bucket] = now;
            delta = self.rng.gen_range(0..now.wrapping_sub(old));
        }
        let segs = segs.max(1);
        let after = self.ids[bucket].wrapping_add(segs).wrapping_add(delta);
        self.ids[bucket] = after;
        // atomic_add_return(segs + delta) - segs: the first ID of the reserved range.
        after.wrapping_sub(segs) as u16
    }
}

/// The ID of a packet sent without a connected socket (`ip_select_ident_segs`'s second
/// half): 0 with DF (RFC 6864 §4.1: an atomic datagram's ID carries nothing), else the
/// hashed generator.
pub fn ident_unconnected(
    df: bool,
    hashed: &mut IpIdentHashed,
    src: [u8; 4],
    dst: [u8; 4],
    proto: u8,
    segs: u32,
    now_ns: u64,
) -> u16 {
    if df {
        0
    } else {
        hashed.next(src, dst, proto, segs, now_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::net::{Ipv4Addr, Ipv6Addr};

    fn v4(s: &str) -> IpAddr {
        IpAddr::V4(s.parse::<Ipv4Addr>().unwrap())
    }

    fn v6(s: &str) -> IpAddr {
        IpAddr::V6(s.parse::<Ipv6Addr>().unwrap())
    }

    fn o6(s: &str) -> [u8; 16] {
        s.parse::<Ipv6Addr>().unwrap().octets()
    }

    #[test]
    fn ipv4_header_bytes() {
        // The classic example header (192.168.0.1 → 192.168.0.199, UDP, total 0x73, DF,
        // TTL 64): checksum 0xb861, worked by hand in checksum.rs's test.
        let h = Ipv4Out {
            src: [192, 168, 0, 1],
            dst: [192, 168, 0, 199],
            proto: 17,
            payload_len: 0x73 - 20,
            id: 0,
            df: true,
            ttl: DEFAULT_TTL,
            tos: 0,
        };
        let mut b = [0xaau8; 24];
        assert_eq!(write_ipv4(&mut b, &h), 20);
        assert_eq!(
            b[..20],
            [
                0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
                0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7
            ]
        );
        assert_eq!(b[20..], [0xaa; 4], "nothing written past the header");
        // A TCP header with an ID, no DF, TOS 0x10 (ECT bits clear), TTL 1.
        let h = Ipv4Out {
            src: [10, 0, 0, 1],
            dst: [10, 0, 0, 2],
            proto: 6,
            payload_len: 32,
            id: 0x1234,
            df: false,
            ttl: 1,
            tos: 0x10,
        };
        assert_eq!(write_ipv4(&mut b, &h), 20);
        // Sum by hand: 4510 + 0034 + 1234 + 0000 + 0106 + 0a00 + 0001 + 0a00 + 0002
        // = 0x6c81; checksum = !0x6c81 = 0x937e.
        assert_eq!(
            b[..20],
            [
                0x45, 0x10, 0x00, 0x34, 0x12, 0x34, 0x00, 0x00, 0x01, 0x06, 0x93, 0x7e, 10, 0, 0,
                1, 10, 0, 0, 2
            ]
        );
        assert_eq!(checksum::sum(&b[..20], 0), 0xffff);
    }

    #[test]
    fn ipv4_impossible_sizes_write_nothing() {
        let h = Ipv4Out {
            src: [10, 0, 0, 1],
            dst: [10, 0, 0, 2],
            proto: 6,
            payload_len: 0,
            id: 0,
            df: true,
            ttl: 64,
            tos: 0,
        };
        let mut short = [0u8; 19];
        assert_eq!(write_ipv4(&mut short, &h), 0);
        assert_eq!(short, [0; 19]);
        let mut b = [0u8; 20];
        let too_long = Ipv4Out {
            payload_len: u16::MAX - 19,
            ..h
        };
        assert_eq!(write_ipv4(&mut b, &too_long), 0);
        let max = Ipv4Out {
            payload_len: u16::MAX - 20,
            ..h
        };
        assert_eq!(write_ipv4(&mut b, &max), 20);
        assert_eq!(b[2..4], [0xff, 0xff]);
    }

    #[test]
    fn ipv6_header_bytes() {
        let h = Ipv6Out {
            src: o6("2001:db8::1"),
            dst: o6("2001:db8::2"),
            next_header: 6,
            payload_len: 0x0520,
            hop_limit: DEFAULT_HOP_LIMIT,
            traffic_class: 0xb8, // EF
            flow_label: 0xfff1_2345,
        };
        let mut b = [0u8; 40];
        assert_eq!(write_ipv6(&mut b, &h), 40);
        // 6 | tc 0xb8 | label 0x12345 (upper bits dropped) = 0x6b812345.
        assert_eq!(b[..8], [0x6b, 0x81, 0x23, 0x45, 0x05, 0x20, 6, 64]);
        assert_eq!(b[8..24], o6("2001:db8::1"));
        assert_eq!(b[24..40], o6("2001:db8::2"));
        assert_eq!(write_ipv6(&mut b[..39], &h), 0);
    }

    #[test]
    fn independent_parser_agrees() {
        let mut b = [0u8; 20 + 8];
        let h = Ipv4Out {
            src: [198, 18, 0, 1],
            dst: [198, 18, 0, 2],
            proto: 6,
            payload_len: 8,
            id: 0xbeef,
            df: true,
            ttl: 64,
            tos: 0x02,
        };
        write_ipv4(&mut b, &h);
        let (ip, _) = etherparse::Ipv4Header::from_slice(&b).expect("etherparse reads it");
        assert_eq!(ip.identification, 0xbeef);
        assert!(ip.dont_fragment);
        assert!(!ip.more_fragments);
        assert_eq!(ip.time_to_live, 64);
        assert_eq!(ip.total_len, 28);
        assert_eq!(ip.header_checksum, ip.calc_header_checksum());
        let mut b = [0u8; 40];
        let h6 = Ipv6Out {
            src: o6("fe80::1"),
            dst: o6("fe80::2"),
            next_header: 6,
            payload_len: 20,
            hop_limit: 64,
            traffic_class: 0x01,
            flow_label: 0xabcde,
        };
        write_ipv6(&mut b, &h6);
        let (ip6, _) = etherparse::Ipv6Header::from_slice(&b).expect("etherparse reads it");
        assert_eq!(ip6.flow_label.value(), 0xabcde);
        assert_eq!(ip6.traffic_class, 0x01);
        assert_eq!(ip6.payload_length, 20);
        assert_eq!(ip6.hop_limit, 64);
    }

    proptest::proptest! {
        #[test]
        fn ipv4_checksum_always_verifies(src in proptest::array::uniform4(proptest::num::u8::ANY), dst in proptest::array::uniform4(proptest::num::u8::ANY), proto in proptest::num::u8::ANY, len in 0u16..=65515, id in proptest::num::u16::ANY, df in proptest::bool::ANY, ttl in proptest::num::u8::ANY, tos in proptest::num::u8::ANY) {
            let mut b = [0u8; 20];
            let n = write_ipv4(&mut b, &Ipv4Out { src, dst, proto, payload_len: len, id, df, ttl, tos });
            proptest::prop_assert_eq!(n, 20);
            proptest::prop_assert_eq!(checksum::sum(&b, 0), 0xffff);
        }
    }

    #[test]
    fn next_hop_on_link_gateway_unroutable() {
        let r = Route::v4([10, 1, 2, 3], 24, Some([10, 1, 2, 254]));
        assert_eq!(
            r.next_hop(v4("10.1.2.77")),
            Some(v4("10.1.2.77")),
            "on-link"
        );
        assert_eq!(
            r.next_hop(v4("10.1.3.77")),
            Some(v4("10.1.2.254")),
            "via gw"
        );
        assert_eq!(r.next_hop(v4("8.8.8.8")), Some(v4("10.1.2.254")));
        assert_eq!(r.next_hop(v4("224.0.0.251")), Some(v4("224.0.0.251")));
        assert_eq!(
            r.next_hop(v4("255.255.255.255")),
            Some(v4("255.255.255.255"))
        );
        assert_eq!(r.next_hop(v4("10.1.2.3")), None, "our own address");
        assert_eq!(r.next_hop(v4("127.0.0.1")), None);
        assert_eq!(r.next_hop(v4("0.0.0.0")), None);
        assert_eq!(r.next_hop(v6("2001:db8::1")), None, "no IPv6 configured");
        assert_eq!(r.source_for(v4("8.8.8.8")), Some(v4("10.1.2.3")));
        assert_eq!(r.source_for(v6("2001:db8::1")), None);
        // Without a gateway, off-subnet is unroutable.
        let r = Route::v4([10, 1, 2, 3], 24, None);
        assert_eq!(r.next_hop(v4("10.1.3.1")), None);
        assert_eq!(r.source_for(v4("10.1.3.1")), None);
        // Prefix edge cases: /32 has only us; /0 puts everything on-link; /31.
        let r = Route::v4([10, 1, 2, 3], 32, None);
        assert_eq!(r.next_hop(v4("10.1.2.2")), None);
        let r = Route::v4([10, 1, 2, 3], 0, None);
        assert_eq!(r.next_hop(v4("1.2.3.4")), Some(v4("1.2.3.4")));
        let r = Route::v4([10, 1, 2, 2], 31, None);
        assert_eq!(r.next_hop(v4("10.1.2.3")), Some(v4("10.1.2.3")));
        assert_eq!(r.next_hop(v4("10.1.2.4")), None);
        assert_eq!(Route::v4([10, 0, 0, 1], 99, None).v4.unwrap().prefix, 32);
        assert_eq!(Route::default().next_hop(v4("10.0.0.1")), None);
    }

    #[test]
    fn next_hop_v6() {
        let r = Route::v4([10, 0, 0, 1], 24, None).with_v6(
            o6("2001:db8:1::10"),
            64,
            Some(o6("fe80::1")),
        );
        assert_eq!(r.next_hop(v6("2001:db8:1::20")), Some(v6("2001:db8:1::20")));
        assert_eq!(r.next_hop(v6("2001:db8:2::20")), Some(v6("fe80::1")));
        assert_eq!(
            r.next_hop(v6("fe80::99")),
            Some(v6("fe80::99")),
            "link-local"
        );
        assert_eq!(r.next_hop(v6("ff02::1")), Some(v6("ff02::1")));
        assert_eq!(r.next_hop(v6("::1")), None);
        assert_eq!(r.next_hop(v6("::")), None);
        assert_eq!(r.next_hop(v6("2001:db8:1::10")), None);
        assert_eq!(
            r.source_for(v6("2001:db8:2::20")),
            Some(v6("2001:db8:1::10"))
        );
        assert_eq!(r.next_hop(v4("10.0.0.9")), Some(v4("10.0.0.9")));
        let r = Route::default().with_v6(o6("2001:db8:1::10"), 64, None);
        assert_eq!(r.next_hop(v6("2001:db8:2::20")), None);
        assert_eq!(r.next_hop(v4("10.0.0.9")), None);
        // /127 and /128.
        let r = Route::default().with_v6(o6("2001:db8::2"), 127, None);
        assert_eq!(r.next_hop(v6("2001:db8::3")), Some(v6("2001:db8::3")));
        assert_eq!(r.next_hop(v6("2001:db8::4")), None);
    }

    #[test]
    fn socket_ident_sequences() {
        let mut id = IpIdent::new(0xfffd);
        assert_eq!(id.next_segs(1), 0xfffd);
        assert_eq!(id.next_segs(0), 0xfffe, "0 segments count as 1");
        assert_eq!(
            id.next_segs(3),
            0xffff,
            "a 3-segment GSO packet: ffff, 0, 1"
        );
        assert_eq!(
            id.next_segs(1),
            0x0002,
            "the next packet continues after them"
        );
        assert_eq!(id.peek(), 0x0003);
        // 65536 + 5 segments advance the 16-bit counter by 5.
        let mut id = IpIdent::new(100);
        id.next_segs(65536 + 5);
        assert_eq!(id.peek(), 105);
    }

    #[test]
    fn hashed_ident_rules() {
        let (a, b) = ([10, 0, 0, 1], [10, 0, 0, 2]);
        let mut g = IpIdentHashed::new(7);
        // DF without a connected socket: ID 0, the generator untouched.
        assert_eq!(ident_unconnected(true, &mut g, a, b, 17, 1, 5_000_000), 0);
        // Within one tick the bucket counts segments exactly.
        let t = 5_000_000_000;
        let first = ident_unconnected(false, &mut g, a, b, 17, 1, t);
        assert_eq!(g.next(a, b, 17, 4, t), first.wrapping_add(1));
        assert_eq!(g.next(a, b, 17, 1, t), first.wrapping_add(5));
        // A later tick adds a perturbation below the ticks elapsed (here < 3).
        let later = g.next(a, b, 17, 1, t + 3_000_000);
        let step = later.wrapping_sub(first.wrapping_add(6));
        assert!(step < 3, "perturbation {step}");
        // Deterministic for a seed.
        let mut g1 = IpIdentHashed::new(42);
        let mut g2 = IpIdentHashed::new(42);
        for i in 0..10u64 {
            let d = [10, 0, 0, i as u8];
            assert_eq!(
                g1.next(a, d, 6, 1, i * 1_000_000),
                g2.next(a, d, 6, 1, i * 1_000_000)
            );
        }
    }

    #[test]
    fn flow_label_vectors() {
        // rol32(0x12345678, 16) = 0x56781234, little-endian bytes 34 12 78 56; masked with
        // htonl(0xfffff)'s bytes 00 0f ff ff → 00 02 78 56 on the wire: label 0x27856.
        assert_eq!(flow_label(0x1234_5678), 0x2_7856);
        assert_eq!(flow_label(0), 0);
        assert_eq!(flow_label(u32::MAX), 0xf_ffff);
        // The label is hash bits 24..27, 0..7 and 8..15 (in that order, high to low):
        // bits 16..23 and 28..31 are dropped.
        assert_eq!(flow_label(0xf0ff_0000), 0);
        assert_eq!(flow_label(0x0f00_0000), 0xf_0000);
        assert_eq!(flow_label(0x0000_00ff), 0x0_ff00);
        assert_eq!(flow_label(0x0000_ff00), 0x0_00ff);
        for h in [1u32, 0xdead_beef, 0x8000_0000, 0x0001_0000] {
            assert!(flow_label(h) <= IPV6_FLOWLABEL_MASK);
        }
    }
}
