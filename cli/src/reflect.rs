//! `skiff reflect`: sends latency probes back where they came from, so the sender measures
//! round trips (through a device under test, on real NICs). Three ways:
//! - AF_XDP (default): probes reach the sockets, get their addresses swapped in place and
//!   go out on the same socket's TX ring, in the same UMEM frame;
//! - `--xdp-tx`: the XDP program swaps and returns `XDP_TX`, never leaving the driver;
//! - `--kernel`: a kernel UDP socket echoes them (the baseline for comparisons).

use std::{
    io::ErrorKind,
    net::{SocketAddr, UdpSocket},
    sync::{atomic::Ordering, Arc},
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Serialize;
use skiff_engine::{
    latency::probe::{self, Found},
    rx::{
        poller::{IdleMode, PollConfig},
        reflect::{run_reflect, ReflectCounters},
    },
    stats::Published,
    xdp::XdpCounters,
    xsk::BindMode,
};

use crate::{
    common::{fmt_rate, parse_duration, parse_list, pin, require_caps},
    datapath::{self, DataPathArgs},
};

#[derive(Debug, Args, Clone)]
pub struct ReflectArgs {
    #[command(flatten)]
    pub dp: DataPathArgs,
    /// Stop after this long (default: until Ctrl-C).
    #[arg(long)]
    pub duration: Option<String>,
    /// UDP destination ports to reflect, `LO-HI`.
    #[arg(long, default_value = "9000-9099")]
    pub ports: String,
    /// Reflect in the XDP program (XDP_TX) instead of through the AF_XDP sockets.
    #[arg(long, conflicts_with = "kernel")]
    pub xdp_tx: bool,
    /// Reflect every UDP frame on the ports, not only valid probes (AF_XDP mode).
    #[arg(long)]
    pub all_udp: bool,
    /// Sleep in poll() when idle instead of busy-polling (saves a core, adds latency).
    #[arg(long)]
    pub adaptive: bool,
    /// Echo with a kernel UDP socket bound to this port instead (the baseline).
    #[arg(long, value_name = "PORT")]
    pub kernel: Option<u16>,
}

#[derive(Debug, Serialize)]
pub struct ReflectReport {
    pub iface: String,
    /// "af_xdp", "xdp_tx" or "kernel_udp".
    pub mode: &'static str,
    pub elapsed_s: f64,
    #[serde(flatten)]
    pub counters: ReflectCounters,
    pub xdp: Option<XdpCounters>,
    pub xdp_mode: Option<&'static str>,
    pub zero_copy: Option<bool>,
}

pub fn run(a: ReflectArgs) -> Result<ReflectReport> {
    require_caps()?;
    let duration = a.duration.as_deref().map(parse_duration).transpose()?;
    let stop = datapath::stop_for(&a.dp);
    let start = Instant::now();
    let deadline = duration.map(|d| start + d);
    let done = || stop.load(Ordering::Relaxed) || deadline.is_some_and(|d| Instant::now() >= d);
    if let Some(port) = a.kernel {
        return kernel(&a, port, start, done);
    }
    let plan = a.dp.plan(true)?;
    let ports = parse_list(&a.ports, "port").context("--ports")?;
    let (lo, hi) = (ports[0], *ports.last().unwrap_or(&ports[0]));
    if hi > u32::from(u16::MAX) || lo == 0 {
        bail!("bad --ports {:?}: 1..=65535", a.ports);
    }
    let action = if a.xdp_tx {
        skiff_ebpf::Action::Reflect
    } else {
        skiff_ebpf::Action::Redirect
    };
    let filter = skiff_ebpf::Config {
        flags: skiff_ebpf::flags::ENABLED,
        port_lo: lo as u16,
        port_hi: hi as u16,
        action: action as u32,
        loss: 0,
    };
    let (prog, queues) = datapath::open(&plan, &a.dp, filter)?;
    let zero_copy = queues.iter().all(|q| q.mode() == BindMode::ZeroCopy);
    let poll = PollConfig {
        idle: if a.adaptive {
            IdleMode::Adaptive
        } else {
            IdleMode::BusyPoll
        },
        fill_target: plan.xsk.fill_size,
        ..PollConfig::default()
    };
    let inner = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let n = queues.len();
    let published: Vec<_> = (0..n)
        .map(|_| Published::<ReflectCounters>::new())
        .collect();
    let mut handles = Vec::new();
    if !a.xdp_tx {
        for (i, mut q) in queues.into_iter().enumerate() {
            let cpu = plan.cpus[i];
            let stop = inner.clone();
            let publ = published[i].clone();
            let all = a.all_udp;
            handles.push(
                std::thread::Builder::new()
                    .name(format!("skiff-refl{}", q.queue_id()))
                    .spawn(move || {
                        pin(cpu);
                        run_reflect(&mut q, &poll, &stop, &publ, all)
                    })
                    .context("spawning a reflector thread")?,
            );
        }
    }
    datapath::signal_ready(&a.dp)?;
    let quiet = a.dp.quiet || a.dp.json;
    if !quiet && deadline.is_none() {
        eprintln!("skiff reflect: reflecting on {} until Ctrl-C", plan.ifname);
    }
    let mut last = 0u64;
    let sum = |published: &[Arc<Published<ReflectCounters>>]| {
        let mut s = ReflectCounters::default();
        for p in published {
            s.add(&p.read());
        }
        s
    };
    datapath::progress_loop(start, Duration::from_secs(1), done, |t| {
        let now = if a.xdp_tx {
            prog.counters().reflected
        } else {
            sum(&published).reflected
        };
        if !quiet {
            eprintln!(
                "reflect {:>4.0}s  reflected {:>12}  ({})",
                t.as_secs_f64(),
                now,
                fmt_rate((now - last) as f64, "pps")
            );
        }
        last = now;
    });
    inner.store(true, Ordering::SeqCst);
    let mut total = ReflectCounters::default();
    for h in handles {
        let c = h
            .join()
            .map_err(|_| anyhow::anyhow!("a reflector thread panicked"))?;
        total.add(&c);
    }
    let xdp = prog.counters();
    if a.xdp_tx {
        // The program reflected them; no socket saw them.
        total.reflected = xdp.reflected;
    }
    Ok(ReflectReport {
        iface: plan.ifname.clone(),
        mode: if a.xdp_tx { "xdp_tx" } else { "af_xdp" },
        elapsed_s: start.elapsed().as_secs_f64(),
        counters: total,
        xdp: Some(xdp),
        xdp_mode: Some(prog.mode().name()),
        zero_copy: Some(zero_copy),
    })
}

/// The kernel baseline: a non-blocking UDP socket, busy-polled like the AF_XDP reflector,
/// echoing valid probes (or every datagram with --all-udp) to their sender.
fn kernel(
    a: &ReflectArgs,
    port: u16,
    start: Instant,
    done: impl Fn() -> bool,
) -> Result<ReflectReport> {
    let sock = UdpSocket::bind(SocketAddr::from(([0, 0, 0, 0], port)))
        .with_context(|| format!("binding a UDP socket to port {port}"))?;
    sock.set_nonblocking(true)
        .context("making the UDP socket non-blocking")?;
    pin(a.dp.first_cpu()?);
    datapath::signal_ready(&a.dp)?;
    let mut c = ReflectCounters::default();
    // 65535: the largest UDP datagram.
    let mut buf = vec![0u8; 65_535];
    let mut iter = 0u32;
    loop {
        iter = iter.wrapping_add(1);
        // The stop flag and deadline every 1024 iterations (a few µs when idle).
        if iter.is_multiple_of(1024) && done() {
            break;
        }
        match sock.recv_from(&mut buf) {
            Ok((len, from)) => {
                c.rx_packets += 1;
                let payload = buf.get(..len).unwrap_or(&[]);
                // The same verdicts as the AF_XDP reflector's.
                let ok = match probe::in_payload(payload) {
                    Found::Probe(_) => true,
                    Found::Invalid(_) => {
                        c.bad_probes += 1;
                        false
                    }
                    Found::NotProbe => {
                        c.not_probe += 1;
                        a.all_udp
                    }
                };
                if ok {
                    match sock.send_to(payload, from) {
                        Ok(_) => c.reflected += 1,
                        Err(_) => c.tx_ring_full += 1,
                    }
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                c.rx_empty_polls += 1;
                if a.adaptive {
                    std::thread::sleep(Duration::from_micros(50));
                } else {
                    // As the AF_XDP loops: lets ksoftirqd have the core.
                    skiff_engine::latency::ping::idle_yield();
                }
            }
            // An ICMP error queued on the socket (the pinger went away): nothing to echo.
            Err(_) => {}
        }
    }
    Ok(ReflectReport {
        iface: a.dp.iface.clone(),
        mode: "kernel_udp",
        elapsed_s: start.elapsed().as_secs_f64(),
        counters: c,
        xdp: None,
        xdp_mode: None,
        zero_copy: None,
    })
}

pub fn print_text(r: &ReflectReport) {
    println!(
        "skiff reflect on {} ({}{}): {} probes reflected in {:.3} s",
        r.iface,
        r.mode,
        match (r.xdp_mode, r.zero_copy) {
            (Some(m), Some(z)) => format!(
                ", XDP {m} mode, {}",
                if z { "zero-copy" } else { "copy mode" }
            ),
            _ => String::new(),
        },
        r.counters.reflected,
        r.elapsed_s
    );
    let c = &r.counters;
    println!(
        "  received {}  not probes {}  bad probes {}  dropped (TX ring full) {}",
        c.rx_packets, c.not_probe, c.bad_probes, c.tx_ring_full
    );
}
