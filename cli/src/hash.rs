//! `skiff hash`: the flow hash of one flow, the worker RPS steers it to and the RX queue
//! RSS puts it on. Needs no privileges and no network: it computes what
//! `skiff_engine::rx::rps::hash` computes for received frames, for a flow given by hand.
//!
//! ```text
//! $ skiff hash --src 66.9.149.187 --sport 2794 --dst 161.142.100.80 --dport 1766 --workers 4
//! hash 0x51ccc178 (1372373368)  worker 1 of 4  [toeplitz, ms-rss key, 4-tuple]
//! flow tcp 66.9.149.187:2794 -> 161.142.100.80:1766  input 42 09 95 bb a1 8e 64 50 0a ea 06 e6
//! ```
//!
//! The worker is `reciprocal_scale(hash, workers)`, as the kernel's `get_rps_cpu` picks from
//! a queue's `rps_cpus`; the queue (with `--queues`) is the default 128-entry RSS
//! indirection table's. Without ports only the addresses are hashed, as NICs do for
//! fragments and for protocols without ports.

use std::net::IpAddr;

use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use serde::Serialize;
use skiff_engine::{
    rx::rps::hash::{
        parse_key_hex, reciprocal_scale, rss_queue, FlowAddrs, FlowHasher, FlowKey, Ports,
        Toeplitz, DEFAULT_INDIR_TABLE_LEN, IPPROTO_SCTP,
    },
    wire::{IPPROTO_TCP, IPPROTO_UDP},
};

/// Which hash to compute.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum HashArg {
    /// Microsoft RSS Toeplitz, what NICs compute (`--key` sets the key).
    Toeplitz,
    /// A multiply/xor-shift mix: cheaper, unkeyed, matches no NIC.
    Cheap,
}

/// The L4 protocol, for display: NICs hash TCP, UDP and SCTP ports alike.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ProtoArg {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
    /// SCTP.
    Sctp,
}

/// Arguments of `skiff hash`.
#[derive(Debug, Args, Clone)]
pub struct HashArgs {
    /// Source address (IPv4 or IPv6).
    #[arg(long, value_name = "ADDR")]
    pub src: IpAddr,
    /// Destination address (same family as --src).
    #[arg(long, value_name = "ADDR")]
    pub dst: IpAddr,
    /// Source port (with --dport; without both only the addresses are hashed).
    #[arg(long, value_name = "PORT")]
    pub sport: Option<u16>,
    /// Destination port (with --sport).
    #[arg(long, value_name = "PORT")]
    pub dport: Option<u16>,
    /// L4 protocol of the flow (display only: the hash input is the same for all three).
    #[arg(long, value_enum, default_value = "udp")]
    pub proto: ProtoArg,
    /// Toeplitz key in hex, 40 to 64 bytes, separators ':', '-' or spaces allowed (as
    /// `ethtool -x DEV` prints it); default: the Microsoft RSS key.
    #[arg(long, value_name = "HEX")]
    pub key: Option<String>,
    /// Hash function.
    #[arg(long = "hash", value_enum, default_value = "toeplitz")]
    pub kind: HashArg,
    /// Order the endpoints canonically before hashing, so both directions hash the same.
    #[arg(long)]
    pub symmetric: bool,
    /// Workers the flow is steered over: worker = reciprocal_scale(hash, N).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub workers: u32,
    /// Also print the RX queue of N queues under the default 128-entry RSS indirection
    /// table (entry i -> queue i % N).
    #[arg(long, value_name = "N")]
    pub queues: Option<u32>,
    /// Print JSON: {"hash": N, "worker": W, ...}.
    #[arg(long)]
    pub json: bool,
}

/// What `skiff hash` reports.
#[derive(Debug, Serialize)]
pub struct HashReport {
    /// The hash.
    pub hash: u32,
    /// The hash in hex, `0x%08x`.
    pub hash_hex: String,
    /// reciprocal_scale(hash, workers).
    pub worker: u32,
    /// Workers steered over.
    pub workers: u32,
    /// RSS queue, with --queues.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<u32>,
    /// RSS queues, with --queues.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queues: Option<u32>,
    /// Indirection table entries, with --queues.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub indir_table_len: Option<u32>,
    /// `toeplitz` or `cheap`.
    pub kind: &'static str,
    /// `ms-rss`, the key in hex, or `none` (cheap).
    pub key: String,
    /// Both directions hash the same.
    pub symmetric: bool,
    /// `4-tuple` or `2-tuple`.
    pub tuple: &'static str,
    /// The flow as hashed (canonical order when symmetric).
    pub flow: String,
    /// The hash input bytes in hex.
    pub input: String,
}

