//! skiff's XDP program, embedded, and Rust mirrors of its maps.
//!
//! The program itself is C (`skiff.bpf.c`, built by clang in `build.rs`; see
//! `ARCHITECTURE.md` for why not Rust). It parses Ethernet (one VLAN tag), IPv4 and IPv6
//! and redirects to `skiff_xsks[rx_queue_index]` only the frames that match the filter in
//! `skiff_config`; all else is `XDP_PASS`. Loading and attaching is the engine's job
//! (`skiff_engine::xdp`, through aya); this crate only carries bytes and layouts.
//!
//! The same object carries the test impairments of `skiff impair` (`docs/IMPAIR.md`): loss
//! and reordering in XDP on an interface's ingress, and two tc programs
//! ([`TC_EGRESS_PROGRAM`], [`TC_INGRESS_PROGRAM`], attached with tcx) that do the same to
//! what the kernel on that side sends.
//!
//! The mirrors are plain byte arrays on the map side (aya's `Pod` is implemented for
//! `[u8; N]`), so this crate needs no `unsafe`: [`Config::to_bytes`] and
//! [`Counter::from_bytes`] spell out the layout field by field.

/// Name of the program section's function, as aya looks it up.
pub const PROGRAM_NAME: &str = "skiff_xdp";
/// XSKMAP: rx queue index → AF_XDP socket.
pub const XSKS_MAP: &str = "skiff_xsks";
/// ARRAY[1] of [`Config`].
pub const CONFIG_MAP: &str = "skiff_config";
/// PERCPU_ARRAY[[`Outcome::COUNT`]] of [`Counter`].
pub const COUNTERS_MAP: &str = "skiff_counters";
/// XSKMAP size: queues 0..64. More than any veth here and than most NICs expose per port.
pub const MAX_QUEUES: u32 = 64;
/// The tc program for an interface's egress (tcx): loss and reordering of what the kernel
/// sends (`skiff impair --egress`).
pub const TC_EGRESS_PROGRAM: &str = "skiff_tc_egress";
/// Its partner on the same interface's ingress: sends a frame that [`TC_EGRESS_PROGRAM`]
/// delayed (bounced into the ingress backlog) back out.
pub const TC_INGRESS_PROGRAM: &str = "skiff_tc_ingress";
/// ARRAY[1] of [`Impair`].
pub const IMPAIR_MAP: &str = "skiff_impair";
/// CPUMAP: CPU → its cpumap kthread, which delivers the frames `--reorder` delays.
pub const CPUS_MAP: &str = "skiff_cpus";
/// `max_entries` of [`CPUS_MAP`] in the object: 64, below no x86-64 kernel's
/// `CONFIG_NR_CPUS` (`cpu_map_alloc` refuses more, and the whole object would fail to
/// load). The loader replaces it with the number of possible CPUs.
pub const DEFAULT_CPU_SLOTS: u32 = 64;
/// `skb->mark` of a frame the egress impairment is delaying ("5c1ff" for skiff); cleared
/// when the frame leaves.
pub const DELAY_MARK: u32 = 0x5c1f_f000;

#[repr(C, align(8))]
struct Aligned<B: ?Sized>(B);

// aya parses the ELF in place and wants 8-byte alignment; `include_bytes!` alone gives 1.
static OBJECT_ALIGNED: &Aligned<[u8]> =
    &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/skiff.bpf.o")));

/// The compiled BPF object (ELF), 8-byte aligned.
pub static OBJECT: &[u8] = &OBJECT_ALIGNED.0;

/// Filter flags, `skiff_config.flags`.
pub mod flags {
    /// Without it every frame is passed (the program is attached but idle).
    pub const ENABLED: u32 = 1 << 0;
    /// Dedicated test interface: every frame matches, whatever its protocol.
    pub const MATCH_ALL: u32 = 1 << 1;
    /// Impairment: deliver a share of matching frames late ([`Impair`](super::Impair);
    /// with [`Action::Pass`](super::Action::Pass) only).
    pub const REORDER: u32 = 1 << 2;
}

