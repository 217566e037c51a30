//! vmalloc: virtually contiguous, physically scattered memory.
//!
//! LKD ch. 12, "vmalloc()"; 《Linux内核深度解析》§3.9 (不连续页分配器):
//! find a free range in the vmalloc area (`get_vm_area`, with a guard page
//! after each area), allocate pages one by one, map them in the kernel page
//! table; `vfree` unmaps and frees them. The `vmap_area` tree is a BTreeMap
//! keyed by start address.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use super::Errno;
use super::gfp::Gfp;
use super::page::{PAGE_SIZE, Pfn, align_up};

/// What vmalloc needs from the page allocator and the kernel page table.
pub trait VmallocBackend {
    /// One page (`alloc_page`).
    fn alloc_page(&mut self, gfp: Gfp) -> Option<Pfn>;
    /// Give a page back.
    fn free_page(&mut self, pfn: Pfn);
    /// Map `va` to `pfn`, kernel read/write, non-executable.
    fn map_page(&mut self, va: usize, pfn: Pfn) -> Result<(), Errno>;
    /// Unmap `[va, va + size)` and flush the TLB for it.
    fn unmap_range(&mut self, va: usize, size: usize);
}

/// `struct vm_struct`: one allocated area.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmStruct {
    /// First address.
    pub addr: usize,
    /// Bytes, including the trailing guard page.
    pub size: usize,
    /// The frames behind it, in address order.
    pub pages: Vec<Pfn>,
}

/// The vmalloc address range and its areas.
#[derive(Debug)]
pub struct Vmalloc {
    start: usize,
    end: usize,
    areas: BTreeMap<usize, VmStruct>,
}

impl Vmalloc {
    /// Manage `[start, end)` (`VMALLOC_START`..`VMALLOC_END`).
    pub fn new(start: usize, end: usize) -> Self {
        Vmalloc { start, end, areas: BTreeMap::new() }
    }

    /// `get_vm_area()`: the lowest free range of `size` bytes plus a guard page.
    fn get_vm_area(&self, size: usize) -> Option<usize> {
        let need = size.checked_add(PAGE_SIZE)?;
        let mut cursor = self.start;
        for a in self.areas.values() {
            if a.addr - cursor >= need {
                return Some(cursor);
            }
            cursor = a.addr + a.size;
        }
        (self.end.checked_sub(cursor)? >= need).then_some(cursor)
    }

    /// `vmalloc()`: `size` bytes (rounded up to pages) of mapped memory.
    pub fn vmalloc<B: VmallocBackend>(&mut self, b: &mut B, size: usize, gfp: Gfp) -> Option<usize> {
        if size == 0 {
            return None;
        }
        let size = align_up(size, PAGE_SIZE);
        let addr = self.get_vm_area(size)?;
        let mut pages = Vec::with_capacity(size / PAGE_SIZE);
        for i in 0..size / PAGE_SIZE {
            let ok = b.alloc_page(gfp).and_then(|pfn| {
                pages.push(pfn);
                b.map_page(addr + i * PAGE_SIZE, pfn).ok()
            });
            if ok.is_none() {
                // __vmalloc_area_node failure: undo everything.
                b.unmap_range(addr, i * PAGE_SIZE);
                for pfn in pages {
                    b.free_page(pfn);
                }
                return None;
            }
        }
        self.areas.insert(addr, VmStruct { addr, size: size + PAGE_SIZE, pages });
        Some(addr)
    }

    /// `vfree()`: unmap and free an area from [`Self::vmalloc`].
    pub fn vfree<B: VmallocBackend>(&mut self, b: &mut B, addr: usize) -> Result<(), &'static str> {
        let area = self.areas.remove(&addr).ok_or("vfree: not the start of a vmalloc area")?;
        b.unmap_range(area.addr, area.size - PAGE_SIZE);
        for pfn in area.pages {
            b.free_page(pfn);
        }
        Ok(())
    }

    /// `find_vm_area()`: the area containing `addr` (guard page excluded).
    pub fn find_vm_area(&self, addr: usize) -> Option<&VmStruct> {
        let (_, a) = self.areas.range(..=addr).next_back()?;
        (addr < a.addr + a.size - PAGE_SIZE).then_some(a)
    }

    /// `vmalloc_to_pfn()`.
    pub fn vmalloc_to_pfn(&self, addr: usize) -> Option<Pfn> {
        let a = self.find_vm_area(addr)?;
        Some(a.pages[(addr - a.addr) / PAGE_SIZE])
    }

    /// Areas in address order (/proc/vmallocinfo).
    pub fn areas(&self) -> impl Iterator<Item = &VmStruct> {
        self.areas.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeSet;

    #[derive(Default)]
    struct Fake {
        next: Pfn,
        free: Vec<Pfn>,
        mapped: BTreeMap<usize, Pfn>,
        limit: usize,
    }

    impl VmallocBackend for Fake {
        fn alloc_page(&mut self, _gfp: Gfp) -> Option<Pfn> {
            if self.limit == 0 {
                return None;
            }
            self.limit -= 1;
            // Scattered frames: every third one.
            self.next += 3;
            Some(self.next)
        }
        fn free_page(&mut self, pfn: Pfn) {
            self.free.push(pfn);
        }
        fn map_page(&mut self, va: usize, pfn: Pfn) -> Result<(), Errno> {
            assert!(self.mapped.insert(va, pfn).is_none(), "double map");
            Ok(())
        }
        fn unmap_range(&mut self, va: usize, size: usize) {
            let keys: Vec<_> = self.mapped.range(va..va + size).map(|(k, _)| *k).collect();
            for k in keys {
                self.mapped.remove(&k);
            }
        }
    }

    #[test]
    fn vmalloc_maps_scattered_pages_with_guard_gaps() {
        let base = 0xffff_8000_0000_0000;
        let mut v = Vmalloc::new(base, base + 64 * PAGE_SIZE);
        let mut b = Fake { limit: 1000, ..Fake::default() };
        let a = v.vmalloc(&mut b, 3 * PAGE_SIZE - 5, Gfp::GFP_KERNEL).unwrap();
        let c = v.vmalloc(&mut b, PAGE_SIZE, Gfp::GFP_KERNEL).unwrap();
        assert_eq!(a, base);
        assert_eq!(c, base + 4 * PAGE_SIZE, "one guard page between areas");
        assert_eq!(b.mapped.len(), 4);
        assert_eq!(v.vmalloc_to_pfn(a + PAGE_SIZE + 12), Some(6));
        assert!(v.find_vm_area(a + 3 * PAGE_SIZE).is_none(), "guard page is not part of the area");
        v.vfree(&mut b, a).unwrap();
        assert_eq!(b.free.iter().copied().collect::<BTreeSet<_>>(), [3, 6, 9].into());
        assert_eq!(v.vmalloc(&mut b, 2 * PAGE_SIZE, Gfp::GFP_KERNEL), Some(base), "hole reused");
        assert!(v.vfree(&mut b, c + PAGE_SIZE).is_err());
        assert!(v.vmalloc(&mut b, 64 * PAGE_SIZE, Gfp::GFP_KERNEL).is_none(), "area full");
    }

    #[test]
    fn vmalloc_failure_undoes_partial_work() {
        let mut v = Vmalloc::new(0x1000_0000, 0x2000_0000);
        let mut b = Fake { limit: 2, ..Fake::default() };
        assert!(v.vmalloc(&mut b, 4 * PAGE_SIZE, Gfp::GFP_KERNEL).is_none());
        assert!(b.mapped.is_empty());
        assert_eq!(b.free.len(), 2);
        assert_eq!(v.areas().count(), 0);
    }
}
