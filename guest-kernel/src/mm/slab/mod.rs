//! The slab layer: object caches on top of the page allocator, and kmalloc.
//!
//! LKD ch. 12, "Slab Layer": a cache (`kmem_cache`) holds slabs, each one or
//! more contiguous pages cut into equal objects; slabs are full, partial or
//! empty, allocation prefers partial slabs, then empty ones, then grows the
//! cache. 《Linux内核深度解析》§3.8 (块分配器) describes the SLAB variant
//! implemented here: a per-CPU `array_cache` of hot objects refilled and
//! flushed in batches, constructors run once when a slab is created, and an
//! index-based free list (`freelist_idx_t`) kept in the slab so free objects
//! keep their constructed state.
//!
//! Slab management lives inside the slab (at its end), so the slab layer
//! needs no heap of its own and can back the kernel's global allocator.
//!
//! A [`KmemCache`] keeps one array cache per CPU for callers that hold
//! whatever lock guards the cache. The kernel heap ([`KernelHeap`]) keeps
//! kmalloc's array caches outside the caches instead, one set per CPU
//! behind that CPU's own lock, so a small allocation or free on its CPU
//! does not take the heap lock (SLAB's lock-free `____cache_alloc` fast
//! path); the slabs are reached only to refill or flush a batch.
//!
//! This file is safe Rust. The two places that need `unsafe` are small
//! submodules: [`raw`], every read and write of slab memory (the
//! management area, zeroing for `__GFP_ZERO`), and [`heap`], the
//! `GlobalAlloc` implementation over the early heap and kmalloc. Each says
//! why it is sound; the core's part of the argument is that every slab
//! address it hands them is one [`PageSource`] gave it, still live.

#[allow(unsafe_code)] // the GlobalAlloc impl; see the module's safety notes
mod heap;
#[allow(unsafe_code)] // slab memory through raw pointers; see the module's safety notes
mod raw;

pub use heap::KernelHeap;

use core::ptr::NonNull;
use core::sync::atomic::{AtomicU32, Ordering};

use super::gfp::Gfp;
use super::page::{PAGE_SHIFT, PAGE_SIZE, align_up};
use super::zone::NR_CPUS;

/// Where slabs come from: the page allocator seen through kernel virtual
/// addresses (the linear map). The arch glue implements it over
/// [`super::zone::PageAllocator`]; host tests use heap memory.
///
/// # Safety
///
/// The slab layer reads and writes the blocks it gets through raw
/// pointers, trusting what this trait promises: a block from
/// [`Self::alloc_pages`] is valid, writable memory of `PAGE_SIZE << order`
/// bytes at that alignment, used by nobody else until
/// [`Self::free_pages`]; [`Self::lookup`] reports only such live blocks,
/// with their true start and order, and `PG_slab` exactly as
/// [`Self::set_slab`] left it.
// A named exception to the crate's `deny(unsafe_code)`: declaring the trait
// `unsafe` is what makes implementers, not the slab core, answer for it.
#[allow(unsafe_code)]
pub unsafe trait PageSource {
    /// 2^`order` contiguous pages, aligned to `PAGE_SIZE << order`; returns
    /// their kernel virtual address. The memory must stay valid and unused by
    /// anyone else until [`Self::free_pages`].
    fn alloc_pages(&mut self, order: usize, gfp: Gfp) -> Option<usize>;
    /// Give back a block from [`Self::alloc_pages`].
    fn free_pages(&mut self, addr: usize, order: usize);
    /// Set or clear `PG_slab` on the block that starts at `addr`.
    fn set_slab(&mut self, addr: usize, on: bool);
    /// For any address inside a live block: (block start, order, PG_slab).
    fn lookup(&self, addr: usize) -> Option<(usize, usize, bool)>;
}

/// `SLAB_HWCACHE_ALIGN`: align objects to cache lines.
pub const SLAB_HWCACHE_ALIGN: u32 = 0x0000_2000;
/// `L1_CACHE_BYTES` on arm64.
pub const L1_CACHE_BYTES: usize = 64;
/// Largest slab, in page order.
pub const MAX_SLAB_ORDER: usize = 5;
/// Room in each per-CPU array cache.
pub const AC_MAX: usize = 32;

/// Slab errors, each naming what was wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlabError {
    /// Alignment is not a power of two or exceeds a page.
    BadAlign,
    /// Object too large for a slab.
    TooLarge,
    /// `kmem_cache_destroy` on a cache with this many live objects.
    Busy {
        /// Objects still allocated.
        live: usize,
    },
    /// A free of a pointer that is not a live object of this cache.
    BadFree(&'static str),
}

/// An object constructor, run once for every object of a new slab.
pub type Ctor = fn(*mut u8);

const SLAB_MAGIC: u32 = 0x51AB_0000;
const KMALLOC_ID: u32 = 0x4B00_0000;
static NEXT_CACHE_ID: AtomicU32 = AtomicU32::new(1);

/// Which list a slab is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum ListKind {
    Full = 0,
    Partial = 1,
    Free = 2,
}

/// `struct slab` management data, stored inside the slab after the objects.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
struct SlabHeader {
    magic: u32,
    cache_id: u32,
    /// Objects handed out (`active`); `freelist[active..num]` are free.
    active: u32,
    list: ListKind,
    prev: usize,
    next: usize,
}

const HDR: usize = core::mem::size_of::<SlabHeader>();

/// Head of a slab list (`slabs_full`, `slabs_partial`, `slabs_free`).
#[derive(Clone, Copy, Debug, Default)]
struct SlabList {
    head: usize,
    len: usize,
}

/// `struct array_cache`: a LIFO of hot objects for one CPU.
#[derive(Clone, Copy, Debug)]
struct ArrayCache {
    avail: usize,
    limit: usize,
    batchcount: usize,
    entry: [usize; AC_MAX],
}

