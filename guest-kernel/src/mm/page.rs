//! `struct page`: one descriptor per physical page frame (the `mem_map` array).
//!
//! LKD ch. 12, "Pages"; 《Linux内核深度解析》§3.5.3 (node, zone, page).
//! The descriptor also carries the buddy allocator's free-list links, so the
//! allocator never writes into the free memory itself: it runs unchanged on
//! the host in tests and before the kernel has a linear map.

use core::fmt;
use core::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use core::sync::atomic::{AtomicU8, AtomicU32, fence};

/// log2 of the base page size (4 KiB granule).
pub const PAGE_SHIFT: usize = 12;
/// The base page size.
pub const PAGE_SIZE: usize = 1 << PAGE_SHIFT;

/// A physical frame number: physical address >> PAGE_SHIFT.
pub type Pfn = usize;

/// `PFN_DOWN`: the frame that holds `phys`.
pub const fn phys_to_pfn(phys: usize) -> Pfn {
    phys >> PAGE_SHIFT
}

/// `PFN_PHYS`: the physical address of the first byte of `pfn`.
pub const fn pfn_to_phys(pfn: Pfn) -> usize {
    pfn << PAGE_SHIFT
}

/// Round `x` up to a multiple of `align` (a power of two).
pub const fn align_up(x: usize, align: usize) -> usize {
    (x + align - 1) & !(align - 1)
}

/// Round `x` down to a multiple of `align` (a power of two).
pub const fn align_down(x: usize, align: usize) -> usize {
    x & !(align - 1)
}

/// `MAX_ORDER`: the buddy allocator keeps blocks of orders `0..MAX_ORDER`,
/// i.e. up to 2^10 pages = 4 MiB with 4 KiB pages.
pub const MAX_ORDER: usize = 11;

/// `pageblock_order`: the unit whose migrate type is tracked. We use
/// `MAX_ORDER - 1` (Linux's choice without huge pages) so a free buddy block
/// never spans two pageblocks.
pub const PAGEBLOCK_ORDER: usize = MAX_ORDER - 1;
/// Pages per pageblock.
pub const PAGEBLOCK_NR_PAGES: usize = 1 << PAGEBLOCK_ORDER;

/// Page migrate types (《Linux内核深度解析》§3.7.3, grouping by mobility).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum MigrateType {
    /// Kernel memory in the linear map: cannot move.
    Unmovable = 0,
    /// User pages reached through page tables: can move.
    Movable = 1,
    /// Cannot move but can be reclaimed (caches).
    Reclaimable = 2,
}

/// `MIGRATE_TYPES` (and `MIGRATE_PCPTYPES`: all of ours have pcp lists).
pub const MIGRATE_TYPES: usize = 3;

impl MigrateType {
    /// All types, in index order.
    pub const ALL: [MigrateType; MIGRATE_TYPES] =
        [MigrateType::Unmovable, MigrateType::Movable, MigrateType::Reclaimable];

    /// `fallbacks[]` in mm/page_alloc.c: where to steal from when this type's
    /// own lists are empty, in order of preference.
    pub const fn fallbacks(self) -> [MigrateType; 2] {
        match self {
            MigrateType::Unmovable => [MigrateType::Reclaimable, MigrateType::Movable],
            MigrateType::Movable => [MigrateType::Reclaimable, MigrateType::Unmovable],
            MigrateType::Reclaimable => [MigrateType::Unmovable, MigrateType::Movable],
        }
    }

    /// The name /proc/pagetypeinfo uses.
    pub const fn name(self) -> &'static str {
        match self {
            MigrateType::Unmovable => "Unmovable",
            MigrateType::Movable => "Movable",
            MigrateType::Reclaimable => "Reclaimable",
        }
    }

    const fn from_u8(v: u8) -> MigrateType {
        match v {
            1 => MigrateType::Movable,
            2 => MigrateType::Reclaimable,
            _ => MigrateType::Unmovable,
        }
    }
}

/// Zone types, lowest first (LKD ch. 12, "Zones").
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum ZoneType {
    /// Memory below 4 GiB, reachable by 32-bit DMA masters.
    Dma32 = 0,
    /// Everything else.
    Normal = 1,
}

/// `MAX_NR_ZONES`.
pub const MAX_NR_ZONES: usize = 2;

