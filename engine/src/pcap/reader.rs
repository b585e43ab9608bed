//! Reading captures: classic pcap through pcap-file's reader, pcapng by hand (see the
//! module documentation for why), both behind one [`PcapReader`].

use std::fs::File;
use std::io::{self, BufReader, Read, Seek};
use std::path::{Path, PathBuf};

use super::{LinkType, PcapError, MAX_BLOCK_LEN, MAX_SNAPLEN};

const NS_PER_S: u64 = 1_000_000_000;

/// Classic pcap magics as the file's first four bytes: µs big- and little-endian, then ns.
const PCAP_MAGICS: [[u8; 4]; 4] = [
    [0xa1, 0xb2, 0xc3, 0xd4],
    [0xd4, 0xc3, 0xb2, 0xa1],
    [0xa1, 0xb2, 0x3c, 0x4d],
    [0x4d, 0x3c, 0xb2, 0xa1],
];

/// pcapng block types (pcapng spec, section 11.1).
const SHB: u32 = 0x0A0D_0D0A;
const IDB: u32 = 0x0000_0001;
const PB: u32 = 0x0000_0002;
const SPB: u32 = 0x0000_0003;
const EPB: u32 = 0x0000_0006;
/// The SHB's byte-order magic, as read big-endian.
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;

/// pcapng read buffer: a few hundred full-size packets per `read` call.
const READ_BUFFER: usize = 256 * 1024;

/// One packet from a capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcapRecord {
    /// Capture time in ns since the Unix epoch (for a pcapng Simple Packet Block, which has
    /// none, the previous packet's time, or 0).
    pub ts_ns: u64,
    /// Length of the packet on the wire (at least `data.len()`).
    pub orig_len: u32,
    /// The captured bytes, at most [`MAX_SNAPLEN`].
    pub data: Vec<u8>,
}

/// A capture file being read, one packet at a time; also an [`Iterator`] of records.
///
/// After the first error (or the end) it returns `None`, so a caller that skips errors
/// cannot loop forever.
#[derive(Debug)]
pub struct PcapReader {
    path: PathBuf,
    format: Format,
    /// Records returned so far.
    records: u64,
    done: bool,
}

#[derive(Debug)]
enum Format {
    Pcap(ClassicReader),
    PcapNg(NgReader),
}

/// What went wrong, and where, before the file's path and record count are added.
#[derive(Debug)]
enum Fault {
    Truncated { offset: u64 },
    Corrupt { offset: u64, detail: String },
    Io(io::Error),
}

impl Fault {
    fn corrupt(offset: u64, detail: impl Into<String>) -> Fault {
        Fault::Corrupt {
            offset,
            detail: detail.into(),
        }
    }

    /// A failed read at `offset`: running out of file there is a truncation.
    fn read(offset: u64, e: io::Error) -> Fault {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            Fault::Truncated { offset }
        } else {
            Fault::Io(e)
        }
    }

    fn into_error(self, path: &Path, record: u64) -> PcapError {
        let path = path.to_path_buf();
        match self {
            Fault::Truncated { offset } => PcapError::Truncated {
                path,
                record,
                offset,
            },
            Fault::Corrupt { offset, detail } => PcapError::Corrupt {
                path,
                record,
                offset,
                detail,
            },
            Fault::Io(source) => PcapError::Io {
                path,
                op: "read",
                source,
            },
        }
    }
}

