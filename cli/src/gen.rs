//! `skiff gen`: UDP/IPv4 frames from AF_XDP sockets, as fast as possible or paced.

use std::{
    net::{Ipv4Addr, UdpSocket},
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Serialize;
use skiff_engine::{
    gen::{split_exact, split_rate, Pacer},
    netdev,
    stats::{Published, TxCounters},
    tx::{run_tx, TxConfig, TxQueueReport},
    wire::{self, UdpFrameSpec, FCS_LEN, MIN_FRAME_WITH_FCS},
    xsk::BindMode,
};

use crate::{
    common::{bitrates, fmt_rate, parse_count, parse_duration, parse_pps, pin, require_caps},
    datapath::{self, DataPathArgs},
};

#[derive(Debug, Args, Clone)]
pub struct GenArgs {
    #[command(flatten)]
    pub dp: DataPathArgs,
    /// Ethernet frame size in bytes including the 4-byte FCS (RFC 2544, pktgen): 64 sends
    /// 60 bytes to the socket.
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Stop after this many frames in total (e.g. 1000, 10k, 2M).
    #[arg(long)]
    pub count: Option<String>,
    /// Stop after this long (e.g. 10, 10s, 500ms). Without --count or --duration: until Ctrl-C.
    #[arg(long)]
    pub duration: Option<String>,
    /// Total rate in packets/s over all queues (e.g. 100k, 1.5Mpps). Default: as fast as possible.
    #[arg(long)]
    pub rate: Option<String>,
    /// Destination MAC. Without it, found by ARP for --dst-ip.
    #[arg(long)]
    pub dst_mac: Option<String>,
    /// Source MAC. Default: the interface's.
    #[arg(long)]
    pub src_mac: Option<String>,
    /// Source IPv4. Default: the interface's address.
    #[arg(long)]
    pub src_ip: Option<String>,
    /// Destination IPv4.
    #[arg(long)]
    pub dst_ip: Option<String>,
    /// UDP source port.
    #[arg(long, default_value_t = 9000)]
    pub src_port: u16,
    /// UDP destination port (skiff's sink matches 9000-9099 by default).
    #[arg(long, default_value_t = 9000)]
    pub dst_port: u16,
    /// Optional 802.1Q VLAN ID.
    #[arg(long)]
    pub vlan: Option<u16>,
    /// Frames per TX batch (one kick per batch at most).
    #[arg(long, default_value_t = 64)]
    pub batch: u32,
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
    pub frame_size: usize,
    pub completed: u64,
    pub never_completed: u64,
    pub iface_tx_dropped: u64,
    pub tx_invalid_descs: u64,
    pub xdp_mode: &'static str,
    pub xdp_fallback_reason: Option<String>,
    pub zero_copy: bool,
    pub frames_accounted: bool,
    pub stopped_by: &'static str,
    pub queues: Vec<TxQueueReport>,
}

/// Resolves `dst` on the interface with the kernel's ARP: one UDP datagram to the discard
/// port starts resolution, then the neighbour table is read, for up to a second.
fn arp_resolve(ifname: &str, src: Ipv4Addr, dst: Ipv4Addr) -> Result<[u8; 6]> {
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

pub fn run(a: GenArgs) -> Result<GenReport> {
    require_caps()?;
    let plan = a.dp.plan(false)?;
    let ifname = plan.ifname.clone();

    // Sizes: --size counts the FCS; the socket gets size - 4 bytes.
    if a.size < MIN_FRAME_WITH_FCS {
        bail!(
            "bad --size {}: Ethernet frames are at least {MIN_FRAME_WITH_FCS} bytes (FCS included)",
            a.size
        );
    }
    let frame_len = a.size - FCS_LEN;
    let mtu = netdev::mtu(&ifname).unwrap_or(1500) as usize;
    let vlan_len = if a.vlan.is_some() { wire::VLAN_HLEN } else { 0 };
    let max_by_mtu = mtu + wire::ETH_HLEN + vlan_len + FCS_LEN;
    if a.size > max_by_mtu {
        bail!("--size {} is larger than {ifname}'s MTU allows: {mtu} + 14 (Ethernet){} + 4 (FCS) = {max_by_mtu}", a.size, if vlan_len > 0 { " + 4 (VLAN)" } else { "" });
    }
    let room = plan.xsk.frame_size as usize - 256;
    if frame_len > room {
        bail!("--size {} does not fit a {}-byte UMEM frame ({room} bytes after the 256-byte XDP headroom); use --frame-size 4096", a.size, plan.xsk.frame_size);
    }
    if let Some(v) = a.vlan {
        if v > 4094 {
            bail!("bad --vlan {v}: 0..=4094");
        }
    }
    let count = a.count.as_deref().map(parse_count).transpose()?;
    if count == Some(0) {
        bail!("bad --count 0: nothing to send");
    }
    let duration = a.duration.as_deref().map(parse_duration).transpose()?;
    let rate = a.rate.as_deref().map(parse_pps).transpose()?;
    if a.batch == 0 || a.batch > plan.xsk.tx_size {
        bail!("bad --batch {}: 1..={}", a.batch, plan.xsk.tx_size);
    }

    // Addresses.
    let src_mac = match &a.src_mac {
        Some(m) => wire::parse_mac(m)
            .with_context(|| format!("bad --src-mac {m:?} (use aa:bb:cc:dd:ee:ff)"))?,
        None => netdev::mac(&ifname)
            .with_context(|| format!("cannot read {ifname}'s MAC; give --src-mac"))?,
    };
    let src_ip = match &a.src_ip {
        Some(s) => {
            wire::parse_ipv4(s).with_context(|| format!("bad --src-ip {s:?} (an IPv4 address)"))?
        }
        None => netdev::ipv4_addr(&ifname)
            .map(|(ip, _)| ip)
            .with_context(|| format!("{ifname} has no IPv4 address; give --src-ip"))?,
    };
    let dst_ip = match &a.dst_ip {
        Some(s) => {
            wire::parse_ipv4(s).with_context(|| format!("bad --dst-ip {s:?} (an IPv4 address)"))?
        }
        None => bail!("give --dst-ip (the receiver's IPv4 address)"),
    };
    let dst_mac = match &a.dst_mac {
        Some(m) => wire::parse_mac(m)
            .with_context(|| format!("bad --dst-mac {m:?} (use aa:bb:cc:dd:ee:ff)"))?,
        None => arp_resolve(&ifname, Ipv4Addr::from(src_ip), Ipv4Addr::from(dst_ip))?,
    };
    let spec = UdpFrameSpec {
        dst_mac,
        src_mac,
        vlan: a.vlan,
        src_ip,
        dst_ip,
        src_port: a.src_port,
        dst_port: a.dst_port,
        frame_len,
    };
    let frame = spec.build();

    // Data path: the program redirects frames to our source port (replies) to our sockets.
    let filter = skiff_ebpf::Config {
        flags: skiff_ebpf::flags::ENABLED,
        port_lo: a.src_port,
        port_hi: a.src_port,
        action: skiff_ebpf::Action::Redirect as u32,
        reserved: 0,
    };
    let (prog, queues) = datapath::open(&plan, &a.dp, filter)?;
    let xdp_mode = prog.mode();
    let fallback = prog.fallback_reason().map(str::to_owned);
    let zero_copy = queues.iter().all(|q| q.mode() == BindMode::ZeroCopy);
    for q in &queues {
        // Raise the copy-mode per-sendto budget from 32 to the ring size (Linux ≥ 6.16);
        // older kernels refuse the option, which only costs speed.
        let _ = q.set_tx_skb_budget(plan.xsk.tx_size);
    }
    let n = queues.len();
    // A rate and a duration without a count mean exactly ⌊rate · duration⌋ frames; the
    // deadline then only bounds a run the machine cannot keep up with (plus 50 ms grace).
    let (count, duration) = match (count, duration, rate) {
        (None, Some(d), Some(r)) => (
            Some((r * d.as_secs_f64()).floor().max(1.0) as u64),
            Some(d + Duration::from_millis(50)),
        ),
        other => (other.0, other.1),
    };
    let counts = count.map(|c| split_exact(c, n));
    let rates = rate.map(|r| split_rate(r, n));
    if let Some(c) = &counts {
        if c.contains(&0) {
            bail!(
                "--count {} is smaller than the {n} queues it is split over",
                count.unwrap_or(0)
            );
        }
    }
    let stop = datapath::stop_for(&a.dp);
    let tx_dropped_before = netdev::stat(&ifname, "tx_dropped");
    datapath::signal_ready(&a.dp)?;
    let start = Instant::now();
    let deadline = duration.map(|d| start + d);
    let stopped_by = match (count, duration) {
        (None, None) => "signal",
        _ => "limit",
    };
    if !a.dp.quiet && !a.dp.json && stopped_by == "signal" {
        eprintln!("skiff gen: sending on {ifname} until Ctrl-C");
    }

    let published: Vec<_> = (0..n).map(|_| Published::<TxCounters>::new()).collect();
    let mut handles = Vec::with_capacity(n);
    for (i, mut q) in queues.into_iter().enumerate() {
        let cfg = TxConfig {
            batch: a.batch,
            count: counts.as_ref().map(|c| c[i]),
            deadline,
            pacer: rates.as_ref().and_then(|r| Pacer::new(r[i])),
            fill_target: plan.xsk.tx_only_fill,
            reclaim_max: plan.xsk.comp_size,
            ..TxConfig::default()
        };
        let cpu = plan.cpus[i];
        let frame = frame.clone();
        let stop = stop.clone();
        let publ = published[i].clone();
        handles.push(
            std::thread::Builder::new()
                .name(format!("skiff-tx{}", q.queue_id()))
                .spawn(move || {
                    let pinned = pin(cpu);
                    let (counters, produced) = run_tx(&mut q, &frame, &cfg, &stop, &publ);
                    let stats = q.statistics();
                    TxQueueReport {
                        queue: q.queue_id(),
                        cpu: cpu.filter(|_| pinned),
                        counters,
                        never_completed: q.tx_outstanding(),
                        xdp_statistics: stats,
                        frames: q.accounting(),
                        elapsed_s: produced.as_secs_f64(),
                    }
                })
                .context("spawning a TX poller thread")?,
        );
    }

    let mut last = TxCounters::default();
    let quiet = a.dp.quiet;
    datapath::progress_loop(
        start,
        || handles.iter().all(|h| h.is_finished()),
        |t| {
            let mut sum = TxCounters::default();
            for p in &published {
                sum.add(&p.read());
            }
            if !quiet {
                let pps = (sum.tx_packets - last.tx_packets) as f64;
                let (l2, l1) = bitrates(pps, frame.len() as f64);
                eprintln!(
                    "gen  {:>4.0}s  tx {:>12}  {:>14} L2  {:>14} L1  completed {:>10}  ring_full {}",
                    t.as_secs_f64(),
                    fmt_rate(pps, "pps"),
                    fmt_rate(l2, "bit/s"),
                    fmt_rate(l1, "bit/s"),
                    sum.completed,
                    sum.tx_ring_full
                );
            }
            last = sum;
        },
    );
    let mut reports = Vec::with_capacity(n);
    for h in handles {
        reports.push(
            h.join()
                .map_err(|_| anyhow::anyhow!("a TX poller thread panicked"))?,
        );
    }
    let stopped_by = if stop.load(Ordering::Relaxed) {
        "signal"
    } else {
        stopped_by
    };
    let iface_tx_dropped = netdev::stat(&ifname, "tx_dropped").saturating_sub(tx_dropped_before);
    drop(prog); // detach before reporting

    let mut total = TxCounters::default();
    for r in &reports {
        total.add(&r.counters);
    }
    let elapsed = reports.iter().map(|r| r.elapsed_s).fold(0.0, f64::max);
    let pps = if elapsed > 0.0 {
        total.tx_packets as f64 / elapsed
    } else {
        0.0
    };
    let (l2, l1) = bitrates(pps, frame.len() as f64);
    Ok(GenReport {
        iface: ifname,
        tx_packets: total.tx_packets,
        tx_bytes: total.tx_bytes,
        elapsed_s: elapsed,
        tx_pps: pps,
        tx_bps_l2: l2,
        tx_bps_l1: l1,
        requested_pps: rate,
        frame_size: a.size,
        completed: total.completed,
        never_completed: reports.iter().map(|r| r.never_completed).sum(),
        iface_tx_dropped,
        tx_invalid_descs: reports
            .iter()
            .map(|r| r.xdp_statistics.tx_invalid_descs)
            .sum(),
        xdp_mode: xdp_mode.name(),
        xdp_fallback_reason: fallback,
        zero_copy,
        frames_accounted: reports.iter().all(|r| r.frames.adds_up()),
        stopped_by,
        queues: reports,
    })
}

pub fn print_text(r: &GenReport) {
    crate::common::print_header("gen", &r.iface, r.queues.len(), r.xdp_mode, r.zero_copy);
    println!(
        "  sent       {:>12} frames of {} bytes in {:.3} s: {}, {} L2, {} L1{}",
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
}
