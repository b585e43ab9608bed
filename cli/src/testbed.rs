//! `skiff testbed`: two network namespaces joined by a veth pair, with addresses from
//! 198.18.0.0/15 (RFC 2544's benchmarking range) inside them. Created inside the
//! namespaces directly (`ip -n NS link add ... peer ... netns NS2`), so no link ever
//! appears in the host's namespace, even for an instant.
//!
//! Names, for `--name N` (default `skiff`):
//!
//! | what | side a (generator) | side b (sink) |
//! |---|---|---|
//! | namespace | `N-a` | `N-b` |
//! | interface | `N-a` | `N-b` |
//! | MAC | 02:00:c6:12:00:01 | 02:00:c6:12:00:02 |
//! | IPv4 | 198.18.0.1/24 | 198.18.0.2/24 |
//!
//! Set-up for the XDP data path: MTU 1500 (native XDP on veth needs ≤ 3506), the same
//! number of RX and TX queues on both ends (else native XDP fails with ENOSPC), GRO on
//! (a redirect into a veth is only delivered if its peer has XDP or GRO), IPv6 off on the
//! pair (no stray ND/MLD frames in the counts).

use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde::Serialize;

/// MAC of side a: 02 (locally administered) 00, then c6:12 = 198.18, then 00:01.
pub const MAC_A: &str = "02:00:c6:12:00:01";
/// MAC of side b.
pub const MAC_B: &str = "02:00:c6:12:00:02";
/// IPv4 of side a.
pub const IP_A: &str = "198.18.0.1";
/// IPv4 of side b.
pub const IP_B: &str = "198.18.0.2";
/// Prefix length of the testbed subnet.
pub const PREFIX: u8 = 24;
/// MTU set on both ends.
pub const MTU: u32 = 1500;
/// Longest `--name`: interface names are at most 15 bytes (IFNAMSIZ − 1), and `-a` is 2.
pub const MAX_NAME: usize = 13;

#[derive(Debug, Subcommand)]
pub enum TestbedCmd {
    /// Create the testbed (idempotent: an existing, matching one is kept).
    Up(TestbedArgs),
    /// Remove the testbed (namespaces, links, and with them any XDP program).
    Down(TestbedArgs),
    /// Show what exists.
    Status(TestbedArgs),
}

#[derive(Debug, Args, Clone)]
pub struct TestbedArgs {
    /// Testbed name: namespaces and interfaces are NAME-a and NAME-b.
    #[arg(long, default_value = "skiff")]
    pub name: String,
    /// Queues on each end of the veth pair (up only).
    #[arg(long, default_value_t = 1)]
    pub queues: u32,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// A testbed's names and addresses.
#[derive(Debug, Clone, Serialize)]
pub struct Testbed {
    pub name: String,
    pub queues: u32,
    pub ns_a: String,
    pub ns_b: String,
    pub if_a: String,
    pub if_b: String,
    pub mac_a: &'static str,
    pub mac_b: &'static str,
    pub ip_a: &'static str,
    pub ip_b: &'static str,
    pub prefix: u8,
}

impl Testbed {
    pub fn new(name: &str, queues: u32) -> Result<Self> {
        if name.is_empty()
            || name.len() > MAX_NAME
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            bail!("bad testbed name {name:?}: 1 to {MAX_NAME} characters of [A-Za-z0-9_-] (interface names are at most 15 bytes)");
        }
        // veth allows up to 4096 queues; 64 is skiff's XSKMAP size.
        if queues == 0 || queues > skiff_ebpf::MAX_QUEUES {
            bail!("bad --queues {queues}: 1 to {}", skiff_ebpf::MAX_QUEUES);
        }
        Ok(Testbed {
            name: name.to_owned(),
            queues,
            ns_a: format!("{name}-a"),
            ns_b: format!("{name}-b"),
            if_a: format!("{name}-a"),
            if_b: format!("{name}-b"),
            mac_a: MAC_A,
            mac_b: MAC_B,
            ip_a: IP_A,
            ip_b: IP_B,
            prefix: PREFIX,
        })
    }
}

fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("running `ip` (install iproute2)")?;
    if !out.status.success() {
        bail!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn ns_exists(ns: &str) -> bool {
    std::path::Path::new("/run/netns").join(ns).exists()
}

fn link_queues(ns: &str, ifname: &str) -> Option<(u32, u32)> {
    let out = Command::new("ip")
        .args(["-n", ns, "-d", "-j", "link", "show", "dev", ifname])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let l = v.get(0)?;
    Some((
        l.get("num_tx_queues")?.as_u64()? as u32,
        l.get("num_rx_queues")?.as_u64()? as u32,
    ))
}

/// True if the whole testbed exists with `queues` queues on both ends.
fn complete(tb: &Testbed) -> bool {
    ns_exists(&tb.ns_a)
        && ns_exists(&tb.ns_b)
        && link_queues(&tb.ns_a, &tb.if_a) == Some((tb.queues, tb.queues))
        && link_queues(&tb.ns_b, &tb.if_b) == Some((tb.queues, tb.queues))
}

/// Creates the testbed. Returns false if it already existed as asked.
pub fn up(tb: &Testbed) -> Result<bool> {
    if !skiff_engine::netdev::missing_caps().is_empty() {
        bail!("the testbed needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN for namespaces)");
    }
    if complete(tb) {
        return Ok(false);
    }
    down(tb)?; // partial or different: start over
    let result = (|| -> Result<()> {
        ip(&["netns", "add", &tb.ns_a])?;
        ip(&["netns", "add", &tb.ns_b])?;
        let q = tb.queues.to_string();
        ip(&[
            "-n",
            &tb.ns_a,
            "link",
            "add",
            &tb.if_a,
            "numtxqueues",
            &q,
            "numrxqueues",
            &q,
            "type",
            "veth",
            "peer",
            "name",
            &tb.if_b,
            "netns",
            &tb.ns_b,
            "numtxqueues",
            &q,
            "numrxqueues",
            &q,
        ])?;
        let mtu = MTU.to_string();
        for (ns, ifname, mac, addr) in [
            (&tb.ns_a, &tb.if_a, tb.mac_a, tb.ip_a),
            (&tb.ns_b, &tb.if_b, tb.mac_b, tb.ip_b),
        ] {
            ip(&[
                "-n", ns, "link", "set", "dev", ifname, "address", mac, "mtu", &mtu,
            ])?;
            sysctl(ns, &format!("net.ipv6.conf.{ifname}.disable_ipv6=1"));
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{addr}/{}", tb.prefix),
                "dev",
                ifname,
            ])?;
            ip(&["-n", ns, "link", "set", "dev", "lo", "up"])?;
            ip(&["-n", ns, "link", "set", "dev", ifname, "up"])?;
            // GRO on: needed for XDP_REDIRECT into a veth; best effort (ethtool optional).
            let _ = Command::new("ip")
                .args(["netns", "exec", ns, "ethtool", "-K", ifname, "gro", "on"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        Ok(())
    })();
    if let Err(e) = result {
        let _ = down(tb);
        return Err(e.context(format!("creating testbed {:?}", tb.name)));
    }
    Ok(true)
}

fn sysctl(ns: &str, kv: &str) {
    let _ = Command::new("ip")
        .args(["netns", "exec", ns, "sysctl", "-q", "-w", kv])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Removes the testbed; deleting a namespace deletes its veth end, the peer, and any XDP
/// program attached to them. Returns true if anything was removed.
pub fn down(tb: &Testbed) -> Result<bool> {
    let mut removed = false;
    for ns in [&tb.ns_a, &tb.ns_b] {
        if ns_exists(ns) {
            ip(&["netns", "del", ns])?;
            removed = true;
        }
    }
    Ok(removed)
}

/// What exists of the testbed.
#[derive(Debug, Serialize)]
pub struct Status {
    pub testbed: Testbed,
    pub up: bool,
    pub ns_a_exists: bool,
    pub ns_b_exists: bool,
    pub queues_a: Option<(u32, u32)>,
    pub queues_b: Option<(u32, u32)>,
    pub xdp_a: Option<String>,
    pub xdp_b: Option<String>,
}

fn xdp_of(ns: &str, ifname: &str) -> Option<String> {
    let out = Command::new("ip")
        .args(["-n", ns, "-d", "-j", "link", "show", "dev", ifname])
        .output()
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let x = v.get(0)?.get("xdp")?;
    Some(format!(
        "mode {} prog {}",
        x.get("mode").map(|m| m.to_string()).unwrap_or_default(),
        x.get("prog")
            .and_then(|p| p.get("id"))
            .map(|m| m.to_string())
            .unwrap_or_default()
    ))
}

pub fn status(tb: &Testbed) -> Status {
    let queues_a = link_queues(&tb.ns_a, &tb.if_a);
    let queues_b = link_queues(&tb.ns_b, &tb.if_b);
    Status {
        testbed: Testbed {
            queues: queues_a.map(|q| q.0).unwrap_or(0),
            ..tb.clone()
        },
        up: queues_a.is_some() && queues_b.is_some(),
        ns_a_exists: ns_exists(&tb.ns_a),
        ns_b_exists: ns_exists(&tb.ns_b),
        queues_a,
        queues_b,
        xdp_a: xdp_of(&tb.ns_a, &tb.if_a),
        xdp_b: xdp_of(&tb.ns_b, &tb.if_b),
    }
}

/// Removes the testbed when dropped: for the demo and the tests, also on failure.
#[derive(Debug)]
pub struct Guard(pub Testbed);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Err(e) = down(&self.0) {
            eprintln!("skiff: removing testbed {:?}: {e:#}", self.0.name);
        }
    }
}

pub fn run(cmd: TestbedCmd) -> Result<()> {
    match cmd {
        TestbedCmd::Up(a) => {
            let tb = Testbed::new(&a.name, a.queues)?;
            let created = up(&tb)?;
            if a.json {
                println!("{}", serde_json::json!({"created": created, "testbed": tb}));
            } else {
                println!(
                    "testbed {} {}: {}/{} [{} {}/{}] <-> {}/{} [{} {}/{}], {} queue(s)",
                    tb.name,
                    if created { "created" } else { "already up" },
                    tb.ns_a,
                    tb.if_a,
                    tb.mac_a,
                    tb.ip_a,
                    tb.prefix,
                    tb.ns_b,
                    tb.if_b,
                    tb.mac_b,
                    tb.ip_b,
                    tb.prefix,
                    tb.queues
                );
                println!(
                    "  run a command inside: ip netns exec {} skiff sink --iface {}",
                    tb.ns_b, tb.if_b
                );
            }
        }
        TestbedCmd::Down(a) => {
            let tb = Testbed::new(&a.name, 1)?;
            let removed = down(&tb)?;
            if a.json {
                println!(
                    "{}",
                    serde_json::json!({"removed": removed, "name": tb.name})
                );
            } else {
                println!(
                    "testbed {} {}",
                    tb.name,
                    if removed { "removed" } else { "was not there" }
                );
            }
        }
        TestbedCmd::Status(a) => {
            let tb = Testbed::new(&a.name, 1)?;
            let s = status(&tb);
            if a.json {
                println!("{}", serde_json::to_string(&s)?);
            } else if !s.ns_a_exists && !s.ns_b_exists {
                println!("testbed {}: down", tb.name);
            } else {
                println!(
                    "testbed {}: {}",
                    tb.name,
                    if s.up { "up" } else { "partial" }
                );
                println!(
                    "  {} / {}: queues (tx, rx) {:?}, xdp {}",
                    tb.ns_a,
                    tb.if_a,
                    s.queues_a,
                    s.xdp_a.as_deref().unwrap_or("none")
                );
                println!(
                    "  {} / {}: queues (tx, rx) {:?}, xdp {}",
                    tb.ns_b,
                    tb.if_b,
                    s.queues_b,
                    s.xdp_b.as_deref().unwrap_or("none")
                );
            }
        }
    }
    Ok(())
}
