//! GRO tests: hand-built streams for every rule, the written merged packets checked with
//! etherparse, and properties (no flow reordered, every frame out exactly once, no panic
//! on any bytes).

use super::frames::{self, pattern, stream, ts_opt, Spec, ACK, CWR, FIN, MSS, PSH, RST, SYN, URG};
use super::*;
use crate::wire::checksum;
use etherparse::{NetHeaders, PacketHeaders, PayloadSlice, TransportHeader};
use proptest::prelude::*;

/// A packet as the tests see it.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Out {
    /// Frame index, untouched.
    Single(usize),
    /// Frame indices, the written merged frame, gso_size.
    Merged(Vec<usize>, Vec<u8>, usize),
}

impl Out {
    fn ids(&self) -> Vec<usize> {
        match self {
            Out::Single(i) => vec![*i],
            Out::Merged(ids, ..) => ids.clone(),
        }
    }
    fn merged(&self) -> Option<&[u8]> {
        match self {
            Out::Merged(_, b, _) => Some(b),
            Out::Single(_) => None,
        }
    }
}

/// Asserts the counter invariants documented on [`GroCounters`].
fn invariants<F>(gro: &Gro<F>) {
    let c = gro.counters();
    assert_eq!(c.received, c.frames_out + gro.held_frames() as u64, "{c:?}");
    assert_eq!(c.received, c.passed() + c.merged + c.held, "{c:?}");
    assert_eq!(c.held, c.flushed() + gro.held_packets() as u64, "{c:?}");
    assert_eq!(
        c.packets_out + c.singles_out,
        c.passed() + c.flushed(),
        "{c:?}"
    );
}

/// Feeds `frames` (handle = index, hash from `hash`) in one poll round, flushes, and
/// returns the packets and counters; checks the invariants after every frame and that
/// every frame came out exactly once.
fn run_with(
    cfg: GroConfig,
    frames: &[Vec<u8>],
    hash: impl Fn(usize) -> u32,
) -> (Vec<Out>, GroCounters) {
    let mut gro: Gro<usize> = Gro::new(cfg);
    let mut raw = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        gro.receive(i, f, Some(hash(i)), &mut raw);
        invariants(&gro);
    }
    gro.flush(&mut raw);
    invariants(&gro);
    assert_eq!(gro.held_frames(), 0);
    let mut out = Vec::new();
    for p in raw {
        match p {
            GroPacket::Single(i) => out.push(Out::Single(i)),
            GroPacket::Merged(m) => {
                let mut b = Vec::new();
                m.write_to(|&i| frames[i].as_slice(), &mut b);
                assert_eq!(b.len(), m.len());
                let gso = m.gso_size();
                let ids = m.frames().to_vec();
                gro.release(m, |_| {});
                out.push(Out::Merged(ids, b, gso));
            }
        }
    }
    let mut seen: Vec<usize> = out.iter().flat_map(Out::ids).collect();
    seen.sort_unstable();
    assert_eq!(
        seen,
        (0..frames.len()).collect::<Vec<_>>(),
        "each frame exactly once"
    );
    (out, *gro.counters())
}

fn run(frames: &[Vec<u8>]) -> (Vec<Out>, GroCounters) {
    run_with(GroConfig::default(), frames, |_| 0)
}

fn build(specs: &[Spec]) -> Vec<Vec<u8>> {
    specs.iter().map(Spec::build).collect()
}

/// Frames per output packet, in output order.
fn shape(out: &[Out]) -> Vec<usize> {
    out.iter().map(|o| o.ids().len()).collect()
}

/// `n` full-size segments of the default IPv4 flow.
fn full(n: usize) -> Vec<Spec> {
    stream(&Spec::tcp4(), 0, &vec![MSS; n])
}

/// The IPv4 header offset of an untagged frame, and TCP's.
const L3: usize = 14;
const L4: usize = 34;

#[test]
fn full_stream_merges_to_65226_bytes() {
    let (out, c) = run(&build(&full(100)));
    assert_eq!(shape(&out), [45, 45, 10]);
    for o in &out[..2] {
        // 14 eth + 20 ip + 32 tcp + 45 × 1448: the kernel refuses a 46th segment because
        // 65212 + 1448 ≥ 65536.
        assert_eq!(o.merged().unwrap().len(), 65226);
        assert_eq!(o.merged().unwrap().len(), 14 + 20 + 32 + 45 * 1448);
    }
    assert_eq!(c.flush_size, 2);
    assert_eq!(c.flush_round_end, 1);
    assert_eq!((c.held, c.merged, c.packets_out), (3, 97, 3));
}

#[test]
fn psh_ends_a_write() {
    let mut s = stream(
        &Spec::tcp4(),
        0,
        &[MSS, MSS, MSS, MSS, MSS, 1000, MSS, MSS, 500],
    );
    s[5].flags |= PSH;
    s[8].flags |= PSH;
    let (out, c) = run(&build(&s));
    assert_eq!(shape(&out), [6, 3]);
    assert_eq!(c.flush_flags, 2);
    let m = out[0].merged().unwrap();
    assert_eq!(m[L4 + 13], ACK | PSH, "PSH ORed into the merged header");
    assert_eq!(m.len(), 66 + 5 * MSS + 1000);
    // A full-size PSH segment ends the packet too.
    let mut s = full(5);
    s[2].flags |= PSH;
    let (out, _) = run(&build(&s));
    assert_eq!(shape(&out), [3, 2]);
}