impl ZoneType {
    /// All zone types, lowest first.
    pub const ALL: [ZoneType; MAX_NR_ZONES] = [ZoneType::Dma32, ZoneType::Normal];

    /// The name /proc/buddyinfo uses.
    pub const fn name(self) -> &'static str {
        match self {
            ZoneType::Dma32 => "DMA32",
            ZoneType::Normal => "Normal",
        }
    }

    /// Index into per-zone arrays.
    pub const fn idx(self) -> usize {
        self as usize
    }
}

/// `page->flags` bits (the subset we use).
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct PageFlags(pub u32);

impl PageFlags {
    /// Not managed by the buddy allocator (hole, kernel image, boot data).
    pub const PG_RESERVED: PageFlags = PageFlags(1 << 0);
    /// Head of a free buddy block (`PageBuddy`); `order` is valid.
    pub const PG_BUDDY: PageFlags = PageFlags(1 << 1);
    /// First page of a compound page; `order` is the compound order.
    pub const PG_HEAD: PageFlags = PageFlags(1 << 2);
    /// Any later page of a compound page; `compound_head` is valid.
    pub const PG_TAIL: PageFlags = PageFlags(1 << 3);
    /// Owned by the slab allocator.
    pub const PG_SLAB: PageFlags = PageFlags(1 << 4);
    /// On a per-CPU page list (not in Linux's flags; catches double frees).
    pub const PG_PCP: PageFlags = PageFlags(1 << 5);

    /// Whether all bits of `f` are set.
    pub const fn has(self, f: PageFlags) -> bool {
        self.0 & f.0 == f.0
    }
    /// Set the bits of `f`.
    pub fn set(&mut self, f: PageFlags) {
        self.0 |= f.0;
    }
    /// Clear the bits of `f`.
    pub fn clear(&mut self, f: PageFlags) {
        self.0 &= !f.0;
    }
}

impl fmt::Debug for PageFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [(PageFlags, &str); 6] = [
            (PageFlags::PG_RESERVED, "reserved"),
            (PageFlags::PG_BUDDY, "buddy"),
            (PageFlags::PG_HEAD, "head"),
            (PageFlags::PG_TAIL, "tail"),
            (PageFlags::PG_SLAB, "slab"),
            (PageFlags::PG_PCP, "pcp"),
        ];
        f.write_str("(")?;
        let mut first = true;
        for (flag, name) in NAMES {
            if self.has(flag) {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        f.write_str(")")
    }
}

/// "No page" in the index-based links.
pub(crate) const NIL: u32 = u32::MAX;

/// A page descriptor (`struct page`).
///
/// Links are indices into the node's `mem_map`, not pointers, so the array can
/// live anywhere (a host `Vec` in tests, memblock memory on the target).
///
/// Every field is an atomic read and written with `Relaxed` loads and
/// stores (plain `ldr`/`str` on arm64), so the mem_map can be shared by the
/// CPUs without one lock around it, as Linux's is: a page is changed only by
/// whoever owns it at the time (the zone lock for a free block on the buddy
/// lists, a CPU's pcp lock for a page on its per-CPU list, the caller for an
/// allocated page), and the locks order those changes. The one field that
/// several owners change at once is the reference count, changed with
/// atomic read-modify-write operations (`page_ref_inc`, `put_page_testzero`).
#[derive(Debug)]
pub struct Page {
    /// `page->flags`.
    flags: AtomicU32,
    /// `page->_refcount`: 0 while free, 1 after allocation, more when shared
    /// (copy-on-write after fork).
    refcount: AtomicU32,
    /// Buddy order while `PG_BUDDY`, compound order on a `PG_HEAD` page.
    order: AtomicU8,
    /// On the first page of a pageblock: the pageblock's migrate type
    /// (Linux keeps it in a bitmap beside the zone). Elsewhere: the type the
    /// page was allocated as.
    migratetype: AtomicU8,
    /// Which free list (migrate type) a free block or pcp page sits on.
    free_mt: AtomicU8,
    /// `page_zonenum()`.
    zone: AtomicU8,
    /// `page->lru` links (free lists and pcp lists).
    prev: AtomicU32,
    next: AtomicU32,
    /// For a tail page: the mem_map index of the head page.
    compound_head: AtomicU32,
}

