//! Sleeping locks: the reader-writer semaphore ([`RwSemaphore`], Linux's
//! `rw_semaphore`, LKD ch. 10 "Reader-Writer Semaphores") and the mutex
//! ([`Mutex`], LKD ch. 10 "Mutexes"). A task that finds the lock taken
//! goes to sleep on a wait queue and another task runs, instead of
//! spinning: for long sections (a whole `mmap`, `fork`'s copy of an
//! address space) that may themselves allocate, or wait.
//!
//! The lock word ([`count`](RwSemaphore)) is an atomic: the uncontended
//! paths are one compare-and-swap to take and one atomic to release, and
//! touch nothing else (no scheduler, no other lock). Only contention goes
//! to the scheduler, through [`Sleep`]: under the scheduler's lock the
//! waiter sets [`WAITERS`] in the word (a compare-and-swap, so it cannot
//! miss a release that happened meanwhile), queues itself on the lock's
//! wait queue in TASK_UNINTERRUPTIBLE and schedules. A release that sees
//! [`WAITERS`] takes the scheduler's lock, clears the bit and wakes every
//! waiter (`wake_up_all`); each tries again and sets the bit again if it
//! must still wait. Waking happens under the same lock the waiter held
//! from setting the bit to going to sleep, so no wake-up is lost (LKD
//! ch. 4, "Sleeping and Waking Up").
//!
//! Writers are not starved: a new reader waits while a writer waits (the
//! fast path sees [`WAITERS`], both see the count of writers in the slow
//! path), as Linux queues new readers behind a waiting writer. Simpler
//! than Linux's: waking everyone rather than the first writer or the
//! leading readers, no optimistic spinning, no hand-off (a woken writer
//! may lose the lock to another writer, not to a reader).
//!
//! Lockdep: a sleeping lock is owned by a task, not a CPU (its holder may
//! sleep and move), so it is not put on the per-CPU held stack; taking one
//! checks instead that the CPU holds no spin lock (`might_sleep`: sleeping
//! with a spin lock held would deadlock), which is why the sleeping locks
//! come first in the order table of [`crate::sync`]. Releasing one with
//! waiters takes the scheduler's lock, so lockdep also reports a release
//! made with the scheduler's lock held.
//!
//! `unsafe` here: the `Sync` promise and the guards' access to the data
//! (as for `SpinLock`), and the wait queue, which is reached only with the
//! scheduler's lock held.

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicUsize, Ordering};

use super::lockdep::{self, LockClass};

/// A writer holds the lock.
pub const WRITER: usize = 1;
/// Someone sleeps on the wait queue: the release must wake it.
pub const WAITERS: usize = 2;
/// One reader (the readers' count is `count / READER`).
pub const READER: usize = 4;

/// What a sleeping lock needs from the scheduler: its lock, and a wait
/// queue to sleep on and wake from under it. The kernel's is the process
/// scheduler under the kernel lock with `sched::waitqueue`; host tests use
/// threads.
pub trait Sleep {
    /// Proof that the scheduler's lock is held.
    type Guard;
    /// The wait queue (`wait_queue_head_t`).
    type Queue: Default;
    /// Takes the scheduler's lock.
    fn lock() -> Self::Guard;
    /// `prepare_to_wait`: queue the current task, TASK_UNINTERRUPTIBLE.
    fn prepare_to_wait(g: &mut Self::Guard, q: &mut Self::Queue);
    /// `schedule`: sleep until woken; returns with the lock held again.
    fn schedule(g: &mut Self::Guard);
    /// `finish_wait`: off the queue (if a wake-up did not take it off).
    fn finish_wait(g: &mut Self::Guard, q: &mut Self::Queue);
    /// `wake_up_all`.
    fn wake_up_all(g: &mut Self::Guard, q: &mut Self::Queue);
}

/// `struct rw_semaphore` around `T`: many readers or one writer, sleeping
/// while it cannot be taken.
pub struct RwSemaphore<T, S: Sleep> {
    count: AtomicUsize,
    /// Writers asleep in the slow path (changed with the scheduler's lock
    /// held): new readers wait behind them.
    writers_waiting: AtomicUsize,
    wait_list: UnsafeCell<S::Queue>,
    class: &'static LockClass,
    data: UnsafeCell<T>,
}

