//! Virtual memory areas (`vm_area_struct`) and the per-process tree of them.
//!
//! LKD ch. 15, "Virtual Memory Areas", "Lists and Trees of Memory Areas",
//! "Operating on Memory Areas"; 《Linux内核深度解析》§3.4.2.
//!
//! The tree is a `BTreeMap` keyed by `vm_start`. Linux used an rbtree threaded
//! with a list (the books' era) and since 6.1 uses the maple tree, a B-tree of
//! ranges; a B-tree map gives the same O(log n) `find_vma` through a range
//! query, ordered iteration for free, and needs no unsafe intrusive links.

use alloc::collections::BTreeMap;

use super::Errno;

/// `vm_flags` bits (Linux values).
pub mod vm_flags {
    /// Readable.
    pub const VM_READ: u64 = 0x1;
    /// Writable.
    pub const VM_WRITE: u64 = 0x2;
    /// Executable.
    pub const VM_EXEC: u64 = 0x4;
    /// Shared mapping: writes are seen by every process that maps it.
    pub const VM_SHARED: u64 = 0x8;
    /// mprotect may add read.
    pub const VM_MAYREAD: u64 = 0x10;
    /// mprotect may add write.
    pub const VM_MAYWRITE: u64 = 0x20;
    /// mprotect may add exec.
    pub const VM_MAYEXEC: u64 = 0x40;
    /// Was mapped MAP_SHARED.
    pub const VM_MAYSHARE: u64 = 0x80;
    /// Stack: grows down on faults below it.
    pub const VM_GROWSDOWN: u64 = 0x100;
    /// Counted in Committed_AS.
    pub const VM_ACCOUNT: u64 = 0x10_0000;
    /// Not accounted (MAP_NORESERVE).
    pub const VM_NORESERVE: u64 = 0x20_0000;
    /// The access bits.
    pub const VM_ACCESS_FLAGS: u64 = VM_READ | VM_WRITE | VM_EXEC;
}

use vm_flags::*;

/// Identifies a mapped file (no VFS yet: an inode number will do).
pub type FileId = u64;

/// `struct vm_area_struct`: `[start, end)` with one set of flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vma {
    /// `vm_start`, inclusive.
    pub start: usize,
    /// `vm_end`, exclusive.
    pub end: usize,
    /// `vm_flags`.
    pub flags: u64,
    /// `vm_pgoff`: offset into the file, in pages (anonymous: start >> 12).
    pub pgoff: usize,
    /// `vm_file`.
    pub file: Option<FileId>,
}

impl Vma {
    /// Bytes covered.
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// Whether the range is empty (never true for a VMA in a tree).
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }

    /// Pages covered.
    pub fn pages(&self) -> usize {
        self.len() >> super::page::PAGE_SHIFT
    }

    /// `vma_is_anonymous()`.
    pub fn is_anonymous(&self) -> bool {
        self.file.is_none()
    }

    /// Whether `addr` is inside.
    pub fn contains(&self, addr: usize) -> bool {
        self.start <= addr && addr < self.end
    }

    /// `pgoff` of the page at `addr`.
    pub fn pgoff_at(&self, addr: usize) -> usize {
        self.pgoff + ((addr - self.start) >> super::page::PAGE_SHIFT)
    }

    /// `is_mergeable_vma()` + pgoff continuity: can `self` be directly
    /// followed by `next` as one VMA?
    pub fn can_merge_with_next(&self, next: &Vma) -> bool {
        self.end == next.start
            && self.flags == next.flags
            && self.file == next.file
            && (self.file.is_none() || self.pgoff_at(self.end) == next.pgoff)
    }
}

/// The ordered set of VMAs of one address space (`mm->mm_mt`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VmaTree {
    map: BTreeMap<usize, Vma>,
}

