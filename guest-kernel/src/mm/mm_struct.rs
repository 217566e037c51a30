//! The process address space (`mm_struct`): layout with randomization, mmap,
//! munmap, mprotect, brk, stack growth and fork's copy (`dup_mmap`).
//!
//! LKD ch. 15, "The Memory Descriptor", "mmap() and do_mmap()", "munmap()
//! and do_munmap()"; 《Linux内核深度解析》§3.2.2 (user address-space layout
//! and randomization) and §3.4 (memory mappings).
//!
//! Page tables and page reference counts are reached through the
//! [`PageTable`] and [`PageOps`] traits: the arch glue implements the first
//! with `aarch64-paging` (four levels for EL0), the second is
//! [`UserPages`] over the zoned allocator.

use alloc::vec::Vec;

use super::Errno;
use super::gfp::Gfp;
use super::oom::VmAcct;
use super::page::{PAGE_SHIFT, PAGE_SIZE, Pfn, align_down, align_up};
use super::vma::{FileId, VM_DATA_DEFAULT_FLAGS, Vma, VmaTree, vm_flags::*};
use super::zone::{PageAllocator, PhysMem};

/// `PROT_*` (mmap/mprotect).
pub mod prot {
    /// No access.
    pub const PROT_NONE: u32 = 0x0;
    /// Readable.
    pub const PROT_READ: u32 = 0x1;
    /// Writable.
    pub const PROT_WRITE: u32 = 0x2;
    /// Executable.
    pub const PROT_EXEC: u32 = 0x4;
}

/// `MAP_*` (mmap).
pub mod map {
    /// Share changes.
    pub const MAP_SHARED: u32 = 0x01;
    /// Changes are private (copy-on-write).
    pub const MAP_PRIVATE: u32 = 0x02;
    /// MAP_SHARED, rejecting unknown flags.
    pub const MAP_SHARED_VALIDATE: u32 = 0x03;
    /// Mask of the mapping type.
    pub const MAP_TYPE: u32 = 0x0f;
    /// Place exactly at `addr`, replacing what is there.
    pub const MAP_FIXED: u32 = 0x10;
    /// No file.
    pub const MAP_ANONYMOUS: u32 = 0x20;
    /// Stack-like: grows down.
    pub const MAP_GROWSDOWN: u32 = 0x0100;
    /// Do not account (overcommit).
    pub const MAP_NORESERVE: u32 = 0x4000;
    /// Like MAP_FIXED but fail with EEXIST instead of replacing.
    pub const MAP_FIXED_NOREPLACE: u32 = 0x10_0000;
}

use map::*;
use prot::*;

/// arm64 with 48-bit VAs: `TASK_SIZE`.
pub const TASK_SIZE: usize = 1 << 48;
/// `mmap_min_addr` default.
pub const MMAP_MIN_ADDR: usize = 0x1_0000;
/// `stack_guard_gap`: 256 pages below a growsdown VMA stay unmapped.
pub const STACK_GUARD_GAP: usize = 256 << PAGE_SHIFT;
/// arm64 `STACK_RND_MASK` (in pages; 30 bits of address).
pub const STACK_RND_MASK: usize = 0x3ffff;
/// `mmap_rnd_bits` default on arm64.
pub const MMAP_RND_BITS: u32 = 18;
/// Default `RLIMIT_STACK`.
pub const DEFAULT_STACK_RLIMIT: usize = 8 << 20;
const MIN_GAP: usize = 128 << 20;
const MAX_GAP: usize = TASK_SIZE / 6 * 5;
/// Range of brk randomization (`arch_randomize_brk`, 64-bit).
pub const BRK_RND_RANGE: usize = 1 << 30;

/// A user page-table entry as the core sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pte {
    /// The frame.
    pub pfn: Pfn,
    /// Writable by EL0.
    pub writable: bool,
}

/// EL0 permissions of a PTE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PteProt {
    /// Readable.
    pub read: bool,
    /// Writable.
    pub write: bool,
    /// Executable.
    pub exec: bool,
}

impl PteProt {
    /// `vm_get_page_prot()`; `write` is further limited by the caller (COW).
    pub fn from_vm_flags(flags: u64, write: bool) -> PteProt {
        PteProt {
            read: flags & (VM_READ | VM_WRITE | VM_EXEC) != 0,
            write: write && flags & VM_WRITE != 0,
            exec: flags & VM_EXEC != 0,
        }
    }
}

/// The EL0 page table of one address space.
pub trait PageTable {
    /// The entry mapping `va` (page aligned), if any.
    fn lookup(&self, va: usize) -> Option<Pte>;
    /// Install an entry (allocating table pages; `ENOMEM` if that fails).
    fn map(&mut self, va: usize, pfn: Pfn, prot: PteProt) -> Result<(), Errno>;
    /// Remove an entry, flush the TLB, return the frame.
    fn unmap(&mut self, va: usize) -> Option<Pfn>;
    /// Change an entry's permissions and flush the TLB.
    fn protect(&mut self, va: usize, prot: PteProt);
    /// Point the entry at `va`, which must be mapped, at another frame
    /// (`ptep_clear_flush` + `set_pte_at` of `wp_page_copy`:
    /// break-before-make, ARM ARM D8.14.1); returns the old frame.
    fn replace(&mut self, va: usize, pfn: Pfn, prot: PteProt) -> Result<Option<Pfn>, Errno> {
        let old = self.unmap(va);
        self.map(va, pfn, prot).map(|()| old)
    }
    /// The first `max` mapped pages of `[start, end)`, in address order.
    /// Empty parts of the range cost (next to) nothing: a walk skips
    /// absent tables, it does not step through the addresses.
    fn mapped(&self, start: usize, end: usize, max: usize) -> Vec<(usize, Pte)>;
}

/// Page-frame operations the address space needs.
pub trait PageOps {
    /// A zeroed movable page for user memory, or `None` (out of memory).
    fn alloc_user_page(&mut self) -> Option<Pfn>;
    /// A movable page for user memory that the caller overwrites whole
    /// before anyone sees it (the COW copy), so it is not zeroed first.
    fn alloc_user_page_for_copy(&mut self) -> Option<Pfn> {
        self.alloc_user_page()
    }
    /// Copy a frame (COW break).
    fn copy_page(&mut self, dst: Pfn, src: Pfn);
    /// `get_page()`.
    fn get_page(&mut self, pfn: Pfn);
    /// `put_page()`: frees at zero.
    fn put_page(&mut self, pfn: Pfn);
    /// `page_count()`.
    fn page_count(&self, pfn: Pfn) -> u32;
}

