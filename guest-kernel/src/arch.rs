//! Hardware glue; built only for aarch64 bare metal.

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod aarch64;
