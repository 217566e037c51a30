//! A spin lock that counts the times its data was handed out mutably, so
//! that a reader can tell cheaply that nothing can have changed since it
//! last looked. The run loop uses it to skip rebuilding a vCPU's list
//! registers on exits that did not touch the vGIC (most hypercalls, MMIO
//! to other devices): the scan of every interrupt was 80% of a null
//! hypercall's cost.

use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicU64, Ordering};
use spin::{Mutex, MutexGuard};

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
