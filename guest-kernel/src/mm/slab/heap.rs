//! The kernel heap: the slab layer as Rust's global allocator.
//!
//! `unsafe` here is what the `GlobalAlloc` contract requires: an
//! `unsafe impl` that promises the allocator is correct, and an
//! `unsafe fn` that takes the early heap's memory on the caller's word.
//! The allocations themselves come from [`Kmalloc`] (safe code) and from
//! `buddy_system_allocator`.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;
use core::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use core::sync::atomic::{AtomicBool, AtomicUsize};

use super::{ArrayCache, KMALLOC_MAX_CACHE_SIZE, KMALLOC_SIZES, Kmalloc, PageSource};
use crate::mm::gfp::Gfp;
use crate::mm::zone::NR_CPUS;
use crate::sync::{self, SpinLock};

/// The kmalloc classes' array caches of one CPU (SLAB's
/// `kmem_cache->array[cpu]`, here per CPU rather than per cache), behind
/// their own lock (class [`sync::SLAB_CPU`]) and alone in their cache
/// line; `None` until kmalloc is up.
#[repr(align(64))]
pub(super) struct CpuArrays(pub(super) SpinLock<Option<[ArrayCache; KMALLOC_SIZES.len()]>>);

/// The kernel heap: a `buddy_system_allocator` early heap until the page
/// allocator is up, kmalloc afterwards. Frees of early objects keep going
/// to the early heap.
///
/// Locking (LKD ch. 12, "Slab Layer"; 《Linux内核深度解析》§3.8.3, the
/// per-CPU array cache as SLAB's fast path): a kmalloc-class allocation
/// or free takes only its CPU's [`CpuArrays`] lock and pops or pushes an
/// object there; the heap's lock (class [`sync::HEAP`]) is taken inside it
/// only to refill an empty array with a batch from the slabs
/// (`cache_alloc_refill`) or to flush a full one's oldest batch
/// (`cache_flusharray`), and on its own for the early heap and for large
/// (page-backed) allocations. The class comes from the layout, which
/// `GlobalAlloc::dealloc` gets unchanged from `alloc`; a pointer that is
/// not an object of that class is reported when its batch reaches the
/// slabs (`slab_put_obj`'s checks), not at the free itself. Both locks
/// are plain `lock`: the glue masks interrupts around every heap call
/// (`arch::aarch64::memory::IrqSafeHeap`), so interrupt handlers may
/// allocate.
pub struct KernelHeap<P: PageSource> {
    pub(super) inner: SpinLock<HeapInner<P>>,
    pub(super) cpu_arrays: [CpuArrays; NR_CPUS],
    /// kmalloc is up: the per-CPU arrays are filled in.
    kmalloc_ready: AtomicBool,
    /// The early heap's range, set once before anything allocates.
    early_start: AtomicUsize,
    early_end: AtomicUsize,
    cpu_id: fn() -> usize,
}

pub(super) struct HeapInner<P> {
    early: buddy_system_allocator::Heap<32>,
    pub(super) kmalloc: Option<(Kmalloc, P)>,
}

impl<P: PageSource> KernelHeap<P> {
    /// An empty heap; `cpu_id` returns `smp_processor_id()`.
    pub const fn new(cpu_id: fn() -> usize) -> Self {
        KernelHeap {
            inner: SpinLock::new(
                &sync::HEAP,
                HeapInner { early: buddy_system_allocator::Heap::empty(), kmalloc: None },
            ),
            cpu_arrays: [const { CpuArrays(SpinLock::new(&sync::SLAB_CPU, None)) }; NR_CPUS],
            kmalloc_ready: AtomicBool::new(false),
            early_start: AtomicUsize::new(0),
            early_end: AtomicUsize::new(0),
            cpu_id,
        }
    }

    /// Give the early heap `[start, start + size)`.
    ///
    /// # Safety
    ///
    /// The range must be valid, writable memory used by nothing else for the
    /// rest of the kernel's life.
    pub unsafe fn init_early(&self, start: usize, size: usize) {
        let mut inner = self.inner.lock_irqsave();
        self.early_start.store(start, Relaxed);
        self.early_end.store(start + size, Relaxed);
        // SAFETY: the caller guarantees the range is ours alone.
        unsafe { inner.early.init(start, size) };
    }

    /// Switch new allocations to kmalloc over `src` (`kmem_cache_init`):
    /// every CPU's arrays, empty, then the flag the fast path reads.
    pub fn init_kmalloc(&self, src: P) {
        let k = Kmalloc::new();
        let arrays: [ArrayCache; KMALLOC_SIZES.len()] = core::array::from_fn(|i| k.caches[i].new_array_cache());
        for slot in &self.cpu_arrays {
            *slot.0.lock_irqsave() = Some(arrays);
        }
        self.inner.lock_irqsave().kmalloc = Some((k, src));
        self.kmalloc_ready.store(true, Release);
    }

