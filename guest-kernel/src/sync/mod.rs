//! The guest kernel's locks: spin locks whose waiters wait in WFE
//! ([`spinlock`]), their interrupt-saving variant, the sleeping locks
//! ([`rwsem`]: the reader-writer semaphore and the mutex, whose waiters
//! sleep on a scheduler wait queue), and a small lockdep ([`lockdep`])
//! that checks the order below at run time when the kernel is built with
//! the cargo feature `lockdep` (scripts/build turns it on for the image
//! the QEMU tests boot, and off with `--no-lockdep` for scripts/bench).
//!
//! # Lock order
//!
//! A CPU may take a lock only while every lock it holds comes *earlier* in
//! this table (a smaller rank; outermost first), and never a lock of a
//! class it already holds. Every spin lock is held with interrupts masked
//! (`lock_irqsave`, or `lock` inside a section that masked them), so an
//! interrupt handler never finds a lock of its own CPU held (LKD ch. 10,
//! "Spin Locks and Bottom Halves": `spin_lock_irqsave` for data an
//! interrupt handler also touches). A sleeping lock (rank 1) is taken with
//! no spin lock held (lockdep's `might_sleep` check) and may be held
//! across a sleep; its waiters take [`KLOCK`] to sleep and its releasers
//! to wake them, so it is never released with KLOCK held either.
//!
//! | rank | class | what it guards | taken inside |
//! | ---: | --- | --- | --- |
//! | 1 | [`MMAP_LOCK`] | an address space's VMAs: `Mm::mmap_lock`, a [`RwSemaphore`] (`arch/aarch64/mm.rs`); read by faults, written by mmap, munmap, mprotect, brk, fork's copy, stack growth, exit_mmap | nothing (sleeping lock) |
//! | 2 | [`KLOCK`] | the kernel lock: scheduler, task table and the table of address spaces (not their contents), timers, futexes, tty, the VFS with its pipes (`kernel.rs`, `fs/`) | nothing; held across `cpu_switch_to` and released by the next task on the same CPU |
//! | 3 | [`BLOCK`] | the disks found at boot and their devices (`arch/aarch64/virtio.rs`): a request is sent and polled to completion with it held | nothing |
//! | 4 | [`KERNEL_MAP`] | the kernel's TTBR1 tables (`mmu::map_probe_page`) | nothing (self-tests) |
//! | 5 | [`ASIDS`] | the ASID bitmap (`pgtable.rs`) | KLOCK (the last reference to an address space dropped at a context switch) |
//! | 6 | [`GIC`] | the GIC driver: enables, IPIs (`arch/aarch64/irq.rs`) | KLOCK |
//! | 7 | [`PAGE_TABLE_LOCK`] | an address space's page table: `Mm::page_table_lock` (`arch/aarch64/mm.rs`): every PTE change and lookup | MMAP_LOCK (faults, mmap...), KLOCK (the OOM killer's RSS, the futex word) |
//! | 8 | [`SLAB_CPU`] | one CPU's kmalloc array caches (`mm/slab/heap.rs`): every kmalloc-class allocation and free | any of the above (anything may allocate); never two at once (a drain takes one CPU's after another) |
//! | 9 | [`HEAP`] | the kernel heap: early heap, the slabs of kmalloc's caches, large allocations (`mm/slab/heap.rs`): an array cache's refill (`cache_alloc_refill`) or flush (`cache_flusharray`) | SLAB_CPU, or what SLAB_CPU may be taken inside |
//! | 10 | [`PCP`] | one CPU's per-CPU page lists of one zone, `zone->per_cpu_pageset` with Linux 6.1's `pcp->lock` (`mm/zone.rs`, `mm/pcp.rs`): order-0 allocation and free | HEAP (slab growth), PAGE_TABLE_LOCK (faults), KLOCK; never two at once (a drain takes one CPU's after another) |
//! | 11 | [`ZONE_LOCK`] | one zone's buddy lists, `zone->lock` (`mm/zone.rs`, `mm/buddy.rs`): orders above 0, and a pcp list's refill (`rmqueue_bulk`) or drain (`free_pcppages_bulk`) | PCP, or what PCP may be taken inside; never two zones at once |
//! | 12 | [`PERCPU`] | one CPU's slot of a `PerCpu` variable (`mm/percpu.rs`) | anything |
//! | 13 | [`CONSOLE`] | the console device (`console.rs`) | anything: the innermost lock (the crash path bypasses it) |
//!
//! The page allocator has no lock of its own around it: `mem_map`'s page
//! descriptors are atomics changed by whoever owns the page (the zone lock
//! for a free block, a CPU's pcp lock for a page on its list, the caller
//! for an allocated page), the reference count by atomic read-modify-write,
//! and a zone's free count (`NR_FREE_PAGES`) is an atomic the watermark
//! check reads without a lock (`mm/page.rs`, `mm/zone.rs`).
//!
//! [`LOCKDEP_TEST_A`] and [`LOCKDEP_TEST_B`] have no rank: the self-test
//! `test=lockdep-inversion` takes them in both orders to prove the
//! checker reports an inversion from the recorded order alone.
//!
//! What stays outside: `spin::Once` (`DTB`, `INIT`, the overcommit
//! sysctls) is a one-time initialisation, not a lock held across code; the hypervisor has its own
//! locks (`hypervisor/src/sync.rs`, a different crate).

pub mod lockdep;
#[allow(unsafe_code)] // the locks' `Sync` promise, their guards' cell access, the wait list
pub mod rwsem;
#[allow(unsafe_code)] // the lock's `Sync` promise and its guard's cell access
pub mod spinlock;

pub use lockdep::LockClass;
pub use rwsem::{Mutex, RwSemaphore, Sleep};
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
    /// An address space's `mmap_lock` (sleeping).
    MMAP_LOCK = 1;
    /// The kernel lock.
    KLOCK = 2;
    /// The disks (`block`).
    BLOCK = 3;
    /// The kernel's TTBR1 tables.
    KERNEL_MAP = 4;
    /// The ASID bitmap.
    ASIDS = 5;
    /// The GIC driver.
    GIC = 6;
    /// An address space's page-table lock.
    PAGE_TABLE_LOCK = 7;
    /// One CPU's kmalloc array caches.
    SLAB_CPU = 8;
    /// The kernel heap.
    HEAP = 9;
    /// One CPU's per-CPU page lists of one zone (`pcp->lock`).
    PCP = 10;
    /// A zone's buddy lists (`zone->lock`).
    ZONE_LOCK = 11;
    /// A per-CPU variable's slot.
    PERCPU = 12;
    /// The console.
    CONSOLE = 13;
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
