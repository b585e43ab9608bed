//! Loading and attaching skiff's XDP program (aya), and talking to its maps.
//!
//! The program is attached through a **bpf_link** only: the link is a file descriptor of
//! this process, so the program goes away when the process dies, `kill -9` included. aya
//! falls back to a netlink attachment when `bpf_link_create` says EINVAL (old kernels); such
//! a program would outlive a crash, so skiff detects that case, detaches and refuses.
//!
//! The same object's tc programs are attached by [`attach_tc_egress`], for `skiff impair
//! --egress`, through tcx links (Linux ≥ 6.6), which also go away with the process.

use std::os::fd::RawFd;

use aya::{
    maps::{Array, CpuMap, MapData, PerCpuArray, XskMap},
    programs::{
        links::FdLink, tc::TcAttachOptions, LinkOrder, ProgramError, SchedClassifier, TcAttachType,
        Xdp, XdpMode as AyaMode,
    },
    Ebpf, EbpfLoader,
};
use skiff_ebpf::{Config, Counter, Impair, Outcome};

use crate::{error::XdpError, netdev};

pub use skiff_ebpf::{flags, Action};

/// Which attach mode to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ModeChoice {
    /// Driver (native) mode, falling back to SKB mode where the driver has no XDP.
    #[default]
    Auto,
    /// Driver mode or fail.
    Driver,
    /// SKB (generic) mode.
    Skb,
}

/// The mode actually attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AttachedMode {
    /// Native, in the driver.
    Driver,
    /// Generic, after skb allocation.
    Skb,
}

impl AttachedMode {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            AttachedMode::Driver => "driver",
            AttachedMode::Skb => "skb",
        }
    }
}

/// XDP program counters summed over CPUs, by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct XdpCounters {
    /// Matched and redirected to a socket.
    pub redirected: u64,
    /// Did not match: to the kernel.
    pub passed: u64,
    /// Matched, no socket on that queue: to the kernel.
    pub redirect_failed: u64,
    /// Malformed header: to the kernel.
    pub parse_error: u64,
    /// Matched, dropped (action drop).
    pub dropped: u64,
    /// Matched, passed (action pass; or action reflect and not a probe).
    pub matched_pass: u64,
    /// Matched probes reflected with XDP_TX (action reflect).
    pub reflected: u64,
    /// Matched, delivered late (action pass with the reorder impairment).
    pub reordered: u64,
}

/// Which CPU delivers the frames `--reorder` delays: in XDP its cpumap kthread, in tc
/// egress its ingress backlog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReorderCpu {
    /// The next CPU: it works while this one goes on, so a delayed frame typically lands
    /// a few to some tens of frames late (docs/IMPAIR.md has measurements).
    #[default]
    Next,
    /// This CPU: it gets to the frame only after the current softirq (XDP: after whatever
    /// this CPU runs next), so delayed frames come later and in bursts (XDP), or hardly
    /// late at all when the sender sends from process context (tc egress).
    Same,
}

impl ReorderCpu {
    fn offset(self) -> u32 {
        match self {
            ReorderCpu::Next => 1,
            ReorderCpu::Same => 0,
        }
    }
}

/// The CPUs online now (`/sys/devices/system/cpu/online`).
pub fn online_cpus() -> Result<Vec<u32>, XdpError> {
    aya::util::online_cpus().map_err(|(path, e)| XdpError::Map {
        map: "skiff_cpus",
        message: format!("reading {path}: {e}"),
    })
}

/// cpumap queue size per CPU: 2048 frames. A frame that finds the queue full is dropped
/// by the kernel (counted only in the xdp_cpumap_enqueue tracepoint), which would turn a
/// delay into a loss; the kthread takes the queue in batches of 8 (CPUMAP_BATCH in
/// kernel/bpf/cpumap.c), and 2048 holds 32 full NAPI polls (budget 64) of redirected
/// frames, far more than a `--reorder` share of a 64-frame poll. The kernel's limit is
/// 16384 (cpu_map_update_elem).
const CPUMAP_QUEUE: u32 = 2048;

