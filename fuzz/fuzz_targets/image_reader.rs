//! cargo-fuzz target: `kiln::data::fuzz::image_reader` must never panic on any input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = kiln::data::fuzz::image_reader(data);
});
