//! `skiff gen`: streams of frames from AF_XDP sockets, each frame built in place in the
//! UMEM from a template (with field variation and a size distribution) or replayed from a
//! capture, through a qdisc that sets the rate, onto one or several queues.

use std::{
    net::{IpAddr, Ipv4Addr, UdpSocket},
    path::PathBuf,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};
use clap::Args;
use hdrhistogram::Histogram;
use serde::Serialize;
use skiff_engine::{
    gen::{
        rate::{Layer, Rate},
        replay::ReplaySource,
        size::SizeSpec,
        source::FrameSource,
        split_exact,
        stream::{probe_wire_id, ProbeGen, QueueStream, StreamSource, PROBE_QUEUE_BITS},
        vary::AddrRange,
    },
    latency::probe::PROBE_LEN,
    netdev,
    pcap::PcapSummary,
    stats::{Published, TxCounters},
    tx::{
        qdisc::{
            Qdisc, QdiscConfig, QdiscStats, DEFAULT_TXQUEUELEN, FQ_DEFAULT_FLOW_LIMIT,
            FQ_DEFAULT_LIMIT, FQ_DEFAULT_QUANTUM,
        },
        run_tx,
        xmit::{run_xmit, XmitConfig, XmitResult, GAP_MAX_NS},
        TxConfig,
    },
    wire::{self, template::TemplateKind, FCS_LEN, L1_OVERHEAD},
    xsk::{BindMode, FrameAccounting, XdpStatistics},
};

use crate::{
    common::{bitrates, fmt_rate, pin, require_caps},
    datapath::{self, DataPathArgs},
    profile::Profile,
    stream::{Context, Kind, StreamDef, StreamPlan},
};

#[derive(Debug, Args, Clone)]
pub struct GenArgs {
    #[command(flatten)]
    pub dp: DataPathArgs,
    /// The single stream the flags describe (or none with --profile).
    #[command(flatten)]
    pub stream: StreamDef,
    /// Several streams from a TOML file (see docs/PROFILES.md); the stream flags above then must not be given.
    #[arg(long, help_heading = "Stream")]
    pub profile: Option<PathBuf>,
    /// What a bit rate counts: l1 (frame + FCS + 20 bytes of preamble, SFD and gap: the line) or l2 (frame + FCS).
    #[arg(long, default_value = "l1", help_heading = "Amount and rate")]
    pub rate_layer: String,
    /// Queueing discipline in front of each TX ring: pfifo | prio | tbf | fq. Default: tbf with --rate, fq for
    /// profiles with per-stream rates and for original-timing replay, else pfifo.
    #[arg(long, help_heading = "Amount and rate")]
    pub qdisc: Option<String>,
    /// Token bucket depth for tbf, as time at the rate (at least two of the largest frames): the
    /// credit a stalled sender may catch up. 50 ms absorbs the scheduling stalls of a busy
    /// machine (up to 40 ms measured on a shared 2-core VM) so the long-run rate holds;
    /// smaller values (e.g. 1ms) bound the catch-up burst instead.
    #[arg(long, default_value = "50ms", help_heading = "Amount and rate")]
    pub burst: String,
    /// Qdisc limit in packets (pfifo/prio/tbf: 1000 = txqueuelen; fq: 10000).
    #[arg(long, help_heading = "Amount and rate")]
    pub limit: Option<usize>,
    /// Frames dequeued per round and per TX batch (weight_p): one kick per batch at most.
    #[arg(long, default_value_t = 64, help_heading = "Amount and rate")]
    pub batch: u32,

    #[command(flatten)]
    pub capture: crate::common::PcapOutArgs,

    /// Destination MAC. Without it, found by ARP for the first --dst-ip (IPv4).
    #[arg(long)]
    pub dst_mac: Option<String>,
    /// Source MAC. Default: the interface's.
    #[arg(long)]
    pub src_mac: Option<String>,
    /// Carry latency probes (a 40-byte header at the start of the UDP payload: sequence,
    /// transmit and scheduled send times) for `skiff sink` or `skiff reflect` + the sender
    /// to measure latency, loss and reordering. UDP templates; frames too small for a probe
    /// are sent without one.
    #[arg(long, help_heading = "Latency")]
    pub latency: bool,
    /// With --latency: one frame in N carries a probe.
    #[arg(long, default_value_t = 1, help_heading = "Latency")]
    pub probe_every: u64,
    /// The data path's fixed-frame loop (no qdisc, no variation): the benchmark baseline.
    #[arg(long, hide = true)]
    pub fixed_frame: bool,
}

impl GenArgs {
    /// Stream flags given together with --profile.
    fn stream_flags_given(&self) -> Vec<String> {
        crate::stream::FIELDS
            .iter()
            .filter(|f| self.stream.given(f))
            .map(|f| format!("--{}", f.replace('_', "-")))
            .collect()
    }
}

/// Inter-departure gaps of a stream, ns.
#[derive(Debug, Serialize)]
pub struct GapReport {
    pub p50: u64,
    pub p99: u64,
    pub max: u64,
    pub min: u64,
    pub mean: f64,
    /// The gap a perfect pacer would keep on each queue: queues / requested pps.
    pub ideal: Option<f64>,
    /// The largest distance of any gap from the ideal one.
    pub max_deviation: Option<f64>,
    pub samples: u64,
}