impl Clone for Page {
    fn clone(&self) -> Page {
        Page {
            flags: AtomicU32::new(self.flags.load(Relaxed)),
            refcount: AtomicU32::new(self.refcount.load(Relaxed)),
            order: AtomicU8::new(self.order.load(Relaxed)),
            migratetype: AtomicU8::new(self.migratetype.load(Relaxed)),
            free_mt: AtomicU8::new(self.free_mt.load(Relaxed)),
            zone: AtomicU8::new(self.zone.load(Relaxed)),
            prev: AtomicU32::new(self.prev.load(Relaxed)),
            next: AtomicU32::new(self.next.load(Relaxed)),
            compound_head: AtomicU32::new(self.compound_head.load(Relaxed)),
        }
    }
}

impl Page {
    /// A descriptor for a page that is not (yet) managed: what
    /// `reserve_bootmem_region()` leaves behind.
    pub const fn reserved() -> Page {
        Page {
            flags: AtomicU32::new(PageFlags::PG_RESERVED.0),
            refcount: AtomicU32::new(1),
            order: AtomicU8::new(0),
            migratetype: AtomicU8::new(MigrateType::Movable as u8),
            free_mt: AtomicU8::new(0),
            zone: AtomicU8::new(0),
            prev: AtomicU32::new(NIL),
            next: AtomicU32::new(NIL),
            compound_head: AtomicU32::new(NIL),
        }
    }

    /// Make the descriptor [`Self::reserved`] again (`memmap_init`).
    pub(crate) fn set_reserved(&self) {
        let r = Page::reserved();
        self.flags.store(r.flags.into_inner(), Relaxed);
        self.refcount.store(r.refcount.into_inner(), Relaxed);
        self.order.store(r.order.into_inner(), Relaxed);
        self.migratetype.store(r.migratetype.into_inner(), Relaxed);
        self.free_mt.store(r.free_mt.into_inner(), Relaxed);
        self.zone.store(r.zone.into_inner(), Relaxed);
        self.prev.store(NIL, Relaxed);
        self.next.store(NIL, Relaxed);
        self.compound_head.store(NIL, Relaxed);
    }

    /// `page->flags`.
    pub fn flags(&self) -> PageFlags {
        PageFlags(self.flags.load(Relaxed))
    }

    /// `__SetPageX()`: set flag bits; the caller owns the page.
    pub(crate) fn set_flags(&self, f: PageFlags) {
        self.flags.store(self.flags.load(Relaxed) | f.0, Relaxed);
    }

    /// `__ClearPageX()`: clear flag bits; the caller owns the page.
    pub(crate) fn clear_flags(&self, f: PageFlags) {
        self.flags.store(self.flags.load(Relaxed) & !f.0, Relaxed);
    }

    /// `page_count()`.
    pub fn count(&self) -> u32 {
        self.refcount.load(Relaxed)
    }

    /// `set_page_count()`: the caller owns the page.
    pub(crate) fn set_count(&self, n: u32) {
        self.refcount.store(n, Relaxed);
    }

    /// `page_ref_inc()`; returns the count before.
    pub(crate) fn ref_inc(&self) -> u32 {
        self.refcount.fetch_add(1, Relaxed)
    }

    /// `page_ref_dec_return()`: drop a reference, returning the count
    /// before. Release, and Acquire when it was the last, as Linux's
    /// `put_page_testzero()`: whoever frees the page sees every write the
    /// other holders made before they let go.
    pub(crate) fn ref_dec(&self) -> u32 {
        let old = self.refcount.fetch_sub(1, Release);
        if old == 1 {
            fence(Acquire);
        }
        old
    }

    /// `PageBuddy()`.
    pub fn is_buddy(&self) -> bool {
        self.flags().has(PageFlags::PG_BUDDY)
    }

    /// `PageReserved()`.
    pub fn is_reserved(&self) -> bool {
        self.flags().has(PageFlags::PG_RESERVED)
    }

    /// `PageHead()`.
    pub fn is_head(&self) -> bool {
        self.flags().has(PageFlags::PG_HEAD)
    }

    /// `PageTail()`.
    pub fn is_tail(&self) -> bool {
        self.flags().has(PageFlags::PG_TAIL)
    }