    /// Run `f` on the kmalloc state (statistics, shrinking), after every
    /// CPU's arrays went back to the slabs (`drain_cpu_caches`).
    pub fn with_kmalloc<R>(&self, f: impl FnOnce(&mut Kmalloc, &mut P) -> R) -> Option<R> {
        for slot in &self.cpu_arrays {
            let mut arrays = slot.0.lock_irqsave();
            let mut inner = self.inner.lock();
            if let (Some(arrays), Some((k, src))) = (arrays.as_mut(), inner.kmalloc.as_mut()) {
                for (cache, ac) in k.caches.iter_mut().zip(arrays.iter_mut()) {
                    if let Err(e) = cache.drain_array(src, ac) {
                        panic!("kfree of a bad pointer found at drain: {e:?}");
                    }
                }
            }
        }
        let mut inner = self.inner.lock_irqsave();
        inner.kmalloc.as_mut().map(|(k, p)| f(k, p))
    }

    /// The kmalloc class that serves `layout` from a slab, once kmalloc is up.
    fn slab_class(&self, layout: Layout) -> Option<usize> {
        let size = layout.size().max(1);
        if !self.kmalloc_ready.load(Acquire) || size > KMALLOC_MAX_CACHE_SIZE {
            return None;
        }
        Kmalloc::kmalloc_index(size, layout.align())
    }

    /// `____cache_alloc()`: an object of class `class` from this CPU's
    /// array, refilled from the slabs under the heap lock when empty.
    fn cache_alloc(&self, cpu: usize, class: usize) -> Option<NonNull<u8>> {
        let mut arrays = self.cpu_arrays[cpu].0.lock();
        let ac = &mut arrays.as_mut().expect("kmalloc is up")[class];
        if ac.avail == 0 {
            let mut inner = self.inner.lock();
            let (k, src) = inner.kmalloc.as_mut().expect("kmalloc is up");
            k.caches[class].cache_alloc_refill(src, ac, Gfp::GFP_KERNEL);
            if ac.avail == 0 {
                return None;
            }
        }
        ac.avail -= 1;
        NonNull::new(ac.entry[ac.avail] as *mut u8)
    }

    /// `__cache_free()`: onto this CPU's array; a full array first gives
    /// its oldest batch back to the slabs under the heap lock.
    fn cache_free(&self, cpu: usize, class: usize, obj: NonNull<u8>) {
        let mut arrays = self.cpu_arrays[cpu].0.lock();
        let ac = &mut arrays.as_mut().expect("kmalloc is up")[class];
        if ac.avail == ac.limit {
            let mut inner = self.inner.lock();
            let (k, src) = inner.kmalloc.as_mut().expect("kmalloc is up");
            if let Err(e) = k.caches[class].cache_flusharray(src, ac) {
                panic!("kfree of a bad pointer found at flush ({}): {e:?}", k.caches[class].name);
            }
        }
        ac.entry[ac.avail] = obj.as_ptr() as usize;
        ac.avail += 1;
    }
}

// SAFETY: alloc returns memory of at least `layout.size()` bytes aligned to
// `layout.align()` (early heap: by buddy_system_allocator's contract; kmalloc:
// by class selection on size and alignment, or whole naturally aligned pages),
// exclusively owned until dealloc: an object sits in exactly one place at a
// time (a slab's free list, one CPU's array, or a caller), moved between them
// only under that array's lock and the heap lock.
unsafe impl<P: PageSource + Send> GlobalAlloc for KernelHeap<P> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let cpu = (self.cpu_id)();
        if let Some(class) = self.slab_class(layout) {
            return self.cache_alloc(cpu, class).map_or(core::ptr::null_mut(), NonNull::as_ptr);
        }
        // Plain `lock`: the glue's wrapper masks interrupts around the call.
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        match inner.kmalloc.as_mut() {
            Some((k, src)) => k.kmalloc(src, cpu, layout.size(), layout.align(), Gfp::GFP_KERNEL),
            None => inner.early.alloc(layout).ok(),
        }
        .map_or(core::ptr::null_mut(), NonNull::as_ptr)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let cpu = (self.cpu_id)();
        let Some(nn) = NonNull::new(ptr) else { return };
        let early = (self.early_start.load(Relaxed)..self.early_end.load(Relaxed)).contains(&(ptr as usize));
        if !early && let Some(class) = self.slab_class(layout) {
            self.cache_free(cpu, class, nn);
            return;
        }
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        if early {
            // SAFETY: the pointer came from the early heap with this layout
            // (GlobalAlloc::dealloc's contract) since it lies in its range.
            unsafe { inner.early.dealloc(nn, layout) };
        } else if let Some((k, src)) = inner.kmalloc.as_mut()
            && let Err(e) = k.kfree(src, cpu, nn)
        {
            panic!("kfree({ptr:p}, {layout:?}): {e:?}");
        }
    }
}
