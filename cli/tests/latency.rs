//! Latency measurement on real veth pairs: probes through the AF_XDP data path, the sink's
//! one-way numbers and interval log (read back by an independent HdrHistogram reader, the
//! Python implementation), reflector + pinger round trips over AF_XDP, XDP_TX and kernel
//! sockets, `skiff hist merge`, and loss / reordering / duplication injected on purpose.

mod common;

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use common::*;
use serde_json::Value;
use skiff_engine::{
    latency::probe::{self, Probe},
    pcap::{PcapFormat, PcapWriter, Sample},
    wire::template::{TemplateKind, TemplateSpec},
};

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("skiff-lat-{}-{name}", std::process::id()))
}

fn u(v: &Value, path: &[&str]) -> u64 {
    let mut x = v;
    for k in path {
        x = &x[*k];
    }
    x.as_u64()
        .unwrap_or_else(|| panic!("{path:?} is not a number in {v}"))
}

/// The independent reader: Python's `hdrh` in the venv `deploy/setup.sh` makes.
fn python() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv-hdrh/bin/python");
    assert!(
        p.exists(),
        "TEST NOT RUN: the independent HdrHistogram reader is missing ({}): run deploy/setup.sh",
        p.display()
    );
    p
}

/// Reads interval logs with Python's hdrh; returns, per tag ("total" for untagged lines),
/// [count, min, p50, p90, p99, p99.9, max] of all intervals added. The decoding is hdrh's;
/// the percentile walk over its buckets is written out here, with the rank convention of
/// current HdrHistogram (ceil), which skiff's summaries use.
fn python_read(logs: &[&Path]) -> Value {
    let script = r#"
import json, math, sys
from hdrh.log import HistogramLogReader
from hdrh.histogram import HdrHistogram
out = {}
for f in sys.argv[1:]:
    r = HistogramLogReader(f, HdrHistogram(1, 100_000_000_000, 3))
    while True:
        h = r.get_next_interval_histogram()
        if h is None:
            break
        tag = h.get_tag() or "total"
        out.setdefault(tag, HdrHistogram(1, 100_000_000_000, 3)).add(h)
def at(h, q):
    # The rank ceil(q * count), as current HdrHistogram (Java, Rust) defines percentiles;
    # hdrh's own get_value_at_percentile rounds the rank to nearest instead.
    target = max(1, math.ceil(q * h.get_total_count()))
    seen = 0
    for i in range(h.counts_len):
        seen += h.get_count_at_index(i)
        if seen >= target:
            return h.get_highest_equivalent_value(h.get_value_from_index(i))
    return 0
print(json.dumps({t: [h.get_total_count(), h.get_min_value(), at(h, 0.5), at(h, 0.9),
    at(h, 0.99), at(h, 0.999), h.get_max_value()] for t, h in out.items()}))
"#;
    let out = Command::new(python())
        .arg("-c")
        .arg(script)
        .args(logs)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python hdrh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("python JSON")
}

/// The summary fields skiff reports, in python_read's order.
fn summary_vec(s: &Value) -> Vec<u64> {
    ["count", "min", "p50", "p90", "p99", "p999", "max"]
        .iter()
        .map(|k| u(s, &[k]))
        .collect()
}

fn py_vec(v: &Value, tag: &str) -> Vec<u64> {
    v[tag]
        .as_array()
        .unwrap_or_else(|| panic!("no {tag} in {v}"))
        .iter()
        .map(|x| x.as_u64().expect("number"))
        .collect()
}