/// What the program does with a frame that matches the filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Action {
    /// Into the AF_XDP socket bound to the frame's rx queue.
    Redirect = 0,
    /// `XDP_DROP`: the sink of the TX benchmark.
    Drop = 1,
    /// Counted, then handed to the kernel.
    Pass = 2,
    /// Latency probes (UDP payload starting with the probe signature) get their Ethernet,
    /// IP and UDP addresses swapped and go back out with `XDP_TX`: `skiff reflect --xdp-tx`.
    /// Other matching frames are passed to the kernel (counted as `MatchedPass`).
    Reflect = 3,
}

/// `struct skiff_config`, 16 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct Config {
    /// [`flags`] bits.
    pub flags: u32,
    /// Lowest matching UDP/TCP destination port, inclusive.
    pub port_lo: u16,
    /// Highest matching UDP/TCP destination port, inclusive.
    pub port_hi: u16,
    /// [`Action`] as u32.
    pub action: u32,
    /// Impairment: a matching frame is dropped with probability `loss / 2^32` before its
    /// action is taken (counted as `dropped`); 0 never drops (`skiff impair --loss`).
    pub loss: u32,
}
const _: () = assert!(size_of::<Config>() == 16);
const _: () = assert!(std::mem::offset_of!(Config, port_lo) == 4);
const _: () = assert!(std::mem::offset_of!(Config, action) == 8);

/// `struct skiff_impair`, 16 bytes: impairments beyond [`Config::loss`], read when
/// [`flags::REORDER`] is set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Impair {
    /// A matching frame that is not lost is delivered late with probability
    /// `reorder / 2^32`: in XDP through the cpumap slot of CPU
    /// `(this CPU + cpu_offset) % ncpus`, in tc egress through the interface's own
    /// ingress backlog.
    pub reorder: u32,
    /// 1: the next CPU's kthread delivers delayed frames (concurrently with this CPU's
    /// NAPI poll); 0: this CPU's own, after the softirq ends (later, burstier).
    pub cpu_offset: u32,
    /// Possible CPUs (the modulus above); 0 is taken as 1.
    pub ncpus: u32,
    /// 0.
    pub reserved: u32,
}
const _: () = assert!(size_of::<Impair>() == 16);
const _: () = assert!(std::mem::offset_of!(Impair, ncpus) == 8);

impl Impair {
    /// The map value, in the host's byte order as the C struct holds it.
    pub fn to_bytes(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[0..4].copy_from_slice(&self.reorder.to_ne_bytes());
        b[4..8].copy_from_slice(&self.cpu_offset.to_ne_bytes());
        b[8..12].copy_from_slice(&self.ncpus.to_ne_bytes());
        b[12..16].copy_from_slice(&self.reserved.to_ne_bytes());
        b
    }
}

impl Config {
    /// The map value, in the host's byte order as the C struct holds it.
    pub fn to_bytes(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[0..4].copy_from_slice(&self.flags.to_ne_bytes());
        b[4..6].copy_from_slice(&self.port_lo.to_ne_bytes());
        b[6..8].copy_from_slice(&self.port_hi.to_ne_bytes());
        b[8..12].copy_from_slice(&self.action.to_ne_bytes());
        b[12..16].copy_from_slice(&self.loss.to_ne_bytes());
        b
    }
}

/// Counter slots of `skiff_counters`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Outcome {
    /// Matched and redirected into an AF_XDP socket.
    Redirected = 0,
    /// Did not match the filter: handed to the kernel.
    Passed = 1,
    /// Matched, but no socket is bound to that rx queue: handed to the kernel.
    RedirectFailed = 2,
    /// Truncated or malformed header: handed to the kernel.
    ParseError = 3,
    /// Matched with [`Action::Drop`].
    Dropped = 4,
    /// Matched with [`Action::Pass`] (or [`Action::Reflect`] and not a probe).
    MatchedPass = 5,
    /// Matched with [`Action::Reflect`]: sent back with `XDP_TX`.
    Reflected = 6,
    /// Matched with [`Action::Pass`] and [`flags::REORDER`]: delivered late.
    Reordered = 7,
}