#[test]
fn short_segment_ends_the_packet() {
    let s = stream(&Spec::tcp4(), 0, &[MSS, MSS, 1000, MSS]);
    let (out, c) = run(&build(&s));
    assert_eq!(shape(&out), [3, 1]);
    assert_eq!(c.flush_short_segment, 1);
    // A longer segment than the first cannot join: it starts the next packet.
    let s = stream(&Spec::tcp4(), 0, &[1000, 1000, MSS, MSS]);
    let (out, c) = run(&build(&s));
    assert_eq!(shape(&out), [2, 2]);
    assert_eq!(c.flush_mismatch, 1);
}

#[test]
fn gap_and_retransmission_flush() {
    let mut s = full(6);
    for x in &mut s[3..] {
        x.seq = x.seq.wrapping_add(MSS as u32);
    }
    let (out, c) = run(&build(&s));
    assert_eq!(shape(&out), [3, 3]);
    assert_eq!(c.flush_gap, 1);

    // 0..5, then 2 again (a retransmission with the next IP ID), then 6, 7.
    let all = full(8);
    let mut s: Vec<Spec> = all[..6].to_vec();
    let mut re = all[2].clone();
    re.id = all[6].id;
    s.push(re);
    for x in &all[6..] {
        let mut x = x.clone();
        x.id = x.id.wrapping_add(1);
        s.push(x);
    }
    let (out, c) = run(&build(&s));
    assert_eq!(shape(&out), [6, 1, 2]);
    assert_eq!(out[1], Out::Single(6));
    assert_eq!(c.flush_gap, 2);
}

#[test]
fn header_changes_flush() {
    type Change = fn(&mut Spec);
    let cases: [(&str, Change); 6] = [
        ("ack", |s| s.ack += 1),
        ("window", |s| s.window += 1),
        ("tsval", |s| s.opts = ts_opt(1001, 2000)),
        ("ttl", |s| s.ttl -= 1),
        ("tos", |s| s.tos = 0x10),
        ("df", |s| s.df = false),
    ];
    for (name, change) in cases {
        let mut s = full(6);
        for x in &mut s[3..] {
            change(x);
        }
        let (out, c) = run(&build(&s));
        assert_eq!(shape(&out), [3, 3], "{name}");
        assert_eq!(c.flush_mismatch, 1, "{name}");
    }
}

#[test]
fn cwr_is_never_merged() {
    let mut s = full(6);
    s[3].flags |= CWR;
    let (out, c) = run(&build(&s));
    // CWR flushes the packet before it; in 6.18 (flag word mask ~(FIN|PSH)) the segments
    // after it cannot join it either, so it stays alone.
    assert_eq!(shape(&out), [3, 1, 2]);
    assert_eq!(out[1], Out::Single(3));
    assert_eq!(c.flush_mismatch, 2);
}

#[test]
fn control_flags() {
    // FIN joins and ends the packet, ORed into the header.
    let mut s = full(4);
    s[2].flags |= FIN;
    let (out, c) = run(&build(&s));
    assert_eq!(shape(&out), [3, 1]);
    assert_eq!(out[0].merged().unwrap()[L4 + 13], ACK | FIN);
    assert_eq!(c.flush_flags, 1);
    // SYN, RST, URG: the packet is flushed and the segment passed.
    for flag in [SYN, RST, URG] {
        let mut s = full(6);
        s[2].flags |= flag;
        let (out, c) = run(&build(&s));
        assert_eq!(shape(&out), [2, 1, 3], "flag {flag:#x}");
        assert_eq!(out[1], Out::Single(2));
        assert_eq!((c.flush_flags, c.pass_flags), (1, 1), "flag {flag:#x}");
    }
    // With nothing held, a PSH segment is passed at once.
    let mut s = full(1);
    s[0].flags |= PSH;
    let (out, c) = run(&build(&s));
    assert_eq!(out, [Out::Single(0)]);
    assert_eq!(c.pass_flags, 1);
}

#[test]
fn pure_ack_flushes_and_passes() {
    let mut s = full(5);
    s[3].payload.clear();
    s[4].seq = s[3].seq;
    let (out, c) = run(&build(&s));
    assert_eq!(shape(&out), [3, 1, 1]);
    assert_eq!(out[1], Out::Single(3));
    assert_eq!((c.flush_short_segment, c.pass_zero_payload), (1, 1));
}

#[test]
fn ip_id_rules() {
    let ids = |ids: &[u16], df: bool| {
        let mut s = full(ids.len());
        for (x, &id) in s.iter_mut().zip(ids) {
            x.id = id;
            x.df = df;
        }
        run(&build(&s))
    };
    // Incrementing, wrapping.
    assert_eq!(shape(&ids(&[0xfffe, 0xffff, 0, 1], true).0), [4]);
    // Fixed with DF.
    assert_eq!(shape(&ids(&[7, 7, 7, 7], true).0), [4]);
    // Fixed without DF: merged since 6.18 (f095a358faf2, "remove unnecessary df checks").
    assert_eq!(shape(&ids(&[7, 7, 7, 7], false).0), [4]);
    // Broken: a jump.
    let (out, c) = ids(&[1, 2, 9, 10], true);
    assert_eq!(shape(&out), [2, 2]);
    assert_eq!(c.flush_ip_id, 1);
    // Fixed, then incrementing.
    let (out, c) = ids(&[5, 5, 6, 7], true);
    assert_eq!(shape(&out), [2, 2]);
    assert_eq!(c.flush_ip_id, 1);
    // Incrementing, then repeated.
    let (out, c) = ids(&[5, 6, 6, 7], true);
    assert_eq!(shape(&out), [2, 2]);
    assert_eq!(c.flush_ip_id, 1);
}

