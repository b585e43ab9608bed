//! Replaying a capture: the frames of a pcap file, in order, with their original timing
//! (as earliest departure times the qdisc honours, like `skb->tstamp` under `fq`), at a
//! rate the qdisc sets, or at top speed; looped a given number of times.
//!
//! With several queues each queue sends every n-th frame (queue k: frames k, k+n, ...),
//! so the capture is sent once in total, not once per queue.

use std::sync::Arc;

use crate::wire::{
    checksum,
    udp::{IPV4_HLEN, UDP_HLEN},
    ETHERTYPE_IPV4, ETHERTYPE_QINQ, ETHERTYPE_VLAN, ETH_HLEN, IPPROTO_TCP, IPPROTO_UDP, VLAN_HLEN,
};

/// One frame of the capture, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayFrame {
    /// Time since the capture's first frame, in ns.
    pub offset_ns: u64,
    /// The frame (no FCS).
    pub data: Vec<u8>,
}

/// How a replay is timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayTiming {
    /// The capture's own inter-frame times (scaled by nothing), as departure times.
    Original,
    /// No departure times: the qdisc's rate, or top speed without one.
    Unpaced,
}

/// A queue's share of a capture being replayed.
#[derive(Debug, Clone)]
pub struct ReplaySource {
    frames: Arc<[ReplayFrame]>,
    step: usize,
    pos: usize,
    loop_no: u64,
    loops: Option<u64>,
    period_ns: u64,
    timing: ReplayTiming,
}

impl ReplaySource {
    /// Replays `frames` for queue `queue` of `queues`, `loops` times (None: until stopped).
    pub fn new(
        frames: Arc<[ReplayFrame]>,
        queue: usize,
        queues: usize,
        loops: Option<u64>,
        timing: ReplayTiming,
    ) -> Self {
        // One loop lasts the capture's span plus one mean inter-frame gap, so the last frame
        // of a loop and the first of the next are as far apart as frames on average are.
        let last = frames.iter().map(|f| f.offset_ns).max().unwrap_or(0);
        let gap = if frames.len() > 1 {
            last / (frames.len() as u64 - 1)
        } else {
            // A single frame looped: one a millisecond.
            1_000_000
        };
        // A queue beyond the capture's length has no share of it: exhausted from the start.
        let loop_no = if queue >= frames.len() { u64::MAX } else { 0 };
        ReplaySource {
            frames,
            step: queues.max(1),
            pos: queue,
            loop_no,
            loops,
            period_ns: last + gap.max(1),
            timing,
        }
    }

    /// Frames this queue will send in total (None: unbounded).
    pub fn total(&self, queue: usize) -> Option<u64> {
        let per_loop = self.frames.len().saturating_sub(queue).div_ceil(self.step) as u64;
        self.loops.map(|l| l * per_loop)
    }

    /// True when every loop has been sent.
    pub fn exhausted(&self) -> bool {
        self.frames.is_empty()
            || self.loop_no == u64::MAX
            || self.loops.is_some_and(|l| self.loop_no >= l)
    }

    /// The next frame's departure time (original timing only).
    #[inline]
    pub fn peek_edt(&self) -> Option<u64> {
        if self.timing != ReplayTiming::Original || self.exhausted() {
            return None;
        }
        let f = self.frames.get(self.pos)?;
        Some(
            self.loop_no
                .saturating_mul(self.period_ns)
                .saturating_add(f.offset_ns),
        )
    }

    /// Writes the next frame into `buf`; returns its length and its departure time in ns
    /// from the run's origin (0: none). Length 0 when exhausted or `buf` is too small (the
    /// frame is skipped then: callers size `buf` from the capture's largest frame).
    #[inline]
    pub fn next_into(&mut self, buf: &mut [u8]) -> (usize, u64) {
        if self.exhausted() {
            return (0, 0);
        }
        let Some(f) = self.frames.get(self.pos) else {
            return (0, 0);
        };
        let edt = match self.timing {
            ReplayTiming::Original => self
                .loop_no
                .saturating_mul(self.period_ns)
                .saturating_add(f.offset_ns),
            ReplayTiming::Unpaced => 0,
        };
        let n = f.data.len();
        let written = match buf.get_mut(..n) {
            Some(dst) => {
                dst.copy_from_slice(&f.data);
                n
            }
            None => 0,
        };
        self.pos += self.step;
        if self.pos >= self.frames.len() {
            self.pos %= self.step;
            self.loop_no += 1;
        }
        (written, edt)
    }
}

/// True for a frame with an 802.1Q or 802.1ad tag (its MTU limit is 4 bytes higher).
pub fn is_vlan_tagged(frame: &[u8]) -> bool {
    matches!(
        frame.get(12..14).map(|t| u16::from_be_bytes([t[0], t[1]])),
        Some(ETHERTYPE_VLAN) | Some(ETHERTYPE_QINQ)
    )
}