/// Counters of one cache (/proc/slabinfo-like).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SlabStats {
    /// Objects handed out.
    pub allocs: u64,
    /// Objects returned.
    pub frees: u64,
    /// Allocations served from a per-CPU array without touching slabs.
    pub ac_hits: u64,
    /// Slabs created.
    pub grown: u64,
    /// Slabs given back to the page allocator.
    pub reaped: u64,
}

/// `struct kmem_cache`.
#[derive(Debug)]
pub struct KmemCache {
    /// Name, as /proc/slabinfo shows it.
    pub name: &'static str,
    /// Bytes the user asked for.
    pub object_size: usize,
    /// Stride between objects (object_size rounded up to `align`).
    pub size: usize,
    /// Object alignment.
    pub align: usize,
    /// Pages per slab, as an order.
    pub gfporder: usize,
    /// Objects per slab.
    pub num: usize,
    ctor: Option<Ctor>,
    id: u32,
    mgmt: raw::Mgmt,
    full: SlabList,
    partial: SlabList,
    free: SlabList,
    /// Free objects inside slabs (not counting the array caches).
    pub free_objects: usize,
    free_limit: usize,
    array: [ArrayCache; NR_CPUS],
    /// Counters.
    pub stats: SlabStats,
}

impl KmemCache {
    /// `kmem_cache_create()`.
    pub fn create(
        name: &'static str,
        size: usize,
        align: usize,
        flags: u32,
        ctor: Option<Ctor>,
    ) -> Result<KmemCache, SlabError> {
        let id = SLAB_MAGIC | (NEXT_CACHE_ID.fetch_add(1, Ordering::Relaxed) & 0xffff);
        Self::create_with_id(name, size, align, flags, ctor, id)
    }

    fn create_with_id(
        name: &'static str,
        size: usize,
        align: usize,
        flags: u32,
        ctor: Option<Ctor>,
        id: u32,
    ) -> Result<KmemCache, SlabError> {
        if (align != 0 && !align.is_power_of_two()) || align > PAGE_SIZE {
            return Err(SlabError::BadAlign);
        }
        let mut align = align.max(core::mem::size_of::<usize>());
        if flags & SLAB_HWCACHE_ALIGN != 0 {
            // Cache-line align, but let small objects share a line.
            let mut ralign = L1_CACHE_BYTES;
            while size <= ralign / 2 {
                ralign /= 2;
            }
            align = align.max(ralign);
        }
        let stride = align_up(size.max(1), align);
        let (gfporder, num, mgmt_off) = calculate_slab_order(stride).ok_or(SlabError::TooLarge)?;
        let limit = match stride {
            s if s > PAGE_SIZE => 8,
            s if s > 1024 => 16,
            s if s > 256 => 24,
            _ => AC_MAX,
        };
        let batchcount = limit.div_ceil(2);
        let ac = ArrayCache { avail: 0, limit, batchcount, entry: [0; AC_MAX] };
        Ok(KmemCache {
            name,
            object_size: size,
            size: stride,
            align,
            gfporder,
            num,
            mgmt: raw::Mgmt::new(mgmt_off, num),
            ctor,
            id,
            full: SlabList::default(),
            partial: SlabList::default(),
            free: SlabList::default(),
            free_objects: 0,
            free_limit: (1 + NR_CPUS) * batchcount + num,
            array: [ac; NR_CPUS],
            stats: SlabStats::default(),
        })
    }

    // --- the management data inside a slab (raw.rs) ---------------------

    fn read_hdr(&self, base: usize) -> SlabHeader {
        self.mgmt.read_hdr(base)
    }

    fn write_hdr(&self, base: usize, h: &SlabHeader) {
        self.mgmt.write_hdr(base, h)
    }

    fn fl_get(&self, base: usize, i: usize) -> usize {
        self.mgmt.fl_get(base, i)
    }

    fn fl_set(&self, base: usize, i: usize, v: usize) {
        self.mgmt.fl_set(base, i, v)
    }

    // --- slab lists --------------------------------------------------------

    fn list_mut(&mut self, k: ListKind) -> &mut SlabList {
        match k {
            ListKind::Full => &mut self.full,
            ListKind::Partial => &mut self.partial,
            ListKind::Free => &mut self.free,
        }
    }

    fn list_add(&mut self, base: usize, k: ListKind) {
        let head = self.list_mut(k).head;
        let mut h = self.read_hdr(base);
        h.list = k;
        h.prev = 0;
        h.next = head;
        self.write_hdr(base, &h);
        if head != 0 {
            let mut n = self.read_hdr(head);
            n.prev = base;
            self.write_hdr(head, &n);
        }
        let l = self.list_mut(k);
        l.head = base;
        l.len += 1;
    }

    fn list_del(&mut self, base: usize) {
        let h = self.read_hdr(base);
        if h.prev != 0 {
            let mut p = self.read_hdr(h.prev);
            p.next = h.next;
            self.write_hdr(h.prev, &p);
        } else {
            self.list_mut(h.list).head = h.next;
        }
        if h.next != 0 {
            let mut n = self.read_hdr(h.next);
            n.prev = h.prev;
            self.write_hdr(h.next, &n);
        }
        self.list_mut(h.list).len -= 1;
    }

    fn relist(&mut self, base: usize) {
        let h = self.read_hdr(base);
        let want = match h.active as usize {
            0 => ListKind::Free,
            a if a == self.num => ListKind::Full,
            _ => ListKind::Partial,
        };
        if want != h.list {
            self.list_del(base);
            self.list_add(base, want);
        }
    }

    // --- growing and shrinking ---------------------------------------------

