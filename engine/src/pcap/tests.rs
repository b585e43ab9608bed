//! Round trips, crafted files of every kind the reader meets, cuts at every byte, random
//! bytes, and tcpdump / tshark reading what the writer wrote.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

use proptest::prelude::*;

use super::*;

/// A file in the temp directory, unique to this process and test, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str) -> TempFile {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        TempFile(
            std::env::temp_dir().join(format!("skiff-pcap-test-{}-{n}-{name}", std::process::id())),
        )
    }

    fn with_bytes(name: &str, bytes: &[u8]) -> TempFile {
        let f = TempFile::new(name);
        std::fs::write(&f.0, bytes).expect("writing a temp file");
        f
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Frames of assorted sizes (a bare Ethernet header up to a jumbo frame), each filled with
/// a pattern of its own, at ns timestamps that use all nine digits.
fn frames() -> Vec<(u64, Vec<u8>)> {
    [14usize, 60, 61, 62, 63, 64, 1514, 4096, 9018]
        .iter()
        .enumerate()
        .map(|(i, &len)| {
            let ts = 1_700_000_000_123_456_789 + i as u64 * 1_000_000_007;
            let data = (0..len).map(|b| (b * 7 + i * 13) as u8).collect();
            (ts, data)
        })
        .collect()
}

fn write_file(path: &Path, format: PcapFormat, sample: Sample, frames: &[(u64, Vec<u8>)]) {
    let mut w = PcapWriter::create(path, format, sample).expect("create");
    for (ts, data) in frames {
        w.offer(*ts, data).expect("offer");
    }
    w.finish().expect("finish");
}

fn read_records(path: &Path) -> Vec<PcapRecord> {
    read_all(path, 1_000_000).unwrap_or_else(|e| panic!("reading back: {e}"))
}

/// Reads until the end or the first error, asserting that it ends: every record or block
/// takes at least 12 bytes, so a file of n bytes cannot yield more than n items.
fn drain(bytes: &[u8]) -> (Vec<PcapRecord>, Option<PcapError>) {
    let f = TempFile::with_bytes("drain", bytes);
    let mut reader = match PcapReader::open(f.path()) {
        Ok(r) => r,
        Err(e) => return (Vec::new(), Some(e)),
    };
    let mut records = Vec::new();
    let mut items = 0;
    while let Some(item) = reader.next_record() {
        items += 1;
        assert!(items <= bytes.len() + 1, "reader does not end");
        match item {
            Ok(r) => records.push(r),
            Err(e) => {
                assert!(reader.next_record().is_none(), "records after an error");
                return (records, Some(e));
            }
        }
    }
    (records, None)
}

fn assert_same(records: &[PcapRecord], frames: &[(u64, Vec<u8>)]) {
    assert_eq!(records.len(), frames.len());
    for (i, (r, (ts, data))) in records.iter().zip(frames).enumerate() {
        assert_eq!(r.ts_ns, *ts, "timestamp of frame {i}");
        assert_eq!(&r.data, data, "bytes of frame {i}");
        assert_eq!(r.orig_len as usize, data.len(), "length of frame {i}");
    }
}

#[test]
fn round_trip_pcap() {
    let f = TempFile::new("rt.pcap");
    write_file(f.path(), PcapFormat::Pcap, Sample::All, &frames());
    let bytes = std::fs::read(f.path()).unwrap();
    // The nanosecond magic, in native order; snaplen and Ethernet.
    assert_eq!(bytes[0..4], 0xa1b2_3c4du32.to_ne_bytes());
    assert_eq!(bytes[16..20], MAX_SNAPLEN.to_ne_bytes());
    assert_eq!(bytes[20..24], 1u32.to_ne_bytes());
    assert_same(&read_records(f.path()), &frames());
    let reader = PcapReader::open(f.path()).unwrap();
    assert_eq!(reader.link_type(), Some(LinkType::ETHERNET));
    assert!(!reader.is_pcapng());
}

#[test]
fn round_trip_pcapng() {
    let f = TempFile::new("rt.pcapng");
    write_file(f.path(), PcapFormat::PcapNg, Sample::All, &frames());
    // Nanoseconds survive only if the IDB says if_tsresol = 9 (the default is µs).
    assert_same(&read_records(f.path()), &frames());
    let reader = PcapReader::open(f.path()).unwrap();
    assert_eq!(reader.link_type(), Some(LinkType::ETHERNET));
    assert!(reader.is_pcapng());
}

#[test]
fn pcap_file_reads_what_we_write() {
    // pcap-file's own pcapng reader agrees on bytes and (ns-resolution) timestamps.
    let f = TempFile::new("crate.pcapng");
    write_file(f.path(), PcapFormat::PcapNg, Sample::All, &frames());
    let file = std::fs::File::open(f.path()).unwrap();
    let mut r = pcap_file::pcapng::PcapNgReader::new(file).unwrap();
    let mut got = Vec::new();
    while let Some(block) = r.next_block() {
        if let pcap_file::pcapng::Block::EnhancedPacket(p) = block.unwrap() {
            got.push((p.timestamp.as_nanos() as u64, p.data.to_vec()));
        }
    }
    assert_eq!(got, frames());
    assert_eq!(
        r.interfaces()[0].options,
        vec![
            pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption::IfTsResol(
                9
            )
        ]
    );
}

#[test]
fn oversize_frames_are_cut_to_the_snaplen() {
    for format in [PcapFormat::Pcap, PcapFormat::PcapNg] {
        let f = TempFile::new("big");
        let big = vec![0xabu8; 300_000];
        write_file(f.path(), format, Sample::All, &[(5, big)]);
        let r = read_records(f.path());
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].data.len(), MAX_SNAPLEN as usize, "{format}");
        assert_eq!(r[0].orig_len, 300_000, "{format}");
    }
}

