//! GRO checked against the Linux kernel's own (privileged, veth).
//!
//! 1. A real kernel TCP stream is captured: namespace a sends to namespace b with TSO, GSO
//!    and TX checksum offload off on a's veth (so segments are 1448 bytes with real
//!    checksums), GRO off on b's veth (so tcpdump on b sees the segments as sent), 1%
//!    loss in XDP on b's ingress (`skiff impair`: gaps, then the sender's retransmissions),
//!    writes of varied sizes (PSH), urgent
//!    data (URG), pauses (new TSvals) and a close (FIN).
//! 2. The same frames are replayed back to back by `skiff gen --pcap-in` into a second
//!    veth whose receiving side has `gro on` and tcpdump: the kernel's GRO merges them.
//!    `gro_flush_timeout` is set there: veth runs its NAPI poll after every frame an
//!    AF_XDP sender transmits, and without the timeout every poll ends with a flush, so
//!    the kernel would merge nothing; with it, a held packet survives polls until the
//!    jiffy ends (napi_complete_done flushes only packets older than a jiffy).
//! 3. The same frames go through skiff's GRO engine in one poll round (flushed once at
//!    the end), so its only flushes are the ones the rules force.
//!
//! How timing is accounted for: the kernel also flushes at jiffy boundaries (4 ms at
//! HZ=250), so some of its packets end early. Each output packet covers a run of input
//! segments; skiff's boundaries must all be kernel boundaries (skiff never merges what
//! the kernel refuses), and a kernel-only boundary is accepted only where the stream does
//! not force one: the segments on both sides of it are contiguous, carry the same ACK,
//! window, options, TTL/TOS and consecutive IP IDs, and the first has none of
//! PSH/URG/FIN/SYN/RST (those are timing cuts; their number is printed). Wherever the
//! stream forces a flush (flags, gaps, retransmissions, ACK or option changes) both must
//! have a boundary. Packets covering the same run of segments must be byte-identical
//! (headers, the partial TCP checksum, payload), full merges must reach 65226 bytes in
//! both, and the payload bytes of both outputs equal the input's, in order.

mod common;

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use common::Bed;
use skiff_engine::{
    pcap::read_all,
    rx::gro::{Gro, GroConfig, GroPacket},
};

/// TCP port the capture's server listens on.
const PORT: u16 = 5001;

fn ns_run(ns: &str, args: &[&str]) {
    let out = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("ip netns exec");
    assert!(
        out.status.success(),
        "{ns}: {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// tcpdump in `ns` on `ifname`, inbound TCP only, whole frames, written to `file`;
/// returns once it listens.
fn tcpdump(ns: &str, ifname: &str, file: &Path) -> Child {
    let mut child = Command::new("ip")
        .args([
            "netns", "exec", ns, "tcpdump", "-i", ifname, "-s", "0", "-U",
        ])
        // A 64 MiB capture buffer (in KiB): bursts of 64 KiB frames must not overflow it.
        .args(["-B", "65536", "--immediate-mode", "-Q", "in", "-w"])
        .arg(file)
        .arg("tcp")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tcpdump (deploy/setup.sh installs it)");
    let mut err = BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    let start = Instant::now();
    loop {
        line.clear();
        let n = err.read_line(&mut line).expect("tcpdump stderr");
        assert!(n > 0, "tcpdump exited before listening");
        if line.contains("listening on") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "tcpdump not ready"
        );
    }
    // Keep draining its stderr so it never blocks on a full pipe.
    std::thread::spawn(move || {
        let mut sink = String::new();
        while err.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
            sink.clear();
        }
    });
    child
}