#[test]
fn ipv6_streams() {
    let base = Spec::tcp6();
    let s = stream(&base, 0, &[1428; 6]);
    let (out, _) = run(&build(&s));
    assert_eq!(shape(&out), [6]);
    assert_eq!(out[0].merged().unwrap().len(), 14 + 40 + 32 + 6 * 1428);
    // 65536 − 40 − 32 = 65464 payload bytes fit below the limit: 45 × 1428 = 64260, a 46th
    // would make 40 + 32 + 65688.
    let (out, _) = run(&build(&stream(&base, 0, &[1428; 50])));
    assert_eq!(shape(&out), [45, 5]);
    // Hop limit or traffic class changes flush.
    for change in [|s: &mut Spec| s.ttl = 1, |s: &mut Spec| s.tos = 4] {
        let mut s = stream(&base, 0, &[1428; 6]);
        for x in &mut s[3..] {
            change(x);
        }
        let (out, c) = run(&build(&s));
        assert_eq!(shape(&out), [3, 3]);
        assert_eq!(c.flush_mismatch, 1);
    }
    // A new flow label is a new flow: both packets stay held to the end of the round.
    let mut s = stream(&base, 0, &[1428; 6]);
    for x in &mut s[3..] {
        x.flow_label = 0x54321;
    }
    let (out, c) = run(&build(&s));
    assert_eq!(shape(&out), [3, 3]);
    assert_eq!(c.flush_round_end, 2);
    // Extension headers are passed.
    let mut s = stream(&base, 0, &[1428; 2]);
    s[1].next_header = Some(0);
    let (_, c) = run(&build(&s));
    assert_eq!(c.pass_ipv6_ext, 1);
}

#[test]
fn vlan_tags() {
    for qinq in [false, true] {
        let mut base = Spec::tcp4();
        base.vlan = Some(100);
        base.qinq = qinq;
        let mut s = stream(&base, 0, &[MSS; 6]);
        let (out, _) = run(&build(&s));
        assert_eq!(shape(&out), [6]);
        let m = out[0].merged().unwrap();
        assert_eq!(m.len(), 18 + 20 + 32 + 6 * MSS);
        assert_eq!(u16::from_be_bytes([m[20], m[21]]) as usize, m.len() - 18);
        // Another VLAN is another flow.
        for x in &mut s[3..] {
            x.vlan = Some(101);
        }
        let (out, c) = run(&build(&s));
        assert_eq!(shape(&out), [3, 3]);
        assert_eq!(c.flush_round_end, 2);
    }
}

#[test]
fn an_inline_tag_counts_towards_the_size_limit() {
    // 40 × 1637 = 65480: untagged, 20 + 32 + 65480 = 65532 < 65536 so 40 segments join;
    // with a tag the kernel's p->len is 4 more, 65536, and the 40th is refused.
    let mut base = Spec::tcp4();
    let (out, _) = run(&build(&stream(&base, 0, &[1637; 41])));
    assert_eq!(shape(&out), [40, 1]);
    base.vlan = Some(3);
    let (out, c) = run(&build(&stream(&base, 0, &[1637; 41])));
    assert_eq!(shape(&out), [39, 2]);
    assert_eq!(c.flush_size, 1);
}

#[test]
fn flush_bit_padding_and_reserved_flag() {
    // Ethernet padding after a segment of the flow: the held packet is flushed and the
    // padded frame passed.
    let mut s = full(6);
    s[3].pad = 4;
    let (out, c) = run(&build(&s));
    assert_eq!(shape(&out), [3, 1, 2]);
    assert_eq!(out[1], Out::Single(3));
    assert_eq!((c.flush_flush_bit, c.pass_flush_bit), (1, 1));
    // IPv6 too.
    let mut s = stream(&Spec::tcp6(), 0, &[1428; 4]);
    s[2].pad = 2;
    let (out, _) = run(&build(&s));
    assert_eq!(shape(&out), [2, 1, 1]);
    // The reserved IPv4 flag.
    let mut s = full(4);
    s[2].frag = 0x8000;
    let (out, c) = run(&build(&s));
    assert_eq!(shape(&out), [2, 1, 1]);
    assert_eq!(c.flush_flush_bit, 1);
    // A padded pure ACK with nothing held (the common 60-byte case) is just passed.
    let mut a = Spec::tcp4();
    a.payload.clear();
    a.opts.clear();
    a.pad = 6;
    let (out, c) = run(&build(&[a]));
    assert_eq!(out, [Out::Single(0)]);
    assert_eq!(c.pass_flush_bit, 1);
}

#[test]
fn bad_checksums() {
    // A bad TCP checksum: passed, the held packet stays (the kernel's order: the bad
    // frame goes up first); the next segment then cannot join.
    let mut s = full(6);
    s[3].bad_l4_csum = true;
    let frames = build(&s);
    let (out, c) = run(&frames);
    assert_eq!(out[0], Out::Single(3));
    assert_eq!(shape(&out), [1, 3, 2]);
    // (IP ID 4 after 0, 1, 2: the ID rule, checked before the sequence, fires first.)
    assert_eq!((c.pass_bad_l4_checksum, c.flush_ip_id), (1, 1));
    // Not verified: merged.
    let cfg = GroConfig {
        verify_checksums: false,
        ..GroConfig::default()
    };
    let (out, _) = run_with(cfg, &frames, |_| 0);
    assert_eq!(shape(&out), [6]);
    // A bad IPv4 header checksum is passed whatever the configuration.
    let mut s = full(3);
    s[1].bad_ip_csum = true;
    let (_, c) = run_with(cfg, &build(&s), |_| 0);
    assert_eq!(c.pass_bad_ip_checksum, 1);
}

