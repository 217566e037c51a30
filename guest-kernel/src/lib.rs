//! The EL1 guest kernel.
//!
//! Each subsystem has a pure-Rust core that is unit-tested on the host; the
//! hardware glue lives under [`arch`] and is built only for bare metal.
//!
//! `unsafe` is denied everywhere except in the glue (`arch`, the glue half
//! of `hyptest`) and a few named exceptions, each an `#[allow(unsafe_code)]`
//! on one small item or module that says why it needs `unsafe` and why it
//! is sound: `mm::slab::raw` and `mm::slab::heap`, `mm::page::init_mem_map`'s
//! slice, `console::emergency_print`, `sync::spinlock` (the lock's `Sync`
//! promise and its guard).

#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

#[allow(unsafe_code)] // the hardware glue: asm, MMIO, system registers
pub mod arch;
pub mod binfmt_script;
pub mod block;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod boot;
pub mod cmdline;
pub mod console;
pub mod elf;
pub mod fs;
pub mod futex;
/// The hypervisor's self-tests and benchmarks (`test=NAME`): a payload for
/// the QEMU tests, not part of the kernel; built with the `hyptest` feature
/// (its pure verdicts also in host tests).
#[cfg(any(test, feature = "hyptest"))]
pub mod hyptest;
pub mod initramfs;
pub mod irq;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod kernel;
pub mod mm;
pub mod sched;
pub mod shm;
pub mod sync;
pub mod syscall;
pub mod task;
pub mod time;
pub mod trace;
pub mod tty;
pub mod virtio;
