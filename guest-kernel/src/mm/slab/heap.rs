//! The kernel heap: the slab layer as Rust's global allocator.
//!
//! `unsafe` here is what the `GlobalAlloc` contract requires: an
//! `unsafe impl` that promises the allocator is correct, and an
//! `unsafe fn` that takes the early heap's memory on the caller's word.
//! The allocations themselves come from [`Kmalloc`] (safe code) and from
//! `buddy_system_allocator`.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;

use super::{Kmalloc, PageSource};
use crate::mm::gfp::Gfp;
use crate::sync::{self, SpinLock};

/// The kernel heap: a `buddy_system_allocator` early heap until the page
/// allocator is up, kmalloc afterwards. Frees of early objects keep going
/// to the early heap.
///
/// The lock is a [`SpinLock`] of class [`sync::HEAP`] taken with
/// `lock`: the glue masks interrupts around every heap call
/// (`arch::aarch64::memory::IrqSafeHeap`), so interrupt handlers may
/// allocate.
pub struct KernelHeap<P: PageSource> {
    inner: SpinLock<HeapInner<P>>,
    cpu_id: fn() -> usize,
}

struct HeapInner<P> {
    early: buddy_system_allocator::Heap<32>,
    early_range: (usize, usize),
    kmalloc: Option<(Kmalloc, P)>,
}

impl<P: PageSource> KernelHeap<P> {
    /// An empty heap; `cpu_id` returns `smp_processor_id()`.
    pub const fn new(cpu_id: fn() -> usize) -> Self {
        KernelHeap {
            inner: SpinLock::new(
                &sync::HEAP,
                HeapInner { early: buddy_system_allocator::Heap::empty(), early_range: (0, 0), kmalloc: None },
            ),
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
        inner.early_range = (start, start + size);
        // SAFETY: the caller guarantees the range is ours alone.
        unsafe { inner.early.init(start, size) };
    }

    /// Switch new allocations to kmalloc over `src` (`kmem_cache_init`).
    pub fn init_kmalloc(&self, src: P) {
        self.inner.lock_irqsave().kmalloc = Some((Kmalloc::new(), src));
    }

    /// Run `f` on the kmalloc state (statistics, shrinking).
    pub fn with_kmalloc<R>(&self, f: impl FnOnce(&mut Kmalloc, &mut P) -> R) -> Option<R> {
        let mut inner = self.inner.lock_irqsave();
        inner.kmalloc.as_mut().map(|(k, p)| f(k, p))
    }
}

// SAFETY: alloc returns memory of at least `layout.size()` bytes aligned to
// `layout.align()` (early heap: by buddy_system_allocator's contract; kmalloc:
// by class selection on size and alignment, or whole naturally aligned pages),
// exclusively owned until dealloc; all state is behind one lock.
unsafe impl<P: PageSource + Send> GlobalAlloc for KernelHeap<P> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let cpu = (self.cpu_id)();
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
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        let Some(nn) = NonNull::new(ptr) else { return };
        let (s, e) = inner.early_range;
        if (s..e).contains(&(ptr as usize)) {
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