/// Computes the report and prints it (JSON with `--json`, else two lines of text).
pub fn run(a: HashArgs) -> Result<()> {
    let r = compute(&a)?;
    if a.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        print_text(&r);
    }
    Ok(())
}

/// The hash, worker and queue of the flow in `a`; argument errors as one clear line.
pub fn compute(a: &HashArgs) -> Result<HashReport> {
    let addrs = match (a.src, a.dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => FlowAddrs::V4 { src, dst },
        (IpAddr::V6(src), IpAddr::V6(dst)) => FlowAddrs::V6 { src, dst },
        _ => bail!(
            "--src {} and --dst {} are of different families: give two IPv4 or two IPv6 addresses",
            a.src,
            a.dst
        ),
    };
    let ports = match (a.sport, a.dport) {
        (Some(src), Some(dst)) => Some(Ports { src, dst }),
        (None, None) => None,
        _ => bail!(
            "--sport and --dport go together: give both (4-tuple hash) or neither (addresses only)"
        ),
    };
    if a.workers == 0 {
        bail!("--workers must be at least 1");
    }
    if a.queues == Some(0) {
        bail!("--queues must be at least 1");
    }
    let proto = match a.proto {
        ProtoArg::Udp => IPPROTO_UDP,
        ProtoArg::Tcp => IPPROTO_TCP,
        ProtoArg::Sctp => IPPROTO_SCTP,
    };
    let hasher = match a.kind {
        HashArg::Toeplitz => {
            let t = match &a.key {
                Some(hex) => Toeplitz::new(&parse_key_hex(hex)?)?,
                None => Toeplitz::ms_rss(),
            };
            FlowHasher::toeplitz(t)
        }
        HashArg::Cheap => {
            if a.key.is_some() {
                bail!("--key applies to --hash toeplitz only (the cheap hash is unkeyed)");
            }
            FlowHasher::cheap()
        }
    }
    .with_symmetric(a.symmetric);
    let key = FlowKey::new(addrs, ports, proto);
    let hash = hasher.hash(&key);
    let hashed = hasher.effective_key(&key);
    let key_name = match hasher.toeplitz_hasher() {
        Some(t) if t.is_ms_rss_key() => "ms-rss".to_string(),
        Some(t) => hex(t.key(), ""),
        None => "none".to_string(),
    };
    Ok(HashReport {
        hash,
        hash_hex: format!("{hash:#010x}"),
        worker: reciprocal_scale(hash, a.workers),
        workers: a.workers,
        queue: a
            .queues
            .map(|q| rss_queue(hash, q, DEFAULT_INDIR_TABLE_LEN)),
        queues: a.queues,
        indir_table_len: a.queues.map(|_| DEFAULT_INDIR_TABLE_LEN),
        kind: hasher.kind().name(),
        key: key_name,
        symmetric: hasher.is_symmetric(),
        tuple: key.tuple_name(),
        flow: hashed.to_string(),
        input: hex(hashed.hash_input().as_bytes(), " "),
    })
}

/// Bytes as lower-case hex pairs joined by `sep`.
fn hex(bytes: &[u8], sep: &str) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(sep)
}

/// Two lines: hash, worker (and queue) with what was hashed how; then the flow and the input.
pub fn print_text(r: &HashReport) {
    let mut tags = vec![r.kind.to_string()];
    match r.key.as_str() {
        "none" => {}
        "ms-rss" => tags.push("ms-rss key".into()),
        _ => tags.push(format!("key {}", r.key)),
    }
    if r.symmetric {
        tags.push("symmetric".into());
    }
    tags.push(r.tuple.into());
    let queue = match (r.queue, r.queues, r.indir_table_len) {
        (Some(q), Some(n), Some(t)) => format!("  rss queue {q} of {n} ({t}-entry table)"),
        _ => String::new(),
    };
    println!(
        "hash {} ({})  worker {} of {}{queue}  [{}]",
        r.hash_hex,
        r.hash,
        r.worker,
        r.workers,
        tags.join(", ")
    );
    println!("flow {}  input {}", r.flow, r.input);
}
