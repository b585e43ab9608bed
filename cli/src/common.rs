//! Parsing of the CLI's values, pre-flight checks, signals, and the progress/summary
//! formatting shared by the subcommands.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, OnceLock,
    },
    time::Duration,
};

use anyhow::{bail, Context, Result};

/// Parses `0`, `0,2`, `0-3`, `0-1,4` into a sorted, de-duplicated list.
pub fn parse_list(s: &str, what: &str) -> Result<Vec<u32>> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim) {
        if part.is_empty() {
            bail!("bad {what} list {s:?}: empty element");
        }
        if let Some((a, b)) = part.split_once('-') {
            let a: u32 = a
                .trim()
                .parse()
                .with_context(|| format!("bad {what} list {s:?}: {a:?} is not a number"))?;
            let b: u32 = b
                .trim()
                .parse()
                .with_context(|| format!("bad {what} list {s:?}: {b:?} is not a number"))?;
            if b < a || b - a > 1024 {
                bail!("bad {what} range {part:?}");
            }
            out.extend(a..=b);
        } else {
            out.push(
                part.parse()
                    .with_context(|| format!("bad {what} list {s:?}: {part:?} is not a number"))?,
            );
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// Parses a duration: `10` (seconds), `10s`, `500ms`, `2m`, `1.5s`.
pub fn parse_duration(s: &str) -> Result<Duration> {
    let t = s.trim();
    let (num, mult) = if let Some(n) = t.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = t.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = t.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (t, 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("bad duration {s:?} (use e.g. 10, 10s, 500ms, 2m)"))?;
    if !v.is_finite() || v <= 0.0 || v * mult > 7.0 * 86400.0 {
        bail!("bad duration {s:?}: must be positive and at most a week");
    }
    Ok(Duration::from_secs_f64(v * mult))
}

/// A number with an optional k/M/G suffix (decimal: k = 1000), finite and ≥ 0.
fn parse_scaled(t: &str) -> Option<f64> {
    let (num, mult) = match t.chars().last() {
        Some('k') | Some('K') => (&t[..t.len() - 1], 1e3),
        Some('M') | Some('m') => (&t[..t.len() - 1], 1e6),
        Some('G') | Some('g') => (&t[..t.len() - 1], 1e9),
        _ => (t, 1.0),
    };
    let v: f64 = num.trim().parse().ok()?;
    (v.is_finite() && v >= 0.0).then_some(v * mult)
}

/// Parses a packet rate: `100000`, `100k`, `100kpps`, `1.5M`, `1.5Mpps`. (Bit rates and
/// L1/L2 rates arrive with the qdisc-based rate control.)
pub fn parse_pps(s: &str) -> Result<f64> {
    let t = s.trim();
    let v = parse_scaled(t.strip_suffix("pps").unwrap_or(t)).ok_or_else(|| {
        anyhow::anyhow!("bad rate {s:?} (packets per second: e.g. 100000, 100k, 1.5Mpps)")
    })?;
    if v <= 0.0 {
        bail!("bad rate {s:?}: must be positive");
    }
    // 64-byte frames at 800 Gbit/s: no link carries more than ~1.2 Gpps.
    if v > 1.2e9 {
        bail!(
            "rate {s:?} is above what any link can carry (~1.2 Gpps at 800 Gbit/s, 64-byte frames)"
        );
    }
    Ok(v)
}

/// Parses a count: `1000`, `10k`, `2M` (0 is a valid number; callers decide if it is useful).
pub fn parse_count(s: &str) -> Result<u64> {
    let v = parse_scaled(s.trim())
        .ok_or_else(|| anyhow::anyhow!("bad count {s:?} (e.g. 1000, 10k, 2M)"))?;
    if v.fract() != 0.0 || v > u64::MAX as f64 {
        bail!("bad count {s:?}: not a whole number");
    }
    Ok(v as u64)
}

/// Parses a size in bytes: `1048576`, `64K`, `4M`, `1G`. K, M and G are 1024-based, as in
/// iperf3's `-n` and `-w` and the kernel's buffer sysctls: `--bytes 1G` is 2^30 bytes. (Counts
/// of packets, [`parse_count`], are 1000-based.)
pub fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim();
    let (num, shift) = match t.chars().last() {
        Some('k') | Some('K') => (&t[..t.len() - 1], 10),
        Some('m') | Some('M') => (&t[..t.len() - 1], 20),
        Some('g') | Some('G') => (&t[..t.len() - 1], 30),
        _ => (t, 0),
    };
    num.trim()
        .parse::<u64>()
        .ok()
        .and_then(|v| v.checked_mul(1 << shift))
        .ok_or_else(|| anyhow::anyhow!("bad size {s:?} (bytes: e.g. 1048576, 64K, 4M, 1G)"))
}

/// Fails with the capabilities this process lacks, named.
pub fn require_caps() -> Result<()> {
    let missing = skiff_engine::netdev::missing_caps();
    if !missing.is_empty() {
        bail!(
            "missing capabilities {}: AF_XDP and XDP need CAP_NET_ADMIN, CAP_NET_RAW and CAP_BPF (run as root, e.g. with sudo)",
            missing.join(", ")
        );
    }
    Ok(())
}

static STOP: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// The process-wide stop flag, set by SIGINT/SIGTERM (installed on first use).
pub fn stop_flag() -> Arc<AtomicBool> {
    STOP.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        let f = flag.clone();
        // A second signal while stopping is ignored: teardown always runs to the end.
        let _ = ctrlc::set_handler(move || f.store(true, Ordering::SeqCst));
        flag
    })
    .clone()
}

