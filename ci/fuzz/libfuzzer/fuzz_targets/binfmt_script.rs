//! cargo-fuzz target `binfmt_script`: see el2_fuzz::binfmt_script and docs/fuzzing.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| el2_fuzz::binfmt_script::fuzz(data));