/// Stops a tcpdump we started (SIGINT: it writes out what it buffered) and waits.
fn stop(mut child: Child) {
    // Give the last frames time to be written (-U flushes per packet).
    std::thread::sleep(Duration::from_millis(300));
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let start = Instant::now();
    while child.try_wait().expect("try_wait").is_none() {
        if start.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

const SERVER: &str = r#"
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(1); s.settimeout(30)
c, _ = s.accept(); c.settimeout(30); n = 0
c.setsockopt(socket.SOL_SOCKET, socket.SO_OOBINLINE, 1)
while True:
    d = c.recv(1 << 20)
    if not d: break
    n += len(d)
print(n)
"#;

/// Writes of varied sizes (a PSH at the end of each), urgent bytes now and then (URG),
/// 3 ms pauses (TSvals change between bursts), then close (FIN).
const CLIENT: &str = r#"
import socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=30)
buf = bytes(range(256)) * 4096
tot = 0
for i in range(40):
    k = [300000, 1000, 70000, 5000, 14480][i % 5]
    s.sendall(buf[:k]); tot += k
    if i % 7 == 3:
        s.send(b"U", socket.MSG_OOB); tot += 1
    time.sleep(0.003)
s.close()
print(tot)
"#;

fn python(ns: &str, script: &str, args: &[&str]) -> Child {
    Command::new("ip")
        .args([
            "netns", "exec", ns, "timeout", "60", "python3", "-c", script,
        ])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3")
}

fn wait_ok(child: Child, who: &str) -> String {
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{who} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// One captured TCP/IPv4 packet, parsed.
#[derive(Debug, Clone)]
struct Seg {
    frame: Vec<u8>,
    seq: u32,
    ack: u32,
    flags: u8,
    /// Data offset, reserved bits, flags, window: the word GRO compares.
    flag_word: u32,
    options: Vec<u8>,
    ttl_tos: (u8, u8),
    ip_id: u16,
    payload: std::ops::Range<usize>,
}

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const PSH: u8 = 0x08;
const URG: u8 = 0x20;
const CWR: u8 = 0x80;

fn parse(frame: &[u8]) -> Option<Seg> {
    let be16 = |at: usize| u16::from_be_bytes([frame[at], frame[at + 1]]);
    let be32 = |at: usize| u32::from_be_bytes(frame[at..at + 4].try_into().unwrap());
    if frame.len() < 54 || be16(12) != 0x0800 || frame[23] != 6 {
        return None;
    }
    let ihl = ((frame[14] & 0x0f) as usize) * 4;
    let tot = be16(16) as usize;
    let t = 14 + ihl;
    let doff = ((frame[t + 12] >> 4) as usize) * 4;
    Some(Seg {
        frame: frame.to_vec(),
        seq: be32(t + 4),
        ack: be32(t + 8),
        flags: frame[t + 13],
        flag_word: be32(t + 12),
        options: frame[t + 20..t + doff].to_vec(),
        ttl_tos: (frame[22], frame[15]),
        ip_id: be16(18),
        payload: t + doff..14 + tot,
    })
}

fn read(path: &Path) -> Vec<Seg> {
    read_all(path, 1 << 20)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .into_iter()
        .map(|r| parse(&r.data).unwrap_or_else(|| panic!("not TCP/IPv4 in {}", path.display())))
        .collect()
}

/// For each output packet, the index one past the last input segment it covers. Panics
/// if the packets are not consecutive runs of the input (reordered or changed bytes).
fn boundaries(input: &[Seg], out: &[Seg], who: &str) -> Vec<usize> {
    let mut at = 0usize;
    let mut ends = Vec::with_capacity(out.len());
    for (k, p) in out.iter().enumerate() {
        assert!(at < input.len(), "{who}: packet {k} beyond the input");
        assert_eq!(
            p.seq, input[at].seq,
            "{who}: packet {k} starts at the wrong seq"
        );
        let mut want = p.payload.len();
        let mut bytes = Vec::with_capacity(want);
        loop {
            let s = &input[at];
            bytes.extend_from_slice(&s.frame[s.payload.clone()]);
            at += 1;
            want = want.checked_sub(s.payload.len()).unwrap_or_else(|| {
                panic!("{who}: packet {k} ends inside input segment {}", at - 1)
            });
            if want == 0 {
                break;
            }
        }
        assert!(
            bytes == p.frame[p.payload.clone()],
            "{who}: packet {k} payload differs from the input segments"
        );
        ends.push(at);
    }
    assert_eq!(
        at,
        input.len(),
        "{who}: output covers only {at} of {} segments",
        input.len()
    );
    ends
}

/// Whether the stream forces a flush between input segments `b-1` and `b`.
fn forced(input: &[Seg], b: usize) -> bool {
    let (x, y) = (&input[b - 1], &input[b]);
    x.flags & (PSH | URG | FIN | SYN | RST) != 0
        || y.flags & (CWR | URG | SYN | RST) != 0
        || x.payload.is_empty()
        || y.payload.is_empty()
        || x.seq.wrapping_add(x.payload.len() as u32) != y.seq
        || x.ack != y.ack
        // Data offset, reserved bits, flags but CWR|PSH|FIN (0x0089_0000), window.
        || (x.flag_word ^ y.flag_word) & !0x0089_0000 != 0
        || x.options != y.options
        || x.ttl_tos != y.ttl_tos
        || x.ip_id.wrapping_add(1) != y.ip_id
        || y.payload.len() > x.payload.len()
}

/// skiff's GRO over `input`, as one poll round.
fn skiff_gro(input: &[Seg]) -> Vec<Seg> {
    let mut gro: Gro<usize> = Gro::new(GroConfig::default());
    let mut out = Vec::new();
    for (i, s) in input.iter().enumerate() {
        gro.receive(i, &s.frame, None, &mut out);
    }
    gro.flush(&mut out);
    let mut frames = Vec::with_capacity(out.len());
    for p in out {
        match p {
            GroPacket::Single(i) => frames.push(input[i].frame.clone()),
            GroPacket::Merged(m) => {
                let mut f = Vec::new();
                m.write_to(|&i| input[i].frame.as_slice(), &mut f);
                frames.push(f);
            }
        }
    }
    frames
        .iter()
        .map(|f| parse(f).expect("skiff wrote a TCP/IPv4 frame"))
        .collect()
}

#[test]
fn kernel_gro_oracle() {
    let _g = common::serial();
    let dir = std::env::temp_dir().join(format!("skiff-gro-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let cap = dir.join("stream.pcap");
    let kgro = dir.join("kernel-gro.pcap");

    // 1. Capture a kernel TCP stream as it arrives at b.
    {
        let bed = Bed::up("gc", 1);
        let (a, b) = (bed.ns_a(), bed.ns_b());
        ns_run(
            &a,
            &[
                "ethtool",
                "-K",
                &bed.if_a(),
                "tso",
                "off",
                "gso",
                "off",
                "tx",
                "off",
            ],
        );
        ns_run(&b, &["ethtool", "-K", &bed.if_b(), "gro", "off"]);
        // Loss before b's packet taps: `skiff impair` drops 1% of the data segments in
        // XDP on b's ingress (this kernel has no sch_netem), so the capture has gaps and
        // the sender's retransmissions.
        let ports = format!("{PORT}-{PORT}");
        let imp = common::start_ready(
            &bed,
            'b',
            &[
                "impair",
                "--iface",
                &bed.if_b(),
                "--loss",
                "1",
                "--ports",
                &ports,
            ],
            "impair",
        );
        let td = tcpdump(&b, &bed.if_b(), &cap);
        let server = python(&b, SERVER, &["198.18.0.2", &PORT.to_string()]);
        std::thread::sleep(Duration::from_millis(300));
        let sent = wait_ok(
            python(&a, CLIENT, &["198.18.0.2", &PORT.to_string()]),
            "client",
        );
        let got = wait_ok(server, "server");
        assert_eq!(sent, got, "the kernel TCP transfer lost data");
        stop(td);
        stop(imp);
    }
    let input: Vec<Seg> = read(&cap)
        .into_iter()
        .filter(|s| {
            // Ethernet 14 + IPv4 20: TCP source port at 34, destination port at 36.
            u16::from_be_bytes([s.frame[36], s.frame[37]]) == PORT
        })
        .collect();
    // The stream must exercise what the oracle is for.
    let mut gaps = 0;
    let mut retrans = 0;
    let mut max_end = input[0].seq;
    for w in input.windows(2) {
        let end = w[0].seq.wrapping_add(w[0].payload.len() as u32);
        max_end = if end.wrapping_sub(max_end) as i32 > 0 {
            end
        } else {
            max_end
        };
        if w[1].seq.wrapping_sub(max_end) as i32 > 0 {
            gaps += 1;
        }
        if (w[1].seq.wrapping_sub(max_end) as i32) < 0 {
            retrans += 1;
        }
    }
    let with = |f: u8| input.iter().filter(|s| s.flags & f != 0).count();
    let tsvals: std::collections::BTreeSet<_> = input.iter().map(|s| s.options.clone()).collect();
    eprintln!(
        "captured {} segments: {} gaps, {} retransmissions, {} PSH, {} URG, {} FIN, {} option sets",
        input.len(),
        gaps,
        retrans,
        with(PSH),
        with(URG),
        with(FIN),
        tsvals.len()
    );
    assert!(input.len() > 1000, "too few segments captured");
    assert!(gaps > 0 && retrans > 0, "no loss: no gaps to test");
    assert!(with(PSH) > 10 && with(URG) > 0 && with(FIN) > 0);
    assert!(tsvals.len() > 10, "TSvals never changed");

    // 2. The kernel's GRO.
    {
        let bed = Bed::up("gk", 1);
        let (a, b) = (bed.ns_a(), bed.ns_b());
        ns_run(
            &a,
            &["ethtool", "-K", &bed.if_a(), "tso", "off", "gso", "off"],
        );
        ns_run(&b, &["ethtool", "-K", &bed.if_b(), "gro", "on"]);
        // 20 ms: longer than the replay, so only jiffy ticks and the rules cut merges.
        let knob = format!("/sys/class/net/{}/gro_flush_timeout", bed.if_b());
        ns_run(&b, &["sh", "-c", &format!("echo 20000000 > {knob}")]);
        let td = tcpdump(&b, &bed.if_b(), &kgro);
        let capf = cap.to_string_lossy().to_string();
        let out = bed
            .cmd('a', &["gen", "--iface", &bed.if_a(), "--pcap-in", &capf])
            .args(["--rate", "200kpps", "--json", "--quiet"])
            .output()
            .expect("gen");
        let rep = common::json_of(&out, "gen --pcap-in");
        assert_eq!(common::u(&rep, &["tx_packets"]), input.len() as u64);
        stop(td);
    }
    let kernel = read(&kgro);
    let skiff = skiff_gro(&input);

    // Bytes: both deliver exactly the input, in order (checked inside `boundaries`).
    let kb = boundaries(&input, &kernel, "kernel");
    let sb = boundaries(&input, &skiff, "skiff");
    let kset: std::collections::BTreeSet<usize> = kb.iter().copied().collect();
    let sset: std::collections::BTreeSet<usize> = sb.iter().copied().collect();
    // skiff never merges across a kernel boundary...
    let skiff_only: Vec<_> = sset.difference(&kset).collect();
    assert!(
        skiff_only.is_empty(),
        "skiff flushed where the kernel merged, after input segments {skiff_only:?}"
    );
    // ...and the kernel's other boundaries are timing cuts, never forced ones.
    let timing: Vec<usize> = kset.difference(&sset).copied().collect();
    for &b in &timing {
        assert!(
            b < input.len() && !forced(&input, b),
            "the kernel flushed after segment {} where skiff merged; the stream does not \
             allow that merge as a timing cut",
            b - 1
        );
    }
    // Wherever the stream forces a flush, both flush.
    for b in 1..input.len() {
        if forced(&input, b) {
            assert!(
                sset.contains(&b),
                "skiff merged across a forced flush after segment {}",
                b - 1
            );
        }
    }
    // Packets covering the same segments are identical, byte for byte.
    let mut starts_k = std::collections::BTreeMap::new();
    let mut prev = 0;
    for (i, &e) in kb.iter().enumerate() {
        starts_k.insert((prev, e), i);
        prev = e;
    }
    let (mut same, mut prev) = (0usize, 0usize);
    let mut full = 0usize;
    for (i, &e) in sb.iter().enumerate() {
        if let Some(&k) = starts_k.get(&(prev, e)) {
            assert!(
                kernel[k].frame == skiff[i].frame,
                "packet over segments {prev}..{e}: kernel and skiff bytes differ\nkernel {:02x?}\nskiff  {:02x?}",
                &kernel[k].frame[..80.min(kernel[k].frame.len())],
                &skiff[i].frame[..80.min(skiff[i].frame.len())]
            );
            same += 1;
        }
        if skiff[i].frame.len() == 65226 {
            full += 1;
        }
        prev = e;
    }
    let kfull = kernel.iter().filter(|p| p.frame.len() == 65226).count();
    eprintln!(
        "kernel {} packets, skiff {} packets; {} identical; {} timing cuts in the kernel's; \
         full 65226-byte merges: kernel {}, skiff {}",
        kernel.len(),
        skiff.len(),
        same,
        timing.len(),
        kfull,
        full
    );
    assert!(
        kfull > 5 && full >= kfull,
        "full merges must reach 65226 bytes in both"
    );
    assert!(
        same * 10 >= skiff.len() * 8,
        "fewer than 80% of skiff's packets match the kernel's"
    );

    // 4. skiff's GRO in the data path: `skiff sink --gro --pcap-out` on AF_XDP gets the
    // same replay. Its rounds end whenever the RX ring is empty, so it flushes at least
    // where the one-round run above did: its boundaries contain those, its packets
    // carry exactly the input's bytes in order, and packets over the same segments are
    // identical.
    let spcap = dir.join("sink-gro.pcap");
    {
        let bed = Bed::up("gs", 1);
        let n = input.len().to_string();
        let ports = format!("{PORT}-{PORT}");
        let out = spcap.to_string_lossy().to_string();
        let sink = common::start_sink(
            &bed,
            &[
                "--gro",
                "--ports",
                &ports,
                "--count",
                &n,
                "--duration",
                "20s",
                "--pcap-out",
                &out,
            ],
        );
        let capf = cap.to_string_lossy().to_string();
        let g = common::gen_raw(&bed, &["--pcap-in", &capf, "--rate", "200kpps"]);
        assert_eq!(common::u(&g, &["tx_packets"]), input.len() as u64, "{g}");
        let r = common::finish(sink, "sink --gro");
        assert_eq!(common::u(&r, &["rx_packets"]), input.len() as u64, "{r}");
        assert_eq!(
            common::u(&r, &["gro", "received"]),
            input.len() as u64,
            "{r}"
        );
        assert_eq!(
            common::u(&r, &["gro", "frames_out"]),
            input.len() as u64,
            "{r}"
        );
    }
    let sink = read(&spcap);
    let kb_sink = boundaries(&input, &sink, "sink --gro");
    let sink_set: std::collections::BTreeSet<usize> = kb_sink.iter().copied().collect();
    let missing: Vec<_> = sset.difference(&sink_set).collect();
    assert!(
        missing.is_empty(),
        "sink --gro merged across forced flushes after segments {missing:?}"
    );
    let mut starts_s = std::collections::BTreeMap::new();
    let mut prev = 0;
    for (i, &e) in sb.iter().enumerate() {
        starts_s.insert((prev, e), i);
        prev = e;
    }
    let (mut same_sink, mut prev) = (0usize, 0usize);
    for (i, &e) in kb_sink.iter().enumerate() {
        if let Some(&k) = starts_s.get(&(prev, e)) {
            assert!(
                skiff[k].frame == sink[i].frame,
                "sink packet over segments {prev}..{e} differs from the one-round run"
            );
            same_sink += 1;
        }
        prev = e;
    }
    eprintln!(
        "sink --gro: {} packets ({} as in the one-round run, {} round-end cuts more)",
        sink.len(),
        same_sink,
        sink_set.len() - sset.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
