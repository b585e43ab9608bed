//! Test-only frame builder: TCP or UDP over IPv4 or IPv6, with an optional tag, IP and TCP
//! options, Ethernet padding, and correct (or deliberately wrong) checksums. Cross-checked
//! against etherparse in the tests.

use crate::wire::checksum;

/// TCP flag bits as in byte 13 of the header (RFC 9293 §3.1): FIN.
pub(super) const FIN: u8 = 0x01;
/// SYN.
pub(super) const SYN: u8 = 0x02;
/// RST.
pub(super) const RST: u8 = 0x04;
/// PSH.
pub(super) const PSH: u8 = 0x08;
/// ACK.
pub(super) const ACK: u8 = 0x10;
/// URG.
pub(super) const URG: u8 = 0x20;
/// CWR.
pub(super) const CWR: u8 = 0x80;

/// The usual payload per segment on a 1500-byte MTU with timestamps: 1500 − 20 − 32.
pub(super) const MSS: usize = 1448;

/// A TCP timestamp option (kind 8, length 10) padded with two NOPs to 12 bytes, as Linux
/// sends it.
pub(super) fn ts_opt(tsval: u32, tsecr: u32) -> Vec<u8> {
    let mut o = vec![1, 1, 8, 10];
    o.extend_from_slice(&tsval.to_be_bytes());
    o.extend_from_slice(&tsecr.to_be_bytes());
    o
}

/// One frame to build.
#[derive(Clone, Debug)]
pub(super) struct Spec {
    /// IPv6 (else IPv4).
    pub v6: bool,
    /// A tag with this TCI.
    pub vlan: Option<u16>,
    /// Tag with 802.1ad (0x88a8) rather than 802.1Q.
    pub qinq: bool,
    /// Source MAC.
    pub src_mac: [u8; 6],
    /// Destination MAC.
    pub dst_mac: [u8; 6],
    /// Source address (IPv4: first 4 bytes).
    pub src: [u8; 16],
    /// Destination address (IPv4: first 4 bytes).
    pub dst: [u8; 16],
    /// TOS / traffic class.
    pub tos: u8,
    /// TTL / hop limit.
    pub ttl: u8,
    /// IPv4 ID.
    pub id: u16,
    /// IPv4 DF.
    pub df: bool,
    /// Extra bits ORed into the IPv4 flags/fragment field.
    pub frag: u16,
    /// IPv4 option bytes (a multiple of 4).
    pub ip_opts: Vec<u8>,
    /// IPv6 flow label.
    pub flow_label: u32,
    /// IPv6 next header to write instead of the transport's (extension header tests).
    pub next_header: Option<u8>,
    /// UDP (else TCP).
    pub udp: bool,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// TCP sequence number.
    pub seq: u32,
    /// TCP acknowledgment number.
    pub ack: u32,
    /// TCP flags byte.
    pub flags: u8,
    /// TCP window.
    pub window: u16,
    /// TCP option bytes (a multiple of 4).
    pub opts: Vec<u8>,
    /// Payload.
    pub payload: Vec<u8>,
    /// Trailer bytes after the IP packet (Ethernet padding).
    pub pad: usize,
    /// Corrupt the IPv4 header checksum.
    pub bad_ip_csum: bool,
    /// Corrupt the TCP/UDP checksum.
    pub bad_l4_csum: bool,
    /// Write a zero UDP checksum.
    pub udp_zero_csum: bool,
}

