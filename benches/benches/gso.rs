//! criterion micro-benchmarks of software GSO (`skiff_engine::tx::gso`), in ns per
//! segment: one 64 KiB IPv4 super-segment (44 segments of 1448 bytes, TCP timestamps,
//! the largest that fits a 64 KiB GSO packet on a 1500-byte MTU) split by
//! `GsoTemplate::write_segment` (headers only, the payload already in its frames), by the
//! same with the payload sums taken in the loop, and by `segment` (the whole software
//! split: headers, payload copies, allocations). Inputs are fixed (no randomness).
//! Run: `cargo bench -p skiff-benches --bench gso`.

use std::time::Duration;

use criterion::{
    black_box, criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput,
};
use skiff_engine::{
    tx::{
        gso::{segment, GsoTemplate, MAX_HEADER},
        tcp::Seq,
    },
    wire::{
        checksum,
        tcp::{fill_checksum_v4, flags, TcpHeader, TcpOptions},
    },
};

/// Payload per segment: 1500 − 20 (IPv4) − 32 (TCP with timestamps).
const MSS: u16 = 1448;
/// Segments per super-segment: 44 × 1448 = 63712 payload bytes in a 63764-byte IP
/// packet, the 64 KiB super-segment of a bulk transfer on a 1500-byte MTU.
const SEGS: u32 = 44;

/// Short runs, like `rx_path`: the file finishes in well under a minute.
fn short(g: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    g.measurement_time(Duration::from_secs(2));
    g.warm_up_time(Duration::from_millis(500));
    g.sample_size(20);
}

/// The super-segment as one Ethernet frame: IPv4 198.18.0.1 → 198.18.0.2 with DF, TCP
/// 40000 → 5001, ACK|PSH, timestamps, 44 × 1448 payload bytes.
fn super_segment() -> Vec<u8> {
    let payload: Vec<u8> = (0..usize::from(MSS) * SEGS as usize)
        .map(|k| ((k * 7) ^ (k >> 8)) as u8)
        .collect();
    let th = TcpHeader {
        src_port: 40000,
        dst_port: 5001,
        seq: Seq(1_000_000),
        ack: Seq(77),
        flags: flags::ACK | flags::PSH,
        window: 502,
        checksum: 0,
        urgent: 0,
        options: TcpOptions {
            timestamps: Some((1000, 2000)),
            ..TcpOptions::default()
        },
    };
    let (src, dst) = ([198, 18, 0, 1], [198, 18, 0, 2]);
    let mut l4 = vec![0u8; th.header_len()];
    th.emit(&mut l4);
    l4.extend_from_slice(&payload);
    assert!(fill_checksum_v4(src, dst, &mut l4));
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
    ip.extend_from_slice(&[0x10, 0x00, 0x40, 0x00, 64, 6, 0, 0]);
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    let ck = checksum::checksum(&ip, 0);
    ip[10..12].copy_from_slice(&ck.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&l4);
    f
}

fn gso(c: &mut Criterion) {
    let pkt = super_segment();
    let t = GsoTemplate::new(&pkt, MSS).expect("template");
    let hl = t.header_len();
    // The frames as skiff's TCP holds them: header room, then one MSS of payload each.
    let mut frames: Vec<Vec<u8>> = pkt[hl..]
        .chunks(usize::from(MSS))
        .map(|p| {
            let mut f = vec![0u8; hl];
            f.extend_from_slice(p);
            f
        })
        .collect();
    let sums: Vec<u32> = frames.iter().map(|f| checksum::sum(&f[hl..], 0)).collect();
    assert_eq!(frames.len(), SEGS as usize);
    assert!(hl <= MAX_HEADER);

    let mut g = c.benchmark_group("gso");
    short(&mut g);
    g.throughput(Throughput::Elements(u64::from(SEGS)));
    g.bench_function("write_segment/44x1448", |b| {
        b.iter(|| {
            for (i, (f, &sum)) in frames.iter_mut().zip(&sums).enumerate() {
                let n = t.write_segment(i as u32, SEGS, MSS, black_box(sum), &mut f[..hl]);
                black_box(n);
            }
        })
    });
    g.bench_function("write_segment_with_payload_sum/44x1448", |b| {
        b.iter(|| {
            for (i, f) in frames.iter_mut().enumerate() {
                let (h, p) = f.split_at_mut(hl);
                let sum = checksum::sum(black_box(p), 0);
                black_box(t.write_segment(i as u32, SEGS, MSS, sum, h));
            }
        })
    });
    let mut out: Vec<Vec<u8>> = Vec::with_capacity(SEGS as usize);
    g.bench_function("segment/44x1448", |b| {
        b.iter(|| {
            out.clear();
            let n = segment(black_box(&pkt), MSS, &mut out).expect("segments");
            black_box(n);
        })
    });
    g.finish();
}

criterion_group!(benches, gso);
criterion_main!(benches);
