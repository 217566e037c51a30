//! cargo-fuzz target `esr`: see el2_fuzz::esr and docs/fuzzing.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| el2_fuzz::esr::fuzz(data));