// SAFETY: the data is reached only through guards: shared ones while no
// writer holds the lock (so `T: Sync` for the readers on several CPUs) and
// a unique one while a writer does (so `T: Send`); the wait list only with
// the scheduler's lock held, which serialises its users.
unsafe impl<T: Send + Sync, S: Sleep> Sync for RwSemaphore<T, S> where S::Queue: Send {}
// SAFETY: moving the lock moves the `T` and the (empty, since nobody can
// be waiting on a lock being moved) wait list.
unsafe impl<T: Send, S: Sleep> Send for RwSemaphore<T, S> where S::Queue: Send {}

impl<T, S: Sleep> RwSemaphore<T, S> {
    /// `init_rwsem`: unlocked, of lockdep class `class`.
    pub fn new(class: &'static LockClass, v: T) -> Self {
        RwSemaphore {
            count: AtomicUsize::new(0),
            writers_waiting: AtomicUsize::new(0),
            wait_list: UnsafeCell::new(S::Queue::default()),
            class,
            data: UnsafeCell::new(v),
        }
    }

    /// The value, from an owned lock.
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }

    /// The value through `&mut self` (no one else can hold the lock).
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }

    /// `down_read`.
    pub fn read(&self) -> RwSemReadGuard<'_, T, S> {
        lockdep::might_sleep(self.class);
        let s = self.count.load(Ordering::Relaxed);
        let fast = s & (WRITER | WAITERS) == 0
            && self.writers_waiting.load(Ordering::Relaxed) == 0
            && self.count.compare_exchange(s, s + READER, Ordering::Acquire, Ordering::Relaxed).is_ok();
        if !fast {
            self.down_slowpath(false);
        }
        RwSemReadGuard { lock: self }
    }

    /// `down_write`.
    pub fn write(&self) -> RwSemWriteGuard<'_, T, S> {
        lockdep::might_sleep(self.class);
        if self.count.compare_exchange(0, WRITER, Ordering::Acquire, Ordering::Relaxed).is_err() {
            self.down_slowpath(true);
        }
        RwSemWriteGuard { lock: self }
    }

    /// `down_read_trylock`.
    pub fn try_read(&self) -> Option<RwSemReadGuard<'_, T, S>> {
        let mut s = self.count.load(Ordering::Relaxed);
        while s & (WRITER | WAITERS) == 0 && self.writers_waiting.load(Ordering::Relaxed) == 0 {
            match self.count.compare_exchange_weak(s, s + READER, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return Some(RwSemReadGuard { lock: self }),
                Err(now) => s = now,
            }
        }
        None
    }

    /// `down_write_trylock`.
    pub fn try_write(&self) -> Option<RwSemWriteGuard<'_, T, S>> {
        self.count
            .compare_exchange(0, WRITER, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| RwSemWriteGuard { lock: self })
    }

    /// Whether anyone holds the lock (for assertions).
    pub fn is_locked(&self) -> bool {
        self.count.load(Ordering::Relaxed) & !WAITERS != 0
    }

    /// `rwsem_down_{read,write}_slowpath`: with the scheduler's lock held,
    /// take the lock if it can be taken now, otherwise mark it contended and
    /// sleep, and try again when woken.
    #[cold]
    fn down_slowpath(&self, write: bool) {
        let mut g = S::lock();
        let mut slept = false;
        loop {
            let s = self.count.load(Ordering::Relaxed);
            let (free, taken) = if write {
                (s & !WAITERS == 0, s | WRITER)
            } else {
                let behind_writer = self.writers_waiting.load(Ordering::Relaxed) != 0;
                (s & WRITER == 0 && !behind_writer, s + READER)
            };
            let want = if free { taken } else { s | WAITERS };
            if self.count.compare_exchange(s, want, Ordering::Acquire, Ordering::Relaxed).is_err() {
                continue;
            }
            if free {
                if write && slept {
                    self.writers_waiting.fetch_sub(1, Ordering::Relaxed);
                }
                return;
            }
            if write && !slept {
                self.writers_waiting.fetch_add(1, Ordering::Relaxed);
            }
            slept = true;
            // SAFETY: the wait list is only touched with the scheduler's
            // lock held (`g`); the borrow ends before `schedule`.
            S::prepare_to_wait(&mut g, unsafe { &mut *self.wait_list.get() });
            S::schedule(&mut g);
            // SAFETY: as above; we hold the scheduler's lock again.
            S::finish_wait(&mut g, unsafe { &mut *self.wait_list.get() });
        }
    }

    /// `rwsem_wake`: clear [`WAITERS`] and wake every waiter, under the
    /// scheduler's lock.
    #[cold]
    fn wake(&self) {
        let mut g = S::lock();
        self.count.fetch_and(!WAITERS, Ordering::Relaxed);
        // SAFETY: the scheduler's lock is held.
        S::wake_up_all(&mut g, unsafe { &mut *self.wait_list.get() });
    }

    fn up_read(&self) {
        let prev = self.count.fetch_sub(READER, Ordering::Release);
        // The last reader wakes the waiters (a writer waits for it).
        if prev & WAITERS != 0 && (prev - READER) & !WAITERS == 0 {
            self.wake();
        }
    }

    fn up_write(&self) {
        let prev = self.count.fetch_sub(WRITER, Ordering::Release);
        if prev & WAITERS != 0 {
            self.wake();
        }
    }
}