#[test]
fn pass_reasons() {
    let one = |f: fn(&mut Spec)| {
        let mut s = Spec::tcp4();
        f(&mut s);
        run(&[s.build()]).1
    };
    assert_eq!(one(|s| s.ip_opts = vec![1, 1, 1, 1]).pass_ip_options, 1);
    assert_eq!(one(|s| s.frag = 0x2000).pass_fragment, 1);
    assert_eq!(one(|s| s.frag = 0x0010).pass_fragment, 1);
    // UDP with UDP GRO off.
    let mut u = Spec::udp4();
    u.payload = pattern(0, 0, 100);
    assert_eq!(run(&[u.build()]).1.pass_disabled, 1);
    // ICMP, ARP, garbage.
    let mut f = Spec::tcp4().build();
    f[L3 + 9] = 1;
    let ck = checksum::checksum(
        &{
            let mut h = f[L3..L3 + 20].to_vec();
            h[10] = 0;
            h[11] = 0;
            h
        },
        0,
    );
    f[L3 + 10..L3 + 12].copy_from_slice(&ck.to_be_bytes());
    assert_eq!(run(&[f]).1.pass_not_tcp_udp, 1);
    let mut arp = Spec::tcp4().build();
    arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    assert_eq!(run(&[arp]).1.pass_not_ip, 1);
    let c = run(&[vec![], vec![1, 2, 3], Spec::tcp4().build()[..40].to_vec()]).1;
    assert_eq!(c.pass_truncated, 3);
    // TCP data offset below 5.
    let mut f = Spec::tcp4().build();
    f[L4 + 12] = 4 << 4;
    assert_eq!(run(&[f]).1.pass_bad_header, 1);
}

#[test]
fn truncated_segment_leaves_the_held_packet() {
    let frames = build(&full(4));
    let mut cut = frames.clone();
    cut[2].truncate(L4 + 10);
    let (out, c) = run(&cut);
    assert_eq!(out[0], Out::Single(2));
    assert_eq!(c.pass_truncated, 1);
}

#[test]
fn max_segs_caps_small_segments() {
    let s = stream(&Spec::tcp4(), 0, &[100; 100]);
    let (out, c) = run(&build(&s));
    assert_eq!(shape(&out), [64, 36]);
    assert_eq!(c.flush_max_segs, 1);
}

#[test]
fn udp_rules() {
    let cfg = GroConfig {
        udp: true,
        ..GroConfig::default()
    };
    let udp = |sizes: &[usize]| -> Vec<Spec> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let mut s = Spec::udp4();
                s.id = s.id.wrapping_add(i as u16);
                s.payload = pattern(0, i * 10_000, n);
                s
            })
            .collect()
    };
    let (out, _) = run_with(cfg, &build(&udp(&[1200; 10])), |_| 0);
    assert_eq!(shape(&out), [10]);
    assert_eq!(out[0].merged().unwrap().len(), 14 + 20 + 8 + 12_000);
    // A shorter one is the last.
    let (out, c) = run_with(cfg, &build(&udp(&[1200, 1200, 1200, 500, 1200])), |_| 0);
    assert_eq!(shape(&out), [4, 1]);
    assert_eq!(c.flush_short_segment, 1);
    // A longer one starts the next packet.
    let (out, c) = run_with(cfg, &build(&udp(&[1200, 1200, 1300, 1300])), |_| 0);
    assert_eq!(shape(&out), [2, 2]);
    assert_eq!(c.flush_mismatch, 1);
    // UDP_GRO_CNT_MAX.
    let (out, c) = run_with(cfg, &build(&udp(&[100; 70])), |_| 0);
    assert_eq!(shape(&out), [64, 6]);
    assert_eq!(c.flush_max_segs, 1);
    // The size limit: 20 + 8 + 54 × 1200 = 64828, a 55th would reach 66028.
    let (out, c) = run_with(cfg, &build(&udp(&[1200; 60])), |_| 0);
    assert_eq!(shape(&out), [54, 6]);
    assert_eq!(c.flush_size, 1);
    // No checksum: passed, nothing flushed.
    let mut s = udp(&[1200; 3]);
    s[1].udp_zero_csum = true;
    let (out, c) = run_with(cfg, &build(&s), |_| 0);
    assert_eq!(out[0], Out::Single(1));
    assert_eq!(c.pass_udp_zero_checksum, 1);
    // Padding: the UDP length no longer matches, passed without flushing.
    let mut s = udp(&[1200; 3]);
    s[1].pad = 3;
    let (out, c) = run_with(cfg, &build(&s), |_| 0);
    assert_eq!(out[0], Out::Single(1));
    assert_eq!(c.pass_bad_header, 1);
    // IPv6.
    let mut base = Spec::tcp6();
    base.udp = true;
    base.opts.clear();
    let s: Vec<Spec> = (0..5)
        .map(|i| {
            let mut s = base.clone();
            s.payload = pattern(1, i * 1000, 1000);
            s
        })
        .collect();
    let (out, _) = run_with(cfg, &build(&s), |_| 0);
    assert_eq!(shape(&out), [5]);
}

