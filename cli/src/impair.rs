//! `skiff impair`: random loss on an interface's ingress, in skiff's XDP program (netem's
//! `loss`, for kernels built without sch_netem, such as this project's test machines).
//! Frames that match the filter are dropped with the given probability before anything
//! else sees them (packet taps included); the rest go on to the kernel.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Serialize;
use skiff_engine::xdp::{self, XdpCounters};

use crate::{
    common::{parse_duration, parse_list, require_caps},
    datapath::{self, DataPathArgs},
};

#[derive(Debug, Args, Clone)]
pub struct ImpairArgs {
    #[command(flatten)]
    pub dp: DataPathArgs,
    /// Drop this share of matching frames at random, in percent (e.g. 1, 0.5).
    #[arg(long)]
    pub loss: f64,
    /// Only UDP/TCP frames to these destination ports (`LO-HI`); default every frame.
    #[arg(long)]
    pub ports: Option<String>,
    /// Stop after this long (e.g. 10s). Without it: until Ctrl-C.
    #[arg(long)]
    pub duration: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ImpairReport {
    pub iface: String,
    pub loss_percent: f64,
    /// Frames that matched the filter (dropped + passed on).
    pub matched: u64,
    /// Frames dropped by the impairment.
    pub dropped: u64,
    pub elapsed_s: f64,
}

/// `--loss` in percent as the program's threshold: probability × 2^32, clamped.
fn threshold(percent: f64) -> Result<u32> {
    if !(0.0..=100.0).contains(&percent) || percent.is_nan() {
        bail!("--loss {percent}: a percentage from 0 to 100");
    }
    // 2^32 steps: the program compares a 32-bit random number with this threshold.
    Ok(((percent / 100.0) * 4_294_967_296.0).min(u32::MAX as f64) as u32)
}

pub fn run(a: ImpairArgs) -> Result<ImpairReport> {
    require_caps()?;
    let loss = threshold(a.loss)?;
    let duration = a.duration.as_deref().map(parse_duration).transpose()?;
    let (flags, lo, hi) = match &a.ports {
        Some(p) => {
            let ports = parse_list(p, "port").context("--ports")?;
            let (lo, hi) = (ports[0], *ports.last().unwrap_or(&ports[0]));
            if hi > u16::MAX as u32 || lo == 0 {
                bail!("bad --ports {p:?}: 1..=65535");
            }
            (skiff_ebpf::flags::ENABLED, lo as u16, hi as u16)
        }
        None => (
            skiff_ebpf::flags::ENABLED | skiff_ebpf::flags::MATCH_ALL,
            0,
            0,
        ),
    };
    let mut prog = xdp::attach(&a.dp.iface, a.dp.xdp_mode.into(), a.dp.force)?;
    prog.set_config(skiff_ebpf::Config {
        flags,
        port_lo: lo,
        port_hi: hi,
        action: skiff_ebpf::Action::Pass as u32,
        loss,
    })?;
    let stop = datapath::stop_for(&a.dp);
    datapath::signal_ready(&a.dp)?;
    let start = Instant::now();
    let deadline = duration.map(|d| start + d);
    let mut last = XdpCounters::default();
    let quiet = a.dp.quiet;
    datapath::progress_loop(
        start,
        Duration::from_secs(1),
        || {
            stop.load(std::sync::atomic::Ordering::Relaxed)
                || deadline.is_some_and(|d| Instant::now() >= d)
        },
        |t| {
            let c = prog.counters();
            if !quiet {
                eprintln!(
                    "impair {:>5.1}s  matched {:>10}  dropped {:>10}",
                    t.as_secs_f64(),
                    c.matched_pass + c.dropped - last.matched_pass - last.dropped,
                    c.dropped - last.dropped
                );
            }
            last = c;
        },
    );
    let c = prog.counters();
    Ok(ImpairReport {
        iface: a.dp.iface.clone(),
        loss_percent: a.loss,
        matched: c.matched_pass + c.dropped,
        dropped: c.dropped,
        elapsed_s: start.elapsed().as_secs_f64(),
    })
}

pub fn print_text(r: &ImpairReport) {
    println!(
        "skiff impair on {}: dropped {} of {} matching frames ({:.2}%, asked {}%) in {:.1} s",
        r.iface,
        r.dropped,
        r.matched,
        if r.matched > 0 {
            100.0 * r.dropped as f64 / r.matched as f64
        } else {
            0.0
        },
        r.loss_percent,
        r.elapsed_s
    );
}

#[cfg(test)]
mod tests {
    use super::threshold;

    #[test]
    fn thresholds() {
        assert_eq!(threshold(0.0).unwrap(), 0);
        assert_eq!(threshold(50.0).unwrap(), 1 << 31);
        assert_eq!(threshold(100.0).unwrap(), u32::MAX);
        assert!(threshold(-1.0).is_err() && threshold(101.0).is_err());
        assert!(threshold(f64::NAN).is_err());
    }
}
