//! Qdisc tests on fake packets and synthetic time.

use proptest::prelude::*;

use super::*;
use crate::gen::rate::{Layer, Rate};

/// A fake packet: an id to check order and accounting, and what the qdisc looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pkt {
    id: u64,
    len: usize,
    flow: u32,
    prio: u8,
    ts: u64,
}

impl QPacket for Pkt {
    fn len(&self) -> usize {
        self.len
    }
    fn flow(&self) -> u32 {
        self.flow
    }
    fn priority(&self) -> u8 {
        self.prio
    }
    fn tstamp_ns(&self) -> u64 {
        self.ts
    }
}

fn pkt(id: u64, len: usize) -> Pkt {
    Pkt {
        id,
        len,
        flow: 0,
        prio: 0,
        ts: 0,
    }
}

fn flow_pkt(id: u64, len: usize, flow: u32) -> Pkt {
    Pkt {
        flow,
        ..pkt(id, len)
    }
}

fn ids(v: &[Pkt]) -> Vec<u64> {
    v.iter().map(|p| p.id).collect()
}

fn pps(r: f64) -> Rate {
    Rate::Pps(r)
}

/// fq with these pacing settings and Linux's other defaults.
fn fq_cfg(maxrate: Option<Rate>, flow_rates: Vec<(u32, Rate)>) -> QdiscConfig {
    QdiscConfig::Fq {
        quantum: FQ_DEFAULT_QUANTUM,
        flow_limit: FQ_DEFAULT_FLOW_LIMIT,
        limit: FQ_DEFAULT_LIMIT,
        maxrate,
        flow_rates,
    }
}

#[test]
fn tos_to_priority_matches_ip_tos2prio() {
    // (tos, priority): RFC 1349 bits through ip_tos2prio; ECN bits (0x03) are ignored.
    let table = [
        (0x00, 0),
        (0x02, 0), // ECT(1) must not change the priority
        (0x01, 0), // ECT(0)/CE low bit is outside IPTOS_TOS_MASK
        (0x04, 0), // reliability
        (0x08, 2), // throughput → bulk
        (0x0a, 2),
        (0x10, 6), // low delay → interactive
        (0x18, 4), // low delay + throughput → interactive bulk
        (0xb8, 4), // DSCP EF: 0xb8 & 0x1e = 0x18
        (0xff, 4),
        (0xe0, 0), // precedence bits are outside the mask
    ];
    for (tos, want) in table {
        assert_eq!(tos_to_priority(tos), want, "tos {tos:#04x}");
    }
    // Every priority lands in a valid band.
    for tos in 0..=255u8 {
        assert!(prio::band_of(tos_to_priority(tos)) < PRIO_BANDS);
    }
}

#[test]
fn config_helpers() {
    assert_eq!(
        QdiscConfig::parse_kind("pfifo", None).unwrap(),
        QdiscConfig::pfifo()
    );
    assert_eq!(
        QdiscConfig::parse_kind("prio", None).unwrap().name(),
        "prio"
    );
    assert!(QdiscConfig::parse_kind("tbf", None).is_err());
    let tbf = QdiscConfig::parse_kind("tbf", Some(pps(1e6))).unwrap();
    assert_eq!(
        tbf,
        QdiscConfig::Tbf {
            rate: pps(1e6),
            burst_ps: 4_000_000_000,
            limit: 1000
        }
    );
    // A slow bit rate gets a burst of at least one jumbo frame.
    let slow = Rate::Bits {
        bps: 64e3,
        layer: Layer::L2,
    };
    assert_eq!(
        QdiscConfig::default_burst_ps(&slow),
        slow.cost_ps(MAX_FRAME_LEN)
    );
    let e = QdiscConfig::parse_kind("htb", None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("htb") && e.contains("pfifo"), "{e}");
    assert!(QdiscConfig::fq(None).is_work_conserving());
    assert!(!QdiscConfig::fq(Some(pps(1.0))).is_work_conserving());
    assert!(!tbf.is_work_conserving());
    for (c, n) in [
        (QdiscConfig::pfifo(), "pfifo"),
        (QdiscConfig::prio(), "prio"),
        (tbf, "tbf"),
        (QdiscConfig::fq(None), "fq"),
    ] {
        assert_eq!(c.name(), n);
        assert_eq!(Qdisc::<Pkt>::new(&c).name(), n);
    }
}

