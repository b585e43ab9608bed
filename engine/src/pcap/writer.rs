//! Writing captures with pcap-file's writers, behind a sampler and a large buffer.

use std::borrow::Cow;
use std::fmt;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use pcap_file::pcap::PcapHeader;
use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::blocks::section_header::{SectionHeaderBlock, SectionHeaderOption};
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::{DataLink, Endianness, TsResolution};

use super::{PcapError, PcapFormat, Sample, MAX_SNAPLEN};

/// Write buffer size. At 1 Mpps of 64-byte frames a capture grows by 80 MB/s (16 or 32 bytes
/// of record header each); 1 MiB makes that about 80 `write` calls a second, and a full
/// buffer holds some 700 full-size (1514-byte) frames.
const WRITE_BUFFER: usize = 1 << 20;

const NS_PER_S: u64 = 1_000_000_000;

/// `if_tsresol` value for nanoseconds: 10^-9 s (pcapng spec, section 4.2).
const TSRESOL_NS: u8 = 9;

/// The buffered file under a [`PcapWriter`]. Classic pcap records are written here rather
/// than by pcap-file's `pcap::PcapWriter`, which has no way to reach (and flush) its writer
/// short of consuming itself; the file header is still pcap-file's [`PcapHeader`].
enum Sink {
    Pcap(BufWriter<File>),
    PcapNg(PcapNgWriter<BufWriter<File>>),
}

impl fmt::Debug for Sink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // pcap-file's PcapNgWriter has no Debug; the file is named by the PcapWriter.
        f.write_str(match self {
            Sink::Pcap(_) => "Sink::Pcap",
            Sink::PcapNg(_) => "Sink::PcapNg",
        })
    }
}

impl Sink {
    fn buffer(&mut self) -> &mut BufWriter<File> {
        match self {
            Sink::Pcap(w) => w,
            Sink::PcapNg(w) => w.get_mut(),
        }
    }
}

/// A capture file being written: Ethernet, nanosecond timestamps, snaplen [`MAX_SNAPLEN`].
///
/// Writes go through a 1 MiB buffer; [`finish`](Self::finish) flushes it and reports
/// errors, and dropping the writer without `finish` still flushes it, ignoring errors.
#[derive(Debug)]
pub struct PcapWriter {
    path: PathBuf,
    format: PcapFormat,
    sample: Sample,
    sink: Sink,
    offered: u64,
    written: u64,
}

impl PcapWriter {
    /// Creates (or truncates) `path` and writes the file header: for pcap the nanosecond
    /// magic, for pcapng a section header and one Ethernet interface with `if_tsresol = 9`.
    pub fn create(path: &Path, format: PcapFormat, sample: Sample) -> Result<Self, PcapError> {
        let io = |op| {
            let path = path.to_path_buf();
            move |source| PcapError::Io { path, op, source }
        };
        let file = File::create(path).map_err(io("create"))?;
        let mut buffer = BufWriter::with_capacity(WRITE_BUFFER, file);
        let header_err = |e| crate_error(path, "write", 0, e);
        let sink = match format {
            PcapFormat::Pcap => {
                let header = PcapHeader {
                    version_major: 2,
                    version_minor: 4,
                    ts_correction: 0,
                    ts_accuracy: 0,
                    snaplen: MAX_SNAPLEN,
                    datalink: DataLink::ETHERNET,
                    ts_resolution: TsResolution::NanoSecond,
                    endianness: Endianness::native(),
                };
                header.write_to(&mut buffer).map_err(header_err)?;
                Sink::Pcap(buffer)
            }
            PcapFormat::PcapNg => {
                let section = SectionHeaderBlock {
                    endianness: Endianness::native(),
                    major_version: 1,
                    minor_version: 0,
                    section_length: -1,
                    options: vec![SectionHeaderOption::UserApplication(Cow::Borrowed("skiff"))],
                };
                let mut w =
                    PcapNgWriter::with_section_header(buffer, section).map_err(header_err)?;
                let interface = InterfaceDescriptionBlock {
                    linktype: DataLink::ETHERNET,
                    snaplen: MAX_SNAPLEN,
                    options: vec![InterfaceDescriptionOption::IfTsResol(TSRESOL_NS)],
                };
                w.write_pcapng_block(interface).map_err(header_err)?;
                Sink::PcapNg(w)
            }
        };
        Ok(PcapWriter {
            path: path.to_path_buf(),
            format,
            sample,
            sink,
            offered: 0,
            written: 0,
        })
    }