    /// `cache_grow()`: a new slab from the page source, constructors run on
    /// every object, all on the free list.
    fn cache_grow<P: PageSource>(&mut self, src: &mut P, gfp: Gfp) -> Option<usize> {
        let base = src.alloc_pages(self.gfporder, gfp & !(Gfp::__GFP_ZERO | Gfp::__GFP_COMP))?;
        src.set_slab(base, true);
        let h = SlabHeader { magic: SLAB_MAGIC, cache_id: self.id, active: 0, list: ListKind::Free, prev: 0, next: 0 };
        self.write_hdr(base, &h);
        for i in 0..self.num {
            self.fl_set(base, i, i);
            if let Some(ctor) = self.ctor {
                ctor((base + i * self.size) as *mut u8);
            }
        }
        self.list_add(base, ListKind::Free);
        self.free_objects += self.num;
        self.stats.grown += 1;
        Some(base)
    }

    fn slab_destroy<P: PageSource>(&mut self, src: &mut P, base: usize) {
        self.list_del(base);
        self.free_objects -= self.num;
        let mut h = self.read_hdr(base);
        h.magic = 0;
        self.write_hdr(base, &h);
        src.set_slab(base, false);
        src.free_pages(base, self.gfporder);
        self.stats.reaped += 1;
    }

    /// `slab_get_obj()`.
    fn slab_get_obj(&mut self, base: usize) -> usize {
        let mut h = self.read_hdr(base);
        let idx = self.fl_get(base, h.active as usize);
        h.active += 1;
        self.write_hdr(base, &h);
        self.free_objects -= 1;
        base + idx * self.size
    }

    /// `slab_put_obj()` after validating that `obj` is a live object here.
    fn slab_put_obj<P: PageSource>(&mut self, src: &P, obj: usize) -> Result<usize, SlabError> {
        let (base, order, is_slab) = src.lookup(obj).ok_or(SlabError::BadFree("not in any page block"))?;
        if !is_slab || order != self.gfporder {
            return Err(SlabError::BadFree("not a slab page of this cache"));
        }
        let mut h = self.read_hdr(base);
        if h.magic != SLAB_MAGIC || h.cache_id != self.id {
            return Err(SlabError::BadFree("slab belongs to another cache"));
        }
        let off = obj - base;
        if !off.is_multiple_of(self.size) || off / self.size >= self.num {
            return Err(SlabError::BadFree("pointer is not the start of an object"));
        }
        if h.active == 0 {
            return Err(SlabError::BadFree("double free: slab has no live objects"));
        }
        if cfg!(debug_assertions) {
            let idx = off / self.size;
            if (h.active as usize..self.num).any(|i| self.fl_get(base, i) == idx) {
                return Err(SlabError::BadFree("double free of an object"));
            }
        }
        h.active -= 1;
        self.fl_set(base, h.active as usize, off / self.size);
        self.write_hdr(base, &h);
        self.free_objects += 1;
        Ok(base)
    }

    /// `free_block()`: return objects to their slabs; reap empty slabs above
    /// `free_limit`.
    fn free_block<P: PageSource>(&mut self, src: &mut P, obj: usize) -> Result<(), SlabError> {
        let base = self.slab_put_obj(src, obj)?;
        self.relist(base);
        if self.read_hdr(base).active == 0 && self.free_objects > self.free_limit {
            self.slab_destroy(src, base);
        }
        Ok(())
    }

    /// An empty array cache sized for this cache (`alloc_arraycache`).
    fn new_array_cache(&self) -> ArrayCache {
        ArrayCache { avail: 0, ..self.array[0] }
    }

    /// `cache_alloc_refill()`: move up to `batchcount` objects from partial
    /// (then free, then new) slabs into `ac`.
    fn cache_alloc_refill<P: PageSource>(&mut self, src: &mut P, ac: &mut ArrayCache, gfp: Gfp) {
        let mut batch = ac.batchcount;
        while batch > 0 {
            let base = if self.partial.head != 0 {
                self.partial.head
            } else if self.free.head != 0 {
                self.free.head
            } else {
                match self.cache_grow(src, gfp) {
                    Some(b) => b,
                    None => break,
                }
            };
            while batch > 0 && (self.read_hdr(base).active as usize) < self.num {
                let obj = self.slab_get_obj(base);
                ac.entry[ac.avail] = obj;
                ac.avail += 1;
                batch -= 1;
            }
            self.relist(base);
        }
    }

    /// `kmem_cache_alloc()`.
    pub fn alloc<P: PageSource>(&mut self, src: &mut P, cpu: usize, gfp: Gfp) -> Option<NonNull<u8>> {
        if self.array[cpu].avail > 0 {
            self.stats.ac_hits += 1;
        } else {
            let mut ac = self.array[cpu];
            self.cache_alloc_refill(src, &mut ac, gfp);
            self.array[cpu] = ac;
        }
        let ac = &mut self.array[cpu];
        if ac.avail == 0 {
            return None;
        }
        ac.avail -= 1;
        let obj = ac.entry[ac.avail];
        self.stats.allocs += 1;
        if gfp.contains(Gfp::__GFP_ZERO) {
            raw::zero_object(obj, self.object_size);
        }
        NonNull::new(obj as *mut u8)
    }

