//! TCP merge rules: `tcp_gro_receive` and `tcp4_gro_receive` / `tcp6_gro_receive`
//! (Linux 6.18 `net/ipv4/tcp_offload.c`, read from `codesnas/linux-6.18.y` at
//! 33ef1e6ac01f), with the IP half of the decision from `gro_receive_network_flush`
//! (`include/net/gro.h`, see [`super::network_flush`]) and the size limit from
//! `skb_gro_receive` (`net/core/gro.c`).

use super::parse::{Pass, Seg, Tcp, L4};
use super::{ip_checks, Flush, Held, Limits, Verdict};

/// The flags byte's place in the flag word: bits 16..24 (byte 13 of the header).
pub(super) const FLAGS_SHIFT: u32 = 16;
/// TCP flag bits as they sit in the flag word (`tcp_flag_word`: data offset 4 bits,
/// reserved 4, flags 8, window 16; `TCP_FLAG_*` in `include/net/tcp.h`): CWR.
pub(super) const CWR: u32 = 0x0080_0000;
/// URG.
pub(super) const URG: u32 = 0x0020_0000;
/// PSH.
pub(super) const PSH: u32 = 0x0008_0000;
/// RST.
pub(super) const RST: u32 = 0x0004_0000;
/// SYN.
pub(super) const SYN: u32 = 0x0002_0000;
/// FIN.
pub(super) const FIN: u32 = 0x0001_0000;
/// Flags that end a GRO packet (`out_check_final`).
pub(super) const FINAL: u32 = URG | PSH | RST | SYN | FIN;
/// Flags that may differ from the held packet's first segment (6.18 masks only FIN and
/// PSH; CWR on the new segment is a flush of its own, and since the AccECN change a CWR
/// on the first segment no longer matches segments without it either).
pub(super) const MAY_DIFFER: u32 = FIN | PSH;

/// Can `seg` (TCP fields `t`) join the held packet `p` of its flow? The IP flush bit
/// (see [`flush_bit`]), then every condition of `tcp_gro_receive` that sets `flush`, in
/// its order, then `skb_gro_receive`'s size check (`p->len + len >= gro_max_size` →
/// `-E2BIG`), then skiff's own segment cap. The first failing condition names the counted
/// reason; any of them gives the kernel's outcome (complete `p`).
pub(super) fn verdict<F>(p: &Held<F>, seg: &Seg, t: &Tcp, lim: Limits) -> Verdict {
    let L4::Tcp(first) = p.first.l4h else {
        // Keys carry the protocol, so a UDP packet never matches a TCP segment.
        return Verdict::Flush(Flush::Mismatch);
    };
    let fixed_id = match ip_checks(p, seg) {
        Ok(fixed) => fixed,
        Err(v) => return v,
    };
    // `flush = flags & TCP_FLAG_CWR`.
    if t.flags & CWR != 0 {
        return Verdict::Flush(Flush::Mismatch);
    }
    // `(flags ^ tcp_flag_word(th2)) & ~(TCP_FLAG_FIN | TCP_FLAG_PSH)`: data offset,
    // reserved bits, flags and window all equal. A control segment (URG/RST/SYN, which a
    // held first segment never has) is counted as "flags".
    let diff = (t.flags ^ first.flags) & !MAY_DIFFER;
    if diff != 0 {
        let why = if diff & (URG | RST | SYN) != 0 {
            Flush::Flags
        } else {
            Flush::Mismatch
        };
        return Verdict::Flush(why);
    }
    // `th->ack_seq ^ th2->ack_seq`, then every option word (timestamps included).
    if t.ack != first.ack || t.opts != first.opts {
        return Verdict::Flush(Flush::Mismatch);
    }
    // `(len - 1) >= mss` in unsigned arithmetic: empty, or longer than the first segment.
    let len = seg.payload_len;
    let mss = p.gso_size();
    if len.wrapping_sub(1) >= mss {
        let why = if len == 0 {
            Flush::ShortSegment
        } else {
            Flush::Mismatch
        };
        return Verdict::Flush(why);
    }
    // `(ntohl(th2->seq) + skb_gro_len(p)) ^ ntohl(th->seq)`: exactly the next byte.
    if first.seq.wrapping_add(p.payload) != t.seq {
        return Verdict::Flush(Flush::Gap);
    }
    if let Some(why) = lim.refuses(p, seg) {
        return Verdict::Flush(why);
    }
    Verdict::Merge { fixed_id }
}

/// `out_check_final` after `seg` was merged: the packet is complete when the segment is
/// shorter than the first (`len < mss`) or carries URG/PSH/RST/SYN/FIN. PSH is counted
/// before "short" (the last segment of a write usually has both).
pub(super) fn ends_packet(seg: &Seg, t: &Tcp, mss: u32) -> Option<Flush> {
    if t.flags & FINAL != 0 {
        Some(Flush::Flags)
    } else if seg.payload_len < mss {
        Some(Flush::ShortSegment)
    } else {
        None
    }
}

/// `out_check_final` with no packet to join (`mss = 1`): a segment that would end a packet
/// at once is passed rather than held, as is one with the IP flush bit
/// (`NAPI_GRO_CB(skb)->flush` → `GRO_NORMAL` in dev_gro_receive).
pub(super) fn pass_alone(seg: &Seg, t: &Tcp) -> Option<Pass> {
    if seg.flush_bit {
        Some(Pass::FlushBit)
    } else if seg.payload_len == 0 {
        Some(Pass::ZeroPayload)
    } else if t.flags & FINAL != 0 {
        Some(Pass::Flags)
    } else {
        None
    }
}