/// Holds an [`RwSemaphore`] for reading (`up_read` on drop).
#[must_use = "the lock is released when the guard drops"]
pub struct RwSemReadGuard<'a, T, S: Sleep> {
    lock: &'a RwSemaphore<T, S>,
}

impl<T, S: Sleep> Deref for RwSemReadGuard<'_, T, S> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: a reader holds the lock: no writer reaches the data.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T, S: Sleep> Drop for RwSemReadGuard<'_, T, S> {
    fn drop(&mut self) {
        self.lock.up_read();
    }
}

/// Holds an [`RwSemaphore`] for writing (`up_write` on drop).
#[must_use = "the lock is released when the guard drops"]
pub struct RwSemWriteGuard<'a, T, S: Sleep> {
    lock: &'a RwSemaphore<T, S>,
}

impl<T, S: Sleep> Deref for RwSemWriteGuard<'_, T, S> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the writer holds the lock alone.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T, S: Sleep> DerefMut for RwSemWriteGuard<'_, T, S> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as for Deref; `&mut self` makes the borrow unique.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T, S: Sleep> Drop for RwSemWriteGuard<'_, T, S> {
    fn drop(&mut self) {
        self.lock.up_write();
    }
}

/// `struct mutex` around `T` (LKD ch. 10, "Mutexes"): one holder at a
/// time, sleeping while taken. Built on the write side of
/// [`RwSemaphore`] (Linux's mutex adds optimistic spinning on a running
/// owner and a hand-off to the first waiter; neither is here).
pub struct Mutex<T, S: Sleep>(RwSemaphore<T, S>);

impl<T, S: Sleep> Mutex<T, S> {
    /// `mutex_init`: unlocked, of lockdep class `class`.
    pub fn new(class: &'static LockClass, v: T) -> Self {
        Mutex(RwSemaphore::new(class, v))
    }
    /// `mutex_lock`.
    pub fn lock(&self) -> MutexGuard<'_, T, S> {
        MutexGuard(self.0.write())
    }
    /// `mutex_trylock`.
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T, S>> {
        self.0.try_write().map(MutexGuard)
    }
    /// `mutex_is_locked`.
    pub fn is_locked(&self) -> bool {
        self.0.is_locked()
    }
}

/// Holds a [`Mutex`] (`mutex_unlock` on drop).
#[must_use = "the lock is released when the guard drops"]
pub struct MutexGuard<'a, T, S: Sleep>(RwSemWriteGuard<'a, T, S>);

