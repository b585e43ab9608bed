//! criterion micro-benchmarks of the receive path (`skiff_engine::rx`), in ns per packet:
//! the RPS flow hash, the backlog hop from poller to worker and back, and GRO. Inputs are
//! fixed (no randomness). Run: `cargo bench -p skiff-benches --bench rx_path`.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread,
    time::{Duration, Instant},
};

use criterion::{
    black_box, criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion, Throughput,
};
use skiff_engine::{
    rx::{
        gro::{Gro, GroConfig, GroPacket},
        rps::{
            backlog::{fabric, BacklogConfig, Enqueue},
            hash::{flow_key, FlowHasher, FlowKey},
        },
    },
    wire::checksum,
};

/// Frames per hash batch and items per backlog round: the kernel's NAPI weight (64), so
/// the batch is what one poll hands over, and 64 distinct flows are not one cached frame.
const BATCH: usize = 64;

/// Short runs: the whole file finishes in about two minutes on a 2-core machine.
fn short(g: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    g.measurement_time(Duration::from_secs(2));
    g.warm_up_time(Duration::from_millis(500));
    g.sample_size(20);
}

/// TCP flag bits (RFC 9293 §3.1): PSH.
const PSH: u8 = 0x08;
/// ACK.
const ACK: u8 = 0x10;

/// One TCP or UDP segment to build as an Ethernet frame with valid checksums.
#[derive(Clone)]
struct Seg {
    v6: bool,
    udp: bool,
    src: [u8; 16],
    dst: [u8; 16],
    sport: u16,
    dport: u16,
    seq: u32,
    id: u16,
    flags: u8,
    opts: Vec<u8>,
    payload: Vec<u8>,
}

impl Seg {
    fn v4(udp: bool) -> Seg {
        let mut src = [0u8; 16];
        let mut dst = [0u8; 16];
        src[..4].copy_from_slice(&[198, 18, 0, 1]);
        dst[..4].copy_from_slice(&[198, 18, 0, 2]);
        Seg {
            v6: false,
            udp,
            src,
            dst,
            sport: 40000,
            dport: 5001,
            seq: 1_000_000,
            id: 0x1000,
            flags: ACK,
            opts: Vec::new(),
            payload: Vec::new(),
        }
    }

