//! `skiff sink`: receives on AF_XDP sockets and counts, by class and by drop reason.

use std::{
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use serde::Serialize;
use skiff_engine::{
    latency::{collect::Collector, tracker::SeqTracker},
    netdev,
    pcap::PcapSummary,
    rx::poller::{run_rx, IdleMode, PollConfig, RxQueueReport},
    stats::{Published, RxCounters},
    wire::Malformed,
    xdp::XdpCounters,
    xsk::BindMode,
};

use crate::{
    common::{bitrates, fmt_rate, parse_count, parse_duration, parse_list, pin, require_caps},
    datapath::{self, DataPathArgs},
    latency::{self, LatencyArgs, LatencyJson, LatencyOut},
};

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ActionArg {
    /// Into the AF_XDP sockets (counted by skiff).
    Redirect,
    /// XDP_DROP in the program (the fastest possible sink; counted by the program).
    Drop,
}

#[derive(Debug, Args, Clone)]
pub struct SinkArgs {
    #[command(flatten)]
    pub dp: DataPathArgs,
    /// Stop after this long (e.g. 10, 10s). Without it (or --count): until Ctrl-C.
    #[arg(long)]
    pub duration: Option<String>,
    /// Stop after receiving this many frames.
    #[arg(long)]
    pub count: Option<String>,
    /// UDP/TCP destination ports to take, `LO-HI`.
    #[arg(long, default_value = "9000-9099")]
    pub ports: String,
    /// Take every frame, whatever its protocol (a dedicated test interface).
    #[arg(long)]
    pub match_all: bool,
    /// What the XDP program does with matching frames.
    #[arg(long, value_enum, default_value_t = ActionArg::Redirect)]
    pub xdp_action: ActionArg,
    /// Never sleep when idle (lowest latency, a whole core per queue).
    #[arg(long)]
    pub busy_poll: bool,
    #[command(flatten)]
    pub capture: crate::common::PcapOutArgs,
    #[command(flatten)]
    pub lat: LatencyArgs,
}

#[derive(Debug, Serialize, Default)]
pub struct Dropped {
    /// Matched, but no socket on that queue (to the kernel instead).
    pub xdp_redirect_failed: u64,
    /// Malformed headers seen by the XDP program (to the kernel).
    pub xdp_parse_error: u64,
    /// XDP_DROP by --xdp-action drop.
    pub xdp_dropped: u64,
    /// The socket could not take the frame (no fill ring entry, ...).
    pub xsk_rx_dropped: u64,
    /// The socket's RX ring was full.
    pub xsk_rx_ring_full: u64,
    /// Invalid RX descriptors.
    pub xsk_rx_invalid_descs: u64,
    /// Frames received but malformed (counted in rx_packets too), by reason.
    pub malformed: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Serialize)]
pub struct SinkReport {
    pub iface: String,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub elapsed_s: f64,
    pub active_s: f64,
    pub rx_pps: f64,
    pub rx_bps_l2: f64,
    pub dropped: Dropped,
    pub xdp: XdpCounters,
    pub xsk_fill_ring_empty: u64,
    pub iface_rx_dropped: u64,
    pub xdp_mode: &'static str,
    pub xdp_fallback_reason: Option<String>,
    pub zero_copy: bool,
    pub frames_accounted: bool,
    pub queues: Vec<RxQueueReport>,
    pub pcap_out: Option<PcapSummary>,
    /// Latency probes: one-way latency, loss, reordering, duplication.
    #[serde(flatten)]
    pub latency: LatencyJson,
    #[serde(skip)]
    pub hists: latency::Hists,
}

