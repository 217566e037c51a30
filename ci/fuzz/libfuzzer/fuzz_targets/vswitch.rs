//! cargo-fuzz target `vswitch`: see el2_fuzz::vswitch and docs/fuzzing.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| el2_fuzz::vswitch::fuzz(data));