/// Rewrites a captured frame's addresses for replay: both MACs always; the IPv4 source
/// and destination when given, updating the IPv4 header checksum and the UDP/TCP checksum
/// incrementally (RFC 1624; non-first fragments carry no L4 header and only get the IP
/// update). Frames that are not IPv4, or too short for what they claim, keep their IP
/// addresses: never a panic on a captured frame.
pub fn rewrite(
    frame: &mut [u8],
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src_ip: Option<[u8; 4]>,
    dst_ip: Option<[u8; 4]>,
) {
    if frame.len() < ETH_HLEN {
        return;
    }
    frame[0..6].copy_from_slice(&dst_mac);
    frame[6..12].copy_from_slice(&src_mac);
    let l3 = if is_vlan_tagged(frame) {
        ETH_HLEN + VLAN_HLEN
    } else {
        ETH_HLEN
    };
    let Some(et) = frame.get(l3 - 2..l3) else {
        return;
    };
    if u16::from_be_bytes([et[0], et[1]]) != ETHERTYPE_IPV4 {
        return;
    }
    let Some(&vihl) = frame.get(l3) else {
        return;
    };
    let ihl = usize::from(vihl & 0x0f) * 4;
    if vihl >> 4 != 4 || ihl < IPV4_HLEN || frame.len() < l3 + ihl {
        return;
    }
    let proto = frame[l3 + 9];
    let frag_off = u16::from_be_bytes([frame[l3 + 6], frame[l3 + 7]]) & 0x1fff;
    // Offset of the L4 checksum, if this frame has a whole L4 header.
    let l4 = l3 + ihl;
    let l4_csum = match proto {
        IPPROTO_UDP if frag_off == 0 && frame.len() >= l4 + UDP_HLEN => Some(l4 + 6),
        // TCP's checksum is at byte 16 of its header (RFC 9293); 20 bytes minimum header.
        IPPROTO_TCP if frag_off == 0 && frame.len() >= l4 + 20 => Some(l4 + 16),
        _ => None,
    };
    for (new, at) in [(src_ip, l3 + 12), (dst_ip, l3 + 16)] {
        let Some(new) = new else { continue };
        for w in 0..2 {
            let o = at + 2 * w;
            let old = u16::from_be_bytes([frame[o], frame[o + 1]]);
            let nw = u16::from_be_bytes([new[2 * w], new[2 * w + 1]]);
            if old == nw {
                continue;
            }
            frame[o..o + 2].copy_from_slice(&nw.to_be_bytes());
            let ip_ck = u16::from_be_bytes([frame[l3 + 10], frame[l3 + 11]]);
            frame[l3 + 10..l3 + 12]
                .copy_from_slice(&checksum::update(ip_ck, old, nw).to_be_bytes());
            if let Some(c) = l4_csum {
                let ck = u16::from_be_bytes([frame[c], frame[c + 1]]);
                // A UDP checksum of 0 means "none" (RFC 768): leave it so.
                if proto == IPPROTO_UDP && ck == 0 {
                    continue;
                }
                let mut n = checksum::update(ck, old, nw);
                if proto == IPPROTO_UDP && n == 0 {
                    n = 0xffff;
                }
                frame[c..c + 2].copy_from_slice(&n.to_be_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(n: usize) -> Arc<[ReplayFrame]> {
        (0..n)
            .map(|i| ReplayFrame {
                offset_ns: i as u64 * 1000,
                data: vec![i as u8; 60 + i],
            })
            .collect()
    }

    #[test]
    fn queues_share_the_capture_and_loops_repeat_it() {
        let f = frames(5);
        let mut seen = Vec::new();
        for q in 0..2 {
            let mut r = ReplaySource::new(f.clone(), q, 2, Some(2), ReplayTiming::Original);
            assert_eq!(r.total(q), Some(if q == 0 { 6 } else { 4 }));
            let mut buf = [0u8; 128];
            while !r.exhausted() {
                let (n, edt) = r.next_into(&mut buf);
                seen.push((buf[0], n, edt));
            }
        }
        seen.sort();
        // Every frame twice; the second loop 5000 ns later (span 4000 + mean gap 1000).
        assert_eq!(seen.len(), 10);
        assert_eq!(seen[0], (0, 60, 0));
        assert_eq!(seen[1], (0, 60, 5000));
        assert_eq!(seen[9], (4, 64, 9000));
    }

    #[test]
    fn rewrite_keeps_checksums_right() {
        use crate::wire::template::{TemplateKind, TemplateSpec, Vlan};
        let mut spec = TemplateSpec::new(
            TemplateKind::Udp4,
            [198, 18, 0, 1].into(),
            [198, 18, 0, 2].into(),
        );
        spec.vlan = Some(Vlan { id: 7, pcp: 0 });
        let mut f = spec.build(104).unwrap();
        rewrite(
            &mut f,
            [2, 0, 0, 0, 0, 9],
            [2, 0, 0, 0, 0, 8],
            Some([198, 19, 1, 1]),
            Some([198, 19, 2, 2]),
        );
        let want = TemplateSpec {
            dst_mac: [2, 0, 0, 0, 0, 8],
            src_mac: [2, 0, 0, 0, 0, 9],
            src_ip: [198, 19, 1, 1].into(),
            dst_ip: [198, 19, 2, 2].into(),
            ..spec.clone()
        }
        .build(104)
        .unwrap();
        assert_eq!(f, want);
        // Garbage and short frames: no panic.
        for n in 0..60 {
            let mut g = vec![0x45u8; n];
            rewrite(&mut g, [0; 6], [0; 6], Some([1, 2, 3, 4]), None);
        }
    }

    #[test]
    fn a_queue_beyond_the_capture_has_nothing_to_send() {
        let r = ReplaySource::new(frames(1), 1, 2, Some(1), ReplayTiming::Original);
        assert!(r.exhausted());
        assert_eq!(r.peek_edt(), None);
    }

    #[test]
    fn small_buffer_and_empty_capture_do_not_panic() {
        let mut r = ReplaySource::new(frames(2), 0, 1, Some(1), ReplayTiming::Unpaced);
        let mut small = [0u8; 10];
        assert_eq!(r.next_into(&mut small), (0, 0));
        let mut e = ReplaySource::new(frames(0), 0, 1, None, ReplayTiming::Original);
        assert!(e.exhausted());
        assert_eq!(e.next_into(&mut small), (0, 0));
    }
}
