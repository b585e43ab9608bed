//! `skiff demo`: a testbed, a sink in one namespace, a generator in the other, a report
//! whose numbers add up, and the testbed removed again, also on failure or Ctrl-C.

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::{json, Value};

use crate::{
    child::{read_json, signal, start_ready, wait_or_stop, wait_timeout, ChildGuard, TempDir},
    common::{fmt_rate, parse_duration, parse_pps, require_caps, stop_flag},
    testbed::{self, Guard, Testbed},
};

#[derive(Debug, Args, Clone)]
pub struct DemoArgs {
    /// How long the generator sends.
    #[arg(long, default_value = "5s")]
    pub duration: String,
    /// Queues on each end (the generator sends on all of them).
    #[arg(long, default_value_t = 1)]
    pub queues: u32,
    /// Total rate in packets/s. The default, 100 kpps, is carried here without loss with
    /// room to spare: gen → sink on this 2-core machine peaks at about 650 kpps, where the
    /// sink starts to lose frames (docs/PERFORMANCE.md).
    #[arg(long, default_value = "100k")]
    pub rate: String,
    /// Frame size including FCS.
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Testbed name (default: skiff-demo-PID, so a demo never touches another testbed).
    #[arg(long)]
    pub name: Option<String>,
    /// One JSON object at the end: {"gen": {...}, "sink": {...}, "accounting": {...}}.
    #[arg(long)]
    pub json: bool,
    /// Every frame carries a latency probe; the sink reports one-way latency (table and
    /// percentile chart), loss, reordering and duplication. Frames are raised to the
    /// smallest size that carries a probe (86 bytes) if --size is smaller.
    #[arg(long)]
    pub latency: bool,
    /// With --latency: the sink's HdrHistogram interval log (see `skiff hist`).
    #[arg(long, value_name = "FILE", requires = "latency")]
    pub hist_log: Option<std::path::PathBuf>,
    /// With --latency: a percentile plot, FILE.svg or FILE.png.
    #[arg(long, value_name = "FILE", requires = "latency")]
    pub plot: Option<std::path::PathBuf>,
}

/// The smallest frame (FCS included) that carries a probe in the demo's UDP/IPv4 frames:
/// 14 (Ethernet) + 20 (IPv4) + 8 (UDP) + 40 (probe) + 4 (FCS).
const PROBE_FRAME_MIN: usize = 86;