impl PcapReader {
    /// Opens a capture, telling pcap from pcapng by its first four bytes, and reads its
    /// header (for pcapng, up to the first interface description).
    pub fn open(path: &Path) -> Result<Self, PcapError> {
        let io = |op| {
            let path = path.to_path_buf();
            move |source| PcapError::Io { path, op, source }
        };
        let mut file = File::open(path).map_err(io("open"))?;
        let file_len = file.metadata().map_err(io("open"))?.len();
        let mut magic = Vec::with_capacity(4);
        file.by_ref()
            .take(4)
            .read_to_end(&mut magic)
            .map_err(io("read"))?;
        file.rewind().map_err(io("read"))?;

        let is_prefix = |m: &[u8; 4]| m.starts_with(&magic);
        let pcapng = [0x0a, 0x0d, 0x0d, 0x0a];
        let fault = |f: Fault| f.into_error(path, 0);
        let format = if magic.is_empty() {
            return Err(PcapError::Empty {
                path: path.to_path_buf(),
            });
        } else if magic.len() < 4 && (PCAP_MAGICS.iter().any(is_prefix) || is_prefix(&pcapng)) {
            return Err(fault(Fault::Truncated { offset: 0 }));
        } else if PCAP_MAGICS.iter().any(|m| magic == m) {
            Format::Pcap(ClassicReader::new(file).map_err(fault)?)
        } else if magic == pcapng {
            Format::PcapNg(NgReader::new(file, file_len).map_err(fault)?)
        } else {
            let mut bytes = [0u8; 4];
            bytes[..magic.len()].copy_from_slice(&magic);
            return Err(PcapError::NotPcap {
                path: path.to_path_buf(),
                magic: u32::from_be_bytes(bytes),
            });
        };
        Ok(PcapReader {
            path: path.to_path_buf(),
            format,
            records: 0,
            done: false,
        })
    }

    /// The link type of the packets: for pcap, the file's; for pcapng, the interface of
    /// the record returned last, or before any, of the first interface described. `None`
    /// only for a pcapng file without any interface description (so without packets).
    pub fn link_type(&self) -> Option<LinkType> {
        match &self.format {
            Format::Pcap(c) => Some(c.link),
            Format::PcapNg(n) => n.link,
        }
    }

    /// Whether the file is pcapng (else classic pcap).
    pub fn is_pcapng(&self) -> bool {
        matches!(self.format, Format::PcapNg(_))
    }

    /// The file being read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The next packet; `None` at the end of the file, and after an error.
    pub fn next_record(&mut self) -> Option<Result<PcapRecord, PcapError>> {
        if self.done {
            return None;
        }
        let next = match &mut self.format {
            Format::Pcap(c) => c.next(),
            Format::PcapNg(n) => n.next(),
        };
        match next {
            Ok(Some(record)) => {
                self.records += 1;
                Some(Ok(record))
            }
            Ok(None) => {
                self.done = true;
                None
            }
            Err(fault) => {
                self.done = true;
                Some(Err(fault.into_error(&self.path, self.records)))
            }
        }
    }
}

impl Iterator for PcapReader {
    type Item = Result<PcapRecord, PcapError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_record()
    }
}

/// Reads a whole Ethernet capture, for replay.
///
/// Every packet must be Ethernet (for classic pcap the file header is checked first, so
/// even an empty capture of another link type is refused). More than `max_frames` packets
/// is an error rather than a silent cut.
pub fn read_all(path: &Path, max_frames: usize) -> Result<Vec<PcapRecord>, PcapError> {
    let mut reader = PcapReader::open(path)?;
    let check_link = |reader: &PcapReader| match reader.link_type() {
        Some(link_type) if link_type != LinkType::ETHERNET => Err(PcapError::UnsupportedLinkType {
            path: path.to_path_buf(),
            link_type,
        }),
        _ => Ok(()),
    };
    if !reader.is_pcapng() {
        check_link(&reader)?;
    }
    let mut records = Vec::new();
    while let Some(record) = reader.next_record() {
        let record = record?;
        check_link(&reader)?;
        if records.len() >= max_frames {
            return Err(PcapError::TooManyFrames {
                path: path.to_path_buf(),
                max: max_frames,
            });
        }
        records.push(record);
    }
    Ok(records)
}

