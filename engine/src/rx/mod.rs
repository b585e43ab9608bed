//! The receive side, in the order a frame meets it: the budgeted poll loop (NAPI-style,
//! [`poller`]), RPS steering to worker threads ([`rps`], [`steer`]), GRO ([`gro`]) and
//! the consumer ([`consume`]); [`reflect`] is the reflector's own loop.

pub mod consume;
pub mod gro;
pub mod poller;
pub mod reflect;
pub mod rps;
pub mod steer;
