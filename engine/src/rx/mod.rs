//! The receive side: the budgeted poll loop (NAPI-style) and the sink consumer.

pub mod poller;
pub mod reflect;
