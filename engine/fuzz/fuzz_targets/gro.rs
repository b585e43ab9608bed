//! GRO over an arbitrary sequence of frames: no panic, and every frame comes out exactly
//! once (frames in = frames out + frames held, and nothing held after the flush).
#![no_main]

use libfuzzer_sys::fuzz_target;
use skiff_engine::rx::gro;

fuzz_target!(|data: &[u8]| {
    gro::fuzz_one(data);
});
