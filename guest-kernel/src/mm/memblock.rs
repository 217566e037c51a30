//! memblock: the boot-time memory allocator.
//!
//! 《Linux内核深度解析》§3.6 (引导内存分配器): the kernel learns its RAM from
//! the DTB's /memory nodes, reserves what is already in use (kernel image,
//! DTB, initrd, /memreserve/), allocates early data top-down, and finally
//! hands every free page to the buddy allocator and is retired.
//!
//! Both region lists have a fixed capacity so memblock works before any heap
//! exists; regions are kept sorted, non-overlapping and merged.

use heapless::Vec;

use super::page::{PAGE_SIZE, Pfn, align_down, align_up, phys_to_pfn};
use super::zone::{PageAllocator, PhysMem};

/// Regions per list (`INIT_MEMBLOCK_REGIONS`).
pub const INIT_MEMBLOCK_REGIONS: usize = 128;

/// `struct memblock_region`: `[base, base + size)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemblockRegion {
    /// First byte.
    pub base: usize,
    /// Length in bytes.
    pub size: usize,
}

impl MemblockRegion {
    /// One past the last byte.
    pub fn end(&self) -> usize {
        self.base + self.size
    }
}

/// Why a memblock call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemblockError {
    /// The region list is full (`memblock_double_array` is not supported).
    TooManyRegions,
    /// The range wraps around the address space.
    BadRange,
    /// memblock has already handed its memory to the page allocator.
    Retired,
}

/// `struct memblock_type`: a sorted list of disjoint regions.
#[derive(Clone, Debug, Default)]
pub struct MemblockType {
    regions: Vec<MemblockRegion, INIT_MEMBLOCK_REGIONS>,
}

impl MemblockType {
    /// The regions, sorted by base.
    pub fn regions(&self) -> &[MemblockRegion] {
        &self.regions
    }

    /// Total bytes.
    pub fn total_size(&self) -> usize {
        self.regions.iter().map(|r| r.size).sum()
    }

    /// `memblock_add_range()`: insert and merge with overlapping or adjacent
    /// regions.
    fn add_range(&mut self, base: usize, size: usize) -> Result<(), MemblockError> {
        if size == 0 {
            return Ok(());
        }
        let mut end = base.checked_add(size).ok_or(MemblockError::BadRange)?;
        let mut start = base;
        // Absorb every region that touches [start, end).
        let mut i = 0;
        while i < self.regions.len() {
            let r = self.regions[i];
            if r.end() >= start && r.base <= end {
                start = start.min(r.base);
                end = end.max(r.end());
                self.regions.remove(i);
            } else {
                i += 1;
            }
        }
        let pos = self.regions.iter().position(|r| r.base > start).unwrap_or(self.regions.len());
        self.regions
            .insert(pos, MemblockRegion { base: start, size: end - start })
            .map_err(|_| MemblockError::TooManyRegions)
    }

    /// `memblock_remove_range()`: cut `[base, base + size)` out, splitting a
    /// region when the hole falls inside it.
    fn remove_range(&mut self, base: usize, size: usize) -> Result<(), MemblockError> {
        let end = base.checked_add(size).ok_or(MemblockError::BadRange)?;
        let mut i = 0;
        while i < self.regions.len() {
            let r = self.regions[i];
            if r.end() <= base || r.base >= end {
                i += 1;
                continue;
            }
            self.regions.remove(i);
            if r.base < base {
                self.regions
                    .insert(i, MemblockRegion { base: r.base, size: base - r.base })
                    .map_err(|_| MemblockError::TooManyRegions)?;
                i += 1;
            }
            if r.end() > end {
                self.regions
                    .insert(i, MemblockRegion { base: end, size: r.end() - end })
                    .map_err(|_| MemblockError::TooManyRegions)?;
                i += 1;
            }
        }
        Ok(())
    }

    /// Whether any region overlaps `[base, end)`.
    pub fn overlaps(&self, base: usize, end: usize) -> bool {
        self.regions.iter().any(|r| r.base < end && base < r.end())
    }
}

/// `struct memblock`.
#[derive(Clone, Debug, Default)]
pub struct Memblock {
    /// RAM (`memblock.memory`).
    pub memory: MemblockType,
    /// In use (`memblock.reserved`).
    pub reserved: MemblockType,
    /// Allocations stay below this address (`memblock.current_limit`).
    pub current_limit: Option<usize>,
    retired: bool,
}

impl Memblock {
    /// An empty memblock.
    pub fn new() -> Self {
        Self::default()
    }

    fn check_live(&self) -> Result<(), MemblockError> {
        if self.retired { Err(MemblockError::Retired) } else { Ok(()) }
    }

    /// `memblock_add()`: a /memory range from the DTB.
    pub fn add(&mut self, base: usize, size: usize) -> Result<(), MemblockError> {
        self.check_live()?;
        self.memory.add_range(base, size)
    }

