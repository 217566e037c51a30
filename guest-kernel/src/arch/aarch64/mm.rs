//! Address spaces as the CPUs share them: [`Mm`] is the `mm_struct` with
//! its own locks, outside the kernel lock (LKD ch. 15, "The Memory
//! Descriptor"; Linux's `mm_types.h` and `mmap_lock.h`):
//!
//! - `mmap_lock`, a reader-writer semaphore (`sync::rwsem`) around the
//!   VMAs ([`MmStruct`]): page faults take it for reading, `mmap`,
//!   `munmap`, `mprotect`, `brk`, `fork`'s copy, a stack that grows and
//!   the final `exit_mmap` for writing;
//! - `page_table_lock`, a spin lock around the page table: every PTE
//!   change and lookup (a fault's, `munmap`'s, the futex word's);
//! - `mm_users` (the tasks using it: threads share one; the last one out
//!   unmaps everything, `mmput` → `exit_mmap`) and the reference count of
//!   the [`Arc`] (Linux's `mm_count`: whoever still points at it, the
//!   kernel's table of address spaces and each CPU's current one; the
//!   last drop frees the page-table pages and the ASID, `__mmdrop`).
//!
//! A CPU's current address space is reached without the kernel lock
//! ([`current_mm`]: `current->mm`), so a page fault, `mmap`, `munmap` or
//! `brk` takes only the locks of its own address space, plus the page
//! allocator's (the overcommit counter is an atomic: [`GlobalAcct`]).
//! Order: `mmap_lock` → `page_table_lock` → `PCP` → `ZONE_LOCK`
//! (`crate::sync`'s table).

use alloc::sync::Arc;
use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicUsize, Ordering};

use super::MAX_CPUS;
use super::cpu::{local_irq_restore, local_irq_save, smp_processor_id};
use super::memory;
use super::pgtable::UserPageTable;
use crate::kernel::fault::LockedPages;
use crate::kernel::sched::SchedSleep;
use crate::mm::Errno;
use crate::mm::mm_struct::MmStruct;
use crate::mm::oom::{Overcommit, OvercommitPolicy, VmAcct};
use crate::sync::{self, RwSemaphore, SpinLock};

/// An address space: `mm_struct` with `mmap_lock`, `page_table_lock` and
/// `mm_users`.
pub struct Mm {
    /// The handle the task table knows it by (`task.mm`; futex keys).
    pub id: u32,
    /// `mmap_lock` around the VMAs.
    pub mmap_lock: RwSemaphore<MmStruct, SchedSleep>,
    /// `page_table_lock` around the page table.
    pub page_table_lock: SpinLock<UserPageTable>,
    ttbr0: u64,
    mm_users: AtomicU32,
}

impl Mm {
    /// A new address space with one user.
    pub fn new(id: u32, mm: MmStruct, pt: UserPageTable) -> Arc<Mm> {
        Arc::new(Mm {
            id,
            ttbr0: pt.ttbr0(),
            mmap_lock: RwSemaphore::new(&sync::MMAP_LOCK, mm),
            page_table_lock: SpinLock::new(&sync::PAGE_TABLE_LOCK, pt),
            mm_users: AtomicU32::new(1),
        })
    }

    /// TTBR0_EL1 for this address space (fixed at creation).
    pub fn ttbr0(&self) -> u64 {
        self.ttbr0
    }

    /// `mmget`: one more task uses it (CLONE_VM).
    pub fn mmget(&self) {
        self.mm_users.fetch_add(1, Ordering::Relaxed);
    }

    /// `mm_users`.
    pub fn users(&self) -> u32 {
        self.mm_users.load(Ordering::Relaxed)
    }

    /// Drops a user; true if it was the last.
    pub(crate) fn put_user(&self) -> bool {
        self.mm_users.fetch_sub(1, Ordering::AcqRel) == 1
    }

    /// `exit_mmap` once the last user has gone (no spin lock held: it
    /// takes `mmap_lock`): unmap everything and uncharge it. The page-table
    /// pages stay until the last reference drops (a CPU may still have
    /// them in TTBR0 until it switches away).
    pub fn exit_mmap(&self) {
        let mut mm = self.mmap_lock.write();
        let mut pt = self.page_table_lock.lock_irqsave();
        mm.exit_mmap(&mut *pt, &mut LockedPages, &mut GlobalAcct);
    }
}

