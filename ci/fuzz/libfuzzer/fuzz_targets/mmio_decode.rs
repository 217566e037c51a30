//! cargo-fuzz target `mmio_decode`: see el2_fuzz::mmio and docs/fuzzing.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| el2_fuzz::mmio::fuzz(data));
