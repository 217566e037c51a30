//! cargo-fuzz target `virtqueue`: see el2_fuzz::virtqueue and docs/fuzzing.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| el2_fuzz::virtqueue::fuzz(data));