    fn v6(udp: bool) -> Seg {
        Seg {
            v6: true,
            src: [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            dst: [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
            ..Seg::v4(udp)
        }
    }

    /// The Ethernet frame (no FCS): IPv4 with DF, TTL 64, or IPv6 hop limit 64.
    fn build(&self) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
        f.extend_from_slice(&(if self.v6 { 0x86ddu16 } else { 0x0800 }).to_be_bytes());
        let proto: u8 = if self.udp { 17 } else { 6 };
        let mut l4 = Vec::with_capacity(32 + self.payload.len());
        l4.extend_from_slice(&self.sport.to_be_bytes());
        l4.extend_from_slice(&self.dport.to_be_bytes());
        if self.udp {
            l4.extend_from_slice(&((8 + self.payload.len()) as u16).to_be_bytes());
            l4.extend_from_slice(&[0, 0]);
        } else {
            l4.extend_from_slice(&self.seq.to_be_bytes());
            l4.extend_from_slice(&77u32.to_be_bytes());
            l4.push((((20 + self.opts.len()) / 4) as u8) << 4);
            l4.push(self.flags);
            l4.extend_from_slice(&502u16.to_be_bytes());
            l4.extend_from_slice(&[0, 0, 0, 0]);
            l4.extend_from_slice(&self.opts);
        }
        l4.extend_from_slice(&self.payload);
        let pseudo = if self.v6 {
            checksum::pseudo_v6(self.src, self.dst, proto, l4.len() as u32)
        } else {
            let s = [self.src[0], self.src[1], self.src[2], self.src[3]];
            let d = [self.dst[0], self.dst[1], self.dst[2], self.dst[3]];
            checksum::pseudo_v4(s, d, proto, l4.len() as u16)
        };
        let mut ck = checksum::checksum(&l4, pseudo);
        if self.udp && ck == 0 {
            ck = 0xffff; // RFC 768: a computed zero is sent as all ones.
        }
        let at = if self.udp { 6 } else { 16 };
        l4[at..at + 2].copy_from_slice(&ck.to_be_bytes());
        if self.v6 {
            f.extend_from_slice(&(6u32 << 28).to_be_bytes());
            f.extend_from_slice(&(l4.len() as u16).to_be_bytes());
            f.extend_from_slice(&[proto, 64]);
            f.extend_from_slice(&self.src);
            f.extend_from_slice(&self.dst);
        } else {
            let mut ip = vec![0x45, 0];
            ip.extend_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
            ip.extend_from_slice(&self.id.to_be_bytes());
            ip.extend_from_slice(&0x4000u16.to_be_bytes());
            ip.extend_from_slice(&[64, proto, 0, 0]);
            ip.extend_from_slice(&self.src[..4]);
            ip.extend_from_slice(&self.dst[..4]);
            let ck = checksum::checksum(&ip, 0);
            ip[10..12].copy_from_slice(&ck.to_be_bytes());
            f.extend_from_slice(&ip);
        }
        f.extend_from_slice(&l4);
        f
    }
}

/// [`BATCH`] frames of one kind whose source ports differ (64 flows).
fn flow_batch(v6: bool, udp: bool, payload: usize) -> Vec<Vec<u8>> {
    (0..BATCH)
        .map(|i| {
            let mut s = if v6 { Seg::v6(udp) } else { Seg::v4(udp) };
            s.sport = 10_000 + 7 * i as u16;
            s.dport = 443 + (i % 4) as u16;
            s.payload = (0..payload).map(|k| (k * 7 + i) as u8).collect();
            s.build()
        })
        .collect()
}

/// `rps_hash`: Toeplitz (table-driven, Microsoft key) against the cheap hash, over a batch
/// of 64 frames of distinct flows: `hash_frame` (flow-key extraction + hash), `hash` of a
/// key already extracted, and `flow_key` alone.
fn rps_hash(c: &mut Criterion) {
    let mut g = c.benchmark_group("rps_hash");
    short(&mut g);
    g.throughput(Throughput::Elements(BATCH as u64));
    // A 64-byte UDP/IPv4 frame (18 bytes of payload) and a TCP/IPv6 ACK with 32 bytes.
    let inputs = [
        ("udp4", flow_batch(false, true, 18)),
        ("tcp6", flow_batch(true, false, 32)),
    ];
    let hashers = [
        ("toeplitz", FlowHasher::ms_rss()),
        ("cheap", FlowHasher::cheap()),
    ];
    for (name, frames) in &inputs {
        let keys: Vec<FlowKey> = frames
            .iter()
            .map(|f| flow_key(f).expect("frame parses"))
            .collect();
        for (hname, h) in &hashers {
            g.bench_with_input(
                BenchmarkId::new(format!("hash_frame/{hname}"), name),
                frames,
                |b, frames| {
                    b.iter(|| {
                        for f in frames {
                            black_box(h.hash_frame(black_box(f)));
                        }
                    })
                },
            );
            g.bench_with_input(
                BenchmarkId::new(format!("hash_key/{hname}"), name),
                &keys,
                |b, keys| {
                    b.iter(|| {
                        for k in keys {
                            black_box(h.hash(black_box(k)));
                        }
                    })
                },
            );
        }
        g.bench_with_input(BenchmarkId::new("flow_key", name), frames, |b, frames| {
            b.iter(|| {
                for f in frames {
                    black_box(flow_key(black_box(f)));
                }
            })
        });
    }
    g.finish();
}

/// `backlog_hop`: one item from the poller to a worker and back through the return ring,
/// with the default geometry (1000-item backlog, weight 64, flow limit on).
fn backlog_hop(c: &mut Criterion) {
    let mut g = c.benchmark_group("backlog_hop");
    short(&mut g);

    // (a) One thread plays both sides: enqueue 64, end_round, drain (each item given
    // back), reclaim. No contention, no wakeups after the first round.
    {
        let (mut ps, mut ws) = fabric::<u64>(1, 1, BacklogConfig::default());
        let (mut p, mut w) = (ps.remove(0), ws.remove(0));
        let mut back: Vec<u64> = Vec::with_capacity(BATCH);
        g.throughput(Throughput::Elements(BATCH as u64));
        g.bench_function("same_thread/64", |b| {
            b.iter(|| {
                for i in 0..BATCH as u64 {
                    let hash = (i as u32).wrapping_mul(0x9e37_79b9);
                    if let Enqueue::Dropped(item, why) = p.enqueue(0, i, hash) {
                        panic!("item {item} dropped: {why:?}");
                    }
                }
                p.end_round();
                let n = w.drain(|from, item, r| {
                    let _ = r.give_back(from, black_box(item));
                });
                debug_assert_eq!(n, BATCH);
                back.clear();
                p.reclaim(&mut back, usize::MAX);
                debug_assert_eq!(back.len(), BATCH);
                black_box(&back);
            })
        });
    }

    // (b) A worker thread drains and parks (`wait`) while this thread enqueues rounds of
    // 64 and reclaims, with 512 items in circulation (fewer than the 1000-item backlog, so
    // nothing is dropped; the producer stalls on reclaim when the worker falls behind).
    // One iteration = one item reclaimed; `iter_custom` times N items end to end.
    {
        const IN_FLIGHT: u64 = 512;
        let (mut ps, mut ws) = fabric::<u64>(1, 1, BacklogConfig::default());
        let (mut p, mut w) = (ps.remove(0), ws.remove(0));
        let stop = Arc::new(AtomicBool::new(false));
        let worker = {
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                w.register_thread();
                while !stop.load(Ordering::Relaxed) {
                    let n = w.drain(|from, item, r| {
                        let _ = r.give_back(from, black_box(item));
                    });
                    if n == 0 {
                        let _ = w.wait(Duration::from_millis(100));
                    }
                }
                w
            })
        };
        let mut pool: Vec<u64> = (0..IN_FLIGHT).collect();
        pool.reserve(IN_FLIGHT as usize);
        let mut batch: Vec<u64> = Vec::with_capacity(BATCH);
        g.throughput(Throughput::Elements(1));
        g.bench_function("cross_thread/64", |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                let mut done = 0u64;
                while done < iters {
                    let n = pool.len().min(BATCH);
                    batch.extend(pool.drain(pool.len() - n..));
                    for item in batch.drain(..) {
                        let hash = (item as u32).wrapping_mul(0x9e37_79b9);
                        // Not expected (fewer items than the backlog holds, distinct
                        // flows); a dropped item goes back to the pool, as the poller
                        // recycles it.
                        if let Enqueue::Dropped(item, _) = p.enqueue(0, item, hash) {
                            pool.push(item);
                        }
                    }
                    p.end_round();
                    let before = pool.len();
                    p.reclaim(&mut pool, usize::MAX);
                    let got = pool.len() - before;
                    if got == 0 && n == 0 {
                        std::hint::spin_loop();
                    }
                    done += got as u64;
                }
                start.elapsed()
            })
        });
        stop.store(true, Ordering::Relaxed);
        worker.thread().unpark();
        let _ = worker.join().expect("worker thread");
    }
    g.finish();
}

