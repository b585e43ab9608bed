//! criterion micro-benchmarks of the per-packet hot paths, one group per layer, sizes
//! swept, inputs fixed (no randomness). Run: `cargo bench -p skiff-benches`.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use skiff_engine::{
    gen::{
        size::SizeSpec,
        source::FrameSource,
        vary::{AddrRange, PortRange, Variation},
    },
    wire::{
        checksum, classify,
        template::{TemplateKind, TemplateSpec},
    },
};

fn spec() -> TemplateSpec {
    TemplateSpec::new(
        TemplateKind::Udp4,
        [198, 18, 0, 1].into(),
        [198, 18, 0, 2].into(),
    )
}

/// A UDP/IPv4 frame of `len` bytes (no FCS).
fn frame(len: usize) -> Vec<u8> {
    spec().build(len + 4).expect("valid size")
}

/// The RX classifier runs once per received frame.
fn rx_classify(c: &mut Criterion) {
    let mut g = c.benchmark_group("rx_classify");
    for len in [60usize, 590, 1514] {
        let f = frame(len);
        g.throughput(Throughput::Elements(1));
        g.bench_with_input(BenchmarkId::from_parameter(len), &f, |b, f| {
            b.iter(|| classify(black_box(f)))
        });
    }
    g.finish();
}

/// The baseline `checksum::sum` is measured against in the same run: RFC 1071's loop, one
/// big-endian 16-bit word at a time (what skiff had before 2026-11-22).
fn sum_by_words(data: &[u8]) -> u32 {
    let mut acc = 0u64;
    let mut words = data.chunks_exact(2);
    for c in &mut words {
        acc += u16::from_be_bytes([c[0], c[1]]) as u64;
    }
    if let [last] = words.remainder() {
        acc += (*last as u64) << 8;
    }
    checksum::fold(acc)
}

/// Internet checksum over payload sizes (UDP checksum of a full frame; 1448 is a TCP
/// segment's payload), against the word-by-word loop.
fn checksum_sum(c: &mut Criterion) {
    let mut g = c.benchmark_group("checksum");
    for len in [20usize, 64, 512, 1448, 1500] {
        let data: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_with_input(BenchmarkId::new("sum", len), &data, |b, d| {
            b.iter(|| checksum::checksum(black_box(d), 0))
        });
        g.bench_with_input(BenchmarkId::new("by_16bit_words", len), &data, |b, d| {
            b.iter(|| !(sum_by_words(black_box(d)) as u16))
        });
    }
    g.bench_function("rfc1624_update", |b| {
        b.iter(|| checksum::update(black_box(0x1234), black_box(0xabcd), black_box(0x4321)))
    });
    g.finish();
}

/// A TCP write: 1448 payload bytes copied into a UMEM-sized area's frames and summed for
/// the checksum, as a copy then `sum` (two passes) against `copy_and_sum` (one). The frames
/// are visited in a stride over 64 MiB so the destination is not in the cache, as a frame
/// taken from the pool usually is not (`hot` reuses 16 frames: the cached case).
fn copy_and_sum(c: &mut Criterion) {
    // 4 KiB frames (the TCP UMEM's), 64 MiB: more than this machine's L3 (32 MiB).
    const FRAME: usize = 4096;
    const AREA: usize = 64 << 20;
    // A prime stride in frames, so consecutive writes land on unrelated lines and pages.
    const STRIDE: usize = 7919;
    let src: Vec<u8> = (0..1448).map(|i| (i % 251) as u8).collect();
    let mut area = vec![0u8; AREA];
    let frames = AREA / FRAME;
    let mut g = c.benchmark_group("tcp_write_1448");
    g.throughput(Throughput::Bytes(src.len() as u64));
    for (name, span) in [("cold", frames), ("hot", 16)] {
        let mut k = 0usize;
        g.bench_function(BenchmarkId::new("copy_then_sum", name), |b| {
            b.iter(|| {
                k = (k + STRIDE) % span;
                let dst = &mut area[k * FRAME..k * FRAME + src.len()];
                dst.copy_from_slice(black_box(&src));
                checksum::sum(dst, 0)
            })
        });
        g.bench_function(BenchmarkId::new("copy_and_sum", name), |b| {
            b.iter(|| {
                k = (k + STRIDE) % span;
                let dst = &mut area[k * FRAME..k * FRAME + src.len()];
                checksum::copy_and_sum(dst, black_box(&src), 0)
            })
        });
    }
    g.finish();
}

/// The TX template copy per frame (what `UmemArea::write` does, minus the UMEM).
fn tx_template_copy(c: &mut Criterion) {
    let mut g = c.benchmark_group("tx_template_copy");
    for len in [60usize, 1514] {
        let f = frame(len);
        let mut dst = vec![0u8; 2048];
        g.throughput(Throughput::Elements(1));
        g.bench_with_input(BenchmarkId::from_parameter(len), &f, |b, f| {
            b.iter(|| dst[..f.len()].copy_from_slice(black_box(f)))
        });
    }
    g.finish();
}

/// A stream's frame source, called once per transmitted frame: the template copied and,
/// with variation, two fields stepped and both checksums patched (RFC 1624); IMIX sizes.
fn frame_source(c: &mut Criterion) {
    let mut g = c.benchmark_group("frame_source");
    let vary = Variation {
        src_ip: Some(AddrRange::parse("198.18.0.1-198.18.0.254").expect("range")),
        src_port: Some(PortRange {
            lo: 9000,
            hi: 10023,
        }),
        ..Variation::default()
    };
    for (name, var, sizes) in [
        ("fixed64", Variation::default(), SizeSpec::Fixed(64)),
        ("fixed64_varied", vary.clone(), SizeSpec::Fixed(64)),
        ("imix_varied", vary, SizeSpec::parse("imix").expect("imix")),
    ] {
        let mut src = FrameSource::new(&spec(), &var, &sizes, 1).expect("source");
        let mut buf = vec![0u8; 2048];
        g.throughput(Throughput::Elements(1));
        g.bench_function(name, |b| b.iter(|| src.next_into(black_box(&mut buf))));
    }
    g.finish();
}

criterion_group!(
    benches,
    rx_classify,
    checksum_sum,
    copy_and_sum,
    tx_template_copy,
    frame_source
);
criterion_main!(benches);
