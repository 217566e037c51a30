//! The aarch64 half of the spin locks (`crate::sync::spinlock`): waiting
//! in WFE. The test-and-set locks the kernel uses wait on their word
//! ([`wait_while_nonzero`]); the ticket lock (host-tested, not used: FIFO
//! hand-off livelocked 4-vCPU QEMU boots) waits on its owner half, as
//! Linux's arm64 `arch_spin_lock` did before qspinlock (v3.13-v4.15):
//!
//! ```text
//!     sevl
//! 2:  wfe
//!     ldaxrh  w2, [owner]
//!     eor     w1, w2, w0, lsr #16
//!     cbnz    w1, 2b
//! ```
//!
//! `sevl` sets this PE's event register so the first `wfe` falls through
//! to the first look. `ldaxrh` is a load-acquire *exclusive*: it marks
//! the owner half in this PE's global exclusive monitor; the holder's
//! `stlrh` to it (the unlock) clears the monitor, and clearing a PE's
//! global monitor generates a WFE wake-up event for that PE (ARM ARM DDI
//! 0487 D1.6.1 "Wait for Event", B2.12.5 "Exclusive access instructions
//! and the global monitor"; Linux `__cmpwait` uses the same rule). An
//! unlock between the `ldaxrh` and the `wfe` has already set the event
//! register, so the `wfe` does not sleep: no wake-up is lost.
//!
//! The unlock also sends an explicit event ([`unlock_event`]: `dsb ishst;
//! sev`, as 32-bit Arm Linux's `arch_spin_unlock` → `dsb_sev()` does).
//! On hardware it is redundant with the monitor event; QEMU (10.0, TCG)
//! halts a PE in WFE until an SEV or an interrupt and does not model the
//! global monitor's events, so without it a waiter sleeps until its next
//! interrupt (on 4 CPUs, the boot hung right after "CPU(s) online": every
//! waiter halted in `wfe` with interrupts masked).

use core::sync::atomic::{AtomicU16, AtomicU32};

/// Waits (in WFE) until `owner` is `ticket`; the final load has acquire
/// order.
#[inline(always)]
pub fn wait_for_ticket(owner: &AtomicU16, ticket: u16) {
    // SAFETY: reads the lock's owner half, a live, aligned u16 (the
    // reference guarantees it); `sevl`/`wfe` only touch the event register
    // and wait. No `nomem`: the asm orders later memory accesses after the
    // acquire load, for the compiler as for the CPU.
    unsafe {
        core::arch::asm!(
            "sevl",
            "2: wfe",
            "ldaxrh {cur:w}, [{owner}]",
            "eor {cur:w}, {cur:w}, {ticket:w}",
            "cbnz {cur:w}, 2b",
            owner = in(reg) owner.as_ptr(),
            ticket = in(reg) u32::from(ticket),
            cur = out(reg) _,
            options(nostack),
        )
    };
}

/// Wakes the PEs waiting in [`wait_for_ticket`] after the unlock's
/// store-release: `dsb ishst` makes the store visible to the inner
/// shareable domain before `sev` signals every PE (ARM ARM D1.6.1: SEV
/// sets the event register of every PE; B2.3.12 DSB completion).
#[inline(always)]
pub fn unlock_event() {
    // SAFETY: a barrier and an event; no memory is written.
    unsafe { core::arch::asm!("dsb ishst", "sev", options(nostack, preserves_flags)) };
}

/// Waits (in WFE, as [`wait_for_ticket`]) until `word` reads 0; the final
/// load has acquire order. The test-and-set kernel lock's wait
/// (`process::KernelLock`).
#[inline(always)]
pub fn wait_while_nonzero(word: &AtomicU32) {
    // SAFETY: reads the lock word, a live, aligned u32; `sevl`/`wfe` only
    // touch the event register and wait. No `nomem`, as above.
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