/// The maps both kinds of attachment talk to.
struct Maps {
    config: Array<MapData, [u8; 16]>,
    impair: Array<MapData, [u8; 16]>,
    counters: PerCpuArray<MapData, [u8; 16]>,
}

impl Maps {
    fn take(ebpf: &mut Ebpf) -> Result<Self, XdpError> {
        Ok(Maps {
            config: Array::try_from(take(ebpf, skiff_ebpf::CONFIG_MAP)?)
                .map_err(map_err("skiff_config"))?,
            impair: Array::try_from(take(ebpf, skiff_ebpf::IMPAIR_MAP)?)
                .map_err(map_err("skiff_impair"))?,
            counters: PerCpuArray::try_from(take(ebpf, skiff_ebpf::COUNTERS_MAP)?)
                .map_err(map_err("skiff_counters"))?,
        })
    }

    fn set_config(&mut self, cfg: Config) -> Result<(), XdpError> {
        self.config
            .set(0, cfg.to_bytes(), 0)
            .map_err(map_err("skiff_config"))
    }

    fn set_impair(&mut self, imp: Impair) -> Result<(), XdpError> {
        self.impair
            .set(0, imp.to_bytes(), 0)
            .map_err(map_err("skiff_impair"))
    }

    fn counters(&self) -> XdpCounters {
        let mut c = XdpCounters::default();
        for o in Outcome::ALL {
            let total = self
                .counters
                .get(&(o as u32), 0)
                .map(|per_cpu| per_cpu.iter().map(|b| Counter::from_bytes(b).packets).sum())
                .unwrap_or(0);
            match o {
                Outcome::Redirected => c.redirected = total,
                Outcome::Passed => c.passed = total,
                Outcome::RedirectFailed => c.redirect_failed = total,
                Outcome::ParseError => c.parse_error = total,
                Outcome::Dropped => c.dropped = total,
                Outcome::MatchedPass => c.matched_pass = total,
                Outcome::Reflected => c.reflected = total,
                Outcome::Reordered => c.reordered = total,
            }
        }
        c
    }
}

fn map_err(map: &'static str) -> impl Fn(aya::maps::MapError) -> XdpError {
    move |e| XdpError::Map {
        map,
        message: chain(&e),
    }
}

fn take(ebpf: &mut Ebpf, name: &'static str) -> Result<aya::maps::Map, XdpError> {
    ebpf.take_map(name).ok_or_else(|| XdpError::Map {
        map: "object",
        message: format!("no map {name}"),
    })
}

/// Parses the object and creates its maps, the cpumap sized to the possible CPUs (the
/// object's 64 slots could exceed a small kernel's NR_CPUS, or miss CPUs on a big machine).
fn load_object() -> Result<Ebpf, XdpError> {
    let mut loader = EbpfLoader::new();
    if let Ok(n) = aya::util::nr_cpus() {
        loader.map_max_entries(skiff_ebpf::CPUS_MAP, n as u32);
    }
    loader
        .load(skiff_ebpf::OBJECT)
        .map_err(|e| XdpError::Load(chain(&e)))
}

/// The program, attached to one interface. Dropping it detaches (closes the link).
pub struct XdpAttachment {
    ifname: String,
    mode: AttachedMode,
    fallback_reason: Option<String>,
    maps: Maps,
    xsks: XskMap<MapData>,
    cpus: CpuMap<MapData>,
    // Field order matters: the link is dropped (program detached) before the object.
    _link: FdLink,
    _ebpf: Ebpf,
}

fn errno_of(e: &ProgramError) -> Option<i32> {
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = src {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return io.raw_os_error();
        }
        src = s.source();
    }
    None
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        s.push_str(": ");
        s.push_str(&x.to_string());
        src = x.source();
    }
    s
}

