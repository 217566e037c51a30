//! What the kernel does once its console is up: the order of subsystem
//! start-up, as Linux's `start_kernel` lists it. Grows as subsystems land.

use crate::arch::aarch64::uaccess;
use crate::cmdline::Cmdline;
use crate::mm::Errno;
use shared::platform::Platform;

/// Brings the kernel up and runs it; returns only by powering off.
pub fn run(_platform: &Platform, _cmdline: &Cmdline) -> ! {
    // No user address space yet: every user address faults, and the
    // exception table must turn that into -EFAULT.
    let mut b = [0u8; 8];
    let r1 = uaccess::copy_from_user(&mut b, 0x1000);
    let r2 = uaccess::copy_to_user(0x40_0000, &b);
    let r3 = uaccess::copy_from_user(&mut b, crate::arch::aarch64::mmu::PAGE_OFFSET as usize);
    let ok = [r1, r2, r3].iter().all(|r| *r == Err(Errno::EFAULT));
    crate::println!("guest-kernel: uaccess: bad user pointers give EFAULT: {}", if ok { "ok" } else { "FAILED" });
    // The global allocator is kmalloc now: small objects from slab caches,
    // large ones as whole compound pages.
    let v: alloc::vec::Vec<alloc::boxed::Box<[u8]>> =
        (0..64).map(|i| alloc::vec![i as u8; 16 << (i % 10)].into_boxed_slice()).collect();
    let ok = v.iter().enumerate().all(|(i, b)| b.len() == 16 << (i % 10) && b.iter().all(|&x| x == i as u8));
    drop(v);
    crate::println!("guest-kernel: kmalloc: 64 objects of 16 B..8 KiB: {}", if ok { "ok" } else { "FAILED" });
    crate::println!("guest-kernel: nothing more to do yet; powering off");
    crate::arch::aarch64::psci::system_off()
}
