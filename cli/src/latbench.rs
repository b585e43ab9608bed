//! `skiff bench latency`: round-trip latency on one testbed, in one run, over three paths
//! that share the pinger's schedule, histograms and CPUs:
//! - `skiff` — `skiff ping` (AF_XDP) to `skiff reflect` (AF_XDP, swap in place, same UMEM
//!   frame back on the TX ring);
//! - `skiff-xdp-tx` — `skiff ping` to `skiff reflect --xdp-tx` (the XDP program reflects);
//! - `kernel` — the baseline: `skiff ping --kernel` to `skiff reflect --kernel`, plain UDP
//!   sockets in the two namespaces, busy-polled like skiff's sockets (the fairest kernel
//!   ping-pong: no sleep/wakeup cost on either side).
//!
//! The pinger runs on CPU 0 and the reflector on CPU 1 (veth runs the receiver's NAPI in
//! the sender's context, so each direction's softirq lands on the sender's core). Tools
//! alternate, `--runs` times; per tool the medians of the runs' percentiles are reported,
//! and skiff's p50 and p99 as ratios to the kernel's.

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Serialize;
use serde_json::Value;

use crate::{
    child::{read_json, signal, start_ready, wait_timeout, ChildGuard, TempDir},
    common::{parse_duration, parse_pps, require_caps, stop_flag},
    plot::fmt_latency,
    testbed::{self, Guard, Testbed},
};