/// Detaches whatever XDP program `ifname` has through netlink (`ip link set ... xdp off`),
/// for `--force`. Programs held by a bpf_link are not affected (the kernel refuses).
pub fn force_detach_netlink(ifname: &str) {
    for kind in ["xdpgeneric", "xdpdrv", "xdp"] {
        let _ = std::process::Command::new("ip")
            .args(["link", "set", "dev", ifname, kind, "off"])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// Loads the program, attaches it to `ifname` (driver mode first in `Auto`) and returns it
/// with the filter disabled: call [`XdpAttachment::set_config`] once sockets are in place.
pub fn attach(ifname: &str, choice: ModeChoice, force: bool) -> Result<XdpAttachment, XdpError> {
    if !netdev::exists(ifname) {
        return Err(XdpError::NoSuchInterface {
            ifname: ifname.to_owned(),
        });
    }
    let mut ebpf = load_object()?;
    let prog: &mut Xdp = ebpf
        .program_mut(skiff_ebpf::PROGRAM_NAME)
        .ok_or_else(|| {
            XdpError::Load(format!(
                "no program {} in the object",
                skiff_ebpf::PROGRAM_NAME
            ))
        })?
        .try_into()
        .map_err(|e: ProgramError| XdpError::Load(chain(&e)))?;
    prog.load().map_err(|e| XdpError::Load(chain(&e)))?;

    let tries: &[(AttachedMode, AyaMode)] = match choice {
        ModeChoice::Auto => &[
            (AttachedMode::Driver, AyaMode::Driver),
            (AttachedMode::Skb, AyaMode::Skb),
        ],
        ModeChoice::Driver => &[(AttachedMode::Driver, AyaMode::Driver)],
        ModeChoice::Skb => &[(AttachedMode::Skb, AyaMode::Skb)],
    };
    let mut fallback_reason = None;
    let mut attached = None;
    let mut forced = false;
    let mut i = 0;
    while i < tries.len() {
        let (mode, aya_mode) = tries[i];
        match prog.attach(ifname, aya_mode) {
            Ok(id) => {
                attached = Some((mode, id));
                break;
            }
            Err(e) => {
                let errno = errno_of(&e);
                match errno {
                    Some(libc::EBUSY) | Some(libc::EEXIST) if force && !forced => {
                        forced = true;
                        force_detach_netlink(ifname);
                        continue; // same mode again
                    }
                    Some(libc::EBUSY) | Some(libc::EEXIST) if forced => {
                        return Err(XdpError::HeldByLink {
                            ifname: ifname.to_owned(),
                        })
                    }
                    Some(libc::EBUSY) | Some(libc::EEXIST) => {
                        return Err(XdpError::AlreadyAttached {
                            ifname: ifname.to_owned(),
                        })
                    }
                    Some(libc::ERANGE) if mode == AttachedMode::Driver => {
                        return Err(XdpError::PeerMtuTooLarge {
                            ifname: ifname.to_owned(),
                        })
                    }
                    Some(libc::ENOSPC) if mode == AttachedMode::Driver => {
                        return Err(XdpError::TooFewRxQueues {
                            ifname: ifname.to_owned(),
                        })
                    }
                    Some(libc::EOPNOTSUPP)
                        if mode == AttachedMode::Driver && choice == ModeChoice::Auto =>
                    {
                        fallback_reason = Some(format!("{ifname}'s driver has no native XDP"));
                    }
                    _ if choice == ModeChoice::Auto && mode == AttachedMode::Driver => {
                        fallback_reason = Some(format!("driver mode refused: {}", chain(&e)));
                    }
                    _ => {
                        return Err(XdpError::Attach {
                            ifname: ifname.to_owned(),
                            mode: mode.name(),
                            message: chain(&e),
                        })
                    }
                }
                i += 1;
            }
        }
    }
    let Some((mode, id)) = attached else {
        return Err(XdpError::Attach {
            ifname: ifname.to_owned(),
            mode: "any",
            message: fallback_reason.unwrap_or_else(|| "no mode worked".into()),
        });
    };
    let link = prog.take_link(id).map_err(|e| XdpError::Load(chain(&e)))?;
    let link = match FdLink::try_from(link) {
        Ok(l) => l,
        Err(_) => {
            // aya attached through netlink: undo it, it would survive a crash.
            force_detach_netlink(ifname);
            return Err(XdpError::NoBpfLink {
                ifname: ifname.to_owned(),
            });
        }
    };

    let maps = Maps::take(&mut ebpf)?;
    let xsks =
        XskMap::try_from(take(&mut ebpf, skiff_ebpf::XSKS_MAP)?).map_err(map_err("skiff_xsks"))?;
    let cpus =
        CpuMap::try_from(take(&mut ebpf, skiff_ebpf::CPUS_MAP)?).map_err(map_err("skiff_cpus"))?;
    Ok(XdpAttachment {
        ifname: ifname.to_owned(),
        mode,
        fallback_reason,
        maps,
        xsks,
        cpus,
        _link: link,
        _ebpf: ebpf,
    })
}

impl std::fmt::Debug for XdpAttachment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XdpAttachment")
            .field("ifname", &self.ifname)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl XdpAttachment {
    /// The interface.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }
    /// Driver or SKB.
    pub fn mode(&self) -> AttachedMode {
        self.mode
    }
    /// Why driver mode was not used, when SKB mode was the fallback.
    pub fn fallback_reason(&self) -> Option<&str> {
        self.fallback_reason.as_deref()
    }

    /// Writes the filter (and enables it if `flags::ENABLED` is set).
    pub fn set_config(&mut self, cfg: Config) -> Result<(), XdpError> {
        self.maps.set_config(cfg)
    }

    /// The reorder impairment: matching frames (action pass, `flags::REORDER` in the
    /// config) are delivered late with probability `threshold / 2^32`, through the cpumap
    /// kthread that `cpu` picks. Fills the cpumap slot of every online CPU first (one
    /// kthread each, stopped when the attachment is dropped); a threshold of 0 fills none.
    pub fn set_reorder(&mut self, threshold: u32, cpu: ReorderCpu) -> Result<(), XdpError> {
        let ncpus = self.cpus.len();
        if threshold != 0 {
            for c in online_cpus()?.into_iter().filter(|&c| c < ncpus) {
                self.cpus
                    .set(c, CPUMAP_QUEUE, None, 0)
                    .map_err(|e| XdpError::Map {
                        map: "skiff_cpus",
                        message: format!("cpu {c}: {}", chain(&e)),
                    })?;
            }
        }
        self.maps.set_impair(Impair {
            reorder: threshold,
            cpu_offset: cpu.offset(),
            ncpus,
            reserved: 0,
        })
    }

    /// Puts a socket at `queue` of the XSKMAP.
    pub fn register_socket(&mut self, queue: u32, fd: RawFd) -> Result<(), XdpError> {
        if queue >= skiff_ebpf::MAX_QUEUES {
            return Err(XdpError::Map {
                map: "skiff_xsks",
                message: format!(
                    "queue {queue} beyond the map's {} entries",
                    skiff_ebpf::MAX_QUEUES
                ),
            });
        }
        // SAFETY-free: aya takes the fd by AsRawFd; the socket outlives the attachment's
        // use of it (the map entry is removed by the kernel when the socket closes).
        self.xsks.set(queue, fd, 0).map_err(|e| XdpError::Map {
            map: "skiff_xsks",
            message: chain(&e),
        })
    }

    /// Counters summed over CPUs.
    pub fn counters(&self) -> XdpCounters {
        self.maps.counters()
    }
}

/// The tc programs on one interface: [`skiff_ebpf::TC_EGRESS_PROGRAM`] on its egress and
/// [`skiff_ebpf::TC_INGRESS_PROGRAM`] on its ingress, each through a tcx link (attached
/// last, after any other tcx program). Dropping it detaches both.
pub struct TcAttachment {
    ifname: String,
    maps: Maps,
    // Field order matters: the links are dropped (programs detached) before the object.
    _links: Vec<FdLink>,
    _ebpf: Ebpf,
}

impl std::fmt::Debug for TcAttachment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcAttachment")
            .field("ifname", &self.ifname)
            .finish_non_exhaustive()
    }
}

