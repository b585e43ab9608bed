//! `skiff ping`: probes at a fixed rate to a reflector (`skiff reflect`), round-trip
//! latency as histograms, from the actual and from the scheduled send times. With
//! `--kernel` the same schedule runs over a kernel UDP socket: the baseline the AF_XDP
//! path is compared with (`skiff bench latency`).

use std::{
    net::{IpAddr, SocketAddr, UdpSocket},
    sync::atomic::Ordering,
};

use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Serialize;
use skiff_engine::{
    latency::{
        collect::Collector,
        hist::LatencySummary,
        ping::{run_ping, KernelUdp, PingConfig, Transport, XskTransport},
        probe::PROBE_LEN,
        tracker::SeqTracker,
    },
    netdev,
    wire::{
        self,
        template::{TemplateKind, TemplateSpec},
        FCS_LEN,
    },
    xsk::BindMode,
};

use crate::{
    common::{fmt_rate, parse_count, parse_duration, parse_pps, pin, require_caps},
    datapath::{self, DataPathArgs},
    latency::{self, LatencyArgs, LatencyJson, LatencyOut},
};

#[derive(Debug, Args, Clone)]
pub struct PingArgs {
    #[command(flatten)]
    pub dp: DataPathArgs,
    /// The reflector's address (198.18.0.0/15 on a testbed).
    #[arg(long)]
    pub dst_ip: String,
    /// This side's address (default: the interface's IPv4 address).
    #[arg(long)]
    pub src_ip: Option<String>,
    /// The reflector's MAC (default: resolved by ARP for IPv4).
    #[arg(long)]
    pub dst_mac: Option<String>,
    /// This side's MAC (default: the interface's).
    #[arg(long)]
    pub src_mac: Option<String>,
    /// UDP source port: replies come back to it.
    #[arg(long, default_value_t = 9000)]
    pub sport: u16,
    /// UDP destination port: the reflector's (`skiff reflect` takes 9000-9099).
    #[arg(long, default_value_t = 9001)]
    pub dport: u16,
    /// Probes per second (e.g. 1000, 10k).
    #[arg(long, default_value = "1000")]
    pub rate: String,
    /// How long to send.
    #[arg(long, default_value = "5s")]
    pub duration: String,
    /// Probes in all (instead of rate × duration).
    #[arg(long)]
    pub count: Option<String>,
    /// Frame size including FCS (default: the smallest that carries a probe).
    #[arg(long)]
    pub size: Option<usize>,
    /// How long to wait for replies after the last probe is due.
    #[arg(long, default_value = "1s")]
    pub wait: String,
    /// Use a kernel UDP socket instead of AF_XDP (the baseline).
    #[arg(long)]
    pub kernel: bool,
    #[command(flatten)]
    pub lat: LatencyArgs,
}

#[derive(Debug, Serialize)]
pub struct PingTiming {
    /// The clock probes carry.
    pub clock: &'static str,
    /// Mean cost of one clock read, ns (self-measured).
    pub clock_read_ns: f64,
    /// From a batch's transmit stamp to its send call's return, ns.
    pub stamp_to_ring_ns: LatencySummary,
    /// Largest lag of an actual send behind its schedule, ns.
    pub max_send_lag_ns: u64,
}

#[derive(Debug, Serialize)]
pub struct PingReport {
    pub iface: String,
    /// "af_xdp" or "kernel_udp".
    pub transport: &'static str,
    pub dst: String,
    pub rate_pps: f64,
    pub frame_size: usize,
    pub sent: u64,
    /// Refused by the ring or socket: never sent, counted lost.
    pub refused: u64,
    pub elapsed_s: f64,
    #[serde(flatten)]
    pub latency: LatencyJson,
    pub timing: PingTiming,
    pub xdp_mode: Option<&'static str>,
    pub zero_copy: Option<bool>,
    #[serde(skip)]
    pub hists: latency::Hists,
}

fn parse_ip(s: &str, what: &str) -> Result<IpAddr> {
    s.parse()
        .with_context(|| format!("bad {what} {s:?}: an IPv4 or IPv6 address"))
}

