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
    rx::{
        consume::Consumer,
        gro::{GroConfig, GroCounters},
        poller::{run_rx, IdleMode, Local, PollConfig, RxQueueReport, RxStage},
        rps::{
            backlog::{fabric, BacklogConfig, SoftnetCounters},
            hash::{parse_key_hex, FlowHasher, RpsMap, Toeplitz},
            rfs::{DevFlowTable, SockFlowTable, DEFAULT_SOCK_FLOW_ENTRIES},
        },
        steer::{run_worker, Rfs, Steer, SteerCounters, WorkerConfig, WorkerCounters},
    },
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
    #[command(flatten)]
    pub rx: RxPathArgs,
}

/// Flow hash for steering.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum HashArg {
    /// Toeplitz (what NICs compute for RSS; the key is --rss-key).
    Toeplitz,
    /// A multiply/xor mix: cheaper, not what a NIC computes.
    Cheap,
}

/// The receive machinery behind the pollers: RPS steering to workers, RFS, GRO.
#[derive(Debug, Args, Clone)]
#[command(next_help_heading = "Steering (RPS/RFS) and GRO")]
pub struct RxPathArgs {
    /// RPS: steer frames by flow hash to worker threads pinned to these CPUs, one per CPU
    /// listed: `0-1`, `0,2`, or per RX queue `0:0-1;1:2-3`. Pollers then only hash and
    /// hand frames over; workers consume them.
    #[arg(long, value_name = "LIST")]
    pub rps_cpus: Option<String>,
    /// RPS with N unpinned worker threads (instead of --rps-cpus).
    #[arg(long, value_name = "N", conflicts_with = "rps_cpus")]
    pub workers: Option<usize>,
    /// Frames each (poller, worker) backlog ring holds: the kernel's netdev_max_backlog.
    #[arg(long, default_value_t = 1000)]
    pub max_backlog: usize,
    /// Flow limit table length per backlog (`off` to disable): above half full, a
    /// backlog drops from the flows holding most of it first.
    #[arg(long, default_value = "4096")]
    pub flow_limit: String,
    /// Frames a worker takes per pass over its backlogs (the kernel's weight_p).
    #[arg(long, default_value_t = 64)]
    pub weight: usize,
    /// RFS: keep each flow on the worker that consumes it, moving a flow only after its
    /// old backlog has drained past its last frame.
    #[arg(long)]
    pub rfs: bool,
    /// Flow hash used for steering.
    #[arg(long, value_enum, default_value_t = HashArg::Toeplitz)]
    pub rps_hash: HashArg,
    /// Toeplitz key in hex (40 to 64 bytes). Default: the Microsoft RSS key.
    #[arg(long, value_name = "HEX")]
    pub rss_key: Option<String>,
    /// Hash flows symmetrically (both directions of a flow land on the same worker).
    #[arg(long)]
    pub symmetric: bool,
    /// Simulated application work per frame in each worker (e.g. 2us): to see backlogs
    /// fill, the flow limit act and drops add up.
    #[arg(long, value_name = "TIME")]
    pub worker_cost: Option<String>,
    /// GRO: merge TCP segments of a flow as the kernel's GRO does (flushed at the end of
    /// every poll round); --pcap-out then writes merged packets, as tcpdump on a GRO
    /// receiver shows them.
    #[arg(long)]
    pub gro: bool,
    /// With --gro: merge UDP datagrams of a flow too (the kernel's UDP_GRO).
    #[arg(long, requires = "gro")]
    pub gro_udp: bool,
}

impl RxPathArgs {
    fn gro(&self) -> Option<GroConfig> {
        self.gro.then(|| GroConfig {
            udp: self.gro_udp,
            ..GroConfig::default()
        })
    }

    fn hasher(&self) -> Result<FlowHasher> {
        let h = match (self.rps_hash, &self.rss_key) {
            (HashArg::Toeplitz, None) => FlowHasher::ms_rss(),
            (HashArg::Toeplitz, Some(k)) => {
                let key = parse_key_hex(k).context("--rss-key")?;
                FlowHasher::toeplitz(Toeplitz::new(&key).context("--rss-key")?)
            }
            (HashArg::Cheap, None) => FlowHasher::cheap(),
            (HashArg::Cheap, Some(_)) => bail!("--rss-key is for --rps-hash toeplitz"),
        };
        Ok(h.with_symmetric(self.symmetric))
    }