/// Loads the object's tc programs and attaches them to `ifname` through tcx links (Linux
/// ≥ 6.6; no netlink fallback, for the same reason as XDP: a netlink filter would outlive
/// a crash). The filter is disabled until [`TcAttachment::set_config`].
pub fn attach_tc_egress(ifname: &str) -> Result<TcAttachment, XdpError> {
    if !netdev::exists(ifname) {
        return Err(XdpError::NoSuchInterface {
            ifname: ifname.to_owned(),
        });
    }
    let mut ebpf = load_object()?;
    let mut links = Vec::with_capacity(2);
    for (name, kind, what) in [
        (
            skiff_ebpf::TC_EGRESS_PROGRAM,
            TcAttachType::Egress,
            "tcx egress",
        ),
        (
            skiff_ebpf::TC_INGRESS_PROGRAM,
            TcAttachType::Ingress,
            "tcx ingress",
        ),
    ] {
        let attach_err = |message: String| XdpError::Attach {
            ifname: ifname.to_owned(),
            mode: what,
            message,
        };
        let prog: &mut SchedClassifier = ebpf
            .program_mut(name)
            .ok_or_else(|| XdpError::Load(format!("no program {name} in the object")))?
            .try_into()
            .map_err(|e: ProgramError| XdpError::Load(chain(&e)))?;
        prog.load().map_err(|e| XdpError::Load(chain(&e)))?;
        let id = prog
            .attach_with_options(
                ifname,
                kind,
                TcAttachOptions::TcxOrder(LinkOrder::default()),
            )
            .map_err(|e| {
                attach_err(format!(
                    "{} (tcx needs Linux 6.6 or later and CONFIG_NET_XGRESS)",
                    chain(&e)
                ))
            })?;
        let link = prog.take_link(id).map_err(|e| XdpError::Load(chain(&e)))?;
        links.push(
            FdLink::try_from(link)
                .map_err(|e| attach_err(format!("not a bpf_link: {}", chain(&e))))?,
        );
    }
    let maps = Maps::take(&mut ebpf)?;
    Ok(TcAttachment {
        ifname: ifname.to_owned(),
        maps,
        _links: links,
        _ebpf: ebpf,
    })
}

