//! cargo-fuzz target `vpl011`: see el2_fuzz::vpl011 and docs/fuzzing.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| el2_fuzz::vpl011::fuzz(data));
