//! What `gen` and `sink` share: interface and queue checks, XDP attach, socket set-up,
//! poller threads pinned to CPUs, the once-a-second progress line.

use std::{
    path::PathBuf,
    sync::{atomic::AtomicBool, Arc},
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use skiff_engine::{
    netdev,
    xdp::{self, ModeChoice, XdpAttachment},
    xsk::{XskConfig, XskQueue},
};

use crate::common::{check_cpus, parse_list};

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum XdpModeArg {
    /// Driver (native) mode, SKB mode if the driver has no XDP (reported).
    Auto,
    /// Driver mode or fail.
    Driver,
    /// SKB (generic) mode.
    Skb,
}

impl From<XdpModeArg> for ModeChoice {
    fn from(m: XdpModeArg) -> Self {
        match m {
            XdpModeArg::Auto => ModeChoice::Auto,
            XdpModeArg::Driver => ModeChoice::Driver,
            XdpModeArg::Skb => ModeChoice::Skb,
        }
    }
}

/// Options common to the data-path subcommands.
#[derive(Debug, Args, Clone)]
pub struct DataPathArgs {
    /// Network interface (in this namespace).
    #[arg(long)]
    pub iface: String,
    /// Queues to use, e.g. `0`, `0-3`, `0,2`.
    #[arg(long)]
    pub queues: Option<String>,
    /// CPUs to pin the queue pollers to, in queue order (wraps around), e.g. `1` or `0-1`.
    /// Without it, pollers are not pinned.
    #[arg(long)]
    pub cpus: Option<String>,
    /// XDP attach mode.
    #[arg(long, value_enum, default_value_t = XdpModeArg::Auto)]
    pub xdp_mode: XdpModeArg,
    /// Replace an XDP program another tool attached through netlink.
    #[arg(long)]
    pub force: bool,
    /// Bind in copy mode without trying zero-copy first.
    #[arg(long)]
    pub copy: bool,
    /// UMEM frame size: 2048 or 4096.
    #[arg(long, default_value_t = 2048)]
    pub frame_size: u32,
    /// Entries in each of a queue's four rings (fill, RX, TX, completion; a power of two,
    /// 64 to 32768); the UMEM gets twice as many frames. What `ethtool -G` sets on a NIC:
    /// a receiver rides out a stall of ring-size / rate (2048 at 100 kpps: 20 ms) before
    /// the kernel drops for an empty fill ring.
    #[arg(long, default_value_t = XskConfig::default().fill_size)]
    pub ring_size: u32,
    /// Print one JSON object at the end instead of text (progress still goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// No progress lines.
    #[arg(long)]
    pub quiet: bool,
    /// Create this file once the data path is ready (for scripts and `skiff demo`).
    #[arg(long, hide = true)]
    pub ready_file: Option<PathBuf>,
    /// Stop (as on Ctrl-C) when standard input reaches end-of-file: a parent that pipes
    /// our stdin takes us down with it when it dies, even by SIGKILL.
    #[arg(long, hide = true)]
    pub stop_on_stdin_eof: bool,
}

/// `--ring-size` bounds. Below 64 a ring cannot take one poll round's batch (64 frames,
/// the NAPI weight); above 32768 a queue's UMEM (2 × 32768 × 4096 B = 256 MiB) is more
/// memory than any stall it could cover is worth.
const MIN_RING: u32 = 64;
const MAX_RING: u32 = 32768;

/// Interface, queues and CPUs, checked.
pub struct Plan {
    pub ifname: String,
    pub queues: Vec<u32>,
    pub cpus: Vec<Option<usize>>,
    pub xsk: XskConfig,
}

impl DataPathArgs {
    /// The first of `--cpus`, checked: where a single-threaded tool on a kernel socket
    /// runs (no queues to plan).
    pub fn first_cpu(&self) -> Result<Option<usize>> {
        let Some(c) = &self.cpus else {
            return Ok(None);
        };
        let list = parse_list(c, "cpu")?;
        check_cpus(&list)?;
        Ok(list.first().map(|&x| x as usize))
    }

    /// Checks the interface, queues and CPUs. `default_all_queues`: without `--queues`, use
    /// every RX queue (the sink) instead of queue 0 (the generator).
    pub fn plan(&self, default_all_queues: bool) -> Result<Plan> {
        if !netdev::exists(&self.iface) {
            bail!(
                "unknown interface {:?} (not in this network namespace; `ip link` lists them)",
                self.iface
            );
        }
        let rxq = netdev::rx_queues(&self.iface);
        let txq = netdev::tx_queues(&self.iface);
        let count = rxq.max(txq).max(1);
        let queues = match &self.queues {
            Some(q) => parse_list(q, "queue")?,
            None if default_all_queues => (0..rxq.max(1)).collect(),
            None => vec![0],
        };
        if let Some(bad) = queues.iter().find(|q| **q >= count) {
            bail!(
                "queue {bad} is beyond {}'s {count} queue(s) (valid: 0..={})",
                self.iface,
                count - 1
            );
        }
        if let Some(bad) = queues.iter().find(|q| **q >= skiff_ebpf::MAX_QUEUES) {
            bail!(
                "queue {bad} is beyond skiff's {} XSKMAP entries",
                skiff_ebpf::MAX_QUEUES
            );
        }
        let cpus = match &self.cpus {
            Some(c) => {
                let list = parse_list(c, "cpu")?;
                check_cpus(&list)?;
                (0..queues.len())
                    .map(|i| Some(list[i % list.len()] as usize))
                    .collect()
            }
            None => vec![None; queues.len()],
        };
        if !(MIN_RING..=MAX_RING).contains(&self.ring_size) || !self.ring_size.is_power_of_two() {
            bail!(
                "--ring-size {} is not a power of two in {MIN_RING}..={MAX_RING}",
                self.ring_size
            );
        }
        let r = self.ring_size;
        let xsk = XskConfig {
            frames: 2 * r,
            frame_size: self.frame_size,
            fill_size: r,
            comp_size: r,
            rx_size: r,
            tx_size: r,
            try_zero_copy: !self.copy,
            ..XskConfig::default()
        };
        xsk.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(Plan {
            ifname: self.iface.clone(),
            queues,
            cpus,
            xsk,
        })
    }
}

/// Attaches skiff's XDP program with `cfg` once sockets are registered; opens a socket per
/// queue. On any error everything opened so far is dropped (program detached).
pub fn open(
    plan: &Plan,
    args: &DataPathArgs,
    filter: skiff_ebpf::Config,
) -> Result<(XdpAttachment, Vec<XskQueue>)> {
    let mut prog = xdp::attach(&plan.ifname, args.xdp_mode.into(), args.force)?;
    if let Some(reason) = prog.fallback_reason() {
        eprintln!(
            "skiff: XDP in SKB (generic) mode on {}: {reason}",
            plan.ifname
        );
    }
    let mut queues = Vec::with_capacity(plan.queues.len());
    for &q in &plan.queues {
        let sock = XskQueue::open(&plan.ifname, q, &plan.xsk)?;
        // One `sendto` in copy mode takes the whole TX ring instead of 32 frames (Linux ≥
        // 6.16); older kernels refuse the option, which only costs speed.
        let _ = sock.set_tx_skb_budget(plan.xsk.tx_size);
        prog.register_socket(q, sock.raw_fd())?;
        queues.push(sock);
    }
    prog.set_config(filter)?;
    Ok((prog, queues))
}

/// Writes the ready file, if asked.
pub fn signal_ready(args: &DataPathArgs) -> Result<()> {
    if let Some(p) = &args.ready_file {
        std::fs::write(p, b"ready\n").with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}

/// Runs `tick` every `period` until `done()` says so (callers fold their stop flag and
/// limits into `done`); `tick` receives the time since `start`.
pub fn progress_loop(
    start: Instant,
    period: Duration,
    mut done: impl FnMut() -> bool,
    mut tick: impl FnMut(Duration),
) {
    let mut next = start + period;
    while !done() {
        let now = Instant::now();
        if now >= next {
            tick(now - start);
            next += period;
        }
        std::thread::sleep(
            Duration::from_millis(20).min(next.saturating_duration_since(Instant::now())),
        );
    }
}

/// The process's stop flag; with `--stop-on-stdin-eof`, also set when stdin closes.
pub fn stop_for(args: &DataPathArgs) -> Arc<AtomicBool> {
    let stop = crate::common::stop_flag();
    if args.stop_on_stdin_eof {
        let s = stop.clone();
        let _ = std::thread::Builder::new()
            .name("skiff-stdin".into())
            .spawn(move || {
                let mut sink = [0u8; 256];
                let mut stdin = std::io::stdin();
                // Anything read is ignored; EOF or an error means the parent is gone.
                while matches!(std::io::Read::read(&mut stdin, &mut sink), Ok(n) if n > 0) {}
                s.store(true, std::sync::atomic::Ordering::SeqCst);
            });
    }
    stop
}