impl TcAttachment {
    /// The interface.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// Writes the filter and the loss threshold (the action is ignored: matching frames
    /// that are neither lost nor delayed pass).
    pub fn set_config(&mut self, cfg: Config) -> Result<(), XdpError> {
        self.maps.set_config(cfg)
    }

    /// The reorder impairment on egress: with `flags::REORDER` in the config, a matching
    /// frame is delayed with probability `threshold / 2^32`, bounced through the ingress
    /// backlog of the CPU that `cpu` picks among the online ones. That takes RPS on the
    /// interface with every online CPU in its `rps_cpus` (the caller's job: sysfs);
    /// without it the bounce goes through this CPU's backlog whatever `cpu` says.
    pub fn set_reorder(&mut self, threshold: u32, cpu: ReorderCpu) -> Result<(), XdpError> {
        let ncpus = u32::try_from(online_cpus()?.len()).unwrap_or(1);
        self.maps.set_impair(Impair {
            reorder: threshold,
            cpu_offset: cpu.offset(),
            ncpus,
            reserved: 0,
        })
    }

    /// Counters summed over CPUs (`passed`: not matching; `dropped`: lost; `reordered`:
    /// delayed; `matched_pass`: sent on time).
    pub fn counters(&self) -> XdpCounters {
        self.maps.counters()
    }
}
