//! The receive-side classifier (UDP/TCP over IPv4/IPv6), and the L3/L4 header sizes the
//! templates (`wire::template`) build with.

use super::{
    checksum, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_QINQ, ETHERTYPE_VLAN, ETH_HLEN,
    IPPROTO_TCP, IPPROTO_UDP, VLAN_HLEN,
};

/// IPv4 header without options.
pub const IPV4_HLEN: usize = 20;
/// IPv6 fixed header.
pub const IPV6_HLEN: usize = 40;
/// UDP header.
pub const UDP_HLEN: usize = 8;
/// Default TTL, as Linux's `net.ipv4.ip_default_ttl`.
pub const DEFAULT_TTL: u8 = 64;

/// Why a received frame could not be parsed. Counted by reason, never a panic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Malformed {
    /// Shorter than an Ethernet header (or its VLAN tag).
    TruncatedEthernet,
    /// Shorter than the IP header.
    TruncatedIp,
    /// IP version/IHL wrong.
    BadIpHeader,
    /// IPv4 header checksum wrong.
    BadIpChecksum,
    /// IP total length larger than the frame.
    BadIpLength,
    /// Shorter than the UDP/TCP header.
    TruncatedL4,
    /// UDP length field inconsistent with the IP payload.
    BadUdpLength,
}

impl Malformed {
    /// All reasons, in report order.
    pub const ALL: [Malformed; 7] = [
        Malformed::TruncatedEthernet,
        Malformed::TruncatedIp,
        Malformed::BadIpHeader,
        Malformed::BadIpChecksum,
        Malformed::BadIpLength,
        Malformed::TruncatedL4,
        Malformed::BadUdpLength,
    ];
    /// Counter name.
    pub fn name(self) -> &'static str {
        match self {
            Malformed::TruncatedEthernet => "truncated_ethernet",
            Malformed::TruncatedIp => "truncated_ip",
            Malformed::BadIpHeader => "bad_ip_header",
            Malformed::BadIpChecksum => "bad_ip_checksum",
            Malformed::BadIpLength => "bad_ip_length",
            Malformed::TruncatedL4 => "truncated_l4",
            Malformed::BadUdpLength => "bad_udp_length",
        }
    }
    /// Index into a counter array.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// What a well-formed received frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Classified {
    /// UDP over IPv4 or IPv6, with its destination port.
    Udp {
        /// Destination port.
        dst_port: u16,
        /// Offset of the UDP payload in the frame (what `latency::probe` reads).
        payload: usize,
    },
    /// TCP over IPv4 or IPv6.
    Tcp,
    /// IP with another protocol.
    OtherIp,
    /// Not IP (ARP, LLDP, ...).
    NotIp,
}