    /// `kmem_cache_free()`. The object goes to this CPU's array; when the
    /// array is full, its oldest `batchcount` objects go back to their slabs.
    ///
    /// Invalid pointers are detected when they reach the slab (immediately
    /// for the checks that need no slab walk, otherwise at flush time).
    pub fn free<P: PageSource>(&mut self, src: &mut P, cpu: usize, obj: NonNull<u8>) -> Result<(), SlabError> {
        let obj = obj.as_ptr() as usize;
        let (base, order, is_slab) = src.lookup(obj).ok_or(SlabError::BadFree("not in any page block"))?;
        // The order first: a smaller block of another cache may not reach
        // this cache's management offset.
        if !is_slab || order != self.gfporder || self.read_hdr(base).cache_id != self.id {
            return Err(SlabError::BadFree("object does not belong to this cache"));
        }
        if self.array[cpu].avail == self.array[cpu].limit {
            let mut ac = self.array[cpu];
            let flushed = self.cache_flusharray(src, &mut ac);
            self.array[cpu] = ac;
            flushed?;
        }
        let ac = &mut self.array[cpu];
        ac.entry[ac.avail] = obj;
        ac.avail += 1;
        self.stats.frees += 1;
        Ok(())
    }

    /// `cache_flusharray()`: the oldest `batchcount` objects of `ac` back
    /// to their slabs.
    fn cache_flusharray<P: PageSource>(&mut self, src: &mut P, ac: &mut ArrayCache) -> Result<(), SlabError> {
        let n = ac.batchcount.min(ac.avail);
        let mut result = Ok(());
        for &obj in &ac.entry[..n] {
            if let Err(e) = self.free_block(src, obj) {
                result = Err(e);
            }
        }
        ac.entry.copy_within(n..ac.avail, 0);
        ac.avail -= n;
        result
    }

    /// Empty every CPU's array into the slabs (`drain_cpu_caches`).
    pub fn drain<P: PageSource>(&mut self, src: &mut P) -> Result<(), SlabError> {
        let mut result = Ok(());
        for cpu in 0..NR_CPUS {
            let mut ac = self.array[cpu];
            if let Err(e) = self.drain_array(src, &mut ac) {
                result = Err(e);
            }
            self.array[cpu] = ac;
        }
        result
    }

    /// Empty `ac` into the slabs.
    fn drain_array<P: PageSource>(&mut self, src: &mut P, ac: &mut ArrayCache) -> Result<(), SlabError> {
        let mut result = Ok(());
        while ac.avail > 0 {
            if let Err(e) = self.cache_flusharray(src, ac) {
                result = Err(e);
            }
        }
        result
    }

    /// `kmem_cache_shrink()`: drain the arrays and free every empty slab.
    /// Returns the number of slabs released.
    pub fn shrink<P: PageSource>(&mut self, src: &mut P) -> Result<usize, SlabError> {
        self.drain(src)?;
        let mut n = 0;
        while self.free.head != 0 {
            let base = self.free.head;
            self.slab_destroy(src, base);
            n += 1;
        }
        Ok(n)
    }

    /// Objects currently handed out to users.
    pub fn live_objects(&self) -> usize {
        let in_arrays: usize = self.array.iter().map(|a| a.avail).sum();
        (self.full.len + self.partial.len + self.free.len) * self.num - self.free_objects - in_arrays
    }

    /// Slabs per list: (full, partial, free).
    pub fn slab_counts(&self) -> (usize, usize, usize) {
        (self.full.len, self.partial.len, self.free.len)
    }

    /// `kmem_cache_destroy()`: refuses (and reports how many) while objects
    /// are live; otherwise gives every slab back.
    pub fn destroy<P: PageSource>(&mut self, src: &mut P) -> Result<(), SlabError> {
        self.drain(src)?;
        let live = self.live_objects();
        if live > 0 {
            return Err(SlabError::Busy { live });
        }
        self.shrink(src).map(|_| ())
    }
}

/// `calculate_slab_order()`: the smallest order whose leftover space (after
/// objects and management) is at most 1/8 of the slab; returns (order,
/// objects, offset of the management area).
fn calculate_slab_order(stride: usize) -> Option<(usize, usize, usize)> {
    let mut best = None;
    for order in 0..=MAX_SLAB_ORDER {
        let bytes = PAGE_SIZE << order;
        let num = (bytes.saturating_sub(HDR + 8) / (stride + 2)).min(u16::MAX as usize);
        let mut num = num;
        while num > 0 && align_up(num * stride, 8) + HDR + 2 * num > bytes {
            num -= 1;
        }
        if num == 0 {
            continue;
        }
        let mgmt_off = align_up(num * stride, 8);
        let waste = bytes - num * stride - HDR - 2 * num;
        best = Some((order, num, mgmt_off));
        if waste * 8 <= bytes {
            break;
        }
    }
    best
}

/// kmalloc size classes: (size, alignment). Powers of two are naturally
/// aligned; 96 and 192 as in Linux.
pub const KMALLOC_SIZES: [(usize, usize); 13] = [
    (8, 8),
    (16, 16),
    (32, 32),
    (64, 64),
    (96, 32),
    (128, 128),
    (192, 64),
    (256, 256),
    (512, 512),
    (1024, 1024),
    (2048, 2048),
    (4096, 4096),
    (8192, 4096),
];

const KMALLOC_NAMES: [&str; 13] = [
    "kmalloc-8",
    "kmalloc-16",
    "kmalloc-32",
    "kmalloc-64",
    "kmalloc-96",
    "kmalloc-128",
    "kmalloc-192",
    "kmalloc-256",
    "kmalloc-512",
    "kmalloc-1k",
    "kmalloc-2k",
    "kmalloc-4k",
    "kmalloc-8k",
];

/// Largest size served from a slab cache; bigger requests take pages.
pub const KMALLOC_MAX_CACHE_SIZE: usize = 8192;

/// `get_order()`: the smallest order with `PAGE_SIZE << order >= size`.
pub fn get_order(size: usize) -> usize {
    let pages = size.div_ceil(PAGE_SIZE).max(1);
    (usize::BITS - (pages - 1).leading_zeros()) as usize
}

/// The general-purpose caches and `kmalloc`/`kfree` (LKD ch. 12, kmalloc()).
#[derive(Debug)]
pub struct Kmalloc {
    /// `kmalloc_caches[]`.
    pub caches: [KmemCache; 13],
    /// Live large (page-backed) allocations.
    pub large_live: usize,
}

