//! UDP merge rules: `udp_gro_receive_segment` (Linux 6.18 `net/ipv4/udp_offload.c`), the
//! path a datagram takes when its socket has `UDP_GRO` set; skiff applies it to every UDP
//! flow when [`super::GroConfig::udp`] is on. The checks made before the flow lookup
//! (non-zero checksum, UDP length equal to what the frame holds) are in
//! [`super::parse`].

use super::parse::{Seg, Udp, L4};
use super::{ip_checks, Flush, Held, Limits, Verdict};

/// `UDP_GRO_CNT_MAX`: a UDP GRO packet is complete at 64 datagrams ("Under small packet
/// flood GRO count could elsewhere grow a lot leading to excessive truesize values").
pub(super) const UDP_GRO_CNT_MAX: usize = 64;

/// Can datagram `seg` (UDP fields `u`) join `p`? The IP flush bit (see [`flush_bit`]),
/// the IP checks of
/// `gro_receive_network_flush`, then "terminate the flow on len mismatch": a datagram
/// longer than the first cannot join (it starts the next packet), then `skb_gro_receive`'s
/// size check and skiff's segment cap.
pub(super) fn verdict<F>(p: &Held<F>, seg: &Seg, u: &Udp, lim: Limits) -> Verdict {
    let L4::Udp(first) = p.first.l4h else {
        // Keys carry the protocol, so a TCP packet never matches a UDP datagram.
        return Verdict::Flush(Flush::Mismatch);
    };
    let fixed_id = match ip_checks(p, seg) {
        Ok(fixed) => fixed,
        Err(v) => return v,
    };
    if u.ulen > first.ulen {
        return Verdict::Flush(Flush::Mismatch);
    }
    if let Some(why) = lim.refuses(p, seg) {
        return Verdict::Flush(why);
    }
    Verdict::Merge { fixed_id }
}

/// After a merge: a datagram of another length than the first (necessarily shorter) is
/// the last of the packet, and a packet of `UDP_GRO_CNT_MAX` datagrams is complete
/// (`ulen != ntohs(uh2->len) || NAPI_GRO_CB(p)->count >= UDP_GRO_CNT_MAX`).
pub(super) fn ends_packet<F>(p: &Held<F>, u: &Udp) -> Option<Flush> {
    let L4::Udp(first) = p.first.l4h else {
        return Some(Flush::Mismatch);
    };
    if u.ulen != first.ulen {
        Some(Flush::ShortSegment)
    } else if p.count() >= UDP_GRO_CNT_MAX {
        Some(Flush::MaxSegs)
    } else {
        None
    }
}
