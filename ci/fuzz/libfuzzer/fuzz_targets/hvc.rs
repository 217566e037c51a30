//! cargo-fuzz target `hvc`: see el2_fuzz::hvc and docs/fuzzing.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| el2_fuzz::hvc::fuzz(data));