/// Human-readable rate: 1.23 Mpps, 456.7 kpps.
pub fn fmt_rate(v: f64, unit: &str) -> String {
    let (d, p) = if v >= 1e9 {
        (1e9, "G")
    } else if v >= 1e6 {
        (1e6, "M")
    } else if v >= 1e3 {
        (1e3, "k")
    } else {
        (1.0, "")
    };
    format!("{:.2} {p}{unit}", v / d)
}

/// bit/s at L2 (frame incl. FCS) and L1 (plus preamble, SFD, inter-frame gap) of `pkts`
/// frames of `bytes` bytes in all (no FCS) over `secs`; zero for no time.
pub fn bitrates(pkts: u64, bytes: u64, secs: f64) -> (f64, f64) {
    if secs <= 0.0 {
        return (0.0, 0.0);
    }
    let l2 = (bytes + pkts * skiff_engine::wire::FCS_LEN as u64) as f64 * 8.0 / secs;
    let l1 = l2 + (pkts * skiff_engine::wire::L1_OVERHEAD as u64) as f64 * 8.0 / secs;
    (l2, l1)
}

/// The first line of a text report: where, how many queues, which XDP and bind mode.
pub fn print_header(tool: &str, iface: &str, queues: usize, xdp_mode: &str, zero_copy: bool) {
    let bind = if zero_copy { "zero-copy" } else { "copy mode" };
    println!("skiff {tool} on {iface} ({queues} queue(s), XDP {xdp_mode} mode, {bind}):");
}

/// "all N accounted for", or the whole breakdown when it does not add up.
pub fn fmt_frames(f: &skiff_engine::xsk::FrameAccounting) -> String {
    if f.adds_up() {
        format!("all {} accounted for", f.total)
    } else {
        format!("NOT accounted: {f:?}")
    }
}

/// Pins the calling thread to `cpu` if given. Returns whether it worked.
pub fn pin(cpu: Option<usize>) -> bool {
    match cpu {
        Some(id) => core_affinity::set_for_current(core_affinity::CoreId { id }),
        None => true,
    }
}

