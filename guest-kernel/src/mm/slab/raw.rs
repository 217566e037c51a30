//! Every read and write of slab memory: the management area each slab
//! keeps after its objects (the header and the index free list,
//! 《Linux内核深度解析》§3.8 `freelist_idx_t`), and zeroing an object for
//! `__GFP_ZERO`. The rest of the slab layer is safe code over addresses.
//!
//! # Why this is sound
//!
//! The functions here are safe to call from the slab core only (they are
//! private to `slab`), which keeps this invariant: every `base` it passes
//! is the start of a live slab of the cache whose [`Mgmt`] is used, or of
//! a live `PG_slab` block of the same order that `PageSource::lookup`
//! found (the kmalloc class probe of `kfree`, which then checks the
//! magic). Such a slab is `PAGE_SIZE << gfporder` bytes the cache owns:
//! [`PageSource`](super::PageSource) is an `unsafe trait` whose
//! implementations promise exactly that until `free_pages`, and
//! `slab_destroy` takes a slab off its list and clears its magic before
//! giving its pages back. [`Mgmt::new`] takes its geometry from
//! `calculate_slab_order`, which keeps `mgmt_off + HDR + 2 * num` inside
//! the slab and `mgmt_off` 8-aligned; page-aligned slab starts keep the
//! header (alignment 8) and the `u16` free list aligned.

use super::{HDR, SlabHeader};

/// Where a cache's slabs keep their management data: the header at
/// `base + off`, then `num` free-list indices (`u16`).
#[derive(Clone, Copy, Debug)]
pub(super) struct Mgmt {
    off: usize,
    num: usize,
}

impl Mgmt {
    /// The geometry `calculate_slab_order` chose.
    pub(super) fn new(off: usize, num: usize) -> Self {
        debug_assert!(off.is_multiple_of(8) && num <= usize::from(u16::MAX));
        Self { off, num }
    }

    /// The header of the slab at `base`.
    #[inline]
    pub(super) fn read_hdr(self, base: usize) -> SlabHeader {
        debug_assert!(base != 0 && base.is_multiple_of(crate::mm::page::PAGE_SIZE));
        // SAFETY: `base` is a live slab of this geometry (module notes);
        // the header lies inside it, 8-aligned.
        unsafe { ((base + self.off) as *const SlabHeader).read() }
    }

    /// Writes the header of the slab at `base`.
    #[inline]
    pub(super) fn write_hdr(self, base: usize, h: &SlabHeader) {
        debug_assert!(base != 0 && base.is_multiple_of(crate::mm::page::PAGE_SIZE));
        // SAFETY: as in `read_hdr`; the management area belongs to the
        // cache, and no object overlaps it.
        unsafe { ((base + self.off) as *mut SlabHeader).write(*h) }
    }

    fn fl_ptr(self, base: usize, i: usize) -> *mut u16 {
        assert!(i < self.num, "free-list index {i} beyond {} objects", self.num);
        (base + self.off + HDR + 2 * i) as *mut u16
    }

    /// Free-list entry `i` of the slab at `base`.
    #[inline]
    pub(super) fn fl_get(self, base: usize, i: usize) -> usize {
        // SAFETY: entry i < num (checked by fl_ptr) lies inside the
        // management area of a live slab (module notes), 2-aligned.
        unsafe { usize::from(self.fl_ptr(base, i).read()) }
    }

    /// Sets free-list entry `i` of the slab at `base` to object `v`.
    #[inline]
    pub(super) fn fl_set(self, base: usize, i: usize, v: usize) {
        debug_assert!(v < self.num);
        // SAFETY: as in `fl_get`.
        unsafe { self.fl_ptr(base, i).write(v as u16) }
    }
}

/// Zeroes the first `len` bytes of the object at `obj` (`__GFP_ZERO`).
#[inline]
pub(super) fn zero_object(obj: usize, len: usize) {
    // SAFETY: the core calls this only for an object it has just taken off
    // a per-CPU array: a free object of at least `len` (object_size) bytes
    // inside a live slab, handed to nobody yet.
    unsafe { core::ptr::write_bytes(obj as *mut u8, 0, len) };
}