/// The transport of a run and what the report says of it.
struct Path {
    t: Box<dyn Transport>,
    name: &'static str,
    xdp_mode: Option<&'static str>,
    zero_copy: Option<bool>,
    cpu: Option<usize>,
    /// The attached program (AF_XDP): detached when the run is over.
    _prog: Option<skiff_engine::xdp::XdpAttachment>,
}

pub fn run(a: PingArgs) -> Result<PingReport> {
    require_caps()?;
    let ifname = a.dp.iface.clone();
    if !netdev::exists(&ifname) {
        bail!("unknown interface {ifname:?} (not in this network namespace; `ip link` lists them)");
    }
    let dst_ip = parse_ip(&a.dst_ip, "--dst-ip")?;
    let src_ip = match &a.src_ip {
        Some(s) => parse_ip(s, "--src-ip")?,
        None => IpAddr::V4(
            netdev::ipv4_addr(&ifname)
                .map(|(ip, _)| ip.into())
                .with_context(|| format!("{ifname} has no IPv4 address; give --src-ip"))?,
        ),
    };
    if src_ip.is_ipv4() != dst_ip.is_ipv4() {
        bail!("--src-ip and --dst-ip must be of one family");
    }
    let rate = parse_pps(&a.rate).context("--rate")?;
    let duration = parse_duration(&a.duration).context("--duration")?;
    let count = match &a.count {
        Some(c) => parse_count(c).context("--count")?,
        None => ((rate * duration.as_secs_f64()).floor() as u64).max(1),
    };
    let wait = parse_duration(&a.wait).context("--wait")?;
    let kind = if dst_ip.is_ipv4() {
        TemplateKind::Udp4
    } else {
        TemplateKind::Udp6
    };
    let mut spec = TemplateSpec::new(kind, src_ip, dst_ip);
    spec.src_port = a.sport;
    spec.dst_port = a.dport;
    // Headers + probe + FCS.
    let min = spec
        .min_size()
        .max(spec.layout().payload + PROBE_LEN + FCS_LEN);
    let size = a.size.unwrap_or(min);
    if size < min {
        bail!("--size {size} cannot carry a probe: at least {min} bytes for this template");
    }
    let mut lat = LatencyOut::open(&a.lat, "skiff ping: round-trip latency")?;
    let stop = datapath::stop_for(&a.dp);
    let session = skiff_engine::latency::new_session();
    let cfg = PingConfig {
        rate_pps: rate,
        count,
        wait,
        session,
        stream: 0,
        interval: lat.interval,
    };
    let mut collector = Collector::new(lat.late_ns, SeqTracker::DEFAULT_WINDOW);
    let quiet = a.dp.quiet || a.dp.json;
    let mut last_sent = 0u64;
    let mut tick_err: Option<anyhow::Error> = None;
    let mut tick = |c: &mut Collector, t: f64, sent: u64| {
        if let Err(e) = lat.cut(c, t) {
            tick_err.get_or_insert(e);
        }
        if !quiet {
            eprintln!(
                "ping {:>5.1}s  sent {:>10}  ({})  back {:>10}{}",
                t,
                sent,
                fmt_rate(
                    (sent - last_sent) as f64 / lat.interval.as_secs_f64(),
                    "pps"
                ),
                c.probes(),
                latency::progress_part(&lat.last_interval)
            );
        }
        last_sent = sent;
    };
    // The transport, and (AF_XDP) the attached program, which must outlive the run.
    let mut path = if a.kernel {
        let sock = UdpSocket::bind(SocketAddr::new(src_ip, a.sport))
            .with_context(|| format!("binding a UDP socket to {src_ip}:{}", a.sport))?;
        sock.connect(SocketAddr::new(dst_ip, a.dport))
            .with_context(|| format!("connecting to {dst_ip}:{}", a.dport))?;
        let payload = size - spec.layout().payload - FCS_LEN;
        let t = KernelUdp::new(sock, payload).context("setting up the UDP socket")?;
        Path {
            t: Box::new(t),
            name: "kernel_udp",
            xdp_mode: None,
            zero_copy: None,
            cpu: a.dp.first_cpu()?,
            _prog: None,
        }
    } else {
        let src_mac = match &a.src_mac {
            Some(m) => wire::parse_mac(m).with_context(|| format!("bad --src-mac {m:?}"))?,
            None => netdev::mac(&ifname)
                .with_context(|| format!("cannot read {ifname}'s MAC; give --src-mac"))?,
        };
        let dst_mac = match (&a.dst_mac, src_ip, dst_ip) {
            (Some(m), _, _) => wire::parse_mac(m).with_context(|| format!("bad --dst-mac {m:?}"))?,
            (None, IpAddr::V4(s), IpAddr::V4(d)) => crate::gen::arp_resolve(&ifname, s, d)?,
            _ => bail!("give --dst-mac: skiff resolves it by ARP only for IPv4 (no neighbour discovery yet)"),
        };
        spec.src_mac = src_mac;
        spec.dst_mac = dst_mac;
        let template = spec.build(size).map_err(|e| anyhow::anyhow!("{e}"))?;
        let plan = a.dp.plan(false)?;
        if plan.queues.len() != 1 {
            bail!("skiff ping uses one queue (--queues N)");
        }
        let filter = skiff_ebpf::Config {
            flags: skiff_ebpf::flags::ENABLED,
            port_lo: a.sport,
            port_hi: a.sport,
            action: skiff_ebpf::Action::Redirect as u32,
            loss: 0,
        };
        let (prog, mut queues) = datapath::open(&plan, &a.dp, filter)?;
        let q = queues.pop().context("no queue opened")?;
        let mode = prog.mode().name();
        let zc = q.mode() == BindMode::ZeroCopy;
        let t = XskTransport::new(q, template).map_err(|e| anyhow::anyhow!(e))?;
        Path {
            t: Box::new(t),
            name: "af_xdp",
            xdp_mode: Some(mode),
            zero_copy: Some(zc),
            cpu: plan.cpus[0],
            _prog: Some(prog),
        }
    };
    datapath::signal_ready(&a.dp)?;
    pin(path.cpu);
    let result = run_ping(path.t.as_mut(), &cfg, &mut collector, &stop, &mut tick);
    if let Some(e) = tick_err {
        return Err(e);
    }
    let sent = result.sent;
    let (latency, hists) = lat.finish(
        &mut collector,
        result.elapsed_s,
        "round trip",
        // Every probe sent is expected back; refused ones were never sent.
        |s, id| (s == session && id == 0).then_some(sent),
    )?;
    if stop.load(Ordering::Relaxed) && !quiet {
        eprintln!("skiff ping: interrupted");
    }
    Ok(PingReport {
        iface: ifname,
        transport: path.name,
        dst: format!("{dst_ip}:{}", a.dport),
        rate_pps: rate,
        frame_size: size,
        sent,
        refused: result.refused,
        elapsed_s: result.elapsed_s,
        latency,
        timing: PingTiming {
            clock: "CLOCK_MONOTONIC (vDSO)",
            clock_read_ns: result.clock_read_ns,
            stamp_to_ring_ns: LatencySummary::of(&result.stamp_to_ring),
            max_send_lag_ns: result.max_send_lag_ns,
        },
        xdp_mode: path.xdp_mode,
        zero_copy: path.zero_copy,
        hists,
    })
}

pub fn print_text(r: &PingReport) {
    println!(
        "skiff ping {} -> {} over {}{}: {} probes of {} bytes at {} in {:.3} s",
        r.iface,
        r.dst,
        r.transport,
        match (r.xdp_mode, r.zero_copy) {
            (Some(m), Some(z)) => format!(
                " (XDP {m} mode, {})",
                if z { "zero-copy" } else { "copy mode" }
            ),
            _ => String::new(),
        },
        r.sent,
        r.frame_size,
        fmt_rate(r.rate_pps, "pps"),
        r.elapsed_s
    );
    latency::print_terminal(&r.latency, &r.hists, "round trip");
    println!(
        "  timing     clock read {:.1} ns, stamp to ring p50 {} max {}, send lag max {}",
        r.timing.clock_read_ns,
        crate::plot::fmt_latency(r.timing.stamp_to_ring_ns.p50 as f64, " "),
        crate::plot::fmt_latency(r.timing.stamp_to_ring_ns.max as f64, " "),
        crate::plot::fmt_latency(r.timing.max_send_lag_ns as f64, " ")
    );
}