pub fn run(a: SinkArgs) -> Result<SinkReport> {
    require_caps()?;
    let plan = a.dp.plan(true)?;
    let ifname = plan.ifname.clone();
    let duration = a.duration.as_deref().map(parse_duration).transpose()?;
    let count = a.count.as_deref().map(parse_count).transpose()?;
    let ports = parse_list(&a.ports, "port").context("--ports")?;
    let (lo, hi) = (ports[0], *ports.last().unwrap_or(&ports[0]));
    if hi > u16::MAX as u32 || lo == 0 {
        bail!("bad --ports {:?}: 1..=65535", a.ports);
    }
    let mut flags = skiff_ebpf::flags::ENABLED;
    if a.match_all {
        flags |= skiff_ebpf::flags::MATCH_ALL;
    }
    let action = match a.xdp_action {
        ActionArg::Redirect => skiff_ebpf::Action::Redirect,
        ActionArg::Drop => skiff_ebpf::Action::Drop,
    };
    let filter = skiff_ebpf::Config {
        flags,
        port_lo: lo as u16,
        port_hi: hi as u16,
        action: action as u32,
        reserved: 0,
    };
    if a.capture.pcap_out.is_some() && matches!(a.xdp_action, ActionArg::Drop) {
        bail!("--pcap-out captures what reaches the sockets; with --xdp-action drop nothing does");
    }
    let tap = a.capture.open()?;
    let mut lat = LatencyOut::open(&a.lat, "skiff sink: one-way latency")?;
    let collector = std::sync::Arc::new(std::sync::Mutex::new(Collector::new(
        lat.late_ns,
        SeqTracker::DEFAULT_WINDOW,
    )));
    let (prog, queues) = datapath::open(&plan, &a.dp, filter)?;
    let rx_dropped_before = netdev::stat(&ifname, "rx_dropped");
    let xdp_mode = prog.mode();
    let fallback = prog.fallback_reason().map(str::to_owned);
    let zero_copy = queues.iter().all(|q| q.mode() == BindMode::ZeroCopy);
    let stop = datapath::stop_for(&a.dp);
    let poll = PollConfig {
        idle: if a.busy_poll {
            IdleMode::BusyPoll
        } else {
            IdleMode::Adaptive
        },
        fill_target: plan.xsk.fill_size,
        ..PollConfig::default()
    };
    let n = queues.len();
    let published: Vec<_> = (0..n).map(|_| Published::<RxCounters>::new()).collect();
    let inner_stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut handles = Vec::with_capacity(n);
    for (i, mut q) in queues.into_iter().enumerate() {
        let cpu = plan.cpus[i];
        let stop = inner_stop.clone();
        let publ = published[i].clone();
        let tap = tap.clone();
        let coll = collector.clone();
        handles.push(
            std::thread::Builder::new()
                .name(format!("skiff-rx{}", q.queue_id()))
                .spawn(move || {
                    let pinned = pin(cpu);
                    let (counters, span) =
                        run_rx(&mut q, &poll, &stop, &publ, tap.as_ref(), Some(&coll));
                    let report = RxQueueReport {
                        queue: q.queue_id(),
                        cpu: cpu.filter(|_| pinned),
                        counters,
                        xdp_statistics: q.statistics(),
                        frames: q.accounting(),
                    };
                    (report, span)
                })
                .context("spawning an RX poller thread")?,
        );
    }
    datapath::signal_ready(&a.dp)?;
    let start = Instant::now();
    let deadline = duration.map(|d| start + d);
    if !a.dp.quiet && !a.dp.json && deadline.is_none() && count.is_none() {
        eprintln!("skiff sink: receiving on {ifname} until Ctrl-C");
    }
    let mut last = (RxCounters::default(), XdpCounters::default());
    let quiet = a.dp.quiet;
    let sum_now = |published: &[std::sync::Arc<Published<RxCounters>>]| {
        let mut s = RxCounters::default();
        for p in published {
            s.add(&p.read());
        }
        s
    };
    // The loop ends when a limit is reached or a signal arrives; then the pollers stop.
    let mut lat_err: Option<anyhow::Error> = None;
    let period = lat.interval;
    datapath::progress_loop(
        start,
        period,
        || {
            stop.load(Ordering::Relaxed)
                || deadline.is_some_and(|d| Instant::now() >= d)
                || count.is_some_and(|c| {
                    let s = sum_now(&published);
                    let x = prog.counters();
                    s.rx_packets + x.dropped >= c
                })
        },
        |t| {
            let s = sum_now(&published);
            let x = prog.counters();
            {
                let mut c = collector.lock().unwrap_or_else(|e| e.into_inner());
                if let Err(e) = lat.cut(&mut c, t.as_secs_f64()) {
                    lat_err.get_or_insert(e);
                }
            }
            if !quiet {
                let secs = period.as_secs_f64();
                let pps = (s.rx_packets - last.0.rx_packets) as f64 / secs;
                let xdp_drop = (x.dropped - last.1.dropped) as f64 / secs;
                let (l2, _) = bitrates(
                    s.rx_packets - last.0.rx_packets,
                    s.rx_bytes - last.0.rx_bytes,
                    secs,
                );
                eprintln!(
                    "sink {:>5.1}s  rx {:>12}  {:>14} L2  xdp_drop {:>12}  redirect_failed {}  malformed {}{}",
                    t.as_secs_f64(),
                    fmt_rate(pps, "pps"),
                    fmt_rate(l2, "bit/s"),
                    fmt_rate(xdp_drop, "pps"),
                    x.redirect_failed,
                    s.malformed_total(),
                    latency::progress_part(&lat.last_interval)
                );
            }
            last = (s, x);
        },
    );
    let run_end = Instant::now();
    // Let frames already in flight land before the pollers stop (veth delivers within µs).
    std::thread::sleep(Duration::from_millis(50));
    inner_stop.store(true, Ordering::SeqCst);
    let mut reports = Vec::with_capacity(n);
    let mut first: Option<Instant> = None;
    let mut last_rx: Option<Instant> = None;
    for h in handles {
        let (r, span) = h
            .join()
            .map_err(|_| anyhow::anyhow!("an RX poller thread panicked"))?;
        if let Some((f, l)) = span {
            first = Some(first.map_or(f, |x| x.min(f)));
            last_rx = Some(last_rx.map_or(l, |x| x.max(l)));
        }
        reports.push(r);
    }
    let pcap_out = tap.map(|t| t.finish()).transpose()?;
    if let Some(e) = lat_err {
        return Err(e);
    }
    let (latency, hists) = {
        let mut c = collector.lock().unwrap_or_else(|e| e.into_inner());
        lat.finish(
            &mut c,
            (run_end - start).as_secs_f64(),
            "one way (sender and sink share this host's CLOCK_MONOTONIC; meaningless across hosts)",
            |_, _| None,
        )?
    };
    let xdp = prog.counters(); // a fresh program: its counters start at zero
    let iface_rx_dropped = netdev::stat(&ifname, "rx_dropped").saturating_sub(rx_dropped_before);
    drop(prog);

    let mut total = RxCounters::default();
    for r in &reports {
        total.add(&r.counters);
    }
    let active = match (first, last_rx) {
        (Some(f), Some(l)) if l > f => (l - f).as_secs_f64(),
        _ => 0.0,
    };
    let pps = if active > 0.0 {
        total.rx_packets as f64 / active
    } else {
        0.0
    };
    let (l2, _) = bitrates(total.rx_packets, total.rx_bytes, active);
    let mut malformed = serde_json::Map::new();
    for m in Malformed::ALL {
        malformed.insert(m.name().to_owned(), total.malformed[m.index()].into());
    }
    let sum = |f: fn(&RxQueueReport) -> u64| reports.iter().map(f).sum::<u64>();
    Ok(SinkReport {
        iface: ifname,
        rx_packets: total.rx_packets,
        rx_bytes: total.rx_bytes,
        elapsed_s: (run_end - start).as_secs_f64(),
        active_s: active,
        rx_pps: pps,
        rx_bps_l2: l2,
        dropped: Dropped {
            xdp_redirect_failed: xdp.redirect_failed,
            xdp_parse_error: xdp.parse_error,
            xdp_dropped: xdp.dropped,
            xsk_rx_dropped: sum(|r| r.xdp_statistics.rx_dropped),
            xsk_rx_ring_full: sum(|r| r.xdp_statistics.rx_ring_full),
            xsk_rx_invalid_descs: sum(|r| r.xdp_statistics.rx_invalid_descs),
            malformed,
        },
        xdp,
        xsk_fill_ring_empty: sum(|r| r.xdp_statistics.rx_fill_ring_empty_descs),
        iface_rx_dropped,
        xdp_mode: xdp_mode.name(),
        xdp_fallback_reason: fallback,
        zero_copy,
        frames_accounted: reports.iter().all(|r| r.frames.adds_up()),
        queues: reports,
        pcap_out,
        latency,
        hists,
    })
}

