//! The physical frame allocator: the RAM the DTB reports, minus the
//! hypervisor image, the DTB, reserved regions and the VM images the boot
//! loader placed, handed out in page-aligned runs.
//!
//! VMs get their RAM as one contiguous run so that stage-2 can use 2 MiB
//! blocks; the allocator is first-fit over a short, sorted list of free
//! ranges, which stays small because allocations are few and large.

use shared::platform::Region;

/// Granule of the allocator.
pub const PAGE_SIZE: u64 = 4096;
/// Most disjoint free ranges tracked.
const MAX_RANGES: usize = 64;

/// Why an allocation or a reservation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// No free run of the requested size and alignment; the largest free run is given.
    OutOfMemory { requested: u64, largest_free: u64 },
    /// Size zero, or alignment not a power of two of at least a page.
    BadRequest,
    /// The free list is full (too fragmented).
    TooFragmented,
}

impl core::fmt::Display for FrameError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::OutOfMemory { requested, largest_free } => {
                write!(
                    f,
                    "out of memory: asked for {}, largest free run is {}",
                    crate::vmspec::Size(*requested),
                    crate::vmspec::Size(*largest_free)
                )
            }
            Self::BadRequest => write!(f, "bad allocation request (zero size or bad alignment)"),
            Self::TooFragmented => write!(f, "physical memory too fragmented"),
        }
    }
}

/// Free physical memory as sorted, disjoint, non-adjacent ranges.
#[derive(Clone, Debug, Default)]
pub struct FrameAllocator {
    free: heapless::Vec<Region, MAX_RANGES>,
}

const fn align_up(x: u64, a: u64) -> u64 {
    (x + a - 1) & !(a - 1)
}

const fn align_down(x: u64, a: u64) -> u64 {
    x & !(a - 1)
}

impl FrameAllocator {
    /// An allocator with nothing free.
    pub const fn new() -> Self {
        Self { free: heapless::Vec::new() }
    }

    /// Adds RAM (trimmed inward to page boundaries), merging with neighbours.
    pub fn add(&mut self, r: Region) -> Result<(), FrameError> {
        let base = align_up(r.base, PAGE_SIZE);
        let end = align_down(r.end(), PAGE_SIZE);
        if end <= base {
            return Ok(());
        }
        self.insert(Region { base, size: end - base })
    }

    fn insert(&mut self, r: Region) -> Result<(), FrameError> {
        let pos = self.free.iter().position(|f| f.base > r.base).unwrap_or(self.free.len());
        self.free.insert(pos, r).map_err(|_| FrameError::TooFragmented)?;
        // Merge with the next and previous ranges where they touch or overlap.
        let mut i = pos.saturating_sub(1);
        while i + 1 < self.free.len() {
            let (a, b) = (self.free[i], self.free[i + 1]);
            if a.end() >= b.base {
                self.free[i].size = a.end().max(b.end()) - a.base;
                self.free.remove(i + 1);
            } else if i > pos {
                break;
            } else {
                i += 1;
            }
        }
        Ok(())
    }

    /// Removes `r` (widened to page boundaries) from the free memory, wherever it overlaps.
    pub fn reserve(&mut self, r: Region) -> Result<(), FrameError> {
        let base = align_down(r.base, PAGE_SIZE);
        let end = align_up(r.end(), PAGE_SIZE);
        let mut i = 0;
        while i < self.free.len() {
            let f = self.free[i];
            if f.end() <= base || f.base >= end {
                i += 1;
                continue;
            }
            self.free.remove(i);
            if f.base < base {
                self.free
                    .insert(i, Region { base: f.base, size: base - f.base })
                    .map_err(|_| FrameError::TooFragmented)?;
                i += 1;
            }
            if f.end() > end {
                self.free
                    .insert(i, Region { base: end, size: f.end() - end })
                    .map_err(|_| FrameError::TooFragmented)?;
                i += 1;
            }
        }
        Ok(())
    }