/// Classic pcap, through pcap-file's reader (it handles both byte orders and both
/// timestamp resolutions). Its `next_packet` is not used: it rejects valid files whose
/// original lengths exceed the snaplen (any `tcpdump -s 96` capture), so raw packets are
/// checked here instead, the way libpcap checks them.
#[derive(Debug)]
struct ClassicReader {
    reader: pcap_file::pcap::PcapReader<File>,
    link: LinkType,
    ns_per_frac: u64,
    frac_limit: u32,
    /// Where the next record starts.
    offset: u64,
}

impl ClassicReader {
    fn new(file: File) -> Result<Self, Fault> {
        let reader = pcap_file::pcap::PcapReader::new(file).map_err(|e| crate_fault(0, e))?;
        let header = reader.header();
        // The upper 16 bits of the link-type field carry FCS flags (pcap-savefile(5)).
        let link = LinkType(u32::from(header.datalink) & 0xffff);
        let (ns_per_frac, frac_limit) = match header.ts_resolution {
            pcap_file::TsResolution::MicroSecond => (1_000, 1_000_000),
            pcap_file::TsResolution::NanoSecond => (1, 1_000_000_000),
        };
        Ok(ClassicReader {
            reader,
            link,
            ns_per_frac,
            frac_limit,
            offset: 24,
        })
    }

    fn next(&mut self) -> Result<Option<PcapRecord>, Fault> {
        let at = self.offset;
        let raw = match self.reader.next_raw_packet() {
            None => return Ok(None),
            Some(Ok(raw)) => raw,
            Some(Err(e)) => return Err(crate_fault(at, e)),
        };
        if raw.incl_len > MAX_SNAPLEN {
            return Err(Fault::corrupt(
                at,
                format!(
                    "captured length {} is over the maximum {MAX_SNAPLEN}",
                    raw.incl_len
                ),
            ));
        }
        if raw.ts_frac >= self.frac_limit {
            return Err(Fault::corrupt(
                at,
                format!(
                    "timestamp fraction {} is not below {}",
                    raw.ts_frac, self.frac_limit
                ),
            ));
        }
        self.offset += 16 + u64::from(raw.incl_len);
        Ok(Some(PcapRecord {
            ts_ns: u64::from(raw.ts_sec) * NS_PER_S + u64::from(raw.ts_frac) * self.ns_per_frac,
            orig_len: raw.orig_len.max(raw.incl_len),
            data: raw.data.into_owned(),
        }))
    }
}

/// pcap-file reports running out of bytes as an `UnexpectedEof` I/O error. It buffers up to
/// 8 MB, so a record claiming more than that reads as truncated too.
fn crate_fault(offset: u64, e: pcap_file::PcapError) -> Fault {
    match e {
        pcap_file::PcapError::IoError(e) => Fault::read(offset, e),
        pcap_file::PcapError::IncompleteBuffer => Fault::Truncated { offset },
        other => Fault::corrupt(offset, other.to_string()),
    }
}

/// Timestamp units of a pcapng interface (`if_tsresol`, pcapng spec section 4.2).
#[derive(Debug, Clone, Copy)]
enum TsResol {
    /// 10^-n seconds, n ≤ 19 (so 10^n fits a u64).
    Pow10(u32),
    /// 2^-n seconds.
    Pow2(u32),
}

impl TsResol {
    /// Default when the option is absent: microseconds.
    const DEFAULT: TsResol = TsResol::Pow10(6);

    fn from_option(v: u8) -> Option<TsResol> {
        if v & 0x80 != 0 {
            Some(TsResol::Pow2(u32::from(v & 0x7f)))
        } else if v <= 19 {
            Some(TsResol::Pow10(u32::from(v)))
        } else {
            None
        }
    }

    /// `units` of this resolution in ns (truncated), or None if it overflows.
    fn to_ns(self, units: u64) -> Option<u64> {
        let ns = match self {
            TsResol::Pow10(n) if n <= 9 => u128::from(units) * u128::from(10u64.pow(9 - n)),
            TsResol::Pow10(n) => u128::from(units) / u128::from(10u64.pow(n - 9)),
            TsResol::Pow2(n) => (u128::from(units) * u128::from(NS_PER_S)) >> n.min(127),
        };
        u64::try_from(ns).ok()
    }
}