#[test]
fn pfifo_tail_drop_and_stats() {
    let mut q = Qdisc::new(&QdiscConfig::Pfifo { limit: 3 });
    for i in 0..5 {
        let r = q.enqueue(pkt(i, 100 + i as usize), 0);
        assert_eq!(r.is_ok(), i < 3, "packet {i}");
        if let Err(p) = r {
            assert_eq!(p.id, i, "the refused packet comes back");
        }
    }
    let s = q.stats();
    assert_eq!((s.dropped, s.backlog_packets, s.backlog_bytes), (2, 3, 303));
    let mut out = Vec::new();
    assert_eq!(q.dequeue_batch(0, 2, &mut out), 2);
    assert_eq!(ids(&out), [0, 1]);
    let s = q.stats();
    assert_eq!((s.sent_packets, s.sent_bytes), (2, 201));
    assert_eq!((s.backlog_packets, s.backlog_bytes), (1, 102));
    assert_eq!(s.overlimits, 0);
    assert_eq!(q.next_event_ns(7), Some(7));
    assert_eq!(q.dequeue_batch(0, 64, &mut out), 1);
    assert!(q.is_empty());
    assert_eq!(q.next_event_ns(7), None);
    assert_eq!(q.dequeue_batch(0, 64, &mut out), 0);
    assert_eq!(
        q.stats().overlimits,
        0,
        "an empty queue is not over a limit"
    );
}

#[test]
fn pfifo_limit_zero_drops_everything() {
    let mut q = Qdisc::new(&QdiscConfig::Pfifo { limit: 0 });
    assert!(q.enqueue(pkt(0, 60), 0).is_err());
    assert_eq!(q.stats().dropped, 1);
}

#[test]
fn prio_band_order_and_per_band_drop() {
    let mut q = Qdisc::new(&QdiscConfig::Prio { limit: 2 });
    // (id, priority) → band: 0→1, 6→0, 1→2, 7→0, 4→1, 2→2, 3→2 (dropped: band 2 full),
    // 16 → 16 & 15 = 0 → band 1 (dropped: band 1 full).
    let input = [
        (0, 0),
        (1, 6),
        (2, 1),
        (3, 7),
        (4, 4),
        (5, 2),
        (6, 3),
        (7, 16),
    ];
    let mut dropped = Vec::new();
    for (id, prio) in input {
        let p = Pkt {
            prio,
            ..pkt(id, 60)
        };
        if let Err(p) = q.enqueue(p, 0) {
            dropped.push(p.id);
        }
    }
    assert_eq!(dropped, [6, 7]);
    let mut out = Vec::new();
    q.dequeue_batch(0, 64, &mut out);
    assert_eq!(
        ids(&out),
        [1, 3, 0, 4, 2, 5],
        "band 0, then 1, then 2, FIFO within"
    );
    // A later high-priority packet overtakes queued low-priority ones.
    for (id, prio) in [(10, 1), (11, 0), (12, 6)] {
        q.enqueue(
            Pkt {
                prio,
                ..pkt(id, 60)
            },
            0,
        )
        .unwrap();
    }
    out.clear();
    q.dequeue_batch(0, 64, &mut out);
    assert_eq!(ids(&out), [12, 11, 10]);
    assert_eq!(q.stats().dropped, 2);
}

#[test]
fn requeue_keeps_order_ahead_of_everything() {
    let mut q = Qdisc::new(&QdiscConfig::pfifo());
    for i in 0..6 {
        q.enqueue(pkt(i, 100), 0).unwrap();
    }
    let mut out = Vec::new();
    q.dequeue_batch(0, 4, &mut out);
    assert_eq!(ids(&out), [0, 1, 2, 3]);
    // The ring took 0 and 1.
    let mut rest = out.split_off(2);
    q.requeue(&mut rest);
    assert!(rest.is_empty());
    let s = q.stats();
    assert_eq!((s.sent_packets, s.sent_bytes, s.requeues), (2, 200, 2));
    assert_eq!((s.backlog_packets, s.backlog_bytes), (4, 400));
    // Dequeue 2, 3, 4; the ring refuses 3 and 4; then 2 refuses again later.
    out.clear();
    q.dequeue_batch(0, 3, &mut out);
    assert_eq!(ids(&out), [2, 3, 4]);
    let mut rest = out.split_off(1);
    q.requeue(&mut rest);
    let mut again = out.split_off(0);
    q.requeue(&mut again);
    out.clear();
    q.dequeue_batch(0, 64, &mut out);
    assert_eq!(
        ids(&out),
        [2, 3, 4, 5],
        "latest requeue first, each in its order"
    );
    let s = q.stats();
    assert_eq!((s.sent_packets, s.requeues, s.backlog_packets), (6, 5, 0));
}

#[test]
fn requeued_packets_ignore_shaping() {
    // 1 kpps: one packet per ms.
    let mut q = Qdisc::new(&QdiscConfig::tbf(pps(1e3)));
    for i in 0..3 {
        q.enqueue(pkt(i, 60), 0).unwrap();
    }
    let mut out = Vec::new();
    assert_eq!(q.dequeue_batch(1_000_000, 64, &mut out), 1);
    q.requeue(&mut out);
    assert_eq!(q.next_event_ns(1_000_000), Some(1_000_000));
    assert!(!q.can_bypass());
    assert_eq!(q.dequeue_batch(1_000_000, 64, &mut out), 1);
    assert_eq!(ids(&out), [0]);
    assert_eq!(q.next_event_ns(1_000_000), Some(2_000_000));
}