/// Checks CPU ids against the machine's.
pub fn check_cpus(cpus: &[u32]) -> Result<()> {
    let n = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1) as u32;
    if let Some(bad) = cpus.iter().find(|c| **c >= n) {
        bail!(
            "cpu {bad} does not exist (this machine has cpus 0..={})",
            n - 1
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists() {
        assert_eq!(parse_list("0", "q").unwrap(), vec![0]);
        assert_eq!(parse_list("0-2,5,1", "q").unwrap(), vec![0, 1, 2, 5]);
        assert!(parse_list("", "q").is_err());
        assert!(parse_list("a", "q").is_err());
        assert!(parse_list("3-1", "q").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        for bad in ["", "0", "-1", "abc", "10x", "nan", "1e9"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rates_and_counts() {
        assert_eq!(parse_pps("100k").unwrap(), 100_000.0);
        assert_eq!(parse_pps("1.5Mpps").unwrap(), 1_500_000.0);
        assert_eq!(parse_pps("250").unwrap(), 250.0);
        for bad in ["0", "-5", "fast", "5G", "1e12"] {
            assert!(parse_pps(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_count("10k").unwrap(), 10_000);
        assert!(parse_count("1.5").is_err());
    }

    #[test]
    fn sizes_are_1024_based() {
        assert_eq!(parse_size("1G").unwrap(), 1 << 30);
        assert_eq!(parse_size("128K").unwrap(), 128 << 10);
        assert_eq!(parse_size("4m").unwrap(), 4 << 20);
        assert_eq!(parse_size("1000000").unwrap(), 1_000_000);
        for bad in ["1.5G", "-1", "G", "4T", ""] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bit_rates() {
        // 1 Mpps of 60-byte frames: 64 B at L2 = 512 Mbit/s, + 20 B at L1 = 672 Mbit/s.
        let (l2, l1) = bitrates(1_000_000, 60_000_000, 1.0);
        assert_eq!(l2, 512e6);
        assert_eq!(l1, 672e6);
    }
}

/// `--pcap-out FILE [--pcap-format pcap|pcapng] [--pcap-sample all|1/N|first:N]`: what
/// `gen` sent or `sink` received, written by the poller threads (tcpdump cannot see
/// AF_XDP TX, and AF_XDP RX bypasses the kernel's taps).
#[derive(Debug, clap::Args, Clone)]
#[command(next_help_heading = "Capture")]
pub struct PcapOutArgs {
    /// Write the frames sent (gen) or received (sink) to this pcap (or .pcapng) file.
    #[arg(long)]
    pub pcap_out: Option<std::path::PathBuf>,
    /// pcap or pcapng. Default: from the file name (.pcapng), else pcap.
    #[arg(long)]
    pub pcap_format: Option<String>,
    /// Which frames to write: all | 1/N (one in N) | first:N.
    #[arg(long, default_value = "all")]
    pub pcap_sample: String,
}

impl PcapOutArgs {
    /// Creates the capture file, if one was asked for.
    pub fn open(&self) -> Result<Option<skiff_engine::pcap::SharedPcap>> {
        use skiff_engine::pcap::{PcapFormat, Sample, SharedPcap};
        let Some(path) = &self.pcap_out else {
            return Ok(None);
        };
        let format = match &self.pcap_format {
            Some(f) => PcapFormat::parse(f)
                .with_context(|| format!("bad --pcap-format {f:?}: pcap or pcapng"))?,
            None => PcapFormat::from_path(path),
        };
        let sample = Sample::parse(&self.pcap_sample)
            .map_err(|e| anyhow::anyhow!("bad --pcap-sample: {e}"))?;
        Ok(Some(SharedPcap::create(path, format, sample)?))
    }
}

/// The summary's capture line: "pcap FILE (FORMAT): wrote W of N frames WHAT".
pub fn print_pcap(p: &Option<skiff_engine::pcap::PcapSummary>, what: &str) {
    if let Some(p) = p {
        println!(
            "  pcap {} ({}): wrote {} of {} frames {what}",
            p.path, p.format, p.written, p.offered
        );
    }
}
