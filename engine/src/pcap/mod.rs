//! Capture files: what `skiff gen` sent (`--pcap-out`), what `skiff sink` received
//! (`--pcap-out`), and the captures `skiff gen --pcap-in` replays.
//!
//! - [`PcapWriter`] writes classic pcap or pcapng that tcpdump and Wireshark read: Ethernet
//!   link type, nanosecond timestamps (pcap magic `0xa1b23c4d`; pcapng `if_tsresol = 9`),
//!   snaplen [`MAX_SNAPLEN`], buffered. A [`Sample`] picks which offered frames are kept;
//!   [`SharedPcap`] lets several TX or RX threads share one file, one lock per batch.
//! - [`PcapReader`] reads classic pcap (both byte orders, µs and ns magics) and pcapng
//!   (SHB, IDB, EPB, SPB and the obsolete PB; per-interface `if_tsresol` and `if_tsoffset`;
//!   several interfaces and sections), detected from the first four bytes. [`read_all`]
//!   loads a whole Ethernet capture for replay, with a cap on the number of frames.
//!
//! The classic-pcap reader, the pcapng writer and the pcap file header are the `pcap-file`
//! crate's. Classic pcap records are written here (pcap-file's `pcap::PcapWriter` cannot
//! flush its writer without consuming itself). The pcapng reader is written here too,
//! because pcap-file 2.0.0's misreads files from the wild: it ignores `if_tsresol` (every
//! EPB timestamp is taken as nanoseconds), hands back a Simple Packet Block's padding as
//! packet bytes, rejects a valid 4-byte `if_tzone` option (it checks for length 1) and
//! non-UTF-8 interface names, and reports an error inside a complete block as an
//! unexpected end of file, so a corrupt file reads as a truncated one.
//!
//! No input file makes the reader panic or loop, and no length taken from a file is
//! allocated before it is checked against [`MAX_SNAPLEN`] (packets) or
//! [`MAX_BLOCK_LEN`] (pcapng blocks that are parsed; other blocks are skipped unread).
//! A file cut inside a record is an error ([`PcapError::Truncated`]), never a short read.
//!
//! Non-goals: writing more than one interface, compressed captures (`.pcap.gz`), the
//! "modified" pcap magic `0xa1b2cd34`, and per-packet link types in [`read_all`] other than
//! Ethernet ([`PcapReader`] itself reads any link type and reports it).

#![deny(missing_docs)]

mod reader;
mod writer;

#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};

pub use reader::{read_all, PcapReader, PcapRecord};
pub use writer::{PcapSummary, PcapWriter, SharedPcap};

/// Largest captured length written or accepted: libpcap's `MAXIMUM_SNAPLEN` (pcap-int.h) and
/// tcpdump's default `-s`. A frame from an AF_XDP ring is at most a UMEM frame (4 KiB, or
/// 64 KiB with multi-buffer), so nothing skiff sends or receives is cut; longer frames
/// offered to the writer are cut to this and keep their original length.
pub const MAX_SNAPLEN: u32 = 262_144;

/// Largest pcapng block the reader parses (section and interface headers, packets): a
/// packet of [`MAX_SNAPLEN`] bytes, its 28 bytes of block framing and EPB header, and 64 KiB
/// of options (a comment, a hash). Longer blocks of those kinds are corrupt; longer blocks
/// of other kinds (name resolution, statistics, custom) are skipped without being read.
pub const MAX_BLOCK_LEN: u32 = MAX_SNAPLEN + 28 + 65_536;

/// File format of a capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PcapFormat {
    /// Classic libpcap format, nanosecond variant.
    Pcap,
    /// pcapng (one section, one Ethernet interface when written here).
    PcapNg,
}

impl PcapFormat {
    /// The format a file name asks for: `.pcapng` (any case) is pcapng, anything else pcap.
    pub fn from_path(p: &Path) -> PcapFormat {
        match p.extension().and_then(|e| e.to_str()) {
            Some(ext) if ext.eq_ignore_ascii_case("pcapng") => PcapFormat::PcapNg,
            _ => PcapFormat::Pcap,
        }
    }

    /// Parses `pcap` or `pcapng` (any case), as given to a `--pcap-format` flag.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("pcap") {
            Some(PcapFormat::Pcap)
        } else if s.eq_ignore_ascii_case("pcapng") {
            Some(PcapFormat::PcapNg)
        } else {
            None
        }
    }

    /// `"pcap"` or `"pcapng"`.
    pub fn name(self) -> &'static str {
        match self {
            PcapFormat::Pcap => "pcap",
            PcapFormat::PcapNg => "pcapng",
        }
    }
}

impl fmt::Display for PcapFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which of the frames offered to a [`PcapWriter`] are written.
///
/// Text form ([`Sample::parse`], [`Display`](fmt::Display)): `all`; `1/N` (or `every:N`)
/// for one frame in N, the first of each N; `first:N` for the first N frames only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sample {
    /// Every frame.
    #[default]
    All,
    /// Frames 0, N, 2N, ... of those offered (`OneIn(0)` and `OneIn(1)` write every frame).
    OneIn(u64),
    /// The first N frames offered; [`PcapWriter::wants_more`] turns false after them.
    First(u64),
}

