//! RPS steering on a real veth (privileged): flows spread over 2 workers arrive in order,
//! and backlog and flow-limit drops are counted and add up.

mod common;

use std::process::Command;

use common::{finish, start_sink, u, Bed, SKIFF};
use serde_json::Value;

/// The worker `skiff hash` says UDP flow 198.18.0.1:sport -> 198.18.0.2:9000 lands on,
/// out of 2 (the sink's default Toeplitz hash with the Microsoft key).
fn worker_of(sport: u16) -> u64 {
    let out = Command::new(SKIFF)
        .args(["hash", "--src", "198.18.0.1", "--dst", "198.18.0.2"])
        .args(["--sport", &sport.to_string(), "--dport", "9000"])
        .args(["--proto", "udp", "--workers", "2", "--json"])
        .output()
        .expect("skiff hash");
    let v = common::json_of(&out, "skiff hash");
    v["worker"].as_u64().expect("worker")
}

/// A profile of one single-flow stream per source port, each with its own probe
/// sequence, so per-flow order is what the sink's reorder counter measures.
fn profile(dir: &std::path::Path, sports: &[u16], rate: &str, count: &str) -> String {
    let mut t = String::from("dst_mac = \"02:00:c6:12:00:02\"\n");
    for p in sports {
        t.push_str(&format!(
            "[[stream]]\nname = \"f{p}\"\ndst_ip = \"198.18.0.2\"\ndst_port = 9000\n\
             src_port = {p}\nsize = 128\nrate = \"{rate}\"\ncount = \"{count}\"\n"
        ));
    }
    let path = dir.join(format!("rps-{}.toml", sports.len()));
    std::fs::write(&path, t).expect("write profile");
    path.to_string_lossy().to_string()
}

fn softnet_sum(r: &Value, field: &str) -> u64 {
    r["rps"]["softnet"]
        .as_array()
        .expect("softnet rows")
        .iter()
        .map(|w| w[field].as_u64().unwrap_or(0))
        .sum()
}

/// Frames taken from the ring = steered + backlog full + flow limit; every steered
/// frame processed; the workers' softnet drops are the pollers' drops.
fn assert_adds_up(r: &Value) {
    let taken: u64 = r["queues"]
        .as_array()
        .expect("queues")
        .iter()
        .map(|q| q["rx_packets"].as_u64().unwrap_or(0))
        .sum();
    let s = &r["rps"]["steer"];
    let (steered, full, limited) = (
        u(s, &["steered"]),
        u(s, &["backlog_full"]),
        u(s, &["flow_limit"]),
    );
    assert_eq!(taken, steered + full + limited, "{r}");
    assert_eq!(softnet_sum(r, "processed"), steered, "{r}");
    assert_eq!(softnet_sum(r, "dropped"), full + limited, "{r}");
    assert_eq!(softnet_sum(r, "flow_limit_count"), limited, "{r}");
    assert_eq!(r["rps"]["adds_up"], true, "{r}");
    assert_eq!(r["frames_accounted"], true, "{r}");
}

#[test]
fn flows_steered_over_two_workers_arrive_in_order() {
    let _g = common::serial();
    let bed = Bed::up("r1", 1);
    // Four flows for each worker, picked with `skiff hash`.
    let mut per = [Vec::new(), Vec::new()];
    for p in 9000u16..9200 {
        let w = worker_of(p) as usize;
        if per[w].len() < 4 {
            per[w].push(p);
        }
        if per.iter().all(|v| v.len() == 4) {
            break;
        }
    }
    let sports: Vec<u16> = per.concat();
    assert_eq!(sports.len(), 8, "no 4+4 split over 200 ports");
    let dir = std::env::temp_dir();
    // 40 kpps in all: well within what a debug-build sink takes without loss.
    let prof = profile(&dir, &sports, "5kpps", "5k");
    // RPS alone, then with RFS (the consuming worker records each flow; no flow moves).
    for rfs in [false, true] {
        let mut args = vec!["--workers", "2", "--count", "40k", "--duration", "30s"];
        if rfs {
            args.push("--rfs");
        }
        let sink = start_sink(&bed, &args);
        let g = common::gen_raw(&bed, &["--profile", &prof, "--latency"]);
        assert_eq!(u(&g, &["tx_packets"]), 40_000, "{g}");
        let r = finish(sink, "sink --workers 2");
        assert_adds_up(&r);
        assert_eq!(u(&r, &["rps", "steer", "steered"]), 40_000, "{r}");
        for w in r["rps"]["softnet"].as_array().expect("rows") {
            assert_eq!(
                u(w, &["processed"]),
                20_000,
                "4 flows of 5k each per worker: {r}"
            );
        }
        // Every flow is a probe stream of its own: no reordering, nothing lost.
        assert_eq!(u(&r, &["probes"]), 40_000, "{r}");
        assert_eq!(u(&r, &["unique"]), 40_000, "{r}");
        assert_eq!(u(&r, &["reordered"]), 0, "steering reordered a flow: {r}");
        assert_eq!(u(&r, &["lost"]), 0, "{r}");
        if rfs {
            let c = &r["rps"]["steer"]["rfs"];
            assert_eq!(u(c, &["moves"]), 0, "{r}");
            assert!(
                u(c, &["steered_rfs"]) > 0,
                "the flow table was never used: {r}"
            );
        }
    }
    let _ = std::fs::remove_file(&prof);
}

#[test]
fn backlog_and_flow_limit_drops_add_up() {
    let _g = common::serial();
    let bed = Bed::up("r2", 1);
    let dir = std::env::temp_dir();
    // One elephant at 100 kpps and a mouse at 1 kpps into workers that need 50 µs a
    // frame (20 kpps each): the 128-frame backlogs overflow.
    let mut t = String::from("dst_mac = \"02:00:c6:12:00:02\"\n");
    t.push_str("[[stream]]\nname = \"elephant\"\ndst_ip = \"198.18.0.2\"\nsrc_port = 9000\nrate = \"100kpps\"\ncount = \"20k\"\n");
    t.push_str("[[stream]]\nname = \"mouse\"\ndst_ip = \"198.18.0.2\"\nsrc_port = 9001\nrate = \"1kpps\"\ncount = \"200\"\n");
    let prof = dir.join(format!("rps-drops-{}.toml", std::process::id()));
    std::fs::write(&prof, t).expect("profile");
    let prof = prof.to_string_lossy().to_string();
    let mut runs = Vec::new();
    for limit in ["4096", "off"] {
        let sink = start_sink(
            &bed,
            &[
                "--workers",
                "2",
                "--max-backlog",
                "128",
                "--worker-cost",
                "50us",
                "--flow-limit",
                limit,
                "--duration",
                "4s",
            ],
        );
        let g = common::gen_raw(&bed, &["--profile", &prof]);
        assert_eq!(u(&g, &["tx_packets"]), 20_200, "{g}");
        let r = finish(sink, "sink with a slow worker");
        assert_adds_up(&r);
        runs.push(r);
    }
    let (on, off) = (&runs[0], &runs[1]);
    assert!(
        u(on, &["rps", "steer", "flow_limit"]) > 0,
        "flow limit never acted: {on}"
    );
    assert_eq!(u(off, &["rps", "steer", "flow_limit"]), 0, "{off}");
    assert!(
        u(off, &["rps", "steer", "backlog_full"]) > 0,
        "backlog never full: {off}"
    );
    let _ = std::fs::remove_file(&prof);
}