#[test]
fn full_bucket_completes_its_oldest() {
    // Nine flows in one bucket: the ninth evicts the first.
    let flows: Vec<Vec<Spec>> = (0..9)
        .map(|f| {
            let mut b = Spec::tcp4();
            b.sport = 1000 + f as u16;
            stream(&b, f, &[MSS; 3])
        })
        .collect();
    let mut frames = Vec::new();
    let mut flow_of = Vec::new();
    for round in 0..3 {
        for (f, s) in flows.iter().enumerate() {
            frames.push(s[round].build());
            flow_of.push(f);
        }
    }
    let (out, c) = run_with(GroConfig::default(), &frames, |_| 0);
    assert!(c.flush_bucket_full > 0);
    assert_eq!(out[0], Out::Single(0), "flow 0's packet was the oldest");
    // Per flow, frames come out in input order.
    for f in 0..9 {
        let order: Vec<usize> = out
            .iter()
            .flat_map(Out::ids)
            .filter(|&i| flow_of[i] == f)
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "flow {f}: {order:?}");
    }
    // Spread over buckets, nothing is evicted.
    let (out, c) = run_with(GroConfig::default(), &frames, |i| flow_of[i] as u32);
    assert_eq!(c.flush_bucket_full, 0);
    assert_eq!(shape(&out), [3; 9]);
}

#[test]
fn inconsistent_hashes_still_merge_in_order() {
    let frames = build(&full(6));
    let (out, _) = run_with(GroConfig::default(), &frames, |i| {
        (i as u32).wrapping_mul(0x9e37_79b9)
    });
    assert_eq!(shape(&out), [6]);
}

#[test]
fn receive_with_reads_through_the_handle() {
    let frames = build(&full(3));
    let mut gro: Gro<usize> = Gro::new(GroConfig::default());
    let mut out = Vec::new();
    for i in 0..frames.len() {
        gro.receive_with(i, &frames[..], |fs, &f| fs[f].as_slice(), Some(0), &mut out);
    }
    gro.flush(&mut out);
    assert!(matches!(&out[..], [GroPacket::Merged(m)] if m.segs() == 3));
}

#[test]
fn single_segment_is_emitted_untouched() {
    let frames = build(&full(1));
    let mut gro: Gro<usize> = Gro::new(GroConfig::default());
    let mut out = Vec::new();
    gro.receive(0, &frames[0], Some(0), &mut out);
    assert!(out.is_empty());
    assert_eq!(gro.held_frames(), 1);
    gro.flush(&mut out);
    assert!(matches!(out[..], [GroPacket::Single(0)]));
}

/// Checks a written merged frame with etherparse: lengths, the IPv4 header checksum, the
/// partial TCP/UDP checksum (completing it over the L4 bytes gives the real checksum),
/// and the payload (the concatenation of the segments').
fn check_written(written: &[u8], segs: &[Vec<u8>], hdr_len: usize) {
    let h = PacketHeaders::from_ethernet_slice(written).expect("parses");
    let l3 = if h.vlan.is_some() { 18 } else { 14 };
    let payload: Vec<u8> = segs.iter().flat_map(|s| s[hdr_len..].to_vec()).collect();
    let got = match h.payload {
        PayloadSlice::Tcp(p) | PayloadSlice::Udp(p) => p,
        _ => panic!("no transport payload"),
    };
    assert_eq!(got, payload.as_slice(), "payload = the segments' in order");
    let (l4_off, pseudo) = match h.net.clone().expect("ip") {
        NetHeaders::Ipv4(ip, _) => {
            assert_eq!(ip.total_len as usize, written.len() - l3);
            assert_eq!(ip.header_checksum, ip.calc_header_checksum());
            assert_eq!(checksum::sum(&written[l3..l3 + 20], 0), 0xffff);
            let first = &segs[0];
            assert_eq!(
                &written[l3 + 4..l3 + 6],
                &first[l3 + 4..l3 + 6],
                "first IP ID"
            );
            let proto = ip.protocol.0;
            let l4_len = (written.len() - l3 - 20) as u16;
            (
                l3 + 20,
                checksum::pseudo_v4(ip.source, ip.destination, proto, l4_len),
            )
        }
        NetHeaders::Ipv6(ip, _) => {
            assert_eq!(ip.payload_length as usize, written.len() - l3 - 40);
            let l4_len = (written.len() - l3 - 40) as u32;
            (
                l3 + 40,
                checksum::pseudo_v6(ip.source, ip.destination, ip.next_header.0, l4_len),
            )
        }
    };
    let (field, full) = match (h.transport.expect("l4"), h.net.expect("ip")) {
        (TransportHeader::Tcp(t), NetHeaders::Ipv4(ip, _)) => {
            (t.checksum, t.calc_checksum_ipv4(&ip, got).unwrap())
        }
        (TransportHeader::Tcp(t), NetHeaders::Ipv6(ip, _)) => {
            (t.checksum, t.calc_checksum_ipv6(&ip, got).unwrap())
        }
        (TransportHeader::Udp(u), NetHeaders::Ipv4(ip, _)) => {
            assert_eq!(u.length as usize, written.len() - l4_off);
            (u.checksum, u.calc_checksum_ipv4(&ip, got).unwrap())
        }
        (TransportHeader::Udp(u), NetHeaders::Ipv6(ip, _)) => {
            assert_eq!(u.length as usize, written.len() - l4_off);
            (u.checksum, u.calc_checksum_ipv6(&ip, got).unwrap())
        }
        _ => panic!("not TCP/UDP"),
    };
    // ~tcp_v4_check(len, saddr, daddr, 0): the folded pseudo-header sum.
    assert_eq!(field, pseudo as u16, "partial checksum = pseudo-header sum");
    // What a device (or skb_checksum_help) completes it to is the real checksum.
    assert_eq!(!(ones(&written[l4_off..]) as u16), full);
}