pub fn run(a: DemoArgs) -> Result<()> {
    require_caps()?;
    let duration = parse_duration(&a.duration)?;
    let rate = parse_pps(&a.rate)?;
    let size = if a.latency {
        a.size.max(PROBE_FRAME_MIN)
    } else {
        a.size
    };
    let abs = |p: &std::path::Path| -> Result<std::path::PathBuf> {
        Ok(if p.is_absolute() {
            p.to_path_buf()
        } else {
            std::env::current_dir()
                .context("reading the current directory")?
                .join(p)
        })
    };
    let name = a
        .name
        .clone()
        .unwrap_or_else(|| format!("skdemo{}", std::process::id() % 1_000_000));
    let tb = Testbed::new(&name, a.queues)?;
    let stop = stop_flag();
    let exe = std::env::current_exe().context("locating the skiff binary")?;
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    // Two cores: the sink's pollers on cpu 1, the generator's on cpu 0.
    let (gen_cpu, sink_cpu) = if cpus >= 2 { ("0", "1") } else { ("0", "0") };

    if !testbed::up(&tb)? {
        // Never tear down (or run inside) a testbed someone else set up.
        bail!("testbed {:?} already exists; the demo creates and removes its own (choose another --name)", tb.name);
    }
    let _guard = Guard(tb.clone());
    if !a.json {
        eprintln!(
            "skiff demo: testbed {} up: {} ({}) -> {} ({}), {} queue(s); {} for {:?} of {}-byte frames",
            tb.name, tb.if_a, tb.ip_a, tb.if_b, tb.ip_b, tb.queues, fmt_rate(rate, "pps"), duration, size
        );
    }
    let tmp = TempDir::new("skiff-demo")?;
    let ready = tmp.path().join("sink.ready");
    let hist_log = match &a.hist_log {
        Some(p) => abs(p)?,
        None => tmp.path().join("latency.hlog"),
    };
    let queues = format!("0-{}", a.queues - 1);
    let mut sink_cmd = Command::new("ip");
    sink_cmd
        .args(["netns", "exec", &tb.ns_b])
        .arg(&exe)
        .args([
            "sink", "--iface", &tb.if_b, "--queues", &queues, "--cpus", sink_cpu, "--json",
            "--quiet",
        ])
        .args(["--stop-on-stdin-eof", "--ready-file"])
        .arg(&ready)
        .args(if a.latency {
            &["--hist-log"][..]
        } else {
            &[][..]
        })
        .args(a.latency.then_some(&hist_log));
    if let Some(p) = &a.plot {
        sink_cmd.arg("--plot").arg(abs(p)?);
    }
    sink_cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut sink = start_ready(sink_cmd, &ready, Duration::from_secs(15), &stop, "sink")?;

    let mut gen_cmd = Command::new("ip");
    let mut gen = ChildGuard(Some(
        gen_cmd
            .args(["netns", "exec", &tb.ns_a])
            .arg(&exe)
            .args([
                "gen", "--iface", &tb.if_a, "--queues", &queues, "--cpus", gen_cpu, "--json",
            ])
            .args([
                "--dst-mac",
                tb.mac_b,
                "--src-ip",
                tb.ip_a,
                "--dst-ip",
                tb.ip_b,
            ])
            .args([
                "--rate",
                &a.rate,
                "--duration",
                &a.duration,
                "--size",
                &size.to_string(),
            ])
            .args(if a.latency {
                &["--latency"][..]
            } else {
                &[][..]
            })
            .args(if a.json { &["--quiet"][..] } else { &[][..] })
            .arg("--stop-on-stdin-eof")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting the generator")?,
    ));
    let gen_child = gen.0.as_mut().context("gen")?;
    let gen_status = wait_or_stop(gen_child, duration + Duration::from_secs(30), &stop)?
        .context("the generator did not finish in time")?;
    let gen_report = read_json(gen_child, "the generator")?;
    if !gen_status.success() {
        bail!("the generator failed ({gen_status})");
    }
    // Frames still in flight land within microseconds on veth; give them a margin.
    std::thread::sleep(Duration::from_millis(200));
    let sink_child = sink.0.as_mut().context("sink")?;
    signal(sink_child, 2);
    let sink_status =
        wait_timeout(sink_child, Duration::from_secs(10))?.context("the sink did not stop")?;
    let sink_report = read_json(sink_child, "the sink")?;
    if !sink_status.success() {
        bail!("the sink failed ({sink_status})");
    }

    let g = |k: &str| gen_report.get(k).and_then(Value::as_u64).unwrap_or(0);
    let s = |k: &str| sink_report.get(k).and_then(Value::as_u64).unwrap_or(0);
    let d = |k: &str| {
        sink_report
            .get("dropped")
            .and_then(|d| d.get(k))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    let sent = g("tx_packets");
    let received = s("rx_packets");
    let drops = json!({
        "never_completed": g("never_completed"),
        "gen_iface_tx_dropped": g("iface_tx_dropped"),
        "xdp_redirect_failed": d("xdp_redirect_failed"),
        "xdp_parse_error": d("xdp_parse_error"),
        "xsk_rx_dropped": d("xsk_rx_dropped"),
        "xsk_rx_ring_full": d("xsk_rx_ring_full"),
        "xsk_rx_invalid_descs": d("xsk_rx_invalid_descs"),
    });
    let counted: u64 = drops
        .as_object()
        .map(|m| m.values().filter_map(Value::as_u64).sum())
        .unwrap_or(0);
    let unaccounted = sent as i128 - received as i128 - counted as i128;
    let accounting = json!({
        "sent": sent,
        "received": received,
        "dropped": drops,
        "dropped_total": counted,
        "unaccounted": unaccounted,
        "adds_up": unaccounted == 0,
    });
    if a.json {
        println!(
            "{}",
            json!({"gen": gen_report, "sink": sink_report, "accounting": accounting})
        );
    } else {
        let gpps = gen_report
            .get("tx_pps")
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        let spps = sink_report
            .get("rx_pps")
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        println!(
            "skiff demo: {} -> {} over veth, XDP {} mode on the sink, {}",
            tb.if_a,
            tb.if_b,
            sink_report
                .get("xdp_mode")
                .and_then(Value::as_str)
                .unwrap_or("?"),
            if sink_report
                .get("zero_copy")
                .and_then(Value::as_bool)
                .unwrap_or(false)
            {
                "zero-copy"
            } else {
                "copy mode"
            }
        );
        println!("  sent      {sent:>12}  ({})", fmt_rate(gpps, "pps"));
        println!("  received  {received:>12}  ({})", fmt_rate(spps, "pps"));
        println!("  dropped   {counted:>12}  {}", accounting["dropped"]);
        println!(
            "  sent = received + dropped: {}",
            if unaccounted == 0 {
                "yes".to_owned()
            } else {
                format!("NO, {unaccounted} unaccounted")
            }
        );
    }
    if a.latency && !a.json {
        print_latency(&sink_report, &hist_log)?;
    }
    if stop.load(std::sync::atomic::Ordering::Relaxed) {
        eprintln!("skiff demo: interrupted; testbed removed");
    }
    Ok(())
}

/// The sink's one-way latency: its counts from the JSON, the table and chart from its
/// interval log read back (the same file `skiff hist` reads).
fn print_latency(sink: &Value, log: &std::path::Path) -> Result<()> {
    let per = crate::hist::load(&[log.to_path_buf()])
        .with_context(|| format!("reading the sink's histogram log {}", log.display()))?;
    let u = |k: &str| sink.get(k).and_then(Value::as_u64).unwrap_or(0);
    println!(
        "  latency   one way (one host's clock), from the sink's log ({} intervals):",
        per.values().map(|m| m.intervals).sum::<usize>()
    );
    let series = crate::hist::series(&per);
    for line in crate::plot::table(&series).lines() {
        println!("{line}");
    }
    println!(
        "  probes    received {}  lost {}  reordered {}  duplicated {}  late {}",
        u("received"),
        u("lost"),
        u("reordered"),
        u("duplicated"),
        u("late")
    );
    let streams: Vec<crate::plot::Series> = series
        .iter()
        .copied()
        .filter(|s| s.name != "total" || per.len() == 1)
        .collect();
    print!("{}", crate::plot::terminal_chart(&streams, 80, 16));
    Ok(())
}