/// [`PageOps`] over the zoned page allocator, for one CPU.
pub struct UserPages<'p, 'a, M: PhysMem> {
    /// The allocator.
    pub pa: &'p mut PageAllocator<'a, M>,
    /// `smp_processor_id()` of the caller.
    pub cpu: usize,
}

impl<M: PhysMem> PageOps for UserPages<'_, '_, M> {
    fn alloc_user_page(&mut self) -> Option<Pfn> {
        self.pa.alloc_page(Gfp::GFP_HIGHUSER_MOVABLE | Gfp::__GFP_ZERO, self.cpu)
    }
    fn alloc_user_page_for_copy(&mut self) -> Option<Pfn> {
        self.pa.alloc_page(Gfp::GFP_HIGHUSER_MOVABLE, self.cpu)
    }
    fn copy_page(&mut self, dst: Pfn, src: Pfn) {
        self.pa.mem.copy_page(dst, src);
    }
    fn get_page(&mut self, pfn: Pfn) {
        self.pa.get_page(pfn);
    }
    fn put_page(&mut self, pfn: Pfn) {
        self.pa.put_page(pfn, self.cpu);
    }
    fn page_count(&self, pfn: Pfn) -> u32 {
        self.pa.page_count(pfn)
    }
}

/// How a new address space is laid out.
#[derive(Clone, Copy, Debug)]
pub struct MmConfig {
    /// Address-space randomization (`randomize_va_space`; on by default,
    /// off with the `norandmaps` boot flag).
    pub randomize: bool,
    /// Seed for this address space's randomization.
    pub seed: u64,
    /// `RLIMIT_STACK`.
    pub stack_rlimit: usize,
    /// CAP_SYS_ADMIN (may use the admin overcommit reserve).
    pub cap_sys_admin: bool,
}

impl Default for MmConfig {
    fn default() -> Self {
        MmConfig {
            randomize: true,
            seed: 0x9e37_79b9_7f4a_7c15,
            stack_rlimit: DEFAULT_STACK_RLIMIT,
            cap_sys_admin: false,
        }
    }
}

/// Mapped pages fetched per [`PageTable::mapped`] call (16: the list fits
/// a small slab object), so that tearing down or copying a huge mapping
/// never needs a huge list (the kernel may be out of memory right then:
/// think of the OOM victim's exit).
pub const WALK_BATCH: usize = 16;

/// Calls `f` for every mapped page of `[start, end)`, in address order,
/// [`WALK_BATCH`] pages at a time; `f` may change the table at and below
/// the page it is given.
///
/// Each batch starts after the last page of the one before, not at a
/// fixed stride: stepping through a sparse terabyte-sized mapping 64 KiB
/// at a time (as this once did) took minutes with the kernel lock held.
pub fn for_each_mapped<T: PageTable>(pt: &mut T, start: usize, end: usize, mut f: impl FnMut(&mut T, usize, Pte)) {
    let mut s = start;
    while s < end {
        let batch = pt.mapped(s, end, WALK_BATCH);
        let (Some(&(last, _)), full) = (batch.last(), batch.len() == WALK_BATCH) else { break };
        for (va, pte) in batch {
            f(pt, va, pte);
        }
        // A short batch was the rest of the range.
        match last.checked_add(PAGE_SIZE) {
            Some(next) if full => s = next,
            _ => break,
        }
    }
}

/// `struct mm_struct` (the parts that are not page tables).
#[derive(Clone, Debug)]
pub struct MmStruct {
    /// The VMAs.
    pub vmas: VmaTree,
    /// Top of the mmap area; mappings are placed top-down below it.
    pub mmap_base: usize,
    /// Top of the stack.
    pub stack_top: usize,
    /// Start of the heap.
    pub start_brk: usize,
    /// Current program break.
    pub brk: usize,
    /// `total_vm`, in pages.
    pub total_vm: usize,
    /// `RLIMIT_STACK`.
    pub stack_rlimit: usize,
    /// Randomization enabled.
    pub randomize: bool,
    /// CAP_SYS_ADMIN.
    pub cap_sys_admin: bool,
    rng: u64,
}

impl MmStruct {
    /// `mm_alloc()` + `arch_pick_mmap_layout()` + `randomize_stack_top()`.
    pub fn new(cfg: MmConfig) -> Self {
        let mut mm = MmStruct {
            vmas: VmaTree::new(),
            mmap_base: 0,
            stack_top: TASK_SIZE,
            start_brk: 0,
            brk: 0,
            total_vm: 0,
            stack_rlimit: cfg.stack_rlimit,
            randomize: cfg.randomize,
            cap_sys_admin: cfg.cap_sys_admin,
            rng: cfg.seed | 1,
        };
        if mm.randomize {
            let r = (mm.next_random() as usize & STACK_RND_MASK) << PAGE_SHIFT;
            mm.stack_top = TASK_SIZE - r;
        }
        // mmap_base(): leave room for the stack limit, the guard gap and the
        // stack randomization, then subtract the mmap randomization.
        let pad = STACK_GUARD_GAP + if mm.randomize { STACK_RND_MASK << PAGE_SHIFT } else { 0 };
        let gap = (mm.stack_rlimit + pad).clamp(MIN_GAP, MAX_GAP);
        let rnd = if mm.randomize { (mm.next_random() as usize & ((1 << MMAP_RND_BITS) - 1)) << PAGE_SHIFT } else { 0 };
        mm.mmap_base = align_down(TASK_SIZE - gap - rnd, PAGE_SIZE);
        mm
    }

    fn next_random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// `setup_arg_pages()` core: the initial stack VMA of `size` bytes below
    /// `stack_top`, growing down.
    pub fn setup_stack(&mut self, size: usize, acct: &mut impl VmAcct) -> Result<usize, Errno> {
        let size = align_up(size.max(PAGE_SIZE), PAGE_SIZE);
        let start = self.stack_top - size;
        acct.vm_enough_memory(size >> PAGE_SHIFT, self.cap_sys_admin, self.total_vm)?;
        let flags = VM_READ | VM_WRITE | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC | VM_GROWSDOWN | VM_ACCOUNT;
        self.vmas.insert_merge(Vma { start, end: self.stack_top, flags, pgoff: start >> PAGE_SHIFT, file: None });
        self.total_vm += size >> PAGE_SHIFT;
        Ok(start)
    }

    /// Set the heap start after the ELF's bss (`arch_randomize_brk` when
    /// randomization is on).
    pub fn setup_brk(&mut self, end_of_bss: usize) {
        let mut b = align_up(end_of_bss, PAGE_SIZE);
        if self.randomize {
            b += (self.next_random() as usize % (BRK_RND_RANGE >> PAGE_SHIFT)) << PAGE_SHIFT;
        }
        self.start_brk = b;
        self.brk = b;
    }