fn ones(b: &[u8]) -> u32 {
    checksum::sum(b, 0)
}

#[test]
fn written_packets_check_out() {
    let cfg = GroConfig {
        udp: true,
        ..GroConfig::default()
    };
    let mut v4 = full(5);
    v4[4].flags |= PSH;
    let mut v6 = stream(&Spec::tcp6(), 0, &[1428; 4]);
    v6[3].payload.truncate(100);
    let mut tagged = Spec::tcp4();
    tagged.vlan = Some(7);
    let tagged = stream(&tagged, 0, &[MSS; 3]);
    let udp: Vec<Spec> = (0..4)
        .map(|i| {
            let mut s = Spec::udp4();
            s.id += i as u16;
            s.payload = pattern(2, i * 1200, 1200);
            s
        })
        .collect();
    for specs in [v4, v6, tagged, udp] {
        let frames = build(&specs);
        let (out, _) = run_with(cfg, &frames, |_| 0);
        assert_eq!(out.len(), 1);
        let Out::Merged(ids, written, _) = &out[0] else {
            panic!("merged")
        };
        let segs: Vec<Vec<u8>> = ids.iter().map(|&i| frames[i].clone()).collect();
        let hdr_len = frames[0].len() - specs[0].payload.len();
        check_written(written, &segs, hdr_len);
        // Apart from the lengths, checksums and ORed TCP flags, the header is the first
        // segment's.
        let l3 = if specs[0].vlan.is_some() { 18 } else { 14 };
        let l4 = l3 + if specs[0].v6 { 40 } else { 20 };
        let may_change: Vec<usize> = if specs[0].v6 {
            vec![l3 + 4, l3 + 5]
        } else {
            vec![l3 + 2, l3 + 3, l3 + 10, l3 + 11]
        }
        .into_iter()
        .chain(if specs[0].udp {
            vec![l4 + 4, l4 + 5, l4 + 6, l4 + 7]
        } else {
            vec![l4 + 13, l4 + 16, l4 + 17]
        })
        .collect();
        for k in 0..hdr_len {
            assert!(
                written[k] == frames[0][k] || may_change.contains(&k),
                "header byte {k} changed"
            );
        }
    }
}

#[test]
fn builder_agrees_with_etherparse() {
    let mut tagged = Spec::tcp4();
    tagged.vlan = Some(5);
    let mut u6 = Spec::tcp6();
    u6.udp = true;
    u6.opts.clear();
    for s in [Spec::tcp4(), Spec::tcp6(), Spec::udp4(), tagged, u6] {
        let f = s.build();
        let h = PacketHeaders::from_ethernet_slice(&f).expect("parses");
        let payload = match h.payload {
            PayloadSlice::Tcp(p) | PayloadSlice::Udp(p) => p,
            _ => panic!("payload"),
        };
        assert_eq!(payload, s.payload.as_slice());
        match (h.transport.unwrap(), h.net.unwrap()) {
            (TransportHeader::Tcp(t), NetHeaders::Ipv4(ip, _)) => {
                assert_eq!(ip.header_checksum, ip.calc_header_checksum());
                assert_eq!(t.checksum, t.calc_checksum_ipv4(&ip, payload).unwrap());
            }
            (TransportHeader::Tcp(t), NetHeaders::Ipv6(ip, _)) => {
                assert_eq!(t.checksum, t.calc_checksum_ipv6(&ip, payload).unwrap());
            }
            (TransportHeader::Udp(u), NetHeaders::Ipv4(ip, _)) => {
                assert_eq!(u.checksum, u.calc_checksum_ipv4(&ip, payload).unwrap());
            }
            (TransportHeader::Udp(u), NetHeaders::Ipv6(ip, _)) => {
                assert_eq!(u.checksum, u.calc_checksum_ipv6(&ip, payload).unwrap());
            }
            _ => panic!("headers"),
        }
    }
}

#[test]
fn etherparse_built_stream_merges() {
    use etherparse::{PacketBuilder, TcpOptionElement};
    let frames: Vec<Vec<u8>> = (0..6u32)
        .map(|i| {
            let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
                .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
                .tcp(40000, 5001, 1 + i * 1000, 500)
                .ack(9)
                .options(&[TcpOptionElement::Timestamp(5, 6)])
                .unwrap();
            let mut v = Vec::new();
            b.write(&mut v, &pattern(3, i as usize * 1000, 1000))
                .unwrap();
            v
        })
        .collect();
    // etherparse writes ID 0 with DF: a fixed-ID flow.
    let (out, _) = run(&frames);
    assert_eq!(shape(&out), [6]);
    let Out::Merged(ids, written, _) = &out[0] else {
        panic!()
    };
    let segs: Vec<Vec<u8>> = ids.iter().map(|&i| frames[i].clone()).collect();
    check_written(written, &segs, frames[0].len() - 1000);
}

