//! `skiff tcp send` and `skiff tcp recv`: iperf-like bulk transfers over skiff's userspace
//! TCP on an AF_XDP socket, against any TCP peer (the Linux kernel's in the tests).
//!
//! Unless `--file` is given, the payload is a deterministic pattern: byte `i` of each
//! connection's stream is `i mod 251` (251 is prime, so the pattern never lines up with
//! a power-of-two segment or frame size and a misplaced segment is always caught). The
//! receiver checks it and reports the first bad offset per connection.

use std::{
    io::Read,
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use hdrhistogram::Histogram;
use serde::Serialize;
use skiff_engine::{
    netdev,
    tx::{
        ip::Route,
        neigh::NeighCounters,
        qdisc::{Qdisc, QdiscConfig},
        tcp::{
            cc::CcKind,
            conn::{CloseReason, ConnConfig, ConnCounters, ConnInfo, State},
            run::{run_tcp, TcpApp, TcpRunConfig, TcpRunReport},
            stack::{ConnId, Stack, StackConfig, TcpCounters, DEFAULT_SWEEP_US},
        },
    },
    wire::parse_mac,
};

use crate::{
    common::{parse_duration, parse_size, require_caps},
    datapath::{self, DataPathArgs},
};

/// The pattern's period: byte i is i mod 251.
const PATTERN_MOD: u64 = 251;
/// How long `tcp send` waits, after its FIN is ACKed, for the peer's FIN: 1 s, hundreds of
/// RTTs on a testbed and longer than a receiving application takes to see EOF and close.
const PEER_FIN_WAIT: Duration = Duration::from_secs(1);

#[derive(Debug, Subcommand)]
pub enum TcpCmd {
    /// Connect and send (like an iperf client).
    Send(SendArgs),
    /// Listen, accept and receive (like an iperf server), checking the pattern.
    Recv(RecvArgs),
}

/// Options of both directions.
#[derive(Debug, Args, Clone)]
pub struct TcpCommon {
    #[command(flatten)]
    pub dp: DataPathArgs,
    /// Our IPv4 address with prefix (e.g. 198.18.0.1/24). Default: the interface's.
    #[arg(long)]
    pub src: Option<String>,
    /// Gateway for destinations off the subnet.
    #[arg(long)]
    pub gateway: Option<String>,
    /// The next hop's MAC: skips ARP (a permanent neighbour entry).
    #[arg(long)]
    pub dst_mac: Option<String>,
    /// Congestion control.
    #[arg(long, default_value = "cubic")]
    pub cc: String,
    /// Do not pace (fq without per-connection rates).
    #[arg(long)]
    pub no_pacing: bool,
    /// Nagle's algorithm on (off by default, as with TCP_NODELAY).
    #[arg(long)]
    pub nagle: bool,
    /// Receive frame by frame instead of through GRO (which hands TCP one segment per
    /// in-order run of a flow within a poll round, as the kernel's NAPI does).
    #[arg(long)]
    pub no_gro: bool,
    /// Receive buffer per connection, bytes (K, M, G are 1024-based: 4M = 4 MiB), and so
    /// the largest window advertised; at most (--ring-size − --budget) × MSS, what the
    /// fill ring holds if the poller is away (2.5 MiB with the defaults; docs/TCP.md).
    #[arg(long, default_value = "4M")]
    pub rcvbuf: String,
    /// Send buffer per connection, bytes (1024-based suffixes).
    #[arg(long, default_value = "4M")]
    pub sndbuf: String,
    /// Unsent bytes per connection beyond which no more is written (TCP_NOTSENT_LOWAT;
    /// 0 = no limit). Small keeps the send path in the CPU's caches; see docs/TCP.md.
    #[arg(long, default_value = "128K")]
    pub notsent_lowat: String,
    /// UMEM frames (the send and receive buffers of all connections live there).
    #[arg(long, default_value_t = 65536)]
    pub frames: u32,
    /// Frames received, and frames put on the TX ring, per poll round at most (the
    /// kernel's `netdev_budget` is 300 per softirq run; see `TcpRunConfig::budget`).
    #[arg(long, default_value_t = TcpRunConfig::default().budget)]
    pub budget: usize,
    /// Progress and time-series period.
    #[arg(long, default_value = "1s")]
    pub interval: String,
    /// Give up after this long whatever the state (default 10 min).
    #[arg(long, default_value = "600s")]
    pub timeout: String,
}

#[derive(Debug, Args, Clone)]
pub struct SendArgs {
    #[command(flatten)]
    pub common: TcpCommon,
    /// Destination IP:PORT.
    #[arg(long)]
    pub dst: String,
    /// Bytes to send per connection (e.g. 1G = 2^30, 100M; 1024-based as in iperf3).
    #[arg(long, conflicts_with = "duration")]
    pub bytes: Option<String>,
    /// Send for this long instead of a byte count.
    #[arg(long)]
    pub duration: Option<String>,
    /// Parallel connections.
    #[arg(long, default_value_t = 1)]
    pub conns: u32,
    /// Send this file's contents (on every connection) instead of the pattern.
    #[arg(long)]
    pub file: Option<std::path::PathBuf>,
}

#[derive(Debug, Args, Clone)]
pub struct RecvArgs {
    #[command(flatten)]
    pub common: TcpCommon,
    /// TCP port to listen on.
    #[arg(long)]
    pub listen: u16,
    /// Connections to serve before exiting.
    #[arg(long, default_value_t = 1)]
    pub conns: u32,
    /// Bytes each connection must deliver (checked when given; 1024-based suffixes).
    #[arg(long)]
    pub expect_bytes: Option<String>,
    /// Do not check the pattern.
    #[arg(long)]
    pub no_check: bool,
}

/// RTT percentiles, µs.
#[derive(Debug, Default, Serialize, Clone)]
pub struct RttSummary {
    pub samples: u64,
    pub min_us: u64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    pub mean_us: f64,
}

fn rtt_summary(h: &Histogram<u64>) -> RttSummary {
    if h.is_empty() {
        return RttSummary::default();
    }
    RttSummary {
        samples: h.len(),
        min_us: h.min(),
        p50_us: h.value_at_quantile(0.5),
        p90_us: h.value_at_quantile(0.9),
        p99_us: h.value_at_quantile(0.99),
        p999_us: h.value_at_quantile(0.999),
        max_us: h.max(),
        mean_us: h.mean(),
    }
}

/// One connection in the report.
#[derive(Debug, Serialize, Clone)]
pub struct ConnReport {
    pub id: u32,
    /// Finished as asked: everything sent and ACKed (send), or received to the FIN with
    /// the pattern intact (recv).
    pub complete: bool,
    pub local: String,
    pub remote: String,
    pub bytes: u64,
    pub elapsed_s: f64,
    pub goodput_bps: f64,
    pub state: State,
    pub close_reason: Option<CloseReason>,
    pub pattern_ok: Option<bool>,
    pub first_bad_offset: Option<u64>,
    pub counters: ConnCounters,
    pub last: ConnInfo,
    pub cwnd_max: u32,
    pub rtt: RttSummary,
}

/// How evenly the connections progressed: each one's goodput over its own lifetime.
#[derive(Debug, Serialize, Clone, Default)]
pub struct Fairness {
    pub min_bps: f64,
    pub p10_bps: f64,
    pub p50_bps: f64,
    pub p90_bps: f64,
    pub max_bps: f64,
    /// Jain's fairness index, (Σx)² / (n·Σx²): 1 when every connection got the same rate,
    /// 1/n when one got everything.
    pub jain: f64,
}

/// [`Fairness`] of the connections' goodputs (None for fewer than two).
fn fairness(reports: &[ConnReport]) -> Option<Fairness> {
    let mut g: Vec<f64> = reports.iter().map(|r| r.goodput_bps).collect();
    if g.len() < 2 {
        return None;
    }
    g.sort_by(f64::total_cmp);
    let at = |q: f64| g[((g.len() - 1) as f64 * q).round() as usize];
    let sum: f64 = g.iter().sum();
    let squares: f64 = g.iter().map(|x| x * x).sum();
    Some(Fairness {
        min_bps: g[0],
        p10_bps: at(0.1),
        p50_bps: at(0.5),
        p90_bps: at(0.9),
        max_bps: g[g.len() - 1],
        jain: if squares > 0.0 {
            sum * sum / (g.len() as f64 * squares)
        } else {
            1.0
        },
    })
}

/// One interval of the time series.
#[derive(Debug, Serialize, Clone)]
pub struct IntervalSample {
    pub t_s: f64,
    pub bytes: u64,
    pub goodput_bps: f64,
    pub retrans_segs: u64,
    /// Mean over connections.
    pub cwnd: f64,
    pub srtt_us: f64,
    /// Per connection (only for up to 16 connections).
    pub per_conn: Vec<(u32, u32, Option<u32>)>,
}

#[derive(Debug, Serialize)]
pub struct TcpReport {
    pub role: &'static str,
    pub iface: String,
    pub cc: CcKind,
    pub pacing: bool,
    pub conns_requested: u32,
    pub conns_completed: u32,
    pub bytes: u64,
    pub elapsed_s: f64,
    pub goodput_bps: f64,
    pub retrans_segs: u64,
    pub rtt: RttSummary,
    /// Per-connection goodput spread (two or more connections).
    pub fairness: Option<Fairness>,
    pub all_ok: bool,
    pub conns: Vec<ConnReport>,
    pub intervals: Vec<IntervalSample>,
    pub stack: TcpCounters,
    pub neigh: NeighCounters,
    pub poller: TcpRunReport,
}

/// Per-connection bookkeeping of the application.
#[derive(Debug)]
struct AppConn {
    id: ConnId,
    bytes: u64,
    start: Instant,
    end: Option<Instant>,
    closing: bool,
    done: bool,
    bad_at: Option<u64>,
    cwnd_max: u32,
    report: Option<ConnReport>,
    /// The round this connection was last put on the round's list (no duplicates).
    listed: u64,
}

impl AppConn {
    fn new(id: ConnId, now: Instant) -> Self {
        AppConn {
            id,
            bytes: 0,
            start: now,
            end: None,
            closing: false,
            done: false,
            bad_at: None,
            cwnd_max: 0,
            report: None,
            listed: 0,
        }
    }
}

/// Which of the application's connections to look at in a round: the ones the stack
/// names in [`Stack::take_events`], new ones, and any the application adds, each once. A
/// round's work follows what happened, not how many connections there are.
#[derive(Debug, Default)]
struct Ready {
    /// Position in the application's connection list by `ConnId`; `u32::MAX`: not ours.
    index: Vec<u32>,
    events: Vec<ConnId>,
    round: u64,
    /// This round's positions.
    list: Vec<usize>,
}

impl Ready {
    /// Starts a round: the stack's events, mapped to positions in `conns`.
    fn begin(&mut self, stack: &mut Stack, conns: &mut [AppConn]) {
        self.round += 1;
        self.list.clear();
        stack.take_events(&mut self.events);
        for k in 0..self.events.len() {
            let id = self.events[k];
            if let Some(&pos) = self.index.get(id as usize) {
                self.add(conns, pos as usize);
            }
        }
        self.events.clear();
    }

    /// The connection just pushed onto `conns`: ours from now on, and looked at this
    /// round.
    fn track_last(&mut self, conns: &mut [AppConn]) {
        let Some(pos) = conns.len().checked_sub(1) else {
            return;
        };
        let id = conns[pos].id as usize;
        if self.index.len() <= id {
            self.index.resize(id + 1, u32::MAX);
        }
        self.index[id] = pos as u32;
        self.add(conns, pos);
    }

    /// Looks at `pos` this round.
    fn add(&mut self, conns: &mut [AppConn], pos: usize) {
        if let Some(c) = conns.get_mut(pos) {
            if c.listed != self.round && !c.done {
                c.listed = self.round;
                self.list.push(pos);
            }
        }
    }
}

/// The pattern, long enough that a write of 64 KiB at any phase is one slice of it.
fn pattern() -> Vec<u8> {
    (0..(PATTERN_MOD as usize + (64 << 10)))
        .map(|i| (i as u64 % PATTERN_MOD) as u8)
        .collect()
}

struct Series {
    interval: Duration,
    next: Instant,
    start: Instant,
    last_bytes: u64,
    last_t: f64,
    samples: Vec<IntervalSample>,
    quiet: bool,
}

impl Series {
    fn new(interval: Duration, quiet: bool) -> Self {
        let now = Instant::now();
        Series {
            interval,
            next: now + interval,
            start: now,
            last_bytes: 0,
            last_t: 0.0,
            samples: Vec::new(),
            quiet,
        }
    }

    fn tick(&mut self, now: Instant, stack: &Stack, conns: &[AppConn], role: &str) {
        if now < self.next {
            return;
        }
        self.next += self.interval;
        let t = now.duration_since(self.start).as_secs_f64();
        let bytes: u64 = conns.iter().map(|c| c.bytes).sum();
        let mut retrans = 0;
        let (mut cw, mut rt, mut n, mut nr) = (0f64, 0f64, 0u32, 0u32);
        let mut per = Vec::new();
        for c in conns {
            if let Some(x) = stack.conn(c.id) {
                let i = x.info();
                retrans += x.counters().retrans_segs;
                cw += i.cwnd as f64;
                n += 1;
                if let Some(s) = i.srtt_us {
                    rt += s as f64;
                    nr += 1;
                }
                if per.len() < 16 {
                    per.push((c.id, i.cwnd, i.srtt_us));
                }
            }
        }
        let dt = (t - self.last_t).max(1e-9);
        let gp = (bytes - self.last_bytes) as f64 * 8.0 / dt;
        let s = IntervalSample {
            t_s: t,
            bytes,
            goodput_bps: gp,
            retrans_segs: retrans,
            cwnd: if n > 0 { cw / n as f64 } else { 0.0 },
            srtt_us: if nr > 0 { rt / nr as f64 } else { 0.0 },
            per_conn: per,
        };
        if !self.quiet {
            eprintln!(
                "skiff tcp {role}: {:6.1}s {:>10} B  {:8.1} Mbit/s  retrans {}  cwnd {:.0}  srtt {:.0} µs",
                t,
                bytes,
                gp / 1e6,
                s.retrans_segs,
                s.cwnd,
                s.srtt_us
            );
        }
        self.samples.push(s);
        self.last_bytes = bytes;
        self.last_t = t;
    }
}

/// Reports for the connections still running when the poller stopped.
fn finish_rest(stack: &Stack, conns: &mut [AppConn], check: bool) {
    let now = Instant::now();
    for c in conns.iter_mut().filter(|c| c.report.is_none()) {
        finish_conn(stack, c, now, check);
    }
}

fn finish_conn(stack: &Stack, c: &mut AppConn, now: Instant, check: bool) {
    let complete = c.done
        && stack
            .conn(c.id)
            .is_some_and(|x| x.close_reason().is_none_or(|w| w == CloseReason::Normal))
        && c.bad_at.is_none();
    let Some(x) = stack.conn(c.id) else {
        return;
    };
    let end = c.end.unwrap_or(now);
    let el = end.duration_since(c.start).as_secs_f64().max(1e-9);
    c.report = Some(ConnReport {
        id: c.id,
        complete,
        local: format!("{}:{}", x.local_addr().0, x.local_addr().1),
        remote: format!("{}:{}", x.remote_addr().0, x.remote_addr().1),
        bytes: c.bytes,
        elapsed_s: el,
        goodput_bps: c.bytes as f64 * 8.0 / el,
        state: x.state(),
        close_reason: x.close_reason(),
        pattern_ok: check.then_some(c.bad_at.is_none()),
        first_bad_offset: c.bad_at,
        counters: x.counters(),
        last: x.info(),
        cwnd_max: c.cwnd_max,
        rtt: x.rtt_histogram().map(rtt_summary).unwrap_or_default(),
    });
}

struct SendApp {
    remote: (IpAddr, u16),
    want: u32,
    opened: u32,
    conns: Vec<AppConn>,
    target: Option<u64>,
    until: Option<Instant>,
    payload: Vec<u8>,
    file: bool,
    series: Series,
    error: Option<String>,
    ready: Ready,
    /// Connections whose transfer ended and that wait for the peer's FIN, at most
    /// `PEER_FIN_WAIT`: looked at every round, since only time may end their wait.
    lingering: Vec<usize>,
    /// `--duration` ran out and every connection was told.
    time_up_seen: bool,
    done: usize,
}

impl TcpApp for SendApp {
    fn on_round(&mut self, stack: &mut Stack, now: Instant) -> bool {
        self.ready.begin(stack, &mut self.conns);
        // Open connections (a few per round, so a thousand SYNs do not leave at once).
        let mut burst = 64;
        while self.opened < self.want && burst > 0 {
            match stack.connect(self.remote) {
                Ok(id) => {
                    self.conns.push(AppConn::new(id, now));
                    self.ready.track_last(&mut self.conns);
                }
                Err(e) => {
                    self.error = Some(format!("connect: {e}"));
                    return false;
                }
            }
            self.opened += 1;
            burst -= 1;
        }
        let time_up = self.until.is_some_and(|u| now >= u);
        if time_up && !self.time_up_seen {
            // The one moment every connection has something to do without an event.
            self.time_up_seen = true;
            for pos in 0..self.conns.len() {
                self.ready.add(&mut self.conns, pos);
            }
        }
        for pos in std::mem::take(&mut self.lingering) {
            self.ready.add(&mut self.conns, pos);
        }
        for k in 0..self.ready.list.len() {
            let pos = self.ready.list[k];
            let c = &mut self.conns[pos];
            let Some(x) = stack.conn(c.id) else {
                c.done = true;
                self.done += 1;
                continue;
            };
            let st = x.state();
            c.cwnd_max = c.cwnd_max.max(x.cwnd());
            if st == State::Established && !c.closing {
                if c.bytes == 0 {
                    c.start = now;
                }
                let left = match self.target {
                    Some(t) => t - c.bytes,
                    None if time_up => 0,
                    None => u64::MAX,
                };
                if left > 0 {
                    let space = x.send_space() as u64;
                    let n = left.min(space) as usize;
                    if n > 0 {
                        // The stream is `payload` repeated (the file's whole length, or the
                        // pattern's period), so every write is a slice of it: `write` copies
                        // and checksums it in one pass.
                        let period = if self.file {
                            self.payload.len() as u64
                        } else {
                            PATTERN_MOD
                        };
                        let mut got = 0usize;
                        while got < n {
                            let at = ((c.bytes + got as u64) % period) as usize;
                            let rest = &self.payload[at..];
                            let chunk = &rest[..rest.len().min(n - got)];
                            let w = stack.write(c.id, chunk);
                            got += w;
                            if w < chunk.len() {
                                break;
                            }
                        }
                        c.bytes += got as u64;
                    }
                }
                let finished = match self.target {
                    Some(t) => c.bytes >= t,
                    None => time_up,
                };
                if finished {
                    stack.close(c.id);
                    c.closing = true;
                }
            }
            let x = match stack.conn(c.id) {
                Some(x) => x,
                None => continue,
            };
            // The transfer ends when our FIN is ACKed (goodput is measured to there); the
            // connection is done when the peer's FIN has come too (TIME-WAIT, CLOSED), the
            // connection died, or PEER_FIN_WAIT passed. Leaving in FIN-WAIT-2 would take
            // our XDP program away before the peer's FIN arrives, and the kernel on our
            // interface would answer that FIN with an RST.
            let st = x.state();
            let fin_acked = c.closing
                && x.all_acked()
                && matches!(
                    st,
                    State::FinWait2
                        | State::TimeWait
                        | State::Closed
                        | State::Closing
                        | State::LastAck
                );
            if (fin_acked || st == State::Closed) && c.end.is_none() {
                c.end = Some(now);
            }
            let waited_out = c
                .end
                .is_some_and(|e| now.duration_since(e) >= PEER_FIN_WAIT);
            if st == State::Closed || (fin_acked && (st == State::TimeWait || waited_out)) {
                c.done = true;
                self.done += 1;
                finish_conn(stack, c, now, false);
            } else if c.end.is_some() {
                self.lingering.push(pos);
            }
        }
        self.series.tick(now, stack, &self.conns, "send");
        !(self.opened == self.want && self.done == self.conns.len())
    }
}

struct RecvApp {
    port: u16,
    want: u32,
    conns: Vec<AppConn>,
    check: bool,
    pattern: Vec<u8>,
    series: Series,
    ready: Ready,
    done: u32,
}

impl TcpApp for RecvApp {
    fn on_round(&mut self, stack: &mut Stack, now: Instant) -> bool {
        self.ready.begin(stack, &mut self.conns);
        while let Some(id) = stack.accept(self.port) {
            self.conns.push(AppConn::new(id, now));
            // Data may have come before the accept: looked at at once.
            self.ready.track_last(&mut self.conns);
        }
        for k in 0..self.ready.list.len() {
            let c = &mut self.conns[self.ready.list[k]];
            let pat = &self.pattern;
            let check = self.check;
            let mut pos = c.bytes;
            let mut bad = c.bad_at;
            let got = stack.read_with(c.id, &mut |chunk: &[u8]| {
                if check && bad.is_none() {
                    let phase = (pos % PATTERN_MOD) as usize;
                    let want = &pat[phase..phase + chunk.len()];
                    if want != chunk {
                        let k = chunk
                            .iter()
                            .zip(want)
                            .position(|(a, b)| a != b)
                            .unwrap_or(0);
                        bad = Some(pos + k as u64);
                    }
                }
                pos += chunk.len() as u64;
            });
            c.bytes += got as u64;
            c.bad_at = bad;
            let Some(x) = stack.conn(c.id) else {
                c.done = true;
                self.done += 1;
                continue;
            };
            c.cwnd_max = c.cwnd_max.max(x.cwnd());
            if x.at_eof() && !c.closing {
                c.end = Some(now);
                stack.close(c.id);
                c.closing = true;
            }
            let st = stack.conn(c.id).map(|x| x.state()).unwrap_or(State::Closed);
            if st == State::Closed || (c.closing && st == State::TimeWait) {
                c.done = true;
                self.done += 1;
                c.end.get_or_insert(now);
                finish_conn(stack, c, now, self.check);
            }
        }
        self.series.tick(now, stack, &self.conns, "recv");
        self.done < self.want
    }
}

struct Setup {
    q: skiff_engine::xsk::XskQueue,
    _prog: skiff_engine::xdp::XdpAttachment,
    stack: Stack,
    qdisc: Qdisc<skiff_engine::tx::tcp::stack::TxFrame>,
    cc: CcKind,
    pacing: bool,
    run: TcpRunConfig,
    interval: Duration,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

/// The receive buffer, so the most a connection advertises: `--rcvbuf` (16 KiB to 1 GiB),
/// but no more than the fill ring takes. A window is data the peer may send while the
/// poller is away (descheduled: on a small machine the poller, the peer and their NAPI
/// threads share two CPUs), and the kernel puts every segment of it in a fill-ring frame;
/// what finds the ring empty is dropped before TCP sees it. The ring is full at a round's
/// end less at most one round's frames (`budget`), so `(fill - budget) × mss` arrives
/// whole: 1792 × 1460 = 2.5 MiB with the default ring of 2048 (before: a 4 MiB window,
/// and skiff → `skiff tcp recv` lost 2 to 72 frames per GiB to an empty fill ring with
/// the peer's NAPI threaded; PERFORMANCE.md). The kernel has no such bound (its NIC rings
/// are drained from softirq, which is seldom away that long); `--ring-size` raises it.
fn rcv_window_max(rcvbuf: u64, fill: u32, budget: usize, mss: u16) -> u32 {
    let absorb = u64::from(fill).saturating_sub(budget as u64) * u64::from(mss);
    rcvbuf.clamp(16 << 10, 1 << 30).min(absorb.max(16 << 10)) as u32
}

fn setup(a: &TcpCommon) -> Result<Setup> {
    require_caps()?;
    let cc: CcKind =
        a.cc.parse()
            .map_err(|_| anyhow::anyhow!("bad --cc {:?}: newreno or cubic", a.cc))?;
    let mut plan = a.dp.plan(false)?;
    if plan.queues.len() != 1 {
        bail!(
            "skiff tcp runs on one queue (--queues N with one N); multi-queue TCP is not built yet"
        );
    }
    plan.xsk.frames = a.frames.next_power_of_two().clamp(8192, 1 << 20);
    let mac =
        netdev::mac(&plan.ifname).with_context(|| format!("no MAC address for {}", plan.ifname))?;
    let (addr, prefix) = match &a.src {
        Some(s) => {
            let (ip, p) = s.split_once('/').unwrap_or((s, "24"));
            let ip: std::net::Ipv4Addr = ip.parse().with_context(|| format!("bad --src {s:?}"))?;
            (
                ip.octets(),
                p.parse::<u8>()
                    .with_context(|| format!("bad prefix in --src {s:?}"))?,
            )
        }
        None => netdev::ipv4_addr(&plan.ifname).with_context(|| {
            format!("{} has no IPv4 address: give --src IP/PREFIX", plan.ifname)
        })?,
    };
    let gw = a
        .gateway
        .as_deref()
        .map(|g| g.parse::<std::net::Ipv4Addr>().map(|x| x.octets()))
        .transpose()
        .context("bad --gateway")?;
    let sndbuf = parse_size(&a.sndbuf)?.clamp(16 << 10, 1 << 30) as u32;
    let mtu = netdev::mtu(&plan.ifname).unwrap_or(1500);
    // IPv4 + TCP headers without options: 40 bytes (RFC 9293 §3.7.1).
    let mss = (mtu.saturating_sub(40)).min(9000) as u16;
    let budget = a
        .budget
        .clamp(1, plan.xsk.tx_size.min(plan.xsk.rx_size) as usize);
    let rcvbuf = rcv_window_max(parse_size(&a.rcvbuf)?, plan.xsk.fill_size, budget, mss);
    let conn = ConnConfig {
        cc,
        rcvbuf,
        sndbuf,
        notsent_lowat: parse_size(&a.notsent_lowat)?.min(1 << 30) as u32,
        nagle: a.nagle,
        pacing: !a.no_pacing,
        mss,
        ..ConnConfig::default()
    };
    let filter = skiff_ebpf::Config {
        flags: skiff_ebpf::flags::ENABLED | skiff_ebpf::flags::MATCH_ALL,
        port_lo: 0,
        port_hi: 0,
        action: skiff_ebpf::Action::Redirect as u32,
        loss: 0,
    };
    let (prog, mut queues) = datapath::open(&plan, &a.dp, filter)?;
    let mut q = queues.pop().context("no queue")?;
    let fill = plan.xsk.fill_size;
    let mut frames = Vec::new();
    let total = q.free_len();
    q.alloc(&mut frames, total);
    let reserve = fill as usize + 1024;
    let route = Route::v4(addr, prefix, gw);
    let stack = Stack::new(
        StackConfig {
            mac,
            addr: IpAddr::from(addr),
            route,
            conn,
            max_syn_backlog: 1024,
            reserve_frames: reserve,
            sweep_us: DEFAULT_SWEEP_US,
        },
        q.area_shared(),
        frames,
    );
    let qcfg = match QdiscConfig::fq(None) {
        QdiscConfig::Fq { quantum, .. } => QdiscConfig::Fq {
            quantum,
            // TCP bounds what it queues itself (cwnd, TSQ); fq must not drop it.
            flow_limit: 1 << 16,
            limit: 1 << 20,
            maxrate: None,
            flow_rates: Vec::new(),
        },
        other => other,
    };
    let interval = parse_duration(&a.interval)?;
    let timeout = parse_duration(&a.timeout)?;
    let run = TcpRunConfig {
        deadline: Some(Instant::now() + timeout),
        gro: if a.no_gro {
            None
        } else {
            TcpRunConfig::default().gro
        },
        fill_target: fill,
        budget,
        ..TcpRunConfig::default()
    };
    let stop = datapath::stop_for(&a.dp);
    Ok(Setup {
        q,
        _prog: prog,
        stack,
        qdisc: Qdisc::new(&qcfg),
        cc,
        pacing: !a.no_pacing,
        run,
        interval,
        stop,
    })
}

fn totals(
    role: &'static str,
    a: &TcpCommon,
    s: &Setup,
    want: u32,
    conns: &[AppConn],
    series: Vec<IntervalSample>,
    poller: TcpRunReport,
) -> TcpReport {
    let reports: Vec<ConnReport> = conns.iter().filter_map(|c| c.report.clone()).collect();
    let bytes: u64 = reports.iter().map(|r| r.bytes).sum();
    let start = conns.iter().map(|c| c.start).min();
    let end = conns.iter().filter_map(|c| c.end).max();
    let elapsed = match (start, end) {
        (Some(a), Some(b)) if b > a => b.duration_since(a).as_secs_f64(),
        _ => poller.elapsed_s,
    };
    let mut all = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
    for c in conns {
        if let Some(h) = s.stack.conn(c.id).and_then(|x| x.rtt_histogram()) {
            let _ = all.add(h);
        }
    }
    let completed = reports.iter().filter(|r| r.complete).count() as u32;
    TcpReport {
        role,
        iface: a.dp.iface.clone(),
        cc: s.cc,
        pacing: s.pacing,
        conns_requested: want,
        conns_completed: completed,
        bytes,
        elapsed_s: elapsed,
        goodput_bps: bytes as f64 * 8.0 / elapsed.max(1e-9),
        retrans_segs: reports.iter().map(|r| r.counters.retrans_segs).sum(),
        rtt: rtt_summary(&all),
        fairness: fairness(&reports),
        all_ok: completed == want,
        conns: reports,
        intervals: series,
        stack: s.stack.counters(),
        neigh: s.stack.neigh_counters(),
        poller,
    }
}

fn print_text(r: &TcpReport) {
    println!(
        "skiff tcp {}: {} connection(s) of {} complete, {} bytes in {:.3} s = {:.1} Mbit/s goodput, {} retransmitted segments",
        r.role,
        r.conns_completed,
        r.conns_requested,
        r.bytes,
        r.elapsed_s,
        r.goodput_bps / 1e6,
        r.retrans_segs
    );
    println!(
        "  RTT µs: min {} p50 {} p90 {} p99 {} p99.9 {} max {} ({} samples)",
        r.rtt.min_us,
        r.rtt.p50_us,
        r.rtt.p90_us,
        r.rtt.p99_us,
        r.rtt.p999_us,
        r.rtt.max_us,
        r.rtt.samples
    );
    if let Some(f) = &r.fairness {
        println!(
            "  per connection Mbit/s: min {:.1} p10 {:.1} p50 {:.1} p90 {:.1} max {:.1}, Jain's fairness index {:.3}",
            f.min_bps / 1e6,
            f.p10_bps / 1e6,
            f.p50_bps / 1e6,
            f.p90_bps / 1e6,
            f.max_bps / 1e6,
            f.jain
        );
    }
    if let Some(g) = &r.poller.gro {
        println!(
            "  GRO: {} frames in: {} in {} merged packets, {} alone",
            g.received,
            g.frames_out - g.singles_out,
            g.packets_out,
            g.singles_out
        );
    }
    let cpu = &r.poller.cpu;
    println!(
        "  poller CPU: user {:.2} s, system {:.2} s ({:.2} s user per GiB; on veth the system time includes the peer's receive)",
        cpu.user_s,
        cpu.sys_s,
        cpu.user_s / (r.bytes.max(1) as f64 / (1u64 << 30) as f64)
    );
    println!(
        "  poller: {} rounds, {} connection runs ({:.1} per round), {} full walks",
        r.poller.poller.rounds,
        r.stack.conn_runs,
        r.stack.conn_runs as f64 / r.poller.poller.rounds.max(1) as f64,
        r.stack.sweeps
    );
    if r.stack.sweep_found > 0 {
        println!(
            "  BUG: the periodic walk found {} connections with work no event had announced (a missed wakeup; they ran late, not wrongly): please report it",
            r.stack.sweep_found
        );
    }
    let x = &r.poller.xdp_statistics;
    if x.rx_dropped + x.rx_ring_full > 0 {
        println!(
            "  the kernel dropped {} frames for this socket ({} with the RX ring full, {} with the fill ring empty): TCP saw them as losses; a larger --budget or --ring-size gives the poller more room",
            x.rx_dropped + x.rx_ring_full,
            x.rx_ring_full,
            x.rx_fill_ring_empty_descs
        );
    }
    if r.stack.in_csum_errors > 0 {
        println!(
            "  {} segments with bad TCP checksums were dropped. On veth, a kernel peer leaves checksums partial unless its TX checksum offload is off: `ethtool -K PEER-IF tx off`",
            r.stack.in_csum_errors
        );
    }
    for c in r.conns.iter().take(16) {
        println!(
            "  conn {} {} -> {}: {} B, {:.1} Mbit/s, retrans {}, timeouts {}, cwnd max {}, srtt {:?} µs, {:?}{}",
            c.id,
            c.local,
            c.remote,
            c.bytes,
            c.goodput_bps / 1e6,
            c.counters.retrans_segs,
            c.counters.timeouts,
            c.cwnd_max,
            c.last.srtt_us,
            c.close_reason.unwrap_or(CloseReason::Normal),
            match c.pattern_ok {
                Some(true) => ", pattern ok".to_string(),
                Some(false) => format!(", PATTERN MISMATCH at byte {}", c.first_bad_offset.unwrap_or(0)),
                None => String::new(),
            }
        );
    }
    if r.conns.len() > 16 {
        println!(
            "  ... {} more connections (--json lists all)",
            r.conns.len() - 16
        );
    }
}

pub fn run(cmd: TcpCmd) -> Result<()> {
    match cmd {
        TcpCmd::Send(a) => send(a),
        TcpCmd::Recv(a) => recv(a),
    }
}

fn send(a: SendArgs) -> Result<()> {
    let dst: SocketAddr = a
        .dst
        .parse()
        .with_context(|| format!("bad --dst {:?}: IP:PORT", a.dst))?;
    if a.conns == 0 || a.conns > 20_000 {
        bail!("bad --conns {}: 1 to 20000", a.conns);
    }
    let target = match (&a.bytes, &a.duration) {
        (Some(b), _) => Some(parse_size(b).context("--bytes")?),
        (None, Some(_)) => None,
        (None, None) => bail!("give --bytes N or --duration D"),
    };
    let (payload, file) = match &a.file {
        Some(p) => {
            let mut v = Vec::new();
            std::fs::File::open(p)
                .and_then(|mut f| f.read_to_end(&mut v))
                .with_context(|| format!("reading {}", p.display()))?;
            if v.is_empty() {
                bail!("{} is empty", p.display());
            }
            (v, true)
        }
        None => (pattern(), false),
    };
    let mut s = setup(&a.common)?;
    if let Some(m) = &a.common.dst_mac {
        let mac = parse_mac(m).with_context(|| format!("bad --dst-mac {m:?}"))?;
        s.stack.add_neighbour(dst.ip(), mac);
    }
    let until = a
        .duration
        .as_deref()
        .map(parse_duration)
        .transpose()?
        .map(|d| Instant::now() + d);
    datapath::signal_ready(&a.common.dp)?;
    let mut app = SendApp {
        remote: (dst.ip(), dst.port()),
        want: a.conns,
        opened: 0,
        conns: Vec::new(),
        target,
        until,
        payload,
        file,
        series: Series::new(s.interval, a.common.dp.quiet),
        error: None,
        ready: Ready::default(),
        lingering: Vec::new(),
        time_up_seen: false,
        done: 0,
    };
    let poller = run_tcp(
        &mut s.q,
        &mut s.stack,
        &mut s.qdisc,
        &mut app,
        &s.run,
        &s.stop,
    );
    finish_rest(&s.stack, &mut app.conns, false);
    let series = std::mem::take(&mut app.series.samples);
    let r = totals("send", &a.common, &s, a.conns, &app.conns, series, poller);
    s.stack.shutdown();
    output(&r, a.common.dp.json)?;
    if let Some(e) = app.error {
        bail!("{e}");
    }
    if !r.all_ok {
        bail!(
            "{} of {} connection(s) did not complete",
            r.conns_requested - r.conns_completed,
            r.conns_requested
        );
    }
    Ok(())
}

fn recv(a: RecvArgs) -> Result<()> {
    if a.conns == 0 || a.conns > 20_000 {
        bail!("bad --conns {}: 1 to 20000", a.conns);
    }
    let expect = a.expect_bytes.as_deref().map(parse_size).transpose()?;
    let mut s = setup(&a.common)?;
    s.stack
        .listen(a.listen, (a.conns as usize).max(128))
        .map_err(|e| anyhow::anyhow!("listen: {e}"))?;
    datapath::signal_ready(&a.common.dp)?;
    let mut app = RecvApp {
        port: a.listen,
        want: a.conns,
        conns: Vec::new(),
        check: !a.no_check,
        pattern: pattern(),
        series: Series::new(s.interval, a.common.dp.quiet),
        ready: Ready::default(),
        done: 0,
    };
    let poller = run_tcp(
        &mut s.q,
        &mut s.stack,
        &mut s.qdisc,
        &mut app,
        &s.run,
        &s.stop,
    );
    finish_rest(&s.stack, &mut app.conns, !a.no_check);
    let series = std::mem::take(&mut app.series.samples);
    let mut r = totals("recv", &a.common, &s, a.conns, &app.conns, series, poller);
    if let Some(e) = expect {
        let short = r.conns.iter().filter(|c| c.bytes != e).count();
        if short > 0 {
            r.all_ok = false;
        }
    }
    s.stack.shutdown();
    output(&r, a.common.dp.json)?;
    if !r.all_ok {
        bail!(
            "{} of {} connection(s) did not complete with the expected bytes and pattern",
            r.conns_requested.saturating_sub(r.conns_completed),
            r.conns_requested
        );
    }
    Ok(())
}

fn output(r: &TcpReport, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(r)?);
    } else {
        print_text(r);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::rcv_window_max;

    #[test]
    fn receive_window_fits_the_fill_ring() {
        // The defaults: a 4 MiB buffer, a 2048-entry fill ring, budget 256, MSS 1460.
        assert_eq!(rcv_window_max(4 << 20, 2048, 256, 1460), 1792 * 1460);
        // A deeper ring leaves the buffer as asked.
        assert_eq!(rcv_window_max(4 << 20, 8192, 256, 1460), 4 << 20);
        // Never below 16 KiB (a budget above the ring included), at most what the
        // largest ring takes of jumbo frames.
        assert_eq!(rcv_window_max(1, 2048, 256, 1460), 16 << 10);
        assert_eq!(rcv_window_max(4 << 20, 64, 256, 1460), 16 << 10);
        assert_eq!(rcv_window_max(u64::MAX, 32768, 1, 9000), 32767 * 9000);
    }
}
