//! Latency measurement: the probe format carried in UDP payloads, per-stream sequence
//! tracking (loss, reordering, duplication), and HdrHistogram recording, logs and
//! summaries.

pub mod collect;
pub mod hist;
pub mod ping;
pub mod probe;
pub mod tracker;

/// A probe session id that differs between runs: the clock mixed with the process id.
pub fn new_session() -> u32 {
    let t = crate::sys::monotonic_ns();
    // 0x9e3779b97f4a7c15 = 2^64/φ: a multiplicative hash spreading nearby inputs apart.
    let x = (t ^ (u64::from(std::process::id()) << 32)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (x >> 32) as u32
}