impl VmaTree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// `map_count`.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// No VMAs.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// VMAs in address order.
    pub fn iter(&self) -> impl Iterator<Item = &Vma> {
        self.map.values()
    }

    /// `find_vma()`: the first VMA with `end > addr` (it may start above
    /// `addr`; callers check `start <= addr`).
    pub fn find_vma(&self, addr: usize) -> Option<&Vma> {
        if let Some((_, v)) = self.map.range(..=addr).next_back()
            && v.end > addr
        {
            return Some(v);
        }
        self.map.range(addr.saturating_add(1)..).next().map(|(_, v)| v)
    }

    /// `find_vma_prev()`: [`Self::find_vma`] and the VMA before it.
    pub fn find_vma_prev(&self, addr: usize) -> (Option<&Vma>, Option<&Vma>) {
        let vma = self.find_vma(addr);
        let prev = match vma {
            Some(v) => self.map.range(..v.start).next_back().map(|(_, p)| p),
            None => self.map.values().next_back(),
        };
        (vma, prev)
    }

    /// `find_vma_intersection()`: the first VMA overlapping `[start, end)`.
    pub fn find_vma_intersection(&self, start: usize, end: usize) -> Option<&Vma> {
        self.find_vma(start).filter(|v| v.start < end)
    }

    /// Insert a VMA that overlaps nothing, merging it with compatible
    /// neighbours (`vma_merge`). Returns the resulting VMA.
    pub fn insert_merge(&mut self, vma: Vma) -> Vma {
        debug_assert!(self.find_vma_intersection(vma.start, vma.end).is_none());
        let mut v = vma;
        if let Some((_, prev)) = self.map.range(..v.start).next_back()
            && prev.can_merge_with_next(&v)
        {
            let prev = *prev;
            self.map.remove(&prev.start);
            v = Vma { start: prev.start, pgoff: prev.pgoff, ..v };
        }
        if let Some(next) = self.map.get(&v.end).copied()
            && v.can_merge_with_next(&next)
        {
            self.map.remove(&next.start);
            v.end = next.end;
        }
        self.map.insert(v.start, v);
        v
    }

    /// `__split_vma()`: cut the VMA containing `addr` in two at `addr`.
    pub fn split_vma(&mut self, addr: usize) {
        let Some(v) = self.find_vma(addr).copied() else {
            return;
        };
        if v.start >= addr {
            return;
        }
        let hi = Vma { start: addr, pgoff: v.pgoff_at(addr), ..v };
        self.map.insert(v.start, Vma { end: addr, ..v });
        self.map.insert(addr, hi);
    }

    /// Remove and return every VMA inside `[start, end)`, splitting those
    /// that straddle the edges first.
    pub fn detach_range(&mut self, start: usize, end: usize) -> alloc::vec::Vec<Vma> {
        self.split_vma(start);
        self.split_vma(end);
        let keys: alloc::vec::Vec<usize> = self.map.range(start..end).map(|(k, _)| *k).collect();
        keys.into_iter().filter_map(|k| self.map.remove(&k)).collect()
    }

    /// Replace the flags of every VMA within `[start, end)` (after splitting)
    /// and merge the result with its neighbours.
    pub fn set_flags_range(&mut self, start: usize, end: usize, f: impl Fn(u64) -> u64) {
        for v in self.detach_range(start, end) {
            self.map.insert(v.start, Vma { flags: f(v.flags), ..v });
        }
        // Merge pass around the changed range.
        let keys: alloc::vec::Vec<usize> =
            self.map.range(..=end).rev().take_while(|(_, v)| v.end >= start).map(|(k, _)| *k).collect();
        for k in keys.into_iter().rev() {
            if let Some(v) = self.map.remove(&k) {
                self.insert_merge(v);
            }
        }
    }

    /// Grow a VMA downwards (`expand_downwards`).
    pub fn set_start(&mut self, old_start: usize, new_start: usize) -> Result<(), Errno> {
        let mut v = self.map.remove(&old_start).ok_or(Errno::EFAULT)?;
        v.pgoff -= (old_start - new_start) >> super::page::PAGE_SHIFT;
        v.start = new_start;
        self.map.insert(new_start, v);
        Ok(())
    }

    /// Grow or shrink a VMA's end (brk).
    pub fn set_end(&mut self, start: usize, new_end: usize) {
        if let Some(v) = self.map.get_mut(&start) {
            v.end = new_end;
        }
    }
}

/// Flags for an anonymous private read-write VMA (heap, anonymous mmap).
pub const VM_DATA_DEFAULT_FLAGS: u64 = VM_READ | VM_WRITE | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC;

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn anon(start: usize, end: usize, flags: u64) -> Vma {
        Vma { start, end, flags, pgoff: start >> 12, file: None }
    }

    #[test]
    fn find_vma_and_intersection() {
        let mut t = VmaTree::new();
        t.insert_merge(anon(0x1000, 0x3000, VM_READ));
        t.insert_merge(anon(0x5000, 0x6000, VM_WRITE));
        assert_eq!(t.find_vma(0x0).unwrap().start, 0x1000);
        assert_eq!(t.find_vma(0x2fff).unwrap().start, 0x1000);
        assert_eq!(t.find_vma(0x3000).unwrap().start, 0x5000);
        assert!(t.find_vma(0x6000).is_none());
        assert!(t.find_vma_intersection(0x3000, 0x5000).is_none());
        assert_eq!(t.find_vma_intersection(0x3000, 0x5001).unwrap().start, 0x5000);
        let (v, p) = t.find_vma_prev(0x4000);
        assert_eq!((v.unwrap().start, p.unwrap().start), (0x5000, 0x1000));
        assert_eq!(t.find_vma_prev(0x7000).1.unwrap().start, 0x5000);
    }

    #[test]
    fn adjacent_compatible_vmas_merge() {
        let mut t = VmaTree::new();
        t.insert_merge(anon(0x1000, 0x2000, VM_READ));
        t.insert_merge(anon(0x3000, 0x4000, VM_READ));
        t.insert_merge(anon(0x2000, 0x3000, VM_READ));
        assert_eq!(t.iter().copied().collect::<Vec<_>>(), [anon(0x1000, 0x4000, VM_READ)]);
        t.insert_merge(anon(0x4000, 0x5000, VM_READ | VM_WRITE));
        assert_eq!(t.len(), 2, "different flags do not merge");
        // File VMAs merge only when their offsets continue.
        let f = |s: usize, e: usize, pgoff| Vma { start: s, end: e, flags: VM_READ, pgoff, file: Some(7) };
        t.insert_merge(f(0x10000, 0x11000, 0));
        t.insert_merge(f(0x11000, 0x12000, 5));
        assert_eq!(t.len(), 4);
        t.insert_merge(f(0x12000, 0x13000, 6));
        assert_eq!(t.len(), 4);
    }

    #[test]
    fn detach_middle_splits() {
        let mut t = VmaTree::new();
        t.insert_merge(anon(0x1000, 0x9000, VM_READ));
        let gone = t.detach_range(0x3000, 0x5000);
        assert_eq!(gone, [Vma { pgoff: 3, ..anon(0x3000, 0x5000, VM_READ) }]);
        let left: Vec<_> = t.iter().map(|v| (v.start, v.end, v.pgoff)).collect();
        assert_eq!(left, [(0x1000, 0x3000, 1), (0x5000, 0x9000, 5)]);
    }
}
