//! skiff's userspace TCP: the transmit path the kernel runs from `tcp_sendmsg` to
//! `dev_hard_start_xmit`, rebuilt on AF_XDP, plus the receive side a TCP needs.

pub mod cc;
pub mod conn;
pub mod frames;
pub mod ooo;
pub mod rack;
pub mod rtt;
pub mod run;
pub mod sack;
pub mod seq;
pub mod stack;

pub use seq::Seq;

#[cfg(test)]
mod tests;