#[test]
fn merged_accessors_and_recycling() {
    let frames = build(&stream(&Spec::tcp4(), 0, &[MSS, MSS, 700]));
    let mut gro: Gro<usize> = Gro::new(GroConfig::default());
    let mut out = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        gro.receive(i, f, Some(0), &mut out);
    }
    let Some(GroPacket::Merged(m)) = out.pop() else {
        panic!("merged at the short segment")
    };
    assert_eq!((m.segs(), m.gso_size(), m.hdr_len()), (3, MSS, 66));
    assert_eq!(m.payload_len(2), Some(700));
    assert_eq!(m.payload_len(3), None);
    assert_eq!(m.payload_total(), 2 * MSS + 700);
    assert_eq!(m.proto(), GroProto::Tcp4);
    assert!(!m.is_empty());
    assert_eq!(m.payload_of(1, &frames[1]), Some(&frames[1][66..]));
    assert_eq!(m.header().len(), 66);
    let v = m.into_frames();
    assert_eq!(v, [0, 1, 2]);
    gro.recycle(v);
    assert_eq!(gro.pool.len(), 1);
}

#[test]
fn counters_add_up() {
    let mut a = GroCounters {
        received: 3,
        pass_flags: 1,
        flush_gap: 2,
        ..GroCounters::default()
    };
    a.add(&a.clone());
    assert_eq!((a.received, a.passed(), a.flushed()), (6, 2, 4));
}

#[test]
fn fuzz_one_smoke() {
    fuzz_one(&[]);
    fuzz_one(&[0xff; 64]);
    // A record stream of real frames, some flushed between.
    let mut data = vec![0u8];
    for (i, f) in build(&full(50)).iter().enumerate() {
        data.extend_from_slice(&(f.len() as u16).to_be_bytes());
        data.extend_from_slice(&[i as u8, (i % 7 == 0) as u8]);
        data.extend_from_slice(f);
    }
    fuzz_one(&data);
}

/// One segment of a proptest stream.
#[derive(Clone, Debug)]
struct Step {
    /// Which flow sends.
    flow: usize,
    /// Payload bytes (0 = a pure ACK).
    len: usize,
    /// TCP flags to add.
    flags: u8,
    /// Skip this many bytes first (a gap).
    gap: usize,
    /// A new ACK number from here on.
    new_ack: bool,
    /// Flush the round after this frame.
    flush: bool,
    /// Hash to pass.
    hash: u32,
}

fn step() -> impl Strategy<Value = Step> {
    (
        0usize..4,
        prop_oneof![4 => Just(MSS), 2 => 1usize..=MSS, 1 => Just(0usize)],
        prop_oneof![8 => Just(0u8), 1 => Just(PSH), 1 => Just(FIN), 1 => Just(CWR), 1 => Just(URG)],
        prop_oneof![9 => Just(0usize), 1 => 1usize..3000],
        proptest::bool::weighted(0.05),
        proptest::bool::weighted(0.03),
        any::<u32>(),
    )
        .prop_map(|(flow, len, flags, gap, new_ack, flush, hash)| Step {
            flow,
            len,
            flags,
            gap,
            new_ack,
            flush,
            hash,
        })
}