#[test]
fn demo_latency_reports_one_way_and_its_log_reads_back_in_python() {
    let _g = serial();
    require_root();
    let log = tmp("demo.hlog");
    let name = format!("tdl{}", std::process::id() % 100_000);
    let out = skiff(&[
        "demo",
        "--latency",
        "--duration",
        "2s",
        "--rate",
        "5k",
        "--json",
        "--name",
        &name,
        "--hist-log",
        log.to_str().unwrap(),
    ]);
    let d = json_of(&out, "demo --latency");
    let sink = &d["sink"];
    assert_eq!(u(&d, &["accounting", "received"]), 10_000, "{d}");
    for k in ["received", "unique"] {
        assert_eq!(u(sink, &[k]), 10_000, "{k}: {sink}");
    }
    for k in ["lost", "reordered", "duplicated"] {
        assert_eq!(u(sink, &[k]), 0, "{k}: {sink}");
    }
    assert_eq!(u(sink, &["bad_probes", "bad_check"]), 0);
    let lat = &sink["latency_ns"];
    for k in ["count", "min", "p50", "p90", "p99", "p999", "p9999", "max"] {
        assert!(lat[k].is_u64(), "latency_ns.{k} missing: {lat}");
    }
    assert_eq!(u(lat, &["count"]), 10_000);
    assert!(
        u(lat, &["min"]) > 0 && u(lat, &["max"]) < 10_000_000_000,
        "{lat}"
    );
    // The rate schedule: latency from the scheduled time is never below the actual one.
    assert!(u(sink, &["latency_sched_ns", "p50"]) >= u(lat, &["p50"]));
    assert_eq!(u(&d, &["gen", "probes", "sent"]), 10_000);
    // Per stream too (one stream: s0).
    assert_eq!(sink["latency_streams"][0]["name"], "s0");
    assert_eq!(u(&sink["latency_streams"][0], &["received"]), 10_000);

    // The independent reader gets the same count and percentiles from the log.
    let py = python_read(&[&log]);
    assert_eq!(
        py_vec(&py, "total"),
        summary_vec(lat),
        "python {py} vs skiff {lat}"
    );
    assert_eq!(py_vec(&py, "s0"), summary_vec(lat));
    let _ = std::fs::remove_file(&log);
}

