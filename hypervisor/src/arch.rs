//! Hardware glue. Only `aarch64` bare metal has one; on the host (unit
//! tests) it is replaced by [`fake`], which records what the pure cores
//! ask of the hardware (Hafnium's `src/arch/fake`) and stands in for the
//! arch types a `crate::vm::Vm` holds.

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod aarch64;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub use aarch64::{devices::Device, switch::FpState, vnet::VirtioNet};

#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
pub mod fake;
#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
pub use fake::{Device, FpState, VirtioNet};

#[cfg(test)]
mod layering_tests;