impl Spec {
    /// A TCP/IPv4 data segment with timestamps, DF, ACK, 1448 bytes of payload.
    pub fn tcp4() -> Spec {
        Spec {
            v6: false,
            vlan: None,
            qinq: false,
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            src: [10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            dst: [10, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            tos: 0,
            ttl: 64,
            id: 0x1000,
            df: true,
            frag: 0,
            ip_opts: Vec::new(),
            flow_label: 0,
            next_header: None,
            udp: false,
            sport: 40000,
            dport: 5001,
            seq: 1_000_000,
            ack: 77,
            flags: ACK,
            window: 502,
            opts: ts_opt(1000, 2000),
            payload: pattern(0, 0, MSS),
            pad: 0,
            bad_ip_csum: false,
            bad_l4_csum: false,
            udp_zero_csum: false,
        }
    }

    /// The same over IPv6.
    pub fn tcp6() -> Spec {
        let mut s = Spec::tcp4();
        s.v6 = true;
        s.src = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        s.dst = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
        s.flow_label = 0x12345;
        // 1500 − 40 − 32.
        s.payload = pattern(0, 0, 1428);
        s
    }

    /// A UDP/IPv4 datagram with 1200 bytes of payload.
    pub fn udp4() -> Spec {
        let mut s = Spec::tcp4();
        s.udp = true;
        s.opts = Vec::new();
        s.payload = pattern(0, 0, 1200);
        s
    }

    /// The Ethernet frame.
    pub fn build(&self) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&self.dst_mac);
        f.extend_from_slice(&self.src_mac);
        if let Some(tci) = self.vlan {
            let tpid: u16 = if self.qinq { 0x88a8 } else { 0x8100 };
            f.extend_from_slice(&tpid.to_be_bytes());
            f.extend_from_slice(&tci.to_be_bytes());
        }
        let ethertype: u16 = if self.v6 { 0x86dd } else { 0x0800 };
        f.extend_from_slice(&ethertype.to_be_bytes());
        let proto: u8 = if self.udp { 17 } else { 6 };
        let mut l4 = Vec::new();
        if self.udp {
            l4.extend_from_slice(&self.sport.to_be_bytes());
            l4.extend_from_slice(&self.dport.to_be_bytes());
            l4.extend_from_slice(&((8 + self.payload.len()) as u16).to_be_bytes());
            l4.extend_from_slice(&[0, 0]);
        } else {
            l4.extend_from_slice(&self.sport.to_be_bytes());
            l4.extend_from_slice(&self.dport.to_be_bytes());
            l4.extend_from_slice(&self.seq.to_be_bytes());
            l4.extend_from_slice(&self.ack.to_be_bytes());
            l4.push((((20 + self.opts.len()) / 4) as u8) << 4);
            l4.push(self.flags);
            l4.extend_from_slice(&self.window.to_be_bytes());
            l4.extend_from_slice(&[0, 0, 0, 0]);
            l4.extend_from_slice(&self.opts);
        }
        l4.extend_from_slice(&self.payload);
        let pseudo = if self.v6 {
            let mut s = [0u8; 16];
            let mut d = [0u8; 16];
            s.copy_from_slice(&self.src);
            d.copy_from_slice(&self.dst);
            checksum::pseudo_v6(s, d, proto, l4.len() as u32)
        } else {
            let s = [self.src[0], self.src[1], self.src[2], self.src[3]];
            let d = [self.dst[0], self.dst[1], self.dst[2], self.dst[3]];
            checksum::pseudo_v4(s, d, proto, l4.len() as u16)
        };
        let coff = if self.udp { 6 } else { 16 };
        let mut ck = checksum::checksum(&l4, pseudo);
        if self.udp && ck == 0 {
            // RFC 768: a computed zero is sent as all ones.
            ck = 0xffff;
        }
        if self.udp_zero_csum {
            ck = 0;
        }
        if self.bad_l4_csum {
            ck ^= 0x5a5a;
        }
        l4[coff..coff + 2].copy_from_slice(&ck.to_be_bytes());
        if self.v6 {
            let tc = u32::from(self.tos);
            let w = (6u32 << 28) | (tc << 20) | (self.flow_label & 0xfffff);
            f.extend_from_slice(&w.to_be_bytes());
            f.extend_from_slice(&(l4.len() as u16).to_be_bytes());
            f.push(self.next_header.unwrap_or(proto));
            f.push(self.ttl);
            f.extend_from_slice(&self.src);
            f.extend_from_slice(&self.dst);
        } else {
            let ihl = 5 + self.ip_opts.len() / 4;
            let tot = (ihl * 4 + l4.len()) as u16;
            let frag = if self.df { 0x4000 } else { 0 } | self.frag;
            let mut ip = vec![0x40 | ihl as u8, self.tos];
            ip.extend_from_slice(&tot.to_be_bytes());
            ip.extend_from_slice(&self.id.to_be_bytes());
            ip.extend_from_slice(&frag.to_be_bytes());
            ip.extend_from_slice(&[self.ttl, proto, 0, 0]);
            ip.extend_from_slice(&self.src[..4]);
            ip.extend_from_slice(&self.dst[..4]);
            ip.extend_from_slice(&self.ip_opts);
            let mut ck = checksum::checksum(&ip, 0);
            if self.bad_ip_csum {
                ck ^= 0x0101;
            }
            ip[10..12].copy_from_slice(&ck.to_be_bytes());
            f.extend_from_slice(&ip);
        }
        f.extend_from_slice(&l4);
        f.extend(std::iter::repeat_n(0u8, self.pad));
        f
    }
}

/// Payload bytes for stream offset `off` of flow `flow`: distinct per flow and offset, so
/// concatenations can be checked.
pub(super) fn pattern(flow: usize, off: usize, len: usize) -> Vec<u8> {
    (off..off + len)
        .map(|k| (k.wrapping_mul(7) ^ flow.wrapping_mul(131) ^ (k >> 8)) as u8)
        .collect()
}

/// A TCP stream of segments of `sizes` starting from `base`: sequence numbers advance by
/// each payload, IP IDs increment, the payload follows [`pattern`] for flow `flow`.
pub(super) fn stream(base: &Spec, flow: usize, sizes: &[usize]) -> Vec<Spec> {
    let mut off = 0usize;
    sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let mut s = base.clone();
            s.seq = base.seq.wrapping_add(off as u32);
            s.id = base.id.wrapping_add(i as u16);
            s.payload = pattern(flow, off, n);
            off += n;
            s
        })
        .collect()
}