impl Kmalloc {
    /// `create_kmalloc_caches()`.
    pub fn new() -> Kmalloc {
        let caches = core::array::from_fn(|i| {
            let (size, align) = KMALLOC_SIZES[i];
            KmemCache::create_with_id(KMALLOC_NAMES[i], size, align, 0, None, KMALLOC_ID | i as u32)
                .expect("kmalloc size classes fit in a slab")
        });
        Kmalloc { caches, large_live: 0 }
    }

    /// `kmalloc_index()`: the smallest class that fits size and alignment.
    pub fn kmalloc_index(size: usize, align: usize) -> Option<usize> {
        KMALLOC_SIZES.iter().position(|&(s, a)| s >= size && a >= align)
    }

    /// `kmalloc()` with an explicit alignment (the global allocator needs it).
    pub fn kmalloc<P: PageSource>(
        &mut self,
        src: &mut P,
        cpu: usize,
        size: usize,
        align: usize,
        gfp: Gfp,
    ) -> Option<NonNull<u8>> {
        let size = size.max(1);
        match Self::kmalloc_index(size, align) {
            Some(i) if size <= KMALLOC_MAX_CACHE_SIZE => self.caches[i].alloc(src, cpu, gfp),
            _ => {
                // kmalloc_large(): whole pages, a compound page in Linux.
                let order = get_order(size).max(get_order(align));
                let addr = src.alloc_pages(order, gfp | Gfp::__GFP_COMP)?;
                self.large_live += 1;
                NonNull::new(addr as *mut u8)
            }
        }
    }

    /// `kfree()`: find the owner through the page (`PG_slab` or a large
    /// block) and free there.
    pub fn kfree<P: PageSource>(&mut self, src: &mut P, cpu: usize, ptr: NonNull<u8>) -> Result<(), SlabError> {
        let addr = ptr.as_ptr() as usize;
        let (base, order, is_slab) =
            src.lookup(addr).ok_or(SlabError::BadFree("kfree of a pointer kmalloc never returned"))?;
        if !is_slab {
            if base != addr {
                return Err(SlabError::BadFree("kfree inside a large allocation"));
            }
            src.free_pages(base, order);
            self.large_live -= 1;
            return Ok(());
        }
        let class = self.class_of(base, order)?;
        self.caches[class].free(src, cpu, ptr)
    }

    /// The kmalloc class that owns the slab at `base` (a live PG_slab block
    /// of 2^`order` pages): the management area sits at a per-class offset,
    /// so each class of that slab order looks for its own magic and id.
    fn class_of(&self, base: usize, order: usize) -> Result<usize, SlabError> {
        self.caches
            .iter()
            .position(|c| {
                c.gfporder == order && {
                    let h = c.read_hdr(base);
                    h.magic == SLAB_MAGIC && h.cache_id == c.id
                }
            })
            .ok_or(SlabError::BadFree("kfree of an object from a non-kmalloc cache"))
    }

    /// `ksize()`: usable size of an allocation.
    pub fn ksize<P: PageSource>(&self, src: &P, ptr: NonNull<u8>) -> Option<usize> {
        let (base, order, is_slab) = src.lookup(ptr.as_ptr() as usize)?;
        if is_slab { Some(self.caches[self.class_of(base, order).ok()?].object_size) } else { Some(PAGE_SIZE << order) }
    }

    /// Drain the per-CPU arrays and free empty slabs of every class.
    pub fn shrink<P: PageSource>(&mut self, src: &mut P) -> Result<usize, SlabError> {
        let mut n = 0;
        for c in self.caches.iter_mut() {
            n += c.shrink(src)?;
        }
        Ok(n)
    }
}

impl Default for Kmalloc {
    fn default() -> Self {
        Self::new()
    }
}

/// Bytes to pages, rounded up.
pub const fn size_to_pages(size: usize) -> usize {
    (size + PAGE_SIZE - 1) >> PAGE_SHIFT
}

// Test scaffolding: FakePages backs slabs with host heap memory, and the
// tests read and write objects through the pointers they get.
#[cfg(test)]
#[allow(unsafe_code)]
pub(crate) mod tests {
    use super::*;
    use crate::mm::zone::tests::XorShift;
    use alloc::boxed::Box;
    use alloc::collections::BTreeMap;
    use alloc::vec::Vec;
    use core::alloc::{GlobalAlloc, Layout};
    use core::sync::atomic::AtomicUsize;

    /// Page blocks from the host heap, naturally aligned.
    #[derive(Default)]
    pub(crate) struct FakePages {
        pub(crate) blocks: BTreeMap<usize, (usize, bool)>,
        pub(crate) fail: bool,
    }

    // SAFETY: blocks come from the host allocator with the promised size
    // and alignment, are tracked in `blocks` until freed, and `lookup`
    // answers from that map.
    unsafe impl PageSource for FakePages {
        fn alloc_pages(&mut self, order: usize, _gfp: Gfp) -> Option<usize> {
            if self.fail {
                return None;
            }
            let bytes = PAGE_SIZE << order;
            let layout = Layout::from_size_align(bytes, bytes).unwrap();
            // SAFETY: the layout has a non-zero size.
            let p = unsafe { std::alloc::alloc(layout) } as usize;
            assert_ne!(p, 0);
            self.blocks.insert(p, (order, false));
            Some(p)
        }
        fn free_pages(&mut self, addr: usize, order: usize) {
            let (o, _) = self.blocks.remove(&addr).expect("free of unknown block");
            assert_eq!(o, order);
            let bytes = PAGE_SIZE << order;
            // SAFETY: allocated above with this very layout.
            unsafe { std::alloc::dealloc(addr as *mut u8, Layout::from_size_align(bytes, bytes).unwrap()) };
        }
        fn set_slab(&mut self, addr: usize, on: bool) {
            self.blocks.get_mut(&addr).unwrap().1 = on;
        }
        fn lookup(&self, addr: usize) -> Option<(usize, usize, bool)> {
            let (&b, &(o, s)) = self.blocks.range(..=addr).next_back()?;
            (addr < b + (PAGE_SIZE << o)).then_some((b, o, s))
        }
    }

