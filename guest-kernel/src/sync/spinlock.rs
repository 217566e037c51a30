//! Spin locks (LKD ch. 10, "Spin Locks") whose waiters wait in WFE.
//!
//! [`SpinLock`] is built on [`RawSpinLock`], a test-and-set word: a waiter
//! waits with `sevl; wfe; ldaxr; cbnz` until the word reads 0 and tries
//! again; the release is a store-release plus, when a waiter is counted,
//! `dsb ishst; sev` ([`crate::arch::aarch64::spinlock`]). The load-acquire exclusive arms
//! the exclusive monitor, and the holder's store clears it, a WFE wake-up
//! event (ARM ARM DDI 0487 D1.6.1 "Wait for Event mechanism and Send
//! event", B2.12.5 "the global monitor"); the explicit SEV is what QEMU
//! needs, as it does not model monitor events. Under QEMU's round-robin
//! TCG (-icount) a WFE ends the waiter's time slice, so the holder runs
//! instead of the waiter burning its slice. On the host (unit tests) the
//! wait is a yield/`spin_loop` loop.
//!
//! Why not a ticket lock (Linux's arm64 `arch_spinlock_t` before
//! qspinlock, v3.13-v4.15: FIFO order, waiters in WFE on the owner half),
//! which was the first version of [`SpinLock`]: with more QEMU vCPU threads
//! than host CPUs (the QEMU tests' 4-CPU boots, without -icount), a FIFO
//! hand-off must wait for the one vCPU whose ticket is next to be
//! scheduled, and the 4-CPU boot made about 40 kernel-lock acquisitions a
//! second and never reached init in 150 s; with page-allocator and heap
//! tickets it stalled in the fork bomb. Linux meets the same
//! waiter-preemption problem in VMs with paravirt spinlocks.
//!
//! `unsafe` here: the `Sync` promise (the data is reached only through a
//! guard, which exists only while the lock is held) and the
//! guard's dereference of the cell; plus [`SpinLock::force_get`] for the
//! crash console.

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicU32, Ordering};

use super::lockdep::{self, LockClass};
use super::{local_irq_restore, local_irq_save};

/// A test-and-set lock word whose waiters wait in WFE: 0 free, 1 held.
/// Whoever runs when it is released takes it (no FIFO order).
pub struct RawSpinLock {
    word: AtomicU32,
    waiters: AtomicU32,
}

impl Default for RawSpinLock {
    fn default() -> Self {
        Self::new()
    }
}

impl RawSpinLock {
    /// Unlocked.
    pub const fn new() -> Self {
        RawSpinLock { word: AtomicU32::new(0), waiters: AtomicU32::new(0) }
    }

    /// Takes the lock, waiting (in WFE on aarch64) while it is held.
    #[inline]
    pub fn lock(&self) {
        while self.word.compare_exchange_weak(0, 1, Ordering::Acquire, Ordering::Relaxed).is_err() {
            wait_until_free(&self.word, &self.waiters);
        }
    }

    /// Takes the lock if it is free.
    #[inline]
    pub fn try_lock(&self) -> bool {
        self.word.compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed).is_ok()
    }

    /// Releases the lock: a store-release, then [`wake_waiters`].
    #[inline]
    pub fn unlock(&self) {
        self.word.store(0, Ordering::Release);
        wake_waiters(&self.waiters);
    }

    /// Whether someone holds the lock.
    pub fn is_locked(&self) -> bool {
        self.word.load(Ordering::Relaxed) != 0
    }
}

/// The slow path of a test-and-set lock whose word is `word`: counts this
/// CPU in `waiters`, then waits until `word` reads 0 (WFE on aarch64;
/// acquire order on the last load). The caller tries to take it again.
///
/// The count is what lets [`wake_waiters`] skip its SEV when nobody
/// waits (an SEV costs a QEMU vCPU its time slice under -icount: with one
/// on every release the sched_yield pair went from 1,243 to 13,256
/// instructions). Both sides have a full barrier between their store and
/// their load (the store-buffering pattern), so either the releaser sees
/// the count and sends the event, or the waiter sees the free word.
#[inline]
pub fn wait_until_free(word: &AtomicU32, waiters: &AtomicU32) {
    waiters.fetch_add(1, Ordering::SeqCst);
    core::sync::atomic::fence(Ordering::SeqCst);
    wait_while_nonzero(word);
    waiters.fetch_sub(1, Ordering::Relaxed);
}

/// After the store-release that freed a lock: a full barrier, then the
/// wake-up event for WFE waiters if `waiters` counts any (aarch64:
/// `dsb ishst; sev`, see the arch module for why it is needed beside the
/// monitor event).
#[inline]
pub fn wake_waiters(waiters: &AtomicU32) {
    core::sync::atomic::fence(Ordering::SeqCst);
    if waiters.load(Ordering::Relaxed) != 0 {
        #[cfg(all(target_arch = "aarch64", target_os = "none"))]
        crate::arch::aarch64::spinlock::unlock_event();
    }
}

/// Waits until `word` is 0 (acquire order on the last load).
#[inline(always)]
fn wait_while_nonzero(word: &AtomicU32) {
    #[cfg(all(target_arch = "aarch64", target_os = "none"))]
    crate::arch::aarch64::spinlock::wait_while_nonzero(word);
    #[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
    while word.load(Ordering::Acquire) != 0 {
        #[cfg(test)]
        std::thread::yield_now();
        #[cfg(not(test))]
        core::hint::spin_loop();
    }
}