    /// `memblock_remove()`: take a range out of RAM (e.g. no-map regions).
    pub fn remove(&mut self, base: usize, size: usize) -> Result<(), MemblockError> {
        self.check_live()?;
        self.memory.remove_range(base, size)
    }

    /// `memblock_reserve()`: the kernel image, DTB, initrd, /memreserve/.
    pub fn reserve(&mut self, base: usize, size: usize) -> Result<(), MemblockError> {
        self.check_live()?;
        self.reserved.add_range(base, size)
    }

    /// `memblock_free()` / `memblock_phys_free()`: give an early allocation back.
    pub fn free(&mut self, base: usize, size: usize) -> Result<(), MemblockError> {
        self.check_live()?;
        self.reserved.remove_range(base, size)
    }

    /// `memblock_phys_mem_size()`.
    pub fn phys_mem_size(&self) -> usize {
        self.memory.total_size()
    }

    /// `memblock_start_of_DRAM()`.
    pub fn start_of_dram(&self) -> Option<usize> {
        self.memory.regions().first().map(|r| r.base)
    }

    /// `memblock_end_of_DRAM()`.
    pub fn end_of_dram(&self) -> Option<usize> {
        self.memory.regions().last().map(MemblockRegion::end)
    }

    /// The frame range the mem_map must describe (`[min_low_pfn, max_pfn)`).
    pub fn pfn_range(&self) -> Option<(Pfn, Pfn)> {
        Some((phys_to_pfn(self.start_of_dram()?), phys_to_pfn(align_up(self.end_of_dram()?, PAGE_SIZE))))
    }

    /// `for_each_free_mem_range()`: RAM minus reserved, in ascending order.
    pub fn free_ranges(&self) -> FreeRanges<'_> {
        FreeRanges { mb: self, mem_idx: 0, cursor: 0 }
    }

    /// `memblock_phys_alloc()` (`memblock_find_in_range` top-down): the
    /// highest `align`-aligned free range of `size` bytes below the limit; it
    /// is reserved before returning.
    pub fn alloc(&mut self, size: usize, align: usize) -> Option<usize> {
        if self.retired || size == 0 || !align.is_power_of_two() {
            return None;
        }
        let limit = self.current_limit.unwrap_or(usize::MAX);
        let mut best = None;
        for (start, end) in self.free_ranges() {
            let end = end.min(limit);
            if end < size || end <= start {
                continue;
            }
            let cand = align_down(end - size, align);
            if cand >= start {
                best = Some(best.map_or(cand, |b: usize| b.max(cand)));
            }
        }
        let base = best?;
        self.reserve(base, size).ok()?;
        Some(base)
    }

    /// `memblock_free_all()`: hand every whole free page to the buddy
    /// allocator, compute the watermarks, and retire memblock. Returns the
    /// number of pages released.
    pub fn free_all<M: PhysMem>(&mut self, pa: &mut PageAllocator<'_, M>) -> usize {
        let mut pages = 0;
        for (start, end) in self.free_ranges() {
            let (s, e) = (phys_to_pfn(align_up(start, PAGE_SIZE)), phys_to_pfn(align_down(end, PAGE_SIZE)));
            if s < e {
                pa.free_range(s, e);
                pages += e - s;
            }
        }
        pa.init_per_zone_wmark_min();
        self.retired = true;
        pages
    }

    /// Whether [`Self::free_all`] has run.
    pub fn is_retired(&self) -> bool {
        self.retired
    }
}

/// Iterator over `[start, end)` byte ranges of free memory.
pub struct FreeRanges<'a> {
    mb: &'a Memblock,
    mem_idx: usize,
    cursor: usize,
}