impl GapReport {
    fn from_hist(h: &Histogram<u64>, ideal: Option<f64>) -> GapReport {
        let n = h.len();
        let (min, max) = if n > 0 { (h.min(), h.max()) } else { (0, 0) };
        GapReport {
            p50: if n > 0 { h.value_at_quantile(0.5) } else { 0 },
            p99: if n > 0 { h.value_at_quantile(0.99) } else { 0 },
            max,
            min,
            mean: if n > 0 { h.mean() } else { 0.0 },
            ideal,
            max_deviation: ideal
                .filter(|_| n > 0)
                .map(|i| (max as f64 - i).abs().max((min as f64 - i).abs())),
            samples: n,
        }
    }
}

/// One queue's share of a stream.
#[derive(Debug, Serialize)]
pub struct StreamQueueShare {
    pub queue: u32,
    pub tx_packets: u64,
    pub tx_bytes: u64,
}

/// One stream, over all queues.
#[derive(Debug, Serialize)]
pub struct StreamReport {
    pub name: String,
    pub describe: String,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Requested packets/s (a bit rate's for the stream's mean frame size).
    pub requested_pps: Option<f64>,
    /// The requested rate as given.
    pub requested_rate: Option<String>,
    /// (frames − 1) / (last departure − first departure): the sending rate itself.
    pub achieved_pps: f64,
    pub achieved_bps_l2: f64,
    pub achieved_bps_l1: f64,
    pub gap_ns: GapReport,
    pub qdisc_dropped: u64,
    pub unsent_at_stop: u64,
    pub queues: Vec<StreamQueueShare>,
}

/// One queue.
#[derive(Debug, Serialize)]
pub struct QueueReport {
    pub queue: u32,
    pub cpu: Option<usize>,
    #[serde(flatten)]
    pub counters: TxCounters,
    pub qdisc: QdiscStats,
    pub never_completed: u64,
    pub xdp_statistics: XdpStatistics,
    pub frames: FrameAccounting,
    pub elapsed_s: f64,
}

#[derive(Debug, Serialize)]
pub struct GenReport {
    pub iface: String,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub elapsed_s: f64,
    pub tx_pps: f64,
    pub tx_bps_l2: f64,
    pub tx_bps_l1: f64,
    pub requested_pps: Option<f64>,
    pub rate_layer: Layer,
    /// Mean frame size, FCS included.
    pub frame_size: f64,
    pub qdisc: String,
    pub qdisc_stats: QdiscStats,
    pub completed: u64,
    pub never_completed: u64,
    pub iface_tx_dropped: u64,
    pub tx_invalid_descs: u64,
    pub xdp_mode: &'static str,
    pub xdp_fallback_reason: Option<String>,
    pub zero_copy: bool,
    pub frames_accounted: bool,
    pub stopped_by: &'static str,
    pub streams: Vec<StreamReport>,
    pub queues: Vec<QueueReport>,
    pub pcap_out: Option<PcapSummary>,
    /// With --latency: what was sent and the timing overhead.
    pub probes: Option<GenProbes>,
    pub warnings: Vec<String>,
}

/// Latency probes the generator sent.
#[derive(Debug, Serialize)]
pub struct GenProbes {
    /// Probes sent, all streams and queues.
    pub sent: u64,
    /// This run's session id (receivers keep runs apart by it).
    pub session: u32,
    /// One frame in N carries one.
    pub every: u64,
    /// Per batch with probes: from the transmit stamp to the send call's return, ns.
    pub stamp_to_ring_ns: skiff_engine::latency::hist::LatencySummary,
    /// Mean cost of one CLOCK_MONOTONIC read, ns (self-measured).
    pub clock_read_ns: f64,
}