#[test]
fn sampling_counts() {
    let frames: Vec<(u64, Vec<u8>)> = (0..10u64).map(|i| (i, vec![i as u8; 60])).collect();
    let cases = [
        (Sample::All, vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 9]),
        (Sample::OneIn(1), vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 9]),
        (Sample::OneIn(3), vec![0, 3, 6, 9]),
        (Sample::OneIn(100), vec![0]),
        (Sample::First(4), vec![0, 1, 2, 3]),
        (Sample::First(0), vec![]),
        (Sample::First(50), vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 9]),
    ];
    for format in [PcapFormat::Pcap, PcapFormat::PcapNg] {
        for (sample, kept) in &cases {
            let f = TempFile::new("sample");
            let mut w = PcapWriter::create(f.path(), format, *sample).unwrap();
            let mut returned = Vec::new();
            for (ts, data) in &frames {
                if w.offer(*ts, data).unwrap() {
                    returned.push(*ts);
                }
            }
            assert_eq!(&returned, kept, "{sample} {format}");
            assert_eq!(w.offered(), 10);
            assert_eq!(w.written(), kept.len() as u64);
            let first_done = matches!(sample, Sample::First(n) if *n <= 10);
            assert_eq!(w.wants_more(), !first_done, "{sample}");
            let summary = w.finish().unwrap();
            assert_eq!((summary.offered, summary.written), (10, kept.len() as u64));
            assert_eq!(summary.format, format.name());
            let read: Vec<u64> = read_records(f.path()).iter().map(|r| r.ts_ns).collect();
            assert_eq!(&read, kept, "{sample} {format}");
        }
    }
}

