//! cargo-fuzz target `elf`: see el2_fuzz::elf and docs/fuzzing.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| el2_fuzz::elf::fuzz(data));
