//! The aarch64 half of the spin locks (`crate::sync::spinlock`): waiting
//! for a lock word to read 0 in WFE, in the shape of Linux's arm64
//! `__cmpwait`:
//!
//! ```text
//!     sevl
//! 2:  wfe
//!     ldaxr   w1, [word]
//!     cbnz    w1, 2b
//! ```
//!
//! `sevl` sets this PE's event register so the first `wfe` falls through
//! to the first look. `ldaxr` is a load-acquire *exclusive*: it marks the
//! word in this PE's global exclusive monitor; the holder's store-release
//! to it (the unlock) clears the monitor, and clearing a PE's global
//! monitor generates a WFE wake-up event for that PE (ARM ARM DDI 0487
//! D1.6.1 "Wait for Event", B2.12.5 "Exclusive access instructions and the
//! global monitor"). An unlock between the `ldaxr` and the `wfe` has
//! already set the event register, so the `wfe` does not sleep: no
//! wake-up is lost.
//!
//! The unlock also sends an explicit event ([`unlock_event`]: `dsb ishst;
//! sev`, as 32-bit Arm Linux's `arch_spin_unlock` → `dsb_sev()` does) when
//! a waiter has counted itself. On hardware it is redundant with the
//! monitor event; QEMU (10.0, TCG) halts a PE in WFE until an SEV or an
//! interrupt and does not model the global monitor's events, so without it
//! a waiter sleeps until its next interrupt (on 4 CPUs, the boot hung
//! right after "CPU(s) online": every waiter halted in `wfe` with
//! interrupts masked).

use core::sync::atomic::AtomicU32;

/// Wakes the PEs waiting in [`wait_while_nonzero`] after the unlock's
/// store-release: `dsb ishst` makes the store visible to the inner
/// shareable domain before `sev` signals every PE (ARM ARM D1.6.1: SEV
/// sets the event register of every PE; B2.3.12 DSB completion).
#[inline(always)]
pub fn unlock_event() {
    // SAFETY: a barrier and an event; no memory is written.
    unsafe { core::arch::asm!("dsb ishst", "sev", options(nostack, preserves_flags)) };
}

/// Waits (in WFE) until `word` reads 0; the final load has acquire order.
/// The wait of every test-and-set lock (`sync::RawSpinLock`,
/// `kernel::KernelLock`).
#[inline(always)]
pub fn wait_while_nonzero(word: &AtomicU32) {
    // SAFETY: reads the lock word, a live, aligned u32; `sevl`/`wfe` only
    // touch the event register and wait. No `nomem`: the asm orders later
    // memory accesses after the acquire load, for the compiler as for the
    // CPU.
    unsafe {
        core::arch::asm!(
            "sevl",
            "2: wfe",
            "ldaxr {cur:w}, [{word}]",
            "cbnz {cur:w}, 2b",
            word = in(reg) word.as_ptr(),
            cur = out(reg) _,
            options(nostack),
        )
    };
}