/// Builds frames for the steps: flow `f` differs in source port (and IP version, VLAN
/// and addresses for some), sequence numbers advance, IP IDs increment.
fn frames_for(steps: &[Step]) -> (Vec<Vec<u8>>, Vec<usize>, Vec<Vec<u8>>) {
    let mut bases: Vec<Spec> = (0..4)
        .map(|f| {
            let mut s = if f == 3 { Spec::tcp6() } else { Spec::tcp4() };
            s.sport = 2000 + f as u16;
            if f == 2 {
                s.vlan = Some(9);
            }
            s
        })
        .collect();
    let mut off = [0usize; 4];
    let mut frames = Vec::new();
    let mut flow_of = Vec::new();
    let mut sent: Vec<Vec<u8>> = vec![Vec::new(); 4];
    for st in steps {
        let b = &mut bases[st.flow];
        off[st.flow] += st.gap;
        if st.new_ack {
            b.ack = b.ack.wrapping_add(1000);
        }
        let mut s = b.clone();
        s.seq = b.seq.wrapping_add(off[st.flow] as u32);
        s.flags |= st.flags;
        s.payload = pattern(st.flow, off[st.flow], st.len);
        sent[st.flow].extend_from_slice(&s.payload);
        off[st.flow] += st.len;
        b.id = b.id.wrapping_add(1);
        frames.push(s.build());
        flow_of.push(st.flow);
    }
    (frames, flow_of, sent)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn interleaved_flows_keep_order_and_bytes(
        steps in proptest::collection::vec(step(), 1..200),
        udp in any::<bool>(),
    ) {
        let (frames, flow_of, sent) = frames_for(&steps);
        let cfg = GroConfig { udp, ..GroConfig::default() };
        let mut gro: Gro<usize> = Gro::new(cfg);
        let mut raw = Vec::new();
        for (i, (f, st)) in frames.iter().zip(&steps).enumerate() {
            gro.receive(i, f, Some(st.hash), &mut raw);
            invariants(&gro);
            if st.flush {
                gro.flush(&mut raw);
            }
        }
        gro.flush(&mut raw);
        invariants(&gro);
        let mut seen = vec![0u32; frames.len()];
        let mut got: Vec<Vec<u8>> = vec![Vec::new(); 4];
        let mut last_id = [None::<usize>; 4];
        for p in raw {
            match p {
                GroPacket::Single(i) => {
                    seen[i] += 1;
                    let s = parse::parse(&frames[i], gro.pcfg).ok();
                    let hdr = s.map_or(frames[i].len(), |s| s.hdr_len);
                    got[flow_of[i]].extend_from_slice(&frames[i][hdr..]);
                    let f = flow_of[i];
                    prop_assert!(last_id[f].is_none_or(|l| l < i), "flow {} reordered", f);
                    last_id[f] = Some(i);
                }
                GroPacket::Merged(m) => {
                    let ids = m.frames().to_vec();
                    let f = flow_of[ids[0]];
                    prop_assert!(ids.iter().all(|&i| flow_of[i] == f), "mixed flows");
                    prop_assert!(ids.windows(2).all(|w| w[0] < w[1]));
                    prop_assert!(last_id[f].is_none_or(|l| l < ids[0]), "flow {} reordered", f);
                    last_id[f] = ids.last().copied();
                    let l3 = if f == 2 { 18 } else { 14 };
                    prop_assert!(m.len() - l3 < GRO_LEGACY_MAX_SIZE);
                    // Sequence numbers contiguous, all but the last full.
                    let segs: Vec<Seg> = ids
                        .iter()
                        .map(|&i| parse::parse(&frames[i], gro.pcfg).unwrap())
                        .collect();
                    for (k, w) in segs.windows(2).enumerate() {
                        let (L4::Tcp(a), L4::Tcp(b)) = (w[0].l4h, w[1].l4h) else { panic!("tcp") };
                        prop_assert_eq!(a.seq.wrapping_add(w[0].payload_len), b.seq);
                        let len = w[0].payload_len as usize;
                        prop_assert_eq!(len, m.gso_size(), "segment {} short", k);
                    }
                    let mut b = Vec::new();
                    m.write_to(|&i| frames[i].as_slice(), &mut b);
                    got[f].extend_from_slice(&b[m.hdr_len()..]);
                    gro.release(m, |i| seen[i] += 1);
                }
            }
        }
        prop_assert!(seen.iter().all(|&n| n == 1), "frames out: {:?}", seen);
        prop_assert_eq!(got, sent);
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        fuzz_one(&data);
    }

    #[test]
    fn mutated_frames_never_panic(
        steps in proptest::collection::vec(step(), 1..40),
        muts in proptest::collection::vec((any::<usize>(), any::<usize>(), any::<u8>()), 0..20),
        cuts in proptest::collection::vec((any::<usize>(), any::<usize>()), 0..5),
        ctl in any::<u8>(),
    ) {
        let (mut frames, ..) = frames_for(&steps);
        for (f, at, v) in muts {
            let n = frames.len();
            let fr = &mut frames[f % n];
            let len = fr.len();
            fr[at % len] ^= v | 1;
        }
        for (f, at) in cuts {
            let n = frames.len();
            let fr = &mut frames[f % n];
            let keep = at % (fr.len() + 1);
            fr.truncate(keep);
        }
        let mut data = vec![ctl];
        for (i, f) in frames.iter().enumerate() {
            data.extend_from_slice(&(f.len() as u16).to_be_bytes());
            data.extend_from_slice(&[i as u8, (i % 11 == 0) as u8]);
            data.extend_from_slice(f);
        }
        fuzz_one(&data);
    }
}

#[test]
fn frames_module_constants() {
    // The builder's flags are the header's byte-13 bits.
    assert_eq!(u32::from(PSH) << 16, tcp::PSH);
    assert_eq!(u32::from(FIN) << 16, tcp::FIN);
    assert_eq!(u32::from(CWR) << 16, tcp::CWR);
    assert_eq!(frames::MSS, 1448);
}

/// Per-segment cost on a bulk stream (run with `--release --ignored --nocapture`).
#[test]
#[ignore = "timing; run explicitly in release mode"]
fn throughput() {
    let frames = build(&full(4500));
    for verify in [true, false] {
        let cfg = GroConfig {
            verify_checksums: verify,
            ..GroConfig::default()
        };
        let mut gro: Gro<usize> = Gro::new(cfg);
        let mut out = Vec::with_capacity(256);
        let rounds = 20;
        let start = std::time::Instant::now();
        for _ in 0..rounds {
            for (i, f) in frames.iter().enumerate() {
                gro.receive(i, f, Some(7), &mut out);
                for p in out.drain(..) {
                    if let GroPacket::Merged(m) = p {
                        gro.release(m, |_| {});
                    }
                }
            }
            gro.flush(&mut out);
            out.clear();
        }
        let per = start.elapsed().as_nanos() as f64 / (rounds * frames.len()) as f64;
        println!("verify_checksums={verify}: {per:.1} ns per 1448-byte segment");
    }
}

/// Without a caller's hash, GRO buckets flows by the key it parsed: 64 flows that differ
/// only in a source port use every one of the 8 buckets.
#[test]
fn own_bucket_hash_spreads_flows() {
    let mut used = [false; 8];
    for sport in 0u32..64 {
        let key = parse::FlowKey {
            ports: (40_000 + sport) << 16 | 9000,
            addrs: [0; 32],
            flow: 0,
            proto: crate::wire::IPPROTO_TCP,
            v6: false,
            l2_len: 14,
            l2: [0; parse::MAX_L2],
        };
        used[key.bucket_hash() as usize % 8] = true;
    }
    assert!(used.iter().all(|&u| u), "{used:?}");
}
