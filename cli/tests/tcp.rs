//! skiff's userspace TCP against the Linux kernel's TCP (privileged, veth).
//!
//! skiff runs on side a of a testbed (AF_XDP, its XDP program taking every frame, ARP
//! included); the kernel's TCP runs in namespace b through `tests/common/tcp_peer.py`,
//! which checks the pattern (byte i of each stream is i mod 251) or sends it. Every run is
//! bounded (`timeout` on the peer, `--timeout` on skiff) and the testbed always comes down.

mod common;

use std::{
    path::PathBuf,
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use common::{json_of, start_ready, u, Bed};
use serde_json::Value;

/// 1 GiB: the transfer size.
const GIB: u64 = 1 << 30;

fn peer_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/common/tcp_peer.py")
}

/// `tcp_peer.py ARGS` in namespace b, bounded by `secs`.
fn peer(bed: &Bed, secs: u32, args: &[&str]) -> Command {
    let mut c = Command::new("ip");
    c.args([
        "netns",
        "exec",
        &bed.ns_b(),
        "timeout",
        &secs.to_string(),
        "python3",
    ])
    .arg(peer_script())
    .args(args)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    c
}

/// Turns off TX checksum offload on the kernel's side: over veth the kernel leaves the
/// TCP checksum partial (CHECKSUM_PARTIAL), which skiff, reading the bytes through
/// AF_XDP, rightly drops as bad.
fn peer_csum_off(bed: &Bed) {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &bed.ns_b(),
            "ethtool",
            "-K",
            &bed.if_b(),
            "tx",
            "off",
        ])
        .output()
        .expect("ethtool (deploy/setup.sh installs it)");
    assert!(
        out.status.success(),
        "ethtool -K tx off: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts the kernel server and waits until it listens.
fn start_server(bed: &Bed, secs: u32, port: u16, bytes: u64, conns: u32) -> Child {
    let ready = std::env::temp_dir().join(format!("{}.tcp-server.ready", bed.name));
    let _ = std::fs::remove_file(&ready);
    let mut child = peer(
        bed,
        secs,
        &[
            "server",
            "--port",
            &port.to_string(),
            "--expect-bytes",
            &bytes.to_string(),
            "--conns",
            &conns.to_string(),
            "--ready-file",
            &ready.to_string_lossy(),
        ],
    )
    .spawn()
    .expect("spawn python3 (deploy/setup.sh installs it)");
    let start = Instant::now();
    while !ready.exists() {
        if let Some(st) = child.try_wait().expect("try_wait") {
            let out = child.wait_with_output().expect("output");
            panic!(
                "kernel server exited early ({st}): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "kernel server not listening in 15 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = std::fs::remove_file(&ready);
    child
}

fn peer_json(out: Output, who: &str) -> Value {
    assert!(
        out.status.success(),
        "{who} failed ({}): stdout {} stderr {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{who}: bad JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// skiff tcp send from a to the kernel in b.
fn skiff_send(bed: &Bed, port: u16, bytes: u64, conns: u32, extra: &[&str]) -> Value {
    let ifname = bed.if_a();
    let dst = format!("198.18.0.2:{port}");
    let b = bytes.to_string();
    let k = conns.to_string();
    let mut args = vec![
        "tcp",
        "send",
        "--iface",
        &ifname,
        "--dst",
        &dst,
        "--bytes",
        &b,
        "--conns",
        &k,
        "--json",
        "--quiet",
        "--timeout",
        "240s",
    ];
    args.extend_from_slice(extra);
    let out = bed.cmd('a', &args).output().expect("skiff tcp send");
    json_of(&out, "skiff tcp send")
}

fn print_summary(who: &str, v: &Value) {
    eprintln!(
        "{who}: {} B in {:.3} s = {:.1} Mbit/s, retrans {}, rtt p50 {} µs p99 {} µs",
        u(v, &["bytes"]),
        v["elapsed_s"].as_f64().unwrap_or(0.0),
        v["goodput_bps"].as_f64().unwrap_or(0.0) / 1e6,
        u(v, &["retrans_segs"]),
        u(v, &["rtt", "p50_us"]),
        u(v, &["rtt", "p99_us"]),
    );
}

/// `skiff impair ARGS` on b's interface, started and ready; stop it with [`stop_impair`].
fn start_impair(bed: &Bed, extra: &[&str]) -> Child {
    let ifname = bed.if_b();
    let mut args = vec![
        "impair",
        "--iface",
        ifname.as_str(),
        "--duration",
        "280s",
        "--json",
    ];
    args.extend_from_slice(extra);
    start_ready(bed, 'b', &args, "impair")
}

/// SIGINT (a clean stop that restores what impair changed), then its report.
fn stop_impair(c: Child) -> Value {
    let _ = Command::new("kill")
        .args(["-INT", &c.id().to_string()])
        .status();
    common::finish(c, "skiff impair")
}

/// skiff in a sends `bytes` on each of `conns` connections to a kernel server in b,
/// optionally through `skiff impair` on b's ingress. Returns skiff's report, the server's,
/// and the impairment's (null without one).
fn send_to_kernel(
    tag: &str,
    bytes: u64,
    conns: u32,
    impair: Option<&[&str]>,
) -> (Value, Value, Value) {
    let _g = common::serial();
    let bed = Bed::up(tag, 1);
    peer_csum_off(&bed);
    let port = 5001;
    let server = start_server(&bed, 280, port, bytes, conns);
    let imp = impair.map(|extra| start_impair(&bed, extra));
    let sent = skiff_send(&bed, port, bytes, conns, &[]);
    let srv = peer_json(server.wait_with_output().expect("server"), "kernel server");
    let mut report = Value::Null;
    if let Some(c) = imp {
        let r = stop_impair(c);
        eprintln!("impair: {r}");
        assert!(
            u(&r, &["dropped"]) + u(&r, &["reordered"]) > 0,
            "the impairment did nothing: {r}"
        );
        report = r;
    }
    print_summary("skiff send", &sent);
    eprintln!("kernel server: {}", srv);
    (sent, srv, report)
}

/// A kernel client in b sends `bytes` to `skiff tcp recv` in a, optionally impaired on
/// b's egress.
fn kernel_to_skiff(tag: &str, bytes: u64, impair: Option<&[&str]>) -> Value {
    let _g = common::serial();
    let bed = Bed::up(tag, 1);
    peer_csum_off(&bed);
    let ifname = bed.if_a();
    let b = bytes.to_string();
    let recv = start_ready(
        &bed,
        'a',
        &[
            "tcp",
            "recv",
            "--iface",
            &ifname,
            "--listen",
            "5002",
            "--expect-bytes",
            &b,
            "--json",
            "--quiet",
            "--timeout",
            "240s",
        ],
        "tcp-recv",
    );
    // The impairment first: sockets pick up its gso_max_segs when they connect.
    let imp = impair.map(|extra| start_impair(&bed, extra));
    let client = peer(
        &bed,
        250,
        &[
            "client",
            "--dst",
            "198.18.0.1",
            "--port",
            "5002",
            "--bytes",
            &b,
            "--cc",
            "cubic",
        ],
    )
    .output()
    .expect("kernel client");
    let cl = peer_json(client, "kernel client");
    let r = common::finish(recv, "skiff tcp recv");
    if let Some(c) = imp {
        let ir = stop_impair(c);
        eprintln!("impair: {ir}");
        assert!(
            u(&ir, &["dropped"]) + u(&ir, &["reordered"]) > 0,
            "the impairment did nothing: {ir}"
        );
    }
    print_summary("skiff recv", &r);
    eprintln!("kernel client: {cl}");
    assert_eq!(u(&r, &["bytes"]), bytes, "{r}");
    assert_eq!(r["all_ok"], Value::Bool(true), "{r}");
    assert_eq!(r["conns"][0]["pattern_ok"], Value::Bool(true), "{r}");
    assert_no_missed_wakeups(&r);
    r
}

/// The poller runs only connections an event named; its periodic walk of all of them
/// found none with work no event had announced.
fn assert_no_missed_wakeups(v: &Value) {
    assert!(
        u(v, &["stack", "sweeps"]) > 0,
        "the safety-net walk never ran: {v}"
    );
    assert_eq!(
        u(v, &["stack", "sweep_found"]),
        0,
        "a wakeup was missed: {v}"
    );
}

fn assert_exact(sent: &Value, srv: &Value, bytes: u64, conns: u32) {
    assert_no_missed_wakeups(sent);
    assert_eq!(u(sent, &["conns_completed"]), conns as u64, "skiff: {sent}");
    assert_eq!(u(sent, &["bytes"]), bytes * conns as u64);
    assert_eq!(srv["ok"], Value::Bool(true), "kernel server: {srv}");
    assert_eq!(
        u(srv, &["total_bytes"]),
        bytes * conns as u64,
        "kernel server: {srv}"
    );
    assert_closed_by_peer(sent);
}

/// Every connection of `tcp send` saw the peer's FIN before skiff left (TIME-WAIT): a
/// sender that leaves in FIN-WAIT-2 takes its XDP program away, and the peer's FIN then
/// meets the kernel's RST.
fn assert_closed_by_peer(sent: &Value) {
    for c in sent["conns"].as_array().expect("conns") {
        assert_eq!(
            c["state"], "TIME_WAIT",
            "skiff left before the peer's FIN: {c}"
        );
    }
}

#[test]
fn skiff_sends_1gib_to_kernel_server() {
    let (sent, srv, _) = send_to_kernel("ts", GIB, 1, None);
    assert_exact(&sent, &srv, GIB, 1);
}

/// skiff at both ends (the benchmark's skiff-to-skiff case): 256 MiB byte-exact, and both
/// sides close cleanly, the sender in TIME-WAIT, the receiver CLOSED by its LAST-ACK.
#[test]
fn skiff_sends_to_skiff_recv_and_both_close_cleanly() {
    let _g = common::serial();
    let bed = Bed::up("tss", 1);
    let bytes = (256u64 << 20).to_string();
    let ifb = bed.if_b();
    let recv = start_ready(
        &bed,
        'b',
        &[
            "tcp",
            "recv",
            "--iface",
            &ifb,
            "--listen",
            "5003",
            "--expect-bytes",
            &bytes,
            "--json",
            "--quiet",
            "--timeout",
            "120s",
        ],
        "tcp-recv",
    );
    let sent = skiff_send(&bed, 5003, 256 << 20, 1, &[]);
    let r = common::finish(recv, "skiff tcp recv");
    print_summary("skiff send", &sent);
    print_summary("skiff recv", &r);
    assert_eq!(u(&sent, &["conns_completed"]), 1, "{sent}");
    assert_eq!(r["all_ok"], Value::Bool(true), "{r}");
    assert_eq!(r["conns"][0]["pattern_ok"], Value::Bool(true), "{r}");
    assert_eq!(r["conns"][0]["state"], "CLOSED", "{r}");
    assert_eq!(r["conns"][0]["close_reason"], "normal", "{r}");
    assert_closed_by_peer(&sent);
    assert_no_missed_wakeups(&sent);
    assert_no_missed_wakeups(&r);
}

#[test]
fn kernel_client_sends_1gib_to_skiff_recv() {
    kernel_to_skiff("tr", GIB, None);
}

#[test]
fn kernel_client_sends_1gib_to_skiff_through_loss_and_reordering() {
    let r = kernel_to_skiff(
        "tq",
        GIB,
        Some(&["--egress", "--loss", "1", "--reorder", "5"]),
    );
    let c = &r["conns"][0]["counters"];
    assert!(
        u(c, &["ofo_queued"]) > 0,
        "no out-of-order segment reached skiff: {c}"
    );
    assert!(u(c, &["dup_data_in"]) + u(c, &["ofo_queued"]) > 0);
}

#[test]
fn skiff_sends_1gib_through_reordering() {
    let (sent, srv, imp) = send_to_kernel("to", GIB, 1, Some(&["--reorder", "5"]));
    assert_exact(&sent, &srv, GIB, 1);
    // RACK sees the reordering and waits it out: before it, about every other late frame
    // was retransmitted (16-18k per GiB for 37k late); with it about 1 in 100.
    let late = u(&imp, &["reordered"]);
    let rtx = u(&sent, &["retrans_segs"]);
    let seen = sent["conns"][0]["counters"]["reordering"].as_u64();
    assert!(seen.is_some_and(|n| n > 0), "reordering not seen: {sent}");
    assert!(
        rtx * 10 < late,
        "{rtx} retransmissions for {late} late frames: reordering read as loss"
    );
}

#[test]
fn skiff_sends_1gib_through_1pct_loss() {
    let (sent, srv, _) = send_to_kernel("tl", GIB, 1, Some(&["--loss", "1"]));
    assert_exact(&sent, &srv, GIB, 1);
    assert!(
        u(&sent, &["retrans_segs"]) > 0,
        "1% loss must cause retransmissions: {sent}"
    );
}

#[test]
fn thousand_connections_to_kernel_server() {
    let (sent, srv, _) = send_to_kernel("tk", 64 << 10, 1000, None);
    assert_exact(&sent, &srv, 64 << 10, 1000);
}
