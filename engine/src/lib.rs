//! # skiff-engine
//!
//! An AF_XDP packet engine. Follow a packet through the modules in this order:
//!
//! - [`xdp`]: skiff's XDP program (from `skiff-ebpf`) loaded with aya and attached through
//!   a bpf_link; it redirects frames that match the filter to `XSKMAP[rx_queue_index]`.
//! - [`xsk`]: one AF_XDP socket and UMEM per queue, with frame accounting that adds up
//!   (free + fill + RX + app + TX + awaiting completion = total). Its unsafe half is
//!   [`sys`], the only module allowed `unsafe`.
//! - [`rx`]: the NAPI-style poll loop (packet and time budgets, `time_squeeze`, adaptive
//!   idle sleeping) feeding the consumers.
//! - [`wire`]: header builders and the receive classifier (never panics on input).
//! - [`gen`]: what to send and when (templates, pacing).
//! - [`tx`]: batched TX with one kick per batch when `need_wakeup` asks, and completion
//!   reclaim every round; the end-of-run drain that times out instead of hanging.
//! - [`stats`]: per-thread counters published once per round.
//!
//! Non-goals for now: shared UMEM across queues (fails on veth queues > 0), zero-copy
//! verification on real NICs (tried and reported, not tested here), TX metadata.
#![deny(unsafe_code)]

pub mod error;
pub mod gen;
pub mod latency;
pub mod netdev;
pub mod pcap;
pub mod rx;
pub mod stats;
pub mod sys;
pub mod tx;
pub mod wire;
pub mod xdp;
pub mod xsk;

pub use error::{XdpError, XskError};
