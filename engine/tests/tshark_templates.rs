//! Interop: Wireshark's dissectors (tshark), written by others, read skiff's generated
//! frames. Every template kind, with and without a VLAN tag, fixed / uniform / IMIX sizes,
//! every payload kind, without variation and with incremental and random variation, goes
//! through `FrameSource` into one pcap file; tshark then checks every IPv4, UDP, TCP, ICMP
//! and ICMPv6 checksum and reports anything malformed.
//!
//! A second test writes frames with deliberately broken checksums and checks that tshark,
//! run the same way, flags every one of them: the first test's silence means something.
//!
//! Needs `tshark` on the PATH (deploy/setup.sh installs it); without it the tests fail.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Command;

use skiff_engine::gen::size::SizeSpec;
use skiff_engine::gen::source::FrameSource;
use skiff_engine::gen::vary::{AddrRange, PortRange, Variation, VaryMode};
use skiff_engine::pcap::{PcapFormat, PcapWriter, Sample};
use skiff_engine::wire::template::{Payload, TemplateKind, TemplateSpec, Vlan};

/// Frames written per case.
const FRAMES_PER_CASE: u64 = 200;

/// Expert-info groups and severities as tshark prints them with `-T fields`
/// (epan/proto.h: `PI_CHECKSUM`, `PI_SEQUENCE`, `PI_MALFORMED`, `PI_WARN`).
const PI_CHECKSUM: u32 = 0x0100_0000;
/// Sequence group: TCP analysis and request/response matching.
const PI_SEQUENCE: u32 = 0x0200_0000;
/// Malformed group.
const PI_MALFORMED: u32 = 0x0700_0000;
/// Warning severity (errors are 0x0080_0000, above it).
const PI_WARN: u32 = 0x0060_0000;

/// A temporary file removed on drop, even when the test panics (kept when
/// `SKIFF_KEEP_PCAP` is set, to open it in Wireshark).
struct TempFile(PathBuf);

