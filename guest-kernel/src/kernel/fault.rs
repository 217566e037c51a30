//! User page faults (LKD ch. 15; Linux arch/arm64/mm/fault.c
//! `do_page_fault` and mm/memory.c): the pure fault core
//! (`crate::mm::fault`) driven on the current address space under its own
//! locks, with pages from the page allocator.

use crate::arch::aarch64::cpu::smp_processor_id;
use crate::arch::aarch64::memory;
use crate::arch::aarch64::mm::{GlobalAcct, current_mm};
use crate::kernel::oom::out_of_memory;
use crate::kernel::{lock, ready};
use crate::mm::fault::{Access, FaultError, handle_mm_fault};
use crate::mm::mm_struct::PageOps;
use crate::mm::page::Pfn;

/// Page-frame operations on the shared page allocator: a user page comes
/// from this CPU's pcp list (its lock only), reference counts are atomics.
pub struct LockedPages;

impl PageOps for LockedPages {
    fn alloc_user_page(&mut self) -> Option<Pfn> {
        memory::with_pages(|pa| {
            pa.alloc_page(
                crate::mm::gfp::Gfp::GFP_HIGHUSER_MOVABLE | crate::mm::gfp::Gfp::__GFP_ZERO,
                smp_processor_id(),
            )
        })
    }
    fn alloc_user_page_for_copy(&mut self) -> Option<Pfn> {
        memory::with_pages(|pa| pa.alloc_page(crate::mm::gfp::Gfp::GFP_HIGHUSER_MOVABLE, smp_processor_id()))
    }
    fn copy_page(&mut self, dst: Pfn, src: Pfn) {
        use crate::mm::zone::PhysMem;
        memory::LinearMem.copy_page(dst, src);
    }
    fn get_page(&mut self, pfn: Pfn) {
        memory::with_pages(|pa| pa.get_page(pfn));
    }
    fn put_page(&mut self, pfn: Pfn) {
        memory::with_pages(|pa| pa.put_page(pfn, smp_processor_id()));
    }
    fn page_count(&self, pfn: Pfn) -> u32 {
        memory::with_pages(|pa| pa.page_count(pfn))
    }
}

/// `do_page_fault` for a user address in the current address space.
/// Returns whether the access may be retried; on OOM the OOM killer runs
/// (and the faulting task may be its victim).
///
/// Locking: the address space's own locks only (`arch/aarch64/mm.rs`):
/// `mmap_lock` for reading and the page-table lock, or `mmap_lock` for
/// writing when a stack must grow (`expand_stack` changes the VMA tree).
/// The kernel lock is taken only to sleep on a contended `mmap_lock` (the
/// scheduler is behind it) and for the OOM killer, which reads the task
/// table and signals the victim; the fault's own locks are released
/// first, as Linux's `VM_FAULT_OOM` → `pagefault_out_of_memory` does.
pub fn user_fault(addr: usize, write: bool, exec: bool) -> bool {
    use crate::mm::fault::{handle_mm_fault_read_locked, needs_stack_growth};
    let access = if exec {
        Access::Exec
    } else if write {
        Access::Write
    } else {
        Access::Read
    };
    if !ready() {
        return false;
    }
    let Some(mm) = current_mm() else { return false };
    let r = {
        let vmas = mm.mmap_lock.read();
        if needs_stack_growth(&vmas, addr) {
            drop(vmas);
            let mut vmas = mm.mmap_lock.write();
            let mut pt = mm.page_table_lock.lock_irqsave();
            handle_mm_fault(&mut vmas, &mut *pt, &mut LockedPages, &mut GlobalAcct, addr, access)
        } else {
            let mut pt = mm.page_table_lock.lock_irqsave();
            handle_mm_fault_read_locked(&vmas, &mut *pt, &mut LockedPages, addr, access)
        }
    };
    drop(mm);
    match r {
        Ok(_) => true,
        Err(FaultError::Segv(_)) => false,
        Err(FaultError::Oom) => {
            out_of_memory(&mut lock());
            // Retry: memory comes back once the victim exits; if we are
            // the victim, the pending SIGKILL ends us on the way out.
            true
        }
    }
}