    impl Drop for FakePages {
        fn drop(&mut self) {
            for (addr, (order, _)) in core::mem::take(&mut self.blocks) {
                let bytes = PAGE_SIZE << order;
                // SAFETY: every block in the map came from std::alloc with this layout.
                unsafe { std::alloc::dealloc(addr as *mut u8, Layout::from_size_align(bytes, bytes).unwrap()) };
            }
        }
    }

    static CTOR_CALLS: AtomicUsize = AtomicUsize::new(0);
    const PATTERN: u64 = 0xC0FF_EE00_D00D_F00D;

    fn ctor(p: *mut u8) {
        CTOR_CALLS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the slab layer passes the start of a 40-byte object.
        unsafe { (p as *mut u64).write(PATTERN) };
    }

    #[test]
    fn slab_order_and_geometry() {
        let c = KmemCache::create("t", 40, 8, 0, None).unwrap();
        assert_eq!((c.size, c.gfporder), (40, 0));
        assert_eq!(c.num, (4096 - HDR) / 42);
        let hw = KmemCache::create("hw", 40, 8, SLAB_HWCACHE_ALIGN, None).unwrap();
        assert_eq!(hw.size, 64);
        let small = KmemCache::create("s", 20, 4, SLAB_HWCACHE_ALIGN, None).unwrap();
        assert_eq!(small.size, 32, "small objects share a cache line");
        let k = Kmalloc::new();
        for c in &k.caches {
            let waste = (PAGE_SIZE << c.gfporder) - c.num * (c.size + 2) - HDR;
            assert!(waste * 8 <= PAGE_SIZE << c.gfporder || c.gfporder == MAX_SLAB_ORDER, "{}", c.name);
        }
        assert_eq!(KmemCache::create("x", 8, 3, 0, None).unwrap_err(), SlabError::BadAlign);
        assert_eq!(KmemCache::create("x", 8, 8192, 0, None).unwrap_err(), SlabError::BadAlign);
        assert_eq!(KmemCache::create("x", 1 << 20, 8, 0, None).unwrap_err(), SlabError::TooLarge);
        assert_eq!(get_order(1), 0);
        assert_eq!(get_order(4097), 1);
        assert_eq!(get_order(16384), 2);
    }

    #[test]
    fn randomized_cache_with_ctor_and_alignment() {
        let mut src = FakePages::default();
        let mut c = KmemCache::create("obj40", 40, 32, 0, Some(ctor)).unwrap();
        let before = CTOR_CALLS.load(Ordering::Relaxed);
        let mut rng = XorShift(7);
        let mut live: BTreeMap<usize, u64> = BTreeMap::new();
        for step in 0..20_000u64 {
            let cpu = rng.below(NR_CPUS as u64) as usize;
            if rng.below(100) < 55 || live.is_empty() {
                let p = c.alloc(&mut src, cpu, Gfp::GFP_KERNEL).unwrap().as_ptr();
                let a = p as usize;
                assert_eq!(a % 32, 0);
                // Constructed state survives alloc/free cycles.
                // SAFETY: p is a live 40-byte object we own.
                unsafe {
                    assert_eq!((p as *const u64).read(), PATTERN);
                    (p.add(8) as *mut u64).write(step);
                }
                if let Some((&b, _)) = live.range(..=a).next_back() {
                    assert!(b + 40 <= a, "overlap");
                }
                if let Some((&b, _)) = live.range(a..).next() {
                    assert!(a + 40 <= b, "overlap");
                }
                live.insert(a, step);
            } else {
                let nth = rng.below(live.len() as u64) as usize;
                let (&a, &tag) = live.iter().nth(nth).unwrap();
                // SAFETY: a is a live object we wrote above.
                unsafe { assert_eq!(((a + 8) as *const u64).read(), tag, "object corrupted") };
                live.remove(&a);
                c.free(&mut src, cpu, NonNull::new(a as *mut u8).unwrap()).unwrap();
            }
            assert_eq!(c.live_objects(), live.len());
        }
        let grown = c.stats.grown as usize;
        assert_eq!(CTOR_CALLS.load(Ordering::Relaxed) - before, grown * c.num);
        assert!(c.stats.ac_hits > 0);
        assert_eq!(c.destroy(&mut src), Err(SlabError::Busy { live: live.len() }));
        for (a, _) in core::mem::take(&mut live) {
            c.free(&mut src, 0, NonNull::new(a as *mut u8).unwrap()).unwrap();
        }
        c.destroy(&mut src).unwrap();
        assert!(src.blocks.is_empty(), "slabs leaked");
        assert_eq!(c.stats.grown, c.stats.reaped);
    }

    #[test]
    fn lists_move_between_full_partial_and_free() {
        let mut src = FakePages::default();
        let mut c = KmemCache::create("big", 1000, 8, 0, None).unwrap();
        let num = c.num;
        let objs: Vec<_> = (0..num).map(|_| c.alloc(&mut src, 0, Gfp::GFP_KERNEL).unwrap()).collect();
        // The array cache prefetched a batch into a second slab.
        c.drain(&mut src).unwrap();
        let (full, partial, free) = c.slab_counts();
        assert_eq!((full, partial), (1, 0));
        assert!(free >= 1);
        c.free(&mut src, 0, objs[0]).unwrap();
        c.drain(&mut src).unwrap();
        assert_eq!(c.slab_counts(), (0, 1, free));
        for &o in &objs[1..] {
            c.free(&mut src, 0, o).unwrap();
        }
        c.drain(&mut src).unwrap();
        assert_eq!(c.slab_counts(), (0, 0, free + 1));
        assert_eq!(c.shrink(&mut src), Ok(free + 1));
        assert!(src.blocks.is_empty());
    }