    /// Workers (with their CPUs) and the per-queue map, if steering is on.
    fn plan(&self, queues: u32) -> Result<Option<(Vec<Option<usize>>, RpsMap)>> {
        if let Some(n) = self.workers {
            if n == 0 {
                bail!("--workers must be at least 1");
            }
            let map = RpsMap::all(n, queues).context("--workers")?;
            return Ok(Some((vec![None; n], map)));
        }
        let Some(spec) = &self.rps_cpus else {
            return Ok(None);
        };
        // Workers are the CPUs named anywhere in the spec; the map's entries are worker
        // indices, so translate CPU numbers to positions in that list.
        let by_cpu = RpsMap::parse(spec, queues).context("--rps-cpus")?;
        let mut cpus: Vec<usize> = (0..by_cpu.queues())
            .flat_map(|q| by_cpu.workers(q).to_vec())
            .collect();
        cpus.sort_unstable();
        cpus.dedup();
        let online = core_affinity::get_core_ids().map_or(0, |v| v.len());
        if let Some(c) = cpus.iter().find(|&&c| c >= online) {
            bail!("--rps-cpus: CPU {c} is not online ({online} CPUs)");
        }
        let lists = (0..by_cpu.queues())
            .map(|q| {
                by_cpu
                    .workers(q)
                    .iter()
                    .map(|c| cpus.iter().position(|x| x == c).unwrap_or(0))
                    .collect()
            })
            .collect();
        let map = RpsMap::new(lists).context("--rps-cpus")?;
        Ok(Some((cpus.into_iter().map(Some).collect(), map)))
    }

    fn backlog(&self, frames: usize) -> Result<BacklogConfig> {
        let flow_limit_table_len = match self.flow_limit.as_str() {
            "off" | "0" => 0,
            n => n
                .parse::<usize>()
                .ok()
                .filter(|&n| n <= 1 << 16)
                .ok_or_else(|| anyhow::anyhow!("bad --flow-limit {n:?}: off or 1..=65536"))?,
        };
        if self.max_backlog == 0 || self.weight == 0 {
            bail!("--max-backlog and --weight must be at least 1");
        }
        Ok(BacklogConfig {
            max_backlog: self.max_backlog,
            weight: self.weight,
            flow_limit_table_len,
            return_capacity: frames,
        })
    }
}

/// One worker's softnet_stat-style line.
#[derive(Debug, Serialize)]
pub struct SoftnetRow {
    pub worker: usize,
    pub cpu: Option<usize>,
    #[serde(flatten)]
    pub softnet: SoftnetCounters,
}

