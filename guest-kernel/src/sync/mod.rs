//! The guest kernel's locks: spin locks whose waiters wait in WFE
//! ([`spinlock`]), their interrupt-saving variant, and a small lockdep
//! ([`lockdep`]) that checks the order below at run time when the kernel
//! is built with the cargo feature `lockdep` (scripts/build turns it on
//! for the image the QEMU tests boot, and off with `--no-lockdep` for
//! scripts/bench).
//!
//! # Lock order
//!
//! A CPU may take a lock only while every lock it holds comes *earlier* in
//! this table (a smaller rank; outermost first), and never a lock of a
//! class it already holds. Every lock is held with interrupts masked
//! (`lock_irqsave`, or `lock` inside a section that masked them), so an
//! interrupt handler never finds a lock of its own CPU held (LKD ch. 10,
//! "Spin Locks and Bottom Halves": `spin_lock_irqsave` for data an
//! interrupt handler also touches).
//!
//! | rank | class | what it guards | taken inside |
//! | ---: | --- | --- | --- |
//! | 1 | [`KLOCK`] | the kernel lock: scheduler, task table, address spaces, timers, futexes, tty (`arch/aarch64/process.rs`) | nothing; held across `cpu_switch_to` and released by the next task on the same CPU |
//! | 2 | [`KERNEL_MAP`] | the kernel's TTBR1 tables (`mmu::map_probe_page`) | nothing (self-tests) |
//! | 3 | [`ASIDS`] | the ASID bitmap (`pgtable.rs`) | KLOCK (address space creation and teardown) |
//! | 4 | [`GIC`] | the GIC driver: enables, IPIs (`arch/aarch64/irq.rs`) | KLOCK |
//! | 5 | [`HEAP`] | the kernel heap: early heap and kmalloc's slab caches (`mm/slab/heap.rs`) | any of the above (anything may allocate) |
//! | 6 | [`PAGE_ALLOC`] | the buddy allocator and its per-CPU lists (`arch/aarch64/memory.rs`) | HEAP (slab growth), KLOCK (faults) |
//! | 7 | [`PERCPU`] | one CPU's slot of a `PerCpu` variable (`mm/percpu.rs`) | anything |
//! | 8 | [`CONSOLE`] | the console device (`console.rs`) | anything: the innermost lock (the crash path bypasses it) |
//!
//! [`LOCKDEP_TEST_A`] and [`LOCKDEP_TEST_B`] have no rank: the self-test
//! `test=lockdep-inversion` takes them in both orders to prove the
//! checker reports an inversion from the recorded order alone.
//!
//! What stays outside: `spin::Once` (`DTB`, `INIT`) is a one-time
//! initialisation, not a lock held across code; the hypervisor has its own
//! locks (`hypervisor/src/sync.rs`, a different crate).

pub mod lockdep;
#[allow(unsafe_code)] // the lock's `Sync` promise and its guard's cell access
pub mod spinlock;

pub use lockdep::LockClass;
pub use spinlock::{RawSpinLock, SpinLock, SpinLockGuard};

macro_rules! classes {
    ($($(#[$doc:meta])* $name:ident = $rank:literal;)*) => {
        #[allow(non_camel_case_types, clippy::upper_case_acronyms)]
        #[repr(u8)]
        enum Id { $($name),* }
        $($(#[$doc])* pub static $name: LockClass = LockClass { name: stringify!($name), id: Id::$name as u8, rank: $rank };)*
        /// Every class (for lockdep's reports).
        pub static CLASSES: [&LockClass; [$(stringify!($name)),*].len()] = [$(&$name),*];
    };
}

classes! {
    /// The kernel lock.
    KLOCK = 1;
    /// The kernel's TTBR1 tables.
    KERNEL_MAP = 2;
    /// The ASID bitmap.
    ASIDS = 3;
    /// The GIC driver.
    GIC = 4;
    /// The kernel heap.
    HEAP = 5;
    /// The page allocator.
    PAGE_ALLOC = 6;
    /// A per-CPU variable's slot.
    PERCPU = 7;
    /// The console.
    CONSOLE = 8;
    /// Self-test class (no rank).
    LOCKDEP_TEST_A = 0;
    /// Self-test class (no rank).
    LOCKDEP_TEST_B = 0;
}

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
use crate::arch::aarch64::cpu::{local_irq_restore, local_irq_save};

/// No interrupts to mask on the host.
#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
fn local_irq_save() -> u64 {
    0
}

#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
fn local_irq_restore(_: u64) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_have_distinct_ids_and_ranks_in_table_order() {
        assert!(CLASSES.len() <= lockdep::MAX_CLASSES);
        for (i, c) in CLASSES.iter().enumerate() {
            assert_eq!(c.id as usize, i, "{}", c.name);
        }
        let ranked: Vec<u8> = CLASSES.iter().map(|c| c.rank).filter(|&r| r != 0).collect();
        assert!(ranked.windows(2).all(|w| w[0] < w[1]), "ranks increase down the table: {ranked:?}");
    }
}