impl TempFile {
    fn new(tag: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        TempFile(std::env::temp_dir().join(format!(
            "skiff-tshark-{tag}-{}-{nanos}.pcap",
            std::process::id()
        )))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if std::env::var_os("SKIFF_KEEP_PCAP").is_none() {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

/// One combination: a description and what the source is built from.
struct Case {
    name: String,
    spec: TemplateSpec,
    var: Variation,
    sizes: SizeSpec,
}

fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    for kind in TemplateKind::ALL {
        for vlan in [None, Some(Vlan { id: 100, pcp: 5 })] {
            for (sname, sizes) in [
                ("fixed-64", SizeSpec::Fixed(64)),
                ("uniform", SizeSpec::Uniform { lo: 64, hi: 1518 }),
                ("imix", SizeSpec::parse("imix").expect("imix parses")),
            ] {
                for payload in [
                    Payload::Zero,
                    Payload::Pattern,
                    Payload::parse("text:skiff").expect("payload parses"),
                ] {
                    for vary in ["none", "inc", "random"] {
                        let (src, dst) = if kind.is_v6() {
                            (ip("2001:2::1"), ip("2001:2::2"))
                        } else {
                            (ip("198.18.0.1"), ip("198.19.0.1"))
                        };
                        let mut spec = TemplateSpec::new(kind, src, dst);
                        spec.vlan = vlan;
                        spec.dscp = 10;
                        spec.payload = payload.clone();
                        let range = |s: &str| Some(AddrRange::parse(s).expect("range parses"));
                        let var = match vary {
                            "none" => Variation::default(),
                            _ => Variation {
                                src_ip: if kind.is_v6() {
                                    range("2001:2::1:0/112")
                                } else {
                                    range("198.18.0.0/16")
                                },
                                dst_ip: if kind.is_v6() {
                                    range("2001:2::ff00-2001:2::ff0f")
                                } else {
                                    range("198.19.0.1-198.19.0.5")
                                },
                                src_port: Some(PortRange { lo: 1, hi: 65535 }),
                                dst_port: (!kind.is_icmp())
                                    .then_some(PortRange { lo: 9000, hi: 9099 }),
                                mode: if vary == "inc" {
                                    VaryMode::Increment
                                } else {
                                    VaryMode::Random { seed: 42 }
                                },
                            },
                        };
                        let name = format!(
                            "{kind} vlan={} sizes={sname} payload={payload:?} vary={vary}",
                            vlan.is_some()
                        );
                        out.push(Case {
                            name,
                            spec,
                            var,
                            sizes: sizes.clone(),
                        });
                    }
                }
            }
        }
    }
    out
}

fn require_tshark() {
    let version = Command::new("tshark").arg("--version").output();
    if !matches!(&version, Ok(o) if o.status.success()) {
        panic!("tshark is not available ({version:?}): install tshark (deploy/setup.sh does)");
    }
}

/// One expert item tshark attached to a frame.
#[derive(Debug)]
struct Expert {
    group: u32,
    severity: u32,
    message: String,
}

/// What tshark says about one frame.
#[derive(Debug)]
struct Dissected {
    number: u64,
    protocols: String,
    experts: Vec<Expert>,
    malformed: bool,
}

/// Runs tshark over `path` with every checksum check on and returns one entry per frame.
///
/// Varied ports land on well-known ones (53, 67, 123, ...), where Wireshark would decode
/// the zero / pattern / text payload as DNS, DHCP, NTP... and call it malformed. Those
/// payloads are not meant to be DNS, so every UDP and TCP port is decoded as plain `data`:
/// the check stays on what skiff builds, Ethernet to L4.
fn tshark(path: &std::path::Path) -> Vec<Dissected> {
    let out = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(path)
        .args([
            "-o",
            "ip.check_checksum:TRUE",
            "-o",
            "udp.check_checksum:TRUE",
            "-o",
            "tcp.check_checksum:TRUE",
            "-d",
            "udp.port==1-65535,data",
            "-d",
            "tcp.port==1-65535,data",
            "-T",
            "fields",
            "-E",
            "separator=\t",
            "-E",
            "occurrence=a",
            "-E",
            "aggregator=\x1f",
            "-e",
            "frame.number",
            "-e",
            "frame.protocols",
            "-e",
            "_ws.expert.group",
            "-e",
            "_ws.expert.severity",
            "-e",
            "_ws.expert.message",
            "-e",
            "_ws.malformed",
        ])
        .output()
        .expect("running tshark");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "tshark failed ({}): {stderr}",
        out.status
    );
    let num = |s: &str| s.parse::<u32>().unwrap_or(0);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            let col = |i: usize| cols.get(i).copied().unwrap_or("");
            let experts = col(2)
                .split('\x1f')
                .zip(col(3).split('\x1f'))
                .zip(col(4).split('\x1f'))
                .filter(|((g, _), _)| !g.is_empty())
                .map(|((g, s), m)| Expert {
                    group: num(g),
                    severity: num(s),
                    message: m.to_string(),
                })
                .collect();
            Dissected {
                number: col(0).parse().unwrap_or(0),
                protocols: col(1).to_string(),
                experts,
                malformed: !col(5).is_empty(),
            }
        })
        .collect()
}

/// The protocol stack tshark should show for a case: `eth:ethertype[:vlan:ethertype]:ip...`.
fn expected_stack(spec: &TemplateSpec) -> String {
    let l3 = if spec.kind.is_v6() { "ipv6" } else { "ip" };
    let l4 = match spec.kind {
        TemplateKind::Udp4 | TemplateKind::Udp6 => "udp",
        TemplateKind::TcpSyn4 | TemplateKind::TcpSyn6 => "tcp",
        TemplateKind::Icmp4 => "icmp",
        TemplateKind::Icmp6 => "icmpv6",
    };
    let vlan = if spec.vlan.is_some() {
        "vlan:ethertype:"
    } else {
        ""
    };
    format!("eth:ethertype:{vlan}{l3}:{l4}")
}