/// Payload per segment on a 1500-byte MTU with timestamps: 1500 − 20 − 32.
const MSS: usize = 1448;
/// Segments per stream: four runs of 45 (the most 1448-byte segments under 64 KiB).
const STREAM: usize = 180;

/// A TCP/IPv4 stream of [`STREAM`] MSS segments with the timestamp option (12 bytes with
/// two NOPs), consecutive sequence numbers and IP IDs, valid checksums; segment `i`
/// carries PSH when `psh(i)`.
fn gro_stream(psh: impl Fn(usize) -> bool) -> Vec<Vec<u8>> {
    let mut opts = vec![1, 1, 8, 10];
    opts.extend_from_slice(&1000u32.to_be_bytes());
    opts.extend_from_slice(&2000u32.to_be_bytes());
    (0..STREAM)
        .map(|i| {
            let mut s = Seg::v4(false);
            s.seq = 1_000_000 + (i * MSS) as u32;
            s.id = 0x1000 + i as u16;
            s.flags = if psh(i) { ACK | PSH } else { ACK };
            s.opts = opts.clone();
            s.payload = (0..MSS).map(|k| ((i * MSS + k) * 7) as u8).collect();
            s.build()
        })
        .collect()
}

/// `gro`: a 180-segment stream through `receive`, `flush` at the end of the round, and
/// every output packet released, at three merge ratios, checksums verified or not.
fn gro(c: &mut Criterion) {
    let mut g = c.benchmark_group("gro");
    short(&mut g);
    g.throughput(Throughput::Elements(STREAM as u64));
    let streams = [
        // Every segment has PSH: each passes alone (`pass_flags`).
        ("none", gro_stream(|_| true), STREAM),
        // PSH on every second segment: pairs.
        ("half", gro_stream(|i| i % 2 == 1), STREAM / 2),
        // No PSH: runs of 45 end at the 64 KiB limit (65226-byte packets).
        ("full", gro_stream(|_| false), STREAM / 45),
    ];
    let hash = FlowHasher::cheap()
        .hash_frame(&streams[0].1[0])
        .expect("frame parses");
    for (name, frames, packets) in &streams {
        for verify in [true, false] {
            let mut gro = Gro::<usize>::new(GroConfig {
                verify_checksums: verify,
                ..GroConfig::default()
            });
            let mut out: Vec<GroPacket<usize>> = Vec::with_capacity(STREAM);
            // Check the merge ratio once, outside the timing.
            for (i, f) in frames.iter().enumerate() {
                gro.receive(i, f, Some(hash), &mut out);
            }
            gro.flush(&mut out);
            assert_eq!(out.len(), *packets, "{name}: packets out");
            if let Some(GroPacket::Merged(m)) = out.first() {
                let expect = if *name == "full" { 65226 } else { 2 * MSS + 66 };
                assert_eq!(m.len(), expect, "{name}: merged length");
            }
            for pkt in out.drain(..) {
                if let GroPacket::Merged(m) = pkt {
                    gro.release(m, drop);
                }
            }
            let verify = if verify { "verify" } else { "no_verify" };
            g.bench_function(BenchmarkId::new(*name, verify), |b| {
                b.iter(|| {
                    for (i, f) in frames.iter().enumerate() {
                        gro.receive(i, black_box(f), Some(hash), &mut out);
                    }
                    gro.flush(&mut out);
                    for pkt in out.drain(..) {
                        match pkt {
                            GroPacket::Single(f) => {
                                black_box(f);
                            }
                            GroPacket::Merged(m) => gro.release(m, |f| {
                                black_box(f);
                            }),
                        }
                    }
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, rps_hash, backlog_hop, gro);
criterion_main!(benches);