    /// `find_vma()`.
    pub fn find_vma(&self, addr: usize) -> Option<&Vma> {
        self.vmas.find_vma(addr)
    }

    /// Whether `[start, end)` is free including the guard gap below a
    /// growsdown VMA right above it.
    fn range_free(&self, start: usize, end: usize) -> bool {
        match self.vmas.find_vma(start) {
            None => true,
            Some(v) => {
                let limit = if v.flags & VM_GROWSDOWN != 0 { v.start.saturating_sub(STACK_GUARD_GAP) } else { v.start };
                end <= limit
            }
        }
    }

    /// `get_unmapped_area()` (`arch_get_unmapped_area_topdown`): the hint if
    /// it is free, else the highest gap below `mmap_base` that fits.
    pub fn get_unmapped_area(&self, hint: usize, len: usize) -> Result<usize, Errno> {
        if len > TASK_SIZE - MMAP_MIN_ADDR {
            return Err(Errno::ENOMEM);
        }
        if hint != 0 {
            // The hint is the program's: rounding it up, or adding the
            // length, may overflow (and wrap past TASK_SIZE in a release
            // build); such a hint is simply not usable.
            let addr = hint.checked_next_multiple_of(PAGE_SIZE).unwrap_or(usize::MAX);
            if addr >= MMAP_MIN_ADDR && addr <= TASK_SIZE - len && self.range_free(addr, addr + len) {
                return Ok(addr);
            }
        }
        // Walk the VMAs downwards from mmap_base looking at each gap.
        let mut gap_end = self.mmap_base;
        for v in self.vmas.iter().collect::<Vec<_>>().into_iter().rev() {
            let floor = if v.flags & VM_GROWSDOWN != 0 { v.start.saturating_sub(STACK_GUARD_GAP) } else { v.start };
            if v.end <= gap_end && gap_end - v.end >= len {
                return Ok(gap_end - len);
            }
            gap_end = gap_end.min(floor);
        }
        if gap_end >= MMAP_MIN_ADDR + len {
            return Ok(gap_end - len);
        }
        Err(Errno::ENOMEM)
    }

    /// `do_mmap()`: returns the address of the new mapping.
    #[allow(clippy::too_many_arguments)]
    pub fn mmap<T: PageTable, P: PageOps>(
        &mut self,
        pt: &mut T,
        pages: &mut P,
        acct: &mut impl VmAcct,
        addr: usize,
        len: usize,
        prot: u32,
        flags: u32,
        file: Option<(FileId, usize)>,
    ) -> Result<usize, Errno> {
        if len == 0 {
            return Err(Errno::EINVAL);
        }
        let len = len.checked_add(PAGE_SIZE - 1).ok_or(Errno::ENOMEM)? & !(PAGE_SIZE - 1);
        if prot & !(PROT_READ | PROT_WRITE | PROT_EXEC) != 0 {
            return Err(Errno::EINVAL);
        }
        let shared = match flags & MAP_TYPE {
            MAP_SHARED | MAP_SHARED_VALIDATE => true,
            MAP_PRIVATE => false,
            _ => return Err(Errno::EINVAL),
        };
        let file = if flags & MAP_ANONYMOUS != 0 {
            None
        } else {
            let (f, off) = file.ok_or(Errno::EBADF)?;
            if !off.is_multiple_of(PAGE_SIZE) {
                return Err(Errno::EINVAL);
            }
            Some((f, off >> PAGE_SHIFT))
        };
        let fixed = flags & (MAP_FIXED | MAP_FIXED_NOREPLACE) != 0;
        let addr = if fixed {
            if !addr.is_multiple_of(PAGE_SIZE) {
                return Err(Errno::EINVAL);
            }
            if addr.checked_add(len).is_none_or(|e| e > TASK_SIZE) {
                return Err(Errno::ENOMEM);
            }
            if addr < MMAP_MIN_ADDR {
                return Err(Errno::EPERM);
            }
            if self.vmas.find_vma_intersection(addr, addr + len).is_some() {
                if flags & MAP_FIXED_NOREPLACE != 0 {
                    return Err(Errno::EEXIST);
                }
                self.do_munmap(pt, pages, acct, addr, len)?;
            }
            addr
        } else {
            self.get_unmapped_area(addr, len)?
        };
        let mut vm = VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC;
        vm |= (prot as u64) & (VM_READ | VM_WRITE | VM_EXEC);
        if shared {
            vm |= VM_SHARED | VM_MAYSHARE;
        }
        if flags & MAP_GROWSDOWN != 0 {
            vm |= VM_GROWSDOWN;
        }
        let npages = len >> PAGE_SHIFT;
        // accountable_mapping(): private writable memory needs commit.
        if !shared && vm & VM_WRITE != 0 && flags & MAP_NORESERVE == 0 {
            acct.vm_enough_memory(npages, self.cap_sys_admin, self.total_vm)?;
            vm |= VM_ACCOUNT;
        } else if flags & MAP_NORESERVE != 0 {
            vm |= VM_NORESERVE;
        }
        let (file, pgoff) = match file {
            Some((f, pgoff)) => (Some(f), pgoff),
            None => (None, addr >> PAGE_SHIFT),
        };
        self.vmas.insert_merge(Vma { start: addr, end: addr + len, flags: vm, pgoff, file });
        self.total_vm += npages;
        Ok(addr)
    }

    /// `munmap()` syscall checks, then [`Self::do_munmap`].
    pub fn munmap<T: PageTable, P: PageOps>(
        &mut self,
        pt: &mut T,
        pages: &mut P,
        acct: &mut impl VmAcct,
        start: usize,
        len: usize,
    ) -> Result<(), Errno> {
        if !start.is_multiple_of(PAGE_SIZE) || len == 0 || start.checked_add(len).is_none_or(|e| e > TASK_SIZE) {
            return Err(Errno::EINVAL);
        }
        self.do_munmap(pt, pages, acct, start, align_up(len, PAGE_SIZE))
    }

    /// `do_munmap()`: split at the edges, drop the VMAs, zap their pages.
    pub fn do_munmap<T: PageTable, P: PageOps>(
        &mut self,
        pt: &mut T,
        pages: &mut P,
        acct: &mut impl VmAcct,
        start: usize,
        len: usize,
    ) -> Result<(), Errno> {
        let end = start + len;
        for v in self.vmas.detach_range(start, end) {
            for_each_mapped(pt, v.start, v.end, |pt, va, _| {
                if let Some(pfn) = pt.unmap(va) {
                    pages.put_page(pfn);
                }
            });
            if v.flags & VM_ACCOUNT != 0 {
                acct.vm_unacct_memory(v.pages());
            }
            self.total_vm -= v.pages();
        }
        Ok(())
    }