    /// Offers one frame captured at `ts_ns` (ns since the Unix epoch). Returns whether the
    /// [`Sample`] kept it (and it was written to the buffer). A frame longer than
    /// [`MAX_SNAPLEN`] is cut to it, its original length recorded.
    pub fn offer(&mut self, ts_ns: u64, frame: &[u8]) -> Result<bool, PcapError> {
        let index = self.offered;
        self.offered += 1;
        let keep = match self.sample {
            Sample::All => true,
            Sample::OneIn(n) => n <= 1 || index.is_multiple_of(n),
            Sample::First(n) => self.written < n,
        };
        if !keep {
            return Ok(false);
        }
        let caplen = frame.len().min(MAX_SNAPLEN as usize);
        let data = &frame[..caplen];
        let orig_len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
        match &mut self.sink {
            Sink::Pcap(w) => {
                let unwritable = |detail: &str| PcapError::Unwritable {
                    path: self.path.clone(),
                    frame: index,
                    detail: detail.to_string(),
                };
                let ts_sec = u32::try_from(ts_ns / NS_PER_S)
                    .map_err(|_| unwritable("timestamp after 2106 (pcap seconds are 32-bit)"))?;
                // Record header (libpcap's pcap_sf_pkthdr), in the byte order of the file
                // header, which is the native one.
                let mut header = [0u8; 16];
                header[0..4].copy_from_slice(&ts_sec.to_ne_bytes());
                header[4..8].copy_from_slice(&((ts_ns % NS_PER_S) as u32).to_ne_bytes());
                header[8..12].copy_from_slice(&(caplen as u32).to_ne_bytes());
                header[12..16].copy_from_slice(&orig_len.to_ne_bytes());
                w.write_all(&header)
                    .and_then(|()| w.write_all(data))
                    .map_err(|source| PcapError::Io {
                        path: self.path.clone(),
                        op: "write",
                        source,
                    })?;
            }
            Sink::PcapNg(w) => {
                let block = EnhancedPacketBlock {
                    interface_id: 0,
                    timestamp: Duration::from_nanos(ts_ns),
                    original_len: orig_len,
                    data: Cow::Borrowed(data),
                    options: Vec::new(),
                };
                w.write_pcapng_block(block)
                    .map_err(|e| crate_error(&self.path, "write", index, e))?;
            }
        }
        self.written += 1;
        Ok(true)
    }

    /// Frames offered so far, kept or not.
    pub fn offered(&self) -> u64 {
        self.offered
    }

    /// Frames written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// False once a [`Sample::First`] is complete: later offers would all be dropped, so
    /// callers can stop offering.
    pub fn wants_more(&self) -> bool {
        match self.sample {
            Sample::First(n) => self.written < n,
            Sample::All | Sample::OneIn(_) => true,
        }
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the buffer out to the file (without closing it).
    pub fn flush(&mut self) -> Result<(), PcapError> {
        self.sink.buffer().flush().map_err(|source| PcapError::Io {
            path: self.path.clone(),
            op: "flush",
            source,
        })
    }

    /// Counts so far, for a report.
    pub fn summary(&self) -> PcapSummary {
        PcapSummary {
            path: self.path.display().to_string(),
            format: self.format.name(),
            offered: self.offered,
            written: self.written,
        }
    }

    /// Flushes and closes the file, returning what was offered and written.
    pub fn finish(mut self) -> Result<PcapSummary, PcapError> {
        self.flush()?;
        Ok(self.summary())
    }
}

/// Turns a pcap-file error while writing into ours.
fn crate_error(path: &Path, op: &'static str, frame: u64, e: pcap_file::PcapError) -> PcapError {
    match e {
        pcap_file::PcapError::IoError(source) => PcapError::Io {
            path: path.to_path_buf(),
            op,
            source,
        },
        other => PcapError::Unwritable {
            path: path.to_path_buf(),
            frame,
            detail: other.to_string(),
        },
    }
}

/// What a finished capture holds, for the run's report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PcapSummary {
    /// The file.
    pub path: String,
    /// `"pcap"` or `"pcapng"`.
    pub format: &'static str,
    /// Frames offered to the writer.
    pub offered: u64,
    /// Frames written to the file.
    pub written: u64,
}

