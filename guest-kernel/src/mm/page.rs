//! `struct page`: one descriptor per physical page frame (the `mem_map` array).
//!
//! LKD ch. 12, "Pages"; 《Linux内核深度解析》§3.5.3 (node, zone, page).
//! The descriptor also carries the buddy allocator's free-list links, so the
//! allocator never writes into the free memory itself: it runs unchanged on
//! the host in tests and before the kernel has a linear map.

use core::fmt;

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
#[derive(Clone, Copy, Debug)]
pub struct Page {
    /// `page->flags`.
    pub flags: PageFlags,
    /// `page->_refcount`: 0 while free, 1 after allocation, more when shared
    /// (copy-on-write after fork).
    pub(crate) refcount: u32,
    /// Buddy order while `PG_BUDDY`, compound order on a `PG_HEAD` page.
    pub(crate) order: u8,
    /// On the first page of a pageblock: the pageblock's migrate type
    /// (Linux keeps it in a bitmap beside the zone). Elsewhere: the type the
    /// page was allocated as.
    pub(crate) migratetype: u8,
    /// Which free list (migrate type) a free block or pcp page sits on.
    pub(crate) free_mt: u8,
    /// `page_zonenum()`.
    pub(crate) zone: u8,
    /// `page->lru` links (free lists and pcp lists).
    pub(crate) prev: u32,
    pub(crate) next: u32,
    /// For a tail page: the mem_map index of the head page.
    pub(crate) compound_head: u32,
}

impl Page {
    /// A descriptor for a page that is not (yet) managed: what
    /// `reserve_bootmem_region()` leaves behind.
    pub const RESERVED: Page = Page {
        flags: PageFlags::PG_RESERVED,
        refcount: 1,
        order: 0,
        migratetype: MigrateType::Movable as u8,
        free_mt: 0,
        zone: 0,
        prev: NIL,
        next: NIL,
        compound_head: NIL,
    };

    /// `page_count()`.
    pub fn count(&self) -> u32 {
        self.refcount
    }

    /// `PageBuddy()`.
    pub fn is_buddy(&self) -> bool {
        self.flags.has(PageFlags::PG_BUDDY)
    }

    /// `PageReserved()`.
    pub fn is_reserved(&self) -> bool {
        self.flags.has(PageFlags::PG_RESERVED)
    }

    /// `PageHead()`.
    pub fn is_head(&self) -> bool {
        self.flags.has(PageFlags::PG_HEAD)
    }

    /// `PageTail()`.
    pub fn is_tail(&self) -> bool {
        self.flags.has(PageFlags::PG_TAIL)
    }

    /// `PageSlab()`.
    pub fn is_slab(&self) -> bool {
        self.flags.has(PageFlags::PG_SLAB)
    }

    /// The zone this page belongs to.
    pub fn zone(&self) -> ZoneType {
        if self.zone == ZoneType::Normal as u8 { ZoneType::Normal } else { ZoneType::Dma32 }
    }

    /// The buddy or compound order (meaningful on free heads and compound heads).
    pub fn order(&self) -> usize {
        self.order as usize
    }

    pub(crate) fn free_mt(&self) -> MigrateType {
        MigrateType::from_u8(self.free_mt)
    }

    pub(crate) fn mt(&self) -> MigrateType {
        MigrateType::from_u8(self.migratetype)
    }
}

/// Write [`Page::RESERVED`] into every slot of a freshly allocated mem_map and
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
        slot.write(Page::RESERVED);
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
        let mut raw = [MaybeUninit::<Page>::uninit(); 4];
        let map = mem_map_init(&mut raw);
        assert!(map.iter().all(|p| p.is_reserved() && p.count() == 1));
        assert_eq!(alloc::format!("{:?}", map[0].flags), "(reserved)");
    }
}
