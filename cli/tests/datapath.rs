//! Privileged integration tests: real AF_XDP sockets on real veth pairs, in network
//! namespaces each test creates under a unique name and always removes (a guard whose
//! `Drop` runs `skiff testbed down`, also when an assertion fails).
//!
//! They need root (CAP_NET_ADMIN, CAP_NET_RAW, CAP_BPF, CAP_SYS_ADMIN). Without it they
//! FAIL with a message saying so: a data-path test that cannot run must never pass.
//!
//! They run one at a time (a process-wide lock): on a 2-core machine, two generators at
//! once would measure the scheduler, not skiff.

mod common;

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use common::*;

#[test]
fn gen_to_sink_exact_counts_zero_loss() {
    let _s = serial();
    let bed = Bed::up("ex", 1);
    let sink = deep_sink(&bed, &["--count", "20000", "--duration", "30"]);
    // No --dst-mac: resolved by ARP.
    let g = gen(&bed, &["--count", "20000", "--rate", "50k"]);
    let s = finish(sink, "sink");
    assert_eq!(u(&g, &["tx_packets"]), 20_000);
    assert_eq!(u(&g, &["completed"]), 20_000);
    assert_eq!(u(&g, &["never_completed"]), 0);
    assert_eq!(g["frames_accounted"], true, "{g}");
    assert_eq!(u(&s, &["rx_packets"]), 20_000, "{s}");
    assert_eq!(u(&s, &["rx_bytes"]), 20_000 * 60);
    assert_eq!(s["queues"][0]["udp"].as_u64(), Some(20_000));
    assert_eq!(u(&s, &["xdp", "redirected"]), 20_000);
    assert_eq!(u(&s, &["dropped", "xsk_rx_dropped"]), 0);
    assert_eq!(s["frames_accounted"], true, "{s}");
    assert_eq!(s["xdp_mode"], "driver");
    assert_eq!(s["zero_copy"], false, "veth is copy mode only");
}

