//! The TCP poller's round with many connections open: what `Stack::poll` costs when one
//! poller holds N established connections and none of them has anything to do, the
//! common case of a server with many quiet clients. Each connection is opened for real:
//! our SYN, the peer's SYN-ACK built here, our ACK. Run:
//! `cargo bench -p skiff-benches --bench tcp_poll`.
//!
//! Two ways to run a round, measured in the same run:
//! - `events`: the default. Only connections an event named run (input, a write, a
//!   completion, a timer due); every 100 ms of stack time a walk of all of them checks
//!   that none was missed.
//! - `walk_all` (the baseline): `sweep_us` 0, every round walks every connection, which
//!   is what every round did before the event lists.

use std::{net::IpAddr, sync::Arc};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use skiff_engine::{
    sys::{UmemArea, UmemGeometry},
    tx::{
        ip::Route,
        tcp::{
            conn::{ConnConfig, State},
            stack::{write_eth_ip_tcp, Stack, StackConfig, DEFAULT_SWEEP_US},
            Seq,
        },
    },
    wire::tcp::{self, flags, TcpHeader, TcpOptions},
};

const OUR_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const PEER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
/// Addresses in 198.18.0.0/15, the benchmarking range; nothing leaves the process.
const OUR_IP: [u8; 4] = [198, 18, 0, 1];
const PEER_IP: [u8; 4] = [198, 18, 0, 2];
/// Ethernet (14) + IPv4 without options (20): where our segments' TCP header starts.
const L4: usize = 34;
/// The clock at the start, µs: 10 s (0 reads as "never" in places).
const T0: u64 = 10_000_000;

/// A stack holding `n` established connections to the peer, none with data or timers.
fn established(n: usize, sweep_us: u64) -> Stack {
    let (area, frames) = UmemArea::new(UmemGeometry {
        frames: 4096,
        frame_size: 2048,
        fill_size: 2048,
        comp_size: 2048,
    })
    .expect("mmap a UMEM");
    let cfg = StackConfig {
        mac: OUR_MAC,
        addr: IpAddr::from(OUR_IP),
        route: Route::v4(OUR_IP, 24, None),
        conn: ConnConfig {
            pacing: false,
            ..ConnConfig::default()
        },
        max_syn_backlog: 256,
        reserve_frames: 64,
        sweep_us,
    };
    let mut st = Stack::new(cfg, Arc::new(area), frames);
    st.set_now(T0);
    st.add_neighbour(IpAddr::from(PEER_IP), PEER_MAC);
    let mut out = Vec::new();
    let mut sent = Vec::new();
    let mut b = [0u8; 128];
    for _ in 0..n {
        let id = st.connect((IpAddr::from(PEER_IP), 80)).expect("connect");
        st.poll();
        st.drain_out(&mut out);
        let syn = out.pop().expect("our SYN");
        let h = tcp::parse(&st.area().bytes(&syn.frame)[L4..])
            .expect("our SYN parses")
            .header;
        sent.push(syn.frame);
        st.completed(&mut sent);
        let th = TcpHeader {
            src_port: 80,
            dst_port: h.src_port,
            seq: Seq(1000),
            ack: h.seq.add(1),
            flags: flags::SYN | flags::ACK,
            window: 65535,
            checksum: 0,
            urgent: 0,
            options: TcpOptions {
                mss: Some(1460),
                ..TcpOptions::default()
            },
        };
        let len = write_eth_ip_tcp(
            &mut b,
            OUR_MAC,
            PEER_MAC,
            IpAddr::from(PEER_IP),
            IpAddr::from(OUR_IP),
            &th,
            0,
            &[],
        );
        let mut f = st.pool_mut().pop().expect("a frame for the SYN-ACK");
        assert_eq!(st.area().write(&mut f, &b[..len]), len);
        st.input(f);
        st.poll();
        st.drain_out(&mut out);
        sent.extend(out.drain(..).map(|p| p.frame));
        st.completed(&mut sent);
        assert_eq!(st.conn(id).map(|c| c.state()), Some(State::Established));
    }
    st
}

fn tcp_poll_idle(c: &mut Criterion) {
    let mut g = c.benchmark_group("tcp_poll_idle");
    g.throughput(Throughput::Elements(1));
    for n in [10usize, 1000, 10_000] {
        for (name, sweep) in [("events", DEFAULT_SWEEP_US), ("walk_all", 0)] {
            let mut st = established(n, sweep);
            let mut now = T0;
            g.bench_function(BenchmarkId::new(name, n), |b| {
                b.iter(|| {
                    // One round a microsecond: the safety-net walk comes every 100 000.
                    now += 1;
                    st.set_now(now);
                    st.poll();
                })
            });
            assert_eq!(st.counters().sweep_found, 0, "no missed wakeups");
        }
    }
    g.finish();
}

criterion_group!(benches, tcp_poll_idle);
criterion_main!(benches);