impl Iterator for FreeRanges<'_> {
    type Item = (usize, usize);

    fn next(&mut self) -> Option<(usize, usize)> {
        let mem = self.mb.memory.regions();
        while self.mem_idx < mem.len() {
            let r = mem[self.mem_idx];
            let mut start = self.cursor.max(r.base);
            if start >= r.end() {
                self.mem_idx += 1;
                continue;
            }
            // Skip reserved regions that cover `start`.
            let mut moved = true;
            while moved {
                moved = false;
                for res in self.mb.reserved.regions() {
                    if res.base <= start && start < res.end() {
                        start = res.end();
                        moved = true;
                    }
                }
            }
            if start >= r.end() {
                self.mem_idx += 1;
                self.cursor = start;
                continue;
            }
            let end = self
                .mb
                .reserved
                .regions()
                .iter()
                .map(|res| res.base)
                .filter(|&b| b > start)
                .min()
                .unwrap_or(usize::MAX)
                .min(r.end());
            self.cursor = end;
            return Some((start, end));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mm::zone::ZoneLimits;
    use crate::mm::zone::tests::{FakeMem, XorShift};
    use alloc::vec;
    use alloc::vec::Vec as StdVec;

    const MB: usize = 1 << 20;

    #[test]
    fn add_merges_and_remove_splits() {
        let mut mb = Memblock::new();
        mb.add(0x4000_0000, 64 * MB).unwrap();
        mb.add(0x4000_0000 + 64 * MB, 64 * MB).unwrap();
        mb.add(0x4000_0000 + 32 * MB, MB).unwrap();
        assert_eq!(mb.memory.regions(), &[MemblockRegion { base: 0x4000_0000, size: 128 * MB }]);
        mb.remove(0x4000_0000 + MB, MB).unwrap();
        assert_eq!(mb.memory.regions().len(), 2);
        assert_eq!(mb.phys_mem_size(), 127 * MB);
        assert_eq!(mb.pfn_range(), Some((0x40000, 0x40000 + 128 * 256)));
    }

    #[test]
    fn free_ranges_skip_reserved() {
        let mut mb = Memblock::new();
        mb.add(0x1000, 0x9000).unwrap(); // [0x1000, 0xa000)
        mb.add(0x20000, 0x1000).unwrap();
        mb.reserve(0x2000, 0x1000).unwrap(); // kernel
        mb.reserve(0x2800, 0x1000).unwrap(); // overlapping DTB -> merged
        mb.reserve(0x9000, 0x2000).unwrap(); // initrd beyond the end of RAM
        let free: StdVec<_> = mb.free_ranges().collect();
        assert_eq!(free, vec![(0x1000, 0x2000), (0x3800, 0x9000), (0x20000, 0x21000)]);
    }

    #[test]
    fn alloc_is_top_down_aligned_and_reserves() {
        let mut mb = Memblock::new();
        mb.add(0x10_0000, 0x10_0000).unwrap();
        mb.reserve(0x1f_f000, 0x1000).unwrap();
        let a = mb.alloc(0x3000, 0x4000).unwrap();
        assert_eq!(a, 0x1f_c000);
        let b = mb.alloc(0x100, 8).unwrap();
        assert_eq!(b, 0x1f_bf00);
        mb.current_limit = Some(0x18_0000);
        assert_eq!(mb.alloc(0x1000, 0x1000), Some(0x17_f000));
        assert!(mb.alloc(0x20_0000, 0x1000).is_none());
        mb.free(b, 0x100).unwrap();
        assert!(!mb.reserved.overlaps(b, b + 0x100));
    }

    #[test]
    fn randomized_alloc_never_overlaps() {
        let mut rng = XorShift(99);
        let mut mb = Memblock::new();
        mb.add(0x4000_0000, 8 * MB).unwrap();
        mb.reserve(0x4020_0000, 3 * MB).unwrap();
        let mut got: StdVec<(usize, usize)> = StdVec::new();
        for _ in 0..100 {
            let size = 1 + rng.below(64 * 1024) as usize;
            let align = 1 << rng.below(14);
            let Some(a) = mb.alloc(size, align) else {
                break;
            };
            assert_eq!(a % align, 0);
            assert!(!(0x4020_0000..0x4050_0000).contains(&a));
            assert!(got.iter().all(|&(b, s)| a + size <= b || b + s <= a));
            got.push((a, size));
        }
        assert_eq!(mb.reserved.total_size(), 3 * MB + got.iter().map(|g| g.1).sum::<usize>());
    }

    #[test]
    fn free_all_hands_over_and_retires() {
        let mut mb = Memblock::new();
        let base = 0x4000_0000;
        mb.add(base, 16 * MB).unwrap();
        mb.reserve(base, 2 * MB + 100).unwrap(); // kernel image (partial page)
        mb.reserve(base + 8 * MB, 0x1000).unwrap(); // DTB
        let (s, e) = mb.pfn_range().unwrap();
        let map_bytes = (e - s) * core::mem::size_of::<crate::mm::page::Page>();
        let map_pa = mb.alloc(map_bytes, PAGE_SIZE).unwrap();
        let mem_map = vec![crate::mm::page::Page::reserved(); e - s].leak();
        let mut pa = PageAllocator::free_area_init(mem_map, s, ZoneLimits::ARM64, FakeMem::default());
        let released = mb.free_all(&mut pa);
        let map_pages = align_up(map_bytes, PAGE_SIZE) / PAGE_SIZE;
        assert_eq!(released, 4096 - 513 - 1 - map_pages);
        assert_eq!(pa.totalram_pages(), released);
        assert!(pa.map.page(phys_to_pfn(map_pa)).is_reserved());
        assert!(pa.map.page(s + 512).is_reserved(), "partial kernel page stays reserved");
        assert!(!pa.map.page(s + 513).is_reserved());
        assert!(pa.zones[0].wmark_pages(crate::mm::zone::Wmark::Min) > 0);
        assert!(mb.is_retired());
        assert_eq!(mb.alloc(4096, 4096), None);
        assert_eq!(mb.add(0, 4096), Err(MemblockError::Retired));
    }
}