impl Outcome {
    /// Number of counter slots.
    pub const COUNT: u32 = 8;
    /// All slots, in index order.
    pub const ALL: [Outcome; Self::COUNT as usize] = [
        Outcome::Redirected,
        Outcome::Passed,
        Outcome::RedirectFailed,
        Outcome::ParseError,
        Outcome::Dropped,
        Outcome::MatchedPass,
        Outcome::Reflected,
        Outcome::Reordered,
    ];
    /// Counter name as skiff reports it.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Redirected => "redirected",
            Outcome::Passed => "passed",
            Outcome::RedirectFailed => "redirect_failed",
            Outcome::ParseError => "parse_error",
            Outcome::Dropped => "dropped",
            Outcome::MatchedPass => "matched_pass",
            Outcome::Reflected => "reflected",
            Outcome::Reordered => "reordered",
        }
    }
}

/// `struct skiff_counter`, 16 bytes per CPU.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Counter {
    /// Frames.
    pub packets: u64,
    /// Bytes as XDP saw them (no FCS).
    pub bytes: u64,
}
const _: () = assert!(size_of::<Counter>() == 16);

impl Counter {
    /// Decodes one CPU's map value.
    pub fn from_bytes(b: &[u8; 16]) -> Self {
        let mut p = [0u8; 8];
        let mut q = [0u8; 8];
        p.copy_from_slice(&b[0..8]);
        q.copy_from_slice(&b[8..16]);
        Counter {
            packets: u64::from_ne_bytes(p),
            bytes: u64::from_ne_bytes(q),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_is_bpf_elf() {
        assert_eq!(&OBJECT[..4], b"\x7fELF");
        // e_machine 247 = EM_BPF, at offset 18 (little or big endian, low byte first on LE).
        let machine = u16::from_ne_bytes([OBJECT[18], OBJECT[19]]);
        assert_eq!(machine, 247, "object is not EM_BPF");
        assert_eq!(OBJECT.as_ptr() as usize % 8, 0);
    }

    #[test]
    fn object_has_programs_and_maps() {
        for name in [
            PROGRAM_NAME,
            TC_EGRESS_PROGRAM,
            TC_INGRESS_PROGRAM,
            XSKS_MAP,
            CONFIG_MAP,
            COUNTERS_MAP,
            IMPAIR_MAP,
            CPUS_MAP,
        ] {
            assert!(
                OBJECT.windows(name.len()).any(|w| w == name.as_bytes()),
                "{name} is not in the object's symbols"
            );
        }
    }

    #[test]
    fn config_layout_round_trip() {
        let c = Config {
            flags: 3,
            port_lo: 9000,
            port_hi: 9099,
            action: 1,
            loss: 0,
        };
        let b = c.to_bytes();
        assert_eq!(u16::from_ne_bytes([b[4], b[5]]), 9000);
        assert_eq!(u32::from_ne_bytes([b[8], b[9], b[10], b[11]]), 1);
    }

    #[test]
    fn impair_layout() {
        let b = Impair {
            reorder: 0x0102_0304,
            cpu_offset: 1,
            ncpus: 2,
            reserved: 0,
        }
        .to_bytes();
        assert_eq!(u32::from_ne_bytes([b[0], b[1], b[2], b[3]]), 0x0102_0304);
        assert_eq!(u32::from_ne_bytes([b[4], b[5], b[6], b[7]]), 1);
        assert_eq!(u32::from_ne_bytes([b[8], b[9], b[10], b[11]]), 2);
        assert_eq!(&b[12..], &[0u8; 4]);
    }

    #[test]
    fn outcomes_in_slot_order() {
        for (i, o) in Outcome::ALL.iter().enumerate() {
            assert_eq!(*o as usize, i);
        }
        assert_eq!(Outcome::ALL.len(), Outcome::COUNT as usize);
    }

    #[test]
    fn counter_decode() {
        let mut b = [0u8; 16];
        b[0..8].copy_from_slice(&7u64.to_ne_bytes());
        b[8..16].copy_from_slice(&420u64.to_ne_bytes());
        assert_eq!(
            Counter::from_bytes(&b),
            Counter {
                packets: 7,
                bytes: 420
            }
        );
    }
}
