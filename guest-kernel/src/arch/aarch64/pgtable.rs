//! EL0 page tables: four levels of 4 KiB tables under TTBR0_EL1, one per
//! address space, tagged with an ASID (ARM ARM D8.2 translation tables,
//! D8.3 descriptors, D8.16 TLB maintenance). Implements the mm core's
//! [`PageTable`] trait.
//!
//! Hand-written rather than `aarch64-paging`: the mm core needs per-page
//! lookup, protect and an ordered walk of what is mapped, and table pages
//! must come from the zoned allocator one lock acquisition at a time (the
//! fault path already holds the process lock); the descriptor format is
//! small enough to state here.

use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{TTBR0_EL1, Writeable};
use alloc::vec::Vec;

use super::cpu::smp_processor_id;
use super::memory::with_pages;
use super::mmu::phys_to_virt;
use crate::mm::Errno;
use crate::mm::gfp::Gfp;
use crate::mm::mm_struct::{PageTable, Pte, PteProt, TASK_SIZE};
use crate::mm::page::{Pfn, pfn_to_phys, phys_to_pfn};

const VALID: u64 = 1 << 0;
const TABLE_OR_PAGE: u64 = 1 << 1;
const ATTR_NORMAL: u64 = 1 << 2; // AttrIndx 1: Normal WB (MAIR from entry.S)
const AP_EL0: u64 = 1 << 6; // AP[1]: EL0 may access
const AP_RO: u64 = 1 << 7; // AP[2]: read-only
const SH_INNER: u64 = 3 << 8;
const AF: u64 = 1 << 10;
const NG: u64 = 1 << 11; // not global: tagged with the ASID
const PXN: u64 = 1 << 53;
const UXN: u64 = 1 << 54;
const ADDR_MASK: u64 = 0x0000_ffff_ffff_f000;

/// Most ASIDs with 8-bit ASIDs (TCR_EL1.AS = 0); ASID 0 is the kernel's
/// and the shared fallback.
const NR_ASIDS: usize = 256;

static ASIDS: crate::sync::SpinLock<[u64; NR_ASIDS / 64]> =
    crate::sync::SpinLock::new(&crate::sync::ASIDS, [1, 0, 0, 0]);

/// Allocates an ASID; 0 (flushed on every switch) when all are in use.
pub fn asid_alloc() -> u16 {
    let mut map = ASIDS.lock_irqsave();
    for (w, word) in map.iter_mut().enumerate() {
        if *word != u64::MAX {
            let b = word.trailing_ones() as usize;
            *word |= 1 << b;
            return (w * 64 + b) as u16;
        }
    }
    0
}

fn asid_free(asid: u16) {
    if asid != 0 {
        ASIDS.lock_irqsave()[asid as usize / 64] &= !(1 << (asid % 64));
    }
}

fn table_va(pa: u64) -> *mut u64 {
    phys_to_virt(pa) as *mut u64
}

fn alloc_table() -> Option<u64> {
    let pfn = with_pages(|pa| pa.alloc_page(Gfp::GFP_KERNEL | Gfp::__GFP_ZERO, smp_processor_id()))?;
    Some(pfn_to_phys(pfn) as u64)
}

fn free_table(pa: u64) {
    with_pages(|p| p.__free_pages(phys_to_pfn(pa as usize), 0, smp_processor_id()));
}

const fn index(va: usize, level: usize) -> usize {
    (va >> (39 - 9 * level)) & 0x1ff
}

fn read(table: u64, i: usize) -> u64 {
    // SAFETY: `table` is a live table page of this address space in the
    // linear map; i < 512.
    unsafe { table_va(table).add(i).read_volatile() }
}

fn write(table: u64, i: usize, v: u64) {
    // SAFETY: as in `read`; the walker sees the store after a dsb.
    unsafe { table_va(table).add(i).write_volatile(v) }
}

/// One EL0 translation table tree.
#[derive(Debug)]
pub struct UserPageTable {
    root: u64,
    asid: u16,
    /// Every table page below the root, so that freeing them is a list to
    /// go through rather than a scan of 512 entries per table (a small
    /// process has a few tables, mostly empty).
    tables: Vec<u64>,
}

impl UserPageTable {
    /// An empty address space (`pgd_alloc` + an ASID).
    pub fn new() -> Result<Self, Errno> {
        let root = alloc_table().ok_or(Errno::ENOMEM)?;
        Ok(UserPageTable { root, asid: asid_alloc(), tables: Vec::new() })
    }

    /// TTBR0_EL1 value: ASID in bits 63:48.
    pub fn ttbr0(&self) -> u64 {
        (u64::from(self.asid) << 48) | self.root
    }

    /// The ASID (0 = shared: flush on switch).
    pub fn asid(&self) -> u16 {
        self.asid
    }

