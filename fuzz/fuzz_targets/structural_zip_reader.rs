//! cargo-fuzz target: `kiln::io::fuzz::structural_zip_reader` (a whole-module zip file read
//! structurally, its module tree, repr, rebuild spec and state dict) must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = kiln::io::fuzz::structural_zip_reader(data);
});