    /// `madvise()` (mm/madvise.c) for `[start, start + len)`: the hints
    /// (MADV_NORMAL, RANDOM, SEQUENTIAL, WILLNEED, and the huge-page and
    /// merge ones) change nothing here; MADV_DONTNEED and MADV_FREE drop
    /// the private pages of the range, so that the next touch faults a
    /// zero page (`zap_page_range`), and leave shared ones, whose data
    /// stays in the shared object as in Linux. EINVAL for an unaligned
    /// start or an unknown advice, ENOMEM if part of the range is not
    /// mapped.
    pub fn madvise<T: PageTable, P: PageOps>(
        &mut self,
        pt: &mut T,
        pages: &mut P,
        start: usize,
        len: usize,
        advice: u32,
    ) -> Result<(), Errno> {
        const MADV_DONTNEED: u32 = 4;
        const MADV_FREE: u32 = 8;
        let known = matches!(advice, 0..=4 | 8 | 9 | 10 | 11 | 12 | 13 | 14 | 15 | 16 | 17 | 18 | 19 | 20 | 21);
        if !start.is_multiple_of(PAGE_SIZE) || !known {
            return Err(Errno::EINVAL);
        }
        let end = start.checked_add(align_up(len, PAGE_SIZE)).ok_or(Errno::EINVAL)?;
        let mut at = start;
        let mut private = Vec::new();
        while at < end {
            let v = self.vmas.find_vma(at).filter(|v| v.start <= at).ok_or(Errno::ENOMEM)?;
            if v.flags & VM_SHARED == 0 {
                private.push((at, v.end.min(end)));
            }
            at = v.end;
        }
        if advice == MADV_DONTNEED || advice == MADV_FREE {
            for (s, e) in private {
                for_each_mapped(pt, s, e, |pt, va, _| {
                    if let Some(pfn) = pt.unmap(va) {
                        pages.put_page(pfn);
                    }
                });
            }
        }
        Ok(())
    }

    /// `mprotect()`: new access bits for `[start, start + len)`, splitting and
    /// merging VMAs; PTEs lose write at once, private pages regain it only
    /// through a write fault (COW or reuse).
    pub fn mprotect<T: PageTable>(&mut self, pt: &mut T, start: usize, len: usize, prot: u32) -> Result<(), Errno> {
        if !start.is_multiple_of(PAGE_SIZE) {
            return Err(Errno::EINVAL);
        }
        if prot & !(PROT_READ | PROT_WRITE | PROT_EXEC) != 0 {
            return Err(Errno::EINVAL);
        }
        if len == 0 {
            return Ok(());
        }
        // Rounding a huge length up overflows: ENOMEM, as Linux's
        // `end <= start` check gives for the wrapped PAGE_ALIGN(len).
        let end = len.checked_next_multiple_of(PAGE_SIZE).and_then(|l| start.checked_add(l)).ok_or(Errno::ENOMEM)?;
        // The whole range must be mapped, and each VMA must allow the change.
        let mut cursor = start;
        while cursor < end {
            let v = self.vmas.find_vma(cursor).filter(|v| v.start <= cursor).ok_or(Errno::ENOMEM)?;
            let want = prot as u64;
            if want & !(v.flags >> 4) & (VM_READ | VM_WRITE | VM_EXEC) != 0 {
                return Err(Errno::EACCES);
            }
            cursor = v.end;
        }
        let bits = prot as u64 & (VM_READ | VM_WRITE | VM_EXEC);
        self.vmas.set_flags_range(start, end, |f| (f & !VM_ACCESS_FLAGS) | bits);
        let vmas = &self.vmas;
        let mut outside = false;
        for_each_mapped(pt, start, end, |pt, va, pte| {
            let Some(v) = vmas.find_vma(va) else {
                outside = true;
                return;
            };
            let keep_write = pte.writable && v.flags & VM_WRITE != 0;
            let write = keep_write || (v.flags & VM_SHARED != 0 && v.flags & VM_WRITE != 0);
            pt.protect(va, PteProt::from_vm_flags(v.flags, write));
        });
        if outside { Err(Errno::EFAULT) } else { Ok(()) }
    }

    /// `brk()`: returns the new break, or the old one on failure (Linux's
    /// convention).
    pub fn brk<T: PageTable, P: PageOps>(
        &mut self,
        pt: &mut T,
        pages: &mut P,
        acct: &mut impl VmAcct,
        newbrk: usize,
    ) -> usize {
        if newbrk < self.start_brk {
            return self.brk;
        }
        // A break past user space fails (Linux's brk() checks TASK_SIZE
        // too); checked first, as rounding it up may overflow.
        let Some(new_al) = newbrk.checked_next_multiple_of(PAGE_SIZE).filter(|&a| a <= TASK_SIZE) else {
            return self.brk;
        };
        let old_al = align_up(self.brk, PAGE_SIZE);
        if new_al == old_al {
            self.brk = newbrk;
            return self.brk;
        }
        if new_al < old_al {
            if self.do_munmap(pt, pages, acct, new_al, old_al - new_al).is_ok() {
                self.brk = newbrk;
            }
            return self.brk;
        }
        // Leave a page between the heap and the next mapping.
        if !self.range_free(old_al, new_al + PAGE_SIZE) {
            return self.brk;
        }
        let npages = (new_al - old_al) >> PAGE_SHIFT;
        if acct.vm_enough_memory(npages, self.cap_sys_admin, self.total_vm).is_err() {
            return self.brk;
        }
        self.vmas.insert_merge(Vma {
            start: old_al,
            end: new_al,
            flags: VM_DATA_DEFAULT_FLAGS | VM_ACCOUNT,
            pgoff: old_al >> PAGE_SHIFT,
            file: None,
        });
        self.total_vm += npages;
        self.brk = newbrk;
        self.brk
    }

    /// `expand_stack()` (`expand_downwards`): grow the growsdown VMA that
    /// starts at `vma_start` down to cover `addr`, within RLIMIT_STACK and
    /// keeping the guard gap to the VMA below.
    pub fn expand_stack(&mut self, acct: &mut impl VmAcct, vma_start: usize, addr: usize) -> Result<(), Errno> {
        let v = *self.vmas.find_vma(vma_start).filter(|v| v.start == vma_start).ok_or(Errno::EFAULT)?;
        if v.flags & VM_GROWSDOWN == 0 {
            return Err(Errno::EFAULT);
        }
        let new_start = align_down(addr, PAGE_SIZE);
        if new_start >= v.start {
            return Ok(());
        }
        if v.end - new_start > self.stack_rlimit || new_start < MMAP_MIN_ADDR {
            return Err(Errno::ENOMEM);
        }
        let (_, prev) = self.vmas.find_vma_prev(v.start);
        if let Some(p) = prev
            && p.end + STACK_GUARD_GAP > new_start
        {
            return Err(Errno::ENOMEM);
        }
        let grow = (v.start - new_start) >> PAGE_SHIFT;
        if v.flags & VM_ACCOUNT != 0 {
            acct.vm_enough_memory(grow, self.cap_sys_admin, self.total_vm)?;
        }
        self.vmas.set_start(v.start, new_start)?;
        self.total_vm += grow;
        Ok(())
    }

