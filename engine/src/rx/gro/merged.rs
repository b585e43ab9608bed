//! A merged packet: the completed header and the chain of original frames, as
//! `napi_gro_complete` → `inet_gro_complete` / `ipv6_gro_complete` →
//! `tcp4_gro_complete` / `tcp6_gro_complete` / `udp4_gro_complete` / `udp_gro_complete`
//! leave it (Linux 6.18): what a packet socket on the receiver (tcpdump) shows.

use super::parse::{field, first16, rd16, v4_addrs, Seg, IPV6_HLEN, L4, MAX_HDR};
use super::tcp;
use crate::wire::checksum;

/// Which transport and IP version a merged packet carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum GroProto {
    /// TCP over IPv4.
    Tcp4,
    /// TCP over IPv6.
    Tcp6,
    /// UDP over IPv4.
    Udp4,
    /// UDP over IPv6.
    Udp6,
}

impl GroProto {
    /// TCP (else UDP).
    pub fn is_tcp(self) -> bool {
        matches!(self, GroProto::Tcp4 | GroProto::Tcp6)
    }
    /// IPv6 (else IPv4).
    pub fn is_v6(self) -> bool {
        matches!(self, GroProto::Tcp6 | GroProto::Udp6)
    }
}

/// A packet GRO built from several frames of one flow. Nothing but the header is copied:
/// frame `i` contributes its payload `bytes[hdr_len .. hdr_len + payload_len(i)]`.
///
/// Every frame but the last carries `gso_size` payload bytes (a shorter one ends the
/// packet), so the per-frame lengths are implied by `gso_size` and the total.
#[derive(Debug)]
pub struct Merged<F> {
    /// Ethernet through TCP/UDP, rewritten for the whole packet.
    pub(super) hdr: [u8; MAX_HDR],
    /// Bytes of `hdr` in use (also every frame's payload offset).
    pub(super) hdr_len: usize,
    /// The frames, in sequence order.
    pub(super) frames: Vec<F>,
    /// Payload bytes of every frame but the last.
    pub(super) gso_size: u32,
    /// Payload bytes of the last frame.
    pub(super) last_len: u32,
    /// Transport and IP version.
    pub(super) proto: GroProto,
}

impl<F> Merged<F> {
    /// The frames, in order; the consumer releases each exactly once.
    pub fn frames(&self) -> &[F] {
        &self.frames
    }

    /// The frames, in order, giving up the merged header (hand the emptied vector back with
    /// [`Gro::recycle`](super::Gro::recycle)).
    pub fn into_frames(self) -> Vec<F> {
        self.frames
    }

    /// The rewritten header (Ethernet through TCP/UDP) of the merged packet.
    pub fn header(&self) -> &[u8] {
        self.hdr.get(..self.hdr_len).unwrap_or(&[])
    }

    /// Header length: where each frame's payload starts.
    pub fn hdr_len(&self) -> usize {
        self.hdr_len
    }

    /// Number of frames (`gso_segs`).
    pub fn segs(&self) -> usize {
        self.frames.len()
    }

    /// Payload bytes per frame but the last (`gso_size`: the first segment's length).
    pub fn gso_size(&self) -> usize {
        self.gso_size as usize
    }

    /// Transport and IP version.
    pub fn proto(&self) -> GroProto {
        self.proto
    }

    /// Payload bytes of frame `i`, or `None` past the last frame.
    pub fn payload_len(&self, i: usize) -> Option<usize> {
        let n = self.frames.len();
        if i + 1 < n {
            Some(self.gso_size as usize)
        } else if i + 1 == n {
            Some(self.last_len as usize)
        } else {
            None
        }
    }

    /// Payload bytes of all frames.
    pub fn payload_total(&self) -> usize {
        self.frames.len().saturating_sub(1) * self.gso_size as usize + self.last_len as usize
    }

    /// Merged frame length: header plus all payload.
    pub fn len(&self) -> usize {
        self.hdr_len + self.payload_total()
    }