/// One Interface Description Block, as far as reading packets needs it.
#[derive(Debug, Clone, Copy)]
struct Interface {
    link: LinkType,
    /// 0: no limit.
    snaplen: u32,
    resol: TsResol,
    /// `if_tsoffset`: seconds added to every timestamp.
    offset_s: i64,
}

/// pcapng, by hand: blocks are read whole (after their length is checked), parsed when
/// they are section or interface headers or packets, skipped unread otherwise.
#[derive(Debug)]
struct NgReader {
    reader: BufReader<File>,
    file_len: u64,
    /// Where the next block starts.
    offset: u64,
    big_endian: bool,
    interfaces: Vec<Interface>,
    link: Option<LinkType>,
    /// Body of the block being parsed, reused.
    body: Vec<u8>,
    last_ts_ns: u64,
    /// A packet met while `new` read ahead to the first interface (never, in a valid
    /// file: a packet before any interface is corrupt).
    pending: Option<PcapRecord>,
}

/// What one block turned out to be.
enum Step {
    Packet(PcapRecord),
    Other,
    End,
}

impl NgReader {
    fn new(file: File, file_len: u64) -> Result<Self, Fault> {
        let mut ng = NgReader {
            reader: BufReader::with_capacity(READ_BUFFER, file),
            file_len,
            offset: 0,
            big_endian: false,
            interfaces: Vec::new(),
            link: None,
            body: Vec::new(),
            last_ts_ns: 0,
            pending: None,
        };
        // Read ahead to the first interface so that its link type is known.
        while ng.interfaces.is_empty() {
            match ng.step()? {
                Step::Packet(record) => {
                    ng.pending = Some(record);
                    break;
                }
                Step::Other => {}
                Step::End => break,
            }
        }
        Ok(ng)
    }

    fn next(&mut self) -> Result<Option<PcapRecord>, Fault> {
        if let Some(record) = self.pending.take() {
            return Ok(Some(record));
        }
        loop {
            match self.step()? {
                Step::Packet(record) => return Ok(Some(record)),
                Step::Other => {}
                Step::End => return Ok(None),
            }
        }
    }

    fn u32_at(&self, buf: &[u8], at: usize) -> u32 {
        let mut b = [0u8; 4];
        if let Some(src) = buf.get(at..at + 4) {
            b.copy_from_slice(src);
        }
        if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    }

    fn u16_at(&self, buf: &[u8], at: usize) -> u16 {
        let mut b = [0u8; 2];
        if let Some(src) = buf.get(at..at + 2) {
            b.copy_from_slice(src);
        }
        if self.big_endian {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        }
    }