    /// `dup_mmap()` for fork: the child gets copies of the VMAs and shares
    /// every mapped page; private writable pages become read-only in both
    /// (copy-on-write), each shared page gains a reference.
    pub fn dup_mmap<T: PageTable, P: PageOps>(
        &self,
        parent_pt: &mut T,
        child_pt: &mut T,
        pages: &mut P,
        acct: &mut impl VmAcct,
    ) -> Result<MmStruct, Errno> {
        let charge: usize = self.vmas.iter().filter(|v| v.flags & VM_ACCOUNT != 0).map(Vma::pages).sum();
        acct.vm_enough_memory(charge, self.cap_sys_admin, self.total_vm)?;
        let mut child = self.clone();
        child.rng = child.next_random();
        for v in self.vmas.iter() {
            let mut res = Ok(());
            for_each_mapped(parent_pt, v.start, v.end, |parent_pt, va, pte| {
                if res.is_err() {
                    return;
                }
                let cow = v.flags & VM_SHARED == 0;
                let prot = PteProt::from_vm_flags(v.flags, pte.writable && !cow);
                if cow && pte.writable {
                    parent_pt.protect(va, prot);
                }
                res = child_pt.map(va, pte.pfn, prot);
                if res.is_ok() {
                    pages.get_page(pte.pfn);
                }
            });
            res?;
        }
        Ok(child)
    }

