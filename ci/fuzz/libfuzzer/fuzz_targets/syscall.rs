//! cargo-fuzz target `syscall`: see el2_fuzz::syscall and docs/fuzzing.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| el2_fuzz::syscall::fuzz(data));
