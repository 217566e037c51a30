//! cargo-fuzz target `cpio`: see el2_fuzz::cpio and docs/fuzzing.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| el2_fuzz::cpio::fuzz(data));