impl<T, S: Sleep> Deref for MutexGuard<'_, T, S> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T, S: Sleep> DerefMut for MutexGuard<'_, T, S> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::{Arc, Condvar, MutexGuard as StdGuard};

    /// A scheduler made of threads: a global lock, a condition variable,
    /// and per-thread "woken" flags on the queue.
    struct Threads;
    static SCHED: std::sync::Mutex<()> = std::sync::Mutex::new(());
    static CV: Condvar = Condvar::new();
    static SLEEPS: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static WOKEN: Arc<AtomicBool> = Arc::new(AtomicBool::new(false));
    }

    impl Sleep for Threads {
        type Guard = Option<StdGuard<'static, ()>>;
        type Queue = Vec<Arc<AtomicBool>>;
        fn lock() -> Self::Guard {
            Some(SCHED.lock().unwrap())
        }
        fn prepare_to_wait(_: &mut Self::Guard, q: &mut Self::Queue) {
            WOKEN.with(|w| {
                w.store(false, Ordering::SeqCst);
                q.push(Arc::clone(w));
            });
        }
        fn schedule(g: &mut Self::Guard) {
            SLEEPS.fetch_add(1, Ordering::Relaxed);
            let mut held = g.take().unwrap();
            while !WOKEN.with(|w| w.load(Ordering::SeqCst)) {
                held = CV.wait(held).unwrap();
            }
            *g = Some(held);
        }
        fn finish_wait(_: &mut Self::Guard, q: &mut Self::Queue) {
            WOKEN.with(|w| q.retain(|e| !Arc::ptr_eq(e, w)));
        }
        fn wake_up_all(_: &mut Self::Guard, q: &mut Self::Queue) {
            for w in q.drain(..) {
                w.store(true, Ordering::SeqCst);
            }
            CV.notify_all();
        }
    }

    static TEST: LockClass = LockClass { name: "TEST", id: 31, rank: 0 };

    #[test]
    fn readers_share_and_a_writer_excludes() {
        let l: RwSemaphore<u32, Threads> = RwSemaphore::new(&TEST, 7);
        let r1 = l.read();
        let r2 = l.try_read().expect("readers share");
        assert_eq!(*r1 + *r2, 14);
        assert!(l.try_write().is_none());
        drop((r1, r2));
        let mut w = l.try_write().expect("free");
        *w = 8;
        assert!(l.try_read().is_none());
        drop(w);
        assert_eq!(*l.read(), 8);
        assert!(!l.is_locked());
    }

    #[test]
    fn contended_writers_and_readers_sleep_and_lose_nothing() {
        const THREADS: usize = 4;
        const ITERS: usize = 2_000;
        let before = SLEEPS.load(Ordering::Relaxed);
        let l: Arc<RwSemaphore<(usize, usize), Threads>> = Arc::new(RwSemaphore::new(&TEST, (0, 0)));
        let handles: Vec<_> = (0..THREADS)
            .map(|i| {
                let l = Arc::clone(&l);
                std::thread::spawn(move || {
                    for n in 0..ITERS {
                        if (n + i) % 3 == 0 {
                            let g = l.read();
                            assert_eq!(g.0, g.1, "a reader saw a half-done write");
                        } else {
                            let mut g = l.write();
                            let (a, b) = *g;
                            *g = (a + 1, b);
                            std::thread::yield_now();
                            g.1 += 1;
                        }
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let writes = (0..THREADS).map(|i| (0..ITERS).filter(|n| (n + i) % 3 != 0).count()).sum::<usize>();
        assert_eq!(*l.read(), (writes, writes));
        assert!(!l.is_locked());
        assert_eq!(l.count.load(Ordering::Relaxed), 0, "no WAITERS left behind");
        assert!(SLEEPS.load(Ordering::Relaxed) > before, "contention went to sleep, not a spin");
    }

    #[test]
    fn a_writer_sleeps_until_the_last_reader_leaves() {
        let l: Arc<RwSemaphore<u32, Threads>> = Arc::new(RwSemaphore::new(&TEST, 0));
        let r = l.read();
        let l2 = Arc::clone(&l);
        let w = std::thread::spawn(move || *l2.write() += 1);
        while l.count.load(Ordering::SeqCst) & WAITERS == 0 {
            std::thread::yield_now();
        }
        assert!(l.try_read().is_none(), "new fast-path readers queue behind a waiting writer");
        // A new reader on the slow path waits behind the writer too: it
        // sees the writer's increment.
        let l3 = Arc::clone(&l);
        let late = std::thread::spawn(move || *l3.read());
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(!late.is_finished(), "a new reader does not pass a waiting writer");
        assert_eq!(*r, 0);
        drop(r);
        w.join().unwrap();
        assert_eq!(late.join().unwrap(), 1, "the late reader ran after the writer");
        assert_eq!(*l.read(), 1);
        assert_eq!(l.writers_waiting.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn mutex_excludes() {
        let m: Arc<Mutex<usize, Threads>> = Arc::new(Mutex::new(&TEST, 0));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let m = Arc::clone(&m);
                std::thread::spawn(move || {
                    for _ in 0..2_000 {
                        let mut g = m.lock();
                        let v = *g;
                        std::thread::yield_now();
                        *g = v + 1;
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(*m.lock(), 8_000);
        assert!(m.try_lock().is_some() && !m.is_locked());
    }
}
