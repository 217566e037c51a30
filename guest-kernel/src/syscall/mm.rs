//! Memory calls (LKD ch. 15; Linux mm/mmap.c, mprotect.c): `mmap`
//! (and the table's `munmap`, `mprotect`, `brk`) on the current address
//! space under its own locks.

use super::table::R;
use crate::arch::aarch64::mm::{GlobalAcct, current_mm};
use crate::arch::aarch64::pgtable::UserPageTable;
use crate::kernel::fault::LockedPages;
use crate::mm::Errno;
use crate::mm::mm_struct::MmStruct;

/// Runs `f` on the current address space with its `mmap_lock` held for
/// writing and its page-table lock (`mmap`, `munmap`, `mprotect`, `brk`),
/// without the kernel lock: calls on different address spaces do not
/// contend (`arch/aarch64/mm.rs`).
pub(super) fn with_mm(f: impl FnOnce(&mut MmStruct, &mut UserPageTable) -> R) -> R {
    let m = current_mm().ok_or(Errno::EFAULT)?;
    let mut vmas = m.mmap_lock.write();
    let mut pt = m.page_table_lock.lock_irqsave();
    f(&mut vmas, &mut pt)
}

pub(super) fn sys_mmap(addr: usize, len: usize, prot: u32, flags: u32, fd: i64) -> R {
    use crate::mm::mm_struct::map::MAP_ANONYMOUS;
    if flags & MAP_ANONYMOUS == 0 {
        // No files yet: only anonymous memory can be mapped.
        return Err(if fd < 0 { Errno::EBADF } else { Errno::ENODEV });
    }
    with_mm(|mm, pt| mm.mmap(pt, &mut LockedPages, &mut GlobalAcct, addr, len, prot, flags, None).map(|a| a as isize))
}

/// `msync(addr, len, flags)`: the memory here is anonymous (files are not
/// mapped yet), so there is nothing to write back; the arguments are
/// checked as Linux does: flags one of MS_ASYNC and MS_SYNC, with
/// MS_INVALIDATE, else EINVAL; `addr` page-aligned, else EINVAL; every
/// page of the range mapped, else ENOMEM.
pub(super) fn sys_msync(addr: usize, len: usize, flags: u32) -> R {
    const MS_ASYNC: u32 = 1;
    const MS_INVALIDATE: u32 = 2;
    const MS_SYNC: u32 = 4;
    use crate::mm::page::PAGE_SIZE;
    if flags & !(MS_ASYNC | MS_INVALIDATE | MS_SYNC) != 0
        || flags & (MS_ASYNC | MS_SYNC) == (MS_ASYNC | MS_SYNC)
        || !addr.is_multiple_of(PAGE_SIZE)
    {
        return Err(Errno::EINVAL);
    }
    let end = addr.checked_add(len.next_multiple_of(PAGE_SIZE)).ok_or(Errno::ENOMEM)?;
    with_mm(|mm, _| {
        let mut at = addr;
        while at < end {
            let v = mm.find_vma(at).filter(|v| v.start <= at).ok_or(Errno::ENOMEM)?;
            at = v.end;
        }
        Ok(0)
    })
}