#[test]
fn tbf_starts_empty_and_paces() {
    // 1 Mpps: 1 µs = 1e6 ps a packet.
    let mut q = Qdisc::new(&QdiscConfig::tbf(pps(1e6)));
    let t0 = 5_000;
    for i in 0..100 {
        q.enqueue(pkt(i, 60), t0).unwrap();
    }
    let mut out = Vec::new();
    assert_eq!(
        q.dequeue_batch(t0, 64, &mut out),
        0,
        "no burst at the start"
    );
    assert_eq!(q.stats().overlimits, 1);
    assert_eq!(q.next_event_ns(t0), Some(t0 + 1_000));
    assert_eq!(q.dequeue_batch(t0 + 999, 64, &mut out), 0);
    assert_eq!(q.stats().overlimits, 2);
    assert_eq!(q.next_event_ns(t0 + 999), Some(t0 + 1_000));
    assert_eq!(q.dequeue_batch(t0 + 1_000, 64, &mut out), 1);
    assert_eq!(q.dequeue_batch(t0 + 10_500, 64, &mut out), 9);
    assert_eq!(q.next_event_ns(t0 + 10_500), Some(t0 + 11_000));
    // Quota-limited: no overlimit counted when the quota, not the bucket, stops the batch.
    let before = q.stats().overlimits;
    assert_eq!(q.dequeue_batch(t0 + 20_000, 3, &mut out), 3);
    assert_eq!(q.stats().overlimits, before);
    assert_eq!(q.next_event_ns(t0 + 20_000), Some(t0 + 20_000));
}

/// tbf at 1 Mpps with a 5-packet (5 µs) bucket, limit 1000.
fn tbf_1mpps_burst_5() -> Qdisc<Pkt> {
    Qdisc::new(&QdiscConfig::Tbf {
        rate: pps(1e6),
        burst_ps: 5_000_000,
        limit: 1000,
    })
}

#[test]
fn tbf_refills_to_burst_when_idle_and_drops_oversized() {
    let mut q = tbf_1mpps_burst_5();
    q.enqueue(pkt(0, 60), 0).unwrap();
    let mut out = Vec::new();
    assert_eq!(q.dequeue_batch(1_000, 64, &mut out), 1);
    // Idle for a long time, then 10 packets: 5 leave at once, the rest paced.
    for i in 1..=10 {
        q.enqueue(pkt(i, 60), 1_000_000).unwrap();
    }
    assert_eq!(q.dequeue_batch(1_000_000, 64, &mut out), 5);
    assert_eq!(q.dequeue_batch(1_002_000, 64, &mut out), 2);
    // A bit rate whose bucket cannot hold a 1514-byte frame: that frame is dropped.
    let cfg = QdiscConfig::Tbf {
        rate: Rate::Bits {
            bps: 1e9,
            layer: Layer::L2,
        },
        burst_ps: Rate::Bits {
            bps: 1e9,
            layer: Layer::L2,
        }
        .cost_ps(1000),
        limit: 1000,
    };
    let mut q = Qdisc::new(&cfg);
    assert!(q.enqueue(pkt(0, 1514), 0).is_err());
    assert!(q.enqueue(pkt(1, 1000), 0).is_ok());
    assert_eq!(q.stats().dropped, 1);
}

#[test]
fn tbf_counts_budget_lost_to_a_stall_with_a_backlog_but_not_idle_time() {
    let mut q = tbf_1mpps_burst_5();
    let mut out = Vec::new();
    // Idle: one packet, then nothing queued for 1 ms, then a packet. Not behind.
    q.enqueue(pkt(0, 60), 0).unwrap();
    assert_eq!(q.dequeue_batch(1_000, 64, &mut out), 1);
    q.enqueue(pkt(1, 60), 1_000_000).unwrap();
    assert_eq!(q.dequeue_batch(1_000_000, 64, &mut out), 1);
    assert_eq!(q.stats().behind_ns, 0);
    // A backlog, and the caller stalls 20 µs: the bucket held 4 µs after that packet, 20 µs
    // accrue, it caps at 5 µs, so 19 µs of the schedule are lost.
    for i in 2..100 {
        q.enqueue(pkt(i, 60), 1_000_000).unwrap();
    }
    assert_eq!(q.dequeue_batch(1_020_000, 64, &mut out), 5);
    assert_eq!(q.stats().behind_ns, 19_000);
    // Dequeued on time afterwards: nothing more is lost.
    assert_eq!(q.dequeue_batch(1_023_000, 64, &mut out), 3);
    assert_eq!(q.stats().behind_ns, 19_000);
}