/// One capture file shared by several TX or RX threads: clone it into each thread, and
/// offer each batch with [`offer_batch`](Self::offer_batch), which takes the lock once.
///
/// Once a [`Sample::First`] is complete, [`wants_more`](Self::wants_more) reads false from
/// an atomic, without the lock, and batches still offered are only counted.
#[derive(Debug, Clone)]
pub struct SharedPcap {
    inner: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    writer: Mutex<PcapWriter>,
    /// Mirrors `writer.wants_more()` after each batch.
    wants_more: AtomicBool,
    /// Frames offered after the writer stopped wanting more (not seen by the writer).
    offered_late: AtomicU64,
    /// The first write error: writing stops there, and `finish` returns it.
    error: Mutex<Option<PcapError>>,
}

impl SharedPcap {
    /// Shares `writer`.
    pub fn new(writer: PcapWriter) -> Self {
        let wants_more = AtomicBool::new(writer.wants_more());
        SharedPcap {
            inner: Arc::new(Shared {
                writer: Mutex::new(writer),
                wants_more,
                offered_late: AtomicU64::new(0),
                error: Mutex::new(None),
            }),
        }
    }

    /// [`PcapWriter::create`], shared.
    pub fn create(path: &Path, format: PcapFormat, sample: Sample) -> Result<Self, PcapError> {
        PcapWriter::create(path, format, sample).map(SharedPcap::new)
    }

    /// False once a [`Sample::First`] is complete (a relaxed load: a thread may offer one
    /// more batch after another completed it, which is then only counted).
    pub fn wants_more(&self) -> bool {
        self.inner.wants_more.load(Ordering::Relaxed)
    }

    /// Offers a batch of `(ts_ns, frame)` under one lock; returns how many were written.
    /// On an error the frames before it in the batch stay written, the error is kept for
    /// [`finish`](Self::finish) to return, and nothing more is written (the threads that
    /// offer never stop sending or receiving for a capture's sake).
    pub fn offer_batch<'a, I>(&self, frames: I) -> Result<u64, PcapError>
    where
        I: IntoIterator<Item = (u64, &'a [u8])>,
    {
        if !self.wants_more() {
            let n = frames.into_iter().count() as u64;
            self.inner.offered_late.fetch_add(n, Ordering::Relaxed);
            return Ok(0);
        }
        let mut writer = self.lock();
        let mut written = 0;
        let mut result = Ok(());
        for (ts_ns, frame) in frames {
            match writer.offer(ts_ns, frame) {
                Ok(true) => written += 1,
                Ok(false) => {}
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        let failed = result.is_err();
        self.inner
            .wants_more
            .store(writer.wants_more() && !failed, Ordering::Relaxed);
        if let Err(e) = result {
            let mut slot = self
                .inner
                .error
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if slot.is_none() {
                *slot = Some(e);
            }
        }
        Ok(written)
    }

    /// Counts so far, including frames offered after the writer stopped wanting more.
    pub fn summary(&self) -> PcapSummary {
        let mut summary = self.lock().summary();
        summary.offered += self.inner.offered_late.load(Ordering::Relaxed);
        summary
    }

    /// Flushes the file and returns its summary. The last handle closes the file; with
    /// other handles still alive it is only flushed, and closed when they are dropped.
    pub fn finish(self) -> Result<PcapSummary, PcapError> {
        let late = self.inner.offered_late.load(Ordering::Relaxed);
        if let Some(e) = self
            .inner
            .error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            return Err(e);
        }
        let mut summary = match Arc::try_unwrap(self.inner) {
            Ok(shared) => shared
                .writer
                .into_inner()
                .unwrap_or_else(PoisonError::into_inner)
                .finish()?,
            Err(inner) => {
                let mut writer = inner.writer.lock().unwrap_or_else(PoisonError::into_inner);
                writer.flush()?;
                writer.summary()
            }
        };
        summary.offered += late;
        Ok(summary)
    }

    /// The writer, even if a thread panicked while holding it (its counters stay valid;
    /// at worst one record is half in the buffer, which the reader reports as corrupt).
    fn lock(&self) -> std::sync::MutexGuard<'_, PcapWriter> {
        self.inner
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}