#[derive(Debug, Args, Clone)]
pub struct LatencyBenchArgs {
    /// Length of each measured run.
    #[arg(long, default_value = "3s")]
    pub duration: String,
    /// Probes per second.
    #[arg(long, default_value = "10k")]
    pub rate: String,
    /// Runs of each path (alternating); medians are compared.
    #[arg(long, default_value_t = 3)]
    pub runs: u32,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// The three paths.
const TOOLS: [&str; 3] = ["skiff", "skiff-xdp-tx", "kernel"];
/// The kernel reflector's UDP port, and the pinger's destination port for all paths.
const REFLECT_PORT: u16 = 9001;

#[derive(Debug, Serialize)]
struct RunSample {
    tool: &'static str,
    sent: u64,
    received: u64,
    lost: u64,
    p50: u64,
    p90: u64,
    p99: u64,
    p999: u64,
    max: u64,
    mean: f64,
    sched_p99: u64,
}

#[derive(Debug, Serialize)]
struct ToolMedian {
    tool: &'static str,
    p50: u64,
    p90: u64,
    p99: u64,
    p999: u64,
    max: u64,
    lost: u64,
}

#[derive(Debug, Serialize)]
struct LatencyBenchReport {
    bench: &'static str,
    baseline: &'static str,
    rate_pps: f64,
    duration_s: f64,
    runs: Vec<RunSample>,
    medians: Vec<ToolMedian>,
    /// skiff's median p50 / the kernel's (below 1: skiff is faster).
    ratio_p50: f64,
    /// skiff's median p99 / the kernel's.
    ratio_p99: f64,
}

fn median_u64(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

pub fn run(a: LatencyBenchArgs) -> Result<()> {
    require_caps()?;
    let duration = parse_duration(&a.duration)?;
    let rate = parse_pps(&a.rate)?;
    if a.runs == 0 || a.runs > 20 {
        bail!("bad --runs {}: 1..=20", a.runs);
    }
    let stop = stop_flag();
    let exe = std::env::current_exe()?;
    let tb = Testbed::new(&format!("sklat{}", std::process::id() % 100_000), 1)?;
    if !testbed::up(&tb)? {
        bail!(
            "testbed {:?} already exists; the benchmark creates and removes its own",
            tb.name
        );
    }
    let _guard = Guard(tb.clone());
    let tmp = TempDir::new("skiff-latbench")?;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (ping_cpu, refl_cpu) = if cpus >= 2 { ("0", "1") } else { ("0", "0") };
    let mut samples = Vec::new();
    for i in 0..a.runs {
        for tool in TOOLS {
            let ready = tmp.path().join(format!("reflect-{i}-{tool}.ready"));
            let mut rc = Command::new("ip");
            rc.args(["netns", "exec", &tb.ns_b])
                .arg(&exe)
                .args([
                    "reflect", "--iface", &tb.if_b, "--cpus", refl_cpu, "--json", "--quiet",
                ])
                .args(["--stop-on-stdin-eof", "--ready-file"])
                .arg(&ready)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped());
            match tool {
                "kernel" => {
                    rc.args(["--kernel", &REFLECT_PORT.to_string()]);
                }
                "skiff-xdp-tx" => {
                    rc.arg("--xdp-tx");
                }
                _ => {}
            }
            let mut refl = start_ready(rc, &ready, Duration::from_secs(15), &stop, "reflector")?;
            let mut pc = Command::new("ip");
            pc.args(["netns", "exec", &tb.ns_a])
                .arg(&exe)
                .args(["ping", "--iface", &tb.if_a, "--cpus", ping_cpu, "--json"])
                .args([
                    "--src-ip",
                    tb.ip_a,
                    "--dst-ip",
                    tb.ip_b,
                    "--dst-mac",
                    tb.mac_b,
                ])
                .args(["--dport", &REFLECT_PORT.to_string()])
                .args(["--rate", &a.rate, "--duration", &a.duration])
                .arg("--stop-on-stdin-eof")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped());
            if tool == "kernel" {
                pc.arg("--kernel");
            }
            let mut ping = ChildGuard(Some(pc.spawn().context("starting skiff ping")?));
            let child = ping.0.as_mut().context("ping")?;
            let status = wait_timeout(child, duration + Duration::from_secs(30))?
                .context("skiff ping did not finish in time")?;
            let report = read_json(child, "skiff ping")?;
            if !status.success() {
                bail!("skiff ping ({tool}) failed ({status})");
            }
            let rchild = refl.0.as_mut().context("reflector")?;
            signal(rchild, 2);
            wait_timeout(rchild, Duration::from_secs(10))?.context("the reflector did not stop")?;
            let l = report.get("latency_ns").cloned().unwrap_or(Value::Null);
            let g = |v: &Value, k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
            let s = RunSample {
                tool,
                sent: g(&report, "sent"),
                received: g(&report, "received"),
                lost: g(&report, "lost"),
                p50: g(&l, "p50"),
                p90: g(&l, "p90"),
                p99: g(&l, "p99"),
                p999: g(&l, "p999"),
                max: g(&l, "max"),
                mean: l.get("mean").and_then(Value::as_f64).unwrap_or(0.0),
                sched_p99: report.get("latency_sched_ns").map_or(0, |v| g(v, "p99")),
            };
            if !a.json {
                eprintln!(
                    "run {}/{} {:<13} p50 {:>9}  p99 {:>9}  p99.9 {:>9}  max {:>9}  lost {}",
                    i + 1,
                    a.runs,
                    tool,
                    fmt_latency(s.p50 as f64, " "),
                    fmt_latency(s.p99 as f64, " "),
                    fmt_latency(s.p999 as f64, " "),
                    fmt_latency(s.max as f64, " "),
                    s.lost
                );
            }
            samples.push(s);
            if stop.load(std::sync::atomic::Ordering::Relaxed) {
                bail!("interrupted; testbed removed");
            }
        }
    }
    let medians: Vec<ToolMedian> = TOOLS
        .iter()
        .map(|&tool| {
            let of = |f: fn(&RunSample) -> u64| {
                median_u64(samples.iter().filter(|s| s.tool == tool).map(f).collect())
            };
            ToolMedian {
                tool,
                p50: of(|s| s.p50),
                p90: of(|s| s.p90),
                p99: of(|s| s.p99),
                p999: of(|s| s.p999),
                max: of(|s| s.max),
                lost: samples
                    .iter()
                    .filter(|s| s.tool == tool)
                    .map(|s| s.lost)
                    .sum(),
            }
        })
        .collect();
    let by = |t: &str| medians.iter().find(|m| m.tool == t);
    let ratio = |f: fn(&ToolMedian) -> u64| match (by("skiff"), by("kernel")) {
        (Some(s), Some(k)) if f(k) > 0 => f(s) as f64 / f(k) as f64,
        _ => 0.0,
    };
    let report = LatencyBenchReport {
        bench: "latency",
        baseline: "kernel UDP sockets (busy-polled), same testbed, same run",
        rate_pps: rate,
        duration_s: duration.as_secs_f64(),
        ratio_p50: ratio(|m| m.p50),
        ratio_p99: ratio(|m| m.p99),
        runs: samples,
        medians,
    };
    if a.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "skiff bench latency: round trip over veth, {} probes/s for {:?}, {} runs each, medians:",
            rate, duration, a.runs
        );
        for m in &report.medians {
            println!(
                "  {:<13} p50 {:>9}  p90 {:>9}  p99 {:>9}  p99.9 {:>9}  max {:>9}  lost {}",
                m.tool,
                fmt_latency(m.p50 as f64, " "),
                fmt_latency(m.p90 as f64, " "),
                fmt_latency(m.p99 as f64, " "),
                fmt_latency(m.p999 as f64, " "),
                fmt_latency(m.max as f64, " "),
                m.lost
            );
        }
        println!(
            "  skiff / kernel: p50 {:.2}x, p99 {:.2}x (below 1: skiff is faster)",
            report.ratio_p50, report.ratio_p99
        );
    }
    Ok(())
}