/// Resolves `dst` on the interface with the kernel's ARP: one UDP datagram to the discard
/// port starts resolution, then the neighbour table is read, for up to a second.
pub(crate) fn arp_resolve(ifname: &str, src: Ipv4Addr, dst: Ipv4Addr) -> Result<[u8; 6]> {
    let sock = UdpSocket::bind((src, 0))
        .with_context(|| format!("binding a UDP socket to {src} for ARP"))?;
    let deadline = Instant::now() + Duration::from_secs(1);
    let mut next_send = Instant::now();
    while Instant::now() < deadline {
        if Instant::now() >= next_send {
            // Port 9 is discard (RFC 863): nothing answers it with data.
            let _ = sock.send_to(&[0], (dst, 9));
            next_send = Instant::now() + Duration::from_millis(300);
        }
        if let Ok(table) = std::fs::read_to_string("/proc/net/arp") {
            for line in table.lines().skip(1) {
                let f: Vec<&str> = line.split_whitespace().collect();
                // IP address, HW type, Flags (0x2 = complete), HW address, Mask, Device
                if f.len() >= 6 && f[0] == dst.to_string() && f[5] == ifname && f[2] == "0x2" {
                    if let Some(mac) = wire::parse_mac(f[3]) {
                        return Ok(mac);
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    bail!("no ARP reply from {dst} on {ifname} within 1 s; give --dst-mac")
}

/// `r` scaled by `k` (a queue's share of a stream's rate).
fn scale_rate(r: Rate, k: f64) -> Rate {
    match r {
        Rate::Pps(p) => Rate::Pps(p * k),
        Rate::Bits { bps, layer } => Rate::Bits {
            bps: bps * k,
            layer,
        },
    }
}

/// ⌊pps · d⌋, exactly for a whole-number rate (integer nanoseconds), else in floating
/// point with a nudge of 1e-9 so 100 pps × 0.29 s is 29, not 28.999... → 28.
fn frames_in(pps: f64, d: Duration) -> u64 {
    if pps.fract() == 0.0 && pps < 1e15 {
        ((pps as u128 * d.as_nanos()) / 1_000_000_000) as u64
    } else {
        (pps * d.as_secs_f64() + 1e-9).floor() as u64
    }
}

/// Chooses the qdisc of one queue. `shares[i]`: the part of stream i's rate this queue
/// carries (its part of the count when there is one, so the queue with one frame more than
/// another also gets the time for it).
fn qdisc_for(
    kind: &str,
    plans: &[StreamPlan],
    shares: &[f64],
    burst: Duration,
    limit: Option<usize>,
) -> Result<QdiscConfig> {
    let rated: Vec<(usize, Rate)> = plans
        .iter()
        .enumerate()
        .filter_map(|(i, p)| p.rate.map(|r| (i, scale_rate(r, shares[i]))))
        .collect();
    let edt = plans.iter().any(StreamPlan::has_departure_times);
    // The bucket must hold at least two of the largest frames, or a slow rate could never
    // send one (the kernel's tbf refuses a burst below the MTU for the same reason).
    let max_len = plans.iter().map(|p| p.max_len).max().unwrap_or(0);
    let burst_ps = |r: &Rate| (burst.as_nanos() as u64 * 1000).max(2 * r.cost_ps(max_len));
    Ok(match kind {
        "pfifo" | "prio" if !rated.is_empty() => bail!(
            "--qdisc {kind} is work-conserving and cannot enforce a rate: use tbf or fq (or no --qdisc)"
        ),
        "pfifo" | "prio" | "tbf" if edt => bail!(
            "--qdisc {kind} does not honour departure times: original-timing replay needs fq (the default for it)"
        ),
        "pfifo" => QdiscConfig::Pfifo { limit: limit.unwrap_or(DEFAULT_TXQUEUELEN) },
        "prio" => QdiscConfig::Prio { limit: limit.unwrap_or(DEFAULT_TXQUEUELEN) },
        "tbf" => {
            if plans.len() > 1 {
                bail!("--qdisc tbf shapes one stream; several streams with their own rates need fq (the default)");
            }
            let Some(&(_, rate)) = rated.first() else {
                bail!("--qdisc tbf needs --rate");
            };
            QdiscConfig::Tbf { rate, burst_ps: burst_ps(&rate), limit: limit.unwrap_or(DEFAULT_TXQUEUELEN) }
        }
        "fq" => {
            let (maxrate, flow_rates) = if plans.len() == 1 {
                (rated.first().map(|&(_, r)| r), Vec::new())
            } else {
                (None, rated.iter().map(|&(i, r)| (i as u32, r)).collect())
            };
            QdiscConfig::Fq {
                quantum: FQ_DEFAULT_QUANTUM,
                flow_limit: FQ_DEFAULT_FLOW_LIMIT,
                limit: limit.unwrap_or(FQ_DEFAULT_LIMIT),
                maxrate,
                flow_rates,
            }
        }
        other => bail!("unknown --qdisc {other:?}: pfifo, prio, tbf or fq"),
    })
}

/// Frames one stream may hold in a queue's qdisc: one batch, but never so many that the
/// streams together reach the qdisc's limit (or fq's per-flow limit), where it would drop.
fn backlog_for(cfg: &QdiscConfig, streams: usize, batch: usize) -> usize {
    let (limit, per_flow) = match cfg {
        // prio's limit is per band, and all streams may share one band.
        QdiscConfig::Pfifo { limit }
        | QdiscConfig::Prio { limit }
        | QdiscConfig::Tbf { limit, .. } => (*limit, usize::MAX),
        QdiscConfig::Fq {
            limit, flow_limit, ..
        } => (*limit, *flow_limit),
    };
    batch.min(limit / streams.max(1)).min(per_flow).max(1)
}

/// The default qdisc: tbf for one rated stream, fq for several or for departure times.
fn default_qdisc(plans: &[StreamPlan]) -> &'static str {
    let rated = plans.iter().filter(|p| p.rate.is_some()).count();
    let edt = plans.iter().any(StreamPlan::has_departure_times);
    if edt || (rated > 0 && plans.len() > 1) {
        "fq"
    } else if rated == 1 {
        "tbf"
    } else {
        "pfifo"
    }
}

pub fn run(a: GenArgs) -> Result<GenReport> {
    require_caps()?;
    let plan = a.dp.plan(false)?;
    let ifname = plan.ifname.clone();
    let n = plan.queues.len();

    let profile = match &a.profile {
        Some(p) => {
            let given = a.stream_flags_given();
            if !given.is_empty() {
                bail!(
                    "--profile describes the streams; {} cannot be given with it",
                    given.join(", ")
                );
            }
            Some(Profile::load(p)?)
        }
        None => None,
    };
    let layer_s = profile
        .as_ref()
        .and_then(|p| p.rate_layer.clone())
        .unwrap_or_else(|| a.rate_layer.clone());
    let layer = match layer_s.to_ascii_lowercase().as_str() {
        "l1" => Layer::L1,
        "l2" => Layer::L2,
        o => bail!("bad rate layer {o:?}: l1 or l2"),
    };
    let burst = crate::common::parse_duration(&a.burst).context("--burst")?;
    if a.batch == 0 || a.batch > plan.xsk.tx_size {
        bail!("bad --batch {}: 1..={}", a.batch, plan.xsk.tx_size);
    }
    let defs: Vec<StreamDef> = match &profile {
        Some(p) => p.streams.clone(),
        None => vec![a.stream.clone()],
    };

    // Addresses every stream shares.
    let src_mac_s = a
        .src_mac
        .clone()
        .or(profile.as_ref().and_then(|p| p.src_mac.clone()));
    let src_mac = match &src_mac_s {
        Some(m) => wire::parse_mac(m)
            .with_context(|| format!("bad --src-mac {m:?} (use aa:bb:cc:dd:ee:ff)"))?,
        None => netdev::mac(&ifname)
            .with_context(|| format!("cannot read {ifname}'s MAC; give --src-mac"))?,
    };
    let iface_ipv4 = netdev::ipv4_addr(&ifname).map(|(ip, _)| ip);
    let dst_mac_s = a
        .dst_mac
        .clone()
        .or(profile.as_ref().and_then(|p| p.dst_mac.clone()));
    let needs_mac = defs
        .iter()
        .any(|d| d.pcap_in.is_none() || d.rewrite.is_some());
    let dst_mac = match &dst_mac_s {
        Some(m) => wire::parse_mac(m)
            .with_context(|| format!("bad --dst-mac {m:?} (use aa:bb:cc:dd:ee:ff)"))?,
        None if !needs_mac => [0; 6],
        None => {
            let mut first_v4 = None;
            for (i, d) in defs.iter().enumerate() {
                let Some(s) = d.dst_ip.as_deref() else {
                    continue;
                };
                let r = AddrRange::parse(s).map_err(|e| match &profile {
                    Some(prof) => anyhow::anyhow!("{}", prof.field_error(i, "dst_ip", &e)),
                    None => anyhow::anyhow!("bad --dst-ip: {e}"),
                })?;
                if let (None, IpAddr::V4(v4)) = (first_v4, r.first()) {
                    first_v4 = Some(v4);
                }
            }
            let (Some(dst), Some(src)) = (first_v4, iface_ipv4) else {
                bail!("give --dst-mac: skiff resolves it by ARP only for an IPv4 --dst-ip on an interface with an IPv4 address (no neighbour discovery for IPv6 yet)");
            };
            arp_resolve(&ifname, Ipv4Addr::from(src), dst)?
        }
    };
    let mtu = netdev::mtu(&ifname).unwrap_or(1500) as usize;
    let ctx = Context {
        src_mac,
        dst_mac,
        iface_ipv4,
        layer,
        max_size: mtu + wire::ETH_HLEN + FCS_LEN,
        // The UMEM frame minus the 256-byte XDP headroom (XDP_PACKET_HEADROOM) that
        // xsk-rs reserves in front of every frame by default.
        umem_room: plan.xsk.frame_size as usize - 256,
        mtu,
    };
    let mut plans = Vec::with_capacity(defs.len());
    for (i, d) in defs.iter().enumerate() {
        let p = d.resolve(i, &ctx).map_err(|e| match &profile {
            Some(prof) => anyhow::anyhow!("{}", prof.field_error(i, e.field, &e.msg)),
            None => anyhow::anyhow!(
                "{}--{}: {}",
                if d.given(e.field) { "bad " } else { "" },
                e.field.replace('_', "-"),
                e.msg
            ),
        })?;
        plans.push(p);
    }
    let qdisc_kind = a
        .qdisc
        .clone()
        .or(profile.as_ref().and_then(|p| p.qdisc.clone()))
        .unwrap_or_else(|| default_qdisc(&plans).to_owned());
    // Checked once here (errors before anything opens); built per queue below.
    qdisc_for(
        &qdisc_kind,
        &plans,
        &vec![1.0 / n as f64; plans.len()],
        burst,
        a.limit,
    )?;
    // No rate may exceed what the link carries (at L1); a veth reports no speed, and
    // `Rate::parse` already refused anything above any link's.
    if let Some(speed) = netdev::speed_mbps(&ifname) {
        for p in &plans {
            let Some(pps) = p.requested_pps() else {
                continue;
            };
            let l1 = pps * (p.mean_len + (FCS_LEN + L1_OVERHEAD) as f64) * 8.0;
            // 0.01% tolerance for rounding in the unit conversions.
            if l1 > speed as f64 * 1e6 * 1.0001 {
                bail!(
                    "stream {}: the rate is above what {ifname} can carry: {} at L1 > its {speed} Mbit/s",
                    p.name,
                    fmt_rate(l1, "bit/s")
                );
            }
        }
    }

    // Counts: a rate and a duration without a count mean exactly ⌊pps · duration⌋ frames
    // when the packet rate is exact (packets/s, or a bit rate with one frame size); the
    // duration then only bounds a run the machine cannot keep up with (plus 100 ms grace).
    let mut warnings = Vec::new();
    for p in &mut plans {
        if let (None, Some(d), Some(_)) = (p.count, p.duration, p.rate) {
            let exact = matches!(p.rate, Some(Rate::Pps(_)))
                || matches!(
                    p.kind,
                    Kind::Synth {
                        sizes: SizeSpec::Fixed(_),
                        ..
                    }
                );
            if exact {
                let pps = p.requested_pps().unwrap_or(0.0);
                p.count = Some(frames_in(pps, d).max(1));
                // Grace: two default bursts' worth for a late catch-up to finish.
                p.duration = Some(d + Duration::from_millis(100));
                p.count_from_rate = true;
            }
        }
        if let Some(c) = p.count {
            if (c as usize) < n && !matches!(p.kind, Kind::Replay { .. }) {
                if p.count_from_rate {
                    bail!(
                        "stream {}: rate × duration gives {c} frame(s), fewer than the {n} queues it is split over",
                        p.name
                    );
                }
                bail!(
                    "stream {}: --count {c} is smaller than the {n} queues it is split over",
                    p.name
                );
            }
        }
        if let Kind::Replay {
            skipped_oversize,
            snap_cut,
            ..
        } = &p.kind
        {
            if *skipped_oversize > 0 {
                warnings.push(format!(
                    "stream {}: {skipped_oversize} frames of the capture are skipped: larger than {ifname}'s MTU ({mtu}) or a UMEM frame allows, or shorter than an Ethernet header",
                    p.name
                ));
            }
            if *snap_cut > 0 {
                warnings.push(format!(
                    "stream {}: {snap_cut} frames of the capture were cut by its snap length and are replayed as captured (shorter than on the wire)",
                    p.name
                ));
            }
        }
    }

    if a.latency {
        if a.probe_every == 0 {
            bail!("--probe-every must be at least 1");
        }
        if plans.len() > 1 << (16 - PROBE_QUEUE_BITS) {
            bail!(
                "--latency: at most {} streams carry probes",
                1 << (16 - PROBE_QUEUE_BITS)
            );
        }
        for p in &plans {
            if let Kind::Synth { spec, sizes, .. } = &p.kind {
                if !matches!(spec.kind, TemplateKind::Udp4 | TemplateKind::Udp6) {
                    bail!(
                        "stream {}: --latency needs a UDP template (udp4 or udp6), not {}",
                        p.name,
                        spec.kind
                    );
                }
                let need = spec.layout().payload + PROBE_LEN + FCS_LEN;
                let top = sizes.distinct().last().copied().unwrap_or(0);
                if top < need {
                    bail!("stream {}: --latency needs frames of at least {need} bytes to carry a {PROBE_LEN}-byte probe (give --size {need} or more)", p.name);
                }
                if sizes.distinct().first().is_some_and(|&s| s < need) {
                    warnings.push(format!(
                        "stream {}: frames under {need} bytes are sent without a probe",
                        p.name
                    ));
                }
            }
        }
    }
    let session = skiff_engine::latency::new_session();
    let lead = qdisc_kind == "tbf";
    let shaped = matches!(qdisc_kind.as_str(), "tbf" | "fq");

    // Sources per queue, built before the data path opens (errors surface first).
    let mut per_queue: Vec<Vec<QueueStream>> = (0..n).map(|_| Vec::new()).collect();
    for (si, p) in plans.iter().enumerate() {
        let counts = p.count.map(|c| split_exact(c, n));
        for (qi, qs) in per_queue.iter_mut().enumerate() {
            let source = match &p.kind {
                Kind::Synth {
                    spec,
                    var,
                    sizes,
                    seed,
                } => {
                    // Each queue its own seed, so random variation differs across queues.
                    // 0x9e3779b9 = 2^32/φ, the golden-ratio increment: queue seeds far apart.
                    let fs = FrameSource::new(
                        spec,
                        var,
                        sizes,
                        seed.wrapping_add(qi as u64 * 0x9e37_79b9),
                    )
                    .map_err(|e| anyhow::anyhow!("stream {}: {e}", p.name))?;
                    if qi == 0 && fs.raised_sizes() > 0 {
                        warnings.push(format!(
                            "stream {}: {} size(s) below the template's smallest frame ({} bytes) are sent at that size",
                            p.name,
                            fs.raised_sizes(),
                            spec.min_size()
                        ));
                    }
                    StreamSource::Synth(Box::new(fs))
                }
                Kind::Replay {
                    frames,
                    timing,
                    loops,
                    ..
                } => {
                    StreamSource::Replay(ReplaySource::new(frames.clone(), qi, n, *loops, *timing))
                }
            };
            let count = counts.as_ref().map(|c| c[qi]);
            // The queue's part of the stream's rate, as the qdisc gets it (see below).
            let share = match (count, p.count) {
                (Some(q), Some(c)) if c > 0 && !matches!(p.kind, Kind::Replay { .. }) => {
                    q as f64 / c as f64
                }
                _ => 1.0 / n as f64,
            };
            let probe = match (a.latency, probe_wire_id(si, qi)) {
                (false, _) => None,
                (true, None) => bail!(
                    "--latency: stream {si} on queue {qi} has no probe id (at most 64 queues)"
                ),
                (true, Some(id)) => Some(ProbeGen::new(
                    id,
                    session,
                    a.probe_every,
                    p.rate.filter(|_| shaped).map(|r| scale_rate(r, share)),
                    lead,
                )),
            };
            qs.push(QueueStream {
                source,
                priority: p.priority,
                count,
                deadline: None,
                probe,
            });
        }
    }

    let tap = a.capture.open()?;

    // Data path: the program redirects frames to our source ports (replies) to our sockets.
    let (port_lo, port_hi) = match plans.first().map(|p| &p.kind) {
        Some(Kind::Synth { spec, var, .. }) => var
            .src_port
            .map_or((spec.src_port, spec.src_port), |r| (r.lo, r.hi)),
        _ => (0, 0),
    };
    let filter = skiff_ebpf::Config {
        flags: if port_hi > 0 {
            skiff_ebpf::flags::ENABLED
        } else {
            0
        },
        port_lo,
        port_hi,
        action: skiff_ebpf::Action::Redirect as u32,
        loss: 0,
    };
    let (prog, queues) = datapath::open(&plan, &a.dp, filter)?;
    let xdp_mode = prog.mode();
    let fallback = prog.fallback_reason().map(str::to_owned);
    let zero_copy = queues.iter().all(|q| q.mode() == BindMode::ZeroCopy);

    let stop = datapath::stop_for(&a.dp);
    let tx_dropped_before = netdev::stat(&ifname, "tx_dropped");
    datapath::signal_ready(&a.dp)?;
    let start = Instant::now();
    for qs in &mut per_queue {
        for (s, p) in qs.iter_mut().zip(&plans) {
            s.deadline = p.duration.map(|d| start + d);
        }
    }
    let bounded = plans.iter().all(|p| {
        p.count.is_some()
            || p.duration.is_some()
            || matches!(&p.kind, Kind::Replay { loops: Some(_), .. })
    });
    // The whole run ends at the last stream's deadline, if every stream has one.
    let deadline = plans
        .iter()
        .map(|p| p.duration)
        .collect::<Option<Vec<_>>>()
        .and_then(|v| v.into_iter().max())
        .map(|d| start + d);
    if !a.dp.quiet && !a.dp.json {
        for w in &warnings {
            eprintln!("skiff gen: warning: {w}");
        }
    }

    // --fixed-frame: the data path's loop sends the stream's first frame, copied as fast
    // as the ring takes it (the benchmark's baseline for what templates, variation and the
    // qdisc cost).
    let fixed_frame: Option<Arc<Vec<u8>>> = if a.fixed_frame {
        let synth = match per_queue.first_mut().and_then(|q| q.first_mut()) {
            Some(QueueStream {
                source: StreamSource::Synth(s),
                ..
            }) if plans.len() == 1 && plans[0].rate.is_none() && tap.is_none() => s,
            _ => bail!("--fixed-frame sends one template stream, without --rate or --pcap-out"),
        };
        let mut frame = vec![0u8; synth.max_frame_len()];
        let len = synth.next_into(&mut frame);
        frame.truncate(len);
        Some(Arc::new(frame))
    } else {
        None
    };

    let published: Vec<_> = (0..n).map(|_| Published::<TxCounters>::new()).collect();
    let progress: Vec<Arc<Vec<AtomicU64>>> = (0..n)
        .map(|_| Arc::new(plans.iter().map(|_| AtomicU64::new(0)).collect()))
        .collect();
    let mut handles = Vec::with_capacity(n);
    for (i, (mut q, mut streams)) in queues.into_iter().zip(per_queue).enumerate() {
        // Each queue's part of a stream's rate is its part of the count (or an even split).
        let shares: Vec<f64> = streams
            .iter()
            .zip(&plans)
            .map(|(s, p)| match (s.count, p.count) {
                (Some(q), Some(c)) if c > 0 && !matches!(p.kind, Kind::Replay { .. }) => {
                    q as f64 / c as f64
                }
                _ => 1.0 / n as f64,
            })
            .collect();
        let qcfg = qdisc_for(&qdisc_kind, &plans, &shares, burst, a.limit)?;
        let cfg = XmitConfig {
            quota: a.batch as usize,
            backlog_per_stream: backlog_for(&qcfg, plans.len(), a.batch as usize),
            deadline: deadline.map(|d| d.max(start)),
            fill_target: plan.xsk.tx_only_fill,
            reclaim_max: plan.xsk.comp_size,
            origin: Some(start),
            ..XmitConfig::default()
        };
        let mut qdisc = Qdisc::new(&qcfg);
        let cpu = plan.cpus[i];
        let stop = stop.clone();
        let publ = published[i].clone();
        let prog_i = progress[i].clone();
        let tap = tap.clone();
        let fixed_frame = fixed_frame.clone();
        handles.push(
            std::thread::Builder::new()
                .name(format!("skiff-tx{}", q.queue_id()))
                .spawn(move || {
                    let pinned = pin(cpu);
                    let r = match fixed_frame {
                        Some(frame) => {
                            let fixed = TxConfig {
                                batch: cfg.quota as u32,
                                count: streams.first().and_then(|s| s.count),
                                deadline: cfg.deadline,
                                fill_target: cfg.fill_target,
                                reclaim_max: cfg.reclaim_max,
                                ..TxConfig::default()
                            };
                            let (counters, produced) = run_tx(&mut q, &frame, &fixed, &stop, &publ);
                            XmitResult {
                                counters,
                                streams: Vec::new(),
                                qdisc: QdiscStats::default(),
                                produced,
                                stamp_to_ring: skiff_engine::latency::hist::new_hist(),
                            }
                        }
                        None => run_xmit(
                            &mut q,
                            &mut streams,
                            &mut qdisc,
                            &cfg,
                            tap.as_ref(),
                            &stop,
                            &publ,
                            &prog_i,
                        ),
                    };
                    let stats = q.statistics();
                    let report = QueueReport {
                        queue: q.queue_id(),
                        cpu: cpu.filter(|_| pinned),
                        counters: r.counters,
                        qdisc: r.qdisc,
                        never_completed: q.tx_outstanding(),
                        xdp_statistics: stats,
                        frames: q.accounting(),
                        elapsed_s: r.produced.as_secs_f64(),
                    };
                    (report, r.streams, r.stamp_to_ring)
                })
                .context("spawning a TX poller thread")?,
        );
    }

    let mut last = TxCounters::default();
    let mut last_streams = vec![0u64; plans.len()];
    let quiet = a.dp.quiet;
    datapath::progress_loop(
        start,
        Duration::from_secs(1),
        || handles.iter().all(|h| h.is_finished()),
        |t| {
            let mut sum = TxCounters::default();
            for p in &published {
                sum.add(&p.read());
            }
            if !quiet {
                let pkts = sum.tx_packets - last.tx_packets;
                let (l2, l1) = bitrates(pkts, sum.tx_bytes - last.tx_bytes, 1.0);
                let mut line = format!(
                    "gen  {:>4.0}s  tx {:>12}  {:>14} L2  {:>14} L1  completed {:>10}  ring_full {}",
                    t.as_secs_f64(),
                    fmt_rate(pkts as f64, "pps"),
                    fmt_rate(l2, "bit/s"),
                    fmt_rate(l1, "bit/s"),
                    sum.completed,
                    sum.tx_ring_full
                );
                if plans.len() > 1 {
                    for (si, p) in plans.iter().enumerate() {
                        let now: u64 = progress.iter().map(|v| v[si].load(Ordering::Relaxed)).sum();
                        line.push_str(&format!(
                            "  {} {}",
                            p.name,
                            fmt_rate((now - last_streams[si]) as f64, "pps")
                        ));
                        last_streams[si] = now;
                    }
                }
                eprintln!("{line}");
            }
            last = sum;
        },
    );
    let mut queue_reports = Vec::with_capacity(n);
    let mut stream_parts = Vec::with_capacity(n);
    let mut stamp_to_ring = skiff_engine::latency::hist::new_hist();
    for h in handles {
        let (qr, st, stamps) = h
            .join()
            .map_err(|_| anyhow::anyhow!("a TX poller thread panicked"))?;
        queue_reports.push(qr);
        stream_parts.push(st);
        let _ = stamp_to_ring.add(&stamps);
    }
    let probes = a.latency.then(|| GenProbes {
        sent: stream_parts.iter().flatten().map(|s| s.probes).sum(),
        session,
        every: a.probe_every,
        stamp_to_ring_ns: skiff_engine::latency::hist::LatencySummary::of(&stamp_to_ring),
        clock_read_ns: skiff_engine::latency::ping::clock_read_cost(),
    });
    let stopped_by = if stop.load(Ordering::Relaxed) {
        "signal"
    } else if bounded {
        "limit"
    } else {
        "signal"
    };
    let iface_tx_dropped = netdev::stat(&ifname, "tx_dropped").saturating_sub(tx_dropped_before);
    drop(prog); // detach before reporting
    let pcap_out = tap.map(|t| t.finish()).transpose()?;

    // Streams over all queues (the fixed-frame loop keeps no per-stream counters).
    let mut streams = Vec::with_capacity(plans.len());
    for (si, p) in plans.iter().enumerate().filter(|_| fixed_frame.is_none()) {
        let mut gaps = Histogram::<u64>::new_with_bounds(1, GAP_MAX_NS, 3)?;
        let (mut pk, mut by, mut dropped, mut unsent) = (0, 0, 0, 0);
        let mut span: Option<(u64, u64)> = None;
        let mut shares = Vec::with_capacity(n);
        for (qr, parts) in queue_reports.iter().zip(&stream_parts) {
            let s = &parts[si];
            let _ = gaps.add(&s.gaps);
            pk += s.tx_packets;
            by += s.tx_bytes;
            dropped += s.qdisc_dropped;
            unsent += s.unsent_at_stop;
            if let Some((f, l)) = s.first_last_ns {
                span = Some(span.map_or((f, l), |(a, b)| (a.min(f), b.max(l))));
            }
            shares.push(StreamQueueShare {
                queue: qr.queue,
                tx_packets: s.tx_packets,
                tx_bytes: s.tx_bytes,
            });
        }
        let secs = span.map_or(0.0, |(f, l)| (l - f) as f64 / 1e9);
        let achieved = if secs > 0.0 {
            (pk.saturating_sub(1)) as f64 / secs
        } else {
            0.0
        };
        let (l2, l1) = bitrates(
            pk.saturating_sub(1),
            by.saturating_sub(by / pk.max(1)),
            secs,
        );
        let req = p.requested_pps();
        streams.push(StreamReport {
            name: p.name.clone(),
            describe: p.describe.clone(),
            tx_packets: pk,
            tx_bytes: by,
            requested_pps: req,
            requested_rate: p.rate.map(|r| r.to_string()),
            achieved_pps: achieved,
            achieved_bps_l2: l2,
            achieved_bps_l1: l1,
            gap_ns: GapReport::from_hist(&gaps, req.map(|r| n as f64 * 1e9 / r)),
            qdisc_dropped: dropped,
            unsent_at_stop: unsent,
            queues: shares,
        });
    }
    for r in queue_reports.iter().filter(|r| r.qdisc.behind_ns > 0) {
        // tbf loses what its bucket cannot hold; fq what lies beyond its pacing horizon.
        let (cover, hint) = if qdisc_kind == "fq" {
            (
                "fq's pacing horizon".to_string(),
                "summed over its paced streams",
            )
        } else {
            (
                format!("--burst {}", a.burst),
                "the run took that much longer; a larger --burst absorbs longer stalls",
            )
        };
        warnings.push(format!(
            "queue {}: the sender stalled longer than {cover} covers and fell {:.1} ms behind the rate's schedule for good ({hint})",
            r.queue,
            r.qdisc.behind_ns as f64 / 1e6
        ));
    }
    let mut total = TxCounters::default();
    let mut qstats = QdiscStats::default();
    for r in &queue_reports {
        total.add(&r.counters);
        qstats.add(&r.qdisc);
    }
    let elapsed = queue_reports
        .iter()
        .map(|r| r.elapsed_s)
        .fold(0.0, f64::max);
    let pps = if elapsed > 0.0 {
        total.tx_packets as f64 / elapsed
    } else {
        0.0
    };
    let (l2, l1) = bitrates(total.tx_packets, total.tx_bytes, elapsed);
    let requested: Option<f64> = plans.iter().map(|p| p.requested_pps()).sum();
    Ok(GenReport {
        iface: ifname,
        tx_packets: total.tx_packets,
        tx_bytes: total.tx_bytes,
        elapsed_s: elapsed,
        tx_pps: pps,
        tx_bps_l2: l2,
        tx_bps_l1: l1,
        requested_pps: requested,
        rate_layer: layer,
        frame_size: if total.tx_packets > 0 {
            total.tx_bytes as f64 / total.tx_packets as f64 + FCS_LEN as f64
        } else {
            0.0
        },
        qdisc: if fixed_frame.is_some() {
            "none (fixed-frame loop)".into()
        } else {
            qdisc_kind
        },
        qdisc_stats: qstats,
        completed: total.completed,
        never_completed: queue_reports.iter().map(|r| r.never_completed).sum(),
        iface_tx_dropped,
        tx_invalid_descs: queue_reports
            .iter()
            .map(|r| r.xdp_statistics.tx_invalid_descs)
            .sum(),
        xdp_mode: xdp_mode.name(),
        xdp_fallback_reason: fallback,
        zero_copy,
        frames_accounted: queue_reports.iter().all(|r| r.frames.adds_up()),
        stopped_by,
        streams,
        queues: queue_reports,
        pcap_out,
        probes,
        warnings,
    })
}

pub fn print_text(r: &GenReport) {
    crate::common::print_header("gen", &r.iface, r.queues.len(), r.xdp_mode, r.zero_copy);
    for w in &r.warnings {
        println!("  warning: {w}");
    }
    println!(
        "  sent       {:>12} frames ({:.1} bytes mean) in {:.3} s: {}, {} L2, {} L1{}",
        r.tx_packets,
        r.frame_size,
        r.elapsed_s,
        fmt_rate(r.tx_pps, "pps"),
        fmt_rate(r.tx_bps_l2, "bit/s"),
        fmt_rate(r.tx_bps_l1, "bit/s"),
        r.requested_pps
            .map(|p| format!(" (requested {})", fmt_rate(p, "pps")))
            .unwrap_or_default()
    );
    for s in &r.streams {
        println!(
            "  stream {:<10} {:>12} frames  achieved {}{}  gap p50 {} p99 {} max {}{}",
            s.name,
            s.tx_packets,
            fmt_rate(s.achieved_pps, "pps"),
            s.requested_pps
                .map(|p| format!(
                    " of {} requested ({:+.3}%)",
                    fmt_rate(p, "pps"),
                    (s.achieved_pps / p - 1.0) * 100.0
                ))
                .unwrap_or_default(),
            crate::plot::fmt_latency(s.gap_ns.p50 as f64, " "),
            crate::plot::fmt_latency(s.gap_ns.p99 as f64, " "),
            crate::plot::fmt_latency(s.gap_ns.max as f64, " "),
            s.gap_ns
                .ideal
                .map(|i| format!(
                    " (ideal {}, max deviation {})",
                    crate::plot::fmt_latency(i, " "),
                    crate::plot::fmt_latency(s.gap_ns.max_deviation.unwrap_or(0.0), " ")
                ))
                .unwrap_or_default()
        );
        println!("         {:<10} {}", "", s.describe);
        if s.queues.len() > 1 {
            let shares: Vec<String> = s
                .queues
                .iter()
                .map(|q| format!("q{} {}", q.queue, q.tx_packets))
                .collect();
            println!("         {:<10} per queue: {}", "", shares.join(", "));
        }
        if s.qdisc_dropped > 0 || s.unsent_at_stop > 0 {
            println!(
                "         {:<10} dropped by the qdisc {}, still queued at stop {}",
                "", s.qdisc_dropped, s.unsent_at_stop
            );
        }
    }
    let q = &r.qdisc_stats;
    println!(
        "  qdisc {}: sent {} pkt {} bytes, dropped {}, overlimits {}, requeues {}, behind {:.3} ms, backlog {}p",
        r.qdisc,
        q.sent_packets,
        q.sent_bytes,
        q.dropped,
        q.overlimits,
        q.requeues,
        q.behind_ns as f64 / 1e6,
        q.backlog_packets
    );
    println!(
        "  completed  {:>12}   never completed {}   invalid descriptors {}",
        r.completed, r.never_completed, r.tx_invalid_descs
    );
    println!(
        "  dropped by {} after completion (device tx_dropped): {}",
        r.iface, r.iface_tx_dropped
    );
    for q in &r.queues {
        println!(
            "  queue {:>2}{}: sent {} completed {} kicks {} batches {} ring_full {} frames {}",
            q.queue,
            q.cpu.map(|c| format!(" (cpu {c})")).unwrap_or_default(),
            q.counters.tx_packets,
            q.counters.completed,
            q.counters.tx_kicks,
            q.counters.tx_batches,
            q.counters.tx_ring_full,
            crate::common::fmt_frames(&q.frames)
        );
    }
    crate::common::print_pcap(&r.pcap_out, "sent");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_in_is_the_exact_floor() {
        assert_eq!(frames_in(100.0, Duration::from_millis(290)), 29);
        assert_eq!(frames_in(100_000.0, Duration::from_secs(10)), 1_000_000);
        assert_eq!(frames_in(3.0, Duration::from_millis(999)), 2);
        assert_eq!(frames_in(1.5, Duration::from_secs(2)), 3);
        assert_eq!(frames_in(0.5, Duration::from_millis(1999)), 0);
    }
}