#[test]
fn tshark_finds_nothing_wrong_in_generated_frames() {
    require_tshark();
    let file = TempFile::new("templates");
    let mut w = PcapWriter::create(&file.0, PcapFormat::Pcap, Sample::All)
        .unwrap_or_else(|e| panic!("creating {}: {e}", file.0.display()));

    let cases = cases();
    // Frame number - 1 → the case that wrote it.
    let mut case_of: Vec<usize> = Vec::new();
    let mut buf = vec![0u8; 2048];
    let t0 = 1_700_000_000_000_000_000u64; // November 2023, in ns since the epoch
    for (i, case) in cases.iter().enumerate() {
        let mut src = FrameSource::new(&case.spec, &case.var, &case.sizes, 7)
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        for _ in 0..FRAMES_PER_CASE {
            let n = src.next_into(&mut buf);
            assert!(n >= 60, "{}: frame of {n} bytes", case.name);
            // Frames 1 µs apart.
            let ts = t0 + case_of.len() as u64 * 1_000;
            let kept = w
                .offer(ts, &buf[..n])
                .unwrap_or_else(|e| panic!("writing {}: {e}", file.0.display()));
            assert!(kept, "Sample::All keeps every frame");
            case_of.push(i);
        }
    }
    let written = case_of.len() as u64;
    let summary = w.finish().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(summary.written, written);

    let frames = tshark(&file.0);
    assert_eq!(
        frames.len() as u64,
        written,
        "tshark read {} packets, {written} were written",
        frames.len()
    );
    let mut complaints = Vec::new();
    let mut tolerated = BTreeMap::<String, u64>::new();
    for f in &frames {
        let Some(case) = f
            .number
            .checked_sub(1)
            .and_then(|i| case_of.get(i as usize))
            .map(|&i| &cases[i])
        else {
            complaints.push(format!("frame number {:?} out of range", f.number));
            continue;
        };
        let stack = expected_stack(&case.spec);
        if !f.protocols.starts_with(&stack) {
            complaints.push(format!(
                "frame {} [{}]: dissected as {}, expected {stack}",
                f.number, case.name, f.protocols
            ));
        }
        if f.malformed {
            complaints.push(format!("frame {} [{}]: malformed", f.number, case.name));
        }
        for e in &f.experts {
            // Fatal: anything about checksums or malformation, and any warning or error
            // outside the Sequence group. The Sequence group is about the conversation,
            // not the frame: the generator sends many SYNs with one fixed ISN on the same
            // 4-tuple, which TCP analysis calls retransmissions (note) and out-of-order
            // segments (warning), and every SYN is a "connection establish request" (chat);
            // unanswered echo requests would be "no response seen" there too.
            let fatal = e.group == PI_CHECKSUM
                || e.group == PI_MALFORMED
                || (e.severity >= PI_WARN && e.group != PI_SEQUENCE);
            if fatal {
                complaints.push(format!(
                    "frame {} [{}]: expert group {:#x} severity {:#x}: {}",
                    f.number, case.name, e.group, e.severity, e.message
                ));
            } else {
                let gist: String = e.message.chars().filter(|c| !c.is_ascii_digit()).collect();
                *tolerated
                    .entry(format!(
                        "group {:#x} severity {:#x}: {gist}",
                        e.group, e.severity
                    ))
                    .or_default() += 1;
            }
        }
    }
    eprintln!("{written} frames; tolerated tshark expert items: {tolerated:#?}");
    assert!(
        complaints.is_empty(),
        "tshark complained about {} frames (first 40):\n{}",
        complaints.len(),
        complaints
            .iter()
            .take(40)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// The control: the same tshark run flags a broken IPv4 header checksum and a broken L4
/// checksum of every kind, so the silence above is not a check switched off.
#[test]
fn tshark_flags_broken_checksums() {
    require_tshark();
    let file = TempFile::new("broken");
    let mut w = PcapWriter::create(&file.0, PcapFormat::Pcap, Sample::All)
        .unwrap_or_else(|e| panic!("creating {}: {e}", file.0.display()));
    let mut what = Vec::new();
    for kind in TemplateKind::ALL {
        let (src, dst) = if kind.is_v6() {
            (ip("2001:2::1"), ip("2001:2::2"))
        } else {
            (ip("198.18.0.1"), ip("198.19.0.1"))
        };
        let spec = TemplateSpec::new(kind, src, dst);
        let lay = spec.layout();
        let good = spec.build(128).expect("template builds");
        let mut targets = vec![("L4", lay.l4_csum)];
        if let Some(at) = lay.ip_csum {
            targets.push(("IPv4 header", at));
        }
        for (name, at) in targets {
            let mut f = good.clone();
            f[at] ^= 0x5a; // any change breaks a checksum
            w.offer(1_000 * what.len() as u64, &f)
                .unwrap_or_else(|e| panic!("{e}"));
            what.push(format!("{kind} with a broken {name} checksum"));
        }
    }
    w.finish().unwrap_or_else(|e| panic!("{e}"));
    let frames = tshark(&file.0);
    assert_eq!(frames.len(), what.len());
    for (f, what) in frames.iter().zip(&what) {
        assert!(
            f.experts.iter().any(|e| e.group == PI_CHECKSUM),
            "tshark did not flag frame {} ({what}): {f:?}",
            f.number
        );
    }
}