/// A spin lock around `T` (on [`RawSpinLock`]), with a lockdep class.
///
/// [`lock`](Self::lock) is `spin_lock`: the caller has interrupts masked
/// already (this kernel preempts at EL1 on `irq_exit`, and has no
/// `preempt_count` outside the scheduler, so masked interrupts are what
/// keep a holder on its CPU; lockdep reports a `lock` with interrupts
/// on). [`lock_irqsave`](Self::lock_irqsave) is `spin_lock_irqsave`
/// (LKD ch. 10, "Spin Locks and Bottom Halves").
pub struct SpinLock<T: ?Sized> {
    raw: RawSpinLock,
    class: &'static LockClass,
    data: UnsafeCell<T>,
}

// SAFETY: the data is only reached through a guard, and a guard exists on
// one CPU at a time (the lock's mutual exclusion), so sharing the
// lock between CPUs hands `T` from one to another: `T: Send` suffices, as
// for `std::sync::Mutex`.
unsafe impl<T: ?Sized + Send> Sync for SpinLock<T> {}
// SAFETY: moving the lock moves the `T` inside.
unsafe impl<T: ?Sized + Send> Send for SpinLock<T> {}

impl<T> SpinLock<T> {
    /// An unlocked lock of `class` holding `v`.
    pub const fn new(class: &'static LockClass, v: T) -> Self {
        SpinLock { raw: RawSpinLock::new(), class, data: UnsafeCell::new(v) }
    }

    /// The value, from an owned lock.
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: ?Sized> SpinLock<T> {
    /// The lock's class.
    pub fn class(&self) -> &'static LockClass {
        self.class
    }

    /// `spin_lock` (interrupts already masked; see the type's doc).
    #[inline]
    pub fn lock(&self) -> SpinLockGuard<'_, T> {
        lockdep::acquire(self.class, true);
        self.raw.lock();
        SpinLockGuard { lock: self, daif: None }
    }

    /// `spin_lock_irqsave`: mask interrupts, then take the lock; the guard
    /// unmasks them (restores DAIF) after releasing it.
    #[inline]
    pub fn lock_irqsave(&self) -> SpinLockGuard<'_, T> {
        let daif = local_irq_save();
        lockdep::acquire(self.class, true);
        self.raw.lock();
        SpinLockGuard { lock: self, daif: Some(daif) }
    }

    /// `spin_trylock`: the guard if the lock was free.
    #[inline]
    pub fn try_lock(&self) -> Option<SpinLockGuard<'_, T>> {
        if self.raw.try_lock() {
            lockdep::acquire(self.class, false);
            Some(SpinLockGuard { lock: self, daif: None })
        } else {
            None
        }
    }

    /// Whether someone holds the lock.
    pub fn is_locked(&self) -> bool {
        self.raw.is_locked()
    }

    /// The value through `&mut self` (no one else can hold the lock).
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }

    /// The value without taking the lock: for the crash console only,
    /// which must not wait for a lock the crashed code may hold.
    ///
    /// # Safety
    ///
    /// The caller accepts racing with a holder: it must be on a path that
    /// never returns to one (a crash report followed by power-off), and
    /// `T` must tolerate interleaved use (a device's output bytes).
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn force_get(&self) -> &mut T {
        // SAFETY: the caller's contract above.
        unsafe { &mut *self.data.get() }
    }
}

/// Holds a [`SpinLock`]; releases it on drop (and restores the interrupt
/// mask if taken with `lock_irqsave`).
#[must_use = "the lock is released when the guard drops"]
pub struct SpinLockGuard<'a, T: ?Sized> {
    lock: &'a SpinLock<T>,
    daif: Option<u64>,
}

impl<T: ?Sized> Deref for SpinLockGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard exists only while this CPU holds the lock:
        // nobody else reaches the data.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> DerefMut for SpinLockGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as for Deref; `&mut self` makes the borrow unique.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T: ?Sized> Drop for SpinLockGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.raw.unlock();
        lockdep::release(self.lock.class);
        if let Some(daif) = self.daif {
            local_irq_restore(daif);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    static TEST: LockClass = LockClass { name: "TEST", id: 31, rank: 0 };

    #[test]
    fn threads_incrementing_under_the_lock_lose_nothing() {
        const THREADS: usize = 4;
        const ITERS: usize = 10_000;
        let lock = Arc::new(SpinLock::new(&TEST, (0usize, 0usize)));
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                let lock = Arc::clone(&lock);
                std::thread::spawn(move || {
                    for _ in 0..ITERS {
                        let mut g = lock.lock();
                        // A non-atomic read-modify-write of two fields: a
                        // lost update or a torn pair shows a broken lock.
                        let (a, b) = *g;
                        assert_eq!(a, b);
                        *g = (a + 1, b + 1);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(*lock.lock(), (THREADS * ITERS, THREADS * ITERS));
        assert!(!lock.is_locked());
    }

    #[test]
    fn try_lock_fails_while_held() {
        let lock = SpinLock::new(&TEST, 0u32);
        {
            let _g = lock.lock();
            assert!(lock.try_lock().is_none());
            assert!(lock.is_locked());
        }
        assert!(lock.try_lock().is_some());
        for _ in 0..70_000 {
            *lock.lock() += 1;
        }
        assert_eq!(*lock.lock(), 70_000);
        assert!(!lock.is_locked());
    }

    #[test]
    fn contended_try_lock_never_enters_twice() {
        let lock = Arc::new(SpinLock::new(&TEST, ()));
        let inside = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let (lock, inside) = (Arc::clone(&lock), Arc::clone(&inside));
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        let g = if let Some(g) = lock.try_lock() { g } else { lock.lock() };
                        assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0);
                        inside.fetch_sub(1, Ordering::SeqCst);
                        drop(g);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    }
}
