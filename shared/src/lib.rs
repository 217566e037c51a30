//! The ABIs that cross an exception level, and nothing else.
//!
//! Both the EL2 hypervisor and the EL1 guest kernel depend on this crate; it
//! holds no policy and no drivers (see `docs/architecture.md`).
//!
//! - [`image`]: the Linux arm64 `Image` header both programs carry
//!   (Linux `Documentation/arch/arm64/booting.rst`).
//! - [`platform`]: what a program learns about its machine from the DTB alone.
//! - [`hvc`]: the hypercall ABI (SMCCC 1.1, PSCI 1.1 and the project's
//!   vendor-specific hypervisor calls).
//! - [`layout`]: the guest-physical memory map the hypervisor gives a VM.
//! - [`trace`]: the per-CPU byte ring and dump lines of the defmt event trace.

//!
//! `unsafe` is denied but for two named exceptions, each an
//! `#[allow(unsafe_code)]` that says why: [`platform::fdt_total_size`] (a
//! DTB header read through a raw pointer, for both kernels' entry code)
//! and fdt-rs's `DevTree::new` in the DTB parser.

#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

pub mod hvc;
pub mod image;
pub mod layout;
pub mod platform;
pub mod trace;
