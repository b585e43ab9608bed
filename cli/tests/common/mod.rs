//! Helpers shared by the privileged integration tests: testbeds that always come down,
//! skiff in a namespace, sinks started and waited for, JSON reports.
#![allow(dead_code)] // each test binary uses a different subset

use std::{
    process::{Child, Command, Output, Stdio},
    sync::{Mutex, MutexGuard},
    time::{Duration, Instant},
};

use serde_json::Value;

pub const SKIFF: &str = env!("CARGO_BIN_EXE_skiff");
pub static SERIAL: Mutex<()> = Mutex::new(());

pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn require_root() {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
        .unwrap_or(0);
    let need = [12u32, 13, 21]; // NET_ADMIN, NET_RAW, SYS_ADMIN
    assert!(
        need.iter().all(|c| eff & (1 << c) != 0),
        "PRIVILEGED TEST NOT RUN: needs root (CAP_NET_ADMIN, CAP_NET_RAW, CAP_SYS_ADMIN, CAP_BPF); \
         run `sudo cargo test` or the README's test command"
    );
}

/// A testbed that is removed when the test ends, however it ends.
pub struct Bed {
    pub name: String,
}

impl Bed {
    pub fn up(tag: &str, queues: u32) -> Bed {
        require_root();
        // Unique per process and test: tests of concurrent CI jobs never collide.
        let name = format!("t{}{}", std::process::id() % 100_000, tag);
        assert!(name.len() <= 13, "testbed name too long: {name}");
        let out = skiff(&[
            "testbed",
            "up",
            "--name",
            &name,
            "--queues",
            &queues.to_string(),
        ]);
        assert!(
            out.status.success(),
            "testbed up failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Bed { name }
    }
    pub fn ns_a(&self) -> String {
        format!("{}-a", self.name)
    }
    pub fn ns_b(&self) -> String {
        format!("{}-b", self.name)
    }
    pub fn if_a(&self) -> String {
        self.ns_a()
    }
    pub fn if_b(&self) -> String {
        self.ns_b()
    }
    /// `skiff ARGS` inside namespace a or b.
    pub fn cmd(&self, side: char, args: &[&str]) -> Command {
        let ns = if side == 'a' {
            self.ns_a()
        } else {
            self.ns_b()
        };
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &ns, SKIFF])
            .args(args)
            .stdin(Stdio::null());
        c
    }
    pub fn xdp_attached(&self, side: char) -> bool {
        let (ns, ifname) = if side == 'a' {
            (self.ns_a(), self.if_a())
        } else {
            (self.ns_b(), self.if_b())
        };
        let out = Command::new("ip")
            .args(["-n", &ns, "-d", "link", "show", "dev", &ifname])
            .output()
            .expect("ip");
        String::from_utf8_lossy(&out.stdout).contains("prog/xdp")
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        let _ = skiff(&["testbed", "down", "--name", &self.name]);
    }
}

pub fn skiff(args: &[&str]) -> Output {
    Command::new(SKIFF)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run skiff")
}

pub fn json_of(out: &Output, who: &str) -> Value {
    assert!(
        out.status.success(),
        "{who} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{who}: bad JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Starts a sink in namespace b and waits until it is ready.
pub fn start_sink(bed: &Bed, extra: &[&str]) -> Child {
    let ifname = bed.if_b();
    let mut args = vec!["sink", "--iface", ifname.as_str(), "--json", "--quiet"];
    args.extend_from_slice(extra);
    start_ready(bed, 'b', &args, "sink")
}

/// A sink whose rings hold 16384 frames, for tests that count every frame: a sink
/// descheduled longer than its fill ring lasts loses frames for good (the kernel drops on
/// an empty fill ring). CI stalled a sink ~30 ms once (1047 frames lost at 100 kpps past
/// the default 2048 = 20 ms), a sender ~86 ms; 16384 frames last 164 ms at 100 kpps (328
/// ms at 50 kpps) and hold all 6000 of the top-speed replay without a refill.
pub fn deep_sink(bed: &Bed, extra: &[&str]) -> Child {
    let mut args = vec!["--ring-size", "16384"];
    args.extend_from_slice(extra);
    start_sink(bed, &args)
}

/// Starts `skiff ARGS --ready-file F` on one side and waits until F appears.
pub fn start_ready(bed: &Bed, side: char, args: &[&str], who: &str) -> Child {
    let ready = std::env::temp_dir().join(format!("{}.{side}.{who}.ready", bed.name));
    let _ = std::fs::remove_file(&ready);
    let r = ready.to_string_lossy().to_string();
    let mut all = args.to_vec();
    all.extend_from_slice(&["--ready-file", &r]);
    let mut child = bed
        .cmd(side, &all)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {who}: {e}"));
    let start = Instant::now();
    while !ready.exists() {
        if let Some(st) = child.try_wait().expect("try_wait") {
            let out = child.wait_with_output().expect("output");
            panic!(
                "{who} exited before ready ({st}): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "{who} not ready in 15 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = std::fs::remove_file(&ready);
    child
}

pub fn finish(child: Child, who: &str) -> Value {
    let out = child.wait_with_output().expect("wait");
    json_of(&out, who)
}

/// `skiff gen --iface A --json --quiet ARGS`, nothing else implied.
pub fn gen_raw(bed: &Bed, extra: &[&str]) -> Value {
    let ifname = bed.if_a();
    let mut args = vec!["gen", "--iface", ifname.as_str(), "--json", "--quiet"];
    args.extend_from_slice(extra);
    json_of(&bed.cmd('a', &args).output().expect("gen"), "gen")
}

pub fn gen(bed: &Bed, extra: &[&str]) -> Value {
    let ifname = bed.if_a();
    let mut args = vec![
        "gen",
        "--iface",
        ifname.as_str(),
        "--dst-ip",
        "198.18.0.2",
        "--json",
        "--quiet",
    ];
    args.extend_from_slice(extra);
    json_of(&bed.cmd('a', &args).output().expect("gen"), "gen")
}

/// A generator with no count or duration (runs until signalled), extra args appended.
pub fn spawn_unbounded_gen(bed: &Bed, extra: &[&str], out: Stdio) -> Child {
    let ifname = bed.if_a();
    let mut args = vec!["gen", "--iface", ifname.as_str(), "--dst-ip", "198.18.0.2"];
    args.extend_from_slice(&["--dst-mac", "02:00:c6:12:00:02", "--quiet"]);
    args.extend_from_slice(extra);
    bed.cmd('a', &args)
        .stdout(out)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn gen")
}

pub fn u(v: &Value, path: &[&str]) -> u64 {
    let mut x = v;
    for p in path {
        x = &x[*p];
    }
    x.as_u64()
        .unwrap_or_else(|| panic!("{path:?} missing in {v}"))
}