    /// `exit_mmap()`: unmap everything.
    pub fn exit_mmap<T: PageTable, P: PageOps>(&mut self, pt: &mut T, pages: &mut P, acct: &mut impl VmAcct) {
        let _ = self.do_munmap(pt, pages, acct, 0, TASK_SIZE);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::mm::oom::{MemInfo, Overcommit, OvercommitPolicy};
    use alloc::collections::BTreeMap;

    /// A page table as a map from page address to entry.
    #[derive(Default, Debug)]
    pub(crate) struct FakePt(pub(crate) BTreeMap<usize, (Pfn, PteProt)>);

    impl PageTable for FakePt {
        fn lookup(&self, va: usize) -> Option<Pte> {
            self.0.get(&va).map(|&(pfn, p)| Pte { pfn, writable: p.write })
        }
        fn map(&mut self, va: usize, pfn: Pfn, prot: PteProt) -> Result<(), Errno> {
            assert_eq!(va % PAGE_SIZE, 0);
            self.0.insert(va, (pfn, prot));
            Ok(())
        }
        fn unmap(&mut self, va: usize) -> Option<Pfn> {
            self.0.remove(&va).map(|e| e.0)
        }
        fn protect(&mut self, va: usize, prot: PteProt) {
            self.0.get_mut(&va).unwrap().1 = prot;
        }
        fn mapped(&self, start: usize, end: usize, max: usize) -> Vec<(usize, Pte)> {
            if start >= end {
                return Vec::new();
            }
            self.0.range(start..end).take(max).map(|(&va, &(pfn, p))| (va, Pte { pfn, writable: p.write })).collect()
        }
    }

    /// Reference counts without an allocator.
    #[derive(Default, Debug)]
    pub(crate) struct FakePages {
        pub(crate) next: Pfn,
        pub(crate) counts: BTreeMap<Pfn, u32>,
        pub(crate) copies: Vec<(Pfn, Pfn)>,
        pub(crate) fail: bool,
    }

    impl PageOps for FakePages {
        fn alloc_user_page(&mut self) -> Option<Pfn> {
            if self.fail {
                return None;
            }
            self.next += 1;
            self.counts.insert(self.next, 1);
            Some(self.next)
        }
        fn copy_page(&mut self, dst: Pfn, src: Pfn) {
            self.copies.push((dst, src));
        }
        fn get_page(&mut self, pfn: Pfn) {
            *self.counts.get_mut(&pfn).unwrap() += 1;
        }
        fn put_page(&mut self, pfn: Pfn) {
            let c = self.counts.get_mut(&pfn).unwrap();
            *c -= 1;
            if *c == 0 {
                self.counts.remove(&pfn);
            }
        }
        fn page_count(&self, pfn: Pfn) -> u32 {
            self.counts.get(&pfn).copied().unwrap_or(0)
        }
    }

    pub(crate) fn acct() -> Overcommit {
        Overcommit::new(MemInfo { totalram: 1 << 18, free: 1 << 18, ..MemInfo::default() })
    }

    pub(crate) fn norand() -> MmConfig {
        MmConfig { randomize: false, ..MmConfig::default() }
    }

    const RW: u32 = PROT_READ | PROT_WRITE;
    const ANON: u32 = MAP_PRIVATE | MAP_ANONYMOUS;

    fn spans(mm: &MmStruct) -> Vec<(usize, usize, u64)> {
        mm.vmas.iter().map(|v| (v.start, v.end, v.flags & VM_ACCESS_FLAGS)).collect()
    }

    #[test]
    fn layout_is_randomized_by_default_and_fixed_without() {
        let a = MmStruct::new(MmConfig { seed: 1, ..MmConfig::default() });
        let b = MmStruct::new(MmConfig { seed: 2, ..MmConfig::default() });
        assert_ne!(a.mmap_base, b.mmap_base);
        assert_ne!(a.stack_top, b.stack_top);
        let c = MmStruct::new(norand());
        let d = MmStruct::new(MmConfig { seed: 2, ..norand() });
        assert_eq!((c.mmap_base, c.stack_top), (d.mmap_base, d.stack_top));
        assert_eq!(c.stack_top, TASK_SIZE);
        assert_eq!(c.mmap_base, TASK_SIZE - MIN_GAP);
        for mm in [&a, &b] {
            assert!(mm.mmap_base + DEFAULT_STACK_RLIMIT + STACK_GUARD_GAP <= mm.stack_top);
            assert!(TASK_SIZE - mm.mmap_base <= MIN_GAP + (STACK_RND_MASK << 12) * 2);
        }
        let mut e = MmStruct::new(MmConfig { seed: 3, ..MmConfig::default() });
        e.setup_brk(0x41_0123);
        assert!(e.start_brk >= 0x41_1000 && e.start_brk < 0x41_1000 + BRK_RND_RANGE);
    }

    #[test]
    fn madvise_dontneed_drops_private_pages_and_checks_its_range() {
        let (mut pt, mut pg, mut oc) = (FakePt::default(), FakePages::default(), acct());
        let mut mm = MmStruct::new(norand());
        let a = mm.mmap(&mut pt, &mut pg, &mut oc, 0, 2 * PAGE_SIZE, RW, ANON, None).unwrap();
        for va in [a, a + PAGE_SIZE] {
            let pfn = pg.alloc_user_page().unwrap();
            pt.map(va, pfn, PteProt { read: true, write: true, exec: false }).unwrap();
        }
        assert_eq!(mm.madvise(&mut pt, &mut pg, a, PAGE_SIZE, 1), Ok(()), "a hint");
        assert!(pt.lookup(a).is_some());
        assert_eq!(mm.madvise(&mut pt, &mut pg, a, PAGE_SIZE, 4), Ok(()));
        assert!(pt.lookup(a).is_none() && pt.lookup(a + PAGE_SIZE).is_some(), "only the range");
        assert_eq!(mm.madvise(&mut pt, &mut pg, a + 1, PAGE_SIZE, 4), Err(Errno::EINVAL));
        assert_eq!(mm.madvise(&mut pt, &mut pg, a, PAGE_SIZE, 99), Err(Errno::EINVAL));
        assert_eq!(mm.madvise(&mut pt, &mut pg, a, 3 * PAGE_SIZE, 4), Err(Errno::ENOMEM), "past the mapping");
    }

    #[test]
    fn mmap_places_top_down_and_merges_adjacent() {
        let (mut pt, mut pg, mut oc) = (FakePt::default(), FakePages::default(), acct());
        let mut mm = MmStruct::new(norand());
        let a = mm.mmap(&mut pt, &mut pg, &mut oc, 0, 3 * PAGE_SIZE, RW, ANON, None).unwrap();
        assert_eq!(a, mm.mmap_base - 3 * PAGE_SIZE);
        let b = mm.mmap(&mut pt, &mut pg, &mut oc, 0, PAGE_SIZE, RW, ANON, None).unwrap();
        assert_eq!(b, a - PAGE_SIZE);
        assert_eq!(mm.vmas.len(), 1, "adjacent anonymous mappings merge");
        let c = mm.mmap(&mut pt, &mut pg, &mut oc, 0, PAGE_SIZE, PROT_READ, ANON, None).unwrap();
        assert_eq!(mm.vmas.len(), 2, "different protection does not merge");
        assert_eq!(oc.committed, 4, "read-only private memory is not committed");
        // A hint that is free is honoured.
        let h = mm.mmap(&mut pt, &mut pg, &mut oc, 0x1000_0000, PAGE_SIZE, RW, ANON, None).unwrap();
        assert_eq!(h, 0x1000_0000);
        // The gap left by an unmap is reused.
        mm.munmap(&mut pt, &mut pg, &mut oc, c, PAGE_SIZE).unwrap();
        assert_eq!(mm.mmap(&mut pt, &mut pg, &mut oc, 0, PAGE_SIZE, PROT_READ, ANON, None).unwrap(), c);
        assert_eq!(mm.total_vm, 6);
    }

    #[test]
    fn mmap_argument_errors() {
        let (mut pt, mut pg, mut oc) = (FakePt::default(), FakePages::default(), acct());
        let mut mm = MmStruct::new(norand());
        let mut m = |addr, len, prot, flags, file| mm.mmap(&mut pt, &mut pg, &mut oc, addr, len, prot, flags, file);
        assert_eq!(m(0, 0, RW, ANON, None), Err(Errno::EINVAL));
        assert_eq!(m(0, PAGE_SIZE, RW, MAP_ANONYMOUS, None), Err(Errno::EINVAL), "neither shared nor private");
        assert_eq!(m(0, PAGE_SIZE, 0x80, ANON, None), Err(Errno::EINVAL));
        assert_eq!(m(0x10_0001, PAGE_SIZE, RW, ANON | MAP_FIXED, None), Err(Errno::EINVAL));
        assert_eq!(m(0x1000, PAGE_SIZE, RW, ANON | MAP_FIXED, None), Err(Errno::EPERM));
        assert_eq!(m(0, PAGE_SIZE, RW, MAP_PRIVATE, None), Err(Errno::EBADF));
        assert_eq!(m(0, PAGE_SIZE, RW, MAP_PRIVATE, Some((3, 100))), Err(Errno::EINVAL));
        assert_eq!(m(0, usize::MAX, RW, ANON, None), Err(Errno::ENOMEM));
        assert_eq!(m(0x10_0000, PAGE_SIZE, RW, ANON | MAP_FIXED, None), Ok(0x10_0000));
        assert_eq!(m(0x10_0000, PAGE_SIZE, RW, ANON | MAP_FIXED_NOREPLACE, None), Err(Errno::EEXIST));
        assert_eq!(m(0, 1 << 50, RW, ANON, None), Err(Errno::ENOMEM));
    }

    #[test]
    fn munmap_middle_splits_and_frees_pages() {
        let (mut pt, mut pg, mut oc) = (FakePt::default(), FakePages::default(), acct());
        let mut mm = MmStruct::new(norand());
        let a = mm.mmap(&mut pt, &mut pg, &mut oc, 0, 5 * PAGE_SIZE, RW, ANON, None).unwrap();
        for i in 0..5 {
            let pfn = pg.alloc_user_page().unwrap();
            pt.map(a + i * PAGE_SIZE, pfn, PteProt::from_vm_flags(VM_READ | VM_WRITE, true)).unwrap();
        }
        mm.munmap(&mut pt, &mut pg, &mut oc, a + PAGE_SIZE, 2 * PAGE_SIZE).unwrap();
        let rw = VM_READ | VM_WRITE;
        assert_eq!(spans(&mm), [(a, a + PAGE_SIZE, rw), (a + 3 * PAGE_SIZE, a + 5 * PAGE_SIZE, rw)]);
        assert_eq!(pt.0.len(), 3);
        assert_eq!(pg.counts.len(), 3, "unmapped pages were freed");
        assert_eq!(oc.committed, 3);
        assert_eq!(mm.vmas.iter().nth(1).unwrap().pgoff, (a >> 12) + 3);
        assert_eq!(mm.munmap(&mut pt, &mut pg, &mut oc, a + 1, PAGE_SIZE), Err(Errno::EINVAL));
        // Unmapping a hole is fine.
        mm.munmap(&mut pt, &mut pg, &mut oc, 0x10_0000, PAGE_SIZE).unwrap();
    }

    #[test]
    fn mprotect_middle_makes_three_then_merges_back() {
        let (mut pt, mut pg, mut oc) = (FakePt::default(), FakePages::default(), acct());
        let mut mm = MmStruct::new(norand());
        let a = mm.mmap(&mut pt, &mut pg, &mut oc, 0, 4 * PAGE_SIZE, RW, ANON, None).unwrap();
        let pfn = pg.alloc_user_page().unwrap();
        pt.map(a + PAGE_SIZE, pfn, PteProt::from_vm_flags(VM_READ | VM_WRITE, true)).unwrap();
        mm.mprotect(&mut pt, a + PAGE_SIZE, 2 * PAGE_SIZE, PROT_READ).unwrap();
        let (r, rw) = (VM_READ, VM_READ | VM_WRITE);
        assert_eq!(
            spans(&mm),
            [(a, a + PAGE_SIZE, rw), (a + PAGE_SIZE, a + 3 * PAGE_SIZE, r), (a + 3 * PAGE_SIZE, a + 4 * PAGE_SIZE, rw)]
        );
        assert!(!pt.lookup(a + PAGE_SIZE).unwrap().writable, "PTE lost write");
        mm.mprotect(&mut pt, a + PAGE_SIZE, 2 * PAGE_SIZE, RW).unwrap();
        assert_eq!(spans(&mm), [(a, a + 4 * PAGE_SIZE, rw)]);
        assert!(!pt.lookup(a + PAGE_SIZE).unwrap().writable, "private pages regain write by fault");
        assert_eq!(mm.mprotect(&mut pt, a, 8 * PAGE_SIZE, PROT_READ), Err(Errno::ENOMEM), "hole in range");
        assert_eq!(mm.mprotect(&mut pt, a + 1, PAGE_SIZE, PROT_READ), Err(Errno::EINVAL));
    }

    #[test]
    fn mprotect_respects_mayshare_and_maywrite() {
        let (mut pt, mut pg, mut oc) = (FakePt::default(), FakePages::default(), acct());
        let mut mm = MmStruct::new(norand());
        let a = mm.mmap(&mut pt, &mut pg, &mut oc, 0, PAGE_SIZE, PROT_READ, ANON, None).unwrap();
        // Take VM_MAYWRITE away as a read-only file mapping would.
        mm.vmas.set_flags_range(a, a + PAGE_SIZE, |f| f & !VM_MAYWRITE);
        assert_eq!(mm.mprotect(&mut pt, a, PAGE_SIZE, RW), Err(Errno::EACCES));
        let s = mm.mmap(&mut pt, &mut pg, &mut oc, 0, PAGE_SIZE, PROT_READ, MAP_SHARED | MAP_ANONYMOUS, None).unwrap();
        let pfn = pg.alloc_user_page().unwrap();
        pt.map(s, pfn, PteProt::from_vm_flags(VM_READ, false)).unwrap();
        mm.mprotect(&mut pt, s, PAGE_SIZE, RW).unwrap();
        assert!(pt.lookup(s).unwrap().writable, "shared mappings are writable at once");
    }

    #[test]
    fn brk_grows_merges_and_shrinks() {
        let (mut pt, mut pg, mut oc) = (FakePt::default(), FakePages::default(), acct());
        let mut mm = MmStruct::new(norand());
        mm.setup_brk(0x40_0000);
        assert_eq!(mm.brk(&mut pt, &mut pg, &mut oc, 0x40_0000 + 100), 0x40_0064);
        assert_eq!(mm.vmas.len(), 1);
        assert_eq!(mm.brk(&mut pt, &mut pg, &mut oc, 0x40_3000), 0x40_3000);
        assert_eq!(spans(&mm), [(0x40_0000, 0x40_3000, VM_READ | VM_WRITE)]);
        assert_eq!(oc.committed, 3);
        let pfn = pg.alloc_user_page().unwrap();
        pt.map(0x40_2000, pfn, PteProt::from_vm_flags(VM_READ | VM_WRITE, true)).unwrap();
        assert_eq!(mm.brk(&mut pt, &mut pg, &mut oc, 0x40_1800), 0x40_1800);
        assert_eq!(spans(&mm), [(0x40_0000, 0x40_2000, VM_READ | VM_WRITE)]);
        assert!(pg.counts.is_empty() && pt.0.is_empty());
        assert_eq!(mm.brk(&mut pt, &mut pg, &mut oc, 0x10), 0x40_1800, "below start_brk: unchanged");
        // A mapping right above the heap stops it.
        mm.mmap(&mut pt, &mut pg, &mut oc, 0x40_5000, PAGE_SIZE, RW, ANON | MAP_FIXED, None).unwrap();
        assert_eq!(mm.brk(&mut pt, &mut pg, &mut oc, 0x40_5000), 0x40_1800);
        assert_eq!(mm.brk(&mut pt, &mut pg, &mut oc, 0x40_4000), 0x40_4000);
        // Overcommit NEVER refuses a heap beyond CommitLimit.
        oc.policy = OvercommitPolicy::Never;
        assert_eq!(mm.brk(&mut pt, &mut pg, &mut oc, 0x40_0000 + (1 << 40)), 0x40_4000);
    }

    #[test]
    fn overcommit_never_refuses_mmap() {
        let (mut pt, mut pg, mut oc) = (FakePt::default(), FakePages::default(), acct());
        oc.policy = OvercommitPolicy::Never;
        let mut mm = MmStruct::new(norand());
        let limit = oc.commit_limit();
        let big = limit * PAGE_SIZE;
        assert_eq!(mm.mmap(&mut pt, &mut pg, &mut oc, 0, big, RW, ANON, None), Err(Errno::ENOMEM));
        assert!(mm.vmas.is_empty());
        // Not accounted: read-only, shared, or MAP_NORESERVE.
        mm.mmap(&mut pt, &mut pg, &mut oc, 0, big, PROT_READ, ANON, None).unwrap();
        mm.mmap(&mut pt, &mut pg, &mut oc, 0, big, RW, MAP_SHARED | MAP_ANONYMOUS, None).unwrap();
        mm.mmap(&mut pt, &mut pg, &mut oc, 0, big, RW, ANON | MAP_NORESERVE, None).unwrap();
        assert_eq!(oc.committed, 0);
        let ok = mm.mmap(&mut pt, &mut pg, &mut oc, 0, big / 4, RW, ANON, None).unwrap();
        assert_eq!(oc.committed, limit / 4);
        mm.munmap(&mut pt, &mut pg, &mut oc, ok, big / 4).unwrap();
        assert_eq!(oc.committed, 0);
    }

    /// Found by fuzzing (ci/fuzz, target `syscall`): arguments near the
    /// top of the address space overflowed while being rounded up. In the
    /// release kernel (no overflow checks) an mmap hint of -4 MiB wrapped
    /// past TASK_SIZE and was granted, giving a VMA that ends below its
    /// start; brk(-1) rounded to 0 and unmapped everything below the old
    /// break, program text included; mprotect(addr, -1) did nothing and
    /// succeeded.
    #[test]
    fn arguments_near_the_top_of_the_address_space() {
        let (mut pt, mut pg, mut oc) = (FakePt::default(), FakePages::default(), acct());
        let mut mm = MmStruct::new(norand());
        mm.setup_brk(0x40_0000);
        let text = mm.mmap(&mut pt, &mut pg, &mut oc, 0x10_0000, PAGE_SIZE, RW, ANON | MAP_FIXED, None).unwrap();
        for hint in [usize::MAX, usize::MAX - (4 << 20) + 1, TASK_SIZE - PAGE_SIZE, TASK_SIZE] {
            let a = mm.mmap(&mut pt, &mut pg, &mut oc, hint, 2 * PAGE_SIZE, RW, ANON, None).unwrap();
            assert!(a >= MMAP_MIN_ADDR && a + 2 * PAGE_SIZE <= TASK_SIZE, "hint {hint:#x} gave {a:#x}");
        }
        assert!(mm.vmas.iter().all(|v| v.start < v.end && v.end <= TASK_SIZE));
        let old = mm.brk;
        for bad in [usize::MAX, usize::MAX - PAGE_SIZE, TASK_SIZE + 1] {
            assert_eq!(mm.brk(&mut pt, &mut pg, &mut oc, bad), old, "brk({bad:#x})");
        }
        assert_eq!(mm.find_vma(text).map(|v| v.start), Some(text), "brk unmapped the program");
        assert_eq!(mm.mprotect(&mut pt, text, usize::MAX, PROT_READ), Err(Errno::ENOMEM));
        assert_eq!(mm.mprotect(&mut pt, text, usize::MAX - PAGE_SIZE + 2, PROT_READ), Err(Errno::ENOMEM));
    }

    /// A page table that counts its walks.
    #[derive(Default)]
    struct CountingPt(FakePt, core::cell::Cell<usize>);

    impl PageTable for CountingPt {
        fn lookup(&self, va: usize) -> Option<Pte> {
            self.0.lookup(va)
        }
        fn map(&mut self, va: usize, pfn: Pfn, prot: PteProt) -> Result<(), Errno> {
            self.0.map(va, pfn, prot)
        }
        fn unmap(&mut self, va: usize) -> Option<Pfn> {
            self.0.unmap(va)
        }
        fn protect(&mut self, va: usize, prot: PteProt) {
            self.0.protect(va, prot)
        }
        fn mapped(&self, start: usize, end: usize, max: usize) -> Vec<(usize, Pte)> {
            self.1.set(self.1.get() + 1);
            self.0.mapped(start, end, max)
        }
    }

    /// Found by fuzzing (ci/fuzz, target `syscall`): unmapping, exiting
    /// with, protecting or forking a huge sparse mapping walked it in fixed
    /// 64 KiB steps: 2^31 page-table walks for mmap(NULL, 128 TiB,
    /// PROT_READ), minutes with the kernel lock held. The walk now costs
    /// one call per batch of mapped pages.
    #[test]
    fn huge_sparse_mappings_are_walked_by_their_pages() {
        let (mut pt, mut pg, mut oc) = (CountingPt::default(), FakePages::default(), acct());
        let mut mm = MmStruct::new(norand());
        let len = 1 << 46;
        let a = mm.mmap(&mut pt, &mut pg, &mut oc, 0, len, PROT_READ, ANON, None).unwrap();
        for va in [a, a + (1 << 40), a + len - PAGE_SIZE] {
            let pfn = pg.alloc_user_page().unwrap();
            pt.map(va, pfn, PteProt::from_vm_flags(VM_READ, false)).unwrap();
        }
        mm.mprotect(&mut pt, a, len, PROT_NONE).unwrap();
        let mut child_pt = CountingPt::default();
        let mut child = mm.dup_mmap(&mut pt, &mut child_pt, &mut pg, &mut oc).unwrap();
        child.exit_mmap(&mut child_pt, &mut pg, &mut oc);
        mm.munmap(&mut pt, &mut pg, &mut oc, a, len).unwrap();
        assert!(pt.0.0.is_empty() && child_pt.0.0.is_empty() && pg.counts.is_empty());
        assert!(pt.1.get() + child_pt.1.get() <= 8, "{} walks", pt.1.get() + child_pt.1.get());
        // Batches: 40 pages take three calls of 16.
        let mut many = CountingPt::default();
        for i in 0..40 {
            many.map(a + i * PAGE_SIZE, i, PteProt::from_vm_flags(VM_READ, false)).unwrap();
        }
        let mut seen = Vec::new();
        for_each_mapped(&mut many, a, a + len, |_, va, _| seen.push(va));
        assert_eq!(seen, (0..40).map(|i| a + i * PAGE_SIZE).collect::<Vec<_>>());
        assert_eq!(many.1.get(), 3);
    }

    #[test]
    fn fork_shares_pages_copy_on_write() {
        let (mut pt, mut pg, mut oc) = (FakePt::default(), FakePages::default(), acct());
        let mut mm = MmStruct::new(norand());
        let a = mm.mmap(&mut pt, &mut pg, &mut oc, 0, PAGE_SIZE, RW, ANON, None).unwrap();
        let s = mm.mmap(&mut pt, &mut pg, &mut oc, 0, PAGE_SIZE, RW, MAP_SHARED | MAP_ANONYMOUS, None).unwrap();
        let (p1, p2) = (pg.alloc_user_page().unwrap(), pg.alloc_user_page().unwrap());
        pt.map(a, p1, PteProt::from_vm_flags(VM_READ | VM_WRITE, true)).unwrap();
        pt.map(s, p2, PteProt::from_vm_flags(VM_READ | VM_WRITE, true)).unwrap();
        let mut child_pt = FakePt::default();
        let child = mm.dup_mmap(&mut pt, &mut child_pt, &mut pg, &mut oc).unwrap();
        assert_eq!(child.vmas, mm.vmas);
        assert_eq!((pg.page_count(p1), pg.page_count(p2)), (2, 2));
        assert!(!pt.lookup(a).unwrap().writable && !child_pt.lookup(a).unwrap().writable);
        assert!(pt.lookup(s).unwrap().writable && child_pt.lookup(s).unwrap().writable);
        assert_eq!(oc.committed, 2);
    }
}
