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
