//! cargo-fuzz target `vgic`: see el2_fuzz::vgic and docs/fuzzing.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| el2_fuzz::vgic::fuzz(data));
