//! criterion micro-benchmarks of the per-packet hot paths, one group per layer, sizes
//! swept, inputs fixed (no randomness). Run: `cargo bench -p skiff-benches`.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use skiff_engine::{
    gen::Pacer,
    wire::{checksum, classify, UdpFrameSpec},
};

fn spec(len: usize) -> UdpFrameSpec {
    UdpFrameSpec {
        dst_mac: [2, 0, 0xc6, 0x12, 0, 2],
        src_mac: [2, 0, 0xc6, 0x12, 0, 1],
        vlan: None,
        src_ip: [198, 18, 0, 1],
        dst_ip: [198, 18, 0, 2],
        src_port: 9000,
        dst_port: 9000,
        frame_len: len,
    }
}

/// The RX classifier runs once per received frame.
fn rx_classify(c: &mut Criterion) {
    let mut g = c.benchmark_group("rx_classify");
    for len in [60usize, 590, 1514] {
        let f = spec(len).build();
        g.throughput(Throughput::Elements(1));
        g.bench_with_input(BenchmarkId::from_parameter(len), &f, |b, f| {
            b.iter(|| classify(black_box(f)))
        });
    }
    g.finish();
}

/// Internet checksum over payload sizes (UDP checksum of a full frame).
fn checksum_sum(c: &mut Criterion) {
    let mut g = c.benchmark_group("checksum");
    for len in [20usize, 64, 512, 1500] {
        let data: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_with_input(BenchmarkId::from_parameter(len), &data, |b, d| {
            b.iter(|| checksum::checksum(black_box(d), 0))
        });
    }
    g.bench_function("rfc1624_update", |b| {
        b.iter(|| checksum::update(black_box(0x1234), black_box(0xabcd), black_box(0x4321)))
    });
    g.finish();
}

/// The TX template copy per frame (what `UmemArea::write` does, minus the UMEM).
fn tx_template_copy(c: &mut Criterion) {
    let mut g = c.benchmark_group("tx_template_copy");
    for len in [60usize, 1514] {
        let f = spec(len).build();
        let mut dst = vec![0u8; 2048];
        g.throughput(Throughput::Elements(1));
        g.bench_with_input(BenchmarkId::from_parameter(len), &f, |b, f| {
            b.iter(|| dst[..f.len()].copy_from_slice(black_box(f)))
        });
    }
    g.finish();
}

/// The pacing clock, consulted once per TX round.
fn pacing_due(c: &mut Criterion) {
    let p = Pacer::new(1_000_000.0).expect("rate");
    c.bench_function("pacing_due", |b| {
        b.iter(|| {
            p.due(
                black_box(std::time::Duration::from_micros(1234)),
                black_box(1000),
            )
        })
    });
}

criterion_group!(
    benches,
    rx_classify,
    checksum_sum,
    tx_template_copy,
    pacing_due
);
criterion_main!(benches);
