//! Privileged integration tests of the generator (issue 3): rates counted at the receiver,
//! multi-queue totals, IMIX ratios, pcap out and replay compared byte for byte, profiles.
//! Real AF_XDP sockets on real veth pairs in namespaces each test creates and removes.
//! Without root they FAIL saying so (see `common`).

mod common;

use std::path::PathBuf;

use common::*;
use serde_json::Value;

fn f(v: &Value, path: &[&str]) -> f64 {
    let mut x = v;
    for p in path {
        x = &x[*p];
    }
    x.as_f64()
        .unwrap_or_else(|| panic!("{path:?} missing in {v}"))
}

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("skiff-test-{}-{name}", std::process::id()))
}

const MAC_B: &str = "02:00:c6:12:00:02";

/// The receiver counts 100 kpps ± 0.5% over a run of `secs`, on `queues` queues.
fn rate_at_receiver(tag: &str, queues: u32, secs: u32) {
    let _s = serial();
    let bed = Bed::up(tag, queues);
    let qlist = if queues == 1 {
        "0".to_string()
    } else {
        format!("0-{}", queues - 1)
    };
    let want = 100_000u64 * u64::from(secs);
    let dur = format!("{}", secs + 15);
    let sink = deep_sink(
        &bed,
        &[
            "--count",
            &want.to_string(),
            "--duration",
            &dur,
            "--cpus",
            "1",
        ],
    );
    let g = gen(
        &bed,
        &[
            "--dst-mac",
            MAC_B,
            "--rate",
            "100kpps",
            "--duration",
            &secs.to_string(),
            "--queues",
            &qlist,
            "--cpus",
            "0",
        ],
    );
    let s = finish(sink, "sink");
    assert_eq!(u(&g, &["tx_packets"]), want, "{g}");
    assert_eq!(g["qdisc"], "tbf");
    assert_eq!(u(&s, &["rx_packets"]), want, "{s}");
    // A sender thread descheduled for longer than --burst (50 ms) loses that part of its
    // schedule for good, as any token bucket does (a shared CI VM stalled one queue by
    // ~86 ms once). The generator reports it per queue (`qdisc.behind_ns`, and a warning);
    // the rate must hold everywhere else, so the run may take exactly that much longer.
    let behind_s = reported_stall_s(&g, f64::from(secs));
    let expect_pps = want as f64 / (f64::from(secs) + behind_s);
    let rx_pps = f(&s, &["rx_pps"]);
    assert!(
        (rx_pps / expect_pps - 1.0).abs() <= 0.005,
        "receiver counted {rx_pps} pps, want {expect_pps} ± 0.5% ({s})"
    );
    let st = &g["streams"][0];
    assert_eq!(st["name"], "stream0");
    let achieved = f(st, &["achieved_pps"]);
    assert!((achieved / expect_pps - 1.0).abs() <= 0.005, "{st}");
    assert_eq!(f(st, &["requested_pps"]), 100_000.0);
    assert!(u(st, &["gap_ns", "p99"]) > 0, "{st}");
    // Each queue carries its exact share of the total.
    let shares: Vec<u64> = st["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["tx_packets"].as_u64().unwrap())
        .collect();
    assert_eq!(shares.len(), queues as usize);
    assert_eq!(shares.iter().sum::<u64>(), want);
    assert!(
        shares.iter().all(|&x| x == want / u64::from(queues)),
        "{shares:?}"
    );
}

/// The largest per-queue `qdisc.behind_ns` a run reported, in s: the schedule a stalled
/// sender lost for good. More than 2% of a `secs`-long run fails: the rate was not held.
fn reported_stall_s(g: &Value, secs: f64) -> f64 {
    let behind_s = g["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| f(q, &["qdisc", "behind_ns"]) / 1e9)
        .fold(0.0, f64::max);
    assert!(behind_s <= 0.02 * secs, "stalled {behind_s} s: {g}");
    if behind_s > 0.0 {
        eprintln!(
            "the sender fell {behind_s} s behind its schedule: {}",
            g["warnings"]
        );
    }
    behind_s
}

#[test]
fn rate_100kpps_for_10s_one_queue_holds_at_the_receiver() {
    rate_at_receiver("r1", 1, 10);
}

#[test]
fn rate_100kpps_for_10s_two_queues_gives_the_same_total() {
    rate_at_receiver("r2", 2, 10);
}

#[test]
fn imix_simple_is_7_4_1_at_the_receiver_and_in_the_pcap() {
    let _s = serial();
    let bed = Bed::up("im", 1);
    let pcap = tmp("imix.pcap");
    // The sink and the generator on their own CPUs, at 100 kpps: the ratio is what is
    // tested, and a debug-build sink sharing a CPU at 200 kpps once lost 561 frames to a
    // CI stall (fill ring empty, 2048 frames = 10 ms at that rate).
    let sink = deep_sink(
        &bed,
        &["--count", "120000", "--duration", "60", "--cpus", "1"],
    );
    let g = gen(
        &bed,
        &[
            "--cpus",
            "0",
            "--dst-mac",
            MAC_B,
            "--size",
            "imix",
            "--count",
            "120000",
            "--rate",
            "100kpps",
            "--pcap-out",
            pcap.to_str().unwrap(),
        ],
    );
    let s = finish(sink, "sink");
    assert_eq!(u(&g, &["tx_packets"]), 120_000, "{g}");
    assert_eq!(u(&s, &["rx_packets"]), 120_000, "{s}");
    // 7:4:1 of 64, 594, 1518 (FCS included: 60, 590, 1514 on the wire to the socket).
    let bytes = 70_000 * 60 + 40_000 * 590 + 10_000 * 1514;
    assert_eq!(u(&s, &["rx_bytes"]), bytes);
    assert_eq!(u(&g, &["pcap_out", "written"]), 120_000);
    let out = std::process::Command::new("tshark")
        .args([
            "-r",
            pcap.to_str().unwrap(),
            "-T",
            "fields",
            "-e",
            "frame.len",
        ])
        .output()
        .expect("tshark (deploy/setup.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut counts = std::collections::BTreeMap::new();
    for l in text.lines() {
        *counts.entry(l.trim().to_string()).or_insert(0u64) += 1;
    }
    let _ = std::fs::remove_file(&pcap);
    assert_eq!(counts.get("60"), Some(&70_000), "{counts:?}");
    assert_eq!(counts.get("590"), Some(&40_000), "{counts:?}");
    assert_eq!(counts.get("1514"), Some(&10_000), "{counts:?}");
}

#[test]
fn replayed_pcap_arrives_byte_identical_at_the_sink() {
    let _s = serial();
    let bed = Bed::up("rp", 1);
    let sent = tmp("sent.pcapng");
    let got = tmp("got.pcap");
    let back = tmp("back.pcap");
    // A capture with variation and mixed sizes, written by the generator itself.
    let sink = deep_sink(&bed, &["--count", "3000", "--duration", "30"]);
    let g = gen(
        &bed,
        &[
            "--dst-mac",
            MAC_B,
            "--size",
            "64-1518",
            "--flows",
            "50",
            "--payload",
            "pattern",
            "--count",
            "3000",
            "--rate",
            "50kpps",
            "--pcap-out",
            sent.to_str().unwrap(),
        ],
    );
    let _ = finish(sink, "sink");
    assert_eq!(u(&g, &["pcap_out", "written"]), 3000);
    // Replay it at its original timing; the sink captures what arrives.
    let sink = deep_sink(
        &bed,
        &[
            "--count",
            "3000",
            "--duration",
            "30",
            "--pcap-out",
            got.to_str().unwrap(),
        ],
    );
    let r = gen_raw(&bed, &["--pcap-in", sent.to_str().unwrap()]);
    let s = finish(sink, "sink");
    assert_eq!(u(&r, &["tx_packets"]), 3000, "{r}");
    assert_eq!(r["qdisc"], "fq", "original timing goes through fq (EDT)");
    assert_eq!(u(&s, &["rx_packets"]), 3000, "{s}");
    // Top speed, looped twice, through a separate sink capture.
    let sink = deep_sink(
        &bed,
        &[
            "--count",
            "6000",
            "--duration",
            "30",
            "--pcap-out",
            back.to_str().unwrap(),
        ],
    );
    let r2 = gen_raw(
        &bed,
        &[
            "--pcap-in",
            sent.to_str().unwrap(),
            "--replay-timing",
            "top",
            "--loops",
            "2",
        ],
    );
    let s2 = finish(sink, "sink");
    assert_eq!(u(&r2, &["tx_packets"]), 6000, "{r2}");
    assert_eq!(u(&s2, &["rx_packets"]), 6000, "{s2}");
    let frames = |p: &PathBuf| -> Vec<Vec<u8>> {
        skiff_engine::pcap::read_all(p, 100_000)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .into_iter()
            .map(|r| r.data)
            .collect()
    };
    let (a, b, c) = (frames(&sent), frames(&got), frames(&back));
    for p in [&sent, &got, &back] {
        let _ = std::fs::remove_file(p);
    }
    assert_eq!(a.len(), 3000);
    assert!(a == b, "the replay arrived different from the capture");
    let twice: Vec<Vec<u8>> = a.iter().chain(a.iter()).cloned().collect();
    assert!(c == twice, "the looped replay arrived different");

    // Frames larger than the MTU allows are skipped, counted and said so.
    let big = tmp("big.pcap");
    let mut w = skiff_engine::pcap::PcapWriter::create(
        &big,
        skiff_engine::pcap::PcapFormat::Pcap,
        skiff_engine::pcap::Sample::All,
    )
    .unwrap();
    for (i, f) in a.iter().take(10).enumerate() {
        w.offer(i as u64 * 1000, f).unwrap();
    }
    let mut jumbo = a[0].clone();
    jumbo.resize(3000, 0);
    w.offer(20_000, &jumbo).unwrap();
    w.finish().unwrap();
    let sink = deep_sink(&bed, &["--count", "10", "--duration", "30"]);
    let r3 = gen_raw(&bed, &["--pcap-in", big.to_str().unwrap()]);
    let s3 = finish(sink, "sink");
    let _ = std::fs::remove_file(&big);
    assert_eq!(u(&r3, &["tx_packets"]), 10, "{r3}");
    assert_eq!(u(&s3, &["rx_packets"]), 10, "{s3}");
    let warn = r3["warnings"].to_string();
    assert!(
        warn.contains("1 frames") && warn.contains("skipped"),
        "{r3}"
    );
}

#[test]
fn profile_streams_each_get_their_rate_and_report() {
    let _s = serial();
    let bed = Bed::up("pf", 1);
    let prof = tmp("profile.toml");
    std::fs::write(
        &prof,
        format!(
            r#"dst_mac = "{MAC_B}"

[[stream]]
name = "voice"
dst_ip = "198.18.0.2"
dst_port = 9001
dscp = 46
size = 128
rate = "10kpps"
duration = "3s"

[[stream]]
name = "bulk"
dst_ip = "198.18.0.2"
size = "imix"
flows = 16
rate = "30kpps"
duration = "3s"
"#
        ),
    )
    .unwrap();
    let sink = deep_sink(&bed, &["--count", "120000", "--duration", "8"]);
    let g = gen_raw(&bed, &["--profile", prof.to_str().unwrap()]);
    let s = finish(sink, "sink");
    let _ = std::fs::remove_file(&prof);
    assert_eq!(g["qdisc"], "fq", "{g}");
    let st = g["streams"].as_array().unwrap();
    assert_eq!(st.len(), 2);
    assert_eq!(st[0]["name"], "voice");
    assert_eq!(u(&st[0], &["tx_packets"]), 30_000, "{}", st[0]);
    assert_eq!(u(&st[1], &["tx_packets"]), 90_000, "{}", st[1]);
    // fq loses what a stall beyond its 4 ms pacing horizon costs (summed over the flows,
    // so it over-allows by at most the flow count): the rate holds everywhere else.
    let slack = reported_stall_s(&g, 3.0) / 3.0;
    for (x, want) in [(&st[0], 10_000.0), (&st[1], 30_000.0)] {
        let a = f(x, &["achieved_pps"]);
        assert!((a / want - 1.0).abs() < 0.01 + slack, "{x}");
        for k in ["p50", "p99", "max"] {
            assert!(x["gap_ns"][k].is_u64(), "{x}");
        }
    }
    assert_eq!(u(&g, &["tx_packets"]), 120_000);
    assert_eq!(u(&s, &["rx_packets"]), 120_000, "{s}");
}

#[test]
fn generator_bad_inputs_fail_with_clear_errors() {
    let _s = serial();
    let bed = Bed::up("gb", 1);
    let prof = tmp("bad.toml");
    std::fs::write(
        &prof,
        "[[stream]]\nname = \"x\"\ndst_ip = \"198.18.0.2\"\nrate = \"5 bananas\"\n",
    )
    .unwrap();
    let notpcap = tmp("not.pcap");
    std::fs::write(&notpcap, b"this is not a capture at all").unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--rate", "10Gbyte"], "rate"),
        (vec!["--rate", "0"], "rate"),
        (vec!["--rate", "5Tbit"], "more than any link"),
        (vec!["--size", "64:x,594:4"], "size"),
        (vec!["--size", "imix", "--template", "udp7"], "template"),
        (vec!["--profile", prof.to_str().unwrap()], "bad.toml:4"),
        (vec!["--pcap-in", notpcap.to_str().unwrap()], "not a pcap"),
        (
            vec!["--qdisc", "pfifo", "--rate", "1kpps"],
            "cannot enforce a rate",
        ),
        (vec!["--ring-size", "1000"], "not a power of two"),
        (vec!["--ring-size", "65536"], "64..=32768"),
    ];
    let ifname = bed.if_a();
    for (extra, want) in cases {
        let mut args = vec!["gen", "--iface", ifname.as_str(), "--dst-mac", MAC_B];
        match extra[0] {
            "--profile" => {}
            "--pcap-in" => args.extend_from_slice(&["--count", "10"]),
            _ => args.extend_from_slice(&["--dst-ip", "198.18.0.2", "--count", "10"]),
        }
        args.extend_from_slice(&extra);
        let out = bed.cmd('a', &args).output().expect("gen");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{extra:?} succeeded");
        assert!(err.contains(want), "{extra:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{extra:?}: one line: {err}");
        assert!(!err.contains("panicked"), "{extra:?}: {err}");
    }
    let _ = std::fs::remove_file(&prof);
    let _ = std::fs::remove_file(&notpcap);
    assert!(!bed.xdp_attached('a'), "nothing left attached");
}