    /// Allocates `size` bytes (rounded up to pages) aligned to `align`.
    pub fn alloc(&mut self, size: u64, align: u64) -> Result<u64, FrameError> {
        if size == 0 || !align.is_power_of_two() || align < PAGE_SIZE {
            return Err(FrameError::BadRequest);
        }
        let size = align_up(size, PAGE_SIZE);
        for f in self.free.iter() {
            let base = align_up(f.base, align);
            if base >= f.base && base.checked_add(size).is_some_and(|e| e <= f.end()) {
                self.reserve(Region { base, size })?;
                return Ok(base);
            }
        }
        Err(FrameError::OutOfMemory { requested: size, largest_free: self.largest_free() })
    }

    /// Returns a run previously returned by [`alloc`](Self::alloc).
    pub fn free(&mut self, base: u64, size: u64) -> Result<(), FrameError> {
        self.insert(Region { base, size: align_up(size, PAGE_SIZE) })
    }

    /// Total free bytes.
    pub fn free_bytes(&self) -> u64 {
        self.free.iter().map(|r| r.size).sum()
    }

    /// The largest free run.
    pub fn largest_free(&self) -> u64 {
        self.free.iter().map(|r| r.size).max().unwrap_or(0)
    }

    /// The free ranges, sorted.
    pub fn ranges(&self) -> &[Region] {
        &self.free
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(base: u64, size: u64) -> Region {
        Region { base, size }
    }

    #[test]
    fn reserve_splits_and_alloc_respects_alignment() {
        let mut a = FrameAllocator::new();
        a.add(r(0x4000_0000, 0x4000_0000)).unwrap();
        a.reserve(r(0x4000_0000, 0x20_0000)).unwrap(); // hypervisor image
        a.reserve(r(0x4400_0100, 0x100)).unwrap(); // DTB, widened to a page
        assert_eq!(a.ranges(), &[r(0x4020_0000, 0x3e0_0000), r(0x4400_1000, 0x3bff_f000)]);
        let p = a.alloc(0x400_0000, 0x20_0000).unwrap();
        assert_eq!(p % 0x20_0000, 0);
        assert!(p >= 0x4400_1000);
        assert_eq!(a.free_bytes(), 0x4000_0000 - 0x20_0000 - 0x1000 - 0x400_0000);
    }

    #[test]
    fn free_merges_back_to_the_initial_state() {
        let mut a = FrameAllocator::new();
        a.add(r(0x8000_0000, 0x1000_0000)).unwrap();
        let initial = a.ranges().to_vec();
        let mut got = Vec::new();
        let mut seed = 0x1234_5678_u64;
        for _ in 0..200 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let size = ((seed % 64) + 1) * PAGE_SIZE;
            if seed.is_multiple_of(3) && !got.is_empty() {
                let (b, s) = got.swap_remove((seed as usize / 3) % got.len());
                a.free(b, s).unwrap();
            } else if let Ok(b) = a.alloc(size, PAGE_SIZE << (seed % 4)) {
                for &(ob, os) in &got {
                    assert!(b + size <= ob || ob + os <= b, "overlap");
                }
                got.push((b, size));
            }
        }
        for (b, s) in got {
            a.free(b, s).unwrap();
        }
        assert_eq!(a.ranges(), &initial[..]);
    }

    #[test]
    fn out_of_memory_reports_largest_run() {
        let mut a = FrameAllocator::new();
        a.add(r(0x1000, 0x10_0000)).unwrap();
        assert_eq!(
            a.alloc(0x20_0000, PAGE_SIZE),
            Err(FrameError::OutOfMemory { requested: 0x20_0000, largest_free: 0x10_0000 })
        );
        assert_eq!(a.alloc(0, PAGE_SIZE), Err(FrameError::BadRequest));
        assert_eq!(a.alloc(PAGE_SIZE, 3), Err(FrameError::BadRequest));
    }
}