    /// Fills `buf` from the file; `Ok(false)` if the file ended before its first byte.
    fn read_or_end(&mut self, buf: &mut [u8]) -> Result<bool, Fault> {
        let at = self.offset;
        let mut filled = 0;
        while filled < buf.len() {
            match self.reader.read(&mut buf[filled..]) {
                Ok(0) if filled == 0 => return Ok(false),
                Ok(0) => return Err(Fault::Truncated { offset: at }),
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Fault::read(at, e)),
            }
        }
        Ok(true)
    }

    /// Reads one block and acts on it.
    fn step(&mut self) -> Result<Step, Fault> {
        let at = self.offset;
        let mut head = [0u8; 8];
        if !self.read_or_end(&mut head)? {
            return Ok(Step::End);
        }
        let mut block_type = self.u32_at(&head, 0);
        if at == 0 && block_type != SHB {
            return Err(Fault::corrupt(
                0,
                "pcapng file does not start with a section header",
            ));
        }
        // A section header sets the byte order for its section: its length is read in
        // the order its byte-order magic declares (pcapng spec section 4.1).
        let mut bom = [0u8; 4];
        if block_type == SHB {
            let mut bom_buf = [0u8; 4];
            self.reader
                .read_exact(&mut bom_buf)
                .map_err(|e| Fault::read(at, e))?;
            self.big_endian = match u32::from_be_bytes(bom_buf) {
                BYTE_ORDER_MAGIC => true,
                m if m == BYTE_ORDER_MAGIC.swap_bytes() => false,
                m => {
                    return Err(Fault::corrupt(
                        at,
                        format!("section header byte-order magic 0x{m:08x} is not 1a2b3c4d"),
                    ))
                }
            };
            bom = bom_buf;
            block_type = SHB;
        }
        let total_len = self.u32_at(&head, 4);
        let min_len = if block_type == SHB { 28 } else { 12 };
        if !total_len.is_multiple_of(4) || total_len < min_len {
            return Err(Fault::corrupt(
                at,
                format!("block 0x{block_type:08x} has length {total_len} (must be a multiple of 4, at least {min_len})"),
            ));
        }
        let parsed = matches!(block_type, SHB | IDB | PB | SPB | EPB);
        if parsed && total_len > MAX_BLOCK_LEN {
            return Err(Fault::corrupt(
                at,
                format!("block 0x{block_type:08x} has length {total_len}, over the maximum {MAX_BLOCK_LEN}"),
            ));
        }
        if u64::from(total_len) > self.file_len.saturating_sub(at) {
            return Err(Fault::Truncated { offset: at });
        }

        // The body, between the 8-byte head and the 4-byte trailing length; for a section
        // header it starts with the byte-order magic already read.
        let body_len = (total_len - 12) as usize;
        if parsed {
            self.body.clear();
            self.body.resize(body_len, 0);
            let start = if block_type == SHB {
                self.body[..4].copy_from_slice(&bom);
                4
            } else {
                0
            };
            self.reader
                .read_exact(&mut self.body[start..])
                .map_err(|e| Fault::read(at, e))?;
        } else {
            let skipped = io::copy(
                &mut self.reader.by_ref().take(body_len as u64),
                &mut io::sink(),
            )
            .map_err(|e| Fault::read(at, e))?;
            if skipped != body_len as u64 {
                return Err(Fault::Truncated { offset: at });
            }
        }
        let mut tail = [0u8; 4];
        self.reader
            .read_exact(&mut tail)
            .map_err(|e| Fault::read(at, e))?;
        let trailing = self.u32_at(&tail, 0);
        if trailing != total_len {
            return Err(Fault::corrupt(
                at,
                format!("block 0x{block_type:08x} has length {total_len} at its start but {trailing} at its end"),
            ));
        }
        self.offset += u64::from(total_len);

        let body = std::mem::take(&mut self.body);
        let step = self.parse(at, block_type, &body);
        self.body = body;
        step
    }

    fn parse(&mut self, at: u64, block_type: u32, body: &[u8]) -> Result<Step, Fault> {
        match block_type {
            SHB => {
                let major = self.u16_at(body, 4);
                let minor = self.u16_at(body, 6);
                if major != 1 {
                    return Err(Fault::corrupt(
                        at,
                        format!("pcapng version {major}.{minor} is not supported (only 1.x)"),
                    ));
                }
                // A new section: its interfaces are numbered from 0 again.
                self.interfaces.clear();
                Ok(Step::Other)
            }
            IDB => {
                if body.len() < 8 {
                    return Err(Fault::corrupt(
                        at,
                        "interface description shorter than 8 bytes",
                    ));
                }
                let mut interface = Interface {
                    link: LinkType(u32::from(self.u16_at(body, 0))),
                    snaplen: self.u32_at(body, 4),
                    resol: TsResol::DEFAULT,
                    offset_s: 0,
                };
                let mut pos = 8;
                while pos + 4 <= body.len() {
                    let code = self.u16_at(body, pos);
                    let len = usize::from(self.u16_at(body, pos + 2));
                    let value = body.get(pos + 4..pos + 4 + len).ok_or_else(|| {
                        Fault::corrupt(at, format!("interface option {code} overruns its block"))
                    })?;
                    match (code, value) {
                        (0, _) => break,
                        (9, [v, ..]) => {
                            interface.resol = TsResol::from_option(*v).ok_or_else(|| {
                                Fault::corrupt(at, format!("if_tsresol 10^-{v} is not supported"))
                            })?;
                        }
                        (14, v) if v.len() == 8 => {
                            let mut b = [0u8; 8];
                            b.copy_from_slice(v);
                            interface.offset_s = if self.big_endian {
                                i64::from_be_bytes(b)
                            } else {
                                i64::from_le_bytes(b)
                            };
                        }
                        _ => {}
                    }
                    pos += 4 + len.next_multiple_of(4);
                }
                if self.link.is_none() {
                    self.link = Some(interface.link);
                }
                self.interfaces.push(interface);
                Ok(Step::Other)
            }
            EPB | PB => {
                if body.len() < 20 {
                    return Err(Fault::corrupt(at, "packet block shorter than 20 bytes"));
                }
                let id = if block_type == EPB {
                    self.u32_at(body, 0)
                } else {
                    u32::from(self.u16_at(body, 0))
                };
                let units = u64::from(self.u32_at(body, 4)) << 32 | u64::from(self.u32_at(body, 8));
                let caplen = self.u32_at(body, 12);
                let orig_len = self.u32_at(body, 16);
                if caplen > MAX_SNAPLEN {
                    return Err(Fault::corrupt(
                        at,
                        format!("captured length {caplen} is over the maximum {MAX_SNAPLEN}"),
                    ));
                }
                let data = body.get(20..20 + caplen as usize).ok_or_else(|| {
                    Fault::corrupt(at, format!("captured length {caplen} overruns its block"))
                })?;
                let interface = self.interface(at, id)?;
                let ts_ns = interface
                    .resol
                    .to_ns(units)
                    .and_then(|ns| offset_ns(ns, interface.offset_s))
                    .ok_or_else(|| Fault::corrupt(at, "timestamp out of range"))?;
                Ok(self.packet(interface, ts_ns, orig_len, data))
            }
            SPB => {
                if body.len() < 4 {
                    return Err(Fault::corrupt(
                        at,
                        "simple packet block shorter than 4 bytes",
                    ));
                }
                let orig_len = self.u32_at(body, 0);
                let interface = self.interface(at, 0)?;
                // Captured length is implicit: the original length, cut to the snaplen and
                // to the block (the rest of the body is padding).
                let mut caplen = orig_len.min(MAX_SNAPLEN) as usize;
                if interface.snaplen != 0 {
                    caplen = caplen.min(interface.snaplen as usize);
                }
                caplen = caplen.min(body.len() - 4);
                let data = &body[4..4 + caplen];
                Ok(self.packet(interface, self.last_ts_ns, orig_len, data))
            }
            _ => Ok(Step::Other),
        }
    }

    fn interface(&self, at: u64, id: u32) -> Result<Interface, Fault> {
        self.interfaces.get(id as usize).copied().ok_or_else(|| {
            Fault::corrupt(
                at,
                format!(
                    "packet on interface {id}, but this section describes {}",
                    self.interfaces.len()
                ),
            )
        })
    }

    fn packet(&mut self, interface: Interface, ts_ns: u64, orig_len: u32, data: &[u8]) -> Step {
        self.link = Some(interface.link);
        self.last_ts_ns = ts_ns;
        Step::Packet(PcapRecord {
            ts_ns,
            orig_len: orig_len.max(data.len() as u32),
            data: data.to_vec(),
        })
    }
}

/// `ns` shifted by `if_tsoffset` seconds, if the result is still a time after the epoch.
fn offset_ns(ns: u64, offset_s: i64) -> Option<u64> {
    let shifted = i128::from(ns) + i128::from(offset_s) * i128::from(NS_PER_S);
    u64::try_from(shifted).ok()
}