#[inline]
fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Parses a received frame far enough to count it. Checks the IPv4 header checksum.
pub fn classify(frame: &[u8]) -> Result<Classified, Malformed> {
    let mut ethertype = be16(frame, 12).ok_or(Malformed::TruncatedEthernet)?;
    let mut l3 = ETH_HLEN;
    if ethertype == ETHERTYPE_VLAN || ethertype == ETHERTYPE_QINQ {
        ethertype = be16(frame, 16).ok_or(Malformed::TruncatedEthernet)?;
        l3 += VLAN_HLEN;
    }
    let ip = frame.get(l3..).unwrap_or(&[]);
    let (proto, l4, l4_len, l4_at) = match ethertype {
        ETHERTYPE_IPV4 => {
            let h = ip.get(..IPV4_HLEN).ok_or(Malformed::TruncatedIp)?;
            let ihl = ((h[0] & 0x0f) as usize) * 4;
            if h[0] >> 4 != 4 || ihl < IPV4_HLEN {
                return Err(Malformed::BadIpHeader);
            }
            let hdr = ip.get(..ihl).ok_or(Malformed::TruncatedIp)?;
            if checksum::sum(hdr, 0) != 0xffff {
                return Err(Malformed::BadIpChecksum);
            }
            let total = be16(h, 2).ok_or(Malformed::TruncatedIp)? as usize;
            if total < ihl || total > ip.len() {
                return Err(Malformed::BadIpLength);
            }
            // A non-first fragment has no L4 header.
            if be16(h, 6).ok_or(Malformed::TruncatedIp)? & 0x1fff != 0 {
                return Ok(Classified::OtherIp);
            }
            (h[9], &ip[ihl..total], total - ihl, l3 + ihl)
        }
        ETHERTYPE_IPV6 => {
            let h = ip.get(..IPV6_HLEN).ok_or(Malformed::TruncatedIp)?;
            if h[0] >> 4 != 6 {
                return Err(Malformed::BadIpHeader);
            }
            let payload = be16(h, 4).ok_or(Malformed::TruncatedIp)? as usize;
            let end = IPV6_HLEN + payload;
            if end > ip.len() {
                return Err(Malformed::BadIpLength);
            }
            (h[6], &ip[IPV6_HLEN..end], payload, l3 + IPV6_HLEN)
        }
        _ => return Ok(Classified::NotIp),
    };
    match proto {
        IPPROTO_UDP => {
            let dst_port = be16(l4, 2).ok_or(Malformed::TruncatedL4)?;
            let ulen = be16(l4, 4).ok_or(Malformed::TruncatedL4)? as usize;
            if ulen < UDP_HLEN || ulen > l4_len {
                return Err(Malformed::BadUdpLength);
            }
            Ok(Classified::Udp {
                dst_port,
                payload: l4_at + UDP_HLEN,
            })
        }
        IPPROTO_TCP => {
            if l4.len() < 20 {
                return Err(Malformed::TruncatedL4);
            }
            Ok(Classified::Tcp)
        }
        _ => Ok(Classified::OtherIp),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::wire::{
        template::{TemplateKind, TemplateSpec, Vlan},
        FCS_LEN,
    };

    /// A UDP/IPv4 frame of `len` bytes (no FCS) from the generator's template.
    fn frame(len: usize, vlan: Option<u16>, src_port: u16, dst_port: u16) -> Vec<u8> {
        let mut t = TemplateSpec::new(
            TemplateKind::Udp4,
            [198, 18, 0, 1].into(),
            [198, 18, 0, 2].into(),
        );
        t.vlan = vlan.map(|id| Vlan { id, pcp: 0 });
        t.src_port = src_port;
        t.dst_port = dst_port;
        t.build((len + FCS_LEN).max(t.min_size()))
            .expect("valid template")
    }

    fn spec_frame(len: usize, vlan: Option<u16>) -> Vec<u8> {
        frame(len, vlan, 9000, 9001)
    }

    #[test]
    fn build_64_byte_frame_bytes() {
        let f = spec_frame(60, None);
        assert_eq!(f.len(), 60);
        assert_eq!(&f[12..14], &[0x08, 0x00]);
        assert_eq!(
            &f[16..18],
            &46u16.to_be_bytes(),
            "IPv4 total length = 60 - 14"
        );
        assert_eq!(&f[38..40], &26u16.to_be_bytes(), "UDP length = 46 - 20");
        assert_eq!(
            checksum::sum(&f[14..34], 0),
            0xffff,
            "IP header checksum verifies"
        );
        let pseudo = checksum::pseudo_v4([198, 18, 0, 1], [198, 18, 0, 2], IPPROTO_UDP, 26);
        assert_eq!(
            checksum::sum(&f[34..], pseudo),
            0xffff,
            "UDP checksum verifies"
        );
        assert_eq!(
            classify(&f),
            Ok(Classified::Udp {
                dst_port: 9001,
                payload: 42
            })
        );
    }

    #[test]
    fn independent_parser_agrees() {
        // etherparse, written by others, reads our bytes the same way.
        for (len, vlan) in [(60, None), (60, Some(42)), (1514, None), (1518, Some(4094))] {
            let f = spec_frame(len, vlan);
            let p = etherparse::SlicedPacket::from_ethernet(&f).expect("etherparse parses it");
            match p.net {
                Some(etherparse::NetSlice::Ipv4(ip)) => {
                    assert_eq!(ip.header().source(), [198, 18, 0, 1]);
                    assert_eq!(
                        ip.header().to_header().calc_header_checksum(),
                        ip.header().header_checksum()
                    );
                }
                other => panic!("not IPv4: {other:?}"),
            }
            match p.transport {
                Some(etherparse::TransportSlice::Udp(u)) => {
                    assert_eq!(u.destination_port(), 9001);
                    assert_eq!(u.length() as usize, len - 14 - vlan.map_or(0, |_| 4) - 20);
                }
                other => panic!("not UDP: {other:?}"),
            }
            if let Some(vid) = vlan {
                match &p.vlan {
                    Some(etherparse::VlanSlice::SingleVlan(v)) => {
                        assert_eq!(v.vlan_identifier().value(), vid & 0xfff)
                    }
                    other => panic!("expected one VLAN tag: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn impossible_lengths_are_reasons_not_panics() {
        let f = spec_frame(60, None);
        for cut in 0..f.len() {
            let _ = classify(&f[..cut]); // any result, never a panic
        }
        assert_eq!(classify(&f[..10]), Err(Malformed::TruncatedEthernet));
        assert_eq!(classify(&f[..20]), Err(Malformed::TruncatedIp));
        let mut bad = f.clone();
        bad[14] = 0x55;
        assert_eq!(classify(&bad), Err(Malformed::BadIpHeader));
        let mut bad = f.clone();
        bad[22] ^= 1; // TTL flipped: checksum no longer holds
        assert_eq!(classify(&bad), Err(Malformed::BadIpChecksum));
        let mut arp = f.clone();
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(classify(&arp), Ok(Classified::NotIp));
    }

    proptest::proptest! {
        #[test]
        fn classify_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = classify(&bytes);
        }

        #[test]
        fn built_frames_classify(len in 42usize..1600, sport in 1u16.., dport in 1u16.., vlan in proptest::option::of(0u16..4095)) {
            let f = frame(len, vlan, sport, dport);
            // Headers: 14 Ethernet (+4 VLAN) + 20 IPv4 + 8 UDP; below 60 bytes the frame is
            // padded to Ethernet's minimum.
            let header_len = ETH_HLEN + vlan.map_or(0, |_| VLAN_HLEN) + IPV4_HLEN + UDP_HLEN;
            proptest::prop_assert_eq!(f.len(), len.max(header_len).max(60));
            proptest::prop_assert_eq!(
                classify(&f),
                Ok(Classified::Udp { dst_port: dport, payload: header_len })
            );
        }
    }
}
