//! cargo-fuzz target: `kiln::io::fuzz::torch_tar_reader` (PyTorch's pre-0.4 tar checkpoints)
//! must never panic on any input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = kiln::io::fuzz::torch_tar_reader(data);
});
