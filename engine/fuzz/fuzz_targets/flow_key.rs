//! Flow-key extraction and hashing over arbitrary bytes: no panic, and a key, when one
//! is found, hashes the same twice.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skiff_engine::rx::rps::hash;

fuzz_target!(|data: &[u8]| {
    hash::fuzz_one(data);
});
