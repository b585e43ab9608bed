//! Facts about a network device, read from sysfs (which `ip netns exec` remounts for the
//! namespace, so these are the namespace's devices), and process capabilities.

use std::{fs, path::PathBuf};

fn dev_dir(ifname: &str) -> PathBuf {
    PathBuf::from("/sys/class/net").join(ifname)
}

/// True if the interface exists in this namespace.
pub fn exists(ifname: &str) -> bool {
    !ifname.is_empty() && !ifname.contains('/') && dev_dir(ifname).exists()
}

fn read_trim(ifname: &str, rel: &str) -> Option<String> {
    fs::read_to_string(dev_dir(ifname).join(rel))
        .ok()
        .map(|s| s.trim().to_owned())
}

/// MTU in bytes (L3).
pub fn mtu(ifname: &str) -> Option<u32> {
    read_trim(ifname, "mtu")?.parse().ok()
}

/// MAC address.
pub fn mac(ifname: &str) -> Option<[u8; 6]> {
    crate::wire::parse_mac(&read_trim(ifname, "address")?)
}

fn count_queues(ifname: &str, prefix: &str) -> u32 {
    fs::read_dir(dev_dir(ifname).join("queues"))
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
                .count() as u32
        })
        .unwrap_or(0)
}

/// Number of RX queues.
pub fn rx_queues(ifname: &str) -> u32 {
    count_queues(ifname, "rx-")
}

/// Number of TX queues.
pub fn tx_queues(ifname: &str) -> u32 {
    count_queues(ifname, "tx-")
}

/// A counter from `statistics/` (`tx_dropped`, `rx_packets`, ...); 0 if unreadable.
pub fn stat(ifname: &str, name: &str) -> u64 {
    read_trim(ifname, &format!("statistics/{name}"))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// The link speed in Mbit/s, when the driver reports one (a veth reports none: sysfs
/// answers EINVAL, or -1 for an unknown speed).
pub fn speed_mbps(ifname: &str) -> Option<u64> {
    read_trim(ifname, "speed")
        .and_then(|s| s.parse::<i64>().ok())
        .and_then(|v| u64::try_from(v).ok())
        .filter(|&v| v > 0)
}

/// The IPv4 address of `ifname` in this namespace and its prefix length, from `ip -j`
/// (iproute2 is a dependency of the testbed anyway).
pub fn ipv4_addr(ifname: &str) -> Option<([u8; 4], u8)> {
    let out = std::process::Command::new("ip")
        .args(["-4", "-o", "addr", "show", "dev", ifname])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let cidr = text
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)?;
    let (a, p) = cidr.split_once('/')?;
    Some((crate::wire::parse_ipv4(a)?, p.parse().ok()?))
}

/// Linux capability numbers skiff needs.
pub mod cap {
    /// CAP_NET_ADMIN: attach XDP, configure links.
    pub const NET_ADMIN: u32 = 12;
    /// CAP_NET_RAW: AF_XDP sockets.
    pub const NET_RAW: u32 = 13;
    /// CAP_SYS_ADMIN: BPF on kernels before 5.8, and netns set-up.
    pub const SYS_ADMIN: u32 = 21;
    /// CAP_BPF (Linux ≥ 5.8).
    pub const BPF: u32 = 39;
}

/// The effective capability set, from /proc/self/status.
pub fn effective_caps() -> u64 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
        })
        .unwrap_or(0)
}

/// Names of the capabilities among those the data path needs that this process lacks.
pub fn missing_caps() -> Vec<&'static str> {
    let eff = effective_caps();
    let has = |c: u32| eff & (1u64 << c) != 0;
    let mut missing = Vec::new();
    if !has(cap::NET_ADMIN) {
        missing.push("CAP_NET_ADMIN");
    }
    if !has(cap::NET_RAW) {
        missing.push("CAP_NET_RAW");
    }
    if !has(cap::BPF) && !has(cap::SYS_ADMIN) {
        missing.push("CAP_BPF");
    }
    missing
}