    /// Never true: a merged packet has a header and at least two frames.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Frame `i`'s payload inside its bytes `bytes`, or `None` if `i` is out of range or
    /// `bytes` is too short (not this frame's bytes).
    pub fn payload_of<'b>(&self, i: usize, bytes: &'b [u8]) -> Option<&'b [u8]> {
        let len = self.payload_len(i)?;
        bytes.get(self.hdr_len..self.hdr_len + len)
    }

    /// Writes the merged packet as one contiguous frame, exactly as a packet socket
    /// (tcpdump) on a Linux GRO receiver shows it: the completed header, then each frame's
    /// payload in order. `bytes_of` gives a frame's bytes; a frame whose bytes are too
    /// short (the caller's mistake) contributes nothing rather than panicking.
    ///
    /// The bytes need only live as long as this borrow of the packet, so an accessor whose
    /// result borrows from the handle as well as from the buffer works too.
    pub fn write_to<'s>(&'s self, bytes_of: impl Fn(&'s F) -> &'s [u8], out: &mut Vec<u8>) {
        out.reserve(self.len());
        out.extend_from_slice(self.header());
        for (i, f) in self.frames.iter().enumerate() {
            if let Some(p) = self.payload_of(i, bytes_of(f)) {
                out.extend_from_slice(p);
            }
        }
    }
}

/// Writes `v` big-endian at `off` of `hdr` (offsets come from the parser and lie inside).
#[inline]
fn put16(hdr: &mut [u8; MAX_HDR], off: usize, v: u16) {
    if let Some(d) = hdr.get_mut(off..off + 2) {
        d.copy_from_slice(&v.to_be_bytes());
    }
}

/// The completed header of a packet of `first` (the first segment, whose header is `hdr`)
/// with `payload` bytes in all, `or_flags` being the FIN/PSH bits merged segments carried:
///
/// - IPv4 (`inet_gro_complete`): total length = the new L3 length, header checksum
///   updated incrementally (`csum_replace2`, RFC 1624 eqn. 3); the IP ID stays the
///   first segment's.
/// - IPv6 (`ipv6_gro_complete`): payload length = the new L3 length − 40.
/// - TCP (`tcp4_gro_complete` / `tcp6_gro_complete`, after `tcp_gro_receive` ORed FIN/PSH
///   into the first header): checksum field = `~tcp_v4_check(len, saddr, daddr, 0)`, the
///   folded pseudo-header sum not complemented, as `CHECKSUM_PARTIAL` leaves it.
/// - UDP (`udp4_gro_complete` / `udp_gro_complete`): length = the new L4 length, the
///   (always non-zero) checksum field = the pseudo-header sum as for TCP.
pub(super) fn complete(first: &Seg, hdr: &mut [u8; MAX_HDR], payload: u32, or_flags: u32) {
    let l3 = first.l3;
    let l4 = first.l4;
    // < 65536: skb_gro_receive refused anything that would reach max_l3 ≤ 65536.
    let l3_len = first.hdr_len - l3 + payload as usize;
    let l4_len = l3_len - (l4 - l3);
    let key = &first.key;
    let a = &key.addrs;
    let pseudo = if key.v6 {
        put16(
            hdr,
            l3 + field::IP6_PAYLOAD_LEN,
            (l3_len - IPV6_HLEN) as u16,
        );
        // Source in the first 16 address bytes, destination in the next 16.
        checksum::pseudo_v6(first16(a, 0), first16(a, 16), key.proto, l4_len as u32)
    } else {
        let old = rd16(hdr, l3 + field::IP4_TOT_LEN);
        let check = rd16(hdr, l3 + field::IP4_CHECK);
        put16(hdr, l3 + field::IP4_TOT_LEN, l3_len as u16);
        let check = checksum::update(check, old, l3_len as u16);
        put16(hdr, l3 + field::IP4_CHECK, check);
        let (src, dst) = v4_addrs(a);
        checksum::pseudo_v4(src, dst, key.proto, l4_len as u16)
    };
    match first.l4h {
        L4::Tcp(_) => {
            if let Some(b) = hdr.get_mut(l4 + field::TCP_FLAGS) {
                *b |= ((or_flags & tcp::MAY_DIFFER) >> tcp::FLAGS_SHIFT) as u8;
            }
            put16(hdr, l4 + field::TCP_CHECK, pseudo as u16);
        }
        L4::Udp(_) => {
            put16(hdr, l4 + field::UDP_LEN, l4_len as u16);
            // GRO never holds a zero checksum; the kernel tests it anyway.
            if rd16(hdr, l4 + field::UDP_CHECK) != 0 {
                put16(hdr, l4 + field::UDP_CHECK, pseudo as u16);
            }
        }
    }
}