#[test]
fn tbf_bit_rate_costs_by_size() {
    // 10 Gbit/s at L1: a 60-byte frame costs 67.2 ns, a 1514-byte one 1230.4 ns.
    let rate = Rate::Bits {
        bps: 10e9,
        layer: Layer::L1,
    };
    let mut q = Qdisc::new(&QdiscConfig::tbf(rate));
    q.enqueue(pkt(0, 1514), 0).unwrap();
    q.enqueue(pkt(1, 60), 0).unwrap();
    assert_eq!(q.next_event_ns(0), Some(1231));
    let mut out = Vec::new();
    assert_eq!(q.dequeue_batch(1230, 64, &mut out), 0);
    assert_eq!(q.dequeue_batch(1231, 64, &mut out), 1);
    // 1231 ns gave 1_231_000 ps; 1_230_400 spent; 600 left; 60 bytes need 67_200.
    assert_eq!(q.next_event_ns(1231), Some(1231 + 67));
    assert_eq!(q.dequeue_batch(1231 + 67, 64, &mut out), 1);
}

#[test]
fn fq_drr_is_fair_in_bytes() {
    let mut q = Qdisc::new(&QdiscConfig::fq(None));
    let (small, big) = (100usize, 1500usize);
    let mut id = 0;
    let mut bytes = [0u64; 2];
    let mut out = Vec::new();
    for round in 0..2_000 {
        // Both flows topped up to their limit (100 packets) each round, so both stay
        // backlogged; the refused packet counts as a drop.
        for (flow, len) in [(0u32, small), (1, big)] {
            while q.enqueue(flow_pkt(id, len, flow), round).is_ok() {
                id += 1;
            }
        }
        out.clear();
        q.dequeue_batch(round, 64, &mut out);
        for p in &out {
            bytes[p.flow as usize] += p.len as u64;
        }
        let diff = bytes[0].abs_diff(bytes[1]);
        // DRR: at a round boundary the flows differ by less than one packet; within a
        // round by at most a quantum plus a packet.
        assert!(
            diff <= (FQ_DEFAULT_QUANTUM + big) as u64,
            "round {round}: {bytes:?}"
        );
    }
    let total = bytes[0] + bytes[1];
    assert!(total > 1_000_000, "{bytes:?}");
    assert!(
        bytes[0].abs_diff(bytes[1]) <= FQ_DEFAULT_QUANTUM as u64,
        "{bytes:?}"
    );
    // The per-flow limit held: drops happened and were counted.
    assert!(q.stats().dropped > 0);
}

#[test]
fn fq_new_flow_served_before_old() {
    let mut q = Qdisc::new(&QdiscConfig::fq(None));
    for i in 0..50 {
        q.enqueue(flow_pkt(i, 1000, 1), 0).unwrap();
    }
    let mut out = Vec::new();
    q.dequeue_batch(0, 10, &mut out);
    // Flow 1 is old now (it used up its quantum); a new flow 2 goes first.
    q.enqueue(flow_pkt(100, 1000, 2), 0).unwrap();
    out.clear();
    q.dequeue_batch(0, 1, &mut out);
    assert_eq!(ids(&out), [100]);
}

#[test]
fn fq_pacing_rates_one_to_three() {
    // Flow 1 at 100 kpps (10 µs a packet), flow 2 at 300 kpps (3.333 µs), one second.
    let cfg = fq_cfg(None, vec![(1, pps(100e3)), (2, pps(300e3))]);
    let mut q = Qdisc::new(&cfg);
    let mut id = 0;
    let mut sent = [0u64; 3];
    let mut out = Vec::new();
    let step = 7_000; // ns between dequeue calls, not a multiple of either period
    let end = 1_000_000_000u64;
    let mut now = 0;
    while now <= end {
        for flow in [1u32, 2] {
            while q.enqueue(flow_pkt(id, 60, flow), now).is_ok() {
                id += 1;
            }
        }
        out.clear();
        q.dequeue_batch(now, 64, &mut out);
        for p in &out {
            sent[p.flow as usize] += 1;
        }
        now += step;
    }
    let last = now - step;
    // A flow's first packet leaves at once, then one per cost: ⌊T / cost⌋ + 1.
    let ideal = |cost_ps: u64| last * 1000 / cost_ps + 1;
    let (c1, c2) = (pps(100e3).cost_ps(60), pps(300e3).cost_ps(60));
    assert!(
        sent[1].abs_diff(ideal(c1)) <= 1,
        "{sent:?} vs {}",
        ideal(c1)
    );
    assert!(
        sent[2].abs_diff(ideal(c2)) <= 1,
        "{sent:?} vs {}",
        ideal(c2)
    );
    let ratio = sent[2] as f64 / sent[1] as f64;
    assert!((ratio - 3.0).abs() < 1e-4, "{sent:?}");
    // Throttling was counted, and the watchdog names the next departure.
    assert!(q.stats().overlimits > 0);
    let t = q.next_event_ns(last).unwrap();
    assert!(t > last && t <= last + 10_000, "{t}");
}

