//! The EL2 hypervisor.
//!
//! Pure cores (host-tested) sit at the top level; everything that touches
//! hardware lives under [`arch`] and is built only for `aarch64-unknown-none`.

#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod arch;
pub mod console;
pub mod esr;
pub mod fdtgen;
pub mod fpowner;
pub mod idregs;
pub mod mm;
pub mod mmio;
pub mod psci;
pub mod smccc;
pub mod stats;
pub mod sync;
pub mod vcpu;
pub mod vgic;
pub mod vm;
pub mod vmspec;
pub mod vpl011;
pub mod vtimer;