impl Drop for Mm {
    /// `__mmdrop`: nobody points at it any more; free the page-table pages
    /// and the ASID.
    fn drop(&mut self) {
        self.page_table_lock.get_mut().free_tables();
    }
}

/// Each CPU's current address space (`current->mm`, or none for a kernel
/// thread), holding a reference: set by the context switch with interrupts
/// masked, read by the CPU itself.
static CURRENT_MM: [AtomicPtr<Mm>; MAX_CPUS] = [const { AtomicPtr::new(ptr::null_mut()) }; MAX_CPUS];

/// Makes `mm` this CPU's current address space (interrupts masked: the
/// context switch, exec). The previous one's reference is returned, for
/// the caller to drop.
pub fn set_current_mm(mm: Option<Arc<Mm>>) -> Option<Arc<Mm>> {
    let cpu = smp_processor_id();
    let new = mm.map_or(ptr::null_mut(), |m| Arc::into_raw(m) as *mut Mm);
    let old = CURRENT_MM[cpu].swap(new, Ordering::Relaxed);
    // SAFETY: a non-null slot holds a pointer from `Arc::into_raw` whose
    // reference the slot owned; it is given back once.
    (!old.is_null()).then(|| unsafe { Arc::from_raw(old) })
}

/// `current->mm`: the address space of the task this CPU runs, with a
/// reference of our own, without the kernel lock. Only the task itself
/// changes it (exec), so it is stable while it runs; interrupts are
/// masked for the read so that no preemption moves us between reading
/// the slot and taking the reference.
pub fn current_mm() -> Option<Arc<Mm>> {
    let daif = local_irq_save();
    let p = CURRENT_MM[smp_processor_id()].load(Ordering::Relaxed);
    let m = (!p.is_null()).then(|| {
        // SAFETY: the slot owns a reference (from `Arc::into_raw`), which
        // only this CPU's context switch gives up, and not while
        // interrupts are masked here; we add one of our own.
        unsafe {
            Arc::increment_strong_count(p);
            Arc::from_raw(p)
        }
    });
    local_irq_restore(daif);
    m
}

/// The overcommit sysctls (`vm.overcommit_memory` and the rest), set
/// once at boot (`init_acct`).
static ACCT: spin::Once<Overcommit> = spin::Once::new();

/// `vm_committed_as`: the pages committed, an atomic (no lock: charges of
/// different address spaces never wait for each other).
static COMMITTED: AtomicUsize = AtomicUsize::new(0);

/// Sets the overcommit sysctls (once, at boot).
pub fn init_acct(acct: Overcommit) {
    ACCT.call_once(|| acct);
}

/// The kernel's [`VmAcct`]: a charge adds to [`COMMITTED`] and asks the
/// policy with the current free-memory figure (for the heuristic policy),
/// taking it back if refused (`__vm_enough_memory`).
pub struct GlobalAcct;

impl VmAcct for GlobalAcct {
    fn vm_enough_memory(&mut self, pages: usize, cap_sys_admin: bool, mm_total_vm: usize) -> Result<(), Errno> {
        let mut policy = ACCT.get().expect("overcommit sysctls set at boot").clone();
        if policy.policy == OvercommitPolicy::Guess {
            let (free, total) = memory::with_pages(|pa| (pa.global_free_pages(), pa.totalram_pages()));
            policy.meminfo.free = free;
            policy.meminfo.totalram = total;
        }
        let committed = COMMITTED.fetch_add(pages, Ordering::Relaxed) + pages;
        if policy.allows(committed, pages, cap_sys_admin, mm_total_vm) {
            Ok(())
        } else {
            COMMITTED.fetch_sub(pages, Ordering::Relaxed);
            Err(Errno::ENOMEM)
        }
    }
    fn vm_unacct_memory(&mut self, pages: usize) {
        let _ = COMMITTED.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| Some(c.saturating_sub(pages)));
    }
}