#[test]
fn fq_maxrate_paces_unlisted_flows_and_watchdog_is_exact() {
    let cfg = fq_cfg(Some(pps(1e6)), vec![(9, pps(1e3))]);
    let mut q = Qdisc::new(&cfg);
    assert!(!q.can_bypass());
    for i in 0..3 {
        q.enqueue(flow_pkt(i, 60, 0), 100).unwrap();
    }
    let mut out = Vec::new();
    assert_eq!(
        q.dequeue_batch(100, 64, &mut out),
        1,
        "first packet at once"
    );
    assert_eq!(q.stats().overlimits, 1);
    assert_eq!(q.next_event_ns(100), Some(1_100));
    assert_eq!(q.dequeue_batch(1_099, 64, &mut out), 0);
    assert_eq!(q.dequeue_batch(1_100, 64, &mut out), 1);
    // Flow 9 has its own (slower) rate.
    q.enqueue(flow_pkt(10, 60, 9), 1_100).unwrap();
    q.enqueue(flow_pkt(11, 60, 9), 1_100).unwrap();
    out.clear();
    q.dequeue_batch(1_100, 64, &mut out);
    assert_eq!(ids(&out), [10]);
    out.clear();
    q.dequeue_batch(2_100, 64, &mut out);
    assert_eq!(ids(&out), [2]);
    assert_eq!(q.next_event_ns(2_100), Some(1_001_100));
}