    /// Writes `bytes` at user address `va` of this address space through
    /// the linear map (exec builds a new image with it: the pages are the
    /// table's own, not yet any task's, so no uaccess is needed). EFAULT if
    /// a page is not mapped.
    pub fn write_bytes(&self, va: usize, bytes: &[u8]) -> Result<(), Errno> {
        use crate::mm::page::{PAGE_SIZE, align_down};
        let mut done = 0;
        while done < bytes.len() {
            let a = va + done;
            let page = align_down(a, PAGE_SIZE);
            let pte = self.lookup(page).ok_or(Errno::EFAULT)?;
            let n = (page + PAGE_SIZE - a).min(bytes.len() - done);
            let dst = phys_to_virt(pfn_to_phys(pte.pfn) as u64) + (a - page);
            // SAFETY: the frame is a user page of this address space, owned
            // by it and reachable through the linear map; n stays in the page.
            unsafe { super::memory::copy_bytes(dst as *mut u8, bytes[done..].as_ptr(), n) };
            done += n;
        }
        Ok(())
    }

    /// The 32-bit word at user address `uaddr` (4-byte aligned), read
    /// atomically through the linear map if its page is present (futexes
    /// read their word this way under the kernel lock, where a fault could
    /// not be taken). The borrow of the table, which the caller has from
    /// the page-table lock, keeps the frame mapped while it is read.
    pub fn load_u32(&self, uaddr: usize) -> Option<u32> {
        use crate::mm::page::{PAGE_SIZE, align_down};
        use core::sync::atomic::{AtomicU32, Ordering};
        if !uaddr.is_multiple_of(4) {
            return None;
        }
        let pte = self.lookup(align_down(uaddr, PAGE_SIZE))?;
        let va = phys_to_virt(pfn_to_phys(pte.pfn) as u64) + uaddr % PAGE_SIZE;
        // SAFETY: the frame is mapped in this address space, and stays so
        // while `self` is borrowed (under the page-table lock); it is
        // reached through the linear map; the word is 4-byte aligned and
        // inside the page. User code may write it concurrently: an atomic
        // load.
        Some(unsafe { (*(va as *const AtomicU32)).load(Ordering::SeqCst) })
    }

    /// The level-3 table for `va`, if every level above it is there.
    fn walk(&self, va: usize) -> Option<u64> {
        let mut table = self.root;
        for level in 0..3 {
            let d = read(table, index(va, level));
            if d & VALID == 0 {
                return None;
            }
            table = d & ADDR_MASK;
        }
        Some(table)
    }

    /// The level-3 table for `va`, allocating the missing levels.
    fn walk_alloc(&mut self, va: usize) -> Result<u64, Errno> {
        let mut table = self.root;
        for level in 0..3 {
            let i = index(va, level);
            let d = read(table, i);
            if d & VALID == 0 {
                self.tables.try_reserve(1).map_err(|_| Errno::ENOMEM)?;
                let new = alloc_table().ok_or(Errno::ENOMEM)?;
                self.tables.push(new);
                // Zeroed table visible before the descriptor that links it.
                barrier_ishst();
                write(table, i, new | VALID | TABLE_OR_PAGE);
                table = new;
            } else {
                table = d & ADDR_MASK;
            }
        }
        Ok(table)
    }

    fn flush_page(&self, va: usize) {
        let arg = (u64::from(self.asid) << 48) | ((va as u64 >> 12) & ((1 << 44) - 1));
        // TLB maintenance for one page of this ASID (ARM ARM D8.16: dsb
        // before to order the PTE store, dsb+isb after to complete it).
        barrier::dsb(barrier::ISHST);
        // SAFETY: TLB maintenance does not change memory contents.
        unsafe { core::arch::asm!("tlbi vae1is, {}", in(reg) arg, options(nostack)) };
        barrier::dsb(barrier::ISH);
        barrier::isb(barrier::SY);
    }

    /// Mapped pages (`get_mm_rss`), counted without allocating.
    pub fn rss(&self) -> usize {
        fn count(table: u64, level: usize) -> usize {
            (0..512)
                .map(|i| read(table, i))
                .filter(|d| d & VALID != 0)
                .map(|d| if level == 3 { 1 } else { count(d & ADDR_MASK, level + 1) })
                .sum()
        }
        count(self.root, 0)
    }

    /// Frees every table page (the mapped frames must already be gone:
    /// `exit_mmap`) and the ASID.
    pub fn destroy(mut self) {
        self.free_tables();
    }

    /// [`destroy`](Self::destroy) in place (`free_pgtables` + `pgd_free`
    /// from `__mmdrop`); the table is empty afterwards, and a second call
    /// does nothing.
    pub fn free_tables(&mut self) {
        if self.root == 0 {
            return;
        }
        let arg = u64::from(self.asid) << 48;
        // Drop every TLB entry of this ASID before it is reused.
        barrier::dsb(barrier::ISHST);
        // SAFETY: TLB maintenance does not change memory contents.
        unsafe { core::arch::asm!("tlbi aside1is, {}", in(reg) arg, options(nostack)) };
        barrier::dsb(barrier::ISH);
        barrier::isb(barrier::SY);
        for t in self.tables.drain(..) {
            free_table(t);
        }
        free_table(self.root);
        asid_free(self.asid);
        self.root = 0;
    }
}

fn barrier_ishst() {
    barrier::dsb(barrier::ISHST);
}

