//! cargo-fuzz target: `kiln::io::fuzz::structural_pickle_reader` (the structural unpickler
//! of whole-module files, and the globals scan) must never panic on any input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = kiln::io::fuzz::structural_pickle_reader(data);
});