pub fn print_text(r: &SinkReport) {
    crate::common::print_header("sink", &r.iface, r.queues.len(), r.xdp_mode, r.zero_copy);
    println!(
        "  received   {:>12} frames, {} bytes in {:.3} s of traffic ({:.3} s run): {}, {} L2",
        r.rx_packets,
        r.rx_bytes,
        r.active_s,
        r.elapsed_s,
        fmt_rate(r.rx_pps, "pps"),
        fmt_rate(r.rx_bps_l2, "bit/s")
    );
    let d = &r.dropped;
    println!(
        "  dropped    xdp redirect_failed {}  xdp parse_error {}  xsk rx_dropped {}  xsk rx_ring_full {}  xsk invalid {}",
        d.xdp_redirect_failed, d.xdp_parse_error, d.xsk_rx_dropped, d.xsk_rx_ring_full, d.xsk_rx_invalid_descs
    );
    if d.xdp_dropped > 0 {
        println!(
            "  XDP_DROP   {:>12} frames (--xdp-action drop)",
            d.xdp_dropped
        );
    }
    println!(
        "  passed to the kernel (not matching: ARP, other ports): {}",
        r.xdp.passed
    );
    for q in &r.queues {
        println!(
            "  queue {:>2}{}: rx {} batches {} empty_polls {} time_squeeze {} sleeps {} frames {}",
            q.queue,
            q.cpu.map(|c| format!(" (cpu {c})")).unwrap_or_default(),
            q.counters.rx_packets,
            q.counters.rx_batches,
            q.counters.rx_empty_polls,
            q.counters.time_squeeze,
            q.counters.idle_sleeps,
            crate::common::fmt_frames(&q.frames)
        );
    }
    crate::common::print_pcap(&r.pcap_out, "received");
    if r.latency.probes > 0 || r.latency.bad_probes.total() > 0 {
        latency::print_terminal(&r.latency, &r.hists, "one way");
    }
}