/// What steering did, and whether it adds up.
#[derive(Debug, Serialize)]
pub struct RpsReport {
    pub workers: usize,
    pub hash: &'static str,
    pub symmetric: bool,
    pub rfs: bool,
    pub max_backlog: usize,
    pub flow_limit_table: usize,
    /// What the pollers did: steered, dropped (backlog full, flow limit), RFS moves.
    pub steer: SteerCounters,
    /// Per worker, in the columns of /proc/net/softnet_stat.
    pub softnet: Vec<SoftnetRow>,
    /// Frames taken from the rings = steered + backlog_full + flow_limit, and every
    /// steered frame processed by a worker.
    pub adds_up: bool,
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
    /// RPS steering, when on (--rps-cpus, --workers).
    pub rps: Option<RpsReport>,
    /// GRO counters (--gro), summed over the threads that ran it.
    pub gro: Option<GroCounters>,
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
        loss: 0,
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
    let nq = plan.queues.iter().max().map_or(1, |m| m + 1);
    let steering = a.rx.plan(nq)?;
    let hasher = a.rx.hasher()?;
    let backlog = a.rx.backlog(plan.xsk.frames as usize)?;
    let worker_cfg = WorkerConfig {
        work_ns: a
            .rx
            .worker_cost
            .as_deref()
            .map(parse_duration)
            .transpose()
            .context("--worker-cost")?
            .map_or(0, |d| d.as_nanos() as u64),
        ..WorkerConfig::default()
    };
    if worker_cfg.work_ns > 0 && steering.is_none() {
        bail!("--worker-cost needs workers (--rps-cpus or --workers)");
    }
    let gro = a.rx.gro();
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
    let worker_stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let areas: Vec<_> = queues.iter().map(|q| q.area_shared()).collect();
    let lat_shared = Some(collector.clone());
    // Steering: a fabric of backlog rings from every poller to every worker.
    let (producers, workers, worker_cpus, map) = match steering {
        Some((cpus, map)) => {
            let (p, w) = fabric(n, cpus.len(), backlog);
            (p, w, cpus, Some(std::sync::Arc::new(map)))
        }
        None => (Vec::new(), Vec::new(), Vec::new(), None),
    };
    let sock_table = (a.rx.rfs && map.is_some()).then(|| {
        std::sync::Arc::new(SockFlowTable::new(
            DEFAULT_SOCK_FLOW_ENTRIES,
            worker_cpus.len(),
        ))
    });
    let steer_pub: Vec<_> = (0..n).map(|_| Published::<SteerCounters>::new()).collect();
    let worker_pub: Vec<_> = (0..workers.len())
        .map(|_| Published::<WorkerCounters>::new())
        .collect();
    let mut worker_handles = Vec::with_capacity(workers.len());
    for (i, mut w) in workers.into_iter().enumerate() {
        let cpu = worker_cpus[i];
        let mut consumer = Consumer::new(areas.clone(), lat_shared.clone(), tap.clone(), gro);
        let stop = worker_stop.clone();
        let publ = worker_pub[i].clone();
        let table = sock_table.clone();
        worker_handles.push(
            std::thread::Builder::new()
                .name(format!("skiff-rps{i}"))
                .spawn(move || {
                    pin(cpu);
                    run_worker(
                        &mut w,
                        &mut consumer,
                        &worker_cfg,
                        &stop,
                        table.as_deref(),
                        &publ,
                    )
                })
                .context("spawning an RPS worker thread")?,
        );
    }
    let mut handles = Vec::with_capacity(n);
    let mut producers = producers.into_iter();
    for (i, mut q) in queues.into_iter().enumerate() {
        let cpu = plan.cpus[i];
        let stop = inner_stop.clone();
        let publ = published[i].clone();
        let mut stage: Box<dyn RxStage + Send> = match &map {
            Some(map) => {
                let producer = producers.next().context("one backlog producer per queue")?;
                let rfs = sock_table.as_ref().map(|t| Rfs {
                    sock: t.clone(),
                    dev: DevFlowTable::new(DEFAULT_SOCK_FLOW_ENTRIES, worker_cpus.len()),
                });
                Box::new(Steer::new(
                    producer,
                    q.queue_id(),
                    hasher.clone(),
                    map.clone(),
                    rfs,
                    steer_pub[i].clone(),
                ))
            }
            None => Box::new(Local::new(Consumer::new(
                vec![q.area_shared()],
                lat_shared.clone(),
                tap.clone(),
                gro,
            ))),
        };
        handles.push(
            std::thread::Builder::new()
                .name(format!("skiff-rx{}", q.queue_id()))
                .spawn(move || {
                    let pinned = pin(cpu);
                    let (counters, span) = run_rx(&mut q, &poll, &stop, &publ, stage.as_mut());
                    let report = RxQueueReport {
                        queue: q.queue_id(),
                        cpu: cpu.filter(|_| pinned),
                        counters,
                        xdp_statistics: q.statistics(),
                        frames: q.accounting(),
                    };
                    (report, span, stage.gro_counters())
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
    let mut gro_total: Option<GroCounters> = None;
    let mut add_gro = |g: Option<GroCounters>| {
        if let Some(g) = g {
            gro_total.get_or_insert_with(GroCounters::default).add(&g);
        }
    };
    // Pollers first (each waits for its frames to come back from the workers), then the
    // workers, which drain what is left and stop.
    for h in handles {
        let (r, span, g) = h
            .join()
            .map_err(|_| anyhow::anyhow!("an RX poller thread panicked"))?;
        if let Some((f, l)) = span {
            first = Some(first.map_or(f, |x| x.min(f)));
            last_rx = Some(last_rx.map_or(l, |x| x.max(l)));
        }
        add_gro(g);
        reports.push(r);
    }
    worker_stop.store(true, Ordering::Release);
    let mut worker_counters = Vec::with_capacity(worker_handles.len());
    for h in worker_handles {
        let w = h
            .join()
            .map_err(|_| anyhow::anyhow!("an RPS worker thread panicked"))?;
        add_gro(w.gro);
        worker_counters.push(w);
    }
    let rps = map.as_ref().map(|_| {
        let mut steer = SteerCounters::default();
        for p in &steer_pub {
            steer.add(&p.read());
        }
        let taken: u64 = reports.iter().map(|r| r.counters.rx_packets).sum();
        let processed: u64 = worker_counters.iter().map(|w| w.softnet.processed).sum();
        RpsReport {
            workers: worker_counters.len(),
            hash: hasher.kind().name(),
            symmetric: hasher.is_symmetric(),
            rfs: sock_table.is_some(),
            max_backlog: backlog.max_backlog,
            flow_limit_table: backlog.flow_limit_table_len,
            adds_up: taken == steer.steered + steer.backlog_full + steer.flow_limit
                && processed == steer.steered,
            steer,
            softnet: worker_counters
                .iter()
                .enumerate()
                .map(|(i, w)| SoftnetRow {
                    worker: i,
                    cpu: worker_cpus[i],
                    softnet: w.softnet,
                })
                .collect(),
        }
    });
    // Classes counted by the workers join the queues' totals below.
    let worker_classes = worker_counters
        .iter()
        .fold(RxCounters::default(), |mut t, w| {
            t.add(&w.classes);
            t
        });
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

    let mut total = worker_classes;
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
        rps,
        gro: gro_total,
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
    if let Some(p) = &r.rps {
        print_rps(p, r.queues.iter().map(|q| q.counters.rx_packets).sum());
    }
    if let Some(g) = &r.gro {
        print_gro(g);
    }
    crate::common::print_pcap(&r.pcap_out, "received");
    if r.latency.probes > 0 || r.latency.bad_probes.total() > 0 {
        latency::print_terminal(&r.latency, &r.hists, "one way");
    }
}

fn print_rps(p: &RpsReport, taken: u64) {
    let s = &p.steer;
    println!(
        "  steering   rps over {} workers ({} hash{}{}), max_backlog {}, flow limit {}",
        p.workers,
        p.hash,
        if p.symmetric { ", symmetric" } else { "" },
        if p.rfs { ", rfs" } else { "" },
        p.max_backlog,
        match p.flow_limit_table {
            0 => "off".to_owned(),
            n => format!("{n} buckets"),
        }
    );
    println!(
        "             taken {} = steered {} + backlog full {} + flow limit {}{}",
        taken,
        s.steered,
        s.backlog_full,
        s.flow_limit,
        if p.adds_up {
            "  (adds up)"
        } else {
            "  (DOES NOT ADD UP)"
        }
    );
    if p.rfs {
        println!(
            "             rfs: steered {} by the flow table, {} by hash; {} moves, {} deferred until drained",
            s.rfs.steered_rfs, s.rfs.steered_rps, s.rfs.moves, s.rfs.moves_deferred
        );
    }
    println!("  softnet    worker  cpu    processed      dropped time_squeeze received_rps flow_limit_count");
    for w in &p.softnet {
        let c = &w.softnet;
        println!(
            "             {:>6} {:>4} {:>12} {:>12} {:>12} {:>12} {:>16}",
            w.worker,
            w.cpu.map_or("-".to_owned(), |c| c.to_string()),
            c.processed,
            c.dropped,
            c.time_squeeze,
            c.received_rps,
            c.flow_limit_count
        );
    }
}

fn print_gro(g: &GroCounters) {
    println!(
        "  gro        {} frames in -> {} packets out ({} merged, {} single), {} frames out",
        g.received,
        g.packets_out + g.singles_out,
        g.packets_out,
        g.singles_out,
        g.frames_out
    );
    let flushed = serde_json::to_value(g).unwrap_or_default();
    let line = |prefix: &str| {
        flushed
            .as_object()
            .map(|o| {
                o.iter()
                    .filter(|(k, v)| k.starts_with(prefix) && v.as_u64().unwrap_or(0) > 0)
                    .map(|(k, v)| format!("{} {}", &k[prefix.len()..], v))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };
    println!("             flushed: {}", line("flush_"));
    println!("             passed unmerged: {}", line("pass_"));
}
