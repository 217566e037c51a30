//! The hypervisor's locks: every spin lock, once-cell and heap allocation
//! goes through here, and each checks that the EL2 MMU and data cache are
//! on before it touches an atomic.
//!
//! Why: with the MMU off every data access is Device-nGnRnE, and the
//! exclusive loads/stores (or LSE atomics) a lock is made of are only
//! guaranteed on Normal cacheable memory (ARM ARM DDI 0487 B2.9). QEMU does
//! not model that, a real Cortex-A53/A72 may spin or fault; so boot turns
//! the MMU on first (`mm::early_map`, `arch/aarch64/boot.rs`), and
//! [`assert_mmu_on`] catches any lock taken before that: it prints the
//! caller's location on the console UART without any lock and stops the
//! machine. The check is one system-register read; on the host (unit tests)
//! it is nothing.
//!
//! - [`Mutex`], [`Once`]: `spin`'s, checked on `lock` and `call_once`.
//! - [`CountedMutex`]: a [`Mutex`] that counts the times its data was
//!   handed out mutably, so that a reader can tell cheaply that nothing can
//!   have changed since it last looked. The run loop uses it to skip
//!   rebuilding a vCPU's list registers on exits that did not touch the vGIC
//!   (most hypercalls, MMIO to other devices): the scan of every interrupt
//!   was 80% of a null hypercall's cost.
//! - [`MmuChecked`]: a `GlobalAlloc` wrapper (the heap is behind a lock).

use core::alloc::{GlobalAlloc, Layout};
use core::ops::{Deref, DerefMut};
use core::panic::Location;
use core::sync::atomic::{AtomicU64, Ordering};
pub use spin::MutexGuard;

/// Stops the machine with a report naming `caller` if the EL2 MMU or data
/// cache is off (see the module doc). Nothing on the host.
#[inline(always)]
pub fn assert_mmu_on(caller: &'static Location<'static>) {
    #[cfg(all(target_arch = "aarch64", target_os = "none"))]
    crate::arch::aarch64::mmu::assert_mmu_on(caller);
    #[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
    let _ = caller;
}

/// A spin lock that may only be taken with the MMU and caches on.
pub struct Mutex<T: ?Sized>(spin::Mutex<T>);

impl<T> Mutex<T> {
    /// Wraps `value`.
    pub const fn new(value: T) -> Self {
        Self(spin::Mutex::new(value))
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Locks (spinning).
    #[inline]
    #[track_caller]
    pub fn lock(&self) -> MutexGuard<'_, T> {
        assert_mmu_on(Location::caller());
        self.0.lock()
    }

    /// Locks if the lock is free.
    #[inline]
    #[track_caller]
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        assert_mmu_on(Location::caller());
        self.0.try_lock()
    }

    /// Forces the lock open (a plain store, no exclusive access).
    ///
    /// # Safety
    /// As `spin::Mutex::force_unlock`: the holder must never touch the data again.
    // A named exception to the crate's `deny(unsafe_code)`: the crash
    // console (`console::emergency_print`) needs it; it only passes on
    // spin's contract.
    #[allow(unsafe_code)]
    pub unsafe fn force_unlock(&self) {
        // SAFETY: the caller's contract.
        unsafe { self.0.force_unlock() }
    }
}

/// A once-cell whose initialisation may only run with the MMU and caches
/// on; reading it is a single load-acquire, allowed at any time.
pub struct Once<T>(spin::Once<T>);

impl<T> Once<T> {
    /// Empty.
    pub const fn new() -> Self {
        Self(spin::Once::new())
    }

    /// Initialises with `f` unless done already; returns the value.
    #[inline]
    #[track_caller]
    pub fn call_once(&self, f: impl FnOnce() -> T) -> &T {
        assert_mmu_on(Location::caller());
        self.0.call_once(f)
    }

    /// The value, if initialised.
    #[inline]
    pub fn get(&self) -> Option<&T> {
        self.0.get()
    }
}

impl<T> Default for Once<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// A global allocator wrapper that checks the MMU before every call into
/// the locked allocator it wraps (the report names this file: the caller
/// behind `alloc` is not known).
pub struct MmuChecked<A>(pub A);

impl<A> MmuChecked<A> {
    /// The wrapped allocator, for calls of its own (`init`), checked.
    #[inline]
    #[track_caller]
    pub fn checked(&self) -> &A {
        assert_mmu_on(Location::caller());
        &self.0
    }
}

// A named exception to the crate's `deny(unsafe_code)`: a global
// allocator is an `unsafe impl` by definition.
// SAFETY: every call is forwarded unchanged to `A`, which upholds the
// `GlobalAlloc` contract; the check only reads a system register.
#[allow(unsafe_code)]
unsafe impl<A: GlobalAlloc> GlobalAlloc for MmuChecked<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        assert_mmu_on(Location::caller());
        // SAFETY: the caller's `GlobalAlloc::alloc` contract, passed on.
        unsafe { self.0.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        assert_mmu_on(Location::caller());
        // SAFETY: the caller's `GlobalAlloc::dealloc` contract, passed on.
        unsafe { self.0.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        assert_mmu_on(Location::caller());
        // SAFETY: the caller's `GlobalAlloc::alloc_zeroed` contract, passed on.
        unsafe { self.0.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        assert_mmu_on(Location::caller());
        // SAFETY: the caller's `GlobalAlloc::realloc` contract, passed on.
        unsafe { self.0.realloc(ptr, layout, new_size) }
    }
}

/// A mutex with a change counter.
pub struct CountedMutex<T> {
    inner: Mutex<T>,
    changes: AtomicU64,
}

/// The guard of a [`CountedMutex`]: each mutable dereference counts as a
/// change (conservatively: a `&mut` that writes nothing counts too).
pub struct CountedGuard<'a, T> {
    guard: MutexGuard<'a, T>,
    changes: &'a AtomicU64,
}

impl<T> CountedMutex<T> {
    /// Wraps `value`.
    pub const fn new(value: T) -> Self {
        Self { inner: Mutex::new(value), changes: AtomicU64::new(0) }
    }

    /// Locks (spinning).
    #[inline]
    #[track_caller]
    pub fn lock(&self) -> CountedGuard<'_, T> {
        CountedGuard { guard: self.inner.lock(), changes: &self.changes }
    }

    /// How many mutable accesses there have been. Read under the lock, it
    /// is exact; without, it only grows.
    pub fn changes(&self) -> u64 {
        self.changes.load(Ordering::Acquire)
    }
}

impl<T> Deref for CountedGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T> DerefMut for CountedGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.changes.fetch_add(1, Ordering::Release);
        &mut self.guard
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_mutable_access_only() {
        let m = CountedMutex::new(vec![1, 2]);
        assert_eq!(m.lock().len(), 2);
        assert_eq!(m.changes(), 0, "reading is not a change");
        m.lock().push(3);
        assert_eq!(m.changes(), 1);
        {
            let mut g = m.lock();
            g[0] = 7;
            *g = vec![0];
        }
        assert_eq!(m.changes(), 3);
        assert_eq!(*m.lock(), [0]);
    }
}
