//! `skiff impair`: random loss and reordering on one interface, in BPF (netem's `loss` and
//! `reorder`, for kernels built without sch_netem, such as this project's test machines).
//! How each works, what it can and cannot do, and measurements: `docs/IMPAIR.md`.
//!
//! - Ingress (default), skiff's XDP program: frames that match the filter are dropped with
//!   the given probability before anything else sees them (packet taps included), or
//!   delivered late through a cpumap kthread (`--reorder`); the rest go on to the kernel.
//! - `--egress`, the object's tc programs on tcx: the same to what the kernel on this side
//!   sends, which no XDP program here sees. A lost frame is freed by a redirect to no
//!   device, so the sender believes it went out; a delayed one is bounced through the
//!   ingress backlog of another CPU, steered there with RPS. While it runs the
//!   interface's `gso_max_segs` is 1, so that TCP hands over single segments (tcx egress
//!   runs before GSO segmentation), and with `--reorder` its `rps_cpus` list every CPU.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use serde::Serialize;
use skiff_engine::xdp::{self, ReorderCpu, XdpCounters};

use crate::{
    common::{parse_duration, parse_list, require_caps},
    datapath::{self, DataPathArgs},
};

#[derive(Debug, Args, Clone)]
pub struct ImpairArgs {
    #[command(flatten)]
    pub dp: DataPathArgs,
    /// Drop this share of matching frames at random, in percent (e.g. 1, 0.5).
    #[arg(long, default_value_t = 0.0)]
    pub loss: f64,
    /// Deliver this share of matching frames late, in percent: after frames that arrived
    /// after them (e.g. 5).
    #[arg(long, default_value_t = 0.0)]
    pub reorder: f64,
    /// Which CPU delivers the delayed frames (ingress: its cpumap kthread; egress: its
    /// backlog). `next`: a few to tens of frames late; `same`: ingress later and in
    /// bursts, egress hardly late at all.
    #[arg(long, value_enum, default_value_t = ReorderCpuArg::Next)]
    pub reorder_cpu: ReorderCpuArg,
    /// Impair what this side sends (tc egress, through tcx; Linux >= 6.6) instead of what
    /// it receives. Sets the interface's gso_max_segs to 1 while it runs (and, with
    /// --reorder, its rps_cpus to every CPU); run it in the namespace with `ip netns exec`,
    /// which mounts that namespace's sysfs.
    #[arg(long)]
    pub egress: bool,
    /// Only UDP/TCP frames to these destination ports (`LO-HI`); default every frame.
    #[arg(long)]
    pub ports: Option<String>,
    /// Stop after this long (e.g. 10s). Without it: until Ctrl-C.
    #[arg(long)]
    pub duration: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ReorderCpuArg {
    /// The next CPU, which works alongside this one.
    Next,
    /// This CPU, after the current softirq.
    Same,
}

impl From<ReorderCpuArg> for ReorderCpu {
    fn from(a: ReorderCpuArg) -> Self {
        match a {
            ReorderCpuArg::Next => ReorderCpu::Next,
            ReorderCpuArg::Same => ReorderCpu::Same,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ImpairReport {
    pub iface: String,
    /// "ingress" (XDP) or "egress" (tc).
    pub direction: &'static str,
    pub loss_percent: f64,
    pub reorder_percent: f64,
    /// Frames that matched the filter (dropped + delayed + passed on).
    pub matched: u64,
    /// Frames dropped by the impairment.
    pub dropped: u64,
    /// Frames delivered late by the impairment.
    pub reordered: u64,
    /// Frames that did not match the filter (egress: also those the filter never saw).
    pub passed: u64,
    pub elapsed_s: f64,
}

/// A percentage as the program's threshold: probability × 2^32, clamped.
fn threshold(flag: &str, percent: f64) -> Result<u32> {
    if !(0.0..=100.0).contains(&percent) || percent.is_nan() {
        bail!("--{flag} {percent}: a percentage from 0 to 100");
    }
    // 2^32 steps: the program compares a 32-bit random number with this threshold.
    Ok(((percent / 100.0) * 4_294_967_296.0).min(u32::MAX as f64) as u32)
}

/// The interface's gso_max_segs, set to 1 for `--egress` and put back when dropped: TCP
/// always builds GSO packets (sk_setup_caps adds NETIF_F_GSO), tcx egress sees them
/// before segmentation, and one lost or delayed 64 KiB packet is ~44 segments at once.
/// With gso_max_segs 1, tcp_tso_autosize caps every packet at one segment. Sockets
/// connected before the change keep their old limit (sk_gso_max_segs is set at connect).
struct GsoGuard {
    ifname: String,
    previous: u64,
}

fn gso_max_segs(ifname: &str) -> Result<u64> {
    let out = Command::new("ip")
        .args(["-d", "-j", "link", "show", "dev", ifname])
        .stdin(Stdio::null())
        .output()
        .context("running `ip` (install iproute2)")?;
    if !out.status.success() {
        bail!(
            "`ip -d link show dev {ifname}` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).context("`ip -j` output")?;
    v.get(0)
        .and_then(|l| l.get("gso_max_segs"))
        .and_then(|n| n.as_u64())
        .with_context(|| format!("`ip -d -j link show dev {ifname}` gave no gso_max_segs"))
}

fn set_gso_max_segs(ifname: &str, n: u64) -> Result<()> {
    let out = Command::new("ip")
        .args(["link", "set", "dev", ifname, "gso_max_segs", &n.to_string()])
        .stdin(Stdio::null())
        .output()
        .context("running `ip` (install iproute2)")?;
    if !out.status.success() {
        bail!(
            "`ip link set dev {ifname} gso_max_segs {n}` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

impl GsoGuard {
    fn single_segments(ifname: &str) -> Result<GsoGuard> {
        let previous = gso_max_segs(ifname)?;
        set_gso_max_segs(ifname, 1)?;
        Ok(GsoGuard {
            ifname: ifname.to_owned(),
            previous,
        })
    }
}

impl Drop for GsoGuard {
    fn drop(&mut self) {
        if self.previous != 1 {
            if let Err(e) = set_gso_max_segs(&self.ifname, self.previous) {
                eprintln!("skiff impair: restoring gso_max_segs: {e:#}");
            }
        }
    }
}

/// The interface's RPS masks, set to every online CPU for `--egress --reorder` and put
/// back when dropped: the egress program steers a delayed frame into the backlog of the
/// CPU it picks by giving it a hash that RPS maps to that CPU's index in the mask
/// (get_rps_cpu in net/core/dev.c); without RPS netif_rx uses this CPU's backlog.
struct RpsGuard {
    saved: Vec<(PathBuf, String)>,
}

/// `rps_cpus` format: a hex bitmap in comma-separated 32-bit words, most significant
/// first (bitmap_parse in lib/bitmap-str.c, as store_rps_map reads it).
fn cpu_mask(cpus: &[u32]) -> String {
    let top = cpus.iter().copied().max().unwrap_or(0);
    let mut words = vec![0u32; (top / 32 + 1) as usize];
    for &c in cpus {
        words[(c / 32) as usize] |= 1 << (c % 32);
    }
    words
        .iter()
        .rev()
        .map(|w| format!("{w:08x}"))
        .collect::<Vec<_>>()
        .join(",")
}

impl RpsGuard {
    fn every_cpu(ifname: &str) -> Result<RpsGuard> {
        let cpus = skiff_engine::xdp::online_cpus()?;
        let mask = cpu_mask(&cpus);
        let dir = Path::new("/sys/class/net").join(ifname).join("queues");
        let entries = std::fs::read_dir(&dir).with_context(|| {
            format!(
                "reading {}: is /sys this namespace's? (`ip netns exec NS` mounts it)",
                dir.display()
            )
        })?;
        let mut guard = RpsGuard { saved: Vec::new() };
        for e in entries {
            let e = e.with_context(|| format!("reading {}", dir.display()))?;
            if !e.file_name().to_string_lossy().starts_with("rx-") {
                continue;
            }
            let path = e.path().join("rps_cpus");
            let old = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            std::fs::write(&path, &mask)
                .with_context(|| format!("writing {mask} to {}", path.display()))?;
            guard.saved.push((path, old.trim().to_owned()));
        }
        if guard.saved.is_empty() {
            bail!("{} has no rx queues", dir.display());
        }
        Ok(guard)
    }
}

impl Drop for RpsGuard {
    fn drop(&mut self) {
        for (path, old) in &self.saved {
            if let Err(e) = std::fs::write(path, old) {
                eprintln!("skiff impair: restoring {}: {e}", path.display());
            }
        }
    }
}

/// Either attachment, behind the two calls the loop needs.
enum Attached {
    // Boxed: an attachment holds aya's object, some 800 bytes (clippy::large_enum_variant).
    Xdp(Box<xdp::XdpAttachment>),
    Tc {
        // Boxed for the same reason.
        prog: Box<xdp::TcAttachment>,
        // Put back after the programs are detached.
        _gso: GsoGuard,
        _rps: Option<RpsGuard>,
    },
}

impl Attached {
    fn counters(&self) -> XdpCounters {
        match self {
            Attached::Xdp(p) => p.counters(),
            Attached::Tc { prog, .. } => prog.counters(),
        }
    }
}

pub fn run(a: ImpairArgs) -> Result<ImpairReport> {
    require_caps()?;
    let loss = threshold("loss", a.loss)?;
    let reorder = threshold("reorder", a.reorder)?;
    let duration = a.duration.as_deref().map(parse_duration).transpose()?;
    let (mut flags, lo, hi) = match &a.ports {
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
    if reorder != 0 {
        flags |= skiff_ebpf::flags::REORDER;
    }
    let cfg = skiff_ebpf::Config {
        flags,
        port_lo: lo,
        port_hi: hi,
        action: skiff_ebpf::Action::Pass as u32,
        loss,
    };
    let prog = if a.egress {
        let gso = GsoGuard::single_segments(&a.dp.iface)?;
        let rps = (reorder != 0)
            .then(|| RpsGuard::every_cpu(&a.dp.iface))
            .transpose()?;
        let mut p = xdp::attach_tc_egress(&a.dp.iface)?;
        p.set_reorder(reorder, a.reorder_cpu.into())?;
        p.set_config(cfg)?;
        Attached::Tc {
            prog: Box::new(p),
            _gso: gso,
            _rps: rps,
        }
    } else {
        let mut p = xdp::attach(&a.dp.iface, a.dp.xdp_mode.into(), a.dp.force)?;
        p.set_reorder(reorder, a.reorder_cpu.into())?;
        p.set_config(cfg)?;
        Attached::Xdp(Box::new(p))
    };
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
                    "impair {:>5.1}s  matched {:>10}  dropped {:>10}  reordered {:>10}",
                    t.as_secs_f64(),
                    matched(&c) - matched(&last),
                    c.dropped - last.dropped,
                    c.reordered - last.reordered
                );
            }
            last = c;
        },
    );
    let c = prog.counters();
    Ok(ImpairReport {
        iface: a.dp.iface.clone(),
        direction: if a.egress { "egress" } else { "ingress" },
        loss_percent: a.loss,
        reorder_percent: a.reorder,
        matched: matched(&c),
        dropped: c.dropped,
        reordered: c.reordered,
        passed: c.passed,
        elapsed_s: start.elapsed().as_secs_f64(),
    })
}

/// Frames the filter matched: dropped, delayed or passed on.
fn matched(c: &XdpCounters) -> u64 {
    c.matched_pass + c.dropped + c.reordered
}

pub fn print_text(r: &ImpairReport) {
    let pct = |n: u64| {
        if r.matched > 0 {
            100.0 * n as f64 / r.matched as f64
        } else {
            0.0
        }
    };
    println!(
        "skiff impair on {} ({}): of {} matching frames dropped {} ({:.2}%, asked {}%), \
         delivered late {} ({:.2}%, asked {}%) in {:.1} s",
        r.iface,
        r.direction,
        r.matched,
        r.dropped,
        pct(r.dropped),
        r.loss_percent,
        r.reordered,
        pct(r.reordered),
        r.reorder_percent,
        r.elapsed_s
    );
}

#[cfg(test)]
mod tests {
    use super::{cpu_mask, threshold};

    #[test]
    fn rps_masks() {
        assert_eq!(cpu_mask(&[0, 1]), "00000003");
        assert_eq!(cpu_mask(&[0]), "00000001");
        assert_eq!(cpu_mask(&[0, 33]), "00000002,00000001");
        assert_eq!(cpu_mask(&[31]), "80000000");
    }

    #[test]
    fn thresholds() {
        assert_eq!(threshold("loss", 0.0).unwrap(), 0);
        assert_eq!(threshold("loss", 50.0).unwrap(), 1 << 31);
        assert_eq!(threshold("loss", 100.0).unwrap(), u32::MAX);
        assert!(threshold("loss", -1.0).is_err() && threshold("loss", 101.0).is_err());
        assert!(threshold("reorder", f64::NAN).is_err());
    }
}
