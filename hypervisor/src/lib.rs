//! The EL2 hypervisor.
//!
//! Pure cores (host-tested) sit at the top level; everything that touches
//! hardware lives under [`arch`] and is built only for `aarch64-unknown-none`.
//!
//! `unsafe` is denied everywhere except in [`arch`] and a few named
//! exceptions, each an `#[allow(unsafe_code)]` on one small item that says
//! why it needs `unsafe` and why it is sound: `sync::Mutex::force_unlock`
//! and the `GlobalAlloc` impl of `sync::MmuChecked`,
//! `console::emergency_print`, `Send` for `mm::stage2::Stage2Table`, and
//! the per-CPU held-lock sets of the lock-order check (`sync`, `lockdep`).

#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

#[allow(unsafe_code)] // the hardware glue: asm, MMIO, system registers, the world switch
pub mod arch;
pub mod console;
pub mod esr;
pub mod exit;
pub mod fastpath;
pub mod fdtgen;
pub mod fpowner;
pub mod guestram;
pub mod idregs;
pub mod inject;
pub mod mm;
pub mod mmio;
pub mod psci;
pub mod pvtime;
pub mod ratelimit;
pub mod setway;
pub mod shm;
pub mod skip;
pub mod smccc;
pub mod stats;
pub mod switchconf;
pub mod sync;
pub mod vcpu;
pub mod vdebug;
pub mod vgic;
pub mod virtio;
pub mod vm;
pub mod vmctl;
pub mod vmreq;
pub mod vmspec;
pub mod vpl011;
pub mod vsched;
pub mod vswitch;
pub mod vtimer;