    #[test]
    fn bad_frees_are_reported() {
        let mut src = FakePages::default();
        let mut a = KmemCache::create("a", 64, 8, 0, None).unwrap();
        let mut b = KmemCache::create("b", 64, 8, 0, None).unwrap();
        let x = a.alloc(&mut src, 0, Gfp::GFP_KERNEL).unwrap();
        let _y = b.alloc(&mut src, 0, Gfp::GFP_KERNEL).unwrap();
        assert!(matches!(b.free(&mut src, 0, x), Err(SlabError::BadFree(_))));
        let inner = NonNull::new(x.as_ptr().wrapping_add(4)).unwrap();
        a.free(&mut src, 0, inner).unwrap(); // queued in the array cache ...
        assert!(matches!(a.drain(&mut src), Err(SlabError::BadFree(_)))); // ... caught at flush
        a.free(&mut src, 0, x).unwrap();
        a.free(&mut src, 0, x).unwrap();
        assert!(matches!(a.drain(&mut src), Err(SlabError::BadFree(_))));
        // With other objects live, the free-list scan catches it.
        let objs: Vec<_> = (0..3).map(|_| a.alloc(&mut src, 0, Gfp::GFP_KERNEL).unwrap()).collect();
        a.drain(&mut src).unwrap();
        a.free(&mut src, 0, objs[0]).unwrap();
        a.free(&mut src, 0, objs[0]).unwrap();
        assert_eq!(a.drain(&mut src), Err(SlabError::BadFree("double free of an object")));
        let stack = 0u64;
        let bogus = NonNull::from(&stack).cast::<u8>();
        assert!(matches!(a.free(&mut src, 0, bogus), Err(SlabError::BadFree(_))));
    }

    #[test]
    fn allocation_failure_and_zeroing() {
        let mut src = FakePages::default();
        let mut c = KmemCache::create("z", 128, 8, 0, None).unwrap();
        let p = c.alloc(&mut src, 0, Gfp::GFP_KERNEL).unwrap();
        // SAFETY: p is a live 128-byte object.
        unsafe { p.as_ptr().write_bytes(0xAA, 128) };
        c.free(&mut src, 0, p).unwrap();
        let q = c.alloc(&mut src, 0, Gfp::GFP_KERNEL | Gfp::__GFP_ZERO).unwrap();
        assert_eq!(p, q);
        // SAFETY: q is a live 128-byte object.
        let bytes = unsafe { core::slice::from_raw_parts(q.as_ptr(), 128) };
        assert!(bytes.iter().all(|&b| b == 0));
        src.fail = true;
        while c.alloc(&mut src, 0, Gfp::GFP_ATOMIC).is_some() {}
        assert!(c.alloc(&mut src, 1, Gfp::GFP_ATOMIC).is_none());
    }

    #[test]
    fn kmalloc_random_sizes_and_alignments() {
        let mut src = FakePages::default();
        let mut k = Kmalloc::new();
        let mut rng = XorShift(42);
        let mut live: BTreeMap<usize, usize> = BTreeMap::new();
        for _ in 0..5000 {
            let cpu = rng.below(4) as usize;
            if rng.below(100) < 55 || live.is_empty() {
                let size = match rng.below(10) {
                    0 => 8193 + rng.below(20_000) as usize,
                    1..=3 => 1 + rng.below(8192) as usize,
                    _ => 1 + rng.below(200) as usize,
                };
                let align = 1 << rng.below(8);
                let p = k.kmalloc(&mut src, cpu, size, align, Gfp::GFP_KERNEL).unwrap().as_ptr() as usize;
                assert_eq!(p % align, 0);
                assert!(k.ksize(&src, NonNull::new(p as *mut u8).unwrap()).unwrap() >= size);
                if let Some((&b, &s)) = live.range(..=p).next_back() {
                    assert!(b + s <= p, "overlap");
                }
                if let Some((&b, _)) = live.range(p..).next() {
                    assert!(p + size <= b, "overlap");
                }
                live.insert(p, size);
            } else {
                let nth = rng.below(live.len() as u64) as usize;
                let (&p, _) = live.iter().nth(nth).unwrap();
                live.remove(&p);
                k.kfree(&mut src, cpu, NonNull::new(p as *mut u8).unwrap()).unwrap();
            }
        }
        for (p, _) in core::mem::take(&mut live) {
            k.kfree(&mut src, 0, NonNull::new(p as *mut u8).unwrap()).unwrap();
        }
        assert_eq!(k.large_live, 0);
        k.shrink(&mut src).unwrap();
        assert!(src.blocks.is_empty(), "kmalloc leaked pages");
        // A non-kmalloc slab object is refused by kfree.
        let mut other = KmemCache::create("other", 32, 8, 0, None).unwrap();
        let o = other.alloc(&mut src, 0, Gfp::GFP_KERNEL).unwrap();
        assert!(matches!(k.kfree(&mut src, 0, o), Err(SlabError::BadFree(_))));
    }

