//! Hardware glue. Only `aarch64` bare metal has one; on the host (unit
//! tests) nothing here is built and the pure cores are tested alone.

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod aarch64;
