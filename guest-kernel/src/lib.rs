//! The EL1 guest kernel.
//!
//! Each subsystem has a pure-Rust core that is unit-tested on the host; the
//! hardware glue lives under [`arch`] and is built only for bare metal.

#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod arch;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod boot;
pub mod cmdline;
pub mod console;
pub mod elf;
pub mod futex;
pub mod initramfs;
pub mod irq;
pub mod mm;
pub mod sched;
pub mod selftest;
pub mod syscall;
pub mod task;
pub mod time;
pub mod trace;
pub mod tty;
