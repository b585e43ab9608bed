//! Header builders and views: frame templates (Ethernet with an optional 802.1Q tag; UDP,
//! TCP SYN and ICMP echo over IPv4 and IPv6), the receive classifier, and the Internet
//! checksum with RFC 1624 incremental updates.
//!
//! Building happens once per stream (a template), so clarity beats speed there; parsing
//! happens per received frame, so [`classify`] reads fixed offsets with bounds checks
//! and returns a reason instead of panicking on anything the wire brings.

pub mod arp;
pub mod checksum;
pub mod tcp;
pub mod template;
pub mod udp;

pub use udp::{classify, Classified, Malformed};

/// Ethernet header length.
pub const ETH_HLEN: usize = 14;
/// 802.1Q tag length.
pub const VLAN_HLEN: usize = 4;
/// Ethernet FCS length: counted in `--size` (RFC 2544, pktgen), never handed to the socket.
pub const FCS_LEN: usize = 4;
/// Smallest Ethernet frame, FCS included (IEEE 802.3).
pub const MIN_FRAME_WITH_FCS: usize = 64;
/// Per-frame L1 overhead on the wire: preamble 7 + SFD 1 + inter-frame gap 12 bytes.
pub const L1_OVERHEAD: usize = 20;
/// EtherTypes.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// 802.1Q.
pub const ETHERTYPE_VLAN: u16 = 0x8100;
/// 802.1ad.
pub const ETHERTYPE_QINQ: u16 = 0x88a8;
/// ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// IP protocol numbers.
pub const IPPROTO_UDP: u8 = 17;
/// TCP.
pub const IPPROTO_TCP: u8 = 6;
/// ICMP for IPv4 (RFC 792).
pub const IPPROTO_ICMP: u8 = 1;
/// ICMPv6 (RFC 4443), as an IPv6 next-header value.
pub const IPPROTO_ICMPV6: u8 = 58;
/// Largest Ethernet frame skiff builds, FCS included: a 9000-byte jumbo MTU + 14-byte
/// Ethernet header + 4-byte 802.1Q tag + 4-byte FCS.
pub const MAX_FRAME_WITH_FCS: usize = 9000 + ETH_HLEN + VLAN_HLEN + FCS_LEN;

/// Parses `aa:bb:cc:dd:ee:ff` (also with `-`).
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split([':', '-']);
    for b in out.iter_mut() {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// Formats a MAC as `aa:bb:cc:dd:ee:ff`.
pub fn fmt_mac(m: [u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

/// Parses a dotted-quad IPv4 address.
pub fn parse_ipv4(s: &str) -> Option<[u8; 4]> {
    s.parse::<std::net::Ipv4Addr>().ok().map(|a| a.octets())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs() {
        assert_eq!(parse_mac("02:00:00:00:00:01"), Some([2, 0, 0, 0, 0, 1]));
        assert_eq!(
            parse_mac("02-aa-BB-00-00-ff"),
            Some([2, 0xaa, 0xbb, 0, 0, 0xff])
        );
        for bad in [
            "",
            "02:00:00:00:00",
            "02:00:00:00:00:01:02",
            "zz:00:00:00:00:01",
            "002:00:00:00:00:01",
            "02::00:00:00:01",
        ] {
            assert_eq!(parse_mac(bad), None, "{bad:?}");
        }
        assert_eq!(fmt_mac([2, 0xaa, 0, 0, 0, 1]), "02:aa:00:00:00:01");
    }

    #[test]
    fn ipv4() {
        assert_eq!(parse_ipv4("198.18.0.1"), Some([198, 18, 0, 1]));
        assert_eq!(parse_ipv4("198.18.0"), None);
        assert_eq!(parse_ipv4("198.18.0.256"), None);
    }
}
