//! Loading and attaching skiff's XDP program (aya), and talking to its maps.
//!
//! The program is attached through a **bpf_link** only: the link is a file descriptor of
//! this process, so the program goes away when the process dies, `kill -9` included. aya
//! falls back to a netlink attachment when `bpf_link_create` says EINVAL (old kernels); such
//! a program would outlive a crash, so skiff detects that case, detaches and refuses.

use std::os::fd::RawFd;

use aya::{
    maps::{Array, MapData, PerCpuArray, XskMap},
    programs::{links::FdLink, ProgramError, Xdp, XdpMode as AyaMode},
    Ebpf,
};
use skiff_ebpf::{Config, Counter, Outcome};

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
}

/// The program, attached to one interface. Dropping it detaches (closes the link).
pub struct XdpAttachment {
    ifname: String,
    mode: AttachedMode,
    fallback_reason: Option<String>,
    config: Array<MapData, [u8; 16]>,
    xsks: XskMap<MapData>,
    counters: PerCpuArray<MapData, [u8; 16]>,
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
    let mut ebpf = Ebpf::load(skiff_ebpf::OBJECT).map_err(|e| XdpError::Load(chain(&e)))?;
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

    let map_err = |map: &'static str| {
        move |e: aya::maps::MapError| XdpError::Map {
            map,
            message: chain(&e),
        }
    };
    let take = |ebpf: &mut Ebpf, name: &'static str| {
        ebpf.take_map(name).ok_or_else(|| XdpError::Map {
            map: "object",
            message: format!("no map {name}"),
        })
    };
    let config = Array::try_from(take(&mut ebpf, skiff_ebpf::CONFIG_MAP)?)
        .map_err(map_err("skiff_config"))?;
    let xsks =
        XskMap::try_from(take(&mut ebpf, skiff_ebpf::XSKS_MAP)?).map_err(map_err("skiff_xsks"))?;
    let counters = PerCpuArray::try_from(take(&mut ebpf, skiff_ebpf::COUNTERS_MAP)?)
        .map_err(map_err("skiff_counters"))?;
    Ok(XdpAttachment {
        ifname: ifname.to_owned(),
        mode,
        fallback_reason,
        config,
        xsks,
        counters,
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
        self.config
            .set(0, cfg.to_bytes(), 0)
            .map_err(|e| XdpError::Map {
                map: "skiff_config",
                message: chain(&e),
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
            }
        }
        c
    }
}
