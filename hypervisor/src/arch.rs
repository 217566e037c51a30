//! Hardware glue. Only `aarch64` bare metal has one; on the host (unit
//! tests) it is replaced by [`fake`], which records what the pure cores
//! ask of the hardware (Hafnium's `src/arch/fake`).

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod aarch64;
#[cfg(test)]
pub mod fake;