#[test]
fn fq_late_wakeup_catches_up_within_horizon() {
    // 1 Mpps; the caller sleeps 2 ms (within the 4 ms horizon), then 10 ms (beyond it).
    let cfg = QdiscConfig::Fq {
        quantum: FQ_DEFAULT_QUANTUM,
        flow_limit: 20_000,
        limit: 20_000,
        maxrate: Some(pps(1e6)),
        flow_rates: vec![],
    };
    let mut q = Qdisc::new(&cfg);
    let mut id = 0;
    let mut fill = |q: &mut Qdisc<Pkt>, now| {
        while q.stats().backlog_packets < 20_000 {
            if q.enqueue(flow_pkt(id, 60, 0), now).is_err() {
                break;
            }
            id += 1;
        }
    };
    fill(&mut q, 0);
    let mut out = Vec::new();
    q.dequeue_batch(0, usize::MAX, &mut out);
    assert_eq!(out.len(), 1);
    out.clear();
    q.dequeue_batch(2_000_000, usize::MAX, &mut out);
    assert_eq!(out.len(), 2_000, "caught up fully after 2 ms");
    assert_eq!(q.stats().behind_ns, 0);
    fill(&mut q, 2_000_000);
    out.clear();
    q.dequeue_batch(12_000_000, usize::MAX, &mut out);
    assert_eq!(out.len(), 4_001, "caught up by the 4 ms horizon only");
    // The schedule stood at 2.001 ms (2001 packets); 12 ms less the 4 ms horizon is lost.
    assert_eq!(q.stats().behind_ns, 5_999_000);
    // Idle is not lost budget: drain, wait 50 ms with nothing queued, send again.
    let mut t = 12_000_000;
    while q.stats().backlog_packets > 0 {
        t += 1_000_000;
        q.dequeue_batch(t, usize::MAX, &mut out);
    }
    let before = q.stats().behind_ns;
    q.enqueue(flow_pkt(u64::MAX, 60, 0), t + 50_000_000)
        .unwrap();
    out.clear();
    q.dequeue_batch(t + 50_000_000, usize::MAX, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(q.stats().behind_ns, before, "idle time is not behind");
}

#[test]
fn fq_edt_waits_and_far_future_is_dropped() {
    let mut q = Qdisc::new(&QdiscConfig::fq(None));
    let later = Pkt {
        ts: 5_000,
        ..flow_pkt(0, 60, 1)
    };
    q.enqueue(later, 0).unwrap();
    q.enqueue(flow_pkt(1, 60, 2), 0).unwrap();
    let mut out = Vec::new();
    q.dequeue_batch(0, 64, &mut out);
    assert_eq!(ids(&out), [1], "the other flow is not held up");
    assert_eq!(q.stats().overlimits, 1);
    assert_eq!(q.next_event_ns(0), Some(5_000));
    assert_eq!(q.dequeue_batch(4_999, 64, &mut out), 0);
    assert_eq!(q.dequeue_batch(5_000, 64, &mut out), 1);
    let far = Pkt {
        ts: 20_000_000_000,
        ..flow_pkt(2, 60, 1)
    };
    assert!(q.enqueue(far, 5_000).is_err(), "beyond the 10 s horizon");
    assert_eq!(q.stats().dropped, 1);
}

#[test]
fn fq_limits_and_many_flows() {
    let cfg = QdiscConfig::Fq {
        quantum: 1,
        flow_limit: 2,
        limit: 5,
        maxrate: None,
        flow_rates: vec![],
    };
    let mut q = Qdisc::new(&cfg);
    let r: Vec<bool> = [
        (0, 7),
        (1, 7),
        (2, 7),
        (3, 1_000_000),
        (4, 1_000_000),
        (5, 3),
    ]
    .iter()
    .map(|&(id, flow)| q.enqueue(flow_pkt(id, 60, flow), 0).is_ok())
    .collect();
    assert_eq!(r, [true, true, false, true, true, true], "flow limit 2");
    assert!(q.enqueue(flow_pkt(6, 60, 4), 0).is_err(), "total limit 5");
    // Quantum 1 byte: strict alternation between flows, new flows first.
    let mut out = Vec::new();
    q.dequeue_batch(0, 64, &mut out);
    assert_eq!(out.len(), 5);
    let mut all = ids(&out);
    all.sort_unstable();
    assert_eq!(all, [0, 1, 3, 4, 5]);
    // Many distinct keys, including huge ones, stay addressable.
    let mut q = Qdisc::new(&QdiscConfig::Fq {
        quantum: 3028,
        flow_limit: 10,
        limit: 100_000,
        maxrate: None,
        flow_rates: vec![],
    });
    for i in 0..20_000u64 {
        let key = (i as u32).wrapping_mul(2_654_435_761);
        q.enqueue(flow_pkt(i, 60, key), 0).unwrap();
    }
    out.clear();
    q.dequeue_batch(0, usize::MAX, &mut out);
    assert_eq!(out.len(), 20_000);
}

#[test]
fn can_bypass_truth_table() {
    let bits = Rate::Bits {
        bps: 1e9,
        layer: Layer::L1,
    };
    let table = [
        (QdiscConfig::pfifo(), true),
        (QdiscConfig::prio(), true),
        (QdiscConfig::tbf(pps(1e6)), false),
        (QdiscConfig::tbf(bits), false),
        (QdiscConfig::fq(None), true),
        (QdiscConfig::fq(Some(bits)), false),
        (fq_cfg(None, vec![(3, pps(1e3))]), false),
    ];
    for (cfg, empty_ok) in table {
        let mut q = Qdisc::<Pkt>::new(&cfg);
        assert_eq!(q.can_bypass(), empty_ok, "{} empty", cfg.name());
        assert_eq!(cfg.is_work_conserving(), empty_ok);
        q.enqueue(pkt(0, 60), 0).unwrap();
        assert!(!q.can_bypass(), "{} with a packet queued", cfg.name());
        let mut out = Vec::new();
        let n = q.dequeue_batch(1_000_000, 64, &mut out);
        assert_eq!(n, 1, "{}", cfg.name());
        assert_eq!(q.can_bypass(), empty_ok, "{} drained", cfg.name());
        q.requeue(&mut out);
        assert!(!q.can_bypass(), "{} with a packet requeued", cfg.name());
    }
    // Bypassed packets count as sent.
    let mut q = Qdisc::<Pkt>::new(&QdiscConfig::pfifo());
    q.bypassed(3, 180);
    assert_eq!((q.stats().sent_packets, q.stats().sent_bytes), (3, 180));
}

#[test]
fn drain_returns_everything() {
    for cfg in [
        QdiscConfig::pfifo(),
        QdiscConfig::prio(),
        QdiscConfig::tbf(pps(1e6)),
        QdiscConfig::fq(None),
        fq_cfg(Some(pps(1e6)), vec![]),
    ] {
        let mut q = Qdisc::new(&cfg);
        for i in 0..20 {
            q.enqueue(
                Pkt {
                    prio: (i % 16) as u8,
                    flow: (i % 3) as u32,
                    ..pkt(i, 60 + i as usize)
                },
                0,
            )
            .unwrap();
        }
        let mut out = Vec::new();
        q.dequeue_batch(2_500, 4, &mut out);
        let sent = out.len();
        assert!(sent >= 2, "{}: {sent}", cfg.name());
        let mut back = out.split_off(1);
        q.requeue(&mut back);
        let mut drained = Vec::new();
        q.drain(&mut drained);
        let mut all = ids(&out);
        all.extend(ids(&drained));
        all.sort_unstable();
        assert_eq!(all, (0..20).collect::<Vec<_>>(), "{}", cfg.name());
        assert!(q.is_empty());
        let s = q.stats();
        assert_eq!(
            (s.backlog_packets, s.backlog_bytes),
            (0, 0),
            "{}",
            cfg.name()
        );
        assert_eq!(s.sent_packets, 1, "{}: drained is not sent", cfg.name());
        assert_eq!(q.next_event_ns(0), None);
        // Usable again after a drain.
        q.enqueue(pkt(99, 60), 10_000_000).unwrap();
        out.clear();
        assert_eq!(
            q.dequeue_batch(20_000_000, 64, &mut out),
            1,
            "{}",
            cfg.name()
        );
    }
}

#[test]
fn stats_add_sums_fields() {
    let a = QdiscStats {
        sent_packets: 1,
        sent_bytes: 2,
        dropped: 3,
        overlimits: 4,
        requeues: 5,
        behind_ns: 9,
        backlog_packets: 6,
        backlog_bytes: 7,
    };
    let mut s = a;
    s.add(&a);
    assert_eq!(
        s,
        QdiscStats {
            sent_packets: 2,
            sent_bytes: 4,
            dropped: 6,
            overlimits: 8,
            requeues: 10,
            behind_ns: 18,
            backlog_packets: 12,
            backlog_bytes: 14,
        }
    );
}

/// Keeps `q` holding at least `want` packets of random sizes from `sizes`.
fn top_up(q: &mut Qdisc<Pkt>, now: u64, want: usize, sizes: &[usize], id: &mut u64) {
    while q.len() < want {
        let len = sizes
            .get(*id as usize % sizes.len().max(1))
            .copied()
            .unwrap_or(60);
        if q.enqueue(pkt(*id, len), now).is_err() {
            break;
        }
        *id += 1;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// With a packet rate, the packets sent by T are ⌊(T − t0)·rate⌋ (± 1), whatever the
    /// call times, as long as calls come at least once per burst minus one packet.
    #[test]
    fn tbf_pps_precision(
        rate in 1e3f64..2e9,
        k in 2u64..100,
        gaps in proptest::collection::vec(0u64..1_000_000, 1..300),
        t0 in 0u64..1_000_000_000,
        sizes in proptest::collection::vec(60usize..1514, 1..8),
    ) {
        let r = pps(rate);
        let cost = r.cost_ps(60);
        let burst_ps = cost * k;
        let mut q = Qdisc::new(&QdiscConfig::Tbf { rate: r, burst_ps, limit: 1 << 20 });
        let max_gap_ns = (burst_ps - cost) / 1000;
        prop_assume!(max_gap_ns > 0);
        let mut id = 0;
        top_up(&mut q, t0, k as usize + 2, &sizes, &mut id);
        let mut now = t0;
        let mut sent = 0u64;
        let mut out = Vec::new();
        for g in gaps {
            now += g % (max_gap_ns + 1);
            top_up(&mut q, now, k as usize + 2, &sizes, &mut id);
            out.clear();
            sent += q.dequeue_batch(now, usize::MAX, &mut out) as u64;
            let ideal = (now - t0) * 1000 / cost;
            prop_assert!(sent.abs_diff(ideal) <= 1, "sent {} ideal {} at {}", sent, ideal, now - t0);
            // Everything due was taken: the watchdog points to the future.
            let t = q.next_event_ns(now).unwrap();
            prop_assert!(t > now);
        }
        prop_assert_eq!(q.stats().sent_packets, sent);
    }

    /// With bit rates at L1 or L2 over mixed sizes, the wire bits sent by T match
    /// (T − t0)·bps within one frame; and the watchdog time is exact.
    #[test]
    fn tbf_bits_precision(
        bps in 1e6f64..1.6e12,
        l1 in any::<bool>(),
        k in 1u64..20,
        gaps in proptest::collection::vec(0u64..u64::MAX, 1..200),
        sizes in proptest::collection::vec(60usize..1514, 1..8),
    ) {
        let layer = if l1 { Layer::L1 } else { Layer::L2 };
        let r = Rate::Bits { bps, layer };
        let max_cost = r.cost_ps(1514);
        let burst_ps = max_cost * (k + 1);
        let max_gap_ns = (burst_ps - max_cost) / 1000;
        prop_assume!(max_gap_ns > 0);
        let mut q = Qdisc::new(&QdiscConfig::Tbf { rate: r, burst_ps, limit: 1 << 20 });
        let want = (burst_ps / r.cost_ps(60)) as usize + 2;
        let mut id = 0;
        let t0 = 1_000;
        top_up(&mut q, t0, want, &sizes, &mut id);
        let mut now = t0;
        let (mut cost_sent, mut bits_sent) = (0u128, 0f64);
        let mut out = Vec::new();
        for g in gaps {
            now += g % (max_gap_ns + 1);
            top_up(&mut q, now, want, &sizes, &mut id);
            out.clear();
            q.dequeue_batch(now, usize::MAX, &mut out);
            for p in &out {
                cost_sent += u128::from(r.cost_ps(p.len));
                bits_sent += layer.wire_bits(p.len);
            }
            let elapsed_ps = u128::from(now - t0) * 1000;
            prop_assert!(cost_sent <= elapsed_ps);
            prop_assert!(elapsed_ps - cost_sent < u128::from(max_cost), "budget left unused");
            let ideal_bits = (now - t0) as f64 * 1e-9 * bps;
            // Within one frame, plus the per-frame rounding of costs to 0.5 ps.
            let slack = layer.wire_bits(1514) + id as f64 * 0.5e-12 * bps + 1e-6;
            prop_assert!((bits_sent - ideal_bits).abs() <= slack, "{} vs {}", bits_sent, ideal_bits);
            let t = q.next_event_ns(now).unwrap();
            prop_assert!(t > now);
        }
    }

    /// The counts add up under any sequence of operations, for every kind: every packet is
    /// dropped at enqueue, sent, queued, or drained, exactly once; the watchdog is never
    /// late.
    #[test]
    fn counts_add_up(
        kind in 0usize..6,
        ops in proptest::collection::vec((0u8..4, 0u64..200_000, 40usize..1600, 0u32..5, 0u8..16, 0usize..70), 1..400),
    ) {
        let cfgs = [
            QdiscConfig::Pfifo { limit: 50 },
            QdiscConfig::Prio { limit: 20 },
            QdiscConfig::Tbf { rate: pps(1e5), burst_ps: 50_000_000, limit: 60 },
            QdiscConfig::Tbf { rate: Rate::Bits { bps: 1e8, layer: Layer::L1 }, burst_ps: 200_000_000, limit: 60 },
            QdiscConfig::Fq { quantum: 1514, flow_limit: 15, limit: 50, maxrate: None, flow_rates: vec![] },
            QdiscConfig::Fq { quantum: 3028, flow_limit: 15, limit: 50, maxrate: Some(pps(1e5)), flow_rates: vec![(2, Rate::Bits { bps: 1e8, layer: Layer::L2 })] },
        ];
        let cfg = &cfgs[kind % cfgs.len()];
        let mut q = Qdisc::new(cfg);
        let mut now = 0u64;
        let mut id = 0u64;
        let (mut enq, mut enq_bytes, mut refused) = (0u64, 0u64, 0u64);
        let mut sent: Vec<Pkt> = Vec::new();
        let mut last: Vec<Pkt> = Vec::new();
        for (op, dt, len, flow, prio, n) in ops {
            now += dt;
            match op {
                0 | 1 => {
                    let key = if flow == 4 { 3_000_000_000 } else { flow };
                    let ts = if op == 1 && dt % 3 == 0 { now + dt } else { 0 };
                    let p = Pkt { id, len, flow: key, prio, ts };
                    id += 1;
                    match q.enqueue(p, now) {
                        Ok(()) => { enq += 1; enq_bytes += len as u64; }
                        Err(p) => { refused += 1; prop_assert_eq!(p.id, id - 1); }
                    }
                }
                2 => {
                    last.clear();
                    q.dequeue_batch(now, n, &mut last);
                    prop_assert!(last.len() <= n);
                    // The ring takes a random part; the rest is requeued.
                    let keep = n.min(last.len()) / 2;
                    let mut rest = last.split_off(keep);
                    sent.append(&mut last);
                    q.requeue(&mut rest);
                }
                _ => {
                    // Take everything ready, then the watchdog must be exact.
                    last.clear();
                    q.dequeue_batch(now, usize::MAX, &mut last);
                    sent.append(&mut last);
                    match q.next_event_ns(now) {
                        None => prop_assert!(q.is_empty()),
                        Some(t) => {
                            prop_assert!(t > now, "everything ready was taken");
                            prop_assert_eq!(q.dequeue_batch(t - 1, 1, &mut last), 0, "not early");
                            prop_assert_eq!(q.dequeue_batch(t, 1, &mut last), 1, "not late");
                            now = t;
                            sent.append(&mut last);
                        }
                    }
                }
            }
            let s = q.stats();
            prop_assert_eq!(s.dropped, refused);
            prop_assert_eq!(s.sent_packets + s.backlog_packets, enq);
            let sent_bytes: u64 = sent.iter().map(|p| p.len as u64).sum();
            prop_assert_eq!(s.sent_packets, sent.len() as u64);
            prop_assert_eq!(s.sent_bytes, sent_bytes);
            prop_assert_eq!(s.sent_bytes + s.backlog_bytes, enq_bytes);
            prop_assert_eq!(s.backlog_packets, q.len() as u64);
        }
        let mut drained = Vec::new();
        q.drain(&mut drained);
        let s = q.stats();
        prop_assert_eq!(s.sent_packets + drained.len() as u64, enq);
        prop_assert_eq!(s.sent_packets + drained.len() as u64 + s.dropped, id);
        let mut all: Vec<u64> = ids(&sent);
        all.extend(ids(&drained));
        all.sort_unstable();
        all.dedup();
        prop_assert_eq!(all.len() as u64, enq, "each accepted packet exactly once");
    }
}