#[test]
fn sample_and_format_parsing() {
    assert_eq!(Sample::parse("all"), Ok(Sample::All));
    assert_eq!(Sample::parse(" ALL "), Ok(Sample::All));
    assert_eq!(Sample::parse("1/100"), Ok(Sample::OneIn(100)));
    assert_eq!(Sample::parse("every:7"), Ok(Sample::OneIn(7)));
    assert_eq!(Sample::parse("first:1000"), Ok(Sample::First(1000)));
    for bad in [
        "", "some", "1/0", "1/", "2/10", "every:-1", "first:", "first:0", "first:x",
    ] {
        let e = Sample::parse(bad).expect_err(bad);
        assert!(e.contains(&format!("{bad:?}")), "{e}");
    }
    for s in [Sample::All, Sample::OneIn(9), Sample::First(3)] {
        assert_eq!(Sample::parse(&s.to_string()), Ok(s));
    }
    assert_eq!(
        PcapFormat::from_path(Path::new("a/b.pcapng")),
        PcapFormat::PcapNg
    );
    assert_eq!(
        PcapFormat::from_path(Path::new("b.PCAPNG")),
        PcapFormat::PcapNg
    );
    assert_eq!(PcapFormat::from_path(Path::new("b.pcap")), PcapFormat::Pcap);
    assert_eq!(PcapFormat::from_path(Path::new("b")), PcapFormat::Pcap);
    assert_eq!(PcapFormat::parse("PcapNG"), Some(PcapFormat::PcapNg));
    assert_eq!(PcapFormat::parse("pcap"), Some(PcapFormat::Pcap));
    assert_eq!(PcapFormat::parse("cap"), None);
}

#[test]
fn drop_flushes() {
    let f = TempFile::new("drop.pcap");
    {
        let mut w = PcapWriter::create(f.path(), PcapFormat::Pcap, Sample::All).unwrap();
        w.offer(1, &[1; 60]).unwrap();
    }
    assert_eq!(read_records(f.path()).len(), 1);
}

#[test]
fn timestamps_after_2106_do_not_fit_classic_pcap() {
    let f = TempFile::new("2106.pcap");
    let mut w = PcapWriter::create(f.path(), PcapFormat::Pcap, Sample::All).unwrap();
    let e = w.offer(u64::MAX, &[0; 60]).unwrap_err();
    assert!(matches!(e, PcapError::Unwritable { frame: 0, .. }), "{e}");
    assert!(e.to_string().contains(&f.path().display().to_string()));
    // pcapng's 64-bit timestamps hold it.
    let g = TempFile::new("2106.pcapng");
    write_file(
        g.path(),
        PcapFormat::PcapNg,
        Sample::All,
        &[(u64::MAX, vec![0; 60])],
    );
    assert_eq!(read_records(g.path())[0].ts_ns, u64::MAX);
}

