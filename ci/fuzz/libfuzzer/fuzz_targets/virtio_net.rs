//! cargo-fuzz target `virtio_net`: see el2_fuzz::virtio_net and docs/fuzzing.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| el2_fuzz::virtio_net::fuzz(data));
