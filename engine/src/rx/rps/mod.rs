//! RPS-style steering, as the kernel's `get_rps_cpu` / `enqueue_to_backlog` /
//! `process_backlog` do it (reference/kernel-mechanisms.md §3): a flow hash picks a worker,
//! bounded per-pair backlog rings carry frames to it, RFS keeps flows where they are
//! consumed without reordering them.

pub mod backlog;
pub mod hash;
pub mod rfs;