#[test]
fn shared_writer_across_threads() {
    for (sample, expect) in [(Sample::All, 3200), (Sample::First(100), 100)] {
        let f = TempFile::new("shared.pcapng");
        let shared = SharedPcap::create(f.path(), PcapFormat::PcapNg, sample).unwrap();
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let shared = shared.clone();
                std::thread::spawn(move || {
                    let frame = [t as u8; 64];
                    for batch in 0..100u64 {
                        let ts = t * 1_000_000 + batch * 8;
                        let batch: Vec<(u64, &[u8])> =
                            (0..8).map(|i| (ts + i, &frame[..])).collect();
                        shared.offer_batch(batch).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(shared.wants_more(), expect == 3200);
        let summary = shared.finish().unwrap();
        assert_eq!(summary.written, expect);
        assert_eq!(summary.offered, 3200);
        assert_eq!(read_records(f.path()).len() as u64, expect);
    }
}

/// A classic pcap file, built by hand: `(ts_sec, ts_frac, orig_len, data)` records.
fn classic(
    big: bool,
    nano: bool,
    snaplen: u32,
    link: u32,
    recs: &[(u32, u32, u32, &[u8])],
) -> Vec<u8> {
    let w32 = |v: u32| {
        if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let w16 = |v: u16| {
        if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let mut out = Vec::new();
    out.extend(w32(if nano { 0xa1b2_3c4d } else { 0xa1b2_c3d4 }));
    out.extend(w16(2));
    out.extend(w16(4));
    out.extend(w32(0));
    out.extend(w32(0));
    out.extend(w32(snaplen));
    out.extend(w32(link));
    for (sec, frac, orig, data) in recs {
        out.extend(w32(*sec));
        out.extend(w32(*frac));
        out.extend(w32(data.len() as u32));
        out.extend(w32(*orig));
        out.extend(*data);
    }
    out
}

#[test]
fn classic_byte_orders_and_resolutions() {
    let data = [7u8; 96];
    for big in [false, true] {
        for nano in [false, true] {
            // A `tcpdump -s 96` capture: original length over the snaplen, which is valid.
            let bytes = classic(
                big,
                nano,
                96,
                1,
                &[(1_600_000_000, 999_999, 1500, &data), (1, 0, 96, &data)],
            );
            let f = TempFile::with_bytes("classic", &bytes);
            let r = read_records(f.path());
            let scale = if nano { 1 } else { 1000 };
            assert_eq!(r[0].ts_ns, 1_600_000_000 * 1_000_000_000 + 999_999 * scale);
            assert_eq!(r[1].ts_ns, 1_000_000_000);
            assert_eq!((r[0].orig_len, &r[0].data[..]), (1500, &data[..]));
        }
    }
}

/// A pcapng file, built by hand, in either byte order.
struct Ng {
    big: bool,
    out: Vec<u8>,
}

impl Ng {
    fn new(big: bool) -> Ng {
        let mut ng = Ng {
            big,
            out: Vec::new(),
        };
        ng.shb();
        ng
    }

    fn w32(&self, v: u32) -> [u8; 4] {
        if self.big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }

    fn block(&mut self, block_type: u32, body: &[u8]) -> &mut Ng {
        let mut body = body.to_vec();
        body.resize(body.len().next_multiple_of(4), 0);
        let len = body.len() as u32 + 12;
        let (t, l) = (self.w32(block_type), self.w32(len));
        self.out.extend(t);
        self.out.extend(l);
        self.out.extend(body);
        self.out.extend(l);
        self
    }

    fn shb(&mut self) -> &mut Ng {
        let mut body = self.w32(0x1a2b_3c4d).to_vec();
        body.extend(self.w32(1)[if self.big { 2.. } else { 0.. }].iter().take(2));
        body.extend([0, 0]);
        body.extend([0xff; 8]);
        self.block(0x0a0d_0d0a, &body)
    }

    fn idb(&mut self, link: u16, snaplen: u32, options: &[(u16, &[u8])]) -> &mut Ng {
        let w16 = |v: u16| {
            if self.big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let mut body = Vec::new();
        body.extend(w16(link));
        body.extend([0, 0]);
        body.extend(self.w32(snaplen));
        for (code, value) in options {
            body.extend(w16(*code));
            body.extend(w16(value.len() as u16));
            body.extend(*value);
            body.resize(body.len().next_multiple_of(4), 0);
        }
        if !options.is_empty() {
            body.extend([0; 4]);
        }
        self.block(1, &body)
    }

    fn epb(&mut self, iface: u32, units: u64, orig: u32, data: &[u8]) -> &mut Ng {
        let mut body = Vec::new();
        body.extend(self.w32(iface));
        body.extend(self.w32((units >> 32) as u32));
        body.extend(self.w32(units as u32));
        body.extend(self.w32(data.len() as u32));
        body.extend(self.w32(orig));
        body.extend(data);
        self.block(6, &body)
    }

    fn spb(&mut self, orig: u32, data: &[u8]) -> &mut Ng {
        let mut body = self.w32(orig).to_vec();
        body.extend(data);
        self.block(3, &body)
    }
}

#[test]
fn pcapng_resolutions_offsets_interfaces_and_sections() {
    for big in [false, true] {
        let mut ng = Ng::new(big);
        let off: i64 = -100;
        let off_bytes = if big {
            off.to_be_bytes()
        } else {
            off.to_le_bytes()
        };
        ng.idb(1, 0, &[]) // default: µs
            .idb(1, 0, &[(9, &[0x8a])]) // 2^-10 s
            .idb(1, 0, &[(2, b"eth\xff"), (9, &[3]), (14, &off_bytes)]) // ms, -100 s
            .block(4, &[1, 2, 3]) // name resolution: skipped unread
            .block(0x4000_0bad, &[0; 40]) // custom: skipped
            .epb(0, 5_000_001, 60, &[1; 60])
            .epb(1, 3 << 10, 61, &[2; 61])
            .epb(2, 200_000, 62, &[3; 62])
            .spb(1000, &[4; 64]); // interface 0's snaplen is 0: all 64 bytes, no padding
                                  // A new section in the other byte order: interfaces numbered from 0 again.
        let mut second = Ng::new(!big);
        second
            .idb(1, 10, &[(9, &[9])])
            .epb(0, 42, 60, &[5; 60])
            .spb(7, &[6; 7]);
        ng.out.extend(&second.out);
        let f = TempFile::with_bytes("ng", &ng.out);
        let r = read_records(f.path());
        let got: Vec<(u64, u32, usize)> = r
            .iter()
            .map(|r| (r.ts_ns, r.orig_len, r.data.len()))
            .collect();
        assert_eq!(
            got,
            vec![
                (5_000_001_000, 60, 60),
                (3_000_000_000, 61, 61),
                (100_000_000_000, 62, 62),
                (100_000_000_000, 1000, 64),
                (42, 60, 60),
                (42, 7, 7), // SPB: cut to its original length, padding dropped
            ],
            "big endian: {big}"
        );
        assert_eq!(r[5].data, vec![6; 7]);
    }
}

#[test]
fn pcapng_spb_respects_the_snaplen() {
    let mut ng = Ng::new(false);
    ng.idb(1, 16, &[]).spb(60, &[9; 16]);
    let f = TempFile::with_bytes("spb", &ng.out);
    let r = read_records(f.path());
    assert_eq!((r[0].orig_len, r[0].data.len()), (60, 16));
}

/// Where a valid file can end: after the header and after each record (for pcapng, after
/// every block).
fn boundaries(bytes: &[u8]) -> Vec<usize> {
    let mut at = vec![];
    if bytes[0..4] == [0x0a, 0x0d, 0x0d, 0x0a] {
        let mut pos = 0;
        while pos < bytes.len() {
            pos += u32::from_ne_bytes(bytes[pos + 4..pos + 8].try_into().unwrap()) as usize;
            at.push(pos);
        }
    } else {
        let mut pos = 24;
        at.push(pos);
        while pos < bytes.len() {
            pos += 16 + u32::from_ne_bytes(bytes[pos + 8..pos + 12].try_into().unwrap()) as usize;
            at.push(pos);
        }
    }
    at
}

#[test]
fn cut_at_every_byte() {
    let frames: Vec<(u64, Vec<u8>)> = frames().into_iter().take(5).collect();
    for format in [PcapFormat::Pcap, PcapFormat::PcapNg] {
        let f = TempFile::new("whole");
        write_file(f.path(), format, Sample::All, &frames);
        let bytes = std::fs::read(f.path()).unwrap();
        let ends = boundaries(&bytes);
        assert_eq!(ends.last(), Some(&bytes.len()));
        for cut in 0..bytes.len() {
            let (records, err) = drain(&bytes[..cut]);
            let complete = ends.iter().filter(|&&e| e <= cut).count();
            // Records whose end is within the cut (the header ends first; pcapng has two
            // header blocks).
            let header_blocks = if format == PcapFormat::Pcap { 1 } else { 2 };
            let whole = complete.saturating_sub(header_blocks);
            assert_eq!(records.len(), whole, "{format} cut at {cut}");
            assert_same(&records, &frames[..whole]);
            match err {
                None => assert!(ends.contains(&cut), "{format} cut at {cut}: no error"),
                Some(PcapError::Empty { .. }) => assert_eq!(cut, 0),
                Some(PcapError::Truncated { record, .. }) => {
                    assert!(!ends.contains(&cut), "{format} cut at {cut}");
                    assert_eq!(record, whole as u64, "{format} cut at {cut}");
                }
                Some(e) => panic!("{format} cut at {cut}: {e}"),
            }
        }
    }
}

#[test]
fn empty_and_tiny_files() {
    let (_, e) = drain(&[]);
    assert!(matches!(e, Some(PcapError::Empty { .. })), "{e:?}");
    let (_, e) = drain(&[0xd4, 0xc3]);
    assert!(
        matches!(e, Some(PcapError::Truncated { record: 0, .. })),
        "{e:?}"
    );
    let (_, e) = drain(&[0x0a]);
    assert!(
        matches!(e, Some(PcapError::Truncated { record: 0, .. })),
        "{e:?}"
    );
    let (_, e) = drain(b"GI");
    assert!(
        matches!(
            e,
            Some(PcapError::NotPcap {
                magic: 0x4749_0000,
                ..
            })
        ),
        "{e:?}"
    );
}

fn error_of(name: &str, bytes: &[u8]) -> (Vec<PcapRecord>, PcapError) {
    let (records, e) = drain(bytes);
    (records, e.unwrap_or_else(|| panic!("{name}: no error")))
}

#[test]
fn garbage_and_absurd_lengths() {
    let e = error_of("gif", b"GIF89a and so on").1;
    assert!(
        e.to_string()
            .contains("not a pcap or pcapng file: starts with 0x47494638"),
        "{e}"
    );

    let ok = [1u8; 60];
    let mut huge = classic(false, true, 65535, 1, &[(1, 0, 60, &ok), (1, 0, 60, &ok)]);
    huge[24 + 16 + 60 + 8..24 + 16 + 60 + 12].copy_from_slice(&u32::MAX.to_le_bytes());
    let (r, e) = error_of("classic incl_len 4G", &huge);
    assert_eq!(r.len(), 1);
    assert!(
        matches!(
            e,
            PcapError::Truncated {
                record: 1,
                offset: 100,
                ..
            }
        ),
        "{e}"
    );

    let big = vec![0u8; 300_000];
    let over = classic(false, true, 65535, 1, &[(1, 0, 300_000, &big)]);
    let e = error_of("classic incl_len 300000", &over).1;
    assert!(
        matches!(
            e,
            PcapError::Corrupt {
                record: 0,
                offset: 24,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("captured length 300000"), "{e}");

    let frac = classic(false, false, 65535, 1, &[(1, 1_000_000, 60, &ok)]);
    assert!(matches!(
        error_of("µs fraction", &frac).1,
        PcapError::Corrupt { .. }
    ));

    // pcapng: a packet block claiming 4 GiB.
    let mut ng = Ng::new(false);
    ng.idb(1, 0, &[]).epb(0, 1, 60, &ok);
    let at = ng.out.len();
    ng.epb(0, 2, 60, &ok);
    let mut bad = ng.out.clone();
    bad[at + 4..at + 8].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
    let (r, e) = error_of("ng block len", &bad);
    assert_eq!(r.len(), 1);
    assert!(matches!(e, PcapError::Corrupt { record: 1, .. }), "{e}");
    // ... an unknown block claiming 4 GiB: skipped, but the file is too short for it.
    bad[at..at + 4].copy_from_slice(&0x0bad_0bad_u32.to_le_bytes());
    assert!(matches!(
        error_of("unknown len", &bad).1,
        PcapError::Truncated { record: 1, .. }
    ));
    // ... a captured length beyond its block, and beyond any snaplen.
    for caplen in [64u32, 0xffff_fff0] {
        let mut bad = ng.out.clone();
        bad[at + 20..at + 24].copy_from_slice(&caplen.to_le_bytes());
        assert!(matches!(
            error_of("caplen", &bad).1,
            PcapError::Corrupt { record: 1, .. }
        ));
    }
    // ... a length that is not a multiple of 4, and trailing lengths that disagree.
    let mut bad = ng.out.clone();
    bad[at + 4] += 1;
    assert!(matches!(
        error_of("len % 4", &bad).1,
        PcapError::Corrupt { .. }
    ));
    let mut bad = ng.out.clone();
    let end = bad.len();
    bad[end - 4] ^= 4;
    assert!(matches!(
        error_of("trailer", &bad).1,
        PcapError::Corrupt { .. }
    ));
    // ... a packet on an interface never described, a bad byte-order magic, version 2.
    let mut bad = Ng::new(false);
    bad.idb(1, 0, &[]).epb(3, 1, 60, &ok);
    let e = error_of("iface", &bad.out).1;
    assert!(e.to_string().contains("interface 3"), "{e}");
    let mut bad = Ng::new(false);
    bad.epb(0, 1, 60, &ok);
    assert!(matches!(
        error_of("no idb", &bad.out).1,
        PcapError::Corrupt { record: 0, .. }
    ));
    let mut bad = Ng::new(false).out;
    bad[8] = 0x99;
    assert!(error_of("bom", &bad)
        .1
        .to_string()
        .contains("byte-order magic"));
    let mut bad = Ng::new(false).out;
    bad[12] = 2;
    assert!(error_of("version", &bad)
        .1
        .to_string()
        .contains("version 2.0"));
    let mut bad = Ng::new(false);
    bad.idb(1, 0, &[(9, &[20])]);
    assert!(error_of("tsresol", &bad.out)
        .1
        .to_string()
        .contains("if_tsresol"));
}

#[test]
fn non_ethernet_link_types() {
    let ok = [1u8; 40];
    let raw = classic(false, true, 65535, 101, &[(1, 0, 40, &ok)]);
    let f = TempFile::with_bytes("raw.pcap", &raw);
    let e = read_all(f.path(), 10).unwrap_err();
    assert!(matches!(
        e,
        PcapError::UnsupportedLinkType {
            link_type: LinkType(101),
            ..
        }
    ));
    let msg = e.to_string();
    assert!(
        msg.contains("link type RAW (101) is not supported"),
        "{msg}"
    );
    assert!(msg.contains(&f.path().display().to_string()), "{msg}");
    // PcapReader itself reads any link type.
    let mut reader = PcapReader::open(f.path()).unwrap();
    assert_eq!(reader.link_type(), Some(LinkType(101)));
    assert!(reader.next_record().unwrap().is_ok());
    // Even with no packets, a classic file of another link type is refused.
    let empty = classic(false, true, 65535, 113, &[]);
    let f = TempFile::with_bytes("sll.pcap", &empty);
    assert!(matches!(
        read_all(f.path(), 10),
        Err(PcapError::UnsupportedLinkType { .. })
    ));
    // pcapng: per packet. An unused Linux-cooked interface is harmless ...
    let mut ng = Ng::new(false);
    ng.idb(113, 0, &[]).idb(1, 0, &[]).epb(1, 1, 60, &[0; 60]);
    let f = TempFile::with_bytes("mixed.pcapng", &ng.out);
    assert_eq!(read_all(f.path(), 10).unwrap().len(), 1);
    // ... a packet on it is not.
    ng.epb(0, 2, 60, &[0; 60]);
    let f = TempFile::with_bytes("mixed2.pcapng", &ng.out);
    let e = read_all(f.path(), 10).unwrap_err();
    assert!(e.to_string().contains("LINUX_SLL (113)"), "{e}");
}

#[test]
fn too_many_frames() {
    let f = TempFile::new("many.pcap");
    write_file(f.path(), PcapFormat::Pcap, Sample::All, &frames()[..5]);
    assert_eq!(read_all(f.path(), 5).unwrap().len(), 5);
    let e = read_all(f.path(), 4).unwrap_err();
    assert!(matches!(e, PcapError::TooManyFrames { max: 4, .. }));
    assert!(e.to_string().contains("more than 4 frames"), "{e}");
}

#[test]
fn every_error_names_the_file() {
    let missing = TempFile::new("missing.pcap");
    let errors = [
        PcapReader::open(missing.path()).unwrap_err(),
        drain(&[]).1.unwrap(),
        drain(b"hello world").1.unwrap(),
        drain(&Ng::new(false).out[..20]).1.unwrap(),
    ];
    for e in errors {
        let msg = e.to_string();
        assert!(msg.starts_with(&e.path().display().to_string()), "{msg}");
        assert!(msg.contains("skiff-pcap-test-"), "{msg}");
    }
}

fn valid_files() -> Vec<Vec<u8>> {
    let frames: Vec<(u64, Vec<u8>)> = frames().into_iter().take(3).collect();
    [PcapFormat::Pcap, PcapFormat::PcapNg]
        .iter()
        .map(|&format| {
            let f = TempFile::new("valid");
            write_file(f.path(), format, Sample::All, &frames);
            std::fs::read(f.path()).unwrap()
        })
        .collect()
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        drain(&bytes);
    }

    #[test]
    fn random_bytes_after_a_magic_never_panic(
        magic in 0usize..5,
        bytes in proptest::collection::vec(any::<u8>(), 0..600),
    ) {
        let magics: [&[u8]; 5] = [
            &[0xa1, 0xb2, 0xc3, 0xd4],
            &[0xd4, 0xc3, 0xb2, 0xa1],
            &[0x4d, 0x3c, 0xb2, 0xa1],
            &[0x0a, 0x0d, 0x0d, 0x0a, 0x1c, 0, 0, 0, 0x4d, 0x3c, 0x2b, 0x1a],
            &[0x0a, 0x0d, 0x0d, 0x0a, 0, 0, 0, 0x1c, 0x1a, 0x2b, 0x3c, 0x4d],
        ];
        let mut file = magics[magic].to_vec();
        file.extend(bytes);
        drain(&file);
    }

    #[test]
    fn mutated_valid_files_never_panic(
        which in 0usize..2,
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
    ) {
        let mut file = valid_files().swap_remove(which);
        let len = file.len();
        for (at, value) in edits {
            file[at % len] = value;
        }
        drain(&file);
    }
}

// Interop: the tools people open these files with.

/// Runs a capture reader, failing the test (not skipping it) if it is not installed.
fn run_tool(tool: &str, args: &[&str]) -> String {
    let out = match Command::new(tool).args(args).output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "{tool} is not installed, so skiff's pcap output cannot be checked against it: \
             install it (apt-get install tcpdump tshark)"
        ),
        Err(e) => panic!("running {tool}: {e}"),
    };
    assert!(
        out.status.success(),
        "{tool} {args:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Two Ethernet/IPv4/UDP frames built with etherparse, at ns timestamps.
fn udp_frames() -> Vec<(u64, Vec<u8>)> {
    (0..2u16)
        .map(|i| {
            let payload = vec![0x42; 18 + usize::from(i) * 100];
            let builder =
                etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
                    .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
                    .udp(40_000 + i, 9);
            let mut frame = Vec::with_capacity(builder.size(payload.len()));
            builder
                .write(&mut frame, &payload)
                .expect("building a frame");
            (
                1_700_000_000_123_456_789 + u64::from(i) * 1_000_000_001,
                frame,
            )
        })
        .collect()
}

#[test]
fn tcpdump_and_tshark_read_our_files() {
    let frames = udp_frames();
    for format in [PcapFormat::Pcap, PcapFormat::PcapNg] {
        let f = TempFile::new(&format!("interop.{format}"));
        write_file(f.path(), format, Sample::All, &frames);
        let path = f.path().to_str().expect("temp path is UTF-8");

        let tcpdump = run_tool("tcpdump", &["-r", path, "-nn", "--nano"]);
        let lines: Vec<&str> = tcpdump.lines().collect();
        assert_eq!(lines.len(), 2, "{format}: tcpdump printed:\n{tcpdump}");
        for (i, line) in lines.iter().enumerate() {
            assert!(
                line.contains(&format!("10.0.0.1.{} > 10.0.0.2.9: UDP", 40_000 + i)),
                "{line}"
            );
            // Nanosecond time of day survives.
            assert!(
                line.contains(&format!(".{:09}", frames[i].0 % 1_000_000_000)),
                "{line}"
            );
        }

        let tshark = run_tool("tshark", &["-r", path]);
        assert_eq!(
            tshark.lines().count(),
            2,
            "{format}: tshark printed:\n{tshark}"
        );
        let fields = run_tool(
            "tshark",
            &[
                "-r",
                path,
                "-T",
                "fields",
                "-e",
                "frame.time_epoch",
                "-e",
                "frame.len",
                "-e",
                "udp.srcport",
            ],
        );
        let got: Vec<String> = fields.lines().map(str::to_string).collect();
        let want: Vec<String> = frames
            .iter()
            .enumerate()
            .map(|(i, (ts, data))| {
                format!(
                    "{}.{:09}\t{}\t{}",
                    ts / 1_000_000_000,
                    ts % 1_000_000_000,
                    data.len(),
                    40_000 + i
                )
            })
            .collect();
        assert_eq!(got, want, "{format}: tshark fields");
    }
}