fn pte_bits(pfn: Pfn, prot: PteProt) -> u64 {
    let mut d = pfn_to_phys(pfn) as u64 | VALID | TABLE_OR_PAGE | ATTR_NORMAL | SH_INNER | AF | NG | PXN | AP_EL0;
    if !prot.write {
        d |= AP_RO;
    }
    if !prot.exec {
        d |= UXN;
    }
    d
}

impl PageTable for UserPageTable {
    fn lookup(&self, va: usize) -> Option<Pte> {
        let t = self.walk(va)?;
        let d = read(t, index(va, 3));
        (d & VALID != 0).then(|| Pte { pfn: phys_to_pfn((d & ADDR_MASK) as usize), writable: d & AP_RO == 0 })
    }

    fn map(&mut self, va: usize, pfn: Pfn, prot: PteProt) -> Result<(), Errno> {
        let t = self.walk_alloc(va)?;
        let i = index(va, 3);
        let old = read(t, i);
        write(t, i, pte_bits(pfn, prot));
        if old & VALID != 0 {
            self.flush_page(va);
        } else {
            barrier_ishst();
        }
        Ok(())
    }

    fn unmap(&mut self, va: usize) -> Option<Pfn> {
        let t = self.walk(va)?;
        let i = index(va, 3);
        let d = read(t, i);
        if d & VALID == 0 {
            return None;
        }
        write(t, i, 0);
        self.flush_page(va);
        Some(phys_to_pfn((d & ADDR_MASK) as usize))
    }

    fn replace(&mut self, va: usize, pfn: Pfn, prot: PteProt) -> Result<Option<Pfn>, Errno> {
        let Some(t) = self.walk(va) else { return self.map(va, pfn, prot).map(|()| None) };
        let i = index(va, 3);
        let old = read(t, i);
        if old & VALID != 0 {
            // Break before make: invalid and flushed before the new frame.
            write(t, i, 0);
            self.flush_page(va);
        }
        write(t, i, pte_bits(pfn, prot));
        barrier_ishst();
        Ok((old & VALID != 0).then(|| phys_to_pfn((old & ADDR_MASK) as usize)))
    }

    fn protect(&mut self, va: usize, prot: PteProt) {
        if let Some(t) = self.walk(va) {
            let i = index(va, 3);
            let d = read(t, i);
            if d & VALID != 0 {
                write(t, i, pte_bits(phys_to_pfn((d & ADDR_MASK) as usize), prot));
                self.flush_page(va);
            }
        }
    }

    fn mapped(&self, start: usize, end: usize, max: usize) -> Vec<(usize, Pte)> {
        // One allocation for a whole batch (callers ask for WALK_BATCH).
        let mut out = Vec::with_capacity(max.min(crate::mm::mm_struct::WALK_BATCH));
        let end = end.min(TASK_SIZE);
        // Walk the tree, skipping empty subtrees, until `max` pages.
        fn visit(
            table: u64,
            level: usize,
            base: usize,
            (start, end, max): (usize, usize, usize),
            out: &mut Vec<(usize, Pte)>,
        ) {
            let span = 1usize << (39 - 9 * level);
            // Only the entries that overlap [start, end): the callers
            // recurse only where `base < end`.
            let first = start.saturating_sub(base) / span;
            let last = (end - base).div_ceil(span).min(512);
            for i in first..last {
                let lo = base + i * span;
                if out.len() >= max {
                    return;
                }
                let d = read(table, i);
                if d & VALID == 0 {
                    continue;
                }
                if level == 3 {
                    out.push((lo, Pte { pfn: phys_to_pfn((d & ADDR_MASK) as usize), writable: d & AP_RO == 0 }));
                } else {
                    visit(d & ADDR_MASK, level + 1, lo, (start, end, max), out);
                }
            }
        }
        if start < end {
            visit(self.root, 0, 0, (start, end, max), &mut out);
        }
        out
    }
}

/// An empty level-0 table for tasks without a user address space (Linux's
/// `reserved_pg_dir`): every EL0 access and uaccess faults.
pub fn empty_ttbr0() -> u64 {
    use core::sync::atomic::{AtomicU64, Ordering};
    static EMPTY: AtomicU64 = AtomicU64::new(0);
    let v = EMPTY.load(Ordering::Acquire);
    if v != 0 {
        return v;
    }
    let pa = alloc_table().expect("no memory for the empty page table");
    EMPTY.store(pa, Ordering::Release);
    pa
}

/// Loads TTBR0_EL1 (`cpu_switch_mm`). ASID 0 entries are flushed, since
/// every address space without its own ASID shares it.
pub fn switch_ttbr0(ttbr0: u64) {
    let asid0 = ttbr0 >> 48 == 0;
    // The new table is a valid EL0 tree (or the empty one); the kernel
    // runs from TTBR1 and is unaffected.
    TTBR0_EL1.set(ttbr0);
    barrier::isb(barrier::SY);
    if asid0 {
        barrier::dsb(barrier::ISHST);
        // SAFETY: TLB maintenance does not change memory contents.
        unsafe { core::arch::asm!("tlbi aside1, xzr", options(nostack)) };
        barrier::dsb(barrier::NSH);
        barrier::isb(barrier::SY);
    }
}