    #[test]
    fn kernel_heap_moves_from_early_heap_to_kmalloc() {
        let heap: KernelHeap<FakePages> = KernelHeap::new(|| 0);
        let region = Vec::<u64>::with_capacity(8192).leak();
        let start = region.as_mut_ptr() as usize;
        // SAFETY: the leaked region is ours alone for the rest of the test.
        unsafe { heap.init_early(start, 8192 * 8) };
        let l = Layout::from_size_align(100, 16).unwrap();
        // SAFETY: non-zero-size layouts; pointers are freed with their layouts.
        unsafe {
            let e = heap.alloc(l);
            assert!((start..start + 65536).contains(&(e as usize)));
            heap.init_kmalloc(FakePages::default());
            let k = heap.alloc(l);
            assert!(!(start..start + 65536).contains(&(k as usize)));
            assert_eq!(k as usize % 16, 0);
            let big = heap.alloc(Layout::from_size_align(40_000, 4096).unwrap());
            assert_eq!(big as usize % 4096, 0);
            heap.dealloc(e, l);
            heap.dealloc(k, l);
            heap.dealloc(big, Layout::from_size_align(40_000, 4096).unwrap());
        }
        let leaked = heap.with_kmalloc(|k, src| {
            k.shrink(src).unwrap();
            src.blocks.len()
        });
        assert_eq!(leaked, Some(0));
    }

    std::thread_local! {
        static TEST_CPU: core::cell::Cell<usize> = const { core::cell::Cell::new(0) };
    }

    fn test_cpu() -> usize {
        TEST_CPU.with(|c| c.get())
    }

    #[test]
    fn kernel_heap_per_cpu_arrays_are_the_fast_path() {
        let heap: KernelHeap<FakePages> = KernelHeap::new(test_cpu);
        heap.init_kmalloc(FakePages::default());
        let l = Layout::from_size_align(64, 8).unwrap();
        // SAFETY: non-zero-size layouts; pointers are freed with their layouts.
        let (a, b) = unsafe {
            let a = heap.alloc(l);
            heap.dealloc(a, l);
            (a, heap.alloc(l))
        };
        assert_eq!(a, b, "the object just freed is the hottest");
        let slabs = |heap: &KernelHeap<FakePages>| {
            let inner = heap.inner.lock();
            let (k, _) = inner.kmalloc.as_ref().unwrap();
            (k.caches[3].stats.grown, k.caches[3].free_objects)
        };
        // The first allocation refilled CPU 0's array with a batch: the
        // slab lost `batchcount` objects at once, and the next ones come
        // from the array without touching the slabs.
        let batch = heap.cpu_arrays[0].0.lock().unwrap()[3].batchcount;
        let (grown, free) = slabs(&heap);
        assert_eq!(grown, 1);
        // SAFETY: a non-zero-size layout; freed below with it.
        let more: Vec<*mut u8> = (1..batch).map(|_| unsafe { heap.alloc(l) }).collect();
        assert_eq!(slabs(&heap), (grown, free), "served from the array");
        // Freed on CPU 1: its own array takes them, up to its limit.
        TEST_CPU.with(|c| c.set(1));
        for &p in &more {
            // SAFETY: allocated above with this layout.
            unsafe { heap.dealloc(p, l) };
        }
        assert_eq!(heap.cpu_arrays[1].0.lock().unwrap()[3].avail, batch - 1);
        // SAFETY: allocated above with this layout.
        unsafe { heap.dealloc(b, l) };
        let leaked = heap.with_kmalloc(|k, src| {
            assert_eq!(k.caches[3].live_objects(), 0);
            k.shrink(src).unwrap();
            src.blocks.len()
        });
        assert_eq!(leaked, Some(0));
        assert!(heap.cpu_arrays.iter().all(|c| c.0.lock().unwrap().iter().all(|ac| ac.avail == 0)));
    }

    #[test]
    fn kernel_heap_from_two_threads_as_two_cpus() {
        let heap: &'static KernelHeap<FakePages> = Box::leak(Box::new(KernelHeap::new(test_cpu)));
        heap.init_kmalloc(FakePages::default());
        let worker = |cpu: usize| {
            move || {
                TEST_CPU.with(|c| c.set(cpu));
                let mut rng = XorShift(0x1234_5678 + cpu as u64);
                let mut live: Vec<(*mut u8, Layout, u8)> = Vec::new();
                for step in 0..20_000u32 {
                    if live.len() < 200 && rng.below(2) == 0 {
                        let size = [8, 24, 64, 100, 256, 700, 3000][rng.below(7) as usize];
                        let l = Layout::from_size_align(size, 8).unwrap();
                        let tag = (step % 251) as u8;
                        // SAFETY: non-zero-size layout; the object is ours until freed.
                        let p = unsafe { heap.alloc(l) };
                        assert!(!p.is_null());
                        // SAFETY: `p` is a fresh object of `size` bytes, ours alone.
                        unsafe { core::ptr::write_bytes(p, tag, size) };
                        live.push((p, l, tag));
                    } else if !live.is_empty() {
                        let (p, l, tag) = live.swap_remove(rng.below(live.len() as u64) as usize);
                        // SAFETY: written above; nobody else may have touched it.
                        let intact = unsafe { core::slice::from_raw_parts(p, l.size()) }.iter().all(|&b| b == tag);
                        assert!(intact, "cpu {cpu}: object {p:p} overwritten while live");
                        // SAFETY: allocated above with this layout.
                        unsafe { heap.dealloc(p, l) };
                    }
                }
                for (p, l, _) in live {
                    // SAFETY: allocated above with this layout.
                    unsafe { heap.dealloc(p, l) };
                }
            }
        };
        let t0 = std::thread::spawn(worker(0));
        let t1 = std::thread::spawn(worker(1));
        t0.join().unwrap();
        t1.join().unwrap();
        let leaked = heap.with_kmalloc(|k, src| {
            assert!(k.caches.iter().all(|c| c.live_objects() == 0));
            k.shrink(src).unwrap();
            src.blocks.len()
        });
        assert_eq!(leaked, Some(0));
    }
}