#[test]
fn two_queues_each_carry_their_share() {
    let _s = serial();
    let bed = Bed::up("mq", 2);
    let sink = deep_sink(&bed, &["--count", "20000", "--duration", "30"]);
    let g = gen(
        &bed,
        &[
            "--queues",
            "0-1",
            "--count",
            "20000",
            "--rate",
            "50k",
            "--dst-mac",
            "02:00:c6:12:00:02",
        ],
    );
    let s = finish(sink, "sink");
    let gq: Vec<u64> = g["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["tx_packets"].as_u64().unwrap())
        .collect();
    let sq: Vec<u64> = s["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["rx_packets"].as_u64().unwrap())
        .collect();
    assert_eq!(gq, vec![10_000, 10_000], "{g}");
    // Native XDP on veth: rx_queue_index is the sender's TX queue.
    assert_eq!(sq, vec![10_000, 10_000], "{s}");
}

#[test]
fn skb_mode_forced_and_automatic_fallback() {
    let _s = serial();
    let bed = Bed::up("skb", 1);
    let sink = deep_sink(
        &bed,
        &["--xdp-mode", "skb", "--count", "10000", "--duration", "30"],
    );
    let g = gen(
        &bed,
        &[
            "--count",
            "10000",
            "--rate",
            "50k",
            "--dst-mac",
            "02:00:c6:12:00:02",
        ],
    );
    let s = finish(sink, "sink");
    assert_eq!(s["xdp_mode"], "skb");
    assert_eq!(u(&g, &["tx_packets"]), 10_000);
    assert_eq!(u(&s, &["rx_packets"]), 10_000, "{s}");

    // A bridge has no native XDP: auto mode falls back to SKB mode and says why.
    let ns = bed.ns_b();
    let ok = Command::new("ip")
        .args(["-n", &ns, "link", "add", "skbr0", "type", "bridge"])
        .status()
        .unwrap();
    assert!(ok.success());
    Command::new("ip")
        .args(["-n", &ns, "link", "set", "skbr0", "up"])
        .status()
        .unwrap();
    let out = bed
        .cmd(
            'b',
            &[
                "sink",
                "--iface",
                "skbr0",
                "--duration",
                "300ms",
                "--json",
                "--quiet",
            ],
        )
        .output()
        .unwrap();
    let v = json_of(&out, "sink on a bridge");
    assert_eq!(v["xdp_mode"], "skb");
    assert!(
        v["xdp_fallback_reason"]
            .as_str()
            .unwrap_or("")
            .contains("no native XDP"),
        "{v}"
    );
}

#[test]
fn kill_9_leaves_nothing_attached_and_next_run_works() {
    let _s = serial();
    let bed = Bed::up("k9", 1);
    for side in ['a', 'b'] {
        let mut child = if side == 'b' {
            start_sink(&bed, &[])
        } else {
            let c = spawn_unbounded_gen(&bed, &["--rate", "10k"], Stdio::null());
            let start = Instant::now();
            while !bed.xdp_attached('a') {
                assert!(
                    start.elapsed() < Duration::from_secs(10),
                    "gen never attached"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            c
        };
        assert!(bed.xdp_attached(side), "program attached while running");
        child.kill().unwrap(); // SIGKILL, by our own child's PID
        child.wait().unwrap();
        let start = Instant::now();
        while bed.xdp_attached(side) {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "XDP program still attached after kill -9 on side {side}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    // The next run binds the same queue (EBUSY retried) and works.
    let sink = deep_sink(&bed, &["--count", "1000", "--duration", "30"]);
    gen(
        &bed,
        &[
            "--count",
            "1000",
            "--rate",
            "20k",
            "--dst-mac",
            "02:00:c6:12:00:02",
        ],
    );
    assert_eq!(u(&finish(sink, "sink"), &["rx_packets"]), 1000);
}

#[test]
fn ctrl_c_stops_with_a_summary_and_accounts_for_every_frame() {
    let _s = serial();
    let bed = Bed::up("cc", 1);
    let child = spawn_unbounded_gen(&bed, &["--json"], Stdio::piped());
    std::thread::sleep(Duration::from_millis(1500));
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let g = finish(child, "gen after SIGINT");
    assert_eq!(g["stopped_by"], "signal");
    assert!(u(&g, &["tx_packets"]) > 0);
    assert_eq!(
        u(&g, &["tx_packets"]),
        u(&g, &["completed"]) + u(&g, &["never_completed"])
    );
    assert_eq!(g["frames_accounted"], true, "{g}");
    let f = &g["queues"][0]["frames"];
    assert_eq!(u(f, &["held_by_app"]), 0);
    assert_eq!(
        u(f, &["in_tx_ring"]) + u(f, &["awaiting_completion"]),
        0,
        "all TX frames reclaimed: {f}"
    );
    assert!(!bed.xdp_attached('a'));
}

#[test]
fn bad_inputs_fail_with_one_clear_line_and_leave_nothing() {
    let _s = serial();
    let bed = Bed::up("bad", 1);
    let a = bed.if_a();
    let cases: &[(&[&str], &str)] = &[
        (
            &["gen", "--iface", "nope0", "--dst-ip", "198.18.0.2"],
            "unknown interface \"nope0\"",
        ),
        (
            &[
                "gen",
                "--iface",
                &a,
                "--queues",
                "3",
                "--dst-ip",
                "198.18.0.2",
            ],
            "queue 3 is beyond",
        ),
        (
            &[
                "gen",
                "--iface",
                &a,
                "--dst-mac",
                "02:00:zz:00:00:01",
                "--dst-ip",
                "198.18.0.2",
            ],
            "bad --dst-mac",
        ),
        (
            &["gen", "--iface", &a, "--dst-ip", "198.18.0.256"],
            "bad --dst-ip",
        ),
        (
            &[
                "gen",
                "--iface",
                &a,
                "--src-ip",
                "1.2.3",
                "--dst-ip",
                "198.18.0.2",
            ],
            "bad --src-ip",
        ),
        (
            &[
                "gen",
                "--iface",
                &a,
                "--dst-ip",
                "198.18.0.2",
                "--size",
                "63",
            ],
            "63 is outside 64..=9022",
        ),
        (
            &[
                "gen",
                "--iface",
                &a,
                "--dst-ip",
                "198.18.0.2",
                "--size",
                "1519",
            ],
            "MTU",
        ),
        (
            &[
                "gen",
                "--iface",
                &a,
                "--dst-ip",
                "198.18.0.2",
                "--duration=-1",
            ],
            "bad duration",
        ),
        (
            &[
                "gen",
                "--iface",
                &a,
                "--dst-ip",
                "198.18.0.2",
                "--duration",
                "soon",
            ],
            "bad duration",
        ),
        (
            &[
                "gen",
                "--iface",
                &a,
                "--dst-ip",
                "198.18.0.2",
                "--count",
                "0",
            ],
            "bad --count: 0",
        ),
        (
            &[
                "gen",
                "--iface",
                &a,
                "--dst-ip",
                "198.18.0.2",
                "--count",
                "many",
            ],
            "bad count",
        ),
        (
            &[
                "gen",
                "--iface",
                &a,
                "--dst-ip",
                "198.18.0.2",
                "--rate",
                "0",
            ],
            "bad --rate",
        ),
        (
            &[
                "gen",
                "--iface",
                &a,
                "--dst-ip",
                "198.18.0.99",
                "--count",
                "1",
            ],
            "no ARP reply",
        ),
        (
            &["sink", "--iface", &a, "--cpus", "99"],
            "cpu 99 does not exist",
        ),
    ];
    for (args, want) in cases {
        let out = bed.cmd('a', args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(err.contains(want), "{args:?}: expected {want:?} in {err:?}");
        assert_eq!(
            err.trim().lines().count(),
            1,
            "{args:?}: one line, got {err:?}"
        );
        assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
        assert!(!bed.xdp_attached('a'), "{args:?} left XDP attached");
    }

    // Peer MTU too large for native XDP on veth: the 3506 limit is explained.
    Command::new("ip")
        .args([
            "-n",
            &bed.ns_b(),
            "link",
            "set",
            "dev",
            &bed.if_b(),
            "mtu",
            "4000",
        ])
        .status()
        .unwrap();
    let out = bed
        .cmd('a', &["sink", "--iface", &a, "--duration", "1"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("3506"), "{err}");
    assert!(!bed.xdp_attached('a'));

    // Not root: the missing capabilities are named.
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            SKIFF,
            "sink",
            "--iface",
            "lo",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("CAP_NET_ADMIN") && err.contains("CAP_BPF"),
        "{err}"
    );
}

#[test]
fn demo_json_adds_up_with_zero_drops_and_cleans_up() {
    let _s = serial();
    require_root();
    let name = format!("t{}demo", std::process::id() % 100_000);
    let out = skiff(&["demo", "--duration", "2s", "--json", "--name", &name]);
    let d = json_of(&out, "demo");
    let acc = &d["accounting"];
    assert_eq!(acc["adds_up"], true, "{acc}");
    assert_eq!(u(acc, &["dropped_total"]), 0, "{acc}");
    assert_eq!(u(acc, &["sent"]), 200_000, "100 kpps for 2 s");
    assert_eq!(
        u(&d, &["sink", "rx_packets"]),
        u(&d, &["gen", "tx_packets"])
    );
    let ns = String::from_utf8_lossy(
        &Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap()
            .stdout,
    )
    .to_string();
    assert!(!ns.contains(&name), "demo left namespaces behind: {ns}");
}

#[test]
fn testbed_is_idempotent_and_down_removes_everything() {
    let _s = serial();
    let bed = Bed::up("tb", 2);
    let again = skiff(&[
        "testbed", "up", "--name", &bed.name, "--queues", "2", "--json",
    ]);
    let v = json_of(&again, "testbed up again");
    assert_eq!(v["created"], false);
    let st = json_of(
        &skiff(&["testbed", "status", "--name", &bed.name, "--json"]),
        "status",
    );
    assert_eq!(st["up"], true);
    assert_eq!(st["queues_a"], serde_json::json!([2, 2]));
    let down = json_of(
        &skiff(&["testbed", "down", "--name", &bed.name, "--json"]),
        "down",
    );
    assert_eq!(down["removed"], true);
    let st = json_of(
        &skiff(&["testbed", "status", "--name", &bed.name, "--json"]),
        "status",
    );
    assert_eq!(st["ns_a_exists"], false);
    assert_eq!(st["ns_b_exists"], false);
}
