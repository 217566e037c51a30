//! cargo-fuzz target `dtb`: see el2_fuzz::dtb and docs/fuzzing.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| el2_fuzz::dtb::fuzz(data));