    /// `PageSlab()`.
    pub fn is_slab(&self) -> bool {
        self.flags().has(PageFlags::PG_SLAB)
    }

    /// The zone this page belongs to.
    pub fn zone(&self) -> ZoneType {
        if self.zone.load(Relaxed) == ZoneType::Normal as u8 { ZoneType::Normal } else { ZoneType::Dma32 }
    }

    /// `set_page_zone()`: at `memmap_init` time.
    pub(crate) fn set_zone(&self, zone: ZoneType) {
        self.zone.store(zone as u8, Relaxed);
    }

    /// The buddy or compound order (meaningful on free heads and compound heads).
    pub fn order(&self) -> usize {
        self.order.load(Relaxed) as usize
    }

    pub(crate) fn set_order(&self, order: usize) {
        self.order.store(order as u8, Relaxed);
    }

    pub(crate) fn free_mt(&self) -> MigrateType {
        MigrateType::from_u8(self.free_mt.load(Relaxed))
    }

    pub(crate) fn set_free_mt(&self, mt: MigrateType) {
        self.free_mt.store(mt as u8, Relaxed);
    }

    pub(crate) fn mt(&self) -> MigrateType {
        MigrateType::from_u8(self.migratetype.load(Relaxed))
    }

    pub(crate) fn set_mt(&self, mt: MigrateType) {
        self.migratetype.store(mt as u8, Relaxed);
    }

    pub(crate) fn prev(&self) -> u32 {
        self.prev.load(Relaxed)
    }

    pub(crate) fn next(&self) -> u32 {
        self.next.load(Relaxed)
    }

    pub(crate) fn set_prev(&self, idx: u32) {
        self.prev.store(idx, Relaxed);
    }

    pub(crate) fn set_next(&self, idx: u32) {
        self.next.store(idx, Relaxed);
    }

    pub(crate) fn compound_head_idx(&self) -> u32 {
        self.compound_head.load(Relaxed)
    }

    pub(crate) fn set_compound_head(&self, idx: u32) {
        self.compound_head.store(idx, Relaxed);
    }
}

/// Write [`Page::reserved`] into every slot of a freshly allocated mem_map and
/// return it as initialised descriptors.
///
/// The arch glue allocates the array with memblock; this is the safe
/// half of `memmap_init()`.
// A named exception to the crate's `deny(unsafe_code)`: turning the
// initialised `MaybeUninit` slice into a `&mut [Page]` needs `unsafe` on
// stable Rust (`<[MaybeUninit<T>]>::write_filled` is unstable); sound as
// the SAFETY note below says.
#[allow(unsafe_code)]
pub fn mem_map_init(uninit: &mut [core::mem::MaybeUninit<Page>]) -> &mut [Page] {
    for slot in uninit.iter_mut() {
        slot.write(Page::reserved());
    }
    let len = uninit.len();
    let ptr = uninit.as_mut_ptr().cast::<Page>();
    // SAFETY: every element was initialised by the loop above, MaybeUninit<Page>
    // has the same layout as Page, and the returned borrow takes over the
    // unique borrow of `uninit`.
    unsafe { core::slice::from_raw_parts_mut(ptr, len) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::MaybeUninit;

    #[test]
    fn pfn_conversions_and_alignment() {
        assert_eq!(phys_to_pfn(0x4000_1fff), 0x40001);
        assert_eq!(pfn_to_phys(0x40001), 0x4000_1000);
        assert_eq!(align_up(4097, 4096), 8192);
        assert_eq!(align_down(8191, 4096), 4096);
    }

    #[test]
    fn fallback_table_matches_linux() {
        use MigrateType::*;
        assert_eq!(Unmovable.fallbacks(), [Reclaimable, Movable]);
        assert_eq!(Movable.fallbacks(), [Reclaimable, Unmovable]);
        assert_eq!(Reclaimable.fallbacks(), [Unmovable, Movable]);
    }

    #[test]
    fn mem_map_init_reserves_everything() {
        let mut raw = [const { MaybeUninit::<Page>::uninit() }; 4];
        let map = mem_map_init(&mut raw);
        assert!(map.iter().all(|p| p.is_reserved() && p.count() == 1));
        assert_eq!(alloc::format!("{:?}", map[0].flags()), "(reserved)");
    }
}
