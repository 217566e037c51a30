//! cargo-fuzz target `image`: see el2_fuzz::image and docs/fuzzing.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| el2_fuzz::image::fuzz(data));