#[test]
fn demo_latency_prints_the_table_and_the_chart() {
    let _g = serial();
    require_root();
    let name = format!("tdt{}", std::process::id() % 100_000);
    let out = skiff(&[
        "demo",
        "--latency",
        "--duration",
        "1s",
        "--rate",
        "2k",
        "--name",
        &name,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for want in ["p99.99", "stdev", "percentile", "lost 0", "99.9%"] {
        assert!(text.contains(want), "no {want:?} in:\n{text}");
    }
    let from = text.find("latency").expect("a latency section");
    assert!(
        text[from..].lines().all(|l| l.chars().count() <= 80),
        "a line of the latency table or chart is wider than 80 columns:\n{text}"
    );
}

/// Starts `skiff reflect ARGS` in namespace b and waits for it.
fn start_reflector(bed: &Bed, extra: &[&str]) -> std::process::Child {
    let ifb = bed.if_b();
    let mut args = vec![
        "reflect",
        "--iface",
        &ifb,
        "--cpus",
        "1",
        "--json",
        "--quiet",
        "--duration",
        "60",
    ];
    args.extend_from_slice(extra);
    start_ready(bed, 'b', &args, "reflect")
}

fn stop(child: std::process::Child, who: &str) -> Value {
    // SIGINT: the reflector stops and reports.
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    finish(child, who)
}

fn ping(bed: &Bed, extra: &[&str]) -> Value {
    let ifa = bed.if_a();
    let mut args = vec![
        "ping",
        "--iface",
        &ifa,
        "--cpus",
        "0",
        "--json",
        "--dst-ip",
        "198.18.0.2",
        "--dst-mac",
        "02:00:c6:12:00:02",
    ];
    args.extend_from_slice(extra);
    json_of(&bed.cmd('a', &args).output().expect("ping"), "ping")
}

#[test]
fn reflect_and_ping_give_round_trips_over_af_xdp_xdp_tx_and_kernel_sockets() {
    let _g = serial();
    let bed = Bed::up("rp", 1);
    for (mode, refl_args, ping_args) in [
        ("af_xdp", &[][..], &[][..]),
        ("xdp_tx", &["--xdp-tx"][..], &[][..]),
        ("kernel_udp", &["--kernel", "9001"][..], &["--kernel"][..]),
    ] {
        let refl = start_reflector(&bed, refl_args);
        let mut args = vec!["--rate", "2k", "--count", "2000"];
        args.extend_from_slice(ping_args);
        let p = ping(&bed, &args);
        let r = stop(refl, "reflect");
        assert_eq!(r["mode"], mode);
        assert_eq!(u(&p, &["sent"]), 2000, "{mode}: {p}");
        assert_eq!(u(&p, &["received"]), 2000, "{mode}: {p}");
        assert_eq!(u(&p, &["lost"]), 0, "{mode}");
        assert_eq!(u(&p, &["duplicated"]), 0, "{mode}");
        assert_eq!(u(&p, &["latency_ns", "count"]), 2000, "{mode}");
        assert!(u(&p, &["latency_ns", "min"]) > 0, "{mode}");
        assert!(
            u(&p, &["latency_sched_ns", "p99"]) >= u(&p, &["latency_ns", "p99"]),
            "{mode}: the schedule-based latency includes the actual one"
        );
        assert_eq!(u(&r, &["reflected"]), 2000, "{mode}: {r}");
        assert!(p["timing"]["clock_read_ns"].as_f64().unwrap() > 0.0);
        assert!(u(&p, &["timing", "stamp_to_ring_ns", "count"]) > 0);
    }
}

#[test]
fn hist_merge_of_two_logs_equals_one_histogram_of_both_runs() {
    let _g = serial();
    let bed = Bed::up("hm", 1);
    let (l1, l2, merged) = (tmp("run1.hlog"), tmp("run2.hlog"), tmp("merged.hlog"));
    let refl = start_reflector(&bed, &[]);
    // Two runs at different rates, so their histograms differ.
    ping(
        &bed,
        &[
            "--rate",
            "1k",
            "--count",
            "800",
            "--hist-log",
            l1.to_str().unwrap(),
        ],
    );
    ping(
        &bed,
        &[
            "--rate",
            "4k",
            "--count",
            "3000",
            "--hist-log",
            l2.to_str().unwrap(),
        ],
    );
    stop(refl, "reflect");
    let out = skiff(&[
        "hist",
        "merge",
        l1.to_str().unwrap(),
        l2.to_str().unwrap(),
        "--out",
        merged.to_str().unwrap(),
        "--json",
    ]);
    let m = json_of(&out, "hist merge");
    let both = python_read(&[&l1, &l2]);
    let total = &m["histograms"]["total"];
    assert_eq!(u(total, &["count"]), 3800, "{m}");
    assert_eq!(
        py_vec(&both, "total"),
        summary_vec(total),
        "python {both} vs merge {m}"
    );
    // The merged file reads back (skiff and Python) to the same.
    let shown = json_of(
        &skiff(&["hist", "show", merged.to_str().unwrap(), "--json"]),
        "hist show",
    );
    assert_eq!(
        summary_vec(&shown["histograms"]["total"]),
        summary_vec(total)
    );
    assert_eq!(
        py_vec(&python_read(&[&merged]), "total"),
        summary_vec(total)
    );
    for f in [l1, l2, merged] {
        let _ = std::fs::remove_file(f);
    }
}

/// Probe frames from a to b (the testbed's addresses, UDP 9000 → 9000), 128 bytes.
fn probe_frame(seq: u64) -> Vec<u8> {
    let ip = |s: &str| s.parse().unwrap();
    let mut t = TemplateSpec::new(TemplateKind::Udp4, ip("198.18.0.1"), ip("198.18.0.2"));
    t.src_mac = [0x02, 0, 0xc6, 0x12, 0, 0x01];
    t.dst_mac = [0x02, 0, 0xc6, 0x12, 0, 0x02];
    t.src_port = 9000;
    t.dst_port = 9000;
    let mut f = t.build(128).unwrap();
    let at = probe::locate_udp(&f).unwrap().payload;
    let p = Probe {
        stream: 0,
        session: 0x5eed,
        seq,
        tx_ns: 0,
        sched_ns: None,
    };
    assert!(probe::write_at(&mut f, at, &p));
    f
}

#[test]
fn injected_loss_reordering_and_duplication_are_counted_exactly() {
    let _g = serial();
    let bed = Bed::up("ij", 1);
    // 1000 probes, then on purpose: 3 dropped, 2 adjacent pairs swapped, 3 repeats, and 2
    // frames with the probe signature and a broken check value.
    let mut order: Vec<u64> = (0..1000).filter(|s| ![10, 11, 500].contains(s)).collect();
    for pair in [100u64, 200] {
        let i = order.iter().position(|&s| s == pair).unwrap();
        order.swap(i, i + 1);
    }
    for (after, times) in [(300u64, 2), (600, 1)] {
        let i = order.iter().position(|&s| s == after).unwrap();
        for _ in 0..times {
            order.insert(i + 1, after);
        }
    }
    let pcap = tmp("injected.pcap");
    let mut w = PcapWriter::create(&pcap, PcapFormat::Pcap, Sample::All).unwrap();
    for (i, &s) in order.iter().enumerate() {
        w.offer(i as u64 * 1000, &probe_frame(s)).unwrap();
        if i == 50 || i == 700 {
            let mut bad = probe_frame(5000 + i as u64);
            let at = probe::locate_udp(&bad).unwrap().payload;
            // Flip one bit of the sequence number: the CRC no longer matches. (The UDP
            // checksum is now wrong too, which the sink does not check.)
            bad[at + 15] ^= 0x10;
            w.offer(i as u64 * 1000 + 1, &bad).unwrap();
        }
    }
    w.finish().unwrap();
    let sink = start_sink(&bed, &["--ports", "9000-9000"]);
    let g = gen_raw(
        &bed,
        &[
            "--pcap-in",
            pcap.to_str().unwrap(),
            "--rate",
            "20k",
            "--latency",
        ],
    );
    assert_eq!(u(&g, &["tx_packets"]), order.len() as u64 + 2, "{g}");
    std::thread::sleep(Duration::from_millis(300));
    let _ = Command::new("kill")
        .args(["-INT", &sink.id().to_string()])
        .status();
    let s = finish(sink, "sink");
    assert_eq!(u(&s, &["rx_packets"]), order.len() as u64 + 2, "{s}");
    assert_eq!(u(&s, &["received"]), 1000, "997 distinct + 3 repeats: {s}");
    assert_eq!(u(&s, &["unique"]), 997);
    assert_eq!(u(&s, &["lost"]), 3);
    assert_eq!(u(&s, &["reordered"]), 2);
    assert_eq!(u(&s, &["duplicated"]), 3);
    assert_eq!(u(&s, &["bad_probes", "bad_check"]), 2);
    // Bad probes are never recorded as latency; every good one is (restamped at send).
    assert_eq!(u(&s, &["latency_ns", "count"]), 1000);
    assert!(
        u(&s, &["latency_ns", "max"]) < 1_000_000_000,
        "restamped: {s}"
    );
    let _ = std::fs::remove_file(&pcap);
}

#[test]
fn hist_refuses_truncated_and_foreign_files_with_a_clear_error() {
    let dir = tmp("badlogs");
    std::fs::create_dir_all(&dir).unwrap();
    let not_log = dir.join("notes.txt");
    std::fs::write(&not_log, "this is not a histogram log\n").unwrap();
    let out = skiff(&["hist", "show", not_log.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("notes.txt"), "names the file: {err}");

    // A real log cut in the middle of its last histogram.
    let good = "#[StartTime: 1700000000.000 (seconds since epoch), x]\n\
\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"\n";
    let h = {
        let mut h = skiff_engine::latency::hist::new_hist();
        for v in [1000u64, 2000, 3000] {
            h.record(v).unwrap();
        }
        h
    };
    let mut buf = Vec::new();
    let mut log =
        skiff_engine::latency::hist::IntervalLog::new(&mut buf, 1_700_000_000.0, None).unwrap();
    log.write(None, 0.0, 1.0, &h).unwrap();
    drop(log);
    let text = String::from_utf8(buf).unwrap();
    assert!(text.len() > good.len());
    let cut = dir.join("cut.hlog");
    std::fs::write(&cut, &text[..text.len() - 12]).unwrap();
    let out = skiff(&["hist", "show", cut.to_str().unwrap()]);
    assert!(!out.status.success(), "a truncated log must fail");
    let err = String::from_utf8_lossy(&out.stderr);
    // file:line: what was wrong.
    assert!(err.contains("cut.hlog:"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