impl Sample {
    /// Parses `all`, `1/N`, `every:N` or `first:N` (N ≥ 1).
    pub fn parse(s: &str) -> Result<Sample, String> {
        let t = s.trim();
        let count = |n: &str| match n.trim().parse::<u64>() {
            Ok(n) if n >= 1 => Ok(n),
            _ => Err(format!(
                "invalid sample {s:?}: {n:?} is not a whole number of at least 1"
            )),
        };
        if t.eq_ignore_ascii_case("all") {
            Ok(Sample::All)
        } else if let Some(n) = t.strip_prefix("1/").or_else(|| t.strip_prefix("every:")) {
            count(n).map(Sample::OneIn)
        } else if let Some(n) = t.strip_prefix("first:") {
            count(n).map(Sample::First)
        } else {
            Err(format!(
                "invalid sample {s:?}: expected all, 1/N (one frame in N), every:N (the same) \
                 or first:N"
            ))
        }
    }
}

impl fmt::Display for Sample {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Sample::All => f.write_str("all"),
            Sample::OneIn(n) => write!(f, "1/{n}"),
            Sample::First(n) => write!(f, "first:{n}"),
        }
    }
}

/// A link-layer header type from the tcpdump.org registry (`LINKTYPE_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LinkType(pub u32);

impl LinkType {
    /// `LINKTYPE_ETHERNET`: the only one skiff writes and replays.
    pub const ETHERNET: LinkType = LinkType(1);
}

impl fmt::Display for LinkType {
    /// `ETHERNET (1)`, `RAW (101)`, or the bare number when the registry has no name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match pcap_file::DataLink::from(self.0) {
            pcap_file::DataLink::Unknown(n) => write!(f, "{n}"),
            known => write!(f, "{known:?} ({})", self.0),
        }
    }
}

/// Errors reading or writing a capture; every message starts with the file's path.
///
/// `record` fields count the packets read without error before the problem.
#[derive(Debug, thiserror::Error)]
pub enum PcapError {
    /// Opening, reading, writing or flushing the file failed.
    #[error("{}: {op}: {source}", path.display())]
    Io {
        /// The capture file.
        path: PathBuf,
        /// What was being done: "create", "open", "read", "write", "flush".
        op: &'static str,
        /// The error from the OS.
        #[source]
        source: std::io::Error,
    },
    /// The file has no bytes at all.
    #[error("{}: empty file, not a pcap or pcapng capture", path.display())]
    Empty {
        /// The capture file.
        path: PathBuf,
    },
    /// The first four bytes are no pcap or pcapng magic.
    #[error(
        "{}: not a pcap or pcapng file: starts with 0x{magic:08x} (pcap starts with a1b2c3d4, \
         d4c3b2a1, a1b23c4d or 4d3cb2a1; pcapng with 0a0d0d0a)",
        path.display()
    )]
    NotPcap {
        /// The capture file.
        path: PathBuf,
        /// Its first four bytes, in file order (zero-padded when shorter).
        magic: u32,
    },
    /// The file ends inside a header or record.
    #[error(
        "{}: truncated after {record} records (cut inside the header or record at byte {offset})",
        path.display()
    )]
    Truncated {
        /// The capture file.
        path: PathBuf,
        /// Complete records before the cut.
        record: u64,
        /// Where the incomplete header or record starts.
        offset: u64,
    },
    /// A packet's link type is not Ethernet (only [`read_all`] checks this).
    #[error("{}: link type {link_type} is not supported, only ETHERNET (1)", path.display())]
    UnsupportedLinkType {
        /// The capture file.
        path: PathBuf,
        /// The file's (or the packet's interface's) link type.
        link_type: LinkType,
    },
    /// A header or record that cannot be right: an absurd length, a bad magic, a packet on
    /// an interface that was never described.
    #[error("{}: corrupt after {record} records, at byte {offset}: {detail}", path.display())]
    Corrupt {
        /// The capture file.
        path: PathBuf,
        /// Complete records before the corrupt one.
        record: u64,
        /// Where the corrupt header, block or record starts.
        offset: u64,
        /// What is wrong with it.
        detail: String,
    },
    /// [`read_all`] found more frames than it was allowed to load.
    #[error("{}: more than {max} frames (the most that are loaded at once)", path.display())]
    TooManyFrames {
        /// The capture file.
        path: PathBuf,
        /// The limit.
        max: usize,
    },
    /// A frame the format cannot hold (a timestamp after 2106 in classic pcap).
    #[error("{}: cannot write frame {frame}: {detail}", path.display())]
    Unwritable {
        /// The capture file.
        path: PathBuf,
        /// Index of the frame among those offered.
        frame: u64,
        /// Why.
        detail: String,
    },
}

impl PcapError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            PcapError::Io { path, .. }
            | PcapError::Empty { path }
            | PcapError::NotPcap { path, .. }
            | PcapError::Truncated { path, .. }
            | PcapError::UnsupportedLinkType { path, .. }
            | PcapError::Corrupt { path, .. }
            | PcapError::TooManyFrames { path, .. }
            | PcapError::Unwritable { path, .. } => path,
        }
    }
}
